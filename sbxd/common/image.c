/* SPDX-License-Identifier: Apache-2.0 */
/*
 * image.c - image directories (see image.h).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cleanup.h"
#include "base/err.h"
#include "sbxd/common/image.h"

int sbxd_image_check(const char *dir, uint64_t *ret_disk_bytes)
{
	static const char *const parts[] = {"vmlinuz", "initrd.img", "rootfs.ext4"};
	char path[PATH_MAX];
	struct stat st;

	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, parts[i]);
		if (stat(path, &st) < 0) {
			return err_set(-errno,
				       "the image directory %s has no %s (%m): build the default "
				       "image with 'make image' or give another one with --image",
				       dir, parts[i]);
		}
	}
	*ret_disk_bytes = (uint64_t)st.st_size;
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void sbxd_image_names(const char *images_dir, char *buf, size_t len)
{
	DIR *d = opendir(images_dir);
	struct dirent *e;
	char *names[64], path[PATH_MAX];
	size_t n = 0, off = 0;
	uint64_t size;

	buf[0] = '\0';
	while (d && (e = readdir(d)) && n < ARRAY_SIZE(names)) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", images_dir, e->d_name);
		if (sbxd_image_check(path, &size) == 0 && (names[n] = strdup(e->d_name)))
			n++;
	}
	if (d)
		closedir(d);
	qsort(names, n, sizeof(names[0]), name_cmp);
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", names[i]);

		if (k > 0 && (size_t)k < len - off)
			off += (size_t)k;
		free(names[i]);
	}
	if (!n)
		snprintf(buf, len, "(none)");
}
