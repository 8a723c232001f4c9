/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_agent.c - unit suite of sbx-agent.
 *
 * Most tests start the real binary as an ordinary process
 * (`sbx-agent --listen unix:/tmp/...`) and talk to it through proto.h with
 * the blocking client in agent_testclient.c; the ring and the kernel command
 * line parser are tested directly. Runs in fork mode; the agent gets
 * SIGKILL if a test dies, and each test ends by stopping the agent with
 * SIGTERM and requiring a clean exit (so leaks fail ASan builds).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "guest/agent.h"
#include "tests/unit/agent_testclient.h"
#include "guest/init.h"
#include "base/log.h"
#include "guest/ring.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* init.o is linked for init_parse_cmdline(); it needs these. */
LOG_DEFINE_STATE("check_agent");

void agent_fatal(const char *fmt, ...)
{
	(void)fmt;
	abort();
}

#define SETUP()                                                                                    \
	struct agent_proc a;                                                                       \
	struct tc t;                                                                               \
	agent_start(&a, false);                                                                    \
	tc_connect(&t, a.sock)

#define TEARDOWN()                                                                                 \
	do {                                                                                       \
		tc_close(&t);                                                                      \
		ck_assert_int_eq(agent_stop(&a), 0);                                               \
	} while (0)

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* INFO on t until the agent runs no command (its "commands" count is of
 * commands running or draining their output: the ones ATTACHED reports as
 * running); fail after timeout_ms. Attaches to nothing. */
static void wait_no_command_runs(struct tc *t, int timeout_ms)
{
	uint64_t deadline = ms_now() + (uint64_t)timeout_ms;
	struct proto_msg m;

	for (;;) {
		memset(&m, 0, sizeof(m));
		m.type = PROTO_INFO;
		m.u.idonly.id = tc_id(t);
		tc_send(t, &m);
		tc_expect(t, PROTO_INFO_RESULT, &m, 5000);
		if (m.u.info.commands == 0)
			return;
		ck_assert_msg(ms_now() < deadline, "%u command(s) still run after %d ms",
			      m.u.info.commands, timeout_ms);
		usleep(10000);
	}
}

static void fill_random(uint8_t *p, size_t n)
{
	uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
	size_t i;

	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

/* Live (not zombie) processes whose process group is pgid. */
static int group_alive(pid_t pgid)
{
	char path[300], buf[512], *p, state;
	struct dirent *de;
	int n = 0, pgrp;
	DIR *d = opendir("/proc");
	FILE *f;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
		    sscanf(p + 1, " %c %*d %d", &state, &pgrp) == 2 && pgrp == pgid &&
		    state != 'Z' && state != 'X')
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

static char *make_tmpdir(void)
{
	static char dir[64];

	snprintf(dir, sizeof(dir), "/tmp/sbx-check-fs-%d", (int)getpid());
	ck_assert_int_eq(system("true"), 0);
	mkdir(dir, 0755);
	return dir;
}

static void remove_tmpdir(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ---- unit: ring and command line -------------------------------------- */

START_TEST(test_ring_wraps_and_never_overwrites_unacked)
{
	struct ring r;
	const uint8_t *p;
	uint8_t *w;
	size_t len;

	ring_init(&r, 8);
	ck_assert_uint_eq(ring_room(&r), 8);
	w = ring_space(&r, &len);
	ck_assert_ptr_nonnull(w);
	ck_assert_uint_eq(len, 8);
	memcpy(w, "abcdef", 6);
	ring_commit(&r, 6);
	ck_assert_uint_eq(ring_room(&r), 2);
	ring_release_to(&r, 4);
	ck_assert_uint_eq(ring_room(&r), 6);
	w = ring_space(&r, &len);
	ck_assert_uint_eq(len, 2); /* contiguous up to the end */
	memcpy(w, "gh", 2);
	ring_commit(&r, 2);
	w = ring_space(&r, &len);
	ck_assert_uint_eq(len, 4);
	memcpy(w, "ijkl", 4);
	ring_commit(&r, 4);
	ck_assert_uint_eq(ring_room(&r), 0);
	ck_assert_ptr_null(ring_space(&r, &len));
	ck_assert_uint_eq(len, 0);
	ck_assert_uint_eq(ring_start(&r), 4);
	p = ring_peek(&r, 4, &len);
	ck_assert_uint_eq(len, 4);
	ck_assert_mem_eq(p, "efgh", 4);
	p = ring_peek(&r, 8, &len);
	ck_assert_mem_eq(p, "ijkl", 4);
	ck_assert_ptr_null(ring_peek(&r, 3, &len));  /* overwritten */
	ck_assert_ptr_null(ring_peek(&r, 12, &len)); /* not written yet */
	ring_release_to(&r, 100);		     /* clamped to head */
	ck_assert_uint_eq(r.floor, 12);
	ring_release_to(&r, 5); /* never backwards */
	ck_assert_uint_eq(r.floor, 12);
	ring_release(&r);
}
END_TEST

START_TEST(test_cmdline_parses_sbx_parameters)
{
	struct init_config c;

	init_parse_cmdline("console=ttyS0 quiet\n", &c);
	ck_assert_str_eq(c.root, "/dev/vda");
	ck_assert_str_eq(c.rootfstype, "ext4");
	ck_assert_str_eq(c.hostname, "sbx");
	ck_assert(!c.wait_for_host && !c.debug);
	init_parse_cmdline("sbx.root=/dev/vdb sbx.rootfstype=xfs sbx.hostname=box-1 "
			   "sbx.init=wait sbx.debug sbx.rootx=no\n",
			   &c);
	ck_assert_str_eq(c.root, "/dev/vdb");
	ck_assert_str_eq(c.rootfstype, "xfs");
	ck_assert_str_eq(c.hostname, "box-1");
	ck_assert(c.wait_for_host && c.debug);
	init_parse_cmdline(
	    "sbx.hostname="
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
	    "sbx.debug=0",
	    &c);
	ck_assert_uint_eq(strlen(c.hostname), 64);
	ck_assert(!c.debug);
}
END_TEST

START_TEST(test_cmdline_init_wait_makes_a_zygote)
{
	struct init_config c;

	/* a zygote keeps the other defaults: FIXUP names the root later */
	init_parse_cmdline("console=hvc0 sbx.init=wait tsc_early_khz=2000000", &c);
	ck_assert(c.wait_for_host);
	ck_assert_str_eq(c.root, "/dev/vda");
	ck_assert_str_eq(c.rootfstype, "ext4");
	ck_assert_str_eq(c.hostname, "sbx");
	/* only the exact value; the last one wins */
	init_parse_cmdline("sbx.init=waiting", &c);
	ck_assert(!c.wait_for_host);
	init_parse_cmdline("sbx.init=wai", &c);
	ck_assert(!c.wait_for_host);
	init_parse_cmdline("sbx.init= sbx.init", &c);
	ck_assert(!c.wait_for_host);
	init_parse_cmdline("xsbx.init=wait", &c);
	ck_assert(!c.wait_for_host);
	init_parse_cmdline("sbx.init=wait sbx.init=now", &c);
	ck_assert(!c.wait_for_host);
	init_parse_cmdline("sbx.init=now\tsbx.init=wait\n", &c);
	ck_assert(c.wait_for_host);
}
END_TEST

/* ---- growing the root file system (init_grow_fs) ----------------------- */

static bool have_cap(int cap)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	if (f)
		fclose(f);
	return eff >> cap & 1;
}

/* A 32 MiB ext4 on a loop device is left alone while it fills the device;
 * once the device is 96 MiB it grows to 96 MiB (online resizing needs
 * CAP_SYS_RESOURCE, which PID 1 of a guest has: without it, here, the
 * failure must say so and change nothing); a tmpfs is not touched. Needs
 * root, losetup and mkfs.ext4 (else skipped). Everything set up is taken
 * down before the first assertion. */
START_TEST(test_grow_fs_fills_the_device_once)
{
	char dir[] = "/tmp/sbx-growfs-XXXXXX", cmd[512], mnt[64], loopdev[64] = "";
	char msg1[512] = "", msg2[512] = "", msg3[512] = "";
	struct statvfs before = {0}, after = {0};
	int r1 = -1, r2 = -1, r3 = -1, mounted = 0;
	bool can = have_cap(24 /* CAP_SYS_RESOURCE */);
	FILE *p;

	if (geteuid() != 0 || system("command -v losetup mkfs.ext4 >/dev/null 2>&1") != 0) {
		fprintf(stderr, "# skipped: needs root, losetup and mkfs.ext4\n");
		return;
	}
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(mnt, sizeof(mnt), "%s/m", dir);
	snprintf(cmd, sizeof(cmd),
		 "truncate -s 32M %s/img && mkfs.ext4 -q -F -b 4096 -m 0 %s/img && mkdir %s && "
		 "losetup -f --show %s/img",
		 dir, dir, mnt, dir);
	p = popen(cmd, "r");
	if (p) {
		if (!fgets(loopdev, sizeof(loopdev), p))
			loopdev[0] = '\0';
		pclose(p);
	}
	loopdev[strcspn(loopdev, "\n")] = '\0';
	if (loopdev[0]) {
		snprintf(cmd, sizeof(cmd), "mount -t ext4 %s %s", loopdev, mnt);
		mounted = system(cmd) == 0;
	}
	if (mounted) {
		r1 = init_grow_fs(loopdev, mnt, msg1, sizeof(msg1));
		snprintf(cmd, sizeof(cmd), "truncate -s 96M %s/img && losetup -c %s", dir, loopdev);
		if (system(cmd) == 0) {
			(void)statvfs(mnt, &before);
			r2 = init_grow_fs(loopdev, mnt, msg2, sizeof(msg2));
			(void)statvfs(mnt, &after);
		}
	}
	r3 = init_grow_fs("/dev/null", "/dev/shm", msg3, sizeof(msg3));
	if (mounted) {
		snprintf(cmd, sizeof(cmd), "umount %s", mnt);
		if (system(cmd) != 0)
			fprintf(stderr, "# cannot unmount %s\n", mnt);
	}
	if (loopdev[0]) {
		snprintf(cmd, sizeof(cmd), "losetup -d %s", loopdev);
		if (system(cmd) != 0)
			fprintf(stderr, "# cannot detach %s\n", loopdev);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "# cannot remove %s\n", dir);

	ck_assert_msg(loopdev[0] && mounted, "cannot set up a loop-mounted ext4");
	ck_assert_msg(r1 == 0 && strstr(msg1, "already fills"), "full fs: %d %s", r1, msg1);
	ck_assert_msg((uint64_t)before.f_blocks * before.f_frsize < (32ULL << 20), "df: %llu",
		      (unsigned long long)before.f_blocks * before.f_frsize);
	if (can) {
		ck_assert_msg(r2 == 1 &&
				  strstr(msg2, "grew the root file system from 32 to 96 MiB"),
			      "grow: %d %s", r2, msg2);
		ck_assert_msg((uint64_t)after.f_blocks * after.f_frsize > (88ULL << 20), "df: %llu",
			      (unsigned long long)after.f_blocks * after.f_frsize);
	} else {
		fprintf(stderr, "# no CAP_SYS_RESOURCE here: checking the failure only\n");
		ck_assert_msg(r2 == -EPERM &&
				  strstr(msg2, "cannot grow the root file system from "
					       "32 to 96 MiB") &&
				  strstr(msg2, "it keeps its size"),
			      "grow: %d %s", r2, msg2);
		ck_assert_uint_eq(after.f_blocks, before.f_blocks);
	}
	ck_assert_msg(r3 == -EOPNOTSUPP && strstr(msg3, "is not ext4"), "tmpfs: %d %s", r3, msg3);
}
END_TEST

/* ---- hello, ping, info ------------------------------------------------- */

START_TEST(test_agent_says_hello_and_answers_ping)
{
	struct proto_msg m = {.type = PROTO_PING};
	SETUP();

	ck_assert_uint_eq(t.hello.version, PROTO_VERSION);
	ck_assert_ptr_nonnull(strstr(t.caps, "exec "));
	ck_assert_ptr_nonnull(strstr(t.caps, "pty "));
	ck_assert_ptr_nonnull(strstr(t.caps, "files "));
	ck_assert_ptr_nonnull(strstr(t.caps, "zstd "));
	ck_assert_ptr_nonnull(strstr(t.caps, "attach "));
	ck_assert_ptr_nonnull(strstr(t.caps, "fixup "));
	ck_assert_ptr_nonnull(strstr(t.caps, "root "));
	ck_assert_ptr_null(strstr(t.caps, "vsock"));
	m.u.idonly.id = 77;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_PONG, &m, 5000);
	ck_assert_uint_eq(m.u.idonly.id, 77);
	TEARDOWN();
}
END_TEST

