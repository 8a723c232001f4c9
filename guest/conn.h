/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn.h - one protocol connection of the agent (unix socket, vsock, stdio
 * or the virtio-serial port).
 *
 * A connection owns a stream reader, a send queue written by at most one
 * outstanding POLLOUT, and the file transfers opened on it. Commands are not
 * owned: they attach to a connection and detach when it closes.
 *
 * Flow: frames are decoded as they arrive and dispatched by type through a
 * table. Producers of bulk data (command output, file reads) call
 * conn_can_produce() and stop above AGENT_SENDQ_SOFT bytes queued; they are
 * pumped again once the queue drained. Above AGENT_SENDQ_HARD the agent stops
 * reading requests from the peer, so a peer that never reads cannot grow the
 * agent's memory.
 *
 * Lifetime: conn_close() marks the connection dead, detaches its commands,
 * aborts its transfers and cancels its ops; the memory is freed later from
 * conn_flush_all() once no op is in flight, so a handler may close the
 * connection it runs on.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "guest/agent.h"
#include "protocol/proto.h"

enum conn_kind {
	CONN_UNIX,
	CONN_VSOCK,
	CONN_STDIO,
	CONN_PORT,
};

struct conn {
	struct list link; /* agent.conns */
	unsigned id;	  /* for logs */
	enum conn_kind kind;
	int rfd, wfd;
	bool own_fds; /* closed when the connection is freed */
	struct proto_reader rd;
	struct proto_buf out;
	struct op in_op, out_op;
	bool dead;
	bool throttled;		/* a producer stopped at the soft limit */
	bool in_paused;		/* not reading: send queue over the hard limit */
	bool garbage;		/* inside a reported run of garbage bytes */
	bool hello_seen;	/* the peer's HELLO was processed */
	uint32_t peer_max_body; /* largest body the peer accepts */
	struct list xfers;	/* struct xfer.conn_link */
	/* Called once from conn_close(); the port uses it to wait for the host. */
	void (*on_close)(struct conn *c);
};

/* Start serving a connection: sends HELLO and starts reading. rfd/wfd must be
 * non-blocking. own_fds: close them when the connection ends. 0 or -errno. */
int conn_new(enum conn_kind kind, int rfd, int wfd, bool own_fds, struct conn **ret);

/* End the connection (idempotent); why is logged. */
void conn_close(struct conn *c, const char *why);

/* Close every connection after a best-effort flush of up to one second. */
void conn_close_all(void);

/* Queue a frame. 0 or -errno (the connection is closed on -ENOMEM). */
int conn_send(struct conn *c, const struct proto_msg *m);

/* Queue an ERROR frame; msg is printf-formatted. */
__attribute__((format(printf, 6, 7))) void conn_send_error(struct conn *c, uint32_t chan,
							   uint32_t id, uint32_t code, int err,
							   const char *fmt, ...);

/* Queue an OK for request id. */
void conn_send_ok(struct conn *c, uint32_t id);

/* True while bulk frames may be queued; false also records that the
 * connection's producers must be pumped after the queue drained. */
bool conn_can_produce(struct conn *c);

/* Most data bytes (OUTPUT, DATA) one frame to the peer may carry. */
size_t conn_max_data(const struct conn *c);

/* Called by the loop before it sleeps: pump producers, write queues, free
 * dead connections and other deferred objects. */
void conn_flush_all(void);

void conn_on_cqe(struct op *op, int res);
