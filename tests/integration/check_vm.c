/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_vm.c - the VM driver against real microVMs (TCG where KVM cannot
 * run a guest; never skipped for want of KVM).
 *
 * Image: $SBX_TEST_IMAGE, else build/images/default. State: a fresh
 * directory per run under /tmp (or $SBX_TEST_STATE), removed at the end.
 * Every test runs in its own process (Check's fork mode); each one first
 * destroys whatever an earlier, failed test left running, and main() does
 * the same once more at the end, so no QEMU outlives the run.
 *
 * "check_vm --adopt STATE NAME" is the fresh process of the restart test.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/io.h"
#include "base/cleanup.h"
#include "base/err.h"
#include "base/log.h"
#include "host/agent/agent_client.h"
#include "host/vm/vm.h"
#include "host/vm/vm_int.h"
#include "protocol/proto.h"

LOG_DEFINE_STATE("check_vm");

static char state_dir[PATH_MAX];
static char image_dir[PATH_MAX];
static bool own_state_dir;
static char top_dir[PATH_MAX]; /* what to remove at the end when own_state_dir */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static vm_driver *open_driver(void)
{
	struct vm_driver_config c = {.state_dir = state_dir, .force_accel = -1};
	char kernel[PATH_MAX + 16];
	vm_driver *d = NULL;
	int r;

	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", image_dir);
	c.probe_kernel = kernel;
	r = vm_driver_open(&c, &d);
	ck_assert_msg(r == 0, "vm_driver_open: %d %s", r, err_msg());
	return d;
}

static bool path_exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

static bool is_socket(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void vm_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/vms/%s", state_dir, name);
}

/* Processes whose command line mentions our state directory: QEMUs we
 * started (libvirt passes paths under it). */
static int count_our_qemus(void)
{
	DIR *proc = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!proc)
		return -errno;
	while ((e = readdir(proc))) {
		char path[300], buf[8192];
		ssize_t len;
		int fd;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		for (ssize_t i = 0; i < len; i++)
			if (!buf[i])
				buf[i] = ' ';
		buf[len] = '\0';
		if (strstr(buf, "qemu-system") && strstr(buf, state_dir))
			n++;
	}
	closedir(proc);
	return n;
}

static bool pid_gone(int pid)
{
	char path[64], buf[512];
	FILE *f;
	char *p;
	bool gone = true;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return true;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		gone = p[2] == 'Z' || p[2] == 'X';
	else
		gone = false;
	fclose(f);
	return gone;
}

/* Destroys every VM of the test state directory: the libvirt domains and
 * any directory left under STATE/vms. Runs in a child process so that the
 * Check runner itself never loads libvirt (it forks every test). */
static void destroy_everything_in(vm_driver *d)
{
	char **names = NULL, vms[PATH_MAX + 8];
	struct dirent *e;
	DIR *dir;

	if (vm_list(d, &names) == 0) {
		for (char **p = names; *p; p++)
			if (vm_destroy_by_name(d, *p) < 0)
				fprintf(stderr, "check_vm: cleanup of %s: %s\n", *p, err_msg());
		vm_strv_free(names);
	}
	snprintf(vms, sizeof(vms), "%s/vms", state_dir);
	dir = opendir(vms);
	if (!dir)
		return;
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.' && vm_name_is_valid(e->d_name))
			(void)vm_destroy_by_name(d, e->d_name);
	closedir(dir);
}

static void cleanup_all(void)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		struct vm_driver_config c = {.state_dir = state_dir, .force_accel = VM_ACCEL_TCG};
		vm_driver *d = NULL;

		log_set_level(LOG_LVL_WARN);
		if (vm_driver_open(&c, &d) == 0) {
			destroy_everything_in(d);
			vm_driver_free(d);
		}
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, &status, 0);
}

static void setup_clean(void)
{
	char probe[PATH_MAX + 16];

	snprintf(probe, sizeof(probe), "%s/rootfs.ext4", image_dir);
	ck_assert_msg(access(probe, R_OK) == 0,
		      "no test image at %s: run 'make image' or set SBX_TEST_IMAGE", image_dir);
	cleanup_all();
}

static vm *start_vm(vm_driver *d, const char *name)
{
	struct vm_config c = {.name = name, .image_dir = image_dir, .memory_mib = 256};
	vm *v = NULL;
	int r;

	r = vm_start(d, &c, &v);
	ck_assert_msg(r == 0, "vm_start %s: %d %s", name, r, err_msg());
	ck_assert_ptr_nonnull(v);
	return v;
}

static bool list_has(vm_driver *d, const char *name)
{
	char **names = NULL;
	bool found = false;

	ck_assert_int_eq(vm_list(d, &names), 0);
	for (char **p = names; *p; p++)
		if (!strcmp(*p, name))
			found = true;
	vm_strv_free(names);
	return found;
}

static void assert_nothing_left(vm_driver *d, const char *name)
{
	char dir[PATH_MAX + 300], log[PATH_MAX + 300];
	vm *v = NULL;

	vm_path(dir, sizeof(dir), name);
	snprintf(log, sizeof(log), "%s/libvirt/log/qemu/sbx-%s.log", state_dir, name);
	ck_assert_msg(!path_exists(dir), "%s still exists", dir);
	ck_assert_msg(!path_exists(log), "%s still exists", log);
	ck_assert(!list_has(d, name));
	ck_assert_int_eq(vm_lookup(d, name, &v), -ENOENT);
	ck_assert_ptr_null(v);
}

/* -- core ------------------------------------------------------------------ */

