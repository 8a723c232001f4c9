/* SPDX-License-Identifier: Apache-2.0 */
/*
 * refs.c - who uses a blob, found by scanning (nothing is counted on disk):
 * every manifest under STATE/snapshots (any status) and every VM's
 * STATE/vms/NAME/vm.info (its RAM file and disk layers). On top of that:
 * snap_users(), snap_delete() and snap_gc().
 *
 * When a manifest or a vm.info cannot be read, nobody can tell which blobs
 * it names: delete and GC then stop before removing anything and name the
 * file, rather than free what may still be in use. A damaged manifest of
 * the snapshot being deleted is no obstacle (it is the one going away).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "snapshot/snap_int.h"
#include "host/vm/vm.h"

/* A directory without manifest.json is a save that crashed half-way once
 * it is this old (a running snap_save() needs milliseconds). */
#define STALE_DIR_SECONDS 3600

static int add_if_blob(const char *path, const char *blobs_dir, struct snap_strset *out)
{
	size_t n = strlen(blobs_dir);

	if (!path || strncmp(path, blobs_dir, n) || path[n] != '/' ||
	    !snap_blob_name_is_valid(path + n + 1))
		return 0;
	return snap_strset_add(out, path + n + 1);
}

int snap_vm_info_blobs(const char *path, const char *blobs_dir, struct snap_strset *out)
{
	struct vm_info info = {0};
	int r;

	r = vm_info_read(path, &info);
	if (r < 0)
		return r;
	r = add_if_blob(info.ram_file, blobs_dir, out);
	for (char **l = info.layers; r == 0 && l && *l; l++)
		r = add_if_blob(*l, blobs_dir, out);
	vm_info_release(&info);
	return r < 0 ? err_set(r, "out of memory") : r;
}

void snap_vm_uses_free(struct snap_vm_use *u, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(u[i].blob);
		free(u[i].vm);
	}
	free(u);
}

int snap_scan_vm_uses(snap_store *s, struct snap_vm_use **ret, size_t *ret_n)
{
	struct snap_vm_use *u = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *d;
	int r = 0;

	d = opendir(s->vms_dir);
	if (!d && errno == ENOENT) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	if (!d)
		return err_set(-errno, "cannot read %s: %s", s->vms_dir, strerror(errno));
	while (r == 0 && (e = readdir(d))) {
		_cleanup_free_ char *path = NULL;
		struct snap_strset blobs = {0};

		if (e->d_name[0] == '.')
			continue;
		if (asprintf(&path, "%s/%s/vm.info", s->vms_dir, e->d_name) < 0) {
			path = NULL;
			r = err_set(-ENOMEM, "out of memory");
			break;
		}
		r = snap_vm_info_blobs(path, s->blobs_dir, &blobs);
		if (r == -ENOENT || r == -ENOTDIR) {
			r = 0; /* not a VM, or one that has not started yet */
			continue;
		}
		if (r < 0) {
			err_prefix(r, "VM %s", e->d_name); /* the message names the file */
			break;
		}
		for (size_t i = 0; i < blobs.n && r == 0; i++) {
			if (n == cap) {
				struct snap_vm_use *nu;

				cap = cap ? 2 * cap : 16;
				nu = realloc(u, cap * sizeof(*u));
				if (!nu) {
					r = err_set(-ENOMEM, "out of memory");
					break;
				}
				u = nu;
			}
			u[n].blob = strdup(blobs.v[i]);
			u[n].vm = strdup(e->d_name);
			n++;
			if (!u[n - 1].blob || !u[n - 1].vm)
				r = err_set(-ENOMEM, "out of memory");
		}
		snap_strset_release(&blobs);
	}
	closedir(d);
	if (r < 0) {
		snap_vm_uses_free(u, n);
		return r;
	}
	*ret = u;
	*ret_n = n;
	return 0;
}

/* The blobs manifest ID names. *ret_m: the manifest if it passes the strict
 * checks (else NULL). -ENOENT: there is no manifest.json. -EBADMSG or
 * -EPROTONOSUPPORT: unreadable, nobody knows what it names. */
static int manifest_names(snap_store *s, const char *id, struct snap_strset *names,
			  struct snap_manifest **ret_m)
{
	_cleanup_free_ char *path = snap_manifest_path(s, id), *text = NULL;
	struct snap_manifest *m = NULL;
	char err[512];
	size_t len;
	int r;

	*ret_m = NULL;
	if (!path)
		return err_set(-ENOMEM, "out of memory");
	r = snap_read_file(path, SNAP_MANIFEST_MAX, &text, &len);
	if (r == -ENOENT)
		return r;
	if (r < 0)
		return err_set(r, "snapshot %s: cannot read %s: %s", id, path, strerror(-r));
	if (snap_manifest_parse(text, len, &m, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < m->n_parts; i++)
			if ((r = snap_strset_add(names, m->parts[i].blob)) < 0) {
				snap_manifest_free(m);
				return err_set(r, "out of memory");
			}
		*ret_m = m;
		return 0;
	}
	r = snap_manifest_blob_names(text, len, names, err, sizeof(err));
	if (r < 0)
		return err_set(
		    r,
		    "snapshot %s: %s: %s, so which blobs it uses is unknown; nothing was "
		    "removed (repair it, or remove it first with sbx-snapshot rm %s)",
		    id, path, err, id);
	return 0;
}

