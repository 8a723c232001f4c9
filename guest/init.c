/* SPDX-License-Identifier: Apache-2.0 */
/*
 * init.c - PID 1 stage 1 (model: s6-linux-init, bubblewrap do_init).
 *
 * Straight-line: block signals; mount /proc, /sys, /dev (+ /dev/pts,
 * /dev/shm), /run, /tmp; log to /dev/console; protect the agent from the
 * OOM killer; load the initramfs modules in the order the image builder
 * wrote; mount the root disk and switch into it (moving the API mounts
 * along and freeing the initramfs); set the hostname and bring up lo.
 * Every failure here is fatal: there is nobody to report to yet.
 *
 * A zygote (sbx.init=wait) skips the root switch and serves from the
 * initramfs; FIXUP later calls init_switch_root(), the same code as the
 * boot path, which there reports its failures instead of dying.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "guest/agent.h"
#include "base/cleanup.h"
#include "guest/init.h"
#include "base/log.h"

#define INIT_MODULE_DIR "/lib/modules/sbx"
#define RAMFS_MAGIC_ 0x858458f6
#define TMPFS_MAGIC_ 0x01021994

static void mount_or_die(const char *src, const char *dst, const char *type, unsigned long flags,
			 const char *opts)
{
	if (mkdir(dst, 0755) < 0 && errno != EEXIST)
		agent_fatal("cannot create mount point %s: %s", dst, strerror(errno));
	if (mount(src, dst, type, flags, opts) < 0 && errno != EBUSY)
		agent_fatal("cannot mount %s on %s: %s", type ? type : src, dst, strerror(errno));
}

static void init_console(void)
{
	int fd, i;

	fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0)
		log_set_fd(fd);
	/* our fds 0-2 must be taken, or pipes could land there */
	for (i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) < 0)
			(void)open("/dev/null", O_RDWR);
}

static void init_dev_links(void)
{
	static const char *const links[][2] = {
	    {"/proc/self/fd", "/dev/fd"},
	    {"/proc/self/fd/0", "/dev/stdin"},
	    {"/proc/self/fd/1", "/dev/stdout"},
	    {"/proc/self/fd/2", "/dev/stderr"},
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(links); i++)
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
			log_warn("cannot create %s: %s, ignoring", links[i][1], strerror(errno));
}

static int load_module(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Without modules.order: load every .ko, again and again, until a round
 * makes no progress (dependencies load before their users eventually). */
static void load_modules_unordered(void)
{
	struct dirent **names = NULL;
	char path[512];
	bool *done = NULL, progress = true;
	int n, i, left, ret;

	n = scandir(INIT_MODULE_DIR, &names, NULL, alphasort);
	if (n <= 0)
		return;
	done = calloc((size_t)n, sizeof(*done));
	if (!done)
		agent_fatal("out of memory while loading modules");
	while (progress) {
		progress = false;
		left = 0;
		for (i = 0; i < n; i++) {
			size_t len = strlen(names[i]->d_name);

			if (done[i] || len < 4 || strcmp(names[i]->d_name + len - 3, ".ko"))
				continue;
			snprintf(path, sizeof(path), "%s/%s", INIT_MODULE_DIR, names[i]->d_name);
			ret = load_module(path);
			if (ret == 0) {
				done[i] = progress = true;
			} else {
				left++;
				if (!progress && i == n - 1)
					log_debug("module %s: %s", path, strerror(-ret));
			}
		}
		if (!progress && left)
			log_warn("%d kernel modules in %s could not be loaded, ignoring", left,
				 INIT_MODULE_DIR);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(done);
}

static void init_load_modules(void)
{
	_cleanup_fclose_ FILE *f = fopen(INIT_MODULE_DIR "/modules.order", "re");
	char line[256], path[512], *name;
	int ret, n = 0;

	if (!f) {
		load_modules_unordered();
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		name = strrchr(line, '/') ? strrchr(line, '/') + 1 : line;
		snprintf(path, sizeof(path), "%s/%s", INIT_MODULE_DIR, name);
		ret = load_module(path);
		if (ret < 0)
			log_warn("cannot load kernel module %s: %s, ignoring", path,
				 strerror(-ret));
		else
			n++;
	}
	log_debug("loaded %d kernel modules", n);
}

static void copy_value(char *dst, size_t len, const char *val, size_t n)
{
	if (n >= len)
		n = len - 1;
	memcpy(dst, val, n);
	dst[n] = '\0';
}

void init_parse_cmdline(const char *cmdline, struct init_config *cfg)
{
	const char *p = cmdline, *end, *eq;
	size_t n;

	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->root, sizeof(cfg->root), "/dev/vda");
	snprintf(cfg->rootfstype, sizeof(cfg->rootfstype), "ext4");
	snprintf(cfg->hostname, sizeof(cfg->hostname), "sbx");
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		end = p;
		while (*end && *end != ' ' && *end != '\t' && *end != '\n')
			end++;
		n = (size_t)(end - p);
		eq = memchr(p, '=', n);
#define KEY(k) (eq && (size_t)(eq - p) == strlen(k) && !strncmp(p, k, strlen(k)))
		if (KEY("sbx.root"))
			copy_value(cfg->root, sizeof(cfg->root), eq + 1, (size_t)(end - eq - 1));
		else if (KEY("sbx.rootfstype"))
			copy_value(cfg->rootfstype, sizeof(cfg->rootfstype), eq + 1,
				   (size_t)(end - eq - 1));
		else if (KEY("sbx.hostname"))
			copy_value(cfg->hostname, sizeof(cfg->hostname), eq + 1,
				   (size_t)(end - eq - 1));
		else if (KEY("sbx.init"))
			cfg->wait_for_host =
			    (size_t)(end - eq - 1) == 4 && !strncmp(eq + 1, "wait", 4);
		else if ((n == 9 && !strncmp(p, "sbx.debug", 9)) || KEY("sbx.debug"))
			cfg->debug = !eq || (end > eq + 1 && eq[1] != '0');
#undef KEY
		p = end;
	}
}

