/* SPDX-License-Identifier: Apache-2.0 */
/*
 * manifest.c - the snapshot manifest: JSON (jansson) to struct snap_manifest
 * and back, with every check an untrusted manifest needs (an imported
 * archive carries one): string lengths and alphabets, number ranges, the
 * number of parts, and the consistency of kind, memory mode and parts.
 * docs/snapshots.md lists the keys and their bounds; an error message
 * always names the key ("parts[2].sha256: ...").
 *
 * No file access here: the fuzz target links this file alone (plus
 * jansson), so the names, validators and err_set() live here too.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "snapshot/snap_int.h"

/* Year 9999, the last instant RFC 3339 can write with four digits. */
#define CREATED_MS_MAX 253402300799999LL

static const char *const kind_names[SNAP_KIND_COUNT] = {
    [SNAP_FS] = "fs", [SNAP_MEMORY] = "memory", [SNAP_ZYGOTE] = "zygote"};
static const char *const mem_names[SNAP_MEM_COUNT] = {
    [SNAP_MEM_NONE] = "none",
    [SNAP_MEM_SHARED_FILE] = "shared-file",
    [SNAP_MEM_STREAM] = "stream",
};
static const char *const status_names[SNAP_STATUS_COUNT] = {
    [SNAP_BUILDING] = "building", [SNAP_READY] = "ready", [SNAP_FAILED] = "failed"};
static const char *const role_names[SNAP_PART_ROLE_COUNT] = {
    [SNAP_PART_LAYER] = "layer",
    [SNAP_PART_RAM] = "ram",
    [SNAP_PART_STATE] = "state",
    [SNAP_PART_STREAM] = "stream",
};

const char *snap_kind_to_string(enum snap_kind k)
{
	return (unsigned)k < SNAP_KIND_COUNT ? kind_names[k] : NULL;
}

const char *snap_mem_mode_to_string(enum snap_mem_mode m)
{
	return (unsigned)m < SNAP_MEM_COUNT ? mem_names[m] : NULL;
}

const char *snap_status_to_string(enum snap_status s)
{
	return (unsigned)s < SNAP_STATUS_COUNT ? status_names[s] : NULL;
}

const char *snap_part_role_to_string(enum snap_part_role r)
{
	return (unsigned)r < SNAP_PART_ROLE_COUNT ? role_names[r] : NULL;
}

static int from_string(const char *const *names, int n, const char *s)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], s))
			return i;
	return -EINVAL;
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9][a-z0-9-]{0,max-1} */
static bool name_ok(const char *s, size_t max)
{
	size_t n;

	if (!s || !is_lower_alnum(s[0]))
		return false;
	for (n = 1; s[n]; n++)
		if (n >= max || !(is_lower_alnum(s[n]) || s[n] == '-'))
			return false;
	return true;
}

/* "blobs" is the directory of the blobs, which sits beside the ids. */
bool snap_id_is_valid(const char *id)
{
	return name_ok(id, SNAP_ID_MAX) && strcmp(id, "blobs") != 0;
}

bool snap_vm_name_is_valid(const char *name)
{
	return name_ok(name, 63);
}

bool snap_blob_name_is_valid(const char *name)
{
	size_t n;

	if (!name || !is_lower_alnum(name[0]) || strstr(name, ".."))
		return false;
	for (n = 1; name[n]; n++)
		if (n >= SNAP_BLOB_MAX ||
		    !(is_lower_alnum(name[n]) || name[n] == '-' || name[n] == '.'))
			return false;
	return true;
}

static bool is_sha256_hex(const char *s)
{
	size_t n;

	for (n = 0; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == 64;
}

/* no control characters, except newline and tab where allow_nl */
static bool text_ok(const char *s, bool allow_nl)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c < 0x20 || c == 0x7f) && !(allow_nl && (c == '\n' || c == '\t')))
			return false;
	}
	return true;
}

/* ---- parsing --------------------------------------------------------------- */

