/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_glob.h - the glob patterns of the data plane's /glob and /grep
 * (langsmith-wire.md §5.7), matched against paths relative to the search
 * root, with '/' separating segments:
 *
 *   *       any run of characters within one segment (also none)
 *   ?       one character (not '/')
 *   [...]   one character of a class: ranges a-z, negation with ! or ^,
 *           ']' first is literal
 *   \c      c literally
 *   **      as a whole segment: any number of segments (also none)
 *
 * For /grep a pattern without '/' and without "**" matches the base name of
 * a file at any depth (DP_GLOB_BASENAME). Leading dots are not special.
 *
 * Matching is linear-ish in the path (no exponential backtracking), so a
 * hostile pattern costs at most O(pattern x path). Pure functions.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define DP_GLOB_MAX 1024 /* pattern bytes */
#define DP_GLOB_SEGS 128 /* segments of a pattern or a path */

enum dp_glob_flags {
	DP_GLOB_BASENAME = 1 << 0, /* grep: a pattern without '/' or "**" matches base names */
};

/* Whether the pattern is acceptable: 1..DP_GLOB_MAX bytes, at most
 * DP_GLOB_SEGS segments, no NUL, no empty segment ("a//b"), not absolute,
 * classes closed. */
bool dp_glob_valid(const char *pattern);

/* Match the relative path (no leading '/') against pattern. */
bool dp_glob_match(const char *pattern, const char *path, unsigned flags);

/* One segment: fnmatch()-like without FNM_PATHNAME subtleties, for callers
 * that match base names. */
bool dp_glob_match_segment(const char *pat, size_t plen, const char *s, size_t slen);

/* Whether anything below the directory dir (relative, "" for the root)
 * could match: false lets a walk skip the subtree. */
bool dp_glob_may_descend(const char *pattern, const char *dir, unsigned flags);

/* A pattern that needs no path (no '/', no "**"): what grep --include
 * understands, and what DP_GLOB_BASENAME applies to. */
bool dp_glob_is_basename(const char *pattern);
