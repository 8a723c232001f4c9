/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm_snap.c - what snapshots need from a running VM: pause and resume,
 * freezing the root disk into a read-only layer, QEMU migration streams in
 * and out through a file descriptor, and the vm.info file that records
 * what a VM was started with.
 *
 * libvirt has no element or API for two of these: the x-ignore-shared
 * migration capability (QEMU 7.2 sets it over the monitor only) and a
 * migration to or from a plain file descriptor of ours. Both go through
 * libvirt's QEMU monitor passthrough (virDomainQemuMonitorCommandWithFiles,
 * which also carries the fd to QEMU). QEMU runs under libvirt's seccomp
 * sandbox with spawn=deny, so an exec: migration URI is not an option; fd:
 * is.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "base/clock.h"
#include "base/log.h"
#include "host/vm/vm_int.h"

#define MIGRATE_TIMEOUT_MS (10 * 60 * 1000)
#define QEMU_IMG_TIMEOUT_MS 60000
#define VM_INFO_MAX (64 * 1024)

int vm_qmp(vm *v, const char *cmd, int fd, char **ret)
{
	_cleanup_free_ char *reply = NULL;
	json_auto_t *j = NULL;
	json_t *err, *rv;
	unsigned int nout = 0;
	int *outfds = NULL;
	int r;

	if (ret)
		*ret = NULL;
	r = virDomainQemuMonitorCommandWithFiles(v->dom, cmd, fd >= 0 ? 1 : 0, fd >= 0 ? &fd : NULL,
						 &nout, &outfds, &reply, 0);
	for (unsigned int i = 0; i < nout; i++)
		close(outfds[i]);
	free(outfds);
	if (r < 0)
		return err_set(-EIO, "VM %s: QEMU monitor: libvirt: %s", v->name, vm_virt_error());
	j = json_loads(reply ? reply : "", 0, NULL);
	if (!json_is_object(j))
		return err_set(-EBADMSG, "VM %s: QEMU monitor: unreadable reply to %s", v->name,
			       cmd);
	err = json_object_get(j, "error");
	if (err) {
		const char *desc = json_string_value(json_object_get(err, "desc"));
		return err_set(-EIO, "VM %s: QEMU refused %s: %s", v->name, cmd,
			       desc ? desc : "no reason given");
	}
	rv = json_object_get(j, "return");
	if (ret && rv) {
		*ret = json_dumps(rv, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!*ret)
			return -ENOMEM;
	}
	return 0;
}

static int set_ignore_shared(vm *v, bool on)
{
	_cleanup_free_ char *cmd =
	    vmu_printf("{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":"
		       "[{\"capability\":\"x-ignore-shared\",\"state\":%s}]}}",
		       on ? "true" : "false");

	return cmd ? vm_qmp(v, cmd, -1, NULL) : -ENOMEM;
}

/* Poll query-migrate until the migration reaches status want ("completed",
 * or "pre-switchover" for a live capture): 0, or -EIO when it failed or was
 * cancelled, with QEMU's reason. */
static int wait_migration_status(vm *v, const char *what, const char *want)
{
	uint64_t deadline = clock_mono_ms() + MIGRATE_TIMEOUT_MS;
	unsigned delay = 2;

	for (;;) {
		_cleanup_free_ char *rv = NULL;
		json_auto_t *j = NULL;
		const char *status;
		int r = vm_qmp(v, "{\"execute\":\"query-migrate\"}", -1, &rv);

		if (r < 0)
			return r;
		j = json_loads(rv ? rv : "{}", 0, NULL);
		status = json_string_value(json_object_get(j, "status"));
		if (status && !strcmp(status, want))
			return 0;
		if (status && (!strcmp(status, "failed") || !strcmp(status, "cancelled"))) {
			const char *why = json_string_value(json_object_get(j, "error-desc"));
			return err_set(-EIO, "VM %s: %s %s: %s", v->name, what, status,
				       why ? why : "QEMU gave no reason (see its log)");
		}
		if (vm_is_running(v) != 1)
			return err_set(-ECHILD, "VM %s: QEMU exited during the %s", v->name, what);
		if (clock_mono_ms() > deadline)
			return err_set(-ETIMEDOUT, "VM %s: %s still %s after %d s", v->name, what,
				       status ? status : "not started", MIGRATE_TIMEOUT_MS / 1000);
		clock_sleep_ms(delay);
		if (delay < 20)
			delay *= 2;
	}
}

