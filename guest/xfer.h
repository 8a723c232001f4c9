/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xfer.h - file transfers (FILE_WRITE, FILE_READ) on a connection.
 *
 * A transfer belongs to the connection it was opened on and ends with it
 * (a write in progress then removes its temporary file, so PATH keeps its
 * old content). DATA offsets count uncompressed bytes from 0, the start of
 * the transfer.
 */
#pragma once

#include <stdbool.h>

#include "guest/agent.h"
#include "protocol/proto.h"

struct conn;

void xfer_on_file_write(struct conn *c, const struct proto_msg *m);
void xfer_on_file_read(struct conn *c, const struct proto_msg *m);
void xfer_on_data(struct conn *c, const struct proto_msg *m);
void xfer_on_file_done(struct conn *c, const struct proto_msg *m);
/* The peer aborted a transfer with ERROR on its channel. True when
 * m->channel was a transfer of c. */
bool xfer_on_peer_error(struct conn *c, const struct proto_msg *m);
/* True when m->channel is a transfer of c. */
bool xfer_on_ack(struct conn *c, const struct proto_msg *m);

void xfer_on_cqe(struct op *op, int res);
/* Abort every transfer of a closing connection. */
void xfer_abort_conn(struct conn *c);
/* The connection's send queue drained: read and send more. */
void xfer_pump_conn(struct conn *c);
/* Free transfers whose ops completed after they ended. */
void xfer_collect(void);
