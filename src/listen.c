/*
 * listen.c - the standalone daemon: listeners, limits, the queue schedule,
 * signals.  See listen.h.
 *
 * Process tree when started as root:
 *
 *   undersmtpd -d (root)            binds, then only starts pipe programs
 *    `- daemon master (user)        poll loop, accepts, hands connections out
 *        |- session process (user)  one connection at a time: smtpd_session()
 *        `- queue run (user)        one at a time: queue_run_until_idle()
 *
 * Session processes are reused, as Postfix reuses its smtpd(8): the master
 * accepts, counts the client against the limits, and passes the socket to an
 * idle session process over that process's control socket (SCM_RIGHTS), or
 * forks a new one when none is idle.  A session process serves at most
 * session_max_use connections and says so ('x') before it leaves; it says
 * 'd' when a connection is done and it is ready for the next.  Only the
 * master retires an idle process (by closing its control socket: idle for
 * SESSION_MAX_IDLE, or started with a configuration SIGHUP replaced), so a
 * connection is never handed to a process on its way out.  Every session
 * still runs the inetd session code on fds 0 and 1, from a clean struct
 * session; what it keeps between connections is the configuration, the
 * aliases table and the launcher's socket.
 */
#define _GNU_SOURCE   /* accept4(2), pipe2(2) */
#include "listen.h"
#include "rtqueue.h"
#include "aliases.h"
#include "privsep.h"
#include "envelope.h"
#include "log.h"
#include "metrics.h"
#include "proxy.h"
#include "queue.h"
#include "smtpd.h"
#include "spool.h"
#include "stats.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTENERS 16
#define SHUTDOWN_GRACE_MS 35000   /* SPEC 6: a message may finish within 30 s */
#define ACCEPT_PAUSE_MS 1000      /* after accept fails for want of resources */
#define SESSION_MAX_IDLE 100      /* seconds an idle session process is kept (max_idle) */
#define TOO_MANY_FROM_ADDRESS "421 4.7.0 Too many connections from your address\r\n"

struct session_slot {
	pid_t pid;              /* the session process; 0: a free slot */
	int ctl_fd;             /* the master's end of its control socket; -1: it
	                           takes no more connections (retired or leaving) */
	int busy;               /* serving a connection: counted against the limits */
	unsigned generation;    /* the configuration it was started with */
	time_t idle_since;
	int family;             /* AF_UNSPEC: not counted per address (yet) */
	unsigned char ip[16];
	int report_fd;          /* PROXY listener: the master's end of the socket
	                           on which the child names its client, until it has */
};

/*
 * What a session behind HAProxy tells the master once it has read the PROXY
 * header: the client's address, which only then can be counted against
 * max_connections_per_ip (the peer the master accepted is HAProxy).
 */
struct client_report {
	int32_t family;
	unsigned char ip[16];
};

struct daemon {
	struct conf *conf;
	const struct daemon_opts *opts;
	struct aliases *aliases;
	struct delivery_ctx dctx;
	int listeners[MAX_LISTENERS];
	int proxied[MAX_LISTENERS];   /* this listener expects a PROXY header */
	size_t nlisteners;
	int sigpipe[2];
	struct session_slot *slots;
	size_t nslots;
	unsigned generation;          /* counts SIGHUP reloads */
	pid_t runner;
	pid_t rt_fetcher;             /* asking RT for its queues (rtqueue.h) */
	time_t next_rt_fetch;
	int queue_kicked;             /* a session spooled mail since the run began */
	time_t next_run;
	struct timespec queue_seen;
	int metrics_fd;               /* metrics_listen's socket; -1: none */
	pid_t metrics_pid;            /* its server; 0: none running */
	time_t metrics_restart;       /* not before then, after it died */
};

/*
 * Signal handlers only write the signal number into the self-pipe; the
 * poll loop does the work.  The pipe's write end is the one piece of state
 * a handler needs.
 */
static int signal_fd = -1;
/* Set in a session child by SIGTERM; read by the session between commands. */
static volatile sig_atomic_t session_terminate;

static void
on_signal(int sig)
{
	int saved = errno;
	unsigned char c = (unsigned char)sig;

	if (signal_fd >= 0 && write(signal_fd, &c, 1) < 0) {
		/* A full pipe already holds a wake-up: nothing is lost. */
	}
	errno = saved;
}

static void
on_session_sigterm(int sig)
{
	(void)sig;
	session_terminate = 1;
}

static int
set_nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

int
listen_split(const char *spec, char *host, size_t hostsize, char *port, size_t portsize)
{
	const char *colon;
	size_t hl;

	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		hl = (size_t)(close - spec - 1);
		if (hl >= hostsize)
			return -1;
		memcpy(host, spec + 1, hl);
		host[hl] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(spec, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - spec);
		if (hl >= hostsize)
			return -1;
		memcpy(host, spec, hl);
		host[hl] = '\0';
	}
	return str_copy(port, portsize, colon + 1);
}

