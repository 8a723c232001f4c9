/* SPDX-License-Identifier: Apache-2.0 */
/*
 * exec.c - command lifecycle and the requests on commands (see exec.h and
 * the state diagram in cmd.h).
 *
 * Exit rule: EXIT is sent once the process was reaped, both output streams
 * reached EOF and every byte of output was sent. When a background process
 * keeps a pipe open after the main process exited, the process group gets
 * SIGKILL AGENT_EXIT_GRACE_MS later; a stream that is still open (a writer
 * outside the group) AGENT_EXIT_FORCE_MS after the exit is closed by the
 * agent unless the ring is full (then back-pressure, not the writer, is why
 * it is open).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/cleanup.h"
#include "guest/cmd.h"
#include "guest/conn.h"
#include "guest/exec.h"
#include "base/log.h"
#include "guest/loop.h"
#include "guest/spawn.h"

static struct list cmds = {&cmds, &cmds};
static unsigned n_running;
static unsigned n_kept; /* FINISHED + RETAINED */

static const char *cmd_state_to_string(enum cmd_state s)
{
	static const char *const names[CMD_STATE_COUNT] = {
	    [CMD_RUNNING] = "running",
	    [CMD_DRAINING] = "draining",
	    [CMD_FINISHED] = "finished",
	    [CMD_RETAINED] = "retained",
	};

	return (unsigned)s < CMD_STATE_COUNT ? names[s] : "unknown";
}

void cmd_enter_state(struct cmd *cmd, enum cmd_state state)
{
	static const bool allowed[CMD_STATE_COUNT][CMD_STATE_COUNT] = {
	    [CMD_RUNNING] = {[CMD_DRAINING] = true, [CMD_FINISHED] = true},
	    [CMD_DRAINING] = {[CMD_FINISHED] = true},
	    [CMD_FINISHED] = {[CMD_RETAINED] = true},
	    [CMD_RETAINED] = {[CMD_FINISHED] = true},
	};

	if (!allowed[cmd->state][state]) {
		log_error("cmd=%u bad transition %s -> %s, ignoring", cmd->id,
			  cmd_state_to_string(cmd->state), cmd_state_to_string(state));
		return;
	}
	log_debug("cmd=%u %s -> %s", cmd->id, cmd_state_to_string(cmd->state),
		  cmd_state_to_string(state));
	if (cmd->state <= CMD_DRAINING && state >= CMD_FINISHED) {
		n_running--;
		n_kept++;
	}
	cmd->state = state;
}

static struct cmd *cmd_find(uint32_t id)
{
	struct list *pos, *tmp;
	struct cmd *cmd;

	if (!id)
		return NULL;
	for (list_each_safe(pos, tmp, &cmds)) {
		cmd = container_of(pos, struct cmd, link);
		if (cmd->id == id && !cmd->dead)
			return cmd;
	}
	return NULL;
}

static struct cmd *cmd_find_or_reply(struct conn *c, uint32_t id, uint32_t req)
{
	struct cmd *cmd = cmd_find(id);

	if (!cmd)
		conn_send_error(c, req ? 0 : id, req, PROTO_E_NO_CHANNEL, ESRCH,
				"there is no command %u (it may have been forgotten or expired)",
				id);
	return cmd;
}

static bool cmd_idle(const struct cmd *cmd)
{
	return !cmd->out.op.busy && !cmd->err.op.busy && !cmd->in_op.busy;
}

static void cmd_destroy(struct cmd *cmd)
{
	list_del(&cmd->link);
	if (cmd->out.fd >= 0 && cmd->out.fd != cmd->pty)
		close(cmd->out.fd);
	if (cmd->err.fd >= 0)
		close(cmd->err.fd);
	if (cmd->in_fd >= 0 && cmd->in_fd != cmd->pty)
		close(cmd->in_fd);
	if (cmd->pty >= 0)
		close(cmd->pty);
	if (cmd->pty_slave >= 0)
		close(cmd->pty_slave);
	ring_release(&cmd->out.ring);
	ring_release(&cmd->err.ring);
	free(cmd->in_data);
	free(cmd);
}

