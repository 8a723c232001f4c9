/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check_vm_pure.c - the parts of the VM driver (host/vm/) that need no VM:
 * vm.info written and read back (JSON, the old line format, damaged
 * files), the domain XML built from a config and read back with libxml2,
 * the metadata attribute reader on what libvirt returns and on hostile
 * input, and vmu_spawn()'s capture of a child's output.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "base/cleanup.h"
#include "base/err.h"
#include "base/log.h"
#include "host/vm/vm.h"
#include "host/vm/vm_int.h"

LOG_DEFINE_STATE("check_vm_pure");

static char dir[PATH_MAX], info_path[PATH_MAX + 16];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_vm_pure.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(info_path, sizeof(info_path), "%s/vm.info", dir);
}

static void teardown(void)
{
	(void)vmu_rm_rf(dir);
}

static void write_text(const char *path, const char *s, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, s, len), (ssize_t)len);
	close(fd);
}

/* -- vm.info ----------------------------------------------------------------- */

static const char *const odd_layers[] = {"/s/blobs/layer-2", "/s/b l\"o'b\\s/<&>/layer-1",
					 "/s/blobs/\xc3\xa9t\xc3\xa9", NULL};

START_TEST(test_vm_info_round_trip)
{
	struct vm_info in = {
	    .image_dir = "/img/default",
	    .vcpus = 2,
	    .memory_mib = 768,
	    .disk_bytes = 5ULL << 30,
	    .ram_file = "/s/blobs/ram-x",
	    .ram_shared = true,
	    .layers = (char **)odd_layers,
	};
	struct vm_info out;
	_cleanup_free_ char *text = NULL, *disk = NULL;
	json_t *j;

	ck_assert_int_eq(vm_info_write(dir, &in, "/st/vms/a/disk \"1\".qcow2"), 0);
	ck_assert_int_gt(vmu_read_file(info_path, 65536, &text), 0);
	ck_assert_int_eq(text[0], '{');
	j = json_loads(text, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 1);
	json_decref(j);

	ck_assert_int_eq(vm_info_read(info_path, &out), 0);
	ck_assert_str_eq(out.image_dir, "/img/default");
	ck_assert_uint_eq(out.vcpus, 2);
	ck_assert_uint_eq(out.memory_mib, 768);
	ck_assert_uint_eq(out.disk_bytes, 5ULL << 30);
	ck_assert_str_eq(out.ram_file, "/s/blobs/ram-x");
	ck_assert(out.ram_shared);
	for (size_t i = 0; i < 3; i++)
		ck_assert_str_eq(out.layers[i], odd_layers[i]);
	ck_assert_ptr_null(out.layers[3]);
	vm_info_release(&out);
	disk = vm_info_disk(dir);
	ck_assert_str_eq(disk, "/st/vms/a/disk \"1\".qcow2");

	/* anonymous RAM, no layers */
	in.ram_file = NULL;
	in.ram_shared = false;
	in.layers = (char *[]){NULL};
	ck_assert_int_eq(vm_info_write(dir, &in, "/d.qcow2"), 0);
	ck_assert_int_eq(vm_info_read(info_path, &out), 0);
	ck_assert_ptr_null(out.ram_file);
	ck_assert(!out.ram_shared);
	ck_assert_ptr_nonnull(out.layers);
	ck_assert_ptr_null(out.layers[0]);
	vm_info_release(&out);
}
END_TEST

/* What sbx wrote before vm.info was JSON (an installation upgraded in
 * place still has such files). */
START_TEST(test_vm_info_reads_the_old_line_format)
{
	static const char old[] = "image /img/default\nvcpus 2\nmemory_mib 256\n"
				  "disk_bytes 1073741824\ndisk /st/vms/f/overlay.qcow2\n"
				  "ram_file /s/blobs/ram-m1\nram_shared 0\nlayer /st/vms/f/old\n"
				  "layer /s/blobs/layer-m1\n";
	struct vm_info i;
	_cleanup_free_ char *disk = NULL;

	write_text(info_path, old, strlen(old));
	ck_assert_int_eq(vm_info_read(info_path, &i), 0);
	ck_assert_str_eq(i.image_dir, "/img/default");
	ck_assert_uint_eq(i.vcpus, 2);
	ck_assert_uint_eq(i.memory_mib, 256);
	ck_assert_uint_eq(i.disk_bytes, 1073741824);
	ck_assert_str_eq(i.ram_file, "/s/blobs/ram-m1");
	ck_assert(!i.ram_shared);
	ck_assert_str_eq(i.layers[0], "/st/vms/f/old");
	ck_assert_str_eq(i.layers[1], "/s/blobs/layer-m1");
	ck_assert_ptr_null(i.layers[2]);
	vm_info_release(&i);
	disk = vm_info_disk(dir);
	ck_assert_str_eq(disk, "/st/vms/f/overlay.qcow2");
}
END_TEST

