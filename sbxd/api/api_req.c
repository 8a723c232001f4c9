/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_req.c - routing and validation of untrusted request data (see
 * api_req.h). Pure functions: no I/O, no logging, no globals. JSON is
 * parsed with jansson; every field is type-checked and bounded here, so
 * the handlers only ever see plain, valid C values.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sbxd/api/api_req.h"
#include "base/cleanup.h"
#include "sbxd/common/key.h"

int api_error_set(struct api_error *e, int status, const char *type, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	snprintf(e->type, sizeof(e->type), "%s", type);
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const char *const route_names[ROUTE_KIND_COUNT] = {
    [ROUTE_HEALTHZ] = "healthz",
    [ROUTE_BOXES] = "boxes",
    [ROUTE_BOX] = "box",
    [ROUTE_BOX_STATUS] = "box-status",
    [ROUTE_BOX_START] = "box-start",
    [ROUTE_BOX_STOP] = "box-stop",
    [ROUTE_BOX_SNAPSHOT] = "box-snapshot",
    [ROUTE_BOX_SERVICE_URL] = "box-service-url",
    [ROUTE_BOX_DOWNLOAD_URL] = "box-download-url",
    [ROUTE_BOX_AUDIT] = "box-audit",
    [ROUTE_SNAPSHOTS] = "snapshots",
    [ROUTE_SNAPSHOT] = "snapshot",
    [ROUTE_SNAPSHOT_POOL] = "snapshot-pool",
    [ROUTE_DATAPLANE] = "dataplane",
    [ROUTE_METRICS] = "metrics",
};

const char *api_route_kind_to_string(enum api_route_kind k)
{
	if ((int)k < 0 || k >= ROUTE_KIND_COUNT)
		return "?";
	return route_names[k];
}

static const char *const dp_op_names[API_DP_OP_COUNT] = {
    [DP_EXECUTE] = "execute", [DP_EXECUTE_WS] = "execute/ws",
    [DP_UPLOAD] = "upload",   [DP_DOWNLOAD] = "download",
    [DP_GLOB] = "glob",	      [DP_GREP] = "grep",
};

const char *api_dp_op_to_string(enum api_dp_op op)
{
	if ((int)op < 0 || op >= API_DP_OP_COUNT)
		return "?";
	return dp_op_names[op];
}

/* ---- routing ---- */

/* Copies the next segment of *p (up to '/' or the end) into buf, advancing
 * *p past it and one '/'. A segment must be non-empty, bounded and free of
 * control characters. */
static int next_segment(const char **p, char *buf, size_t len)
{
	const char *s = *p, *e = strchr(s, '/');
	size_t n = e ? (size_t)(e - s) : strlen(s);

	if (n == 0 || n >= len)
		return -ENOENT;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return -ENOENT;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*p = e ? e + 1 : s + n;
	return 0;
}

static const char *skip_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(s, prefix, n) ? NULL : s + n;
}

static int route_box(const char *rest, struct api_route *r)
{
	static const struct {
		const char *name;
		enum api_route_kind kind;
	} subs[] = {
	    {"status", ROUTE_BOX_STATUS},
	    {"start", ROUTE_BOX_START},
	    {"stop", ROUTE_BOX_STOP},
	    {"snapshot", ROUTE_BOX_SNAPSHOT},
	    {"service-url", ROUTE_BOX_SERVICE_URL},
	    {"download-url", ROUTE_BOX_DOWNLOAD_URL},
	    {"audit", ROUTE_BOX_AUDIT},
	};

	if (next_segment(&rest, r->target, sizeof(r->target)) < 0)
		return -ENOENT;
	if (*rest == '\0') {
		r->kind = ROUTE_BOX;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		if (!strcmp(rest, subs[i].name)) {
			r->kind = subs[i].kind;
			return 0;
		}
	}
	return -ENOENT;
}

static int route_dataplane(const char *rest, struct api_route *r)
{
	if (next_segment(&rest, r->target, sizeof(r->target)) < 0 || !api_uuid_is_valid(r->target))
		return -ENOENT;
	for (int i = 0; i < API_DP_OP_COUNT; i++) {
		if (!strcmp(rest, dp_op_names[i])) {
			r->kind = ROUTE_DATAPLANE;
			r->dp_op = (enum api_dp_op)i;
			return 0;
		}
	}
	return -ENOENT;
}

