/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_ws.c - the WebSocket client loop over libwebsockets.
 *
 * One lws context holds three kinds of wsi: the WebSocket connection
 * (protocol "sbx-ws", bound locally so that no Sec-WebSocket-Protocol is
 * offered: sbxd, like LangSmith, does not take one), and the input fd and
 * a signalfd adopted as raw files (protocol "sbx-fd"). lws polls them all,
 * so the whole client is one thread and signals arrive as events, never
 * in the middle of a write.
 *
 * A reconnect opens a new wsi on the same context; callbacks of an old
 * wsi that is going away are recognised (wsi != ws->wsi) and ignored.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libwebsockets.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "tools/sbx.h"
#include "tools/sbx_ws.h"

#define RX_MAX (64u << 20)	/* a bigger message from the server is refused */
#define QUEUE_HIGH (512u << 10) /* pause input above this many queued bytes */
#define QUEUE_LOW (64u << 10)	/* and resume below this */
#define INPUT_CHUNK (32u << 10)

struct frame {
	struct frame *next;
	size_t len;
	unsigned char buf[]; /* LWS_PRE bytes of room, then the message */
};

struct sbx_ws {
	const struct sbx_ws_ops *ops;
	void *ud;
	struct lws_context *ctx;
	struct lws *wsi;
	struct lws *in_wsi, *sig_wsi;
	int in_fd, sig_fd;
	bool connected, closing, stopped, app_paused, in_paused, gone_reported;
	bool in_eof, in_draining, in_busy;
	int close_code, peer_code;
	struct frame *head, *tail;
	size_t queued;
	char *rx;
	size_t rx_len;
	bool rx_too_big;
	lws_sorted_usec_list_t sul, sul_drain;
	struct sbx_url url;
	char *api_key;
};

int sbx_url_parse(const char *url, struct sbx_url *ret)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
	_cleanup_free_ char *fixed = NULL;
	int r = -EINVAL;
	size_t hl;

	*ret = (struct sbx_url){0};
	if (!u)
		return -ENOMEM;
	/* CURLU knows http(s), not ws(s): parse ws URLs as their http twins */
	if (!strncmp(url, "ws://", 5) || !strncmp(url, "wss://", 6)) {
		if (asprintf(&fixed, "http%s", url + 2) < 0) {
			curl_url_cleanup(u);
			return -ENOMEM;
		}
		url = fixed;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		goto out;
	if (strcmp(scheme, "http") && strcmp(scheme, "https"))
		goto out;
	(void)curl_url_get(u, CURLUPART_QUERY, &query, 0);
	hl = strlen(host);
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']')
		ret->host = strndup(host + 1, hl - 2);
	else
		ret->host = strdup(host);
	ret->port = atoi(port);
	ret->tls = !strcmp(scheme, "https");
	if (asprintf(&ret->path, "%s%s%s", path, query ? "?" : "", query ? query : "") < 0)
		ret->path = NULL;
	r = ret->host && ret->path && ret->port > 0 ? 0 : -ENOMEM;
	if (r < 0)
		sbx_url_release(ret);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return r;
}

void sbx_url_release(struct sbx_url *u)
{
	free(u->host);
	free(u->path);
	*u = (struct sbx_url){0};
}

static sbx_ws *ws_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

static void queue_clear(sbx_ws *ws)
{
	while (ws->head) {
		struct frame *f = ws->head;

		ws->head = f->next;
		free(f);
	}
	ws->tail = NULL;
	ws->queued = 0;
}

static void drain_input(sbx_ws *ws);

/* Input flows only when the app wants it, a connection is up and the
 * queue has room. */
static void input_flow_update(sbx_ws *ws)
{
	bool pause = ws->app_paused || !ws->connected || ws->queued > QUEUE_HIGH;

	if (ws->in_draining && !pause)
		drain_input(ws);
	if (!ws->in_wsi)
		return;
	if (!pause && ws->in_paused && ws->queued > QUEUE_LOW && ws->connected && !ws->app_paused)
		return; /* hysteresis: wait for the queue to drain further */
	if (pause != ws->in_paused) {
		lws_rx_flow_control(ws->in_wsi, pause ? 0 : 1);
		ws->in_paused = pause;
	}
}

