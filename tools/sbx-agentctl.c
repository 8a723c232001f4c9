/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx-agentctl - talk to one sbx-agent directly: ping it, run commands, move
 * files, or boot a throwaway VM and run one command in it ("run").
 *
 * main() parses the global options, then dispatches through a command table
 * (crun's style); each command parses its own options and prints text, or
 * JSON with --json (jansson). Errors go to stderr as one sentence naming
 * what failed; with --json an {"error": ...} object also goes to stdout.
 * See docs/agentctl.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/err.h"
#include "tools/agentctl_common.h"
#include "base/cleanup.h"
#include "base/log.h"

LOG_DEFINE_STATE("sbx-agentctl");

#define DEFAULT_TIMEOUT_MS 30000

bool arg_json;
int arg_verbose;
int arg_timeout_ms = DEFAULT_TIMEOUT_MS;
static const char *arg_connect;

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
	const char *help;
	bool needs_agent;
};

static const struct command *find_command(const char *name);

static void usage_of(const struct command *cmd, FILE *f)
{
	fprintf(f, "Usage: sbx-agentctl [GLOBAL OPTIONS] %s\n\n%s", cmd->usage, cmd->help);
}

static int usage_error(const struct command *cmd, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr,
		"sbx-agentctl %s: %s\nUsage: sbx-agentctl %s\n"
		"Try 'sbx-agentctl %s --help'.\n",
		cmd->name, buf, cmd->usage, cmd->name);
	return EXIT_USAGE;
}

/* Print an error for a failed agent operation; JSON too when asked. */
static int fail(agent_client *c, int err, const char *fmt, ...)
{
	char what[512];
	const char *why = c && *err_msg() ? err_msg() : strerror(-err);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (*what)
		agentctl_error("%s: %s", what, why);
	else
		agentctl_error("%s", why);
	if (arg_json) {
		json_t *j = json_pack("{s:s, s:i}", "error", why, "errno", -err);
		char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;

		if (t)
			printf("%s\n", t);
		free(t);
		json_decref(j);
	}
	return 1;
}

static void print_json(json_t *j)
{
	char *t;

	if (!j) {
		agentctl_error("out of memory building JSON");
		return;
	}
	t = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (t)
		printf("%s\n", t);
	free(t);
	json_decref(j);
}

static int connect_agent(agent_client **ret)
{
	int r;

	if (!arg_connect) {
		agentctl_error("no agent address: use --connect unix:PATH or vsock:CID:PORT "
			       "(or set SBX_AGENT_ADDR)");
		return -EINVAL;
	}
	r = agentctl_connect(arg_connect, arg_timeout_ms, -1, NULL, NULL, false, ret);
	if (r < 0)
		return r;
	agent_client_set_timeout(*ret, arg_timeout_ms);
	return 0;
}

/* Parse the options of a command with no options but --help. Returns
 * optind, or -1 with the exit code in *code. */
static int parse_plain(const struct command *cmd, int argc, char **argv, const char *shortopts,
		       const struct option *extra,
		       int (*on_opt)(int opt, const char *arg, void *ud), void *ud, int *code)
{
	struct option opts[16];
	int n = 0, opt;

	for (; extra && extra[n].name && n < 14; n++)
		opts[n] = extra[n];
	opts[n++] = (struct option){"help", no_argument, NULL, 'h'};
	opts[n] = (struct option){0};
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		if (opt == 'h') {
			usage_of(cmd, stdout);
			*code = 0;
			return -1;
		}
		if (opt == '?' || opt == ':') {
			*code = usage_error(cmd, "bad option '%s'", argv[optind - 1]);
			return -1;
		}
		if (!on_opt || on_opt(opt, optarg, ud) < 0) {
			*code = usage_error(cmd, "bad option '%s'", argv[optind - 1]);
			return -1;
		}
	}
	return optind;
}

static const char *ftype_name(uint8_t t)
{
	switch (t) {
	case PROTO_FT_FILE:
		return "file";
	case PROTO_FT_DIR:
		return "dir";
	case PROTO_FT_SYMLINK:
		return "symlink";
	default:
		return "other";
	}
}

