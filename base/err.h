/* SPDX-License-Identifier: Apache-2.0 */
/*
 * err.h - the one error convention of sbx.
 *
 * A function that can fail returns -errno (0 or a count on success). When
 * it has more to tell a person than strerror() does, it leaves a message in
 * this thread's error slot, and err_set() hands back the -errno it was
 * given, so a failing path reads
 *
 *	return err_set(-ENOENT, "snapshot %s: no such snapshot", id);
 *
 * The caller that reports the failure reads err_msg() right after the
 * failing call, before making another call that may fail. err_msg_or()
 * falls back to strerror(-err) when no message was left since err_clear().
 * Lower layers return; the top of a call chain logs or answers once.
 */
#pragma once

#include <stdarg.h>

#define ERR_MSG_MAX 2048

/* Formats the message into this thread's slot (%m names err); returns err. */
__attribute__((format(printf, 2, 3))) int err_set(int err, const char *fmt, ...);
__attribute__((format(printf, 2, 0))) int err_vset(int err, const char *fmt, va_list ap);
/* Puts context in front of the message already in the slot ("CONTEXT:
 * MESSAGE"), or sets CONTEXT: strerror(-err) when the slot is empty;
 * returns err. */
__attribute__((format(printf, 2, 3))) int err_prefix(int err, const char *fmt, ...);
/* This thread's message; "" when none was left since err_clear(). */
const char *err_msg(void);
/* err_msg(), or strerror(-err) when it is empty. */
const char *err_msg_or(int err);
void err_clear(void);
