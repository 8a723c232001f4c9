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

#include "sbxd/store/store.h"

/* RFC 3339 UTC with milliseconds: 2026-05-01T10:00:00.123Z */
void api_format_time(int64_t ms, char *buf, size_t len);
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
