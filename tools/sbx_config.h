/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx_config.h - where sbx finds sbxd and its API key.
 *
 * Each of the two settings comes from the first of: a flag (--endpoint,
 * --api-key), the environment (SBX_ENDPOINT, SBX_API_KEY), the config file
 * ($XDG_CONFIG_HOME/sbx/config, else ~/.config/sbx/config), the default
 * (http://127.0.0.1:8080; no key). The file holds "name = value" lines;
 * see docs/cli.md.
 */
#pragma once

#include <stddef.h>

#define SBX_DEFAULT_ENDPOINT "http://127.0.0.1:8080"

struct sbx_config {
	char *endpoint;		   /* never NULL after sbx_config_resolve() */
	char *api_key;		   /* NULL: none configured */
	const char *endpoint_from; /* "--endpoint", "SBX_ENDPOINT", the file's path, "default" */
	const char *api_key_from;
};

/* The settings of one config file's text (base/kvconf.h). fname names it
 * in messages ("FILE:LINE: ..."). An unknown name is an error, as in
 * sbxd's file. Fills only the fields the text sets (free the old value
 * first). 0, or -EINVAL with the message in err_msg(). */
int sbx_config_parse(const char *text, size_t len, const char *fname, struct sbx_config *cfg);

/* The config file's path (malloc'd), or NULL when there is no home. */
char *sbx_config_path(void);

/* Fill cfg from flags (NULL: not given), environment, file and defaults.
 * A config file writable by other users is refused (-EPERM); one readable
 * by them that holds a key is warned about. 0 or -errno, error buffer set. */
int sbx_config_resolve(const char *flag_endpoint, const char *flag_api_key, struct sbx_config *cfg);
void sbx_config_release(struct sbx_config *cfg);

/* The key as shown to a person: "sbx_abcd...wxyz". buf holds 32 bytes. */
const char *sbx_config_mask_key(const char *key, char buf[32]);

/* Replace (or add, or with value NULL remove) the line for name in the
 * config text; returns the new text (malloc'd) or NULL on OOM. */
char *sbx_config_edit(const char *text, const char *name, const char *value);