static void read_cmdline(struct init_config *cfg)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/cmdline", "re");
	char buf[4096] = "";

	if (f && !fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	init_parse_cmdline(buf, cfg);
}

/* Set once the root disk is our root: a second switch would stack a disk on
 * a disk and strand the API mounts. */
static bool root_switched;

bool init_root_switched(void)
{
	return root_switched;
}

/* The first failure of init_switch_root(): "<what>: <strerror>". */
__attribute__((format(printf, 4, 5))) static int root_fail(char *msg, size_t len, int err,
							   const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < len)
		snprintf(msg + n, len - (size_t)n, ": %s", strerror(err));
	return -err;
}

static int wait_for_device(const char *dev, int wait_ms, char *msg, size_t len)
{
	struct stat st;
	int waited = 0;

	for (;;) {
		if (stat(dev, &st) == 0) {
			if (S_ISBLK(st.st_mode))
				return 0;
			return root_fail(msg, len, ENOTBLK, "cannot use %s as the root", dev);
		}
		if (errno != ENOENT)
			return root_fail(msg, len, errno, "cannot use %s as the root", dev);
		if (waited >= wait_ms)
			break;
		clock_sleep_ms(10);
		waited += 10;
	}
	snprintf(msg, len,
		 "the root device %s did not appear within %d ms (is the disk attached, and are "
		 "its drivers in the initramfs?)",
		 dev, wait_ms);
	return -ENODEV;
}

/* The kernel keeps what it read of a block device in the device's page
 * cache. A zygote's kernel read the first blocks of the placeholder disk
 * while probing it; after a fork the same device has another disk behind
 * it, and without this the file system would be mounted from stale blocks. */
