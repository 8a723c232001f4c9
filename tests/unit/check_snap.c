/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_snap.c - the snapshot store (snapshot/): manifest parse/format and
 * every validation error, save/load/list, verify and its cache, reference
 * scanning through manifests and vm.info files, delete and GC, export and
 * import (sparse files, tampered archives: check_snap_io.c).
 *
 * Each test gets a fresh temporary directory holding STATE, a second state
 * directory for imports and a fake image (small kernel, initrd and rootfs
 * with a manifest.json listing their checksums). No VM is started.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "snapshot/snap.h"
#include "snapshot/snap_int.h"
#include "tests/unit/check_snap.h"

LOG_DEFINE_STATE("check_snap");

char tmp[256], state[300], state2[300], image[300];
snap_store *st, *st2;

void xwrite(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

void xwrite_str(const char *path, const char *s)
{
	xwrite(path, s, strlen(s));
}

static void make_image(void)
{
	static const char *const files[] = {"vmlinuz", "initrd.img", "rootfs.ext4"};
	json_t *f = json_object();
	char path[400], hex[65];

	ck_assert_int_eq(mkdir(image, 0755), 0);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", image, files[i]);
		xwrite(path, files[i], strlen(files[i]));
		ck_assert_int_eq(snap_sha256_file(path, hex, NULL), 0);
		json_object_set_new(f, files[i], json_pack("{s:s}", "sha256", hex));
	}
	snprintf(path, sizeof(path), "%s/manifest.json", image);
	{
		json_t *m = json_pack("{s:i, s:o}", "format_version", 1, "files", f);
		char *text = json_dumps(m, 0);

		xwrite(path, text, strlen(text));
		free(text);
		json_decref(m);
	}
}

void setup(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/check_snap.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	snprintf(state, sizeof(state), "%s/state", tmp);
	snprintf(state2, sizeof(state2), "%s/state2", tmp);
	snprintf(image, sizeof(image), "%s/image", tmp);
	make_image();
	ck_assert_int_eq(snap_store_open(state, &st), 0);
	ck_assert_int_eq(snap_store_open(state2, &st2), 0);
	snap_verify_cache_clear();
}

void teardown(void)
{
	char cmd[400];

	st = snap_store_free(st);
	st2 = snap_store_free(st2);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	(void)!system(cmd);
}

/* A blob of size bytes (content from seed) in store s; fills part. */
void make_blob(snap_store *s, struct snap_part *p, enum snap_part_role role, const char *name,
	       size_t size, int seed)
{
	_cleanup_free_ char *path = snap_blob_path(s, name);
	_cleanup_free_ char *buf = malloc(size ? size : 1);

	for (size_t i = 0; i < size; i++)
		buf[i] = (char)(seed + i * 7);
	xwrite(path, buf, size);
	memset(p, 0, sizeof(*p));
	p->role = role;
	p->blob = strdup(name);
	p->size = size;
	ck_assert_int_eq(snap_sha256_file(path, p->sha256, NULL), 0);
}

/* A ready manifest with n parts (not owned: caller fills parts). */
struct snap_manifest *new_manifest(const char *id, enum snap_kind kind, enum snap_mem_mode mm,
				   size_t n)
{
	struct snap_manifest *m = calloc(1, sizeof(*m));

	m->format_version = 1;
	m->id = strdup(id);
	m->kind = kind;
	m->mem_mode = mm;
	m->status = SNAP_READY;
	m->image_dir = strdup(image);
	ck_assert_int_eq(snap_image_digest(image, &m->image_digest), 0);
	m->vcpus = 2;
	m->memory_mib = 256;
	m->disk_bytes = 1ULL << 30;
	m->created_ms = 1700000000123LL;
	m->parts = calloc(n ? n : 1, sizeof(*m->parts));
	m->n_parts = n;
	return m;
}

/* An fs snapshot with one own layer, saved. */
struct snap_manifest *fs_snapshot(snap_store *s, const char *id, const char *layer)
{
	struct snap_manifest *m = new_manifest(id, SNAP_FS, SNAP_MEM_NONE, 1);

