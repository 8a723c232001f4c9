/* SPDX-License-Identifier: Apache-2.0 */
/*
 * decode.c - frame bodies to C structs. Every byte is hostile.
 *
 * A body goes through three stages:
 *  1. mp_scan() walks the raw msgpack once without allocating: every length
 *     must fit in the bytes that remain, containers nest at most
 *     PROTO_MAX_DEPTH deep and exactly one object fills the body. msgpack-c
 *     sizes its object arrays from the element counts in the input (a 6-byte
 *     array32 header asks it for 100+ GiB), so it must never see a count the
 *     body cannot back;
 *  2. msgpack_unpack_next() builds the object tree in a temporary zone (str
 *     and bin objects point into the body);
 *  3. decode_map() fills the C struct by the schema table into a second zone
 *     that the proto_msg keeps (strings copied NUL-terminated, arrays); the
 *     tree is then freed, so a held message costs only what it carries. Bin
 *     payloads keep pointing into the body.
 * Any failure releases both zones and reports -EBADMSG (or -ENOMEM).
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <msgpack.h>

#include "base/cleanup.h"
#include "protocol/internal.h"

#define OUT_ZONE_CHUNK 1024

/* ---- stage 1: structural scan ------------------------------------------ */

static uint64_t be_read(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * Classify the msgpack object header at p[0..left): *ret_hdr is the size of
 * the header, *ret_skip the payload bytes after it, *ret_items the number of
 * child objects (containers; maps count keys and values). -EBADMSG if the
 * header is truncated or the byte is never used.
 */
static int mp_head(const uint8_t *p, size_t left, size_t *ret_hdr, uint64_t *ret_skip,
		   uint64_t *ret_items, bool *ret_container)
{
	uint8_t b = p[0];
	unsigned lenbytes = 0;
	uint64_t skip = 0, items = 0;
	bool container = false, len_is_items = false, map = false;
	size_t hdr = 1;

	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
		/* fixint, nil, bool */
	} else if (b <= 0x8f) {
		container = map = true;
		items = 2 * (uint64_t)(b & 0x0f);
	} else if (b <= 0x9f) {
		container = true;
		items = b & 0x0f;
	} else if (b <= 0xbf) {
		skip = b & 0x1f;
	} else {
		switch (b) {
		case 0xc4: /* bin 8/16/32 */
		case 0xd9: /* str 8/16/32 */
			lenbytes = 1;
			break;
		case 0xc5:
		case 0xda:
			lenbytes = 2;
			break;
		case 0xc6:
		case 0xdb:
			lenbytes = 4;
			break;
		case 0xc7: /* ext 8/16/32: length, then a type byte */
			lenbytes = 1;
			skip = 1;
			break;
		case 0xc8:
			lenbytes = 2;
			skip = 1;
			break;
		case 0xc9:
			lenbytes = 4;
			skip = 1;
			break;
		case 0xca: /* float 32/64 */
			skip = 4;
			break;
		case 0xcb:
			skip = 8;
			break;
		case 0xcc: /* uint, int 8/16/32/64 */
		case 0xd0:
			skip = 1;
			break;
		case 0xcd:
		case 0xd1:
			skip = 2;
			break;
		case 0xce:
		case 0xd2:
			skip = 4;
			break;
		case 0xcf:
		case 0xd3:
			skip = 8;
			break;
		case 0xd4: /* fixext 1/2/4/8/16: type byte + data */
			skip = 2;
			break;
		case 0xd5:
			skip = 3;
			break;
		case 0xd6:
			skip = 5;
			break;
		case 0xd7:
			skip = 9;
			break;
		case 0xd8:
			skip = 17;
			break;
		case 0xdc: /* array 16/32 */
			container = len_is_items = true;
			lenbytes = 2;
			break;
		case 0xdd:
			container = len_is_items = true;
			lenbytes = 4;
			break;
		case 0xde: /* map 16/32 */
			container = len_is_items = map = true;
			lenbytes = 2;
			break;
		case 0xdf:
			container = len_is_items = map = true;
			lenbytes = 4;
			break;
		default: /* 0xc1: never used */
			return -EBADMSG;
		}
	}
	if (lenbytes) {
		uint64_t n;

		if (left - 1 < lenbytes)
			return -EBADMSG;
		n = be_read(p + 1, lenbytes);
		hdr += lenbytes;
		if (len_is_items)
			items = map ? 2 * n : n;
		else
			skip += n;
	}
	*ret_hdr = hdr;
	*ret_skip = skip;
	*ret_items = items;
	*ret_container = container;
	return 0;
}

