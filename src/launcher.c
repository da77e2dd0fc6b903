/*
 * launcher.c - the privileged pipe launcher and its wire format.
 *
 * One request is one SOCK_SEQPACKET message: a fixed header (magic, number
 * of fields), then the LAUNCHER_FIELDS strings of struct delivery_values,
 * each NUL-terminated, nothing after them; two fds ride along as
 * SCM_RIGHTS: the program's standard input, and the caller's end of a
 * private socketpair on which the answer (a struct pipe_result) comes back.
 * Requests from many sessions may arrive at once.  For each, the launcher
 * checks the request's bounds and values (launcher_parse), routes the
 * recipient with its own tables, builds the command from its own
 * configuration (nothing of the request but the values of struct
 * delivery_values reaches the program, and those only in its environment)
 * and starts the program with pipe_start (no worker process in between, and
 * no wait for the child: a program stopped before its execve stops nothing
 * here).  One poll loop watches every running program (its start, its
 * output pipe, a pidfd for its end, its timeout) and sends each result on
 * the request's own answer socket.  At most pipe.max_concurrency programs
 * run at once; as many requests more wait their turn, and beyond that a
 * request is answered busy (451).
 *
 * privsep_start() (privsep.c) makes the launcher (SPEC 11): started as root, the
 * process forks; the child drops to `user` and goes on as the session,
 * daemon, queue run or sendmail; the parent stays root and serves the
 * child's requests until it is done, then exits with its status (handing a
 * background queue run the child left behind to a process of its own).
 */
#define _GNU_SOURCE   /* setresuid(2): the only way to drop all three ids */
#include "launcher.h"
#include "aliases.h"
#include "filter.h"
#include "log.h"
#include "route.h"
#include "spool.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define LAUNCHER_MAGIC 0x55534d33u   /* "USM3": no argv, no environment */
#define LAUNCHER_SEND_WAIT_MS 60000  /* a session waits this long to hand a request over */

struct launcher_hdr {
	uint32_t magic;
	uint32_t nfields;
};

/* Field bounds: what SMTP itself allows for each value. */
static const struct field_rule {
	const char *name;
	size_t max;                /* bytes, the NUL excluded */
	int may_be_empty;
} field_rules[LAUNCHER_FIELDS] = {
	{"recipient", ADDR_PATH_MAX, 0},
	{"sender", ADDR_PATH_MAX, 1},
	{"client address", 63, 0},
	{"helo", 255, 1},
	{"queue id", SPOOL_ID_MAX - 1, 0},
	{"delivery id", 64, 1},
	{"kind", 6, 1},
	{"recipients", FILTER_RECIPIENTS_MAX, 1},
};

size_t
launcher_format(const struct delivery_values *v, char *buf, size_t size)
{
	const char *fields[LAUNCHER_FIELDS] = {v->recipient, v->sender, v->client_addr,
	    v->helo, v->queue_id, v->delivery_id, v->kind, v->recipients};
	struct launcher_hdr h = {LAUNCHER_MAGIC, LAUNCHER_FIELDS};
	size_t off = sizeof(h);

	if (size < sizeof(h))
		return 0;
	memcpy(buf, &h, sizeof(h));
	for (size_t i = 0; i < LAUNCHER_FIELDS; i++) {
		size_t n = strlen(fields[i] ? fields[i] : "") + 1;

		if (off + n > size)
			return 0;
		memcpy(buf + off, fields[i] ? fields[i] : "", n);
		off += n;
	}
	return off;
}

/* has_control - a byte below 32 or DEL: never in an envelope value. */
static int
has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 32 || *s == 127)
			return 1;
	return 0;
}

