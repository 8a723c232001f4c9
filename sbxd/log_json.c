/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log_json.c - the JSON sink of log.h (see log_json.h).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "sbxd/log_json.h"

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* The JSON name of a field: the same names as the access log's
 * (request_id), and "id" is always a sandbox's in this project's logs. */
static const char *field_name(const char *key)
{
	if (!strcmp(key, "request"))
		return "request_id";
	if (!strcmp(key, "id"))
		return "sandbox_id";
	return key;
}

static json_t *text(const char *msg, size_t len);

/* The message's fields; "msg", "level", ... are ours: a field cannot
 * overwrite them. */
static void add_fields(json_t *o, const struct log_field *fields)
{
	for (const struct log_field *f = fields; f && f->key; f++)
		if (f->value && !json_object_get(o, field_name(f->key)))
			json_object_set_new(o, field_name(f->key),
					    text(f->value, strlen(f->value)));
}

/* A JSON string of msg; bytes that are not UTF-8 (a message can quote what
 * a guest sent) become '?'. */
static json_t *text(const char *msg, size_t len)
{
	json_t *s = json_stringn(msg, len);
	char *copy;

	if (s)
		return s;
	copy = malloc(len ? len : 1);
	if (!copy)
		return json_string("(message lost: out of memory)");
	for (size_t i = 0; i < len; i++)
		copy[i] = (unsigned char)msg[i] < 0x80 && msg[i] ? msg[i] : '?';
	s = json_stringn(copy, len);
	free(copy);
	return s;
}

static void json_sink(enum log_level l, const struct log_field *fields, const char *msg, size_t len)
{
	json_t *o = json_object();
	char when[80];
	char *line, *nl;
	size_t n;

	if (!o)
		return;
	clock_rfc3339(clock_wall_ms(), true, when, sizeof(when));
	json_object_set_new(o, "time", json_string(when));
	json_object_set_new(o, "level", json_string(level_names[l]));
	json_object_set_new(o, "program", json_string(log_state.ident ? log_state.ident : "sbx"));
	json_object_set_new(o, "msg", text(msg, len));
	add_fields(o, fields);
	line = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!line)
		return;
	n = strlen(line);
	nl = realloc(line, n + 1);
	if (nl) {
		line = nl;
		line[n++] = '\n'; /* one write per line: lines of threads do not mix */
	}
	(void)!write(log_state.fd, line, n);
	free(line);
}

void log_json_enable(void)
{
	log_state.sink = json_sink;
}
