/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_dp_text.c - the small text parsers of the data plane (Range,
 * If-None-Match, glob patterns and paths), and the invariant of output
 * chunks: every chunk is whole UTF-8 whose length is the number of raw
 * bytes it stands for, however the output is split.
 *
 * Input: "header\0pattern\0path\0" then raw output bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sbxd/dataplane/parse/dp_glob.h"
#include "sbxd/dataplane/parse/dp_parse.h"
#include "sbxd/dataplane/parse/dp_utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *field(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *z = memchr(*p, 0, (size_t)(end - *p));
	const char *s = (const char *)*p;

	if (!z)
		return NULL;
	*p = z + 1;
	return s;
}

static void chunks(const uint8_t *d, size_t n, size_t step)
{
	char out[512];
	size_t pos = 0, olen;

	while (pos < n) {
		size_t avail = n - pos < step ? n - pos : step;
		bool final = pos + avail == n;
		size_t took = dp_utf8_json_escape(d + pos, avail, final, out, sizeof(out), &olen);

		if (!took) {
			if (final || step > 4)
				abort(); /* a whole chunk must always make progress */
			step++;
			continue;
		}
		/* no split character at either end of what was taken */
		if (took < avail && dp_utf8_char_len(d + pos + took, avail - took) != 0 &&
		    olen + 6 <= sizeof(out))
			abort();
		pos += took;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	const char *hdr, *pat, *path;
	uint64_t start, len;
	char tag[64];
	char *copy;

	hdr = field(&p, end);
	pat = field(&p, end);
	path = field(&p, end);
	if (hdr) {
		(void)dp_range_parse(hdr, 1000, &start, &len);
		(void)dp_range_parse(hdr, 0, &start, &len);
		dp_etag_format(1000, 17, tag, sizeof(tag));
		(void)dp_etag_list_matches(hdr, tag);
		(void)dp_path_valid(hdr);
	}
	if (pat && path && strlen(pat) <= DP_GLOB_MAX && dp_glob_valid(pat)) {
		(void)dp_glob_match(pat, path, 0);
		(void)dp_glob_match(pat, path, DP_GLOB_BASENAME);
		(void)dp_glob_may_descend(pat, path, 0);
	}
	if (p < end) {
		chunks(p, (size_t)(end - p), 1 + (size > 0 ? data[0] % 13 : 0));
		copy = malloc((size_t)(end - p));
		if (copy) {
			memcpy(copy, p, (size_t)(end - p));
			dp_utf8_sanitize(copy, (size_t)(end - p));
			for (size_t i = 0; i < (size_t)(end - p);) {
				int cl =
				    dp_utf8_char_len((uint8_t *)copy + i, (size_t)(end - p) - i);

				if (cl <= 0)
					abort(); /* sanitize leaves only whole characters */
				i += (size_t)cl;
			}
			free(copy);
		}
	}
	return 0;
}