static int wait_migration(vm *v, bool incoming)
{
	return wait_migration_status(v, incoming ? "incoming migration" : "outgoing migration",
				     "completed");
}

int vm_migrate_fd(vm *v, bool incoming, int fd, bool ignore_shared)
{
	int r;

	r = set_ignore_shared(v, ignore_shared);
	if (r < 0)
		return r;
	r = vm_qmp(v, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"sbxmig\"}}", fd, NULL);
	if (r < 0)
		return r;
	r = vm_qmp(v,
		   incoming
		       ? "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"fd:sbxmig\"}}"
		       : "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"fd:sbxmig\"}}",
		   -1, NULL);
	if (r < 0)
		return r;
	return wait_migration(v, incoming);
}

static int set_capability(vm *v, const char *cap, bool on)
{
	_cleanup_free_ char *cmd =
	    vmu_printf("{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":"
		       "[{\"capability\":\"%s\",\"state\":%s}]}}",
		       cap, on ? "true" : "false");

	return cmd ? vm_qmp(v, cmd, -1, NULL) : -ENOMEM;
}

int vm_capture_live(vm *v, const char *layer_path, int fd, long long *ret_paused_ms)
{
	long long t_stop = 0;
	int r, r2;

	r = set_capability(v, "x-ignore-shared", false);
	if (r == 0)
		r = set_capability(v, "pause-before-switchover", true);
	if (r == 0)
		r = vm_qmp(v, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"sbxmig\"}}", fd,
			   NULL);
	if (r == 0)
		r = vm_qmp(v, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"fd:sbxmig\"}}", -1,
			   NULL);
	if (r == 0)
		r = wait_migration_status(v, "live capture", "pre-switchover");
	t_stop = clock_mono_ms();
	if (r == 0)
		r = vm_freeze_disk(v, layer_path);
	if (r == 0)
		r = vm_qmp(v,
			   "{\"execute\":\"migrate-continue\",\"arguments\":{\"state\":"
			   "\"pre-switchover\"}}",
			   -1, NULL);
	else
		(void)vm_qmp(v, "{\"execute\":\"migrate_cancel\"}", -1, NULL);
	if (r == 0)
		r = wait_migration(v, false);
	r2 = set_capability(v, "pause-before-switchover", false);
	if (r == 0)
		r = r2;
	/* the guest stopped at pre-switchover (or never, on an early error) */
	if (vm_is_running(v) == 1) {
		int state, reason;

		if (virDomainGetState(v->dom, &state, &reason, 0) == 0 &&
		    state == VIR_DOMAIN_PAUSED)
			r2 = vm_resume(v);
		else
			r2 = 0;
		if (r == 0)
			r = r2;
	}
	if (ret_paused_ms)
		*ret_paused_ms = t_stop ? clock_mono_ms() - t_stop : 0;
	return r;
}

int vm_pause(vm *v)
{
	if (virDomainSuspend(v->dom) < 0)
		return err_set(-EIO, "cannot pause VM %s: libvirt: %s", v->name, vm_virt_error());
	return 0;
}

int vm_resume(vm *v)
{
	if (virDomainResume(v->dom) < 0)
		return err_set(-EIO, "cannot resume VM %s: libvirt: %s", v->name, vm_virt_error());
	return 0;
}

/* Whether the VM has an outgoing migration under way (QEMU's status of
 * it is none of: absent, "completed", "failed", "cancelled"). */
