/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_testclient.c - blocking protocol client for check_agent.c (see
 * agent_testclient.h).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/agent_testclient.h"

#ifndef SBX_AGENT_BIN
#define SBX_AGENT_BIN "build/sbx-agent"
#endif

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *agent_bin(void)
{
	const char *p = getenv("SBX_AGENT");

	return p && *p ? p : SBX_AGENT_BIN;
}

void agent_start(struct agent_proc *a, bool new_uts)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char listen_arg[160];
	uint64_t deadline;
	int fd, logfd;

	memset(a, 0, sizeof(*a));
	snprintf(a->sock, sizeof(a->sock), "/tmp/sbx-check-agent-%d.sock", (int)getpid());
	snprintf(a->log, sizeof(a->log), "/tmp/sbx-check-agent-%d.log", (int)getpid());
	snprintf(listen_arg, sizeof(listen_arg), "unix:%s", a->sock);
	unlink(a->sock);
	a->pid = fork();
	ck_assert_int_ge(a->pid, 0);
	if (a->pid == 0) {
		/* the agent must not outlive a failed test */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (new_uts && unshare(CLONE_NEWUTS) < 0)
			_exit(126);
		logfd = open(a->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (logfd >= 0)
			dup2(logfd, 2);
		execl(agent_bin(), "sbx-agent", "--listen", listen_arg,
		      getenv("SBX_AGENT_DEBUG") ? "--verbose" : NULL, (char *)NULL);
		_exit(127);
	}
	strcpy(sa.sun_path, a->sock);
	deadline = now_ms() + 10000;
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fd, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			return;
		}
		close(fd);
		ck_assert_msg(now_ms() < deadline, "the agent did not start listening on %s",
			      a->sock);
		ck_assert_msg(waitpid(a->pid, NULL, WNOHANG) == 0, "the agent exited at start");
		usleep(5000);
	}
}

int agent_stop(struct agent_proc *a)
{
	uint64_t deadline = now_ms() + 10000;
	int status = 0;
	pid_t r;

	if (a->pid <= 0)
		return 0;
	kill(a->pid, SIGTERM);
	for (;;) {
		r = waitpid(a->pid, &status, WNOHANG);
		if (r == a->pid)
			break;
		if (now_ms() > deadline) {
			kill(a->pid, SIGKILL);
			waitpid(a->pid, &status, 0);
			ck_abort_msg("the agent did not exit within 10 s of SIGTERM");
		}
		usleep(5000);
	}
	a->pid = 0;
	unlink(a->sock);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		unlink(a->log);
	else
		fprintf(stderr, "agent exited with status 0x%x, log in %s\n", status, a->log);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

long agent_rss_kb(const struct agent_proc *a)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)a->pid);
	f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* ---- framing ----------------------------------------------------------- */

uint32_t tc_id(struct tc *t)
{
	return ++t->next_id;
}

