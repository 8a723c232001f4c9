/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_frame.h - the JSON messages of the data plane's /execute/ws protocol
 * (langsmith-wire.md section 6), built and parsed without I/O.
 *
 * Client to server: execute, reconnect, input, close_stdin, kill, and the
 * sbx extensions "resize" and "rows"/"cols" in execute (PTY size).
 * Server to client: started, stdout, stderr, exit, error; any other type
 * is ignored, as the langsmith client does.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct sbx_exec_req {
	const char *command; /* run as <shell> -c <command> */
	const char *shell;
	const char *command_id;
	const char *cwd; /* NULL: the sandbox's */
	json_t *env;	 /* object of strings or NULL (borrowed) */
	long timeout_s;
	long idle_timeout_s;
	long ttl_s;
	bool pty;
	unsigned rows, cols; /* the PTY's size (sbx extension); 0: sbxd's default */
	bool close_stdin;    /* no stdin at all: EOF at once */
};

/* Each returns a malloc'd compact JSON text, or NULL on OOM (or, for
 * input, when data is not valid UTF-8). */
char *sbx_frame_execute(const struct sbx_exec_req *req);
char *sbx_frame_reconnect(const char *command_id, int64_t stdout_offset, int64_t stderr_offset);
char *sbx_frame_input(const char *data, size_t len);
char *sbx_frame_resize(unsigned rows, unsigned cols);
char *sbx_frame_simple(const char *type); /* kill, close_stdin */

enum sbx_msg_type {
	SBX_MSG_STARTED,
	SBX_MSG_STDOUT,
	SBX_MSG_STDERR,
	SBX_MSG_EXIT,
	SBX_MSG_ERROR,
	SBX_MSG_OTHER,
};

struct sbx_msg {
	enum sbx_msg_type type;
	const char *command_id; /* started */
	const char *data;	/* stdout/stderr; not NUL-terminated */
	size_t len;
	int64_t offset;
	int64_t exit_code;	/* exit; -1 when missing */
	int signal;		/* exit: the signal that ended it, 0 if none said */
	const char *error_type; /* error; "CommandError" when missing */
	const char *error;
	json_t *root; /* owns the strings above */
};

/* 0, or -EBADMSG for something that is not a JSON object with a string
 * "type" (or a stdout/stderr without data). */
int sbx_msg_parse(const char *text, size_t len, struct sbx_msg *ret);
void sbx_msg_release(struct sbx_msg *m);

/* The exit code for this process from an exit message: the command's
 * code, or 128+N when a signal N ended it (a "signal" key, or an
 * exit_code of -N other than -1); 255 when unknown or out of range. */
int sbx_exit_status(const struct sbx_msg *m);

/* Bytes at the front of a chunk at offset that were already received
 * (next: the offset expected); len if all of them were. */
size_t sbx_chunk_skip(int64_t offset, size_t len, int64_t next);
