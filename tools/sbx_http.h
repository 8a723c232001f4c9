/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_http.h - sbx's HTTP side over libcurl: URLs of the API, control-plane
 * requests with JSON bodies, the sandbox lookup every data-plane command
 * starts with, and the sentences for a person when something fails.
 *
 * One process-wide curl handle is reused (keep-alive). Every function
 * returns 0 or -errno and leaves a message in the error buffer (sbx.h).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>
#include <jansson.h>

#include "tools/sbx_config.h"

struct sbx_resp {
	long status;
	char *body; /* NUL-terminated; NULL when empty */
	size_t len;
	json_t *json; /* the body parsed, or NULL */
};
void sbx_resp_release(struct sbx_resp *r);

/* ---- pure helpers (unit-tested) ---- */

/* The control-plane base for an endpoint, the way the langsmith client
 * derives it: one trailing '/' and then one "/api/v1", "/api" or
 * "/api/v2/sandboxes" are dropped, "/api/v2/sandboxes" is appended.
 * NULL (error buffer set) unless it is an http:// or https:// URL. */
char *sbx_api_base(const char *endpoint);

/* s percent-encoded by libcurl: all but RFC 3986's unreserved characters
 * (malloc'd, NULL on OOM). */
char *sbx_url_escape(const char *s);

/* dataplane_url + "/" + op + "?path=" + escaped path (malloc'd). */
char *sbx_dataplane_file_url(const char *dataplane_url, const char *op, const char *path);

/* An error response as the langsmith client reads it: detail.message
 * (with " (error_id=...)"), the "; "-joined msgs of a detail array, a
 * detail string, else "HTTP <status>: <reason>". *ret_type gets
 * detail.error or NULL. Both malloc'd; 0 or -ENOMEM. */
int sbx_api_error(long status, const char *body, size_t len, char **ret_type, char **ret_msg);

/* ---- requests ---- */

/* Must run before any request; cfg must outlive sbx_http_cleanup(). */
int sbx_http_init(const struct sbx_config *cfg);
void sbx_http_cleanup(void);
const struct sbx_config *sbx_http_config(void);

/* -ENOKEY with the "no API key: ..." sentence unless a key is configured. */
int sbx_http_need_key(void);

/* METHOD <api base><path> with body (NULL: none) as JSON. 0 when a response
 * arrived, whatever its status; -errno when sbxd could not be reached or
 * did not answer within timeout_s (0: no limit). */
int sbx_api_call(const char *method, const char *path, json_t *body, long timeout_s,
		 struct sbx_resp *ret);

/* 0 for a 2xx response; else the API's message in the error buffer and
 * -ENOENT (404), -EACCES (401/403), -EEXIST (409), -EINVAL (400/422),
 * -ETIMEDOUT (408), -EAGAIN (429/503), -EIO (others). */
int sbx_resp_check(const struct sbx_resp *r);

/* For transfers: the shared handle reset, with the key header and the
 * connect timeout set. headers are owned by the caller (free after use). */
CURL *sbx_http_handle(struct curl_slist **ret_headers);
/* A failed curl_easy_perform() on url as a sentence; returns -errno. */
int sbx_http_transport_error(CURLcode rc, CURL *c, long timeout_s);

/* ---- sandboxes ---- */

/* GET /boxes/{name}: 0 with the Sandbox object in *ret (caller's
 * reference). -ENOENT reads "no sandbox named 'x'". */
int sbx_box_get(const char *name, json_t **ret);

/* The sandbox's dataplane_url once it is ready, waiting up to wait_s
 * seconds while it is provisioning; an error naming its status (and
 * status_message) if it is failed, stopped or never got ready. */
int sbx_box_dataplane(const char *name, int wait_s, char **ret_url);

/* Text of a JSON string member, or def. */
const char *sbx_json_str(const json_t *obj, const char *key, const char *def);
