/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_snap.c - how fast sandboxes start from snapshots, and what forks
 * cost in host memory. Prints figures and ratios to the cold boot of the
 * same run; asserts nothing.
 *
 *  - create to first command result: cold boot, zygote fork (a fresh
 *    sandbox from the image), memory snapshot fork (p50/p99)
 *  - wall time to fork 1 and 10 sandboxes from one memory snapshot
 *  - host memory of 10 forks against 1: sum of the QEMU processes'
 *    proportional set size (PSS: a page shared by n processes counts 1/n)
 *    plus the page cache the snapshot's RAM file holds
 *  - sandboxes held by one host: idle 256 MiB forks of one snapshot,
 *    started one after another until the host's limit (a start fails or
 *    takes over DENSITY_SLOW_S, or less than DENSITY_RESERVE_MIB of memory
 *    is left) or SBX_BENCH_DENSITY sandboxes (default 200; 0 skips it):
 *    host memory per idle sandbox and create-to-first-exec while full
 *    (SBX_BENCH_DENSITY_ONLY=1 measures only this)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "host/agent/agent_client.h"
#include "base/log.h"
#include "snapshot/snap.h"
#include "host/vm/vm.h"

LOG_DEFINE_STATE("bench_snap");

#define RUNS 10
#define DENSITY_MIB 256
#define DENSITY_DEFAULT 200
#define DENSITY_MAX 1000
#define DENSITY_RESERVE_MIB 2048
/* a start slower than the langsmith client's default create timeout (30 s)
 * fails for its users: the host is full */
#define DENSITY_SLOW_S 30
#define DENSITY_FULL_RUNS 5
#define STR_(x) #x
#define STR(x) STR_(x)

static vm_driver *drv;
static snap_store *st;
static char image[PATH_MAX];
static const char *accel;

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(double), cmp_d);
	return v[(int)((n - 1) * p + 0.5)];
}

struct run {
	bool done;
	int code;
};

static void on_exit_(agent_cmd *c, const struct proto_exit *e, void *ud)
{
	(void)c;
	((struct run *)ud)->done = true;
	((struct run *)ud)->code = e->code;
}

static void on_error(agent_cmd *c, int err, const char *msg, void *ud)
{
	(void)c, (void)err, (void)msg;
	((struct run *)ud)->done = true;
	((struct run *)ud)->code = -1;
}

/* Run `true` in the VM; 0 on success. */
static int first_exec(vm *v)
{
	static const char *const argv[] = {"true", NULL};
	static const struct agent_cmd_ops ops = {.on_exit = on_exit_, .on_error = on_error};
	struct agent_exec_spec spec = {.argv = argv};
	char addr[PATH_MAX];
	agent_client *c = NULL;
	agent_cmd *cmd = NULL;
	struct run r = {0};
	int ret = 0;

	snprintf(addr, sizeof(addr), "unix:%s", vm_agent_socket(v));
	if (agent_client_connect(addr, 180000, &c) < 0) {
		fprintf(stderr, "bench: %s\n", err_msg());
		return -1;
	}
	if (agent_exec(c, &spec, &ops, &r, &cmd) < 0)
		ret = -1;
	while (!ret && !r.done)
		if (agent_client_pump(c, 60000) < 0)
			ret = -1;
	agent_cmd_free(cmd);
	agent_client_free(c);
	return ret || r.code ? -1 : 0;
}

static void destroy(vm *v)
{
	if (v && vm_destroy(v) < 0)
		fprintf(stderr, "bench: cannot destroy %s: %s\n", vm_name(v), err_msg());
	vm_free(v);
}

static double cold_boot(void)
{
	double t[3];

	for (int i = 0; i < 3; i++) {
		char name[64];
		struct vm_config c = {.name = name, .image_dir = image};
		vm *v = NULL;
		double t0 = now_ms();

		snprintf(name, sizeof(name), "bcold-%d-%d", (int)getpid(), i);
		if (vm_start(drv, &c, &v) < 0 || first_exec(v) < 0) {
			fprintf(stderr, "bench: cold boot: %s\n", err_msg());
			exit(1);
		}
		t[i] = now_ms() - t0;
		destroy(v);
	}
	return pct(t, 3, 0.5);
}

/* Start n VMs (image fresh start when id is NULL, else restore id with
 * memory) and time each to its first command result. */
static int seq;

