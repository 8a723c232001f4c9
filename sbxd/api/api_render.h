/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_render.h - the JSON sbxd sends: sandbox objects (langsmith-wire.md
 * §4.1), snapshot objects (§4.2), status objects and error bodies. Pure
 * functions.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sbxd/http/http_server.h"
#include "sbxd/mgr/mgr.h"
#include "sbxd/store/store.h"

/* The Sandbox JSON object for b (new reference, NULL on OOM). */
json_t *api_box_json(const struct store_box *b, const char *dataplane_url);
/* The Snapshot JSON object (langsmith-wire.md §4.2, plus pool_size).
 * created_by: the owner key's name, or NULL. */
json_t *api_snapshot_json(const struct store_snapshot *s, const char *created_by);
/* {"status": ..., "status_message": ...} */
json_t *api_box_status_json(const struct store_box *b);
/* {"detail": {"error": type, "message": message}} as a compact string
 * (malloc'd; NULL on OOM). */
char *api_error_body(const char *type, const char *message);
/* http_reply_error() of a parse failure. */
struct api_error;
int api_reply_error(http_req *r, const struct api_error *e);

/* GET /metrics: the whole exposition of what the collectors read
 * (api_metrics.c; malloc'ed, NUL-terminated, *ret_len its length), or NULL
 * on OOM. Either source may be NULL. */
struct metrics_sources {
	sbxd_mgr *mgr;
	store *st;
};
char *sbxd_metrics_render(const struct metrics_sources *src, size_t *ret_len);
