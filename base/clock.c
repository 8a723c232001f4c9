/* SPDX-License-Identifier: Apache-2.0 */
/* clock.c - see clock.h. */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "base/clock.h"

static int64_t ns_of(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t clock_wall_ms(void)
{
	return ns_of(CLOCK_REALTIME) / 1000000;
}

uint64_t clock_mono_ms(void)
{
	return (uint64_t)ns_of(CLOCK_MONOTONIC) / 1000000;
}

uint64_t clock_mono_us(void)
{
	return (uint64_t)ns_of(CLOCK_MONOTONIC) / 1000;
}

double clock_mono_s(void)
{
	return (double)ns_of(CLOCK_MONOTONIC) / 1e9;
}

void clock_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void clock_rfc3339(int64_t ms, bool millis, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms < 0 || !gmtime_r(&t, &tm)) {
		t = 0;
		ms = 0;
		gmtime_r(&t, &tm);
	}
	if (millis)
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 (int)(ms % 1000));
	else
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
