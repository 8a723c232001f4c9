/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sys.c - INFO, SHUTDOWN and FIXUP (see sys.h).
 *
 * FIXUP applies every part it was given and reports the first failure:
 * the clock (clock_settime), entropy (RNDADDENTROPY on /dev/random, credited,
 * and a plain write to /dev/urandom) and the hostname. Each needs root; an
 * agent running as another user reports EPERM for them.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "conn.h"
#include "exec.h"
#include "init.h"
#include "log.h"
#include "loop.h"
#include "sys.h"

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

static int sys_add_entropy(const struct proto_bytes *e)
{
	_cleanup_free_ struct rand_pool_info *info = NULL;
	_cleanup_close_ int fd = -EBADF;
	_cleanup_close_ int ufd = -EBADF;
	int ret = 0;

	info = malloc(sizeof(*info) + e->len);
	if (!info)
		return -ENOMEM;
	info->entropy_count = (int)(e->len * 8);
	info->buf_size = (int)e->len;
	memcpy(info->buf, e->data, e->len);
	fd = open("/dev/random", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, RNDADDENTROPY, info) < 0)
		ret = -errno;
	ufd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (ufd < 0 || write(ufd, e->data, e->len) != (ssize_t)e->len)
		ret = ret ? ret : -errno;
	return ret;
}

void sys_on_fixup(struct conn *c, const struct proto_msg *m)
{
	const struct proto_fixup *f = &m->u.fixup;
	const char *what = NULL;
	const char *hint = agent.is_root ? "" : " (the agent does not run as root)";
	struct timespec ts;
	int err = 0, ret;

	if (f->time_ns) {
		ts.tv_sec = (time_t)(f->time_ns / 1000000000);
		ts.tv_nsec = (long)(f->time_ns % 1000000000);
		if (clock_settime(CLOCK_REALTIME, &ts) < 0 && !err) {
			err = errno;
			what = "cannot set the clock";
		}
	}
	if (f->entropy.len) {
		ret = sys_add_entropy(&f->entropy);
		if (ret < 0 && !err) {
			err = -ret;
			what = "cannot add entropy to the kernel pool";
		}
	}
	if (f->hostname) {
		if (sethostname(f->hostname, strlen(f->hostname)) < 0 && !err) {
			err = errno;
			what = "cannot set the hostname";
		}
	}
	if (err) {
		conn_send_error(c, 0, f->id, PROTO_E_IO, err, "%s: %s%s", what, strerror(err),
				err == EPERM ? hint : "");
		return;
	}
	log_info("conn=%u fixup applied:%s%s%s", c->id, f->time_ns ? " clock" : "",
		 f->entropy.len ? " entropy" : "", f->hostname ? " hostname" : "");
	conn_send_ok(c, f->id);
}