void tc_send_raw(struct tc *t, const void *p, size_t n)
{
	const uint8_t *b = p;
	ssize_t w;

	while (n) {
		w = write(t->fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		ck_assert_msg(w > 0, "write to the agent failed: %s", strerror(errno));
		b += w;
		n -= (size_t)w;
	}
}

void tc_send(struct tc *t, const struct proto_msg *m)
{
	struct proto_buf b;
	int ret;

	proto_buf_init(&b);
	ret = proto_encode(m, &b);
	ck_assert_msg(ret == 0, "cannot encode %s: %s", proto_type_to_string(m->type),
		      strerror(-ret));
	tc_send_raw(t, b.data, b.len);
	proto_buf_release(&b);
}

/* 1 frame, 0 timeout, -1 EOF */
static int tc_recv(struct tc *t, struct proto_msg *m, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	struct pollfd p = {.fd = t->fd, .events = POLLIN};
	uint8_t *space;
	size_t room;
	ssize_t n;
	int ret;

	if (t->have_cur) {
		proto_msg_release(&t->cur);
		t->have_cur = false;
	}
	for (;;) {
		memset(&t->cur, 0, sizeof(t->cur));
		ret = proto_reader_next(&t->rd, &t->cur);
		if (ret == 1) {
			t->have_cur = true;
			*m = t->cur;
			return 1;
		}
		ck_assert_msg(ret == 0, "the agent sent a bad frame: %s", strerror(-ret));
		uint64_t now = now_ms();
		if (now >= deadline)
			return 0;
		ret = poll(&p, 1, (int)(deadline - now));
		if (ret == 0)
			return 0;
		if (ret < 0 && errno == EINTR)
			continue;
		space = proto_reader_space(&t->rd, 65536, &room);
		ck_assert_ptr_nonnull(space);
		n = read(t->fd, space, room);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return -1;
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		ck_assert_msg(n > 0, "read from the agent failed: %s", strerror(errno));
		proto_reader_commit(&t->rd, (size_t)n);
	}
}

static struct tc_cmd *tc_find(struct tc *t, uint32_t id)
{
	unsigned i;

	for (i = 0; i < t->ncmds; i++)
		if (t->cmds[i]->id == id)
			return t->cmds[i];
	return NULL;
}

void tc_register(struct tc *t, struct tc_cmd *cmd)
{
	ck_assert_uint_lt(t->ncmds, TC_MAX_CMDS);
	t->cmds[t->ncmds++] = cmd;
}

void tc_cmd_release(struct tc_cmd *cmd)
{
	free(cmd->out);
	free(cmd->err);
	cmd->out = cmd->err = NULL;
}

void tc_ack(struct tc *t, struct tc_cmd *cmd)
{
	struct proto_msg m = {.type = PROTO_ACK, .channel = cmd->id};

	m.u.ack.out = cmd->out_next;
	m.u.ack.err = cmd->err_next;
	m.u.ack.in = PROTO_ACK_NONE;
	tc_send(t, &m);
}

static void append(uint8_t **buf, size_t *cap, uint64_t at, const struct proto_bytes *d)
{
	size_t need = (size_t)at + d->len + 1;

	if (need > *cap) {
		*cap = need * 2;
		*buf = realloc(*buf, *cap);
		ck_assert_ptr_nonnull(*buf);
	}
	memcpy(*buf + at, d->data, d->len);
	(*buf)[at + d->len] = '\0';
}

static bool tc_route(struct tc *t, const struct proto_msg *m)
{
	struct tc_cmd *cmd;

	if (m->type != PROTO_OUTPUT && m->type != PROTO_EXIT && m->type != PROTO_ACK)
		return false;
	cmd = tc_find(t, m->channel);
	if (!cmd)
		return false;
	if (m->type == PROTO_OUTPUT) {
		const struct proto_output *o = &m->u.output;
		bool out = o->stream == PROTO_STDOUT;
		uint64_t *next = out ? &cmd->out_next : &cmd->err_next;

		ck_assert_msg(o->offset == *next,
			      "cmd %u %s: OUTPUT at offset %llu, expected %llu (gap or repeat)",
			      cmd->id, out ? "stdout" : "stderr", (unsigned long long)o->offset,
			      (unsigned long long)*next);
		ck_assert_uint_le(o->data.len, 256 * 1024);
		if (!cmd->discard) {
			if (out)
				append(&cmd->out, &cmd->out_cap, o->offset, &o->data);
			else
				append(&cmd->err, &cmd->err_cap, o->offset, &o->data);
		}
		*next += o->data.len;
		cmd->outputs++;
		if (cmd->auto_ack)
			tc_ack(t, cmd);
	} else if (m->type == PROTO_EXIT) {
		cmd->exited = true;
		cmd->exit = m->u.exit;
	} else if (m->u.ack.in != PROTO_ACK_NONE && m->u.ack.in > cmd->in_acked) {
		cmd->in_acked = m->u.ack.in;
	}
	return true;
}

int tc_step(struct tc *t, struct proto_msg *m, int timeout_ms, bool *routed)
{
	int ret = tc_recv(t, m, timeout_ms);

	*routed = ret > 0 && tc_route(t, m);
	return ret > 0 ? m->type : ret;
}

int tc_wait_frame(struct tc *t, struct proto_msg *m, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	uint64_t now;
	int ret;

	for (;;) {
		now = now_ms();
		ret = tc_recv(t, m, now >= deadline ? 0 : (int)(deadline - now));
		if (ret <= 0)
			return ret;
		if (!tc_route(t, m))
			return m->type;
	}
}

void tc_expect(struct tc *t, uint16_t type, struct proto_msg *m, int timeout_ms)
{
	int got = tc_wait_frame(t, m, timeout_ms);

	ck_assert_msg(got != 0, "timed out waiting for %s", proto_type_to_string(type));
	ck_assert_msg(got != -1, "the agent closed the connection while we waited for %s",
		      proto_type_to_string(type));
	if (got == PROTO_ERROR && type != PROTO_ERROR)
		ck_abort_msg("waiting for %s, got ERROR code=%s errno=%d: %s",
			     proto_type_to_string(type), proto_err_to_string(m->u.error.code),
			     m->u.error.err_no, m->u.error.msg ? m->u.error.msg : "");
	ck_assert_msg(got == type, "waiting for %s, got %s", proto_type_to_string(type),
		      proto_type_to_string((uint16_t)got));
}

void tc_expect_error(struct tc *t, struct tc_error *e, int timeout_ms)
{
	struct proto_msg m;

	tc_expect(t, PROTO_ERROR, &m, timeout_ms);
	e->id = m.u.error.id;
	e->code = m.u.error.code;
	e->err_no = m.u.error.err_no;
	snprintf(e->msg, sizeof(e->msg), "%s", m.u.error.msg ? m.u.error.msg : "");
}

void tc_wait_exit(struct tc *t, struct tc_cmd *cmd, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	struct proto_msg m;
	bool routed;
	uint64_t now;
	int got;

	while (!cmd->exited) {
		now = now_ms();
		ck_assert_msg(now < deadline, "cmd %u: no EXIT within %d ms", cmd->id, timeout_ms);
		got = tc_step(t, &m, (int)(deadline - now), &routed);
		ck_assert_msg(got != -1, "connection closed while waiting for EXIT");
		if (routed || got == 0)
			continue;
		if (got == PROTO_ERROR)
			ck_abort_msg("ERROR while waiting for EXIT: %s",
				     m.u.error.msg ? m.u.error.msg : "");
		ck_abort_msg("unexpected %s while waiting for EXIT",
			     proto_type_to_string((uint16_t)got));
	}
}

void tc_idle(struct tc *t, int ms)
{
	struct proto_msg m;
	int got = tc_wait_frame(t, &m, ms);

	ck_assert_msg(got == 0, "unexpected frame %s", proto_type_to_string((uint16_t)got));
}

/* ---- connection -------------------------------------------------------- */

/* Like the host: HELLO, then a PING barrier. The agent answers every HELLO
 * and sends one unprompted when a connection starts (which virtio-serial
 * may lose or the agent may not see as new); all of them come before the
 * PONG. */
void tc_connect_fd(struct tc *t, int fd)
{
	struct proto_msg m, hello = {.type = PROTO_HELLO};
	const char *caps[] = {"exec", NULL};
	bool seen = false;
	uint32_t i;
	int got;

	memset(t, 0, sizeof(*t));
	t->fd = fd;
	proto_reader_init(&t->rd, PROTO_MAX_BODY);
	hello.u.hello.version = PROTO_VERSION;
	hello.u.hello.software = "check_agent";
	hello.u.hello.caps.v = caps;
	hello.u.hello.caps.n = 1;
	tc_send(t, &hello);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_PING;
	m.u.idonly.id = tc_id(t);
	tc_send(t, &m);
	for (;;) {
		got = tc_wait_frame(t, &m, 10000);
		ck_assert_msg(got > 0, "no HELLO and PONG from the agent");
		if (got == PROTO_PONG && seen)
			break;
		ck_assert_msg(got == PROTO_HELLO, "got %s before the agent's HELLO",
			      proto_type_to_string((uint16_t)got));
		if (seen)
			continue;
		seen = true;
		t->hello.version = m.u.hello.version;
		t->hello.max_body = m.u.hello.max_body;
		for (i = 0; i < m.u.hello.caps.n; i++) {
			strncat(t->caps, m.u.hello.caps.v[i],
				sizeof(t->caps) - strlen(t->caps) - 2);
			strcat(t->caps, " ");
		}
	}
}

void tc_connect(struct tc *t, const char *sock)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	strcpy(sa.sun_path, sock);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s", sock,
		      strerror(errno));
	tc_connect_fd(t, fd);
}