START_TEST(test_info_reports_the_system)
{
	struct proto_msg m = {.type = PROTO_INFO};
	struct utsname u;
	SETUP();

	m.u.idonly.id = tc_id(&t);
	tc_send(&t, &m);
	tc_expect(&t, PROTO_INFO_RESULT, &m, 5000);
	ck_assert_int_eq(uname(&u), 0);
	ck_assert_uint_eq(m.u.info.id, t.next_id);
	ck_assert_ptr_nonnull(strstr(m.u.info.version, "sbx-agent"));
	ck_assert_msg(!strncmp(m.u.info.kernel, u.release, strlen(u.release)) &&
			  strstr(m.u.info.kernel, u.version),
		      "kernel '%s'", m.u.info.kernel);
	ck_assert_str_eq(m.u.info.hostname, u.nodename);
	ck_assert_uint_gt(m.u.info.uptime_ms, 0);
	ck_assert_uint_gt(m.u.info.mem_total, 0);
	ck_assert_uint_gt(m.u.info.mem_available, 0);
	ck_assert_uint_ge(m.u.info.ncpus, 1);
	ck_assert_uint_eq(m.u.info.commands, 0);
	TEARDOWN();
}
END_TEST

START_TEST(test_fixup_sets_hostname_and_entropy)
{
	struct proto_msg m = {.type = PROTO_FIXUP};
	uint8_t entropy[64];
	char host[128];
	struct agent_proc a;
	struct tc t;

	if (geteuid() != 0)
		return;	       /* needs a UTS namespace */
	agent_start(&a, true); /* own UTS namespace: the host keeps its name */
	tc_connect(&t, a.sock);
	fill_random(entropy, sizeof(entropy));
	m.u.fixup.id = tc_id(&t);
	m.u.fixup.hostname = "sbx-fixup-test";
	m.u.fixup.entropy.data = entropy;
	m.u.fixup.entropy.len = sizeof(entropy);
	ck_assert_int_eq(tc_request(&t, &m, NULL), 0);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_INFO;
	m.u.idonly.id = tc_id(&t);
	tc_send(&t, &m);
	tc_expect(&t, PROTO_INFO_RESULT, &m, 5000);
	ck_assert_str_eq(m.u.info.hostname, "sbx-fixup-test");
	gethostname(host, sizeof(host));
	ck_assert_str_ne(host, "sbx-fixup-test");
	TEARDOWN();
}
END_TEST

/* Refusals come before anything is applied, so no UTS namespace is needed:
 * the hostname in these requests must never reach the machine. */
START_TEST(test_fixup_root_is_a_bad_request_outside_a_zygote)
{
	struct proto_msg m;
	struct tc_error err;
	char before[128], after[128];
	SETUP();

	ck_assert_int_eq(gethostname(before, sizeof(before)), 0);
	m = (struct proto_msg){.type = PROTO_FIXUP};
	m.u.fixup.id = tc_id(&t);
	m.u.fixup.root = "/dev/vda";
	m.u.fixup.hostname = "sbx-never-applied";
	ck_assert_int_eq(tc_request(&t, &m, &err), -1);
	ck_assert_uint_eq(err.code, PROTO_E_BAD_REQUEST);
	ck_assert_int_eq(err.err_no, EBUSY);
	ck_assert_msg(strstr(err.msg, "the root disk is already mounted"), "msg: %s", err.msg);

	m = (struct proto_msg){.type = PROTO_FIXUP};
	m.u.fixup.id = tc_id(&t);
	m.u.fixup.root = "vda";
	ck_assert_int_eq(tc_request(&t, &m, &err), -1);
	ck_assert_uint_eq(err.code, PROTO_E_BAD_REQUEST);
	ck_assert_int_eq(err.err_no, EINVAL);
	ck_assert_msg(strstr(err.msg, "absolute path") && strstr(err.msg, "\"vda\""), "msg: %s",
		      err.msg);

	m = (struct proto_msg){.type = PROTO_FIXUP};
	m.u.fixup.id = tc_id(&t);
	m.u.fixup.rootfstype = "ext4";
	m.u.fixup.hostname = "sbx-never-applied";
	ck_assert_int_eq(tc_request(&t, &m, &err), -1);
	ck_assert_uint_eq(err.code, PROTO_E_BAD_REQUEST);
	ck_assert_int_eq(err.err_no, EINVAL);
	ck_assert_msg(strstr(err.msg, "without root"), "msg: %s", err.msg);

	/* a root longer than the wire allows does not decode: bad_frame, with the
	 * request's id */
	{
		uint8_t f[PROTO_HEADER_SIZE + 16 + PROTO_MAX_ROOTDEV + 1] = {'S', 'B', 'X', 'F'};
		size_t n = PROTO_HEADER_SIZE, len = PROTO_MAX_ROOTDEV + 1;
		uint32_t id = tc_id(&t);
		struct proto_msg r;

		f[n++] = 0x82; /* {"id": id, "root": "/ddd..."} */
		f[n++] = 0xa2;
		f[n++] = 'i';
		f[n++] = 'd';
		f[n++] = (uint8_t)id;
		f[n++] = 0xa4;
		memcpy(f + n, "root", 4);
		n += 4;
		f[n++] = 0xda; /* str 16 */
		f[n++] = (uint8_t)(len >> 8);
		f[n++] = (uint8_t)len;
		memset(f + n, 'd', len);
		f[n] = '/';
		n += len;
		f[4] = (uint8_t)(n - PROTO_HEADER_SIZE);
		f[5] = (uint8_t)((n - PROTO_HEADER_SIZE) >> 8);
		f[8] = PROTO_FIXUP;
		ck_assert_uint_lt(id, 128);
		tc_send_raw(&t, f, n);
		ck_assert_int_eq(tc_wait_frame(&t, &r, 5000), PROTO_ERROR);
		ck_assert_uint_eq(r.u.error.code, PROTO_E_BAD_FRAME);
		ck_assert_uint_eq(r.u.error.id, id);
	}

	ck_assert_int_eq(gethostname(after, sizeof(after)), 0);
	ck_assert_str_eq(before, after);
	m = (struct proto_msg){.type = PROTO_PING};
	m.u.idonly.id = tc_id(&t);
	tc_send(&t, &m);
	tc_expect(&t, PROTO_PONG, &m, 5000);
	TEARDOWN();
}
END_TEST

