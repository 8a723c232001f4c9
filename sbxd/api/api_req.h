/* SPDX-License-Identifier: Apache-2.0 */
/*
 * api_req.h - everything sbxd reads from an untrusted HTTP request, as pure
 * functions (no I/O, no globals), so that they are unit-tested and fuzzed:
 * path routing, sandbox names, the API key header, the Host header, and the
 * JSON bodies of create and update turned into plain structs.
 *
 * A failed parse fills a struct api_error with the HTTP status, the error
 * type and a message for a person; the caller sends it as
 * {"detail": {"error": TYPE, "message": MESSAGE}}.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sbxd/http/http_server.h"

#define API_NAME_MAX 63		   /* sandbox names */
#define API_SEGMENT_MAX 128	   /* a name-or-id path segment */
#define API_MAX_BODY (1024 * 1024) /* control-plane JSON bodies */
#define API_MAX_LABELS 64
#define API_LABEL_KEY_MAX 63
#define API_LABEL_VALUE_MAX 256
#define API_MAX_TIMEOUT_S 3600 /* wait_for_ready timeout */
#define API_MIN_MEM_BYTES (64ull << 20)
#define API_DATAPLANE_PREFIX "/dataplane/"

struct api_error {
	int status;    /* 400, 401, 404, 405, 409, 413, 422, 429, 500, 501, 503 ... */
	char type[32]; /* "ValidationError", "NotFound", ... */
	char message[512];
};

/* Fills e; returns -EINVAL (so `return api_error_set(...)` reads well). */
__attribute__((format(printf, 4, 5))) int api_error_set(struct api_error *e, int status,
							const char *type, const char *fmt, ...);

enum api_route_kind {
	ROUTE_HEALTHZ,
	ROUTE_BOXES,	  /* {prefix}/boxes */
	ROUTE_BOX,	  /* {prefix}/boxes/{name} */
	ROUTE_BOX_STATUS, /* .../status */
	ROUTE_BOX_START,
	ROUTE_BOX_STOP,
	ROUTE_BOX_SNAPSHOT,
	ROUTE_BOX_SERVICE_URL,
	ROUTE_BOX_DOWNLOAD_URL,
	ROUTE_BOX_AUDIT,     /* .../audit (sbx extension) */
	ROUTE_SNAPSHOTS,     /* {prefix}/snapshots */
	ROUTE_SNAPSHOT,	     /* {prefix}/snapshots/{id} */
	ROUTE_SNAPSHOT_POOL, /* {prefix}/snapshots/{id}/pool (sbx extension) */
	ROUTE_DATAPLANE,     /* /dataplane/{sandbox-id}/{op} */
	ROUTE_METRICS,	     /* /metrics (Prometheus text) */
	ROUTE_KIND_COUNT,
};
const char *api_route_kind_to_string(enum api_route_kind k);

/* The data-plane operations a client appends to dataplane_url. */
enum api_dp_op {
	DP_EXECUTE,    /* POST  /execute */
	DP_EXECUTE_WS, /* GET   /execute/ws (WebSocket upgrade) */
	DP_UPLOAD,     /* POST  /upload?path= */
	DP_DOWNLOAD,   /* GET, HEAD /download?path= */
	DP_GLOB,       /* POST  /glob */
	DP_GREP,       /* POST  /grep */
	API_DP_OP_COUNT,
	API_DP_OP_INVALID = -EINVAL,
};
const char *api_dp_op_to_string(enum api_dp_op op);

struct api_route {
	enum api_route_kind kind;
	/* ROUTE_BOX*: the sandbox name or id; ROUTE_SNAPSHOT*: the snapshot
	 * id or name;
	 * ROUTE_DATAPLANE: the sandbox id. */
	char target[API_SEGMENT_MAX + 1];
	enum api_dp_op dp_op; /* ROUTE_DATAPLANE */
};

/* Route a decoded URL path (no query). Control-plane routes live under
 * both /api/v2/sandboxes and /v2/sandboxes; one trailing '/' is ignored.
 * -ENOENT when nothing matches. */
int api_route_parse(const char *path, struct api_route *ret);
/* Whether the route answers that method; *ret_allow gets the Allow list
 * ("GET, PATCH, DELETE") for a 405. HEAD is allowed wherever GET is. */
bool api_route_allows(const struct api_route *r, enum http_method m, const char **ret_allow);
/* Whether requests on this route need an X-Api-Key (all but /healthz and
 * /metrics). */
bool api_route_needs_key(const struct api_route *r);

/* ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ */
bool api_name_is_valid(const char *name);
/* "sandbox name 'X' is not valid: ..." into e (422). */
int api_name_check(const char *name, struct api_error *e);
/* 8-4-4-4-12 lowercase hex */
bool api_uuid_is_valid(const char *s);

/* The X-Api-Key value, trimmed of surrounding blanks into buf. -EINVAL if
 * empty, longer than SBXD_KEY_HEADER_MAX or not printable ASCII. */
int api_key_header_parse(const char *value, size_t len, char *buf, size_t buflen);

/* A Host header usable in URLs we hand out: a DNS name, IPv4 or [IPv6],
 * optional :port, nothing else. */
bool api_host_is_valid(const char *host);
/* dataplane_url for a sandbox: "<base>/dataplane/<id>", base being
 * public_url (if not empty) or "http://<host>". No trailing slash. */
int api_dataplane_url(const char *public_url, const char *host, const char *id, char *buf,
		      size_t len);

/* ---- create: POST /boxes ---- */

