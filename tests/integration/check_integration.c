/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_integration.c - end-to-end tests on a real microVM.
 *
 * Boots ONE VM from the default image ($SBX_TEST_IMAGE, default
 * build/images/default) through the VM driver before the suite runs, and
 * drives its agent over the sbx.agent channel with the host agent client.
 * Each test connects anew (the channel takes one host connection at a time;
 * Check runs tests one after the other, each in a forked child). The VM is
 * destroyed at the end, also when a test fails or the run is interrupted.
 *
 * Under TCG (no usable KVM here) a cold boot takes several seconds and
 * throughput is modest; timeouts are generous, nothing here measures speed
 * (that is make bench).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "host/agent/agent_client.h"
#include "base/cleanup.h"
#include "protocol/proto.h"
#include "host/vm/vm.h"
#include "base/log.h"

LOG_DEFINE_STATE("check_integration");

static char g_state[256];
static char g_sock[512];
static vm_driver *g_drv;
static vm *g_vm;
static vm *g_big;	       /* case "disk": a disk 1 GiB bigger than the image */
static uint64_t g_image_bytes; /* the image's rootfs.ext4 */

/* ---- helpers -------------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static agent_client *connect_agent_at(const char *sock)
{
	char addr[600];
	agent_client *c = NULL;
	int r;

	snprintf(addr, sizeof(addr), "unix:%s", sock);
	r = agent_client_connect(addr, 60000, &c);
	ck_assert_msg(r == 0, "cannot connect to the agent: %s", err_msg());
	agent_client_set_timeout(c, 120000);
	return c;
}

static agent_client *connect_agent(void)
{
	return connect_agent_at(g_sock);
}

struct buf {
	char *data;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = realloc(b->data, cap);
		ck_assert_ptr_nonnull(b->data);
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

struct run {
	struct buf out, err;
	uint64_t out_next, err_next; /* next expected offset: catches loss/duplicates */
	bool done, failed;
	int fail_err;
	char fail_msg[512];
	struct proto_exit exit;
	bool keep_output; /* false: count bytes only */
	uint64_t out_bytes;
};

static void run_on_output(agent_cmd *cmd, int stream, uint64_t offset, const uint8_t *data,
			  size_t len, void *ud)
{
	struct run *r = ud;
	(void)cmd;
	if (stream == PROTO_STDOUT) {
		ck_assert_uint_eq(offset, r->out_next);
		r->out_next += len;
		r->out_bytes += len;
		if (r->keep_output)
			buf_add(&r->out, data, len);
	} else {
		ck_assert_uint_eq(offset, r->err_next);
		r->err_next += len;
		buf_add(&r->err, data, len);
	}
}

static void run_on_exit(agent_cmd *cmd, const struct proto_exit *e, void *ud)
{
	struct run *r = ud;
	(void)cmd;
	r->exit = *e;
	r->done = true;
}

static void run_on_error(agent_cmd *cmd, int err, const char *msg, void *ud)
{
	struct run *r = ud;
	(void)cmd;
	r->failed = true;
	r->done = true;
	r->fail_err = err;
	snprintf(r->fail_msg, sizeof(r->fail_msg), "%s", msg ? msg : "");
}

static const struct agent_cmd_ops run_ops = {
    .on_output = run_on_output,
    .on_exit = run_on_exit,
    .on_error = run_on_error,
};

static void run_release(struct run *r)
{
	free(r->out.data);
	free(r->err.data);
}

static void pump_until(agent_client *c, const bool *flag, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	while (!*flag) {
		ck_assert_msg(now_ms() < end, "timed out waiting for the agent");
		int r = agent_client_pump(c, 200);
		ck_assert_msg(r == 0, "connection lost: %s", err_msg());
	}
}

/* Run SHELL in the guest to completion, collecting its output. */
static void run_shell(agent_client *c, const char *shell, struct run *r)
{
	struct agent_exec_spec spec = {.shell = shell};
	agent_cmd *cmd = NULL;

	memset(r, 0, sizeof(*r));
	r->keep_output = true;
	ck_assert_int_eq(agent_exec(c, &spec, &run_ops, r, &cmd), 0);
	pump_until(c, &r->done, 120000);
	agent_cmd_free(cmd);
	ck_assert_msg(!r->failed, "command '%s' failed: %s", shell, r->fail_msg);
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static void fill_random(uint8_t *p, size_t n)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	for (size_t off = 0; off < n;) {
		ssize_t k = read(fd, p + off, n - off);
		ck_assert_int_gt(k, 0);
		off += (size_t)k;
	}
	close(fd);
}