START_TEST(test_shutdown_ends_an_ordinary_agent)
{
	struct proto_msg m = {.type = PROTO_SHUTDOWN};
	struct agent_proc a;
	struct tc t;
	uint64_t deadline;
	int status;

	agent_start(&a, false);
	tc_connect(&t, a.sock);
	m.u.shutdown.id = tc_id(&t);
	ck_assert_int_eq(tc_request(&t, &m, NULL), 0);
	deadline = ms_now() + 5000;
	while (waitpid(a.pid, &status, WNOHANG) == 0) {
		ck_assert_msg(ms_now() < deadline, "the agent did not exit after SHUTDOWN");
		usleep(10000);
	}
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	tc_close(&t);
	unlink(a.log);
}
END_TEST

START_TEST(test_stdio_mode_serves_one_connection)
{
	struct proto_msg m = {.type = PROTO_PING};
	int sv[2], status;
	struct tc t;
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(sv[1], 0);
		dup2(sv[1], 1);
		dup2(null, 2);
		execl(getenv("SBX_AGENT") ? getenv("SBX_AGENT") : SBX_AGENT_BIN, "sbx-agent",
		      "--listen", "stdio", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	tc_connect_fd(&t, sv[0]);
	m.u.idonly.id = 5;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_PONG, &m, 5000);
	tc_close(&t);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

/* ---- exec -------------------------------------------------------------- */

START_TEST(test_exec_echo_prints_hi)
{
	const char *argv[] = {"echo", "hi", NULL};
	struct proto_exec e;
	struct tc_cmd cmd;
	SETUP();

	tc_exec_init(&e);
	e.argv.v = argv;
	e.argv.n = 2;
	tc_exec(&t, &e, &cmd, NULL);
	ck_assert_int_gt(cmd.pid, 0);
	tc_wait_exit(&t, &cmd, 10000);
	ck_assert_str_eq((char *)cmd.out, "hi\n");
	ck_assert_ptr_null(cmd.err);
	ck_assert_int_eq(cmd.exit.code, 0);
	ck_assert_int_eq(cmd.exit.signal, 0);
	ck_assert(!cmd.exit.timed_out && !cmd.exit.killed);
	ck_assert_uint_eq(cmd.exit.out_total, 3);
	ck_assert_uint_eq(cmd.exit.err_total, 0);
	tc_cmd_release(&cmd);
	TEARDOWN();
}
END_TEST

START_TEST(test_exec_reports_exit_code_and_separate_stderr)
{
	struct tc_cmd c1, c2;
	SETUP();

	tc_run_shell(&t, "exit 3", &c1, 10000);
	ck_assert_int_eq(c1.exit.code, 3);
	tc_run_shell(&t, "echo out; echo err >&2; echo out2", &c2, 10000);
	ck_assert_str_eq((char *)c2.out, "out\nout2\n");
	ck_assert_str_eq((char *)c2.err, "err\n");
	ck_assert_uint_eq(c2.exit.err_total, 4);
	ck_assert_uint_ne(c1.id, c2.id);
	tc_cmd_release(&c1);
	tc_cmd_release(&c2);
	TEARDOWN();
}
END_TEST

START_TEST(test_exec_reports_death_by_signal)
{
	struct tc_cmd cmd;
	SETUP();

	tc_run_shell(&t, "kill -KILL $$", &cmd, 10000);
	ck_assert_int_eq(cmd.exit.signal, 9);
	ck_assert_int_eq(cmd.exit.code, -1);
	ck_assert(!cmd.exit.killed);
	tc_cmd_release(&cmd);
	TEARDOWN();
}
END_TEST

START_TEST(test_exec_of_missing_binary_is_an_exec_error)
{
	const char *argv[] = {"nosuchcmd-sbx", NULL};
	const char *argv2[] = {"true", NULL};
	struct proto_exec e;
	struct tc_error err;
	struct tc_cmd cmd;
	SETUP();

	tc_exec_init(&e);
	e.argv.v = argv;
	e.argv.n = 1;
	ck_assert_int_eq(tc_exec(&t, &e, &cmd, &err), -1);
	ck_assert_uint_eq(err.code, PROTO_E_EXEC);
	ck_assert_int_eq(err.err_no, ENOENT);
	ck_assert_str_eq(err.msg, "cannot run 'nosuchcmd-sbx': No such file or directory");

	tc_exec_init(&e);
	e.argv.v = argv2;
	e.argv.n = 1;
	e.cwd = "/nonexistent/dir";
	ck_assert_int_eq(tc_exec(&t, &e, &cmd, &err), -1);
	ck_assert_uint_eq(err.code, PROTO_E_EXEC);
	ck_assert_int_eq(err.err_no, ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/dir"));
	TEARDOWN();
}
END_TEST

START_TEST(test_exec_env_cwd_and_user)
{
	const char *env[] = {"FOO=bar baz", "PATH=/usr/bin:/bin", NULL};
	struct proto_exec e;
	struct tc_cmd cmd;
	SETUP();

	tc_exec_init(&e);
	e.shell = "echo \"$FOO\"; pwd; id -u; id -g; echo $HOME";
	if (geteuid() != 0) /* switching users needs root */
		e.shell = "echo \"$FOO\"; pwd; echo 65534; echo 65534; echo";
	e.env.v = env;
	e.env.n = 2;
	e.cwd = "/tmp";
	e.uid = geteuid() == 0 ? 65534 : -1;
	e.gid = geteuid() == 0 ? 65534 : -1;
	tc_exec(&t, &e, &cmd, NULL);
	tc_wait_exit(&t, &cmd, 10000);
	ck_assert_str_eq((char *)cmd.out, "bar baz\n/tmp\n65534\n65534\n\n");
	tc_cmd_release(&cmd);

	tc_run_shell(&t, "echo $TERM $HOME $LANG $PATH", &cmd, 10000);
	ck_assert_str_eq((char *)cmd.out,
			 "dumb /root C.UTF-8 "
			 "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
	tc_cmd_release(&cmd);
	TEARDOWN();
}
END_TEST

START_TEST(test_exec_timeout_kills_a_hung_command)
{
	const char *argv[] = {"sleep", "100", NULL};
	struct proto_exec e;
	struct tc_cmd cmd, long_one;
	SETUP();

	/* a later, shorter timeout must pull the agent's single timer in */
	tc_exec_init(&e);
	e.argv.v = argv;
	e.argv.n = 2;
	e.timeout_ms = 8000;
	tc_exec(&t, &e, &long_one, NULL);
	tc_exec_init(&e);
	e.argv.v = argv;
	e.argv.n = 2;
	e.timeout_ms = 300;
	tc_exec(&t, &e, &cmd, NULL);
	tc_wait_exit(&t, &cmd, 3000);
	ck_assert(cmd.exit.timed_out);
	ck_assert(!cmd.exit.killed);
	ck_assert_int_eq(cmd.exit.signal, 9);
	ck_assert_uint_ge(cmd.exit.duration_ms, 290);
	ck_assert_uint_lt(cmd.exit.duration_ms, 3000);
	ck_assert(!long_one.exited);
	TEARDOWN();
}
END_TEST

START_TEST(test_signal_ends_the_whole_process_group)
{
	struct proto_msg m = {.type = PROTO_SIGNAL};
	struct proto_exec e;
	struct tc_error err;
	struct tc_cmd cmd;
	uint64_t deadline;
	SETUP();

	tc_exec_init(&e);
	e.shell = "sleep 1000 & sleep 1000";
	tc_exec(&t, &e, &cmd, NULL);
	deadline = ms_now() + 5000;
	while (group_alive(cmd.pid) < 3) { /* sh and two sleeps */
		ck_assert_msg(ms_now() < deadline, "the command did not start its sleeps");
		usleep(10000);
	}
	m.u.signal.id = tc_id(&t);
	m.u.signal.cmd = cmd.id;
	m.u.signal.signal = 15;
	m.u.signal.group = true;
	ck_assert_int_eq(tc_request(&t, &m, NULL), 0);
	tc_wait_exit(&t, &cmd, 10000);
	ck_assert_int_eq(cmd.exit.signal, 15);
	ck_assert(cmd.exit.killed);
	deadline = ms_now() + 3000;
	while (group_alive(cmd.pid) > 0) {
		ck_assert_msg(ms_now() < deadline, "processes of the group survived SIGTERM");
		usleep(10000);
	}
	/* signalling an exited command is fine, an unknown one is an error */
	m.u.signal.id = tc_id(&t);
	ck_assert_int_eq(tc_request(&t, &m, NULL), 0);
	m.u.signal.id = tc_id(&t);
	m.u.signal.cmd = 999999;
	ck_assert_int_eq(tc_request(&t, &m, &err), -1);
	ck_assert_uint_eq(err.code, PROTO_E_NO_CHANNEL);
	TEARDOWN();
}
END_TEST

START_TEST(test_exit_waits_for_background_writers_then_kills_them)
{
	struct tc_cmd cmd;
	uint64_t start;
	SETUP();

	start = ms_now();
	tc_run_shell(&t, "sleep 1000 & echo started", &cmd, 15000);
	ck_assert_str_eq((char *)cmd.out, "started\n");
	ck_assert_int_eq(cmd.exit.code, 0);
	/* it waited for the writer's grace period (2 s) ... */
	ck_assert_uint_ge(ms_now() - start, 1500);
	/* ... then killed it: sleep 1000 did not hold the exit (that the
	 * 15 s limit of tc_run_shell was not reached is the upper bound; no
	 * tighter one: a loaded CI machine is slow). The kill is sent before
	 * the exit is reported, but the kernel may take a moment to end the
	 * process on a loaded machine: poll with a deadline. */
	{
		uint64_t deadline = ms_now() + 3000;

		while (group_alive(cmd.pid) > 0) {
			ck_assert_msg(ms_now() < deadline, "the background writer survived");
			usleep(10000);
		}
	}
	tc_cmd_release(&cmd);
	TEARDOWN();
}
END_TEST

START_TEST(test_twenty_concurrent_commands_keep_their_output_apart)
{
	struct tc_cmd cmd[20];
	struct proto_exec e;
	char shell[20][128], want[128];
	int i;
	SETUP();

	for (i = 0; i < 20; i++) {
		snprintf(shell[i], sizeof(shell[i]),
			 "for j in 1 2 3; do echo cmd%d-$j; sleep 0.0$j; done; echo err%d >&2", i,
			 i);
		tc_exec_init(&e);
		e.shell = shell[i];
		tc_exec(&t, &e, &cmd[i], NULL);
	}
	for (i = 0; i < 20; i++) {
		tc_wait_exit(&t, &cmd[i], 20000);
		snprintf(want, sizeof(want), "cmd%d-1\ncmd%d-2\ncmd%d-3\n", i, i, i);
		ck_assert_str_eq((char *)cmd[i].out, want);
		snprintf(want, sizeof(want), "err%d\n", i);
		ck_assert_str_eq((char *)cmd[i].err, want);
		ck_assert_int_eq(cmd[i].exit.code, 0);
		tc_cmd_release(&cmd[i]);
	}
	TEARDOWN();
}
END_TEST

/* ---- stdin and PTY ----------------------------------------------------- */

START_TEST(test_stdin_round_trip_through_cat)
{
	const char *argv[] = {"cat", NULL};
	const size_t n = 1024 * 1024;
	uint8_t *data = malloc(n);
	struct proto_exec e;
	struct tc_cmd cmd;
	uint64_t off = 0;
	SETUP();

	ck_assert_ptr_nonnull(data);
	fill_random(data, n);
	tc_exec_init(&e);
	e.argv.v = argv;
	e.argv.n = 1;
	e.stdin_open = true;
	tc_exec(&t, &e, &cmd, NULL);
	tc_stdin(&t, &cmd, &off, data, n, true);
	tc_wait_exit(&t, &cmd, 30000);
	ck_assert_int_eq(cmd.exit.code, 0);
	ck_assert_uint_eq(cmd.exit.out_total, n);
	ck_assert_mem_eq(cmd.out, data, n);
	free(data);
	tc_cmd_release(&cmd);
	TEARDOWN();
}
END_TEST

START_TEST(test_stdin_to_a_command_that_stops_reading)
{
	const char *argv[] = {"head", "-c", "10", NULL};
	const size_t n = 600 * 1024;
	uint8_t *data = calloc(1, n);
	struct proto_exec e;
	struct tc_cmd cmd;
	uint64_t off = 0;
	SETUP();

	tc_exec_init(&e);
	e.argv.v = argv;
	e.argv.n = 3;
	e.stdin_open = true;
	tc_exec(&t, &e, &cmd, NULL);
	tc_stdin(&t, &cmd, &off, data, n, true);
	tc_wait_exit(&t, &cmd, 30000);
	ck_assert_int_eq(cmd.exit.code, 0);
	ck_assert_uint_eq(cmd.exit.out_total, 10);
	free(data);
	tc_cmd_release(&cmd);
	TEARDOWN();
}
END_TEST

START_TEST(test_pty_tty_resize_and_eof)
{
	const char *argv[] = {"tty", NULL};
	const char *cat[] = {"cat", NULL};
	struct proto_msg m = {.type = PROTO_RESIZE};
	struct proto_exec e;
	struct tc_error err;
	struct tc_cmd cmd;
	uint64_t off = 0;
	SETUP();

	tc_exec_init(&e);
	e.argv.v = argv;
	e.argv.n = 1;
	e.pty = true;
	tc_exec(&t, &e, &cmd, NULL);
	tc_wait_exit(&t, &cmd, 10000);
	ck_assert_int_eq(cmd.exit.code, 0);
	ck_assert_ptr_nonnull(cmd.out);
	ck_assert_msg(!strncmp((char *)cmd.out, "/dev/pts/", 9), "tty printed '%s'", cmd.out);
	ck_assert_uint_eq(cmd.exit.err_total, 0);
	tc_cmd_release(&cmd);

	tc_exec_init(&e);
	e.shell = "echo $TERM; read x; stty size";
	e.pty = true;
	e.rows = 24;
	e.cols = 80;
	e.stdin_open = true;
	tc_exec(&t, &e, &cmd, NULL);
	m.u.resize.id = tc_id(&t);
	m.u.resize.cmd = cmd.id;
	m.u.resize.rows = 40;
	m.u.resize.cols = 100;
	ck_assert_int_eq(tc_request(&t, &m, NULL), 0);
	tc_stdin(&t, &cmd, &off, "\n", 1, false);
	tc_wait_exit(&t, &cmd, 10000);
	ck_assert_msg(strstr((char *)cmd.out, "xterm-256color"), "output: %s", cmd.out);
	ck_assert_msg(strstr((char *)cmd.out, "40 100"), "output: %s", cmd.out);
	tc_cmd_release(&cmd);
	/* RESIZE of a command without a terminal */
	m.u.resize.id = tc_id(&t);
	ck_assert_int_eq(tc_request(&t, &m, &err), -1);
	ck_assert_uint_eq(err.code, PROTO_E_BAD_REQUEST);

	/* EOF on a PTY: VEOF ends cat even after a partial line */
	tc_exec_init(&e);
	e.argv.v = cat;
	e.argv.n = 1;
	e.pty = true;
	e.stdin_open = true;
	tc_exec(&t, &e, &cmd, NULL);
	off = 0;
	tc_stdin(&t, &cmd, &off, "partial", 7, true);
	tc_wait_exit(&t, &cmd, 10000);
	ck_assert_int_eq(cmd.exit.code, 0);
	ck_assert_msg(strstr((char *)cmd.out, "partialpartial"), "output: %s", cmd.out);
	tc_cmd_release(&cmd);
	TEARDOWN();
}
END_TEST

/* ---- flow control and attach ------------------------------------------ */

START_TEST(test_backpressure_bounds_memory_and_blocks_the_command)
{
	const uint64_t total = 200ull * 1024 * 1024;
	struct proto_exec e;
	struct proto_msg m;
	struct tc_cmd cmd;
	char shell[128], path[64], state = '?', buf[256], *p;
	bool routed;
	long rss;
	int got;
	FILE *f;
	SETUP();

	snprintf(shell, sizeof(shell), "head -c %llu /dev/zero", (unsigned long long)total);
	tc_exec_init(&e);
	e.shell = shell;
	tc_exec(&t, &e, &cmd, NULL);
	cmd.auto_ack = false;
	cmd.discard = true;
	/* without ACKs the agent sends one window (1 MiB) and stops */
	while ((got = tc_step(&t, &m, 1500, &routed)) != 0)
		ck_assert_msg(routed, "unexpected %s", proto_type_to_string((uint16_t)got));
	ck_assert_uint_eq(cmd.out_next, 1024 * 1024);
	ck_assert(!cmd.exited);
	rss = agent_rss_kb(&a);
	fprintf(stderr, "backpressure: agent RSS %ld KiB with 1 MiB unacknowledged\n", rss);
	ck_assert_msg(rss < (SANITIZED ? 256 : 16) * 1024, "agent RSS %ld KiB", rss);
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)cmd.pid);
	f = fopen(path, "re");
	ck_assert_msg(f != NULL, "the command is gone: it was not blocked");
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		state = p[2];
	fclose(f);
	ck_assert_msg(state == 'S', "the command is in state %c, not blocked", state);
	/* now read and acknowledge everything */
	cmd.auto_ack = true;
	tc_ack(&t, &cmd);
	tc_wait_exit(&t, &cmd, 120000);
	ck_assert_int_eq(cmd.exit.code, 0);
	ck_assert_uint_eq(cmd.exit.out_total, total);
	ck_assert_uint_eq(cmd.out_next, total);
	rss = agent_rss_kb(&a);
	fprintf(stderr, "backpressure: agent RSS %ld KiB after 200 MiB\n", rss);
	ck_assert_msg(rss < (SANITIZED ? 256 : 16) * 1024, "agent RSS %ld KiB", rss);
	TEARDOWN();
}
END_TEST

START_TEST(test_attach_after_disconnect_delivers_everything_once)
{
	struct proto_msg m = {.type = PROTO_ATTACH};
	struct proto_exec e;
	struct tc_cmd cmd, cmd2;
	char *want = malloc(8192);
	size_t wl = 0;
	uint64_t got, deadline;
	uint32_t id;
	int i;
	SETUP();

	for (i = 1; i <= 200; i++)
		wl += (size_t)sprintf(want + wl, "line %d\n", i);
	tc_exec_init(&e);
	e.shell = "i=1; while [ $i -le 100 ]; do echo line $i; i=$((i+1)); done; sleep 0.5; "
		  "while [ $i -le 200 ]; do echo line $i; i=$((i+1)); done";
	tc_exec(&t, &e, &cmd, NULL);
	deadline = ms_now() + 5000;
	while (cmd.out_next < 7) {
		bool routed;

		ck_assert(ms_now() < deadline);
		ck_assert_int_ge(tc_step(&t, &m, 100, &routed), 0);
	}
	got = cmd.out_next;
	id = cmd.id;
	tc_close(&t); /* the command finishes while nobody is attached */
	tc_connect(&t, a.sock);
	wait_no_command_runs(&t, 10000);

	memset(&cmd2, 0, sizeof(cmd2));
	cmd2.id = id;
	cmd2.auto_ack = true;
	cmd2.out_next = got;
	tc_register(&t, &cmd2);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_ATTACH;
	m.u.attach.id = tc_id(&t);
	m.u.attach.cmd = id;
	m.u.attach.out_offset = got;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_ATTACHED, &m, 5000);
	ck_assert_uint_eq(m.u.attached.cmd, id);
	ck_assert(!m.u.attached.running);
	ck_assert_uint_eq(m.u.attached.out_start, 0);
	tc_wait_exit(&t, &cmd2, 10000);
	ck_assert_uint_eq(cmd2.out_next, wl);
	ck_assert_mem_eq(cmd.out, want, got);
	ck_assert_mem_eq(cmd2.out + got, want + got, wl - got);
	ck_assert_uint_eq(cmd2.exit.out_total, wl);

	/* attaching again from 0 replays the retained output and the EXIT */
	tc_cmd_release(&cmd2);
	memset(&cmd2, 0, sizeof(cmd2));
	cmd2.id = id;
	cmd2.auto_ack = true;
	memset(&m, 0, sizeof(m));
	m.type = PROTO_ATTACH;
	m.u.attach.id = tc_id(&t);
	m.u.attach.cmd = id;
	m.u.attach.out_offset = 0;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_ATTACHED, &m, 5000);
	tc_wait_exit(&t, &cmd2, 10000);
	ck_assert_uint_eq(cmd2.out_next, wl);
	ck_assert_mem_eq(cmd2.out, want, wl);

	/* FORGET drops it; then it cannot be attached */
	memset(&m, 0, sizeof(m));
	m.type = PROTO_FORGET;
	m.u.forget.id = tc_id(&t);
	m.u.forget.cmd = id;
	ck_assert_int_eq(tc_request(&t, &m, NULL), 0);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_ATTACH;
	m.u.attach.id = tc_id(&t);
	m.u.attach.cmd = id;
	tc_send(&t, &m);
	{
		struct tc_error err;

		tc_expect_error(&t, &err, 5000);
		ck_assert_uint_eq(err.code, PROTO_E_NO_CHANNEL);
	}
	free(want);
	tc_cmd_release(&cmd);
	tc_cmd_release(&cmd2);
	TEARDOWN();
}
END_TEST

