/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mgr.c - boot, adoption, deletion, capture, stop and start jobs of
 * sandboxes, build and deletion jobs of snapshots, one detached worker
 * thread per job. Reconciliation at start is in reconcile.c.
 *
 * Invariants:
 *  - a sandbox (or snapshot) has at most one job (struct job, keyed by its
 *    id) at a time; a delete that arrives during a boot or a capture does
 *    not start a second one but cancels the job, whose worker then
 *    destroys the VM and removes the rows (a capture finishes first: the
 *    snapshot is kept);
 *  - a worker changes a row's state only while holding m->lock, after
 *    checking its job was not cancelled; sbxd_mgr_delete() marks the row
 *    deleting under the same lock, so neither overwrites the other;
 *  - waiters are notified after the row was updated, so a waiter reading
 *    the store sees the outcome;
 *  - stop and start write their intent first (stopping, starting); a stop
 *    records its snapshot's id before it destroys the VM, a start drops
 *    it only once the VM runs, so a restart can finish or roll back
 *    either (reconcile_row()).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "sbxd/common/key.h"
#include "sbxd/common/metrics.h"
#include "sbxd/mgr/mgr_int.h"

struct waiter {
	uint64_t id;
	struct waiter *next;
};

struct job {
	sbxd_mgr *m;
	enum job_kind kind;
	char id[STORE_SNAP_ID_MAX + 1]; /* the sandbox's id, or the snapshot's */
	char *name;			/* for logs and the guest hostname */
	char *vm_name;
	char *image;
	char *snapshot_id; /* boot: start from it; capture: the parent */
	bool restore_memory;
	bool pooled; /* boot: vm_name is a pool VM */
	unsigned vcpus;
	uint64_t mem_bytes, disk_bytes;
	char snap_id[STORE_SNAP_ID_MAX + 1]; /* capture: the snapshot taken */
	char *stop_snap;		     /* the sandbox's stop snapshot, or NULL */
	bool stop_memory;		     /* it holds memory */
	bool preserve_memory;		     /* stop: capture memory too */
	bool idle;			     /* stop: asked by the idle TTL */
	bool cancel;			     /* a delete arrived: the worker turns into a delete */
	struct waiter *waiters;
	struct job *next;
};

static const char *job_kind_to_string(enum job_kind k)
{
	switch (k) {
	case JOB_BOOT:
		return "boot";
	case JOB_ADOPT:
		return "adopt";
	case JOB_DELETE:
		return "delete";
	case JOB_CAPTURE:
		return "capture";
	case JOB_SNAP_BUILD:
		return "snapshot-build";
	case JOB_SNAP_DELETE:
		return "snapshot-delete";
	case JOB_STOP:
		return "stop";
	case JOB_START:
		return "start";
	}
	return "?";
}

static struct job *job_find(sbxd_mgr *m, const char *id)
{
	for (struct job *j = m->jobs; j; j = j->next)
		if (!strcmp(j->id, id))
			return j;
	return NULL;
}

static void job_unlink(sbxd_mgr *m, struct job *j)
{
	for (struct job **pp = &m->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			return;
		}
	}
}

void mgr_job_free(struct job *j)
{
	struct waiter *w, *n;

	if (!j)
		return;
	for (w = j->waiters; w; w = n) {
		n = w->next;
		free(w);
	}
	free(j->name);
	free(j->vm_name);
	free(j->image);
	free(j->snapshot_id);
	free(j->stop_snap);
	free(j);
}

static int job_add_waiter(struct job *j, uint64_t waiter)
{
	struct waiter *w;

	if (!waiter)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->id = waiter;
	w->next = j->waiters;
	j->waiters = w;
	return 0;
}

static void notify_all(sbxd_mgr *m, struct waiter *list, const char *id, enum mgr_outcome o,
		       const char *msg)
{
	struct waiter *n;

	for (struct waiter *w = list; w; w = n) {
		n = w->next;
		if (m->c.notify)
			m->c.notify(m->c.notify_ud, w->id, id, o, msg);
		free(w);
	}
}

/* Called with m->lock held: unlink j and hand its waiters to the caller. */
static struct waiter *job_retire(sbxd_mgr *m, struct job *j)
{
	struct waiter *w = j->waiters;

	j->waiters = NULL;
	job_unlink(m, j);
	return w;
}

static bool job_cancelled(void *ud)
{
	struct job *j = ud;
	bool c;

	pthread_mutex_lock(&j->m->lock);
	c = j->cancel || j->m->stopping;
	pthread_mutex_unlock(&j->m->lock);
	return c;
}

static void destroy_quietly(sbxd_mgr *m, const char *what, const char *vm_name)
{
	char err[MGR_MSG_MAX] = "";

	if (mgr_keep(m->c.vm->destroy(m->c.vm_ctx, vm_name), err, sizeof(err)) < 0)
		log_warn("%s vm=%s could not be destroyed: %s, ignoring", what, vm_name, err);
}