/* ---- commands --------------------------------------------------------------- */

START_TEST(test_python_prints_four)
{
	agent_client *c = connect_agent();
	struct run r;
	run_shell(c, "python3 -c 'print(2+2)'", &r);
	ck_assert_str_eq(r.out.data ? r.out.data : "", "4\n");
	ck_assert_int_eq(r.exit.code, 0);
	ck_assert_int_eq(r.exit.signal, 0);
	run_release(&r);
	agent_client_free(c);
}
END_TEST

START_TEST(test_exit_code_is_reported)
{
	agent_client *c = connect_agent();
	struct run r;
	run_shell(c, "exit 3", &r);
	ck_assert_int_eq(r.exit.code, 3);
	run_release(&r);
	agent_client_free(c);
}
END_TEST

START_TEST(test_stderr_is_kept_apart_from_stdout)
{
	agent_client *c = connect_agent();
	struct run r;
	run_shell(c, "echo to-out; echo to-err >&2; echo more-out", &r);
	ck_assert_str_eq(r.out.data, "to-out\nmore-out\n");
	ck_assert_str_eq(r.err.data, "to-err\n");
	ck_assert_int_eq(r.exit.code, 0);
	run_release(&r);
	agent_client_free(c);
}
END_TEST

START_TEST(test_signal_death_is_reported)
{
	agent_client *c = connect_agent();
	struct run r;
	run_shell(c, "kill -TERM $$", &r);
	ck_assert_int_eq(r.exit.signal, SIGTERM);
	ck_assert_int_eq(r.exit.code, -1);
	run_release(&r);
	agent_client_free(c);
}
END_TEST

START_TEST(test_missing_program_gives_clear_error)
{
	agent_client *c = connect_agent();
	const char *argv[] = {"/no/such/program", NULL};
	struct agent_exec_spec spec = {.argv = argv};
	struct run r = {0};
	agent_cmd *cmd = NULL;

	ck_assert_int_eq(agent_exec(c, &spec, &run_ops, &r, &cmd), 0);
	pump_until(c, &r.done, 60000);
	ck_assert(r.failed);
	ck_assert_msg(strstr(r.fail_msg, "/no/such/program"), "message: %s", r.fail_msg);
	agent_cmd_free(cmd);
	run_release(&r);
	agent_client_free(c);
}
END_TEST

/* ---- stdin, files ------------------------------------------------------------ */

struct feeder {
	struct run r;
	const uint8_t *data;
	size_t len, off;
	bool closed;
};

static void feed(agent_cmd *cmd, struct feeder *f)
{
	while (f->off < f->len) {
		ssize_t n = agent_cmd_write_stdin(cmd, f->data + f->off, f->len - f->off);
		if (n == -EAGAIN || n == -ENOTCONN)
			return;
		ck_assert_int_gt(n, 0);
		f->off += (size_t)n;
	}
	if (!f->closed) {
		ck_assert_int_eq(agent_cmd_close_stdin(cmd), 0);
		f->closed = true;
	}
}

static void feeder_on_started(agent_cmd *cmd, void *ud)
{
	feed(cmd, ud);
}

static void feeder_on_ready(agent_cmd *cmd, void *ud)
{
	feed(cmd, ud);
}

START_TEST(test_16mib_stdin_hashes_right)
{
	agent_client *c = connect_agent();
	const size_t n = 16u << 20;
	_cleanup_free_ uint8_t *data = malloc(n);
	struct feeder f = {.len = n};
	struct agent_cmd_ops ops = run_ops;
	struct agent_exec_spec spec = {.shell = "sha256sum", .stdin_open = true};
	agent_cmd *cmd = NULL;
	char hex[65];

	ck_assert_ptr_nonnull(data);
	fill_random(data, n);
	sha256_hex(data, n, hex);
	f.data = data;
	f.r.keep_output = true;
	ops.on_started = feeder_on_started;
	ops.on_stdin_ready = feeder_on_ready;
	ck_assert_int_eq(agent_exec(c, &spec, &ops, &f, &cmd), 0);
	pump_until(c, &f.r.done, 300000);
	ck_assert_msg(!f.r.failed, "%s", f.r.fail_msg);
	ck_assert_uint_eq(f.off, n);
	ck_assert_int_eq(f.r.exit.code, 0);
	ck_assert_msg(strncmp(f.r.out.data, hex, 64) == 0, "guest %s host %s", f.r.out.data, hex);
	agent_cmd_free(cmd);
	run_release(&f.r);
	agent_client_free(c);
}
END_TEST

