/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_client.c - one connection to an sbx-agent: connecting, the HELLO
 * exchange, the send queue, reading and routing frames, generic requests and
 * the small synchronous requests (ping, info, stat, list, mkdir, remove,
 * shutdown). Commands live in agent_client_cmd.c, transfers in
 * agent_client_file.c.
 *
 * Routing: responses find their request by id in the pending list; OUTPUT,
 * EXIT, DATA and ACK find their command or transfer by channel. Before the
 * agent's HELLO everything else is dropped: on a virtio-serial channel a
 * reconnecting host may first see the tail of an earlier session.
 *
 * Invariants: API calls only queue frames, so no callback ever runs from
 * inside an API call (except the synchronous wrappers, which pump); the
 * connection is closed only from the read/write paths, after which every
 * pending thing has been failed exactly once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "base/clock.h"
#include "base/err.h"
#include "host/agent/agent_client_int.h"
#include "base/cleanup.h"
#include "base/log.h"

#define CLIENT_SOFTWARE "sbx-host 0.1.0"
#define READ_BUDGET (4u * 1024 * 1024) /* bytes per on_readable, for fairness */
#define CONNECT_RETRY_MS 50
#define CHECK_INTERVAL_MS 100
#define HELLO_RESEND_MS 1000
#define HELLO_RESEND_MAX_MS 8000

/* Agent-supplied text ends up on terminals: no control characters. */
void client_sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

void client_set_error(agent_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	client_sanitize(c->err);
	/* synchronous callers read it in this thread's error slot */
	err_set(0, "%s", c->err);
}

static void fmt_seconds(char *buf, size_t len, int ms)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%d s", ms / 1000);
	else
		snprintf(buf, len, "%.1f s", ms / 1000.0);
}

/* ---- pending requests ---------------------------------------------------- */

void pending_free(struct pending *p)
{
	if (!p)
		return;
	free(p->what);
	free(p->path);
	free(p);
}

void pending_unlink(agent_client *c, struct pending *p)
{
	struct pending **pp;

	for (pp = &c->pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			p->next = NULL;
			return;
		}
}

static struct pending *pending_find(agent_client *c, uint32_t id)
{
	struct pending *p;

