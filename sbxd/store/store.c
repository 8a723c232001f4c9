/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store.c - the SQLite database of sbxd: opening, WAL, schema migrations and
 * the API keys table. Sandboxes and commands are in store_box.c, snapshots
 * in store_snap.c.
 *
 * Invariants:
 *  - PRAGMA user_version is the schema version; migrations run in one
 *    transaction each, so a crash leaves the old or the new schema;
 *  - foreign keys are on: a command cannot outlive its sandbox;
 *  - a key is stored only as the SHA-256 of its text; revoking keeps the
 *    row (sandboxes keep their owner) and stamps revoked_ms.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/cleanup.h"
#include "base/err.h"
#include "sbxd/store/store_int.h"

/* migrations[i] takes the schema from version i to i + 1. Later versions
 * append to this list; a released entry never changes. */
static const char *const migrations[] = {
    "CREATE TABLE keys ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " hash TEXT NOT NULL UNIQUE,"
    " admin INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " revoked_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE sandboxes ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " owner INTEGER NOT NULL REFERENCES keys(id),"
    " state TEXT NOT NULL CHECK (state IN"
    "  ('provisioning','ready','failed','stopped','deleting')),"
    " status_message TEXT,"
    " vcpus INTEGER NOT NULL,"
    " mem_bytes INTEGER NOT NULL,"
    " fs_capacity_bytes INTEGER NOT NULL,"
    " image TEXT NOT NULL,"
    " vm_name TEXT NOT NULL UNIQUE,"
    " snapshot_id TEXT,"
    " persistent INTEGER NOT NULL DEFAULT 1,"
    " preserve_memory_on_stop INTEGER NOT NULL DEFAULT 0,"
    " idle_ttl_seconds INTEGER NOT NULL DEFAULT 600,"
    " delete_after_stop_seconds INTEGER NOT NULL DEFAULT 0,"
    " labels TEXT, run_config TEXT, proxy_config TEXT, mount_config TEXT,"
    " access_delegation TEXT,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " stopped_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX sandboxes_owner ON sandboxes(owner);"
    "CREATE TABLE commands ("
    " sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
    " id TEXT NOT NULL,"
    " agent_cmd_id INTEGER NOT NULL DEFAULT 0,"
    " state TEXT NOT NULL,"
    " exit_code INTEGER NOT NULL DEFAULT -1,"
    " command TEXT,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY (sandbox_id, id));"
    /* A placeholder for snapshots; version 2 replaces it (never written). */
    "CREATE TABLE snapshots ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " owner INTEGER NOT NULL REFERENCES keys(id),"
    " state TEXT NOT NULL,"
    " status_message TEXT,"
    " source_sandbox_id TEXT,"
    " fs_capacity_bytes INTEGER NOT NULL DEFAULT 0,"
    " path TEXT,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);",

    /* Version 2: snapshots (issue 4). The manifest on disk (snapshot/snap.h)
     * is the truth for a snapshot's parts; this row for its API metadata,
     * its owner and its pool. */
    "DROP TABLE snapshots;"
    "CREATE TABLE snapshots ("
    " id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " owner INTEGER NOT NULL REFERENCES keys(id),"
    " state TEXT NOT NULL CHECK (state IN ('building','ready','failed','deleting')),"
    " status_message TEXT,"
    " kind TEXT NOT NULL DEFAULT 'fs',"
    " source_sandbox_id TEXT,"
    " include_memory INTEGER NOT NULL DEFAULT 0,"
    " vcpus INTEGER NOT NULL DEFAULT 0,"
    " mem_bytes INTEGER NOT NULL DEFAULT 0,"
    " fs_capacity_bytes INTEGER NOT NULL DEFAULT 0,"
    " memory_size_bytes INTEGER NOT NULL DEFAULT 0,"
    " docker_image TEXT,"
    " image_dir TEXT,"
    " image_digest TEXT,"
    " run_config TEXT,"
    " pool_size INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " UNIQUE (owner, name));"
    "CREATE INDEX snapshots_owner ON snapshots(owner);",

    /* Version 3: stop and start, TTLs (issue 5). The state column keeps
     * its CHECK set: a transition (stopping, starting) is the state it
     * leaves plus the transition column. */
    "ALTER TABLE sandboxes ADD COLUMN transition TEXT;"
    "ALTER TABLE sandboxes ADD COLUMN stop_snapshot_id TEXT;"
    "ALTER TABLE sandboxes ADD COLUMN stop_memory INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE sandboxes ADD COLUMN active_ms INTEGER NOT NULL DEFAULT 0;",

    /* Version 4: quotas per API key (0: only the host's caps), a hard TTL
     * per sandbox (0: none), and the audit log of commands (issue 5).
     * Audit rows outlive their sandbox (no foreign key): they are removed
     * by age, not by deleting the sandbox. */
    "ALTER TABLE keys ADD COLUMN max_sandboxes INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE keys ADD COLUMN max_mem_bytes INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE sandboxes ADD COLUMN max_lifetime_seconds INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE audit ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " sandbox_id TEXT NOT NULL,"
    " sandbox_name TEXT NOT NULL,"
    " key_name TEXT NOT NULL,"
    " command_id TEXT NOT NULL,"
    " command TEXT NOT NULL,"
    " cwd TEXT,"
    " started_ms INTEGER NOT NULL,"
    " ended_ms INTEGER NOT NULL DEFAULT 0,"
    " exit_code INTEGER,"
    " outcome TEXT NOT NULL DEFAULT 'running');"
    "CREATE INDEX audit_sandbox ON audit(sandbox_id, seq);",
};