static int
bind_one(struct daemon *d, const char *spec)
{
	char host[256], port[16];
	struct addrinfo hints, *res, *ai;
	int rc, bound = 0;

	char addr[300];
	int proxy = 0;

	str_copy(addr, sizeof(addr), spec);
	if (strlen(addr) > 6 && strcmp(addr + strlen(addr) - 6, " proxy") == 0) {
		addr[strlen(addr) - 6] = '\0';
		proxy = 1;
	}
	if (listen_split(addr, host, sizeof(host), port, sizeof(port)) < 0) {
		log_warnx("listen %s: bad address", spec);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		log_warnx("listen %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL && d->nlisteners < MAX_LISTENERS; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		int one = 1;

		if (fd < 0) {
			log_warn("listen %s: socket", spec);
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0 ||
		    set_nonblock_cloexec(fd) < 0) {
			log_warn("listen %s: bind", spec);
			close(fd);
			continue;
		}
		d->proxied[d->nlisteners] = proxy;
		d->listeners[d->nlisteners++] = fd;
		bound++;
	}
	freeaddrinfo(res);
	if (bound == 0)
		return -1;
	log_info("listening on %s%s", addr, proxy ? " (PROXY protocol)" : "");
	return 0;
}

/*
 * fd_name_is_proxy - the i-th name in LISTEN_FDNAMES ("a:b:c", from the
 * socket units' FileDescriptorName=) is "proxy": that socket is behind
 * HAProxy, as a listen address with the " proxy" suffix.
 */
static int
fd_name_is_proxy(const char *names, long i)
{
	const char *p = names;

	for (long k = 0; p != NULL && k < i; k++) {
		p = strchr(p, ':');
		if (p != NULL)
			p++;
	}
	return p != NULL && strncmp(p, "proxy", 5) == 0 && (p[5] == '\0' || p[5] == ':');
}

/* systemd_listeners - sockets passed with LISTEN_FDS (socket activation). */
static int
systemd_listeners(struct daemon *d)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	long n;

	if (pid == NULL || fds == NULL || strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	n = strtol(fds, NULL, 10);
	for (long i = 0; i < n && d->nlisteners < MAX_LISTENERS; i++) {
		int fd = 3 + (int)i;

		if (set_nonblock_cloexec(fd) < 0) {
			log_warn("LISTEN_FDS: fd %d", fd);
			continue;
		}
		d->proxied[d->nlisteners] = names != NULL && fd_name_is_proxy(names, i);
		if (d->proxied[d->nlisteners])
			log_info("socket %d passed by systemd is named \"proxy\": "
			    "PROXY protocol", fd);
		d->listeners[d->nlisteners++] = fd;
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	log_info("using %zu socket(s) passed by systemd", d->nlisteners);
	return (int)d->nlisteners;
}

static size_t
count_from(const struct daemon *d, int family, const unsigned char ip[16])
{
	size_t n = 0;

	/* IPv6 clients by their prefix (client_ipv6_prefix_length): one host has many. */
	for (size_t i = 0; i < d->nslots; i++)
		if (d->slots[i].busy && d->slots[i].family == family &&
		    conf_same_client(d->conf, family, d->slots[i].ip, ip))
			n++;
	return n;
}

/* over_ip_limit - one more session from this address would be too many (logged). */
static int
over_ip_limit(const struct daemon *d, int family, const unsigned char ip[16])
{
	char text[64];

	if (conf_relay_allowed(d->conf, family, ip) ||
	    count_from(d, family, ip) < (size_t)d->conf->max_connections_per_ip)
		return 0;
	ip_to_text(family, ip, text, sizeof(text));
	log_warnx("connect from unknown[%s]: too many connections from this address "
	    "(%ld)", text, d->conf->max_connections_per_ip);
	return 1;
}

static size_t
active_sessions(const struct daemon *d)
{
	size_t n = 0;

	for (size_t i = 0; i < d->nslots; i++)
		n += d->slots[i].busy;
	return n;
}

static void
refuse(int fd, const char *text)
{
	/* The socket is non-blocking: if this does not fit at once, so be it. */
	if (write(fd, text, strlen(text)) < 0)
		log_debug("refused client: write: %s", strerror(errno));
	close(fd);
}

/*
 * become_child - a forked session or queue run lets go of the master's
 * listeners and self-pipe, and takes default signals (SIGTERM: on_term).
 */
static void
become_child(struct daemon *d, void (*on_term)(int))
{
	struct sigaction sa;

	for (size_t i = 0; i < d->nlisteners; i++)
		close(d->listeners[i]);
	for (size_t i = 0; i < d->nslots; i++) {
		/* Other sessions' reports and control sockets, and the master's own
		 * end of ours: a session must see EOF when the master lets it go. */
		if (d->slots[i].report_fd >= 0)
			close(d->slots[i].report_fd);
		if (d->slots[i].ctl_fd >= 0)
			close(d->slots[i].ctl_fd);
	}
	close(d->sigpipe[0]);
	close(d->sigpipe[1]);
	if (d->metrics_fd >= 0)
		close(d->metrics_fd);
	signal_fd = -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

/*
 * read_proxy_header - consume exactly the PROXY header in front of the
 * session (peeking first, so no SMTP byte is taken).  0 with info, -1 when
 * there is no valid header within the timeout.
 */
static int
read_proxy_header(int fd, long timeout, struct proxy_info *info)
{
	unsigned char buf[PROXY_HEADER_MAX];
	int64_t deadline = now_ms() + timeout * 1000;
	size_t seen = 0;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - now_ms();
		ssize_t n;
		int rc;

		if (left <= 0 || poll(&pfd, 1, (int)(left > 60000 ? 60000 : left)) <= 0)
			return -1;
		n = recv(fd, buf, sizeof(buf), MSG_PEEK);
		if (n <= 0)
			return -1;
		rc = proxy_parse(buf, (size_t)n, info);
		if (rc < 0)
			return -1;
		if (rc > 0) {
			/* Now take exactly the header off the socket. */
			ssize_t got = recv(fd, buf, (size_t)rc, MSG_WAITALL);

			return got == rc ? 0 : -1;
		}
		if ((size_t)n == seen)
			sleep_ms(20);   /* the rest of the header is on its way */
		seen = (size_t)n;
	}
}

/*
 * client_may_stay - in a session behind HAProxy: name the client to the
 * master and take its verdict on max_connections_per_ip.  A master that
 * does not answer (it is shutting down) lets the session go on: the limit
 * protects resources, and SIGTERM will end the session anyway.
 */
static int
client_may_stay(int report_fd, const struct proxy_info *pinfo)
{
	struct client_report r;
	struct pollfd pfd = {.fd = report_fd, .events = POLLIN};
	char verdict = 'y';

	memset(&r, 0, sizeof(r));
	r.family = pinfo->family;
	memcpy(r.ip, pinfo->ip, sizeof(r.ip));
	if (send(report_fd, &r, sizeof(r), MSG_NOSIGNAL) != (ssize_t)sizeof(r)) {
		log_debug("report the client to the master: %s", strerror(errno));
		return 1;
	}
	if (poll(&pfd, 1, 10000) != 1 || recv(report_fd, &verdict, 1, 0) != 1) {
		log_debug("no verdict from the master on the client's connections");
		return 1;
	}
	return verdict == 'y';
}

/*
 * proxy_peer_allowed - the peer of a PROXY listener's connection is in
 * proxy_networks (logged when not).
 */
static int
proxy_peer_allowed(const struct conf *c, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	unsigned char ip[16];
	char text[64];
	int family;

	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    sockaddr_to_ip((struct sockaddr *)&ss, &family, ip) < 0) {
		log_warn("PROXY listener: getpeername");
		return 0;
	}
	if (conf_proxy_allowed(c, family, ip))
		return 1;
	ip_to_text(family, ip, text, sizeof(text));
	log_warnx("connection on a PROXY listener from unknown[%s], which is not in "
	    "proxy_networks: closed", text);
	return 0;
}

/*
 * serve_connection - in a session process: exactly the inetd session code on
 * this socket, on fds 0 and 1.  Takes fd and report_fd (closed on return).
 * Returns how many messages it spooled.
 */
static int
serve_connection(struct daemon *d, int fd, int proxied, int report_fd)
{
	struct proxy_info pinfo;
	struct smtpd_env env;
	int fl, spooled = 0;

	memset(&pinfo, 0, sizeof(pinfo));
	if (proxied && !proxy_peer_allowed(d->conf, fd)) {
		/* Anyone else could claim any client address, a relay network's too. */
		goto done;
	}
	if (proxied && read_proxy_header(fd, d->conf->timeout, &pinfo) < 0) {
		/* A marked listener speaks only to HAProxy: no header, no session. */
		log_warnx("connection on a PROXY listener without a valid PROXY header: "
		    "closed");
		goto done;
	}
	if (report_fd >= 0) {
		/* A LOCAL header (HAProxy's health check) names no client. */
		if (!pinfo.local && !client_may_stay(report_fd, &pinfo)) {
			refuse(fd, TOO_MANY_FROM_ADDRESS);
			goto done;
		}
		close(report_fd);
		report_fd = -1;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0) {
		log_warn("session: dup2 the client's socket");
		goto done;
	}
	close(fd);
	fd = -1;
	smtpd_env_init(&env, d->conf, d->aliases, &d->dctx.ps, &session_terminate);
	env.rt_queues_kept = 1;                 /* maybe_fetch_rt_queues does it */
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		if (proxied && !pinfo.local) {
			/* The client HAProxy saw: it drives relay control and the log. */
			env.client_family = pinfo.family;
			memcpy(env.client_ip, pinfo.ip, 16);
		} else if (proxied) {
			/*
			 * LOCAL / UNKNOWN: HAProxy names no client.  Never the proxy's
			 * own (loopback, relay-allowed) address: an unknown client.
			 */
			env.client_family = AF_UNSPEC;
		} else if (getpeername(0, (struct sockaddr *)&ss, &len) < 0 ||
		    sockaddr_to_ip((struct sockaddr *)&ss, &env.client_family,
		    env.client_ip) < 0) {
			env.client_family = AF_INET;
			env.client_ip[0] = 127;
			env.client_ip[3] = 1;
		}
		if (env.client_family == AF_UNSPEC)
			str_copy(env.client_text, sizeof(env.client_text), "unknown");
		else
			ip_to_text(env.client_family, env.client_ip, env.client_text,
			    sizeof(env.client_text));
	}
	smtpd_session(&env);
	/* The session may have re-read a changed aliases file (and freed ours). */
	d->aliases = env.aliases;
	spooled = env.spooled;
done:
	if (fd >= 0)
		close(fd);
	if (report_fd >= 0)
		close(report_fd);
	return spooled;
}

