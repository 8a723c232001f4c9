/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_outbuf.h - one output stream (stdout or stderr) of a command as sbxd
 * holds it between the agent and the WebSocket clients.
 *
 * The buffer keeps the stream bytes [base, end) in a ring of fixed capacity
 * (the agent's receive window: the agent never has more than that in flight
 * past our acknowledgement, so the ring cannot overflow while the caller
 * acknowledges only what it dropped). Each client reads from its own offset;
 * the caller drops bytes every client has sent.
 *
 * Marks remember where the agent's chunks of this stream began and in which
 * order they arrived relative to the other stream's (a sequence number), so
 * that a client can replay stdout and stderr interleaved as they came. At
 * most DP_OUTBUF_MARKS are kept; past that, chunks merge into the newest mark.
 *
 * Pure: no I/O, no logging. Not thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_OUTBUF_MARKS 128

struct dp_outbuf_mark {
	uint64_t end; /* the chunk (run of chunks) ends before this offset */
	uint64_t seq; /* arrival order */
};

struct dp_outbuf {
	uint8_t *buf; /* allocated on the first append */
	size_t cap;
	uint64_t base, end;
	struct dp_outbuf_mark marks[DP_OUTBUF_MARKS];
	unsigned mhead, mcount;
};

/* An empty stream positioned at offset off, with room for cap bytes. */
void dp_outbuf_init(struct dp_outbuf *b, size_t cap, uint64_t off);
/* Frees the ring (the stream stays positioned; it reallocates if needed). */
void dp_outbuf_release(struct dp_outbuf *b);
/* Drop everything and restart at offset off. */
void dp_outbuf_reset(struct dp_outbuf *b, uint64_t off);

/*
 * Append the agent's bytes data[0..len) that start at stream offset off.
 * Bytes below end (a replay) are skipped. seq orders this chunk against the
 * other stream's; merge joins it to the newest mark (the previous chunk came
 * from this stream too). Returns the bytes added, -EPROTO if off leaves a
 * gap after end, -ENOBUFS if they do not fit, -ENOMEM.
 */
long dp_outbuf_append(struct dp_outbuf *b, uint64_t off, const uint8_t *data, size_t len,
		      uint64_t seq, bool merge);

/* Copy up to max bytes starting at offset from into dst, stopping at the end
 * of the chunk (mark) that holds offset from. Returns the bytes copied (0 if
 * from >= end or from < base); *ret_seq gets that chunk's sequence number. */
size_t dp_outbuf_peek(const struct dp_outbuf *b, uint64_t from, uint8_t *dst, size_t max,
		      uint64_t *ret_seq);
/* The same, but copying at least min bytes (as far as the buffer holds them)
 * even when the chunk ends sooner, so that a character split across chunks
 * can be completed. *ret_seq is still the sequence of the chunk at from. */
size_t dp_outbuf_peek_min(const struct dp_outbuf *b, uint64_t from, uint8_t *dst, size_t max,
			  size_t min, uint64_t *ret_seq);

/* Forget bytes below upto (clamped to [base, end]). */
void dp_outbuf_drop(struct dp_outbuf *b, uint64_t upto);

static inline uint64_t dp_outbuf_len(const struct dp_outbuf *b)
{
	return b->end - b->base;
}
