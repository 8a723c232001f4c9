/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_proto.c - unit tests of protocol/ (libproto.a).
 *
 * Bodies for the negative tests are written byte by byte with the small
 * msgpack writer below, not with msgpack-c: the tests must not share the
 * library's view of msgpack, and only protocol/ may include <msgpack.h>.
 * The table of keys further down restates docs/protocol.md; if a key changes
 * there, it must change here too.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "base/cleanup.h"
#include "protocol/proto.h"

Suite *proto_suite(void);

/* ---- a tiny msgpack writer ---------------------------------------------- */

struct mp {
	uint8_t *p;
	size_t n, cap;
};

static void mp_raw(struct mp *b, const void *data, size_t n)
{
	if (b->cap - b->n < n) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap - b->n < n)
			cap *= 2;
		b->p = realloc(b->p, cap);
		ck_assert_ptr_nonnull(b->p);
		b->cap = cap;
	}
	memcpy(b->p + b->n, data, n);
	b->n += n;
}

static void mp_byte(struct mp *b, uint8_t c)
{
	mp_raw(b, &c, 1);
}

static void mp_be(struct mp *b, uint64_t v, unsigned n)
{
	while (n--)
		mp_byte(b, (uint8_t)(v >> (8 * n)));
}

static void mp_head(struct mp *b, uint8_t fix, uint8_t fixmax, uint8_t b16, uint8_t b32, uint64_t n)
{
	if (n <= fixmax) {
		mp_byte(b, (uint8_t)(fix | n));
	} else if (n <= 0xffff) {
		mp_byte(b, b16);
		mp_be(b, n, 2);
	} else {
		mp_byte(b, b32);
		mp_be(b, n, 4);
	}
}

static void mp_map(struct mp *b, uint64_t n)
{
	mp_head(b, 0x80, 15, 0xde, 0xdf, n);
}

static void mp_arr(struct mp *b, uint64_t n)
{
	mp_head(b, 0x90, 15, 0xdc, 0xdd, n);
}

static void mp_strn(struct mp *b, const char *s, size_t n)
{
	if (n <= 31) {
		mp_byte(b, (uint8_t)(0xa0 | n));
	} else if (n <= 0xff) {
		mp_byte(b, 0xd9);
		mp_be(b, n, 1);
	} else if (n <= 0xffff) {
		mp_byte(b, 0xda);
		mp_be(b, n, 2);
	} else {
		mp_byte(b, 0xdb);
		mp_be(b, n, 4);
	}
	mp_raw(b, s, n);
}

static void mp_str(struct mp *b, const char *s)
{
	mp_strn(b, s, strlen(s));
}

static void mp_bin(struct mp *b, const void *data, size_t n)
{
	if (n <= 0xff) {
		mp_byte(b, 0xc4);
		mp_be(b, n, 1);
	} else if (n <= 0xffff) {
		mp_byte(b, 0xc5);
		mp_be(b, n, 2);
	} else {
		mp_byte(b, 0xc6);
		mp_be(b, n, 4);
	}
	mp_raw(b, data, n);
}

static void mp_uint(struct mp *b, uint64_t v)
{
	if (v <= 0x7f) {
		mp_byte(b, (uint8_t)v);
	} else if (v <= 0xff) {
		mp_byte(b, 0xcc);
		mp_be(b, v, 1);
	} else if (v <= 0xffff) {
		mp_byte(b, 0xcd);
		mp_be(b, v, 2);
	} else if (v <= 0xffffffff) {
		mp_byte(b, 0xce);
		mp_be(b, v, 4);
	} else {
		mp_byte(b, 0xcf);
		mp_be(b, v, 8);
	}
}

static void mp_int(struct mp *b, int64_t v)
{
	if (v >= 0) {
		mp_uint(b, (uint64_t)v);
	} else if (v >= -32) {
		mp_byte(b, (uint8_t)v);
	} else {
		mp_byte(b, 0xd3);
		mp_be(b, (uint64_t)v, 8);
	}
}

static void mp_bool(struct mp *b, bool v)
{
	mp_byte(b, v ? 0xc3 : 0xc2);
}

static void mp_f64(struct mp *b, double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	mp_byte(b, 0xcb);
	mp_be(b, u, 8);
}

static void mp_free(struct mp *b)
{
	free(b->p);
	*b = (struct mp){0};
}

/* ---- frame helpers ------------------------------------------------------ */

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A frame around body, in a buffer of exactly its size (ASan sees overreads). */
static uint8_t *mk_frame(uint16_t type, uint16_t flags, uint32_t channel, const void *body,
			 uint32_t len, size_t *ret_len)
{
	uint8_t *f = malloc(PROTO_HEADER_SIZE + (size_t)len);

	ck_assert_ptr_nonnull(f);
	memcpy(f, "SBXF", 4);
	put_le(f + 4, len, 4);
	put_le(f + 8, type, 2);
	put_le(f + 10, flags, 2);
	put_le(f + 12, channel, 4);
	if (len)
		memcpy(f + PROTO_HEADER_SIZE, body, len);
	*ret_len = PROTO_HEADER_SIZE + (size_t)len;
	return f;
}

/* Decode body as a frame of type on channel; the body sits in an exact-size
 * copy, freed on return: bin payloads of *m are not valid afterwards. */
static int decode_as(uint16_t type, uint32_t channel, const struct mp *body, struct proto_msg *m)
{
	struct proto_header h = {.len = (uint32_t)body->n, .type = type, .channel = channel};
	_cleanup_free_ uint8_t *copy = malloc(body->n ? body->n : 1);
	int r;

	ck_assert_ptr_nonnull(copy);
	if (body->n)
		memcpy(copy, body->p, body->n);
	r = proto_decode_body(&h, copy, m);
	return r;
}

/* Decode, then release at once: for tests that only want the verdict. */
static int verdict(uint16_t type, uint32_t channel, const struct mp *body)
{
	struct proto_msg m;
	int r = decode_as(type, channel, body, &m);

	proto_msg_release(&m);
	return r;
}

static void encode_ok(const struct proto_msg *m, struct proto_buf *b)
{
	int r = proto_encode(m, b);

	ck_assert_msg(r == 0, "encode %s: %d", proto_type_to_string(m->type), r);
}

static const uint16_t all_types[] = {
    PROTO_HELLO,     PROTO_ERROR,	 PROTO_OK,	    PROTO_PING,	       PROTO_PONG,
    PROTO_EXEC,	     PROTO_EXEC_STARTED, PROTO_OUTPUT,	    PROTO_STDIN,       PROTO_ACK,
    PROTO_EXIT,	     PROTO_SIGNAL,	 PROTO_RESIZE,	    PROTO_ATTACH,      PROTO_ATTACHED,
    PROTO_FORGET,    PROTO_FILE_WRITE,	 PROTO_FILE_READ,   PROTO_FILE_OPENED, PROTO_DATA,
    PROTO_FILE_DONE, PROTO_STAT,	 PROTO_STAT_RESULT, PROTO_LIST,	       PROTO_LIST_RESULT,
    PROTO_MKDIR,     PROTO_REMOVE,	 PROTO_INFO,	    PROTO_INFO_RESULT, PROTO_SHUTDOWN,
    PROTO_FIXUP,
};
#define NTYPES ((int)ARRAY_SIZE(all_types))

/* Frames that live on a channel: channel 0 is not allowed for them. */
static bool on_channel(uint16_t t)
{
	return t == PROTO_OUTPUT || t == PROTO_STDIN || t == PROTO_ACK || t == PROTO_EXIT ||
	       t == PROTO_DATA || t == PROTO_FILE_DONE;
}

/* ---- sample messages ---------------------------------------------------- */

static const char *argv_full[] = {"/bin/echo", "hello", "", "w\xc3\xb6rld", NULL};
static const char *env_full[] = {"A=1", "PATH=/usr/bin:/bin", "EMPTY=", NULL};
static const char *caps_full[] = {"exec", "pty", "zstd", "fixup", NULL};
static const uint8_t blob[] = {0, 1, 2, 0xff, 'S', 'B', 'X', 'F', 0};
static struct proto_entry entries_full[] = {
    {.name = "a.txt", .type = PROTO_FT_FILE, .size = 12, .mode = 0644, .mtime = 1700000000},
    {.name = "dir", .type = PROTO_FT_DIR, .size = 4096, .mode = 01777, .mtime = -5},
    {.name = "link", .type = PROTO_FT_SYMLINK},
    {.name = ".hidden \xff", .type = 200, .size = UINT64_MAX, .mode = 07777, .mtime = INT64_MIN},
};

#define BLOB ((struct proto_bytes){blob, sizeof(blob)})
#define STRV(a) ((struct proto_strv){(a), ARRAY_SIZE(a) - 1})

/* Every field of type set to a value that is not its default. */
static void fill_full(uint16_t type, struct proto_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->flags = PROTO_F_EOF | 0x8000;
	m->channel = 0xfedcba98;
	switch (type) {
	case PROTO_HELLO:
		m->u.hello =
		    (struct proto_hello){PROTO_VERSION, "sbx-agent 0.1.0", STRV(caps_full), 65536};
		break;
	case PROTO_ERROR:
		m->u.error = (struct proto_error){9, PROTO_E_IO, 2, "open /x: No such file"};
		break;
	case PROTO_OK:
	case PROTO_PING:
	case PROTO_PONG:
	case PROTO_INFO:
		m->u.idonly.id = 0xffffffff;
		break;
	case PROTO_EXEC:
		m->u.exec = (struct proto_exec){
		    .id = 1,
		    .argv = STRV(argv_full),
		    .env = STRV(env_full),
		    .cwd = "/home/user",
		    .uid = 1000,
		    .gid = 0,
		    .pty = true,
		    .rows = 50,
		    .cols = 65535,
		    .stdin_open = true,
		    .timeout_ms = UINT32_MAX,
		    .window = 123456,
		    .ring = 1 << 20,
		    .keep_ms = 60000,
		};
		break;
	case PROTO_EXEC_STARTED:
		m->u.exec_started = (struct proto_exec_started){2, 3, 4321, 65536};
		break;
	case PROTO_OUTPUT:
		m->u.output = (struct proto_output){PROTO_STDERR, 1ULL << 40, BLOB};
		break;
	case PROTO_STDIN:
		m->u.stdin_data = (struct proto_stdin){UINT64_MAX - sizeof(blob), BLOB};
		break;
	case PROTO_ACK:
		m->u.ack = (struct proto_ack){0, 1ULL << 33, UINT64_MAX - 1};
		break;
	case PROTO_EXIT:
		m->u.exit = (struct proto_exit){-1, 9, true, true, 100, 200, 3000};
		break;
	case PROTO_SIGNAL:
		m->u.signal = (struct proto_signal){5, 6, 15, false};
		break;
	case PROTO_RESIZE:
		m->u.resize = (struct proto_resize){7, 8, 40, 132};
		break;
	case PROTO_ATTACH:
		m->u.attach = (struct proto_attach){9, 10, 11, 12, 13};
		break;
	case PROTO_ATTACHED:
		m->u.attached = (struct proto_attached){14, 15, true, 16, 17, 1ULL << 36, 4096};
		break;
	case PROTO_FORGET:
		m->u.forget = (struct proto_forget){18, 19};
		break;
	case PROTO_FILE_WRITE:
		m->u.file_write =
		    (struct proto_file_write){20, "/tmp/out file", 0600, true, true, 0};
		break;
	case PROTO_FILE_READ:
		m->u.file_read = (struct proto_file_read){21, "/etc/hostname", 5, 10, 4096, true};
		break;
	case PROTO_FILE_OPENED:
		m->u.file_opened = (struct proto_file_opened){22, 23, 24, 0755, -1, 25, true};
		break;
	case PROTO_DATA:
		m->u.data = (struct proto_data){1ULL << 50, 1000, BLOB};
		break;
	case PROTO_FILE_DONE:
		m->u.file_done = (struct proto_file_done){26, 1ULL << 35};
		break;
	case PROTO_STAT:
	case PROTO_LIST:
	case PROTO_MKDIR:
	case PROTO_REMOVE:
		m->u.path = (struct proto_path_req){27, "/var/lib/x", 0700, true};
		break;
	case PROTO_STAT_RESULT:
		m->u.stat = (struct proto_stat_result){
		    28, PROTO_FT_SYMLINK, 29, 0777, 4294967294u, 1, -1234567890123LL, "../target"};
		break;
	case PROTO_LIST_RESULT:
		m->u.list =
		    (struct proto_list_result){30, entries_full, ARRAY_SIZE(entries_full), true};
		break;
	case PROTO_INFO_RESULT:
		m->u.info = (struct proto_info_result){
		    .id = 31,
		    .version = "sbx-agent 0.1.0",
		    .hostname = "sandbox-1",
		    .kernel = "6.1.0-18-amd64 #1 SMP",
		    .uptime_ms = 123456789,
		    .load = {0.5, 1.0 / 3.0, 12},
		    .mem_total = 256ULL << 20,
		    .mem_available = 200ULL << 20,
		    .ncpus = 2,
		    .commands = 3,
		};
		break;
	case PROTO_SHUTDOWN:
		m->u.shutdown = (struct proto_shutdown){32, true};
		break;
	case PROTO_FIXUP:
		m->u.fixup = (struct proto_fixup){33, -1, BLOB, "fork-2", "/dev/vdb", "xfs"};
		break;
	}
}

