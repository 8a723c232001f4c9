/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_boxes.c - the control-plane commands: create, ls, status, rename, rm.
 *
 * Each is one or a few requests under /api/v2/sandboxes/boxes. Names go
 * to stdout (so NAME=$(sbx create) works); details with -v; the API's
 * JSON as it came with --json.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "tools/sbx.h"
#include "tools/sbx_http.h"
#include "tools/sbx_text.h"

#define CREATE_WAIT_DEFAULT_S 120
#define DELETE_TIMEOUT_S 180

static void print_json(const json_t *j)
{
	char *t = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (t)
		printf("%s\n", t);
	free(t);
}

static json_int_t jint(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static void format_created(const json_t *box, char *buf, size_t len)
{
	const char *s = sbx_json_str(box, "created_at", NULL);
	time_t t;

	if (!s || sbx_parse_time(s, &t) < 0)
		snprintf(buf, len, "%s", s ? s : "-");
	else
		sbx_format_age(t, time(NULL), buf, len);
}

static void print_details(const json_t *box)
{
	const char *msg = sbx_json_str(box, "status_message", NULL);
	json_t *labels = json_object_get(box, "labels");
	char mem[32], disk[32], age[32];

	sbx_format_bytes(jint(box, "mem_bytes"), mem, sizeof(mem));
	sbx_format_bytes(jint(box, "fs_capacity_bytes"), disk, sizeof(disk));
	format_created(box, age, sizeof(age));
	printf("name:       %s\n", sbx_json_str(box, "name", "-"));
	printf("id:         %s\n", sbx_json_str(box, "id", "-"));
	printf("status:     %s%s%s\n", sbx_json_str(box, "status", "-"), msg ? ": " : "",
	       msg ? msg : "");
	printf("created:    %s (%s)\n", sbx_json_str(box, "created_at", "-"), age);
	printf("resources:  %" JSON_INTEGER_FORMAT " vCPU, %s memory, %s disk\n",
	       jint(box, "vcpus"), mem, disk);
	printf("snapshot:   %s\n", sbx_json_str(box, "snapshot_id", "(default image)"));
	printf("dataplane:  %s\n", sbx_json_str(box, "dataplane_url", "-"));
	if (json_object_size(labels)) {
		const char *k;
		json_t *v;
		bool first = true;

		printf("labels:     ");
		json_object_foreach(labels, k, v)
		{
			printf("%s%s=%s", first ? "" : ", ", k, json_string_value(v));
			first = false;
		}
		printf("\n");
	}
}

/* ---- create ------------------------------------------------------------------ */

static int add_label(json_t *labels, const char *kv)
{
	const char *eq = strchr(kv, '=');
	_cleanup_free_ char *k = NULL;

	if (!eq || eq == kv)
		return -EINVAL;
	k = strndup(kv, (size_t)(eq - kv));
	if (!k || json_object_set_new(labels, k, json_string(eq + 1)) < 0)
		return -EINVAL;
	return 0;
}

/* A snapshot reference: an id (UUID) or a name. */
static bool looks_like_uuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-'
							      : !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

int sbx_cmd_create(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"name", required_argument, NULL, 'n'},	{"snapshot", required_argument, NULL, 's'},
	    {"restore-memory", no_argument, NULL, 'R'}, {"vcpus", required_argument, NULL, 'c'},
	    {"memory", required_argument, NULL, 'm'},	{"disk", required_argument, NULL, 'd'},
	    {"label", required_argument, NULL, 'l'},	{"wait", no_argument, NULL, 'W'},
	    {"no-wait", no_argument, NULL, 'N'},	{"timeout", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},		{"verbose", no_argument, NULL, 'v'},
	    {"idle-ttl", required_argument, NULL, 'I'}, {"lifetime", required_argument, NULL, 'L'},
	    {"help", no_argument, NULL, 'h'},		{0},
	};
	json_t *body = json_object(), *labels = json_object();
	long timeout = CREATE_WAIT_DEFAULT_S, n;
	bool wait = true, json = false;
	struct sbx_resp r = {0};
	const char *name = NULL;
	int64_t mib;
	int opt, rc, code = SBX_EXIT_FAIL;

	if (!body || !labels)
		goto out_oom;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "n:s:c:m:d:l:t:jvh", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			name = optarg;
			json_object_set_new(body, "name", json_string(optarg));
			break;
		case 's':
			json_object_set_new(
			    body, looks_like_uuid(optarg) ? "snapshot_id" : "snapshot_name",
			    json_string(optarg));
			break;
		case 'R':
			json_object_set_new(body, "restore_memory", json_true());
			break;
		case 'c':
			if (sbx_parse_long(optarg, 1, 1024, &n) < 0) {
				code = sbx_usage_error(
				    cmd, "--vcpus wants a whole number, not '%s'", optarg);
				goto out;
			}
			json_object_set_new(body, "vcpus", json_integer(n));
			break;
		case 'm':
		case 'd': {
			/* --disk counts in GiB unless a unit says otherwise */
			bool gib = opt == 'd' && !strpbrk(optarg, "MmGg");

			if (sbx_parse_mib(optarg, &mib) < 0 || (gib && mib > (1 << 20))) {
				code =
				    sbx_usage_error(cmd, "--%s wants a size such as %s, not '%s'",
						    opt == 'm' ? "memory" : "disk",
						    opt == 'm' ? "512 or 2G" : "4 or 4G", optarg);
				goto out;
			}
			if (gib)
				mib *= 1024;
			json_object_set_new(body, opt == 'm' ? "mem_bytes" : "fs_capacity_bytes",
					    json_integer((json_int_t)mib << 20));
			break;
		}
		case 'l':
			if (add_label(labels, optarg) < 0) {
				code = sbx_usage_error(cmd, "--label wants KEY=VALUE, not '%s'",
						       optarg);
				goto out;
			}
			break;
		case 'I':
		case 'L':
			if (sbx_parse_long(optarg, 0, 10L * 365 * 86400, &n) < 0) {
				code =
				    sbx_usage_error(cmd, "--%s wants seconds (0: off), not '%s'",
						    opt == 'I' ? "idle-ttl" : "lifetime", optarg);
				goto out;
			}
			json_object_set_new(
			    body, opt == 'I' ? "idle_ttl_seconds" : "max_lifetime_seconds",
			    json_integer(n));
			break;
		case 'W':
			wait = true;
			break;
		case 'N':
			wait = false;
			break;
		case 't':
			if (sbx_parse_long(optarg, 1, 3600, &timeout) < 0) {
				code = sbx_usage_error(cmd, "--timeout wants 1 to 3600 seconds");
				goto out;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'v':
			arg_verbose++;
			break;
		case 'h':
			sbx_usage(cmd, stdout);
			code = SBX_EXIT_OK;
			goto out;
		default:
			code = sbx_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
			goto out;
		}
	}
	if (optind < argc) {
		code = sbx_usage_error(cmd, "unexpected argument '%s' (the name goes after --name)",
				       argv[optind]);
		goto out;
	}
	if (json_object_get(body, "restore_memory") && !json_object_get(body, "snapshot_id") &&
	    !json_object_get(body, "snapshot_name")) {
		code = sbx_usage_error(cmd, "--restore-memory needs --snapshot");
		goto out;
	}
	if (json_object_size(labels))
		json_object_set(body, "labels", labels);
	json_object_set_new(body, "wait_for_ready", json_boolean(wait));
	if (wait)
		json_object_set_new(body, "timeout", json_integer(timeout));
	if (sbx_http_need_key() < 0) {
		code = sbx_error_print(SBX_EXIT_FAIL);
		goto out;
	}
	rc = sbx_api_call("POST", "/boxes", body, wait ? timeout + 30 : 60, &r);
	if (rc == 0)
		rc = sbx_resp_check(&r);
	if (rc == -ETIMEDOUT && r.status == 408) {
		sbx_error_set_final(rc,
				    "sandbox%s%s%s did not become ready within %ld s; it is still "
				    "starting (see 'sbx status %s')",
				    name ? " '" : "", name ? name : "", name ? "'" : "", timeout,
				    name ? name : "NAME");
	}
	if (rc < 0) {
		sbx_error_wrap(rc, "cannot create the sandbox%s%s%s", name ? " '" : "",
			       name ? name : "", name ? "'" : "");
		code = sbx_error_print(SBX_EXIT_FAIL);
		goto out;
	}
	if (json)
		print_json(r.json);
	else if (arg_verbose)
		print_details(r.json);
	else
		printf("%s\n", sbx_json_str(r.json, "name", "?"));
	code = SBX_EXIT_OK;
	goto out;
