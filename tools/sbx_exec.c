/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_exec.c - "sbx exec" and "sbx shell": one command in a sandbox over
 * the data plane's WebSocket (/execute/ws), streamed both ways.
 *
 * A session sends "execute" with a fresh command_id, writes each stdout or
 * stderr chunk to our fd 1 or 2 as it arrives (the loop reads nothing more
 * until the write is done, so a slow reader slows the command, not our
 * memory), forwards stdin as "input" once the command has started, and
 * ends with the "exit" code. A dropped connection is reattached with
 * "reconnect" and the byte offsets seen so far, so nothing is lost or
 * printed twice. SIGINT/SIGTERM/SIGHUP ask sbxd to kill the command; a
 * second one leaves at once.
 *
 * With a PTY (shell, exec -t) the local terminal is put in raw mode and
 * restored on every way out: normal returns, exit(), fatal signals
 * (sbx_term_restore() from a handler), and SIGTSTP (restored, stopped,
 * raw again on SIGCONT). SIGWINCH sends "resize".
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "base/io.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "tools/sbx.h"
#include "tools/sbx_frame.h"
#include "tools/sbx_http.h"
#include "tools/sbx_text.h"
#include "tools/sbx_ws.h"

#define READY_WAIT_S 120
#define IDLE_TIMEOUT_S 60 /* a command nobody is attached to is killed after this */
#define TTL_S 60	  /* a finished command stays reattachable this long */
#define MAX_ATTEMPTS 5
#define KILL_GRACE_MS 5000
#define CLOSE_GRACE_MS 2000
#define DEFAULT_SHELL "/bin/bash"
#define LOGIN_SHELL "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"

/* ---- the local terminal ------------------------------------------------------ */

static struct termios term_saved;
static volatile sig_atomic_t term_raw_on;

static void sbx_term_restore(void)
{
	if (term_raw_on) {
		(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &term_saved);
		term_raw_on = 0;
	}
}

