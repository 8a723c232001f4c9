/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vm_xml.c - the libvirt XML of an sbx microVM (the domain, the disk-only
 * snapshot that switches its overlay), and reading back the metadata
 * element that marks a domain as ours. All of it through libxml2 (which
 * libvirt loads anyway): the tree API builds the documents and escapes
 * every string a caller gives (names, paths, hostname) when it serialises
 * them; vm.c also validates them before, so the escaping is a second line
 * of defence, not the only one. Why each element is there is in
 * docs/vm-driver.md.
 *
 * Text content goes in with xmlNewTextChild(), never xmlNewChild(): the
 * latter takes its content as markup ("&amp;" stays an entity reference),
 * the former as text. Attribute values (xmlNewProp()) are always text.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlsave.h>

#include "base/cleanup.h"
#include "host/vm/vm_int.h"

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init_once(void)
{
	xmlInitParser();
}

/* libxml2 2.9's xmlInitParser() is not safe to race with itself; libvirt
 * calls it too, but a unit test may get here first. */
static void xml_init(void)
{
	pthread_once(&xml_once, xml_init_once);
}

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

/* -- building -------------------------------------------------------------
 * The helpers take a NULL parent (a failed allocation before) and then do
 * nothing but note it, so a builder runs to its end and checks once. */

struct xb {
	xmlDocPtr doc;
	bool oom;
};

static xmlNodePtr el(struct xb *b, xmlNodePtr parent, xmlNsPtr ns, const char *name,
		     const char *text)
{
	xmlNodePtr n;

	if (!parent) {
		b->oom = true;
		return NULL;
	}
	n = xmlNewTextChild(parent, ns, BAD_CAST name, text ? BAD_CAST text : NULL);
	if (!n)
		b->oom = true;
	return n;
}

/* attr(b, node, name, value, name, value, ..., NULL) */
static xmlNodePtr attrs(struct xb *b, xmlNodePtr n, ...)
{
	const char *name;
	va_list ap;

	va_start(ap, n);
	while ((name = va_arg(ap, const char *))) {
		const char *value = va_arg(ap, const char *);

		if (!n || !value || !xmlNewProp(n, BAD_CAST name, BAD_CAST value))
			b->oom = true;
	}
	va_end(ap);
	return n;
}

/* An element with attributes and no content. */
#define EL(b, parent, name, ...) attrs(b, el(b, parent, NULL, name, NULL), __VA_ARGS__, NULL)

/* The element text or attribute "DIR/FILE"; NULL if out of memory. */
static char *path_join(struct xb *b, const char *dir, const char *file)
{
	char *s = vmu_printf("%s/%s", dir, file);

	if (!s)
		b->oom = true;
	return s;
}

static xmlNodePtr backing(struct xb *b, xmlNodePtr parent, const char *format, const char *path)
{
	xmlNodePtr bs = EL(b, parent, "backingStore", "type", "file");
	xmlNodePtr src;

	EL(b, bs, "format", "type", format);
	src = EL(b, bs, "source", "file", path);
	EL(b, src, "seclabel", "model", "dac", "relabel", "no");
	return bs;
}

/* The root disk: the overlay the guest writes, then its backing chain
 * spelled out (frozen snapshot layers, then the image's raw rootfs) so that
 * libvirt neither probes it nor, under a libvirtd with dynamic_ownership,
 * chowns shared files to the QEMU user (it does not give them back for
 * backing files). */
