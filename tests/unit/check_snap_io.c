/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_snap_io.c - export and import of snapshots (part of the check_snap
 * suite): a round trip into a second state directory that keeps a 64 MiB
 * sparse RAM file sparse, and archives that are tampered with, carry extra
 * or linked entries, or meet blobs that exist with other content.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "base/err.h"
#include "tests/unit/check_snap.h"
#include "base/cleanup.h"
#include "snapshot/snap.h"

static void export_to(const char *id, const char *file)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_msg(snap_export(st, id, fd) == 0, "%s", err_msg());
	close(fd);
}

static int import_from(snap_store *s, const char *file, char **ret_id)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC), r;

	ck_assert_int_ge(fd, 0);
	r = snap_import(s, fd, ret_id);
	close(fd);
	return r;
}

/* nothing but the lock and an empty blobs/ in a store */
static void assert_store_empty(const char *state_dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd),
		 "test \"$(cd '%s/snapshots' && find . -mindepth 1 | sort | tr '\\n' ' ')\" = "
		 "'./.lock ./blobs '",
		 state_dir);
	ck_assert_msg(system(cmd) == 0, "%s/snapshots is not empty", state_dir);
}

START_TEST(test_export_import_round_trip_keeps_sparse_files_sparse)
{
	struct snap_manifest *m = new_manifest("big", SNAP_MEMORY, SNAP_MEM_SHARED_FILE, 3), *back;
	_cleanup_free_ char *ram = snap_blob_path(st, "ram-big"), *ram2 = NULL, *id = NULL;
	char file[400], page[4096];
	struct stat sb;
	int fd;

	make_blob(st, &m->parts[0], SNAP_PART_LAYER, "layer-big", 100000, 4);
	make_blob(st, &m->parts[2], SNAP_PART_STATE, "state-big.zst", 100, 5);
	/* 64 MiB of RAM, three pages of it written */
	fd = open(ram, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 64 << 20), 0);
	memset(page, 0x5a, sizeof(page));
	ck_assert_int_eq(pwrite(fd, page, sizeof(page), 0), 4096);
	ck_assert_int_eq(pwrite(fd, page, sizeof(page), 33 << 20), 4096);
	ck_assert_int_eq(pwrite(fd, page, 100, (64 << 20) - 100), 100);
	close(fd);
	m->parts[1] = (struct snap_part){SNAP_PART_RAM, strdup("ram-big"), 64 << 20, "", false};
	m->memory_mib = 64;
	ck_assert_int_eq(snap_sha256_file(ram, m->parts[1].sha256, NULL), 0);
	ck_assert_int_eq(snap_save(st, m), 0);
	snprintf(file, sizeof(file), "%s/big.tar.zst", tmp);
	export_to("big", file);
	ck_assert_int_eq(stat(file, &sb), 0);
	ck_assert_int_lt(sb.st_size, 1 << 20);
	ck_assert_msg(import_from(st2, file, &id) == 0, "%s", err_msg());
	ck_assert_str_eq(id, "big");
	ck_assert_int_eq(snap_load(st2, "big", &back), 0);
	ck_assert_str_eq(back->parts[1].sha256, m->parts[1].sha256);
	ck_assert_int_eq(snap_verify(st2, back, true, NULL, NULL), 0);
	ram2 = snap_blob_path(st2, "ram-big");
	ck_assert_int_eq(stat(ram2, &sb), 0);
	ck_assert_int_eq(sb.st_size, 64 << 20);
	ck_assert_int_lt((long long)sb.st_blocks * 512, 1 << 20);
	/* the id exists now */
	ck_assert_int_eq(import_from(st2, file, NULL), -EEXIST);
	snap_manifest_free(back);
	snap_manifest_free(m);
}
END_TEST

struct entry {
	const char *name;
	const char *data;
	size_t len;
	int type; /* AE_IFREG by default */
};

static void write_archive(const char *file, const struct entry *e, size_t n)
{
	struct archive *a = archive_write_new();

	archive_write_add_filter_zstd(a);
	archive_write_set_format_pax(a);
	ck_assert_int_eq(archive_write_open_filename(a, file), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *ae = archive_entry_new();

		archive_entry_set_pathname(ae, e[i].name);
		archive_entry_set_filetype(ae, e[i].type ? (unsigned)e[i].type : AE_IFREG);
		archive_entry_set_perm(ae, 0644);
		if (e[i].type == AE_IFLNK)
			archive_entry_set_symlink(ae, "/etc/passwd");
		else
			archive_entry_set_size(ae, (la_int64_t)e[i].len);
		ck_assert_int_eq(archive_write_header(a, ae), ARCHIVE_OK);
		if (e[i].type != AE_IFLNK)
			ck_assert_int_eq(archive_write_data(a, e[i].data, e[i].len),
					 (la_ssize_t)e[i].len);
		archive_entry_free(ae);
	}
	archive_write_close(a);
	archive_write_free(a);
}

