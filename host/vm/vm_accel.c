/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm_accel.c - which accelerator this host can really use.
 *
 * A /dev/kvm that opens proves nothing: on a PVM host (kvm_pvm) KVM_CREATE_VM
 * and even a few real-mode instructions run, yet QEMU with -cpu host aborts
 * on an MSR and an ordinary kernel never boots. So KVM is chosen only after
 *   1. a KVM_RUN test (a few bytes of real-mode code: out to a port, hlt) in a
 *      child process, which a hang cannot take down with us, and
 *   2. a boot probe: QEMU with -accel kvm -cpu host runs the guest kernel
 *      without a root device and must reach the "VFS: Unable to mount root"
 *      panic within a few seconds.
 * The boot probe's verdict is cached in STATE/accel-probe, keyed by the QEMU
 * binary, the kernel and the host kernel, because it costs a boot.
 * Everything else means TCG, with the reason kept for the log line.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "base/clock.h"
#include "base/log.h"
#include "host/vm/vm_int.h"

extern char **environ;

#define KVM_TEST_PORT 0x3f8
#define KVM_TEST_BYTE 'K'
#define KVM_TEST_TIMEOUT_MS 2000
#define BOOT_PROBE_TIMEOUT_MS 4000

enum kvm_step {
	KS_OK,
	KS_CREATE_VM,
	KS_MEMORY,
	KS_CREATE_VCPU,
	KS_MMAP_RUN,
	KS_SREGS,
	KS_REGS,
	KS_RUN_IO,
	KS_EXIT_IO,
	KS_RUN_HLT,
	KS_EXIT_HLT,
};

static const char *const kvm_step_what[] = {
    [KS_OK] = "ok",
    [KS_CREATE_VM] = "KVM_CREATE_VM failed",
    [KS_MEMORY] = "KVM_SET_USER_MEMORY_REGION failed",
    [KS_CREATE_VCPU] = "KVM_CREATE_VCPU failed",
    [KS_MMAP_RUN] = "mmap of the vCPU run area failed",
    [KS_SREGS] = "KVM_{GET,SET}_SREGS failed",
    [KS_REGS] = "KVM_SET_REGS failed",
    [KS_RUN_IO] = "KVM_RUN failed",
    [KS_EXIT_IO] = "KVM_RUN did not exit with the expected port I/O",
    [KS_RUN_HLT] = "second KVM_RUN failed",
    [KS_EXIT_HLT] = "KVM_RUN did not exit with HLT",
};

struct kvm_result {
	int step;
	int err;
	int exit_reason;
};

/* Runs in a forked child of a possibly multi-threaded process: system calls
 * only, no allocation, no stdio. */
static __attribute__((noreturn)) void kvm_child(int kvm, int out)
{
	/* mov dx, 0x3f8; mov al, 'K'; out dx, al; hlt */
	static const unsigned char code[] = {0xba, 0xf8, 0x03, 0xb0, KVM_TEST_BYTE, 0xee, 0xf4};
	struct kvm_result res = {0};
	struct kvm_userspace_memory_region region = {0};
	struct kvm_sregs sregs;
	struct kvm_regs regs = {.rip = 0x1000, .rflags = 0x2};
	struct kvm_run *run;
	unsigned char *mem;
	int vmfd, vcpu, sz;

	alarm(KVM_TEST_TIMEOUT_MS / 1000 + 1);
	vmfd = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vmfd < 0) {
		res.step = KS_CREATE_VM;
		goto out;
	}
	mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		res.step = KS_MEMORY;
		goto out;
	}
	memcpy(mem, code, sizeof(code));
	region.guest_phys_addr = 0x1000;
	region.memory_size = 0x1000;
	region.userspace_addr = (unsigned long)mem;
	if (ioctl(vmfd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		res.step = KS_MEMORY;
		goto out;
	}
	vcpu = ioctl(vmfd, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		res.step = KS_CREATE_VCPU;
		goto out;
	}
	sz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	run = sz > 0 ? mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0)
		     : MAP_FAILED;
	if (run == MAP_FAILED) {
		res.step = KS_MMAP_RUN;
		goto out;
	}
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) {
		res.step = KS_SREGS;
		goto out;
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) {
		res.step = KS_SREGS;
		goto out;
	}
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) {
		res.step = KS_REGS;
		goto out;
	}
	if (ioctl(vcpu, KVM_RUN, 0) < 0) {
		res.step = KS_RUN_IO;
		goto out;
	}
	res.exit_reason = (int)run->exit_reason;
	if (run->exit_reason != KVM_EXIT_IO || run->io.port != KVM_TEST_PORT ||
	    run->io.direction != KVM_EXIT_IO_OUT ||
	    ((unsigned char *)run)[run->io.data_offset] != KVM_TEST_BYTE) {
		res.step = KS_EXIT_IO;
		goto out_noerr;
	}
	if (ioctl(vcpu, KVM_RUN, 0) < 0) {
		res.step = KS_RUN_HLT;
		goto out;
	}
	res.exit_reason = (int)run->exit_reason;
	if (run->exit_reason != KVM_EXIT_HLT)
		res.step = KS_EXIT_HLT;
	goto out_noerr;
