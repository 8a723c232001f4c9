/* SPDX-License-Identifier: Apache-2.0 */
/*
 * verify.c - integrity of snapshots: SHA-256 of the parts (OpenSSL EVP,
 * streamed through a 1 MiB buffer), the image a snapshot was taken on,
 * and a per-process cache of files that verified.
 *
 * The cache maps (device, inode, size, mtime, ctime) to the SHA-256 the file
 * had: a restore verifies a snapshot's parts without reading gigabytes again
 * as long as nobody touched them. ctime cannot be set from user space, so a
 * change that restores the old mtime is still seen. It holds a bounded
 * number of entries (oldest replaced first) under a mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "snapshot/snap_int.h"

#define HASH_BUF (1024 * 1024)
#define PROGRESS_STEP (16ULL * 1024 * 1024)
#define VCACHE_N 256
#define IMAGE_MANIFEST_MAX (1024 * 1024)

struct vcache_ent {
	bool used;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	char sha256[65];
};

static pthread_mutex_t vcache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct vcache_ent vcache[VCACHE_N];
static size_t vcache_next;

static bool same_file(const struct vcache_ent *e, const struct stat *st)
{
	return e->used && e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
	       e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec &&
	       e->ctime.tv_sec == st->st_ctim.tv_sec && e->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

static bool vcache_hit(const struct stat *st, const char *sha256)
{
	bool hit = false;

	pthread_mutex_lock(&vcache_mu);
	for (size_t i = 0; i < VCACHE_N && !hit; i++)
		hit = same_file(&vcache[i], st) && !strcmp(vcache[i].sha256, sha256);
	pthread_mutex_unlock(&vcache_mu);
	return hit;
}

static void vcache_put(const struct stat *st, const char *sha256)
{
	struct vcache_ent *e = NULL;

	pthread_mutex_lock(&vcache_mu);
	for (size_t i = 0; i < VCACHE_N && !e; i++)
		if (vcache[i].used && vcache[i].dev == st->st_dev && vcache[i].ino == st->st_ino)
			e = &vcache[i];
	if (!e) {
		e = &vcache[vcache_next];
		vcache_next = (vcache_next + 1) % VCACHE_N;
	}
	e->used = true;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->mtime = st->st_mtim;
	e->ctime = st->st_ctim;
	memcpy(e->sha256, sha256, sizeof(e->sha256));
	pthread_mutex_unlock(&vcache_mu);
}

void snap_verify_cache_clear(void)
{
	pthread_mutex_lock(&vcache_mu);
	memset(vcache, 0, sizeof(vcache));
	vcache_next = 0;
	pthread_mutex_unlock(&vcache_mu);
}

int snap_sha256_fd(int fd, char hex[65], uint64_t *ret_size,
		   void (*progress)(void *ud, uint64_t done), void *ud)
{
	_cleanup_free_ unsigned char *buf = malloc(HASH_BUF);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint64_t off = 0, reported = 0;
	EVP_MD_CTX *ctx;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return -EIO;
	}
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		ssize_t n = pread(fd, buf, HASH_BUF, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			r = -EIO;
			break;
		}
		off += (uint64_t)n;
		if (progress && off - reported >= PROGRESS_STEP) {
			progress(ud, off);
			reported = off;
		}
	}
	if (r == 0 && EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		r = -EIO;
	EVP_MD_CTX_free(ctx);
	/* Hashing read the whole file into the page cache, holes included:
	 * give back what nobody maps (a RAM blob is 512 MiB, forks need only
	 * the pages their guests touch). Dirty pages stay. */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (r < 0)
		return r;
	if (progress && off != reported)
		progress(ud, off);
	snap_hex(md, mdlen, hex);
	if (ret_size)
		*ret_size = off;
	return 0;
}

int snap_sha256_file(const char *path, char hex[65], uint64_t *ret_size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	int r;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	r = snap_sha256_fd(fd, hex, ret_size, NULL, NULL);
	if (r == 0)
		vcache_put(&st, hex); /* a restore right after a capture need not hash again */
	return r;
}

/* ---- the image ------------------------------------------------------------- */

