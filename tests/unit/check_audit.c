/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_audit.c - the audit log of the store (sbxd/store/store_audit.c): rows
 * written before a command runs, finished once, listed by pages, swept at
 * start (commands whose end was not seen), pruned by age, bounded text.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "sbxd/common/key.h"
#include "sbxd/store/store.h"

LOG_DEFINE_STATE("check_audit");

static char dir[256];
static store *st;
static char box_id[STORE_ID_LEN + 1];

static void setup(void)
{
	char path[300], hash[SBXD_KEY_HASH_LEN + 1];
	struct store_box b = {0};
	int64_t key = 0;

	snprintf(dir, sizeof(dir), "/tmp/check_audit.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sbxd.db", dir);
	ck_assert_int_eq(store_open(path, &st), 0);
	sbxd_key_hash("k", 1, hash);
	ck_assert_int_eq(store_key_create(st, "k", hash, false, &key), 0);
	ck_assert_int_eq(sbxd_uuid4(b.id), 0);
	b.name = (char *)"box";
	b.owner = key;
	b.state = BOX_READY;
	b.vcpus = 1;
	b.mem_bytes = 512ull << 20;
	b.fs_capacity_bytes = 2ull << 30;
	b.image = (char *)"/images/default";
	b.vm_name = b.id;
	b.persistent = true;
	ck_assert_int_eq(store_box_insert(st, &b), 0);
	snprintf(box_id, sizeof(box_id), "%s", b.id);
}

static void teardown(void)
{
	char cmd[400];

	st = store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}

static void begin(const char *id, const char *command, const char *cwd)
{
	struct store_audit a = {.box_id = box_id,
				.box_name = (char *)"box",
				.key_name = (char *)"k",
				.command_id = (char *)id,
				.command = (char *)command,
				.cwd = (char *)cwd};

	ck_assert_int_eq(store_audit_begin(st, &a), 0);
}

START_TEST(test_begin_finish_list)
{
	struct store_audit *v = NULL;
	size_t n = 0;

	begin("c1", "true", NULL);
	begin("c2", "sh -c 'exit 3'", "/tmp");
	begin("c3", "sleep 100", NULL);
	ck_assert_int_eq(store_audit_finish(st, box_id, "c1", 0, "exited"), 0);
	ck_assert_int_eq(store_audit_finish(st, box_id, "c2", 3, "exited"), 0);
	/* once: a second end of the same command changes nothing */
	ck_assert_int_eq(store_audit_finish(st, box_id, "c2", 9, "killed"), -ENOENT);
	ck_assert_int_eq(store_audit_finish(st, box_id, "nope", 0, "exited"), -ENOENT);

	ck_assert_int_eq(store_audit_list(st, box_id, 0, 100, &v, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[0].command, "true");
	ck_assert_str_eq(v[0].outcome, "exited");
	ck_assert_int_eq(v[0].exit_code, 0);
	ck_assert_ptr_null(v[0].cwd);
	ck_assert_str_eq(v[0].key_name, "k");
	ck_assert_str_eq(v[1].cwd, "/tmp");
	ck_assert_int_eq(v[1].exit_code, 3);
	ck_assert_int_ge(v[1].ended_ms, v[1].started_ms);
	ck_assert_str_eq(v[2].outcome, "running");
	ck_assert_int_eq(v[2].exit_code, STORE_AUDIT_NO_CODE);
	ck_assert_int_eq(v[2].ended_ms, 0);
	ck_assert_int_lt(v[0].seq, v[1].seq);
	ck_assert_int_lt(v[1].seq, v[2].seq);

	/* pages: after the first, at most one */
	{
		struct store_audit *p = NULL;
		size_t pn = 0;

		ck_assert_int_eq(store_audit_list(st, box_id, v[0].seq, 1, &p, &pn), 0);
		ck_assert_uint_eq(pn, 1);
		ck_assert_str_eq(p[0].command_id, "c2");
		store_audits_free(p, pn);
	}
	store_audits_free(v, n);
	ck_assert_int_eq(store_audit_list(st, "other", 0, 100, &v, &n), 0);
	ck_assert_uint_eq(n, 0);
	store_audits_free(v, n);
}
END_TEST

START_TEST(test_sweep_marks_only_commands_that_no_longer_run)
{
	struct store_cmd c = {
	    .id = (char *)"alive", .state = (char *)"running", .command = (char *)"sleep 1000"};
	struct store_audit *v = NULL;
	size_t n = 0;

	snprintf(c.box_id, sizeof(c.box_id), "%s", box_id);
	ck_assert_int_eq(store_cmd_insert(st, &c), 0);
	begin("alive", "sleep 1000", NULL); /* the store says it still runs */
	begin("gone", "sleep 1000", NULL);  /* no command row: sbxd died first */
	ck_assert_int_eq(store_audit_sweep(st), 1);
	ck_assert_int_eq(store_audit_sweep(st), 0);
	ck_assert_int_eq(store_audit_list(st, box_id, 0, 10, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(v[0].outcome, "running");
	ck_assert_str_eq(v[1].outcome, "lost");
	ck_assert_int_gt(v[1].ended_ms, 0);
	store_audits_free(v, n);
	/* rows outlive their sandbox */
	ck_assert_int_eq(store_box_delete(st, box_id), 0);
	ck_assert_int_eq(store_audit_list(st, box_id, 0, 10, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	store_audits_free(v, n);
}
END_TEST

START_TEST(test_prune_and_bounded_text)
{
	size_t big = STORE_AUDIT_TEXT_MAX + 5000;
	char *text = malloc(big + 1);
	struct store_audit *v = NULL;
	size_t n = 0;

	ck_assert_ptr_nonnull(text);
	memset(text, 'x', big);
	text[big] = '\0';
	begin("long", text, NULL);
	free(text);
	begin("running", "sleep 1", NULL);
	ck_assert_int_eq(store_audit_finish(st, box_id, "long", 0, "exited"), 0);
	ck_assert_int_eq(store_audit_list(st, box_id, 0, 10, &v, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_lt(strlen(v[0].command), STORE_AUDIT_TEXT_MAX + 32);
	ck_assert_ptr_nonnull(strstr(v[0].command, "[truncated]"));
	store_audits_free(v, n);
	/* pruning takes ended rows only */
	ck_assert_int_eq(store_audit_prune(st, clock_wall_ms() + 1000), 1);
	ck_assert_int_eq(store_audit_list(st, box_id, 0, 10, &v, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].command_id, "running");
	store_audits_free(v, n);
}
END_TEST

static Suite *audit_suite(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("store");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_begin_finish_list);
	tcase_add_test(tc, test_sweep_marks_only_commands_that_no_longer_run);
	tcase_add_test(tc, test_prune_and_bounded_text);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(audit_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