out:
	res.err = errno;
out_noerr:
	(void)!write(out, &res, sizeof(res));
	_exit(0);
}

int vm_accel_kvm_run_test(char *why, size_t len)
{
	_cleanup_close_ int kvm = -EBADF, rfd = -EBADF, wfd = -EBADF;
	struct kvm_result res = {.step = -1};
	long long deadline;
	int fds[2], api, status;
	pid_t pid;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		int r = -errno;
		snprintf(why, len, "cannot open /dev/kvm: %s", strerror(-r));
		return r;
	}
	api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		snprintf(why, len, "/dev/kvm speaks KVM API %d, not %d", api, KVM_API_VERSION);
		return -ENOTSUP;
	}
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	rfd = fds[0];
	wfd = fds[1];
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		kvm_child(kvm, wfd);
	close(TAKE_FD(wfd));

	deadline = clock_mono_ms() + KVM_TEST_TIMEOUT_MS;
	for (;;) {
		struct pollfd p = {.fd = rfd, .events = POLLIN};
		long long left = deadline - clock_mono_ms();
		int r;

		if (left <= 0)
			break;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0 && read(rfd, &res, sizeof(res)) != (ssize_t)sizeof(res))
			res.step = -1;
		break;
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;

	if (res.step < 0) {
		snprintf(why, len, "the KVM_RUN test did not finish within %d ms",
			 KVM_TEST_TIMEOUT_MS);
		return -ETIMEDOUT;
	}
	if (res.step == KS_OK)
		return 0;
	if (res.step >= (int)ARRAY_SIZE(kvm_step_what))
		res.step = KS_RUN_IO;
	if (res.err)
		snprintf(why, len, "%s: %s", kvm_step_what[res.step], strerror(res.err));
	else
		snprintf(why, len, "%s (exit reason %d)", kvm_step_what[res.step], res.exit_reason);
	return -ENOTSUP;
}

static unsigned long tsc_khz_from_cpuinfo(void)
{
	_cleanup_free_ char *s = NULL;
	char *p;

	if (vmu_read_file("/proc/cpuinfo", 8192, &s) < 0)
		return 0;
	p = strstr(s, "\ncpu MHz");
	if (!p || !(p = strchr(p, ':')))
		return 0;
	return (unsigned long)(strtod(p + 1, NULL) * 1000.0 + 0.5);
}

static unsigned long tsc_khz_measure(void)
{
	struct timespec a, b, pause = {.tv_nsec = 20 * 1000000};
	unsigned long long t0, t1;
	double ns;

	clock_gettime(CLOCK_MONOTONIC_RAW, &a);
	t0 = __rdtsc();
	nanosleep(&pause, NULL);
	clock_gettime(CLOCK_MONOTONIC_RAW, &b);
	t1 = __rdtsc();
	ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	if (ns <= 0 || t1 <= t0)
		return 0;
	return (unsigned long)((double)(t1 - t0) / ns * 1e6 + 0.5);
}

unsigned long vm_accel_host_tsc_khz(void)
{
	unsigned long measured = tsc_khz_measure(), info = tsc_khz_from_cpuinfo();

	/* "cpu MHz" is the kernel's calibrated TSC rate on hosts with a
	 * constant TSC and no frequency scaling (VMs, most servers) and far
	 * more precise than 20 ms of measuring; elsewhere it is the current
	 * core clock, which the measurement exposes. */
	if (info && measured && info > measured - measured / 200 &&
	    info < measured + measured / 200)
		return info;
	return measured;
}