static char ftype_char(uint8_t t)
{
	switch (t) {
	case PROTO_FT_FILE:
		return '-';
	case PROTO_FT_DIR:
		return 'd';
	case PROTO_FT_SYMLINK:
		return 'l';
	default:
		return '?';
	}
}

static void mode_string(uint8_t type, uint32_t mode, char out[11])
{
	static const char rwx[] = "rwxrwxrwx";
	int i;

	out[0] = ftype_char(type);
	for (i = 0; i < 9; i++)
		out[i + 1] = (mode & (1u << (8 - i))) ? rwx[i] : '-';
	out[10] = 0;
}

static void time_string(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!localtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "%" PRId64, t);
}

/* ---- ping ----------------------------------------------------------------- */

static int ping_opt(int opt, const char *arg, void *ud)
{
	long *count = ud;
	char *end;

	if (opt != 'n')
		return -1;
	*count = strtol(arg, &end, 10);
	return (end == arg || *end || *count < 1 || *count > 1000000) ? -1 : 0;
}

static int cmd_ping(int argc, char **argv)
{
	static const struct option extra[] = {{"count", required_argument, NULL, 'n'}, {0}};
	const struct command *cmd = find_command("ping");
	agent_client *c = NULL;
	long count = 1, i;
	uint64_t rtt, best = UINT64_MAX, sum = 0;
	int r, code = 0, idx;

	idx = parse_plain(cmd, argc, argv, "n:h", extra, ping_opt, &count, &code);
	if (idx < 0)
		return code;
	if (idx != argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[idx]);
	if (connect_agent(&c) < 0)
		return 1;
	for (i = 0; i < count; i++) {
		r = agent_ping(c, &rtt);
		if (r < 0) {
			code = fail(c, r, "ping");
			break;
		}
		if (rtt < best)
			best = rtt;
		sum += rtt;
		if (!arg_json)
			printf("pong from %s: time=%.3f ms\n", agent_client_peer_software(c),
			       rtt / 1000.0);
	}
	if (code == 0 && arg_json)
		print_json(json_pack(
		    "{s:s, s:s, s:I, s:I, s:I}", "agent", agent_client_peer_software(c), "address",
		    arg_connect, "count", (json_int_t)count, "rtt_us",
		    (json_int_t)(sum / (uint64_t)count), "best_rtt_us", (json_int_t)best));
	agent_client_free(c);
	return code;
}

/* ---- info ------------------------------------------------------------------ */

static int cmd_info(int argc, char **argv)
{
	const struct command *cmd = find_command("info");
	struct agent_info i;
	agent_client *c = NULL;
	int r, code = 0, idx;

	idx = parse_plain(cmd, argc, argv, "+h", NULL, NULL, NULL, &code);
	if (idx < 0)
		return code;
	if (idx != argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[idx]);
	if (connect_agent(&c) < 0)
		return 1;
	r = agent_info(c, &i);
	if (r < 0) {
		code = fail(c, r, "info");
		agent_client_free(c);
		return code;
	}
	if (arg_json) {
		print_json(json_pack("{s:s, s:s, s:s, s:s, s:I, s:[f,f,f], s:I, s:I, s:i, s:i}",
				     "software", agent_client_peer_software(c), "version",
				     i.version, "hostname", i.hostname, "kernel", i.kernel,
				     "uptime_ms", (json_int_t)i.uptime_ms, "load", i.load[0],
				     i.load[1], i.load[2], "mem_total", (json_int_t)i.mem_total,
				     "mem_available", (json_int_t)i.mem_available, "ncpus",
				     (int)i.ncpus, "commands", (int)i.commands));
	} else {
		printf("agent:     %s\n", agent_client_peer_software(c));
		if (!strstr(agent_client_peer_software(c), i.version))
			printf("version:   %s\n", i.version);
		printf("hostname:  %s\n", i.hostname);
		printf("kernel:    %s\n", i.kernel);
		printf("uptime:    %.1f s\n", i.uptime_ms / 1000.0);
		printf("load:      %.2f %.2f %.2f\n", i.load[0], i.load[1], i.load[2]);
		printf("memory:    %" PRIu64 " MiB total, %" PRIu64 " MiB available\n",
		       i.mem_total >> 20, i.mem_available >> 20);
		printf("cpus:      %" PRIu32 "\n", i.ncpus);
		printf("commands:  %" PRIu32 " running\n", i.commands);
	}
	agent_info_release(&i);
	agent_client_free(c);
	return 0;
}

