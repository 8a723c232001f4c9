/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_agent.c - `make bench` for the VM + agent layer. Prints figures,
 * asserts nothing (speed is never a test assertion).
 *
 *  - cold boot to first command result (vm_start -> HELLO -> `true` exited)
 *  - round trip of `true`, p50/p99 over 200 runs
 *  - stdout throughput through the agent next to the raw throughput of a
 *    virtio-serial channel of the same VM without the agent (guest `head`
 *    writing straight into the port "sbx.bench"), and their ratio
 *  - put/get throughput of a random file
 *
 * Every figure carries the accelerator (kvm or tcg) it was measured with.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "host/agent/agent_client.h"
#include "protocol/proto.h"
#include "host/vm/vm.h"
#include "base/log.h"

LOG_DEFINE_STATE("bench");

static const char *accel = "?";
static vm_driver *drv;
static vm *volatile g_live; /* destroyed on SIGINT/SIGTERM */

static void on_signal(int sig)
{
	if (g_live)
		vm_destroy(g_live);
	signal(sig, SIG_DFL);
	raise(sig);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	int i = (int)(p * (n - 1) + 0.5);
	return v[i];
}

struct run {
	bool done, failed;
	uint64_t bytes;
	struct proto_exit exit;
	char msg[256];
};

static void on_output(agent_cmd *cmd, int stream, uint64_t off, const uint8_t *d, size_t len,
		      void *ud)
{
	(void)cmd, (void)stream, (void)off, (void)d;
	((struct run *)ud)->bytes += len;
}

static void on_exit_(agent_cmd *cmd, const struct proto_exit *e, void *ud)
{
	(void)cmd;
	((struct run *)ud)->exit = *e;
	((struct run *)ud)->done = true;
}

static void on_error(agent_cmd *cmd, int err, const char *msg, void *ud)
{
	struct run *r = ud;
	(void)cmd, (void)err;
	r->failed = r->done = true;
	snprintf(r->msg, sizeof(r->msg), "%s", msg ? msg : "");
}

static const struct agent_cmd_ops ops = {
    .on_output = on_output, .on_exit = on_exit_, .on_error = on_error};

static int run_cmd(agent_client *c, const struct agent_exec_spec *spec, struct run *r)
{
	agent_cmd *cmd = NULL;
	int ret;

	memset(r, 0, sizeof(*r));
	ret = agent_exec(c, spec, &ops, r, &cmd);
	if (ret < 0)
		return ret;
	while (!r->done) {
		ret = agent_client_pump(c, 1000);
		if (ret < 0)
			break;
	}
	agent_cmd_free(cmd);
	if (r->failed) {
		fprintf(stderr, "bench: command failed: %s\n", r->msg);
		return -EIO;
	}
	return ret;
}

static int boot(const char *image, const char *name, bool bench_channel, vm **ret_vm,
		agent_client **ret_c)
{
	struct vm_config vc = {
	    .name = name,
	    .image_dir = image,
	    .vcpus = 2,
	    .memory_mib = 512,
	    .bench_channel = bench_channel,
	};
	char addr[PATH_MAX + 8];
	int r;

	r = vm_start(drv, &vc, ret_vm);
	g_live = *ret_vm;
	if (r < 0) {
		fprintf(stderr, "bench: cannot start a VM: %s\n", err_msg());
		return r;
	}
	snprintf(addr, sizeof(addr), "unix:%s", vm_agent_socket(*ret_vm));
	r = agent_client_connect(addr, 120000, ret_c);
	if (r < 0) {
		fprintf(stderr, "bench: %s\n", err_msg());
		vm_destroy(*ret_vm);
		g_live = NULL;
		*ret_vm = vm_free(*ret_vm);
	}
	return r;
}

static void bench_cold_boot(const char *image)
{
	const char *argv[] = {"true", NULL};
	struct agent_exec_spec spec = {.argv = argv};
	double t[3];
	int n = 0;

	for (int i = 0; i < 3; i++) {
		char name[64];
		vm *v = NULL;
		agent_client *c = NULL;
		struct run r;
		double t0 = now_s();

		snprintf(name, sizeof(name), "bench-boot-%d-%d", (int)getpid(), i);
		if (boot(image, name, false, &v, &c) < 0)
			continue;
		if (run_cmd(c, &spec, &r) == 0)
			t[n++] = (now_s() - t0) * 1000;
		agent_client_free(c);
		vm_destroy(v);
		g_live = NULL;
		vm_free(v);
	}
	if (n)
		printf("cold boot to first command result: %.0f ms (median of %d) [%s]\n",
		       pct(t, n, 0.5), n, accel);
}

static void bench_rtt(agent_client *c)
{
	const char *argv[] = {"true", NULL};
	struct agent_exec_spec spec = {.argv = argv};
	double t[200];
	struct run r;

	for (int i = 0; i < 200; i++) {
		double t0 = now_s();
		if (run_cmd(c, &spec, &r) < 0)
			return;
		t[i] = (now_s() - t0) * 1000;
	}
	double p50 = pct(t, 200, 0.5), p99 = pct(t, 200, 0.99);
	printf("round trip of `true`: p50 %.2f ms, p99 %.2f ms over 200 runs [%s]\n", p50, p99,
	       accel);
}

#define STREAM_BYTES (256ull << 20)

static double bench_stdout(agent_client *c)
{
	struct agent_exec_spec spec = {.shell = "head -c 268435456 /dev/zero"};
	struct run r;
	double t0 = now_s();

	if (run_cmd(c, &spec, &r) < 0 || r.bytes != STREAM_BYTES)
		return 0;
	return (double)r.bytes / (now_s() - t0) / 1e6;
}