static void on_sul_drain(lws_sorted_usec_list_t *sul);

/* Read what is left of an input whose watch lws ended on POLLHUP (a pipe
 * whose writer is gone may still hold data; reads of it cannot block),
 * as fast as the queue takes it. */
static void drain_input(sbx_ws *ws)
{
	char buf[INPUT_CHUNK];

	if (!ws->in_draining || ws->in_busy)
		return;
	ws->in_busy = true;
	while (!ws->in_eof && ws->connected && !ws->app_paused && ws->queued <= QUEUE_HIGH) {
		ssize_t n = read(ws->in_fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			lws_sul_schedule(ws->ctx, 0, &ws->sul_drain, on_sul_drain,
					 50 * LWS_US_PER_MS);
			break;
		}
		if (n <= 0)
			ws->in_eof = true;
		if (ws->ops->on_input)
			ws->ops->on_input(ws, ws->ud, buf, n > 0 ? (size_t)n : 0);
	}
	ws->in_busy = false;
}

static void on_sul_drain(lws_sorted_usec_list_t *sul)
{
	drain_input(lws_container_of(sul, sbx_ws, sul_drain));
}

static void connection_gone(sbx_ws *ws, int code, int http_status, const char *why)
{
	ws->wsi = NULL;
	ws->connected = false;
	ws->closing = false;
	ws->gone_reported = true;
	queue_clear(ws);
	free(ws->rx);
	ws->rx = NULL;
	ws->rx_len = 0;
	input_flow_update(ws);
	if (ws->ops->on_closed)
		ws->ops->on_closed(ws, ws->ud, code, http_status, why);
}

static int on_receive(sbx_ws *ws, struct lws *wsi, const void *in, size_t len)
{
	char *n;

	if (ws->rx_len + len > RX_MAX)
		ws->rx_too_big = true;
	if (!ws->rx_too_big) {
		n = realloc(ws->rx, ws->rx_len + len + 1);
		if (!n)
			return -1;
		ws->rx = n;
		memcpy(ws->rx + ws->rx_len, in, len);
		ws->rx_len += len;
		ws->rx[ws->rx_len] = '\0';
	}
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;
	if (ws->rx_too_big) {
		log_warn("a message from sbxd is larger than %u MiB, ignoring", RX_MAX >> 20);
	} else if (ws->ops->on_message) {
		ws->ops->on_message(ws, ws->ud, ws->rx ? ws->rx : "", ws->rx_len);
	}
	ws->rx_too_big = false;
	ws->rx_len = 0;
	return 0;
}

static int on_writeable(sbx_ws *ws, struct lws *wsi)
{
	struct frame *f = ws->head;

	if (!f) {
		if (ws->closing) {
			lws_close_reason(wsi, (enum lws_close_status)ws->close_code, NULL, 0);
			return -1;
		}
		return 0;
	}
	if (lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT) < (int)f->len)
		return -1;
	ws->head = f->next;
	if (!ws->head)
		ws->tail = NULL;
	ws->queued -= f->len;
	free(f);
	input_flow_update(ws);
	if (ws->head || ws->closing)
		lws_callback_on_writable(wsi);
	return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		       size_t len)
{
	sbx_ws *ws = ws_of(wsi);
	char why[256];

	(void)user;
	if (!ws)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		unsigned char **p = in, *end = *p + len;

		if (ws->api_key &&
		    lws_add_http_header_by_name(wsi, (const unsigned char *)"x-api-key:",
						(const unsigned char *)ws->api_key,
						(int)strlen(ws->api_key), p, end))
			return -1;
		return 0;
	}
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (wsi != ws->wsi)
			return -1;
		ws->connected = true;
		ws->peer_code = 0;
		input_flow_update(ws);
		if (ws->ops->on_open)
			ws->ops->on_open(ws, ws->ud);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (wsi != ws->wsi)
			return 0;
		return on_receive(ws, wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		if (wsi != ws->wsi)
			return -1;
		return on_writeable(ws, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (wsi == ws->wsi && len >= 2)
			ws->peer_code =
			    ((const unsigned char *)in)[0] << 8 | ((const unsigned char *)in)[1];
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (wsi != ws->wsi)
			return 0;
		snprintf(why, sizeof(why), "%s",
			 in && len ? (const char *)in : "connection failed");
		connection_gone(ws, -1, (int)lws_http_client_http_response(wsi), why);
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (wsi != ws->wsi)
			return 0;
		connection_gone(ws, ws->peer_code ? ws->peer_code : 1006, 0,
				ws->peer_code ? "closed by sbxd" : "the connection dropped");
		return 0;
	default:
		return 0;
	}
}