int api_route_parse(const char *path, struct api_route *ret)
{
	char buf[1024];
	struct api_route r = {0};
	const char *rest;
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf) || path[0] != '/')
		return -ENOENT;
	memcpy(buf, path, n + 1);
	if (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	if (!strcmp(buf, "/healthz") || !strcmp(buf, "/metrics")) {
		ret->kind = buf[1] == 'h' ? ROUTE_HEALTHZ : ROUTE_METRICS;
		ret->target[0] = '\0';
		return 0;
	}
	if ((rest = skip_prefix(buf, API_DATAPLANE_PREFIX))) {
		if (route_dataplane(rest, &r) < 0)
			return -ENOENT;
		*ret = r;
		return 0;
	}
	rest = skip_prefix(buf, "/api/v2/sandboxes/");
	if (!rest)
		rest = skip_prefix(buf, "/v2/sandboxes/");
	if (!rest)
		return -ENOENT;
	if (!strcmp(rest, "boxes")) {
		r.kind = ROUTE_BOXES;
	} else if (!strcmp(rest, "snapshots")) {
		r.kind = ROUTE_SNAPSHOTS;
	} else if (skip_prefix(rest, "boxes/")) {
		if (route_box(rest + 6, &r) < 0)
			return -ENOENT;
	} else if (skip_prefix(rest, "snapshots/")) {
		rest += 10;
		if (next_segment(&rest, r.target, sizeof(r.target)) < 0)
			return -ENOENT;
		if (!*rest)
			r.kind = ROUTE_SNAPSHOT;
		else if (!strcmp(rest, "pool"))
			r.kind = ROUTE_SNAPSHOT_POOL;
		else
			return -ENOENT;
	} else {
		return -ENOENT;
	}
	*ret = r;
	return 0;
}

#define M(x) (1u << (x))

static unsigned route_methods(const struct api_route *r)
{
	switch (r->kind) {
	case ROUTE_HEALTHZ:
	case ROUTE_METRICS:
	case ROUTE_BOX_STATUS:
	case ROUTE_BOX_AUDIT:
		return M(HTTP_GET);
	case ROUTE_SNAPSHOT_POOL:
		return M(HTTP_GET) | M(HTTP_PUT);
	case ROUTE_BOXES:
	case ROUTE_SNAPSHOTS:
		return M(HTTP_GET) | M(HTTP_POST);
	case ROUTE_BOX:
		return M(HTTP_GET) | M(HTTP_PATCH) | M(HTTP_DELETE);
	case ROUTE_SNAPSHOT:
		return M(HTTP_GET) | M(HTTP_DELETE);
	case ROUTE_BOX_START:
	case ROUTE_BOX_STOP:
	case ROUTE_BOX_SNAPSHOT:
	case ROUTE_BOX_SERVICE_URL:
	case ROUTE_BOX_DOWNLOAD_URL:
		return M(HTTP_POST);
	case ROUTE_DATAPLANE:
		switch (r->dp_op) {
		case DP_EXECUTE_WS:
		case DP_DOWNLOAD:
			return M(HTTP_GET);
		case DP_EXECUTE:
		case DP_UPLOAD:
		case DP_GLOB:
		case DP_GREP:
			return M(HTTP_POST);
		case API_DP_OP_COUNT:
		case API_DP_OP_INVALID:
			break;
		}
		return 0;
	case ROUTE_KIND_COUNT:
		break;
	}
	return 0;
}

bool api_route_allows(const struct api_route *r, enum http_method m, const char **ret_allow)
{
	static const char *const lists[] = {
	    [M(HTTP_GET)] = "GET, HEAD",
	    [M(HTTP_POST)] = "POST",
	    [M(HTTP_GET) | M(HTTP_POST)] = "GET, HEAD, POST",
	    [M(HTTP_GET) | M(HTTP_DELETE)] = "GET, HEAD, DELETE",
	    [M(HTTP_GET) | M(HTTP_PUT)] = "GET, HEAD, PUT",
	    [M(HTTP_GET) | M(HTTP_PATCH) | M(HTTP_DELETE)] = "GET, HEAD, PATCH, DELETE",
	};
	unsigned set = route_methods(r);

	if (ret_allow)
		*ret_allow = set < ARRAY_SIZE(lists) && lists[set] ? lists[set] : "";
	if ((int)m < 0 || m >= HTTP_METHOD_COUNT)
		return false;
	if (m == HTTP_HEAD)
		m = HTTP_GET;
	return (set & M(m)) != 0;
}

bool api_route_needs_key(const struct api_route *r)
{
	return r->kind != ROUTE_HEALTHZ && r->kind != ROUTE_METRICS;
}