out_oom:
	err_set(-ENOMEM, "out of memory");
	code = sbx_error_print(SBX_EXIT_FAIL);
out:
	sbx_resp_release(&r);
	json_decref(labels);
	json_decref(body);
	return code;
}

/* ---- ls ---------------------------------------------------------------------- */

struct column {
	const char *title;
	int width;
};

int sbx_cmd_ls(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"quiet", no_argument, NULL, 'q'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	struct column cols[] = {{"NAME", 4},  {"STATUS", 6}, {"CREATED", 7},
				{"VCPUS", 5}, {"MEMORY", 6}, {"DISK", 4}};
	struct sbx_flags f = {0};
	struct sbx_resp r;
	json_t *list, *box;
	size_t i;
	int code;

	if (sbx_parse_flags(cmd, argc, argv, "jqh", opts, &f, &code) < 0)
		return code;
	if (optind < argc)
		return sbx_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (sbx_http_need_key() < 0 || sbx_api_call("GET", "/boxes", NULL, 60, &r) < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	if (sbx_resp_check(&r) < 0) {
		sbx_error_wrap(-EIO, "cannot list the sandboxes");
		sbx_resp_release(&r);
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	list = json_object_get(r.json, "sandboxes");
	if (!list)
		list = json_object_get(r.json, "items");
	if (f.json) {
		json_t *empty = json_array();

		print_json(list ? list : empty);
		json_decref(empty);
		sbx_resp_release(&r);
		return SBX_EXIT_OK;
	}
	/* two passes: widths, then rows */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1 && !f.quiet)
			printf("%-*s  %-*s  %-*s  %*s  %*s  %*s\n", cols[0].width, cols[0].title,
			       cols[1].width, cols[1].title, cols[2].width, cols[2].title,
			       cols[3].width, cols[3].title, cols[4].width, cols[4].title,
			       cols[5].width, cols[5].title);
		json_array_foreach(list, i, box)
		{
			char cells[6][96];

			snprintf(cells[0], sizeof(cells[0]), "%s", sbx_json_str(box, "name", "?"));
			snprintf(cells[1], sizeof(cells[1]), "%s",
				 sbx_json_str(box, "status", "?"));
			format_created(box, cells[2], sizeof(cells[2]));
			snprintf(cells[3], sizeof(cells[3]), "%" JSON_INTEGER_FORMAT,
				 jint(box, "vcpus"));
			sbx_format_bytes(jint(box, "mem_bytes"), cells[4], sizeof(cells[4]));
			sbx_format_bytes(jint(box, "fs_capacity_bytes"), cells[5],
					 sizeof(cells[5]));
			if (f.quiet) {
				if (pass == 1)
					printf("%s\n", cells[0]);
				continue;
			}
			for (int c = 0; pass == 0 && c < 6; c++)
				if ((int)strlen(cells[c]) > cols[c].width)
					cols[c].width = (int)strlen(cells[c]);
			if (pass == 1)
				printf("%-*s  %-*s  %-*s  %*s  %*s  %*s\n", cols[0].width, cells[0],
				       cols[1].width, cells[1], cols[2].width, cells[2],
				       cols[3].width, cells[3], cols[4].width, cells[4],
				       cols[5].width, cells[5]);
		}
	}
	sbx_resp_release(&r);
	return SBX_EXIT_OK;
}

