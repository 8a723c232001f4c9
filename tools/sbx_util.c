/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_util.c - the error buffer, usage messages and number parsing that
 * every sbx command uses.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "tools/sbx.h"

int arg_verbose;

/* The message sbx_error_set_final() left: sbx_error_wrap() keeps it as it
 * is while it is still the one in the slot. */
static char final_msg[ERR_MSG_MAX];

int sbx_error_set_final(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = err_vset(err, fmt, ap);
	va_end(ap);
	snprintf(final_msg, sizeof(final_msg), "%s", err_msg());
	return err;
}

int sbx_error_wrap(int err, const char *fmt, ...)
{
	char ctx[512];
	va_list ap;

	if (final_msg[0] && strcmp(final_msg, err_msg()) == 0)
		return err;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	return err_prefix(err, "%s", ctx);
}

int sbx_error_print(int code)
{
	log_error("%s", *err_msg() ? err_msg() : "unknown error");
	return code;
}

void sbx_usage(const struct sbx_command *cmd, FILE *f)
{
	fprintf(f, "Usage: sbx [GLOBAL OPTIONS] %s %s\n\n%s\n", cmd->name, cmd->usage,
		cmd->summary);
	if (cmd->help && *cmd->help)
		fprintf(f, "\n%s", cmd->help);
	fprintf(f, "\nGlobal options (sbx --help): --endpoint URL, --api-key KEY, -v.\n");
}

int sbx_usage_error(const struct sbx_command *cmd, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "sbx %s: %s\nUsage: sbx %s %s\nTry 'sbx %s --help'.\n", cmd->name, buf,
		cmd->name, cmd->usage, cmd->name);
	return SBX_EXIT_USAGE;
}

int sbx_parse_long(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

int sbx_parse_flags(const struct sbx_command *cmd, int argc, char **argv, const char *shortopts,
		    const struct option *opts, struct sbx_flags *f, int *code)
{
	int opt;
	long n;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			f->json = true;
			break;
		case 'q':
			f->quiet = true;
			break;
		case 'M':
			f->memory = true;
			break;
		case 'f':
			f->force = true;
			break;
		case 't':
			if (sbx_parse_long(optarg, 1, 3600, &n) < 0) {
				*code = sbx_usage_error(cmd, "--timeout wants 1 to 3600 seconds");
				return -EINVAL;
			}
			f->timeout = n;
			break;
		case 'v':
			arg_verbose++;
			break;
		case 'h':
			sbx_usage(cmd, stdout);
			*code = SBX_EXIT_OK;
			return -ECANCELED;
		default:
			*code = sbx_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
			return -EINVAL;
		}
	}
	return 0;
}
