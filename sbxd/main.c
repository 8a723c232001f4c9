/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - the sbxd command: `sbxd serve` runs the API server (foreground)
 * over the embedded libvirt driver and the snapshot store (with its
 * zygote for fast starts and its prewarmed pools); `sbxd key create|list|revoke` manages
 * API keys in the same state directory (also while serve runs); `sbxd
 * config` shows the settings in effect.
 *
 * Settings: flag > SBX_* variable > config file > default (config.h).
 * Exit status: 0 success, 1 failure, 2 usage error.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/io.h"
#include "base/err.h"
#include "base/clock.h"
#include "base/cleanup.h"
#include "sbxd/dataplane/dp.h"
#include "sbxd/http/http_server.h"
#include "base/log.h"
#include "sbxd/log_json.h"
#include "sbxd/api/api.h"
#include "sbxd/config.h"
#include "sbxd/common/key.h"
#include "sbxd/mgr/mgr.h"
#include "sbxd/backend/backend.h"
#include "snapshot/snap.h"
#include "sbxd/store/store.h"
#include "host/vm/vm.h"

#ifndef SBX_VERSION
#define SBX_VERSION "0.1.0-dev"
#endif

LOG_DEFINE_STATE("sbxd");

extern char **environ;

#define MAX_FLAG_SETTINGS 64

struct cli {
	const char *config_path;
	const char *set_name[MAX_FLAG_SETTINGS];
	const char *set_value[MAX_FLAG_SETTINGS];
	char namebuf[MAX_FLAG_SETTINGS][64]; /* names of --name=value flags */
	int nset;
	const char *key_name;
	bool admin;
	const char *quota_sandboxes, *quota_mem_mib; /* sbxd key create|set */
	const char *pos[4];
	int npos;
	bool help;
};

static const char usage_text[] =
    "usage: sbxd serve [--listen ADDR:PORT] [--state-dir DIR] [--libvirt-uri URI]\n"
    "                  [--config FILE] [--image DIR] [--public-url URL]\n"
    "                  [--max-vcpus N] [--max-mem-mib N] [--max-disk-gib N]\n"
    "                  [--pool-size N] [--snapshot-pools SNAPSHOT:N,...] ...\n"
    "       sbxd key create [--name NAME] [--admin] [--max-sandboxes N] [--max-mem-mib M]\n"
    "                       [--state-dir DIR]\n"
    "       sbxd key set NAME [--max-sandboxes N] [--max-mem-mib M] [--state-dir DIR]\n"
    "                       (a key's quota: running sandboxes, their memory; 0: none)\n"
    "       sbxd key list [--state-dir DIR]\n"
    "       sbxd key revoke NAME [--state-dir DIR]\n"
    "       sbxd config [--config FILE] [...]   (print the settings in effect)\n"
    "       sbxd version\n"
    "\n"
    "Every setting can also come from SBX_<NAME> (e.g. SBX_STATE_DIR) or a config\n"
    "file (--config, $SBX_CONFIG, else " SBXD_DEFAULT_CONFIG " if it exists);\n"
    "see docs/sbxd.md for the full list.\n";

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "sbxd: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n\n%s", usage_text);
	return 2;
}

