/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_snap.h - the fixture and helpers of the snapshot store suite,
 * shared by check_snap.c and check_snap_io.c (one suite, one binary).
 */
#pragma once

#include <check.h>
#include <stdbool.h>
#include <stddef.h>

#include "snapshot/snap.h"

/* per test: TMP/state (st), TMP/state2 (st2), TMP/image (a fake image) */
extern char tmp[256], state[300], state2[300], image[300];
extern snap_store *st, *st2;

void setup(void);
void teardown(void);
void xwrite(const char *path, const void *data, size_t len);
void xwrite_str(const char *path, const char *s);
/* A blob of size bytes (content from seed) in store s; fills part. */
void make_blob(snap_store *s, struct snap_part *p, enum snap_part_role role, const char *name,
	       size_t size, int seed);
/* A ready manifest with n zeroed parts on the fake image. */
struct snap_manifest *new_manifest(const char *id, enum snap_kind kind, enum snap_mem_mode mm,
				   size_t n);
/* An fs snapshot with one own 5000-byte layer, saved. */
struct snap_manifest *fs_snapshot(snap_store *s, const char *id, const char *layer);
bool blob_exists(snap_store *s, const char *name);

/* check_snap_io.c: export and import */
void snap_io_add_tests(TCase *limits, TCase *errors);
