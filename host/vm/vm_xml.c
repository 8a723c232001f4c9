/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm_xml.c - the libvirt domain XML of an sbx microVM, and reading back the
 * one metadata element that marks a domain as ours.
 *
 * Every string that comes from a caller (names, paths, hostname) goes
 * through vmu_buf_add_escaped(); vm.c also validates them before, so the
 * escaping is a second line of defence, not the only one. Why each element
 * is there is in docs/vm-driver.md.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "host/vm/vm_int.h"

char *vm_xml_cmdline(const struct vm_xml_params *p)
{
	struct vmu_buf b = {0};

	vmu_buf_printf(&b, "console=ttyS0 panic=-1 quiet sbx.root=/dev/vda sbx.hostname=%s",
		       p->hostname);
	/* microvm has no HPET and no ACPI PM timer: under TCG the kernel's
	 * PIT calibration of the TSC fails about half the time on a busy host
	 * and the boot then hangs for good ("tsc: Marking TSC unstable due to
	 * could not calculate TSC khz"). TCG's TSC ticks at the host's rate,
	 * so tell the guest that rate. Under KVM, kvm-clock does the job. */
	if (p->accel == VM_ACCEL_TCG && p->tsc_khz)
		vmu_buf_printf(&b, " tsc_early_khz=%lu", p->tsc_khz);
	if (p->init_wait)
		vmu_buf_printf(&b, " sbx.init=wait");
	return vmu_buf_steal(&b);
}

static void add_elem(struct vmu_buf *b, const char *indent, const char *tag, const char *text)
{
	vmu_buf_printf(b, "%s<%s>", indent, tag);
	vmu_buf_add_escaped(b, text);
	vmu_buf_printf(b, "</%s>\n", tag);
}

static void add_path_attr(struct vmu_buf *b, const char *dir, const char *file)
{
	vmu_buf_add_escaped(b, dir);
	vmu_buf_printf(b, "/");
	vmu_buf_add_escaped(b, file);
}

static void add_backing(struct vmu_buf *b, const char *format, const char *path)
{
	vmu_buf_printf(b, "<backingStore type='file'><format type='%s'/><source file='", format);
	vmu_buf_add_escaped(b, path);
	vmu_buf_printf(b, "'><seclabel model='dac' relabel='no'/></source>");
}

/* The root disk: the overlay the guest writes, then its backing chain
 * spelled out (frozen snapshot layers, then the image's raw rootfs) so that
 * libvirt neither probes it nor, under a libvirtd with dynamic_ownership,
 * chowns shared files to the QEMU user (it does not give them back for
 * backing files). */
static void add_disk(struct vmu_buf *b, const struct vm_xml_params *p)
{
	size_t n = 0;

	vmu_buf_printf(b, "    <disk type='file' device='disk'>\n"
			  "      <driver name='qemu' type='qcow2' cache='unsafe' discard='unmap' "
			  "error_policy='report' rerror_policy='report'/>\n"
			  "      <source file='");
	if (p->disk)
		vmu_buf_add_escaped(b, p->disk);
	else
		add_path_attr(b, p->vm_dir, "disk.qcow2");
	vmu_buf_printf(b, "'/>\n      ");
	if (!p->disk_blank) {
		for (; p->disk_layers && p->disk_layers[n]; n++)
			add_backing(b, "qcow2", p->disk_layers[n]);
		vmu_buf_printf(b, "<backingStore type='file'><format type='raw'/><source file='");
		add_path_attr(b, p->image_dir, "rootfs.ext4");
		vmu_buf_printf(b, "'><seclabel model='dac' relabel='no'/></source>");
		n++;
	}
	vmu_buf_printf(b, "<backingStore/>");
	while (n--)
		vmu_buf_printf(b, "</backingStore>");
	vmu_buf_printf(b, "\n      <target dev='vda' bus='virtio'/>\n"
			  "      <address type='virtio-mmio'/>\n    </disk>\n");
}

static void add_qemu_arg(struct vmu_buf *b, const char *arg)
{
	vmu_buf_printf(b, "    <qemu:arg value='");
	vmu_buf_add_escaped(b, arg);
	vmu_buf_printf(b, "'/>\n");
}

/* What libvirt has no element for, passed to QEMU as is: guest RAM in a
 * file of ours (libvirt's file-backed memory picks its own path) and
 * -incoming defer for restores (the migration capabilities must be set on
 * the monitor before the stream is read; see vm_snap.c). */
