/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xfer.c - FILE_WRITE and FILE_READ (see xfer.h).
 *
 * Write: FILE_WRITE -> FILE_OPENED{chan, window, zstd}; DATA{offset,
 * raw_len} chunks (offsets contiguous, at most `window` bytes beyond the
 * last ACK{in}) are written in order with IORING_OP_WRITE into a temporary
 * file ".NAME.sbx-XXXXXX" beside PATH; each completed write is acknowledged
 * with ACK{in}. The host's FILE_DONE{size} ends the input (PROTO_F_EOF on
 * the last DATA is informative): the sizes are checked, then fsync
 * (IORING_OP_FSYNC), rename over PATH, FILE_DONE{id, size} on the channel.
 * Any failure is an ERROR on the channel and removes the temporary file.
 * Append mode writes to PATH itself (O_APPEND) and skips the rename.
 *
 * Read: FILE_READ -> FILE_OPENED{chan, size, mode, mtime}; chunks read
 * with IORING_OP_READ, sent as DATA (zstd when allowed and it pays) within
 * the host's credit window (uncompressed bytes), then FILE_DONE{id, size}.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "guest/conn.h"
#include "guest/fs.h"
#include "base/log.h"
#include "guest/loop.h"
#include "guest/xfer.h"

enum xfer_state {
	XFER_WRITING, /* receiving DATA */
	XFER_SYNCING, /* fsync in flight */
	XFER_READING, /* sending DATA */
};

struct xfer_chunk {
	struct xfer_chunk *next;
	size_t len, done;
	uint8_t data[];
};

struct xfer {
	struct list link;      /* all transfers */
	struct list conn_link; /* conn->xfers */
	struct conn *conn;     /* NULL once detached */
	uint32_t chan, id;
	enum xfer_state state;
	bool dead;
	int fd;
	char *path;
	char *tmp; /* temporary file of a write, NULL in append mode */
	struct op op;

	/* write */
	bool append;
	uint64_t recv; /* next DATA offset expected */
	uint64_t written;
	uint64_t expect;    /* declared size or PROTO_ACK_NONE */
	uint64_t host_size; /* FILE_DONE size or PROTO_ACK_NONE */
	bool host_done;	    /* the host's FILE_DONE arrived */
	bool host_eof;	    /* DATA with PROTO_F_EOF arrived (informative) */
	struct xfer_chunk *head, *tail;

	/* read */
	uint64_t start; /* file offset of transfer offset 0 */
	uint64_t size;	/* bytes to send, UINT64_MAX: until EOF */
	bool zstd;
	struct proto_credit credit;
	uint8_t *buf, *zbuf;
};

static struct list xfers = {&xfers, &xfers};

static void xfer_free_chunks(struct xfer *x)
{
	struct xfer_chunk *ch;

	while ((ch = x->head)) {
		x->head = ch->next;
		free(ch);
	}
	x->tail = NULL;
}

void xfer_collect(void)
{
	struct list *pos, *tmp;
	struct xfer *x;

	for (list_each_safe(pos, tmp, &xfers)) {
		x = container_of(pos, struct xfer, link);
		if (!x->dead || x->op.busy)
			continue;
		list_del(&x->link);
		if (x->fd >= 0)
			close(x->fd);
		xfer_free_chunks(x);
		free(x->path);
		free(x->tmp);
		free(x->buf);
		free(x->zbuf);
		free(x);
	}
}

/* Close the file and remove a temporary one. While a read or write is in
 * flight (or only queued: its fd number is resolved at submission) the fd
 * stays open, so a reused number can never receive our bytes; then
 * xfer_collect() closes it. */
static void xfer_close_file(struct xfer *x)
{
	if (x->fd >= 0 && !x->op.busy) {
		close(x->fd);
		x->fd = -EBADF;
	}
	if (x->tmp && unlink(x->tmp) < 0 && errno != ENOENT)
		log_warn("cannot remove temporary file %s: %s, ignoring", x->tmp, strerror(errno));
	free(x->tmp);
	x->tmp = NULL;
}

