/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agentctl_run.c - "sbx-agentctl run": boot a throwaway VM, run one command
 * in it, destroy the VM.
 *
 * The VM must go away on every way out. Termination signals are blocked
 * (into a signalfd) before the VM driver starts its threads, so no thread
 * can be killed by one; a signal while booting aborts the wait, a signal
 * while the command runs is forwarded to it (agentctl_exec()), and in every
 * case control comes back here to vm_destroy().
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/io.h"
#include "base/clock.h"
#include "base/err.h"
#include "tools/agentctl_common.h"
#include "base/cleanup.h"
#include "base/log.h"
#include "host/vm/vm.h"

#define DEFAULT_STATE_DIR "/var/lib/sbx/agentctl"
#define DEFAULT_BOOT_TIMEOUT_MS 60000
#define CONSOLE_TAIL 4096

static const char *const image_files[] = {"vmlinuz", "initrd.img", "rootfs.ext4", "manifest.json"};
static const char *const image_missing_msg[] = {"vmlinuz missing", "initrd.img missing",
						"rootfs.ext4 missing", "manifest.json missing"};

/* What an image directory lacks ("vmlinuz missing"), or NULL when it is
 * complete. */
static const char *image_missing(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	size_t i;

	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return "no such directory";

	for (i = 0; i < ARRAY_SIZE(image_files); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, image_files[i]);
		if (access(path, R_OK) < 0)
			return image_missing_msg[i];
	}
	return NULL;
}

/* --image, else $SBX_IMAGE, else images/default beside the binary (the
 * build directory), else build/images/default under the current directory.
 * Returns the first complete one, or the first candidate with what it
 * lacks. */
static char *resolve_image(const char *arg, const char **ret_missing)
{
	char exe[PATH_MAX], *slash, *cand[3] = {NULL, NULL, NULL}, *res = NULL;
	const char *env = getenv("SBX_IMAGE");
	ssize_t n;
	int i, nc = 0;

	*ret_missing = NULL;
	if (arg || (env && *env)) {
		res = realpath(arg ? arg : env, NULL);
		if (!res)
			res = strdup(arg ? arg : env);
		if (res)
			*ret_missing = image_missing(res);
		return res;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			if (asprintf(&cand[nc], "%s/images/default", exe) >= 0)
				nc++;
		}
	}
	cand[nc++] = strdup("build/images/default");
	for (i = 0; i < nc; i++)
		if (cand[i] && !res && !image_missing(cand[i]))
			res = cand[i], cand[i] = NULL;
	if (!res) {
		/* report the one beside the binary: that is what 'make image'
		 * builds */
		res = cand[0];
		cand[0] = NULL;
		if (res)
			*ret_missing = image_missing(res);
	}
	for (i = 0; i < nc; i++)
		free(cand[i]);
	return res;
}

struct boot_check {
	vm *v;
	double last;
};

/* While waiting for the agent: give up early when the VM died. */
static int boot_check(void *ud)
{
	struct boot_check *b = ud;
	double now = clock_mono_s();

	if (now - b->last < 1.0)
		return 0;
	b->last = now;
	if (vm_is_running(b->v) == 0)
		return -ECHILD;
	return 0;
}

static void print_console_tail(vm *v)
{
	char buf[CONSOLE_TAIL];

	if (vm_console_tail(v, buf, sizeof(buf)) < 0 || !buf[0])
		return;
	fprintf(stderr,
		"--- last lines of the console log (%s) ---\n%s%s--- end of console log ---\n",
		vm_console_log(v), buf, buf[strlen(buf) - 1] == '\n' ? "" : "\n");
}

static const struct option run_options[] = {
    {"image", required_argument, NULL, 'I'},
    {"vcpus", required_argument, NULL, 'P'},
    {"memory", required_argument, NULL, 'M'},
    {"stdin", no_argument, NULL, 'i'},
    {"tty", no_argument, NULL, 't'},
    {"timeout", required_argument, NULL, 'T'},
    {"boot-timeout", required_argument, NULL, 'B'},
    {"keep", no_argument, NULL, 'K'},
    {"state-dir", required_argument, NULL, 'S'},
    {"env", required_argument, NULL, 'e'},
    {"cwd", required_argument, NULL, 'w'},
    {"shell", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},
    {0},
};

static const char run_usage[] =
    "run [--image DIR] [--vcpus N] [--memory MIB] [--stdin] [--tty] [--timeout S]\n"
    "       [--boot-timeout S] [--keep] [--state-dir DIR] [--env K=V]... [--cwd DIR]\n"
    "       -- CMD [ARG...]";

