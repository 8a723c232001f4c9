/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_conn.c - per-sandbox state of the data plane and its one agent
 * connection.
 *
 * A VM's virtio-serial agent channel takes one host connection at a time,
 * so every command, transfer and search on a sandbox shares one
 * agent_client. Its fd (a dup of it: lws closes what it adopts) is adopted
 * into libwebsockets' loop as a raw file on a vhost of our own, whose
 * protocol callback drives agent_client_on_readable()/on_writable(); API
 * calls only queue frames, and dp_box_flush() asks lws for POLLOUT.
 *
 * Connection states (dp_conn_state): DOWN -> CONNECTING (dialed, waiting
 * for HELLO; a timer resends HELLO and enforces DP_CONNECT_TIMEOUT_MS) ->
 * UP. A lost connection goes to BACKOFF and redials with growing delays
 * while commands still need it (they re-attach on UP), to DOWN otherwise;
 * each redial first looks the sandbox up again, and one that was deleted
 * (its VM is destroyed, which is what closed the connection) is GONE: its
 * commands fail and the box is freed once unreferenced.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/cleanup.h"
#include "sbxd/dataplane/dp_int.h"
#include "base/log.h"

static const char *const conn_state_names[DP_CONN_STATE_COUNT] = {
    [DP_CONN_DOWN] = "down", [DP_CONN_CONNECTING] = "connecting",
    [DP_CONN_UP] = "up",     [DP_CONN_BACKOFF] = "backoff",
    [DP_CONN_GONE] = "gone",
};

const char *dp_conn_state_to_string(enum dp_conn_state s)
{
	return (unsigned)s < DP_CONN_STATE_COUNT ? conn_state_names[s] : "unknown";
}

static void box_enter_state(struct dp_box *b, enum dp_conn_state s)
{
	if (b->state != s)
		log_debug_f(LOG_FIELDS({"sandbox", b->name}), "agent connection %s -> %s",
			    dp_conn_state_to_string(b->state), dp_conn_state_to_string(s));
	b->state = s;
}

void dp_schedule(struct dp *d, lws_sorted_usec_list_t *sul, sul_cb_t cb, int64_t ms)
{
	if (d->down || !d->ctx)
		return;
	lws_sul_schedule(d->ctx, 0, sul, cb, ms < 0 ? LWS_SET_TIMER_USEC_CANCEL : ms * 1000);
}

static void box_sul_cb(lws_sorted_usec_list_t *sul);

/* ---- the raw protocol of agent fds ---- */

static void box_conn_lost(struct dp_box *b, int err);

void dp_box_flush(struct dp_box *b)
{
	if (b->raw && b->ac && agent_client_wants_write(b->ac))
		lws_callback_on_writable(b->raw);
}

void dp_box_kick(struct dp_box *b)
{
	/* on_writable lets transfer sources produce even with nothing queued */
	if (b->raw && b->ac)
		lws_callback_on_writable(b->raw);
}

static int raw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
			size_t len)
{
	struct dp_box *b = lws_get_opaque_user_data(wsi);
	int r;

	(void)user;
	(void)in;
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
		if (!b || b->raw != wsi || !b->ac)
			return -1;
		if (reason == LWS_CALLBACK_RAW_RX_FILE)
			r = agent_client_on_readable(b->ac);
		else
			r = agent_client_on_writable(b->ac);
		if (r < 0) {
			lws_set_opaque_user_data(wsi, NULL);
			b->raw = NULL;
			box_conn_lost(b, r);
			return -1;
		}
		dp_box_flush(b);
		return 0;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if (b && b->raw == wsi) {
			b->raw = NULL;
			box_conn_lost(b, -ECONNRESET);
		}
		return 0;
	case LWS_CALLBACK_PROTOCOL_DESTROY:
		if (lws_get_vhost(wsi))
			dp_teardown(lws_vhost_user(lws_get_vhost(wsi)));
		return 0;
	default:
		return 0;
	}
}

