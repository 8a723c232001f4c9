/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_server.h - sbxd's HTTP/1.1 + WebSocket server on one port, over
 * libwebsockets (which does all HTTP parsing and WebSocket framing).
 *
 * Threads: everything here runs on the service thread (the one calling
 * http_server_run()/http_server_service()), except http_server_post() and
 * http_server_stop(), which any thread may call. http_server_post() is how
 * a worker thread (e.g. one booting a VM) finishes a request: the function
 * it posts runs on the service thread, which then replies.
 *
 * A request (http_req) lives from its headers to its reply being written
 * (or its connection closing). Every request gets exactly one reply:
 *   - now, from the app's callbacks (http_reply_*), or
 *   - later: http_req_defer() returns the request id; a function posted
 *     with that id finds the request again (or NULL if the client left).
 * Each finished request is logged as one JSON line (method, path, status,
 * duration, request id, key, sandbox) on the log fd.
 *
 * Bodies: by default buffered up to max_body bytes (larger: 413, and the
 * connection closes). A data-plane handler may instead take the body as it
 * arrives (http_req_set_body_sink()) and stream a reply of any size
 * (http_reply_stream()).
 */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

/* Bodies buffered by default (http_server_config.max_body 0). */
#define HTTP_MAX_BODY_DEFAULT (1024 * 1024)
/* The longest X-Api-Key value kept (longer ones read as ""). */
#define HTTP_API_KEY_MAX 512
/* The longest key name and sandbox shown in the access log. */
#define HTTP_LOG_FIELD_MAX 128

enum http_method {
	HTTP_GET,
	HTTP_POST,
	HTTP_PUT,
	HTTP_PATCH,
	HTTP_DELETE,
	HTTP_HEAD,
	HTTP_OPTIONS,
	HTTP_METHOD_COUNT,
	HTTP_METHOD_INVALID = -1,
};

/* "GET", "POST"...; "?" for HTTP_METHOD_INVALID. */
static inline const char *http_method_name(enum http_method m)
{
	static const char *const names[HTTP_METHOD_COUNT] = {
	    [HTTP_GET] = "GET",		[HTTP_POST] = "POST",	  [HTTP_PUT] = "PUT",
	    [HTTP_PATCH] = "PATCH",	[HTTP_DELETE] = "DELETE", [HTTP_HEAD] = "HEAD",
	    [HTTP_OPTIONS] = "OPTIONS",
	};

	return (int)m >= 0 && m < HTTP_METHOD_COUNT ? names[m] : "?";
}

struct lws;
typedef struct http_server http_server;
typedef struct http_req http_req;

/* WebSocket connections accepted by http_app.on_upgrade. Raw libwebsockets
 * connections: write with lws_write() from on_writeable only (ask for it
 * with lws_callback_on_writable()). Return <0 from a callback to close. */
struct http_ws_ops {
	int (*on_open)(struct lws *wsi, void *ud);
	int (*on_message)(struct lws *wsi, void *ud, const void *data, size_t len, bool first,
			  bool final, bool binary);
	int (*on_writeable)(struct lws *wsi, void *ud);
	/* The connection is gone; ud is not used again. */
	void (*on_close)(struct lws *wsi, void *ud);
};

struct http_app {
	/* Headers are in. Reply now, or return and let the body arrive:
	 * on_request runs when it is complete (at once when there is none).
	 * A reply given before a body arrived is sent after it (or at once,
	 * closing the connection, when the body is larger than max_body). */
	void (*on_headers)(void *ud, http_req *r);
	void (*on_request)(void *ud, http_req *r);
	/* A WebSocket upgrade request: return 0 with *ret_ops and *ret_ud set
	 * to accept it; or reply with an HTTP error (http_reply_error) and
	 * return <0 to refuse it. */
	int (*on_upgrade)(void *ud, http_req *r, const struct http_ws_ops **ret_ops, void **ret_ud);
	/* Optional hooks of the application for http_reply_error(): the body
	 * of an error reply (malloc'ed; NULL: out of memory), and a count of
	 * every error answered (type as given). Without error_body, the body
	 * is {"error":TYPE,"message":MESSAGE}. */
	char *(*error_body)(const char *type, const char *message);
	void (*on_error)(const char *type);
};

struct http_server_config {
	const char *host; /* address to bind, e.g. "127.0.0.1", "0.0.0.0", "::1" */
	int port;	  /* 0: any free port (see http_server_port()) */
	size_t max_body;  /* buffered bodies; 0: HTTP_MAX_BODY_DEFAULT */
	const struct http_app *app;
	void *app_ud;
	int log_fd; /* access log (JSON lines); -1: none */
};

