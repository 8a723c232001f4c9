/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_config.c - the endpoint and API key: flags, environment, config file,
 * defaults; and "sbx config" to show them or write the file.
 *
 * The file may hold a secret, so it is read only when a flag or variable
 * did not already answer, refused when others can write it (they could
 * point sbx at their own server and collect the key) and warned about
 * when others can read it. "sbx config set" writes it with mode 0600
 * through a temporary file and rename().
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/io.h"
#include "base/cleanup.h"
#include "base/kvconf.h"
#include "base/log.h"
#include "tools/sbx.h"
#include "tools/sbx_config.h"

#define CONFIG_MAX (64 * 1024)

/* "api-key" and "api_key" are the same name. */
static const char *canonical_name(const char *name)
{
	if (!strcmp(name, "endpoint"))
		return "endpoint";
	if (!strcmp(name, "api_key") || !strcmp(name, "api-key"))
		return "api_key";
	return NULL;
}

static int set_one(void *ud, const char *name, const char *value, const char *source)
{
	struct sbx_config *cfg = ud;
	const char *canon = canonical_name(name);
	char **slot;

	if (!canon)
		return err_set(-EINVAL, "%s: unknown setting '%s' (sbx knows endpoint and api_key)",
			       source, name);
	if (!strcmp(canon, "endpoint") && !*value)
		return err_set(-EINVAL, "%s: endpoint is empty", source);
	slot = !strcmp(canon, "endpoint") ? &cfg->endpoint : &cfg->api_key;
	free(*slot);
	*slot = *value ? strdup(value) : NULL;
	if (*value && !*slot)
		return err_set(-ENOMEM, "out of memory");
	return 0;
}

int sbx_config_parse(const char *text, size_t len, const char *fname, struct sbx_config *cfg)
{
	return kvconf_parse(text, len, fname, set_one, cfg);
}

char *sbx_config_path(void)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	char *p = NULL;

	if (xdg && xdg[0] == '/')
		return asprintf(&p, "%s/sbx/config", xdg) < 0 ? NULL : p;
	if (!home || home[0] != '/') {
		struct passwd *pw = getpwuid(geteuid());

		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || !*home)
		return NULL;
	return asprintf(&p, "%s/.config/sbx/config", home) < 0 ? NULL : p;
}

/* Read the file into *ret_text: 0, -ENOENT (no file), or -errno with the
 * error buffer set. Enforces the permission rules. */
static int read_config_file(const char *path, char **ret_text, size_t *ret_len)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t len = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0)
		return err_set(-errno, "cannot open %s: %m", path);
	if (fstat(fd, &st) < 0)
		return err_set(-errno, "cannot stat %s: %m", path);
	if (!S_ISREG(st.st_mode))
		return err_set(-EINVAL, "%s is not a regular file", path);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return err_set(-EPERM,
			       "refusing to read %s: other users can write it "
			       "(fix with: chmod 600 %s)",
			       path, path);
	if (st.st_size > CONFIG_MAX)
		return err_set(-EFBIG, "%s is larger than %d bytes", path, CONFIG_MAX);
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return err_set(-ENOMEM, "out of memory");
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_set(-errno, "cannot read %s: %m", path);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret_text = TAKE_PTR(buf);
	*ret_len = len;
	return (st.st_mode & (S_IRGRP | S_IROTH)) ? 1 : 0;
}

