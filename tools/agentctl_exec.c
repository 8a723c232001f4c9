/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentctl_exec.c - run one command on an agent and stream it, for the exec
 * and run subcommands of sbx-agentctl.
 *
 * One poll loop over the agent connection, our stdin (only while the agent
 * has stdin credit for us: that is the back-pressure) and a signalfd.
 * Output is written to our stdout/stderr from the on_output callback with
 * blocking writes; the client acknowledges it when the callback returns, so
 * a slow reader of our stdout slows the remote command.
 *
 * Signals: SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded to the remote
 * command's process group; the third one gives up on it (SIGKILL) and leaves.
 * SIGWINCH becomes a RESIZE when a PTY is in use. With a PTY and a terminal
 * on stdin, the terminal is put in raw mode and restored on every way out.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>

#include "base/io.h"
#include "base/err.h"
#include "tools/agentctl_common.h"
#include "base/cleanup.h"
#include "base/log.h"

#define STDIN_BUF (64 * 1024)

struct exec_state {
	agent_client *c;
	agent_cmd *cmd;
	bool started, finished;
	struct proto_exit ex;
	int err;
	char errmsg[1024];
	/* stdin forwarding */
	bool fwd, stdin_eof, stdin_wait;
	uint8_t *buf;
	size_t blen, boff;
	/* our output */
	bool out_broken;
	int signals;
};

void agentctl_error(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "sbx-agentctl: %s\n", buf);
}

static void on_started(agent_cmd *cmd, void *ud)
{
	struct exec_state *s = ud;

	s->started = true;
	if (arg_verbose)
		fprintf(stderr, "sbx-agentctl: started command %" PRIu32 " (pid %d in the guest)\n",
			agent_cmd_id(cmd), agent_cmd_pid(cmd));
}

static void on_output(agent_cmd *cmd, int stream, uint64_t offset, const uint8_t *data, size_t len,
		      void *ud)
{
	struct exec_state *s = ud;
	int r;

	(void)offset;
	if (s->out_broken)
		return;
	r = io_write_all(stream == PROTO_STDERR ? STDERR_FILENO : STDOUT_FILENO, data, len);
	if (r == -EPIPE) {
		/* our reader went away (| head): the command would get SIGPIPE
		 * if it wrote to that pipe itself */
		s->out_broken = true;
		(void)agent_cmd_signal(cmd, SIGPIPE);
	} else if (r < 0) {
		s->out_broken = true;
		agentctl_error("cannot write the command's output: %s", strerror(-r));
	}
}

static void on_exit_cb(agent_cmd *cmd, const struct proto_exit *e, void *ud)
{
	struct exec_state *s = ud;

	(void)cmd;
	s->ex = *e;
	s->finished = true;
}

static void on_error(agent_cmd *cmd, int err, const char *msg, void *ud)
{
	struct exec_state *s = ud;

	(void)cmd;
	s->err = err;
	snprintf(s->errmsg, sizeof(s->errmsg), "%s", msg && *msg ? msg : strerror(-err));
	s->finished = true;
}

static void on_stdin_ready(agent_cmd *cmd, void *ud)
{
	struct exec_state *s = ud;

	(void)cmd;
	s->stdin_wait = false;
}

static void stdin_flush(struct exec_state *s)
{
	ssize_t n;

	while (s->blen > s->boff && !s->stdin_wait) {
		n = agent_cmd_write_stdin(s->cmd, s->buf + s->boff, s->blen - s->boff);
		if (n == -EAGAIN) {
			s->stdin_wait = true;
			return;
		}
		if (n < 0) {
			/* the command closed its stdin or ended: drop ours */
			s->fwd = false;
			s->blen = s->boff = 0;
			return;
		}
		s->boff += (size_t)n;
	}
	if (s->blen == s->boff) {
		s->blen = s->boff = 0;
		if (s->stdin_eof && s->fwd) {
			(void)agent_cmd_close_stdin(s->cmd);
			s->fwd = false;
		}
	}
}

static void stdin_read(struct exec_state *s)
{
	ssize_t n = read(STDIN_FILENO, s->buf, STDIN_BUF);

	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		agentctl_error("cannot read stdin: %s", strerror(errno));
		n = 0;
	}
	if (n == 0)
		s->stdin_eof = true;
	s->blen = (size_t)n;
	s->boff = 0;
	stdin_flush(s);
}

static void resize_from_tty(struct exec_state *s)
{
	struct winsize ws;

	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col)
		(void)agent_cmd_resize(s->cmd, ws.ws_row, ws.ws_col);
}