/* Destroy the VM and remove the rows; the job is retired either way. */
static void run_delete(sbxd_mgr *m, struct job *j)
{
	char err[MGR_MSG_MAX] = "";
	char msg[MGR_MSG_MAX + 64];
	struct waiter *w;
	enum mgr_outcome o = MGR_DELETED;
	int r;

	r = mgr_keep(m->c.vm->destroy(m->c.vm_ctx, j->vm_name), err, sizeof(err));
	pthread_mutex_lock(&m->lock);
	if (r < 0) {
		snprintf(msg, sizeof(msg),
			 "deleting the sandbox failed: %s (delete it again to retry)",
			 err[0] ? err : strerror(-r));
		(void)store_box_set_state(m->c.st, j->id, BOX_FAILED, msg);
		o = MGR_DELETE_FAILED;
	} else {
		r = store_box_delete(m->c.st, j->id);
		if (r < 0 && r != -ENOENT) {
			snprintf(msg, sizeof(msg),
				 "the VM is gone but its row could not be removed: %s", err_msg());
			o = MGR_DELETE_FAILED;
		}
	}
	w = job_retire(m, j);
	pthread_mutex_unlock(&m->lock);
	if (o == MGR_DELETED && j->stop_snap && m->c.vm->snap_delete &&
	    mgr_keep(m->c.vm->snap_delete(m->c.vm_ctx, j->stop_snap), err, sizeof(err)) < 0)
		log_warn_f(LOG_FIELDS({"sandbox", j->name}),
			   "its stop snapshot %s could not be removed: %s, ignoring", j->stop_snap,
			   err);
	/* Its snapshot may have been deleted while it ran: the blobs only
	 * this VM still used are garbage now. */
	if (o == MGR_DELETED && j->snapshot_id && m->c.vm->snap_gc &&
	    mgr_keep(m->c.vm->snap_gc(m->c.vm_ctx, false), err, sizeof(err)) < 0)
		log_warn("snapshots: garbage collection failed: %s, ignoring", err);
	if (o == MGR_DELETED)
		log_info_f(LOG_FIELDS({"sandbox", j->name}, {"id", j->id}), "deleted");
	else
		log_error_f(LOG_FIELDS({"sandbox", j->name}, {"id", j->id}), "%s", msg);
	notify_all(m, w, j->id, o, o == MGR_DELETED ? "" : msg);
}

/* A pool VM was handed to the sandbox: give it the sandbox's identity.
 * On failure the pool VM is destroyed and the row names a new VM (its id),
 * which run_boot() then starts as usual. */
static int take_pooled(sbxd_mgr *m, struct job *j)
{
	char err[MGR_MSG_MAX] = "";
	char *vm;
	int r;

	r = mgr_keep(m->c.vm->fixup(m->c.vm_ctx, j->vm_name, j->name), err, sizeof(err));
	if (r == 0)
		return 0;
	log_warn_f(LOG_FIELDS({"sandbox", j->name}, {"vm", j->vm_name}),
		   "the pooled VM did not take its identity (%s): starting a new VM",
		   err[0] ? err : strerror(-r));
	destroy_quietly(m, "pool", j->vm_name);
	vm = strdup(j->id);
	if (!vm)
		return -ENOMEM;
	free(j->vm_name);
	j->vm_name = vm;
	j->pooled = false;
	pthread_mutex_lock(&m->lock);
	r = store_box_set_vm(m->c.st, j->id, j->id);
	pthread_mutex_unlock(&m->lock);
	return r;
}

/* Called with m->lock held when a boot or start job's work ended with r.
 * A delete that arrived meanwhile owns the job now (it destroys the VM and
 * anything the job made); a job cancelled by sbxd's shutdown leaves the row
 * for the next start's reconcile. true: handled, and m->lock released. */
static bool settle_interrupted(sbxd_mgr *m, struct job *j, int r)
{
	struct waiter *w;

	if (j->cancel) {
		pthread_mutex_unlock(&m->lock);
		run_delete(m, j);
		return true;
	}
	if (m->stopping && r == -ECANCELED) {
		w = job_retire(m, j);
		pthread_mutex_unlock(&m->lock);
		notify_all(m, w, j->id, MGR_FAILED, "sbxd is shutting down");
		return true;
	}
	return false;
}

/* Boot (start + wait for the agent), take a pooled VM, or adopt (wait
 * only). */
