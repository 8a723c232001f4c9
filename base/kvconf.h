/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kvconf.h - the one config file format of sbx (sbxd's /etc/sbx/sbxd.conf
 * and sbx's ~/.config/sbx/config):
 *
 *	# a comment
 *	name = value
 *	name = "a value with a # in it"
 *
 * One setting per line; blank lines and lines starting with '#' are
 * skipped; spaces around '=' and at the ends of the value are dropped; a
 * value in double quotes keeps everything between them. Names are
 * [A-Za-z0-9_-]{1,63}; a value is at most KVCONF_VALUE_MAX bytes; NUL bytes
 * are refused. Each program decides what a name means (and that an
 * unknown name is an error).
 */
#pragma once

#include <stddef.h>

#define KVCONF_NAME_MAX 63
#define KVCONF_VALUE_MAX 4160

/* One setting: 0, or -errno with err_set() to stop the parse. source is
 * "PATH:LINE", for messages. */
typedef int (*kvconf_fn)(void *ud, const char *name, const char *value, const char *source);

/* Parse text (len bytes, not NUL-terminated). path names it in messages.
 * 0, or -errno with a message in err_msg() (base/err.h) naming the line. */
int kvconf_parse(const char *text, size_t len, const char *path, kvconf_fn fn, void *ud);
