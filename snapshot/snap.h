/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap.h - snapshots of sandboxes: capture, restore, copy-on-write forks,
 * zygotes, and the on-disk store they live in.
 *
 * On disk, under STATE/snapshots/ (docs/snapshots.md is the normative
 * description):
 *
 *   ID/manifest.json   one per snapshot (format version, kind, parent,
 *                      image, vCPUs/memory/disk size, parts with size and
 *                      SHA-256, creation time, status)
 *   blobs/NAME         the parts: frozen qcow2 disk layers, guest RAM files,
 *                      zstd-compressed migration streams. A blob is shared:
 *                      a child snapshot lists its parent's disk layers too,
 *                      a VM forked from a snapshot maps its RAM file and
 *                      stacks its overlay on its layers.
 *   .lock              flock: exclusive for delete/GC/publish, shared while
 *                      a restore turns a manifest into a VM
 *
 * Reference counting is computed, never stored: a blob is in use while a
 * manifest (any status) or a VM (STATE/vms/NAME/vm.info, see vm.h) names it.
 * snap_delete() removes the manifest and then every blob nobody names any
 * more; a crash in between leaves only garbage that the next snap_gc()
 * frees.
 *
 * Kinds:
 *   SNAP_FS      filesystem only: disk layers over an image's rootfs
 *   SNAP_MEMORY  disk layers + device and memory state of a running guest
 *   SNAP_ZYGOTE  a guest booted to its agent (sbx.init=wait) with no root
 *                disk mounted yet: memory + device state, no disk layers;
 *                every fast start is a fork of one
 *
 * Memory modes (SNAP_MEMORY, SNAP_ZYGOTE):
 *   SNAP_MEM_SHARED_FILE  guest RAM is a plain file (part "ram") that forks
 *                         map privately (copy-on-write, page cache shared
 *                         between forks); part "state" is the migration
 *                         stream without RAM (x-ignore-shared), zstd
 *   SNAP_MEM_STREAM       fallback: part "stream" is the whole migration
 *                         stream, RAM included, zstd; each restore reads it
 *
 * Errors: functions return 0 or -errno and leave a message for a person
 * in err_msg() (per thread), naming the snapshot and, for damaged
 * snapshots, the part ("snapshot 3f2a...: part ram (blobs/ram-9c1e...):
 * SHA-256 mismatch, the file was changed or damaged").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct snap_store snap_store;
typedef struct vm_driver vm_driver;
typedef struct vm vm;
typedef struct agent_client agent_client;

#define SNAP_FORMAT_VERSION 1
#define SNAP_ID_MAX 64	  /* ids are [a-z0-9][a-z0-9-]{0,63} */
#define SNAP_MAX_PARTS 64 /* bound on parts/layers in a manifest */
#define SNAP_MANIFEST_MAX (256 * 1024)

enum snap_kind { SNAP_FS, SNAP_MEMORY, SNAP_ZYGOTE, SNAP_KIND_COUNT };
enum snap_mem_mode { SNAP_MEM_NONE, SNAP_MEM_SHARED_FILE, SNAP_MEM_STREAM, SNAP_MEM_COUNT };
enum snap_status { SNAP_BUILDING, SNAP_READY, SNAP_FAILED, SNAP_STATUS_COUNT };
const char *snap_kind_to_string(enum snap_kind k);	   /* "fs", "memory", "zygote" */
const char *snap_mem_mode_to_string(enum snap_mem_mode m); /* "none", "shared-file", "stream" */
const char *snap_status_to_string(enum snap_status s);	   /* "building", "ready", "failed" */

/* One part of a snapshot: a blob in STATE/snapshots/blobs. */
enum snap_part_role {
	SNAP_PART_LAYER,  /* frozen qcow2 disk layer (layers are listed newest first) */
	SNAP_PART_RAM,	  /* guest RAM file, uncompressed (it is mapped, not read) */
	SNAP_PART_STATE,  /* device state, migration stream without RAM, zstd */
	SNAP_PART_STREAM, /* whole migration stream with RAM, zstd */
	SNAP_PART_ROLE_COUNT
};
const char *snap_part_role_to_string(enum snap_part_role r); /* "layer", "ram", "state", "stream" */

struct snap_part {
	enum snap_part_role role;
	char *blob;	 /* file name inside blobs/, [a-z0-9][a-z0-9.-]* */
	uint64_t size;	 /* bytes of the file as stored */
	char sha256[65]; /* lower-case hex of the file as stored; "" while building */
	bool inherited;	 /* a layer that belongs to the parent snapshot too */
};

struct snap_manifest {
	int format_version;
	char *id;
	char *name;   /* a person's label, may be NULL */
	char *parent; /* id of the snapshot this one's layers stack on; NULL */
	enum snap_kind kind;
	enum snap_mem_mode mem_mode;
	enum snap_status status;
	char *status_message; /* why it failed; NULL */
	char *image_dir;      /* absolute: vmlinux/vmlinuz, initrd.img, rootfs.ext4 */
	char *image_digest;   /* "sha256:..." of the image's kernel+initrd+rootfs
			       * as its manifest.json says; "" if unknown */
	char *source_vm;      /* VM captured (NULL for zygotes and image snapshots) */
	unsigned vcpus;
	unsigned memory_mib;
	uint64_t disk_bytes; /* virtual size of the root disk */
	int64_t created_ms;  /* ms since the epoch */
	struct snap_part *parts;
	size_t n_parts;
};

/* ---- the store (snapshot/store.c) -------------------------------------- */

/* Opens (creating if needed) STATE/snapshots. */
int snap_store_open(const char *state_dir, snap_store **ret);
snap_store *snap_store_free(snap_store *s);	       /* NULL-safe */
const char *snap_store_dir(const snap_store *s);       /* STATE/snapshots */
const char *snap_store_state_dir(const snap_store *s); /* STATE */
/* Absolute path of a blob (malloc'ed). */
char *snap_blob_path(const snap_store *s, const char *blob);
/* A new unique blob name "PREFIX-<16 hex>SUFFIX" (e.g. "layer", ".qcow2"). */
char *snap_blob_new_name(const char *prefix, const char *suffix);
/* A new snapshot id (a UUID in text form). */
char *snap_new_id(void);

/* Manifests. load: parse and check (bounds, names, roles, sizes; untrusted
 * input) STATE/snapshots/ID/manifest.json; -ENOENT if there is none. */
int snap_load(snap_store *s, const char *id, struct snap_manifest **ret);
/* All manifests, sorted by creation time; *ret is an array of n pointers.
 * Manifests that do not load are left out (snap_load() says why). */
int snap_list(snap_store *s, struct snap_manifest ***ret, size_t *ret_n);
void snap_list_free(struct snap_manifest **l, size_t n);
/* Write ID/manifest.json atomically (temp + rename + fsync). */
int snap_save(snap_store *s, const struct snap_manifest *m);
struct snap_manifest *snap_manifest_free(struct snap_manifest *m); /* NULL-safe */
static inline void snap_manifest_freep(struct snap_manifest **m)
{
	snap_manifest_free(*m);
}
#define _cleanup_manifest_ __attribute__((cleanup(snap_manifest_freep)))
struct snap_manifest *snap_manifest_dup(const struct snap_manifest *m);
/* Pure parse/format (no files): the fuzz target is snap_manifest_parse. */
int snap_manifest_parse(const char *json, size_t len, struct snap_manifest **ret, char *err,
			size_t errlen);
char *snap_manifest_format(const struct snap_manifest *m); /* malloc'ed JSON */
/* The part of a role (the first one; layers: use the parts array). */
const struct snap_part *snap_manifest_part(const struct snap_manifest *m, enum snap_part_role role);

/* Locks of the store (flock on STATE/snapshots/.lock, and an rwlock between
 * the threads of this process). Not recursive: while holding one, do not
 * call snap_delete(), snap_gc(), snap_import() or snap_export(), which take
 * it themselves. snap_save() does not lock. */
int snap_lock(snap_store *s, bool exclusive); /* blocks */
void snap_unlock(snap_store *s);

/* Integrity. Checks that every part exists with the recorded size and
 * SHA-256. A part whose file (device, inode, size, mtime, ctime) has not
 * changed since it last verified in this process is not hashed again,
 * unless full is set. progress (may be NULL) gets bytes hashed so far. */
int snap_verify(snap_store *s, const struct snap_manifest *m, bool full,
		void (*progress)(void *ud, uint64_t done, uint64_t total), void *ud);
/* SHA-256 of a file as lower-case hex (and its size). */
int snap_sha256_file(const char *path, char hex[65], uint64_t *ret_size);
/* The digest of an image directory as its manifest.json records it:
 * "sha256:" + SHA-256 of the text "kernel K\ninitrd I\nrootfs R\n", where K,
 * I, R are the sha256 of files.vmlinux (else files.vmlinuz), files.initrd.img
 * and files.rootfs.ext4 of IMAGE/manifest.json. "" (not an error) when the
 * image has no manifest.json or it lacks one of them. The files themselves
 * are not read (sbx-image verify does that). *ret is malloc'ed. */
int snap_image_digest(const char *image_dir, char **ret);

/* Who uses a snapshot: VMs whose vm.info names one of its blobs, and
 * snapshots whose parent chain contains it. NULL-terminated arrays. */
int snap_users(snap_store *s, const char *id, char ***ret_vms, char ***ret_children);
/* Give a guest a new identity over its agent connection: FIXUP with 64
 * fresh bytes of host entropy (wiped after), the host's clock and hostname
 * (a restored or pooled VM must not share its source's). hostname and root
 * may be NULL. */
int snap_fixup(agent_client *c, const char *hostname, const char *root);
void snap_strv_free(char **v);
static inline void snap_strv_freep(char ***v)
{
	snap_strv_free(*v);
}
#define _cleanup_strv_ __attribute__((cleanup(snap_strv_freep)))

/* Directory names under STATE/snapshots that look like snapshot ids,
 * sorted (whether or not their manifest loads; sbx-snapshot lists the ones
 * that do not). NULL-ended, free with snap_strv_free(). */
int snap_scan_ids(snap_store *s, char ***ret);
/* Bytes a file takes on disk (st_blocks * 512); 0 if it is gone. */
uint64_t snap_disk_usage(const char *path);

/* Remove the manifest (-ENOENT if none), then free the blobs nobody uses.
 * Blobs still used by forks or child snapshots stay. */
int snap_delete(snap_store *s, const char *id, uint64_t *ret_freed_bytes);
/* Free every blob that no manifest and no VM names; also removes
 * manifests left in status building by a process that died (dead_building:
 * the caller knows no capture runs, e.g. sbxd at start). */
int snap_gc(snap_store *s, bool dead_building, uint64_t *ret_freed_bytes);

/* One file holding a snapshot and every blob it needs (a tar with zstd,
 * sparse files kept sparse), to move it to another host. import verifies
 * every checksum before the snapshot appears; -EEXIST if the id exists. */
int snap_export(snap_store *s, const char *id, int out_fd);
int snap_import(snap_store *s, int in_fd, char **ret_id);

/* ---- VMs (snapshot/capture.c, restore.c, zygote.c) ------------------------ */

struct snap_capture_opts {
	const char *id;	  /* NULL: a new UUID */
	const char *name; /* label, may be NULL */
	bool include_memory;
	/* Snapshot the VM was restored from (its layers become inherited
	 * parts and it becomes the parent); NULL: none. */
	const char *parent;
	/* Before freezing the disk, the guest must flush its page cache
	 * (sync). The agent channel takes one connection at a time, so a
	 * caller that holds it (sbxd) passes sync_fn, which runs `sync` in the
	 * guest over its connection and returns 0 or -errno; else, with
	 * agent_socket set, capture connects itself; neither: no sync (the
	 * layer is then only crash-consistent). */
	/* Keep the whole migration stream (memory "stream") instead of
	 * converting it to the shared-file form: what a failed conversion
	 * falls back to; forks of such a snapshot do not share memory. */
	bool stream_only;
	int (*sync_fn)(void *ud);
	void *sync_ud;
	const char *agent_socket;
};

/* Capture a running VM. The guest is paused only while its disk layer is
 * frozen and (include_memory) its state is written, then resumes on a new
 * overlay over the frozen layer. A memory capture is converted to the
 * shared-file form when possible (else the stream form; the manifest says
 * which). On failure no manifest or blob is left and the VM runs on. */
int snap_capture(snap_store *s, vm_driver *d, vm *v, const struct snap_capture_opts *o,
		 struct snap_manifest **ret);

struct snap_restore_opts {
	const char *vm_name;  /* required: the new VM's name */
	const char *hostname; /* NULL: vm_name */
	/* SNAP_MEMORY: resume the captured processes (true), or start fresh
	 * on the captured filesystem (false). Ignored for SNAP_FS (always
	 * fresh) and SNAP_ZYGOTE. */
	bool restore_memory;
	unsigned vcpus;	     /* fresh starts only; 0: the snapshot's */
	unsigned memory_mib; /* fresh starts only; 0: the snapshot's */
	uint64_t disk_bytes; /* fresh starts only; 0: the snapshot's */
	/* Fresh starts: fork the zygote (fast) if one exists or can be made;
	 * false: cold boot. */
	bool use_zygote;
};

/* Start a VM from a snapshot: verify the parts it needs, start QEMU with a
 * new overlay on the snapshot's layers, restore memory (forks of one
 * snapshot share its RAM file copy-on-write), then send the agent its
 * FIXUP (fresh entropy, the host's clock, the hostname; for zygote forks
 * the root disk to mount). Returns once the agent answered. On failure
 * nothing is left (no domain, overlay, socket). *ret_how (may be NULL)
 * says what was done: "fork", "stream-restore", "zygote-fork" or
 * "cold-boot". */
int snap_restore(snap_store *s, vm_driver *d, const char *id, const struct snap_restore_opts *o,
		 vm **ret, const char **ret_how);

/* Start a fresh VM from an image, as a fork of the image's zygote when
 * possible (building the zygote by a cold boot the first time), else by a
 * cold boot. o->restore_memory is ignored. */
int snap_start_image(snap_store *s, vm_driver *d, const char *image_dir,
		     const struct snap_restore_opts *o, vm **ret, const char **ret_how);

/* The zygote for an image's kernel+initramfs at this VM shape: its id if
 * it exists (ready), else build it (cold boot with sbx.init=wait, wait for
 * the agent, capture, destroy; tens of seconds under TCG). */
int snap_zygote_ensure(snap_store *s, vm_driver *d, const char *image_dir, unsigned vcpus,
		       unsigned memory_mib, uint64_t disk_bytes, char **ret_id);

/* A snapshot of an image's filesystem as it is (kind fs, no layers): what
 * POST /snapshots builds. */
int snap_from_image(snap_store *s, const char *id, const char *image_dir, const char *name,
		    uint64_t disk_bytes, struct snap_manifest **ret); /* id NULL: a new UUID */
