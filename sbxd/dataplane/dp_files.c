/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_files.c - POST /upload and GET, HEAD /download of {dataplane_url}
 * (langsmith-wire.md §5.3 - §5.6), for files of any size.
 *
 * Upload: the multipart body is parsed as it arrives (dp_multipart.c); the
 * bytes of the file part go into a bounded buffer that the agent's put
 * pulls from (FILE_WRITE with mkdirs; the agent writes a temporary file
 * and renames it at the end, so a failed upload leaves the target as it
 * was). Above UL_HIGH buffered bytes the body stops being read until the
 * agent took them below UL_LOW.
 *
 * Download: FILE_READ with manual acknowledgement; what arrives waits in a
 * buffer of one window until http_reply_stream() hands it to the socket,
 * and only then is it acknowledged, so a slow client slows the agent and
 * sbxd holds at most AGENT_GET_WINDOW bytes per download. HEAD, Range and
 * If-None-Match need the size and validators first: a STAT (following
 * symlinks) comes before them. A plain GET starts reading at once and
 * answers with the first data (or the error).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sbxd/dataplane/dp_int.h"
#include "sbxd/common/metrics.h"
#include "sbxd/dataplane/parse/dp_multipart.h"
#include "base/log.h"

#define UL_BUF (2u << 20)
#define UL_HIGH (1u << 20)
#define UL_LOW (256u << 10)
#define DL_WINDOW AGENT_GET_WINDOW
#define STAT_HOPS 8

/* ---- a byte ring ---- */

struct ring {
	uint8_t *buf;
	size_t cap, head, len;
};

static int ring_put(struct ring *q, const uint8_t *d, size_t n)
{
	size_t tail, first;

	if (q->len + n > q->cap)
		return -ENOBUFS;
	tail = (q->head + q->len) % q->cap;
	first = q->cap - tail < n ? q->cap - tail : n;
	memcpy(q->buf + tail, d, first);
	memcpy(q->buf, d + first, n - first);
	q->len += n;
	return 0;
}

static size_t ring_get(struct ring *q, uint8_t *d, size_t n)
{
	size_t first;

	if (n > q->len)
		n = q->len;
	first = q->cap - q->head < n ? q->cap - q->head : n;
	memcpy(d, q->buf + q->head, first);
	memcpy(d + first, q->buf, n - first);
	q->head = (q->head + n) % q->cap;
	q->len -= n;
	return n;
}

/* ---- upload ---- */

struct ul {
	struct dp_box *box;
	http_req *r;
	agent_xfer *x;
	char path[DP_PATH_MAX + 1];
	struct dp_multipart mp;
	struct ring q;
	bool got_part, part_done, body_done, paused, src_blocked, xfer_done;
	int status; /* a failure to answer once the body is in; 0: none */
	char etype[32];
	char emsg[600];
	uint64_t size;
};

static void ul_free(void *p)
{
	struct ul *u = p;

	if (!u)
		return;
	u->x = agent_xfer_free(u->x); /* unfinished: the target stays untouched */
	if (u->box)
		dp_box_flush(u->box);
	dp_box_unref(u->box);
	free(u->q.buf);
	free(u);
}

static void ul_pause(struct ul *u, bool pause)
{
	if (u->paused != pause) {
		u->paused = pause;
		http_req_pause_body(u->r, pause);
	}
}

static void ul_fail(struct ul *u, int status, const char *type, const char *msg)
{
	if (u->status)
		return;
	u->status = status;
	snprintf(u->etype, sizeof(u->etype), "%s", type);
	snprintf(u->emsg, sizeof(u->emsg), "%s", msg);
	u->x = agent_xfer_free(u->x);
	dp_box_flush(u->box);
	ul_pause(u, false); /* drain the rest of the body */
}

/* Answer once both the body and the transfer are done. */
static void ul_maybe_reply(struct ul *u)
{
	if (!u->body_done || http_req_replied(u->r))
		return;
	if (u->status) {
		http_reply_error(u->r, u->status, u->etype, "%s", u->emsg);
		return;
	}
	if (!u->xfer_done)
		return;
	http_reply_json(
	    u->r, 200, json_pack("{s:s, s:I}", "path", u->path, "size_bytes", (json_int_t)u->size));
}