static int parse_cli(int argc, char **argv, int first, bool is_key, struct cli *c)
{
	for (int i = first; i < argc; i++) {
		const char *a = argv[i], *name, *value = NULL, *eq;
		char *nb = c->namebuf[c->nset < MAX_FLAG_SETTINGS ? c->nset : 0];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			c->help = true;
			continue;
		}
		if (strncmp(a, "--", 2)) {
			if (c->npos >= (int)ARRAY_SIZE(c->pos))
				return usage_error("too many arguments: '%s'", a);
			c->pos[c->npos++] = a;
			continue;
		}
		name = a + 2;
		eq = strchr(name, '=');
		if (eq) {
			if ((size_t)(eq - name) >= sizeof(c->namebuf[0]))
				return usage_error("unknown option '%s'", a);
			memcpy(nb, name, (size_t)(eq - name));
			nb[eq - name] = '\0';
			name = nb;
			value = eq + 1;
		}
		if (is_key && !strcmp(name, "admin") && !value) {
			c->admin = true;
			continue;
		}
		if (!value) {
			if (i + 1 >= argc)
				return usage_error("option '%s' needs a value", a);
			value = argv[++i];
		}
		if (!strcmp(name, "config")) {
			c->config_path = value;
		} else if (is_key && !strcmp(name, "name")) {
			c->key_name = value;
		} else if (is_key && !strcmp(name, "max-sandboxes")) {
			c->quota_sandboxes = value;
		} else if (is_key && !strcmp(name, "max-mem-mib")) {
			c->quota_mem_mib = value;
		} else if (sbxd_config_has(name)) {
			if (c->nset >= MAX_FLAG_SETTINGS)
				return usage_error("too many options at '%s'", a);
			c->set_name[c->nset] = name;
			c->set_value[c->nset++] = value;
		} else {
			return usage_error("unknown option '%s'", a);
		}
	}
	return 0;
}

static int resolve_config(const struct cli *c, struct sbxd_config *cfg)
{
	const char *path = c->config_path;
	struct stat st;

	sbxd_config_defaults(cfg);
	if (!path)
		path = getenv("SBX_CONFIG");
	if (!path && stat(SBXD_DEFAULT_CONFIG, &st) == 0)
		path = SBXD_DEFAULT_CONFIG;
	if (path && sbxd_config_load_file(cfg, path) < 0)
		goto fail;
	if (sbxd_config_apply_env(cfg, environ) < 0)
		goto fail;
	for (int i = 0; i < c->nset; i++) {
		char source[80];

		snprintf(source, sizeof(source), "--%s", c->set_name[i]);
		if (sbxd_config_set(cfg, c->set_name[i], c->set_value[i], source) < 0)
			goto fail;
	}
	if (sbxd_config_check(cfg) < 0)
		goto fail;
	if (!strcmp(cfg->log_level, "debug"))
		log_set_level(LOG_LVL_DEBUG);
	else if (!strcmp(cfg->log_level, "warn"))
		log_set_level(LOG_LVL_WARN);
	else if (!strcmp(cfg->log_level, "error"))
		log_set_level(LOG_LVL_ERROR);
	if (!strcmp(cfg->log_format, "json"))
		log_json_enable();
	return 0;
fail:
	fprintf(stderr, "sbxd: %s\n", err_msg());
	return 2;
}

static int open_store(const struct sbxd_config *cfg, store **ret)
{
	char path[PATH_MAX + 16];
	int r;

	r = io_mkdir_p(cfg->state_dir, 0750);
	if (r < 0) {
		fprintf(stderr, "sbxd: cannot create the state directory %s: %s\n", cfg->state_dir,
			strerror(-r));
		return r;
	}
	snprintf(path, sizeof(path), "%s/sbxd.db", cfg->state_dir);
	r = store_open(path, ret);
	if (r < 0)
		fprintf(stderr, "sbxd: cannot open the database %s: %s\n", path, err_msg_or(r));
	return r;
}

/* ---- sbxd key ---- */

/* The audit log at start: commands that ran when sbxd died and no longer
 * run are "lost"; rows older than SBXD_AUDIT_KEEP_DAYS go. */
#define SBXD_AUDIT_KEEP_DAYS 30
static void audit_housekeeping(store *st)
{
	int lost = store_audit_sweep(st);
	int old = store_audit_prune(st, clock_wall_ms() - SBXD_AUDIT_KEEP_DAYS * 86400000LL);

	if (lost < 0 || old < 0)
		log_warn("audit log: cannot tidy up: %s, ignoring", err_msg());
	else if (lost || old)
		log_info("audit log: %d command(s) whose end was not seen marked lost, %d entr%s "
			 "older than %d days removed",
			 lost, old, old == 1 ? "y" : "ies", SBXD_AUDIT_KEEP_DAYS);
}

