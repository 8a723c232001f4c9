/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_snapshots.c - the snapshot handlers: POST /boxes/{name}/snapshot
 * (capture), POST /snapshots (build from an image), GET /snapshots,
 * GET/DELETE /snapshots/{id}, GET/PUT /snapshots/{id}/pool (an sbx
 * extension), and GET /metrics.
 *
 * Capture and build write the snapshot's row (status building) before
 * anything is done, then run as manager jobs. The request waits for the
 * job up to API_SNAPSHOT_WAIT_MS and answers the row as it is then
 * (ready, failed, or still building: the client polls GET /snapshots/{id}).
 * A capture first has the data plane run sync(1) in the guest over its
 * agent connection, so that the frozen disk holds what was written.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "sbxd/api/api_int.h"
#include "sbxd/api/api_render.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "sbxd/common/image.h"
#include "sbxd/common/metrics.h"

#define API_SNAPSHOT_WAIT_MS 5000

static json_t *snapshot_render(sbxd_api *a, const struct store_snapshot *s)
{
	struct store_key k = {0};
	json_t *o;

	if (store_key_get(a->st, s->owner, &k) < 0)
		k.name = NULL;
	o = api_snapshot_json(s, k.name);
	store_key_release(&k);
	return o;
}

static void reply_snapshot(sbxd_api *a, http_req *r, int status, const char *id)
{
	struct store_snapshot s;

	if (store_snapshot_get(a->st, id, STORE_OWNER_ANY, &s) < 0) {
		http_reply_error(r, 404, "NotFound", "snapshot '%s' not found", id);
		return;
	}
	http_reply_json(r, status, snapshot_render(a, &s));
	store_snapshot_release(&s);
}

/* The snapshot named by the route for this key; replies 404 (or 500) and
 * returns <0 when there is none. */
static int load_snapshot(sbxd_api *a, http_req *r, struct api_ctx *ctx, struct store_snapshot *ret)
{
	int e = store_snapshot_get(a->st, ctx->route.target, api_owner(ctx), ret);

	if (e == -ENOENT)
		return http_reply_error(r, 404, "NotFound", "snapshot '%s' not found",
					ctx->route.target),
		       e;
	if (e < 0)
		return http_reply_error(r, 500, "InternalError", "cannot read snapshot '%s': %s",
					ctx->route.target, err_msg()),
		       e;
	return 0;
}

/* The image name of an image directory: its last component. */
static const char *image_name(const char *dir)
{
	const char *slash = dir ? strrchr(dir, '/') : NULL;

	return slash ? slash + 1 : dir;
}

static void snapshot_wait_timeout(http_server *s, http_req *r, void *arg)
{
	sbxd_api *a = arg;
	struct api_ctx *ctx = http_req_data(r);

	(void)s;
	/* capture jobs are keyed by the sandbox, builds by the snapshot */
	sbxd_mgr_unwait(a->mgr, ctx->box_id[0] ? ctx->box_id : ctx->snap_id, http_req_id(r));
	reply_snapshot(a, r, 201, ctx->snap_id);
}

/* ---- capture ---- */

struct capture_start {
	sbxd_api *a;
	char box_id[STORE_ID_LEN + 1];
	char box_name[API_NAME_MAX + 1];
	char snap_id[STORE_SNAP_ID_MAX + 1];
	uint64_t waiter;
};

static void post_reply_snapshot(http_server *s, http_req *r, void *arg)
{
	struct capture_start *p = arg;

	(void)s;
	if (r)
		reply_snapshot(p->a, r, 201, p->snap_id);
	free(p);
}

static void capture_go(struct capture_start *p)
{
	char msg[256];
	int r = sbxd_mgr_capture(p->a->mgr, p->box_id, p->snap_id, p->waiter);

	if (r == 0) {
		free(p);
		return;
	}
	snprintf(msg, sizeof(msg), "the capture of sandbox '%s' could not start: %s", p->box_name,
		 r == -EBUSY	? "it is busy (being deleted, or captured already)"
		 : r == -ENOENT ? "it was deleted"
				: strerror(-r));
	log_warn("snapshot id=%s: %s", p->snap_id, msg);
	(void)store_snapshot_set_state(p->a->st, p->snap_id, SNAPSHOT_FAILED, msg);
	if (p->waiter && http_server_post(p->a->srv, p->waiter, post_reply_snapshot, p) == 0)
		return;
	free(p);
}