/* ---- exec ----------------------------------------------------------------- */

static const struct option exec_options[] = {
    {"tty", no_argument, NULL, 't'},	     {"stdin", no_argument, NULL, 'i'},
    {"env", required_argument, NULL, 'e'},   {"cwd", required_argument, NULL, 'w'},
    {"shell", required_argument, NULL, 'c'}, {"cmd-timeout", required_argument, NULL, 'T'},
    {"help", no_argument, NULL, 'h'},	     {0},
};

static int cmd_exec(int argc, char **argv)
{
	const struct command *cmd = find_command("exec");
	struct exec_opts o = {0};
	_cleanup_free_ const char **envv = NULL;
	_cleanup_close_ int sigfd = -EBADF;
	agent_client *c = NULL;
	size_t nenv = 0;
	int opt, code;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+tie:w:c:T:h", exec_options, NULL)) != -1) {
		if (opt == 'h') {
			usage_of(cmd, stdout);
			return 0;
		}
		code = agentctl_parse_exec_opt(opt, optarg, &o, &envv, &nenv);
		if (code < 0)
			return EXIT_USAGE;
		if (code == 0)
			return usage_error(cmd, "bad option '%s'", argv[optind - 1]);
	}
	if (o.shell && optind < argc)
		return usage_error(cmd, "give either --shell STRING or a command, not both");
	if (!o.shell && optind >= argc)
		return usage_error(cmd, "no command given");
	if (!o.shell)
		o.argv = (const char *const *)argv + optind;
	sigfd = agentctl_signalfd();
	if (connect_agent(&c) < 0)
		return EXIT_TOOL;
	code = agentctl_exec(c, &o, sigfd);
	agent_client_free(c);
	return code;
}

/* ---- put / get ---------------------------------------------------------------- */

static void print_transfer(const char *verb, const char *from, const char *to, uint64_t bytes,
			   double secs)
{
	double mib = bytes / 1048576.0;

	if (arg_json)
		print_json(json_pack(
		    "{s:s, s:s, s:s, s:o, s:f}", "op", verb, "from", from, "to", to, "bytes",
		    bytes == UINT64_MAX ? json_null() : json_integer((json_int_t)bytes), "seconds",
		    secs));
	else if (arg_verbose && bytes != UINT64_MAX)
		fprintf(stderr, "%s %s -> %s: %" PRIu64 " bytes in %.3f s (%.1f MiB/s)\n", verb,
			from, to, bytes, secs, secs > 0 ? mib / secs : 0.0);
	else if (arg_verbose)
		fprintf(stderr, "%s %s -> %s: done in %.3f s\n", verb, from, to, secs);
}

struct put_args {
	uint32_t mode;
	bool mode_set, mkdirs;
};

static int put_opt(int opt, const char *arg, void *ud)
{
	struct put_args *a = ud;
	char *end;
	unsigned long m;

	switch (opt) {
	case 'm':
		errno = 0;
		m = strtoul(arg, &end, 8);
		if (errno || end == arg || *end || m > 07777)
			return -1;
		a->mode = (uint32_t)m;
		a->mode_set = true;
		return 0;
	case 'p':
		a->mkdirs = true;
		return 0;
	default:
		return -1;
	}
}

