/* SPDX-License-Identifier: Apache-2.0 */
/*
 * schema.c - the body of every frame type as a table of fields.
 *
 * docs/protocol.md is the normative text; these tables are its executable
 * form and must say the same thing. Changing a key, a limit or a default here
 * is a wire format change: bump PROTO_VERSION or add a new optional key.
 *
 * Conventions: keys are short lowercase strings; "id" is always encoded in
 * the types that have one; every other optional field is omitted by the
 * encoder when it holds its default; the decoder applies the defaults.
 */
#include <limits.h>
#include <string.h>

#include "base/cleanup.h"
#include "protocol/internal.h"

#define MSG(member) offsetof(struct proto_msg, u.member)
#define F(key, kind, flags, member, lo, hi, def)                                                   \
	{                                                                                          \
		key, kind, flags, MSG(member), lo, hi, def                                         \
	}
#define ID(member) F("id", FK_U32, FF_ALWAYS, member.id, 0, UINT32_MAX, 0)
#define CMD(member) F("cmd", FK_U32, FF_REQ, member.cmd, 1, UINT32_MAX, 0)
#define SCHEMA(tab, id, chan, chk, fix)                                                            \
	{                                                                                          \
		tab, ARRAY_SIZE(tab), id, chan, chk, fix                                           \
	}

#define MODE_MAX 07777 /* permission, setuid, setgid and sticky bits */
#define SIG_MAX 64     /* Linux _NSIG - 1 */
#define NONE PROTO_ACK_NONE

/* A path the agent acts on: absolute. */
static bool path_ok(const char *p)
{
	return !p || p[0] == '/';
}

static void hello_fixup(void *obj)
{
	struct proto_msg *m = obj;

	if (!m->u.hello.max_body)
		m->u.hello.max_body = PROTO_MAX_BODY;
}

static bool exec_ok(const void *obj)
{
	const struct proto_exec *e = &((const struct proto_msg *)obj)->u.exec;

	if ((e->argv.n > 0) == (e->shell != NULL))
		return false;
	if (e->argv.n > 0 && e->argv.v[0][0] == '\0')
		return false;
	for (uint32_t i = 0; i < e->env.n; i++) {
		const char *eq = strchr(e->env.v[i], '=');

		if (!eq || eq == e->env.v[i])
			return false;
	}
	return path_ok(e->cwd);
}

/* An offset plus a length must stay representable. */
static bool span_ok(uint64_t off, uint64_t len)
{
	return off <= UINT64_MAX - len;
}

static bool output_ok(const void *obj)
{
	const struct proto_output *o = &((const struct proto_msg *)obj)->u.output;

	return span_ok(o->offset, o->data.len);
}

static bool stdin_ok(const void *obj)
{
	const struct proto_stdin *s = &((const struct proto_msg *)obj)->u.stdin_data;

	return span_ok(s->offset, s->data.len);
}

static bool data_ok(const void *obj)
{
	const struct proto_data *d = &((const struct proto_msg *)obj)->u.data;

	if (d->raw_len)
		return d->data.len > 0 && span_ok(d->offset, d->raw_len);
	return span_ok(d->offset, d->data.len);
}

static bool file_write_ok(const void *obj)
{
	return path_ok(((const struct proto_msg *)obj)->u.file_write.path);
}

static bool file_read_ok(const void *obj)
{
	return path_ok(((const struct proto_msg *)obj)->u.file_read.path);
}

static bool path_req_ok(const void *obj)
{
	return path_ok(((const struct proto_msg *)obj)->u.path.path);
}

static bool entry_ok(const void *obj)
{
	const struct proto_entry *e = obj;

	return !strchr(e->name, '/');
}

static const struct field hello_fields[] = {
    F("version", FK_U32, FF_REQ, hello.version, 1, UINT32_MAX, 0),
    F("software", FK_STR, 0, hello.software, 0, PROTO_MAX_STR, 0),
    F("caps", FK_STRV, 0, hello.caps, 0, PROTO_MAX_CAPS, 0),
    F("max_body", FK_U32, 0, hello.max_body, 0, UINT32_MAX, PROTO_MAX_BODY),
};

static const struct field error_fields[] = {
    ID(error),
    F("code", FK_U32, FF_REQ, error.code, 1, UINT32_MAX, 0),
    F("errno", FK_I32, 0, error.err_no, 0, INT32_MAX, 0),
    F("msg", FK_STR, 0, error.msg, 0, PROTO_MAX_STR, 0),
};

static const struct field idonly_fields[] = {
    ID(idonly),
};