static void capture_synced(void *cud, int err, const char *msg)
{
	struct capture_start *p = cud;

	if (err < 0)
		log_warn_f(LOG_FIELDS({"sandbox", p->box_name}),
			   "sync(1) before its capture failed (%s%s%s): the snapshot may miss its "
			   "last writes",
			   strerror(-err), msg && *msg ? ": " : "", msg ? msg : "");
	capture_go(p);
}

static void capture_box(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	struct api_capture_req q = {0};
	struct api_error e = {0};
	struct store_box b = {0};
	struct store_snapshot s = {0};
	struct sbxd_dp_box dpb = {0};
	_cleanup_free_ char *run_config = NULL;
	struct capture_start *p = NULL;
	size_t len;
	const char *body = http_req_body(r, &len);
	int ret;

	if (api_parse_capture(body, len, &q, &e) < 0) {
		api_reply_error(r, &e);
		return;
	}
	ret = store_box_get(a->st, ctx->route.target, api_owner(ctx), &b);
	if (ret < 0) {
		http_reply_error(r, ret == -ENOENT ? 404 : 500,
				 ret == -ENOENT ? "NotFound" : "InternalError",
				 "sandbox '%s' not found", ctx->route.target);
		goto out;
	}
	if (b.state != BOX_READY || sbxd_mgr_busy(a->mgr, b.id)) {
		http_reply_error(r, 409, "Conflict",
				 "sandbox '%s' is %s: only a ready sandbox can be captured%s",
				 b.name, box_state_to_string(b.state),
				 b.state == BOX_READY ? " (a capture of it is running)" : "");
		goto out;
	}
	sbxd_mgr_touch(a->mgr, b.id); /* activity, for its idle TTL */
	if (q.fs_capacity_bytes && (uint64_t)q.fs_capacity_bytes < b.fs_capacity_bytes) {
		http_reply_error(r, 422, "ValidationError",
				 "fs_capacity_bytes: a snapshot of sandbox '%s' cannot be smaller "
				 "than its disk (%llu bytes)",
				 b.name, (unsigned long long)b.fs_capacity_bytes);
		goto out;
	}
	if (q.run_config && b.run_config)
		ret = api_merge_run_config(b.run_config, q.run_config, &run_config);
	else if ((q.run_config || b.run_config) &&
		 !(run_config = strdup(q.run_config ? q.run_config : b.run_config)))
		ret = -ENOMEM;
	if (ret < 0 || sbxd_uuid4(s.id) < 0) {
		http_reply_error(r, 500, "InternalError", "out of memory");
		goto out;
	}
	s.name = q.name;
	s.owner = ctx->who.key_id;
	s.state = SNAPSHOT_BUILDING;
	s.status_message = (char *)"capturing the sandbox";
	s.kind = (char *)(q.include_memory == 1 ? "memory" : "fs");
	s.source_box_id = b.id;
	s.include_memory = q.include_memory == 1;
	s.vcpus = b.vcpus;
	s.mem_bytes = b.mem_bytes;
	s.fs_capacity_bytes =
	    q.fs_capacity_bytes ? (uint64_t)q.fs_capacity_bytes : b.fs_capacity_bytes;
	s.docker_image = (char *)image_name(b.image);
	s.image_dir = b.image;
	s.run_config = run_config;
	ret = store_snapshot_insert(a->st, &s);
	if (ret == -EEXIST) {
		http_reply_error(r, 409, "Conflict", "a snapshot named '%s' already exists",
				 q.name);
		goto out;
	}
	if (ret < 0) {
		http_reply_error(r, 500, "InternalError", "cannot store the snapshot: %s",
				 err_msg());
		goto out;
	}
	log_info_f(LOG_FIELDS({"snapshot", q.name}, {"id", s.id}),
		   "capturing sandbox=%s (%s) for key=%s", b.name,
		   s.include_memory ? "filesystem and memory" : "filesystem", ctx->who.key_name);
	snprintf(ctx->snap_id, sizeof(ctx->snap_id), "%s", s.id);
	snprintf(ctx->box_id, sizeof(ctx->box_id), "%s", b.id);
	snprintf(ctx->box_name, sizeof(ctx->box_name), "%s", b.name);
	p = calloc(1, sizeof(*p));
	if (!p) {
		(void)store_snapshot_set_state(a->st, s.id, SNAPSHOT_FAILED, "out of memory");
		http_reply_error(r, 500, "InternalError", "out of memory");
		goto out;
	}
	p->a = a;
	snprintf(p->box_id, sizeof(p->box_id), "%s", b.id);
	snprintf(p->box_name, sizeof(p->box_name), "%s", b.name);
	snprintf(p->snap_id, sizeof(p->snap_id), "%s", s.id);
	p->waiter = http_req_defer(r);
	http_req_set_timer(r, API_SNAPSHOT_WAIT_MS, snapshot_wait_timeout, a);
	/* sync(1) over the data plane's agent connection, then capture */
	if (a->dp && a->dp->sync_fs && sbxd_dataplane_lookup(a, &ctx->who, b.id, &dpb) == 0 &&
	    a->dp->sync_fs(a->dp_ud, r, &dpb, capture_synced, p) == 0)
		p = NULL;
	if (p)
		capture_go(p);
out:
	sbxd_dp_box_release(&dpb);
	store_box_release(&b);
	api_capture_req_release(&q);
}

