/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_cmd.c - the commands of the WebSocket execute protocol.
 *
 * A dp_cmd is a command the agent runs, known by the client's command_id
 * (and in the store's commands table, so that a restarted sbxd can find
 * it again), with the WebSocket sessions attached to it. Its output lives
 * in the agent's ring (DP_EXEC_RING per stream, kept ttl_seconds after the
 * exit); sbxd holds only what is in flight to the sessions attached now:
 *
 *   - with sessions: the command is subscribed (EXEC, later ATTACH) with a
 *     window of DP_EXEC_WINDOW and manual acknowledgement; output lands in
 *     out[] and is acknowledged once every session has written it;
 *   - without: the buffers are released and output that still arrives is
 *     dropped unacknowledged, so the command stops once the agent's ring
 *     is full. The next session re-attaches from its own offsets and the
 *     agent replays from its ring. A command killed with nobody attached
 *     is drained instead (acknowledged as it comes) so that its exit
 *     arrives.
 *
 * Acknowledgements stay one byte behind what was sent: the agent client
 * sends FORGET by itself once everything up to the exit totals is
 * acknowledged, and a command must stay replayable until its TTL ends.
 * Re-attaching therefore asks for one byte before the offset wanted, and
 * that byte is trimmed.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "sbxd/dataplane/dp_int.h"
#include "sbxd/common/metrics.h"
#include "base/log.h"
#include "sbxd/common/key.h"

static const char *const cmd_state_names[DP_CMD_STATE_COUNT] = {
    [DP_CMD_STARTING] = "starting",
    [DP_CMD_RUNNING] = "running",
    [DP_CMD_EXITED] = "exited",
    [DP_CMD_FAILED] = "failed",
};

const char *dp_cmd_state_to_string(enum dp_cmd_state s)
{
	return (unsigned)s < DP_CMD_STATE_COUNT ? cmd_state_names[s] : "unknown";
}

static void cmd_enter_state(struct dp_cmd *c, enum dp_cmd_state s)
{
	if (c->state != s)
		log_debug_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}), "%s -> %s",
			    dp_cmd_state_to_string(c->state), dp_cmd_state_to_string(s));
	c->state = s;
}

void dp_audit_begin(struct dp_box *b, const char *id, const char *who, const char *command,
		    const char *cwd)
{
	struct store_audit a = {
	    .box_id = b->id,
	    .box_name = b->name,
	    .key_name = (char *)who,
	    .command_id = (char *)id,
	    .command = (char *)command,
	    .cwd = (char *)cwd,
	};
	int r = store_audit_begin(b->dp->st, &a);

	if (r < 0)
		log_warn_f(LOG_FIELDS({"sandbox", b->name}, {"command", id}),
			   "cannot write the audit log: %s, ignoring",
			   r == -EIO ? err_msg() : strerror(-r));
}

void dp_audit_end(struct dp_box *b, const char *id, int exit_code, const char *outcome)
{
	int r = store_audit_finish(b->dp->st, b->id, id, exit_code, outcome);

	if (r < 0 && r != -ENOENT)
		log_warn_f(LOG_FIELDS({"sandbox", b->name}, {"command", id}),
			   "cannot write the audit log: %s, ignoring",
			   r == -EIO ? err_msg() : strerror(-r));
}

static void cmd_store(struct dp_cmd *c, const char *state, int code)
{
	int r = store_cmd_update(c->box->dp->st, c->box->id, c->id, state, c->agent_id, code);

	if (r < 0)
		log_warn_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}),
			   "cannot record state %s: %s, ignoring", state,
			   r == -EIO ? err_msg() : strerror(-r));
	/* the audit log sees a command's end once */
	if (!strcmp(state, "exited"))
		dp_audit_end(c->box, c->id, code,
			     c->timed_out   ? "timeout"
			     : c->kill_sent ? "killed"
					    : "exited");
	else if (!strcmp(state, "failed"))
		dp_audit_end(c->box, c->id, STORE_AUDIT_NO_CODE, "failed");
}

