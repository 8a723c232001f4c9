/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_multipart.c - streaming multipart/form-data parser (see dp_multipart.h).
 *
 * The stream is treated as if it began with CRLF, so the first delimiter
 * ("--BOUNDARY" at the very start) and all later ones ("\r\n--BOUNDARY")
 * are the same pattern. Bytes that match a prefix of the delimiter are held
 * (they are delim[0..match), so nothing needs copying); on a mismatch the
 * KMP failure table says how many of them turn out to be data.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sbxd/dataplane/parse/dp_multipart.h"

static bool bchar(char c)
{
	return isalnum((unsigned char)c) || strchr("'()+_,-./:=? ", c);
}

static bool boundary_valid(const char *b, size_t n)
{
	if (n < 1 || n > DP_MULTIPART_BOUNDARY_MAX || b[n - 1] == ' ')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!b[i] || !bchar(b[i]))
			return false;
	return true;
}

int dp_multipart_boundary(const char *ct, char *buf, size_t len)
{
	static const char type[] = "multipart/form-data";
	const char *p = ct;
	size_t n;

	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, type, sizeof(type) - 1))
		return -EINVAL;
	p += sizeof(type) - 1;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		if (!strncasecmp(p, "boundary=", 9)) {
			p += 9;
			n = 0;
			if (*p == '"') {
				for (p++; *p && *p != '"'; p++) {
					if (*p == '\\' && p[1])
						p++;
					if (n + 1 >= len)
						return -EINVAL;
					buf[n++] = *p;
				}
				if (*p != '"')
					return -EINVAL;
			} else {
				for (; *p && *p != ';' && *p != ' ' && *p != '\t'; p++) {
					if (n + 1 >= len)
						return -EINVAL;
					buf[n++] = *p;
				}
			}
			buf[n] = '\0';
			return boundary_valid(buf, n) ? 0 : -EINVAL;
		}
		while (*p && *p != ';') /* another parameter */
			p++;
	}
	return -EINVAL;
}

int dp_multipart_init(struct dp_multipart *m, const char *boundary,
		      const struct dp_multipart_ops *ops, void *ud)
{
	size_t bl = boundary ? strlen(boundary) : 0;
	unsigned k = 0;

	memset(m, 0, sizeof(*m));
	if (!boundary_valid(boundary, bl))
		return -EINVAL;
	memcpy(m->delim, "\r\n--", 4);
	memcpy(m->delim + 4, boundary, bl);
	m->dlen = (unsigned)(4 + bl);
	/* KMP: fail[i] = longest proper prefix of delim[0..i] that is also
	 * its suffix */
	m->fail[0] = 0;
	for (unsigned i = 1; i < m->dlen; i++) {
		while (k > 0 && m->delim[i] != m->delim[k])
			k = m->fail[k - 1];
		if (m->delim[i] == m->delim[k])
			k++;
		m->fail[i] = k;
	}
	m->ops = ops;
	m->ud = ud;
	m->state = DP_MP_PREAMBLE;
	m->match = 2; /* as if the body began with CRLF */
	return 0;
}

static int fail(struct dp_multipart *m, int err)
{
	m->state = DP_MP_FAILED;
	m->err = err;
	return err;
}

static int stage_flush(struct dp_multipart *m)
{
	int r = 0;

	if (m->slen && m->ops->part_data)
		r = m->ops->part_data(m->ud, m->stage, m->slen);
	m->slen = 0;
	return r;
}

/* Body bytes, in order: small pieces gather in stage, large ones go out
 * directly (after what is staged). */
static int out(struct dp_multipart *m, const uint8_t *d, size_t n)
{
	int r;

	if (m->state != DP_MP_BODY || !m->taking || n == 0)
		return 0;
	if (m->slen + n > sizeof(m->stage)) {
		r = stage_flush(m);
		if (r < 0)
			return r;
	}
	if (n >= sizeof(m->stage))
		return m->ops->part_data ? m->ops->part_data(m->ud, d, n) : 0;
	memcpy(m->stage + m->slen, d, n);
	m->slen += n;
	return 0;
}

/* Scan for the delimiter; bytes before it are body (or preamble). Returns
 * 1 when found (*used counts the bytes up to its end), 0 when all of d was
 * used, or an error from a callback. */
static int scan(struct dp_multipart *m, const uint8_t *d, size_t len, size_t *used)
{
	size_t i = 0;
	int r;

	while (i < len) {
		if (m->match == 0) {
			const uint8_t *p = memchr(d + i, m->delim[0], len - i);
			size_t n = p ? (size_t)(p - (d + i)) : len - i;

			r = out(m, d + i, n);
			if (r < 0)
				return r;
			i += n;
			if (!p)
				break;
		}
		while (m->match > 0 && d[i] != (uint8_t)m->delim[m->match]) {
			unsigned k = m->fail[m->match - 1];

			r = out(m, (const uint8_t *)m->delim, m->match - k);
			if (r < 0)
				return r;
			m->match = k;
		}
		if (d[i] == (uint8_t)m->delim[m->match]) {
			m->match++;
			i++;
			if (m->match == m->dlen) {
				m->match = 0;
				*used = i;
				r = stage_flush(m);
				return r < 0 ? r : 1;
			}
		} else {
			r = out(m, d + i, 1);
			if (r < 0)
				return r;
			i++;
		}
	}
	*used = len;
	return stage_flush(m);
}

