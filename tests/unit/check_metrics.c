/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_metrics.c - GET /metrics (sbxd/api/api_metrics.c): histograms,
 * byte counters and error kinds counted from several threads, and the
 * exposition checked against the Prometheus text format rules.
 */
#include <check.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "sbxd/api/api_render.h"
#include "sbxd/common/metrics.h"

LOG_DEFINE_STATE("check_metrics");

static char *render(void)
{
	struct metrics_sources src = {0};
	size_t len = 0;
	char *t = sbxd_metrics_render(&src, &len);

	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(strlen(t), len);
	return t;
}

/* The value of the sample line "key value", or -1. */
static double value_of(const char *text, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, key, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return -1;
}

/* The rules of the text format that a scraper relies on: sample lines
 * "name{labels} value", TYPE before a family's samples, no family twice,
 * histogram buckets non-decreasing with +Inf equal to _count. */
static void check_format(const char *text)
{
	regex_t sample, type;
	char fam[64][80];
	int nfam = 0;
	char *copy = strdup(text), *save = NULL;
	double prev_bucket = -1, inf_bucket = -1;

	ck_assert_ptr_nonnull(copy);
	ck_assert_int_eq(
	    regcomp(&sample,
		    "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\""
		    ",?)*\\})? [-+0-9.eEinfNa]+$",
		    REG_EXTENDED | REG_NOSUB),
	    0);
	ck_assert_int_eq(regcomp(&type,
				 "^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (gauge|counter|histogram)$",
				 REG_EXTENDED | REG_NOSUB),
			 0);
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(l, "# HELP ", 7))
			continue;
		if (!strncmp(l, "# TYPE ", 7)) {
			ck_assert_msg(regexec(&type, l, 0, NULL, 0) == 0, "bad TYPE line: %s", l);
			sscanf(l + 7, "%79s", fam[nfam]);
			for (int i = 0; i < nfam; i++)
				ck_assert_msg(strcmp(fam[i], fam[nfam]), "family twice: %s", l);
			ck_assert_int_lt(++nfam, 64);
			prev_bucket = inf_bucket = -1;
			continue;
		}
		ck_assert_msg(regexec(&sample, l, 0, NULL, 0) == 0, "bad sample line: '%s'", l);
		ck_assert_msg(nfam > 0 && !strncmp(l, fam[nfam - 1], strlen(fam[nfam - 1])),
			      "sample before its TYPE: %s", l);
		if (strstr(l, "_bucket{")) {
			double v = strtod(strrchr(l, ' ') + 1, NULL);

			ck_assert_msg(v >= prev_bucket, "buckets decrease: %s", l);
			prev_bucket = v;
			if (strstr(l, "le=\"+Inf\""))
				inf_bucket = v;
		} else if (strstr(l, "_count ")) {
			ck_assert_msg(inf_bucket >= 0, "_count without a +Inf bucket: %s", l);
			ck_assert_msg(strtod(strrchr(l, ' ') + 1, NULL) == inf_bucket,
				      "+Inf != _count: %s", l);
		}
	}
	regfree(&sample);
	regfree(&type);
	free(copy);
}

START_TEST(test_histogram_buckets_sum_count)
{
	char *t;

	sbxd_metrics_observe(SBXD_HIST_CREATE, 0.02);  /* le 0.025 */
	sbxd_metrics_observe(SBXD_HIST_CREATE, 0.7);   /* le 1 */
	sbxd_metrics_observe(SBXD_HIST_CREATE, 100.0); /* +Inf only */
	sbxd_metrics_observe(SBXD_HIST_CREATE, -1.0);  /* ignored */
	t = render();
	check_format(t);
	ck_assert(value_of(t, "sbx_create_seconds_bucket{le=\"0.01\"}") == 0);
	ck_assert(value_of(t, "sbx_create_seconds_bucket{le=\"0.025\"}") == 1);
	ck_assert(value_of(t, "sbx_create_seconds_bucket{le=\"1\"}") == 2);
	ck_assert(value_of(t, "sbx_create_seconds_bucket{le=\"60\"}") == 2);
	ck_assert(value_of(t, "sbx_create_seconds_bucket{le=\"+Inf\"}") == 3);
	ck_assert(value_of(t, "sbx_create_seconds_count") == 3);
	ck_assert_msg(value_of(t, "sbx_create_seconds_sum") > 100.71 &&
			  value_of(t, "sbx_create_seconds_sum") < 100.73,
		      "%s", t);
	free(t);
}
END_TEST

static void *hammer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 10000; i++) {
		sbxd_metrics_observe(SBXD_HIST_EXEC_START, 0.003);
		sbxd_metrics_add_bytes(SBXD_BYTES_STDOUT, 3);
		sbxd_metrics_count_error(i % 2 ? "NotFound" : "Conflict");
	}
	return NULL;
}

START_TEST(test_counts_from_threads_are_exact)
{
	pthread_t th[4];
	char *t;

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	t = render();
	check_format(t);
	ck_assert(value_of(t, "sbx_exec_start_seconds_count") == 40000);
	ck_assert(value_of(t, "sbx_exec_start_seconds_bucket{le=\"0.01\"}") == 40000);
	ck_assert(value_of(t, "sbx_stream_bytes_total{direction=\"stdout\"}") == 120000);
	ck_assert(value_of(t, "sbx_errors_total{kind=\"NotFound\"}") == 20000);
	ck_assert(value_of(t, "sbx_errors_total{kind=\"Conflict\"}") == 20000);
	free(t);
}
END_TEST

START_TEST(test_error_kinds_bad_names_and_overflow_go_to_other)
{
	char kind[32];
	char *t;

	sbxd_metrics_count_error("bad kind\"\n");
	sbxd_metrics_count_error("");
	sbxd_metrics_count_error(NULL);
	sbxd_metrics_count_error("AKindNameThatIsLongerThan31Chars");
	sbxd_metrics_count_error("AKindNameThatIs31CharsLongExact"); /* fits */
	for (int i = 0; i < 40; i++) {
		snprintf(kind, sizeof(kind), "Kind%d", i);
		sbxd_metrics_count_error(kind);
	}
	t = render();
	check_format(t);
	ck_assert(value_of(t, "sbx_errors_total{kind=\"Kind0\"}") == 1);
	ck_assert(value_of(t, "sbx_errors_total{kind=\"AKindNameThatIs31CharsLongExact\"}") == 1);
	/* 32 slots: the 40 kinds cannot all have one */
	ck_assert(value_of(t, "sbx_errors_total{kind=\"Kind39\"}") == -1);
	ck_assert_msg(value_of(t, "sbx_errors_total{kind=\"other\"}") >= 4 + 8, "%s", t);
	ck_assert_ptr_null(strstr(t, "bad kind"));
	free(t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("events");
	SRunner *sr;
	int failed;

	/* one process: the counters are global, so the cases run in order */
	tcase_add_test(tc, test_histogram_buckets_sum_count);
	tcase_add_test(tc, test_counts_from_threads_are_exact);
	tcase_add_test(tc, test_error_kinds_bad_names_and_overflow_go_to_other);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