START_TEST(test_vm_driver_opens_and_reports_an_accelerator)
{
	char conf[PATH_MAX + 64], real[PATH_MAX], *text = NULL;
	const char *root;
	vm_driver *d = open_driver();
	enum vm_accel a = vm_driver_accel(d);

	ck_assert(a == VM_ACCEL_TCG || a == VM_ACCEL_KVM);
	ck_assert_str_eq(vm_accel_to_string(VM_ACCEL_TCG), "tcg");
	ck_assert_str_eq(vm_accel_to_string(VM_ACCEL_KVM), "kvm");
	ck_assert_str_ne(vm_driver_accel_reason(d), "");
	fprintf(stderr, "check_vm: accelerator %s (%s)\n", vm_accel_to_string(a),
		vm_driver_accel_reason(d));
	ck_assert_str_eq(vm_driver_state_dir(d), state_dir);
	ck_assert_ptr_nonnull(strstr(vm_driver_uri(d), "qemu:///embed?root="));
	/* the root is the short alias (or the state directory itself): the
	 * same directory, short enough for libvirt's monitor socket paths */
	root = strstr(vm_driver_uri(d), "root=") + 5;
	snprintf(conf, sizeof(conf), "%s/libvirt", state_dir);
	ck_assert_ptr_nonnull(realpath(root, real));
	ck_assert_str_eq(real, conf);
	ck_assert_uint_le(strlen(root), 60);

	snprintf(conf, sizeof(conf), "%s/libvirt/etc/qemu.conf", state_dir);
	ck_assert_int_ge(vmu_read_file(conf, 65536, &text), 0);
	ck_assert_ptr_nonnull(strstr(text, "dynamic_ownership = 0"));
	ck_assert_ptr_nonnull(strstr(text, "stdio_handler = \"file\""));
	free(text);
	vm_driver_free(d);
}
END_TEST

START_TEST(test_vm_driver_accelerator_can_be_forced)
{
	struct vm_driver_config c = {.state_dir = state_dir, .force_accel = VM_ACCEL_TCG};
	vm_driver *d = NULL;

	ck_assert_int_eq(vm_driver_open(&c, &d), 0);
	ck_assert_int_eq(vm_driver_accel(d), VM_ACCEL_TCG);
	ck_assert_str_eq(vm_driver_accel_reason(d), "forced by configuration");
	d = vm_driver_free(d);

	c.force_accel = -1;
	setenv("SBX_ACCEL", "tcg", 1);
	ck_assert_int_eq(vm_driver_open(&c, &d), 0);
	ck_assert_str_eq(vm_driver_accel_reason(d), "forced by $SBX_ACCEL");
	d = vm_driver_free(d);

	setenv("SBX_ACCEL", "hvf", 1);
	ck_assert_int_eq(vm_driver_open(&c, &d), -EINVAL);
	ck_assert_ptr_null(d);
	ck_assert_ptr_nonnull(strstr(err_msg(), "SBX_ACCEL=hvf"));
	unsetenv("SBX_ACCEL");
}
END_TEST

START_TEST(test_vm_start_runs_guest_with_console_and_agent_socket)
{
	vm_driver *d = open_driver();
	char dir[PATH_MAX + 300], tail[4096];
	double t0 = now_s(), t_running, t_console = 0;
	vm *v = start_vm(d, "t-boot");
	struct stat st;
	off_t first = 0;

	t_running = now_s();
	ck_assert_int_eq(vm_is_running(v), 1);
	ck_assert_str_eq(vm_name(v), "t-boot");
	vm_path(dir, sizeof(dir), "t-boot");
	ck_assert_str_eq(vm_dir(v), dir);
	ck_assert(is_socket(vm_agent_socket(v)));
	ck_assert_int_gt(vm_qemu_pid(v), 1);
	ck_assert(list_has(d, "t-boot"));

	/* The console log grows once the guest kernel prints its first line;
	 * give the guest a few more seconds to say more (its init). */
	for (int i = 0; i < 1200; i++) {
		if (stat(vm_console_log(v), &st) == 0 && st.st_size > 0) {
			if (!first) {
				first = st.st_size;
				t_console = now_s();
			} else if (st.st_size > first || now_s() - t_console > 5) {
				break;
			}
		}
		usleep(50 * 1000);
	}
	ck_assert_msg(first > 0, "console log %s stayed empty", vm_console_log(v));
	ck_assert_int_eq(vm_console_tail(v, tail, sizeof(tail)), 0);
	ck_assert_int_gt(strlen(tail), 0);
	fprintf(stderr,
		"check_vm: vm_start %.2f s, first console output %.2f s after vm_start; "
		"console tail:\n%s\n",
		t_running - t0, t_console - t0, tail);

	ck_assert_int_eq(vm_destroy(v), 0);
	vm_free(v);
	assert_nothing_left(d, "t-boot");
	vm_driver_free(d);
}
END_TEST

START_TEST(test_vm_two_guests_run_at_once)
{
	vm_driver *d = open_driver();
	vm *a = start_vm(d, "t-one");
	vm *b = start_vm(d, "t-two");
	struct vm_config dup = {.name = "t-one", .image_dir = image_dir};
	vm *c = NULL;

	ck_assert_int_eq(vm_is_running(a), 1);
	ck_assert_int_eq(vm_is_running(b), 1);
	ck_assert_str_ne(vm_agent_socket(a), vm_agent_socket(b));
	ck_assert(is_socket(vm_agent_socket(a)));
	ck_assert(is_socket(vm_agent_socket(b)));
	ck_assert_int_ne(vm_qemu_pid(a), vm_qemu_pid(b));
	ck_assert(list_has(d, "t-one"));
	ck_assert(list_has(d, "t-two"));

	/* a second VM of the same name is refused and harms nothing */
	ck_assert_int_eq(vm_start(d, &dup, &c), -EEXIST);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(err_msg(), "t-one"));
	ck_assert_int_eq(vm_is_running(a), 1);
	ck_assert(is_socket(vm_agent_socket(a)));

	ck_assert_int_eq(vm_destroy(a), 0);
	ck_assert_int_eq(vm_is_running(b), 1);
	ck_assert_int_eq(vm_destroy(b), 0);
	vm_free(a);
	vm_free(b);
	assert_nothing_left(d, "t-one");
	assert_nothing_left(d, "t-two");
	vm_driver_free(d);
}
END_TEST