/* Only the required fields (channel types on channel 5). */
static void fill_min(uint16_t type, struct proto_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->channel = on_channel(type) ? 5 : 0;
	switch (type) {
	case PROTO_HELLO:
		m->u.hello.version = 1;
		break;
	case PROTO_ERROR:
		m->u.error.code = PROTO_E_INTERNAL;
		break;
	case PROTO_EXEC:
		m->u.exec.shell = "";
		m->u.exec.uid = m->u.exec.gid = -1;
		break;
	case PROTO_EXEC_STARTED:
		m->u.exec_started.cmd = 1;
		break;
	case PROTO_OUTPUT:
		m->u.output.stream = PROTO_STDOUT;
		break;
	case PROTO_ACK:
		m->u.ack = (struct proto_ack){PROTO_ACK_NONE, PROTO_ACK_NONE, PROTO_ACK_NONE};
		break;
	case PROTO_SIGNAL:
		m->u.signal = (struct proto_signal){.cmd = 1, .signal = 9, .group = true};
		break;
	case PROTO_RESIZE:
		m->u.resize = (struct proto_resize){.cmd = 1, .rows = 1, .cols = 1};
		break;
	case PROTO_ATTACH:
	case PROTO_ATTACHED:
	case PROTO_FORGET:
		m->u.forget.cmd = 1; /* cmd sits at the same offset in all three */
		break;
	case PROTO_FILE_WRITE:
		m->u.file_write.path = "/";
		m->u.file_write.size = PROTO_ACK_NONE;
		break;
	case PROTO_FILE_READ:
		m->u.file_read.path = "/";
		break;
	case PROTO_FILE_OPENED:
		m->u.file_opened.chan = 1;
		break;
	case PROTO_STAT:
	case PROTO_LIST:
	case PROTO_MKDIR:
	case PROTO_REMOVE:
		m->u.path.path = "/";
		break;
	}
}

/* What decoding a frame of only the required fields gives. */
static void fill_min_decoded(uint16_t type, struct proto_msg *m)
{
	fill_min(type, m);
	if (type == PROTO_HELLO)
		m->u.hello.max_body = PROTO_MAX_BODY;
}

static void assert_str_same(const char *what, const char *a, const char *b)
{
	if (!a || !b)
		ck_assert_msg(a == b, "%s: %s vs %s", what, a ? a : "NULL", b ? b : "NULL");
	else
		ck_assert_msg(!strcmp(a, b), "%s: '%s' vs '%s'", what, a, b);
}

static void assert_strv_same(const char *what, const struct proto_strv *a,
			     const struct proto_strv *b)
{
	ck_assert_msg(a->n == b->n, "%s: %u vs %u strings", what, a->n, b->n);
	for (uint32_t i = 0; i < a->n; i++)
		assert_str_same(what, a->v[i], b->v[i]);
	if (b->n)
		ck_assert_ptr_null(b->v[b->n]);
}

static void assert_bytes_same(const char *what, const struct proto_bytes *a,
			      const struct proto_bytes *b)
{
	ck_assert_msg(a->len == b->len, "%s: %zu vs %zu bytes", what, a->len, b->len);
	if (a->len)
		ck_assert_msg(!memcmp(a->data, b->data, a->len), "%s differs", what);
}

#define SAME(f) ck_assert_msg(a->u.f == b->u.f, "%s: %s differs", name, #f)
#define SAME_STR(f) assert_str_same(#f, a->u.f, b->u.f)
#define SAME_STRV(f) assert_strv_same(#f, &a->u.f, &b->u.f)
#define SAME_BYTES(f) assert_bytes_same(#f, &a->u.f, &b->u.f)

/* Every field of the union member of a->type. */
static void assert_msg_same(const struct proto_msg *a, const struct proto_msg *b)
{
	const char *name = proto_type_to_string(a->type);

	ck_assert_uint_eq(a->type, b->type);
	ck_assert_uint_eq(a->flags, b->flags);
	ck_assert_uint_eq(a->channel, b->channel);
	switch (a->type) {
	case PROTO_HELLO:
		SAME(hello.version);
		SAME_STR(hello.software);
		SAME_STRV(hello.caps);
		SAME(hello.max_body);
		break;
	case PROTO_ERROR:
		SAME(error.id);
		SAME(error.code);
		SAME(error.err_no);
		SAME_STR(error.msg);
		break;
	case PROTO_OK:
	case PROTO_PING:
	case PROTO_PONG:
	case PROTO_INFO:
		SAME(idonly.id);
		break;
	case PROTO_EXEC:
		SAME(exec.id);
		SAME_STRV(exec.argv);
		SAME_STR(exec.shell);
		SAME_STRV(exec.env);
		SAME_STR(exec.cwd);
		SAME(exec.uid);
		SAME(exec.gid);
		SAME(exec.pty);
		SAME(exec.rows);
		SAME(exec.cols);
		SAME(exec.stdin_open);
		SAME(exec.timeout_ms);
		SAME(exec.window);
		SAME(exec.ring);
		SAME(exec.keep_ms);
		break;
	case PROTO_EXEC_STARTED:
		SAME(exec_started.id);
		SAME(exec_started.cmd);
		SAME(exec_started.pid);
		SAME(exec_started.stdin_window);
		break;
	case PROTO_OUTPUT:
		SAME(output.stream);
		SAME(output.offset);
		SAME_BYTES(output.data);
		break;
	case PROTO_STDIN:
		SAME(stdin_data.offset);
		SAME_BYTES(stdin_data.data);
		break;
	case PROTO_ACK:
		SAME(ack.out);
		SAME(ack.err);
		SAME(ack.in);
		break;
	case PROTO_EXIT:
		SAME(exit.code);
		SAME(exit.signal);
		SAME(exit.timed_out);
		SAME(exit.killed);
		SAME(exit.out_total);
		SAME(exit.err_total);
		SAME(exit.duration_ms);
		break;
	case PROTO_SIGNAL:
		SAME(signal.id);
		SAME(signal.cmd);
		SAME(signal.signal);
		SAME(signal.group);
		break;
	case PROTO_RESIZE:
		SAME(resize.id);
		SAME(resize.cmd);
		SAME(resize.rows);
		SAME(resize.cols);
		break;
	case PROTO_ATTACH:
		SAME(attach.id);
		SAME(attach.cmd);
		SAME(attach.out_offset);
		SAME(attach.err_offset);
		SAME(attach.window);
		break;
	case PROTO_ATTACHED:
		SAME(attached.id);
		SAME(attached.cmd);
		SAME(attached.running);
		SAME(attached.out_start);
		SAME(attached.err_start);
		SAME(attached.in_offset);
		SAME(attached.stdin_window);
		break;
	case PROTO_FORGET:
		SAME(forget.id);
		SAME(forget.cmd);
		break;
	case PROTO_FILE_WRITE:
		SAME(file_write.id);
		SAME_STR(file_write.path);
		SAME(file_write.mode);
		SAME(file_write.append);
		SAME(file_write.mkdirs);
		SAME(file_write.size);
		break;
	case PROTO_FILE_READ:
		SAME(file_read.id);
		SAME_STR(file_read.path);
		SAME(file_read.offset);
		SAME(file_read.length);
		SAME(file_read.window);
		SAME(file_read.zstd);
		break;
	case PROTO_FILE_OPENED:
		SAME(file_opened.id);
		SAME(file_opened.chan);
		SAME(file_opened.size);
		SAME(file_opened.mode);
		SAME(file_opened.mtime);
		SAME(file_opened.window);
		SAME(file_opened.zstd);
		break;
	case PROTO_DATA:
		SAME(data.offset);
		SAME(data.raw_len);
		SAME_BYTES(data.data);
		break;
	case PROTO_FILE_DONE:
		SAME(file_done.id);
		SAME(file_done.size);
		break;
	case PROTO_STAT:
	case PROTO_LIST:
	case PROTO_MKDIR:
	case PROTO_REMOVE:
		SAME(path.id);
		SAME_STR(path.path);
		SAME(path.mode);
		SAME(path.recursive);
		break;
	case PROTO_STAT_RESULT:
		SAME(stat.id);
		SAME(stat.type);
		SAME(stat.size);
		SAME(stat.mode);
		SAME(stat.uid);
		SAME(stat.gid);
		SAME(stat.mtime);
		SAME_STR(stat.link);
		break;
	case PROTO_LIST_RESULT:
		SAME(list.id);
		SAME(list.n);
		SAME(list.more);
		for (uint32_t i = 0; i < a->u.list.n; i++) {
			const struct proto_entry *x = &a->u.list.entries[i],
						 *y = &b->u.list.entries[i];

			assert_str_same("entry name", x->name, y->name);
			ck_assert_uint_eq(x->type, y->type);
			ck_assert_uint_eq(x->size, y->size);
			ck_assert_uint_eq(x->mode, y->mode);
			ck_assert_int_eq(x->mtime, y->mtime);
		}
		break;
	case PROTO_INFO_RESULT:
		SAME(info.id);
		SAME_STR(info.version);
		SAME_STR(info.hostname);
		SAME_STR(info.kernel);
		SAME(info.uptime_ms);
		SAME(info.load[0]);
		SAME(info.load[1]);
		SAME(info.load[2]);
		SAME(info.mem_total);
		SAME(info.mem_available);
		SAME(info.ncpus);
		SAME(info.commands);
		break;
	case PROTO_SHUTDOWN:
		SAME(shutdown.id);
		SAME(shutdown.reboot);
		break;
	case PROTO_FIXUP:
		SAME(fixup.id);
		SAME(fixup.time_ns);
		SAME_BYTES(fixup.entropy);
		SAME_STR(fixup.hostname);
		SAME_STR(fixup.root);
		SAME_STR(fixup.rootfstype);
		break;
	default:
		ck_abort_msg("type %u has no comparison", a->type);
	}
}

/* Encode m, decode it back, compare with want, and check that re-encoding
 * the decoded message gives the same bytes as encoding want. */
static void round_trip(const struct proto_msg *m, const struct proto_msg *want)
{
	struct proto_buf b1, b2, bw;
	_cleanup_free_ uint8_t *copy = NULL;
	struct proto_msg d;
	size_t used;
	int r;

	proto_buf_init(&b1);
	proto_buf_init(&b2);
	encode_ok(m, &b1);
	copy = malloc(b1.len);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, b1.data, b1.len);
	r = proto_decode_frame(copy, b1.len, &d, &used);
	ck_assert_msg(r == 0, "decode %s: %d", proto_type_to_string(m->type), r);
	ck_assert_uint_eq(used, b1.len);
	assert_msg_same(want, &d);
	encode_ok(&d, &b2);
	proto_buf_init(&bw);
	encode_ok(want, &bw);
	ck_assert_uint_eq(bw.len, b2.len);
	ck_assert_mem_eq(bw.data, b2.data, bw.len);
	proto_msg_release(&d);
	proto_buf_release(&b1);
	proto_buf_release(&b2);
	proto_buf_release(&bw);
}

/* ---- core: round trips -------------------------------------------------- */

START_TEST(test_every_type_round_trips_with_all_fields)
{
	struct proto_msg m;

	fill_full(all_types[_i], &m);
	round_trip(&m, &m);
}
END_TEST

START_TEST(test_every_type_round_trips_with_optional_fields_absent)
{
	struct proto_msg m, want;

	fill_min(all_types[_i], &m);
	fill_min_decoded(all_types[_i], &want);
	round_trip(&m, &want);
}
END_TEST

/* The body fill_min(type) must encode to, written here byte by byte: "id"
 * (always sent by the types that have one) and the required keys, in the
 * order of docs/protocol.md; every optional field at its default left out. */
static void mp_min_body(uint16_t type, struct mp *b)
{
	switch (type) {
	case PROTO_HELLO:
		/* max_body 0 is not its default (PROTO_MAX_BODY): it is sent,
		 * and the decoder reads a 0 as the default */
		mp_map(b, 2);
		mp_str(b, "version");
		mp_uint(b, 1);
		mp_str(b, "max_body");
		mp_uint(b, 0);
		return;
	case PROTO_STDIN:
	case PROTO_ACK:
	case PROTO_EXIT:
	case PROTO_DATA:
		mp_map(b, 0); /* {} */
		return;
	case PROTO_OUTPUT:
		mp_map(b, 1);
		mp_str(b, "stream");
		mp_uint(b, PROTO_STDOUT);
		return;
	}
	/* every other type has an id */
	switch (type) {
	case PROTO_OK:
	case PROTO_PING:
	case PROTO_PONG:
	case PROTO_INFO:
	case PROTO_INFO_RESULT:
	case PROTO_SHUTDOWN:
	case PROTO_FIXUP:
	case PROTO_STAT_RESULT:
	case PROTO_LIST_RESULT:
		mp_map(b, 1);
		break;
	case PROTO_RESIZE:
		mp_map(b, 4);
		break;
	case PROTO_SIGNAL:
		mp_map(b, 3);
		break;
	default:
		mp_map(b, 2);
	}
	mp_str(b, "id");
	mp_uint(b, 0);
	switch (type) {
	case PROTO_ERROR:
		mp_str(b, "code");
		mp_uint(b, PROTO_E_INTERNAL);
		break;
	case PROTO_EXEC:
		mp_str(b, "shell");
		mp_str(b, "");
		break;
	case PROTO_EXEC_STARTED:
	case PROTO_ATTACH:
	case PROTO_ATTACHED:
	case PROTO_FORGET:
		mp_str(b, "cmd");
		mp_uint(b, 1);
		break;
	case PROTO_SIGNAL:
		mp_str(b, "cmd");
		mp_uint(b, 1);
		mp_str(b, "sig");
		mp_uint(b, 9);
		break;
	case PROTO_RESIZE:
		mp_str(b, "cmd");
		mp_uint(b, 1);
		mp_str(b, "rows");
		mp_uint(b, 1);
		mp_str(b, "cols");
		mp_uint(b, 1);
		break;
	case PROTO_FILE_WRITE:
	case PROTO_FILE_READ:
	case PROTO_STAT:
	case PROTO_LIST:
	case PROTO_MKDIR:
	case PROTO_REMOVE:
		mp_str(b, "path");
		mp_str(b, "/");
		break;
	case PROTO_FILE_OPENED:
		mp_str(b, "chan");
		mp_uint(b, 1);
		break;
	case PROTO_FILE_DONE:
		mp_str(b, "size");
		mp_uint(b, 0);
		break;
	}
}