/* ---- files ------------------------------------------------------------- */

/* FILE_WRITE path with data; chunks compressed when zstd. Returns 0 or
 * fills err. */
static bool put_append;

static int put_file(struct tc *t, const char *path, const uint8_t *data, size_t n, bool zstd,
		    bool mkdirs, uint32_t mode, struct tc_error *err)
{
	struct proto_msg m = {.type = PROTO_FILE_WRITE};
	uint8_t *z = malloc(128 * 1024);
	uint64_t acked = 0, window;
	size_t off = 0, chunk;
	uint32_t chan, id;
	long clen;
	int got;

	ck_assert_ptr_nonnull(z);
	id = m.u.file_write.id = tc_id(t);
	m.u.file_write.path = path;
	m.u.file_write.mode = mode;
	m.u.file_write.mkdirs = mkdirs;
	m.u.file_write.size = n;
	m.u.file_write.append = put_append;
	tc_send(t, &m);
	got = tc_wait_frame(t, &m, 5000);
	if (got == PROTO_ERROR) {
		err->code = m.u.error.code;
		err->err_no = m.u.error.err_no;
		snprintf(err->msg, sizeof(err->msg), "%s", m.u.error.msg ? m.u.error.msg : "");
		free(z);
		return -1;
	}
	ck_assert_int_eq(got, PROTO_FILE_OPENED);
	ck_assert_uint_eq(m.u.file_opened.id, id);
	ck_assert(m.u.file_opened.zstd);
	chan = m.u.file_opened.chan;
	window = m.u.file_opened.window;
	ck_assert_uint_ge(window, 128 * 1024);
	do {
		while (off - acked + 128 * 1024 > window) {
			got = tc_wait_frame(t, &m, 5000);
			ck_assert_int_eq(got, PROTO_ACK);
			ck_assert_uint_eq(m.channel, chan);
			acked = m.u.ack.in;
		}
		chunk = n - off < 128 * 1024 ? n - off : 128 * 1024;
		memset(&m, 0, sizeof(m));
		m.type = PROTO_DATA;
		m.channel = chan;
		m.u.data.offset = off;
		m.u.data.data.data = data + off;
		m.u.data.data.len = chunk;
		if (zstd && chunk) {
			clen = proto_zstd_compress(data + off, chunk, z, 128 * 1024);
			ck_assert_int_ge(clen, 0);
			if (clen > 0) {
				m.u.data.raw_len = (uint32_t)chunk;
				m.u.data.data.data = z;
				m.u.data.data.len = (size_t)clen;
			}
		}
		off += chunk;
		if (off == n)
			m.flags = PROTO_F_EOF; /* informative */
		tc_send(t, &m);
	} while (off < n);
	free(z);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_FILE_DONE;
	m.channel = chan;
	m.u.file_done.id = id;
	m.u.file_done.size = n;
	tc_send(t, &m);
	for (;;) {
		got = tc_wait_frame(t, &m, 10000);
		if (got == PROTO_ACK)
			continue;
		if (got == PROTO_ERROR) {
			err->code = m.u.error.code;
			err->err_no = m.u.error.err_no;
			snprintf(err->msg, sizeof(err->msg), "%s", m.u.error.msg);
			return -1;
		}
		ck_assert_int_eq(got, PROTO_FILE_DONE);
		ck_assert_uint_eq(m.u.file_done.id, id);
		ck_assert_uint_eq(m.u.file_done.size, n);
		ck_assert_uint_eq(m.channel, chan);
		return 0;
	}
}

