/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cmdio.c - the data paths of a command: output pipes -> rings -> OUTPUT
 * frames under credit, STDIN frames -> the stdin pipe, and the EXIT frame.
 *
 * Back-pressure: a stream is polled only while its ring has room, and ring
 * room only comes back when the host ACKs. A host that does not ACK (or no
 * host at all) therefore leaves the pipe full and the command blocked in
 * write(); the agent's memory stays at the ring size.
 */
#include <errno.h>
#include <poll.h>
#include <sys/wait.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "base/clock.h"
#include "guest/cmd.h"
#include "guest/conn.h"
#include "base/log.h"
#include "guest/loop.h"

#define CMD_READS_PER_EVENT 4

void cmd_stream_arm(struct cmd *cmd, struct cmd_stream *s)
{
	if (cmd->dead || s->eof || s->fd < 0 || s->op.busy || !ring_room(&s->ring))
		return;
	loop_poll(&s->op, s->fd, POLLIN);
}

static void stream_set_eof(struct cmd *cmd, struct cmd_stream *s)
{
	s->eof = true;
	if (s->fd >= 0 && s->fd != cmd->pty)
		close(s->fd);
	s->fd = -EBADF;
	/* a poll still in flight holds its own file reference */
	loop_cancel(&s->op);
}

void cmd_stream_force_eof(struct cmd *cmd, struct cmd_stream *s)
{
	if (s->eof)
		return;
	log_info("cmd=%u stream still open %d ms after the process exited, closing it", cmd->id,
		 AGENT_EXIT_FORCE_MS);
	stream_set_eof(cmd, s);
}

