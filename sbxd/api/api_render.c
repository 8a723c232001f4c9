/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_render.c - JSON documents sbxd answers with.
 *
 * The Sandbox object carries every key the langsmith client reads
 * (langsmith-wire.md §4.1): optional objects the client sent are echoed
 * back as sent, and absent ones are left out rather than sent as null.
 */
#include <stdio.h>
#include <time.h>

#include "base/clock.h"
#include "sbxd/api/api_render.h"
#include "sbxd/api/api_req.h"

static int set_time(json_t *o, const char *key, int64_t ms)
{
	char buf[40];

	if (ms <= 0)
		return json_object_set_new(o, key, json_null());
	clock_rfc3339(ms, true, buf, sizeof(buf));
	return json_object_set_new(o, key, json_string(buf));
}

static int set_str_or_null(json_t *o, const char *key, const char *s)
{
	return json_object_set_new(o, key, s ? json_string(s) : json_null());
}

/* An echoed JSON text; skipped when absent (or, defensively, unparsable). */
static int set_raw(json_t *o, const char *key, const char *text, bool empty_object_default)
{
	json_t *v = text ? json_loads(text, 0, NULL) : NULL;

	if (!v && empty_object_default)
		v = json_object();
	if (!v)
		return 0;
	return json_object_set_new(o, key, v);
}

json_t *api_box_json(const struct store_box *b, const char *dataplane_url)
{
	json_t *o = json_object();
	int r = 0;

	if (!o)
		return NULL;
	r |= json_object_set_new(o, "id", json_string(b->id));
	r |= json_object_set_new(o, "name", json_string(b->name));
	r |= json_object_set_new(o, "status", json_string(box_state_to_string(b->state)));
	r |= set_str_or_null(o, "status_message", b->status_message);
	r |= set_str_or_null(o, "dataplane_url", dataplane_url);
	r |= set_time(o, "created_at", b->created_ms);
	r |= set_time(o, "updated_at", b->updated_ms);
	r |= set_time(o, "stopped_at", b->stopped_ms);
	r |= json_object_set_new(o, "idle_ttl_seconds", json_integer(b->idle_ttl_seconds));
	r |= json_object_set_new(o, "delete_after_stop_seconds",
				 json_integer(b->delete_after_stop_seconds));
	r |= json_object_set_new(o, "max_lifetime_seconds", json_integer(b->max_lifetime_seconds));
	r |= set_time(o, "expires_at",
		      b->max_lifetime_seconds > 0 ? b->created_ms + b->max_lifetime_seconds * 1000
						  : 0);
	r |= set_str_or_null(o, "snapshot_id", b->snapshot_id);
	r |= json_object_set_new(o, "vcpus", json_integer(b->vcpus));
	r |= json_object_set_new(o, "mem_bytes", json_integer((json_int_t)b->mem_bytes));
	r |= json_object_set_new(o, "fs_capacity_bytes",
				 json_integer((json_int_t)b->fs_capacity_bytes));
	r |= json_object_set_new(o, "persistent", json_boolean(b->persistent));
	r |= json_object_set_new(o, "preserve_memory_on_stop",
				 json_boolean(b->preserve_memory_on_stop));
	r |= set_raw(o, "labels", b->labels, true);
	r |= set_raw(o, "run_config", b->run_config, false);
	r |= set_raw(o, "proxy_config", b->proxy_config, false);
	r |= set_raw(o, "mount_config", b->mount_config, false);
	r |= set_raw(o, "access_delegation", b->access_delegation, false);
	if (r) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *api_snapshot_json(const struct store_snapshot *s, const char *created_by)
{
	json_t *o = json_object();
	json_t *inc = json_pack(s->include_memory ? "[s, s]" : "[s]", "filesystem", "memory");
	int r = 0;

	if (!o || !inc) {
		json_decref(o);
		json_decref(inc);
		return NULL;
	}
	r |= json_object_set_new(o, "id", json_string(s->id));
	r |= json_object_set_new(o, "name", json_string(s->name));
	r |= json_object_set_new(o, "status", json_string(snapshot_state_to_string(s->state)));
	r |= set_str_or_null(o, "status_message", s->status_message);
	r |= json_object_set_new(o, "fs_capacity_bytes",
				 json_integer((json_int_t)s->fs_capacity_bytes));
	r |= set_str_or_null(o, "docker_image", s->docker_image);
	r |= set_str_or_null(o, "image_digest", s->image_digest);
	r |= set_str_or_null(o, "source_sandbox_id", s->source_box_id);
	r |= set_time(o, "created_at", s->created_ms);
	r |= set_time(o, "updated_at", s->updated_ms);
	r |= set_str_or_null(o, "created_by", created_by);
	r |= json_object_set_new(o, "included", inc);
	r |= json_object_set_new(o, "memory_snapshot_size_bytes",
				 s->include_memory ? json_integer((json_int_t)s->memory_size_bytes)
						   : json_null());
	r |= json_object_set_new(o, "pool_size", json_integer(s->pool_size));
	if (s->run_config)
		r |= set_raw(o, "run_config", s->run_config, false);
	else
		r |= json_object_set_new(o, "run_config", json_null());
	if (r) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *api_box_status_json(const struct store_box *b)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (json_object_set_new(o, "status", json_string(box_state_to_string(b->state))) ||
	    set_str_or_null(o, "status_message", b->status_message)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

char *api_error_body(const char *type, const char *message)
{
	json_t *o = json_pack("{s:{s:s, s:s}}", "detail", "error", type, "message", message);
	char *s;

	if (!o)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

int api_reply_error(http_req *r, const struct api_error *e)
{
	return http_reply_error(r, e->status ? e->status : 500, e->type[0] ? e->type : "Error",
				"%s", e->message);
}
