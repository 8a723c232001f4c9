/* SPDX-License-Identifier: Apache-2.0 */
/*
 * exec.h - commands: EXEC, STDIN, SIGNAL, RESIZE, ATTACH, FORGET and the
 * ACKs of command channels.
 *
 * A command lives in the agent, not in a connection: it is attached to at
 * most one connection at a time, keeps running into its rings when that
 * connection goes away, and stays attachable until it is forgotten. Its id
 * is the channel of all its frames.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "guest/agent.h"
#include "protocol/proto.h"

struct conn;

void exec_on_exec(struct conn *c, const struct proto_msg *m);
void exec_on_stdin(struct conn *c, const struct proto_msg *m);
void exec_on_signal(struct conn *c, const struct proto_msg *m);
void exec_on_resize(struct conn *c, const struct proto_msg *m);
void exec_on_attach(struct conn *c, const struct proto_msg *m);
void exec_on_forget(struct conn *c, const struct proto_msg *m);
/* True when m->channel is a command (the ACK was consumed). */
bool exec_on_ack(struct conn *c, const struct proto_msg *m);

void exec_on_cqe(struct op *op, int res);
/* A child was reaped (any child: unknown pids are ignored). */
void exec_on_child_exit(pid_t pid, int status);
void exec_tick(uint64_t now);

/* The connection closed: its commands run on, detached. */
void exec_detach_conn(struct conn *c);
/* The connection's send queue drained: send more output. */
void exec_pump_conn(struct conn *c);
/* Free commands whose ops completed after they were dropped. */
void exec_collect(void);
/* Leaving: SIGKILL every running command's group and drop all commands. */
void exec_free_all(void);

/* Commands whose process has not exited yet. */
unsigned exec_count_running(void);