/* ---- build from an image ---- */

static void create_snapshot(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	struct api_snapshot_req q = {0};
	struct api_error e = {0};
	struct store_snapshot s = {0};
	char dir[PATH_MAX], names[1024];
	uint64_t image_bytes = 0, fs;
	const char *body;
	size_t len;
	int ret;

	body = http_req_body(r, &len);
	if (api_parse_snapshot_create(body, len, &q, &e) < 0) {
		api_reply_error(r, &e);
		return;
	}
	if (!api_snapshot_name_is_valid(q.docker_image) ||
	    snprintf(dir, sizeof(dir), "%s/%s", a->images_dir, q.docker_image) >=
		(int)sizeof(dir) ||
	    sbxd_image_check(dir, &image_bytes) < 0) {
		sbxd_image_names(a->images_dir, names, sizeof(names));
		http_reply_error(
		    r, 422, "ValidationError",
		    "docker_image '%.128s' is not an image this server has; it has: %s "
		    "(image directories under %s)",
		    q.docker_image, names, a->images_dir);
		goto out;
	}
	fs = q.fs_capacity_bytes ? (uint64_t)q.fs_capacity_bytes : a->limits.default_disk_bytes;
	if (fs < image_bytes) {
		if (q.fs_capacity_bytes) {
			http_reply_error(r, 422, "ValidationError",
					 "fs_capacity_bytes: the disk cannot be smaller than image "
					 "'%s' (%llu bytes)",
					 q.docker_image, (unsigned long long)image_bytes);
			goto out;
		}
		fs = image_bytes;
	}
	if (fs > a->limits.max_disk_bytes && fs > image_bytes) {
		http_reply_error(
		    r, 422, "ValidationError",
		    "fs_capacity_bytes: %llu bytes of storage is more than this server "
		    "allows for one sandbox (%llu bytes)",
		    (unsigned long long)fs, (unsigned long long)a->limits.max_disk_bytes);
		goto out;
	}
	if (sbxd_uuid4(s.id) < 0) {
		http_reply_error(r, 500, "InternalError", "the random generator failed");
		goto out;
	}
	s.name = q.name;
	s.owner = ctx->who.key_id;
	s.state = SNAPSHOT_BUILDING;
	s.status_message = (char *)"building the snapshot from its image";
	s.kind = (char *)"fs";
	s.fs_capacity_bytes = fs;
	s.docker_image = q.docker_image;
	s.image_dir = dir;
	s.run_config = q.run_config;
	ret = store_snapshot_insert(a->st, &s);
	if (ret == -EEXIST) {
		http_reply_error(r, 409, "Conflict", "a snapshot named '%s' already exists",
				 q.name);
		goto out;
	}
	if (ret < 0) {
		http_reply_error(r, 500, "InternalError", "cannot store the snapshot: %s",
				 err_msg());
		goto out;
	}
	snprintf(ctx->snap_id, sizeof(ctx->snap_id), "%s", s.id);
	ctx->box_id[0] = '\0';
	ret = sbxd_mgr_snapshot_build(a->mgr, s.id, http_req_id(r));
	if (ret < 0) {
		(void)store_snapshot_set_state(a->st, s.id, SNAPSHOT_FAILED,
					       "sbxd could not start a worker");
		http_reply_error(r, 500, "InternalError", "cannot build the snapshot: %s",
				 strerror(-ret));
		goto out;
	}
	log_info_f(LOG_FIELDS({"snapshot", q.name}, {"id", s.id}),
		   "building from image %s for key=%s", q.docker_image, ctx->who.key_name);
	http_req_defer(r);
	http_req_set_timer(r, API_SNAPSHOT_WAIT_MS, snapshot_wait_timeout, a);
out:
	api_snapshot_req_release(&q);
}

