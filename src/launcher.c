/*
 * launcher.c - the privileged pipe launcher and its wire format.
 *
 * One request is one SOCK_SEQPACKET message: a fixed header, then the search
 * path, the home directory, argv and envp as NUL-terminated strings, with
 * two fds attached as SCM_RIGHTS: the message, and the caller's end of a
 * private socketpair on which a forked worker sends the struct pipe_result.
 * Requests from many sessions may arrive at once; each has its own worker.
 * Every count and string is checked against the received length before use,
 * and the account asked for against the configuration (launcher_policy).
 */
#define _GNU_SOURCE   /* setresuid(2): the only way to drop all three ids */
#include "launcher.h"
#include "log.h"
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

#define LAUNCHER_MAGIC 0x55534d31u   /* "USM1" */
#define LAUNCHER_MSG_MAX (64 * 1024)

struct launcher_hdr {
	uint32_t magic;
	uint32_t nargv, nenv;
	uint32_t uid, gid;
	int32_t change_user;
	int64_t timeout;
};

static int
append(char *buf, size_t *off, const char *s)
{
	size_t n = strlen(s) + 1;

	if (*off + n > LAUNCHER_MSG_MAX)
		return -1;
	memcpy(buf + *off, s, n);
	*off += n;
	return 0;
}

int
launcher_call(int fd, const struct pipe_request *req, struct pipe_result *res)
{
	char *buf = xmalloc(LAUNCHER_MSG_MAX);
	struct launcher_hdr h = {LAUNCHER_MAGIC, 0, 0, (uint32_t)req->uid,
	    (uint32_t)req->gid, req->change_user, req->timeout};
	size_t off = sizeof(h);
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr msg;
	struct cmsghdr *cm;
	int fds[2], reply[2];
	ssize_t n;

	if (append(buf, &off, req->path ? req->path : "") < 0 ||
	    append(buf, &off, req->home ? req->home : "/") < 0)
		goto toolong;
	for (char *const *a = req->argv; *a; a++, h.nargv++)
		if (append(buf, &off, *a) < 0)
			goto toolong;
	for (char *const *e = req->envp; *e; e++, h.nenv++)
		if (append(buf, &off, *e) < 0)
			goto toolong;
	memcpy(buf, &h, sizeof(h));
	/*
	 * A private channel for the answer: many sessions share the launcher,
	 * and each must read its own result.
	 */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, reply) < 0) {
		free(buf);
		return -1;
	}
	memset(&msg, 0, sizeof(msg));
	memset(&ctl, 0, sizeof(ctl));
	iov.iov_base = buf;
	iov.iov_len = off;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.space;
	msg.msg_controllen = sizeof(ctl.space);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
	fds[0] = req->stdin_fd;
	fds[1] = reply[1];
	memcpy(CMSG_DATA(cm), fds, sizeof(fds));
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	free(buf);
	close(reply[1]);
	if (n < 0) {
		close(reply[0]);
		return -1;
	}
	/* The launcher enforces the timeout; allow it that plus its kill grace. */
	{
		int64_t deadline = now_ms() + (req->timeout + 10) * 1000;

		for (;;) {
			struct pollfd pfd = {.fd = reply[0], .events = POLLIN};
			int64_t left = deadline - now_ms();
			int rc;

			if (left <= 0) {
				close(reply[0]);
				errno = ETIMEDOUT;
				return -1;
			}
			rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
			if (rc > 0)
				break;
			if (rc < 0 && errno != EINTR) {
				close(reply[0]);
				return -1;
			}
		}
	}
	do
		n = recv(reply[0], res, sizeof(*res), 0);
	while (n < 0 && errno == EINTR);
	close(reply[0]);
	if (n != (ssize_t)sizeof(*res)) {
		if (n >= 0)
			errno = EPIPE;
		return -1;
	}
	res->output[PIPE_OUTPUT_MAX] = '\0';
	return 0;
toolong:
	free(buf);
	errno = E2BIG;
	return -1;
}

/* next_string - the NUL-terminated string at *off, or NULL past the end. */
static char *
next_string(char *buf, size_t len, size_t *off)
{
	char *s = buf + *off;
	char *nul;

	if (*off >= len)
		return NULL;
	nul = memchr(s, '\0', len - *off);
	if (nul == NULL)
		return NULL;
	*off = (size_t)(nul - buf) + 1;
	return s;
}