struct par_start {
	vm_driver *d;
	const char *name;
	pthread_t thread;
	vm *v;
	int r;
	char err[VM_ERR_MAX];
};

static void *par_start_main(void *arg)
{
	struct par_start *p = arg;
	struct vm_config c = {.name = p->name, .image_dir = image_dir, .memory_mib = 256};

	p->r = vm_start(p->d, &c, &p->v);
	snprintf(p->err, sizeof(p->err), "%s", p->r < 0 ? err_msg() : "");
	return NULL;
}

START_TEST(test_vm_concurrent_starts_from_threads)
{
	vm_driver *d = open_driver();
	struct par_start p[3] = {
	    {.d = d, .name = "t-par-a"},
	    {.d = d, .name = "t-par-b"},
	    {.d = d, .name = "t-par-a"},
	};
	int won = -1;

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(pthread_create(&p[i].thread, NULL, par_start_main, &p[i]), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(p[i].thread, NULL);

	ck_assert_msg(p[1].r == 0, "t-par-b: %s", p[1].err);
	/* exactly one of the two starts of t-par-a wins; the other one is told
	 * why, in its own thread's message */
	ck_assert_msg((p[0].r == 0) != (p[2].r == 0), "a: %d %s / a': %d %s", p[0].r, p[0].err,
		      p[2].r, p[2].err);
	won = p[0].r == 0 ? 0 : 2;
	ck_assert_int_eq(p[2 - won].r, -EEXIST);
	ck_assert_ptr_nonnull(strstr(p[2 - won].err, "t-par-a"));
	ck_assert_int_eq(vm_is_running(p[won].v), 1);
	ck_assert_int_eq(vm_is_running(p[1].v), 1);

	ck_assert_int_eq(vm_destroy(p[won].v), 0);
	ck_assert_int_eq(vm_destroy(p[1].v), 0);
	vm_free(p[won].v);
	vm_free(p[1].v);
	assert_nothing_left(d, "t-par-a");
	assert_nothing_left(d, "t-par-b");
	vm_driver_free(d);
}
END_TEST

START_TEST(test_vm_destroy_removes_domain_directory_and_process)
{
	vm_driver *d = open_driver();
	vm *v = start_vm(d, "t-destroy");
	int pid = vm_qemu_pid(v);
	double t0;

	ck_assert_int_gt(pid, 1);
	t0 = now_s();
	ck_assert_int_eq(vm_destroy(v), 0);
	fprintf(stderr, "check_vm: vm_destroy %.2f s\n", now_s() - t0);
	ck_assert_int_eq(vm_is_running(v), 0);
	ck_assert(pid_gone(pid));
	assert_nothing_left(d, "t-destroy");
	/* idempotent, on the handle and by name */
	ck_assert_int_eq(vm_destroy(v), 0);
	ck_assert_int_eq(vm_destroy_by_name(d, "t-destroy"), 0);
	vm_free(v);
	vm_driver_free(d);
}
END_TEST

static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static char stop_name[64], stop_reason_[512]; /* the last report */
static char stop_names[8][64], stop_reasons[8][512];
static int stop_count;

static void on_stopped(void *ud, const char *name, const char *reason)
{
	(void)ud;
	pthread_mutex_lock(&stop_mu);
	snprintf(stop_name, sizeof(stop_name), "%s", name);
	snprintf(stop_reason_, sizeof(stop_reason_), "%s", reason);
	if (stop_count < 8) {
		snprintf(stop_names[stop_count], sizeof(stop_names[0]), "%s", name);
		snprintf(stop_reasons[stop_count], sizeof(stop_reasons[0]), "%s", reason);
	}
	stop_count++;
	pthread_mutex_unlock(&stop_mu);
}

/* A second lifecycle callback, registered after the driver's. libvirt
 * hands each event to the callbacks in the order they were registered, one
 * after the other on its event loop thread: once this one has seen a stop
 * of "sbx-t-kill2", the driver's callback has already decided about that
 * same event. */
static int kill2_stops, kill2_detail = -1;

static int on_kill2_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail,
			      void *opaque)
{
	const char *dn = virDomainGetName(dom);

	(void)conn;
	(void)opaque;
	if (event != VIR_DOMAIN_EVENT_STOPPED || !dn || strcmp(dn, VM_DOMAIN_PREFIX "t-kill2"))
		return 0;
	pthread_mutex_lock(&stop_mu);
	kill2_stops++;
	kill2_detail = detail;
	pthread_mutex_unlock(&stop_mu);
	return 0;
}

