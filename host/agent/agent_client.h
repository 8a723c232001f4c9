/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_client.h - the host side of one connection to an sbx-agent.
 *
 * One agent_client owns one byte stream to one agent (a Unix socket: the
 * virtio-serial channel of a VM, or an agent run as a plain process; or
 * AF_VSOCK) and multiplexes on it requests, running commands (agent_cmd) and
 * file transfers (agent_xfer).
 *
 * The core is non-blocking and callback based, for an external event loop
 * (sbxd: one epoll loop, level-triggered, over many VMs):
 *
 *	fd = agent_client_fd(c);  arm EPOLLIN, and EPOLLOUT while
 *	agent_client_wants_write(c);  call agent_client_on_readable() /
 *	agent_client_on_writable() when the fd is ready.
 *
 * API calls never do I/O: they queue frames; the loop writes them. Callbacks
 * run only from agent_client_on_readable()/on_writable()/pump() and from the
 * synchronous wrappers, on the caller's thread. There are no locks: one
 * client belongs to one thread.
 *
 * Synchronous conveniences (agent_ping(), agent_put_file(), ...) run
 * agent_client_pump() until their answer arrives; they fail with -ETIMEDOUT
 * when the agent sends nothing for agent_client_set_timeout() ms.
 *
 * Nothing the agent sends is trusted: frames are bounded by the reader, output
 * and file offsets must be contiguous and inside the announced windows, acks
 * may not exceed what was sent. A violation is a protocol error: the
 * connection is closed and everything pending fails.
 *
 * Errors are -errno (base/err.h). A failed request leaves a message for a
 * person in this thread's error slot (err_msg()) and in
 * agent_client_last_error(c), e.g. "agent: cannot open /x/y for writing: No
 * such file or directory"; a failed connect, in err_msg() only. When the connection is lost, every
 *pending request, command and transfer gets its error callback with -ECONNRESET (or the protocol
 *error that caused the close).
 *
 * Memory is bounded: data producers (stdin, file puts) stop while the send
 * queue holds more than AGENT_SENDQ_SOFT bytes or the agent's window is
 * full; received data is handed to the caller frame by frame.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "protocol/proto.h"

typedef struct agent_client agent_client;
typedef struct agent_cmd agent_cmd;
typedef struct agent_xfer agent_xfer;

#define AGENT_DEFAULT_TIMEOUT_MS 30000 /* sync wrappers: agent silence limit */
#define AGENT_EXEC_WINDOW (256 * 1024) /* default receive window per stream */
#define AGENT_GET_WINDOW (1024 * 1024) /* default receive window of a get */
#define AGENT_PUT_CHUNK (128 * 1024)   /* uncompressed bytes per DATA frame */
#define AGENT_SENDQ_SOFT (512 * 1024)  /* producers pause above this */

/* ---- connection -------------------------------------------------------- */

struct agent_connect_opts {
	int timeout_ms; /* connect + HELLO; <= 0: AGENT_DEFAULT_TIMEOUT_MS */
	/* Called about every 100 ms while waiting (socket absent, HELLO not yet
	 * there). A negative return aborts the connect with that error (e.g.
	 * -ECANCELED on a signal, -ECHILD when the VM died). May be NULL. */
	int (*check)(void *ud);
	void *ud;
};

/* Connect to ADDR ("unix:PATH" or "vsock:CID:PORT"), retrying while the
 * socket does not exist or refuses (a VM still booting), send HELLO and wait
 * for the agent's. -ETIMEDOUT with "agent did not answer within N s" when it
 * does not happen in time, -EINVAL for a malformed address,
 * -EPROTONOSUPPORT when the agent speaks another protocol version. */
int agent_client_connect(const char *addr, int timeout_ms, agent_client **ret);
int agent_client_connect_opts(const char *addr, const struct agent_connect_opts *o,
			      agent_client **ret);

/* One non-blocking connect attempt to ADDR; returns a connected
 * SOCK_CLOEXEC|SOCK_NONBLOCK stream fd or -errno (-ENOENT, -ECONNREFUSED...:
 * try again later). For event loops that retry on their own timers. */
int agent_dial(const char *addr);