START_TEST(test_absent_optional_fields_are_left_out_of_the_body)
{
	struct proto_msg m, want, d;
	struct proto_buf b;
	struct mp body = {0};
	int r;

	fill_min(all_types[_i], &m);
	proto_buf_init(&b);
	encode_ok(&m, &b);
	mp_min_body(m.type, &body);
	switch (m.type) { /* a map of the required keys (+ "id") only */
	case PROTO_OK:
	case PROTO_PING:
	case PROTO_PONG:
	case PROTO_INFO:
	case PROTO_INFO_RESULT:
	case PROTO_SHUTDOWN:
	case PROTO_FIXUP:
	case PROTO_STAT_RESULT:
	case PROTO_LIST_RESULT:
		ck_assert_uint_eq(b.len, PROTO_HEADER_SIZE + 1 + 3 + 1); /* {"id": 0} */
		break;
	case PROTO_STDIN:
	case PROTO_ACK:
	case PROTO_EXIT:
	case PROTO_DATA:
		ck_assert_uint_eq(b.len, PROTO_HEADER_SIZE + 1); /* {} */
		break;
	}
	/* every type: exactly the bytes written above */
	ck_assert_msg(b.len == PROTO_HEADER_SIZE + body.n, "%s: body of %zu bytes, want %zu",
		      proto_type_to_string(m.type), b.len - PROTO_HEADER_SIZE, body.n);
	ck_assert_mem_eq(b.data + PROTO_HEADER_SIZE, body.p, body.n);
	/* and those bytes decode to the message with the defaults filled in */
	r = decode_as(m.type, m.channel, &body, &d);
	ck_assert_msg(r == 0, "decode %s: %d", proto_type_to_string(m.type), r);
	fill_min_decoded(m.type, &want);
	assert_msg_same(&want, &d);
	proto_msg_release(&d);
	mp_free(&body);
	proto_buf_release(&b);
}
END_TEST

/* The loops over all_types reach every frame type of proto.h: a type
 * added there without a sample here would be tested nowhere. */
START_TEST(test_all_types_lists_every_frame_type)
{
	unsigned named = 0;

	for (unsigned t = 0; t < PROTO_TYPE_COUNT; t++) {
		bool listed = false;

		for (int i = 0; i < NTYPES; i++)
			listed |= all_types[i] == t;
		if (strcmp(proto_type_to_string((uint16_t)t), "unknown")) {
			named++;
			ck_assert_msg(listed, "type %u (%s) is not in all_types", t,
				      proto_type_to_string((uint16_t)t));
		} else {
			ck_assert_msg(!listed, "all_types lists %u, which has no name", t);
		}
	}
	ck_assert_int_eq(named, NTYPES);
}
END_TEST

START_TEST(test_exec_with_shell_round_trips)
{
	struct proto_msg m;

	fill_full(PROTO_EXEC, &m);
	m.u.exec.argv = (struct proto_strv){0};
	m.u.exec.shell = "echo $HOME; exit 3";
	m.u.exec.env = (struct proto_strv){0};
	m.u.exec.uid = -1;
	round_trip(&m, &m);
}
END_TEST

START_TEST(test_hello_zero_max_body_decodes_as_the_hard_limit)
{
	struct proto_msg m, want;

	fill_full(PROTO_HELLO, &m);
	m.u.hello.max_body = 0;
	want = m;
	want.u.hello.max_body = PROTO_MAX_BODY;
	round_trip(&m, &want);
}
END_TEST

START_TEST(test_ping_frame_matches_documented_bytes)
{
	/* docs/protocol.md, "Worked example" */
	static const uint8_t want[] = {0x53, 0x42, 0x58, 0x46, 0x05, 0x00, 0x00,
				       0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
				       0x00, 0x00, 0x81, 0xa2, 0x69, 0x64, 0x01};
	struct proto_msg m = {.type = PROTO_PING, .u.idonly.id = 1};
	struct proto_buf b;

	proto_buf_init(&b);
	encode_ok(&m, &b);
	ck_assert_uint_eq(b.len, sizeof(want));
	ck_assert_mem_eq(b.data, want, sizeof(want));
	proto_buf_release(&b);
}
END_TEST

START_TEST(test_header_parse_reads_little_endian_fields)
{
	static const uint8_t h[] = {'S',  'B',	'X',  'F',  0x05, 0x01, 0x00, 0x00,
				    0x0c, 0x00, 0x01, 0x80, 0x2a, 0x00, 0x00, 0x01};
	struct proto_header hdr;

	ck_assert_int_eq(proto_header_parse(h, sizeof(h), 0, &hdr), 0);
	ck_assert_uint_eq(hdr.len, 261);
	ck_assert_uint_eq(hdr.type, PROTO_OUTPUT);
	ck_assert_uint_eq(hdr.flags, 0x8001);
	ck_assert_uint_eq(hdr.channel, 0x0100002a);
	ck_assert_int_eq(proto_header_parse(h, sizeof(h), 260, &hdr), -EMSGSIZE);
	ck_assert_int_eq(proto_header_parse(h, sizeof(h) - 1, 0, &hdr), -EAGAIN);
}
END_TEST

START_TEST(test_frames_concatenate_in_one_buffer)
{
	struct proto_buf b;
	struct proto_msg m;
	size_t off = 0, used;
	int n = 0;

	proto_buf_init(&b);
	for (int i = 0; i < NTYPES; i++) {
		fill_full(all_types[i], &m);
		encode_ok(&m, &b);
	}
	while (off < b.len) {
		ck_assert_int_eq(proto_decode_frame(b.data + off, b.len - off, &m, &used), 0);
		ck_assert_uint_eq(m.type, all_types[n]);
		proto_msg_release(&m);
		off += used;
		n++;
	}
	ck_assert_int_eq(n, NTYPES);
	proto_buf_release(&b);
}
END_TEST

START_TEST(test_msg_id_is_zero_for_types_without_id)
{
	struct proto_msg m;

	fill_full(PROTO_EXEC, &m);
	ck_assert_uint_eq(proto_msg_id(&m), 1);
	fill_full(PROTO_FILE_DONE, &m);
	ck_assert_uint_eq(proto_msg_id(&m), 26);
	fill_full(PROTO_OUTPUT, &m);
	ck_assert_uint_eq(proto_msg_id(&m), 0);
	fill_full(PROTO_HELLO, &m);
	ck_assert_uint_eq(proto_msg_id(&m), 0);
	m.type = 999;
	ck_assert_uint_eq(proto_msg_id(&m), 0);
}
END_TEST

START_TEST(test_names_cover_every_type_and_code)
{
	for (int i = 0; i < NTYPES; i++)
		ck_assert_str_ne(proto_type_to_string(all_types[i]), "unknown");
	ck_assert_str_eq(proto_type_to_string(PROTO_EXEC_STARTED), "exec_started");
	ck_assert_str_eq(proto_type_to_string(0), "unknown");
	ck_assert_str_eq(proto_type_to_string(PROTO_TYPE_COUNT), "unknown");
	ck_assert_str_eq(proto_type_to_string(0xffff), "unknown");
	for (uint32_t c = 0; c < PROTO_E_COUNT; c++)
		ck_assert_str_ne(proto_err_to_string(c), "unknown");
	ck_assert_str_eq(proto_err_to_string(PROTO_E_LOST), "lost");
	ck_assert_str_eq(proto_err_to_string(PROTO_E_COUNT), "unknown");
}
END_TEST

START_TEST(test_msg_release_is_safe_twice_and_on_zeroed_msg)
{
	struct proto_msg m = {0};
	struct proto_buf b;
	size_t used;

	proto_msg_release(&m);
	proto_msg_release(&m);
	proto_buf_init(&b);
	fill_full(PROTO_EXEC, &m);
	encode_ok(&m, &b);
	ck_assert_int_eq(proto_decode_frame(b.data, b.len, &m, &used), 0);
	ck_assert_ptr_nonnull(m.priv);
	proto_msg_release(&m);
	ck_assert_ptr_null(m.priv);
	proto_msg_release(&m);
	proto_buf_release(&b);
}
END_TEST

START_TEST(test_buf_consume_drops_a_prefix)
{
	struct proto_buf b;
	struct proto_msg m = {.type = PROTO_PING, .u.idonly.id = 1};

	proto_buf_init(&b);
	encode_ok(&m, &b);
	encode_ok(&m, &b);
	ck_assert_uint_eq(b.len, 42);
	proto_buf_consume(&b, 21);
	ck_assert_uint_eq(b.len, 21);
	ck_assert_mem_eq(b.data, "SBXF", 4);
	proto_buf_consume(&b, 100);
	ck_assert_uint_eq(b.len, 0);
	proto_buf_release(&b);
	proto_buf_release(&b);
}
END_TEST

START_TEST(test_encode_error_negates_errno_and_cuts_long_messages)
{
	_cleanup_free_ char *longmsg = malloc(PROTO_MAX_STR + 100);
	struct proto_buf b;
	struct proto_msg m;
	size_t used;

	ck_assert_ptr_nonnull(longmsg);
	memset(longmsg, 'x', PROTO_MAX_STR + 99);
	longmsg[PROTO_MAX_STR + 99] = '\0';
	proto_buf_init(&b);
	ck_assert_int_eq(proto_encode_error(&b, 3, 7, PROTO_E_IO, -ENOENT, "nope"), 0);
	ck_assert_int_eq(proto_decode_frame(b.data, b.len, &m, &used), 0);
	ck_assert_uint_eq(m.type, PROTO_ERROR);
	ck_assert_uint_eq(m.channel, 3);
	ck_assert_uint_eq(m.u.error.id, 7);
	ck_assert_uint_eq(m.u.error.code, PROTO_E_IO);
	ck_assert_int_eq(m.u.error.err_no, ENOENT);
	ck_assert_str_eq(m.u.error.msg, "nope");
	proto_msg_release(&m);
	proto_buf_consume(&b, used);
	ck_assert_int_eq(proto_encode_error(&b, 0, 0, PROTO_E_BAD_FRAME, 0, longmsg), 0);
	ck_assert_int_eq(proto_decode_frame(b.data, b.len, &m, &used), 0);
	ck_assert_uint_eq(strlen(m.u.error.msg), PROTO_MAX_STR);
	ck_assert_int_eq(m.u.error.err_no, 0);
	proto_msg_release(&m);
	proto_buf_consume(&b, used);
	ck_assert_int_eq(proto_encode_error(&b, 0, 1, PROTO_E_LIMIT, EMFILE, NULL), 0);
	ck_assert_int_eq(proto_decode_frame(b.data, b.len, &m, &used), 0);
	ck_assert_ptr_null(m.u.error.msg);
	proto_msg_release(&m);
	proto_buf_release(&b);
}
END_TEST

/* ---- frames and the stream reader ---------------------------------------- */

/* One frame of every type, concatenated. */
static void all_frames(struct proto_buf *b)
{
	struct proto_msg m;

	proto_buf_init(b);
	for (int i = 0; i < NTYPES; i++) {
		fill_full(all_types[i], &m);
		encode_ok(&m, b);
	}
}

START_TEST(test_decode_frame_needs_more_bytes_for_every_prefix)
{
	struct proto_msg m;
	struct proto_buf b;
	size_t used;

	proto_buf_init(&b);
	fill_full(all_types[_i], &m);
	encode_ok(&m, &b);
	for (size_t n = 0; n < b.len; n++) {
		_cleanup_free_ uint8_t *copy = malloc(n ? n : 1);

		memcpy(copy, b.data, n);
		ck_assert_int_eq(proto_decode_frame(copy, n, &m, &used), -EAGAIN);
		ck_assert_uint_eq(used, 0);
	}
	proto_buf_release(&b);
}
END_TEST

START_TEST(test_reader_waits_for_every_prefix_of_a_frame)
{
	struct proto_reader r;
	struct proto_msg m;
	struct proto_buf b;

	proto_buf_init(&b);
	fill_full(all_types[_i], &m);
	encode_ok(&m, &b);
	proto_reader_init(&r, 0);
	for (size_t n = 0; n < b.len; n++) {
		ck_assert_int_eq(proto_reader_next(&r, &m), 0);
		ck_assert_uint_eq(r.skipped, 0);
		ck_assert_int_eq(proto_reader_feed(&r, b.data + n, 1), 0);
	}
	ck_assert_int_eq(proto_reader_next(&r, &m), 1);
	ck_assert_uint_eq(m.type, all_types[_i]);
	proto_msg_release(&m);
	ck_assert_int_eq(proto_reader_next(&r, &m), 0);
	proto_reader_release(&r);
	proto_buf_release(&b);
}
END_TEST

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

START_TEST(test_reader_yields_frames_fed_in_random_pieces)
{
	struct proto_reader r;
	struct proto_msg m;
	struct proto_buf b;
	uint32_t seed = 42 + (uint32_t)_i;
	size_t off = 0;
	int n = 0, rc;

	all_frames(&b);
	proto_reader_init(&r, 0);
	while (off < b.len) {
		size_t piece = lcg(&seed) % 300 + 1, room;
		uint8_t *p;

		if (piece > b.len - off)
			piece = b.len - off;
		p = proto_reader_space(&r, piece, &room);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_ge(room, piece);
		memcpy(p, b.data + off, piece);
		proto_reader_commit(&r, piece);
		off += piece;
		while ((rc = proto_reader_next(&r, &m)) == 1) {
			ck_assert_uint_eq(m.type, all_types[n]);
			proto_msg_release(&m);
			n++;
		}
		ck_assert_int_eq(rc, 0);
	}
	ck_assert_int_eq(n, NTYPES);
	proto_reader_release(&r);
	proto_buf_release(&b);
}
END_TEST

START_TEST(test_decode_rejects_oversized_frame)
{
	uint8_t h[PROTO_HEADER_SIZE];
	struct proto_msg m;
	size_t used = 99;

	memcpy(h, "SBXF", 4);
	put_le(h + 4, PROTO_MAX_BODY + 1, 4);
	put_le(h + 8, PROTO_EXEC, 2);
	put_le(h + 10, 0, 2);
	put_le(h + 12, 12, 4);
	/* only the header: the verdict comes before any body is awaited or allocated */
	ck_assert_int_eq(proto_decode_frame(h, sizeof(h), &m, &used), -EMSGSIZE);
	ck_assert_uint_eq(used, 0);
	ck_assert_uint_eq(m.type, PROTO_EXEC);
	ck_assert_uint_eq(m.channel, 12);
	put_le(h + 4, UINT32_MAX, 4);
	ck_assert_int_eq(proto_decode_frame(h, sizeof(h), &m, &used), -EMSGSIZE);
	put_le(h + 4, PROTO_MAX_BODY, 4);
	ck_assert_int_eq(proto_decode_frame(h, sizeof(h), &m, &used), -EAGAIN);
}
END_TEST