/* Binds the port. -EADDRINUSE etc.; message in *ret_err when given. */
int http_server_new(const struct http_server_config *c, http_server **ret);
http_server *http_server_free(http_server *s); /* NULL-safe */
int http_server_port(const http_server *s);
/* Serve until http_server_stop() or *stop becomes non-zero (checked after
 * every wake-up; a signal wakes the loop). */
int http_server_run(http_server *s, volatile sig_atomic_t *stop);
/* One service pass (tests drive the loop with it). */
int http_server_service(http_server *s);
/* Any thread: make http_server_run() return soon. */
void http_server_stop(http_server *s);

/* Any thread: run fn(s, r, arg) on the service thread, with r the deferred
 * request req_id, or NULL when it is gone (the client disconnected or it
 * was answered already) - fn must then only free arg. req_id 0: r is
 * always NULL (just run on the service thread). */
typedef void (*http_post_fn)(http_server *s, http_req *r, void *arg);
int http_server_post(http_server *s, uint64_t req_id, http_post_fn fn, void *arg);

/* ---- the request ---- */

enum http_method http_req_method(const http_req *r);
const char *http_req_path(const http_req *r);
uint64_t http_req_id(const http_req *r);
const char *http_req_id_str(const http_req *r);
/* The Host header ("" if absent). */
const char *http_req_host(const http_req *r);
/* The X-Api-Key header as sent (NULL if absent, "" if unusable: too long). */
const char *http_req_api_key(const http_req *r);
int64_t http_req_content_length(const http_req *r); /* -1: none */
const char *http_req_body(const http_req *r, size_t *ret_len);
/* A URL query argument (decoded) into buf: its length, or -ENOENT. Valid
 * until the reply is written. */
int http_req_query(const http_req *r, const char *name, char *buf, size_t len);
/* Any header by lower-case name ("range", "if-none-match", ...) into buf:
 * its length, -ENOENT if absent, -ENOBUFS if longer than len-1. */
int http_req_header(const http_req *r, const char *name, char *buf, size_t len);
struct lws *http_req_wsi(const http_req *r);
http_server *http_req_server(const http_req *r);
/* The app's own pointer for this request; free_fn (may be NULL) runs when
 * the request is finished or gone. */
void http_req_set_data(http_req *r, void *data, void (*free_fn)(void *));
void *http_req_data(const http_req *r);
/* Shown in the access log line. */
void http_req_log_key(http_req *r, const char *key_name);
void http_req_log_sandbox(http_req *r, const char *sandbox);

/* ---- replies ---- */

/* Extra response header (before the reply): e.g. "allow", "retry-after". */
int http_req_add_header(http_req *r, const char *name, const char *value);
/* Copies body. HEAD requests get the headers only. */
int http_reply(http_req *r, int status, const char *content_type, const void *body, size_t len);
/* Takes the reference j. */
int http_reply_json(http_req *r, int status, json_t *j);
/* An error reply: the body is the app's error_body(type, message) (see
 * struct http_app). The message is made printable ASCII first. */
__attribute__((format(printf, 4, 5))) int http_reply_error(http_req *r, int status,
							   const char *type, const char *fmt, ...);
bool http_req_replied(const http_req *r);

/* Defer the reply; returns the request id for http_server_post(). */
uint64_t http_req_defer(http_req *r);
/* Call fn on the service thread after ms, unless the request was answered
 * or gone by then. One timer per request. */
int http_req_set_timer(http_req *r, int ms, http_post_fn fn, void *arg);

/* ---- streaming (data plane) ---- */

/* Take the body as it arrives instead of buffering it: sink returns 0 or
 * -errno (the request then fails with 500 unless a reply was given), done
 * runs once it is complete. Call from on_headers. */
struct http_body_sink {
	int (*data)(http_req *r, const void *buf, size_t len, void *ud);
	void (*done)(http_req *r, void *ud);
};
int http_req_set_body_sink(http_req *r, const struct http_body_sink *sink, void *ud);
/* Pause / resume reading the body from the socket (back-pressure). */
void http_req_pause_body(http_req *r, bool pause);
/* Reply with a body produced piece by piece: produce fills buf with up to
 * cap bytes and returns the count, 0 at the end, -EAGAIN when it has
 * nothing now (call http_req_kick() when it has), or -errno to abort (the
 * connection is closed). length -1: unknown (the connection closes at the
 * end). */
typedef ssize_t (*http_produce_fn)(http_req *r, uint8_t *buf, size_t cap, void *ud);
int http_reply_stream(http_req *r, int status, const char *content_type, int64_t length,
		      http_produce_fn produce, void *ud);
void http_req_kick(http_req *r);