void cmd_stream_on_cqe(struct cmd *cmd, struct cmd_stream *s, int res)
{
	uint8_t *space;
	size_t len;
	ssize_t n;
	int i;

	if (cmd->dead || s->eof)
		return;
	(void)res; /* the read below tells what happened */
	for (i = 0; i < CMD_READS_PER_EVENT; i++) {
		space = ring_space(&s->ring, &len);
		if (!space) {
			if (len) {
				log_error(
				    "cmd=%u out of memory for the output ring, dropping the stream",
				    cmd->id);
				stream_set_eof(cmd, s);
			}
			break;
		}
		n = read(s->fd, space, len);
		if (n > 0) {
			ring_commit(&s->ring, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		/* 0, or EIO on a PTY master whose slave side is gone: EOF */
		if (n < 0 && errno != EIO)
			log_warn("cmd=%u cannot read output: %s, treating as end of stream",
				 cmd->id, strerror(errno));
		stream_set_eof(cmd, s);
		break;
	}
	cmd_stream_arm(cmd, s);
	cmd_pump(cmd);
	cmd_check_finished(cmd);
}

static void stream_pump(struct cmd *cmd, struct cmd_stream *s, uint8_t stream)
{
	struct proto_msg m = {.type = PROTO_OUTPUT};
	const uint8_t *p;
	uint64_t avail;
	size_t len;

	m.channel = cmd->id;
	m.u.output.stream = stream;
	while (conn_can_produce(cmd->conn)) {
		avail = proto_credit_avail(&s->credit);
		if (!avail)
			break;
		p = ring_peek(&s->ring, s->credit.sent, &len);
		if (!p)
			break;
		len = MIN(len, MIN((size_t)AGENT_OUTPUT_CHUNK, conn_max_data(cmd->conn)));
		len = (size_t)MIN((uint64_t)len, avail);
		m.u.output.offset = s->credit.sent;
		m.u.output.data.data = p;
		m.u.output.data.len = len;
		if (conn_send(cmd->conn, &m) < 0)
			break;
		(void)proto_credit_consume(&s->credit, len);
	}
}

static void send_exit(struct cmd *cmd)
{
	struct proto_msg m = {.type = PROTO_EXIT};
	struct proto_exit *e = &m.u.exit;

	m.channel = cmd->id;
	if (WIFEXITED(cmd->status)) {
		e->code = WEXITSTATUS(cmd->status);
	} else {
		e->code = -1;
		e->signal = WIFSIGNALED(cmd->status) ? WTERMSIG(cmd->status) : 0;
	}
	e->timed_out = cmd->timed_out;
	e->killed = WIFSIGNALED(cmd->status) && cmd->signalled && !cmd->timed_out;
	e->out_total = cmd->out.ring.head;
	e->err_total = cmd->err.ring.head;
	e->duration_ms = cmd->exited_ms - cmd->started_ms;
	if (conn_send(cmd->conn, &m) < 0)
		return;
	cmd->delivered_ms = clock_mono_ms();
	cmd_enter_state(cmd, CMD_RETAINED);
	loop_timer_want(cmd->delivered_ms + cmd->keep_ms);
}

void cmd_pump(struct cmd *cmd)
{
	if (cmd->dead || !cmd->conn)
		return;
	stream_pump(cmd, &cmd->out, PROTO_STDOUT);
	stream_pump(cmd, &cmd->err, PROTO_STDERR);
	if (cmd->state == CMD_FINISHED && cmd->out.credit.sent == cmd->out.ring.head &&
	    cmd->err.credit.sent == cmd->err.ring.head && conn_can_produce(cmd->conn))
		send_exit(cmd);
}

void cmd_attach(struct cmd *cmd, struct conn *c, uint64_t out_off, uint64_t err_off,
		uint32_t window)
{
	cmd->conn = c;
	cmd->window = window ? window : PROTO_DEFAULT_WINDOW;
	/* the offsets of an ATTACH act as an ACK */
	ring_release_to(&cmd->out.ring, out_off);
	ring_release_to(&cmd->err.ring, err_off);
	cmd_stream_arm(cmd, &cmd->out);
	cmd_stream_arm(cmd, &cmd->err);
	proto_credit_init(&cmd->out.credit, MAX(out_off, ring_start(&cmd->out.ring)), cmd->window);
	proto_credit_init(&cmd->err.credit, MAX(err_off, ring_start(&cmd->err.ring)), cmd->window);
	if (cmd->state == CMD_RETAINED)
		cmd_enter_state(cmd, CMD_FINISHED);
}

/* ---- stdin ------------------------------------------------------------- */

static void stdin_send_ack(struct cmd *cmd)
{
	struct proto_msg m = {.type = PROTO_ACK};

	if (cmd->in_done == cmd->in_acked || !cmd->conn)
		return;
	m.channel = cmd->id;
	m.u.ack.out = PROTO_ACK_NONE;
	m.u.ack.err = PROTO_ACK_NONE;
	m.u.ack.in = cmd->in_done;
	if (conn_send(cmd->conn, &m) == 0)
		cmd->in_acked = cmd->in_done;
}

void cmd_stdin_close(struct cmd *cmd)
{
	if (!cmd->in_closed)
		log_debug("cmd=%u stdin closed", cmd->id);
	cmd->in_closed = true;
	cmd->in_done = cmd->in_recv;
	cmd->in_len = 0;
	cmd->in_veof = 0;
	if (cmd->in_fd >= 0 && cmd->in_fd != cmd->pty)
		close(cmd->in_fd);
	cmd->in_fd = -EBADF;
	loop_cancel(&cmd->in_op);
}

/* Write what can be written without blocking. Returns false when the
 * descriptor is full (POLLOUT armed) or stdin is closed. */
static bool stdin_write(struct cmd *cmd, const uint8_t *p, size_t len, size_t *ret_n)
{
	ssize_t n;

	*ret_n = 0;
	while (*ret_n < len) {
		n = write(cmd->in_fd, p + *ret_n, len - *ret_n);
		if (n > 0) {
			*ret_n += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			loop_poll(&cmd->in_op, cmd->in_fd, POLLOUT);
			return false;
		}
		/* EPIPE: the reader is gone; the rest of stdin is discarded */
		cmd_stdin_close(cmd);
		return false;
	}
	return true;
}

void cmd_stdin_flush(struct cmd *cmd)
{
	struct termios t;
	uint8_t veof[2];
	size_t n;
	bool all;

	if (cmd->dead || cmd->in_closed || cmd->in_op.busy || cmd->in_fd < 0)
		goto out_ack;
	if (cmd->in_len) {
		all = stdin_write(cmd, cmd->in_data, cmd->in_len, &n);
		if (cmd->in_closed)
			goto out_ack;
		if (n) {
			cmd->in_mid_line =
			    cmd->in_data[n - 1] != '\n' && cmd->in_data[n - 1] != '\r';
			memmove(cmd->in_data, cmd->in_data + n, cmd->in_len - n);
			cmd->in_len -= n;
			cmd->in_done += n;
		}
		if (!all)
			goto out_ack;
	}
	if (!cmd->in_eof)
		goto out_ack;
	if (cmd->pty < 0) {
		cmd_stdin_close(cmd);
		goto out_ack;
	}
	/* A PTY cannot be half-closed: EOF is the VEOF character at the start
	 * of a line (a second one when a partial line is pending). */
	if (!cmd->in_veof)
		cmd->in_veof = cmd->in_mid_line ? 2 : 1;
	veof[0] = veof[1] = tcgetattr(cmd->pty, &t) == 0 ? t.c_cc[VEOF] : 4;
	all = stdin_write(cmd, veof, cmd->in_veof, &n);
	if (cmd->in_closed)
		goto out_ack;
	if (all) {
		cmd->in_veof = 0;
		cmd->in_closed = true;
		cmd->in_fd = -EBADF;
	} else {
		cmd->in_veof -= (unsigned)n;
	}
out_ack:
	stdin_send_ack(cmd);
}

void cmd_stdin_on_cqe(struct cmd *cmd, int res)
{
	(void)res;
	if (cmd->dead || cmd->in_closed)
		return;
	cmd_stdin_flush(cmd);
}