struct api_create_req {
	bool wait_for_ready; /* default true */
	int64_t timeout_s;   /* default 30 */
	char *name;	     /* NULL: generate one */
	char *snapshot_id;
	char *snapshot_name;
	int persistent;			   /* -1: unset */
	int preserve_memory_on_stop;	   /* -1: unset */
	int restore_memory;		   /* -1: unset */
	int64_t idle_ttl_seconds;	   /* -1: unset */
	int64_t delete_after_stop_seconds; /* -1: unset */
	int64_t max_lifetime_seconds;	   /* -1: unset; 0: no hard TTL */
	int64_t vcpus;			   /* 0: unset */
	int64_t mem_bytes;		   /* 0: unset */
	int64_t fs_capacity_bytes;	   /* 0: unset */
	/* Compact JSON texts of the objects as sent (NULL: absent). */
	char *labels;
	char *run_config;
	char *proxy_config;
	char *mount_config;
	char *access_delegation;
};

/* Parse and type-check a create body. Unknown keys are ignored. Bad JSON:
 * 400 "InvalidJSON"; a wrong field: 422 "ValidationError" naming it. */
int api_parse_create(const char *body, size_t len, struct api_create_req *ret, struct api_error *e);
void api_create_req_release(struct api_create_req *r);

/* Operator bounds for sandbox resources. */
struct api_limits {
	unsigned default_vcpus, max_vcpus;
	uint64_t default_mem_bytes, max_mem_bytes;
	uint64_t default_disk_bytes, min_disk_bytes, max_disk_bytes;
	unsigned max_sandboxes;
	uint64_t max_total_mem_bytes; /* 0: none */
	int64_t max_lifetime_seconds; /* hard TTL cap and default; 0: none */
};

/* The resources a sandbox gets, after defaults and bounds. */
struct api_resources {
	unsigned vcpus;
	uint64_t mem_bytes; /* a whole number of MiB */
	uint64_t fs_capacity_bytes;
};

/* Fill defaults and check per-sandbox bounds: 422 over a bound. */
int api_resolve_resources(const struct api_limits *l, const struct api_create_req *r,
			  struct api_resources *ret, struct api_error *e);
/* The hard TTL a sandbox gets: the request's within the operator's cap
 * (which is also the default); 422 over the cap. */
int api_resolve_lifetime(const struct api_limits *l, const struct api_create_req *r, int64_t *ret,
			 struct api_error *e);
/* Check totals: 429 when one more sandbox of size res would exceed
 * max_sandboxes or max_total_mem_bytes given what is in use. */
/* The same for one API key's quota (0: none) and its usage; key is its
 * name, for the message. */
int api_check_key_quota(const char *key, unsigned max_sandboxes, uint64_t max_mem,
			unsigned used_sandboxes, uint64_t used_mem, const struct api_resources *res,
			struct api_error *e);
int api_check_quota(const struct api_limits *l, unsigned used_sandboxes, uint64_t used_mem,
		    const struct api_resources *res, struct api_error *e);

/* ---- snapshots ---- */

#define API_SNAPSHOT_NAME_MAX 128
#define API_IMAGE_NAME_MAX 128
#define API_LIST_LIMIT_MAX 500
#define API_LIST_LIMIT_DEFAULT 50

/* Snapshot names: 1-128 of [A-Za-z0-9._-], starting with a letter or
 * digit. Image names (docker_image): the same rule. */
bool api_snapshot_name_is_valid(const char *name);
int api_snapshot_name_check(const char *field, const char *name, struct api_error *e);

/* POST /boxes/{name}/snapshot */
struct api_capture_req {
	char *name;
	int include_memory;	   /* -1: unset (false) */
	int64_t fs_capacity_bytes; /* 0: unset */
	char *run_config;	   /* compact JSON, NULL: absent */
};
int api_parse_capture(const char *body, size_t len, struct api_capture_req *ret,
		      struct api_error *e);
void api_capture_req_release(struct api_capture_req *r);

/* POST /snapshots: build a snapshot from an image */
struct api_snapshot_req {
	char *name;
	char *docker_image;
	int64_t fs_capacity_bytes; /* 0: unset */
	char *run_config;
};
int api_parse_snapshot_create(const char *body, size_t len, struct api_snapshot_req *ret,
			      struct api_error *e);
void api_snapshot_req_release(struct api_snapshot_req *r);

/* PUT /snapshots/{id}/pool {"size": N}, N from 0 to max. */
int api_parse_pool(const char *body, size_t len, unsigned max, unsigned *ret, struct api_error *e);

/* ?limit= and ?offset= of a list (either may be NULL: absent): limit
 * 1..API_LIST_LIMIT_MAX (default API_LIST_LIMIT_DEFAULT), offset >= 0. */
int api_parse_list_query(const char *limit, const char *offset, unsigned *ret_limit,
			 unsigned *ret_offset, struct api_error *e);

/* ---- update: PATCH /boxes/{name} ---- */

struct api_update_req {
	char *name;			   /* NULL: keep */
	int64_t idle_ttl_seconds;	   /* -1: keep */
	int64_t delete_after_stop_seconds; /* -1: keep */
	char *run_config;		   /* merged by api_merge_run_config() */
	char *proxy_config;		   /* replaces */
};
int api_parse_update(const char *body, size_t len, struct api_update_req *ret, struct api_error *e);
void api_update_req_release(struct api_update_req *r);
/* run_config update semantics: user and work_dir replace, env_vars merge
 * per key. old may be NULL. *ret is a new compact JSON text. */
int api_merge_run_config(const char *old, const char *patch, char **ret);
