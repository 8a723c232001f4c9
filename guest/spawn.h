/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spawn.h - starting a command's process: vfork + exec with a CLOEXEC error
 * pipe, so a failure in the child (no such program, bad cwd, setuid denied)
 * is reported to the caller with the step and errno instead of a silent
 * exit status 127. Also the helpers that prepare a spawn: PTY pairs, the
 * default environment, and the /etc/passwd lookup (plain file parsing; no
 * NSS in PID 1).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

enum spawn_step {
	SPAWN_STEP_FORK,
	SPAWN_STEP_SETSID,
	SPAWN_STEP_TTY,
	SPAWN_STEP_FDS,
	SPAWN_STEP_GROUPS,
	SPAWN_STEP_GID,
	SPAWN_STEP_UID,
	SPAWN_STEP_CWD,
	SPAWN_STEP_EXEC,
	SPAWN_STEP_COUNT,
};

struct spawn {
	char *const *argv; /* argv[0] is searched in path unless it has a '/' */
	char *const *envp;
	const char *path; /* PATH used for the search */
	const char *cwd;
	bool set_ids;
	uid_t uid;
	gid_t gid;
	const char *tty;	     /* PTY slave to become stdin/out/err and the ctty */
	int fd_in, fd_out, fd_err;   /* without tty: the child's 0, 1, 2 */
	bool reset_oom;		     /* oom_score_adj back to 0 (PID 1 runs at -1000) */
	const struct rlimit *nofile; /* RLIMIT_NOFILE for the child, or NULL */
};

/* Start the process in a new session (so also a new process group). On
 * failure returns -errno and sets *ret_step (a failed child is left for the
 * SIGCHLD reaper). */
int spawn_start(const struct spawn *s, pid_t *ret_pid, enum spawn_step *ret_step);

const char *spawn_step_to_string(enum spawn_step step);

/* A PTY master (non-blocking, CLOEXEC) with its window size set; the slave's
 * path goes to name. */
int spawn_open_pty(uint16_t rows, uint16_t cols, int *ret_master, char *name, size_t len);

struct spawn_user {
	char home[256];
	gid_t gid;
	bool found;
};

/* Look uid up in /etc/passwd. Not finding it is not an error (found=false,
 * home "/"). */
void spawn_lookup_user(uid_t uid, struct spawn_user *ret);

#define SPAWN_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
