/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zstd.c - optional compression of DATA chunks.
 *
 * A compressed chunk is exactly one zstd frame that records its content
 * size; the receiver checks that size against raw_len from the frame before
 * it decompresses, and decompresses into a buffer of exactly raw_len bytes,
 * so a hostile frame can neither make it allocate nor write past raw_len.
 */
#include <errno.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "protocol/proto.h"

#define ZSTD_LEVEL 1

long proto_zstd_compress(const uint8_t *src, size_t srclen, uint8_t *dst, size_t dst_cap)
{
	size_t n;

	if (srclen > PROTO_MAX_CHUNK)
		return -EINVAL;
	if (srclen == 0)
		return 0;
	n = ZSTD_compress(dst, dst_cap, src, srclen, ZSTD_LEVEL);
	if (ZSTD_isError(n)) {
		if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
			return 0;
		if (ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation)
			return -ENOMEM;
		return -EIO;
	}
	if (n >= srclen || (srclen - n) * 8 < srclen)
		return 0;
	return (long)n;
}

int proto_zstd_decompress(const uint8_t *src, size_t srclen, uint8_t *dst, size_t raw_len)
{
	unsigned long long size;
	size_t n;

	if (raw_len == 0 || raw_len > PROTO_MAX_CHUNK || srclen == 0)
		return -EBADMSG;
	size = ZSTD_getFrameContentSize(src, srclen);
	if (size != raw_len)
		return -EBADMSG;
	n = ZSTD_findFrameCompressedSize(src, srclen);
	if (ZSTD_isError(n) || n != srclen)
		return -EBADMSG;
	n = ZSTD_decompress(dst, raw_len, src, srclen);
	if (ZSTD_isError(n) || n != raw_len)
		return -EBADMSG;
	return 0;
}