START_TEST(test_reader_reports_oversized_frame_at_its_header_and_drops_its_body)
{
	struct proto_reader r;
	struct proto_msg m;
	struct proto_buf frames;
	uint8_t h[PROTO_HEADER_SIZE];
	size_t body = 2 * PROTO_MAX_BODY, left = body;

	memcpy(h, "SBXF", 4);
	put_le(h + 4, body, 4);
	put_le(h + 8, PROTO_DATA, 2);
	put_le(h + 10, 0, 2);
	put_le(h + 12, 9, 4);
	all_frames(&frames); /* the oversized body is made of valid frames */
	proto_reader_init(&r, 0);
	ck_assert_int_eq(proto_reader_feed(&r, h, sizeof(h)), 0);
	ck_assert_int_eq(proto_reader_next(&r, &m), -EMSGSIZE);
	ck_assert_uint_eq(m.type, PROTO_DATA);
	ck_assert_uint_eq(m.channel, 9);
	ck_assert_uint_lt(r.cap, 65536);
	while (left) {
		size_t n = left < frames.len ? left : frames.len;

		ck_assert_int_eq(proto_reader_feed(&r, frames.data, n), 0);
		ck_assert_int_eq(proto_reader_next(&r, &m), 0);
		ck_assert_uint_eq(r.skipped, 0);
		left -= n;
	}
	ck_assert_uint_eq(r.discard, 0);
	ck_assert_int_eq(proto_reader_feed(&r, frames.data, frames.len), 0);
	for (int i = 0; i < NTYPES; i++) {
		ck_assert_int_eq(proto_reader_next(&r, &m), 1);
		ck_assert_uint_eq(m.type, all_types[i]);
		proto_msg_release(&m);
	}
	ck_assert_int_eq(proto_reader_next(&r, &m), 0);
	proto_reader_release(&r);
	proto_buf_release(&frames);
}
END_TEST

START_TEST(test_reader_honours_a_smaller_max_body)
{
	struct proto_reader r;
	struct proto_msg m;
	struct proto_buf b;

	proto_buf_init(&b);
	fill_full(PROTO_EXEC, &m);
	encode_ok(&m, &b);
	m = (struct proto_msg){.type = PROTO_PING, .u.idonly.id = 4};
	encode_ok(&m, &b);
	proto_reader_init(&r, 100);
	ck_assert_int_eq(proto_reader_feed(&r, b.data, b.len), 0);
	ck_assert_int_eq(proto_reader_next(&r, &m), -EMSGSIZE);
	ck_assert_uint_eq(m.type, PROTO_EXEC);
	ck_assert_int_eq(proto_reader_next(&r, &m), 1);
	ck_assert_uint_eq(m.type, PROTO_PING);
	ck_assert_uint_eq(m.u.idonly.id, 4);
	proto_msg_release(&m);
	proto_reader_release(&r);
	proto_buf_release(&b);
}
END_TEST

START_TEST(test_reader_resyncs_after_garbage)
{
	static const char junk[] = "hello, garbage SBX SB";
	struct proto_reader r;
	struct proto_msg m = {.type = PROTO_PING, .u.idonly.id = 77};
	struct proto_buf b;

	proto_buf_init(&b);
	encode_ok(&m, &b);
	proto_reader_init(&r, 0);
	ck_assert_int_eq(proto_reader_feed(&r, junk, strlen(junk)), 0);
	ck_assert_int_eq(proto_reader_feed(&r, b.data, b.len), 0);
	ck_assert_int_eq(proto_reader_next(&r, &m), -EBADMSG);
	ck_assert_uint_eq(r.skipped, strlen(junk));
	ck_assert_uint_eq(m.type, 0);
	ck_assert_int_eq(proto_reader_next(&r, &m), 1);
	ck_assert_uint_eq(r.skipped, 0);
	ck_assert_uint_eq(m.type, PROTO_PING);
	ck_assert_uint_eq(m.u.idonly.id, 77);
	proto_msg_release(&m);
	ck_assert_int_eq(proto_reader_next(&r, &m), 0);
	proto_reader_release(&r);
	proto_buf_release(&b);
}
END_TEST

START_TEST(test_reader_keeps_a_partial_magic_at_the_end_of_garbage)
{
	struct proto_reader r;
	struct proto_msg m = {.type = PROTO_PING, .u.idonly.id = 5};
	struct proto_buf b;

	proto_buf_init(&b);
	encode_ok(&m, &b);
	proto_reader_init(&r, 0);
	ck_assert_int_eq(proto_reader_feed(&r, "xxxx", 4), 0);
	ck_assert_int_eq(proto_reader_feed(&r, b.data, 3), 0); /* "SBX" */
	ck_assert_int_eq(proto_reader_next(&r, &m), -EBADMSG);
	ck_assert_uint_eq(r.skipped, 4);
	ck_assert_int_eq(proto_reader_next(&r, &m), 0);
	ck_assert_int_eq(proto_reader_feed(&r, b.data + 3, b.len - 3), 0);
	ck_assert_int_eq(proto_reader_next(&r, &m), 1);
	ck_assert_uint_eq(m.u.idonly.id, 5);
	proto_msg_release(&m);
	proto_reader_release(&r);
	proto_buf_release(&b);
}
END_TEST

START_TEST(test_reader_drops_garbage_without_magic_at_once)
{
	struct proto_reader r;
	struct proto_msg m;

	proto_reader_init(&r, 0);
	ck_assert_int_eq(proto_reader_feed(&r, "0123456789", 10), 0);
	ck_assert_int_eq(proto_reader_next(&r, &m), -EBADMSG);
	ck_assert_uint_eq(r.skipped, 10);
	ck_assert_int_eq(proto_reader_next(&r, &m), 0);
	ck_assert_uint_eq(r.skipped, 0);
	ck_assert_int_eq(proto_reader_feed(&r, "S", 1), 0);
	ck_assert_int_eq(proto_reader_next(&r, &m), 0);
	ck_assert_int_eq(proto_reader_feed(&r, "Q", 1), 0);
	ck_assert_int_eq(proto_reader_next(&r, &m), -EBADMSG);
	ck_assert_uint_eq(r.skipped, 2);
	proto_reader_release(&r);
}
END_TEST

START_TEST(test_decode_rejects_wrong_magic)
{
	struct proto_msg m = {.type = PROTO_PING};
	struct proto_buf b;
	size_t used;

	proto_buf_init(&b);
	encode_ok(&m, &b);
	b.data[3] = 'G';
	ck_assert_int_eq(proto_decode_frame(b.data, b.len, &m, &used), -EBADMSG);
	ck_assert_uint_eq(used, 0);
	proto_buf_release(&b);
}
END_TEST

START_TEST(test_reader_skips_an_undecodable_frame_and_reports_its_identity)
{
	struct proto_reader r;
	struct proto_msg m;
	struct mp body = {0};
	_cleanup_free_ uint8_t *f = NULL;
	struct proto_buf b;
	size_t flen;

	mp_map(&body, 2);
	mp_str(&body, "id");
	mp_uint(&body, 31);
	mp_str(&body, "argv");
	mp_uint(&body, 1); /* not an array */
	f = mk_frame(PROTO_EXEC, 0, 4, body.p, (uint32_t)body.n, &flen);
	proto_buf_init(&b);
	m = (struct proto_msg){.type = PROTO_PONG, .u.idonly.id = 8};
	encode_ok(&m, &b);
	proto_reader_init(&r, 0);
	ck_assert_int_eq(proto_reader_feed(&r, f, flen), 0);
	ck_assert_int_eq(proto_reader_feed(&r, b.data, b.len), 0);
	ck_assert_int_eq(proto_reader_next(&r, &m), -EBADMSG);
	ck_assert_uint_eq(r.skipped, 0);
	ck_assert_uint_eq(m.type, PROTO_EXEC);
	ck_assert_uint_eq(m.channel, 4);
	ck_assert_uint_eq(m.u.idonly.id, 31);
	ck_assert_ptr_null(m.priv);
	ck_assert_int_eq(proto_reader_next(&r, &m), 1);
	ck_assert_uint_eq(m.type, PROTO_PONG);
	proto_msg_release(&m);
	proto_reader_release(&r);
	proto_buf_release(&b);
	mp_free(&body);
}
END_TEST

START_TEST(test_decode_rejects_unknown_frame_type_with_type_reported)
{
	struct proto_reader r;
	struct proto_msg m;
	struct mp body = {0};
	_cleanup_free_ uint8_t *f = NULL;
	size_t flen, used;

	mp_map(&body, 2);
	mp_str(&body, "id");
	mp_uint(&body, 42);
	mp_str(&body, "future");
	mp_arr(&body, 0);
	f = mk_frame(99, 0, 3, body.p, (uint32_t)body.n, &flen);
	ck_assert_int_eq(proto_decode_frame(f, flen, &m, &used), -EPROTO);
	ck_assert_uint_eq(used, flen);
	ck_assert_uint_eq(m.type, 99);
	ck_assert_uint_eq(m.channel, 3);
	ck_assert_uint_eq(m.u.idonly.id, 42);
	proto_reader_init(&r, 0);
	ck_assert_int_eq(proto_reader_feed(&r, f, flen), 0);
	ck_assert_int_eq(proto_reader_next(&r, &m), -EPROTO);
	ck_assert_uint_eq(m.type, 99);
	ck_assert_uint_eq(m.u.idonly.id, 42);
	ck_assert_int_eq(proto_reader_next(&r, &m), 0);
	proto_reader_release(&r);
	/* type 0 and a body that is not even msgpack: still "unknown type" */
	free(f);
	f = mk_frame(0, 0, 0, "\xc1", 1, &flen);
	ck_assert_int_eq(proto_decode_frame(f, flen, &m, &used), -EPROTO);
	ck_assert_uint_eq(m.type, 0);
	mp_free(&body);
}
END_TEST

START_TEST(test_reader_space_stays_bounded_by_one_frame)
{
	static uint8_t chunk[PROTO_MAX_CHUNK];
	struct proto_reader r;
	struct proto_msg m;
	struct proto_buf b;
	size_t off = 0, maxcap = 0;
	int frames = 0;

	proto_buf_init(&b);
	for (int i = 0; i < 12; i++) {
		m = (struct proto_msg){.type = PROTO_DATA, .channel = 1};
		m.u.data.data = (struct proto_bytes){chunk, sizeof(chunk)};
		m.u.data.offset = (uint64_t)i * sizeof(chunk);
		encode_ok(&m, &b);
	}
	proto_reader_init(&r, 0);
	while (off < b.len) {
		size_t room, n;
		uint8_t *p = proto_reader_space(&r, 65536, &room);

		ck_assert_ptr_nonnull(p);
		n = room < b.len - off ? room : b.len - off;
		memcpy(p, b.data + off, n);
		proto_reader_commit(&r, n);
		off += n;
		if (r.cap > maxcap)
			maxcap = r.cap;
		while (proto_reader_next(&r, &m) == 1) {
			ck_assert_uint_eq(m.u.data.data.len, sizeof(chunk));
			proto_msg_release(&m);
			frames++;
		}
	}
	ck_assert_int_eq(frames, 12);
	ck_assert_uint_le(maxcap, PROTO_HEADER_SIZE + PROTO_MAX_BODY + 65536);
	ck_assert_uint_le(maxcap, 2 * (PROTO_HEADER_SIZE + sizeof(chunk) + 64) + 65536);
	proto_reader_release(&r);
	proto_buf_release(&b);
}
END_TEST

START_TEST(test_reader_reset_forgets_buffered_bytes)
{
	struct proto_reader r;
	struct proto_msg m = {.type = PROTO_PING, .u.idonly.id = 3};
	struct proto_buf b;

	proto_buf_init(&b);
	encode_ok(&m, &b);
	proto_reader_init(&r, 0);
	ck_assert_int_eq(proto_reader_feed(&r, b.data, b.len - 1), 0);
	ck_assert_int_eq(proto_reader_next(&r, &m), 0);
	proto_reader_reset(&r);
	ck_assert_int_eq(proto_reader_feed(&r, b.data, b.len), 0);
	ck_assert_int_eq(proto_reader_next(&r, &m), 1);
	ck_assert_uint_eq(m.u.idonly.id, 3);
	proto_msg_release(&m);
	proto_reader_release(&r);
	proto_buf_release(&b);
}
END_TEST

/* ---- errors: hostile bodies ---------------------------------------------- */

enum tk { T_BOOL, T_UINT, T_INT, T_STR, T_STRV, T_BIN, T_LOAD, T_ENTRIES };