static int cmd_put(int argc, char **argv)
{
	static const struct option extra[] = {
	    {"mode", required_argument, NULL, 'm'},
	    {"mkdirs", no_argument, NULL, 'p'},
	    {0},
	};
	const struct command *cmd = find_command("put");
	struct put_args a = {0};
	_cleanup_close_ int fd = -EBADF;
	const char *local, *remote;
	agent_client *c = NULL;
	struct stat st;
	double t0;
	int r, code = 0, idx;

	idx = parse_plain(cmd, argc, argv, "m:ph", extra, put_opt, &a, &code);
	if (idx < 0)
		return code;
	if (argc - idx != 2)
		return usage_error(cmd, "want LOCAL and REMOTE");
	local = argv[idx];
	remote = argv[idx + 1];
	if (strcmp(local, "-") == 0) {
		fd = dup(STDIN_FILENO);
	} else {
		fd = open(local, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			agentctl_error("cannot open %s: %s", local, strerror(errno));
			return 1;
		}
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		agentctl_error("cannot read %s: %s", local, strerror(errno));
		return 1;
	}
	if (S_ISDIR(st.st_mode)) {
		agentctl_error("%s is a directory (put copies one file)", local);
		return 1;
	}
	if (!a.mode_set)
		a.mode = S_ISREG(st.st_mode) ? (st.st_mode & 07777) : 0644;
	if (connect_agent(&c) < 0)
		return 1;
	t0 = clock_mono_s();
	r = agent_put_file(c, fd, remote, a.mode, a.mkdirs);
	if (r < 0)
		code = fail(c, r, "put %s %s", local, remote);
	else
		print_transfer("put", local, remote,
			       S_ISREG(st.st_mode) ? (uint64_t)st.st_size : UINT64_MAX,
			       clock_mono_s() - t0);
	agent_client_free(c);
	return code;
}

static int cmd_get(int argc, char **argv)
{
	const struct command *cmd = find_command("get");
	_cleanup_free_ char *target = NULL, *tmp = NULL, *dircopy = NULL, *rcopy = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct agent_file_meta meta = {0};
	const char *remote, *local;
	agent_client *c = NULL;
	struct stat st;
	mode_t um;
	double t0;
	int r, code = 0, idx;

	idx = parse_plain(cmd, argc, argv, "h", NULL, NULL, NULL, &code);
	if (idx < 0)
		return code;
	if (argc - idx != 2)
		return usage_error(cmd, "want REMOTE and LOCAL");
	remote = argv[idx];
	local = argv[idx + 1];
	if (connect_agent(&c) < 0)
		return 1;
	t0 = clock_mono_s();
	if (strcmp(local, "-") == 0) {
		r = agent_get_file(c, remote, STDOUT_FILENO, &meta);
		if (r < 0)
			code = fail(c, r, "get %s", remote);
		else
			print_transfer("get", remote, "-", meta.size, clock_mono_s() - t0);
		agent_client_free(c);
		return code;
	}
	/* LOCAL may be a directory: keep the remote name */
	if (stat(local, &st) == 0 && S_ISDIR(st.st_mode)) {
		rcopy = strdup(remote);
		if (!rcopy || asprintf(&target, "%s/%s", local, basename(rcopy)) < 0)
			target = NULL;
	} else {
		target = strdup(local);
	}
	dircopy = target ? strdup(target) : NULL;
	if (!target || !dircopy ||
	    asprintf(&tmp, "%s/.%s.sbx-XXXXXX", dirname(dircopy), basename(target)) < 0) {
		tmp = NULL;
		agent_client_free(c);
		agentctl_error("out of memory");
		return 1;
	}
	/* basename() may have modified target in place with GNU? no: the
	 * GNU version does not; dirname() did modify dircopy only */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		agentctl_error("cannot create a temporary file beside %s: %s", target,
			       strerror(errno));
		agent_client_free(c);
		return 1;
	}
	r = agent_get_file(c, remote, fd, &meta);
	if (r < 0) {
		code = fail(c, r, "get %s", remote);
		goto out_unlink;
	}
	um = umask(0);
	umask(um);
	if (fchmod(fd, (meta.mode & 07777 ? meta.mode & 07777 : 0644) & ~um) < 0 || fsync(fd) < 0) {
		agentctl_error("cannot finish %s: %s", tmp, strerror(errno));
		code = 1;
		goto out_unlink;
	}
	if (rename(tmp, target) < 0) {
		agentctl_error("cannot rename %s to %s: %s", tmp, target, strerror(errno));
		code = 1;
		goto out_unlink;
	}
	print_transfer("get", remote, target, meta.size, clock_mono_s() - t0);
	agent_client_free(c);
	return 0;

out_unlink:
	(void)unlink(tmp);
	agent_client_free(c);
	return code;
}

/* ---- ls / stat ------------------------------------------------------------------ */

static int cmp_dirent(const void *a, const void *b)
{
	return strcmp(((const struct agent_dirent *)a)->name,
		      ((const struct agent_dirent *)b)->name);
}

