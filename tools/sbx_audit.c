/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_audit.c - sbx audit NAME: the commands run in a sandbox, who ran them,
 * when, how long and how they ended (GET .../boxes/NAME/audit, all pages).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "tools/sbx.h"
#include "tools/sbx_http.h"

#define COMMAND_COLS 60

static void print_row(const json_t *e)
{
	const json_t *code = json_object_get(e, "exit_code");
	const json_t *dur = json_object_get(e, "duration_ms");
	const char *cmd = sbx_json_str(e, "command", "");
	char exit_s[16] = "-", dur_s[24] = "-";
	size_t n = strcspn(cmd, "\n");
	int cut = n > COMMAND_COLS ? COMMAND_COLS - 1 : (int)n;

	if (json_is_integer(code))
		snprintf(exit_s, sizeof(exit_s), "%" JSON_INTEGER_FORMAT, json_integer_value(code));
	if (json_is_integer(dur))
		snprintf(dur_s, sizeof(dur_s), "%.3fs", (double)json_integer_value(dur) / 1000.0);
	printf("%-6" JSON_INTEGER_FORMAT " %-24s %-12s %-5s %-10s %-8s %.*s%s\n",
	       json_integer_value(json_object_get(e, "seq")), sbx_json_str(e, "started_at", "-"),
	       sbx_json_str(e, "key", "-"), exit_s, dur_s, sbx_json_str(e, "outcome", "-"), cut,
	       cmd, (size_t)cut < strlen(cmd) ? "…" : "");
}

int sbx_cmd_audit(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {0}};
	_cleanup_free_ char *esc = NULL;
	json_t *all = NULL;
	json_int_t after = 0;
	struct sbx_flags f = {0};
	int ret = SBX_EXIT_FAIL;

	if (sbx_parse_flags(cmd, argc, argv, "jh", opts, &f, &ret) < 0)
		return ret;
	if (argc - optind != 1)
		return sbx_usage_error(cmd, "give one sandbox name");
	if (sbx_http_need_key() < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	esc = sbx_url_escape(argv[optind]);
	all = json_array();
	if (!esc || !all) {
		err_set(-ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		_cleanup_free_ char *path = NULL;
		struct sbx_resp r;
		const json_t *next;
		size_t i;
		json_t *e;

		if (asprintf(&path, "/boxes/%s/audit?limit=1000&after=%" JSON_INTEGER_FORMAT, esc,
			     after) < 0) {
			err_set(-ENOMEM, "out of memory");
			goto out;
		}
		if (sbx_api_call("GET", path, NULL, 60, &r) < 0)
			goto out;
		if (r.status == 404) {
			sbx_resp_release(&r);
			err_set(-ENOENT, "no sandbox named '%s'", argv[optind]);
			goto out;
		}
		if (sbx_resp_check(&r) < 0) {
			sbx_resp_release(&r);
			goto out;
		}
		json_array_foreach(json_object_get(r.json, "entries"), i, e)
		    json_array_append(all, e);
		next = json_object_get(r.json, "next_after");
		after = json_is_integer(next) ? json_integer_value(next) : 0;
		sbx_resp_release(&r);
		if (!after)
			break;
	}
	if (f.json) {
		char *text = json_dumps(all, JSON_INDENT(2));

		if (text)
			puts(text);
		free(text);
	} else {
		size_t i;
		json_t *e;

		printf("%-6s %-24s %-12s %-5s %-10s %-8s %s\n", "SEQ", "STARTED", "KEY", "EXIT",
		       "DURATION", "OUTCOME", "COMMAND");
		json_array_foreach(all, i, e) print_row(e);
	}
	ret = SBX_EXIT_OK;
out:
	json_decref(all);
	return ret == SBX_EXIT_OK ? ret : sbx_error_print(SBX_EXIT_FAIL);
}