/* ---- list, get, delete ---- */

static void list_snapshots(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	char contains[API_SNAPSHOT_NAME_MAX + 1], limit[16], offset[16], next[24];
	struct store_snapshot *v = NULL;
	struct api_error e = {0};
	unsigned lim, off;
	size_t n = 0;
	bool more = false, has_contains;
	json_t *arr, *o;

	has_contains = http_req_query(r, "name_contains", contains, sizeof(contains)) >= 0;
	if (api_parse_list_query(
		http_req_query(r, "limit", limit, sizeof(limit)) >= 0 ? limit : NULL,
		http_req_query(r, "offset", offset, sizeof(offset)) >= 0 ? offset : NULL, &lim,
		&off, &e) < 0) {
		api_reply_error(r, &e);
		return;
	}
	if (store_snapshot_list(a->st, api_owner(ctx),
				has_contains && contains[0] ? contains : NULL, lim, off, &v, &n,
				&more) < 0) {
		http_reply_error(r, 500, "InternalError", "cannot list snapshots: %s", err_msg());
		return;
	}
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, snapshot_render(a, &v[i])) < 0)
			arr = (json_decref(arr), NULL);
	store_snapshots_free(v, n);
	snprintf(next, sizeof(next), "%zu", off + n);
	/* the langsmith SDK reads "snapshots", generated clients "items" */
	o = arr ? json_pack("{s:O, s:O, s:o, s:i}", "snapshots", arr, "items", arr, "next_cursor",
			    more ? json_string(next) : json_null(), "offset", (int)off)
		: NULL;
	json_decref(arr);
	http_reply_json(r, 200, o);
}

static void delete_snapshot(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	struct store_snapshot s;
	int ret;

	if (load_snapshot(a, r, ctx, &s) < 0)
		return;
	snprintf(ctx->snap_id, sizeof(ctx->snap_id), "%s", s.id);
	ret = sbxd_mgr_snapshot_delete(a->mgr, s.id, http_req_id(r));
	if (ret == -EBUSY)
		http_reply_error(r, 409, "Conflict",
				 "snapshot '%s' is being built: delete it once its status is ready "
				 "or failed",
				 s.name);
	else if (ret == -ENOENT)
		http_reply_error(r, 404, "NotFound", "snapshot '%s' not found", ctx->route.target);
	else if (ret < 0)
		http_reply_error(r, 500, "InternalError", "cannot delete snapshot '%s': %s", s.name,
				 ret == -EIO ? err_msg() : strerror(-ret));
	else
		http_req_defer(r);
	store_snapshot_release(&s);
}

/* ---- pools ---- */

void api_snapshot_pool_spec(sbxd_api *a, const struct store_snapshot *s, unsigned size,
			    struct sbxd_pool_spec *ret)
{
	memset(ret, 0, sizeof(*ret));
	sbxd_pool_snapshot_source(s->id, ret->source, sizeof(ret->source));
	ret->image_dir = s->image_dir ? s->image_dir : a->image_dir;
	ret->snapshot_id = s->id;
	ret->size = size;
	/* what create_box() resolves for a request that gives no resources */
	if (s->include_memory) {
		ret->restore_memory = true;
		ret->vcpus = s->vcpus ? s->vcpus : a->limits.default_vcpus;
		ret->mem_mib =
		    (unsigned)((s->mem_bytes ? s->mem_bytes : a->limits.default_mem_bytes) >> 20);
		ret->disk_bytes = s->fs_capacity_bytes;
	} else {
		ret->vcpus = a->limits.default_vcpus;
		ret->mem_mib = (unsigned)(a->limits.default_mem_bytes >> 20);
		ret->disk_bytes = s->fs_capacity_bytes > a->limits.default_disk_bytes
				      ? s->fs_capacity_bytes
				      : a->limits.default_disk_bytes;
	}
}

