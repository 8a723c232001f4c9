/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_server.c - the HTTP/WebSocket server of sbxd over libwebsockets.
 *
 * One lws context, one vhost, one protocol that receives every HTTP and
 * WebSocket callback. Per connection, the protocol's session data points
 * at the request in progress (HTTP) or at the app's WebSocket handler.
 *
 * Invariants:
 *  - every live request is in srv->reqs until it is finished (reply
 *    written, access log line written) or its connection closes; posted
 *    completions find requests only through that list, by id, so a worker
 *    never holds a pointer to a request;
 *  - replies are written only from the HTTP_WRITEABLE callback, in chunks,
 *    so one slow client never blocks the loop;
 *  - a connection whose request body was refused (413, 411) is closed
 *    after the reply, since the rest of its body cannot be parsed.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#include "base/clock.h"
#include "base/cleanup.h"
#include "sbxd/http/http_server_int.h"
#include "base/log.h"

#define WRITE_CHUNK (64 * 1024)

/* ---- request table ---- */

static http_req *req_find(http_server *s, uint64_t id)
{
	for (http_req *r = s->reqs; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

static void req_unlink(http_req *r)
{
	http_server *s = r->srv;

	for (http_req **pp = &s->reqs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			return;
		}
	}
}

static void req_free(http_req *r)
{
	struct http_hdr *h, *n;

	if (!r)
		return;
	req_unlink(r);
	if (r->pss && r->pss->req == r)
		r->pss->req = NULL;
	if (r->data_free)
		r->data_free(r->data);
	for (h = r->headers; h; h = n) {
		n = h->next;
		free(h);
	}
	free(r->path);
	free(r->api_key);
	free(r->body);
	free(r->out);
	free(r->ctype);
	free(r);
}

static void access_log(http_req *r, int status)
{
	http_server *s = r->srv;
	char when[40];
	json_t *j;
	char *line;
	size_t n;

	if (s->log_fd < 0)
		return;
	clock_rfc3339(clock_wall_ms(), true, when, sizeof(when));
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:f, s:I, s:I}", "time", when, "msg",
		      "request", "request_id", r->id_str, "method", http_method_name(r->method),
		      "path", r->path ? r->path : "", "status", status, "duration_ms",
		      (double)(clock_mono_us() - r->t0_us) / 1000.0, "bytes_in",
		      (json_int_t)r->bytes_in, "bytes_out", (json_int_t)r->bytes_out);
	if (!j)
		return;
	if (r->log_key[0])
		json_object_set_new(j, "key", json_string(r->log_key));
	if (r->log_sandbox[0])
		json_object_set_new(j, "sandbox", json_string(r->log_sandbox));
	line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(j);
	if (!line)
		return;
	n = strlen(line);
	line[n] = '\n'; /* json_dumps' NUL becomes the newline: one write() */
	(void)!write(s->log_fd, line, n + 1);
	free(line);
}

static enum http_method method_from_lws(int m)
{
	switch (m) {
	case LWSHUMETH_GET:
		return HTTP_GET;
	case LWSHUMETH_POST:
		return HTTP_POST;
	case LWSHUMETH_OPTIONS:
		return HTTP_OPTIONS;
	case LWSHUMETH_PUT:
		return HTTP_PUT;
	case LWSHUMETH_PATCH:
		return HTTP_PATCH;
	case LWSHUMETH_DELETE:
		return HTTP_DELETE;
	case LWSHUMETH_HEAD:
		return HTTP_HEAD;
	default:
		return HTTP_METHOD_INVALID;
	}
}

