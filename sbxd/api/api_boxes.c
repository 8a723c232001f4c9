/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_boxes.c - the control-plane handlers: POST/GET /boxes, GET/PATCH/
 * DELETE /boxes/{name}, GET /boxes/{name}/status, POST /boxes/{name}/stop
 * and /start, and placeholders for what is not built yet (service and
 * download URLs).
 *
 * Create writes the row (state provisioning) before the manager starts
 * the VM: from the default image, or from a snapshot (resuming its memory
 * with restore_memory; its run_config under the sandbox's own). A ready
 * VM of a prewarmed pool with the same source and shape is taken when
 * there is one: the row names it before the manager gives it the
 * sandbox's identity. With wait_for_ready, the request is deferred until the manager
 * reports the outcome, or answered 408 by a timer (the boot goes on).
 * Delete is deferred until the VM and rows are gone; stop and start until
 * the sandbox is stopped or ready (or a timer answers with its state).
 * A PATCH counts as activity for the idle TTL; reads do not.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "sbxd/api/api_int.h"
#include "sbxd/api/api_render.h"
#include "base/cleanup.h"
#include "base/log.h"

json_t *api_box_render(sbxd_api *a, http_req *r, const struct store_box *b)
{
	char url[1024];

	if (api_dataplane_url(a->public_url, http_req_host(r), b->id, url, sizeof(url)) < 0 &&
	    api_dataplane_url(a->fallback_base, NULL, b->id, url, sizeof(url)) < 0)
		url[0] = '\0';
	return api_box_json(b, url[0] ? url : NULL);
}

/* Loads the sandbox named by the route for this key; replies 404 (or 500)
 * and returns <0 when there is none. */
static int load_box(sbxd_api *a, http_req *r, struct api_ctx *ctx, struct store_box *ret)
{
	int e = store_box_get(a->st, ctx->route.target, api_owner(ctx), ret);

	if (e == -ENOENT)
		return http_reply_error(r, 404, "NotFound", "sandbox '%s' not found",
					ctx->route.target),
		       e;
	if (e < 0) {
		log_error_f(LOG_FIELDS({"request", http_req_id_str(r)}),
			    "cannot read sandbox %s: %s", ctx->route.target, err_msg());
		return http_reply_error(r, 500, "InternalError",
					"cannot read the sandbox (see the server log)"),
		       e;
	}
	return 0;
}

/* The caller's key's own quota, after the host's caps. The create runs on
 * the HTTP loop's one thread, so count and insert cannot interleave. */
static int check_key_quota(sbxd_api *a, struct api_ctx *ctx, const struct api_resources *res,
			   struct api_error *e)
{
	struct store_usage use;
	struct store_key k;
	int r;

	r = store_key_get(a->st, ctx->who.key_id, &k);
	if (r == -ENOENT)
		return 0; /* no key (an open server): the host's caps only */
	if (r < 0)
		return r;
	if (k.max_sandboxes || k.max_mem_bytes) {
		r = store_box_usage_of(a->st, k.id, &use);
		if (r == 0)
			r = api_check_key_quota(k.name, k.max_sandboxes, k.max_mem_bytes,
						use.sandboxes, use.mem_bytes, res, e);
	}
	store_key_release(&k);
	return r;
}

static void reply_box(sbxd_api *a, http_req *r, int status, const char *id)
{
	struct store_box b;

	if (store_box_get(a->st, id, STORE_OWNER_ANY, &b) < 0) {
		http_reply_error(r, 404, "NotFound", "sandbox '%s' not found", id);
		return;
	}
	http_reply_json(r, status, api_box_render(a, r, &b));
	store_box_release(&b);
}

static void list_boxes(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	struct store_box *v = NULL;
	json_t *arr, *o;
	size_t n = 0;

	if (store_box_list(a->st, api_owner(ctx), &v, &n) < 0) {
		http_reply_error(r, 500, "InternalError", "cannot list sandboxes: %s", err_msg());
		return;
	}
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, api_box_render(a, r, &v[i])) < 0)
			arr = (json_decref(arr), NULL);
	store_boxes_free(v, n);
	/* the langsmith SDK reads "sandboxes", generated clients "items" */
	o = arr ? json_pack("{s:O, s:O, s:n}", "sandboxes", arr, "items", arr, "next_cursor")
		: NULL;
	json_decref(arr);
	http_reply_json(r, 200, o);
}

