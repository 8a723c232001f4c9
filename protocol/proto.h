/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proto.h - the sbx agent protocol: framing, messages, credit flow control.
 *
 * Shared by the guest agent and every host component. No I/O, no logging, no
 * global state. docs/protocol.md is the normative description of the bytes;
 * this header is the C view of it.
 *
 * A frame is a 16-byte little-endian header followed by a msgpack map:
 *
 *   u32 magic "SBXF" | u32 body length | u16 type | u16 flags | u32 channel
 *
 * Invariants:
 *  - a body is never longer than PROTO_MAX_BODY; the decoder rejects larger
 *    lengths before anything is allocated;
 *  - every decoded string is NUL-terminated, bounded, and has no embedded NUL;
 *  - decoded byte payloads (struct proto_bytes) and strings point into memory
 *    owned by the struct proto_msg (its zone) or into the caller's frame
 *    buffer: they live until proto_msg_release() AND until the frame buffer is
 *    reused, whichever comes first;
 *  - unknown map keys are ignored (forward compatibility); known keys with the
 *    wrong type are an error.
 *
 * Error returns are -errno: -EAGAIN (need more bytes), -EBADMSG (malformed),
 * -EMSGSIZE (over a limit), -EPROTO (well-formed but not allowed here),
 * -ENOMEM.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1
#define PROTO_MAGIC 0x46584253u /* "SBXF" as little-endian u32 */
#define PROTO_HEADER_SIZE 16
#define PROTO_MAX_BODY (1024 * 1024)	   /* hard limit of a frame body */
#define PROTO_MAX_CHUNK (256 * 1024)	   /* data bytes in one DATA/OUTPUT/STDIN */
#define PROTO_MAX_STR (64 * 1024)	   /* any single string */
#define PROTO_MAX_PATH 4096		   /* paths, cwd */
#define PROTO_MAX_ARGS 4096		   /* argv or env entries */
#define PROTO_MAX_CAPS 64		   /* hello capabilities */
#define PROTO_MAX_ENTRIES 4096		   /* entries in one LIST_RESULT frame */
#define PROTO_MAX_ENTROPY 512		   /* bytes of host entropy in FIXUP */
#define PROTO_DEFAULT_WINDOW (1024 * 1024) /* receive window if none is given */
#define PROTO_MAX_DEPTH 8		   /* msgpack containers nested in a body, map included */
#define PROTO_MAX_HOSTNAME 64		   /* hostname strings (Linux HOST_NAME_MAX) */
#define PROTO_MAX_ROOTDEV 255		   /* FIXUP root: block device path */
#define PROTO_MAX_FSTYPE 31		   /* FIXUP rootfstype: file system name */

/* Frame types. Requests carry an "id" the response echoes. */
enum proto_type {
	PROTO_HELLO = 1,	 /* both ways, first frame of a connection */
	PROTO_ERROR = 2,	 /* response to a failed request, or a bad frame */
	PROTO_OK = 3,		 /* generic success response */
	PROTO_PING = 4,		 /* request */
	PROTO_PONG = 5,		 /* response */
	PROTO_EXEC = 10,	 /* request: start a command */
	PROTO_EXEC_STARTED = 11, /* response: channel = command id */
	PROTO_OUTPUT = 12,	 /* agent->host on a command channel */
	PROTO_STDIN = 13,	 /* host->agent on a command channel */
	PROTO_ACK = 14,		 /* either way: offsets consumed (credit) */
	PROTO_EXIT = 15,	 /* agent->host: command ended, all output sent */
	PROTO_SIGNAL = 16,	 /* request: signal a command (its process group) */
	PROTO_RESIZE = 17,	 /* request: PTY window size */
	PROTO_ATTACH = 18,	 /* request: re-attach to a command by id */
	PROTO_ATTACHED = 19,	 /* response to ATTACH */
	PROTO_FORGET = 20,	 /* request: drop an exited command's ring */
	PROTO_FILE_WRITE = 30,	 /* request: open a file for writing */
	PROTO_FILE_READ = 31,	 /* request: read a file */
	PROTO_FILE_OPENED = 32,	 /* response to FILE_WRITE/FILE_READ: channel, size */
	PROTO_DATA = 33,	 /* file bytes on a transfer channel, either way */
	PROTO_FILE_DONE = 34,	 /* end of a transfer: total size (either way) */
	PROTO_STAT = 40,	 /* request */
	PROTO_STAT_RESULT = 41,	 /* response */
	PROTO_LIST = 42,	 /* request */
	PROTO_LIST_RESULT = 43,	 /* response; several frames when "more" is set */
	PROTO_MKDIR = 44,	 /* request -> OK */
	PROTO_REMOVE = 45,	 /* request -> OK */
	PROTO_INFO = 50,	 /* request */
	PROTO_INFO_RESULT = 51,	 /* response */
	PROTO_SHUTDOWN = 52,	 /* request -> OK, then the guest powers off */
	PROTO_FIXUP = 53,	 /* request: clock, entropy, root disk, hostname after restore */
	PROTO_TYPE_COUNT,
};

