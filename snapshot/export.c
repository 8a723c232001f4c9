/* SPDX-License-Identifier: Apache-2.0 */
/*
 * export.c - a snapshot as one file (libarchive: pax tar, zstd): the entry
 * manifest.json first, then blobs/NAME for every part. Sparse files stay
 * sparse: their data extents (SEEK_DATA/SEEK_HOLE) become a GNU sparse map
 * in the pax headers, so a RAM file that is mostly holes costs what its
 * data costs, in the archive and again on the importing host.
 *
 * Export hashes while it reads and stops at a part that no longer matches
 * its manifest. Import trusts nothing in the archive: the manifest goes
 * through the strict parser, only the exact entries it implies are
 * accepted (regular files "blobs/NAME" of the stated size, each once), every
 * blob is hashed as it is written into a temporary directory inside
 * STATE/snapshots, and only then, under the exclusive lock, are the blobs
 * moved into blobs/ and the manifest written. On any error the temporary
 * directory and every blob moved so far are removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include "base/io.h"
#include "base/err.h"
#include "base/cleanup.h"
#include "snapshot/snap_int.h"

#define IO_BUF (1024 * 1024)
#define ZERO_CHUNK 4096

static const unsigned char zeros[IO_BUF];

static int arc_err(struct archive *a, int fallback, const char *what)
{
	int e = archive_errno(a);
	const char *msg = archive_error_string(a);

	return err_set(e > 0 ? -e : fallback, "%s: %s", what, msg ? msg : "libarchive failed");
}

/* hash n zero bytes */
static int hash_zeros(EVP_MD_CTX *ctx, uint64_t n)
{
	while (n) {
		size_t k = n > sizeof(zeros) ? sizeof(zeros) : (size_t)n;

		if (EVP_DigestUpdate(ctx, zeros, k) != 1)
			return -EIO;
		n -= k;
	}
	return 0;
}

static int hash_final(EVP_MD_CTX *ctx, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(ctx, md, &n) != 1)
		return -EIO;
	snap_hex(md, n, hex);
	return 0;
}

/* ---- export ---------------------------------------------------------------- */

static int write_data(struct archive *a, const void *buf, size_t len)
{
	while (len) {
		la_ssize_t n = archive_write_data(a, buf, len);

		if (n <= 0)
			return -EIO;
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

struct extent {
	uint64_t off, len;
};

/* The data extents of a file; a single [0, size) when it has no holes (or
 * the file system cannot tell). */
static int data_extents(int fd, uint64_t size, struct extent **ret, size_t *ret_n)
{
	struct extent *x = NULL;
	size_t n = 0, cap = 0;
	uint64_t off = 0;

	while (off < size) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0) {
			free(x);
			x = malloc(sizeof(*x));
			if (!x)
				return -ENOMEM;
			x[0] = (struct extent){0, size};
			n = 1;
			break;
		}
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		if (n == cap) {
			struct extent *nx = realloc(x, (cap = cap ? 2 * cap : 16) * sizeof(*x));

			if (!nx) {
				free(x);
				return -ENOMEM;
			}
			x = nx;
		}
		x[n++] = (struct extent){(uint64_t)data, (uint64_t)(hole - data)};
		off = (uint64_t)hole;
	}
	*ret = x;
	*ret_n = n;
	return 0;
}