static int fd_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		       size_t len)
{
	sbx_ws *ws = ws_of(wsi);
	char buf[INPUT_CHUNK];
	ssize_t n;

	(void)user;
	(void)in;
	(void)len;
	if (!ws)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (wsi == ws->sig_wsi) {
			struct signalfd_siginfo si;

			n = read(ws->sig_fd, &si, sizeof(si));
			if (n == (ssize_t)sizeof(si) && ws->ops->on_signal)
				ws->ops->on_signal(ws, ws->ud, (int)si.ssi_signo);
			return 0;
		}
		if (wsi != ws->in_wsi)
			return 0;
		n = read(ws->in_fd, buf, sizeof(buf));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n < 0)
			log_debug("reading the input failed: %m; taking it as its end");
		if (n <= 0)
			ws->in_eof = true;
		if (ws->ops->on_input)
			ws->ops->on_input(ws, ws->ud, buf, n > 0 ? (size_t)n : 0);
		if (n <= 0) {
			ws->in_wsi = NULL;
			return -1;
		}
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if (wsi == ws->in_wsi) {
			/* lws ends the watch itself on POLLHUP, even while the
			 * input is paused and data is still waiting */
			ws->in_wsi = NULL;
			if (!ws->in_eof) {
				ws->in_draining = true;
				drain_input(ws);
			}
		}
		if (wsi == ws->sig_wsi)
			ws->sig_wsi = NULL;
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols protocols[] = {
    {"sbx-ws", ws_callback, 0, 64 * 1024, 0, NULL, 0},
    {"sbx-fd", fd_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log_to_ours(int level, const char *line)
{
	(void)level;
	log_debug("lws: %.*s", (int)strcspn(line, "\n"), line);
}

int sbx_ws_new(const struct sbx_ws_ops *ops, void *ud, sbx_ws **ret)
{
	struct lws_context_creation_info info = {0};
	sbx_ws *ws = calloc(1, sizeof(*ws));

	if (!ws)
		return -ENOMEM;
	ws->ops = ops;
	ws->ud = ud;
	ws->in_fd = -EBADF;
	ws->sig_fd = -EBADF;
	lws_set_log_level(arg_verbose >= 3 ? LLL_ERR | LLL_WARN | LLL_NOTICE : 0, lws_log_to_ours);
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	info.user = ws;
	info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	ws->ctx = lws_create_context(&info);
	if (!ws->ctx) {
		free(ws);
		return -ENOMEM;
	}
	*ret = ws;
	return 0;
}

sbx_ws *sbx_ws_free(sbx_ws *ws)
{
	if (!ws)
		return NULL;
	lws_sul_cancel(&ws->sul);
	lws_sul_cancel(&ws->sul_drain);
	/* destroying the context closes the wsis and with them the fds */
	ws->ops = &(const struct sbx_ws_ops){0};
	lws_context_destroy(ws->ctx);
	queue_clear(ws);
	free(ws->rx);
	free(ws->api_key);
	sbx_url_release(&ws->url);
	free(ws);
	return NULL;
}

static struct lws *adopt_fd(sbx_ws *ws, int fd)
{
	lws_sock_file_fd_type u = {.filefd = fd};

	return lws_adopt_descriptor_vhost(lws_get_vhost_by_name(ws->ctx, "default"),
					  LWS_ADOPT_RAW_FILE_DESC, u, "sbx-fd", NULL);
}

int sbx_ws_watch_input(sbx_ws *ws, int fd)
{
	/* lws closes the fd it watches: give it a copy, keep fd to drain */
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);

	if (copy < 0)
		return -errno;
	ws->in_fd = fd;
	ws->in_paused = false;
	ws->in_wsi = adopt_fd(ws, copy);
	if (!ws->in_wsi) {
		close(copy);
		return -ENOMEM;
	}
	input_flow_update(ws);
	return 0;
}

int sbx_ws_watch_signals(sbx_ws *ws, const sigset_t *set)
{
	if (sigprocmask(SIG_BLOCK, set, NULL) < 0)
		return -errno;
	ws->sig_fd = signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (ws->sig_fd < 0)
		return -errno;
	ws->sig_wsi = adopt_fd(ws, ws->sig_fd);
	if (!ws->sig_wsi) {
		close(ws->sig_fd);
		ws->sig_fd = -EBADF;
		return -ENOMEM;
	}
	return 0;
}

int sbx_ws_connect(sbx_ws *ws, const char *url, const char *api_key)
{
	struct lws_client_connect_info i = {0};
	char host_hdr[300];
	int r;

	if (ws->wsi)
		return -EISCONN;
	if (url) {
		sbx_url_release(&ws->url);
		r = sbx_url_parse(url, &ws->url);
		if (r < 0)
			return r;
		free(ws->api_key);
		ws->api_key = api_key ? strdup(api_key) : NULL;
	}
	if (strchr(ws->url.host, ':'))
		snprintf(host_hdr, sizeof(host_hdr), "[%s]:%d", ws->url.host, ws->url.port);
	else
		snprintf(host_hdr, sizeof(host_hdr), "%s:%d", ws->url.host, ws->url.port);
	i.context = ws->ctx;
	i.address = ws->url.host;
	i.port = ws->url.port;
	i.path = ws->url.path;
	i.host = host_hdr;
	i.origin = host_hdr;
	i.ssl_connection = ws->url.tls ? LCCSCF_USE_SSL : 0;
	i.local_protocol_name = "sbx-ws";
	i.pwsi = &ws->wsi;
	ws->peer_code = 0;
	log_debug("connecting to ws%s://%s%s", ws->url.tls ? "s" : "", host_hdr, ws->url.path);
	ws->gone_reported = false;
	if (!lws_client_connect_via_info(&i)) {
		/* lws may have said why through CONNECTION_ERROR already */
		ws->wsi = NULL;
		if (!ws->gone_reported)
			connection_gone(ws, -1, 0, "cannot open a connection");
	}
	return 0;
}

bool sbx_ws_connected(const sbx_ws *ws)
{
	return ws->connected;
}

int sbx_ws_send(sbx_ws *ws, const char *text, size_t len)
{
	struct frame *f;

	if (!ws->connected || ws->closing)
		return -ENOTCONN;
	f = malloc(sizeof(*f) + LWS_PRE + len);
	if (!f)
		return -ENOMEM;
	f->next = NULL;
	f->len = len;
	memcpy(f->buf + LWS_PRE, text, len);
	if (ws->tail)
		ws->tail->next = f;
	else
		ws->head = f;
	ws->tail = f;
	ws->queued += len;
	input_flow_update(ws);
	lws_callback_on_writable(ws->wsi);
	return 0;
}

void sbx_ws_pause_input(sbx_ws *ws, bool pause)
{
	ws->app_paused = pause;
	input_flow_update(ws);
}

void sbx_ws_close(sbx_ws *ws, int code)
{
	if (!ws->wsi || ws->closing)
		return;
	ws->closing = true;
	ws->close_code = code;
	lws_callback_on_writable(ws->wsi);
}

static void on_sul(lws_sorted_usec_list_t *sul)
{
	sbx_ws *ws = lws_container_of(sul, sbx_ws, sul);

	if (ws->ops->on_timer)
		ws->ops->on_timer(ws, ws->ud);
}

void sbx_ws_set_timer(sbx_ws *ws, long ms)
{
	lws_sul_cancel(&ws->sul);
	if (ms >= 0)
		lws_sul_schedule(ws->ctx, 0, &ws->sul, on_sul, (lws_usec_t)ms * LWS_US_PER_MS);
}

int sbx_ws_run(sbx_ws *ws)
{
	while (!ws->stopped)
		if (lws_service(ws->ctx, 0) < 0)
			return -EIO;
	return 0;
}

void sbx_ws_stop(sbx_ws *ws)
{
	ws->stopped = true;
	lws_cancel_service(ws->ctx);
}
