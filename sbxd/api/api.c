/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api.c - the front of sbxd's HTTP API: every request is routed
 * (api_req.c), checked against its method, authenticated by X-Api-Key
 * (keys are looked up by their SHA-256), then handed to the control plane
 * (api_boxes.c) or to the data plane (dataplane.h).
 *
 * Errors are always {"detail": {"error": TYPE, "message": TEXT}} with the
 * statuses the langsmith client maps (langsmith-wire.md §2).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "sbxd/api/api_int.h"
#include "sbxd/api/api_render.h"
#include "sbxd/common/metrics.h"
#include "base/cleanup.h"
#include "base/log.h"

int sbxd_api_new(const struct sbxd_api_config *c, sbxd_api **ret)
{
	sbxd_api *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->st = c->st;
	a->limits = c->limits;
	a->image_dir = strdup(c->image_dir ? c->image_dir : "");
	if (c->images_dir && *c->images_dir) {
		a->images_dir = strdup(c->images_dir);
	} else if (a->image_dir) {
		char *slash;

		a->images_dir = strdup(a->image_dir);
		slash = a->images_dir ? strrchr(a->images_dir, '/') : NULL;
		if (slash && slash != a->images_dir)
			*slash = '\0';
	}
	a->max_pool_size = c->max_pool_size ? c->max_pool_size : 8;
	sbxd_pool_image_source(a->image_dir ? a->image_dir : "", a->image_source,
			       sizeof(a->image_source));
	a->public_url = strdup(c->public_url ? c->public_url : "");
	a->fallback_base = strdup(c->fallback_base ? c->fallback_base : "http://127.0.0.1:8080");
	a->version = strdup(c->version ? c->version : "");
	if (!a->image_dir || !a->images_dir || !a->public_url || !a->fallback_base || !a->version) {
		sbxd_api_free(a);
		return -ENOMEM;
	}
	*ret = a;
	return 0;
}

sbxd_api *sbxd_api_free(sbxd_api *a)
{
	if (!a)
		return NULL;
	free(a->image_dir);
	free(a->images_dir);
	free(a->public_url);
	free(a->fallback_base);
	free(a->version);
	free(a);
	return NULL;
}

void sbxd_api_attach(sbxd_api *a, http_server *srv, sbxd_mgr *mgr)
{
	a->srv = srv;
	a->mgr = mgr;
}

void sbxd_api_set_dataplane(sbxd_api *a, const struct sbxd_dataplane_ops *ops, void *ud)
{
	a->dp = ops;
	a->dp_ud = ud;
}

static void ctx_free(void *p)
{
	struct api_ctx *ctx = p;

	if (!ctx)
		return;
	sbxd_dp_box_release(&ctx->dp_box);
	free(ctx);
}

static struct api_ctx *ctx_new(http_req *r)
{
	struct api_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx) {
		http_reply_error(r, 500, "InternalError", "out of memory");
		return NULL;
	}
	http_req_set_data(r, ctx, ctx_free);
	return ctx;
}

/* 0, or <0 after replying 401 (or 500). */
static int authenticate(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	const char *raw = http_req_api_key(r);
	char key[SBXD_KEY_HEADER_MAX + 1], hash[SBXD_KEY_HASH_LEN + 1];
	struct store_key k;
	int ret;

	if (!raw)
		return http_reply_error(r, 401, "Unauthorized",
					"this endpoint needs an API key in the X-Api-Key header "
					"(an operator creates one with: sbxd key create)"),
		       -EACCES;
	if (api_key_header_parse(raw, strlen(raw), key, sizeof(key)) < 0)
		return http_reply_error(r, 401, "Unauthorized",
					"the X-Api-Key header is empty or malformed"),
		       -EACCES;
	sbxd_key_hash(key, strlen(key), hash);
	ret = store_key_find(a->st, hash, &k);
	if (ret == -ENOENT)
		return http_reply_error(r, 401, "Unauthorized", "the API key is not valid"), ret;
	if (ret == -EKEYREVOKED)
		return http_reply_error(r, 401, "Unauthorized", "this API key was revoked"), ret;
	if (ret < 0) {
		log_error_f(LOG_FIELDS({"request", http_req_id_str(r)}),
			    "cannot check an API key: %s", err_msg());
		return http_reply_error(r, 500, "InternalError",
					"the API key could not be checked (see the server log)"),
		       ret;
	}
	ctx->who.key_id = k.id;
	ctx->who.admin = k.admin;
	snprintf(ctx->who.key_name, sizeof(ctx->who.key_name), "%s", k.name);
	http_req_log_key(r, k.name);
	store_key_release(&k);
	return 0;
}

