/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pool.c - prewarmed pools: per source (an image, or a snapshot), N
 * VMs started ahead of time, whose agent answered and that never ran a
 * command. Creating a sandbox of that source and shape takes one (no
 * boot: the sandbox gets its identity by FIXUP) and the pool refills.
 *
 * One thread does all the slow work, one VM at a time (a TCG host has few
 * cores): it starts a VM for the pool that lacks one the most, destroys
 * VMs over a pool's size (or of a removed pool), and pings each pooled VM
 * every check_s seconds, replacing those whose agent stopped answering.
 * A failed start backs off (2, 4, ... 60 s) so a broken source does not
 * spin. Image pools wait while the image's zygote is being built, so that
 * they are filled by forks rather than cold boots.
 *
 * Invariants: a pooled VM is known only to its pool (no sandbox row), so
 * it is handed out at most once; it is never handed out while a health
 * check holds its agent channel (busy). A pool struct is freed only by the
 * pool thread, when it is removed and nothing of it is in flight.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "sbxd/common/key.h"
#include "sbxd/mgr/mgr_int.h"

#define POOL_RETRY_MAX_S 60.0
#define POOL_CHECK_TIMEOUT_MS 5000

void sbxd_pool_image_source(const char *image_dir, char *buf, size_t len)
{
	const char *end, *start;
	size_t n = strlen(image_dir);

	while (n > 1 && image_dir[n - 1] == '/')
		n--;
	end = image_dir + n;
	start = end;
	while (start > image_dir && start[-1] != '/')
		start--;
	snprintf(buf, len, "image:%.*s", (int)(end - start), start);
}

void sbxd_pool_snapshot_source(const char *snap_id, char *buf, size_t len)
{
	snprintf(buf, len, "snapshot:%s", snap_id);
}

static struct pool *pool_find(struct pools *P, const char *source)
{
	for (struct pool *p = P->list; p; p = p->next)
		if (!strcmp(p->source, source))
			return p;
	return NULL;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool pool_same_shape(const struct pool *p, const struct sbxd_pool_spec *s)
{
	return same_str(p->image_dir, s->image_dir) && same_str(p->snapshot_id, s->snapshot_id) &&
	       p->restore_memory == s->restore_memory && p->vcpus == s->vcpus &&
	       p->mem_mib == s->mem_mib && p->disk_bytes == s->disk_bytes;
}

static int pool_set_shape(struct pool *p, const struct sbxd_pool_spec *s)
{
	char *img = s->image_dir ? strdup(s->image_dir) : NULL;
	char *snap = s->snapshot_id ? strdup(s->snapshot_id) : NULL;

	if ((s->image_dir && !img) || (s->snapshot_id && !snap)) {
		free(img);
		free(snap);
		return -ENOMEM;
	}
	free(p->image_dir);
	free(p->snapshot_id);
	p->image_dir = img;
	p->snapshot_id = snap;
	p->restore_memory = s->restore_memory;
	p->vcpus = s->vcpus;
	p->mem_mib = s->mem_mib;
	p->disk_bytes = s->disk_bytes;
	return 0;
}

/* Destroys a list of VMs (no lock held). */
static void destroy_list(sbxd_mgr *m, struct pool_vm *list, const char *source, const char *why)
{
	struct pool_vm *n;

	for (struct pool_vm *v = list; v; v = n) {
		char err[MGR_MSG_MAX] = "";

		n = v->next;
		log_info_f(LOG_FIELDS({"pool", source}, {"vm", v->name}), "destroyed: %s", why);
		if (mgr_keep(m->c.vm->destroy(m->c.vm_ctx, v->name), err, sizeof(err)) < 0)
			log_warn_f(LOG_FIELDS({"pool", source}, {"vm", v->name}),
				   "could not be destroyed: %s, ignoring", err);
		free(v);
	}
}

int sbxd_mgr_pool_set(sbxd_mgr *m, const struct sbxd_pool_spec *s)
{
	struct pools *P = &m->pools;
	struct pool *p;
	int r = 0;

	pthread_mutex_lock(&P->lock);
	p = pool_find(P, s->source);
	if (!s->size) {
		if (p && !p->removed) {
			p->removed = true;
			p->target = 0;
			log_info_f(LOG_FIELDS({"pool", p->source}), "removed: draining %u VM(s)",
				   p->n_ready);
		}
		goto out;
	}
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p) {
			r = -ENOMEM;
			goto out;
		}
		snprintf(p->source, sizeof(p->source), "%s", s->source);
		r = pool_set_shape(p, s);
		if (r < 0) {
			free(p);
			goto out;
		}
		p->next = P->list;
		P->list = p;
	} else if (!pool_same_shape(p, s)) {
		/* VMs of the old shape would be handed out under the new one:
		 * the pool thread drops them (target 0 first), then refills. */
		r = pool_set_shape(p, s);
		if (r < 0)
			goto out;
		for (struct pool_vm *v = p->ready; v; v = v->next)
			v->checked_s = -1; /* stale: see pool_thread */
	}
	p->removed = false;
	p->target = s->size;
	p->failures = 0;
	p->retry_s = 0;
	log_info_f(LOG_FIELDS({"pool", p->source}),
		   "size %u (vcpus=%u mem_mib=%u disk_bytes=%llu%s)", p->target, p->vcpus,
		   p->mem_mib, (unsigned long long)p->disk_bytes,
		   p->restore_memory ? ", resumes memory" : "");