	for (p = c->pending; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

static uint32_t client_new_id(agent_client *c)
{
	uint32_t id;

	do {
		id = c->next_id++;
		if (c->next_id == 0)
			c->next_id = 1;
	} while (id == 0 || pending_find(c, id));
	return id;
}

static void msg_set_id(struct proto_msg *m, uint32_t id)
{
	switch (m->type) {
	case PROTO_PING:
	case PROTO_INFO:
		m->u.idonly.id = id;
		break;
	case PROTO_STAT:
	case PROTO_LIST:
	case PROTO_MKDIR:
	case PROTO_REMOVE:
		m->u.path.id = id;
		break;
	case PROTO_SHUTDOWN:
		m->u.shutdown.id = id;
		break;
	case PROTO_FIXUP:
		m->u.fixup.id = id;
		break;
	case PROTO_FORGET:
		m->u.forget.id = id;
		break;
	case PROTO_SIGNAL:
		m->u.signal.id = id;
		break;
	case PROTO_RESIZE:
		m->u.resize.id = id;
		break;
	case PROTO_EXEC:
		m->u.exec.id = id;
		break;
	case PROTO_ATTACH:
		m->u.attach.id = id;
		break;
	case PROTO_FILE_WRITE:
		m->u.file_write.id = id;
		break;
	case PROTO_FILE_READ:
		m->u.file_read.id = id;
		break;
	default:
		break;
	}
}

/* The success answer a request type expects (besides PROTO_ERROR). */
static bool response_fits(uint16_t req, uint16_t resp)
{
	switch (req) {
	case PROTO_PING:
		return resp == PROTO_PONG;
	case PROTO_INFO:
		return resp == PROTO_INFO_RESULT;
	case PROTO_STAT:
		return resp == PROTO_STAT_RESULT;
	case PROTO_LIST:
		return resp == PROTO_LIST_RESULT;
	case PROTO_EXEC:
		return resp == PROTO_EXEC_STARTED;
	case PROTO_ATTACH:
		return resp == PROTO_ATTACHED;
	case PROTO_FILE_READ:
	case PROTO_FILE_WRITE:
		return resp == PROTO_FILE_OPENED || resp == PROTO_FILE_DONE;
	default:
		return resp == PROTO_OK;
	}
}

int client_queue(agent_client *c, const struct proto_msg *m)
{
	int r;

	if (c->dead)
		return c->dead;
	r = proto_encode(m, &c->wq);
	if (r < 0)
		client_set_error(c, "cannot encode a %s frame: %s", proto_type_to_string(m->type),
				 strerror(-r));
	return r;
}

int client_send_request(agent_client *c, struct proto_msg *m, pending_fn handle, char *what,
			const char *path, struct pending **ret_p)
{
	_cleanup_free_ char *what_owned = what;
	struct pending *p;
	int r;

	if (c->dead)
		return c->dead;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (path) {
		p->path = strdup(path);
		if (!p->path) {
			free(p);
			return -ENOMEM;
		}
	}
	p->id = client_new_id(c);
	p->type = m->type;
	p->handle = handle;
	msg_set_id(m, p->id);
	r = client_queue(c, m);
	if (r < 0) {
		pending_free(p);
		return r;
	}
	p->what = TAKE_PTR(what_owned);
	p->next = c->pending;
	c->pending = p;
	*ret_p = p;
	return 0;
}

int client_error_from_proto(agent_client *c, const struct pending *p, const struct proto_error *e)
{
	const char *what = p && p->what ? p->what : "request";
	int err;

	if (e->err_no > 0 && e->err_no < 4096)
		err = -e->err_no;
	else if (e->code == PROTO_E_LOST)
		err = -ENODATA;
	else if (e->code == PROTO_E_NO_CHANNEL)
		err = -ESRCH;
	else
		err = -EPROTO;

	if (e->msg && *e->msg) {
		if (p && p->path && strstr(e->msg, p->path))
			client_set_error(c, "agent: %s", e->msg);
		else
			client_set_error(c, "agent: %s: %s", what, e->msg);
	} else if (e->err_no > 0) {
		client_set_error(c, "agent: %s: %s", what, strerror(e->err_no));
	} else {
		client_set_error(c, "agent: %s: %s", what, proto_err_to_string(e->code));
	}
	return err;
}

/* ---- closing --------------------------------------------------------------- */

/* Fail everything with err. The connection is already marked dead, so
 * callbacks that try to queue frames get err back. */
static void client_fail_all(agent_client *c, int err)
{
	struct pending *p;
	agent_cmd *cmd;
	agent_xfer *x;

	while ((p = c->pending)) {
		c->pending = p->next;
		p->next = NULL;
		p->handle(c, p, err, NULL);
		pending_free(p);
	}
	/* callbacks may free other handles: rescan from the head each time */
	for (;;) {
		for (cmd = c->cmds; cmd; cmd = cmd->next)
			if (cmd->state == AGENT_CMD_STARTING || cmd->state == AGENT_CMD_RUNNING)
				break;
		if (!cmd)
			break;
		cmd_fail(cmd, err, c->err);
	}
	for (;;) {
		for (x = c->xfers; x; x = x->next)
			if (x->state != XFER_DONE)
				break;
		if (!x)
			break;
		xfer_finish(x, err, 0);
	}
}

static void client_close(agent_client *c, int err)
{
	if (c->dead)
		return;
	c->dead = err;
	if (!c->err[0])
		client_set_error(c, "agent connection closed: %s", strerror(-err));
	(void)shutdown(c->fd, SHUT_RDWR);
	client_fail_all(c, err);
	if (!c->closed_notified) {
		c->closed_notified = true;
		if (c->ops.on_close)
			c->ops.on_close(c, err, c->ud);
	}
}

int client_protocol_error(agent_client *c, int err, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	client_sanitize(buf);
	log_warn("agent protocol error: %s, closing the connection", buf);
	client_set_error(c, "agent protocol error: %s", buf);
	client_close(c, err);
	return err;
}

/* ---- helpers for the other files ------------------------------------------ */

bool client_sendq_full(const agent_client *c)
{
	return c->wq.len >= AGENT_SENDQ_SOFT;
}

size_t client_chunk_max(const agent_client *c)
{
	size_t m = AGENT_PUT_CHUNK;

	if (c->peer_max_body && c->peer_max_body < m + 1024)
		m = c->peer_max_body > 4096 + 1024 ? c->peer_max_body - 1024 : 4096;
	return m;
}

int client_zbuf(agent_client *c, size_t cap)
{
	uint8_t *b;

	if (c->zbuf_cap >= cap)
		return 0;
	b = realloc(c->zbuf, cap);
	if (!b)
		return -ENOMEM;
	c->zbuf = b;
	c->zbuf_cap = cap;
	return 0;
}

/* ---- construction ---------------------------------------------------------- */

static int client_send_hello(agent_client *c)
{
	static const char *caps[] = {"zstd", NULL};
	struct proto_msg m = {.type = PROTO_HELLO};
	int r;

	m.u.hello.version = PROTO_VERSION;
	m.u.hello.software = CLIENT_SOFTWARE;
	m.u.hello.caps.v = caps;
	m.u.hello.caps.n = 1;
	m.u.hello.max_body = PROTO_MAX_BODY;
	r = client_queue(c, &m);
	if (r == 0)
		c->hello_sent++;
	return r;
}

/*
 * On a virtio-serial channel what the guest sends while no host is connected
 * is lost, and an agent may not answer a HELLO it takes for the first of a
 * session. So while the agent stays silent, say HELLO again (with backoff).
 * The extra answers this draws are told apart from a restart by the PING
 * barrier in client_on_hello().
 */
void agent_client_tick(agent_client *c)
{
	uint64_t now = clock_mono_ms();

	if (c->dead || c->ready || now < c->hello_next_ms)
		return;
	/* a HELLO resets the agent's session: never after a request */
	if (c->hello_sent > 0 && !c->pending && !c->cmds && !c->xfers)
		(void)client_send_hello(c);
	c->hello_backoff_ms = c->hello_backoff_ms ? c->hello_backoff_ms * 2 : HELLO_RESEND_MS;
	if (c->hello_backoff_ms > HELLO_RESEND_MAX_MS)
		c->hello_backoff_ms = HELLO_RESEND_MAX_MS;
	c->hello_next_ms = now + c->hello_backoff_ms;
}

int agent_client_new(int fd, agent_client **ret)
{
	agent_client *c;
	int fl, r;

	if (fd < 0 || !ret) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd = fd;
	c->next_id = 1;
	c->timeout_ms = AGENT_DEFAULT_TIMEOUT_MS;
	c->last_rx_ms = clock_mono_ms();
	proto_reader_init(&c->rd, PROTO_MAX_BODY);
	proto_buf_init(&c->wq);
	r = client_send_hello(c);
	if (r < 0) {
		agent_client_free(c);
		return r;
	}
	c->hello_next_ms = clock_mono_ms() + HELLO_RESEND_MS;
	c->hello_backoff_ms = HELLO_RESEND_MS;
	*ret = c;
	return 0;
}

agent_client *agent_client_free(agent_client *c)
{
	agent_cmd *cmd;
	agent_xfer *x;
	uint32_t i;

	if (!c)
		return NULL;
	c->closed_notified = true; /* the owner is freeing: no on_close */
	if (!c->dead) {
		/* the caller's error (why it frees c) stays in its slot */
		char saved[ERR_MSG_MAX];

		snprintf(saved, sizeof(saved), "%s", err_msg());
		client_set_error(c, "agent connection closed by the host");
		client_close(c, -ECONNRESET);
		err_set(0, "%s", saved);
	}
	/* handles outlive the client; detach them */
	while ((cmd = c->cmds)) {
		c->cmds = cmd->next;
		cmd->next = NULL;
		cmd->linked = false;
		cmd->c = NULL;
	}
	while ((x = c->xfers)) {
		c->xfers = x->next;
		x->next = NULL;
		x->linked = false;
		x->c = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	proto_reader_release(&c->rd);
	proto_buf_release(&c->wq);
	free(c->peer_software);
	for (i = 0; i < c->peer_caps_n; i++)
		free(c->peer_caps[i]);
	free(c->peer_caps);
	free(c->xbuf);
	free(c->zbuf);
	free(c);
	return NULL;
}

void agent_client_set_ops(agent_client *c, const struct agent_client_ops *ops, void *ud)
{
	if (ops)
		c->ops = *ops;
	else
		memset(&c->ops, 0, sizeof(c->ops));
	c->ud = ud;
}

bool agent_client_ready(const agent_client *c)
{
	return c->ready && !c->dead;
}

int agent_client_error(const agent_client *c)
{
	return c->dead;
}

const char *agent_client_last_error(const agent_client *c)
{
	return c->err;
}

const char *agent_client_peer_software(const agent_client *c)
{
	return c->peer_software ? c->peer_software : "";
}

bool agent_client_has_cap(const agent_client *c, const char *cap)
{
	uint32_t i;

	for (i = 0; i < c->peer_caps_n; i++)
		if (strcmp(c->peer_caps[i], cap) == 0)
			return true;
	return false;
}

void agent_client_set_timeout(agent_client *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms;
}

int agent_client_fd(const agent_client *c)
{
	return c->fd;
}

bool agent_client_wants_write(const agent_client *c)
{
	return !c->dead && c->wq.len > 0;
}

/* ---- incoming frames -------------------------------------------------------- */

/*
 * The agent answers every HELLO with a HELLO and sends one unprompted when it
 * starts; repeated HELLOs (agent_client_tick()) draw more answers. All of
 * them are in the stream before the answer to a PING sent after the first
 * HELLO arrived, so once that PONG is in, any HELLO means the agent started
 * afresh (and its commands are gone).
 */
static bool barrier_handle(agent_client *c, struct pending *p, int err, const struct proto_msg *m)
{
	(void)p;
	(void)m;
	if (err == 0)
		c->settled = true;
	return true;
}

static void client_send_barrier(agent_client *c)
{
	struct proto_msg m = {.type = PROTO_PING};
	struct pending *p;

	if (client_send_request(c, &m, barrier_handle, strdup("ping"), NULL, &p) < 0)
		c->settled = true;
}

static int client_on_hello(agent_client *c, const struct proto_msg *m)
{
	const struct proto_hello *h = &m->u.hello;
	uint32_t i, n;

	if (h->version != PROTO_VERSION) {
		client_set_error(
		    c, "the agent speaks protocol version %" PRIu32 ", this host speaks %d",
		    h->version, PROTO_VERSION);
		client_close(c, -EPROTONOSUPPORT);
		return -EPROTONOSUPPORT;
	}
	c->peer_software = strdup(h->software ? h->software : "");
	n = h->caps.n > PROTO_MAX_CAPS ? PROTO_MAX_CAPS : h->caps.n;
	c->peer_caps = calloc(n ? n : 1, sizeof(char *));
	if (!c->peer_software || !c->peer_caps)
		return client_protocol_error(c, -ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		c->peer_caps[i] = strdup(h->caps.v[i] ? h->caps.v[i] : "");
		if (!c->peer_caps[i])
			return client_protocol_error(c, -ENOMEM, "out of memory");
		c->peer_caps_n++;
	}
	client_sanitize(c->peer_software);
	c->peer_max_body = h->max_body ? h->max_body : PROTO_MAX_BODY;
	if (c->peer_max_body > PROTO_MAX_BODY)
		c->peer_max_body = PROTO_MAX_BODY;
	c->ready = true;
	log_debug("agent: hello from \"%s\" max_body=%" PRIu32, c->peer_software, c->peer_max_body);
	client_send_barrier(c);
	if (c->ops.on_ready)
		c->ops.on_ready(c, c->ud);
	return 0;
}

static int client_route_response(agent_client *c, const struct proto_msg *m)
{
	uint32_t id = proto_msg_id(m);
	struct pending *p;
	int err = 0;
	bool finished;

	if (m->type == PROTO_ERROR)
		id = m->u.error.id;
	p = pending_find(c, id);
	if (!p) {
		log_debug("agent: %s id=%" PRIu32 " answers no pending request, ignoring",
			  proto_type_to_string(m->type), id);
		return 0;
	}
	if (m->type == PROTO_ERROR)
		err = client_error_from_proto(c, p, &m->u.error);
	else if (!response_fits(p->type, m->type))
		return client_protocol_error(c, -EPROTO, "%s id=%" PRIu32 " answered with %s",
					     proto_type_to_string(p->type), id,
					     proto_type_to_string(m->type));
	/* unlinked while its handler runs: a cancel from inside cannot free it */
	pending_unlink(c, p);
	finished = p->handle(c, p, err, m);
	if (finished || c->dead) {
		pending_free(p);
	} else {
		p->next = c->pending;
		c->pending = p;
	}
	return 0;
}

static int client_on_channel_error(agent_client *c, const struct proto_msg *m)
{
	const struct proto_error *e = &m->u.error;
	agent_xfer *x;
	agent_cmd *cmd;
	int err;

	if (m->channel) {
		x = xfer_find(c, m->channel);
		if (x) {
			err = client_error_from_proto(c, NULL, e);
			x->agent_failed = true;
			xfer_finish(x, err, 0);
			return 0;
		}
		cmd = cmd_find(c, m->channel);
		if (cmd) {
			/* about a STDIN frame (the only command frame without an
			 * id): the input is broken, the command goes on */
			err = client_error_from_proto(c, NULL, e);
			log_warn("agent: cmd=%" PRIu32 " stdin refused: %s", cmd->id, c->err);
			cmd->stdin_closed = true;
			return 0;
		}
	}
	/* an error about something we sent that had no id: log, go on */
	log_warn("agent reported: %s (%s), ignoring", e->msg ? e->msg : "no message",
		 proto_err_to_string(e->code));
	return 0;
}

static int client_dispatch(agent_client *c, const struct proto_msg *m)
{
	agent_xfer *x;
	agent_cmd *cmd;

	if (!c->ready) {
		if (m->type == PROTO_HELLO)
			return client_on_hello(c, m);
		/* an agent that cannot speak our version says so and closes */
		if (m->type == PROTO_ERROR && m->u.error.err_no == EPROTONOSUPPORT) {
			client_set_error(c, "the agent refused the connection: %s",
					 m->u.error.msg ? m->u.error.msg : "protocol version");
			client_close(c, -EPROTONOSUPPORT);
			return -EPROTONOSUPPORT;
		}
		log_debug("agent: %s before HELLO, ignoring", proto_type_to_string(m->type));
		return 0;
	}

	switch (m->type) {
	case PROTO_HELLO:
		/* before the barrier's PONG a HELLO answers one of ours (or is
		 * the agent's unprompted one): all of them precede the PONG */
		if (!c->settled) {
			log_debug("agent: another HELLO before the barrier, ignoring");
			return 0;
		}
		client_set_error(c, "the agent restarted (it said HELLO again)");
		client_close(c, -ECONNRESET);
		return -ECONNRESET;
	case PROTO_ERROR:
		if (m->u.error.id)
			return client_route_response(c, m);
		return client_on_channel_error(c, m);
	case PROTO_OK:
	case PROTO_PONG:
	case PROTO_EXEC_STARTED:
	case PROTO_ATTACHED:
	case PROTO_FILE_OPENED:
	case PROTO_STAT_RESULT:
	case PROTO_LIST_RESULT:
	case PROTO_INFO_RESULT:
		return client_route_response(c, m);
	case PROTO_OUTPUT:
	case PROTO_EXIT:
		cmd = cmd_find(c, m->channel);
		if (!cmd) {
			log_debug("agent: %s on unknown channel %" PRIu32 ", ignoring",
				  proto_type_to_string(m->type), m->channel);
			return 0;
		}
		return cmd_on_frame(c, cmd, m);
	case PROTO_DATA:
	case PROTO_ACK:
	case PROTO_FILE_DONE:
		x = m->channel ? xfer_find(c, m->channel) : NULL;
		if (x)
			return xfer_on_frame(c, x, m);
		if (m->type == PROTO_FILE_DONE && m->u.file_done.id)
			return client_route_response(c, m);
		cmd = m->type == PROTO_ACK ? cmd_find(c, m->channel) : NULL;
		if (cmd)
			return cmd_on_frame(c, cmd, m);
		log_debug("agent: %s on unknown channel %" PRIu32 ", ignoring",
			  proto_type_to_string(m->type), m->channel);
		return 0;
	default:
		log_debug("agent: unexpected %s frame, ignoring", proto_type_to_string(m->type));
		return 0;
	}
}

/* Frames that are already in the reader. */
static void client_process(agent_client *c)
{
	struct proto_msg m;
	int r;

	while (!c->dead) {
		memset(&m, 0, sizeof(m));
		r = proto_reader_next(&c->rd, &m);
		if (r == 0)
			break;
		if (c->rd.skipped) {
			if (c->ready) {
				if (r > 0)
					proto_msg_release(&m);
				client_protocol_error(c, -EPROTO, "%" PRIu64 " bytes of garbage",
						      c->rd.skipped);
				break;
			}
			log_debug("agent: skipped %" PRIu64 " bytes before HELLO", c->rd.skipped);
		}
		if (r < 0) {
			if (!c->ready)
				continue;
			/* -EPROTO is a frame type we do not know: a newer agent */
			if (r == -EPROTO) {
				log_debug("agent: unknown frame type %u, ignoring", m.type);
				continue;
			}
			client_protocol_error(c, -EPROTO, "malformed %s frame (%s)",
					      proto_type_to_string(m.type), strerror(-r));
			break;
		}
		(void)client_dispatch(c, &m);
		proto_msg_release(&m);
	}
}

/* After a batch of frames or writes: acks, stdin credit, file data. */
static void client_after_batch(agent_client *c)
{
	if (c->dead || !c->ready)
		return;
	cmds_flush_acks(c);
	xfers_flush_acks(c);
	cmds_notify_stdin(c);
	if (!c->dead)
		xfers_produce(c);
}

int agent_client_on_readable(agent_client *c)
{
	size_t budget = READ_BUDGET, room;
	uint8_t *p;
	ssize_t n;

	while (!c->dead && budget > 0) {
		p = proto_reader_space(&c->rd, 64 * 1024, &room);
		if (!p) {
			client_set_error(c, "out of memory reading from the agent");
			client_close(c, -ENOMEM);
			break;
		}
		n = read(c->fd, p, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			client_set_error(c, "cannot read from the agent: %s", strerror(errno));
			client_close(c, -errno == -EPIPE ? -ECONNRESET : -errno);
			break;
		}
		if (n == 0) {
			client_set_error(c, "the agent closed the connection");
			client_close(c, -ECONNRESET);
			break;
		}
		proto_reader_commit(&c->rd, (size_t)n);
		c->last_rx_ms = clock_mono_ms();
		budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
		client_process(c);
	}
	client_after_batch(c);
	return c->dead;
}

static int client_write(agent_client *c)
{
	ssize_t n;

	while (!c->dead && c->wq.len > 0) {
		n = send(c->fd, c->wq.data, c->wq.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = write(c->fd, c->wq.data, c->wq.len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			client_set_error(c, "cannot write to the agent: %s", strerror(errno));
			client_close(c, errno == EPIPE ? -ECONNRESET : -errno);
			return c->dead;
		}
		proto_buf_consume(&c->wq, (size_t)n);
	}
	return c->dead;
}

int agent_client_on_writable(agent_client *c)
{
	size_t before;
	int i;

	/* write, let producers refill, write again while the socket takes it
	 * all; bounded so one busy client cannot starve a shared loop */
	for (i = 0; i < 16 && !c->dead; i++) {
		(void)client_write(c);
		if (c->dead)
			break;
		before = c->wq.len;
		client_after_batch(c);
		if (before > 0 || c->wq.len == before)
			break;
	}
	return c->dead;
}

int agent_client_pump(agent_client *c, int timeout_ms)
{
	struct pollfd pfd;
	int r;

	if (c->dead)
		return c->dead;
	if (!c->ready) {
		agent_client_tick(c);
		if (c->hello_next_ms > clock_mono_ms() && timeout_ms != 0) {
			uint64_t left = c->hello_next_ms - clock_mono_ms();

			if (timeout_ms < 0 || (uint64_t)timeout_ms > left)
				timeout_ms = (int)left + 1;
		}
	}
	if (c->wq.len > 0)
		(void)agent_client_on_writable(c);
	if (c->dead)
		return c->dead;
	pfd.fd = c->fd;
	pfd.events = POLLIN | (c->wq.len > 0 ? POLLOUT : 0);
	pfd.revents = 0;
	r = poll(&pfd, 1, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (pfd.revents & POLLOUT)
		(void)agent_client_on_writable(c);
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
		(void)agent_client_on_readable(c);
	return c->dead;
}

int client_wait(agent_client *c, const bool *done)
{
	uint64_t start = clock_mono_ms(), now, last, deadline;
	int tmo, r;
	char secs[32];

	while (!*done) {
		if (c->dead)
			return c->dead;
		tmo = -1;
		if (c->timeout_ms > 0) {
			now = clock_mono_ms();
			last = c->last_rx_ms > start ? c->last_rx_ms : start;
			deadline = last + (uint64_t)c->timeout_ms;
			if (now >= deadline) {
				fmt_seconds(secs, sizeof(secs), c->timeout_ms);
				client_set_error(c, "agent did not answer within %s", secs);
				return -ETIMEDOUT;
			}
			tmo = (int)(deadline - now);
		}
		r = agent_client_pump(c, tmo);
		if (r < 0 && !*done)
			return r;
	}
	return 0;
}

/* ---- connecting -------------------------------------------------------------- */

int agent_dial(const char *addr)
{
	union {
		struct sockaddr sa;
		struct sockaddr_un un;
		struct sockaddr_vm vm;
	} u;
	_cleanup_close_ int fd = -EBADF;
	socklen_t len;
	const char *path = NULL;
	int family;

	memset(&u, 0, sizeof(u));
	if (!addr)
		return -EINVAL;
	if (strncmp(addr, "unix:", 5) == 0)
		path = addr + 5;
	else if (addr[0] == '/')
		path = addr;
	if (path) {
		if (!*path)
			return -EINVAL;
		if (strlen(path) >= sizeof(u.un.sun_path))
			return -ENAMETOOLONG;
		u.un.sun_family = AF_UNIX;
		strcpy(u.un.sun_path, path);
		len = sizeof(u.un);
		family = AF_UNIX;
	} else if (strncmp(addr, "vsock:", 6) == 0) {
		unsigned long cid, port;
		char *end;

		errno = 0;
		cid = strtoul(addr + 6, &end, 10);
		if (errno || end == addr + 6 || *end != ':' || cid > UINT32_MAX)
			return -EINVAL;
		port = strtoul(end + 1, &end, 10);
		if (errno || *end || port > UINT32_MAX)
			return -EINVAL;
		u.vm.svm_family = AF_VSOCK;
		u.vm.svm_cid = (unsigned)cid;
		u.vm.svm_port = (unsigned)port;
		len = sizeof(u.vm);
		family = AF_VSOCK;
	} else {
		return -EINVAL;
	}
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, &u.sa, len) < 0 && errno != EINPROGRESS)
		return -errno;
	return TAKE_FD(fd);
}

/* connect() failures that mean "not there yet". */
static bool dial_retryable(int err)
{
	switch (err) {
	case -ENOENT:
	case -ECONNREFUSED:
	case -EAGAIN:
	case -ENODEV:
	case -ETIMEDOUT:
	case -ECONNRESET:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -EADDRNOTAVAIL:
		return true;
	default:
		return false;
	}
}

static int connect_timed_out(agent_client *c, int timeout_ms, const char *addr, const char *why)
{
	char secs[32];

	fmt_seconds(secs, sizeof(secs), timeout_ms);
	if (why && *why)
		err_set(0, "agent did not answer within %s (%s: %.1000s)", secs, addr, why);
	else
		err_set(0, "agent did not answer within %s (%s)", secs, addr);
	if (c)
		snprintf(c->err, sizeof(c->err), "%.1000s", err_msg());
	return -ETIMEDOUT;
}

int agent_client_connect_opts(const char *addr, const struct agent_connect_opts *o,
			      agent_client **ret)
{
	int timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : AGENT_DEFAULT_TIMEOUT_MS;
	uint64_t deadline = clock_mono_ms() + (uint64_t)timeout_ms, last_check = 0, now, left;
	char why[sizeof(((agent_client *)0)->err)] = "";
	agent_client *c = NULL;
	int fd, r;

	err_clear();
	if (!ret)
		return -EINVAL;
	for (;;) {
		now = clock_mono_ms();
		if (o && o->check && now - last_check >= CHECK_INTERVAL_MS) {
			last_check = now;
			err_clear();
			r = o->check(o->ud);
			if (r < 0) {
				agent_client_free(c);
				return r;
			}
		}
		if (!c) {
			fd = agent_dial(addr);
			if (fd >= 0) {
				r = agent_client_new(fd, &c);
				if (r < 0)
					return r;
			} else if (fd == -EINVAL || fd == -ENAMETOOLONG) {
				return err_set(
				    fd,
				    "bad agent address '%s' (expected unix:PATH or vsock:CID:PORT)",
				    addr ? addr : "");
			} else if (!dial_retryable(fd)) {
				return err_set(fd, "cannot connect to %s: %s", addr, strerror(-fd));
			} else {
				snprintf(why, sizeof(why), "%s", strerror(-fd));
			}
		}
		now = clock_mono_ms();
		if (now >= deadline) {
			r = connect_timed_out(NULL, timeout_ms, addr, c ? "no HELLO" : why);
			agent_client_free(c);
			return r;
		}
		left = deadline - now;
		if (!c) {
			poll(NULL, 0, left < CONNECT_RETRY_MS ? (int)left : CONNECT_RETRY_MS);
			continue;
		}
		r = agent_client_pump(c, left < CHECK_INTERVAL_MS ? (int)left : CHECK_INTERVAL_MS);
		if (c->ready && !c->dead) {
			*ret = c;
			return 0;
		}
		if (r == -EPROTONOSUPPORT) {
			err_set(r, "%s", c->err);
			agent_client_free(c);
			return r;
		}
		if (r < 0) {
			/* closed before HELLO (an agent restarting): dial again */
			snprintf(why, sizeof(why), "%s", c->err);
			c = agent_client_free(c);
			poll(NULL, 0, left < CONNECT_RETRY_MS ? (int)left : CONNECT_RETRY_MS);
		}
	}
}

int agent_client_connect(const char *addr, int timeout_ms, agent_client **ret)
{
	struct agent_connect_opts o = {.timeout_ms = timeout_ms};

	return agent_client_connect_opts(addr, &o, ret);
}

int agent_client_from_fd(int fd, int timeout_ms, agent_client **ret)
{
	uint64_t deadline;
	agent_client *c;
	int r;

	r = agent_client_new(fd, &c);
	if (r < 0)
		return r;
	if (timeout_ms <= 0)
		timeout_ms = AGENT_DEFAULT_TIMEOUT_MS;
	deadline = clock_mono_ms() + (uint64_t)timeout_ms;
	while (!c->ready) {
		uint64_t now = clock_mono_ms();

		if (now >= deadline) {
			connect_timed_out(c, timeout_ms, "fd", "no HELLO");
			agent_client_free(c);
			return -ETIMEDOUT;
		}
		r = agent_client_pump(c, (int)(deadline - now));
		if (r < 0) {
			err_set(r, "%s", c->err);
			agent_client_free(c);
			return r;
		}
	}
	*ret = c;
	return 0;
}

/* ---- generic requests ---------------------------------------------------------- */

static bool generic_handle(agent_client *c, struct pending *p, int err, const struct proto_msg *m)
{
	if (p->fn)
		p->fn(c, err, m, p->ud);
	else if (err < 0)
		log_debug("agent: %s failed: %s, ignoring", p->what ? p->what : "request", c->err);
	return !(err == 0 && m && m->type == PROTO_LIST_RESULT && m->u.list.more);
}

static char *request_what(const struct proto_msg *m)
{
	const char *verb = proto_type_to_string(m->type);
	const char *path = NULL;
	char *s = NULL;

	switch (m->type) {
	case PROTO_STAT:
		verb = "stat";
		path = m->u.path.path;
		break;
	case PROTO_LIST:
		verb = "list";
		path = m->u.path.path;
		break;
	case PROTO_MKDIR:
		verb = "mkdir";
		path = m->u.path.path;
		break;
	case PROTO_REMOVE:
		verb = "remove";
		path = m->u.path.path;
		break;
	default:
		break;
	}
	if (asprintf(&s, "%s%s%s", verb, path ? " " : "", path ? path : "") < 0)
		return NULL;
	return s;
}

int agent_request(agent_client *c, struct proto_msg *req, agent_reply_fn fn, void *ud,
		  uint32_t *ret_id)
{
	const char *path = NULL;
	struct pending *p;
	int r;

	switch (req->type) {
	case PROTO_STAT:
	case PROTO_LIST:
	case PROTO_MKDIR:
	case PROTO_REMOVE:
		path = req->u.path.path;
		break;
	case PROTO_PING:
	case PROTO_INFO:
	case PROTO_SHUTDOWN:
	case PROTO_FIXUP:
	case PROTO_FORGET:
	case PROTO_SIGNAL:
	case PROTO_RESIZE:
		break;
	default:
		return -EINVAL;
	}
	r = client_send_request(c, req, generic_handle, request_what(req), path, &p);
	if (r < 0)
		return r;
	p->fn = fn;
	p->ud = ud;
	if (ret_id)
		*ret_id = p->id;
	return 0;
}

void agent_request_cancel(agent_client *c, uint32_t id)
{
	struct pending *p = pending_find(c, id);

	if (!p)
		return;
	pending_unlink(c, p);
	pending_free(p);
}
