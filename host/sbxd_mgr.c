/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbxd_mgr.c - boot, adoption and deletion jobs of sandboxes, one detached
 * worker thread per job.
 *
 * Invariants:
 *  - a sandbox has at most one job (struct job) at a time; a delete that
 *    arrives during a boot does not start a second one but cancels the
 *    boot, whose worker then destroys the VM and removes the rows;
 *  - a worker changes a row's state only while holding m->lock, after
 *    checking its job was not cancelled; sbxd_mgr_delete() marks the row
 *    deleting under the same lock, so neither overwrites the other;
 *  - waiters are notified after the row was updated, so a waiter reading
 *    the store sees the outcome.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "log.h"
#include "sbxd_mgr.h"

#define MGR_MSG_MAX 1024

enum job_kind { JOB_BOOT, JOB_ADOPT, JOB_DELETE };

struct waiter {
	uint64_t id;
	struct waiter *next;
};

struct job {
	sbxd_mgr *m;
	enum job_kind kind;
	char id[STORE_ID_LEN + 1];
	char *name; /* sandbox name, for logs and the guest hostname */
	char *vm_name;
	char *image;
	unsigned vcpus;
	uint64_t mem_bytes, disk_bytes;
	bool cancel; /* a delete arrived: the worker turns into a delete */
	struct waiter *waiters;
	struct job *next;
};

struct sbxd_mgr {
	struct sbxd_mgr_config c;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	struct job *jobs;
	unsigned running;
	bool stopping;
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
	}
	return "?";
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

static void job_free(struct job *j)
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

/* Destroy the VM and remove the rows; the job is retired either way. */
static void run_delete(sbxd_mgr *m, struct job *j)
{
	char err[MGR_MSG_MAX] = "";
	char msg[MGR_MSG_MAX + 64];
	struct waiter *w;
	enum mgr_outcome o = MGR_DELETED;
	int r;

	r = m->c.vm->destroy(m->c.vm_ctx, j->vm_name, err, sizeof(err));
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
				 "the VM is gone but its row could not be removed: %s",
				 store_last_error());
			o = MGR_DELETE_FAILED;
		}
	}
	w = job_retire(m, j);
	pthread_mutex_unlock(&m->lock);
	if (o == MGR_DELETED)
		log_info("sandbox=%s id=%s deleted", j->name, j->id);
	else
		log_error("sandbox=%s id=%s %s", j->name, j->id, msg);
	notify_all(m, w, j->id, o, o == MGR_DELETED ? "" : msg);
}