static ssize_t ul_source(void *ud, uint8_t *buf, size_t cap)
{
	struct ul *u = ud;
	size_t n;

	if (u->q.len == 0) {
		if (u->part_done)
			return 0;
		u->src_blocked = true;
		ul_pause(u, false);
		return -EAGAIN;
	}
	n = ring_get(&u->q, buf, cap);
	sbxd_metrics_add_bytes(SBXD_BYTES_UPLOAD, n);
	if (u->q.len < UL_LOW)
		ul_pause(u, false);
	return (ssize_t)n;
}

static void ul_done(agent_xfer *x, int err, uint64_t size, void *ud)
{
	struct ul *u = ud;
	agent_client *ac = u->box->ac;
	char msg[600];

	(void)x;
	u->xfer_done = true;
	u->size = size;
	if (err < 0) {
		int st = err == -ENOENT ? 404 : 400;

		const char *am = ac ? agent_client_last_error(ac) : "";

		if (!strncmp(am, "agent: ", 7))
			am += 7;
		if (*am)
			snprintf(msg, sizeof(msg), "%s", am);
		else
			snprintf(msg, sizeof(msg), "cannot write %.300s: %s", u->path,
				 strerror(-err));
		if (err == -EACCES || err == -EPERM || err == -EROFS)
			st = 403;
		else if (err == -ENOSPC || err == -EDQUOT)
			st = 507;
		else if (err == -ECONNRESET || err == -EHOSTDOWN)
			st = 502;
		ul_fail(u, st, st == 502 ? "ConnectionError" : "WriteError", msg);
	}
	ul_maybe_reply(u);
}

static bool ul_part_begin(void *ud, const struct dp_multipart_part *p)
{
	struct ul *u = ud;
	struct agent_put_spec spec = {
	    .path = u->path,
	    .mkdirs = true,
	    .size = PROTO_ACK_NONE,
	};
	agent_client *ac;
	int r;

	if (u->got_part || u->status || (strcmp(p->name, "file") && !p->has_filename))
		return false;
	u->got_part = true;
	r = dp_box_client(u->box, &ac);
	if (r < 0) {
		ul_fail(u, 502, "ConnectionError", "the sandbox's agent cannot be reached");
		return false;
	}
	r = agent_put_start(ac, &spec, ul_source, ul_done, u, &u->x);
	if (r < 0) {
		ul_fail(u, 500, "WriteError", "cannot start the upload");
		return false;
	}
	dp_box_flush(u->box);
	return true;
}

static int ul_part_data(void *ud, const uint8_t *data, size_t len)
{
	struct ul *u = ud;

	if (u->status)
		return 0;
	if (ring_put(&u->q, data, len) < 0)
		return -ENOBUFS; /* the pause came too late: cannot happen with lws' chunks */
	return 0;
}

static int ul_part_end(void *ud)
{
	struct ul *u = ud;

	u->part_done = true;
	return 0;
}

static const struct dp_multipart_ops ul_mp_ops = {
    .part_begin = ul_part_begin,
    .part_data = ul_part_data,
    .part_end = ul_part_end,
};

static int ul_sink_data(http_req *r, const void *buf, size_t len, void *ud)
{
	struct ul *u = ud;
	int ret;

	(void)r;
	if (u->status)
		return 0;
	ret = dp_multipart_feed(&u->mp, buf, len);
	if (ret < 0) {
		ul_fail(u, 400, "WriteError",
			ret == -EBADMSG ? "the upload is not a valid multipart/form-data body"
					: "the upload could not be buffered");
		return 0;
	}
	if (u->q.len >= UL_HIGH)
		ul_pause(u, true);
	if (u->x && (u->src_blocked || u->part_done)) {
		u->src_blocked = false;
		agent_xfer_kick(u->x);
		dp_box_kick(u->box);
	}
	return 0;
}