static char *probe_key(const char *qemu, const char *kernel)
{
	struct stat qs, ks;
	struct utsname u;

	if (stat(qemu, &qs) < 0 || stat(kernel, &ks) < 0 || uname(&u) < 0)
		return NULL;
	return vmu_printf("qemu=%s:%lld:%lld kernel=%s:%lld:%lld host=%s %s", qemu,
			  (long long)qs.st_size, (long long)qs.st_mtime, kernel,
			  (long long)ks.st_size, (long long)ks.st_mtime, u.release, u.version);
}

static int cache_read(const char *path, const char *key, enum vm_accel *accel, char *why,
		      size_t len)
{
	_cleanup_free_ char *s = NULL;
	char *k, *v, *r, *nl;

	if (vmu_read_file(path, 8192, &s) < 0)
		return -ENOENT;
	k = strstr(s, "key=");
	v = strstr(s, "\nverdict=");
	r = strstr(s, "\nreason=");
	if (!k || !v || !r)
		return -EBADMSG;
	*v = '\0';
	if (strcmp(k + 4, key))
		return -ESTALE;
	v += strlen("\nverdict=");
	if (!strncmp(v, "kvm\n", 4))
		*accel = VM_ACCEL_KVM;
	else if (!strncmp(v, "tcg\n", 4))
		*accel = VM_ACCEL_TCG;
	else
		return -EBADMSG;
	r += strlen("\nreason=");
	nl = strchr(r, '\n');
	if (nl)
		*nl = '\0';
	snprintf(why, len, "%s", r);
	return 0;
}

static void cache_write(const char *path, const char *key, enum vm_accel accel, const char *why)
{
	_cleanup_free_ char *s =
	    vmu_printf("key=%s\nverdict=%s\nreason=%s\n", key, vm_accel_to_string(accel), why);
	int r;

	if (!s)
		return;
	r = vmu_write_file_atomic(path, s, 0644);
	if (r < 0)
		log_warn_errno(r, "cannot write %s, ignoring", path);
}

/* The first line QEMU printed about itself (its errors start with its
 * name), for the reason of a failed probe. */
static void qemu_error_line(const char *out, char *why, size_t len)
{
	const char *p = strstr(out, "qemu-system");
	size_t n;

	if (!p) {
		snprintf(why, len, "no console output");
		return;
	}
	n = strcspn(p, "\n");
	snprintf(why, len, "%.*s", (int)(n < 300 ? n : 300), p);
}

/* 0: the kernel booted under KVM; -errno with a reason otherwise. */
static int boot_probe(const char *qemu, const char *kernel, char *why, size_t len)
{
	/* clang-format off */
	char *argv[] = {
		(char *)qemu, "-M", "microvm", "-accel", "kvm", "-cpu", "host",
		"-m", "128", "-smp", "1", "-nodefaults", "-no-user-config",
		"-display", "none", "-no-reboot",
		"-chardev", "stdio,id=con,signal=off", "-device", "isa-serial,chardev=con",
		"-kernel", (char *)kernel,
		"-append", "console=ttyS0 panic=-1 quiet root=/dev/sbx-no-root",
		NULL,
	};
	/* clang-format on */
	_cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
	posix_spawn_file_actions_t fa;
	char out[16384];
	size_t got = 0;
	long long deadline;
	int fds[2], r, status, ret = -ETIMEDOUT;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	rfd = fds[0];
	wfd = fds[1];
	r = posix_spawn_file_actions_init(&fa);
	if (r)
		return -r;
	r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, wfd, 1);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, wfd, 2);
	if (!r)
		r = posix_spawn(&pid, qemu, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r) {
		snprintf(why, len, "cannot run %s: %s", qemu, strerror(r));
		return -r;
	}
	close(TAKE_FD(wfd));

	out[0] = '\0';
	deadline = clock_mono_ms() + BOOT_PROBE_TIMEOUT_MS;
	for (;;) {
		struct pollfd p = {.fd = rfd, .events = POLLIN};
		long long left = deadline - clock_mono_ms();
		ssize_t n;

		if (left <= 0)
			break;
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (got >= sizeof(out) - 1) {
			/* keep the second half: the marker may straddle */
			memmove(out, out + sizeof(out) / 2, got - sizeof(out) / 2);
			got -= sizeof(out) / 2;
		}
		n = read(rfd, out + got, sizeof(out) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = -EIO;
			break;
		}
		got += (size_t)n;
		out[got] = '\0';
		if (strstr(out, "Kernel panic") || strstr(out, "VFS: ")) {
			ret = 0;
			break;
		}
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (ret == -ETIMEDOUT)
		snprintf(why, len, "the kernel did not boot under KVM within %d ms",
			 BOOT_PROBE_TIMEOUT_MS);
	else if (ret < 0) {
		char line[320];
		qemu_error_line(out, line, sizeof(line));
		snprintf(why, len, "QEMU exited during the KVM boot probe: %s", line);
	}
	return ret;
}