/* Returns true when we should stop waiting. */
static bool handle_signal(struct exec_state *s, int sigfd, bool pty)
{
	struct signalfd_siginfo si;

	while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGWINCH) {
			if (pty && s->started)
				resize_from_tty(s);
			continue;
		}
		s->signals++;
		if (!s->started)
			return true;
		if (s->signals >= 3) {
			(void)agent_cmd_signal(s->cmd, SIGKILL);
			(void)agent_client_on_writable(s->c);
			return true;
		}
		(void)agent_cmd_signal(s->cmd, s->signals == 2 ? SIGKILL : (int)si.ssi_signo);
	}
	return false;
}

static struct termios saved_tio;
static bool tio_saved;

static void tty_restore(void)
{
	if (tio_saved) {
		(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tio);
		tio_saved = false;
	}
}

static int tty_raw(void)
{
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return -errno;
	t = saved_tio;
	cfmakeraw(&t);
	if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) < 0)
		return -errno;
	tio_saved = true;
	atexit(tty_restore);
	return 0;
}

static int exit_code_of(const struct exec_state *s, const struct exec_opts *o)
{
	if (s->ex.timed_out)
		agentctl_error("the command timed out after %.3g s and was killed",
			       o->timeout_ms / 1000.0);
	if (s->ex.signal > 0)
		return 128 + (s->ex.signal & 0x7f);
	return s->ex.code & 0xff;
}

static int error_exit_code(int err)
{
	if (err == -ENOENT)
		return EXIT_NOTFOUND;
	if (err == -EACCES || err == -ENOEXEC || err == -EISDIR || err == -ENOTDIR)
		return EXIT_NOEXEC;
	return EXIT_TOOL;
}

static void print_json_summary(const struct exec_state *s, int code)
{
	json_t *j = json_object();
	char *txt;

	if (!j)
		return;
	json_object_set_new(j, "exit_code", json_integer(code));
	if (s->err) {
		json_object_set_new(j, "error", json_string(s->errmsg));
	} else {
		json_object_set_new(j, "code", json_integer(s->ex.code));
		json_object_set_new(j, "signal", json_integer(s->ex.signal));
		json_object_set_new(j, "timed_out", json_boolean(s->ex.timed_out));
		json_object_set_new(j, "killed", json_boolean(s->ex.killed));
		json_object_set_new(j, "duration_ms", json_integer((json_int_t)s->ex.duration_ms));
		json_object_set_new(j, "stdout_bytes", json_integer((json_int_t)s->ex.out_total));
		json_object_set_new(j, "stderr_bytes", json_integer((json_int_t)s->ex.err_total));
	}
	txt = json_dumps(j, JSON_COMPACT);
	if (txt)
		fprintf(stderr, "%s\n", txt);
	free(txt);
	json_decref(j);
}