static http_req *req_new(http_server *s, struct lws *wsi, struct http_pss *pss, const char *path)
{
	http_req *r = calloc(1, sizeof(*r));
	char *uri = NULL, buf[32];
	int ulen = 0, m, n;

	if (!r)
		return NULL;
	r->srv = s;
	r->wsi = wsi;
	r->pss = pss;
	r->t0_us = clock_mono_us();
	r->id = ++s->next_id;
	snprintf(r->id_str, sizeof(r->id_str), "%08x%08llx", s->boot_tag,
		 (unsigned long long)r->id);
	m = lws_http_get_uri_and_method(wsi, &uri, &ulen);
	r->method = method_from_lws(m);
	r->path = strdup(path ? path : "");
	r->content_length = -1;
	if (lws_hdr_copy(wsi, r->host, sizeof(r->host), WSI_TOKEN_HOST) < 0)
		r->host[0] = '\0';
	n = lws_hdr_custom_length(wsi, "x-api-key:", 10);
	if (n >= 0) {
		if (n <= HTTP_API_KEY_MAX) {
			r->api_key = malloc((size_t)n + 1);
			if (r->api_key &&
			    lws_hdr_custom_copy(wsi, r->api_key, n + 1, "x-api-key:", 10) < 0)
				r->api_key[0] = '\0';
		} else {
			r->api_key = strdup("");
		}
	}
	if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
		char *end;
		long long v = strtoll(buf, &end, 10);

		r->content_length = *end || v < 0 ? -2 : v;
	}
	if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
		r->chunked = true;
	if (!r->path || (r->api_key == NULL && n >= 0)) {
		free(r->path);
		free(r->api_key);
		free(r);
		return NULL;
	}
	r->next = s->reqs;
	s->reqs = r;
	return r;
}

/* ---- writing replies ---- */

static int write_headers(http_req *r)
{
	uint8_t buf[LWS_PRE + 4096];
	uint8_t *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
	lws_filepos_t clen;

	if (r->produce)
		clen = r->stream_len >= 0 ? (lws_filepos_t)r->stream_len
					  : LWS_ILLEGAL_HTTP_CONTENT_LEN;
	else
		clen = r->out_len;
	if (lws_add_http_common_headers(r->wsi, (unsigned)r->status,
					r->ctype ? r->ctype : "application/json", clen, &p, end))
		return -1;
	if (lws_add_http_header_by_name(
		r->wsi, (const uint8_t *)"x-request-id:", (const uint8_t *)r->id_str,
		(int)strlen(r->id_str), &p, end))
		return -1;
	for (struct http_hdr *h = r->headers; h; h = h->next) {
		if (lws_add_http_header_by_name(r->wsi, (const uint8_t *)h->name,
						(const uint8_t *)h->value, (int)strlen(h->value),
						&p, end))
			return -1;
	}
	if (r->close_after && lws_add_http_header_by_token(r->wsi, WSI_TOKEN_CONNECTION,
							   (const uint8_t *)"close", 5, &p, end))
		return -1;
	if (lws_finalize_write_http_header(r->wsi, start, &p, end))
		return -1;
	r->headers_sent = true;
	return 0;
}

/* Finishes r after its last byte: log, free, keep the connection or not.
 * Returns what the lws callback must return. */
