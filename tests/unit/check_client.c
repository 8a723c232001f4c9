/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_client.c - host/agent_client against the real agent, run as an
 * ordinary process (sbx-agent --listen unix:PATH), against a scripted fake
 * agent on a socketpair (for what a real agent never does: gaps, window
 * overruns, lies in ACKs), and sbx-agentctl --connect against the real agent.
 *
 * The binaries are found through $SBX_AGENT_BIN / $SBX_AGENTCTL_BIN, else
 * beside this test's directory (build/tests/check_client -> build/sbx-agent).
 * Each test runs in its own fork with its own agent and temporary directory.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "host/agent/agent_client.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "protocol/proto.h"

LOG_DEFINE_STATE("check_client");

static char tmpdir[PATH_MAX];
static char sock_path[PATH_MAX + 16];
static char addr[PATH_MAX + 32];
static pid_t agent_pid = -1;

/* ---- helpers --------------------------------------------------------------- */

static const char *find_bin(const char *env, const char *name)
{
	static char buf[2][PATH_MAX + 64];
	static int which;
	char exe[PATH_MAX], *p;
	const char *e = getenv(env);
	ssize_t n;

	if (e && *e)
		return e;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = 0;
	p = strrchr(exe, '/');
	*p = 0;
	p = strrchr(exe, '/'); /* build/tests -> build */
	if (p)
		*p = 0;
	which ^= 1;
	snprintf(buf[which], sizeof(buf[which]), "%s/%s", exe, name);
	return buf[which];
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void start_agent(void)
{
	const char *bin = find_bin("SBX_AGENT_BIN", "sbx-agent");
	char logp[PATH_MAX + 16];
	uint64_t t0;
	pid_t pid;

	ck_assert_msg(access(bin, X_OK) == 0, "the agent binary %s is missing (make it first)",
		      bin);
	snprintf(logp, sizeof(logp), "%s/agent.log", tmpdir);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, bin, "--listen", addr, (char *)NULL);
		_exit(127);
	}
	agent_pid = pid;
	t0 = now_ms();
	while (access(sock_path, F_OK) < 0) {
		ck_assert_msg(now_ms() - t0 < 5000, "the agent did not create %s", sock_path);
		ck_assert_msg(waitpid(pid, NULL, WNOHANG) == 0,
			      "the agent exited at start (see %s)", logp);
		usleep(5000);
	}
}

static void stop_agent(void)
{
	if (agent_pid > 0) {
		kill(agent_pid, SIGKILL);
		waitpid(agent_pid, NULL, 0);
		agent_pid = -1;
	}
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check-client-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(sock_path, sizeof(sock_path), "%s/agent.sock", tmpdir);
	snprintf(addr, sizeof(addr), "unix:%s", sock_path);
	start_agent();
}

static void teardown(void)
{
	char cmd[PATH_MAX + 32];

	stop_agent();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)!system(cmd);
}

static agent_client *connect_ok(void)
{
	agent_client *c = NULL;
	int r = agent_client_connect(addr, 5000, &c);

	ck_assert_msg(r == 0, "connect %s: %s (%s)", addr, strerror(-r), err_msg());
	agent_client_set_timeout(c, 20000);
	return c;
}

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 4096;
		b->p = realloc(b->p, b->cap);
		ck_assert_ptr_nonnull(b->p);
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static bool buf_is(const struct buf *b, const char *s)
{
	return b->len == strlen(s) && memcmp(b->p, s, b->len) == 0;
}

struct run {
	struct buf out, err;
	bool started, exited, failed, stdin_ready;
	struct proto_exit ex;
	int errcode;
	char msg[1024];
	uint64_t next_off[2]; /* expected offset per stream */
	bool offsets_ok;
	agent_cmd *free_on_exit;
};

static void r_started(agent_cmd *cmd, void *ud)
{
	struct run *r = ud;

	(void)cmd;
	r->started = true;
}

static void r_output(agent_cmd *cmd, int stream, uint64_t off, const uint8_t *d, size_t n, void *ud)
{
	struct run *r = ud;
	int s = stream == PROTO_STDERR;

	(void)cmd;
	if (off != r->next_off[s])
		r->offsets_ok = false;
	r->next_off[s] = off + n;
	buf_add(s ? &r->err : &r->out, d, n);
}

static void r_exit(agent_cmd *cmd, const struct proto_exit *e, void *ud)
{
	struct run *r = ud;

	r->ex = *e;
	r->exited = true;
	if (r->free_on_exit == cmd)
		r->free_on_exit = agent_cmd_free(cmd);
}

static void r_error(agent_cmd *cmd, int err, const char *msg, void *ud)
{
	struct run *r = ud;

	(void)cmd;
	r->failed = true;
	r->errcode = err;
	snprintf(r->msg, sizeof(r->msg), "%s", msg);
}

static void r_stdin_ready(agent_cmd *cmd, void *ud)
{
	struct run *r = ud;

	(void)cmd;
	r->stdin_ready = true;
}

static void run_release(struct run *r)
{
	free(r->out.p);
	free(r->err.p);
	r->out.p = r->err.p = NULL;
}

static const struct agent_cmd_ops run_ops = {
    .on_started = r_started,
    .on_output = r_output,
    .on_exit = r_exit,
    .on_error = r_error,
    .on_stdin_ready = r_stdin_ready,
};

/* Pump until *flag or the time is up; returns whether flag got set. */
static bool pump_until(agent_client *c, const bool *flag, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	while (!*flag && now_ms() < end)
		if (agent_client_pump(c, 20) < 0)
			break;
	return *flag;
}

static void pump_for(agent_client *c, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (now_ms() < end)
		if (agent_client_pump(c, 10) < 0)
			break;
}

