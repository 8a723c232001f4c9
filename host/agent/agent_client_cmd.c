/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_client_cmd.c - running commands over an agent connection: EXEC and
 * ATTACH, output delivery with per-stream receive windows, acknowledgements
 * (automatic or by the caller), stdin with the agent's credit, signals and
 * PTY resizes.
 *
 * Output invariants, checked on every OUTPUT frame: the offset continues
 * exactly where the stream stopped (bytes already seen are trimmed, a gap is
 * a protocol error), and nothing lies beyond the window counted from the last
 * ACK we sent. In auto-ack mode a stream is consumed as soon as on_output
 * returns; ACKs go out at the end of each read batch, or at once when half a
 * window is outstanding.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/agent/agent_client_int.h"
#include "base/log.h"

static const char *const cmd_state_names[AGENT_CMD_STATE_COUNT] = {
    [AGENT_CMD_STARTING] = "starting",
    [AGENT_CMD_RUNNING] = "running",
    [AGENT_CMD_EXITED] = "exited",
    [AGENT_CMD_FAILED] = "failed",
};

const char *agent_cmd_state_to_string(enum agent_cmd_state s)
{
	if ((unsigned)s >= AGENT_CMD_STATE_COUNT)
		return "unknown";
	return cmd_state_names[s];
}

static bool cmd_terminal(const agent_cmd *cmd)
{
	return cmd->state == AGENT_CMD_EXITED || cmd->state == AGENT_CMD_FAILED;
}

/* Callback bracket: true when the handle went away during the callback. */
static void cmd_enter(agent_cmd *cmd)
{
	cmd->busy++;
}

static bool cmd_leave(agent_cmd *cmd)
{
	if (--cmd->busy == 0 && cmd->released) {
		free(cmd);
		return true;
	}
	return cmd->released;
}

void cmd_unlink(agent_cmd *cmd)
{
	agent_cmd **pp;

	if (!cmd->linked || !cmd->c)
		return;
	for (pp = &cmd->c->cmds; *pp; pp = &(*pp)->next)
		if (*pp == cmd) {
			*pp = cmd->next;
			break;
		}
	cmd->next = NULL;
	cmd->linked = false;
}

static void cmd_link(agent_client *c, agent_cmd *cmd)
{
	cmd->c = c;
	cmd->next = c->cmds;
	c->cmds = cmd;
	cmd->linked = true;
}

agent_cmd *cmd_find(agent_client *c, uint32_t id)
{
	agent_cmd *cmd;

	if (!id)
		return NULL;
	for (cmd = c->cmds; cmd; cmd = cmd->next)
		if (cmd->id == id && cmd->state == AGENT_CMD_RUNNING)
			return cmd;
	return NULL;
}

void cmd_fail(agent_cmd *cmd, int err, const char *msg)
{
	if (cmd_terminal(cmd))
		return;
	cmd->state = AGENT_CMD_FAILED;
	cmd->stdin_closed = true;
	if (!cmd->ops.on_error)
		return;
	cmd_enter(cmd);
	cmd->ops.on_error(cmd, err, msg ? msg : "", cmd->ud);
	(void)cmd_leave(cmd);
}

static int cmd_queue_ack(agent_cmd *cmd)
{
	struct proto_msg m = {.type = PROTO_ACK};
	bool any = false;
	int r;

	m.channel = cmd->id;
	m.u.ack.out = m.u.ack.err = m.u.ack.in = PROTO_ACK_NONE;
	if (cmd->consumed[0] > cmd->acked[0]) {
		m.u.ack.out = cmd->consumed[0];
		any = true;
	}
	if (cmd->consumed[1] > cmd->acked[1]) {
		m.u.ack.err = cmd->consumed[1];
		any = true;
	}
	if (!any)
		return 0;
	r = client_queue(cmd->c, &m);
	if (r < 0)
		return r;
	cmd->acked[0] = cmd->consumed[0];
	cmd->acked[1] = cmd->consumed[1];
	return 0;
}

