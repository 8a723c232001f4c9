/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mgr_int.h - what mgr.c (jobs) and pool.c (prewarmed
 * pools) share. Not for other modules.
 */
#pragma once

#include <stdio.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "sbxd/mgr/mgr.h"

#define MGR_MSG_MAX 1024

/* A started VM waiting in a pool: its agent answered, it never ran a
 * command, nobody but the pool knows its name. */
struct pool_vm {
	struct pool_vm *next;
	char name[STORE_ID_LEN + 1];
	bool busy; /* a health check runs on it: not handed out */
	double checked_s;
};

struct pool {
	struct pool *next;
	char source[SBXD_POOL_SOURCE_MAX];
	char *image_dir;
	char *snapshot_id; /* NULL: an image pool */
	bool restore_memory;
	unsigned vcpus, mem_mib;
	uint64_t disk_bytes;
	unsigned target;
	struct pool_vm *ready; /* oldest first */
	unsigned n_ready;
	bool filling;	   /* the pool thread starts a VM for it now */
	bool removed;	   /* size 0: drain, then free */
	unsigned failures; /* in a row */
	double retry_s;	   /* no new start before (monotonic seconds) */
};

struct pools {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool running;
	bool stopping;
	unsigned check_s;
	struct pool *list;
	struct pool_vm *discard; /* taken, then not used: destroy them */
};

/* Last activity per sandbox, in memory; written to the row lazily. */
struct touch {
	struct touch *next;
	char id[STORE_ID_LEN + 1];
	int64_t seen_ms, written_ms; /* wall clock */
};

struct ttl {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool running;
	bool stopping;
	bool armed; /* reconciled: rows can be trusted */
	struct touch *touches;
	/* VMs whose QEMU stopped on its own (sbxd_mgr_vm_stopped()), for the
	 * next tick to mark their sandboxes failed */
	char *stopped_vm[64];
	char *stopped_why[64];
	size_t n_stopped;
};

struct sbxd_mgr {
	struct sbxd_mgr_config c;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	struct job *jobs;
	unsigned running;
	bool stopping;
	/* the background zygote build (sbxd_mgr_prepare_zygote) */
	pthread_t zygote_thread;
	bool zygote_started;
	bool zygote_busy; /* pools wait for it rather than cold boot */
	struct pools pools;
	struct ttl ttl;
};

/* Jobs (mgr.c): one worker thread per job, at most one job per sandbox or
 * snapshot. A job that could not start is freed by its creator. */
enum job_kind {
	JOB_BOOT,
	JOB_ADOPT,
	JOB_DELETE,
	JOB_CAPTURE,
	JOB_SNAP_BUILD,
	JOB_SNAP_DELETE,
	JOB_STOP,
	JOB_START,
};

struct job;
struct job *mgr_job_new(enum job_kind kind, const struct store_box *b);
int mgr_job_start(sbxd_mgr *m, struct job *j);
void mgr_job_free(struct job *j);

/* A backend op's result r; when it failed, its message (err_msg()) is
 * kept in buf, which outlives the thread's next call. */
static inline int mgr_keep(int r, char *buf, size_t len)
{
	if (r < 0)
		snprintf(buf, len, "%s", err_msg_or(r));
	return r;
}

int pools_init(sbxd_mgr *m);
/* Stop the pool thread and destroy every pooled VM. */
void pools_stop(sbxd_mgr *m);
/* ttl.c: the TTL thread. */
int ttl_init(sbxd_mgr *m);
void ttl_stop(sbxd_mgr *m);
/* The last activity known for a sandbox (0: none), in wall-clock ms. */
int64_t ttl_seen_ms(sbxd_mgr *m, const char *box_id);