/*
 * receive_one - the next connection on the control socket: 1 with *fd (and
 * *report_fd behind HAProxy), 0 when the master let us go (EOF), when SIGTERM
 * came (waiting), or when none is there (dontwait).  Anything malformed is
 * closed and ignored.
 */
static int
receive_one(int ctl, int *fd, int *proxied, int *report_fd, int dontwait)
{
	for (;;) {
		char flag = 0;
		union {
			struct cmsghdr hdr;
			char buf[CMSG_SPACE(2 * sizeof(int))];
		} cbuf;
		struct iovec iov = {&flag, 1};
		struct msghdr msg;
		struct cmsghdr *cm;
		int fds[2] = {-1, -1};
		size_t nfds = 0;
		ssize_t n;

		if (session_terminate && !dontwait)
			return 0;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		n = recvmsg(ctl, &msg, MSG_CMSG_CLOEXEC | (dontwait ? MSG_DONTWAIT : 0));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

				for (size_t i = 0; i < k && nfds < 2; i++)
					memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int),
					    sizeof(int));
			}
		if ((msg.msg_flags & MSG_CTRUNC) == 0 && ((flag == 'c' && nfds == 1) ||
		    (flag == 'p' && nfds == 2))) {
			*fd = fds[0];
			*proxied = flag == 'p';
			*report_fd = fds[1];
			return 1;
		}
		log_warnx("session process: a malformed hand-over from the master: ignored");
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
	}
}