static int run_usage_error(const char *what, const char *arg)
{
	fprintf(stderr,
		"sbx-agentctl run: %s%s%s\nUsage: sbx-agentctl %s\n"
		"Try 'sbx-agentctl run --help'.\n",
		what, arg ? " " : "", arg ? arg : "", run_usage);
	return EXIT_USAGE;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;

	errno = 0;
	*ret = strtoul(s, &end, 10);
	return !errno && end != s && !*end && *ret > 0 && *ret <= max;
}

static void run_help(void)
{
	printf("Usage: sbx-agentctl [GLOBAL OPTIONS] %s\n\n", run_usage);
	printf("Boot a throwaway VM, run one command in it as exec does, destroy the VM and\n"
	       "exit with the command's code (128+N for signal N). The VM is destroyed on\n"
	       "every way out, including SIGINT/SIGTERM and errors, unless --keep is given.\n\n"
	       "  --image DIR          image directory (vmlinuz, initrd.img, rootfs.ext4,\n"
	       "                       manifest.json); default: $SBX_IMAGE, else\n"
	       "                       images/default beside this binary, else\n"
	       "                       build/images/default in the current directory\n"
	       "  --vcpus N            virtual CPUs (default 1)\n"
	       "  --memory MIB         guest memory in MiB (default 512)\n"
	       "  -i, --stdin          forward stdin (with back-pressure)\n"
	       "  -t, --tty            use a pseudo-terminal (see exec --help)\n"
	       "  -T, --timeout S      the command's timeout: SIGKILL after S seconds\n"
	       "  --boot-timeout S     how long to wait for the agent (default 60)\n"
	       "  --keep               leave the VM running; print its name and agent socket\n"
	       "  --state-dir DIR      VM driver state (default: $SBX_STATE_DIR, else\n"
	       "                       " DEFAULT_STATE_DIR ")\n"
	       "  -e, --env K=V        environment variable (repeatable)\n"
	       "  -w, --cwd DIR        working directory\n"
	       "  -c, --shell STRING   run STRING with /bin/sh -c\n\n"
	       "With -v the accelerator (kvm or tcg) and the timings go to stderr.\n"
	       "Exit codes besides the command's: 125 (sbx-agentctl, the VM or the agent\n"
	       "failed), 126/127 (the command cannot be executed / was not found).\n");
}