/* FILE_READ path; returns the bytes (caller frees) and their number. */
static uint64_t get_offset, get_length;

static uint8_t *get_file(struct tc *t, const char *path, bool zstd, size_t *ret_n,
			 unsigned *ret_compressed)
{
	struct proto_msg m = {.type = PROTO_FILE_READ};
	uint8_t *buf = NULL;
	uint64_t size, got_bytes = 0, cap;
	uint32_t chan, id;
	int got;

	*ret_compressed = 0;
	id = m.u.file_read.id = tc_id(t);
	m.u.file_read.path = path;
	m.u.file_read.offset = get_offset;
	m.u.file_read.length = get_length;
	m.u.file_read.window = 512 * 1024;
	m.u.file_read.zstd = zstd;
	tc_send(t, &m);
	tc_expect(t, PROTO_FILE_OPENED, &m, 5000);
	ck_assert_uint_eq(m.u.file_opened.id, id);
	chan = m.u.file_opened.chan;
	size = m.u.file_opened.size; /* UINT64_MAX: unknown (procfs) */
	cap = size == UINT64_MAX ? 1024 * 1024 : size + 1;
	buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	for (;;) {
		got = tc_wait_frame(t, &m, 10000);
		if (got == PROTO_FILE_DONE)
			break;
		ck_assert_int_eq(got, PROTO_DATA);
		ck_assert_uint_eq(m.channel, chan);
		ck_assert_uint_eq(m.u.data.offset, got_bytes);
		if (m.u.data.raw_len) {
			ck_assert_uint_le(got_bytes + m.u.data.raw_len, MIN(size, cap));
			ck_assert_int_eq(proto_zstd_decompress(m.u.data.data.data,
							       m.u.data.data.len, buf + got_bytes,
							       m.u.data.raw_len),
					 0);
			got_bytes += m.u.data.raw_len;
			(*ret_compressed)++;
		} else {
			ck_assert_uint_le(got_bytes + m.u.data.data.len, MIN(size, cap));
			memcpy(buf + got_bytes, m.u.data.data.data, m.u.data.data.len);
			got_bytes += m.u.data.data.len;
		}
		memset(&m, 0, sizeof(m));
		m.type = PROTO_ACK;
		m.channel = chan;
		m.u.ack.out = got_bytes;
		m.u.ack.err = m.u.ack.in = PROTO_ACK_NONE;
		tc_send(t, &m);
	}
	ck_assert_uint_eq(m.u.file_done.id, id);
	ck_assert_uint_eq(m.u.file_done.size, got_bytes);
	if (size != UINT64_MAX)
		ck_assert_uint_eq(got_bytes, size);
	*ret_n = (size_t)got_bytes;
	return buf;
}