static int generate_name(char *buf, size_t len)
{
	char id[STORE_ID_LEN + 1];
	int r = sbxd_uuid4(id);

	if (r < 0)
		return r;
	snprintf(buf, len, "sandbox-%.8s", id);
	return 0;
}

static void create_timeout(http_server *s, http_req *r, void *arg)
{
	sbxd_api *a = arg;
	struct api_ctx *ctx = http_req_data(r);

	(void)s;
	sbxd_mgr_unwait(a->mgr, ctx->box_id, http_req_id(r));
	http_reply_error(r, 408, "Timeout",
			 "sandbox '%s' did not become ready within %lld s; it is still starting: "
			 "poll GET /api/v2/sandboxes/boxes/%s/status, or delete it",
			 ctx->box_name, (long long)ctx->timeout_s, ctx->box_name);
}

/* The snapshot a create names, checked: 0, or <0 after replying. */
static int load_create_snapshot(sbxd_api *a, http_req *r, struct api_ctx *ctx,
				const struct api_create_req *q, struct store_snapshot *ret)
{
	const char *ref = q->snapshot_id ? q->snapshot_id : q->snapshot_name;
	int e = store_snapshot_get(a->st, ref, api_owner(ctx), ret);

	if (e == 0 && ret->state == SNAPSHOT_DELETING) {
		store_snapshot_release(ret);
		e = -ENOENT;
	}
	if (e == -ENOENT)
		return http_reply_error(r, 404, "NotFound", "snapshot '%s' not found", ref), e;
	if (e < 0)
		return http_reply_error(r, 500, "InternalError", "cannot read snapshot '%s': %s",
					ref, err_msg()),
		       e;
	if (ret->state == SNAPSHOT_BUILDING)
		e = http_reply_error(r, 409, "Conflict",
				     "snapshot '%s' is still being built: wait until its status "
				     "is ready",
				     ret->name);
	else if (ret->state == SNAPSHOT_FAILED)
		e = http_reply_error(
		    r, 409, "Conflict", "snapshot '%s' failed and cannot start sandboxes: %s",
		    ret->name, ret->status_message ? ret->status_message : "no reason known");
	else if (q->restore_memory == 1 && !ret->include_memory)
		e = http_reply_error(r, 422, "ValidationError",
				     "restore_memory: snapshot '%s' holds no memory (it was "
				     "captured without include_memory); leave restore_memory out "
				     "to start fresh on its filesystem",
				     ret->name);
	if (e < 0 || http_req_replied(r)) {
		store_snapshot_release(ret);
		return -EINVAL;
	}
	return 0;
}

/* Resources of a sandbox started from snapshot s: resuming its memory
 * keeps the captured VM's shape; a fresh start takes the request's (or
 * the defaults) on a disk no smaller than the snapshot's. */
static int snapshot_resources(const sbxd_api *a, const struct store_snapshot *s,
			      const struct api_create_req *q, struct api_resources *res,
			      struct api_error *e)
{
	struct api_limits l = a->limits;

	if (q->restore_memory == 1) {
		res->vcpus = s->vcpus ? s->vcpus : l.default_vcpus;
		res->mem_bytes = s->mem_bytes ? s->mem_bytes : l.default_mem_bytes;
		res->fs_capacity_bytes = s->fs_capacity_bytes;
		if ((q->vcpus && (uint64_t)q->vcpus != res->vcpus) ||
		    (q->mem_bytes && (uint64_t)q->mem_bytes != res->mem_bytes) ||
		    (q->fs_capacity_bytes &&
		     (uint64_t)q->fs_capacity_bytes != res->fs_capacity_bytes))
			return api_error_set(
			    e, 422, "ValidationError",
			    "restore_memory: a sandbox that resumes snapshot '%s' has its "
			    "shape (%u vCPUs, mem_bytes %llu, fs_capacity_bytes %llu); leave "
			    "vcpus, mem_bytes and fs_capacity_bytes out",
			    s->name, res->vcpus, (unsigned long long)res->mem_bytes,
			    (unsigned long long)res->fs_capacity_bytes);
		return 0;
	}
	if (s->fs_capacity_bytes > l.min_disk_bytes)
		l.min_disk_bytes = s->fs_capacity_bytes;
	if (l.default_disk_bytes < l.min_disk_bytes)
		l.default_disk_bytes = l.min_disk_bytes;
	if (l.max_disk_bytes < l.default_disk_bytes)
		l.max_disk_bytes = l.default_disk_bytes;
	return api_resolve_resources(&l, q, res, e);
}