int sbx_config_resolve(const char *flag_endpoint, const char *flag_api_key, struct sbx_config *cfg)
{
	const char *env_endpoint = getenv("SBX_ENDPOINT"), *env_key = getenv("SBX_API_KEY");
	_cleanup_free_ char *path = NULL, *text = NULL;
	struct sbx_config file = {0};
	size_t len = 0;
	int r;

	*cfg = (struct sbx_config){0};
	if (flag_endpoint) {
		cfg->endpoint = strdup(flag_endpoint);
		cfg->endpoint_from = "--endpoint";
	} else if (env_endpoint && *env_endpoint) {
		cfg->endpoint = strdup(env_endpoint);
		cfg->endpoint_from = "SBX_ENDPOINT";
	}
	if (flag_api_key) {
		cfg->api_key = strdup(flag_api_key);
		cfg->api_key_from = "--api-key";
	} else if (env_key && *env_key) {
		cfg->api_key = strdup(env_key);
		cfg->api_key_from = "SBX_API_KEY";
	}
	if ((cfg->endpoint_from && !cfg->endpoint) || (cfg->api_key_from && !cfg->api_key))
		return err_set(-ENOMEM, "out of memory");
	if (!cfg->endpoint || !cfg->api_key) {
		path = sbx_config_path();
		r = path ? read_config_file(path, &text, &len) : -ENOENT;
		if (r < 0 && r != -ENOENT)
			return r;
		if (r >= 0) {
			int readable = r;

			r = sbx_config_parse(text, len, path, &file);
			if (r < 0) {
				sbx_config_release(&file);
				return r;
			}
			if (readable && file.api_key && !cfg->api_key)
				log_warn("%s holds an API key and other users can read it "
					 "(fix with: chmod 600 %s)",
					 path, path);
		}
	}
	if (!cfg->endpoint && file.endpoint) {
		cfg->endpoint = TAKE_PTR(file.endpoint);
		cfg->endpoint_from = "config file";
	}
	if (!cfg->api_key && file.api_key) {
		cfg->api_key = TAKE_PTR(file.api_key);
		cfg->api_key_from = "config file";
	}
	sbx_config_release(&file);
	if (!cfg->endpoint) {
		cfg->endpoint = strdup(SBX_DEFAULT_ENDPOINT);
		cfg->endpoint_from = "default";
		if (!cfg->endpoint)
			return err_set(-ENOMEM, "out of memory");
	}
	return 0;
}

void sbx_config_release(struct sbx_config *cfg)
{
	free(cfg->endpoint);
	free(cfg->api_key);
	*cfg = (struct sbx_config){0};
}

const char *sbx_config_mask_key(const char *key, char buf[32])
{
	size_t n = key ? strlen(key) : 0;

	if (!key)
		snprintf(buf, 32, "(none)");
	else if (n <= 12)
		snprintf(buf, 32, "%.*s...", n > 4 ? 4 : (int)n, key);
	else
		snprintf(buf, 32, "%.8s...%s", key, key + n - 4);
	return buf;
}

static int append(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t ncap = (*len + n + 1) * 2;
		char *p = realloc(*out, ncap);

		if (!p)
			return -ENOMEM;
		*out = p;
		*cap = ncap;
	}
	memcpy(*out + *len, s, n);
	*len += n;
	(*out)[*len] = '\0';
	return 0;
}

/* kvconf callback: the canonical name a line sets (NULL: none we know). */
static int line_name(void *ud, const char *name, const char *value, const char *source)
{
	(void)value;
	(void)source;
	*(const char **)ud = canonical_name(name);
	return 0;
}

char *sbx_config_edit(const char *text, const char *name, const char *value)
{
	const char *canon = canonical_name(name), *p = text ? text : "";
	_cleanup_free_ char *out = NULL, *setting = NULL;
	size_t len = 0, cap = 0;
	bool done = false;

	if (!canon)
		return NULL;
	if (value && asprintf(&setting, "%s = %s\n", canon, value) < 0)
		return NULL;
	if (append(&out, &len, &cap, "", 0) < 0)
		return NULL;
	while (*p) {
		const char *nl = strchr(p, '\n'), *lname = NULL;
		size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
		bool match;

		/* a line that does not parse is kept as it is */
		match = kvconf_parse(p, nl ? n - 1 : n, "", line_name, &lname) == 0 && lname &&
			!strcmp(lname, canon);
		if (!match) {
			if (append(&out, &len, &cap, p, n) < 0 ||
			    (!nl && append(&out, &len, &cap, "\n", 1) < 0))
				return NULL;
		} else if (!done && setting) {
			if (append(&out, &len, &cap, setting, strlen(setting)) < 0)
				return NULL;
			done = true;
		}
		p += n;
	}
	if (!done && setting && append(&out, &len, &cap, setting, strlen(setting)) < 0)
		return NULL;
	return TAKE_PTR(out);
}

/* ---- sbx config ------------------------------------------------------------ */