/* Blobs in use: named by a manifest (other than skip_id; building ones
 * only unless dead_building, then their ids go to dead) or by a VM. */
static int collect_used(snap_store *s, const char *skip_id, bool dead_building,
			struct snap_strset *used, struct snap_strset *dead,
			struct snap_strset *no_manifest)
{
	struct snap_vm_use *u = NULL;
	char **ids = NULL;
	size_t n = 0;
	int r;

	r = snap_scan_ids(s, &ids);
	if (r < 0)
		return r;
	for (char **id = ids; *id && r >= 0; id++) {
		struct snap_strset names = {0};
		struct snap_manifest *m = NULL;

		if (skip_id && !strcmp(*id, skip_id))
			continue;
		r = manifest_names(s, *id, &names, &m);
		if (r == -ENOENT) {
			r = no_manifest ? snap_strset_add(no_manifest, *id) : 0;
		} else if (r == 0 && m && m->status == SNAP_BUILDING && dead_building) {
			r = dead ? snap_strset_add(dead, *id) : 0;
		} else if (r == 0) {
			for (size_t i = 0; i < names.n && r == 0; i++)
				r = snap_strset_add(used, names.v[i]);
		}
		snap_manifest_free(m);
		snap_strset_release(&names);
	}
	snap_strv_free(ids);
	if (r < 0)
		return r == -ENOMEM ? err_set(r, "out of memory") : r;
	r = snap_scan_vm_uses(s, &u, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++)
		r = snap_strset_add(used, u[i].blob);
	snap_vm_uses_free(u, n);
	if (r < 0)
		return err_set(r, "out of memory");
	snap_strset_sort(used);
	return 0;
}

int snap_users(snap_store *s, const char *id, char ***ret_vms, char ***ret_children)
{
	struct snap_strset own = {0}, vms = {0}, kids = {0};
	struct snap_manifest *m = NULL, **all = NULL;
	struct snap_vm_use *u = NULL;
	size_t n_all = 0, n_u = 0;
	int r;

	if (!snap_id_is_valid(id))
		return err_set(-EINVAL, "\"%s\" is not a snapshot id", id ? id : "");
	r = manifest_names(s, id, &own, &m);
	snap_manifest_free(m);
	if (r == -ENOENT)
		r = err_set(r, "snapshot %s: no such snapshot", id);
	if (r < 0)
		goto out;
	snap_strset_sort(&own);
	r = snap_scan_vm_uses(s, &u, &n_u);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n_u && r == 0; i++)
		if (snap_strset_has(&own, u[i].blob))
			r = snap_strset_add(&vms, u[i].vm);
	if (r == 0)
		r = snap_list(s, &all, &n_all);
	/* children: every snapshot whose chain of parents reaches id (the
	 * chain is bounded: a loop in damaged manifests ends the walk) */
	for (size_t i = 0; i < n_all && r == 0; i++) {
		const char *p = all[i]->parent;

		for (size_t steps = 0; p && steps <= n_all && r == 0; steps++) {
			if (!strcmp(p, id)) {
				r = snap_strset_add(&kids, all[i]->id);
				break;
			}
			{
				const char *next = NULL;

				for (size_t j = 0; j < n_all; j++)
					if (!strcmp(all[j]->id, p))
						next = all[j]->parent;
				p = next;
			}
		}
	}
	if (r < 0)
		goto out;
	snap_strset_sort(&vms);
	snap_strset_sort(&kids);
	*ret_vms = snap_strset_steal(&vms);
	*ret_children = snap_strset_steal(&kids);
	if (!*ret_vms || !*ret_children) {
		snap_strv_free(*ret_vms);
		snap_strv_free(*ret_children);
		r = err_set(-ENOMEM, "out of memory");
	}
out:
	if (r == -ENOMEM)
		err_set(r, "out of memory");
	snap_list_free(all, n_all);
	snap_vm_uses_free(u, n_u);
	snap_strset_release(&own);
	snap_strset_release(&vms);
	snap_strset_release(&kids);
	return r;
}

