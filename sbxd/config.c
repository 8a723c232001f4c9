/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c - sbxd's settings table and its parsers (flags, SBX_*
 * variables, config file). The table below is the one list of settings.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/err.h"
#include "base/kvconf.h"
#include "sbxd/config.h"

enum opt_type { OPT_STR, OPT_UINT, OPT_LISTEN, OPT_CHOICE };

struct opt {
	const char *name;
	enum opt_type type;
	size_t off;
	size_t size;		    /* OPT_STR/OPT_CHOICE: buffer size */
	unsigned min, max;	    /* OPT_UINT */
	const char *const *choices; /* OPT_CHOICE, NULL-terminated */
};

static const char *const accel_choices[] = {"auto", "kvm", "tcg", NULL};
static const char *const level_choices[] = {"error", "warn", "info", "debug", NULL};
static const char *const format_choices[] = {"text", "json", NULL};

#define STR(n, f)                                                                                  \
	{                                                                                          \
		n, OPT_STR, offsetof(struct sbxd_config, f), sizeof(((struct sbxd_config *)0)->f), \
		    0, 0, NULL                                                                     \
	}
#define UINT(n, f, lo, hi)                                                                         \
	{                                                                                          \
		n, OPT_UINT, offsetof(struct sbxd_config, f), 0, lo, hi, NULL                      \
	}
#define CHOICE(n, f, ch)                                                                           \
	{                                                                                          \
		n, OPT_CHOICE, offsetof(struct sbxd_config, f),                                    \
		    sizeof(((struct sbxd_config *)0)->f), 0, 0, ch                                 \
	}

static const struct opt opts[] = {
    {"listen", OPT_LISTEN, 0, 0, 0, 0, NULL},
    STR("state-dir", state_dir),
    STR("libvirt-uri", libvirt_uri),
    STR("image", image_dir),
    STR("public-url", public_url),
    CHOICE("accel", accel, accel_choices),
    CHOICE("log-level", log_level, level_choices),
    CHOICE("log-format", log_format, format_choices),
    UINT("default-vcpus", default_vcpus, 1, 64),
    UINT("max-vcpus", max_vcpus, 1, 64),
    UINT("default-mem-mib", default_mem_mib, 64, 1024 * 1024),
    UINT("max-mem-mib", max_mem_mib, 64, 1024 * 1024),
    UINT("default-disk-gib", default_disk_gib, 0, 64 * 1024),
    UINT("max-disk-gib", max_disk_gib, 1, 64 * 1024),
    UINT("max-sandboxes", max_sandboxes, 1, 100000),
    UINT("max-total-mem-mib", max_total_mem_mib, 0, 64 * 1024 * 1024),
    UINT("max-lifetime-seconds", max_lifetime_seconds, 0, 10u * 365 * 86400),
    UINT("boot-timeout", boot_timeout_s, 5, 3600),
    STR("images-dir", images_dir),
    UINT("pool-size", pool_size, 0, 1000),
    STR("snapshot-pools", snapshot_pools),
    UINT("max-pool-size", max_pool_size, 1, 1000),
};

void sbxd_config_defaults(struct sbxd_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
	c->listen_port = 8080;
	snprintf(c->state_dir, sizeof(c->state_dir), "%s", SBXD_DEFAULT_STATE_DIR);
	snprintf(c->accel, sizeof(c->accel), "auto");
	snprintf(c->log_level, sizeof(c->log_level), "info");
	snprintf(c->log_format, sizeof(c->log_format), "text");
	c->default_vcpus = 1;
	c->max_vcpus = 4;
	c->default_mem_mib = 512;
	c->max_mem_mib = 8192;
	c->default_disk_gib = 0;
	c->max_disk_gib = 64;
	c->max_sandboxes = 64;
	c->max_total_mem_mib = 0;
	c->boot_timeout_s = 120;
	c->pool_size = 0;
	c->max_pool_size = 8;
}

/* Setting names match with '-' and '_' taken as equal, case-insensitively. */
static bool name_eq(const char *table, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < len && table[i]; i++) {
		char a = table[i], b = (char)tolower((unsigned char)name[i]);

		if (b == '_')
			b = '-';
		if (a != b)
			return false;
	}
	return i == len && table[i] == '\0';
}

static const struct opt *find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
		if (name_eq(opts[i].name, name, len))
			return &opts[i];
	return NULL;
}

