/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_ws.c - the WebSocket sessions of {dataplane_url}/execute/ws
 * (langsmith-wire.md §6).
 *
 * A session binds to one command with its first execute or reconnect
 * frame; input, close_stdin and kill that arrive before that (the client
 * may send close_stdin ahead of reconnect) wait and are applied once bound.
 *
 * Writing: one JSON text frame per step, produced when lws says the socket
 * can take it (on_writeable): "started", then stdout/stderr frames straight
 * from the command's buffers in arrival order - each frame is whole UTF-8
 * characters, its offset the byte offset of its first byte - then "exit"
 * (or the "error" the client maps to CommandTimeoutError). The session's
 * offsets advance only when lws took a frame, and only then does the
 * command acknowledge the agent: a slow reader slows its command.
 *
 * Reading: frames are reassembled up to DP_WS_IN_MAX. Input the agent
 * cannot take yet (its stdin window is full) stays here, and the session
 * stops reading the socket until it is taken.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/err.h"
#include "sbxd/dataplane/dp_int.h"
#include "sbxd/common/metrics.h"
#include "sbxd/dataplane/parse/dp_utf8.h"
#include "base/log.h"

#define WS_SNDBUF (512 * 1024) /* bytes lost with a dropped socket stay below the ring */

static void ws_fatal(struct dp_ws *w, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ws_fatal(struct dp_ws *w, const char *type, const char *fmt, ...)
{
	va_list ap;

	if (w->has_err || w->want_close)
		return;
	sbxd_metrics_count_error(type);
	snprintf(w->err_type, sizeof(w->err_type), "%s", type);
	va_start(ap, fmt);
	vsnprintf(w->err_msg, sizeof(w->err_msg), fmt, ap);
	va_end(ap);
	w->has_err = true;
	dp_ws_wake(w);
}

void dp_ws_wake(struct dp_ws *w)
{
	if (w->wsi)
		lws_callback_on_writable(w->wsi);
}

static void linger_cb(lws_sorted_usec_list_t *sul)
{
	struct dp_ws *w = lws_container_of(sul, struct dp_ws, sul);

	w->want_close = true;
	dp_ws_wake(w);
}

void dp_ws_cmd_gone(struct dp_ws *w, const char *type, const char *msg)
{
	w->cmd = NULL;
	if (!w->sent_end)
		ws_fatal(w, type, "%s", msg);
}

/* ---- stdin ---- */

static void ws_pause(struct dp_ws *w, bool pause)
{
	if (w->rx_paused == pause || !w->wsi)
		return;
	w->rx_paused = pause;
	lws_rx_flow_control(w->wsi, pause ? 0 : 1);
}

void dp_ws_stdin_ready(struct dp_ws *w)
{
	struct dp_cmd *c = w->cmd;
	ssize_t r;

	if (!c)
		return;
	while (w->in_off < w->in_len) {
		r = dp_cmd_write_stdin(c, w->in + w->in_off, w->in_len - w->in_off);
		if (r == -EAGAIN) {
			ws_pause(w, true);
			return;
		}
		if (r < 0) {
			log_debug_f(LOG_FIELDS({"sandbox", w->box->name}, {"command", c->id}),
				    "input dropped: %s", strerror((int)-r));
			break;
		}
		w->in_off += (size_t)r;
	}
	w->in_len = w->in_off = 0;
	if (w->in_close) {
		if (dp_cmd_close_stdin(c) == -EAGAIN) {
			ws_pause(w, true);
			return;
		}
		w->in_close = false;
	}
	ws_pause(w, false);
}

static int ws_queue_input(struct dp_ws *w, const char *data, size_t len)
{
	char *n;

	if (w->in_close)
		return 0; /* after close_stdin: nothing more goes in */
	if (w->in_off > 0 && w->in_off == w->in_len)
		w->in_len = w->in_off = 0;
	if (w->in_len + len > 2 * DP_WS_IN_MAX)
		return -ENOBUFS;
	n = realloc(w->in, w->in_len + len + 1);
	if (!n)
		return -ENOMEM;
	w->in = n;
	memcpy(w->in + w->in_len, data, len);
	w->in_len += len;
	return 0;
}

/* ---- binding to a command ---- */

static void ws_bind(struct dp_ws *w, struct dp_cmd *c, const uint64_t from[2])
{
	lws_sul_cancel(&w->sul);
	dp_cmd_add_client(c, w, from);
	if (w->kill_pending) {
		w->kill_pending = false;
		dp_cmd_kill(c);
	}
	if (w->rows && w->cols)
		dp_cmd_resize(c, w->rows, w->cols);
	dp_ws_stdin_ready(w);
}

/* The command id from the store when this box does not hold it. */
static struct dp_cmd *ws_restore(struct dp_ws *w, const char *id, bool reconnect)
{
	struct dp_cmd *c = NULL;
	int r = dp_cmd_restore(w->box, id, &c);

	if (r == 0)
		return c;
	if (r == -ENOENT && !reconnect)
		return NULL; /* execute: create it */
	if (r == -ENOENT)
		ws_fatal(w, "CommandNotFound", "command '%s' not found", id);
	else if (r == -ESTALE)
		ws_fatal(w, "SessionExpired", "command '%s' has expired", id);
	else if (r == -EMFILE)
		ws_fatal(w, "CommandError", "too many commands are kept in this sandbox");
	else
		ws_fatal(w, "CommandError", "cannot look command '%s' up", id);
	return NULL;
}

static void ws_execute(struct dp_ws *w, struct dp_exec_params *p)
{
	static const uint64_t zero[2] = {0, 0};
	struct dp_cmd *c = NULL;
	int r;

	if (p->command_id) {
		c = dp_cmd_find(w->box, p->command_id);
		if (!c) {
			c = ws_restore(w, p->command_id, false);
			if (w->has_err)
				return;
		}
	}
	if (!c) {
		err_clear();
		r = dp_cmd_start(w->box, p, p->command_id, w->who, &c);
		if (r == -EEXIST)
			c = ws_restore(w, p->command_id, true);
		else if (r < 0)
			ws_fatal(w, r == -EINVAL ? "InvalidRequest" : "CommandError", "%s",
				 err_msg_or(r));
		if (!c)
			return;
		log_debug_f(LOG_FIELDS({"sandbox", w->box->name}, {"command", c->id}),
			    "exec: %.200s", p->command);
	}
	/* get-or-create: a known command replays from the start */
	ws_bind(w, c, zero);
}

static void ws_reconnect(struct dp_ws *w, const struct dp_msg *m)
{
	struct dp_cmd *c = dp_cmd_find(w->box, m->command_id);

	if (!c)
		c = ws_restore(w, m->command_id, true);
	if (c)
		ws_bind(w, c, m->offsets);
}

static void ws_frame(struct dp_ws *w, const char *buf, size_t len)
{
	struct dp_msg m;
	int r;

	err_clear();
	r = dp_msg_parse(buf, len, &m);
	if (r < 0) {
		if (!w->cmd)
			ws_fatal(w, "InvalidRequest", "%s", err_msg_or(r));
		else
			log_debug_f(LOG_FIELDS({"sandbox", w->box->name}), "bad frame ignored: %s",
				    err_msg_or(r));
		return;
	}
	switch (m.type) {
	case DP_MSG_EXECUTE:
		if (!w->cmd && !w->has_err)
			ws_execute(w, &m.exec);
		break;
	case DP_MSG_RECONNECT:
		if (!w->cmd && !w->has_err)
			ws_reconnect(w, &m);
		break;
	case DP_MSG_INPUT:
		if (ws_queue_input(w, m.data, m.data_len) < 0)
			ws_fatal(w, "CommandError", "too much input at once");
		else
			dp_ws_stdin_ready(w);
		break;
	case DP_MSG_CLOSE_STDIN:
		w->in_close = true;
		dp_ws_stdin_ready(w);
		break;
	case DP_MSG_KILL:
		if (w->cmd)
			dp_cmd_kill(w->cmd);
		else
			w->kill_pending = true;
		break;
	case DP_MSG_RESIZE:
		w->rows = m.rows;
		w->cols = m.cols;
		if (w->cmd)
			dp_cmd_resize(w->cmd, m.rows, m.cols);
		break;
	case DP_MSG_IGNORED:
	case DP_MSG_TYPE_COUNT:
		break;
	}
	dp_msg_release(&m);
}

/* ---- writing ---- */

static int ws_send(struct dp_ws *w, size_t len)
{
	if (lws_write(w->wsi, w->obuf + LWS_PRE, len, LWS_WRITE_TEXT) < (int)len)
		return -1;
	return 1;
}

static int ws_send_json(struct dp_ws *w, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	size_t n = s ? strlen(s) : 0;
	int r;

	json_decref(j);
	if (!s || n > DP_WS_MSG_MAX) {
		free(s);
		return -1;
	}
	memcpy(w->obuf + LWS_PRE, s, n);
	free(s);
	r = ws_send(w, n);
	return r;
}

static int ws_send_error(struct dp_ws *w, const char *type, char *msg)
{
	dp_utf8_sanitize(msg, strlen(msg));
	return ws_send_json(
	    w, json_pack("{s:s, s:s, s:s}", "type", "error", "error_type", type, "error", msg));
}

/* One stdout/stderr frame if a stream has something for this session:
 * 1 sent, 0 nothing to send, -1 failed. */
static int ws_send_output(struct dp_ws *w, struct dp_cmd *c)
{
	size_t n[2] = {0, 0}, hdr, olen, took;
	uint64_t seq[2] = {UINT64_MAX, UINT64_MAX};
	char *p = (char *)w->obuf + LWS_PRE;
	int order[2], s;

	for (s = 0; s < 2; s++)
		if (w->next_off[s] >= c->out[s].base && w->next_off[s] < c->out[s].end)
			n[s] = 1;
	order[0] = n[1] && !n[0] ? 1 : 0;
	if (n[0] && n[1]) { /* both have data: the one that came first goes first */
		uint8_t probe;

		dp_outbuf_peek(&c->out[0], w->next_off[0], &probe, 1, &seq[0]);
		dp_outbuf_peek(&c->out[1], w->next_off[1], &probe, 1, &seq[1]);
		order[0] = seq[1] < seq[0] ? 1 : 0;
	}
	order[1] = !order[0];
	for (int i = 0; i < 2; i++) {
		uint64_t sq;
		bool final;

		s = order[i];
		if (!n[s])
			continue;
		/* at least 4 bytes: one whole UTF-8 character even when
		 * the chunk holding next_off ends inside it */
		n[s] = dp_outbuf_peek_min(&c->out[s], w->next_off[s], w->scratch,
					  DP_WS_MSG_MAX - 128, 4, &sq);
		final = dp_cmd_stream_done(c, s) && w->next_off[s] + n[s] >= c->out[s].end;
		hdr = (size_t)snprintf(p, 64, "{\"type\":\"%s\",\"data\":\"",
				       s ? "stderr" : "stdout");
		took = dp_utf8_json_escape(w->scratch, n[s], final, p + hdr,
					   DP_WS_MSG_MAX - hdr - 64, &olen);
		if (!took)
			continue; /* only part of a character so far */
		olen += hdr;
		olen +=
		    (size_t)snprintf(p + olen, 64, "\",\"offset\":%" PRIu64 "}", w->next_off[s]);
		if (ws_send(w, olen) < 0)
			return -1;
		w->next_off[s] += took;
		dp_cmd_progress(c);
		return 1;
	}
	return 0;
}

static int ws_write_one(struct dp_ws *w)
{
	struct dp_cmd *c = w->cmd;
	char msg[160];

	if (w->has_err) {
		w->has_err = false;
		w->want_close = true;
		lws_callback_on_writable(w->wsi);
		return ws_send_error(w, w->err_type, w->err_msg);
	}
	if (w->want_close) {
		lws_close_reason(w->wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}
	if (!c || w->sent_end)
		return 0;
	if (c->state == DP_CMD_FAILED && !w->sent_started) {
		ws_fatal(w, c->err_type, "%s", c->err_msg);
		return ws_write_one(w);
	}
	if (!w->sent_started) {
		if (c->state == DP_CMD_STARTING)
			return 0;
		w->sent_started = true;
		if (c->pid > 0)
			return ws_send_json(w, json_pack("{s:s, s:s, s:i}", "type", "started",
							 "command_id", c->id, "pid", c->pid));
		return ws_send_json(
		    w, json_pack("{s:s, s:s}", "type", "started", "command_id", c->id));
	}
	switch (ws_send_output(w, c)) {
	case 1:
		return 1;
	case 0:
		break;
	default:
		return -1;
	}
	if (c->state == DP_CMD_FAILED) {
		ws_fatal(w, c->err_type, "%s", c->err_msg);
		return ws_write_one(w);
	}
	if (c->state != DP_CMD_EXITED || w->next_off[0] < c->total[0] ||
	    w->next_off[1] < c->total[1])
		return 0;
	w->sent_end = true;
	dp_schedule(w->dp, &w->sul, linger_cb, DP_LINGER_MS);
	if (c->timed_out) {
		snprintf(msg, sizeof(msg), "command timed out after %" PRId64 " seconds",
			 c->timeout_s);
		return ws_send_error(w, "CommandTimeout", msg);
	}
	return ws_send_json(w, json_pack("{s:s, s:i}", "type", "exit", "exit_code", c->exit_code));
}

/* ---- lws events ---- */

static void open_timeout_cb(lws_sorted_usec_list_t *sul)
{
	struct dp_ws *w = lws_container_of(sul, struct dp_ws, sul);

	if (!w->cmd)
		ws_fatal(w, "InvalidRequest", "no execute or reconnect frame within %d s",
			 DP_OPEN_TIMEOUT_MS / 1000);
}

static int ws_on_open(struct lws *wsi, void *ud)
{
	struct dp_ws *w = ud;
	int fd = lws_get_socket_fd(wsi), sz = WS_SNDBUF;

	w->wsi = wsi;
	if (fd >= 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	dp_schedule(w->dp, &w->sul, open_timeout_cb, DP_OPEN_TIMEOUT_MS);
	return 0;
}

static int ws_on_message(struct lws *wsi, void *ud, const void *data, size_t len, bool first,
			 bool final, bool binary)
{
	struct dp_ws *w = ud;
	char *n;

	(void)wsi;
	(void)binary; /* JSON in a binary frame works too (the client does toString()) */
	if (first && final) {
		ws_frame(w, data, len);
		return 0;
	}
	if (first)
		w->rx_len = 0;
	if (w->rx_len + len > DP_WS_IN_MAX) {
		ws_fatal(w, "InvalidRequest", "a frame is larger than %d bytes", DP_WS_IN_MAX);
		return 0;
	}
	n = realloc(w->rx, w->rx_len + len + 1);
	if (!n)
		return -1;
	w->rx = n;
	memcpy(w->rx + w->rx_len, data, len);
	w->rx_len += len;
	if (final) {
		ws_frame(w, w->rx, w->rx_len);
		free(w->rx);
		w->rx = NULL;
		w->rx_len = 0;
	}
	return 0;
}

static int ws_on_writeable(struct lws *wsi, void *ud)
{
	struct dp_ws *w = ud;

	for (int i = 0; i < 16; i++) {
		int r = ws_write_one(w);

		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		if (lws_send_pipe_choked(wsi))
			break;
	}
	lws_callback_on_writable(wsi);
	return 0;
}

static void ws_on_close(struct lws *wsi, void *ud)
{
	struct dp_ws *w = ud;

	(void)wsi;
	w->wsi = NULL;
	if (!w->dp->down)
		lws_sul_cancel(&w->sul);
	if (w->cmd)
		log_debug_f(LOG_FIELDS({"sandbox", w->box->name}, {"command", w->cmd->id}),
			    "session closed at %" PRIu64 "/%" PRIu64 " bytes%s", w->next_off[0],
			    w->next_off[1], w->sent_end ? " after the exit" : "");
	if (w->cmd)
		dp_cmd_remove_client(w->cmd, w, w->sent_end);
	dp_box_unref(w->box);
	free(w->rx);
	free(w->in);
	free(w->scratch);
	free(w->obuf);
	free(w);
}

static const struct http_ws_ops ws_ops = {
    .on_open = ws_on_open,
    .on_message = ws_on_message,
    .on_writeable = ws_on_writeable,
    .on_close = ws_on_close,
};

int dp_ws_upgrade(struct dp *d, http_req *r, const struct sbxd_dp_box *box, const char *who,
		  const struct http_ws_ops **ret_ops, void **ret_ud)
{
	struct dp_ws *w;
	int ret = dp_init_loop(d, r);

	if (ret < 0)
		return http_reply_error(r, 503, "ServiceUnavailable", "sbxd is shutting down"), ret;
	w = calloc(1, sizeof(*w));
	if (w) {
		w->dp = d;
		snprintf(w->who, sizeof(w->who), "%s", who ? who : "");
		w->scratch = malloc(DP_WS_MSG_MAX);
		w->obuf = malloc(LWS_PRE + DP_WS_MSG_MAX);
		w->box = dp_box_get(d, box);
	}
	if (!w || !w->scratch || !w->obuf || !w->box) {
		if (w) {
			dp_box_unref(w->box);
			free(w->scratch);
			free(w->obuf);
			free(w);
		}
		return http_reply_error(r, 500, "InternalError", "out of memory"), -ENOMEM;
	}
	*ret_ops = &ws_ops;
	*ret_ud = w;
	return 0;
}
