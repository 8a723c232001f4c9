/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loop.c - the agent's io_uring loop (model: liburing examples/echo-server.c).
 *
 * Owns the ring, the signalfd and the single timer. Each iteration runs
 * before_sleep() (flush send queues, arm the timer), then one
 * io_uring_submit_and_wait(), then dispatches every CQE on op->kind. As
 * PID 1 it also turns what halt, poweroff and reboot send (signals) into a
 * power-off.
 *
 * Stream fds (sockets, pipes, PTY masters, the virtio port, the signalfd)
 * are non-blocking and driven by one-shot POLL_ADD plus a read()/write()
 * that cannot block; regular files of transfers use IORING_OP_READ/WRITE/
 * FSYNC. The virtio port reports POLLHUP and EOF while the host is away,
 * which only readiness polling handles without spinning.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "guest/agent.h"
#include "guest/conn.h"
#include "guest/exec.h"
#include "guest/init.h"
#include "guest/listen.h"
#include "base/log.h"
#include "guest/loop.h"
#include "guest/xfer.h"

#define LOOP_SQ_ENTRIES 256
#define LOOP_CQ_ENTRIES 16384 /* > every op that can be in flight at once */

static struct {
	struct io_uring ring;
	int sigfd;
	struct op sig_op;
	struct op timer_op;
	struct __kernel_timespec ts;
	uint64_t armed; /* deadline of the armed timer */
	uint64_t want;	/* earliest deadline asked for since the last arm */
	unsigned inflight;
	bool torn_down;
} L = {
    .sigfd = -EBADF,
    .sig_op = {.kind = OP_SIGNALFD},
    .timer_op = {.kind = OP_TIMER},
    .want = UINT64_MAX,
};

static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe;
	int ret;

	sqe = io_uring_get_sqe(&L.ring);
	while (!sqe) {
		ret = io_uring_submit(&L.ring);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN)
			agent_fatal("cannot submit io_uring requests: %s", strerror(-ret));
		sqe = io_uring_get_sqe(&L.ring);
	}
	return sqe;
}

static void op_submit(struct io_uring_sqe *sqe, struct op *op)
{
	io_uring_sqe_set_data(sqe, op);
	op->busy = true;
	L.inflight++;
}

void loop_poll(struct op *op, int fd, unsigned events)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_poll_add(sqe, fd, events);
	op_submit(sqe, op);
}

void loop_read(struct op *op, int fd, void *buf, unsigned len, uint64_t off)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_read(sqe, fd, buf, len, off);
	op_submit(sqe, op);
}

void loop_write(struct op *op, int fd, const void *buf, unsigned len, uint64_t off)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_write(sqe, fd, buf, len, off);
	op_submit(sqe, op);
}

void loop_fsync(struct op *op, int fd)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_fsync(sqe, fd, 0);
	op_submit(sqe, op);
}

void loop_accept(struct op *op, int fd)
{
	struct io_uring_sqe *sqe = get_sqe();

	io_uring_prep_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	op_submit(sqe, op);
}

void loop_cancel(struct op *op)
{
	struct io_uring_sqe *sqe;

	if (!op->busy)
		return;
	sqe = get_sqe();
	io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data(sqe, NULL);
}

void loop_timer_want(uint64_t when_ms)
{
	if (when_ms < L.want)
		L.want = when_ms;
}

static void timer_arm(void)
{
	struct io_uring_sqe *sqe;

	if (L.want == UINT64_MAX)
		return;
	if (L.timer_op.busy && L.armed <= L.want) {
		/* the earlier wake-up runs every tick, which asks again */
		L.want = UINT64_MAX;
		return;
	}
	L.ts.tv_sec = (long long)(L.want / 1000);
	L.ts.tv_nsec = (long long)(L.want % 1000) * 1000000;
	sqe = get_sqe();
	if (L.timer_op.busy) {
		io_uring_prep_timeout_update(sqe, &L.ts, (__u64)(uintptr_t)&L.timer_op,
					     IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data(sqe, NULL);
	} else {
		io_uring_prep_timeout(sqe, &L.ts, 0, IORING_TIMEOUT_ABS);
		op_submit(sqe, &L.timer_op);
	}
	L.armed = L.want;
	L.want = UINT64_MAX;
}

static void on_timer(void)
{
	uint64_t now = clock_mono_ms();

	L.armed = 0;
	if (L.torn_down)
		return;
	exec_tick(now);
	listen_tick(now);
}

void loop_reap_children(void)
{
	pid_t pid;
	int status;

	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		exec_on_child_exit(pid, status);
	}
}

/* What PID 1 makes of a signal that asks an init to stop the system, or
 * NULL. busybox: halt SIGUSR1, poweroff SIGUSR2, reboot SIGTERM; systemd:
 * SIGRTMIN+3 halt, +4 poweroff, +5 reboot; SIGINT is ctrl-alt-del (a
 * reboot for every init), SIGPWR a power failure (what LXC sends to stop
 * a container). A sandbox is never rebooted or left halted: each of them
 * powers the VM off (see docs/agent.md). */
