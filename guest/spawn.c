/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spawn.c - vfork + exec of commands (see spawn.h).
 *
 * The child shares the agent's memory until it execs, so it only makes
 * system calls, writes into memory the parent prepared, and never returns:
 * it reports {step, errno} on the error pipe and _exit()s. Credentials are
 * changed with raw system calls so libc never tries to coordinate threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "guest/spawn.h"

struct spawn_report {
	int step;
	int err;
};

const char *spawn_step_to_string(enum spawn_step step)
{
	switch (step) {
	case SPAWN_STEP_FORK:
		return "fork";
	case SPAWN_STEP_SETSID:
		return "setsid";
	case SPAWN_STEP_TTY:
		return "tty";
	case SPAWN_STEP_FDS:
		return "fds";
	case SPAWN_STEP_GROUPS:
		return "groups";
	case SPAWN_STEP_GID:
		return "gid";
	case SPAWN_STEP_UID:
		return "uid";
	case SPAWN_STEP_CWD:
		return "cwd";
	case SPAWN_STEP_EXEC:
		return "exec";
	case SPAWN_STEP_COUNT:
		break;
	}
	return "unknown";
}

__attribute__((noreturn)) static void child_fail(int errfd, enum spawn_step step, int err)
{
	struct spawn_report r = {.step = (int)step, .err = err};

	(void)!write(errfd, &r, sizeof(r));
	_exit(127);
}

static int child_dup(int from, int to)
{
	if (from == to)
		return fcntl(to, F_SETFD, 0);
	return dup2(from, to);
}

/* execvpe() searches the agent's PATH, not the command's: search here. */
static int child_exec(const struct spawn *s, char *buf)
{
	const char *name = s->argv[0], *p = s->path, *end;
	size_t nlen = strlen(name), dlen;
	int err = ENOENT;

	if (!nlen)
		return ENOENT;
	if (strchr(name, '/')) {
		execve(name, s->argv, s->envp);
		return errno;
	}
	while (p) {
		end = strchr(p, ':');
		dlen = end ? (size_t)(end - p) : strlen(p);
		if (dlen == 0) {
			buf[0] = '.';
			dlen = 1;
		} else {
			memcpy(buf, p, dlen);
		}
		buf[dlen] = '/';
		memcpy(buf + dlen + 1, name, nlen + 1);
		execve(buf, s->argv, s->envp);
		if (errno == EACCES)
			err = EACCES;
		else if (errno != ENOENT && errno != ENOTDIR)
			return errno;
		p = end ? end + 1 : NULL;
	}
	return err;
}

__attribute__((noreturn)) static void child_main(const struct spawn *s, int errfd, char *buf)
{
	struct sigaction sa = {.sa_handler = SIG_DFL};
	sigset_t none;
	int fd;

	sigemptyset(&none);
	/* exec keeps ignored signals ignored: a command must not inherit an
	 * ignored SIGINT or SIGPIPE from however the agent was started. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &sa, NULL);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	if (setsid() < 0)
		child_fail(errfd, SPAWN_STEP_SETSID, errno);
	if (s->tty) {
		fd = open(s->tty, O_RDWR);
		if (fd < 0)
			child_fail(errfd, SPAWN_STEP_TTY, errno);
		if (ioctl(fd, TIOCSCTTY, 0) < 0)
			child_fail(errfd, SPAWN_STEP_TTY, errno);
		if (child_dup(fd, 0) < 0 || child_dup(fd, 1) < 0 || child_dup(fd, 2) < 0)
			child_fail(errfd, SPAWN_STEP_FDS, errno);
		if (fd > 2)
			close(fd);
	} else {
		if (child_dup(s->fd_in, 0) < 0 || child_dup(s->fd_out, 1) < 0 ||
		    child_dup(s->fd_err, 2) < 0)
			child_fail(errfd, SPAWN_STEP_FDS, errno);
	}
	/* what the agent set up for itself is not for its commands */
	if (s->reset_oom) {
		fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)!write(fd, "0", 1);
			close(fd);
		}
	}
	if (s->nofile)
		(void)setrlimit(RLIMIT_NOFILE, s->nofile);
	if (s->set_ids) {
		if (syscall(SYS_setgroups, 1, &s->gid) < 0)
			child_fail(errfd, SPAWN_STEP_GROUPS, errno);
		if (syscall(SYS_setresgid, s->gid, s->gid, s->gid) < 0)
			child_fail(errfd, SPAWN_STEP_GID, errno);
		if (syscall(SYS_setresuid, s->uid, s->uid, s->uid) < 0)
			child_fail(errfd, SPAWN_STEP_UID, errno);
	}
	if (chdir(s->cwd) < 0)
		child_fail(errfd, SPAWN_STEP_CWD, errno);
	child_fail(errfd, SPAWN_STEP_EXEC, child_exec(s, buf));
}

