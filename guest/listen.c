/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listen.c - listening sockets, stdio and the virtio-serial port (see
 * listen.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "base/clock.h"
#include "guest/agent.h"
#include "base/cleanup.h"
#include "guest/conn.h"
#include "guest/listen.h"
#include "base/log.h"
#include "guest/loop.h"

#define PORT_CLASS_DIR "/sys/class/virtio-ports"
#define PORT_WAIT_WARN_MS 5000

struct listener {
	struct list link;
	int fd;
	enum conn_kind kind;
	struct op op;
	char *path; /* unix socket path to unlink */
	bool dead;
	bool retry; /* accept failed for lack of fds: retry on a tick */
};

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static struct list listeners = {&listeners, &listeners};

static struct {
	bool enabled;
	int fd;
	char dev[300];
	struct conn *conn;
	uint64_t since; /* waiting for the port to appear since */
	bool warned;
} port = {.fd = -EBADF};

static void listener_free(struct listener *l)
{
	list_del(&l->link);
	free(l->path);
	free(l);
}

static int listener_add(int fd, enum conn_kind kind, const char *path)
{
	struct listener *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	if (path) {
		l->path = strdup(path);
		if (!l->path) {
			free(l);
			return -ENOMEM;
		}
	}
	l->fd = fd;
	l->kind = kind;
	l->op.kind = OP_ACCEPT;
	list_add_tail(&listeners, &l->link);
	loop_accept(&l->op, fd);
	return 0;
}

int listen_unix(const char *path)
{
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
		return -errno;
	ret = listener_add(fd, CONN_UNIX, path);
	if (ret < 0)
		return ret;
	log_info("listening on unix:%s", path);
	TAKE_FD(fd);
	return 0;
}

void listen_vsock(void)
{
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_vm sa = {
	    .svm_family = AF_VSOCK,
	    .svm_port = SBX_AGENT_VSOCK_PORT,
	    .svm_cid = VMADDR_CID_ANY,
	};

	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_debug("no vsock (%s): serving the virtio-serial port only", strerror(errno));
		return;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		log_debug(
		    "cannot listen on vsock port %d (%s): serving the virtio-serial port only",
		    SBX_AGENT_VSOCK_PORT, strerror(errno));
		return;
	}
	if (listener_add(fd, CONN_VSOCK, NULL) < 0)
		return;
	log_info("listening on vsock port %d", SBX_AGENT_VSOCK_PORT);
	TAKE_FD(fd);
}

static void stdio_on_close(struct conn *c)
{
	(void)c;
	loop_quit(0);
}

int listen_stdio(void)
{
	struct conn *c;
	int ret;

	if (fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK) < 0 ||
	    fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK) < 0)
		return -errno;
	ret = conn_new(CONN_STDIO, 0, 1, false, &c);
	if (ret < 0)
		return ret;
	c->on_close = stdio_on_close;
	return 0;
}

void listen_on_accept(struct op *op, int res)
{
	struct listener *l = container_of(op, struct listener, op);

	if (l->dead) {
		if (res >= 0)
			close(res);
		listener_free(l);
		return;
	}
	if (res >= 0) {
		if (conn_new(l->kind, res, res, true, NULL) < 0) {
			log_error("cannot serve a new connection: out of memory");
			close(res);
		}
	} else if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
		log_warn("cannot accept a connection: %s, retrying", strerror(-res));
		l->retry = true;
		loop_timer_want(clock_mono_ms() + 100);
		return;
	}
	loop_accept(&l->op, l->fd);
}

void listen_close_all(void)
{
	struct list *pos, *tmp;
	struct listener *l;

	for (list_each_safe(pos, tmp, &listeners)) {
		l = container_of(pos, struct listener, link);
		if (l->path)
			(void)unlink(l->path);
		close(l->fd);
		l->dead = true;
		if (l->op.busy)
			loop_cancel(&l->op);
		else
			listener_free(l);
	}
	port.enabled = false;
	if (port.fd >= 0)
		close(port.fd);
	port.fd = -EBADF;
}

/* ---- virtio-serial port ------------------------------------------------ */

static bool port_find(char *dev, size_t len)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	char path[512], name[64];
	FILE *f;
	bool found = false;

	d = opendir(PORT_CLASS_DIR);
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/name", PORT_CLASS_DIR, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(name, sizeof(name), f)) {
			name[strcspn(name, "\n")] = '\0';
			if (!strcmp(name, SBX_AGENT_PORT_NAME)) {
				snprintf(dev, len, "/dev/%s", de->d_name);
				found = true;
			}
		}
		fclose(f);
	}
	return found;
}

static int port_open(void)
{
	int fd;

	if (!port_find(port.dev, sizeof(port.dev)))
		return -ENOENT;
	fd = open(port.dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fcntl(fd, F_SETOWN, getpid()) < 0)
		log_warn("cannot ask for SIGIO on %s: %s, polling instead", port.dev,
			 strerror(errno));
	port.fd = fd;
	log_info("agent channel is the virtio-serial port %s (%s)", SBX_AGENT_PORT_NAME, port.dev);
	return 0;
}

static void port_set_async(bool on)
{
	int fl = fcntl(port.fd, F_GETFL);

	if (fl >= 0)
		(void)fcntl(port.fd, F_SETFL, on ? fl | O_ASYNC : fl & ~O_ASYNC);
}

static void port_on_close(struct conn *c)
{
	(void)c;
	port.conn = NULL;
	/* look again on the next tick, not from inside conn_close() */
	loop_timer_want(clock_mono_ms());
}

static void port_try(void)
{
	struct pollfd p;
	uint64_t now = clock_mono_ms();

	if (!port.enabled || port.conn || agent.quitting)
		return;
	if (port.fd < 0 && port_open() < 0) {
		if (!port.since)
			port.since = now;
		if (!port.warned && now - port.since >= PORT_WAIT_WARN_MS) {
			log_warn("still waiting for the virtio-serial port %s to appear",
				 SBX_AGENT_PORT_NAME);
			port.warned = true;
		}
		loop_timer_want(now + AGENT_PORT_RETRY_MS);
		return;
	}
	p.fd = port.fd;
	p.events = POLLIN | POLLOUT;
	p.revents = 0;
	if (poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
		/* the host is not connected: wait for SIGIO or the next retry */
		port_set_async(true);
		loop_timer_want(now + AGENT_PORT_RETRY_MS);
		return;
	}
	port_set_async(false);
	if (conn_new(CONN_PORT, port.fd, port.fd, false, &port.conn) < 0) {
		log_error("cannot serve the virtio-serial port: out of memory");
		loop_timer_want(now + AGENT_PORT_RETRY_MS);
		return;
	}
	port.conn->on_close = port_on_close;
}

void listen_port_start(void)
{
	port.enabled = true;
	port_try();
}

void listen_port_kick(void)
{
	port_try();
}

void listen_tick(uint64_t now)
{
	struct list *pos, *tmp;
	struct listener *l;

	(void)now;
	port_try();
	for (list_each_safe(pos, tmp, &listeners)) {
		l = container_of(pos, struct listener, link);
		if (l->retry && !l->dead && !l->op.busy) {
			l->retry = false;
			loop_accept(&l->op, l->fd);
		}
	}
}