static int
receive_connection(int ctl, int *fd, int *proxied, int *report_fd)
{
	return receive_one(ctl, fd, proxied, report_fd, 0);
}

/* receive_queued - a connection already waiting on ctl, without waiting. */
static int
receive_queued(int ctl, int *fd, int *proxied, int *report_fd)
{
	return receive_one(ctl, fd, proxied, report_fd, 1);
}

/*
 * turn_away_queued - leaving on SIGTERM: a connection the master handed us
 * just before is told so (421 4.3.2), as an idle session would be.
 */
static void
turn_away_queued(struct daemon *d, int ctl)
{
	char text[300];
	int fd, proxied, report_fd;

	if (!session_terminate)
		return;
	snprintf(text, sizeof(text), "421 4.3.2 %s Service shutting down; closing "
	    "connection\r\n", d->conf->hostname);
	while (receive_queued(ctl, &fd, &proxied, &report_fd)) {
		refuse(fd, text);
		close(fd);
		if (report_fd >= 0)
			close(report_fd);
	}
}

/*
 * session_process - a forked session process: serve the connections the
 * master hands over, one at a time, until session_max_use, SIGTERM or the
 * master closing our control socket.  Between connections fds 0 and 1 are
 * /dev/null, so nothing of the last client stays open here.
 */
/*
 * session_exit - a session process ends with nothing of its own open: the
 * /dev/null it keeps between clients and its control socket (valgrind's
 * --track-fds counts what a process leaves to _exit).
 */
static void __attribute__((noreturn))
session_exit(int null, int ctl, int status)
{
	close(null);
	close(ctl);
	_exit(status);
}

static void __attribute__((noreturn))
session_process(struct daemon *d, int ctl)
{
	int null;

	become_child(d, on_session_sigterm);
	log_set_role("smtpd");
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0) {
		/* Not the master's standard input and output: /dev/null until a client. */
		log_warn("session process: /dev/null as fds 0 and 1");
		_exit(71);
	}
	for (int uses = 1;; uses++) {
		int fd, proxied, report_fd;
		char said;

		if (!receive_connection(ctl, &fd, &proxied, &report_fd)) {
			turn_away_queued(d, ctl);
			session_exit(null, ctl, 0);
		}
		/*
		 * 's': mail was spooled, for the queue to run now.  The queue
		 * directory's time alone could hide it: two changes within one
		 * tick of the file system's clock leave it the same, and the
		 * message would wait for run_interval.
		 */
		if (serve_connection(d, fd, proxied, report_fd) > 0 &&
		    send(ctl, "s", 1, MSG_NOSIGNAL) != 1)
			session_exit(null, ctl, 0);
		/*
		 * Tell the master before the client sees its socket close: a client
		 * that reconnects once it has seen EOF finds us idle, not a process
		 * still counted against its limits.
		 */
		said = uses >= d->conf->session_max_use || session_terminate ? 'x' : 'd';
		if (send(ctl, &said, 1, MSG_NOSIGNAL) != 1 || said == 'x')
			session_exit(null, ctl, 0);
		if (dup2(null, 0) < 0 || dup2(null, 1) < 0)
			session_exit(null, ctl, 71);
	}
}

/* free_slot - its process is gone: nothing of it is counted or kept. */
static void
free_slot(struct session_slot *s)
{
	if (s->ctl_fd >= 0)
		close(s->ctl_fd);
	if (s->report_fd >= 0)
		close(s->report_fd);
	memset(s, 0, sizeof(*s));
	s->ctl_fd = -1;
	s->report_fd = -1;
}

/* retire - the master lets an idle session process go: it sees EOF and exits. */
static void
retire(struct session_slot *s)
{
	if (s->ctl_fd >= 0)
		close(s->ctl_fd);
	s->ctl_fd = -1;
}

static void
reap(struct daemon *d)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == d->runner) {
			d->runner = 0;
			continue;
		}
		if (pid == d->rt_fetcher) {
			d->rt_fetcher = 0;
			continue;
		}
		if (pid == d->metrics_pid) {
			log_warnx("metrics server %ld ended (status 0x%x): restarting it",
			    (long)pid, (unsigned)status);
			d->metrics_pid = 0;
			d->metrics_restart = time(NULL) + 1;
			continue;
		}
		for (size_t i = 0; i < d->nslots; i++)
			if (d->slots[i].pid == pid)
				free_slot(&d->slots[i]);
		if (WIFSIGNALED(status))
			log_warnx("session process %ld killed by signal %d", (long)pid,
			    WTERMSIG(status));
	}
}

/*
 * start_session_process - fork one more, idle; its slot index, or -1.
 * busy[]: descriptors of the connection being handed out (its socket, its
 * report pair), which the new process must not keep a copy of: it gets the
 * connection over its control socket like any other, and a stray copy would
 * keep the client's connection open after the session closed it.
 */