static agent_cmd *exec_sh(agent_client *c, const char *script, struct run *r, uint32_t window,
			  bool manual, bool with_stdin)
{
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	struct agent_exec_spec spec = {
	    .argv = argv,
	    .window = window,
	    .manual_ack = manual,
	    .stdin_open = with_stdin,
	};
	agent_cmd *cmd = NULL;
	int ret;

	r->offsets_ok = true;
	ret = agent_exec(c, &spec, &run_ops, r, &cmd);
	ck_assert_int_eq(ret, 0);
	return cmd;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static uint8_t *read_file(const char *path, size_t *ret_len)
{
	struct stat st;
	uint8_t *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	p = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(read(fd, p, (size_t)st.st_size), st.st_size);
	close(fd);
	*ret_len = (size_t)st.st_size;
	return p;
}

/* ---- core ------------------------------------------------------------------- */

START_TEST(test_connect_exchanges_hello)
{
	agent_client *c = connect_ok();

	ck_assert(agent_client_ready(c));
	ck_assert_msg(strncmp(agent_client_peer_software(c), "sbx-agent", 9) == 0, "peer is '%s'",
		      agent_client_peer_software(c));
	ck_assert(agent_client_has_cap(c, "exec"));
	ck_assert(!agent_client_has_cap(c, "no-such-cap"));
	ck_assert_int_eq(agent_client_error(c), 0);
	agent_client_free(c);
}
END_TEST

START_TEST(test_ping_reports_round_trip)
{
	agent_client *c = connect_ok();
	uint64_t rtt = 0;
	int i;

	for (i = 0; i < 20; i++) {
		ck_assert_int_eq(agent_ping(c, &rtt), 0);
		ck_assert_uint_gt(rtt, 0);
		ck_assert_uint_lt(rtt, 5000000);
	}
	agent_client_free(c);
}
END_TEST

START_TEST(test_info_describes_the_agent)
{
	agent_client *c = connect_ok();
	struct agent_info i;

	ck_assert_int_eq(agent_info(c, &i), 0);
	ck_assert_str_ne(i.hostname, "");
	ck_assert_str_ne(i.kernel, "");
	ck_assert_uint_gt(i.ncpus, 0);
	ck_assert_uint_gt(i.mem_total, 0);
	agent_info_release(&i);
	agent_client_free(c);
}
END_TEST

/* The agent runs as an ordinary process on this machine: the tests never
 * send a clock or a hostname (they would change the machine's). */
START_TEST(test_fixup_adds_entropy)
{
	agent_client *c = connect_ok();
	struct agent_fixup_spec spec = {0};
	uint8_t entropy[32];
	int r;

	for (size_t i = 0; i < sizeof(entropy); i++)
		entropy[i] = (uint8_t)(i * 37 + 11);
	spec.entropy = entropy;
	spec.entropy_len = sizeof(entropy);
	r = agent_fixup(c, &spec);
	if (geteuid() == 0) {
		ck_assert_msg(r == 0, "fixup: %s", agent_client_last_error(c));
	} else {
		ck_assert_int_eq(r, -EPERM);
		ck_assert_msg(strstr(agent_client_last_error(c), "cannot add entropy") &&
				  strstr(agent_client_last_error(c), "does not run as root"),
			      "message: %s", agent_client_last_error(c));
	}
	/* nothing at all is a valid FIXUP */
	memset(&spec, 0, sizeof(spec));
	ck_assert_int_eq(agent_fixup(c, &spec), 0);
	ck_assert_int_eq(agent_ping(c, NULL), 0);
	agent_client_free(c);
}
END_TEST

START_TEST(test_fixup_root_is_refused_by_an_agent_that_is_not_pid1)
{
	agent_client *c = connect_ok();
	struct agent_fixup_spec spec = {.root = "/dev/vda", .hostname = "never-applied"};
	struct agent_info i;

	ck_assert(agent_client_has_cap(c, "root"));
	ck_assert_int_eq(agent_fixup(c, &spec), -EBUSY);
	ck_assert_msg(strstr(agent_client_last_error(c), "the root disk is already mounted"),
		      "message: %s", agent_client_last_error(c));
	/* refused as a whole: the hostname was not touched */
	ck_assert_int_eq(agent_info(c, &i), 0);
	ck_assert_str_ne(i.hostname, "never-applied");
	agent_info_release(&i);
	spec = (struct agent_fixup_spec){.root = "/dev/vda", .rootfstype = "xfs"};
	ck_assert_int_eq(agent_fixup(c, &spec), -EBUSY);
	spec = (struct agent_fixup_spec){.root = "dev/vda"};
	ck_assert_int_eq(agent_fixup(c, &spec), -EINVAL);
	ck_assert_msg(strstr(agent_client_last_error(c), "absolute path"), "message: %s",
		      agent_client_last_error(c));
	ck_assert_int_eq(agent_ping(c, NULL), 0);
	agent_client_free(c);
}
END_TEST

START_TEST(test_fixup_out_of_bounds_is_not_sent)
{
	agent_client *c = connect_ok();
	static char longdev[PROTO_MAX_ROOTDEV + 2];
	static uint8_t entropy[PROTO_MAX_ENTROPY + 1];
	struct agent_fixup_spec spec = {.rootfstype = "ext4"};

	ck_assert_int_eq(agent_fixup(c, &spec), -EINVAL);
	ck_assert_msg(strstr(agent_client_last_error(c), "rootfstype needs root"), "message: %s",
		      agent_client_last_error(c));
	memset(longdev, 'd', sizeof(longdev) - 1);
	longdev[0] = '/';
	spec = (struct agent_fixup_spec){.root = longdev};
	ck_assert_int_eq(agent_fixup(c, &spec), -EINVAL);
	spec = (struct agent_fixup_spec){.root = "/dev/vda", .rootfstype = ""};
	ck_assert_int_eq(agent_fixup(c, &spec), -EINVAL);
	spec = (struct agent_fixup_spec){.entropy = entropy, .entropy_len = sizeof(entropy)};
	ck_assert_int_eq(agent_fixup(c, &spec), -EINVAL);
	ck_assert_int_eq(agent_fixup(c, NULL), -EINVAL);
	/* nothing went out: the connection is fine and in step */
	ck_assert_int_eq(agent_client_error(c), 0);
	ck_assert_int_eq(agent_ping(c, NULL), 0);
	agent_client_free(c);
}
END_TEST

struct reply {
	bool done;
	int err;
	uint16_t type;
};

static void reply_fn(agent_client *c, int err, const struct proto_msg *m, void *ud)
{
	struct reply *r = ud;

	(void)c;
	r->done = true;
	r->err = err;
	r->type = m ? m->type : 0;
}

START_TEST(test_fixup_start_answers_through_the_callback)
{
	agent_client *c = connect_ok();
	struct agent_fixup_spec spec = {.root = "/dev/vda"};
	struct reply r1 = {0}, r2 = {0};
	uint32_t id1 = 0, id2 = 0;

	ck_assert_int_eq(agent_fixup_start(c, &spec, reply_fn, &r1, &id1), 0);
	spec = (struct agent_fixup_spec){0};
	ck_assert_int_eq(agent_fixup_start(c, &spec, reply_fn, &r2, &id2), 0);
	ck_assert_uint_ne(id1, 0);
	ck_assert_uint_ne(id1, id2);
	ck_assert(pump_until(c, &r1.done, 5000));
	ck_assert(pump_until(c, &r2.done, 5000));
	ck_assert_int_eq(r1.err, -EBUSY);
	ck_assert_uint_eq(r1.type, PROTO_ERROR);
	ck_assert_int_eq(r2.err, 0);
	ck_assert_uint_eq(r2.type, PROTO_OK);
	agent_client_free(c);
}
END_TEST

START_TEST(test_exec_streams_output_and_exit_code)
{
	agent_client *c = connect_ok();
	struct run r = {0};
	agent_cmd *cmd = exec_sh(c, "echo hello; echo world; exit 3", &r, 0, false, false);

	ck_assert(pump_until(c, &r.exited, 10000));
	ck_assert(r.started);
	ck_assert_msg(buf_is(&r.out, "hello\nworld\n"), "stdout: %.*s", (int)r.out.len, r.out.p);
	ck_assert_uint_eq(r.err.len, 0);
	ck_assert_int_eq(r.ex.code, 3);
	ck_assert_int_eq(r.ex.signal, 0);
	ck_assert_uint_eq(r.ex.out_total, 12);
	ck_assert_uint_gt(agent_cmd_id(cmd), 0);
	ck_assert_int_eq(agent_cmd_state(cmd), AGENT_CMD_EXITED);
	ck_assert(r.offsets_ok);
	agent_cmd_free(cmd);
	agent_client_free(c);
	run_release(&r);
}
END_TEST

START_TEST(test_exec_keeps_stderr_apart)
{
	agent_client *c = connect_ok();
	struct run r = {0};
	agent_cmd *cmd = exec_sh(c, "echo out; echo err >&2; echo out2", &r, 0, false, false);

	ck_assert(pump_until(c, &r.exited, 10000));
	ck_assert_msg(buf_is(&r.out, "out\nout2\n"), "stdout: %.*s", (int)r.out.len, r.out.p);
	ck_assert_msg(buf_is(&r.err, "err\n"), "stderr: %.*s", (int)r.err.len, r.err.p);
	ck_assert_int_eq(r.ex.code, 0);
	agent_cmd_free(cmd);
	agent_client_free(c);
	run_release(&r);
}
END_TEST

START_TEST(test_exec_reports_signal_death)
{
	agent_client *c = connect_ok();
	struct run r = {0};
	agent_cmd *cmd = exec_sh(c, "kill -TERM $$", &r, 0, false, false);

	ck_assert(pump_until(c, &r.exited, 10000));
	ck_assert_int_eq(r.ex.signal, SIGTERM);
	agent_cmd_free(cmd);
	agent_client_free(c);
	run_release(&r);
}
END_TEST

START_TEST(test_exec_of_missing_program_fails_with_enoent)
{
	agent_client *c = connect_ok();
	const char *argv[] = {"/no/such/program", NULL};
	struct agent_exec_spec spec = {.argv = argv};
	struct run r = {0};
	agent_cmd *cmd = NULL;

	ck_assert_int_eq(agent_exec(c, &spec, &run_ops, &r, &cmd), 0);
	pump_until(c, &r.failed, 10000);
	if (!r.failed) {
		/* an agent may report it as exit 127 instead */
		ck_assert(pump_until(c, &r.exited, 10000));
		ck_assert_int_eq(r.ex.code, 127);
	} else {
		ck_assert_int_eq(r.errcode, -ENOENT);
		ck_assert_msg(strstr(r.msg, "/no/such/program"), "message: %s", r.msg);
	}
	agent_cmd_free(cmd);
	agent_client_free(c);
	run_release(&r);
}
END_TEST

START_TEST(test_exec_stdin_applies_back_pressure)
{
	agent_client *c = connect_ok();
	size_t total = 4 * 1024 * 1024, sent = 0, i;
	uint8_t *data = malloc(total);
	struct run r = {0};
	agent_cmd *cmd;
	bool blocked = false, closed = false;
	uint64_t end = now_ms() + 30000;
	ssize_t n;

	for (i = 0; i < total; i++)
		data[i] = (uint8_t)(i * 7 + i / 4096);
	cmd = exec_sh(c, "cat", &r, 0, false, true);
	ck_assert_int_eq(agent_cmd_write_stdin(cmd, data, 10), -EAGAIN); /* not started yet */
	while (!r.exited && now_ms() < end) {
		while (sent < total) {
			n = agent_cmd_write_stdin(cmd, data + sent, total - sent);
			if (n == -EAGAIN) {
				blocked = true;
				break;
			}
			ck_assert_int_gt(n, 0);
			sent += (size_t)n;
		}
		if (sent == total && !closed) {
			ck_assert_int_eq(agent_cmd_close_stdin(cmd), 0);
			closed = true;
		}
		ck_assert_int_ge(agent_client_pump(c, 20), 0);
	}
	ck_assert(r.exited);
	ck_assert_msg(blocked, "4 MiB went out without ever waiting for stdin credit");
	ck_assert(r.stdin_ready);
	ck_assert_uint_eq(r.out.len, total);
	ck_assert(r.offsets_ok);
	ck_assert(memcmp(r.out.p, data, total) == 0);
	ck_assert_int_eq(r.ex.code, 0);
	ck_assert_int_eq(agent_cmd_write_stdin(cmd, data, 1), -EPIPE);
	agent_cmd_free(cmd);
	agent_client_free(c);
	free(data);
	run_release(&r);
}
END_TEST

START_TEST(test_manual_ack_stalls_command_until_acked)
{
	agent_client *c = connect_ok();
	struct run r = {0};
	uint32_t window = 64 * 1024;
	size_t total = 3 * 1024 * 1024;
	char script[128];
	agent_cmd *cmd;
	uint64_t end, out;

	snprintf(script, sizeof(script), "head -c %zu /dev/zero", total);
	cmd = exec_sh(c, script, &r, window, true, false);
	pump_for(c, 1500);
	/* without ACKs the agent may send one window and no more; its ring
	 * fills, the command blocks and cannot exit */
	ck_assert_uint_eq(r.out.len, window);
	ck_assert(!r.exited);
	agent_cmd_offsets(cmd, &out, NULL);
	ck_assert_uint_eq(out, window);
	ck_assert_int_eq(agent_cmd_ack(cmd, out + 1, PROTO_ACK_NONE), -EINVAL);

	end = now_ms() + 20000;
	while (!r.exited && now_ms() < end) {
		agent_cmd_offsets(cmd, &out, NULL);
		ck_assert_int_eq(agent_cmd_ack(cmd, out, PROTO_ACK_NONE), 0);
		ck_assert_int_ge(agent_client_pump(c, 20), 0);
	}
	ck_assert(r.exited);
	ck_assert_uint_eq(r.out.len, total);
	ck_assert_int_eq(r.ex.code, 0);
	agent_cmd_free(cmd);
	agent_client_free(c);
	run_release(&r);
}
END_TEST

/* The number in the file the command of the next test rewrites after
 * each line (0 while it is missing, empty or half-written). */
static int lines_written(const char *path)
{
	char buf[32] = "";
	FILE *f = fopen(path, "r");
	int n = 0;

	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f) && strchr(buf, '\n'))
		n = atoi(buf);
	fclose(f);
	return n;
}

