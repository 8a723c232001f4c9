/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmutil.c - small pieces the capture, restore and zygote code share:
 * zstd files, talking to a freshly started agent, manifest parts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "base/clock.h"
#include "base/io.h"
#include "base/err.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "snapshot/snap_vm.h"

#define IO_CHUNK (1024 * 1024)
#define ZSTD_LEVEL 3

int snapvm_tmpfile(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	return fd < 0 ? -errno : fd;
}

int snapvm_compress(int in_fd, const char *out_path)
{
	_cleanup_free_ uint8_t *in = malloc(IO_CHUNK);
	_cleanup_free_ uint8_t *out = malloc(ZSTD_CStreamOutSize());
	_cleanup_close_ int ofd = -1;
	ZSTD_CCtx *z = ZSTD_createCCtx();
	int r = 0;

	if (!in || !out || !z) {
		r = -ENOMEM;
		goto out;
	}
	ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, ZSTD_LEVEL);
	ofd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (ofd < 0) {
		r = err_set(-errno, "cannot create %s: %m", out_path);
		goto out;
	}
	if (lseek(in_fd, 0, SEEK_SET) < 0) {
		r = -errno;
		goto out_unlink;
	}
	for (;;) {
		ssize_t n = read(in_fd, in, IO_CHUNK);
		ZSTD_EndDirective mode = n == 0 ? ZSTD_e_end : ZSTD_e_continue;
		ZSTD_inBuffer ib = {in, n > 0 ? (size_t)n : 0, 0};
		bool done = false;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = err_set(-errno, "cannot read a migration stream: %m");
			goto out_unlink;
		}
		do {
			ZSTD_outBuffer ob = {out, ZSTD_CStreamOutSize(), 0};
			size_t left = ZSTD_compressStream2(z, &ob, &ib, mode);

			if (ZSTD_isError(left)) {
				r = err_set(-EIO, "zstd: %s", ZSTD_getErrorName(left));
				goto out_unlink;
			}
			r = io_write_all(ofd, out, ob.pos);
			if (r < 0) {
				err_set(r, "cannot write %s: %s", out_path, strerror(-r));
				goto out_unlink;
			}
			done = mode == ZSTD_e_end ? left == 0 : ib.pos == ib.size;
		} while (!done);
		if (n == 0)
			break;
	}
	if (fsync(ofd) < 0) {
		r = err_set(-errno, "cannot write %s: %m", out_path);
		goto out_unlink;
	}
	goto out;
out_unlink:
	(void)unlink(out_path);
out:
	ZSTD_freeCCtx(z);
	return r;
}