/* Wrap a connected stream fd (taken over in every case, also on error: it is
 * closed). agent_client_new() queues HELLO and returns at once: the client is
 * ready when on_ready fires (requests may be queued before).
 * agent_client_from_fd() waits for the agent's HELLO for timeout_ms. */
int agent_client_new(int fd, agent_client **ret);
int agent_client_from_fd(int fd, int timeout_ms, agent_client **ret);

/* Fails everything still pending with -ECONNRESET (callbacks run), closes the
 * fd, frees the client. Outstanding agent_cmd/agent_xfer handles become
 * detached: they must still be freed by their owner. NULL-safe, returns NULL.
 * Must not be called from one of this client's callbacks. */
agent_client *agent_client_free(agent_client *c);

struct agent_client_ops {
	void (*on_ready)(agent_client *c, void *ud);	      /* agent's HELLO arrived */
	void (*on_close)(agent_client *c, int err, void *ud); /* after everything failed */
};
/* ops is copied. */
void agent_client_set_ops(agent_client *c, const struct agent_client_ops *ops, void *ud);

bool agent_client_ready(const agent_client *c);
/* 0 while the connection is usable, else the -errno that ended it. */
int agent_client_error(const agent_client *c);
/* The message of c's last failure ("" if none): why a request failed or
 * why the connection ended. Asynchronous completions (the callbacks of
 * commands and transfers, the event loop noticing a dead connection) read
 * it here, because this thread's error slot (base/err.h) serves other
 * connections in between; synchronous callers may read either. Valid until
 * the next call on c. */
const char *agent_client_last_error(const agent_client *c);
/* From the agent's HELLO ("" / false before it). */
const char *agent_client_peer_software(const agent_client *c);
bool agent_client_has_cap(const agent_client *c, const char *cap);
/* Silence limit of the synchronous wrappers; <= 0: wait forever. */
void agent_client_set_timeout(agent_client *c, int timeout_ms);

/* ---- event loop -------------------------------------------------------- */

int agent_client_fd(const agent_client *c);
bool agent_client_wants_write(const agent_client *c);
/* Both return 0, or the -errno that closed the connection (on_close has run
 * then; remove the fd from the loop and free the client). */
int agent_client_on_readable(agent_client *c);
int agent_client_on_writable(agent_client *c);
/* Until the client is ready, call this about once a second (pump() does):
 * it repeats HELLO with backoff for an agent that missed the first one
 * (virtio-serial drops what the guest sends while no host is connected). */
void agent_client_tick(agent_client *c);
/* Blocking use: poll the fd for at most timeout_ms (-1: forever) and handle
 * what is ready. 0 (also on timeout) or the -errno that closed the
 * connection. */
int agent_client_pump(agent_client *c, int timeout_ms);

/* ---- generic requests ---------------------------------------------------- */

/* Called with err == 0 and the response frame, or err < 0 and the PROTO_ERROR
 * frame (reply->type == PROTO_ERROR; the message is in last_error) or NULL
 * when the connection was lost. LIST answers come frame by frame; the last
 * one has !reply->u.list.more. The reply and its strings are valid only
 * during the call. */
typedef void (*agent_reply_fn)(agent_client *c, int err, const struct proto_msg *reply, void *ud);

/* Send a request frame (STAT, LIST, MKDIR, REMOVE, INFO, PING, SHUTDOWN,
 * FIXUP, FORGET, SIGNAL, RESIZE); the client assigns its id (returned in
 * *ret_id if not NULL). fn may be NULL (fire and forget). Not for EXEC,
 * ATTACH, FILE_READ and FILE_WRITE: use the functions below. */
int agent_request(agent_client *c, struct proto_msg *req, agent_reply_fn fn, void *ud,
		  uint32_t *ret_id);
/* Drop a pending request: its callback will not run. */
void agent_request_cancel(agent_client *c, uint32_t id);

/* ---- commands ------------------------------------------------------------ */

struct agent_exec_spec {
	const char *const *argv; /* NULL-terminated; exactly one of argv, shell */
	const char *shell;	 /* run as /bin/sh -c SHELL */
	const char *const *env;	 /* NULL-terminated "K=V"; NULL: the agent's default */
	const char *cwd;	 /* NULL: "/" */
	bool pty;
	uint16_t rows, cols;	/* pty size; 0: 24x80 */
	bool stdin_open;	/* false: stdin is /dev/null */
	uint32_t timeout_ms;	/* 0: none */
	uint32_t window;	/* receive window per stream; 0: AGENT_EXEC_WINDOW */
	uint32_t ring, keep_ms; /* output retention on the agent; 0: its default */
	/* false: output counts as consumed when on_output returns (auto-ack).
	 * true: the caller acknowledges with agent_cmd_ack(); until it does,
	 * the command blocks once a window is full (end-to-end back-pressure). */
	bool manual_ack;
};