static void add_qemu_args(struct vmu_buf *b, const struct vm_xml_params *p)
{
	struct vmu_buf o = {0};
	_cleanup_free_ char *obj = NULL;

	/* Every guest's RAM is our backend "sbxram" (a file, or anonymous
	 * memory): a migration stream names its RAM block, so a stream saved
	 * from any VM restores into any other. QEMU option values escape ','
	 * as ",,"; vm.c refuses paths with a comma, so none needs it. */
	if (p->ram_file)
		vmu_buf_printf(&o, "memory-backend-file,id=sbxram,size=%uM,mem-path=%s,share=%s",
			       p->memory_mib, p->ram_file, p->ram_shared ? "on" : "off");
	else
		vmu_buf_printf(&o, "memory-backend-ram,id=sbxram,size=%uM", p->memory_mib);
	obj = vmu_buf_steal(&o);
	vmu_buf_printf(b, "  <qemu:commandline>\n");
	add_qemu_arg(b, "-object");
	add_qemu_arg(b, obj ? obj : "");
	/* the later -machine option wins over libvirt's memory-backend */
	add_qemu_arg(b, "-machine");
	add_qemu_arg(b, "memory-backend=sbxram");
	if (p->incoming) {
		add_qemu_arg(b, "-incoming");
		add_qemu_arg(b, "defer");
	}
	vmu_buf_printf(b, "  </qemu:commandline>\n");
}

char *vm_xml_domain(const struct vm_xml_params *p)
{
	_cleanup_free_ char *cmdline = vm_xml_cmdline(p);
	struct vmu_buf b = {0};

	if (!cmdline)
		return NULL;

	vmu_buf_printf(&b, "<domain type='%s' xmlns:qemu='" VM_QEMU_XMLNS "'>\n",
		       p->accel == VM_ACCEL_KVM ? "kvm" : "qemu");
	add_elem(&b, "  ", "name", p->domain_name);
	vmu_buf_printf(&b, "  <title>sbx VM ");
	vmu_buf_add_escaped(&b, p->name);
	vmu_buf_printf(&b, "</title>\n");

	vmu_buf_printf(&b, "  <metadata>\n    <" VM_XMLNS_PREFIX ":vm xmlns:" VM_XMLNS_PREFIX
			   "='" VM_XMLNS "' name='");
	vmu_buf_add_escaped(&b, p->name);
	vmu_buf_printf(&b, "' state='");
	vmu_buf_add_escaped(&b, p->state_dir);
	vmu_buf_printf(&b, "' dir='");
	vmu_buf_add_escaped(&b, p->vm_dir);
	vmu_buf_printf(&b, "' image='");
	vmu_buf_add_escaped(&b, p->image_dir);
	vmu_buf_printf(&b, "'/>\n  </metadata>\n");

	vmu_buf_printf(&b, "  <memory unit='MiB'>%u</memory>\n", p->memory_mib);
	vmu_buf_printf(&b, "  <vcpu placement='static'>%u</vcpu>\n", p->vcpus);

	vmu_buf_printf(&b, "  <os>\n    <type arch='x86_64' machine='microvm'>hvm</type>\n");
	add_elem(&b, "    ", "kernel", p->kernel);
	vmu_buf_printf(&b, "    <initrd>");
	add_path_attr(&b, p->image_dir, "initrd.img");
	vmu_buf_printf(&b, "</initrd>\n");
	add_elem(&b, "    ", "cmdline", cmdline);
	vmu_buf_printf(&b, "  </os>\n");

	vmu_buf_printf(&b, "  <features>\n    <acpi/>\n");
	if (p->accel == VM_ACCEL_TCG && p->tb_cache_mib)
		vmu_buf_printf(&b, "    <tcg><tb-cache unit='MiB'>%u</tb-cache></tcg>\n",
			       p->tb_cache_mib);
	vmu_buf_printf(&b, "  </features>\n");

	if (p->accel == VM_ACCEL_KVM)
		vmu_buf_printf(&b,
			       "  <cpu mode='host-passthrough' check='none' migratable='on'/>\n");
	else /* arat: the local APIC timer keeps running when the CPU idles.
	      * Without it (qemu64 lacks it) and with no HPET to stand in, the
	      * guest cannot use one-shot timers and keeps the periodic tick:
	      * 250 wakeups a second in an idle guest, 2-5% of a host core
	      * each under TCG. With it an idle guest sleeps (about 12/s). */
		vmu_buf_printf(&b, "  <cpu mode='custom' match='exact' check='none'>\n"
				   "    <model fallback='forbid'>qemu64</model>\n"
				   "    <feature policy='require' name='rdrand'/>\n"
				   "    <feature policy='require' name='arat'/>\n"
				   "  </cpu>\n");
	vmu_buf_printf(&b, "  <clock offset='utc'/>\n"
			   "  <on_poweroff>destroy</on_poweroff>\n"
			   "  <on_reboot>destroy</on_reboot>\n"
			   "  <on_crash>destroy</on_crash>\n");

	vmu_buf_printf(&b, "  <devices>\n");
	add_disk(&b, p);
	vmu_buf_printf(&b, "    <controller type='usb' model='none'/>\n"
			   "    <controller type='virtio-serial' index='0'>\n"
			   "      <address type='virtio-mmio'/>\n    </controller>\n");
	vmu_buf_printf(&b, "    <channel type='unix'>\n      <source mode='bind' path='");
	add_path_attr(&b, p->sock_dir ? p->sock_dir : p->vm_dir, "agent.sock");
	vmu_buf_printf(&b, "'/>\n      <target type='virtio' name='sbx.agent'/>\n    </channel>\n");
	if (p->bench_channel) {
		vmu_buf_printf(&b, "    <channel type='unix'>\n      <source mode='bind' path='");
		add_path_attr(&b, p->sock_dir ? p->sock_dir : p->vm_dir, "bench.sock");
		vmu_buf_printf(&b, "'/>\n      <target type='virtio' name='sbx.bench'/>\n"
				   "    </channel>\n");
	}
	vmu_buf_printf(&b, "    <serial type='file'>\n      <source path='");
	add_path_attr(&b, p->vm_dir, "console.log");
	vmu_buf_printf(&b, "'/>\n      <target port='0'/>\n    </serial>\n");
	vmu_buf_printf(&b, "    <console type='file'>\n      <source path='");
	add_path_attr(&b, p->vm_dir, "console.log");
	vmu_buf_printf(&b, "'/>\n      <target type='serial' port='0'/>\n    </console>\n");
	/* pvpanic on microvm's ISA bus (QEMU0001 in its ACPI table; the
	 * guest's pvpanic-mmio module drives it): a guest kernel panic
	 * reaches libvirt as a crash, not as the reboot panic=-1 asks for */
	vmu_buf_printf(&b, "    <panic model='isa'/>\n");
	vmu_buf_printf(&b, "    <memballoon model='none'/>\n  </devices>\n");
	add_qemu_args(&b, p);
	vmu_buf_printf(&b, "</domain>\n");
	return vmu_buf_steal(&b);
}