static void run_boot(sbxd_mgr *m, struct job *j)
{
	char err[MGR_MSG_MAX] = "";
	char msg[MGR_MSG_MAX + 128] = "";
	unsigned timeout = m->c.boot_timeout_s ? m->c.boot_timeout_s : 120;
	enum mgr_outcome o = MGR_READY;
	double t0 = clock_mono_s();
	bool started = j->kind == JOB_ADOPT;
	const char *how = job_kind_to_string(j->kind);
	struct waiter *w;
	int r = 0;

	if (j->kind == JOB_BOOT && j->pooled && !job_cancelled(j)) {
		r = take_pooled(m, j);
		if (r == 0 && j->pooled) {
			started = true;
			how = "pool";
		} else if (r < 0) {
			snprintf(msg, sizeof(msg), "cannot record the sandbox's new VM: %s",
				 strerror(-r));
		}
	}
	if (r == 0 && j->kind == JOB_BOOT && !started && !job_cancelled(j)) {
		struct sbxd_vm_spec spec = {
		    .name = j->vm_name,
		    .image_dir = j->image,
		    .hostname = j->name,
		    .vcpus = j->vcpus,
		    .mem_mib = (unsigned)(j->mem_bytes >> 20),
		    .disk_bytes = j->disk_bytes,
		    .snapshot_id = j->snapshot_id,
		    .restore_memory = j->restore_memory,
		};

		how = NULL;
		r = mgr_keep(m->c.vm->start(m->c.vm_ctx, &spec, &how), err, sizeof(err));
		if (r < 0)
			snprintf(msg, sizeof(msg), "the VM could not start: %s",
				 err[0] ? err : strerror(-r));
		else
			started = true;
		if (!how)
			how = "boot";
	}
	/* A pooled VM answered FIXUP: it needs no further wait. */
	if (r == 0 && !(j->kind == JOB_BOOT && j->pooled) && !job_cancelled(j)) {
		r = mgr_keep(m->c.vm->wait_agent(m->c.vm_ctx, j->vm_name, (int)timeout * 1000,
						 job_cancelled, j),
			     err, sizeof(err));
		if (r < 0 && r != -ECANCELED)
			snprintf(msg, sizeof(msg), "%s%s",
				 j->kind == JOB_ADOPT ? "after sbxd restarted, " : "",
				 err[0] ? err : strerror(-r));
	}

	pthread_mutex_lock(&m->lock);
	if (settle_interrupted(m, j, r))
		return; /* a delete arrived meanwhile, or shutdown: the next start sees to it */
	if (r < 0) {
		o = MGR_FAILED;
		(void)store_box_set_state(m->c.st, j->id, BOX_FAILED, msg);
	} else {
		(void)store_box_set_state(m->c.st, j->id, BOX_READY, NULL);
	}
	w = job_retire(m, j);
	pthread_mutex_unlock(&m->lock);

	if (o == MGR_READY) {
		if (j->kind == JOB_BOOT)
			sbxd_metrics_observe(SBXD_HIST_CREATE, clock_mono_s() - t0);
		log_info_f(LOG_FIELDS({"sandbox", j->name}, {"id", j->id}, {"vm", j->vm_name}),
			   "ready after %.2f s (%s%s%s)", clock_mono_s() - t0, how,
			   j->snapshot_id ? " of snapshot " : "",
			   j->snapshot_id ? j->snapshot_id : "");
	} else {
		log_warn_f(LOG_FIELDS({"sandbox", j->name}, {"id", j->id}), "failed: %s", msg);
		if (started)
			destroy_quietly(m, "sandbox", j->vm_name);
	}
	notify_all(m, w, j->id, o, o == MGR_READY ? "" : msg);
}

static void fill_built(struct store_snapshot_built *b, const struct sbxd_snap_info *i)
{
	b->kind = i->kind[0] ? i->kind : NULL;
	b->vcpus = i->vcpus;
	b->mem_bytes = (uint64_t)i->mem_mib << 20;
	b->fs_capacity_bytes = i->disk_bytes;
	b->memory_size_bytes = i->memory_bytes;
	b->image_dir = i->image_dir[0] ? i->image_dir : NULL;
	b->image_digest = i->image_digest[0] ? i->image_digest : NULL;
}

/* Capture the sandbox's VM into j->snap_id; a delete of the sandbox that
 * arrived meanwhile runs after it. */
static void run_capture(sbxd_mgr *m, struct job *j)
{
	char err[MGR_MSG_MAX] = "";
	char msg[MGR_MSG_MAX + 128] = "";
	struct store_snapshot row = {0};
	struct sbxd_snap_info info = {0};
	struct store_snapshot_built built;
	enum mgr_outcome o = MGR_READY;
	double t0 = clock_mono_s();
	bool orphan = false;
	struct waiter *w;
	int r;

	r = store_snapshot_get(m->c.st, j->snap_id, STORE_OWNER_ANY, &row);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "its row is gone");
	} else if (!m->c.vm->snap_capture) {
		r = -EOPNOTSUPP;
		snprintf(msg, sizeof(msg), "this sbxd cannot take snapshots");
	} else {
		struct sbxd_snap_capture c = {
		    .id = j->snap_id,
		    .name = row.name,
		    .include_memory = row.include_memory,
		    .parent = j->snapshot_id,
		};

		r = mgr_keep(m->c.vm->snap_capture(m->c.vm_ctx, j->vm_name, &c, &info), err,
			     sizeof(err));
		if (r < 0)
			snprintf(msg, sizeof(msg), "capturing sandbox '%s' failed: %s", j->name,
				 err[0] ? err : strerror(-r));
	}

	pthread_mutex_lock(&m->lock);
	if (r == 0) {
		struct store_snapshot now = {0};

		fill_built(&built, &info);
		/* The snapshot may have been deleted meanwhile (-> deleting). */
		if (store_snapshot_get(m->c.st, j->snap_id, STORE_OWNER_ANY, &now) < 0 ||
		    now.state == SNAPSHOT_DELETING)
			orphan = true;
		else
			(void)store_snapshot_set_built(m->c.st, j->snap_id, &built);
		store_snapshot_release(&now);
	} else {
		o = MGR_FAILED;
		(void)store_snapshot_set_state(m->c.st, j->snap_id, SNAPSHOT_FAILED, msg);
	}
	if (j->cancel) {
		pthread_mutex_unlock(&m->lock);
		log_info_f(LOG_FIELDS({"snapshot", row.name}, {"id", j->snap_id}),
			   "of sandbox=%s %s; now deleting the sandbox", j->name,
			   o == MGR_READY ? "taken" : "failed");
		store_snapshot_release(&row);
		run_delete(m, j);
		return;
	}
	w = job_retire(m, j);
	pthread_mutex_unlock(&m->lock);
	if (orphan) {
		log_info("snapshot id=%s was deleted while it was being taken: removing it",
			 j->snap_id);
		if (mgr_keep(m->c.vm->snap_delete(m->c.vm_ctx, j->snap_id), err, sizeof(err)) < 0)
			log_warn("snapshot id=%s: %s, ignoring", j->snap_id, err);
	}
	if (o == MGR_READY)
		log_info_f(LOG_FIELDS({"snapshot", row.name}, {"id", j->snap_id}),
			   "of sandbox=%s taken in %.2f s (%s, memory %llu bytes)", j->name,
			   clock_mono_s() - t0, info.kind, (unsigned long long)info.memory_bytes);
	else
		log_warn_f(LOG_FIELDS({"snapshot", row.name ? row.name : "?"}, {"id", j->snap_id}),
			   "%s", msg);
	store_snapshot_release(&row);
	notify_all(m, w, j->id, o, o == MGR_READY ? "" : msg);
}