/* ---- data plane hand-off ---- */

void sbxd_dp_box_release(struct sbxd_dp_box *b)
{
	if (!b)
		return;
	free(b->run_config);
	b->run_config = NULL;
}

int sbxd_dataplane_lookup(sbxd_api *a, const struct sbxd_principal *who, const char *dp_id,
			  struct sbxd_dp_box *ret)
{
	struct store_box b;
	struct sbxd_dp_box d = {0};
	int r;

	r = store_box_get(a->st, dp_id, who->admin ? STORE_OWNER_ANY : who->key_id, &b);
	if (r < 0)
		return r;
	snprintf(d.id, sizeof(d.id), "%s", b.id);
	snprintf(d.name, sizeof(d.name), "%s", b.name);
	snprintf(d.vm_name, sizeof(d.vm_name), "%s", b.vm_name);
	d.owner = b.owner;
	d.state = b.state;
	switch (b.state) {
	case BOX_READY:
		r = sbxd_mgr_agent_address(a->mgr, b.vm_name, d.agent_addr, sizeof(d.agent_addr));
		if (r < 0)
			r = -EHOSTDOWN; /* its QEMU is gone although the row says ready */
		break;
	case BOX_PROVISIONING:
	case BOX_STARTING:
		r = -EAGAIN;
		break;
	case BOX_STOPPED:
	case BOX_STOPPING:
		r = -ESHUTDOWN;
		break;
	case BOX_DELETING:
		store_box_release(&b);
		return -ENOENT;
	case BOX_FAILED:
	case BOX_STATE_COUNT:
	case BOX_STATE_INVALID:
		r = -EIO;
		break;
	}
	if (b.run_config)
		d.run_config = strdup(b.run_config);
	store_box_release(&b);
	*ret = d;
	return r;
}

int sbxd_dataplane_reply_lookup_error(http_req *r, int err, const char *dp_id,
				      const struct sbxd_dp_box *box)
{
	const char *name = box && box->name[0] ? box->name : dp_id;

	switch (err) {
	case -ENOENT:
		return http_reply_error(r, 404, "NotFound", "sandbox '%s' not found", dp_id);
	case -EAGAIN:
		return http_reply_error(r, 400, "NotReady",
					"sandbox '%s' is not ready yet (it is still starting)",
					name);
	case -ESHUTDOWN:
		return http_reply_error(r, 409, "Conflict", "sandbox %s is stopped: start it first",
					name);
	case -EHOSTDOWN:
		return http_reply_error(r, 400, "NotReady",
					"sandbox '%s' is not usable: its VM is not running (delete "
					"it and create a new one)",
					name);
	case -EIO:
		return http_reply_error(r, 400, "NotReady",
					"sandbox '%s' is not usable: it failed (see its "
					"status_message)",
					name);
	default:
		return http_reply_error(r, 500, "InternalError", "cannot look up sandbox '%s'",
					dp_id);
	}
}

static void dataplane_headers(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	int ret = sbxd_dataplane_lookup(a, &ctx->who, ctx->route.target, &ctx->dp_box);

	http_req_log_sandbox(r, ctx->dp_box.name[0] ? ctx->dp_box.name : ctx->route.target);
	if (ret < 0) {
		sbxd_dataplane_reply_lookup_error(r, ret, ctx->route.target, &ctx->dp_box);
		return;
	}
	sbxd_mgr_touch(a->mgr, ctx->dp_box.id);
	if (!a->dp || !a->dp->on_request) {
		http_reply_error(r, 501, "NotImplemented",
				 "the data plane (%s) is not implemented in this version of sbxd",
				 api_dp_op_to_string(ctx->route.dp_op));
		return;
	}
	a->dp->on_request(a->dp_ud, r, ctx->route.dp_op, &ctx->dp_box, &ctx->who);
}

