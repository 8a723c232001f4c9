/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_search.c - POST /glob and /grep of {dataplane_url} (langsmith-wire.md
 * §5.7).
 *
 * glob walks the tree with the agent's LIST (no program needed in the
 * guest), up to GLOB_PARALLEL directories at a time, descending only where
 * the pattern can still match (dp_glob_may_descend) and never through
 * symlinks; at most GLOB_MAX_DIRS directories and GLOB_MAX_ENTRIES entries
 * are looked at, and at most limit matches returned (then truncated: true).
 *
 * grep runs `grep -rnIZsF -e PATTERN -- PATH` in the guest (arguments as
 * argv, never through a shell), reads its output as it comes (path NUL
 * line ':' text LF), filters paths with the glob, keeps lines up to
 * GREP_TEXT_MAX bytes and kills grep once limit matches are in.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/clock.h"
#include "sbxd/dataplane/parse/dp_glob.h"
#include "sbxd/dataplane/dp_int.h"
#include "sbxd/dataplane/parse/dp_utf8.h"
#include "base/log.h"

#define GLOB_PARALLEL 8
#define GLOB_MAX_DIRS 100000
#define GLOB_MAX_ENTRIES 2000000
#define GREP_TEXT_MAX 2000
#define GREP_TIMEOUT_MS 55000

struct match {
	char *path;
	bool is_dir;
	uint64_t size;
	int64_t mtime;
	uint64_t line; /* grep */
	char *text;    /* grep */
};

struct list_op {
	struct sr *s;
	char *rel;
	uint32_t id;
	bool busy;
};

struct sr {
	struct dp_box *box;
	http_req *r;
	bool grep;
	struct dp_search_req q;
	char root[DP_PATH_MAX + 1];
	uint32_t stat_id;
	bool finished;
	/* results */
	struct match *m;
	unsigned n;
	bool truncated;
	/* glob */
	char **queue;
	size_t qhead, qlen, qcap;
	struct list_op ops[GLOB_PARALLEL];
	unsigned inflight, dirs;
	uint64_t entries;
	/* grep */
	agent_cmd *ac;
	int gst; /* 0 path, 1 line number, 2 text, 3 skip to LF */
	char gpath[DP_PATH_MAX + 1];
	size_t gplen;
	uint64_t gline;
	char gtext[GREP_TEXT_MAX + 1];
	size_t gtlen;
};

static void sr_free(void *p)
{
	struct sr *s = p;

	if (!s)
		return;
	if (s->box->ac) {
		if (s->stat_id)
			agent_request_cancel(s->box->ac, s->stat_id);
		for (int i = 0; i < GLOB_PARALLEL; i++)
			if (s->ops[i].busy)
				agent_request_cancel(s->box->ac, s->ops[i].id);
	}
	for (int i = 0; i < GLOB_PARALLEL; i++)
		free(s->ops[i].rel);
	if (s->ac && agent_cmd_state(s->ac) == AGENT_CMD_RUNNING)
		(void)agent_cmd_signal(s->ac, SIGKILL);
	s->ac = agent_cmd_free(s->ac);
	dp_box_flush(s->box);
	dp_box_unref(s->box);
	for (unsigned i = 0; i < s->n; i++) {
		free(s->m[i].path);
		free(s->m[i].text);
	}
	free(s->m);
	for (size_t i = s->qhead; i < s->qlen; i++)
		free(s->queue[i]);
	free(s->queue);
	dp_search_req_release(&s->q);
	free(s);
}

