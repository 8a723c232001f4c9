/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_client_file.c - file transfers over an agent connection.
 *
 * put (FILE_WRITE): after FILE_OPENED the source is pulled in chunks of at
 * most AGENT_PUT_CHUNK bytes while the agent's window has room and the send
 * queue is below AGENT_SENDQ_SOFT; each chunk goes out zstd-compressed when
 * the agent accepts zstd and compression pays. An empty DATA flagged EOF
 * ends the stream; the agent's FILE_DONE (with the total) ends the transfer.
 * When chunks keep not compressing (random data), compression is only
 * retried now and then to save CPU.
 *
 * get (FILE_READ): DATA must arrive at contiguous offsets, inside our window
 * and inside the size FILE_OPENED announced; compressed chunks are
 * decompressed into a scratch buffer before the sink sees them. The ACK of a
 * byte is sent only after the sink took it (or the caller acknowledged it in
 * manual mode), so a slow sink slows the agent.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/io.h"
#include "host/agent/agent_client_int.h"
#include "base/log.h"

#define ZSTD_RETRY_EVERY 16 /* chunks between attempts once it stopped paying */
#define ZSTD_GIVE_UP 4	    /* non-paying chunks in a row before that */

static void xfer_enter(agent_xfer *x)
{
	x->busy++;
}

static bool xfer_leave(agent_xfer *x)
{
	if (--x->busy == 0 && x->released) {
		free(x->path);
		free(x);
		return true;
	}
	return x->released;
}