static int export_blob(struct archive *a, const struct snap_manifest *m, const struct snap_part *p,
		       int fd, unsigned char *buf)
{
	_cleanup_free_ struct extent *x = NULL;
	struct archive_entry *e;
	EVP_MD_CTX *ctx = NULL;
	char name[8 + SNAP_BLOB_MAX], hex[65], what[256];
	uint64_t pos = 0;
	struct stat st;
	size_t n = 0;
	int r;

	snprintf(what, sizeof(what), "snapshot %s: part %s (blobs/%s)", m->id,
		 snap_part_role_to_string(p->role), p->blob);
	if (fstat(fd, &st) < 0)
		return err_set(-errno, "%s: %s", what, strerror(errno));
	if ((uint64_t)st.st_size != p->size)
		return err_set(-EBADMSG, "%s: size %llu but the manifest says %llu", what,
			       (unsigned long long)st.st_size, (unsigned long long)p->size);
	r = data_extents(fd, p->size, &x, &n);
	if (r < 0)
		return err_set(r, "%s: %s", what, strerror(-r));
	e = archive_entry_new();
	if (!e)
		return err_set(-ENOMEM, "out of memory");
	snprintf(name, sizeof(name), "blobs/%s", p->blob);
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, st.st_mode & 0644);
	archive_entry_set_size(e, (la_int64_t)p->size);
	archive_entry_set_mtime(e, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	if (!(n == 1 && x[0].off == 0 && x[0].len == p->size)) {
		for (size_t i = 0; i < n; i++)
			archive_entry_sparse_add_entry(e, (la_int64_t)x[i].off,
						       (la_int64_t)x[i].len);
		if (n == 0) /* all hole: an empty extent at the end says so */
			archive_entry_sparse_add_entry(e, (la_int64_t)p->size, 0);
	}
	r = archive_write_header(a, e) == ARCHIVE_OK ? 0 : arc_err(a, -EIO, what);
	archive_entry_free(e);
	if (r < 0)
		return r;
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return err_set(-ENOMEM, "out of memory");
	}
	/* the writer wants the whole file; it drops what falls in holes */
	for (size_t i = 0; i <= n && r == 0; i++) {
		uint64_t off = i < n ? x[i].off : p->size, end = i < n ? x[i].off + x[i].len : off;

		while (pos < off && r == 0) {
			size_t k = off - pos > IO_BUF ? IO_BUF : (size_t)(off - pos);

			r = write_data(a, zeros, k) < 0 ? arc_err(a, -EIO, what) : 0;
			if (r == 0 && EVP_DigestUpdate(ctx, zeros, k) != 1)
				r = err_set(-EIO, "SHA-256 failed");
			pos += k;
		}
		while (pos < end && r == 0) {
			size_t k = end - pos > IO_BUF ? IO_BUF : (size_t)(end - pos);
			ssize_t got = pread(fd, buf, k, (off_t)pos);

			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				r = err_set(got < 0 ? -errno : -EBADMSG, "%s: %s", what,
					    got < 0 ? strerror(errno) : "shorter than its size");
				break;
			}
			r = write_data(a, buf, (size_t)got) < 0 ? arc_err(a, -EIO, what) : 0;
			if (r == 0 && EVP_DigestUpdate(ctx, buf, (size_t)got) != 1)
				r = err_set(-EIO, "SHA-256 failed");
			pos += (uint64_t)got;
		}
	}
	if (r == 0 && hash_final(ctx, hex) < 0)
		r = err_set(-EIO, "SHA-256 failed");
	EVP_MD_CTX_free(ctx);
	if (r == 0 && strcmp(hex, p->sha256))
		r = err_set(-EBADMSG, "%s: SHA-256 mismatch: the file was changed or damaged",
			    what);
	if (r == 0 && archive_write_finish_entry(a) != ARCHIVE_OK)
		r = arc_err(a, -EIO, what);
	return r;
}

static int export_manifest(struct archive *a, const struct snap_manifest *m)
{
	_cleanup_free_ char *text = snap_manifest_format(m);
	struct archive_entry *e;
	int r = 0;

	if (!text)
		return err_set(-ENOMEM, "out of memory");
	e = archive_entry_new();
	if (!e)
		return err_set(-ENOMEM, "out of memory");
	archive_entry_set_pathname(e, "manifest.json");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)strlen(text));
	archive_entry_set_mtime(e, m->created_ms / 1000, 0);
	if (archive_write_header(a, e) != ARCHIVE_OK || write_data(a, text, strlen(text)) < 0 ||
	    archive_write_finish_entry(a) != ARCHIVE_OK)
		r = arc_err(a, -EIO, "export: manifest.json");
	archive_entry_free(e);
	return r;
}