/* ---- names, ids, headers ---- */

bool api_name_is_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > API_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && (c != '-' || i == 0 || i == n - 1))
			return false;
	}
	return true;
}

int api_name_check(const char *name, struct api_error *e)
{
	char shown[API_NAME_MAX + 8];
	size_t n;

	if (api_name_is_valid(name))
		return 0;
	/* Quote at most a bounded, printable prefix of what was sent. */
	n = 0;
	for (const char *p = name; *p && n < API_NAME_MAX + 1; p++)
		shown[n++] = isprint((unsigned char)*p) && *p != '\'' ? *p : '?';
	shown[n] = '\0';
	return api_error_set(e, 422, "ValidationError",
			     "sandbox name '%s%s' is not valid: use 1 to %d lowercase letters, "
			     "digits and '-', starting and ending with a letter or digit",
			     shown, strlen(name) > n ? "..." : "", API_NAME_MAX);
}

bool api_uuid_is_valid(const char *s)
{
	static const int groups[] = {8, 4, 4, 4, 12};

	for (size_t g = 0; g < ARRAY_SIZE(groups); g++) {
		for (int i = 0; i < groups[g]; i++, s++)
			if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
				return false;
		if (g + 1 < ARRAY_SIZE(groups) && *s++ != '-')
			return false;
	}
	return *s == '\0';
}

int api_key_header_parse(const char *value, size_t len, char *buf, size_t buflen)
{
	while (len && (*value == ' ' || *value == '\t'))
		value++, len--;
	while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	if (len == 0 || len > SBXD_KEY_HEADER_MAX || len >= buflen)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (value[i] < 0x21 || value[i] > 0x7e)
			return -EINVAL;
	memcpy(buf, value, len);
	buf[len] = '\0';
	return 0;
}

bool api_host_is_valid(const char *host)
{
	const char *p = host, *port;
	size_t hl;

	if (!host || !*host || strlen(host) > 260)
		return false;
	if (*p == '[') {
		const char *rb = strchr(p, ']');

		if (!rb || rb == p + 1)
			return false;
		for (const char *q = p + 1; q < rb; q++)
			if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
				return false;
		port = rb + 1;
	} else {
		port = strchr(p, ':');
		hl = port ? (size_t)(port - p) : strlen(p);
		if (hl == 0 || hl > 253)
			return false;
		for (size_t i = 0; i < hl; i++)
			if (!isalnum((unsigned char)p[i]) && p[i] != '.' && p[i] != '-')
				return false;
		if (!port)
			return true;
	}
	if (*port == '\0')
		return true;
	if (*port != ':' || !port[1] || strlen(port + 1) > 5)
		return false;
	for (const char *q = port + 1; *q; q++)
		if (!isdigit((unsigned char)*q))
			return false;
	return atoi(port + 1) <= 65535;
}