static bool migration_under_way(vm *v)
{
	_cleanup_free_ char *rv = NULL;
	json_auto_t *j = NULL;
	const char *status;

	if (vm_qmp(v, "{\"execute\":\"query-migrate\"}", -1, &rv) < 0)
		return false;
	j = json_loads(rv ? rv : "{}", 0, NULL);
	status = json_string_value(json_object_get(j, "status"));
	return status && strcmp(status, "completed") && strcmp(status, "failed") &&
	       strcmp(status, "cancelled");
}

int vm_recover_paused(vm *v)
{
	bool migrating = migration_under_way(v);
	int state, reason;

	/* A capture's migration may still copy memory (it would then stop the
	 * guest at pre-switchover for good), wait there, or have completed
	 * (the source then stays paused): end it, then run on. */
	if (migrating) {
		(void)vm_qmp(v, "{\"execute\":\"migrate_cancel\"}", -1, NULL);
		for (int i = 0; i < 250 && migration_under_way(v); i++)
			clock_sleep_ms(20);
	}
	if (virDomainGetState(v->dom, &state, &reason, 0) < 0)
		return err_set(-EIO, "cannot read the state of VM %s: libvirt: %s", v->name,
			       vm_virt_error());
	if (state != VIR_DOMAIN_PAUSED && !migrating)
		return 0;
	(void)set_capability(v, "pause-before-switchover", false);
	if (state == VIR_DOMAIN_PAUSED && virDomainResume(v->dom) < 0)
		return err_set(-EIO, "VM %s was left paused and cannot be resumed: libvirt: %s",
			       v->name, vm_virt_error());
	return 1;
}

int vm_save_state(vm *v, int fd, bool ignore_shared)
{
	int state, reason;

	if (virDomainGetState(v->dom, &state, &reason, 0) < 0)
		return err_set(-EIO, "cannot save VM %s: libvirt: %s", v->name, vm_virt_error());
	if (state != VIR_DOMAIN_PAUSED)
		return err_set(-EBUSY, "cannot save VM %s: it is not paused", v->name);
	return vm_migrate_fd(v, false, fd, ignore_shared);
}

int vm_disk_resize(vm *v, uint64_t bytes)
{
	if (virDomainBlockResize(v->dom, "vda", bytes, VIR_DOMAIN_BLOCK_RESIZE_BYTES) < 0)
		return err_set(-EIO, "cannot resize the disk of VM %s: libvirt: %s", v->name,
			       vm_virt_error());
	return 0;
}

/* -- vm.info --------------------------------------------------------------- */

void vm_info_release(struct vm_info *i)
{
	if (!i)
		return;
	free(i->image_dir);
	free(i->ram_file);
	if (i->layers)
		for (char **p = i->layers; *p; p++)
			free(*p);
	free(i->layers);
	memset(i, 0, sizeof(*i));
}

/* The file is untrusted-ish (a guest cannot write it, a crash or a person
 * can damage it): every field is checked for its type and range, and a
 * damaged file is an error that names the field, never a crash or a
 * silent zero. */
#define INFO_VERSION 1
#define INFO_MAX_LAYERS 1024 /* a bound on a damaged file; vm_start() allows fewer */