static void run_snap_build(sbxd_mgr *m, struct job *j)
{
	char err[MGR_MSG_MAX] = "";
	char msg[MGR_MSG_MAX + 128] = "";
	struct sbxd_snap_info info = {0};
	struct store_snapshot_built built;
	enum mgr_outcome o = MGR_READY;
	struct waiter *w;
	int r = -EOPNOTSUPP;

	if (m->c.vm->snap_from_image)
		r = mgr_keep(m->c.vm->snap_from_image(m->c.vm_ctx, j->id, j->name, j->image,
						      j->disk_bytes, &info),
			     err, sizeof(err));
	if (r < 0)
		snprintf(msg, sizeof(msg), "building the snapshot from image %s failed: %s",
			 j->image, err[0] ? err : strerror(-r));
	pthread_mutex_lock(&m->lock);
	if (r == 0) {
		fill_built(&built, &info);
		(void)store_snapshot_set_built(m->c.st, j->id, &built);
	} else {
		o = MGR_FAILED;
		(void)store_snapshot_set_state(m->c.st, j->id, SNAPSHOT_FAILED, msg);
	}
	w = job_retire(m, j);
	pthread_mutex_unlock(&m->lock);
	if (o == MGR_READY)
		log_info_f(LOG_FIELDS({"snapshot", j->name}, {"id", j->id}), "built from image %s",
			   j->image);
	else
		log_warn_f(LOG_FIELDS({"snapshot", j->name}, {"id", j->id}), "%s", msg);
	notify_all(m, w, j->id, o, o == MGR_READY ? "" : msg);
}

static void run_snap_delete(sbxd_mgr *m, struct job *j)
{
	char err[MGR_MSG_MAX] = "";
	char msg[MGR_MSG_MAX + 128] = "";
	struct sbxd_pool_spec drain = {0};
	enum mgr_outcome o = MGR_DELETED;
	struct waiter *w;
	int r = 0;

	sbxd_pool_snapshot_source(j->id, drain.source, sizeof(drain.source));
	(void)sbxd_mgr_pool_set(m, &drain);
	if (m->c.vm->snap_delete)
		r = mgr_keep(m->c.vm->snap_delete(m->c.vm_ctx, j->id), err, sizeof(err));
	pthread_mutex_lock(&m->lock);
	if (r < 0) {
		snprintf(msg, sizeof(msg),
			 "deleting the snapshot failed: %s (delete it again to retry)",
			 err[0] ? err : strerror(-r));
		(void)store_snapshot_set_state(m->c.st, j->id, SNAPSHOT_FAILED, msg);
		o = MGR_DELETE_FAILED;
	} else {
		r = store_snapshot_delete(m->c.st, j->id);
		if (r < 0 && r != -ENOENT) {
			snprintf(msg, sizeof(msg), "the snapshot is gone but its row stays: %s",
				 err_msg());
			o = MGR_DELETE_FAILED;
		}
	}
	w = job_retire(m, j);
	pthread_mutex_unlock(&m->lock);
	if (o == MGR_DELETED)
		log_info_f(LOG_FIELDS({"snapshot", j->name}, {"id", j->id}), "deleted");
	else
		log_error_f(LOG_FIELDS({"snapshot", j->name}, {"id", j->id}), "%s", msg);
	notify_all(m, w, j->id, o, o == MGR_DELETED ? "" : msg);
}

/* ---- stop and start ---- */

static void delete_snap_quietly(sbxd_mgr *m, const char *who, const char *snap_id)
{
	char err[MGR_MSG_MAX] = "";

	if (m->c.vm->snap_delete &&
	    mgr_keep(m->c.vm->snap_delete(m->c.vm_ctx, snap_id), err, sizeof(err)) < 0)
		log_warn_f(LOG_FIELDS({"sandbox", who}),
			   "stop snapshot %s could not be removed: %s, ignoring", snap_id, err);
}

/* Capture the VM into a new stop snapshot, destroy it, record stopped. A
 * failure before the VM is destroyed leaves the sandbox running (ready). */
