/* SPDX-License-Identifier: Apache-2.0 */
/* log.c - the formatting and the default sink of base/log.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

/* Programs name themselves with LOG_DEFINE_STATE(); this default serves
 * the ones that do not (fuzz targets, libraries' tests). */
__attribute__((weak)) struct log_state log_state = {.fd = 2, .level = LOG_LVL_INFO};

/* Appends to buf (size len) at *n, never past the end. */
static void vput(char *buf, size_t len, size_t *n, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static void vput(char *buf, size_t len, size_t *n, const char *fmt, va_list ap)
{
	int k;

	if (*n >= len - 1)
		return;
	k = vsnprintf(buf + *n, len - *n, fmt, ap);
	if (k > 0)
		*n = *n + (size_t)k < len - 1 ? *n + (size_t)k : len - 1;
}

static void put(char *buf, size_t len, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t len, size_t *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vput(buf, len, n, fmt, ap);
	va_end(ap);
}

int log_vemit(enum log_level l, int err, const struct log_field *fields, const char *fmt,
	      va_list ap)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	/* the last byte is kept for the newline */
	char buf[2048];
	size_t n = 0, pre;

	if (l > log_state.level)
		return err;
	put(buf, sizeof(buf) - 1, &n, "%s: %s: ", log_state.ident ? log_state.ident : "sbx",
	    names[l]);
	pre = n;
	for (const struct log_field *f = fields; f && f->key; f++)
		if (f->value)
			put(buf, sizeof(buf) - 1, &n, "%s=%s ", f->key, f->value);
	vput(buf, sizeof(buf) - 1, &n, fmt, ap);
	if (err)
		put(buf, sizeof(buf) - 1, &n, ": %s", strerror(err < 0 ? -err : err));
	if (log_state.sink) {
		log_state.sink(l, fields, buf + pre, n - pre);
		return err;
	}
	buf[n++] = '\n';
	(void)!write(log_state.fd, buf, n);
	return err;
}

int log_emit_fields(enum log_level l, int err, const struct log_field *fields, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err = log_vemit(l, err, fields, fmt, ap);
	va_end(ap);
	return err;
}