struct pctx {
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int perr(struct pctx *c, int code, const char *fmt,
						      ...)
{
	va_list ap;

	if (c->err && c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* A string member (NULL for JSON null when nullable). */
static int get_str(struct pctx *c, json_t *o, const char *key, const char *label, bool nullable,
		   size_t max, const char **ret)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return perr(c, -EBADMSG, "%s: missing", label);
	if (json_is_null(v) && nullable) {
		*ret = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return perr(c, -EBADMSG, "%s: must be a string%s", label,
			    nullable ? " or null" : "");
	if (json_string_length(v) > max)
		return perr(c, -EBADMSG, "%s: longer than %zu bytes", label, max);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return perr(c, -EBADMSG, "%s: contains a NUL character", label);
	*ret = json_string_value(v);
	return 0;
}

static int get_uint(struct pctx *c, json_t *o, const char *key, const char *label, uint64_t min,
		    uint64_t max, uint64_t *ret)
{
	json_t *v = json_object_get(o, key);
	json_int_t i;

	if (!v)
		return perr(c, -EBADMSG, "%s: missing", label);
	if (!json_is_integer(v))
		return perr(c, -EBADMSG, "%s: must be an integer", label);
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
		return perr(c, -EBADMSG, "%s: %lld is out of range (%llu..%llu)", label,
			    (long long)i, (unsigned long long)min, (unsigned long long)max);
	*ret = (uint64_t)i;
	return 0;
}

static int get_enum(struct pctx *c, json_t *o, const char *key, const char *label,
		    const char *const *names, int n, int *ret)
{
	const char *s;
	int r = get_str(c, o, key, label, false, 64, &s);

	if (r < 0)
		return r;
	r = from_string(names, n, s);
	if (r < 0) {
		char list[128] = "";

		for (int i = 0; i < n; i++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s\"%s\"",
				 i ? ", " : "", names[i]);
		return perr(c, -EBADMSG, "%s: \"%s\" is not one of %s", label, s, list);
	}
	*ret = r;
	return 0;
}

static int dup_str(const char *s, char **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

/* The canonical "created" text of created_ms, with or without the
 * milliseconds. */
static void format_created(int64_t ms, bool with_ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char sec[32];

	gmtime_r(&t, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
	if (with_ms)
		snprintf(buf, len, "%.20s.%03dZ", sec, (int)(ms % 1000));
	else
		snprintf(buf, len, "%.20sZ", sec);
}

static int parse_parts(struct pctx *c, json_t *root, struct snap_manifest *m)
{
	json_t *parts = json_object_get(root, "parts");
	bool seen_inherited = false;
	size_t n;

	if (!parts)
		return perr(c, -EBADMSG, "parts: missing");
	if (!json_is_array(parts))
		return perr(c, -EBADMSG, "parts: must be an array");
	n = json_array_size(parts);
	if (n > SNAP_MAX_PARTS)
		return perr(c, -EBADMSG, "parts: %zu parts, at most %d allowed", n, SNAP_MAX_PARTS);
	m->parts = calloc(n ? n : 1, sizeof(*m->parts));
	if (!m->parts)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *p = json_array_get(parts, i), *inh;
		struct snap_part *part = &m->parts[i];
		const char *blob, *sha;
		char label[48];
		int role, r;

		if (!json_is_object(p))
			return perr(c, -EBADMSG, "parts[%zu]: must be an object", i);
		snprintf(label, sizeof(label), "parts[%zu].role", i);
		r = get_enum(c, p, "role", label, role_names, SNAP_PART_ROLE_COUNT, &role);
		if (r < 0)
			return r;
		part->role = role;
		snprintf(label, sizeof(label), "parts[%zu].blob", i);
		r = get_str(c, p, "blob", label, false, SNAP_BLOB_MAX, &blob);
		if (r < 0)
			return r;
		if (!snap_blob_name_is_valid(blob))
			return perr(
			    c, -EBADMSG,
			    "%s: \"%s\" is not a blob name ([a-z0-9][a-z0-9.-]*, no \"..\")", label,
			    blob);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(m->parts[j].blob, blob))
				return perr(c, -EBADMSG, "%s: \"%s\" is also parts[%zu].blob",
					    label, blob, j);
		part->blob = strdup(blob);
		if (!part->blob)
			return -ENOMEM;
		m->n_parts = i + 1;
		snprintf(label, sizeof(label), "parts[%zu].size", i);
		r = get_uint(c, p, "size", label, 0, SNAP_SIZE_MAX, &part->size);
		if (r < 0)
			return r;
		snprintf(label, sizeof(label), "parts[%zu].sha256", i);
		r = get_str(c, p, "sha256", label, false, 64, &sha);
		if (r < 0)
			return r;
		if (*sha && !is_sha256_hex(sha))
			return perr(c, -EBADMSG, "%s: must be 64 lower-case hex digits", label);
		if (!*sha && m->status == SNAP_READY)
			return perr(c, -EBADMSG, "%s: empty, but the snapshot is ready", label);
		memcpy(part->sha256, sha, strlen(sha) + 1);
		snprintf(label, sizeof(label), "parts[%zu].inherited", i);
		inh = json_object_get(p, "inherited");
		if (!inh)
			return perr(c, -EBADMSG, "%s: missing", label);
		if (!json_is_boolean(inh))
			return perr(c, -EBADMSG, "%s: must be true or false", label);
		part->inherited = json_is_true(inh);
		if (part->inherited && part->role != SNAP_PART_LAYER)
			return perr(c, -EBADMSG, "%s: only layers are inherited", label);
		if (part->inherited && !m->parent)
			return perr(c, -EBADMSG, "%s: an inherited layer needs a parent", label);
		if (!part->inherited && part->role == SNAP_PART_LAYER && seen_inherited)
			return perr(c, -EBADMSG,
				    "%s: the snapshot's own layers come before inherited ones",
				    label);
		seen_inherited |= part->inherited;
	}
	return 0;
}

/* kind, memory mode and parts must fit together */
static int check_consistency(struct pctx *c, const struct snap_manifest *m)
{
	size_t count[SNAP_PART_ROLE_COUNT] = {0};

	for (size_t i = 0; i < m->n_parts; i++) {
		count[m->parts[i].role]++;
		if (m->kind == SNAP_FS && m->parts[i].role != SNAP_PART_LAYER)
			return perr(c, -EBADMSG,
				    "parts[%zu].role: a snapshot of kind fs has only layer parts",
				    i);
		if (m->kind == SNAP_ZYGOTE && m->parts[i].role == SNAP_PART_LAYER)
			return perr(c, -EBADMSG, "parts[%zu].role: a zygote has no disk layers", i);
		/* a RAM file is exactly the guest's memory (QEMU sizes it so);
		 * this also bounds what verify and import hash */
		if (m->status == SNAP_READY && m->parts[i].role == SNAP_PART_RAM &&
		    m->parts[i].size != (uint64_t)m->memory_mib << 20)
			return perr(c, -EBADMSG,
				    "parts[%zu].size: a ram part is exactly memory_mib MiB "
				    "(%llu bytes), not %llu",
				    i, (unsigned long long)m->memory_mib << 20,
				    (unsigned long long)m->parts[i].size);
	}
	if (m->kind == SNAP_FS && m->mem_mode != SNAP_MEM_NONE)
		return perr(c, -EBADMSG, "memory: must be \"none\" for kind fs");
	if (m->kind != SNAP_FS && m->mem_mode == SNAP_MEM_NONE)
		return perr(c, -EBADMSG, "memory: kind %s needs \"shared-file\" or \"stream\"",
			    kind_names[m->kind]);
	if (m->mem_mode == SNAP_MEM_SHARED_FILE &&
	    (count[SNAP_PART_RAM] != 1 || count[SNAP_PART_STATE] != 1 || count[SNAP_PART_STREAM]))
		return perr(c, -EBADMSG,
			    "parts: memory \"shared-file\" needs exactly one ram and one state "
			    "part and no stream (has %zu ram, %zu state, %zu stream)",
			    count[SNAP_PART_RAM], count[SNAP_PART_STATE], count[SNAP_PART_STREAM]);
	if (m->mem_mode == SNAP_MEM_STREAM &&
	    (count[SNAP_PART_STREAM] != 1 || count[SNAP_PART_RAM] || count[SNAP_PART_STATE]))
		return perr(c, -EBADMSG,
			    "parts: memory \"stream\" needs exactly one stream part and no ram "
			    "or state (has %zu stream, %zu ram, %zu state)",
			    count[SNAP_PART_STREAM], count[SNAP_PART_RAM], count[SNAP_PART_STATE]);
	return 0;
}

static int parse_image(struct pctx *c, json_t *root, struct snap_manifest *m)
{
	json_t *img = json_object_get(root, "image");
	const char *dir, *digest;
	int r;

	if (!img)
		return perr(c, -EBADMSG, "image: missing");
	if (!json_is_object(img))
		return perr(c, -EBADMSG, "image: must be an object {dir, digest}");
	r = get_str(c, img, "dir", "image.dir", false, SNAP_PATH_MAX, &dir);
	if (r < 0)
		return r;
	if (dir[0] != '/' || !text_ok(dir, false))
		return perr(c, -EBADMSG,
			    "image.dir: must be an absolute path without control "
			    "characters");
	r = get_str(c, img, "digest", "image.digest", false, 7 + 64, &digest);
	if (r < 0)
		return r;
	if (*digest && (strncmp(digest, "sha256:", 7) || !is_sha256_hex(digest + 7)))
		return perr(c, -EBADMSG,
			    "image.digest: must be \"\" or \"sha256:\" and 64 lower-case "
			    "hex digits");
	if (dup_str(dir, &m->image_dir) < 0 || dup_str(digest, &m->image_digest) < 0)
		return -ENOMEM;
	return 0;
}

static int parse_root(struct pctx *c, json_t *root, struct snap_manifest *m)
{
	const char *id, *name, *parent, *msg, *svm, *created;
	json_t *fv = json_object_get(root, "format_version");
	uint64_t u;
	int e, r;

	if (!json_is_object(root))
		return perr(c, -EBADMSG, "manifest: must be a JSON object");
	if (!fv)
		return perr(c, -EBADMSG, "format_version: missing");
	if (!json_is_integer(fv))
		return perr(c, -EBADMSG, "format_version: must be an integer");
	if (json_integer_value(fv) > SNAP_FORMAT_VERSION)
		return perr(c, -EPROTONOSUPPORT,
			    "format_version: %lld: the snapshot was made by a newer sbx (this one "
			    "reads version %d)",
			    (long long)json_integer_value(fv), SNAP_FORMAT_VERSION);
	if (json_integer_value(fv) != SNAP_FORMAT_VERSION)
		return perr(c, -EBADMSG, "format_version: %lld is not a valid version",
			    (long long)json_integer_value(fv));
	m->format_version = SNAP_FORMAT_VERSION;

	if ((r = get_str(c, root, "id", "id", false, SNAP_ID_MAX, &id)) < 0)
		return r;
	if (!snap_id_is_valid(id))
		return perr(c, -EBADMSG, "id: \"%s\" is not a snapshot id ([a-z0-9][a-z0-9-]*)",
			    id);
	if ((r = get_str(c, root, "name", "name", true, SNAP_NAME_MAX, &name)) < 0)
		return r;
	if (name && (!*name || !text_ok(name, false)))
		return perr(c, -EBADMSG,
			    "name: must be null or non-empty without control "
			    "characters");
	if ((r = get_str(c, root, "parent", "parent", true, SNAP_ID_MAX, &parent)) < 0)
		return r;
	if (parent && !snap_id_is_valid(parent))
		return perr(c, -EBADMSG, "parent: \"%s\" is not a snapshot id", parent);
	if (parent && !strcmp(parent, id))
		return perr(c, -EBADMSG, "parent: a snapshot cannot be its own parent");
	if ((r = get_enum(c, root, "kind", "kind", kind_names, SNAP_KIND_COUNT, &e)) < 0)
		return r;
	m->kind = e;
	if ((r = get_enum(c, root, "memory", "memory", mem_names, SNAP_MEM_COUNT, &e)) < 0)
		return r;
	m->mem_mode = e;
	if ((r = get_enum(c, root, "status", "status", status_names, SNAP_STATUS_COUNT, &e)) < 0)
		return r;
	m->status = e;
	r = get_str(c, root, "status_message", "status_message", true, SNAP_MESSAGE_MAX, &msg);
	if (r < 0)
		return r;
	if (msg && !text_ok(msg, true))
		return perr(c, -EBADMSG, "status_message: contains control characters");
	if ((r = get_str(c, root, "source_vm", "source_vm", true, 64, &svm)) < 0)
		return r;
	if (svm && !snap_vm_name_is_valid(svm))
		return perr(c, -EBADMSG, "source_vm: \"%s\" is not a VM name", svm);
	if (dup_str(id, &m->id) < 0 || dup_str(name, &m->name) < 0 ||
	    dup_str(parent, &m->parent) < 0 || dup_str(msg, &m->status_message) < 0 ||
	    dup_str(svm, &m->source_vm) < 0)
		return -ENOMEM;
	if ((r = parse_image(c, root, m)) < 0)
		return r;

	if ((r = get_uint(c, root, "vcpus", "vcpus", 1, 64, &u)) < 0)
		return r;
	m->vcpus = (unsigned)u;
	if ((r = get_uint(c, root, "memory_mib", "memory_mib", 64, 1048576, &u)) < 0)
		return r;
	m->memory_mib = (unsigned)u;
	if ((r = get_uint(c, root, "disk_bytes", "disk_bytes", 0, SNAP_SIZE_MAX, &u)) < 0)
		return r;
	m->disk_bytes = u;
	if ((r = get_uint(c, root, "created_ms", "created_ms", 0, CREATED_MS_MAX, &u)) < 0)
		return r;
	m->created_ms = (int64_t)u;
	if ((r = get_str(c, root, "created", "created", false, 32, &created)) < 0)
		return r;
	{
		char a[40], b[40];

		format_created(m->created_ms, true, a, sizeof(a));
		format_created(m->created_ms, false, b, sizeof(b));
		if (strcmp(created, a) && strcmp(created, b))
			return perr(c, -EBADMSG,
				    "created: \"%s\" is not created_ms in RFC 3339 UTC (\"%s\")",
				    created, a);
	}
	if ((r = parse_parts(c, root, m)) < 0)
		return r;
	return check_consistency(c, m);
}

int snap_manifest_parse(const char *json, size_t len, struct snap_manifest **ret, char *err,
			size_t errlen)
{
	struct pctx c = {err, errlen};
	struct snap_manifest *m;
	json_error_t jerr;
	json_t *root;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (len > SNAP_MANIFEST_MAX)
		return perr(&c, -EBADMSG, "manifest: larger than %d bytes", SNAP_MANIFEST_MAX);
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return perr(&c, -EBADMSG, "manifest: not valid JSON (line %d, column %d): %s",
			    jerr.line, jerr.column, jerr.text);
	m = calloc(1, sizeof(*m));
	if (!m) {
		json_decref(root);
		return -ENOMEM;
	}
	r = parse_root(&c, root, m);
	json_decref(root);
	if (r < 0) {
		snap_manifest_free(m);
		if (r == -ENOMEM)
			perr(&c, r, "manifest: out of memory");
		return r;
	}
	*ret = m;
	return 0;
}

int snap_manifest_blob_names(const char *json, size_t len, struct snap_strset *out, char *err,
			     size_t errlen)
{
	struct pctx c = {err, errlen};
	json_t *root, *fv, *parts;
	int r = 0;

	root = json_loadb(json, len, 0, NULL);
	if (!root)
		return perr(&c, -EBADMSG, "not valid JSON");
	fv = json_object_get(root, "format_version");
	parts = json_object_get(root, "parts");
	if (json_is_integer(fv) && json_integer_value(fv) > SNAP_FORMAT_VERSION)
		r = perr(&c, -EPROTONOSUPPORT, "made by a newer sbx (format_version %lld)",
			 (long long)json_integer_value(fv));
	else if (!json_is_integer(fv) || json_integer_value(fv) != SNAP_FORMAT_VERSION ||
		 !json_is_array(parts))
		r = perr(&c, -EBADMSG, "no format_version 1 or no parts array");
	for (size_t i = 0; r == 0 && i < json_array_size(parts); i++) {
		const char *b =
		    json_string_value(json_object_get(json_array_get(parts, i), "blob"));

		if (b && snap_blob_name_is_valid(b))
			r = snap_strset_add(out, b);
	}
	json_decref(root);
	return r;
}

/* ---- formatting ------------------------------------------------------------ */

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

char *snap_manifest_format(const struct snap_manifest *m)
{
	json_t *root = NULL, *parts, *img;
	char created[40], *text = NULL, *out;
	size_t len;
	int bad = 0;

	if (!snap_kind_to_string(m->kind) || !snap_mem_mode_to_string(m->mem_mode) ||
	    !snap_status_to_string(m->status) || !m->id || !m->image_dir ||
	    m->n_parts > SNAP_MAX_PARTS)
		return NULL;
	for (size_t i = 0; i < m->n_parts; i++)
		if (!snap_part_role_to_string(m->parts[i].role) || !m->parts[i].blob)
			return NULL;
	format_created(m->created_ms, true, created, sizeof(created));
	root = json_object();
	parts = json_array();
	img = json_object();
	if (!root || !parts || !img) {
		json_decref(root);
		json_decref(parts);
		json_decref(img);
		return NULL;
	}
	bad |= json_object_set_new(img, "dir", json_string(m->image_dir));
	bad |=
	    json_object_set_new(img, "digest", json_string(m->image_digest ? m->image_digest : ""));
	for (size_t i = 0; i < m->n_parts; i++) {
		const struct snap_part *p = &m->parts[i];

		bad |= json_array_append_new(
		    parts, json_pack("{s:s, s:s, s:I, s:s, s:b}", "role",
				     snap_part_role_to_string(p->role), "blob", p->blob, "size",
				     (json_int_t)p->size, "sha256", p->sha256, "inherited",
				     (int)p->inherited));
	}
	bad |= json_object_set_new(root, "format_version", json_integer(m->format_version));
	bad |= json_object_set_new(root, "id", json_string(m->id));
	bad |= json_object_set_new(root, "name", str_or_null(m->name));
	bad |= json_object_set_new(root, "parent", str_or_null(m->parent));
	bad |= json_object_set_new(root, "kind", json_string(snap_kind_to_string(m->kind)));
	bad |=
	    json_object_set_new(root, "memory", json_string(snap_mem_mode_to_string(m->mem_mode)));
	bad |= json_object_set_new(root, "status", json_string(snap_status_to_string(m->status)));
	bad |= json_object_set_new(root, "status_message", str_or_null(m->status_message));
	bad |= json_object_set_new(root, "image", img);
	bad |= json_object_set_new(root, "source_vm", str_or_null(m->source_vm));
	bad |= json_object_set_new(root, "vcpus", json_integer(m->vcpus));
	bad |= json_object_set_new(root, "memory_mib", json_integer(m->memory_mib));
	bad |= json_object_set_new(root, "disk_bytes", json_integer((json_int_t)m->disk_bytes));
	bad |= json_object_set_new(root, "created", json_string(created));
	bad |= json_object_set_new(root, "created_ms", json_integer(m->created_ms));
	bad |= json_object_set_new(root, "parts", parts);
	if (!bad)
		text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!text)
		return NULL;
	/* a trailing newline, for people who cat it */
	len = strlen(text);
	out = realloc(text, len + 2);
	if (!out) {
		free(text);
		return NULL;
	}
	out[len] = '\n';
	out[len + 1] = '\0';
	return out;
}

/* ---- ownership ------------------------------------------------------------- */

struct snap_manifest *snap_manifest_free(struct snap_manifest *m)
{
	if (!m)
		return NULL;
	free(m->id);
	free(m->name);
	free(m->parent);
	free(m->status_message);
	free(m->image_dir);
	free(m->image_digest);
	free(m->source_vm);
	for (size_t i = 0; i < m->n_parts; i++)
		free(m->parts[i].blob);
	free(m->parts);
	free(m);
	return NULL;
}

struct snap_manifest *snap_manifest_dup(const struct snap_manifest *m)
{
	struct snap_manifest *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	*d = *m;
	d->id = d->name = d->parent = d->status_message = NULL;
	d->image_dir = d->image_digest = d->source_vm = NULL;
	d->parts = NULL;
	d->n_parts = 0;
	if (dup_str(m->id, &d->id) < 0 || dup_str(m->name, &d->name) < 0 ||
	    dup_str(m->parent, &d->parent) < 0 ||
	    dup_str(m->status_message, &d->status_message) < 0 ||
	    dup_str(m->image_dir, &d->image_dir) < 0 ||
	    dup_str(m->image_digest, &d->image_digest) < 0 ||
	    dup_str(m->source_vm, &d->source_vm) < 0)
		return snap_manifest_free(d);
	d->parts = calloc(m->n_parts ? m->n_parts : 1, sizeof(*d->parts));
	if (!d->parts)
		return snap_manifest_free(d);
	for (size_t i = 0; i < m->n_parts; i++) {
		d->parts[i] = m->parts[i];
		d->parts[i].blob = NULL;
		d->n_parts = i + 1;
		if (dup_str(m->parts[i].blob, &d->parts[i].blob) < 0)
			return snap_manifest_free(d);
	}
	return d;
}

const struct snap_part *snap_manifest_part(const struct snap_manifest *m, enum snap_part_role role)
{
	for (size_t i = 0; i < m->n_parts; i++)
		if (m->parts[i].role == role)
			return &m->parts[i];
	return NULL;
}