int api_dataplane_url(const char *public_url, const char *host, const char *id, char *buf,
		      size_t len)
{
	int n;

	if (public_url && *public_url) {
		size_t pl = strlen(public_url);

		while (pl > 0 && public_url[pl - 1] == '/')
			pl--;
		n = snprintf(buf, len, "%.*s/dataplane/%s", (int)pl, public_url, id);
	} else {
		if (!api_host_is_valid(host))
			return -EINVAL;
		n = snprintf(buf, len, "http://%s/dataplane/%s", host, id);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- JSON field extraction ---- */

static int parse_object(const char *body, size_t len, json_t **ret, struct api_error *e)
{
	json_error_t jerr;
	json_t *j;

	if (len > API_MAX_BODY)
		return api_error_set(e, 413, "PayloadTooLarge",
				     "the request body is larger than %d bytes", API_MAX_BODY);
	j = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j)
		return api_error_set(e, 400, "InvalidJSON",
				     "the request body is not valid JSON: %s (line %d, column %d)",
				     jerr.text, jerr.line, jerr.column);
	if (!json_is_object(j)) {
		json_decref(j);
		return api_error_set(e, 422, "ValidationError",
				     "the request body must be a JSON object");
	}
	*ret = j;
	return 0;
}

/* A present, non-null member, or NULL. */
static json_t *member(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_null(v) ? NULL : v;
}

static int get_bool(json_t *o, const char *key, int *ret, struct api_error *e)
{
	json_t *v = member(o, key);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return api_error_set(e, 422, "ValidationError", "field '%s' must be true or false",
				     key);
	*ret = json_is_true(v);
	return 0;
}

/* An integer in [min, max]; a real with an integral value is accepted
 * (JSON has one number type). */
static int get_int(json_t *o, const char *key, int64_t min, int64_t max, int64_t *ret,
		   struct api_error *e)
{
	json_t *v = member(o, key);
	int64_t x;

	if (!v)
		return 0;
	if (json_is_integer(v)) {
		x = json_integer_value(v);
	} else if (json_is_real(v) && json_real_value(v) >= -9.0e15 &&
		   json_real_value(v) <= 9.0e15 &&
		   json_real_value(v) == (double)(int64_t)json_real_value(v)) {
		x = (int64_t)json_real_value(v);
	} else {
		return api_error_set(e, 422, "ValidationError", "field '%s' must be a whole number",
				     key);
	}
	if (x < min || x > max)
		return api_error_set(e, 422, "ValidationError",
				     "field '%s' must be from %lld to %lld, not %lld", key,
				     (long long)min, (long long)max, (long long)x);
	*ret = x;
	return 0;
}

static int get_string(json_t *o, const char *key, size_t maxlen, char **ret, struct api_error *e)
{
	json_t *v = member(o, key);
	char *s;

	if (!v)
		return 0;
	if (!json_is_string(v))
		return api_error_set(e, 422, "ValidationError", "field '%s' must be a string", key);
	if (json_string_length(v) > maxlen)
		return api_error_set(e, 422, "ValidationError",
				     "field '%s' is too long (at most %zu characters)", key,
				     maxlen);
	s = strdup(json_string_value(v));
	if (!s)
		return api_error_set(e, 500, "InternalError", "out of memory");
	free(*ret);
	*ret = s;
	return 0;
}

static int dump_compact(json_t *v, char **ret, struct api_error *e)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	if (!s)
		return api_error_set(e, 500, "InternalError", "out of memory");
	free(*ret);
	*ret = s;
	return 0;
}

/* An object of string values (labels, env_vars). */
static int check_string_map(json_t *v, const char *field, size_t max_entries, size_t max_key,
			    size_t max_value, struct api_error *e)
{
	const char *k;
	json_t *x;

	if (!json_is_object(v))
		return api_error_set(e, 422, "ValidationError",
				     "field '%s' must be an object of strings", field);
	if (json_object_size(v) > max_entries)
		return api_error_set(e, 422, "ValidationError",
				     "field '%s' has more than %zu entries", field, max_entries);
	json_object_foreach(v, k, x)
	{
		if (strlen(k) == 0 || strlen(k) > max_key)
			return api_error_set(e, 422, "ValidationError",
					     "field '%s': keys must have 1 to %zu characters",
					     field, max_key);
		if (!json_is_string(x))
			return api_error_set(e, 422, "ValidationError",
					     "field '%s': the value of '%.64s' must be a string",
					     field, k);
		if (json_string_length(x) > max_value)
			return api_error_set(e, 422, "ValidationError",
					     "field '%s': the value of '%.64s' is longer than %zu",
					     field, k, max_value);
	}
	return 0;
}

static int check_run_config(json_t *v, struct api_error *e)
{
	json_t *x;

	if (!json_is_object(v))
		return api_error_set(e, 422, "ValidationError",
				     "field 'run_config' must be an object");
	x = member(v, "user");
	if (x && (!json_is_string(x) || json_string_length(x) == 0 || json_string_length(x) > 256))
		return api_error_set(e, 422, "ValidationError",
				     "field 'run_config.user' must be a user name or uid "
				     "(\"name\", \"uid\", \"name:group\" or \"uid:gid\")");
	x = member(v, "work_dir");
	if (x &&
	    (!json_is_string(x) || json_string_value(x)[0] != '/' || json_string_length(x) > 4096))
		return api_error_set(e, 422, "ValidationError",
				     "field 'run_config.work_dir' must be an absolute path");
	x = member(v, "env_vars");
	if (x)
		return check_string_map(x, "run_config.env_vars", 1024, 256, 64 * 1024, e);
	return 0;
}

/* Optional "run_config": validated, then kept as compact JSON in *ret. */
static int get_run_config(json_t *o, char **ret, struct api_error *e)
{
	json_t *v = member(o, "run_config");
	int r;

	if (!v)
		return 0;
	r = check_run_config(v, e);
	return r < 0 ? r : dump_compact(v, ret, e);
}

static int get_object(json_t *o, const char *key, char **ret, struct api_error *e)
{
	json_t *v = member(o, key);

	if (!v)
		return 0;
	if (!json_is_object(v))
		return api_error_set(e, 422, "ValidationError", "field '%s' must be an object",
				     key);
	return dump_compact(v, ret, e);
}