/* The guest writes straight into the port named sbx.bench; the host reads
 * its socket. No agent, no framing: the channel's own ceiling. */
static double bench_raw(agent_client *c, const char *sock)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static uint8_t buf[1 << 20];
	struct agent_exec_spec spec = {
	    .shell = "for p in /sys/class/virtio-ports/*; do "
		     "[ \"$(cat $p/name)\" = sbx.bench ] && "
		     "exec head -c 268435456 /dev/zero > /dev/$(basename $p); done; exit 9",
	};
	agent_cmd *cmd = NULL;
	struct run r = {0};
	uint64_t got = 0;
	double t0;
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "bench: socket path too long: %s\n", sock);
		if (fd >= 0)
			close(fd);
		return 0;
	}
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "bench: cannot connect to %s: %s\n", sock, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 0;
	}
	t0 = now_s();
	if (agent_exec(c, &spec, &ops, &r, &cmd) < 0) {
		close(fd);
		return 0;
	}
	while (got < STREAM_BYTES && !(r.done && r.exit.code != 0)) {
		struct pollfd p[2] = {
		    {.fd = fd, .events = POLLIN},
		    {.fd = agent_client_fd(c),
		     .events = POLLIN | (agent_client_wants_write(c) ? POLLOUT : 0)},
		};
		if (poll(p, 2, 10000) <= 0)
			break;
		if (p[0].revents) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n <= 0)
				break;
			got += (uint64_t)n;
		}
		if ((p[1].revents & POLLOUT) && agent_client_on_writable(c) < 0)
			break;
		if ((p[1].revents & ~POLLOUT) && agent_client_on_readable(c) < 0)
			break;
	}
	double secs = now_s() - t0;
	/* A writer left blocked on the port must not hang the bench. */
	if (!r.done)
		(void)agent_cmd_signal(cmd, SIGKILL);
	close(fd);
	for (int i = 0; i < 30 && !r.done && agent_client_pump(c, 1000) == 0; i++)
		;
	agent_cmd_free(cmd);
	if (got < STREAM_BYTES) {
		fprintf(stderr, "bench: raw channel delivered %llu of %llu bytes\n",
			(unsigned long long)got, STREAM_BYTES);
		return 0;
	}
	return (double)got / secs / 1e6;
}

static void bench_files(agent_client *c)
{
	const size_t n = 128u << 20;
	char src[] = "/tmp/sbx-bench-XXXXXX";
	uint8_t *data = malloc(n);
	int fd = mkstemp(src), rnd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	double t0, put = 0, get = 0;

	if (!data || fd < 0 || rnd < 0)
		goto out;
	unlink(src);
	for (size_t off = 0; off < n;) {
		ssize_t k = read(rnd, data + off, n - off);
		if (k <= 0)
			goto out;
		off += (size_t)k;
	}
	if (write(fd, data, n) != (ssize_t)n)
		goto out;
	lseek(fd, 0, SEEK_SET);
	t0 = now_s();
	if (agent_put_file(c, fd, "/root/bench.bin", 0600, false) == 0)
		put = (double)n / (now_s() - t0) / 1e6;
	if (ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0) {
		t0 = now_s();
		if (agent_get_file(c, "/root/bench.bin", fd, NULL) == 0)
			get = (double)n / (now_s() - t0) / 1e6;
	}
	(void)agent_remove(c, "/root/bench.bin", false);
	printf("file put: %.1f MB/s, get: %.1f MB/s (128 MiB of random bytes) [%s]\n", put, get,
	       accel);
out:
	free(data);
	if (fd >= 0)
		close(fd);
	if (rnd >= 0)
		close(rnd);
}

int main(void)
{
	const char *image_rel =
	    getenv("SBX_TEST_IMAGE") ? getenv("SBX_TEST_IMAGE") : "build/images/default";
	const char *state =
	    getenv("SBX_BENCH_STATE") ? getenv("SBX_BENCH_STATE") : "build/test-state/bench";
	char image[PATH_MAX], kernel[PATH_MAX + 16], name[64];
	struct vm_driver_config dc = {.state_dir = state, .force_accel = -1};
	vm *v = NULL;
	agent_client *c = NULL;

	if (!realpath(image_rel, image)) {
		fprintf(stderr, "bench: no VM image at %s: run 'make image'\n", image_rel);
		return 1;
	}
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", image);
	dc.probe_kernel = kernel;
	if (vm_driver_open(&dc, &drv) < 0) {
		fprintf(stderr, "bench: cannot open the VM driver: %s\n", err_msg());
		return 1;
	}
	accel = vm_accel_to_string(vm_driver_accel(drv));
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("accelerator: %s (%s)\n", accel, vm_driver_accel_reason(drv));
	fflush(stdout);

	bench_cold_boot(image);
	fflush(stdout);

	snprintf(name, sizeof(name), "bench-%d", (int)getpid());
	if (boot(image, name, true, &v, &c) == 0) {
		bench_rtt(c);
		fflush(stdout);
		double agent = bench_stdout(c);
		double raw = bench_raw(c, vm_bench_socket(v));
		printf("stdout throughput: %.1f MB/s through the agent, %.1f MB/s raw channel, "
		       "ratio %.2f (256 MiB) [%s]\n",
		       agent, raw, raw > 0 ? agent / raw : 0, accel);
		fflush(stdout);
		bench_files(c);
		agent_client_free(c);
		vm_destroy(v);
		g_live = NULL;
		vm_free(v);
	}
	vm_driver_free(drv);
	return 0;
}