static int flush_device(const char *dev, char *msg, size_t len)
{
	_cleanup_close_ int fd = open(dev, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return root_fail(msg, len, errno, "cannot open the root device %s", dev);
	if (ioctl(fd, BLKFLSBUF, 0) < 0)
		return root_fail(msg, len, errno, "cannot drop the cached blocks of %s", dev);
	return 0;
}

/* Delete what is left of the initramfs, never leaving its filesystem. */
static void remove_tree_at(int dfd, dev_t dev)
{
	DIR *d;
	struct dirent *de;
	struct stat st;
	int sub;

	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
			continue;
		if (S_ISDIR(st.st_mode)) {
			sub = openat(dirfd(d), de->d_name,
				     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				remove_tree_at(sub, dev);
			(void)unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
		} else {
			(void)unlinkat(dirfd(d), de->d_name, 0);
		}
	}
	closedir(d);
}

static void grow_root(const char *dev);

static const char *const api_mounts[] = {"/dev", "/proc", "/sys", "/run", "/tmp"};

/* Undo a switch that failed before the root moved: the first n API mounts
 * go back where they were, and the disk is unmounted. Best effort; a
 * failure here is only logged (there is nothing better to do). */
static void unswitch(size_t n)
{
	char src[64];

	while (n-- > 0) {
		snprintf(src, sizeof(src), "/newroot%s", api_mounts[n]);
		if (mount(src, api_mounts[n], NULL, MS_MOVE, NULL) < 0)
			log_error("cannot move %s back from the root disk: %s", api_mounts[n],
				  strerror(errno));
	}
	if (umount2("/newroot", 0) < 0 && umount2("/newroot", MNT_DETACH) < 0)
		log_error("cannot unmount /newroot: %s", strerror(errno));
}

int init_switch_root(const char *dev, const char *fstype, int wait_ms, bool flush, char *msg,
		     size_t msglen)
{
	_cleanup_close_ int oldroot = -EBADF;
	char dst[64];
	struct statfs sfs;
	struct stat st;
	size_t i;
	int ret;

	if (root_switched) {
		snprintf(msg, msglen, "the root disk is already mounted");
		return -EBUSY;
	}
	ret = wait_for_device(dev, wait_ms, msg, msglen);
	if (ret < 0)
		return ret;
	if (flush) {
		ret = flush_device(dev, msg, msglen);
		if (ret < 0)
			return ret;
	}
	if (mkdir("/newroot", 0755) < 0 && errno != EEXIST)
		return root_fail(msg, msglen, errno, "cannot create /newroot");
	if (mount(dev, "/newroot", fstype, 0, NULL) < 0)
		return root_fail(msg, msglen, errno, "cannot mount %s (%s) as the root", dev,
				 fstype);
	for (i = 0; i < ARRAY_SIZE(api_mounts); i++) {
		snprintf(dst, sizeof(dst), "/newroot%s", api_mounts[i]);
		if (mkdir(dst, 0755) < 0 && errno != EEXIST) {
			ret = root_fail(msg, msglen, errno, "cannot create %s on the root disk",
					api_mounts[i]);
			unswitch(i);
			return ret;
		}
		if (mount(api_mounts[i], dst, NULL, MS_MOVE, NULL) < 0) {
			ret = root_fail(msg, msglen, errno, "cannot move %s into the root disk",
					api_mounts[i]);
			unswitch(i);
			return ret;
		}
	}
	oldroot = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (chdir("/newroot") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0) {
		ret = root_fail(msg, msglen, errno, "cannot switch to the root disk %s", dev);
		if (chdir("/") < 0)
			log_error("cannot go back to / of the initramfs: %s", strerror(errno));
		unswitch(ARRAY_SIZE(api_mounts));
		return ret;
	}
	root_switched = true;
	if (chroot(".") < 0 || chdir("/") < 0)
		return root_fail(msg, msglen, errno,
				 "cannot switch to the root disk %s (it is mounted on /, but the "
				 "agent is not inside it)",
				 dev);
	if (oldroot >= 0 && fstatfs(oldroot, &sfs) == 0 && fstat(oldroot, &st) == 0 &&
	    (sfs.f_type == RAMFS_MAGIC_ || sfs.f_type == TMPFS_MAGIC_))
		remove_tree_at(TAKE_FD(oldroot), st.st_dev);
	grow_root(dev);
	return 0;
}

/* ---- growing the root file system ------------------------------------------ */

#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
#endif
#define EXT4_MAGIC_ 0xEF53
#define EXT4_INCOMPAT_64BIT_ 0x80

static uint32_t le32_at(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

__attribute__((format(printf, 3, 4))) static void grow_msg(char *msg, size_t len, const char *fmt,
							   ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
}

int init_grow_fs(const char *dev, const char *mnt, char *msg, size_t msglen)
{
	_cleanup_close_ int devfd = -EBADF, mntfd = -EBADF;
	uint8_t sb[1024];
	struct statfs sfs;
	uint64_t dev_bytes, old_blocks, new_blocks, bsize, per_page;
	uint32_t log_bsize;

	mntfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mntfd < 0 || fstatfs(mntfd, &sfs) < 0) {
		grow_msg(msg, msglen, "cannot look at the file system on %s: %s", mnt,
			 strerror(errno));
		return -errno;
	}
	if (sfs.f_type != EXT4_MAGIC_) {
		grow_msg(msg, msglen,
			 "the file system on %s is not ext4 (type 0x%lx): not growing it to the "
			 "size of %s",
			 mnt, (unsigned long)sfs.f_type, dev);
		return -EOPNOTSUPP;
	}
	devfd = open(dev, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (devfd < 0 || ioctl(devfd, BLKGETSIZE64, &dev_bytes) < 0) {
		grow_msg(msg, msglen, "cannot read the size of %s: %s", dev, strerror(errno));
		return -errno;
	}
	/* The superblock is read through the device's page cache, where the
	 * mounted file system keeps its own copy: the two agree. */
	if (pread(devfd, sb, sizeof(sb), 1024) != (ssize_t)sizeof(sb)) {
		grow_msg(msg, msglen, "cannot read the superblock of %s", dev);
		return -EIO;
	}
	log_bsize = le32_at(sb + 0x18);
	if ((sb[0x38] | sb[0x39] << 8) != EXT4_MAGIC_ || log_bsize > 6) {
		grow_msg(msg, msglen, "%s holds no ext4 superblock: not growing it", dev);
		return -EOPNOTSUPP;
	}
	bsize = 1024ULL << log_bsize;
	old_blocks = le32_at(sb + 0x04);
	if (le32_at(sb + 0x60) & EXT4_INCOMPAT_64BIT_)
		old_blocks |= (uint64_t)le32_at(sb + 0x150) << 32;
	new_blocks = dev_bytes / bsize;
	/* like resize2fs: whole pages (a 1 KiB-block file system on 4 KiB pages) */
	per_page = bsize < 4096 ? 4096 / bsize : 1;
	new_blocks -= new_blocks % per_page;
	if (!(le32_at(sb + 0x60) & EXT4_INCOMPAT_64BIT_) && new_blocks > UINT32_MAX)
		new_blocks = UINT32_MAX - UINT32_MAX % per_page;
	if (new_blocks <= old_blocks) {
		grow_msg(msg, msglen, "the root file system already fills %s (%llu MiB)", dev,
			 (unsigned long long)(old_blocks * bsize >> 20));
		return 0;
	}
	if (ioctl(mntfd, EXT4_IOC_RESIZE_FS, &new_blocks) < 0) {
		int err = errno;

		grow_msg(msg, msglen,
			 "cannot grow the root file system from %llu to %llu MiB (the size of %s): "
			 "%s; it keeps its size",
			 (unsigned long long)(old_blocks * bsize >> 20),
			 (unsigned long long)(new_blocks * bsize >> 20), dev, strerror(err));
		return -err;
	}
	grow_msg(msg, msglen, "grew the root file system from %llu to %llu MiB (the size of %s)",
		 (unsigned long long)(old_blocks * bsize >> 20),
		 (unsigned long long)(new_blocks * bsize >> 20), dev);
	return 1;
}

/* After a switch: the disk may be bigger than the image's file system (a
 * sandbox asked for more). Never fatal: the sandbox works at the old size. */
static void grow_root(const char *dev)
{
	char msg[512];
	uint64_t t0 = clock_mono_ms();
	int r = init_grow_fs(dev, "/", msg, sizeof(msg));

	if (r > 0)
		log_info("%s in %llu ms", msg, (unsigned long long)(clock_mono_ms() - t0));
	else if (r == 0)
		log_info("%s", msg);
	else
		log_warn("%s", msg);
}

static void loopback_up(void)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};

	if (fd < 0)
		goto out_warn;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		goto out_warn;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		goto out_warn;
	return;
out_warn:
	log_warn("cannot bring up the loopback interface: %s, ignoring", strerror(errno));
}