static bool kvm_pvm_loaded(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

static void choose_by_probe(vm_driver *d, const char *probe_kernel)
{
	_cleanup_free_ char *qemu = NULL, *key = NULL, *cache = NULL;
	char why[400];
	long long t0 = clock_mono_ms();
	int r;

	d->accel = VM_ACCEL_TCG;
	r = vm_accel_kvm_run_test(why, sizeof(why));
	if (r < 0) {
		snprintf(d->accel_reason, sizeof(d->accel_reason), "KVM probe failed: %s", why);
		return;
	}
	if (!probe_kernel || access(probe_kernel, R_OK) < 0) {
		snprintf(d->accel_reason, sizeof(d->accel_reason),
			 "KVM_RUN test passed but there is no guest kernel to boot-probe KVM "
			 "with%s",
			 kvm_pvm_loaded() ? "; kvm_pvm is loaded, which runs no ordinary guest"
					  : "");
		return;
	}
	qemu = vmu_which("qemu-system-x86_64");
	if (!qemu) {
		snprintf(d->accel_reason, sizeof(d->accel_reason),
			 "KVM probe failed: qemu-system-x86_64 is not in PATH");
		return;
	}
	key = probe_key(qemu, probe_kernel);
	cache = vmu_printf("%s/accel-probe", d->state_dir);
	if (!key || !cache) {
		snprintf(d->accel_reason, sizeof(d->accel_reason), "KVM probe failed: %s",
			 strerror(errno ? errno : ENOMEM));
		return;
	}
	if (cache_read(cache, key, &d->accel, why, sizeof(why)) == 0) {
		snprintf(d->accel_reason, sizeof(d->accel_reason), "%s (cached in %s)", why, cache);
		return;
	}
	r = boot_probe(qemu, probe_kernel, why, sizeof(why));
	if (r == 0) {
		d->accel = VM_ACCEL_KVM;
		snprintf(d->accel_reason, sizeof(d->accel_reason),
			 "KVM probe passed: a guest kernel booted under KVM in %lld ms",
			 clock_mono_ms() - t0);
	} else {
		snprintf(d->accel_reason, sizeof(d->accel_reason),
			 "KVM probe failed: KVM_RUN works but %s%s", why,
			 kvm_pvm_loaded() ? " (kvm_pvm is loaded)" : "");
	}
	cache_write(cache, key, d->accel, d->accel_reason);
}

int vm_accel_choose(vm_driver *d, int force_accel, const char *probe_kernel)
{
	const char *env = getenv("SBX_ACCEL");
	long long t0 = clock_mono_ms();

	if (force_accel >= 0 && force_accel < VM_ACCEL_COUNT) {
		d->accel = (enum vm_accel)force_accel;
		snprintf(d->accel_reason, sizeof(d->accel_reason), "forced by configuration");
	} else if (force_accel >= VM_ACCEL_COUNT) {
		return err_set(-EINVAL, "invalid accelerator %d in configuration", force_accel);
	} else if (env && *env) {
		if (!strcmp(env, "tcg"))
			d->accel = VM_ACCEL_TCG;
		else if (!strcmp(env, "kvm"))
			d->accel = VM_ACCEL_KVM;
		else
			return err_set(-EINVAL, "SBX_ACCEL=%s: expected tcg or kvm", env);
		snprintf(d->accel_reason, sizeof(d->accel_reason), "forced by $SBX_ACCEL");
	} else {
		choose_by_probe(d, probe_kernel);
	}
	if (d->accel == VM_ACCEL_TCG)
		d->host_tsc_khz = vm_accel_host_tsc_khz();
	log_info("accelerator: %s (%s) probe_ms=%lld", vm_accel_to_string(d->accel),
		 d->accel_reason, clock_mono_ms() - t0);
	return 0;
}