/* Header flags. */
enum proto_flags {
	PROTO_F_EOF = 1 << 0, /* STDIN/DATA: last chunk of this direction */
};

/* Error codes carried in PROTO_ERROR (besides the errno value). */
enum proto_err {
	PROTO_E_OK = 0,
	PROTO_E_BAD_FRAME = 1,	  /* the frame could not be decoded */
	PROTO_E_BAD_REQUEST = 2,  /* decoded, but a field is invalid */
	PROTO_E_UNKNOWN_TYPE = 3, /* frame type not known to the receiver */
	PROTO_E_NO_CHANNEL = 4,	  /* channel / command id does not exist */
	PROTO_E_EXEC = 5,	  /* the command could not be started */
	PROTO_E_IO = 6,		  /* a file or system operation failed (errno says why) */
	PROTO_E_LIMIT = 7,	  /* a resource limit was hit (too many commands...) */
	PROTO_E_LOST = 8,	  /* requested output offset is no longer retained */
	PROTO_E_INTERNAL = 9,
	PROTO_E_COUNT,
};

enum proto_stream { PROTO_STDOUT = 1, PROTO_STDERR = 2 };

enum proto_ftype {
	PROTO_FT_OTHER = 0,
	PROTO_FT_FILE = 1,
	PROTO_FT_DIR = 2,
	PROTO_FT_SYMLINK = 3,
};

struct proto_bytes {
	const uint8_t *data;
	size_t len;
};

struct proto_strv {
	const char **v; /* v[n] is NULL; decoded as NULL when n is 0 */
	uint32_t n;
};

struct proto_hello {
	uint32_t version;	/* PROTO_VERSION of the sender */
	const char *software;	/* e.g. "sbx-agent 0.1.0" */
	struct proto_strv caps; /* e.g. "exec", "pty", "zstd", "vsock", "fixup" */
	uint32_t max_body;	/* largest body the sender accepts; absent or 0 on the
				 * wire: decoded as PROTO_MAX_BODY */
};

struct proto_error {
	uint32_t id;	 /* request id, 0 if the error is not tied to a request */
	uint32_t code;	 /* enum proto_err */
	int32_t err_no;	 /* positive errno, 0 if none */
	const char *msg; /* for a person; may be NULL */
};

struct proto_exec {
	uint32_t id;
	struct proto_strv argv; /* exactly one of argv (n > 0) or shell is set */
	const char *shell;	/* run as /bin/sh -c SHELL */
	struct proto_strv env;	/* "KEY=VALUE"; replaces the default environment if n > 0 */
	const char *cwd;	/* NULL: "/" */
	int32_t uid, gid;	/* -1: unchanged (root) */
	bool pty;
	uint16_t rows, cols; /* pty size; 0 = 24x80 */
	bool stdin_open;     /* false: stdin is /dev/null */
	uint32_t timeout_ms; /* 0: none; at expiry the group gets SIGKILL */
	uint32_t window;     /* host's receive window per stream; 0: default */
	uint32_t ring;	     /* bytes of output retained per stream; 0: default */
	uint32_t keep_ms;    /* keep ring after exit this long; 0: default */
};

struct proto_exec_started {
	uint32_t id;
	uint32_t cmd; /* command id == channel of its frames */
	int32_t pid;
	uint32_t stdin_window; /* agent's receive window for STDIN */
};

/* OUTPUT: channel = command. */
struct proto_output {
	uint8_t stream;	 /* enum proto_stream */
	uint64_t offset; /* byte offset of data[0] within the stream */
	struct proto_bytes data;
};

/* STDIN: channel = command; flag PROTO_F_EOF closes stdin after data. */
struct proto_stdin {
	uint64_t offset;
	struct proto_bytes data;
};

/* ACK: channel = command or transfer. Absolute offsets: "I have consumed
 * everything before this". Fields not set are UINT64_MAX on decode and are
 * omitted on encode. */
struct proto_ack {
	uint64_t out; /* host->agent: stdout consumed, or DATA consumed on reads */
	uint64_t err; /* host->agent: stderr consumed */
	uint64_t in;  /* agent->host: STDIN consumed, or DATA consumed on writes */
};
#define PROTO_ACK_NONE UINT64_MAX

