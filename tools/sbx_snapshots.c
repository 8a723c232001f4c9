/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_snapshots.c - `sbx snapshot create|ls|get|rm|pool`: snapshots of
 * sandboxes over /api/v2/sandboxes/snapshots (docs/cli.md).
 *
 * create captures a sandbox (filesystem, and memory with --memory) and
 * waits until the snapshot is ready, printing its id, so that
 * ID=$(sbx snapshot create BOX NAME) works. Snapshots are named by id or
 * by name everywhere.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/cleanup.h"
#include "tools/sbx.h"
#include "tools/sbx_http.h"
#include "tools/sbx_text.h"

#define SNAPSHOT_WAIT_DEFAULT_S 300

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

/* "filesystem" or "filesystem+memory" */
static void format_included(const json_t *s, char *buf, size_t len)
{
	json_t *inc = json_object_get(s, "included"), *v;
	size_t i, n = 0;

	buf[0] = '\0';
	json_array_foreach(inc, i, v)
	{
		int k = snprintf(buf + n, len - n, "%s%s", i ? "+" : "", json_string_value(v));

		if (k < 0 || (size_t)k >= len - n)
			break;
		n += (size_t)k;
	}
	if (!buf[0])
		snprintf(buf, len, "filesystem");
}

static void format_age(const json_t *s, char *buf, size_t len)
{
	const char *c = sbx_json_str(s, "created_at", NULL);
	time_t t;

	if (!c || sbx_parse_time(c, &t) < 0)
		snprintf(buf, len, "%s", c ? c : "-");
	else
		sbx_format_age(t, time(NULL), buf, len);
}

static void print_details(const json_t *s)
{
	const char *msg = sbx_json_str(s, "status_message", NULL);
	char disk[32], mem[32], inc[64], age[32];

	sbx_format_bytes(jint(s, "fs_capacity_bytes"), disk, sizeof(disk));
	format_included(s, inc, sizeof(inc));
	format_age(s, age, sizeof(age));
	printf("name:       %s\n", sbx_json_str(s, "name", "-"));
	printf("id:         %s\n", sbx_json_str(s, "id", "-"));
	printf("status:     %s%s%s\n", sbx_json_str(s, "status", "-"), msg ? ": " : "",
	       msg ? msg : "");
	printf("created:    %s (%s)\n", sbx_json_str(s, "created_at", "-"), age);
	printf("contents:   %s", inc);
	if (json_integer_value(json_object_get(s, "memory_snapshot_size_bytes")) > 0) {
		sbx_format_bytes(jint(s, "memory_snapshot_size_bytes"), mem, sizeof(mem));
		printf(" (memory %s)", mem);
	}
	printf("\ndisk:       %s\n", disk);
	printf("image:      %s\n", sbx_json_str(s, "docker_image", "-"));
	printf("source:     %s\n", sbx_json_str(s, "source_sandbox_id", "(an image)"));
	printf("pool:       %" JSON_INTEGER_FORMAT " ready sandbox(es) kept\n",
	       jint(s, "pool_size"));
}

/* GET /snapshots/REF into *ret (a new reference). */
static int snapshot_get(const char *ref, json_t **ret)
{
	_cleanup_free_ char *esc = sbx_url_escape(ref), *path = NULL;
	struct sbx_resp r;
	int rc;

	if (!esc || asprintf(&path, "/snapshots/%s", esc) < 0)
		return err_set(-ENOMEM, "out of memory");
	rc = sbx_api_call("GET", path, NULL, 60, &r);
	if (rc < 0)
		return rc;
	if (r.status == 404)
		rc = sbx_error_set_final(-ENOENT, "no snapshot '%s'", ref);
	else
		rc = sbx_resp_check(&r);
	if (rc == 0)
		*ret = json_incref(r.json);
	sbx_resp_release(&r);
	return rc;
}