static void run_stop(sbxd_mgr *m, struct job *j)
{
	char err[MGR_MSG_MAX] = "";
	char msg[MGR_MSG_MAX + 128] = "";
	char snap[STORE_ID_LEN + 1];
	struct sbxd_snap_info info;
	enum mgr_outcome o = MGR_READY;
	double t0 = clock_mono_s();
	char *old = j->stop_snap;
	bool captured = false;
	struct waiter *w;
	int r = 0;

	j->stop_snap = NULL;
	if (m->c.release_box)
		r = m->c.release_box(m->c.notify_ud, j->id, j->idle);
	if (r == -EBUSY)
		snprintf(msg, sizeof(msg), "a command is running in sandbox '%s'", j->name);
	else if (r < 0)
		snprintf(msg, sizeof(msg), "the data plane did not let go of sandbox '%s': %s",
			 j->name, strerror(-r));
	if (r == 0 && !m->c.vm->snap_capture) {
		r = -EOPNOTSUPP;
		snprintf(msg, sizeof(msg),
			 "this sbxd cannot take snapshots: it cannot stop sandboxes");
	}
	if (r == 0)
		r = sbxd_uuid4(snap);
	if (r == 0) {
		struct sbxd_snap_capture c = {
		    .id = snap,
		    .name = "stop",
		    .include_memory = j->preserve_memory,
		    .parent = j->snapshot_id,
		    .sync_guest = true,
		};

		r = mgr_keep(m->c.vm->snap_capture(m->c.vm_ctx, j->vm_name, &c, &info), err,
			     sizeof(err));
		if (r < 0)
			snprintf(msg, sizeof(msg), "saving sandbox '%s' failed: %s", j->name,
				 err[0] ? err : strerror(-r));
	}
	captured = r == 0;
	pthread_mutex_lock(&m->lock);
	if (r == 0) {
		j->stop_snap = strdup(snap);
		j->stop_memory = j->preserve_memory;
		if (!j->stop_snap ||
		    store_box_set_stop_snapshot(m->c.st, j->id, snap, j->stop_memory) < 0) {
			r = -EIO;
			snprintf(msg, sizeof(msg), "cannot record the stop snapshot: %s",
				 err_msg());
			free(j->stop_snap);
			j->stop_snap = NULL;
		}
	}
	if (r < 0 && !j->cancel)
		(void)store_box_set_state(m->c.st, j->id, BOX_READY,
					  j->idle ? NULL : msg); /* it goes on running */
	pthread_mutex_unlock(&m->lock);
	if (r < 0 && captured)
		delete_snap_quietly(m, j->name, snap);
	if (r == 0) {
		/* The snapshot is recorded: from here on the sandbox is stopped. */
		if (mgr_keep(m->c.vm->destroy(m->c.vm_ctx, j->vm_name), err, sizeof(err)) < 0)
			log_warn_f(LOG_FIELDS({"sandbox", j->name}),
				   "was saved but its VM could not be destroyed: %s, ignoring "
				   "(sbxd destroys it at its next start)",
				   err);
		if (old)
			delete_snap_quietly(m, j->name, old);
		free(old);
		old = NULL;
	}
	/* Not replaced: the old stop snapshot is still the sandbox's. */
	if (!j->stop_snap) {
		j->stop_snap = old;
		old = NULL;
	}
	pthread_mutex_lock(&m->lock);
	if (j->cancel) {
		pthread_mutex_unlock(&m->lock);
		run_delete(m, j);
		return;
	}
	if (r == 0)
		(void)store_box_set_state(m->c.st, j->id, BOX_STOPPED, NULL);
	else
		o = MGR_FAILED;
	w = job_retire(m, j);
	pthread_mutex_unlock(&m->lock);
	if (o == MGR_READY)
		log_info_f(LOG_FIELDS({"sandbox", j->name}, {"id", j->id}),
			   "stopped%s in %.2f s (stop snapshot %s, %s)", j->idle ? " (idle)" : "",
			   clock_mono_s() - t0, j->stop_snap,
			   j->stop_memory ? "memory and disk" : "disk");
	else if (j->idle && r == -EBUSY)
		log_debug_f(LOG_FIELDS({"sandbox", j->name}), "idle TTL: %s: not stopped", msg);
	else
		log_warn_f(LOG_FIELDS({"sandbox", j->name}, {"id", j->id}), "could not stop: %s",
			   msg);
	if (r == -EBUSY)
		sbxd_mgr_touch(m, j->id);
	notify_all(m, w, j->id, o, o == MGR_READY ? "" : msg);
}

/* Start the VM again from the stop snapshot, under the same VM name. A
 * failure leaves the sandbox stopped, its snapshot kept. */
static void run_start(sbxd_mgr *m, struct job *j)
{
	char err[MGR_MSG_MAX] = "";
	char msg[MGR_MSG_MAX + 128] = "";
	unsigned timeout = m->c.boot_timeout_s ? m->c.boot_timeout_s : 120;
	enum mgr_outcome o = MGR_READY;
	double t0 = clock_mono_s();
	const char *how = NULL;
	bool started = false;
	struct waiter *w;
	int r = 0;

	if (!j->stop_snap) {
		r = -ENOENT;
		snprintf(msg, sizeof(msg), "sandbox '%s' has no stop snapshot to start from",
			 j->name);
	}
	if (r == 0 && !job_cancelled(j)) {
		struct sbxd_vm_spec spec = {
		    .name = j->vm_name,
		    .image_dir = j->image,
		    .hostname = j->name,
		    .vcpus = j->vcpus,
		    .mem_mib = (unsigned)(j->mem_bytes >> 20),
		    .disk_bytes = j->disk_bytes,
		    .snapshot_id = j->stop_snap,
		    .restore_memory = j->stop_memory,
		};

		r = mgr_keep(m->c.vm->start(m->c.vm_ctx, &spec, &how), err, sizeof(err));
		if (r < 0)
			snprintf(msg, sizeof(msg), "the VM could not start: %s",
				 err[0] ? err : strerror(-r));
		else
			started = true;
	}
	if (r == 0 && !job_cancelled(j)) {
		r = mgr_keep(m->c.vm->wait_agent(m->c.vm_ctx, j->vm_name, (int)timeout * 1000,
						 job_cancelled, j),
			     err, sizeof(err));
		if (r < 0 && r != -ECANCELED)
			snprintf(msg, sizeof(msg), "%s", err[0] ? err : strerror(-r));
	}
	pthread_mutex_lock(&m->lock);
	if (settle_interrupted(m, j, r))
		return; /* deleted meanwhile, or shutdown: the next start rolls it back */
	if (r < 0) {
		char smsg[MGR_MSG_MAX + 192];

		o = MGR_FAILED;
		snprintf(smsg, sizeof(smsg), "starting failed: %s (start it again to retry)", msg);
		(void)store_box_set_state(m->c.st, j->id, BOX_STOPPED, smsg);
	} else {
		(void)store_box_set_state(m->c.st, j->id, BOX_READY, NULL);
		(void)store_box_set_stop_snapshot(m->c.st, j->id, NULL, false);
	}
	w = job_retire(m, j);
	pthread_mutex_unlock(&m->lock);
	if (o == MGR_READY) {
		/* The VM runs on its own layers now; what only the snapshot
		 * held goes. */
		delete_snap_quietly(m, j->name, j->stop_snap);
		sbxd_mgr_touch(m, j->id);
		log_info_f(LOG_FIELDS({"sandbox", j->name}, {"id", j->id}),
			   "started after %.2f s (%s of its stop snapshot)", clock_mono_s() - t0,
			   how ? how : "restore");
	} else {
		log_warn_f(LOG_FIELDS({"sandbox", j->name}, {"id", j->id}), "did not start: %s",
			   msg);
		if (started)
			destroy_quietly(m, "sandbox", j->vm_name);
	}
	notify_all(m, w, j->id, o, o == MGR_READY ? "" : msg);
}

