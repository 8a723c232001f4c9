/* SPDX-License-Identifier: Apache-2.0 */
/*
 * capture.c - a snapshot of a running VM.
 *
 * 1. sync the guest's filesystems (through its agent), so the disk layer
 *    holds what was written;
 * 2. pause; freeze the root disk (the current overlay becomes a read-only
 *    layer in the store, the VM goes on with a new overlay over it); with
 *    memory, write the whole migration stream (RAM included) to a
 *    temporary file; resume. Only this step stops the guest.
 * 3. memory: convert the stream to the shared-file form, which is what
 *    lets forks share RAM copy-on-write: restore it, never running it,
 *    into a helper QEMU whose RAM is a shared file in the store, then save
 *    that helper's device state without RAM (x-ignore-shared). If that
 *    fails, keep the whole stream (zstd) instead: restores then read it
 *    each time (mode "stream").
 * 4. checksum every part and publish the manifest as ready.
 * The manifest is written in status building before any blob exists, so
 * that a collector never frees a blob being made; on failure the manifest
 * and its blobs go again (the VM keeps its own reference to the new layer).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "snapshot/snap_vm.h"

#define SYNC_TIMEOUT_MS 60000

/* The blob name of a layer path of the VM, which must be in the store. */
static int layer_blob(snap_store *s, const char *path, const char **ret)
{
	const char *blobs = s->blobs_dir;
	size_t n = strlen(blobs);

	if (strncmp(path, blobs, n) || path[n] != '/' || !snap_blob_name_is_valid(path + n + 1))
		return err_set(-EINVAL, "the VM's disk layer %s is not in the snapshot store %s",
			       path, blobs);
	*ret = path + n + 1;
	return 0;
}

/* The parent: the given one, else the snapshot that owns the VM's newest
 * older layer (the one it was restored from, or its last capture). Layers
 * the parent lists are inherited (with its checksums); without a parent
 * this snapshot owns them all. */
static int adopt_parent(snap_store *s, struct snap_manifest *m)
{
	struct snap_manifest **l = NULL, *p = NULL;
	size_t n = 0;
	int r;

	if (m->n_parts < 2)
		return 0;
	if (m->parent) {
		r = snap_load(s, m->parent, &p);
		if (r < 0)
			return err_set(r, "parent snapshot %s: %s", m->parent, err_msg());
	} else {
		r = snap_list(s, &l, &n);
		if (r < 0)
			return r;
		for (size_t i = n; i-- > 0 && !p;)
			for (size_t j = 0; !p && j < l[i]->n_parts; j++)
				if (l[i]->kind != SNAP_ZYGOTE && !l[i]->parts[j].inherited &&
				    l[i]->status == SNAP_READY &&
				    !strcmp(l[i]->parts[j].blob, m->parts[1].blob))
					p = TAKE_PTR(l[i]);
		snap_list_free(l, n);
		if (!p)
			return 0;
		m->parent = strdup(p->id);
		if (!m->parent) {
			snap_manifest_free(p);
			return -ENOMEM;
		}
	}
	for (size_t i = 1; i < m->n_parts; i++)
		for (size_t j = 0; j < p->n_parts; j++)
			if (!strcmp(p->parts[j].blob, m->parts[i].blob)) {
				m->parts[i].inherited = true;
				memcpy(m->parts[i].sha256, p->parts[j].sha256, 65);
				m->parts[i].size = p->parts[j].size;
			}
	snap_manifest_free(p);
	return 0;
}

static int sync_guest(vm *v, const struct snap_capture_opts *o)
{
	agent_client *c = NULL;
	int r;

	if (o->sync_fn) {
		r = o->sync_fn(o->sync_ud);
		return r < 0 ? err_set(r, "cannot sync the guest's disks: %s", strerror(-r)) : 0;
	}
	if (!o->agent_socket)
		return 0;
	r = snapvm_agent_connect(v, 10000, &c);
	if (r == 0)
		r = snapvm_guest_sync(c, SYNC_TIMEOUT_MS);
	agent_client_free(c);
	return r;
}

/* Restore the stream into a helper VM whose RAM is the shared file ram,
 * save its device state without RAM into state_fd. */
static int convert_stream(snap_store *s, vm_driver *d, const struct vm_info *info,
			  char *const *layers, int stream_fd, const char *ram, int state_fd)
{
	_cleanup_free_ char *name = snapvm_helper_name("snapconv");
	struct vm_config c = {0};
	vm *h = NULL;
	int r;

	(void)s;
	if (!name)
		return -ENOMEM;
	c.name = name;
	c.image_dir = info->image_dir;
	c.vcpus = info->vcpus;
	c.memory_mib = info->memory_mib;
	c.disk_bytes = info->disk_bytes;
	c.disk_layers = (const char *const *)layers;
	c.ram_file = ram;
	c.ram_shared = true;
	c.incoming = true;
	c.incoming_fd = stream_fd;
	c.incoming_ignore_shared = false;
	c.stay_paused = true; /* never runs: no side effects on disk or clock */
	if (lseek(stream_fd, 0, SEEK_SET) < 0)
		return -errno;
	r = vm_start(d, &c, &h);
	if (r < 0)
		return err_set(r, "%s", err_msg());
	r = vm_save_state(h, state_fd, true);
	if (r < 0)
		err_set(r, "%s", err_msg());
	if (vm_destroy(h) < 0)
		log_warn_f(LOG_FIELDS({"vm", name}), "cannot remove the conversion helper: %s",
			   err_msg());
	vm_free(h);
	return r;
}