START_TEST(test_64mib_file_round_trip_is_identical)
{
	agent_client *c = connect_agent();
	const size_t n = 64u << 20;
	_cleanup_free_ uint8_t *data = malloc(n);
	_cleanup_free_ uint8_t *back = malloc(n);
	char src[] = "/tmp/sbx-it-srcXXXXXX", dst[] = "/tmp/sbx-it-dstXXXXXX";
	struct agent_file_meta meta = {0};
	int sfd, dfd, r;

	ck_assert_ptr_nonnull(data);
	ck_assert_ptr_nonnull(back);
	fill_random(data, n);
	/* half random, half compressible: both chunk kinds cross the wire */
	memset(data + n / 2, 'z', n / 4);
	sfd = mkstemp(src);
	dfd = mkstemp(dst);
	ck_assert_int_ge(sfd, 0);
	ck_assert_int_ge(dfd, 0);
	unlink(src);
	unlink(dst);
	ck_assert_int_eq(write(sfd, data, n), (ssize_t)n);
	lseek(sfd, 0, SEEK_SET);

	r = agent_put_file(c, sfd, "/root/big.bin", 0600, false);
	ck_assert_msg(r == 0, "put: %s", err_msg());
	r = agent_get_file(c, "/root/big.bin", dfd, &meta);
	ck_assert_msg(r == 0, "get: %s", err_msg());
	ck_assert_uint_eq(meta.size, n);
	ck_assert_int_eq(pread(dfd, back, n, 0), (ssize_t)n);
	ck_assert(memcmp(data, back, n) == 0);
	close(sfd);
	close(dfd);
	ck_assert_int_eq(agent_remove(c, "/root/big.bin", false), 0);
	agent_client_free(c);
}
END_TEST

START_TEST(test_put_under_missing_directory_gives_clear_error)
{
	agent_client *c = connect_agent();
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int r = agent_put_file(c, fd, "/no/such/dir/file.txt", 0, false);
	ck_assert_int_eq(r, -ENOENT);
	ck_assert_msg(strstr(err_msg(), "/no/such/dir"), "message: %s", err_msg());
	close(fd);
	/* and a get of a file that is not there */
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	r = agent_get_file(c, "/no/such/file", fd, NULL);
	ck_assert_int_eq(r, -ENOENT);
	close(fd);
	agent_client_free(c);
}
END_TEST

/* ---- flow control ------------------------------------------------------------ */

static long agent_rss_kib(agent_client *c)
{
	struct run r;
	long kib = -1;
	run_shell(c, "grep VmRSS /proc/1/status", &r);
	if (r.out.data)
		sscanf(r.out.data, "VmRSS: %ld", &kib);
	run_release(&r);
	return kib;
}

/* A command writes 1 GiB while the host consumes slowly: the agent's memory
 * must not grow with it (the pipe pushes back on the writer). */
START_TEST(test_slow_reader_keeps_agent_memory_bounded)
{
	agent_client *c = connect_agent();
	struct agent_exec_spec spec = {.shell = "head -c 1073741824 /dev/zero", .manual_ack = true};
	struct run r = {0};
	agent_cmd *cmd = NULL;
	long rss_before, rss, rss_max = 0;
	uint64_t acked = 0;

	rss_before = agent_rss_kib(c);
	ck_assert_int_gt(rss_before, 0);
	ck_assert_int_eq(agent_exec(c, &spec, &run_ops, &r, &cmd), 0);
	/* Slow phase: ack 64 KiB every 20 ms for ~4 s, sampling the agent's RSS. */
	for (int i = 0; i < 200 && !r.done; i++) {
		ck_assert_int_eq(agent_client_pump(c, 20), 0);
		uint64_t out, err;
		agent_cmd_offsets(cmd, &out, &err);
		if (out > acked) {
			acked = out < acked + 65536 ? out : acked + 65536;
			ck_assert_int_eq(agent_cmd_ack(cmd, acked, err), 0);
		}
		if (i % 50 == 49) {
			/* a second command on the same connection still works */
			rss = agent_rss_kib(c);
			if (rss > rss_max)
				rss_max = rss;
		}
	}
	ck_assert_msg(rss_max > 0 && rss_max < 16 * 1024,
		      "agent RSS %ld KiB while streaming (limit 16 MiB)", rss_max);
	/* The command is held back by the host, not finished. */
	ck_assert(!r.done);
	ck_assert_uint_lt(r.out_bytes, 1073741824ull);
	/* Kill it: the whole 1 GiB would take minutes under TCG. */
	ck_assert_int_eq(agent_cmd_signal(cmd, SIGKILL), 0);
	while (!r.done) {
		uint64_t out, err;
		ck_assert_int_eq(agent_client_pump(c, 100), 0);
		agent_cmd_offsets(cmd, &out, &err);
		agent_cmd_ack(cmd, out, err);
	}
	ck_assert_int_eq(r.exit.signal, SIGKILL);
	agent_cmd_free(cmd);
	run_release(&r);
	agent_client_free(c);
}
END_TEST