int
launcher_parse(char *buf, size_t len, struct delivery_values *v, char *why,
    size_t whysize)
{
	const char *fields[LAUNCHER_FIELDS];
	struct launcher_hdr h;
	size_t off = sizeof(h);
	struct addr ad;

	memset(v, 0, sizeof(*v));
	if (len < sizeof(h)) {
		snprintf(why, whysize, "request of %zu bytes is too short", len);
		return -1;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.magic != LAUNCHER_MAGIC || h.nfields != LAUNCHER_FIELDS) {
		snprintf(why, whysize, "not a request of this version (magic %08x, %u "
		    "fields)", (unsigned)h.magic, (unsigned)h.nfields);
		return -1;
	}
	for (size_t i = 0; i < LAUNCHER_FIELDS; i++) {
		char *nul = off < len ? memchr(buf + off, '\0', len - off) : NULL;
		size_t n;

		if (nul == NULL) {
			snprintf(why, whysize, "%s missing or not terminated", field_rules[i].name);
			return -1;
		}
		fields[i] = buf + off;
		n = (size_t)(nul - (buf + off));
		if (n > field_rules[i].max || (n == 0 && !field_rules[i].may_be_empty)) {
			snprintf(why, whysize, "%s of %zu bytes", field_rules[i].name, n);
			return -1;
		}
		if (has_control(fields[i])) {
			snprintf(why, whysize, "%s holds a control character", field_rules[i].name);
			return -1;
		}
		off += n + 1;
	}
	if (off != len) {
		snprintf(why, whysize, "%zu bytes after the last field", len - off);
		return -1;
	}
	if (addr_parse_plain(fields[0], &ad) != ADDR_OK) {
		snprintf(why, whysize, "recipient is not an address");
		return -1;
	}
	if (fields[6][0] != '\0' && strcmp(fields[6], "filter") != 0) {
		snprintf(why, whysize, "kind is neither a program nor a filter");
		return -1;
	}
	v->recipient = fields[0];
	v->sender = fields[1];
	v->client_addr = fields[2];
	v->helo = fields[3];
	v->queue_id = fields[4];
	v->delivery_id = fields[5];
	v->kind = fields[6];
	v->recipients = fields[7];
	return 0;
}

/* failed - res for a request that could not be made or answered. */
static void
failed(struct pipe_result *res, int err)
{
	memset(res, 0, sizeof(*res));
	res->outcome = PIPE_START_FAILED;
	res->err = err;
	errno = err;
	log_warn("pipe launcher request failed");
}

/* send_request - the message and its two fds (three: a filter's output). */
static int
send_request(int fd, const char *buf, size_t len, int stdin_fd, int reply_fd,
    int stdout_fd)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(3 * sizeof(int))];
	} ctl;
	struct iovec iov = {(void *)(uintptr_t)buf, len};
	struct msghdr msg;
	struct cmsghdr *cm;
	int fds[3] = {stdin_fd, reply_fd, stdout_fd};
	size_t nfds = stdout_fd > 0 ? 3 : 2;
	ssize_t n;

	memset(&msg, 0, sizeof(msg));
	memset(&ctl, 0, sizeof(ctl));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.space;
	msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	/* Never blocked for good by a launcher that stopped reading. */
	for (int64_t deadline = now_ms() + LAUNCHER_SEND_WAIT_MS;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int64_t left = deadline - now_ms();

		n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (poll(&pfd, 1, left > 1000 ? 1000 : (int)left) < 0 && errno != EINTR)
			return -1;
	}
}

int
launcher_send(int fd, const struct delivery_values *v, int stdin_fd, int stdout_fd,
    struct pipe_result *res)
{
	char buf[LAUNCHER_MSG_MAX];
	size_t len = launcher_format(v, buf, sizeof(buf));
	int reply[2];

	if (len == 0) {
		failed(res, E2BIG);
		return -1;
	}
	/*
	 * A private channel for the answer: many sessions share the launcher,
	 * and each must read its own result.
	 */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, reply) < 0) {
		failed(res, errno);
		return -1;
	}
	if (send_request(fd, buf, len, stdin_fd, reply[1], stdout_fd) < 0) {
		int err = errno;

		close(reply[0]);
		close(reply[1]);
		failed(res, err);
		return -1;
	}
	close(reply[1]);
	return reply[0];
}