START_TEST(test_attach_after_reconnect_loses_and_repeats_nothing)
{
	agent_client *c = connect_ok();
	struct run r1 = {0}, r2 = {0};
	struct buf all = {0}, want = {0};
	char progress[PATH_MAX + 16], script[PATH_MAX + 200];
	uint64_t out, err, deadline;
	agent_cmd *cmd;
	uint32_t id;
	char line[32];
	int i, at;

	snprintf(progress, sizeof(progress), "%s/progress", tmpdir);
	snprintf(script, sizeof(script),
		 "i=1; while [ $i -le 150 ]; do echo line $i; echo e$i >&2; "
		 "echo $i >'%s'; i=$((i+1)); sleep 0.01; done",
		 progress);
	cmd = exec_sh(c, script, &r1, 0, false, false);
	while (r1.out.len < 200)
		ck_assert_int_ge(agent_client_pump(c, 20), 0);
	ck_assert(!r1.exited);
	id = agent_cmd_id(cmd);
	agent_cmd_offsets(cmd, &out, &err);
	ck_assert_uint_eq(out, r1.out.len);
	buf_add(&all, r1.out.p, r1.out.len);
	agent_cmd_free(cmd);
	agent_client_free(c);

	/* output goes on into the agent's ring: wait until the command has
	 * written 10 more lines while nobody is attached */
	at = lines_written(progress);
	ck_assert_msg(at < 150, "the command ended before we let go of it");
	deadline = now_ms() + 10000;
	while (lines_written(progress) < (at + 10 < 150 ? at + 10 : 150)) {
		ck_assert_msg(now_ms() < deadline, "the command stopped at line %d",
			      lines_written(progress));
		usleep(5000);
	}
	c = connect_ok();
	r2.offsets_ok = true;
	r2.next_off[0] = out;
	r2.next_off[1] = err;
	ck_assert_int_eq(agent_attach(c, id, out, err, 0, false, &run_ops, &r2, &cmd), 0);
	ck_assert(pump_until(c, &r2.exited, 20000));
	ck_assert(r2.started);
	ck_assert(r2.offsets_ok);
	buf_add(&all, r2.out.p, r2.out.len);
	for (i = 1; i <= 150; i++) {
		snprintf(line, sizeof(line), "line %d\n", i);
		buf_add(&want, line, strlen(line));
	}
	ck_assert_msg(all.len == want.len && memcmp(all.p, want.p, want.len) == 0,
		      "got %zu bytes, want %zu", all.len, want.len);
	ck_assert_uint_eq(r2.ex.out_total, want.len);
	ck_assert_int_eq(r2.ex.code, 0);
	free(all.p);
	free(want.p);
	agent_cmd_free(cmd);
	agent_client_free(c);
	run_release(&r1);
	run_release(&r2);
}
END_TEST