/* ---- concurrency, kill, timeout ---------------------------------------------- */

START_TEST(test_20_commands_at_once_keep_their_output)
{
	agent_client *c = connect_agent();
	struct run r[20];
	agent_cmd *cmd[20];
	char sh[128];

	for (int i = 0; i < 20; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].keep_output = true;
		snprintf(sh, sizeof(sh),
			 "for j in 1 2 3 4 5; do echo cmd%d-$j; sleep 0.1; done; exit %d", i, i);
		struct agent_exec_spec spec = {.shell = sh};
		ck_assert_int_eq(agent_exec(c, &spec, &run_ops, &r[i], &cmd[i]), 0);
	}
	for (int i = 0; i < 20; i++)
		pump_until(c, &r[i].done, 180000);
	for (int i = 0; i < 20; i++) {
		char want[128];
		snprintf(want, sizeof(want), "cmd%d-1\ncmd%d-2\ncmd%d-3\ncmd%d-4\ncmd%d-5\n", i, i,
			 i, i, i);
		ck_assert_msg(!r[i].failed, "%s", r[i].fail_msg);
		ck_assert_str_eq(r[i].out.data, want);
		ck_assert_int_eq(r[i].exit.code, i);
		agent_cmd_free(cmd[i]);
		run_release(&r[i]);
	}
	agent_client_free(c);
}
END_TEST

static void started_flag(agent_cmd *cmd, void *ud)
{
	(void)cmd;
	*(bool *)((struct run *)ud + 1) = true;
}

/* How many processes named "sleep" the guest has (zombies included). */
static int guest_sleeps(agent_client *c)
{
	struct run check;
	int n;

	run_shell(c, "cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^sleep$'", &check);
	ck_assert_msg(check.out.data, "no count of sleeps");
	n = atoi(check.out.data);
	run_release(&check);
	return n;
}

START_TEST(test_kill_ends_the_whole_process_group)
{
	agent_client *c = connect_agent();
	struct {
		struct run r;
		bool started;
	} s = {0};
	struct agent_cmd_ops ops = run_ops;
	struct agent_exec_spec spec = {.shell = "sleep 1000 & sleep 1000"};
	agent_cmd *cmd = NULL;
	uint64_t end;
	int n = 0;

	ops.on_started = started_flag;
	ck_assert_int_eq(agent_exec(c, &spec, &ops, &s.r, &cmd), 0);
	pump_until(c, &s.started, 60000);
	/* both sleeps exist before the kill (else "none left" proves nothing) */
	end = now_ms() + 10000;
	while ((n = guest_sleeps(c)) < 2 && now_ms() < end)
		usleep(50000);
	ck_assert_msg(n == 2, "%d sleep processes before the kill, want 2", n);
	ck_assert_int_eq(agent_cmd_signal(cmd, SIGKILL), 0);
	pump_until(c, &s.r.done, 60000);
	ck_assert_int_eq(s.r.exit.signal, SIGKILL);
	ck_assert(s.r.exit.killed);
	/* the background sleep goes too, once it is killed and reaped */
	end = now_ms() + 10000;
	while ((n = guest_sleeps(c)) > 0 && now_ms() < end)
		usleep(50000);
	ck_assert_msg(n == 0, "%d sleep processes left after killing the group", n);
	agent_cmd_free(cmd);
	run_release(&s.r);
	agent_client_free(c);
}
END_TEST

START_TEST(test_timeout_ends_a_hung_command_and_says_so)
{
	agent_client *c = connect_agent();
	struct agent_exec_spec spec = {.shell = "sleep 1000", .timeout_ms = 1500};
	struct run r = {0};
	agent_cmd *cmd = NULL;

	ck_assert_int_eq(agent_exec(c, &spec, &run_ops, &r, &cmd), 0);
	pump_until(c, &r.done, 60000);
	ck_assert(!r.failed);
	ck_assert(r.exit.timed_out);
	ck_assert_int_eq(r.exit.signal, SIGKILL);
	agent_cmd_free(cmd);
	run_release(&r);
	agent_client_free(c);
}
END_TEST

