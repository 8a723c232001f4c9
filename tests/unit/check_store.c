/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_store.c - sbxd's SQLite store: schema and WAL, API keys (hashing,
 * revocation), sandboxes (CRUD, owner isolation, usage), commands,
 * snapshots (CRUD, names per owner, filters and pages, the v1 -> v2
 * migration); plus
 * the key and id generators of key.c.
 *
 * Each test opens a fresh database in its own temporary directory.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "sbxd/api/api_req.h"
#include "base/log.h"
#include "sbxd/common/key.h"
#include "sbxd/store/store.h"

LOG_DEFINE_STATE("check_store");

static char dir[256];
static char dbpath[300];
static store *st;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_store.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(dbpath, sizeof(dbpath), "%s/sbxd.db", dir);
	ck_assert_int_eq(store_open(dbpath, &st), 0);
}

static void teardown(void)
{
	char cmd[400];

	st = store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}

static int64_t add_key(const char *name, bool admin)
{
	char hash[SBXD_KEY_HASH_LEN + 1];
	int64_t id = 0;

	sbxd_key_hash(name, strlen(name), hash);
	ck_assert_int_eq(store_key_create(st, name, hash, admin, &id), 0);
	return id;
}

/* A row with the fields the schema requires. */
static void make_box(struct store_box *b, const char *name, int64_t owner)
{
	memset(b, 0, sizeof(*b));
	ck_assert_int_eq(sbxd_uuid4(b->id), 0);
	b->name = (char *)name;
	b->owner = owner;
	b->state = BOX_PROVISIONING;
	b->vcpus = 1;
	b->mem_bytes = 512ull << 20;
	b->fs_capacity_bytes = 2ull << 30;
	b->image = (char *)"/images/default";
	b->vm_name = b->id;
	b->idle_ttl_seconds = 600;
	b->persistent = true;
}

/* ---- schema ---- */

START_TEST(test_store_open_creates_schema_in_wal_mode)
{
	char mode[16];

	ck_assert_int_eq(store_schema_version(st), STORE_SCHEMA_VERSION);
	ck_assert_int_eq(store_journal_mode(st, mode, sizeof(mode)), 0);
	ck_assert_str_eq(mode, "wal");
}
END_TEST

START_TEST(test_store_reopen_keeps_rows_and_version)
{
	struct store_box b, got;
	int64_t k = add_key("k1", false);

	make_box(&b, "keep", k);
	ck_assert_int_eq(store_box_insert(st, &b), 0);
	st = store_close(st);
	ck_assert_int_eq(store_open(dbpath, &st), 0);
	ck_assert_int_eq(store_schema_version(st), STORE_SCHEMA_VERSION);
	ck_assert_int_eq(store_box_get(st, "keep", STORE_OWNER_ANY, &got), 0);
	ck_assert_str_eq(got.id, b.id);
	store_box_release(&got);
}
END_TEST

START_TEST(test_store_refuses_a_newer_schema)
{
	sqlite3 *db;

	st = store_close(st);
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(store_open(dbpath, &st), -EPROTO);
	ck_assert_ptr_nonnull(strstr(err_msg(), "newer sbxd"));
	st = NULL;
}
END_TEST

START_TEST(test_store_wal_lets_a_second_handle_see_commits)
{
	store *other = NULL;
	struct store_key k;
	char hash[SBXD_KEY_HASH_LEN + 1];

	ck_assert_int_eq(store_open(dbpath, &other), 0);
	add_key("shared", false);
	sbxd_key_hash("shared", 6, hash);
	ck_assert_int_eq(store_key_find(other, hash, &k), 0);
	ck_assert_str_eq(k.name, "shared");
	store_key_release(&k);
	store_close(other);
}
END_TEST

/* ---- keys ---- */

START_TEST(test_key_generate_has_prefix_length_and_alphabet)
{
	char a[SBXD_KEY_LEN + 1], b[SBXD_KEY_LEN + 1];

	ck_assert_int_eq(sbxd_key_generate(a, sizeof(a)), 0);
	ck_assert_int_eq(sbxd_key_generate(b, sizeof(b)), 0);
	ck_assert_int_eq(strlen(a), SBXD_KEY_LEN);
	ck_assert_int_eq(strncmp(a, SBXD_KEY_PREFIX, 4), 0);
	ck_assert_str_ne(a, b);
	for (const char *p = a + 4; *p; p++)
		ck_assert((*p >= 'a' && *p <= 'z') || (*p >= '2' && *p <= '7'));
	ck_assert_int_eq(sbxd_key_generate(a, 10), -ENOBUFS);
}
END_TEST