START_TEST(test_attach_resumes_stdin)
{
	agent_client *c = connect_ok();
	struct run r1 = {0}, r2 = {0};
	uint64_t out, err;
	agent_cmd *cmd;
	uint32_t id;

	cmd = exec_sh(c, "cat", &r1, 0, false, true);
	ck_assert(pump_until(c, &r1.started, 5000));
	ck_assert_int_eq(agent_cmd_write_stdin(cmd, "abc\n", 4), 4);
	while (r1.out.len < 4)
		ck_assert_int_ge(agent_client_pump(c, 20), 0);
	id = agent_cmd_id(cmd);
	agent_cmd_offsets(cmd, &out, &err);
	agent_cmd_free(cmd);
	agent_client_free(c);

	c = connect_ok();
	r2.offsets_ok = true;
	r2.next_off[0] = out;
	ck_assert_int_eq(agent_attach(c, id, out, err, 0, false, &run_ops, &r2, &cmd), 0);
	ck_assert(pump_until(c, &r2.started, 5000));
	pump_for(c, 100); /* an agent may say where stdin stands with an ACK */
	ck_assert_int_eq(agent_cmd_write_stdin(cmd, "def\n", 4), 4);
	ck_assert_int_eq(agent_cmd_close_stdin(cmd), 0);
	ck_assert(pump_until(c, &r2.exited, 10000));
	ck_assert_msg(buf_is(&r2.out, "def\n"), "after attach: %.*s", (int)r2.out.len, r2.out.p);
	ck_assert(r2.offsets_ok);
	ck_assert_int_eq(r2.ex.code, 0);
	ck_assert_uint_eq(r2.ex.out_total, 8);
	agent_cmd_free(cmd);
	agent_client_free(c);
	run_release(&r1);
	run_release(&r2);
}
END_TEST

START_TEST(test_connection_loss_fails_running_commands)
{
	agent_client *c = connect_ok();
	struct run r = {0};
	agent_cmd *cmd = exec_sh(c, "sleep 30", &r, 0, false, false);

	ck_assert(pump_until(c, &r.started, 5000));
	stop_agent();
	ck_assert(pump_until(c, &r.failed, 5000));
	ck_assert_int_eq(r.errcode, -ECONNRESET);
	ck_assert_int_eq(agent_client_error(c), -ECONNRESET);
	ck_assert_int_eq(agent_ping(c, NULL), -ECONNRESET);
	agent_cmd_free(cmd);
	agent_client_free(c);
	run_release(&r);
}
END_TEST

/* ---- files ------------------------------------------------------------------- */