START_TEST(test_vm_destroy_after_qemu_was_killed_leaves_nothing)
{
	vm_driver *d = open_driver();
	vm *v = start_vm(d, "t-kill");
	int pid = vm_qemu_pid(v), i, n = 0, cb;

	ck_assert_int_eq(vm_driver_watch_stops(d, on_stopped, NULL), 0);
	ck_assert_int_gt(pid, 1);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	for (i = 0; i < 200 && vm_is_running(v) != 0; i++)
		usleep(50 * 1000);
	ck_assert_int_eq(vm_is_running(v), 0);
	/* the watcher heard of it, with a reason for a person */
	for (i = 0; i < 100 && !n; i++) {
		pthread_mutex_lock(&stop_mu);
		n = stop_count;
		pthread_mutex_unlock(&stop_mu);
		if (!n)
			usleep(50 * 1000);
	}
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(stop_name, "t-kill");
	ck_assert_msg(strstr(stop_reason_, "QEMU exited unexpectedly"), "reason: %s", stop_reason_);
	ck_assert_int_eq(vm_destroy(v), 0);
	vm_free(v);
	assert_nothing_left(d, "t-kill");
	ck_assert(pid_gone(pid));
	/* a VM the caller destroys is not reported: wait until libvirt has
	 * delivered its stop (to the driver first, then to us), not a while */
	cb = virConnectDomainEventRegisterAny(d->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
					      VIR_DOMAIN_EVENT_CALLBACK(on_kill2_lifecycle), NULL,
					      NULL);
	ck_assert_int_ge(cb, 0);
	v = start_vm(d, "t-kill2");
	ck_assert_int_eq(vm_destroy(v), 0);
	vm_free(v);
	for (i = 0, n = 0; i < 600 && !n; i++) {
		pthread_mutex_lock(&stop_mu);
		n = kill2_stops;
		pthread_mutex_unlock(&stop_mu);
		if (!n)
			usleep(50 * 1000);
	}
	ck_assert_msg(n == 1, "libvirt delivered %d stop(s) of t-kill2", n);
	pthread_mutex_lock(&stop_mu);
	ck_assert_int_eq(kill2_detail, VIR_DOMAIN_EVENT_STOPPED_DESTROYED);
	ck_assert_int_eq(stop_count, 1);
	ck_assert_str_eq(stop_name, "t-kill");
	pthread_mutex_unlock(&stop_mu);
	ck_assert_int_eq(virConnectDomainEventDeregisterAny(d->conn, cb), 0);
	vm_driver_free(d);
}
END_TEST

/* -- guests that stop themselves ------------------------------------------- */

/* Polls until the stop watcher reported n stops or timeout_ms passed;
 * returns the count. */
static int wait_for_stops(int n, int timeout_ms)
{
	double end = now_s() + timeout_ms / 1000.0;
	int have;

	for (;;) {
		pthread_mutex_lock(&stop_mu);
		have = stop_count;
		pthread_mutex_unlock(&stop_mu);
		if (have >= n || now_s() > end)
			return have;
		usleep(50 * 1000);
	}
}

/* Polls until libvirt no longer runs the VM, at most timeout_ms. */
static int wait_not_running(vm *v, int timeout_ms)
{
	double end = now_s() + timeout_ms / 1000.0;
	int r;

	while ((r = vm_is_running(v)) != 0 && now_s() < end)
		usleep(50 * 1000);
	return r;
}

static agent_client *connect_guest(vm *v)
{
	char addr[PATH_MAX + 16];
	agent_client *c = NULL;
	int r;

	snprintf(addr, sizeof(addr), "unix:%s", vm_agent_socket(v));
	r = agent_client_connect(addr, 120000, &c);
	ck_assert_msg(r == 0, "%s: cannot connect to the agent: %s", vm_name(v), err_msg());
	agent_client_set_timeout(c, 120000);
	return c;
}

struct guest_cmd {
	bool started, done, failed;
	int code, sig;
	char out[4096], err[1024];
	size_t out_len, err_len;
};

static void gc_started(agent_cmd *cmd, void *ud)
{
	(void)cmd;
	((struct guest_cmd *)ud)->started = true;
}

static void gc_output(agent_cmd *cmd, int stream, uint64_t off, const uint8_t *data, size_t len,
		      void *ud)
{
	struct guest_cmd *g = ud;
	char *buf = stream == PROTO_STDOUT ? g->out : g->err;
	size_t cap = stream == PROTO_STDOUT ? sizeof(g->out) : sizeof(g->err);
	size_t *have = stream == PROTO_STDOUT ? &g->out_len : &g->err_len;

	(void)cmd, (void)off;
	if (len > cap - 1 - *have)
		len = cap - 1 - *have;
	memcpy(buf + *have, data, len);
	*have += len;
	buf[*have] = '\0';
}

static void gc_exit(agent_cmd *cmd, const struct proto_exit *e, void *ud)
{
	struct guest_cmd *g = ud;

	(void)cmd;
	g->code = e->code;
	g->sig = e->signal;
	g->done = true;
}

static void gc_error(agent_cmd *cmd, int err, const char *msg, void *ud)
{
	struct guest_cmd *g = ud;

	(void)cmd;
	snprintf(g->err, sizeof(g->err), "%s (%d)", msg ? msg : "", err);
	g->failed = g->done = true;
}

static const struct agent_cmd_ops gc_ops = {
    .on_started = gc_started,
    .on_output = gc_output,
    .on_exit = gc_exit,
    .on_error = gc_error,
};

/* Runs SHELL in the guest. wait_exit: until it exits (asserting that it
 * did, with status 0), else only until the agent started it. */
static void guest_sh(agent_client *c, const char *shell, bool wait_exit, struct guest_cmd *g)
{
	struct agent_exec_spec spec = {.shell = shell};
	agent_cmd *cmd = NULL;
	double end = now_s() + 120;

	memset(g, 0, sizeof(*g));
	ck_assert_int_eq(agent_exec(c, &spec, &gc_ops, g, &cmd), 0);
	while (!(wait_exit ? g->done : g->started || g->done)) {
		int r = agent_client_pump(c, 200);

		ck_assert_msg(r == 0, "'%s': connection lost: %s", shell,
			      agent_client_last_error(c));
		ck_assert_msg(now_s() < end, "'%s' did not %s within 120 s", shell,
			      wait_exit ? "end" : "start");
	}
	ck_assert_msg(!g->failed, "'%s' failed: %s", shell, g->err);
	if (wait_exit)
		ck_assert_msg(g->code == 0 && g->sig == 0, "'%s': exit %d signal %d: %s%s", shell,
			      g->code, g->sig, g->out, g->err);
	agent_cmd_free(cmd);
}

/* A guest kernel panic reaches the host through pvpanic: the stop watcher
 * reports a crash with the kernel's reason, once, and not a power-off
 * (panic=-1 alone would have made it a reboot, i.e. an ordinary stop). */
