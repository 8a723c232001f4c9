/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store.c - the snapshot store on disk: STATE/snapshots/ID/manifest.json,
 * STATE/snapshots/blobs/NAME and the .lock that serialises delete, GC and
 * publishing against restores (docs/snapshots.md).
 *
 * A snap_store is an open directory plus the lock file; it may be shared by
 * threads (the lock is a flock() plus an rwlock for the threads of this
 * process). Manifests are written atomically and always re-read through the
 * same checks as an untrusted manifest, so a manifest that would not load is
 * never written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "snapshot/snap_int.h"

static int mkdir_ok(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int snap_store_open(const char *state_dir, snap_store **ret)
{
	_cleanup_free_ char *abs = NULL;
	snap_store *s;
	int r;

	if (!state_dir || !*state_dir)
		return err_set(-EINVAL, "snapshot store: no state directory given");
	r = mkdir_ok(state_dir, 0711);
	if (r < 0)
		return err_set(r, "cannot create the state directory %s: %s", state_dir,
			       strerror(-r));
	abs = realpath(state_dir, NULL);
	if (!abs)
		return err_set(-errno, "state directory %s: %s", state_dir, strerror(errno));
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(-ENOMEM, "out of memory");
	s->lock_fd = -EBADF;
	pthread_rwlock_init(&s->rw, NULL);
	pthread_mutex_init(&s->mu, NULL);
	s->state_dir = TAKE_PTR(abs);
	if (asprintf(&s->dir, "%s/snapshots", s->state_dir) < 0)
		s->dir = NULL;
	if (asprintf(&s->blobs_dir, "%s/snapshots/blobs", s->state_dir) < 0)
		s->blobs_dir = NULL;
	if (asprintf(&s->vms_dir, "%s/vms", s->state_dir) < 0)
		s->vms_dir = NULL;
	if (!s->dir || !s->blobs_dir || !s->vms_dir) {
		snap_store_free(s);
		return err_set(-ENOMEM, "out of memory");
	}
	/* 0711: others may reach a blob they are given, not list them */
	if ((r = mkdir_ok(s->dir, 0711)) < 0 || (r = mkdir_ok(s->blobs_dir, 0711)) < 0) {
		err_set(r, "cannot create %s: %s", s->blobs_dir, strerror(-r));
		snap_store_free(s);
		return r;
	}
	{
		_cleanup_free_ char *lock = NULL;

		if (asprintf(&lock, "%s/.lock", s->dir) < 0) {
			snap_store_free(s);
			return err_set(-ENOMEM, "out of memory");
		}
		s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (s->lock_fd < 0 && (errno == EACCES || errno == EROFS))
			s->lock_fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (s->lock_fd < 0) {
			r = -errno;
			err_set(r, "cannot open %s: %s", lock, strerror(errno));
			snap_store_free(s);
			return r;
		}
	}
	*ret = s;
	return 0;
}

snap_store *snap_store_free(snap_store *s)
{
	if (!s)
		return NULL;
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pthread_rwlock_destroy(&s->rw);
	pthread_mutex_destroy(&s->mu);
	free(s->state_dir);
	free(s->dir);
	free(s->blobs_dir);
	free(s->vms_dir);
	free(s);
	return NULL;
}

const char *snap_store_dir(const snap_store *s)
{
	return s->dir;
}

const char *snap_store_state_dir(const snap_store *s)
{
	return s->state_dir;
}

char *snap_blob_path(const snap_store *s, const char *blob)
{
	char *p;

	if (asprintf(&p, "%s/%s", s->blobs_dir, blob) < 0)
		return NULL;
	return p;
}

char *snap_manifest_dir(const snap_store *s, const char *id)
{
	char *p;

	if (asprintf(&p, "%s/%s", s->dir, id) < 0)
		return NULL;
	return p;
}

char *snap_manifest_path(const snap_store *s, const char *id)
{
	char *p;

	if (asprintf(&p, "%s/%s/manifest.json", s->dir, id) < 0)
		return NULL;
	return p;
}

static int random_bytes(void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = getrandom((char *)buf + got, n - got, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		got += (size_t)k;
	}
	return 0;
}

char *snap_blob_new_name(const char *prefix, const char *suffix)
{
	unsigned char rnd[8];
	char hex[17], *name;

	if (random_bytes(rnd, sizeof(rnd)) < 0)
		return NULL;
	snap_hex(rnd, sizeof(rnd), hex);
	if (asprintf(&name, "%s-%s%s", prefix ? prefix : "blob", hex, suffix ? suffix : "") < 0)
		return NULL;
	if (!snap_blob_name_is_valid(name)) {
		free(name);
		return NULL;
	}
	return name;
}

char *snap_new_id(void)
{
	unsigned char u[16];
	char hex[33], *id;

	if (random_bytes(u, sizeof(u)) < 0)
		return NULL;
	u[6] = (u[6] & 0x0f) | 0x40; /* version 4 */
	u[8] = (u[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snap_hex(u, sizeof(u), hex);
	if (asprintf(&id, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20) <
	    0)
		return NULL;
	return id;
}

/* ---- locks ----------------------------------------------------------------- */

int snap_lock(snap_store *s, bool exclusive)
{
	int r = 0;

	if (exclusive)
		pthread_rwlock_wrlock(&s->rw);
	else
		pthread_rwlock_rdlock(&s->rw);
	pthread_mutex_lock(&s->mu);
	if (exclusive || s->shared == 0) {
		while (flock(s->lock_fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
			if (errno != EINTR) {
				r = -errno;
				break;
			}
		}
	}
	if (r == 0) {
		if (exclusive)
			s->excl = true;
		else
			s->shared++;
	}
	pthread_mutex_unlock(&s->mu);
	if (r < 0) {
		pthread_rwlock_unlock(&s->rw);
		return err_set(r, "cannot lock %s/.lock: %s", s->dir, strerror(-r));
	}
	return 0;
}

void snap_unlock(snap_store *s)
{
	pthread_mutex_lock(&s->mu);
	if (s->excl) {
		(void)flock(s->lock_fd, LOCK_UN);
		s->excl = false;
	} else if (s->shared > 0 && --s->shared == 0) {
		(void)flock(s->lock_fd, LOCK_UN);
	}
	pthread_mutex_unlock(&s->mu);
	pthread_rwlock_unlock(&s->rw);
}

/* ---- manifests ------------------------------------------------------------- */

int snap_scan_ids(snap_store *s, char ***ret)
{
	struct snap_strset set = {0};
	struct dirent *e;
	DIR *d = opendir(s->dir);
	int r = 0;

	if (!d)
		return err_set(-errno, "cannot read %s: %s", s->dir, strerror(errno));
	while ((e = readdir(d))) {
		struct stat st;

		if (!snap_id_is_valid(e->d_name))
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		r = snap_strset_add(&set, e->d_name);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r < 0) {
		snap_strset_release(&set);
		return err_set(r, "out of memory");
	}
	snap_strset_sort(&set);
	*ret = snap_strset_steal(&set);
	return *ret ? 0 : err_set(-ENOMEM, "out of memory");
}

int snap_load(snap_store *s, const char *id, struct snap_manifest **ret)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	struct snap_manifest *m = NULL;
	char err[512];
	size_t len;
	int r;

	if (!snap_id_is_valid(id))
		return err_set(-EINVAL, "\"%s\" is not a snapshot id ([a-z0-9][a-z0-9-]*)",
			       id ? id : "");
	path = snap_manifest_path(s, id);
	if (!path)
		return err_set(-ENOMEM, "out of memory");
	r = snap_read_file(path, SNAP_MANIFEST_MAX, &text, &len);
	if (r == -ENOENT)
		return err_set(r, "snapshot %s: no such snapshot", id);
	if (r == -EFBIG)
		return err_set(-EBADMSG, "snapshot %s: %s is larger than %d bytes", id, path,
			       SNAP_MANIFEST_MAX);
	if (r < 0)
		return err_set(r, "snapshot %s: cannot read %s: %s", id, path, strerror(-r));
	r = snap_manifest_parse(text, len, &m, err, sizeof(err));
	if (r < 0)
		return err_set(r, "snapshot %s: manifest.json: %s", id,
			       strncmp(err, "manifest: ", 10) ? err : err + 10);
	if (strcmp(m->id, id)) {
		err_set(-EBADMSG,
			"snapshot %s: manifest.json: id: \"%s\" is not its directory's name", id,
			m->id);
		snap_manifest_free(m);
		return -EBADMSG;
	}
	*ret = m;
	return 0;
}

void snap_list_free(struct snap_manifest **l, size_t n)
{
	if (!l)
		return;
	for (size_t i = 0; i < n; i++)
		snap_manifest_free(l[i]);
	free(l);
}

static int cmp_created(const void *a, const void *b)
{
	const struct snap_manifest *x = *(struct snap_manifest *const *)a;
	const struct snap_manifest *y = *(struct snap_manifest *const *)b;

	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

int snap_list(snap_store *s, struct snap_manifest ***ret, size_t *ret_n)
{
	struct snap_manifest **l = NULL;
	char **ids = NULL;
	size_t n = 0, cap = 0;
	int r;

	r = snap_scan_ids(s, &ids);
	if (r < 0)
		return r;
	for (char **id = ids; *id; id++) {
		struct snap_manifest *m;

		/* a manifest that does not load (being written, damaged) is left
		 * out; sbx-snapshot ls shows it */
		if (snap_load(s, *id, &m) < 0)
			continue;
		if (n == cap) {
			struct snap_manifest **nl;

			cap = cap ? 2 * cap : 16;
			nl = realloc(l, cap * sizeof(*l));
			if (!nl) {
				snap_manifest_free(m);
				snap_list_free(l, n);
				snap_strv_free(ids);
				return err_set(-ENOMEM, "out of memory");
			}
			l = nl;
		}
		l[n++] = m;
	}
	snap_strv_free(ids);
	if (n)
		qsort(l, n, sizeof(*l), cmp_created);
	err_set(0, "%s", "");
	*ret = l;
	*ret_n = n;
	return 0;
}

int snap_save(snap_store *s, const struct snap_manifest *m)
{
	_cleanup_free_ char *text = NULL, *dir = NULL, *path = NULL;
	struct snap_manifest *check = NULL;
	char err[512];
	int r;

	if (!m->id || !snap_id_is_valid(m->id))
		return err_set(-EINVAL, "cannot save a snapshot: \"%s\" is not a snapshot id",
			       m->id ? m->id : "");
	text = snap_manifest_format(m);
	if (!text)
		return err_set(-EINVAL, "snapshot %s: cannot save: a field is missing or invalid",
			       m->id);
	/* never write what would not load */
	r = snap_manifest_parse(text, strlen(text), &check, err, sizeof(err));
	if (r < 0)
		return err_set(-EINVAL, "snapshot %s: cannot save: %s", m->id, err);
	snap_manifest_free(check);
	dir = snap_manifest_dir(s, m->id);
	path = snap_manifest_path(s, m->id);
	if (!dir || !path)
		return err_set(-ENOMEM, "out of memory");
	if (mkdir(dir, 0755) == 0) {
		r = snap_fsync_dir(s->dir);
		if (r < 0)
			return err_set(r, "snapshot %s: cannot sync %s: %s", m->id, s->dir,
				       strerror(-r));
	} else if (errno != EEXIST) {
		return err_set(-errno, "snapshot %s: cannot create %s: %s", m->id, dir,
			       strerror(errno));
	}
	r = snap_write_atomic(path, text, strlen(text));
	if (r < 0)
		return err_set(r, "snapshot %s: cannot write %s: %s", m->id, path, strerror(-r));
	return 0;
}
