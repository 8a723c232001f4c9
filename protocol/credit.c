/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credit.c - sender-side credit accounting for one direction of one stream.
 *
 * The receiver grants a window and acknowledges absolute offsets ("I have
 * consumed everything before this"). Offsets only grow, so a lost, repeated
 * or reordered ACK can never hand out credit twice: an ACK that goes
 * backwards is stale and ignored, one beyond what was sent is a lie.
 */
#include <errno.h>

#include "protocol/proto.h"

void proto_credit_init(struct proto_credit *c, uint64_t start, uint32_t window)
{
	c->sent = start;
	c->acked = start;
	c->window = window ? window : PROTO_DEFAULT_WINDOW;
}

uint64_t proto_credit_avail(const struct proto_credit *c)
{
	uint64_t in_flight = c->sent - c->acked;

	return in_flight >= c->window ? 0 : c->window - in_flight;
}

int proto_credit_consume(struct proto_credit *c, uint64_t n)
{
	if (n > proto_credit_avail(c))
		return -EPROTO;
	c->sent += n;
	return 0;
}

int proto_credit_ack(struct proto_credit *c, uint64_t offset)
{
	if (offset == PROTO_ACK_NONE || offset <= c->acked)
		return 0;
	if (offset > c->sent)
		return -EPROTO;
	c->acked = offset;
	return 0;
}