/* ---- http_app ---- */

static void on_headers(void *ud, http_req *r)
{
	sbxd_api *a = ud;
	enum http_method m = http_req_method(r);
	struct api_ctx *ctx = ctx_new(r);
	const char *allow = "";

	if (!ctx)
		return;
	if (api_route_parse(http_req_path(r), &ctx->route) < 0) {
		http_reply_error(r, 404, "NotFound", "no such endpoint: %s %s", http_method_name(m),
				 http_req_path(r));
		return;
	}
	if (!api_route_allows(&ctx->route, m, &allow)) {
		http_req_add_header(r, "allow", allow);
		http_reply_error(r, 405, "MethodNotAllowed",
				 "%s does not accept %s (it accepts %s)", http_req_path(r),
				 http_method_name(m), allow);
		return;
	}
	if (ctx->route.kind == ROUTE_HEALTHZ) {
		http_reply_json(r, 200,
				json_pack("{s:s, s:s}", "status", "ok", "version", a->version));
		return;
	}
	if (ctx->route.kind == ROUTE_METRICS) {
		api_metrics(a, r);
		return;
	}
	if (authenticate(a, r, ctx) < 0)
		return;
	if (ctx->route.kind == ROUTE_DATAPLANE) {
		dataplane_headers(a, r, ctx);
		return;
	}
	if (ctx->route.target[0])
		http_req_log_sandbox(r, ctx->route.target);
	/* The handler runs in on_request, once the body (if any) is in. */
}

static void on_request(void *ud, http_req *r)
{
	sbxd_api *a = ud;
	struct api_ctx *ctx = http_req_data(r);

	if (!ctx)
		return;
	if (ctx->route.kind == ROUTE_DATAPLANE) {
		if (a->dp && a->dp->on_body)
			a->dp->on_body(a->dp_ud, r, ctx->route.dp_op, &ctx->dp_box, &ctx->who);
		else if (!http_req_replied(r))
			http_reply_error(r, 500, "InternalError",
					 "the data plane did not answer this request");
		return;
	}
	switch (ctx->route.kind) {
	case ROUTE_BOX_SNAPSHOT:
	case ROUTE_SNAPSHOTS:
	case ROUTE_SNAPSHOT:
	case ROUTE_SNAPSHOT_POOL:
		api_snapshots_dispatch(a, r, ctx);
		return;
	case ROUTE_BOX_AUDIT:
		api_audit_dispatch(a, r, ctx);
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
	case ROUTE_DATAPLANE:
	case ROUTE_KIND_COUNT:
		break;
	}
	api_boxes_dispatch(a, r, ctx);
}

static int on_upgrade(void *ud, http_req *r, const struct http_ws_ops **ret_ops, void **ret_ud)
{
	sbxd_api *a = ud;
	struct api_ctx *ctx = ctx_new(r);
	int ret;

	if (!ctx)
		return -ENOMEM;
	if (api_route_parse(http_req_path(r), &ctx->route) < 0 ||
	    ctx->route.kind != ROUTE_DATAPLANE || ctx->route.dp_op != DP_EXECUTE_WS)
		return http_reply_error(r, 404, "NotFound", "no WebSocket endpoint at %s",
					http_req_path(r)),
		       -ENOENT;
	if (authenticate(a, r, ctx) < 0)
		return -EACCES;
	ret = sbxd_dataplane_lookup(a, &ctx->who, ctx->route.target, &ctx->dp_box);
	http_req_log_sandbox(r, ctx->dp_box.name[0] ? ctx->dp_box.name : ctx->route.target);
	if (ret < 0)
		return sbxd_dataplane_reply_lookup_error(r, ret, ctx->route.target, &ctx->dp_box),
		       ret;
	sbxd_mgr_touch(a->mgr, ctx->dp_box.id);
	if (!a->dp || !a->dp->on_upgrade)
		return http_reply_error(r, 501, "NotImplemented",
					"command execution over WebSocket is not implemented in "
					"this version of sbxd"),
		       -ENOSYS;
	return a->dp->on_upgrade(a->dp_ud, r, &ctx->dp_box, &ctx->who, ret_ops, ret_ud);
}

