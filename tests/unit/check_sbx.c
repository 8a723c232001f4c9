/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_sbx.c - the pure parts of the sbx command-line tool, no server:
 *
 *  - "config": the config file's syntax, where settings come from, the
 *    permission rules, and "sbx config set"'s edits;
 *  - "args": NAME:PATH, shell quoting, sizes, names, times;
 *  - "urls": the API base from an endpoint, escaping, WebSocket URLs;
 *  - "api": error bodies read the way the langsmith client reads them;
 *  - "frames": the /execute/ws messages, exit codes, offsets and UTF-8
 *    boundaries of stdin.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "tools/sbx.h"
#include "tools/sbx_config.h"
#include "tools/sbx_frame.h"
#include "tools/sbx_http.h"
#include "tools/sbx_text.h"
#include "tools/sbx_ws.h"

LOG_DEFINE_STATE("check_sbx");

/* ======================= config ======================= */

static int parse_text(const char *text, struct sbx_config *c)
{
	*c = (struct sbx_config){0};
	return sbx_config_parse(text, strlen(text), "cfg", c);
}

START_TEST(test_config_parses_settings_comments_and_quotes)
{
	struct sbx_config c;

	ck_assert_int_eq(parse_text("# sbx\n\n  endpoint = http://h:1/ \n"
				    "api_key=\"sbx_abc\"\r\n",
				    &c),
			 0);
	ck_assert_str_eq(c.endpoint, "http://h:1/");
	ck_assert_str_eq(c.api_key, "sbx_abc");
	sbx_config_release(&c);
	ck_assert_int_eq(parse_text("api-key = k2\napi_key = k3", &c), 0);
	ck_assert_str_eq(c.api_key, "k3");
	ck_assert_ptr_null(c.endpoint);
	sbx_config_release(&c);
}
END_TEST

START_TEST(test_config_rejects_unknown_names_takes_empty_key)
{
	struct sbx_config c;

	/* as in sbxd's file: a misspelt setting is an error, not ignored */
	ck_assert_int_eq(parse_text("colour = blue\napi_key =\n", &c), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err_msg(), "cfg:1: unknown setting 'colour'"));
	sbx_config_release(&c);
	ck_assert_int_eq(parse_text("# a comment\n\napi_key =\n", &c), 0);
	ck_assert_ptr_null(c.api_key);
	sbx_config_release(&c);
}
END_TEST

START_TEST(test_config_rejects_lines_without_equals_naming_the_line)
{
	struct sbx_config c;

	ck_assert_int_eq(parse_text("endpoint = http://x\nnonsense\n", &c), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err_msg(), "cfg:2:"));
	sbx_config_release(&c);
	ck_assert_int_eq(parse_text("endpoint =\n", &c), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err_msg(), "endpoint is empty"));
	sbx_config_release(&c);
	ck_assert_int_eq(parse_text("= x\n", &c), -EINVAL);
	sbx_config_release(&c);
}
END_TEST

static char tmpdir[64];

