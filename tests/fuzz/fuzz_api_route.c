/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_api_route.c - request data that is not JSON: the URL path (routing,
 * method table), sandbox names, the X-Api-Key and Host headers, and the
 * dataplane_url built from them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sbxd/api/api_req.h"
#include "sbxd/config.h"
#include "sbxd/common/key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), key[SBXD_KEY_HEADER_MAX + 1], url[1024], host[256];
	struct api_route r;
	struct api_error e;
	const char *allow;
	int port;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (api_route_parse(s, &r) == 0) {
		for (int m = 0; m < HTTP_METHOD_COUNT; m++)
			(void)api_route_allows(&r, (enum http_method)m, &allow);
		(void)api_route_needs_key(&r);
		(void)api_name_check(r.target, &e);
	}
	(void)api_name_check(s, &e);
	(void)api_uuid_is_valid(s);
	(void)api_key_header_parse((const char *)data, size, key, sizeof(key));
	if (api_host_is_valid(s))
		(void)api_dataplane_url(NULL, s, "0b9c2d4e-1f00-4a2b-8c3d-4e5f60718293", url,
					sizeof(url));
	(void)api_dataplane_url(s, NULL, "0b9c2d4e-1f00-4a2b-8c3d-4e5f60718293", url, sizeof(url));
	(void)sbxd_parse_listen(s, host, sizeof(host), &port);
	free(s);
	return 0;
}
