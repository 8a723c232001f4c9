/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listen.h - where connections come from: listening sockets (unix, vsock),
 * stdio, and the virtio-serial port "sbx.agent".
 *
 * The port is one long-lived descriptor: while the host side is not
 * connected the kernel reports EOF and POLLHUP at once, so the agent never
 * polls it then. It waits for SIGIO (O_ASYNC, sent when the host connects)
 * and re-checks every AGENT_PORT_RETRY_MS in case the signal is missed.
 */
#pragma once

#include <stdint.h>

#include "guest/agent.h"

/* Listen on a unix socket (PATH is unlinked first). 0 or -errno. */
int listen_unix(const char *path);
/* Serve one connection on fds 0 and 1; the agent exits when it ends. */
int listen_stdio(void);
/* Listen on vsock port SBX_AGENT_VSOCK_PORT if the kernel has vsock; any
 * failure is silent (logged at debug level). */
void listen_vsock(void);
/* Find, open and serve the virtio-serial port (PID-1 mode). */
void listen_port_start(void);

/* SIGIO: the host may have connected to the port. */
void listen_port_kick(void);
void listen_tick(uint64_t now);
void listen_on_accept(struct op *op, int res);
/* Stop listening (leaving). */
void listen_close_all(void);
