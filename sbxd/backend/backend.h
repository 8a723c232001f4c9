/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backend.h - the manager's VM backend over the VM driver (vm.h), the
 * agent client and the snapshot library (snapshot/snap.h).
 *
 * The ops' ctx is a struct sbxd_vm_backend. Every sandbox without a
 * snapshot starts as a fork of its image's zygote when it can (built by a
 * cold boot the first time, once per image and VM shape; while it is being
 * built, other starts cold boot rather than wait), else by a cold boot.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "sbxd/common/image.h"
#include "sbxd/mgr/mgr.h"

typedef struct vm_driver vm_driver;
typedef struct snap_store snap_store;
typedef struct sbxd_vm_backend sbxd_vm_backend;

extern const struct sbxd_vm_ops sbxd_vm_libvirt_ops;

/* ss may be NULL: no snapshots, every start a cold boot. Both are
 * borrowed and must outlive the backend. */
int sbxd_vm_backend_new(vm_driver *d, snap_store *ss, sbxd_vm_backend **ret);
sbxd_vm_backend *sbxd_vm_backend_free(sbxd_vm_backend *b); /* NULL-safe */
