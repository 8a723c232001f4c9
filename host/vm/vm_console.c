/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm_console.c - a cap on the guests' console logs.
 *
 * QEMU appends what the guest writes to ttyS0 to STATE/vms/NAME/console.log
 * with no limit, and root in a guest can write as much as it likes. A timer
 * on libvirt's event loop thread looks at every console log every few
 * seconds; one past the cap keeps its last half, behind a line that says
 * how much was dropped. QEMU's file is opened O_APPEND, so its next write
 * lands at the new end. Between two checks a guest can write past the cap
 * (the serial port of a TCG guest moves a few MB/s at most).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "host/vm/vm_int.h"

#define CONSOLE_CHECK_MS 5000

struct watch {
	char *vms_dir;
	uint64_t max;
};

int vm_console_trim(const char *path, uint64_t max_bytes)
{
	_cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	_cleanup_free_ char *tail = NULL;
	uint64_t keep = max_bytes / 2;
	char head[128];
	struct stat st;
	ssize_t n;
	size_t skip = 0;
	int hl;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size <= max_bytes)
		return 0;
	tail = malloc(keep ? keep : 1);
	if (!tail)
		return -ENOMEM;
	n = pread(fd, tail, keep, st.st_size - (off_t)keep);
	if (n < 0)
		return -errno;
	/* start at a line */
	while (skip < (size_t)n && tail[skip] != '\n')
		skip++;
	skip = skip < (size_t)n ? skip + 1 : 0;
	hl = snprintf(
	    head, sizeof(head), "[sbx: console log over %llu bytes: %llu earlier bytes dropped]\n",
	    (unsigned long long)max_bytes, (unsigned long long)(st.st_size - (n - (ssize_t)skip)));
	if (ftruncate(fd, 0) < 0 || pwrite(fd, head, (size_t)hl, 0) != hl ||
	    pwrite(fd, tail + skip, (size_t)n - skip, hl) != n - (ssize_t)skip)
		return -errno;
	return 1;
}

static void check_all(int timer, void *opaque)
{
	struct watch *w = opaque;
	DIR *dir = opendir(w->vms_dir);
	struct dirent *e;

	(void)timer;
	if (!dir)
		return;
	while ((e = readdir(dir))) {
		char path[4096];
		int r;

		if (e->d_name[0] == '.' || !vm_name_is_valid(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s/console.log", w->vms_dir, e->d_name);
		r = vm_console_trim(path, w->max);
		if (r > 0)
			log_info_f(LOG_FIELDS({"vm", e->d_name}),
				   "console log past %llu bytes: kept its last half",
				   (unsigned long long)w->max);
		else if (r < 0)
			log_debug_f(LOG_FIELDS({"vm", e->d_name}), "cannot trim %s: %s", path,
				    strerror(-r));
	}
	closedir(dir);
}

static void watch_free(void *opaque)
{
	struct watch *w = opaque;

	free(w->vms_dir);
	free(w);
}

int vm_console_watch(vm_driver *d, uint64_t max_bytes)
{
	struct watch *w = calloc(1, sizeof(*w));

	d->console_timer = -1;
	if (!w)
		return -ENOMEM;
	w->vms_dir = strdup(d->vms_dir);
	w->max = max_bytes ? max_bytes : VM_CONSOLE_MAX_DEFAULT;
	if (!w->vms_dir) {
		watch_free(w);
		return -ENOMEM;
	}
	/* the timer owns w: libvirt calls watch_free once it is removed */
	d->console_timer = virEventAddTimeout(CONSOLE_CHECK_MS, check_all, w, watch_free);
	if (d->console_timer < 0) {
		watch_free(w);
		return err_set(-EIO, "cannot start the console log watch: libvirt: %s",
			       vm_virt_error());
	}
	return 0;
}

void vm_console_unwatch(vm_driver *d)
{
	if (d->console_timer >= 0)
		(void)virEventRemoveTimeout(d->console_timer);
	d->console_timer = -1;
}