/* ---- re-attach ------------------------------------------------------------- */

/* The number a guest command keeps rewriting into path (0 while it is
 * missing or half-written). */
static int guest_line_at(agent_client *c, const char *path)
{
	char shell[300];
	struct run r;
	int n = 0;

	snprintf(shell, sizeof(shell), "cat %s 2>/dev/null", path);
	run_shell(c, shell, &r);
	if (r.out.data && strchr(r.out.data, '\n'))
		n = atoi(r.out.data);
	run_release(&r);
	return n;
}

START_TEST(test_reattach_delivers_missed_output_once)
{
	agent_client *c = connect_agent();
	struct agent_exec_spec spec = {
	    .shell = "for i in $(seq 1 60); do echo line-$i; echo $i >/tmp/reattach-at; "
		     "sleep 0.05; done",
	};
	struct run r = {0};
	agent_cmd *cmd = NULL;
	uint32_t id;
	uint64_t out, err;
	struct buf want = {0};
	int at;

	r.keep_output = true;
	ck_assert_int_eq(agent_exec(c, &spec, &run_ops, &r, &cmd), 0);
	/* read until a few lines arrived, then drop the connection */
	while (r.out.len < 30)
		ck_assert_int_eq(agent_client_pump(c, 100), 0);
	id = agent_cmd_id(cmd);
	ck_assert_uint_gt(id, 0);
	agent_cmd_offsets(cmd, &out, &err);
	agent_cmd_free(cmd);
	agent_client_free(c);

	/* output written while nobody is attached: 10 more lines (a fresh
	 * connection that does not attach reads how far the command got) */
	c = connect_agent();
	at = guest_line_at(c, "/tmp/reattach-at");
	ck_assert_msg(at < 60, "the command ended before we let go of it");
	for (uint64_t end = now_ms() + 20000;;) {
		int now = guest_line_at(c, "/tmp/reattach-at");

		if (now >= (at + 10 < 60 ? at + 10 : 60))
			break;
		ck_assert_msg(now_ms() < end, "the command stopped at line %d", now);
		usleep(50000);
	}
	r.done = false;
	ck_assert_int_eq(agent_attach(c, id, out, err, 0, false, &run_ops, &r, &cmd), 0);
	pump_until(c, &r.done, 60000);
	ck_assert_msg(!r.failed, "%s", r.fail_msg);
	ck_assert_int_eq(r.exit.code, 0);
	for (int i = 1; i <= 60; i++) {
		char line[32];
		int n = snprintf(line, sizeof(line), "line-%d\n", i);
		buf_add(&want, line, (size_t)n);
	}
	ck_assert_str_eq(r.out.data, want.data);
	free(want.data);
	agent_cmd_free(cmd);
	run_release(&r);
	agent_client_free(c);
}
END_TEST

/* ---- hostile bytes ----------------------------------------------------------- */

static int read_frame(int fd, struct proto_reader *rd, struct proto_msg *m, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int r = proto_reader_next(rd, m);
		if (r != 0)
			return r;
		if (now_ms() > end)
			return -ETIMEDOUT;
		size_t room;
		uint8_t *p = proto_reader_space(rd, 65536, &room);
		ck_assert_ptr_nonnull(p);
		struct timeval tv = {0, 200000};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ssize_t n = read(fd, p, room);
		if (n > 0)
			proto_reader_commit(rd, (size_t)n);
		else if (n == 0)
			return -ECONNRESET;
	}
}

static void send_msg(int fd, struct proto_msg *m)
{
	struct proto_buf b;
	proto_buf_init(&b);
	ck_assert_int_eq(proto_encode(m, &b), 0);
	ck_assert_int_eq(write(fd, b.data, b.len), (ssize_t)b.len);
	proto_buf_release(&b);
}