void xfer_unlink(agent_xfer *x)
{
	agent_xfer **pp;

	if (!x->linked || !x->c)
		return;
	for (pp = &x->c->xfers; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	x->next = NULL;
	x->linked = false;
}

agent_xfer *xfer_find(agent_client *c, uint32_t chan)
{
	agent_xfer *x;

	for (x = c->xfers; x; x = x->next)
		if (x->chan == chan && x->state == XFER_RUNNING)
			return x;
	return NULL;
}

/* Drop the request of x (a request being handled is not in the list, and
 * its handler finishes it). */
static void xfer_drop_pending(agent_xfer *x)
{
	struct pending *p, *next;

	if (!x->c)
		return;
	for (p = x->c->pending; p; p = next) {
		next = p->next;
		if (p->xfer == x) {
			pending_unlink(x->c, p);
			pending_free(p);
		}
	}
}

/*
 * Either side aborts a transfer with an ERROR on its channel carrying the
 * request id; nothing more is sent on the channel after that. A put aborted
 * this way leaves the remote file untouched.
 */
static void xfer_abort(agent_xfer *x, int err)
{
	agent_client *c = x->c;

	if (!c || c->dead || x->state != XFER_RUNNING || (x->put && x->eof_sent))
		return;
	if (proto_encode_error(&c->wq, x->chan, x->req_id, PROTO_E_IO, err < 0 ? -err : ECANCELED,
			       "the host aborted the transfer") == 0)
		x->eof_sent = true;
}

void xfer_finish(agent_xfer *x, int err, uint64_t size)
{
	if (x->state == XFER_DONE)
		return;
	if (err < 0 && !x->agent_failed)
		xfer_abort(x, err);
	x->state = XFER_DONE;
	xfer_drop_pending(x);
	if (!x->done)
		return;
	xfer_enter(x);
	x->done(x, err, size, x->ud);
	(void)xfer_leave(x);
}

static int xfer_queue_ack(agent_xfer *x)
{
	struct proto_msg m = {.type = PROTO_ACK};
	int r;

	if (x->consumed <= x->acked)
		return 0;
	m.channel = x->chan;
	m.u.ack.out = x->consumed;
	m.u.ack.err = m.u.ack.in = PROTO_ACK_NONE;
	r = client_queue(x->c, &m);
	if (r < 0)
		return r;
	x->acked = x->consumed;
	return 0;
}

void xfers_flush_acks(agent_client *c)
{
	agent_xfer *x;

	for (x = c->xfers; x; x = x->next)
		if (!x->put && !x->manual_ack && x->state == XFER_RUNNING)
			(void)xfer_queue_ack(x);
}

/* ---- put -------------------------------------------------------------------- */

static int xfer_send_chunk(agent_client *c, agent_xfer *x, const uint8_t *raw, size_t n)
{
	struct proto_msg m = {.type = PROTO_DATA};
	long z = 0;
	int r;

	m.channel = x->chan;
	m.u.data.offset = x->cr.sent;
	m.u.data.data.data = raw;
	m.u.data.data.len = n;
	if (x->zstd && (x->nopay < ZSTD_GIVE_UP || x->chunks % ZSTD_RETRY_EVERY == 0)) {
		if (client_zbuf(c, 2 * AGENT_PUT_CHUNK + 4096) == 0)
			z = proto_zstd_compress(raw, n, c->zbuf, c->zbuf_cap);
		if (z > 0) {
			m.u.data.raw_len = (uint32_t)n;
			m.u.data.data.data = c->zbuf;
			m.u.data.data.len = (size_t)z;
			x->nopay = 0;
		} else if (z == 0) {
			x->nopay++;
		} else {
			log_debug("agent: zstd failed on a chunk of %s, sending raw", x->path);
			x->zstd = false;
		}
	}
	x->chunks++;
	r = client_queue(c, &m);
	if (r < 0)
		return r;
	(void)proto_credit_consume(&x->cr, n);
	return 0;
}

/* The end of a put: FILE_DONE with the total, which the agent checks. */
static int xfer_send_eof(agent_client *c, agent_xfer *x)
{
	struct proto_msg m = {.type = PROTO_FILE_DONE};
	int r;

	m.channel = x->chan;
	m.u.file_done.id = x->req_id;
	m.u.file_done.size = x->cr.sent;
	r = client_queue(c, &m);
	if (r == 0)
		x->eof_sent = true;
	return r;
}

static bool xfer_producible(const agent_xfer *x)
{
	return x->put && x->state == XFER_RUNNING && !x->eof_sent && !x->src_blocked;
}

/* Produce what credit and the queue allow. Returns true when a callback ran
 * (the list may have changed). */
static bool xfer_produce(agent_client *c, agent_xfer *x)
{
	size_t chunk = client_chunk_max(c), n;
	uint64_t avail;
	ssize_t got;
	int r;

	if (!c->xbuf) {
		c->xbuf = malloc(AGENT_PUT_CHUNK);
		if (!c->xbuf) {
			client_set_error(c, "out of memory");
			xfer_finish(x, -ENOMEM, 0);
			return true;
		}
	}
	if (chunk > AGENT_PUT_CHUNK)
		chunk = AGENT_PUT_CHUNK;
	while (xfer_producible(x) && !client_sendq_full(c) && !c->dead) {
		avail = proto_credit_avail(&x->cr);
		if (avail == 0)
			return false;
		n = avail < chunk ? (size_t)avail : chunk;
		got = x->src(x->io_ud, c->xbuf, n);
		if (got == -EAGAIN) {
			x->src_blocked = true;
			return false;
		}
		if (got < 0 || (size_t)got > n) {
			r = got < 0 ? (int)got : -EINVAL;
			client_set_error(c, "cannot read the data for %s: %s", x->path,
					 strerror(-r));
			xfer_finish(x, r, 0);
			return true;
		}
		r = got == 0 ? xfer_send_eof(c, x) : xfer_send_chunk(c, x, c->xbuf, (size_t)got);
		if (r < 0) {
			xfer_finish(x, r, 0);
			return true;
		}
	}
	return false;
}

void xfers_produce(agent_client *c)
{
	agent_xfer *x;

again:
	for (x = c->xfers; x && !c->dead; x = x->next) {
		if (!xfer_producible(x))
			continue;
		if (client_sendq_full(c))
			return;
		if (xfer_produce(c, x))
			goto again;
	}
}

void agent_xfer_kick(agent_xfer *x)
{
	x->src_blocked = false;
}

/* ---- incoming ------------------------------------------------------------------ */

static int xfer_on_data(agent_client *c, agent_xfer *x, const struct proto_msg *m)
{
	const struct proto_data *d = &m->u.data;
	const uint8_t *data = d->data.data;
	size_t len = d->data.len;
	int r;

	if (x->put)
		return client_protocol_error(
		    c, -EPROTO, "DATA from the agent on write channel %" PRIu32, x->chan);
	if (d->offset != x->rnext)
		return client_protocol_error(
		    c, -EPROTO, "chan=%" PRIu32 " DATA at offset %" PRIu64 ", expected %" PRIu64,
		    x->chan, d->offset, x->rnext);
	if (d->raw_len > PROTO_MAX_CHUNK)
		return client_protocol_error(c, -EPROTO,
					     "chan=%" PRIu32 " zstd chunk of %" PRIu32 " bytes",
					     x->chan, d->raw_len);
	if (d->raw_len)
		len = d->raw_len;
	if (x->rnext + len - x->acked > x->window)
		return client_protocol_error(c, -EPROTO,
					     "chan=%" PRIu32 " DATA beyond the window (%" PRIu64
					     " bytes unacknowledged, window %" PRIu32 ")",
					     x->chan, x->rnext + len - x->acked, x->window);
	if (x->rsize != PROTO_ACK_NONE && x->rnext + len > x->rsize)
		return client_protocol_error(
		    c, -EPROTO, "chan=%" PRIu32 " more DATA than the %" PRIu64 " bytes announced",
		    x->chan, x->rsize);
	if (d->raw_len) {
		r = client_zbuf(c, d->raw_len);
		if (r < 0)
			return client_protocol_error(c, r, "out of memory");
		r = proto_zstd_decompress(d->data.data, d->data.len, c->zbuf, d->raw_len);
		if (r < 0)
			return client_protocol_error(
			    c, -EPROTO, "chan=%" PRIu32 " bad zstd chunk at offset %" PRIu64,
			    x->chan, d->offset);
		data = c->zbuf;
	}
	x->rnext += len;
	if (len && x->sink) {
		xfer_enter(x);
		r = x->sink(x->io_ud, x->base + d->offset, data, len);
		if (xfer_leave(x))
			return 0;
		if (r < 0) {
			client_set_error(c, "cannot store the data of %s: %s", x->path,
					 strerror(-r));
			xfer_finish(x, r, 0);
			return 0;
		}
	}
	if (!x->manual_ack) {
		x->consumed = x->rnext;
		if (x->consumed - x->acked >= x->window / 2)
			(void)xfer_queue_ack(x);
	}
	return 0;
}

static int xfer_on_ack(agent_client *c, agent_xfer *x, const struct proto_msg *m)
{
	if (!x->put || m->u.ack.in == PROTO_ACK_NONE)
		return 0;
	if (proto_credit_ack(&x->cr, m->u.ack.in) < 0)
		return client_protocol_error(c, -EPROTO,
					     "chan=%" PRIu32 " acknowledged %" PRIu64
					     " bytes, only %" PRIu64 " sent",
					     x->chan, m->u.ack.in, x->cr.sent);
	return 0;
}

static int xfer_on_done(agent_client *c, agent_xfer *x, const struct proto_msg *m)
{
	uint64_t size = m->u.file_done.size;
	uint64_t have = x->put ? x->cr.sent : x->rnext;

	if (x->put && !x->eof_sent)
		return client_protocol_error(c, -EPROTO,
					     "chan=%" PRIu32 " FILE_DONE before our EOF", x->chan);
	if (size != have) {
		client_set_error(
		    c, "agent: transfer of %s ended after %" PRIu64 " of %" PRIu64 " bytes",
		    x->path, have, size);
		xfer_finish(x, -EIO, have);
		return 0;
	}
	xfer_finish(x, 0, size);
	return 0;
}

int xfer_on_frame(agent_client *c, agent_xfer *x, const struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_DATA:
		return xfer_on_data(c, x, m);
	case PROTO_ACK:
		return xfer_on_ack(c, x, m);
	case PROTO_FILE_DONE:
		return xfer_on_done(c, x, m);
	default:
		return 0;
	}
}