void
launcher_answer(int answer_fd, struct pipe_result *res)
{
	ssize_t n;

	do
		n = recv(answer_fd, res, sizeof(*res), 0);
	while (n < 0 && errno == EINTR);
	close(answer_fd);
	if (n != (ssize_t)sizeof(*res)) {
		failed(res, n < 0 ? errno : EPIPE);
		return;
	}
	res->output[PIPE_OUTPUT_MAX] = '\0';
	res->head[PIPE_HEAD_MAX] = '\0';
}

void
launcher_request(int fd, const struct delivery_values *v, int stdin_fd, long wait,
    struct pipe_result *res)
{
	int64_t deadline = now_ms() + (int64_t)wait * 1000;
	int afd = launcher_send(fd, v, stdin_fd, 0, res);

	if (afd < 0)
		return;
	for (;;) {
		struct pollfd pfd = {.fd = afd, .events = POLLIN};
		int64_t left = deadline - now_ms();
		int rc;

		if (left <= 0) {
			close(afd);
			failed(res, ETIMEDOUT);
			return;
		}
		rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (rc > 0)
			break;
		if (rc < 0 && errno != EINTR) {
			int err = errno;

			close(afd);
			failed(res, err);
			return;
		}
	}
	launcher_answer(afd, res);
}

/*
 * What the launcher reads itself, as root, and keeps up to date: the
 * configuration (re-read when its file changes or on SIGHUP) and the
 * aliases (loaded at the first request, re-read when a file of theirs
 * changes).  Only root's own aliases files may name programs here.
 */
struct launcher_tables {
	const struct conf *conf;       /* in force */
	struct conf *reloaded;         /* ours to free, once the file changed */
	struct stat st;                /* of conf->file as last read (st_ino 0: unknown) */
	const char *aliases_override;  /* -a FILE */
	struct aliases *aliases;       /* NULL until loaded, or when broken */
	uid_t spool_uid;
};

/* The launcher's SIGHUP: set by the handler, read by the loop. */
static volatile sig_atomic_t reload_requested;

static void
launcher_diag(void *ctx, const char *file, int line, const char *msg)
{
	(void)ctx;
	log_warnx("launcher: %s:%d: %s", file, line, msg);
}

static void
tables_init(struct launcher_tables *t, const struct conf *c, const char *aliases_override,
    uid_t spool_uid)
{
	memset(t, 0, sizeof(*t));
	t->conf = c;
	t->aliases_override = aliases_override;
	t->spool_uid = spool_uid;
	/* Read just after the caller's conf_load(): a change in between is caught
	 * by the next one (until then, the older file stays in force). */
	if (c->file != NULL && stat(c->file, &t->st) < 0)
		memset(&t->st, 0, sizeof(t->st));
}

static void
tables_refresh(struct launcher_tables *t, int force)
{
	struct diag d = {launcher_diag, NULL, 0};
	struct stat st;
	struct conf *c;
	struct aliases *a;
	int conf_changed = 0;

	if (t->conf->file != NULL && stat(t->conf->file, &st) == 0 &&
	    (force || st.st_ino != t->st.st_ino || st.st_dev != t->st.st_dev ||
	    st.st_size != t->st.st_size || st.st_mtim.tv_sec != t->st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != t->st.st_mtim.tv_nsec)) {
		t->st = st;
		c = conf_load(t->conf->file, 0, &d);
		if (c == NULL) {
			log_warnx("launcher: %s is broken: the configuration in force stays",
			    t->conf->file);
		} else {
			if (t->aliases_override != NULL) {
				free(c->aliases);
				c->aliases = xstrdup(t->aliases_override);
			}
			conf_free(t->reloaded);
			t->reloaded = c;
			t->conf = c;
			conf_changed = 1;
		}
	}
	if (t->aliases != NULL && !force && !conf_changed && !aliases_changed(t->aliases))
		return;
	a = aliases_load(t->conf->aliases, 0, &d);
	if (a == NULL && t->aliases != NULL) {
		log_warnx("launcher: aliases %s are broken: the table in force stays",
		    t->conf->aliases);
		return;
	}
	aliases_free(t->aliases);
	t->aliases = a;
}

