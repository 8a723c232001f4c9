/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbxd_vm.h - the manager's VM backend over the VM driver (vm.h): ctx is
 * the vm_driver. And the check of an image directory at start.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "sbxd_mgr.h"

extern const struct sbxd_vm_ops sbxd_vm_libvirt_ops;

/* An image directory holds vmlinuz, initrd.img and rootfs.ext4: 0 with the
 * root disk's size, or -errno with a message. */
int sbxd_image_check(const char *dir, uint64_t *ret_disk_bytes, char *err, size_t errlen);