/* Step 3: parts ram+state (shared-file) or stream. */
static int capture_memory(snap_store *s, vm_driver *d, struct snap_manifest *m,
			  const struct vm_info *info, int stream_fd, bool stream_only)
{
	_cleanup_free_ char *ram = snap_blob_new_name("ram", "");
	_cleanup_free_ char *state = snap_blob_new_name("state", ".zst");
	_cleanup_free_ char *stream = snap_blob_new_name("stream", ".zst");
	_cleanup_free_ char *ram_path = NULL, *state_path = NULL, *stream_path = NULL;
	_cleanup_strv_ char **layers = NULL;
	_cleanup_close_ int state_fd = -1;
	long long t0 = clock_mono_ms();
	int r;

	if (!ram || !state || !stream)
		return -ENOMEM;
	ram_path = snap_blob_path(s, ram);
	state_path = snap_blob_path(s, state);
	stream_path = snap_blob_path(s, stream);
	if (!ram_path || !state_path || !stream_path)
		return -ENOMEM;
	r = snapvm_layer_paths(s, m, &layers);
	if (r < 0)
		return r;

	/* Name the blobs before they exist (see the top comment). */
	m->kind = SNAP_MEMORY;
	m->mem_mode = SNAP_MEM_SHARED_FILE;
	if ((r = snapvm_add_part(m, SNAP_PART_RAM, ram, false)) < 0 ||
	    (r = snapvm_add_part(m, SNAP_PART_STATE, state, false)) < 0 ||
	    (r = snapvm_publish(s, m)) < 0)
		return r;

	state_fd = snapvm_tmpfile(s->blobs_dir);
	if (state_fd < 0)
		return err_set(state_fd, "cannot create a file in %s: %s", s->blobs_dir,
			       strerror(-state_fd));
	r = stream_only ? err_set(-ECANCELED, "the shared-file form was not asked for")
			: convert_stream(s, d, info, layers, stream_fd, ram_path, state_fd);
	if (r == 0)
		r = snapvm_compress(state_fd, state_path);
	if (r == 0) {
		log_info("snapshot %s: memory in shared-file form (converted in %lld ms)", m->id,
			 clock_mono_ms() - t0);
		return 0;
	}
	if (!stream_only)
		log_warn("snapshot %s: cannot convert the memory to the shared-file form, keeping "
			 "the whole migration stream instead (forks will not share memory): %s",
			 m->id, err_msg());
	/* parts are [layers..., ram, state]: state becomes the stream */
	m->mem_mode = SNAP_MEM_STREAM;
	free(m->parts[m->n_parts - 1].blob);
	free(m->parts[m->n_parts - 2].blob);
	m->n_parts -= 2;
	r = snapvm_add_part(m, SNAP_PART_STREAM, stream, false);
	if (r == 0)
		r = snapvm_publish(s, m);
	(void)unlink(ram_path);
	(void)unlink(state_path);
	if (r == 0)
		r = snapvm_compress(stream_fd, stream_path);
	return r;
}

int snap_capture(snap_store *s, vm_driver *d, vm *v, const struct snap_capture_opts *o,
		 struct snap_manifest **ret)
{
	_cleanup_free_ char *id = o->id ? strdup(o->id) : snap_new_id();
	_cleanup_free_ char *layer = snap_blob_new_name("layer", ".qcow2"), *layer_path = NULL;
	_cleanup_close_ int stream_fd = -1;
	struct snap_manifest *m = NULL;
	struct vm_info info = {0};
	long long t_pause = 0, paused_ms = 0;
	bool paused = false;
	int r;

	*ret = NULL;
	if (!id || !layer)
		return -ENOMEM;
	if (!snap_id_is_valid(id))
		return err_set(-EINVAL, "invalid snapshot id '%s'", id);
	layer_path = snap_blob_path(s, layer);
	if (!layer_path)
		return -ENOMEM;
	r = vm_get_info(v, &info);
	if (r < 0)
		return err_set(r, "cannot capture VM %s: %s", vm_name(v), err_msg());
	if (info.ram_shared) {
		r = err_set(-EINVAL,
			    "cannot capture VM %s: its memory is a shared file (a "
			    "zygote build?)",
			    vm_name(v));
		goto out;
	}