enum agent_cmd_state {
	AGENT_CMD_STARTING, /* EXEC/ATTACH sent, no answer yet */
	AGENT_CMD_RUNNING,
	AGENT_CMD_EXITED, /* on_exit ran */
	AGENT_CMD_FAILED, /* on_error ran */
	AGENT_CMD_STATE_COUNT,
};
const char *agent_cmd_state_to_string(enum agent_cmd_state s);

/* All optional. After on_exit or on_error no callback runs again. A callback
 * may call any agent_cmd_* function, including agent_cmd_free(). */
struct agent_cmd_ops {
	void (*on_started)(agent_cmd *cmd, void *ud); /* EXEC_STARTED or ATTACHED */
	/* stream is PROTO_STDOUT or PROTO_STDERR; offset is absolute within it */
	void (*on_output)(agent_cmd *cmd, int stream, uint64_t offset, const uint8_t *data,
			  size_t len, void *ud);
	void (*on_exit)(agent_cmd *cmd, const struct proto_exit *e, void *ud);
	void (*on_error)(agent_cmd *cmd, int err, const char *msg, void *ud);
	/* stdin credit is available again after agent_cmd_write_stdin() said
	 * -EAGAIN */
	void (*on_stdin_ready)(agent_cmd *cmd, void *ud);
};

/* Start a command. The handle is the caller's (agent_cmd_free()); ops is
 * copied, spec only read during the call. */
int agent_exec(agent_client *c, const struct agent_exec_spec *spec, const struct agent_cmd_ops *ops,
	       void *ud, agent_cmd **ret);

/* Re-attach to command cmd_id (e.g. after a reconnect) and receive its
 * output from out_off / err_off on (or from the oldest retained byte, see
 * agent_cmd_attach_start()); then, if it has ended, its EXIT. Stdin resumes
 * where the agent stands (ATTACHED's offset and window); the agent refuses
 * it for a command started without stdin. */
int agent_attach(agent_client *c, uint32_t cmd_id, uint64_t out_off, uint64_t err_off,
		 uint32_t window, bool manual_ack, const struct agent_cmd_ops *ops, void *ud,
		 agent_cmd **ret);

/* Release the handle: no more callbacks. The command itself goes on in the
 * agent (re-attach by id) unless it was still starting, in which case it is
 * killed once it starts. NULL-safe, returns NULL. */
agent_cmd *agent_cmd_free(agent_cmd *cmd);

enum agent_cmd_state agent_cmd_state(const agent_cmd *cmd);
uint32_t agent_cmd_id(const agent_cmd *cmd); /* 0 until started */
int agent_cmd_pid(const agent_cmd *cmd);     /* -1 if unknown */
/* Next offset expected per stream (= bytes received so far). */
void agent_cmd_offsets(const agent_cmd *cmd, uint64_t *ret_out, uint64_t *ret_err);
/* ATTACHED's oldest retained offsets. */
void agent_cmd_attach_start(const agent_cmd *cmd, uint64_t *ret_out, uint64_t *ret_err);

/* Queue up to len bytes of stdin, as far as the agent's window and the send
 * queue allow. Returns the bytes accepted (> 0), -EAGAIN when none can be
 * now (on_stdin_ready fires when that changes), -EPIPE after close_stdin or
 * the end of the command, -EBADF when stdin was not opened, -ENOTCONN
 * before the command started. */
ssize_t agent_cmd_write_stdin(agent_cmd *cmd, const void *data, size_t len);
int agent_cmd_close_stdin(agent_cmd *cmd);
/* SIGNAL / RESIZE requests; failures are only logged (debug). */
int agent_cmd_signal(agent_cmd *cmd, int sig);
int agent_cmd_resize(agent_cmd *cmd, uint16_t rows, uint16_t cols);
/* manual_ack: everything before out_off / err_off is consumed
 * (PROTO_ACK_NONE leaves a stream alone). -EINVAL beyond what was received. */