static void write_cfg(const char *text, mode_t mode)
{
	char dir[128], path[160];
	int fd;

	strcpy(tmpdir, "/tmp/check_sbx.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dir, sizeof(dir), "%s/sbx", tmpdir);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/config", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
	setenv("XDG_CONFIG_HOME", tmpdir, 1);
	unsetenv("SBX_ENDPOINT");
	unsetenv("SBX_API_KEY");
}

static void cfg_teardown(void)
{
	char path[160];

	if (!tmpdir[0])
		return;
	snprintf(path, sizeof(path), "%s/sbx/config", tmpdir);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/sbx", tmpdir);
	(void)rmdir(path);
	(void)rmdir(tmpdir);
	tmpdir[0] = '\0';
}

START_TEST(test_config_flags_beat_environment_beat_file_beat_default)
{
	struct sbx_config c;

	write_cfg("endpoint = http://file:1\napi_key = filekey\n", 0600);
	ck_assert_int_eq(sbx_config_resolve(NULL, NULL, &c), 0);
	ck_assert_str_eq(c.endpoint, "http://file:1");
	ck_assert_str_eq(c.api_key, "filekey");
	ck_assert_str_eq(c.endpoint_from, "config file");
	sbx_config_release(&c);

	setenv("SBX_ENDPOINT", "http://env:2", 1);
	setenv("SBX_API_KEY", "envkey", 1);
	ck_assert_int_eq(sbx_config_resolve(NULL, NULL, &c), 0);
	ck_assert_str_eq(c.endpoint, "http://env:2");
	ck_assert_str_eq(c.api_key, "envkey");
	ck_assert_str_eq(c.api_key_from, "SBX_API_KEY");
	sbx_config_release(&c);

	ck_assert_int_eq(sbx_config_resolve("http://flag:3", "flagkey", &c), 0);
	ck_assert_str_eq(c.endpoint, "http://flag:3");
	ck_assert_str_eq(c.api_key, "flagkey");
	sbx_config_release(&c);

	unsetenv("SBX_ENDPOINT");
	unsetenv("SBX_API_KEY");
	setenv("XDG_CONFIG_HOME", "/nonexistent-sbx-dir", 1);
	ck_assert_int_eq(sbx_config_resolve(NULL, NULL, &c), 0);
	ck_assert_str_eq(c.endpoint, SBX_DEFAULT_ENDPOINT);
	ck_assert_str_eq(c.endpoint_from, "default");
	ck_assert_ptr_null(c.api_key);
	sbx_config_release(&c);
}
END_TEST

START_TEST(test_config_refuses_a_file_others_can_write)
{
	struct sbx_config c;

	write_cfg("api_key = k\n", 0622);
	ck_assert_int_eq(sbx_config_resolve(NULL, NULL, &c), -EPERM);
	ck_assert_ptr_nonnull(strstr(err_msg(), "chmod 600"));
	sbx_config_release(&c);
}
END_TEST

START_TEST(test_config_reads_a_file_others_can_read_with_a_warning)
{
	struct sbx_config c;

	log_set_level(LOG_LVL_ERROR);
	write_cfg("api_key = k\n", 0644);
	ck_assert_int_eq(sbx_config_resolve(NULL, NULL, &c), 0);
	ck_assert_str_eq(c.api_key, "k");
	sbx_config_release(&c);
}
END_TEST

START_TEST(test_config_does_not_read_the_file_when_flags_answer)
{
	struct sbx_config c;

	write_cfg("nonsense\n", 0622);
	ck_assert_int_eq(sbx_config_resolve("http://a:1", "k", &c), 0);
	sbx_config_release(&c);
}
END_TEST

START_TEST(test_config_edit_replaces_adds_and_removes)
{
	char *t;

	t = sbx_config_edit("# mine\nendpoint = http://a\napi-key = old\napi_key = dup\n",
			    "api_key", "new");
	ck_assert_str_eq(t, "# mine\nendpoint = http://a\napi_key = new\n");
	free(t);
	t = sbx_config_edit("endpoint = http://a", "api_key", "k");
	ck_assert_str_eq(t, "endpoint = http://a\napi_key = k\n");
	free(t);
	t = sbx_config_edit(NULL, "endpoint", "http://b");
	ck_assert_str_eq(t, "endpoint = http://b\n");
	free(t);
	t = sbx_config_edit("endpoint = http://a\napi_key = k\n", "api_key", NULL);
	ck_assert_str_eq(t, "endpoint = http://a\n");
	free(t);
	ck_assert_ptr_null(sbx_config_edit("", "colour", "x"));
}
END_TEST

START_TEST(test_config_masks_keys)
{
	char buf[32];

	ck_assert_str_eq(sbx_config_mask_key("sbx_abcdefghijklmnopqrstuvwxyz", buf),
			 "sbx_abcd...wxyz");
	ck_assert_str_eq(sbx_config_mask_key("short", buf), "shor...");
	ck_assert_str_eq(sbx_config_mask_key(NULL, buf), "(none)");
}
END_TEST

/* ======================= args ======================= */

static int remote(const char *arg, char **name, const char **path)
{
	*name = NULL;
	*path = NULL;
	return sbx_parse_remote(arg, name, path);
}

START_TEST(test_args_remote_is_name_colon_absolute_path)
{
	const char *path;
	char *name;

	ck_assert_int_eq(remote("box-1:/tmp/x y", &name, &path), 1);
	ck_assert_str_eq(name, "box-1");
	ck_assert_str_eq(path, "/tmp/x y");
	free(name);
	ck_assert_int_eq(remote("b:/a:b", &name, &path), 1);
	ck_assert_str_eq(path, "/a:b");
	free(name);
}
END_TEST

START_TEST(test_args_local_paths_stay_local)
{
	const char *path;
	char *name;

	ck_assert_int_eq(remote("file.txt", &name, &path), 0);
	ck_assert_int_eq(remote("./box:/x", &name, &path), 0);
	ck_assert_int_eq(remote("/abs/box:/x", &name, &path), 0);
	ck_assert_int_eq(remote("Box:/x", &name, &path), 0);
	ck_assert_int_eq(remote("-box:/x", &name, &path), 0);
	ck_assert_int_eq(remote(":/x", &name, &path), 0);
	ck_assert_int_eq(remote("-", &name, &path), 0);
	ck_assert_ptr_null(name);
}
END_TEST

START_TEST(test_args_remote_path_must_be_absolute)
{
	const char *path;
	char *name;

	ck_assert_int_eq(remote("box:tmp/x", &name, &path), -EINVAL);
	ck_assert_int_eq(remote("box:", &name, &path), -EINVAL);
	ck_assert_ptr_null(name);
}
END_TEST

START_TEST(test_args_names_follow_sbxd_rules)
{
	char long_name[65];

	ck_assert(sbx_name_valid("a", 1));
	ck_assert(sbx_name_valid("t-1", 3));
	ck_assert(!sbx_name_valid("", 0));
	ck_assert(!sbx_name_valid("-a", 2));
	ck_assert(!sbx_name_valid("a-", 2));
	ck_assert(!sbx_name_valid("a_b", 3));
	memset(long_name, 'a', 64);
	long_name[64] = '\0';
	ck_assert(sbx_name_valid(long_name, 63));
	ck_assert(!sbx_name_valid(long_name, 64));
}
END_TEST

START_TEST(test_args_shell_join_quotes_words)
{
	char *one[] = {"ls -l | wc -l"};
	char *many[] = {"sh", "-c", "echo 'hi' $HOME", "", "a/b.c"};
	char *t;

	t = sbx_shell_join(one, 1);
	ck_assert_str_eq(t, "ls -l | wc -l");
	free(t);
	t = sbx_shell_join(many, 5);
	ck_assert_str_eq(t, "sh -c 'echo '\\''hi'\\'' $HOME' '' a/b.c");
	free(t);
}
END_TEST

START_TEST(test_args_sizes_and_times)
{
	int64_t mib;
	time_t t;
	char buf[32];

	ck_assert_int_eq(sbx_parse_mib("512", &mib), 0);
	ck_assert_int_eq(mib, 512);
	ck_assert_int_eq(sbx_parse_mib("2G", &mib), 0);
	ck_assert_int_eq(mib, 2048);
	ck_assert_int_eq(sbx_parse_mib("3gib", &mib), 0);
	ck_assert_int_eq(mib, 3072);
	ck_assert_int_eq(sbx_parse_mib("0", &mib), -EINVAL);
	ck_assert_int_eq(sbx_parse_mib("12T", &mib), -EINVAL);
	ck_assert_int_eq(sbx_parse_mib("x", &mib), -EINVAL);

	sbx_format_bytes(536870912, buf, sizeof(buf));
	ck_assert_str_eq(buf, "512 MiB");
	sbx_format_bytes(1610612736, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1.5 GiB");
	sbx_format_bytes(800, buf, sizeof(buf));
	ck_assert_str_eq(buf, "800 B");

	ck_assert_int_eq(sbx_parse_time("2026-11-23T18:40:45.436Z", &t), 0);
	ck_assert_int_eq((long long)t, 1795459245LL);
	ck_assert_int_eq(sbx_parse_time("2026-11-23 18:40", &t), -EINVAL);
	sbx_format_age(1000, 1002, buf, sizeof(buf));
	ck_assert_str_eq(buf, "just now");
	sbx_format_age(1000, 1042, buf, sizeof(buf));
	ck_assert_str_eq(buf, "42s ago");
	sbx_format_age(0, 3 * 3600, buf, sizeof(buf));
	ck_assert_str_eq(buf, "3h ago");
	sbx_format_age(0, 90 * 60, buf, sizeof(buf));
	ck_assert_str_eq(buf, "90m ago");
	sbx_format_age(0, 3 * 86400, buf, sizeof(buf));
	ck_assert_str_eq(buf, "3d ago");
}
END_TEST

START_TEST(test_args_uuid_is_version_4)
{
	char a[37], b[37];

	ck_assert_int_eq(sbx_uuid(a), 0);
	ck_assert_int_eq(sbx_uuid(b), 0);
	ck_assert_int_eq(strlen(a), 36);
	ck_assert_int_eq(a[14], '4');
	ck_assert(strchr("89ab", a[19]));
	ck_assert_str_ne(a, b);
}
END_TEST

/* ======================= urls ======================= */

static void base_is(const char *endpoint, const char *want)
{
	char *b = sbx_api_base(endpoint);

	ck_assert_msg(b && !strcmp(b, want), "%s -> %s, not %s", endpoint, b ? b : "NULL", want);
	free(b);
}

START_TEST(test_urls_api_base_like_the_langsmith_client)
{
	base_is("http://h:8080", "http://h:8080/api/v2/sandboxes");
	base_is("http://h:8080/", "http://h:8080/api/v2/sandboxes");
	base_is("http://h:8080/api", "http://h:8080/api/v2/sandboxes");
	base_is("http://h:8080/api/v1/", "http://h:8080/api/v2/sandboxes");
	base_is("https://h/api/v2/sandboxes", "https://h/api/v2/sandboxes");
	base_is("http://h:8080/foo", "http://h:8080/foo/api/v2/sandboxes");
}
END_TEST

START_TEST(test_urls_api_base_refuses_other_schemes)
{
	ck_assert_ptr_null(sbx_api_base("ftp://h"));
	ck_assert_ptr_null(sbx_api_base("127.0.0.1:8080"));
	ck_assert_ptr_null(sbx_api_base("http://"));
	ck_assert_ptr_nonnull(strstr(err_msg(), "no host"));
}
END_TEST

START_TEST(test_urls_escape_all_but_unreserved)
{
	char *e = sbx_url_escape("/tmp/a b&c=d/é~x(!)");
	char *u = sbx_dataplane_file_url("http://h/dataplane/id", "download", "/x y");

	ck_assert_str_eq(e, "%2Ftmp%2Fa%20b%26c%3Dd%2F%C3%A9~x%28%21%29");
	ck_assert_str_eq(u, "http://h/dataplane/id/download?path=%2Fx%20y");
	free(e);
	free(u);
}
END_TEST

START_TEST(test_urls_websocket_parts)
{
	struct sbx_url u;

	ck_assert_int_eq(sbx_url_parse("http://127.0.0.1:4000/dataplane/x/execute/ws", &u), 0);
	ck_assert_str_eq(u.host, "127.0.0.1");
	ck_assert_int_eq(u.port, 4000);
	ck_assert_str_eq(u.path, "/dataplane/x/execute/ws");
	ck_assert(!u.tls);
	sbx_url_release(&u);
	ck_assert_int_eq(sbx_url_parse("wss://sbx.example.com/dp/1/execute/ws?a=b", &u), 0);
	ck_assert_int_eq(u.port, 443);
	ck_assert(u.tls);
	ck_assert_str_eq(u.path, "/dp/1/execute/ws?a=b");
	sbx_url_release(&u);
	ck_assert_int_eq(sbx_url_parse("http://[::1]:8080/", &u), 0);
	ck_assert_str_eq(u.host, "::1");
	sbx_url_release(&u);
	ck_assert_int_eq(sbx_url_parse("ftp://h/x", &u), -EINVAL);
	ck_assert_int_eq(sbx_url_parse("not a url", &u), -EINVAL);
}
END_TEST

/* ======================= api ======================= */

static void error_is(long status, const char *body, const char *want_type, const char *want_msg)
{
	char *type = NULL, *msg = NULL;

	ck_assert_int_eq(sbx_api_error(status, body, body ? strlen(body) : 0, &type, &msg), 0);
	ck_assert_str_eq(msg, want_msg);
	if (want_type)
		ck_assert_str_eq(type, want_type);
	else
		ck_assert_ptr_null(type);
	free(type);
	free(msg);
}

START_TEST(test_api_errors_read_detail_like_the_client)
{
	error_is(409, "{\"detail\":{\"error\":\"Conflict\",\"message\":\"taken\"}}", "Conflict",
		 "taken");
	error_is(500, "{\"detail\":{\"error\":\"X\",\"message\":\"m\",\"error_id\":\"e1\"}}", "X",
		 "m (error_id=e1)");
	error_is(422, "{\"detail\":[{\"msg\":\"a\"},{\"msg\":\"b\"}]}", NULL, "a; b");
	error_is(400, "{\"detail\":\"plain\"}", NULL, "plain");
	error_is(404, "{\"error\":\"ignored\",\"message\":\"ignored\"}", NULL,
		 "HTTP 404: Not Found");
	error_is(502, "<html>bad gateway</html>", NULL, "HTTP 502: Bad Gateway");
	error_is(503, NULL, NULL, "HTTP 503: Service Unavailable");
	error_is(401, "{\"detail\":{\"error\":\"Unauthorized\"}}", "Unauthorized",
		 "HTTP 401: Unauthorized");
}
END_TEST

START_TEST(test_api_resp_check_maps_statuses)
{
	struct sbx_config cfg = {.endpoint = "http://h", .api_key = "k", .api_key_from = "x"};
	struct sbx_resp r = {.status = 404};

	ck_assert_int_eq(sbx_http_init(&cfg), 0);
	ck_assert_int_eq(sbx_resp_check(&r), -ENOENT);
	r.status = 409;
	ck_assert_int_eq(sbx_resp_check(&r), -EEXIST);
	r.status = 401;
	ck_assert_int_eq(sbx_resp_check(&r), -EACCES);
	ck_assert_ptr_nonnull(strstr(err_msg(), "refused the API key"));
	r.status = 204;
	ck_assert_int_eq(sbx_resp_check(&r), 0);
	sbx_http_cleanup();
}
END_TEST

/* ======================= frames ======================= */

START_TEST(test_frames_execute_carries_what_the_client_sends)
{
	json_t *env = json_pack("{s:s}", "A", "1"), *j;
	struct sbx_exec_req req = {.command = "echo hi",
				   .shell = "/bin/bash",
				   .command_id = "id-1",
				   .env = env,
				   .cwd = "/tmp",
				   .timeout_s = 0,
				   .idle_timeout_s = 60,
				   .ttl_s = 60,
				   .close_stdin = true};
	char *t = sbx_frame_execute(&req);

	j = json_loads(t, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "execute");
	ck_assert_str_eq(json_string_value(json_object_get(j, "command")), "echo hi");
	ck_assert_str_eq(json_string_value(json_object_get(j, "command_id")), "id-1");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "timeout_seconds")), 0);
	ck_assert(json_is_true(json_object_get(j, "close_stdin")));
	ck_assert(json_is_false(json_object_get(j, "kill_on_disconnect")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "env"), "A")), "1");
	ck_assert_str_eq(json_string_value(json_object_get(j, "cwd")), "/tmp");
	ck_assert_ptr_null(json_object_get(j, "pty"));
	json_decref(j);
	free(t);

	req.pty = true;
	req.rows = 40;
	req.cols = 120;
	req.env = NULL;
	t = sbx_frame_execute(&req);
	j = json_loads(t, 0, NULL);
	ck_assert(json_is_true(json_object_get(j, "pty")));
	ck_assert_ptr_null(json_object_get(j, "close_stdin"));
	ck_assert_ptr_null(json_object_get(j, "env"));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "rows")), 40);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "cols")), 120);
	json_decref(j);
	free(t);
	json_decref(env);
}
END_TEST

