/* SPDX-License-Identifier: Apache-2.0 */
/*
 * restore.c - VMs from snapshots.
 *
 * A fork maps the snapshot's RAM file privately (the page cache holding it
 * is shared by every fork of the snapshot; a page is copied only when a
 * fork writes it), reads the small device state saved without RAM, and
 * stacks a new overlay on the snapshot's disk layers. A fresh start on a
 * snapshot's (or an image's) filesystem is a fork of the zygote of its
 * kernel+initramfs with that disk attached; the agent then mounts it. A
 * cold boot is the fallback.
 *
 * After every start the agent gets FIXUP before anything else: fresh host
 * entropy (so no two forks share random state), the host's clock, the
 * sandbox's hostname and, for zygote forks, the root disk to mount.
 *
 * Every check that can fail (manifest, checksums, image) runs before QEMU
 * starts; a failure after that destroys the VM, so nothing is left.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "snapshot/snap_vm.h"

#define STATE_MAX (256ULL << 20) /* device state without RAM: ~60 KB in practice */

static void destroy_quietly(vm *v)
{
	if (vm_destroy(v) < 0)
		log_warn_f(LOG_FIELDS({"vm", vm_name(v)}), "cannot remove after a failed start: %s",
			   err_msg());
	vm_free(v);
}

/* The agent of a just started VM: wait for it, send FIXUP. */
static int welcome(vm *v, int timeout_ms, const char *hostname, const char *root)
{
	agent_client *c = NULL;
	int r;

	r = snapvm_agent_connect(v, timeout_ms, &c);
	if (r == 0 && root && !agent_client_has_cap(c, "root"))
		r = err_set(-EOPNOTSUPP, "the agent in this image cannot mount its root disk "
					 "on request (no \"root\" capability): rebuild the image");
	if (r == 0)
		r = snap_fixup(c, hostname, root);
	agent_client_free(c);
	return r;
}

int snapvm_fork(snap_store *s, vm_driver *d, const struct snapvm_fork *f, vm **ret)
{
	const struct snap_manifest *m = f->m;
	const struct snap_part *ram = snap_manifest_part(m, SNAP_PART_RAM);
	const struct snap_part *st = snap_manifest_part(m, SNAP_PART_STATE);
	const struct snap_part *stream = snap_manifest_part(m, SNAP_PART_STREAM);
	bool shared = m->mem_mode == SNAP_MEM_SHARED_FILE;
	_cleanup_free_ char *ram_path = NULL, *state_path = NULL;
	_cleanup_close_ int fd = -1;
	struct vm_config c = {0};
	int r;

	*ret = NULL;
	if (shared ? !ram || !st : !stream)
		return err_set(-EBADMSG, "snapshot %s has no memory to restore", m->id);
	state_path = snap_blob_path(s, shared ? st->blob : stream->blob);
	ram_path = shared ? snap_blob_path(s, ram->blob) : NULL;
	if (!state_path || (shared && !ram_path))
		return -ENOMEM;
	r = snapvm_decompress_memfd(
	    state_path, shared ? STATE_MAX : ((uint64_t)m->memory_mib << 20) + STATE_MAX, &fd);
	if (r < 0)
		return err_set(r, "snapshot %s: part %s (blobs/%s): %s", m->id,
			       shared ? "state" : "stream", shared ? st->blob : stream->blob,
			       err_msg());
	c.name = f->vm_name;
	c.image_dir = m->image_dir;
	c.vcpus = m->vcpus;
	c.memory_mib = m->memory_mib;
	c.disk_bytes = f->disk_bytes;
	c.disk_layers = (const char *const *)f->layers;
	c.ram_file = ram_path;
	c.ram_shared = false;
	c.incoming = true;
	c.incoming_fd = fd;
	c.incoming_ignore_shared = shared;
	r = vm_start(d, &c, ret);
	if (r < 0)
		return err_set(r, "%s", err_msg());
	return 0;
}

/* Checks and a fork of a memory snapshot, as it was. */
static int restore_memory(snap_store *s, vm_driver *d, const struct snap_manifest *m,
			  const struct snap_restore_opts *o, vm **ret)
{
	_cleanup_strv_ char **layers = NULL;
	struct snapvm_fork f = {.m = m, .vm_name = o->vm_name};
	vm *v = NULL;
	int r;

	r = snapvm_layer_paths(s, m, &layers);
	if (r < 0)
		return r;
	f.layers = layers;
	r = snapvm_fork(s, d, &f, &v);
	if (r < 0)
		return r;
	r = welcome(v, SNAPVM_RESTORE_WAIT_MS, o->hostname ? o->hostname : o->vm_name, NULL);
	if (r < 0) {
		destroy_quietly(v);
		return r;
	}
	*ret = v;
	return 0;
}

/* A fresh start on image_dir with layers over its rootfs: a zygote fork,
 * else a cold boot. */