static const char *pid1_stop_request(int sig)
{
	if (sig == SIGUSR1 || sig == SIGRTMIN + 3)
		return "halt";
	if (sig == SIGUSR2 || sig == SIGPWR || sig == SIGRTMIN + 4)
		return "poweroff";
	if (sig == SIGTERM || sig == SIGINT || sig == SIGRTMIN + 5)
		return "reboot";
	return NULL;
}

static void pid1_stop(const struct signalfd_siginfo *si, const char *what)
{
	log_info("signal=%s from pid=%u asks for %s: %s", strsignal((int)si->ssi_signo),
		 si->ssi_pid, what,
		 strcmp(what, "reboot") ? "powering the VM off"
					: "a sandbox does not reboot, powering the VM off");
	conn_close_all();
	init_power_off(false);
}

static void on_signals(void)
{
	struct signalfd_siginfo si[8];
	bool reap = false;
	ssize_t n;
	size_t i;

	for (;;) {
		n = read(L.sigfd, si, sizeof(si));
		if (n <= 0)
			break;
		for (i = 0; i < (size_t)n / sizeof(si[0]); i++) {
			const char *what = agent.mode == AGENT_MODE_PID1
					       ? pid1_stop_request((int)si[i].ssi_signo)
					       : NULL;

			if (what)
				pid1_stop(&si[i], what);
			switch (si[i].ssi_signo) {
			case SIGCHLD:
				reap = true;
				break;
			case SIGIO:
				listen_port_kick();
				break;
			case SIGTERM:
			case SIGINT:
			case SIGHUP:
				if (agent.mode == AGENT_MODE_PID1) { /* SIGHUP */
					log_info("signal=%s ignored by PID 1",
						 strsignal((int)si[i].ssi_signo));
					break;
				}
				log_info("signal=%s, shutting down",
					 strsignal((int)si[i].ssi_signo));
				loop_quit(0);
				break;
			default:
				break;
			}
		}
	}
	if (reap)
		loop_reap_children();
	if (!L.torn_down)
		loop_poll(&L.sig_op, L.sigfd, POLLIN);
}

static void dispatch(struct io_uring_cqe *cqe)
{
	struct op *op = io_uring_cqe_get_data(cqe);

	if (!op)
		return;
	op->busy = false;
	L.inflight--;
	switch (op->kind) {
	case OP_SIGNALFD:
		on_signals();
		break;
	case OP_TIMER:
		on_timer();
		break;
	case OP_ACCEPT:
		listen_on_accept(op, cqe->res);
		break;
	case OP_CONN_IN:
	case OP_CONN_OUT:
		conn_on_cqe(op, cqe->res);
		break;
	case OP_CMD_OUT:
	case OP_CMD_ERR:
	case OP_CMD_IN:
		exec_on_cqe(op, cqe->res);
		break;
	case OP_XFER_IO:
		xfer_on_cqe(op, cqe->res);
		break;
	case OP_KIND_COUNT:
	default:
		log_error("unknown io_uring completion kind=%d, ignoring", (int)op->kind);
		break;
	}
}

static void teardown(void)
{
	listen_close_all();
	conn_close_all();
	exec_free_all();
	loop_cancel(&L.sig_op);
	loop_cancel(&L.timer_op);
	L.torn_down = true;
}

void loop_quit(int status)
{
	if (agent.quitting)
		return;
	agent.quitting = true;
	agent.quit_status = status;
}

int loop_init(void)
{
	struct io_uring_params p = {0};
	sigset_t set;
	int ret;

	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = LOOP_CQ_ENTRIES;
	ret = io_uring_queue_init_params(LOOP_SQ_ENTRIES, &L.ring, &p);
	if (ret < 0)
		return ret;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGIO);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (agent.mode == AGENT_MODE_PID1) { /* what halt, poweroff and reboot send */
		sigaddset(&set, SIGUSR1);
		sigaddset(&set, SIGUSR2);
		sigaddset(&set, SIGPWR);
		sigaddset(&set, SIGRTMIN + 3);
		sigaddset(&set, SIGRTMIN + 4);
		sigaddset(&set, SIGRTMIN + 5);
	}
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	(void)signal(SIGPIPE, SIG_IGN);
	L.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (L.sigfd < 0)
		return -errno;
	loop_poll(&L.sig_op, L.sigfd, POLLIN);
	return 0;
}

int loop_run(void)
{
	struct io_uring_cqe *cqe;
	unsigned head, n;
	int ret;

	/* children may have exited before the signalfd existed */
	loop_reap_children();
	for (;;) {
		if (agent.quitting && !L.torn_down)
			teardown();
		conn_flush_all();
		if (L.torn_down && L.inflight == 0)
			break;
		if (!L.torn_down)
			timer_arm();
		ret = io_uring_submit_and_wait(&L.ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -ETIME)
			agent_fatal("io_uring wait failed: %s", strerror(-ret));
		n = 0;
		io_uring_for_each_cqe(&L.ring, head, cqe)
		{
			n++;
			dispatch(cqe);
		}
		io_uring_cq_advance(&L.ring, n);
	}
	io_uring_queue_exit(&L.ring);
	if (L.sigfd >= 0)
		close(L.sigfd);
	L.sigfd = -EBADF;
	return agent.quit_status;
}