/* Every key of every body (docs/protocol.md). */
static const struct key {
	uint16_t type;
	const char *key;
	enum tk kind;
	bool req;
} keys[] = {
    {PROTO_HELLO, "version", T_UINT, true},
    {PROTO_HELLO, "software", T_STR, false},
    {PROTO_HELLO, "caps", T_STRV, false},
    {PROTO_HELLO, "max_body", T_UINT, false},
    {PROTO_ERROR, "id", T_UINT, false},
    {PROTO_ERROR, "code", T_UINT, true},
    {PROTO_ERROR, "errno", T_INT, false},
    {PROTO_ERROR, "msg", T_STR, false},
    {PROTO_OK, "id", T_UINT, false},
    {PROTO_PING, "id", T_UINT, false},
    {PROTO_PONG, "id", T_UINT, false},
    {PROTO_INFO, "id", T_UINT, false},
    {PROTO_EXEC, "id", T_UINT, false},
    {PROTO_EXEC, "argv", T_STRV, true},
    {PROTO_EXEC, "shell", T_STR, false},
    {PROTO_EXEC, "env", T_STRV, false},
    {PROTO_EXEC, "cwd", T_STR, false},
    {PROTO_EXEC, "uid", T_INT, false},
    {PROTO_EXEC, "gid", T_INT, false},
    {PROTO_EXEC, "pty", T_BOOL, false},
    {PROTO_EXEC, "rows", T_UINT, false},
    {PROTO_EXEC, "cols", T_UINT, false},
    {PROTO_EXEC, "stdin", T_BOOL, false},
    {PROTO_EXEC, "timeout_ms", T_UINT, false},
    {PROTO_EXEC, "window", T_UINT, false},
    {PROTO_EXEC, "ring", T_UINT, false},
    {PROTO_EXEC, "keep_ms", T_UINT, false},
    {PROTO_EXEC_STARTED, "id", T_UINT, false},
    {PROTO_EXEC_STARTED, "cmd", T_UINT, true},
    {PROTO_EXEC_STARTED, "pid", T_INT, false},
    {PROTO_EXEC_STARTED, "window", T_UINT, false},
    {PROTO_OUTPUT, "stream", T_UINT, true},
    {PROTO_OUTPUT, "off", T_UINT, false},
    {PROTO_OUTPUT, "data", T_BIN, false},
    {PROTO_STDIN, "off", T_UINT, false},
    {PROTO_STDIN, "data", T_BIN, false},
    {PROTO_ACK, "out", T_UINT, false},
    {PROTO_ACK, "err", T_UINT, false},
    {PROTO_ACK, "in", T_UINT, false},
    {PROTO_EXIT, "code", T_INT, false},
    {PROTO_EXIT, "sig", T_INT, false},
    {PROTO_EXIT, "timed_out", T_BOOL, false},
    {PROTO_EXIT, "killed", T_BOOL, false},
    {PROTO_EXIT, "out", T_UINT, false},
    {PROTO_EXIT, "err", T_UINT, false},
    {PROTO_EXIT, "duration_ms", T_UINT, false},
    {PROTO_SIGNAL, "id", T_UINT, false},
    {PROTO_SIGNAL, "cmd", T_UINT, true},
    {PROTO_SIGNAL, "sig", T_INT, true},
    {PROTO_SIGNAL, "group", T_BOOL, false},
    {PROTO_RESIZE, "id", T_UINT, false},
    {PROTO_RESIZE, "cmd", T_UINT, true},
    {PROTO_RESIZE, "rows", T_UINT, true},
    {PROTO_RESIZE, "cols", T_UINT, true},
    {PROTO_ATTACH, "id", T_UINT, false},
    {PROTO_ATTACH, "cmd", T_UINT, true},
    {PROTO_ATTACH, "out", T_UINT, false},
    {PROTO_ATTACH, "err", T_UINT, false},
    {PROTO_ATTACH, "window", T_UINT, false},
    {PROTO_ATTACHED, "id", T_UINT, false},
    {PROTO_ATTACHED, "cmd", T_UINT, true},
    {PROTO_ATTACHED, "running", T_BOOL, false},
    {PROTO_ATTACHED, "out", T_UINT, false},
    {PROTO_ATTACHED, "err", T_UINT, false},
    {PROTO_ATTACHED, "in", T_UINT, false},
    {PROTO_ATTACHED, "window", T_UINT, false},
    {PROTO_FORGET, "id", T_UINT, false},
    {PROTO_FORGET, "cmd", T_UINT, true},
    {PROTO_FILE_WRITE, "id", T_UINT, false},
    {PROTO_FILE_WRITE, "path", T_STR, true},
    {PROTO_FILE_WRITE, "mode", T_UINT, false},
    {PROTO_FILE_WRITE, "append", T_BOOL, false},
    {PROTO_FILE_WRITE, "mkdirs", T_BOOL, false},
    {PROTO_FILE_WRITE, "size", T_UINT, false},
    {PROTO_FILE_READ, "id", T_UINT, false},
    {PROTO_FILE_READ, "path", T_STR, true},
    {PROTO_FILE_READ, "off", T_UINT, false},
    {PROTO_FILE_READ, "len", T_UINT, false},
    {PROTO_FILE_READ, "window", T_UINT, false},
    {PROTO_FILE_READ, "zstd", T_BOOL, false},
    {PROTO_FILE_OPENED, "id", T_UINT, false},
    {PROTO_FILE_OPENED, "chan", T_UINT, true},
    {PROTO_FILE_OPENED, "size", T_UINT, false},
    {PROTO_FILE_OPENED, "mode", T_UINT, false},
    {PROTO_FILE_OPENED, "mtime", T_INT, false},
    {PROTO_FILE_OPENED, "window", T_UINT, false},
    {PROTO_FILE_OPENED, "zstd", T_BOOL, false},
    {PROTO_DATA, "off", T_UINT, false},
    {PROTO_DATA, "raw_len", T_UINT, false},
    {PROTO_DATA, "data", T_BIN, false},
    {PROTO_FILE_DONE, "id", T_UINT, false},
    {PROTO_FILE_DONE, "size", T_UINT, true},
    {PROTO_STAT, "id", T_UINT, false},
    {PROTO_STAT, "path", T_STR, true},
    {PROTO_STAT, "mode", T_UINT, false},
    {PROTO_STAT, "recursive", T_BOOL, false},
    {PROTO_LIST, "path", T_STR, true},
    {PROTO_MKDIR, "path", T_STR, true},
    {PROTO_MKDIR, "mode", T_UINT, false},
    {PROTO_MKDIR, "recursive", T_BOOL, false},
    {PROTO_REMOVE, "path", T_STR, true},
    {PROTO_REMOVE, "recursive", T_BOOL, false},
    {PROTO_STAT_RESULT, "id", T_UINT, false},
    {PROTO_STAT_RESULT, "type", T_UINT, false},
    {PROTO_STAT_RESULT, "size", T_UINT, false},
    {PROTO_STAT_RESULT, "mode", T_UINT, false},
    {PROTO_STAT_RESULT, "uid", T_UINT, false},
    {PROTO_STAT_RESULT, "gid", T_UINT, false},
    {PROTO_STAT_RESULT, "mtime", T_INT, false},
    {PROTO_STAT_RESULT, "link", T_STR, false},
    {PROTO_LIST_RESULT, "id", T_UINT, false},
    {PROTO_LIST_RESULT, "entries", T_ENTRIES, false},
    {PROTO_LIST_RESULT, "more", T_BOOL, false},
    {PROTO_INFO_RESULT, "id", T_UINT, false},
    {PROTO_INFO_RESULT, "version", T_STR, false},
    {PROTO_INFO_RESULT, "hostname", T_STR, false},
    {PROTO_INFO_RESULT, "kernel", T_STR, false},
    {PROTO_INFO_RESULT, "uptime_ms", T_UINT, false},
    {PROTO_INFO_RESULT, "load", T_LOAD, false},
    {PROTO_INFO_RESULT, "mem_total", T_UINT, false},
    {PROTO_INFO_RESULT, "mem_avail", T_UINT, false},
    {PROTO_INFO_RESULT, "ncpus", T_UINT, false},
    {PROTO_INFO_RESULT, "commands", T_UINT, false},
    {PROTO_SHUTDOWN, "id", T_UINT, false},
    {PROTO_SHUTDOWN, "reboot", T_BOOL, false},
    {PROTO_FIXUP, "id", T_UINT, false},
    {PROTO_FIXUP, "time_ns", T_INT, false},
    {PROTO_FIXUP, "entropy", T_BIN, false},
    {PROTO_FIXUP, "hostname", T_STR, false},
    {PROTO_FIXUP, "root", T_STR, false},
    {PROTO_FIXUP, "rootfstype", T_STR, false},
};

/* Write the required keys of a valid body of type, except skip; reserve
 * extra more map entries for the caller. */
static void mp_required(struct mp *b, uint16_t type, const char *skip, unsigned extra)
{
	unsigned n = extra;

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (keys[i].type == type && keys[i].req && (!skip || strcmp(skip, keys[i].key)))
			n++;
	mp_map(b, n);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const struct key *k = &keys[i];

		if (k->type != type || !k->req || (skip && !strcmp(skip, k->key)))
			continue;
		mp_str(b, k->key);
		switch (k->kind) {
		case T_UINT:
		case T_INT:
			mp_uint(b, 1); /* in range for every required integer */
			break;
		case T_STR:
			mp_str(b, "/tmp/x");
			break;
		case T_STRV:
			mp_arr(b, 1);
			mp_str(b, "true");
			break;
		default:
			ck_abort_msg("no sample for a required %s", k->key);
		}
	}
}

enum wrong { W_NIL, W_TRUE, W_UINT, W_NEG, W_FLOAT, W_STR, W_BIN, W_ARR, W_MAP, W_EXT, W_N };

static void mp_wrong(struct mp *b, enum wrong w)
{
	switch (w) {
	case W_NIL:
		mp_byte(b, 0xc0);
		break;
	case W_TRUE:
		mp_bool(b, true);
		break;
	case W_UINT:
		mp_uint(b, 1);
		break;
	case W_NEG:
		mp_int(b, -1);
		break;
	case W_FLOAT:
		mp_f64(b, 1.5);
		break;
	case W_STR:
		mp_str(b, "s");
		break;
	case W_BIN:
		mp_bin(b, "b", 1);
		break;
	case W_ARR:
		mp_arr(b, 1);
		mp_uint(b, 1);
		break;
	case W_MAP:
		mp_map(b, 1);
		mp_str(b, "k");
		mp_uint(b, 1);
		break;
	case W_EXT:
		mp_byte(b, 0xd4);
		mp_byte(b, 1);
		mp_byte(b, 2);
		break;
	default:
		break;
	}
}

/* Whether a value written as w is the right msgpack type for kind k. */
static bool right_type(enum tk k, enum wrong w)
{
	switch (k) {
	case T_BOOL:
		return w == W_TRUE;
	case T_UINT:
		return w == W_UINT;
	case T_INT:
		return w == W_UINT || w == W_NEG;
	case T_STR:
		return w == W_STR;
	case T_BIN:
		return w == W_BIN;
	case T_STRV:
	case T_LOAD:
	case T_ENTRIES:
		return false; /* W_ARR holds an int: never a valid element */
	}
	return false;
}

START_TEST(test_required_bodies_of_the_key_table_decode)
{
	for (int i = 0; i < NTYPES; i++) {
		uint16_t t = all_types[i];
		struct mp b = {0};

		mp_required(&b, t, NULL, 0);
		ck_assert_msg(verdict(t, on_channel(t) ? 1 : 0, &b) == 0, "%s",
			      proto_type_to_string(t));
		mp_free(&b);
	}
}
END_TEST

START_TEST(test_decode_rejects_wrong_field_types)
{
	const struct key *k = &keys[_i];

	for (enum wrong w = 0; w < W_N; w++) {
		struct mp b = {0};

		if (right_type(k->kind, w))
			continue;
		mp_required(&b, k->type, k->key, 1);
		mp_str(&b, k->key);
		mp_wrong(&b, w);
		ck_assert_msg(verdict(k->type, 1, &b) == -EBADMSG, "%s.%s as wrong type %d",
			      proto_type_to_string(k->type), k->key, w);
		mp_free(&b);
	}
}
END_TEST

START_TEST(test_decode_rejects_missing_required_field)
{
	const struct key *k = &keys[_i];
	struct mp b = {0};

	if (!k->req)
		return;
	mp_required(&b, k->type, k->key, 0);
	ck_assert_msg(verdict(k->type, 1, &b) == -EBADMSG, "%s without %s",
		      proto_type_to_string(k->type), k->key);
	mp_free(&b);
}
END_TEST

START_TEST(test_decode_rejects_duplicate_keys)
{
	const struct key *k = &keys[_i];
	struct mp b = {0};

	if (k->kind != T_UINT || k->req)
		return;
	mp_required(&b, k->type, NULL, 2);
	mp_str(&b, k->key);
	mp_uint(&b, 0);
	mp_str(&b, k->key);
	mp_uint(&b, 0);
	ck_assert_msg(verdict(k->type, 1, &b) == -EBADMSG, "%s: %s twice",
		      proto_type_to_string(k->type), k->key);
	mp_free(&b);
}
END_TEST

START_TEST(test_decode_ignores_unknown_fields)
{
	uint16_t t = all_types[_i];
	struct proto_msg plain, extra;
	struct mp a = {0}, b = {0};

	mp_required(&a, t, NULL, 0);
	mp_required(&b, t, NULL, 9);
	mp_str(&b, "zz_nil");
	mp_byte(&b, 0xc0);
	mp_str(&b, "zz_float");
	mp_f64(&b, -2.5);
	mp_str(&b, "zz_ext");
	mp_wrong(&b, W_EXT);
	mp_str(&b, "zz_bin");
	mp_bin(&b, "\0\0", 2);
	mp_str(&b, "zz_map");
	mp_map(&b, 1);
	mp_uint(&b, 3); /* a non-string key, but inside an unknown value */
	mp_arr(&b, 2);
	mp_bool(&b, false);
	mp_str(&b, "x");
	mp_str(&b, "zz_dup");
	mp_uint(&b, 1);
	mp_str(&b, "zz_dup");
	mp_str(&b, "again");
	mp_str(&b, "ID"); /* keys are case sensitive */
	mp_str(&b, "not an int");
	mp_str(&b, "");
	mp_uint(&b, 0);
	ck_assert_int_eq(decode_as(t, 1, &a, &plain), 0);
	ck_assert_int_eq(decode_as(t, 1, &b, &extra), 0);
	assert_msg_same(&plain, &extra);
	proto_msg_release(&plain);
	proto_msg_release(&extra);
	mp_free(&a);
	mp_free(&b);
}
END_TEST

START_TEST(test_empty_body_is_allowed_only_when_every_field_is_optional)
{
	uint16_t t = all_types[_i];
	bool optional = true;
	struct mp empty = {0}, emptymap = {0};
	int want;

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (keys[i].type == t && keys[i].req)
			optional = false;
	want = optional ? 0 : -EBADMSG;
	mp_map(&emptymap, 0);
	ck_assert_msg(verdict(t, 1, &empty) == want, "%s", proto_type_to_string(t));
	ck_assert_msg(verdict(t, 1, &emptymap) == want, "%s", proto_type_to_string(t));
	mp_free(&emptymap);
}
END_TEST

