/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_client_int.h - shared internals of host/agent_client*.c. Not an API:
 * nothing outside those files includes it.
 *
 * Ownership: the client owns the pending-request list; commands and transfers
 * are owned by their caller (agent_cmd_free()/agent_xfer_free()) and linked
 * into the client's lists while they are routable. A handle freed from inside
 * one of its own callbacks is only marked (released) and destroyed when the
 * callback returns (busy reaches 0).
 */
#pragma once

#include <stdarg.h>

#include "host/agent/agent_client.h"

struct pending;

/* Returns true when the request is finished (the pending is freed), false
 * when more frames belong to it (LIST more, file transfers). m is NULL and
 * err < 0 when the connection was lost or the request cancelled. */
typedef bool (*pending_fn)(agent_client *c, struct pending *p, int err, const struct proto_msg *m);

struct pending {
	struct pending *next;
	uint32_t id;
	uint16_t type; /* request type */
	pending_fn handle;
	char *what;	   /* "stat /a/b", for error messages */
	char *path;	   /* the request's path, if any */
	agent_reply_fn fn; /* generic requests */
	void *ud;
	agent_cmd *cmd;	    /* EXEC, ATTACH */
	agent_xfer *xfer;   /* FILE_READ, FILE_WRITE */
	bool kill_on_start; /* EXEC whose handle was freed before it started */
};

struct agent_client {
	int fd;
	int dead; /* 0 or the -errno that ended the connection */
	bool ready;
	bool closed_notified;
	struct proto_reader rd;
	struct proto_buf wq;
	uint32_t next_id;
	struct pending *pending;
	agent_cmd *cmds;
	agent_xfer *xfers;
	struct agent_client_ops ops;
	void *ud;
	char err[1024];
	char *peer_software;
	char **peer_caps;
	uint32_t peer_caps_n;
	uint32_t peer_max_body;
	unsigned hello_sent;
	bool settled;		/* the PONG after the agent's HELLO arrived: a HELLO now
				 * means the agent restarted */
	uint64_t hello_next_ms; /* resend HELLO then if still not ready */
	unsigned hello_backoff_ms;
	int timeout_ms;
	uint64_t last_rx_ms;
	uint8_t *xbuf; /* AGENT_PUT_CHUNK scratch: put source data */
	uint8_t *zbuf; /* compression / decompression scratch */
	size_t zbuf_cap;
};

struct agent_cmd {
	agent_cmd *next;
	agent_client *c; /* NULL once detached */
	enum agent_cmd_state state;
	uint32_t id;
	int pid;
	struct agent_cmd_ops ops;
	void *ud;
	bool attach;
	bool manual_ack;
	bool linked;
	bool stdin_open, stdin_closed, stdin_blocked;
	bool stdin_resync; /* attached, nothing written yet: ACK{in} may move us */
	bool released;
	int busy;
	uint32_t window;
	uint64_t next_off[2]; /* next byte expected per stream */
	uint64_t consumed[2]; /* consumed by the caller */
	uint64_t acked[2];    /* last ACK queued */
	uint64_t start[2];    /* ATTACHED's oldest retained */
	uint64_t total[2];    /* EXIT's stream lengths */
	bool forgotten;	      /* FORGET sent */
	struct proto_credit in;
};

enum xfer_state { XFER_OPENING, XFER_RUNNING, XFER_DONE };

struct agent_xfer {
	agent_xfer *next;
	agent_client *c;
	enum xfer_state state;
	bool put;
	bool linked;
	bool released;
	int busy;
	uint32_t req_id;
	uint32_t chan;
	char *path;
	agent_source_fn src;
	agent_sink_fn sink;
	void *io_ud;
	agent_done_fn done;
	void *ud;
	int fd; /* fd-backed transfers */
	/* remote file (FILE_OPENED) */
	uint64_t rsize;
	uint32_t rmode;
	int64_t rmtime;
	/* put */
	struct proto_credit cr;
	bool zstd;
	bool src_blocked, eof_sent; /* eof_sent: FILE_DONE (or an abort) went out */
	bool agent_failed;	    /* the agent ended it with ERROR */
	unsigned nopay;
	uint64_t chunks;
	/* get */
	uint64_t rnext; /* next offset expected */
	uint64_t consumed;
	uint64_t acked;
	uint64_t base;
	uint32_t window;
	bool manual_ack;
};

/* agent_client.c */
/* Replace control characters (agent text ends up on terminals). */
void client_sanitize(char *s);
__attribute__((format(printf, 2, 3))) void client_set_error(agent_client *c, const char *fmt, ...);
int client_queue(agent_client *c, const struct proto_msg *m);
/* Register a request: assigns the id, encodes and queues m. On success the
 * pending is owned by the client (*ret_p borrowed); on failure nothing is
 * queued and what/path are freed. */
int client_send_request(agent_client *c, struct proto_msg *m, pending_fn handle, char *what,
			const char *path, struct pending **ret_p);
void pending_free(struct pending *p);
/* Unlink p from the client's list (does not free it). */
void pending_unlink(agent_client *c, struct pending *p);
/* Map a PROTO_ERROR to -errno and leave "agent: ..." in the client. */
int client_error_from_proto(agent_client *c, const struct pending *p, const struct proto_error *e);
/* Close the connection for a protocol violation (message for the log). */
__attribute__((format(printf, 3, 4))) int client_protocol_error(agent_client *c, int err,
								const char *fmt, ...);
bool client_sendq_full(const agent_client *c);
size_t client_chunk_max(const agent_client *c);
int client_zbuf(agent_client *c, size_t cap);
/* Pump until *done, the connection dies or the agent is silent too long. */
int client_wait(agent_client *c, const bool *done);

/* agent_client_cmd.c */
void cmd_unlink(agent_cmd *cmd);
agent_cmd *cmd_find(agent_client *c, uint32_t id);
void cmd_fail(agent_cmd *cmd, int err, const char *msg);
int cmd_on_frame(agent_client *c, agent_cmd *cmd, const struct proto_msg *m);
void cmds_flush_acks(agent_client *c);
void cmds_notify_stdin(agent_client *c);

/* agent_client_file.c */
void xfer_unlink(agent_xfer *x);
agent_xfer *xfer_find(agent_client *c, uint32_t chan);
void xfer_finish(agent_xfer *x, int err, uint64_t size);
int xfer_on_frame(agent_client *c, agent_xfer *x, const struct proto_msg *m);
void xfers_produce(agent_client *c);
void xfers_flush_acks(agent_client *c);
