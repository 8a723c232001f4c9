/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp.h - sbxd's data plane: what a client does inside a sandbox through its
 * dataplane_url (docs/dataplane.md): run commands over WebSocket
 * (/execute/ws) or HTTP (/execute), upload and download files, glob and
 * grep. It plugs into the API with sbxd_api_set_dataplane():
 *
 *	dp *d;
 *	dp_new(api, st, &d);
 *	sbxd_api_set_dataplane(api, &dp_dataplane_ops, d);
 *	... http_server_run() ...
 *	http_server_free(srv);   (closes every connection first)
 *	dp_free(d);
 *
 * Everything runs on the HTTP service thread, inside libwebsockets' loop:
 * each sandbox's agent connection is adopted into it, so the data plane
 * never blocks and never needs a lock.
 */
#pragma once

#include "sbxd/api/api.h"
#include "sbxd/api/dataplane.h"
#include "sbxd/store/store.h"

typedef struct dp dp;

/* api is used to look sandboxes up again (after a lost agent connection),
 * st for the commands table. Both must outlive the dp. */
int dp_new(sbxd_api *api, store *st, dp **ret);
/* After http_server_free(). NULL-safe, returns NULL. */
dp *dp_free(dp *d);

extern const struct sbxd_dataplane_ops dp_dataplane_ops;
