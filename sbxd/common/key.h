/* SPDX-License-Identifier: Apache-2.0 */
/*
 * key.h - API keys: generation, hashing, and the principal a request
 * acts as once its key was checked.
 *
 * A key is "sbx_" followed by 52 lowercase base32 characters: 32 bytes
 * from OpenSSL's RAND_bytes(). Only its SHA-256 (hex) is ever stored.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBXD_KEY_PREFIX "sbx_"
#define SBXD_KEY_LEN (4 + 52) /* prefix + base32 of 32 bytes, no padding */
#define SBXD_KEY_HASH_LEN 64  /* hex SHA-256 */
#define SBXD_KEY_NAME_MAX 64
#define SBXD_KEY_HEADER_MAX 512 /* longest X-Api-Key value we look at */

/* Who a request acts as: the key that authenticated it. */
struct sbxd_principal {
	int64_t key_id;
	char key_name[SBXD_KEY_NAME_MAX + 1];
	bool admin;
};

/* A new random key into buf (at least SBXD_KEY_LEN + 1 bytes). 0 or -EIO
 * when the random generator fails. */
int sbxd_key_generate(char *buf, size_t len);
/* Lowercase hex SHA-256 of key[0..len) into hex (SBXD_KEY_HASH_LEN + 1). */
void sbxd_key_hash(const char *key, size_t len, char *hex);
/* Key names: 1-64 of [A-Za-z0-9._-], starting with a letter or digit. */
bool sbxd_key_name_is_valid(const char *name);
/* RFC 4648 base32, lowercase, no padding; out needs (len*8+4)/5 + 1 bytes.
 * Returns the characters written. */
size_t sbxd_base32(const uint8_t *in, size_t len, char *out);
/* A random version 4 UUID in text form (37 bytes with the NUL). */
int sbxd_uuid4(char out[37]);
