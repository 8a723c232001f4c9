/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log_json.h - structured logs: one JSON object per line instead of
 * "ident: level: message" text, for log collectors.
 *
 *   {"time":"2026-11-23T21:03:04.120Z","level":"info","program":"sbxd",
 *    "sandbox":"web-1","sandbox_id":"3f2a...",
 *    "msg":"sandbox=web-1 id=3f2a... ready (zygote-fork)"}
 *
 * The fields a message is logged with (log_info_f(LOG_FIELDS({"sandbox",
 * name}, {"id", id}), ...), base/log.h) become fields of the object, so
 * that logs can be filtered by sandbox or request without parsing the
 * text; "request" and "id" are named request_id and sandbox_id as in the
 * access log's lines. The text of "msg" shows them as leading key=value
 * words, as text logs do.
 */
#pragma once

#include "base/log.h"

/* From now on every log_*() of this program is written as JSON to
 * log_state.fd. */
void log_json_enable(void);
