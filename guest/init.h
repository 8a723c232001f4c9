/* SPDX-License-Identifier: Apache-2.0 */
/*
 * init.h - stage 1 of PID 1: the straight-line set-up before the loop, and
 * the final power-off.
 *
 * Kernel command line (all optional):
 *   sbx.root=DEV        root block device (default /dev/vda; "none": stay in
 *                       the initramfs)
 *   sbx.rootfstype=FS   its filesystem (default ext4)
 *   sbx.hostname=NAME   hostname (default "sbx")
 *   sbx.init=wait       reserved: the host will tell the agent when to mount
 *                       the root; parsed but not acted on yet
 *   sbx.debug           debug logging on the console
 */
#pragma once

#include <stdbool.h>

struct init_config {
	char root[256];
	char rootfstype[32];
	char hostname[65];
	bool wait_for_host; /* sbx.init=wait (reserved) */
	bool debug;
};

/* Parse a kernel command line into cfg (defaults for what is missing). */
void init_parse_cmdline(const char *cmdline, struct init_config *cfg);

/* Mounts, console, modules, root switch, hostname, loopback. Any failure is
 * fatal (agent_fatal). */
void init_stage1(void);

/* SIGTERM everything, wait up to 2 s, SIGKILL, sync, remount / read-only,
 * power off or reboot. */
__attribute__((noreturn)) void init_power_off(bool reboot);
