/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm_util.c - small file, string and process helpers of the VM driver:
 * a growable string buffer, mkdir -p, rm -rf that never follows symlinks,
 * atomic file writes, reading the tail of a log, and posix_spawn with
 * captured stderr and a deadline. (XML is libxml2's, in vm_xml.c; clocks
 * are base/clock.h's.)
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/io.h"
#include "base/cleanup.h"
#include "base/clock.h"
#include "host/vm/vm_int.h"

extern char **environ;

static void buf_reserve(struct vmu_buf *b, size_t extra)
{
	size_t want;
	char *n;

	if (b->oom)
		return;
	want = b->len + extra + 1;
	if (want <= b->cap)
		return;
	want = want < 256 ? 256 : want;
	if (want < b->cap * 2)
		want = b->cap * 2;
	n = realloc(b->s, want);
	if (!n) {
		b->oom = true;
		return;
	}
	b->s = n;
	b->cap = want;
}

void vmu_buf_printf(struct vmu_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	buf_reserve(b, (size_t)n);
	if (b->oom)
		return;
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *vmu_buf_steal(struct vmu_buf *b)
{
	char *s = b->s;

	if (b->oom || !s) {
		free(s);
		s = NULL;
	}
	b->s = NULL;
	b->len = b->cap = 0;
	b->oom = false;
	return s;
}

char *vmu_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP) {
		if (rmdir(path) < 0 && errno != ENOENT)
			return -errno;
	} else if (unlink(path) < 0 && errno != ENOENT) {
		return -errno;
	}
	return 0;
}

int vmu_rm_rf(const char *path)
{
	struct stat st;
	int r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	/* FTW_PHYS: a symlink planted in a VM directory is removed, never
	 * followed; FTW_MOUNT: never descend into something mounted there. */
	r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (r < 0)
		return -errno;
	return r > 0 ? -EIO : r;
}

int vmu_write_file_atomic(const char *path, const char *data, mode_t mode)
{
	_cleanup_free_ char *tmp = vmu_printf("%s.tmp.%d", path, (int)getpid());
	_cleanup_close_ int fd = -EBADF;
	int r;

	if (!tmp)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	r = io_write_all(fd, data, strlen(data));
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
		return r;
	}
	return 0;
}

static int read_range(int fd, off_t from, size_t len, char **ret)
{
	_cleanup_free_ char *buf = malloc(len + 1);
	size_t got = 0;

	if (!buf)
		return -ENOMEM;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, from + (off_t)got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*ret = TAKE_PTR(buf);
	return (int)got;
}

int vmu_read_file(const char *path, size_t max, char **ret)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return -errno;
	return read_range(fd, 0, max, ret);
}

int vmu_read_tail(const char *path, size_t max, char **ret)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	off_t from;
	char *start, *w, *r;
	int n;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	from = st.st_size > (off_t)max ? st.st_size - (off_t)max : 0;
	n = read_range(fd, from, max, &buf);
	if (n < 0)
		return n;
	start = buf;
	if (from > 0) {
		char *nl = strchr(buf, '\n');
		if (nl && nl[1])
			start = nl + 1;
	}
	/* Serial consoles write CRLF and the odd NUL: keep it readable. */
	for (w = buf, r = start; r < buf + n; r++) {
		if (*r == '\r' || *r == '\0')
			continue;
		*w++ = *r;
	}
	*w = '\0';
	*ret = TAKE_PTR(buf);
	return (int)(w - *ret);
}

char *vmu_which(const char *prog)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = NULL;
	char *save = NULL, *dir;

	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0 ? strdup(prog) : NULL;
	copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	if (!copy)
		return NULL;
	for (dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char *full = vmu_printf("%s/%s", dir, prog);
		if (full && access(full, X_OK) == 0)
			return full;
		free(full);
	}
	return NULL;
}

static void trim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

int vmu_spawn(char *const argv[], int timeout_ms, char *out, size_t outlen)
{
	_cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
	posix_spawn_file_actions_t fa;
	uint64_t deadline = clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	size_t got = 0;
	int fds[2], r, status;
	pid_t pid;

	if (outlen)
		out[0] = '\0';
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	rfd = fds[0];
	wfd = fds[1];
	r = posix_spawn_file_actions_init(&fa);
	if (r)
		return -r;
	r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, wfd, 2);
	if (!r)
		r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		return -r;
	close(TAKE_FD(wfd));

	for (;;) {
		uint64_t now = clock_mono_ms();
		int64_t left = now < deadline ? (int64_t)(deadline - now) : 0;
		struct pollfd p = {.fd = rfd, .events = POLLIN};
		char tmp[512];
		ssize_t n;

		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		n = read(rfd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (outlen && got < outlen - 1) {
			size_t c = (size_t)n < outlen - 1 - got ? (size_t)n : outlen - 1 - got;
			memcpy(out + got, tmp, c);
			got += c;
			out[got] = '\0';
		}
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (outlen)
		trim(out);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