START_TEST(test_garbage_gets_an_error_and_agent_keeps_serving)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct proto_reader rd;
	struct proto_msg m = {0};
	bool got_error = false, got_pong = false;
	int fd, r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_uint_lt(strlen(g_sock), sizeof(sa.sun_path));
	memcpy(sa.sun_path, g_sock, strlen(g_sock) + 1);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	proto_reader_init(&rd, PROTO_MAX_BODY);

	m.type = PROTO_HELLO;
	m.u.hello.version = PROTO_VERSION;
	m.u.hello.software = "check_integration";
	send_msg(fd, &m);
	/* the agent's HELLO (it may be repeated: the client resends HELLO too) */
	for (;;) {
		r = read_frame(fd, &rd, &m, 30000);
		ck_assert_int_eq(r, 1);
		int t = m.type;
		proto_msg_release(&m);
		if (t == PROTO_HELLO)
			break;
	}
	static const char garbage[] = "this is not a frame \x01\x02\x03\xff\xfe garbage";
	ck_assert_int_eq(write(fd, garbage, sizeof(garbage)), (ssize_t)sizeof(garbage));
	memset(&m, 0, sizeof(m));
	m.type = PROTO_PING;
	m.u.idonly.id = 4242;
	send_msg(fd, &m);
	while (!got_pong) {
		memset(&m, 0, sizeof(m));
		r = read_frame(fd, &rd, &m, 30000);
		ck_assert_int_eq(r, 1);
		if (m.type == PROTO_ERROR && m.u.error.code == PROTO_E_BAD_FRAME)
			got_error = true;
		if (m.type == PROTO_PONG && m.u.idonly.id == 4242)
			got_pong = true;
		proto_msg_release(&m);
	}
	ck_assert(got_error);
	proto_reader_release(&rd);
	close(fd);
}
END_TEST

/* A guest that eats all its memory hurts only itself: the OOM killer takes
 * the hog, never the agent (PID 1, oom_score_adj -1000), and the sandbox
 * goes on answering. */
START_TEST(test_guest_out_of_memory_hurts_only_the_guest)
{
	agent_client *c = connect_agent();
	struct run r;

	run_shell(c, "python3 -c 'x = bytearray(10**10)'", &r);
	ck_assert_int_ne(r.exit.code, 0);
	ck_assert_msg(strstr(r.err.data ? r.err.data : "", "MemoryError"), "stderr: %s",
		      r.err.data ? r.err.data : "");
	run_release(&r);
	/* now for real: grow until the kernel's OOM killer steps in */
	run_shell(c,
		  "python3 -c 'a = []\nwhile True: a.append(bytearray(16 << 20))'; echo status=$?",
		  &r);
	ck_assert_msg(strstr(r.out.data ? r.out.data : "", "status=137"), "stdout: %s",
		      r.out.data ? r.out.data : "");
	run_release(&r);
	run_shell(c, "echo still here; cat /proc/1/oom_score_adj", &r);
	ck_assert_str_eq(r.out.data, "still here\n-1000\n");
	run_release(&r);
	agent_client_free(c);
}
END_TEST

/* Filling the disk fails inside the guest with ENOSPC; the host's overlay
 * cannot grow past the disk's virtual size. */
START_TEST(test_guest_disk_full_fails_inside_the_guest)
{
	agent_client *c = connect_agent();
	char path[PATH_MAX];
	struct stat st;
	struct run r;

	run_shell(c, "dd if=/dev/zero of=/root/fill bs=4M 2>&1; echo status=$?; sync", &r);
	ck_assert_msg(strstr(r.out.data, "No space left on device") &&
			  strstr(r.out.data, "status=1"),
		      "dd said: %s", r.out.data);
	run_release(&r);
	snprintf(path, sizeof(path), "%s/disk.qcow2", vm_dir(g_vm));
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_msg((uint64_t)st.st_blocks * 512 < (3ULL << 30), "overlay takes %llu bytes",
		      (unsigned long long)st.st_blocks * 512);
	run_shell(c, "rm /root/fill && echo freed", &r);
	ck_assert_str_eq(r.out.data, "freed\n");
	run_release(&r);
	agent_client_free(c);
}
END_TEST

/* Root in the guest writes 1 MB to the serial console: the host's copy
 * stays under the driver's cap (256 KiB here, set in main()). */
START_TEST(test_console_log_is_capped)
{
	agent_client *c = connect_agent();
	struct run r;
	struct stat st;
	char head[64] = "";
	FILE *f;

	run_shell(c, "head -c 1000000 /dev/zero | tr '\\0' x > /dev/ttyS0", &r);
	ck_assert_int_eq(r.exit.code, 0);
	run_release(&r);
	agent_client_free(c);
	/* the driver looks every 5 s: poll for the line its trim leaves */
	for (uint64_t end = now_ms() + 30000;;) {
		head[0] = '\0';
		f = fopen(vm_console_log(g_vm), "r");
		ck_assert_ptr_nonnull(f);
		if (!fgets(head, sizeof(head), f))
			head[0] = '\0';
		fclose(f);
		if (!strncmp(head, "[sbx: console log over 262144 bytes", 35) || now_ms() > end)
			break;
		usleep(100000);
	}
	ck_assert_msg(!strncmp(head, "[sbx: console log over 262144 bytes", 35), "head: %s", head);
	ck_assert_int_eq(stat(vm_console_log(g_vm), &st), 0);
	ck_assert_msg(st.st_size < 512 * 1024, "console log is %lld bytes", (long long)st.st_size);
}
END_TEST

