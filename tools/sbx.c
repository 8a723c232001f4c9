/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sbx - the command-line tool for people over sbxd's API: create, list,
 * inspect, rename and delete sandboxes, run commands in them (streamed, or
 * an interactive shell on a PTY) and copy files in and out.
 *
 * main() parses the global options (up to the first word that is not
 * one), resolves the endpoint and key (sbx_config.c), then dispatches
 * through the command table (crun's style); each command parses its own
 * options and has its own --help. See docs/cli.md.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "tools/sbx.h"
#include "tools/sbx_config.h"
#include "tools/sbx_http.h"

LOG_DEFINE_STATE("sbx");

static const struct sbx_command commands[] = {
    {"create", sbx_cmd_create, "[OPTIONS]", "Create a sandbox and print its name.",
     "  -n, --name NAME       its name (1-63 of a-z, 0-9, '-'); sbxd picks one if absent\n"
     "  -s, --snapshot ID     boot this snapshot (an id, or a snapshot name) instead of\n"
     "                        the default image\n"
     "      --restore-memory  with --snapshot of a snapshot taken with --memory: resume\n"
     "                        its processes (default: a fresh start on its files)\n"
     "  -c, --vcpus N         virtual CPUs\n"
     "  -m, --memory SIZE     memory: MiB, or with a unit (512, 512M, 2G)\n"
     "  -d, --disk SIZE       disk: GiB, or with a unit (4, 4G, 2048M)\n"
     "  -l, --label KEY=VALUE a label (repeat for more)\n"
     "      --idle-ttl S      stop it after S seconds without activity (default 600;\n"
     "                        0: never)\n"
     "      --lifetime S      delete it S seconds after it was created, whatever it\n"
     "                        does (default and upper bound: the server's)\n"
     "      --wait            wait until the sandbox is ready (the default)\n"
     "      --no-wait         return at once; the sandbox keeps starting\n"
     "  -t, --timeout S       how long --wait waits (default 120)\n"
     "  -j, --json            print the sandbox as JSON\n"
     "  -v, --verbose         print its details, not just its name\n"},
    {"ls", sbx_cmd_ls, "[OPTIONS]", "List your sandboxes.",
     "  -j, --json            print the list as JSON\n"
     "  -q, --quiet           print the names only\n"},
    {"status", sbx_cmd_status, "[OPTIONS] NAME",
     "Print a sandbox's status (provisioning, ready, failed, stopping, stopped,\n"
     "starting, deleting).",
     "  -v, --verbose         print all its details\n"
     "  -j, --json            print the sandbox as JSON\n"},
    {"exec", sbx_cmd_exec, "[OPTIONS] NAME [OPTIONS] [--] COMMAND [ARG...]",
     "Run a command in a sandbox, streaming its output; exit with its exit code.",
     "One argument is a shell command line ('ls -l | wc -l'); several are quoted\n"
     "word by word, like a program and its arguments. Exit code: the command's;\n"
     "128+N if signal N ended it; 124 if it ran past --timeout; 255 if sbx or\n"
     "sbxd failed. Ctrl-C kills the command (twice: leave at once).\n\n"
     "  -e, --env KEY=VALUE   set a variable (KEY alone: pass ours); repeatable\n"
     "  -w, --cwd DIR         working directory (absolute)\n"
     "      --timeout S       kill the command after S seconds (default 0: no limit)\n"
     "      --shell PATH      the shell that runs the command (default /bin/bash)\n"
     "  -i, --stdin           forward stdin even when it is a terminal\n"
     "      --no-stdin        do not forward stdin (the default for a terminal)\n"
     "  -t, --tty             run it on a pseudo-terminal (like 'sbx shell')\n"},
    {"shell", sbx_cmd_shell, "[OPTIONS] NAME [[--] COMMAND [ARG...]]",
     "Open an interactive shell (or run COMMAND) on a pseudo-terminal in a sandbox.",
     "The local terminal is in raw mode until the shell exits; window size\n"
     "changes follow. Exit code: the shell's.\n\n"
     "  -e, --env KEY=VALUE   set a variable (TERM is passed on by default)\n"
     "  -w, --cwd DIR         working directory (absolute)\n"
     "      --timeout S       end the session after S seconds (default 0: no limit)\n"
     "      --shell PATH      the shell that runs COMMAND (default /bin/bash)\n"},
    {"cp", sbx_cmd_cp, "SOURCE DEST",
     "Copy a file into a sandbox (sbx cp LOCAL NAME:PATH) or out of it\n"
     "(sbx cp NAME:PATH LOCAL).",
     "PATH is absolute; a PATH ending in '/' gets LOCAL's file name. LOCAL may be\n"
     "'-' for stdin or stdout, or a directory. Files of any size are streamed;\n"
     "a download replaces LOCAL only once it is complete. A local path with ':'\n"
     "in its first part is written ./like:this.\n"},
    {"rm", sbx_cmd_rm, "[OPTIONS] NAME...", "Delete sandboxes: their VMs, disks and commands.",
     "  -f, --force           say nothing about sandboxes that do not exist\n"},
    {"rename", sbx_cmd_rename, "OLD NEW", "Rename a sandbox.", ""},
    {"stop", sbx_cmd_stop, "[OPTIONS] NAME...",
     "Stop sandboxes: save them (files; memory too when created with\n"
     "preserve_memory_on_stop) and free their VMs. 'sbx start' resumes them.",
     "  -t, --timeout S       how long to wait for each (default 180)\n"},
    {"start", sbx_cmd_start, "[OPTIONS] NAME...",
     "Start stopped sandboxes again, under the same name and dataplane URL.",
     "  -t, --timeout S       how long to wait until each is ready (default 180)\n"},
    {"snapshot", sbx_cmd_snapshot, "create|ls|get|rm|pool ...",
     "Snapshots: capture a sandbox, list, inspect, delete; prewarmed pools.",
     "  sbx snapshot create [--memory] [--timeout S] [--json] BOX NAME\n"
     "        capture sandbox BOX (its files; with --memory its running processes\n"
     "        too), wait until the snapshot is ready (default 300 s), print its id\n"
     "  sbx snapshot ls [--json] [--quiet]      your snapshots (-q: ids only)\n"
     "  sbx snapshot get [--json] SNAPSHOT      one snapshot's details\n"
     "  sbx snapshot rm [--force] SNAPSHOT...   delete snapshots (sandboxes started\n"
     "        from them keep running)\n"
     "  sbx snapshot pool SNAPSHOT SIZE         keep SIZE sandboxes of it started\n"
     "        ahead of time (0: none)\n\n"
     "SNAPSHOT is an id or a name. Start a sandbox from one with\n"
     "'sbx create --snapshot SNAPSHOT [--restore-memory]'.\n"},
    {"audit", sbx_cmd_audit, "[--json] NAME",
     "List the commands run in a sandbox: when, by which API key, how long,\n"
     "and how they ended.",
     "OUTCOME is exited, timeout (killed by its timeout), killed (by a client,\n"
     "its idle timeout or kill-on-disconnect), failed (could not run), lost\n"
     "(sbxd stopped while it ran and could not see its end) or running.\n"
     "The log outlives the sandbox's commands; sbxd keeps it 30 days.\n\n"
     "      --json            the entries as the API gives them\n"},
    {"config", sbx_cmd_config, "[show | set NAME VALUE | unset NAME]",
     "Show where sbx finds sbxd and its key, or change the config file.",
     "NAME is endpoint or api_key. 'sbx config set api_key -' reads the key from\n"
     "stdin. The file is written with mode 0600.\n"},
};

static const struct {
	const char *alias, *name;
} aliases[] = {{"list", "ls"}, {"delete", "rm"}, {"remove", "rm"}, {"sh", "shell"}};

static const struct sbx_command *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(aliases); i++)
		if (!strcmp(name, aliases[i].alias))
			name = aliases[i].name;
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(name, commands[i].name))
			return &commands[i];
	return NULL;
}