/* --max-sandboxes / --max-mem-mib of a key command; with keep, an absent
 * flag keeps the value in *ret. 0 or 2 (usage error, said). */
static int parse_quota(const struct cli *c, unsigned *ret_sandboxes, uint64_t *ret_mem)
{
	const char *v[2] = {c->quota_sandboxes, c->quota_mem_mib};
	const char *flag[2] = {"--max-sandboxes", "--max-mem-mib"};
	unsigned long long max[2] = {100000, 64ULL * 1024 * 1024};
	unsigned long long n[2];

	for (int i = 0; i < 2; i++) {
		char *end;

		if (!v[i])
			continue;
		errno = 0;
		n[i] = strtoull(v[i], &end, 10);
		if (errno || end == v[i] || *end || v[i][0] == '-' || n[i] > max[i]) {
			fprintf(stderr, "sbxd: %s needs a whole number from 0 (no limit) to %llu\n",
				flag[i], max[i]);
			return 2;
		}
	}
	if (v[0])
		*ret_sandboxes = (unsigned)n[0];
	if (v[1])
		*ret_mem = (uint64_t)n[1] << 20;
	return 0;
}

static void quota_text(unsigned sandboxes, uint64_t mem, char *buf, size_t len)
{
	char s[24] = "no limit", m[32] = "no limit";

	if (sandboxes)
		snprintf(s, sizeof(s), "%u", sandboxes);
	if (mem)
		snprintf(m, sizeof(m), "%llu MiB", (unsigned long long)(mem >> 20));
	snprintf(buf, len, "sandboxes %s, memory %s", s, m);
}

static int key_set(const struct sbxd_config *cfg, const struct cli *c, const char *name)
{
	_cleanup_(store_closep) store *st = NULL;
	unsigned sandboxes = 0;
	uint64_t mem = 0;
	struct store_key k;
	char text[96];
	int r;

	if (!c->quota_sandboxes && !c->quota_mem_mib)
		return usage_error("%s", "key set needs --max-sandboxes N and/or --max-mem-mib M");
	if (open_store(cfg, &st) < 0)
		return 1;
	r = store_key_get_by_name(st, name, &k);
	if (r == -ENOENT) {
		fprintf(stderr, "sbxd: there is no key named '%s' (see: sbxd key list)\n", name);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "sbxd: cannot read the keys: %s\n", err_msg());
		return 1;
	}
	sandboxes = k.max_sandboxes;
	mem = k.max_mem_bytes;
	store_key_release(&k);
	if ((r = parse_quota(c, &sandboxes, &mem)))
		return r;
	r = store_key_set_quota(st, name, sandboxes, mem);
	if (r < 0) {
		fprintf(stderr, "sbxd: cannot set the quota: %s\n",
			r == -ENOENT ? "the key is gone" : err_msg());
		return 1;
	}
	quota_text(sandboxes, mem, text, sizeof(text));
	fprintf(stderr, "Key '%s': %s (a running sbxd applies it to the next create).\n", name,
		text);
	return 0;
}

