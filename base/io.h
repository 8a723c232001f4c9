/* SPDX-License-Identifier: Apache-2.0 */
/* io.h - whole writes on file descriptors. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Write all len bytes (resuming after EINTR and short writes; waiting
 * when a non-blocking fd is full): 0 or -errno. */
int io_write_all(int fd, const void *buf, size_t len);
/* The same at offset off (pwrite). */
int io_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* mkdir -p: every missing directory of path with mode; 0 also when it
 * exists. -ENAMETOOLONG past PATH_MAX. */
int io_mkdir_p(const char *path, mode_t mode);