/* Boot (start + wait for the agent) or adopt (wait only). */
static void run_boot(sbxd_mgr *m, struct job *j)
{
	char err[MGR_MSG_MAX] = "";
	char msg[MGR_MSG_MAX + 128] = "";
	unsigned timeout = m->c.boot_timeout_s ? m->c.boot_timeout_s : 120;
	enum mgr_outcome o = MGR_READY;
	double t0 = mono_s();
	bool started = j->kind == JOB_ADOPT;
	struct waiter *w;
	int r = 0;

	if (j->kind == JOB_BOOT && !job_cancelled(j)) {
		struct sbxd_vm_spec spec = {
		    .name = j->vm_name,
		    .image_dir = j->image,
		    .hostname = j->name,
		    .vcpus = j->vcpus,
		    .mem_mib = (unsigned)(j->mem_bytes >> 20),
		    .disk_bytes = j->disk_bytes,
		};

		r = m->c.vm->start(m->c.vm_ctx, &spec, err, sizeof(err));
		if (r < 0)
			snprintf(msg, sizeof(msg), "the VM could not start: %s",
				 err[0] ? err : strerror(-r));
		else
			started = true;
	}
	if (r == 0 && !job_cancelled(j)) {
		r = m->c.vm->wait_agent(m->c.vm_ctx, j->vm_name, (int)timeout * 1000, job_cancelled,
					j, err, sizeof(err));
		if (r < 0 && r != -ECANCELED)
			snprintf(msg, sizeof(msg), "%s%s",
				 j->kind == JOB_ADOPT ? "after sbxd restarted, " : "",
				 err[0] ? err : strerror(-r));
	}

	pthread_mutex_lock(&m->lock);
	if (j->cancel) {
		pthread_mutex_unlock(&m->lock);
		run_delete(m, j); /* a delete arrived meanwhile: it owns the job now */
		return;
	}
	if (m->stopping && r == -ECANCELED) {
		/* Shutting down: leave the row and VM for the next start. */
		w = job_retire(m, j);
		pthread_mutex_unlock(&m->lock);
		notify_all(m, w, j->id, MGR_FAILED, "sbxd is shutting down");
		return;
	}
	if (r < 0) {
		o = MGR_FAILED;
		(void)store_box_set_state(m->c.st, j->id, BOX_FAILED, msg);
	} else {
		(void)store_box_set_state(m->c.st, j->id, BOX_READY, NULL);
	}
	w = job_retire(m, j);
	pthread_mutex_unlock(&m->lock);

	if (o == MGR_READY) {
		log_info("sandbox=%s id=%s ready after %.1f s (%s)", j->name, j->id, mono_s() - t0,
			 job_kind_to_string(j->kind));
	} else {
		log_warn("sandbox=%s id=%s failed: %s", j->name, j->id, msg);
		if (started) {
			char derr[MGR_MSG_MAX];

			if (m->c.vm->destroy(m->c.vm_ctx, j->vm_name, derr, sizeof(derr)) < 0)
				log_warn(
				    "sandbox=%s vm=%s could not be destroyed after its failure: "
				    "%s, ignoring",
				    j->name, j->vm_name, derr);
		}
	}
	notify_all(m, w, j->id, o, o == MGR_READY ? "" : msg);
}

static void *worker(void *arg)
{
	struct job *j = arg;
	sbxd_mgr *m = j->m;

	if (j->kind == JOB_DELETE)
		run_delete(m, j);
	else
		run_boot(m, j);
	job_free(j);
	pthread_mutex_lock(&m->lock);
	if (--m->running == 0)
		pthread_cond_broadcast(&m->idle);
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

/* Called with m->lock held: j is linked and its thread started. */
static int job_start(sbxd_mgr *m, struct job *j)
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

static struct job *job_new(enum job_kind kind, const struct store_box *b)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->kind = kind;
	snprintf(j->id, sizeof(j->id), "%s", b->id);
	j->name = strdup(b->name ? b->name : "");
	j->vm_name = strdup(b->vm_name ? b->vm_name : "");
	j->image = strdup(b->image ? b->image : "");
	j->vcpus = b->vcpus;
	j->mem_bytes = b->mem_bytes;
	j->disk_bytes = b->fs_capacity_bytes;
	if (!j->name || !j->vm_name || !j->image) {
		job_free(j);
		return NULL;
	}
	return j;
}

int sbxd_mgr_new(const struct sbxd_mgr_config *c, sbxd_mgr **ret)
{
	sbxd_mgr *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->c = *c;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->idle, NULL);
	*ret = m;
	return 0;
}

sbxd_mgr *sbxd_mgr_free(sbxd_mgr *m)
{
	if (!m)
		return NULL;
	pthread_mutex_lock(&m->lock);
	m->stopping = true;
	if (m->running)
		log_info("waiting for %u sandbox job(s) to stop", m->running);
	while (m->running)
		pthread_cond_wait(&m->idle, &m->lock);
	pthread_mutex_unlock(&m->lock);
	pthread_cond_destroy(&m->idle);
	pthread_mutex_destroy(&m->lock);
	free(m);
	return NULL;
}