static int cmd_ls(int argc, char **argv)
{
	const struct command *cmd = find_command("ls");
	struct agent_dirent *e = NULL;
	agent_client *c = NULL;
	size_t n = 0, i;
	char ms[11], ts[64];
	int r, code = 0, idx;

	idx = parse_plain(cmd, argc, argv, "h", NULL, NULL, NULL, &code);
	if (idx < 0)
		return code;
	if (argc - idx != 1)
		return usage_error(cmd, "want one PATH");
	if (connect_agent(&c) < 0)
		return 1;
	r = agent_list(c, argv[idx], &e, &n);
	if (r < 0) {
		code = fail(c, r, "ls %s", argv[idx]);
		agent_client_free(c);
		return code;
	}
	qsort(e, n, sizeof(*e), cmp_dirent);
	if (arg_json) {
		json_t *arr = json_array();

		for (i = 0; i < n && arr; i++) {
			snprintf(ms, sizeof(ms), "%04o", e[i].mode & 07777);
			json_array_append_new(
			    arr, json_pack("{s:s, s:s, s:I, s:s, s:I}", "name", e[i].name, "type",
					   ftype_name(e[i].type), "size", (json_int_t)e[i].size,
					   "mode", ms, "mtime", (json_int_t)e[i].mtime));
		}
		print_json(arr);
	} else {
		for (i = 0; i < n; i++) {
			mode_string(e[i].type, e[i].mode, ms);
			time_string(e[i].mtime, ts, sizeof(ts));
			printf("%s %12" PRIu64 " %s %s\n", ms, e[i].size, ts, e[i].name);
		}
	}
	agent_dirents_free(e, n);
	agent_client_free(c);
	return 0;
}

static int cmd_stat(int argc, char **argv)
{
	const struct command *cmd = find_command("stat");
	struct agent_stat st;
	agent_client *c = NULL;
	char ms[16], ts[64];
	int r, code = 0, idx;

	idx = parse_plain(cmd, argc, argv, "h", NULL, NULL, NULL, &code);
	if (idx < 0)
		return code;
	if (argc - idx != 1)
		return usage_error(cmd, "want one PATH");
	if (connect_agent(&c) < 0)
		return 1;
	r = agent_stat(c, argv[idx], &st);
	if (r < 0) {
		code = fail(c, r, "stat %s", argv[idx]);
		agent_client_free(c);
		return code;
	}
	snprintf(ms, sizeof(ms), "%04o", st.mode & 07777);
	if (arg_json) {
		json_t *j =
		    json_pack("{s:s, s:s, s:I, s:s, s:i, s:i, s:I}", "path", argv[idx], "type",
			      ftype_name(st.type), "size", (json_int_t)st.size, "mode", ms, "uid",
			      (int)st.uid, "gid", (int)st.gid, "mtime", (json_int_t)st.mtime);

		if (j && st.link)
			json_object_set_new(j, "link", json_string(st.link));
		print_json(j);
	} else {
		time_string(st.mtime, ts, sizeof(ts));
		printf("path:  %s\n", argv[idx]);
		printf("type:  %s%s%s\n", ftype_name(st.type), st.link ? " -> " : "",
		       st.link ? st.link : "");
		printf("size:  %" PRIu64 "\n", st.size);
		printf("mode:  %s\n", ms);
		printf("owner: %" PRIu32 ":%" PRIu32 "\n", st.uid, st.gid);
		printf("mtime: %s\n", ts);
	}
	agent_stat_release(&st);
	agent_client_free(c);
	return 0;
}

/* ---- mkdir / rm / shutdown -------------------------------------------------------- */

struct flag_args {
	bool flag;
	uint32_t mode;
};

static int flag_opt(int opt, const char *arg, void *ud)
{
	struct flag_args *a = ud;
	char *end;
	unsigned long m;

	switch (opt) {
	case 'p':
	case 'r':
		a->flag = true;
		return 0;
	case 'm':
		m = strtoul(arg, &end, 8);
		if (end == arg || *end || m > 07777)
			return -1;
		a->mode = (uint32_t)m;
		return 0;
	default:
		return -1;
	}
}

static int print_ok(void)
{
	if (arg_json)
		print_json(json_pack("{s:b}", "ok", 1));
	return 0;
}

