/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_server_int.h - internals shared by http_server.c (server, HTTP
 * requests), http_req.c (request accessors) and http_ws.c (WebSocket
 * upgrades). Not for other modules.
 */
#pragma once

#include <pthread.h>

#include "sbxd/http/http_server.h"

struct lws_context;
struct lws_vhost;

struct http_hdr {
	char *name; /* "name:" as lws wants it */
	char *value;
	struct http_hdr *next;
};

/* Session data of every connection of our protocol. */
struct http_pss {
	http_req *req;			  /* HTTP: the request in progress */
	const struct http_ws_ops *ws_ops; /* WebSocket: the app's handler */
	void *ws_ud;
	bool ws_open;
};

struct http_req {
	http_server *srv;
	struct lws *wsi;
	struct http_pss *pss;
	http_req *next; /* srv->reqs */
	uint64_t id;
	char id_str[24];
	int64_t t0_us;
	enum http_method method;
	char *path;
	char host[272];
	char *api_key;		/* NULL: no header */
	int64_t content_length; /* -1 none, -2 malformed */
	bool chunked;

	/* body */
	bool body_expected, body_done, discard_body;
	char *body;
	size_t body_len, body_cap;
	bool sink_set;
	struct http_body_sink sink;
	void *sink_ud;

	/* app */
	void *data;
	void (*data_free)(void *);
	char log_key[HTTP_LOG_FIELD_MAX + 1];
	char log_sandbox[HTTP_LOG_FIELD_MAX + 1];
	http_post_fn timer_fn;
	void *timer_arg;

	/* reply */
	bool replied, deferred, in_upgrade;
	bool headers_sent, close_after, wait_body, stream_wait;
	int status;
	char *ctype;
	struct http_hdr *headers;
	uint8_t *out;
	size_t out_len;
	uint64_t out_off;
	http_produce_fn produce;
	void *produce_ud;
	int64_t stream_len;
	uint64_t bytes_in, bytes_out;
};

struct http_post {
	uint64_t req_id;
	http_post_fn fn;
	void *arg;
	struct http_post *next;
};

/* An upgrade accepted in CONFIRM_UPGRADE, waiting for ESTABLISHED. */
struct http_ws_pending {
	struct lws *wsi;
	const struct http_ws_ops *ops;
	void *ud;
	struct http_ws_pending *next;
};

struct http_server {
	struct lws_context *ctx;
	struct lws_vhost *vhost;
	const struct http_app *app;
	void *app_ud;
	size_t max_body;
	int port;
	int log_fd;
	uint32_t boot_tag;
	uint64_t next_id;
	volatile sig_atomic_t stopping;
	http_req *reqs;
	struct http_ws_pending *ws_pending;
	uint8_t *wbuf; /* LWS_PRE + one write chunk */
	pthread_mutex_t post_lock;
	struct http_post *posts, *posts_tail;
};

/* http_ws.c */
int http_ws_confirm(http_server *s, struct lws *wsi, struct http_pss *pss, const char *proto);
int http_ws_event(http_server *s, struct lws *wsi, int reason, struct http_pss *pss, void *in,
		  size_t len);
void http_ws_free_pending(http_server *s);

/* http_server.c, for http_ws.c */
http_req *http_req_new_upgrade(http_server *s, struct lws *wsi);
void http_req_finish_upgrade(http_req *r, int status);
/* Writes r's reply synchronously (a refused upgrade); 0 or -1. */
int http_req_write_now(http_req *r);
