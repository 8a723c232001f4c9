/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_dp.c - the pure pieces of sbxd's data plane: UTF-8-safe output
 * chunks, the per-stream output buffer, the streaming multipart parser,
 * glob matching, Range / ETag handling, the WebSocket protocol's client
 * frames, the command line built from them, and search bodies.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/err.h"
#include "base/clock.h"
#include "sbxd/dataplane/parse/dp_glob.h"
#include "sbxd/dataplane/parse/dp_multipart.h"
#include "sbxd/dataplane/parse/dp_outbuf.h"
#include "sbxd/dataplane/parse/dp_parse.h"
#include "sbxd/dataplane/parse/dp_utf8.h"

/* ---- UTF-8 ---- */

START_TEST(test_utf8_char_len_follows_rfc3629)
{
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"a", 1), 1);
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"\xc3\xa9", 2), 2);
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"\xe2\x82\xac", 3), 3);
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"\xf0\x9f\x98\x80", 4), 4);
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"\xf0\x9f\x98", 3), 0);
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"\xc3", 1), 0);
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"\xc0\x80", 2), -1); /* overlong */
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"\xe0\x80\x80", 3), -1);
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"\xed\xa0\x80", 3), -1); /* surrogate */
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"\xf4\x90\x80\x80", 4), -1);
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"\x80", 1), -1);
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"\xff", 1), -1);
	ck_assert_int_eq(dp_utf8_char_len((const uint8_t *)"\xc3\x41", 2), -1);
}
END_TEST

START_TEST(test_utf8_escape_holds_back_an_incomplete_character)
{
	const uint8_t in[] = "ab\xe2\x82";
	char out[64];
	size_t olen, took;

	took = dp_utf8_json_escape(in, 4, false, out, sizeof(out), &olen);
	ck_assert_uint_eq(took, 2);
	ck_assert_uint_eq(olen, 2);
	took = dp_utf8_json_escape(in, 4, true, out, sizeof(out), &olen);
	ck_assert_uint_eq(took, 4);
	ck_assert_mem_eq(out, "ab??", 4);
}
END_TEST

START_TEST(test_utf8_escape_maps_each_bad_byte_to_one_byte_and_escapes_controls)
{
	const uint8_t in[] = "\xff\"\\\n\x01\xc3\xa9";
	char out[64];
	size_t olen, took;

	took = dp_utf8_json_escape(in, sizeof(in) - 1, false, out, sizeof(out), &olen);
	ck_assert_uint_eq(took, sizeof(in) - 1);
	out[olen] = '\0';
	ck_assert_str_eq(out, "?\\\"\\\\\\n\\u0001\xc3\xa9");
}
END_TEST

START_TEST(test_utf8_escape_never_splits_a_character_at_the_output_cap)
{
	const uint8_t in[] = "\xf0\x9f\x98\x80\xf0\x9f\x98\x80";
	char out[64];
	size_t olen, took;

	took = dp_utf8_json_escape(in, 8, false, out, 6, &olen);
	ck_assert_uint_eq(took, 4);
	ck_assert_uint_eq(olen, 4);
	took = dp_utf8_json_escape(in, 8, false, out, 3, &olen);
	ck_assert_uint_eq(took, 0);
}
END_TEST

/* The property the client depends on: the decoded chunks, concatenated,
 * have exactly as many UTF-8 bytes as the raw bytes they cover. */
START_TEST(test_utf8_chunks_keep_offsets_for_random_input)
{
	static const char *const pieces[] = {"a",    "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
					     "\xff", "\x80",	 "\n",		 "\"",
					     "\x01"};
	uint8_t in[4096];
	char out[200], js[260];
	size_t len = 0, pos = 0, total_decoded = 0, olen;

	srand(42 + (unsigned)_i);
	while (len < sizeof(in) - 4) {
		const char *p = pieces[rand() % 9];
		size_t n = strlen(p);

		memcpy(in + len, p, n);
		len += n;
	}
	while (pos < len) {
		size_t want = 1 + (size_t)(rand() % 64),
		       avail = len - pos < want ? len - pos : want;
		bool final = pos + avail == len;
		size_t took = dp_utf8_json_escape(in + pos, avail, final, out, sizeof(out), &olen);
		json_t *j;

		if (!took) {
			ck_assert(!final);
			continue; /* a longer read will do */
		}
		snprintf(js, sizeof(js), "\"%.*s\"", (int)olen, out);
		j = json_loads(js, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);
		ck_assert_ptr_nonnull(j);
		ck_assert_uint_eq(json_string_length(j), took);
		total_decoded += json_string_length(j);
		json_decref(j);
		pos += took;
	}
	ck_assert_uint_eq(total_decoded, len);
}
END_TEST

