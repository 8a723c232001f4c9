/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_snapshot.c - snapshots, restores and forks of real microVMs (TCG
 * here): what issue 4 asks of snapshot/ below the API.
 *
 * The tests run in order in one process (CK_NOFORK) and share a state
 * directory, a zygote and a first sandbox "a1"; each test says what it
 * builds on.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "host/agent/agent_client.h"
#include "base/log.h"
#include "snapshot/snap.h"
#include "host/vm/vm.h"

LOG_DEFINE_STATE("check_snapshot");

static char g_state[256];
static char g_image[PATH_MAX];
static vm_driver *g_drv;
static snap_store *g_store;
static vm *g_vms[16];
static char *g_m1, *g_m3; /* memory snapshots of a1 */

static long long mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void keep_vm(vm *v)
{
	for (size_t i = 0; i < 16; i++)
		if (!g_vms[i]) {
			g_vms[i] = v;
			return;
		}
	ck_abort_msg("too many VMs");
}

static vm *find_vm(const char *name)
{
	for (size_t i = 0; i < 16; i++)
		if (g_vms[i] && !strcmp(vm_name(g_vms[i]), name))
			return g_vms[i];
	ck_abort_msg("no VM %s", name);
	return NULL;
}

static void drop_vm(const char *name)
{
	for (size_t i = 0; i < 16; i++)
		if (g_vms[i] && !strcmp(vm_name(g_vms[i]), name)) {
			ck_assert_int_eq(vm_destroy(g_vms[i]), 0);
			g_vms[i] = vm_free(g_vms[i]);
		}
}

/* -- running a shell command in a guest ------------------------------------ */

struct run {
	char out[8192];
	size_t len;
	bool done, failed;
	int code;
};

static void on_output(agent_cmd *cmd, int stream, uint64_t off, const uint8_t *d, size_t n,
		      void *ud)
{
	struct run *r = ud;

	(void)cmd, (void)off;
	if (stream == PROTO_STDOUT && r->len + n < sizeof(r->out)) {
		memcpy(r->out + r->len, d, n);
		r->len += n;
	}
}

static void on_exit_(agent_cmd *cmd, const struct proto_exit *e, void *ud)
{
	struct run *r = ud;

	(void)cmd;
	r->done = true;
	r->code = e->code;
}

static void on_error(agent_cmd *cmd, int err, const char *msg, void *ud)
{
	struct run *r = ud;

	(void)cmd, (void)err, (void)msg;
	r->done = r->failed = true;
}

/* Output of SHELL in VM name (trailing newline removed); *code its status. */
static char *sh(const char *name, const char *shell, int *code)
{
	static const struct agent_cmd_ops ops = {
	    .on_output = on_output, .on_exit = on_exit_, .on_error = on_error};
	struct agent_exec_spec spec = {.shell = shell};
	char addr[PATH_MAX];
	struct run r = {0};
	agent_client *c = NULL;
	agent_cmd *cmd = NULL;

	snprintf(addr, sizeof(addr), "unix:%s", vm_agent_socket(find_vm(name)));
	ck_assert_msg(agent_client_connect(addr, 30000, &c) == 0, "%s: cannot connect: %s", name,
		      err_msg());
	agent_client_set_timeout(c, 60000);
	ck_assert_int_eq(agent_exec(c, &spec, &ops, &r, &cmd), 0);
	while (!r.done)
		ck_assert_msg(agent_client_pump(c, 60000) == 0, "%s: %s", name, err_msg());
	agent_cmd_free(cmd);
	agent_client_free(c);
	ck_assert_msg(!r.failed, "%s: '%s' could not run", name, shell);
	while (r.len && r.out[r.len - 1] == '\n')
		r.len--;
	r.out[r.len] = '\0';
	if (code)
		*code = r.code;
	return strdup(r.out);
}

static void sh_expect(const char *name, const char *shell, const char *want)
{
	int code;
	char *out = sh(name, shell, &code);

	ck_assert_msg(code == 0 && !strcmp(out, want), "%s: '%s' gave '%s' (status %d), want '%s'",
		      name, shell, out, code, want);
	free(out);
}