	make_blob(s, &m->parts[0], SNAP_PART_LAYER, layer, 5000, id[0]);
	ck_assert_int_eq(snap_save(s, m), 0);
	return m;
}

bool blob_exists(snap_store *s, const char *name)
{
	_cleanup_free_ char *p = snap_blob_path(s, name);
	struct stat sb;

	return lstat(p, &sb) == 0;
}

/* ---- manifests ------------------------------------------------------------- */

START_TEST(test_manifest_round_trip_keeps_every_field)
{
	struct snap_manifest *m = new_manifest("child-1", SNAP_MEMORY, SNAP_MEM_SHARED_FILE, 4), *p;
	_cleanup_free_ char *text = NULL, *text2 = NULL;
	char err[256];

	m->name = strdup("before upgrade");
	m->parent = strdup("parent-1");
	m->source_vm = strdup("web-3");
	m->status_message = strdup("fine\n");
	m->parts[0] = (struct snap_part){SNAP_PART_LAYER, strdup("layer-1.qcow2"), 10, "", false};
	m->parts[1] = (struct snap_part){SNAP_PART_LAYER, strdup("layer-0.qcow2"), 20, "", true};
	m->parts[2] = (struct snap_part){SNAP_PART_RAM, strdup("ram-1"), 256ULL << 20, "", false};
	m->parts[3] = (struct snap_part){SNAP_PART_STATE, strdup("state-1.zst"), 60000, "", false};
	for (int i = 0; i < 4; i++)
		memset(m->parts[i].sha256, 'a' + i, 64);
	text = snap_manifest_format(m);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "\"created\": \"2023-11-14T22:13:20.123Z\""));
	ck_assert_int_eq(snap_manifest_parse(text, strlen(text), &p, err, sizeof(err)), 0);
	ck_assert_str_eq(p->id, "child-1");
	ck_assert_str_eq(p->name, "before upgrade");
	ck_assert_str_eq(p->parent, "parent-1");
	ck_assert_str_eq(p->source_vm, "web-3");
	ck_assert_str_eq(p->status_message, "fine\n");
	ck_assert_str_eq(p->image_dir, image);
	ck_assert_str_eq(p->image_digest, m->image_digest);
	ck_assert_int_eq(p->kind, SNAP_MEMORY);
	ck_assert_int_eq(p->mem_mode, SNAP_MEM_SHARED_FILE);
	ck_assert_int_eq(p->vcpus, 2);
	ck_assert_int_eq(p->memory_mib, 256);
	ck_assert_uint_eq(p->disk_bytes, 1ULL << 30);
	ck_assert_int_eq(p->created_ms, 1700000000123LL);
	ck_assert_uint_eq(p->n_parts, 4);
	ck_assert(p->parts[1].inherited && !p->parts[0].inherited);
	ck_assert_uint_eq(p->parts[2].size, 256ULL << 20);
	ck_assert_str_eq(snap_manifest_part(p, SNAP_PART_STATE)->blob, "state-1.zst");
	ck_assert_ptr_null(snap_manifest_part(p, SNAP_PART_STREAM));
	text2 = snap_manifest_format(p);
	ck_assert_str_eq(text, text2);
	snap_manifest_free(p);
	p = snap_manifest_dup(m);
	free(text2);
	text2 = snap_manifest_format(p);
	ck_assert_str_eq(text, text2);
	snap_manifest_free(p);
	snap_manifest_free(m);
}
END_TEST

START_TEST(test_new_ids_are_uuid4_and_blob_names_valid)
{
	_cleanup_free_ char *a = snap_new_id(), *b = snap_new_id();
	_cleanup_free_ char *x = snap_blob_new_name("layer", ".qcow2");
	_cleanup_free_ char *y = snap_blob_new_name("layer", ".qcow2");

	ck_assert_uint_eq(strlen(a), 36);
	ck_assert_int_eq(a[14], '4');
	ck_assert(strchr("89ab", a[19]));
	ck_assert(snap_id_is_valid(a));
	ck_assert_str_ne(a, b);
	ck_assert_uint_eq(strlen(x), strlen("layer-") + 16 + strlen(".qcow2"));
	ck_assert(snap_blob_name_is_valid(x));
	ck_assert_str_ne(x, y);
	ck_assert_ptr_null(snap_blob_new_name("Bad/", ""));
	ck_assert(!snap_id_is_valid("blobs"));
}
END_TEST

