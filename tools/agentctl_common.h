/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentctl_common.h - what the files of sbx-agentctl share: the global
 * options, the streaming exec used by "exec" and "run", and "run" itself.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/agent/agent_client.h"

/* Exit codes of sbx-agentctl itself (a command's own code passes through). */
#define EXIT_USAGE 2
#define EXIT_TOOL 125	  /* exec/run: sbx-agentctl or the agent failed */
#define EXIT_NOEXEC 126	  /* exec/run: the command cannot be executed */
#define EXIT_NOTFOUND 127 /* exec/run: the command was not found */

extern bool arg_json;
extern int arg_verbose;
extern int arg_timeout_ms;

struct exec_opts {
	const char *const *argv; /* NULL-terminated, or: */
	const char *shell;
	const char **env; /* NULL-terminated or NULL */
	const char *cwd;
	bool tty;
	bool stdin_fwd;
	uint32_t timeout_ms; /* the command's; 0: none */
};

/* Print "sbx-agentctl: <message>" on stderr. */
__attribute__((format(printf, 1, 2))) void agentctl_error(const char *fmt, ...);

/* Connect to addr, giving up on a signal arriving on sigfd (-1: none,
 * -ECANCELED) or when check() fails (its error). Unless quiet, prints the
 * reason on failure (err_msg() has it either way). */
int agentctl_connect(const char *addr, int timeout_ms, int sigfd, int (*check)(void *ud), void *ud,
		     bool quiet, agent_client **ret);

/* A signalfd for SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGWINCH, which are
 * blocked from now on (in every thread started later, too). */
int agentctl_signalfd(void);

/* Run one command and stream it: stdout/stderr to ours, stdin forwarded
 * with back-pressure, signals forwarded, PTY resized. Returns the exit code
 * for this process: the command's, 128+N for signal N, or EXIT_*. */
int agentctl_exec(agent_client *c, const struct exec_opts *o, int sigfd);

/* Parse the options that exec and run share. Returns 1 when the option was
 * one of them (optarg consumed), 0 when not, -1 on a bad value. */
int agentctl_parse_exec_opt(int opt, const char *arg, struct exec_opts *o, const char ***envv,
			    size_t *nenv);

int agentctl_run(int argc, char **argv);
