/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - sbx-agent entry point: mode selection and argument parsing.
 *
 * As PID 1 (the /init of a sandbox's initramfs) the agent runs stage 1
 * (init.c) and serves the virtio-serial port and vsock forever; arguments
 * are ignored. As an ordinary process it serves what --listen names.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guest/agent.h"
#include "base/cleanup.h"
#include "guest/init.h"
#include "guest/listen.h"
#include "base/log.h"
#include "guest/loop.h"
#include "protocol/proto.h"

LOG_DEFINE_STATE("sbx-agent");

struct agent agent = {
    .conns = {&agent.conns, &agent.conns},
};

uint32_t agent_new_chan(void)
{
	if (++agent.next_chan == 0)
		agent.next_chan = 1;
	return agent.next_chan;
}

void agent_fatal(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_error("fatal: %s", msg);
	if (agent.mode != AGENT_MODE_PID1)
		exit(1);
	/* PID 1 exits: the kernel panics ("Attempted to kill init!"), tells
	 * the host through pvpanic, and the host reports a crash with this
	 * line from the console, where a power-off would say nothing. */
	sync();
	_exit(1);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sbx-agent --listen unix:PATH | --listen stdio [--verbose]\n"
		"\n"
		"The sbx guest agent. As PID 1 of a sandbox VM it sets the system up and\n"
		"serves the host over the virtio-serial port \"%s\" (and vsock port %d).\n"
		"Started by hand it serves the same protocol on:\n"
		"  --listen unix:PATH   a unix socket (any number of connections)\n"
		"  --listen stdio       one connection on stdin/stdout; exits when it ends\n"
		"  -v, --verbose        debug logging on stderr\n"
		"  --version            print the version\n"
		"  -h, --help           this text\n",
		SBX_AGENT_PORT_NAME, SBX_AGENT_VSOCK_PORT);
}

/* Every command holds up to four of our fds: lift our own limit, and hand
 * commands the limit we were started with (spawn.c). */
static void raise_nofile(void)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &agent.nofile) < 0)
		return;
	r = agent.nofile;
	if (agent.mode == AGENT_MODE_PID1 && r.rlim_max < 65536)
		r.rlim_max = 65536;
	r.rlim_cur = r.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &r) < 0) {
		r.rlim_max = agent.nofile.rlim_max;
		r.rlim_cur = r.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &r);
	}
}

static __attribute__((noreturn)) void run_pid1(void)
{
	int ret;

	agent.mode = AGENT_MODE_PID1;
	agent.is_root = true;
	init_stage1();
	raise_nofile();
	ret = loop_init();
	if (ret < 0)
		agent_fatal("cannot set up io_uring: %s", strerror(-ret));
	listen_port_start();
	listen_vsock();
	(void)loop_run();
	agent_fatal("the event loop ended");
}

/* Descriptors of whoever started us must not leak into commands. */
static void sanitize_fds(void)
{
	int i;

	for (i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) < 0)
			(void)open("/dev/null", O_RDWR);
	(void)syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *specs[16];
	int nspecs = 0, c, i, ret;

	if (getpid() == 1)
		run_pid1();
	while ((c = getopt_long(argc, argv, "l:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (nspecs == (int)ARRAY_SIZE(specs)) {
				fprintf(stderr, "sbx-agent: too many --listen options\n");
				return 2;
			}
			specs[nspecs++] = optarg;
			break;
		case 'v':
			log_set_level(LOG_LVL_DEBUG);
			break;
		case 'V':
			printf("sbx-agent %s (protocol %d)\n", SBX_AGENT_VERSION, PROTO_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || !nspecs) {
		fprintf(stderr,
			optind < argc ? "sbx-agent: unexpected argument '%s'\n"
				      : "sbx-agent: nothing to serve%s: give --listen "
					"unix:PATH or --listen stdio\n",
			optind < argc ? argv[optind] : "");
		return 2;
	}
	for (i = 0; i < nspecs; i++) {
		if (strncmp(specs[i], "unix:", 5) && strcmp(specs[i], "stdio")) {
			fprintf(stderr,
				"sbx-agent: cannot listen on '%s': use unix:PATH or stdio\n",
				specs[i]);
			return 2;
		}
	}
	agent.mode = AGENT_MODE_LISTEN;
	agent.is_root = geteuid() == 0;
	sanitize_fds();
	raise_nofile();
	/* orphans of commands are ours to reap, as they would be in the VM */
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1);
	ret = loop_init();
	if (ret < 0) {
		log_error_errno(ret, "cannot set up io_uring");
		return 1;
	}
	for (i = 0; i < nspecs; i++) {
		ret = strcmp(specs[i], "stdio") ? listen_unix(specs[i] + 5) : listen_stdio();
		if (ret < 0) {
			log_error_errno(ret, "cannot listen on %s", specs[i]);
			return 1;
		}
	}
	return loop_run();
}
