/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm_driver.c - opening the VM driver: libvirt's event loop thread, the
 * embedded driver's qemu.conf, the connection, and error messages.
 *
 * libvirt's default event loop runs on one thread per process, started
 * before the first virConnectOpen() and never stopped (see
 * docs/vm-driver.md for why a thread of its own). libvirt errors never reach
 * stderr: a virSetErrorFunc handler swallows them and every failing vm_*
 * call quotes the message in its own, kept per thread (err_set(), base/err.h).
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "base/io.h"
#include "base/err.h"
#include "base/cleanup.h"
#include "base/clock.h"
#include "base/log.h"
#include "host/vm/vm_int.h"

const char *vm_accel_to_string(enum vm_accel a)
{
	switch (a) {
	case VM_ACCEL_TCG:
		return "tcg";
	case VM_ACCEL_KVM:
		return "kvm";
	case VM_ACCEL_COUNT:
		break;
	}
	return "unknown";
}

/* -- errors -------------------------------------------------------------- */

/* The message of the last failed vm_* call of this thread, and libvirt's
 * last error as seen by the error callback (libvirt errors are per thread
 * too, so concurrent callers never read each other's messages). */
static __thread char tls_virt_err[1024];

static void virt_error_cb(void *opaque, virErrorPtr e)
{
	(void)opaque;
	/* Installed so libvirt prints nothing on stderr; the message is
	 * picked up by whoever made the failing call. */
	if (e && e->message)
		snprintf(tls_virt_err, sizeof(tls_virt_err), "%s", e->message);
}

const char *vm_virt_error(void)
{
	virErrorPtr e = virGetLastError();

	if (e && e->message)
		return e->message;
	return tls_virt_err[0] ? tls_virt_err : "unknown error";
}

int vm_virt_error_code(void)
{
	virErrorPtr e = virGetLastError();

	return e ? e->code : VIR_ERR_OK;
}

/* -- libvirt's event loop -------------------------------------------------- */

static pthread_mutex_t loop_lock = PTHREAD_MUTEX_INITIALIZER;
static bool loop_started;

static void *loop_main(void *arg)
{
	sigset_t all;

	(void)arg;
	/* Signals are the embedding program's business, never this thread's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		if (virEventRunDefaultImpl() < 0)
			clock_sleep_ms(10);
	}
	return NULL;
}

/* Once per process, before the first virConnectOpen(): route libvirt's
 * diagnostics to a file instead of our stderr, and start the thread that
 * runs libvirt's default event loop. */
static int loop_start(vm_driver *d)
{
	_cleanup_free_ char *logdir = NULL, *outputs = NULL;
	pthread_t t;
	int r = 0;

	pthread_mutex_lock(&loop_lock);
	if (loop_started)
		goto out;
	/* An operator's own LIBVIRT_LOG_OUTPUTS wins. libvirt reads it in
	 * virInitialize(), once per process. */
	if (!getenv("LIBVIRT_LOG_OUTPUTS")) {
		logdir = vmu_printf("%s/libvirt/log", d->state_dir);
		outputs = logdir ? vmu_printf("3:file:%s/libvirt.log", logdir) : NULL;
		if (outputs && io_mkdir_p(logdir, 0755) == 0)
			setenv("LIBVIRT_LOG_OUTPUTS", outputs, 0);
	}
	virSetErrorFunc(NULL, virt_error_cb);
	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
		r = err_set(-EIO, "cannot start libvirt's event loop: libvirt: %s",
			    vm_virt_error());
		goto out;
	}
	r = -pthread_create(&t, NULL, loop_main, NULL);
	if (r < 0) {
		err_set(r, "cannot start libvirt's event loop thread: %s", strerror(-r));
		goto out;
	}
	pthread_setname_np(t, "sbx-virt-loop");
	pthread_detach(t);
	loop_started = true;
out:
	pthread_mutex_unlock(&loop_lock);
	return r;
}

/* -- opening the driver ---------------------------------------------------- */

static const char qemu_conf[] =
    "# Written by sbx (host/vm/vm.c) every time the VM driver opens: edits are lost.\n"
    "# QEMU runs as root so it can read images and write overlays, sockets and\n"
    "# logs under the sbx state directory without relabelling anything.\n"
    "user = \"root\"\n"
    "group = \"root\"\n"
    "dynamic_ownership = 0\n"
    "remember_owner = 0\n"
    "# no private /dev per QEMU: needs no mount namespace support\n"
    "namespaces = [ ]\n"
    "# no virtlogd daemon: libvirt writes the QEMU log itself\n"
    "stdio_handler = \"file\"\n"
    "# AppArmor/SELinux profiles are global, outside this root: the VM boundary\n"
    "# and QEMU's seccomp sandbox are what confine the guest\n"
    "security_driver = \"none\"\n"
    "seccomp_sandbox = 1\n"
    "set_process_name = 1\n"
    "max_core = 0\n";

