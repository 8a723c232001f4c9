/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replay.c - a main() for fuzz targets built without libFuzzer: runs
 * LLVMFuzzerTestOneInput() once over every file named on the command line,
 * and over every regular file of every directory named there (not
 * recursive), so `make unit` replays the committed corpus under gcc.
 * A crash is the failure; exit status 1 for unreadable paths or no input.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	_cleanup_fclose_ FILE *f = fopen(path, "rbe");
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return -errno;
	for (;;) {
		if (cap - len < 65536) {
			uint8_t *p = realloc(buf, cap + 65536);

			if (!p)
				return -ENOMEM;
			buf = p;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f))
		return -EIO;
	/* an exact-size copy, so that sanitizers see reads past the input */
	{
		_cleanup_free_ uint8_t *exact = malloc(len ? len : 1);

		if (!exact)
			return -ENOMEM;
		memcpy(exact, buf, len);
		LLVMFuzzerTestOneInput(exact, len);
	}
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay the regular files of dir in name order; the count, or -errno. */
static int replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	int ret = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **p = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof(*names));

			if (!p) {
				ret = -ENOMEM;
				goto out;
			}
			names = p;
		}
		if (asprintf(&names[n], "%s/%s", dir, e->d_name) < 0) {
			ret = -ENOMEM;
			goto out;
		}
		n++;
	}
	qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n && ret >= 0; i++) {
		struct stat st;
		int r;

		if (stat(names[i], &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		r = replay_file(names[i]);
		if (r < 0) {
			fprintf(stderr, "replay: %s: %s\n", names[i], strerror(-r));
			ret = r;
		} else {
			ret++;
		}
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return ret;
}

int main(int argc, char **argv)
{
	long total = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		int r;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			r = replay_dir(argv[i]);
		} else {
			r = replay_file(argv[i]);
			r = r < 0 ? r : 1;
		}
		if (r < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(-r));
			return 1;
		}
		total += r;
	}
	if (total == 0) {
		fprintf(stderr, "replay: no inputs\n");
		return 1;
	}
	printf("replayed %ld inputs, no crash\n", total);
	return 0;
}