bool sbxd_config_has(const char *name)
{
	return find_opt(name, strlen(name)) != NULL;
}

int sbxd_parse_listen(const char *s, char *host, size_t hostlen, int *ret_port)
{
	const char *colon, *h = s;
	size_t hl;
	char *end;
	long port;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl))
			return -EINVAL; /* a bare IPv6 address needs brackets */
	}
	if (hl >= hostlen)
		return -EINVAL;
	for (size_t i = 0; i < hl; i++)
		if (!isalnum((unsigned char)h[i]) && !strchr(".-:", h[i]))
			return -EINVAL;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*ret_port = (int)port;
	return 0;
}

static int set_opt(struct sbxd_config *c, const struct opt *o, const char *value,
		   const char *source)
{
	char *field = (char *)c + o->off;

	switch (o->type) {
	case OPT_LISTEN:
		if (sbxd_parse_listen(value, c->listen_host, sizeof(c->listen_host),
				      &c->listen_port) < 0) {
			return err_set(
			    -EINVAL,
			    "%s: '%s' is not an address to listen on: use HOST:PORT, e.g. "
			    "127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080",
			    source, value);
		}
		return 0;
	case OPT_STR:
		if (strlen(value) >= o->size) {
			return err_set(-EINVAL,
				       "%s: the value of %s is too long (at most %zu characters)",
				       source, o->name, o->size - 1);
		}
		snprintf(field, o->size, "%s", value);
		return 0;
	case OPT_CHOICE:
		for (const char *const *ch = o->choices; *ch; ch++) {
			if (!strcmp(*ch, value)) {
				snprintf(field, o->size, "%s", value);
				return 0;
			}
		}
		return err_set(-EINVAL, "%s: '%s' is not a valid %s (one of:%s%s%s%s%s)", source,
			       value, o->name, o->choices[0] ? " " : "",
			       o->choices[0] ? o->choices[0] : "", o->choices[1] ? ", " : "",
			       o->choices[1] ? o->choices[1] : "", o->choices[2] ? ", ..." : "");
	case OPT_UINT: {
		unsigned long v;
		char *end;

		errno = 0;
		v = strtoul(value, &end, 10);
		if (errno || end == value || *end || value[0] == '-' || v < o->min || v > o->max) {
			return err_set(-EINVAL,
				       "%s: %s must be a whole number from %u to %u, not '%s'",
				       source, o->name, o->min, o->max, value);
		}
		*(unsigned *)(void *)field = (unsigned)v;
		return 0;
	}
	}
	return -EINVAL;
}

int sbxd_config_set(struct sbxd_config *c, const char *name, const char *value, const char *source)
{
	const struct opt *o = find_opt(name, strlen(name));

	if (!o) {
		return err_set(-ENOENT, "%s: unknown setting '%s' (see docs/sbxd.md)", source,
			       name);
	}
	return set_opt(c, o, value, source);
}

static int set_one(void *ud, const char *name, const char *value, const char *source)
{
	return sbxd_config_set(ud, name, value, source);
}

int sbxd_config_parse_text(struct sbxd_config *c, const char *text, size_t len, const char *path)
{
	if (len > SBXD_CONFIG_FILE_MAX)
		return err_set(-EFBIG, "%s: the file is larger than %d bytes", path,
			       SBXD_CONFIG_FILE_MAX);
	return kvconf_parse(text, len, path, set_one, c);
}

int sbxd_config_load_file(struct sbxd_config *c, const char *path)
{
	_cleanup_close_ int fd = -EBADF;
	char *buf;
	ssize_t n;
	size_t len = 0;
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		return err_set(r, "cannot read config file %s: %s", path, strerror(errno));
	}
	buf = malloc(SBXD_CONFIG_FILE_MAX + 1);
	if (!buf)
		return -ENOMEM;
	while ((n = read(fd, buf + len, SBXD_CONFIG_FILE_MAX + 1 - len)) > 0) {
		len += (size_t)n;
		if (len > SBXD_CONFIG_FILE_MAX)
			break;
	}
	if (n < 0) {
		r = -errno;
		err_set(0, "cannot read config file %s: %s", path, strerror(errno));
		free(buf);
		return r;
	}
	r = sbxd_config_parse_text(c, buf, len, path);
	free(buf);
	return r;
}