void cmds_flush_acks(agent_client *c)
{
	agent_cmd *cmd;

	for (cmd = c->cmds; cmd; cmd = cmd->next)
		if (!cmd->manual_ack && cmd->state == AGENT_CMD_RUNNING)
			(void)cmd_queue_ack(cmd);
}

static bool cmd_stdin_writable(const agent_cmd *cmd)
{
	return cmd->state == AGENT_CMD_RUNNING && cmd->stdin_open && !cmd->stdin_closed &&
	       !client_sendq_full(cmd->c) && proto_credit_avail(&cmd->in) > 0;
}

void cmds_notify_stdin(agent_client *c)
{
	agent_cmd *cmd;

	/* a callback may free any handle: rescan from the head each time; it
	 * terminates because each pass clears one stdin_blocked */
	for (;;) {
		if (c->dead)
			return;
		for (cmd = c->cmds; cmd; cmd = cmd->next)
			if (cmd->stdin_blocked && cmd_stdin_writable(cmd))
				break;
		if (!cmd)
			return;
		cmd->stdin_blocked = false;
		if (cmd->ops.on_stdin_ready) {
			cmd_enter(cmd);
			cmd->ops.on_stdin_ready(cmd, cmd->ud);
			(void)cmd_leave(cmd);
		}
	}
}

/* ---- incoming ------------------------------------------------------------- */

static int cmd_on_output(agent_client *c, agent_cmd *cmd, const struct proto_msg *m)
{
	const struct proto_output *o = &m->u.output;
	const uint8_t *data = o->data.data;
	uint64_t off = o->offset, dup;
	size_t len = o->data.len;
	int s;

	if (o->stream == PROTO_STDOUT)
		s = 0;
	else if (o->stream == PROTO_STDERR)
		s = 1;
	else
		return client_protocol_error(c, -EPROTO, "cmd=%" PRIu32 " OUTPUT on stream %u",
					     cmd->id, o->stream);
	if (off > cmd->next_off[s])
		return client_protocol_error(
		    c, -EPROTO,
		    "cmd=%" PRIu32 " %s jumps to offset %" PRIu64 " from %" PRIu64 " (bytes lost)",
		    cmd->id, s ? "stderr" : "stdout", off, cmd->next_off[s]);
	if (off < cmd->next_off[s]) {
		/* replay overlap after an attach: drop what we already have */
		dup = cmd->next_off[s] - off;
		if (dup >= len)
			return 0;
		data += dup;
		len -= dup;
		off += dup;
	}
	if (off + len - cmd->acked[s] > cmd->window)
		return client_protocol_error(c, -EPROTO,
					     "cmd=%" PRIu32 " %s beyond the window (%" PRIu64
					     " bytes unacknowledged, window %" PRIu32 ")",
					     cmd->id, s ? "stderr" : "stdout",
					     off + len - cmd->acked[s], cmd->window);
	cmd->next_off[s] = off + len;
	if (len == 0)
		return 0;
	if (cmd->ops.on_output) {
		cmd_enter(cmd);
		cmd->ops.on_output(cmd, o->stream, off, data, len, cmd->ud);
		if (cmd_leave(cmd))
			return 0;
	}
	if (!cmd->manual_ack) {
		cmd->consumed[s] = cmd->next_off[s];
		if (cmd->consumed[s] - cmd->acked[s] >= cmd->window / 2)
			(void)cmd_queue_ack(cmd);
	}
	return 0;
}

/* Once everything up to the EXIT totals is consumed nobody needs the
 * agent's ring any more (protocol: the host SHOULD send FORGET). */
static void cmd_maybe_forget(agent_cmd *cmd)
{
	if (cmd->forgotten || cmd->state != AGENT_CMD_EXITED || !cmd->c ||
	    cmd->consumed[0] < cmd->total[0] || cmd->consumed[1] < cmd->total[1])
		return;
	cmd->forgotten = true;
	(void)agent_cmd_forget(cmd);
}

