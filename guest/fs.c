/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs.c - STAT, LIST, MKDIR and REMOVE (see fs.h).
 *
 * LIST sorts entries by name (strcmp, i.e. by bytes) and splits them over
 * several LIST_RESULT frames (flag `more`) so that no frame exceeds the
 * entry or body limits. REMOVE never follows symbolic links and never
 * crosses into other mounts; it refuses the root directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest/agent.h"
#include "base/cleanup.h"
#include "guest/conn.h"
#include "guest/fs.h"
#include "base/log.h"

#define FS_MAX_LIST 1000000		 /* entries of one directory */
#define FS_LIST_FRAME_BYTES (512 * 1024) /* name bytes per LIST_RESULT */

bool fs_check_path(struct conn *c, uint32_t id, const char *path)
{
	if (!path || path[0] != '/') {
		conn_send_error(c, 0, id, PROTO_E_BAD_REQUEST, EINVAL,
				"the path '%s' is not absolute", path ? path : "");
		return false;
	}
	if (strlen(path) > PROTO_MAX_PATH) {
		conn_send_error(c, 0, id, PROTO_E_BAD_REQUEST, ENAMETOOLONG,
				"the path is longer than %d bytes", PROTO_MAX_PATH);
		return false;
	}
	return true;
}

int fs_mkdir_p(const char *path, mode_t mode, char *failed, size_t len)
{
	char buf[PROTO_MAX_PATH + 1];
	struct stat st;
	size_t i, n = strlen(path);

	if (n > PROTO_MAX_PATH)
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		if (buf[i - 1] == '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) < 0) {
			int err = errno;

			if (err == EEXIST && (stat(buf, &st) < 0 || !S_ISDIR(st.st_mode)))
				err = ENOTDIR;
			if (err != EEXIST) {
				snprintf(failed, len, "%s", buf);
				return -err;
			}
		}
		buf[i] = path[i];
	}
	return 0;
}

static uint8_t fs_ftype(mode_t mode)
{
	if (S_ISREG(mode))
		return PROTO_FT_FILE;
	if (S_ISDIR(mode))
		return PROTO_FT_DIR;
	if (S_ISLNK(mode))
		return PROTO_FT_SYMLINK;
	return PROTO_FT_OTHER;
}

void fs_on_stat(struct conn *c, const struct proto_msg *m)
{
	const struct proto_path_req *p = &m->u.path;
	struct proto_msg r = {.type = PROTO_STAT_RESULT};
	struct proto_stat_result *s = &r.u.stat;
	char link[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (!fs_check_path(c, p->id, p->path))
		return;
	if (lstat(p->path, &st) < 0) {
		conn_send_error(c, 0, p->id, PROTO_E_IO, errno, "cannot stat %s: %s", p->path,
				strerror(errno));
		return;
	}
	s->id = p->id;
	s->type = fs_ftype(st.st_mode);
	s->size = (uint64_t)st.st_size;
	s->mode = st.st_mode & 07777;
	s->uid = st.st_uid;
	s->gid = st.st_gid;
	s->mtime = st.st_mtime;
	if (S_ISLNK(st.st_mode)) {
		n = readlink(p->path, link, sizeof(link) - 1);
		if (n >= 0) {
			link[n] = '\0';
			s->link = link;
		}
	}
	(void)conn_send(c, &r);
}

struct fs_entries {
	struct proto_entry *v;
	size_t n, cap;
};

static void fs_entries_release(struct fs_entries *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		free((char *)e->v[i].name);
	free(e->v);
}

static int fs_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct proto_entry *)a)->name, ((const struct proto_entry *)b)->name);
}

static int fs_read_dir(const char *path, struct fs_entries *e)
{
	DIR *d = opendir(path);
	struct proto_entry *ent;
	struct dirent *de;
	struct stat st;
	int ret = 0;

	if (!d)
		return -errno;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			ret = -errno;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (e->n == FS_MAX_LIST) {
			ret = -EFBIG;
			break;
		}
		if (e->n == e->cap) {
			size_t cap = e->cap ? e->cap * 2 : 64;
			struct proto_entry *v = realloc(e->v, cap * sizeof(*v));

			if (!v) {
				ret = -ENOMEM;
				break;
			}
			e->v = v;
			e->cap = cap;
		}
		ent = &e->v[e->n];
		memset(ent, 0, sizeof(*ent));
		ent->name = strdup(de->d_name);
		if (!ent->name) {
			ret = -ENOMEM;
			break;
		}
		e->n++;
		/* an entry removed meanwhile is listed without details */
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			ent->type = fs_ftype(st.st_mode);
			ent->size = (uint64_t)st.st_size;
			ent->mode = st.st_mode & 07777;
			ent->mtime = st.st_mtime;
		}
	}
	closedir(d);
	return ret;
}