START_TEST(test_frames_small_messages)
{
	char *t;

	t = sbx_frame_reconnect("c", 4, 0);
	ck_assert_str_eq(t, "{\"type\":\"reconnect\",\"command_id\":\"c\",\"stdout_offset\":4,"
			    "\"stderr_offset\":0}");
	free(t);
	t = sbx_frame_input("a\0b", 3);
	ck_assert_str_eq(t, "{\"type\":\"input\",\"data\":\"a\\u0000b\"}");
	free(t);
	ck_assert_ptr_null(sbx_frame_input("\xff", 1));
	t = sbx_frame_resize(24, 80);
	ck_assert_str_eq(t, "{\"type\":\"resize\",\"rows\":24,\"cols\":80}");
	free(t);
	t = sbx_frame_simple("kill");
	ck_assert_str_eq(t, "{\"type\":\"kill\"}");
	free(t);
}
END_TEST

static struct sbx_msg msg(const char *text)
{
	struct sbx_msg m;

	ck_assert_int_eq(sbx_msg_parse(text, strlen(text), &m), 0);
	return m;
}

START_TEST(test_frames_server_messages_parse)
{
	struct sbx_msg m;

	m = msg("{\"type\":\"started\",\"command_id\":\"c\",\"pid\":7}");
	ck_assert_int_eq(m.type, SBX_MSG_STARTED);
	ck_assert_str_eq(m.command_id, "c");
	sbx_msg_release(&m);
	m = msg("{\"type\":\"stderr\",\"data\":\"x\\u0000y\",\"offset\":12}");
	ck_assert_int_eq(m.type, SBX_MSG_STDERR);
	ck_assert_int_eq(m.len, 3);
	ck_assert_int_eq(memcmp(m.data, "x\0y", 3), 0);
	ck_assert_int_eq(m.offset, 12);
	sbx_msg_release(&m);
	m = msg("{\"type\":\"exit\",\"exit_code\":3}");
	ck_assert_int_eq(m.type, SBX_MSG_EXIT);
	ck_assert_int_eq(sbx_exit_status(&m), 3);
	sbx_msg_release(&m);
	m = msg("{\"type\":\"error\",\"error_type\":\"CommandTimeout\",\"error\":\"late\"}");
	ck_assert_int_eq(m.type, SBX_MSG_ERROR);
	ck_assert_str_eq(m.error_type, "CommandTimeout");
	ck_assert_str_eq(m.error, "late");
	sbx_msg_release(&m);
	m = msg("{\"type\":\"error\"}");
	ck_assert_str_eq(m.error_type, "CommandError");
	sbx_msg_release(&m);
	m = msg("{\"type\":\"keepalive\"}");
	ck_assert_int_eq(m.type, SBX_MSG_OTHER);
	sbx_msg_release(&m);
}
END_TEST

