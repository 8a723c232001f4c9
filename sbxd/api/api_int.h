/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_int.h - internals shared by api.c (authentication, routing,
 * data-plane hand-off, manager notifications) and api_boxes.c (the
 * control-plane handlers). Service thread only.
 */
#pragma once

#include "sbxd/api/api_req.h"
#include "sbxd/http/http_server.h"
#include "sbxd/api/api.h"
#include "sbxd/api/dataplane.h"
#include "sbxd/common/key.h"
#include "sbxd/mgr/mgr.h"

struct sbxd_api {
	store *st;
	struct api_limits limits;
	char *image_dir;
	char *images_dir;
	char image_source[SBXD_POOL_SOURCE_MAX]; /* pool source of image_dir */
	unsigned max_pool_size;
	char *public_url;
	char *fallback_base;
	char *version;
	http_server *srv;
	sbxd_mgr *mgr;
	const struct sbxd_dataplane_ops *dp;
	void *dp_ud;
};

/* Per request (http_req_data). */
struct api_ctx {
	struct api_route route;
	struct sbxd_principal who;
	struct sbxd_dp_box dp_box;
	/* create with wait_for_ready / delete: the sandbox waited for */
	char box_id[STORE_ID_LEN + 1];
	char box_name[API_NAME_MAX + 1];
	int64_t timeout_s;
	/* capture, build, delete of a snapshot: the snapshot waited for */
	char snap_id[STORE_SNAP_ID_MAX + 1];
};

static inline int64_t api_owner(const struct api_ctx *ctx)
{
	return ctx->who.admin ? STORE_OWNER_ANY : ctx->who.key_id;
}

/* api_snapshots.c */
void api_snapshots_dispatch(sbxd_api *a, http_req *r, struct api_ctx *ctx);
/* A snapshot job the request waited for settled (or a capture's box
 * was deleted). */
void api_snapshots_settled(sbxd_api *a, http_req *r, struct api_ctx *ctx, enum mgr_outcome o,
			   const char *msg);
/* The pool spec a snapshot's pool of `size` has: the shape a create with
 * no resources gets from it. */
void api_snapshot_pool_spec(sbxd_api *a, const struct store_snapshot *s, unsigned size,
			    struct sbxd_pool_spec *ret);
/* /metrics */
void api_metrics(sbxd_api *a, http_req *r);

/* api_boxes.c */
void api_boxes_dispatch(sbxd_api *a, http_req *r, struct api_ctx *ctx);
/* api_audit.c: GET .../boxes/{name}/audit */
void api_audit_dispatch(sbxd_api *a, http_req *r, struct api_ctx *ctx);
/* A job the request waited for settled. */
void api_boxes_settled(sbxd_api *a, http_req *r, struct api_ctx *ctx, enum mgr_outcome o,
		       const char *msg);
/* The Sandbox JSON of b with its dataplane_url for this request. */
json_t *api_box_render(sbxd_api *a, http_req *r, const struct store_box *b);