/* idle_ttl_seconds, delete_after_stop_seconds, max_lifetime_seconds: 0 (off)
 * or seconds. The langsmith client accepts whole minutes only; sbxd takes
 * any second (for tests, and for clients that want less). */
static int get_ttl(json_t *o, const char *key, int64_t *ret, struct api_error *e)
{
	int64_t v = -1;
	int r = get_int(o, key, 0, 10LL * 365 * 86400, &v, e);

	if (r < 0)
		return r;
	if (v >= 0)
		*ret = v;
	return 0;
}

int api_parse_create(const char *body, size_t len, struct api_create_req *ret, struct api_error *e)
{
	json_auto_t *o = NULL;
	struct api_create_req r = {
	    .wait_for_ready = true,
	    .timeout_s = 30,
	    .persistent = -1,
	    .preserve_memory_on_stop = -1,
	    .restore_memory = -1,
	    .idle_ttl_seconds = -1,
	    .delete_after_stop_seconds = -1,
	    .max_lifetime_seconds = -1,
	};
	int wait = 1, rr = 0;
	json_t *v;

	if (len == 0) {
		*ret = r; /* no body: every default */
		return 0;
	}
	rr = parse_object(body, len, &o, e);
	if (rr < 0)
		return rr;
	if ((rr = get_bool(o, "wait_for_ready", &wait, e)) < 0 ||
	    (rr = get_int(o, "timeout", 1, API_MAX_TIMEOUT_S, &r.timeout_s, e)) < 0 ||
	    (rr = get_string(o, "name", 256, &r.name, e)) < 0 ||
	    (rr = get_string(o, "snapshot_id", API_SEGMENT_MAX, &r.snapshot_id, e)) < 0 ||
	    (rr = get_string(o, "snapshot_name", API_SEGMENT_MAX, &r.snapshot_name, e)) < 0 ||
	    (rr = get_bool(o, "persistent", &r.persistent, e)) < 0 ||
	    (rr = get_bool(o, "preserve_memory_on_stop", &r.preserve_memory_on_stop, e)) < 0 ||
	    (rr = get_bool(o, "restore_memory", &r.restore_memory, e)) < 0 ||
	    (rr = get_ttl(o, "idle_ttl_seconds", &r.idle_ttl_seconds, e)) < 0 ||
	    (rr = get_ttl(o, "delete_after_stop_seconds", &r.delete_after_stop_seconds, e)) < 0 ||
	    (rr = get_ttl(o, "max_lifetime_seconds", &r.max_lifetime_seconds, e)) < 0 ||
	    (rr = get_int(o, "vcpus", 1, 1024, &r.vcpus, e)) < 0 ||
	    (rr = get_int(o, "mem_bytes", 1, INT64_MAX / 2, &r.mem_bytes, e)) < 0 ||
	    (rr = get_int(o, "fs_capacity_bytes", 1, INT64_MAX / 2, &r.fs_capacity_bytes, e)) < 0 ||
	    (rr = get_object(o, "proxy_config", &r.proxy_config, e)) < 0 ||
	    (rr = get_object(o, "mount_config", &r.mount_config, e)) < 0 ||
	    (rr = get_object(o, "access_delegation", &r.access_delegation, e)) < 0)
		goto fail;
	r.wait_for_ready = wait;
	if (r.name && (rr = api_name_check(r.name, e)) < 0)
		goto fail;
	if (r.snapshot_id && r.snapshot_name) {
		rr = api_error_set(e, 422, "ValidationError",
				   "give either snapshot_id or snapshot_name, not both");
		goto fail;
	}
	if ((v = member(o, "labels"))) {
		rr = check_string_map(v, "labels", API_MAX_LABELS, API_LABEL_KEY_MAX,
				      API_LABEL_VALUE_MAX, e);
		if (rr < 0 || (rr = dump_compact(v, &r.labels, e)) < 0)
			goto fail;
	}
	if ((rr = get_run_config(o, &r.run_config, e)) < 0)
		goto fail;
	*ret = r;
	return 0;

fail:
	api_create_req_release(&r);
	return rr;
}

void api_create_req_release(struct api_create_req *r)
{
	free(r->name);
	free(r->snapshot_id);
	free(r->snapshot_name);
	free(r->labels);
	free(r->run_config);
	free(r->proxy_config);
	free(r->mount_config);
	free(r->access_delegation);
	r->name = r->snapshot_id = r->snapshot_name = NULL;
	r->labels = r->run_config = r->proxy_config = r->mount_config = NULL;
	r->access_delegation = NULL;
}