static void wake_all(struct dp_cmd *c)
{
	for (struct dp_ws *w = c->clients; w; w = w->next)
		dp_ws_wake(w);
}

struct dp_cmd *dp_cmd_find(struct dp_box *b, const char *id)
{
	for (struct dp_cmd *c = b->cmds; c; c = c->next)
		if (!strcmp(c->id, id))
			return c;
	return NULL;
}

static void cmd_fail(struct dp_cmd *c, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cmd_fail(struct dp_cmd *c, const char *type, const char *fmt, ...)
{
	va_list ap;

	if (c->state == DP_CMD_FAILED)
		return;
	snprintf(c->err_type, sizeof(c->err_type), "%s", type);
	va_start(ap, fmt);
	vsnprintf(c->err_msg, sizeof(c->err_msg), fmt, ap);
	va_end(ap);
	log_info_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}), "failed: %s",
		   c->err_msg);
	cmd_enter_state(c, DP_CMD_FAILED);
	cmd_store(c, "failed", -1);
	wake_all(c);
}

/* ---- agent callbacks ---- */

static void on_started(agent_cmd *ac, void *ud)
{
	struct dp_cmd *c = ud;
	uint64_t start[2];

	if (c->attaching) {
		c->attaching = false;
		agent_cmd_attach_start(ac, &start[0], &start[1]);
		for (int s = 0; s < 2; s++) {
			if (start[s] <= c->out[s].end)
				continue;
			log_warn_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}),
				   "%s bytes %" PRIu64 "..%" PRIu64
				   " are no longer retained by the agent: skipped",
				   s ? "stderr" : "stdout", c->out[s].end, start[s]);
			dp_outbuf_reset(&c->out[s], start[s]);
			for (struct dp_ws *w = c->clients; w; w = w->next)
				if (w->next_off[s] < start[s])
					w->next_off[s] = start[s];
		}
	} else {
		c->agent_id = agent_cmd_id(ac);
		c->pid = agent_cmd_pid(ac);
		sbxd_metrics_observe(SBXD_HIST_EXEC_START,
				     (double)(clock_mono_us() - c->start_us) / 1e6);
		cmd_enter_state(c, DP_CMD_RUNNING);
		cmd_store(c, "running", 0);
		log_debug_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}),
			    "started: agent cmd %" PRIu32 " pid %d", c->agent_id, c->pid);
	}
	if (c->kill_wanted) {
		c->kill_wanted = false;
		dp_cmd_kill(c);
	}
	for (struct dp_ws *w = c->clients; w; w = w->next) {
		dp_ws_wake(w);
		dp_ws_stdin_ready(w);
	}
}

static void on_output(agent_cmd *ac, int stream, uint64_t off, const uint8_t *data, size_t len,
		      void *ud)
{
	struct dp_cmd *c = ud;
	int s = stream == PROTO_STDERR;
	long r;

	sbxd_metrics_add_bytes(s ? SBXD_BYTES_STDERR : SBXD_BYTES_STDOUT, len);
	if (c->drain) {
		/* nobody reads: keep the agent going so that the exit arrives */
		if (off + len > 1)
			(void)agent_cmd_ack(ac, s ? PROTO_ACK_NONE : off + len - 1,
					    s ? off + len - 1 : PROTO_ACK_NONE);
		dp_box_flush(c->box);
		return;
	}
	if (c->detached || c->attaching)
		return; /* unacknowledged: the agent replays it to the next client */
	r = dp_outbuf_append(&c->out[s], off, data, len, ++c->seq, c->last_stream == s);
	if (r == -EPROTO) {
		/* cannot happen with a well-behaved agent: restart the stream */
		log_warn_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}),
			   "%s jumped from %" PRIu64 " to %" PRIu64, s ? "stderr" : "stdout",
			   c->out[s].end, off);
		dp_outbuf_reset(&c->out[s], off);
		r = dp_outbuf_append(&c->out[s], off, data, len, c->seq, false);
	}
	if (r < 0) {
		log_error_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}),
			    "cannot buffer output: %s", strerror((int)-r));
		return;
	}
	c->last_stream = s;
	wake_all(c);
}

