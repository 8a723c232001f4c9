/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store_box.c - the sandboxes and commands tables of the store.
 *
 * Owner isolation is enforced here, in the SQL: every lookup takes the
 * owner (key id) and matches only that owner's rows unless it is
 * STORE_OWNER_ANY (an admin key).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/cleanup.h"
#include "sbxd/store/store_int.h"

static const char *const box_state_names[BOX_STATE_COUNT] = {
    [BOX_PROVISIONING] = "provisioning", [BOX_READY] = "ready",	      [BOX_FAILED] = "failed",
    [BOX_STOPPED] = "stopped",		 [BOX_DELETING] = "deleting", [BOX_STOPPING] = "stopping",
    [BOX_STARTING] = "starting",
};

/* The state column holds the state a transition leaves; the transition
 * column says which one runs. */
static const char *db_state(enum box_state s)
{
	return box_state_to_string(s == BOX_STOPPING   ? BOX_READY
				   : s == BOX_STARTING ? BOX_STOPPED
						       : s);
}

static const char *db_transition(enum box_state s)
{
	return s == BOX_STOPPING || s == BOX_STARTING ? box_state_to_string(s) : NULL;
}

const char *box_state_to_string(enum box_state s)
{
	if ((int)s < 0 || s >= BOX_STATE_COUNT)
		return "unknown";
	return box_state_names[s];
}

enum box_state box_state_from_string(const char *s)
{
	for (int i = 0; i < BOX_STATE_COUNT; i++)
		if (s && !strcmp(s, box_state_names[i]))
			return (enum box_state)i;
	return BOX_STATE_INVALID;
}

#define BOX_COLS                                                                                   \
	"id, name, owner, state, status_message, vcpus, mem_bytes, fs_capacity_bytes, image, "     \
	"vm_name, snapshot_id, persistent, preserve_memory_on_stop, idle_ttl_seconds, "            \
	"delete_after_stop_seconds, labels, run_config, proxy_config, mount_config, "              \
	"access_delegation, created_ms, updated_ms, stopped_ms, transition, stop_snapshot_id, "    \
	"stop_memory, active_ms, max_lifetime_seconds"

static int box_from_row(sqlite3_stmt *st, struct store_box *ret)
{
	struct store_box b = {0};
	bool oom = false;
	const char *id = (const char *)sqlite3_column_text(st, 0);

	snprintf(b.id, sizeof(b.id), "%s", id ? id : "");
	b.name = store_col_dup(st, 1, &oom);
	b.owner = sqlite3_column_int64(st, 2);
	b.state = box_state_from_string((const char *)sqlite3_column_text(st, 3));
	if ((int)b.state < 0)
		b.state = BOX_FAILED;
	b.status_message = store_col_dup(st, 4, &oom);
	b.vcpus = (unsigned)sqlite3_column_int64(st, 5);
	b.mem_bytes = (uint64_t)sqlite3_column_int64(st, 6);
	b.fs_capacity_bytes = (uint64_t)sqlite3_column_int64(st, 7);
	b.image = store_col_dup(st, 8, &oom);
	b.vm_name = store_col_dup(st, 9, &oom);
	b.snapshot_id = store_col_dup(st, 10, &oom);
	b.persistent = sqlite3_column_int(st, 11) != 0;
	b.preserve_memory_on_stop = sqlite3_column_int(st, 12) != 0;
	b.idle_ttl_seconds = sqlite3_column_int64(st, 13);
	b.delete_after_stop_seconds = sqlite3_column_int64(st, 14);
	b.labels = store_col_dup(st, 15, &oom);
	b.run_config = store_col_dup(st, 16, &oom);
	b.proxy_config = store_col_dup(st, 17, &oom);
	b.mount_config = store_col_dup(st, 18, &oom);
	b.access_delegation = store_col_dup(st, 19, &oom);
	b.created_ms = sqlite3_column_int64(st, 20);
	b.updated_ms = sqlite3_column_int64(st, 21);
	b.stopped_ms = sqlite3_column_int64(st, 22);
	if (sqlite3_column_type(st, 23) != SQLITE_NULL) {
		enum box_state t = box_state_from_string((const char *)sqlite3_column_text(st, 23));

		if (t == BOX_STOPPING || t == BOX_STARTING)
			b.state = t;
	}
	b.stop_snapshot_id = store_col_dup(st, 24, &oom);
	b.stop_memory = sqlite3_column_int(st, 25) != 0;
	b.active_ms = sqlite3_column_int64(st, 26);
	b.max_lifetime_seconds = sqlite3_column_int64(st, 27);
	if (oom || !b.name || !b.image || !b.vm_name) {
		store_box_release(&b);
		return -ENOMEM;
	}
	*ret = b;
	return 0;
}

