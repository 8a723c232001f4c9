/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_ws.c - WebSocket upgrades: the app decides in on_upgrade (with the
 * request's path and headers, e.g. to check the API key and find the
 * sandbox), then gets the raw lws events of the connection it accepted.
 *
 * lws binds the WebSocket's session data only after CONFIRM_UPGRADE, so
 * the app's handler waits in srv->ws_pending (keyed by the wsi) until
 * ESTABLISHED; a handshake that fails in between is cleaned up at
 * WSI_DESTROY, where the app gets on_close() to free its data.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "sbxd/http/http_server_int.h"
#include "base/log.h"

static struct http_ws_pending *pending_take(http_server *s, struct lws *wsi)
{
	for (struct http_ws_pending **pp = &s->ws_pending; *pp; pp = &(*pp)->next) {
		struct http_ws_pending *p = *pp;

		if (p->wsi == wsi) {
			*pp = p->next;
			return p;
		}
	}
	return NULL;
}

int http_ws_confirm(http_server *s, struct lws *wsi, struct http_pss *pss, const char *proto)
{
	const struct http_ws_ops *ops = NULL;
	struct http_ws_pending *p;
	void *ud = NULL;
	http_req *r;
	int rc = -1;

	(void)pss;
	r = http_req_new_upgrade(s, wsi);
	if (!r)
		return -1;
	if (!proto || strcmp(proto, "websocket")) {
		http_reply_error(r, 400, "BadRequest", "only WebSocket upgrades are served here");
	} else if (s->app->on_upgrade) {
		rc = s->app->on_upgrade(s->app_ud, r, &ops, &ud);
	}
	if (rc == 0 && ops) {
		p = calloc(1, sizeof(*p));
		if (!p) {
			if (ops->on_close)
				ops->on_close(wsi, ud);
			http_req_finish_upgrade(r, 500);
			return -1;
		}
		p->wsi = wsi;
		p->ops = ops;
		p->ud = ud;
		p->next = s->ws_pending;
		s->ws_pending = p;
		http_req_finish_upgrade(r, 101);
		return 0;
	}
	if (!http_req_replied(r))
		http_reply_error(r, 404, "NotFound", "no WebSocket endpoint at %s",
				 http_req_path(r));
	rc = http_req_write_now(r);
	http_req_finish_upgrade(r, r->status);
	return rc < 0 ? -1 : 1;
}

int http_ws_event(http_server *s, struct lws *wsi, int reason, struct http_pss *pss, void *in,
		  size_t len)
{
	struct http_ws_pending *p;
	int rc = 0;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		p = pending_take(s, wsi);
		if (!p || !pss) {
			free(p);
			return -1;
		}
		pss->ws_ops = p->ops;
		pss->ws_ud = p->ud;
		pss->ws_open = true;
		free(p);
		if (pss->ws_ops->on_open)
			rc = pss->ws_ops->on_open(wsi, pss->ws_ud);
		return rc < 0 ? -1 : 0;
	case LWS_CALLBACK_RECEIVE:
		if (!pss || !pss->ws_open)
			return -1;
		if (pss->ws_ops->on_message)
			rc = pss->ws_ops->on_message(
			    wsi, pss->ws_ud, in, len, lws_is_first_fragment(wsi) != 0,
			    lws_is_final_fragment(wsi) != 0, lws_frame_is_binary(wsi) != 0);
		return rc < 0 ? -1 : 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!pss || !pss->ws_open)
			return 0;
		if (pss->ws_ops->on_writeable)
			rc = pss->ws_ops->on_writeable(wsi, pss->ws_ud);
		return rc < 0 ? -1 : 0;
	case LWS_CALLBACK_CLOSED:
		if (pss && pss->ws_open) {
			pss->ws_open = false;
			if (pss->ws_ops->on_close)
				pss->ws_ops->on_close(wsi, pss->ws_ud);
			pss->ws_ops = NULL;
			pss->ws_ud = NULL;
		}
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		p = pending_take(s, wsi);
		if (p) {
			if (p->ops->on_close)
				p->ops->on_close(wsi, p->ud);
			free(p);
		}
		return 0;
	default:
		return 0;
	}
}

void http_ws_free_pending(http_server *s)
{
	struct http_ws_pending *p;

	while ((p = s->ws_pending)) {
		s->ws_pending = p->next;
		if (p->ops->on_close)
			p->ops->on_close(p->wsi, p->ud);
		free(p);
	}
}