static void ul_sink_done(http_req *r, void *ud)
{
	struct ul *u = ud;

	(void)r;
	u->body_done = true;
	if (!u->status && dp_multipart_finish(&u->mp) < 0)
		ul_fail(u, 400, "WriteError", "the upload's multipart body ends too early");
	else if (!u->status && !u->got_part)
		ul_fail(u, 400, "WriteError", "the upload has no part named 'file'");
	ul_maybe_reply(u);
}

static const struct http_body_sink ul_sink = {
    .data = ul_sink_data,
    .done = ul_sink_done,
};

void dp_upload_begin(struct dp *d, http_req *r, const struct sbxd_dp_box *box)
{
	char ct[512], boundary[DP_MULTIPART_BOUNDARY_MAX + 1];
	struct ul *u;

	u = calloc(1, sizeof(*u));
	if (!u)
		goto oom;
	if (dp_query_path(r, u->path, sizeof(u->path)) < 0) {
		free(u);
		return;
	}
	if (http_req_header(r, "content-type", ct, sizeof(ct)) < 0 ||
	    dp_multipart_boundary(ct, boundary, sizeof(boundary)) < 0) {
		free(u);
		http_reply_error(r, 400, "InvalidRequest",
				 "the upload must be multipart/form-data with a boundary");
		return;
	}
	u->q.cap = UL_BUF;
	u->q.buf = malloc(UL_BUF);
	u->box = dp_box_get(d, box);
	if (!u->q.buf || !u->box || dp_multipart_init(&u->mp, boundary, &ul_mp_ops, u) < 0) {
		dp_box_unref(u->box);
		free(u->q.buf);
		free(u);
		goto oom;
	}
	u->r = r;
	http_req_set_data(r, u, ul_free);
	if (http_req_set_body_sink(r, &ul_sink, u) < 0) {
		http_reply_error(r, 500, "InternalError", "cannot take the upload's body");
		return;
	}
	http_req_defer(r);
	if (http_req_content_length(r) <= 0)
		ul_sink_done(r, u);
	return;
oom:
	http_reply_error(r, 500, "InternalError", "out of memory");
}

/* ---- download ---- */

struct dl {
	struct dp_box *box;
	http_req *r;
	agent_xfer *x;
	char path[DP_PATH_MAX + 1];
	char target[DP_PATH_MAX + 1]; /* being stat'ed: path, or a symlink's target */
	bool head;
	char range[128], if_range[160], if_none_match[512];
	uint32_t stat_id;
	int hops;
	uint64_t size;
	int64_t mtime;
	struct ring q;
	uint64_t next; /* file offset of the ring's first byte */
	bool replied, done;
	int err;
};

static void dl_free(void *p)
{
	struct dl *l = p;

	if (!l)
		return;
	if (l->stat_id && l->box->ac)
		agent_request_cancel(l->box->ac, l->stat_id);
	l->x = agent_xfer_free(l->x);
	dp_box_flush(l->box);
	dp_box_unref(l->box);
	free(l->q.buf);
	free(l);
}

static void dl_headers(struct dl *l)
{
	char etag[64], date[64];

	dp_etag_format(l->size, l->mtime, etag, sizeof(etag));
	dp_http_date(l->mtime, date, sizeof(date));
	http_req_add_header(l->r, "etag", etag);
	http_req_add_header(l->r, "last-modified", date);
	http_req_add_header(l->r, "accept-ranges", "bytes");
}

static ssize_t dl_produce(http_req *r, uint8_t *buf, size_t cap, void *ud)
{
	struct dl *l = ud;
	size_t n;

	(void)r;
	if (l->q.len == 0) {
		if (!l->done)
			return -EAGAIN;
		return l->err ? -EIO : 0;
	}
	n = ring_get(&l->q, buf, cap);
	l->next += n;
	if (l->x && agent_xfer_ack(l->x, l->next) == 0)
		dp_box_flush(l->box);
	return (ssize_t)n;
}