_Static_assert(ARRAY_SIZE(migrations) == STORE_SCHEMA_VERSION,
	       "STORE_SCHEMA_VERSION must be the number of migrations");

int store_fail(store *s, int rc)
{
	err_set(0, "%s", s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return -ENOENT;
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	default:
		return -EIO;
	}
}

int store_prepare(store *s, const char *sql, sqlite3_stmt **ret)
{
	int rc = sqlite3_prepare_v2(s->db, sql, -1, ret, NULL);

	if (rc != SQLITE_OK)
		return store_fail(s, rc);
	return 0;
}

int store_bind_text(sqlite3_stmt *st, int idx, const char *str)
{
	if (!str)
		return sqlite3_bind_null(st, idx);
	return sqlite3_bind_text(st, idx, str, -1, SQLITE_TRANSIENT);
}

char *store_col_dup(sqlite3_stmt *st, int col, bool *ret_oom)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	char *c;

	if (!t)
		return NULL;
	c = strdup((const char *)t);
	if (!c)
		*ret_oom = true;
	return c;
}

int store_exec(store *s, const char *sql)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : store_fail(s, rc);
}

static int pragma_int(store *s, const char *sql, int *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s, sql, &st);

	if (r < 0)
		return r;
	if (sqlite3_step(st) != SQLITE_ROW)
		return store_fail(s, sqlite3_errcode(s->db));
	*ret = sqlite3_column_int(st, 0);
	return 0;
}

static int migrate(store *s)
{
	int version, r;

	r = pragma_int(s, "PRAGMA user_version", &version);
	if (r < 0)
		return r;
	if (version > (int)ARRAY_SIZE(migrations)) {
		return err_set(
		    -EPROTO,
		    "the database has schema version %d, but this sbxd knows only up to %d "
		    "(was it written by a newer sbxd?)",
		    version, (int)ARRAY_SIZE(migrations));
	}
	for (; version < (int)ARRAY_SIZE(migrations); version++) {
		char bump[64];

		r = store_exec(s, "BEGIN IMMEDIATE");
		if (r < 0)
			return r;
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", version + 1);
		r = store_exec(s, migrations[version]);
		if (r == 0)
			r = store_exec(s, bump);
		if (r == 0)
			r = store_exec(s, "COMMIT");
		if (r < 0) {
			char saved[ERR_MSG_MAX];

			snprintf(saved, sizeof(saved), "%s", err_msg());
			(void)store_exec(s, "ROLLBACK");
			return err_set(r, "%s", saved);
		}
	}
	return 0;
}

int store_open(const char *path, store **ret)
{
	store *s;
	int rc, r;

	err_clear();
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	rc = sqlite3_open_v2(
	    path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		r = store_fail(s, rc);
		err_set(r, "cannot open %s: %s", path,
			s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto out_close;
	}
	/* A CLI "sbxd key create" may write while sbxd serve holds the file. */
	sqlite3_busy_timeout(s->db, 5000);
	sqlite3_extended_result_codes(s->db, 1);
	r = store_exec(s, "PRAGMA journal_mode = WAL");
	if (r == 0)
		r = store_exec(s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON");
	if (r == 0)
		r = migrate(s);
	if (r < 0)
		goto out_close;
	*ret = s;
	return 0;

out_close:
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return r;
}

store *store_close(store *s)
{
	if (!s)
		return NULL;
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return NULL;
}

int store_journal_mode(store *s, char *buf, size_t len)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r = store_prepare(s, "PRAGMA journal_mode", &st);

	if (r < 0)
		return r;
	if (sqlite3_step(st) != SQLITE_ROW)
		return store_fail(s, sqlite3_errcode(s->db));
	snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
	return 0;
}

int store_schema_version(store *s)
{
	STORE_LOCK(s);
	int v, r = pragma_int(s, "PRAGMA user_version", &v);

	return r < 0 ? r : v;
}

/* ---- keys ---- */

int store_key_set_quota(store *s, const char *name, unsigned max_sandboxes, uint64_t max_mem_bytes)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r, rc;

	if (max_mem_bytes > INT64_MAX)
		return -EINVAL;
	r = store_prepare(s, "UPDATE keys SET max_sandboxes = ?, max_mem_bytes = ? WHERE name = ?",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, max_sandboxes);
	sqlite3_bind_int64(st, 2, (int64_t)max_mem_bytes);
	store_bind_text(st, 3, name);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc);
	return sqlite3_changes(s->db) ? 0 : -ENOENT;
}

