/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cleanup.h - scope-bound ownership helpers shared by every component.
 *
 * A variable declared with _cleanup_free_, _cleanup_close_ or _cleanup_fclose_
 * is released when it leaves scope, so error paths can simply return.
 * TAKE_PTR()/TAKE_FD() move ownership out (to a ret_* parameter or a struct)
 * and leave the variable empty, so nothing is released twice.
 * Always initialise: pointers to NULL, fds to -EBADF.
 */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void cleanup_freep(void *p)
{
	free(*(void **)p);
}

static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		(void)close(*fd);
		errno = saved;
	}
}

static inline void cleanup_fclosep(FILE **f)
{
	if (*f)
		(void)fclose(*f);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(cleanup_freep)
#define _cleanup_close_ _cleanup_(cleanup_closep)
#define _cleanup_fclose_ _cleanup_(cleanup_fclosep)

#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _tp_ = (p);                                                          \
		(p) = NULL;                                                                        \
		_tp_;                                                                              \
	})

#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _tf_ = (fd);                                                                   \
		(fd) = -EBADF;                                                                     \
		_tf_;                                                                              \
	})

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