static void xfer_drop(struct xfer *x)
{
	if (x->dead)
		return;
	xfer_close_file(x);
	x->dead = true;
	if (x->conn) {
		list_del(&x->conn_link);
		x->conn = NULL;
	}
	loop_cancel(&x->op);
}

/* Abort with an ERROR on the transfer's channel: nothing more is sent on
 * it, and what still arrives there is ignored. */
__attribute__((format(printf, 4, 5))) static void xfer_fail(struct xfer *x, uint32_t code, int err,
							    const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("xfer=%u %s failed: %s", x->chan, x->path, msg);
	if (x->conn)
		conn_send_error(x->conn, x->chan, x->id, code, err, "%s", msg);
	xfer_drop(x);
}

static struct xfer *xfer_new(struct conn *c, uint32_t id, const char *path)
{
	struct xfer *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	x->path = strdup(path);
	if (!x->path) {
		free(x);
		return NULL;
	}
	x->fd = -EBADF;
	x->id = id;
	x->op.kind = OP_XFER_IO;
	x->conn = c;
	x->expect = x->host_size = PROTO_ACK_NONE;
	list_add_tail(&xfers, &x->link);
	list_add_tail(&c->xfers, &x->conn_link);
	return x;
}

static struct xfer *xfer_find(struct conn *c, uint32_t chan)
{
	struct list *pos, *tmp;
	struct xfer *x;

	for (list_each_safe(pos, tmp, &c->xfers)) {
		x = container_of(pos, struct xfer, conn_link);
		if (x->chan == chan)
			return x;
	}
	return NULL;
}

static bool xfer_limit_ok(struct conn *c, uint32_t id)
{
	struct list *pos, *tmp;
	unsigned n = 0;

	for (list_each_safe(pos, tmp, &c->xfers))
		n++;
	if (n < AGENT_MAX_XFERS)
		return true;
	conn_send_error(c, 0, id, PROTO_E_LIMIT, EMFILE,
			"too many file transfers on this connection (the limit is %d)",
			AGENT_MAX_XFERS);
	return false;
}

static void xfer_send_opened(struct xfer *x, uint64_t size, uint32_t mode, int64_t mtime)
{
	struct proto_msg m = {.type = PROTO_FILE_OPENED};

	m.channel = x->chan;
	m.u.file_opened.id = x->id;
	m.u.file_opened.chan = x->chan;
	m.u.file_opened.size = size;
	m.u.file_opened.mode = mode;
	m.u.file_opened.mtime = mtime;
	if (x->state == XFER_WRITING) {
		m.u.file_opened.window = AGENT_XFER_WINDOW;
		m.u.file_opened.zstd = true;
	}
	(void)conn_send(x->conn, &m);
}

static void xfer_send_done(struct xfer *x, uint64_t size)
{
	struct proto_msg m = {.type = PROTO_FILE_DONE};

	m.channel = x->chan;
	m.u.file_done.id = x->id;
	m.u.file_done.size = size;
	if (x->conn)
		(void)conn_send(x->conn, &m);
	log_debug("xfer=%u %s done size=%llu", x->chan, x->path, (unsigned long long)size);
	xfer_drop(x);
}

/* ---- write ------------------------------------------------------------- */