static int key_create(const struct sbxd_config *cfg, const struct cli *c)
{
	_cleanup_(store_closep) store *st = NULL;
	char key[SBXD_KEY_LEN + 1], hash[SBXD_KEY_HASH_LEN + 1], name[SBXD_KEY_NAME_MAX + 1];
	unsigned q_sandboxes = 0;
	uint64_t q_mem = 0;
	int r;

	if (c->key_name && !sbxd_key_name_is_valid(c->key_name)) {
		fprintf(stderr,
			"sbxd: '%s' is not a valid key name: use 1 to %d letters, digits, '.', '_' "
			"and '-', starting with a letter or digit\n",
			c->key_name, SBXD_KEY_NAME_MAX);
		return 2;
	}
	if (open_store(cfg, &st) < 0)
		return 1;
	if ((r = parse_quota(c, &q_sandboxes, &q_mem)))
		return r;
	if (c->key_name)
		snprintf(name, sizeof(name), "%s", c->key_name);
	else if (store_key_default_name(st, name, sizeof(name)) < 0)
		goto fail_store;
	if (sbxd_key_generate(key, sizeof(key)) < 0) {
		fprintf(stderr, "sbxd: the random number generator failed\n");
		return 1;
	}
	sbxd_key_hash(key, strlen(key), hash);
	r = store_key_create(st, name, hash, c->admin, NULL);
	if (r == -EEXIST) {
		fprintf(stderr, "sbxd: a key named '%s' already exists (see: sbxd key list)\n",
			name);
		return 1;
	}
	if (r == 0 && (q_sandboxes || q_mem))
		r = store_key_set_quota(st, name, q_sandboxes, q_mem);
	if (r < 0)
		goto fail_store;
	fprintf(stderr,
		"Created %sAPI key '%s' in %s/sbxd.db.\n"
		"It is shown only this once (only its hash is kept): store it now.\n"
		"Clients send it in the X-Api-Key header; with the langsmith client:\n"
		"  LANGSMITH_ENDPOINT=http://HOST:PORT LANGSMITH_API_KEY=<the key below>\n",
		c->admin ? "admin " : "", name, cfg->state_dir);
	printf("%s\n", key);
	fflush(stdout);
	return 0;
fail_store:
	fprintf(stderr, "sbxd: cannot create the key: %s\n", err_msg());
	return 1;
}

static int key_list(const struct sbxd_config *cfg)
{
	_cleanup_(store_closep) store *st = NULL;
	struct store_key *k = NULL;
	size_t n = 0;

	if (open_store(cfg, &st) < 0)
		return 1;
	if (store_key_list(st, &k, &n) < 0) {
		fprintf(stderr, "sbxd: cannot list keys: %s\n", err_msg());
		return 1;
	}
	if (n == 0) {
		fprintf(stderr,
			"No API keys yet: create one with 'sbxd key create --state-dir %s'.\n",
			cfg->state_dir);
		return 0;
	}
	printf("%-24s %-6s %-24s %-9s %-9s %s\n", "NAME", "ADMIN", "CREATED", "MAX-SBX", "MAX-MEM",
	       "STATUS");
	for (size_t i = 0; i < n; i++) {
		char created[40], revoked[40], qs[16] = "-", qm[24] = "-";

		clock_rfc3339(k[i].created_ms, true, created, sizeof(created));
		clock_rfc3339(k[i].revoked_ms, true, revoked, sizeof(revoked));
		if (k[i].max_sandboxes)
			snprintf(qs, sizeof(qs), "%u", k[i].max_sandboxes);
		if (k[i].max_mem_bytes)
			snprintf(qm, sizeof(qm), "%lluMiB",
				 (unsigned long long)(k[i].max_mem_bytes >> 20));
		printf("%-24s %-6s %-24s %-9s %-9s %s%s\n", k[i].name, k[i].admin ? "yes" : "no",
		       created, qs, qm, k[i].revoked_ms ? "revoked " : "valid",
		       k[i].revoked_ms ? revoked : "");
	}
	store_keys_free(k, n);
	return 0;
}

static int key_revoke(const struct sbxd_config *cfg, const char *name)
{
	_cleanup_(store_closep) store *st = NULL;
	int r;

	if (open_store(cfg, &st) < 0)
		return 1;
	r = store_key_revoke(st, name);
	if (r == -ENOENT) {
		fprintf(stderr, "sbxd: there is no key named '%s' (see: sbxd key list)\n", name);
		return 1;
	}
	if (r == -EALREADY) {
		fprintf(stderr, "sbxd: the key '%s' was already revoked\n", name);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "sbxd: cannot revoke the key: %s\n", err_msg());
		return 1;
	}
	fprintf(stderr, "Revoked the key '%s': requests using it are refused from now on.\n", name);
	return 0;
}