/* FILE_OPENED / FILE_DONE / ERROR answering the FILE_WRITE or FILE_READ. */
static bool xfer_handle(agent_client *c, struct pending *p, int err, const struct proto_msg *m)
{
	agent_xfer *x = p->xfer;
	const struct proto_file_opened *fo;

	if (!x)
		return true;
	if (err < 0) {
		x->agent_failed = true; /* it sends nothing more: no abort needed */
		xfer_finish(x, err, 0);
		return true;
	}
	if (m->type == PROTO_FILE_DONE) {
		if (x->state != XFER_RUNNING) {
			client_protocol_error(c, -EPROTO, "FILE_DONE before FILE_OPENED");
			return true;
		}
		xfer_on_done(c, x, m);
		return true;
	}
	fo = &m->u.file_opened;
	if (x->state != XFER_OPENING) {
		client_protocol_error(c, -EPROTO, "a second FILE_OPENED for %s", x->path);
		return true;
	}
	if (fo->chan == 0 || xfer_find(c, fo->chan)) {
		client_protocol_error(
		    c, -EPROTO, "FILE_OPENED gave channel %" PRIu32 ", already in use", fo->chan);
		return true;
	}
	x->chan = fo->chan;
	x->rmode = fo->mode;
	x->rmtime = fo->mtime;
	if (x->put) {
		proto_credit_init(&x->cr, 0, fo->window ? fo->window : PROTO_DEFAULT_WINDOW);
		x->zstd = fo->zstd;
	} else {
		x->rsize = fo->size;
	}
	x->state = XFER_RUNNING;
	return false; /* FILE_DONE or an ERROR with this id follows */
}

