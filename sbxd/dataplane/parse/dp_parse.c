/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_parse.c - the WebSocket execute protocol's client frames, the body of
 * POST /execute, and the command line they turn into (dp_parse.h).
 *
 * The client is untrusted: every field is type-checked and bounded, unknown
 * keys and unknown message types are ignored (langsmith-wire.md §6.4: the
 * protocol grows that way). Numbers may come as integers or reals (the
 * client's JSON.stringify writes 60 as 60, but 1.5 is legal too).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "sbxd/dataplane/parse/dp_parse.h"

static const char *const msg_type_names[DP_MSG_TYPE_COUNT] = {
    [DP_MSG_EXECUTE] = "execute",   [DP_MSG_RECONNECT] = "reconnect",
    [DP_MSG_INPUT] = "input",	    [DP_MSG_CLOSE_STDIN] = "close_stdin",
    [DP_MSG_KILL] = "kill",	    [DP_MSG_RESIZE] = "resize",
    [DP_MSG_IGNORED] = "(ignored)",
};

const char *dp_msg_type_to_string(enum dp_msg_type t)
{
	return (unsigned)t < DP_MSG_TYPE_COUNT ? msg_type_names[t] : "unknown";
}

/* A string field: absent (*ret untouched, 0), or a copy; NUL bytes and
 * lengths over max are refused. */
static int get_str(json_t *o, const char *key, size_t max, char **ret)
{
	json_t *v = json_object_get(o, key);
	size_t n;

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return err_set(-EINVAL, "field '%s' must be a string", key);
	n = json_string_length(v);
	if (n > max)
		return err_set(-EINVAL, "field '%s' is longer than %zu bytes", key, max);
	if (memchr(json_string_value(v), '\0', n))
		return err_set(-EINVAL, "field '%s' must not contain NUL characters", key);
	free(*ret);
	*ret = strdup(json_string_value(v));
	return *ret ? 0 : -ENOMEM;
}

static int get_int(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *ret)
{
	json_t *v = json_object_get(o, key);
	double d;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);

		if (i < lo || i > hi)
			return err_set(-EINVAL, "field '%s' must be from %lld to %lld", key,
				       (long long)lo, (long long)hi);
		*ret = i;
		return 0;
	}
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (!(d >= (double)lo && d <= (double)hi))
			return err_set(-EINVAL, "field '%s' must be from %lld to %lld", key,
				       (long long)lo, (long long)hi);
		*ret = (int64_t)d;
		return 0;
	}
	return err_set(-EINVAL, "field '%s' must be a number", key);
}

static int get_bool(json_t *o, const char *key, bool *ret)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return err_set(-EINVAL, "field '%s' must be true or false", key);
	*ret = json_is_true(v);
	return 0;
}

/* An object of string values (env, env_vars): keys are environment names. */
static int check_env_object(json_t *v, const char *key)
{
	const char *k;
	json_t *x;

	if (!json_is_object(v))
		return err_set(-EINVAL, "field '%s' must be an object of strings", key);
	if (json_object_size(v) > DP_ENV_MAX)
		return err_set(-EINVAL, "field '%s' has more than %d entries", key, DP_ENV_MAX);
	json_object_foreach(v, k, x)
	{
		if (!*k || strchr(k, '=') || strlen(k) > 4096)
			return err_set(-EINVAL, "field '%s' has an invalid variable name", key);
		if (!json_is_string(x) || memchr(json_string_value(x), '\0', json_string_length(x)))
			return err_set(-EINVAL, "field '%s.%s' must be a string", key, k);
		if (json_string_length(x) > DP_COMMAND_MAX)
			return err_set(-EINVAL, "field '%s.%s' is too long", key, k);
	}
	return 0;
}

static int check_run_config(json_t *v)
{
	json_t *x;

	if (!json_is_object(v))
		return err_set(-EINVAL, "field 'run_config' must be an object");
	x = json_object_get(v, "user");
	if (x && !json_is_null(x) && !json_is_string(x))
		return err_set(-EINVAL, "field 'run_config.user' must be a string");
	x = json_object_get(v, "work_dir");
	if (x && !json_is_null(x) && (!json_is_string(x) || !dp_path_valid(json_string_value(x))))
		return err_set(-EINVAL, "field 'run_config.work_dir' must be an absolute path");
	x = json_object_get(v, "env_vars");
	if (x && !json_is_null(x))
		return check_env_object(x, "run_config.env_vars");
	return 0;
}