	m = calloc(1, sizeof(*m));
	if (!m) {
		r = -ENOMEM;
		goto out;
	}
	m->format_version = SNAP_FORMAT_VERSION;
	m->id = strdup(id);
	m->name = o->name ? strdup(o->name) : NULL;
	m->parent = o->parent ? strdup(o->parent) : NULL;
	/* fs until the memory parts exist (a manifest is always consistent) */
	m->kind = SNAP_FS;
	m->mem_mode = SNAP_MEM_NONE;
	m->status = SNAP_BUILDING;
	m->image_dir = strdup(info.image_dir);
	m->source_vm = strdup(vm_name(v));
	m->vcpus = info.vcpus;
	m->memory_mib = info.memory_mib;
	m->disk_bytes = info.disk_bytes;
	m->created_ms = clock_wall_ms();
	if (!m->id || (o->name && !m->name) || (o->parent && !m->parent) || !m->image_dir ||
	    !m->source_vm) {
		r = -ENOMEM;
		goto out;
	}
	r = snap_image_digest(info.image_dir, &m->image_digest);
	if (r < 0)
		goto out;
	r = snapvm_add_part(m, SNAP_PART_LAYER, layer, false);
	for (char **p = info.layers; r == 0 && *p; p++) {
		const char *blob = NULL;

		r = layer_blob(s, *p, &blob);
		if (r == 0)
			r = snapvm_add_part(m, SNAP_PART_LAYER, blob, false);
	}
	if (r == 0)
		r = adopt_parent(s, m);
	if (r < 0)
		goto out;
	r = snapvm_publish(s, m);
	if (r < 0)
		goto out;

	/* 1. the guest's dirty pages go to the disk */
	r = sync_guest(v, o);
	if (r < 0)
		goto out_discard;

	/* 2. the only time the guest stands still (briefly) */
	if (o->include_memory) {
		stream_fd = snapvm_tmpfile(s->blobs_dir);
		if (stream_fd < 0) {
			r = err_set(stream_fd, "cannot create a file in %s: %s", s->blobs_dir,
				    strerror(-stream_fd));
			goto out_discard;
		}
	}
	if (o->include_memory) {
		/* live: the guest runs while its RAM is copied and stops only
		 * for the last dirty pages, the disk freeze and device state */
		r = vm_capture_live(v, layer_path, stream_fd, &paused_ms);
		if (r < 0) {
			err_set(r, "cannot capture VM %s: %s", vm_name(v), err_msg());
			goto out_discard;
		}
	} else {
		t_pause = clock_mono_ms();
		r = vm_pause(v);
		if (r < 0) {
			err_set(r, "%s", err_msg());
			goto out_discard;
		}
		paused = true;
		r = vm_freeze_disk(v, layer_path);
		if (r < 0)
			err_set(r, "cannot capture VM %s: %s", vm_name(v), err_msg());
		if (vm_resume(v) < 0) {
			log_error_f(LOG_FIELDS({"vm", vm_name(v)}),
				    "cannot resume after a capture: %s", err_msg());
			if (r == 0)
				r = err_set(-EIO, "VM %s did not resume after the capture: %s",
					    vm_name(v), err_msg());
		}
		paused = false;
		paused_ms = clock_mono_ms() - t_pause;
		if (r < 0)
			goto out_discard;
	}

	/* 3. memory in the form forks can share */
	if (o->include_memory) {
		r = capture_memory(s, d, m, &info, stream_fd, o->stream_only);
		if (r < 0)
			goto out_discard;
	}

	/* 4. checksums (inherited layers keep the parent's), then ready */
	for (size_t i = 0; i < m->n_parts && r == 0; i++)
		if (!m->parts[i].sha256[0])
			r = snapvm_seal_part(s, &m->parts[i]);
	if (r < 0)
		goto out_discard;
	m->status = SNAP_READY;
	r = snapvm_publish(s, m);
	if (r < 0)
		goto out_discard;
	if (m->mem_mode == SNAP_MEM_SHARED_FILE) {
		_cleanup_free_ char *ram =
		    snap_blob_path(s, snap_manifest_part(m, SNAP_PART_RAM)->blob);

		if (ram)
			snapvm_drop_cache(ram);
	}
	log_info("snapshot %s of VM %s: %s%s, guest paused %lld ms", m->id, vm_name(v),
		 snap_kind_to_string(m->kind),
		 m->kind == SNAP_MEMORY
		     ? (m->mem_mode == SNAP_MEM_STREAM ? " (stream)" : " (shared-file)")
		     : "",
		 paused_ms);
	*ret = TAKE_PTR(m);
	goto out;

out_discard:
	if (paused)
		(void)vm_resume(v);
	snapvm_discard(s, id);
out:
	snap_manifest_free(m);
	vm_info_release(&info);
	return r;
}
