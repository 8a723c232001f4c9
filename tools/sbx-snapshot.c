/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx-snapshot - look after the snapshot store of a state directory:
 * list, inspect, verify, remove, collect garbage, export and import
 * (docs/snapshots.md, "sbx-snapshot").
 *
 * main() parses the global options and dispatches through a command table;
 * each command parses its own options. Errors go to stderr as one sentence
 * naming what failed. Exit status: 0 done, 1 failed (or damage found),
 * 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/err.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "snapshot/snap.h"

LOG_DEFINE_STATE("sbx-snapshot");

#define EXIT_USAGE 2
#define PROGRESS_MIN (64ULL * 1024 * 1024)

static const char *arg_state;
static bool arg_json;
static snap_store *store;

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
	const char *help;
};

static const struct command *cur;

static int usage_error(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "sbx-snapshot %s: %s\nUsage: sbx-snapshot [--state DIR] %s\n", cur->name,
		buf, cur->usage);
	return EXIT_USAGE;
}

static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("sbx-snapshot: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAILURE;
}

static const char *bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

static const char *when(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
	return buf;
}

/* Parse a command's options: only --json and --help (and extra ones the
 * caller handles through *flag). Returns optind, or -1 on usage error. */
static int parse_opts(int argc, char **argv, const char *extra, bool *flag)
{
	struct option opts[4] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	};
	int c;

	if (extra)
		opts[2] = (struct option){extra, no_argument, NULL, 'x'};
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			arg_json = true;
			break;
		case 'x':
			if (flag)
				*flag = true;
			break;
		case 'h':
			printf("Usage: sbx-snapshot [--state DIR] %s\n\n%s", cur->usage, cur->help);
			exit(EXIT_SUCCESS);
		default:
			usage_error("unknown option %s", argv[optind - 1]);
			return -1;
		}
	}
	return optind;
}

/* Bytes the snapshot's own (not inherited) parts take on disk. */
static uint64_t own_usage(const struct snap_manifest *m)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < m->n_parts; i++) {
		_cleanup_free_ char *p = NULL;

		if (!m->parts[i].inherited && (p = snap_blob_path(store, m->parts[i].blob)))
			sum += snap_disk_usage(p);
	}
	return sum;
}

static json_t *strv_json(char **v)
{
	json_t *a = json_array();

	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

static const char *users_text(char **vms, char **kids, char *buf, size_t len)
{
	size_t nv = 0, nk = 0;

	while (vms && vms[nv])
		nv++;
	while (kids && kids[nk])
		nk++;
	if (!nv && !nk)
		snprintf(buf, len, "-");
	else if (!nk)
		snprintf(buf, len, "%zu VM%s", nv, nv == 1 ? "" : "s");
	else if (!nv)
		snprintf(buf, len, "%zu child%s", nk, nk == 1 ? "" : "ren");
	else
		snprintf(buf, len, "%zu VM%s, %zu child%s", nv, nv == 1 ? "" : "s", nk,
			 nk == 1 ? "" : "ren");
	return buf;
}

/* ---- ls -------------------------------------------------------------------- */

static int cmd_ls(int argc, char **argv)
{
	struct snap_manifest **l = NULL;
	json_t *out = NULL;
	char **ids = NULL;
	size_t n = 0;
	int r, ret = EXIT_SUCCESS;

	r = parse_opts(argc, argv, NULL, NULL);
	if (r < 0)
		return EXIT_USAGE;
	if (r != argc)
		return usage_error("unexpected argument %s", argv[r]);
	out = arg_json ? json_array() : NULL;
	r = snap_list(store, &l, &n);
	if (r < 0 || (r = snap_scan_ids(store, &ids)) < 0)
		return fail("%s", err_msg());
	if (!arg_json)
		printf("%-36s  %-16s  %-6s  %-11s  %-8s  %9s  %-20s  %s\n", "ID", "NAME", "KIND",
		       "MEMORY", "STATUS", "SIZE", "CREATED", "USERS");
	for (size_t i = 0; i < n; i++) {
		struct snap_manifest *m = l[i];
		char **vms = NULL, **kids = NULL;
		char sz[32], cr[32], us[64];
		uint64_t use = own_usage(m);

		if (snap_users(store, m->id, &vms, &kids) < 0) {
			fprintf(stderr, "sbx-snapshot: %s\n", err_msg());
			ret = EXIT_FAILURE;
		}
		if (arg_json) {
			json_array_append_new(
			    out, json_pack("{s:s, s:o, s:s, s:s, s:s, s:I, s:s, s:I, s:{s:o, s:o}}",
					   "id", m->id, "name",
					   m->name ? json_string(m->name) : json_null(), "kind",
					   snap_kind_to_string(m->kind), "memory",
					   snap_mem_mode_to_string(m->mem_mode), "status",
					   snap_status_to_string(m->status), "size_on_disk",
					   (json_int_t)use, "created", when(m->created_ms, cr, 32),
					   "created_ms", (json_int_t)m->created_ms, "users", "vms",
					   strv_json(vms), "snapshots", strv_json(kids)));
		} else {
			printf("%-36s  %-16.16s  %-6s  %-11s  %-8s  %9s  %-20s  %s\n", m->id,
			       m->name ? m->name : "-", snap_kind_to_string(m->kind),
			       snap_mem_mode_to_string(m->mem_mode),
			       snap_status_to_string(m->status), bytes(use, sz, sizeof(sz)),
			       when(m->created_ms, cr, sizeof(cr)),
			       users_text(vms, kids, us, sizeof(us)));
		}
		snap_strv_free(vms);
		snap_strv_free(kids);
	}
	/* directories whose manifest does not load: shown, never hidden */
	for (char **id = ids; *id; id++) {
		struct snap_manifest *m = NULL;
		bool listed = false;

		for (size_t i = 0; i < n && !listed; i++)
			listed = !strcmp(l[i]->id, *id);
		if (listed)
			continue;
		r = snap_load(store, *id, &m);
		snap_manifest_free(m);
		if (r >= 0)
			continue;
		fprintf(stderr, "sbx-snapshot: %s\n", err_msg());
		ret = EXIT_FAILURE;
		if (arg_json)
			json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "id", *id, "status",
							     "broken", "error", err_msg()));
		else
			printf("%-36s  %-16s  %-6s  %-11s  %-8s  %9s  %-20s  %s\n", *id, "-", "-",
			       "-", "broken", "-", "-", "-");
	}
	if (arg_json) {
		char *s = json_dumps(out, JSON_INDENT(2));

		if (s)
			puts(s);
		free(s);
		json_decref(out);
	}
	snap_strv_free(ids);
	snap_list_free(l, n);
	return ret;
}