static int unescape(const char *s, size_t len, char **ret)
{
	_cleanup_free_ char *out = malloc(len + 1);
	static const struct {
		const char *ent;
		char c;
	} ents[] = {
	    {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}, {"&quot;", '"'}};
	size_t i = 0, o = 0;

	if (!out)
		return -ENOMEM;
	while (i < len) {
		size_t k;

		if (s[i] != '&') {
			out[o++] = s[i++];
			continue;
		}
		for (k = 0; k < ARRAY_SIZE(ents); k++) {
			size_t el = strlen(ents[k].ent);
			if (len - i >= el && !memcmp(s + i, ents[k].ent, el)) {
				out[o++] = ents[k].c;
				i += el;
				break;
			}
		}
		if (k < ARRAY_SIZE(ents))
			continue;
		if (len - i > 3 && s[i + 1] == '#') {
			/* libxml2 writes some characters as &#NN; or &#xNN; */
			char *end;
			unsigned long v = s[i + 2] == 'x' ? strtoul(s + i + 3, &end, 16)
							  : strtoul(s + i + 2, &end, 10);
			if (*end != ';' || v == 0 || v > 127)
				return -EBADMSG;
			out[o++] = (char)v;
			i = (size_t)(end - s) + 1;
			continue;
		}
		return -EBADMSG;
	}
	out[o] = '\0';
	*ret = TAKE_PTR(out);
	return 0;
}

int vm_xml_get_attr(const char *xml, const char *attr, char **ret)
{
	const char *p = strchr(xml, '<');
	size_t alen = strlen(attr);

	if (!p)
		return -EBADMSG;
	/* Walk the attributes of the first start tag, name='value' or
	 * name="value", so that a value containing " name=" or ">" cannot
	 * fool us. */
	p += strcspn(p, " \t\r\n/>");
	for (;;) {
		const char *n, *v, *q;
		size_t nlen;
		char quote;

		p += strspn(p, " \t\r\n");
		if (!*p || *p == '/' || *p == '>')
			return -ENOENT;
		n = p;
		nlen = strcspn(n, "= \t\r\n/>");
		p = n + nlen;
		p += strspn(p, " \t\r\n");
		if (*p != '=')
			return -EBADMSG;
		p++;
		p += strspn(p, " \t\r\n");
		quote = *p;
		if (quote != '\'' && quote != '"')
			return -EBADMSG;
		v = p + 1;
		q = strchr(v, quote);
		if (!q)
			return -EBADMSG;
		if (nlen == alen && !memcmp(n, attr, alen))
			return unescape(v, (size_t)(q - v), ret);
		p = q + 1;
	}
}
