/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_sync.c - flush a sandbox's file systems (sync(1) in the guest) over
 * the data plane's agent connection, for sbxd's snapshot capture: the
 * virtio-serial channel has one host side at a time, and while the data
 * plane holds it nobody else can ask the guest anything.
 *
 * The command runs outside the commands table (it is sbxd's, not the
 * client's). Its result is handed back from a zero-delay timer, never from
 * inside an agent client callback, since finishing drops the box reference
 * and may free the client that is calling.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sbxd/dataplane/dp_int.h"
#include "base/log.h"

#define DP_SYNC_TIMEOUT_MS 60000

struct dp_sync {
	struct dp_box *box;
	agent_cmd *cmd;
	void (*done)(void *cud, int err, const char *msg);
	void *cud;
	int err;
	char msg[256];
	bool settled;
	lws_sorted_usec_list_t sul;
};

static void sync_finish_cb(lws_sorted_usec_list_t *sul)
{
	struct dp_sync *s = lws_container_of(sul, struct dp_sync, sul);

	if (!s->settled) { /* the safety timer */
		s->err = -ETIMEDOUT;
		snprintf(s->msg, sizeof(s->msg), "sync(1) did not finish within %d s",
			 DP_SYNC_TIMEOUT_MS / 1000 + 5);
	}
	s->done(s->cud, s->err, s->msg);
	agent_cmd_free(s->cmd);
	dp_box_unref(s->box);
	free(s);
}

static void sync_settle(struct dp_sync *s, int err, const char *msg)
{
	if (s->settled)
		return;
	s->settled = true;
	s->err = err;
	snprintf(s->msg, sizeof(s->msg), "%s", msg ? msg : "");
	dp_schedule(s->box->dp, &s->sul, sync_finish_cb, 0);
}

static void sync_on_exit(agent_cmd *cmd, const struct proto_exit *e, void *ud)
{
	char msg[96];

	(void)cmd;
	if (e->code == 0) {
		sync_settle(ud, 0, NULL);
		return;
	}
	snprintf(msg, sizeof(msg), "sync(1) ended with status %d (signal %d)", (int)e->code,
		 (int)e->signal);
	sync_settle(ud, -EIO, msg);
}

static void sync_on_error(agent_cmd *cmd, int err, const char *msg, void *ud)
{
	(void)cmd;
	sync_settle(ud, err < 0 ? err : -EIO, msg);
}

int dp_sync_fs(void *ud, http_req *r, const struct sbxd_dp_box *box,
	       void (*done)(void *cud, int err, const char *msg), void *cud)
{
	static const char *const argv[] = {"sync", NULL};
	static const struct agent_cmd_ops ops = {.on_exit = sync_on_exit,
						 .on_error = sync_on_error};
	struct agent_exec_spec spec = {.argv = argv, .timeout_ms = DP_SYNC_TIMEOUT_MS};
	struct dp *d = ud;
	struct dp_sync *s;
	agent_client *ac;
	int ret;

	if (dp_init_loop(d, r) < 0)
		return -ESHUTDOWN;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->done = done;
	s->cud = cud;
	s->box = dp_box_get(d, box);
	if (!s->box) {
		free(s);
		return -ENOMEM;
	}
	ret = dp_box_client(s->box, &ac);
	if (ret == 0)
		ret = agent_exec(ac, &spec, &ops, s, &s->cmd);
	if (ret < 0) {
		dp_box_unref(s->box);
		free(s);
		return ret;
	}
	dp_box_flush(s->box);
	/* in case neither callback ever comes (a connection that hangs) */
	dp_schedule(d, &s->sul, sync_finish_cb, DP_SYNC_TIMEOUT_MS + 5000);
	return 0;
}