static vm *restore(const char *id, const char *name, bool memory, const char **how)
{
	struct snap_restore_opts o = {
	    .vm_name = name, .restore_memory = memory, .use_zygote = true};
	vm *v = NULL;
	long long t0 = mono_ms();
	int r = snap_restore(g_store, g_drv, id, &o, &v, how);

	ck_assert_msg(r == 0, "restore of %s as %s: %s", id, name, err_msg());
	fprintf(stderr, "# %s from %s: %s in %lld ms\n", name, id, how ? *how : "?",
		mono_ms() - t0);
	keep_vm(v);
	return v;
}

static char *capture_opts(const char *name, bool memory, bool stream_only)
{
	struct snap_capture_opts o = {.include_memory = memory,
				      .name = "test",
				      .stream_only = stream_only,
				      .agent_socket = vm_agent_socket(find_vm(name))};
	struct snap_manifest *m = NULL;
	long long t0 = mono_ms();
	char *id;

	ck_assert_msg(snap_capture(g_store, g_drv, find_vm(name), &o, &m) == 0, "capture: %s",
		      err_msg());
	fprintf(stderr, "# capture of %s (%s): %lld ms, memory %s\n", name,
		memory ? "memory" : "fs", mono_ms() - t0, snap_mem_mode_to_string(m->mem_mode));
	ck_assert_int_eq(m->status, SNAP_READY);
	ck_assert_int_eq(m->kind, memory ? SNAP_MEMORY : SNAP_FS);
	ck_assert_int_eq(m->mem_mode, !memory	    ? SNAP_MEM_NONE
				      : stream_only ? SNAP_MEM_STREAM
						    : SNAP_MEM_SHARED_FILE);
	id = strdup(m->id);
	snap_manifest_free(m);
	return id;
}

static char *capture(const char *name, bool memory)
{
	return capture_opts(name, memory, false);
}

static bool vm_left(const char *name)
{
	char path[PATH_MAX];
	char **names = NULL;
	bool found = false;

	snprintf(path, sizeof(path), "%s/vms/%s", g_state, name);
	ck_assert_int_eq(vm_list(g_drv, &names), 0);
	for (char **p = names; *p; p++)
		found |= !strcmp(*p, name);
	vm_strv_free(names);
	return found || access(path, F_OK) == 0;
}

/* -- tests ----------------------------------------------------------------- */

START_TEST(test_fresh_start_forks_the_zygote)
{
	struct snap_restore_opts o = {.vm_name = "a1", .use_zygote = true};
	const char *how = NULL;
	vm *v = NULL;
	long long t0 = mono_ms();

	ck_assert_msg(snap_start_image(g_store, g_drv, g_image, &o, &v, &how) == 0, "%s",
		      err_msg());
	keep_vm(v);
	fprintf(stderr, "# a1 (zygote built on first use): %lld ms\n", mono_ms() - t0);
	ck_assert_str_eq(how, "zygote-fork");
	sh_expect("a1", "hostname; findmnt -n -o SOURCE /; test -x /usr/bin/python3 && echo py",
		  "a1\n/dev/vda\npy");
	/* a second start reuses the zygote */
	o.vm_name = "a2";
	t0 = mono_ms();
	ck_assert_int_eq(snap_start_image(g_store, g_drv, g_image, &o, &v, &how), 0);
	keep_vm(v);
	fprintf(stderr, "# a2 (zygote fork): %lld ms\n", mono_ms() - t0);
	sh_expect("a2", "hostname; cat /proc/sys/kernel/random/boot_id >/dev/null && echo ok",
		  "a2\nok");
	drop_vm("a2");
}
END_TEST

/* A fresh start with a disk 1 GiB bigger than the image: the fork's disk is
 * resized (block resize) before FIXUP, and the agent grows the file system
 * when it mounts it. */
