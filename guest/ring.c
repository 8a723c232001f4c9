/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ring.c - bounded output ring of a command stream (see ring.h).
 */
#include <stdlib.h>

#include "guest/ring.h"

void ring_init(struct ring *r, size_t cap)
{
	r->buf = NULL;
	r->cap = cap;
	r->head = 0;
	r->floor = 0;
}

void ring_release(struct ring *r)
{
	free(r->buf);
	r->buf = NULL;
}

uint64_t ring_start(const struct ring *r)
{
	return r->head > r->cap ? r->head - r->cap : 0;
}

size_t ring_room(const struct ring *r)
{
	return r->cap - (size_t)(r->head - r->floor);
}

uint8_t *ring_space(struct ring *r, size_t *ret_len)
{
	size_t pos, room;

	room = ring_room(r);
	*ret_len = 0;
	if (!room)
		return NULL;
	if (!r->buf) {
		r->buf = malloc(r->cap);
		if (!r->buf) {
			*ret_len = 1;
			return NULL;
		}
	}
	pos = (size_t)(r->head % r->cap);
	*ret_len = room < r->cap - pos ? room : r->cap - pos;
	return r->buf + pos;
}

void ring_commit(struct ring *r, size_t n)
{
	r->head += n;
}

const uint8_t *ring_peek(const struct ring *r, uint64_t off, size_t *ret_len)
{
	size_t pos, len;

	*ret_len = 0;
	if (!r->buf || off >= r->head || off < ring_start(r))
		return NULL;
	pos = (size_t)(off % r->cap);
	len = r->cap - pos;
	if (len > r->head - off)
		len = (size_t)(r->head - off);
	*ret_len = len;
	return r->buf + pos;
}

void ring_release_to(struct ring *r, uint64_t off)
{
	if (off > r->head)
		off = r->head;
	if (off > r->floor)
		r->floor = off;
}
