/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn.c - one protocol connection: reading and decoding frames, dispatch by
 * type through a method table, the bounded send queue (see conn.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "guest/agent.h"
#include "base/cleanup.h"
#include "guest/conn.h"
#include "guest/exec.h"
#include "guest/fs.h"
#include "base/log.h"
#include "guest/loop.h"
#include "guest/sys.h"
#include "guest/xfer.h"

#define CONN_READ_MIN (64 * 1024)
#define CONN_READS_PER_EVENT 4

typedef void (*conn_handler)(struct conn *c, const struct proto_msg *m);

static unsigned conn_last_id;

static const char *conn_kind_to_string(enum conn_kind k)
{
	switch (k) {
	case CONN_UNIX:
		return "unix";
	case CONN_VSOCK:
		return "vsock";
	case CONN_STDIO:
		return "stdio";
	case CONN_PORT:
		return "virtio-serial";
	}
	return "unknown";
}

int conn_send(struct conn *c, const struct proto_msg *m)
{
	int ret;

	if (c->dead)
		return -EPIPE;
	ret = proto_encode(m, &c->out);
	if (ret == -ENOMEM)
		conn_close(c, "out of memory while queueing a frame");
	else if (ret < 0)
		log_error("conn=%u cannot encode frame type=%s: %s", c->id,
			  proto_type_to_string(m->type), strerror(-ret));
	return ret;
}

void conn_send_error(struct conn *c, uint32_t chan, uint32_t id, uint32_t code, int err,
		     const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int ret;

	if (c->dead)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_debug("conn=%u id=%u error=%s: %s", c->id, id, proto_err_to_string(code), msg);
	ret = proto_encode_error(&c->out, chan, id, code, err, msg);
	if (ret == -ENOMEM)
		conn_close(c, "out of memory while queueing a frame");
}

void conn_send_ok(struct conn *c, uint32_t id)
{
	struct proto_msg m = {.type = PROTO_OK};

	m.u.idonly.id = id;
	(void)conn_send(c, &m);
}

size_t conn_max_data(const struct conn *c)
{
	/* room for the header and the keys around the payload */
	return c->peer_max_body > 4096 ? c->peer_max_body - 1024 : 3072;
}

bool conn_can_produce(struct conn *c)
{
	if (c->dead)
		return false;
	if (c->out.len < AGENT_SENDQ_SOFT)
		return true;
	c->throttled = true;
	return false;
}

static void conn_send_hello(struct conn *c)
{
	const char *caps[10];
	struct proto_msg m = {.type = PROTO_HELLO};
	uint32_t n = 0;

	caps[n++] = "exec";
	caps[n++] = "pty";
	caps[n++] = "files";
	caps[n++] = "zstd";
	caps[n++] = "attach";
	caps[n++] = "fixup";
	caps[n++] = "root"; /* FIXUP understands root and rootfstype */
	if (c->kind == CONN_VSOCK)
		caps[n++] = "vsock";
	caps[n] = NULL;
	m.u.hello.version = PROTO_VERSION;
	m.u.hello.software = "sbx-agent " SBX_AGENT_VERSION;
	m.u.hello.caps.v = caps;
	m.u.hello.caps.n = n;
	m.u.hello.max_body = PROTO_MAX_BODY;
	(void)conn_send(c, &m);
}

static void conn_arm_in(struct conn *c)
{
	if (c->dead || c->in_op.busy)
		return;
	if (c->out.len >= AGENT_SENDQ_HARD) {
		c->in_paused = true;
		return;
	}
	c->in_paused = false;
	loop_poll(&c->in_op, c->rfd, POLLIN);
}

/* ---- handlers of connection-level frames ------------------------------ */

/* Every HELLO is answered with a HELLO (the agent also sends one unprompted
 * when a connection starts). A HELLO after the first one on a connection
 * starts a new session: on virtio-serial the host can reconnect without the
 * agent seeing the disconnect, so what the old session had attached and
 * open ends here. The version spoken is the smaller of the two, and this
 * agent speaks only version 1, the lowest there is. */
static void on_hello(struct conn *c, const struct proto_msg *m)
{
	const struct proto_hello *h = &m->u.hello;

	log_info("conn=%u peer=\"%s\" protocol=%u%s", c->id, h->software ? h->software : "?",
		 h->version, c->hello_seen ? " (new session)" : "");
	if (c->hello_seen) {
		exec_detach_conn(c);
		xfer_abort_conn(c);
	}
	c->hello_seen = true;
	c->peer_max_body =
	    h->max_body && h->max_body < PROTO_MAX_BODY ? h->max_body : PROTO_MAX_BODY;
	conn_send_hello(c);
}

/* An ERROR on a transfer channel aborts that transfer; anything else is
 * only logged (an ERROR is never answered). */
static void on_error(struct conn *c, const struct proto_msg *m)
{
	const struct proto_error *e = &m->u.error;

	if (m->channel && xfer_on_peer_error(c, m))
		return;
	log_info("conn=%u peer reported error id=%u code=%s errno=%d: %s, ignoring", c->id, e->id,
		 proto_err_to_string(e->code), e->err_no, e->msg ? e->msg : "");
}

static void on_ping(struct conn *c, const struct proto_msg *m)
{
	struct proto_msg r = {.type = PROTO_PONG};

	r.u.idonly.id = m->u.idonly.id;
	(void)conn_send(c, &r);
}

static void on_ignore(struct conn *c, const struct proto_msg *m)
{
	(void)c;
	(void)m;
}

static void on_ack(struct conn *c, const struct proto_msg *m)
{
	if (exec_on_ack(c, m))
		return;
	/* ACKs for channels that already ended are normal; ignore them. */
	(void)xfer_on_ack(c, m);
}

static const conn_handler conn_handlers[PROTO_TYPE_COUNT] = {
    [PROTO_HELLO] = on_hello,
    [PROTO_ERROR] = on_error,
    [PROTO_OK] = on_ignore,
    [PROTO_PING] = on_ping,
    [PROTO_PONG] = on_ignore,
    [PROTO_EXEC] = exec_on_exec,
    [PROTO_STDIN] = exec_on_stdin,
    [PROTO_ACK] = on_ack,
    [PROTO_SIGNAL] = exec_on_signal,
    [PROTO_RESIZE] = exec_on_resize,
    [PROTO_ATTACH] = exec_on_attach,
    [PROTO_FORGET] = exec_on_forget,
    [PROTO_FILE_WRITE] = xfer_on_file_write,
    [PROTO_FILE_READ] = xfer_on_file_read,
    [PROTO_DATA] = xfer_on_data,
    [PROTO_FILE_DONE] = xfer_on_file_done,
    [PROTO_STAT] = fs_on_stat,
    [PROTO_LIST] = fs_on_list,
    [PROTO_MKDIR] = fs_on_mkdir,
    [PROTO_REMOVE] = fs_on_remove,
    [PROTO_INFO] = sys_on_info,
    [PROTO_SHUTDOWN] = sys_on_shutdown,
    [PROTO_FIXUP] = sys_on_fixup,
};

static void conn_dispatch(struct conn *c, const struct proto_msg *m)
{
	conn_handler h = NULL;

	log_debug("conn=%u recv type=%s chan=%u id=%u", c->id, proto_type_to_string(m->type),
		  m->channel, proto_msg_id(m));
	if (m->type < PROTO_TYPE_COUNT)
		h = conn_handlers[m->type];
	if (!h) {
		conn_send_error(c, m->channel, proto_msg_id(m), PROTO_E_BAD_REQUEST, EINVAL,
				"frame type %s is sent by the agent, not to it",
				proto_type_to_string(m->type));
		return;
	}
	h(c, m);
}

static bool type_is_known(uint16_t type)
{
	return strcmp(proto_type_to_string(type), "unknown") != 0;
}

/* One ERROR per run of garbage (until the next good frame) or per bad
 * frame, then keep serving. An ERROR frame is never answered. */
static void conn_report_bad(struct conn *c, int ret, const struct proto_msg *m, uint64_t skipped)
{
	if (skipped && (ret >= 0 || m->type == 0)) {
		if (!c->garbage)
			conn_send_error(c, 0, 0, PROTO_E_BAD_FRAME, EBADMSG,
					"skipped %llu bytes that are not sbx protocol frames",
					(unsigned long long)skipped);
		c->garbage = ret != 1;
		return;
	}
	if (ret >= 0)
		return;
	c->garbage = false;
	if (m->type == PROTO_ERROR)
		return;
	if (ret == -EPROTO && !type_is_known(m->type)) {
		conn_send_error(c, m->channel, m->u.idonly.id, PROTO_E_UNKNOWN_TYPE, EPROTO,
				"frame type %u is not known to this agent (sbx-agent %s)", m->type,
				SBX_AGENT_VERSION);
		return;
	}
	conn_send_error(c, m->channel, m->u.idonly.id, PROTO_E_BAD_FRAME, -ret,
			"cannot decode a %s frame: %s", proto_type_to_string(m->type),
			strerror(-ret));
}

static void conn_process(struct conn *c)
{
	struct proto_msg m;
	int ret;

	while (!c->dead) {
		memset(&m, 0, sizeof(m));
		ret = proto_reader_next(&c->rd, &m);
		if (ret != 1 || c->rd.skipped)
			conn_report_bad(c, ret, &m, c->rd.skipped);
		if (ret == 0)
			break;
		if (ret < 0)
			continue;
		c->garbage = false;
		conn_dispatch(c, &m);
		proto_msg_release(&m);
	}
}

static void conn_on_readable(struct conn *c)
{
	uint8_t *space;
	size_t room;
	ssize_t n;
	int i;

	for (i = 0; i < CONN_READS_PER_EVENT && !c->dead; i++) {
		space = proto_reader_space(&c->rd, CONN_READ_MIN, &room);
		if (!space) {
			conn_close(c, "out of memory for the receive buffer");
			return;
		}
		n = read(c->rfd, space, room);
		if (n == 0) {
			conn_close(c, "the peer closed the connection");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			conn_close(c, strerror(errno));
			return;
		}
		proto_reader_commit(&c->rd, (size_t)n);
		conn_process(c);
		if (c->out.len >= AGENT_SENDQ_HARD)
			break;
	}
	conn_arm_in(c);
}

static void conn_flush(struct conn *c)
{
	ssize_t n;

	while (c->out.len && !c->out_op.busy && !c->dead) {
		n = write(c->wfd, c->out.data, c->out.len);
		if (n > 0) {
			proto_buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			loop_poll(&c->out_op, c->wfd, POLLOUT);
			break;
		}
		conn_close(c, n < 0 ? strerror(errno) : "short write");
		return;
	}
	if (c->dead)
		return;
	if (c->in_paused && c->out.len < AGENT_SENDQ_HARD / 2)
		conn_arm_in(c);
}

void conn_on_cqe(struct op *op, int res)
{
	struct conn *c;

	if (op->kind == OP_CONN_IN) {
		c = container_of(op, struct conn, in_op);
		if (c->dead)
			return;
		if (res < 0 && res != -EINTR) {
			conn_close(c, strerror(-res));
			return;
		}
		conn_on_readable(c);
		return;
	}
	c = container_of(op, struct conn, out_op);
	if (c->dead)
		return;
	if (res < 0 && res != -EINTR)
		conn_close(c, strerror(-res));
	/* conn_flush_all() writes before the loop sleeps */
}

static void conn_free(struct conn *c)
{
	list_del(&c->link);
	if (c->own_fds) {
		if (c->rfd >= 0)
			close(c->rfd);
		if (c->wfd >= 0 && c->wfd != c->rfd)
			close(c->wfd);
	}
	proto_reader_release(&c->rd);
	proto_buf_release(&c->out);
	free(c);
}

void conn_flush_all(void)
{
	struct list *pos, *tmp;
	struct conn *c;

	for (list_each_safe(pos, tmp, &agent.conns)) {
		c = container_of(pos, struct conn, link);
		if (c->dead)
			continue;
		if (c->throttled && c->out.len < AGENT_SENDQ_SOFT) {
			c->throttled = false;
			exec_pump_conn(c);
			xfer_pump_conn(c);
		}
		conn_flush(c);
	}
	exec_collect();
	xfer_collect();
	for (list_each_safe(pos, tmp, &agent.conns)) {
		c = container_of(pos, struct conn, link);
		if (c->dead && !c->in_op.busy && !c->out_op.busy)
			conn_free(c);
	}
}

void conn_close(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	c->dead = true;
	log_info("conn=%u kind=%s closed: %s", c->id, conn_kind_to_string(c->kind), why);
	exec_detach_conn(c);
	xfer_abort_conn(c);
	loop_cancel(&c->in_op);
	loop_cancel(&c->out_op);
	if (c->on_close)
		c->on_close(c);
}

/* Used when leaving: blocking is fine, nothing else runs any more. */
static void conn_flush_sync(struct conn *c, uint64_t deadline)
{
	struct pollfd p = {.fd = c->wfd, .events = POLLOUT};
	uint64_t now;
	ssize_t n;

	while (c->out.len) {
		n = write(c->wfd, c->out.data, c->out.len);
		if (n > 0) {
			proto_buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || errno != EAGAIN)
			return;
		now = clock_mono_ms();
		if (now >= deadline)
			return;
		(void)poll(&p, 1, (int)(deadline - now));
	}
}

void conn_close_all(void)
{
	uint64_t deadline = clock_mono_ms() + 1000;
	struct list *pos, *tmp;
	struct conn *c;

	for (list_each_safe(pos, tmp, &agent.conns)) {
		c = container_of(pos, struct conn, link);
		if (c->dead)
			continue;
		conn_flush_sync(c, deadline);
		c->on_close = NULL;
		conn_close(c, "the agent is shutting down");
	}
}

int conn_new(enum conn_kind kind, int rfd, int wfd, bool own_fds, struct conn **ret)
{
	struct conn *c;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->id = ++conn_last_id;
	c->kind = kind;
	c->rfd = rfd;
	c->wfd = wfd;
	c->own_fds = own_fds;
	c->peer_max_body = PROTO_MAX_BODY;
	c->in_op.kind = OP_CONN_IN;
	c->out_op.kind = OP_CONN_OUT;
	proto_reader_init(&c->rd, PROTO_MAX_BODY);
	proto_buf_init(&c->out);
	list_init(&c->xfers);
	list_add_tail(&agent.conns, &c->link);
	log_info("conn=%u kind=%s connected", c->id, conn_kind_to_string(kind));
	conn_send_hello(c);
	conn_arm_in(c);
	if (ret)
		*ret = c;
	return 0;
}
