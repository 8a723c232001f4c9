/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zygote.c - the boot cache: one snapshot per image kernel+initramfs and
 * VM shape (vCPUs, memory) of a guest that booted to its agent and has not
 * mounted a root disk yet (kernel command line sbx.init=wait, a blank
 * placeholder disk). Its RAM is a shared file from the start, so no
 * conversion is needed: pause, save the device state without RAM, done.
 * Every fresh start forks it (restore.c) instead of booting.
 *
 * A zygote is found again by its name (ZYGOTE_NAME), image directory, image
 * digest and shape; an image rebuilt in place has another digest, so its
 * old zygote is simply not used any more (sbx-snapshot gc/rm removes it).
 *
 * Also here: snapshots of an image's filesystem as it is (no layers).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
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

#define DEFAULT_VCPUS 1
#define DEFAULT_MEMORY_MIB 512

/* One zygote build at a time per process (two creates racing for the
 * first zygote share the one build). */
static pthread_mutex_t build_lock = PTHREAD_MUTEX_INITIALIZER;

/* The manifest name of the zygotes this build makes and uses. A change of
 * the VM's machine that a booted guest keeps (its CPU features: "arat"
 * made idle guests tickless) bumps it, so zygotes booted on the old
 * machine are not forked any more; like the zygotes of a rebuilt image,
 * they stay on disk until removed (sbx-snapshot rm). */
#define ZYGOTE_NAME "zygote-2"

static struct snap_manifest *new_manifest(enum snap_kind kind, const char *image,
					  const char *digest)
{
	struct snap_manifest *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->format_version = SNAP_FORMAT_VERSION;
	m->id = snap_new_id();
	m->kind = kind;
	m->status = SNAP_BUILDING;
	m->image_dir = strdup(image);
	m->image_digest = strdup(digest);
	m->created_ms = clock_wall_ms();
	if (!m->id || !m->image_dir || !m->image_digest)
		return snap_manifest_free(m);
	return m;
}

static int find_zygote(snap_store *s, const char *image, const char *digest, unsigned vcpus,
		       unsigned memory_mib, char **ret_id)
{
	struct snap_manifest **l = NULL;
	size_t n = 0;
	int r;

	*ret_id = NULL;
	r = snap_list(s, &l, &n);
	if (r < 0)
		return r;
	for (size_t i = n; i-- > 0 && !*ret_id;) {
		const struct snap_manifest *m = l[i];

		if (m->kind == SNAP_ZYGOTE && m->status == SNAP_READY &&
		    !strcmp(m->name ? m->name : "", ZYGOTE_NAME) && !strcmp(m->image_dir, image) &&
		    !strcmp(m->image_digest ? m->image_digest : "", digest) && m->vcpus == vcpus &&
		    m->memory_mib == memory_mib) {
			*ret_id = strdup(m->id);
			if (!*ret_id)
				r = -ENOMEM;
		}
	}
	snap_list_free(l, n);
	return r;
}

static int build_zygote(snap_store *s, vm_driver *d, const char *image, const char *digest,
			unsigned vcpus, unsigned memory_mib, char **ret_id)
{
	_cleanup_free_ char *ram = snap_blob_new_name("ram", "");
	_cleanup_free_ char *state = snap_blob_new_name("state", ".zst");
	_cleanup_free_ char *name = snapvm_helper_name("zygote");
	_cleanup_free_ char *ram_path = NULL, *state_path = NULL;
	_cleanup_close_ int state_fd = -1;
	struct snap_manifest *m = new_manifest(SNAP_ZYGOTE, image, digest);
	struct vm_config c = {0};
	struct vm_info info = {0};
	agent_client *agent = NULL;
	long long t0 = clock_wall_ms();
	vm *v = NULL;
	int r;

	if (!m || !ram || !state || !name) {
		snap_manifest_free(m);
		return -ENOMEM;
	}
	ram_path = snap_blob_path(s, ram);
	state_path = snap_blob_path(s, state);
	if (!ram_path || !state_path) {
		r = -ENOMEM;
		goto out;
	}
	m->mem_mode = SNAP_MEM_SHARED_FILE;
	m->vcpus = vcpus;
	m->memory_mib = memory_mib;
	m->name = strdup(ZYGOTE_NAME);
	if ((r = snapvm_add_part(m, SNAP_PART_RAM, ram, false)) < 0 ||
	    (r = snapvm_add_part(m, SNAP_PART_STATE, state, false)) < 0 ||
	    (r = snapvm_publish(s, m)) < 0)
		goto out;

	log_info("building the zygote of %s (%u vCPU, %u MiB): a cold boot, once", image, vcpus,
		 memory_mib);
	c.name = name;
	c.image_dir = image;
	c.vcpus = vcpus;
	c.memory_mib = memory_mib;
	c.disk_blank = true;
	c.init_wait = true;
	c.ram_file = ram_path;
	c.ram_shared = true;
	r = vm_start(d, &c, &v);
	if (r < 0) {
		err_set(r, "cannot boot the zygote: %s", err_msg());
		goto out_discard;
	}
	r = snapvm_agent_connect(v, SNAPVM_BOOT_WAIT_MS, &agent);
	if (r == 0 && !agent_client_has_cap(agent, "root"))
		r = err_set(-EOPNOTSUPP,
			    "the agent in %s cannot mount its root disk on request "
			    "(no \"root\" capability): rebuild the image",
			    image);
	agent = agent_client_free(agent);
	if (r == 0 && (r = vm_get_info(v, &info)) == 0)
		m->disk_bytes = info.disk_bytes;
	if (r < 0)
		goto out_destroy;
	state_fd = snapvm_tmpfile(s->blobs_dir);
	if (state_fd < 0) {
		r = err_set(state_fd, "cannot create a file in %s: %s", s->blobs_dir,
			    strerror(-state_fd));
		goto out_destroy;
	}
	r = vm_pause(v);
	if (r == 0)
		r = vm_save_state(v, state_fd, true);
	if (r < 0) {
		err_set(r, "cannot save the zygote: %s", err_msg());
		goto out_destroy;
	}
	r = vm_destroy(v);
	if (r < 0) {
		err_set(r, "cannot stop the zygote VM: %s", err_msg());
		goto out_destroy;
	}
	v = vm_free(v);
	r = snapvm_compress(state_fd, state_path);
	for (size_t i = 0; r == 0 && i < m->n_parts; i++)
		r = snapvm_seal_part(s, &m->parts[i]);
	if (r == 0) {
		m->status = SNAP_READY;
		r = snapvm_publish(s, m);
	}
	if (r < 0)
		goto out_discard;
	snapvm_drop_cache(ram_path);
	log_info("zygote %s of %s ready in %lld ms", m->id, image, clock_wall_ms() - t0);
	*ret_id = strdup(m->id);
	r = *ret_id ? 0 : -ENOMEM;
	goto out;

out_destroy:
	if (v && vm_destroy(v) < 0)
		log_warn_f(LOG_FIELDS({"vm", name}), "cannot remove the failed zygote: %s",
			   err_msg());
	vm_free(v);
out_discard:
	snapvm_discard(s, m->id);
out:
	vm_info_release(&info);
	snap_manifest_free(m);
	return r;
}

