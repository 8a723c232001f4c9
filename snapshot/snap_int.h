/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap_int.h - internals of the snapshot store shared by store.c,
 * manifest.c, verify.c, refs.c and export.c.
 *
 * Errors follow base/err.h: `return err_set(-ENOENT, "snapshot %s: ...", id);`.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "snapshot/snap.h"

#define SNAP_BLOB_MAX 128	   /* blob names are [a-z0-9][a-z0-9.-]{0,127} */
#define SNAP_SIZE_MAX (1ULL << 50) /* bound on every size in a manifest */
#define SNAP_NAME_MAX 128	   /* a person's label */
#define SNAP_MESSAGE_MAX 4096	   /* status_message */
#define SNAP_PATH_MAX 4096	   /* image dir */

struct snap_store {
	char *state_dir; /* STATE, absolute, symlinks resolved */
	char *dir;	 /* STATE/snapshots */
	char *blobs_dir; /* STATE/snapshots/blobs */
	char *vms_dir;	 /* STATE/vms */
	int lock_fd;	 /* STATE/snapshots/.lock */
	/* flock() locks belong to the open file, which every thread shares:
	 * the rwlock gives threads of this process the same exclusion. */
	pthread_rwlock_t rw;
	pthread_mutex_t mu; /* guards excl and shared */
	bool excl;
	unsigned shared;
};

bool snap_id_is_valid(const char *id);
bool snap_blob_name_is_valid(const char *name);
bool snap_vm_name_is_valid(const char *name);

/* STATE/snapshots/ID and its manifest.json (malloc'ed). */
char *snap_manifest_dir(const snap_store *s, const char *id);
char *snap_manifest_path(const snap_store *s, const char *id);

/* Read a whole regular file of at most max bytes (NUL-terminated). */
int snap_read_file(const char *path, size_t max, char **ret, size_t *ret_len);
/* Write path atomically: temp file + fsync + rename + fsync of the dir. */
int snap_write_atomic(const char *path, const char *data, size_t len);
int snap_fsync_dir(const char *dir);
/* rm -rf of a directory we own (no symlinks followed). */
int snap_rmtree(const char *path);

/* A sorted, de-duplicated set of strings. */
struct snap_strset {
	char **v;
	size_t n, cap;
};
int snap_strset_add(struct snap_strset *set, const char *str);
void snap_strset_sort(struct snap_strset *set); /* sorts and removes duplicates */
bool snap_strset_has(const struct snap_strset *set, const char *str); /* sorted sets */
void snap_strset_release(struct snap_strset *set);
char **snap_strset_steal(struct snap_strset *set); /* NULL-ended strv */

/* Blob names a manifest file names, also when it does not pass the strict
 * checks of snap_manifest_parse() (a damaged or unknown field elsewhere
 * must not let GC free blobs it still names). -EBADMSG when the file is not
 * JSON with format_version 1 and a parts array: then nobody can tell what
 * it names, so nothing may be freed. */
int snap_manifest_blob_names(const char *json, size_t len, struct snap_strset *out, char *err,
			     size_t errlen);

/* The blobs VMs use: blob name -> VM names, from STATE/vms/NAME/vm.info.
 * One entry per (blob, vm). */
struct snap_vm_use {
	char *blob;
	char *vm;
};
int snap_scan_vm_uses(snap_store *s, struct snap_vm_use **ret, size_t *ret_n);
void snap_vm_uses_free(struct snap_vm_use *u, size_t n);

/* The names of the blob files of a vm.info file (its ram_file and layers
 * that are paths inside blobs_dir). Exposed for the unit suite. */
int snap_vm_info_blobs(const char *path, const char *blobs_dir, struct snap_strset *out);

/* Verify cache of this process (verify.c). */
void snap_verify_cache_clear(void);
/* SHA-256 of an open file (read from its start). */
int snap_sha256_fd(int fd, char hex[65], uint64_t *ret_size,
		   void (*progress)(void *ud, uint64_t done), void *ud);
void snap_hex(const unsigned char *in, size_t n, char *out);

/* Does blobs/NAME hold exactly part p (size and SHA-256, through the
 * verify cache)? 0 yes, -ENOENT missing, -EBADMSG other content. */
int snap_blob_check(snap_store *s, const struct snap_part *p);
