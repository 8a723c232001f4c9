/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mgr.h - the sandbox manager: boots, adopts and deletes the VMs
 * behind sandbox rows, captures them into snapshots and builds and deletes
 * snapshots, on worker threads, so that the HTTP service thread never
 * blocks on libvirt or a booting guest.
 *
 * Ownership: the store row is the truth; the manager only remembers the
 * sandboxes and snapshots that have a job running (boot, adoption,
 * deletion, capture; build or deletion of a snapshot), with the requests
 * waiting for that job ("waiters", by HTTP request id). When a job
 * settles, the manager updates the row (under its lock, so a delete
 * arriving at that moment cannot be overwritten) and calls notify() once
 * per waiter, from the worker thread.
 *
 * It also keeps the prewarmed pools (pool.c): per source (an image
 * or a snapshot) N started VMs whose agent answered and that never ran a
 * command, filled one VM at a time by a thread of their own. Pool VMs have
 * no sandbox row, so a restarted sbxd destroys them (never trusts them).
 *
 * All functions but notify run on the caller's thread and return quickly;
 * they return 0 or -errno.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sbxd/store/store.h"

typedef struct sbxd_mgr sbxd_mgr;

struct sbxd_vm_spec {
	const char *name; /* the VM's name */
	const char *image_dir;
	const char *hostname; /* the sandbox name */
	unsigned vcpus;
	unsigned mem_mib;
	uint64_t disk_bytes;
	/* NULL: a fresh start of image_dir (fast: a fork of the image's
	 * zygote, else a cold boot). Else start from this snapshot. */
	const char *snapshot_id;
	/* snapshot_id of a memory snapshot: resume its processes (true) or
	 * start fresh on its filesystem (false). */
	bool restore_memory;
};

/* What a snapshot's manifest says, for its API row. */
struct sbxd_snap_info {
	char kind[16];	/* "fs", "memory" ("zygote" is never shown) */
	bool building;	/* the manifest says building (a capture runs) */
	unsigned vcpus; /* 0: unknown (fs snapshots of an image) */
	unsigned mem_mib;
	uint64_t disk_bytes;
	uint64_t memory_bytes; /* bytes of the memory parts (ram, state, stream) */
	char image_dir[4096];
	char image_digest[80]; /* "sha256:..." or "" */
};

/* A capture of a running VM (the VM goes on running). */
struct sbxd_snap_capture {
	const char *id;	  /* the new snapshot's id (its row is written first) */
	const char *name; /* label */
	bool include_memory;
	const char *parent; /* the snapshot the VM started from, or NULL */
	/* Flush the guest's file systems first over the VM's agent channel
	 * (free: its holder let go of it). false: the caller synced. */
	bool sync_guest;
};

/* The VM backend (backend.c over vm.h, agent_client.h and snapshot/snap.h;
 * a fake in the unit tests). Blocking calls, made from worker threads and
 * from the reconcile functions; -errno with a message for a person in
 * err_msg() (base/err.h). */
struct sbxd_vm_ops {
	/* Start a VM; *ret_how (may be NULL) says how: "zygote-fork",
	 * "cold-boot", "fork", "stream-restore" (a static string). */
	int (*start)(void *ctx, const struct sbxd_vm_spec *spec, const char **ret_how);
	/* Until the VM's agent answers a PING, at most timeout_ms. cancelled()
	 * is polled (may be NULL); when it says true, give up with
	 * -ECANCELED. */
	int (*wait_agent)(void *ctx, const char *vm_name, int timeout_ms,
			  bool (*cancelled)(void *cud), void *cud);
	/* Idempotent: 0 also when there is no such VM. */
	int (*destroy)(void *ctx, const char *vm_name);
	/* Names of the VMs that exist; NULL-terminated, freed with free_list. */
	int (*list)(void *ctx, char ***ret_names);
	void (*free_list)(char **names);
	/* Optional: names of VM directories without a VM (what a process
	 * killed while it made or removed a VM leaves); freed with free_list. */
	int (*list_stale)(void *ctx, char ***ret_names);
	int (*is_running)(void *ctx, const char *vm_name); /* 1, 0 or -errno */
	/* "unix:PATH" (or "vsock:CID:PORT") of the VM's agent channel. */
	int (*agent_address)(void *ctx, const char *vm_name, char *buf, size_t len);
	/* Give a running VM's guest a new identity: FIXUP with fresh entropy,
	 * the host's clock and hostname (a pool VM handed to a sandbox). */
	int (*fixup)(void *ctx, const char *vm_name, const char *hostname);