static void put_get_roundtrip(const uint8_t *data, size_t len)
{
	agent_client *c = connect_ok();
	char src[PATH_MAX + 16], remote[PATH_MAX + 32], back[PATH_MAX + 16];
	struct agent_file_meta meta;
	uint8_t *got;
	size_t glen;
	int fd;

	snprintf(src, sizeof(src), "%s/src", tmpdir);
	snprintf(remote, sizeof(remote), "%s/remote/sub/file", tmpdir);
	snprintf(back, sizeof(back), "%s/back", tmpdir);
	write_file(src, data, len);
	fd = open(src, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_msg(agent_put_file(c, fd, remote, 0600, true) == 0, "put: %s",
		      agent_client_last_error(c));
	close(fd);
	got = read_file(remote, &glen);
	ck_assert_uint_eq(glen, len);
	ck_assert(memcmp(got, data, len) == 0);
	free(got);

	fd = open(back, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_msg(agent_get_file(c, remote, fd, &meta) == 0, "get: %s",
		      agent_client_last_error(c));
	close(fd);
	ck_assert_uint_eq(meta.size, len);
	ck_assert_uint_eq(meta.mode & 0777, 0600);
	got = read_file(back, &glen);
	ck_assert_uint_eq(glen, len);
	ck_assert(memcmp(got, data, len) == 0);
	free(got);
	agent_client_free(c);
}

START_TEST(test_put_get_random_8mib_is_byte_identical)
{
	size_t len = 8 * 1024 * 1024 + 123, i;
	uint8_t *data = malloc(len);
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		data[i] = (uint8_t)x;
	}
	put_get_roundtrip(data, len);
	free(data);
}
END_TEST

START_TEST(test_put_get_compressible_is_byte_identical)
{
	size_t len = 8 * 1024 * 1024, i;
	uint8_t *data = malloc(len);
	uint64_t t0;

	for (i = 0; i < len; i++)
		data[i] = "the quick brown fox jumps over the lazy dog\n"[i % 44];
	t0 = now_ms();
	put_get_roundtrip(data, len);
	fprintf(stderr, "compressible 8 MiB put+get: %" PRIu64 " ms\n", now_ms() - t0);
	free(data);
}
END_TEST

START_TEST(test_put_get_empty_file)
{
	put_get_roundtrip((const uint8_t *)"", 0);
}
END_TEST

START_TEST(test_get_missing_file_is_enoent_with_message)
{
	agent_client *c = connect_ok();
	char missing[PATH_MAX + 32];
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	snprintf(missing, sizeof(missing), "%s/no/such/file", tmpdir);
	ck_assert_int_eq(agent_get_file(c, missing, fd, NULL), -ENOENT);
	ck_assert_msg(strstr(agent_client_last_error(c), missing) &&
			  strstr(agent_client_last_error(c), "No such file or directory") &&
			  strncmp(agent_client_last_error(c), "agent: ", 7) == 0,
		      "message: %s", agent_client_last_error(c));
	/* the connection survives a failed request */
	ck_assert_int_eq(agent_ping(c, NULL), 0);
	close(fd);
	agent_client_free(c);
}
END_TEST

START_TEST(test_put_into_missing_directory_names_the_path)
{
	agent_client *c = connect_ok();
	char remote[PATH_MAX + 32];
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	snprintf(remote, sizeof(remote), "%s/absent/file", tmpdir);
	ck_assert_int_eq(agent_put_file(c, fd, remote, 0644, false), -ENOENT);
	ck_assert_msg(strstr(agent_client_last_error(c), "absent"), "message: %s",
		      agent_client_last_error(c));
	close(fd);
	agent_client_free(c);
}
END_TEST

struct slow_src {
	size_t given, limit;
	bool done;
	int err;
};

static ssize_t slow_source(void *ud, uint8_t *buf, size_t cap)
{
	struct slow_src *s = ud;

	if (s->given >= s->limit)
		return -EAGAIN; /* never ends by itself */
	if (cap > s->limit - s->given)
		cap = s->limit - s->given;
	memset(buf, 'n', cap);
	s->given += cap;
	return (ssize_t)cap;
}

static void slow_done(agent_xfer *x, int err, uint64_t size, void *ud)
{
	struct slow_src *s = ud;

	(void)x;
	(void)size;
	s->done = true;
	s->err = err;
}

START_TEST(test_aborted_put_leaves_target_untouched)
{
	agent_client *c = connect_ok();
	char target[PATH_MAX + 32];
	struct slow_src src = {.limit = 300000};
	struct agent_put_spec spec = {.size = PROTO_ACK_NONE};
	agent_xfer *x;
	uint8_t *got;
	size_t len;

	snprintf(target, sizeof(target), "%s/keep.txt", tmpdir);
	write_file(target, "old\n", 4);
	spec.path = target;
	ck_assert_int_eq(agent_put_start(c, &spec, slow_source, slow_done, &src, &x), 0);
	pump_for(c, 300);
	ck_assert_uint_eq(agent_xfer_bytes(x), 300000);
	ck_assert(!src.done);
	agent_xfer_free(x);
	pump_for(c, 100);
	ck_assert_int_eq(agent_ping(c, NULL), 0);
	got = read_file(target, &len);
	ck_assert(len == 4 && memcmp(got, "old\n", 4) == 0);
	free(got);
	agent_client_free(c);
}
END_TEST

static int failing_sink(void *ud, uint64_t off, const uint8_t *d, size_t n)
{
	(void)ud;
	(void)off;
	(void)d;
	(void)n;
	return -EIO;
}

START_TEST(test_failing_sink_ends_the_get)
{
	agent_client *c = connect_ok();
	char path[PATH_MAX + 32];
	struct agent_get_spec spec = {0};
	struct slow_src st = {0};
	static uint8_t big[1 << 20];
	agent_xfer *x;

	snprintf(path, sizeof(path), "%s/big", tmpdir);
	write_file(path, big, sizeof(big));
	spec.path = path;
	ck_assert_int_eq(agent_get_start(c, &spec, failing_sink, slow_done, &st, &x), 0);
	ck_assert(pump_until(c, &st.done, 5000));
	ck_assert_int_eq(st.err, -EIO);
	ck_assert_msg(strstr(agent_client_last_error(c), "cannot store"), "message: %s",
		      agent_client_last_error(c));
	agent_xfer_free(x);
	pump_for(c, 100);
	ck_assert_int_eq(agent_client_error(c), 0);
	ck_assert_int_eq(agent_ping(c, NULL), 0);
	agent_client_free(c);
}
END_TEST

START_TEST(test_fs_requests_list_stat_mkdir_remove)
{
	agent_client *c = connect_ok();
	char d[PATH_MAX + 32], f[PATH_MAX + 64];
	struct agent_dirent *e;
	struct agent_stat st;
	size_t n, i;
	bool seen_b = false, seen_f = false;

	snprintf(d, sizeof(d), "%s/tree/a", tmpdir);
	ck_assert_int_eq(agent_mkdir(c, d, 0750, true), 0);
	ck_assert_int_eq(agent_mkdir(c, d, 0750, true), 0); /* -p accepts existing */
	ck_assert_int_eq(agent_mkdir(c, d, 0750, false), -EEXIST);
	snprintf(f, sizeof(f), "%s/b", d);
	ck_assert_int_eq(agent_mkdir(c, f, 0, false), 0);
	snprintf(f, sizeof(f), "%s/file", d);
	write_file(f, "12345", 5);

	ck_assert_int_eq(agent_stat(c, d, &st), 0);
	ck_assert_uint_eq(st.type, PROTO_FT_DIR);
	ck_assert_uint_eq(st.mode & 0777, 0750);
	agent_stat_release(&st);
	ck_assert_int_eq(agent_stat(c, f, &st), 0);
	ck_assert_uint_eq(st.type, PROTO_FT_FILE);
	ck_assert_uint_eq(st.size, 5);
	agent_stat_release(&st);

	ck_assert_int_eq(agent_list(c, d, &e, &n), 0);
	for (i = 0; i < n; i++) {
		if (strcmp(e[i].name, "b") == 0 && e[i].type == PROTO_FT_DIR)
			seen_b = true;
		if (strcmp(e[i].name, "file") == 0 && e[i].size == 5)
			seen_f = true;
	}
	ck_assert_msg(n == 2 && seen_b && seen_f, "listing has %zu entries", n);
	agent_dirents_free(e, n);

	snprintf(d, sizeof(d), "%s/tree", tmpdir);
	ck_assert_int_ne(agent_remove(c, d, false), 0);
	ck_assert_int_eq(agent_remove(c, d, true), 0);
	ck_assert_int_eq(agent_stat(c, d, &st), -ENOENT);
	ck_assert_int_eq(agent_list(c, d, &e, &n), -ENOENT);
	agent_client_free(c);
}
END_TEST

START_TEST(test_list_collects_many_entries)
{
	agent_client *c = connect_ok();
	char d[PATH_MAX + 32], f[PATH_MAX + 64];
	struct agent_dirent *e;
	size_t n;
	int i;

	snprintf(d, sizeof(d), "%s/many", tmpdir);
	ck_assert_int_eq(mkdir(d, 0755), 0);
	for (i = 0; i < 5000; i++) {
		snprintf(f, sizeof(f), "%s/entry-with-a-longish-name-%05d", d, i);
		write_file(f, "", 0);
	}
	ck_assert_int_eq(agent_list(c, d, &e, &n), 0);
	ck_assert_uint_eq(n, 5000);
	agent_dirents_free(e, n);
	agent_client_free(c);
}
END_TEST

/* ---- errors ------------------------------------------------------------------- */

START_TEST(test_connect_times_out_when_nobody_answers)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	char path[PATH_MAX + 32], a[PATH_MAX + 40];
	agent_client *c = NULL;
	uint64_t t0;
	int fd;

	/* listening, never accepting: connect works, HELLO never comes */
	snprintf(path, sizeof(path), "%s/silent.sock", tmpdir);
	ck_assert_uint_lt(strlen(path), sizeof(un.sun_path));
	memcpy(un.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	snprintf(a, sizeof(a), "unix:%s", path);
	t0 = now_ms();
	ck_assert_int_eq(agent_client_connect(a, 700, &c), -ETIMEDOUT);
	ck_assert_uint_ge(now_ms() - t0, 650);
	ck_assert_uint_lt(now_ms() - t0, 3000);
	ck_assert_msg(strstr(err_msg(), "agent did not answer within 0.7 s"), "message: %s",
		      err_msg());
	close(fd);

	/* nothing there at all */
	snprintf(a, sizeof(a), "unix:%s/absent.sock", tmpdir);
	ck_assert_int_eq(agent_client_connect(a, 300, &c), -ETIMEDOUT);
	ck_assert_msg(strstr(err_msg(), "No such file or directory"), "message: %s", err_msg());
	ck_assert_int_eq(agent_client_connect("tcp:1.2.3.4", 300, &c), -EINVAL);
	ck_assert_int_eq(agent_client_connect("vsock:x:1", 300, &c), -EINVAL);
}
END_TEST

START_TEST(test_connect_waits_for_a_late_socket)
{
	agent_client *c = NULL;
	pid_t p;

	/* the agent of setup() is replaced by one that starts late */
	stop_agent();
	unlink(sock_path);
	p = fork();
	if (p == 0) {
		const char *bin = find_bin("SBX_AGENT_BIN", "sbx-agent");
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 2);
		usleep(400 * 1000);
		execl(bin, bin, "--listen", addr, (char *)NULL);
		_exit(127);
	}
	/* the point of the test: the socket is not there when connect starts */
	ck_assert_msg(access(sock_path, F_OK) < 0, "the late agent was not late");
	ck_assert_int_eq(agent_client_connect(addr, 5000, &c), 0);
	ck_assert_int_eq(agent_ping(c, NULL), 0);
	agent_client_free(c);
	kill(p, SIGKILL);
	waitpid(p, NULL, 0);
}
END_TEST

/* ---- a scripted, hostile agent ---------------------------------------------------- */

struct fake {
	int fd; /* our end */
	struct proto_reader rd;
};

static void fake_send(struct fake *f, struct proto_msg *m)
{
	struct proto_buf b;

	proto_buf_init(&b);
	ck_assert_int_eq(proto_encode(m, &b), 0);
	ck_assert_int_eq(write(f->fd, b.data, b.len), (ssize_t)b.len);
	proto_buf_release(&b);
}

/* Next frame the client sent (pumping the client meanwhile). */
static void fake_recv(struct fake *f, agent_client *c, struct proto_msg *m)
{
	uint64_t end = now_ms() + 3000;
	uint8_t buf[65536];
	ssize_t n;
	int r;

	for (;;) {
		r = proto_reader_next(&f->rd, m);
		if (r == 1)
			return;
		ck_assert_int_eq(r, 0);
		ck_assert(now_ms() < end);
		(void)agent_client_pump(c, 10);
		n = read(f->fd, buf, sizeof(buf));
		if (n > 0)
			ck_assert_int_eq(proto_reader_feed(&f->rd, buf, (size_t)n), 0);
	}
}