/* Unlink blobs/NAME unless used; adds what it took on disk to *freed. */
static int free_blob(snap_store *s, const char *name, const struct snap_strset *used,
		     uint64_t *freed)
{
	_cleanup_free_ char *path = snap_blob_path(s, name);
	struct stat st;

	if (!path)
		return err_set(-ENOMEM, "out of memory");
	if (snap_strset_has(used, name))
		return 0;
	if (lstat(path, &st) < 0)
		return errno == ENOENT
			   ? 0
			   : err_set(-errno, "cannot stat %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return 0;
	if (unlink(path) < 0 && errno != ENOENT)
		return err_set(-errno, "cannot remove %s: %s", path, strerror(errno));
	*freed += (uint64_t)st.st_blocks * 512;
	return 0;
}

/* Remove STATE/snapshots/ID: the manifest first (the snapshot is gone from
 * then on), then the directory. */
static int remove_manifest_dir(snap_store *s, const char *id)
{
	_cleanup_free_ char *dir = snap_manifest_dir(s, id), *path = snap_manifest_path(s, id);
	int r;

	if (!dir || !path)
		return err_set(-ENOMEM, "out of memory");
	if (unlink(path) < 0 && errno != ENOENT)
		return err_set(-errno, "snapshot %s: cannot remove %s: %s", id, path,
			       strerror(errno));
	r = snap_rmtree(dir);
	if (r < 0)
		return err_set(r, "snapshot %s: cannot remove %s: %s", id, dir, strerror(-r));
	(void)snap_fsync_dir(s->dir);
	return 0;
}

int snap_delete(snap_store *s, const char *id, uint64_t *ret_freed_bytes)
{
	struct snap_strset own = {0}, used = {0};
	struct snap_manifest *m = NULL;
	_cleanup_free_ char *dir = NULL;
	uint64_t freed = 0;
	struct stat st;
	int r;

	if (!snap_id_is_valid(id))
		return err_set(-EINVAL, "\"%s\" is not a snapshot id", id ? id : "");
	dir = snap_manifest_dir(s, id);
	if (!dir)
		return err_set(-ENOMEM, "out of memory");
	r = snap_lock(s, true);
	if (r < 0)
		return r;
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		r = err_set(-ENOENT, "snapshot %s: no such snapshot", id);
		goto out;
	}
	/* its own manifest may be damaged: then its blobs are left to GC */
	r = manifest_names(s, id, &own, &m);
	snap_manifest_free(m);
	if (r < 0)
		snap_strset_release(&own);
	r = collect_used(s, id, false, &used, NULL, NULL);
	if (r < 0)
		goto out;
	r = remove_manifest_dir(s, id);
	for (size_t i = 0; i < own.n && r == 0; i++)
		r = free_blob(s, own.v[i], &used, &freed);
	if (r == 0)
		(void)snap_fsync_dir(s->blobs_dir);
out:
	snap_unlock(s);
	snap_strset_release(&own);
	snap_strset_release(&used);
	if (r == 0 && ret_freed_bytes)
		*ret_freed_bytes = freed;
	return r;
}

/* Temporary directories of imports (.import-*): removed unless an import
 * still runs (it holds a flock on its directory). */
static void gc_imports(snap_store *s)
{
	struct dirent *e;
	DIR *d = opendir(s->dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		_cleanup_free_ char *path = NULL;
		_cleanup_close_ int fd = -EBADF;

		if (strncmp(e->d_name, ".import-", 8))
			continue;
		if (asprintf(&path, "%s/%s", s->dir, e->d_name) < 0) {
			path = NULL;
			break;
		}
		fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
			continue;
		(void)snap_rmtree(path);
	}
	closedir(d);
}

int snap_gc(snap_store *s, bool dead_building, uint64_t *ret_freed_bytes)
{
	struct snap_strset used = {0}, dead = {0}, empty = {0};
	uint64_t freed = 0;
	struct dirent *e;
	DIR *d = NULL;
	int r;

	r = snap_lock(s, true);
	if (r < 0)
		return r;
	r = collect_used(s, NULL, dead_building, &used, &dead, &empty);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < dead.n && r == 0; i++)
		r = remove_manifest_dir(s, dead.v[i]);
	for (size_t i = 0; i < empty.n && r == 0; i++) {
		_cleanup_free_ char *dir = snap_manifest_dir(s, empty.v[i]);
		struct stat st;

		if (dir && lstat(dir, &st) == 0 &&
		    (dead_building || st.st_mtime + STALE_DIR_SECONDS < time(NULL)))
			r = remove_manifest_dir(s, empty.v[i]);
	}
	if (r < 0)
		goto out;
	gc_imports(s);
	d = opendir(s->blobs_dir);
	if (!d) {
		r = err_set(-errno, "cannot read %s: %s", s->blobs_dir, strerror(errno));
		goto out;
	}
	/* only names a blob can have: anything else is not ours to remove */
	while (r == 0 && (e = readdir(d)))
		if (snap_blob_name_is_valid(e->d_name))
			r = free_blob(s, e->d_name, &used, &freed);
	closedir(d);
	(void)snap_fsync_dir(s->blobs_dir);
out:
	snap_unlock(s);
	snap_strset_release(&used);
	snap_strset_release(&dead);
	snap_strset_release(&empty);
	if (r == 0 && ret_freed_bytes)
		*ret_freed_bytes = freed;
	return r;
}