struct proto_exit {
	int32_t code;	    /* exit status, -1 if killed by a signal */
	int32_t signal;	    /* terminating signal, 0 if it exited */
	bool timed_out;	    /* killed because timeout_ms passed */
	bool killed;	    /* killed by a SIGNAL request */
	uint64_t out_total; /* final stdout length */
	uint64_t err_total; /* final stderr length */
	uint64_t duration_ms;
};

struct proto_signal {
	uint32_t id;
	uint32_t cmd;
	int32_t signal; /* e.g. SIGKILL */
	bool group;	/* whole process group (default true) */
};

struct proto_resize {
	uint32_t id;
	uint32_t cmd;
	uint16_t rows, cols;
};

struct proto_attach {
	uint32_t id;
	uint32_t cmd;
	uint64_t out_offset; /* resume stdout from here */
	uint64_t err_offset;
	uint32_t window; /* 0: default */
};

struct proto_attached {
	uint32_t id;
	uint32_t cmd;
	bool running;
	uint64_t out_start; /* oldest stdout offset still retained */
	uint64_t err_start;
	uint64_t in_offset;    /* STDIN consumed so far: the host resumes STDIN here */
	uint32_t stdin_window; /* agent's receive window for STDIN; 0: default */
};

struct proto_forget {
	uint32_t id;
	uint32_t cmd;
};

/* FILE_WRITE: the agent writes to a temporary file beside PATH and renames it
 * over PATH on FILE_DONE, so a failed transfer leaves PATH untouched. */
struct proto_file_write {
	uint32_t id;
	const char *path;
	uint32_t mode; /* permission bits; 0: 0644 */
	bool append;   /* append to PATH instead of replacing it */
	bool mkdirs;   /* create missing parent directories */
	uint64_t size; /* expected total, PROTO_ACK_NONE if unknown */
};

struct proto_file_read {
	uint32_t id;
	const char *path;
	uint64_t offset;
	uint64_t length; /* 0: to the end */
	uint32_t window; /* 0: default */
	bool zstd;	 /* host accepts zstd-compressed DATA chunks */
};

struct proto_file_opened {
	uint32_t id;
	uint32_t chan; /* transfer channel */
	uint64_t size; /* FILE_READ: bytes that will be sent; FILE_WRITE: 0 */
	uint32_t mode;
	int64_t mtime;	 /* seconds since the epoch */
	uint32_t window; /* FILE_WRITE: agent's receive window */
	bool zstd;	 /* FILE_WRITE: agent accepts zstd chunks */
};

/* DATA: channel = transfer. When raw_len != 0 the data is one zstd frame that
 * decompresses to exactly raw_len bytes; offset counts uncompressed bytes. */
struct proto_data {
	uint64_t offset;
	uint32_t raw_len;
	struct proto_bytes data;
};

struct proto_file_done {
	uint32_t id;   /* FILE_WRITE: the agent's reply echoes the request id */
	uint64_t size; /* total uncompressed bytes transferred */
};

struct proto_path_req { /* STAT, LIST, MKDIR, REMOVE */
	uint32_t id;
	const char *path;
	uint32_t mode;	/* MKDIR: 0 means 0755 */
	bool recursive; /* MKDIR: parents; REMOVE: whole tree */
};

struct proto_stat_result {
	uint32_t id;
	uint8_t type; /* enum proto_ftype */
	uint64_t size;
	uint32_t mode; /* permission bits */
	uint32_t uid, gid;
	int64_t mtime;
	const char *link; /* symlink target or NULL */
};

struct proto_entry {
	const char *name;
	uint8_t type;
	uint64_t size;
	uint32_t mode;
	int64_t mtime;
};

struct proto_list_result {
	uint32_t id;
	struct proto_entry *entries;
	uint32_t n;
	bool more; /* further LIST_RESULT frames with the same id follow */
};

struct proto_info_result {
	uint32_t id;
	const char *version;
	const char *hostname;
	const char *kernel;
	uint64_t uptime_ms;
	double load[3];
	uint64_t mem_total, mem_available; /* bytes */
	uint32_t ncpus;
	uint32_t commands; /* commands running now */
};

struct proto_shutdown {
	uint32_t id;
	bool reboot;
};

