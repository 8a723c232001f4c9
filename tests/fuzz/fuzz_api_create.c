/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_api_create.c - the JSON bodies of POST /boxes and PATCH /boxes/{name}
 * (untrusted client input) through api_parse_create(), the resource bounds,
 * api_parse_update() and the run_config merge.
 */
#include <stdint.h>
#include <stdlib.h>

#include "sbxd/api/api_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct api_limits l = {
	    .default_vcpus = 1,
	    .max_vcpus = 4,
	    .default_mem_bytes = 512ull << 20,
	    .max_mem_bytes = 8ull << 30,
	    .default_disk_bytes = 2ull << 30,
	    .min_disk_bytes = 2ull << 30,
	    .max_disk_bytes = 64ull << 30,
	    .max_sandboxes = 8,
	    .max_total_mem_bytes = 16ull << 30,
	};
	struct api_create_req q;
	struct api_update_req u;
	struct api_resources res;
	struct api_error e;
	char *merged = NULL;

	if (api_parse_create((const char *)data, size, &q, &e) == 0) {
		if (api_resolve_resources(&l, &q, &res, &e) == 0)
			(void)api_check_quota(&l, 7, 15ull << 30, &res, &e);
		api_create_req_release(&q);
	}
	if (api_parse_update((const char *)data, size, &u, &e) == 0) {
		if (u.run_config &&
		    api_merge_run_config("{\"user\":\"root\",\"env_vars\":{\"A\":\"1\"}}",
					 u.run_config, &merged) == 0)
			free(merged);
		api_update_req_release(&u);
	}
	return 0;
}
