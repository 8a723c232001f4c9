/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm_int.h - what host/vm*.c share and nothing else includes.
 *
 * Every symbol here is prefixed vm_ (driver internals) or vmu_ (small
 * utilities) so that other host/ modules linked into libsbxhost.a cannot
 * clash with them.
 *
 * Locking: struct vm_driver's mutable fields (the starting set,
 * every vm's destroyed flag) are guarded by vm_driver.lock. The libvirt
 * connection is thread-safe on its own and is used without the lock, so a
 * slow libvirt call never blocks another thread's vm_* call.
 */
#pragma once

#include <libvirt/libvirt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/err.h"
#include "host/vm/vm.h"

#define VM_DOMAIN_PREFIX "sbx-"
#define VM_XMLNS "https://sbx.dev/xmlns/vm/1"
#define VM_XMLNS_PREFIX "sbx"
#define VM_QEMU_XMLNS "http://libvirt.org/schemas/domain/qemu/1.0"
#define VM_ERR_MAX 2048
#define VM_NAME_MAX 63
#define VM_MAX_STARTING 64
#define VM_MAX_VCPUS 64
#define VM_MIN_MEMORY_MIB 64
#define VM_MAX_MEMORY_MIB (1024 * 1024)
#define VM_MAX_LAYERS 64
/* The most XML read back from libvirt (the metadata element is ~300 bytes) */
#define VM_XML_MAX (64 * 1024)

struct vm_driver {
	pthread_mutex_t lock;
	virConnectPtr conn;
	char *uri;
	char *state_dir;    /* absolute, no trailing slash */
	char *vms_dir;	    /* STATE/vms */
	char *sock_root;    /* short alias of state_dir for Unix socket paths (or state_dir) */
	char *qemu_log_dir; /* where libvirt writes NAME.log; NULL if not readable here */
	bool embed;	    /* qemu:///embed: QEMU runs as root, files stay ours */
	enum vm_accel accel;
	char accel_reason[512];
	unsigned long host_tsc_khz; /* passed to TCG guests; 0: unknown */
	int console_timer;	    /* libvirt event loop timer id, -1: none */
	int stop_watch;		    /* libvirt domain event callback id, -1: none */
	int io_error_watch;	    /* the same, for disk I/O errors (host disk full) */
	/* guarded by lock */
	char *starting[VM_MAX_STARTING]; /* names between mkdir and domain creation */
};

struct vm {
	vm_driver *d;
	virDomainPtr dom; /* bound to the domain's UUID, not its name */
	char *name;
	char *dir;
	char *agent_sock;
	char *bench_sock;
	char *console_log;
	bool destroyed; /* guarded by d->lock */
};

/* The message and code (VIR_ERR_*) of this thread's last libvirt error. */
const char *vm_virt_error(void);
int vm_virt_error_code(void);

/* vm_accel.c: decides d->accel and d->accel_reason. Never fails: anything
 * that does not prove KVM works means TCG. */
int vm_accel_choose(vm_driver *d, int force_accel, const char *probe_kernel);
/* KVM_CREATE_VM + KVM_RUN of a few real-mode instructions in a child
 * process; 0 if the guest ran them, else -errno with a reason in why. */
int vm_accel_kvm_run_test(char *why, size_t len);
/* The host TSC frequency in kHz (what a TCG guest's TSC ticks at), 0 if
 * unknown. */
unsigned long vm_accel_host_tsc_khz(void);

/* vm_xml.c */
struct vm_xml_params {
	const char *domain_name; /* sbx-NAME */
	const char *name;
	const char *state_dir;
	const char *vm_dir;
	const char *sock_dir; /* vm_dir through a short alias: where agent.sock is */
	const char *image_dir;
	const char *kernel; /* IMAGE/vmlinux if present (PVH boot), else IMAGE/vmlinuz */
	const char *hostname;
	enum vm_accel accel;
	unsigned long tsc_khz;
	unsigned vcpus;
	unsigned memory_mib;
	unsigned tb_cache_mib;
	bool bench_channel;
	const char *disk;		/* the overlay the guest writes (NULL: VM_DIR/disk.qcow2) */
	const char *const *disk_layers; /* frozen qcow2 layers under it, newest first */
	bool disk_blank;		/* no backing at all */
	const char *ram_file;		/* NULL: anonymous RAM */
	bool ram_shared;
	bool init_wait;
	bool incoming; /* -incoming defer */
};
/* The domain XML, malloc'ed; NULL on OOM. Built with libxml2's tree API,
 * which escapes every interpolated string; callers validate names and
 * paths before. */
