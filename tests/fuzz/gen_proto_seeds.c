/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gen_proto_seeds.c - writes the seed corpus of fuzz_proto into DIR
 * (`make fuzz-seeds` regenerates tests/fuzz/corpus/proto/). Each seed is a
 * control byte followed by a payload (see fuzz_proto.c):
 *   body-<type>     ctl = type, payload = the body of a full message of type
 *   frame-<type>    one whole frame
 *   stream-all      one frame of every type, back to back
 *   stream-garbage  garbage, a frame, a bad body, an unknown type, a frame
 *   stream-oversize an oversized header, part of its body, then a frame
 *   data-zstd       a DATA frame whose chunk is zstd-compressed
 *   frame-fixup-root, body-fixup-root
 *                   a zygote's FIXUP: every field, root and rootfstype too
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "protocol/proto.h"

static const char *dir;

static int write_seed(const char *name, uint8_t ctl, const void *p, size_t n)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_fclose_ FILE *f = NULL;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	f = fopen(path, "wbe");
	if (!f)
		return -errno;
	if (fwrite(&ctl, 1, 1, f) != 1 || (n && fwrite(p, 1, n, f) != n))
		return -EIO;
	return 0;
}

static const char *argv_s[] = {"/bin/sh", "-c", "echo hi", NULL};
static const char *env_s[] = {"HOME=/root", "TERM=xterm", NULL};
static const char *caps_s[] = {"exec", "pty", "zstd", NULL};
static const uint8_t blob[] = "hello\0world";
static struct proto_entry ents[] = {
    {.name = "a", .type = PROTO_FT_FILE, .size = 3, .mode = 0644, .mtime = 1},
    {.name = "b", .type = PROTO_FT_DIR, .mode = 0755, .mtime = -1},
};

static void fill(uint16_t type, struct proto_msg *m)
{
	const struct proto_bytes bytes = {blob, sizeof(blob)};

	memset(m, 0, sizeof(*m));
	m->type = type;
	m->channel = 3;
	switch (type) {
	case PROTO_HELLO:
		m->u.hello = (struct proto_hello){1, "sbx-agent 0.1.0", {caps_s, 3}, 65536};
		break;
	case PROTO_ERROR:
		m->u.error = (struct proto_error){1, PROTO_E_IO, 2, "no such file"};
		break;
	case PROTO_EXEC:
		m->u.exec = (struct proto_exec){2,    {argv_s, 3}, NULL,  {env_s, 2}, "/tmp",
						1000, 1000,	   true,  24,	      80,
						true, 5000,	   65536, 65536,      1000};
		break;
	case PROTO_EXEC_STARTED:
		m->u.exec_started = (struct proto_exec_started){2, 3, 42, 65536};
		break;
	case PROTO_OUTPUT:
		m->u.output = (struct proto_output){PROTO_STDOUT, 10, bytes};
		break;
	case PROTO_STDIN:
		m->flags = PROTO_F_EOF;
		m->u.stdin_data = (struct proto_stdin){5, bytes};
		break;
	case PROTO_ACK:
		m->u.ack = (struct proto_ack){100, 0, PROTO_ACK_NONE};
		break;
	case PROTO_EXIT:
		m->u.exit = (struct proto_exit){0, 0, false, false, 10, 0, 12};
		break;
	case PROTO_SIGNAL:
		m->u.signal = (struct proto_signal){4, 3, 15, false};
		break;
	case PROTO_RESIZE:
		m->u.resize = (struct proto_resize){5, 3, 50, 132};
		break;
	case PROTO_ATTACH:
		m->u.attach = (struct proto_attach){6, 3, 100, 0, 65536};
		break;
	case PROTO_ATTACHED:
		m->u.attached = (struct proto_attached){6, 3, true, 0, 0, 12, 65536};
		break;
	case PROTO_FORGET:
		m->u.forget = (struct proto_forget){7, 3};
		break;
	case PROTO_FILE_WRITE:
		m->u.file_write = (struct proto_file_write){8, "/tmp/f", 0600, false, true, 11};
		break;
	case PROTO_FILE_READ:
		m->u.file_read = (struct proto_file_read){9, "/etc/hostname", 0, 0, 65536, true};
		break;
	case PROTO_FILE_OPENED:
		m->u.file_opened = (struct proto_file_opened){9, 4, 11, 0644, 1700000000, 0, true};
		break;
	case PROTO_DATA:
		m->u.data = (struct proto_data){0, 0, bytes};
		break;
	case PROTO_FILE_DONE:
		m->u.file_done = (struct proto_file_done){8, 11};
		break;
	case PROTO_STAT:
	case PROTO_LIST:
	case PROTO_MKDIR:
	case PROTO_REMOVE:
		m->u.path = (struct proto_path_req){10, "/var/tmp", 0755, true};
		break;
	case PROTO_STAT_RESULT:
		m->u.stat = (struct proto_stat_result){10, PROTO_FT_SYMLINK, 4, 0777, 0, 0, 1, "x"};
		break;
	case PROTO_LIST_RESULT:
		m->u.list = (struct proto_list_result){11, ents, 2, true};
		break;
	case PROTO_INFO_RESULT:
		m->u.info = (struct proto_info_result){
		    12, "0.1.0", "sbx", "6.1.0", 1000, {0.5, 0.25, 0.125}, 1 << 28, 1 << 27, 2, 1};
		break;
	case PROTO_SHUTDOWN:
		m->u.shutdown = (struct proto_shutdown){13, true};
		break;
	case PROTO_FIXUP:
		m->u.fixup = (struct proto_fixup){14, 1700000000000000000LL, bytes, "fork-1"};
		break;
	default: /* OK, PING, PONG, INFO */
		m->u.idonly.id = 15;
		break;
	}
}

