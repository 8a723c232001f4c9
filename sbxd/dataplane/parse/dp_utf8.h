/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_utf8.h - command output as JSON strings whose UTF-8 length equals the
 * raw bytes they stand for (langsmith-wire.md §6.5).
 *
 * The client recomputes stream offsets from the UTF-8 length of each chunk,
 * so a chunk must never split a multi-byte character, and a byte that is not
 * valid UTF-8 must become exactly one byte: it is sent as '?' (U+FFFD would
 * be three bytes and shift every later offset). Pure functions, no
 * allocation.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the well-formed UTF-8 character at p (1..4), 0 when p[0..n) is
 * the start of a well-formed character that needs more bytes, -1 when p[0]
 * cannot start one here (RFC 3629: no overlongs, surrogates or code points
 * above U+10FFFF). n >= 1. */
int dp_utf8_char_len(const uint8_t *p, size_t n);

/*
 * Escape in[0..len) as the body of a JSON string (no quotes) into out, at
 * most cap bytes, whole characters only: invalid bytes become '?', control
 * characters \n, \t... or \u00XX. An incomplete character at the end is left
 * for the next call unless final is set (the stream ended), in which case its
 * bytes become '?' too. Returns the number of input bytes taken (each maps
 * to exactly one byte of decoded output); *ret_out_len gets the bytes
 * written. out needs no NUL room.
 */
size_t dp_utf8_json_escape(const uint8_t *in, size_t len, bool final, char *out, size_t cap,
			   size_t *ret_out_len);

/* Replace, in place, every byte that is not part of well-formed UTF-8 by
 * '?' (an incomplete character at the end included). Returns the number of
 * bytes replaced. */
size_t dp_utf8_sanitize(char *s, size_t len);
