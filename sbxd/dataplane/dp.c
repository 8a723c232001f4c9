/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp.c - the data plane's entry points (struct sbxd_dataplane_ops): sbxd
 * has authenticated the request and found the sandbox ready; here each
 * operation goes to its handler, and agent failures become the
 * {"detail":{"error":TYPE,"message":TEXT}} bodies the langsmith client
 * maps (langsmith-wire.md §2.4):
 *
 *   WriteError / ReadError  -> LangSmithSandboxOperationError (write/read)
 *   CommandError            -> LangSmithSandboxOperationError (command)
 *   404 FileNotFound        -> LangSmithResourceNotFoundError (file)
 *   403                     -> ... PermissionDenied (when no type above)
 *   502 ConnectionError     -> LangSmithSandboxConnectionError
 *
 * Handlers copy what they need from the sandbox before they attach their
 * own state to the request (http_req_set_data() releases sbxd's).
 */
#include <errno.h>
#include <string.h>

#include "sbxd/dataplane/dp_int.h"
#include "base/log.h"

static int status_for(int err)
{
	switch (-err) {
	case ENOENT:
		return 404;
	case EACCES:
	case EPERM:
	case EROFS:
		return 403;
	case EISDIR:
	case ENOTDIR:
	case EINVAL:
	case ENAMETOOLONG:
	case ELOOP:
	case EEXIST:
	case ENOTEMPTY:
	case EFBIG:
		return 400;
	case ENOSPC:
	case EDQUOT:
		return 507;
	case EHOSTDOWN:
	case ECONNRESET:
	case ETIMEDOUT:
	case EPIPE:
	case ENOTCONN:
		return 502;
	default:
		return 500;
	}
}

void dp_reply_agent_error(http_req *r, int err, const char *type, const char *msg, const char *path)
{
	int status = status_for(err);

	if (http_req_replied(r))
		return;
	if (status == 502) {
		http_reply_error(r, 502, "ConnectionError",
				 "the sandbox's agent cannot be reached%s%s",
				 msg && *msg ? ": " : "", msg ? msg : "");
		return;
	}
	if (err == -ENOENT && strcmp(type, "WriteError")) {
		http_reply_error(r, 404, "FileNotFound", "file '%s' not found", path);
		return;
	}
	if (msg && !strncmp(msg, "agent: ", 7))
		msg += 7;
	if (msg && *msg)
		http_reply_error(r, status, type, "%s", msg);
	else
		http_reply_error(r, status, type, "%s: %s", path, strerror(-err));
}

int dp_query_path(http_req *r, char *buf, size_t len)
{
	int n = http_req_query(r, "path", buf, len);

	if (n == -ENOENT)
		return http_reply_error(r, 400, "InvalidRequest",
					"the query parameter 'path' is required"),
		       -EINVAL;
	if (n < 0 || !dp_path_valid(buf) || memchr(buf, 0, (size_t)n))
		return http_reply_error(r, 400, "InvalidRequest",
					"the query parameter 'path' must be an absolute path of at "
					"most %d bytes",
					DP_PATH_MAX),
		       -EINVAL;
	return 0;
}

static void dp_on_request(void *ud, http_req *r, enum api_dp_op op, const struct sbxd_dp_box *box,
			  const struct sbxd_principal *who)
{
	struct dp *d = ud;

	(void)who;
	if (dp_init_loop(d, r) < 0) {
		http_reply_error(r, 503, "ServiceUnavailable", "sbxd is shutting down");
		return;
	}
	switch (op) {
	case DP_UPLOAD:
		dp_upload_begin(d, r, box);
		return;
	case DP_DOWNLOAD:
		dp_download(d, r, box);
		return;
	case DP_EXECUTE:
	case DP_GLOB:
	case DP_GREP:
		return; /* their JSON body comes to dp_on_body */
	case DP_EXECUTE_WS:
	case API_DP_OP_COUNT:
	case API_DP_OP_INVALID:
		break;
	}
	http_reply_error(r, 400, "InvalidRequest",
			 "this endpoint takes a WebSocket upgrade (GET with Upgrade: websocket)");
}

static void dp_on_body(void *ud, http_req *r, enum api_dp_op op, const struct sbxd_dp_box *box,
		       const struct sbxd_principal *who)
{
	struct dp *d = ud;

	if (http_req_replied(r))
		return;
	switch (op) {
	case DP_EXECUTE:
		dp_exec_http(d, r, box, who ? who->key_name : "");
		return;
	case DP_GLOB:
		dp_search(d, r, box, false);
		return;
	case DP_GREP:
		dp_search(d, r, box, true);
		return;
	case DP_UPLOAD:
	case DP_DOWNLOAD:
	case DP_EXECUTE_WS:
	case API_DP_OP_COUNT:
	case API_DP_OP_INVALID:
		break;
	}
	http_reply_error(r, 500, "InternalError", "the data plane did not answer this request");
}

static int dp_on_upgrade(void *ud, http_req *r, const struct sbxd_dp_box *box,
			 const struct sbxd_principal *who, const struct http_ws_ops **ret_ops,
			 void **ret_ud)
{
	return dp_ws_upgrade(ud, r, box, who ? who->key_name : "", ret_ops, ret_ud);
}

const struct sbxd_dataplane_ops dp_dataplane_ops = {
    .on_request = dp_on_request,
    .on_body = dp_on_body,
    .on_upgrade = dp_on_upgrade,
    .sync_fs = dp_sync_fs,
    .release_box = dp_release_box,
    .box_busy = dp_box_busy,
};
