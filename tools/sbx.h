/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx.h - what the files of the sbx command-line tool share: the global
 * options, the error buffer, the exit codes and the commands.
 *
 * sbx is a one-shot program. Lower layers return -errno and leave a
 * sentence for a person in the error slot (err_set(), base/err.h); the
 * command at the top prints it once (sbx_error_print()) and turns it into
 * an exit code.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>

#include "base/err.h"

/* Exit codes of sbx itself. exec and shell pass the command's code
 * through and use SBX_EXIT_REMOTE when sbx, sbxd or the connection failed. */
#define SBX_EXIT_OK 0
#define SBX_EXIT_FAIL 1
#define SBX_EXIT_USAGE 2
#define SBX_EXIT_TIMEOUT 124 /* the command ran past --timeout */
#define SBX_EXIT_REMOTE 255

/* Global options, set by main() before a command runs. */
extern int arg_verbose;

/* The message is one sentence, without "sbx: " or a final newline. */
/* Prefix the current message with context: "ctx: old message". Leaves the
 * message alone when it was marked final (sbx_error_set_final()), which
 * is how "cannot reach sbxd ..." stays readable. Returns err. */
__attribute__((format(printf, 2, 3))) int sbx_error_wrap(int err, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) int sbx_error_set_final(int err, const char *fmt, ...);
/* Print "sbx: error: <message>" on stderr and return code. */
int sbx_error_print(int code);

/* A command's usage line and help text, and how to complain about usage. */
struct sbx_command {
	const char *name;
	int (*fn)(const struct sbx_command *cmd, int argc, char **argv);
	const char *usage;   /* after "sbx NAME " */
	const char *summary; /* one line for "sbx --help" */
	const char *help;    /* the options, for "sbx NAME --help" */
};

void sbx_usage(const struct sbx_command *cmd, FILE *f);
__attribute__((format(printf, 2, 3))) int sbx_usage_error(const struct sbx_command *cmd,
							  const char *fmt, ...);

/* The options commands share; shortopts and opts say which one takes:
 * j --json, q --quiet, M --memory, f --force, t: --timeout 1-3600 (s),
 * v --verbose (arg_verbose), h --help. 0: go on with the operands from
 * optind; < 0: return *code (help printed, or a usage error). */
struct sbx_flags {
	bool json, quiet, memory, force;
	long timeout;
};
int sbx_parse_flags(const struct sbx_command *cmd, int argc, char **argv, const char *shortopts,
		    const struct option *opts, struct sbx_flags *f, int *code);

/* Parse a whole number in [min, max]: 0 or -EINVAL. */
int sbx_parse_long(const char *s, long min, long max, long *ret);

/* Commands (sbx_boxes.c, sbx_exec.c, sbx_cp.c, sbx_config.c, sbx_snapshots.c). */
int sbx_cmd_create(const struct sbx_command *cmd, int argc, char **argv);
int sbx_cmd_ls(const struct sbx_command *cmd, int argc, char **argv);
int sbx_cmd_status(const struct sbx_command *cmd, int argc, char **argv);
int sbx_cmd_rename(const struct sbx_command *cmd, int argc, char **argv);
int sbx_cmd_rm(const struct sbx_command *cmd, int argc, char **argv);
int sbx_cmd_stop(const struct sbx_command *cmd, int argc, char **argv);
int sbx_cmd_start(const struct sbx_command *cmd, int argc, char **argv);
int sbx_cmd_exec(const struct sbx_command *cmd, int argc, char **argv);
int sbx_cmd_shell(const struct sbx_command *cmd, int argc, char **argv);
int sbx_cmd_cp(const struct sbx_command *cmd, int argc, char **argv);
int sbx_cmd_config(const struct sbx_command *cmd, int argc, char **argv);
int sbx_cmd_snapshot(const struct sbx_command *cmd, int argc, char **argv); /* sbx_snapshots.c */
int sbx_cmd_audit(const struct sbx_command *cmd, int argc, char **argv);    /* sbx_audit.c */