/* Drop a command: cancel its ops; exec_collect() frees it once idle. */
static void cmd_drop(struct cmd *cmd)
{
	if (cmd->dead)
		return;
	if (cmd->state <= CMD_DRAINING)
		n_running--;
	else
		n_kept--;
	cmd->dead = true;
	cmd->conn = NULL;
	loop_cancel(&cmd->out.op);
	loop_cancel(&cmd->err.op);
	loop_cancel(&cmd->in_op);
}

void exec_collect(void)
{
	struct list *pos, *tmp;
	struct cmd *cmd;

	for (list_each_safe(pos, tmp, &cmds)) {
		cmd = container_of(pos, struct cmd, link);
		if (cmd->dead && cmd_idle(cmd))
			cmd_destroy(cmd);
	}
}

/* Keep at most AGENT_MAX_RETAINED finished commands: drop the oldest,
 * preferring those whose EXIT was already delivered. */
static void cmd_evict(void)
{
	struct cmd *victim = NULL, *cmd;
	struct list *pos, *tmp;

	while (n_kept > AGENT_MAX_RETAINED) {
		victim = NULL;
		for (list_each_safe(pos, tmp, &cmds)) {
			cmd = container_of(pos, struct cmd, link);
			if (cmd->dead || cmd->state < CMD_FINISHED)
				continue;
			if (!victim ||
			    (cmd->state == CMD_RETAINED && victim->state != CMD_RETAINED))
				victim = cmd;
			if (victim->state == CMD_RETAINED)
				break;
		}
		if (!victim)
			return;
		log_info("cmd=%u dropped: more than %d finished commands are kept", victim->id,
			 AGENT_MAX_RETAINED);
		cmd_drop(victim);
	}
}

void cmd_check_finished(struct cmd *cmd)
{
	if (cmd->dead || cmd->state != CMD_DRAINING || !cmd->out.eof || !cmd->err.eof)
		return;
	cmd_stdin_close(cmd);
	if (cmd->pty >= 0) {
		/* both stream ops are idle or cancelled; polls hold their file */
		close(cmd->pty);
		cmd->pty = -EBADF;
	}
	cmd_enter_state(cmd, CMD_FINISHED);
	cmd_evict();
	cmd_pump(cmd);
}

unsigned exec_count_running(void)
{
	return n_running;
}

/* ---- process exit and timers ------------------------------------------ */

void exec_on_child_exit(pid_t pid, int status)
{
	struct list *pos, *tmp;
	struct cmd *cmd;

	for (list_each_safe(pos, tmp, &cmds)) {
		cmd = container_of(pos, struct cmd, link);
		if (cmd->pid != pid || cmd->state != CMD_RUNNING || cmd->dead)
			continue;
		cmd->status = status;
		cmd->exited_ms = clock_mono_ms();
		log_debug("cmd=%u pid=%d exited status=0x%x", cmd->id, (int)pid, status);
		if (cmd->pty_slave >= 0)
			close(cmd->pty_slave);
		cmd->pty_slave = -EBADF;
		cmd_enter_state(cmd, CMD_DRAINING);
		loop_timer_want(cmd->exited_ms + AGENT_EXIT_GRACE_MS);
		cmd_check_finished(cmd);
		return;
	}
}

/* Signal what is left of the group of an exited command, unless its id was
 * reused as the group of a newer command. */
static void cmd_kill_leftovers(struct cmd *cmd)
{
	struct list *pos, *tmp;
	struct cmd *o;

	for (list_each_safe(pos, tmp, &cmds)) {
		o = container_of(pos, struct cmd, link);
		if (o != cmd && o->pid == cmd->pid && o->state == CMD_RUNNING)
			return;
	}
	if (kill(-cmd->pid, SIGKILL) == 0)
		log_info("cmd=%u output still open %d ms after exit: killed process group %d",
			 cmd->id, AGENT_EXIT_GRACE_MS, (int)cmd->pid);
}

