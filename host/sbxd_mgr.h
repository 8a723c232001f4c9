/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbxd_mgr.h - the sandbox manager: boots, adopts and deletes the VMs
 * behind sandbox rows, on worker threads, so that the HTTP service thread
 * never blocks on libvirt or a booting guest.
 *
 * Ownership: the store row is the truth; the manager only remembers the
 * sandboxes that have a job running (boot, adoption or deletion), with the
 * requests waiting for that job ("waiters", by HTTP request id). When a
 * job settles, the manager updates the row (under its lock, so a delete
 * arriving at that moment cannot be overwritten) and calls notify() once
 * per waiter, from the worker thread.
 *
 * All functions but notify run on the caller's thread and return quickly;
 * they return 0 or -errno.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct sbxd_mgr sbxd_mgr;

struct sbxd_vm_spec {
	const char *name; /* the VM's name (the sandbox id) */
	const char *image_dir;
	const char *hostname; /* the sandbox name */
	unsigned vcpus;
	unsigned mem_mib;
	uint64_t disk_bytes;
};

/* The VM backend (sbxd_vm.c over vm.h and agent_client.h; a fake in the
 * unit tests). Blocking calls, made from worker threads and from
 * sbxd_mgr_reconcile(); messages for a person go to err. */
struct sbxd_vm_ops {
	int (*start)(void *ctx, const struct sbxd_vm_spec *spec, char *err, size_t errlen);
	/* Until the VM's agent answers a PING, at most timeout_ms. cancelled()
	 * is polled; when it says true, give up with -ECANCELED. */
	int (*wait_agent)(void *ctx, const char *vm_name, int timeout_ms,
			  bool (*cancelled)(void *cud), void *cud, char *err, size_t errlen);
	/* Idempotent: 0 also when there is no such VM. */
	int (*destroy)(void *ctx, const char *vm_name, char *err, size_t errlen);
	/* Names of the VMs that exist; NULL-terminated, freed with free_list. */
	int (*list)(void *ctx, char ***ret_names);
	void (*free_list)(char **names);
	int (*is_running)(void *ctx, const char *vm_name); /* 1, 0 or -errno */
	/* "unix:PATH" (or "vsock:CID:PORT") of the VM's agent channel. */
	int (*agent_address)(void *ctx, const char *vm_name, char *buf, size_t len);
};

enum mgr_outcome {
	MGR_READY,	   /* the agent answered: state ready */
	MGR_FAILED,	   /* state failed; msg says why */
	MGR_DELETED,	   /* VM and rows are gone */
	MGR_DELETE_FAILED, /* the VM could not be destroyed; msg says why */
};

/* Called once per waiter when its job settles, on a worker thread. msg is
 * valid during the call only. */
typedef void (*sbxd_mgr_notify_fn)(void *ud, uint64_t waiter, const char *box_id,
				   enum mgr_outcome outcome, const char *msg);

struct sbxd_mgr_config {
	store *st;
	const struct sbxd_vm_ops *vm;
	void *vm_ctx;
	unsigned boot_timeout_s; /* agent answer after VM start; 0: 120 */
	sbxd_mgr_notify_fn notify;
	void *notify_ud;
};

int sbxd_mgr_new(const struct sbxd_mgr_config *c, sbxd_mgr **ret);
/* Stops: boots in progress give up waiting (their VMs are adopted at the
 * next start), then waits for every worker. NULL-safe, returns NULL. */
sbxd_mgr *sbxd_mgr_free(sbxd_mgr *m);

/* At start, before serving: compare the rows with the VMs that exist.
 * Running VMs with a row are adopted (provisioning until their agent
 * answers, then ready), VMs without a row are destroyed, rows whose VM is
 * gone are marked failed, interrupted deletions are finished. */
int sbxd_mgr_reconcile(sbxd_mgr *m);

/* b was just inserted in state provisioning: start its VM in the
 * background. waiter != 0 is notified when it settles. */
int sbxd_mgr_boot(sbxd_mgr *m, const struct store_box *b, uint64_t waiter);
/* Wait for the running job of box_id: 0, or -ESRCH when it has none (its
 * row is settled; read it). */
int sbxd_mgr_wait(sbxd_mgr *m, const char *box_id, uint64_t waiter);
/* Forget a waiter (its request timed out). */
void sbxd_mgr_unwait(sbxd_mgr *m, const char *box_id, uint64_t waiter);
/* Mark the row deleting, cancel a boot in progress, destroy the VM and
 * remove the rows in the background; waiter gets MGR_DELETED (or
 * MGR_DELETE_FAILED, the row then being failed with the reason). */
int sbxd_mgr_delete(sbxd_mgr *m, const char *box_id, uint64_t waiter);
/* The agent address of a sandbox's VM (see sbxd_vm_ops.agent_address). */
int sbxd_mgr_agent_address(sbxd_mgr *m, const char *vm_name, char *buf, size_t len);
/* Jobs running now (for tests and shutdown logs). */
unsigned sbxd_mgr_jobs(sbxd_mgr *m);
