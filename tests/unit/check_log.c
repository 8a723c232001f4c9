/* SPDX-License-Identifier: Apache-2.0 */
/* check_log.c - the JSON log sink (sbxd/log_json.c). */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sbxd/log_json.h"

LOG_DEFINE_STATE("check_log");

static json_t *log_one_line(void (*emit)(void))
{
	char path[] = "/tmp/sbx-log-XXXXXX";
	int fd = mkstemp(path);
	char buf[4096];
	ssize_t n;
	json_t *j;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	log_set_fd(fd);
	emit();
	log_set_fd(2);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_msg(buf[n - 1] == '\n' && !strchr(buf, '\n')[1], "not one line: %s", buf);
	j = json_loads(buf, 0, NULL);
	ck_assert_msg(json_is_object(j), "not JSON: %s", buf);
	return j;
}

static void emit_ready(void)
{
	log_info_f(LOG_FIELDS({"sandbox", "web-1"}, {"id", "3f2a"}, {"vm", "3f2a"}, {"gone", NULL}),
		   "ready in %d ms (zygote-fork) \"quoted\"", 712);
}

static void emit_request(void)
{
	log_error_f(LOG_FIELDS({"request", "44d0548c00000002"}, {"msg", "not ours"}),
		    "cannot store a new sandbox: disk I/O error");
}

static void emit_binary(void)
{
	log_warn_f(LOG_FIELDS({"sandbox", "x\xff"}), "guest said \xff\xfe and stopped");
}

static void emit_errno(void)
{
	log_error_errno(-2, "cannot open %s", "/nowhere");
}

static void emit_text_only(void)
{
	/* key=value words in the text are text: only fields are fields */
	log_info("sandbox=%s said hello", "web-2");
}

START_TEST(test_json_lines_carry_level_program_fields_and_message)
{
	json_t *j;

	log_json_enable();
	j = log_one_line(emit_ready);
	ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "info");
	ck_assert_str_eq(json_string_value(json_object_get(j, "program")), "check_log");
	ck_assert_str_eq(json_string_value(json_object_get(j, "sandbox")), "web-1");
	ck_assert_str_eq(json_string_value(json_object_get(j, "sandbox_id")), "3f2a");
	ck_assert_ptr_null(json_object_get(j, "id"));
	ck_assert_str_eq(json_string_value(json_object_get(j, "vm")), "3f2a");
	ck_assert_ptr_null(json_object_get(j, "gone")); /* a NULL value is left out */
	ck_assert_str_eq(json_string_value(json_object_get(j, "msg")),
			 "sandbox=web-1 id=3f2a vm=3f2a ready in 712 ms (zygote-fork) \"quoted\"");
	ck_assert_uint_eq(strlen(json_string_value(json_object_get(j, "time"))), 24);
	json_decref(j);

	j = log_one_line(emit_request); /* named as in the access log */
	ck_assert_str_eq(json_string_value(json_object_get(j, "request_id")), "44d0548c00000002");
	ck_assert_ptr_null(json_object_get(j, "request"));
	/* a field cannot overwrite the message */
	ck_assert_str_eq(json_string_value(json_object_get(j, "msg")),
			 "request=44d0548c00000002 msg=not ours cannot store a new sandbox: disk "
			 "I/O error");
	json_decref(j);

	j = log_one_line(emit_binary);
	ck_assert_str_eq(json_string_value(json_object_get(j, "msg")),
			 "sandbox=x? guest said ?? and stopped");
	ck_assert_str_eq(json_string_value(json_object_get(j, "sandbox")), "x?");
	json_decref(j);

	j = log_one_line(emit_text_only);
	ck_assert_ptr_null(json_object_get(j, "sandbox"));
	ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), "sandbox=web-2 said hello");
	json_decref(j);

	j = log_one_line(emit_errno);
	ck_assert_str_eq(json_string_value(json_object_get(j, "level")), "error");
	ck_assert_str_eq(json_string_value(json_object_get(j, "msg")),
			 "cannot open /nowhere: No such file or directory");
	json_decref(j);
	log_state.sink = NULL;
}
END_TEST

START_TEST(test_text_lines_show_fields_as_leading_words)
{
	char path[] = "/tmp/sbx-log-XXXXXX", buf[4096], big[3000];
	int fd = mkstemp(path);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	log_state.sink = NULL;
	log_set_fd(fd);
	log_warn_f(LOG_FIELDS({"sandbox", "web-1"}, {"skipped", NULL}, {"vm", "v1"}), "stopped");
	log_error_errno_f(-2, LOG_FIELDS({"sandbox", "web-1"}), "cannot open %s", "/x");
	/* a message longer than the line buffer is cut, still one line */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info_f(LOG_FIELDS({"sandbox", "web-1"}), "%s", big);
	log_set_fd(2);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_msg(!strncmp(buf,
			       "check_log: warn: sandbox=web-1 vm=v1 stopped\n"
			       "check_log: error: sandbox=web-1 cannot open /x: No such file or "
			       "directory\n"
			       "check_log: info: sandbox=web-1 aaaa",
			       strlen("check_log: warn: sandbox=web-1 vm=v1 stopped\n"
				      "check_log: error: sandbox=web-1 cannot open /x: No such "
				      "file or directory\ncheck_log: info: sandbox=web-1 aaaa")),
		      "%s", buf);
	/* the long line ends with the only newline after "info: " */
	ck_assert_ptr_nonnull(strstr(buf, "info: "));
	ck_assert_ptr_eq(strchr(strstr(buf, "info: "), '\n'), buf + n - 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("json");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_json_lines_carry_level_program_fields_and_message);
	tcase_add_test(tc, test_text_lines_show_fields_as_leading_words);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