START_TEST(test_decode_rejects_channel_frames_on_channel_zero)
{
	uint16_t t = all_types[_i];
	struct proto_msg m;
	struct proto_buf b;
	struct mp body = {0};

	mp_required(&body, t, NULL, 0);
	ck_assert_int_eq(verdict(t, 0, &body), on_channel(t) ? -EBADMSG : 0);
	fill_full(t, &m);
	m.channel = 0;
	proto_buf_init(&b);
	ck_assert_int_eq(proto_encode(&m, &b), on_channel(t) ? -EINVAL : 0);
	proto_buf_release(&b);
	mp_free(&body);
}
END_TEST

START_TEST(test_decode_rejects_non_map_bodies_and_trailing_bytes)
{
	static const char *const bodies[] = {
	    "\x90",		  /* [] */
	    "\xa2id",		  /* "id" */
	    "\x01",		  /* 1 */
	    "\xc0",		  /* nil */
	    "\x80\xc0",		  /* {} nil */
	    "\x81\xa2id\x01\x80", /* {"id":1} {} */
	    "\x81\x01\x02",	  /* {1: 2} */
	    "\x81\xc4\x02id\x01", /* {bin "id": 1} */
	    "\x81\xa2id",	  /* truncated */
	    "\x82\xa2id\x01",	  /* truncated */
	    "\x81\xa2id\xcd\x01", /* truncated uint16 */
	    "\x81\xa1x\xdb\x00\x00\x00\x09",
	    "\x81\xa1x\xc1", /* never used byte */
	};
	static const size_t lens[] = {1, 3, 1, 1, 2, 6, 3, 6, 4, 5, 6, 8, 4};

	for (size_t i = 0; i < ARRAY_SIZE(bodies); i++) {
		struct mp b = {0};

		mp_raw(&b, bodies[i], lens[i]);
		ck_assert_msg(verdict(PROTO_PING, 0, &b) == -EBADMSG, "body %zu", i);
		mp_free(&b);
	}
}
END_TEST

START_TEST(test_decode_rejects_container_counts_the_body_cannot_hold)
{
	static const char *const bodies[] = {
	    "\xdf\xff\xff\xff\xff",		 /* map32 of 4G pairs */
	    "\x81\xa1x\xdd\xff\xff\xff\xff\x01", /* array32 of 4G */
	    "\x81\xa1x\xdc\x00\x03\x01\x02",	 /* array16 of 3, 2 present */
	    "\x81\xa1x\xc6\xff\xff\xff\xf0",	 /* bin32 of 4G */
	    "\x81\xa1x\xc9\x00\x00\x00\x10\x01", /* ext32 past the end */
	};
	static const size_t lens[] = {5, 9, 8, 8, 9};

	for (size_t i = 0; i < ARRAY_SIZE(bodies); i++) {
		struct mp b = {0};

		mp_raw(&b, bodies[i], lens[i]);
		ck_assert_msg(verdict(PROTO_PING, 0, &b) == -EBADMSG, "body %zu", i);
		mp_free(&b);
	}
}
END_TEST

START_TEST(test_decode_caps_nesting_depth)
{
	struct mp ok = {0}, deep = {0}, huge = {0};

	/* the body map is level 1: seven arrays more reach the limit of 8 */
	mp_map(&ok, 1);
	mp_str(&ok, "x");
	for (int i = 0; i < PROTO_MAX_DEPTH - 1; i++)
		mp_arr(&ok, 1);
	mp_uint(&ok, 1);
	ck_assert_int_eq(verdict(PROTO_PING, 0, &ok), 0);
	mp_map(&deep, 1);
	mp_str(&deep, "x");
	for (int i = 0; i < PROTO_MAX_DEPTH; i++)
		mp_arr(&deep, 1);
	mp_uint(&deep, 1);
	ck_assert_int_eq(verdict(PROTO_PING, 0, &deep), -EBADMSG);
	/* far beyond msgpack-c's own limit of 32 */
	mp_map(&huge, 1);
	mp_str(&huge, "x");
	for (int i = 0; i < 100000; i++)
		mp_arr(&huge, 1);
	mp_uint(&huge, 1);
	ck_assert_int_eq(verdict(PROTO_PING, 0, &huge), -EBADMSG);
	mp_free(&ok);
	mp_free(&deep);
	mp_free(&huge);
}
END_TEST

/* A body of type with one extra key whose value the caller writes. */
static struct mp body_with(uint16_t type, const char *key)
{
	struct mp b = {0};

	mp_required(&b, type, key, 1);
	mp_str(&b, key);
	return b;
}

START_TEST(test_decode_rejects_strings_with_embedded_nul)
{
	struct mp b;

	b = body_with(PROTO_ERROR, "msg");
	mp_strn(&b, "a\0b", 3);
	ck_assert_int_eq(verdict(PROTO_ERROR, 0, &b), -EBADMSG);
	mp_free(&b);
	b = body_with(PROTO_FILE_WRITE, "path");
	mp_strn(&b, "/tmp/a\0/etc/passwd", 18);
	ck_assert_int_eq(verdict(PROTO_FILE_WRITE, 0, &b), -EBADMSG);
	mp_free(&b);
	b = body_with(PROTO_EXEC, "argv");
	mp_arr(&b, 2);
	mp_str(&b, "/bin/ls");
	mp_strn(&b, "-l\0", 3);
	ck_assert_int_eq(verdict(PROTO_EXEC, 0, &b), -EBADMSG);
	mp_free(&b);
	b = body_with(PROTO_LIST_RESULT, "entries");
	mp_arr(&b, 1);
	mp_map(&b, 1);
	mp_str(&b, "name");
	mp_strn(&b, "\0", 1);
	ck_assert_int_eq(verdict(PROTO_LIST_RESULT, 0, &b), -EBADMSG);
	mp_free(&b);
}
END_TEST

/* A string of n bytes as the value of key in a body of type. */
static int verdict_strlen(uint16_t type, const char *key, size_t n, char fill)
{
	_cleanup_free_ char *s = malloc(n + 1);
	struct mp b = body_with(type, key);
	int r;

	ck_assert_ptr_nonnull(s);
	memset(s, fill, n);
	s[0] = '/';
	mp_strn(&b, s, n);
	r = verdict(type, 1, &b);
	mp_free(&b);
	return r;
}

START_TEST(test_decode_rejects_over_long_strings)
{
	ck_assert_int_eq(verdict_strlen(PROTO_ERROR, "msg", PROTO_MAX_STR, 'm'), 0);
	ck_assert_int_eq(verdict_strlen(PROTO_ERROR, "msg", PROTO_MAX_STR + 1, 'm'), -EBADMSG);
	ck_assert_int_eq(verdict_strlen(PROTO_EXEC, "shell", PROTO_MAX_STR + 1, 's'), -EBADMSG);
	ck_assert_int_eq(verdict_strlen(PROTO_FILE_READ, "path", PROTO_MAX_PATH, 'p'), 0);
	ck_assert_int_eq(verdict_strlen(PROTO_FILE_READ, "path", PROTO_MAX_PATH + 1, 'p'),
			 -EBADMSG);
	ck_assert_int_eq(verdict_strlen(PROTO_STAT_RESULT, "link", PROTO_MAX_PATH + 1, 'l'),
			 -EBADMSG);
	ck_assert_int_eq(verdict_strlen(PROTO_FIXUP, "hostname", PROTO_MAX_HOSTNAME, 'h'), 0);
	ck_assert_int_eq(verdict_strlen(PROTO_FIXUP, "hostname", PROTO_MAX_HOSTNAME + 1, 'h'),
			 -EBADMSG);
	ck_assert_int_eq(verdict_strlen(PROTO_INFO_RESULT, "hostname", PROTO_MAX_HOSTNAME + 1, 'h'),
			 -EBADMSG);
	ck_assert_int_eq(verdict_strlen(PROTO_FILE_READ, "path", 0, 'p'), -EBADMSG);
}
END_TEST

START_TEST(test_fixup_root_and_rootfstype_are_bounded)
{
	struct mp b;

	ck_assert_int_eq(verdict_strlen(PROTO_FIXUP, "root", 1, 'r'), 0);
	ck_assert_int_eq(verdict_strlen(PROTO_FIXUP, "root", PROTO_MAX_ROOTDEV, 'r'), 0);
	ck_assert_int_eq(verdict_strlen(PROTO_FIXUP, "root", PROTO_MAX_ROOTDEV + 1, 'r'), -EBADMSG);
	ck_assert_int_eq(verdict_strlen(PROTO_FIXUP, "root", 0, 'r'), -EBADMSG);
	ck_assert_int_eq(verdict_strlen(PROTO_FIXUP, "rootfstype", PROTO_MAX_FSTYPE, 'f'), 0);
	ck_assert_int_eq(verdict_strlen(PROTO_FIXUP, "rootfstype", PROTO_MAX_FSTYPE + 1, 'f'),
			 -EBADMSG);
	ck_assert_int_eq(verdict_strlen(PROTO_FIXUP, "rootfstype", 0, 'f'), -EBADMSG);
	b = body_with(PROTO_FIXUP, "root");
	mp_strn(&b, "/dev/vda\0/x", 11);
	ck_assert_int_eq(verdict(PROTO_FIXUP, 0, &b), -EBADMSG);
	mp_free(&b);
	b = body_with(PROTO_FIXUP, "rootfstype");
	mp_strn(&b, "ext4\0", 5);
	ck_assert_int_eq(verdict(PROTO_FIXUP, 0, &b), -EBADMSG);
	mp_free(&b);
}
END_TEST

/* The wire form of a zygote's FIXUP, byte for byte, and its absent parts
 * decoding to NULL ("ext4" is the agent's default, not the decoder's). */
START_TEST(test_fixup_with_root_has_a_stable_encoding)
{
	static const uint8_t want[] = {
	    0x82, 0xa2, 'i', 'd', 0x07, 0xa4, 'r', 'o', 'o', 't',
	    0xa8, '/',	'd', 'e', 'v',	'/',  'v', 'd', 'a',
	};
	struct proto_msg m = {.type = PROTO_FIXUP}, d;
	struct proto_buf b;
	size_t used;

	m.u.fixup.id = 7;
	m.u.fixup.root = "/dev/vda";
	proto_buf_init(&b);
	encode_ok(&m, &b);
	ck_assert_uint_eq(b.len, PROTO_HEADER_SIZE + sizeof(want));
	ck_assert_mem_eq(b.data + PROTO_HEADER_SIZE, want, sizeof(want));
	ck_assert_int_eq(proto_decode_frame(b.data, b.len, &d, &used), 0);
	ck_assert_str_eq(d.u.fixup.root, "/dev/vda");
	ck_assert_ptr_null(d.u.fixup.rootfstype);
	ck_assert_ptr_null(d.u.fixup.hostname);
	ck_assert_uint_eq(d.u.fixup.entropy.len, 0);
	proto_msg_release(&d);
	proto_buf_release(&b);
}
END_TEST

static int verdict_strv(uint16_t type, const char *key, size_t n, size_t len)
{
	_cleanup_free_ char *s = malloc(len + 1);
	struct mp b = body_with(type, key);
	int r;

	ck_assert_ptr_nonnull(s);
	memset(s, 'a', len);
	mp_arr(&b, n);
	for (size_t i = 0; i < n; i++)
		mp_strn(&b, s, len);
	r = verdict(type, 1, &b);
	mp_free(&b);
	return r;
}

static int verdict_bin(uint16_t type, const char *key, size_t n)
{
	_cleanup_free_ uint8_t *d = calloc(1, n + 1);
	struct mp b = body_with(type, key);
	int r;

	mp_bin(&b, d, n);
	r = verdict(type, 1, &b);
	mp_free(&b);
	return r;
}

START_TEST(test_decode_rejects_over_long_arrays_and_chunks)
{
	ck_assert_int_eq(verdict_strv(PROTO_EXEC, "argv", PROTO_MAX_ARGS, 1), 0);
	ck_assert_int_eq(verdict_strv(PROTO_EXEC, "argv", PROTO_MAX_ARGS + 1, 1), -EBADMSG);
	ck_assert_int_eq(verdict_strv(PROTO_EXEC, "argv", 1, PROTO_MAX_STR + 1), -EBADMSG);
	ck_assert_int_eq(verdict_strv(PROTO_HELLO, "caps", PROTO_MAX_CAPS, 3), 0);
	ck_assert_int_eq(verdict_strv(PROTO_HELLO, "caps", PROTO_MAX_CAPS + 1, 3), -EBADMSG);
	ck_assert_int_eq(verdict_bin(PROTO_OUTPUT, "data", PROTO_MAX_CHUNK), 0);
	ck_assert_int_eq(verdict_bin(PROTO_OUTPUT, "data", PROTO_MAX_CHUNK + 1), -EBADMSG);
	ck_assert_int_eq(verdict_bin(PROTO_STDIN, "data", PROTO_MAX_CHUNK + 1), -EBADMSG);
	ck_assert_int_eq(verdict_bin(PROTO_DATA, "data", PROTO_MAX_CHUNK + 1), -EBADMSG);
	ck_assert_int_eq(verdict_bin(PROTO_FIXUP, "entropy", PROTO_MAX_ENTROPY), 0);
	ck_assert_int_eq(verdict_bin(PROTO_FIXUP, "entropy", PROTO_MAX_ENTROPY + 1), -EBADMSG);
}
END_TEST

START_TEST(test_decode_rejects_too_many_list_entries)
{
	for (int extra = 0; extra <= 1; extra++) {
		struct mp b = body_with(PROTO_LIST_RESULT, "entries");
		uint32_t n = PROTO_MAX_ENTRIES + (uint32_t)extra;

		mp_arr(&b, n);
		for (uint32_t i = 0; i < n; i++) {
			mp_map(&b, 1);
			mp_str(&b, "name");
			mp_str(&b, "f");
		}
		ck_assert_int_eq(verdict(PROTO_LIST_RESULT, 0, &b), extra ? -EBADMSG : 0);
		mp_free(&b);
	}
}
END_TEST

static int verdict_int(uint16_t type, const char *key, int64_t v, bool neg)
{
	struct mp b = body_with(type, key);
	int r;

	if (neg)
		mp_int(&b, v);
	else
		mp_uint(&b, (uint64_t)v);
	r = verdict(type, 1, &b);
	mp_free(&b);
	return r;
}