static void starts(const char *id, int n, double *t, vm **keep, const char **ret_how)
{
	for (int i = 0; i < n; i++) {
		char name[64];
		struct snap_restore_opts o = {
		    .vm_name = name, .restore_memory = true, .use_zygote = true};
		vm *v = NULL;
		double t0 = now_ms();
		int r;

		snprintf(name, sizeof(name), "b%s-%d-%d", id ? "fork" : "zyg", (int)getpid(),
			 seq++);
		r = id ? snap_restore(st, drv, id, &o, &v, ret_how)
		       : snap_start_image(st, drv, image, &o, &v, ret_how);
		if (r < 0 || first_exec(v) < 0) {
			fprintf(stderr, "bench: start %s: %s\n", name, err_msg());
			exit(1);
		}
		t[i] = now_ms() - t0;
		if (keep)
			keep[i] = v;
		else
			destroy(v);
	}
}

struct par {
	const char *id;
	int i;
	vm *v;
};

static void *par_fork(void *arg)
{
	struct par *p = arg;
	char name[64];
	struct snap_restore_opts o = {.vm_name = name, .restore_memory = true};

	snprintf(name, sizeof(name), "bpar-%d-%d", (int)getpid(), p->i);
	if (snap_restore(st, drv, p->id, &o, &p->v, NULL) < 0 || first_exec(p->v) < 0) {
		fprintf(stderr, "bench: parallel fork %s: %s\n", name, err_msg());
		exit(1);
	}
	return NULL;
}