/* ---- inspect --------------------------------------------------------------- */

/* The snapshot in m's parent chain that owns an inherited layer. */
static char *layer_owner(const struct snap_manifest *m, const char *blob)
{
	char *id = m->parent ? strdup(m->parent) : NULL;

	for (int steps = 0; id && steps < SNAP_MAX_PARTS; steps++) {
		struct snap_manifest *p = NULL;
		char *next = NULL;
		bool own = false;

		if (snap_load(store, id, &p) < 0)
			break;
		for (size_t i = 0; i < p->n_parts; i++)
			own |= !p->parts[i].inherited && !strcmp(p->parts[i].blob, blob);
		if (own) {
			snap_manifest_free(p);
			return id;
		}
		next = p->parent ? strdup(p->parent) : NULL;
		snap_manifest_free(p);
		free(id);
		id = next;
	}
	free(id);
	return NULL;
}

static int cmd_inspect(int argc, char **argv)
{
	struct snap_manifest *m = NULL;
	char **vms = NULL, **kids = NULL;
	char a[32], b[32];
	int i = parse_opts(argc, argv, NULL, NULL), r;

	if (i < 0)
		return EXIT_USAGE;
	if (argc - i != 1)
		return usage_error("give one snapshot id");
	if (snap_load(store, argv[i], &m) < 0)
		return fail("%s", err_msg());
	r = snap_users(store, m->id, &vms, &kids);
	if (r < 0)
		fprintf(stderr, "sbx-snapshot: %s\n", err_msg());
	if (arg_json) {
		_cleanup_free_ char *text = snap_manifest_format(m);
		json_t *o = json_object(), *disk = json_object();
		char *s;

		for (size_t k = 0; k < m->n_parts; k++) {
			_cleanup_free_ char *p = snap_blob_path(store, m->parts[k].blob);

			json_object_set_new(disk, m->parts[k].blob,
					    json_integer((json_int_t)snap_disk_usage(p)));
		}
		json_object_set_new(o, "manifest", json_loads(text ? text : "null", 0, NULL));
		json_object_set_new(o, "size_on_disk", json_integer((json_int_t)own_usage(m)));
		json_object_set_new(o, "parts_on_disk", disk);
		json_object_set_new(
		    o, "users",
		    json_pack("{s:o, s:o}", "vms", strv_json(vms), "snapshots", strv_json(kids)));
		s = json_dumps(o, JSON_INDENT(2));
		if (s)
			puts(s);
		free(s);
		json_decref(o);
		goto out;
	}
	printf("snapshot   %s\nname       %s\nkind       %s, memory %s\nstatus     %s%s%s\n", m->id,
	       m->name ? m->name : "-", snap_kind_to_string(m->kind),
	       snap_mem_mode_to_string(m->mem_mode), snap_status_to_string(m->status),
	       m->status_message ? ": " : "", m->status_message ? m->status_message : "");
	printf("created    %s\nsource VM  %s\nparent     %s\n", when(m->created_ms, a, sizeof(a)),
	       m->source_vm ? m->source_vm : "-", m->parent ? m->parent : "-");
	printf("image      %s (%s)\nshape      %u vCPU%s, %u MiB memory, %s disk\n", m->image_dir,
	       *m->image_digest ? m->image_digest : "digest unknown", m->vcpus,
	       m->vcpus == 1 ? "" : "s", m->memory_mib, bytes(m->disk_bytes, b, sizeof(b)));
	printf("\nparts\n  %-6s  %-40s  %10s  %10s  %s\n", "ROLE", "BLOB", "SIZE", "ON DISK",
	       "SHA-256");
	for (size_t k = 0; k < m->n_parts; k++) {
		const struct snap_part *p = &m->parts[k];
		_cleanup_free_ char *path = snap_blob_path(store, p->blob);

		printf("  %-6s  %-40s  %10s  %10s  %.16s%s\n", snap_part_role_to_string(p->role),
		       p->blob, bytes(p->size, a, sizeof(a)),
		       bytes(snap_disk_usage(path), b, sizeof(b)), *p->sha256 ? p->sha256 : "-",
		       *p->sha256 ? "..." : "");
	}
	if (m->kind != SNAP_ZYGOTE) {
		printf("\nroot disk, newest layer first\n");
		for (size_t k = 0; k < m->n_parts; k++) {
			const struct snap_part *p = &m->parts[k];
			_cleanup_free_ char *owner = NULL;

			if (p->role != SNAP_PART_LAYER)
				continue;
			owner = p->inherited ? layer_owner(m, p->blob) : NULL;
			printf("  blobs/%-40s  %10s  %s%s\n", p->blob, bytes(p->size, a, sizeof(a)),
			       p->inherited ? "from snapshot " : "this snapshot",
			       p->inherited ? (owner ? owner : "(gone)") : "");
		}
		printf("  %s/rootfs.ext4  (the image)\n", m->image_dir);
	}
	printf("\nused by\n  VMs:       ");
	for (char **v = vms; v && *v; v++)
		printf("%s%s", *v, v[1] ? ", " : "");
	printf("%s\n  snapshots: ", vms && *vms ? "" : "-");
	for (char **v = kids; v && *v; v++)
		printf("%s%s", *v, v[1] ? ", " : "");
	printf("%s\n", kids && *kids ? "" : "-");
out:
	snap_strv_free(vms);
	snap_strv_free(kids);
	snap_manifest_free(m);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ---- verify ---------------------------------------------------------------- */

struct progress {
	const char *id;
	bool tty;
	int last;
};

static void show_progress(void *ud, uint64_t done, uint64_t total)
{
	struct progress *p = ud;
	char a[32], b[32];
	int pct;

	if (total < PROGRESS_MIN)
		return;
	pct = (int)(done * 100 / total);
	if (p->tty) {
		fprintf(stderr, "\rverifying %s: %3d%% (%s of %s) ", p->id, pct,
			bytes(done, a, sizeof(a)), bytes(total, b, sizeof(b)));
		if (done == total)
			fputs("\r\033[K", stderr);
	} else if (pct / 25 > p->last / 25 && done < total) {
		fprintf(stderr, "verifying %s: %d%%\n", p->id, pct);
	}
	p->last = pct;
}

static int verify_one(const char *id)
{
	struct snap_manifest *m = NULL;
	struct progress p = {id, isatty(2) == 1, 0};
	uint64_t total = 0;
	char a[32];
	int r;

	if (snap_load(store, id, &m) < 0) {
		fprintf(stderr, "sbx-snapshot: %s\n", err_msg());
		return -1;
	}
	for (size_t i = 0; i < m->n_parts; i++)
		total += m->parts[i].size;
	r = snap_verify(store, m, true, show_progress, &p);
	if (r < 0)
		fprintf(stderr, "sbx-snapshot: %s\n", err_msg());
	else
		printf("%s: ok (%zu part%s, %s)\n", id, m->n_parts, m->n_parts == 1 ? "" : "s",
		       bytes(total, a, sizeof(a)));
	snap_manifest_free(m);
	return r;
}

static int cmd_verify(int argc, char **argv)
{
	bool all = false;
	int i = parse_opts(argc, argv, "all", &all), bad = 0;

	if (i < 0)
		return EXIT_USAGE;
	if (all == (argc - i == 1) || argc - i > 1)
		return usage_error("give one snapshot id, or --all");
	if (!all)
		return verify_one(argv[i]) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	{
		char **ids = NULL;

		if (snap_scan_ids(store, &ids) < 0)
			return fail("%s", err_msg());
		for (char **id = ids; *id; id++)
			bad += verify_one(*id) < 0;
		snap_strv_free(ids);
	}
	if (bad)
		fprintf(stderr, "sbx-snapshot: %d snapshot%s damaged or incomplete\n", bad,
			bad == 1 ? " is" : "s are");
	return bad ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ---- rm, gc ---------------------------------------------------------------- */

static int cmd_rm(int argc, char **argv)
{
	int i = parse_opts(argc, argv, NULL, NULL), ret = EXIT_SUCCESS;

	if (i < 0)
		return EXIT_USAGE;
	if (argc - i < 1)
		return usage_error("give the id of the snapshot to remove");
	for (; i < argc; i++) {
		struct snap_manifest *m = NULL;
		char **vms = NULL, **kids = NULL;
		uint64_t freed = 0, kept = 0;
		size_t n_kept = 0;
		char a[32], b[32];

		(void)snap_load(store, argv[i], &m); /* a damaged one goes too */
		(void)snap_users(store, argv[i], &vms, &kids);
		if (snap_delete(store, argv[i], &freed) < 0) {
			fprintf(stderr, "sbx-snapshot: %s\n", err_msg());
			ret = EXIT_FAILURE;
			goto next;
		}
		for (size_t k = 0; m && k < m->n_parts; k++) {
			_cleanup_free_ char *p = snap_blob_path(store, m->parts[k].blob);
			struct stat st;

			if (p && lstat(p, &st) == 0) {
				n_kept++;
				kept += (uint64_t)st.st_blocks * 512;
			}
		}
		printf("removed snapshot %s, freed %s\n", argv[i], bytes(freed, a, sizeof(a)));
		if (n_kept) {
			printf("  kept %zu blob%s (%s) still in use by", n_kept,
			       n_kept == 1 ? "" : "s", bytes(kept, b, sizeof(b)));
			for (char **v = vms; v && *v; v++)
				printf(" VM %s%s", *v, v[1] || (kids && *kids) ? "," : "");
			for (char **v = kids; v && *v; v++)
				printf(" snapshot %s%s", *v, v[1] ? "," : "");
			if (!(vms && *vms) && !(kids && *kids))
				printf(" other snapshots");
			printf("\n");
		}
	next:
		snap_strv_free(vms);
		snap_strv_free(kids);
		snap_manifest_free(m);
	}
	return ret;
}

static int cmd_gc(int argc, char **argv)
{
	bool dead = false;
	uint64_t freed = 0;
	char a[32];
	int i = parse_opts(argc, argv, "dead-building", &dead);

	if (i < 0)
		return EXIT_USAGE;
	if (i != argc)
		return usage_error("unexpected argument %s", argv[i]);
	if (snap_gc(store, dead, &freed) < 0)
		return fail("%s", err_msg());
	printf("freed %s\n", bytes(freed, a, sizeof(a)));
	return EXIT_SUCCESS;
}

/* ---- export, import -------------------------------------------------------- */

static int cmd_export(int argc, char **argv)
{
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -EBADF;
	const char *file;
	struct stat st;
	char a[32];
	int i = parse_opts(argc, argv, NULL, NULL), r;

	if (i < 0)
		return EXIT_USAGE;
	if (argc - i != 2)
		return usage_error("give a snapshot id and a file (or - for standard output)");
	file = argv[i + 1];
	if (!strcmp(file, "-")) {
		if (isatty(1))
			return fail("will not write an archive to a terminal; redirect the output");
		if (snap_export(store, argv[i], 1) < 0)
			return fail("%s", err_msg());
		return EXIT_SUCCESS;
	}
	/* a temporary file renamed at the end: FILE is whole or absent */
	if (asprintf(&tmp, "%s.tmp-XXXXXX", file) < 0)
		return fail("out of memory");
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return fail("cannot create %s: %s", tmp, strerror(errno));
	{
		mode_t um = umask(0);

		umask(um);
		(void)fchmod(fd, 0666 & ~um);
	}
	r = snap_export(store, argv[i], fd);
	if (r == 0 && (fsync(fd) < 0 || fstat(fd, &st) < 0 || rename(tmp, file) < 0))
		r = err_set(-errno, "cannot write %s: %s", file, strerror(errno));
	if (r < 0) {
		(void)unlink(tmp);
		return fail("%s", err_msg());
	}
	printf("exported snapshot %s to %s (%s)\n", argv[i], file,
	       bytes((uint64_t)st.st_size, a, sizeof(a)));
	return EXIT_SUCCESS;
}

static int cmd_import(int argc, char **argv)
{
	_cleanup_free_ char *id = NULL;
	_cleanup_close_ int fd = -EBADF;
	int i = parse_opts(argc, argv, NULL, NULL);

	if (i < 0)
		return EXIT_USAGE;
	if (argc - i != 1)
		return usage_error("give an archive file (or - for standard input)");
	if (strcmp(argv[i], "-")) {
		fd = open(argv[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return fail("cannot open %s: %s", argv[i], strerror(errno));
	}
	if (snap_import(store, fd >= 0 ? fd : 0, &id) < 0)
		return fail("%s", err_msg());
	printf("imported snapshot %s\n", id);
	return EXIT_SUCCESS;
}

/* ---- main ------------------------------------------------------------------ */

static const struct command commands[] = {
    {"ls", cmd_ls, "ls [--json]",
     "List the snapshots: id, name, kind, memory mode, status, size of its own\n"
     "parts on disk, creation time (UTC) and who uses it.\n"},
    {"inspect", cmd_inspect, "inspect [--json] ID",
     "Show a snapshot's manifest, its parts, its root disk's layer chain and\n"
     "the VMs and snapshots that use it.\n"},
    {"verify", cmd_verify, "verify ID | verify --all",
     "Re-hash every part of a snapshot (or of all) and check its image. Exit\n"
     "status 1 names the damaged part.\n"},
    {"rm", cmd_rm, "rm ID...",
     "Remove snapshots. Parts still used by VMs forked from them or by child\n"
     "snapshots stay until those are gone; says what stays and what was freed.\n"},
    {"gc", cmd_gc, "gc [--dead-building]",
     "Free every blob no snapshot and no VM uses. --dead-building also removes\n"
     "snapshots left \"building\" (only when no sbxd or capture is running).\n"},
    {"export", cmd_export, "export ID FILE|-",
     "Write a snapshot and every blob it needs to one file (tar, zstd, sparse\n"
     "files kept sparse).\n"},
    {"import", cmd_import, "import FILE|-",
     "Read a file written by export; every checksum is verified before the\n"
     "snapshot appears. Fails if a snapshot with its id exists.\n"},
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: sbx-snapshot [--state DIR] COMMAND [OPTIONS] [ARGS]\n\n"
		   "Look after the snapshots of an sbx state directory (default /var/lib/sbx,\n"
		   "or $SBX_STATE_DIR).\n\nCommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %s\n", commands[i].usage);
	fprintf(f, "\nsbx-snapshot COMMAND --help describes one. Exit status: 0 done, 1 failed,\n"
		   "2 usage error.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct stat st;
	int c, ret;

	arg_state = getenv("SBX_STATE_DIR");
	if (!arg_state || !*arg_state)
		arg_state = "/var/lib/sbx";
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			arg_state = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "sbx-snapshot: unknown option or missing argument: %s\n",
				argv[optind - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands) && !cur; i++)
		if (!strcmp(commands[i].name, argv[optind]))
			cur = &commands[i];
	if (!cur) {
		fprintf(stderr, "sbx-snapshot: unknown command \"%s\"\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	for (int i = optind + 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("Usage: sbx-snapshot [--state DIR] %s\n\n%s", cur->usage, cur->help);
			return EXIT_SUCCESS;
		}
	if (stat(arg_state, &st) < 0 || !S_ISDIR(st.st_mode))
		return fail("state directory %s does not exist (give --state DIR or set "
			    "$SBX_STATE_DIR)",
			    arg_state);
	if (snap_store_open(arg_state, &store) < 0)
		return fail("%s", err_msg());
	ret = cur->fn(argc - optind, argv + optind);
	store = snap_store_free(store);
	return ret;
}