static bool info_path_ok(const char *p)
{
	size_t n = strlen(p);

	if (p[0] != '/' || n >= PATH_MAX)
		return false;
	for (; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

/* The checks both formats share, once the struct is filled. */
static int info_check(const char *what, const struct vm_info *i, const char *disk)
{
	if (!i->image_dir)
		return err_set(-EBADMSG, "%s: no image", what);
	if (!info_path_ok(i->image_dir))
		return err_set(-EBADMSG,
			       "%s: image: not an absolute path without control characters", what);
	if (i->vcpus < 1 || i->vcpus > VM_MAX_VCPUS)
		return err_set(-EBADMSG, "%s: vcpus: %u is not in 1..%d", what, i->vcpus,
			       VM_MAX_VCPUS);
	if (i->memory_mib < VM_MIN_MEMORY_MIB || i->memory_mib > VM_MAX_MEMORY_MIB)
		return err_set(-EBADMSG, "%s: memory_mib: %u is not in %d..%d", what, i->memory_mib,
			       VM_MIN_MEMORY_MIB, VM_MAX_MEMORY_MIB);
	if (i->disk_bytes < 1 || i->disk_bytes > INT64_MAX)
		return err_set(-EBADMSG, "%s: disk_bytes: %llu is out of range", what,
			       (unsigned long long)i->disk_bytes);
	if (disk && !info_path_ok(disk))
		return err_set(-EBADMSG,
			       "%s: disk: not an absolute path without control characters", what);
	if (i->ram_file && !info_path_ok(i->ram_file))
		return err_set(-EBADMSG,
			       "%s: ram_file: not an absolute path without control characters",
			       what);
	for (size_t n = 0; i->layers[n]; n++)
		if (!info_path_ok(i->layers[n]))
			return err_set(-EBADMSG,
				       "%s: layer %zu: not an absolute path without control "
				       "characters",
				       what, n + 1);
	return 0;
}

static int layers_add(struct vm_info *i, size_t *n, const char *val, size_t len)
{
	char **nl;

	nl = realloc(i->layers, (*n + 2) * sizeof(char *));
	if (!nl)
		return -ENOMEM;
	i->layers = nl;
	i->layers[*n + 1] = NULL;
	i->layers[*n] = strndup(val, len);
	if (!i->layers[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int parse_uint(const char *what, const char *key, const char *val, unsigned long long max,
		      unsigned long long *ret)
{
	char *end;

	errno = 0;
	if (*val < '0' || *val > '9')
		goto bad;
	*ret = strtoull(val, &end, 10);
	if (errno || *end || *ret > max)
		goto bad;
	return 0;
bad:
	return err_set(-EBADMSG, "%s: %s: \"%.32s\" is not a number in 0..%llu", what, key, val,
		       max);
}

/* The line format of sbx before vm.info became JSON: "key value" lines
 * (image, vcpus, memory_mib, disk_bytes, disk, ram_file, ram_shared, layer
 * repeated newest first). Still read, because an installation upgraded in
 * place has VMs that were started with it; never written. */
static int info_parse_lines(const char *what, char *text, struct vm_info *i, char **disk)
{
	size_t n = 0;
	char *line, *save = NULL;
	int r;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *val = strchr(line, ' ');
		unsigned long long u;
		char **slot = NULL;

		if (!val)
			return err_set(-EBADMSG, "%s: line \"%.32s\" is not \"key value\"", what,
				       line);
		*val++ = '\0';
		if (!strcmp(line, "image"))
			slot = &i->image_dir;
		else if (!strcmp(line, "ram_file"))
			slot = &i->ram_file;
		else if (!strcmp(line, "disk"))
			slot = disk;
		else if (!strcmp(line, "vcpus")) {
			if ((r = parse_uint(what, line, val, VM_MAX_VCPUS, &u)) < 0)
				return r;
			i->vcpus = (unsigned)u;
		} else if (!strcmp(line, "memory_mib")) {
			if ((r = parse_uint(what, line, val, VM_MAX_MEMORY_MIB, &u)) < 0)
				return r;
			i->memory_mib = (unsigned)u;
		} else if (!strcmp(line, "disk_bytes")) {
			if ((r = parse_uint(what, line, val, INT64_MAX, &u)) < 0)
				return r;
			i->disk_bytes = u;
		} else if (!strcmp(line, "ram_shared")) {
			if (strcmp(val, "0") && strcmp(val, "1"))
				return err_set(-EBADMSG, "%s: ram_shared: not 0 or 1", what);
			i->ram_shared = !strcmp(val, "1");
		} else if (!strcmp(line, "layer")) {
			if (n >= INFO_MAX_LAYERS)
				return err_set(-EBADMSG, "%s: more than %d layers", what,
					       INFO_MAX_LAYERS);
			if ((r = layers_add(i, &n, val, strlen(val))) < 0)
				return r;
		} /* other keys: ignored, as they always were */
		if (slot) {
			free(*slot);
			*slot = strdup(val);
			if (!*slot)
				return -ENOMEM;
		}
	}
	return 0;
}

/* A string member: required or may be absent or null (then *ret stays
 * NULL). */
static int json_path(const char *what, json_t *o, const char *key, bool required, char **ret)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v)) {
		if (required)
			return err_set(-EBADMSG, "%s: no %s", what, key);
		return 0;
	}
	if (!json_is_string(v))
		return err_set(-EBADMSG, "%s: %s: not a string", what, key);
	*ret = strndup(json_string_value(v), json_string_length(v));
	return *ret ? 0 : -ENOMEM;
}

static int json_uint(const char *what, json_t *o, const char *key, long long min, long long max,
		     long long *ret)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return err_set(-EBADMSG, "%s: no %s", what, key);
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return err_set(-EBADMSG, "%s: %s: not an integer in %lld..%lld", what, key, min,
			       max);
	*ret = json_integer_value(v);
	return 0;
}