static void add_disk(struct xb *b, xmlNodePtr devices, const struct vm_xml_params *p)
{
	_cleanup_free_ char *disk = p->disk ? NULL : path_join(b, p->vm_dir, "disk.qcow2");
	_cleanup_free_ char *rootfs = NULL;
	xmlNodePtr d = EL(b, devices, "disk", "type", "file", "device", "disk");
	xmlNodePtr chain = d;

	EL(b, d, "driver", "name", "qemu", "type", "qcow2", "cache", "unsafe", "discard", "unmap",
	   "error_policy", "report", "rerror_policy", "report");
	EL(b, d, "source", "file", p->disk ? p->disk : disk);
	if (!p->disk_blank) {
		for (size_t n = 0; p->disk_layers && p->disk_layers[n]; n++)
			chain = backing(b, chain, "qcow2", p->disk_layers[n]);
		rootfs = path_join(b, p->image_dir, "rootfs.ext4");
		chain = backing(b, chain, "raw", rootfs);
	}
	el(b, chain, NULL, "backingStore", NULL); /* the end of the chain */
	EL(b, d, "target", "dev", "vda", "bus", "virtio");
	EL(b, d, "address", "type", "virtio-mmio");
}

static void add_channel(struct xb *b, xmlNodePtr devices, const struct vm_xml_params *p,
			const char *sock, const char *port)
{
	_cleanup_free_ char *path = path_join(b, p->sock_dir ? p->sock_dir : p->vm_dir, sock);
	xmlNodePtr c = EL(b, devices, "channel", "type", "unix");

	EL(b, c, "source", "mode", "bind", "path", path);
	EL(b, c, "target", "type", "virtio", "name", port);
}

/* What libvirt has no element for, passed to QEMU as is: guest RAM in a
 * file of ours (libvirt's file-backed memory picks its own path) and
 * -incoming defer for restores (the migration capabilities must be set on
 * the monitor before the stream is read; see vm_snap.c). */
static void add_qemu_args(struct xb *b, xmlNodePtr dom, xmlNsPtr qemu,
			  const struct vm_xml_params *p)
{
	_cleanup_free_ char *obj = NULL;
	const char *args[8];
	size_t n = 0;
	xmlNodePtr cl;

	/* Every guest's RAM is our backend "sbxram" (a file, or anonymous
	 * memory): a migration stream names its RAM block, so a stream saved
	 * from any VM restores into any other. QEMU option values escape ','
	 * as ",,"; vm.c refuses paths with a comma, so none needs it. */
	if (p->ram_file)
		obj = vmu_printf("memory-backend-file,id=sbxram,size=%uM,mem-path=%s,share=%s",
				 p->memory_mib, p->ram_file, p->ram_shared ? "on" : "off");
	else
		obj = vmu_printf("memory-backend-ram,id=sbxram,size=%uM", p->memory_mib);
	if (!obj)
		b->oom = true;
	args[n++] = "-object";
	args[n++] = obj;
	/* the later -machine option wins over libvirt's memory-backend */
	args[n++] = "-machine";
	args[n++] = "memory-backend=sbxram";
	if (p->incoming) {
		args[n++] = "-incoming";
		args[n++] = "defer";
	}
	cl = el(b, dom, qemu, "commandline", NULL);
	for (size_t i = 0; i < n; i++)
		attrs(b, el(b, cl, qemu, "arg", NULL), "value", args[i], NULL);
}

/* The document, serialised without an XML declaration and indented; NULL
 * if out of memory. Frees the document. */
static char *finish(struct xb *b)
{
	xmlBufferPtr buf = NULL;
	xmlSaveCtxtPtr save = NULL;
	char *s = NULL;

	if (b->oom || !b->doc)
		goto out;
	buf = xmlBufferCreate();
	if (buf)
		save = xmlSaveToBuffer(buf, "UTF-8", XML_SAVE_FORMAT | XML_SAVE_NO_DECL);
	if (!save)
		goto out;
	{
		long saved = xmlSaveDoc(save, b->doc);
		int closed = xmlSaveClose(save); /* flushes into buf */

		if (saved >= 0 && closed >= 0 && xmlBufferContent(buf))
			s = strdup((const char *)xmlBufferContent(buf));
	}
out:
	if (buf)
		xmlBufferFree(buf);
	xmlFreeDoc(b->doc);
	b->doc = NULL;
	return s;
}