int agent_cmd_ack(agent_cmd *cmd, uint64_t out_off, uint64_t err_off);
/* FORGET: let the agent drop an exited command's ring now. The client sends
 * it by itself once everything up to EXIT's totals was acknowledged. */
int agent_cmd_forget(agent_cmd *cmd);
void *agent_cmd_userdata(const agent_cmd *cmd);
agent_client *agent_cmd_client(const agent_cmd *cmd);

/* ---- file transfers ------------------------------------------------------ */

/* put source: fill buf with up to cap bytes; return the count, 0 at the end,
 * -EAGAIN when nothing is available now (then call agent_xfer_kick() later),
 * or another -errno to abort. */
typedef ssize_t (*agent_source_fn)(void *ud, uint8_t *buf, size_t cap);
/* get sink: take len bytes at offset (absolute within the file); 0 or
 * -errno to abort. */
typedef int (*agent_sink_fn)(void *ud, uint64_t offset, const uint8_t *data, size_t len);
/* End of a transfer: err 0 and the total size, or -errno (message in
 * agent_client_last_error()). Runs exactly once unless the handle was freed
 * first. */
typedef void (*agent_done_fn)(agent_xfer *x, int err, uint64_t size, void *ud);

struct agent_put_spec {
	const char *path; /* remote */
	uint32_t mode;	  /* 0: 0644 */
	bool mkdirs;
	bool append;
	uint64_t size; /* expected size, PROTO_ACK_NONE: unknown */
};

struct agent_get_spec {
	const char *path;
	uint64_t offset;
	uint64_t length; /* 0: to the end */
	uint32_t window; /* 0: AGENT_GET_WINDOW */
	/* true: the caller acknowledges with agent_xfer_ack() */
	bool manual_ack;
};

int agent_put_start(agent_client *c, const struct agent_put_spec *spec, agent_source_fn src,
		    agent_done_fn done, void *ud, agent_xfer **ret);
int agent_get_start(agent_client *c, const struct agent_get_spec *spec, agent_sink_fn sink,
		    agent_done_fn done, void *ud, agent_xfer **ret);
/* The source has data again after -EAGAIN. */
void agent_xfer_kick(agent_xfer *x);
/* manual_ack gets: everything before offset (absolute within the file, as
 * the sink saw it) is consumed. */
int agent_xfer_ack(agent_xfer *x, uint64_t offset);
/* FILE_OPENED's answer (get: size, mode, mtime of the remote file). */
void agent_xfer_remote(const agent_xfer *x, uint64_t *ret_size, uint32_t *ret_mode,
		       int64_t *ret_mtime);
uint64_t agent_xfer_bytes(const agent_xfer *x); /* transferred so far */
/* Release the handle; a transfer still running is aborted (ERROR on its
 * channel): a put leaves the remote file untouched. NULL-safe, returns NULL. */
agent_xfer *agent_xfer_free(agent_xfer *x);

/* fd-backed transfers: the put reads fd until EOF (blocking reads are fine
 * for regular files; a non-blocking fd returning EAGAIN needs
 * agent_xfer_kick()), the get writes fd as data arrives. fd is borrowed. */
int agent_put_fd_start(agent_client *c, const struct agent_put_spec *spec, int fd,
		       agent_done_fn done, void *ud, agent_xfer **ret);
int agent_get_fd_start(agent_client *c, const struct agent_get_spec *spec, int fd,
		       agent_done_fn done, void *ud, agent_xfer **ret);

/* ---- synchronous conveniences --------------------------------------------- */

struct agent_file_meta {
	uint64_t size;
	uint32_t mode;
	int64_t mtime;
};

/* Copy local_fd (read to EOF from its current position) to remote_path.
 * mode 0: 0644. Returns 0 or -errno. */
int agent_put_file(agent_client *c, int local_fd, const char *remote_path, uint32_t mode,
		   bool mkdirs);
/* Copy remote_path to local_fd (written from its current position).
 * ret_meta may be NULL. */
int agent_get_file(agent_client *c, const char *remote_path, int local_fd,
		   struct agent_file_meta *ret_meta);

