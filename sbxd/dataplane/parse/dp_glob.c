/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_glob.c - glob matching for /glob and /grep (see dp_glob.h).
 *
 * A segment is matched with the classic single-star backtracking loop
 * (O(pattern x segment)); segments are matched with a table over (pattern
 * segment, path segment) so that "**" costs no backtracking either.
 */
#include <string.h>

#include "sbxd/dataplane/parse/dp_glob.h"

struct segs {
	const char *p[DP_GLOB_SEGS];
	size_t n[DP_GLOB_SEGS];
	unsigned count;
};

/* Split on '/'; false if there are too many segments. */
static bool split(const char *s, struct segs *out)
{
	const char *e;

	out->count = 0;
	if (!*s)
		return true;
	for (;;) {
		if (out->count == DP_GLOB_SEGS)
			return false;
		e = strchr(s, '/');
		out->p[out->count] = s;
		out->n[out->count] = e ? (size_t)(e - s) : strlen(s);
		out->count++;
		if (!e)
			return true;
		s = e + 1;
	}
}

static bool is_dstar(const char *p, size_t n)
{
	return n == 2 && p[0] == '*' && p[1] == '*';
}

/* Length of the class starting at pat[0] == '[' (through its ']'), 0 if it
 * is not closed. */
static size_t class_len(const char *pat, size_t plen)
{
	size_t i = 1;

	if (i < plen && (pat[i] == '!' || pat[i] == '^'))
		i++;
	if (i < plen && pat[i] == ']')
		i++;
	for (; i < plen; i++) {
		if (pat[i] == '\\' && i + 1 < plen)
			i++;
		else if (pat[i] == ']')
			return i + 1;
	}
	return 0;
}

static bool class_match(const char *pat, size_t len, char c)
{
	size_t i = 1, end = len - 1;
	bool neg = false, hit = false;

	if (pat[i] == '!' || pat[i] == '^') {
		neg = true;
		i++;
	}
	while (i < end) {
		char lo = pat[i], hi;

		if (lo == '\\' && i + 1 < end)
			lo = pat[++i];
		i++;
		hi = lo;
		if (i + 1 < end && pat[i] == '-') {
			i++;
			if (pat[i] == '\\' && i + 1 < end)
				i++;
			hi = pat[i++];
		}
		if ((unsigned char)c >= (unsigned char)lo && (unsigned char)c <= (unsigned char)hi)
			hit = true;
	}
	return hit != neg;
}

/* Does pat[p..] start with a token matching the single character c?
 * *ret_len gets the token's length. */
static bool one(const char *pat, size_t plen, size_t p, char c, size_t *ret_len)
{
	size_t cl;

	*ret_len = 1;
	switch (pat[p]) {
	case '?':
		return true;
	case '[':
		cl = class_len(pat + p, plen - p);
		if (cl) {
			*ret_len = cl;
			return class_match(pat + p, cl, c);
		}
		return c == '[';
	case '\\':
		if (p + 1 < plen) {
			*ret_len = 2;
			return pat[p + 1] == c;
		}
		return c == '\\';
	default:
		return pat[p] == c;
	}
}

bool dp_glob_match_segment(const char *pat, size_t plen, const char *s, size_t slen)
{
	size_t p = 0, i = 0, star_p = 0, star_i = 0, tl;
	bool star = false;

	while (i < slen) {
		if (p < plen && pat[p] == '*') {
			while (p < plen && pat[p] == '*')
				p++;
			star = true;
			star_p = p;
			star_i = i;
			continue;
		}
		if (p < plen && one(pat, plen, p, s[i], &tl)) {
			p += tl;
			i++;
			continue;
		}
		if (!star)
			return false;
		p = star_p;
		i = ++star_i;
	}
	while (p < plen && pat[p] == '*')
		p++;
	return p == plen;
}

bool dp_glob_is_basename(const char *pattern)
{
	return !strchr(pattern, '/') && !strstr(pattern, "**");
}

bool dp_glob_valid(const char *pattern)
{
	size_t len = strlen(pattern);
	struct segs s;

	if (len == 0 || len > DP_GLOB_MAX || pattern[0] == '/')
		return false;
	if (!split(pattern, &s))
		return false;
	for (unsigned i = 0; i < s.count; i++) {
		if (s.n[i] == 0)
			return false;
		for (size_t k = 0; k < s.n[i]; k++) {
			if (s.p[i][k] == '\\') {
				k++;
			} else if (s.p[i][k] == '[') {
				size_t cl = class_len(s.p[i] + k, s.n[i] - k);

				if (!cl)
					return false;
				k += cl - 1;
			}
		}
	}
	return true;
}

bool dp_glob_match(const char *pattern, const char *path, unsigned flags)
{
	static _Thread_local bool tab[DP_GLOB_SEGS + 1][DP_GLOB_SEGS + 1];
	struct segs ps, xs;
	const char *base;

	if ((flags & DP_GLOB_BASENAME) && dp_glob_is_basename(pattern)) {
		base = strrchr(path, '/');
		base = base ? base + 1 : path;
		return dp_glob_match_segment(pattern, strlen(pattern), base, strlen(base));
	}
	if (!split(pattern, &ps) || !split(path, &xs))
		return false;
	/* tab[i][j]: pattern segments i.. match path segments j.. */
	for (unsigned j = 0; j <= xs.count; j++)
		tab[ps.count][j] = j == xs.count;
	for (unsigned i = ps.count; i-- > 0;) {
		bool ds = is_dstar(ps.p[i], ps.n[i]);

		for (unsigned j = xs.count + 1; j-- > 0;) {
			if (ds)
				tab[i][j] = tab[i + 1][j] || (j < xs.count && tab[i][j + 1]);
			else
				tab[i][j] =
				    j < xs.count &&
				    dp_glob_match_segment(ps.p[i], ps.n[i], xs.p[j], xs.n[j]) &&
				    tab[i + 1][j + 1];
		}
	}
	return tab[0][0];
}

bool dp_glob_may_descend(const char *pattern, const char *dir, unsigned flags)
{
	bool cur[DP_GLOB_SEGS + 1] = {false}, next[DP_GLOB_SEGS + 1];
	struct segs ps, xs;

	if ((flags & DP_GLOB_BASENAME) && dp_glob_is_basename(pattern))
		return true;
	if (!split(pattern, &ps) || !split(dir, &xs) || xs.count >= DP_GLOB_SEGS)
		return false;
	cur[0] = true;
	for (unsigned j = 0;; j++) {
		/* "**" may match no segment */
		for (unsigned i = 0; i < ps.count; i++)
			if (cur[i] && is_dstar(ps.p[i], ps.n[i]))
				cur[i + 1] = true;
		if (j == xs.count)
			break;
		memset(next, 0, sizeof(next));
		for (unsigned i = 0; i < ps.count; i++) {
			if (!cur[i])
				continue;
			if (is_dstar(ps.p[i], ps.n[i]))
				next[i] = true;
			else if (dp_glob_match_segment(ps.p[i], ps.n[i], xs.p[j], xs.n[j]))
				next[i + 1] = true;
		}
		memcpy(cur, next, sizeof(cur));
	}
	/* something of the pattern is left for the directory's entries */
	for (unsigned i = 0; i < ps.count; i++)
		if (cur[i])
			return true;
	return false;
}