START_TEST(test_decode_range_checks_integers_into_their_c_types)
{
	static const struct {
		uint16_t type;
		const char *key;
		int64_t v;
		int want;
	} cases[] = {
	    {PROTO_EXEC, "uid", -1, 0},
	    {PROTO_EXEC, "uid", -2, -EBADMSG},
	    {PROTO_EXEC, "uid", INT32_MAX, 0},
	    {PROTO_EXEC, "uid", (int64_t)INT32_MAX + 1, -EBADMSG},
	    {PROTO_EXEC, "rows", 65535, 0},
	    {PROTO_EXEC, "rows", 65536, -EBADMSG},
	    {PROTO_EXEC, "timeout_ms", UINT32_MAX, 0},
	    {PROTO_EXEC, "timeout_ms", (int64_t)UINT32_MAX + 1, -EBADMSG},
	    {PROTO_EXEC, "window", -1, -EBADMSG},
	    {PROTO_OUTPUT, "stream", 0, -EBADMSG},
	    {PROTO_OUTPUT, "stream", 3, -EBADMSG},
	    {PROTO_OUTPUT, "stream", 2, 0},
	    {PROTO_OUTPUT, "off", -1, -EBADMSG},
	    {PROTO_SIGNAL, "sig", 0, -EBADMSG},
	    {PROTO_SIGNAL, "sig", 64, 0},
	    {PROTO_SIGNAL, "sig", 65, -EBADMSG},
	    {PROTO_SIGNAL, "sig", -9, -EBADMSG},
	    {PROTO_SIGNAL, "cmd", 0, -EBADMSG},
	    {PROTO_RESIZE, "rows", 0, -EBADMSG},
	    {PROTO_EXIT, "code", -1, 0},
	    {PROTO_EXIT, "code", -2, -EBADMSG},
	    {PROTO_EXIT, "code", 255, 0},
	    {PROTO_EXIT, "code", 256, -EBADMSG},
	    {PROTO_ERROR, "errno", -1, -EBADMSG},
	    {PROTO_ERROR, "code", 0, -EBADMSG},
	    {PROTO_HELLO, "version", 0, -EBADMSG},
	    {PROTO_FILE_WRITE, "mode", 07777, 0},
	    {PROTO_FILE_WRITE, "mode", 010000, -EBADMSG},
	    {PROTO_FILE_OPENED, "chan", 0, -EBADMSG},
	    {PROTO_FILE_OPENED, "mtime", INT64_MIN, 0},
	    {PROTO_FILE_OPENED, "mtime", INT64_MAX, 0},
	    {PROTO_STAT_RESULT, "type", 255, 0},
	    {PROTO_STAT_RESULT, "type", 256, -EBADMSG},
	    {PROTO_STAT_RESULT, "uid", UINT32_MAX, 0},
	    {PROTO_DATA, "raw_len", PROTO_MAX_CHUNK + 1, -EBADMSG},
	    {PROTO_FIXUP, "time_ns", -1000000000, 0},
	    {PROTO_EXEC_STARTED, "pid", -1, -EBADMSG},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		ck_assert_msg(verdict_int(cases[i].type, cases[i].key, cases[i].v,
					  cases[i].v < 0) == cases[i].want,
			      "%s.%s = %lld", proto_type_to_string(cases[i].type), cases[i].key,
			      (long long)cases[i].v);
}
END_TEST

START_TEST(test_decode_accepts_any_msgpack_integer_width)
{
	/* {"id": int8 5, "uid": int64 -1, "window": uint64 9} */
	static const uint8_t body[] = {
	    0x84, 0xa2, 'i',  'd',  0xd0, 0x05, 0xa3, 'u', 'i', 'd', 0xd3, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0xff, 0xff, 0xff, 0xa6, 'w',	'i',  'n', 'd', 'o', 'w',  0xcf, 0,    0,    0,
	    0,	  0,	0,    0,    9,	  0xa5, 's',  'h', 'e', 'l', 'l',  0xd9, 0x01, 'x'};
	struct mp b = {0};
	struct proto_msg m;

	mp_raw(&b, body, sizeof(body));
	ck_assert_int_eq(decode_as(PROTO_EXEC, 0, &b, &m), 0);
	ck_assert_uint_eq(m.u.exec.id, 5);
	ck_assert_int_eq(m.u.exec.uid, -1);
	ck_assert_uint_eq(m.u.exec.window, 9);
	ck_assert_str_eq(m.u.exec.shell, "x");
	proto_msg_release(&m);
	mp_free(&b);
}
END_TEST

START_TEST(test_decode_enforces_exec_rules)
{
	struct mp b = {0};

	/* both argv and shell */
	mp_map(&b, 2);
	mp_str(&b, "argv");
	mp_arr(&b, 1);
	mp_str(&b, "ls");
	mp_str(&b, "shell");
	mp_str(&b, "ls");
	ck_assert_int_eq(verdict(PROTO_EXEC, 0, &b), -EBADMSG);
	mp_free(&b);
	/* neither (an empty argv is no argv) */
	mp_map(&b, 1);
	mp_str(&b, "argv");
	mp_arr(&b, 0);
	ck_assert_int_eq(verdict(PROTO_EXEC, 0, &b), -EBADMSG);
	mp_free(&b);
	/* empty program name */
	mp_map(&b, 1);
	mp_str(&b, "argv");
	mp_arr(&b, 2);
	mp_str(&b, "");
	mp_str(&b, "x");
	ck_assert_int_eq(verdict(PROTO_EXEC, 0, &b), -EBADMSG);
	mp_free(&b);
	/* env entries need KEY= */
	static const char *const bad_env[] = {"NOEQUALS", "=value"};

	for (size_t i = 0; i < ARRAY_SIZE(bad_env); i++) {
		b = body_with(PROTO_EXEC, "env");
		mp_arr(&b, 2);
		mp_str(&b, "OK=1");
		mp_str(&b, bad_env[i]);
		ck_assert_int_eq(verdict(PROTO_EXEC, 0, &b), -EBADMSG);
		mp_free(&b);
	}
	/* cwd must be absolute */
	b = body_with(PROTO_EXEC, "cwd");
	mp_str(&b, "relative/dir");
	ck_assert_int_eq(verdict(PROTO_EXEC, 0, &b), -EBADMSG);
	mp_free(&b);
}
END_TEST

START_TEST(test_decode_enforces_path_and_data_rules)
{
	static const uint16_t path_types[] = {PROTO_FILE_WRITE, PROTO_FILE_READ, PROTO_STAT,
					      PROTO_LIST,	PROTO_MKDIR,	 PROTO_REMOVE};
	struct mp b;

	for (size_t i = 0; i < ARRAY_SIZE(path_types); i++) {
		b = body_with(path_types[i], "path");
		mp_str(&b, "etc/passwd");
		ck_assert_int_eq(verdict(path_types[i], 0, &b), -EBADMSG);
		mp_free(&b);
	}
	b = body_with(PROTO_LIST_RESULT, "entries");
	mp_arr(&b, 1);
	mp_map(&b, 1);
	mp_str(&b, "name");
	mp_str(&b, "a/b");
	ck_assert_int_eq(verdict(PROTO_LIST_RESULT, 0, &b), -EBADMSG);
	mp_free(&b);
	b = body_with(PROTO_LIST_RESULT, "entries");
	mp_arr(&b, 1);
	mp_map(&b, 1);
	mp_str(&b, "size");
	mp_uint(&b, 1);
	ck_assert_int_eq(verdict(PROTO_LIST_RESULT, 0, &b), -EBADMSG); /* no name */
	mp_free(&b);
	b = body_with(PROTO_STAT_RESULT, "link");
	mp_str(&b, "");
	ck_assert_int_eq(verdict(PROTO_STAT_RESULT, 0, &b), -EBADMSG);
	mp_free(&b);
	b = body_with(PROTO_DATA, "raw_len");
	mp_uint(&b, 100); /* compressed, but no data */
	ck_assert_int_eq(verdict(PROTO_DATA, 1, &b), -EBADMSG);
	mp_free(&b);
	b = body_with(PROTO_INFO_RESULT, "load");
	mp_arr(&b, 2);
	mp_f64(&b, 1);
	mp_f64(&b, 1);
	ck_assert_int_eq(verdict(PROTO_INFO_RESULT, 0, &b), -EBADMSG);
	mp_free(&b);
	b = body_with(PROTO_INFO_RESULT, "load");
	mp_arr(&b, 3);
	mp_f64(&b, 1);
	mp_f64(&b, NAN);
	mp_f64(&b, 1);
	ck_assert_int_eq(verdict(PROTO_INFO_RESULT, 0, &b), -EBADMSG);
	mp_free(&b);
	b = body_with(PROTO_OUTPUT, "off");
	mp_uint(&b, UINT64_MAX);
	ck_assert_int_eq(verdict(PROTO_OUTPUT, 1, &b), 0); /* no data: nothing overflows */
	mp_free(&b);
}
END_TEST

START_TEST(test_decoded_bin_payloads_borrow_from_the_frame)
{
	struct proto_msg m;
	struct proto_buf b;
	size_t used;

	fill_full(PROTO_OUTPUT, &m);
	proto_buf_init(&b);
	encode_ok(&m, &b);
	ck_assert_int_eq(proto_decode_frame(b.data, b.len, &m, &used), 0);
	ck_assert((uintptr_t)m.u.output.data.data >= (uintptr_t)b.data);
	ck_assert((uintptr_t)m.u.output.data.data < (uintptr_t)(b.data + b.len));
	proto_msg_release(&m);
	proto_buf_release(&b);
}
END_TEST

/* ---- errors: the encoder refuses what a peer would reject ---------------- */

START_TEST(test_encode_rejects_messages_a_peer_would_reject)
{
	static const char *const one_null[] = {NULL, NULL};
	static const char *const rel_env[] = {"NOEQ", NULL};
	static char longpath[PROTO_MAX_PATH + 2];
	static struct proto_entry bad_entry = {.name = "a/b"};
	static struct proto_entry nameless = {.name = NULL};
	struct proto_msg cases[26];
	struct proto_buf b;
	int n = 0;

	memset(longpath, 'p', sizeof(longpath) - 1);
	longpath[0] = '/';
#define CASE(t) (fill_full((t), &cases[n]), &cases[n++])
	CASE(PROTO_PING)->type = 99;
	CASE(PROTO_EXEC)->u.exec.shell = "ls";
	CASE(PROTO_EXEC)->u.exec.argv = (struct proto_strv){0};
	CASE(PROTO_EXEC)->u.exec.argv = (struct proto_strv){(const char **)one_null, 1};
	CASE(PROTO_EXEC)->u.exec.env = (struct proto_strv){(const char **)rel_env, 1};
	CASE(PROTO_EXEC)->u.exec.uid = -2;
	CASE(PROTO_EXEC)->u.exec.cwd = "tmp";
	CASE(PROTO_OUTPUT)->u.output.stream = 3;
	CASE(PROTO_OUTPUT)->u.output.data.len = PROTO_MAX_CHUNK + 1;
	CASE(PROTO_STDIN)->u.stdin_data.data.data = NULL;
	CASE(PROTO_FILE_WRITE)->u.file_write.path = NULL;
	CASE(PROTO_FILE_WRITE)->u.file_write.path = "rel";
	CASE(PROTO_FILE_READ)->u.file_read.path = longpath;
	CASE(PROTO_INFO_RESULT)->u.info.load[1] = NAN;
	CASE(PROTO_INFO_RESULT)->u.info.load[2] = INFINITY;
	CASE(PROTO_LIST_RESULT)->u.list.entries = NULL;
	CASE(PROTO_LIST_RESULT)->u.list = (struct proto_list_result){1, &bad_entry, 1, false};
	CASE(PROTO_LIST_RESULT)->u.list = (struct proto_list_result){1, &nameless, 1, false};
	CASE(PROTO_HELLO)->u.hello.caps.n = PROTO_MAX_CAPS + 1;
	CASE(PROTO_ERROR)->u.error.code = 0;
	CASE(PROTO_FIXUP)->u.fixup.entropy.len = PROTO_MAX_ENTROPY + 1;
	CASE(PROTO_FIXUP)->u.fixup.root = "";
	CASE(PROTO_FIXUP)->u.fixup.rootfstype = "a-file-system-name-of-32-bytes!!";
	CASE(PROTO_SIGNAL)->u.signal.signal = 0;
	CASE(PROTO_RESIZE)->u.resize.cols = 0;
	CASE(PROTO_DATA)->u.data.data.len = 0;
#undef CASE
	ck_assert_int_eq(n, (int)ARRAY_SIZE(cases));
	proto_buf_init(&b);
	encode_ok(&(struct proto_msg){.type = PROTO_PING, .u.idonly.id = 1}, &b);
	for (int i = 0; i < n; i++) {
		size_t before = b.len;

		ck_assert_msg(proto_encode(&cases[i], &b) == -EINVAL, "case %d (%s)", i,
			      proto_type_to_string(cases[i].type));
		ck_assert_uint_eq(b.len, before);
	}
	proto_buf_release(&b);
}
END_TEST

START_TEST(test_encode_rejects_a_body_over_the_hard_limit)
{
	static struct proto_entry e[PROTO_MAX_ENTRIES];
	static char name[300];
	struct proto_msg m = {.type = PROTO_LIST_RESULT};
	struct proto_buf b;

	memset(name, 'n', sizeof(name) - 1);
	for (size_t i = 0; i < ARRAY_SIZE(e); i++)
		e[i] = (struct proto_entry){.name = name, .type = PROTO_FT_FILE, .size = i};
	m.u.list = (struct proto_list_result){1, e, PROTO_MAX_ENTRIES, false};
	proto_buf_init(&b);
	ck_assert_int_eq(proto_encode(&m, &b), -EMSGSIZE);
	ck_assert_uint_eq(b.len, 0);
	m.u.list.n = 1000;
	encode_ok(&m, &b);
	proto_buf_release(&b);
}
END_TEST

/* ---- credit ---------------------------------------------------------------- */

START_TEST(test_credit_starts_with_the_full_window)
{
	struct proto_credit c;

	proto_credit_init(&c, 0, 1000);
	ck_assert_uint_eq(proto_credit_avail(&c), 1000);
	proto_credit_init(&c, 0, 0);
	ck_assert_uint_eq(proto_credit_avail(&c), PROTO_DEFAULT_WINDOW);
	proto_credit_init(&c, 1ULL << 40, 10);
	ck_assert_uint_eq(c.sent, 1ULL << 40);
	ck_assert_uint_eq(c.acked, 1ULL << 40);
	ck_assert_uint_eq(proto_credit_avail(&c), 10);
}
END_TEST

START_TEST(test_credit_consume_beyond_the_credit_is_eproto)
{
	struct proto_credit c;

	proto_credit_init(&c, 0, 100);
	ck_assert_int_eq(proto_credit_consume(&c, 60), 0);
	ck_assert_uint_eq(proto_credit_avail(&c), 40);
	ck_assert_int_eq(proto_credit_consume(&c, 41), -EPROTO);
	ck_assert_uint_eq(c.sent, 60);
	ck_assert_int_eq(proto_credit_consume(&c, 40), 0);
	ck_assert_uint_eq(proto_credit_avail(&c), 0);
	ck_assert_int_eq(proto_credit_consume(&c, 1), -EPROTO);
	ck_assert_int_eq(proto_credit_consume(&c, 0), 0);
}
END_TEST

START_TEST(test_credit_ack_returns_credit)
{
	struct proto_credit c;

	proto_credit_init(&c, 500, 100);
	ck_assert_int_eq(proto_credit_consume(&c, 100), 0);
	ck_assert_int_eq(proto_credit_ack(&c, 530), 0);
	ck_assert_uint_eq(c.acked, 530);
	ck_assert_uint_eq(proto_credit_avail(&c), 30);
	ck_assert_int_eq(proto_credit_ack(&c, 600), 0);
	ck_assert_uint_eq(proto_credit_avail(&c), 100);
}
END_TEST

START_TEST(test_credit_ignores_backwards_acks)
{
	struct proto_credit c;

	proto_credit_init(&c, 0, 100);
	ck_assert_int_eq(proto_credit_consume(&c, 80), 0);
	ck_assert_int_eq(proto_credit_ack(&c, 50), 0);
	ck_assert_int_eq(proto_credit_ack(&c, 20), 0);
	ck_assert_uint_eq(c.acked, 50);
	ck_assert_int_eq(proto_credit_ack(&c, 50), 0);
	ck_assert_uint_eq(proto_credit_avail(&c), 70);
	ck_assert_int_eq(proto_credit_ack(&c, PROTO_ACK_NONE), 0);
	ck_assert_uint_eq(c.acked, 50);
}
END_TEST

START_TEST(test_credit_rejects_acks_beyond_what_was_sent)
{
	struct proto_credit c;

	proto_credit_init(&c, 0, 100);
	ck_assert_int_eq(proto_credit_consume(&c, 10), 0);
	ck_assert_int_eq(proto_credit_ack(&c, 11), -EPROTO);
	ck_assert_uint_eq(c.acked, 0);
	ck_assert_int_eq(proto_credit_ack(&c, 10), 0);
	ck_assert_uint_eq(proto_credit_avail(&c), 100);
}
END_TEST

/* ---- zstd ------------------------------------------------------------------ */

static uint8_t *text(size_t n)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog; ";
	uint8_t *p = malloc(n);

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)words[i % (sizeof(words) - 1)];
	return p;
}

