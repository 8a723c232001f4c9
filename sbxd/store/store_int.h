/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_int.h - internals shared by store.c (database, schema, keys) and
 * store_box.c (sandboxes, commands). Not for other modules.
 */
#pragma once

#include <pthread.h>
#include <sqlite3.h>

#include "sbxd/store/store.h"

struct store {
	sqlite3 *db;
	pthread_mutex_t lock;
};

/* Records SQLite's message in err_msg() (base/err.h) and returns -EIO (or
 * -EEXIST for a constraint violation, -EBUSY when locked). */
int store_fail(store *s, int rc);
/* Prepare sql; on failure the error is recorded. */
int store_prepare(store *s, const char *sql, sqlite3_stmt **ret);
/* Bind a string, or NULL when str is NULL. */
int store_bind_text(sqlite3_stmt *st, int idx, const char *str);
/* A strdup() of column col, NULL when the column is NULL; *ret_oom is set
 * when a copy could not be made. */
char *store_col_dup(sqlite3_stmt *st, int col, bool *ret_oom);
/* Runs sql (no rows) under the caller's lock. */
int store_exec(store *s, const char *sql);

static inline void store_finalizep(sqlite3_stmt **st)
{
	if (*st)
		sqlite3_finalize(*st);
}
#define _cleanup_stmt_ __attribute__((cleanup(store_finalizep)))

static inline void store_unlockp(store **s)
{
	if (*s)
		pthread_mutex_unlock(&(*s)->lock);
}
/* Holds s->lock until the end of the scope. */
#define STORE_LOCK(s)                                                                              \
	__attribute__((cleanup(store_unlockp))) store *_store_locked_ = (s);                       \
	pthread_mutex_lock(&_store_locked_->lock)