static void main_usage(FILE *f)
{
	fprintf(f, "Usage: sbx [GLOBAL OPTIONS] COMMAND [ARGS...]\n\n"
		   "Sandboxes (microVMs) on an sbxd server, from the command line.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		const char *nl = strchr(commands[i].summary, '\n');

		fprintf(f, "  %-8s %.*s%s\n", commands[i].name,
			nl ? (int)(nl - commands[i].summary) : (int)strlen(commands[i].summary),
			commands[i].summary, nl ? " ..." : "");
	}
	fprintf(f,
		"\nGlobal options:\n"
		"      --endpoint URL   sbxd's address (else $SBX_ENDPOINT, the config file,\n"
		"                       %s)\n"
		"      --api-key KEY    the API key (else $SBX_API_KEY, the config file)\n"
		"  -v, --verbose        say more (-vv: requests, -vvv: wire traces)\n"
		"  -h, --help           this help; 'sbx COMMAND --help' for a command's\n\n"
		"The config file is ~/.config/sbx/config ('sbx config' shows it).\n"
		"Documentation: docs/cli.md.\n",
		SBX_DEFAULT_ENDPOINT);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"endpoint", required_argument, NULL, 'E'},
	    {"api-key", required_argument, NULL, 'K'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *flag_endpoint = NULL, *flag_key = NULL;
	const struct sbx_command *cmd;
	struct sbx_config cfg = {0};
	int opt, code;

	/* a closed stdout is an EPIPE to handle, not a silent death */
	signal(SIGPIPE, SIG_IGN);
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'E':
			flag_endpoint = optarg;
			break;
		case 'K':
			flag_key = optarg;
			break;
		case 'v':
			arg_verbose++;
			break;
		case 'h':
			main_usage(stdout);
			return SBX_EXIT_OK;
		default:
			fprintf(stderr, "sbx: unknown option '%s'\nTry 'sbx --help'.\n",
				argv[optind - 1]);
			return SBX_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		main_usage(stderr);
		return SBX_EXIT_USAGE;
	}
	if (!strcmp(argv[optind], "help")) {
		cmd = optind + 1 < argc ? find_command(argv[optind + 1]) : NULL;
		if (cmd)
			sbx_usage(cmd, stdout);
		else
			main_usage(stdout);
		return SBX_EXIT_OK;
	}
	cmd = find_command(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "sbx: unknown command '%s'\nTry 'sbx --help'.\n", argv[optind]);
		return SBX_EXIT_USAGE;
	}
	if (arg_verbose >= 2)
		log_set_level(LOG_LVL_DEBUG);
	if (cmd->fn == sbx_cmd_config)
		return cmd->fn(cmd, argc - optind, argv + optind);
	if (sbx_config_resolve(flag_endpoint, flag_key, &cfg) < 0) {
		sbx_config_release(&cfg);
		return sbx_error_print(SBX_EXIT_FAIL);
	}
	if (sbx_http_init(&cfg) < 0) {
		code = sbx_error_print(SBX_EXIT_FAIL);
	} else {
		log_debug("endpoint %s (from %s)", cfg.endpoint, cfg.endpoint_from);
		code = cmd->fn(cmd, argc - optind, argv + optind);
	}
	sbx_http_cleanup();
	sbx_config_release(&cfg);
	return code;
}