static int cmd_mkdir(int argc, char **argv)
{
	static const struct option extra[] = {
	    {"parents", no_argument, NULL, 'p'},
	    {"mode", required_argument, NULL, 'm'},
	    {0},
	};
	const struct command *cmd = find_command("mkdir");
	struct flag_args a = {0};
	agent_client *c = NULL;
	int r, code = 0, idx;

	idx = parse_plain(cmd, argc, argv, "pm:h", extra, flag_opt, &a, &code);
	if (idx < 0)
		return code;
	if (argc - idx != 1)
		return usage_error(cmd, "want one PATH");
	if (connect_agent(&c) < 0)
		return 1;
	r = agent_mkdir(c, argv[idx], a.mode, a.flag);
	code = r < 0 ? fail(c, r, "mkdir %s", argv[idx]) : print_ok();
	agent_client_free(c);
	return code;
}

static int cmd_rm(int argc, char **argv)
{
	static const struct option extra[] = {{"recursive", no_argument, NULL, 'r'}, {0}};
	const struct command *cmd = find_command("rm");
	struct flag_args a = {0};
	agent_client *c = NULL;
	int r, code = 0, idx;

	idx = parse_plain(cmd, argc, argv, "rh", extra, flag_opt, &a, &code);
	if (idx < 0)
		return code;
	if (argc - idx != 1)
		return usage_error(cmd, "want one PATH");
	if (connect_agent(&c) < 0)
		return 1;
	r = agent_remove(c, argv[idx], a.flag);
	code = r < 0 ? fail(c, r, "rm %s", argv[idx]) : print_ok();
	agent_client_free(c);
	return code;
}

static int cmd_shutdown(int argc, char **argv)
{
	static const struct option extra[] = {{"reboot", no_argument, NULL, 'r'}, {0}};
	const struct command *cmd = find_command("shutdown");
	struct flag_args a = {0};
	agent_client *c = NULL;
	int r, code = 0, idx;

	idx = parse_plain(cmd, argc, argv, "rh", extra, flag_opt, &a, &code);
	if (idx < 0)
		return code;
	if (argc != idx)
		return usage_error(cmd, "unexpected argument '%s'", argv[idx]);
	if (connect_agent(&c) < 0)
		return 1;
	r = agent_shutdown(c, a.flag);
	code = r < 0 ? fail(c, r, "shutdown") : print_ok();
	agent_client_free(c);
	return code;
}

/* ---- table and main ------------------------------------------------------------------- */