int sbxd_config_apply_env(struct sbxd_config *c, char *const *envp)
{
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
		char var[64];
		size_t vl = 0;

		vl = (size_t)snprintf(var, sizeof(var), "SBX_");
		for (const char *p = opts[i].name; *p && vl < sizeof(var) - 2; p++)
			var[vl++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
		var[vl++] = '=';
		var[vl] = '\0';
		for (char *const *e = envp; e && *e; e++) {
			int r;

			if (strncmp(*e, var, vl))
				continue;
			var[vl - 1] = '\0';
			r = set_opt(c, &opts[i], *e + vl, var);
			if (r < 0)
				return r;
			break;
		}
	}
	return 0;
}

int sbxd_config_check(const struct sbxd_config *c)
{
	if (c->default_vcpus > c->max_vcpus) {
		return err_set(-EINVAL, "default-vcpus (%u) is larger than max-vcpus (%u)",
			       c->default_vcpus, c->max_vcpus);
	}
	if (c->default_mem_mib > c->max_mem_mib) {
		return err_set(-EINVAL, "default-mem-mib (%u) is larger than max-mem-mib (%u)",
			       c->default_mem_mib, c->max_mem_mib);
	}
	if (c->default_disk_gib > c->max_disk_gib) {
		return err_set(-EINVAL, "default-disk-gib (%u) is larger than max-disk-gib (%u)",
			       c->default_disk_gib, c->max_disk_gib);
	}
	if (c->max_total_mem_mib && c->max_total_mem_mib < c->default_mem_mib) {
		return err_set(
		    -EINVAL,
		    "max-total-mem-mib (%u) is smaller than one sandbox's default-mem-mib (%u)",
		    c->max_total_mem_mib, c->default_mem_mib);
	}
	if (c->pool_size > c->max_sandboxes) {
		return err_set(-EINVAL, "pool-size (%u) is larger than max-sandboxes (%u)",
			       c->pool_size, c->max_sandboxes);
	}
	for (const char *p = c->snapshot_pools; *p;) {
		const char *e = p + strcspn(p, ", "), *colon = NULL;
		unsigned long n = 0;
		char *end;

		for (const char *q = p; q < e; q++)
			if (*q == ':')
				colon = q;
		if (e > p && (!colon || colon == p ||
			      (n = strtoul(colon + 1, &end, 10), end != e || colon + 1 == e) ||
			      n > c->max_pool_size)) {
			return err_set(
			    -EINVAL,
			    "snapshot-pools: '%.*s' must be SNAPSHOT:SIZE (a snapshot id or "
			    "name, and a size from 0 to max-pool-size, %u)",
			    (int)(e - p), p, c->max_pool_size);
		}
		p = e + strspn(e, ", ");
	}
	if (c->images_dir[0] && c->images_dir[0] != '/') {
		return err_set(-EINVAL, "images-dir must be an absolute path, not '%s'",
			       c->images_dir);
	}
	if (c->state_dir[0] != '/') {
		return err_set(-EINVAL, "state-dir must be an absolute path, not '%s'",
			       c->state_dir);
	}
	if (c->public_url[0] && strncmp(c->public_url, "http://", 7) &&
	    strncmp(c->public_url, "https://", 8)) {
		return err_set(-EINVAL, "public-url must start with http:// or https://, not '%s'",
			       c->public_url);
	}
	return 0;
}

void sbxd_config_dump(const struct sbxd_config *c, char *buf, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(opts) && n < len; i++) {
		const struct opt *o = &opts[i];
		const char *field = (const char *)c + o->off;
		int w;

		switch (o->type) {
		case OPT_LISTEN:
			w = snprintf(buf + n, len - n, "%s = %s%s%s:%d\n", o->name,
				     strchr(c->listen_host, ':') ? "[" : "", c->listen_host,
				     strchr(c->listen_host, ':') ? "]" : "", c->listen_port);
			break;
		case OPT_STR:
		case OPT_CHOICE:
			w = snprintf(buf + n, len - n, "%s = %s\n", o->name, field);
			break;
		case OPT_UINT:
		default:
			w = snprintf(buf + n, len - n, "%s = %u\n", o->name,
				     *(const unsigned *)(const void *)field);
			break;
		}
		if (w < 0)
			break;
		n += (size_t)w;
	}
}