static void reply_pool(sbxd_api *a, http_req *r, const struct store_snapshot *s, unsigned size)
{
	char source[SBXD_POOL_SOURCE_MAX];

	sbxd_pool_snapshot_source(s->id, source, sizeof(source));
	http_reply_json(r, 200,
			json_pack("{s:s, s:s, s:i, s:i, s:b}", "snapshot_id", s->id, "source",
				  source, "size", (int)size, "ready",
				  (int)sbxd_mgr_pool_ready(a->mgr, source), "restore_memory",
				  s->include_memory));
}

static void snapshot_pool(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	struct store_snapshot s;
	struct sbxd_pool_spec spec;
	struct api_error e = {0};
	unsigned size;
	size_t len;
	const char *body;
	int ret;

	if (load_snapshot(a, r, ctx, &s) < 0)
		return;
	if (http_req_method(r) != HTTP_PUT) {
		reply_pool(a, r, &s, s.pool_size);
		goto out;
	}
	body = http_req_body(r, &len);
	if (api_parse_pool(body, len, a->max_pool_size, &size, &e) < 0) {
		api_reply_error(r, &e);
		goto out;
	}
	if (s.state != SNAPSHOT_READY) {
		http_reply_error(r, 409, "Conflict",
				 "snapshot '%s' is %s: only a ready snapshot can have a pool",
				 s.name, snapshot_state_to_string(s.state));
		goto out;
	}
	ret = store_snapshot_set_pool(a->st, s.id, size);
	if (ret == 0) {
		api_snapshot_pool_spec(a, &s, size, &spec);
		ret = sbxd_mgr_pool_set(a->mgr, &spec);
	}
	if (ret < 0) {
		http_reply_error(r, 500, "InternalError", "cannot set the pool of '%s': %s", s.name,
				 ret == -EIO ? err_msg() : strerror(-ret));
		goto out;
	}
	log_info_f(LOG_FIELDS({"snapshot", s.name}, {"id", s.id}), "pool size %u (key=%s)", size,
		   ctx->who.key_name);
	reply_pool(a, r, &s, size);
out:
	store_snapshot_release(&s);
}

/* "REF:N,REF:N": each snapshot (id or name) gets pool size N. */
static void apply_pool_overrides(sbxd_api *a, const char *list)
{
	_cleanup_free_ char *copy = strdup(list);
	char *save = NULL;

	if (!copy)
		return;
	for (char *it = strtok_r(copy, ", ", &save); it; it = strtok_r(NULL, ", ", &save)) {
		char *colon = strrchr(it, ':'), *end;
		struct store_snapshot s;
		unsigned long n;

		if (!colon) {
			log_warn("snapshot-pools: '%s' is not REF:SIZE, ignoring", it);
			continue;
		}
		*colon = '\0';
		n = strtoul(colon + 1, &end, 10);
		if (!colon[1] || *end || n > a->max_pool_size) {
			log_warn("snapshot-pools: the size of '%s' must be 0 to %u, ignoring", it,
				 a->max_pool_size);
			continue;
		}
		if (store_snapshot_get(a->st, it, STORE_OWNER_ANY, &s) < 0) {
			log_warn("snapshot-pools: there is no snapshot '%s', ignoring", it);
			continue;
		}
		(void)store_snapshot_set_pool(a->st, s.id, (unsigned)n);
		store_snapshot_release(&s);
	}
}