/* Each case: a change to a valid manifest, the key the error must name. */
static const struct bad_case {
	const char *key;  /* key to replace (dotted for nested, "-" to delete it) */
	const char *json; /* its new value, JSON text; NULL: delete the key */
	const char *want; /* the message must contain this */
} bad_cases[] = {
    {"format_version", "2", "newer sbx"},
    {"format_version", "0", "format_version"},
    {"format_version", "\"1\"", "format_version"},
    {"id", "\"Upper\"", "id"},
    {"id", "\"blobs\"", "id"},
    {"id", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", "id"},
    {"id", NULL, "id: missing"},
    {"name", "\"\"", "name"},
    {"name", "\"a\\u0001b\"", "name"},
    {"name", "5", "name"},
    {"parent", "\"../x\"", "parent"},
    {"parent", "\"snap-1\"", "parent"}, /* its own id */
    {"kind", "\"vm\"", "kind"},
    {"memory", "\"disk\"", "memory"},
    {"status", "\"done\"", "status"},
    {"status_message", "\"a\\u001b[31m\"", "status_message"},
    {"image", "\"/img\"", "image"},
    {"image.dir", "\"relative/dir\"", "image.dir"},
    {"image.dir", "\"/a\\nb\"", "image.dir"},
    {"image.digest", "\"md5:abc\"", "image.digest"},
    {"source_vm", "\"Web 3\"", "source_vm"},
    {"vcpus", "0", "vcpus"},
    {"vcpus", "65", "vcpus"},
    {"vcpus", "1.5", "vcpus"},
    {"memory_mib", "63", "memory_mib"},
    {"memory_mib", "1048577", "memory_mib"},
    {"disk_bytes", "1125899906842625", "disk_bytes"},
    {"disk_bytes", "-1", "disk_bytes"},
    {"created_ms", "-5", "created_ms"},
    {"created", "\"yesterday\"", "created"},
    {"created", "\"2023-11-14T22:13:21Z\"", "created"},
    {"parts", "{}", "parts"},
    {"parts", NULL, "parts: missing"},
    {"parts.0", "5", "parts[0]"},
    {"parts.0.role", "\"disk\"", "parts[0].role"},
    {"parts.0.blob", "\"../etc/passwd\"", "parts[0].blob"},
    {"parts.0.blob", "\"a/b\"", "parts[0].blob"},
    {"parts.0.blob", "\"a..b\"", "parts[0].blob"},
    {"parts.0.blob", "\"Layer\"", "parts[0].blob"},
    {"parts.0.blob", "\"layer-2\"", "parts[0].blob"}, /* the same as parts[1] */
    {"parts.0.size", "1125899906842625", "parts[0].size"},
    {"parts.0.sha256", "\"ABCDEF\"", "parts[0].sha256"},
    {"parts.0.sha256", "\"\"", "parts[0].sha256"},
    {"parts.0.inherited", "1", "parts[0].inherited"},
    {"parts.0.inherited", NULL, "parts[0].inherited: missing"},
    {"parts.1.inherited", "true", "parts[1].inherited"}, /* no parent */
    {"parts.0.role", "\"ram\"", "parts[0].role"},	 /* fs with a ram part */
    {"memory", "\"stream\"", "memory"},			 /* fs with memory */
    {"kind", "\"memory\"", "memory"},			 /* memory without memory */
    {"kind", "\"zygote\"", "zygote"},
};

static json_t *valid_json(void)
{
	struct snap_manifest *m = new_manifest("snap-1", SNAP_FS, SNAP_MEM_NONE, 2);
	char *text;
	json_t *j;

	m->parts[0] = (struct snap_part){SNAP_PART_LAYER, strdup("layer-1"), 1, "", false};
	m->parts[1] = (struct snap_part){SNAP_PART_LAYER, strdup("layer-2"), 1, "", false};
	memset(m->parts[0].sha256, 'a', 64);
	memset(m->parts[1].sha256, 'b', 64);
	text = snap_manifest_format(m);
	j = json_loads(text, 0, NULL);
	free(text);
	snap_manifest_free(m);
	ck_assert_ptr_nonnull(j);
	return j;
}

START_TEST(test_manifest_rejects_invalid_field)
{
	const struct bad_case *c = &bad_cases[_i];
	json_t *root = valid_json(), *obj = root;
	struct snap_manifest *m = NULL;
	char path[64], err[512], *dot, *key = path, *text;
	int r;

	text = json_dumps(root, 0);
	ck_assert_int_eq(snap_manifest_parse(text, strlen(text), &m, err, sizeof(err)), 0);
	m = snap_manifest_free(m);
	free(text);
	snprintf(path, sizeof(path), "%s", c->key);
	while ((dot = strchr(key, '.'))) {
		*dot = '\0';
		obj = json_is_array(obj) ? json_array_get(obj, (size_t)atoi(key))
					 : json_object_get(obj, key);
		key = dot + 1;
	}
	if (!c->json) {
		json_object_del(obj, key);
	} else {
		json_t *v = json_loads(c->json, JSON_DECODE_ANY, NULL);

		ck_assert_msg(v != NULL, "bad test JSON %s", c->json);
		if (json_is_array(obj))
			json_array_set_new(obj, (size_t)atoi(key), v);
		else
			json_object_set_new(obj, key, v);
	}
	text = json_dumps(root, 0);
	r = snap_manifest_parse(text, strlen(text), &m, err, sizeof(err));
	ck_assert_msg(r < 0, "case %d (%s) was accepted", _i, c->key);
	ck_assert_msg(strstr(err, c->want), "case %d: \"%s\" does not say \"%s\"", _i, err,
		      c->want);
	if (!strcmp(c->want, "newer sbx"))
		ck_assert_int_eq(r, -EPROTONOSUPPORT);
	free(text);
	json_decref(root);
}
END_TEST

START_TEST(test_manifest_rejects_bad_documents_and_part_sets)
{
	static const char *const docs[] = {"", "[]",
					   "{\"format_version\": 1, \"format_version\": 1}",
					   "{\"format_version\": 1", "null"};
	struct snap_manifest *m = new_manifest("z", SNAP_ZYGOTE, SNAP_MEM_SHARED_FILE, 1), *p;
	_cleanup_free_ char *big = calloc(1, SNAP_MANIFEST_MAX + 2);
	char err[512], *text;

	for (size_t i = 0; i < ARRAY_SIZE(docs); i++) {
		ck_assert_int_eq(
		    snap_manifest_parse(docs[i], strlen(docs[i]), &p, err, sizeof(err)), -EBADMSG);
		ck_assert(strstr(err, "manifest") || strstr(err, "format_version"));
	}
	memset(big, ' ', SNAP_MANIFEST_MAX + 1);
	ck_assert_int_eq(snap_manifest_parse(big, SNAP_MANIFEST_MAX + 1, &p, err, sizeof(err)),
			 -EBADMSG);
	/* shared-file needs ram and state; stream needs only a stream */
	m->parts[0] = (struct snap_part){SNAP_PART_RAM, strdup("ram-1"), 256ULL << 20, "", false};
	memset(m->parts[0].sha256, 'a', 64);
	text = snap_manifest_format(m);
	ck_assert_int_eq(snap_manifest_parse(text, strlen(text), &p, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "shared-file"));
	free(text);
	m->mem_mode = SNAP_MEM_STREAM;
	text = snap_manifest_format(m);
	ck_assert_int_eq(snap_manifest_parse(text, strlen(text), &p, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "stream"));
	free(text);
	m->parts[0].role = SNAP_PART_STREAM;
	text = snap_manifest_format(m);
	ck_assert_int_eq(snap_manifest_parse(text, strlen(text), &p, err, sizeof(err)), 0);
	snap_manifest_free(p);
	free(text);
	/* building: empty checksums are fine; snap_save refuses what would not load */
	m->status = SNAP_BUILDING;
	m->parts[0].sha256[0] = '\0';
	ck_assert_int_eq(snap_save(st, m), 0);
	m->vcpus = 0;
	ck_assert_int_eq(snap_save(st, m), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err_msg(), "vcpus"));
	snap_manifest_free(m);
}
END_TEST

