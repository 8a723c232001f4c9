/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_text.c - pure helpers: sandbox names, NAME:PATH arguments, shell
 * quoting, UTF-8 boundaries, times and sizes for a person.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "tools/sbx_text.h"

bool sbx_name_valid(const char *s, size_t len)
{
	if (len < 1 || len > 63 || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

int sbx_parse_remote(const char *arg, char **ret_name, const char **ret_path)
{
	const char *colon = strchr(arg, ':');
	char *name;

	if (!colon || !sbx_name_valid(arg, (size_t)(colon - arg)))
		return 0;
	if (colon[1] != '/')
		return -EINVAL;
	name = strndup(arg, (size_t)(colon - arg));
	if (!name)
		return -ENOMEM;
	*ret_name = name;
	*ret_path = colon + 1;
	return 1;
}

static bool shell_safe(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_@%+=:,./-", *s))
			return false;
	return true;
}

char *sbx_shell_join(char *const *argv, int argc)
{
	size_t cap = 1;
	char *out, *o;

	if (argc == 1)
		return strdup(argv[0]);
	for (int i = 0; i < argc; i++)
		cap += strlen(argv[i]) * 4 + 3;
	out = malloc(cap);
	if (!out)
		return NULL;
	o = out;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (i)
			*o++ = ' ';
		if (shell_safe(a)) {
			o = stpcpy(o, a);
			continue;
		}
		*o++ = '\'';
		for (; *a; a++) {
			if (*a == '\'')
				o = stpcpy(o, "'\\''");
			else
				*o++ = *a;
		}
		*o++ = '\'';
	}
	*o = '\0';
	return out;
}

/* Length of the UTF-8 character starting with lead byte c (0: not a lead
 * byte), and the smallest code point of that length (to refuse overlong
 * forms). */
static size_t utf8_len(unsigned char c, uint32_t *min)
{
	if (c < 0x80) {
		*min = 0;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		*min = 0x80;
		return 2;
	}
	if (c >= 0xe0 && c <= 0xef) {
		*min = 0x800;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		*min = 0x10000;
		return 4;
	}
	return 0;
}

size_t sbx_utf8_prefix(const unsigned char *buf, size_t len, bool *ret_bad)
{
	size_t i = 0;

	*ret_bad = false;
	while (i < len) {
		uint32_t min, cp;
		size_t n = utf8_len(buf[i], &min), k;

		if (n == 0) {
			*ret_bad = true;
			return i;
		}
		if (n == 1) {
			i++;
			continue;
		}
		cp = buf[i] & (0xff >> (n + 1));
		for (k = 1; k < n && i + k < len; k++) {
			if ((buf[i + k] & 0xc0) != 0x80) {
				*ret_bad = true;
				return i;
			}
			cp = (cp << 6) | (buf[i + k] & 0x3f);
		}
		if (k < n) {
			/* incomplete at the end: can its first bytes still be valid? */
			unsigned shift = 6 * (unsigned)(n - k);

			if (k >= 2 && (cp < (min >> shift) || cp > (0x10ffffu >> shift) ||
				       (cp >= (0xd800u >> shift) && cp <= (0xdfffu >> shift))))
				*ret_bad = true;
			return i;
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
			*ret_bad = true;
			return i;
		}
		i += n;
	}
	return i;
}

int sbx_parse_time(const char *s, time_t *ret)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);

	if (!p)
		return -EINVAL;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++)
			;
	if (strcmp(p, "Z") && strcmp(p, "+00:00"))
		return -EINVAL;
	*ret = timegm(&tm);
	return 0;
}

void sbx_format_age(time_t then, time_t now, char *buf, size_t len)
{
	long long d = (long long)(now - then);

	if (d < 5)
		snprintf(buf, len, "just now");
	else if (d < 120)
		snprintf(buf, len, "%llds ago", d);
	else if (d < 2 * 3600)
		snprintf(buf, len, "%lldm ago", d / 60);
	else if (d < 2 * 86400)
		snprintf(buf, len, "%lldh ago", d / 3600);
	else
		snprintf(buf, len, "%lldd ago", d / 86400);
}

void sbx_format_bytes(int64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	int u = 0;

	if (bytes < 1024) {
		snprintf(buf, len, "%" PRId64 " B", bytes);
		return;
	}
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (v == (double)(int64_t)v)
		snprintf(buf, len, "%" PRId64 " %s", (int64_t)v, units[u]);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

int sbx_parse_mib(const char *s, int64_t *ret_mib)
{
	char *end;
	long long v;
	int64_t mult = 1;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || v <= 0)
		return -EINVAL;
	if (!*end || !strcasecmp(end, "M") || !strcasecmp(end, "MiB"))
		mult = 1;
	else if (!strcasecmp(end, "G") || !strcasecmp(end, "GiB"))
		mult = 1024;
	else
		return -EINVAL;
	if (v > (1LL << 30) / mult)
		return -EINVAL;
	*ret_mib = (int64_t)v * mult;
	return 0;
}

int sbx_uuid(char out[37])
{
	unsigned char b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}