static int match_cmp(const void *a, const void *b)
{
	const struct match *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

static void sr_reply(struct sr *s)
{
	json_t *arr = json_array(), *o;
	char when[40];

	if (s->finished)
		return;
	s->finished = true;
	if (!arr) {
		http_reply_error(s->r, 500, "InternalError", "out of memory");
		return;
	}
	qsort(s->m, s->n, sizeof(*s->m), match_cmp);
	for (unsigned i = 0; i < s->n; i++) {
		struct match *m = &s->m[i];

		dp_utf8_sanitize(m->path, strlen(m->path));
		if (s->grep) {
			dp_utf8_sanitize(m->text, strlen(m->text));
			o = json_pack("{s:s, s:I, s:s}", "path", m->path, "line",
				      (json_int_t)m->line, "text", m->text);
		} else {
			clock_rfc3339((int64_t)m->mtime * 1000, false, when, sizeof(when));
			o = json_pack("{s:s, s:b, s:I, s:s}", "path", m->path, "is_dir", m->is_dir,
				      "size_bytes", (json_int_t)m->size, "modified_at", when);
		}
		json_array_append_new(arr, o);
	}
	http_reply_json(s->r, 200,
			json_pack("{s:o, s:b}", "matches", arr, "truncated", s->truncated));
}

/* Room for one more match; false (and truncated) past the limit. */
static struct match *sr_add(struct sr *s)
{
	struct match *nm;

	if (s->n >= s->q.limit) {
		s->truncated = true;
		return NULL;
	}
	nm = realloc(s->m, (s->n + 1) * sizeof(*nm));
	if (!nm) {
		s->truncated = true;
		return NULL;
	}
	s->m = nm;
	memset(&nm[s->n], 0, sizeof(*nm));
	return &nm[s->n++];
}

static char *join(const char *root, const char *rel)
{
	char *p = NULL;

	if (!*rel)
		return strdup(root);
	if (asprintf(&p, "%s%s%s", root, strcmp(root, "/") ? "/" : "", rel) < 0)
		return NULL;
	return p;
}

/* ---- glob ---- */

static void glob_pump(struct sr *s);

static void list_reply(agent_client *ac, int err, const struct proto_msg *m, void *ud)
{
	struct list_op *op = ud;
	struct sr *s = op->s;
	bool last = err < 0 || !m->u.list.more;

	if (err < 0 && !*op->rel && !s->finished) {
		s->finished = true;
		dp_reply_agent_error(s->r, err, "ReadError", agent_client_last_error(ac), s->root);
	}
	for (uint32_t i = 0; err == 0 && i < m->u.list.n && !s->truncated; i++) {
		const struct proto_entry *e = &m->u.list.entries[i];
		char *rel = NULL;

		if (asprintf(&rel, "%s%s%s", op->rel, *op->rel ? "/" : "", e->name) < 0)
			break;
		if (++s->entries > GLOB_MAX_ENTRIES)
			s->truncated = true;
		if (dp_glob_match(s->q.pattern, rel, 0)) {
			struct match *x = sr_add(s);

			if (x) {
				x->path = join(s->root, rel);
				x->is_dir = e->type == PROTO_FT_DIR;
				x->size = e->size;
				x->mtime = e->mtime;
			}
		}
		if (e->type == PROTO_FT_DIR && dp_glob_may_descend(s->q.pattern, rel, 0)) {
			if (s->qlen == s->qcap) {
				size_t cap = s->qcap ? s->qcap * 2 : 64;
				char **nq = realloc(s->queue, cap * sizeof(char *));

				if (!nq) {
					free(rel);
					s->truncated = true;
					break;
				}
				s->queue = nq;
				s->qcap = cap;
			}
			if (++s->dirs > GLOB_MAX_DIRS) {
				s->truncated = true;
				free(rel);
				break;
			}
			s->queue[s->qlen++] = rel;
			rel = NULL;
		}
		free(rel);
	}
	if (!last)
		return;
	op->busy = false;
	op->id = 0;
	free(op->rel);
	op->rel = NULL;
	s->inflight--;
	glob_pump(s);
}

static void glob_pump(struct sr *s)
{
	struct proto_msg m = {.type = PROTO_LIST};
	agent_client *ac;
	char *path;

	if (s->finished)
		return;
	while (!s->truncated && s->qhead < s->qlen && s->inflight < GLOB_PARALLEL) {
		struct list_op *op = NULL;

		for (int i = 0; i < GLOB_PARALLEL; i++)
			if (!s->ops[i].busy)
				op = &s->ops[i];
		if (!op || dp_box_client(s->box, &ac) < 0)
			break;
		op->s = s;
		op->rel = s->queue[s->qhead];
		s->queue[s->qhead++] = NULL;
		path = join(s->root, op->rel);
		m.u.path.path = path;
		if (!path || agent_request(ac, &m, list_reply, op, &op->id) < 0) {
			free(path);
			free(op->rel);
			op->rel = NULL;
			continue;
		}
		free(path);
		op->busy = true;
		s->inflight++;
	}
	dp_box_flush(s->box);
	if (s->inflight == 0 || s->truncated) {
		if (s->truncated && s->box->ac) /* stop the walk: drop what is in flight */
			for (int i = 0; i < GLOB_PARALLEL; i++)
				if (s->ops[i].busy) {
					agent_request_cancel(s->box->ac, s->ops[i].id);
					s->ops[i].busy = false;
				}
		sr_reply(s);
	}
}

/* ---- grep ---- */

static void grep_line(struct sr *s)
{
	const char *rel = s->gpath;
	size_t rl = strlen(s->root);
	struct match *x;

	if (!strncmp(rel, s->root, rl))
		rel += rl;
	while (*rel == '/')
		rel++;
	if (s->q.glob && !dp_glob_match(s->q.glob, rel, DP_GLOB_BASENAME))
		return;
	x = sr_add(s);
	if (!x)
		return;
	x->path = strdup(s->gpath);
	x->line = s->gline;
	s->gtext[s->gtlen] = '\0';
	x->text = strdup(s->gtext);
}

static void grep_output(agent_cmd *ac, int stream, uint64_t off, const uint8_t *data, size_t len,
			void *ud)
{
	struct sr *s = ud;

	(void)off;
	if (stream != PROTO_STDOUT || s->truncated)
		return;
	for (size_t i = 0; i < len && !s->truncated; i++) {
		uint8_t c = data[i];

		switch (s->gst) {
		case 0: /* path, up to NUL */
			if (c == 0) {
				s->gpath[s->gplen] = '\0';
				s->gline = 0;
				s->gst = 1;
			} else if (s->gplen < DP_PATH_MAX) {
				s->gpath[s->gplen++] = (char)c;
			}
			break;
		case 1: /* line number, up to ':' */
			if (c == ':') {
				s->gtlen = 0;
				s->gst = 2;
			} else if (c >= '0' && c <= '9' && s->gline < UINT64_MAX / 10) {
				s->gline = s->gline * 10 + (c - '0');
			} else {
				s->gst = 3; /* not grep's format: skip the line */
			}
			break;
		case 2: /* text, up to LF */
			if (c == '\n') {
				grep_line(s);
				s->gst = 0;
				s->gplen = 0;
			} else if (s->gtlen < GREP_TEXT_MAX) {
				s->gtext[s->gtlen++] = (char)c;
			}
			break;
		default:
			if (c == '\n') {
				s->gst = 0;
				s->gplen = 0;
			}
			break;
		}
	}
	if (s->truncated) {
		(void)agent_cmd_signal(ac, SIGKILL);
		dp_box_flush(s->box);
		sr_reply(s);
	}
}

static void grep_exit(agent_cmd *ac, const struct proto_exit *e, void *ud)
{
	struct sr *s = ud;

	(void)ac;
	if (e->timed_out)
		s->truncated = true;
	sr_reply(s);
}

static void grep_error(agent_cmd *ac, int err, const char *msg, void *ud)
{
	struct sr *s = ud;

	(void)ac;
	if (s->finished)
		return;
	s->finished = true;
	if (err == -ENOENT)
		http_reply_error(s->r, 500, "CommandError",
				 "grep is not installed in this sandbox: %s", msg);
	else
		dp_reply_agent_error(s->r, err, "CommandError", msg, s->root);
}

static const struct agent_cmd_ops grep_ops = {
    .on_output = grep_output,
    .on_exit = grep_exit,
    .on_error = grep_error,
};

static void grep_start(struct sr *s, agent_client *ac)
{
	const char *argv[10];
	char include[DP_GLOB_MAX + 16];
	struct agent_exec_spec spec = {0};
	int n = 0;

	argv[n++] = "grep";
	argv[n++] = "-rnIZsF";
	/* grep understands simple base-name globs itself: fewer files read */
	if (s->q.glob && dp_glob_is_basename(s->q.glob) && !strpbrk(s->q.glob, "[\\")) {
		snprintf(include, sizeof(include), "--include=%s", s->q.glob);
		argv[n++] = include;
	}
	argv[n++] = "-e";
	argv[n++] = s->q.pattern;
	argv[n++] = "--";
	argv[n++] = s->root;
	argv[n] = NULL;
	spec.argv = argv;
	spec.timeout_ms = GREP_TIMEOUT_MS;
	spec.window = DP_EXEC_WINDOW;
	spec.keep_ms = 1000;
	if (agent_exec(ac, &spec, &grep_ops, s, &s->ac) < 0) {
		s->finished = true;
		http_reply_error(s->r, 500, "CommandError", "cannot run grep: %s",
				 agent_client_last_error(ac));
	}
}

/* ---- common ---- */

static void root_stat_reply(agent_client *ac, int err, const struct proto_msg *m, void *ud)
{
	struct sr *s = ud;

	s->stat_id = 0;
	if (err < 0) {
		s->finished = true;
		dp_reply_agent_error(s->r, err, "ReadError", agent_client_last_error(ac), s->root);
		return;
	}
	if (!s->grep && m->u.stat.type != PROTO_FT_DIR) {
		s->finished = true;
		http_reply_error(s->r, 400, "ReadError", "'%s' is not a directory", s->root);
		return;
	}
	if (s->grep) {
		grep_start(s, ac);
	} else {
		s->queue = calloc(64, sizeof(char *));
		s->qcap = 64;
		if (s->queue && (s->queue[0] = strdup("")))
			s->qlen = 1;
		glob_pump(s);
	}
	dp_box_flush(s->box);
}

void dp_search(struct dp *d, http_req *r, const struct sbxd_dp_box *box, bool grep)
{
	struct proto_msg m = {.type = PROTO_STAT};
	agent_client *ac;
	const char *body;
	struct sr *s;
	size_t len;

	s = calloc(1, sizeof(*s));
	if (!s) {
		http_reply_error(r, 500, "InternalError", "out of memory");
		return;
	}
	body = http_req_body(r, &len);
	err_clear();
	if (dp_search_parse(body, len, grep, &s->q) < 0) {
		free(s);
		http_reply_error(r, 400, "InvalidRequest", "%s",
				 err_msg()[0] ? err_msg() : "out of memory");
		return;
	}
	s->box = dp_box_get(d, box);
	if (!s->box) {
		dp_search_req_release(&s->q);
		free(s);
		http_reply_error(r, 500, "InternalError", "out of memory");
		return;
	}
	s->r = r;
	s->grep = grep;
	snprintf(s->root, sizeof(s->root), "%s", s->q.path);
	for (size_t n = strlen(s->root); n > 1 && s->root[n - 1] == '/'; n--)
		s->root[n - 1] = '\0';
	http_req_set_data(r, s, sr_free); /* box is not valid after this */
	http_req_defer(r);
	m.u.path.path = s->root;
	if (dp_box_client(s->box, &ac) < 0 ||
	    agent_request(ac, &m, root_stat_reply, s, &s->stat_id) < 0) {
		s->finished = true;
		dp_reply_agent_error(r, -EHOSTDOWN, "ReadError", NULL, s->root);
		return;
	}
	dp_box_flush(s->box);
}
