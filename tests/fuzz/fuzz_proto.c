/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_proto.c - libFuzzer target for protocol/: hostile bytes in, no crash,
 * no leak, no read past the input, and whatever decodes re-encodes.
 *
 * Input: byte 0 is a control byte, the rest is the payload. The payload is
 *  1. decoded as the body of a frame of type ctl & 63 (channel ctl >> 7),
 *     which reaches the field decoders without having to forge a header;
 *  2. decoded as a byte stream with proto_decode_frame() in a loop;
 *  3. fed to a proto_reader in pieces whose sizes come from a PRNG seeded
 *     with ctl, with max_body 1 KiB when ctl & 64, PROTO_MAX_BODY otherwise.
 * With the full max_body, 2 and 3 must yield the same frames. Every decoded
 * message must encode, decode again and re-encode to the same bytes; a DATA
 * chunk with raw_len is also run through proto_zstd_decompress().
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SMALL_MAX_BODY 1024

static void require(bool ok)
{
	if (!ok)
		abort();
}

/* Append the canonical encoding of m to out (NULL: just check it). */
static void recode(const struct proto_msg *m, size_t body_len, struct proto_buf *out)
{
	struct proto_buf a, b;
	struct proto_msg d;
	size_t used;
	int r;

	proto_buf_init(&a);
	proto_buf_init(&b);
	r = proto_encode(m, &a);
	/* "id" is always written: a body at the limit without one may grow */
	if (r == -EMSGSIZE && body_len > PROTO_MAX_BODY - 16) {
		proto_buf_release(&a);
		return;
	}
	require(r == 0);
	require(proto_decode_frame(a.data, a.len, &d, &used) == 0 && used == a.len);
	require(proto_encode(&d, &b) == 0);
	require(a.len == b.len && !memcmp(a.data, b.data, a.len));
	require(proto_msg_id(&d) == proto_msg_id(m));
	proto_msg_release(&d);
	if (out)
		require(proto_encode(m, out) == 0);
	proto_buf_release(&a);
	proto_buf_release(&b);
}

static void check_data(const struct proto_msg *m)
{
	uint8_t *raw;

	if (m->type != PROTO_DATA || !m->u.data.raw_len)
		return;
	raw = malloc(m->u.data.raw_len);
	require(raw != NULL);
	(void)proto_zstd_decompress(m->u.data.data.data, m->u.data.data.len, raw,
				    m->u.data.raw_len);
	free(raw);
}

static void fuzz_body(uint8_t ctl, const uint8_t *p, size_t n)
{
	struct proto_header h = {.len = (uint32_t)n, .type = ctl & 63, .channel = ctl >> 7};
	struct proto_msg m;

	if (n > PROTO_MAX_BODY)
		return;
	if (proto_decode_body(&h, p, &m) == 0) {
		check_data(&m);
		recode(&m, n, NULL);
	}
	proto_msg_release(&m);
}

static void fuzz_frames(const uint8_t *p, size_t n, struct proto_buf *seen)
{
	size_t off = 0;

	while (off < n) {
		struct proto_header h;
		struct proto_msg m;
		size_t used;
		int r = proto_decode_frame(p + off, n - off, &m, &used);

		if (r == 0) {
			check_data(&m);
			recode(&m, used - PROTO_HEADER_SIZE, seen);
		}
		proto_msg_release(&m);
		if (r == -EAGAIN)
			break;
		if (r == -EMSGSIZE) {
			require(proto_header_parse(p + off, n - off, 0, &h) == -EMSGSIZE);
			if (n - off - PROTO_HEADER_SIZE <= h.len)
				break;
			used = PROTO_HEADER_SIZE + h.len;
		}
		off += used ? used : 1;
	}
}

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static void fuzz_reader(uint8_t ctl, const uint8_t *p, size_t n, struct proto_buf *seen)
{
	size_t max_body = ctl & 64 ? SMALL_MAX_BODY : PROTO_MAX_BODY;
	size_t maxpiece = ctl & 32 ? 4096 : 17, off = 0;
	uint32_t seed = ctl * 2654435761u + (uint32_t)n;
	struct proto_reader r;

	proto_reader_init(&r, max_body);
	while (off < n) {
		size_t piece = 1 + lcg(&seed) % maxpiece, room;
		struct proto_msg m;
		uint8_t *dst;
		int rc;

		if (piece > n - off)
			piece = n - off;
		dst = proto_reader_space(&r, piece, &room);
		require(dst != NULL && room >= piece);
		memcpy(dst, p + off, piece);
		proto_reader_commit(&r, piece);
		off += piece;
		require(r.cap <= PROTO_HEADER_SIZE + max_body + maxpiece);
		while ((rc = proto_reader_next(&r, &m)) != 0) {
			if (rc == 1) {
				require(r.skipped == 0);
				check_data(&m);
				/* r.off bounds the frame's body length from above */
				recode(&m, r.off, max_body == PROTO_MAX_BODY ? seen : NULL);
			} else {
				require(rc == -EBADMSG || rc == -EPROTO || rc == -EMSGSIZE);
				require(!r.skipped || (rc == -EBADMSG && m.type == 0));
			}
			proto_msg_release(&m);
		}
	}
	proto_reader_release(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_buf by_frame, by_reader;
	uint8_t ctl;

	if (size < 1)
		return 0;
	ctl = data[0];
	data++;
	size--;
	fuzz_body(ctl, data, size);
	proto_buf_init(&by_frame);
	proto_buf_init(&by_reader);
	fuzz_frames(data, size, &by_frame);
	fuzz_reader(ctl, data, size, &by_reader);
	if (!(ctl & 64))
		require(by_frame.len == by_reader.len &&
			(!by_frame.len || !memcmp(by_frame.data, by_reader.data, by_frame.len)));
	proto_buf_release(&by_frame);
	proto_buf_release(&by_reader);
	return 0;
}
