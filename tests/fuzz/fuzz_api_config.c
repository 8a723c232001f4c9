/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_api_config.c - sbxd's config file parser (KEY = VALUE lines) and the
 * checks and dump that follow it.
 */
#include <stdint.h>
#include <stdlib.h>

#include "sbxd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sbxd_config c;
	char dump[8192];

	sbxd_config_defaults(&c);
	if (sbxd_config_parse_text(&c, (const char *)data, size, "fuzz.conf") == 0)
		(void)sbxd_config_check(&c);
	sbxd_config_dump(&c, dump, sizeof(dump));
	return 0;
}