#define GOOD_HEAD "{\"version\":1,\"image\":\"/img\",\"vcpus\":1,\"memory_mib\":512,"
#define GOOD_TAIL "\"disk_bytes\":1024,\"disk\":\"/d\",\"ram_file\":null,\"layers\":[]}"

static const struct {
	const char *text;
	int err;
	const char *msg; /* a part of err_msg() */
} damaged[] = {
    {"", -EBADMSG, "no image"},
    {"{", -EBADMSG, "not valid JSON"},
    {"{}", -EBADMSG, "no version"},
    {"{\"version\":\"1\"}", -EBADMSG, "version: not an integer"},
    {"{\"version\":2}", -EPROTONOSUPPORT, "version 2"},
    {"{\"version\":1,\"version\":1}", -EBADMSG, "duplicate"},
    {"{\"version\":1,\"vcpus\":1,\"memory_mib\":512,\"disk_bytes\":1,\"layers\":[]}", -EBADMSG,
     "no image"},
    {"{\"version\":1,\"image\":7}", -EBADMSG, "image: not a string"},
    {"{\"version\":1,\"image\":\"img\",\"vcpus\":1,\"memory_mib\":512,"
     "\"disk_bytes\":1,\"layers\":[]}",
     -EBADMSG, "image: not an absolute path"},
    {"{\"version\":1,\"image\":\"/i\\nmg\",\"vcpus\":1,\"memory_mib\":512,"
     "\"disk_bytes\":1,\"layers\":[]}",
     -EBADMSG, "image: not an absolute path"},
    {"{\"version\":1,\"image\":\"/i\\u0000mg\"}", -EBADMSG, "not valid JSON"},
    {"{\"version\":1,\"image\":\"/img\",\"vcpus\":\"1\"}", -EBADMSG, "vcpus: not an integer"},
    {"{\"version\":1,\"image\":\"/img\",\"vcpus\":0}", -EBADMSG, "vcpus: not an integer in 1..64"},
    {"{\"version\":1,\"image\":\"/img\",\"vcpus\":65}", -EBADMSG, "vcpus"},
    {"{\"version\":1,\"image\":\"/img\",\"vcpus\":-1}", -EBADMSG, "vcpus"},
    {"{\"version\":1,\"image\":\"/img\",\"vcpus\":1.5}", -EBADMSG, "vcpus"},
    {"{\"version\":1,\"image\":\"/img\",\"vcpus\":1,\"memory_mib\":4294967808}", -EBADMSG,
     "memory_mib"},
    {"{\"version\":1,\"image\":\"/img\",\"vcpus\":1,\"memory_mib\":99999999999999999999}", -EBADMSG,
     "not valid JSON"},
    {GOOD_HEAD "\"disk_bytes\":-5}", -EBADMSG, "disk_bytes"},
    {GOOD_HEAD "\"disk_bytes\":0}", -EBADMSG, "disk_bytes"},
    {GOOD_HEAD "\"disk_bytes\":1,\"disk\":[]}", -EBADMSG, "disk: not a string"},
    {GOOD_HEAD "\"disk_bytes\":1,\"disk\":\"rel\",\"layers\":[]}", -EBADMSG,
     "disk: not an absolute path"},
    {GOOD_HEAD "\"disk_bytes\":1,\"ram_file\":{}}", -EBADMSG, "ram_file: not a string"},
    {GOOD_HEAD "\"disk_bytes\":1,\"ram_shared\":\"yes\",\"layers\":[]}", -EBADMSG, "ram_shared"},
    {GOOD_HEAD "\"disk_bytes\":1}", -EBADMSG, "layers: missing"},
    {GOOD_HEAD "\"disk_bytes\":1,\"layers\":\"/l\"}", -EBADMSG, "layers: not an array"},
    {GOOD_HEAD "\"disk_bytes\":1,\"layers\":[\"/a\",1]}", -EBADMSG, "layer 2: not a string"},
    {GOOD_HEAD "\"disk_bytes\":1,\"layers\":[\"/a\",\"b\"]}", -EBADMSG,
     "layer 2: not an absolute path"},
    {"{" GOOD_TAIL, -EBADMSG, "no version"},
    {"[1]", -EBADMSG, "not \"key value\""},
    {"\"str\"", -EBADMSG, "not \"key value\""},
    /* the old line format, checked as strictly */
    {"image /img\nvcpus abc\n", -EBADMSG, "vcpus: \"abc\" is not a number"},
    {"image /img\nvcpus -1\n", -EBADMSG, "vcpus"},
    {"image /img\nvcpus 99999999999999999999999\n", -EBADMSG, "vcpus"},
    {"image /img\nvcpus 2x\n", -EBADMSG, "vcpus"},
    {"image /img\nvcpus 1\nmemory_mib 4294967808\n", -EBADMSG, "memory_mib"},
    {"image /img\nvcpus 1\nmemory_mib 512\ndisk_bytes 1\nram_shared 2\n", -EBADMSG, "ram_shared"},
    {"image /img\nvcpus 1\nmemory_mib 512\ndisk_bytes 1\nlayer rel\n", -EBADMSG, "layer 1"},
    {"image /img\nvcpus 1\nmemory_mib 512\n", -EBADMSG, "disk_bytes"},
    {"image /img\nvcpus 1\nnospace\n", -EBADMSG, "not \"key value\""},
    {"vcpus 1\n", -EBADMSG, "no image"},
};