out:
	pthread_cond_broadcast(&P->wake);
	pthread_mutex_unlock(&P->lock);
	return r;
}

int sbxd_mgr_pool_take(sbxd_mgr *m, const char *source, bool restore_memory, unsigned vcpus,
		       unsigned mem_mib, uint64_t disk_bytes, char *ret_vm, size_t len)
{
	struct pools *P = &m->pools;
	struct pool *p;
	int r = -ENOENT;

	pthread_mutex_lock(&P->lock);
	p = pool_find(P, source);
	if (!p || p->removed || p->restore_memory != restore_memory || p->vcpus != vcpus ||
	    p->mem_mib != mem_mib || p->disk_bytes != disk_bytes)
		goto out;
	for (struct pool_vm **pp = &p->ready; *pp; pp = &(*pp)->next) {
		struct pool_vm *v = *pp;

		if (v->busy || v->checked_s < 0)
			continue;
		*pp = v->next;
		p->n_ready--;
		snprintf(ret_vm, len, "%s", v->name);
		free(v);
		r = 0;
		pthread_cond_broadcast(&P->wake); /* refill */
		break;
	}
out:
	pthread_mutex_unlock(&P->lock);
	return r;
}

void sbxd_mgr_pool_discard(sbxd_mgr *m, const char *vm_name)
{
	struct pools *P = &m->pools;
	struct pool_vm *v = calloc(1, sizeof(*v));

	if (!v) {
		log_warn_f(LOG_FIELDS({"vm", vm_name}),
			   "out of memory: it stays until sbxd restarts");
		return;
	}
	snprintf(v->name, sizeof(v->name), "%s", vm_name);
	pthread_mutex_lock(&P->lock);
	v->next = P->discard;
	P->discard = v;
	pthread_cond_broadcast(&P->wake);
	pthread_mutex_unlock(&P->lock);
}

void sbxd_mgr_pool_foreach(sbxd_mgr *m,
			   void (*fn)(void *ud, const char *source, unsigned ready,
				      unsigned target),
			   void *ud)
{
	struct pools *P = &m->pools;

	pthread_mutex_lock(&P->lock);
	for (struct pool *p = P->list; p; p = p->next)
		if (!p->removed)
			fn(ud, p->source, p->n_ready, p->target);
	pthread_mutex_unlock(&P->lock);
}

unsigned sbxd_mgr_pool_ready(sbxd_mgr *m, const char *source)
{
	struct pools *P = &m->pools;
	struct pool *p;
	unsigned n = 0;

	pthread_mutex_lock(&P->lock);
	p = pool_find(P, source);
	if (p && !p->removed)
		n = p->n_ready;
	pthread_mutex_unlock(&P->lock);
	return n;
}