START_TEST(test_save_load_list)
{
	struct snap_manifest *a = fs_snapshot(st, "aaa", "layer-a"), *b, **l = NULL;
	char path[400];
	size_t n = 0;

	b = new_manifest("bbb", SNAP_FS, SNAP_MEM_NONE, 0);
	b->created_ms = a->created_ms - 1000;
	ck_assert_int_eq(snap_save(st, b), 0);
	/* a directory without manifest and a damaged one are left out */
	snprintf(path, sizeof(path), "%s/snapshots/ccc", state);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/snapshots/ddd", state);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/snapshots/ddd/manifest.json", state);
	xwrite(path, "{", 1);
	ck_assert_int_eq(snap_list(st, &l, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(l[0]->id, "bbb");
	ck_assert_str_eq(l[1]->id, "aaa");
	ck_assert_str_eq(l[1]->parts[0].sha256, a->parts[0].sha256);
	snap_list_free(l, n);
	{
		struct snap_manifest *x = NULL;

		ck_assert_int_eq(snap_load(st, "ddd", &x), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err_msg(), "snapshot ddd: manifest.json"));
		ck_assert_int_eq(snap_load(st, "zzz", &x), -ENOENT);
		ck_assert_int_eq(snap_load(st, "../x", &x), -EINVAL);
	}
	snap_manifest_free(a);
	snap_manifest_free(b);
}
END_TEST