/*
 * send_answer - the result on the requester's answer socket, never waiting:
 * a requester that does not read its answers must not stop the launcher or
 * its loop.  The socket was checked to be a SEQPACKET socket (receive).
 */
static void
send_answer(int replyfd, const struct pipe_result *res)
{
	ssize_t n;

	do
		n = send(replyfd, res, sizeof(*res), MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		log_warn("launcher: send result");
}

/* refuse - PIPE_REFUSED with why, logged. */
static void
refuse(struct pipe_result *res, const char *why)
{
	log_warnx("launcher: refused a request: %s", why);
	res->outcome = PIPE_REFUSED;
	str_copy(res->output, sizeof(res->output), why);
}

/*
 * start_filter - the content filter for route r (routed with the relay right:
 * the route only names the filter, whose words are all ours), its standard
 * output to outfd when it may rewrite the message, which must then be a
 * pipe (the session reads it, bounded), and nothing else.
 */
static int
start_filter(const struct launcher_tables *t, const struct route_result *r,
    const struct delivery_values *v, int msgfd, int outfd, struct pipe_child *pc)
{
	const struct filter_conf *f;
	struct delivery_command cmd;
	struct stat st;
	char why[512];
	int conflict = 0, rc;

	f = r->reply.code == 250 ? filter_for_route(t->conf, r, &conflict) : NULL;
	if (f == NULL) {
		snprintf(why, sizeof(why), "no filter applies to <%s>%s", v->recipient,
		    conflict ? " (its destinations have different ones)" : "");
		refuse(&pc->res, why);
		return -1;
	}
	if (f->rewrite != (outfd >= 0) || (outfd >= 0 && (fstat(outfd, &st) < 0 ||
	    !S_ISFIFO(st.st_mode) || (fcntl(outfd, F_GETFL) & O_ACCMODE) != O_WRONLY))) {
		refuse(&pc->res, f->rewrite ? "the filter rewrites: its output needs a pipe"
		    : "the filter does not rewrite: its output is ours to read");
		return -1;
	}
	if (delivery_build_filter(f, delivery_pipe_conf(t->conf, r), v, 1, t->spool_uid, &cmd,
	    why, sizeof(why)) < 0) {
		refuse(&pc->res, why);
		return -1;
	}
	cmd.req.stdin_fd = msgfd;
	cmd.req.stdout_fd = outfd >= 0 ? outfd : 0;
	rc = pipe_start(&cmd.req, pc);
	delivery_command_free(&cmd);
	return rc;
}

/*
 * start_one - parse the request, route its recipient with the launcher's own
 * tables, build the command and start the program on pc.  0: running; -1:
 * not started, pc->res says why (refused, or could not start).
 */
static int
start_one(char *buf, size_t len, int msgfd, int outfd, const struct launcher_tables *t,
    struct pipe_child *pc)
{
	struct delivery_values v;
	struct route_result *r = NULL;
	struct delivery_command cmd;
	struct addr ad;
	char why[512];
	int rc = -1;

	memset(pc, 0, sizeof(*pc));
	pc->out = pc->pidfd = -1;
	if (launcher_parse(buf, len, &v, why, sizeof(why)) < 0) {
		refuse(&pc->res, why);
		return -1;
	}
	if (t->aliases == NULL) {
		refuse(&pc->res, "the aliases are unavailable");
		return -1;
	}
	r = xmalloc(sizeof(*r));
	addr_parse_plain(v.recipient, &ad);
	if (v.kind[0] != '\0') {
		/* A filter: the one our configuration gives this recipient's route. */
		route_address(t->conf, t->aliases, &ad, 1, r);
		rc = start_filter(t, r, &v, msgfd, outfd, pc);
		free(r);
		return rc;
	}
	route_address(t->conf, t->aliases, &ad, 0, r);
	if (outfd >= 0) {
		refuse(&pc->res, "a program's output is ours to read, not the requester's");
	} else if (r->reply.code != 250 || route_pipe(r) == NULL) {
		snprintf(why, sizeof(why), "<%s> is not a pipe alias of %s (%d %s %s)",
		    v.recipient, t->conf->aliases, r->reply.code, r->reply.status,
		    r->reply.text);
		refuse(&pc->res, why);
	} else if (delivery_build(t->conf, r, &v, 1, t->spool_uid, &cmd, why,
	    sizeof(why)) < 0) {
		refuse(&pc->res, why);
	} else {
		cmd.req.stdin_fd = msgfd;
		rc = pipe_start(&cmd.req, pc);
		delivery_command_free(&cmd);
	}
	free(r);
	return rc;
}

/*
 * take_fds - the two descriptors of a request into fds; any others the
 * kernel installed with the message (another count, a second SCM_RIGHTS) are
 * closed, or a bad requester could fill the launcher's descriptor table.
 */
static void
take_fds(struct msghdr *msg, int fds[3])
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		size_t n;
		int got[8];

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (n > sizeof(got) / sizeof(got[0]))
			n = sizeof(got) / sizeof(got[0]);   /* more cannot fit our buffer */
		memcpy(got, CMSG_DATA(cm), n * sizeof(int));
		if ((n == 2 || n == 3) && fds[0] < 0 && fds[1] < 0) {
			fds[0] = got[0];
			fds[1] = got[1];
			fds[2] = n == 3 ? got[2] : -1;
			continue;
		}
		for (size_t i = 0; i < n; i++)
			close(got[i]);
	}
}