/* ---- status ---------------------------------------------------------------------- */

int sbx_cmd_status(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"verbose", no_argument, NULL, 'v'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	_cleanup_free_ char *esc = NULL, *path = NULL;
	struct sbx_flags f = {0};
	struct sbx_resp r;
	json_t *box = NULL;
	const char *msg;
	int code;

	if (sbx_parse_flags(cmd, argc, argv, "jvh", opts, &f, &code) < 0)
		return code;
	if (argc - optind != 1)
		return sbx_usage_error(cmd, "give one sandbox name");
	if (sbx_http_need_key() < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	if (f.json || arg_verbose) {
		if (sbx_box_get(argv[optind], &box) < 0)
			return sbx_error_print(SBX_EXIT_FAIL);
		if (f.json)
			print_json(box);
		else
			print_details(box);
		json_decref(box);
		return SBX_EXIT_OK;
	}
	esc = sbx_url_escape(argv[optind]);
	if (!esc || asprintf(&path, "/boxes/%s/status", esc) < 0) {
		err_set(-ENOMEM, "out of memory");
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	if (sbx_api_call("GET", path, NULL, 60, &r) < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	if (r.status == 404) {
		sbx_resp_release(&r);
		err_set(-ENOENT, "no sandbox named '%s'", argv[optind]);
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	if (sbx_resp_check(&r) < 0) {
		sbx_resp_release(&r);
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	msg = sbx_json_str(r.json, "status_message", NULL);
	printf("%s%s%s\n", sbx_json_str(r.json, "status", "unknown"), msg ? ": " : "",
	       msg ? msg : "");
	sbx_resp_release(&r);
	return SBX_EXIT_OK;
}

/* ---- rename -------------------------------------------------------------------- */

int sbx_cmd_rename(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	_cleanup_free_ char *esc = NULL, *path = NULL;
	struct sbx_resp r;
	json_t *body;
	int opt, rc;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			sbx_usage(cmd, stdout);
			return SBX_EXIT_OK;
		}
		return sbx_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
	}
	if (argc - optind != 2)
		return sbx_usage_error(cmd, "give the old and the new name");
	if (sbx_http_need_key() < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	esc = sbx_url_escape(argv[optind]);
	body = json_pack("{s:s}", "name", argv[optind + 1]);
	if (!esc || !body || asprintf(&path, "/boxes/%s", esc) < 0) {
		json_decref(body);
		err_set(-ENOMEM, "out of memory");
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	rc = sbx_api_call("PATCH", path, body, 60, &r);
	json_decref(body);
	if (rc < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	if (r.status == 404)
		rc = sbx_error_set_final(-ENOENT, "no sandbox named '%s'", argv[optind]);
	else
		rc = sbx_resp_check(&r);
	sbx_resp_release(&r);
	if (rc < 0) {
		sbx_error_wrap(rc, "cannot rename '%s' to '%s'", argv[optind], argv[optind + 1]);
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	if (arg_verbose)
		fprintf(stderr, "sbx: renamed '%s' to '%s'\n", argv[optind], argv[optind + 1]);
	return SBX_EXIT_OK;
}

/* ---- rm ------------------------------------------------------------------------ */

int sbx_cmd_rm(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {0}};
	struct sbx_flags f = {0};
	int code = SBX_EXIT_OK;

	if (sbx_parse_flags(cmd, argc, argv, "fh", opts, &f, &code) < 0)
		return code;
	if (optind >= argc)
		return sbx_usage_error(cmd, "give at least one sandbox name");
	if (sbx_http_need_key() < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	for (int i = optind; i < argc; i++) {
		_cleanup_free_ char *esc = sbx_url_escape(argv[i]), *path = NULL;
		struct sbx_resp r;
		int rc;

		if (!esc || asprintf(&path, "/boxes/%s", esc) < 0) {
			err_set(-ENOMEM, "out of memory");
			return sbx_error_print(SBX_EXIT_FAIL);
		}
		rc = sbx_api_call("DELETE", path, NULL, DELETE_TIMEOUT_S, &r);
		if (rc < 0)
			return sbx_error_print(SBX_EXIT_FAIL); /* sbxd is gone: stop here */
		if (r.status == 404 && f.force) {
			sbx_resp_release(&r);
			continue;
		}
		if (r.status == 404)
			rc = err_set(-ENOENT, "no sandbox named '%s'", argv[i]);
		else if (sbx_resp_check(&r) < 0)
			rc = sbx_error_wrap(-EIO, "cannot delete '%s'", argv[i]);
		sbx_resp_release(&r);
		if (rc < 0)
			code = sbx_error_print(SBX_EXIT_FAIL);
		else if (arg_verbose)
			fprintf(stderr, "sbx: deleted '%s'\n", argv[i]);
	}
	return code;
}

/* ---- stop, start ---------------------------------------------------------------- */

/* POST /boxes/NAME/stop or /start, then wait (sbxd answers after at most
 * ~50 s, possibly still stopping or starting) until it is `want`. */
static int stop_start_one(const char *name, bool stop, long timeout_s)
{
	const char *want = stop ? "stopped" : "ready";
	_cleanup_free_ char *esc = sbx_url_escape(name), *path = NULL;
	uint64_t t0;
	struct sbx_resp r;
	json_t *body = json_object();
	int rc;

	if (!esc || !body || asprintf(&path, "/boxes/%s/%s", esc, stop ? "stop" : "start") < 0) {
		json_decref(body);
		return err_set(-ENOMEM, "out of memory");
	}
	t0 = clock_mono_ms();
	rc = sbx_api_call("POST", path, body, timeout_s, &r);
	json_decref(body);
	if (rc < 0)
		return rc;
	if (r.status == 404)
		rc = sbx_error_set_final(-ENOENT, "no sandbox named '%s'", name);
	else
		rc = sbx_resp_check(&r);
	sbx_resp_release(&r);
	if (rc < 0)
		return sbx_error_wrap(rc, "cannot %s '%s'", stop ? "stop" : "start", name);
	for (;;) {
		json_t *box = NULL;
		const char *status, *msg;

		rc = sbx_box_get(name, &box);
		if (rc < 0)
			return rc;
		status = sbx_json_str(box, "status", "unknown");
		msg = sbx_json_str(box, "status_message", NULL);
		if (!strcmp(status, want)) {
			json_decref(box);
			return 0;
		}
		if (strcmp(status, stop ? "stopping" : "starting") ||
		    clock_mono_ms() - t0 >= (uint64_t)timeout_s * 1000) {
			rc = sbx_error_set_final(-EAGAIN, "sandbox '%s' is %s%s%s", name, status,
						 msg ? ": " : "", msg ? msg : "");
			json_decref(box);
			return rc;
		}
		json_decref(box);
		clock_sleep_ms(500);
	}
}

static int stop_start(const struct sbx_command *cmd, int argc, char **argv, bool stop)
{
	static const struct option opts[] = {
	    {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, {0}};
	long timeout_s = 180;
	int opt, code = SBX_EXIT_OK;
	char *end;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		if (opt == 't') {
			errno = 0;
			timeout_s = strtol(optarg, &end, 10);
			if (errno || *end || timeout_s <= 0 || timeout_s > 86400)
				return sbx_usage_error(cmd, "--timeout: give seconds (1-86400)");
		} else if (opt == 'h') {
			sbx_usage(cmd, stdout);
			return SBX_EXIT_OK;
		} else {
			return sbx_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return sbx_usage_error(cmd, "give at least one sandbox name");
	if (sbx_http_need_key() < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	for (int i = optind; i < argc; i++) {
		if (stop_start_one(argv[i], stop, timeout_s) < 0)
			code = sbx_error_print(SBX_EXIT_FAIL);
		else if (arg_verbose)
			fprintf(stderr, "sbx: %s '%s'\n", stop ? "stopped" : "started", argv[i]);
	}
	return code;
}

int sbx_cmd_stop(const struct sbx_command *cmd, int argc, char **argv)
{
	return stop_start(cmd, argc, argv, true);
}

int sbx_cmd_start(const struct sbx_command *cmd, int argc, char **argv)
{
	return stop_start(cmd, argc, argv, false);
}