/* Fill a new row from the request, its resolved resources and hard TTL;
 * the caller inserts it. */
static int new_row(sbxd_api *a, struct api_ctx *ctx, struct api_create_req *q,
		   const struct api_resources *res, int64_t lifetime, struct store_box *b)
{
	int r = sbxd_uuid4(b->id);

	if (r < 0)
		return r;
	b->owner = ctx->who.key_id;
	b->state = BOX_PROVISIONING;
	b->status_message = "starting the VM";
	b->vcpus = res->vcpus;
	b->mem_bytes = res->mem_bytes;
	b->fs_capacity_bytes = res->fs_capacity_bytes;
	b->image = a->image_dir;
	b->vm_name = b->id; /* unique, fixed for life, and a valid VM name */
	b->persistent = q->persistent != 0;
	b->preserve_memory_on_stop = q->preserve_memory_on_stop == 1;
	b->idle_ttl_seconds = q->idle_ttl_seconds >= 0 ? q->idle_ttl_seconds : 600;
	b->delete_after_stop_seconds =
	    q->delete_after_stop_seconds >= 0 ? q->delete_after_stop_seconds : 0;
	b->max_lifetime_seconds = lifetime;
	b->labels = q->labels;
	b->run_config = q->run_config;
	b->proxy_config = q->proxy_config;
	b->mount_config = q->mount_config;
	b->access_delegation = q->access_delegation;
	return 0;
}

