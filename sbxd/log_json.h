/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log_json.h - structured logs: one JSON object per line instead of
 * "ident: level: message" text, for log collectors.
 *
 *   {"time":"2026-11-23T21:03:04.120Z","level":"info","program":"sbxd",
 *    "sandbox":"web-1","sandbox_id":"3f2a...",
 *    "msg":"sandbox=web-1 id=3f2a... ready (zygote-fork)"}
 *
 * The leading key=value words of a message (this project's convention:
 * "sandbox=NAME id=ID vm=NAME request=N ...") also become fields, so that
 * logs can be filtered by sandbox or request without parsing the text;
 * "request" and "id" are named request_id and sandbox_id as in the access
 * log's lines.
 */
#pragma once

#include "base/log.h"

/* From now on every log_*() of this program is written as JSON to
 * log_state.fd. */
void log_json_enable(void);