static int snap_create(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"memory", no_argument, NULL, 'M'},	       {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 't'}, {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},	       {0}};
	struct sbx_flags f = {.timeout = SNAPSHOT_WAIT_DEFAULT_S};
	_cleanup_free_ char *esc = NULL, *path = NULL, *id = NULL;
	struct sbx_resp r = {0};
	json_t *body, *s = NULL;
	time_t deadline;
	int code = SBX_EXIT_FAIL, rc;

	if (sbx_parse_flags(cmd, argc, argv, "Mjt:vh", opts, &f, &code) < 0)
		return code;
	if (argc - optind != 2)
		return sbx_usage_error(cmd, "snapshot create wants a sandbox and a snapshot name");
	if (sbx_http_need_key() < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	esc = sbx_url_escape(argv[optind]);
	body = json_pack("{s:s, s:b}", "name", argv[optind + 1], "include_memory", f.memory);
	if (!esc || !body || asprintf(&path, "/boxes/%s/snapshot", esc) < 0) {
		json_decref(body);
		err_set(-ENOMEM, "out of memory");
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	rc = sbx_api_call("POST", path, body, 120, &r);
	json_decref(body);
	if (rc == 0 && r.status == 404)
		rc = sbx_error_set_final(-ENOENT, "no sandbox named '%s'", argv[optind]);
	else if (rc == 0)
		rc = sbx_resp_check(&r);
	if (rc == 0 && !(id = strdup(sbx_json_str(r.json, "id", ""))))
		rc = err_set(-ENOMEM, "out of memory");
	sbx_resp_release(&r);
	if (rc < 0) {
		sbx_error_wrap(rc, "cannot capture sandbox '%s'", argv[optind]);
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	/* poll until it is ready or failed */
	deadline = time(NULL) + f.timeout;
	for (;;) {
		const char *st;

		json_decref(s);
		s = NULL;
		if (snapshot_get(id, &s) < 0) {
			sbx_error_wrap(-EIO, "snapshot %s", id);
			return sbx_error_print(SBX_EXIT_FAIL);
		}
		st = sbx_json_str(s, "status", "");
		if (!strcmp(st, "ready"))
			break;
		if (!strcmp(st, "failed")) {
			err_set(-EIO, "snapshot '%s' failed: %s", argv[optind + 1],
				sbx_json_str(s, "status_message", "no reason given"));
			json_decref(s);
			return sbx_error_print(SBX_EXIT_FAIL);
		}
		if (time(NULL) >= deadline) {
			err_set(-ETIMEDOUT,
				"snapshot '%s' (%s) is not ready after %ld s; it is still %s "
				"(see 'sbx snapshot get %s')",
				argv[optind + 1], id, f.timeout, st, id);
			json_decref(s);
			return sbx_error_print(SBX_EXIT_FAIL);
		}
		clock_sleep_ms(500);
	}
	if (f.json)
		print_json(s);
	else if (arg_verbose)
		print_details(s);
	else
		printf("%s\n", id);
	json_decref(s);
	return SBX_EXIT_OK;
}

static int snap_ls(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
					     {"quiet", no_argument, NULL, 'q'},
					     {"help", no_argument, NULL, 'h'},
					     {0}};
	struct sbx_flags f = {0};
	const char *titles[] = {"NAME", "ID", "STATUS", "CREATED", "CONTENTS", "DISK", "POOL"};
	int widths[7];
	struct sbx_resp r;
	json_t *list, *s;
	size_t i;
	int code = SBX_EXIT_FAIL;

	if (sbx_parse_flags(cmd, argc, argv, "jqh", opts, &f, &code) < 0)
		return code;
	if (optind < argc)
		return sbx_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (sbx_http_need_key() < 0 ||
	    sbx_api_call("GET", "/snapshots?limit=500", NULL, 60, &r) < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	if (sbx_resp_check(&r) < 0) {
		sbx_error_wrap(-EIO, "cannot list the snapshots");
		sbx_resp_release(&r);
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	list = json_object_get(r.json, "snapshots");
	if (f.json) {
		print_json(list ? list : json_object_get(r.json, "items"));
		sbx_resp_release(&r);
		return SBX_EXIT_OK;
	}
	for (int c = 0; c < 7; c++)
		widths[c] = (int)strlen(titles[c]);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1 && !f.quiet)
			printf("%-*s  %-*s  %-*s  %-*s  %-*s  %*s  %*s\n", widths[0], titles[0],
			       widths[1], titles[1], widths[2], titles[2], widths[3], titles[3],
			       widths[4], titles[4], widths[5], titles[5], widths[6], titles[6]);
		json_array_foreach(list, i, s)
		{
			char cells[7][96];

			snprintf(cells[0], sizeof(cells[0]), "%s", sbx_json_str(s, "name", "?"));
			snprintf(cells[1], sizeof(cells[1]), "%s", sbx_json_str(s, "id", "?"));
			snprintf(cells[2], sizeof(cells[2]), "%s", sbx_json_str(s, "status", "?"));
			format_age(s, cells[3], sizeof(cells[3]));
			format_included(s, cells[4], sizeof(cells[4]));
			sbx_format_bytes(jint(s, "fs_capacity_bytes"), cells[5], sizeof(cells[5]));
			snprintf(cells[6], sizeof(cells[6]), "%" JSON_INTEGER_FORMAT,
				 jint(s, "pool_size"));
			if (f.quiet) {
				if (pass == 1)
					printf("%s\n", cells[1]);
				continue;
			}
			for (int c = 0; pass == 0 && c < 7; c++)
				if ((int)strlen(cells[c]) > widths[c])
					widths[c] = (int)strlen(cells[c]);
			if (pass == 1)
				printf("%-*s  %-*s  %-*s  %-*s  %-*s  %*s  %*s\n", widths[0],
				       cells[0], widths[1], cells[1], widths[2], cells[2],
				       widths[3], cells[3], widths[4], cells[4], widths[5],
				       cells[5], widths[6], cells[6]);
		}
	}
	sbx_resp_release(&r);
	return SBX_EXIT_OK;
}

static int snap_get(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
	struct sbx_flags f = {0};
	json_t *s = NULL;
	int code = SBX_EXIT_FAIL;

	if (sbx_parse_flags(cmd, argc, argv, "jh", opts, &f, &code) < 0)
		return code;
	if (argc - optind != 1)
		return sbx_usage_error(cmd, "give one snapshot (an id or a name)");
	if (sbx_http_need_key() < 0 || snapshot_get(argv[optind], &s) < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	if (f.json)
		print_json(s);
	else
		print_details(s);
	json_decref(s);
	return SBX_EXIT_OK;
}

static int snap_rm(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {0}};
	struct sbx_flags f = {0};
	int code = SBX_EXIT_FAIL;

	if (sbx_parse_flags(cmd, argc, argv, "fh", opts, &f, &code) < 0)
		return code;
	if (optind >= argc)
		return sbx_usage_error(cmd, "give at least one snapshot (an id or a name)");
	if (sbx_http_need_key() < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	code = SBX_EXIT_OK;
	for (int i = optind; i < argc; i++) {
		_cleanup_free_ char *esc = sbx_url_escape(argv[i]), *path = NULL;
		struct sbx_resp r;
		int rc;

		if (!esc || asprintf(&path, "/snapshots/%s", esc) < 0) {
			err_set(-ENOMEM, "out of memory");
			return sbx_error_print(SBX_EXIT_FAIL);
		}
		if (sbx_api_call("DELETE", path, NULL, 180, &r) < 0)
			return sbx_error_print(SBX_EXIT_FAIL);
		rc = 0;
		if (r.status == 404 && f.force) {
			sbx_resp_release(&r);
			continue;
		}
		if (r.status == 404)
			rc = err_set(-ENOENT, "no snapshot '%s'", argv[i]);
		else if (sbx_resp_check(&r) < 0)
			rc = sbx_error_wrap(-EIO, "cannot delete snapshot '%s'", argv[i]);
		sbx_resp_release(&r);
		if (rc < 0)
			code = sbx_error_print(SBX_EXIT_FAIL);
		else if (arg_verbose)
			fprintf(stderr, "sbx: deleted snapshot '%s'\n", argv[i]);
	}
	return code;
}

static int snap_pool(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	struct sbx_flags f = {0};
	long size;
	_cleanup_free_ char *esc = NULL, *path = NULL;
	struct sbx_resp r;
	json_t *body;
	int code = SBX_EXIT_FAIL, rc;

	if (sbx_parse_flags(cmd, argc, argv, "h", opts, &f, &code) < 0)
		return code;
	if (argc - optind != 2 || sbx_parse_long(argv[optind + 1], 0, 1000, &size) < 0)
		return sbx_usage_error(cmd,
				       "snapshot pool wants a snapshot and a size (0 to stop)");
	if (sbx_http_need_key() < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	esc = sbx_url_escape(argv[optind]);
	body = json_pack("{s:i}", "size", (int)size);
	if (!esc || !body || asprintf(&path, "/snapshots/%s/pool", esc) < 0) {
		json_decref(body);
		err_set(-ENOMEM, "out of memory");
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	rc = sbx_api_call("PUT", path, body, 60, &r);
	json_decref(body);
	if (rc < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	if (r.status == 404)
		rc = sbx_error_set_final(-ENOENT, "no snapshot '%s'", argv[optind]);
	else
		rc = sbx_resp_check(&r);
	if (rc == 0)
		printf("pool of %s: %" JSON_INTEGER_FORMAT " ready now, size %" JSON_INTEGER_FORMAT
		       "\n",
		       argv[optind], jint(r.json, "ready"), jint(r.json, "size"));
	sbx_resp_release(&r);
	if (rc < 0) {
		sbx_error_wrap(rc, "cannot set the pool of '%s'", argv[optind]);
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	return SBX_EXIT_OK;
}

int sbx_cmd_snapshot(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(const struct sbx_command *, int, char **);
	} subs[] = {
	    {"create", snap_create}, {"ls", snap_ls},	  {"list", snap_ls},   {"get", snap_get},
	    {"rm", snap_rm},	     {"delete", snap_rm}, {"pool", snap_pool},
	};

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		sbx_usage(cmd, argc < 2 ? stderr : stdout);
		return argc < 2 ? SBX_EXIT_USAGE : SBX_EXIT_OK;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
		if (!strcmp(argv[1], subs[i].name))
			return subs[i].fn(cmd, argc - 1, argv + 1);
	return sbx_usage_error(cmd, "unknown snapshot command '%s'", argv[1]);
}