static void create_box(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	struct api_create_req q;
	struct api_resources res;
	struct api_error e = {0};
	struct store_usage use;
	struct store_box b = {0};
	struct store_snapshot snap = {0};
	_cleanup_free_ char *run_config = NULL;
	char gen[API_NAME_MAX + 1], source[SBXD_POOL_SOURCE_MAX], pool_vm[STORE_ID_LEN + 1];
	size_t len;
	const char *body = http_req_body(r, &len);
	bool from_snapshot = false, restore = false, pooled = false;
	uint64_t waiter = 0;
	int64_t lifetime = 0;
	int ret;

	if (api_parse_create(body, len, &q, &e) < 0) {
		api_reply_error(r, &e);
		return;
	}
	if (q.snapshot_id || q.snapshot_name) {
		if (load_create_snapshot(a, r, ctx, &q, &snap) < 0)
			goto out;
		from_snapshot = true;
		restore = q.restore_memory == 1;
		ret = snapshot_resources(a, &snap, &q, &res, &e);
	} else {
		ret = api_resolve_resources(&a->limits, &q, &res, &e);
	}
	if (ret == 0)
		ret = api_resolve_lifetime(&a->limits, &q, &lifetime, &e);
	if (ret < 0) {
		api_reply_error(r, &e);
		goto out;
	}
	if (store_box_usage(a->st, &use) < 0 ||
	    api_check_quota(&a->limits, use.sandboxes, use.mem_bytes, &res, &e) < 0 ||
	    check_key_quota(a, ctx, &res, &e) < 0) {
		if (!e.status)
			api_error_set(&e, 500, "InternalError", "cannot count sandboxes: %s",
				      err_msg());
		api_reply_error(r, &e);
		goto out;
	}
	ret = new_row(a, ctx, &q, &res, lifetime, &b);
	if (ret == 0 && from_snapshot) {
		/* run_config layers: the snapshot's, then the sandbox's own */
		if (snap.run_config && q.run_config)
			ret = api_merge_run_config(snap.run_config, q.run_config, &run_config);
		else if (snap.run_config && !(run_config = strdup(snap.run_config)))
			ret = -ENOMEM;
		if (run_config)
			b.run_config = run_config;
		b.snapshot_id = snap.id;
		if (snap.image_dir)
			b.image = snap.image_dir;
	}
	for (int tries = 0; ret == 0; tries++) {
		if (q.name)
			b.name = q.name;
		else if ((ret = generate_name(gen, sizeof(gen))) == 0)
			b.name = gen;
		if (ret == 0)
			ret = store_box_insert(a->st, &b);
		if (ret != -EEXIST || q.name || tries > 8)
			break;
		ret = 0; /* a generated name collided: draw another */
	}
	if (ret == -EEXIST) {
		http_reply_error(r, 409, "Conflict", "a sandbox named '%s' already exists", b.name);
		goto out;
	}
	if (ret < 0) {
		log_error_f(LOG_FIELDS({"request", http_req_id_str(r)}),
			    "cannot store a new sandbox: %s", err_msg());
		http_reply_error(r, 500, "InternalError", "cannot store the sandbox: %s",
				 ret == -EIO ? err_msg() : strerror(-ret));
		goto out;
	}
	snprintf(ctx->box_id, sizeof(ctx->box_id), "%s", b.id);
	snprintf(ctx->box_name, sizeof(ctx->box_name), "%s", b.name);
	ctx->timeout_s = q.timeout_s;
	http_req_log_sandbox(r, b.name);

	/* A prewarmed VM of the same source and shape, if one is ready. The
	 * row names it before it is touched. */
	if (from_snapshot)
		sbxd_pool_snapshot_source(snap.id, source, sizeof(source));
	else
		snprintf(source, sizeof(source), "%s", a->image_source);
	if (sbxd_mgr_pool_take(a->mgr, source, restore, res.vcpus, (unsigned)(res.mem_bytes >> 20),
			       res.fs_capacity_bytes, pool_vm, sizeof(pool_vm)) == 0) {
		if (store_box_set_vm(a->st, b.id, pool_vm) == 0) {
			b.vm_name = pool_vm;
			pooled = true;
		} else {
			sbxd_mgr_pool_discard(a->mgr, pool_vm);
		}
	}
	if (q.wait_for_ready)
		waiter = http_req_id(r);
	ret = sbxd_mgr_boot(a->mgr, &b, restore, pooled, waiter);
	if (ret < 0) {
		(void)store_box_set_state(a->st, b.id, BOX_FAILED, "sbxd could not start a worker");
		if (pooled)
			sbxd_mgr_pool_discard(a->mgr, pool_vm);
		http_reply_error(r, 500, "InternalError", "cannot start the sandbox: %s",
				 strerror(-ret));
		goto out;
	}
	log_info_f(LOG_FIELDS({"sandbox", b.name}, {"id", b.id}),
		   "created by key=%s vcpus=%u mem_mib=%llu disk_bytes=%llu%s%s%s%s",
		   ctx->who.key_name, b.vcpus, (unsigned long long)(b.mem_bytes >> 20),
		   (unsigned long long)b.fs_capacity_bytes, from_snapshot ? " snapshot=" : "",
		   from_snapshot ? snap.id : "", restore ? " restore_memory" : "",
		   pooled ? " from the pool" : "");
	if (!q.wait_for_ready) {
		reply_box(a, r, 201, b.id);
		goto out;
	}
	http_req_defer(r);
	http_req_set_timer(r, (int)q.timeout_s * 1000, create_timeout, a);
out:
	store_snapshot_release(&snap);
	api_create_req_release(&q);
}

