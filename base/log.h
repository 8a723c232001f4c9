/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log.h - the one logging API of host tools and the guest agent.
 *
 * Messages are key=value lines written for a person: "vm=web-3 start failed:
 * QEMU exited (see console log ...)". The top of a call chain logs once;
 * lower layers return -errno. protocol/ never logs.
 *
 * log_*_errno(err, ...) appends ": strerror(-err)" and returns err, so that
 *   return log_error_errno(r, "vm=%s start failed", name);
 * reads naturally. The sink is stderr unless log_set_fd() says otherwise.
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* A field of a message: what it is about ("sandbox", "vm", "request"...).
 * Text logs show it as a leading "key=value " word; structured sinks get it
 * as a field of its own (a NULL value is left out). */
struct log_field {
	const char *key;
	const char *value;
};
#define LOG_FIELDS(...) ((const struct log_field[]){__VA_ARGS__, {NULL, NULL}})

struct log_state {
	int fd;
	enum log_level level;
	const char *ident;
	/* NULL: "ident: level: message" lines on fd. Else every message goes
	 * here instead (msg: the text without the prefix, fields included as
	 * leading words, not NUL-terminated; fields: NULL or ended by a NULL
	 * key), e.g. sbxd/log_json.c's one-JSON-object-per-line sink. */
	void (*sink)(enum log_level l, const struct log_field *fields, const char *msg, size_t len);
};

/* One instance per program, defined by LOG_DEFINE_STATE() in the file that
 * holds main() (base/log.c has a default for programs that do not), and
 * written only through log_set_*() and log_json_enable(). */
extern struct log_state log_state;

#define LOG_DEFINE_STATE(id)                                                                       \
	struct log_state log_state = {.fd = 2, .level = LOG_LVL_INFO, .ident = id}

static inline void log_set_fd(int fd)
{
	log_state.fd = fd;
}

static inline void log_set_level(enum log_level l)
{
	log_state.level = l;
}

/* Formats and writes one message (see the sink above); fields may be NULL;
 * returns err. */
__attribute__((format(printf, 4, 0))) int
log_vemit(enum log_level l, int err, const struct log_field *fields, const char *fmt, va_list ap);
__attribute__((format(printf, 4, 5))) int
log_emit_fields(enum log_level l, int err, const struct log_field *fields, const char *fmt, ...);

#define log_error(...) (void)log_emit_fields(LOG_LVL_ERROR, 0, NULL, __VA_ARGS__)
#define log_warn(...) (void)log_emit_fields(LOG_LVL_WARN, 0, NULL, __VA_ARGS__)
#define log_info(...) (void)log_emit_fields(LOG_LVL_INFO, 0, NULL, __VA_ARGS__)
#define log_debug(...) (void)log_emit_fields(LOG_LVL_DEBUG, 0, NULL, __VA_ARGS__)
#define log_error_errno(e, ...) log_emit_fields(LOG_LVL_ERROR, (e), NULL, __VA_ARGS__)
/* The same with fields: log_info_f(LOG_FIELDS({"sandbox", name}), "ready") */
#define log_error_f(f, ...) (void)log_emit_fields(LOG_LVL_ERROR, 0, (f), __VA_ARGS__)
#define log_warn_f(f, ...) (void)log_emit_fields(LOG_LVL_WARN, 0, (f), __VA_ARGS__)
#define log_info_f(f, ...) (void)log_emit_fields(LOG_LVL_INFO, 0, (f), __VA_ARGS__)
#define log_debug_f(f, ...) (void)log_emit_fields(LOG_LVL_DEBUG, 0, (f), __VA_ARGS__)
#define log_error_errno_f(e, f, ...) log_emit_fields(LOG_LVL_ERROR, (e), (f), __VA_ARGS__)
#define log_warn_errno_f(e, f, ...) log_emit_fields(LOG_LVL_WARN, (e), (f), __VA_ARGS__)
#define log_warn_errno(e, ...) log_emit_fields(LOG_LVL_WARN, (e), NULL, __VA_ARGS__)