/* Append raw bytes (garbage, hand-made frames) to b. */
static int append(struct proto_buf *b, const void *p, size_t n)
{
	uint8_t *d = realloc(b->data, b->len + n);

	if (!d)
		return -ENOMEM;
	b->data = d;
	b->cap = b->len + n;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static int encode(uint16_t type, struct proto_buf *b)
{
	struct proto_msg m;

	fill(type, &m);
	return proto_encode(&m, b);
}

int main(int argc, char **argv)
{
	struct proto_buf all, one, misc;
	char name[64];
	int r = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 1;
	}
	dir = argv[1];
	proto_buf_init(&all);
	proto_buf_init(&misc);
	for (uint16_t t = 1; t < PROTO_TYPE_COUNT && r >= 0; t++) {
		if (!strcmp(proto_type_to_string(t), "unknown"))
			continue;
		proto_buf_init(&one);
		r = encode(t, &one);
		if (r >= 0)
			r = encode(t, &all);
		snprintf(name, sizeof(name), "frame-%s", proto_type_to_string(t));
		if (r >= 0)
			r = write_seed(name, (uint8_t)(t | 128), one.data, one.len);
		snprintf(name, sizeof(name), "body-%s", proto_type_to_string(t));
		if (r >= 0)
			r = write_seed(name, (uint8_t)(t | 128), one.data + PROTO_HEADER_SIZE,
				       one.len - PROTO_HEADER_SIZE);
		proto_buf_release(&one);
	}
	if (r >= 0)
		r = write_seed("stream-all", 32, all.data, all.len);

	/* garbage, PING, EXEC with a bad body, unknown type 99, PONG */
	if (r >= 0) {
		static const uint8_t bad_exec[] = {'S', 'B', 'X', 'F', 9,    0,	   0,	0,    10,
						   0,	0,   0,	  0,   0,    0,	   0,	0x81, 0xa4,
						   'a', 'r', 'g', 'v', 0x01, 0xc0, 0xc0};
		static const uint8_t unknown[] = {'S', 'B', 'X',  'F',	5,   0,	  0,
						  0,   99,  0,	  0,	0,   1,	  0,
						  0,   0,   0x81, 0xa2, 'i', 'd', 0x07};

		r = append(&misc, "garbage SBX SB\xff\x00", 16);
		if (r >= 0)
			r = encode(PROTO_PING, &misc);
		if (r >= 0)
			r = append(&misc, bad_exec, sizeof(bad_exec));
		if (r >= 0)
			r = append(&misc, unknown, sizeof(unknown));
		if (r >= 0)
			r = encode(PROTO_PONG, &misc);
		if (r >= 0)
			r = write_seed("stream-garbage", 32 | 5, misc.data, misc.len);
	}
	/* a header that claims 2 MiB, 100 bytes of it, and a PING: the reader
	 * drops the rest of the stream; ctl & 64 uses the 1 KiB reader */
	if (r >= 0) {
		static const uint8_t big[] = {'S', 'B', 'X', 'F', 0, 0, 0x20, 0,
					      33,  0,	0,   0,	  3, 0, 0,    0};
		static const uint8_t body[100];

		proto_buf_consume(&misc, misc.len);
		r = append(&misc, big, sizeof(big));
		if (r >= 0)
			r = append(&misc, body, sizeof(body));
		if (r >= 0)
			r = encode(PROTO_PING, &misc);
		if (r >= 0)
			r = write_seed("stream-oversize", 64 | 3, misc.data, misc.len);
	}
	/* a DATA frame with a zstd chunk */
	if (r >= 0) {
		static uint8_t raw[4096], z[4096];
		struct proto_msg m = {.type = PROTO_DATA, .channel = 4};
		long c;

		for (size_t i = 0; i < sizeof(raw); i++)
			raw[i] = (uint8_t)("abcabcabd"[i % 9]);
		c = proto_zstd_compress(raw, sizeof(raw), z, sizeof(z));
		r = c > 0 ? 0 : -EINVAL;
		m.u.data = (struct proto_data){0, sizeof(raw), {z, (size_t)c}};
		proto_buf_consume(&misc, misc.len);
		if (r >= 0)
			r = proto_encode(&m, &misc);
		if (r >= 0)
			r = write_seed("data-zstd", PROTO_DATA | 128, misc.data, misc.len);
		if (r >= 0)
			r = write_seed("body-data-zstd", PROTO_DATA | 128,
				       misc.data + PROTO_HEADER_SIZE, misc.len - PROTO_HEADER_SIZE);
	}
	/* a zygote's FIXUP (fill() keeps the older form for the other seeds) */
	if (r >= 0) {
		struct proto_msg m;

		fill(PROTO_FIXUP, &m);
		m.u.fixup.root = "/dev/vda";
		m.u.fixup.rootfstype = "ext4";
		proto_buf_consume(&misc, misc.len);
		r = proto_encode(&m, &misc);
		if (r >= 0)
			r = write_seed("frame-fixup-root", PROTO_FIXUP | 128, misc.data, misc.len);
		if (r >= 0)
			r = write_seed("body-fixup-root", PROTO_FIXUP | 128,
				       misc.data + PROTO_HEADER_SIZE, misc.len - PROTO_HEADER_SIZE);
	}
	proto_buf_release(&all);
	proto_buf_release(&misc);
	if (r < 0) {
		fprintf(stderr, "gen_proto_seeds: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
