/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sys.c - INFO, SHUTDOWN and FIXUP (see sys.h).
 *
 * FIXUP applies every part it was given, in this order, and reports the
 * first failure: the clock (clock_settime), entropy (RNDADDENTROPY on
 * /dev/random, credited, a plain write to /dev/urandom, then RNDRESEEDCRNG),
 * the root disk of a zygote (init_switch_root(), which reports instead of
 * dying) and the hostname. Each needs root; an agent running as another user
 * reports EPERM for them. A request that cannot be right (a root that is
 * already mounted, a relative device path) is refused with bad_request
 * before anything is applied.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/random.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "guest/agent.h"
#include "base/cleanup.h"
#include "guest/conn.h"
#include "guest/exec.h"
#include "guest/init.h"
#include "base/log.h"
#include "guest/loop.h"
#include "guest/sys.h"

#define SYS_ROOT_WAIT_MS 1000 /* FIXUP root: the device exists in a zygote already */

static uint64_t sys_mem_available(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long kb;
	char line[256];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			return kb * 1024;
	return 0;
}

void sys_on_info(struct conn *c, const struct proto_msg *m)
{
	struct proto_msg r = {.type = PROTO_INFO_RESULT};
	struct proto_info_result *in = &r.u.info;
	char host[HOST_NAME_MAX + 1] = "";
	char kernel[sizeof(((struct utsname *)0)->release) * 2 + 2] = "";
	struct utsname u;
	struct timespec ts;
	struct sysinfo si;
	long ncpu;
	int i;

	in->id = m->u.idonly.id;
	in->version = "sbx-agent " SBX_AGENT_VERSION;
	(void)gethostname(host, sizeof(host) - 1);
	in->hostname = host;
	if (uname(&u) == 0)
		snprintf(kernel, sizeof(kernel), "%s %s", u.release, u.version);
	in->kernel = kernel;
	if (clock_gettime(CLOCK_BOOTTIME, &ts) == 0)
		in->uptime_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (sysinfo(&si) == 0) {
		for (i = 0; i < 3; i++)
			in->load[i] = (double)si.loads[i] / (double)(1 << SI_LOAD_SHIFT);
		in->mem_total = (uint64_t)si.totalram * si.mem_unit;
		in->mem_available = sys_mem_available();
		if (!in->mem_available)
			in->mem_available = (uint64_t)si.freeram * si.mem_unit;
	}
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	in->ncpus = ncpu > 0 ? (uint32_t)ncpu : 1;
	in->commands = exec_count_running();
	(void)conn_send(c, &r);
}

void sys_on_shutdown(struct conn *c, const struct proto_msg *m)
{
	const struct proto_shutdown *s = &m->u.shutdown;

	log_info("conn=%u asked to %s", c->id, s->reboot ? "reboot" : "shut down");
	conn_send_ok(c, s->id);
	if (agent.mode != AGENT_MODE_PID1) {
		loop_quit(0);
		return;
	}
	conn_close_all();
	init_power_off(s->reboot);
}

/* The first failure of a FIXUP: "<what>: <strerror><hint>". */
struct fixup_err {
	int err;
	char msg[600];
};

__attribute__((format(printf, 3, 4))) static void fixup_fail(struct fixup_err *fe, int err,
							     const char *fmt, ...)
{
	const char *hint =
	    err == EPERM && !agent.is_root ? " (the agent does not run as root)" : "";
	va_list ap;
	int n;

	if (fe->err)
		return;
	fe->err = err;
	va_start(ap, fmt);
	n = vsnprintf(fe->msg, sizeof(fe->msg), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(fe->msg))
		snprintf(fe->msg + n, sizeof(fe->msg) - (size_t)n, ": %s%s", strerror(err), hint);
}

/* Credit the host's bytes to the input pool, mix them in once more through
 * /dev/urandom, then reseed the CRNG at once: the kernel would otherwise go
 * on drawing from the key it had when the snapshot was taken until its next
 * scheduled reseed, and two forks of one snapshot would read the same
 * /dev/urandom bytes until then. */