bool dp_command_id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > DP_CMD_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._:-", s[i]))
			return false;
	return true;
}

void dp_exec_params_release(struct dp_exec_params *p)
{
	free(p->command);
	free(p->shell);
	free(p->command_id);
	free(p->cwd);
	json_decref(p->env);
	json_decref(p->run_config);
	memset(p, 0, sizeof(*p));
}

/* Fields common to the WS execute frame and the POST /execute body. */
static int parse_exec(json_t *o, const char *timeout_key, struct dp_exec_params *p)
{
	int64_t rows = 0, cols = 0;
	json_t *v;
	int r;

	p->timeout_s = DP_DEFAULT_TIMEOUT_S;
	p->idle_timeout_s = DP_DEFAULT_IDLE_S;
	p->ttl_s = DP_DEFAULT_TTL_S;
	if ((r = get_str(o, "command", DP_COMMAND_MAX, &p->command)) < 0 ||
	    (r = get_str(o, "shell", DP_PATH_MAX, &p->shell)) < 0 ||
	    (r = get_str(o, "command_id", DP_CMD_ID_MAX, &p->command_id)) < 0 ||
	    (r = get_str(o, "cwd", DP_PATH_MAX, &p->cwd)) < 0 ||
	    (r = get_int(o, timeout_key, INT32_MIN, 86400 * 30, &p->timeout_s)) < 0 ||
	    (r = get_int(o, "idle_timeout_seconds", -1, 86400 * 30, &p->idle_timeout_s)) < 0 ||
	    (r = get_int(o, "ttl_seconds", -1, 86400 * 30, &p->ttl_s)) < 0 ||
	    (r = get_bool(o, "kill_on_disconnect", &p->kill_on_disconnect)) < 0 ||
	    (r = get_bool(o, "close_stdin", &p->close_stdin)) < 0 ||
	    (r = get_bool(o, "pty", &p->pty)) < 0 ||
	    (r = get_int(o, "rows", 0, 65535, &rows)) < 0 ||
	    (r = get_int(o, "cols", 0, 65535, &cols)) < 0)
		return r;
	if (!p->command || !*p->command)
		return err_set(-EINVAL, "field 'command' is required");
	if (!p->shell) {
		p->shell = strdup(DP_DEFAULT_SHELL);
		if (!p->shell)
			return -ENOMEM;
	}
	if (!*p->shell)
		return err_set(-EINVAL, "field 'shell' must not be empty");
	if (p->command_id && !dp_command_id_valid(p->command_id))
		return err_set(-EINVAL,
			       "field 'command_id' must be 1 to %d letters, digits, '.', '_', ':' "
			       "or '-'",
			       DP_CMD_ID_MAX);
	if (p->cwd && !dp_path_valid(p->cwd))
		return err_set(-EINVAL, "field 'cwd' must be an absolute path");
	p->rows = (unsigned)rows;
	p->cols = (unsigned)cols;
	v = json_object_get(o, "env");
	if (v && !json_is_null(v)) {
		if ((r = check_env_object(v, "env")) < 0)
			return r;
		p->env = json_incref(v);
	}
	v = json_object_get(o, "run_config");
	if (v && !json_is_null(v)) {
		if ((r = check_run_config(v)) < 0)
			return r;
		p->run_config = json_incref(v);
	}
	return 0;
}

static json_t *load_object(const char *buf, size_t len)
{
	json_error_t je;
	json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);

	if (!o) {
		err_set(-EINVAL, "not valid JSON: %s", je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		err_set(-EINVAL, "a JSON object is expected");
		return NULL;
	}
	return o;
}

void dp_msg_release(struct dp_msg *m)
{
	dp_exec_params_release(&m->exec);
	free(m->command_id);
	free(m->data);
	memset(m, 0, sizeof(*m));
}