START_TEST(test_utf8_sanitize_replaces_only_bad_bytes)
{
	char s[] = "ok \xc3\xa9 \xff \xe2\x82";

	ck_assert_uint_eq(dp_utf8_sanitize(s, strlen(s)), 3);
	ck_assert_str_eq(s, "ok \xc3\xa9 ? ??");
}
END_TEST

/* ---- output buffer ---- */

START_TEST(test_outbuf_wraps_trims_replays_and_refuses_gaps)
{
	struct dp_outbuf b;
	uint8_t out[16];
	uint64_t seq;

	dp_outbuf_init(&b, 8, 100);
	ck_assert_int_eq(dp_outbuf_append(&b, 100, (const uint8_t *)"abcdef", 6, 1, false), 6);
	ck_assert_int_eq(dp_outbuf_append(&b, 104, (const uint8_t *)"efgh", 4, 2, true), 2);
	ck_assert_int_eq(dp_outbuf_append(&b, 110, (const uint8_t *)"x", 1, 3, false), -EPROTO);
	ck_assert_int_eq(dp_outbuf_append(&b, 108, (const uint8_t *)"ijk", 3, 3, false), -ENOBUFS);
	dp_outbuf_drop(&b, 104);
	ck_assert_int_eq(dp_outbuf_append(&b, 108, (const uint8_t *)"ijk", 3, 3, false), 3);
	ck_assert_uint_eq(dp_outbuf_peek(&b, 104, out, sizeof(out), &seq), 4);
	ck_assert_mem_eq(out, "efgh", 4);
	ck_assert_uint_eq(seq, 1);
	ck_assert_uint_eq(dp_outbuf_peek(&b, 108, out, sizeof(out), &seq), 3);
	ck_assert_mem_eq(out, "ijk", 3); /* wrapped around the ring */
	ck_assert_uint_eq(seq, 3);
	ck_assert_uint_eq(dp_outbuf_peek(&b, 103, out, sizeof(out), &seq), 0);
	ck_assert_uint_eq(dp_outbuf_peek(&b, 111, out, sizeof(out), &seq), 0);
	dp_outbuf_reset(&b, 5);
	ck_assert_uint_eq(dp_outbuf_len(&b), 0);
	dp_outbuf_release(&b);
}
END_TEST

/* stdout chunks interleaved with stderr keep their own marks; a chunk that
 * ends inside "€" (e2 82 ac) must still let the whole character be read. */
START_TEST(test_outbuf_peek_min_reaches_past_a_mark_inside_a_character)
{
	struct dp_outbuf b;
	uint8_t out[16];
	uint64_t seq;

	dp_outbuf_init(&b, 64, 0);
	ck_assert_int_eq(dp_outbuf_append(&b, 0, (const uint8_t *)"a\xe2\x82", 3, 1, false), 3);
	ck_assert_int_eq(dp_outbuf_append(&b, 3,
					  (const uint8_t *)"\xac"
							   "b",
					  2, 3, false),
			 2);
	ck_assert_uint_eq(dp_outbuf_peek(&b, 1, out, sizeof(out), &seq), 2);
	ck_assert_uint_eq(dp_outbuf_peek_min(&b, 1, out, sizeof(out), 4, &seq), 4);
	ck_assert_mem_eq(out,
			 "\xe2\x82\xac"
			 "b",
			 4);
	ck_assert_uint_eq(seq, 1);
	/* never beyond what the buffer holds */
	ck_assert_uint_eq(dp_outbuf_peek_min(&b, 3, out, sizeof(out), 4, &seq), 2);
	dp_outbuf_release(&b);
}
END_TEST

