/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_ws.h - one WebSocket client connection (libwebsockets) and the
 * local file descriptors that feed it, on a single-threaded loop.
 *
 * The loop watches the connection, an input fd (stdin) and a signalfd,
 * and calls the ops below from sbx_ws_run(). Outgoing messages wait in a
 * queue; input is paused while the queue holds more than a few hundred
 * KiB, while no connection is up, or while the caller asks, so a fast
 * producer never grows memory. Output is handed over as whole messages;
 * the caller writes it out before the loop reads more, which slows the
 * server down when our stdout is slow.
 */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct sbx_ws sbx_ws;

struct sbx_ws_ops {
	/* The connection is up: send the first message. */
	void (*on_open)(sbx_ws *ws, void *ud);
	/* One whole message from the server. */
	void (*on_message)(sbx_ws *ws, void *ud, const char *data, size_t len);
	/* The connection ended (close code from the server, 1006 if none)
	 * or never came up (code -1, http_status the upgrade's answer if
	 * any). why is a sentence. */
	void (*on_closed)(sbx_ws *ws, void *ud, int code, int http_status, const char *why);
	/* Bytes read from the input fd; len 0 at its end (then it is closed). */
	void (*on_input)(sbx_ws *ws, void *ud, const char *data, size_t len);
	void (*on_signal)(sbx_ws *ws, void *ud, int signo);
	void (*on_timer)(sbx_ws *ws, void *ud);
};

/* A parsed ws://, wss://, http:// or https:// URL as libwebsockets wants
 * it. host has no brackets; path includes the query. Pure. */
struct sbx_url {
	char *host;
	int port;
	char *path;
	bool tls;
};
int sbx_url_parse(const char *url, struct sbx_url *ret);
void sbx_url_release(struct sbx_url *u);

int sbx_ws_new(const struct sbx_ws_ops *ops, void *ud, sbx_ws **ret);
sbx_ws *sbx_ws_free(sbx_ws *ws);

/* Watch fd (e.g. STDIN_FILENO) for input; it is closed at its end. */
int sbx_ws_watch_input(sbx_ws *ws, int fd);
/* Deliver the signals of set through on_signal. They are blocked from now on. */
int sbx_ws_watch_signals(sbx_ws *ws, const sigset_t *set);

/* Open a connection to url (http(s) is turned into ws(s)) sending the API
 * key (url NULL: the previous one again); on_open or on_closed follows,
 * from the loop or before this returns. 0, or -errno for a bad url. */
int sbx_ws_connect(sbx_ws *ws, const char *url, const char *api_key);
bool sbx_ws_connected(const sbx_ws *ws);

/* Queue one text message (copied). -ENOTCONN without a connection. */
int sbx_ws_send(sbx_ws *ws, const char *text, size_t len);
/* Hold input back (or let it flow again). */
void sbx_ws_pause_input(sbx_ws *ws, bool pause);
/* Close the connection with code once the queue is sent. */
void sbx_ws_close(sbx_ws *ws, int code);
/* Call on_timer once after ms (replaces a pending timer; <0 cancels). */
void sbx_ws_set_timer(sbx_ws *ws, long ms);

/* Run the loop until sbx_ws_stop(). 0, or -errno if the loop failed. */
int sbx_ws_run(sbx_ws *ws);
void sbx_ws_stop(sbx_ws *ws);