static void ttl_cb(lws_sorted_usec_list_t *sul);

static void cmd_on_exit(agent_cmd *ac, const struct proto_exit *e, void *ud)
{
	struct dp_cmd *c = ud;

	(void)ac;
	c->total[0] = e->out_total;
	c->total[1] = e->err_total;
	c->timed_out = e->timed_out;
	c->exit_code = e->signal ? 128 + e->signal : e->code;
	if (c->state != DP_CMD_EXITED) {
		log_debug_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}),
			    "exited: code %d%s, %" PRIu64 "/%" PRIu64 " bytes", c->exit_code,
			    e->timed_out ? " (timed out)" : "", e->out_total, e->err_total);
		cmd_enter_state(c, DP_CMD_EXITED);
		cmd_store(c, "exited", c->exit_code);
		lws_sul_cancel(&c->idle_sul);
		if (c->ttl_s >= 0)
			dp_schedule(c->box->dp, &c->ttl_sul, ttl_cb, c->ttl_s * 1000);
	}
	c->drain = false;
	wake_all(c);
}

static void on_error(agent_cmd *ac, int err, const char *msg, void *ud)
{
	struct dp_cmd *c = ud;
	bool attaching = c->attaching;

	c->ac = agent_cmd_free(ac);
	c->attaching = false;
	if (err == -ECONNRESET || err == -EPIPE || err == -ETIMEDOUT || err == -ENOMEM) {
		/* the connection went away: re-attached when it is back */
		if (c->state == DP_CMD_STARTING)
			cmd_fail(c, "CommandError",
				 "the connection to the sandbox was lost while the command "
				 "started");
		return;
	}
	if (!attaching) {
		cmd_fail(c, "CommandError", "%s", msg && *msg ? msg : strerror(-err));
		return;
	}
	/* the agent no longer has the command */
	if (c->state == DP_CMD_EXITED || c->stored_exit != INT32_MIN) {
		if (c->state != DP_CMD_EXITED) {
			c->exit_code = c->stored_exit;
			cmd_enter_state(c, DP_CMD_EXITED);
		}
		/* what it had is all there is: the clients get the exit */
		log_warn_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}),
			   "the agent no longer retains its output: %s",
			   msg && *msg ? msg : strerror(-err));
		c->total[0] = c->out[0].end;
		c->total[1] = c->out[1].end;
		wake_all(c);
		return;
	}
	cmd_fail(c, "SessionExpired", "command '%s' is no longer available in the sandbox: %s",
		 c->id, msg && *msg ? msg : strerror(-err));
}

static void on_stdin_ready(agent_cmd *ac, void *ud)
{
	struct dp_cmd *c = ud;

	(void)ac;
	for (struct dp_ws *w = c->clients; w; w = w->next)
		dp_ws_stdin_ready(w);
}

static const struct agent_cmd_ops cmd_ops = {
    .on_started = on_started,
    .on_output = on_output,
    .on_exit = cmd_on_exit,
    .on_error = on_error,
    .on_stdin_ready = on_stdin_ready,
};

/* ---- subscription ---- */

/* (Re-)attach so that stream s continues at from[s] (where out[s] ends). */
static void cmd_subscribe(struct dp_cmd *c)
{
	agent_client *ac;
	uint64_t at[2];
	int r;

	if (!c->agent_id || c->box->dp->down)
		return;
	c->ac = agent_cmd_free(c->ac);
	c->attaching = false;
	if (dp_box_client(c->box, &ac) < 0)
		return; /* dp_cmds_conn_up() tries again */
	for (int s = 0; s < 2; s++)
		at[s] = c->out[s].end ? c->out[s].end - 1 : 0;
	r = agent_attach(ac, c->agent_id, at[0], at[1], DP_EXEC_WINDOW, true, &cmd_ops, c, &c->ac);
	if (r < 0) {
		log_warn_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}),
			   "cannot re-attach: %s", strerror(-r));
		return;
	}
	c->attaching = true;
	c->acked[0] = at[0];
	c->acked[1] = at[1];
	dp_box_flush(c->box);
}