START_TEST(test_frames_bad_server_messages_are_refused)
{
	struct sbx_msg m;

	ck_assert_int_eq(sbx_msg_parse("nope", 4, &m), -EBADMSG);
	ck_assert_int_eq(sbx_msg_parse("[1]", 3, &m), -EBADMSG);
	ck_assert_int_eq(sbx_msg_parse("{\"type\":1}", 10, &m), -EBADMSG);
	ck_assert_int_eq(sbx_msg_parse("{\"type\":\"stdout\"}", 17, &m), -EBADMSG);
}
END_TEST

START_TEST(test_frames_exit_codes_for_signals)
{
	struct sbx_msg m;

	m = msg("{\"type\":\"exit\",\"exit_code\":-1,\"signal\":9}");
	ck_assert_int_eq(sbx_exit_status(&m), 137);
	sbx_msg_release(&m);
	m = msg("{\"type\":\"exit\",\"exit_code\":-15}");
	ck_assert_int_eq(sbx_exit_status(&m), 143);
	sbx_msg_release(&m);
	m = msg("{\"type\":\"exit\",\"exit_code\":137}");
	ck_assert_int_eq(sbx_exit_status(&m), 137);
	sbx_msg_release(&m);
	m = msg("{\"type\":\"exit\"}");
	ck_assert_int_eq(sbx_exit_status(&m), 255);
	sbx_msg_release(&m);
	m = msg("{\"type\":\"exit\",\"exit_code\":1000}");
	ck_assert_int_eq(sbx_exit_status(&m), 255);
	sbx_msg_release(&m);
}
END_TEST

