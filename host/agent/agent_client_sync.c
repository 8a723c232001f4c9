/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_client_sync.c - the small synchronous requests: ping, info, stat,
 * list, mkdir, remove, shutdown, fixup (and fixup's queued form). Each sends
 * one generic request and pumps the connection until its answer
 * (client_wait()); on a timeout the request is cancelled so a late answer
 * cannot write into a dead stack frame.
 * Strings are copied out of the frames (they die with them) and stripped of
 * control characters.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "host/agent/agent_client_int.h"

/* ---- synchronous requests ----------------------------------------------------- */

struct sync_req {
	bool done;
	int err;
	uint32_t id;
	void *out;
	size_t n, cap;
};

static int sync_request(agent_client *c, struct proto_msg *req, agent_reply_fn fn,
			struct sync_req *s)
{
	int r;

	r = agent_request(c, req, fn, s, &s->id);
	if (r < 0)
		return r;
	r = client_wait(c, &s->done);
	if (r < 0) {
		agent_request_cancel(c, s->id);
		return r;
	}
	return s->err;
}

static void sync_plain_fn(agent_client *c, int err, const struct proto_msg *reply, void *ud)
{
	struct sync_req *s = ud;

	(void)c;
	(void)reply;
	s->err = err;
	s->done = true;
}

int agent_ping(agent_client *c, uint64_t *ret_rtt_us)
{
	struct proto_msg m = {.type = PROTO_PING};
	struct sync_req s = {0};
	uint64_t t0 = clock_mono_us();
	int r;

	r = sync_request(c, &m, sync_plain_fn, &s);
	if (r < 0)
		return r;
	if (ret_rtt_us)
		*ret_rtt_us = clock_mono_us() - t0;
	return 0;
}

static char *strdup0(const char *s)
{
	char *d = strdup(s ? s : "");

	if (d)
		client_sanitize(d);
	return d;
}

static void sync_info_fn(agent_client *c, int err, const struct proto_msg *reply, void *ud)
{
	struct sync_req *s = ud;
	struct agent_info *i = s->out;
	const struct proto_info_result *r;

	(void)c;
	s->done = true;
	s->err = err;
	if (err < 0)
		return;
	r = &reply->u.info;
	i->version = strdup0(r->version);
	i->hostname = strdup0(r->hostname);
	i->kernel = strdup0(r->kernel);
	i->uptime_ms = r->uptime_ms;
	memcpy(i->load, r->load, sizeof(i->load));
	i->mem_total = r->mem_total;
	i->mem_available = r->mem_available;
	i->ncpus = r->ncpus;
	i->commands = r->commands;
	if (!i->version || !i->hostname || !i->kernel)
		s->err = -ENOMEM;
}

int agent_info(agent_client *c, struct agent_info *ret)
{
	struct proto_msg m = {.type = PROTO_INFO};
	struct agent_info i = {0};
	struct sync_req s = {.out = &i};
	int r;

	r = sync_request(c, &m, sync_info_fn, &s);
	if (r < 0) {
		agent_info_release(&i);
		return r;
	}
	*ret = i;
	return 0;
}

void agent_info_release(struct agent_info *i)
{
	if (!i)
		return;
	free(i->version);
	free(i->hostname);
	free(i->kernel);
	i->version = i->hostname = i->kernel = NULL;
}

static void sync_stat_fn(agent_client *c, int err, const struct proto_msg *reply, void *ud)
{
	struct sync_req *s = ud;
	struct agent_stat *st = s->out;
	const struct proto_stat_result *r;

	(void)c;
	s->done = true;
	s->err = err;
	if (err < 0)
		return;
	r = &reply->u.stat;
	st->type = r->type;
	st->size = r->size;
	st->mode = r->mode;
	st->uid = r->uid;
	st->gid = r->gid;
	st->mtime = r->mtime;
	if (r->link) {
		st->link = strdup0(r->link);
		if (!st->link)
			s->err = -ENOMEM;
	}
}

int agent_stat(agent_client *c, const char *path, struct agent_stat *ret)
{
	struct proto_msg m = {.type = PROTO_STAT};
	struct agent_stat st = {0};
	struct sync_req s = {.out = &st};
	int r;

	m.u.path.path = path;
	r = sync_request(c, &m, sync_stat_fn, &s);
	if (r < 0) {
		agent_stat_release(&st);
		return r;
	}
	*ret = st;
	return 0;
}

void agent_stat_release(struct agent_stat *s)
{
	if (!s)
		return;
	free(s->link);
	s->link = NULL;
}

static void sync_list_fn(agent_client *c, int err, const struct proto_msg *reply, void *ud)
{
	struct sync_req *s = ud;
	struct agent_dirent *e;
	const struct proto_list_result *r;
	uint32_t i;

	if (s->done)
		return;
	if (err < 0) {
		s->done = true;
		s->err = err;
		return;
	}
	r = &reply->u.list;
	if (s->n + r->n > AGENT_LIST_MAX) {
		client_set_error(c, "agent: listing has more than %d entries", AGENT_LIST_MAX);
		s->err = -E2BIG;
		s->done = true;
		return;
	}
	if (s->n + r->n > s->cap) {
		size_t cap = s->cap ? s->cap : 64;

		while (cap < s->n + r->n)
			cap *= 2;
		e = realloc(s->out, cap * sizeof(*e));
		if (!e) {
			s->err = -ENOMEM;
			s->done = true;
			return;
		}
		s->out = e;
		s->cap = cap;
	}
	e = s->out;
	for (i = 0; i < r->n; i++) {
		struct agent_dirent *d = &e[s->n];

		d->name = strdup0(r->entries[i].name);
		if (!d->name) {
			s->err = -ENOMEM;
			s->done = true;
			return;
		}
		d->type = r->entries[i].type;
		d->size = r->entries[i].size;
		d->mode = r->entries[i].mode;
		d->mtime = r->entries[i].mtime;
		s->n++;
	}
	if (!r->more)
		s->done = true;
}

int agent_list(agent_client *c, const char *path, struct agent_dirent **ret, size_t *ret_n)
{
	struct proto_msg m = {.type = PROTO_LIST};
	struct sync_req s = {0};
	int r;

	m.u.path.path = path;
	r = sync_request(c, &m, sync_list_fn, &s);
	if (r < 0) {
		/* a LIST that failed half-way must not feed a dead frame */
		agent_request_cancel(c, s.id);
		agent_dirents_free(s.out, s.n);
		return r;
	}
	*ret = s.out;
	*ret_n = s.n;
	return 0;
}

void agent_dirents_free(struct agent_dirent *e, size_t n)
{
	size_t i;

	if (!e)
		return;
	for (i = 0; i < n; i++)
		free(e[i].name);
	free(e);
}

int agent_mkdir(agent_client *c, const char *path, uint32_t mode, bool parents)
{
	struct proto_msg m = {.type = PROTO_MKDIR};
	struct sync_req s = {0};

	m.u.path.path = path;
	m.u.path.mode = mode;
	m.u.path.recursive = parents;
	return sync_request(c, &m, sync_plain_fn, &s);
}

int agent_remove(agent_client *c, const char *path, bool recursive)
{
	struct proto_msg m = {.type = PROTO_REMOVE};
	struct sync_req s = {0};

	m.u.path.path = path;
	m.u.path.recursive = recursive;
	return sync_request(c, &m, sync_plain_fn, &s);
}

int agent_shutdown(agent_client *c, bool reboot)
{
	struct proto_msg m = {.type = PROTO_SHUTDOWN};
	struct sync_req s = {0};

	m.u.shutdown.reboot = reboot;
	return sync_request(c, &m, sync_plain_fn, &s);
}

/* ---- fixup --------------------------------------------------------------------- */

static int fixup_build(agent_client *c, const struct agent_fixup_spec *spec, struct proto_msg *m)
{
	struct proto_fixup *f = &m->u.fixup;

	memset(m, 0, sizeof(*m));
	m->type = PROTO_FIXUP;
	if (!spec)
		return -EINVAL;
	if (spec->entropy_len > PROTO_MAX_ENTROPY || (spec->entropy_len && !spec->entropy)) {
		client_set_error(c, "fixup: entropy must be at most %d bytes", PROTO_MAX_ENTROPY);
		return -EINVAL;
	}
	if (spec->rootfstype && !spec->root) {
		client_set_error(c, "fixup: rootfstype needs root");
		return -EINVAL;
	}
	if (spec->root && !c->dead) {
		if (!c->ready) {
			client_set_error(c, "fixup: the agent's capabilities are not known yet");
			return -EAGAIN;
		}
		if (!agent_client_has_cap(c, "root")) {
			client_set_error(
			    c,
			    "fixup: agent \"%s\" cannot mount a root disk (no \"root\" "
			    "capability)",
			    agent_client_peer_software(c));
			return -EOPNOTSUPP;
		}
	}
	f->time_ns = spec->time_ns;
	f->entropy.data = spec->entropy;
	f->entropy.len = spec->entropy_len;
	f->hostname = spec->hostname;
	f->root = spec->root;
	f->rootfstype = spec->rootfstype;
	return 0;
}

int agent_fixup_start(agent_client *c, const struct agent_fixup_spec *spec, agent_reply_fn fn,
		      void *ud, uint32_t *ret_id)
{
	struct proto_msg m;
	int r;

	r = fixup_build(c, spec, &m);
	if (r < 0)
		return r;
	return agent_request(c, &m, fn, ud, ret_id);
}

int agent_fixup(agent_client *c, const struct agent_fixup_spec *spec)
{
	struct sync_req s = {0};
	struct proto_msg m;
	int r;

	if (spec && spec->root && !c->ready) {
		r = client_wait(c, &c->ready);
		if (r < 0)
			return r;
	}
	r = fixup_build(c, spec, &m);
	if (r < 0)
		return r;
	return sync_request(c, &m, sync_plain_fn, &s);
}
