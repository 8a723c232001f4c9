/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_int.h - internals shared by the data plane's files. Service thread
 * only; nothing here is locked.
 *
 *   dp.c          the sbxd_dataplane_ops entry points, error replies
 *   dp_conn.c     per-sandbox state (struct dp_box) and its one agent
 *                 connection, adopted into the lws loop; reconnection
 *   dp_cmd.c      commands of the WebSocket protocol (struct dp_cmd):
 *                 exec/attach, output buffers, acks, timers, the store
 *   dp_ws.c       the WebSocket sessions (struct dp_ws)
 *   dp_exec_http.c  POST /execute
 *   dp_files.c    /upload, /download (GET, HEAD, ranges)
 *   dp_search.c   /glob, /grep
 *   dp_sync.c     sync(1) in the guest before sbxd captures a snapshot
 *
 * Ownership: a dp owns its boxes; a box owns its commands and its agent
 * client; WebSocket sessions and HTTP requests hold a reference on their
 * box (dp_box_ref) and point at a command, which points back at them in
 * its client list. A box is freed when nobody references it and it has no
 * commands left, once its sandbox is gone (or at shutdown).
 *
 * Flow control: a command's output reaches sbxd only within the agent's
 * window (DP_EXEC_WINDOW per stream); sbxd acknowledges bytes once every
 * attached client has written them to its socket, so a slow client slows
 * its command and sbxd holds at most one window per stream per command.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "host/agent/agent_client.h"
#include "sbxd/dataplane/dp.h"
#include "sbxd/dataplane/parse/dp_outbuf.h"
#include "sbxd/dataplane/parse/dp_parse.h"
#include "sbxd/http/http_server.h"
#include "sbxd/api/dataplane.h"
#include "sbxd/common/key.h"

#define DP_EXEC_WINDOW (256 * 1024)   /* agent -> sbxd, per output stream */
#define DP_EXEC_RING (4u << 20)	      /* output the agent retains for replay */
#define DP_WS_MSG_MAX (64 * 1024)     /* one stdout/stderr frame, JSON */
#define DP_WS_IN_MAX (1024 * 1024)    /* one client frame */
#define DP_CONNECT_TIMEOUT_MS 15000   /* agent HELLO after connecting */
#define DP_RECONNECT_MAX_MS 5000      /* backoff cap */
#define DP_RECONNECT_GIVE_UP_MS 60000 /* then running commands fail */
#define DP_MAX_CMDS 256		      /* commands a box keeps in memory */
#define DP_LINGER_MS 10000	      /* a session that sent exit closes after */
#define DP_OPEN_TIMEOUT_MS 30000      /* first frame after the upgrade */

struct dp {
	sbxd_api *api;
	store *st;
	struct lws_context *ctx; /* set on the first request */
	struct lws_vhost *vh;	 /* ours: the raw protocol of agent fds */
	struct dp_box *boxes;
	bool down; /* the lws context is going away */
};

enum dp_conn_state {
	DP_CONN_DOWN,	    /* no connection; the next user dials */
	DP_CONN_CONNECTING, /* dialed, waiting for the agent's HELLO */
	DP_CONN_UP,
	DP_CONN_BACKOFF, /* lost with commands running: redial later */
	DP_CONN_GONE,	 /* the sandbox no longer exists */
	DP_CONN_STATE_COUNT,
};
const char *dp_conn_state_to_string(enum dp_conn_state s);

struct dp_box {
	struct dp_box *next;
	struct dp *dp;
	unsigned refs;
	char id[STORE_ID_LEN + 1];
	char name[API_NAME_MAX + 1];
	char addr[PATH_MAX + 8];
	char *run_config; /* the sandbox's, JSON text or NULL */
	enum dp_conn_state state;
	agent_client *ac;
	struct lws *raw; /* adopted dup of the agent fd */
	uint64_t deadline_ms;
	uint64_t lost_since_ms;
	unsigned retries;
	lws_sorted_usec_list_t sul; /* HELLO resends, connect deadline, redial */
	struct dp_cmd *cmds;
	unsigned ncmds;
};