static int cmd_on_exit(agent_client *c, agent_cmd *cmd, const struct proto_msg *m)
{
	const struct proto_exit *e = &m->u.exit;

	(void)c;
	if (e->out_total != cmd->next_off[0] || e->err_total != cmd->next_off[1])
		log_warn("agent: cmd=%" PRIu32 " EXIT says %" PRIu64 "/%" PRIu64
			 " bytes of stdout/stderr, received %" PRIu64 "/%" PRIu64,
			 cmd->id, e->out_total, e->err_total, cmd->next_off[0], cmd->next_off[1]);
	if (!cmd->manual_ack) {
		cmd->consumed[0] = cmd->next_off[0];
		cmd->consumed[1] = cmd->next_off[1];
		(void)cmd_queue_ack(cmd);
	}
	cmd->state = AGENT_CMD_EXITED;
	cmd->stdin_closed = true;
	cmd->total[0] = e->out_total;
	cmd->total[1] = e->err_total;
	cmd_maybe_forget(cmd);
	if (cmd->ops.on_exit) {
		cmd_enter(cmd);
		cmd->ops.on_exit(cmd, e, cmd->ud);
		(void)cmd_leave(cmd);
	}
	return 0;
}

static int cmd_on_ack(agent_client *c, agent_cmd *cmd, const struct proto_msg *m)
{
	int r;

	if (m->u.ack.in == PROTO_ACK_NONE || !cmd->stdin_open)
		return 0;
	/* an agent that leaves ATTACHED's stdin offset out says it with the
	 * ACK it sends after ATTACHED; take it until we write */
	if (cmd->stdin_resync && m->u.ack.in > cmd->in.sent) {
		proto_credit_init(&cmd->in, m->u.ack.in, cmd->in.window);
		return 0;
	}
	r = proto_credit_ack(&cmd->in, m->u.ack.in);
	if (r < 0)
		return client_protocol_error(c, -EPROTO,
					     "cmd=%" PRIu32 " stdin acknowledged up to %" PRIu64
					     ", only %" PRIu64 " sent",
					     cmd->id, m->u.ack.in, cmd->in.sent);
	return 0;
}

int cmd_on_frame(agent_client *c, agent_cmd *cmd, const struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_OUTPUT:
		return cmd_on_output(c, cmd, m);
	case PROTO_EXIT:
		return cmd_on_exit(c, cmd, m);
	case PROTO_ACK:
		return cmd_on_ack(c, cmd, m);
	default:
		return 0;
	}
}

/* EXEC / ATTACH answers. */
static bool cmd_handle(agent_client *c, struct pending *p, int err, const struct proto_msg *m)
{
	agent_cmd *cmd = p->cmd;
	uint32_t id;

	if (!cmd) {
		/* the handle was freed while the command was starting: nobody
		 * will consume its output, so stop it */
		if (err == 0 && m && m->type == PROTO_EXEC_STARTED && p->kill_on_start) {
			struct proto_msg k = {.type = PROTO_SIGNAL};

			k.u.signal.cmd = m->u.exec_started.cmd;
			k.u.signal.signal = SIGKILL;
			k.u.signal.group = true;
			(void)agent_request(c, &k, NULL, NULL, NULL);
		}
		return true;
	}
	p->cmd = NULL;
	if (err < 0) {
		cmd_fail(cmd, err, c->err);
		return true;
	}
	id = m->type == PROTO_EXEC_STARTED ? m->u.exec_started.cmd : m->u.attached.cmd;
	if (id == 0 || cmd_find(c, id)) {
		client_protocol_error(c, -EPROTO, "%s gave command id %" PRIu32 ", already in use",
				      proto_type_to_string(m->type), id);
		return true;
	}
	cmd->id = id;
	if (m->type == PROTO_EXEC_STARTED) {
		cmd->pid = m->u.exec_started.pid;
		proto_credit_init(&cmd->in, 0,
				  m->u.exec_started.stdin_window ? m->u.exec_started.stdin_window
								 : PROTO_DEFAULT_WINDOW);
	} else {
		const struct proto_attached *a = &m->u.attached;
		int s;

		/* stdin resumes where the agent stands */
		proto_credit_init(&cmd->in, a->in_offset, a->stdin_window);
		cmd->stdin_resync = true;
		cmd->start[0] = a->out_start;
		cmd->start[1] = a->err_start;
		for (s = 0; s < 2; s++) {
			if (cmd->start[s] > cmd->next_off[s])
				cmd->next_off[s] = cmd->start[s];
			cmd->consumed[s] = cmd->acked[s] = cmd->next_off[s];
		}
	}
	cmd->state = AGENT_CMD_RUNNING;
	if (cmd->ops.on_started) {
		cmd_enter(cmd);
		cmd->ops.on_started(cmd, cmd->ud);
		(void)cmd_leave(cmd);
	}
	return true;
}

