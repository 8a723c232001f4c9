/* SPDX-License-Identifier: Apache-2.0 */
/*
 * image.h - image directories: the check at start, and the images
 * sbxd knows by name (the directories of its images directory), which is
 * what POST /snapshots calls docker_image.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* An image directory holds vmlinuz, initrd.img and rootfs.ext4: 0 with the
 * root disk's size, or -errno with a message in err_msg(). */
int sbxd_image_check(const char *dir, uint64_t *ret_disk_bytes);
/* Names of the usable images under images_dir, ", "-separated into buf
 * ("(none)" when there is none). */
void sbxd_image_names(const char *images_dir, char *buf, size_t len);