/* ---- verify ---------------------------------------------------------------- */

static int progress_calls;
static void count_progress(void *ud, uint64_t done, uint64_t total)
{
	(void)ud;
	(void)done;
	(void)total;
	progress_calls++;
}

START_TEST(test_verify_good_truncated_flipped_missing)
{
	struct snap_manifest *m = fs_snapshot(st, "v1", "layer-v1");
	_cleanup_free_ char *path = snap_blob_path(st, "layer-v1");
	int fd;

	ck_assert_int_eq(snap_verify(st, m, true, NULL, NULL), 0);
	ck_assert_int_eq(truncate(path, 4000), 0);
	ck_assert_int_eq(snap_verify(st, m, true, NULL, NULL), -EBADMSG);
	ck_assert_str_eq(err_msg(),
			 "snapshot v1: part layer (blobs/layer-v1): size 4000 but the manifest "
			 "says 5000 (truncated?)");
	snap_manifest_free(m);
	m = fs_snapshot(st, "v1", "layer-v1");
	fd = open(path, O_WRONLY | O_CLOEXEC);
	ck_assert_int_eq(pwrite(fd, "X", 1, 2500), 1);
	close(fd);
	ck_assert_int_eq(snap_verify(st, m, true, NULL, NULL), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err_msg(), "part layer (blobs/layer-v1): SHA-256 "
						"mismatch: the file was changed or damaged"));
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(snap_verify(st, m, false, NULL, NULL), -ENOENT);
	ck_assert_str_eq(err_msg(), "snapshot v1: part layer (blobs/layer-v1): missing");
	m->status = SNAP_BUILDING;
	ck_assert_int_eq(snap_verify(st, m, false, NULL, NULL), -EBUSY);
	snap_manifest_free(m);
}
END_TEST