/* Round trip of one PING, in microseconds. */
int agent_ping(agent_client *c, uint64_t *ret_rtt_us);

struct agent_info {
	char *version, *hostname, *kernel; /* owned; never NULL on success */
	uint64_t uptime_ms;
	double load[3];
	uint64_t mem_total, mem_available;
	uint32_t ncpus;
	uint32_t commands;
};
int agent_info(agent_client *c, struct agent_info *ret);
void agent_info_release(struct agent_info *i);

struct agent_stat {
	uint8_t type; /* enum proto_ftype */
	uint64_t size;
	uint32_t mode;
	uint32_t uid, gid;
	int64_t mtime;
	char *link; /* owned, NULL unless a symlink */
};
int agent_stat(agent_client *c, const char *path, struct agent_stat *ret);
void agent_stat_release(struct agent_stat *s);

struct agent_dirent {
	char *name; /* owned */
	uint8_t type;
	uint64_t size;
	uint32_t mode;
	int64_t mtime;
};
#define AGENT_LIST_MAX 1000000 /* entries accepted in one listing */
/* All entries of a directory (LIST_RESULT frames collected). */
int agent_list(agent_client *c, const char *path, struct agent_dirent **ret, size_t *ret_n);
void agent_dirents_free(struct agent_dirent *e, size_t n);

int agent_mkdir(agent_client *c, const char *path, uint32_t mode, bool parents);
int agent_remove(agent_client *c, const char *path, bool recursive);
/* The agent answers OK, then powers the guest off (or reboots). */
int agent_shutdown(agent_client *c, bool reboot);

/* ---- FIXUP: after a snapshot restore or fork -------------------------------- */

/* What FIXUP changes; a zero / NULL field is left alone. The agent applies
 * them in this order: clock, entropy (then reseeds the kernel's CRNG), root,
 * hostname; it attempts every part and reports the first failure. Pointers
 * are borrowed for the call only (the frame is encoded at once). */
struct agent_fixup_spec {
	int64_t time_ns;     /* wall clock, ns since the epoch (CLOCK_REALTIME) */
	const void *entropy; /* entropy_len (<= PROTO_MAX_ENTROPY) random bytes, credited;
			      * send at least 32 so no two forks share random state */
	size_t entropy_len;
	const char *hostname; /* 1..PROTO_MAX_HOSTNAME bytes */
	/* Zygote (a guest booted with sbx.init=wait) only: the block device
	 * holding the sandbox's root disk (e.g. "/dev/vda"); the agent drops
	 * the device's cached blocks, mounts it and switches into it. */
	const char *root;	/* absolute, 1..PROTO_MAX_ROOTDEV bytes */
	const char *rootfstype; /* 1..PROTO_MAX_FSTYPE bytes; NULL: "ext4"; only with root */
};

/* Send FIXUP and wait for the answer. 0 once everything was applied; else
 * -errno with the agent's reason in agent_client_last_error() ("agent:
 * fixup: cannot mount /dev/vda (ext4) as the root: Invalid argument"):
 *  -EINVAL    a field is out of bounds (nothing sent), or the agent
 *             refused it (relative root, rootfstype without root);
 *  -EOPNOTSUPP root was given but the agent's HELLO lacks the "root"
 *             capability (an older agent would ignore the key; nothing sent);
 *  -EBUSY     root was given and the agent already runs on a root disk (a
 *             normal boot, an earlier FIXUP with root, or an agent that is
 *             not PID 1); nothing was applied;
 *  other      the errno of the first part that failed (-EPERM, -ENODEV when
 *             the device did not appear, ...); the other parts were still
 *             attempted. A root that failed before the switch leaves the
 *             guest in its initramfs, serving, and may be sent again.
 * Waits for the agent's HELLO first if it has not arrived yet. */
int agent_fixup(agent_client *c, const struct agent_fixup_spec *spec);

/* The same, queued: fn gets the answer (OK, or err < 0 with the ERROR frame,
 * as for agent_request()); *ret_id (may be NULL) is the request's id. With
 * root the client must be ready (the agent's capabilities are known):
 * -EAGAIN before on_ready, -EOPNOTSUPP without the "root" capability. */
int agent_fixup_start(agent_client *c, const struct agent_fixup_spec *spec, agent_reply_fn fn,
		      void *ud, uint32_t *ret_id);