static int req_finish(http_req *r)
{
	struct lws *wsi = r->wsi;
	bool close = r->close_after || (r->produce && r->stream_len < 0);

	access_log(r, r->status);
	lws_set_timer_usecs(wsi, LWS_SET_TIMER_USEC_CANCEL);
	req_free(r);
	if (close)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int write_body_chunk(http_req *r)
{
	uint8_t *buf = r->srv->wbuf;
	size_t n;
	bool last;

	if (r->method == HTTP_HEAD)
		return req_finish(r);
	if (r->produce) {
		ssize_t got = r->produce(r, buf + LWS_PRE, WRITE_CHUNK, r->produce_ud);

		if (got == -EAGAIN) {
			r->stream_wait = true;
			return 0;
		}
		if (got < 0)
			return -1;
		if (got == 0) {
			if (r->stream_len >= 0 && r->out_off != (uint64_t)r->stream_len)
				return -1; /* a short body would desynchronise the client */
			if (r->stream_len < 0 &&
			    lws_write(r->wsi, buf + LWS_PRE, 0, LWS_WRITE_HTTP_FINAL) < 0)
				return -1;
			return req_finish(r);
		}
		n = (size_t)got;
		r->out_off += n;
		last = r->stream_len >= 0 && r->out_off >= (uint64_t)r->stream_len;
	} else {
		n = r->out_len - r->out_off;
		if (n > WRITE_CHUNK)
			n = WRITE_CHUNK;
		memcpy(buf + LWS_PRE, r->out + r->out_off, n);
		r->out_off += n;
		last = r->out_off == r->out_len;
	}
	if (n && lws_write(r->wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
		     (int)n)
		return -1;
	r->bytes_out += n;
	if (last)
		return req_finish(r);
	lws_callback_on_writable(r->wsi);
	return 0;
}

static int on_writeable(http_req *r)
{
	if (!r || !r->replied || r->wait_body)
		return 0;
	if (!r->headers_sent) {
		if (write_headers(r) < 0)
			return -1;
		if (r->method != HTTP_HEAD && (r->produce || r->out_len > 0)) {
			lws_callback_on_writable(r->wsi);
			return 0;
		}
		return req_finish(r);
	}
	return write_body_chunk(r);
}

/* Arms writing once a reply is set (and no body is still arriving). */
static void reply_ready(http_req *r)
{
	if (r->body_expected && !r->body_done && !r->sink_set) {
		if (r->content_length > (int64_t)r->srv->max_body) {
			r->close_after = true; /* cannot skip that much body: hang up after */
		} else {
			r->wait_body = true; /* drain the (bounded) body first */
			r->discard_body = true;
			return;
		}
	}
	lws_set_timeout(r->wsi, NO_PENDING_TIMEOUT, 0);
	lws_callback_on_writable(r->wsi);
}

static int set_reply(http_req *r, int status, const char *ctype)
{
	if (r->replied)
		return -EALREADY;
	r->replied = true;
	r->status = status;
	free(r->ctype);
	r->ctype = ctype ? strdup(ctype) : NULL;
	return 0;
}

int http_reply(http_req *r, int status, const char *content_type, const void *body, size_t len)
{
	int ret = set_reply(r, status, content_type);

	if (ret < 0)
		return ret;
	if (len) {
		r->out = malloc(len);
		if (!r->out) {
			r->status = 500;
			len = 0;
		} else {
			memcpy(r->out, body, len);
		}
	}
	r->out_len = len;
	if (!r->in_upgrade)
		reply_ready(r);
	return 0;
}

int http_reply_json(http_req *r, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	int ret;

	json_decref(j);
	if (!s)
		return http_reply_error(r, 500, "InternalError", "out of memory");
	ret = http_reply(r, status, "application/json", s, strlen(s));
	free(s);
	return ret;
}

static char *default_error_body(const char *type, const char *message)
{
	json_t *j = json_pack("{s:s, s:s}", "error", type, "message", message);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return s;
}

int http_reply_error(http_req *r, int status, const char *type, const char *fmt, ...)
{
	static const char oom[] = "{\"detail\":{\"error\":\"InternalError\",\"message\":"
				  "\"out of memory\"}}";
	char msg[1024];
	_cleanup_free_ char *body = NULL;
	va_list ap;

	if (r->srv->app->on_error)
		r->srv->app->on_error(type);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Messages may quote request data: keep them printable ASCII so
	 * they always encode (jansson refuses invalid UTF-8). */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	body = r->srv->app->error_body ? r->srv->app->error_body(type, msg)
				       : default_error_body(type, msg);
	if (!body)
		return http_reply(r, status, "application/json", oom, sizeof(oom) - 1);
	return http_reply(r, status, "application/json", body, strlen(body));
}

int http_reply_stream(http_req *r, int status, const char *content_type, int64_t length,
		      http_produce_fn produce, void *ud)
{
	int ret = set_reply(r, status, content_type);

	if (ret < 0)
		return ret;
	r->produce = produce;
	r->produce_ud = ud;
	r->stream_len = length;
	reply_ready(r);
	return 0;
}

void http_req_kick(http_req *r)
{
	if (r && r->stream_wait) {
		r->stream_wait = false;
		lws_callback_on_writable(r->wsi);
	}
}

bool http_req_replied(const http_req *r)
{
	return r->replied;
}

int http_req_add_header(http_req *r, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	struct http_hdr *h = malloc(sizeof(*h) + nl + 2 + vl + 1);

	if (!h)
		return -ENOMEM;
	h->name = (char *)(h + 1);
	memcpy(h->name, name, nl);
	h->name[nl] = ':';
	h->name[nl + 1] = '\0';
	h->value = h->name + nl + 2;
	memcpy(h->value, value, vl + 1);
	h->next = r->headers;
	r->headers = h;
	return 0;
}

uint64_t http_req_defer(http_req *r)
{
	r->deferred = true;
	/* lws must not time the connection out while a VM boots */
	lws_set_timeout(r->wsi, NO_PENDING_TIMEOUT, 0);
	return r->id;
}

int http_req_set_timer(http_req *r, int ms, http_post_fn fn, void *arg)
{
	r->timer_fn = fn;
	r->timer_arg = arg;
	lws_set_timer_usecs(r->wsi, (lws_usec_t)ms * 1000);
	return 0;
}

/* ---- the lws protocol callback ---- */

static int on_http(http_server *s, struct lws *wsi, struct http_pss *pss, const char *path)
{
	http_req *r;

	if (pss->req)
		req_free(pss->req); /* a previous request that never finished */
	r = req_new(s, wsi, pss, path);
	if (!r)
		return -1;
	pss->req = r;
	r->body_expected = r->content_length > 0 || r->chunked;
	if ((int)r->method < 0) {
		r->close_after = true;
		http_reply_error(r, 405, "MethodNotAllowed",
				 "this server does not serve %s requests", "CONNECT");
		return 0;
	}
	if (r->content_length == -2) {
		r->close_after = true;
		http_reply_error(r, 400, "BadRequest", "the Content-Length header is not a number");
		return 0;
	}
	if (r->chunked) {
		r->close_after = true;
		http_reply_error(r, 411, "LengthRequired",
				 "send the request body with a Content-Length header");
		return 0;
	}
	s->app->on_headers(s->app_ud, r);
	if (r->replied || r->deferred || pss->req != r)
		return 0;
	if (!r->body_expected) {
		r->body_done = true;
		s->app->on_request(s->app_ud, r);
	} else if (!r->sink_set && r->content_length > (int64_t)s->max_body) {
		http_reply_error(r, 413, "PayloadTooLarge",
				 "the request body (%lld bytes) is larger than the %zu bytes "
				 "this endpoint accepts",
				 (long long)r->content_length, s->max_body);
	}
	return 0;
}

static int on_body(http_req *r, const void *in, size_t len)
{
	if (!r)
		return 0;
	r->bytes_in += len;
	if (r->sink_set) {
		if (r->sink.data(r, in, len, r->sink_ud) < 0 && !r->replied)
			http_reply_error(r, 500, "InternalError",
					 "the request body could not be taken");
		return 0;
	}
	if (r->discard_body)
		return 0;
	if (r->body_len + len > r->srv->max_body) {
		r->discard_body = true;
		r->close_after = true;
		if (!r->replied)
			http_reply_error(r, 413, "PayloadTooLarge",
					 "the request body is larger than the %zu bytes this "
					 "endpoint accepts",
					 r->srv->max_body);
		return 0;
	}
	if (r->body_len + len + 1 > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap : 4096;
		char *nb;

		while (cap < r->body_len + len + 1)
			cap *= 2;
		nb = realloc(r->body, cap);
		if (!nb)
			return -1;
		r->body = nb;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, in, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return 0;
}

static int on_body_done(http_req *r)
{
	if (!r)
		return 0;
	r->body_done = true;
	if (r->replied) {
		if (r->wait_body) {
			r->wait_body = false;
			lws_callback_on_writable(r->wsi);
		}
		return 0;
	}
	if (r->sink_set) {
		r->sink.done(r, r->sink_ud);
		return 0;
	}
	r->srv->app->on_request(r->srv->app_ud, r);
	return 0;
}

static void drain_posts(http_server *s)
{
	struct http_post *list, *p;

	pthread_mutex_lock(&s->post_lock);
	list = s->posts;
	s->posts = s->posts_tail = NULL;
	pthread_mutex_unlock(&s->post_lock);
	while ((p = list)) {
		http_req *r = p->req_id ? req_find(s, p->req_id) : NULL;

		list = p->next;
		if (r && r->replied)
			r = NULL;
		p->fn(s, r, p->arg);
		free(p);
	}
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
			 size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	http_server *s = ctx ? lws_context_user(ctx) : NULL;
	struct http_pss *pss = user;

	switch (reason) {
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		if (s)
			drain_posts(s);
		return 0;
	case LWS_CALLBACK_HTTP:
		return on_http(s, wsi, pss, in);
	case LWS_CALLBACK_HTTP_BODY:
		return on_body(pss ? pss->req : NULL, in, len);
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return on_body_done(pss ? pss->req : NULL);
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return pss ? on_writeable(pss->req) : 0;
	case LWS_CALLBACK_TIMER:
		if (pss && pss->req && pss->req->timer_fn && !pss->req->replied) {
			http_post_fn fn = pss->req->timer_fn;

			pss->req->timer_fn = NULL;
			fn(s, pss->req, pss->req->timer_arg);
		}
		return 0;
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (pss && pss->req) {
			access_log(pss->req, pss->req->replied ? pss->req->status : 499);
			req_free(pss->req);
		}
		return 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return http_ws_confirm(s, wsi, pss, in);
	case LWS_CALLBACK_ESTABLISHED:
	case LWS_CALLBACK_RECEIVE:
	case LWS_CALLBACK_SERVER_WRITEABLE:
	case LWS_CALLBACK_CLOSED:
	case LWS_CALLBACK_WSI_DESTROY:
		return http_ws_event(s, wsi, reason, pss, in, len);
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"sbxd", http_callback, sizeof(struct http_pss), 64 * 1024, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- server life ---- */

static void lws_log_emit(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (level & LLL_ERR)
		log_error("lws: %.*s", (int)n, line);
	else
		log_debug("lws: %.*s", (int)n, line);
}

/* lws binds to an interface name or a numeric address: resolve names. */
static int resolve_host(const char *host, char *buf, size_t len, bool *ret_v6)
{
	struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	int r;

	r = getaddrinfo(host, NULL, &hints, &ai);
	if (r != 0)
		return -EADDRNOTAVAIL;
	r = getnameinfo(ai->ai_addr, ai->ai_addrlen, buf, (socklen_t)len, NULL, 0, NI_NUMERICHOST);
	*ret_v6 = ai->ai_family == AF_INET6;
	freeaddrinfo(ai);
	return r == 0 ? 0 : -EADDRNOTAVAIL;
}

int http_server_new(const struct http_server_config *c, http_server **ret)
{
	struct lws_context_creation_info info;
	char addr[128];
	bool v6 = false, any;
	http_server *s;
	int r;

	any = !c->host || !*c->host || !strcmp(c->host, "0.0.0.0") || !strcmp(c->host, "::");
	if (!any) {
		r = resolve_host(c->host, addr, sizeof(addr), &v6);
		if (r < 0)
			return r;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->wbuf = malloc(LWS_PRE + WRITE_CHUNK);
	if (!s->wbuf) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->post_lock, NULL);
	s->app = c->app;
	s->app_ud = c->app_ud;
	s->max_body = c->max_body ? c->max_body : HTTP_MAX_BODY_DEFAULT;
	s->log_fd = c->log_fd;
	s->boot_tag = (uint32_t)(time(NULL) ^ (getpid() << 16));
	lws_set_log_level(LLL_ERR, lws_log_emit);

	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	if (!any && !v6)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	if (c->host && !strcmp(c->host, "0.0.0.0"))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.user = s;
	info.server_string = "sbxd";
	info.max_http_header_pool = 256;
	info.max_http_header_data = 8192;
	s->ctx = lws_create_context(&info);
	if (!s->ctx) {
		http_server_free(s);
		return -ENOMEM;
	}
	info.iface = any ? NULL : addr;
	info.port = c->port;
	info.protocols = protocols;
	info.vhost_name = "sbxd";
	/* undici keeps idle sockets 4 s: stay open longer than that */
	info.keepalive_timeout = 30;
	info.timeout_secs = 60;
	s->vhost = lws_create_vhost(s->ctx, &info);
	if (!s->vhost) {
		http_server_free(s);
		return -EADDRINUSE;
	}
	s->port = lws_get_vhost_listen_port(s->vhost);
	*ret = s;
	return 0;
}

http_server *http_server_free(http_server *s)
{
	struct http_post *p;

	if (!s)
		return NULL;
	if (s->ctx)
		lws_context_destroy(s->ctx);
	while (s->reqs)
		req_free(s->reqs);
	while ((p = s->posts)) {
		s->posts = p->next;
		p->fn(s, NULL, p->arg);
		free(p);
	}
	http_ws_free_pending(s);
	pthread_mutex_destroy(&s->post_lock);
	free(s->wbuf);
	free(s);
	return NULL;
}

int http_server_port(const http_server *s)
{
	return s->port;
}

int http_server_service(http_server *s)
{
	return lws_service(s->ctx, 0) < 0 ? -EIO : 0;
}

int http_server_run(http_server *s, volatile sig_atomic_t *stop)
{
	while (!s->stopping && !(stop && *stop)) {
		if (lws_service(s->ctx, 0) < 0)
			return -EIO;
	}
	return 0;
}

void http_server_stop(http_server *s)
{
	s->stopping = 1;
	lws_cancel_service(s->ctx);
}

int http_server_post(http_server *s, uint64_t req_id, http_post_fn fn, void *arg)
{
	struct http_post *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->req_id = req_id;
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&s->post_lock);
	if (s->posts_tail)
		s->posts_tail->next = p;
	else
		s->posts = p;
	s->posts_tail = p;
	pthread_mutex_unlock(&s->post_lock);
	lws_cancel_service(s->ctx);
	return 0;
}

/* ---- for http_ws.c ---- */

http_req *http_req_new_upgrade(http_server *s, struct lws *wsi)
{
	char *uri = NULL;
	char path[1024];
	int ulen = 0;
	http_req *r;

	if (lws_http_get_uri_and_method(wsi, &uri, &ulen) < 0 || !uri || ulen <= 0 ||
	    ulen >= (int)sizeof(path))
		return NULL;
	memcpy(path, uri, (size_t)ulen);
	path[ulen] = '\0';
	r = req_new(s, wsi, NULL, path);
	if (r)
		r->in_upgrade = true;
	return r;
}

void http_req_finish_upgrade(http_req *r, int status)
{
	access_log(r, status);
	req_free(r);
}

int http_req_write_now(http_req *r)
{
	uint8_t *buf = r->srv->wbuf;

	r->close_after = true;
	if (write_headers(r) < 0)
		return -1;
	if (r->out_len && r->out_len <= WRITE_CHUNK) {
		memcpy(buf + LWS_PRE, r->out, r->out_len);
		if (lws_write(r->wsi, buf + LWS_PRE, r->out_len, LWS_WRITE_HTTP_FINAL) <
		    (int)r->out_len)
			return -1;
		r->bytes_out += r->out_len;
	}
	return 0;
}