START_TEST(test_vm_guest_kernel_panic_is_reported_as_a_crash)
{
	vm_driver *d = open_driver();
	vm *v = start_vm(d, "t-panic");
	struct guest_cmd g;
	agent_client *c;
	int n;

	ck_assert_int_eq(vm_driver_watch_stops(d, on_stopped, NULL), 0);
	c = connect_guest(v);
	/* the guest sees the device, its driver is bound, sysrq can crash it */
	guest_sh(c,
		 "ls /sys/bus/platform/drivers/pvpanic-mmio/ | grep -x 'QEMU0001:00' && "
		 "test -w /proc/sysrq-trigger && cat /proc/sys/kernel/panic",
		 true, &g);
	ck_assert_msg(strstr(g.out, "QEMU0001:00\n"), "out: %s", g.out);
	ck_assert_int_eq(wait_for_stops(1, 0), 0);
	guest_sh(c, "echo c > /proc/sysrq-trigger", false, &g);
	n = wait_for_stops(1, 60000);
	agent_client_free(c);
	ck_assert_msg(n == 1, "%d stops reported", n);
	ck_assert_str_eq(stop_name, "t-panic");
	ck_assert_msg(strstr(stop_reason_, "the guest kernel crashed (panic)") &&
			  strstr(stop_reason_, "sysrq triggered crash"),
		      "reason: %s", stop_reason_);
	ck_assert_int_eq(wait_not_running(v, 30000), 0);
	/* reported once: libvirt's CRASHED and STOPPED events are one stop */
	ck_assert_int_eq(wait_for_stops(2, 1000), 1);
	ck_assert_int_eq(vm_destroy(v), 0);
	vm_free(v);
	assert_nothing_left(d, "t-panic");
	vm_driver_free(d);
}
END_TEST

/* PID 1 giving up at boot (agent_fatal(): here a root disk that is not
 * ext4) is a crash the host hears of, with the agent's reason: the agent
 * exits, the kernel panics, pvpanic tells libvirt. */
START_TEST(test_vm_agent_failure_at_boot_is_reported_with_its_reason)
{
	static const char *const parts[] = {"vmlinuz", "vmlinux", "initrd.img"};
	char img[] = "/tmp/sbx-check-vm-img-XXXXXX", src[PATH_MAX + 32], dst[PATH_MAX + 32];
	struct vm_config c = {.name = "t-fatal", .memory_mib = 256};
	vm_driver *d = open_driver();
	vm *v = NULL;
	size_t i;
	int fd, n, r;

	/* the default image's kernel and initramfs, a root disk of zeros */
	ck_assert_ptr_nonnull(mkdtemp(img));
	for (i = 0; i < ARRAY_SIZE(parts); i++) {
		snprintf(src, sizeof(src), "%s/%s", image_dir, parts[i]);
		snprintf(dst, sizeof(dst), "%s/%s", img, parts[i]);
		ck_assert_msg(access(src, R_OK) == 0, "%s: %s", src, strerror(errno));
		ck_assert_int_eq(symlink(src, dst), 0);
	}
	snprintf(dst, sizeof(dst), "%s/rootfs.ext4", img);
	fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 64 << 20), 0);
	close(fd);

	ck_assert_int_eq(vm_driver_watch_stops(d, on_stopped, NULL), 0);
	c.image_dir = img;
	r = vm_start(d, &c, &v);
	ck_assert_msg(r == 0, "vm_start: %d %s", r, err_msg());
	n = wait_for_stops(1, 90000);
	ck_assert_msg(n == 1, "%d stops reported", n);
	ck_assert_str_eq(stop_name, "t-fatal");
	ck_assert_msg(strstr(stop_reason_, "the guest kernel crashed (panic): Kernel panic - not "
					   "syncing: Attempted to kill init!") &&
			  strstr(stop_reason_, ", after sbx-agent: error: fatal: cannot mount "
					       "/dev/vda (ext4) as the root: "),
		      "reason: %s", stop_reason_);
	ck_assert_int_eq(wait_not_running(v, 30000), 0);
	ck_assert_int_eq(wait_for_stops(2, 1000), 1);
	ck_assert_int_eq(vm_destroy(v), 0);
	vm_free(v);
	assert_nothing_left(d, "t-fatal");
	vm_driver_free(d);
	for (i = 0; i < ARRAY_SIZE(parts); i++) {
		snprintf(dst, sizeof(dst), "%s/%s", img, parts[i]);
		(void)unlink(dst);
	}
	snprintf(dst, sizeof(dst), "%s/rootfs.ext4", img);
	(void)unlink(dst);
	ck_assert_int_eq(rmdir(img), 0);
}
END_TEST

/* poweroff, halt and reboot inside a guest (the image's /usr/local/sbin
 * tools, which signal PID 1): the agent stops everything and powers the VM
 * off; the stop watcher says the guest powered off. Three VMs at once. */