static int parse_msg(json_t *o, struct dp_msg *m)
{
	const char *type = json_string_value(json_object_get(o, "type"));
	int64_t off[2] = {0, 0}, rows = 0, cols = 0;
	json_t *v;
	int r;

	if (!type)
		return err_set(-EINVAL, "field 'type' must be a string");
	if (!strcmp(type, "execute")) {
		m->type = DP_MSG_EXECUTE;
		return parse_exec(o, "timeout_seconds", &m->exec);
	}
	if (!strcmp(type, "reconnect")) {
		m->type = DP_MSG_RECONNECT;
		if ((r = get_str(o, "command_id", DP_CMD_ID_MAX, &m->command_id)) < 0 ||
		    (r = get_int(o, "stdout_offset", 0, INT64_MAX, &off[0])) < 0 ||
		    (r = get_int(o, "stderr_offset", 0, INT64_MAX, &off[1])) < 0)
			return r;
		if (!m->command_id || !dp_command_id_valid(m->command_id))
			return err_set(-EINVAL, "field 'command_id' is missing or not valid");
		m->offsets[0] = (uint64_t)off[0];
		m->offsets[1] = (uint64_t)off[1];
		return 0;
	}
	if (!strcmp(type, "input")) {
		m->type = DP_MSG_INPUT;
		v = json_object_get(o, "data");
		if (!json_is_string(v))
			return err_set(-EINVAL, "field 'data' must be a string");
		m->data_len = json_string_length(v);
		m->data = malloc(m->data_len + 1);
		if (!m->data)
			return -ENOMEM;
		memcpy(m->data, json_string_value(v), m->data_len + 1);
		return 0;
	}
	if (!strcmp(type, "close_stdin")) {
		m->type = DP_MSG_CLOSE_STDIN;
		return 0;
	}
	if (!strcmp(type, "kill")) {
		m->type = DP_MSG_KILL;
		return 0;
	}
	if (!strcmp(type, "resize")) {
		m->type = DP_MSG_RESIZE;
		if ((r = get_int(o, "rows", 1, 65535, &rows)) < 0 ||
		    (r = get_int(o, "cols", 1, 65535, &cols)) < 0)
			return r;
		if (!rows || !cols)
			return err_set(-EINVAL, "fields 'rows' and 'cols' are required");
		m->rows = (unsigned)rows;
		m->cols = (unsigned)cols;
		return 0;
	}
	m->type = DP_MSG_IGNORED;
	return 0;
}

int dp_msg_parse(const char *buf, size_t len, struct dp_msg *ret)
{
	struct dp_msg m = {0};
	json_t *o = load_object(buf, len);
	int r;

	if (!o)
		return -EINVAL;
	r = parse_msg(o, &m);
	json_decref(o);
	if (r < 0) {
		dp_msg_release(&m);
		return r;
	}
	*ret = m;
	return 0;
}

int dp_exec_parse_http(const char *buf, size_t len, struct dp_exec_params *ret)
{
	struct dp_exec_params p = {0};
	json_t *o = load_object(buf, len);
	int r;

	if (!o)
		return -EINVAL;
	r = parse_exec(o, "timeout", &p);
	json_decref(o);
	if (r < 0) {
		dp_exec_params_release(&p);
		return r;
	}
	*ret = p;
	return 0;
}

/* ---- building the command ---- */

struct strv {
	char **v;
	size_t n, cap;
};