#define MIB (1024ull * 1024ull)

int api_resolve_resources(const struct api_limits *l, const struct api_create_req *r,
			  struct api_resources *ret, struct api_error *e)
{
	struct api_resources res = {
	    .vcpus = l->default_vcpus,
	    .mem_bytes = l->default_mem_bytes,
	    .fs_capacity_bytes = l->default_disk_bytes,
	};

	if (r->vcpus > 0) {
		if ((uint64_t)r->vcpus > l->max_vcpus)
			return api_error_set(e, 422, "ValidationError",
					     "vcpus: %lld virtual CPUs is more than this server "
					     "allows for one sandbox (%u)",
					     (long long)r->vcpus, l->max_vcpus);
		res.vcpus = (unsigned)r->vcpus;
	}
	if (r->mem_bytes > 0) {
		uint64_t m = ((uint64_t)r->mem_bytes + MIB - 1) / MIB * MIB;

		if (m < API_MIN_MEM_BYTES)
			return api_error_set(
			    e, 422, "ValidationError",
			    "mem_bytes: a sandbox needs at least %llu bytes (%llu MiB) "
			    "of memory",
			    API_MIN_MEM_BYTES, API_MIN_MEM_BYTES / MIB);
		if (m > l->max_mem_bytes)
			return api_error_set(
			    e, 422, "ValidationError",
			    "mem_bytes: %llu bytes of memory is more than this server "
			    "allows for one sandbox (%llu bytes, %llu MiB)",
			    (unsigned long long)r->mem_bytes, (unsigned long long)l->max_mem_bytes,
			    (unsigned long long)(l->max_mem_bytes / MIB));
		res.mem_bytes = m;
	}
	if (r->fs_capacity_bytes > 0) {
		uint64_t d = (uint64_t)r->fs_capacity_bytes;

		if (d < l->min_disk_bytes)
			return api_error_set(
			    e, 422, "ValidationError",
			    "fs_capacity_bytes: the disk cannot be smaller than the "
			    "image it starts from (%llu bytes)",
			    (unsigned long long)l->min_disk_bytes);
		if (d > l->max_disk_bytes)
			return api_error_set(
			    e, 422, "ValidationError",
			    "fs_capacity_bytes: %llu bytes of storage is more than "
			    "this server allows for one sandbox (%llu bytes)",
			    (unsigned long long)d, (unsigned long long)l->max_disk_bytes);
		res.fs_capacity_bytes = d;
	}
	*ret = res;
	return 0;
}

int api_resolve_lifetime(const struct api_limits *l, const struct api_create_req *r, int64_t *ret,
			 struct api_error *e)
{
	int64_t cap = l->max_lifetime_seconds;

	if (r->max_lifetime_seconds < 0) {
		*ret = cap;
		return 0;
	}
	if (cap > 0 && (r->max_lifetime_seconds == 0 || r->max_lifetime_seconds > cap))
		return api_error_set(e, 422, "ValidationError",
				     "max_lifetime_seconds: this server deletes every sandbox at "
				     "most %lld seconds after it was created; ask for %lld or "
				     "less, or leave max_lifetime_seconds out",
				     (long long)cap, (long long)cap);
	*ret = r->max_lifetime_seconds;
	return 0;
}

int api_check_quota(const struct api_limits *l, unsigned used_sandboxes, uint64_t used_mem,
		    const struct api_resources *res, struct api_error *e)
{
	if (l->max_sandboxes && used_sandboxes + 1 > l->max_sandboxes)
		return api_error_set(e, 429, "QuotaExceeded",
				     "sandbox count limit reached: this server runs at most %u "
				     "sandboxes; delete one first",
				     l->max_sandboxes);
	if (l->max_total_mem_bytes && used_mem + res->mem_bytes > l->max_total_mem_bytes)
		return api_error_set(
		    e, 429, "QuotaExceeded",
		    "memory quota exceeded: sandboxes already use %llu MiB of the "
		    "%llu MiB this server gives out, and this one asks for %llu MiB",
		    (unsigned long long)(used_mem / MIB),
		    (unsigned long long)(l->max_total_mem_bytes / MIB),
		    (unsigned long long)(res->mem_bytes / MIB));
	return 0;
}

