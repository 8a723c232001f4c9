/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmd.h - the command object shared by exec.c (lifecycle, requests) and
 * cmdio.c (output rings, stdin, OUTPUT/EXIT production). Private to those
 * two files.
 *
 * States: RUNNING (process alive) -> DRAINING (reaped, a stream still open)
 * -> FINISHED (reaped and both streams at EOF; EXIT not yet delivered)
 * -> RETAINED (EXIT delivered; ring kept keep_ms) -> freed.
 * RUNNING may go straight to FINISHED; a new ATTACH moves RETAINED back to
 * FINISHED so the EXIT is sent again after the replayed output.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "guest/agent.h"
#include "protocol/proto.h"
#include "guest/ring.h"

struct conn;

enum cmd_state {
	CMD_RUNNING,
	CMD_DRAINING,
	CMD_FINISHED,
	CMD_RETAINED,
	CMD_STATE_COUNT,
};

struct cmd_stream {
	struct ring ring;
	int fd;	      /* our read end; the PTY master is owned by cmd */
	struct op op; /* POLLIN on fd */
	bool eof;
	struct proto_credit credit; /* towards the attached connection */
};

struct cmd {
	struct list link;
	uint32_t id;
	pid_t pid; /* also the process group id */
	enum cmd_state state;
	bool dead;	   /* dropped; freed once its ops are idle */
	struct conn *conn; /* attached connection or NULL */
	uint32_t window;   /* credit window of the attached connection */
	struct cmd_stream out, err;
	int pty;       /* PTY master or -EBADF */
	int pty_slave; /* our copy, held until the process exits */

	/* stdin */
	bool in_open;	  /* started with stdin_open */
	int in_fd;	  /* pipe write end, or the PTY master */
	struct op in_op;  /* POLLOUT on in_fd */
	uint8_t *in_data; /* received, not yet written (AGENT_STDIN_WINDOW) */
	size_t in_len;
	uint64_t in_recv;  /* next STDIN offset expected */
	uint64_t in_done;  /* written to the process (or discarded) */
	uint64_t in_acked; /* last ACK sent */
	bool in_eof;	   /* the host sent PROTO_F_EOF */
	bool in_closed;	   /* nothing more is written */
	unsigned in_veof;  /* PTY: VEOF characters still to write */
	bool in_mid_line;  /* PTY: last byte written was not a newline */

	uint64_t started_ms, exited_ms, delivered_ms;
	uint64_t deadline_ms; /* timeout_ms expiry, 0: none */
	uint64_t keep_ms;
	int status; /* wait status once reaped */
	bool timed_out;
	bool signalled; /* a SIGNAL request was delivered */
	bool grace_killed;
};

/* cmdio.c */
void cmd_stream_arm(struct cmd *cmd, struct cmd_stream *s);
void cmd_stream_on_cqe(struct cmd *cmd, struct cmd_stream *s, int res);
void cmd_stream_force_eof(struct cmd *cmd, struct cmd_stream *s);
void cmd_stdin_flush(struct cmd *cmd);
void cmd_stdin_on_cqe(struct cmd *cmd, int res);
void cmd_stdin_close(struct cmd *cmd);
/* Send what credit allows and, when FINISHED and all is sent, the EXIT. */
void cmd_pump(struct cmd *cmd);
void cmd_attach(struct cmd *cmd, struct conn *c, uint64_t out_off, uint64_t err_off,
		uint32_t window);

/* exec.c */
void cmd_enter_state(struct cmd *cmd, enum cmd_state state);
/* Both streams at EOF and the process reaped: FINISHED. */
void cmd_check_finished(struct cmd *cmd);
