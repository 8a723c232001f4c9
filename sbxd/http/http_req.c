/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_req.c - what a handler may read from an HTTP request, and how it
 * takes a request body as a stream. Service thread only.
 */
#include <errno.h>
#include <string.h>

#include <libwebsockets.h>

#include "base/cleanup.h"
#include "sbxd/http/http_server_int.h"

enum http_method http_req_method(const http_req *r)
{
	return r->method;
}

const char *http_req_path(const http_req *r)
{
	return r->path;
}

uint64_t http_req_id(const http_req *r)
{
	return r->id;
}

const char *http_req_id_str(const http_req *r)
{
	return r->id_str;
}

const char *http_req_host(const http_req *r)
{
	return r->host;
}

const char *http_req_api_key(const http_req *r)
{
	return r->api_key;
}

int64_t http_req_content_length(const http_req *r)
{
	return r->content_length;
}

const char *http_req_body(const http_req *r, size_t *ret_len)
{
	*ret_len = r->body_len;
	return r->body ? r->body : "";
}

struct lws *http_req_wsi(const http_req *r)
{
	return r->wsi;
}

http_server *http_req_server(const http_req *r)
{
	return r->srv;
}

void http_req_set_data(http_req *r, void *data, void (*free_fn)(void *))
{
	if (r->data_free)
		r->data_free(r->data);
	r->data = data;
	r->data_free = free_fn;
}

void *http_req_data(const http_req *r)
{
	return r->data;
}

void http_req_log_key(http_req *r, const char *key_name)
{
	snprintf(r->log_key, sizeof(r->log_key), "%s", key_name ? key_name : "");
}

void http_req_log_sandbox(http_req *r, const char *sandbox)
{
	snprintf(r->log_sandbox, sizeof(r->log_sandbox), "%s", sandbox ? sandbox : "");
}

int http_req_query(const http_req *r, const char *name, char *buf, size_t len)
{
	char tmp[4096];
	size_t nl = strlen(name);

	/* lws keeps each "name=value" argument urldecoded as a fragment */
	for (int i = 0;; i++) {
		int n = lws_hdr_copy_fragment(r->wsi, tmp, sizeof(tmp), WSI_TOKEN_HTTP_URI_ARGS, i);

		if (n <= 0)
			return -ENOENT;
		if ((size_t)n > nl && !strncmp(tmp, name, nl) && tmp[nl] == '=') {
			size_t vl = (size_t)n - nl - 1;

			if (vl >= len)
				return -ENOBUFS;
			memcpy(buf, tmp + nl + 1, vl + 1);
			return (int)vl;
		}
	}
}

static const struct {
	const char *name;
	enum lws_token_indexes tok;
} known_headers[] = {
    {"host", WSI_TOKEN_HOST},
    {"connection", WSI_TOKEN_CONNECTION},
    {"upgrade", WSI_TOKEN_UPGRADE},
    {"origin", WSI_TOKEN_ORIGIN},
    {"accept", WSI_TOKEN_HTTP_ACCEPT},
    {"if-none-match", WSI_TOKEN_HTTP_IF_NONE_MATCH},
    {"if-modified-since", WSI_TOKEN_HTTP_IF_MODIFIED_SINCE},
    {"if-range", WSI_TOKEN_HTTP_IF_RANGE},
    {"if-match", WSI_TOKEN_HTTP_IF_MATCH},
    {"accept-encoding", WSI_TOKEN_HTTP_ACCEPT_ENCODING},
    {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION},
    {"content-length", WSI_TOKEN_HTTP_CONTENT_LENGTH},
    {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE},
    {"range", WSI_TOKEN_HTTP_RANGE},
    {"transfer-encoding", WSI_TOKEN_HTTP_TRANSFER_ENCODING},
    {"user-agent", WSI_TOKEN_HTTP_USER_AGENT},
    {"sec-websocket-extensions", WSI_TOKEN_EXTENSIONS},
    {"sec-websocket-protocol", WSI_TOKEN_PROTOCOL},
    {"sec-websocket-version", WSI_TOKEN_VERSION},
    {"expect", WSI_TOKEN_HTTP_EXPECT},
};

int http_req_header(const http_req *r, const char *name, char *buf, size_t len)
{
	char custom[80];
	int n;

	if (!len)
		return -ENOBUFS;
	for (size_t i = 0; i < ARRAY_SIZE(known_headers); i++) {
		if (strcmp(known_headers[i].name, name))
			continue;
		n = lws_hdr_total_length(r->wsi, known_headers[i].tok);
		if (n <= 0)
			return -ENOENT;
		if ((size_t)n >= len)
			return -ENOBUFS;
		return lws_hdr_copy(r->wsi, buf, (int)len, known_headers[i].tok) < 0 ? -ENOBUFS : n;
	}
	/* lws stores unknown header names lower-cased, with their colon */
	n = snprintf(custom, sizeof(custom), "%s:", name);
	if (n < 0 || (size_t)n >= sizeof(custom))
		return -ENOENT;
	n = lws_hdr_custom_length(r->wsi, custom, n);
	if (n < 0)
		return -ENOENT;
	if ((size_t)n >= len)
		return -ENOBUFS;
	return lws_hdr_custom_copy(r->wsi, buf, (int)len, custom, (int)strlen(custom)) < 0
		   ? -ENOBUFS
		   : n;
}

int http_req_set_body_sink(http_req *r, const struct http_body_sink *sink, void *ud)
{
	if (r->body_done || r->body_len)
		return -EBUSY;
	r->sink = *sink;
	r->sink_ud = ud;
	r->sink_set = true;
	return 0;
}

void http_req_pause_body(http_req *r, bool pause)
{
	lws_rx_flow_control(r->wsi, pause ? 0 : 1);
}
