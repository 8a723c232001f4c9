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
 *   sbx.init=wait       zygote: do not mount the root; serve from the
 *                       initramfs until a FIXUP names the root disk
 *   sbx.debug           debug logging on the console
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct init_config {
	char root[256];
	char rootfstype[32];
	char hostname[65];
	bool wait_for_host; /* sbx.init=wait */
	bool debug;
};

/* Parse a kernel command line into cfg (defaults for what is missing). */
void init_parse_cmdline(const char *cmdline, struct init_config *cfg);

/* Mounts, console, modules, root switch (unless sbx.init=wait or
 * sbx.root=none), hostname, loopback. Any failure is fatal (agent_fatal). */
void init_stage1(void);

#define INIT_ROOT_WAIT_MS 5000 /* boot: how long the root device may take to appear */

/*
 * Mount DEV (file system FSTYPE) read-write on /newroot, move /dev, /proc,
 * /sys, /run and /tmp into it, make it the root (MS_MOVE onto /, chroot) and
 * delete what is left of the initramfs, then grow the file system to the
 * size of DEV (init_grow_fs(); its failure is only logged). Waits up to wait_ms for DEV to
 * appear; with flush, first drops the cached blocks of DEV (BLKFLSBUF: a
 * zygote's kernel read the placeholder disk when it probed the device).
 *
 * Returns 0, or -errno and a message for a person in msg ("cannot mount
 * /dev/vda (ext4) as the root: Invalid argument"). A failure up to the
 * switch itself leaves the initramfs as the root, as it was (moved mounts
 * are moved back, /newroot is unmounted), so it can be tried again; a
 * failure after it (chroot, chdir: not seen in practice) leaves the root
 * switched but the agent's view of it unreliable. -EBUSY once the root was
 * switched. Runs on the loop's thread; blocks for the wait and the mount.
 */
int init_switch_root(const char *dev, const char *fstype, int wait_ms, bool flush, char *msg,
		     size_t msglen);

/*
 * Grow the ext4 file system mounted on MNT to the size of its block device
 * DEV (a sandbox's disk can be bigger than its image's file system): one
 * EXT4_IOC_RESIZE_FS on the mounted file system, as resize2fs does online.
 * Returns 1 when grown, 0 when it already fills DEV (or DEV is smaller),
 * -EOPNOTSUPP when it is not ext4, another -errno when the resize failed
 * (the file system keeps its size); msg says which for a person. Called by
 * init_switch_root() on the new root, which only logs the outcome.
 */
int init_grow_fs(const char *dev, const char *mnt, char *msg, size_t msglen);

/* Whether the agent runs on a root disk it switched into (at boot or by
 * init_switch_root()); false in the initramfs and for an ordinary process. */
bool init_root_switched(void);

/* SIGTERM everything, wait up to 2 s, SIGKILL, sync, remount / read-only,
 * power off or reboot. */
__attribute__((noreturn)) void init_power_off(bool reboot);