static xmlNodePtr new_root(struct xb *b, const char *name)
{
	xmlNodePtr root;

	xml_init();
	b->doc = xmlNewDoc(BAD_CAST "1.0");
	if (!b->doc) {
		b->oom = true;
		return NULL;
	}
	root = xmlNewDocNode(b->doc, NULL, BAD_CAST name, NULL);
	if (!root) {
		b->oom = true;
		return NULL;
	}
	xmlDocSetRootElement(b->doc, root);
	return root;
}

char *vm_xml_domain(const struct vm_xml_params *p)
{
	_cleanup_free_ char *cmdline = vm_xml_cmdline(p), *title = NULL, *initrd = NULL;
	char num[32];
	struct xb b = {0};
	xmlNodePtr dom, n, os, features, dev;
	xmlNsPtr qemu = NULL, sbx;

	if (!cmdline)
		return NULL;
	dom = new_root(&b, "domain");
	if (dom && !(qemu = xmlNewNs(dom, BAD_CAST VM_QEMU_XMLNS, BAD_CAST "qemu")))
		b.oom = true;
	attrs(&b, dom, "type", p->accel == VM_ACCEL_KVM ? "kvm" : "qemu", NULL);
	el(&b, dom, NULL, "name", p->domain_name);
	title = vmu_printf("sbx VM %s", p->name);
	if (!title)
		b.oom = true;
	el(&b, dom, NULL, "title", title);

	n = el(&b, el(&b, dom, NULL, "metadata", NULL), NULL, "vm", NULL);
	if (n && (sbx = xmlNewNs(n, BAD_CAST VM_XMLNS, BAD_CAST VM_XMLNS_PREFIX)))
		xmlSetNs(n, sbx);
	else
		b.oom = true;
	attrs(&b, n, "name", p->name, "state", p->state_dir, "dir", p->vm_dir, "image",
	      p->image_dir, NULL);

	snprintf(num, sizeof(num), "%u", p->memory_mib);
	attrs(&b, el(&b, dom, NULL, "memory", num), "unit", "MiB", NULL);
	snprintf(num, sizeof(num), "%u", p->vcpus);
	attrs(&b, el(&b, dom, NULL, "vcpu", num), "placement", "static", NULL);

	os = el(&b, dom, NULL, "os", NULL);
	attrs(&b, el(&b, os, NULL, "type", "hvm"), "arch", "x86_64", "machine", "microvm", NULL);
	el(&b, os, NULL, "kernel", p->kernel);
	initrd = path_join(&b, p->image_dir, "initrd.img");
	el(&b, os, NULL, "initrd", initrd);
	el(&b, os, NULL, "cmdline", cmdline);

	features = el(&b, dom, NULL, "features", NULL);
	el(&b, features, NULL, "acpi", NULL);
	if (p->accel == VM_ACCEL_TCG && p->tb_cache_mib) {
		snprintf(num, sizeof(num), "%u", p->tb_cache_mib);
		attrs(&b, el(&b, el(&b, features, NULL, "tcg", NULL), NULL, "tb-cache", num),
		      "unit", "MiB", NULL);
	}

	if (p->accel == VM_ACCEL_KVM) {
		EL(&b, dom, "cpu", "mode", "host-passthrough", "check", "none", "migratable", "on");
	} else {
		/* arat: the local APIC timer keeps running when the CPU idles.
		 * Without it (qemu64 lacks it) and with no HPET to stand in,
		 * the guest cannot use one-shot timers and keeps the periodic
		 * tick: 250 wakeups a second in an idle guest, 2-5% of a host
		 * core each under TCG. With it an idle guest sleeps (about
		 * 12/s). */
		n = EL(&b, dom, "cpu", "mode", "custom", "match", "exact", "check", "none");
		attrs(&b, el(&b, n, NULL, "model", "qemu64"), "fallback", "forbid", NULL);
		EL(&b, n, "feature", "policy", "require", "name", "rdrand");
		EL(&b, n, "feature", "policy", "require", "name", "arat");
	}
	EL(&b, dom, "clock", "offset", "utc");
	el(&b, dom, NULL, "on_poweroff", "destroy");
	el(&b, dom, NULL, "on_reboot", "destroy");
	el(&b, dom, NULL, "on_crash", "destroy");

	dev = el(&b, dom, NULL, "devices", NULL);
	add_disk(&b, dev, p);
	EL(&b, dev, "controller", "type", "usb", "model", "none");
	n = EL(&b, dev, "controller", "type", "virtio-serial", "index", "0");
	EL(&b, n, "address", "type", "virtio-mmio");
	add_channel(&b, dev, p, "agent.sock", "sbx.agent");
	if (p->bench_channel)
		add_channel(&b, dev, p, "bench.sock", "sbx.bench");
	{
		_cleanup_free_ char *console = path_join(&b, p->vm_dir, "console.log");

		n = EL(&b, dev, "serial", "type", "file");
		EL(&b, n, "source", "path", console);
		EL(&b, n, "target", "port", "0");
		n = EL(&b, dev, "console", "type", "file");
		EL(&b, n, "source", "path", console);
		EL(&b, n, "target", "type", "serial", "port", "0");
	}
	/* pvpanic on microvm's ISA bus (QEMU0001 in its ACPI table; the
	 * guest's pvpanic-mmio module drives it): a guest kernel panic
	 * reaches libvirt as a crash, not as the reboot panic=-1 asks for */
	EL(&b, dev, "panic", "model", "isa");
	EL(&b, dev, "memballoon", "model", "none");
	add_qemu_args(&b, dom, qemu, p);
	return finish(&b);
}

