/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reconcile.c - at start, before serving: make the sandbox and snapshot
 * rows and the VMs and snapshot directories on disk agree (moved from
 * mgr.c). A row is the truth: a VM without a row is destroyed; a row
 * whose VM is gone, or that a restart interrupted mid-job (booting,
 * deleting, stopping, starting), is finished, rolled back or marked failed
 * (reconcile_row()).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "sbxd/mgr/mgr_int.h"

/* ---- reconciliation ---- */

static bool strv_has(char **v, const char *s)
{
	for (; v && *v; v++)
		if (!strcmp(*v, s))
			return true;
	return false;
}

static void reconcile_row(sbxd_mgr *m, const struct store_box *b, bool has_vm)
{
	char err[MGR_MSG_MAX];
	struct job *j;
	int running = 0, r;

	switch (b->state) {
	case BOX_DELETING:
		log_info_f(LOG_FIELDS({"sandbox", b->name}, {"id", b->id}),
			   "finishing its interrupted deletion");
		j = mgr_job_new(JOB_DELETE, b);
		pthread_mutex_lock(&m->lock);
		r = j ? mgr_job_start(m, j) : -ENOMEM;
		pthread_mutex_unlock(&m->lock);
		if (r < 0) {
			mgr_job_free(j);
			log_error_f(LOG_FIELDS({"sandbox", b->name}),
				    "cannot finish its deletion: %s", strerror(-r));
		}
		return;
	case BOX_STARTING:
		/* Roll back: the stop snapshot is dropped only once a start is
		 * done, so the sandbox is still whole. */
		log_info_f(LOG_FIELDS({"sandbox", b->name}, {"id", b->id}),
			   "sbxd stopped while it was starting: it stays stopped");
		if (mgr_keep(m->c.vm->destroy(m->c.vm_ctx, b->vm_name), err, sizeof(err)) < 0)
			log_warn_f(LOG_FIELDS({"sandbox", b->name}, {"vm", b->vm_name}),
				   "%s, ignoring", err);
		(void)store_box_set_state(m->c.st, b->id, BOX_STOPPED,
					  "sbxd restarted while the sandbox was starting: start it "
					  "again");
		return;
	case BOX_STOPPING:
		if (b->stop_snapshot_id) {
			/* Roll forward: it was saved. */
			log_info_f(LOG_FIELDS({"sandbox", b->name}, {"id", b->id}),
				   "finishing its interrupted stop");
			if (mgr_keep(m->c.vm->destroy(m->c.vm_ctx, b->vm_name), err, sizeof(err)) <
			    0)
				log_warn_f(LOG_FIELDS({"sandbox", b->name}, {"vm", b->vm_name}),
					   "%s, ignoring", err);
			(void)store_box_set_state(m->c.st, b->id, BOX_STOPPED, NULL);
			return;
		}
		/* Not saved yet: it goes on running, as a ready sandbox. */
		/* fall through */
	case BOX_PROVISIONING:
	case BOX_READY:
		if (has_vm)
			running = m->c.vm->is_running(m->c.vm_ctx, b->vm_name);
		if (running == 1) {
			log_info_f(LOG_FIELDS({"sandbox", b->name}, {"id", b->id}),
				   "adopting its running VM");
			(void)store_box_set_state(m->c.st, b->id, BOX_PROVISIONING,
						  "sbxd restarted: waiting for the sandbox's agent "
						  "to answer");
			j = mgr_job_new(JOB_ADOPT, b);
			pthread_mutex_lock(&m->lock);
			r = j ? mgr_job_start(m, j) : -ENOMEM;
			pthread_mutex_unlock(&m->lock);
			if (r < 0)
				mgr_job_free(j);
			if (r == 0)
				return;
		}
		/* Also without a domain: a crashed QEMU leaves its overlay behind. */
		if (mgr_keep(m->c.vm->destroy(m->c.vm_ctx, b->vm_name), err, sizeof(err)) < 0)
			log_warn_f(LOG_FIELDS({"sandbox", b->name}, {"vm", b->vm_name}),
				   "%s, ignoring", err);
		log_warn_f(LOG_FIELDS({"sandbox", b->name}, {"id", b->id}),
			   "marked failed: its VM was not running when sbxd started");
		(void)store_box_set_state(m->c.st, b->id, BOX_FAILED,
					  "the VM was not running when sbxd started");
		return;
	case BOX_FAILED:
	case BOX_STOPPED:
	case BOX_STATE_COUNT:
	case BOX_STATE_INVALID:
		if (has_vm) {
			log_info_f(LOG_FIELDS({"sandbox", b->name}, {"id", b->id}),
				   "is %s: removing its leftover VM",
				   box_state_to_string(b->state));
			if (mgr_keep(m->c.vm->destroy(m->c.vm_ctx, b->vm_name), err, sizeof(err)) <
			    0)
				log_warn_f(LOG_FIELDS({"sandbox", b->name}, {"vm", b->vm_name}),
					   "%s, ignoring", err);
		}
		return;
	}
}

/* Destroy each VM of vms (NULL ended, may be NULL) that no row names. */
static void destroy_unowned(sbxd_mgr *m, char **vms, const struct store_box *rows, size_t n,
			    const char *what)
{
	for (char **p = vms; p && *p; p++) {
		char err[MGR_MSG_MAX];
		bool owned = false;

		for (size_t i = 0; i < n && !owned; i++)
			owned = !strcmp(rows[i].vm_name, *p);
		if (owned)
			continue;
		log_info_f(LOG_FIELDS({"vm", *p}), "%s", what);
		if (mgr_keep(m->c.vm->destroy(m->c.vm_ctx, *p), err, sizeof(err)) < 0)
			log_warn_f(LOG_FIELDS({"vm", *p}), "%s, ignoring", err);
	}
}

