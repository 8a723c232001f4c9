/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dataplane.h - where the data plane (execute over WebSocket and
 * HTTP, upload, download, glob, grep) plugs into sbxd.
 *
 * Every sandbox's dataplane_url is http://HOST/dataplane/<sandbox-id>; the
 * client appends /execute, /execute/ws, /upload?path=, /download?path=,
 * /glob or /grep. sbxd's API layer routes those paths, checks the
 * X-Api-Key, finds the sandbox for that key (others' sandboxes are 404)
 * and checks it is ready (else 400 NotReady), then calls the registered
 * handler with the sandbox resolved. Without a handler the routes answer
 * 501.
 *
 * Everything here runs on the HTTP service thread. Handlers use the
 * http_server.h API: reply now, defer and finish from a worker through
 * http_server_post(), take large bodies with http_req_set_body_sink() and
 * stream replies with http_reply_stream().
 */
#pragma once

#include <limits.h>

#include "sbxd/api/api_req.h"
#include "sbxd/http/http_server.h"
#include "sbxd/common/key.h"
#include "sbxd/store/store.h"

typedef struct sbxd_api sbxd_api;

/* A sandbox as the data plane needs it. */
struct sbxd_dp_box {
	char id[STORE_ID_LEN + 1];
	char name[API_NAME_MAX + 1];
	char vm_name[STORE_ID_LEN + 1];
	int64_t owner;
	enum box_state state;
	/* "unix:PATH" of the VM's agent channel (see agent_client_connect()).
	 * One host connection at a time: the data plane should keep one
	 * agent_client per sandbox and multiplex commands on it. */
	char agent_addr[PATH_MAX + 8];
	char *run_config; /* the sandbox's run_config JSON, or NULL; owned */
};
void sbxd_dp_box_release(struct sbxd_dp_box *b);

struct sbxd_dataplane_ops {
	/* An HTTP request on a data-plane route, headers in (the body, if
	 * any, has not arrived): reply, defer, or set a body sink. If none of
	 * those, on_body runs with the buffered body (at most 1 MiB) once it
	 * is complete. box is valid during the call only. */
	void (*on_request)(void *ud, http_req *r, enum api_dp_op op, const struct sbxd_dp_box *box,
			   const struct sbxd_principal *who);
	void (*on_body)(void *ud, http_req *r, enum api_dp_op op, const struct sbxd_dp_box *box,
			const struct sbxd_principal *who);
	/* GET {dataplane_url}/execute/ws with an Upgrade: accept (return 0,
	 * set *ret_ops and *ret_ud) or reply with an error and return <0. */
	int (*on_upgrade)(void *ud, http_req *r, const struct sbxd_dp_box *box,
			  const struct sbxd_principal *who, const struct http_ws_ops **ret_ops,
			  void **ret_ud);
	/* Optional: flush the guest's file systems (sync(1) over the
	 * sandbox's agent connection) before sbxd captures it. 0: done() runs
	 * later on the service thread with 0 or -errno (and a message); <0:
	 * it will not run. r is the request that asks (for the loop). */
	int (*sync_fs)(void *ud, http_req *r, const struct sbxd_dp_box *box,
		       void (*done)(void *cud, int err, const char *msg), void *cud);
	/* Optional: sandbox box_id is being stopped: close its agent
	 * connection now (its commands end: "the sandbox was stopped"). */
	void (*release_box)(void *ud, const char *box_id);
	/* Optional: whether a command runs in sandbox box_id (its idle TTL
	 * does not stop it then). */
	bool (*box_busy)(void *ud, const char *box_id);
};

/* ops must stay valid while the server runs. */
void sbxd_api_set_dataplane(sbxd_api *a, const struct sbxd_dataplane_ops *ops, void *ud);

/* The sandbox with id (or name) dp_id as key `who` may see it:
 *   0        ready: *ret filled (release it with sbxd_dp_box_release())
 *   -ENOENT  unknown, another key's, or being deleted
 *   -EAGAIN  still provisioning (or starting)
 *   -EIO     failed (its status_message says why)
 *   -EHOSTDOWN ready on record, but its VM is gone (QEMU died)
 *   -ESHUTDOWN stopped (or stopping)
 * *ret is filled for those as well (agent_addr empty). */
int sbxd_dataplane_lookup(sbxd_api *a, const struct sbxd_principal *who, const char *dp_id,
			  struct sbxd_dp_box *ret);
/* The reply the client maps for a failed lookup: 404 NotFound, 400
 * NotReady (-> LangSmithSandboxNotReadyError), or 409 for a stopped
 * sandbox ("start it first"). */
int sbxd_dataplane_reply_lookup_error(http_req *r, int err, const char *dp_id,
				      const struct sbxd_dp_box *box);