static uint8_t *slurp(const char *path, size_t *n)
{
	size_t cap = 4096, r;
	uint8_t *b = malloc(cap);
	FILE *f = fopen(path, "re");

	ck_assert_ptr_nonnull(f);
	*n = 0;
	while ((r = fread(b + *n, 1, cap - *n, f)) > 0) {
		*n += r;
		if (*n == cap) {
			cap *= 2;
			b = realloc(b, cap);
			ck_assert_ptr_nonnull(b);
		}
	}
	fclose(f);
	return b;
}

START_TEST(test_file_write_read_round_trip)
{
	const size_t n = 3 * 1024 * 1024 + 12345;
	uint8_t *rnd = malloc(n), *text = malloc(n), *back;
	char *dir = make_tmpdir(), p1[128], p2[128];
	struct tc_error err;
	unsigned compressed;
	struct stat st;
	size_t i, len;
	SETUP();

	fill_random(rnd, n);
	for (i = 0; i < n; i++)
		text[i] = (uint8_t)("all work and no play makes jack a dull boy\n"[i % 43]);
	snprintf(p1, sizeof(p1), "%s/random.bin", dir);
	snprintf(p2, sizeof(p2), "%s/text.txt", dir);
	ck_assert_int_eq(put_file(&t, p1, rnd, n, false, false, 0600, &err), 0);
	ck_assert_int_eq(put_file(&t, p2, text, n, true, false, 0, &err), 0);
	ck_assert_int_eq(stat(p1, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(stat(p2, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0644);
	back = slurp(p1, &len); /* the agent runs here: check the disk too */
	ck_assert_uint_eq(len, n);
	ck_assert_mem_eq(back, rnd, n);
	free(back);

	back = get_file(&t, p1, true, &len, &compressed);
	ck_assert_uint_eq(len, n);
	ck_assert_mem_eq(back, rnd, n);
	ck_assert_uint_eq(compressed, 0); /* random data does not compress */
	free(back);
	back = get_file(&t, p2, true, &len, &compressed);
	ck_assert_uint_eq(len, n);
	ck_assert_mem_eq(back, text, n);
	ck_assert_uint_gt(compressed, 0);
	free(back);
	back = get_file(&t, p2, false, &len, &compressed);
	ck_assert_mem_eq(back, text, n);
	ck_assert_uint_eq(compressed, 0);
	free(back);
	/* an empty file, overwritten over the old one */
	ck_assert_int_eq(put_file(&t, p1, rnd, 0, false, false, 0, &err), 0);
	ck_assert_int_eq(stat(p1, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	free(rnd);
	free(text);
	remove_tmpdir(dir);
	TEARDOWN();
}
END_TEST

START_TEST(test_file_write_to_missing_directory)
{
	char *dir = make_tmpdir(), path[200], missing[160];
	struct proto_msg m = {.type = PROTO_FILE_READ};
	struct tc_error err;
	SETUP();

	snprintf(missing, sizeof(missing), "%s/nonexistent/dir", dir);
	snprintf(path, sizeof(path), "%s/file", missing);
	ck_assert_int_eq(put_file(&t, path, (const uint8_t *)"x", 1, false, false, 0, &err), -1);
	ck_assert_uint_eq(err.code, PROTO_E_IO);
	ck_assert_int_eq(err.err_no, ENOENT);
	ck_assert_msg(strstr(err.msg, missing), "message: %s", err.msg);
	ck_assert_int_eq(put_file(&t, path, (const uint8_t *)"x", 1, false, true, 0, &err), 0);
	ck_assert_int_eq(access(path, F_OK), 0);
	/* directories are refused */
	ck_assert_int_eq(put_file(&t, dir, (const uint8_t *)"x", 1, false, true, 0, &err), -1);
	ck_assert_int_eq(err.err_no, EISDIR);
	/* reading a missing file or a directory */
	m.u.file_read.id = tc_id(&t);
	m.u.file_read.path = "/nonexistent/file";
	tc_send(&t, &m);
	tc_expect_error(&t, &err, 5000);
	ck_assert_int_eq(err.err_no, ENOENT);
	ck_assert_str_eq(err.msg,
			 "cannot open /nonexistent/file for reading: No such file or directory");
	m.u.file_read.id = tc_id(&t);
	m.u.file_read.path = dir;
	tc_send(&t, &m);
	tc_expect_error(&t, &err, 5000);
	ck_assert_int_eq(err.err_no, EISDIR);
	remove_tmpdir(dir);
	TEARDOWN();
}
END_TEST

static int count_temp_files(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".sbx-"))
			n++;
	closedir(d);
	return n;
}

START_TEST(test_failed_transfer_leaves_the_old_file)
{
	char *dir = make_tmpdir(), path[160];
	struct proto_msg m = {.type = PROTO_FILE_WRITE};
	static uint8_t junk[100 * 1024];
	struct tc_error err;
	uint64_t deadline;
	uint8_t *back;
	uint32_t chan;
	size_t len;
	FILE *f;
	SETUP();

	snprintf(path, sizeof(path), "%s/keep.txt", dir);
	f = fopen(path, "we");
	fputs("old content\n", f);
	fclose(f);
	m.u.file_write.id = tc_id(&t);
	m.u.file_write.path = path;
	m.u.file_write.size = PROTO_ACK_NONE;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_FILE_OPENED, &m, 5000);
	chan = m.u.file_opened.chan;
	memset(&m, 0, sizeof(m));
	m.type = PROTO_DATA;
	m.channel = chan;
	m.u.data.data.data = junk;
	m.u.data.data.len = sizeof(junk);
	tc_send(&t, &m);
	tc_expect(&t, PROTO_ACK, &m, 5000);
	ck_assert_int_eq(count_temp_files(dir), 1);
	tc_close(&t); /* disconnect mid-transfer */
	deadline = ms_now() + 3000;
	while (count_temp_files(dir)) {
		ck_assert_msg(ms_now() < deadline, "the temporary file was not removed");
		usleep(10000);
	}
	back = slurp(path, &len);
	ck_assert_uint_eq(len, 12);
	ck_assert_mem_eq(back, "old content\n", 12);
	free(back);

	/* a transfer shorter than announced is refused and changes nothing */
	tc_connect(&t, a.sock);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_FILE_WRITE;
	m.u.file_write.id = tc_id(&t);
	m.u.file_write.path = path;
	m.u.file_write.size = 10;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_FILE_OPENED, &m, 5000);
	chan = m.u.file_opened.chan;
	memset(&m, 0, sizeof(m));
	m.type = PROTO_DATA;
	m.channel = chan;
	m.u.data.data.data = junk;
	m.u.data.data.len = 5;
	tc_send(&t, &m);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_FILE_DONE;
	m.channel = chan;
	m.u.file_done.id = t.next_id;
	m.u.file_done.size = 5;
	tc_send(&t, &m);
	for (;;) {
		int got = tc_wait_frame(&t, &m, 5000);

		if (got == PROTO_ACK)
			continue;
		ck_assert_int_eq(got, PROTO_ERROR);
		ck_assert_uint_eq(m.u.error.code, PROTO_E_BAD_REQUEST);
		break;
	}
	ck_assert_int_eq(count_temp_files(dir), 0);
	back = slurp(path, &len);
	ck_assert_mem_eq(back, "old content\n", 12);
	free(back);
	(void)err;
	remove_tmpdir(dir);
	TEARDOWN();
}
END_TEST

START_TEST(test_stat_list_mkdir_remove)
{
	char *dir = make_tmpdir(), p[256], q[256];
	struct proto_msg m;
	struct tc_error err;
	uint32_t total = 0, frames = 0, i;
	char last[64] = "";
	SETUP();

	/* MKDIR: parents, then an existing one without parents */
	memset(&m, 0, sizeof(m));
	m.type = PROTO_MKDIR;
	snprintf(p, sizeof(p), "%s/a/b/c", dir);
	m.u.path.id = tc_id(&t);
	m.u.path.path = p;
	m.u.path.recursive = true;
	m.u.path.mode = 0700;
	ck_assert_int_eq(tc_request(&t, &m, NULL), 0);
	m.u.path.id = tc_id(&t);
	ck_assert_int_eq(tc_request(&t, &m, NULL), 0); /* exists: fine with parents */
	m.u.path.id = tc_id(&t);
	m.u.path.recursive = false;
	ck_assert_int_eq(tc_request(&t, &m, &err), -1);
	ck_assert_int_eq(err.err_no, EEXIST);

	/* STAT of a directory, a file, a symlink, a missing path */
	snprintf(q, sizeof(q), "%s/a/file", dir);
	ck_assert_int_eq(put_file(&t, q, (const uint8_t *)"12345", 5, false, false, 0640, &err), 0);
	snprintf(q, sizeof(q), "%s/a/link", dir);
	ck_assert_int_eq(symlink("file", q), 0);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_STAT;
	m.u.path.id = tc_id(&t);
	m.u.path.path = p;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_STAT_RESULT, &m, 5000);
	ck_assert_uint_eq(m.u.stat.type, PROTO_FT_DIR);
	ck_assert_uint_eq(m.u.stat.mode, 0700);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_STAT;
	m.u.path.id = tc_id(&t);
	m.u.path.path = q;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_STAT_RESULT, &m, 5000);
	ck_assert_uint_eq(m.u.stat.type, PROTO_FT_SYMLINK);
	ck_assert_str_eq(m.u.stat.link, "file");
	snprintf(q, sizeof(q), "%s/a/file", dir);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_STAT;
	m.u.path.id = tc_id(&t);
	m.u.path.path = q;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_STAT_RESULT, &m, 5000);
	ck_assert_uint_eq(m.u.stat.type, PROTO_FT_FILE);
	ck_assert_uint_eq(m.u.stat.size, 5);
	ck_assert_uint_eq(m.u.stat.mode, 0640);
	ck_assert_uint_eq(m.u.stat.uid, getuid());
	ck_assert_ptr_null(m.u.stat.link);
	snprintf(q, sizeof(q), "%s/missing", dir);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_STAT;
	m.u.path.id = tc_id(&t);
	m.u.path.path = q;
	tc_send(&t, &m);
	tc_expect_error(&t, &err, 5000);
	ck_assert_uint_eq(err.code, PROTO_E_IO);
	ck_assert_int_eq(err.err_no, ENOENT);

	/* LIST: sorted, typed */
	snprintf(q, sizeof(q), "%s/a", dir);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_LIST;
	m.u.path.id = tc_id(&t);
	m.u.path.path = q;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_LIST_RESULT, &m, 5000);
	ck_assert_uint_eq(m.u.list.n, 3);
	ck_assert(!m.u.list.more);
	ck_assert_str_eq(m.u.list.entries[0].name, "b");
	ck_assert_uint_eq(m.u.list.entries[0].type, PROTO_FT_DIR);
	ck_assert_str_eq(m.u.list.entries[1].name, "file");
	ck_assert_uint_eq(m.u.list.entries[1].type, PROTO_FT_FILE);
	ck_assert_uint_eq(m.u.list.entries[1].size, 5);
	ck_assert_str_eq(m.u.list.entries[2].name, "link");
	ck_assert_uint_eq(m.u.list.entries[2].type, PROTO_FT_SYMLINK);

	/* LIST of a big directory comes in several frames */
	snprintf(q, sizeof(q), "%s/big", dir);
	mkdir(q, 0755);
	for (i = 0; i < 5000; i++) {
		snprintf(p, sizeof(p), "%s/big/f%05u", dir, i);
		close(open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
	}
	memset(&m, 0, sizeof(m));
	m.type = PROTO_LIST;
	m.u.path.id = tc_id(&t);
	m.u.path.path = q;
	tc_send(&t, &m);
	do {
		tc_expect(&t, PROTO_LIST_RESULT, &m, 5000);
		frames++;
		for (i = 0; i < m.u.list.n; i++) {
			ck_assert_int_lt(strcmp(last, m.u.list.entries[i].name), 0);
			snprintf(last, sizeof(last), "%s", m.u.list.entries[i].name);
		}
		total += m.u.list.n;
	} while (m.u.list.more);
	ck_assert_uint_eq(total, 5000);
	ck_assert_uint_ge(frames, 2);

	/* REMOVE: non-empty without recursive fails; recursive never follows
	 * a symlink out of the tree; "/" is refused */
	snprintf(p, sizeof(p), "%s/outside", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/outside/keep", dir);
	close(open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
	snprintf(q, sizeof(q), "%s/a/b/c/escape", dir);
	snprintf(p, sizeof(p), "%s/outside", dir);
	ck_assert_int_eq(symlink(p, q), 0);
	snprintf(q, sizeof(q), "%s/a", dir);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_REMOVE;
	m.u.path.id = tc_id(&t);
	m.u.path.path = q;
	ck_assert_int_eq(tc_request(&t, &m, &err), -1);
	ck_assert_int_eq(err.err_no, ENOTEMPTY);
	m.u.path.id = tc_id(&t);
	m.u.path.recursive = true;
	ck_assert_int_eq(tc_request(&t, &m, NULL), 0);
	ck_assert_int_ne(access(q, F_OK), 0);
	snprintf(p, sizeof(p), "%s/outside/keep", dir);
	ck_assert_int_eq(access(p, F_OK), 0);
	m.u.path.id = tc_id(&t); /* already gone: fine with recursive (rm -rf) */
	ck_assert_int_eq(tc_request(&t, &m, NULL), 0);
	m.u.path.id = tc_id(&t);
	m.u.path.recursive = false;
	ck_assert_int_eq(tc_request(&t, &m, &err), -1);
	ck_assert_int_eq(err.err_no, ENOENT);
	m.u.path.id = tc_id(&t);
	m.u.path.path = "/";
	ck_assert_int_eq(tc_request(&t, &m, &err), -1);
	ck_assert_uint_eq(err.code, PROTO_E_BAD_REQUEST);
	m.u.path.id = tc_id(&t);
	m.u.path.path = "/./";
	ck_assert_int_eq(tc_request(&t, &m, &err), -1);
	ck_assert_uint_eq(err.code, PROTO_E_BAD_REQUEST);
	remove_tmpdir(dir);
	TEARDOWN();
}
END_TEST

START_TEST(test_file_append_ranges_and_procfs)
{
	char *dir = make_tmpdir(), path[160];
	struct tc_error err;
	unsigned compressed;
	uint8_t *back, *local;
	size_t len, llen;
	SETUP();

	snprintf(path, sizeof(path), "%s/log.txt", dir);
	ck_assert_int_eq(put_file(&t, path, (const uint8_t *)"one\n", 4, false, false, 0, &err), 0);
	put_append = true;
	ck_assert_int_eq(put_file(&t, path, (const uint8_t *)"two\n", 4, false, false, 0, &err), 0);
	put_append = false;
	back = slurp(path, &len);
	ck_assert_uint_eq(len, 8);
	ck_assert_mem_eq(back, "one\ntwo\n", 8);
	free(back);

	get_offset = 2;
	get_length = 4;
	back = get_file(&t, path, false, &len, &compressed);
	ck_assert_uint_eq(len, 4);
	ck_assert_mem_eq(back, "e\ntw", 4);
	free(back);
	get_offset = 100; /* past the end: nothing */
	get_length = 0;
	back = get_file(&t, path, false, &len, &compressed);
	ck_assert_uint_eq(len, 0);
	free(back);
	get_offset = 0;

	/* procfs reports size 0: the agent sends until EOF */
	back = get_file(&t, "/proc/version", true, &len, &compressed);
	local = slurp("/proc/version", &llen);
	ck_assert_uint_gt(len, 0);
	ck_assert_uint_eq(len, llen);
	ck_assert_mem_eq(back, local, len);
	free(back);
	free(local);
	remove_tmpdir(dir);
	TEARDOWN();
}
END_TEST

START_TEST(test_host_error_aborts_a_write)
{
	char *dir = make_tmpdir(), path[160];
	struct proto_msg m = {.type = PROTO_FILE_WRITE};
	uint64_t deadline;
	uint32_t chan, id;
	SETUP();

	snprintf(path, sizeof(path), "%s/aborted", dir);
	id = m.u.file_write.id = tc_id(&t);
	m.u.file_write.path = path;
	m.u.file_write.size = PROTO_ACK_NONE;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_FILE_OPENED, &m, 5000);
	chan = m.u.file_opened.chan;
	memset(&m, 0, sizeof(m));
	m.type = PROTO_DATA;
	m.channel = chan;
	m.u.data.data.data = (const uint8_t *)"partial";
	m.u.data.data.len = 7;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_ACK, &m, 5000);
	ck_assert_int_eq(count_temp_files(dir), 1);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_ERROR;
	m.channel = chan;
	m.u.error.id = id;
	m.u.error.code = PROTO_E_IO;
	m.u.error.msg = "the host gave up";
	tc_send(&t, &m);
	deadline = ms_now() + 3000;
	while (count_temp_files(dir)) {
		ck_assert_msg(ms_now() < deadline, "the temporary file was not removed");
		usleep(10000);
	}
	ck_assert_int_ne(access(path, F_OK), 0);
	/* later frames on the ended channel are ignored, and service goes on */
	memset(&m, 0, sizeof(m));
	m.type = PROTO_DATA;
	m.channel = chan;
	m.u.data.offset = 7;
	tc_send(&t, &m);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_PING;
	m.u.idonly.id = 4242;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_PONG, &m, 5000);
	ck_assert_uint_eq(m.u.idonly.id, 4242);
	remove_tmpdir(dir);
	TEARDOWN();
}
END_TEST