START_TEST(test_vm_poweroff_halt_reboot_in_the_guest_power_it_off)
{
	static const char *const names[] = {"t-poweroff", "t-halt", "t-reboot"};
	static const char *const cmds[] = {"poweroff", "halt", "reboot"};
	vm_driver *d = open_driver();
	vm *v[3];
	agent_client *c[3];
	struct guest_cmd g;
	bool seen[3] = {false};
	char want[64], line[64], tail[8192];
	int i, k, n;

	ck_assert_int_eq(vm_driver_watch_stops(d, on_stopped, NULL), 0);
	for (i = 0; i < 3; i++)
		v[i] = start_vm(d, names[i]);
	for (i = 0; i < 3; i++) {
		c[i] = connect_guest(v[i]);
		snprintf(want, sizeof(want), "/usr/local/sbin/%s\n", cmds[i]);
		snprintf(line, sizeof(line), "command -v %s", cmds[i]);
		guest_sh(c[i], line, true, &g);
		ck_assert_msg(!strcmp(g.out, want), "%s: %s", cmds[i], g.out);
	}
	ck_assert_int_eq(wait_for_stops(1, 0), 0);
	for (i = 0; i < 3; i++) {
		guest_sh(c[i], cmds[i], false, &g);
		agent_client_free(c[i]);
	}
	n = wait_for_stops(3, 90000);
	ck_assert_msg(n == 3, "%d of 3 stops reported", n);
	pthread_mutex_lock(&stop_mu);
	for (k = 0; k < n; k++) {
		for (i = 0; i < 3 && strcmp(stop_names[k], names[i]); i++)
			;
		ck_assert_msg(i < 3 && !seen[i], "unexpected or repeated stop of %s",
			      stop_names[k]);
		seen[i] = true;
		ck_assert_msg(!strcmp(stop_reasons[k], "the guest powered off"), "%s: %s",
			      stop_names[k], stop_reasons[k]);
	}
	pthread_mutex_unlock(&stop_mu);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(wait_not_running(v[i], 30000), 0);
		/* the agent said what it did, on the console */
		ck_assert_int_ge(vm_console_tail(v[i], tail, sizeof(tail)), 0);
		snprintf(want, sizeof(want), "asks for %s: ", cmds[i]);
		ck_assert_msg(strstr(tail, want) && strstr(tail, "powering off: stopping all"),
			      "%s console: %s", names[i], tail);
		ck_assert_int_eq(vm_destroy(v[i]), 0);
		vm_free(v[i]);
		assert_nothing_left(d, names[i]);
	}
	vm_driver_free(d);
}
END_TEST

static int start_and_leave(const char *state, const char *image, const char *name)
{
	struct vm_driver_config c = {.state_dir = state, .force_accel = -1};
	struct vm_config vc = {.name = name, .image_dir = image, .memory_mib = 256};
	vm_driver *d = NULL;
	vm *v = NULL;

	log_set_level(LOG_LVL_WARN);
	if (vm_driver_open(&c, &d) < 0) {
		fprintf(stderr, "start: open: %s\n", err_msg());
		return 10;
	}
	if (vm_start(d, &vc, &v) < 0) {
		fprintf(stderr, "start: %s\n", err_msg());
		return 11;
	}
	vm_free(v);
	vm_driver_free(d);
	return 0;
}

static int adopt_and_destroy(const char *state, const char *name)
{
	struct vm_driver_config c = {.state_dir = state, .force_accel = -1};
	vm_driver *d = NULL;
	vm *v = NULL;
	int r;

	log_set_level(LOG_LVL_WARN);
	r = vm_driver_open(&c, &d);
	if (r < 0) {
		fprintf(stderr, "adopt: open: %s\n", err_msg());
		return 10;
	}
	r = vm_lookup(d, name, &v);
	if (r < 0) {
		fprintf(stderr, "adopt: lookup: %s\n", err_msg());
		return 11;
	}
	if (vm_is_running(v) != 1 || !is_socket(vm_agent_socket(v)))
		return 12;
	if (vm_destroy(v) < 0) {
		fprintf(stderr, "adopt: destroy: %s\n", err_msg());
		return 13;
	}
	vm_free(v);
	vm_driver_free(d);
	return 0;
}

/* Runs "check_vm ARGS..." (this binary, a fresh process: no libvirt state
 * inherited) and returns its exit status. */
