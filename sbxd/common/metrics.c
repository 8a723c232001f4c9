/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.c - sbxd's event counters and the Prometheus text format (see
 * metrics.h); the collectors of the manager's and the store's state are in
 * sbxd/api/api_metrics.c.
 *
 * Metrics:
 *   sbx_create_seconds, sbx_exec_start_seconds   histograms
 *   sbx_stream_bytes_total{direction}            stdout stderr stdin upload download
 *   sbx_errors_total{kind}   errors answered, by API error type ("other":
 *                            a kind that is not [A-Za-z0-9_]{1,31} or past 32 kinds)
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbxd/common/metrics.h"

__attribute__((format(printf, 2, 3))) static void buf_printf(struct metrics_buf *b, const char *fmt,
							     ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = b->cap ? b->cap * 2 : 1024;
			char *p;

			while (cap - b->len <= (size_t)n)
				cap *= 2;
			p = realloc(b->p, cap);
			if (!p) {
				b->oom = true;
				return;
			}
			b->p = p;
			b->cap = cap;
		}
	}
}

void metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void label_value(struct metrics_buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			buf_printf(b, "\\\\");
		else if (*v == '"')
			buf_printf(b, "\\\"");
		else if (*v == '\n')
			buf_printf(b, "\\n");
		else
			buf_printf(b, "%c", *v);
	}
}

void metrics_sample(struct metrics_buf *b, const char *name, const char *const *labels,
		    double value)
{
	buf_printf(b, "%s", name);
	if (labels && labels[0]) {
		buf_printf(b, "{");
		for (size_t i = 0; labels[i] && labels[i + 1]; i += 2) {
			buf_printf(b, "%s%s=\"", i ? "," : "", labels[i]);
			label_value(b, labels[i + 1]);
			buf_printf(b, "\"");
		}
		buf_printf(b, "}");
	}
	if (value > -1e15 && value < 1e15 && value == (double)(long long)value)
		buf_printf(b, " %.0f\n", value);
	else
		buf_printf(b, " %g\n", value);
}

/* ---- events: atomics, no locks ---- */

