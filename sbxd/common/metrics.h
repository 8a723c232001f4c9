/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.h - sbxd's event counters (any layer counts into them) and the
 * Prometheus text exposition format (version 0.0.4) they are rendered in.
 *
 * A collector appends metric families to a buffer with metrics_family()
 * and metrics_sample(); GET /metrics (sbxd/api/api_metrics.c) runs the
 * collectors. To add metrics, write a collector and call it there.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metrics_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

/* "# HELP name help" and "# TYPE name type" (type: gauge, counter...). */
void metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help);
/* name{k1="v1",...} value; labels is "k1", "v1", ..., NULL (may be NULL).
 * Label values are escaped (\\, \", \n). */
void metrics_sample(struct metrics_buf *b, const char *name, const char *const *labels,
		    double value);

/*
 * Events counted by sbxd as they happen (thread-safe, lock-free: atomics;
 * callable from any thread, before or without a render). Rendered as
 * sbx_create_seconds / sbx_exec_start_seconds histograms,
 * sbx_stream_bytes_total{direction} and sbx_errors_total{kind}.
 */
enum sbxd_hist {
	SBXD_HIST_CREATE,     /* POST /boxes accepted → the sandbox is ready (any path) */
	SBXD_HIST_EXEC_START, /* an execute request → the command runs in the guest */
	SBXD_HIST_COUNT
};
enum sbxd_bytes {
	SBXD_BYTES_STDOUT, /* command output sent to clients (stdout + pty) */
	SBXD_BYTES_STDERR,
	SBXD_BYTES_STDIN,    /* input from clients to commands */
	SBXD_BYTES_UPLOAD,   /* file bytes written into sandboxes */
	SBXD_BYTES_DOWNLOAD, /* file bytes read out of sandboxes */
	SBXD_BYTES_COUNT
};
void sbxd_metrics_observe(enum sbxd_hist h, double seconds);
void sbxd_metrics_add_bytes(enum sbxd_bytes dir, uint64_t n);
/* One error answered to a client; kind is the API error type
 * ("QuotaExceeded", "NotFound", "CommandTimeout"...), copied. */
void sbxd_metrics_count_error(const char *kind);

/* The families of the events above (histograms, bytes, errors). */
void sbxd_metrics_collect_events(struct metrics_buf *b);
/* b's text, NUL-terminated (malloc'ed; *ret_len its length), or NULL on
 * OOM (b's buffer is freed then). */
char *metrics_buf_finish(struct metrics_buf *b, size_t *ret_len);
