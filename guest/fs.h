/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs.h - STAT, LIST, MKDIR, REMOVE, and path helpers shared with xfer.c.
 *
 * These are metadata operations on local filesystems and run synchronously
 * on the loop (they do not wait for anything but the disk).
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "protocol/proto.h"

struct conn;

void fs_on_stat(struct conn *c, const struct proto_msg *m);
void fs_on_list(struct conn *c, const struct proto_msg *m);
void fs_on_mkdir(struct conn *c, const struct proto_msg *m);
void fs_on_remove(struct conn *c, const struct proto_msg *m);

/* Validate a request path: absolute, not longer than PROTO_MAX_PATH. On
 * failure an ERROR was sent for request id and false is returned. */
bool fs_check_path(struct conn *c, uint32_t id, const char *path);

/* mkdir -p. On failure returns -errno and the component that failed in
 * failed (a prefix of path). */
int fs_mkdir_p(const char *path, mode_t mode, char *failed, size_t len);