/* A request read but not yet started (pipe.max_concurrency programs run). */
struct pending {
	char buf[LAUNCHER_MSG_MAX];
	size_t len;
	int fds[3];
};

/* A program started for a request, watched until its result is sent. */
struct program {
	struct pipe_child pc;
	int replyfd;               /* -1: a free place */
	int due;                   /* an fd is ready or its wake time came */
};

struct launcher {
	int fd;
	struct launcher_tables tables;
	pid_t main_child;
	int main_status, main_done;
	struct program *programs;      /* running; replyfd -1 for a free place */
	size_t running, nprograms;     /* how many run; places in programs */
	struct pending *waiting;       /* FIFO of at most max_running() requests */
	size_t nwaiting, capacity;
};

/* The one child a launcher serves: SIGTERM and SIGHUP to the launcher are passed on. */
static volatile sig_atomic_t served_child;

/* child_ended - SIGCHLD: nothing but the interruption of the launcher's wait. */
static void
child_ended(int sig)
{
	(void)sig;
}

/*
 * forward_signal - the launcher's SIGTERM, SIGINT and SIGHUP go on to the
 * session or queue run it serves; SIGHUP also has it re-read its tables.
 */
static void
forward_signal(int sig)
{
	if (sig == SIGHUP)
		reload_requested = 1;
	if (served_child > 0)
		kill((pid_t)served_child, sig);
}

/* max_running - pipe.max_concurrency: programs at once, and requests waiting. */
static size_t
max_running(const struct launcher *l)
{
	long m = l->tables.conf->pipe.max_concurrency;

	return m > 0 ? (size_t)m : CONF_PIPE_MAX_CONCURRENCY;
}

/*
 * input_pending - a request or the end of the socket is waiting to be read.
 * A child's exit closes its end before its SIGCHLD: when we learn that the
 * served child is done, its EOF may be here unread, and serving on in a
 * detached copy of ourselves would only keep whatever we hold (a daemon's
 * listening sockets, in a process nobody waits for) open a little longer.
 */
static int
input_pending(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	return poll(&pfd, 1, 0) > 0;
}