/* The parent directory of path exists (or was created). */
static bool xfer_prepare_dir(struct conn *c, const struct proto_file_write *w, char *dir)
{
	char failed[PROTO_MAX_PATH + 1];
	struct stat st;
	int ret;

	if (stat(dir, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return true;
		conn_send_error(c, 0, w->id, PROTO_E_IO, ENOTDIR,
				"cannot open %s for writing: %s is not a directory", w->path, dir);
		return false;
	}
	if (errno != ENOENT || !w->mkdirs) {
		ret = errno;
		conn_send_error(c, 0, w->id, PROTO_E_IO, ret,
				ret == ENOENT
				    ? "cannot open %s for writing: directory %s does not exist "
				      "(set mkdirs to create it)"
				    : "cannot open %s for writing: cannot access directory %s",
				w->path, dir);
		return false;
	}
	ret = fs_mkdir_p(dir, 0755, failed, sizeof(failed));
	if (ret < 0) {
		conn_send_error(c, 0, w->id, PROTO_E_IO, -ret,
				"cannot open %s for writing: cannot create directory %s: %s",
				w->path, failed, strerror(-ret));
		return false;
	}
	return true;
}

void xfer_on_file_write(struct conn *c, const struct proto_msg *m)
{
	const struct proto_file_write *w = &m->u.file_write;
	_cleanup_free_ char *dcopy = NULL, *bcopy = NULL;
	mode_t mode = w->mode ? (mode_t)(w->mode & 07777) : 0644;
	char *dir, *base;
	struct stat st;
	struct xfer *x;

	if (!fs_check_path(c, w->id, w->path) || !xfer_limit_ok(c, w->id))
		return;
	dcopy = strdup(w->path);
	bcopy = strdup(w->path);
	if (!dcopy || !bcopy) {
		conn_send_error(c, 0, w->id, PROTO_E_INTERNAL, ENOMEM, "out of memory");
		return;
	}
	dir = dirname(dcopy);
	base = basename(bcopy);
	if (!strcmp(base, "/") || !strcmp(base, ".") || !strcmp(base, "..") ||
	    (stat(w->path, &st) == 0 && S_ISDIR(st.st_mode))) {
		conn_send_error(c, 0, w->id, PROTO_E_IO, EISDIR,
				"cannot open %s for writing: it is a directory", w->path);
		return;
	}
	if (!xfer_prepare_dir(c, w, dir))
		return;
	x = xfer_new(c, w->id, w->path);
	if (!x) {
		conn_send_error(c, 0, w->id, PROTO_E_INTERNAL, ENOMEM, "out of memory");
		return;
	}
	x->state = XFER_WRITING;
	x->append = w->append;
	x->expect = w->size;
	if (w->append) {
		x->fd = open(w->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode);
	} else if (asprintf(&x->tmp, "%s/.%s.sbx-XXXXXX", strcmp(dir, "/") ? dir : "", base) < 0) {
		x->tmp = NULL;
		errno = ENOMEM;
	} else {
		x->fd = mkostemp(x->tmp, O_CLOEXEC);
		if (x->fd < 0) {
			free(x->tmp);
			x->tmp = NULL;
		} else if (fchmod(x->fd, mode) < 0) {
			log_warn("cannot set mode %o on %s: %s, ignoring", mode, x->tmp,
				 strerror(errno));
		}
	}
	if (x->fd < 0) {
		conn_send_error(c, 0, w->id, PROTO_E_IO, errno, "cannot open %s for writing: %s",
				w->path, strerror(errno));
		xfer_drop(x);
		return;
	}
	x->chan = agent_new_chan();
	log_debug("xfer=%u write %s", x->chan, x->path);
	xfer_send_opened(x, 0, mode, 0);
}

static void xfer_send_ack_in(struct xfer *x)
{
	struct proto_msg m = {.type = PROTO_ACK};

	m.channel = x->chan;
	m.u.ack.out = m.u.ack.err = PROTO_ACK_NONE;
	m.u.ack.in = x->written;
	(void)conn_send(x->conn, &m);
}

static void xfer_write_next(struct xfer *x)
{
	struct xfer_chunk *ch = x->head;
	uint64_t total;

	if (x->dead || x->op.busy || x->state != XFER_WRITING)
		return;
	if (ch) {
		loop_write(&x->op, x->fd, ch->data + ch->done, (unsigned)(ch->len - ch->done),
			   x->append ? (uint64_t)-1 : x->written);
		return;
	}
	if (!x->host_done)
		return;
	total = x->recv;
	if ((x->expect != PROTO_ACK_NONE && x->expect != total) ||
	    (x->host_size != PROTO_ACK_NONE && x->host_size != total)) {
		xfer_fail(
		    x, PROTO_E_BAD_REQUEST, EIO,
		    "received %llu bytes for %s but %llu were announced; the file was not changed",
		    (unsigned long long)total, x->path,
		    (unsigned long long)(x->host_size != PROTO_ACK_NONE ? x->host_size
									: x->expect));
		return;
	}
	x->state = XFER_SYNCING;
	loop_fsync(&x->op, x->fd);
}

static void xfer_write_done(struct xfer *x, int res)
{
	struct xfer_chunk *ch = x->head;

	if (res < 0) {
		xfer_fail(x, PROTO_E_IO, -res, "cannot write %s: %s", x->path, strerror(-res));
		return;
	}
	if (res == 0) {
		xfer_fail(x, PROTO_E_IO, EIO, "cannot write %s: the write made no progress",
			  x->path);
		return;
	}
	ch->done += (size_t)res;
	x->written += (uint64_t)res;
	if (ch->done == ch->len) {
		x->head = ch->next;
		if (!x->head)
			x->tail = NULL;
		free(ch);
	}
	xfer_send_ack_in(x);
	xfer_write_next(x);
}

static void xfer_sync_done(struct xfer *x, int res)
{
	if (res < 0) {
		xfer_fail(x, PROTO_E_IO, -res, "cannot write %s (fsync): %s", x->path,
			  strerror(-res));
		return;
	}
	if (x->tmp) {
		if (rename(x->tmp, x->path) < 0) {
			xfer_fail(x, PROTO_E_IO, errno, "cannot replace %s: %s", x->path,
				  strerror(errno));
			return;
		}
		free(x->tmp);
		x->tmp = NULL;
	}
	xfer_send_done(x, x->written);
}

/* A frame for a channel that is not a transfer of c: channels that existed
 * (ended, aborted, or a command's) are ignored, others are an error. */
static void xfer_unknown_channel(struct conn *c, const struct proto_msg *m, uint32_t id)
{
	if (m->channel && m->channel <= agent.next_chan)
		return;
	conn_send_error(c, m->channel, id, PROTO_E_NO_CHANNEL, ENOENT,
			"there is no file transfer %u on this connection", m->channel);
}

/* A chunk of DATA as it will be written: decompressed when raw_len is set. */
static struct xfer_chunk *xfer_chunk_new(struct xfer *x, const struct proto_data *d, size_t n)
{
	struct xfer_chunk *ch = malloc(sizeof(*ch) + n);
	int ret;

	if (!ch) {
		xfer_fail(x, PROTO_E_INTERNAL, ENOMEM, "out of memory");
		return NULL;
	}
	ch->next = NULL;
	ch->len = n;
	ch->done = 0;
	if (!d->raw_len) {
		memcpy(ch->data, d->data.data, n);
		return ch;
	}
	ret = proto_zstd_decompress(d->data.data, d->data.len, ch->data, n);
	if (ret < 0) {
		free(ch);
		xfer_fail(x, PROTO_E_BAD_REQUEST, -ret,
			  "a zstd chunk for %s at offset %llu is corrupt", x->path,
			  (unsigned long long)d->offset);
		return NULL;
	}
	return ch;
}

void xfer_on_data(struct conn *c, const struct proto_msg *m)
{
	const struct proto_data *d = &m->u.data;
	struct xfer *x = xfer_find(c, m->channel);
	struct xfer_chunk *ch;
	size_t n = d->raw_len ? d->raw_len : d->data.len;

	if (!x) {
		xfer_unknown_channel(c, m, 0);
		return;
	}
	if (x->state != XFER_WRITING || x->host_done || x->host_eof) {
		xfer_fail(x, PROTO_E_BAD_REQUEST, EINVAL,
			  "DATA for %s after the end of the transfer", x->path);
		return;
	}
	if (d->offset != x->recv) {
		xfer_fail(x, PROTO_E_BAD_REQUEST, EINVAL,
			  "DATA offset %llu for %s does not follow %llu",
			  (unsigned long long)d->offset, x->path, (unsigned long long)x->recv);
		return;
	}
	if (x->recv + n - x->written > AGENT_XFER_WINDOW) {
		xfer_fail(x, PROTO_E_BAD_REQUEST, ENOBUFS,
			  "DATA for %s exceeds the window of %d bytes", x->path, AGENT_XFER_WINDOW);
		return;
	}
	if (n) {
		ch = xfer_chunk_new(x, d, n);
		if (!ch)
			return;
		if (x->tail)
			x->tail->next = ch;
		else
			x->head = ch;
		x->tail = ch;
		x->recv += n;
	}
	/* informative: the host's FILE_DONE is what ends the input */
	if (m->flags & PROTO_F_EOF)
		x->host_eof = true;
	xfer_write_next(x);
}

void xfer_on_file_done(struct conn *c, const struct proto_msg *m)
{
	struct xfer *x = xfer_find(c, m->channel);

	if (!x) {
		xfer_unknown_channel(c, m, m->u.file_done.id);
		return;
	}
	if (x->state != XFER_WRITING || x->host_done) {
		xfer_fail(x, PROTO_E_BAD_REQUEST, EINVAL,
			  "FILE_DONE for %s came twice or on a read", x->path);
		return;
	}
	x->host_done = true;
	x->host_size = m->u.file_done.size;
	xfer_write_next(x);
}

bool xfer_on_peer_error(struct conn *c, const struct proto_msg *m)
{
	struct xfer *x = xfer_find(c, m->channel);

	if (!x)
		return false;
	log_info("xfer=%u %s aborted by the peer: %s", x->chan, x->path,
		 m->u.error.msg ? m->u.error.msg : proto_err_to_string(m->u.error.code));
	xfer_drop(x);
	return true;
}

/* ---- read -------------------------------------------------------------- */

static void xfer_read_next(struct xfer *x)
{
	uint64_t n;

	if (x->dead || x->op.busy || x->state != XFER_READING || !x->conn)
		return;
	if (x->size != UINT64_MAX && x->credit.sent >= x->size) {
		xfer_send_done(x, x->credit.sent);
		return;
	}
	n = MIN(proto_credit_avail(&x->credit), (uint64_t)AGENT_XFER_CHUNK);
	n = MIN(n, (uint64_t)conn_max_data(x->conn));
	if (x->size != UINT64_MAX)
		n = MIN(n, x->size - x->credit.sent);
	if (!n || !conn_can_produce(x->conn))
		return;
	loop_read(&x->op, x->fd, x->buf, (unsigned)n, x->start + x->credit.sent);
}

static void xfer_read_done(struct xfer *x, int res)
{
	struct proto_msg m = {.type = PROTO_DATA};
	long clen = 0;

	if (res < 0) {
		xfer_fail(x, PROTO_E_IO, -res, "cannot read %s: %s", x->path, strerror(-res));
		return;
	}
	if (res == 0) {
		/* shorter than announced (the file shrank) or end of a
		 * file of unknown size: FILE_DONE carries the real size */
		xfer_send_done(x, x->credit.sent);
		return;
	}
	m.channel = x->chan;
	m.u.data.offset = x->credit.sent;
	if (x->zstd && res >= 512)
		clen = proto_zstd_compress(x->buf, (size_t)res, x->zbuf, AGENT_XFER_CHUNK);
	if (clen > 0) {
		m.u.data.raw_len = (uint32_t)res;
		m.u.data.data.data = x->zbuf;
		m.u.data.data.len = (size_t)clen;
	} else {
		m.u.data.data.data = x->buf;
		m.u.data.data.len = (size_t)res;
	}
	if (conn_send(x->conn, &m) < 0)
		return;
	(void)proto_credit_consume(&x->credit, (uint64_t)res);
	xfer_read_next(x);
}

void xfer_on_file_read(struct conn *c, const struct proto_msg *m)
{
	const struct proto_file_read *r = &m->u.file_read;
	_cleanup_close_ int fd = -EBADF;
	uint64_t avail, size;
	struct stat st;
	struct xfer *x;

	if (!fs_check_path(c, r->id, r->path) || !xfer_limit_ok(c, r->id))
		return;
	fd = open(r->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		conn_send_error(c, 0, r->id, PROTO_E_IO, errno, "cannot open %s for reading: %s",
				r->path, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		conn_send_error(c, 0, r->id, PROTO_E_IO, S_ISDIR(st.st_mode) ? EISDIR : EINVAL,
				S_ISDIR(st.st_mode) ? "cannot read %s: it is a directory"
						    : "cannot read %s: it is not a regular file",
				r->path);
		return;
	}
	if (st.st_size == 0) {
		/* procfs and sysfs report 0: read until EOF */
		size = r->length ? r->length : UINT64_MAX;
	} else {
		avail = (uint64_t)st.st_size > r->offset ? (uint64_t)st.st_size - r->offset : 0;
		size = r->length ? MIN(r->length, avail) : avail;
	}
	x = xfer_new(c, r->id, r->path);
	if (x) {
		x->buf = malloc(AGENT_XFER_CHUNK);
		x->zbuf = r->zstd ? malloc(AGENT_XFER_CHUNK) : NULL;
	}
	if (!x || !x->buf || (r->zstd && !x->zbuf)) {
		if (x)
			xfer_drop(x);
		conn_send_error(c, 0, r->id, PROTO_E_INTERNAL, ENOMEM, "out of memory");
		return;
	}
	x->state = XFER_READING;
	x->fd = TAKE_FD(fd);
	x->start = r->offset;
	x->size = size;
	x->zstd = r->zstd;
	x->chan = agent_new_chan();
	proto_credit_init(&x->credit, 0, r->window ? r->window : PROTO_DEFAULT_WINDOW);
	log_debug("xfer=%u read %s size=%llu", x->chan, x->path, (unsigned long long)size);
	xfer_send_opened(x, size, (uint32_t)(st.st_mode & 07777), (int64_t)st.st_mtime);
	xfer_read_next(x);
}

bool xfer_on_ack(struct conn *c, const struct proto_msg *m)
{
	struct xfer *x = xfer_find(c, m->channel);

	if (!x)
		return false;
	if (x->state == XFER_READING && m->u.ack.out != PROTO_ACK_NONE) {
		if (proto_credit_ack(&x->credit, m->u.ack.out) < 0) {
			xfer_fail(x, PROTO_E_BAD_REQUEST, EINVAL,
				  "ACK of offset %llu of %s is beyond the %llu bytes sent",
				  (unsigned long long)m->u.ack.out, x->path,
				  (unsigned long long)x->credit.sent);
			return true;
		}
		xfer_read_next(x);
	}
	return true;
}

/* ---- completions and connection events --------------------------------- */

void xfer_on_cqe(struct op *op, int res)
{
	struct xfer *x = container_of(op, struct xfer, op);

	if (x->dead)
		return;
	switch (x->state) {
	case XFER_WRITING:
		xfer_write_done(x, res);
		break;
	case XFER_SYNCING:
		xfer_sync_done(x, res);
		break;
	case XFER_READING:
		xfer_read_done(x, res);
		break;
	}
}

void xfer_abort_conn(struct conn *c)
{
	struct list *pos, *tmp;
	struct xfer *x;

	for (list_each_safe(pos, tmp, &c->xfers)) {
		x = container_of(pos, struct xfer, conn_link);
		if (x->state == XFER_WRITING || x->state == XFER_SYNCING)
			log_info("xfer=%u write of %s aborted: the connection ended", x->chan,
				 x->path);
		xfer_drop(x);
	}
}

void xfer_pump_conn(struct conn *c)
{
	struct list *pos, *tmp;
	struct xfer *x;

	for (list_each_safe(pos, tmp, &c->xfers)) {
		x = container_of(pos, struct xfer, conn_link);
		xfer_read_next(x);
	}
}