static ssize_t
start_session_process(struct daemon *d, const int busy[3])
{
	int sv[2];
	size_t slot;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warn("socketpair for a session process");
		return -1;
	}
	for (slot = 0; slot < d->nslots && d->slots[slot].pid > 0; slot++)
		;
	if (slot == d->nslots) {
		d->slots = xreallocarray(d->slots, d->nslots + 1, sizeof(*d->slots));
		d->slots[slot].pid = 0;
		d->slots[slot].ctl_fd = -1;
		d->slots[slot].report_fd = -1;
		free_slot(&d->slots[slot]);
		d->nslots++;
	}
	pid = fork();
	if (pid < 0) {
		log_warn("fork a session process");
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		for (int i = 0; i < 3; i++)
			if (busy[i] >= 0)
				close(busy[i]);
		session_process(d, sv[1]);
	}
	close(sv[1]);
	if (set_nonblock_cloexec(sv[0]) < 0)
		log_warn("session process %ld: control socket flags", (long)pid);
	d->slots[slot].pid = pid;
	d->slots[slot].ctl_fd = sv[0];
	d->slots[slot].generation = d->generation;
	d->slots[slot].idle_since = time(NULL);
	return (ssize_t)slot;
}

/* send_connection - fd (and report_fd behind HAProxy) to a session process. */
static int
send_connection(int ctl, int fd, int report_fd)
{
	char flag = report_fd >= 0 ? 'p' : 'c';
	int fds[2] = {fd, report_fd};
	size_t nfds = report_fd >= 0 ? 2 : 1;
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} cbuf;
	struct iovec iov = {&flag, 1};
	struct msghdr msg;
	struct cmsghdr *cm;

	memset(&cbuf, 0, sizeof(cbuf));
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	return sendmsg(ctl, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) == 1 ? 0 : -1;
}

/*
 * hand_over - give the connection to an idle session process, or to a new
 * one.  An idle process that cannot take it (it died since) is let go and
 * the next one tried.  0 with *slot, or -1 (logged).
 */
static int
hand_over(struct daemon *d, int fd, const int report[2], size_t *slot)
{
	const int busy[3] = {fd, report[0], report[1]};
	int report_fd = report[1];

	for (size_t i = 0; i < d->nslots; i++) {
		struct session_slot *s = &d->slots[i];

		if (s->pid <= 0 || s->busy || s->ctl_fd < 0)
			continue;
		if (send_connection(s->ctl_fd, fd, report_fd) == 0) {
			*slot = i;
			return 0;
		}
		log_warn("session process %ld: hand over a connection", (long)s->pid);
		retire(s);
	}
	for (int tries = 0; tries < 2; tries++) {
		ssize_t i = start_session_process(d, busy);

		if (i < 0)
			return -1;
		if (send_connection(d->slots[i].ctl_fd, fd, report_fd) == 0) {
			*slot = (size_t)i;
			return 0;
		}
		log_warn("session process %ld: hand over a connection", (long)d->slots[i].pid);
		retire(&d->slots[i]);
	}
	return -1;
}

/*
 * session_said - a session process's control socket is readable: 's' (it
 * spooled mail), 'd' (the connection is done, ready for another), 'x' (done,
 * and leaving), or EOF.
 */
static void
session_said(struct daemon *d, struct session_slot *s)
{
	char said;
	ssize_t n;

	while ((n = recv(s->ctl_fd, &said, 1, MSG_DONTWAIT)) == 1 && said == 's')
		d->queue_kicked = 1;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == 1 && (said == 'd' || said == 'x')) {
		s->busy = 0;
		s->family = AF_UNSPEC;
		memset(s->ip, 0, sizeof(s->ip));
		if (s->report_fd >= 0)
			close(s->report_fd);
		s->report_fd = -1;
		s->idle_since = time(NULL);
		/* Started before a SIGHUP: its configuration is the old one. */
		if (said == 'x' || s->generation != d->generation)
			retire(s);
		return;
	}
	/* EOF or nonsense: it is going (reap frees the slot). */
	retire(s);
}

/* collect_done - read every 'd' already sent (the limits are near). */
static void
collect_done(struct daemon *d)
{
	for (size_t i = 0; i < d->nslots; i++)
		if (d->slots[i].pid > 0 && d->slots[i].busy && d->slots[i].ctl_fd >= 0)
			session_said(d, &d->slots[i]);
}

/* retire_idle - let go of session processes idle for SESSION_MAX_IDLE. */
static void
retire_idle(struct daemon *d)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < d->nslots; i++) {
		struct session_slot *s = &d->slots[i];

		if (s->pid > 0 && !s->busy && s->ctl_fd >= 0 &&
		    (now - s->idle_since >= SESSION_MAX_IDLE || s->generation != d->generation))
			retire(s);
	}
}

static void
accept_on(struct daemon *d, int lfd, int proxied)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
		int family;
		unsigned char ip[16];
		char text[64];
		int report[2];
		size_t slot;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/*
				 * Out of descriptors or memory: the connection stays in
				 * the backlog and the listener readable, so going back
				 * to poll at once would spin and flood the log.
				 */
				log_warn("accept: pausing %d ms", ACCEPT_PAUSE_MS);
				sleep_ms(ACCEPT_PAUSE_MS);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				log_warn("accept");
			}
			return;
		}
		if (sockaddr_to_ip((struct sockaddr *)&ss, &family, ip) < 0) {
			family = AF_INET;
			memset(ip, 0, 16);
		}
		ip_to_text(family, ip, text, sizeof(text));
		/*
		 * Sessions that ended since the last look still count until their
		 * 'd' is read: a busy client reconnecting at once must not see
		 * "too many connections" for them (make bench at 50 sessions did).
		 */
		reap(d);
		if (active_sessions(d) >= (size_t)d->conf->max_connections ||
		    (!proxied && count_from(d, family, ip) >=
		    (size_t)d->conf->max_connections_per_ip))
			collect_done(d);
		if (active_sessions(d) >= (size_t)d->conf->max_connections) {
			log_warnx("connect from unknown[%s]: too many connections (%ld)", text,
			    d->conf->max_connections);
			refuse(fd, "421 4.7.0 Too many connections; try again later\r\n");
			continue;
		}
		/*
		 * Behind HAProxy the peer is HAProxy: the client's address comes
		 * with the PROXY header, which the session reads and reports
		 * (answer_report) before it is counted.
		 */
		if (!proxied && over_ip_limit(d, family, ip)) {
			refuse(fd, TOO_MANY_FROM_ADDRESS);
			continue;
		}
		report[0] = report[1] = -1;
		if (proxied && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0, report) < 0) {
			log_warn("socketpair for a session from unknown[%s]", text);
			refuse(fd, "421 4.3.0 Local error; try again later\r\n");
			continue;
		}
		if (hand_over(d, fd, report, &slot) < 0) {
			refuse(fd, "421 4.3.0 Local error; try again later\r\n");
			close(fd);
			if (proxied) {
				close(report[0]);
				close(report[1]);
			}
			continue;
		}
		close(fd);
		d->slots[slot].busy = 1;
		d->slots[slot].family = proxied ? AF_UNSPEC : family;
		memcpy(d->slots[slot].ip, ip, 16);
		if (proxied) {
			close(report[1]);
			d->slots[slot].report_fd = report[0];
		}
	}
}

