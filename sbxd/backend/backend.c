/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backend.c - the real VM backend of the sandbox manager: the VM driver
 * (vm.h) for VMs, the snapshot library (snap.h) for snapshots, fast starts
 * and restores, and the agent client (agent_client.h) to see that a guest
 * answers and to give a pooled VM its identity. Every call is blocking and
 * may run on any worker thread (the VM driver and the snapshot library
 * keep their error messages per thread).
 *
 * Readiness is "the agent answered HELLO and a PING" over the VM's agent
 * channel. The connection is closed again right away: a virtio-serial
 * channel has one host side at a time, and it belongs to the data plane.
 * For the same reason a capture asks the snapshot library to sync the
 * guest itself only when the data plane let go of the channel (a stop);
 * else sbxd has the data plane run sync(1) on its connection first.
 *
 * Zygotes: per (image, vCPUs, memory, disk) this backend remembers whether
 * the zygote is being built, ready or failed, so that a start never waits
 * for a build another thread runs (it cold boots instead) and a failed
 * zygote is logged once and not tried again until sbxd restarts.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "host/agent/agent_client.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "sbxd/backend/backend.h"
#include "snapshot/snap.h"
#include "host/vm/vm.h"

#define FIXUP_CONNECT_MS 10000

enum zyg_state { ZYG_BUILDING, ZYG_READY, ZYG_FAILED };

struct zyg {
	struct zyg *next;
	char *image_dir;
	unsigned vcpus, mem_mib;
	uint64_t disk_bytes;
	enum zyg_state state;
};

struct sbxd_vm_backend {
	vm_driver *d;
	snap_store *ss;
	pthread_mutex_t lock;
	struct zyg *zygs;
};

int sbxd_vm_backend_new(vm_driver *d, snap_store *ss, sbxd_vm_backend **ret)
{
	sbxd_vm_backend *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->d = d;
	b->ss = ss;
	pthread_mutex_init(&b->lock, NULL);
	*ret = b;
	return 0;
}

sbxd_vm_backend *sbxd_vm_backend_free(sbxd_vm_backend *b)
{
	struct zyg *z, *n;

	if (!b)
		return NULL;
	for (z = b->zygs; z; z = n) {
		n = z->next;
		free(z->image_dir);
		free(z);
	}
	pthread_mutex_destroy(&b->lock);
	free(b);
	return NULL;
}

/* ---- zygote bookkeeping ---- */

/* The zygote entry of a shape (lock held); created (state building) when
 * create is set and there is none: *ret_new then says so. */
static struct zyg *zyg_get(sbxd_vm_backend *b, const char *image_dir, unsigned vcpus,
			   unsigned mem_mib, uint64_t disk_bytes, bool create, bool *ret_new)
{
	struct zyg *z;

	*ret_new = false;
	for (z = b->zygs; z; z = z->next)
		if (!strcmp(z->image_dir, image_dir) && z->vcpus == vcpus &&
		    z->mem_mib == mem_mib && z->disk_bytes == disk_bytes)
			return z;
	if (!create)
		return NULL;
	z = calloc(1, sizeof(*z));
	if (!z || !(z->image_dir = strdup(image_dir))) {
		free(z);
		return NULL;
	}
	z->vcpus = vcpus;
	z->mem_mib = mem_mib;
	z->disk_bytes = disk_bytes;
	z->state = ZYG_BUILDING;
	z->next = b->zygs;
	b->zygs = z;
	*ret_new = true;
	return z;
}

/* Whether a fresh start of this shape should fork the zygote: yes when it
 * is ready, or when nobody builds it yet (this start builds it:
 * *ret_builder). No while another thread builds it, or after it failed. */
static bool zyg_use(sbxd_vm_backend *b, const char *image_dir, unsigned vcpus, unsigned mem_mib,
		    uint64_t disk_bytes, bool *ret_builder)
{
	struct zyg *z;
	bool use;

	pthread_mutex_lock(&b->lock);
	z = zyg_get(b, image_dir, vcpus, mem_mib, disk_bytes, true, ret_builder);
	use = z && (z->state == ZYG_READY || *ret_builder);
	pthread_mutex_unlock(&b->lock);
	return use;
}

static void zyg_settle(sbxd_vm_backend *b, const char *image_dir, unsigned vcpus, unsigned mem_mib,
		       uint64_t disk_bytes, bool ok, const char *why)
{
	struct zyg *z;
	bool created;

	pthread_mutex_lock(&b->lock);
	z = zyg_get(b, image_dir, vcpus, mem_mib, disk_bytes, true, &created);
	if (z && z->state != ZYG_FAILED && !ok)
		log_warn("fast start: no zygote for image %s (vcpus=%u mem_mib=%u): %s; its "
			 "sandboxes cold boot until sbxd restarts",
			 image_dir, vcpus, mem_mib, why && *why ? why : "unknown reason");
	if (z)
		z->state = ok ? ZYG_READY : ZYG_FAILED;
	pthread_mutex_unlock(&b->lock);
}