static int strv_add(struct strv *s, const char *fmt, ...)
{
	va_list ap;
	char *x;
	int r;

	if (s->n + 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		char **nv = realloc(s->v, cap * sizeof(char *));

		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->cap = cap;
	}
	va_start(ap, fmt);
	r = vasprintf(&x, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	s->v[s->n++] = x;
	s->v[s->n] = NULL;
	return 0;
}

static void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

void dp_exec_argv_release(struct dp_exec_argv *a)
{
	strv_free(a->argv);
	strv_free(a->env);
	free(a->cwd);
	memset(a, 0, sizeof(*a));
}

static bool all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

static bool user_part_valid(const char *s, size_t n)
{
	if (n == 0 || n > 64 || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

/*
 * run_config.user is "name", "uid", "name:group" or "uid:gid". The agent
 * runs commands as root; another user goes through runuser (names) or
 * setpriv (numbers), both util-linux, so no shell ever sees the value.
 */
static int add_user_wrapper(struct strv *a, const char *user)
{
	const char *colon = strchr(user, ':');
	size_t ul = colon ? (size_t)(colon - user) : strlen(user);
	const char *g = colon ? colon + 1 : NULL;
	size_t gl = g ? strlen(g) : 0;
	int r;

	if (!user_part_valid(user, ul) || (g && !user_part_valid(g, gl)))
		return err_set(-EINVAL, "run_config.user '%.80s' is not a user name or uid", user);
	if ((ul == 4 && !strncmp(user, "root", 4)) || (ul == 1 && user[0] == '0')) {
		if (!g)
			return 0;
	}
	if (all_digits(user, ul)) {
		if (g && !all_digits(g, gl))
			return err_set(-EINVAL,
				       "run_config.user: a numeric uid needs a numeric gid");
		/* the gid defaults to the uid */
		if ((r = strv_add(a, "setpriv")) < 0 ||
		    (r = strv_add(a, "--reuid=%.*s", (int)ul, user)) < 0 ||
		    (r = strv_add(a, "--regid=%.*s", g ? (int)gl : (int)ul, g ? g : user)) < 0 ||
		    (r = strv_add(a, "--clear-groups")) < 0)
			return r;
		return strv_add(a, "--");
	}
	if ((r = strv_add(a, "runuser")) < 0 || (r = strv_add(a, "-u")) < 0 ||
	    (r = strv_add(a, "%.*s", (int)ul, user)) < 0)
		return r;
	if (g && ((r = strv_add(a, "-g")) < 0 || (r = strv_add(a, "%s", g)) < 0))
		return r;
	return strv_add(a, "--");
}

/* Merge src's env_vars-like object into dst (an object). */
static int merge_env(json_t *dst, json_t *src)
{
	if (!src || !json_is_object(src))
		return 0;
	return json_object_update(dst, src) < 0 ? -ENOMEM : 0;
}

static int build_env(json_t *vars, bool pty, char ***ret)
{
	static const char *const defaults[][2] = {
	    {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	    {"HOME", "/root"},
	    {"LANG", "C.UTF-8"},
	};
	struct strv e = {0};
	const char *k;
	json_t *v;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
		if (!json_object_get(vars, defaults[i][0]) &&
		    (r = strv_add(&e, "%s=%s", defaults[i][0], defaults[i][1])) < 0)
			goto fail;
	if (!json_object_get(vars, "TERM") &&
	    (r = strv_add(&e, "TERM=%s", pty ? "xterm-256color" : "dumb")) < 0)
		goto fail;
	json_object_foreach(vars, k, v)
	{
		if ((r = strv_add(&e, "%s=%s", k, json_string_value(v))) < 0)
			goto fail;
	}
	*ret = e.v;
	return 0;
fail:
	strv_free(e.v);
	return r;
}

int dp_exec_build(const struct dp_exec_params *p, const char *box_run_config,
		  struct dp_exec_argv *ret)
{
	_cleanup_free_ char *user = NULL, *cwd = NULL;
	struct dp_exec_argv a = {0};
	struct strv argv = {0};
	json_t *base = NULL, *vars = json_object(), *x, *layers[2];
	int r = -ENOMEM;

	if (!vars)
		return -ENOMEM;
	if (box_run_config)
		base = json_loads(box_run_config, 0, NULL);
	/* lowest layer first: the sandbox, the command, the legacy fields */
	layers[0] = json_is_object(base) ? base : NULL;
	layers[1] = p->run_config;
	for (size_t i = 0; i < 2; i++) {
		if (!layers[i])
			continue;
		if ((x = json_object_get(layers[i], "user")) && json_is_string(x)) {
			free(user);
			user = strdup(json_string_value(x));
		}
		if ((x = json_object_get(layers[i], "work_dir")) && json_is_string(x)) {
			free(cwd);
			cwd = strdup(json_string_value(x));
		}
		if ((r = merge_env(vars, json_object_get(layers[i], "env_vars"))) < 0)
			goto out;
	}
	if ((r = merge_env(vars, p->env)) < 0)
		goto out;
	if (p->cwd) {
		free(cwd);
		cwd = strdup(p->cwd);
	}
	if (cwd && !dp_path_valid(cwd)) {
		r = err_set(-EINVAL, "the working directory '%.200s' is not an absolute path", cwd);
		goto out;
	}
	if (user && *user && (r = add_user_wrapper(&argv, user)) < 0)
		goto out;
	if ((r = strv_add(&argv, "%s", p->shell)) < 0 || (r = strv_add(&argv, "-c")) < 0 ||
	    (r = strv_add(&argv, "%s", p->command)) < 0)
		goto out;
	if (json_object_size(vars) > 0 && (r = build_env(vars, p->pty, &a.env)) < 0)
		goto out;
	a.argv = TAKE_PTR(argv.v);
	a.cwd = TAKE_PTR(cwd);
	*ret = a;
	r = 0;
out:
	strv_free(argv.v);
	json_decref(base);
	json_decref(vars);
	return r;
}