int store_box_insert(store *s, const struct store_box *b)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int64_t now = clock_wall_ms();
	int r, rc;

	if (!b->name || !b->vm_name || !b->image || !b->id[0])
		return -EINVAL;
	r = store_prepare(s,
			  "INSERT INTO sandboxes (" BOX_COLS ") VALUES "
			  "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, b->id);
	store_bind_text(st, 2, b->name);
	sqlite3_bind_int64(st, 3, b->owner);
	store_bind_text(st, 4, db_state(b->state));
	store_bind_text(st, 5, b->status_message);
	sqlite3_bind_int64(st, 6, b->vcpus);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)b->mem_bytes);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)b->fs_capacity_bytes);
	store_bind_text(st, 9, b->image);
	store_bind_text(st, 10, b->vm_name);
	store_bind_text(st, 11, b->snapshot_id);
	sqlite3_bind_int(st, 12, b->persistent);
	sqlite3_bind_int(st, 13, b->preserve_memory_on_stop);
	sqlite3_bind_int64(st, 14, b->idle_ttl_seconds);
	sqlite3_bind_int64(st, 15, b->delete_after_stop_seconds);
	store_bind_text(st, 16, b->labels);
	store_bind_text(st, 17, b->run_config);
	store_bind_text(st, 18, b->proxy_config);
	store_bind_text(st, 19, b->mount_config);
	store_bind_text(st, 20, b->access_delegation);
	sqlite3_bind_int64(st, 21, b->created_ms ? b->created_ms : now);
	sqlite3_bind_int64(st, 22, b->updated_ms ? b->updated_ms : now);
	sqlite3_bind_int64(st, 23, b->stopped_ms);
	store_bind_text(st, 24, db_transition(b->state));
	store_bind_text(st, 25, b->stop_snapshot_id);
	sqlite3_bind_int(st, 26, b->stop_memory);
	sqlite3_bind_int64(st, 27, b->active_ms);
	sqlite3_bind_int64(st, 28, b->max_lifetime_seconds);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc);
	return 0;
}

int store_box_get(store *s, const char *name_or_id, int64_t owner, struct store_box *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r, rc;

	r = store_prepare(s,
			  "SELECT " BOX_COLS " FROM sandboxes WHERE (name = ?1 OR id = ?1)"
			  " AND (?2 < 0 OR owner = ?2) ORDER BY name = ?1 DESC LIMIT 1",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, name_or_id);
	sqlite3_bind_int64(st, 2, owner);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_fail(s, rc);
	return box_from_row(st, ret);
}

int store_box_list(store *s, int64_t owner, struct store_box **ret, size_t *ret_n)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	struct store_box *v = NULL;
	size_t n = 0;
	int r, rc;

	r = store_prepare(s,
			  "SELECT " BOX_COLS " FROM sandboxes WHERE (?1 < 0 OR owner = ?1)"
			  " ORDER BY created_ms, name",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, owner);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_box *nv = realloc(v, (n + 1) * sizeof(*v));

		if (!nv) {
			store_boxes_free(v, n);
			return -ENOMEM;
		}
		v = nv;
		r = box_from_row(st, &v[n]);
		if (r < 0) {
			store_boxes_free(v, n);
			return r;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		store_boxes_free(v, n);
		return store_fail(s, rc);
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Runs an UPDATE/DELETE whose first bound parameter is the sandbox id and
 * maps "no row changed" to -ENOENT. */
static int step_changed(store *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		return store_fail(s, rc);
	return sqlite3_changes(s->db) > 0 ? 0 : -ENOENT;
}

int store_box_set_state(store *s, const char *id, enum box_state state, const char *msg)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	if ((int)state < 0 || state >= BOX_STATE_COUNT)
		return -EINVAL;
	r = store_prepare(s,
			  "UPDATE sandboxes SET state = ?2, status_message = ?3, updated_ms = ?4,"
			  " transition = ?5,"
			  " stopped_ms = CASE WHEN ?6 = 'stopped' THEN ?4"
			  "  WHEN ?6 = 'ready' THEN 0 ELSE stopped_ms END"
			  " WHERE id = ?1",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, db_state(state));
	store_bind_text(st, 3, msg);
	sqlite3_bind_int64(st, 4, clock_wall_ms());
	store_bind_text(st, 5, db_transition(state));
	store_bind_text(st, 6, box_state_to_string(state));
	return step_changed(s, st);
}