/* Applied in this order: clock, entropy (then a CRNG reseed), root, hostname. */
struct proto_fixup {
	uint32_t id;
	int64_t time_ns;	    /* host wall clock, ns since the epoch; 0: leave */
	struct proto_bytes entropy; /* mixed into the kernel pool and credited */
	const char *hostname;	    /* NULL: leave */
	const char *root;	    /* block device to mount and switch into (a zygote
				     * started with sbx.init=wait); NULL: none */
	const char *rootfstype;	    /* its file system; NULL: "ext4"; only with root */
};

/* A request that carries nothing but an id (PING, INFO) and the responses
 * that carry nothing but an id (OK, PONG). */
struct proto_idonly {
	uint32_t id;
};

struct proto_msg {
	uint16_t type;	  /* enum proto_type */
	uint16_t flags;	  /* enum proto_flags */
	uint32_t channel; /* 0 for connection-level frames */
	union {
		struct proto_hello hello;
		struct proto_error error;
		struct proto_idonly idonly; /* OK, PING, PONG, INFO */
		struct proto_exec exec;
		struct proto_exec_started exec_started;
		struct proto_output output;
		struct proto_stdin stdin_data;
		struct proto_ack ack;
		struct proto_exit exit;
		struct proto_signal signal;
		struct proto_resize resize;
		struct proto_attach attach;
		struct proto_attached attached;
		struct proto_forget forget;
		struct proto_file_write file_write;
		struct proto_file_read file_read;
		struct proto_file_opened file_opened;
		struct proto_data data;
		struct proto_file_done file_done;
		struct proto_path_req path; /* STAT, LIST, MKDIR, REMOVE */
		struct proto_stat_result stat;
		struct proto_list_result list;
		struct proto_info_result info;
		struct proto_shutdown shutdown;
		struct proto_fixup fixup;
	} u;
	void *priv; /* decoder-owned memory; see proto_msg_release() */
};

/* Name of a frame type / error code for logs; "unknown" if out of range. */
const char *proto_type_to_string(uint16_t type);
const char *proto_err_to_string(uint32_t code);

/* Request id of a request or response frame, 0 if the type carries none. */
uint32_t proto_msg_id(const struct proto_msg *m);

/* ---- encoding ---------------------------------------------------------- */

/* A growable output buffer. Encoders append complete frames to it. */
struct proto_buf {
	uint8_t *data;
	size_t len, cap;
};

void proto_buf_init(struct proto_buf *b);
void proto_buf_release(struct proto_buf *b);
/* Drop the first n bytes (after they were written out). */
void proto_buf_consume(struct proto_buf *b, size_t n);

/* Append one frame for m (type, flags, channel and the union member of
 * m->type) to out. Returns 0, -EINVAL for a message that violates the limits
 * above (so a peer could not decode it), -EMSGSIZE when the body would be
 * longer than PROTO_MAX_BODY (split it: fewer entries, smaller chunks),
 * -ENOMEM. On error out is unchanged (its capacity may have grown). */
int proto_encode(const struct proto_msg *m, struct proto_buf *out);

/* Convenience: encode an ERROR frame. err_no may be given as -errno; msg may
 * be NULL and is cut to PROTO_MAX_STR bytes. */
int proto_encode_error(struct proto_buf *out, uint32_t channel, uint32_t id, uint32_t code,
		       int err_no, const char *msg);

/* ---- decoding ---------------------------------------------------------- */

struct proto_header {
	uint32_t len;
	uint16_t type;
	uint16_t flags;
	uint32_t channel;
};

/* Parse the header at buf. -EAGAIN if len < PROTO_HEADER_SIZE, -EBADMSG on a
 * wrong magic, -EMSGSIZE if the body length exceeds max_body (which is capped
 * at PROTO_MAX_BODY; 0 means PROTO_MAX_BODY). *ret is filled on success and on
 * -EMSGSIZE. */
int proto_header_parse(const uint8_t *buf, size_t len, size_t max_body, struct proto_header *ret);

/* Decode a body of hdr->len bytes. On success *ret is filled and owns a zone
 * (release with proto_msg_release()); byte payloads may point into body.
 * On error *ret is left released, but with type, flags and channel from the
 * header and, when the body was a map with a valid "id", u.idonly.id, so the
 * receiver can answer. Unknown types give -EPROTO, so the receiver can answer
 * PROTO_E_UNKNOWN_TYPE; every other malformed or disallowed body is -EBADMSG. */
int proto_decode_body(const struct proto_header *hdr, const uint8_t *body, struct proto_msg *ret);

/* Decode one complete frame at buf; *consumed is set to the frame's length
 * whenever the header was valid (also when the body was not, so the caller
 * can skip it), 0 otherwise. -EAGAIN while buf holds less than one frame. */
int proto_decode_frame(const uint8_t *buf, size_t len, struct proto_msg *ret, size_t *consumed);