START_TEST(test_vm_info_damaged_files_give_clear_errors)
{
	struct vm_info i;

	for (size_t k = 0; k < ARRAY_SIZE(damaged); k++) {
		int r;

		err_clear();
		write_text(info_path, damaged[k].text, strlen(damaged[k].text));
		r = vm_info_read(info_path, &i);
		ck_assert_msg(r == damaged[k].err, "case %zu (%s): %d, expected %d (%s)", k,
			      damaged[k].text, r, damaged[k].err, err_msg());
		ck_assert_msg(strstr(err_msg(), damaged[k].msg) && strstr(err_msg(), info_path),
			      "case %zu (%s): message \"%s\" lacks \"%s\" or the path", k,
			      damaged[k].text, err_msg(), damaged[k].msg);
		/* nothing is left to free */
		ck_assert_ptr_null(i.image_dir);
		ck_assert_ptr_null(i.layers);
	}
	/* the well-formed neighbour of these cases reads */
	write_text(info_path, GOOD_HEAD GOOD_TAIL, strlen(GOOD_HEAD GOOD_TAIL));
	ck_assert_int_eq(vm_info_read(info_path, &i), 0);
	vm_info_release(&i);

	/* a NUL byte, a file too long, no file */
	write_text(info_path, "{\"version\":1\0}", 14);
	ck_assert_int_eq(vm_info_read(info_path, &i), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err_msg(), "NUL"));
	{
		size_t n = 65 * 1024;
		char *big = malloc(n);

		memset(big, ' ', n);
		big[0] = '{';
		write_text(info_path, big, n);
		free(big);
	}
	ck_assert_int_eq(vm_info_read(info_path, &i), -EFBIG);
	unlink(info_path);
	ck_assert_int_eq(vm_info_read(info_path, &i), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err_msg(), info_path));
	ck_assert_ptr_null(vm_info_disk(dir));
}
END_TEST

/* Every prefix and many one-byte corruptions of a real file: an error or a
 * result within range, never a crash (run it under make asan too). */