static int fresh_start(snap_store *s, vm_driver *d, const char *image_dir, char *const *layers,
		       const struct snap_restore_opts *o, vm **ret, const char **ret_how)
{
	const char *hostname = o->hostname ? o->hostname : o->vm_name;
	struct vm_config c = {0};
	vm *v = NULL;
	int r;

	if (o->use_zygote) {
		_cleanup_free_ char *zid = NULL;
		struct snap_manifest *z = NULL;

		r = snap_zygote_ensure(s, d, image_dir, o->vcpus, o->memory_mib, 0, &zid);
		if (r == 0)
			r = snap_load(s, zid, &z);
		if (r == 0)
			r = snap_verify(s, z, false, NULL, NULL);
		if (r == 0)
			r = snap_lock(s, false); /* the layers stay until vm.info names them */
		if (r == 0) {
			struct snapvm_fork f = {.m = z,
						.vm_name = o->vm_name,
						.layers = layers,
						.disk_bytes = o->disk_bytes};
			r = snapvm_fork(s, d, &f, &v);
			snap_unlock(s);
			if (r == 0 && o->disk_bytes && o->disk_bytes != z->disk_bytes &&
			    vm_disk_resize(v, o->disk_bytes) < 0)
				r = err_set(-EIO, "%s", err_msg());
			if (r == 0)
				r = welcome(v, SNAPVM_RESTORE_WAIT_MS, hostname, "/dev/vda");
			if (r < 0 && v) {
				destroy_quietly(v);
				v = NULL;
			}
		}
		snap_manifest_free(z);
		if (r == 0) {
			*ret = v;
			if (ret_how)
				*ret_how = "zygote-fork";
			return 0;
		}
		log_warn_f(LOG_FIELDS({"vm", o->vm_name}),
			   "cannot start as a fork of the zygote, booting instead: %s", err_msg());
	}
	c.name = o->vm_name;
	c.image_dir = image_dir;
	c.hostname = hostname;
	c.vcpus = o->vcpus;
	c.memory_mib = o->memory_mib;
	c.disk_bytes = o->disk_bytes;
	c.disk_layers = (const char *const *)layers;
	r = snap_lock(s, false);
	if (r < 0)
		return r;
	r = vm_start(d, &c, &v);
	snap_unlock(s);
	if (r < 0)
		return err_set(r, "%s", err_msg());
	r = welcome(v, SNAPVM_BOOT_WAIT_MS, hostname, NULL);
	if (r < 0) {
		destroy_quietly(v);
		return r;
	}
	*ret = v;
	if (ret_how)
		*ret_how = "cold-boot";
	return 0;
}

int snap_restore(snap_store *s, vm_driver *d, const char *id, const struct snap_restore_opts *o,
		 vm **ret, const char **ret_how)
{
	_cleanup_strv_ char **layers = NULL;
	struct snap_manifest *m = NULL;
	bool memory;
	int r;

	*ret = NULL;
	if (!o->vm_name)
		return err_set(-EINVAL, "no name for the new VM");
	r = snap_load(s, id, &m);
	if (r == -ENOENT)
		return err_set(r, "snapshot %s not found", id);
	if (r < 0)
		return r;
	if (m->status != SNAP_READY) {
		r = err_set(-EBUSY, "snapshot %s is %s, not ready", id,
			    snap_status_to_string(m->status));
		goto out;
	}
	if (m->kind == SNAP_ZYGOTE) {
		r = err_set(-EINVAL,
			    "snapshot %s is a zygote (sbx's own boot cache): start "
			    "sandboxes from its image instead",
			    id);
		goto out;
	}
	memory = m->kind == SNAP_MEMORY && o->restore_memory;
	if (memory && (o->vcpus || o->memory_mib || o->disk_bytes) &&
	    (o->vcpus != m->vcpus || o->memory_mib != m->memory_mib))
		log_info_f(LOG_FIELDS({"vm", o->vm_name}),
			   "restoring memory: keeping the snapshot's %u vCPUs and %u MiB", m->vcpus,
			   m->memory_mib);

	r = snap_verify(s, m, false, NULL, NULL);
	if (r < 0)
		goto out;
	if (memory) {
		r = snap_lock(s, false);
		if (r < 0)
			goto out;
		r = restore_memory(s, d, m, o, ret);
		snap_unlock(s);
		if (r == 0 && ret_how)
			*ret_how = m->mem_mode == SNAP_MEM_STREAM ? "stream-restore" : "fork";
		goto out;
	}
	r = snapvm_layer_paths(s, m, &layers);
	if (r == 0)
		r = fresh_start(s, d, m->image_dir, layers, o, ret, ret_how);
out:
	snap_manifest_free(m);
	return r;
}

int snap_start_image(snap_store *s, vm_driver *d, const char *image_dir,
		     const struct snap_restore_opts *o, vm **ret, const char **ret_how)
{
	*ret = NULL;
	if (!o->vm_name)
		return err_set(-EINVAL, "no name for the new VM");
	return fresh_start(s, d, image_dir, NULL, o, ret, ret_how);
}