/* ---- starting VMs ---- */

static int no_store(void)
{
	return err_set(-EOPNOTSUPP, "this sbxd has no snapshot store");
}

static int cold_boot(sbxd_vm_backend *b, const struct sbxd_vm_spec *spec)
{
	_cleanup_vm_ vm *v = NULL;
	struct vm_config cfg = {
	    .name = spec->name,
	    .image_dir = spec->image_dir,
	    .vcpus = spec->vcpus,
	    .memory_mib = spec->mem_mib,
	    .disk_bytes = spec->disk_bytes,
	    .hostname = spec->hostname,
	};
	int r = vm_start(b->d, &cfg, &v);

	return r;
}

static int vb_start(void *ctx, const struct sbxd_vm_spec *spec, const char **ret_how)
{
	sbxd_vm_backend *b = ctx;
	_cleanup_vm_ vm *v = NULL;
	const char *how = NULL;
	bool builder = false;
	struct snap_restore_opts o = {
	    .vm_name = spec->name,
	    .hostname = spec->hostname,
	    .restore_memory = spec->restore_memory,
	    .vcpus = spec->restore_memory ? 0 : spec->vcpus,
	    .memory_mib = spec->restore_memory ? 0 : spec->mem_mib,
	    .disk_bytes = spec->disk_bytes,
	};
	int r;

	if (ret_how)
		*ret_how = "cold-boot";
	if (!b->ss) {
		if (spec->snapshot_id)
			return no_store();
		return cold_boot(b, spec);
	}
	if (!spec->restore_memory)
		o.use_zygote = zyg_use(b, spec->image_dir, spec->vcpus, spec->mem_mib,
				       spec->disk_bytes, &builder);
	if (spec->snapshot_id) {
		r = snap_restore(b->ss, b->d, spec->snapshot_id, &o, &v, &how);
	} else {
		r = snap_start_image(b->ss, b->d, spec->image_dir, &o, &v, &how);
		if (r < 0) {
			/* The snapshot library could not start it at all: the
			 * plain driver may still. */
			log_warn_f(LOG_FIELDS({"vm", spec->name}),
				   "fast start of image %s failed (%s); cold booting it",
				   spec->image_dir, err_msg());
			if (builder)
				zyg_settle(b, spec->image_dir, spec->vcpus, spec->mem_mib,
					   spec->disk_bytes, false, err_msg());
			builder = false;
			r = cold_boot(b, spec);
			how = "cold-boot";
		}
	}
	if (builder)
		zyg_settle(b, spec->image_dir, spec->vcpus, spec->mem_mib, spec->disk_bytes,
			   r == 0 && how && !strcmp(how, "zygote-fork"), err_msg());
	if (r == 0 && ret_how && how)
		*ret_how = how;
	return r;
}

struct wait_ctx {
	vm_driver *d;
	vm *v;
	bool (*cancelled)(void *);
	void *cud;
	unsigned ticks;
};

static int wait_check(void *ud)
{
	struct wait_ctx *w = ud;

	if (w->cancelled && w->cancelled(w->cud))
		return -ECANCELED;
	/* Asking libvirt every ~1 s (checks come every ~100 ms) is enough to
	 * fail fast when QEMU died instead of waiting out the timeout. */
	if (++w->ticks % 10 == 0 && vm_is_running(w->v) == 0)
		return -ECHILD;
	return 0;
}

/* The last console line(s), on one line, for a failure message. */
static void console_hint(vm *v, char *buf, size_t len)
{
	char tail[512];
	size_t n = 0;

	buf[0] = '\0';
	if (vm_console_tail(v, tail, sizeof(tail)) < 0 || !tail[0])
		return;
	for (char *p = tail; *p && n + 1 < len; p++) {
		char c = *p == '\n' || *p == '\r' ? ' ' : *p;

		if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e)
			c = '?';
		if (c == ' ' && n > 0 && buf[n - 1] == ' ')
			continue;
		buf[n++] = c;
	}
	buf[n] = '\0';
}