void tc_close(struct tc *t)
{
	if (t->have_cur)
		proto_msg_release(&t->cur);
	t->have_cur = false;
	proto_reader_release(&t->rd);
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	t->ncmds = 0;
}

/* ---- requests ---------------------------------------------------------- */

void tc_exec_init(struct proto_exec *e)
{
	memset(e, 0, sizeof(*e));
	e->uid = -1;
	e->gid = -1;
}

int tc_exec(struct tc *t, struct proto_exec *e, struct tc_cmd *cmd, struct tc_error *err)
{
	struct proto_msg m = {.type = PROTO_EXEC};
	int got;

	memset(cmd, 0, sizeof(*cmd));
	cmd->auto_ack = true;
	e->id = tc_id(t);
	m.u.exec = *e;
	tc_send(t, &m);
	got = tc_wait_frame(t, &m, 10000);
	ck_assert_msg(got == PROTO_EXEC_STARTED || got == PROTO_ERROR, "EXEC answered with %d",
		      got);
	if (got == PROTO_ERROR) {
		ck_assert_uint_eq(m.u.error.id, e->id);
		if (!err)
			ck_abort_msg("EXEC failed: %s", m.u.error.msg ? m.u.error.msg : "");
		err->id = m.u.error.id;
		err->code = m.u.error.code;
		err->err_no = m.u.error.err_no;
		snprintf(err->msg, sizeof(err->msg), "%s", m.u.error.msg ? m.u.error.msg : "");
		return -1;
	}
	ck_assert_uint_eq(m.u.exec_started.id, e->id);
	ck_assert_uint_ne(m.u.exec_started.cmd, 0);
	ck_assert_uint_eq(m.channel, m.u.exec_started.cmd);
	cmd->id = m.u.exec_started.cmd;
	cmd->pid = m.u.exec_started.pid;
	tc_register(t, cmd);
	return 0;
}

