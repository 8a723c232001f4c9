/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store.h - sbxd's persistent state: one SQLite database (WAL mode) at
 * STATE/sbxd.db holding API keys, sandboxes, their commands and snapshots.
 *
 * The store is written before sbxd acts ("write intent, then act, then
 * record the outcome"): a sandbox row exists in state provisioning before
 * its VM is started, and is in state deleting before its VM is destroyed,
 * so that a restart after a crash knows what was going on.
 *
 * One store handle may be used from any thread: every call takes the
 * handle's lock. All functions return 0 (or a count) or -errno:
 *   -ENOENT  no such row (or not visible to that owner)
 *   -EEXIST  a unique name is taken
 *   -EIO     SQLite failed; err_msg() has its message
 * Strings in result structs are owned by the caller (release functions).
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct store store;

#define STORE_SCHEMA_VERSION 4
#define STORE_ID_LEN 36	     /* a UUID in its 8-4-4-4-12 text form */
#define STORE_OWNER_ANY (-1) /* owner filter: an admin sees every row */

enum box_state {
	BOX_PROVISIONING,
	BOX_READY,
	BOX_FAILED,
	BOX_STOPPED,
	BOX_DELETING,
	/* Transitions (stop, start): written before acting, so that a restart
	 * finishes or rolls them back. The API shows them as they are. */
	BOX_STOPPING,
	BOX_STARTING,
	BOX_STATE_COUNT,
	BOX_STATE_INVALID = -EINVAL,
};
const char *box_state_to_string(enum box_state s);
enum box_state box_state_from_string(const char *s);

enum snapshot_state {
	SNAPSHOT_BUILDING,
	SNAPSHOT_READY,
	SNAPSHOT_FAILED,
	SNAPSHOT_DELETING,
	SNAPSHOT_STATE_COUNT,
	SNAPSHOT_STATE_INVALID = -EINVAL,
};
const char *snapshot_state_to_string(enum snapshot_state s);
enum snapshot_state snapshot_state_from_string(const char *s);

#define STORE_SNAP_ID_MAX 64 /* manifest ids: snapshot/snap.h SNAP_ID_MAX */

struct store_key {
	int64_t id;
	char *name;
	bool admin;
	int64_t created_ms;
	int64_t revoked_ms;	/* 0: valid */
	unsigned max_sandboxes; /* quota of the key; 0: only the host's caps */
	uint64_t max_mem_bytes; /* 0: only the host's caps */
};

struct store_box {
	char id[STORE_ID_LEN + 1];
	char *name;
	int64_t owner; /* key id */
	enum box_state state;
	char *status_message; /* NULL: none */
	unsigned vcpus;
	uint64_t mem_bytes;
	uint64_t fs_capacity_bytes;
	char *image;   /* image directory the VM boots */
	char *vm_name; /* the VM driver's name of its VM */
	char *snapshot_id;
	bool persistent;
	bool preserve_memory_on_stop;
	int64_t idle_ttl_seconds;
	int64_t delete_after_stop_seconds;
	/* Opaque JSON texts, stored as the client sent them (NULL: absent). */
	char *labels;
	char *run_config;
	char *proxy_config;
	char *mount_config;
	char *access_delegation;
	int64_t created_ms, updated_ms;
	int64_t stopped_ms; /* 0: not stopped */
	/* The internal snapshot a stop captured (NULL: none); stop_memory:
	 * it holds the VM's memory (start resumes it). */
	char *stop_snapshot_id;
	bool stop_memory;
	int64_t active_ms; /* last API call or command seen (0: none) */
	/* Hard TTL: deleted this long after created_ms, whatever its state
	 * (0: never). */
	int64_t max_lifetime_seconds;
};

struct store_cmd {
	char *id; /* client-chosen command id */
	char box_id[STORE_ID_LEN + 1];
	uint32_t agent_cmd_id; /* 0: not started */
	char *state;	       /* "starting", "running", "exited", "failed" */
	int exit_code;
	char *command;
	int64_t created_ms, updated_ms;
};

/* A snapshot's API metadata (the manifest, snapshot/snap.h, has its parts). */
struct store_snapshot {
	char id[STORE_SNAP_ID_MAX + 1]; /* = the manifest id */
	char *name;			/* unique per owner */
	int64_t owner;
	enum snapshot_state state;
	char *status_message; /* NULL: none */
	char *kind;	      /* "fs" or "memory" (the manifest's kind) */
	char *source_box_id;  /* NULL: built from an image */
	bool include_memory;
	unsigned vcpus;		    /* the captured VM's; 0: unknown (fs) */
	uint64_t mem_bytes;	    /* the captured VM's memory; 0: unknown */
	uint64_t fs_capacity_bytes; /* the root disk's size */
	uint64_t memory_size_bytes; /* bytes of the memory parts; 0: none */
	char *docker_image;	    /* the image it was built from ("default") */
	char *image_dir;	    /* absolute image directory */
	char *image_digest;	    /* "sha256:..."; NULL: unknown */
	char *run_config;	    /* JSON text; NULL: none */
	unsigned pool_size;	    /* prewarmed VMs kept for it */
	int64_t created_ms, updated_ms;
};

/* What a finished build adds to a snapshot row (state becomes ready). */
struct store_snapshot_built {
	const char *kind;	    /* NULL: unchanged */
	unsigned vcpus;		    /* 0: unchanged */
	uint64_t mem_bytes;	    /* 0: unchanged */
	uint64_t fs_capacity_bytes; /* 0: unchanged */
	uint64_t memory_size_bytes;
	const char *image_dir;	  /* NULL: unchanged */
	const char *image_digest; /* NULL: unchanged */
};

/* Totals over the sandboxes that hold resources (not failed, not stopped). */
struct store_usage {
	unsigned sandboxes;
	unsigned vcpus;
	uint64_t mem_bytes;
};

/* Opens (creating if needed) the database at path, switches it to WAL and
 * migrates the schema to STORE_SCHEMA_VERSION. -EPROTO if the file has a
 * newer schema than this sbxd knows. */
int store_open(const char *path, store **ret);
store *store_close(store *s); /* NULL-safe, returns NULL */
static inline void store_closep(store **s)
{
	store_close(*s);
}
/* The journal mode in use ("wal"), for tests and diagnostics. */
int store_journal_mode(store *s, char *buf, size_t len);
int store_schema_version(store *s);

/* ---- keys ---- */

/* hash is the lowercase hex SHA-256 of the key (64 chars). */
int store_key_create(store *s, const char *name, const char *hash, bool admin, int64_t *ret_id);
/* A valid (not revoked) key by its hash: -ENOENT unknown, -EKEYREVOKED. */
int store_key_find(store *s, const char *hash, struct store_key *ret);
int store_key_get(store *s, int64_t id, struct store_key *ret);
/* By name, revoked or not: 0, -ENOENT or an error. */
int store_key_get_by_name(store *s, const char *name, struct store_key *ret);
int store_key_list(store *s, struct store_key **ret, size_t *ret_n);
/* -ENOENT unknown name, -EALREADY already revoked. */
int store_key_revoke(store *s, const char *name);
/* Sets a key's quota (0: none): -ENOENT unknown name. */
int store_key_set_quota(store *s, const char *name, unsigned max_sandboxes, uint64_t max_mem_bytes);
/* The next free "key-N" name, for keys created without one. */
int store_key_default_name(store *s, char *buf, size_t len);
void store_key_release(struct store_key *k);
void store_keys_free(struct store_key *k, size_t n);

/* ---- sandboxes ---- */

/* b->id, b->name and b->vm_name must be set; -EEXIST if the name (or id) is
 * taken. */
int store_box_insert(store *s, const struct store_box *b);
/* By name or by id; owner STORE_OWNER_ANY sees every row. */
int store_box_get(store *s, const char *name_or_id, int64_t owner, struct store_box *ret);
/* Ordered by creation time. */
int store_box_list(store *s, int64_t owner, struct store_box **ret, size_t *ret_n);
/* msg NULL clears status_message. */
int store_box_set_state(store *s, const char *id, enum box_state st, const char *msg);
int store_box_rename(store *s, const char *id, const char *new_name);
/* Any of these may be NULL / negative to leave that column alone. */
struct store_box_patch {
	int64_t idle_ttl_seconds;	   /* < 0: unchanged */
	int64_t delete_after_stop_seconds; /* < 0: unchanged */
	const char *run_config;
	const char *proxy_config;
};
int store_box_patch(store *s, const char *id, const struct store_box_patch *p);
/* Removes the row and its commands. */
int store_box_delete(store *s, const char *id);
int store_box_usage(store *s, struct store_usage *ret);
/* The same for the sandboxes of one key (owner id). */
int store_box_usage_of(store *s, int64_t owner, struct store_usage *ret);
void store_box_release(struct store_box *b);
void store_boxes_free(struct store_box *b, size_t n);

/* The stop snapshot of a sandbox (NULL: none any more). */
int store_box_set_stop_snapshot(store *s, const char *id, const char *snap_id, bool memory);
/* Record the last activity on a sandbox (callers throttle this). */
int store_box_touch(store *s, const char *id, int64_t ms);

/* The VM a sandbox runs on changed (a pool VM could not be used). */
int store_box_set_vm(store *s, const char *id, const char *vm_name);
/* Sandboxes whose snapshot_id is id (any state). */
int store_box_count_by_snapshot(store *s, const char *snapshot_id, unsigned *ret);

/* ---- snapshots (store_snap.c) ---- */

/* s->id, name, kind must be set; -EEXIST if the id, or the name for that
 * owner, is taken. created_ms/updated_ms 0: now. */
int store_snapshot_insert(store *s, const struct store_snapshot *snap);
/* By id, else by name (the oldest of that name the owner sees). */
int store_snapshot_get(store *s, const char *id_or_name, int64_t owner, struct store_snapshot *ret);
/* Newest first. name_contains (case-insensitive, NULL: all), limit (0:
 * all), offset. *ret_more is set when rows exist past this page. */
int store_snapshot_list(store *s, int64_t owner, const char *name_contains, unsigned limit,
			unsigned offset, struct store_snapshot **ret, size_t *ret_n,
			bool *ret_more);
/* msg NULL clears status_message. */
int store_snapshot_set_state(store *s, const char *id, enum snapshot_state st, const char *msg);
/* State ready, with what the build found out. */
int store_snapshot_set_built(store *s, const char *id, const struct store_snapshot_built *b);
int store_snapshot_set_pool(store *s, const char *id, unsigned pool_size);
int store_snapshot_delete(store *s, const char *id);
void store_snapshot_release(struct store_snapshot *snap);
void store_snapshots_free(struct store_snapshot *v, size_t n);

/* ---- commands ---- */

/* -EEXIST if that (sandbox, id) is known; -ENOENT if the sandbox is not. */
int store_cmd_insert(store *s, const struct store_cmd *c);
int store_cmd_get(store *s, const char *box_id, const char *id, struct store_cmd *ret);
/* state NULL: unchanged; agent_cmd_id 0: unchanged. */
int store_cmd_update(store *s, const char *box_id, const char *id, const char *state,
		     uint32_t agent_cmd_id, int exit_code);
int store_cmd_list(store *s, const char *box_id, struct store_cmd **ret, size_t *ret_n);
void store_cmd_release(struct store_cmd *c);
void store_cmds_free(struct store_cmd *c, size_t n);

/* ---- the audit log (store_audit.c) ---- */

#define STORE_AUDIT_TEXT_MAX (64 * 1024) /* a longer command is stored cut, marked */
#define STORE_AUDIT_NO_CODE INT32_MIN	 /* exit_code when there is none */

struct store_audit {
	int64_t seq; /* increasing, never reused */
	char *box_id, *box_name;
	char *key_name; /* the API key that ran it */
	char *command_id;
	char *command;		      /* as the client sent it */
	char *cwd;		      /* NULL: the sandbox's default */
	int64_t started_ms, ended_ms; /* ended_ms 0: not ended */
	int exit_code;		      /* STORE_AUDIT_NO_CODE: none (running, lost, failed) */
	char *outcome;		      /* running, exited, timeout, killed, failed, lost */
};

/* Records a command sbxd accepted (before it runs): outcome "running".
 * Only box_id, box_name, key_name, command_id, command, cwd and
 * started_ms (0: now) are read. */
int store_audit_begin(store *s, const struct store_audit *a);
/* Ends the newest running row of that command; -ENOENT if none. */
int store_audit_finish(store *s, const char *box_id, const char *command_id, int exit_code,
		       const char *outcome);
/* At start: marks "lost" the running rows whose command no longer runs
 * as far as the store knows (sbxd died while it ran, or its sandbox went);
 * commands still running are reattached and finish their row. Returns
 * how many. */
int store_audit_sweep(store *s);
/* Deletes ended rows started before before_ms; returns how many. */
int store_audit_prune(store *s, int64_t before_ms);
/* Rows of a sandbox with seq > after, oldest first, at most limit. */
int store_audit_list(store *s, const char *box_id, int64_t after, unsigned limit,
		     struct store_audit **ret, size_t *ret_n);
void store_audit_release(struct store_audit *a);
void store_audits_free(struct store_audit *v, size_t n);
