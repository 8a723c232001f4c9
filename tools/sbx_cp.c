/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_cp.c - "sbx cp": one file into a sandbox (multipart POST /upload) or
 * out of one (GET /download), streamed in both directions.
 *
 * Nothing holds a file whole in memory: libcurl pulls the upload from the
 * fd through a read callback (the size is known, so the request has a
 * Content-Length; stdin that is not a regular file is first spooled to an
 * unlinked temporary file for that), and pushes the download into the fd
 * through a write callback. A download goes to a temporary file next to
 * its destination and is renamed over it only once complete, so a failed
 * copy never leaves half a file behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/io.h"
#include "base/clock.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "tools/sbx.h"
#include "tools/sbx_http.h"
#include "tools/sbx_text.h"

#define READY_WAIT_S 120
#define ERRBODY_MAX (64u << 10)
#define STALL_S 120L /* give up when nothing moved for this long */

static void report_speed(const char *verb, curl_off_t bytes, double secs)
{
	if (arg_verbose)
		fprintf(stderr, "sbx: %s %lld bytes in %.2f s (%.1f MiB/s)\n", verb,
			(long long)bytes, secs, secs > 0 ? (double)bytes / 1048576.0 / secs : 0.0);
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* Our stdin as a file of known size: itself if it is a regular file, else
 * a copy in an unlinked temporary file. */
static int spool_stdin(int *ret_fd, curl_off_t *ret_size)
{
	const char *tmpdir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	char buf[64 * 1024];
	curl_off_t size = 0;

	if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
		off_t pos = lseek(STDIN_FILENO, 0, SEEK_CUR);

		*ret_fd = STDIN_FILENO;
		*ret_size = st.st_size - (pos > 0 ? pos : 0);
		return 0;
	}
	fd = open(tmpdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_set(-errno,
			       "cannot make a temporary file in %s for standard "
			       "input: %m",
			       tmpdir);
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(-errno, "cannot read standard input: %m");
		if (n == 0)
			break;
		r = io_write_all(fd, buf, (size_t)n);
		if (r < 0)
			return err_set(r, "cannot spool standard input to %s: %m", tmpdir);
		size += n;
	}
	if (lseek(fd, 0, SEEK_SET) < 0)
		return err_set(-errno, "cannot rewind the spooled standard input: %m");
	*ret_fd = TAKE_FD(fd);
	*ret_size = size;
	return 0;
}

struct upload {
	int fd;
	off_t start;
	int err;
};

static size_t upload_read(char *buf, size_t size, size_t n, void *ud)
{
	struct upload *u = ud;
	ssize_t got;

	do
		got = read(u->fd, buf, size * n);
	while (got < 0 && errno == EINTR);
	if (got < 0) {
		u->err = -errno;
		return CURL_READFUNC_ABORT;
	}
	return (size_t)got;
}

static int upload_seek(void *ud, curl_off_t offset, int origin)
{
	struct upload *u = ud;

	if (origin != SEEK_SET || lseek(u->fd, u->start + offset, SEEK_SET) < 0)
		return CURL_SEEKFUNC_CANTSEEK;
	return CURL_SEEKFUNC_OK;
}

struct sink {
	int fd;
	CURL *curl;
	bool ok;
	int err;
	struct sbx_resp err_body;
};

static size_t download_write(char *p, size_t size, size_t n, void *ud)
{
	struct sink *s = ud;
	size_t len = size * n;
	long status = 0;

	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
	s->ok = status >= 200 && status < 300;
	if (!s->ok) {
		struct sbx_resp *r = &s->err_body;
		size_t keep = r->len + len > ERRBODY_MAX ? ERRBODY_MAX - r->len : len;
		char *nb = realloc(r->body, r->len + keep + 1);

		if (!nb)
			return 0;
		r->body = nb;
		memcpy(r->body + r->len, p, keep);
		r->len += keep;
		r->body[r->len] = '\0';
		return len;
	}
	if (s->fd < 0)
		return len; /* an upload's answer: nothing to keep */
	{
		int r = io_write_all(s->fd, p, len);

		if (r < 0) {
			s->err = r;
			return 0;
		}
	}
	return len;
}

/* A failed data-plane request, in the API's words. */
static int api_failure(long status, const struct sbx_resp *body)
{
	_cleanup_free_ char *type = NULL, *msg = NULL;

	if (sbx_api_error(status, body->body, body->len, &type, &msg) < 0)
		return err_set(-ENOMEM, "out of memory");
	if (status == 501)
		return err_set(-ENOSYS, "sbxd cannot transfer files yet (%s)", msg);
	return err_set(status == 404 ? -ENOENT : -EIO, "%s", msg);
}