START_TEST(test_verify_cache_hit_then_change_seen_through_ctime)
{
	struct snap_manifest *m = fs_snapshot(st, "c1", "layer-c1");
	_cleanup_free_ char *path = snap_blob_path(st, "layer-c1");
	struct timespec times[2];
	struct stat sb;
	int fd;

	/* hashing a blob to record its checksum primes the cache: start cold */
	snap_verify_cache_clear();
	progress_calls = 0;
	ck_assert_int_eq(snap_verify(st, m, false, count_progress, NULL), 0);
	ck_assert_int_gt(progress_calls, 0);
	progress_calls = 0;
	ck_assert_int_eq(snap_verify(st, m, false, count_progress, NULL), 0);
	ck_assert_int_eq(progress_calls, 0); /* nothing hashed: a cache hit */
	ck_assert_int_eq(snap_verify(st, m, true, count_progress, NULL), 0);
	ck_assert_int_gt(progress_calls, 0); /* full: hashed again */
	/* same size, mtime put back: only ctime tells */
	ck_assert_int_eq(stat(path, &sb), 0);
	usleep(20000);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	ck_assert_int_eq(pwrite(fd, "Y", 1, 10), 1);
	close(fd);
	times[0] = sb.st_atim;
	times[1] = sb.st_mtim;
	ck_assert_int_eq(utimensat(AT_FDCWD, path, times, 0), 0);
	ck_assert_int_eq(snap_verify(st, m, false, NULL, NULL), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err_msg(), "SHA-256 mismatch"));
	snap_manifest_free(m);
}
END_TEST

START_TEST(test_verify_checks_the_image)
{
	struct snap_manifest *m = fs_snapshot(st, "i1", "layer-i1");
	_cleanup_free_ char *want = NULL, *digest = NULL;
	char path[400], lines[400];
	json_t *j, *f;

	/* the digest: SHA-256 of the three "name sha256" lines */
	snprintf(path, sizeof(path), "%s/manifest.json", image);
	j = json_load_file(path, 0, NULL);
	f = json_object_get(j, "files");
	snprintf(lines, sizeof(lines), "kernel %s\ninitrd %s\nrootfs %s\n",
		 json_string_value(json_object_get(json_object_get(f, "vmlinuz"), "sha256")),
		 json_string_value(json_object_get(json_object_get(f, "initrd.img"), "sha256")),
		 json_string_value(json_object_get(json_object_get(f, "rootfs.ext4"), "sha256")));
	snprintf(path, sizeof(path), "%s/lines", tmp);
	xwrite(path, lines, strlen(lines));
	{
		char hex[65];

		ck_assert_int_eq(snap_sha256_file(path, hex, NULL), 0);
		ck_assert_int_ge(asprintf(&want, "sha256:%s", hex), 0);
	}
	ck_assert_str_eq(m->image_digest, want);
	/* the image changes: the snapshot is stale */
	json_object_set_new(
	    json_object_get(f, "rootfs.ext4"), "sha256",
	    json_string("0000000000000000000000000000000000000000000000000000000000000000"));
	snprintf(path, sizeof(path), "%s/manifest.json", image);
	json_dump_file(j, path, 0);
	ck_assert_int_eq(snap_verify(st, m, false, NULL, NULL), -ESTALE);
	ck_assert_ptr_nonnull(strstr(err_msg(), "changed since the snapshot was taken"));
	/* no manifest.json: digest "" */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(snap_image_digest(image, &digest), 0);
	ck_assert_str_eq(digest, "");
	snprintf(path, sizeof(path), "%s/rootfs.ext4", image);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(snap_verify(st, m, false, NULL, NULL), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err_msg(), "rootfs.ext4"));
	json_decref(j);
	snap_manifest_free(m);
}
END_TEST

/* ---- references, delete, GC ------------------------------------------------ */

static void fake_vm(const char *name, const char *ram_blob, const char *layer_blob)
{
	_cleanup_free_ char *ram = snap_blob_path(st, ram_blob);
	_cleanup_free_ char *layer = snap_blob_path(st, layer_blob);
	char path[400], text[2048];

	snprintf(path, sizeof(path), "%s/vms", state);
	(void)mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/vms/%s", state, name);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(text, sizeof(text),
		 "image %s\nvcpus 2\nmemory_mib 256\ndisk_bytes 1073741824\n"
		 "disk %s/overlay.qcow2\nram_file %s\nram_shared 0\nlayer %s/overlay-old\n"
		 "layer %s\n",
		 image, path, ram, path, layer);
	snprintf(path, sizeof(path), "%s/vms/%s/vm.info", state, name);
	xwrite(path, text, strlen(text));
}