int sbxd_mgr_reconcile(sbxd_mgr *m)
{
	struct store_box *rows = NULL;
	char **names = NULL, **stale = NULL;
	size_t n = 0;
	int r;

	r = m->c.vm->list(m->c.vm_ctx, &names);
	if (r < 0)
		return r;
	r = store_box_list(m->c.st, STORE_OWNER_ANY, &rows, &n);
	if (r < 0) {
		m->c.vm->free_list(names);
		return r;
	}
	for (size_t i = 0; i < n; i++)
		reconcile_row(m, &rows[i], strv_has(names, rows[i].vm_name));
	/* Pool VMs of an earlier run land here too: never trusted. */
	destroy_unowned(m, names, rows, n, "no sandbox owns it: destroying it");
	/* Directories of VMs that no longer exist (a helper VM of a capture,
	 * a start or a destroy that a kill -9 cut short), owned by no row. */
	if (m->c.vm->list_stale && m->c.vm->list_stale(m->c.vm_ctx, &stale) == 0) {
		destroy_unowned(m, stale, rows, n,
				"removing the directory of a VM that no longer exists");
		m->c.vm->free_list(stale);
	}
	log_info("reconciled %zu sandbox row(s) with the VMs found", n);
	pthread_mutex_lock(&m->ttl.lock);
	m->ttl.armed = true; /* the TTLs may act on the rows now */
	pthread_mutex_unlock(&m->ttl.lock);
	store_boxes_free(rows, n);
	m->c.vm->free_list(names);
	return 0;
}

static void reconcile_snapshot(sbxd_mgr *m, const struct store_snapshot *s)
{
	char err[MGR_MSG_MAX] = "";
	char msg[MGR_MSG_MAX + 128];
	struct sbxd_snap_info info;
	int r;

	switch (s->state) {
	case SNAPSHOT_BUILDING:
		log_warn_f(LOG_FIELDS({"snapshot", s->name}, {"id", s->id}),
			   "marked failed: sbxd stopped while it was being taken");
		if (m->c.vm->snap_delete &&
		    mgr_keep(m->c.vm->snap_delete(m->c.vm_ctx, s->id), err, sizeof(err)) < 0)
			log_warn("snapshot id=%s: %s, ignoring", s->id, err);
		(void)store_snapshot_set_state(m->c.st, s->id, SNAPSHOT_FAILED,
					       "sbxd stopped while the snapshot was being taken; "
					       "take it again");
		return;
	case SNAPSHOT_DELETING:
		log_info_f(LOG_FIELDS({"snapshot", s->name}, {"id", s->id}),
			   "finishing its interrupted deletion");
		r = m->c.vm->snap_delete
			? mgr_keep(m->c.vm->snap_delete(m->c.vm_ctx, s->id), err, sizeof(err))
			: 0;
		if (r < 0) {
			snprintf(msg, sizeof(msg),
				 "deleting the snapshot failed: %s (delete it again to retry)",
				 err);
			(void)store_snapshot_set_state(m->c.st, s->id, SNAPSHOT_FAILED, msg);
		} else {
			(void)store_snapshot_delete(m->c.st, s->id);
		}
		return;
	case SNAPSHOT_READY:
		if (!m->c.vm->snap_info)
			return;
		r = mgr_keep(m->c.vm->snap_info(m->c.vm_ctx, s->id, &info), err, sizeof(err));
		if (r == -ENOENT) {
			snprintf(msg, sizeof(msg),
				 "the snapshot's manifest is gone (snapshots/%s/manifest.json): "
				 "delete it",
				 s->id);
			log_warn_f(LOG_FIELDS({"snapshot", s->name}, {"id", s->id}),
				   "marked failed: %s", msg);
			(void)store_snapshot_set_state(m->c.st, s->id, SNAPSHOT_FAILED, msg);
		} else if (r < 0) {
			log_warn_f(LOG_FIELDS({"snapshot", s->name}, {"id", s->id}),
				   "%s (its sandboxes will not start), ignoring", err);
		}
		return;
	case SNAPSHOT_FAILED:
	case SNAPSHOT_STATE_COUNT:
	case SNAPSHOT_STATE_INVALID:
		return;
	}
}

int sbxd_mgr_reconcile_snapshots(sbxd_mgr *m)
{
	struct store_snapshot *rows = NULL;
	char err[MGR_MSG_MAX] = "";
	size_t n = 0;
	int r;

	r = store_snapshot_list(m->c.st, STORE_OWNER_ANY, NULL, 0, 0, &rows, &n, NULL);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		reconcile_snapshot(m, &rows[i]);
	store_snapshots_free(rows, n);
	/* Nothing captures yet: what is still "building" on disk is dead. */
	if (m->c.vm->snap_gc && mgr_keep(m->c.vm->snap_gc(m->c.vm_ctx, true), err, sizeof(err)) < 0)
		log_warn("snapshots: garbage collection failed: %s, ignoring", err);
	log_info("reconciled %zu snapshot row(s) with the snapshot store", n);
	return 0;
}