/* ---- API -------------------------------------------------------------------- */

static uint32_t strv_len(const char *const *v)
{
	uint32_t n = 0;

	if (!v)
		return 0;
	while (v[n] && n <= PROTO_MAX_ARGS)
		n++;
	return n;
}

int agent_exec(agent_client *c, const struct agent_exec_spec *spec, const struct agent_cmd_ops *ops,
	       void *ud, agent_cmd **ret)
{
	struct proto_msg m = {.type = PROTO_EXEC};
	struct proto_exec *e = &m.u.exec;
	struct pending *p;
	agent_cmd *cmd;
	char *what = NULL;
	uint32_t argc, envc;
	int r;

	if (!c || !spec || !ret)
		return -EINVAL;
	argc = strv_len(spec->argv);
	envc = strv_len(spec->env);
	if ((argc > 0) == (spec->shell != NULL)) {
		client_set_error(c, "exec needs either argv or a shell command");
		return -EINVAL;
	}
	if (argc > PROTO_MAX_ARGS || envc > PROTO_MAX_ARGS) {
		client_set_error(c, "exec: more than %d arguments or environment entries",
				 PROTO_MAX_ARGS);
		return -E2BIG;
	}
	cmd = calloc(1, sizeof(*cmd));
	if (!cmd)
		return -ENOMEM;
	cmd->state = AGENT_CMD_STARTING;
	cmd->pid = -1;
	if (ops)
		cmd->ops = *ops;
	cmd->ud = ud;
	cmd->manual_ack = spec->manual_ack;
	cmd->stdin_open = spec->stdin_open;
	cmd->window = spec->window ? spec->window : AGENT_EXEC_WINDOW;

	e->argv.v = (const char **)spec->argv;
	e->argv.n = argc;
	e->shell = spec->shell;
	e->env.v = (const char **)spec->env;
	e->env.n = envc;
	e->cwd = spec->cwd;
	e->uid = e->gid = -1;
	e->pty = spec->pty;
	e->rows = spec->rows;
	e->cols = spec->cols;
	e->stdin_open = spec->stdin_open;
	e->timeout_ms = spec->timeout_ms;
	e->window = cmd->window;
	e->ring = spec->ring;
	e->keep_ms = spec->keep_ms;

	if (asprintf(&what, "exec %s", argc ? spec->argv[0] : "/bin/sh -c") < 0)
		what = NULL;
	r = client_send_request(c, &m, cmd_handle, what, argc ? spec->argv[0] : NULL, &p);
	if (r < 0) {
		free(cmd);
		return r;
	}
	p->cmd = cmd;
	cmd_link(c, cmd);
	*ret = cmd;
	return 0;
}