const struct http_app sbxd_api_http_app = {
    .on_headers = on_headers,
    .on_request = on_request,
    .on_upgrade = on_upgrade,
    .error_body = api_error_body,
    .on_error = sbxd_metrics_count_error,
};

/* ---- manager notifications (worker thread -> service thread) ---- */

struct notice {
	sbxd_api *a;
	enum mgr_outcome outcome;
	char msg[];
};

static void on_notice(http_server *s, http_req *r, void *arg)
{
	struct notice *n = arg;
	struct api_ctx *ctx = r ? http_req_data(r) : NULL;

	(void)s;
	if (r && ctx) {
		if (ctx->route.kind == ROUTE_BOX_SNAPSHOT || ctx->route.kind == ROUTE_SNAPSHOTS ||
		    ctx->route.kind == ROUTE_SNAPSHOT)
			api_snapshots_settled(n->a, r, ctx, n->outcome, n->msg);
		else
			api_boxes_settled(n->a, r, ctx, n->outcome, n->msg);
	}
	free(n);
}

void sbxd_api_mgr_notify(void *ud, uint64_t waiter, const char *box_id, enum mgr_outcome o,
			 const char *msg)
{
	sbxd_api *a = ud;
	size_t ml = msg ? strlen(msg) : 0;
	struct notice *n = malloc(sizeof(*n) + ml + 1);

	(void)box_id;
	if (!n || !a->srv) {
		free(n);
		return;
	}
	n->a = a;
	n->outcome = o;
	memcpy(n->msg, msg ? msg : "", ml + 1);
	if (http_server_post(a->srv, waiter, on_notice, n) < 0)
		free(n);
}

/* ---- the data plane lets go of a sandbox (worker thread -> service) ---- */

#define RELEASE_WAIT_S 15

struct release_call {
	sbxd_api *a;
	char id[STORE_ID_LEN + 1];
	bool idle;
	bool query; /* only ask whether a command runs */
	int result;
	bool done;
	unsigned refs; /* the worker's and the service thread's */
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void release_call_unref(struct release_call *c)
{
	bool last;

	pthread_mutex_lock(&c->lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (!last)
		return;
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void release_on_service(http_server *s, http_req *r, void *arg)
{
	struct release_call *c = arg;
	sbxd_api *a = c->a;
	int res = 0;

	(void)s;
	(void)r;
	if (c->query)
		res = a->dp->box_busy && a->dp->box_busy(a->dp_ud, c->id) ? 1 : 0;
	else if (c->idle && a->dp->box_busy && a->dp->box_busy(a->dp_ud, c->id))
		res = -EBUSY;
	else if (a->dp->release_box)
		a->dp->release_box(a->dp_ud, c->id);
	pthread_mutex_lock(&c->lock);
	c->result = res;
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	release_call_unref(c);
}

static int service_call(sbxd_api *a, const char *box_id, bool idle, bool query)
{
	struct release_call *c;
	struct timespec ts;
	int r = 0;

	if (!a || !a->srv || !a->dp || (!a->dp->release_box && !a->dp->box_busy))
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->a = a;
	snprintf(c->id, sizeof(c->id), "%s", box_id);
	c->idle = idle;
	c->query = query;
	c->refs = 2;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if (http_server_post(a->srv, 0, release_on_service, c) < 0) {
		c->refs = 1;
		release_call_unref(c);
		return -ENOMEM;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += RELEASE_WAIT_S;
	pthread_mutex_lock(&c->lock);
	while (!c->done && r == 0)
		r = pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	r = c->done ? c->result : -ETIMEDOUT;
	pthread_mutex_unlock(&c->lock);
	release_call_unref(c);
	return r;
}

int sbxd_api_release_box(void *ud, const char *box_id, bool idle)
{
	return service_call(ud, box_id, idle, false);
}

int sbxd_api_box_busy(void *ud, const char *box_id)
{
	return service_call(ud, box_id, false, true);
}