void dp_cmds_conn_up(struct dp_box *b)
{
	for (struct dp_cmd *c = b->cmds; c; c = c->next) {
		if (c->ac || !c->agent_id)
			continue;
		if (c->state == DP_CMD_RUNNING || (c->state == DP_CMD_EXITED && c->clients))
			cmd_subscribe(c);
	}
}

bool dp_cmd_stream_done(const struct dp_cmd *c, int s)
{
	return c->state == DP_CMD_EXITED && c->out[s].end >= c->total[s];
}

/* ---- timers ---- */

static void idle_cb(lws_sorted_usec_list_t *sul)
{
	struct dp_cmd *c = lws_container_of(sul, struct dp_cmd, idle_sul);

	if (c->clients || c->state != DP_CMD_RUNNING)
		return;
	log_info_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}),
		   "killed: no client for %" PRId64 " s (idle_timeout)", c->idle_s);
	dp_cmd_kill(c);
}

static void forget_reply(agent_client *ac, int err, const struct proto_msg *m, void *ud)
{
	(void)ac;
	(void)err;
	(void)m;
	(void)ud;
}

static void ttl_cb(lws_sorted_usec_list_t *sul)
{
	struct dp_cmd *c = lws_container_of(sul, struct dp_cmd, ttl_sul);
	struct proto_msg m = {.type = PROTO_FORGET};
	agent_client *ac;

	if (c->clients) {
		dp_schedule(c->box->dp, &c->ttl_sul, ttl_cb, 10000);
		return;
	}
	log_debug_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}),
		    "expired (ttl %" PRId64 " s)", c->ttl_s);
	if (c->agent_id && c->box->state == DP_CONN_UP && dp_box_client(c->box, &ac) == 0) {
		m.u.forget.cmd = c->agent_id;
		(void)agent_request(ac, &m, forget_reply, NULL, NULL);
		dp_box_flush(c->box);
	}
	cmd_store(c, "expired", c->exit_code);
	dp_cmd_free(c);
}

/* ---- life ---- */

static struct dp_cmd *cmd_new(struct dp_box *b, const char *id)
{
	struct dp_cmd *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->box = b;
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->pid = -1;
	c->last_stream = -1;
	c->stored_exit = INT32_MIN;
	c->timeout_s = DP_DEFAULT_TIMEOUT_S;
	c->idle_s = DP_DEFAULT_IDLE_S;
	c->ttl_s = DP_DEFAULT_TTL_S;
	dp_outbuf_init(&c->out[0], DP_EXEC_WINDOW, 0);
	dp_outbuf_init(&c->out[1], DP_EXEC_WINDOW, 0);
	c->next = b->cmds;
	b->cmds = c;
	b->ncmds++;
	return c;
}

void dp_cmd_free(struct dp_cmd *c)
{
	struct dp_box *b = c->box;
	struct dp_ws *w;

	for (struct dp_cmd **pp = &b->cmds; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			b->ncmds--;
			break;
		}
	while ((w = c->clients)) {
		c->clients = w->next;
		w->next = NULL;
		dp_ws_cmd_gone(w, c->state == DP_CMD_FAILED ? c->err_type : "SessionExpired",
			       c->state == DP_CMD_FAILED ? c->err_msg
							 : "the command's session ended");
	}
	if (!b->dp->down) {
		lws_sul_cancel(&c->idle_sul);
		lws_sul_cancel(&c->ttl_sul);
	}
	c->ac = agent_cmd_free(c->ac);
	dp_outbuf_release(&c->out[0]);
	dp_outbuf_release(&c->out[1]);
	free(c);
}