static int key_from_row(sqlite3_stmt *st, struct store_key *ret)
{
	bool oom = false;
	struct store_key k = {
	    .id = sqlite3_column_int64(st, 0),
	    .name = store_col_dup(st, 1, &oom),
	    .admin = sqlite3_column_int(st, 2) != 0,
	    .created_ms = sqlite3_column_int64(st, 3),
	    .revoked_ms = sqlite3_column_int64(st, 4),
	    .max_sandboxes = (unsigned)sqlite3_column_int64(st, 5),
	    .max_mem_bytes = (uint64_t)sqlite3_column_int64(st, 6),
	};

	if (oom || !k.name) {
		free(k.name);
		return -ENOMEM;
	}
	*ret = k;
	return 0;
}

#define KEY_COLS "id, name, admin, created_ms, revoked_ms, max_sandboxes, max_mem_bytes"

int store_key_create(store *s, const char *name, const char *hash, bool admin, int64_t *ret_id)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r, rc;

	r = store_prepare(s, "INSERT INTO keys (name, hash, admin, created_ms) VALUES (?, ?, ?, ?)",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, name);
	store_bind_text(st, 2, hash);
	sqlite3_bind_int(st, 3, admin);
	sqlite3_bind_int64(st, 4, clock_wall_ms());
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc);
	if (ret_id)
		*ret_id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

static int key_prepare(store *s, const char *where, sqlite3_stmt **ret)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT " KEY_COLS " FROM keys WHERE %s", where);
	return store_prepare(s, sql, ret);
}

/* The key row st selects: 0, -ENOENT or an error. */
static int key_step_one(store *s, sqlite3_stmt *st, struct store_key *ret)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_fail(s, rc);
	return key_from_row(st, ret);
}

int store_key_find(store *s, const char *hash, struct store_key *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	struct store_key k;
	int r;

	r = key_prepare(s, "hash = ?", &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, hash);
	r = key_step_one(s, st, &k);
	if (r < 0)
		return r;
	if (k.revoked_ms) {
		store_key_release(&k);
		return -EKEYREVOKED;
	}
	*ret = k;
	return 0;
}

int store_key_get(store *s, int64_t id, struct store_key *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	r = key_prepare(s, "id = ?", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	return key_step_one(s, st, ret);
}

int store_key_get_by_name(store *s, const char *name, struct store_key *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	r = key_prepare(s, "name = ?", &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, name);
	return key_step_one(s, st, ret);
}

int store_key_list(store *s, struct store_key **ret, size_t *ret_n)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	struct store_key *v = NULL;
	size_t n = 0;
	int r, rc;

	r = store_prepare(s, "SELECT " KEY_COLS " FROM keys ORDER BY id", &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_key *nv = realloc(v, (n + 1) * sizeof(*v));

		if (!nv) {
			store_keys_free(v, n);
			return -ENOMEM;
		}
		v = nv;
		r = key_from_row(st, &v[n]);
		if (r < 0) {
			store_keys_free(v, n);
			return r;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		store_keys_free(v, n);
		return store_fail(s, rc);
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int store_key_revoke(store *s, const char *name)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_stmt_ sqlite3_stmt *q = NULL;
	STORE_LOCK(s);
	int r, rc;

	r = store_prepare(s, "SELECT revoked_ms FROM keys WHERE name = ?", &q);
	if (r < 0)
		return r;
	store_bind_text(q, 1, name);
	rc = sqlite3_step(q);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_fail(s, rc);
	if (sqlite3_column_int64(q, 0) != 0)
		return -EALREADY;
	r = store_prepare(s, "UPDATE keys SET revoked_ms = ? WHERE name = ?", &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, clock_wall_ms());
	store_bind_text(st, 2, name);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc);
	return 0;
}

int store_key_default_name(store *s, char *buf, size_t len)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int64_t next;
	int r, rc;

	r = store_prepare(s, "SELECT COALESCE(MAX(id), 0) + 1 FROM keys", &st);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_fail(s, rc);
	next = sqlite3_column_int64(st, 0);
	/* A person may have named a key "key-N" by hand: find a free one. */
	for (;; next++) {
		_cleanup_stmt_ sqlite3_stmt *q = NULL;

		snprintf(buf, len, "key-%" PRId64, next);
		r = store_prepare(s, "SELECT 1 FROM keys WHERE name = ?", &q);
		if (r < 0)
			return r;
		store_bind_text(q, 1, buf);
		rc = sqlite3_step(q);
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_ROW)
			return store_fail(s, rc);
	}
}

void store_key_release(struct store_key *k)
{
	if (!k)
		return;
	free(k->name);
	k->name = NULL;
}

void store_keys_free(struct store_key *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_key_release(&k[i]);
	free(k);
}