/* reap - collect finished children without waiting. */
static void
reap(struct launcher *l)
{
	pid_t pid;
	int status;

	/*
	 * The served child only: each program is reaped by its own
	 * pipe_child_step, which needs its exit status.
	 */
	while (l->main_child > 0 && !l->main_done &&
	    (pid = waitpid(l->main_child, &status, WNOHANG)) > 0) {
		if (pid == l->main_child) {
			sigset_t block, old;

			l->main_status = status;
			l->main_done = 1;
			/* Its pid may be reused: never forward a signal to it again. */
			sigemptyset(&block);
			sigaddset(&block, SIGTERM);
			sigaddset(&block, SIGINT);
			sigaddset(&block, SIGHUP);
			sigprocmask(SIG_BLOCK, &block, &old);
			served_child = 0;
			sigprocmask(SIG_SETMASK, &old, NULL);
		}
	}
}

/* program_started - watch pc until its result goes to replyfd (room made as needed). */
static void
program_started(struct launcher *l, const struct pipe_child *pc, int replyfd)
{
	size_t i;

	for (i = 0; i < l->nprograms && l->programs[i].replyfd >= 0; i++)
		;
	if (i == l->nprograms) {
		l->programs = xreallocarray(l->programs, l->nprograms + 16, sizeof(*l->programs));
		for (size_t k = l->nprograms; k < l->nprograms + 16; k++)
			l->programs[k].replyfd = -1;
		l->nprograms += 16;
	}
	l->programs[i].pc = *pc;
	l->programs[i].replyfd = replyfd;
	l->programs[i].due = 0;
	l->running++;
}

/* step_programs - the news of each program due; finished ones get their result sent. */
static void
step_programs(struct launcher *l)
{
	for (size_t i = 0; i < l->nprograms; i++) {
		struct program *p = &l->programs[i];

		if (p->replyfd < 0 || !p->due)
			continue;
		p->due = 0;
		if (!pipe_child_step(&p->pc, now_ms()))
			continue;
		send_answer(p->replyfd, &p->pc.res);
		close(p->replyfd);
		p->replyfd = -1;
		l->running--;
	}
}

static void
answer(int replyfd, enum pipe_outcome outcome, int err)
{
	struct pipe_result res;

	memset(&res, 0, sizeof(res));
	res.outcome = outcome;
	res.err = err;
	send_answer(replyfd, &res);
}

/* answer_socket - fd is a local SEQPACKET socket, as our answer sockets are. */
static int
answer_socket(int fd)
{
	int type = 0, domain = 0;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
		return 0;
	len = sizeof(domain);
	return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX;
}

/* sealed_input - fd is a regular file sealed against writing, growing and shrinking. */
static int
sealed_input(int fd)
{
	const int need = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK;
	int seals = fcntl(fd, F_GET_SEALS);

	return seals >= 0 && (seals & need) == need;
}

/*
 * dispatch - start the program of one request; fds[0] (the message) and
 * fds[2] (a filter's output, or -1) are closed here, fds[1] (the answer
 * socket) once the result is sent.
 */
static void
dispatch(struct launcher *l, char *buf, size_t len, int fds[3])
{
	struct pipe_child pc;

	tables_refresh(&l->tables, 0);
	if (!sealed_input(fds[0])) {
		/*
		 * Our sessions hand over the sealed memfd of pipe_make_input: a
		 * program is never given anything else (another socket of ours,
		 * a file the requester may still change).
		 */
		memset(&pc, 0, sizeof(pc));
		refuse(&pc.res, "the program's input is not a sealed file");
		send_answer(fds[1], &pc.res);
		close(fds[1]);
	} else if (start_one(buf, len, fds[0], fds[2], &l->tables, &pc) == 0) {
		program_started(l, &pc, fds[1]);
	} else {
		if (pc.res.outcome == PIPE_START_FAILED)
			log_warnx("launcher: could not start a program: %s",
			    strerror(pc.res.err));
		send_answer(fds[1], &pc.res);
		close(fds[1]);
	}
	close(fds[0]);
	if (fds[2] >= 0)
		close(fds[2]);   /* the filter has its copy: our copy would hold its reader */
}