char *vm_xml_disk_snapshot(const char *overlay)
{
	struct xb b = {0};
	xmlNodePtr d, src;

	d = el(&b, el(&b, new_root(&b, "domainsnapshot"), NULL, "disks", NULL), NULL, "disk", NULL);
	attrs(&b, d, "name", "vda", "snapshot", "external", "type", "file", NULL);
	EL(&b, d, "driver", "type", "qcow2");
	src = EL(&b, d, "source", "file", overlay);
	EL(&b, src, "seclabel", "model", "dac", "relabel", "no");
	return finish(&b);
}

/* -- reading --------------------------------------------------------------
 * What libvirt hands back (the metadata of any domain of the connection,
 * which another user of the same libvirt may have written) is parsed with
 * no network access, no entity substitution, no DTD at all and a bound on
 * its size; libxml2's own limits bound the depth. */

static int parse(const char *xml, size_t len, xmlDocPtr *ret_doc)
{
	char msg[256] = "cannot parse";
	xmlErrorPtr e;
	xmlDocPtr doc;

	*ret_doc = NULL;
	if (len > VM_XML_MAX)
		return err_set(-EMSGSIZE, "XML of %zu bytes (at most %d)", len, VM_XML_MAX);
	xml_init();
	doc = xmlReadMemory(xml, (int)len, NULL, NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		e = xmlGetLastError();
		if (e && e->message) {
			snprintf(msg, sizeof(msg), "%s", e->message);
			msg[strcspn(msg, "\n")] = '\0';
		}
		return err_set(-EBADMSG, "malformed XML: %s", msg);
	}
	if (doc->intSubset || doc->extSubset || !xmlDocGetRootElement(doc)) {
		xmlFreeDoc(doc);
		return err_set(-EBADMSG, "malformed XML: a DTD, or no element");
	}
	*ret_doc = doc;
	return 0;
}

int vm_xml_get_attr(const char *xml, const char *attr, char **ret)
{
	xmlDocPtr doc;
	xmlChar *v;
	int r;

	*ret = NULL;
	r = parse(xml, strnlen(xml, VM_XML_MAX + 1), &doc);
	if (r < 0)
		return r;
	if (!xmlHasNsProp(xmlDocGetRootElement(doc), BAD_CAST attr, NULL)) {
		xmlFreeDoc(doc);
		return -ENOENT;
	}
	v = xmlGetNoNsProp(xmlDocGetRootElement(doc), BAD_CAST attr);
	xmlFreeDoc(doc);
	if (!v)
		return -ENOMEM;
	*ret = strdup((const char *)v);
	xmlFree(v);
	return *ret ? 0 : -ENOMEM;
}