START_TEST(test_outbuf_marks_cap_merges_into_the_newest)
{
	struct dp_outbuf b;
	uint8_t out[8];
	uint64_t seq;

	dp_outbuf_init(&b, 4096, 0);
	for (unsigned i = 0; i < DP_OUTBUF_MARKS + 10; i++)
		ck_assert_int_eq(dp_outbuf_append(&b, i, (const uint8_t *)"x", 1, i, false), 1);
	ck_assert_uint_eq(b.mcount, DP_OUTBUF_MARKS);
	ck_assert_uint_eq(dp_outbuf_peek(&b, 0, out, sizeof(out), &seq), 1);
	ck_assert_uint_eq(seq, 0);
	dp_outbuf_drop(&b, DP_OUTBUF_MARKS + 10);
	ck_assert_uint_eq(b.mcount, 0);
	dp_outbuf_release(&b);
}
END_TEST

/* ---- multipart ---- */

struct mp_result {
	int begins, ends;
	char name[DP_MULTIPART_NAME_MAX + 130];
	uint8_t data[70000];
	size_t len;
	bool take;
};

static bool mp_begin(void *ud, const struct dp_multipart_part *p)
{
	struct mp_result *r = ud;

	r->begins++;
	if (strcmp(p->name, "file"))
		return false;
	snprintf(r->name, sizeof(r->name), "%s/%s", p->filename, p->content_type);
	return r->take;
}

static int mp_data(void *ud, const uint8_t *d, size_t n)
{
	struct mp_result *r = ud;

	ck_assert_uint_le(r->len + n, sizeof(r->data));
	memcpy(r->data + r->len, d, n);
	r->len += n;
	return 0;
}

static int mp_end(void *ud)
{
	((struct mp_result *)ud)->ends++;
	return 0;
}

static const struct dp_multipart_ops mp_ops = {mp_begin, mp_data, mp_end};

static size_t mp_body(char *buf, size_t cap, const char *b, const uint8_t *file, size_t flen)
{
	size_t n =
	    (size_t)snprintf(buf, cap,
			     "--%s\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n"
			     "ignored\r\n--%s\r\nContent-Disposition: form-data; name=\"file\"; "
			     "filename=\"file\"\r\nContent-Type: application/octet-stream\r\n\r\n",
			     b, b);

	memcpy(buf + n, file, flen);
	n += flen;
	n += (size_t)snprintf(buf + n, cap - n, "\r\n--%s--\r\n", b);
	return n;
}

