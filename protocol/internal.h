/* SPDX-License-Identifier: Apache-2.0 */
/*
 * internal.h - private to protocol/: the message schema that the encoder and
 * the decoder share, and the output buffer primitive.
 *
 * Every frame type is a table of fields (msgpack key, kind, offset of the C
 * member, limits, default). The decoder fills the C struct from a map by the
 * table; the encoder walks the same table, so the two cannot drift apart and
 * docs/protocol.md describes exactly these tables. Nothing here names a
 * msgpack type (layering rule: only the .c files of protocol/ include <msgpack.h>).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/proto.h"

enum field_kind {
	FK_BOOL,
	FK_U8,
	FK_U16,
	FK_U32,
	FK_U64,
	FK_I32,
	FK_I64,
	FK_STR,	    /* const char *: lo..hi bytes, no NUL */
	FK_STRV,    /* struct proto_strv: at most hi strings of PROTO_MAX_STR */
	FK_BIN,	    /* struct proto_bytes: at most hi bytes */
	FK_LOAD,    /* double[3]: array of exactly three finite numbers */
	FK_ENTRIES, /* off is the struct proto_list_result: at most hi entry maps */
};

enum field_flags {
	FF_REQ = 1 << 0,    /* must be present (and is always encoded) */
	FF_ALWAYS = 1 << 1, /* optional, but always encoded (ids) */
};

struct field {
	const char *key;
	uint8_t kind;  /* enum field_kind */
	uint8_t flags; /* enum field_flags */
	uint16_t off;  /* offset of the member in its struct */
	int64_t lo;    /* integers: smallest value; FK_STR: shortest length */
	uint64_t hi;   /* integers: largest value; others: largest length/count */
	uint64_t def;  /* integers and bools: value when absent (two's complement) */
};

struct schema {
	const struct field *fields;
	uint8_t nfields;
	bool has_id;	 /* first member is "uint32_t id" */
	bool on_channel; /* the header channel must not be 0 */
	/* Rules across fields, on the C struct; false: decode -EBADMSG, encode -EINVAL. */
	bool (*check)(const void *obj);
	/* Turn wire defaults into C values after decoding (may be NULL). */
	void (*fixup)(void *obj);
};

/* NULL for a type this version does not know. */
const struct schema *schema_lookup(uint16_t type);
/* The maps inside LIST_RESULT "entries" (struct proto_entry). */
extern const struct schema schema_entry;

/* Make room for n more bytes in b. 0 or -ENOMEM. */
int buf_reserve(struct proto_buf *b, size_t n);
