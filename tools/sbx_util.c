/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_util.c - the error buffer, usage messages and number parsing that
 * every sbx command uses.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "tools/sbx.h"

int arg_verbose;

static char errbuf[2048];
static bool err_final;

static int error_vset(int err, bool final, const char *fmt, va_list ap)
{
	/* so that %m names err even when the caller passed -errno */
	if (err < 0)
		errno = -err;
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	err_final = final;
	return err;
}

int sbx_error_set(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = error_vset(err, false, fmt, ap);
	va_end(ap);
	return err;
}

int sbx_error_set_final(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = error_vset(err, true, fmt, ap);
	va_end(ap);
	return err;
}

int sbx_error_wrap(int err, const char *fmt, ...)
{
	char old[sizeof(errbuf)];
	va_list ap;
	int n;

	if (err_final)
		return err;
	if (*errbuf)
		memcpy(old, errbuf, sizeof(old));
	else
		snprintf(old, sizeof(old), "%s", strerror(err < 0 ? -err : err));
	va_start(ap, fmt);
	n = vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(errbuf))
		snprintf(errbuf + n, sizeof(errbuf) - (size_t)n, ": %.*s",
			 (int)(sizeof(errbuf) - (size_t)n), old);
	return err;
}

const char *sbx_error_get(void)
{
	return errbuf;
}

int sbx_error_print(int code)
{
	log_error("%s", *errbuf ? errbuf : "unknown error");
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
