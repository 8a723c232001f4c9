/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbxd_metrics.h - GET /metrics: sbxd's state in the Prometheus text
 * exposition format (version 0.0.4).
 *
 * A collector appends metric families to a buffer with metrics_family()
 * and metrics_sample(); sbxd_metrics_render() runs every collector of the
 * table in sbxd_metrics.c. To add metrics, write a collector and add it to
 * that table.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "sbxd_mgr.h"
#include "store.h"

struct metrics_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

/* What collectors may read. */
struct metrics_sources {
	sbxd_mgr *mgr;
	store *st;
};

/* "# HELP name help" and "# TYPE name type" (type: gauge, counter...). */
void metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help);
/* name{k1="v1",...} value; labels is "k1", "v1", ..., NULL (may be NULL).
 * Label values are escaped (\\, \", \n). */
void metrics_sample(struct metrics_buf *b, const char *name, const char *const *labels,
		    double value);

/* The whole exposition (malloc'ed, NUL-terminated; *ret_len its length),
 * or NULL on OOM. */
char *sbxd_metrics_render(const struct metrics_sources *src, size_t *ret_len);