static int vb_wait_agent(void *ctx, const char *vm_name, int timeout_ms, bool (*cancelled)(void *),
			 void *cud)
{
	sbxd_vm_backend *b = ctx;
	vm_driver *d = b->d;
	_cleanup_vm_ vm *v = NULL;
	char addr[PATH_MAX + 8], hint[200];
	struct wait_ctx w = {.d = d, .cancelled = cancelled, .cud = cud};
	struct agent_connect_opts o = {.timeout_ms = timeout_ms, .check = wait_check, .ud = &w};
	agent_client *c = NULL;
	uint64_t rtt;
	int r;

	r = vm_lookup(d, vm_name, &v);
	if (r < 0) {
		return r;
	}
	/* Nothing of ours pauses or migrates a VM we wait for: if it is, sbxd
	 * was killed in the middle of capturing it (the agent could never
	 * answer, or would stop answering at the migration's switchover). */
	r = vm_recover_paused(v);
	if (r > 0)
		log_warn_f(LOG_FIELDS({"vm", vm_name}), "was left in an interrupted capture: its "
							"migration is cancelled and it runs again");
	else if (r < 0)
		log_warn_f(LOG_FIELDS({"vm", vm_name}), "%s, ignoring", err_msg());
	w.v = v;
	snprintf(addr, sizeof(addr), "unix:%s", vm_agent_socket(v));
	r = agent_client_connect_opts(addr, &o, &c);
	if (r == -ECANCELED)
		return r;
	if (r == 0) {
		r = agent_ping(c, &rtt);
		if (r < 0)
			err_set(0, "the guest agent did not answer a ping: %s", err_msg());
		agent_client_free(c);
		return r;
	}
	console_hint(v, hint, sizeof(hint));
	if (r == -ECHILD)
		return err_set(r, "the VM stopped while booting%s%s", hint[0] ? "; console: " : "",
			       hint);
	if (r == -ETIMEDOUT)
		return err_set(r, "the guest agent did not answer within %d s%s%s",
			       timeout_ms / 1000, hint[0] ? "; console: " : "", hint);
	return err_set(r, "cannot reach the guest agent: %s%s%s", err_msg(),
		       hint[0] ? "; console: " : "", hint);
}

static int vb_destroy(void *ctx, const char *vm_name)
{
	sbxd_vm_backend *b = ctx;
	int r = vm_destroy_by_name(b->d, vm_name);

	if (r == -ENOENT)
		return 0;
	return r;
}

static int vb_list(void *ctx, char ***ret)
{
	sbxd_vm_backend *b = ctx;

	return vm_list(b->d, ret);
}

static int vb_list_stale(void *ctx, char ***ret)
{
	sbxd_vm_backend *b = ctx;

	return vm_list_stale(b->d, ret);
}

static void vb_free_list(char **names)
{
	vm_strv_free(names);
}

static int vb_is_running(void *ctx, const char *vm_name)
{
	sbxd_vm_backend *b = ctx;
	_cleanup_vm_ vm *v = NULL;
	int r = vm_lookup(b->d, vm_name, &v);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	return vm_is_running(v);
}

static int vb_agent_address(void *ctx, const char *vm_name, char *buf, size_t len)
{
	sbxd_vm_backend *b = ctx;
	_cleanup_vm_ vm *v = NULL;
	int r = vm_lookup(b->d, vm_name, &v);

	if (r < 0)
		return r;
	r = snprintf(buf, len, "unix:%s", vm_agent_socket(v));
	return r < 0 || (size_t)r >= len ? -ENAMETOOLONG : 0;
}

static int vb_fixup(void *ctx, const char *vm_name, const char *hostname)
{
	sbxd_vm_backend *b = ctx;
	_cleanup_vm_ vm *v = NULL;
	char addr[PATH_MAX + 8];
	agent_client *c = NULL;
	int r;

	r = vm_lookup(b->d, vm_name, &v);
	if (r < 0)
		return r;
	snprintf(addr, sizeof(addr), "unix:%s", vm_agent_socket(v));
	r = agent_client_connect(addr, FIXUP_CONNECT_MS, &c);
	if (r < 0)
		return err_set(r, "cannot reach the guest agent: %s", err_msg());
	r = snap_fixup(c, hostname, NULL);
	agent_client_free(c);
	return r;
}

/* ---- snapshots ---- */

static void info_from_manifest(const struct snap_manifest *m, struct sbxd_snap_info *ret)
{
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->kind, sizeof(ret->kind), "%s", snap_kind_to_string(m->kind));
	ret->building = m->status == SNAP_BUILDING;
	ret->vcpus = m->vcpus;
	ret->mem_mib = m->memory_mib;
	ret->disk_bytes = m->disk_bytes;
	for (size_t i = 0; i < m->n_parts; i++)
		if (m->parts[i].role == SNAP_PART_RAM || m->parts[i].role == SNAP_PART_STATE ||
		    m->parts[i].role == SNAP_PART_STREAM)
			ret->memory_bytes += m->parts[i].size;
	snprintf(ret->image_dir, sizeof(ret->image_dir), "%s", m->image_dir ? m->image_dir : "");
	snprintf(ret->image_digest, sizeof(ret->image_digest), "%s",
		 m->image_digest ? m->image_digest : "");
}