/* ---- the pool thread ---- */

struct fill {
	char source[SBXD_POOL_SOURCE_MAX];
	char *image_dir, *snapshot_id;
	bool restore_memory;
	unsigned vcpus, mem_mib;
	uint64_t disk_bytes;
};

static bool fill_cancelled(void *ud)
{
	sbxd_mgr *m = ud;
	bool c;

	pthread_mutex_lock(&m->pools.lock);
	c = m->pools.stopping;
	pthread_mutex_unlock(&m->pools.lock);
	return c;
}

/* Start one VM for a pool, no lock held: 0 and its name. */
static int fill_one(sbxd_mgr *m, const struct fill *f, char *name, const char **ret_how)
{
	unsigned timeout = m->c.boot_timeout_s ? m->c.boot_timeout_s : 120;
	struct sbxd_vm_spec spec = {
	    .name = name,
	    .image_dir = f->image_dir,
	    .hostname = name,
	    .vcpus = f->vcpus,
	    .mem_mib = f->mem_mib,
	    .disk_bytes = f->disk_bytes,
	    .snapshot_id = f->snapshot_id,
	    .restore_memory = f->restore_memory,
	};
	int r;

	r = sbxd_uuid4(name);
	if (r < 0)
		return r;
	r = m->c.vm->start(m->c.vm_ctx, &spec, ret_how);
	if (r < 0)
		return r;
	r = m->c.vm->wait_agent(m->c.vm_ctx, name, (int)timeout * 1000, fill_cancelled, m);
	if (r < 0) {
		char why[MGR_MSG_MAX];

		mgr_keep(r, why, sizeof(why));
		if (m->c.vm->destroy(m->c.vm_ctx, name) < 0)
			log_warn("pool vm=%s could not be destroyed: %s, ignoring", name,
				 err_msg());
		err_set(r, "%s", why);
	}
	return r;
}

/* The pool that lacks a VM the most and may start one now (lock held). */
static struct pool *pool_to_fill(sbxd_mgr *m, double now)
{
	struct pool *best = NULL;
	unsigned best_missing = 0;

	for (struct pool *p = m->pools.list; p; p = p->next) {
		unsigned missing;

		if (p->removed || p->filling || p->n_ready >= p->target)
			continue;
		/* image (and fresh-start) pools wait for the zygote build */
		if (m->zygote_busy && !p->restore_memory)
			continue;
		if (p->retry_s > now)
			continue;
		missing = p->target - p->n_ready;
		if (missing > best_missing) {
			best = p;
			best_missing = missing;
		}
	}
	return best;
}

/* Unlink what is over a pool's size, stale, or of removed pools; free
 * removed pools that are idle (lock held). Returns the VMs to destroy;
 * *ret_gc is set when a removed snapshot pool went (its snapshot's blobs
 * may be garbage once its VMs are destroyed). */
static struct pool_vm *pool_trim(struct pools *P, char *source, size_t slen, bool *ret_gc)
{
	struct pool_vm *out = NULL;

	for (struct pool **pp = &P->list; *pp;) {
		struct pool *p = *pp;

		for (struct pool_vm **vp = &p->ready; *vp;) {
			struct pool_vm *v = *vp;

			if (!v->busy && (v->checked_s < 0 || p->n_ready > p->target)) {
				*vp = v->next;
				p->n_ready--;
				v->next = out;
				out = v;
				snprintf(source, slen, "%s", p->source);
				continue;
			}
			vp = &v->next;
		}
		if (p->removed && !p->ready && !p->filling) {
			*pp = p->next;
			if (p->snapshot_id)
				*ret_gc = true;
			free(p->image_dir);
			free(p->snapshot_id);
			free(p);
			continue;
		}
		pp = &p->next;
	}
	return out;
}