static void update_box(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	struct api_update_req q;
	struct api_error e = {0};
	struct store_box b;
	struct store_box_patch p;
	_cleanup_free_ char *merged = NULL;
	size_t len;
	const char *body = http_req_body(r, &len);
	int ret;

	if (api_parse_update(body, len, &q, &e) < 0) {
		api_reply_error(r, &e);
		return;
	}
	if (load_box(a, r, ctx, &b) < 0)
		goto out;
	if (b.state == BOX_DELETING) {
		http_reply_error(r, 409, "Conflict", "sandbox '%s' is being deleted", b.name);
		goto out_box;
	}
	sbxd_mgr_touch(a->mgr, b.id);
	if (q.name && strcmp(q.name, b.name)) {
		ret = store_box_rename(a->st, b.id, q.name);
		if (ret == -EEXIST) {
			http_reply_error(r, 409, "Conflict", "a sandbox named '%s' already exists",
					 q.name);
			goto out_box;
		}
		if (ret < 0)
			goto out_fail;
		log_info_f(LOG_FIELDS({"sandbox", b.name}, {"id", b.id}), "renamed to %s", q.name);
	}
	if (q.run_config && api_merge_run_config(b.run_config, q.run_config, &merged) < 0)
		goto out_fail;
	p = (struct store_box_patch){
	    .idle_ttl_seconds = q.idle_ttl_seconds,
	    .delete_after_stop_seconds = q.delete_after_stop_seconds,
	    .run_config = merged,
	    .proxy_config = q.proxy_config,
	};
	ret = store_box_patch(a->st, b.id, &p);
	if (ret < 0)
		goto out_fail;
	reply_box(a, r, 200, b.id);
	goto out_box;
out_fail:
	http_reply_error(r, 500, "InternalError", "cannot update sandbox '%s': %s", b.name,
			 err_msg());
out_box:
	store_box_release(&b);
out:
	api_update_req_release(&q);
}

static void delete_box(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	struct store_box b;
	int ret;

	if (load_box(a, r, ctx, &b) < 0)
		return;
	snprintf(ctx->box_id, sizeof(ctx->box_id), "%s", b.id);
	snprintf(ctx->box_name, sizeof(ctx->box_name), "%s", b.name);
	ret = sbxd_mgr_delete(a->mgr, b.id, http_req_id(r));
	if (ret == -ENOENT)
		http_reply_error(r, 404, "NotFound", "sandbox '%s' not found", ctx->route.target);
	else if (ret < 0)
		http_reply_error(r, 500, "InternalError", "cannot delete sandbox '%s': %s", b.name,
				 ret == -EIO ? err_msg() : strerror(-ret));
	else
		http_req_defer(r);
	store_box_release(&b);
}

#define API_STOP_START_WAIT_MS 50000

static void transition_timeout(http_server *s, http_req *r, void *arg)
{
	sbxd_api *a = arg;
	struct api_ctx *ctx = http_req_data(r);

	(void)s;
	sbxd_mgr_unwait(a->mgr, ctx->box_id, http_req_id(r));
	reply_box(a, r, 200, ctx->box_id); /* still stopping or starting */
}

/* POST /boxes/{name}/stop and /start: 200 with the sandbox once it is
 * stopped (ready), at once when it is already. */
static void stop_start_box(sbxd_api *a, http_req *r, struct api_ctx *ctx, bool stop)
{
	const char *verb = stop ? "stop" : "start";
	enum box_state busy = stop ? BOX_STOPPING : BOX_STARTING;
	struct store_box b;
	int ret;

	if (load_box(a, r, ctx, &b) < 0)
		return;
	snprintf(ctx->box_id, sizeof(ctx->box_id), "%s", b.id);
	snprintf(ctx->box_name, sizeof(ctx->box_name), "%s", b.name);
	ret = stop ? sbxd_mgr_stop(a->mgr, b.id, false, http_req_id(r))
		   : sbxd_mgr_start(a->mgr, b.id, http_req_id(r));
	/* the same transition runs already: wait for it too */
	if (ret == -EBUSY && b.state == busy && sbxd_mgr_wait(a->mgr, b.id, http_req_id(r)) == 0)
		ret = 0;
	if (ret == 1) {
		reply_box(a, r, 200, b.id);
	} else if (ret == 0) {
		log_info_f(LOG_FIELDS({"sandbox", b.name}, {"id", b.id}), "%s asked by key=%s",
			   stop ? "stop" : "start", ctx->who.key_name);
		http_req_defer(r);
		http_req_set_timer(r, API_STOP_START_WAIT_MS, transition_timeout, a);
	} else if (ret == -EBUSY || ret == -EINVAL) {
		http_reply_error(r, 409, "Conflict",
				 "sandbox '%s' is %s: only a %s sandbox can be %s%s", b.name,
				 box_state_to_string(b.state), stop ? "ready" : "stopped",
				 stop ? "stopped" : "started",
				 ret == -EBUSY && (b.state == BOX_READY || b.state == BOX_STOPPED)
				     ? " (another operation on it is running: retry)"
				     : "");
	} else if (ret == -ENOENT) {
		http_reply_error(r, 404, "NotFound", "sandbox '%s' not found", ctx->route.target);
	} else {
		http_reply_error(r, 500, "InternalError", "cannot %s sandbox '%s': %s", verb,
				 b.name, ret == -EIO ? err_msg() : strerror(-ret));
	}
	store_box_release(&b);
}