/* ---- API ------------------------------------------------------------------------ */

static int xfer_new(agent_client *c, bool put, const char *path, agent_done_fn done, void *ud,
		    agent_xfer **ret)
{
	agent_xfer *x;

	if (!c || !path || !ret)
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->path = strdup(path);
	if (!x->path) {
		free(x);
		return -ENOMEM;
	}
	x->put = put;
	x->done = done;
	x->ud = ud;
	x->io_ud = ud;
	x->fd = -1;
	x->rsize = PROTO_ACK_NONE;
	x->state = XFER_OPENING;
	*ret = x;
	return 0;
}

static void xfer_destroy(agent_xfer *x)
{
	free(x->path);
	free(x);
}

static void xfer_link(agent_client *c, agent_xfer *x)
{
	x->c = c;
	x->next = c->xfers;
	c->xfers = x;
	x->linked = true;
}

int agent_put_start(agent_client *c, const struct agent_put_spec *spec, agent_source_fn src,
		    agent_done_fn done, void *ud, agent_xfer **ret)
{
	struct proto_msg m = {.type = PROTO_FILE_WRITE};
	struct pending *p;
	agent_xfer *x;
	char *what = NULL;
	int r;

	if (!spec || !src)
		return -EINVAL;
	r = xfer_new(c, true, spec->path, done, ud, &x);
	if (r < 0)
		return r;
	x->src = src;
	m.u.file_write.path = spec->path;
	m.u.file_write.mode = spec->mode ? spec->mode : 0644;
	m.u.file_write.append = spec->append;
	m.u.file_write.mkdirs = spec->mkdirs;
	m.u.file_write.size = spec->size;
	if (asprintf(&what, "write %s", spec->path) < 0)
		what = NULL;
	r = client_send_request(c, &m, xfer_handle, what, spec->path, &p);
	if (r < 0) {
		xfer_destroy(x);
		return r;
	}
	p->xfer = x;
	x->req_id = p->id;
	xfer_link(c, x);
	*ret = x;
	return 0;
}

int agent_get_start(agent_client *c, const struct agent_get_spec *spec, agent_sink_fn sink,
		    agent_done_fn done, void *ud, agent_xfer **ret)
{
	struct proto_msg m = {.type = PROTO_FILE_READ};
	struct pending *p;
	agent_xfer *x;
	char *what = NULL;
	int r;

	if (!spec)
		return -EINVAL;
	r = xfer_new(c, false, spec->path, done, ud, &x);
	if (r < 0)
		return r;
	x->sink = sink;
	x->window = spec->window ? spec->window : AGENT_GET_WINDOW;
	x->manual_ack = spec->manual_ack;
	/* DATA offsets count from the start of the transfer */
	x->base = spec->offset;
	m.u.file_read.path = spec->path;
	m.u.file_read.offset = spec->offset;
	m.u.file_read.length = spec->length;
	m.u.file_read.window = x->window;
	m.u.file_read.zstd = true;
	if (asprintf(&what, "read %s", spec->path) < 0)
		what = NULL;
	r = client_send_request(c, &m, xfer_handle, what, spec->path, &p);
	if (r < 0) {
		xfer_destroy(x);
		return r;
	}
	p->xfer = x;
	x->req_id = p->id;
	xfer_link(c, x);
	*ret = x;
	return 0;
}

int agent_xfer_ack(agent_xfer *x, uint64_t offset)
{
	if (!x->c)
		return -ENOTCONN;
	if (x->put || offset < x->base || offset - x->base > x->rnext)
		return -EINVAL;
	offset -= x->base;
	if (offset > x->consumed)
		x->consumed = offset;
	if (x->state != XFER_RUNNING)
		return 0;
	return xfer_queue_ack(x);
}