int agentctl_run(int argc, char **argv)
{
	struct vm_driver_config dcfg = {.force_accel = -1};
	struct vm_config vcfg = {0};
	struct exec_opts o = {0};
	_cleanup_free_ const char **envv = NULL;
	_cleanup_free_ char *image = NULL, *name = NULL, *kernel = NULL;
	_cleanup_close_ int sigfd = -EBADF;
	const char *image_arg = NULL, *state_dir, *missing;
	int boot_timeout_ms = DEFAULT_BOOT_TIMEOUT_MS, opt, r, code = EXIT_TOOL;
	struct boot_check bc = {0};
	agent_client *c = NULL;
	vm_driver *d = NULL;
	vm *v = NULL;
	bool keep = false;
	unsigned long ul;
	size_t nenv = 0;
	double t_start, t_booted, t_ready, t_done, t_destroyed;

	state_dir = getenv("SBX_STATE_DIR");
	if (!state_dir || !*state_dir)
		state_dir = DEFAULT_STATE_DIR;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+itT:e:w:c:h", run_options, NULL)) != -1) {
		switch (opt) {
		case 'h':
			run_help();
			return 0;
		case 'I':
			image_arg = optarg;
			break;
		case 'P':
			if (!parse_uint(optarg, 64, &ul))
				return run_usage_error("bad --vcpus", optarg);
			vcfg.vcpus = (unsigned)ul;
			break;
		case 'M':
			if (!parse_uint(optarg, 1024 * 1024, &ul) || ul < 64)
				return run_usage_error("bad --memory (MiB, at least 64)", optarg);
			vcfg.memory_mib = (unsigned)ul;
			break;
		case 'B':
			if (!parse_uint(optarg, 3600, &ul))
				return run_usage_error("bad --boot-timeout (seconds)", optarg);
			boot_timeout_ms = (int)ul * 1000;
			break;
		case 'K':
			keep = true;
			break;
		case 'S':
			state_dir = optarg;
			break;
		default:
			r = agentctl_parse_exec_opt(opt, optarg, &o, &envv, &nenv);
			if (r < 0)
				return EXIT_USAGE;
			if (r == 0)
				return run_usage_error("bad option", argv[optind - 1]);
		}
	}
	if (o.shell && optind < argc)
		return run_usage_error("give either --shell STRING or a command, not both", NULL);
	if (!o.shell && optind >= argc)
		return run_usage_error("no command given", NULL);
	if (!o.shell)
		o.argv = (const char *const *)argv + optind;

	image = resolve_image(image_arg, &missing);
	if (!image) {
		agentctl_error("out of memory");
		return EXIT_TOOL;
	}
	if (missing) {
		agentctl_error("no VM image at %s (%s): run 'make image'", image, missing);
		return EXIT_TOOL;
	}
	r = io_mkdir_p(state_dir, 0700);
	if (r < 0) {
		agentctl_error("cannot create the state directory %s: %s", state_dir, strerror(-r));
		return EXIT_TOOL;
	}

	/* before the driver starts threads: they inherit the blocked mask */
	sigfd = agentctl_signalfd();
	if (sigfd < 0) {
		agentctl_error("cannot set up signal handling: %s", strerror(-sigfd));
		return EXIT_TOOL;
	}
	dcfg.state_dir = state_dir;
	if (asprintf(&kernel, "%s/vmlinuz", image) < 0) {
		kernel = NULL;
		agentctl_error("out of memory");
		return EXIT_TOOL;
	}
	dcfg.probe_kernel = kernel; /* KVM only if a guest really boots on it */
	r = vm_driver_open(&dcfg, &d);
	if (r < 0) {
		const char *why = err_msg();

		agentctl_error("cannot open the VM driver (state in %s): %s", state_dir,
			       why && *why ? why : strerror(-r));
		return EXIT_TOOL;
	}
	srandom((unsigned)(time(NULL) ^ getpid()));
	if (asprintf(&name, "run-%d-%04lx", (int)getpid(), random() & 0xffff) < 0) {
		name = NULL;
		agentctl_error("out of memory");
		goto out_driver;
	}
	vcfg.name = name;
	vcfg.image_dir = image;
	if (arg_verbose)
		fprintf(stderr, "sbx-agentctl: starting VM %s from %s, accelerator %s (%s)\n", name,
			image, vm_accel_to_string(vm_driver_accel(d)), vm_driver_accel_reason(d));
	t_start = clock_mono_s();
	r = vm_start(d, &vcfg, &v);
	if (r < 0) {
		agentctl_error("cannot start a VM from %s: %s", image, err_msg());
		goto out_driver;
	}
	t_booted = clock_mono_s();
	bc.v = v;
	bc.last = t_booted;
	r = agentctl_connect(vm_agent_socket(v), boot_timeout_ms, sigfd, boot_check, &bc, true, &c);
	if (r < 0) {
		if (r == -ETIMEDOUT)
			agentctl_error(
			    "the agent did not answer within %d s (VM %s, accelerator %s)",
			    boot_timeout_ms / 1000, name, vm_accel_to_string(vm_driver_accel(d)));
		else if (r == -ECHILD)
			agentctl_error("VM %s stopped before its agent answered", name);
		else if (r == -ECANCELED)
			agentctl_error("interrupted while VM %s was booting", name);
		else
			agentctl_error("cannot connect to the agent of VM %s: %s", name,
				       *err_msg() ? err_msg() : strerror(-r));
		if (r != -ECANCELED)
			print_console_tail(v);
		goto out_vm;
	}
	t_ready = clock_mono_s();
	if (arg_verbose)
		fprintf(stderr,
			"sbx-agentctl: accel=%s vm_start=%.2f s agent_ready=%.2f s "
			"(boot %.2f s) agent=\"%s\"\n",
			vm_accel_to_string(vm_driver_accel(d)), t_booted - t_start,
			t_ready - t_start, t_ready - t_booted, agent_client_peer_software(c));
	code = agentctl_exec(c, &o, sigfd);
	t_done = clock_mono_s();
	if (arg_verbose)
		fprintf(stderr, "sbx-agentctl: command took %.2f s\n", t_done - t_ready);
	c = agent_client_free(c);

out_vm:
	if (keep) {
		fprintf(stderr,
			"sbx-agentctl: kept VM %s running (state dir %s)\n"
			"  agent:   sbx-agentctl --connect unix:%s ...\n"
			"  console: %s\n",
			name, state_dir, vm_agent_socket(v), vm_console_log(v));
	} else {
		t_destroyed = clock_mono_s();
		r = vm_destroy(v);
		if (r < 0)
			agentctl_error("cannot destroy VM %s: %s", name, err_msg());
		else if (arg_verbose)
			fprintf(stderr, "sbx-agentctl: destroyed VM %s in %.2f s\n", name,
				clock_mono_s() - t_destroyed);
	}
	vm_free(v);
out_driver:
	agent_client_free(c);
	vm_driver_free(d);
	return code;
}