/* {"version": 1, "image": PATH, "vcpus": N, "memory_mib": N, "disk_bytes": N,
 *  "disk": PATH|null, "ram_file": PATH|null, "ram_shared": BOOL,
 *  "layers": [PATH, ...] (newest first)}; other members are ignored. */
static int info_parse_json(const char *what, const char *text, size_t len, struct vm_info *i,
			   char **disk)
{
	json_auto_t *j = NULL;
	json_error_t jerr;
	json_t *v, *layers;
	long long x;
	size_t n = 0, k;
	int r;

	j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return err_set(-EBADMSG, "%s: not valid JSON: %s (line %d)", what, jerr.text,
			       jerr.line);
	if (!json_is_object(j))
		return err_set(-EBADMSG, "%s: not a JSON object", what);
	if ((r = json_uint(what, j, "version", 0, LLONG_MAX, &x)) < 0)
		return r;
	if (x != INFO_VERSION)
		return err_set(-EPROTONOSUPPORT, "%s: version %lld (this sbx reads version %d)",
			       what, x, INFO_VERSION);
	if ((r = json_path(what, j, "image", true, &i->image_dir)) < 0 ||
	    (r = json_path(what, j, "ram_file", false, &i->ram_file)) < 0 ||
	    (r = json_path(what, j, "disk", false, disk)) < 0)
		return r;
	if ((r = json_uint(what, j, "vcpus", 1, VM_MAX_VCPUS, &x)) < 0)
		return r;
	i->vcpus = (unsigned)x;
	if ((r = json_uint(what, j, "memory_mib", VM_MIN_MEMORY_MIB, VM_MAX_MEMORY_MIB, &x)) < 0)
		return r;
	i->memory_mib = (unsigned)x;
	if ((r = json_uint(what, j, "disk_bytes", 1, INT64_MAX, &x)) < 0)
		return r;
	i->disk_bytes = (uint64_t)x;
	v = json_object_get(j, "ram_shared");
	if (v && !json_is_boolean(v))
		return err_set(-EBADMSG, "%s: ram_shared: not true or false", what);
	i->ram_shared = json_is_true(v);
	layers = json_object_get(j, "layers");
	if (!json_is_array(layers))
		return err_set(-EBADMSG, "%s: layers: %s", what,
			       layers ? "not an array" : "missing");
	if (json_array_size(layers) > INFO_MAX_LAYERS)
		return err_set(-EBADMSG, "%s: more than %d layers", what, INFO_MAX_LAYERS);
	json_array_foreach(layers, k, v)
	{
		if (!json_is_string(v))
			return err_set(-EBADMSG, "%s: layer %zu: not a string", what, k + 1);
		if ((r = layers_add(i, &n, json_string_value(v), json_string_length(v))) < 0)
			return r;
	}
	return 0;
}