static int do_upload(const char *local, const char *name, const char *path)
{
	_cleanup_free_ char *dp = NULL, *url = NULL, *full = NULL;
	_cleanup_close_ int own_fd = -EBADF;
	struct sbx_resp resp = {0};
	struct curl_slist *h = NULL;
	struct upload u = {.fd = -1};
	struct sink s = {.fd = -1};
	curl_off_t size = 0;
	curl_mime *mime = NULL;
	curl_mimepart *part;
	double t0;
	CURLcode rc;
	CURL *c;
	int r;

	if (path[strlen(path) - 1] == '/') {
		if (!strcmp(local, "-"))
			return err_set(-EINVAL,
				       "give the file's name in the sandbox: "
				       "%s:%sFILE",
				       name, path);
		if (asprintf(&full, "%s%s", path, base_name(local)) < 0)
			return err_set(-ENOMEM, "out of memory");
		path = full;
	}
	if (!strcmp(local, "-")) {
		r = spool_stdin(&u.fd, &size);
		if (r < 0)
			return r;
		if (u.fd != STDIN_FILENO)
			own_fd = u.fd;
	} else {
		struct stat st;

		own_fd = open(local, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (own_fd < 0)
			return err_set(-errno, "cannot open %s: %m", local);
		if (fstat(own_fd, &st) < 0)
			return err_set(-errno, "cannot stat %s: %m", local);
		if (S_ISDIR(st.st_mode))
			return err_set(-EISDIR, "%s is a directory (sbx cp copies one file)",
				       local);
		if (!S_ISREG(st.st_mode))
			return err_set(-EINVAL, "%s is not a regular file", local);
		u.fd = own_fd;
		size = st.st_size;
	}
	u.start = lseek(u.fd, 0, SEEK_CUR);
	if (u.start < 0)
		u.start = 0;
	r = sbx_box_dataplane(name, READY_WAIT_S, &dp);
	if (r < 0)
		return r;
	url = sbx_dataplane_file_url(dp, "upload", path);
	c = url ? sbx_http_handle(&h) : NULL;
	if (!c)
		return err_set(-ENOMEM, "out of memory");
	mime = curl_mime_init(c);
	part = mime ? curl_mime_addpart(mime) : NULL;
	if (!part || curl_mime_name(part, "file") != CURLE_OK ||
	    curl_mime_filename(part, "file") != CURLE_OK ||
	    curl_mime_type(part, "application/octet-stream") != CURLE_OK ||
	    curl_mime_data_cb(part, size, upload_read, upload_seek, NULL, &u) != CURLE_OK) {
		curl_mime_free(mime);
		curl_slist_free_all(h);
		return err_set(-ENOMEM, "out of memory");
	}
	/* no "Expect: 100-continue" round trip before the body */
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, STALL_S);
	s.curl = c;
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, download_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	t0 = clock_mono_s();
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
	if (rc == CURLE_ABORTED_BY_CALLBACK || (rc != CURLE_OK && u.err))
		r = sbx_error_set_final(u.err ? u.err : -EIO, "cannot read %s: %s",
					strcmp(local, "-") ? local : "standard input",
					strerror(u.err ? -u.err : EIO));
	else if (rc != CURLE_OK)
		r = sbx_http_transport_error(rc, c, 0);
	else if (resp.status < 200 || resp.status >= 300)
		r = api_failure(resp.status, &s.err_body);
	else
		report_speed("sent", size, clock_mono_s() - t0);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_MIMEPOST, NULL);
	curl_mime_free(mime);
	curl_slist_free_all(h);
	sbx_resp_release(&s.err_body);
	return r;
}

/* Where a download lands: local itself, or local/<basename of path> when
 * local is a directory. */
static int download_target(const char *local, const char *path, char **ret)
{
	struct stat st;
	size_t len = strlen(local);

	if ((len && local[len - 1] == '/') || (stat(local, &st) == 0 && S_ISDIR(st.st_mode))) {
		const char *b = base_name(path);

		if (!*b)
			return err_set(-EINVAL, "'%s' names no file", path);
		return asprintf(ret, "%s%s%s", local, local[len - 1] == '/' ? "" : "/", b) < 0
			   ? err_set(-ENOMEM, "out of memory")
			   : 0;
	}
	*ret = strdup(local);
	return *ret ? 0 : err_set(-ENOMEM, "out of memory");
}