static agent_client *fake_connect_caps(struct fake *f, const char **caps)
{
	struct proto_msg m = {.type = PROTO_HELLO};
	agent_client *c = NULL;
	uint32_t id;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->fd = sv[0];
	fcntl(f->fd, F_SETFL, O_NONBLOCK);
	proto_reader_init(&f->rd, PROTO_MAX_BODY);
	m.u.hello.version = PROTO_VERSION;
	m.u.hello.software = "fake-agent";
	for (m.u.hello.caps.n = 0; caps && caps[m.u.hello.caps.n];)
		m.u.hello.caps.n++;
	m.u.hello.caps.v = m.u.hello.caps.n ? caps : NULL;
	fake_send(f, &m);
	ck_assert_int_eq(agent_client_from_fd(sv[1], 2000, &c), 0);
	fake_recv(f, c, &m);
	ck_assert_int_eq(m.type, PROTO_HELLO);
	proto_msg_release(&m);
	/* the client's barrier: HELLOs before the PONG are answers, not restarts */
	fake_recv(f, c, &m);
	ck_assert_int_eq(m.type, PROTO_PING);
	id = m.u.idonly.id;
	proto_msg_release(&m);
	m = (struct proto_msg){.type = PROTO_PONG, .u.idonly.id = id};
	fake_send(f, &m);
	pump_for(c, 20);
	return c;
}

static agent_client *fake_connect(struct fake *f)
{
	return fake_connect_caps(f, NULL);
}

/* Start a command against the fake; returns the client's EXEC window. */
static agent_cmd *fake_exec(struct fake *f, agent_client *c, struct run *r, uint32_t cmd_id)
{
	const char *argv[] = {"x", NULL};
	struct agent_exec_spec spec = {.argv = argv, .window = 1000, .stdin_open = true};
	struct proto_msg m;
	agent_cmd *cmd;
	uint32_t id;

	ck_assert_int_eq(agent_exec(c, &spec, &run_ops, r, &cmd), 0);
	fake_recv(f, c, &m);
	ck_assert_int_eq(m.type, PROTO_EXEC);
	ck_assert_uint_eq(m.u.exec.window, 1000);
	id = m.u.exec.id;
	proto_msg_release(&m);
	m = (struct proto_msg){.type = PROTO_EXEC_STARTED};
	m.u.exec_started.id = id;
	m.u.exec_started.cmd = cmd_id;
	m.u.exec_started.pid = 42;
	m.u.exec_started.stdin_window = 100;
	fake_send(f, &m);
	ck_assert(pump_until(c, &r->started, 2000));
	return cmd;
}

static void fake_output(struct fake *f, uint32_t chan, int stream, uint64_t off, size_t len)
{
	static uint8_t zeros[4096];
	struct proto_msg m = {.type = PROTO_OUTPUT, .channel = chan};

	m.u.output.stream = (uint8_t)stream;
	m.u.output.offset = off;
	m.u.output.data.data = zeros;
	m.u.output.data.len = len;
	fake_send(f, &m);
}

START_TEST(test_output_gap_is_a_protocol_error)
{
	struct fake f;
	agent_client *c = fake_connect(&f);
	struct run r = {0};
	agent_cmd *cmd = fake_exec(&f, c, &r, 7);

	fake_output(&f, 7, PROTO_STDOUT, 0, 10);
	fake_output(&f, 99, PROTO_STDOUT, 0, 10); /* unknown channel: ignored */
	fake_output(&f, 7, PROTO_STDOUT, 20, 10); /* 10 bytes missing */
	ck_assert(pump_until(c, &r.failed, 2000));
	ck_assert_int_eq(r.errcode, -EPROTO);
	ck_assert_uint_eq(r.out.len, 10);
	ck_assert_int_eq(agent_client_error(c), -EPROTO);
	ck_assert_msg(strstr(agent_client_last_error(c), "protocol error"), "message: %s",
		      agent_client_last_error(c));
	agent_cmd_free(cmd);
	agent_client_free(c);
	close(f.fd);
	proto_reader_release(&f.rd);
	run_release(&r);
}
END_TEST

START_TEST(test_fixup_root_needs_the_root_capability)
{
	struct fake f;
	agent_client *c = fake_connect(&f);
	struct agent_fixup_spec spec = {.root = "/dev/vda"};
	struct reply r = {0};

	ck_assert_int_eq(agent_fixup(c, &spec), -EOPNOTSUPP);
	ck_assert_msg(strstr(agent_client_last_error(c), "\"root\" capability"), "message: %s",
		      agent_client_last_error(c));
	ck_assert_int_eq(agent_fixup_start(c, &spec, reply_fn, &r, NULL), -EOPNOTSUPP);
	/* nothing was queued: the next frame the fake sees is a PING */
	ck_assert(!agent_client_wants_write(c));
	agent_client_free(c);
	close(f.fd);
	proto_reader_release(&f.rd);
}
END_TEST

START_TEST(test_fixup_sends_every_field_and_maps_the_agents_error)
{
	static const char *caps[] = {"exec", "fixup", "root", NULL};
	static const uint8_t entropy[40] = {1, 2, 3};
	struct fake f;
	agent_client *c = fake_connect_caps(&f, caps);
	struct agent_fixup_spec spec = {
	    .time_ns = 1700000000123456789LL,
	    .entropy = entropy,
	    .entropy_len = sizeof(entropy),
	    .hostname = "box-7",
	    .root = "/dev/vdb",
	    .rootfstype = "xfs",
	};
	struct reply r = {0};
	struct proto_msg m;
	uint32_t id = 0;

	ck_assert_int_eq(agent_fixup_start(c, &spec, reply_fn, &r, &id), 0);
	fake_recv(&f, c, &m);
	ck_assert_int_eq(m.type, PROTO_FIXUP);
	ck_assert_uint_eq(m.u.fixup.id, id);
	ck_assert_int_eq(m.u.fixup.time_ns, spec.time_ns);
	ck_assert_uint_eq(m.u.fixup.entropy.len, sizeof(entropy));
	ck_assert_mem_eq(m.u.fixup.entropy.data, entropy, sizeof(entropy));
	ck_assert_str_eq(m.u.fixup.hostname, "box-7");
	ck_assert_str_eq(m.u.fixup.root, "/dev/vdb");
	ck_assert_str_eq(m.u.fixup.rootfstype, "xfs");
	proto_msg_release(&m);
	m = (struct proto_msg){.type = PROTO_ERROR};
	m.u.error = (struct proto_error){
	    id, PROTO_E_IO, EINVAL, "cannot mount /dev/vdb (xfs) as the root: Invalid argument"};
	fake_send(&f, &m);
	ck_assert(pump_until(c, &r.done, 2000));
	ck_assert_int_eq(r.err, -EINVAL);
	ck_assert_str_eq(agent_client_last_error(c),
			 "agent: fixup: cannot mount /dev/vdb (xfs) as the root: Invalid argument");
	agent_client_free(c);
	close(f.fd);
	proto_reader_release(&f.rd);
}
END_TEST

START_TEST(test_output_beyond_window_is_a_protocol_error)
{
	struct fake f;
	agent_client *c = fake_connect(&f);
	struct run r = {0};
	agent_cmd *cmd;
	struct proto_msg m;
	bool got_ack = false;

	cmd = fake_exec(&f, c, &r, 8);
	/* replayed overlap is trimmed, not duplicated */
	fake_output(&f, 8, PROTO_STDOUT, 0, 600);
	fake_output(&f, 8, PROTO_STDOUT, 500, 200);
	pump_for(c, 100);
	ck_assert_uint_eq(r.out.len, 700);
	/* auto-ack acknowledged what was consumed (>= window/2) */
	fake_recv(&f, c, &m);
	if (m.type == PROTO_ACK && m.u.ack.out >= 600)
		got_ack = true;
	proto_msg_release(&m);
	ck_assert(got_ack);
	/* 700 consumed, acked at least 600: 1000 more is beyond the window */
	fake_output(&f, 8, PROTO_STDOUT, 700, 1000 + 100);
	ck_assert(pump_until(c, &r.failed, 2000));
	ck_assert_int_eq(r.errcode, -EPROTO);
	agent_cmd_free(cmd);
	agent_client_free(c);
	close(f.fd);
	proto_reader_release(&f.rd);
	run_release(&r);
}
END_TEST