int store_box_rename(store *s, const char *id, const char *new_name)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	r = store_prepare(s, "UPDATE sandboxes SET name = ?2, updated_ms = ?3 WHERE id = ?1", &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, new_name);
	sqlite3_bind_int64(st, 3, clock_wall_ms());
	return step_changed(s, st);
}

int store_box_patch(store *s, const char *id, const struct store_box_patch *p)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	r = store_prepare(s,
			  "UPDATE sandboxes SET"
			  " idle_ttl_seconds = CASE WHEN ?2 < 0 THEN idle_ttl_seconds ELSE ?2 END,"
			  " delete_after_stop_seconds ="
			  "  CASE WHEN ?3 < 0 THEN delete_after_stop_seconds ELSE ?3 END,"
			  " run_config = COALESCE(?4, run_config),"
			  " proxy_config = COALESCE(?5, proxy_config),"
			  " updated_ms = ?6 WHERE id = ?1",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, p->idle_ttl_seconds);
	sqlite3_bind_int64(st, 3, p->delete_after_stop_seconds);
	store_bind_text(st, 4, p->run_config);
	store_bind_text(st, 5, p->proxy_config);
	sqlite3_bind_int64(st, 6, clock_wall_ms());
	return step_changed(s, st);
}

int store_box_set_vm(store *s, const char *id, const char *vm_name)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	r = store_prepare(s, "UPDATE sandboxes SET vm_name = ?2, updated_ms = ?3 WHERE id = ?1",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, vm_name);
	sqlite3_bind_int64(st, 3, clock_wall_ms());
	return step_changed(s, st);
}

int store_box_set_stop_snapshot(store *s, const char *id, const char *snap_id, bool memory)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	r = store_prepare(
	    s, "UPDATE sandboxes SET stop_snapshot_id = ?2, stop_memory = ?3 WHERE id = ?1", &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, snap_id);
	sqlite3_bind_int(st, 3, snap_id && memory);
	return step_changed(s, st);
}

int store_box_touch(store *s, const char *id, int64_t ms)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	r = store_prepare(s, "UPDATE sandboxes SET active_ms = MAX(active_ms, ?2) WHERE id = ?1",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id);
	sqlite3_bind_int64(st, 2, ms);
	return step_changed(s, st);
}

int store_box_count_by_snapshot(store *s, const char *snapshot_id, unsigned *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r, rc;

	r = store_prepare(s, "SELECT COUNT(*) FROM sandboxes WHERE snapshot_id = ?1", &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, snapshot_id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_fail(s, rc);
	*ret = (unsigned)sqlite3_column_int64(st, 0);
	return 0;
}

int store_box_delete(store *s, const char *id)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	/* commands go with it (ON DELETE CASCADE) */
	r = store_prepare(s, "DELETE FROM sandboxes WHERE id = ?1", &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, id);
	return step_changed(s, st);
}

int store_box_usage(store *s, struct store_usage *ret)
{
	return store_box_usage_of(s, STORE_OWNER_ANY, ret);
}

/* What holds a VM (or is about to): stopped sandboxes cost disk only. */
int store_box_usage_of(store *s, int64_t owner, struct store_usage *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r, rc;

	r = store_prepare(s,
			  "SELECT COUNT(*), COALESCE(SUM(vcpus), 0), COALESCE(SUM(mem_bytes), 0)"
			  " FROM sandboxes WHERE (state IN ('provisioning', 'ready', 'deleting')"
			  " OR transition = 'starting') AND (?1 < 0 OR owner = ?1)",
			  &st);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, owner);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_fail(s, rc);
	ret->sandboxes = (unsigned)sqlite3_column_int64(st, 0);
	ret->vcpus = (unsigned)sqlite3_column_int64(st, 1);
	ret->mem_bytes = (uint64_t)sqlite3_column_int64(st, 2);
	return 0;
}