/* name="value" or name=token from a Content-Disposition value. */
static bool disp_param(const char *v, const char *name, char *buf, size_t len)
{
	size_t nl = strlen(name), n = 0;
	const char *p = v;

	while ((p = strchr(p, ';'))) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, name, nl) || p[nl] != '=')
			continue;
		p += nl + 1;
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				if (n + 1 < len)
					buf[n++] = *p;
			}
		} else {
			for (; *p && *p != ';' && *p != ' ' && *p != '\t'; p++)
				if (n + 1 < len)
					buf[n++] = *p;
		}
		buf[n] = '\0';
		return true;
	}
	return false;
}

static void parse_headers(struct dp_multipart *m, struct dp_multipart_part *part)
{
	char *line = m->hdr, *eol, *colon, *v;

	memset(part, 0, sizeof(*part));
	m->hdr[m->hlen - 2] = '\0'; /* the blank line's CRLF */
	for (; *line; line = eol + 2) {
		eol = strstr(line, "\r\n");
		if (!eol)
			break;
		*eol = '\0';
		colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		if (!strcasecmp(line, "content-disposition")) {
			(void)disp_param(v, "name", part->name, sizeof(part->name));
			part->has_filename =
			    disp_param(v, "filename", part->filename, sizeof(part->filename));
		} else if (!strcasecmp(line, "content-type")) {
			snprintf(part->content_type, sizeof(part->content_type), "%s", v);
		}
	}
}

static int headers_byte(struct dp_multipart *m, uint8_t c)
{
	struct dp_multipart_part part;

	if (m->hlen + 1 >= sizeof(m->hdr))
		return fail(m, -EBADMSG);
	if (c == '\0')
		return fail(m, -EBADMSG);
	m->hdr[m->hlen++] = (char)c;
	m->hdr[m->hlen] = '\0';
	if (!(m->hlen == 2 && !memcmp(m->hdr, "\r\n", 2)) &&
	    !(m->hlen >= 4 && !memcmp(m->hdr + m->hlen - 4, "\r\n\r\n", 4)))
		return 0;
	parse_headers(m, &part);
	m->hlen = 0;
	m->parts++;
	m->taking = m->ops->part_begin ? m->ops->part_begin(m->ud, &part) : false;
	m->state = DP_MP_BODY;
	m->match = 0;
	return 0;
}

int dp_multipart_feed(struct dp_multipart *m, const uint8_t *d, size_t len)
{
	size_t i = 0, used;
	int r;

	while (i < len) {
		uint8_t c = d[i];

		switch (m->state) {
		case DP_MP_PREAMBLE:
		case DP_MP_BODY:
			r = scan(m, d + i, len - i, &used);
			if (r < 0)
				return fail(m, r);
			i += used;
			if (r == 1) {
				if (m->state == DP_MP_BODY && m->taking && m->ops->part_end) {
					r = m->ops->part_end(m->ud);
					if (r < 0)
						return fail(m, r);
				}
				m->taking = false;
				m->state = DP_MP_AFTER_DELIM;
			}
			continue;
		case DP_MP_AFTER_DELIM:
			if (c == '-')
				m->state = DP_MP_AFTER_DASH;
			else if (c == ' ' || c == '\t')
				m->state = DP_MP_PAD;
			else if (c == '\r')
				m->state = DP_MP_PAD_CR;
			else
				return fail(m, -EBADMSG);
			break;
		case DP_MP_AFTER_DASH:
			if (c != '-')
				return fail(m, -EBADMSG);
			m->state = DP_MP_EPILOGUE;
			break;
		case DP_MP_PAD:
			if (c == '\r')
				m->state = DP_MP_PAD_CR;
			else if (c != ' ' && c != '\t')
				return fail(m, -EBADMSG);
			break;
		case DP_MP_PAD_CR:
			if (c != '\n')
				return fail(m, -EBADMSG);
			m->state = DP_MP_HEADERS;
			m->hlen = 0;
			break;
		case DP_MP_HEADERS:
			r = headers_byte(m, c);
			if (r < 0)
				return r;
			break;
		case DP_MP_EPILOGUE:
			return 0; /* ignored, whatever follows */
		case DP_MP_FAILED:
			return m->err;
		}
		i++;
	}
	return m->state == DP_MP_FAILED ? m->err : 0;
}

int dp_multipart_finish(struct dp_multipart *m)
{
	if (m->state == DP_MP_FAILED)
		return m->err;
	return m->state == DP_MP_EPILOGUE ? 0 : fail(m, -EBADMSG);
}
