/* SPDX-License-Identifier: Apache-2.0 */
/*
 * clock.h - the clocks of sbx, and the one RFC 3339 formatter.
 *
 * Durations, deadlines and timeouts use the monotonic clock (it never
 * jumps); only what a person reads as a date (created_at, expires_at, log
 * lines) uses the wall clock.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall clock: milliseconds since the Unix epoch. */
int64_t clock_wall_ms(void);
/* Monotonic clock (CLOCK_MONOTONIC). */
uint64_t clock_mono_ms(void);
uint64_t clock_mono_us(void);
double clock_mono_s(void);
/* Sleep ms milliseconds (resumed after signals). For pacing only: never as
 * a way to wait for something to happen (poll it with a deadline). */
void clock_sleep_ms(unsigned ms);

/* "2026-12-08T01:30:37.123Z" (millis true) or "2026-12-08T01:30:37Z",
 * in UTC, of ms since the epoch; buf needs 25 bytes. */
void clock_rfc3339(int64_t ms, bool millis, char *buf, size_t len);
