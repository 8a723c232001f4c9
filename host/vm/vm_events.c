/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm_events.c - telling the caller when a VM's QEMU went away on its own.
 *
 * libvirt's lifecycle events (on its event loop thread) say when a domain
 * stopped and why; a stop that vm_destroy() caused is not reported. A
 * guest kernel panic (pvpanic: CRASHED, then STOPPED) is one stop, whose
 * reason quotes the panic from the guest's console. Only domains named
 * sbx-NAME whose directory is under this driver's STATE/vms count (the
 * metadata of a stopped transient domain can no longer be read).
 *
 * Disk I/O errors are only logged: every disk has error_policy='report'
 * (vm_xml.c), so QEMU hands the error to the guest and keeps running; the
 * host's log says which VM hit it, and "host disk full" for ENOSPC.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <libvirt/virterror.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "base/clock.h"
#include "base/log.h"
#include "host/vm/vm_int.h"

#define CRASHED_KEPT 16

struct stop_watch {
	char *vms_dir;
	vm_stopped_fn fn;
	void *ud;
	/* VMs reported at libvirt's CRASHED event, whose STOPPED (on_crash
	 * destroy) is the same stop: a ring of names */
	char crashed[CRASHED_KEPT][VM_NAME_MAX + 1];
	unsigned next_crashed;
};

static const char *stop_reason(int event, int detail)
{
	if (event == VIR_DOMAIN_EVENT_CRASHED)
		return "the guest kernel crashed (panic)";
	switch (detail) {
	case VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN:
		return "the guest powered off";
	case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
		return "the guest kernel crashed (panic)";
	case VIR_DOMAIN_EVENT_STOPPED_FAILED:
		return "QEMU exited unexpectedly (killed or crashed)";
	case VIR_DOMAIN_EVENT_STOPPED_MIGRATED:
	case VIR_DOMAIN_EVENT_STOPPED_SAVED:
	case VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT:
		return "libvirt stopped it (saved or migrated)";
	default:
		return "QEMU stopped";
	}
}

#define PANIC_TAIL_BYTES (16 * 1024)
#define PANIC_LINE_MAX 200

/* The rest of the last line of text that contains marker, from marker on,
 * kept to printable ASCII and PANIC_LINE_MAX bytes; "" if none. */
static void last_line_from(const char *text, const char *marker, char *buf, size_t len)
{
	const char *p, *hit = NULL;
	size_t n = 0;

	for (p = text; (p = strstr(p, marker)); p++)
		hit = p;
	for (p = hit; p && *p && *p != '\n' && n + 1 < len && n < PANIC_LINE_MAX; p++)
		buf[n++] = *p >= 0x20 && *p < 0x7f ? *p : '?';
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = '\0';
}

/* What the guest said when its kernel panicked, from the end of its
 * console: the kernel's "Kernel panic - not syncing: ..." line (printed
 * before the kernel tells pvpanic), and when PID 1 gave up (agent_fatal()
 * exits, the kernel panics with "Attempted to kill init!") the agent's
 * "fatal: ..." line before it. The console is the guest's to write: this
 * is its word, not ours. */
static void panic_words(const char *vm_dir, char *buf, size_t len)
{
	_cleanup_free_ char *path = vmu_printf("%s/console.log", vm_dir), *tail = NULL;
	char kernel[PANIC_LINE_MAX + 1], agent[PANIC_LINE_MAX + 1];

	buf[0] = '\0';
	if (!path || vmu_read_tail(path, PANIC_TAIL_BYTES, &tail) < 0)
		return;
	last_line_from(tail, "Kernel panic - not syncing: ", kernel, sizeof(kernel));
	last_line_from(tail, "sbx-agent: error: fatal: ", agent, sizeof(agent));
	if (kernel[0] && agent[0])
		snprintf(buf, len, ": %s, after %s", kernel, agent);
	else if (kernel[0] || agent[0])
		snprintf(buf, len, ": %s", kernel[0] ? kernel : agent);
}

static bool take_crashed(struct stop_watch *w, const char *name)
{
	for (unsigned i = 0; i < CRASHED_KEPT; i++)
		if (!strcmp(w->crashed[i], name)) {
			w->crashed[i][0] = '\0';
			return true;
		}
	return false;
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	struct stop_watch *w = opaque;
	const char *dn = virDomainGetName(dom);
	const char *name, *why;
	char dir[4096], words[2 * PANIC_LINE_MAX + 16], reason[sizeof(words) + 64];
	struct stat st;

	(void)conn;
	log_debug_f(LOG_FIELDS({"domain", dn ? dn : "?"}), "lifecycle event=%d detail=%d", event,
		    detail);
	if (event != VIR_DOMAIN_EVENT_STOPPED && event != VIR_DOMAIN_EVENT_CRASHED)
		return 0;
	if (event == VIR_DOMAIN_EVENT_STOPPED && detail == VIR_DOMAIN_EVENT_STOPPED_DESTROYED)
		return 0; /* vm_destroy() (or another libvirt client's destroy) */
	if (!dn || strncmp(dn, VM_DOMAIN_PREFIX, strlen(VM_DOMAIN_PREFIX)))
		return 0;
	name = dn + strlen(VM_DOMAIN_PREFIX);
	if (!vm_name_is_valid(name))
		return 0;
	snprintf(dir, sizeof(dir), "%s/%s", w->vms_dir, name);
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	/* A panic (pvpanic) is CRASHED, then STOPPED when libvirt destroys
	 * the VM (on_crash destroy): one stop, reported at the first */
	if (event == VIR_DOMAIN_EVENT_STOPPED && detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED &&
	    take_crashed(w, name))
		return 0;
	if (event == VIR_DOMAIN_EVENT_CRASHED) {
		snprintf(w->crashed[w->next_crashed], sizeof(w->crashed[0]), "%s", name);
		w->next_crashed = (w->next_crashed + 1) % CRASHED_KEPT;
	}
	why = stop_reason(event, detail);
	if (event == VIR_DOMAIN_EVENT_CRASHED || detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED) {
		panic_words(dir, words, sizeof(words));
		snprintf(reason, sizeof(reason), "%s%s", why, words);
		why = reason;
	}
	log_info_f(LOG_FIELDS({"vm", name}), "stopped on its own: %s", why);
	w->fn(w->ud, name, why);
	return 0;
}