static int run_self(const char *const args[])
{
	char self[PATH_MAX];
	const char *argv[8] = {self};
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	pid_t pid;
	int status;

	ck_assert_int_gt(n, 0);
	self[n] = '\0';
	for (int i = 0; args[i] && i < 6; i++)
		argv[i + 1] = args[i];
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execv(self, (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

START_TEST(test_vm_is_found_and_destroyed_by_a_new_process)
{
	const char *start[] = {"--start", state_dir, image_dir, "t-adopt", NULL};
	const char *adopt[] = {"--adopt", state_dir, "t-adopt", NULL};
	char sock[PATH_MAX + 300];
	vm_driver *d;

	/* One process starts the VM and exits, as a restarting sbxd would
	 * (the embedded driver keeps its state directory locked for as long
	 * as the process that opened it lives). */
	ck_assert_int_eq(run_self(start), 0);
	vm_path(sock, sizeof(sock), "t-adopt");
	strcat(sock, "/agent.sock");
	ck_assert(is_socket(sock));
	ck_assert_int_eq(count_our_qemus(), 1);

	/* a fresh one finds it running, and destroys it */
	ck_assert_int_eq(run_self(adopt), 0);

	d = open_driver();
	assert_nothing_left(d, "t-adopt");
	vm_driver_free(d);
	ck_assert_int_eq(count_our_qemus(), 0);
}
END_TEST

START_TEST(test_vm_lookup_after_reopen_finds_running_vm)
{
	vm_driver *d = open_driver();
	vm *v = start_vm(d, "t-reopen");
	int pid = vm_qemu_pid(v);

	vm_free(v);
	vm_driver_free(d);

	d = open_driver();
	v = NULL;
	ck_assert_int_eq(vm_lookup(d, "t-reopen", &v), 0);
	ck_assert_int_eq(vm_is_running(v), 1);
	ck_assert_int_eq(vm_qemu_pid(v), pid);
	ck_assert(is_socket(vm_agent_socket(v)));
	ck_assert_int_eq(vm_destroy(v), 0);
	vm_free(v);
	assert_nothing_left(d, "t-reopen");
	vm_driver_free(d);
}
END_TEST

/* -- errors ---------------------------------------------------------------- */

START_TEST(test_vm_start_with_missing_image_fails_clearly)
{
	vm_driver *d = open_driver();
	struct vm_config c = {.name = "t-noimg", .image_dir = "/nonexistent/sbx-image"};
	vm *v = NULL;

	ck_assert_int_eq(vm_start(d, &c, &v), -ENOENT);
	ck_assert_ptr_null(v);
	ck_assert_ptr_nonnull(strstr(err_msg(), "cannot start VM t-noimg"));
	ck_assert_ptr_nonnull(strstr(err_msg(), "/nonexistent/sbx-image"));
	assert_nothing_left(d, "t-noimg");
	vm_driver_free(d);
}
END_TEST

START_TEST(test_vm_start_with_broken_kernel_fails_and_leaves_nothing)
{
	vm_driver *d = open_driver();
	char bad[] = "/tmp/sbx-check-vm-badimg-XXXXXX", p[PATH_MAX + 64], t[PATH_MAX + 64];
	struct vm_config c = {.name = "t-badkernel", .image_dir = bad};
	const char *err;
	vm *v = NULL;
	FILE *f;
	int r;

	ck_assert_ptr_nonnull(mkdtemp(bad));
	snprintf(p, sizeof(p), "%s/vmlinuz", bad);
	f = fopen(p, "we");
	ck_assert_ptr_nonnull(f);
	fputs("this is not a kernel\n", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/initrd.img", bad);
	snprintf(t, sizeof(t), "%s/initrd.img", image_dir);
	ck_assert_int_eq(symlink(t, p), 0);
	snprintf(p, sizeof(p), "%s/rootfs.ext4", bad);
	snprintf(t, sizeof(t), "%s/rootfs.ext4", image_dir);
	ck_assert_int_eq(symlink(t, p), 0);

	r = vm_start(d, &c, &v);
	err = err_msg();
	fprintf(stderr, "check_vm: broken kernel: %s\n", err);
	ck_assert_int_lt(r, 0);
	ck_assert_ptr_null(v);
	ck_assert_ptr_nonnull(strstr(err, "cannot start VM t-badkernel"));
	ck_assert_ptr_nonnull(strstr(err, "libvirt"));
	assert_nothing_left(d, "t-badkernel");
	ck_assert_int_eq(vmu_rm_rf(bad), 0);

	/* a disk smaller than the image is refused before anything exists */
	c.image_dir = image_dir;
	c.disk_bytes = 4096;
	ck_assert_int_eq(vm_start(d, &c, &v), -EINVAL);
	assert_nothing_left(d, "t-badkernel");
	vm_driver_free(d);
}
END_TEST

START_TEST(test_vm_invalid_names_are_rejected)
{
	static const char *const bad[] = {
	    "",
	    "-a",
	    "A",
	    "a_b",
	    "a/b",
	    "..",
	    "../x",
	    "a b",
	    "a.b",
	    "é",
	    "0123456789012345678901234567890123456789012345678901234567890123",
	};
	vm_driver *d = open_driver();
	char vms[PATH_MAX + 8];
	struct dirent *e;
	DIR *dir;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vm_config c = {.name = bad[i], .image_dir = image_dir};
		vm *v = NULL;

		ck_assert_msg(!vm_name_is_valid(bad[i]), "'%s' accepted", bad[i]);
		ck_assert_int_eq(vm_start(d, &c, &v), -EINVAL);
		ck_assert_ptr_null(v);
		ck_assert_ptr_nonnull(strstr(err_msg(), "invalid name"));
		ck_assert_int_eq(vm_lookup(d, bad[i], &v), -EINVAL);
		ck_assert_int_eq(vm_destroy_by_name(d, bad[i]), -EINVAL);
	}
	ck_assert(!vm_name_is_valid(NULL));
	ck_assert(vm_name_is_valid("a"));
	ck_assert(vm_name_is_valid("web-3"));
	ck_assert(
	    vm_name_is_valid("012345678901234567890123456789012345678901234567890123456789012"));

	{
		struct vm_config c = {
		    .name = "t-host", .image_dir = image_dir, .hostname = "bad host"};
		vm *v = NULL;
		ck_assert_int_eq(vm_start(d, &c, &v), -EINVAL);
	}
	/* nothing was created for any of them */
	snprintf(vms, sizeof(vms), "%s/vms", state_dir);
	dir = opendir(vms);
	ck_assert_ptr_nonnull(dir);
	while ((e = readdir(dir)))
		ck_assert_msg(e->d_name[0] == '.', "%s/%s exists", vms, e->d_name);
	closedir(dir);
	/* destroying a VM that never existed is not an error */
	ck_assert_int_eq(vm_destroy_by_name(d, "t-never"), 0);
	vm_driver_free(d);
}
END_TEST

START_TEST(test_vm_no_qemu_is_left_behind)
{
	cleanup_all();
	ck_assert_int_eq(count_our_qemus(), 0);
}
END_TEST

/* -- console log cap (no VM) ------------------------------------------------ */

START_TEST(test_console_log_past_the_cap_keeps_its_last_half)
{
	char path[] = "/tmp/sbx-console-XXXXXX";
	char buf[4096];
	int fd = mkstemp(path);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 300; i++) {
		n = snprintf(buf, sizeof(buf), "line %03d of the guest's console\n", i);
		ck_assert_int_eq(write(fd, buf, (size_t)n), n);
	}
	/* under the cap: untouched */
	ck_assert_int_eq(vm_console_trim(path, 1 << 20), 0);
	ck_assert_int_eq(lseek(fd, 0, SEEK_END), 300 * 32);
	ck_assert_int_eq(vm_console_trim(path, 2000), 1);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_int_le(n, 1100);
	ck_assert_msg(!strncmp(buf, "[sbx: console log over 2000 bytes: ", 35), "head: %.60s", buf);
	ck_assert_ptr_nonnull(strstr(buf, "dropped]\nline ")); /* then whole lines */
	ck_assert_ptr_nonnull(strstr(buf, "line 299 of the guest's console\n"));
	ck_assert_ptr_null(strstr(buf, "line 000 "));
	/* an appending writer (QEMU's O_APPEND) goes on at the new end */
	close(fd);
	fd = open(path, O_WRONLY | O_APPEND);
	ck_assert_int_eq(write(fd, "next\n", 5), 5);
	ck_assert_int_eq(lseek(fd, 0, SEEK_END), n + 5);
	close(fd);
	ck_assert_int_eq(vm_console_trim("/nonexistent/console.log", 10), 0);
	unlink(path);
}
END_TEST

/* -- no VM --------------------------------------------------------------------
 * The domain XML and vm.info are tested in tests/unit/check_vm_pure.c. */

START_TEST(test_vm_kvm_run_test_gives_a_reason)
{
	char why[256] = "";
	int r = vm_accel_kvm_run_test(why, sizeof(why));

	/* Either outcome is fine on some host; a failure must say why. */
	if (r < 0)
		ck_assert_str_ne(why, "");
	ck_assert_int_ge(vm_accel_host_tsc_khz(), 100000);
}
END_TEST

static Suite *vm_suite(void)
{
	Suite *s = suite_create("vm");
	TCase *xml = tcase_create("xml");
	TCase *core = tcase_create("core");
	TCase *errors = tcase_create("errors");
	TCase *guest_stops = tcase_create("guest_stops");

	tcase_add_test(xml, test_console_log_past_the_cap_keeps_its_last_half);
	tcase_add_test(xml, test_vm_kvm_run_test_gives_a_reason);
	suite_add_tcase(s, xml);

	tcase_set_tags(core, "vm");
	tcase_set_timeout(core, 120);
	tcase_add_checked_fixture(core, setup_clean, NULL);
	tcase_add_test(core, test_vm_driver_opens_and_reports_an_accelerator);
	tcase_add_test(core, test_vm_driver_accelerator_can_be_forced);
	tcase_add_test(core, test_vm_start_runs_guest_with_console_and_agent_socket);
	tcase_add_test(core, test_vm_two_guests_run_at_once);
	tcase_add_test(core, test_vm_concurrent_starts_from_threads);
	tcase_add_test(core, test_vm_destroy_removes_domain_directory_and_process);
	tcase_add_test(core, test_vm_destroy_after_qemu_was_killed_leaves_nothing);
	tcase_add_test(core, test_vm_lookup_after_reopen_finds_running_vm);
	tcase_add_test(core, test_vm_is_found_and_destroyed_by_a_new_process);
	suite_add_tcase(s, core);

	tcase_set_tags(errors, "vm");
	tcase_set_timeout(errors, 120);
	tcase_add_checked_fixture(errors, setup_clean, NULL);
	tcase_add_test(errors, test_vm_start_with_missing_image_fails_clearly);
	tcase_add_test(errors, test_vm_start_with_broken_kernel_fails_and_leaves_nothing);
	tcase_add_test(errors, test_vm_invalid_names_are_rejected);
	tcase_add_test(errors, test_vm_no_qemu_is_left_behind);
	suite_add_tcase(s, errors);

	tcase_set_tags(guest_stops, "vm");
	tcase_set_timeout(guest_stops, 300);
	tcase_add_checked_fixture(guest_stops, setup_clean, NULL);
	tcase_add_test(guest_stops, test_vm_guest_kernel_panic_is_reported_as_a_crash);
	tcase_add_test(guest_stops, test_vm_agent_failure_at_boot_is_reported_with_its_reason);
	tcase_add_test(guest_stops, test_vm_poweroff_halt_reboot_in_the_guest_power_it_off);
	suite_add_tcase(s, guest_stops);
	return s;
}

int main(int argc, char **argv)
{
	const char *img = getenv("SBX_TEST_IMAGE");
	const char *st = getenv("SBX_TEST_STATE");
	SRunner *sr;
	int failed;

	if (getenv("SBX_TEST_DEBUG"))
		log_set_level(LOG_LVL_DEBUG);
	if (argc == 4 && !strcmp(argv[1], "--adopt"))
		return adopt_and_destroy(argv[2], argv[3]);
	if (argc == 5 && !strcmp(argv[1], "--start"))
		return start_and_leave(argv[2], argv[3], argv[4]);

	if (!realpath(img && *img ? img : "build/images/default", image_dir))
		snprintf(image_dir, sizeof(image_dir), "%s",
			 img && *img ? img : "build/images/default");
	if (st && *st) {
		snprintf(state_dir, sizeof(state_dir), "%s", st);
		if (io_mkdir_p(state_dir, 0711) < 0 || !realpath(st, state_dir)) {
			fprintf(stderr, "check_vm: cannot use SBX_TEST_STATE=%s\n", st);
			return 2;
		}
	} else {
		/* deep on purpose: its socket paths would pass the 107 bytes of
		 * a Unix socket path but for the driver's short alias */
		snprintf(state_dir, sizeof(state_dir), "/tmp/sbx-check-vm-XXXXXX");
		if (!mkdtemp(state_dir)) {
			perror("check_vm: mkdtemp");
			return 2;
		}
		snprintf(top_dir, sizeof(top_dir), "%s", state_dir);
		strncat(state_dir, "/a-state-directory-as-deep-as-a-ci-checkout-of-the-project",
			sizeof(state_dir) - strlen(state_dir) - 1);
		if (mkdir(state_dir, 0711) < 0) {
			perror("check_vm: mkdir");
			return 2;
		}
		own_state_dir = true;
	}
	fprintf(stderr, "check_vm: image %s, state %s\n", image_dir, state_dir);

	sr = srunner_create(vm_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);

	cleanup_all();
	if (count_our_qemus() != 0) {
		fprintf(stderr, "check_vm: QEMU processes of %s are still running\n", state_dir);
		failed++;
	}
	if (own_state_dir && vmu_rm_rf(top_dir) < 0)
		fprintf(stderr, "check_vm: cannot remove %s\n", top_dir);
	return failed ? 1 : 0;
}
