/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_frame.c - build and read the /execute/ws JSON messages.
 *
 * The keys and their defaults follow what the langsmith client sends, so
 * that sbxd sees nothing from sbx it would not see from that client; the
 * additions are for PTY commands: the terminal's size in "execute"
 * ("rows", "cols") and the "resize" message.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tools/sbx_frame.h"

static char *dump(json_t *j)
{
	char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	return t;
}

char *sbx_frame_execute(const struct sbx_exec_req *req)
{
	json_t *j = json_pack(
	    "{s:s, s:s, s:I, s:s, s:I, s:b, s:I, s:s}", "type", "execute", "command", req->command,
	    "timeout_seconds", (json_int_t)req->timeout_s, "shell", req->shell,
	    "idle_timeout_seconds", (json_int_t)req->idle_timeout_s, "kill_on_disconnect", 0,
	    "ttl_seconds", (json_int_t)req->ttl_s, "command_id", req->command_id);

	if (!j)
		return NULL;
	if ((req->close_stdin && !req->pty &&
	     json_object_set_new(j, "close_stdin", json_true()) < 0) ||
	    (req->pty && json_object_set_new(j, "pty", json_true()) < 0) ||
	    (req->pty && req->rows && req->cols &&
	     (json_object_set_new(j, "rows", json_integer(req->rows)) < 0 ||
	      json_object_set_new(j, "cols", json_integer(req->cols)) < 0)) ||
	    (req->env && json_object_size(req->env) && json_object_set(j, "env", req->env) < 0) ||
	    (req->cwd && json_object_set_new(j, "cwd", json_string(req->cwd)) < 0)) {
		json_decref(j);
		return NULL;
	}
	return dump(j);
}

char *sbx_frame_reconnect(const char *command_id, int64_t stdout_offset, int64_t stderr_offset)
{
	return dump(json_pack("{s:s, s:s, s:I, s:I}", "type", "reconnect", "command_id", command_id,
			      "stdout_offset", (json_int_t)stdout_offset, "stderr_offset",
			      (json_int_t)stderr_offset));
}

char *sbx_frame_input(const char *data, size_t len)
{
	json_t *s = json_stringn(data, len);

	if (!s)
		return NULL;
	return dump(json_pack("{s:s, s:o}", "type", "input", "data", s));
}

char *sbx_frame_resize(unsigned rows, unsigned cols)
{
	return dump(json_pack("{s:s, s:I, s:I}", "type", "resize", "rows", (json_int_t)rows, "cols",
			      (json_int_t)cols));
}

char *sbx_frame_simple(const char *type)
{
	return dump(json_pack("{s:s}", "type", type));
}

static const struct {
	const char *name;
	enum sbx_msg_type type;
} msg_types[] = {
    {"started", SBX_MSG_STARTED}, {"stdout", SBX_MSG_STDOUT}, {"stderr", SBX_MSG_STDERR},
    {"exit", SBX_MSG_EXIT},	  {"error", SBX_MSG_ERROR},
};

int sbx_msg_parse(const char *text, size_t len, struct sbx_msg *ret)
{
	json_t *j = json_loadb(text, len, JSON_ALLOW_NUL, NULL), *v;
	const char *type = json_string_value(json_object_get(j, "type"));
	struct sbx_msg m = {.type = SBX_MSG_OTHER, .exit_code = -1, .root = j};

	if (!json_is_object(j) || !type) {
		json_decref(j);
		return -EBADMSG;
	}
	for (size_t i = 0; i < sizeof(msg_types) / sizeof(msg_types[0]); i++)
		if (!strcmp(type, msg_types[i].name))
			m.type = msg_types[i].type;
	switch (m.type) {
	case SBX_MSG_STARTED:
		m.command_id = json_string_value(json_object_get(j, "command_id"));
		break;
	case SBX_MSG_STDOUT:
	case SBX_MSG_STDERR:
		v = json_object_get(j, "data");
		if (!json_is_string(v)) {
			json_decref(j);
			return -EBADMSG;
		}
		m.data = json_string_value(v);
		m.len = json_string_length(v);
		v = json_object_get(j, "offset");
		m.offset = json_is_integer(v) ? json_integer_value(v) : -1;
		break;
	case SBX_MSG_EXIT:
		v = json_object_get(j, "exit_code");
		if (json_is_integer(v))
			m.exit_code = json_integer_value(v);
		v = json_object_get(j, "signal");
		if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < 128)
			m.signal = (int)json_integer_value(v);
		break;
	case SBX_MSG_ERROR:
		m.error_type = json_string_value(json_object_get(j, "error_type"));
		if (!m.error_type)
			m.error_type = "CommandError";
		m.error = json_string_value(json_object_get(j, "error"));
		if (!m.error)
			m.error = json_string_value(json_object_get(j, "message"));
		if (!m.error)
			m.error = "the command failed";
		break;
	case SBX_MSG_OTHER:
		break;
	}
	*ret = m;
	return 0;
}

void sbx_msg_release(struct sbx_msg *m)
{
	json_decref(m->root);
	*m = (struct sbx_msg){0};
}

int sbx_exit_status(const struct sbx_msg *m)
{
	if (m->signal)
		return 128 + m->signal;
	/* -1 is "unknown" (the langsmith client's default), not SIGHUP */
	if (m->exit_code < -1 && m->exit_code > -128)
		return 128 + (int)-m->exit_code;
	if (m->exit_code < 0 || m->exit_code > 255)
		return 255;
	return (int)m->exit_code;
}

size_t sbx_chunk_skip(int64_t offset, size_t len, int64_t next)
{
	if (offset < 0 || offset >= next)
		return 0;
	if ((uint64_t)(next - offset) >= len)
		return len;
	return (size_t)(next - offset);
}
