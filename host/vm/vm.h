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
 * left in this thread's error slot (err_msg(), base/err.h).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct vm_driver vm_driver;
typedef struct vm vm;

enum vm_accel { VM_ACCEL_TCG, VM_ACCEL_KVM, VM_ACCEL_COUNT };
const char *vm_accel_to_string(enum vm_accel a);

struct vm_driver_config {
	const char *state_dir; /* required: overlays, sockets, logs, embedded driver root */
	const char *uri;       /* NULL: qemu:///embed?root=STATE_DIR/libvirt */
	int force_accel;       /* -1: probe; else an enum vm_accel (also $SBX_ACCEL=kvm|tcg) */
	/* A guest kernel (an image's vmlinuz) for the KVM boot probe. NULL: KVM
	 * cannot be proven to work, so TCG unless forced. */
	const char *probe_kernel;
	/* Cap on each VM's console log (the guest writes it; root in a guest
	 * could otherwise fill the host's disk): checked every 5 s, a log
	 * past the cap keeps its last half. 0: VM_CONSOLE_MAX_DEFAULT. */
	uint64_t console_max_bytes;
	/* Where the short alias of the state directory is made (a symlink
	 * RUN_DIR/DEV-INODE -> STATE_DIR): libvirt's monitor sockets and the
	 * agent sockets are reached through it, as a Unix socket path has at
	 * most 107 bytes. NULL: $SBX_RUN_DIR, else /run/sbx. If it cannot be
	 * made, the state directory is used as it is. */
	const char *run_dir;
};
#define VM_CONSOLE_MAX_DEFAULT (1024 * 1024)

/* Opens libvirt (starting libvirt's event loop thread on first use) and
 * chooses the accelerator, logging "accelerator: tcg (reason)" at info level.
 * On failure, err_msg() has the message.
 * Embedded driver (the default): a process can embed one state directory
 * only, and keeps it locked until it exits (libvirt never unloads the
 * driver; reopening it in the same process is fine); meanwhile another
 * process cannot open the same state directory. See docs/vm-driver.md. */
int vm_driver_open(const struct vm_driver_config *cfg, vm_driver **ret);
vm_driver *vm_driver_free(vm_driver *d); /* NULL-safe; leaves running VMs alone */
enum vm_accel vm_driver_accel(const vm_driver *d);
/* Why that accelerator, e.g. "KVM probe failed: ..." or "forced by $SBX_ACCEL". */
const char *vm_driver_accel_reason(const vm_driver *d);
const char *vm_driver_uri(const vm_driver *d);
const char *vm_driver_state_dir(const vm_driver *d); /* absolute */
bool vm_name_is_valid(const char *name);

struct vm_config {
	const char *name;      /* unique per driver: [a-z0-9][a-z0-9-]{0,62} */
	const char *image_dir; /* vmlinuz, initrd.img, rootfs.ext4, manifest.json */
	unsigned vcpus;	       /* 0: 1 */
	unsigned memory_mib;   /* 0: 512 */
	uint64_t disk_bytes;   /* virtual size of the overlay; 0: the image's */
	const char *hostname;  /* NULL: name */
	/* A second, raw virtio-serial port "sbx.bench" on STATE/vms/NAME/bench.sock,
	 * for make bench to measure the channel without the agent. */
	bool bench_channel;

	/* Root disk. Default: a new qcow2 overlay over IMAGE/rootfs.ext4.
	 * disk_layers: frozen qcow2 layers (absolute paths, newest first, NULL
	 * ended), each backed by the next and the last by IMAGE/rootfs.ext4;
	 * the new overlay goes on top of disk_layers[0].
	 * disk_blank: a blank qcow2 of disk_bytes instead (zygotes). */
	const char *const *disk_layers;
	bool disk_blank;
	/* Guest RAM in a file (memory-backend-file) instead of anonymous
	 * memory: shared (writes go to the file; what a zygote boots on) or a
	 * private copy-on-write mapping of it (forks). The file must exist
	 * with the guest's memory size unless shared. */
	const char *ram_file;
	bool ram_shared;
	/* Put "sbx.init=wait" on the kernel command line: the agent serves
	 * from the initramfs until a FIXUP names the root disk. */
	bool init_wait;
	/* Restore from a QEMU migration stream instead of booting: QEMU starts
	 * with -incoming defer and reads the stream from incoming_fd (read to
	 * its end, not closed). incoming_ignore_shared: the stream was saved
	 * with x-ignore-shared (RAM comes from ram_file). */
	bool incoming;
	int incoming_fd;
	bool incoming_ignore_shared;
	/* Leave the guest paused after the restore (vm_resume() runs it). */
	bool stay_paused;
};

/* What a VM was started with, from STATE/vms/NAME/vm.info (a JSON object:
 * version, image, vcpus, memory_mib, disk_bytes, disk, ram_file, ram_shared,
 * layers (newest first); files of older versions of sbx, "key value" lines,
 * are read too). The snapshot store reads it to know which blobs a VM uses. */
struct vm_info {
	char *image_dir;
	unsigned vcpus;
	unsigned memory_mib;
	uint64_t disk_bytes;
	char *ram_file; /* NULL: anonymous memory */
	bool ram_shared;
	char **layers; /* NULL-ended, newest first; may be empty */
};
/* Every field is checked (type and range): a damaged file is -EBADMSG (a
 * newer format -EPROTONOSUPPORT) with a message naming the file and the
 * field in err_msg(); a missing one -ENOENT. */