/*
 * The accounts a program may run as: those the configuration names (pipe.user,
 * nobody by default, and each alias block's user), with their own primary
 * group, never root or the spool's owner.  The requester only says which;
 * the launcher decides, from a file the requester cannot change: a session is
 * the part exposed to the network, and were it taken over it could otherwise
 * ask for any uid or group (disk, shadow) and get it.  The configuration is
 * read again when its file changes, so accounts added by a reload of the
 * sessions' configuration are followed.
 */
struct launcher_policy {
	const struct conf *conf;  /* in force */
	struct conf *reloaded;    /* ours to free, once the file changed */
	struct stat st;           /* of conf->file as last read (st_ino 0: unknown) */
	uid_t forbidden_uid;
};

static void
policy_init(struct launcher_policy *p, const struct conf *c, uid_t forbidden_uid)
{
	memset(p, 0, sizeof(*p));
	p->conf = c;
	p->forbidden_uid = forbidden_uid;
	/* Read just after the caller's conf_load(): a change in between is caught
	 * by the next one (until then, new accounts are refused, never granted). */
	if (c->file != NULL && stat(c->file, &p->st) < 0)
		memset(&p->st, 0, sizeof(p->st));
}

static void
policy_refresh(struct launcher_policy *p)
{
	struct diag d = {log_diag, NULL, 0};
	struct stat st;
	struct conf *c;

	if (p->conf->file == NULL || stat(p->conf->file, &st) < 0)
		return;                 /* built-in defaults, or gone: keep what we have */
	if (st.st_ino == p->st.st_ino && st.st_dev == p->st.st_dev &&
	    st.st_size == p->st.st_size && st.st_mtim.tv_sec == p->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == p->st.st_mtim.tv_nsec)
		return;
	p->st = st;
	c = conf_load(p->conf->file, 0, &d);
	if (c == NULL) {
		log_warnx("launcher: %s is broken: pipe users stay as they were",
		    p->conf->file);
		return;
	}
	conf_free(p->reloaded);
	p->reloaded = c;
	p->conf = c;
}

/* is_account - name is a user whose uid and primary group are these. */
static int
is_account(const char *name, uid_t uid, gid_t gid)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	return getpwnam_r(name, &pw, buf, sizeof(buf), &found) == 0 && found != NULL &&
	    found->pw_uid == uid && found->pw_gid == gid;
}

static int
policy_permits(const struct launcher_policy *p, uid_t uid, gid_t gid)
{
	const char *global = p->conf->pipe.user ? p->conf->pipe.user : "nobody";

	if (uid == 0 || gid == 0 || uid == p->forbidden_uid)
		return 0;
	if (is_account(global, uid, gid))
		return 1;
	for (size_t i = 0; i < p->conf->nalias_overrides; i++) {
		const char *name = p->conf->alias_overrides[i].pipe.user;

		if (name != NULL && is_account(name, uid, gid))
			return 1;
	}
	return 0;
}

int
launcher_parse(char *buf, size_t len, struct pipe_request *req,
    char *argv[LAUNCHER_MAX_ARGS + 1], char *envp[LAUNCHER_MAX_ENV + 1])
{
	struct launcher_hdr h;
	size_t off = sizeof(h);

	memset(req, 0, sizeof(*req));
	if (len < sizeof(h))
		return -1;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != LAUNCHER_MAGIC || h.nargv == 0 || h.nargv > LAUNCHER_MAX_ARGS ||
	    h.nenv > LAUNCHER_MAX_ENV || h.timeout <= 0 || h.timeout > 86400)
		return -1;
	req->path = next_string(buf, len, &off);
	req->home = next_string(buf, len, &off);
	if (req->path == NULL || req->home == NULL)
		return -1;
	for (uint32_t i = 0; i < h.nargv; i++)
		if ((argv[i] = next_string(buf, len, &off)) == NULL)
			return -1;
	argv[h.nargv] = NULL;
	for (uint32_t i = 0; i < h.nenv; i++)
		if ((envp[i] = next_string(buf, len, &off)) == NULL)
			return -1;
	envp[h.nenv] = NULL;
	req->argv = argv;
	req->envp = envp;
	req->change_user = h.change_user != 0;
	req->uid = (uid_t)h.uid;
	req->gid = (gid_t)h.gid;
	req->timeout = (long)h.timeout;
	req->stdin_fd = -1;
	return 0;
}