START_TEST(test_vm_info_truncated_and_corrupted_files)
{
	struct vm_info in = {.image_dir = "/img/default",
			     .vcpus = 4,
			     .memory_mib = 1024,
			     .disk_bytes = 1ULL << 32,
			     .ram_file = "/s/blobs/ram-1",
			     .layers = (char **)odd_layers};
	static const char subst[] = {'\0', '"', '{', '}', ',', '9', '-', 'x', '\\', '\n'};
	_cleanup_free_ char *text = NULL;
	struct vm_info out;
	size_t len;
	int n;

	ck_assert_int_eq(vm_info_write(dir, &in, "/st/vms/x/disk.qcow2"), 0);
	n = vmu_read_file(info_path, 65536, &text);
	ck_assert_int_gt(n, 0);
	len = (size_t)n;
	for (size_t cut = 0; cut < len; cut++) {
		_cleanup_free_ char *disk = NULL;
		int r = vm_info_parse("x", text, cut, &out, &disk);

		/* only the trailing newline may go */
		ck_assert_msg(r < 0 || cut == len - 1, "prefix %zu of %zu parsed", cut, len);
		if (r == 0)
			vm_info_release(&out);
		else
			ck_assert_str_ne(err_msg(), "");
	}
	for (size_t pos = 0; pos < len; pos++) {
		for (size_t s = 0; s < sizeof(subst); s++) {
			_cleanup_free_ char *disk = NULL;
			char *copy = malloc(len);
			int r;

			memcpy(copy, text, len);
			copy[pos] = subst[s];
			r = vm_info_parse("x", copy, len, &out, &disk);
			free(copy);
			if (r < 0) {
				ck_assert_int_ne(r, -ENOMEM);
				continue;
			}
			ck_assert(out.image_dir && out.image_dir[0] == '/');
			ck_assert(out.vcpus >= 1 && out.vcpus <= VM_MAX_VCPUS);
			ck_assert(out.memory_mib >= VM_MIN_MEMORY_MIB &&
				  out.memory_mib <= VM_MAX_MEMORY_MIB);
			ck_assert_ptr_nonnull(out.layers);
			vm_info_release(&out);
		}
	}
}
END_TEST

/* -- domain XML ----------------------------------------------------------------- */

static xmlDocPtr parse_xml(const char *xml)
{
	xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), NULL, NULL, XML_PARSE_NONET);

	ck_assert_msg(doc != NULL, "not well-formed: %s", xml);
	return doc;
}

/* The string value of an XPath expression ("" if it selects nothing). */
static char *xp(xmlDocPtr doc, const char *expr)
{
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathObjectPtr o;
	char *s;

	ck_assert_ptr_nonnull(ctx);
	xmlXPathRegisterNs(ctx, BAD_CAST "q", BAD_CAST VM_QEMU_XMLNS);
	xmlXPathRegisterNs(ctx, BAD_CAST "s", BAD_CAST VM_XMLNS);
	o = xmlXPathEvalExpression(BAD_CAST expr, ctx);
	ck_assert_msg(o != NULL, "bad XPath %s", expr);
	s = (char *)xmlXPathCastToString(o);
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	return s;
}

static void xp_eq(xmlDocPtr doc, const char *expr, const char *want)
{
	char *got = xp(doc, expr);

	ck_assert_msg(!strcmp(got, want), "%s: \"%s\", expected \"%s\"", expr, got, want);
	xmlFree(got);
}

#define HOSTILE "/<a>&'\"]]>&amp;"