int agent_attach(agent_client *c, uint32_t cmd_id, uint64_t out_off, uint64_t err_off,
		 uint32_t window, bool manual_ack, const struct agent_cmd_ops *ops, void *ud,
		 agent_cmd **ret)
{
	struct proto_msg m = {.type = PROTO_ATTACH};
	struct pending *p;
	agent_cmd *cmd;
	char *what = NULL;
	int r;

	if (!c || !ret || !cmd_id)
		return -EINVAL;
	cmd = calloc(1, sizeof(*cmd));
	if (!cmd)
		return -ENOMEM;
	cmd->state = AGENT_CMD_STARTING;
	cmd->attach = true;
	cmd->stdin_open = true; /* the agent refuses STDIN if it was not */
	cmd->pid = -1;
	if (ops)
		cmd->ops = *ops;
	cmd->ud = ud;
	cmd->manual_ack = manual_ack;
	cmd->window = window ? window : AGENT_EXEC_WINDOW;
	cmd->next_off[0] = cmd->consumed[0] = cmd->acked[0] = out_off;
	cmd->next_off[1] = cmd->consumed[1] = cmd->acked[1] = err_off;

	m.u.attach.cmd = cmd_id;
	m.u.attach.out_offset = out_off;
	m.u.attach.err_offset = err_off;
	m.u.attach.window = cmd->window;
	if (asprintf(&what, "attach to command %" PRIu32, cmd_id) < 0)
		what = NULL;
	r = client_send_request(c, &m, cmd_handle, what, NULL, &p);
	if (r < 0) {
		free(cmd);
		return r;
	}
	p->cmd = cmd;
	cmd_link(c, cmd);
	*ret = cmd;
	return 0;
}

agent_cmd *agent_cmd_free(agent_cmd *cmd)
{
	struct pending *p;

	if (!cmd || cmd->released)
		return NULL;
	cmd->released = true;
	if (cmd->c) {
		for (p = cmd->c->pending; p; p = p->next)
			if (p->cmd == cmd) {
				p->cmd = NULL;
				p->kill_on_start = p->type == PROTO_EXEC;
			}
		cmd_unlink(cmd);
	}
	if (!cmd->busy)
		free(cmd);
	return NULL;
}

enum agent_cmd_state agent_cmd_state(const agent_cmd *cmd)
{
	return cmd->state;
}

uint32_t agent_cmd_id(const agent_cmd *cmd)
{
	return cmd->state == AGENT_CMD_STARTING ? 0 : cmd->id;
}

int agent_cmd_pid(const agent_cmd *cmd)
{
	return cmd->pid;
}

void agent_cmd_offsets(const agent_cmd *cmd, uint64_t *ret_out, uint64_t *ret_err)
{
	if (ret_out)
		*ret_out = cmd->next_off[0];
	if (ret_err)
		*ret_err = cmd->next_off[1];
}

void agent_cmd_attach_start(const agent_cmd *cmd, uint64_t *ret_out, uint64_t *ret_err)
{
	if (ret_out)
		*ret_out = cmd->start[0];
	if (ret_err)
		*ret_err = cmd->start[1];
}

void *agent_cmd_userdata(const agent_cmd *cmd)
{
	return cmd->ud;
}

agent_client *agent_cmd_client(const agent_cmd *cmd)
{
	return cmd->c;
}

ssize_t agent_cmd_write_stdin(agent_cmd *cmd, const void *data, size_t len)
{
	agent_client *c = cmd->c;
	const uint8_t *d = data;
	size_t total = 0, chunk, n;
	uint64_t avail;
	int r;

	if (!c)
		return -ENOTCONN;
	if (c->dead)
		return c->dead;
	if (!cmd->stdin_open)
		return -EBADF;
	if (cmd->stdin_closed || cmd_terminal(cmd))
		return -EPIPE;
	if (cmd->state == AGENT_CMD_STARTING) {
		cmd->stdin_blocked = true;
		return -EAGAIN;
	}
	if (len == 0)
		return 0;
	chunk = client_chunk_max(c);
	if (chunk > PROTO_MAX_CHUNK)
		chunk = PROTO_MAX_CHUNK;
	while (total < len && !client_sendq_full(c)) {
		avail = proto_credit_avail(&cmd->in);
		if (avail == 0)
			break;
		n = len - total;
		if (n > chunk)
			n = chunk;
		if (n > avail)
			n = (size_t)avail;

		struct proto_msg m = {.type = PROTO_STDIN};

		m.channel = cmd->id;
		m.u.stdin_data.offset = cmd->in.sent;
		m.u.stdin_data.data.data = d + total;
		m.u.stdin_data.data.len = n;
		r = client_queue(c, &m);
		if (r < 0)
			return total ? (ssize_t)total : r;
		(void)proto_credit_consume(&cmd->in, n);
		cmd->stdin_resync = false;
		total += n;
	}
	if (total == 0) {
		cmd->stdin_blocked = true;
		return -EAGAIN;
	}
	return (ssize_t)total;
}

