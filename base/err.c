/* SPDX-License-Identifier: Apache-2.0 */
/* err.c - see err.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"

static __thread char slot[ERR_MSG_MAX];

/* Formats through a copy: callers may pass err_msg() as an argument to
 * wrap the previous message. */
int err_vset(int err, const char *fmt, va_list ap)
{
	char buf[ERR_MSG_MAX];

	/* so that %m names err */
	if (err < 0)
		errno = -err;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	memcpy(slot, buf, sizeof(slot));
	return err;
}

int err_set(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = err_vset(err, fmt, ap);
	va_end(ap);
	return err;
}

int err_prefix(int err, const char *fmt, ...)
{
	char buf[ERR_MSG_MAX];
	const char *old = slot[0] ? slot : strerror(err < 0 ? -err : err);
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	n = strlen(buf);
	if (n + 2 < sizeof(buf)) {
		memcpy(buf + n, ": ", 3);
		n += 2;
		/* old may be longer than what is left: cut it */
		size_t m = strnlen(old, sizeof(buf) - n - 1);

		memcpy(buf + n, old, m);
		buf[n + m] = '\0';
	}
	memcpy(slot, buf, sizeof(slot));
	return err;
}

const char *err_msg(void)
{
	return slot;
}

const char *err_msg_or(int err)
{
	return slot[0] ? slot : strerror(err < 0 ? -err : err);
}

void err_clear(void)
{
	slot[0] = '\0';
}
