/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm.c - the VM driver: one libvirt connection, and the life of each sbx
 * microVM from its qcow2 overlay to the removal of its directory.
 *
 * Invariants:
 *  - a domain is ours only if its name starts with "sbx-" AND its metadata
 *    element (namespace VM_XMLNS) names our state directory; nothing else is
 *    ever listed, looked up or destroyed, even on a shared qemu:///system;
 *  - domains are transient and not autodestroyed: QEMU outlives the process
 *    that started it, and the next vm_driver_open() on the same state
 *    directory adopts it;
 *  - vm_start() either returns a running VM whose agent socket exists or
 *    leaves nothing behind (domain, overlay, socket, directory, QEMU log).
 * The driver itself (connection, event loop, errors) is in vm_driver.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "base/clock.h"
#include "base/log.h"
#include "host/vm/vm_int.h"

#define AGENT_SOCKET_WAIT_MS 10000
#define QEMU_IMG_TIMEOUT_MS 60000
#define DEFAULT_VCPUS 1
#define DEFAULT_MEMORY_MIB 512
/* TCG's translation cache is 1 GiB by default and grows into RSS as the
 * guest runs new code. A booted guest uses about 36 MiB of it, and boot
 * time was the same from 32 MiB to 1 GiB; 128 MiB leaves room for real
 * workloads before retranslation sets in. */
#define TB_CACHE_MIB 128

static void virt_domain_freep(virDomainPtr *d)
{
	if (*d)
		virDomainFree(*d);
}
#define _cleanup_domain_ _cleanup_(virt_domain_freep)

/* -- names, paths, ownership --------------------------------------------- */

bool vm_name_is_valid(const char *name)
{
	size_t n;

	if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
		return false;
	n = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-");
	return name[n] == '\0' && n <= VM_NAME_MAX;
}