int agent_cmd_close_stdin(agent_cmd *cmd)
{
	struct proto_msg m = {.type = PROTO_STDIN, .flags = PROTO_F_EOF};
	int r;

	if (!cmd->c)
		return -ENOTCONN;
	if (!cmd->stdin_open)
		return -EBADF;
	if (cmd->stdin_closed || cmd_terminal(cmd))
		return 0;
	if (cmd->state == AGENT_CMD_STARTING)
		return -ENOTCONN;
	m.channel = cmd->id;
	m.u.stdin_data.offset = cmd->in.sent;
	r = client_queue(cmd->c, &m);
	if (r < 0)
		return r;
	cmd->stdin_closed = true;
	cmd->stdin_blocked = false;
	return 0;
}

int agent_cmd_signal(agent_cmd *cmd, int sig)
{
	struct proto_msg m = {.type = PROTO_SIGNAL};

	if (!cmd->c)
		return -ENOTCONN;
	if (cmd->state != AGENT_CMD_RUNNING)
		return cmd->state == AGENT_CMD_STARTING ? -ENOTCONN : -ESRCH;
	m.u.signal.cmd = cmd->id;
	m.u.signal.signal = sig;
	m.u.signal.group = true;
	return agent_request(cmd->c, &m, NULL, NULL, NULL);
}

int agent_cmd_resize(agent_cmd *cmd, uint16_t rows, uint16_t cols)
{
	struct proto_msg m = {.type = PROTO_RESIZE};

	if (!cmd->c)
		return -ENOTCONN;
	if (cmd->state != AGENT_CMD_RUNNING)
		return cmd->state == AGENT_CMD_STARTING ? -ENOTCONN : -ESRCH;
	m.u.resize.cmd = cmd->id;
	m.u.resize.rows = rows;
	m.u.resize.cols = cols;
	return agent_request(cmd->c, &m, NULL, NULL, NULL);
}

int agent_cmd_ack(agent_cmd *cmd, uint64_t out_off, uint64_t err_off)
{
	if (!cmd->c)
		return -ENOTCONN;
	if ((out_off != PROTO_ACK_NONE && out_off > cmd->next_off[0]) ||
	    (err_off != PROTO_ACK_NONE && err_off > cmd->next_off[1]))
		return -EINVAL;
	if (out_off != PROTO_ACK_NONE && out_off > cmd->consumed[0])
		cmd->consumed[0] = out_off;
	if (err_off != PROTO_ACK_NONE && err_off > cmd->consumed[1])
		cmd->consumed[1] = err_off;
	if (cmd->state == AGENT_CMD_EXITED) {
		cmd_maybe_forget(cmd);
		return 0;
	}
	if (cmd->state != AGENT_CMD_RUNNING)
		return 0;
	return cmd_queue_ack(cmd);
}

int agent_cmd_forget(agent_cmd *cmd)
{
	struct proto_msg m = {.type = PROTO_FORGET};

	if (!cmd->c)
		return -ENOTCONN;
	if (cmd->state == AGENT_CMD_STARTING)
		return -ENOTCONN;
	m.u.forget.cmd = cmd->id;
	return agent_request(cmd->c, &m, NULL, NULL, NULL);
}