START_TEST(test_vm_xml_domain_reads_back_every_value)
{
	static const char *const layers[] = {"/l" HOSTILE "/layer-2.qcow2", "/l/layer-1.qcow2",
					     NULL};
	struct vm_xml_params p = {
	    .domain_name = "sbx-x",
	    .name = "x",
	    .state_dir = "/s" HOSTILE,
	    .vm_dir = "/s" HOSTILE "/vms/x",
	    .sock_dir = "/run/sbx/1-2/vms/x",
	    .image_dir = "/img" HOSTILE,
	    .kernel = "/img" HOSTILE "/vmlinuz",
	    .hostname = "x",
	    .accel = VM_ACCEL_TCG,
	    .tsc_khz = 2000000,
	    .vcpus = 3,
	    .memory_mib = 256,
	    .tb_cache_mib = 64,
	    .bench_channel = true,
	    .disk = "/s" HOSTILE "/vms/x/disk.qcow2",
	    .disk_layers = layers,
	    .ram_file = "/r" HOSTILE "/ram",
	    .incoming = true,
	};
	char *xml = vm_xml_domain(&p);
	xmlDocPtr doc;

	ck_assert_ptr_nonnull(xml);
	ck_assert_ptr_null(strstr(xml, "<a>"));
	doc = parse_xml(xml);
	xp_eq(doc, "string(/domain/@type)", "qemu");
	xp_eq(doc, "string(/domain/name)", "sbx-x");
	xp_eq(doc, "string(/domain/title)", "sbx VM x");
	xp_eq(doc, "string(/domain/metadata/s:vm/@name)", "x");
	xp_eq(doc, "string(/domain/metadata/s:vm/@state)", "/s" HOSTILE);
	xp_eq(doc, "string(/domain/metadata/s:vm/@dir)", "/s" HOSTILE "/vms/x");
	xp_eq(doc, "string(/domain/metadata/s:vm/@image)", "/img" HOSTILE);
	xp_eq(doc, "string(/domain/memory[@unit='MiB'])", "256");
	xp_eq(doc, "string(/domain/vcpu[@placement='static'])", "3");
	xp_eq(doc, "string(/domain/os/type[@arch='x86_64'][@machine='microvm'])", "hvm");
	xp_eq(doc, "string(/domain/os/kernel)", "/img" HOSTILE "/vmlinuz");
	xp_eq(doc, "string(/domain/os/initrd)", "/img" HOSTILE "/initrd.img");
	xp_eq(doc, "string(/domain/os/cmdline)",
	      "console=ttyS0 panic=-1 quiet sbx.root=/dev/vda sbx.hostname=x "
	      "tsc_early_khz=2000000");
	xp_eq(doc, "count(/domain/features/acpi)", "1");
	xp_eq(doc, "string(/domain/features/tcg/tb-cache[@unit='MiB'])", "64");
	/* without arat an idle TCG guest keeps its periodic tick */
	xp_eq(doc, "string(/domain/cpu[@mode='custom']/model[@fallback='forbid'])", "qemu64");
	xp_eq(doc, "count(/domain/cpu/feature[@policy='require'][@name='arat'])", "1");
	xp_eq(doc, "count(/domain/cpu/feature[@policy='require'][@name='rdrand'])", "1");
	/* a guest panic is a crash the host hears of (pvpanic), not a reboot */
	xp_eq(doc, "count(/domain/devices/panic[@model='isa'])", "1");
	xp_eq(doc, "string(/domain/on_crash)", "destroy");
	/* a full host disk is an I/O error in the guest, never a paused VM */
	xp_eq(doc, "string(//disk/driver/@error_policy)", "report");
	xp_eq(doc, "string(//disk/driver/@rerror_policy)", "report");
	xp_eq(doc, "string(//disk/source/@file)", "/s" HOSTILE "/vms/x/disk.qcow2");
	/* the chain: newest layer first, then the image's raw root disk, then
	 * an empty backingStore that ends it */
	xp_eq(doc, "string(//disk/backingStore/source/@file)", "/l" HOSTILE "/layer-2.qcow2");
	xp_eq(doc, "string(//disk/backingStore/format/@type)", "qcow2");
	xp_eq(doc, "string(//disk/backingStore/backingStore/source/@file)", "/l/layer-1.qcow2");
	xp_eq(doc, "string(//disk/backingStore/backingStore/backingStore/source/@file)",
	      "/img" HOSTILE "/rootfs.ext4");
	xp_eq(doc, "string(//disk/backingStore/backingStore/backingStore/format/@type)", "raw");
	xp_eq(doc, "count(//disk/backingStore/backingStore/backingStore/backingStore/*)", "0");
	xp_eq(doc, "count(//backingStore/source/seclabel[@model='dac'][@relabel='no'])", "3");
	xp_eq(doc, "string(//channel[target/@name='sbx.agent']/source/@path)",
	      "/run/sbx/1-2/vms/x/agent.sock");
	xp_eq(doc, "string(//channel[target/@name='sbx.bench']/source/@path)",
	      "/run/sbx/1-2/vms/x/bench.sock");
	xp_eq(doc, "string(//serial/source/@path)", "/s" HOSTILE "/vms/x/console.log");
	xp_eq(doc, "string(//console/target/@type)", "serial");
	xp_eq(doc, "string(//memballoon/@model)", "none");
	xp_eq(doc, "string(//controller[@type='usb']/@model)", "none");
	/* snapshot parts: RAM in a file, a deferred restore */
	xp_eq(doc, "count(/domain/q:commandline/q:arg)", "6");
	xp_eq(doc, "string(/domain/q:commandline/q:arg[2]/@value)",
	      "memory-backend-file,id=sbxram,size=256M,mem-path=/r" HOSTILE "/ram,share=off");
	xp_eq(doc, "string(/domain/q:commandline/q:arg[4]/@value)", "memory-backend=sbxram");
	xp_eq(doc, "string(/domain/q:commandline/q:arg[5]/@value)", "-incoming");
	xp_eq(doc, "string(/domain/q:commandline/q:arg[6]/@value)", "defer");
	xmlFreeDoc(doc);
	free(xml);

	p.accel = VM_ACCEL_KVM;
	p.bench_channel = false;
	p.incoming = false;
	p.ram_file = NULL;
	p.disk_blank = true;
	p.init_wait = true;
	xml = vm_xml_domain(&p);
	doc = parse_xml(xml);
	xp_eq(doc, "string(/domain/@type)", "kvm");
	xp_eq(doc, "string(/domain/cpu/@mode)", "host-passthrough");
	xp_eq(doc, "count(//tb-cache)", "0");
	xp_eq(doc, "string(/domain/os/cmdline)",
	      "console=ttyS0 panic=-1 quiet sbx.root=/dev/vda sbx.hostname=x sbx.init=wait");
	xp_eq(doc, "count(//channel)", "1");
	/* a blank disk has no backing at all */
	xp_eq(doc, "count(//disk/backingStore)", "1");
	xp_eq(doc, "count(//disk/backingStore/*)", "0");
	xp_eq(doc, "count(/domain/q:commandline/q:arg)", "4");
	xp_eq(doc, "string(/domain/q:commandline/q:arg[2]/@value)",
	      "memory-backend-ram,id=sbxram,size=256M");
	xmlFreeDoc(doc);
	free(xml);
}
END_TEST