static void sys_add_entropy(const struct proto_bytes *e, struct fixup_err *fe)
{
	_cleanup_free_ struct rand_pool_info *info = NULL;
	_cleanup_close_ int fd = -EBADF;
	_cleanup_close_ int ufd = -EBADF;
	ssize_t n;

	info = malloc(sizeof(*info) + e->len);
	if (!info) {
		fixup_fail(fe, ENOMEM, "cannot add entropy to the kernel pool");
		return;
	}
	info->entropy_count = (int)(e->len * 8);
	info->buf_size = (int)e->len;
	memcpy(info->buf, e->data, e->len);
	fd = open("/dev/random", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, RNDADDENTROPY, info) < 0)
		fixup_fail(fe, errno, "cannot add entropy to the kernel pool");
	ufd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (ufd < 0)
		fixup_fail(fe, errno, "cannot open /dev/urandom");
	else if ((n = write(ufd, e->data, e->len)) != (ssize_t)e->len)
		fixup_fail(fe, n < 0 ? errno : EIO, "cannot write to /dev/urandom");
	if (fd >= 0 && ioctl(fd, RNDRESEEDCRNG) < 0)
		fixup_fail(fe, errno, "cannot reseed the kernel random generator");
}

/* Refused before anything is applied: answered bad_request. */
static bool fixup_check(struct conn *c, const struct proto_fixup *f)
{
	if (f->rootfstype && !f->root) {
		conn_send_error(c, 0, f->id, PROTO_E_BAD_REQUEST, EINVAL,
				"rootfstype \"%s\" was given without root", f->rootfstype);
		return false;
	}
	if (!f->root)
		return true;
	if (f->root[0] != '/') {
		conn_send_error(c, 0, f->id, PROTO_E_BAD_REQUEST, EINVAL,
				"root must be the absolute path of a block device, not \"%s\"",
				f->root);
		return false;
	}
	if (agent.mode != AGENT_MODE_PID1) {
		conn_send_error(c, 0, f->id, PROTO_E_BAD_REQUEST, EBUSY,
				"the root disk is already mounted (this agent is not PID 1 of a "
				"guest)");
		return false;
	}
	if (init_root_switched()) {
		conn_send_error(c, 0, f->id, PROTO_E_BAD_REQUEST, EBUSY,
				"the root disk is already mounted");
		return false;
	}
	return true;
}

void sys_on_fixup(struct conn *c, const struct proto_msg *m)
{
	const struct proto_fixup *f = &m->u.fixup;
	const char *fstype = f->rootfstype ? f->rootfstype : "ext4";
	struct fixup_err fe = {0};
	char msg[512];
	struct timespec ts;
	int ret;

	if (!fixup_check(c, f))
		return;
	if (f->time_ns) {
		ts.tv_sec = (time_t)(f->time_ns / 1000000000);
		ts.tv_nsec = (long)(f->time_ns % 1000000000);
		if (clock_settime(CLOCK_REALTIME, &ts) < 0)
			fixup_fail(&fe, errno, "cannot set the clock");
	}
	if (f->entropy.len)
		sys_add_entropy(&f->entropy, &fe);
	if (f->root) {
		ret = init_switch_root(f->root, fstype, SYS_ROOT_WAIT_MS, true, msg, sizeof(msg));
		if (ret < 0) {
			log_error("conn=%u fixup: %s", c->id, msg);
			if (!fe.err) {
				fe.err = -ret;
				snprintf(fe.msg, sizeof(fe.msg), "%s", msg);
			}
		} else {
			log_info("conn=%u switched to the root disk %s (%s)", c->id, f->root,
				 fstype);
		}
	}
	if (f->hostname && sethostname(f->hostname, strlen(f->hostname)) < 0)
		fixup_fail(&fe, errno, "cannot set the hostname");
	if (fe.err) {
		conn_send_error(c, 0, f->id, PROTO_E_IO, fe.err, "%s", fe.msg);
		return;
	}
	log_info("conn=%u fixup applied:%s%s%s%s", c->id, f->time_ns ? " clock" : "",
		 f->entropy.len ? " entropy" : "", f->root ? " root" : "",
		 f->hostname ? " hostname" : "");
	conn_send_ok(c, f->id);
}