void fs_on_list(struct conn *c, const struct proto_msg *m)
{
	const struct proto_path_req *p = &m->u.path;
	struct fs_entries e = {0};
	struct proto_msg r = {.type = PROTO_LIST_RESULT};
	size_t i = 0, first, bytes;
	int ret;

	if (!fs_check_path(c, p->id, p->path))
		return;
	ret = fs_read_dir(p->path, &e);
	if (ret < 0) {
		conn_send_error(c, 0, p->id, ret == -EFBIG ? PROTO_E_LIMIT : PROTO_E_IO, -ret,
				ret == -EFBIG ? "cannot list %s: it has more than 1000000 entries"
					      : "cannot list %s: %s",
				p->path, strerror(-ret));
		fs_entries_release(&e);
		return;
	}
	qsort(e.v, e.n, sizeof(*e.v), fs_entry_cmp);
	r.u.list.id = p->id;
	do {
		first = i;
		bytes = 0;
		while (i < e.n && i - first < PROTO_MAX_ENTRIES &&
		       bytes < MIN((size_t)FS_LIST_FRAME_BYTES, conn_max_data(c) / 2))
			bytes += strlen(e.v[i++].name) + 64;
		r.u.list.entries = e.v + first;
		r.u.list.n = (uint32_t)(i - first);
		r.u.list.more = i < e.n;
		if (conn_send(c, &r) < 0)
			break;
	} while (i < e.n);
	fs_entries_release(&e);
}

void fs_on_mkdir(struct conn *c, const struct proto_msg *m)
{
	const struct proto_path_req *p = &m->u.path;
	mode_t mode = p->mode ? (mode_t)(p->mode & 07777) : 0755;
	char failed[PROTO_MAX_PATH + 1];
	int ret;

	if (!fs_check_path(c, p->id, p->path))
		return;
	if (p->recursive) {
		ret = fs_mkdir_p(p->path, mode, failed, sizeof(failed));
		if (ret < 0) {
			conn_send_error(c, 0, p->id, PROTO_E_IO, -ret,
					"cannot create directory %s: %s: %s", p->path, failed,
					strerror(-ret));
			return;
		}
	} else if (mkdir(p->path, mode) < 0) {
		conn_send_error(c, 0, p->id, PROTO_E_IO, errno, "cannot create directory %s: %s",
				p->path, strerror(errno));
		return;
	}
	conn_send_ok(c, p->id);
}

/* nftw() has no user pointer: the first failure is kept here. */
static struct {
	int err;
	char path[PROTO_MAX_PATH + 1];
} fs_rm;

static int fs_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) == 0)
		return 0;
	fs_rm.err = errno;
	snprintf(fs_rm.path, sizeof(fs_rm.path), "%s", path);
	return 1;
}

void fs_on_remove(struct conn *c, const struct proto_msg *m)
{
	const struct proto_path_req *p = &m->u.path;
	struct stat st, root;
	int ret;

	if (!fs_check_path(c, p->id, p->path))
		return;
	if (lstat(p->path, &st) < 0) {
		if (errno == ENOENT && p->recursive) {
			conn_send_ok(c, p->id); /* rm -rf */
			return;
		}
		conn_send_error(c, 0, p->id, PROTO_E_IO, errno, "cannot remove %s: %s", p->path,
				strerror(errno));
		return;
	}
	if (stat("/", &root) == 0 && st.st_dev == root.st_dev && st.st_ino == root.st_ino) {
		conn_send_error(c, 0, p->id, PROTO_E_BAD_REQUEST, EPERM,
				"refusing to remove the root directory");
		return;
	}
	if (!S_ISDIR(st.st_mode))
		ret = unlink(p->path);
	else if (!p->recursive)
		ret = rmdir(p->path);
	else {
		fs_rm.err = 0;
		ret = nftw(p->path, fs_rm_one, 16, FTW_PHYS | FTW_DEPTH | FTW_MOUNT);
		if (ret != 0) {
			conn_send_error(c, 0, p->id, PROTO_E_IO, fs_rm.err ? fs_rm.err : errno,
					"cannot remove %s: %s: %s", p->path,
					fs_rm.err ? fs_rm.path : p->path,
					strerror(fs_rm.err ? fs_rm.err : errno));
			return;
		}
	}
	if (ret < 0) {
		conn_send_error(c, 0, p->id, PROTO_E_IO, errno, "cannot remove %s: %s", p->path,
				strerror(errno));
		return;
	}
	conn_send_ok(c, p->id);
}