/*
 * answer_report - a session behind HAProxy named its client (or ended
 * first): count that address from now on and tell the session whether it
 * is one too many.
 */
static void
answer_report(struct daemon *d, struct session_slot *s)
{
	struct client_report r;
	ssize_t n = recv(s->report_fd, &r, sizeof(r), 0);
	char verdict = 'y';

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == (ssize_t)sizeof(r) && (r.family == AF_INET || r.family == AF_INET6)) {
		if (over_ip_limit(d, r.family, r.ip)) {
			verdict = 'n';
		} else {
			s->family = r.family;
			memcpy(s->ip, r.ip, sizeof(s->ip));
		}
		if (send(s->report_fd, &verdict, 1, MSG_NOSIGNAL) != 1)
			log_debug("session %ld: verdict: %s", (long)s->pid, strerror(errno));
	}
	close(s->report_fd);
	s->report_fd = -1;
}

/* maybe_run_queue - every run_interval, and as soon as something was spooled. */
static void
maybe_run_queue(struct daemon *d, int now_please)
{
	struct timespec m = queue_mtime(d->conf);
	int changed = m.tv_sec != d->queue_seen.tv_sec || m.tv_nsec != d->queue_seen.tv_nsec;
	pid_t pid;

	/* A kick that comes while a run goes on starts another when it ends. */
	if (d->runner > 0 || (!now_please && !d->queue_kicked && !changed &&
	    time(NULL) < d->next_run))
		return;
	d->queue_kicked = 0;
	d->queue_seen = m;
	d->next_run = time(NULL) + d->conf->queue.run_interval;
	pid = fork();
	if (pid < 0) {
		log_warn("fork a queue run");
		return;
	}
	if (pid == 0) {
		struct queue_ctx q;
		struct queue_result res;

		become_child(d, SIG_DFL);
		log_set_role("qmgr");
		memset(&q, 0, sizeof(q));
		q.conf = d->conf;
		q.aliases = d->aliases;
		q.dctx = d->dctx;
		q.dctx.conf = d->conf;
		_exit(queue_run_until_idle(&q, 0, &res) < 0 ? 75 : 0);
	}
	d->runner = pid;
}

/*
 * maybe_fetch_rt_queues - issue 20: RT's queue names kept fresh by a process
 * of their own every minute or refresh, whichever is shorter (rtq_refresh
 * fetches only when the list is older than refresh), so that no session
 * waits for RT.
 */
static void
maybe_fetch_rt_queues(struct daemon *d)
{
	pid_t pid;

	if (d->conf->rt.url == NULL || d->rt_fetcher > 0 || time(NULL) < d->next_rt_fetch)
		return;
	d->next_rt_fetch = time(NULL) + (d->conf->rt.refresh < RTQ_RETRY_MIN ?
	    d->conf->rt.refresh : RTQ_RETRY_MIN);
	pid = fork();
	if (pid < 0) {
		log_warn("fork the RT queue fetch");
		return;
	}
	if (pid == 0) {
		char why[512];

		become_child(d, SIG_DFL);
		_exit(rtq_refresh(d->conf, 0, why, sizeof(why)) < 0 ? 75 : 0);
	}
	d->rt_fetcher = pid;
}

/* reload - SIGHUP: a new configuration and aliases, or the old ones kept. */
static void
reload(struct daemon *d)
{
	struct diag dg = {log_diag, NULL, 0};
	struct conf *c = conf_load(d->opts->conf_file, !d->opts->conf_explicit, &dg);
	struct aliases *a;

	if (c == NULL) {
		log_warnx("SIGHUP: %s has %d error(s): keeping the running configuration",
		    d->opts->conf_file, dg.errors);
		return;
	}
	if (d->opts->aliases_file != NULL) {
		free(c->aliases);
		c->aliases = xstrdup(d->opts->aliases_file);
	}
	a = aliases_load(c->aliases, d->dctx.ps.aliases_owner, &dg);
	if (a == NULL) {
		log_warnx("SIGHUP: aliases %s has %d error(s): keeping the running "
		    "configuration and aliases", c->aliases, dg.errors);
		conf_free(c);
		return;
	}
	/* Sessions and the queue run hold their own copies (fork). */
	conf_free(d->conf);
	aliases_free(d->aliases);
	d->conf = c;
	d->dctx.conf = c;
	d->aliases = a;
	/* Session processes started before now go once their connection is done. */
	d->generation++;
	retire_idle(d);
	log_info("SIGHUP: configuration %s and aliases %s reloaded",
	    c->file ? c->file : "(defaults)", c->aliases);
}