/* A pooled VM due for a health check, marked busy (lock held). */
static struct pool_vm *pool_due_check(struct pools *P, double now, struct pool **ret_pool)
{
	for (struct pool *p = P->list; p; p = p->next) {
		for (struct pool_vm *v = p->ready; v; v = v->next) {
			if (!v->busy && v->checked_s >= 0 && now - v->checked_s >= P->check_s) {
				v->busy = true;
				*ret_pool = p;
				return v;
			}
		}
	}
	return NULL;
}

static void pool_check(sbxd_mgr *m, struct pool *p, struct pool_vm *v)
{
	struct pools *P = &m->pools;
	char err[MGR_MSG_MAX] = "";
	char source[SBXD_POOL_SOURCE_MAX];
	int r;

	snprintf(source, sizeof(source), "%s", p->source);
	pthread_mutex_unlock(&P->lock);
	r = mgr_keep(
	    m->c.vm->wait_agent(m->c.vm_ctx, v->name, POOL_CHECK_TIMEOUT_MS, fill_cancelled, m),
	    err, sizeof(err));
	pthread_mutex_lock(&P->lock);
	v->busy = false;
	if (r == 0 || r == -ECANCELED) {
		v->checked_s = clock_mono_s();
		return;
	}
	/* Replace it: unlink (p is still listed: busy kept it) and destroy. */
	for (struct pool_vm **pp = &p->ready; *pp; pp = &(*pp)->next) {
		if (*pp == v) {
			*pp = v->next;
			p->n_ready--;
			break;
		}
	}
	pthread_mutex_unlock(&P->lock);
	log_warn_f(LOG_FIELDS({"pool", source}, {"vm", v->name}),
		   "its agent stopped answering (%s): replacing it", err);
	v->next = NULL;
	destroy_list(m, v, source, "its agent stopped answering");
	pthread_mutex_lock(&P->lock);
}

static void pool_fill(sbxd_mgr *m, struct pool *p)
{
	struct pools *P = &m->pools;
	char name[STORE_ID_LEN + 1] = "";
	char err[MGR_MSG_MAX] = "";
	const char *how = NULL;
	struct fill f = {0};
	struct pool_vm *v;
	double t0 = clock_mono_s();
	bool copied;
	int r = -ENOMEM;

	snprintf(f.source, sizeof(f.source), "%s", p->source);
	f.image_dir = p->image_dir ? strdup(p->image_dir) : NULL;
	f.snapshot_id = p->snapshot_id ? strdup(p->snapshot_id) : NULL;
	f.restore_memory = p->restore_memory;
	f.vcpus = p->vcpus;
	f.mem_mib = p->mem_mib;
	f.disk_bytes = p->disk_bytes;
	copied = (!p->image_dir || f.image_dir) && (!p->snapshot_id || f.snapshot_id);
	p->filling = true;
	pthread_mutex_unlock(&P->lock);

	if (copied)
		r = mgr_keep(fill_one(m, &f, name, &how), err, sizeof(err));

	pthread_mutex_lock(&P->lock);
	p->filling = false;
	if (r == 0 && !P->stopping && !p->removed && p->n_ready < p->target &&
	    same_str(p->snapshot_id, f.snapshot_id) && p->restore_memory == f.restore_memory &&
	    p->vcpus == f.vcpus && p->mem_mib == f.mem_mib && p->disk_bytes == f.disk_bytes &&
	    (v = calloc(1, sizeof(*v)))) {
		struct pool_vm **tail = &p->ready;

		snprintf(v->name, sizeof(v->name), "%s", name);
		v->checked_s = clock_mono_s();
		while (*tail)
			tail = &(*tail)->next;
		*tail = v;
		p->n_ready++;
		p->failures = 0;
		log_info_f(LOG_FIELDS({"pool", p->source}, {"vm", name}),
			   "ready after %.2f s (%s); %u/%u ready", clock_mono_s() - t0,
			   how ? how : "boot", p->n_ready, p->target);
	} else if (r == 0) {
		/* not wanted any more */
		pthread_mutex_unlock(&P->lock);
		v = calloc(1, sizeof(*v));
		if (v) {
			snprintf(v->name, sizeof(v->name), "%s", name);
			destroy_list(m, v, f.source, "its pool no longer needs it");
		}
		pthread_mutex_lock(&P->lock);
	} else if (r != -ECANCELED) {
		double wait = 2.0;

		for (unsigned i = 0; i < p->failures && wait < POOL_RETRY_MAX_S; i++)
			wait *= 2;
		if (wait > POOL_RETRY_MAX_S)
			wait = POOL_RETRY_MAX_S;
		p->failures++;
		p->retry_s = clock_mono_s() + wait;
		log_warn_f(LOG_FIELDS({"pool", f.source}),
			   "starting a VM failed (%s); next try in %.0f s",
			   err[0] ? err : strerror(-r), wait);
	}
	free(f.image_dir);
	free(f.snapshot_id);
}