START_TEST(test_key_hash_is_hex_sha256)
{
	char hex[SBXD_KEY_HASH_LEN + 1];

	sbxd_key_hash("abc", 3, hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(test_base32_matches_rfc4648_vectors)
{
	static const struct {
		const char *in, *out;
	} v[] = {{"", ""},
		 {"f", "my"},
		 {"fo", "mzxq"},
		 {"foo", "mzxw6"},
		 {"foob", "mzxw6yq"},
		 {"fooba", "mzxw6ytb"},
		 {"foobar", "mzxw6ytboi"}};
	char out[32];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		sbxd_base32((const uint8_t *)v[i].in, strlen(v[i].in), out);
		ck_assert_str_eq(out, v[i].out);
	}
}
END_TEST

START_TEST(test_uuid4_is_valid_and_random)
{
	char a[37], b[37];

	ck_assert_int_eq(sbxd_uuid4(a), 0);
	ck_assert_int_eq(sbxd_uuid4(b), 0);
	ck_assert(api_uuid_is_valid(a));
	ck_assert_int_eq(a[14], '4');
	ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_key_name_rules)
{
	ck_assert(sbxd_key_name_is_valid("alice"));
	ck_assert(sbxd_key_name_is_valid("ci.bot_2-x"));
	ck_assert(!sbxd_key_name_is_valid(""));
	ck_assert(!sbxd_key_name_is_valid("-x"));
	ck_assert(!sbxd_key_name_is_valid("a b"));
	ck_assert(!sbxd_key_name_is_valid("a/b"));
}
END_TEST

START_TEST(test_key_find_by_hash_and_admin_flag)
{
	struct store_key k;
	char hash[SBXD_KEY_HASH_LEN + 1];
	int64_t id = add_key("root", true);

	sbxd_key_hash("root", 4, hash);
	ck_assert_int_eq(store_key_find(st, hash, &k), 0);
	ck_assert_int_eq(k.id, id);
	ck_assert(k.admin);
	ck_assert_int_eq(k.revoked_ms, 0);
	store_key_release(&k);
	sbxd_key_hash("nope", 4, hash);
	ck_assert_int_eq(store_key_find(st, hash, &k), -ENOENT);
}
END_TEST

START_TEST(test_key_duplicate_name_or_hash_is_eexist)
{
	char hash[SBXD_KEY_HASH_LEN + 1];

	add_key("dup", false);
	sbxd_key_hash("other", 5, hash);
	ck_assert_int_eq(store_key_create(st, "dup", hash, false, NULL), -EEXIST);
	sbxd_key_hash("dup", 3, hash);
	ck_assert_int_eq(store_key_create(st, "fresh", hash, false, NULL), -EEXIST);
}
END_TEST

START_TEST(test_key_revoke_refuses_the_key_and_keeps_the_row)
{
	struct store_key k, *all = NULL;
	char hash[SBXD_KEY_HASH_LEN + 1];
	size_t n = 0;

	add_key("gone", false);
	ck_assert_int_eq(store_key_revoke(st, "gone"), 0);
	ck_assert_int_eq(store_key_revoke(st, "gone"), -EALREADY);
	ck_assert_int_eq(store_key_revoke(st, "never"), -ENOENT);
	sbxd_key_hash("gone", 4, hash);
	ck_assert_int_eq(store_key_find(st, hash, &k), -EKEYREVOKED);
	ck_assert_int_eq(store_key_list(st, &all, &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_ne(all[0].revoked_ms, 0);
	store_keys_free(all, n);
}
END_TEST

START_TEST(test_key_quota_and_usage_per_owner)
{
	int64_t a = add_key("qa", false), b = add_key("qb", false);
	struct store_box x, y, z;
	struct store_usage u;
	struct store_key k;

	ck_assert_int_eq(store_key_get(st, a, &k), 0);
	ck_assert_uint_eq(k.max_sandboxes, 0);
	ck_assert_uint_eq(k.max_mem_bytes, 0);
	store_key_release(&k);
	ck_assert_int_eq(store_key_set_quota(st, "qa", 2, 3ull << 30), 0);
	ck_assert_int_eq(store_key_set_quota(st, "nope", 1, 0), -ENOENT);
	ck_assert_int_eq(store_key_get_by_name(st, "qa", &k), 0);
	ck_assert_int_eq(k.id, a);
	ck_assert_uint_eq(k.max_sandboxes, 2);
	ck_assert_uint_eq(k.max_mem_bytes, 3ull << 30);
	store_key_release(&k);
	ck_assert_int_eq(store_key_get_by_name(st, "nope", &k), -ENOENT);

	make_box(&x, "ux", a);
	make_box(&y, "uy", a);
	make_box(&z, "uz", b);
	ck_assert_int_eq(store_box_insert(st, &x), 0);
	ck_assert_int_eq(store_box_insert(st, &y), 0);
	ck_assert_int_eq(store_box_insert(st, &z), 0);
	/* a stopped sandbox holds no VM: it does not count */
	ck_assert_int_eq(store_box_set_state(st, y.id, BOX_STOPPED, NULL), 0);
	ck_assert_int_eq(store_box_usage_of(st, a, &u), 0);
	ck_assert_uint_eq(u.sandboxes, 1);
	ck_assert_uint_eq(u.mem_bytes, 512ull << 20);
	ck_assert_int_eq(store_box_usage_of(st, b, &u), 0);
	ck_assert_uint_eq(u.sandboxes, 1);
	ck_assert_int_eq(store_box_usage(st, &u), 0);
	ck_assert_uint_eq(u.sandboxes, 2);
}
END_TEST

START_TEST(test_key_default_name_skips_taken_names)
{
	char name[64];

	ck_assert_int_eq(store_key_default_name(st, name, sizeof(name)), 0);
	ck_assert_str_eq(name, "key-1");
	add_key("key-2", false); /* id 1, but named key-2 by hand */
	ck_assert_int_eq(store_key_default_name(st, name, sizeof(name)), 0);
	ck_assert_str_eq(name, "key-3");
}
END_TEST

/* ---- sandboxes ---- */

START_TEST(test_box_insert_get_by_name_or_id)
{
	struct store_box b, got;
	int64_t k = add_key("k", false);

	make_box(&b, "alpha", k);
	b.labels = (char *)"{\"a\":\"b\"}";
	b.max_lifetime_seconds = 3600;
	ck_assert_int_eq(store_box_insert(st, &b), 0);
	ck_assert_int_eq(store_box_get(st, "alpha", k, &got), 0);
	ck_assert_int_eq(got.max_lifetime_seconds, 3600);
	ck_assert_str_eq(got.id, b.id);
	ck_assert_int_eq(got.state, BOX_PROVISIONING);
	ck_assert_str_eq(got.labels, "{\"a\":\"b\"}");
	ck_assert_ptr_null(got.run_config);
	ck_assert_int_eq(got.mem_bytes, 512ull << 20);
	ck_assert_int_ne(got.created_ms, 0);
	store_box_release(&got);
	ck_assert_int_eq(store_box_get(st, b.id, k, &got), 0);
	ck_assert_str_eq(got.name, "alpha");
	store_box_release(&got);
}
END_TEST

START_TEST(test_box_names_are_unique)
{
	struct store_box a, b;
	int64_t k1 = add_key("k1", false), k2 = add_key("k2", false);

	make_box(&a, "same", k1);
	make_box(&b, "same", k2);
	ck_assert_int_eq(store_box_insert(st, &a), 0);
	ck_assert_int_eq(store_box_insert(st, &b), -EEXIST);
}
END_TEST

START_TEST(test_box_owner_isolation)
{
	struct store_box a, b, got, *v = NULL;
	int64_t k1 = add_key("k1", false), k2 = add_key("k2", false);
	size_t n = 0;

	make_box(&a, "mine", k1);
	make_box(&b, "theirs", k2);
	ck_assert_int_eq(store_box_insert(st, &a), 0);
	ck_assert_int_eq(store_box_insert(st, &b), 0);
	ck_assert_int_eq(store_box_get(st, "theirs", k1, &got), -ENOENT);
	ck_assert_int_eq(store_box_get(st, b.id, k1, &got), -ENOENT);
	ck_assert_int_eq(store_box_get(st, "theirs", STORE_OWNER_ANY, &got), 0);
	store_box_release(&got);
	ck_assert_int_eq(store_box_list(st, k1, &v, &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(v[0].name, "mine");
	store_boxes_free(v, n);
	ck_assert_int_eq(store_box_list(st, STORE_OWNER_ANY, &v, &n), 0);
	ck_assert_int_eq(n, 2);
	store_boxes_free(v, n);
}
END_TEST

START_TEST(test_box_state_rename_patch_delete)
{
	struct store_box a, b, got;
	struct store_box_patch p = {.idle_ttl_seconds = 120,
				    .delete_after_stop_seconds = -1,
				    .run_config = "{\"user\":\"root\"}"};
	int64_t k = add_key("k", false);

	make_box(&a, "one", k);
	make_box(&b, "two", k);
	ck_assert_int_eq(store_box_insert(st, &a), 0);
	ck_assert_int_eq(store_box_insert(st, &b), 0);
	ck_assert_int_eq(store_box_set_state(st, a.id, BOX_FAILED, "the VM could not start"), 0);
	ck_assert_int_eq(store_box_get(st, a.id, k, &got), 0);
	ck_assert_int_eq(got.state, BOX_FAILED);
	ck_assert_str_eq(got.status_message, "the VM could not start");
	store_box_release(&got);
	ck_assert_int_eq(store_box_set_state(st, a.id, BOX_READY, NULL), 0);
	ck_assert_int_eq(store_box_get(st, a.id, k, &got), 0);
	ck_assert_ptr_null(got.status_message);
	store_box_release(&got);

	ck_assert_int_eq(store_box_rename(st, a.id, "two"), -EEXIST);
	ck_assert_int_eq(store_box_rename(st, a.id, "uno"), 0);
	ck_assert_int_eq(store_box_get(st, "one", k, &got), -ENOENT);
	ck_assert_int_eq(store_box_rename(st, "no-such-id", "x"), -ENOENT);

	ck_assert_int_eq(store_box_patch(st, a.id, &p), 0);
	ck_assert_int_eq(store_box_get(st, "uno", k, &got), 0);
	ck_assert_int_eq(got.idle_ttl_seconds, 120);
	ck_assert_int_eq(got.delete_after_stop_seconds, 0);
	ck_assert_str_eq(got.run_config, "{\"user\":\"root\"}");
	store_box_release(&got);

	ck_assert_int_eq(store_box_delete(st, a.id), 0);
	ck_assert_int_eq(store_box_delete(st, a.id), -ENOENT);
	ck_assert_int_eq(store_box_get(st, "uno", STORE_OWNER_ANY, &got), -ENOENT);
}
END_TEST

START_TEST(test_box_transitions_stop_snapshot_and_activity_persist)
{
	struct store_box a, got;
	struct store_usage u;
	int64_t k = add_key("k", false);

	make_box(&a, "life", k);
	a.state = BOX_READY;
	ck_assert_int_eq(store_box_insert(st, &a), 0);
	/* a transition reads back as itself, though the column keeps its
	 * CHECK set */
	ck_assert_int_eq(store_box_set_state(st, a.id, BOX_STOPPING, NULL), 0);
	ck_assert_int_eq(store_box_get(st, a.id, k, &got), 0);
	ck_assert_int_eq(got.state, BOX_STOPPING);
	ck_assert_int_eq(got.stopped_ms, 0);
	ck_assert_ptr_null(got.stop_snapshot_id);
	store_box_release(&got);
	ck_assert_int_eq(store_box_set_stop_snapshot(st, a.id, "snap-1", true), 0);
	ck_assert_int_eq(store_box_set_state(st, a.id, BOX_STOPPED, NULL), 0);
	ck_assert_int_eq(store_box_get(st, a.id, k, &got), 0);
	ck_assert_int_eq(got.state, BOX_STOPPED);
	ck_assert_int_gt(got.stopped_ms, 0);
	ck_assert_str_eq(got.stop_snapshot_id, "snap-1");
	ck_assert(got.stop_memory);
	store_box_release(&got);
	ck_assert_int_eq(store_box_usage(st, &u), 0);
	ck_assert_int_eq(u.sandboxes, 0); /* stopped: holds no VM */
	ck_assert_int_eq(store_box_set_state(st, a.id, BOX_STARTING, NULL), 0);
	ck_assert_int_eq(store_box_usage(st, &u), 0);
	ck_assert_int_eq(u.sandboxes, 1);
	ck_assert_int_eq(store_box_get(st, a.id, k, &got), 0);
	ck_assert_int_eq(got.state, BOX_STARTING);
	ck_assert_int_gt(got.stopped_ms, 0);
	store_box_release(&got);
	ck_assert_int_eq(store_box_set_state(st, a.id, BOX_READY, NULL), 0);
	ck_assert_int_eq(store_box_set_stop_snapshot(st, a.id, NULL, true), 0);
	ck_assert_int_eq(store_box_touch(st, a.id, 1234), 0);
	ck_assert_int_eq(store_box_touch(st, a.id, 1000), 0); /* never goes back */
	ck_assert_int_eq(store_box_get(st, a.id, k, &got), 0);
	ck_assert_int_eq(got.state, BOX_READY);
	ck_assert_int_eq(got.stopped_ms, 0);
	ck_assert_ptr_null(got.stop_snapshot_id);
	ck_assert(!got.stop_memory);
	ck_assert_int_eq(got.active_ms, 1234);
	store_box_release(&got);
	ck_assert_int_eq(store_box_touch(st, "no-such-id", 1), -ENOENT);
	ck_assert_str_eq(box_state_to_string(BOX_STOPPING), "stopping");
	ck_assert_int_eq(box_state_from_string("starting"), BOX_STARTING);
}
END_TEST

START_TEST(test_box_usage_counts_only_live_sandboxes)
{
	struct store_box a, b, c;
	struct store_usage u;
	int64_t k = add_key("k", false);

	make_box(&a, "a", k);
	make_box(&b, "b", k);
	make_box(&c, "c", k);
	c.vcpus = 2;
	ck_assert_int_eq(store_box_insert(st, &a), 0);
	ck_assert_int_eq(store_box_insert(st, &b), 0);
	ck_assert_int_eq(store_box_insert(st, &c), 0);
	ck_assert_int_eq(store_box_set_state(st, b.id, BOX_FAILED, "x"), 0);
	ck_assert_int_eq(store_box_usage(st, &u), 0);
	ck_assert_int_eq(u.sandboxes, 2);
	ck_assert_int_eq(u.vcpus, 3);
	ck_assert_int_eq(u.mem_bytes, 2 * (512ull << 20));
}
END_TEST

START_TEST(test_box_state_names_round_trip)
{
	for (int s = 0; s < BOX_STATE_COUNT; s++)
		ck_assert_int_eq(box_state_from_string(box_state_to_string((enum box_state)s)), s);
	ck_assert_int_eq(box_state_from_string("bogus"), BOX_STATE_INVALID);
	ck_assert_int_eq(store_box_set_state(st, "x", (enum box_state)77, NULL), -EINVAL);
}
END_TEST

/* ---- commands ---- */

START_TEST(test_commands_follow_their_sandbox)
{
	struct store_box b;
	struct store_cmd c = {.id = "cmd-1", .state = "running", .command = "echo hi"}, got;
	struct store_cmd *v = NULL;
	int64_t k = add_key("k", false);
	size_t n = 0;

	make_box(&b, "box", k);
	ck_assert_int_eq(store_box_insert(st, &b), 0);
	snprintf(c.box_id, sizeof(c.box_id), "%s", b.id);
	ck_assert_int_eq(store_cmd_insert(st, &c), 0);
	ck_assert_int_eq(store_cmd_insert(st, &c), -EEXIST);
	ck_assert_int_eq(store_cmd_update(st, b.id, "cmd-1", "exited", 7, 3), 0);
	ck_assert_int_eq(store_cmd_get(st, b.id, "cmd-1", &got), 0);
	ck_assert_str_eq(got.state, "exited");
	ck_assert_int_eq(got.agent_cmd_id, 7);
	ck_assert_int_eq(got.exit_code, 3);
	ck_assert_str_eq(got.command, "echo hi");
	store_cmd_release(&got);
	ck_assert_int_eq(store_cmd_list(st, b.id, &v, &n), 0);
	ck_assert_int_eq(n, 1);
	store_cmds_free(v, n);

	snprintf(c.box_id, sizeof(c.box_id), "%s", "00000000-0000-4000-8000-000000000000");
	ck_assert_int_eq(store_cmd_insert(st, &c), -ENOENT);

	ck_assert_int_eq(store_box_delete(st, b.id), 0);
	ck_assert_int_eq(store_cmd_get(st, b.id, "cmd-1", &got), -ENOENT);
}
END_TEST

/* ---- limits: one handle, many threads ---- */

#define THREADS 8
#define PER_THREAD 25

static int64_t thread_owner;

static void *insert_many(void *arg)
{
	long t = (long)arg;

	for (int i = 0; i < PER_THREAD; i++) {
		struct store_box b;
		char name[32];

		snprintf(name, sizeof(name), "t%ld-%d", t, i);
		make_box(&b, name, thread_owner);
		if (store_box_insert(st, &b) != 0)
			return (void *)1;
	}
	return NULL;
}

START_TEST(test_store_serialises_concurrent_writers)
{
	pthread_t th[THREADS];
	struct store_usage u;

	thread_owner = add_key("k", false);
	for (long i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, insert_many, (void *)i), 0);
	for (int i = 0; i < THREADS; i++) {
		void *ret;

		pthread_join(th[i], &ret);
		ck_assert_ptr_null(ret);
	}
	ck_assert_int_eq(store_box_usage(st, &u), 0);
	ck_assert_int_eq(u.sandboxes, THREADS * PER_THREAD);
}
END_TEST

/* ---- snapshots ---- */

/* The schema as version 1 of sbxd wrote it (store.c migrations[0]). */
static const char v1_schema[] =
    "CREATE TABLE keys (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " hash TEXT NOT NULL UNIQUE, admin INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL, revoked_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE sandboxes (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " owner INTEGER NOT NULL REFERENCES keys(id), state TEXT NOT NULL CHECK (state IN"
    "  ('provisioning','ready','failed','stopped','deleting')), status_message TEXT,"
    " vcpus INTEGER NOT NULL, mem_bytes INTEGER NOT NULL, fs_capacity_bytes INTEGER NOT NULL,"
    " image TEXT NOT NULL, vm_name TEXT NOT NULL UNIQUE, snapshot_id TEXT,"
    " persistent INTEGER NOT NULL DEFAULT 1,"
    " preserve_memory_on_stop INTEGER NOT NULL DEFAULT 0,"
    " idle_ttl_seconds INTEGER NOT NULL DEFAULT 600,"
    " delete_after_stop_seconds INTEGER NOT NULL DEFAULT 0,"
    " labels TEXT, run_config TEXT, proxy_config TEXT, mount_config TEXT,"
    " access_delegation TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
    " stopped_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX sandboxes_owner ON sandboxes(owner);"
    "CREATE TABLE commands (sandbox_id TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
    " id TEXT NOT NULL, agent_cmd_id INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL,"
    " exit_code INTEGER NOT NULL DEFAULT -1, command TEXT, created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, PRIMARY KEY (sandbox_id, id));"
    "CREATE TABLE snapshots (id TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " owner INTEGER NOT NULL REFERENCES keys(id), state TEXT NOT NULL, status_message TEXT,"
    " source_sandbox_id TEXT, fs_capacity_bytes INTEGER NOT NULL DEFAULT 0, path TEXT,"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "INSERT INTO keys (id, name, hash, created_ms) VALUES (7, 'old-key', 'h', 1);"
    "INSERT INTO sandboxes (id, name, owner, state, vcpus, mem_bytes, fs_capacity_bytes,"
    " image, vm_name, created_ms, updated_ms) VALUES ('00000000-0000-4000-8000-000000000001',"
    " 'from-v1', 7, 'ready', 1, 536870912, 2147483648, '/img', 'vm-v1', 1, 2);"
    "PRAGMA user_version = 1;";

static void make_snap(struct store_snapshot *v, const char *name, int64_t owner)
{
	char id[STORE_ID_LEN + 1];

	memset(v, 0, sizeof(*v));
	ck_assert_int_eq(sbxd_uuid4(id), 0);
	snprintf(v->id, sizeof(v->id), "%s", id);
	v->name = (char *)name;
	v->owner = owner;
	v->state = SNAPSHOT_BUILDING;
	v->kind = (char *)"fs";
	v->fs_capacity_bytes = 2ull << 30;
	v->docker_image = (char *)"default";
}

START_TEST(test_store_migrates_a_version_1_database_and_keeps_its_rows)
{
	struct store_box got;
	struct store_snapshot v, g;
	sqlite3 *db;

	st = store_close(st);
	unlink(dbpath);
	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, v1_schema, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	ck_assert_int_eq(store_open(dbpath, &st), 0);
	ck_assert_int_eq(store_schema_version(st), STORE_SCHEMA_VERSION);
	ck_assert_int_eq(store_box_get(st, "from-v1", STORE_OWNER_ANY, &got), 0);
	ck_assert_str_eq(got.vm_name, "vm-v1");
	ck_assert_int_eq(got.owner, 7);
	store_box_release(&got);
	make_snap(&v, "after-upgrade", 7);
	ck_assert_int_eq(store_snapshot_insert(st, &v), 0);
	ck_assert_int_eq(store_snapshot_get(st, "after-upgrade", 7, &g), 0);
	ck_assert_str_eq(g.id, v.id);
	store_snapshot_release(&g);
}
END_TEST

START_TEST(test_snapshot_insert_get_by_id_or_name)
{
	struct store_snapshot v, g;
	int64_t k = add_key("k", false);

	make_snap(&v, "snap1", k);
	v.source_box_id = (char *)"00000000-0000-4000-8000-0000000000aa";
	v.include_memory = true;
	v.kind = (char *)"memory";
	v.run_config = (char *)"{\"work_dir\":\"/srv\"}";
	v.image_dir = (char *)"/images/default";
	ck_assert_int_eq(store_snapshot_insert(st, &v), 0);

	ck_assert_int_eq(store_snapshot_get(st, v.id, k, &g), 0);
	ck_assert_str_eq(g.name, "snap1");
	ck_assert_int_eq(g.state, SNAPSHOT_BUILDING);
	ck_assert_str_eq(g.kind, "memory");
	ck_assert(g.include_memory);
	ck_assert_str_eq(g.source_box_id, v.source_box_id);
	ck_assert_str_eq(g.run_config, "{\"work_dir\":\"/srv\"}");
	ck_assert_str_eq(g.docker_image, "default");
	ck_assert_ptr_null(g.image_digest);
	ck_assert_int_gt(g.created_ms, 0);
	store_snapshot_release(&g);
	ck_assert_int_eq(store_snapshot_get(st, "snap1", k, &g), 0);
	ck_assert_str_eq(g.id, v.id);
	store_snapshot_release(&g);
	ck_assert_int_eq(store_snapshot_get(st, "nope", k, &g), -ENOENT);
}
END_TEST

START_TEST(test_snapshot_names_are_unique_per_owner)
{
	struct store_snapshot a, b, c;
	int64_t k1 = add_key("k1", false), k2 = add_key("k2", false);

	make_snap(&a, "same", k1);
	make_snap(&b, "same", k1);
	make_snap(&c, "same", k2);
	ck_assert_int_eq(store_snapshot_insert(st, &a), 0);
	ck_assert_int_eq(store_snapshot_insert(st, &b), -EEXIST);
	ck_assert_int_eq(store_snapshot_insert(st, &c), 0);
	/* the same id twice */
	snprintf(c.id, sizeof(c.id), "%s", a.id);
	c.name = (char *)"other";
	ck_assert_int_eq(store_snapshot_insert(st, &c), -EEXIST);
}
END_TEST

START_TEST(test_snapshot_owner_isolation_and_admin_sees_all)
{
	struct store_snapshot a, b, g, *v = NULL;
	int64_t k1 = add_key("k1", false), k2 = add_key("k2", false);
	size_t n = 0;
	bool more = true;

	make_snap(&a, "mine", k1);
	make_snap(&b, "theirs", k2);
	ck_assert_int_eq(store_snapshot_insert(st, &a), 0);
	ck_assert_int_eq(store_snapshot_insert(st, &b), 0);
	ck_assert_int_eq(store_snapshot_get(st, "theirs", k1, &g), -ENOENT);
	ck_assert_int_eq(store_snapshot_get(st, b.id, k1, &g), -ENOENT);
	ck_assert_int_eq(store_snapshot_get(st, b.id, STORE_OWNER_ANY, &g), 0);
	store_snapshot_release(&g);
	ck_assert_int_eq(store_snapshot_list(st, k1, NULL, 0, 0, &v, &n, &more), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert(!more);
	ck_assert_str_eq(v[0].name, "mine");
	store_snapshots_free(v, n);
	ck_assert_int_eq(store_snapshot_list(st, STORE_OWNER_ANY, NULL, 0, 0, &v, &n, NULL), 0);
	ck_assert_uint_eq(n, 2);
	store_snapshots_free(v, n);
}
END_TEST

START_TEST(test_snapshot_list_filters_by_name_and_pages)
{
	struct store_snapshot x, *v = NULL;
	const char *names[] = {"alpha-1", "Beta-2", "alpha-3", "gamma%4", "delta_5"};
	int64_t k = add_key("k", false);
	size_t n = 0;
	bool more = false;

	for (int i = 0; i < 5; i++) {
		make_snap(&x, names[i], k);
		x.created_ms = 1000 + i; /* newest last */
		ck_assert_int_eq(store_snapshot_insert(st, &x), 0);
	}
	ck_assert_int_eq(store_snapshot_list(st, k, "ALPHA", 0, 0, &v, &n, &more), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(v[0].name, "alpha-3"); /* newest first */
	ck_assert_str_eq(v[1].name, "alpha-1");
	store_snapshots_free(v, n);
	ck_assert_int_eq(store_snapshot_list(st, k, "beta", 0, 0, &v, &n, &more), 0);
	ck_assert_uint_eq(n, 1);
	store_snapshots_free(v, n);
	/* LIKE wildcards in the filter are literal */
	ck_assert_int_eq(store_snapshot_list(st, k, "%", 0, 0, &v, &n, &more), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].name, "gamma%4");
	store_snapshots_free(v, n);
	ck_assert_int_eq(store_snapshot_list(st, k, "_", 0, 0, &v, &n, &more), 0);
	ck_assert_uint_eq(n, 1);
	store_snapshots_free(v, n);
	/* pages of 2 */
	ck_assert_int_eq(store_snapshot_list(st, k, NULL, 2, 0, &v, &n, &more), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert(more);
	ck_assert_str_eq(v[0].name, "delta_5");
	store_snapshots_free(v, n);
	ck_assert_int_eq(store_snapshot_list(st, k, NULL, 2, 4, &v, &n, &more), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert(!more);
	ck_assert_str_eq(v[0].name, "alpha-1");
	store_snapshots_free(v, n);
	ck_assert_int_eq(store_snapshot_list(st, k, NULL, 2, 9, &v, &n, &more), 0);
	ck_assert_uint_eq(n, 0);
	free(v);
}
END_TEST

START_TEST(test_snapshot_state_built_pool_and_delete)
{
	struct store_snapshot x, g;
	struct store_snapshot_built b = {
	    .kind = "memory",
	    .vcpus = 2,
	    .mem_bytes = 256ull << 20,
	    .memory_size_bytes = 123456,
	    .image_digest = "sha256:abc",
	};
	int64_t k = add_key("k", false);

	make_snap(&x, "s", k);
	ck_assert_int_eq(store_snapshot_insert(st, &x), 0);
	ck_assert_int_eq(store_snapshot_set_state(st, x.id, SNAPSHOT_FAILED, "it broke"), 0);
	ck_assert_int_eq(store_snapshot_get(st, x.id, k, &g), 0);
	ck_assert_int_eq(g.state, SNAPSHOT_FAILED);
	ck_assert_str_eq(g.status_message, "it broke");
	store_snapshot_release(&g);

	ck_assert_int_eq(store_snapshot_set_built(st, x.id, &b), 0);
	ck_assert_int_eq(store_snapshot_get(st, x.id, k, &g), 0);
	ck_assert_int_eq(g.state, SNAPSHOT_READY);
	ck_assert_ptr_null(g.status_message);
	ck_assert_str_eq(g.kind, "memory");
	ck_assert_uint_eq(g.vcpus, 2);
	ck_assert_uint_eq(g.mem_bytes, 256ull << 20);
	ck_assert_uint_eq(g.memory_size_bytes, 123456);
	ck_assert_uint_eq(g.fs_capacity_bytes, 2ull << 30); /* 0: unchanged */
	ck_assert_str_eq(g.image_digest, "sha256:abc");
	store_snapshot_release(&g);

	ck_assert_int_eq(store_snapshot_set_pool(st, x.id, 3), 0);
	ck_assert_int_eq(store_snapshot_get(st, x.id, k, &g), 0);
	ck_assert_uint_eq(g.pool_size, 3);
	store_snapshot_release(&g);
	ck_assert_int_eq(store_snapshot_set_state(st, "no-such", SNAPSHOT_READY, NULL), -ENOENT);
	ck_assert_int_eq(store_snapshot_delete(st, x.id), 0);
	ck_assert_int_eq(store_snapshot_delete(st, x.id), -ENOENT);
	ck_assert_int_eq(store_snapshot_get(st, x.id, k, &g), -ENOENT);
}
END_TEST

START_TEST(test_snapshot_state_names_round_trip)
{
	for (int i = 0; i < SNAPSHOT_STATE_COUNT; i++)
		ck_assert_int_eq(snapshot_state_from_string(snapshot_state_to_string(i)), i);
	ck_assert_int_eq(snapshot_state_from_string("bogus"), -EINVAL);
	ck_assert_str_eq(snapshot_state_to_string(SNAPSHOT_DELETING), "deleting");
}
END_TEST

START_TEST(test_box_vm_can_change_and_boxes_count_by_snapshot)
{
	struct store_box a, b, got;
	int64_t k = add_key("k", false);
	unsigned n = 9;

	make_box(&a, "a", k);
	make_box(&b, "b", k);
	a.snapshot_id = b.snapshot_id = (char *)"snap-1";
	ck_assert_int_eq(store_box_insert(st, &a), 0);
	ck_assert_int_eq(store_box_insert(st, &b), 0);
	ck_assert_int_eq(store_box_count_by_snapshot(st, "snap-1", &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(store_box_count_by_snapshot(st, "snap-2", &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(store_box_set_vm(st, a.id, "pool-vm-7"), 0);
	ck_assert_int_eq(store_box_get(st, "a", k, &got), 0);
	ck_assert_str_eq(got.vm_name, "pool-vm-7");
	store_box_release(&got);
	ck_assert_int_eq(store_box_set_vm(st, a.id, b.id), -EEXIST); /* vm names are unique */
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *core = tcase_create("core"), *keys = tcase_create("keys"),
	      *limits = tcase_create("limits"), *errors = tcase_create("errors");

	tcase_add_checked_fixture(core, setup, teardown);
	tcase_add_test(core, test_store_open_creates_schema_in_wal_mode);
	tcase_add_test(core, test_store_reopen_keeps_rows_and_version);
	tcase_add_test(core, test_store_wal_lets_a_second_handle_see_commits);
	tcase_add_test(core, test_box_insert_get_by_name_or_id);
	tcase_add_test(core, test_box_owner_isolation);
	tcase_add_test(core, test_box_transitions_stop_snapshot_and_activity_persist);
	tcase_add_test(core, test_box_state_rename_patch_delete);
	tcase_add_test(core, test_box_usage_counts_only_live_sandboxes);
	tcase_add_test(core, test_commands_follow_their_sandbox);
	tcase_add_test(core, test_store_migrates_a_version_1_database_and_keeps_its_rows);
	tcase_add_test(core, test_snapshot_insert_get_by_id_or_name);
	tcase_add_test(core, test_snapshot_owner_isolation_and_admin_sees_all);
	tcase_add_test(core, test_snapshot_list_filters_by_name_and_pages);
	tcase_add_test(core, test_snapshot_state_built_pool_and_delete);
	tcase_add_test(core, test_box_vm_can_change_and_boxes_count_by_snapshot);
	suite_add_tcase(s, core);

	tcase_add_checked_fixture(keys, setup, teardown);
	tcase_add_test(keys, test_key_generate_has_prefix_length_and_alphabet);
	tcase_add_test(keys, test_key_quota_and_usage_per_owner);
	tcase_add_test(keys, test_key_hash_is_hex_sha256);
	tcase_add_test(keys, test_base32_matches_rfc4648_vectors);
	tcase_add_test(keys, test_uuid4_is_valid_and_random);
	tcase_add_test(keys, test_key_name_rules);
	tcase_add_test(keys, test_key_find_by_hash_and_admin_flag);
	tcase_add_test(keys, test_key_revoke_refuses_the_key_and_keeps_the_row);
	tcase_add_test(keys, test_key_default_name_skips_taken_names);
	suite_add_tcase(s, keys);

	tcase_add_checked_fixture(limits, setup, teardown);
	tcase_set_timeout(limits, 30);
	tcase_add_test(limits, test_store_serialises_concurrent_writers);
	suite_add_tcase(s, limits);

	tcase_add_checked_fixture(errors, setup, teardown);
	tcase_add_test(errors, test_store_refuses_a_newer_schema);
	tcase_add_test(errors, test_key_duplicate_name_or_hash_is_eexist);
	tcase_add_test(errors, test_box_names_are_unique);
	tcase_add_test(errors, test_box_state_names_round_trip);
	tcase_add_test(errors, test_snapshot_names_are_unique_per_owner);
	tcase_add_test(errors, test_snapshot_state_names_round_trip);
	suite_add_tcase(s, errors);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