static bool hostname_is_valid(const char *h)
{
	size_t n;

	if (!h || !((h[0] >= 'a' && h[0] <= 'z') || (h[0] >= 'A' && h[0] <= 'Z') ||
		    (h[0] >= '0' && h[0] <= '9')))
		return false;
	n = strspn(h, "abcdefghijklmnopqrstuvwxyz"
		      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.");
	return h[n] == '\0' && n <= 63;
}

/* Paths go into XML (escaped), argv and QEMU options (libvirt escapes
 * commas); control characters and whitespace are refused outright because
 * nothing good comes of them in a kernel command line or a log. */
static bool path_is_sane(const char *p)
{
	for (; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static char *domain_name(const char *name)
{
	return vmu_printf(VM_DOMAIN_PREFIX "%s", name);
}

static char *qemu_log_path(vm_driver *d, const char *name)
{
	if (!d->qemu_log_dir)
		return NULL;
	return vmu_printf("%s/" VM_DOMAIN_PREFIX "%s.log", d->qemu_log_dir, name);
}

/* 1 if dom is one of this driver's VMs, 0 if not, -errno. */
static int domain_is_ours(vm_driver *d, virDomainPtr dom)
{
	_cleanup_free_ char *meta = NULL, *state = NULL;
	const char *n = virDomainGetName(dom);

	if (!n || strncmp(n, VM_DOMAIN_PREFIX, strlen(VM_DOMAIN_PREFIX)) ||
	    !vm_name_is_valid(n + strlen(VM_DOMAIN_PREFIX)))
		return 0;
	meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, VM_XMLNS, 0);
	if (!meta) {
		int code = vm_virt_error_code();
		return code == VIR_ERR_NO_DOMAIN_METADATA || code == VIR_ERR_NO_DOMAIN ? 0 : -EIO;
	}
	if (vm_xml_get_attr(meta, "state", &state) < 0)
		return 0;
	return strcmp(state, d->state_dir) == 0;
}

static bool starting_has(vm_driver *d, const char *name)
{
	for (size_t i = 0; i < VM_MAX_STARTING; i++)
		if (d->starting[i] && !strcmp(d->starting[i], name))
			return true;
	return false;
}

static int starting_add(vm_driver *d, const char *name)
{
	int r = -EAGAIN;

	pthread_mutex_lock(&d->lock);
	if (starting_has(d, name)) {
		r = -EEXIST;
		goto out;
	}
	for (size_t i = 0; i < VM_MAX_STARTING; i++) {
		if (!d->starting[i]) {
			d->starting[i] = strdup(name);
			r = d->starting[i] ? 0 : -ENOMEM;
			break;
		}
	}
out:
	pthread_mutex_unlock(&d->lock);
	return r;
}

static void starting_remove(vm_driver *d, const char *name)
{
	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < VM_MAX_STARTING; i++) {
		if (d->starting[i] && !strcmp(d->starting[i], name)) {
			free(d->starting[i]);
			d->starting[i] = NULL;
		}
	}
	pthread_mutex_unlock(&d->lock);
}

static vm *vm_new(vm_driver *d, const char *name, virDomainPtr dom)
{
	vm *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->d = d;
	v->name = strdup(name);
	v->dir = vmu_printf("%s/%s", d->vms_dir, name);
	v->agent_sock = vmu_printf("%s/vms/%s/agent.sock", d->sock_root, name);
	v->bench_sock = vmu_printf("%s/vms/%s/bench.sock", d->sock_root, name);
	v->console_log = vmu_printf("%s/%s/console.log", d->vms_dir, name);
	if (!v->name || !v->dir || !v->agent_sock || !v->bench_sock || !v->console_log) {
		vm_free(v);
		return NULL;
	}
	v->dom = dom;
	return v;
}

/* -- start ----------------------------------------------------------------- */

/* QEMU's own complaints from libvirt's per-domain log (not the command
 * line libvirt writes first, not lines the caller's message already
 * quotes), for a person reading why a start failed. */
static char *qemu_log_excerpt(vm_driver *d, const char *name, const char *already)
{
	_cleanup_free_ char *path = qemu_log_path(d, name), *tail = NULL;
	struct vmu_buf b = {0};
	char *line, *save = NULL;
	int kept = 0;

	if (!path || vmu_read_tail(path, 4096, &tail) < 0)
		return NULL;
	for (line = strtok_r(tail, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		size_t n = strlen(line);

		if (!n || line[0] == '-' || line[n - 1] == '\\' || strstr(line, "starting up") ||
		    strstr(line, "shutting down") || strstr(line, "is tainted") ||
		    (already && strstr(already, line)))
			continue;
		vmu_buf_printf(&b, "%s%s", kept++ ? " | " : "", line);
		if (b.len > 800)
			break;
	}
	return kept ? vmu_buf_steal(&b) : (vmu_buf_steal(&b), NULL);
}

/* Adds the QEMU log excerpt to a failure message. */
static int fail_with_log(vm_driver *d, int err, const char *name, const char *what,
			 const char *detail)
{
	_cleanup_free_ char *log = qemu_log_excerpt(d, name, detail);
	_cleanup_free_ char *path = qemu_log_path(d, name);

	if (log)
		return err_set(err, "cannot start VM %s: %s: %s (QEMU log %s: %s)", name, what,
			       detail, path, log);
	return err_set(err, "cannot start VM %s: %s: %s", name, what, detail);
}

/* The image's kernel: an uncompressed vmlinux if the image has one (QEMU
 * boots it through its PVH entry point and skips the XZ decompression that
 * costs a TCG guest 4-9 s of its boot), else the vmlinuz. */
static char *image_kernel(const char *image)
{
	char *p = vmu_printf("%s/vmlinux", image);
	struct stat st;

	if (p && stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, R_OK) == 0)
		return p;
	free(p);
	return vmu_printf("%s/vmlinuz", image);
}

static int check_image(const char *name, const char *image, uint64_t *ret_size)
{
	static const char *const files[] = {"vmlinuz", "initrd.img", "rootfs.ext4"};
	struct stat st;

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *p = vmu_printf("%s/%s", image, files[i]);
		if (!p)
			return -ENOMEM;
		if (stat(p, &st) < 0 || access(p, R_OK) < 0)
			return err_set(-errno, "cannot start VM %s: image %s: %s: %m", name, image,
				       files[i]);
		if (!S_ISREG(st.st_mode))
			return err_set(-EINVAL, "cannot start VM %s: image %s: %s is not a file",
				       name, image, files[i]);
	}
	*ret_size = (uint64_t)st.st_size; /* rootfs.ext4, the last one */
	return 0;
}