	/* ---- snapshots; NULL: not supported ---- */
	int (*snap_capture)(void *ctx, const char *vm_name, const struct sbxd_snap_capture *c,
			    struct sbxd_snap_info *ret);
	/* A filesystem snapshot of an image as it is, with this id. */
	int (*snap_from_image)(void *ctx, const char *id, const char *name, const char *image_dir,
			       uint64_t disk_bytes, struct sbxd_snap_info *ret);
	/* -ENOENT when there is no manifest; other errors: it is damaged. */
	int (*snap_info)(void *ctx, const char *id, struct sbxd_snap_info *ret);
	/* Remove a snapshot; what VMs or other snapshots still use stays.
	 * 0 also when there is none. */
	int (*snap_delete)(void *ctx, const char *id);
	/* Free blobs that no manifest and no VM names (after the last VM
	 * that used a deleted snapshot's blobs is gone). dead_building: also
	 * drop manifests still building (at start: nothing captures). */
	int (*snap_gc)(void *ctx, bool dead_building);
	/* The zygote of an image at this VM shape exists (built by a cold
	 * boot the first time: tens of seconds under TCG). */
	int (*zygote_ensure)(void *ctx, const char *image_dir, unsigned vcpus, unsigned mem_mib,
			     uint64_t disk_bytes);
};

enum mgr_outcome {
	MGR_READY,	   /* the agent answered: state ready (snapshots: ready) */
	MGR_FAILED,	   /* state failed; msg says why */
	MGR_DELETED,	   /* VM and rows are gone */
	MGR_DELETE_FAILED, /* the VM could not be destroyed; msg says why */
};

/* Called once per waiter when its job settles, on a worker thread. id is
 * the sandbox's (or the snapshot's, for snapshot jobs); msg is valid
 * during the call only. */
typedef void (*sbxd_mgr_notify_fn)(void *ud, uint64_t waiter, const char *id,
				   enum mgr_outcome outcome, const char *msg);

struct sbxd_mgr_config {
	store *st;
	const struct sbxd_vm_ops *vm;
	void *vm_ctx;
	unsigned boot_timeout_s; /* agent answer after VM start; 0: 120 */
	sbxd_mgr_notify_fn notify;
	void *notify_ud;
	/* Seconds between health checks of pooled VMs; 0: 20. */
	unsigned pool_check_s;
	/* Milliseconds between TTL checks (idle_ttl_seconds,
	 * delete_after_stop_seconds); 0: 1000. */
	unsigned ttl_check_ms;
	/* Called on a stop's worker before the capture, with notify_ud: the
	 * data plane lets go of the sandbox's agent connection (its commands
	 * end). idle: the idle TTL stops it: -EBUSY refuses (a command runs).
	 * NULL: nothing holds the connection. */
	int (*release_box)(void *ud, const char *box_id, bool idle);
	/* With notify_ud: 1 when a command runs in the sandbox (the idle TTL
	 * waits), 0 when not; NULL: never. */
	int (*box_busy)(void *ud, const char *box_id);
};

int sbxd_mgr_new(const struct sbxd_mgr_config *c, sbxd_mgr **ret);
/* Stops: boots in progress give up waiting (their VMs are adopted at the
 * next start), waits for every worker, then destroys the pools' VMs.
 * NULL-safe, returns NULL. */
