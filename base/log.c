/* SPDX-License-Identifier: Apache-2.0 */
/* log.c - the formatting and the default sink of base/log.h. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

/* Programs name themselves with LOG_DEFINE_STATE(); this default serves
 * the ones that do not (fuzz targets, libraries' tests). */
__attribute__((weak)) struct log_state log_state = {.fd = 2, .level = LOG_LVL_INFO};

__attribute__((format(printf, 3, 0))) int log_vemit(enum log_level l, int err,
								  const char *fmt, va_list ap)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	char buf[2048];
	int n;

	if (l > log_state.level)
		return err;
	n = snprintf(buf, sizeof(buf), "%s: %s: ", log_state.ident ? log_state.ident : "sbx",
		     names[l]);
	if (n < 0)
		return err;
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	if (n >= (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	if (err)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s",
			      strerror(err < 0 ? -err : err));
	if (n >= (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 2;
	if (log_state.sink) {
		size_t pre =
		    strlen(log_state.ident ? log_state.ident : "sbx") + 2 + strlen(names[l]) + 2;

		log_state.sink(l, buf + pre, (size_t)n - pre);
		return err;
	}
	buf[n++] = '\n';
	(void)!write(log_state.fd, buf, (size_t)n);
	return err;
}

__attribute__((format(printf, 3, 4))) int log_emit(enum log_level l, int err,
								 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err = log_vemit(l, err, fmt, ap);
	va_end(ap);
	return err;
}