static int write_qemu_conf(vm_driver *d)
{
	_cleanup_free_ char *etc = vmu_printf("%s/libvirt/etc", d->state_dir);
	_cleanup_free_ char *conf = vmu_printf("%s/libvirt/etc/qemu.conf", d->state_dir);
	int r;

	if (!etc || !conf)
		return -ENOMEM;
	r = io_mkdir_p(etc, 0755);
	if (r < 0)
		return err_set(r, "cannot create %s: %s", etc, strerror(-r));
	r = vmu_write_file_atomic(conf, qemu_conf, 0644);
	if (r < 0)
		return err_set(r, "cannot write %s: %s", conf, strerror(-r));
	return 0;
}

static int check_qemu_account(void)
{
	/* libvirt's QEMU driver refuses to initialise without this account,
	 * whatever qemu.conf says. */
	if (!getpwnam("libvirt-qemu") || !getgrnam("libvirt-qemu"))
		return err_set(-ENOENT,
			       "the libvirt-qemu user or group does not exist, and libvirt's "
			       "QEMU driver will not start without it: run 'make deps' as root");
	return 0;
}

static bool uri_is_embed(const char *uri)
{
	return !strncmp(uri, "qemu:///embed", strlen("qemu:///embed"));
}

/* libvirt probes a QEMU binary's capabilities (several seconds, cached in
 * STATE/libvirt/cache afterwards) the first time a domain needs them: ask
 * now, so that the first vm_start() is as fast as the others. */
static void warm_capabilities(vm_driver *d)
{
	long long t0 = clock_mono_ms();
	char *caps;

	caps = virConnectGetDomainCapabilities(d->conn, NULL, "x86_64", "microvm",
					       d->accel == VM_ACCEL_KVM ? "kvm" : "qemu", 0);
	if (!caps) {
		log_debug_f(LOG_FIELDS({"uri", d->uri}),
			    "domain capabilities unavailable, ignoring: %s", vm_virt_error());
		return;
	}
	free(caps);
	log_debug_f(LOG_FIELDS({"uri", d->uri}), "domain capabilities ready in %lld ms",
		    clock_mono_ms() - t0);
}

/*
 * A Unix socket path has at most 107 bytes, and libvirt puts QEMU's
 * monitor socket at ROOT/lib/qemu/domain-N-NAME/monitor.sock: a state
 * directory deeper than ≈25 characters already breaks it. So sockets are
 * reached through RUN_DIR/DEV-INODE, a symlink to the state directory,
 * made (or corrected) here; the kernel follows it when binding. Returns
 * the alias, or a copy of real when no alias is needed or possible.
 */
static char *short_root(const struct vm_driver_config *cfg, const char *real)
{
	const char *run = cfg->run_dir ? cfg->run_dir : getenv("SBX_RUN_DIR");
	_cleanup_free_ char *alias = NULL;
	char target[PATH_MAX];
	struct stat st;
	ssize_t n;
	int r;

	if (!run || !*run)
		run = "/run/sbx";
	if (stat(real, &st) < 0)
		return strdup(real);
	alias = vmu_printf("%s/%llx-%llx", run, (unsigned long long)st.st_dev,
			   (unsigned long long)st.st_ino);
	if (!alias)
		return NULL;
	if (strlen(alias) >= strlen(real))
		return strdup(real);
	/* 0711: QEMU under a system libvirtd (its own user) walks through it */
	r = io_mkdir_p(run, 0711);
	if (r < 0) {
		log_debug("cannot create %s (%s): sockets are made under %s", run, strerror(-r),
			  real);
		return strdup(real);
	}
	for (int tries = 0; tries < 3; tries++) {
		n = readlink(alias, target, sizeof(target) - 1);
		if (n >= 0) {
			target[n] = '\0';
			if (!strcmp(target, real))
				return TAKE_PTR(alias);
			/* a state directory that was removed left its inode here */
			if (unlink(alias) < 0 && errno != ENOENT)
				break;
		} else if (errno != ENOENT) {
			break;
		}
		if (symlink(real, alias) == 0)
			return TAKE_PTR(alias);
		if (errno != EEXIST)
			break;
	}
	log_debug("cannot make %s a link to %s (%m): sockets are made under it", alias, real);
	return strdup(real);
}