static const struct field exec_fields[] = {
    ID(exec),
    F("argv", FK_STRV, 0, exec.argv, 0, PROTO_MAX_ARGS, 0),
    F("shell", FK_STR, 0, exec.shell, 0, PROTO_MAX_STR, 0),
    F("env", FK_STRV, 0, exec.env, 0, PROTO_MAX_ARGS, 0),
    F("cwd", FK_STR, 0, exec.cwd, 1, PROTO_MAX_PATH, 0),
    F("uid", FK_I32, 0, exec.uid, -1, INT32_MAX, (uint64_t)-1),
    F("gid", FK_I32, 0, exec.gid, -1, INT32_MAX, (uint64_t)-1),
    F("pty", FK_BOOL, 0, exec.pty, 0, 1, 0),
    F("rows", FK_U16, 0, exec.rows, 0, UINT16_MAX, 0),
    F("cols", FK_U16, 0, exec.cols, 0, UINT16_MAX, 0),
    F("stdin", FK_BOOL, 0, exec.stdin_open, 0, 1, 0),
    F("timeout_ms", FK_U32, 0, exec.timeout_ms, 0, UINT32_MAX, 0),
    F("window", FK_U32, 0, exec.window, 0, UINT32_MAX, 0),
    F("ring", FK_U32, 0, exec.ring, 0, UINT32_MAX, 0),
    F("keep_ms", FK_U32, 0, exec.keep_ms, 0, UINT32_MAX, 0),
};

static const struct field exec_started_fields[] = {
    ID(exec_started),
    CMD(exec_started),
    F("pid", FK_I32, 0, exec_started.pid, 0, INT32_MAX, 0),
    F("window", FK_U32, 0, exec_started.stdin_window, 0, UINT32_MAX, 0),
};

static const struct field output_fields[] = {
    F("stream", FK_U8, FF_REQ, output.stream, PROTO_STDOUT, PROTO_STDERR, 0),
    F("off", FK_U64, 0, output.offset, 0, UINT64_MAX, 0),
    F("data", FK_BIN, 0, output.data, 0, PROTO_MAX_CHUNK, 0),
};

static const struct field stdin_fields[] = {
    F("off", FK_U64, 0, stdin_data.offset, 0, UINT64_MAX, 0),
    F("data", FK_BIN, 0, stdin_data.data, 0, PROTO_MAX_CHUNK, 0),
};

static const struct field ack_fields[] = {
    F("out", FK_U64, 0, ack.out, 0, UINT64_MAX, NONE),
    F("err", FK_U64, 0, ack.err, 0, UINT64_MAX, NONE),
    F("in", FK_U64, 0, ack.in, 0, UINT64_MAX, NONE),
};

static const struct field exit_fields[] = {
    F("code", FK_I32, 0, exit.code, -1, 255, 0),
    F("sig", FK_I32, 0, exit.signal, 0, SIG_MAX, 0),
    F("timed_out", FK_BOOL, 0, exit.timed_out, 0, 1, 0),
    F("killed", FK_BOOL, 0, exit.killed, 0, 1, 0),
    F("out", FK_U64, 0, exit.out_total, 0, UINT64_MAX, 0),
    F("err", FK_U64, 0, exit.err_total, 0, UINT64_MAX, 0),
    F("duration_ms", FK_U64, 0, exit.duration_ms, 0, UINT64_MAX, 0),
};

static const struct field signal_fields[] = {
    ID(signal),
    CMD(signal),
    F("sig", FK_I32, FF_REQ, signal.signal, 1, SIG_MAX, 0),
    F("group", FK_BOOL, 0, signal.group, 0, 1, 1),
};

static const struct field resize_fields[] = {
    ID(resize),
    CMD(resize),
    F("rows", FK_U16, FF_REQ, resize.rows, 1, UINT16_MAX, 0),
    F("cols", FK_U16, FF_REQ, resize.cols, 1, UINT16_MAX, 0),
};

static const struct field attach_fields[] = {
    ID(attach),
    CMD(attach),
    F("out", FK_U64, 0, attach.out_offset, 0, UINT64_MAX, 0),
    F("err", FK_U64, 0, attach.err_offset, 0, UINT64_MAX, 0),
    F("window", FK_U32, 0, attach.window, 0, UINT32_MAX, 0),
};

static const struct field attached_fields[] = {
    ID(attached),
    CMD(attached),
    F("running", FK_BOOL, 0, attached.running, 0, 1, 0),
    F("out", FK_U64, 0, attached.out_start, 0, UINT64_MAX, 0),
    F("err", FK_U64, 0, attached.err_start, 0, UINT64_MAX, 0),
    F("in", FK_U64, 0, attached.in_offset, 0, UINT64_MAX, 0),
    F("window", FK_U32, 0, attached.stdin_window, 0, UINT32_MAX, 0),
};

static const struct field forget_fields[] = {
    ID(forget),
    CMD(forget),
};

