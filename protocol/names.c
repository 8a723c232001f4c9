/* SPDX-License-Identifier: Apache-2.0 */
/*
 * names.c - names of frame types and error codes for logs, request ids.
 */
#include "base/cleanup.h"
#include "protocol/internal.h"

static const char *const type_names[] = {
    [PROTO_HELLO] = "hello",
    [PROTO_ERROR] = "error",
    [PROTO_OK] = "ok",
    [PROTO_PING] = "ping",
    [PROTO_PONG] = "pong",
    [PROTO_EXEC] = "exec",
    [PROTO_EXEC_STARTED] = "exec_started",
    [PROTO_OUTPUT] = "output",
    [PROTO_STDIN] = "stdin",
    [PROTO_ACK] = "ack",
    [PROTO_EXIT] = "exit",
    [PROTO_SIGNAL] = "signal",
    [PROTO_RESIZE] = "resize",
    [PROTO_ATTACH] = "attach",
    [PROTO_ATTACHED] = "attached",
    [PROTO_FORGET] = "forget",
    [PROTO_FILE_WRITE] = "file_write",
    [PROTO_FILE_READ] = "file_read",
    [PROTO_FILE_OPENED] = "file_opened",
    [PROTO_DATA] = "data",
    [PROTO_FILE_DONE] = "file_done",
    [PROTO_STAT] = "stat",
    [PROTO_STAT_RESULT] = "stat_result",
    [PROTO_LIST] = "list",
    [PROTO_LIST_RESULT] = "list_result",
    [PROTO_MKDIR] = "mkdir",
    [PROTO_REMOVE] = "remove",
    [PROTO_INFO] = "info",
    [PROTO_INFO_RESULT] = "info_result",
    [PROTO_SHUTDOWN] = "shutdown",
    [PROTO_FIXUP] = "fixup",
};

static const char *const err_names[] = {
    [PROTO_E_OK] = "ok",
    [PROTO_E_BAD_FRAME] = "bad_frame",
    [PROTO_E_BAD_REQUEST] = "bad_request",
    [PROTO_E_UNKNOWN_TYPE] = "unknown_type",
    [PROTO_E_NO_CHANNEL] = "no_channel",
    [PROTO_E_EXEC] = "exec",
    [PROTO_E_IO] = "io",
    [PROTO_E_LIMIT] = "limit",
    [PROTO_E_LOST] = "lost",
    [PROTO_E_INTERNAL] = "internal",
};

const char *proto_type_to_string(uint16_t type)
{
	if (type >= ARRAY_SIZE(type_names) || !type_names[type])
		return "unknown";
	return type_names[type];
}

const char *proto_err_to_string(uint32_t code)
{
	if (code >= ARRAY_SIZE(err_names) || !err_names[code])
		return "unknown";
	return err_names[code];
}

uint32_t proto_msg_id(const struct proto_msg *m)
{
	const struct schema *s = schema_lookup(m->type);

	return s && s->has_id ? m->u.idonly.id : 0;
}
