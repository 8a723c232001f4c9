/* SPDX-License-Identifier: Apache-2.0 */
/*
 * encode.c - C structs to frames.
 *
 * The encoder checks a message against the same schema the decoder enforces
 * before it writes a byte, so we never emit a frame the peer must reject.
 * Output is canonical: smallest msgpack forms, fields in table order,
 * optional fields at their default left out; decode(encode(m)) re-encodes to
 * the same bytes.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <msgpack.h>

#include "base/cleanup.h"
#include "protocol/internal.h"

struct wctx {
	struct proto_buf *b;
	size_t limit; /* the buffer may not grow past this length */
	int err;
};

static int buf_write(void *data, const char *p, size_t n)
{
	struct wctx *w = data;

	if (n == 0)
		return 0;
	if (n > w->limit - w->b->len) {
		w->err = -EMSGSIZE;
		return -1;
	}
	if (buf_reserve(w->b, n) < 0) {
		w->err = -ENOMEM;
		return -1;
	}
	memcpy(w->b->data + w->b->len, p, n);
	w->b->len += n;
	return 0;
}

static uint64_t load_int(const void *p, uint8_t kind)
{
	switch (kind) {
	case FK_BOOL:
		return *(const bool *)p;
	case FK_U8:
		return *(const uint8_t *)p;
	case FK_U16:
		return *(const uint16_t *)p;
	case FK_U32:
		return *(const uint32_t *)p;
	case FK_U64:
		return *(const uint64_t *)p;
	case FK_I32:
		return (uint64_t)(int64_t) * (const int32_t *)p;
	case FK_I64:
		return (uint64_t) * (const int64_t *)p;
	}
	return 0;
}

static bool is_signed(uint8_t kind)
{
	return kind == FK_I32 || kind == FK_I64;
}

static bool str_ok(const char *s, uint64_t min, uint64_t max)
{
	size_t n = strnlen(s, (size_t)max + 1);

	return n >= min && n <= max;
}

static bool validate_map(const struct schema *s, const void *base);

static bool validate_field(const struct field *f, const void *base)
{
	const void *p = (const char *)base + f->off;

	switch (f->kind) {
	case FK_BOOL:
		return true;
	case FK_U8:
	case FK_U16:
	case FK_U32:
	case FK_U64:
	case FK_I32:
	case FK_I64: {
		uint64_t v = load_int(p, f->kind);

		if (is_signed(f->kind) && (int64_t)v < 0)
			return (int64_t)v >= f->lo;
		return v <= f->hi && (f->lo <= 0 || v >= (uint64_t)f->lo);
	}
	case FK_STR: {
		const char *str = *(const char *const *)p;

		return !str || str_ok(str, (uint64_t)f->lo, f->hi);
	}
	case FK_STRV: {
		const struct proto_strv *sv = p;

		if (sv->n > f->hi || (sv->n && !sv->v))
			return false;
		for (uint32_t i = 0; i < sv->n; i++)
			if (!sv->v[i] || !str_ok(sv->v[i], 0, PROTO_MAX_STR))
				return false;
		return true;
	}
	case FK_BIN: {
		const struct proto_bytes *b = p;

		return b->len <= f->hi && (b->len == 0 || b->data);
	}
	case FK_LOAD: {
		const double *d = p;

		return isfinite(d[0]) && isfinite(d[1]) && isfinite(d[2]);
	}
	case FK_ENTRIES: {
		const struct proto_list_result *l = p;

		if (l->n > f->hi || (l->n && !l->entries))
			return false;
		for (uint32_t i = 0; i < l->n; i++)
			if (!validate_map(&schema_entry, &l->entries[i]))
				return false;
		return true;
	}
	}
	return false;
}

/* Whether the field differs from its default (and so must be sent). */
static bool field_set(const struct field *f, const void *base)
{
	const void *p = (const char *)base + f->off;

	if (f->flags & (FF_REQ | FF_ALWAYS))
		return true;
	switch (f->kind) {
	case FK_STR:
		return *(const char *const *)p != NULL;
	case FK_STRV:
		return ((const struct proto_strv *)p)->n > 0;
	case FK_BIN:
		return ((const struct proto_bytes *)p)->len > 0;
	case FK_LOAD: {
		const double *d = p;

		return d[0] != 0 || d[1] != 0 || d[2] != 0;
	}
	case FK_ENTRIES:
		return ((const struct proto_list_result *)p)->n > 0;
	default:
		return load_int(p, f->kind) != f->def;
	}
}

static bool validate_map(const struct schema *s, const void *base)
{
	for (unsigned i = 0; i < s->nfields; i++) {
		const struct field *f = &s->fields[i];

		if (!validate_field(f, base))
			return false;
		if ((f->flags & FF_REQ) && f->kind == FK_STR &&
		    !*(const char *const *)((const char *)base + f->off))
			return false;
	}
	return !s->check || s->check(base);
}