START_TEST(test_frames_chunk_skip_never_prints_twice)
{
	ck_assert_int_eq(sbx_chunk_skip(0, 5, 0), 0);
	ck_assert_int_eq(sbx_chunk_skip(0, 5, 3), 3);
	ck_assert_int_eq(sbx_chunk_skip(0, 5, 5), 5);
	ck_assert_int_eq(sbx_chunk_skip(0, 5, 9), 5);
	ck_assert_int_eq(sbx_chunk_skip(10, 5, 3), 0);
}
END_TEST

static size_t prefix(const char *s, size_t len, bool *bad)
{
	return sbx_utf8_prefix((const unsigned char *)s, len, bad);
}

START_TEST(test_frames_utf8_prefix_holds_back_partial_characters)
{
	bool bad;

	ck_assert_int_eq(prefix("abc", 3, &bad), 3);
	ck_assert(!bad);
	ck_assert_int_eq(prefix("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10, &bad), 10);
	ck_assert(!bad);
	ck_assert_int_eq(prefix("a\xe2\x82", 3, &bad), 1);
	ck_assert(!bad);
	ck_assert_int_eq(prefix("a\xf0\x9f\x98", 4, &bad), 1);
	ck_assert(!bad);
	ck_assert_int_eq(prefix("\xc3", 1, &bad), 0);
	ck_assert(!bad);
}
END_TEST

START_TEST(test_frames_utf8_prefix_stops_at_invalid_bytes)
{
	bool bad;

	ck_assert_int_eq(prefix("ab\xff", 3, &bad), 2);
	ck_assert(bad);
	ck_assert_int_eq(prefix("\xc0\x80", 2, &bad), 0); /* overlong */
	ck_assert(bad);
	ck_assert_int_eq(prefix("x\xed\xa0\x80", 4, &bad), 1); /* surrogate */
	ck_assert(bad);
	ck_assert_int_eq(prefix("x\xed\xa0", 3, &bad), 1); /* surrogate, cut */
	ck_assert(bad);
	ck_assert_int_eq(prefix("\xf4\x90\x80\x80", 4, &bad), 0); /* > U+10FFFF */
	ck_assert(bad);
	ck_assert_int_eq(prefix("\xe0\x80", 2, &bad), 0); /* overlong, cut */
	ck_assert(bad);
	ck_assert_int_eq(prefix("a\xc3x", 3, &bad), 1);
	ck_assert(bad);
}
END_TEST

static Suite *sbx_suite(void)
{
	Suite *s = suite_create("sbx");
	TCase *tc;

	tc = tcase_create("config");
	tcase_add_checked_fixture(tc, NULL, cfg_teardown);
	tcase_add_test(tc, test_config_parses_settings_comments_and_quotes);
	tcase_add_test(tc, test_config_rejects_unknown_names_takes_empty_key);
	tcase_add_test(tc, test_config_rejects_lines_without_equals_naming_the_line);
	tcase_add_test(tc, test_config_flags_beat_environment_beat_file_beat_default);
	tcase_add_test(tc, test_config_refuses_a_file_others_can_write);
	tcase_add_test(tc, test_config_reads_a_file_others_can_read_with_a_warning);
	tcase_add_test(tc, test_config_does_not_read_the_file_when_flags_answer);
	tcase_add_test(tc, test_config_edit_replaces_adds_and_removes);
	tcase_add_test(tc, test_config_masks_keys);
	suite_add_tcase(s, tc);

	tc = tcase_create("args");
	tcase_add_test(tc, test_args_remote_is_name_colon_absolute_path);
	tcase_add_test(tc, test_args_local_paths_stay_local);
	tcase_add_test(tc, test_args_remote_path_must_be_absolute);
	tcase_add_test(tc, test_args_names_follow_sbxd_rules);
	tcase_add_test(tc, test_args_shell_join_quotes_words);
	tcase_add_test(tc, test_args_sizes_and_times);
	tcase_add_test(tc, test_args_uuid_is_version_4);
	suite_add_tcase(s, tc);

	tc = tcase_create("urls");
	tcase_add_test(tc, test_urls_api_base_like_the_langsmith_client);
	tcase_add_test(tc, test_urls_api_base_refuses_other_schemes);
	tcase_add_test(tc, test_urls_escape_all_but_unreserved);
	tcase_add_test(tc, test_urls_websocket_parts);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_test(tc, test_api_errors_read_detail_like_the_client);
	tcase_add_test(tc, test_api_resp_check_maps_statuses);
	suite_add_tcase(s, tc);

	tc = tcase_create("frames");
	tcase_add_test(tc, test_frames_execute_carries_what_the_client_sends);
	tcase_add_test(tc, test_frames_small_messages);
	tcase_add_test(tc, test_frames_server_messages_parse);
	tcase_add_test(tc, test_frames_bad_server_messages_are_refused);
	tcase_add_test(tc, test_frames_exit_codes_for_signals);
	tcase_add_test(tc, test_frames_chunk_skip_never_prints_twice);
	tcase_add_test(tc, test_frames_utf8_prefix_holds_back_partial_characters);
	tcase_add_test(tc, test_frames_utf8_prefix_stops_at_invalid_bytes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sbx_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