int vm_info_parse(const char *what, const char *text, size_t len, struct vm_info *ret,
		  char **ret_disk)
{
	_cleanup_free_ char *copy = NULL, *disk = NULL;
	size_t skip = 0;
	int r;

	memset(ret, 0, sizeof(*ret));
	if (ret_disk)
		*ret_disk = NULL;
	if (memchr(text, '\0', len))
		return err_set(-EBADMSG, "%s: a NUL byte in a text file", what);
	ret->layers = calloc(1, sizeof(char *));
	if (!ret->layers)
		return -ENOMEM;
	while (skip < len && strchr(" \t\r\n", text[skip]))
		skip++;
	if (skip < len && text[skip] == '{') {
		r = info_parse_json(what, text, len, ret, &disk);
	} else {
		copy = strndup(text, len);
		r = copy ? info_parse_lines(what, copy, ret, &disk) : -ENOMEM;
	}
	if (r == 0)
		r = info_check(what, ret, disk);
	if (r < 0) {
		vm_info_release(ret);
		return r == -ENOMEM ? err_set(r, "out of memory") : r;
	}
	if (ret_disk)
		*ret_disk = TAKE_PTR(disk);
	return 0;
}

static int info_read(const char *path, struct vm_info *ret, char **ret_disk)
{
	_cleanup_free_ char *text = NULL;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = vmu_read_file(path, VM_INFO_MAX + 1, &text);
	if (r < 0)
		return err_set(r, "cannot read %s: %s", path, strerror(-r));
	if (r > VM_INFO_MAX)
		return err_set(-EFBIG, "%s: more than %d bytes", path, VM_INFO_MAX);
	return vm_info_parse(path, text, (size_t)r, ret, ret_disk);
}

int vm_info_read(const char *path, struct vm_info *ret)
{
	return info_read(path, ret, NULL);
}

char *vm_info_disk(const char *dir)
{
	_cleanup_free_ char *path = vmu_printf("%s/vm.info", dir);
	struct vm_info i;
	char *disk = NULL;

	if (!path || info_read(path, &i, &disk) < 0)
		return NULL;
	vm_info_release(&i);
	return disk;
}

int vm_info_write(const char *dir, const struct vm_info *i, const char *disk)
{
	_cleanup_free_ char *path = vmu_printf("%s/vm.info", dir), *text = NULL;
	json_auto_t *j = json_object();
	json_auto_t *layers = json_array();
	int r = 0;

	if (!path || !j || !layers)
		return -ENOMEM;
	for (char **p = i->layers; r == 0 && p && *p; p++)
		r = json_array_append_new(layers, json_string(*p));
	if (r == 0)
		r = json_object_set_new(j, "version", json_integer(INFO_VERSION)) |
		    json_object_set_new(j, "image", json_string(i->image_dir)) |
		    json_object_set_new(j, "vcpus", json_integer(i->vcpus)) |
		    json_object_set_new(j, "memory_mib", json_integer(i->memory_mib)) |
		    json_object_set_new(j, "disk_bytes", json_integer((json_int_t)i->disk_bytes)) |
		    json_object_set_new(j, "disk", disk ? json_string(disk) : json_null()) |
		    json_object_set_new(j, "ram_file",
					i->ram_file ? json_string(i->ram_file) : json_null()) |
		    json_object_set_new(j, "ram_shared", json_boolean(i->ram_shared)) |
		    json_object_set(j, "layers", layers);
	/* json_string() refuses what is not UTF-8: paths of ours are */
	if (r)
		return -EINVAL;
	text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		return -ENOMEM;
	{
		_cleanup_free_ char *line = vmu_printf("%s\n", text);

		if (!line)
			return -ENOMEM;
		return vmu_write_file_atomic(path, line, 0644);
	}
}

int vm_get_info(vm *v, struct vm_info *ret)
{
	_cleanup_free_ char *path = vmu_printf("%s/vm.info", v->dir);
	int r;

	if (!path)
		return -ENOMEM;
	r = vm_info_read(path, ret);
	if (r < 0)
		return err_prefix(r, "VM %s", v->name);
	return 0;
}

/* -- freezing the disk ----------------------------------------------------- */