static int vb_snap_capture(void *ctx, const char *vm_name, const struct sbxd_snap_capture *c,
			   struct sbxd_snap_info *ret)
{
	sbxd_vm_backend *b = ctx;
	_cleanup_vm_ vm *v = NULL;
	_cleanup_manifest_ struct snap_manifest *m = NULL;
	_cleanup_manifest_ struct snap_manifest *parent = NULL;
	struct snap_capture_opts o = {
	    .id = c->id,
	    .name = c->name,
	    .include_memory = c->include_memory,
	};
	int r;

	if (!b->ss)
		return no_store();
	r = vm_lookup(b->d, vm_name, &v);
	if (r < 0) {
		return r;
	}
	/* A parent that was deleted meanwhile is no parent (the VM still has
	 * its layers: they are the VM's). */
	if (c->parent && snap_load(b->ss, c->parent, &parent) == 0)
		o.parent = c->parent;
	if (c->sync_guest)
		o.agent_socket = vm_agent_socket(v);
	r = snap_capture(b->ss, b->d, v, &o, &m);
	if (r < 0) {
		return r;
	}
	info_from_manifest(m, ret);
	return 0;
}

static int vb_snap_from_image(void *ctx, const char *id, const char *name, const char *image_dir,
			      uint64_t disk_bytes, struct sbxd_snap_info *ret)
{
	sbxd_vm_backend *b = ctx;
	_cleanup_manifest_ struct snap_manifest *m = NULL;
	int r;

	if (!b->ss)
		return no_store();
	r = snap_from_image(b->ss, id, image_dir, name, disk_bytes, &m);
	if (r < 0) {
		return r;
	}
	info_from_manifest(m, ret);
	return 0;
}

static int vb_snap_info(void *ctx, const char *id, struct sbxd_snap_info *ret)
{
	sbxd_vm_backend *b = ctx;
	_cleanup_manifest_ struct snap_manifest *m = NULL;
	int r;

	if (!b->ss)
		return no_store();
	r = snap_load(b->ss, id, &m);
	if (r < 0) {
		return r;
	}
	info_from_manifest(m, ret);
	return 0;
}

static int vb_snap_delete(void *ctx, const char *id)
{
	sbxd_vm_backend *b = ctx;
	uint64_t freed = 0;
	int r;

	if (!b->ss)
		return 0;
	r = snap_delete(b->ss, id, &freed);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		return r;
	}
	log_info("snapshot id=%s removed from the store, %llu bytes freed (blobs in use stay)", id,
		 (unsigned long long)freed);
	return 0;
}

static int vb_snap_gc(void *ctx, bool dead_building)
{
	sbxd_vm_backend *b = ctx;
	uint64_t freed = 0;
	int r;

	if (!b->ss)
		return 0;
	r = snap_gc(b->ss, dead_building, &freed);
	if (r < 0) {
		return r;
	}
	if (freed)
		log_info("snapshots: garbage collection freed %llu bytes",
			 (unsigned long long)freed);
	return 0;
}

static int vb_zygote_ensure(void *ctx, const char *image_dir, unsigned vcpus, unsigned mem_mib,
			    uint64_t disk_bytes)
{
	sbxd_vm_backend *b = ctx;
	_cleanup_free_ char *id = NULL;
	struct zyg *z;
	bool created;
	int r;

	if (!b->ss)
		return no_store();
	pthread_mutex_lock(&b->lock);
	z = zyg_get(b, image_dir, vcpus, mem_mib, disk_bytes, true, &created);
	r = !z ? -ENOMEM : z->state == ZYG_READY ? 1 : !created ? -EALREADY : 0;
	pthread_mutex_unlock(&b->lock);
	if (r == 1)
		return 0;
	if (r == -EALREADY)
		return err_set(r, "another start builds it, or it failed before");
	if (r < 0)
		return r;
	r = snap_zygote_ensure(b->ss, b->d, image_dir, vcpus, mem_mib, disk_bytes, &id);
	zyg_settle(b, image_dir, vcpus, mem_mib, disk_bytes, r == 0, err_msg());
	return r;
}

const struct sbxd_vm_ops sbxd_vm_libvirt_ops = {
    .start = vb_start,
    .wait_agent = vb_wait_agent,
    .destroy = vb_destroy,
    .list = vb_list,
    .list_stale = vb_list_stale,
    .free_list = vb_free_list,
    .is_running = vb_is_running,
    .agent_address = vb_agent_address,
    .fixup = vb_fixup,
    .snap_capture = vb_snap_capture,
    .snap_from_image = vb_snap_from_image,
    .snap_info = vb_snap_info,
    .snap_delete = vb_snap_delete,
    .snap_gc = vb_snap_gc,
    .zygote_ensure = vb_zygote_ensure,
};