int snap_export(snap_store *s, const char *id, int out_fd)
{
	_cleanup_free_ unsigned char *buf = NULL;
	struct snap_manifest *m = NULL;
	struct archive *a = NULL;
	int fds[SNAP_MAX_PARTS];
	size_t n = 0;
	int r;

	r = snap_load(s, id, &m);
	if (r < 0)
		return r;
	if (m->status != SNAP_READY) {
		r = err_set(-EBUSY, "snapshot %s: is %s, only ready snapshots can be exported", id,
			    snap_status_to_string(m->status));
		goto out;
	}
	/* open every part under the shared lock: an open file stays readable
	 * even if a delete runs while we write */
	r = snap_lock(s, false);
	if (r < 0)
		goto out;
	for (n = 0; n < m->n_parts; n++) {
		_cleanup_free_ char *path = snap_blob_path(s, m->parts[n].blob);

		fds[n] = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY) : -ENOMEM;
		if (fds[n] < 0) {
			r = err_set(path ? -errno : -ENOMEM, "snapshot %s: part %s (blobs/%s): %s",
				    id, snap_part_role_to_string(m->parts[n].role),
				    m->parts[n].blob,
				    errno == ENOENT ? "missing" : strerror(errno));
			break;
		}
	}
	snap_unlock(s);
	if (r < 0)
		goto out;
	buf = malloc(IO_BUF);
	a = archive_write_new();
	if (!buf || !a) {
		r = err_set(-ENOMEM, "out of memory");
		goto out;
	}
	if (archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
	    archive_write_set_format_pax(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a, out_fd) != ARCHIVE_OK) {
		r = arc_err(a, -EIO, "export");
		goto out;
	}
	r = export_manifest(a, m);
	for (size_t i = 0; i < n && r == 0; i++)
		r = export_blob(a, m, &m->parts[i], fds[i], buf);
	if (r == 0 && archive_write_close(a) != ARCHIVE_OK)
		r = arc_err(a, -EIO, "export");
out:
	if (a)
		archive_write_free(a);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	snap_manifest_free(m);
	return r;
}

/* ---- import ---------------------------------------------------------------- */

struct import {
	snap_store *s;
	struct archive *a;
	struct snap_manifest *m;
	char *tmp; /* STATE/snapshots/.import-XXXXXX */
	int tmp_fd;
	bool got[SNAP_MAX_PARTS];
	bool reuse[SNAP_MAX_PARTS]; /* blobs/NAME already holds it */
	bool moved[SNAP_MAX_PARTS]; /* moved into blobs/ by this import */
};

static bool all_zero(const unsigned char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Write a block, leaving holes where whole 4 KiB blocks are zero: a RAM
 * file stays sparse even if the archive stored its zeros. */
static int write_sparse(int fd, const unsigned char *buf, size_t len, uint64_t off)
{
	size_t i = 0, run = 0;
	bool in_run = false;

	while (i < len) {
		size_t k = ZERO_CHUNK - (size_t)((off + i) % ZERO_CHUNK);
		bool zero;

		if (k > len - i)
			k = len - i;
		zero = all_zero(buf + i, k);
		if (zero && in_run) {
			int r = io_pwrite_all(fd, buf + run, i - run, off + run);

			if (r < 0)
				return r;
			in_run = false;
		} else if (!zero && !in_run) {
			run = i;
			in_run = true;
		}
		i += k;
	}
	return in_run ? io_pwrite_all(fd, buf + run, len - run, off + run) : 0;
}

static int import_manifest(struct import *im, struct archive_entry *e)
{
	_cleanup_free_ char *text = NULL, *dir = NULL;
	char err[512];
	la_int64_t size = archive_entry_size(e);
	size_t len = 0;
	struct stat st;
	int r;

	if (strcmp(archive_entry_pathname(e) ? archive_entry_pathname(e) : "", "manifest.json"))
		return err_set(-EBADMSG,
			       "import: the first entry must be manifest.json, not \"%s\"",
			       archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
	if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) ||
	    !archive_entry_size_is_set(e) || size < 0 || size > SNAP_MANIFEST_MAX)
		return err_set(-EBADMSG,
			       "import: manifest.json: not a regular file of at most %d "
			       "bytes",
			       SNAP_MANIFEST_MAX);
	text = malloc((size_t)size + 1);
	if (!text)
		return err_set(-ENOMEM, "out of memory");
	while (len < (size_t)size) {
		la_ssize_t k = archive_read_data(im->a, text + len, (size_t)size - len);

		if (k < 0)
			return arc_err(im->a, -EBADMSG, "import: manifest.json");
		if (k == 0)
			break;
		len += (size_t)k;
	}
	r = snap_manifest_parse(text, len, &im->m, err, sizeof(err));
	if (r < 0)
		return err_set(r, "import: manifest.json: %s", err);
	if (im->m->status != SNAP_READY)
		return err_set(-EBADMSG, "import: snapshot %s is %s, not ready", im->m->id,
			       snap_status_to_string(im->m->status));
	dir = snap_manifest_dir(im->s, im->m->id);
	if (!dir)
		return err_set(-ENOMEM, "out of memory");
	if (lstat(dir, &st) == 0)
		return err_set(-EEXIST, "import: snapshot %s already exists", im->m->id);
	return 0;
}