static int new_overlay(vm *v, const char *layer, const char *overlay, uint64_t bytes)
{
	_cleanup_free_ char *size = vmu_printf("%llu", (unsigned long long)bytes);
	/* -u: do not open the backing file (QEMU has it open for writing). */
	char *argv[] = {"qemu-img",	 "create", "-q",    "-u", "-f",
			"qcow2",	 "-F",	   "qcow2", "-b", (char *)layer,
			(char *)overlay, size,	   NULL};
	char out[1024]; /* qemu-img's stderr */
	int r;

	if (!size)
		return -ENOMEM;
	r = vmu_spawn(argv, QEMU_IMG_TIMEOUT_MS, out, sizeof(out));
	if (r != 0)
		return err_set(r < 0 ? r : -EIO, "VM %s: cannot create overlay %s: %s", v->name,
			       overlay, r < 0 ? strerror(-r) : out);
	return 0;
}

/* Switch QEMU to the new overlay, atomically (libvirt's external disk-only
 * snapshot; QEMU flushes the old top, which becomes a read-only backing
 * node). */
static int switch_overlay(vm *v, const char *overlay)
{
	_cleanup_free_ char *xml = vm_xml_disk_snapshot(overlay);
	virDomainSnapshotPtr snap;

	if (!xml)
		return -ENOMEM;
	snap = virDomainSnapshotCreateXML(
	    v->dom, xml,
	    VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY | VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA |
		VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT | VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC);
	if (!snap)
		return err_set(-EIO, "VM %s: cannot switch to a new disk overlay: libvirt: %s",
			       v->name, vm_virt_error());
	virDomainSnapshotFree(snap);
	return 0;
}

int vm_freeze_disk(vm *v, const char *layer_path)
{
	_cleanup_free_ char *old_disk = vm_info_disk(v->dir), *overlay = NULL;
	struct vm_info info = {0}, next = {0};
	char **layers = NULL;
	size_t n = 0;
	int r;

	if (!old_disk)
		return err_set(-EIO,
			       "VM %s: %s/vm.info has no disk (not started by this "
			       "version of sbx?)",
			       v->name, v->dir);
	r = vm_get_info(v, &info);
	if (r < 0)
		return r;
	while (info.layers[n])
		n++;
	layers = calloc(n + 2, sizeof(char *));
	overlay = vmu_printf("%s/disk-%lld.qcow2", v->dir, (long long)clock_mono_ms());
	if (!layers || !overlay) {
		r = -ENOMEM;
		goto out;
	}
	layers[0] = (char *)layer_path;
	memcpy(layers + 1, info.layers, n * sizeof(char *));
	next = info;
	next.layers = layers;

	/* Record the new layer before it exists, so that a collector running
	 * meanwhile counts it as used; then hard-link the current overlay to
	 * it (the same inode QEMU writes), stack a new overlay on it and make
	 * QEMU switch. The old name goes last. */
	r = vm_info_write(v->dir, &next, old_disk);
	if (r < 0) {
		err_set(r, "VM %s: cannot write vm.info: %s", v->name, strerror(-r));
		goto out;
	}
	if (link(old_disk, layer_path) < 0) {
		r = err_set(-errno, "VM %s: cannot link %s to %s: %m", v->name, old_disk,
			    layer_path);
		goto out_restore;
	}
	r = new_overlay(v, layer_path, overlay, info.disk_bytes);
	if (r < 0)
		goto out_unlink;
	r = switch_overlay(v, overlay);
	if (r < 0)
		goto out_unlink;
	r = vm_info_write(v->dir, &next, overlay);
	if (r < 0)
		log_warn_f(LOG_FIELDS({"vm", v->name}),
			   "cannot record the new overlay %s in vm.info: %s", overlay,
			   strerror(-r));
	if (unlink(old_disk) < 0)
		log_warn_f(LOG_FIELDS({"vm", v->name}),
			   "cannot remove the old name %s of layer %s: %m", old_disk, layer_path);
	(void)chmod(layer_path, 0444);
	r = 0;
	goto out;

out_unlink:
	(void)unlink(overlay);
	(void)unlink(layer_path);
out_restore:
	(void)vm_info_write(v->dir, &info, old_disk);
out:
	free(layers);
	vm_info_release(&info);
	return r;
}