int vm_driver_open(const struct vm_driver_config *cfg, vm_driver **ret)
{
	_cleanup_free_ vm_driver *d = NULL;
	char real[PATH_MAX];
	int r;

	*ret = NULL;
	if (!cfg || !cfg->state_dir || !*cfg->state_dir)
		return err_set(-EINVAL, "VM driver: no state directory given");
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->console_timer = -1;
	d->stop_watch = -1;
	d->io_error_watch = -1;

	r = io_mkdir_p(cfg->state_dir, 0711);
	if (r < 0)
		return err_set(r, "cannot create state directory %s: %s", cfg->state_dir,
			       strerror(-r));
	if (!realpath(cfg->state_dir, real))
		return err_set(-errno, "cannot resolve state directory %s: %m", cfg->state_dir);
	d->state_dir = strdup(real);
	d->vms_dir = vmu_printf("%s/vms", real);
	d->sock_root = short_root(cfg, real);
	d->uri = cfg->uri ? strdup(cfg->uri)
			  : vmu_printf("qemu:///embed?root=%s/libvirt",
				       d->sock_root ? d->sock_root : "");
	if (!d->state_dir || !d->vms_dir || !d->sock_root || !d->uri) {
		r = -ENOMEM;
		goto fail;
	}
	d->embed = uri_is_embed(d->uri);
	r = io_mkdir_p(d->vms_dir, 0711);
	if (r < 0) {
		err_set(r, "cannot create %s: %s", d->vms_dir, strerror(-r));
		goto fail;
	}
	/* With a libvirtd, QEMU runs as its own user (libvirt-qemu on Debian)
	 * and must be able to walk down to the overlays; it can list nothing. */
	if (!d->embed && (chmod(d->state_dir, 0711) < 0 || chmod(d->vms_dir, 0711) < 0)) {
		r = -errno;
		err_set(r, "cannot make %s searchable for QEMU: %s", d->state_dir, strerror(-r));
		goto fail;
	}

	if (d->embed) {
		d->qemu_log_dir = vmu_printf("%s/libvirt/log/qemu", real);
		if (!d->qemu_log_dir) {
			r = -ENOMEM;
			goto fail;
		}
		r = check_qemu_account();
		if (r < 0)
			goto fail;
		r = write_qemu_conf(d);
		if (r < 0)
			goto fail;
	} else if (!strcmp(d->uri, "qemu:///system") &&
		   access("/var/log/libvirt/qemu", R_OK) == 0) {
		d->qemu_log_dir = strdup("/var/log/libvirt/qemu");
	}

	r = loop_start(d);
	if (r < 0)
		goto fail;

	d->conn = virConnectOpen(d->uri);
	if (!d->conn) {
		r = -EIO;
		err_set(r, "cannot open libvirt connection %s: libvirt: %s", d->uri,
			vm_virt_error());
		goto fail;
	}
	if (!d->embed && virConnectSetKeepAlive(d->conn, 5, 3) < 0)
		log_debug_f(LOG_FIELDS({"uri", d->uri}), "keepalive not supported, ignoring");

	r = vm_accel_choose(d, cfg->force_accel, cfg->probe_kernel);
	if (r < 0)
		goto fail;
	r = vm_console_watch(d, cfg->console_max_bytes);
	if (r < 0)
		goto fail;
	r = vm_io_error_watch(d);
	if (r < 0)
		goto fail;
	warm_capabilities(d);

	*ret = TAKE_PTR(d);
	return 0;

fail:
	vm_driver_free(TAKE_PTR(d));
	return r;
}

vm_driver *vm_driver_free(vm_driver *d)
{
	if (!d)
		return NULL;
	vm_console_unwatch(d);
	vm_unwatch_stops(d);
	vm_io_error_unwatch(d);
	if (d->conn)
		virConnectClose(d->conn);
	for (size_t i = 0; i < VM_MAX_STARTING; i++)
		free(d->starting[i]);
	free(d->uri);
	free(d->state_dir);
	free(d->vms_dir);
	free(d->sock_root);
	free(d->qemu_log_dir);
	pthread_mutex_destroy(&d->lock);
	free(d);
	return NULL;
}

enum vm_accel vm_driver_accel(const vm_driver *d)
{
	return d->accel;
}

const char *vm_driver_accel_reason(const vm_driver *d)
{
	return d->accel_reason;
}

const char *vm_driver_uri(const vm_driver *d)
{
	return d->uri;
}

const char *vm_driver_state_dir(const vm_driver *d)
{
	return d->state_dir;
}