static void *worker(void *arg)
{
	struct job *j = arg;
	sbxd_mgr *m = j->m;

	switch (j->kind) {
	case JOB_DELETE:
		run_delete(m, j);
		break;
	case JOB_BOOT:
	case JOB_ADOPT:
		run_boot(m, j);
		break;
	case JOB_CAPTURE:
		run_capture(m, j);
		break;
	case JOB_SNAP_BUILD:
		run_snap_build(m, j);
		break;
	case JOB_SNAP_DELETE:
		run_snap_delete(m, j);
		break;
	case JOB_STOP:
		run_stop(m, j);
		break;
	case JOB_START:
		run_start(m, j);
		break;
	}
	mgr_job_free(j);
	pthread_mutex_lock(&m->lock);
	if (--m->running == 0)
		pthread_cond_broadcast(&m->idle);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* Called with m->lock held: j is linked and its thread started. */
int mgr_job_start(sbxd_mgr *m, struct job *j)
{
	pthread_attr_t attr;
	pthread_t t;
	int r;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	j->m = m;
	j->next = m->jobs;
	m->jobs = j;
	m->running++;
	r = pthread_create(&t, &attr, worker, j);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		job_unlink(m, j);
		m->running--;
		return -r;
	}
	return 0;
}

/* Start j for the thing named key (a box or snapshot id) with one waiter,
 * unless a job for it runs already (-EBUSY). j is consumed either way. */
static int job_submit(sbxd_mgr *m, struct job *j, const char *key, uint64_t waiter)
{
	int r = job_add_waiter(j, waiter);

	pthread_mutex_lock(&m->lock);
	if (r == 0 && job_find(m, key))
		r = -EBUSY;
	if (r == 0)
		r = mgr_job_start(m, j);
	pthread_mutex_unlock(&m->lock);
	if (r < 0)
		mgr_job_free(j);
	return r;
}

struct job *mgr_job_new(enum job_kind kind, const struct store_box *b)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->kind = kind;
	snprintf(j->id, sizeof(j->id), "%s", b->id);
	j->name = strdup(b->name ? b->name : "");
	j->vm_name = strdup(b->vm_name ? b->vm_name : "");
	j->image = strdup(b->image ? b->image : "");
	j->snapshot_id = b->snapshot_id ? strdup(b->snapshot_id) : NULL;
	j->vcpus = b->vcpus;
	j->mem_bytes = b->mem_bytes;
	j->disk_bytes = b->fs_capacity_bytes;
	j->stop_snap = b->stop_snapshot_id ? strdup(b->stop_snapshot_id) : NULL;
	j->stop_memory = b->stop_memory;
	j->preserve_memory = b->preserve_memory_on_stop;
	if (!j->name || !j->vm_name || !j->image || (b->snapshot_id && !j->snapshot_id) ||
	    (b->stop_snapshot_id && !j->stop_snap)) {
		mgr_job_free(j);
		return NULL;
	}
	return j;
}

static struct job *job_new_snap(enum job_kind kind, const struct store_snapshot *s)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->kind = kind;
	snprintf(j->id, sizeof(j->id), "%s", s->id);
	j->name = strdup(s->name ? s->name : "");
	j->vm_name = strdup("");
	j->image = strdup(s->image_dir ? s->image_dir : "");
	j->disk_bytes = s->fs_capacity_bytes;
	if (!j->name || !j->vm_name || !j->image) {
		mgr_job_free(j);
		return NULL;
	}
	return j;
}

int sbxd_mgr_new(const struct sbxd_mgr_config *c, sbxd_mgr **ret)
{
	sbxd_mgr *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	m->c = *c;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->idle, NULL);
	r = pools_init(m);
	if (r == 0) {
		r = ttl_init(m);
		if (r < 0)
			pools_stop(m);
	}
	if (r < 0) {
		pthread_cond_destroy(&m->idle);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return r;
	}
	*ret = m;
	return 0;
}

