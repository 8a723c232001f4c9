/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api.h - sbxd's HTTP API: authentication, routing and the control
 * plane under /api/v2/sandboxes and /v2/sandboxes (boxes: create, list,
 * get, status, update, delete, start/stop; snapshots: capture, build,
 * list, get, delete, pools), wire-compatible with the langsmith sandbox
 * client (docs/sbxd.md lists the routes); /healthz and /metrics.
 *
 * It is the http_app of the http_server (ud = the sbxd_api) and the
 * notify target of the sandbox manager. Runs on the service thread except
 * sbxd_api_mgr_notify(), which workers call.
 */
#pragma once

#include "sbxd/api/api_req.h"
#include "sbxd/http/http_server.h"
#include "sbxd/mgr/mgr.h"
#include "sbxd/store/store.h"

typedef struct sbxd_api sbxd_api;

struct sbxd_api_config {
	store *st;
	struct api_limits limits;
	const char *image_dir;	   /* the image new sandboxes boot */
	const char *images_dir;	   /* where POST /snapshots finds images by name;
				    * NULL: the directory holding image_dir */
	unsigned max_pool_size;	   /* most VMs one snapshot's pool may keep; 0: 8 */
	const char *public_url;	   /* "" or NULL: from each request's Host header */
	const char *fallback_base; /* for requests without a usable Host header */
	const char *version;	   /* shown by /healthz */
};

int sbxd_api_new(const struct sbxd_api_config *c, sbxd_api **ret);
sbxd_api *sbxd_api_free(sbxd_api *a); /* NULL-safe */
/* Both must be set before serving. */
void sbxd_api_attach(sbxd_api *a, http_server *srv, sbxd_mgr *mgr);

extern const struct http_app sbxd_api_http_app;
/* At start, after the reconcile functions: the default image's pool of
 * image_pool_size VMs (0: none), and the pools of the snapshots whose
 * pool_size is set (overrides: "ID_OR_NAME:N,..." from the snapshot-pools
 * setting, NULL: none; each is stored as the snapshot's pool_size).
 * Problems are logged. */
void sbxd_api_start_pools(sbxd_api *a, unsigned image_pool_size, const char *overrides);
/* sbxd_mgr_config.notify, with notify_ud = the sbxd_api. */
void sbxd_api_mgr_notify(void *ud, uint64_t waiter, const char *box_id, enum mgr_outcome o,
			 const char *msg);
/* sbxd_mgr_config.release_box (ud = the sbxd_api): has the data plane let
 * go of the sandbox, on the service thread, and waits for it (from a
 * worker thread). */
int sbxd_api_release_box(void *ud, const char *box_id, bool idle);
/* sbxd_mgr_config.box_busy: asks the data plane, likewise. */
int sbxd_api_box_busy(void *ud, const char *box_id);