void agent_xfer_remote(const agent_xfer *x, uint64_t *ret_size, uint32_t *ret_mode,
		       int64_t *ret_mtime)
{
	if (ret_size)
		*ret_size = x->rsize;
	if (ret_mode)
		*ret_mode = x->rmode;
	if (ret_mtime)
		*ret_mtime = x->rmtime;
}

uint64_t agent_xfer_bytes(const agent_xfer *x)
{
	return x->put ? x->cr.sent : x->rnext;
}

agent_xfer *agent_xfer_free(agent_xfer *x)
{

	if (!x || x->released)
		return NULL;
	x->released = true;
	xfer_abort(x, -ECANCELED);
	xfer_drop_pending(x);
	xfer_unlink(x);
	if (!x->busy)
		xfer_destroy(x);
	return NULL;
}

/* ---- fd-backed -------------------------------------------------------------------- */

static ssize_t fd_source(void *ud, uint8_t *buf, size_t cap)
{
	agent_xfer *x = ud;
	ssize_t n;

	for (;;) {
		n = read(x->fd, buf, cap);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static int fd_sink(void *ud, uint64_t offset, const uint8_t *data, size_t len)
{
	agent_xfer *x = ud;

	(void)offset;
	/* a non-blocking fd: the caller chose to wait here */
	return io_write_all(x->fd, data, len);
}

int agent_put_fd_start(agent_client *c, const struct agent_put_spec *spec, int fd,
		       agent_done_fn done, void *ud, agent_xfer **ret)
{
	agent_xfer *x;
	int r;

	if (fd < 0)
		return -EBADF;
	r = agent_put_start(c, spec, fd_source, done, ud, &x);
	if (r < 0)
		return r;
	x->fd = fd;
	x->io_ud = x;
	*ret = x;
	return 0;
}

int agent_get_fd_start(agent_client *c, const struct agent_get_spec *spec, int fd,
		       agent_done_fn done, void *ud, agent_xfer **ret)
{
	agent_xfer *x;
	int r;

	if (fd < 0)
		return -EBADF;
	r = agent_get_start(c, spec, fd_sink, done, ud, &x);
	if (r < 0)
		return r;
	x->fd = fd;
	x->io_ud = x;
	*ret = x;
	return 0;
}

/* ---- synchronous ------------------------------------------------------------------- */

struct sync_xfer {
	bool done;
	int err;
	uint64_t size;
};

static void sync_done(agent_xfer *x, int err, uint64_t size, void *ud)
{
	struct sync_xfer *s = ud;

	(void)x;
	s->done = true;
	s->err = err;
	s->size = size;
}

int agent_put_file(agent_client *c, int local_fd, const char *remote_path, uint32_t mode,
		   bool mkdirs)
{
	struct agent_put_spec spec = {
	    .path = remote_path,
	    .mode = mode,
	    .mkdirs = mkdirs,
	    .size = PROTO_ACK_NONE,
	};
	struct sync_xfer s = {0};
	agent_xfer *x;
	struct stat st;
	off_t pos;
	int r;

	if (fstat(local_fd, &st) == 0 && S_ISREG(st.st_mode)) {
		pos = lseek(local_fd, 0, SEEK_CUR);
		if (pos >= 0 && pos <= st.st_size)
			spec.size = (uint64_t)(st.st_size - pos);
	}
	r = agent_put_fd_start(c, &spec, local_fd, sync_done, &s, &x);
	if (r < 0)
		return r;
	r = client_wait(c, &s.done);
	agent_xfer_free(x);
	return r < 0 ? r : s.err;
}

int agent_get_file(agent_client *c, const char *remote_path, int local_fd,
		   struct agent_file_meta *ret_meta)
{
	struct agent_get_spec spec = {.path = remote_path};
	struct sync_xfer s = {0};
	agent_xfer *x;
	int r;

	r = agent_get_fd_start(c, &spec, local_fd, sync_done, &s, &x);
	if (r < 0)
		return r;
	r = client_wait(c, &s.done);
	if (r == 0 && s.err == 0 && ret_meta) {
		ret_meta->size = s.size;
		ret_meta->mode = x->rmode;
		ret_meta->mtime = x->rmtime;
	}
	agent_xfer_free(x);
	return r < 0 ? r : s.err;
}