START_TEST(test_vm_xml_disk_snapshot)
{
	char *xml = vm_xml_disk_snapshot("/s" HOSTILE "/disk-1.qcow2");
	xmlDocPtr doc = parse_xml(xml);

	xp_eq(doc, "string(/domainsnapshot/disks/disk[@name='vda'][@snapshot='external']/@type)",
	      "file");
	xp_eq(doc, "string(//disk/driver/@type)", "qcow2");
	xp_eq(doc, "string(//disk/source/@file)", "/s" HOSTILE "/disk-1.qcow2");
	xp_eq(doc, "string(//disk/source/seclabel/@relabel)", "no");
	xmlFreeDoc(doc);
	free(xml);
}
END_TEST

/* The metadata element as the driver reads it back: cut out of the domain
 * XML we generate, as libvirt returns it, and hostile. */
START_TEST(test_vm_xml_get_attr)
{
	struct vm_xml_params p = {.domain_name = "sbx-x",
				  .name = "x",
				  .state_dir = "/s" HOSTILE,
				  .vm_dir = "/v",
				  .image_dir = "/img" HOSTILE,
				  .kernel = "/k",
				  .hostname = "x",
				  .vcpus = 1,
				  .memory_mib = 256};
	char *xml = vm_xml_domain(&p), *v = NULL, *big;
	xmlDocPtr doc = parse_xml(xml);
	xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
	xmlXPathObjectPtr o;
	xmlBufferPtr buf = xmlBufferCreate();
	const char *m;

	/* the sbx:vm element alone, with its namespace declaration */
	xmlXPathRegisterNs(ctx, BAD_CAST "s", BAD_CAST VM_XMLNS);
	o = xmlXPathEvalExpression(BAD_CAST "/domain/metadata/s:vm", ctx);
	ck_assert(o && o->nodesetval && o->nodesetval->nodeNr == 1);
	ck_assert_int_gt(xmlNodeDump(buf, doc, o->nodesetval->nodeTab[0], 0, 0), 0);
	m = (const char *)xmlBufferContent(buf);
	ck_assert_int_eq(vm_xml_get_attr(m, "state", &v), 0);
	ck_assert_str_eq(v, "/s" HOSTILE);
	free(v);
	ck_assert_int_eq(vm_xml_get_attr(m, "image", &v), 0);
	ck_assert_str_eq(v, "/img" HOSTILE);
	free(v);
	xmlBufferFree(buf);
	xmlXPathFreeObject(o);
	xmlXPathFreeContext(ctx);
	xmlFreeDoc(doc);
	free(xml);

	m = "<sbx:vm xmlns:sbx=\"https://sbx.dev/xmlns/vm/1\" name=\"a\" "
	    "dir=\"/x name=&quot;y&quot; &#62;\" state=\"/st&amp;x\" other:state=\"no\" "
	    "xmlns:other=\"urn:x\"/>";
	ck_assert_int_eq(vm_xml_get_attr(m, "state", &v), 0);
	ck_assert_str_eq(v, "/st&x");
	free(v);
	ck_assert_int_eq(vm_xml_get_attr(m, "dir", &v), 0);
	ck_assert_str_eq(v, "/x name=\"y\" >");
	free(v);
	ck_assert_int_eq(vm_xml_get_attr(m, "name", &v), 0);
	ck_assert_str_eq(v, "a");
	free(v);
	ck_assert_int_eq(vm_xml_get_attr(m, "image", &v), -ENOENT);
	/* attributes of the root only */
	ck_assert_int_eq(vm_xml_get_attr("<a><b state='x'/></a>", "state", &v), -ENOENT);
	ck_assert_int_eq(vm_xml_get_attr("<a b=c/>", "b", &v), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err_msg(), "malformed XML"));
	ck_assert_int_eq(vm_xml_get_attr("<a b='&bogus;'/>", "b", &v), -EBADMSG);
	ck_assert_int_eq(vm_xml_get_attr("<a b='x'>", "b", &v), -EBADMSG);
	ck_assert_int_eq(vm_xml_get_attr("", "b", &v), -EBADMSG);
	ck_assert_int_eq(vm_xml_get_attr("<a b='1'/><a b='2'/>", "b", &v), -EBADMSG);
	/* no DTD: no entities to expand, no external file or URL to fetch */
	ck_assert_int_eq(vm_xml_get_attr("<!DOCTYPE a [<!ENTITY e \"x\">]><a b='&e;'/>", "b", &v),
			 -EBADMSG);
	ck_assert_int_eq(
	    vm_xml_get_attr("<!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><a b='&e;'/>",
			    "b", &v),
	    -EBADMSG);
	ck_assert_int_eq(
	    vm_xml_get_attr("<!DOCTYPE a SYSTEM \"http://127.0.0.1:9/x.dtd\"><a b='1'/>", "b", &v),
	    -EBADMSG);
	ck_assert_ptr_null(v);
	/* a bound on the size */
	big = malloc(VM_XML_MAX + 64);
	memset(big, ' ', VM_XML_MAX + 63);
	memcpy(big, "<a b='1'", 8);
	memcpy(big + VM_XML_MAX + 60, "/>", 3);
	ck_assert_int_eq(vm_xml_get_attr(big, "b", &v), -EMSGSIZE);
	free(big);
}
END_TEST