/*
 * may_wait - room for one more waiting request: fewer than max_running()
 * wait, and the array holds one more (it grows with a reloaded limit, and
 * never shrinks under requests already waiting).
 */
static int
may_wait(struct launcher *l)
{
	size_t max = max_running(l);

	if (l->nwaiting >= max)
		return 0;
	if (l->nwaiting >= l->capacity) {
		l->waiting = xreallocarray(l->waiting, max, sizeof(*l->waiting));
		l->capacity = max;
	}
	return 1;
}

/*
 * receive - one request off the socket: run, wait, or answer busy.  -1 at
 * the end: every holder of the session's end closed it (a hang-up; a
 * message of length 0 is a request, refused).
 */
static int
receive(struct launcher *l, char *buf, short revents)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(3 * sizeof(int))];
	} ctl;
	struct iovec iov = {buf, LAUNCHER_MSG_MAX};
	struct msghdr msg;
	int fds[3] = {-1, -1, -1};
	ssize_t n;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.space;
	msg.msg_controllen = sizeof(ctl.space);
	n = recvmsg(l->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == ENOBUFS || errno == ENOMEM)
			return 0;
		log_warn("launcher: recvmsg");
		return -1;
	}
	if (n == 0 && (revents & POLLHUP) && msg.msg_controllen == 0)
		return -1;
	take_fds(&msg, fds);
	if (n == 0 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || fds[0] < 0 || fds[1] < 0 ||
	    !answer_socket(fds[1])) {
		/* Nothing to answer on, or not a request at all: refused unread. */
		log_warnx("launcher: refused a request: %s", (msg.msg_flags & MSG_TRUNC)
		    ? "longer than any request" : (msg.msg_flags & MSG_CTRUNC)
		    ? "with more descriptors than a request" : n == 0 ? "empty"
		    : fds[1] < 0 || fds[0] < 0 ? "without its two descriptors"
		    : "its answer socket is not one");
		if (fds[1] >= 0 && answer_socket(fds[1]))
			answer(fds[1], PIPE_REFUSED, 0);
		for (size_t i = 0; i < 3; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return 0;
	}
	if (l->running < max_running(l) && l->nwaiting == 0) {
		dispatch(l, buf, (size_t)n, fds);
	} else if (may_wait(l)) {
		struct pending *p = &l->waiting[l->nwaiting++];

		memcpy(p->buf, buf, (size_t)n);
		p->len = (size_t)n;
		memcpy(p->fds, fds, sizeof(p->fds));
	} else {
		log_warnx("launcher: %zu programs running and %zu requests waiting: a "
		    "request answered busy", l->running, l->nwaiting);
		answer(fds[1], PIPE_BUSY, EAGAIN);
		for (size_t i = 0; i < 3; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	return 0;
}

/* run_waiting - start waiting requests, oldest first, as room allows. */
static void
run_waiting(struct launcher *l)
{
	size_t done = 0;

	while (done < l->nwaiting && l->running < max_running(l)) {
		struct pending *p = &l->waiting[done++];

		dispatch(l, p->buf, p->len, p->fds);
	}
	if (done > 0) {
		memmove(l->waiting, l->waiting + done, (l->nwaiting - done) * sizeof(*l->waiting));
		l->nwaiting -= done;
	}
}

int
launcher_serve(int fd, const struct conf *c, const char *aliases_override,
    uid_t spool_uid, pid_t main_child)
{
	struct launcher l;
	char *buf = xmalloc(LAUNCHER_MSG_MAX);
	size_t npfd = 1 + 3 * 16;      /* grows with the programs running */
	struct pollfd *pfd = xreallocarray(NULL, npfd, sizeof(*pfd));
	size_t *owner = xreallocarray(NULL, npfd, sizeof(*owner));
	int eof = 0, detached = 0;

	memset(&l, 0, sizeof(l));
	l.fd = fd;
	l.main_child = main_child;
	tables_init(&l.tables, c, aliases_override, spool_uid);
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = forward_signal;
		sigaction(SIGHUP, &sa, NULL);
		/* A child's end interrupts the wait below (no SA_RESTART). */
		sa.sa_handler = child_ended;
		sigaction(SIGCHLD, &sa, NULL);
	}
	for (;;) {
		int64_t now, wake;
		size_t n = 0;
		int rc;

		reap(&l);
		run_waiting(&l);
		/* Requests are done when their results are sent, not before. */
		if (eof && l.nwaiting == 0 && l.running == 0)
			break;
		/*
		 * The session or sendmail we served is done, but a background
		 * queue run it started still holds the socket: go on serving that
		 * in a process of our own, and let whoever waits for this one
		 * (sendmail's caller: RT, cron) have its exit status now.
		 */
		if (l.main_done && l.main_child > 0 && l.running == 0 && l.nwaiting == 0 &&
		    !input_pending(fd)) {
			pid_t pid = fork();

			if (pid > 0) {
				detached = 1;
				break;
			}
			if (pid == 0) {
				setsid();
				l.main_child = -1;
			} else {
				log_warn("launcher: fork to serve a background queue run");
				l.main_child = -1;        /* then serve it here */
			}
		}
		/* The requests' socket, then each running program's output and end. */
		if (1 + 3 * l.nprograms > npfd) {
			npfd = 1 + 3 * l.nprograms;
			pfd = xreallocarray(pfd, npfd, sizeof(*pfd));
			owner = xreallocarray(owner, npfd, sizeof(*owner));
		}
		pfd[n].fd = eof ? -1 : fd;
		pfd[n++].events = POLLIN;
		now = now_ms();
		wake = now + 1000;
		for (size_t i = 0; i < l.nprograms; i++) {
			size_t k;

			if (l.programs[i].replyfd < 0)
				continue;
			k = pipe_child_fds(&l.programs[i].pc, pfd + n);
			for (size_t j = 0; j < k; j++)
				owner[n + j] = i;
			n += k;
			if (pipe_child_wake(&l.programs[i].pc) < wake)
				wake = pipe_child_wake(&l.programs[i].pc);
		}
		rc = poll(pfd, n, wake <= now ? 0 : (int)(wake - now));
		if (reload_requested) {
			reload_requested = 0;
			tables_refresh(&l.tables, 1);
		}
		/* Programs first: a finished one makes room for a new request. */
		now = now_ms();
		for (size_t i = 0; i < l.nprograms; i++)
			l.programs[i].due = l.programs[i].replyfd >= 0 &&
			    pipe_child_wake(&l.programs[i].pc) <= now;
		for (size_t j = 1; rc > 0 && j < n; j++)
			if (pfd[j].revents != 0)
				l.programs[owner[j]].due = 1;
		step_programs(&l);
		if (rc > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    receive(&l, buf, pfd[0].revents) < 0)
			eof = 1;
	}
	free(buf);
	free(pfd);
	free(owner);
	free(l.waiting);
	free(l.programs);
	for (; !detached;) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0)
			break;
		if (pid == main_child) {
			l.main_status = status;
			l.main_done = 1;
		}
	}
	aliases_free(l.tables.aliases);
	conf_free(l.tables.reloaded);
	if (!l.main_done)
		return 70;
	return WIFEXITED(l.main_status) ? WEXITSTATUS(l.main_status) : 70;
}

/* launcher_become - the root parent keeps nothing of the client's socket. */
int
launcher_become(int sock, const struct conf *c, const char *aliases_override,
    pid_t child, uid_t spool_uid)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	struct sigaction sa;
	int status;

	served_child = child;
	log_set_role("launcher");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) {
		log_warn("launcher: redirect to /dev/null");
		kill(child, SIGTERM);
	}
	if (null > 2)
		close(null);
	status = launcher_serve(sock, c, aliases_override, spool_uid, child);
	close(sock);
	return status;
}