/* Plain GET: the answer waits for FILE_OPENED's size (first data or end). */
static void dl_reply_plain(struct dl *l)
{
	uint64_t size;
	uint32_t mode;

	if (l->replied)
		return;
	l->replied = true;
	agent_xfer_remote(l->x, &size, &mode, &l->mtime);
	l->size = size;
	dl_headers(l);
	http_reply_stream(l->r, 200, "application/octet-stream",
			  size == PROTO_ACK_NONE ? -1 : (int64_t)size, dl_produce, l);
}

static int dl_sink(void *ud, uint64_t offset, const uint8_t *data, size_t len)
{
	struct dl *l = ud;

	(void)offset;
	if (ring_put(&l->q, data, len) < 0)
		return -ENOBUFS; /* beyond our window: the client library refuses first */
	sbxd_metrics_add_bytes(SBXD_BYTES_DOWNLOAD, len);
	dl_reply_plain(l);
	http_req_kick(l->r);
	return 0;
}

static void dl_done(agent_xfer *x, int err, uint64_t size, void *ud)
{
	struct dl *l = ud;

	(void)size;
	l->done = true;
	l->err = err;
	if (err < 0 && !l->replied) {
		l->replied = true;
		dp_reply_agent_error(l->r, err, "ReadError",
				     l->box->ac ? agent_client_last_error(l->box->ac) : NULL,
				     l->path);
		return;
	}
	if (err < 0)
		log_info_f(LOG_FIELDS({"sandbox", l->box->name}),
			   "download of %s failed midway: %s", l->path, strerror(-err));
	if (x && !l->replied)
		dl_reply_plain(l);
	http_req_kick(l->r);
}

static void dl_read(struct dl *l, uint64_t off, uint64_t len)
{
	struct agent_get_spec spec = {
	    .path = l->path,
	    .offset = off,
	    .length = len,
	    .window = DL_WINDOW,
	    .manual_ack = true,
	};
	agent_client *ac;
	int r;

	l->next = off;
	r = dp_box_client(l->box, &ac);
	if (r == 0)
		r = agent_get_start(ac, &spec, dl_sink, dl_done, l, &l->x);
	if (r < 0) {
		l->replied = true;
		dp_reply_agent_error(l->r, r == -ENOENT ? -EHOSTDOWN : r, "ReadError", NULL,
				     l->path);
		return;
	}
	dp_box_flush(l->box);
}

static ssize_t dl_nothing(http_req *r, uint8_t *buf, size_t cap, void *ud)
{
	(void)r;
	(void)buf;
	(void)cap;
	(void)ud;
	return 0;
}

/* Size and validators known: answer HEAD, 304, 416, or start the read. */
static void dl_decide(struct dl *l)
{
	char etag[64], cr[96];
	uint64_t start = 0, len = 0;
	enum dp_range_result rr = DP_RANGE_NONE;

	dp_etag_format(l->size, l->mtime, etag, sizeof(etag));
	if (l->if_none_match[0] && dp_etag_list_matches(l->if_none_match, etag)) {
		l->replied = true;
		http_req_add_header(l->r, "etag", etag);
		http_reply(l->r, 304, NULL, NULL, 0);
		return;
	}
	if (l->head) {
		l->replied = true;
		dl_headers(l);
		http_reply_stream(l->r, 200, "application/octet-stream", (int64_t)l->size,
				  dl_nothing, l);
		return;
	}
	if (l->range[0] && (!l->if_range[0] || !strcmp(l->if_range, etag)))
		rr = dp_range_parse(l->range, l->size, &start, &len);
	l->replied = true;
	switch (rr) {
	case DP_RANGE_UNSATISFIABLE:
		snprintf(cr, sizeof(cr), "bytes */%" PRIu64, l->size);
		http_req_add_header(l->r, "content-range", cr);
		http_reply_error(l->r, 416, "RangeNotSatisfiable",
				 "range '%s' is outside the file (%" PRIu64 " bytes)", l->range,
				 l->size);
		return;
	case DP_RANGE_OK:
		snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start,
			 start + len - 1, l->size);
		http_req_add_header(l->r, "content-range", cr);
		dl_headers(l);
		http_reply_stream(l->r, 206, "application/octet-stream", (int64_t)len, dl_produce,
				  l);
		break;
	case DP_RANGE_NONE:
		len = l->size;
		dl_headers(l);
		http_reply_stream(l->r, 200, "application/octet-stream", (int64_t)len, dl_produce,
				  l);
		break;
	}
	if (len)
		dl_read(l, start, len);
	else
		l->done = true;
}