static const struct field file_write_fields[] = {
    ID(file_write),
    F("path", FK_STR, FF_REQ, file_write.path, 1, PROTO_MAX_PATH, 0),
    F("mode", FK_U32, 0, file_write.mode, 0, MODE_MAX, 0),
    F("append", FK_BOOL, 0, file_write.append, 0, 1, 0),
    F("mkdirs", FK_BOOL, 0, file_write.mkdirs, 0, 1, 0),
    F("size", FK_U64, 0, file_write.size, 0, UINT64_MAX, NONE),
};

static const struct field file_read_fields[] = {
    ID(file_read),
    F("path", FK_STR, FF_REQ, file_read.path, 1, PROTO_MAX_PATH, 0),
    F("off", FK_U64, 0, file_read.offset, 0, UINT64_MAX, 0),
    F("len", FK_U64, 0, file_read.length, 0, UINT64_MAX, 0),
    F("window", FK_U32, 0, file_read.window, 0, UINT32_MAX, 0),
    F("zstd", FK_BOOL, 0, file_read.zstd, 0, 1, 0),
};

static const struct field file_opened_fields[] = {
    ID(file_opened),
    F("chan", FK_U32, FF_REQ, file_opened.chan, 1, UINT32_MAX, 0),
    F("size", FK_U64, 0, file_opened.size, 0, UINT64_MAX, 0),
    F("mode", FK_U32, 0, file_opened.mode, 0, MODE_MAX, 0),
    F("mtime", FK_I64, 0, file_opened.mtime, INT64_MIN, INT64_MAX, 0),
    F("window", FK_U32, 0, file_opened.window, 0, UINT32_MAX, 0),
    F("zstd", FK_BOOL, 0, file_opened.zstd, 0, 1, 0),
};

static const struct field data_fields[] = {
    F("off", FK_U64, 0, data.offset, 0, UINT64_MAX, 0),
    F("raw_len", FK_U32, 0, data.raw_len, 0, PROTO_MAX_CHUNK, 0),
    F("data", FK_BIN, 0, data.data, 0, PROTO_MAX_CHUNK, 0),
};

static const struct field file_done_fields[] = {
    ID(file_done),
    F("size", FK_U64, FF_REQ, file_done.size, 0, UINT64_MAX, 0),
};

static const struct field path_fields[] = {
    ID(path),
    F("path", FK_STR, FF_REQ, path.path, 1, PROTO_MAX_PATH, 0),
    F("mode", FK_U32, 0, path.mode, 0, MODE_MAX, 0),
    F("recursive", FK_BOOL, 0, path.recursive, 0, 1, 0),
};

static const struct field stat_fields[] = {
    ID(stat),
    F("type", FK_U8, 0, stat.type, 0, UINT8_MAX, 0),
    F("size", FK_U64, 0, stat.size, 0, UINT64_MAX, 0),
    F("mode", FK_U32, 0, stat.mode, 0, MODE_MAX, 0),
    F("uid", FK_U32, 0, stat.uid, 0, UINT32_MAX, 0),
    F("gid", FK_U32, 0, stat.gid, 0, UINT32_MAX, 0),
    F("mtime", FK_I64, 0, stat.mtime, INT64_MIN, INT64_MAX, 0),
    F("link", FK_STR, 0, stat.link, 1, PROTO_MAX_PATH, 0),
};

static const struct field list_fields[] = {
    ID(list),
    F("entries", FK_ENTRIES, 0, list, 0, PROTO_MAX_ENTRIES, 0),
    F("more", FK_BOOL, 0, list.more, 0, 1, 0),
};

static const struct field info_fields[] = {
    ID(info),
    F("version", FK_STR, 0, info.version, 0, PROTO_MAX_STR, 0),
    F("hostname", FK_STR, 0, info.hostname, 0, PROTO_MAX_HOSTNAME, 0),
    F("kernel", FK_STR, 0, info.kernel, 0, PROTO_MAX_STR, 0),
    F("uptime_ms", FK_U64, 0, info.uptime_ms, 0, UINT64_MAX, 0),
    F("load", FK_LOAD, 0, info.load, 0, 3, 0),
    F("mem_total", FK_U64, 0, info.mem_total, 0, UINT64_MAX, 0),
    F("mem_avail", FK_U64, 0, info.mem_available, 0, UINT64_MAX, 0),
    F("ncpus", FK_U32, 0, info.ncpus, 0, UINT32_MAX, 0),
    F("commands", FK_U32, 0, info.commands, 0, UINT32_MAX, 0),
};

static const struct field shutdown_fields[] = {
    ID(shutdown),
    F("reboot", FK_BOOL, 0, shutdown.reboot, 0, 1, 0),
};

