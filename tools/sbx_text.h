/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_text.h - the pure text helpers of sbx (no I/O, unit-tested):
 * argument parsing, quoting, UTF-8 boundaries and human-readable values.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A sandbox name as sbxd accepts it (or a sandbox id, which fits the same
 * rule): 1 to 63 of [a-z0-9-], not starting or ending with '-'. */
bool sbx_name_valid(const char *s, size_t len);

/* "NAME:PATH" -> 1 with *ret_name (malloc'd) and *ret_path (pointing into
 * arg); 0 when arg is a local path (no ':', or a '/' or '.' before the
 * first ':', or what precedes it is no sandbox name); -EINVAL for a remote
 * argument with an empty or relative PATH. */
int sbx_parse_remote(const char *arg, char **ret_name, const char **ret_path);

/* argv as one POSIX shell command line: a single argument is taken as a
 * command line already (like ssh); several are quoted word by word.
 * malloc'd; NULL on OOM. */
char *sbx_shell_join(char *const *argv, int argc);

/* How many leading bytes of buf[0..len) to send now: whole, valid UTF-8
 * characters. *ret_bad is set when an invalid byte stops the scan at the
 * returned length; otherwise the rest (at most 3 bytes) is the start of a
 * character still to come. */
size_t sbx_utf8_prefix(const unsigned char *buf, size_t len, bool *ret_bad);

/* An RFC 3339 UTC time ("2026-11-23T18:40:45.436Z") to time_t: 0 or -EINVAL. */
int sbx_parse_time(const char *s, time_t *ret);

/* "just now", "42s ago", "5m ago", "3h ago", "12d ago" */
void sbx_format_age(time_t then, time_t now, char *buf, size_t len);

/* Bytes for a person, binary units: "512 MiB", "2 GiB", "1.5 GiB", "800 B". */
void sbx_format_bytes(int64_t bytes, char *buf, size_t len);

/* A size in MiB: "512", "512M", "2G", "2GiB" -> MiB. 0 or -EINVAL. */
int sbx_parse_mib(const char *s, int64_t *ret_mib);

/* A random (version 4) UUID, 36 characters and a NUL. 0 or -errno. */
int sbx_uuid(char out[37]);
