/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_snap.c - the snapshots table of the store: what the API says about
 * a snapshot (name, owner, status, sizes, run_config, pool size). The
 * snapshot's parts are described by its manifest (snapshot/snap.h), whose
 * id is the row's id.
 *
 * Owner isolation is in the SQL, as for sandboxes: every lookup takes the
 * owner (key id) unless it is STORE_OWNER_ANY. Names are unique per owner.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/cleanup.h"
#include "sbxd/store/store_int.h"

static const char *const snapshot_state_names[SNAPSHOT_STATE_COUNT] = {
    [SNAPSHOT_BUILDING] = "building",
    [SNAPSHOT_READY] = "ready",
    [SNAPSHOT_FAILED] = "failed",
    [SNAPSHOT_DELETING] = "deleting",
};

const char *snapshot_state_to_string(enum snapshot_state s)
{
	if ((int)s < 0 || s >= SNAPSHOT_STATE_COUNT)
		return "unknown";
	return snapshot_state_names[s];
}

enum snapshot_state snapshot_state_from_string(const char *s)
{
	for (int i = 0; i < SNAPSHOT_STATE_COUNT; i++)
		if (s && !strcmp(s, snapshot_state_names[i]))
			return (enum snapshot_state)i;
	return SNAPSHOT_STATE_INVALID;
}

#define SNAP_COLS                                                                                  \
	"id, name, owner, state, status_message, kind, source_sandbox_id, include_memory, vcpus, " \
	"mem_bytes, fs_capacity_bytes, memory_size_bytes, docker_image, image_dir, image_digest, " \
	"run_config, pool_size, created_ms, updated_ms"

static int snap_from_row(sqlite3_stmt *st, struct store_snapshot *ret)
{
	struct store_snapshot v = {0};
	bool oom = false;
	const char *id = (const char *)sqlite3_column_text(st, 0);

	snprintf(v.id, sizeof(v.id), "%s", id ? id : "");
	v.name = store_col_dup(st, 1, &oom);
	v.owner = sqlite3_column_int64(st, 2);
	v.state = snapshot_state_from_string((const char *)sqlite3_column_text(st, 3));
	if ((int)v.state < 0)
		v.state = SNAPSHOT_FAILED;
	v.status_message = store_col_dup(st, 4, &oom);
	v.kind = store_col_dup(st, 5, &oom);
	v.source_box_id = store_col_dup(st, 6, &oom);
	v.include_memory = sqlite3_column_int(st, 7) != 0;
	v.vcpus = (unsigned)sqlite3_column_int64(st, 8);
	v.mem_bytes = (uint64_t)sqlite3_column_int64(st, 9);
	v.fs_capacity_bytes = (uint64_t)sqlite3_column_int64(st, 10);
	v.memory_size_bytes = (uint64_t)sqlite3_column_int64(st, 11);
	v.docker_image = store_col_dup(st, 12, &oom);
	v.image_dir = store_col_dup(st, 13, &oom);
	v.image_digest = store_col_dup(st, 14, &oom);
	v.run_config = store_col_dup(st, 15, &oom);
	v.pool_size = (unsigned)sqlite3_column_int64(st, 16);
	v.created_ms = sqlite3_column_int64(st, 17);
	v.updated_ms = sqlite3_column_int64(st, 18);
	if (oom || !v.name || !v.kind) {
		store_snapshot_release(&v);
		return -ENOMEM;
	}
	*ret = v;
	return 0;
}

int store_snapshot_insert(store *s, const struct store_snapshot *v)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int64_t now = clock_wall_ms();
	int r, rc;

	if (!v->id[0] || !v->name || !v->kind || (int)v->state < 0 ||
	    v->state >= SNAPSHOT_STATE_COUNT)
		return -EINVAL;
	r = store_prepare(s,
			  "INSERT INTO snapshots (" SNAP_COLS ") VALUES "
			  "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, v->id);
	store_bind_text(st, 2, v->name);
	sqlite3_bind_int64(st, 3, v->owner);
	store_bind_text(st, 4, snapshot_state_to_string(v->state));
	store_bind_text(st, 5, v->status_message);
	store_bind_text(st, 6, v->kind);
	store_bind_text(st, 7, v->source_box_id);
	sqlite3_bind_int(st, 8, v->include_memory);
	sqlite3_bind_int64(st, 9, v->vcpus);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)v->mem_bytes);
	sqlite3_bind_int64(st, 11, (sqlite3_int64)v->fs_capacity_bytes);
	sqlite3_bind_int64(st, 12, (sqlite3_int64)v->memory_size_bytes);
	store_bind_text(st, 13, v->docker_image);
	store_bind_text(st, 14, v->image_dir);
	store_bind_text(st, 15, v->image_digest);
	store_bind_text(st, 16, v->run_config);
	sqlite3_bind_int64(st, 17, v->pool_size);
	sqlite3_bind_int64(st, 18, v->created_ms ? v->created_ms : now);
	sqlite3_bind_int64(st, 19, v->updated_ms ? v->updated_ms : now);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc);
	return 0;
}