START_TEST(test_zygote_fork_grows_a_bigger_disk)
{
	struct snap_restore_opts o = {.vm_name = "big1", .use_zygote = true};
	char path[PATH_MAX + 16], tail[16384], *out;
	unsigned long long size = 0;
	const char *how = NULL, *g;
	struct stat st;
	vm *v = NULL;

	snprintf(path, sizeof(path), "%s/rootfs.ext4", g_image);
	ck_assert_int_eq(stat(path, &st), 0);
	o.disk_bytes = (uint64_t)st.st_size + (1ULL << 30);
	ck_assert_msg(snap_start_image(g_store, g_drv, g_image, &o, &v, &how) == 0, "%s",
		      err_msg());
	keep_vm(v);
	ck_assert_str_eq(how, "zygote-fork");
	out = sh("big1", "df -B1 --output=size / | tail -n 1", NULL);
	ck_assert_int_eq(sscanf(out, "%llu", &size), 1);
	fprintf(stderr, "# big1: image %lld bytes, disk %llu, df / %llu\n", (long long)st.st_size,
		(unsigned long long)o.disk_bytes, size);
	ck_assert_msg(size >= (uint64_t)st.st_size + (900ULL << 20), "df / says %s", out);
	free(out);
	sh_expect("big1",
		  "dd if=/dev/urandom of=/root/big bs=1M count=50 conv=fsync 2>/dev/null && "
		  "stat -c %s /root/big",
		  "52428800");
	if (vm_console_tail(v, tail, sizeof(tail)) >= 0 && (g = strstr(tail, "grew the root")))
		fprintf(stderr, "# big1 console: %.*s\n", (int)strcspn(g, "\n"), g);
	drop_vm("big1");
}
END_TEST

/* a1 writes a file, starts a background process and moves its clock ten
 * minutes back; a memory snapshot of it comes back with both, and with
 * the host's time. */
START_TEST(test_memory_capture_resumes_files_and_processes)
{
	char want[64], *out;
	const char *how = NULL;
	long host;

	sh_expect("a1",
		  "echo hello > /root/f1 && (setsid sleep 1000 >/dev/null 2>&1 & echo $! > "
		  "/root/pid) && date -s @$(( $(date +%s) - 600 )) >/dev/null && echo ok",
		  "ok");
	g_m1 = capture("a1", true);
	restore(g_m1, "r1", true, &how);
	ck_assert(!strcmp(how, "fork") || !strcmp(how, "stream-restore"));
	sh_expect("r1", "cat /root/f1; kill -0 $(cat /root/pid) && echo alive; hostname",
		  "hello\nalive\nr1");
	out = sh("r1", "date +%s", NULL);
	host = (long)time(NULL);
	ck_assert_msg(labs(atol(out) - host) <= 2, "guest clock %s, host %ld", out, host);
	free(out);
	/* the original runs on, unaffected */
	snprintf(want, sizeof(want), "hello\nalive\na1");
	sh_expect("a1", "cat /root/f1; kill -0 $(cat /root/pid) && echo alive; hostname", want);
	sh_expect("a1", "echo more >> /root/f1; cat /root/f1", "hello\nmore");
	sh_expect("r1", "cat /root/f1", "hello");
}
END_TEST

START_TEST(test_fs_capture_is_a_fresh_start)
{
	char *id = capture("a1", false);
	const char *how = NULL;

	restore(id, "r2", true, &how); /* restore_memory on an fs snapshot: a fresh start */
	ck_assert_str_eq(how, "zygote-fork");
	sh_expect("r2", "cat /root/f1; pgrep -x sleep || echo none; hostname",
		  "hello\nmore\nnone\nr2");
	drop_vm("r2");
	free(id);
}
END_TEST

START_TEST(test_forks_are_isolated_and_random)
{
	const char *names[] = {"k1", "k2", "k3"};
	char *rnd[3], *uuid[3];
	struct snap_manifest *m = NULL;

	for (int i = 0; i < 3; i++)
		restore(g_m1, names[i], true, NULL);
	for (int i = 0; i < 3; i++) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "echo %s > /root/mine-%s && ls /root | grep -c mine-",
			 names[i], names[i]);
		sh_expect(names[i], cmd, "1");
		rnd[i] = sh(names[i], "python3 -c 'import os; print(os.urandom(16).hex())'", NULL);
		uuid[i] = sh(names[i], "cat /proc/sys/kernel/random/uuid", NULL);
		ck_assert_uint_eq(strlen(rnd[i]), 32);
	}
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++) {
			ck_assert_str_ne(rnd[i], rnd[j]);
			ck_assert_str_ne(uuid[i], uuid[j]);
		}
	/* the snapshot's parts are as captured (a full re-hash) */
	ck_assert_int_eq(snap_load(g_store, g_m1, &m), 0);
	ck_assert_msg(snap_verify(g_store, m, true, NULL, NULL) == 0, "%s", err_msg());
	snap_manifest_free(m);
	for (int i = 0; i < 3; i++) {
		drop_vm(names[i]);
		free(rnd[i]);
		free(uuid[i]);
	}
}
END_TEST

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char c;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x5a;
	ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static char *part_path(const char *id, enum snap_part_role role)
{
	struct snap_manifest *m = NULL;
	char *p;

	ck_assert_int_eq(snap_load(g_store, id, &m), 0);
	p = snap_blob_path(g_store, snap_manifest_part(m, role)->blob);
	snap_manifest_free(m);
	return p;
}

