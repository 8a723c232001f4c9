/* SPDX-License-Identifier: Apache-2.0 */
/* io.h - whole writes on file descriptors. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Write all len bytes (resuming after EINTR and short writes; waiting
 * when a non-blocking fd is full): 0 or -errno. */
int io_write_all(int fd, const void *buf, size_t len);
/* The same at offset off (pwrite). */
int io_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
