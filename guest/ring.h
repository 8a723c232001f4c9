/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ring.h - the output ring of one stream of a command.
 *
 * Offsets are absolute byte positions in the stream. The ring retains the
 * newest cap bytes, [start, head). Bytes at or after `floor` (the highest
 * offset the host acknowledged) are never overwritten, so when the host stops
 * acknowledging, the ring fills up, the agent stops reading the pipe and the
 * command blocks: memory never grows with the volume of output.
 * The buffer is allocated on the first write.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct ring {
	uint8_t *buf;
	size_t cap;
	uint64_t head;	/* one past the newest byte */
	uint64_t floor; /* bytes before this may be overwritten */
};

void ring_init(struct ring *r, size_t cap);
void ring_release(struct ring *r);

/* Oldest offset still held. */
uint64_t ring_start(const struct ring *r);

/* Bytes that may be written now without overwriting unacknowledged data. */
size_t ring_room(const struct ring *r);

/* Contiguous space for the next write (at most ring_room()), allocating the
 * buffer on first use. NULL with *ret_len = 0 when full, NULL with
 * *ret_len = 1 on OOM. */
uint8_t *ring_space(struct ring *r, size_t *ret_len);

/* n bytes were written into the space returned by ring_space(). */
void ring_commit(struct ring *r, size_t n);

/* Contiguous retained bytes starting at off (start <= off <= head); returns
 * NULL and *ret_len = 0 when off is head or outside the retained range. */
const uint8_t *ring_peek(const struct ring *r, uint64_t off, size_t *ret_len);

/* Everything before off may be overwritten (off is clamped to head and never
 * moves backwards). */
void ring_release_to(struct ring *r, uint64_t off);