int snap_zygote_ensure(snap_store *s, vm_driver *d, const char *image_dir, unsigned vcpus,
		       unsigned memory_mib, uint64_t disk_bytes, char **ret_id)
{
	_cleanup_free_ char *digest = NULL;
	char image[PATH_MAX];
	int r;

	(void)disk_bytes; /* forks resize their disk (restore.c) */
	*ret_id = NULL;
	if (!realpath(image_dir, image))
		return err_set(-errno, "image %s: %m", image_dir);
	vcpus = vcpus ? vcpus : DEFAULT_VCPUS;
	memory_mib = memory_mib ? memory_mib : DEFAULT_MEMORY_MIB;
	r = snap_image_digest(image, &digest);
	if (r < 0)
		return r;
	pthread_mutex_lock(&build_lock);
	r = find_zygote(s, image, digest, vcpus, memory_mib, ret_id);
	if (r == 0 && !*ret_id)
		r = build_zygote(s, d, image, digest, vcpus, memory_mib, ret_id);
	pthread_mutex_unlock(&build_lock);
	return r;
}

int snap_from_image(snap_store *s, const char *id, const char *image_dir, const char *name,
		    uint64_t disk_bytes, struct snap_manifest **ret)
{
	_cleanup_free_ char *digest = NULL, *rootfs = NULL;
	struct snap_manifest *m;
	char image[PATH_MAX];
	struct stat st;
	int r;

	*ret = NULL;
	if (!realpath(image_dir, image))
		return err_set(-errno, "image %s: %m", image_dir);
	rootfs = malloc(strlen(image) + sizeof("/rootfs.ext4"));
	if (!rootfs)
		return -ENOMEM;
	sprintf(rootfs, "%s/rootfs.ext4", image);
	if (stat(rootfs, &st) < 0)
		return err_set(-errno, "image %s has no root disk (%s): %m", image, rootfs);
	if (disk_bytes && disk_bytes < (uint64_t)st.st_size)
		return err_set(-EINVAL,
			       "a disk of %llu bytes is smaller than the image's root "
			       "disk (%llu bytes)",
			       (unsigned long long)disk_bytes, (unsigned long long)st.st_size);
	r = snap_image_digest(image, &digest);
	if (r < 0)
		return r;
	if (id && !snap_id_is_valid(id))
		return err_set(-EINVAL, "invalid snapshot id '%s'", id);
	m = new_manifest(SNAP_FS, image, digest);
	if (!m)
		return -ENOMEM;
	if (id) {
		free(m->id);
		m->id = strdup(id);
		if (!m->id) {
			snap_manifest_free(m);
			return -ENOMEM;
		}
	}
	m->name = name ? strdup(name) : NULL;
	m->vcpus = DEFAULT_VCPUS;
	m->memory_mib = DEFAULT_MEMORY_MIB;
	m->disk_bytes = disk_bytes ? disk_bytes : (uint64_t)st.st_size;
	m->status = SNAP_READY;
	r = (name && !m->name) ? -ENOMEM : snapvm_publish(s, m);
	if (r < 0) {
		snap_manifest_free(m);
		return r;
	}
	*ret = m;
	return 0;
}