static const struct command commands[] = {
    {"ping", cmd_ping, "ping [--count N]",
     "Send PING and print the round-trip time.\n\n"
     "  -n, --count N    send N pings (default 1)\n",
     true},
    {"info", cmd_info, "info",
     "Print what the agent reports: version, hostname, kernel, uptime, load,\n"
     "memory, CPUs and running commands.\n",
     true},
    {"exec", cmd_exec,
     "exec [--tty] [--stdin] [--env K=V]... [--cwd DIR] [--cmd-timeout S] -- CMD [ARG...]\n"
     "       sbx-agentctl [GLOBAL OPTIONS] exec [OPTIONS] --shell 'SHELL COMMAND'",
     "Run a command in the guest. Its stdout and stderr stream to ours; the exit\n"
     "code is the command's (128+N when killed by signal N; 125..127: see below).\n\n"
     "  -t, --tty             run it on a pseudo-terminal; a local terminal is put in\n"
     "                        raw mode, its size follows (SIGWINCH), and stdin is\n"
     "                        forwarded when it is a terminal\n"
     "  -i, --stdin           forward our stdin (with back-pressure); otherwise the\n"
     "                        command's stdin is /dev/null\n"
     "  -e, --env K=V         set an environment variable (repeatable); any --env\n"
     "                        replaces the agent's default environment\n"
     "  -w, --cwd DIR         working directory (default /)\n"
     "  -c, --shell STRING    run STRING with /bin/sh -c\n"
     "  -T, --cmd-timeout S   kill the command (SIGKILL) after S seconds\n\n"
     "SIGINT/SIGTERM/SIGHUP are forwarded to the command; the second one sends\n"
     "SIGKILL, the third gives up waiting. Exit codes of sbx-agentctl itself: 125\n"
     "(it or the agent failed), 126 (cannot execute), 127 (command not found).\n",
     true},
    {"put", cmd_put, "put [--mode MODE] [--mkdirs] LOCAL REMOTE",
     "Copy the local file LOCAL ('-' for stdin) to REMOTE in the guest. The agent\n"
     "writes a temporary file and renames it, so REMOTE is replaced atomically.\n\n"
     "  -m, --mode MODE    permission bits, octal (default: LOCAL's, 0644 for stdin)\n"
     "  -p, --mkdirs       create missing parent directories\n",
     true},
    {"get", cmd_get, "get REMOTE LOCAL",
     "Copy REMOTE from the guest to LOCAL ('-' for stdout; a directory keeps the\n"
     "remote name). LOCAL is written to a temporary file beside it and renamed\n"
     "when complete, so it is never left half-written.\n",
     true},
    {"ls", cmd_ls, "ls PATH",
     "List a directory: type and permissions, size, modification time, name.\n", true},
    {"stat", cmd_stat, "stat PATH", "Show type, size, mode, owner and mtime of PATH.\n", true},
    {"mkdir", cmd_mkdir, "mkdir [-p] [--mode MODE] PATH",
     "Create a directory.\n\n"
     "  -p, --parents     create missing parents too, and accept an existing one\n"
     "  -m, --mode MODE   permission bits, octal (default 0755)\n",
     true},
    {"rm", cmd_rm, "rm [-r] PATH",
     "Remove a file or an empty directory.\n\n"
     "  -r, --recursive   remove a directory tree\n",
     true},
    {"shutdown", cmd_shutdown, "shutdown [--reboot]",
     "Ask the agent to power the guest off (or reboot it with --reboot).\n", true},
    {"run", agentctl_run,
     "run [--image DIR] [--vcpus N] [--memory MIB] [--stdin] [--tty] [--timeout S]\n"
     "       [--boot-timeout S] [--keep] [--state-dir DIR] [--env K=V]... [--cwd DIR]\n"
     "       -- CMD [ARG...]",
     "Boot a throwaway VM, run one command in it, destroy the VM (run --help).\n", false},
};

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: sbx-agentctl [GLOBAL OPTIONS] COMMAND [ARGS]\n\n"
		   "Talk to one sbx-agent directly, or boot a throwaway VM and run a command.\n\n"
		   "Global options:\n"
		   "  -C, --connect ADDR   agent address: unix:PATH or vsock:CID:PORT\n"
		   "                       (default: $SBX_AGENT_ADDR)\n"
		   "  -j, --json           machine-readable JSON output\n"
		   "      --timeout S      connect timeout, and how long a request may go\n"
		   "                       unanswered (default 30)\n"
		   "  -v, --verbose        more detail on stderr (twice: debug log)\n"
		   "  -h, --help           this help; COMMAND --help for a command's\n\n"
		   "Commands:\n");
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %s\n", commands[i].usage);
	fprintf(f, "\nSee docs/agentctl.md.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"connect", required_argument, NULL, 'C'}, {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 'O'}, {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},	       {0},
	};
	const struct command *cmd;
	char *end;
	double d;
	int opt;

	signal(SIGPIPE, SIG_IGN);
	arg_connect = getenv("SBX_AGENT_ADDR");
	if (arg_connect && !*arg_connect)
		arg_connect = NULL;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+C:jvh", opts, NULL)) != -1) {
		switch (opt) {
		case 'C':
			arg_connect = optarg;
			break;
		case 'j':
			arg_json = true;
			break;
		case 'O':
			errno = 0;
			d = strtod(optarg, &end);
			if (errno || end == optarg || *end || d <= 0 || d > 86400) {
				agentctl_error("bad --timeout '%s' (seconds)", optarg);
				return EXIT_USAGE;
			}
			arg_timeout_ms = (int)(d * 1000);
			break;
		case 'v':
			arg_verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			agentctl_error("bad option '%s'", argv[optind - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	log_set_level(arg_verbose >= 2 ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = find_command(argv[optind]);
	if (!cmd) {
		agentctl_error("unknown command '%s'", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return cmd->fn(argc - optind, argv + optind);
}