/* Make room: drop the oldest finished command nobody is attached to. */
static bool evict_one(struct dp_box *b)
{
	struct dp_cmd *victim = NULL;

	for (struct dp_cmd *c = b->cmds; c; c = c->next)
		if (!c->clients && (c->state == DP_CMD_EXITED || c->state == DP_CMD_FAILED))
			victim = c; /* the list is newest first: the last is the oldest */
	if (!victim)
		return false;
	if (victim->state == DP_CMD_EXITED)
		cmd_store(victim, "expired", victim->exit_code);
	dp_cmd_free(victim);
	return true;
}

static uint32_t ms_u32(int64_t s)
{
	if (s < 0 || s > UINT32_MAX / 1000)
		return UINT32_MAX;
	return (uint32_t)(s * 1000);
}

int dp_cmd_start(struct dp_box *b, const struct dp_exec_params *p, const char *id, const char *who,
		 struct dp_cmd **ret)
{
	struct dp_exec_argv a = {0};
	struct agent_exec_spec spec = {0};
	struct store_cmd row = {0};
	char uuid[37];
	agent_client *ac;
	struct dp_cmd *c;
	int r;

	if (!id) {
		if (sbxd_uuid4(uuid) < 0)
			return -EIO;
		id = uuid;
	}
	if (b->ncmds >= DP_MAX_CMDS && !evict_one(b)) {
		return err_set(-EMFILE, "too many commands are running in this sandbox (%d)",
			       DP_MAX_CMDS);
	}
	r = dp_exec_build(p, b->run_config, &a);
	if (r < 0)
		return r;
	r = dp_box_client(b, &ac);
	if (r < 0) {
		dp_exec_argv_release(&a);
		return err_set(r, "cannot reach the sandbox's agent");
	}
	row.id = (char *)id;
	snprintf(row.box_id, sizeof(row.box_id), "%s", b->id);
	row.state = (char *)"starting";
	row.command = p->command;
	r = store_cmd_insert(b->dp->st, &row);
	if (r < 0) {
		dp_exec_argv_release(&a);
		if (r == -EEXIST)
			return r; /* the store knows it: the caller restores it */
		return err_set(r, "cannot record the command");
	}
	c = cmd_new(b, id);
	if (!c) {
		dp_exec_argv_release(&a);
		return -ENOMEM;
	}
	c->start_us = clock_mono_us();
	dp_audit_begin(b, id, who, p->command, a.cwd);
	c->pty = p->pty;
	c->stdin_open = p->pty || !p->close_stdin;
	c->timeout_s = p->timeout_s;
	c->idle_s = p->idle_timeout_s;
	c->ttl_s = p->ttl_s;
	c->kill_on_disconnect = p->kill_on_disconnect;

	spec.argv = (const char *const *)a.argv;
	spec.env = (const char *const *)a.env;
	spec.cwd = a.cwd;
	spec.pty = p->pty;
	spec.rows = (uint16_t)p->rows;
	spec.cols = (uint16_t)p->cols;
	spec.stdin_open = c->stdin_open;
	spec.timeout_ms = p->timeout_s > 0 ? ms_u32(p->timeout_s) : 0;
	spec.window = DP_EXEC_WINDOW;
	spec.ring = DP_EXEC_RING;
	/* a little longer than our TTL, which starts when we see the exit */
	spec.keep_ms = p->ttl_s < 0 ? UINT32_MAX : ms_u32(p->ttl_s + 60);
	spec.manual_ack = true;
	r = agent_exec(ac, &spec, &cmd_ops, c, &c->ac);
	dp_exec_argv_release(&a);
	if (r < 0) {
		err_set(0, "cannot start the command: %s", agent_client_last_error(ac));
		cmd_store(c, "failed", -1);
		dp_cmd_free(c);
		return r;
	}
	dp_box_flush(b);
	*ret = c;
	return 0;
}

