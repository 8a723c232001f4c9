/* SPDX-License-Identifier: Apache-2.0 */
/*
 * key.c - API key generation and hashing (OpenSSL), random ids.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "sbxd/common/key.h"

size_t sbxd_base32(const uint8_t *in, size_t len, char *out)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	uint32_t acc = 0;
	size_t n = 0;
	int bits = 0;

	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			out[n++] = alphabet[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[n++] = alphabet[(acc << (5 - bits)) & 31];
	out[n] = '\0';
	return n;
}

int sbxd_key_generate(char *buf, size_t len)
{
	uint8_t raw[32];

	if (len < SBXD_KEY_LEN + 1)
		return -ENOBUFS;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	memcpy(buf, SBXD_KEY_PREFIX, 4);
	sbxd_base32(raw, sizeof(raw), buf + 4);
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

void sbxd_key_hash(const char *key, size_t len, char *hex)
{
	uint8_t md[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)key, len, md);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

bool sbxd_key_name_is_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > SBXD_KEY_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool alnum =
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return false;
	}
	return true;
}

int sbxd_uuid4(char out[37])
{
	uint8_t b[16];

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -EIO;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}