static int import_blob_data(struct import *im, const struct snap_part *p, int fd)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint64_t pos = 0;
	char hex[65];
	int r = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		return err_set(-ENOMEM, "out of memory");
	}
	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int k = archive_read_data_block(im->a, &buf, &len, &off);

		if (k == ARCHIVE_EOF)
			break;
		if (k != ARCHIVE_OK) {
			r = arc_err(im->a, -EBADMSG, "import: blobs entry");
			break;
		}
		if (off < 0 || (uint64_t)off < pos || (uint64_t)off > p->size ||
		    len > p->size - (uint64_t)off) {
			r = err_set(-EBADMSG, "import: blobs/%s: data outside the file's size",
				    p->blob);
			break;
		}
		r = hash_zeros(ctx, (uint64_t)off - pos);
		if (r == 0 && EVP_DigestUpdate(ctx, buf, len) != 1)
			r = -EIO;
		if (r < 0) {
			r = err_set(r, "SHA-256 failed");
			break;
		}
		r = write_sparse(fd, buf, len, (uint64_t)off);
		if (r < 0) {
			r = err_set(r, "import: cannot write blobs/%s: %s", p->blob, strerror(-r));
			break;
		}
		pos = (uint64_t)off + len;
	}
	if (r == 0 && (hash_zeros(ctx, p->size - pos) < 0 || hash_final(ctx, hex) < 0))
		r = err_set(-EIO, "SHA-256 failed");
	EVP_MD_CTX_free(ctx);
	if (r < 0)
		return r;
	if (ftruncate(fd, (off_t)p->size) < 0 || fsync(fd) < 0)
		return err_set(-errno, "import: cannot write blobs/%s: %s", p->blob,
			       strerror(errno));
	if (strcmp(hex, p->sha256))
		return err_set(-EBADMSG,
			       "import: part %s (blobs/%s): SHA-256 mismatch: the archive was "
			       "changed or damaged",
			       snap_part_role_to_string(p->role), p->blob);
	return 0;
}

static int import_blob(struct import *im, struct archive_entry *e)
{
	const char *path = archive_entry_pathname(e);
	const struct snap_part *p = NULL;
	_cleanup_close_ int fd = -EBADF;
	size_t i;
	int r;

	if (!path)
		path = "";
	for (i = 0; i < im->m->n_parts && !p; i++)
		if (!strncmp(path, "blobs/", 6) && !strcmp(path + 6, im->m->parts[i].blob))
			p = &im->m->parts[i];
	if (!p)
		return err_set(-EBADMSG,
			       "import: unexpected entry \"%s\" (not a part of snapshot %s)", path,
			       im->m->id);
	i--;
	if (im->got[i])
		return err_set(-EBADMSG, "import: entry \"%s\" appears twice", path);
	im->got[i] = true;
	if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) ||
	    archive_entry_symlink(e))
		return err_set(-EBADMSG, "import: entry \"%s\" is not a regular file", path);
	if (!archive_entry_size_is_set(e) || (uint64_t)archive_entry_size(e) != p->size)
		return err_set(-EBADMSG,
			       "import: entry \"%s\": size %lld but the manifest says %llu", path,
			       (long long)archive_entry_size(e), (unsigned long long)p->size);
	r = snap_blob_check(im->s, p);
	if (r == 0) {
		im->reuse[i] = true;
		return archive_read_data_skip(im->a) == ARCHIVE_OK
			   ? 0
			   : arc_err(im->a, -EBADMSG, "import");
	}
	if (r != -ENOENT)
		return err_set(r == -EBADMSG ? -EEXIST : r,
			       "import: blobs/%s already exists with other content", p->blob);
	fd = openat(im->tmp_fd, p->blob, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    (archive_entry_perm(e) & 0644) | 0400);
	if (fd < 0)
		return err_set(-errno, "import: cannot create %s/%s: %s", im->tmp, p->blob,
			       strerror(errno));
	return import_blob_data(im, p, fd);
}

