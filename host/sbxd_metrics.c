/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbxd_metrics.c - the Prometheus text exposition of GET /metrics (see
 * sbxd_metrics.h). Collectors run on the service thread and must only
 * take short locks (the manager's pools lock, the store's).
 *
 * Metrics:
 *   sbx_pool_ready{source}   prewarmed VMs ready to be handed out now
 *   sbx_pool_target{source}  the size the pool is kept at
 *   sbx_sandboxes{state}     sandboxes per state (pool VMs not counted)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbxd_metrics.h"

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

/* ---- collectors ---- */

struct pool_row {
	char source[SBXD_POOL_SOURCE_MAX];
	unsigned ready, target;
};

struct pool_rows {
	struct pool_row *v;
	size_t n;
	bool oom;
};

static void pool_row_add(void *ud, const char *source, unsigned ready, unsigned target)
{
	struct pool_rows *rows = ud;
	struct pool_row *nv;

	if (rows->oom)
		return;
	nv = realloc(rows->v, (rows->n + 1) * sizeof(*nv));
	if (!nv) {
		rows->oom = true;
		return;
	}
	rows->v = nv;
	snprintf(nv[rows->n].source, sizeof(nv[rows->n].source), "%s", source);
	nv[rows->n].ready = ready;
	nv[rows->n].target = target;
	rows->n++;
}

static void collect_pools(struct metrics_buf *b, const struct metrics_sources *src)
{
	struct pool_rows rows = {0};

	if (src->mgr)
		sbxd_mgr_pool_foreach(src->mgr, pool_row_add, &rows);
	if (rows.oom)
		b->oom = true;
	metrics_family(b, "sbx_pool_ready", "gauge",
		       "Prewarmed sandboxes ready to be handed out now, per pool source.");
	for (size_t i = 0; i < rows.n; i++)
		metrics_sample(b, "sbx_pool_ready",
			       (const char *const[]){"source", rows.v[i].source, NULL},
			       rows.v[i].ready);
	metrics_family(b, "sbx_pool_target", "gauge",
		       "The number of ready sandboxes each pool is kept at.");
	for (size_t i = 0; i < rows.n; i++)
		metrics_sample(b, "sbx_pool_target",
			       (const char *const[]){"source", rows.v[i].source, NULL},
			       rows.v[i].target);
	free(rows.v);
}

static void collect_sandboxes(struct metrics_buf *b, const struct metrics_sources *src)
{
	unsigned count[_BOX_STATE_MAX] = {0};
	struct store_box *v = NULL;
	size_t n = 0;

	if (!src->st || store_box_list(src->st, STORE_OWNER_ANY, &v, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if ((int)v[i].state >= 0 && v[i].state < _BOX_STATE_MAX)
			count[v[i].state]++;
	store_boxes_free(v, n);
	metrics_family(b, "sbx_sandboxes", "gauge", "Sandboxes per state (pool VMs not counted).");
	for (int s = 0; s < _BOX_STATE_MAX; s++)
		metrics_sample(b, "sbx_sandboxes",
			       (const char *const[]){"state", box_state_to_string(s), NULL},
			       count[s]);
}

static void (*const collectors[])(struct metrics_buf *, const struct metrics_sources *) = {
    collect_pools,
    collect_sandboxes,
};

char *sbxd_metrics_render(const struct metrics_sources *src, size_t *ret_len)
{
	struct metrics_buf b = {0};

	for (size_t i = 0; i < sizeof(collectors) / sizeof(collectors[0]); i++)
		collectors[i](&b, src);
	buf_printf(&b, "%s", "");
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*ret_len = b.len;
	return b.p;
}

/* Event counters: stubs until they are implemented (see sbxd_metrics.h). */
void sbxd_metrics_observe(enum sbxd_hist h, double seconds)
{
	(void)h;
	(void)seconds;
}

void sbxd_metrics_add_bytes(enum sbxd_bytes dir, uint64_t n)
{
	(void)dir;
	(void)n;
}

void sbxd_metrics_count_error(const char *kind)
{
	(void)kind;
}