enum dp_cmd_state {
	DP_CMD_STARTING, /* EXEC sent */
	DP_CMD_RUNNING,	 /* started (or re-attached, exit not seen) */
	DP_CMD_EXITED,
	DP_CMD_FAILED, /* never started, or lost: err_type/err_msg say why */
	DP_CMD_STATE_COUNT,
};
const char *dp_cmd_state_to_string(enum dp_cmd_state s);

struct dp_ws;

struct dp_cmd {
	struct dp_cmd *next;
	struct dp_box *box;
	char id[DP_CMD_ID_MAX + 1];
	enum dp_cmd_state state;
	uint32_t agent_id; /* 0 until started */
	int pid;
	agent_cmd *ac;	/* subscription on the box's connection, or NULL */
	bool attaching; /* ac is an ATTACH not answered yet */
	bool pty;
	bool stdin_open;
	bool drain;	  /* killed and nobody reads: acknowledge and drop output */
	bool detached;	  /* out[] is not fed (no client): re-attach for the next */
	bool kill_wanted; /* kill asked for before the command started */
	int stored_exit;  /* restored from the store: its exit code, or INT_MIN */
	struct dp_outbuf out[2];
	uint64_t acked[2]; /* what we told the agent we consumed */
	uint64_t seq;
	int last_stream;
	uint64_t total[2]; /* EXIT's stream lengths */
	int exit_code;
	bool timed_out;
	uint64_t start_us; /* CLOCK_MONOTONIC when it was asked for */
	char err_type[32];
	char err_msg[512];
	struct dp_ws *clients;
	int64_t timeout_s, idle_s, ttl_s;
	bool kill_on_disconnect;
	bool kill_sent;
	lws_sorted_usec_list_t idle_sul, ttl_sul;
};

struct dp_ws {
	struct dp_ws *next; /* in cmd->clients */
	struct lws *wsi;
	struct dp *dp;
	struct dp_box *box; /* referenced */
	struct dp_cmd *cmd; /* NULL until execute/reconnect */
	uint64_t next_off[2];
	bool sent_started, sent_end;
	bool want_close;
	bool rx_paused;
	char *rx; /* a fragmented frame being assembled */
	size_t rx_len;
	char *in; /* stdin not yet taken by the agent */
	size_t in_len, in_off;
	bool in_close; /* close_stdin after it */
	bool kill_pending;
	unsigned rows, cols; /* resize pending */
	char err_type[32];   /* a fatal error to send, then close */
	char err_msg[512];
	bool has_err;
	char who[SBXD_KEY_NAME_MAX + 1]; /* the API key of the session */
	uint8_t *scratch;		 /* raw bytes of one frame */
	uint8_t *obuf;			 /* LWS_PRE + one JSON frame */
	lws_sorted_usec_list_t sul;
};

/* ---- dp_conn.c ---- */

int dp_init_loop(struct dp *d, http_req *r);
/* The box of sandbox b, created if needed; a new reference. NULL on OOM. */
struct dp_box *dp_box_get(struct dp *d, const struct sbxd_dp_box *b);
struct dp_box *dp_box_ref(struct dp_box *b);
void dp_box_unref(struct dp_box *b);
/* The agent client, dialing if there is none (it may not be ready yet:
 * requests queue). -EHOSTDOWN (+ message) when it cannot be reached,
 * -ENOENT when the sandbox is gone. Never call from an agent callback. */
int dp_box_client(struct dp_box *b, agent_client **ret);
/* Have the loop write what the agent client queued. */
void dp_box_flush(struct dp_box *b);
/* Have the loop run the agent client's producers (a put source has data). */
void dp_box_kick(struct dp_box *b);
void dp_teardown(struct dp *d);
void dp_schedule(struct dp *d, lws_sorted_usec_list_t *sul, sul_cb_t cb, int64_t ms);