int sbxd_mgr_boot(sbxd_mgr *m, const struct store_box *b, uint64_t waiter)
{
	struct job *j = job_new(JOB_BOOT, b);
	int r;

	if (!j)
		return -ENOMEM;
	r = job_add_waiter(j, waiter);
	pthread_mutex_lock(&m->lock);
	if (r == 0 && job_find(m, b->id))
		r = -EBUSY;
	if (r == 0)
		r = job_start(m, j);
	pthread_mutex_unlock(&m->lock);
	if (r < 0)
		job_free(j);
	return r;
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

void sbxd_mgr_unwait(sbxd_mgr *m, const char *box_id, uint64_t waiter)
{
	struct job *j;

	pthread_mutex_lock(&m->lock);
	j = job_find(m, box_id);
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
		/* A boot or a delete is running: join it. */
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
		j = job_new(JOB_DELETE, &b);
		r = j ? job_add_waiter(j, waiter) : -ENOMEM;
		if (r == 0)
			r = job_start(m, j);
		if (r < 0)
			job_free(j);
	}
	pthread_mutex_unlock(&m->lock);
	store_box_release(&b);
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
		log_info("sandbox=%s id=%s: finishing its interrupted deletion", b->name, b->id);
		j = job_new(JOB_DELETE, b);
		pthread_mutex_lock(&m->lock);
		r = j ? job_start(m, j) : -ENOMEM;
		pthread_mutex_unlock(&m->lock);
		if (r < 0) {
			job_free(j);
			log_error("sandbox=%s: cannot finish its deletion: %s", b->name,
				  strerror(-r));
		}
		return;
	case BOX_PROVISIONING:
	case BOX_READY:
		if (has_vm)
			running = m->c.vm->is_running(m->c.vm_ctx, b->vm_name);
		if (running == 1) {
			log_info("sandbox=%s id=%s: adopting its running VM", b->name, b->id);
			(void)store_box_set_state(m->c.st, b->id, BOX_PROVISIONING,
						  "sbxd restarted: waiting for the sandbox's agent "
						  "to answer");
			j = job_new(JOB_ADOPT, b);
			pthread_mutex_lock(&m->lock);
			r = j ? job_start(m, j) : -ENOMEM;
			pthread_mutex_unlock(&m->lock);
			if (r < 0)
				job_free(j);
			if (r == 0)
				return;
		}
		/* Also without a domain: a crashed QEMU leaves its overlay behind. */
		if (m->c.vm->destroy(m->c.vm_ctx, b->vm_name, err, sizeof(err)) < 0)
			log_warn("sandbox=%s vm=%s: %s, ignoring", b->name, b->vm_name, err);
		log_warn(
		    "sandbox=%s id=%s: marked failed: its VM was not running when sbxd started",
		    b->name, b->id);
		(void)store_box_set_state(m->c.st, b->id, BOX_FAILED,
					  "the VM was not running when sbxd started");
		return;
	case BOX_FAILED:
	case BOX_STOPPED:
	case _BOX_STATE_MAX:
	case _BOX_STATE_INVALID:
		if (has_vm) {
			log_info("sandbox=%s id=%s is %s: removing its leftover VM", b->name, b->id,
				 box_state_to_string(b->state));
			if (m->c.vm->destroy(m->c.vm_ctx, b->vm_name, err, sizeof(err)) < 0)
				log_warn("sandbox=%s vm=%s: %s, ignoring", b->name, b->vm_name,
					 err);
		}
		return;
	}
}

int sbxd_mgr_reconcile(sbxd_mgr *m)
{
	struct store_box *rows = NULL;
	char **names = NULL;
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
	for (char **p = names; p && *p; p++) {
		char err[MGR_MSG_MAX];
		bool owned = false;

		for (size_t i = 0; i < n && !owned; i++)
			owned = !strcmp(rows[i].vm_name, *p);
		if (owned)
			continue;
		log_info("vm=%s: no sandbox owns it: destroying it", *p);
		if (m->c.vm->destroy(m->c.vm_ctx, *p, err, sizeof(err)) < 0)
			log_warn("vm=%s: %s, ignoring", *p, err);
	}
	log_info("reconciled %zu sandbox row(s) with the VMs found", n);
	store_boxes_free(rows, n);
	m->c.vm->free_list(names);
	return 0;
}
