/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_audit.c - the audit log: one row per command run in a sandbox
 * (who, when, what, where, how it ended). A row is written when sbxd
 * accepts the command, before the agent is asked to run it, so a command
 * is in the log even when sbxd dies while it runs; it is finished when the
 * command's end is seen. Rows outlive their sandbox and go by age.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/cleanup.h"
#include "sbxd/store/store_int.h"

#define AUDIT_COLS                                                                                 \
	"seq, sandbox_id, sandbox_name, key_name, command_id, command, cwd, started_ms,"           \
	" ended_ms, exit_code, outcome"

/* Bounds what one row may hold: a command text past it is cut, marked. */
static char *bounded(const char *text)
{
	static const char mark[] = "…[truncated]";
	size_t n = text ? strlen(text) : 0;
	char *s;

	if (n <= STORE_AUDIT_TEXT_MAX)
		return strdup(text ? text : "");
	s = malloc(STORE_AUDIT_TEXT_MAX + sizeof(mark));
	if (!s)
		return NULL;
	n = STORE_AUDIT_TEXT_MAX;
	while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
		n--; /* never cut a UTF-8 sequence in two */
	memcpy(s, text, n);
	memcpy(s + n, mark, sizeof(mark));
	return s;
}

int store_audit_begin(store *s, const struct store_audit *a)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *cmd = bounded(a->command);
	STORE_LOCK(s);
	int r, rc;

	if (!cmd)
		return -ENOMEM;
	r = store_prepare(s,
			  "INSERT INTO audit (sandbox_id, sandbox_name, key_name, command_id,"
			  " command, cwd, started_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, a->box_id);
	store_bind_text(st, 2, a->box_name ? a->box_name : "");
	store_bind_text(st, 3, a->key_name ? a->key_name : "");
	store_bind_text(st, 4, a->command_id ? a->command_id : "");
	store_bind_text(st, 5, cmd);
	store_bind_text(st, 6, a->cwd);
	sqlite3_bind_int64(st, 7, a->started_ms ? a->started_ms : clock_wall_ms());
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? 0 : store_fail(s, rc);
}

int store_audit_finish(store *s, const char *box_id, const char *command_id, int exit_code,
		       const char *outcome)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r, rc;

	/* the newest running row of that command id (ids may be reused) */
	r = store_prepare(s,
			  "UPDATE audit SET ended_ms = ?3, exit_code = ?4, outcome = ?5"
			  " WHERE seq = (SELECT MAX(seq) FROM audit WHERE sandbox_id = ?1"
			  " AND command_id = ?2 AND outcome = 'running')",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, box_id);
	store_bind_text(st, 2, command_id);
	sqlite3_bind_int64(st, 3, clock_wall_ms());
	if (exit_code == STORE_AUDIT_NO_CODE)
		sqlite3_bind_null(st, 4);
	else
		sqlite3_bind_int(st, 4, exit_code);
	store_bind_text(st, 5, outcome);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc);
	return sqlite3_changes(s->db) ? 0 : -ENOENT;
}

int store_audit_sweep(store *s)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r, rc;

	r = store_prepare(s,
			  "UPDATE audit SET outcome = 'lost', ended_ms = ?1"
			  " WHERE outcome = 'running' AND NOT EXISTS (SELECT 1 FROM commands c"
			  " WHERE c.sandbox_id = audit.sandbox_id AND c.id = audit.command_id"
			  " AND c.state IN ('starting', 'running'))",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, clock_wall_ms());
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? sqlite3_changes(s->db) : store_fail(s, rc);
}

int store_audit_prune(store *s, int64_t before_ms)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r, rc;

	r = store_prepare(s, "DELETE FROM audit WHERE started_ms < ? AND outcome != 'running'",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, before_ms);
	rc = sqlite3_step(st);
	return rc == SQLITE_DONE ? sqlite3_changes(s->db) : store_fail(s, rc);
}

static int audit_from_row(sqlite3_stmt *st, struct store_audit *a)
{
	bool oom = false;

	memset(a, 0, sizeof(*a));
	a->seq = sqlite3_column_int64(st, 0);
	a->box_id = store_col_dup(st, 1, &oom);
	a->box_name = store_col_dup(st, 2, &oom);
	a->key_name = store_col_dup(st, 3, &oom);
	a->command_id = store_col_dup(st, 4, &oom);
	a->command = store_col_dup(st, 5, &oom);
	a->cwd = store_col_dup(st, 6, &oom);
	a->started_ms = sqlite3_column_int64(st, 7);
	a->ended_ms = sqlite3_column_int64(st, 8);
	a->exit_code = sqlite3_column_type(st, 9) == SQLITE_NULL ? STORE_AUDIT_NO_CODE
								 : sqlite3_column_int(st, 9);
	a->outcome = store_col_dup(st, 10, &oom);
	if (oom || !a->outcome) {
		store_audit_release(a);
		return -ENOMEM;
	}
	return 0;
}

int store_audit_list(store *s, const char *box_id, int64_t after, unsigned limit,
		     struct store_audit **ret, size_t *ret_n)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	struct store_audit *v = NULL;
	size_t n = 0;
	int r, rc;

	*ret = NULL;
	*ret_n = 0;
	r = store_prepare(s,
			  "SELECT " AUDIT_COLS " FROM audit WHERE sandbox_id = ? AND seq > ?"
			  " ORDER BY seq LIMIT ?",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, box_id);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int64(st, 3, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_audit *nv = realloc(v, (n + 1) * sizeof(*v));

		if (!nv) {
			store_audits_free(v, n);
			return -ENOMEM;
		}
		v = nv;
		r = audit_from_row(st, &v[n]);
		if (r < 0) {
			store_audits_free(v, n);
			return r;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		store_audits_free(v, n);
		return store_fail(s, rc);
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void store_audit_release(struct store_audit *a)
{
	if (!a)
		return;
	free(a->box_id);
	free(a->box_name);
	free(a->key_name);
	free(a->command_id);
	free(a->command);
	free(a->cwd);
	free(a->outcome);
	memset(a, 0, sizeof(*a));
}

void store_audits_free(struct store_audit *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_audit_release(&v[i]);
	free(v);
}