static void cmd_tick(struct cmd *cmd, uint64_t now)
{
	switch (cmd->state) {
	case CMD_RUNNING:
		if (!cmd->deadline_ms)
			break;
		if (now < cmd->deadline_ms) {
			loop_timer_want(cmd->deadline_ms);
			break;
		}
		if (!cmd->timed_out) {
			log_info("cmd=%u timed out, killing process group %d", cmd->id,
				 (int)cmd->pid);
			cmd->timed_out = true;
			(void)kill(-cmd->pid, SIGKILL);
		}
		break;
	case CMD_DRAINING:
		if (now >= cmd->exited_ms + AGENT_EXIT_GRACE_MS && !cmd->grace_killed) {
			cmd->grace_killed = true;
			cmd_kill_leftovers(cmd);
		}
		if (now >= cmd->exited_ms + AGENT_EXIT_FORCE_MS) {
			if (ring_room(&cmd->out.ring))
				cmd_stream_force_eof(cmd, &cmd->out);
			if (ring_room(&cmd->err.ring))
				cmd_stream_force_eof(cmd, &cmd->err);
			cmd_check_finished(cmd);
		}
		if (cmd->state == CMD_DRAINING)
			loop_timer_want(cmd->exited_ms + (cmd->grace_killed ? AGENT_EXIT_FORCE_MS
									    : AGENT_EXIT_GRACE_MS));
		break;
	case CMD_RETAINED:
		if (now >= cmd->delivered_ms + cmd->keep_ms) {
			log_debug("cmd=%u kept %llu ms after its exit was delivered, dropping it",
				  cmd->id, (unsigned long long)cmd->keep_ms);
			cmd_drop(cmd);
		} else {
			loop_timer_want(cmd->delivered_ms + cmd->keep_ms);
		}
		break;
	case CMD_FINISHED:
	case CMD_STATE_COUNT:
		break;
	}
}

void exec_tick(uint64_t now)
{
	struct list *pos, *tmp;
	struct cmd *cmd;

	for (list_each_safe(pos, tmp, &cmds)) {
		cmd = container_of(pos, struct cmd, link);
		if (!cmd->dead)
			cmd_tick(cmd, now);
	}
}

void exec_on_cqe(struct op *op, int res)
{
	struct cmd *cmd;

	switch (op->kind) {
	case OP_CMD_OUT:
		cmd = container_of(op, struct cmd, out.op);
		cmd_stream_on_cqe(cmd, &cmd->out, res);
		break;
	case OP_CMD_ERR:
		cmd = container_of(op, struct cmd, err.op);
		cmd_stream_on_cqe(cmd, &cmd->err, res);
		break;
	case OP_CMD_IN:
		cmd = container_of(op, struct cmd, in_op);
		cmd_stdin_on_cqe(cmd, res);
		break;
	default:
		break;
	}
}

void exec_detach_conn(struct conn *c)
{
	struct list *pos, *tmp;
	struct cmd *cmd;

	for (list_each_safe(pos, tmp, &cmds)) {
		cmd = container_of(pos, struct cmd, link);
		if (cmd->conn == c)
			cmd->conn = NULL;
	}
}

void exec_pump_conn(struct conn *c)
{
	struct list *pos, *tmp;
	struct cmd *cmd;

	for (list_each_safe(pos, tmp, &cmds)) {
		cmd = container_of(pos, struct cmd, link);
		if (cmd->conn == c)
			cmd_pump(cmd);
	}
}

void exec_free_all(void)
{
	struct list *pos, *tmp;
	struct cmd *cmd;

	for (list_each_safe(pos, tmp, &cmds)) {
		cmd = container_of(pos, struct cmd, link);
		if (cmd->dead)
			continue;
		if (cmd->state <= CMD_DRAINING)
			(void)kill(-cmd->pid, SIGKILL);
		cmd_drop(cmd);
	}
}

/* ---- EXEC -------------------------------------------------------------- */

/* The ring holds at least one window (protocol), within the agent's bounds. */
static size_t clamp_ring(uint32_t req, uint32_t window)
{
	size_t n = req ? req : AGENT_RING_DEFAULT;

	n = MAX(n, (size_t)(window ? window : PROTO_DEFAULT_WINDOW));
	return MIN(MAX(n, (size_t)AGENT_RING_MIN), (size_t)AGENT_RING_MAX);
}

struct exec_env {
	const char **v;
	const char *path;
	char home[300];
	const char *defaults[6];
};

/* The command's environment: the request's, or a small default one. */
static void exec_env_build(const struct proto_exec *e, const struct spawn_user *u,
			   struct exec_env *env)
{
	uint32_t i;