START_TEST(test_ack_beyond_sent_stdin_is_a_protocol_error)
{
	struct fake f;
	agent_client *c = fake_connect(&f);
	struct run r = {0};
	agent_cmd *cmd = fake_exec(&f, c, &r, 9);
	struct proto_msg m = {.type = PROTO_ACK, .channel = 9};

	/* the stdin window is 100 bytes */
	ck_assert_int_eq(agent_cmd_write_stdin(cmd, "0123456789", 10), 10);
	ck_assert_int_eq(agent_cmd_write_stdin(cmd, (const char[200]){0}, 200), 90);
	ck_assert_int_eq(agent_cmd_write_stdin(cmd, "x", 1), -EAGAIN);
	m.u.ack.out = m.u.ack.err = PROTO_ACK_NONE;
	m.u.ack.in = 50;
	fake_send(&f, &m);
	ck_assert(pump_until(c, &r.stdin_ready, 2000));
	ck_assert_int_eq(agent_cmd_write_stdin(cmd, (const char[200]){0}, 200), 50);
	m.u.ack.in = 1000; /* never sent */
	fake_send(&f, &m);
	ck_assert(pump_until(c, &r.failed, 2000));
	ck_assert_int_eq(r.errcode, -EPROTO);
	agent_cmd_free(cmd);
	agent_client_free(c);
	close(f.fd);
	proto_reader_release(&f.rd);
	run_release(&r);
}
END_TEST

START_TEST(test_freeing_a_handle_in_its_callback_is_safe)
{
	struct fake f;
	agent_client *c = fake_connect(&f);
	struct run r = {0};
	agent_cmd *cmd = fake_exec(&f, c, &r, 10);
	struct proto_msg m = {.type = PROTO_EXIT, .channel = 10};

	r.free_on_exit = cmd;
	fake_output(&f, 10, PROTO_STDERR, 0, 5);
	m.u.exit.err_total = 5;
	fake_send(&f, &m);
	ck_assert(pump_until(c, &r.exited, 2000));
	ck_assert_ptr_null(r.free_on_exit); /* on_exit freed the handle */
	ck_assert_uint_eq(r.err.len, 5);
	ck_assert_int_eq(agent_client_error(c), 0);
	/* frames for the freed command are ignored */
	fake_output(&f, 10, PROTO_STDOUT, 0, 5);
	pump_for(c, 50);
	ck_assert_int_eq(agent_client_error(c), 0);
	agent_client_free(c);
	close(f.fd);
	proto_reader_release(&f.rd);
	run_release(&r);
}
END_TEST

START_TEST(test_hellos_before_the_barrier_are_answers)
{
	struct proto_msg m = {.type = PROTO_HELLO};
	agent_client *c = NULL;
	struct fake f;
	uint32_t id;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f.fd = sv[0];
	fcntl(f.fd, F_SETFL, O_NONBLOCK);
	proto_reader_init(&f.rd, PROTO_MAX_BODY);
	/* unprompted HELLO, then the answer to the host's */
	m.u.hello.version = PROTO_VERSION;
	fake_send(&f, &m);
	fake_send(&f, &m);
	ck_assert_int_eq(agent_client_from_fd(sv[1], 2000, &c), 0);
	fake_recv(&f, c, &m);
	ck_assert_int_eq(m.type, PROTO_HELLO);
	proto_msg_release(&m);
	fake_recv(&f, c, &m);
	ck_assert_int_eq(m.type, PROTO_PING);
	id = m.u.idonly.id;
	proto_msg_release(&m);
	m = (struct proto_msg){.type = PROTO_PONG, .u.idonly.id = id};
	fake_send(&f, &m);
	pump_for(c, 50);
	ck_assert_int_eq(agent_client_error(c), 0);
	ck_assert(agent_client_ready(c));
	agent_client_free(c);
	close(f.fd);
	proto_reader_release(&f.rd);
}
END_TEST

START_TEST(test_second_hello_after_requests_means_restart)
{
	struct fake f;
	agent_client *c = fake_connect(&f);
	struct run r = {0};
	agent_cmd *cmd = fake_exec(&f, c, &r, 11);
	struct proto_msg m = {.type = PROTO_HELLO};

	m.u.hello.version = PROTO_VERSION;
	fake_send(&f, &m);
	ck_assert(pump_until(c, &r.failed, 2000));
	ck_assert_int_eq(r.errcode, -ECONNRESET);
	ck_assert_msg(strstr(agent_client_last_error(c), "restarted"), "message: %s",
		      agent_client_last_error(c));
	agent_cmd_free(cmd);
	agent_client_free(c);
	close(f.fd);
	proto_reader_release(&f.rd);
	run_release(&r);
}
END_TEST

/* ---- sbx-agentctl --------------------------------------------------------------- */

/* Run sbx-agentctl --connect ADDR ARGS...; returns its exit status, output
 * (stdout) in *out when not NULL. */
static int agentctl_in(const char *in_path, char **out, const char *const *args);

static int agentctl(char **out, const char *const *args)
{
	return agentctl_in("/dev/null", out, args);
}

