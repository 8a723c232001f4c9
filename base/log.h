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

struct log_state {
	int fd;
	enum log_level level;
	const char *ident;
	/* NULL: "ident: level: message" lines on fd. Else every message goes
	 * here instead (msg without the prefix, not NUL-terminated), e.g.
	 * sbxd/log_json.c's one-JSON-object-per-line sink. */
	void (*sink)(enum log_level l, const char *msg, size_t len);
};

/* One instance per program: defined (static) by every translation unit that
 * includes this header, but only written through log_set_*(), which every
 * program calls from main() - keep it simple: all TUs share through extern. */
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

/* Formats and writes one message (see the sink above); returns err. */
__attribute__((format(printf, 3, 0))) int log_vemit(enum log_level l, int err, const char *fmt,
						   va_list ap);
__attribute__((format(printf, 3, 4))) int log_emit(enum log_level l, int err, const char *fmt,
						  ...);

#define log_error(...) (void)log_emit(LOG_LVL_ERROR, 0, __VA_ARGS__)
#define log_warn(...) (void)log_emit(LOG_LVL_WARN, 0, __VA_ARGS__)
#define log_info(...) (void)log_emit(LOG_LVL_INFO, 0, __VA_ARGS__)
#define log_debug(...) (void)log_emit(LOG_LVL_DEBUG, 0, __VA_ARGS__)
#define log_error_errno(e, ...) log_emit(LOG_LVL_ERROR, (e), __VA_ARGS__)
#define log_warn_errno(e, ...) log_emit(LOG_LVL_WARN, (e), __VA_ARGS__)