static void term_fatal_signal(int sig)
{
	sbx_term_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int sbx_term_raw(void)
{
	static bool hooked;
	struct termios t;

	if (!term_raw_on && tcgetattr(STDIN_FILENO, &term_saved) < 0)
		return -errno;
	if (!hooked) {
		static const int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
		struct sigaction sa = {.sa_handler = term_fatal_signal};

		atexit(sbx_term_restore);
		for (size_t i = 0; i < ARRAY_SIZE(fatal); i++)
			(void)sigaction(fatal[i], &sa, NULL);
		hooked = true;
	}
	t = term_saved;
	cfmakeraw(&t);
	if (tcsetattr(STDIN_FILENO, TCSADRAIN, &t) < 0)
		return -errno;
	term_raw_on = 1;
	return 0;
}

/* ---- the session --------------------------------------------------------------- */

enum timer_kind { TIMER_NONE, TIMER_RETRY, TIMER_KILL, TIMER_CLOSE };

struct session {
	sbx_ws *ws;
	const char *name;
	char *url;
	struct sbx_exec_req req;
	bool forward_stdin, raw_tty;
	bool started, finished, failed, input_watched, killed;
	int kill_signal;
	int attempts;
	int64_t next[2]; /* stdout, stderr: the offset expected next */
	unsigned char carry[4];
	size_t carry_len;
	enum timer_kind timer;
	int code;
};

static void finish(struct session *s, int code)
{
	s->finished = true;
	s->code = code;
	if (sbx_ws_connected(s->ws)) {
		sbx_ws_close(s->ws, 1000);
		s->timer = TIMER_CLOSE;
		sbx_ws_set_timer(s->ws, CLOSE_GRACE_MS);
	} else {
		sbx_ws_stop(s->ws);
	}
}

/* finish() with the error buffer's message to print */
static void fail(struct session *s, int code)
{
	s->failed = true;
	finish(s, code);
}

static void send_text(struct session *s, char *text)
{
	if (!text) {
		err_set(-ENOMEM, "out of memory");
		fail(s, SBX_EXIT_REMOTE);
		return;
	}
	(void)sbx_ws_send(s->ws, text, strlen(text));
	free(text);
}

static void send_resize(struct session *s)
{
	struct winsize w;

	if (!s->req.pty || ioctl(STDIN_FILENO, TIOCGWINSZ, &w) < 0 || !w.ws_row || !w.ws_col)
		return;
	send_text(s, sbx_frame_resize(w.ws_row, w.ws_col));
}

static void on_open(sbx_ws *ws, void *ud)
{
	struct session *s = ud;

	(void)ws;
	if (!s->started)
		send_text(s, sbx_frame_execute(&s->req));
	else
		send_text(s, sbx_frame_reconnect(s->req.command_id, s->next[0], s->next[1]));
}

static void on_started(struct session *s)
{
	s->started = true;
	s->attempts = 0;
	send_resize(s);
	if (s->forward_stdin && !s->input_watched) {
		s->input_watched = true;
		if (sbx_ws_watch_input(s->ws, STDIN_FILENO) < 0)
			log_warn("cannot watch standard input, not forwarding it");
	}
}

static void on_output(struct session *s, const struct sbx_msg *m)
{
	int i = m->type == SBX_MSG_STDOUT ? 0 : 1;
	int64_t offset = m->offset >= 0 ? m->offset : s->next[i];
	size_t skip = sbx_chunk_skip(offset, m->len, s->next[i]);
	int r;

	s->attempts = 0;
	if (offset + (int64_t)m->len > s->next[i])
		s->next[i] = offset + (int64_t)m->len;
	if (skip == m->len)
		return;
	r = io_write_all(i ? STDERR_FILENO : STDOUT_FILENO, m->data + skip, m->len - skip);
	if (r == -EPIPE) {
		/* our reader went away: end the command the way a pipe would */
		send_text(s, sbx_frame_simple("kill"));
		sbx_error_set_final(r, "standard %s was closed", i ? "error" : "output");
		finish(s, 128 + SIGPIPE);
	} else if (r < 0) {
		send_text(s, sbx_frame_simple("kill"));
		sbx_error_set_final(r, "cannot write the command's output: %s", strerror(-r));
		fail(s, SBX_EXIT_REMOTE);
	}
}

static void on_message(sbx_ws *ws, void *ud, const char *data, size_t len)
{
	struct session *s = ud;
	struct sbx_msg m;

	(void)ws;
	if (s->finished)
		return;
	if (sbx_msg_parse(data, len, &m) < 0) {
		log_debug("ignoring a message that is not JSON with a type");
		return;
	}
	switch (m.type) {
	case SBX_MSG_STARTED:
		on_started(s);
		break;
	case SBX_MSG_STDOUT:
	case SBX_MSG_STDERR:
		if (!s->started)
			on_started(s);
		on_output(s, &m);
		break;
	case SBX_MSG_EXIT:
		finish(s, s->killed ? 128 + s->kill_signal : sbx_exit_status(&m));
		break;
	case SBX_MSG_ERROR:
		if (!strcmp(m.error_type, "CommandTimeout")) {
			if (s->req.timeout_s > 0)
				sbx_error_set_final(-ETIMEDOUT,
						    "the command ran longer than %ld s and was "
						    "killed (%s)",
						    s->req.timeout_s, m.error);
			else
				sbx_error_set_final(-ETIMEDOUT, "the command timed out: %s",
						    m.error);
			fail(s, SBX_EXIT_TIMEOUT);
		} else {
			sbx_error_set_final(-EIO, "sbxd could not run the command: %s (%s)",
					    m.error, m.error_type);
			fail(s, SBX_EXIT_REMOTE);
		}
		break;
	case SBX_MSG_OTHER:
		break;
	}
	sbx_msg_release(&m);
}

/* Why the upgrade failed, for a person. */
static void explain_connect_failure(struct session *s, int http_status, const char *why)
{
	const char *ep = sbx_http_config()->endpoint;

	switch (http_status) {
	case 0:
		sbx_error_set_final(-ECONNREFUSED, "cannot reach sbxd at %s: %s", ep, why);
		break;
	case 401:
	case 403:
		sbx_error_set_final(-EACCES, "sbxd refused the API key for the command stream");
		break;
	case 404:
		sbx_error_set_final(-ENOENT, "sbxd has no command stream for sandbox '%s'",
				    s->name);
		break;
	case 501:
		sbx_error_set_final(-ENOSYS,
				    "sbxd at %s cannot run commands yet (its data plane answered "
				    "501 Not Implemented)",
				    ep);
		break;
	default:
		sbx_error_set_final(-EIO,
				    "sbxd refused the command stream for sandbox '%s' (HTTP %d)",
				    s->name, http_status);
	}
}

static void on_closed(sbx_ws *ws, void *ud, int code, int http_status, const char *why)
{
	struct session *s = ud;
	bool retry;

	(void)ws;
	if (s->finished) {
		sbx_ws_stop(s->ws);
		return;
	}
	if (s->killed) {
		finish(s, 128 + s->kill_signal);
		return;
	}
	if (s->started)
		retry = true; /* reattach: the command runs on */
	else if (code == -1)
		retry = http_status == 0 || http_status == 429 || http_status >= 500;
	else
		retry = code == 1000; /* execute is get-or-create by command_id */
	if (http_status == 501)
		retry = false;
	if (!retry || ++s->attempts > MAX_ATTEMPTS) {
		if (code == -1)
			explain_connect_failure(s, http_status, why);
		else
			sbx_error_set_final(-ECONNRESET,
					    "lost the connection to sbxd (%s, code %d)%s", why,
					    code, s->started ? " and could not reattach" : "");
		fail(s, SBX_EXIT_REMOTE);
		return;
	}
	log_debug("connection ended (%s, code %d), trying again (%d of %d)", why, code, s->attempts,
		  MAX_ATTEMPTS);
	s->timer = TIMER_RETRY;
	/* 0.5, 1, 2, 4, 8 s, like the langsmith client; 1001 (restart) at once */
	sbx_ws_set_timer(s->ws, code == 1001 ? 0 : 500L << (s->attempts - 1));
}

static void on_timer(sbx_ws *ws, void *ud)
{
	struct session *s = ud;
	enum timer_kind t = s->timer;

	s->timer = TIMER_NONE;
	switch (t) {
	case TIMER_RETRY:
		(void)sbx_ws_connect(ws, NULL, NULL);
		break;
	case TIMER_KILL:
		sbx_error_set_final(-ETIMEDOUT, "sbxd did not confirm the kill; leaving");
		s->finished = true;
		s->failed = true;
		sbx_ws_stop(ws);
		break;
	case TIMER_CLOSE:
		sbx_ws_stop(ws);
		break;
	case TIMER_NONE:
		break;
	}
}

static void on_input(sbx_ws *ws, void *ud, const char *data, size_t len)
{
	struct session *s = ud;
	unsigned char buf[sizeof(s->carry) + 32 * 1024];
	size_t n = s->carry_len, done = 0;

	(void)ws;
	if (s->finished)
		return;
	if (len == 0) {
		/* a PTY has no stdin to close: ^D is what its line discipline
		 * turns into an end of file */
		send_text(s, s->req.pty ? sbx_frame_input("\x04", 1)
					: sbx_frame_simple("close_stdin"));
		return;
	}
	memcpy(buf, s->carry, n);
	memcpy(buf + n, data, len);
	n += len;
	while (done < n) {
		bool bad;
		size_t ok = sbx_utf8_prefix(buf + done, n - done, &bad);

		if (ok)
			send_text(s, sbx_frame_input((const char *)buf + done, ok));
		done += ok;
		if (!bad)
			break;
		if (!s->req.pty) {
			sbx_error_set_final(-EILSEQ,
					    "standard input is not UTF-8 text, and commands take "
					    "text only (copy binary files with 'sbx cp')");
			send_text(s, sbx_frame_simple("kill"));
			fail(s, SBX_EXIT_REMOTE);
			return;
		}
		done++; /* a terminal sent a byte no UTF-8 text has: drop it */
	}
	s->carry_len = n - done;
	memcpy(s->carry, buf + done, s->carry_len);
}

static void on_signal(sbx_ws *ws, void *ud, int signo)
{
	struct session *s = ud;

	switch (signo) {
	case SIGWINCH:
		send_resize(s);
		return;
	case SIGTSTP:
		sbx_term_restore();
		raise(SIGSTOP);
		return;
	case SIGCONT:
		if (s->raw_tty)
			(void)sbx_term_raw();
		send_resize(s);
		return;
	default:
		break;
	}
	if (s->killed || !s->started || !sbx_ws_connected(ws)) {
		if (s->started && !s->killed)
			log_warn("the command may still be running in '%s'", s->name);
		s->code = 128 + signo;
		s->finished = true;
		sbx_ws_stop(ws);
		return;
	}
	s->killed = true;
	s->kill_signal = signo;
	send_text(s, sbx_frame_simple("kill"));
	s->timer = TIMER_KILL;
	sbx_ws_set_timer(ws, KILL_GRACE_MS);
}

static const struct sbx_ws_ops session_ops = {
    .on_open = on_open,
    .on_message = on_message,
    .on_closed = on_closed,
    .on_input = on_input,
    .on_signal = on_signal,
    .on_timer = on_timer,
};

/* Run req in sandbox name; returns this process's exit code. */
static int run_session(const char *name, struct sbx_exec_req *req, bool forward_stdin)
{
	struct session s = {.name = name, .req = *req, .forward_stdin = forward_stdin};
	_cleanup_free_ char *dp = NULL;
	char command_id[37];
	struct winsize w;
	sigset_t set;
	int r;

	if (sbx_http_need_key() < 0 || sbx_box_dataplane(name, READY_WAIT_S, &dp) < 0)
		return sbx_error_print(SBX_EXIT_REMOTE);
	if (sbx_uuid(command_id) < 0 || asprintf(&s.url, "%s/execute/ws", dp) < 0) {
		err_set(-ENOMEM, "cannot make a command id");
		return sbx_error_print(SBX_EXIT_REMOTE);
	}
	s.req.command_id = command_id;
	s.req.close_stdin = !forward_stdin;
	if (req->pty && ioctl(STDIN_FILENO, TIOCGWINSZ, &w) == 0) {
		s.req.rows = w.ws_row;
		s.req.cols = w.ws_col;
	}
	s.raw_tty = req->pty && forward_stdin && isatty(STDIN_FILENO);
	r = sbx_ws_new(&session_ops, &s, &s.ws);
	if (r < 0) {
		free(s.url);
		err_set(r, "cannot set up the WebSocket client");
		return sbx_error_print(SBX_EXIT_REMOTE);
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	if (req->pty)
		sigaddset(&set, SIGWINCH);
	if (s.raw_tty) {
		sigaddset(&set, SIGTSTP);
		sigaddset(&set, SIGCONT);
	}
	r = sbx_ws_watch_signals(s.ws, &set);
	if (r < 0)
		log_warn("cannot watch signals (%s); Ctrl-C will not stop the command",
			 strerror(-r));
	if (s.raw_tty && sbx_term_raw() < 0)
		log_warn("cannot put the terminal in raw mode: %m");
	r = sbx_ws_connect(s.ws, s.url, sbx_http_config()->api_key);
	if (r < 0) {
		sbx_error_set_final(r, "cannot connect to %s: %s", s.url, strerror(-r));
		s.code = SBX_EXIT_REMOTE;
		s.failed = true;
	} else if (sbx_ws_run(s.ws) < 0) {
		sbx_error_set_final(-EIO, "the WebSocket loop failed");
		s.code = SBX_EXIT_REMOTE;
		s.failed = true;
	}
	s.ws = sbx_ws_free(s.ws);
	sbx_term_restore();
	/* the signals stay blocked: sbx is about to exit, and one that came
	 * after the loop ended must not stop it (SIGTSTP) or change its code */
	free(s.url);
	return s.failed ? sbx_error_print(s.code) : s.code;
}

/* ---- options --------------------------------------------------------------------- */

struct exec_args {
	json_t *env;
	const char *cwd, *shell;
	long timeout_s;
	int stdin_mode; /* -1: never, 0: if not a terminal, 1: always */
	bool tty;
};

static int add_env(json_t *env, const char *kv)
{
	const char *eq = strchr(kv, '=');
	_cleanup_free_ char *k = strndup(kv, eq ? (size_t)(eq - kv) : strlen(kv));
	const char *v = eq ? eq + 1 : getenv(kv);

	if (!k || !*k || !v)
		return -EINVAL;
	return json_object_set_new(env, k, json_string(v)) < 0 ? -EINVAL : 0;
}

/* Options of exec and shell. 1: taken, 0: --help shown, <0: exit code negated. */
static int parse_exec_opt(const struct sbx_command *cmd, int opt, const char *arg,
			  struct exec_args *a)
{
	long n;

	switch (opt) {
	case 'e':
		if (add_env(a->env, arg) < 0)
			return -sbx_usage_error(cmd,
						"--env wants KEY=VALUE (or KEY to pass "
						"ours), not '%s'",
						arg);
		return 1;
	case 'w':
		if (arg[0] != '/')
			return -sbx_usage_error(cmd, "--cwd wants an absolute path");
		a->cwd = arg;
		return 1;
	case 'T':
		if (sbx_parse_long(arg, 0, 7 * 86400, &n) < 0)
			return -sbx_usage_error(cmd, "--timeout wants seconds (0: no limit)");
		a->timeout_s = n;
		return 1;
	case 's':
		a->shell = arg;
		return 1;
	case 'i':
		a->stdin_mode = 1;
		return 1;
	case 'I':
		a->stdin_mode = -1;
		return 1;
	case 't':
		a->tty = true;
		return 1;
	case 'h':
		sbx_usage(cmd, stdout);
		return 0;
	default:
		return -sbx_usage_error(cmd, "unknown option '%s'", arg ? arg : "?");
	}
}

static const struct option exec_opts[] = {
    {"env", required_argument, NULL, 'e'},
    {"cwd", required_argument, NULL, 'w'},
    {"timeout", required_argument, NULL, 'T'},
    {"shell", required_argument, NULL, 's'},
    {"stdin", no_argument, NULL, 'i'},
    {"no-stdin", no_argument, NULL, 'I'},
    {"tty", no_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},
    {0},
};

/* Parse "[OPTIONS] NAME [OPTIONS] [--] [CMD...]": options may come on
 * either side of the name; the command starts at "--" or at the first
 * word after the name that is not an option. */
static int parse_exec_args(const struct sbx_command *cmd, int argc, char **argv,
			   struct exec_args *a, const char **ret_name, int *ret_cmd_index)
{
	int opt, r, base = 0;

	for (int round = 0; round < 2; round++) {
		optind = 0;
		opterr = 0;
		while ((opt = getopt_long(argc - base, argv + base, "+e:w:itIh", exec_opts,
					  NULL)) != -1) {
			r = parse_exec_opt(cmd, opt, opt == '?' ? argv[base + optind - 1] : optarg,
					   a);
			if (r <= 0)
				return r;
		}
		if (round == 0) {
			if (base + optind >= argc)
				return -sbx_usage_error(cmd, "no sandbox name given");
			*ret_name = argv[base + optind];
			/* the name becomes argv[0] of the second round */
			base += optind;
		}
	}
	*ret_cmd_index = base + optind;
	return 1;
}

static int exec_or_shell(const struct sbx_command *cmd, int argc, char **argv, bool shell)
{
	struct exec_args a = {.env = json_object(), .stdin_mode = 0, .tty = shell};
	struct sbx_exec_req req = {0};
	_cleanup_free_ char *command = NULL;
	const char *name = NULL;
	bool forward;
	int r, idx = 0;

	if (!a.env)
		return SBX_EXIT_REMOTE;
	r = parse_exec_args(cmd, argc, argv, &a, &name, &idx);
	if (r <= 0) {
		json_decref(a.env);
		return -r;
	}
	if (idx < argc)
		command = sbx_shell_join(argv + idx, argc - idx);
	else if (shell)
		command = strdup(LOGIN_SHELL);
	else {
		json_decref(a.env);
		return sbx_usage_error(cmd,
				       "no command given (put it after the name, or after --)");
	}
	if (!command) {
		json_decref(a.env);
		return SBX_EXIT_REMOTE;
	}
	if (a.tty && !json_object_get(a.env, "TERM"))
		json_object_set_new(
		    a.env, "TERM", json_string(getenv("TERM") ? getenv("TERM") : "xterm-256color"));
	forward = a.stdin_mode > 0 || (a.stdin_mode == 0 && (a.tty || !isatty(STDIN_FILENO)));
	req.command = command;
	req.shell = a.shell ? a.shell : (idx < argc ? DEFAULT_SHELL : "/bin/sh");
	req.cwd = a.cwd;
	req.env = a.env;
	req.timeout_s = a.timeout_s;
	req.idle_timeout_s = IDLE_TIMEOUT_S;
	req.ttl_s = TTL_S;
	req.pty = a.tty;
	r = run_session(name, &req, forward);
	json_decref(a.env);
	return r;
}

int sbx_cmd_exec(const struct sbx_command *cmd, int argc, char **argv)
{
	return exec_or_shell(cmd, argc, argv, false);
}

int sbx_cmd_shell(const struct sbx_command *cmd, int argc, char **argv)
{
	return exec_or_shell(cmd, argc, argv, true);
}