sbxd_mgr *sbxd_mgr_free(sbxd_mgr *m);

/* At start, before serving: compare the rows with the VMs that exist.
 * Running VMs with a row are adopted (provisioning until their agent
 * answers, then ready), VMs without a row (pool VMs of an earlier run
 * among them) are destroyed, rows whose VM is gone are marked failed,
 * interrupted deletions are finished. */
int sbxd_mgr_reconcile(sbxd_mgr *m);
/* A VM's QEMU stopped on its own (killed, crashed, powered off): its
 * sandbox is marked failed with reason and its VM's files are freed on the
 * manager's next tick. Safe from any thread (libvirt's event loop). */
void sbxd_mgr_vm_stopped(sbxd_mgr *m, const char *vm_name, const char *reason);
/* At start, after sbxd_mgr_reconcile(): snapshots that were building are
 * failed, interrupted deletions finished, ready ones without a manifest
 * failed; then the snapshot store's garbage is collected. */
int sbxd_mgr_reconcile_snapshots(sbxd_mgr *m);
/* Build the zygote of an image at this shape on a thread of its own, so
 * that the first fast starts rarely wait for it. */
void sbxd_mgr_prepare_zygote(sbxd_mgr *m, const char *image_dir, unsigned vcpus, unsigned mem_mib,
			     uint64_t disk_bytes);

/* b was just inserted in state provisioning: start its VM in the
 * background (from b->snapshot_id when set, resuming its processes with
 * restore_memory). pooled: b->vm_name is a VM taken from a pool
 * (sbxd_mgr_pool_take()): give it its identity instead of starting one,
 * and start a new VM if that fails. waiter != 0 is notified when it
 * settles. */
int sbxd_mgr_boot(sbxd_mgr *m, const struct store_box *b, bool restore_memory, bool pooled,
		  uint64_t waiter);
/* Wait for the running job of box_id: 0, or -ESRCH when it has none (its
 * row is settled; read it). */
int sbxd_mgr_wait(sbxd_mgr *m, const char *box_id, uint64_t waiter);
/* Forget a waiter (its request timed out). */
void sbxd_mgr_unwait(sbxd_mgr *m, const char *id, uint64_t waiter);
/* Mark the row deleting, cancel a boot in progress (a capture in progress
 * is finished first), destroy the VM and remove the rows in the
 * background; waiter gets MGR_DELETED (or MGR_DELETE_FAILED, the row then
 * being failed with the reason). */
int sbxd_mgr_delete(sbxd_mgr *m, const char *box_id, uint64_t waiter);

/* Stop sandbox box_id (ready): the row becomes stopping, then the VM is
 * captured into an internal "stop snapshot" (with its memory when the
 * sandbox has preserve_memory_on_stop), destroyed, and the row stopped
 * (stopped_at, the snapshot's id). waiter gets MGR_READY once stopped,
 * MGR_FAILED (the sandbox goes on running; msg says why) or MGR_DELETED.
 * idle: the idle TTL asks (refused while a command runs). 1: stopped
 * already (nothing to do); -EBUSY: a job runs on it or it is starting or
 * stopping; -EINVAL: it is provisioning, failed or being deleted. */
int sbxd_mgr_stop(sbxd_mgr *m, const char *box_id, bool idle, uint64_t waiter);
/* Start sandbox box_id (stopped) again from its stop snapshot, on a VM of
 * the same name (the dataplane URL stays): starting, then ready; the stop
 * snapshot is deleted once it runs. waiter gets MGR_READY, MGR_FAILED
 * (the sandbox stays stopped, msg says why) or MGR_DELETED. 1: ready
 * already; -EBUSY, -EINVAL as for sbxd_mgr_stop(). */
int sbxd_mgr_start(sbxd_mgr *m, const char *box_id, uint64_t waiter);
/* Activity on a sandbox (an API call): restarts its idle TTL. Cheap: the
 * row is written at most every few seconds. */
void sbxd_mgr_touch(sbxd_mgr *m, const char *box_id);