static void dl_stat(struct dl *l);

static void dl_stat_reply(agent_client *ac, int err, const struct proto_msg *m, void *ud)
{
	struct dl *l = ud;
	const struct proto_stat_result *st;
	char *slash;

	l->stat_id = 0;
	if (err < 0) {
		l->replied = true;
		dp_reply_agent_error(l->r, err, "ReadError", agent_client_last_error(ac), l->path);
		return;
	}
	st = &m->u.stat;
	if (st->type == PROTO_FT_SYMLINK && st->link && l->hops++ < STAT_HOPS) {
		if (st->link[0] == '/') {
			snprintf(l->target, sizeof(l->target), "%s", st->link);
		} else {
			slash = strrchr(l->target, '/');
			if (slash)
				slash[1] = '\0';
			if (strlen(l->target) + strlen(st->link) >= sizeof(l->target)) {
				l->replied = true;
				http_reply_error(l->r, 400, "ReadError", "%s: path too long",
						 l->path);
				return;
			}
			strcat(l->target, st->link);
		}
		dl_stat(l);
		return;
	}
	if (st->type == PROTO_FT_DIR || st->type != PROTO_FT_FILE) {
		l->replied = true;
		http_reply_error(l->r, 400, "ReadError", "'%s' is %s, not a regular file", l->path,
				 st->type == PROTO_FT_DIR ? "a directory" : "special");
		return;
	}
	l->size = st->size;
	l->mtime = st->mtime;
	dl_decide(l);
}

static void dl_stat(struct dl *l)
{
	struct proto_msg m = {.type = PROTO_STAT};
	agent_client *ac;
	int r;

	m.u.path.path = l->target;
	r = dp_box_client(l->box, &ac);
	if (r == 0)
		r = agent_request(ac, &m, dl_stat_reply, l, &l->stat_id);
	if (r < 0) {
		l->replied = true;
		dp_reply_agent_error(l->r, r == -ENOENT ? -EHOSTDOWN : r, "ReadError", NULL,
				     l->path);
		return;
	}
	dp_box_flush(l->box);
}

void dp_download(struct dp *d, http_req *r, const struct sbxd_dp_box *box)
{
	struct dl *l = calloc(1, sizeof(*l));

	if (!l) {
		http_reply_error(r, 500, "InternalError", "out of memory");
		return;
	}
	if (dp_query_path(r, l->path, sizeof(l->path)) < 0) {
		free(l);
		return;
	}
	l->r = r;
	l->head = http_req_method(r) == HTTP_HEAD;
	if (http_req_header(r, "range", l->range, sizeof(l->range)) < 0)
		l->range[0] = '\0';
	if (http_req_header(r, "if-range", l->if_range, sizeof(l->if_range)) < 0)
		l->if_range[0] = '\0';
	if (http_req_header(r, "if-none-match", l->if_none_match, sizeof(l->if_none_match)) < 0)
		l->if_none_match[0] = '\0';
	l->q.cap = DL_WINDOW;
	l->q.buf = malloc(DL_WINDOW);
	l->box = dp_box_get(d, box);
	if (!l->q.buf || !l->box) {
		dp_box_unref(l->box);
		free(l->q.buf);
		free(l);
		http_reply_error(r, 500, "InternalError", "out of memory");
		return;
	}
	http_req_set_data(r, l, dl_free); /* box is not valid after this */
	http_req_defer(r);
	if (l->head || l->range[0] || l->if_none_match[0]) {
		snprintf(l->target, sizeof(l->target), "%s", l->path);
		dl_stat(l);
	} else {
		dl_read(l, 0, 0);
	}
}