START_TEST(test_info_describes_the_guest)
{
	agent_client *c = connect_agent();
	struct agent_info info = {0};
	ck_assert_int_eq(agent_info(c, &info), 0);
	ck_assert_ptr_nonnull(strstr(info.kernel, "amd64"));
	ck_assert_uint_gt(info.mem_total, 100u << 20);
	ck_assert_uint_ge(info.ncpus, 1);
	ck_assert_uint_gt(info.uptime_ms, 0);
	agent_info_release(&info);
	agent_client_free(c);
}
END_TEST

/* A disk bigger than the image: the agent grows the root file system to it
 * when it mounts it (a cold boot here; check_snapshot does a zygote fork),
 * says so on the console, and the space is usable. */
START_TEST(test_bigger_disk_grows_the_root_file_system)
{
	agent_client *c = connect_agent_at(vm_agent_socket(g_big));
	unsigned long long size = 0, avail = 0;
	char tail[16384];
	struct run r;

	run_shell(c, "df -B1 --output=size,avail / | tail -n 1", &r);
	ck_assert_int_eq(r.exit.code, 0);
	ck_assert_int_eq(sscanf(r.out.data, "%llu %llu", &size, &avail), 2);
	fprintf(stderr, "# image %llu bytes, disk %llu; df: size %llu avail %llu\n",
		(unsigned long long)g_image_bytes,
		(unsigned long long)(g_image_bytes + (1ULL << 30)), size, avail);
	ck_assert_msg(size >= g_image_bytes + (900ULL << 20), "df / size %llu, image %llu", size,
		      (unsigned long long)g_image_bytes);
	run_release(&r);
	run_shell(c,
		  "cat /sys/block/vda/size; dd if=/dev/urandom of=/root/big bs=1M count=50 "
		  "conv=fsync 2>/dev/null && stat -c %s /root/big && rm /root/big && echo ok",
		  &r);
	ck_assert_msg(r.exit.code == 0, "out: %s err: %s", r.out.data ? r.out.data : "",
		      r.err.data ? r.err.data : "");
	ck_assert_msg(strstr(r.out.data, "\n52428800\nok\n"), "out: %s", r.out.data);
	run_release(&r);
	agent_client_free(c);
	ck_assert_int_ge(vm_console_tail(g_big, tail, sizeof(tail)), 0);
	if (strstr(tail, "grew the root"))
		fprintf(stderr, "# console: %.*s\n",
			(int)strcspn(strstr(tail, "grew the root"), "\n"),
			strstr(tail, "grew the root"));
	ck_assert_msg(strstr(tail, "grew the root file system from 2048 to 3072 MiB") ||
			  g_image_bytes != (2ULL << 30),
		      "console: %s", tail);
}
END_TEST

/* ---- set-up ------------------------------------------------------------------- */

static pid_t g_main_pid;

static void cleanup_vm(void)
{
	/* Check forks a child per test; those exit() through atexit too. */
	if (getpid() != g_main_pid)
		return;
	if (g_vm) {
		vm_destroy(g_vm);
		g_vm = vm_free(g_vm);
	}
	if (g_big) {
		vm_destroy(g_big);
		g_big = vm_free(g_big);
	}
	g_drv = vm_driver_free(g_drv);
}

static void on_signal(int sig)
{
	cleanup_vm();
	signal(sig, SIG_DFL);
	raise(sig);
}