void sbxd_api_start_pools(sbxd_api *a, unsigned image_pool_size, const char *overrides)
{
	struct store_snapshot *v = NULL;
	struct sbxd_pool_spec spec;
	size_t n = 0;

	if (image_pool_size) {
		memset(&spec, 0, sizeof(spec));
		snprintf(spec.source, sizeof(spec.source), "%s", a->image_source);
		spec.image_dir = a->image_dir;
		spec.vcpus = a->limits.default_vcpus;
		spec.mem_mib = (unsigned)(a->limits.default_mem_bytes >> 20);
		spec.disk_bytes = a->limits.default_disk_bytes;
		spec.size = image_pool_size;
		if (sbxd_mgr_pool_set(a->mgr, &spec) < 0)
			log_warn_f(LOG_FIELDS({"pool", spec.source}), "cannot set it up, ignoring");
	}
	if (overrides && *overrides)
		apply_pool_overrides(a, overrides);
	if (store_snapshot_list(a->st, STORE_OWNER_ANY, NULL, 0, 0, &v, &n, NULL) < 0) {
		log_warn("pools: cannot list snapshots: %s, ignoring", err_msg());
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!v[i].pool_size)
			continue;
		if (v[i].state != SNAPSHOT_READY) {
			log_warn_f(LOG_FIELDS({"snapshot", v[i].name}, {"id", v[i].id}),
				   "is %s: its pool stays empty",
				   snapshot_state_to_string(v[i].state));
			continue;
		}
		api_snapshot_pool_spec(a, &v[i], v[i].pool_size, &spec);
		if (sbxd_mgr_pool_set(a->mgr, &spec) < 0)
			log_warn_f(LOG_FIELDS({"pool", spec.source}), "cannot set it up, ignoring");
	}
	store_snapshots_free(v, n);
}

/* ---- metrics ---- */

void api_metrics(sbxd_api *a, http_req *r)
{
	struct metrics_sources src = {.mgr = a->mgr, .st = a->st};
	size_t len = 0;
	char *text = sbxd_metrics_render(&src, &len);

	if (!text) {
		http_reply_error(r, 500, "InternalError", "out of memory");
		return;
	}
	http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
}

/* ---- dispatch ---- */

void api_snapshots_settled(sbxd_api *a, http_req *r, struct api_ctx *ctx, enum mgr_outcome o,
			   const char *msg)
{
	if (ctx->route.kind == ROUTE_SNAPSHOT && http_req_method(r) == HTTP_DELETE) {
		if (o == MGR_DELETED)
			http_reply(r, 204, NULL, NULL, 0);
		else
			http_reply_error(r, 500, "InternalError", "snapshot '%s': %s",
					 ctx->route.target, msg);
		return;
	}
	/* capture (even when its sandbox was deleted meanwhile) or build:
	 * the snapshot's row says how it went */
	reply_snapshot(a, r, 201, ctx->snap_id);
}

void api_snapshots_dispatch(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	enum http_method m = http_req_method(r);
	struct store_snapshot s;

	switch (ctx->route.kind) {
	case ROUTE_BOX_SNAPSHOT:
		capture_box(a, r, ctx);
		return;
	case ROUTE_SNAPSHOTS:
		if (m == HTTP_POST)
			create_snapshot(a, r, ctx);
		else
			list_snapshots(a, r, ctx);
		return;
	case ROUTE_SNAPSHOT:
		if (m == HTTP_DELETE) {
			delete_snapshot(a, r, ctx);
		} else if (load_snapshot(a, r, ctx, &s) == 0) {
			http_reply_json(r, 200, snapshot_render(a, &s));
			store_snapshot_release(&s);
		}
		return;
	case ROUTE_SNAPSHOT_POOL:
		snapshot_pool(a, r, ctx);
		return;
	case ROUTE_HEALTHZ:
	case ROUTE_METRICS:
	case ROUTE_BOXES:
	case ROUTE_BOX:
	case ROUTE_BOX_STATUS:
	case ROUTE_BOX_START:
	case ROUTE_BOX_STOP:
	case ROUTE_BOX_SERVICE_URL:
	case ROUTE_BOX_DOWNLOAD_URL:
	case ROUTE_BOX_AUDIT:
	case ROUTE_DATAPLANE:
	case ROUTE_KIND_COUNT:
		break;
	}
	http_reply_error(r, 404, "NotFound", "no such endpoint");
}