__attribute__((noinline)) static pid_t spawn_vfork(const struct spawn *s, int errfd, char *buf)
{
	pid_t pid = vfork();

	if (pid == 0)
		child_main(s, errfd, buf);
	return pid;
}

int spawn_start(const struct spawn *s, pid_t *ret_pid, enum spawn_step *ret_step)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int rfd = -EBADF;
	struct spawn_report r;
	int ep[2];
	ssize_t n;
	pid_t pid;

	*ret_step = SPAWN_STEP_FORK;
	buf = malloc(strlen(s->path ? s->path : "") + strlen(s->argv[0]) + 3);
	if (!buf)
		return -ENOMEM;
	if (pipe2(ep, O_CLOEXEC) < 0)
		return -errno;
	rfd = ep[0];
	pid = spawn_vfork(s, ep[1], buf);
	if (pid < 0) {
		n = -errno;
		close(ep[1]);
		return (int)n;
	}
	close(ep[1]);
	/* The parent resumes only after the child exec'd (the pipe's write
	 * end closed on exec: EOF) or reported and exited. */
	do
		n = read(rfd, &r, sizeof(r));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(r)) {
		*ret_step = (enum spawn_step)r.step;
		return -r.err;
	}
	*ret_pid = pid;
	return 0;
}

int spawn_open_pty(uint16_t rows, uint16_t cols, int *ret_master, char *name, size_t len)
{
	_cleanup_close_ int m = -EBADF;
	struct winsize ws = {.ws_row = rows ? rows : 24, .ws_col = cols ? cols : 80};
	int ret;

	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return -errno;
	if (grantpt(m) < 0 || unlockpt(m) < 0)
		return -errno;
	ret = ptsname_r(m, name, len);
	if (ret)
		return -ret;
	if (ioctl(m, TIOCSWINSZ, &ws) < 0)
		return -errno;
	if (fcntl(m, F_SETFL, O_RDWR | O_NONBLOCK) < 0)
		return -errno;
	*ret_master = TAKE_FD(m);
	return 0;
}

void spawn_lookup_user(uid_t uid, struct spawn_user *ret)
{
	_cleanup_fclose_ FILE *f = NULL;
	char line[1024], *fields[7], *p;
	int i;

	memset(ret, 0, sizeof(*ret));
	snprintf(ret->home, sizeof(ret->home), "%s", uid == 0 ? "/root" : "/");
	ret->gid = (gid_t)uid;
	f = fopen("/etc/passwd", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		p = line;
		for (i = 0; i < 7 && p; i++) {
			fields[i] = p;
			p = strchr(p, ':');
			if (p)
				*p++ = '\0';
		}
		if (i < 7 || strtoul(fields[2], NULL, 10) != uid)
			continue;
		ret->gid = (gid_t)strtoul(fields[3], NULL, 10);
		if (fields[5][0])
			snprintf(ret->home, sizeof(ret->home), "%s", fields[5]);
		ret->found = true;
		return;
	}
}