static int pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	if (msgpack_pack_str(pk, n) < 0)
		return -1;
	return msgpack_pack_str_body(pk, s, n);
}

static int pack_map(msgpack_packer *pk, const struct schema *s, const void *base);

static int pack_value(msgpack_packer *pk, const struct field *f, const void *base)
{
	const void *p = (const char *)base + f->off;

	switch (f->kind) {
	case FK_BOOL:
		return *(const bool *)p ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	case FK_U8:
	case FK_U16:
	case FK_U32:
	case FK_U64:
		return msgpack_pack_uint64(pk, load_int(p, f->kind));
	case FK_I32:
	case FK_I64:
		return msgpack_pack_int64(pk, (int64_t)load_int(p, f->kind));
	case FK_STR:
		return pack_str(pk, *(const char *const *)p);
	case FK_STRV: {
		const struct proto_strv *sv = p;

		if (msgpack_pack_array(pk, sv->n) < 0)
			return -1;
		for (uint32_t i = 0; i < sv->n; i++)
			if (pack_str(pk, sv->v[i]) < 0)
				return -1;
		return 0;
	}
	case FK_BIN: {
		const struct proto_bytes *b = p;

		if (msgpack_pack_bin(pk, b->len) < 0)
			return -1;
		return msgpack_pack_bin_body(pk, b->data, b->len);
	}
	case FK_LOAD: {
		const double *d = p;

		if (msgpack_pack_array(pk, 3) < 0)
			return -1;
		for (unsigned i = 0; i < 3; i++) {
			/* float32 when exact: canonical, and never longer than what was decoded */
			int r = (double)(float)d[i] == d[i] ? msgpack_pack_float(pk, (float)d[i])
							    : msgpack_pack_double(pk, d[i]);
			if (r < 0)
				return -1;
		}
		return 0;
	}
	case FK_ENTRIES: {
		const struct proto_list_result *l = p;

		if (msgpack_pack_array(pk, l->n) < 0)
			return -1;
		for (uint32_t i = 0; i < l->n; i++)
			if (pack_map(pk, &schema_entry, &l->entries[i]) < 0)
				return -1;
		return 0;
	}
	}
	return -1;
}

static int pack_map(msgpack_packer *pk, const struct schema *s, const void *base)
{
	size_t n = 0;

	for (unsigned i = 0; i < s->nfields; i++)
		n += field_set(&s->fields[i], base);
	if (msgpack_pack_map(pk, n) < 0)
		return -1;
	for (unsigned i = 0; i < s->nfields; i++) {
		const struct field *f = &s->fields[i];

		if (!field_set(f, base))
			continue;
		if (pack_str(pk, f->key) < 0 || pack_value(pk, f, base) < 0)
			return -1;
	}
	return 0;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

int proto_encode(const struct proto_msg *m, struct proto_buf *out)
{
	const struct schema *s = schema_lookup(m->type);
	size_t start = out->len;
	struct wctx w = {.b = out};
	msgpack_packer pk;
	uint8_t *h;
	int r;

	if (!s || (s->on_channel && m->channel == 0) || !validate_map(s, m))
		return -EINVAL;
	if (start > SIZE_MAX - PROTO_HEADER_SIZE - PROTO_MAX_BODY)
		return -ENOMEM;
	r = buf_reserve(out, PROTO_HEADER_SIZE);
	if (r < 0)
		return r;
	h = out->data + start;
	put_le32(h, PROTO_MAGIC);
	put_le32(h + 4, 0);
	put_le16(h + 8, m->type);
	put_le16(h + 10, m->flags);
	put_le32(h + 12, m->channel);
	out->len += PROTO_HEADER_SIZE;

	w.limit = out->len + PROTO_MAX_BODY;
	msgpack_packer_init(&pk, &w, buf_write);
	if (pack_map(&pk, s, m) < 0) {
		out->len = start;
		return w.err ? w.err : -EINVAL;
	}
	put_le32(out->data + start + 4, (uint32_t)(out->len - start - PROTO_HEADER_SIZE));
	return 0;
}

int proto_encode_error(struct proto_buf *out, uint32_t channel, uint32_t id, uint32_t code,
		       int err_no, const char *msg)
{
	_cleanup_free_ char *cut = NULL;
	struct proto_msg m = {
	    .type = PROTO_ERROR,
	    .channel = channel,
	    .u.error = {.id = id, .code = code, .msg = msg},
	};

	if (err_no == INT32_MIN)
		return -EINVAL;
	m.u.error.err_no = err_no < 0 ? -err_no : err_no;
	if (msg && strnlen(msg, PROTO_MAX_STR + 1) > PROTO_MAX_STR) {
		cut = strndup(msg, PROTO_MAX_STR);
		if (!cut)
			return -ENOMEM;
		m.u.error.msg = cut;
	}
	return proto_encode(&m, out);
}