static int cmd_key(int argc, char **argv)
{
	struct cli c = {0};
	struct sbxd_config cfg;
	const char *sub = argc > 2 ? argv[2] : NULL;
	int r;

	if (!sub || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		fputs(usage_text, sub ? stdout : stderr);
		return sub ? 0 : 2;
	}
	r = parse_cli(argc, argv, 3, true, &c);
	if (r)
		return r;
	if (c.help) {
		fputs(usage_text, stdout);
		return 0;
	}
	if ((r = resolve_config(&c, &cfg)))
		return r;
	if (!strcmp(sub, "create")) {
		if (c.npos)
			return usage_error("unexpected argument '%s' (use --name NAME)", c.pos[0]);
		return key_create(&cfg, &c);
	}
	if (!strcmp(sub, "list"))
		return c.npos ? usage_error("unexpected argument '%s'", c.pos[0]) : key_list(&cfg);
	if (!strcmp(sub, "revoke")) {
		if (c.npos != 1)
			return usage_error("%s", "key revoke needs exactly one key NAME");
		return key_revoke(&cfg, c.pos[0]);
	}
	if (!strcmp(sub, "set")) {
		if (c.npos != 1)
			return usage_error("%s", "key set needs exactly one key NAME");
		return key_set(&cfg, &c, c.pos[0]);
	}
	return usage_error("unknown key command '%s' (create, list, set or revoke)", sub);
}

/* ---- sbxd serve ---- */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* --image, else <directory of this binary>/images/default (a build tree:
 * build/sbxd next to build/images/default), else STATE/images/default. */