void tc_run_shell(struct tc *t, const char *shell, struct tc_cmd *cmd, int timeout_ms)
{
	struct proto_exec e;

	tc_exec_init(&e);
	e.shell = shell;
	tc_exec(t, &e, cmd, NULL);
	tc_wait_exit(t, cmd, timeout_ms);
}

void tc_stdin(struct tc *t, struct tc_cmd *cmd, uint64_t *offset, const void *p, size_t n, bool eof)
{
	const uint64_t window = 256 * 1024;
	struct proto_msg m;
	size_t done = 0, chunk;
	bool routed;
	int got;

	while (done < n || eof) {
		while (*offset - cmd->in_acked >= window) {
			got = tc_step(t, &m, 10000, &routed);
			ck_assert_msg(got == 0 || routed || got == PROTO_OK,
				      "unexpected %s while sending stdin",
				      proto_type_to_string((uint16_t)got));
			ck_assert_msg(got != 0, "no stdin ACK within 10 s (sent %llu, acked %llu)",
				      (unsigned long long)*offset,
				      (unsigned long long)cmd->in_acked);
		}
		chunk = n - done;
		if (chunk > 64 * 1024)
			chunk = 64 * 1024;
		if (chunk > window - (*offset - cmd->in_acked))
			chunk = (size_t)(window - (*offset - cmd->in_acked));
		memset(&m, 0, sizeof(m));
		m.type = PROTO_STDIN;
		m.channel = cmd->id;
		m.u.stdin_data.offset = *offset;
		m.u.stdin_data.data.data = (const uint8_t *)p + done;
		m.u.stdin_data.data.len = chunk;
		if (eof && done + chunk == n) {
			m.flags = PROTO_F_EOF;
			eof = false;
		}
		tc_send(t, &m);
		done += chunk;
		*offset += chunk;
	}
}

int tc_request(struct tc *t, struct proto_msg *m, struct tc_error *e)
{
	uint32_t id = proto_msg_id(m);
	struct proto_msg r;
	int got;

	tc_send(t, m);
	got = tc_wait_frame(t, &r, 10000);
	ck_assert_msg(got == PROTO_OK || got == PROTO_ERROR, "%s answered with %d",
		      proto_type_to_string(m->type), got);
	if (got == PROTO_OK) {
		ck_assert_uint_eq(r.u.idonly.id, id);
		return 0;
	}
	ck_assert_uint_eq(r.u.error.id, id);
	if (!e)
		ck_abort_msg("%s failed: %s", proto_type_to_string(m->type),
			     r.u.error.msg ? r.u.error.msg : "");
	e->id = r.u.error.id;
	e->code = r.u.error.code;
	e->err_no = r.u.error.err_no;
	snprintf(e->msg, sizeof(e->msg), "%s", r.u.error.msg ? r.u.error.msg : "");
	return -1;
}