sbxd_mgr *sbxd_mgr_free(sbxd_mgr *m)
{
	if (!m)
		return NULL;
	ttl_stop(m);
	pthread_mutex_lock(&m->lock);
	m->stopping = true;
	if (m->running)
		log_info("waiting for %u sandbox job(s) to stop", m->running);
	while (m->running)
		pthread_cond_wait(&m->idle, &m->lock);
	pthread_mutex_unlock(&m->lock);
	if (m->zygote_started) {
		if (m->zygote_busy)
			log_info("waiting for the zygote being built to be done");
		pthread_join(m->zygote_thread, NULL);
	}
	pools_stop(m);
	pthread_cond_destroy(&m->idle);
	pthread_mutex_destroy(&m->lock);
	free(m);
	return NULL;
}

int sbxd_mgr_boot(sbxd_mgr *m, const struct store_box *b, bool restore_memory, bool pooled,
		  uint64_t waiter)
{
	struct job *j = mgr_job_new(JOB_BOOT, b);

	if (!j)
		return -ENOMEM;
	j->restore_memory = restore_memory;
	j->pooled = pooled;
	return job_submit(m, j, b->id, waiter);
}

int sbxd_mgr_wait(sbxd_mgr *m, const char *box_id, uint64_t waiter)
{
	struct job *j;
	int r = -ESRCH;

	pthread_mutex_lock(&m->lock);
	j = job_find(m, box_id);
	if (j)
		r = job_add_waiter(j, waiter);
	pthread_mutex_unlock(&m->lock);
	return r;
}