int api_check_key_quota(const char *key, unsigned max_sandboxes, uint64_t max_mem,
			unsigned used_sandboxes, uint64_t used_mem, const struct api_resources *res,
			struct api_error *e)
{
	/* "sandbox" + "limit" / "memory": the langsmith client derives its
	 * quotaType (sandbox_count, memory) from these words */
	if (max_sandboxes && used_sandboxes + 1 > max_sandboxes)
		return api_error_set(e, 429, "QuotaExceeded",
				     "sandbox count limit reached: API key '%s' may have %u "
				     "running sandbox(es) and has %u; delete or stop one, or ask "
				     "the operator to raise the key's limit",
				     key, max_sandboxes, used_sandboxes);
	if (max_mem && used_mem + res->mem_bytes > max_mem)
		return api_error_set(e, 429, "QuotaExceeded",
				     "memory quota exceeded: API key '%s' may use %llu MiB, its "
				     "sandboxes use %llu MiB and this one asks for %llu MiB",
				     key, (unsigned long long)(max_mem / MIB),
				     (unsigned long long)(used_mem / MIB),
				     (unsigned long long)(res->mem_bytes / MIB));
	return 0;
}

/* ---- snapshots ---- */

bool api_snapshot_name_is_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > API_SNAPSHOT_NAME_MAX || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
			return false;
	return true;
}

int api_snapshot_name_check(const char *field, const char *name, struct api_error *e)
{
	char shown[API_SNAPSHOT_NAME_MAX + 8];
	size_t n = 0;

	if (api_snapshot_name_is_valid(name))
		return 0;
	for (const char *p = name; *p && n < API_SNAPSHOT_NAME_MAX + 1; p++)
		shown[n++] = isprint((unsigned char)*p) && *p != '\'' ? *p : '?';
	shown[n] = '\0';
	return api_error_set(e, 422, "ValidationError",
			     "%s '%s%s' is not valid: use 1 to %d letters, digits, '.', '_' and "
			     "'-', starting with a letter or digit",
			     field, shown, strlen(name) > n ? "..." : "", API_SNAPSHOT_NAME_MAX);
}

int api_parse_capture(const char *body, size_t len, struct api_capture_req *ret,
		      struct api_error *e)
{
	json_auto_t *o = NULL;
	struct api_capture_req r = {.include_memory = -1};
	char *docker_image = NULL;
	int rr;

	rr = parse_object(body, len, &o, e);
	if (rr < 0)
		return rr;
	if ((rr = get_string(o, "name", 1024, &r.name, e)) < 0 ||
	    (rr = get_bool(o, "include_memory", &r.include_memory, e)) < 0 ||
	    (rr = get_int(o, "fs_capacity_bytes", 1, INT64_MAX / 2, &r.fs_capacity_bytes, e)) < 0 ||
	    (rr = get_string(o, "docker_image", 1024, &docker_image, e)) < 0 ||
	    (rr = get_run_config(o, &r.run_config, e)) < 0)
		goto fail;
	if (docker_image) {
		free(docker_image);
		rr = api_error_set(e, 422, "ValidationError",
				   "field 'docker_image': exporting an image from inside a "
				   "sandbox is not supported; leave it out to capture the "
				   "sandbox's root filesystem");
		goto fail;
	}
	if (!r.name) {
		rr = api_error_set(e, 422, "ValidationError", "field 'name' is required");
		goto fail;
	}
	if ((rr = api_snapshot_name_check("snapshot name", r.name, e)) < 0)
		goto fail;
	*ret = r;
	return 0;
fail:
	api_capture_req_release(&r);
	return rr;
}

void api_capture_req_release(struct api_capture_req *r)
{
	free(r->name);
	free(r->run_config);
	r->name = r->run_config = NULL;
}

int api_parse_snapshot_create(const char *body, size_t len, struct api_snapshot_req *ret,
			      struct api_error *e)
{
	json_auto_t *o = NULL;
	struct api_snapshot_req r = {0};
	int rr;

	rr = parse_object(body, len, &o, e);
	if (rr < 0)
		return rr;
	/* fs_capacity_bytes 0 is what a client sends for "the image's size" */
	if ((rr = get_string(o, "name", 1024, &r.name, e)) < 0 ||
	    (rr = get_string(o, "docker_image", 1024, &r.docker_image, e)) < 0 ||
	    (rr = get_int(o, "fs_capacity_bytes", 0, INT64_MAX / 2, &r.fs_capacity_bytes, e)) < 0 ||
	    (rr = get_run_config(o, &r.run_config, e)) < 0)
		goto fail;
	if (!r.name) {
		rr = api_error_set(e, 422, "ValidationError", "field 'name' is required");
		goto fail;
	}
	if (!r.docker_image) {
		rr = api_error_set(e, 422, "ValidationError",
				   "field 'docker_image' is required: the name of an image this "
				   "server has (e.g. \"default\")");
		goto fail;
	}
	if ((rr = api_snapshot_name_check("snapshot name", r.name, e)) < 0)
		goto fail;
	*ret = r;
	return 0;
fail:
	api_snapshot_req_release(&r);
	return rr;
}