static void
shutdown_sessions(struct daemon *d)
{
	int64_t until = now_ms() + SHUTDOWN_GRACE_MS;

	for (size_t i = 0; i < d->nlisteners; i++)
		close(d->listeners[i]);
	d->nlisteners = 0;
	log_info("SIGTERM: no new connections; %zu session(s) finishing",
	    active_sessions(d));
	for (size_t i = 0; i < d->nslots; i++)
		if (d->slots[i].pid > 0)
			kill(d->slots[i].pid, SIGTERM);
	if (d->runner > 0)
		kill(d->runner, SIGTERM);
	while ((active_sessions(d) > 0 || d->runner > 0) && now_ms() < until) {
		struct timespec ts = {0, 50 * 1000000L};

		nanosleep(&ts, NULL);   /* a SIGCHLD cuts it short: reap at once */
		reap(d);
	}
	for (size_t i = 0; i < d->nslots; i++)
		if (d->slots[i].pid > 0) {
			log_warnx("session %ld still running after the grace period: killed",
			    (long)d->slots[i].pid);
			kill(d->slots[i].pid, SIGKILL);
		}
	if (d->runner > 0)
		kill(d->runner, SIGKILL);
	if (d->rt_fetcher > 0)
		kill(d->rt_fetcher, SIGKILL);     /* the cache is replaced whole, or not */
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
}

/*
 * keep_metrics_running - metrics_listen's server, started once bound and
 * again (at most once a second) if it dies; the master's own descriptors
 * are closed in it.
 */
static void
keep_metrics_running(struct daemon *d)
{
	int *fds;
	size_t n = 0;

	if (d->metrics_fd < 0 || d->metrics_pid > 0 || time(NULL) < d->metrics_restart)
		return;
	/* Everything of the master's but the metrics socket: the listeners, the
	 * signal pipe, the launcher's socket, every session's control and
	 * report sockets (a copy kept would keep a retired session alive). */
	fds = xcalloc(d->nlisteners + 3 + 2 * d->nslots, sizeof(*fds));
	for (size_t i = 0; i < d->nlisteners; i++)
		fds[n++] = d->listeners[i];
	fds[n++] = d->sigpipe[0];
	fds[n++] = d->sigpipe[1];
	fds[n++] = d->dctx.ps.launcher_fd;
	for (size_t i = 0; i < d->nslots; i++) {
		fds[n++] = d->slots[i].ctl_fd;
		fds[n++] = d->slots[i].report_fd;
	}
	d->metrics_pid = metrics_start(d->conf, d->metrics_fd, fds, n);
	free(fds);
	if (d->metrics_pid < 0) {
		d->metrics_pid = 0;
		d->metrics_restart = time(NULL) + 1;
	}
}

static void
open_metrics(struct daemon *d)
{
	char why[600];

	d->metrics_fd = -1;
	if (d->conf->metrics_listen == NULL)
		return;
	d->metrics_fd = metrics_bind(d->conf->metrics_listen, why, sizeof(why));
	if (d->metrics_fd < 0)
		log_warnx("%s: no metrics endpoint", why);
	else
		log_info("metrics on %s", d->conf->metrics_listen);
}