static const char *file_sha(json_t *files, const char *name)
{
	const char *s = json_string_value(json_object_get(json_object_get(files, name), "sha256"));
	size_t n;

	if (!s)
		return NULL;
	for (n = 0; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return NULL;
	return n == 64 ? s : NULL;
}

int snap_image_digest(const char *image_dir, char **ret)
{
	_cleanup_free_ char *path = NULL, *text = NULL, *lines = NULL;
	const char *kernel, *initrd, *rootfs;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	json_t *root, *files;
	size_t len;
	int r;

	if (asprintf(&path, "%s/manifest.json", image_dir) < 0) {
		path = NULL;
		return err_set(-ENOMEM, "out of memory");
	}
	r = snap_read_file(path, IMAGE_MANIFEST_MAX, &text, &len);
	if (r == -ENOENT) {
		*ret = strdup("");
		return *ret ? 0 : err_set(-ENOMEM, "out of memory");
	}
	if (r < 0)
		return err_set(r, "image %s: cannot read manifest.json: %s", image_dir,
			       strerror(-r));
	root = json_loadb(text, len, 0, NULL);
	if (!root)
		return err_set(-EBADMSG, "image %s: manifest.json is not valid JSON", image_dir);
	files = json_object_get(root, "files");
	/* the kernel vm_start() boots: vmlinux if the image has it */
	kernel = json_object_get(files, "vmlinux") ? file_sha(files, "vmlinux")
						   : file_sha(files, "vmlinuz");
	initrd = file_sha(files, "initrd.img");
	rootfs = file_sha(files, "rootfs.ext4");
	if (!kernel || !initrd || !rootfs) {
		json_decref(root);
		*ret = strdup("");
		return *ret ? 0 : err_set(-ENOMEM, "out of memory");
	}
	r = asprintf(&lines, "kernel %s\ninitrd %s\nrootfs %s\n", kernel, initrd, rootfs);
	json_decref(root);
	if (r < 0) {
		lines = NULL;
		return err_set(-ENOMEM, "out of memory");
	}
	if (EVP_Digest(lines, strlen(lines), md, &mdlen, EVP_sha256(), NULL) != 1)
		return err_set(-EIO, "SHA-256 failed");
	snap_hex(md, mdlen, hex);
	if (asprintf(ret, "sha256:%s", hex) < 0)
		return err_set(-ENOMEM, "out of memory");
	return 0;
}

static bool exists_in(const char *dir, const char *name)
{
	_cleanup_free_ char *p = NULL;
	struct stat st;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return false;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int verify_image(const struct snap_manifest *m)
{
	_cleanup_free_ char *now = NULL;
	static const char *const need[] = {"initrd.img", "rootfs.ext4"};
	struct stat st;
	int r;

	if (stat(m->image_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return err_set(-ENOENT, "snapshot %s: image %s: missing", m->id, m->image_dir);
	if (!exists_in(m->image_dir, "vmlinux") && !exists_in(m->image_dir, "vmlinuz"))
		return err_set(-ENOENT, "snapshot %s: image %s: no vmlinux or vmlinuz", m->id,
			       m->image_dir);
	for (size_t i = 0; i < ARRAY_SIZE(need); i++)
		if (!exists_in(m->image_dir, need[i]))
			return err_set(-ENOENT, "snapshot %s: image %s: no %s", m->id, m->image_dir,
				       need[i]);
	if (!m->image_digest || !*m->image_digest)
		return 0;
	r = snap_image_digest(m->image_dir, &now);
	if (r < 0) {
		char why[512];

		snprintf(why, sizeof(why), "%s", err_msg());
		return err_set(r, "snapshot %s: %s", m->id, why);
	}
	if (strcmp(now, m->image_digest))
		return err_set(-ESTALE,
			       "snapshot %s: image %s changed since the snapshot was taken "
			       "(its digest was %s, now %s)",
			       m->id, m->image_dir, m->image_digest, *now ? now : "unknown");
	return 0;
}

/* ---- parts ----------------------------------------------------------------- */

struct vpart {
	const struct snap_part *p;
	int fd;
	struct stat st;
	bool hash;
};

struct vprog {
	void (*fn)(void *ud, uint64_t done, uint64_t total);
	void *ud;
	uint64_t base, total;
};

static void vprog_step(void *ud, uint64_t done)
{
	struct vprog *v = ud;

	v->fn(v->ud, v->base + done, v->total);
}

static int part_err(const struct snap_manifest *m, const struct snap_part *p, int err,
		    const char *what)
{
	return err_set(err, "snapshot %s: part %s (blobs/%s): %s", m->id,
		       snap_part_role_to_string(p->role), p->blob, what);
}

/* open and stat every part: the cheap checks fail before any hashing */
static int open_part(snap_store *s, const struct snap_manifest *m, struct vpart *v, bool full)
{
	_cleanup_free_ char *path = snap_blob_path(s, v->p->blob);
	char what[160];

	if (!path)
		return err_set(-ENOMEM, "out of memory");
	v->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (v->fd < 0 && errno == ENOENT)
		return part_err(m, v->p, -ENOENT, "missing");
	if (v->fd < 0 && errno == ELOOP)
		return part_err(m, v->p, -EBADMSG, "is a symbolic link, not a file");
	if (v->fd < 0) {
		snprintf(what, sizeof(what), "cannot open: %s", strerror(errno));
		return part_err(m, v->p, -errno, what);
	}
	if (fstat(v->fd, &v->st) < 0) {
		snprintf(what, sizeof(what), "cannot stat: %s", strerror(errno));
		return part_err(m, v->p, -errno, what);
	}
	if (!S_ISREG(v->st.st_mode))
		return part_err(m, v->p, -EBADMSG, "not a regular file");
	if ((uint64_t)v->st.st_size != v->p->size) {
		snprintf(what, sizeof(what), "size %llu but the manifest says %llu%s",
			 (unsigned long long)v->st.st_size, (unsigned long long)v->p->size,
			 (uint64_t)v->st.st_size < v->p->size ? " (truncated?)" : "");
		return part_err(m, v->p, -EBADMSG, what);
	}
	v->hash = full || !vcache_hit(&v->st, v->p->sha256);
	return 0;
}

int snap_verify(snap_store *s, const struct snap_manifest *m, bool full,
		void (*progress)(void *ud, uint64_t done, uint64_t total), void *ud)
{
	struct vpart parts[SNAP_MAX_PARTS];
	struct vprog prog = {progress, ud, 0, 0};
	size_t n = m->n_parts < SNAP_MAX_PARTS ? m->n_parts : SNAP_MAX_PARTS;
	int r = 0;

	if (m->status == SNAP_BUILDING)
		return err_set(-EBUSY, "snapshot %s: still being built", m->id);
	if (m->status == SNAP_FAILED)
		return err_set(-EINVAL, "snapshot %s: failed%s%s", m->id,
			       m->status_message ? ": " : "",
			       m->status_message ? m->status_message : "");
	r = verify_image(m);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		parts[i] = (struct vpart){.p = &m->parts[i], .fd = -EBADF};
	for (size_t i = 0; i < n && r == 0; i++) {
		r = open_part(s, m, &parts[i], full);
		if (r == 0 && parts[i].hash)
			prog.total += parts[i].p->size;
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		struct vpart *v = &parts[i];
		char hex[65], what[160];
		uint64_t size = 0;
		struct stat after;

		if (!v->hash)
			continue;
		r = snap_sha256_fd(v->fd, hex, &size, progress ? vprog_step : NULL, &prog);
		if (r < 0) {
			snprintf(what, sizeof(what), "cannot read: %s", strerror(-r));
			r = part_err(m, v->p, r, what);
			break;
		}
		prog.base += v->p->size;
		if (size != v->p->size) {
			snprintf(what, sizeof(what), "size changed to %llu while it was read",
				 (unsigned long long)size);
			r = part_err(m, v->p, -EBADMSG, what);
			break;
		}
		if (strcmp(hex, v->p->sha256)) {
			r = part_err(m, v->p, -EBADMSG,
				     "SHA-256 mismatch: the file was changed or damaged");
			break;
		}
		/* cache only what did not change while it was read */
		if (fstat(v->fd, &after) == 0) {
			struct vcache_ent e = {.used = true,
					       .dev = v->st.st_dev,
					       .ino = v->st.st_ino,
					       .size = v->st.st_size,
					       .mtime = v->st.st_mtim,
					       .ctime = v->st.st_ctim};

			if (same_file(&e, &after))
				vcache_put(&v->st, hex);
		}
	}
	for (size_t i = 0; i < n; i++)
		if (parts[i].fd >= 0)
			close(parts[i].fd);
	return r;
}

int snap_blob_check(snap_store *s, const struct snap_part *p)
{
	_cleanup_free_ char *path = snap_blob_path(s, p->blob);
	_cleanup_close_ int fd = -EBADF;
	struct stat st, after;
	char hex[65];
	uint64_t size;
	int r;

	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return errno == ELOOP ? -EBADMSG : -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != p->size)
		return -EBADMSG;
	if (vcache_hit(&st, p->sha256))
		return 0;
	r = snap_sha256_fd(fd, hex, &size, NULL, NULL);
	if (r < 0)
		return r;
	if (size != p->size || strcmp(hex, p->sha256))
		return -EBADMSG;
	if (fstat(fd, &after) == 0 && after.st_ctim.tv_sec == st.st_ctim.tv_sec &&
	    after.st_ctim.tv_nsec == st.st_ctim.tv_nsec)
		vcache_put(&st, hex);
	return 0;
}