int store_snapshot_get(store *s, const char *id_or_name, int64_t owner, struct store_snapshot *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r, rc;

	r = store_prepare(s,
			  "SELECT " SNAP_COLS " FROM snapshots WHERE (id = ?1 OR name = ?1)"
			  " AND (?2 < 0 OR owner = ?2) ORDER BY id = ?1 DESC, created_ms, id"
			  " LIMIT 1",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id_or_name);
	sqlite3_bind_int64(st, 2, owner);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_fail(s, rc);
	return snap_from_row(st, ret);
}

/* The LIKE pattern of a substring: %, _ and \ escaped with \. */
static char *like_pattern(const char *sub)
{
	size_t n = strlen(sub);
	char *p = malloc(2 * n + 3), *q = p;

	if (!p)
		return NULL;
	*q++ = '%';
	for (const char *c = sub; *c; c++) {
		if (*c == '%' || *c == '_' || *c == '\\')
			*q++ = '\\';
		*q++ = *c;
	}
	*q++ = '%';
	*q = '\0';
	return p;
}

int store_snapshot_list(store *s, int64_t owner, const char *name_contains, unsigned limit,
			unsigned offset, struct store_snapshot **ret, size_t *ret_n, bool *ret_more)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *pattern = NULL;
	STORE_LOCK(s);
	struct store_snapshot *v = NULL;
	size_t n = 0;
	bool more = false;
	int r, rc;

	if (name_contains && !(pattern = like_pattern(name_contains)))
		return -ENOMEM;
	/* LIKE is case-insensitive for ASCII, which is what names are. */
	r = store_prepare(s,
			  "SELECT " SNAP_COLS " FROM snapshots WHERE (?1 < 0 OR owner = ?1)"
			  " AND (?2 IS NULL OR name LIKE ?2 ESCAPE '\\')"
			  " ORDER BY created_ms DESC, id LIMIT ?3 OFFSET ?4",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, owner);
	store_bind_text(st, 2, pattern);
	/* one row more than asked tells whether there is a next page */
	sqlite3_bind_int64(st, 3, limit ? (sqlite3_int64)limit + 1 : -1);
	sqlite3_bind_int64(st, 4, offset);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_snapshot *nv;

		if (limit && n == limit) {
			more = true;
			break;
		}
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			store_snapshots_free(v, n);
			return -ENOMEM;
		}
		v = nv;
		r = snap_from_row(st, &v[n]);
		if (r < 0) {
			store_snapshots_free(v, n);
			return r;
		}
		n++;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		store_snapshots_free(v, n);
		return store_fail(s, rc);
	}
	*ret = v;
	*ret_n = n;
	if (ret_more)
		*ret_more = more;
	return 0;
}

static int step_changed(store *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		return store_fail(s, rc);
	return sqlite3_changes(s->db) > 0 ? 0 : -ENOENT;
}

int store_snapshot_set_state(store *s, const char *id, enum snapshot_state state, const char *msg)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	if ((int)state < 0 || state >= SNAPSHOT_STATE_COUNT)
		return -EINVAL;
	r = store_prepare(s,
			  "UPDATE snapshots SET state = ?2, status_message = ?3, updated_ms = ?4"
			  " WHERE id = ?1",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, snapshot_state_to_string(state));
	store_bind_text(st, 3, msg);
	sqlite3_bind_int64(st, 4, clock_wall_ms());
	return step_changed(s, st);
}

int store_snapshot_set_built(store *s, const char *id, const struct store_snapshot_built *b)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	r = store_prepare(
	    s,
	    "UPDATE snapshots SET state = 'ready', status_message = NULL,"
	    " kind = COALESCE(?2, kind),"
	    " vcpus = CASE WHEN ?3 > 0 THEN ?3 ELSE vcpus END,"
	    " mem_bytes = CASE WHEN ?4 > 0 THEN ?4 ELSE mem_bytes END,"
	    " fs_capacity_bytes = CASE WHEN ?5 > 0 THEN ?5 ELSE fs_capacity_bytes END,"
	    " memory_size_bytes = ?6, image_dir = COALESCE(?7, image_dir),"
	    " image_digest = COALESCE(?8, image_digest), updated_ms = ?9"
	    " WHERE id = ?1",
	    &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, b->kind);
	sqlite3_bind_int64(st, 3, b->vcpus);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)b->mem_bytes);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)b->fs_capacity_bytes);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)b->memory_size_bytes);
	store_bind_text(st, 7, b->image_dir);
	store_bind_text(st, 8, b->image_digest);
	sqlite3_bind_int64(st, 9, clock_wall_ms());
	return step_changed(s, st);
}

int store_snapshot_set_pool(store *s, const char *id, unsigned pool_size)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	r = store_prepare(s, "UPDATE snapshots SET pool_size = ?2, updated_ms = ?3 WHERE id = ?1",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, pool_size);
	sqlite3_bind_int64(st, 3, clock_wall_ms());
	return step_changed(s, st);
}

int store_snapshot_delete(store *s, const char *id)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	r = store_prepare(s, "DELETE FROM snapshots WHERE id = ?1", &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id);
	return step_changed(s, st);
}

void store_snapshot_release(struct store_snapshot *v)
{
	if (!v)
		return;
	free(v->name);
	free(v->status_message);
	free(v->kind);
	free(v->source_box_id);
	free(v->docker_image);
	free(v->image_dir);
	free(v->image_digest);
	free(v->run_config);
	memset(v, 0, sizeof(*v));
}

void store_snapshots_free(struct store_snapshot *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_snapshot_release(&v[i]);
	free(v);
}