static void restore_fails(const char *id, const char *name, const char *needle)
{
	struct snap_restore_opts o = {.vm_name = name, .restore_memory = true, .use_zygote = true};
	vm *v = NULL;
	int r = snap_restore(g_store, g_drv, id, &o, &v, NULL);

	ck_assert_msg(r < 0, "restore of a damaged snapshot succeeded");
	ck_assert_ptr_null(v);
	ck_assert_msg(strstr(err_msg(), needle), "error '%s' does not mention '%s'", err_msg(),
		      needle);
	fprintf(stderr, "# damaged: %s\n", err_msg());
	ck_assert_msg(!vm_left(name), "restore of a damaged snapshot left VM %s behind", name);
}

START_TEST(test_damaged_snapshots_fail_cleanly)
{
	char *ram, *layer, manifest[PATH_MAX], moved[PATH_MAX + 8];

	g_m3 = capture("a1", true);
	ram = part_path(g_m3, SNAP_PART_RAM);
	layer = part_path(g_m3, SNAP_PART_LAYER);
	flip_byte(ram, 4096 * 10 + 7);
	restore_fails(g_m3, "bad1", "ram");
	flip_byte(ram, 4096 * 10 + 7);
	flip_byte(layer, 100);
	restore_fails(g_m3, "bad2", "layer");
	flip_byte(layer, 100);
	snprintf(manifest, sizeof(manifest), "%s/snapshots/%s/manifest.json", g_state, g_m3);
	snprintf(moved, sizeof(moved), "%s.away", manifest);
	ck_assert_int_eq(rename(manifest, moved), 0);
	restore_fails(g_m3, "bad3", g_m3);
	ck_assert_int_eq(rename(moved, manifest), 0);
	free(ram);
	free(layer);
}
END_TEST

START_TEST(test_deleting_a_used_snapshot_keeps_the_fork)
{
	char *ram = part_path(g_m3, SNAP_PART_RAM);
	uint64_t freed = 0;

	restore(g_m3, "u1", true, NULL);
	ck_assert_msg(snap_delete(g_store, g_m3, &freed) == 0, "%s", err_msg());
	ck_assert_int_eq(access(ram, F_OK), 0); /* u1 maps it */
	sh_expect("u1", "cat /root/f1; echo x > /root/y && cat /root/y", "hello\nmore\nx");
	drop_vm("u1");
	ck_assert_int_eq(snap_gc(g_store, false, &freed), 0);
	ck_assert_msg(access(ram, F_OK) < 0, "%s is still there after its last user went", ram);
	ck_assert_uint_gt(freed, 0);
	free(ram);
}
END_TEST

/* The fallback form: the whole migration stream, restored each time. */
START_TEST(test_stream_snapshot_restores_memory)
{
	char *id = capture_opts("a1", true, true);
	const char *how = NULL;

	restore(id, "s1", true, &how);
	ck_assert_str_eq(how, "stream-restore");
	sh_expect("s1", "cat /root/f1; kill -0 $(cat /root/pid) && echo alive; hostname",
		  "hello\nmore\nalive\ns1");
	drop_vm("s1");
	ck_assert_int_eq(snap_delete(g_store, id, NULL), 0);
	free(id);
}
END_TEST