/* The overlay the guest writes: over the newest frozen layer if there are
 * layers, else over the image's rootfs, or (blank) over nothing. */
static int create_overlay(const struct vm_config *cfg, const char *image, const char *disk,
			  uint64_t bytes)
{
	const char *name = cfg->name;
	bool layered = cfg->disk_layers && cfg->disk_layers[0];
	_cleanup_free_ char *backing =
	    layered ? strdup(cfg->disk_layers[0]) : vmu_printf("%s/rootfs.ext4", image);
	_cleanup_free_ char *size = bytes ? vmu_printf("%llu", (unsigned long long)bytes) : NULL;
	/* clang-format off */
	char *argv[] = {
		"qemu-img", "create", "-q", "-f", "qcow2", "-F", layered ? "qcow2" : "raw",
		"-b", backing, (char *)disk, size, NULL,
	};
	char *blank_argv[] = {
		"qemu-img", "create", "-q", "-f", "qcow2", (char *)disk, size, NULL,
	};
	/* clang-format on */
	char out[1024]; /* qemu-img's stderr */
	int r;

	if (!backing || (bytes && !size))
		return -ENOMEM;
	r = vmu_spawn(cfg->disk_blank ? blank_argv : argv, QEMU_IMG_TIMEOUT_MS, out, sizeof(out));
	if (r < 0)
		return err_set(r, "cannot start VM %s: cannot run qemu-img: %s", name,
			       strerror(-r));
	if (r > 0)
		return err_set(-EIO, "cannot start VM %s: qemu-img create failed (status %d): %s",
			       name, r, out[0] ? out : "no message");
	return 0;
}

static int wait_for_socket(vm_driver *d, const char *name, virDomainPtr dom, const char *sock)
{
	uint64_t deadline = clock_mono_ms() + AGENT_SOCKET_WAIT_MS;
	struct stat st;

	for (;;) {
		if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
		if (virDomainIsActive(dom) != 1)
			return fail_with_log(d, -ECHILD, name, "QEMU exited right after starting",
					     "guest not running");
		if (clock_mono_ms() > deadline)
			return err_set(-ETIMEDOUT,
				       "cannot start VM %s: agent socket %s did not appear within "
				       "%d ms",
				       name, sock, AGENT_SOCKET_WAIT_MS);
		clock_sleep_ms(5);
	}
}

static void remove_leftovers(vm_driver *d, const char *name, const char *dir)
{
	_cleanup_free_ char *log = d->embed ? qemu_log_path(d, name) : NULL;
	int r;

	r = vmu_rm_rf(dir);
	if (r < 0)
		log_warn_errno_f(r, LOG_FIELDS({"vm", name}), "cannot remove %s", dir);
	if (log)
		(void)unlink(log);
}

static bool snapshot_path_ok(const char *p)
{
	return p && p[0] == '/' && path_is_sane(p) && !strchr(p, ',') && strlen(p) < PATH_MAX;
}

/* The snapshot-related parts of a config: files that must exist, paths
 * that go into QEMU options, combinations that make no sense. */