START_TEST(test_multipart_boundary_from_content_type)
{
	char b[DP_MULTIPART_BOUNDARY_MAX + 1];

	ck_assert_int_eq(
	    dp_multipart_boundary("multipart/form-data; boundary=----formdata-undici-0123", b,
				  sizeof(b)),
	    0);
	ck_assert_str_eq(b, "----formdata-undici-0123");
	ck_assert_int_eq(
	    dp_multipart_boundary("Multipart/Form-Data;charset=x; boundary=\"a b\"", b, sizeof(b)),
	    0);
	ck_assert_str_eq(b, "a b");
	ck_assert_int_eq(dp_multipart_boundary("text/plain; boundary=x", b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(dp_multipart_boundary("multipart/form-data", b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(dp_multipart_boundary("multipart/form-data; boundary=", b, sizeof(b)),
			 -EINVAL);
}
END_TEST

/* The file holds pieces of the delimiter: only the whole one ends it. */
START_TEST(test_multipart_streams_a_part_in_any_split)
{
	static const char bnd[] = "----formdata-undici-0123";
	static char body[80000];
	uint8_t file[65536];
	struct dp_multipart m;
	size_t n;

	for (size_t i = 0; i < sizeof(file); i++)
		file[i] = (uint8_t)(i * 7 + 3);
	memcpy(file + 100, "\r\n------formdata-undici-012", 27); /* almost a delimiter */
	memcpy(file + 1000, "\r\n\r\n--", 6);
	memcpy(file + sizeof(file) - 3, "\r\n-", 3);
	n = mp_body(body, sizeof(body), bnd, file, sizeof(file));
	for (size_t step = 1; step < 5000; step = step * 3 + 1) {
		struct mp_result *r = calloc(1, sizeof(*r));

		r->take = true;
		ck_assert_int_eq(dp_multipart_init(&m, bnd, &mp_ops, r), 0);
		for (size_t off = 0; off < n; off += step)
			ck_assert_int_eq(dp_multipart_feed(&m, (uint8_t *)body + off,
							   off + step > n ? n - off : step),
					 0);
		ck_assert_int_eq(dp_multipart_finish(&m), 0);
		ck_assert_int_eq(r->begins, 2);
		ck_assert_int_eq(r->ends, 1);
		ck_assert_str_eq(r->name, "file/application/octet-stream");
		ck_assert_uint_eq(r->len, sizeof(file));
		ck_assert_mem_eq(r->data, file, sizeof(file));
		free(r);
	}
}
END_TEST

START_TEST(test_multipart_rejects_truncated_and_malformed_bodies)
{
	static const char bnd[] = "XyZ";
	struct mp_result *r = calloc(1, sizeof(*r));
	char body[4096], big[DP_MULTIPART_HDR_MAX + 64];
	struct dp_multipart m;
	size_t n = mp_body(body, sizeof(body), bnd, (const uint8_t *)"data", 4);

	r->take = true;
	ck_assert_int_eq(dp_multipart_init(&m, bnd, &mp_ops, r), 0);
	ck_assert_int_eq(dp_multipart_feed(&m, (uint8_t *)body, n - 4), 0);
	ck_assert_int_eq(dp_multipart_finish(&m), -EBADMSG); /* no closing "--" */

	ck_assert_int_eq(dp_multipart_init(&m, bnd, &mp_ops, r), 0);
	ck_assert_int_eq(dp_multipart_feed(&m, (const uint8_t *)"--XyZ\r\nbroken", 13), 0);
	ck_assert_int_eq(dp_multipart_feed(&m, (const uint8_t *)"--XyZ!", 6), 0);
	ck_assert_int_eq(dp_multipart_finish(&m), -EBADMSG);

	ck_assert_int_eq(dp_multipart_init(&m, bnd, &mp_ops, r), 0);
	ck_assert_int_eq(dp_multipart_feed(&m, (const uint8_t *)"--XyZ?", 6), -EBADMSG);
	ck_assert_int_eq(dp_multipart_feed(&m, (const uint8_t *)"x", 1), -EBADMSG);

	ck_assert_int_eq(dp_multipart_init(&m, bnd, &mp_ops, r), 0);
	memset(big, 'a', sizeof(big));
	memcpy(big, "--XyZ\r\n", 7);
	ck_assert_int_eq(dp_multipart_feed(&m, (uint8_t *)big, sizeof(big)), -EBADMSG);

	ck_assert_int_eq(dp_multipart_init(&m, "bad\"boundary", &mp_ops, r), -EINVAL);
	ck_assert_int_eq(dp_multipart_init(&m, "", &mp_ops, r), -EINVAL);
	free(r);
}
END_TEST

START_TEST(test_multipart_takes_preamble_padding_and_epilogue)
{
	static const char body[] = "preamble\r\n--B  \r\nContent-Disposition: form-data; "
				   "name=file\r\n\r\n12345\r\n--B--\r\nepilogue --B\r\n";
	struct mp_result *r = calloc(1, sizeof(*r));
	struct dp_multipart m;

	r->take = true;
	ck_assert_int_eq(dp_multipart_init(&m, "B", &mp_ops, r), 0);
	ck_assert_int_eq(dp_multipart_feed(&m, (const uint8_t *)body, sizeof(body) - 1), 0);
	ck_assert_int_eq(dp_multipart_finish(&m), 0);
	ck_assert_uint_eq(r->len, 5);
	ck_assert_mem_eq(r->data, "12345", 5);
	free(r);
}
END_TEST

/* ---- glob ---- */

START_TEST(test_glob_segments_and_double_star)
{
	ck_assert(dp_glob_match("*", "a", 0));
	ck_assert(!dp_glob_match("*", "a/b", 0));
	ck_assert(dp_glob_match("**/*.py", "x.py", 0));
	ck_assert(dp_glob_match("**/*.py", "a/b/x.py", 0));
	ck_assert(!dp_glob_match("**/*.py", "a/b/x.pyc", 0));
	ck_assert(dp_glob_match("a/**/b", "a/b", 0));
	ck_assert(dp_glob_match("a/**/b", "a/x/y/b", 0));
	ck_assert(!dp_glob_match("a/**/b", "b", 0));
	ck_assert(dp_glob_match("**", "a/b/c", 0));
	ck_assert(dp_glob_match("?.[ch]", "x.c", 0));
	ck_assert(!dp_glob_match("?.[ch]", "xy.c", 0));
	ck_assert(dp_glob_match("[!a-c]z", "dz", 0));
	ck_assert(!dp_glob_match("[^a-c]z", "bz", 0));
	ck_assert(dp_glob_match("[]x]", "]", 0));
	ck_assert(dp_glob_match("\\*", "*", 0));
	ck_assert(!dp_glob_match("\\*", "a", 0));
	ck_assert(dp_glob_match("*a*b*c", "xxaxxbxxc", 0));
	ck_assert(dp_glob_match(".*", ".hidden", 0));
}
END_TEST

START_TEST(test_glob_basename_and_descend)
{
	ck_assert(dp_glob_match("*.py", "a/b/x.py", DP_GLOB_BASENAME));
	ck_assert(!dp_glob_match("*.py", "a/b/x.py", 0));
	ck_assert(!dp_glob_match("a/*.py", "b/a/x.py", DP_GLOB_BASENAME));
	ck_assert(dp_glob_may_descend("**/*.py", "a/b", 0));
	ck_assert(dp_glob_may_descend("src/*/x", "src", 0));
	ck_assert(dp_glob_may_descend("src/*/x", "src/y", 0));
	ck_assert(!dp_glob_may_descend("src/*/x", "src/y/x", 0));
	ck_assert(!dp_glob_may_descend("src/*/x", "lib", 0));
	ck_assert(!dp_glob_may_descend("*", "a", 0));
	ck_assert(dp_glob_valid("**/*.py"));
	ck_assert(!dp_glob_valid("/abs"));
	ck_assert(!dp_glob_valid("a//b"));
	ck_assert(!dp_glob_valid("[abc"));
	ck_assert(!dp_glob_valid(""));
}
END_TEST

START_TEST(test_glob_hostile_patterns_stay_fast)
{
	char pat[600], path[600];

	memset(pat, 0, sizeof(pat));
	for (int i = 0; i < 100; i++)
		strcat(pat, "*a");
	strcat(pat, "b");
	memset(path, 'a', 500);
	path[500] = '\0';
	ck_assert(!dp_glob_match(pat, path, 0));
	strcpy(pat, "**/**/**/**/**/**/**/**/**/**/x");
	strcpy(path, "a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/y");
	ck_assert(!dp_glob_match(pat, path, 0));
}
END_TEST

/* ---- ranges, validators ---- */

START_TEST(test_range_forms_and_limits)
{
	uint64_t s, l;

	ck_assert_int_eq(dp_range_parse("bytes=2-5", 10, &s, &l), DP_RANGE_OK);
	ck_assert_uint_eq(s, 2);
	ck_assert_uint_eq(l, 4);
	ck_assert_int_eq(dp_range_parse("bytes=7-", 10, &s, &l), DP_RANGE_OK);
	ck_assert_uint_eq(l, 3);
	ck_assert_int_eq(dp_range_parse("bytes=-3", 10, &s, &l), DP_RANGE_OK);
	ck_assert_uint_eq(s, 7);
	ck_assert_int_eq(dp_range_parse("bytes=-30", 10, &s, &l), DP_RANGE_OK);
	ck_assert_uint_eq(s, 0);
	ck_assert_uint_eq(l, 10);
	ck_assert_int_eq(dp_range_parse("bytes=5-100", 10, &s, &l), DP_RANGE_OK);
	ck_assert_uint_eq(l, 5);
	ck_assert_int_eq(dp_range_parse("bytes=10-", 10, &s, &l), DP_RANGE_UNSATISFIABLE);
	ck_assert_int_eq(dp_range_parse("bytes=0-0", 0, &s, &l), DP_RANGE_UNSATISFIABLE);
	ck_assert_int_eq(dp_range_parse("bytes=-0", 10, &s, &l), DP_RANGE_UNSATISFIABLE);
	ck_assert_int_eq(dp_range_parse("bytes=5-2", 10, &s, &l), DP_RANGE_NONE);
	ck_assert_int_eq(dp_range_parse("bytes=0-1,3-4", 10, &s, &l), DP_RANGE_NONE);
	ck_assert_int_eq(dp_range_parse("items=0-1", 10, &s, &l), DP_RANGE_NONE);
	ck_assert_int_eq(dp_range_parse("bytes=99999999999999999999-", 10, &s, &l), DP_RANGE_NONE);
	ck_assert_int_eq(dp_range_parse(" bytes = 1 - 2 ", 10, &s, &l), DP_RANGE_OK);
}
END_TEST

START_TEST(test_etag_and_dates)
{
	char tag[64], date[64];

	dp_etag_format(255, 16, tag, sizeof(tag));
	ck_assert_str_eq(tag, "\"ff-10\"");
	ck_assert(dp_etag_list_matches("\"x\", \"ff-10\"", tag));
	ck_assert(dp_etag_list_matches("W/\"ff-10\"", tag));
	ck_assert(dp_etag_list_matches("*", tag));
	ck_assert(!dp_etag_list_matches("\"ff-1\"", tag));
	dp_http_date(784111777, date, sizeof(date));
	ck_assert_str_eq(date, "Sun, 06 Nov 1994 08:49:37 GMT");
	clock_rfc3339(784111777000LL, false, date, sizeof(date));
	ck_assert_str_eq(date, "1994-11-06T08:49:37Z");
	ck_assert(dp_path_valid("/"));
	ck_assert(!dp_path_valid("rel"));
	ck_assert(!dp_path_valid(""));
}
END_TEST

/* ---- WebSocket frames, commands ---- */

static int parse(const char *s, struct dp_msg *m)
{

	return dp_msg_parse(s, strlen(s), m);
}

START_TEST(test_msg_execute_with_the_clients_defaults)
{
	struct dp_msg m;

	ck_assert_int_eq(
	    parse(
		"{\"type\":\"execute\",\"command\":\"sleep 30\",\"timeout_seconds\":60,"
		"\"shell\":\"/bin/bash\",\"idle_timeout_seconds\":300,\"kill_on_disconnect\":false,"
		"\"ttl_seconds\":600,\"close_stdin\":true,"
		"\"command_id\":\"01a20981-9c04-77dc-9ebb-f97ca3ada4ab\"}",
		&m),
	    0);
	ck_assert_int_eq(m.type, DP_MSG_EXECUTE);
	ck_assert_str_eq(m.exec.command, "sleep 30");
	ck_assert_str_eq(m.exec.command_id, "01a20981-9c04-77dc-9ebb-f97ca3ada4ab");
	ck_assert_int_eq(m.exec.timeout_s, 60);
	ck_assert(m.exec.close_stdin);
	ck_assert(!m.exec.pty);
	dp_msg_release(&m);

	ck_assert_int_eq(
	    parse("{\"type\":\"execute\",\"command\":\"x\",\"timeout_seconds\":1.5}", &m), 0);
	ck_assert_str_eq(m.exec.shell, DP_DEFAULT_SHELL);
	ck_assert_int_eq(m.exec.timeout_s, 1);
	ck_assert_int_eq(m.exec.ttl_s, DP_DEFAULT_TTL_S);
	ck_assert_int_eq(m.exec.idle_timeout_s, DP_DEFAULT_IDLE_S);
	ck_assert_ptr_null(m.exec.command_id);
	dp_msg_release(&m);
}
END_TEST

START_TEST(test_msg_refuses_wrong_types_and_ignores_unknown_ones)
{
	struct dp_msg m;

	ck_assert_int_eq(parse("{\"type\":\"execute\"}", &m), -EINVAL);
	ck_assert_int_eq(parse("{\"type\":\"execute\",\"command\":1}", &m), -EINVAL);
	ck_assert_int_eq(parse("{\"type\":\"execute\",\"command\":\"x\",\"pty\":1}", &m), -EINVAL);
	ck_assert_int_eq(
	    parse("{\"type\":\"execute\",\"command\":\"x\",\"command_id\":\"a b\"}", &m), -EINVAL);
	ck_assert_int_eq(
	    parse("{\"type\":\"execute\",\"command\":\"x\",\"env\":{\"A=B\":\"1\"}}", &m), -EINVAL);
	ck_assert_int_eq(parse("{\"type\":\"execute\",\"command\":\"x\",\"cwd\":\"rel\"}", &m),
			 -EINVAL);
	ck_assert_int_eq(
	    parse("{\"type\":\"reconnect\",\"command_id\":\"c\",\"stdout_offset\":-1}", &m),
	    -EINVAL);
	ck_assert_int_eq(parse("[1]", &m), -EINVAL);
	ck_assert_int_eq(parse("not json", &m), -EINVAL);
	ck_assert_int_eq(parse("{\"type\":1}", &m), -EINVAL);
	ck_assert_int_eq(parse("{\"type\":\"ping\",\"x\":[1,2]}", &m), 0);
	ck_assert_int_eq(m.type, DP_MSG_IGNORED);
	dp_msg_release(&m);
}
END_TEST

START_TEST(test_msg_reconnect_input_resize)
{
	struct dp_msg m;

	ck_assert_int_eq(parse("{\"type\":\"reconnect\",\"command_id\":\"c1\",\"stdout_offset\":4,"
			       "\"stderr_offset\":2}",
			       &m),
			 0);
	ck_assert_int_eq(m.type, DP_MSG_RECONNECT);
	ck_assert_uint_eq(m.offsets[0], 4);
	ck_assert_uint_eq(m.offsets[1], 2);
	dp_msg_release(&m);
	ck_assert_int_eq(parse("{\"type\":\"input\",\"data\":\"a\\u0000b\\u00e9\"}", &m), 0);
	ck_assert_uint_eq(m.data_len, 5);
	ck_assert_mem_eq(m.data, "a\0b\xc3\xa9", 5);
	dp_msg_release(&m);
	ck_assert_int_eq(parse("{\"type\":\"resize\",\"rows\":40,\"cols\":120}", &m), 0);
	ck_assert_uint_eq(m.rows, 40);
	dp_msg_release(&m);
	ck_assert_int_eq(parse("{\"type\":\"resize\",\"rows\":0,\"cols\":120}", &m), -EINVAL);
	ck_assert_int_eq(parse("{\"type\":\"close_stdin\"}", &m), 0);
	ck_assert_int_eq(m.type, DP_MSG_CLOSE_STDIN);
	dp_msg_release(&m);
}
END_TEST

START_TEST(test_exec_build_merges_run_config_layers)
{
	struct dp_exec_params p;
	struct dp_exec_argv a;
	const char *body = "{\"command\":\"echo $A\",\"timeout\":5,\"shell\":\"/bin/sh\","
			   "\"run_config\":{\"env_vars\":{\"A\":\"cmd\"},\"work_dir\":\"/w\"}}";
	bool have_a = false, have_b = false, have_path = false;

	ck_assert_int_eq(dp_exec_parse_http(body, strlen(body), &p), 0);
	ck_assert_int_eq(p.timeout_s, 5);
	ck_assert_int_eq(dp_exec_build(&p,
				       "{\"user\":\"app:staff\",\"work_dir\":\"/box\","
				       "\"env_vars\":{\"A\":\"box\",\"B\":\"box\"}}",
				       &a),
			 0);
	ck_assert_str_eq(a.argv[0], "runuser");
	ck_assert_str_eq(a.argv[2], "app");
	ck_assert_str_eq(a.argv[4], "staff");
	ck_assert_str_eq(a.argv[5], "--");
	ck_assert_str_eq(a.argv[6], "/bin/sh");
	ck_assert_str_eq(a.argv[7], "-c");
	ck_assert_str_eq(a.argv[8], "echo $A");
	ck_assert_ptr_null(a.argv[9]);
	ck_assert_str_eq(a.cwd, "/w");
	for (char **e = a.env; *e; e++) {
		have_a |= !strcmp(*e, "A=cmd");
		have_b |= !strcmp(*e, "B=box");
		have_path |= !strncmp(*e, "PATH=", 5);
	}
	ck_assert(have_a && have_b && have_path);
	dp_exec_argv_release(&a);
	dp_exec_params_release(&p);
}
END_TEST

START_TEST(test_exec_build_users_and_defaults)
{
	struct dp_exec_params p = {.command = (char *)"id", .shell = (char *)"/bin/bash"};
	struct dp_exec_argv a;

	ck_assert_int_eq(dp_exec_build(&p, NULL, &a), 0);
	ck_assert_str_eq(a.argv[0], "/bin/bash");
	ck_assert_ptr_null(a.env);
	ck_assert_ptr_null(a.cwd);
	dp_exec_argv_release(&a);
	ck_assert_int_eq(dp_exec_build(&p, "{\"user\":\"1000\"}", &a), 0);
	ck_assert_str_eq(a.argv[0], "setpriv");
	ck_assert_str_eq(a.argv[1], "--reuid=1000");
	ck_assert_str_eq(a.argv[2], "--regid=1000");
	dp_exec_argv_release(&a);
	ck_assert_int_eq(dp_exec_build(&p, "{\"user\":\"root\"}", &a), 0);
	ck_assert_str_eq(a.argv[0], "/bin/bash");
	dp_exec_argv_release(&a);
	ck_assert_int_eq(dp_exec_build(&p, "{\"user\":\"-rf\"}", &a), -EINVAL);
	ck_assert_msg(strstr(err_msg(), "user"), "the message names the field: %s", err_msg());
	ck_assert_int_eq(dp_exec_build(&p, "{\"user\":\"1000:staff\"}", &a), -EINVAL);
}
END_TEST

START_TEST(test_search_bodies)
{
	struct dp_search_req q;
	const char *g = "{\"pattern\":\"**/*.py\",\"path\":\"/tmp\",\"limit\":999999}";
	const char *r = "{\"pattern\":\"abc\",\"path\":\"/tmp\",\"glob\":\"*.py\"}";

	ck_assert_int_eq(dp_search_parse(g, strlen(g), false, &q), 0);
	ck_assert_uint_eq(q.limit, DP_SEARCH_LIMIT_MAX);
	ck_assert_ptr_null(q.glob);
	dp_search_req_release(&q);
	ck_assert_int_eq(dp_search_parse(r, strlen(r), true, &q), 0);
	ck_assert_str_eq(q.glob, "*.py");
	ck_assert_uint_eq(q.limit, DP_SEARCH_LIMIT_DEFAULT);
	dp_search_req_release(&q);
	r = "{\"pattern\":\"/abs\",\"path\":\"/tmp\"}";
	ck_assert_int_eq(dp_search_parse(r, strlen(r), false, &q), -EINVAL);
	r = "{\"pattern\":\"x\",\"path\":\"tmp\"}";
	ck_assert_int_eq(dp_search_parse(r, strlen(r), true, &q), -EINVAL);
	r = "{\"pattern\":\"x\",\"path\":\"/tmp\",\"limit\":0}";
	ck_assert_int_eq(dp_search_parse(r, strlen(r), true, &q), -EINVAL);
}
END_TEST

static Suite *dp_suite(void)
{
	Suite *s = suite_create("dp");
	TCase *core = tcase_create("core"), *limits = tcase_create("limits"),
	      *errors = tcase_create("errors");

	tcase_add_test(core, test_utf8_char_len_follows_rfc3629);
	tcase_add_test(core, test_utf8_escape_holds_back_an_incomplete_character);
	tcase_add_test(core, test_utf8_escape_maps_each_bad_byte_to_one_byte_and_escapes_controls);
	tcase_add_test(core, test_utf8_sanitize_replaces_only_bad_bytes);
	tcase_add_test(core, test_outbuf_wraps_trims_replays_and_refuses_gaps);
	tcase_add_test(core, test_multipart_boundary_from_content_type);
	tcase_add_test(core, test_multipart_streams_a_part_in_any_split);
	tcase_add_test(core, test_multipart_takes_preamble_padding_and_epilogue);
	tcase_add_test(core, test_glob_segments_and_double_star);
	tcase_add_test(core, test_glob_basename_and_descend);
	tcase_add_test(core, test_range_forms_and_limits);
	tcase_add_test(core, test_etag_and_dates);
	tcase_add_test(core, test_msg_execute_with_the_clients_defaults);
	tcase_add_test(core, test_msg_reconnect_input_resize);
	tcase_add_test(core, test_exec_build_merges_run_config_layers);
	tcase_add_test(core, test_exec_build_users_and_defaults);
	tcase_add_test(core, test_search_bodies);
	suite_add_tcase(s, core);

	tcase_add_test(limits, test_utf8_escape_never_splits_a_character_at_the_output_cap);
	tcase_add_loop_test(limits, test_utf8_chunks_keep_offsets_for_random_input, 0, 8);
	tcase_add_test(limits, test_outbuf_marks_cap_merges_into_the_newest);
	tcase_add_test(limits, test_outbuf_peek_min_reaches_past_a_mark_inside_a_character);
	tcase_add_test(limits, test_glob_hostile_patterns_stay_fast);
	suite_add_tcase(s, limits);

	tcase_add_test(errors, test_multipart_rejects_truncated_and_malformed_bodies);
	tcase_add_test(errors, test_msg_refuses_wrong_types_and_ignores_unknown_ones);
	suite_add_tcase(s, errors);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dp_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