int agentctl_exec(agent_client *c, const struct exec_opts *o, int sigfd)
{
	static const struct agent_cmd_ops ops = {
	    .on_started = on_started,
	    .on_output = on_output,
	    .on_exit = on_exit_cb,
	    .on_error = on_error,
	    .on_stdin_ready = on_stdin_ready,
	};
	struct agent_exec_spec spec = {0};
	struct exec_state s = {.c = c};
	bool tty_in = isatty(STDIN_FILENO);
	struct winsize ws;
	int r, code;

	spec.argv = o->argv;
	spec.shell = o->shell;
	spec.env = o->env;
	spec.cwd = o->cwd;
	spec.pty = o->tty;
	spec.timeout_ms = o->timeout_ms;
	s.fwd = o->stdin_fwd || (o->tty && tty_in);
	spec.stdin_open = s.fwd;
	if (o->tty && tty_in && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
		spec.rows = ws.ws_row;
		spec.cols = ws.ws_col;
	}
	if (s.fwd) {
		s.buf = malloc(STDIN_BUF);
		if (!s.buf)
			return EXIT_TOOL;
	}
	/* the remote command reads its own terminal; the local one only
	 * carries bytes */
	agent_client_set_timeout(c, 0);
	r = agent_exec(c, &spec, &ops, &s, &s.cmd);
	if (r < 0) {
		agentctl_error("cannot start the command: %s", err_msg());
		free(s.buf);
		return EXIT_TOOL;
	}
	if (o->tty && tty_in)
		(void)tty_raw();

	while (!s.finished) {
		struct pollfd p[3];
		int n = 0, ia, is = -1, ig = -1;

		ia = n;
		p[n].fd = agent_client_fd(c);
		p[n].events = POLLIN | (agent_client_wants_write(c) ? POLLOUT : 0);
		n++;
		if (s.fwd && s.started && !s.stdin_eof && !s.stdin_wait && s.blen == 0) {
			is = n;
			p[n].fd = STDIN_FILENO;
			p[n].events = POLLIN;
			n++;
		}
		if (sigfd >= 0) {
			ig = n;
			p[n].fd = sigfd;
			p[n].events = POLLIN;
			n++;
		}
		r = poll(p, (nfds_t)n, -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (ig >= 0 && (p[ig].revents & POLLIN) && handle_signal(&s, sigfd, o->tty))
			break;
		if (p[ia].revents & POLLOUT)
			(void)agent_client_on_writable(c);
		if (p[ia].revents & (POLLIN | POLLHUP | POLLERR))
			(void)agent_client_on_readable(c);
		if (agent_client_error(c) && !s.finished) {
			s.err = agent_client_error(c);
			snprintf(s.errmsg, sizeof(s.errmsg), "%s", err_msg());
			break;
		}
		if (is >= 0 && (p[is].revents & (POLLIN | POLLHUP | POLLERR)))
			stdin_read(&s);
		if (s.fwd && s.started)
			stdin_flush(&s);
	}
	/* what is still queued (an ACK, a last SIGKILL) is best effort */
	if (!agent_client_error(c))
		(void)agent_client_on_writable(c);
	tty_restore();

	if (s.err) {
		agentctl_error("%s", s.errmsg);
		code = error_exit_code(s.err);
	} else if (!s.finished) {
		agentctl_error("gave up waiting for the command");
		code = 128 + SIGINT;
	} else {
		code = exit_code_of(&s, o);
	}
	if (arg_json)
		print_json_summary(&s, code);
	agent_cmd_free(s.cmd);
	free(s.buf);
	return code;
}

int agentctl_parse_exec_opt(int opt, const char *arg, struct exec_opts *o, const char ***envv,
			    size_t *nenv)
{
	const char **v;
	char *end;
	double d;

	switch (opt) {
	case 't':
		o->tty = true;
		return 1;
	case 'i':
		o->stdin_fwd = true;
		return 1;
	case 'e':
		if (!strchr(arg, '=')) {
			agentctl_error("--env wants KEY=VALUE, not '%s'", arg);
			return -1;
		}
		v = realloc(*envv, (*nenv + 2) * sizeof(*v));
		if (!v)
			return -1;
		v[(*nenv)++] = arg;
		v[*nenv] = NULL;
		*envv = v;
		o->env = v;
		return 1;
	case 'w':
		o->cwd = arg;
		return 1;
	case 'c':
		o->shell = arg;
		return 1;
	case 'T':
		errno = 0;
		d = strtod(arg, &end);
		if (errno || end == arg || *end || d < 0 || d > 4000000) {
			agentctl_error("bad timeout '%s' (seconds)", arg);
			return -1;
		}
		o->timeout_ms = (uint32_t)(d * 1000);
		return 1;
	default:
		return 0;
	}
}

static int signal_check(void *ud)
{
	int sigfd = *(int *)ud;
	struct pollfd p = {.fd = sigfd, .events = POLLIN};

	if (sigfd >= 0 && poll(&p, 1, 0) > 0) {
		struct signalfd_siginfo si;

		while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			if (si.ssi_signo != SIGWINCH)
				return -ECANCELED;
	}
	return 0;
}

struct connect_check {
	int sigfd;
	int (*check)(void *ud);
	void *ud;
};

static int connect_check_fn(void *ud)
{
	struct connect_check *cc = ud;
	int r;

	r = signal_check(&cc->sigfd);
	if (r < 0)
		return r;
	return cc->check ? cc->check(cc->ud) : 0;
}

int agentctl_connect(const char *addr, int timeout_ms, int sigfd, int (*check)(void *ud), void *ud,
		     bool quiet, agent_client **ret)
{
	struct connect_check cc = {.sigfd = sigfd, .check = check, .ud = ud};
	struct agent_connect_opts co = {
	    .timeout_ms = timeout_ms,
	    .check = connect_check_fn,
	    .ud = &cc,
	};
	int r;

	r = agent_client_connect_opts(addr, &co, ret);
	if (r >= 0 || quiet)
		return r;
	if (r == -ECANCELED)
		agentctl_error("interrupted while connecting to the agent");
	else if (r < 0 && *err_msg())
		agentctl_error("%s", err_msg());
	else if (r < 0)
		agentctl_error("cannot connect to the agent at %s: %s", addr, strerror(-r));
	return r;
}

int agentctl_signalfd(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGWINCH);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? -errno : fd;
}