/* One file moves a snapshot: export, delete, import, and it restores. */
START_TEST(test_export_then_import_restores)
{
	char path[PATH_MAX], *id = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/export.tar.zst", g_state);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_msg(snap_export(g_store, g_m1, fd) == 0, "%s", err_msg());
	close(fd);
	ck_assert_int_eq(snap_delete(g_store, g_m1, NULL), 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_msg(snap_import(g_store, fd, &id) == 0, "%s", err_msg());
	close(fd);
	ck_assert_str_eq(id, g_m1);
	restore(id, "im1", true, NULL);
	sh_expect("im1", "cat /root/f1; kill -0 $(cat /root/pid) && echo alive", "hello\nalive");
	drop_vm("im1");
	free(id);
}
END_TEST

static void cleanup(void)
{
	for (size_t i = 0; i < 16; i++)
		if (g_vms[i]) {
			(void)vm_destroy(g_vms[i]);
			g_vms[i] = vm_free(g_vms[i]);
		}
}

/* -- host disk full (a process of its own) --------------------------------- */

/* Runs in `check_snapshot --host-disk-full DIR`, whose driver and store
 * live on a small tmpfs at DIR (one process embeds one libvirt root): a VM
 * is started, the tmpfs filled up to a few MiB, then a memory capture must
 * fail cleanly (no snapshot left, the VM running) and a big write in the
 * guest must fail there with an I/O error while the VM goes on answering. */
START_TEST(test_host_disk_full_child)
{
	struct vm_config c = {.name = "full1", .image_dir = g_image, .vcpus = 1, .memory_mib = 256};
	struct snap_capture_opts o = {.include_memory = true, .name = "full"};
	struct snap_manifest *m = NULL, **list = NULL;
	char filler[PATH_MAX + 16], *out;
	struct statvfs sv;
	size_t n = 99;
	vm *v = NULL;
	int fd, code, r;

	ck_assert_msg(vm_start(g_drv, &c, &v) == 0, "%s", err_msg());
	keep_vm(v);
	sh_expect("full1", "echo up", "up");
	/* leave 8 MiB */
	snprintf(filler, sizeof(filler), "%s/filler", g_state);
	ck_assert_int_eq(statvfs(g_state, &sv), 0);
	fd = open(filler, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(
	    posix_fallocate(fd, 0, (off_t)((uint64_t)sv.f_bavail * sv.f_frsize - (8ULL << 20))), 0);
	close(fd);
	ck_assert_int_eq(statvfs(g_state, &sv), 0);
	fprintf(stderr, "# host space left: %llu KiB\n",
		(unsigned long long)sv.f_bavail * sv.f_frsize >> 10);

	/* a memory capture into the full store */
	o.agent_socket = vm_agent_socket(v);
	r = snap_capture(g_store, g_drv, v, &o, &m);
	fprintf(stderr, "# capture into a full store: %d %s\n", r, r < 0 ? err_msg() : "");
	ck_assert_msg(r < 0, "a capture into a full store succeeded");
	ck_assert_msg(strstr(err_msg(), "No space left on device"), "capture: %s", err_msg());
	ck_assert_int_eq(snap_list(g_store, &list, &n), 0);
	ck_assert_uint_eq(n, 0);
	snap_list_free(list, n);
	ck_assert_int_eq(vm_is_running(v), 1);
	sh_expect("full1", "echo alive after the capture", "alive after the capture");

	/* a guest write bigger than what the host has left */
	out = sh("full1",
		 "dd if=/dev/urandom of=/root/big bs=1M count=100 conv=fsync 2>&1; echo status=$?",
		 &code);
	fprintf(stderr, "# guest dd on a full host disk: %s\n", out);
	ck_assert_msg(!strstr(out, "status=0") && (strstr(out, "Input/output error") ||
						   strstr(out, "Read-only file system")),
		      "dd said: %s", out);
	free(out);
	sh_expect("full1", "echo alive after the write", "alive after the write");
	ck_assert_int_eq(vm_is_running(v), 1);
	out = sh("full1", "dmesg | grep -c 'I/O error' || true", NULL);
	fprintf(stderr, "# guest kernel I/O error lines: %s\n", out);
	free(out);
	ck_assert_int_eq(unlink(filler), 0);
	drop_vm("full1");
}
END_TEST

static int host_disk_full_child(const char *dir)
{
	struct vm_driver_config dc = {.force_accel = -1};
	Suite *s = suite_create("snapshot-host-disk-full");
	TCase *tc = tcase_create("hostfull");
	SRunner *sr;
	int failed;

	snprintf(g_state, sizeof(g_state), "%s/state", dir);
	mkdir(g_state, 0700);
	dc.state_dir = g_state;
	if (vm_driver_open(&dc, &g_drv) < 0 || snap_store_open(g_state, &g_store) < 0) {
		fprintf(stderr, "check_snapshot: %s %s\n", err_msg(), err_msg());
		return 1;
	}
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_host_disk_full_child);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	cleanup();
	g_store = snap_store_free(g_store);
	g_drv = vm_driver_free(g_drv);
	return failed ? 1 : 0;
}

/* The host's file system for the VM's overlay and the snapshot store is a
 * 160 MiB tmpfs (mounted here, unmounted also on failure); the work runs in
 * a child process (above), whose log must name the VM and "host disk
 * full". */
START_TEST(test_host_disk_full_is_an_io_error_in_the_guest)
{
	char dir[] = "/tmp/sbx-hostfull-XXXXXX", logp[64], buf[65536];
	ssize_t len = 0;
	pid_t pid;
	int st = -1, fd;

	if (geteuid() != 0) {
		fprintf(stderr, "# skipped: mounting a tmpfs needs root\n");
		return;
	}
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(logp, sizeof(logp), "%s.log", dir);
	if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=160m,mode=0700") < 0) {
		rmdir(dir);
		ck_abort_msg("cannot mount a tmpfs on %s: %s", dir, strerror(errno));
	}
	pid = fork();
	if (pid == 0) {
		fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execl("/proc/self/exe", "check_snapshot", "--host-disk-full", dir, (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	if (umount2(dir, 0) < 0) {
		fprintf(stderr, "# cannot unmount %s (%s): detaching it\n", dir, strerror(errno));
		(void)umount2(dir, MNT_DETACH);
	}
	(void)rmdir(dir);
	fd = open(logp, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	buf[len > 0 ? len : 0] = '\0';
	(void)unlink(logp);
	fprintf(stderr, "--- host-disk-full child ---\n%s--- end ---\n", buf);
	ck_assert_int_gt(pid, 0);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed (status 0x%x)", st);
	ck_assert_msg(strstr(buf, "vm=full1 host disk full"), "no host-disk-full log line");
}
END_TEST

int main(int argc, char **argv)
{
	const char *image = getenv("SBX_TEST_IMAGE");
	struct vm_driver_config dc = {.force_accel = -1};
	char cmd[PATH_MAX + 16];
	Suite *s = suite_create("snapshot");
	TCase *tc = tcase_create("vm");
	SRunner *sr;
	int failed;

	if (!realpath(image ? image : "build/images/default", g_image)) {
		fprintf(stderr, "check_snapshot: no VM image: run 'make image'\n");
		return 1;
	}
	if (argc == 3 && !strcmp(argv[1], "--host-disk-full"))
		return host_disk_full_child(argv[2]);
	snprintf(g_state, sizeof(g_state), "/tmp/sbx-snaptest-%d", (int)getpid());
	mkdir(g_state, 0700);
	dc.state_dir = g_state;
	if (vm_driver_open(&dc, &g_drv) < 0 || snap_store_open(g_state, &g_store) < 0) {
		fprintf(stderr, "check_snapshot: %s %s\n", err_msg(), err_msg());
		return 1;
	}
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_fresh_start_forks_the_zygote);
	tcase_add_test(tc, test_zygote_fork_grows_a_bigger_disk);
	tcase_add_test(tc, test_memory_capture_resumes_files_and_processes);
	tcase_add_test(tc, test_fs_capture_is_a_fresh_start);
	tcase_add_test(tc, test_forks_are_isolated_and_random);
	tcase_add_test(tc, test_damaged_snapshots_fail_cleanly);
	tcase_add_test(tc, test_deleting_a_used_snapshot_keeps_the_fork);
	tcase_add_test(tc, test_export_then_import_restores);
	tcase_add_test(tc, test_stream_snapshot_restores_memory);
	suite_add_tcase(s, tc);
	tc = tcase_create("hostfull");
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_host_disk_full_is_an_io_error_in_the_guest);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	cleanup();
	g_store = snap_store_free(g_store);
	g_drv = vm_driver_free(g_drv);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", g_state);
	if (system(cmd) != 0)
		fprintf(stderr, "check_snapshot: cannot remove %s\n", g_state);
	free(g_m1);
	free(g_m3);
	return failed ? 1 : 0;
}
