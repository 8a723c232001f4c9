/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_fileparse.c - request data of /download, /glob and /grep
 * (dp_parse.h): paths, Range, validators and dates, search bodies.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "sbxd/dataplane/parse/dp_glob.h"
#include "sbxd/dataplane/parse/dp_parse.h"

bool dp_path_valid(const char *p)
{
	size_t n = p ? strlen(p) : 0;

	return n >= 1 && n <= DP_PATH_MAX && p[0] == '/';
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* A decimal without sign; false on overflow or no digit. */
static bool parse_u64(const char **pp, uint64_t *ret)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*p))
		return false;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*pp = p;
	*ret = v;
	return true;
}

enum dp_range_result dp_range_parse(const char *hdr, uint64_t size, uint64_t *ret_start,
				    uint64_t *ret_len)
{
	const char *p = skip_ws(hdr);
	uint64_t a = 0, b = 0;
	bool has_a, has_b;

	if (strncasecmp(p, "bytes", 5))
		return DP_RANGE_NONE;
	p = skip_ws(p + 5);
	if (*p++ != '=')
		return DP_RANGE_NONE;
	p = skip_ws(p);
	has_a = parse_u64(&p, &a);
	p = skip_ws(p);
	if (*p++ != '-')
		return DP_RANGE_NONE;
	p = skip_ws(p);
	has_b = parse_u64(&p, &b);
	p = skip_ws(p);
	if (*p) /* several ranges, or garbage: serve the whole file */
		return DP_RANGE_NONE;
	if (!has_a && !has_b)
		return DP_RANGE_NONE;
	if (!has_a) { /* suffix: the last b bytes */
		if (b == 0 || size == 0)
			return DP_RANGE_UNSATISFIABLE;
		if (b > size)
			b = size;
		*ret_start = size - b;
		*ret_len = b;
		return DP_RANGE_OK;
	}
	if (has_b && b < a)
		return DP_RANGE_NONE; /* invalid: ignored */
	if (a >= size)
		return DP_RANGE_UNSATISFIABLE;
	if (!has_b || b >= size)
		b = size - 1;
	*ret_start = a;
	*ret_len = b - a + 1;
	return DP_RANGE_OK;
}

void dp_etag_format(uint64_t size, int64_t mtime, char *buf, size_t len)
{
	snprintf(buf, len, "\"%" PRIx64 "-%" PRIx64 "\"", size, (uint64_t)mtime);
}

bool dp_etag_list_matches(const char *list, const char *etag)
{
	size_t el = strlen(etag);
	const char *p = skip_ws(list), *e;

	if (!strcmp(p, "*"))
		return true;
	while (*p) {
		p = skip_ws(p);
		if (!strncmp(p, "W/", 2))
			p += 2;
		e = p;
		if (*e == '"') {
			e = strchr(e + 1, '"');
			e = e ? e + 1 : p + strlen(p);
		} else {
			while (*e && *e != ',')
				e++;
		}
		if ((size_t)(e - p) == el && !strncmp(p, etag, el))
			return true;
		p = strchr(e, ',');
		if (!p)
			break;
		p++;
	}
	return false;
}

void dp_http_date(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm))
		snprintf(buf, len, "Thu, 01 Jan 1970 00:00:00 GMT");
}

/* ---- search bodies ---- */

static int take_str(json_t *o, const char *key, size_t max, char **ret)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0)
		return err_set(-EINVAL, "field '%s' must be a non-empty string", key);
	if (json_string_length(v) > max ||
	    memchr(json_string_value(v), '\0', json_string_length(v)))
		return err_set(-EINVAL, "field '%s' is too long or holds NUL characters", key);
	*ret = strdup(json_string_value(v));
	return *ret ? 0 : -ENOMEM;
}

void dp_search_req_release(struct dp_search_req *r)
{
	free(r->pattern);
	free(r->path);
	free(r->glob);
	memset(r, 0, sizeof(*r));
}

int dp_search_parse(const char *buf, size_t len, bool grep, struct dp_search_req *ret)
{
	struct dp_search_req s = {.limit = DP_SEARCH_LIMIT_DEFAULT};
	json_error_t je;
	json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je), *v;
	int r = -EINVAL;

	if (!o || !json_is_object(o)) {
		r = err_set(-EINVAL, "the body must be a JSON object");
		goto out;
	}
	if ((r = take_str(o, "pattern", grep ? 4096 : DP_GLOB_MAX, &s.pattern)) < 0 ||
	    (r = take_str(o, "path", DP_PATH_MAX, &s.path)) < 0 ||
	    (grep && (r = take_str(o, "glob", DP_GLOB_MAX, &s.glob)) < 0))
		goto out;
	r = -EINVAL;
	if (!s.pattern) {
		err_set(-EINVAL, "field 'pattern' is required");
		goto out;
	}
	if (!s.path || !dp_path_valid(s.path)) {
		err_set(-EINVAL, "field 'path' must be an absolute path");
		goto out;
	}
	if (!grep && !dp_glob_valid(s.pattern)) {
		err_set(-EINVAL, "field 'pattern' is not a valid relative glob pattern");
		goto out;
	}
	if (grep && strchr(s.pattern, '\n')) {
		err_set(-EINVAL, "field 'pattern' must be one line");
		goto out;
	}
	if (s.glob && !dp_glob_valid(s.glob)) {
		err_set(-EINVAL, "field 'glob' is not a valid relative glob pattern");
		goto out;
	}
	v = json_object_get(o, "limit");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1) {
			err_set(-EINVAL, "field 'limit' must be a positive integer");
			goto out;
		}
		s.limit = json_integer_value(v) > DP_SEARCH_LIMIT_MAX
			      ? DP_SEARCH_LIMIT_MAX
			      : (unsigned)json_integer_value(v);
	}
	*ret = s;
	memset(&s, 0, sizeof(s));
	r = 0;
out:
	dp_search_req_release(&s);
	json_decref(o);
	return r;
}