	env->path = SPAWN_DEFAULT_PATH;
	if (e->env.n) {
		env->v = e->env.v;
		for (i = 0; i < e->env.n; i++)
			if (!strncmp(e->env.v[i], "PATH=", 5))
				env->path = e->env.v[i] + 5;
		return;
	}
	snprintf(env->home, sizeof(env->home), "HOME=%s", u->home);
	env->defaults[0] = "PATH=" SPAWN_DEFAULT_PATH;
	env->defaults[1] = env->home;
	env->defaults[2] = e->pty ? "TERM=xterm-256color" : "TERM=dumb";
	env->defaults[3] = "LANG=C.UTF-8";
	env->defaults[4] = NULL;
	env->v = env->defaults;
}

/* Pipes or a PTY for a new command; on success every fd is stored in cmd and
 * the child's ends in s. */
static int exec_setup_fds(struct cmd *cmd, const struct proto_exec *e, struct spawn *s, char *tty,
			  size_t ttylen, int child[3])
{
	int p[2], ret, i;

	if (e->pty) {
		ret = spawn_open_pty(e->rows, e->cols, &cmd->pty, tty, ttylen);
		if (ret < 0)
			return ret;
		cmd->pty_slave = open(tty, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (cmd->pty_slave < 0)
			return -errno;
		cmd->out.fd = cmd->pty;
		cmd->err.eof = true;
		cmd->in_fd = e->stdin_open ? cmd->pty : -EBADF;
		s->tty = tty;
		return 0;
	}
	for (i = 0; i < 3; i++) {
		if (i == 0 && !e->stdin_open) {
			child[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
			if (child[0] < 0)
				return -errno;
			continue;
		}
		if (pipe2(p, O_CLOEXEC) < 0)
			return -errno;
		child[i] = i == 0 ? p[0] : p[1];
		if (i == 0)
			cmd->in_fd = p[1];
		else if (i == 1)
			cmd->out.fd = p[0];
		else
			cmd->err.fd = p[0];
		if (fcntl(i == 0 ? p[1] : p[0], F_SETFL, O_NONBLOCK) < 0)
			return -errno;
	}
	s->fd_in = child[0];
	s->fd_out = child[1];
	s->fd_err = child[2];
	return 0;
}

static void exec_report_spawn_error(struct conn *c, const struct proto_exec *e, const char *prog,
				    enum spawn_step step, int err)
{
	const char *cwd = e->cwd ? e->cwd : "/";

	switch (step) {
	case SPAWN_STEP_EXEC:
		conn_send_error(c, 0, e->id, PROTO_E_EXEC, err, "cannot run '%s': %s", prog,
				strerror(err));
		break;
	case SPAWN_STEP_CWD:
		conn_send_error(c, 0, e->id, PROTO_E_EXEC, err,
				"cannot run '%s': cannot change to the working directory %s: %s",
				prog, cwd, strerror(err));
		break;
	case SPAWN_STEP_UID:
	case SPAWN_STEP_GID:
	case SPAWN_STEP_GROUPS:
		conn_send_error(c, 0, e->id, PROTO_E_EXEC, err,
				"cannot run '%s' as uid %d gid %d: %s", prog, e->uid, e->gid,
				strerror(err));
		break;
	default:
		conn_send_error(c, 0, e->id, PROTO_E_EXEC, err, "cannot run '%s' (step %s): %s",
				prog, spawn_step_to_string(step), strerror(err));
		break;
	}
}

static struct cmd *cmd_new(const struct proto_exec *e)
{
	struct cmd *cmd = calloc(1, sizeof(*cmd));
	size_t ring = clamp_ring(e->ring, e->window);

	if (!cmd)
		return NULL;
	cmd->pty = cmd->pty_slave = cmd->in_fd = -EBADF;
	cmd->out.fd = cmd->err.fd = -EBADF;
	cmd->out.op.kind = OP_CMD_OUT;
	cmd->err.op.kind = OP_CMD_ERR;
	cmd->in_op.kind = OP_CMD_IN;
	ring_init(&cmd->out.ring, ring);
	ring_init(&cmd->err.ring, ring);
	list_init(&cmd->link);
	cmd->in_open = e->stdin_open;
	cmd->in_closed = !e->stdin_open;
	cmd->keep_ms = e->keep_ms ? e->keep_ms : AGENT_KEEP_DEFAULT_MS;
	return cmd;
}

static void close_child_fds(int child[3])
{
	int i;

	for (i = 0; i < 3; i++)
		if (child[i] >= 0)
			close(child[i]);
}

void exec_on_exec(struct conn *c, const struct proto_msg *m)
{
	const struct proto_exec *e = &m->u.exec;
	const char *shell_argv[4] = {"/bin/sh", "-c", e->shell, NULL};
	int child[3] = {-EBADF, -EBADF, -EBADF};
	struct spawn s = {0};
	struct spawn_user user;
	struct exec_env env;
	enum spawn_step step;
	struct proto_msg r = {.type = PROTO_EXEC_STARTED};
	struct cmd *cmd;
	char tty[64];
	int ret;

	if ((e->argv.n > 0) == (e->shell != NULL)) {
		conn_send_error(c, 0, e->id, PROTO_E_BAD_REQUEST, EINVAL,
				"EXEC needs exactly one of argv or shell");
		return;
	}
	if (n_running >= AGENT_MAX_COMMANDS) {
		conn_send_error(c, 0, e->id, PROTO_E_LIMIT, EAGAIN,
				"too many commands are running (the limit is %d)",
				AGENT_MAX_COMMANDS);
		return;
	}
	spawn_lookup_user(e->uid >= 0 ? (uid_t)e->uid : getuid(), &user);
	exec_env_build(e, &user, &env);
	cmd = cmd_new(e);
	if (!cmd) {
		conn_send_error(c, 0, e->id, PROTO_E_INTERNAL, ENOMEM, "out of memory");
		return;
	}
	s.argv = (char *const *)(e->argv.n ? e->argv.v : shell_argv);
	s.envp = (char *const *)env.v;
	s.path = env.path;
	s.cwd = e->cwd ? e->cwd : "/";
	s.reset_oom = agent.mode == AGENT_MODE_PID1;
	s.nofile = &agent.nofile;
	if (e->uid >= 0 || e->gid >= 0) {
		s.set_ids = true;
		s.uid = e->uid >= 0 ? (uid_t)e->uid : getuid();
		s.gid = e->gid >= 0 ? (gid_t)e->gid : user.gid;
	}
	ret = exec_setup_fds(cmd, e, &s, tty, sizeof(tty), child);
	if (ret < 0) {
		close_child_fds(child);
		cmd_destroy(cmd);
		conn_send_error(c, 0, e->id, PROTO_E_EXEC, -ret, "cannot create %s for '%s': %s",
				e->pty ? "a terminal" : "pipes", s.argv[0], strerror(-ret));
		return;
	}
	cmd->started_ms = clock_mono_ms();
	ret = spawn_start(&s, &cmd->pid, &step);
	close_child_fds(child);
	if (ret < 0) {
		exec_report_spawn_error(c, e, s.argv[0], step, -ret);
		cmd_destroy(cmd);
		return;
	}
	cmd->id = agent_new_chan();
	list_add_tail(&cmds, &cmd->link);
	n_running++;
	if (e->timeout_ms) {
		cmd->deadline_ms = cmd->started_ms + e->timeout_ms;
		loop_timer_want(cmd->deadline_ms);
	}
	log_info("cmd=%u pid=%d started: %s%s", cmd->id, (int)cmd->pid, s.argv[0],
		 e->pty ? " (pty)" : "");
	r.channel = cmd->id;
	r.u.exec_started.id = e->id;
	r.u.exec_started.cmd = cmd->id;
	r.u.exec_started.pid = cmd->pid;
	r.u.exec_started.stdin_window = AGENT_STDIN_WINDOW;
	(void)conn_send(c, &r);
	cmd_attach(cmd, c, 0, 0, e->window);
}

/* ---- requests on a running or kept command ------------------------------ */

void exec_on_stdin(struct conn *c, const struct proto_msg *m)
{
	const struct proto_stdin *in = &m->u.stdin_data;
	struct cmd *cmd = cmd_find_or_reply(c, m->channel, 0);
	const uint8_t *data = in->data.data;
	size_t len = in->data.len;
	uint64_t skip;

	if (!cmd)
		return;
	if (cmd->conn != c) {
		conn_send_error(c, cmd->id, 0, PROTO_E_BAD_REQUEST, EPERM,
				"this connection is not attached to command %u: send ATTACH first",
				cmd->id);
		return;
	}
	if (!cmd->in_open || cmd->in_eof) {
		conn_send_error(c, cmd->id, 0, PROTO_E_BAD_REQUEST, EBADF,
				cmd->in_open
				    ? "stdin of command %u was already closed"
				    : "command %u was started without stdin (set stdin_open)",
				cmd->id);
		return;
	}
	if (in->offset > cmd->in_recv) {
		conn_send_error(c, cmd->id, 0, PROTO_E_BAD_REQUEST, EINVAL,
				"stdin offset %llu of command %u leaves a gap after %llu",
				(unsigned long long)in->offset, cmd->id,
				(unsigned long long)cmd->in_recv);
		return;
	}
	/* a retransmission after ATTACH: drop what was already taken */
	skip = MIN(cmd->in_recv - in->offset, (uint64_t)len);
	data += skip;
	len -= (size_t)skip;
	if (cmd->in_recv + len - cmd->in_done > AGENT_STDIN_WINDOW) {
		conn_send_error(c, cmd->id, 0, PROTO_E_BAD_REQUEST, ENOBUFS,
				"stdin of command %u exceeds the window of %d bytes", cmd->id,
				AGENT_STDIN_WINDOW);
		return;
	}
	cmd->in_recv += len;
	if (m->flags & PROTO_F_EOF)
		cmd->in_eof = true;
	if (cmd->in_closed) {
		/* the process no longer reads stdin: consume and acknowledge */
		cmd->in_done = cmd->in_recv;
	} else if (len) {
		if (!cmd->in_data)
			cmd->in_data = malloc(AGENT_STDIN_WINDOW);
		if (!cmd->in_data) {
			conn_send_error(c, cmd->id, 0, PROTO_E_INTERNAL, ENOMEM, "out of memory");
			cmd_stdin_close(cmd);
		} else {
			/* fits: the window check above bounds in_len */
			memcpy(cmd->in_data + cmd->in_len, data, len);
			cmd->in_len += len;
		}
	}
	cmd_stdin_flush(cmd);
}

bool exec_on_ack(struct conn *c, const struct proto_msg *m)
{
	const struct proto_ack *a = &m->u.ack;
	struct cmd *cmd = cmd_find(m->channel);
	struct cmd_stream *s[2];
	uint64_t off[2];
	int i;

	if (!cmd)
		return false;
	if (cmd->conn != c)
		return true;
	s[0] = &cmd->out;
	s[1] = &cmd->err;
	off[0] = a->out;
	off[1] = a->err;
	for (i = 0; i < 2; i++) {
		if (off[i] == PROTO_ACK_NONE)
			continue;
		if (proto_credit_ack(&s[i]->credit, off[i]) < 0) {
			conn_send_error(
			    c, cmd->id, 0, PROTO_E_BAD_REQUEST, EINVAL,
			    "ACK of %s offset %llu of command %u is beyond the %llu bytes sent",
			    i ? "stderr" : "stdout", (unsigned long long)off[i], cmd->id,
			    (unsigned long long)s[i]->credit.sent);
			continue;
		}
		ring_release_to(&s[i]->ring, off[i]);
		cmd_stream_arm(cmd, s[i]);
	}
	cmd_pump(cmd);
	return true;
}

void exec_on_signal(struct conn *c, const struct proto_msg *m)
{
	const struct proto_signal *sg = &m->u.signal;
	struct cmd *cmd = cmd_find_or_reply(c, sg->cmd, sg->id);
	pid_t target;

	if (!cmd)
		return;
	if (sg->signal < 0 || sg->signal > 64) {
		conn_send_error(c, 0, sg->id, PROTO_E_BAD_REQUEST, EINVAL,
				"%d is not a signal number", sg->signal);
		return;
	}
	/* the protocol answers OK for a command that has already exited */
	if (cmd->state >= CMD_FINISHED || (cmd->state == CMD_DRAINING && !sg->group)) {
		conn_send_ok(c, sg->id);
		return;
	}
	target = sg->group ? -cmd->pid : cmd->pid;
	if (kill(target, sg->signal) < 0) {
		conn_send_error(c, 0, sg->id, PROTO_E_IO, errno,
				"cannot send signal %d to %s %d: %s", sg->signal,
				sg->group ? "process group" : "process", (int)cmd->pid,
				strerror(errno));
		return;
	}
	if (sg->signal)
		cmd->signalled = true;
	conn_send_ok(c, sg->id);
}

void exec_on_resize(struct conn *c, const struct proto_msg *m)
{
	const struct proto_resize *rs = &m->u.resize;
	struct cmd *cmd = cmd_find_or_reply(c, rs->cmd, rs->id);
	struct winsize ws = {.ws_row = rs->rows, .ws_col = rs->cols};

	if (!cmd)
		return;
	if (cmd->pty < 0) {
		conn_send_error(c, 0, rs->id, PROTO_E_BAD_REQUEST, ENOTTY,
				cmd->state >= CMD_FINISHED ? "command %u has already exited"
							   : "command %u has no terminal (pty)",
				cmd->id);
		return;
	}
	if (!rs->rows || !rs->cols) {
		conn_send_error(c, 0, rs->id, PROTO_E_BAD_REQUEST, EINVAL,
				"a terminal size needs rows and cols above 0");
		return;
	}
	if (ioctl(cmd->pty, TIOCSWINSZ, &ws) < 0) {
		conn_send_error(c, 0, rs->id, PROTO_E_IO, errno,
				"cannot resize the terminal of command %u: %s", cmd->id,
				strerror(errno));
		return;
	}
	conn_send_ok(c, rs->id);
}

void exec_on_attach(struct conn *c, const struct proto_msg *m)
{
	const struct proto_attach *a = &m->u.attach;
	struct cmd *cmd = cmd_find_or_reply(c, a->cmd, a->id);
	struct proto_msg r = {.type = PROTO_ATTACHED};

	if (!cmd)
		return;
	if (a->out_offset > cmd->out.ring.head || a->err_offset > cmd->err.ring.head) {
		conn_send_error(
		    c, cmd->id, a->id, PROTO_E_BAD_REQUEST, EINVAL,
		    "attach offsets %llu/%llu are beyond the output of command %u "
		    "(%llu/%llu bytes)",
		    (unsigned long long)a->out_offset, (unsigned long long)a->err_offset, cmd->id,
		    (unsigned long long)cmd->out.ring.head, (unsigned long long)cmd->err.ring.head);
		return;
	}
	if (cmd->conn && cmd->conn != c)
		log_info("cmd=%u taken over by conn=%u from conn=%u", cmd->id, c->id,
			 cmd->conn->id);
	cmd_attach(cmd, c, a->out_offset, a->err_offset, a->window);
	r.u.attached.id = a->id;
	r.u.attached.cmd = cmd->id;
	r.u.attached.running = cmd->state <= CMD_DRAINING;
	r.u.attached.out_start = ring_start(&cmd->out.ring);
	r.u.attached.err_start = ring_start(&cmd->err.ring);
	r.u.attached.in_offset = cmd->in_done;
	r.u.attached.stdin_window = AGENT_STDIN_WINDOW;
	(void)conn_send(c, &r);
	if (cmd->in_open) {
		cmd->in_acked = UINT64_MAX; /* tell the new host where stdin stands */
		cmd_stdin_flush(cmd);
	}
	cmd_pump(cmd);
}

void exec_on_forget(struct conn *c, const struct proto_msg *m)
{
	const struct proto_forget *f = &m->u.forget;
	struct cmd *cmd = cmd_find_or_reply(c, f->cmd, f->id);

	if (!cmd)
		return;
	if (cmd->state <= CMD_DRAINING) {
		conn_send_error(c, 0, f->id, PROTO_E_BAD_REQUEST, EBUSY,
				"command %u is still running; signal it first", cmd->id);
		return;
	}
	cmd_drop(cmd);
	conn_send_ok(c, f->id);
}
