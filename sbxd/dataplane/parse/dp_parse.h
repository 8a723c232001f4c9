/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_parse.h - everything the data plane reads from untrusted requests, as
 * pure functions (no I/O, no logging), unit-tested and fuzzed:
 *
 *   - the JSON messages of the WebSocket /execute/ws protocol and the body
 *     of POST /execute (langsmith-wire.md §5.2, §6.3), into plain structs;
 *   - the command line, environment and directory a command runs with,
 *     from those and the sandbox's run_config;
 *   - file paths, Range, If-None-Match / If-Range, ETag and HTTP dates of
 *     /download (§5.4 - §5.6);
 *   - the JSON bodies of /glob and /grep (§5.7).
 *
 * Parse failures leave a message for a person in err (at most errlen bytes).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#define DP_CMD_ID_MAX 128	/* command_id bytes */
#define DP_COMMAND_MAX 65535	/* a command line (one agent string) */
#define DP_PATH_MAX 4096	/* a path in the guest */
#define DP_ENV_MAX 1024		/* environment entries */
#define DP_DEFAULT_TIMEOUT_S 60 /* timeout_seconds */
#define DP_DEFAULT_IDLE_S 300	/* idle_timeout_seconds */
#define DP_DEFAULT_TTL_S 600	/* ttl_seconds */
#define DP_DEFAULT_SHELL "/bin/bash"
#define DP_SEARCH_LIMIT_DEFAULT 1000
#define DP_SEARCH_LIMIT_MAX 10000

/* ---- commands ---- */

struct dp_exec_params {
	char *command;
	char *shell;	  /* DP_DEFAULT_SHELL when absent */
	char *command_id; /* NULL when absent */
	char *cwd;	  /* legacy "cwd", NULL when absent */
	json_t *env;	  /* legacy "env" object, NULL when absent */
	json_t *run_config;
	int64_t timeout_s;	/* <= 0: none */
	int64_t idle_timeout_s; /* < 0: never */
	int64_t ttl_s;		/* < 0: forever */
	bool kill_on_disconnect;
	bool close_stdin;
	bool pty;
	unsigned rows, cols; /* PTY size (sbx extension); 0: the agent's default */
};
void dp_exec_params_release(struct dp_exec_params *p);

enum dp_msg_type {
	DP_MSG_EXECUTE,
	DP_MSG_RECONNECT,
	DP_MSG_INPUT,
	DP_MSG_CLOSE_STDIN,
	DP_MSG_KILL,
	DP_MSG_RESIZE,	/* sbx extension: {"type":"resize","rows":R,"cols":C} */
	DP_MSG_IGNORED, /* an unknown type: the protocol says ignore it */
	DP_MSG_TYPE_COUNT,
};
const char *dp_msg_type_to_string(enum dp_msg_type t);

struct dp_msg {
	enum dp_msg_type type;
	struct dp_exec_params exec; /* EXECUTE */
	char *command_id;	    /* RECONNECT */
	uint64_t offsets[2];	    /* RECONNECT: stdout, stderr */
	char *data;		    /* INPUT: bytes (may hold NUL) */
	size_t data_len;
	unsigned rows, cols; /* RESIZE */
};

/* One client frame. -EINVAL (not a JSON object, a field of the wrong type
 * or value) with err filled. */
int dp_msg_parse(const char *buf, size_t len, struct dp_msg *ret);
void dp_msg_release(struct dp_msg *m);

/* The body of POST /execute: {command, timeout, shell, env?, cwd?,
 * run_config?}. */
int dp_exec_parse_http(const char *buf, size_t len, struct dp_exec_params *ret);

/* command_id: 1..DP_CMD_ID_MAX of [A-Za-z0-9._:-]. */
bool dp_command_id_valid(const char *s);

/* What the agent runs: argv (shell -c command, wrapped in runuser/setpriv
 * for run_config.user), the environment (NULL: the agent's default) and the
 * working directory (NULL: "/"). Settings merge from the sandbox's
 * run_config (JSON text, may be NULL), then the command's run_config, then
 * the legacy env/cwd. */
struct dp_exec_argv {
	char **argv; /* NULL-terminated */
	char **env;  /* NULL-terminated, or NULL */
	char *cwd;
};
int dp_exec_build(const struct dp_exec_params *p, const char *box_run_config,
		  struct dp_exec_argv *ret);
void dp_exec_argv_release(struct dp_exec_argv *a);

/* ---- files ---- */

/* An absolute guest path: starts with '/', 1..DP_PATH_MAX bytes. */
bool dp_path_valid(const char *p);

enum dp_range_result {
	DP_RANGE_NONE,		/* no usable Range: send the whole file (200) */
	DP_RANGE_OK,		/* send [start, start+len) (206) */
	DP_RANGE_UNSATISFIABLE, /* 416 with Content-Range: bytes SLASH-STAR/SIZE */
};
/* "bytes=S-E", "bytes=S-", "bytes=-N" against a file of size bytes.
 * Several ranges or a malformed header give DP_RANGE_NONE (RFC 9110 lets a
 * server ignore Range). */
enum dp_range_result dp_range_parse(const char *hdr, uint64_t size, uint64_t *ret_start,
				    uint64_t *ret_len);

/* A strong validator from size and mtime: "\"<hex size>-<hex mtime>\"". */
void dp_etag_format(uint64_t size, int64_t mtime, char *buf, size_t len);
/* If-None-Match: "*" or a comma-separated list of (possibly W/) tags. */
bool dp_etag_list_matches(const char *list, const char *etag);
/* RFC 9110 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"). */
void dp_http_date(int64_t t, char *buf, size_t len);

/* ---- search ---- */

struct dp_search_req {
	char *pattern; /* glob: a pattern (dp_glob_valid); grep: a literal */
	char *path;    /* absolute */
	char *glob;    /* grep's file filter, NULL when absent */
	unsigned limit;
};
/* grep: true for a /grep body, false for /glob. */
int dp_search_parse(const char *buf, size_t len, bool grep, struct dp_search_req *ret);
void dp_search_req_release(struct dp_search_req *r);