static uint8_t *noise(size_t n)
{
	uint8_t *p = malloc(n);
	uint32_t s = 7;

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)lcg(&s);
	return p;
}

START_TEST(test_zstd_compresses_when_it_pays)
{
	const size_t n = 100000;
	_cleanup_free_ uint8_t *src = text(n), *z = malloc(n), *out = malloc(n);
	long c;

	c = proto_zstd_compress(src, n, z, n);
	ck_assert_int_gt(c, 0);
	ck_assert_int_le(c, (long)(n - n / 8));
	ck_assert_int_eq(proto_zstd_decompress(z, (size_t)c, out, n), 0);
	ck_assert_mem_eq(out, src, n);
	/* a tight buffer (srclen - srclen/8) is enough when it pays */
	ck_assert_int_eq(proto_zstd_compress(src, n, z, n - n / 8), c);
}
END_TEST

START_TEST(test_zstd_does_not_pay_on_random_bytes)
{
	const size_t n = 65536;
	_cleanup_free_ uint8_t *src = noise(n), *z = malloc(2 * n);

	ck_assert_int_eq(proto_zstd_compress(src, n, z, 2 * n), 0);
	ck_assert_int_eq(proto_zstd_compress(src, n, z, n - n / 8), 0);
	ck_assert_int_eq(proto_zstd_compress(src, 0, z, 2 * n), 0);
	ck_assert_int_eq(proto_zstd_compress(src, 3, z, 2 * n), 0);
	ck_assert_int_eq(proto_zstd_compress(src, PROTO_MAX_CHUNK + 1, z, 2 * n), -EINVAL);
}
END_TEST

START_TEST(test_zstd_does_not_pay_when_dst_is_too_small)
{
	const size_t n = 100000;
	_cleanup_free_ uint8_t *src = text(n), *z = malloc(n);

	ck_assert_int_eq(proto_zstd_compress(src, n, z, 8), 0);
}
END_TEST

START_TEST(test_zstd_rejects_corrupt_input)
{
	const size_t n = 100000;
	_cleanup_free_ uint8_t *src = text(n), *z = malloc(n + 16), *out = malloc(n),
			       *junk = noise(4096);
	long c = proto_zstd_compress(src, n, z, n);

	ck_assert_int_gt(c, 0);
	ck_assert_int_eq(proto_zstd_decompress(junk, 4096, out, n), -EBADMSG);
	ck_assert_int_eq(proto_zstd_decompress(z, (size_t)c - 1, out, n), -EBADMSG);
	ck_assert_int_eq(proto_zstd_decompress(z, 0, out, n), -EBADMSG);
	z[c] = 0; /* trailing byte */
	ck_assert_int_eq(proto_zstd_decompress(z, (size_t)c + 1, out, n), -EBADMSG);
	z[0] ^= 0xff; /* magic */
	ck_assert_int_eq(proto_zstd_decompress(z, (size_t)c, out, n), -EBADMSG);
}
END_TEST

START_TEST(test_zstd_rejects_a_wrong_raw_len)
{
	const size_t n = 100000;
	_cleanup_free_ uint8_t *src = text(n), *z = malloc(n), *out = malloc(n + 1);
	long c = proto_zstd_compress(src, n, z, n);

	ck_assert_int_gt(c, 0);
	ck_assert_int_eq(proto_zstd_decompress(z, (size_t)c, out, n - 1), -EBADMSG);
	ck_assert_int_eq(proto_zstd_decompress(z, (size_t)c, out, n + 1), -EBADMSG);
	ck_assert_int_eq(proto_zstd_decompress(z, (size_t)c, out, 0), -EBADMSG);
}
END_TEST

START_TEST(test_zstd_rejects_frames_without_a_content_size_or_too_big)
{
	const size_t big = PROTO_MAX_CHUNK + 1;
	_cleanup_free_ uint8_t *src = text(big), *z = malloc(big), *out = malloc(big);
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_outBuffer o = {z, big, 0};
	ZSTD_inBuffer in = {src, 1000, 0};
	size_t c;

	ck_assert_ptr_nonnull(cc);
	ck_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0)));
	ck_assert(!ZSTD_isError(ZSTD_compressStream2(cc, &o, &in, ZSTD_e_end)));
	ck_assert_int_eq(proto_zstd_decompress(z, o.pos, out, 1000), -EBADMSG);
	ZSTD_freeCCtx(cc);
	c = ZSTD_compress(z, big, src, big, 1);
	ck_assert(!ZSTD_isError(c));
	ck_assert_int_eq(proto_zstd_decompress(z, c, out, big), -EBADMSG);
}
END_TEST

/* ---- suite ----------------------------------------------------------------- */

Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *core = tcase_create("core"), *frames = tcase_create("frames"),
	      *errors = tcase_create("errors"), *limits = tcase_create("limits"),
	      *credit = tcase_create("credit"), *zstd = tcase_create("zstd");

	tcase_add_loop_test(core, test_every_type_round_trips_with_all_fields, 0, NTYPES);
	tcase_add_loop_test(core, test_every_type_round_trips_with_optional_fields_absent, 0,
			    NTYPES);
	tcase_add_loop_test(core, test_absent_optional_fields_are_left_out_of_the_body, 0, NTYPES);
	tcase_add_test(core, test_all_types_lists_every_frame_type);
	tcase_add_test(core, test_exec_with_shell_round_trips);
	tcase_add_test(core, test_hello_zero_max_body_decodes_as_the_hard_limit);
	tcase_add_test(core, test_ping_frame_matches_documented_bytes);
	tcase_add_test(core, test_frames_concatenate_in_one_buffer);
	tcase_add_test(core, test_msg_id_is_zero_for_types_without_id);
	tcase_add_test(core, test_names_cover_every_type_and_code);
	tcase_add_test(core, test_msg_release_is_safe_twice_and_on_zeroed_msg);
	tcase_add_test(core, test_buf_consume_drops_a_prefix);
	tcase_add_test(core, test_encode_error_negates_errno_and_cuts_long_messages);
	tcase_add_test(core, test_decoded_bin_payloads_borrow_from_the_frame);
	tcase_add_test(core, test_fixup_with_root_has_a_stable_encoding);
	suite_add_tcase(s, core);

	tcase_add_test(frames, test_header_parse_reads_little_endian_fields);
	tcase_add_loop_test(frames, test_decode_frame_needs_more_bytes_for_every_prefix, 0, NTYPES);
	tcase_add_loop_test(frames, test_reader_waits_for_every_prefix_of_a_frame, 0, NTYPES);
	tcase_add_loop_test(frames, test_reader_yields_frames_fed_in_random_pieces, 0, 8);
	tcase_add_test(frames, test_decode_rejects_wrong_magic);
	tcase_add_test(frames, test_reader_resyncs_after_garbage);
	tcase_add_test(frames, test_reader_keeps_a_partial_magic_at_the_end_of_garbage);
	tcase_add_test(frames, test_reader_drops_garbage_without_magic_at_once);
	tcase_add_test(frames, test_reader_skips_an_undecodable_frame_and_reports_its_identity);
	tcase_add_test(frames, test_decode_rejects_unknown_frame_type_with_type_reported);
	tcase_add_test(frames, test_reader_reset_forgets_buffered_bytes);
	suite_add_tcase(s, frames);

	tcase_add_test(errors, test_required_bodies_of_the_key_table_decode);
	tcase_add_loop_test(errors, test_decode_rejects_wrong_field_types, 0, ARRAY_SIZE(keys));
	tcase_add_loop_test(errors, test_decode_rejects_missing_required_field, 0,
			    ARRAY_SIZE(keys));
	tcase_add_loop_test(errors, test_decode_rejects_duplicate_keys, 0, ARRAY_SIZE(keys));
	tcase_add_loop_test(errors, test_decode_ignores_unknown_fields, 0, NTYPES);
	tcase_add_loop_test(errors, test_empty_body_is_allowed_only_when_every_field_is_optional, 0,
			    NTYPES);
	tcase_add_loop_test(errors, test_decode_rejects_channel_frames_on_channel_zero, 0, NTYPES);
	tcase_add_test(errors, test_decode_rejects_non_map_bodies_and_trailing_bytes);
	tcase_add_test(errors, test_decode_rejects_strings_with_embedded_nul);
	tcase_add_test(errors, test_decode_range_checks_integers_into_their_c_types);
	tcase_add_test(errors, test_decode_accepts_any_msgpack_integer_width);
	tcase_add_test(errors, test_decode_enforces_exec_rules);
	tcase_add_test(errors, test_decode_enforces_path_and_data_rules);
	tcase_add_test(errors, test_encode_rejects_messages_a_peer_would_reject);
	suite_add_tcase(s, errors);

	tcase_add_test(limits, test_decode_rejects_oversized_frame);
	tcase_add_test(limits,
		       test_reader_reports_oversized_frame_at_its_header_and_drops_its_body);
	tcase_add_test(limits, test_reader_honours_a_smaller_max_body);
	tcase_add_test(limits, test_reader_space_stays_bounded_by_one_frame);
	tcase_add_test(limits, test_decode_rejects_container_counts_the_body_cannot_hold);
	tcase_add_test(limits, test_decode_caps_nesting_depth);
	tcase_add_test(limits, test_decode_rejects_over_long_strings);
	tcase_add_test(limits, test_fixup_root_and_rootfstype_are_bounded);
	tcase_add_test(limits, test_decode_rejects_over_long_arrays_and_chunks);
	tcase_add_test(limits, test_decode_rejects_too_many_list_entries);
	tcase_add_test(limits, test_encode_rejects_a_body_over_the_hard_limit);
	tcase_set_timeout(limits, 60);
	suite_add_tcase(s, limits);

	tcase_add_test(credit, test_credit_starts_with_the_full_window);
	tcase_add_test(credit, test_credit_consume_beyond_the_credit_is_eproto);
	tcase_add_test(credit, test_credit_ack_returns_credit);
	tcase_add_test(credit, test_credit_ignores_backwards_acks);
	tcase_add_test(credit, test_credit_rejects_acks_beyond_what_was_sent);
	suite_add_tcase(s, credit);

	tcase_add_test(zstd, test_zstd_compresses_when_it_pays);
	tcase_add_test(zstd, test_zstd_does_not_pay_on_random_bytes);
	tcase_add_test(zstd, test_zstd_does_not_pay_when_dst_is_too_small);
	tcase_add_test(zstd, test_zstd_rejects_corrupt_input);
	tcase_add_test(zstd, test_zstd_rejects_a_wrong_raw_len);
	tcase_add_test(zstd, test_zstd_rejects_frames_without_a_content_size_or_too_big);
	suite_add_tcase(s, zstd);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(proto_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