int dp_cmd_restore(struct dp_box *b, const char *id, struct dp_cmd **ret)
{
	struct store_cmd row;
	struct dp_cmd *c;
	int r;

	r = store_cmd_get(b->dp->st, b->id, id, &row);
	if (r < 0)
		return r == -ENOENT ? -ENOENT : -EIO;
	if (!row.agent_cmd_id || !strcmp(row.state, "expired") || !strcmp(row.state, "failed") ||
	    !strcmp(row.state, "starting")) {
		store_cmd_release(&row);
		return -ESTALE;
	}
	if (b->ncmds >= DP_MAX_CMDS && !evict_one(b)) {
		store_cmd_release(&row);
		return -EMFILE;
	}
	c = cmd_new(b, id);
	if (!c) {
		store_cmd_release(&row);
		return -ENOMEM;
	}
	c->agent_id = row.agent_cmd_id;
	c->stdin_open = true;
	c->detached = true;
	if (!strcmp(row.state, "exited"))
		c->stored_exit = row.exit_code;
	cmd_enter_state(c, DP_CMD_RUNNING); /* until the agent says otherwise */
	store_cmd_release(&row);
	*ret = c;
	return 0;
}

/* ---- sessions ---- */

void dp_cmd_add_client(struct dp_cmd *c, struct dp_ws *w, const uint64_t from[2])
{
	bool need = c->detached || !c->ac;

	w->cmd = c;
	w->next = c->clients;
	c->clients = w;
	w->next_off[0] = from[0];
	w->next_off[1] = from[1];
	lws_sul_cancel(&c->idle_sul);
	for (int s = 0; s < 2; s++)
		if (from[s] < c->out[s].base)
			need = true;
	if (c->state == DP_CMD_EXITED && from[0] >= c->total[0] && from[1] >= c->total[1])
		need = false; /* it only needs the exit */
	if (c->state == DP_CMD_STARTING || c->state == DP_CMD_FAILED || !c->agent_id)
		need = false;
	if (need) {
		/* replay from the agent's ring, from the lowest offset wanted */
		for (int s = 0; s < 2; s++) {
			uint64_t lo = UINT64_MAX;

			for (struct dp_ws *x = c->clients; x; x = x->next)
				if (x->next_off[s] < lo)
					lo = x->next_off[s];
			dp_outbuf_reset(&c->out[s], lo);
		}
		c->detached = false;
		c->drain = false;
		cmd_subscribe(c);
	}
	dp_ws_wake(w);
}