void sbxd_mgr_unwait(sbxd_mgr *m, const char *id, uint64_t waiter)
{
	struct job *j;

	pthread_mutex_lock(&m->lock);
	j = job_find(m, id);
	for (struct waiter **pp = j ? &j->waiters : NULL; pp && *pp; pp = &(*pp)->next) {
		if ((*pp)->id == waiter) {
			struct waiter *w = *pp;

			*pp = w->next;
			free(w);
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
}

int sbxd_mgr_delete(sbxd_mgr *m, const char *box_id, uint64_t waiter)
{
	struct store_box b = {0};
	struct job *j;
	int r;

	r = store_box_get(m->c.st, box_id, STORE_OWNER_ANY, &b);
	if (r < 0)
		return r;
	pthread_mutex_lock(&m->lock);
	j = job_find(m, box_id);
	if (j) {
		/* A boot, capture or delete is running: join it. */
		r = job_add_waiter(j, waiter);
		if (r == 0 && j->kind != JOB_DELETE && !j->cancel) {
			j->cancel = true;
			r = store_box_set_state(m->c.st, box_id, BOX_DELETING, "deleting");
		}
		pthread_mutex_unlock(&m->lock);
		store_box_release(&b);
		return r;
	}
	r = store_box_set_state(m->c.st, box_id, BOX_DELETING, "deleting");
	if (r == 0) {
		j = mgr_job_new(JOB_DELETE, &b);
		r = j ? job_add_waiter(j, waiter) : -ENOMEM;
		if (r == 0)
			r = mgr_job_start(m, j);
		if (r < 0)
			mgr_job_free(j);
	}
	pthread_mutex_unlock(&m->lock);
	store_box_release(&b);
	return r;
}

/* Mark the row `to` (stopping, starting) and start j, if the row is in
 * state `from` and no job runs; see sbxd_mgr_stop() for the codes. */
static int transition_submit(sbxd_mgr *m, const char *box_id, enum job_kind kind,
			     enum box_state from, enum box_state done, enum box_state to, bool idle,
			     uint64_t waiter)
{
	struct store_box b = {0};
	struct job *j = NULL;
	int r;

	r = store_box_get(m->c.st, box_id, STORE_OWNER_ANY, &b);
	if (r < 0)
		return r;
	pthread_mutex_lock(&m->lock);
	if (job_find(m, b.id) || b.state == BOX_STOPPING || b.state == BOX_STARTING)
		r = -EBUSY;
	else if (b.state == done)
		r = 1;
	else if (b.state != from)
		r = -EINVAL;
	if (r == 0) {
		j = mgr_job_new(kind, &b);
		r = j ? job_add_waiter(j, waiter) : -ENOMEM;
		if (j)
			j->idle = idle;
	}
	if (r == 0)
		r = store_box_set_state(m->c.st, b.id, to, NULL);
	if (r == 0)
		r = mgr_job_start(m, j);
	if (r < 0 && j && r != -EBUSY)
		(void)store_box_set_state(m->c.st, b.id, from, b.status_message);
	pthread_mutex_unlock(&m->lock);
	if (r != 0)
		mgr_job_free(j);
	store_box_release(&b);
	return r;
}

int sbxd_mgr_stop(sbxd_mgr *m, const char *box_id, bool idle, uint64_t waiter)
{
	return transition_submit(m, box_id, JOB_STOP, BOX_READY, BOX_STOPPED, BOX_STOPPING, idle,
				 waiter);
}

int sbxd_mgr_start(sbxd_mgr *m, const char *box_id, uint64_t waiter)
{
	return transition_submit(m, box_id, JOB_START, BOX_STOPPED, BOX_READY, BOX_STARTING, false,
				 waiter);
}

/* ---- snapshots ---- */

static bool snapshot_busy_locked(sbxd_mgr *m, const char *snap_id)
{
	for (struct job *j = m->jobs; j; j = j->next) {
		if (j->kind == JOB_CAPTURE && !strcmp(j->snap_id, snap_id))
			return true;
		if (j->kind == JOB_SNAP_BUILD && !strcmp(j->id, snap_id))
			return true;
	}
	return false;
}

bool sbxd_mgr_busy(sbxd_mgr *m, const char *box_id)
{
	bool busy;

	pthread_mutex_lock(&m->lock);
	busy = job_find(m, box_id) != NULL;
	pthread_mutex_unlock(&m->lock);
	return busy;
}

bool sbxd_mgr_snapshot_busy(sbxd_mgr *m, const char *snap_id)
{
	bool busy;

	pthread_mutex_lock(&m->lock);
	busy = snapshot_busy_locked(m, snap_id);
	pthread_mutex_unlock(&m->lock);
	return busy;
}

int sbxd_mgr_capture(sbxd_mgr *m, const char *box_id, const char *snap_id, uint64_t waiter)
{
	struct store_box b = {0};
	struct job *j;
	int r;

	r = store_box_get(m->c.st, box_id, STORE_OWNER_ANY, &b);
	if (r < 0)
		return r;
	j = mgr_job_new(JOB_CAPTURE, &b);
	store_box_release(&b);
	if (!j)
		return -ENOMEM;
	snprintf(j->snap_id, sizeof(j->snap_id), "%s", snap_id);
	return job_submit(m, j, box_id, waiter);
}

int sbxd_mgr_snapshot_build(sbxd_mgr *m, const char *snap_id, uint64_t waiter)
{
	struct store_snapshot s = {0};
	struct job *j;
	int r;

	r = store_snapshot_get(m->c.st, snap_id, STORE_OWNER_ANY, &s);
	if (r < 0)
		return r;
	j = job_new_snap(JOB_SNAP_BUILD, &s);
	store_snapshot_release(&s);
	if (!j)
		return -ENOMEM;
	return job_submit(m, j, snap_id, waiter);
}

int sbxd_mgr_snapshot_delete(sbxd_mgr *m, const char *snap_id, uint64_t waiter)
{
	struct store_snapshot s = {0};
	struct job *j;
	int r;

	r = store_snapshot_get(m->c.st, snap_id, STORE_OWNER_ANY, &s);
	if (r < 0)
		return r;
	pthread_mutex_lock(&m->lock);
	if (snapshot_busy_locked(m, snap_id)) {
		r = -EBUSY;
	} else if ((j = job_find(m, snap_id))) {
		r = job_add_waiter(j, waiter); /* a delete runs: join it */
	} else {
		r = store_snapshot_set_state(m->c.st, snap_id, SNAPSHOT_DELETING, "deleting");
		if (r == 0) {
			j = job_new_snap(JOB_SNAP_DELETE, &s);
			r = j ? job_add_waiter(j, waiter) : -ENOMEM;
			if (r == 0)
				r = mgr_job_start(m, j);
			if (r < 0)
				mgr_job_free(j);
		}
	}
	pthread_mutex_unlock(&m->lock);
	store_snapshot_release(&s);
	return r;
}

int sbxd_mgr_agent_address(sbxd_mgr *m, const char *vm_name, char *buf, size_t len)
{
	return m->c.vm->agent_address(m->c.vm_ctx, vm_name, buf, len);
}

unsigned sbxd_mgr_jobs(sbxd_mgr *m)
{
	unsigned n;

	pthread_mutex_lock(&m->lock);
	n = m->running;
	pthread_mutex_unlock(&m->lock);
	return n;
}

/* ---- zygote ---- */

struct zygote_req {
	sbxd_mgr *m;
	char *image_dir;
	unsigned vcpus, mem_mib;
	uint64_t disk_bytes;
};

static void *zygote_thread(void *arg)
{
	struct zygote_req *z = arg;
	sbxd_mgr *m = z->m;
	char err[MGR_MSG_MAX] = "";
	double t0 = clock_mono_s();
	int r;

	log_info("zygote: preparing the fast start of image %s (vcpus=%u mem_mib=%u)", z->image_dir,
		 z->vcpus, z->mem_mib);
	r = mgr_keep(
	    m->c.vm->zygote_ensure(m->c.vm_ctx, z->image_dir, z->vcpus, z->mem_mib, z->disk_bytes),
	    err, sizeof(err));
	if (r < 0)
		log_warn("zygote: image %s has no zygote (%s): sandboxes cold boot", z->image_dir,
			 err[0] ? err : strerror(-r));
	else
		log_info("zygote: image %s ready for fast starts after %.1f s", z->image_dir,
			 clock_mono_s() - t0);
	pthread_mutex_lock(&m->pools.lock);
	m->zygote_busy = false;
	pthread_cond_broadcast(&m->pools.wake);
	pthread_mutex_unlock(&m->pools.lock);
	free(z->image_dir);
	free(z);
	return NULL;
}

void sbxd_mgr_prepare_zygote(sbxd_mgr *m, const char *image_dir, unsigned vcpus, unsigned mem_mib,
			     uint64_t disk_bytes)
{
	struct zygote_req *z;

	if (!m->c.vm->zygote_ensure || m->zygote_started)
		return;
	z = calloc(1, sizeof(*z));
	if (!z || !(z->image_dir = strdup(image_dir))) {
		free(z);
		return;
	}
	z->m = m;
	z->vcpus = vcpus;
	z->mem_mib = mem_mib;
	z->disk_bytes = disk_bytes;
	pthread_mutex_lock(&m->pools.lock);
	m->zygote_busy = true;
	pthread_mutex_unlock(&m->pools.lock);
	if (pthread_create(&m->zygote_thread, NULL, zygote_thread, z) != 0) {
		log_warn("zygote: cannot start a thread for it, ignoring");
		pthread_mutex_lock(&m->pools.lock);
		m->zygote_busy = false;
		pthread_mutex_unlock(&m->pools.lock);
		free(z->image_dir);
		free(z);
		return;
	}
	m->zygote_started = true;
}