START_TEST(test_second_hello_starts_a_new_session)
{
	const char *argv[] = {"cat", NULL};
	struct proto_msg m = {.type = PROTO_HELLO};
	struct proto_exec e;
	struct tc_error err;
	struct tc_cmd cmd, again;
	uint64_t off = 0;
	SETUP();

	tc_exec_init(&e);
	e.argv.v = argv;
	e.argv.n = 1;
	e.stdin_open = true;
	tc_exec(&t, &e, &cmd, NULL);
	tc_stdin(&t, &cmd, &off, "abc", 3, false);
	while (cmd.out_next < 3) {
		bool routed;

		ck_assert_int_gt(tc_step(&t, &m, 5000, &routed), 0);
	}
	memset(&m, 0, sizeof(m));
	m.type = PROTO_HELLO;
	m.u.hello.version = PROTO_VERSION + 1; /* a newer host: version 1 is spoken */
	m.u.hello.software = "check_agent (again)";
	tc_send(&t, &m);
	tc_expect(&t, PROTO_HELLO, &m, 5000);
	ck_assert_uint_eq(m.u.hello.version, PROTO_VERSION);
	/* the command was detached by the new session */
	memset(&m, 0, sizeof(m));
	m.type = PROTO_STDIN;
	m.channel = cmd.id;
	m.u.stdin_data.offset = 3;
	tc_send(&t, &m);
	tc_expect_error(&t, &err, 5000);
	ck_assert_uint_eq(err.code, PROTO_E_BAD_REQUEST);
	/* ATTACH takes it back, with where stdin stands */
	t.ncmds = 0;
	memset(&again, 0, sizeof(again));
	again.id = cmd.id;
	again.auto_ack = true;
	again.out_next = 3;
	tc_register(&t, &again);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_ATTACH;
	m.u.attach.id = tc_id(&t);
	m.u.attach.cmd = cmd.id;
	m.u.attach.out_offset = 3;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_ATTACHED, &m, 5000);
	ck_assert(m.u.attached.running);
	ck_assert_uint_eq(m.u.attached.in_offset, 3);
	ck_assert_uint_gt(m.u.attached.stdin_window, 0);
	/* a retransmission overlapping what was taken is trimmed */
	memset(&m, 0, sizeof(m));
	m.type = PROTO_STDIN;
	m.flags = PROTO_F_EOF;
	m.channel = cmd.id;
	m.u.stdin_data.offset = 1;
	m.u.stdin_data.data.data = (const uint8_t *)"bcdef";
	m.u.stdin_data.data.len = 5;
	tc_send(&t, &m);
	tc_wait_exit(&t, &again, 10000);
	ck_assert_uint_eq(again.out_next, 6);
	ck_assert_mem_eq(again.out + 3, "def", 3);
	tc_cmd_release(&cmd);
	tc_cmd_release(&again);
	TEARDOWN();
}
END_TEST