/* n forks at once, each on its own thread; wall ms until all answered */
static double parallel_forks(const char *id, int n, vm **keep)
{
	pthread_t t[16];
	struct par p[16];
	double t0 = now_ms();

	for (int i = 0; i < n; i++) {
		p[i] = (struct par){.id = id, .i = i};
		pthread_create(&t[i], NULL, par_fork, &p[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		keep[i] = p[i].v;
	}
	return now_ms() - t0;
}

static long pss_kb(vm *v)
{
	char path[64], line[256];
	long kb = -1;
	int pid = vm_qemu_pid(v);
	FILE *f;

	if (pid < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pss: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Resident page-cache pages of a file, in KiB. */
static long cached_kb(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat s;
	unsigned char *vec;
	void *p;
	long pages = 0, psz = sysconf(_SC_PAGESIZE);
	size_t n;

	if (fd < 0 || fstat(fd, &s) < 0 || s.st_size == 0) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	p = mmap(NULL, (size_t)s.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return 0;
	n = ((size_t)s.st_size + (size_t)psz - 1) / (size_t)psz;
	vec = malloc(n);
	if (vec && mincore(p, (size_t)s.st_size, vec) == 0)
		for (size_t i = 0; i < n; i++)
			pages += vec[i] & 1;
	free(vec);
	munmap(p, (size_t)s.st_size);
	return pages * psz / 1024;
}

static long memory_kb(vm **v, int n, const char *ram, long *ret_cache)
{
	long sum = *ret_cache = cached_kb(ram);

	for (int i = 0; i < n; i++)
		sum += pss_kb(v[i]);
	return sum;
}

/* MemAvailable of /proc/meminfo, in KiB; -1 if unknown. */
static long host_available_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* One fork of id to its first command result; ms, or -1 (*ret_v NULL). */
static double fork_one(const char *id, vm **ret_v)
{
	char name[64];
	struct snap_restore_opts o = {.vm_name = name, .restore_memory = true};
	double t0 = now_ms();

	*ret_v = NULL;
	snprintf(name, sizeof(name), "bden-%d-%d", (int)getpid(), seq++);
	if (snap_restore(st, drv, id, &o, ret_v, NULL) < 0) {
		fprintf(stderr, "bench: density: start %s: %s\n", name, err_msg());
		return -1;
	}
	if (first_exec(*ret_v) < 0) {
		fprintf(stderr, "bench: density: %s did not run a command\n", name);
		destroy(*ret_v);
		*ret_v = NULL;
		return -1;
	}
	return now_ms() - t0;
}

/* Sandboxes held by one host (see the top of the file). */
static int density(int max)
{
	struct snap_restore_opts so = {
	    .vm_name = "bden-src", .memory_mib = DENSITY_MIB, .use_zygote = true};
	struct snap_capture_opts co = {.include_memory = true, .name = "bench-density"};
	struct snap_manifest *m = NULL;
	vm *src = NULL, **held = calloc((size_t)max, sizeof(vm *));
	double *t = calloc((size_t)max, sizeof(double));
	double full[DENSITY_FULL_RUNS], first[10], last[10], t0 = now_ms();
	long avail0, avail, cache = 0;
	const char *why = NULL;
	char *ram = NULL;
	int n = 0, nfull = 0, k, ret = -1;

	if (!held || !t)
		goto out;
	if (snap_start_image(st, drv, image, &so, &src, NULL) < 0) {
		fprintf(stderr, "bench: density: source VM: %s\n", err_msg());
		goto out;
	}
	co.agent_socket = vm_agent_socket(src);
	if (snap_capture(st, drv, src, &co, &m) < 0) {
		fprintf(stderr, "bench: density: capture: %s\n", err_msg());
		goto out;
	}
	destroy(src);
	src = NULL;
	if (m->mem_mode == SNAP_MEM_SHARED_FILE)
		ram = snap_blob_path(st, snap_manifest_part(m, SNAP_PART_RAM)->blob);
	avail0 = host_available_kb();
	while (n < max) {
		avail = host_available_kb();
		if (avail >= 0 && avail < DENSITY_RESERVE_MIB * 1024L) {
			why = "less than " STR(DENSITY_RESERVE_MIB) " MiB of host memory left";
			break;
		}
		t[n] = fork_one(m->id, &held[n]);
		if (t[n] < 0) {
			why = "a start failed";
			break;
		}
		n++;
		if (t[n - 1] > DENSITY_SLOW_S * 1000.0) {
			why = "a start took over " STR(DENSITY_SLOW_S) " s";
			break;
		}
		if (n % 10 == 0)
			fprintf(stderr,
				"density: %d sandboxes after %.0f s, last start %.0f ms, "
				"host memory available %ld MiB\n",
				n, (now_ms() - t0) / 1000, t[n - 1], host_available_kb() / 1024);
	}
	if (!why)
		why = "the benchmark's cap (SBX_BENCH_DENSITY)";
	avail = host_available_kb();
	if (n == 0) {
		fprintf(stderr, "bench: density: no sandbox started\n");
		goto out;
	}
	/* create-to-first-exec while full: one more, measured and let go */
	for (int i = 0; i < DENSITY_FULL_RUNS; i++) {
		vm *v = NULL;
		double ms = fork_one(m->id, &v);

		if (ms >= 0)
			full[nfull++] = ms;
		destroy(v);
	}
	printf("sandboxes held by one host: %d idle %u MiB forks of one snapshot (stopped at: "
	       "%s), started in %.0f s [%s]\n",
	       n, DENSITY_MIB, why, (now_ms() - t0) / 1000, accel);
	printf("host memory per idle sandbox: %.1f MiB (MemAvailable fell %ld MiB); QEMU PSS + "
	       "snapshot RAM file in page cache: %.1f MiB each; %.1f%% of a %u MiB guest [%s]\n",
	       (double)(avail0 - avail) / 1024 / n, (avail0 - avail) / 1024,
	       (double)memory_kb(held, n, ram ? ram : "", &cache) / 1024 / n,
	       100.0 * (double)(avail0 - avail) / 1024 / n / DENSITY_MIB, DENSITY_MIB, accel);
	/* pct() sorts in place: the first and the last 10 may overlap */
	k = n < 10 ? n : 10;
	memcpy(first, t, (size_t)k * sizeof(double));
	memcpy(last, t + n - k, (size_t)k * sizeof(double));
	printf("create to first command result: first 10 p50 %.0f ms; last 10 p50 %.0f ms; "
	       "with %d held, p50 %.0f ms over %d runs (%d failed) [%s]\n",
	       pct(first, k, 0.5), pct(last, k, 0.5), n, nfull ? pct(full, nfull, 0.5) : -1.0,
	       DENSITY_FULL_RUNS, DENSITY_FULL_RUNS - nfull, accel);
	ret = 0;
out:
	destroy(src);
	for (int i = 0; held && i < n; i++)
		destroy(held[i]);
	if (m)
		(void)snap_delete(st, m->id, NULL);
	snap_manifest_free(m);
	free(ram);
	free(held);
	free(t);
	return ret;
}

int main(void)
{
	const char *img = getenv("SBX_TEST_IMAGE");
	char state[64], cmd[128], *ram = NULL;
	struct vm_driver_config dc = {.force_accel = -1};
	struct snap_capture_opts co = {.include_memory = true, .name = "bench"};
	struct snap_manifest *m = NULL;
	double cold, tz[RUNS], tf[RUNS], t1, t10;
	const char *how_z = "?", *how_f = "?";
	vm *src = NULL, *forks[10] = {0};
	long mem1, mem10, cache1, cache10;
	const char *dens = getenv("SBX_BENCH_DENSITY");
	int density_max = dens ? atoi(dens) : DENSITY_DEFAULT;
	struct rlimit nofile;
	int ret = 0;

	if (density_max < 0 || density_max > DENSITY_MAX) {
		fprintf(stderr, "bench: SBX_BENCH_DENSITY must be 0 to %d\n", DENSITY_MAX);
		return 1;
	}
	/* each VM holds descriptors (monitor, agent, console): lift the cap */
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &nofile);
	}

	if (!realpath(img ? img : "build/images/default", image)) {
		fprintf(stderr, "bench: no VM image: run 'make image'\n");
		return 1;
	}
	snprintf(state, sizeof(state), "/tmp/sbx-benchsnap-%d", (int)getpid());
	mkdir(state, 0700);
	dc.state_dir = state;
	if (vm_driver_open(&dc, &drv) < 0 || snap_store_open(state, &st) < 0) {
		fprintf(stderr, "bench: %s %s\n", err_msg(), err_msg());
		return 1;
	}
	accel = vm_accel_to_string(vm_driver_accel(drv));
	if (getenv("SBX_BENCH_DENSITY_ONLY")) {
		ret = density(density_max ? density_max : DENSITY_DEFAULT);
		goto out;
	}

	cold = cold_boot();
	printf("cold boot to first command result: %.0f ms (median of 3) [%s]\n", cold, accel);

	/* the first fresh start builds the zygote; not counted */
	starts(NULL, 1, tz, &src, &how_z);
	starts(NULL, RUNS, tz, NULL, &how_z);
	printf("fresh sandbox (%s) to first command result: p50 %.0f ms, p99 %.0f ms over %d "
	       "runs, %.1fx faster than a cold boot [%s]\n",
	       how_z, pct(tz, RUNS, 0.5), pct(tz, RUNS, 0.99), RUNS, cold / pct(tz, RUNS, 0.5),
	       accel);

	co.agent_socket = vm_agent_socket(src);
	if (snap_capture(st, drv, src, &co, &m) < 0) {
		fprintf(stderr, "bench: capture: %s\n", err_msg());
		return 1;
	}
	ram = m->mem_mode == SNAP_MEM_SHARED_FILE
		  ? snap_blob_path(st, snap_manifest_part(m, SNAP_PART_RAM)->blob)
		  : strdup("");
	starts(m->id, RUNS, tf, NULL, &how_f);
	printf("memory snapshot restore (%s) to first command result: p50 %.0f ms, p99 %.0f ms "
	       "over %d runs, %.1fx faster than a cold boot [%s]\n",
	       how_f, pct(tf, RUNS, 0.5), pct(tf, RUNS, 0.99), RUNS, cold / pct(tf, RUNS, 0.5),
	       accel);

	t1 = now_ms();
	starts(m->id, 1, tf, forks, NULL);
	t1 = now_ms() - t1;
	mem1 = memory_kb(forks, 1, ram, &cache1);
	destroy(forks[0]);
	t10 = parallel_forks(m->id, 10, forks);
	mem10 = memory_kb(forks, 10, ram, &cache10);
	printf("fork 1 sandbox: %.0f ms wall; 10 sandboxes at once: %.0f ms wall (%.0f ms each) "
	       "[%s]\n",
	       t1, t10, t10 / 10, accel);
	printf("host memory (QEMU PSS + snapshot RAM file in page cache), %u MiB guests: 1 fork "
	       "%ld MiB (%ld in page cache), 10 forks %ld MiB (%ld in page cache), ratio %.2f "
	       "(10 independent guests would be 10.0) [%s]\n",
	       m->memory_mib, mem1 / 1024, cache1 / 1024, mem10 / 1024, cache10 / 1024,
	       mem1 > 0 ? (double)mem10 / mem1 : 0, accel);

	for (int i = 0; i < 10; i++)
		destroy(forks[i]);
	destroy(src);
	if (density_max > 0)
		ret = density(density_max);
	snap_manifest_free(m);
	free(ram);
out:
	st = snap_store_free(st);
	drv = vm_driver_free(drv);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", state);
	return system(cmd) == 0 && ret == 0 ? 0 : 1;
}