/* Under the exclusive lock: blobs into blobs/, then the manifest. */
static int import_publish(struct import *im)
{
	snap_store *s = im->s;
	_cleanup_free_ char *dir = snap_manifest_dir(s, im->m->id);
	struct stat st;
	int r = 0;

	if (!dir)
		return err_set(-ENOMEM, "out of memory");
	if (lstat(dir, &st) == 0)
		return err_set(-EEXIST, "import: snapshot %s already exists", im->m->id);
	for (size_t i = 0; i < im->m->n_parts && r == 0; i++) {
		const struct snap_part *p = &im->m->parts[i];
		_cleanup_free_ char *path = snap_blob_path(s, p->blob);

		if (!path)
			return err_set(-ENOMEM, "out of memory");
		if (!im->reuse[i]) {
			if (renameat2(im->tmp_fd, p->blob, AT_FDCWD, path, RENAME_NOREPLACE) == 0) {
				im->moved[i] = true;
				continue;
			}
			if (errno != EEXIST)
				return err_set(-errno,
					       "import: cannot move blobs/%s into place: %s",
					       p->blob, strerror(errno));
		}
		/* it exists (now): it must be the same */
		r = snap_blob_check(s, p);
		if (r == -ENOENT)
			r = err_set(-EAGAIN, "import: blobs/%s was removed meanwhile; try again",
				    p->blob);
		else if (r < 0)
			r = err_set(-EEXIST, "import: blobs/%s already exists with other content",
				    p->blob);
	}
	if (r < 0)
		return r;
	(void)snap_fsync_dir(s->blobs_dir);
	return snap_save(s, im->m);
}

static void import_rollback(struct import *im)
{
	for (size_t i = 0; im->m && i < im->m->n_parts; i++) {
		_cleanup_free_ char *path = NULL;

		if (!im->moved[i] || !(path = snap_blob_path(im->s, im->m->parts[i].blob)))
			continue;
		(void)unlink(path);
	}
}

static int import_run(struct import *im, int in_fd)
{
	struct archive_entry *e;
	int k, r;

	im->a = archive_read_new();
	if (!im->a)
		return err_set(-ENOMEM, "out of memory");
	if (archive_read_support_filter_zstd(im->a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(im->a) != ARCHIVE_OK ||
	    archive_read_open_fd(im->a, in_fd, 64 * 1024) != ARCHIVE_OK)
		return arc_err(im->a, -EBADMSG, "import: not a snapshot archive (zstd tar)");
	k = archive_read_next_header(im->a, &e);
	if (k != ARCHIVE_OK)
		return k == ARCHIVE_EOF ? err_set(-EBADMSG, "import: the archive is empty")
					: arc_err(im->a, -EBADMSG, "import");
	r = import_manifest(im, e);
	while (r == 0) {
		k = archive_read_next_header(im->a, &e);
		if (k == ARCHIVE_EOF)
			break;
		if (k != ARCHIVE_OK)
			return arc_err(im->a, -EBADMSG, "import");
		r = import_blob(im, e);
	}
	for (size_t i = 0; r == 0 && i < im->m->n_parts; i++)
		if (!im->got[i])
			r = err_set(-EBADMSG, "import: the archive has no blobs/%s (part %s)",
				    im->m->parts[i].blob,
				    snap_part_role_to_string(im->m->parts[i].role));
	return r;
}

int snap_import(snap_store *s, int in_fd, char **ret_id)
{
	struct import im = {.s = s, .tmp_fd = -EBADF};
	_cleanup_free_ char *id = NULL;
	int r;

	if (asprintf(&im.tmp, "%s/.import-XXXXXX", s->dir) < 0)
		return err_set(-ENOMEM, "out of memory");
	if (!mkdtemp(im.tmp)) {
		r = err_set(-errno, "import: cannot create a directory in %s: %s", s->dir,
			    strerror(errno));
		free(im.tmp);
		return r;
	}
	/* held until the end: snap_gc() removes only unlocked .import-* */
	im.tmp_fd = open(im.tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (im.tmp_fd < 0 || flock(im.tmp_fd, LOCK_EX) < 0)
		r = err_set(-errno, "import: %s: %s", im.tmp, strerror(errno));
	else
		r = import_run(&im, in_fd);
	if (r == 0 && !(id = strdup(im.m->id)))
		r = err_set(-ENOMEM, "out of memory");
	if (r == 0) {
		r = snap_lock(s, true);
		if (r == 0) {
			r = import_publish(&im);
			if (r < 0)
				import_rollback(&im);
			snap_unlock(s);
		}
	}
	if (r == 0 && ret_id)
		*ret_id = TAKE_PTR(id);
	if (im.a)
		archive_read_free(im.a);
	(void)snap_rmtree(im.tmp);
	if (im.tmp_fd >= 0)
		close(im.tmp_fd);
	snap_manifest_free(im.m);
	free(im.tmp);
	return r;
}
