/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_dp_wsmsg.c - client frames of the WebSocket execute protocol, the
 * body of POST /execute (and the command line built from either with a
 * sandbox run_config), and the bodies of /glob and /grep: all untrusted.
 */
#include <stdint.h>
#include <stdlib.h>

#include "sbxd/dataplane/parse/dp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void build(const struct dp_exec_params *p)
{
	static const char box_rc[] =
	    "{\"user\":\"app\",\"work_dir\":\"/w\",\"env_vars\":{\"A\":\"1\",\"PATH\":\"/bin\"}}";
	struct dp_exec_argv a;

	if (dp_exec_build(p, box_rc, &a) == 0)
		dp_exec_argv_release(&a);
	if (dp_exec_build(p, NULL, &a) == 0)
		dp_exec_argv_release(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct dp_exec_params p;
	struct dp_search_req q;
	struct dp_msg m;

	if (dp_msg_parse(s, size, &m) == 0) {
		if (m.type == DP_MSG_EXECUTE)
			build(&m.exec);
		if (m.type == DP_MSG_RECONNECT)
			(void)dp_command_id_valid(m.command_id);
		dp_msg_release(&m);
	}
	if (dp_exec_parse_http(s, size, &p) == 0) {
		build(&p);
		dp_exec_params_release(&p);
	}
	if (dp_search_parse(s, size, false, &q) == 0)
		dp_search_req_release(&q);
	if (dp_search_parse(s, size, true, &q) == 0)
		dp_search_req_release(&q);
	return 0;
}
