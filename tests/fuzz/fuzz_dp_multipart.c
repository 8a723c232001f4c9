/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_dp_multipart.c - upload bodies (untrusted) through the streaming
 * multipart parser, fed in pieces whose size the input's first byte picks;
 * the parts taken must come out whole and in order, whatever the split.
 * The rest of the first line is also tried as a Content-Type header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sbxd/dataplane/parse/dp_multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sum {
	uint64_t bytes, hash;
	unsigned parts;
};

static bool begin(void *ud, const struct dp_multipart_part *p)
{
	struct sum *s = ud;

	s->parts++;
	return p->name[0] != 'x';
}

static int part_data(void *ud, const uint8_t *d, size_t n)
{
	struct sum *s = ud;

	for (size_t i = 0; i < n; i++)
		s->hash = s->hash * 31 + d[i];
	s->bytes += n;
	return 0;
}

static int end(void *ud)
{
	(void)ud;
	return 0;
}

static const struct dp_multipart_ops ops = {begin, part_data, end};

static int run(const uint8_t *d, size_t n, size_t step, struct sum *s)
{
	struct dp_multipart *m = malloc(sizeof(*m));
	int r;

	if (!m)
		return -1;
	memset(s, 0, sizeof(*s));
	r = dp_multipart_init(m, "Bnd'()+_,-./:=? x", &ops, s);
	for (size_t off = 0; r == 0 && off < n; off += step)
		r = dp_multipart_feed(m, d + off, off + step > n ? n - off : step);
	if (r == 0)
		r = dp_multipart_finish(m);
	free(m);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char ct[256], b[DP_MULTIPART_BOUNDARY_MAX + 1];
	struct sum whole, split;
	size_t step, nl;
	int r1, r2;

	if (size < 1)
		return 0;
	step = 1 + data[0] % 97;
	nl = 1;
	while (nl < size && nl < sizeof(ct) && data[nl] != '\n')
		nl++;
	memcpy(ct, data + 1, nl - 1);
	ct[nl - 1] = '\0';
	(void)dp_multipart_boundary(ct, b, sizeof(b));
	r1 = run(data + 1, size - 1, size, &whole);
	r2 = run(data + 1, size - 1, step, &split);
	/* the split must not change what a valid body means */
	if (r1 == 0 && (r2 != 0 || whole.bytes != split.bytes || whole.hash != split.hash ||
			whole.parts != split.parts))
		abort();
	return 0;
}