static const struct lws_protocols raw_protocols[] = {
    {"sbxd-agent", raw_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int dp_init_loop(struct dp *d, http_req *r)
{
	struct lws_context_creation_info info;

	if (d->vh)
		return 0;
	if (d->down)
		return -ESHUTDOWN;
	d->ctx = lws_get_context(http_req_wsi(r));
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = raw_protocols;
	info.vhost_name = "sbxd-dataplane";
	info.user = d;
	d->vh = lws_create_vhost(d->ctx, &info);
	if (!d->vh) {
		log_error("cannot create the data plane's event loop vhost");
		return -ENOMEM;
	}
	return 0;
}

/* ---- boxes ---- */

struct dp_box *dp_box_ref(struct dp_box *b)
{
	b->refs++;
	return b;
}

static void box_free(struct dp_box *b)
{
	struct dp *d = b->dp;

	for (struct dp_box **pp = &d->boxes; *pp; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	while (b->cmds)
		dp_cmd_free(b->cmds);
	if (!d->down)
		lws_sul_cancel(&b->sul);
	if (b->raw) {
		lws_set_opaque_user_data(b->raw, NULL);
		lws_set_timeout(b->raw, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	}
	agent_client_free(b->ac);
	free(b->run_config);
	free(b);
}

static void box_maybe_free(struct dp_box *b)
{
	if (b->refs == 0 && !b->cmds && (b->state == DP_CONN_GONE || b->dp->down))
		box_free(b);
}

void dp_box_unref(struct dp_box *b)
{
	if (!b)
		return;
	if (b->refs > 0)
		b->refs--;
	box_maybe_free(b);
}

struct dp_box *dp_box_get(struct dp *d, const struct sbxd_dp_box *sb)
{
	struct dp_box *b;

	for (b = d->boxes; b; b = b->next)
		if (!strcmp(b->id, sb->id))
			break;
	if (!b) {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		b->dp = d;
		snprintf(b->id, sizeof(b->id), "%s", sb->id);
		b->state = DP_CONN_DOWN;
		b->next = d->boxes;
		d->boxes = b;
	}
	/* a rename, a new run_config, a VM socket that moved: keep up */
	snprintf(b->name, sizeof(b->name), "%s", sb->name);
	if (sb->agent_addr[0])
		snprintf(b->addr, sizeof(b->addr), "%s", sb->agent_addr);
	free(b->run_config);
	b->run_config = sb->run_config ? strdup(sb->run_config) : NULL;
	if (b->state == DP_CONN_GONE)
		box_enter_state(b, DP_CONN_DOWN); /* it is ready again */
	return dp_box_ref(b);
}

/* ---- the connection ---- */

static void on_agent_ready(agent_client *c, void *ud)
{
	struct dp_box *b = ud;

	(void)c;
	box_enter_state(b, DP_CONN_UP);
	b->retries = 0;
	b->lost_since_ms = 0;
	if (!b->dp->down)
		lws_sul_cancel(&b->sul);
	log_debug_f(LOG_FIELDS({"sandbox", b->name}), "agent connected (%s)",
		    agent_client_peer_software(c));
	dp_cmds_conn_up(b);
}

static void on_agent_close(agent_client *c, int err, void *ud)
{
	struct dp_box *b = ud;

	log_debug_f(LOG_FIELDS({"sandbox", b->name}), "agent connection closed: %s (%s)",
		    strerror(-err), agent_client_last_error(c));
}

static const struct agent_client_ops agent_ops = {
    .on_ready = on_agent_ready,
    .on_close = on_agent_close,
};

static int box_dial(struct dp_box *b)
{
	struct dp *d = b->dp;
	lws_adopt_desc_t info;
	int fd, fd2, r;

	if (d->down || !d->vh)
		return -ESHUTDOWN;
	if (!b->addr[0])
		return -EHOSTDOWN;
	fd = agent_dial(b->addr);
	if (fd < 0)
		return fd;
	/* lws closes the fd it adopts; the agent client closes its own */
	fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (fd2 < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	r = agent_client_new(fd, &b->ac);
	if (r < 0) {
		close(fd2);
		return r;
	}
	agent_client_set_ops(b->ac, &agent_ops, b);
	memset(&info, 0, sizeof(info));
	info.vh = d->vh;
	info.type = LWS_ADOPT_RAW_FILE_DESC;
	info.fd.filefd = fd2;
	info.vh_prot_name = "sbxd-agent";
	info.opaque = b;
	b->raw = lws_adopt_descriptor_vhost_via_info(&info);
	if (!b->raw) {
		b->ac = agent_client_free(b->ac);
		return -ENOMEM;
	}
	box_enter_state(b, DP_CONN_CONNECTING);
	b->deadline_ms = clock_mono_ms() + DP_CONNECT_TIMEOUT_MS;
	dp_schedule(d, &b->sul, box_sul_cb, 1000);
	dp_box_flush(b);
	return 0;
}

int dp_box_client(struct dp_box *b, agent_client **ret)
{
	int r;

	switch (b->state) {
	case DP_CONN_GONE:
		return -ENOENT;
	case DP_CONN_UP:
	case DP_CONN_CONNECTING:
		if (!b->ac || agent_client_error(b->ac))
			return -ECONNRESET;
		*ret = b->ac;
		return 0;
	case DP_CONN_DOWN:
	case DP_CONN_BACKOFF:
	case DP_CONN_STATE_COUNT:
		break;
	}
	r = box_dial(b);
	if (r < 0) {
		log_warn_f(LOG_FIELDS({"sandbox", b->name}),
			   "cannot connect to its agent at %s: %s", b->addr, strerror(-r));
		return -EHOSTDOWN;
	}
	*ret = b->ac;
	return 0;
}

/* Close the connection on purpose (not from inside an agent callback). */
static void box_close(struct dp_box *b)
{
	if (b->raw) {
		lws_set_opaque_user_data(b->raw, NULL);
		lws_set_timeout(b->raw, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		b->raw = NULL;
	}
	b->ac = agent_client_free(b->ac);
}

static bool box_needs_conn(const struct dp_box *b)
{
	for (const struct dp_cmd *c = b->cmds; c; c = c->next)
		if (c->state == DP_CMD_RUNNING || (c->state == DP_CMD_EXITED && c->clients))
			return true;
	return false;
}

/* The connection ended (the agent client is dead, or lws dropped the fd).
 * Never dials here: this may run while lws is tearing down. */
static void box_conn_lost(struct dp_box *b, int err)
{
	/* the client's message says why only if it is what closed it */
	bool why = b->ac && agent_client_error(b->ac) && agent_client_last_error(b->ac)[0];

	if (b->state == DP_CONN_GONE)
		return;
	log_info_f(LOG_FIELDS({"sandbox", b->name}), "lost its agent connection: %s%s%s",
		   strerror(-err), why ? ": " : "", why ? agent_client_last_error(b->ac) : "");
	box_close(b); /* fails what was pending on it; commands keep their state */
	if (!b->lost_since_ms)
		b->lost_since_ms = clock_mono_ms();
	box_enter_state(b, DP_CONN_BACKOFF);
	dp_schedule(b->dp, &b->sul, box_sul_cb, 100);
}

/* BACKOFF timer: is the sandbox still there, and does anything need it? */
static void box_recheck(struct dp_box *b)
{
	struct sbxd_principal admin = {.admin = true};
	struct sbxd_dp_box sb = {0};
	int64_t delay;
	int r;

	r = sbxd_dataplane_lookup(b->dp->api, &admin, b->id, &sb);
	if (r == 0 && sb.agent_addr[0])
		snprintf(b->addr, sizeof(b->addr), "%s", sb.agent_addr);
	sbxd_dp_box_release(&sb);
	if (r == -ENOENT) {
		log_info_f(LOG_FIELDS({"sandbox", b->name}), "is gone: its commands end");
		box_enter_state(b, DP_CONN_GONE);
		dp_cmds_fail_all(b, "CommandError", "the sandbox was deleted");
		box_maybe_free(b);
		return;
	}
	if (r < 0) {
		box_enter_state(b, DP_CONN_DOWN);
		dp_cmds_fail_all(b, "CommandError",
				 r == -EHOSTDOWN ? "the sandbox's VM stopped running"
						 : "the sandbox is not ready any more");
		return;
	}
	if (!box_needs_conn(b)) {
		box_enter_state(b, DP_CONN_DOWN);
		return;
	}
	if (clock_mono_ms() - b->lost_since_ms > DP_RECONNECT_GIVE_UP_MS) {
		box_enter_state(b, DP_CONN_DOWN);
		dp_cmds_fail_all(b, "CommandError",
				 "the connection to the sandbox's agent was lost and could not be "
				 "restored");
		return;
	}
	r = box_dial(b);
	if (r == 0)
		return;
	delay = 250LL << (b->retries < 5 ? b->retries : 5);
	b->retries++;
	dp_schedule(b->dp, &b->sul, box_sul_cb,
		    delay > DP_RECONNECT_MAX_MS ? DP_RECONNECT_MAX_MS : delay);
}

static void box_sul_cb(lws_sorted_usec_list_t *sul)
{
	struct dp_box *b = lws_container_of(sul, struct dp_box, sul);

	switch (b->state) {
	case DP_CONN_CONNECTING:
		if (!b->ac)
			return;
		if (clock_mono_ms() > b->deadline_ms) {
			log_warn_f(LOG_FIELDS({"sandbox", b->name}),
				   "its agent did not answer within %d s (is another host process "
				   "connected to it?)",
				   DP_CONNECT_TIMEOUT_MS / 1000);
			box_conn_lost(b, -ETIMEDOUT);
			return;
		}
		agent_client_tick(b->ac);
		dp_box_flush(b);
		dp_schedule(b->dp, &b->sul, box_sul_cb, 1000);
		return;
	case DP_CONN_BACKOFF:
		box_recheck(b);
		return;
	case DP_CONN_DOWN:
	case DP_CONN_UP:
	case DP_CONN_GONE:
	case DP_CONN_STATE_COUNT:
		return;
	}
}

/* ---- stop (sbxd_dataplane_ops.release_box, box_busy) ---- */

static struct dp_box *box_find(struct dp *d, const char *id)
{
	for (struct dp_box *b = d->boxes; b; b = b->next)
		if (!strcmp(b->id, id))
			return b;
	return NULL;
}

void dp_release_box(void *ud, const char *box_id)
{
	struct dp *d = ud;
	struct dp_box *b = d->down ? NULL : box_find(d, box_id);

	if (!b)
		return;
	log_info_f(LOG_FIELDS({"sandbox", b->name}), "is stopping: closing its agent connection");
	lws_sul_cancel(&b->sul);
	box_close(b);
	b->lost_since_ms = 0;
	b->retries = 0;
	box_enter_state(b, DP_CONN_DOWN);
	dp_cmds_fail_all(b, "CommandError", "the sandbox was stopped");
}

/* Busy: a command runs, or a request (a blocking /execute, a transfer) or
 * a WebSocket session holds the box. */
bool dp_box_busy(void *ud, const char *box_id)
{
	struct dp *d = ud;
	struct dp_box *b = box_find(d, box_id);

	if (b && b->refs > 0)
		return true;
	for (const struct dp_cmd *c = b ? b->cmds : NULL; c; c = c->next)
		if (c->state == DP_CMD_STARTING || c->state == DP_CMD_RUNNING)
			return true;
	return false;
}

/* ---- life ---- */

int dp_new(sbxd_api *api, store *st, dp **ret)
{
	struct dp *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->api = api;
	d->st = st;
	*ret = d;
	return 0;
}

/* The lws context is going away (its vhosts are destroyed): nothing may
 * touch lws after this. */
void dp_teardown(struct dp *d)
{
	if (!d || d->down)
		return;
	for (struct dp_box *b = d->boxes; b; b = b->next) {
		lws_sul_cancel(&b->sul);
		for (struct dp_cmd *c = b->cmds; c; c = c->next) {
			lws_sul_cancel(&c->idle_sul);
			lws_sul_cancel(&c->ttl_sul);
		}
		if (b->raw)
			lws_set_opaque_user_data(b->raw, NULL);
		b->raw = NULL;
	}
	d->down = true;
	d->vh = NULL;
	while (d->boxes)
		box_free(d->boxes);
}

dp *dp_free(dp *d)
{
	if (!d)
		return NULL;
	d->down = true; /* the context is gone: free without lws */
	while (d->boxes) {
		d->boxes->raw = NULL;
		box_free(d->boxes);
	}
	free(d);
	return NULL;
}