static Suite *integration_suite(void)
{
	Suite *s = suite_create("integration");
	TCase *tc = tcase_create("vm");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_python_prints_four);
	tcase_add_test(tc, test_exit_code_is_reported);
	tcase_add_test(tc, test_stderr_is_kept_apart_from_stdout);
	tcase_add_test(tc, test_signal_death_is_reported);
	tcase_add_test(tc, test_missing_program_gives_clear_error);
	tcase_add_test(tc, test_16mib_stdin_hashes_right);
	tcase_add_test(tc, test_64mib_file_round_trip_is_identical);
	tcase_add_test(tc, test_put_under_missing_directory_gives_clear_error);
	tcase_add_test(tc, test_slow_reader_keeps_agent_memory_bounded);
	tcase_add_test(tc, test_20_commands_at_once_keep_their_output);
	tcase_add_test(tc, test_kill_ends_the_whole_process_group);
	tcase_add_test(tc, test_timeout_ends_a_hung_command_and_says_so);
	tcase_add_test(tc, test_reattach_delivers_missed_output_once);
	tcase_add_test(tc, test_garbage_gets_an_error_and_agent_keeps_serving);
	tcase_add_test(tc, test_info_describes_the_guest);
	tcase_add_test(tc, test_console_log_is_capped);
	tcase_add_test(tc, test_guest_out_of_memory_hurts_only_the_guest);
	tcase_add_test(tc, test_guest_disk_full_fails_inside_the_guest);
	suite_add_tcase(s, tc);
	tc = tcase_create("disk");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_bigger_disk_grows_the_root_file_system);
	suite_add_tcase(s, tc);
	return s;
}

/* Whether Check will run test case name ($CK_RUN_CASE selects one). */
static bool case_runs(const char *name)
{
	const char *only = getenv("CK_RUN_CASE");

	return !only || !*only || !strcmp(only, name);
}

int main(void)
{
	const char *image = getenv("SBX_TEST_IMAGE");
	char image_abs[PATH_MAX];
	struct vm_driver_config dc = {.force_accel = -1, .console_max_bytes = 256 * 1024};
	struct vm_config vc = {0};
	char name[64];
	struct stat st;
	SRunner *sr;
	int failed, r;

	if (!image)
		image = "build/images/default";
	if (!realpath(image, image_abs)) {
		fprintf(stderr, "check_integration: no VM image at %s: run 'make image'\n", image);
		return 1;
	}
	/* The embedded libvirt root is reused between runs; VMs are not. */
	snprintf(g_state, sizeof(g_state), "%s",
		 getenv("SBX_TEST_STATE") ? getenv("SBX_TEST_STATE") : "build/test-state/it");
	dc.state_dir = g_state;
	char kernel[PATH_MAX + 16];
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", image_abs);
	dc.probe_kernel = kernel;
	r = vm_driver_open(&dc, &g_drv);
	if (r < 0) {
		fprintf(stderr, "check_integration: cannot open the VM driver: %s\n", err_msg());
		return 1;
	}
	g_main_pid = getpid();
	atexit(cleanup_vm);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	snprintf(kernel, sizeof(kernel), "%s/rootfs.ext4", image_abs);
	if (stat(kernel, &st) < 0) {
		fprintf(stderr, "check_integration: no %s: %m\n", kernel);
		return 1;
	}
	g_image_bytes = (uint64_t)st.st_size;
	vc.image_dir = image_abs;
	vc.vcpus = 2;
	uint64_t t0 = now_ms();
	if (case_runs("vm")) {
		snprintf(name, sizeof(name), "it-%d", (int)getpid());
		vc.name = name;
		vc.memory_mib = 512;
		r = vm_start(g_drv, &vc, &g_vm);
		if (r < 0) {
			fprintf(stderr, "check_integration: cannot start the test VM: %s\n",
				err_msg());
			return 1;
		}
		snprintf(g_sock, sizeof(g_sock), "%s", vm_agent_socket(g_vm));
		printf("check_integration: VM %s started (%s) in %llu ms\n", name,
		       vm_accel_to_string(vm_driver_accel(g_drv)),
		       (unsigned long long)(now_ms() - t0));
	}
	if (case_runs("disk")) {
		snprintf(name, sizeof(name), "it-big-%d", (int)getpid());
		vc.name = name;
		vc.memory_mib = 256;
		vc.disk_bytes = g_image_bytes + (1ULL << 30);
		r = vm_start(g_drv, &vc, &g_big);
		if (r < 0) {
			fprintf(stderr, "check_integration: cannot start the big-disk VM: %s\n",
				err_msg());
			return 1;
		}
		printf("check_integration: VM %s (disk %llu bytes) started\n", name,
		       (unsigned long long)vc.disk_bytes);
	}
	fflush(stdout);

	sr = srunner_create(integration_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (failed) {
		char tail[4096];
		if (g_vm && vm_console_tail(g_vm, tail, sizeof(tail)) >= 0)
			fprintf(stderr, "--- console log tail ---\n%s\n", tail);
		if (g_big && vm_console_tail(g_big, tail, sizeof(tail)) >= 0)
			fprintf(stderr, "--- console log tail (big disk) ---\n%s\n", tail);
	}
	cleanup_vm();
	return failed ? 1 : 0;
}