int vm_info_read(const char *path, struct vm_info *ret);
void vm_info_release(struct vm_info *i);

/* Start a guest and return once QEMU runs and the agent socket exists (the
 * guest is still booting). The kernel is IMAGE/vmlinux if present (PVH boot,
 * seconds faster under TCG), else IMAGE/vmlinuz. -EEXIST if a VM of that name
 * exists, -EINVAL for a bad name or config, -ENOENT for a missing image file.
 * On failure nothing is left behind (no domain, overlay, socket, directory
 * or QEMU log) and the message quotes libvirt and QEMU's log. */
int vm_start(vm_driver *d, const struct vm_config *cfg, vm **ret);
/* Find a VM that is already running (e.g. after a restart of the caller):
 * -ENOENT if there is none, -EPERM if sbx-NAME is not a VM of this state
 * directory. */
int vm_lookup(vm_driver *d, const char *name, vm **ret);
/* Names of the sbx VMs libvirt knows, running or not. *ret is a NULL-ended
 * array owned by the caller (free each string and the array). */
int vm_list(vm_driver *d, char ***ret);
/* Names of the directories STATE/vms/NAME that have no VM (no domain):
 * left by a process killed while it started or destroyed one. Same
 * ownership as vm_list(); vm_destroy_by_name() removes them. */
int vm_list_stale(vm_driver *d, char ***ret);

const char *vm_name(const vm *v);
const char *vm_agent_socket(const vm *v); /* Unix socket of the sbx.agent channel */
const char *vm_console_log(const vm *v);
/* Socket of the "sbx.bench" port (only meaningful with bench_channel). */
const char *vm_bench_socket(const vm *v);
const char *vm_dir(const vm *v); /* STATE/vms/NAME */
/* The last lines of the console log, at most len-1 bytes, NUL-terminated. */
int vm_console_tail(const vm *v, char *buf, size_t len);
/* 1 running, 0 not (shut off or crashed), <0 error. */
int vm_is_running(vm *v);
/* The pid of the VM's QEMU process (local URIs only), or -errno. */
int vm_qemu_pid(vm *v);

/* Stop QEMU (if it still runs) and remove the domain, overlay, sockets and
 * directory. Idempotent. The handle stays valid until vm_free(). */
int vm_destroy(vm *v);
/* Destroy by name, also for a VM that has no handle (cleanup after crash). */
int vm_destroy_by_name(vm_driver *d, const char *name);
/* -- lifecycle events (vm_events.c) ---------------------------------------
 * A VM whose QEMU goes away without vm_destroy() (killed, crashed, the
 * guest powered off or panicked) is reported once, from libvirt's event
 * loop thread: fn must be quick and thread-safe. reason is for a person,
 * e.g. "QEMU exited unexpectedly (killed or crashed)". The VM's directory
 * is left for the caller's vm_destroy(). One watcher per driver. */
typedef void (*vm_stopped_fn)(void *ud, const char *name, const char *reason);
int vm_driver_watch_stops(vm_driver *d, vm_stopped_fn fn, void *ud);
/* No more reports (before freeing what ud points to). NULL-safe. */
void vm_driver_unwatch_stops(vm_driver *d);

/* -- snapshots (vm_snap.c) ------------------------------------------------
 * The primitives snapshot/ builds on. Guest paused = vCPUs stopped. */
int vm_pause(vm *v);
int vm_resume(vm *v);
/* A VM left mid-capture by a process that died (a migration still copying
 * memory, waiting at pre-switchover, or completed, or a disk freeze):
 * cancel any migration and resume the guest. 1: it was recovered and runs;
 * 0: nothing to do; <0: error (message in err_msg()). */
int vm_recover_paused(vm *v);
int vm_get_info(vm *v, struct vm_info *ret); /* vm_info_release() it */
/* Freeze the root disk: the current overlay becomes the read-only file
 * layer_path (same filesystem; QEMU flushes it first) and the VM goes on
 * writing a new overlay on top of it; vm.info lists the new layer. The
 * guest may be running (the result is crash-consistent) or paused. */
int vm_freeze_disk(vm *v, const char *layer_path);
/* Write the QEMU migration stream to fd (not closed). The guest must be
 * paused and stays paused. ignore_shared: leave out RAM that lives in a
 * shared file (x-ignore-shared). */
int vm_save_state(vm *v, int fd, bool ignore_shared);
/* Capture a running guest: a live migration into fd (RAM included) that
 * stops the guest only at its end, freezes the disk into layer_path at that
 * instant (as vm_freeze_disk()) and resumes the guest. *ret_paused_ms
 * (may be NULL) gets how long the guest stood still. */
int vm_capture_live(vm *v, const char *layer_path, int fd, long long *ret_paused_ms);
/* Tell the guest its disk changed size (after a restore onto a disk of
 * another size than the snapshot's). */
int vm_disk_resize(vm *v, uint64_t bytes);

vm *vm_free(vm *v); /* NULL-safe; frees the handle only */
static inline void vm_freep(vm **v)
{
	vm_free(*v);
}
#define _cleanup_vm_ __attribute__((cleanup(vm_freep)))
void vm_strv_free(char **names); /* frees vm_list()'s result; NULL-safe */