void init_stage1(void)
{
	struct init_config cfg;
	sigset_t all;
	int fd;

	sigfillset(&all);
	(void)sigprocmask(SIG_BLOCK, &all, NULL);
	umask(022);
	mount_or_die("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_or_die("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_or_die("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	init_console();
	mount_or_die("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		     "newinstance,ptmxmode=0666,mode=0620,gid=5");
	mount_or_die("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	init_dev_links();
	mount_or_die("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	mount_or_die("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	read_cmdline(&cfg);
	if (cfg.debug)
		log_set_level(LOG_LVL_DEBUG);
	log_info("sbx-agent %s starting as PID 1", SBX_AGENT_VERSION);
	fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "-1000", 5) != 5)
		log_warn("cannot protect the agent from the OOM killer: %s, ignoring",
			 strerror(errno));
	if (fd >= 0)
		close(fd);
	init_load_modules();
	if (cfg.wait_for_host) {
		log_info("sbx.init=wait: serving from the initramfs until FIXUP names the root "
			 "disk");
	} else if (strcmp(cfg.root, "none")) {
		char msg[512];

		if (init_switch_root(cfg.root, cfg.rootfstype, INIT_ROOT_WAIT_MS, false, msg,
				     sizeof(msg)) < 0)
			agent_fatal("%s", msg);
	}
	if (sethostname(cfg.hostname, strlen(cfg.hostname)) < 0)
		log_warn("cannot set the hostname to %s: %s, ignoring", cfg.hostname,
			 strerror(errno));
	loopback_up();
}

static void reap_until(uint64_t deadline)
{
	while (clock_mono_ms() < deadline) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
			return;
		clock_sleep_ms(20);
	}
}

void init_power_off(bool reboot_after)
{
	log_info("%s: stopping all processes", reboot_after ? "rebooting" : "powering off");
	(void)kill(-1, SIGTERM);
	reap_until(clock_mono_ms() + 2000);
	(void)kill(-1, SIGKILL);
	reap_until(clock_mono_ms() + 1000);
	sync();
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
		log_warn("cannot remount / read-only: %s, ignoring", strerror(errno));
	sync();
	(void)reboot(reboot_after ? RB_AUTOBOOT : RB_POWER_OFF);
	for (;;)
		pause();
}