static struct snap_manifest *memory_snapshot(snap_store *s, const char *id, size_t ram_size)
{
	struct snap_manifest *m = new_manifest(id, SNAP_MEMORY, SNAP_MEM_SHARED_FILE, 3);
	char name[64];

	snprintf(name, sizeof(name), "layer-%s", id);
	make_blob(s, &m->parts[0], SNAP_PART_LAYER, name, 3000, 1);
	snprintf(name, sizeof(name), "ram-%s", id);
	make_blob(s, &m->parts[1], SNAP_PART_RAM, name, ram_size, 2);
	m->memory_mib = (unsigned)(ram_size >> 20); /* a RAM file is the guest's memory */
	snprintf(name, sizeof(name), "state-%s.zst", id);
	make_blob(s, &m->parts[2], SNAP_PART_STATE, name, 700, 3);
	m->source_vm = strdup("web-1");
	ck_assert_int_eq(snap_save(s, m), 0);
	return m;
}

START_TEST(test_vm_keeps_blobs_through_delete_until_gc)
{
	struct snap_manifest *m = memory_snapshot(st, "m1", 64 << 20);
	char **vms = NULL, **kids = NULL, path[400];
	uint64_t freed = 1;

	fake_vm("fork-1", "ram-m1", "layer-m1");
	ck_assert_int_eq(snap_users(st, "m1", &vms, &kids), 0);
	ck_assert_str_eq(vms[0], "fork-1");
	ck_assert_ptr_null(vms[1]);
	ck_assert_ptr_null(kids[0]);
	snap_strv_free(vms);
	snap_strv_free(kids);
	ck_assert_int_eq(snap_delete(st, "m1", &freed), 0);
	ck_assert(blob_exists(st, "ram-m1") && blob_exists(st, "layer-m1"));
	ck_assert(!blob_exists(st, "state-m1.zst")); /* nobody else used it */
	ck_assert_uint_gt(freed, 0);
	ck_assert_int_eq(snap_delete(st, "m1", NULL), -ENOENT);
	ck_assert_int_eq(snap_gc(st, false, &freed), 0);
	ck_assert_uint_eq(freed, 0);
	ck_assert(blob_exists(st, "ram-m1"));
	snprintf(path, sizeof(path), "%s/vms/fork-1/vm.info", state);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(snap_gc(st, false, &freed), 0);
	ck_assert_uint_ge(freed, 65536);
	ck_assert(!blob_exists(st, "ram-m1") && !blob_exists(st, "layer-m1"));
	snap_manifest_free(m);
}
END_TEST

START_TEST(test_child_keeps_inherited_layer)
{
	struct snap_manifest *p = fs_snapshot(st, "parent", "layer-p");
	struct snap_manifest *c = new_manifest("child", SNAP_FS, SNAP_MEM_NONE, 2);
	struct snap_manifest *g = new_manifest("grandchild", SNAP_FS, SNAP_MEM_NONE, 0);
	char **vms = NULL, **kids = NULL;
	uint64_t freed = 0;

	c->parent = strdup("parent");
	make_blob(st, &c->parts[0], SNAP_PART_LAYER, "layer-c", 4096, 9);
	c->parts[1] = p->parts[0];
	c->parts[1].blob = strdup("layer-p");
	c->parts[1].inherited = true;
	ck_assert_int_eq(snap_save(st, c), 0);
	g->parent = strdup("child");
	ck_assert_int_eq(snap_save(st, g), 0);
	ck_assert_int_eq(snap_users(st, "parent", &vms, &kids), 0);
	ck_assert_ptr_null(vms[0]);
	ck_assert_str_eq(kids[0], "child");
	ck_assert_str_eq(kids[1], "grandchild");
	snap_strv_free(vms);
	snap_strv_free(kids);
	ck_assert_int_eq(snap_delete(st, "parent", &freed), 0);
	ck_assert_uint_eq(freed, 0);
	ck_assert(blob_exists(st, "layer-p"));
	ck_assert_int_eq(snap_delete(st, "child", &freed), 0);
	ck_assert(!blob_exists(st, "layer-p") && !blob_exists(st, "layer-c"));
	ck_assert_uint_gt(freed, 0);
	snap_manifest_free(p);
	snap_manifest_free(c);
	snap_manifest_free(g);
}
END_TEST

