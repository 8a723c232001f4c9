/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent.h - what every module of sbx-agent shares: the global agent state,
 * the in-flight operation tag used as io_uring user_data, limits, and a
 * small intrusive list.
 *
 * Invariants:
 *  - the agent is single-threaded; everything runs on the loop in loop.c;
 *  - an object that owns a struct op is never freed while op.busy is set
 *    (its SQE is in flight): it is cancelled, marked dead, and freed from the
 *    CQE handler once all its ops are idle;
 *  - channel ids (commands and transfers) come from one counter, so a
 *    channel number names at most one object for the life of the agent.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#define SBX_AGENT_VERSION "0.1.0"
#define SBX_AGENT_VSOCK_PORT 1024
#define SBX_AGENT_PORT_NAME "sbx.agent"

/* Limits and defaults (docs/agent.md lists them for operators). */
#define AGENT_MAX_COMMANDS 1024		 /* running at once */
#define AGENT_MAX_RETAINED 256		 /* finished commands kept for ATTACH */
#define AGENT_RING_DEFAULT (1024 * 1024) /* output ring per stream */
#define AGENT_RING_MIN (64 * 1024)
#define AGENT_RING_MAX (64 * 1024 * 1024)
#define AGENT_KEEP_DEFAULT_MS (10 * 60 * 1000)
#define AGENT_STDIN_WINDOW (256 * 1024)
#define AGENT_OUTPUT_CHUNK (64 * 1024)	   /* data bytes per OUTPUT frame */
#define AGENT_SENDQ_SOFT (2 * 1024 * 1024) /* producers stop above this */
#define AGENT_SENDQ_HARD (8 * 1024 * 1024) /* requests are not read above this */
#define AGENT_EXIT_GRACE_MS 2000	   /* then SIGKILL the group */
#define AGENT_EXIT_FORCE_MS 5000	   /* then stop waiting for pipe EOF */
#define AGENT_XFER_WINDOW (1024 * 1024)	   /* FILE_WRITE receive window */
#define AGENT_XFER_CHUNK (128 * 1024)	   /* FILE_READ chunk */
#define AGENT_MAX_XFERS 64		   /* per connection */
#define AGENT_PORT_RETRY_MS 200

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

struct list {
	struct list *prev, *next;
};

static inline void list_init(struct list *l)
{
	l->prev = l->next = l;
}

static inline bool list_empty(const struct list *l)
{
	return l->next == l;
}

static inline void list_add_tail(struct list *head, struct list *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void list_del(struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	list_init(n);
}

/* Loop header over a list whose current element may be unlinked:
 *   for (list_each_safe(pos, tmp, &head)) { ... } */
#define list_each_safe(pos, tmp, head)                                                             \
	(pos) = (head)->next, (tmp) = (pos)->next;                                                 \
	(pos) != (head);                                                                           \
	(pos) = (tmp), (tmp) = (pos)->next

/* What an in-flight io_uring request is for; user_data points at the op. */
enum op_kind {
	OP_SIGNALFD,
	OP_TIMER,
	OP_ACCEPT,
	OP_CONN_IN,
	OP_CONN_OUT,
	OP_CMD_OUT,
	OP_CMD_ERR,
	OP_CMD_IN,
	OP_XFER_IO,
	OP_KIND_COUNT,
};

struct op {
	enum op_kind kind;
	bool busy; /* an SQE with this op as user_data is in flight */
};

enum agent_mode {
	AGENT_MODE_PID1,   /* init of a guest: virtio-serial port + vsock */
	AGENT_MODE_LISTEN, /* ordinary process: --listen unix:PATH / stdio */
};

struct agent {
	enum agent_mode mode;
	bool is_root;
	struct list conns;  /* struct conn.link */
	uint32_t next_chan; /* last channel id handed out */
	bool quitting;
	int quit_status;
	struct rlimit nofile; /* RLIMIT_NOFILE at start: what commands get */
};

extern struct agent agent;

/* A new channel id (never 0, never reused while the agent runs). */
uint32_t agent_new_chan(void);

/* PID 1: console message, sync, exit (the kernel panics: the host sees a
 * crash, with this message). Ordinary process: exit(1). */
__attribute__((noreturn, format(printf, 1, 2))) void agent_fatal(const char *fmt, ...);
