/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_metrics.c - GET /metrics: the Prometheus text exposition (version
 * 0.0.4) of the manager's pools, the sandboxes per state and the event
 * counters of sbxd/common/metrics.h. Collectors run on the service thread
 * and must only take short locks (the manager's pools lock, the store's).
 *
 *   sbx_pool_ready{source}   prewarmed VMs ready to be handed out now
 *   sbx_pool_target{source}  the size the pool is kept at
 *   sbx_sandboxes{state}     sandboxes per state (pool VMs not counted)
 */
#include <stdio.h>
#include <stdlib.h>

#include "sbxd/api/api_render.h"
#include "sbxd/common/metrics.h"

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
	unsigned count[BOX_STATE_COUNT] = {0};
	struct store_box *v = NULL;
	size_t n = 0;

	if (!src->st || store_box_list(src->st, STORE_OWNER_ANY, &v, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if ((int)v[i].state >= 0 && v[i].state < BOX_STATE_COUNT)
			count[v[i].state]++;
	store_boxes_free(v, n);
	metrics_family(b, "sbx_sandboxes", "gauge", "Sandboxes per state (pool VMs not counted).");
	for (int s = 0; s < BOX_STATE_COUNT; s++)
		metrics_sample(b, "sbx_sandboxes",
			       (const char *const[]){"state", box_state_to_string(s), NULL},
			       count[s]);
}

char *sbxd_metrics_render(const struct metrics_sources *src, size_t *ret_len)
{
	struct metrics_buf b = {0};

	collect_pools(&b, src);
	collect_sandboxes(&b, src);
	sbxd_metrics_collect_events(&b);
	return metrics_buf_finish(&b, ret_len);
}
