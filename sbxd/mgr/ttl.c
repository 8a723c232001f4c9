/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ttl.c - the sandbox TTLs, enforced by a thread of the manager:
 *   idle_ttl_seconds           a ready sandbox that saw no API call and ran
 *                              no command for that long is stopped;
 *   delete_after_stop_seconds  a sandbox stopped for that long is deleted;
 *   max_lifetime_seconds       a sandbox that old is deleted, whatever its
 *                              state, once no job (stop, capture...) holds it.
 * 0 disables each. Every check reads the rows (the store is the truth),
 * so the TTLs hold across sbxd restarts.
 *
 * Activity (sbxd_mgr_touch()) is kept in memory per sandbox and written to
 * its row (active_ms) at most every TOUCH_WRITE_MS, so a busy sandbox costs
 * no database write per request; a restart loses at most that much of it.
 * Running commands are the data plane's to know: the stop the idle TTL
 * asks for is refused while one runs (sbxd_mgr_config.release_box).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "sbxd/mgr/mgr_int.h"

#define TOUCH_WRITE_MS 5000

static struct touch *touch_find(struct ttl *t, const char *id)
{
	for (struct touch *e = t->touches; e; e = e->next)
		if (!strcmp(e->id, id))
			return e;
	return NULL;
}

void sbxd_mgr_touch(sbxd_mgr *m, const char *box_id)
{
	struct ttl *t = &m->ttl;
	int64_t now = clock_wall_ms();
	struct touch *e;
	bool write = false;

	if (!box_id || strlen(box_id) > STORE_ID_LEN)
		return;
	pthread_mutex_lock(&t->lock);
	e = touch_find(t, box_id);
	if (!e && (e = calloc(1, sizeof(*e)))) {
		snprintf(e->id, sizeof(e->id), "%s", box_id);
		e->next = t->touches;
		t->touches = e;
	}
	if (e) {
		e->seen_ms = now;
		if (now - e->written_ms >= TOUCH_WRITE_MS) {
			e->written_ms = now;
			write = true;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (write)
		(void)store_box_touch(m->c.st, box_id, now);
}

int64_t ttl_seen_ms(sbxd_mgr *m, const char *box_id)
{
	struct touch *e;
	int64_t ms = 0;

	pthread_mutex_lock(&m->ttl.lock);
	e = touch_find(&m->ttl, box_id);
	if (e)
		ms = e->seen_ms;
	pthread_mutex_unlock(&m->ttl.lock);
	return ms;
}

/* Forget the activity of sandboxes that are gone. */
static void touches_prune(struct ttl *t, const struct store_box *rows, size_t n)
{
	pthread_mutex_lock(&t->lock);
	for (struct touch **pp = &t->touches; *pp;) {
		bool found = false;

		for (size_t i = 0; i < n && !found; i++)
			found = !strcmp(rows[i].id, (*pp)->id);
		if (found) {
			pp = &(*pp)->next;
		} else {
			struct touch *e = *pp;

			*pp = e->next;
			free(e);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/* Delete a sandbox whose TTL (named ttl, of `seconds`) ran out age_ms after
 * it was `what` (created, stopped). */
static void ttl_delete(sbxd_mgr *m, const struct store_box *b, const char *what, int64_t age_ms,
		       const char *ttl, int64_t seconds)
{
	int r;

	log_info_f(LOG_FIELDS({"sandbox", b->name}, {"id", b->id}),
		   "%s %lld s ago (%s %lld): deleting it", what, (long long)(age_ms / 1000), ttl,
		   (long long)seconds);
	r = sbxd_mgr_delete(m, b->id, 0);
	if (r < 0 && r != -ENOENT)
		log_warn_f(LOG_FIELDS({"sandbox", b->name}), "cannot delete it: %s, ignoring",
			   strerror(-r));
}

static void ttl_check_row(sbxd_mgr *m, const struct store_box *b, int64_t now)
{
	int64_t last;
	int r;

	if (b->max_lifetime_seconds > 0 && b->created_ms > 0 &&
	    now - b->created_ms >= b->max_lifetime_seconds * 1000) {
		if (sbxd_mgr_busy(m, b->id))
			return; /* a job holds it: the next check deletes it */
		ttl_delete(m, b, "created", now - b->created_ms, "max_lifetime_seconds",
			   b->max_lifetime_seconds);
		return;
	}
	if (b->state == BOX_READY && b->idle_ttl_seconds > 0) {
		/* updated_ms: it became ready (or was changed) then */
		last = max64(max64(b->active_ms, b->updated_ms), ttl_seen_ms(m, b->id));
		if (now - last < b->idle_ttl_seconds * 1000 || sbxd_mgr_busy(m, b->id))
			return;
		if (m->c.box_busy && m->c.box_busy(m->c.notify_ud, b->id) == 1) {
			sbxd_mgr_touch(m, b->id); /* a command runs: not idle */
			return;
		}
		log_info_f(LOG_FIELDS({"sandbox", b->name}, {"id", b->id}),
			   "idle for %lld s (idle_ttl_seconds %lld): stopping it",
			   (long long)((now - last) / 1000), (long long)b->idle_ttl_seconds);
		r = sbxd_mgr_stop(m, b->id, true, 0);
		if (r < 0 && r != -EBUSY)
			log_warn_f(LOG_FIELDS({"sandbox", b->name}), "cannot stop it: %s, ignoring",
				   strerror(-r));
		return;
	}
	if (b->state == BOX_STOPPED && b->delete_after_stop_seconds > 0 && b->stopped_ms > 0 &&
	    now - b->stopped_ms >= b->delete_after_stop_seconds * 1000 && !sbxd_mgr_busy(m, b->id))
		ttl_delete(m, b, "stopped", now - b->stopped_ms, "delete_after_stop_seconds",
			   b->delete_after_stop_seconds);
}

void sbxd_mgr_vm_stopped(sbxd_mgr *m, const char *vm_name, const char *reason)
{
	struct ttl *t = &m->ttl;

	pthread_mutex_lock(&t->lock);
	if (t->n_stopped < ARRAY_SIZE(t->stopped_vm)) {
		t->stopped_vm[t->n_stopped] = strdup(vm_name);
		t->stopped_why[t->n_stopped] = strdup(reason ? reason : "QEMU stopped");
		if (t->stopped_vm[t->n_stopped] && t->stopped_why[t->n_stopped])
			t->n_stopped++;
		else {
			free(t->stopped_vm[t->n_stopped]);
			free(t->stopped_why[t->n_stopped]);
		}
	} else {
		log_warn_f(LOG_FIELDS({"vm", vm_name}),
			   "stopped (%s), but too many such reports are queued: its sandbox is "
			   "noticed at its next use",
			   reason);
	}
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
}

/* A ready sandbox whose VM stopped on its own: failed, with the reason;
 * the data plane lets go of it and the VM's files are freed. Sandboxes in
 * a job (stop, delete, capture...) are the job's business. */
static void fail_stopped_vm(sbxd_mgr *m, const struct store_box *rows, size_t n,
			    const char *vm_name, const char *why)
{
	char msg[512], err[512] = "";

	for (size_t i = 0; i < n; i++) {
		const struct store_box *b = &rows[i];

		if (!b->vm_name || strcmp(b->vm_name, vm_name) || b->state != BOX_READY ||
		    sbxd_mgr_busy(m, b->id))
			continue;
		snprintf(msg, sizeof(msg), "the sandbox's VM stopped: %s", why);
		log_error_f(LOG_FIELDS({"sandbox", b->name}, {"id", b->id}, {"vm", vm_name}), "%s",
			    msg);
		pthread_mutex_lock(&m->lock);
		(void)store_box_set_state(m->c.st, b->id, BOX_FAILED, msg);
		pthread_mutex_unlock(&m->lock);
		if (m->c.release_box)
			(void)m->c.release_box(m->c.notify_ud, b->id, false);
		if (mgr_keep(m->c.vm->destroy(m->c.vm_ctx, vm_name), err, sizeof(err)) < 0)
			log_warn_f(LOG_FIELDS({"sandbox", b->name}, {"vm", vm_name}),
				   "cannot free the stopped VM: %s", err);
		return;
	}
}

static void ttl_tick(sbxd_mgr *m)
{
	struct store_box *rows = NULL;
	size_t n = 0, n_stopped;
	int64_t now = clock_wall_ms();
	char *vms[64], *why[64];

	pthread_mutex_lock(&m->ttl.lock);
	n_stopped = m->ttl.n_stopped;
	memcpy(vms, m->ttl.stopped_vm, n_stopped * sizeof(char *));
	memcpy(why, m->ttl.stopped_why, n_stopped * sizeof(char *));
	m->ttl.n_stopped = 0;
	pthread_mutex_unlock(&m->ttl.lock);

	if (store_box_list(m->c.st, STORE_OWNER_ANY, &rows, &n) < 0) {
		log_warn("ttl: cannot read the sandboxes: %s, ignoring", err_msg());
		n = 0;
	}
	for (size_t i = 0; i < n_stopped; i++) {
		fail_stopped_vm(m, rows, n, vms[i], why[i]);
		free(vms[i]);
		free(why[i]);
	}
	if (!rows)
		return;
	for (size_t i = 0; i < n; i++)
		ttl_check_row(m, &rows[i], now);
	touches_prune(&m->ttl, rows, n);
	store_boxes_free(rows, n);
}

static void *ttl_thread(void *arg)
{
	sbxd_mgr *m = arg;
	struct ttl *t = &m->ttl;
	unsigned ms = m->c.ttl_check_ms ? m->c.ttl_check_ms : 1000;

	pthread_mutex_lock(&t->lock);
	while (!t->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += ms / 1000;
		ts.tv_nsec += (long)(ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&t->wake, &t->lock, &ts);
		if (t->stopping)
			break;
		if (!t->armed)
			continue;
		pthread_mutex_unlock(&t->lock);
		ttl_tick(m);
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

int ttl_init(sbxd_mgr *m)
{
	struct ttl *t = &m->ttl;
	int r;

	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->wake, NULL);
	if (!m->c.st)
		return 0;
	r = pthread_create(&t->thread, NULL, ttl_thread, m);
	if (r != 0) {
		pthread_cond_destroy(&t->wake);
		pthread_mutex_destroy(&t->lock);
		return -r;
	}
	t->running = true;
	return 0;
}

void ttl_stop(sbxd_mgr *m)
{
	struct ttl *t = &m->ttl;
	struct touch *e, *n;

	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
	if (t->running)
		pthread_join(t->thread, NULL);
	t->running = false;
	for (e = t->touches; e; e = n) {
		n = e->next;
		free(e);
	}
	t->touches = NULL;
	for (size_t i = 0; i < t->n_stopped; i++) {
		free(t->stopped_vm[i]);
		free(t->stopped_why[i]);
	}
	t->n_stopped = 0;
	pthread_cond_destroy(&t->wake);
	pthread_mutex_destroy(&t->lock);
}
