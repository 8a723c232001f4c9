/* SPDX-License-Identifier: Apache-2.0 */
/*
 * util.c - small helpers of the snapshot store: string sets, whole-file
 * reads, atomic writes (temp + fsync + rename + fsync of the directory),
 * rm -rf that never follows a symlink, disk usage, hex.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/io.h"
#include "base/cleanup.h"
#include "snapshot/snap_int.h"

int snap_strset_add(struct snap_strset *set, const char *str)
{
	char *d;

	if (set->n + 1 >= set->cap) {
		size_t cap = set->cap ? 2 * set->cap : 16;
		char **v = realloc(set->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		set->v = v;
		set->cap = cap;
	}
	d = strdup(str);
	if (!d)
		return -ENOMEM;
	set->v[set->n++] = d;
	set->v[set->n] = NULL;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void snap_strset_sort(struct snap_strset *set)
{
	size_t w = 0;

	if (!set->n)
		return;
	qsort(set->v, set->n, sizeof(*set->v), cmp_str);
	for (size_t i = 0; i < set->n; i++) {
		if (w && !strcmp(set->v[w - 1], set->v[i])) {
			free(set->v[i]);
			continue;
		}
		set->v[w++] = set->v[i];
	}
	set->n = w;
	set->v[w] = NULL;
}

bool snap_strset_has(const struct snap_strset *set, const char *str)
{
	return set->n && bsearch(&str, set->v, set->n, sizeof(*set->v), cmp_str);
}

void snap_strset_release(struct snap_strset *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->v[i]);
	free(set->v);
	memset(set, 0, sizeof(*set));
}

char **snap_strset_steal(struct snap_strset *set)
{
	char **v = set->v;

	if (!v)
		v = calloc(1, sizeof(*v));
	memset(set, 0, sizeof(*set));
	return v;
}

void snap_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

int snap_read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t len = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return -ENOMEM;
	/* read until EOF, but never more than max */
	for (;;) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > (size_t)st.st_size)
			return -EFBIG; /* grew while we read */
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = len;
	return 0;
}

int snap_fsync_dir(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return fsync(fd) < 0 ? -errno : 0;
}

int snap_write_atomic(const char *path, const char *data, size_t len)
{
	_cleanup_free_ char *d = strdup(path), *b = strdup(path), *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;
	const char *dir;
	int r;

	if (!d || !b)
		return -ENOMEM;
	dir = dirname(d);
	if (asprintf(&tmp, "%s/.%s.tmp-XXXXXX", dir, basename(b)) < 0) {
		tmp = NULL;
		return -ENOMEM;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = io_write_all(fd, data, len);
	if (r < 0)
		goto fail;
	if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0) {
		r = -errno;
		goto fail;
	}
	return snap_fsync_dir(dir);
fail:
	(void)unlink(tmp);
	return r;
}

static int rmtree_at(int dfd, const char *name, int depth)
{
	_cleanup_close_ int fd = -EBADF;
	struct dirent *e;
	DIR *dir;
	int r = 0;

	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (depth > 16)
		return -ELOOP;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir)
		return -errno;
	fd = -EBADF; /* owned by dir now */
	while ((e = readdir(dir))) {
		int q;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		q = rmtree_at(dirfd(dir), e->d_name, depth + 1);
		if (q < 0 && r == 0)
			r = q;
	}
	closedir(dir);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

int snap_rmtree(const char *path)
{
	return rmtree_at(AT_FDCWD, path, 0);
}

uint64_t snap_disk_usage(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

void snap_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}