static void
serve_one(int replyfd, char *buf, ssize_t len, int msgfd, const struct launcher_policy *p)
{
	struct pipe_request req;
	struct pipe_result res;
	char *argv[LAUNCHER_MAX_ARGS + 1], *envp[LAUNCHER_MAX_ENV + 1];
	ssize_t n;

	memset(&res, 0, sizeof(res));
	res.outcome = PIPE_START_FAILED;
	res.err = EINVAL;
	if (msgfd < 0 || len < 0 || launcher_parse(buf, (size_t)len, &req, argv, envp) < 0)
		goto reply;
	/* Only an account the configuration names; never root or the spool's owner. */
	if (!req.change_user || !policy_permits(p, req.uid, req.gid)) {
		log_warnx("launcher: refused to run a program as uid %u gid %u: not a "
		    "pipe user of %s", (unsigned)req.uid, (unsigned)req.gid,
		    p->conf->file ? p->conf->file : "the built-in configuration");
		res.err = EPERM;
		goto reply;
	}
	req.stdin_fd = msgfd;
	pipe_run(&req, &res);
reply:
	if (msgfd >= 0)
		close(msgfd);
	do
		n = send(replyfd, &res, sizeof(res), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		log_warn("launcher: send result");
}

/*
 * reap - collect finished children without waiting; the main child's
 * status (the session or queue run the launcher serves) is kept.
 */
static void
reap(pid_t main_child, int *main_status, int *main_done)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		if (pid == main_child) {
			*main_status = status;
			*main_done = 1;
		}
}

/*
 * take_fds - the two descriptors of a request into fds; any others the
 * kernel installed with the message (another count, a second SCM_RIGHTS) are
 * closed, or a bad requester could fill the launcher's descriptor table.
 */
static void
take_fds(struct msghdr *msg, int fds[2])
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
		if (n == 2 && fds[0] < 0 && fds[1] < 0) {
			fds[0] = got[0];
			fds[1] = got[1];
			continue;
		}
		for (size_t i = 0; i < n; i++)
			close(got[i]);
	}
}

int
launcher_serve(int fd, const struct conf *c, uid_t forbidden_uid, pid_t main_child)
{
	int main_status = 0, main_done = 0;
	char *buf = xmalloc(LAUNCHER_MSG_MAX);
	struct launcher_policy policy;

	policy_init(&policy, c, forbidden_uid);

	for (;;) {
		union {
			struct cmsghdr hdr;
			char space[CMSG_SPACE(2 * sizeof(int))];
		} ctl;
		struct iovec iov = {buf, LAUNCHER_MSG_MAX};
		struct msghdr msg;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int fds[2] = {-1, -1};
		ssize_t n;
		pid_t pid;

		/* Wake up now and then to reap workers even when idle. */
		if (poll(&pfd, 1, 1000) <= 0) {
			reap(main_child, &main_status, &main_done);
			continue;
		}
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.space;
		msg.msg_controllen = sizeof(ctl.space);
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		take_fds(&msg, fds);
		if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || fds[1] < 0) {
			if (fds[0] >= 0)
				close(fds[0]);
			if (fds[1] >= 0)
				close(fds[1]);
			continue;
		}
		policy_refresh(&policy);
		/* One worker per request: sessions run their programs concurrently. */
		pid = fork();
		if (pid == 0) {
			close(fd);
			serve_one(fds[1], buf, n, fds[0], &policy);
			_exit(0);
		}
		if (pid < 0) {
			struct pipe_result res;

			memset(&res, 0, sizeof(res));
			res.outcome = PIPE_START_FAILED;
			res.err = errno;
			log_warn("launcher: fork a worker");
			if (send(fds[1], &res, sizeof(res), MSG_NOSIGNAL) < 0)
				log_warn("launcher: send result");
		}
		close(fds[0]);
		close(fds[1]);
		reap(main_child, &main_status, &main_done);
	}
	free(buf);
	conf_free(policy.reloaded);
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0)
			break;
		if (pid == main_child) {
			main_status = status;
			main_done = 1;
		}
	}
	if (!main_done)
		return 70;
	return WIFEXITED(main_status) ? WEXITSTATUS(main_status) : 70;
}