/* 0 if p[0..len) is exactly one msgpack object that nests at most
 * PROTO_MAX_DEPTH containers and whose every length fits. */
static int mp_scan(const uint8_t *p, size_t len)
{
	uint64_t left[PROTO_MAX_DEPTH + 1];
	unsigned depth = 0;
	size_t pos = 0;

	left[0] = 1;
	for (;;) {
		size_t hdr;
		uint64_t skip, items;
		bool container;
		int r;

		while (left[depth] == 0) {
			if (depth == 0)
				return pos == len ? 0 : -EBADMSG;
			depth--;
		}
		left[depth]--;
		if (pos >= len)
			return -EBADMSG;
		r = mp_head(p + pos, len - pos, &hdr, &skip, &items, &container);
		if (r < 0)
			return r;
		pos += hdr;
		/* Every child object takes at least one byte. */
		if (skip > len - pos || items > len - pos)
			return -EBADMSG;
		pos += skip;
		if (container) {
			if (depth == PROTO_MAX_DEPTH)
				return -EBADMSG;
			left[++depth] = items;
		}
	}
}

/* ---- stage 3: objects to C ---------------------------------------------- */

struct dctx {
	msgpack_zone *zone; /* owned by the message; created on first use */
};

static void *zalloc(struct dctx *d, size_t n, bool align)
{
	if (!d->zone) {
		d->zone = msgpack_zone_new(OUT_ZONE_CHUNK);
		if (!d->zone)
			return NULL;
	}
	return align ? msgpack_zone_malloc(d->zone, n) : msgpack_zone_malloc_no_align(d->zone, n);
}

static int get_str(struct dctx *d, const msgpack_object *o, uint64_t min, uint64_t max,
		   const char **ret)
{
	char *s;

	if (o->type != MSGPACK_OBJECT_STR)
		return -EBADMSG;
	if (o->via.str.size < min || o->via.str.size > max)
		return -EBADMSG;
	if (memchr(o->via.str.ptr, 0, o->via.str.size))
		return -EBADMSG;
	s = zalloc(d, (size_t)o->via.str.size + 1, false);
	if (!s)
		return -ENOMEM;
	memcpy(s, o->via.str.ptr, o->via.str.size);
	s[o->via.str.size] = '\0';
	*ret = s;
	return 0;
}

/* An integer within [f->lo, f->hi], as two's complement bits. */
static int get_int(const msgpack_object *o, const struct field *f, uint64_t *ret)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > f->hi || (f->lo > 0 && o->via.u64 < (uint64_t)f->lo))
			return -EBADMSG;
		*ret = o->via.u64;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		if (o->via.i64 >= 0 || o->via.i64 < f->lo)
			return -EBADMSG;
		*ret = (uint64_t)o->via.i64;
		return 0;
	}
	return -EBADMSG;
}

static void put_int(void *p, uint8_t kind, uint64_t v)
{
	switch (kind) {
	case FK_BOOL:
		*(bool *)p = v != 0;
		break;
	case FK_U8:
		*(uint8_t *)p = (uint8_t)v;
		break;
	case FK_U16:
		*(uint16_t *)p = (uint16_t)v;
		break;
	case FK_U32:
		*(uint32_t *)p = (uint32_t)v;
		break;
	case FK_U64:
		*(uint64_t *)p = v;
		break;
	case FK_I32:
		*(int32_t *)p = (int32_t)(int64_t)v;
		break;
	case FK_I64:
		*(int64_t *)p = (int64_t)v;
		break;
	}
}