START_TEST(test_import_rejects_tampered_archives_and_leaves_nothing)
{
	struct snap_manifest *m = fs_snapshot(st, "t1", "layer-t1");
	_cleanup_free_ char *text = snap_manifest_format(m), *good = NULL;
	char file[400], bad[5000];
	size_t glen;

	good = malloc(5000);
	for (size_t i = 0; i < 5000; i++)
		good[i] = (char)('t' + i * 7);
	glen = 5000;
	memcpy(bad, good, glen);
	bad[1234] ^= 1;
	snprintf(file, sizeof(file), "%s/bad.tar.zst", tmp);
	{
		const struct entry flipped[] = {{"manifest.json", text, strlen(text), 0},
						{"blobs/layer-t1", bad, glen, 0}};
		const struct entry extra[] = {{"manifest.json", text, strlen(text), 0},
					      {"blobs/layer-t1", good, glen, 0},
					      {"../evil", "x", 1, 0}};
		const struct entry link[] = {{"manifest.json", text, strlen(text), 0},
					     {"blobs/layer-t1", NULL, 0, AE_IFLNK}};
		const struct entry missing[] = {{"manifest.json", text, strlen(text), 0}};
		const struct entry blob_first[] = {{"blobs/layer-t1", good, glen, 0},
						   {"manifest.json", text, strlen(text), 0}};
		const struct entry twice[] = {{"manifest.json", text, strlen(text), 0},
					      {"blobs/layer-t1", good, glen, 0},
					      {"blobs/layer-t1", good, glen, 0}};
		const struct entry ok[] = {{"manifest.json", text, strlen(text), 0},
					   {"blobs/layer-t1", good, glen, 0}};

		write_archive(file, flipped, 2);
		ck_assert_int_eq(import_from(st2, file, NULL), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err_msg(), "SHA-256 mismatch"));
		assert_store_empty(state2);
		write_archive(file, extra, 3);
		ck_assert_int_eq(import_from(st2, file, NULL), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err_msg(), "../evil"));
		assert_store_empty(state2);
		write_archive(file, link, 2);
		ck_assert_int_eq(import_from(st2, file, NULL), -EBADMSG);
		assert_store_empty(state2);
		write_archive(file, missing, 1);
		ck_assert_int_eq(import_from(st2, file, NULL), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err_msg(), "no blobs/layer-t1"));
		write_archive(file, blob_first, 2);
		ck_assert_int_eq(import_from(st2, file, NULL), -EBADMSG);
		write_archive(file, twice, 3);
		ck_assert_int_eq(import_from(st2, file, NULL), -EBADMSG);
		assert_store_empty(state2);
		xwrite(file, "not an archive at all", 21);
		ck_assert_int_lt(import_from(st2, file, NULL), 0);
		assert_store_empty(state2);
		/* a blob already there with the same content is reused */
		write_archive(file, ok, 2);
		{
			_cleanup_free_ char *p2 = snap_blob_path(st2, "layer-t1");
			struct stat before, after;

			xwrite(p2, good, glen);
			ck_assert_int_eq(stat(p2, &before), 0);
			ck_assert_msg(import_from(st2, file, NULL) == 0, "%s", err_msg());
			ck_assert_int_eq(stat(p2, &after), 0);
			ck_assert_int_eq(before.st_ino, after.st_ino);
		}
	}
	snap_manifest_free(m);
}
END_TEST

START_TEST(test_import_refuses_a_blob_with_other_content)
{
	struct snap_manifest *m = fs_snapshot(st, "e1", "layer-e1");
	_cleanup_free_ char *p2 = snap_blob_path(st2, "layer-e1");
	char file[400];

	snprintf(file, sizeof(file), "%s/e1.tar.zst", tmp);
	export_to("e1", file);
	xwrite(p2, "something else", 14);
	ck_assert_int_eq(import_from(st2, file, NULL), -EEXIST);
	ck_assert_ptr_nonnull(strstr(err_msg(), "already exists with other content"));
	ck_assert(blob_exists(st2, "layer-e1"));
	snap_manifest_free(m);
}
END_TEST

void snap_io_add_tests(TCase *limits, TCase *errors)
{
	tcase_add_test(limits, test_export_import_round_trip_keeps_sparse_files_sparse);
	tcase_add_test(errors, test_import_rejects_tampered_archives_and_leaves_nothing);
	tcase_add_test(errors, test_import_refuses_a_blob_with_other_content);
}
