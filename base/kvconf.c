/* SPDX-License-Identifier: Apache-2.0 */
/* kvconf.c - see kvconf.h. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/kvconf.h"

static const char *skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* One line [p, end) without its newline. */
static int parse_line(const char *p, const char *end, const char *source, kvconf_fn fn, void *ud)
{
	char name[KVCONF_NAME_MAX + 1], value[KVCONF_VALUE_MAX + 1];
	const char *k, *eq, *v, *vend;
	size_t kl, vl;

	p = skip_space(p, end);
	if (p == end || *p == '#' || (*p == '\r' && p + 1 == end))
		return 0;
	k = p;
	while (p < end && (isalnum((unsigned char)*p) || *p == '-' || *p == '_'))
		p++;
	kl = (size_t)(p - k);
	eq = skip_space(p, end);
	if (kl == 0 || eq == end || *eq != '=')
		return err_set(-EINVAL, "%s: expected 'name = value'", source);
	if (kl >= sizeof(name))
		return err_set(-ENOENT, "%s: unknown setting (name too long)", source);
	memcpy(name, k, kl);
	name[kl] = '\0';
	v = skip_space(eq + 1, end);
	vend = end;
	while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t' || vend[-1] == '\r'))
		vend--;
	if (vend > v && *v == '"') {
		if (vend - v < 2 || vend[-1] != '"')
			return err_set(-EINVAL, "%s: the value of %s has no closing '\"'", source,
				       name);
		v++;
		vend--;
	}
	vl = (size_t)(vend - v);
	if (vl >= sizeof(value))
		return err_set(-EINVAL, "%s: the value of %s is too long", source, name);
	if (memchr(v, '\0', vl))
		return err_set(-EINVAL, "%s: the value of %s contains a NUL byte", source, name);
	memcpy(value, v, vl);
	value[vl] = '\0';
	return fn(ud, name, value, source);
}

int kvconf_parse(const char *text, size_t len, const char *path, kvconf_fn fn, void *ud)
{
	const char *p = text, *end = text + len;
	unsigned lineno = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		char source[PATH_MAX + 32];
		int r;

		lineno++;
		snprintf(source, sizeof(source), "%s:%u", path, lineno);
		r = parse_line(p, le, source, fn, ud);
		if (r < 0)
			return r;
		p = nl ? nl + 1 : end;
	}
	return 0;
}