static int get_strv(struct dctx *d, const msgpack_object *o, uint64_t max, struct proto_strv *ret)
{
	const char **v;
	uint32_t n;
	int r;

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > max)
		return -EBADMSG;
	n = o->via.array.size;
	if (n == 0)
		return 0;
	v = zalloc(d, ((size_t)n + 1) * sizeof(*v), true);
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		r = get_str(d, &o->via.array.ptr[i], 0, PROTO_MAX_STR, &v[i]);
		if (r < 0)
			return r;
	}
	v[n] = NULL;
	ret->v = v;
	ret->n = n;
	return 0;
}

static int get_load(const msgpack_object *o, double *ret)
{
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3)
		return -EBADMSG;
	for (unsigned i = 0; i < 3; i++) {
		const msgpack_object *e = &o->via.array.ptr[i];
		double v;

		if (e->type == MSGPACK_OBJECT_FLOAT32 || e->type == MSGPACK_OBJECT_FLOAT64)
			v = e->via.f64;
		else if (e->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			v = (double)e->via.u64;
		else if (e->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			v = (double)e->via.i64;
		else
			return -EBADMSG;
		if (!isfinite(v))
			return -EBADMSG;
		ret[i] = v;
	}
	return 0;
}

static int decode_map(struct dctx *d, const struct schema *s, const msgpack_object_map *map,
		      void *base);

static int get_entries(struct dctx *d, const msgpack_object *o, uint64_t max,
		       struct proto_list_result *ret)
{
	struct proto_entry *e;
	uint32_t n;
	int r;

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > max)
		return -EBADMSG;
	n = o->via.array.size;
	if (n == 0)
		return 0;
	e = zalloc(d, (size_t)n * sizeof(*e), true);
	if (!e)
		return -ENOMEM;
	memset(e, 0, (size_t)n * sizeof(*e));
	for (uint32_t i = 0; i < n; i++) {
		const msgpack_object *it = &o->via.array.ptr[i];

		if (it->type != MSGPACK_OBJECT_MAP)
			return -EBADMSG;
		r = decode_map(d, &schema_entry, &it->via.map, &e[i]);
		if (r < 0)
			return r;
	}
	ret->entries = e;
	ret->n = n;
	return 0;
}

static int decode_value(struct dctx *d, const struct field *f, const msgpack_object *o, void *base)
{
	void *p = (char *)base + f->off;
	uint64_t v;
	int r;

	switch (f->kind) {
	case FK_BOOL:
		if (o->type != MSGPACK_OBJECT_BOOLEAN)
			return -EBADMSG;
		*(bool *)p = o->via.boolean;
		return 0;
	case FK_U8:
	case FK_U16:
	case FK_U32:
	case FK_U64:
	case FK_I32:
	case FK_I64:
		r = get_int(o, f, &v);
		if (r < 0)
			return r;
		put_int(p, f->kind, v);
		return 0;
	case FK_STR:
		return get_str(d, o, (uint64_t)f->lo, f->hi, (const char **)p);
	case FK_STRV:
		return get_strv(d, o, f->hi, p);
	case FK_BIN:
		if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size > f->hi)
			return -EBADMSG;
		((struct proto_bytes *)p)->data = (const uint8_t *)o->via.bin.ptr;
		((struct proto_bytes *)p)->len = o->via.bin.size;
		return 0;
	case FK_LOAD:
		return get_load(o, p);
	case FK_ENTRIES:
		return get_entries(d, o, f->hi, p);
	}
	return -EBADMSG;
}

static const struct field *find_field(const struct schema *s, const msgpack_object *key)
{
	for (unsigned i = 0; i < s->nfields; i++) {
		const struct field *f = &s->fields[i];

		if (strlen(f->key) == key->via.str.size &&
		    !memcmp(f->key, key->via.str.ptr, key->via.str.size))
			return f;
	}
	return NULL;
}