char *vm_xml_domain(const struct vm_xml_params *p);
/* The disk-only snapshot XML that switches vda to the qcow2 overlay (file
 * already created, reused as is); malloc'ed, NULL on OOM. */
char *vm_xml_disk_snapshot(const char *overlay);
/* The kernel command line used for guests (malloc'ed, NULL on OOM). */
char *vm_xml_cmdline(const struct vm_xml_params *p);
/* The value of attribute attr (no namespace) of the root element of xml,
 * parsed by libxml2 (no network, no entities, no DTD, at most VM_XML_MAX
 * bytes); -ENOENT if absent, -EBADMSG (message in err_msg()) if malformed,
 * -EMSGSIZE if too long, -ENOMEM. */
int vm_xml_get_attr(const char *xml, const char *attr, char **ret);

/* vm_snap.c: a QMP command through libvirt (fd passed along if >= 0).
 * *ret (may be NULL) gets the "return" member as compact JSON text. A QMP
 * error becomes -EIO with QEMU's description in err_msg(). */
int vm_qmp(vm *v, const char *cmd, int fd, char **ret);
/* Run a migration (outgoing: "migrate", incoming: "migrate-incoming") on
 * fd and wait until QEMU says it completed. */
int vm_migrate_fd(vm *v, bool incoming, int fd, bool ignore_shared);
/* Write STATE/vms/NAME/vm.info atomically. disk: the current overlay. */
int vm_info_write(const char *dir, const struct vm_info *i, const char *disk);
/* Current overlay path from vm.info (malloc'ed), NULL if absent. */
char *vm_info_disk(const char *dir);
/* Parse the text of a vm.info (JSON, or the old line format when it does
 * not start with '{'). *ret_disk (may be NULL) gets the current overlay,
 * NULL if the file has none. -EBADMSG with the field and the reason in
 * err_msg() (prefixed by what), -ENOMEM. */
int vm_info_parse(const char *what, const char *text, size_t len, struct vm_info *ret,
		  char **ret_disk);

/* vm_events.c */
void vm_unwatch_stops(vm_driver *d);
/* Log every VM's disk I/O errors (rate-limited): "vm=NAME host disk full:
 * ..." for ENOSPC. The guest gets the error (error_policy='report'). */
int vm_io_error_watch(vm_driver *d);
void vm_io_error_unwatch(vm_driver *d);

/* vm_console.c: keep the console logs under STATE/vms/ small. */
int vm_console_watch(vm_driver *d, uint64_t max_bytes);
void vm_console_unwatch(vm_driver *d);
/* If path is larger than max_bytes, keep its last max_bytes/2 (from a line
 * start) behind a line saying how much was dropped. 1 if trimmed, 0 if not,
 * -errno. */
int vm_console_trim(const char *path, uint64_t max_bytes);

/* vm_util.c */
struct vmu_buf {
	char *s;
	size_t len, cap;
	bool oom;
};
__attribute__((format(printf, 2, 3))) void vmu_buf_printf(struct vmu_buf *b, const char *fmt, ...);
char *vmu_buf_steal(struct vmu_buf *b); /* NULL if an append ran out of memory */

__attribute__((format(printf, 1, 2))) char *vmu_printf(const char *fmt, ...);
int vmu_rm_rf(const char *path);
int vmu_write_file_atomic(const char *path, const char *data, mode_t mode);
int vmu_read_file(const char *path, size_t max, char **ret);
/* The end of a text file, at most max bytes, starting at a line boundary. */
int vmu_read_tail(const char *path, size_t max, char **ret);
/* Run argv (looked up in PATH), stdin/stdout on /dev/null. The child's
 * stderr (its output, not an error message of ours) is captured into out,
 * at most outlen-1 bytes, NUL-terminated, trailing blanks trimmed. Killed
 * after timeout_ms. Returns the exit status (>= 0, 128+sig if signalled) or
 * -errno if it could not run. */
int vmu_spawn(char *const argv[], int timeout_ms, char *out, size_t outlen);
/* Find an executable in PATH; malloc'ed absolute path or NULL. */
char *vmu_which(const char *prog);