static int write_config(const char *path, const char *text)
{
	_cleanup_free_ char *dir = strdup(path), *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;
	char *slash;
	int r;

	if (!dir || asprintf(&tmp, "%s.tmp-%d", path, (int)getpid()) < 0)
		return err_set(-ENOMEM, "out of memory");
	/* ~/.config may not exist yet: create what is missing, private. */
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = io_mkdir_p(dir, 0700);
		if (r < 0)
			return err_set(r, "cannot create %s: %m", dir);
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_set(-errno, "cannot create %s: %m", tmp);
	r = io_write_all(fd, text, strlen(text));
	if (r < 0) {
		(void)unlink(tmp);
		return err_set(r, "cannot write %s: %m", tmp);
	}
	if (fsync(fd) < 0 || rename(tmp, path) < 0) {
		r = -errno;
		(void)unlink(tmp);
		return err_set(r, "cannot write %s: %m", path);
	}
	return 0;
}

static int config_show(void)
{
	struct sbx_config cfg = {0};
	_cleanup_free_ char *path = sbx_config_path();
	char masked[32];
	int r;

	r = sbx_config_resolve(NULL, NULL, &cfg);
	if (r < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	printf("config file: %s%s\n", path ? path : "(no home directory)",
	       path && access(path, F_OK) < 0 ? " (does not exist)" : "");
	printf("endpoint:    %s (from %s)\n", cfg.endpoint, cfg.endpoint_from);
	if (cfg.api_key)
		printf("api_key:     %s (from %s)\n", sbx_config_mask_key(cfg.api_key, masked),
		       cfg.api_key_from);
	else
		printf("api_key:     (none)\n");
	sbx_config_release(&cfg);
	return SBX_EXIT_OK;
}

/* "sbx config set api_key -" reads the key from stdin, out of the shell's
 * history and the process list. */
static int read_value_stdin(char *buf, size_t len)
{
	if (!fgets(buf, (int)len, stdin))
		return err_set(-EINVAL, "no value on standard input");
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

int sbx_cmd_config(const struct sbx_command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	_cleanup_free_ char *path = NULL, *text = NULL, *out = NULL;
	const char *verb, *name, *value = NULL;
	char stdin_value[4096];
	size_t len = 0;
	int opt, r;

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (opt == 'h') {
			sbx_usage(cmd, stdout);
			return SBX_EXIT_OK;
		}
		return sbx_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
	}
	verb = optind < argc ? argv[optind] : "show";
	if (!strcmp(verb, "show")) {
		if (optind + 1 < argc)
			return sbx_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
		return config_show();
	}
	if (strcmp(verb, "set") && strcmp(verb, "unset"))
		return sbx_usage_error(cmd, "unknown action '%s' (show, set or unset)", verb);
	if (!strcmp(verb, "set") ? argc - optind != 3 : argc - optind != 2)
		return sbx_usage_error(cmd, "'%s' takes %s", verb,
				       !strcmp(verb, "set") ? "NAME VALUE" : "NAME");
	name = argv[optind + 1];
	if (!canonical_name(name))
		return sbx_usage_error(cmd, "unknown setting '%s' (endpoint or api_key)", name);
	if (!strcmp(verb, "set")) {
		value = argv[optind + 2];
		if (!strcmp(value, "-")) {
			if (read_value_stdin(stdin_value, sizeof(stdin_value)) < 0)
				return sbx_error_print(SBX_EXIT_FAIL);
			value = stdin_value;
		}
		if (!*value || strpbrk(value, "\n\r"))
			return sbx_usage_error(cmd, "the value must be one non-empty line");
	}
	path = sbx_config_path();
	if (!path) {
		err_set(-ENOENT, "no home directory to keep the config file in");
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	r = read_config_file(path, &text, &len);
	if (r < 0 && r != -ENOENT)
		return sbx_error_print(SBX_EXIT_FAIL);
	out = sbx_config_edit(text, name, value);
	if (!out) {
		err_set(-ENOMEM, "out of memory");
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	if (write_config(path, out) < 0)
		return sbx_error_print(SBX_EXIT_FAIL);
	if (arg_verbose)
		fprintf(stderr, "sbx: wrote %s\n", path);
	return SBX_EXIT_OK;
}
