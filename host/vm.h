/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm.h - the sandbox VM driver: QEMU microvm guests through libvirt.
 *
 * A vm_driver owns one libvirt connection (by default the embedded QEMU
 * driver, qemu:///embed?root=STATE/libvirt, whose event loop this module runs
 * on a thread of its own) and knows which accelerator works here (KVM only if
 * a probe proved it can run a guest, TCG otherwise).
 *
 * A vm is one running guest: a transient libvirt domain, a qcow2 overlay over
 * the image's root disk, the "sbx.agent" virtio-serial channel on a Unix
 * socket and a console log file, all under STATE/vms/NAME/.
 * vm_destroy() removes all of that, also when QEMU or the guest crashed.
 *
 * All functions return 0 or -errno; on failure a message for a person is
 * left in the driver (vm_driver_last_error()).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vm_driver vm_driver;
typedef struct vm vm;

enum vm_accel { VM_ACCEL_TCG, VM_ACCEL_KVM, _VM_ACCEL_MAX };
const char *vm_accel_to_string(enum vm_accel a);

struct vm_driver_config {
	const char *state_dir; /* required: overlays, sockets, logs, embedded driver root */
	const char *uri;       /* NULL: qemu:///embed?root=STATE_DIR/libvirt */
	int force_accel;       /* -1: probe; else an enum vm_accel (also $SBX_ACCEL=kvm|tcg) */
};

int vm_driver_open(const struct vm_driver_config *cfg, vm_driver **ret);
vm_driver *vm_driver_free(vm_driver *d); /* NULL-safe; leaves running VMs alone */
enum vm_accel vm_driver_accel(const vm_driver *d);
const char *vm_driver_last_error(const vm_driver *d);

struct vm_config {
	const char *name;      /* unique per driver: [a-z0-9][a-z0-9-]{0,62} */
	const char *image_dir; /* vmlinuz, initrd.img, rootfs.ext4, manifest.json */
	unsigned vcpus;        /* 0: 1 */
	unsigned memory_mib;   /* 0: 512 */
	uint64_t disk_bytes;   /* virtual size of the overlay; 0: the image's */
	const char *hostname;  /* NULL: name */
};

/* Start a guest. On failure nothing is left behind (no domain, overlay or
 * socket). */
int vm_start(vm_driver *d, const struct vm_config *cfg, vm **ret);
/* Find a VM that is already running (e.g. after a restart of the caller). */
int vm_lookup(vm_driver *d, const char *name, vm **ret);
/* Names of the sbx VMs libvirt knows, running or not. *ret is a NULL-ended
 * array owned by the caller (free each string and the array). */
int vm_list(vm_driver *d, char ***ret);

const char *vm_name(const vm *v);
const char *vm_agent_socket(const vm *v); /* Unix socket of the sbx.agent channel */
const char *vm_console_log(const vm *v);
/* The last lines of the console log, at most len-1 bytes, NUL-terminated. */
int vm_console_tail(const vm *v, char *buf, size_t len);
/* 1 running, 0 not (shut off or crashed), <0 error. */
int vm_is_running(vm *v);

/* Stop QEMU (if it still runs) and remove the domain, overlay, sockets and
 * directory. Idempotent. The handle stays valid until vm_free(). */
int vm_destroy(vm *v);
/* Destroy by name, also for a VM that has no handle (cleanup after crash). */
int vm_destroy_by_name(vm_driver *d, const char *name);
vm *vm_free(vm *v); /* NULL-safe; frees the handle only */