START_TEST(test_commands_get_the_original_fd_limit)
{
	struct tc_cmd cmd;
	struct rlimit r;
	char want[32];
	SETUP();

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &r), 0);
	snprintf(want, sizeof(want), "%llu\n", (unsigned long long)r.rlim_cur);
	tc_run_shell(&t, "ulimit -n", &cmd, 10000);
	ck_assert_str_eq((char *)cmd.out, want);
	tc_cmd_release(&cmd);
	TEARDOWN();
}
END_TEST

/* ---- hostile input ----------------------------------------------------- */

START_TEST(test_garbage_gets_one_error_and_service_goes_on)
{
	static const char garbage[] = "this is not a frame\n\x01\x02\x03 GET / HTTP/1.1\r\n\r\n";
	struct proto_msg m = {.type = PROTO_PING};
	struct proto_buf b;
	struct tc_error err;
	SETUP();

	tc_send_raw(&t, garbage, sizeof(garbage) - 1);
	m.u.idonly.id = 1234;
	tc_send(&t, &m);
	tc_expect_error(&t, &err, 5000);
	ck_assert_uint_eq(err.code, PROTO_E_BAD_FRAME);
	tc_expect(&t, PROTO_PONG, &m, 5000);
	ck_assert_uint_eq(m.u.idonly.id, 1234);

	/* an unknown frame type: take a PING frame and change its type */
	proto_buf_init(&b);
	memset(&m, 0, sizeof(m));
	m.type = PROTO_PING;
	m.u.idonly.id = 99;
	ck_assert_int_eq(proto_encode(&m, &b), 0);
	b.data[8] = 0xfe; /* u16 type at offset 8 */
	b.data[9] = 0x0f;
	tc_send_raw(&t, b.data, b.len);
	proto_buf_release(&b);
	tc_expect_error(&t, &err, 5000);
	ck_assert_uint_eq(err.code, PROTO_E_UNKNOWN_TYPE);
	ck_assert_uint_eq(err.id, 99);

	/* a frame type only the agent sends */
	memset(&m, 0, sizeof(m));
	m.type = PROTO_PONG;
	m.u.idonly.id = 7;
	tc_send(&t, &m); /* ignored */
	memset(&m, 0, sizeof(m));
	m.type = PROTO_INFO_RESULT;
	m.u.info.id = 8;
	m.u.info.version = "x";
	m.u.info.hostname = "x";
	m.u.info.kernel = "x";
	tc_send(&t, &m);
	tc_expect_error(&t, &err, 5000);
	ck_assert_uint_eq(err.code, PROTO_E_BAD_REQUEST);

	/* and it still answers */
	memset(&m, 0, sizeof(m));
	m.type = PROTO_PING;
	m.u.idonly.id = 1235;
	tc_send(&t, &m);
	tc_expect(&t, PROTO_PONG, &m, 5000);
	ck_assert_uint_eq(m.u.idonly.id, 1235);
	TEARDOWN();
}
END_TEST

START_TEST(test_stdin_protocol_errors)
{
	const char *argv[] = {"cat", NULL};
	struct proto_msg m = {.type = PROTO_STDIN};
	struct proto_exec e;
	struct tc_error err;
	struct tc_cmd cmd;
	SETUP();

	tc_exec_init(&e);
	e.argv.v = argv;
	e.argv.n = 1;
	e.stdin_open = true;
	tc_exec(&t, &e, &cmd, NULL);
	m.channel = cmd.id;
	m.u.stdin_data.offset = 5; /* not contiguous */
	m.u.stdin_data.data.data = (const uint8_t *)"abc";
	m.u.stdin_data.data.len = 3;
	tc_send(&t, &m);
	tc_expect_error(&t, &err, 5000);
	ck_assert_uint_eq(err.code, PROTO_E_BAD_REQUEST);
	m.u.stdin_data.offset = 0;
	m.flags = PROTO_F_EOF;
	tc_send(&t, &m);
	tc_wait_exit(&t, &cmd, 10000);
	ck_assert_str_eq((char *)cmd.out, "abc");
	m.channel = 424242;
	tc_send(&t, &m);
	tc_expect_error(&t, &err, 5000);
	ck_assert_uint_eq(err.code, PROTO_E_NO_CHANNEL);
	tc_cmd_release(&cmd);
	TEARDOWN();
}
END_TEST

static Suite *agent_suite(void)
{
	Suite *s = suite_create("agent");
	TCase *unit = tcase_create("unit");
	TCase *growfs = tcase_create("growfs");
	TCase *core = tcase_create("core");
	TCase *io = tcase_create("io");
	TCase *files = tcase_create("files");
	TCase *errors = tcase_create("errors");
	int scale = SANITIZED ? 3 : 1;

	tcase_add_test(unit, test_ring_wraps_and_never_overwrites_unacked);
	tcase_add_test(unit, test_cmdline_parses_sbx_parameters);
	tcase_add_test(unit, test_cmdline_init_wait_makes_a_zygote);
	suite_add_tcase(s, unit);

	tcase_set_timeout(growfs, 60);
	tcase_add_test(growfs, test_grow_fs_fills_the_device_once);
	suite_add_tcase(s, growfs);

	tcase_set_timeout(core, 30 * scale);
	tcase_add_test(core, test_agent_says_hello_and_answers_ping);
	tcase_add_test(core, test_info_reports_the_system);
	tcase_add_test(core, test_fixup_sets_hostname_and_entropy);
	tcase_add_test(core, test_fixup_root_is_a_bad_request_outside_a_zygote);
	tcase_add_test(core, test_shutdown_ends_an_ordinary_agent);
	tcase_add_test(core, test_stdio_mode_serves_one_connection);
	tcase_add_test(core, test_exec_echo_prints_hi);
	tcase_add_test(core, test_exec_reports_exit_code_and_separate_stderr);
	tcase_add_test(core, test_exec_reports_death_by_signal);
	tcase_add_test(core, test_exec_of_missing_binary_is_an_exec_error);
	tcase_add_test(core, test_exec_env_cwd_and_user);
	tcase_add_test(core, test_commands_get_the_original_fd_limit);
	tcase_add_test(core, test_exec_timeout_kills_a_hung_command);
	tcase_add_test(core, test_signal_ends_the_whole_process_group);
	tcase_add_test(core, test_exit_waits_for_background_writers_then_kills_them);
	tcase_add_test(core, test_twenty_concurrent_commands_keep_their_output_apart);
	suite_add_tcase(s, core);

	tcase_set_timeout(io, 120 * scale);
	tcase_add_test(io, test_stdin_round_trip_through_cat);
	tcase_add_test(io, test_stdin_to_a_command_that_stops_reading);
	tcase_add_test(io, test_pty_tty_resize_and_eof);
	tcase_add_test(io, test_backpressure_bounds_memory_and_blocks_the_command);
	tcase_add_test(io, test_attach_after_disconnect_delivers_everything_once);
	suite_add_tcase(s, io);

	tcase_set_timeout(files, 60 * scale);
	tcase_add_test(files, test_file_write_read_round_trip);
	tcase_add_test(files, test_file_write_to_missing_directory);
	tcase_add_test(files, test_failed_transfer_leaves_the_old_file);
	tcase_add_test(files, test_stat_list_mkdir_remove);
	tcase_add_test(files, test_file_append_ranges_and_procfs);
	tcase_add_test(files, test_host_error_aborts_a_write);
	suite_add_tcase(s, files);

	tcase_set_timeout(errors, 30 * scale);
	tcase_add_test(errors, test_garbage_gets_one_error_and_service_goes_on);
	tcase_add_test(errors, test_stdin_protocol_errors);
	tcase_add_test(errors, test_second_hello_starts_a_new_session);
	suite_add_tcase(s, errors);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(agent_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
