/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_testclient.h - a small blocking protocol client for check_agent.c: it
 * starts sbx-agent as an ordinary process, connects, sends frames and reads
 * them back, and routes command output (OUTPUT/EXIT/ACK) to registered
 * commands so a test only sees the responses it waits for.
 *
 * Every function fails the running Check test on unexpected conditions.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol/proto.h"

struct agent_proc {
	pid_t pid;
	char sock[108];
	char log[128];
};

/* Start the agent on a fresh unix socket; new_uts: in its own UTS namespace
 * (so FIXUP may change the hostname). Waits until it accepts connections. */
void agent_start(struct agent_proc *a, bool new_uts);
/* SIGTERM, wait; returns the exit status (0 is a clean exit, LSan included). */
int agent_stop(struct agent_proc *a);
/* Resident memory of the agent in KiB. */
long agent_rss_kb(const struct agent_proc *a);

#define TC_MAX_CMDS 64

struct tc_cmd {
	uint32_t id;
	int32_t pid;
	uint8_t *out, *err; /* collected output (unless discard) */
	size_t out_cap, err_cap;
	uint64_t out_next, err_next; /* next offset expected */
	uint64_t in_acked;	     /* ACK{in} from the agent */
	bool auto_ack;		     /* ACK every OUTPUT at once */
	bool discard;		     /* count output only */
	bool exited;
	struct proto_exit exit;
	unsigned outputs; /* OUTPUT frames seen */
};

struct tc_error {
	uint32_t id, code;
	int32_t err_no;
	char msg[1024];
};

struct tc {
	int fd;
	struct proto_reader rd;
	struct proto_msg cur;
	bool have_cur;
	struct tc_cmd *cmds[TC_MAX_CMDS];
	unsigned ncmds;
	uint32_t next_id;
	struct proto_hello hello; /* copy of scalar fields of the agent's HELLO */
	char caps[512];		  /* the agent's caps, space separated */
};

/* Connect and read the agent's HELLO (then send ours). */
void tc_connect(struct tc *t, const char *sock);
void tc_connect_fd(struct tc *t, int fd);
void tc_close(struct tc *t);

uint32_t tc_id(struct tc *t);
void tc_send(struct tc *t, const struct proto_msg *m);
void tc_send_raw(struct tc *t, const void *p, size_t n);
/* Next frame, routing command frames to registered commands. Returns its
 * type, 0 on timeout, -1 when the agent closed the connection. *m is valid
 * until the next call. */
int tc_wait_frame(struct tc *t, struct proto_msg *m, int timeout_ms);
/* Receive one frame (routed or not); *routed tells whether a registered
 * command consumed it. Returns its type, 0 on timeout, -1 on EOF. */
int tc_step(struct tc *t, struct proto_msg *m, int timeout_ms, bool *routed);
/* Wait for a frame of type (ERROR frames fail the test unless type is
 * PROTO_ERROR). */
void tc_expect(struct tc *t, uint16_t type, struct proto_msg *m, int timeout_ms);
/* Wait for an ERROR and copy it. */
void tc_expect_error(struct tc *t, struct tc_error *e, int timeout_ms);
/* Route frames until cmd exited (or fail after timeout_ms). */
void tc_wait_exit(struct tc *t, struct tc_cmd *cmd, int timeout_ms);
/* Route frames for ms milliseconds (no other frame may arrive). */
void tc_idle(struct tc *t, int ms);

void tc_register(struct tc *t, struct tc_cmd *cmd);
void tc_cmd_release(struct tc_cmd *cmd);
void tc_ack(struct tc *t, struct tc_cmd *cmd);

/* A proto_exec with the defaults (uid/gid -1). */
void tc_exec_init(struct proto_exec *e);
/* EXEC: 0 and cmd registered, or the ERROR copied into err (if not NULL)
 * and -1. */
int tc_exec(struct tc *t, struct proto_exec *e, struct tc_cmd *cmd, struct tc_error *err);
/* EXEC a shell command without stdin, collect everything, wait for EXIT. */
void tc_run_shell(struct tc *t, const char *shell, struct tc_cmd *cmd, int timeout_ms);
/* Send stdin data within the agent's window, then EOF if eof. */
void tc_stdin(struct tc *t, struct tc_cmd *cmd, uint64_t *offset, const void *p, size_t n,
	      bool eof);

/* Simple request -> OK / ERROR. Returns 0 on OK or fills e and returns -1. */
int tc_request(struct tc *t, struct proto_msg *m, struct tc_error *e);
