/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_utf8.c - UTF-8-safe chunks of command output as JSON string bodies.
 * See dp_utf8.h for the contract; the one rule that matters is that every
 * input byte maps to exactly one byte of the decoded string.
 */
#include "sbxd/dataplane/parse/dp_utf8.h"

int dp_utf8_char_len(const uint8_t *p, size_t n)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xbf;
	int need;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0; /* no overlongs */
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f; /* nothing above U+10FFFF */
	} else {
		return -1;
	}
	for (int i = 1; i < need; i++) {
		if ((size_t)i >= n)
			return 0;
		if (p[i] < lo || p[i] > hi)
			return -1;
		lo = 0x80;
		hi = 0xbf;
	}
	return need;
}

static size_t escape_ascii(uint8_t c, char *buf)
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '"':
		buf[0] = '\\';
		buf[1] = '"';
		return 2;
	case '\\':
		buf[0] = '\\';
		buf[1] = '\\';
		return 2;
	case '\n':
		buf[0] = '\\';
		buf[1] = 'n';
		return 2;
	case '\r':
		buf[0] = '\\';
		buf[1] = 'r';
		return 2;
	case '\t':
		buf[0] = '\\';
		buf[1] = 't';
		return 2;
	case '\b':
		buf[0] = '\\';
		buf[1] = 'b';
		return 2;
	case '\f':
		buf[0] = '\\';
		buf[1] = 'f';
		return 2;
	default:
		break;
	}
	if (c < 0x20) {
		buf[0] = '\\';
		buf[1] = 'u';
		buf[2] = '0';
		buf[3] = '0';
		buf[4] = hex[c >> 4];
		buf[5] = hex[c & 15];
		return 6;
	}
	buf[0] = (char)c;
	return 1;
}

size_t dp_utf8_json_escape(const uint8_t *in, size_t len, bool final, char *out, size_t cap,
			   size_t *ret_out_len)
{
	size_t i = 0, o = 0, n;
	char tmp[6];
	int cl;

	while (i < len) {
		if (in[i] < 0x80) {
			n = escape_ascii(in[i], tmp);
			if (o + n > cap)
				break;
			for (size_t k = 0; k < n; k++)
				out[o++] = tmp[k];
			i++;
			continue;
		}
		cl = dp_utf8_char_len(in + i, len - i);
		if (cl == 0 && !final)
			break; /* the rest of this character comes later */
		if (cl <= 0) {
			if (o + 1 > cap)
				break;
			out[o++] = '?';
			i++;
			continue;
		}
		if (o + (size_t)cl > cap)
			break;
		for (int k = 0; k < cl; k++)
			out[o++] = (char)in[i + (size_t)k];
		i += (size_t)cl;
	}
	*ret_out_len = o;
	return i;
}

size_t dp_utf8_sanitize(char *s, size_t len)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0, bad = 0;
	int cl;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		cl = dp_utf8_char_len(p + i, len - i);
		if (cl <= 0) {
			s[i++] = '?';
			bad++;
			continue;
		}
		i += (size_t)cl;
	}
	return bad;
}