static const struct field fixup_fields[] = {
    ID(fixup),
    F("time_ns", FK_I64, 0, fixup.time_ns, INT64_MIN, INT64_MAX, 0),
    F("entropy", FK_BIN, 0, fixup.entropy, 0, PROTO_MAX_ENTROPY, 0),
    F("hostname", FK_STR, 0, fixup.hostname, 1, PROTO_MAX_HOSTNAME, 0),
    F("root", FK_STR, 0, fixup.root, 1, PROTO_MAX_ROOTDEV, 0),
    F("rootfstype", FK_STR, 0, fixup.rootfstype, 1, PROTO_MAX_FSTYPE, 0),
};

#define E(key, kind, flags, member, lo, hi)                                                        \
	{                                                                                          \
		key, kind, flags, offsetof(struct proto_entry, member), lo, hi, 0                  \
	}

static const struct field entry_fields[] = {
    E("name", FK_STR, FF_REQ, name, 1, PROTO_MAX_PATH), E("type", FK_U8, 0, type, 0, UINT8_MAX),
    E("size", FK_U64, 0, size, 0, UINT64_MAX),		E("mode", FK_U32, 0, mode, 0, MODE_MAX),
    E("mtime", FK_I64, 0, mtime, INT64_MIN, INT64_MAX),
};

const struct schema schema_entry = SCHEMA(entry_fields, false, false, entry_ok, NULL);

static const struct schema schemas[] = {
    [PROTO_HELLO] = SCHEMA(hello_fields, false, false, NULL, hello_fixup),
    [PROTO_ERROR] = SCHEMA(error_fields, true, false, NULL, NULL),
    [PROTO_OK] = SCHEMA(idonly_fields, true, false, NULL, NULL),
    [PROTO_PING] = SCHEMA(idonly_fields, true, false, NULL, NULL),
    [PROTO_PONG] = SCHEMA(idonly_fields, true, false, NULL, NULL),
    [PROTO_EXEC] = SCHEMA(exec_fields, true, false, exec_ok, NULL),
    [PROTO_EXEC_STARTED] = SCHEMA(exec_started_fields, true, false, NULL, NULL),
    [PROTO_OUTPUT] = SCHEMA(output_fields, false, true, output_ok, NULL),
    [PROTO_STDIN] = SCHEMA(stdin_fields, false, true, stdin_ok, NULL),
    [PROTO_ACK] = SCHEMA(ack_fields, false, true, NULL, NULL),
    [PROTO_EXIT] = SCHEMA(exit_fields, false, true, NULL, NULL),
    [PROTO_SIGNAL] = SCHEMA(signal_fields, true, false, NULL, NULL),
    [PROTO_RESIZE] = SCHEMA(resize_fields, true, false, NULL, NULL),
    [PROTO_ATTACH] = SCHEMA(attach_fields, true, false, NULL, NULL),
    [PROTO_ATTACHED] = SCHEMA(attached_fields, true, false, NULL, NULL),
    [PROTO_FORGET] = SCHEMA(forget_fields, true, false, NULL, NULL),
    [PROTO_FILE_WRITE] = SCHEMA(file_write_fields, true, false, file_write_ok, NULL),
    [PROTO_FILE_READ] = SCHEMA(file_read_fields, true, false, file_read_ok, NULL),
    [PROTO_FILE_OPENED] = SCHEMA(file_opened_fields, true, false, NULL, NULL),
    [PROTO_DATA] = SCHEMA(data_fields, false, true, data_ok, NULL),
    [PROTO_FILE_DONE] = SCHEMA(file_done_fields, true, true, NULL, NULL),
    [PROTO_STAT] = SCHEMA(path_fields, true, false, path_req_ok, NULL),
    [PROTO_STAT_RESULT] = SCHEMA(stat_fields, true, false, NULL, NULL),
    [PROTO_LIST] = SCHEMA(path_fields, true, false, path_req_ok, NULL),
    [PROTO_LIST_RESULT] = SCHEMA(list_fields, true, false, NULL, NULL),
    [PROTO_MKDIR] = SCHEMA(path_fields, true, false, path_req_ok, NULL),
    [PROTO_REMOVE] = SCHEMA(path_fields, true, false, path_req_ok, NULL),
    [PROTO_INFO] = SCHEMA(idonly_fields, true, false, NULL, NULL),
    [PROTO_INFO_RESULT] = SCHEMA(info_fields, true, false, NULL, NULL),
    [PROTO_SHUTDOWN] = SCHEMA(shutdown_fields, true, false, NULL, NULL),
    [PROTO_FIXUP] = SCHEMA(fixup_fields, true, false, NULL, NULL),
};

const struct schema *schema_lookup(uint16_t type)
{
	if (type >= ARRAY_SIZE(schemas) || !schemas[type].fields)
		return NULL;
	return &schemas[type];
}
