/*
 * launcher.c - the privileged pipe launcher and its wire format.
 *
 * One request is one SOCK_SEQPACKET message: a fixed header, then the search
 * path, the home directory, argv and envp as NUL-terminated strings, with
 * the message fd attached as SCM_RIGHTS.  One reply is a struct pipe_result.
 * Every count and string is checked against the received length before use.
 */
#include "launcher.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define LAUNCHER_MAGIC 0x55534d31u   /* "USM1" */
#define LAUNCHER_MSG_MAX (64 * 1024)
#define LAUNCHER_MAX_ARGS 256
#define LAUNCHER_MAX_ENV 128

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
		char space[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr msg;
	struct cmsghdr *cm;
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
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &req->stdin_fd, sizeof(int));
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	free(buf);
	if (n < 0)
		return -1;
	/* The launcher enforces the timeout; allow it that plus its kill grace. */
	{
		int64_t deadline = now_ms() + (req->timeout + 10) * 1000;

		for (;;) {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			int64_t left = deadline - now_ms();
			int rc;

			if (left <= 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
			if (rc > 0)
				break;
			if (rc < 0 && errno != EINTR)
				return -1;
		}
	}
	do
		n = recv(fd, res, sizeof(*res), 0);
	while (n < 0 && errno == EINTR);
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

static void
serve_one(int fd, char *buf, ssize_t len, int msgfd, uid_t forbidden_uid)
{
	struct launcher_hdr h;
	struct pipe_request req;
	struct pipe_result res;
	char *argv[LAUNCHER_MAX_ARGS + 1], *envp[LAUNCHER_MAX_ENV + 1];
	size_t off = sizeof(h);
	ssize_t n;

	memset(&res, 0, sizeof(res));
	memset(&req, 0, sizeof(req));
	res.outcome = PIPE_START_FAILED;
	res.err = EINVAL;
	if (len < (ssize_t)sizeof(h) || msgfd < 0)
		goto reply;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != LAUNCHER_MAGIC || h.nargv == 0 || h.nargv > LAUNCHER_MAX_ARGS ||
	    h.nenv > LAUNCHER_MAX_ENV || h.timeout <= 0 || h.timeout > 86400)
		goto reply;
	/* Never root, never the spool's owner (SPEC 11). */
	if (!h.change_user || h.uid == 0 || h.gid == 0 || (uid_t)h.uid == forbidden_uid) {
		log_warnx("launcher: refused to run a program as uid %u gid %u",
		    (unsigned)h.uid, (unsigned)h.gid);
		res.err = EPERM;
		goto reply;
	}
	req.path = next_string(buf, (size_t)len, &off);
	req.home = next_string(buf, (size_t)len, &off);
	for (uint32_t i = 0; i < h.nargv; i++)
		if ((argv[i] = next_string(buf, (size_t)len, &off)) == NULL)
			goto reply;
	argv[h.nargv] = NULL;
	for (uint32_t i = 0; i < h.nenv; i++)
		if ((envp[i] = next_string(buf, (size_t)len, &off)) == NULL)
			goto reply;
	envp[h.nenv] = NULL;
	if (req.path == NULL || req.home == NULL)
		goto reply;
	req.argv = argv;
	req.envp = envp;
	req.change_user = 1;
	req.uid = (uid_t)h.uid;
	req.gid = (gid_t)h.gid;
	req.timeout = (long)h.timeout;
	req.stdin_fd = msgfd;
	pipe_run(&req, &res);
reply:
	if (msgfd >= 0)
		close(msgfd);
	do
		n = send(fd, &res, sizeof(res), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		log_warn("launcher: send result");
}

void
launcher_serve(int fd, uid_t forbidden_uid)
{
	char *buf = xmalloc(LAUNCHER_MSG_MAX);

	for (;;) {
		union {
			struct cmsghdr hdr;
			char space[CMSG_SPACE(sizeof(int))];
		} ctl;
		struct iovec iov = {buf, LAUNCHER_MSG_MAX};
		struct msghdr msg;
		struct cmsghdr *cm;
		int msgfd = -1;
		ssize_t n;

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
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
			    cm->cmsg_len == CMSG_LEN(sizeof(int)))
				memcpy(&msgfd, CMSG_DATA(cm), sizeof(int));
		if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
			if (msgfd >= 0)
				close(msgfd);
			msgfd = -1;
		}
		serve_one(fd, buf, n, msgfd, forbidden_uid);
	}
	free(buf);
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