static int
serve(struct daemon *d)
{
	struct sigaction sa;
	struct pollfd *pfd = NULL;
	size_t npfd = 0, *pfd_slot = NULL;
	int stop = 0;

	if (pipe2(d->sigpipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_warn("pipe for signals");
		return 75;
	}
	signal_fd = d->sigpipe[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	{
		struct diag dg = {log_diag, NULL, 0};

		d->aliases = aliases_load(d->conf->aliases, d->dctx.ps.aliases_owner, &dg);
		if (d->aliases == NULL)
			log_warnx("aliases %s has errors: local recipients get 451 until it "
			    "is fixed (SIGHUP reloads)", d->conf->aliases);
	}
	spool_clean(d->conf);
	stats_daemon(d->conf, getpid(), 1);
	open_metrics(d);
	keep_metrics_running(d);
	maybe_run_queue(d, 1);
	log_info("daemon started (pid %ld)", (long)getpid());
	npfd = 1 + MAX_LISTENERS;
	pfd = xreallocarray(NULL, npfd, sizeof(*pfd));
	pfd_slot = xreallocarray(NULL, npfd, sizeof(*pfd_slot));
	while (!stop) {
		size_t n = 0;
		int rc;

		/*
		 * The self-pipe, the listeners, then the session processes' control
		 * sockets and the reports of sessions yet to name their client.
		 */
		if (1 + d->nlisteners + 2 * d->nslots > npfd) {
			npfd = 1 + d->nlisteners + 2 * d->nslots;
			pfd = xreallocarray(pfd, npfd, sizeof(*pfd));
			pfd_slot = xreallocarray(pfd_slot, npfd, sizeof(*pfd_slot));
		}
		pfd[n].fd = d->sigpipe[0];
		pfd[n++].events = POLLIN;
		for (size_t i = 0; i < d->nlisteners; i++) {
			pfd[n].fd = d->listeners[i];
			pfd[n++].events = POLLIN;
		}
		for (size_t i = 0; i < d->nslots; i++) {
			if (d->slots[i].pid > 0 && d->slots[i].ctl_fd >= 0) {
				pfd_slot[n] = i;
				pfd[n].fd = d->slots[i].ctl_fd;
				pfd[n++].events = POLLIN;
			}
			if (d->slots[i].pid > 0 && d->slots[i].report_fd >= 0) {
				pfd_slot[n] = i;
				pfd[n].fd = d->slots[i].report_fd;
				pfd[n++].events = POLLIN;
			}
		}
		rc = poll(pfd, n, 1000);
		if (rc < 0 && errno != EINTR) {
			log_warn("poll");
			continue;
		}
		if (rc > 0 && (pfd[0].revents & POLLIN)) {
			unsigned char sigs[64];
			ssize_t k = read(d->sigpipe[0], sigs, sizeof(sigs));

			for (ssize_t i = 0; i < k; i++) {
				if (sigs[i] == SIGHUP)
					reload(d);
				else if (sigs[i] == SIGTERM || sigs[i] == SIGINT)
					stop = 1;
			}
		}
		reap(d);
		if (stop)
			break;
		/*
		 * Sessions first, so that a process just done takes the next
		 * connection; accept_on may move the slots (realloc).  A slot's fd
		 * is matched again: an earlier entry may have closed it.
		 */
		for (size_t i = 1 + d->nlisteners; rc > 0 && i < n; i++) {
			struct session_slot *s = &d->slots[pfd_slot[i]];

			if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
				continue;
			if (s->ctl_fd == pfd[i].fd)
				session_said(d, s);
			else if (s->report_fd == pfd[i].fd)
				answer_report(d, s);
		}
		for (size_t i = 1; rc > 0 && i < 1 + d->nlisteners; i++)
			if (pfd[i].revents & POLLIN)
				accept_on(d, pfd[i].fd, d->proxied[i - 1]);
		retire_idle(d);
		maybe_run_queue(d, 0);
		maybe_fetch_rt_queues(d);
		keep_metrics_running(d);
	}
	free(pfd);
	free(pfd_slot);
	if (d->metrics_pid > 0)
		kill(d->metrics_pid, SIGTERM);
	if (d->metrics_fd >= 0)
		close(d->metrics_fd);
	shutdown_sessions(d);
	stats_daemon(d->conf, getpid(), 0);
	log_info("daemon stopped");
	return 0;
}

/*
 * check_accounts - SPEC 11: started as root, neither `user` nor any
 * pipe.user may be root, and no pipe.user may be `user`.
 */
static int
check_accounts(const struct conf *c)
{
	struct passwd *pw;
	uid_t spool_uid;
	const char *names[1 + 64];
	size_t n = 0;

	if (geteuid() != 0)
		return 0;
	pw = getpwnam(c->user);
	if (pw == NULL || pw->pw_uid == 0) {
		log_warnx("user \"%s\" does not exist or is root: refusing to start", c->user);
		return -1;
	}
	spool_uid = pw->pw_uid;
	names[n++] = c->pipe.user ? c->pipe.user : "nobody";
	for (size_t i = 0; i < c->nalias_overrides && n < ARRAY_LEN(names); i++)
		if (c->alias_overrides[i].pipe.user != NULL)
			names[n++] = c->alias_overrides[i].pipe.user;
	for (size_t i = 0; i < n; i++) {
		pw = getpwnam(names[i]);
		if (pw == NULL || pw->pw_uid == 0 || pw->pw_uid == spool_uid) {
			log_warnx("pipe user \"%s\" %s: refusing to start", names[i],
			    pw == NULL ? "does not exist" : "is root or the spool owner");
			return -1;
		}
	}
	return 0;
}

static void
close_listeners(struct daemon *d)
{
	for (size_t i = 0; i < d->nlisteners; i++)
		close(d->listeners[i]);
	d->nlisteners = 0;
}

int
daemon_main(struct conf *c, const struct daemon_opts *o)
{
	struct daemon d;
	char why[4200];
	int status = 0, rc;

	memset(&d, 0, sizeof(d));
	d.conf = c;
	d.opts = o;
	d.metrics_fd = -1;
	d.sigpipe[0] = d.sigpipe[1] = -1;
	if (check_accounts(c) < 0) {
		fprintf(stderr, "undersmtpd: unsafe or missing accounts (see the log)\n");
		conf_free(c);
		return 78;
	}
	/* Bind first, as root if need be; everything after runs as `user`. */
	if (systemd_listeners(&d) == 0) {
		for (size_t i = 0; i < c->nlisten; i++)
			if (bind_one(&d, c->listen[i]) < 0) {
				fprintf(stderr, "undersmtpd: cannot listen on %s (see the log)\n",
				    c->listen[i]);
				close_listeners(&d);
				conf_free(c);
				return 75;
			}
	}
	if (d.nlisteners == 0) {
		fprintf(stderr, "undersmtpd: nothing to listen on\n");
		conf_free(c);
		return 64;
	}
	d.dctx.conf = c;
	rc = privsep_start(c, o->aliases_file, d.listeners, d.nlisteners, &d.dctx.ps, &status,
	    why, sizeof(why));
	if (rc == 1) {
		/* We were the launcher (it closed the listeners); the daemon is done. */
		conf_free(c);
		return status;
	}
	if (rc < 0) {
		int err = errno;

		log_warn("%s", why);
		fprintf(stderr, "undersmtpd: %s: %s\n", why, strerror(err));
		close_listeners(&d);
		conf_free(c);
		return 75;
	}
	envelope_warm_up();
	rc = serve(&d);
	/* Leave nothing open: the sessions' sockets, the signal pipe, the
	 * launcher's socket (its EOF tells the launcher we are done). */
	for (size_t i = 0; i < d.nslots; i++)
		free_slot(&d.slots[i]);
	if (d.sigpipe[0] >= 0) {
		close(d.sigpipe[0]);
		close(d.sigpipe[1]);
		signal_fd = -1;
	}
	if (d.dctx.ps.launcher_fd >= 0)
		close(d.dctx.ps.launcher_fd);
	aliases_free(d.aliases);
	free(d.slots);
	conf_free(d.conf);
	return rc;
}
