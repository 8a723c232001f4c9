/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h - sbxd's settings, from four sources in this order of
 * precedence: command-line flag > SBX_* environment variable > config file
 * > built-in default.
 *
 * Every setting has one name, used as
 *   - the flag:      --max-mem-mib 2048   (or --max-mem-mib=2048)
 *   - the file key:  max-mem-mib = 2048   (max_mem_mib also accepted)
 *   - the variable:  SBX_MAX_MEM_MIB=2048
 * The table in config.c is the list; docs/sbxd.md documents it.
 *
 * Parsing functions are pure (no I/O except sbxd_config_load_file()); on a
 * bad setting they return -EINVAL with a message for a person naming the
 * source, key and value in err_msg() (base/err.h).
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBXD_DEFAULT_LISTEN "127.0.0.1:8080"
#define SBXD_DEFAULT_STATE_DIR "/var/lib/sbx"
#define SBXD_DEFAULT_CONFIG "/etc/sbx/sbxd.conf"
#define SBXD_CONFIG_FILE_MAX (64 * 1024)

struct sbxd_config {
	char listen_host[256];
	int listen_port;
	char state_dir[PATH_MAX];
	char libvirt_uri[1024];	  /* "": the embedded driver under state_dir */
	char image_dir[PATH_MAX]; /* "": found at start (see sbxd_config_finish) */
	char public_url[512];	  /* "": http://<Host header of the request> */
	char accel[8];		  /* auto, kvm, tcg */
	char log_level[8];	  /* error, warn, info, debug */
	char log_format[8];	  /* text, json (one JSON object per line) */
	unsigned default_vcpus, max_vcpus;
	unsigned default_mem_mib, max_mem_mib;
	unsigned default_disk_gib, max_disk_gib; /* default 0: the image's size */
	unsigned max_sandboxes;
	unsigned max_total_mem_mib;    /* 0: no limit */
	unsigned max_lifetime_seconds; /* hard TTL cap and default; 0: none */
	unsigned boot_timeout_s;       /* how long a VM's agent may take to answer */
	char images_dir[PATH_MAX];     /* "": the directory holding image_dir */
	unsigned pool_size;	       /* prewarmed sandboxes of the default image */
	char snapshot_pools[1024];     /* "SNAPSHOT:N,...": pools of snapshots */
	unsigned max_pool_size;	       /* most VMs one snapshot's pool may keep */
};

void sbxd_config_defaults(struct sbxd_config *c);
/* Set one setting by name (dashes or underscores) from its text. source
 * names where it came from, for the message ("--listen", "SBX_LISTEN",
 * "/etc/sbx/sbxd.conf:3"). -ENOENT for an unknown name. */
int sbxd_config_set(struct sbxd_config *c, const char *name, const char *value, const char *source);
/* Parse config file text (base/kvconf.h: KEY = VALUE lines, '#' comments,
 * blank lines; values may be double-quoted). path is used in messages
 * only; an unknown setting is an error. */
int sbxd_config_parse_text(struct sbxd_config *c, const char *text, size_t len, const char *path);
int sbxd_config_load_file(struct sbxd_config *c, const char *path);
/* Apply every SBX_<NAME> variable of envp (NULL-terminated "K=V"). */
int sbxd_config_apply_env(struct sbxd_config *c, char *const *envp);
/* "HOST:PORT", "[v6]:PORT" or ":PORT" (all interfaces). */
int sbxd_parse_listen(const char *s, char *host, size_t hostlen, int *ret_port);
/* Cross-checks (default <= max, ...). */
int sbxd_config_check(const struct sbxd_config *c);
/* Whether name is a setting (for flag parsing). */
bool sbxd_config_has(const char *name);
/* Writes every setting as "name = value" lines (for `sbxd config`). */
void sbxd_config_dump(const struct sbxd_config *c, char *buf, size_t len);