START_TEST(test_gc_building_and_unreadable_manifests)
{
	struct snap_manifest *m = fs_snapshot(st, "b1", "layer-b1");
	_cleanup_free_ char *junk = snap_blob_path(st, "orphan-1"), *odd = snap_blob_path(st, "X~");
	char path[400];
	uint64_t freed = 0;

	xwrite(junk, "junk", 4);
	xwrite(odd, "not ours", 8);
	m->status = SNAP_BUILDING;
	ck_assert_int_eq(snap_save(st, m), 0);
	ck_assert_int_eq(snap_gc(st, false, &freed), 0);
	ck_assert(blob_exists(st, "layer-b1") && !blob_exists(st, "orphan-1"));
	ck_assert(blob_exists(st, "X~")); /* not a blob name: left alone */
	/* a manifest nobody can read stops GC before it removes anything */
	snprintf(path, sizeof(path), "%s/snapshots/broken", state);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/snapshots/broken/manifest.json", state);
	xwrite_str(path, "{\"format_version\": 1, \"parts\": [");
	ck_assert_int_eq(snap_gc(st, true, &freed), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err_msg(), "snapshot broken"));
	ck_assert(blob_exists(st, "layer-b1"));
	/* a newer format is not readable either */
	xwrite_str(path, "{\"format_version\": 2}");
	ck_assert_int_eq(snap_gc(st, true, &freed), -EPROTONOSUPPORT);
	/* a damaged format 1 manifest still protects what it names */
	xwrite_str(path, "{\"format_version\": 1, \"parts\": [{\"blob\": \"layer-b1\"}]}");
	ck_assert_int_eq(snap_gc(st, true, &freed), 0);
	ck_assert(blob_exists(st, "layer-b1")); /* b1 was dead, broken names it */
	{
		struct snap_manifest *x = NULL;

		ck_assert_int_eq(snap_load(st, "b1", &x), -ENOENT);
	}
	ck_assert_int_eq(snap_delete(st, "broken", &freed), 0);
	ck_assert_int_eq(snap_gc(st, false, &freed), 0);
	ck_assert(!blob_exists(st, "layer-b1"));
	snap_manifest_free(m);
}
END_TEST

static Suite *snap_suite(void)
{
	Suite *s = suite_create("snap");
	TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
	      *errors = tcase_create("errors");

	tcase_add_checked_fixture(core, setup, teardown);
	tcase_add_test(core, test_manifest_round_trip_keeps_every_field);
	tcase_add_test(core, test_new_ids_are_uuid4_and_blob_names_valid);
	tcase_add_test(core, test_save_load_list);
	tcase_add_test(core, test_verify_good_truncated_flipped_missing);
	tcase_add_test(core, test_verify_cache_hit_then_change_seen_through_ctime);
	tcase_add_test(core, test_verify_checks_the_image);
	tcase_add_test(core, test_vm_keeps_blobs_through_delete_until_gc);
	tcase_add_test(core, test_child_keeps_inherited_layer);
	tcase_add_test(core, test_gc_building_and_unreadable_manifests);
	suite_add_tcase(s, core);

	tcase_add_checked_fixture(limits, setup, teardown);
	tcase_set_timeout(limits, 60);
	suite_add_tcase(s, limits);

	tcase_add_checked_fixture(errors, setup, teardown);
	tcase_add_loop_test(errors, test_manifest_rejects_invalid_field, 0,
			    (int)ARRAY_SIZE(bad_cases));
	tcase_add_test(errors, test_manifest_rejects_bad_documents_and_part_sets);
	snap_io_add_tests(limits, errors);
	suite_add_tcase(s, errors);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(snap_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