/* Capture sandbox box_id (ready) into the snapshot row snap_id (state
 * building, written by the caller). waiter gets MGR_READY or MGR_FAILED
 * (the snapshot row says why). -EBUSY: a job runs on the sandbox (another
 * capture, its deletion); -ENOENT: no such sandbox or snapshot row. */
int sbxd_mgr_capture(sbxd_mgr *m, const char *box_id, const char *snap_id, uint64_t waiter);
/* Build the snapshot row snap_id (state building, image_dir set) from its
 * image. waiter (keyed by snap_id) gets MGR_READY or MGR_FAILED. */
int sbxd_mgr_snapshot_build(sbxd_mgr *m, const char *snap_id, uint64_t waiter);
/* Mark the snapshot row deleting, drain its pool, remove its manifest
 * (blobs that sandboxes or other snapshots use stay) and its row; waiter
 * gets MGR_DELETED or MGR_DELETE_FAILED. -EBUSY while it is being built
 * or captured. */
int sbxd_mgr_snapshot_delete(sbxd_mgr *m, const char *snap_id, uint64_t waiter);
/* Whether a job (boot, capture, deletion...) runs on this sandbox. */
bool sbxd_mgr_busy(sbxd_mgr *m, const char *box_id);
/* Whether a build or capture of snapshot snap_id is running. */
bool sbxd_mgr_snapshot_busy(sbxd_mgr *m, const char *snap_id);

/* The agent address of a sandbox's VM (see sbxd_vm_ops.agent_address). */
int sbxd_mgr_agent_address(sbxd_mgr *m, const char *vm_name, char *buf, size_t len);
/* Jobs running now (for tests and shutdown logs). */
unsigned sbxd_mgr_jobs(sbxd_mgr *m);

/* ---- prewarmed pools (pool.c) ---- */

#define SBXD_POOL_SOURCE_MAX 96

/* A pool: what its VMs are started from, and their shape. */
struct sbxd_pool_spec {
	/* "image:NAME" or "snapshot:ID": the key, and the metrics label */
	char source[SBXD_POOL_SOURCE_MAX];
	const char *image_dir;
	const char *snapshot_id; /* NULL: an image pool */
	bool restore_memory;
	unsigned vcpus;
	unsigned mem_mib;
	uint64_t disk_bytes;
	unsigned size; /* VMs to keep ready; 0 removes the pool (drains it) */
};

/* Add, resize or (size 0) remove a pool; the pool thread fills it, one VM
 * at a time, and destroys what is over its size. */
int sbxd_mgr_pool_set(sbxd_mgr *m, const struct sbxd_pool_spec *spec);
/* Take a ready VM of the pool `source` if it has this shape: 0 and the
 * VM's name, -ENOENT when none is ready or the shape differs. The VM is the
 * caller's from then on; the pool refills in the background. */
int sbxd_mgr_pool_take(sbxd_mgr *m, const char *source, bool restore_memory, unsigned vcpus,
		       unsigned mem_mib, uint64_t disk_bytes, char *ret_vm, size_t len);
/* A VM taken from a pool that could not be used: destroyed in the
 * background. */
void sbxd_mgr_pool_discard(sbxd_mgr *m, const char *vm_name);
/* For each pool: its source, VMs ready now and its size. fn runs under
 * the pools' lock: it must not call back into the manager. */
void sbxd_mgr_pool_foreach(sbxd_mgr *m,
			   void (*fn)(void *ud, const char *source, unsigned ready,
				      unsigned target),
			   void *ud);
/* Ready VMs of a pool now (0 without such a pool). */
unsigned sbxd_mgr_pool_ready(sbxd_mgr *m, const char *source);
/* "image:NAME" of an image directory (NAME: its last component). */
void sbxd_pool_image_source(const char *image_dir, char *buf, size_t len);
/* "snapshot:ID". */
void sbxd_pool_snapshot_source(const char *snap_id, char *buf, size_t len);