static int check_snapshot_config(const struct vm_config *cfg)
{
	size_t n = 0;

	for (; cfg->disk_layers && cfg->disk_layers[n]; n++) {
		if (!snapshot_path_ok(cfg->disk_layers[n]) || access(cfg->disk_layers[n], R_OK) < 0)
			return err_set(-EINVAL, "cannot start VM %s: disk layer %s: %s", cfg->name,
				       cfg->disk_layers[n],
				       snapshot_path_ok(cfg->disk_layers[n])
					   ? strerror(errno)
					   : "not an absolute path without commas or control "
					     "characters");
		if (n >= VM_MAX_LAYERS)
			return err_set(-EINVAL, "cannot start VM %s: more than %d disk layers",
				       cfg->name, VM_MAX_LAYERS);
	}
	if (n && cfg->disk_blank)
		return err_set(-EINVAL, "cannot start VM %s: a blank disk has no layers",
			       cfg->name);
	if (cfg->ram_file) {
		if (!snapshot_path_ok(cfg->ram_file))
			return err_set(-EINVAL,
				       "cannot start VM %s: RAM file %s is not an absolute path "
				       "without commas or control characters",
				       cfg->name, cfg->ram_file);
		if (!cfg->ram_shared && access(cfg->ram_file, R_OK) < 0)
			return err_set(-errno, "cannot start VM %s: RAM file %s: %m", cfg->name,
				       cfg->ram_file);
	}
	if (cfg->incoming && cfg->incoming_fd < 0)
		return err_set(-EBADF, "cannot start VM %s: no saved state to restore from",
			       cfg->name);
	if (cfg->incoming_ignore_shared && !cfg->ram_file)
		return err_set(-EINVAL,
			       "cannot start VM %s: a state saved without RAM needs the RAM file",
			       cfg->name);
	return 0;
}

