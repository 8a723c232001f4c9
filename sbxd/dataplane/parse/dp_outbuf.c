/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_outbuf.c - a command's output stream between the agent and its
 * WebSocket clients: a ring of bytes [base, end) plus arrival marks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sbxd/dataplane/parse/dp_outbuf.h"

void dp_outbuf_init(struct dp_outbuf *b, size_t cap, uint64_t off)
{
	memset(b, 0, sizeof(*b));
	b->cap = cap;
	b->base = b->end = off;
}

void dp_outbuf_release(struct dp_outbuf *b)
{
	free(b->buf);
	b->buf = NULL;
	b->base = b->end;
	b->mhead = b->mcount = 0;
}

void dp_outbuf_reset(struct dp_outbuf *b, uint64_t off)
{
	b->base = b->end = off;
	b->mhead = b->mcount = 0;
}

static struct dp_outbuf_mark *mark_at(struct dp_outbuf *b, unsigned i)
{
	return &b->marks[(b->mhead + i) % DP_OUTBUF_MARKS];
}

static void add_mark(struct dp_outbuf *b, uint64_t end, uint64_t seq, bool merge)
{
	struct dp_outbuf_mark *m;

	if (b->mcount > 0 && (merge || b->mcount == DP_OUTBUF_MARKS)) {
		mark_at(b, b->mcount - 1)->end = end;
		return;
	}
	m = mark_at(b, b->mcount);
	m->end = end;
	m->seq = seq;
	b->mcount++;
}

long dp_outbuf_append(struct dp_outbuf *b, uint64_t off, const uint8_t *data, size_t len,
		      uint64_t seq, bool merge)
{
	size_t pos, first;

	if (off > b->end)
		return -EPROTO;
	if (off + len <= b->end)
		return 0;
	data += b->end - off;
	len -= (size_t)(b->end - off);
	if (dp_outbuf_len(b) + len > b->cap)
		return -ENOBUFS;
	if (!b->buf) {
		b->buf = malloc(b->cap ? b->cap : 1);
		if (!b->buf)
			return -ENOMEM;
	}
	pos = (size_t)(b->end % b->cap);
	first = b->cap - pos < len ? b->cap - pos : len;
	memcpy(b->buf + pos, data, first);
	memcpy(b->buf, data + first, len - first);
	b->end += len;
	add_mark(b, b->end, seq, merge);
	return (long)len;
}

size_t dp_outbuf_peek(const struct dp_outbuf *b, uint64_t from, uint8_t *dst, size_t max,
		      uint64_t *ret_seq)
{
	return dp_outbuf_peek_min(b, from, dst, max, 0, ret_seq);
}

size_t dp_outbuf_peek_min(const struct dp_outbuf *b, uint64_t from, uint8_t *dst, size_t max,
			  size_t min, uint64_t *ret_seq)
{
	uint64_t stop = b->end;
	size_t n, pos, first;

	*ret_seq = UINT64_MAX;
	if (from < b->base || from >= b->end || !b->buf)
		return 0;
	for (unsigned i = 0; i < b->mcount; i++) {
		const struct dp_outbuf_mark *m = &b->marks[(b->mhead + i) % DP_OUTBUF_MARKS];

		if (m->end > from) {
			stop = m->end;
			*ret_seq = m->seq;
			break;
		}
	}
	/* A chunk may end inside a multi-byte character whose rest is in the
	 * next chunk: reach past the mark far enough to complete it. */
	if (stop - from < min)
		stop = b->end - from < min ? b->end : from + min;
	n = stop - from < max ? (size_t)(stop - from) : max;
	pos = (size_t)(from % b->cap);
	first = b->cap - pos < n ? b->cap - pos : n;
	memcpy(dst, b->buf + pos, first);
	memcpy(dst + first, b->buf, n - first);
	return n;
}

void dp_outbuf_drop(struct dp_outbuf *b, uint64_t upto)
{
	if (upto > b->end)
		upto = b->end;
	if (upto <= b->base)
		return;
	b->base = upto;
	while (b->mcount > 0 && b->marks[b->mhead].end <= upto) {
		b->mhead = (b->mhead + 1) % DP_OUTBUF_MARKS;
		b->mcount--;
	}
}