/* -- vmu_spawn ----------------------------------------------------------------- */

START_TEST(test_vmu_spawn_captures_the_childs_output)
{
	char *argv[] = {"sh", "-c", "echo out; echo hello from stderr >&2; exit 3", NULL};
	char *sleeper[] = {"sh", "-c", "exec sleep 10", NULL};
	char out[256], small[5];

	ck_assert_int_eq(vmu_spawn(argv, 5000, out, sizeof(out)), 3);
	ck_assert_str_eq(out, "hello from stderr"); /* stderr only, trimmed */
	ck_assert_int_eq(vmu_spawn(argv, 5000, small, sizeof(small)), 3);
	ck_assert_str_eq(small, "hell");
	ck_assert_int_eq(vmu_spawn(argv, 5000, NULL, 0), 3);
	ck_assert_int_eq(vmu_spawn(sleeper, 100, out, sizeof(out)), 128 + 9);
}
END_TEST

static Suite *vm_pure_suite(void)
{
	Suite *s = suite_create("vm_pure");
	TCase *info = tcase_create("vm_info");
	TCase *xml = tcase_create("xml");
	TCase *util = tcase_create("util");

	tcase_add_checked_fixture(info, setup, teardown);
	tcase_set_timeout(info, 60);
	tcase_add_test(info, test_vm_info_round_trip);
	tcase_add_test(info, test_vm_info_reads_the_old_line_format);
	tcase_add_test(info, test_vm_info_damaged_files_give_clear_errors);
	tcase_add_test(info, test_vm_info_truncated_and_corrupted_files);
	suite_add_tcase(s, info);

	tcase_add_test(xml, test_vm_xml_domain_reads_back_every_value);
	tcase_add_test(xml, test_vm_xml_disk_snapshot);
	tcase_add_test(xml, test_vm_xml_get_attr);
	suite_add_tcase(s, xml);

	tcase_add_test(util, test_vmu_spawn_captures_the_childs_output);
	suite_add_tcase(s, util);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vm_pure_suite());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