/* Free what the decoder allocated and zero *m. Safe on a zeroed or already
 * released msg, and on a msg filled by hand for proto_encode(). */
void proto_msg_release(struct proto_msg *m);

/* ---- stream reader ----------------------------------------------------- */

/* Accumulates bytes from a byte stream and yields frames. When the stream
 * holds garbage (wrong magic), the reader skips to the next magic and reports
 * how many bytes it dropped, so the receiver can answer with one error frame
 * and go on serving. */
struct proto_reader {
	uint8_t *buf;
	size_t len, cap, off;
	size_t max_body;
	uint64_t skipped; /* bytes dropped by the last proto_reader_next() */
	uint64_t discard; /* body bytes of an oversized frame still to drop */
};

/* max_body 0 or above PROTO_MAX_BODY means PROTO_MAX_BODY. */
void proto_reader_init(struct proto_reader *r, size_t max_body);
void proto_reader_release(struct proto_reader *r);
/* Space to read into: returns a pointer to at least min free bytes (grows the
 * buffer, never beyond one maximal frame + min, provided proto_reader_next()
 * was called until it returned 0), and *ret_room. NULL on OOM. The pointer is
 * valid until the next call on r. */
uint8_t *proto_reader_space(struct proto_reader *r, size_t min, size_t *ret_room);
/* Mark n bytes written into the space as filled. */
void proto_reader_commit(struct proto_reader *r, size_t n);
/* Copy n bytes in (convenience over space/commit). 0 or -ENOMEM. */
int proto_reader_feed(struct proto_reader *r, const void *data, size_t n);
/* Next frame: 1 and *ret filled (release it before the next call), 0 when
 * more bytes are needed, <0 for a frame that was skipped: -EBADMSG / -EPROTO
 * / -EMSGSIZE (with ret->type, ret->channel and the request id in
 * ret->u.idonly.id where they could be read, so the caller can answer);
 * r->skipped tells how many garbage bytes were dropped before the frame.
 * A run of garbage (bytes that do not start with the magic) is reported on
 * its own: -EBADMSG with r->skipped > 0 and *ret zeroed (type 0); the frame
 * that follows it comes with the next call. An oversized frame is reported
 * (-EMSGSIZE) as soon as its header arrives; its body is then dropped as it
 * arrives, never buffered. */
int proto_reader_next(struct proto_reader *r, struct proto_msg *ret);
/* Forget buffered bytes (after a reconnect of the peer). */
void proto_reader_reset(struct proto_reader *r);

/* ---- credit flow control ---------------------------------------------- */

/* Sender-side accounting for one direction of one stream. The receiver grants
 * a window and acknowledges absolute offsets; the sender may have at most
 * window bytes sent but not acknowledged. */
struct proto_credit {
	uint64_t sent;	/* bytes sent so far (next offset) */
	uint64_t acked; /* highest offset acknowledged */
	uint32_t window;
};

/* window 0 means PROTO_DEFAULT_WINDOW. */
void proto_credit_init(struct proto_credit *c, uint64_t start, uint32_t window);
/* Bytes that may be sent now. */
uint64_t proto_credit_avail(const struct proto_credit *c);
/* Record n bytes sent. -EPROTO if that exceeds the credit (a bug). */
int proto_credit_consume(struct proto_credit *c, uint64_t n);
/* Apply an acknowledgement. Ack offsets that go backwards are ignored (0);
 * beyond what was sent they are -EPROTO (hostile or confused peer).
 * PROTO_ACK_NONE (field absent) is ignored (0). Returns 0 otherwise. */
int proto_credit_ack(struct proto_credit *c, uint64_t offset);

/* ---- zstd chunks ------------------------------------------------------- */

/* Compress src into dst (dst_cap bytes). Returns the compressed length when
 * it is at least 1/8 smaller than srclen ("pays": (srclen - clen) * 8 >=
 * srclen), 0 when it does not pay or does not fit in dst_cap (send raw), <0 on
 * error (-EINVAL if srclen > PROTO_MAX_CHUNK, -ENOMEM). A dst_cap of
 * srclen - srclen / 8 is enough. */
long proto_zstd_compress(const uint8_t *src, size_t srclen, uint8_t *dst, size_t dst_cap);
/* Decompress one frame into dst; the result must be exactly raw_len bytes
 * (1..PROTO_MAX_CHUNK), src one whole zstd frame that records raw_len as its
 * content size. 0 on success, -EBADMSG otherwise. */
int proto_zstd_decompress(const uint8_t *src, size_t srclen, uint8_t *dst, size_t raw_len);
