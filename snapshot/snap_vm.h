/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap_vm.h - what the VM half of the snapshot module (capture.c,
 * restore.c, zygote.c, vmutil.c) shares. Nothing outside snapshot/
 * includes it.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "host/agent/agent_client.h"
#include "snapshot/snap_int.h"
#include "host/vm/vm.h"

#define SNAPVM_BOOT_WAIT_MS 180000   /* a cold boot until the agent answers (TCG) */
#define SNAPVM_RESTORE_WAIT_MS 30000 /* a restored guest until its agent answers */
#define SNAPVM_ENTROPY 64	     /* bytes of host entropy sent with FIXUP */

/* Compress the whole content of in_fd (read from offset 0) with zstd into
 * a new file out_path (mode 0444). */
int snapvm_compress(int in_fd, const char *out_path);
/* Decompress a zstd file into a new memfd positioned at 0. */
int snapvm_decompress_memfd(const char *path, uint64_t max_bytes, int *ret_fd);
/* A temporary file in dir, already unlinked (O_TMPFILE). */
int snapvm_tmpfile(const char *dir);

/* Connect to the VM's agent, retrying until it answers or timeout_ms. */
int snapvm_agent_connect(vm *v, int timeout_ms, agent_client **ret);
/* Run sync(1) in the guest so a disk layer frozen next holds what the
 * guest wrote. */
int snapvm_guest_sync(agent_client *c, int timeout_ms);
/* A fresh VM name "PREFIX-<8 hex>" for helper VMs (zygote builds, capture
 * conversions). */
char *snapvm_helper_name(const char *prefix);

/* Absolute paths of a manifest's layer parts, newest first, NULL-ended. */
int snapvm_layer_paths(snap_store *s, const struct snap_manifest *m, char ***ret);
/* Fill a part's size and SHA-256 from its blob. */
int snapvm_seal_part(snap_store *s, struct snap_part *p);
/* Add a part (copies blob). */
int snapvm_add_part(struct snap_manifest *m, enum snap_part_role role, const char *blob,
		    bool inherited);
/* Write back and drop a file's pages from the page cache: a RAM blob was
 * read whole by its conversion and checksum, but forks need only the pages
 * their guest touches. */
void snapvm_drop_cache(const char *path);
/* Save a manifest under the store's exclusive lock. */
int snapvm_publish(snap_store *s, const struct snap_manifest *m);
/* Remove a snapshot that failed half-way (its manifest and the blobs only
 * it named); errors are logged, not returned. */
void snapvm_discard(snap_store *s, const char *id);

/* restore.c: start a VM from a memory/zygote snapshot's state (a fork),
 * with the given disk layers (NULL-ended) over image_dir. */
struct snapvm_fork {
	const struct snap_manifest *m; /* memory or zygote snapshot */
	const char *vm_name;
	char *const *layers; /* disk under the new overlay; NULL: the image's rootfs */
	uint64_t disk_bytes; /* 0: as the snapshot */
};
int snapvm_fork(snap_store *s, vm_driver *d, const struct snapvm_fork *f, vm **ret);