void api_boxes_settled(sbxd_api *a, http_req *r, struct api_ctx *ctx, enum mgr_outcome o,
		       const char *msg)
{
	bool deleting = http_req_method(r) == HTTP_DELETE;
	bool stop = ctx->route.kind == ROUTE_BOX_STOP;

	if (stop || ctx->route.kind == ROUTE_BOX_START) {
		if (o == MGR_READY)
			reply_box(a, r, 200, ctx->box_id);
		else if (o == MGR_FAILED)
			http_reply_error(r, 500, "InternalError", "cannot %s sandbox '%s': %s",
					 stop ? "stop" : "start", ctx->box_name, msg);
		else
			http_reply_error(r, 409, "Conflict",
					 "sandbox '%s' was deleted meanwhile%s%s", ctx->box_name,
					 msg && *msg ? ": " : "", msg ? msg : "");
		return;
	}
	switch (o) {
	case MGR_READY:
		reply_box(a, r, 201, ctx->box_id);
		return;
	case MGR_FAILED:
		http_reply_error(r, 503, "SandboxBootFailed", "sandbox '%s' failed to start: %s",
				 ctx->box_name, msg);
		return;
	case MGR_DELETED:
		if (deleting)
			http_reply(r, 204, NULL, NULL, 0);
		else
			http_reply_error(r, 409, "Conflict",
					 "sandbox '%s' was deleted while it was starting",
					 ctx->box_name);
		return;
	case MGR_DELETE_FAILED:
		http_reply_error(r, 500, "InternalError", "sandbox '%s': %s", ctx->box_name, msg);
		return;
	}
}

static void not_yet(sbxd_api *a, http_req *r, struct api_ctx *ctx, const char *what)
{
	struct store_box b;

	if (load_box(a, r, ctx, &b) < 0)
		return;
	store_box_release(&b);
	http_reply_error(r, 501, "NotImplemented", "%s", what);
}

void api_boxes_dispatch(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	enum http_method m = http_req_method(r);
	struct store_box b;

	switch (ctx->route.kind) {
	case ROUTE_BOXES:
		if (m == HTTP_POST)
			create_box(a, r, ctx);
		else
			list_boxes(a, r, ctx);
		return;
	case ROUTE_BOX:
		if (m == HTTP_PATCH) {
			update_box(a, r, ctx);
		} else if (m == HTTP_DELETE) {
			delete_box(a, r, ctx);
		} else if (load_box(a, r, ctx, &b) == 0) {
			http_reply_json(r, 200, api_box_render(a, r, &b));
			store_box_release(&b);
		}
		return;
	case ROUTE_BOX_STATUS:
		if (load_box(a, r, ctx, &b) == 0) {
			http_reply_json(r, 200, api_box_status_json(&b));
			store_box_release(&b);
		}
		return;
	case ROUTE_BOX_START:
	case ROUTE_BOX_STOP:
		stop_start_box(a, r, ctx, ctx->route.kind == ROUTE_BOX_STOP);
		return;
	case ROUTE_BOX_SERVICE_URL:
		not_yet(a, r, ctx, "not implemented yet: service URLs");
		return;
	case ROUTE_BOX_DOWNLOAD_URL:
		not_yet(a, r, ctx, "not implemented yet: download URLs");
		return;
	case ROUTE_BOX_SNAPSHOT:
	case ROUTE_BOX_AUDIT:
	case ROUTE_SNAPSHOTS:
	case ROUTE_SNAPSHOT:
	case ROUTE_SNAPSHOT_POOL:
	case ROUTE_METRICS:
	case ROUTE_HEALTHZ:
	case ROUTE_DATAPLANE:
	case ROUTE_KIND_COUNT:
		break;
	}
	http_reply_error(r, 404, "NotFound", "no such endpoint");
}
