/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbxd_vm.c - the real VM backend of the sandbox manager: the VM driver
 * (vm.h) for VMs and the agent client (agent_client.h) to see that a
 * guest answers. Every call is blocking and may run on any worker thread
 * (the VM driver keeps its error messages per thread).
 *
 * Readiness is "the agent answered HELLO and a PING" over the VM's agent
 * channel. The connection is closed again right away: a virtio-serial
 * channel has one host side at a time, and it belongs to the data plane.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent_client.h"
#include "cleanup.h"
#include "sbxd_vm.h"
#include "vm.h"

static void vm_freep(vm **v)
{
	vm_free(*v);
}
#define _cleanup_vm_ __attribute__((cleanup(vm_freep)))

static int vb_start(void *ctx, const struct sbxd_vm_spec *spec, char *err, size_t errlen)
{
	vm_driver *d = ctx;
	_cleanup_vm_ vm *v = NULL;
	struct vm_config cfg = {
	    .name = spec->name,
	    .image_dir = spec->image_dir,
	    .vcpus = spec->vcpus,
	    .memory_mib = spec->mem_mib,
	    .disk_bytes = spec->disk_bytes,
	    .hostname = spec->hostname,
	};
	int r = vm_start(d, &cfg, &v);

	if (r < 0)
		snprintf(err, errlen, "%s", vm_driver_last_error(d));
	return r;
}

struct wait_ctx {
	vm_driver *d;
	vm *v;
	bool (*cancelled)(void *);
	void *cud;
	unsigned ticks;
};

static int wait_check(void *ud)
{
	struct wait_ctx *w = ud;

	if (w->cancelled && w->cancelled(w->cud))
		return -ECANCELED;
	/* Asking libvirt every ~1 s (checks come every ~100 ms) is enough to
	 * fail fast when QEMU died instead of waiting out the timeout. */
	if (++w->ticks % 10 == 0 && vm_is_running(w->v) == 0)
		return -ECHILD;
	return 0;
}

/* The last console line(s), on one line, for a failure message. */
static void console_hint(vm *v, char *buf, size_t len)
{
	char tail[512];
	size_t n = 0;

	buf[0] = '\0';
	if (vm_console_tail(v, tail, sizeof(tail)) < 0 || !tail[0])
		return;
	for (char *p = tail; *p && n + 1 < len; p++) {
		char c = *p == '\n' || *p == '\r' ? ' ' : *p;

		if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e)
			c = '?';
		if (c == ' ' && n > 0 && buf[n - 1] == ' ')
			continue;
		buf[n++] = c;
	}
	buf[n] = '\0';
}

static int vb_wait_agent(void *ctx, const char *vm_name, int timeout_ms, bool (*cancelled)(void *),
			 void *cud, char *err, size_t errlen)
{
	vm_driver *d = ctx;
	_cleanup_vm_ vm *v = NULL;
	char addr[PATH_MAX + 8], hint[200];
	struct wait_ctx w = {.d = d, .cancelled = cancelled, .cud = cud};
	struct agent_connect_opts o = {.timeout_ms = timeout_ms, .check = wait_check, .ud = &w};
	agent_client *c = NULL;
	uint64_t rtt;
	int r;

	r = vm_lookup(d, vm_name, &v);
	if (r < 0) {
		snprintf(err, errlen, "%s", vm_driver_last_error(d));
		return r;
	}
	w.v = v;
	snprintf(addr, sizeof(addr), "unix:%s", vm_agent_socket(v));
	r = agent_client_connect_opts(addr, &o, &c);
	if (r == -ECANCELED)
		return r;
	if (r == 0) {
		r = agent_ping(c, &rtt);
		if (r < 0)
			snprintf(err, errlen, "the guest agent did not answer a ping: %s",
				 agent_client_last_error(c));
		agent_client_free(c);
		return r;
	}
	console_hint(v, hint, sizeof(hint));
	if (r == -ECHILD)
		snprintf(err, errlen, "the VM stopped while booting%s%s",
			 hint[0] ? "; console: " : "", hint);
	else if (r == -ETIMEDOUT)
		snprintf(err, errlen, "the guest agent did not answer within %d s%s%s",
			 timeout_ms / 1000, hint[0] ? "; console: " : "", hint);
	else
		snprintf(err, errlen, "cannot reach the guest agent: %s%s%s",
			 agent_connect_last_error(), hint[0] ? "; console: " : "", hint);
	return r;
}

static int vb_destroy(void *ctx, const char *vm_name, char *err, size_t errlen)
{
	vm_driver *d = ctx;
	int r = vm_destroy_by_name(d, vm_name);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		snprintf(err, errlen, "%s", vm_driver_last_error(d));
	return r;
}

static int vb_list(void *ctx, char ***ret)
{
	return vm_list(ctx, ret);
}

static void vb_free_list(char **names)
{
	vm_strv_free(names);
}

static int vb_is_running(void *ctx, const char *vm_name)
{
	_cleanup_vm_ vm *v = NULL;
	int r = vm_lookup(ctx, vm_name, &v);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	return vm_is_running(v);
}

static int vb_agent_address(void *ctx, const char *vm_name, char *buf, size_t len)
{
	_cleanup_vm_ vm *v = NULL;
	int r = vm_lookup(ctx, vm_name, &v);

	if (r < 0)
		return r;
	r = snprintf(buf, len, "unix:%s", vm_agent_socket(v));
	return r < 0 || (size_t)r >= len ? -ENAMETOOLONG : 0;
}

const struct sbxd_vm_ops sbxd_vm_libvirt_ops = {
    .start = vb_start,
    .wait_agent = vb_wait_agent,
    .destroy = vb_destroy,
    .list = vb_list,
    .free_list = vb_free_list,
    .is_running = vb_is_running,
    .agent_address = vb_agent_address,
};

int sbxd_image_check(const char *dir, uint64_t *ret_disk_bytes, char *err, size_t errlen)
{
	static const char *const parts[] = {"vmlinuz", "initrd.img", "rootfs.ext4"};
	char path[PATH_MAX];
	struct stat st;

	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, parts[i]);
		if (stat(path, &st) < 0) {
			int r = -errno;

			snprintf(err, errlen,
				 "the image directory %s has no %s (%s): build the default image "
				 "with 'make image' or give another one with --image",
				 dir, parts[i], strerror(errno));
			return r;
		}
	}
	*ret_disk_bytes = (uint64_t)st.st_size;
	return 0;
}