int
pipe_execute(int launcher_fd, const struct pipe_request *req, struct pipe_result *res)
{
	if (launcher_fd < 0)
		return pipe_run(req, res);
	if (launcher_call(launcher_fd, req, res) < 0) {
		memset(res, 0, sizeof(*res));
		res->outcome = PIPE_START_FAILED;
		res->err = errno;
		log_warn("pipe launcher request failed");
	}
	return 0;
}

/* spool_user - the account sessions run as when started as root. */
int
launcher_spool_user(const struct conf *c, struct passwd *out, char *buf, size_t bufsize)
{
	struct passwd *pw = NULL;

	if (getpwnam_r(c->user, out, buf, bufsize, &pw) != 0 || pw == NULL)
		return -1;
	return 0;
}

int
launcher_drop_privileges(const struct passwd *pw)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (setgroups(1, &pw->pw_gid) < 0 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
		return -1;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
	    ru != pw->pw_uid || eu != pw->pw_uid || su != pw->pw_uid ||
	    rg != pw->pw_gid || eg != pw->pw_gid || sg != pw->pw_gid) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

/* become_launcher - the root parent keeps nothing of the client's socket. */
/* The one child a launcher serves: SIGTERM and SIGHUP to the launcher are passed on. */
static volatile pid_t served_child;

static void
forward_sigterm(int sig)
{
	if (served_child > 0)
		kill(served_child, sig);
}

static int
become_launcher(int sock, const struct conf *c, pid_t child, uid_t spool_uid)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	struct sigaction sa;
	int status;

	served_child = child;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_sigterm;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) {
		log_warn("launcher: redirect to /dev/null");
		kill(child, SIGTERM);
	}
	if (null > 2)
		close(null);
	status = launcher_serve(sock, c, spool_uid, child);
	close(sock);
	return status;
}

/*
 * privsep - SPEC 11.  Started as root: fork; the child drops to `user`
 * (setgroups, setresgid, setresuid, verified) and returns 0 with d set to
 * use the launcher; the parent stays root as the pipe launcher until the
 * child is done, then returns 1 with the child's exit status.  As anyone
 * else: 0, everything runs as ourselves.  -1 with why on failure.
 */
int
launcher_privsep(const struct conf *c, struct delivery_ctx *d, int *status, char *why,
    size_t whysize)
{
	struct passwd pw;
	char pwbuf[4096];
	int sv[2];
	pid_t pid;

	d->conf = c;
	d->running_as_root = 0;
	d->launcher_fd = -1;
	d->session_uid = geteuid();
	if (geteuid() != 0)
		return spool_prepare_top(c, geteuid(), getegid(), why, whysize) < 0 ||
		    spool_prepare(c, why, whysize) < 0 ? -1 : 0;
	if (launcher_spool_user(c, &pw, pwbuf, sizeof(pwbuf)) < 0 || pw.pw_uid == 0) {
		snprintf(why, whysize, "user \"%s\" does not exist or is root: refusing "
		    "to run as root", c->user);
		errno = EPERM;
		return -1;
	}
	/* Root touches spool_dir alone; what is inside it is `user`'s to make. */
	if (spool_prepare_top(c, pw.pw_uid, pw.pw_gid, why, whysize) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(why, whysize, "socketpair for the pipe launcher");
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, whysize, "fork");
		return -1;
	}
	if (pid > 0) {
		close(sv[1]);
		*status = become_launcher(sv[0], c, pid, pw.pw_uid);
		return 1;
	}
	close(sv[0]);
	if (launcher_drop_privileges(&pw) < 0) {
		snprintf(why, whysize, "drop privileges to %s", c->user);
		return -1;
	}
	if (spool_prepare(c, why, whysize) < 0)
		return -1;
	d->running_as_root = 1;
	d->launcher_fd = sv[1];
	d->session_uid = pw.pw_uid;
	return 0;
}