static void find_image(const struct sbxd_config *cfg, char *buf, size_t len)
{
	char exe[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (cfg->image_dir[0]) {
		snprintf(buf, len, "%s", cfg->image_dir);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			n = snprintf(buf, len, "%s/images/default", exe);
			if (n > 0 && (size_t)n < len && stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
				return;
		}
	}
	if (snprintf(buf, len, "%s/images/default", cfg->state_dir) >= (int)len)
		buf[0] = '\0';
}

static int open_driver(const struct sbxd_config *cfg, const char *image, vm_driver **ret)
{
	char kernel[PATH_MAX + 16];
	struct vm_driver_config vc = {
	    .state_dir = cfg->state_dir,
	    .uri = cfg->libvirt_uri[0] ? cfg->libvirt_uri : NULL,
	    .force_accel = -1,
	    .probe_kernel = kernel,
	};

	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", image);
	if (!strcmp(cfg->accel, "kvm"))
		vc.force_accel = VM_ACCEL_KVM;
	else if (!strcmp(cfg->accel, "tcg"))
		vc.force_accel = VM_ACCEL_TCG;
	if (vm_driver_open(&vc, ret) < 0) {
		log_error("cannot open the VM driver: %s", err_msg());
		return -1;
	}
	return 0;
}

static void limits_from_config(const struct sbxd_config *cfg, uint64_t image_bytes,
			       struct api_limits *l)
{
	const uint64_t mib = 1024 * 1024, gib = 1024 * mib;

	l->default_vcpus = cfg->default_vcpus;
	l->max_vcpus = cfg->max_vcpus;
	l->default_mem_bytes = (uint64_t)cfg->default_mem_mib * mib;
	l->max_mem_bytes = (uint64_t)cfg->max_mem_mib * mib;
	l->min_disk_bytes = image_bytes;
	l->default_disk_bytes =
	    cfg->default_disk_gib ? (uint64_t)cfg->default_disk_gib * gib : image_bytes;
	if (l->default_disk_bytes < image_bytes)
		l->default_disk_bytes = image_bytes;
	l->max_disk_bytes = (uint64_t)cfg->max_disk_gib * gib;
	if (l->max_disk_bytes < l->default_disk_bytes)
		l->max_disk_bytes = l->default_disk_bytes;
	l->max_sandboxes = cfg->max_sandboxes;
	l->max_total_mem_bytes = (uint64_t)cfg->max_total_mem_mib * mib;
	l->max_lifetime_seconds = cfg->max_lifetime_seconds;
}

static void warn_if_no_keys(store *st, const char *state_dir)
{
	struct store_key *k = NULL;
	size_t n = 0, valid = 0;

	if (store_key_list(st, &k, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		valid += k[i].revoked_ms == 0;
	store_keys_free(k, n);
	if (!valid)
		log_warn("no valid API key exists yet, so every API request is refused: create one "
			 "with 'sbxd key create --state-dir %s'",
			 state_dir);
}

static void on_vm_stopped(void *ud, const char *name, const char *reason)
{
	sbxd_mgr_vm_stopped(ud, name, reason);
}

/* "http://HOST:PORT", an IPv6 address in brackets. */
static void http_url(const char *host, int port, char *buf, size_t len)
{
	bool v6 = strchr(host, ':') != NULL;

	snprintf(buf, len, "http://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

static int serve(const struct sbxd_config *cfg)
{
	_cleanup_(store_closep) store *st = NULL;
	char image[PATH_MAX], base[400], serving[400];
	vm_driver *drv = NULL;
	snap_store *ss = NULL;
	sbxd_vm_backend *backend = NULL;
	sbxd_api *api = NULL;
	http_server *srv = NULL;
	sbxd_mgr *mgr = NULL;
	dp *dplane = NULL;
	struct sigaction sa = {.sa_handler = on_signal};
	uint64_t image_bytes = 0;
	int ret = 1, r;

	find_image(cfg, image, sizeof(image));
	if (sbxd_image_check(image, &image_bytes) < 0) {
		log_error("%s", err_msg());
		return 1;
	}
	if (open_store(cfg, &st) < 0)
		return 1;
	warn_if_no_keys(st, cfg->state_dir);
	if (open_driver(cfg, image, &drv) < 0)
		return 1;
	r = snap_store_open(cfg->state_dir, &ss);
	if (r < 0) {
		log_error("cannot open the snapshot store under %s: %s", cfg->state_dir,
			  err_msg_or(r));
		goto out;
	}
	if (sbxd_vm_backend_new(drv, ss, &backend) < 0)
		goto out;

	/* a wildcard address is reached through loopback */
	http_url(!strcmp(cfg->listen_host, "0.0.0.0") || !strcmp(cfg->listen_host, "::") ||
			 !cfg->listen_host[0]
		     ? "127.0.0.1"
		     : cfg->listen_host,
		 cfg->listen_port, base, sizeof(base));
	{
		struct sbxd_api_config ac = {
		    .st = st,
		    .image_dir = image,
		    .images_dir = cfg->images_dir,
		    .max_pool_size = cfg->max_pool_size,
		    .public_url = cfg->public_url,
		    .fallback_base = base,
		    .version = SBX_VERSION,
		};

		limits_from_config(cfg, image_bytes, &ac.limits);
		if (sbxd_api_new(&ac, &api) < 0)
			goto out;
	}
	{
		struct http_server_config hc = {
		    .host = cfg->listen_host,
		    .port = cfg->listen_port,
		    .app = &sbxd_api_http_app,
		    .app_ud = api,
		    .log_fd = STDERR_FILENO,
		};

		r = http_server_new(&hc, &srv);
		if (r < 0) {
			log_error("cannot listen on %s:%d: %s", cfg->listen_host, cfg->listen_port,
				  r == -EADDRINUSE ? "the address is in use or not available here"
						   : strerror(-r));
			goto out;
		}
	}
	{
		struct sbxd_mgr_config mc = {
		    .st = st,
		    .vm = &sbxd_vm_libvirt_ops,
		    .vm_ctx = backend,
		    .boot_timeout_s = cfg->boot_timeout_s,
		    .notify = sbxd_api_mgr_notify,
		    .notify_ud = api,
		    .release_box = sbxd_api_release_box,
		    .box_busy = sbxd_api_box_busy,
		};

		if (sbxd_mgr_new(&mc, &mgr) < 0)
			goto out;
	}
	sbxd_api_attach(api, srv, mgr);
	if (dp_new(api, st, &dplane) < 0)
		goto out;
	sbxd_api_set_dataplane(api, &dp_dataplane_ops, dplane);
	/* a sandbox whose QEMU dies is reported failed with the reason */
	if (vm_driver_watch_stops(drv, on_vm_stopped, mgr) < 0)
		log_warn("cannot watch for VMs that stop on their own: %s (a crashed sandbox is "
			 "noticed at its next use)",
			 err_msg());
	r = sbxd_mgr_reconcile(mgr);
	if (r < 0) {
		log_error("cannot compare the sandboxes with the running VMs: %s", err_msg_or(r));
		goto out;
	}
	r = sbxd_mgr_reconcile_snapshots(mgr);
	if (r < 0) {
		log_error("cannot compare the snapshots with the snapshot store: %s", err_msg());
		goto out;
	}
	audit_housekeeping(st);
	/* Fast starts: the default image's zygote, built in the background
	 * (a cold boot, once) so that the first creates rarely wait for it. */
	{
		struct api_limits l;

		limits_from_config(cfg, image_bytes, &l);
		sbxd_mgr_prepare_zygote(mgr, image, l.default_vcpus,
					(unsigned)(l.default_mem_bytes >> 20),
					l.default_disk_bytes);
	}
	sbxd_api_start_pools(api, cfg->pool_size, cfg->snapshot_pools);

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	http_url(cfg->listen_host, http_server_port(srv), serving, sizeof(serving));
	log_info("serving on %s (state %s, image %s, %s, accelerator %s)", serving, cfg->state_dir,
		 image, vm_driver_uri(drv), vm_accel_to_string(vm_driver_accel(drv)));
	r = http_server_run(srv, &stop_requested);
	log_info("stopping%s (running VMs stay up and are adopted at the next start)",
		 r < 0 ? " after a server error" : "");
	ret = r < 0 ? 1 : 0;
out:
	vm_driver_unwatch_stops(drv); /* its reports go to mgr */
	mgr = sbxd_mgr_free(mgr);
	srv = http_server_free(srv);
	dplane = dp_free(dplane); /* after the server: its connections close first */
	api = sbxd_api_free(api);
	backend = sbxd_vm_backend_free(backend);
	ss = snap_store_free(ss);
	drv = vm_driver_free(drv);
	return ret;
}

static int cmd_serve_or_config(int argc, char **argv, bool dump)
{
	struct cli c = {0};
	struct sbxd_config cfg;
	int r = parse_cli(argc, argv, 2, false, &c);

	if (r)
		return r;
	if (c.help) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (c.npos)
		return usage_error("unexpected argument '%s'", c.pos[0]);
	if ((r = resolve_config(&c, &cfg)))
		return r;
	if (dump) {
		char buf[8192];

		sbxd_config_dump(&cfg, buf, sizeof(buf));
		fputs(buf, stdout);
		return 0;
	}
	return serve(&cfg);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd)
		return usage_error("%s", "a command is needed");
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("sbxd %s\n", SBX_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "serve"))
		return cmd_serve_or_config(argc, argv, false);
	if (!strcmp(cmd, "config"))
		return cmd_serve_or_config(argc, argv, true);
	if (!strcmp(cmd, "key"))
		return cmd_key(argc, argv);
	return usage_error("unknown command '%s'", cmd);
}