int vm_start(vm_driver *d, const struct vm_config *cfg, vm **ret)
{
	_cleanup_free_ char *dir = NULL, *disk = NULL, *sock = NULL, *domname = NULL, *xml = NULL;
	_cleanup_free_ char *sock_dir = NULL;
	_cleanup_free_ char *kernel = NULL;
	_cleanup_domain_ virDomainPtr dom = NULL;
	char image[PATH_MAX];
	struct vm_xml_params xp = {0};
	struct vm_info info = {0};
	static char *no_layers[] = {NULL};
	uint64_t image_bytes = 0;
	long long t_overlay, t_create, t_socket;
	vm *v;
	int r;

	*ret = NULL;
	if (!cfg || !vm_name_is_valid(cfg->name))
		return err_set(-EINVAL,
			       "cannot start VM: invalid name '%s' (expected 1-63 of a-z, 0-9 "
			       "and '-', not starting with '-')",
			       cfg && cfg->name ? cfg->name : "(null)");
	if (!hostname_is_valid(cfg->hostname ? cfg->hostname : cfg->name))
		return err_set(-EINVAL, "cannot start VM %s: invalid hostname '%s'", cfg->name,
			       cfg->hostname);
	if (cfg->vcpus > VM_MAX_VCPUS)
		return err_set(-EINVAL, "cannot start VM %s: %u vCPUs (at most %u)", cfg->name,
			       cfg->vcpus, VM_MAX_VCPUS);
	if (cfg->memory_mib &&
	    (cfg->memory_mib < VM_MIN_MEMORY_MIB || cfg->memory_mib > VM_MAX_MEMORY_MIB))
		return err_set(-EINVAL, "cannot start VM %s: memory %u MiB out of range", cfg->name,
			       cfg->memory_mib);
	r = check_snapshot_config(cfg);
	if (r < 0)
		return r;
	if (!cfg->image_dir || !realpath(cfg->image_dir, image))
		return err_set(cfg->image_dir ? -errno : -EINVAL,
			       "cannot start VM %s: image directory %s: %s", cfg->name,
			       cfg->image_dir ? cfg->image_dir : "(none)",
			       cfg->image_dir ? strerror(errno) : "not given");
	if (!path_is_sane(image))
		return err_set(-EINVAL, "cannot start VM %s: image path has control characters",
			       cfg->name);
	r = check_image(cfg->name, image, &image_bytes);
	if (r < 0)
		return r;
	if (cfg->disk_bytes && cfg->disk_bytes < image_bytes && !cfg->disk_blank)
		return err_set(-EINVAL,
			       "cannot start VM %s: disk size %llu is smaller than the image's "
			       "root disk (%llu bytes)",
			       cfg->name, (unsigned long long)cfg->disk_bytes,
			       (unsigned long long)image_bytes);

	dir = vmu_printf("%s/%s", d->vms_dir, cfg->name);
	disk = vmu_printf("%s/disk.qcow2", dir ? dir : "");
	sock_dir = vmu_printf("%s/vms/%s", d->sock_root, cfg->name);
	sock = vmu_printf("%s/agent.sock", sock_dir ? sock_dir : "");
	domname = domain_name(cfg->name);
	kernel = image_kernel(image);
	if (!dir || !sock_dir || !disk || !sock || !domname || !kernel)
		return -ENOMEM;
	if (strlen(sock) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return err_set(-ENAMETOOLONG,
			       "cannot start VM %s: %s is too long for a Unix socket path "
			       "(use a shorter state directory or VM name)",
			       cfg->name, sock);

	r = starting_add(d, cfg->name);
	if (r == -EEXIST)
		return err_set(r, "cannot start VM %s: it is being started already", cfg->name);
	if (r < 0)
		return err_set(r, "cannot start VM %s: too many VMs starting at once", cfg->name);

	dom = virDomainLookupByName(d->conn, domname);
	if (dom) {
		r = err_set(-EEXIST, "cannot start VM %s: a VM of that name exists", cfg->name);
		goto out_unreserve;
	}
	if (mkdir(dir, 0711) < 0) {
		r = -errno;
		if (r == -EEXIST)
			err_set(r,
				"cannot start VM %s: %s exists (a leftover? vm_destroy_by_name() "
				"removes it)",
				cfg->name, dir);
		else
			err_set(r, "cannot start VM %s: cannot create %s: %s", cfg->name, dir,
				strerror(-r));
		goto out_unreserve;
	}

	t_overlay = clock_mono_ms();
	r = create_overlay(cfg, image, disk,
			   cfg->disk_blank && !cfg->disk_bytes ? image_bytes : cfg->disk_bytes);
	if (r < 0)
		goto out_remove;
	info.image_dir = image;
	info.vcpus = cfg->vcpus ? cfg->vcpus : DEFAULT_VCPUS;
	info.memory_mib = cfg->memory_mib ? cfg->memory_mib : DEFAULT_MEMORY_MIB;
	info.disk_bytes = cfg->disk_bytes ? cfg->disk_bytes : image_bytes;
	info.ram_file = (char *)cfg->ram_file;
	info.ram_shared = cfg->ram_shared;
	info.layers = cfg->disk_layers ? (char **)cfg->disk_layers : no_layers;
	r = vm_info_write(dir, &info, disk);
	if (r < 0) {
		err_set(r, "cannot start VM %s: cannot write %s/vm.info: %s", cfg->name, dir,
			strerror(-r));
		goto out_remove;
	}
	t_create = clock_mono_ms();

	xp.domain_name = domname;
	xp.name = cfg->name;
	xp.state_dir = d->state_dir;
	xp.vm_dir = dir;
	xp.sock_dir = sock_dir;
	xp.image_dir = image;
	xp.kernel = kernel;
	xp.hostname = cfg->hostname ? cfg->hostname : cfg->name;
	xp.accel = d->accel;
	xp.tsc_khz = d->host_tsc_khz;
	xp.vcpus = cfg->vcpus ? cfg->vcpus : DEFAULT_VCPUS;
	xp.bench_channel = cfg->bench_channel;
	xp.memory_mib = cfg->memory_mib ? cfg->memory_mib : DEFAULT_MEMORY_MIB;
	xp.tb_cache_mib = TB_CACHE_MIB;
	xp.disk = disk;
	xp.disk_layers = cfg->disk_layers;
	xp.disk_blank = cfg->disk_blank;
	xp.ram_file = cfg->ram_file;
	xp.ram_shared = cfg->ram_shared;
	xp.init_wait = cfg->init_wait;
	xp.incoming = cfg->incoming;
	xml = vm_xml_domain(&xp);
	if (!xml) {
		r = -ENOMEM;
		goto out_remove;
	}

	/* Transient and without VIR_DOMAIN_START_AUTODESTROY: the VM must
	 * survive a restart of the process that started it. */
	dom = virDomainCreateXML(d->conn, xml, cfg->incoming ? VIR_DOMAIN_START_PAUSED : 0);
	if (!dom) {
		int code = vm_virt_error_code();
		r = code == VIR_ERR_DOM_EXIST || (code == VIR_ERR_OPERATION_FAILED &&
						  strstr(vm_virt_error(), "already exists"))
			? -EEXIST
			: -EIO;
		fail_with_log(d, r, cfg->name, "libvirt", vm_virt_error());
		goto out_remove;
	}
	t_socket = clock_mono_ms();
	r = wait_for_socket(d, cfg->name, dom, sock);
	if (r < 0)
		goto out_destroy;

	v = vm_new(d, cfg->name, dom);
	if (!v) {
		r = -ENOMEM;
		goto out_destroy;
	}
	if (cfg->incoming) {
		t_socket = clock_mono_ms();
		r = vm_migrate_fd(v, true, cfg->incoming_fd, cfg->incoming_ignore_shared);
		if (r >= 0 && !cfg->stay_paused)
			r = vm_resume(v);
		if (r < 0) {
			fail_with_log(d, r, cfg->name, "restoring the saved state failed",
				      err_msg());
			v->dom = NULL;
			vm_free(v);
			goto out_destroy;
		}
	}
	dom = NULL;
	starting_remove(d, cfg->name);
	log_debug_f(LOG_FIELDS({"vm", cfg->name}),
		    "started accel=%s overlay_ms=%lld libvirt_ms=%lld socket_ms=%lld",
		    vm_accel_to_string(d->accel), t_create - t_overlay, t_socket - t_create,
		    clock_mono_ms() - t_socket);
	*ret = v;
	return 0;

out_destroy:
	if (virDomainDestroy(dom) < 0 && virDomainIsActive(dom) == 1)
		log_warn_f(LOG_FIELDS({"vm", cfg->name}),
			   "cannot destroy domain after a failed start: libvirt: %s",
			   vm_virt_error());
out_remove:
	remove_leftovers(d, cfg->name, dir);
out_unreserve:
	starting_remove(d, cfg->name);
	return r;
}

/* -- lookup, list ---------------------------------------------------------- */

static int lookup_domain(vm_driver *d, const char *name, virDomainPtr *ret)
{
	_cleanup_free_ char *domname = domain_name(name);
	_cleanup_domain_ virDomainPtr dom = NULL;
	int r;

	*ret = NULL;
	if (!domname)
		return -ENOMEM;
	dom = virDomainLookupByName(d->conn, domname);
	if (!dom)
		return vm_virt_error_code() == VIR_ERR_NO_DOMAIN ? -ENOENT : -EIO;
	r = domain_is_ours(d, dom);
	if (r < 0)
		return r;
	if (r == 0)
		return -EPERM;
	*ret = TAKE_PTR(dom);
	return 0;
}

int vm_lookup(vm_driver *d, const char *name, vm **ret)
{
	virDomainPtr dom = NULL;
	vm *v;
	int r;

	*ret = NULL;
	if (!vm_name_is_valid(name))
		return err_set(-EINVAL, "invalid VM name '%s'", name ? name : "(null)");
	r = lookup_domain(d, name, &dom);
	if (r == -ENOENT)
		return err_set(r, "no VM named %s", name);
	if (r == -EPERM)
		return err_set(r, "domain " VM_DOMAIN_PREFIX "%s is not a VM of %s", name,
			       d->state_dir);
	if (r < 0)
		return err_set(r, "cannot look up VM %s: libvirt: %s", name, vm_virt_error());
	v = vm_new(d, name, dom);
	if (!v) {
		virDomainFree(dom);
		return -ENOMEM;
	}
	*ret = v;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vm_list(vm_driver *d, char ***ret)
{
	virDomainPtr *doms = NULL;
	char **names;
	size_t n = 0;
	int count, r = 0;

	*ret = NULL;
	count = virConnectListAllDomains(d->conn, &doms, 0);
	if (count < 0)
		return err_set(-EIO, "cannot list VMs: libvirt: %s", vm_virt_error());
	names = calloc((size_t)count + 1, sizeof(char *));
	if (!names)
		r = -ENOMEM;
	for (int i = 0; i < count; i++) {
		if (r == 0 && domain_is_ours(d, doms[i]) == 1) {
			names[n] = strdup(virDomainGetName(doms[i]) + strlen(VM_DOMAIN_PREFIX));
			if (!names[n])
				r = -ENOMEM;
			else
				n++;
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return r;
	}
	qsort(names, n, sizeof(char *), cmp_str);
	*ret = names;
	return 0;
}

int vm_list_stale(vm_driver *d, char ***ret)
{
	char **doms = NULL;
	DIR *dir;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;
	int r;

	*ret = NULL;
	r = vm_list(d, &doms);
	if (r < 0)
		return r;
	dir = opendir(d->vms_dir);
	if (!dir) {
		vm_strv_free(doms);
		return err_set(-errno, "cannot list %s: %m", d->vms_dir);
	}
	r = 0;
	while (r == 0 && (e = readdir(dir))) {
		bool has = false;
		char **nn;

		if (!vm_name_is_valid(e->d_name))
			continue;
		for (char **p = doms; p && *p && !has; p++)
			has = !strcmp(*p, e->d_name);
		if (has)
			continue;
		nn = realloc(names, (n + 2) * sizeof(*names));
		if (!nn) {
			r = -ENOMEM;
			break;
		}
		names = nn;
		names[n] = strdup(e->d_name);
		if (!names[n]) {
			r = -ENOMEM;
			break;
		}
		names[++n] = NULL;
	}
	closedir(dir);
	vm_strv_free(doms);
	if (r < 0) {
		vm_strv_free(names);
		return r;
	}
	if (!names)
		names = calloc(1, sizeof(*names));
	if (!names)
		return -ENOMEM;
	*ret = names;
	return 0;
}

/* -- accessors ------------------------------------------------------------- */

const char *vm_name(const vm *v)
{
	return v->name;
}

const char *vm_agent_socket(const vm *v)
{
	return v->agent_sock;
}

const char *vm_bench_socket(const vm *v)
{
	return v->bench_sock;
}

const char *vm_console_log(const vm *v)
{
	return v->console_log;
}

const char *vm_dir(const vm *v)
{
	return v->dir;
}

int vm_console_tail(const vm *v, char *buf, size_t len)
{
	_cleanup_free_ char *tail = NULL;
	int r;

	if (!len)
		return -EINVAL;
	buf[0] = '\0';
	r = vmu_read_tail(v->console_log, len - 1, &tail);
	if (r < 0)
		return r;
	memcpy(buf, tail, (size_t)r + 1);
	return 0;
}

static bool vm_is_destroyed(vm *v)
{
	bool b;

	pthread_mutex_lock(&v->d->lock);
	b = v->destroyed;
	pthread_mutex_unlock(&v->d->lock);
	return b;
}

int vm_is_running(vm *v)
{
	int state, reason;

	if (vm_is_destroyed(v))
		return 0;
	if (virDomainGetState(v->dom, &state, &reason, 0) < 0) {
		if (vm_virt_error_code() == VIR_ERR_NO_DOMAIN)
			return 0;
		return err_set(-EIO, "cannot get state of VM %s: libvirt: %s", v->name,
			       vm_virt_error());
	}
	switch (state) {
	case VIR_DOMAIN_RUNNING:
	case VIR_DOMAIN_BLOCKED:
	case VIR_DOMAIN_PAUSED:
	case VIR_DOMAIN_SHUTDOWN:
	case VIR_DOMAIN_PMSUSPENDED:
		return 1;
	default:
		return 0;
	}
}

int vm_qemu_pid(vm *v)
{
	_cleanup_free_ char *path = NULL, *s = NULL;
	long pid;

	if (vm_is_running(v) != 1)
		return -ESRCH;
	if (v->d->embed)
		path = vmu_printf("%s/libvirt/run/qemu/" VM_DOMAIN_PREFIX "%s.pid", v->d->state_dir,
				  v->name);
	else if (!strcmp(v->d->uri, "qemu:///system"))
		path = vmu_printf("/run/libvirt/qemu/" VM_DOMAIN_PREFIX "%s.pid", v->name);
	else
		return -EOPNOTSUPP;
	if (!path)
		return -ENOMEM;
	if (vmu_read_file(path, 32, &s) < 0)
		return -ENOENT;
	pid = strtol(s, NULL, 10);
	return pid > 0 && pid <= INT_MAX ? (int)pid : -EBADMSG;
}

/* -- destroy --------------------------------------------------------------- */

/* Stops QEMU if it runs and forgets the domain; a domain that is already
 * gone (powered off, QEMU killed, destroyed by someone else) is success. */
static int destroy_domain(const char *name, virDomainPtr dom)
{
	long long t0 = clock_mono_ms();
	int persistent;

	if (virDomainDestroy(dom) < 0) {
		int code = vm_virt_error_code();
		if (code != VIR_ERR_NO_DOMAIN && code != VIR_ERR_OPERATION_INVALID &&
		    virDomainIsActive(dom) == 1)
			return err_set(-EIO, "cannot destroy VM %s: libvirt: %s", name,
				       vm_virt_error());
	}
	persistent = virDomainIsPersistent(dom);
	if (persistent == 1 && virDomainUndefine(dom) < 0 &&
	    vm_virt_error_code() != VIR_ERR_NO_DOMAIN)
		return err_set(-EIO, "cannot undefine VM %s: libvirt: %s", name, vm_virt_error());
	log_debug_f(LOG_FIELDS({"vm", name}), "domain destroyed in %lld ms", clock_mono_ms() - t0);
	return 0;
}

int vm_destroy(vm *v)
{
	int r;

	if (vm_is_destroyed(v))
		return 0;
	r = destroy_domain(v->name, v->dom);
	if (r < 0)
		return r;
	remove_leftovers(v->d, v->name, v->dir);
	pthread_mutex_lock(&v->d->lock);
	v->destroyed = true;
	pthread_mutex_unlock(&v->d->lock);
	return 0;
}

int vm_destroy_by_name(vm_driver *d, const char *name)
{
	_cleanup_domain_ virDomainPtr dom = NULL;
	_cleanup_free_ char *dir = NULL;
	bool busy;
	int r;

	if (!vm_name_is_valid(name))
		return err_set(-EINVAL, "invalid VM name '%s'", name ? name : "(null)");
	pthread_mutex_lock(&d->lock);
	busy = starting_has(d, name);
	pthread_mutex_unlock(&d->lock);
	if (busy)
		return err_set(-EBUSY, "cannot destroy VM %s: it is being started", name);

	r = lookup_domain(d, name, &dom);
	if (r == -EPERM)
		return err_set(r,
			       "cannot destroy VM %s: domain " VM_DOMAIN_PREFIX "%s is not a VM "
			       "of %s",
			       name, name, d->state_dir);
	if (r < 0 && r != -ENOENT)
		return err_set(r, "cannot destroy VM %s: libvirt: %s", name, vm_virt_error());
	if (dom) {
		r = destroy_domain(name, dom);
		if (r < 0)
			return r;
	}
	dir = vmu_printf("%s/%s", d->vms_dir, name);
	if (!dir)
		return -ENOMEM;
	remove_leftovers(d, name, dir);
	return 0;
}

vm *vm_free(vm *v)
{
	if (!v)
		return NULL;
	if (v->dom)
		virDomainFree(v->dom);
	free(v->name);
	free(v->dir);
	free(v->agent_sock);
	free(v->bench_sock);
	free(v->console_log);
	free(v);
	return NULL;
}

void vm_strv_free(char **names)
{
	if (!names)
		return;
	for (char **p = names; *p; p++)
		free(*p);
	free(names);
}