static const double hist_bounds[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define HIST_BUCKETS (sizeof(hist_bounds) / sizeof(hist_bounds[0]))

static struct {
	_Atomic uint64_t bucket[HIST_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
	_Atomic uint64_t sum_us;
} hists[SBXD_HIST_COUNT];

static const struct {
	const char *name, *help;
} hist_meta[SBXD_HIST_COUNT] = {
    [SBXD_HIST_CREATE] = {"sbx_create_seconds",
			  "From an accepted create to a ready sandbox (boot, fork, pool)"},
    [SBXD_HIST_EXEC_START] = {"sbx_exec_start_seconds",
			      "From an execute request to the command running in the guest"},
};

static _Atomic uint64_t stream_bytes[SBXD_BYTES_COUNT];
static const char *const bytes_names[SBXD_BYTES_COUNT] = {
    [SBXD_BYTES_STDOUT] = "stdout",	[SBXD_BYTES_STDERR] = "stderr",
    [SBXD_BYTES_STDIN] = "stdin",	[SBXD_BYTES_UPLOAD] = "upload",
    [SBXD_BYTES_DOWNLOAD] = "download",
};

/* Errors by kind: a slot is claimed once (state 0 → 1 while its name is
 * written → 2), then only counted; a full table counts into "other". */
#define ERROR_KINDS 32
#define ERROR_KIND_MAX 31
static struct {
	_Atomic int state;
	char name[ERROR_KIND_MAX + 1];
	_Atomic uint64_t count;
} error_kinds[ERROR_KINDS];
static _Atomic uint64_t error_other;

void sbxd_metrics_observe(enum sbxd_hist h, double seconds)
{
	size_t i = 0;

	if ((unsigned)h >= SBXD_HIST_COUNT || !(seconds >= 0))
		return;
	while (i < HIST_BUCKETS && seconds > hist_bounds[i])
		i++;
	atomic_fetch_add(&hists[h].bucket[i], 1);
	atomic_fetch_add(&hists[h].sum_us, (uint64_t)(seconds * 1e6));
}

void sbxd_metrics_add_bytes(enum sbxd_bytes dir, uint64_t n)
{
	if ((unsigned)dir < SBXD_BYTES_COUNT)
		atomic_fetch_add(&stream_bytes[dir], n);
}

static bool kind_ok(const char *k)
{
	size_t n = 0;

	for (; k && k[n]; n++)
		if (n >= ERROR_KIND_MAX ||
		    !((k[n] >= 'a' && k[n] <= 'z') || (k[n] >= 'A' && k[n] <= 'Z') ||
		      (k[n] >= '0' && k[n] <= '9') || k[n] == '_'))
			return false;
	return n > 0;
}

void sbxd_metrics_count_error(const char *kind)
{
	if (!kind_ok(kind)) {
		atomic_fetch_add(&error_other, 1);
		return;
	}
	for (size_t i = 0; i < ERROR_KINDS; i++) {
		int st = atomic_load(&error_kinds[i].state);

		if (st == 0) {
			int zero = 0;

			if (atomic_compare_exchange_strong(&error_kinds[i].state, &zero, 1)) {
				snprintf(error_kinds[i].name, sizeof(error_kinds[i].name), "%s",
					 kind);
				atomic_fetch_add(&error_kinds[i].count, 1);
				atomic_store(&error_kinds[i].state, 2);
				return;
			}
			st = atomic_load(&error_kinds[i].state);
		}
		while (st == 1) /* another thread writes its name: a few instructions */
			st = atomic_load(&error_kinds[i].state);
		if (!strcmp(error_kinds[i].name, kind)) {
			atomic_fetch_add(&error_kinds[i].count, 1);
			return;
		}
	}
	atomic_fetch_add(&error_other, 1);
}

void sbxd_metrics_collect_events(struct metrics_buf *b)
{
	for (int h = 0; h < SBXD_HIST_COUNT; h++) {
		char name[64], le[32];
		uint64_t cum = 0;

		metrics_family(b, hist_meta[h].name, "histogram", hist_meta[h].help);
		snprintf(name, sizeof(name), "%s_bucket", hist_meta[h].name);
		for (size_t i = 0; i <= HIST_BUCKETS; i++) {
			const char *labels[] = {"le", le, NULL};

			cum += atomic_load(&hists[h].bucket[i]);
			if (i < HIST_BUCKETS)
				snprintf(le, sizeof(le), "%g", hist_bounds[i]);
			else
				snprintf(le, sizeof(le), "+Inf");
			metrics_sample(b, name, labels, (double)cum);
		}
		snprintf(name, sizeof(name), "%s_sum", hist_meta[h].name);
		metrics_sample(b, name, NULL, (double)atomic_load(&hists[h].sum_us) / 1e6);
		snprintf(name, sizeof(name), "%s_count", hist_meta[h].name);
		/* the buckets' total, so that +Inf == _count in one exposition */
		metrics_sample(b, name, NULL, (double)cum);
	}
	metrics_family(b, "sbx_stream_bytes_total", "counter",
		       "Bytes streamed between clients and sandboxes, by direction");
	for (int d = 0; d < SBXD_BYTES_COUNT; d++) {
		const char *labels[] = {"direction", bytes_names[d], NULL};

		metrics_sample(b, "sbx_stream_bytes_total", labels,
			       (double)atomic_load(&stream_bytes[d]));
	}
	metrics_family(b, "sbx_errors_total", "counter",
		       "Errors answered to clients, by the API error type");
	for (size_t i = 0; i < ERROR_KINDS; i++) {
		if (atomic_load(&error_kinds[i].state) != 2)
			continue;
		{
			const char *labels[] = {"kind", error_kinds[i].name, NULL};

			metrics_sample(b, "sbx_errors_total", labels,
				       (double)atomic_load(&error_kinds[i].count));
		}
	}
	{
		const char *labels[] = {"kind", "other", NULL};

		metrics_sample(b, "sbx_errors_total", labels, (double)atomic_load(&error_other));
	}
}

char *metrics_buf_finish(struct metrics_buf *b, size_t *ret_len)
{
	buf_printf(b, "%s", "");
	if (b->oom) {
		free(b->p);
		b->p = NULL;
		return NULL;
	}
	*ret_len = b->len;
	return b->p;
}
