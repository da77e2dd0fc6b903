/*
 * metrics.c - the Prometheus endpoint.  See metrics.h.
 */
#define _GNU_SOURCE   /* accept4(2) */
#include "metrics.h"
#include "listen.h"
#include "log.h"
#include "status.h"
#include "util.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int
bind_unix(const char *path, char *why, size_t whysize)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (str_copy(sun.sun_path, sizeof(sun.sun_path), path) < 0) {
		snprintf(why, whysize, "metrics_listen unix:%s: path too long", path);
		return -1;
	}
	/* A socket left by a daemon that died; never anything else. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && unlink(path) < 0) {
		snprintf(why, whysize, "metrics_listen: unlink %s: %s", path, strerror(errno));
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* The spool user and its group may scrape; nobody else. */
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(path, 0660) < 0 || listen(fd, 16) < 0) {
		snprintf(why, whysize, "metrics_listen unix:%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int
metrics_bind(const char *spec, char *why, size_t whysize)
{
	char host[256], port[16];
	struct addrinfo hints, *res = NULL;
	int fd = -1, rc, one = 1;

	if (strncmp(spec, "unix:", 5) == 0)
		return bind_unix(spec + 5, why, whysize);
	if (strchr(spec, ':') == NULL) {
		/* A port alone: loopback, the safe place for these figures. */
		str_copy(host, sizeof(host), "127.0.0.1");
		str_copy(port, sizeof(port), spec);
	} else if (listen_split(spec, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(why, whysize, "metrics_listen %s: bad address", spec);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		snprintf(why, whysize, "metrics_listen %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 16) < 0) {
		snprintf(why, whysize, "metrics_listen %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* read_request - the request head, within the deadline; its length or -1. */
static ssize_t
read_request(int fd, char *buf, size_t size, int64_t deadline)
{
	size_t len = 0;

	while (len + 1 < size) {
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -1;
		n = read(fd, buf + len, size - 1 - len);
		if (n <= 0)
			return n < 0 && errno == EINTR ? 0 : -1;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL || strstr(buf, "\n\n") != NULL)
			return (ssize_t)len;
	}
	return -1;
}

/* write_within - all of p, or give up at the deadline. */
static void
write_within(int fd, const char *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		struct pollfd pf = {fd, POLLOUT, 0};
		int64_t left = deadline - now_ms();
		ssize_t w;

		if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
			return;
		w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return;
		if (w > 0) {
			p += w;
			n -= (size_t)w;
		}
	}
}

static void
respond(int fd, int code, const char *reason, const char *type, const char *body,
    size_t len, int64_t deadline)
{
	char head[300];
	int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", code, reason, type, len);

	if (n > 0 && (size_t)n < sizeof(head)) {
		write_within(fd, head, (size_t)n, deadline);
		write_within(fd, body, len, deadline);
	}
}

void
metrics_answer(const struct conf *c, int fd)
{
	int64_t deadline = now_ms() + METRICS_TIMEOUT_MS;
	char req[METRICS_REQUEST_MAX];
	static const char notfound[] = "Only /metrics is here.\n";
	static const char badmethod[] = "Only GET is answered.\n";

	if (read_request(fd, req, sizeof(req), deadline) <= 0) {
		close(fd);
		return;
	}
	if (strncmp(req, "GET ", 4) != 0 && strncmp(req, "HEAD ", 5) != 0) {
		respond(fd, 405, "Method Not Allowed", "text/plain", badmethod,
		    sizeof(badmethod) - 1, deadline);
	} else if (strncmp(req + (req[0] == 'G' ? 4 : 5), "/metrics", 8) != 0 ||
	    (req[(req[0] == 'G' ? 4 : 5) + 8] != ' ' && req[(req[0] == 'G' ? 4 : 5) + 8] != '?')) {
		respond(fd, 404, "Not Found", "text/plain", notfound, sizeof(notfound) - 1,
		    deadline);
	} else {
		struct stats *s = xmalloc(sizeof(*s));
		struct breakers *b = xmalloc(sizeof(*b));
		struct queue_census q;
		char *body = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&body, &len);

		if (stats_read(c, s) < 0 && errno != ENOENT)
			log_warn("metrics: read %s/stats", c->spool_dir);
		status_census(c, &q);
		breaker_read(c, b);
		if (mem != NULL) {
			status_prometheus(mem, s, &q, b);
			fclose(mem);
		}
		if (body != NULL)
			respond(fd, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body,
			    req[0] == 'H' ? 0 : len, deadline);
		free(body);
		free(b);
		free(s);
	}
	close(fd);
}

/* serve_client - one connection in a child of its own; the child's pid or -1. */
static pid_t
serve_client(const struct conf *c, int listen_fd, int client)
{
	pid_t pid = fork();

	if (pid != 0) {
		if (pid < 0)
			log_warn("metrics: fork for a client");
		close(client);
		return pid;
	}
	close(listen_fd);
	metrics_answer(c, client);
	_exit(0);
}

/* Set by SIGTERM (the master stopping, or dying: PR_SET_PDEATHSIG). */
static volatile sig_atomic_t metrics_stop;

static void
on_term(int sig)
{
	(void)sig;
	metrics_stop = 1;
}

pid_t
metrics_start(const struct conf *c, int fd, const int *close_fds, size_t n)
{
	pid_t parent = getpid(), pid = fork();
	int clients = 0;

	if (pid != 0) {
		if (pid < 0)
			log_warn("fork the metrics server");
		return pid;
	}
	log_set_role("metrics");
	/* None of the master's handlers: they write to its signal pipe. */
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_term;       /* no SA_RESTART: poll returns at once */
		sigaction(SIGTERM, &sa, NULL);
	}
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	for (size_t i = 0; i < n; i++)
		if (close_fds[i] >= 0 && close_fds[i] != fd)
			close(close_fds[i]);
	if (getppid() != parent)
		_exit(0);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int client;

		/* Each scrape in a child, METRICS_CLIENTS_MAX at once: a client that
		 * sends nothing holds one of them for METRICS_TIMEOUT_MS at most. */
		while (clients > 0 && waitpid(-1, NULL, WNOHANG) > 0)
			clients--;
		if (clients >= METRICS_CLIENTS_MAX) {
			if (waitpid(-1, NULL, 0) > 0)
				clients--;
			continue;
		}
		if (metrics_stop || getppid() != parent ||
		    (poll(&p, 1, 1000) < 0 && errno != EINTR)) {
			/* Its socket closed and its clients ended: nothing left open. */
			close(fd);
			while (clients-- > 0)
				waitpid(-1, NULL, 0);
			_exit(0);
		}
		if (!(p.revents & POLLIN))
			continue;
		client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (client >= 0 && serve_client(c, fd, client) > 0)
			clients++;
	}
}
