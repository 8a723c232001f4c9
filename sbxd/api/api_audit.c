/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_audit.c - GET {prefix}/boxes/{name}/audit (sbx extension): the audit
 * log of a sandbox, every command run in it, oldest first, by pages:
 *   ?after=SEQ  entries after that one (0: from the start)
 *   ?limit=N    at most N entries (1..1000, default 100)
 * {"entries":[{"seq","command_id","command","cwd","key","started_at",
 *   "ended_at","duration_ms","exit_code","outcome"}...],"next_after":SEQ|null}
 * next_after is the seq to ask after for the next page, null on the last.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/err.h"
#include "base/clock.h"
#include "sbxd/api/api_int.h"
#include "sbxd/api/api_render.h"
#include "base/log.h"

#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 1000

/* A query parameter as a whole number in [min, max]; absent: def. */
static int query_num(http_req *r, const char *name, long long min, long long max, long long def,
		     long long *ret)
{
	char buf[24], *end;
	long long v;

	if (http_req_query(r, name, buf, sizeof(buf)) < 0) {
		*ret = def;
		return 0;
	}
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || end == buf || *end || v < min || v > max)
		return http_reply_error(r, 422, "ValidationError",
					"the query parameter '%s' must be a whole number from "
					"%lld to %lld",
					name, min, max),
		       -EINVAL;
	*ret = v;
	return 0;
}

static json_t *entry_json(const struct store_audit *e)
{
	char started[40], ended[40];
	json_t *o;

	clock_rfc3339(e->started_ms, true, started, sizeof(started));
	clock_rfc3339(e->ended_ms, true, ended, sizeof(ended));
	o = json_pack("{s:I, s:s, s:s, s:s?, s:s, s:s, s:s}", "seq", (json_int_t)e->seq,
		      "command_id", e->command_id ? e->command_id : "", "command",
		      e->command ? e->command : "", "cwd", e->cwd, "key",
		      e->key_name ? e->key_name : "", "started_at", started, "outcome", e->outcome);
	if (!o)
		return NULL;
	json_object_set_new(o, "ended_at", e->ended_ms ? json_string(ended) : json_null());
	json_object_set_new(o, "duration_ms",
			    e->ended_ms ? json_integer(e->ended_ms - e->started_ms) : json_null());
	json_object_set_new(o, "exit_code",
			    e->exit_code == STORE_AUDIT_NO_CODE ? json_null()
								: json_integer(e->exit_code));
	return o;
}

void api_audit_dispatch(sbxd_api *a, http_req *r, struct api_ctx *ctx)
{
	struct store_audit *v = NULL;
	struct store_box b;
	long long after, limit;
	json_t *arr, *body;
	size_t n = 0;
	int e;

	if (query_num(r, "after", 0, INT64_MAX, 0, &after) < 0 ||
	    query_num(r, "limit", 1, AUDIT_PAGE_MAX, AUDIT_PAGE_DEFAULT, &limit) < 0)
		return;
	e = store_box_get(a->st, ctx->route.target, api_owner(ctx), &b);
	if (e == -ENOENT) {
		http_reply_error(r, 404, "NotFound", "sandbox '%s' not found", ctx->route.target);
		return;
	}
	if (e < 0)
		goto fail;
	e = store_audit_list(a->st, b.id, after, (unsigned)limit + 1, &v, &n);
	store_box_release(&b);
	if (e < 0)
		goto fail;
	arr = json_array();
	for (size_t i = 0; arr && i < n && i < (size_t)limit; i++) {
		json_t *o = entry_json(&v[i]);

		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	body = arr ? json_pack("{s:o}", "entries", arr) : NULL;
	if (body)
		json_object_set_new(body, "next_after",
				    n > (size_t)limit ? json_integer(v[limit - 1].seq)
						      : json_null());
	store_audits_free(v, n);
	if (!body) {
		http_reply_error(r, 500, "InternalError", "out of memory");
		return;
	}
	http_reply_json(r, 200, body);
	return;
fail:
	log_error_f(LOG_FIELDS({"request", http_req_id_str(r)}),
		    "cannot read the audit log of sandbox %s: %s", ctx->route.target, err_msg());
	http_reply_error(r, 500, "InternalError", "cannot read the audit log (see the server log)");
}
