/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loop.h - the io_uring event loop of the agent.
 *
 * One io_uring_submit_and_wait() per iteration; every CQE's user_data is a
 * struct op (agent.h) and is dispatched on op->kind. Submission helpers set
 * op->busy; the loop clears it before calling the owner's handler, so a
 * handler may re-arm the same op. SQEs whose completion nobody needs
 * (cancellations, timer updates) carry user_data 0.
 *
 * Signals (SIGCHLD, SIGIO, SIGTERM, SIGINT, SIGHUP; as PID 1 also SIGUSR1,
 * SIGUSR2, SIGPWR and SIGRTMIN+3..5, which stop the system) are blocked and
 * read from a signalfd polled on the ring. All timing goes through one timer: modules
 * ask for a wake-up with loop_timer_want() and get their *_tick() called at
 * or after that time (possibly earlier: ticks must check the clock).
 */
#pragma once

#include <stdint.h>

#include "guest/agent.h"

/* Set up the ring and the signalfd. 0 or -errno. */
int loop_init(void);

/* Run until loop_quit() (never returns in PID-1 mode). Returns the status
 * given to loop_quit(). */
int loop_run(void);

/* Leave the loop: close connections, kill commands, wait for in-flight
 * requests, then return status from loop_run(). */
void loop_quit(int status);

/* Queue requests. op must not be busy. */
void loop_poll(struct op *op, int fd, unsigned events);
void loop_read(struct op *op, int fd, void *buf, unsigned len, uint64_t off);
void loop_write(struct op *op, int fd, const void *buf, unsigned len, uint64_t off);
void loop_fsync(struct op *op, int fd);
void loop_accept(struct op *op, int fd);
/* Ask the kernel to cancel op if busy; its CQE still arrives (-ECANCELED or
 * its normal result). */
void loop_cancel(struct op *op);

/* Call the tick functions at (or soon after) when_ms (clock_mono_ms()). */
void loop_timer_want(uint64_t when_ms);

/* Reap every exited child (SIGCHLD handler, also used at start-up). */
void loop_reap_children(void);