static void *pool_thread(void *arg)
{
	sbxd_mgr *m = arg;
	struct pools *P = &m->pools;

	pthread_mutex_lock(&P->lock);
	while (!P->stopping) {
		char source[SBXD_POOL_SOURCE_MAX] = "";
		struct pool_vm *drop, *v;
		struct pool *p;
		double now = clock_mono_s();
		bool gc = false;
		struct timespec ts;

		if (P->discard) {
			drop = P->discard;
			P->discard = NULL;
			pthread_mutex_unlock(&P->lock);
			destroy_list(m, drop, "-", "taken from its pool but not used");
			pthread_mutex_lock(&P->lock);
			continue;
		}
		drop = pool_trim(P, source, sizeof(source), &gc);
		if (drop || gc) {
			char err[MGR_MSG_MAX] = "";

			pthread_mutex_unlock(&P->lock);
			destroy_list(m, drop, source, "over its pool's size, or of a removed pool");
			if (gc && m->c.vm->snap_gc &&
			    mgr_keep(m->c.vm->snap_gc(m->c.vm_ctx, false), err, sizeof(err)) < 0)
				log_warn("snapshots: garbage collection failed: %s, ignoring", err);
			pthread_mutex_lock(&P->lock);
			continue;
		}
		p = pool_to_fill(m, now);
		if (p) {
			pool_fill(m, p);
			continue;
		}
		v = pool_due_check(P, now, &p);
		if (v) {
			pool_check(m, p, v);
			continue;
		}
		/* Sleep until woken, or a second (retries, health checks). */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&P->wake, &P->lock, &ts);
	}
	pthread_mutex_unlock(&P->lock);
	return NULL;
}

int pools_init(sbxd_mgr *m)
{
	struct pools *P = &m->pools;
	int r;

	pthread_mutex_init(&P->lock, NULL);
	pthread_cond_init(&P->wake, NULL);
	P->check_s = m->c.pool_check_s ? m->c.pool_check_s : 20;
	r = pthread_create(&P->thread, NULL, pool_thread, m);
	if (r != 0) {
		pthread_cond_destroy(&P->wake);
		pthread_mutex_destroy(&P->lock);
		return -r;
	}
	P->running = true;
	return 0;
}

void pools_stop(sbxd_mgr *m)
{
	struct pools *P = &m->pools;
	struct pool *p, *n;

	if (!P->running)
		return;
	pthread_mutex_lock(&P->lock);
	P->stopping = true;
	pthread_cond_broadcast(&P->wake);
	pthread_mutex_unlock(&P->lock);
	pthread_join(P->thread, NULL);
	P->running = false;
	/* Pooled VMs are never adopted by the next sbxd: end them now. */
	for (p = P->list; p; p = n) {
		n = p->next;
		destroy_list(m, p->ready, p->source, "sbxd is stopping");
		free(p->image_dir);
		free(p->snapshot_id);
		free(p);
	}
	P->list = NULL;
	destroy_list(m, P->discard, "-", "taken from its pool but not used");
	P->discard = NULL;
	pthread_cond_destroy(&P->wake);
	pthread_mutex_destroy(&P->lock);
}
