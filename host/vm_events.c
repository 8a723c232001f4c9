/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm_events.c - telling the caller when a VM's QEMU went away on its own.
 *
 * libvirt's lifecycle events (on its event loop thread) say when a domain
 * stopped and why; a stop that vm_destroy() caused is not reported. Only
 * domains named sbx-NAME whose directory is under this driver's
 * STATE/vms count (the metadata of a stopped transient domain can no
 * longer be read).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libvirt/virterror.h>

#include "cleanup.h"
#include "log.h"
#include "vm_internal.h"

struct stop_watch {
	char *vms_dir;
	vm_stopped_fn fn;
	void *ud;
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

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	struct stop_watch *w = opaque;
	const char *dn = virDomainGetName(dom);
	const char *name;
	char dir[4096];
	struct stat st;

	(void)conn;
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
	log_info("vm=%s stopped on its own: %s", name, stop_reason(event, detail));
	w->fn(w->ud, name, stop_reason(event, detail));
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
		return vm_fail(d, -EINVAL, "no function to report stopped VMs to");
	if (d->stop_watch >= 0)
		return vm_fail(d, -EBUSY, "stopped VMs are already reported to someone");
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
		return vm_fail(d, -EIO, "cannot watch VM lifecycle events: libvirt: %s",
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