static void watch_free(void *opaque)
{
	struct stop_watch *w = opaque;

	free(w->vms_dir);
	free(w);
}

int vm_driver_watch_stops(vm_driver *d, vm_stopped_fn fn, void *ud)
{
	struct stop_watch *w;

	if (!fn)
		return err_set(-EINVAL, "no function to report stopped VMs to");
	if (d->stop_watch >= 0)
		return err_set(-EBUSY, "stopped VMs are already reported to someone");
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->vms_dir = strdup(d->vms_dir);
	w->fn = fn;
	w->ud = ud;
	if (!w->vms_dir) {
		watch_free(w);
		return -ENOMEM;
	}
	/* libvirt owns w from here: watch_free runs when the callback goes */
	d->stop_watch = virConnectDomainEventRegisterAny(
	    d->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle),
	    w, watch_free);
	if (d->stop_watch < 0)
		return err_set(-EIO, "cannot watch VM lifecycle events: libvirt: %s",
			       vm_virt_error());
	return 0;
}

void vm_unwatch_stops(vm_driver *d)
{
	if (d->stop_watch >= 0 && d->conn)
		(void)virConnectDomainEventDeregisterAny(d->conn, d->stop_watch);
	d->stop_watch = -1;
}

void vm_driver_unwatch_stops(vm_driver *d)
{
	if (d)
		vm_unwatch_stops(d);
}

/* -- disk I/O errors ------------------------------------------------------- */

#define IO_ERROR_LOG_EVERY_MS 10000
#define IO_ERROR_FULL_BYTES (64ULL << 20) /* less free than this after a failed write: full */

struct io_watch {
	char last[VM_NAME_MAX + 1]; /* the VM logged last */
	long long last_ms;
	unsigned long suppressed;
};

/* Whether an I/O error on path was the host's file system running full.
 * libvirt 9.0 passes no reason with the "report" action (QEMU's nospace
 * flag is lost on the way), so look: a failed write leaves next to nothing
 * free (root's view: QEMU under the embedded driver runs as root). */
static bool host_fs_full(const char *path, const char *reason, unsigned long long *ret_free)
{
	char dir[4096];
	char *slash;
	struct statvfs sv;

	*ret_free = 0;
	if (reason && (!strcmp(reason, "enospc") || strstr(reason, "No space")))
		return true;
	if (!path || snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return false;
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	if (statvfs(dir, &sv) < 0)
		return false;
	*ret_free = (unsigned long long)sv.f_bfree * sv.f_frsize;
	return *ret_free < IO_ERROR_FULL_BYTES;
}

static int on_io_error(virConnectPtr conn, virDomainPtr dom, const char *src_path,
		       const char *dev_alias, int action, const char *reason, void *opaque)
{
	struct io_watch *w = opaque;
	const char *dn = virDomainGetName(dom);
	const char *name = dn && !strncmp(dn, VM_DOMAIN_PREFIX, strlen(VM_DOMAIN_PREFIX))
			       ? dn + strlen(VM_DOMAIN_PREFIX)
			   : dn ? dn
				: "?";
	const char *paused = action == VIR_DOMAIN_EVENT_IO_ERROR_PAUSE ? " and QEMU paused it" : "";
	const char *more = w->suppressed ? " (errors since the last report were not logged)" : "";
	long long now = clock_mono_ms();
	unsigned long long avail;

	(void)conn, (void)dev_alias;
	/* a guest writing on a full host disk fails many writes a second */
	if (!strcmp(w->last, name) && now - w->last_ms < IO_ERROR_LOG_EVERY_MS) {
		w->suppressed++;
		return 0;
	}
	if (host_fs_full(src_path, reason, &avail))
		log_error_f(LOG_FIELDS({"vm", name}),
			    "host disk full: a write to its disk %s failed (%llu KiB left on the "
			    "host's file system); the guest got an I/O error%s%s",
			    src_path ? src_path : "?", avail >> 10, paused, more);
	else
		log_error_f(LOG_FIELDS({"vm", name}),
			    "disk I/O error on %s (%s); the guest got an I/O error%s%s",
			    src_path ? src_path : "?",
			    reason && *reason ? reason : "no reason given", paused, more);
	snprintf(w->last, sizeof(w->last), "%s", name);
	w->last_ms = now;
	w->suppressed = 0;
	return 0;
}

int vm_io_error_watch(vm_driver *d)
{
	struct io_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	d->io_error_watch =
	    virConnectDomainEventRegisterAny(d->conn, NULL, VIR_DOMAIN_EVENT_ID_IO_ERROR_REASON,
					     VIR_DOMAIN_EVENT_CALLBACK(on_io_error), w, free);
	if (d->io_error_watch < 0)
		return err_set(-EIO, "cannot watch VM disk errors: libvirt: %s", vm_virt_error());
	return 0;
}

void vm_io_error_unwatch(vm_driver *d)
{
	if (d->io_error_watch >= 0 && d->conn)
		(void)virConnectDomainEventDeregisterAny(d->conn, d->io_error_watch);
	d->io_error_watch = -1;
}