int snapvm_decompress_memfd(const char *path, uint64_t max_bytes, int *ret_fd)
{
	_cleanup_free_ uint8_t *in = malloc(ZSTD_DStreamInSize());
	_cleanup_free_ uint8_t *out = malloc(ZSTD_DStreamOutSize());
	_cleanup_close_ int ifd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int mfd = memfd_create("sbx-state", MFD_CLOEXEC);
	ZSTD_DCtx *z = ZSTD_createDCtx();
	uint64_t total = 0;
	size_t last = 1;
	int r = 0;

	if (!in || !out || !z || mfd < 0) {
		r = mfd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	if (ifd < 0) {
		r = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n = read(ifd, in, ZSTD_DStreamInSize());
		ZSTD_inBuffer ib = {in, n > 0 ? (size_t)n : 0, 0};

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		while (ib.pos < ib.size) {
			ZSTD_outBuffer ob = {out, ZSTD_DStreamOutSize(), 0};

			last = ZSTD_decompressStream(z, &ob, &ib);
			if (ZSTD_isError(last)) {
				r = err_set(-EBADMSG, "%s is not a valid zstd stream: %s", path,
					    ZSTD_getErrorName(last));
				goto out;
			}
			total += ob.pos;
			if (total > max_bytes) {
				r = err_set(-EFBIG, "%s decompresses to more than %llu bytes", path,
					    (unsigned long long)max_bytes);
				goto out;
			}
			r = io_write_all(mfd, out, ob.pos);
			if (r < 0)
				goto out;
		}
	}
	if (last != 0) {
		r = err_set(-EBADMSG, "%s ends in the middle of a zstd frame (truncated?)", path);
		goto out;
	}
	if (lseek(mfd, 0, SEEK_SET) < 0) {
		r = -errno;
		goto out;
	}
	*ret_fd = TAKE_FD(mfd);
out:
	ZSTD_freeDCtx(z);
	return r;
}

int snapvm_agent_connect(vm *v, int timeout_ms, agent_client **ret)
{
	_cleanup_free_ char *addr = NULL;
	uint64_t t0 = clock_mono_ms();
	long elapsed = 0;
	int r;

	if (asprintf(&addr, "unix:%s", vm_agent_socket(v)) < 0)
		return -ENOMEM;
	for (;;) {
		int left = timeout_ms - (int)elapsed;

		r = agent_client_connect(addr, left < 5000 ? (left > 0 ? left : 1) : 5000, ret);
		if (r == 0)
			return 0;
		if (vm_is_running(v) != 1)
			return err_set(-ECHILD, "VM %s stopped before its agent answered",
				       vm_name(v));
		elapsed = (long)(clock_mono_ms() - t0);
		if (elapsed >= timeout_ms)
			return err_set(-ETIMEDOUT,
				       "the agent of VM %s did not answer within %d s: %s",
				       vm_name(v), timeout_ms / 1000, err_msg());
		clock_sleep_ms(20);
	}
}

int snap_fixup(agent_client *c, const char *hostname, const char *root)
{
	uint8_t entropy[SNAPVM_ENTROPY];
	struct agent_fixup_spec spec = {0};
	struct timespec now;
	int r;

	if (getrandom(entropy, sizeof(entropy), 0) != (ssize_t)sizeof(entropy))
		return err_set(-EIO, "cannot read host entropy: %m");
	clock_gettime(CLOCK_REALTIME, &now);
	spec.time_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	spec.entropy = entropy;
	spec.entropy_len = sizeof(entropy);
	spec.hostname = hostname;
	spec.root = root;
	r = agent_fixup(c, &spec);
	explicit_bzero(entropy, sizeof(entropy));
	if (r < 0)
		return err_set(r, "the guest could not take its new identity: %s", err_msg());
	return 0;
}

struct sync_state {
	bool done;
	int err;
	int code;
	char msg[256];
};

static void sync_on_exit(agent_cmd *cmd, const struct proto_exit *e, void *ud)
{
	struct sync_state *s = ud;

	(void)cmd;
	s->done = true;
	s->code = e->code;
}

static void sync_on_error(agent_cmd *cmd, int err, const char *msg, void *ud)
{
	struct sync_state *s = ud;

	(void)cmd;
	s->done = true;
	s->err = err;
	snprintf(s->msg, sizeof(s->msg), "%s", msg ? msg : strerror(-err));
}

int snapvm_guest_sync(agent_client *c, int timeout_ms)
{
	static const char *const argv[] = {"sync", NULL};
	struct agent_exec_spec spec = {.argv = argv, .timeout_ms = (uint32_t)timeout_ms};
	struct agent_cmd_ops ops = {.on_exit = sync_on_exit, .on_error = sync_on_error};
	struct sync_state st = {0};
	agent_cmd *cmd = NULL;
	int r;

	r = agent_exec(c, &spec, &ops, &st, &cmd);
	if (r < 0)
		return err_set(r, "cannot run sync in the guest: %s", err_msg());
	while (!st.done) {
		r = agent_client_pump(c, timeout_ms + 5000);
		if (r < 0) {
			agent_cmd_free(cmd);
			return err_set(r, "cannot run sync in the guest: %s", err_msg());
		}
	}
	agent_cmd_free(cmd);
	if (st.err)
		return err_set(st.err, "cannot run sync in the guest: %s", st.msg);
	if (st.code != 0)
		return err_set(-EIO, "sync in the guest failed with status %d", st.code);
	return 0;
}

char *snapvm_helper_name(const char *prefix)
{
	uint32_t x;
	char *s;

	if (getrandom(&x, sizeof(x), 0) != sizeof(x))
		x = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	if (asprintf(&s, "%s-%08x", prefix, x) < 0)
		return NULL;
	return s;
}

int snapvm_layer_paths(snap_store *s, const struct snap_manifest *m, char ***ret)
{
	char **v = calloc(m->n_parts + 1, sizeof(char *));
	size_t n = 0;

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_parts; i++) {
		if (m->parts[i].role != SNAP_PART_LAYER)
			continue;
		v[n] = snap_blob_path(s, m->parts[i].blob);
		if (!v[n++]) {
			snap_strv_free(v);
			return -ENOMEM;
		}
	}
	*ret = v;
	return 0;
}

int snapvm_seal_part(snap_store *s, struct snap_part *p)
{
	_cleanup_free_ char *path = snap_blob_path(s, p->blob);
	int r;

	if (!path)
		return -ENOMEM;
	r = snap_sha256_file(path, p->sha256, &p->size);
	if (r < 0)
		return err_set(r, "cannot checksum %s: %s", path, strerror(-r));
	return 0;
}

int snapvm_add_part(struct snap_manifest *m, enum snap_part_role role, const char *blob,
		    bool inherited)
{
	struct snap_part *np;

	if (m->n_parts >= SNAP_MAX_PARTS)
		return err_set(-E2BIG, "more than %d parts", SNAP_MAX_PARTS);
	np = realloc(m->parts, (m->n_parts + 1) * sizeof(*np));
	if (!np)
		return -ENOMEM;
	m->parts = np;
	np = &m->parts[m->n_parts];
	memset(np, 0, sizeof(*np));
	np->role = role;
	np->inherited = inherited;
	np->blob = strdup(blob);
	if (!np->blob)
		return -ENOMEM;
	m->n_parts++;
	return 0;
}

void snapvm_drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	/* written back first: dirty pages cannot be dropped */
	if (fdatasync(fd) < 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0)
		log_debug("cannot drop the page cache of %s: %m", path);
	close(fd);
}

int snapvm_publish(snap_store *s, const struct snap_manifest *m)
{
	int r = snap_lock(s, true);

	if (r < 0)
		return r;
	r = snap_save(s, m);
	snap_unlock(s);
	return r;
}

void snapvm_discard(snap_store *s, const char *id)
{
	char msg[512];
	int r;

	snprintf(msg, sizeof(msg), "%s", err_msg());
	r = snap_delete(s, id, NULL);
	if (r < 0 && r != -ENOENT)
		log_warn("snapshot %s: cannot remove what a failed capture left: %s", id,
			 err_msg());
	err_set(-EIO, "%s", msg); /* keep the first error for the caller */
}