static int decode_map(struct dctx *d, const struct schema *s, const msgpack_object_map *map,
		      void *base)
{
	uint32_t seen = 0;
	int r;

	for (unsigned i = 0; i < s->nfields; i++) {
		const struct field *f = &s->fields[i];

		if (f->kind <= FK_I64)
			put_int((char *)base + f->off, f->kind, f->def);
	}
	for (uint32_t i = 0; i < map->size; i++) {
		const msgpack_object *key = &map->ptr[i].key;
		const struct field *f;
		uint32_t bit;

		if (key->type != MSGPACK_OBJECT_STR)
			return -EBADMSG;
		f = find_field(s, key);
		if (!f)
			continue; /* forward compatibility */
		bit = 1u << (f - s->fields);
		if (seen & bit)
			return -EBADMSG;
		seen |= bit;
		r = decode_value(d, f, &map->ptr[i].val, base);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < s->nfields; i++)
		if ((s->fields[i].flags & FF_REQ) && !(seen & (1u << i)))
			return -EBADMSG;
	if (s->fixup)
		s->fixup(base);
	if (s->check && !s->check(base))
		return -EBADMSG;
	return 0;
}

/* Best effort, for error replies: the "id" of a map, 0 if none is valid. */
static uint32_t find_id(const msgpack_object_map *map)
{
	for (uint32_t i = 0; i < map->size; i++) {
		const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 2 &&
		    !memcmp(k->via.str.ptr, "id", 2) &&
		    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= UINT32_MAX)
			return (uint32_t)v->via.u64;
	}
	return 0;
}

static void set_identity(struct proto_msg *m, const struct proto_header *hdr)
{
	memset(m, 0, sizeof(*m));
	m->type = hdr->type;
	m->flags = hdr->flags;
	m->channel = hdr->channel;
}

/* Parse body into up; *ret_map is the top-level map on success. */
static int unpack_body(const uint8_t *body, size_t len, msgpack_unpacked *up,
		       const msgpack_object_map **ret_map)
{
	size_t off = 0;
	int r;

	if (len == 0)
		return 0;
	r = mp_scan(body, len);
	if (r < 0)
		return r;
	switch (msgpack_unpack_next(up, (const char *)body, len, &off)) {
	case MSGPACK_UNPACK_SUCCESS:
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		return -ENOMEM;
	default:
		return -EBADMSG;
	}
	if (off != len || up->data.type != MSGPACK_OBJECT_MAP)
		return -EBADMSG;
	*ret_map = &up->data.via.map;
	return 0;
}

int proto_decode_body(const struct proto_header *hdr, const uint8_t *body, struct proto_msg *ret)
{
	const struct schema *s = schema_lookup(hdr->type);
	static const msgpack_object_map empty;
	const msgpack_object_map *map = &empty;
	struct dctx d = {0};
	msgpack_unpacked up;
	uint32_t id = 0;
	int r;

	set_identity(ret, hdr);
	if (hdr->len > PROTO_MAX_BODY)
		return -EMSGSIZE;
	msgpack_unpacked_init(&up);
	r = unpack_body(body, hdr->len, &up, &map);
	if (!s)
		r = -EPROTO; /* whatever the body: the receiver answers UNKNOWN_TYPE */
	else if (r == 0 && s->on_channel && hdr->channel == 0)
		r = -EBADMSG;
	else if (r == 0)
		r = decode_map(&d, s, map, ret);
	if (r == 0) {
		ret->priv = d.zone;
		msgpack_unpacked_destroy(&up);
		return 0;
	}
	if (!s || s->has_id)
		id = find_id(map);
	msgpack_unpacked_destroy(&up);
	if (d.zone)
		msgpack_zone_free(d.zone);
	set_identity(ret, hdr);
	ret->u.idonly.id = id;
	return r;
}

void proto_msg_release(struct proto_msg *m)
{
	if (m->priv)
		msgpack_zone_free(m->priv);
	memset(m, 0, sizeof(*m));
}