void store_box_release(struct store_box *b)
{
	if (!b)
		return;
	free(b->name);
	free(b->status_message);
	free(b->image);
	free(b->vm_name);
	free(b->snapshot_id);
	free(b->labels);
	free(b->run_config);
	free(b->proxy_config);
	free(b->mount_config);
	free(b->access_delegation);
	free(b->stop_snapshot_id);
	memset(b, 0, sizeof(*b));
}

void store_boxes_free(struct store_box *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_box_release(&b[i]);
	free(b);
}

/* ---- commands ---- */

#define CMD_COLS "id, sandbox_id, agent_cmd_id, state, exit_code, command, created_ms, updated_ms"

static int cmd_from_row(sqlite3_stmt *st, struct store_cmd *ret)
{
	struct store_cmd c = {0};
	bool oom = false;
	const char *box = (const char *)sqlite3_column_text(st, 1);

	c.id = store_col_dup(st, 0, &oom);
	snprintf(c.box_id, sizeof(c.box_id), "%s", box ? box : "");
	c.agent_cmd_id = (uint32_t)sqlite3_column_int64(st, 2);
	c.state = store_col_dup(st, 3, &oom);
	c.exit_code = sqlite3_column_int(st, 4);
	c.command = store_col_dup(st, 5, &oom);
	c.created_ms = sqlite3_column_int64(st, 6);
	c.updated_ms = sqlite3_column_int64(st, 7);
	if (oom || !c.id || !c.state) {
		store_cmd_release(&c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

int store_cmd_insert(store *s, const struct store_cmd *c)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int64_t now = clock_wall_ms();
	int r, rc;

	if (!c->id || !c->box_id[0])
		return -EINVAL;
	r = store_prepare(s, "INSERT INTO commands (" CMD_COLS ") VALUES (?,?,?,?,?,?,?,?)", &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, c->id);
	store_bind_text(st, 2, c->box_id);
	sqlite3_bind_int64(st, 3, c->agent_cmd_id);
	store_bind_text(st, 4, c->state ? c->state : "starting");
	sqlite3_bind_int(st, 5, c->exit_code);
	store_bind_text(st, 6, c->command);
	sqlite3_bind_int64(st, 7, now);
	sqlite3_bind_int64(st, 8, now);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc);
	return 0;
}

int store_cmd_get(store *s, const char *box_id, const char *id, struct store_cmd *ret)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r, rc;

	r = store_prepare(s, "SELECT " CMD_COLS " FROM commands WHERE sandbox_id = ? AND id = ?",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, box_id);
	store_bind_text(st, 2, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_fail(s, rc);
	return cmd_from_row(st, ret);
}

int store_cmd_update(store *s, const char *box_id, const char *id, const char *state,
		     uint32_t agent_cmd_id, int exit_code)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	int r;

	r = store_prepare(s,
			  "UPDATE commands SET state = COALESCE(?3, state),"
			  " agent_cmd_id = CASE WHEN ?4 = 0 THEN agent_cmd_id ELSE ?4 END,"
			  " exit_code = ?5, updated_ms = ?6 WHERE sandbox_id = ?1 AND id = ?2",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, box_id);
	store_bind_text(st, 2, id);
	store_bind_text(st, 3, state);
	sqlite3_bind_int64(st, 4, agent_cmd_id);
	sqlite3_bind_int(st, 5, exit_code);
	sqlite3_bind_int64(st, 6, clock_wall_ms());
	return step_changed(s, st);
}

int store_cmd_list(store *s, const char *box_id, struct store_cmd **ret, size_t *ret_n)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	STORE_LOCK(s);
	struct store_cmd *v = NULL;
	size_t n = 0;
	int r, rc;

	r = store_prepare(s,
			  "SELECT " CMD_COLS " FROM commands WHERE sandbox_id = ?"
			  " ORDER BY created_ms, id",
			  &st);
	if (r < 0)
		return r;
	store_bind_text(st, 1, box_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_cmd *nv = realloc(v, (n + 1) * sizeof(*v));

		if (!nv) {
			store_cmds_free(v, n);
			return -ENOMEM;
		}
		v = nv;
		r = cmd_from_row(st, &v[n]);
		if (r < 0) {
			store_cmds_free(v, n);
			return r;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		store_cmds_free(v, n);
		return store_fail(s, rc);
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void store_cmd_release(struct store_cmd *c)
{
	if (!c)
		return;
	free(c->id);
	free(c->state);
	free(c->command);
	memset(c, 0, sizeof(*c));
}

void store_cmds_free(struct store_cmd *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_cmd_release(&c[i]);
	free(c);
}