static int do_download(const char *name, const char *path, const char *local)
{
	_cleanup_free_ char *dp = NULL, *url = NULL, *target = NULL, *tmp = NULL, *dir = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct curl_slist *h = NULL;
	struct sink s = {0};
	bool renamed = false;
	curl_off_t got = 0;
	long status = 0;
	double t0;
	CURLcode rc;
	int r;

	if (strcmp(local, "-")) {
		mode_t um;

		r = download_target(local, path, &target);
		if (r < 0)
			return r;
		dir = strdup(target);
		if (!dir ||
		    asprintf(&tmp, "%s/.%s.sbx-XXXXXX", dirname(dir), base_name(target)) < 0)
			return err_set(-ENOMEM, "out of memory");
		fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0)
			return err_set(-errno, "cannot create a file next to %s: %m", target);
		um = umask(0);
		umask(um);
		(void)fchmod(fd, 0666 & ~um);
	}
	r = sbx_box_dataplane(name, READY_WAIT_S, &dp);
	if (r < 0)
		goto out;
	url = sbx_dataplane_file_url(dp, "download", path);
	s.curl = url ? sbx_http_handle(&h) : NULL;
	if (!s.curl) {
		r = err_set(-ENOMEM, "out of memory");
		goto out;
	}
	s.fd = fd >= 0 ? fd : STDOUT_FILENO;
	curl_easy_setopt(s.curl, CURLOPT_URL, url);
	curl_easy_setopt(s.curl, CURLOPT_WRITEFUNCTION, download_write);
	curl_easy_setopt(s.curl, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(s.curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(s.curl, CURLOPT_LOW_SPEED_TIME, STALL_S);
	t0 = clock_mono_s();
	rc = curl_easy_perform(s.curl);
	curl_easy_getinfo(s.curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(s.curl, CURLINFO_SIZE_DOWNLOAD_T, &got);
	curl_easy_setopt(s.curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	if (rc == CURLE_WRITE_ERROR && s.err)
		r = sbx_error_set_final(s.err, "cannot write %s: %s", target ? target : "output",
					strerror(-s.err));
	else if (rc != CURLE_OK)
		r = sbx_http_transport_error(rc, s.curl, 0);
	else if (status < 200 || status >= 300)
		r = api_failure(status, &s.err_body);
	if (r < 0)
		goto out;
	if (fd >= 0 && (fsync(fd) < 0 || rename(tmp, target) < 0)) {
		r = sbx_error_set_final(-errno, "cannot write %s: %m", target);
		goto out;
	}
	renamed = true;
	report_speed("received", got, clock_mono_s() - t0);
out:
	if (fd >= 0 && !renamed)
		(void)unlink(tmp);
	sbx_resp_release(&s.err_body);
	return r;
}

int sbx_cmd_cp(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	_cleanup_free_ char *src_box = NULL, *dst_box = NULL;
	const char *src_path = NULL, *dst_path = NULL, *src, *dst;
	int opt, rs, rd, r;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			sbx_usage(cmd, stdout);
			return SBX_EXIT_OK;
		}
		return sbx_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
	}
	if (argc - optind != 2)
		return sbx_usage_error(cmd, "give a source and a destination");
	src = argv[optind];
	dst = argv[optind + 1];
	rs = sbx_parse_remote(src, &src_box, &src_path);
	rd = sbx_parse_remote(dst, &dst_box, &dst_path);
	if (rs == -ENOMEM || rd == -ENOMEM)
		return SBX_EXIT_FAIL;
	if (rs < 0 || rd < 0)
		return sbx_usage_error(cmd, "the path in '%s' must be absolute (NAME:/path)",
				       rs < 0 ? src : dst);
	if (rs && rd)
		return sbx_usage_error(cmd, "copying from one sandbox to another is not "
					    "supported; copy through a local file");
	if (!rs && !rd)
		return sbx_usage_error(cmd,
				       "one of the two must be NAME:PATH (write a local "
				       "path with ':' as ./%s)",
				       src);
	if (sbx_http_need_key() < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	if (rd) {
		r = do_upload(src, dst_box, dst_path);
		if (r < 0)
			sbx_error_wrap(r, "cannot copy %s to %s", strcmp(src, "-") ? src : "stdin",
				       dst);
	} else {
		r = do_download(src_box, src_path, dst);
		if (r < 0)
			sbx_error_wrap(r, "cannot copy %s", src);
	}
	return r < 0 ? sbx_error_print(SBX_EXIT_FAIL) : SBX_EXIT_OK;
}
