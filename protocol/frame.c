/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame.c - frame headers, the output buffer and the stream reader.
 *
 * The reader owns one buffer: bytes [off, len) are received and not yet
 * consumed. It never holds more than one frame plus what the caller reads in
 * one go: frames are decoded in place and consumed, garbage is dropped as
 * soon as it is recognised, and the body of an oversized frame is counted
 * down in r->discard instead of being buffered.
 */
#include <errno.h>
#include <string.h>

#include "base/cleanup.h"
#include "protocol/internal.h"

#define READER_MIN_CAP 4096
/* An empty reader gives back a buffer larger than this. */
#define READER_KEEP_CAP (2 * PROTO_MAX_CHUNK)

static const uint8_t magic[4] = {'S', 'B', 'X', 'F'};

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)get_le16(p) | (uint32_t)get_le16(p + 2) << 16;
}

static size_t cap_body(size_t max_body)
{
	return max_body == 0 || max_body > PROTO_MAX_BODY ? PROTO_MAX_BODY : max_body;
}

/* ---- output buffer ------------------------------------------------------ */

void proto_buf_init(struct proto_buf *b)
{
	*b = (struct proto_buf){0};
}

void proto_buf_release(struct proto_buf *b)
{
	free(b->data);
	*b = (struct proto_buf){0};
}

void proto_buf_consume(struct proto_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

int buf_reserve(struct proto_buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 256;
	uint8_t *p;

	if (n <= b->cap - b->len)
		return 0;
	if (n > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	while (cap - b->len < n)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

/* ---- headers and whole frames ------------------------------------------ */

int proto_header_parse(const uint8_t *buf, size_t len, size_t max_body, struct proto_header *ret)
{
	struct proto_header h;

	if (len < PROTO_HEADER_SIZE)
		return -EAGAIN;
	if (get_le32(buf) != PROTO_MAGIC)
		return -EBADMSG;
	h.len = get_le32(buf + 4);
	h.type = get_le16(buf + 8);
	h.flags = get_le16(buf + 10);
	h.channel = get_le32(buf + 12);
	*ret = h;
	return h.len > cap_body(max_body) ? -EMSGSIZE : 0;
}

int proto_decode_frame(const uint8_t *buf, size_t len, struct proto_msg *ret, size_t *consumed)
{
	struct proto_header h;
	int r;

	*consumed = 0;
	memset(ret, 0, sizeof(*ret));
	r = proto_header_parse(buf, len, PROTO_MAX_BODY, &h);
	if (r == -EMSGSIZE) {
		ret->type = h.type;
		ret->flags = h.flags;
		ret->channel = h.channel;
	}
	if (r < 0)
		return r;
	if (len - PROTO_HEADER_SIZE < h.len)
		return -EAGAIN;
	*consumed = PROTO_HEADER_SIZE + (size_t)h.len;
	return proto_decode_body(&h, buf + PROTO_HEADER_SIZE, ret);
}

/* ---- stream reader ------------------------------------------------------ */

void proto_reader_init(struct proto_reader *r, size_t max_body)
{
	*r = (struct proto_reader){.max_body = cap_body(max_body)};
}

void proto_reader_release(struct proto_reader *r)
{
	free(r->buf);
	*r = (struct proto_reader){.max_body = r->max_body};
}

void proto_reader_reset(struct proto_reader *r)
{
	r->len = r->off = 0;
	r->skipped = r->discard = 0;
}

uint8_t *proto_reader_space(struct proto_reader *r, size_t min, size_t *ret_room)
{
	size_t pending = r->len - r->off, limit, cap;
	uint8_t *p;

	if (min == 0)
		min = 1;
	if (r->cap - r->len < min && r->off > 0) {
		memmove(r->buf, r->buf + r->off, pending);
		r->len = pending;
		r->off = 0;
	}
	if (r->cap - r->len < min) {
		if (min > SIZE_MAX / 4 - pending)
			return NULL;
		limit = PROTO_HEADER_SIZE + r->max_body + min;
		if (limit < pending + min)
			limit = pending + min; /* the caller did not drain the reader */
		cap = r->cap ? r->cap : READER_MIN_CAP;
		while (cap < pending + min)
			cap *= 2;
		if (cap > limit)
			cap = limit;
		p = realloc(r->buf, cap);
		if (!p)
			return NULL;
		r->buf = p;
		r->cap = cap;
	}
	*ret_room = r->cap - r->len;
	return r->buf + r->len;
}

void proto_reader_commit(struct proto_reader *r, size_t n)
{
	if (n > r->cap - r->len)
		n = r->cap - r->len;
	r->len += n;
}

int proto_reader_feed(struct proto_reader *r, const void *data, size_t n)
{
	size_t room;
	uint8_t *p;

	if (n == 0)
		return 0;
	p = proto_reader_space(r, n, &room);
	if (!p)
		return -ENOMEM;
	memcpy(p, data, n);
	proto_reader_commit(r, n);
	return 0;
}

/* Bytes at the end of p[0..n) that could begin a magic. */
static size_t magic_tail(const uint8_t *p, size_t n)
{
	for (size_t k = n < 3 ? n : 3; k > 0; k--)
		if (!memcmp(p + n - k, magic, k))
			return k;
	return 0;
}

/* Drop bytes up to the next magic (or to a possible start of one at the end).
 * Returns the number of bytes dropped. */
static size_t skip_garbage(struct proto_reader *r)
{
	const uint8_t *p = r->buf + r->off, *hit = NULL;
	size_t n = r->len - r->off, drop;

	if (n >= 4)
		hit = memmem(p + 1, n - 1, magic, sizeof(magic));
	drop = hit ? (size_t)(hit - p) : n - magic_tail(p, n);
	if (drop == 0)
		drop = 1; /* p[0] is not the start of a magic */
	r->off += drop;
	return drop;
}

int proto_reader_next(struct proto_reader *r, struct proto_msg *ret)
{
	struct proto_header h;
	size_t avail;
	int e;

	memset(ret, 0, sizeof(*ret));
	r->skipped = 0;
	if (r->discard) {
		size_t d = r->len - r->off;

		if (d > r->discard)
			d = (size_t)r->discard;
		r->off += d;
		r->discard -= d;
	}
	if (r->off == r->len) {
		r->off = r->len = 0;
		if (r->cap > READER_KEEP_CAP) {
			free(r->buf);
			r->buf = NULL;
			r->cap = 0;
		}
		return 0;
	}
	avail = r->len - r->off;
	if (memcmp(r->buf + r->off, magic, avail < 4 ? avail : 4)) {
		r->skipped = skip_garbage(r);
		return -EBADMSG;
	}
	e = proto_header_parse(r->buf + r->off, avail, r->max_body, &h);
	if (e == -EAGAIN)
		return 0;
	if (e == -EMSGSIZE) {
		ret->type = h.type;
		ret->flags = h.flags;
		ret->channel = h.channel;
		r->off += PROTO_HEADER_SIZE;
		r->discard = h.len;
		avail = r->len - r->off;
		if (avail > r->discard)
			avail = (size_t)r->discard;
		r->off += avail;
		r->discard -= avail;
		return -EMSGSIZE;
	}
	if (e < 0)
		return e;
	if (avail - PROTO_HEADER_SIZE < h.len)
		return 0;
	r->off += PROTO_HEADER_SIZE + (size_t)h.len;
	e = proto_decode_body(&h, r->buf + r->off - h.len, ret);
	return e < 0 ? e : 1;
}