void dp_cmd_remove_client(struct dp_cmd *c, struct dp_ws *w, bool saw_end)
{
	for (struct dp_ws **pp = &c->clients; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	w->next = NULL;
	w->cmd = NULL;
	if (c->clients) {
		dp_cmd_progress(c);
		return;
	}
	if (c->state == DP_CMD_FAILED) {
		dp_cmd_free(c);
		return;
	}
	if (c->state == DP_CMD_STARTING) {
		/* keep buffering (a window at most): the client retries the
		 * same execute when it lost the socket before "started" */
		if (c->kill_on_disconnect && !saw_end)
			c->kill_wanted = true;
		else if (c->idle_s >= 0)
			dp_schedule(c->box->dp, &c->idle_sul, idle_cb, c->idle_s * 1000);
		return;
	}
	/* nobody reads: let the agent's ring hold the output */
	c->detached = true;
	dp_outbuf_release(&c->out[0]);
	dp_outbuf_release(&c->out[1]);
	if (c->state != DP_CMD_RUNNING)
		return;
	if (c->kill_on_disconnect && !saw_end) {
		log_info_f(LOG_FIELDS({"sandbox", c->box->name}, {"command", c->id}),
			   "killed: its client disconnected (kill_on_disconnect)");
		dp_cmd_kill(c);
	} else if (c->idle_s >= 0) {
		dp_schedule(c->box->dp, &c->idle_sul, idle_cb, c->idle_s * 1000);
	}
}

void dp_cmd_progress(struct dp_cmd *c)
{
	uint64_t m[2], tgt[2];
	bool ack = false;

	if (!c->clients)
		return;
	for (int s = 0; s < 2; s++) {
		m[s] = UINT64_MAX;
		for (struct dp_ws *w = c->clients; w; w = w->next)
			if (w->next_off[s] < m[s])
				m[s] = w->next_off[s];
		if (m[s] > c->out[s].end)
			m[s] = c->out[s].end;
		dp_outbuf_drop(&c->out[s], m[s]);
		tgt[s] = m[s] ? m[s] - 1 : 0;
		if (tgt[s] > c->acked[s] &&
		    (tgt[s] - c->acked[s] >= DP_EXEC_WINDOW / 8 || dp_outbuf_len(&c->out[s]) <= 1))
			ack = true;
	}
	if (!ack || !c->ac || c->attaching || c->state != DP_CMD_RUNNING)
		return;
	if (agent_cmd_ack(c->ac, tgt[0] > c->acked[0] ? tgt[0] : PROTO_ACK_NONE,
			  tgt[1] > c->acked[1] ? tgt[1] : PROTO_ACK_NONE) == 0) {
		for (int s = 0; s < 2; s++)
			if (tgt[s] > c->acked[s])
				c->acked[s] = tgt[s];
	}
	dp_box_flush(c->box);
}

ssize_t dp_cmd_write_stdin(struct dp_cmd *c, const void *data, size_t len)
{
	ssize_t r;

	if (c->state == DP_CMD_EXITED || c->state == DP_CMD_FAILED)
		return -EPIPE;
	if (!c->ac || c->attaching)
		return -EAGAIN;
	r = agent_cmd_write_stdin(c->ac, data, len);
	if (r > 0)
		sbxd_metrics_add_bytes(SBXD_BYTES_STDIN, (uint64_t)r);
	dp_box_flush(c->box);
	if (r == -ENOTCONN)
		return -EAGAIN;
	return r;
}

int dp_cmd_close_stdin(struct dp_cmd *c)
{
	int r;

	if (c->state == DP_CMD_EXITED || c->state == DP_CMD_FAILED || c->pty)
		return 0;
	if (!c->ac || c->attaching || c->state == DP_CMD_STARTING)
		return -EAGAIN;
	r = agent_cmd_close_stdin(c->ac);
	dp_box_flush(c->box);
	if (r == -ENOTCONN)
		return -EAGAIN;
	return r == -EBADF ? 0 : r;
}

static void signal_reply(agent_client *ac, int err, const struct proto_msg *m, void *ud)
{
	(void)ac;
	(void)m;
	(void)ud;
	if (err < 0)
		log_debug("kill failed: %s, ignoring", strerror(-err));
}

void dp_cmd_kill(struct dp_cmd *c)
{
	struct proto_msg m = {.type = PROTO_SIGNAL};
	agent_client *ac;

	if (c->state == DP_CMD_STARTING) {
		c->kill_wanted = true;
		return;
	}
	if (c->state != DP_CMD_RUNNING || !c->agent_id)
		return;
	c->kill_sent = true;
	if (!c->clients)
		c->drain = true;
	/* by id: works whether or not we are subscribed right now */
	if (dp_box_client(c->box, &ac) < 0)
		return;
	m.u.signal.cmd = c->agent_id;
	m.u.signal.signal = SIGKILL;
	m.u.signal.group = true;
	(void)agent_request(ac, &m, signal_reply, NULL, NULL);
	if (c->drain && c->detached && !c->ac) {
		c->detached = false;
		cmd_subscribe(c);
	}
	dp_box_flush(c->box);
}

void dp_cmd_resize(struct dp_cmd *c, unsigned rows, unsigned cols)
{
	if (c->ac && !c->attaching && c->state == DP_CMD_RUNNING) {
		(void)agent_cmd_resize(c->ac, (uint16_t)rows, (uint16_t)cols);
		dp_box_flush(c->box);
	}
}

void dp_cmds_fail_all(struct dp_box *b, const char *type, const char *msg)
{
	struct dp_cmd *c, *next;

	for (c = b->cmds; c; c = next) {
		next = c->next;
		if (c->state != DP_CMD_EXITED || c->clients)
			cmd_fail(c, type, "%s", msg);
		c->ac = agent_cmd_free(c->ac);
		if (!c->clients)
			dp_cmd_free(c);
	}
}