void api_snapshot_req_release(struct api_snapshot_req *r)
{
	free(r->name);
	free(r->docker_image);
	free(r->run_config);
	r->name = r->docker_image = r->run_config = NULL;
}

int api_parse_pool(const char *body, size_t len, unsigned max, unsigned *ret, struct api_error *e)
{
	json_auto_t *o = NULL;
	int64_t size = -1;
	int rr;

	rr = parse_object(body, len, &o, e);
	if (rr < 0)
		return rr;
	rr = get_int(o, "size", 0, max, &size, e);
	if (rr < 0)
		return rr;
	if (size < 0)
		return api_error_set(e, 422, "ValidationError",
				     "field 'size' is required: the number of ready sandboxes to "
				     "keep (0 to %u)",
				     max);
	*ret = (unsigned)size;
	return 0;
}

static int parse_uint(const char *s, const char *what, int64_t min, int64_t max, int64_t *ret,
		      struct api_error *e)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max || !isdigit((unsigned char)s[0]))
		return api_error_set(e, 422, "ValidationError",
				     "query parameter '%s' must be a whole number from %lld to "
				     "%lld",
				     what, (long long)min, (long long)max);
	*ret = v;
	return 0;
}

int api_parse_list_query(const char *limit, const char *offset, unsigned *ret_limit,
			 unsigned *ret_offset, struct api_error *e)
{
	int64_t l = API_LIST_LIMIT_DEFAULT, o = 0;

	if (limit && parse_uint(limit, "limit", 1, API_LIST_LIMIT_MAX, &l, e) < 0)
		return -EINVAL;
	if (offset && parse_uint(offset, "offset", 0, 1000000000, &o, e) < 0)
		return -EINVAL;
	*ret_limit = (unsigned)l;
	*ret_offset = (unsigned)o;
	return 0;
}

/* ---- update ---- */

int api_parse_update(const char *body, size_t len, struct api_update_req *ret, struct api_error *e)
{
	json_auto_t *o = NULL;
	struct api_update_req r = {.idle_ttl_seconds = -1, .delete_after_stop_seconds = -1};
	int rr;

	if (len == 0) {
		*ret = r;
		return 0;
	}
	rr = parse_object(body, len, &o, e);
	if (rr < 0)
		return rr;
	if ((rr = get_string(o, "name", 256, &r.name, e)) < 0 ||
	    (rr = get_ttl(o, "idle_ttl_seconds", &r.idle_ttl_seconds, e)) < 0 ||
	    (rr = get_ttl(o, "delete_after_stop_seconds", &r.delete_after_stop_seconds, e)) < 0 ||
	    (rr = get_object(o, "proxy_config", &r.proxy_config, e)) < 0)
		goto fail;
	if (r.name && (rr = api_name_check(r.name, e)) < 0)
		goto fail;
	if ((rr = get_run_config(o, &r.run_config, e)) < 0)
		goto fail;
	*ret = r;
	return 0;

fail:
	api_update_req_release(&r);
	return rr;
}

void api_update_req_release(struct api_update_req *r)
{
	free(r->name);
	free(r->run_config);
	free(r->proxy_config);
	r->name = r->run_config = r->proxy_config = NULL;
}

int api_merge_run_config(const char *old, const char *patch, char **ret)
{
	json_auto_t *o = NULL;
	json_auto_t *p = NULL;
	const char *k;
	json_t *v;
	char *s;

	p = json_loads(patch, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(p))
		return -EINVAL;
	o = old ? json_loads(old, 0, NULL) : NULL;
	if (!json_is_object(o)) {
		json_decref(o);
		o = json_object();
		if (!o)
			return -ENOMEM;
	}
	json_object_foreach(p, k, v)
	{
		json_t *cur = json_object_get(o, k);

		if (!strcmp(k, "env_vars") && json_is_object(v) && json_is_object(cur)) {
			if (json_object_update(cur, v) < 0)
				return -ENOMEM;
		} else if (json_object_set(o, k, v) < 0) {
			return -ENOMEM;
		}
	}
	s = json_dumps(o, JSON_COMPACT);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}
