/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_multipart.h - a streaming multipart/form-data parser (RFC 7578 over
 * RFC 2046) for uploads of any size.
 *
 * Bytes are fed as they arrive, in pieces of any size; part bodies come out
 * through a callback as they are recognised, never buffered whole. Memory is
 * fixed: the struct itself (part headers are limited to
 * DP_MULTIPART_HDR_MAX bytes). The delimiter "\r\n--BOUNDARY" is found with a
 * KMP matcher, so bytes that might begin a delimiter are held back (at most
 * the delimiter's length) until the next piece decides.
 *
 * Untrusted input: anything malformed is -EBADMSG, and the parser stays
 * failed. Pure: no I/O, no allocation, no logging.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_MULTIPART_BOUNDARY_MAX 70 /* RFC 2046 */
#define DP_MULTIPART_HDR_MAX 8192    /* all header lines of one part */
#define DP_MULTIPART_NAME_MAX 256    /* name= and filename= values kept */

struct dp_multipart_part {
	char name[DP_MULTIPART_NAME_MAX + 1];	  /* "" if absent */
	char filename[DP_MULTIPART_NAME_MAX + 1]; /* "" if absent */
	bool has_filename;
	char content_type[128]; /* "" if absent */
};

struct dp_multipart_ops {
	/* A part's headers are in: return true to receive its body. */
	bool (*part_begin)(void *ud, const struct dp_multipart_part *p);
	/* A piece of the body of a part that part_begin took; 0 or -errno to
	 * stop the parse (feed returns that error). */
	int (*part_data)(void *ud, const uint8_t *data, size_t len);
	/* The end of a part that part_begin took. 0 or -errno. */
	int (*part_end)(void *ud);
};

enum dp_multipart_state {
	DP_MP_PREAMBLE,
	DP_MP_AFTER_DELIM, /* "--" (end) or padding + CRLF (a part) */
	DP_MP_AFTER_DASH,  /* one '-' of the closing "--" seen */
	DP_MP_PAD,	   /* transport padding before CRLF */
	DP_MP_PAD_CR,	   /* CR seen, LF expected */
	DP_MP_HEADERS,
	DP_MP_BODY,
	DP_MP_EPILOGUE,
	DP_MP_FAILED,
};

struct dp_multipart {
	enum dp_multipart_state state;
	int err;
	char delim[4 + DP_MULTIPART_BOUNDARY_MAX]; /* "\r\n--" BOUNDARY */
	unsigned dlen;
	unsigned fail[4 + DP_MULTIPART_BOUNDARY_MAX];
	unsigned match; /* bytes of delim matched so far */
	bool taking;	/* the current part's body goes to part_data */
	unsigned parts;
	char hdr[DP_MULTIPART_HDR_MAX];
	size_t hlen;
	uint8_t stage[1024]; /* held-back bytes released as data */
	size_t slen;
	const struct dp_multipart_ops *ops;
	void *ud;
};

/* The boundary parameter of a Content-Type header value
 * ("multipart/form-data; boundary=..."), unquoted, into buf (at least
 * DP_MULTIPART_BOUNDARY_MAX + 1 bytes). -EINVAL if the type is not
 * multipart/form-data or the boundary is missing or invalid. */
int dp_multipart_boundary(const char *content_type, char *buf, size_t len);

/* -EINVAL for an invalid boundary (1..70 characters of RFC 2046). */
int dp_multipart_init(struct dp_multipart *m, const char *boundary,
		      const struct dp_multipart_ops *ops, void *ud);
/* 0, -EBADMSG (malformed), or an error returned by a callback. */
int dp_multipart_feed(struct dp_multipart *m, const uint8_t *data, size_t len);
/* At the end of the body: 0 if the closing delimiter was seen, else -EBADMSG. */
int dp_multipart_finish(struct dp_multipart *m);
