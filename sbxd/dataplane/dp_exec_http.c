/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_exec_http.c - POST {dataplane_url}/execute: run a command to its end
 * and answer {"stdout", "stderr", "exit_code"} (langsmith-wire.md §5.2).
 *
 * The client uses it only without the `ws` package; it is not
 * reconnectable, so the command is not recorded and the agent forgets it
 * at once. Output is kept up to DP_HTTP_OUT_MAX bytes per stream (the rest
 * is counted and dropped, and a note says so on stderr); invalid UTF-8
 * becomes '?'. A command that outlives its timeout is killed and answered
 * with 408 CommandTimeout. A client that goes away kills its command.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "sbxd/dataplane/dp_int.h"
#include "sbxd/common/metrics.h"
#include "sbxd/dataplane/parse/dp_utf8.h"
#include "base/log.h"

#define DP_HTTP_OUT_MAX (8u << 20)

struct hx {
	struct dp_box *box;
	http_req *r;
	agent_cmd *ac;
	int64_t timeout_s;
	char id[37]; /* made up: the audit log's command id */
	char *out[2];
	size_t len[2];
	uint64_t dropped[2];
	bool finished;
};

static void hx_free(void *p)
{
	struct hx *h = p;

	if (!h)
		return;
	if (h->ac && !h->finished && agent_cmd_state(h->ac) == AGENT_CMD_RUNNING) {
		(void)agent_cmd_signal(h->ac, SIGKILL); /* the client left */
		dp_box_flush(h->box);
		dp_audit_end(h->box, h->id, STORE_AUDIT_NO_CODE, "killed");
	}
	h->ac = agent_cmd_free(h->ac);
	dp_box_unref(h->box);
	free(h->out[0]);
	free(h->out[1]);
	free(h);
}

static void hx_output(agent_cmd *ac, int stream, uint64_t off, const uint8_t *data, size_t len,
		      void *ud)
{
	struct hx *h = ud;
	int s = stream == PROTO_STDERR;
	size_t take = len;
	char *n;

	(void)ac;
	(void)off;
	if (ac)
		sbxd_metrics_add_bytes(s ? SBXD_BYTES_STDERR : SBXD_BYTES_STDOUT, len);
	if (h->len[s] + take > DP_HTTP_OUT_MAX)
		take = DP_HTTP_OUT_MAX - h->len[s];
	h->dropped[s] += len - take;
	if (!take)
		return;
	n = realloc(h->out[s], h->len[s] + take + 1);
	if (!n) {
		h->dropped[s] += take;
		return;
	}
	h->out[s] = n;
	memcpy(n + h->len[s], data, take);
	h->len[s] += take;
}

static json_t *hx_string(struct hx *h, int s)
{
	char note[128];
	json_t *j;

	if (h->dropped[s]) {
		int n = snprintf(note, sizeof(note), "\n[sbxd: %" PRIu64 " more bytes dropped]\n",
				 h->dropped[s]);

		hx_output(NULL, PROTO_STDERR, 0, (const uint8_t *)note, (size_t)n, h);
	}
	if (!h->len[s])
		return json_string("");
	dp_utf8_sanitize(h->out[s], h->len[s]);
	j = json_stringn(h->out[s], h->len[s]);
	return j ? j : json_string("");
}

static void hx_exit(agent_cmd *ac, const struct proto_exit *e, void *ud)
{
	struct hx *h = ud;
	json_t *out, *err;

	(void)ac;
	h->finished = true;
	dp_audit_end(h->box, h->id, e->signal ? 128 + e->signal : e->code,
		     e->timed_out ? "timeout" : "exited");
	if (e->timed_out) {
		http_reply_error(h->r, 408, "CommandTimeout",
				 "command timed out after %" PRId64 " seconds", h->timeout_s);
		return;
	}
	out = hx_string(h, 0);
	err = hx_string(h, 1);
	http_reply_json(h->r, 200,
			json_pack("{s:o, s:o, s:i}", "stdout", out, "stderr", err, "exit_code",
				  e->signal ? 128 + e->signal : e->code));
}

static void hx_error(agent_cmd *ac, int err, const char *msg, void *ud)
{
	struct hx *h = ud;

	(void)ac;
	h->finished = true;
	dp_audit_end(h->box, h->id, STORE_AUDIT_NO_CODE, "failed");
	if (err == -ECONNRESET || err == -ETIMEDOUT || err == -EPIPE)
		http_reply_error(h->r, 502, "ConnectionError",
				 "the connection to the sandbox's agent was lost: %s", msg);
	else
		http_reply_error(h->r, 400, "CommandError", "%s",
				 !strncmp(msg, "agent: ", 7) ? msg + 7 : msg);
}

static const struct agent_cmd_ops hx_ops = {
    .on_output = hx_output,
    .on_exit = hx_exit,
    .on_error = hx_error,
};

void dp_exec_http(struct dp *d, http_req *r, const struct sbxd_dp_box *box, const char *who)
{
	struct dp_exec_params p = {0};
	struct dp_exec_argv a = {0};
	struct agent_exec_spec spec = {0};
	agent_client *ac;
	const char *body;
	struct hx *h;
	size_t len;
	int ret;

	body = http_req_body(r, &len);
	err_clear();
	if (dp_exec_parse_http(body, len, &p) < 0 || dp_exec_build(&p, box->run_config, &a) < 0) {
		http_reply_error(r, 400, "InvalidRequest", "%s",
				 err_msg()[0] ? err_msg() : "out of memory");
		goto out;
	}
	h = calloc(1, sizeof(*h));
	if (!h || !(h->box = dp_box_get(d, box))) {
		free(h);
		http_reply_error(r, 500, "InternalError", "out of memory");
		goto out;
	}
	h->r = r;
	h->timeout_s = p.timeout_s;
	http_req_set_data(r, h, hx_free); /* box is not valid after this */
	ret = dp_box_client(h->box, &ac);
	if (ret < 0) {
		dp_reply_agent_error(r, -EHOSTDOWN, "CommandError", NULL, "");
		goto out;
	}
	spec.argv = (const char *const *)a.argv;
	spec.env = (const char *const *)a.env;
	spec.cwd = a.cwd;
	spec.timeout_ms =
	    p.timeout_s > 0 && p.timeout_s < UINT32_MAX / 1000 ? (uint32_t)(p.timeout_s * 1000) : 0;
	spec.window = DP_EXEC_WINDOW;
	spec.keep_ms = 1000; /* not reconnectable: the agent may forget it soon */
	if (sbxd_uuid4(h->id) < 0)
		snprintf(h->id, sizeof(h->id), "http");
	dp_audit_begin(h->box, h->id, who, p.command, a.cwd);
	ret = agent_exec(ac, &spec, &hx_ops, h, &h->ac);
	if (ret < 0) {
		dp_audit_end(h->box, h->id, STORE_AUDIT_NO_CODE, "failed");
		http_reply_error(r, 400, "CommandError", "cannot start the command: %s",
				 agent_client_last_error(ac));
		goto out;
	}
	http_req_defer(r);
	dp_box_flush(h->box);
out:
	dp_exec_argv_release(&a);
	dp_exec_params_release(&p);
}