/* ---- dp_cmd.c ---- */

struct dp_cmd *dp_cmd_find(struct dp_box *b, const char *id);
/* Start a new command (id may be NULL: one is made up) for the API key
 * named who; it is in the audit log before it runs. */
int dp_cmd_start(struct dp_box *b, const struct dp_exec_params *p, const char *id, const char *who,
		 struct dp_cmd **ret);
/* The audit log's record of a command (see store_audit_begin). */
void dp_audit_begin(struct dp_box *b, const char *id, const char *who, const char *command,
		    const char *cwd);
void dp_audit_end(struct dp_box *b, const char *id, int exit_code, const char *outcome);
/* A command this box does not hold in memory but the store knows (sbxd
 * restarted): -ENOENT unknown, -ESTALE expired. */
int dp_cmd_restore(struct dp_box *b, const char *id, struct dp_cmd **ret);
/* Attach a session from the offsets it has (get-or-create and reconnect). */
void dp_cmd_add_client(struct dp_cmd *c, struct dp_ws *w, const uint64_t from[2]);
/* The session went away; saw_end: it received exit. */
void dp_cmd_remove_client(struct dp_cmd *c, struct dp_ws *w, bool saw_end);
/* A client wrote output: drop what all have, acknowledge the agent. */
void dp_cmd_progress(struct dp_cmd *c);
ssize_t dp_cmd_write_stdin(struct dp_cmd *c, const void *data, size_t len);
int dp_cmd_close_stdin(struct dp_cmd *c);
void dp_cmd_kill(struct dp_cmd *c);
void dp_cmd_resize(struct dp_cmd *c, unsigned rows, unsigned cols);
/* Whether stream s has everything it will ever have. */
bool dp_cmd_stream_done(const struct dp_cmd *c, int s);
/* Connection events of the box. */
void dp_cmds_conn_up(struct dp_box *b);
void dp_cmds_fail_all(struct dp_box *b, const char *type, const char *msg);
void dp_cmd_free(struct dp_cmd *c);

/* ---- dp_ws.c ---- */

int dp_ws_upgrade(struct dp *d, http_req *r, const struct sbxd_dp_box *box, const char *who,
		  const struct http_ws_ops **ret_ops, void **ret_ud);
/* The command has something new for this session. */
void dp_ws_wake(struct dp_ws *w);
/* The command's stdin credit came back (or its state changed). */
void dp_ws_stdin_ready(struct dp_ws *w);
/* The command is being freed under the session. */
void dp_ws_cmd_gone(struct dp_ws *w, const char *type, const char *msg);

/* ---- dp.c ---- */

/* {"detail":{"error":...}} for an agent failure of a file operation. */
void dp_reply_agent_error(http_req *r, int err, const char *what_type, const char *msg,
			  const char *path);
/* Common checks: the ?path= query into buf; replies 400 and returns <0. */
int dp_query_path(http_req *r, char *buf, size_t len);

/* ---- dp_exec_http.c, dp_files.c, dp_search.c ---- */

void dp_exec_http(struct dp *d, http_req *r, const struct sbxd_dp_box *box, const char *who);
void dp_upload_begin(struct dp *d, http_req *r, const struct sbxd_dp_box *box);
void dp_download(struct dp *d, http_req *r, const struct sbxd_dp_box *box);
void dp_search(struct dp *d, http_req *r, const struct sbxd_dp_box *box, bool grep);

/* sbxd_dataplane_ops.release_box, .box_busy (dp_conn.c) */
void dp_release_box(void *ud, const char *box_id);
bool dp_box_busy(void *ud, const char *box_id);

/* ---- dp_sync.c ---- */

/* sbxd_dataplane_ops.sync_fs */
int dp_sync_fs(void *ud, http_req *r, const struct sbxd_dp_box *box,
	       void (*done)(void *cud, int err, const char *msg), void *cud);