static int agentctl_in(const char *in_path, char **out, const char *const *args)
{
	const char *bin = find_bin("SBX_AGENTCTL_BIN", "sbx-agentctl");
	const char *argv[32];
	struct buf b = {0};
	char chunk[4096];
	int pfd[2], st, n = 0;
	ssize_t k;
	pid_t p;

	ck_assert_msg(access(bin, X_OK) == 0, "%s is missing (make it first)", bin);
	argv[n++] = bin;
	argv[n++] = "--connect";
	argv[n++] = addr;
	while (*args && n < 30)
		argv[n++] = *args++;
	argv[n] = NULL;
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	p = fork();
	if (p == 0) {
		char errp[PATH_MAX + 32];
		int devnull = open(in_path, O_RDONLY), efd;

		snprintf(errp, sizeof(errp), "%s/agentctl.err", tmpdir);
		efd = open(errp, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(devnull, 0);
		dup2(pfd[1], 1);
		if (efd >= 0)
			dup2(efd, 2);
		execv(bin, (char *const *)argv);
		_exit(126);
	}
	close(pfd[1]);
	while ((k = read(pfd[0], chunk, sizeof(chunk))) > 0)
		buf_add(&b, chunk, (size_t)k);
	close(pfd[0]);
	buf_add(&b, "", 1);
	ck_assert_int_eq(waitpid(p, &st, 0), p);
	if (out)
		*out = (char *)b.p;
	else
		free(b.p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

START_TEST(test_cli_exec_passes_exit_code_through)
{
	char *out;

	ck_assert_int_eq(
	    agentctl(&out, (const char *[]){"exec", "--", "sh", "-c", "echo hi; exit 7", NULL}), 7);
	ck_assert_str_eq(out, "hi\n");
	free(out);
	ck_assert_int_eq(
	    agentctl(NULL, (const char *[]){"exec", "--", "sh", "-c", "kill -9 $$", NULL}),
	    128 + 9);
	ck_assert_int_eq(agentctl(NULL, (const char *[]){"exec", "--shell", "exit 0", NULL}), 0);
	ck_assert_int_eq(agentctl(NULL, (const char *[]){"exec", "--", "/no/such/cmd", NULL}), 127);
	ck_assert_int_eq(
	    agentctl(&out, (const char *[]){"exec", "--env", "FOO=bar", "--cwd", "/tmp", "--", "sh",
					    "-c", "echo $FOO; pwd", NULL}),
	    0);
	ck_assert_str_eq(out, "bar\n/tmp\n");
	free(out);
}
END_TEST

START_TEST(test_cli_exec_forwards_stdin)
{
	char in[PATH_MAX + 16], *out;
	size_t len = 3 * 1024 * 1024 + 17, i;
	uint8_t *data = malloc(len);

	for (i = 0; i < len; i++)
		data[i] = (uint8_t)('a' + i % 26);
	snprintf(in, sizeof(in), "%s/stdin", tmpdir);
	write_file(in, data, len);
	ck_assert_int_eq(
	    agentctl_in(in, &out, (const char *[]){"exec", "--stdin", "--", "wc", "-c", NULL}), 0);
	ck_assert_uint_eq(strtoull(out, NULL, 10), len);
	free(out);
	free(data);
}
END_TEST

START_TEST(test_cli_json_info_parses)
{
	json_error_t jerr;
	json_t *j;
	char *out;

	ck_assert_int_eq(agentctl(&out, (const char *[]){"--json", "info", NULL}), 0);
	j = json_loads(out, 0, &jerr);
	ck_assert_msg(j, "not JSON (%s): %s", jerr.text, out);
	ck_assert(json_is_string(json_object_get(j, "hostname")));
	ck_assert(json_is_integer(json_object_get(j, "ncpus")));
	json_decref(j);
	free(out);

	ck_assert_int_eq(agentctl(&out, (const char *[]){"--json", "ping", NULL}), 0);
	j = json_loads(out, 0, &jerr);
	ck_assert_msg(j, "not JSON (%s): %s", jerr.text, out);
	ck_assert(json_integer_value(json_object_get(j, "rtt_us")) > 0);
	json_decref(j);
	free(out);
}
END_TEST

START_TEST(test_cli_put_get_ls_stat_rm)
{
	char src[PATH_MAX + 16], remote[PATH_MAX + 32], back[PATH_MAX + 16], dir[PATH_MAX + 16];
	char *out;
	uint8_t *got;
	size_t len;

	snprintf(src, sizeof(src), "%s/src.txt", tmpdir);
	snprintf(remote, sizeof(remote), "%s/r/deep/f.txt", tmpdir);
	snprintf(back, sizeof(back), "%s/back.txt", tmpdir);
	snprintf(dir, sizeof(dir), "%s/r", tmpdir);
	write_file(src, "payload\n", 8);
	ck_assert_int_eq(agentctl(NULL, (const char *[]){"put", "--mkdirs", "--mode", "0640", src,
							 remote, NULL}),
			 0);
	ck_assert_int_eq(agentctl(NULL, (const char *[]){"get", remote, back, NULL}), 0);
	got = read_file(back, &len);
	ck_assert(len == 8 && memcmp(got, "payload\n", 8) == 0);
	free(got);
	ck_assert_int_eq(agentctl(&out, (const char *[]){"get", remote, "-", NULL}), 0);
	ck_assert_str_eq(out, "payload\n");
	free(out);
	ck_assert_int_eq(agentctl(&out, (const char *[]){"stat", remote, NULL}), 0);
	ck_assert_msg(strstr(out, "0640") && strstr(out, "size:  8"), "stat: %s", out);
	free(out);
	ck_assert_int_eq(agentctl(&out, (const char *[]){"ls", dir, NULL}), 0);
	ck_assert_msg(strstr(out, "deep") && out[0] == 'd', "ls: %s", out);
	free(out);
	ck_assert_int_eq(agentctl(NULL, (const char *[]){"get", "/no/such", back, NULL}), 1);
	ck_assert_int_eq(agentctl(NULL, (const char *[]){"rm", dir, NULL}), 1);
	ck_assert_int_eq(agentctl(NULL, (const char *[]){"rm", "-r", dir, NULL}), 0);
	ck_assert_int_eq(access(dir, F_OK), -1);
	ck_assert_int_eq(agentctl(NULL, (const char *[]){"frobnicate", NULL}), 2);
	ck_assert_int_eq(agentctl(NULL, (const char *[]){"exec", "--help", NULL}), 0);
}
END_TEST

/* ---- suite --------------------------------------------------------------------------- */

static Suite *client_suite(void)
{
	Suite *s = suite_create("agent_client");
	TCase *core = tcase_create("core"), *files = tcase_create("files");
	TCase *errors = tcase_create("errors"), *limits = tcase_create("limits");
	TCase *cli = tcase_create("cli");

	tcase_add_checked_fixture(core, setup, teardown);
	tcase_set_timeout(core, 60);
	tcase_add_test(core, test_connect_exchanges_hello);
	tcase_add_test(core, test_ping_reports_round_trip);
	tcase_add_test(core, test_info_describes_the_agent);
	tcase_add_test(core, test_fixup_adds_entropy);
	tcase_add_test(core, test_fixup_root_is_refused_by_an_agent_that_is_not_pid1);
	tcase_add_test(core, test_fixup_out_of_bounds_is_not_sent);
	tcase_add_test(core, test_fixup_start_answers_through_the_callback);
	tcase_add_test(core, test_exec_streams_output_and_exit_code);
	tcase_add_test(core, test_exec_keeps_stderr_apart);
	tcase_add_test(core, test_exec_reports_signal_death);
	tcase_add_test(core, test_exec_of_missing_program_fails_with_enoent);
	tcase_add_test(core, test_exec_stdin_applies_back_pressure);
	tcase_add_test(core, test_manual_ack_stalls_command_until_acked);
	tcase_add_test(core, test_attach_after_reconnect_loses_and_repeats_nothing);
	tcase_add_test(core, test_attach_resumes_stdin);
	tcase_add_test(core, test_connection_loss_fails_running_commands);
	suite_add_tcase(s, core);

	tcase_add_checked_fixture(files, setup, teardown);
	tcase_set_timeout(files, 120);
	tcase_add_test(files, test_put_get_random_8mib_is_byte_identical);
	tcase_add_test(files, test_put_get_compressible_is_byte_identical);
	tcase_add_test(files, test_put_get_empty_file);
	tcase_add_test(files, test_get_missing_file_is_enoent_with_message);
	tcase_add_test(files, test_put_into_missing_directory_names_the_path);
	tcase_add_test(files, test_aborted_put_leaves_target_untouched);
	tcase_add_test(files, test_failing_sink_ends_the_get);
	tcase_add_test(files, test_fs_requests_list_stat_mkdir_remove);
	tcase_add_test(files, test_list_collects_many_entries);
	suite_add_tcase(s, files);

	tcase_add_checked_fixture(errors, setup, teardown);
	tcase_set_timeout(errors, 60);
	tcase_add_test(errors, test_connect_times_out_when_nobody_answers);
	tcase_add_test(errors, test_connect_waits_for_a_late_socket);
	suite_add_tcase(s, errors);

	tcase_set_timeout(limits, 30);
	tcase_add_test(limits, test_output_gap_is_a_protocol_error);
	tcase_add_test(limits, test_output_beyond_window_is_a_protocol_error);
	tcase_add_test(limits, test_fixup_root_needs_the_root_capability);
	tcase_add_test(limits, test_fixup_sends_every_field_and_maps_the_agents_error);
	tcase_add_test(limits, test_ack_beyond_sent_stdin_is_a_protocol_error);
	tcase_add_test(limits, test_freeing_a_handle_in_its_callback_is_safe);
	tcase_add_test(limits, test_hellos_before_the_barrier_are_answers);
	tcase_add_test(limits, test_second_hello_after_requests_means_restart);
	suite_add_tcase(s, limits);

	tcase_add_checked_fixture(cli, setup, teardown);
	tcase_set_timeout(cli, 60);
	tcase_add_test(cli, test_cli_exec_passes_exit_code_through);
	tcase_add_test(cli, test_cli_exec_forwards_stdin);
	tcase_add_test(cli, test_cli_json_info_parses);
	tcase_add_test(cli, test_cli_put_get_ls_stat_rm);
	suite_add_tcase(s, cli);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(client_suite());
	int failed;

	log_set_level(LOG_LVL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
