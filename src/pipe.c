/*
 * pipe.c - program delivery.  See pipe.h.
 *
 * The child's set-up order matters: signals reset and unblocked, new
 * session, fds 0-2 in place and everything else closed, supplementary groups
 * dropped, then gid, then uid (verified), then the working directory, the
 * umask and execve.  A failure before execve travels back to us as an errno
 * over a close-on-exec pipe, so "could not start" is told apart from an exit
 * status (Postfix pipe_command.c makes the same distinction).
 */
#define _GNU_SOURCE
#include "pipe.h"
#include "addr.h"
#include "buf.h"
#include "log.h"
#include "reply.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ADDR_LINE_MAX (ADDR_PATH_MAX + 32)

int
pipe_make_input(int msgfd, const char *sender, const char *const *recipients,
    size_t nrecipients)
{
	char line[ADDR_LINE_MAX];
	char buf[65536];
	off_t off = 0;
	int fd, saved;
	ssize_t n;

	/*
	 * In memory, not a second file in the spool: nothing to create, write
	 * back or unlink on the disk, and the page cache held the file anyway.
	 */
	fd = memfd_create("undersmtpd-input", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	snprintf(line, sizeof(line), "Return-Path: <%s>\n", sender ? sender : "");
	if (sender != NULL && write_all(fd, line, strlen(line)) < 0)
		goto fail;
	for (size_t i = 0; i < nrecipients; i++) {
		snprintf(line, sizeof(line), "Delivered-To: %s\n", recipients[i]);
		if (write_all(fd, line, strlen(line)) < 0)
			goto fail;
	}
	while ((n = pread(msgfd, buf, sizeof(buf), off)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write_all(fd, buf, (size_t)n) < 0)
			goto fail;
		off += n;
	}
	/* Sealed: the program (or anyone) cannot change what others will read. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK |
	    F_SEAL_SEAL) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* child_fail - report errno to the parent and die without cleanup. */
static void __attribute__((noreturn))
child_fail(int errfd, int err)
{
	ssize_t n = write(errfd, &err, sizeof(err));

	(void)n;
	_exit(127);
}

static void
child_close_from(int lowfd)
{
	struct rlimit rl;
	rlim_t max = 1024;

#ifdef __linux__
	if (close_range((unsigned)lowfd, ~0U, 0) == 0)
		return;
#endif
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		max = rl.rlim_cur > 65536 ? 65536 : rl.rlim_cur;
	for (int fd = lowfd; (rlim_t)fd < max; fd++)
		close(fd);
}

static void __attribute__((noreturn))
child_exec(const struct pipe_request *req, int outfd, int errfd)
{
	sigset_t none;
	int err = 0, stdout_fd = req->stdout_fd;

	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setsid() < 0)
		child_fail(errfd, errno);
	/* Move the error pipe out of the way of 0-2 first. */
	if (errfd < 3) {
		int moved = fcntl(errfd, F_DUPFD_CLOEXEC, 3);

		if (moved < 0)
			child_fail(errfd, errno);
		errfd = moved;
	}
	if (outfd < 3) {
		int moved = fcntl(outfd, F_DUPFD_CLOEXEC, 3);

		if (moved < 0)
			child_fail(errfd, errno);
		outfd = moved;
	}
	if (stdout_fd > 0 && stdout_fd < 3) {
		int moved = fcntl(stdout_fd, F_DUPFD_CLOEXEC, 3);

		if (moved < 0)
			child_fail(errfd, errno);
		stdout_fd = moved;
	}
	if (dup2(req->stdin_fd, 0) < 0 || dup2(stdout_fd > 0 ? stdout_fd : outfd, 1) < 0 ||
	    dup2(outfd, 2) < 0)
		child_fail(errfd, errno);
	if (dup2(errfd, 3) < 0 || fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
		child_fail(errfd, errno);
	errfd = 3;
	child_close_from(4);
	if (req->change_user) {
		uid_t ru, eu, su;
		gid_t rg, eg, sg;

		if (setgroups(0, NULL) < 0 ||
		    setresgid(req->gid, req->gid, req->gid) < 0 ||
		    setresuid(req->uid, req->uid, req->uid) < 0)
			child_fail(errfd, errno);
		if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 ||
		    ru != req->uid || eu != req->uid || su != req->uid ||
		    rg != req->gid || eg != req->gid || sg != req->gid)
			child_fail(errfd, EPERM);
	}
	if (chdir(req->home ? req->home : "/") < 0 && chdir("/") < 0)
		child_fail(errfd, errno);
	umask(077);
	if (strchr(req->argv[0], '/') != NULL) {
		execve(req->argv[0], req->argv, req->envp);
		child_fail(errfd, errno);
	}
	/* Search our own path, not the caller's PATH (execvp would use it). */
	for (const char *dir = req->path; dir && *dir; ) {
		const char *end = strchr(dir, ':');
		size_t len = end ? (size_t)(end - dir) : strlen(dir);
		char full[4096];

		if (len > 0 && len + strlen(req->argv[0]) + 2 < sizeof(full)) {
			memcpy(full, dir, len);
			full[len] = '/';
			strcpy(full + len + 1, req->argv[0]);
			execve(full, req->argv, req->envp);
			/* Remember why it failed, but a later directory may have it. */
			if (errno != ENOENT && errno != ENOTDIR)
				err = errno;
		}
		dir = end ? end + 1 : NULL;
	}
	child_fail(errfd, err ? err : ENOENT);
}

/* keep_output - the first non-empty line, printable, CR/LF removed, capped. */
static void
keep_output(struct pipe_result *res, const char *p, size_t n, int *done)
{
	size_t o = strlen(res->output), h = strlen(res->head);

	/* The head: what an administrator reads in --test-pipe, lines and all. */
	for (size_t i = 0; i < n && h < PIPE_HEAD_MAX; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r')
			continue;
		res->head[h++] = (c == '\n' || c == '\t' || (c >= 32 && c < 127)) ? (char)c : '?';
		res->head[h] = '\0';
	}
	res->output_bytes += n;
	for (size_t i = 0; i < n && !*done; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\n' || c == '\r') {
			if (o > 0)
				*done = 1;
			continue;
		}
		if (o >= PIPE_OUTPUT_MAX) {
			*done = 1;
			break;
		}
		if (o == 0 && (c == ' ' || c == '\t'))
			continue;
		res->output[o++] = (c >= 32 && c < 127) ? (char)c : '?';
		res->output[o] = '\0';
	}
}

static int
reap(pid_t pid, int *status)
{
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* pc is done: nothing of it stays open. */
static int
finished(struct pipe_child *pc)
{
	close_fd(&pc->out);
	close_fd(&pc->pidfd);
	close_fd(&pc->errp);
	return 1;
}

/*
 * next_look - when nothing but a look can tell of its end (no pidfd, or
 * KILL sent), the step after this one comes within 20 ms.  An absolute
 * time, so that a caller that steps only what is due sees it come.
 */
static int
next_look(struct pipe_child *pc, int64_t now)
{
	int looking = !pc->exited && (pc->pidfd < 0 || pc->killing == 2 || pc->start_failed);

	pc->look_at = looking ? now + 20 : 0;
	return 0;
}

int
pipe_start(const struct pipe_request *req, struct pipe_child *pc)
{
	int out[2], errp[2];
	sigset_t all, old;
	pid_t pid;

	memset(pc, 0, sizeof(*pc));
	pc->out = pc->pidfd = pc->errp = -1;
	if (pipe2(out, O_CLOEXEC) < 0) {
		pc->res.outcome = PIPE_START_FAILED;
		pc->res.err = errno;
		return -1;
	}
	if (pipe2(errp, O_CLOEXEC) < 0) {
		pc->res.outcome = PIPE_START_FAILED;
		pc->res.err = errno;
		close(out[0]);
		close(out[1]);
		return -1;
	}
	/*
	 * The child shares our memory until execve when vforked, so no handler
	 * of ours may run in it: every signal is blocked across the call, and
	 * the child resets them all before it unblocks any (child_exec).
	 *
	 * vfork (no copy of our page tables, no copy-on-write faults) only when
	 * the program runs as ourselves.  Switching to another user, the child
	 * spends its last moments before execve as that user, and any process
	 * of that user could stop it there: a vforked parent would wait for it
	 * for ever, and a root launcher that waits serves nobody.  So the root
	 * launcher forks, and nothing here waits for the child: whether execve
	 * worked comes through errp like the rest, in pipe_child_step.
	 */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	if (req->change_user)
		pid = fork();
	else
		pid = vfork();
	/*
	 * child_exec makes system calls only (its page says which) before
	 * execve or _exit: what vfork allows, though the analyzer's rule names
	 * execve and _exit alone.
	 */
	if (pid == 0)
		child_exec(req, out[1], errp[1]);   /* NOLINT(clang-analyzer-unix.Vfork) */
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		pc->res.outcome = PIPE_START_FAILED;
		pc->res.err = errno;
		close(out[0]);
		close(out[1]);
		close(errp[0]);
		close(errp[1]);
		return -1;
	}
	close(out[1]);
	close(errp[1]);
	pc->pid = pid;
	pc->out = out[0];
	pc->errp = errp[0];
	if (fcntl(pc->out, F_SETFL, O_NONBLOCK) < 0 || fcntl(pc->errp, F_SETFL, O_NONBLOCK) < 0)
		log_warn("pipe: %s: O_NONBLOCK", req->argv[0]);
	/*
	 * Readable when the program has exited, so its end is seen at once
	 * (Linux 5.3); without it, pipe_child_wake asks for a look every 20 ms.
	 */
	pc->pidfd = pidfd_open(pid, 0);
	pc->deadline = now_ms() + req->timeout * 1000;
	next_look(pc, now_ms());
	return 0;
}

size_t
pipe_child_fds(const struct pipe_child *pc, struct pollfd pfd[3])
{
	size_t n = 0;

	if (pc->errp >= 0) {
		pfd[n].fd = pc->errp;
		pfd[n++].events = POLLIN;
	}
	if (pc->out >= 0) {
		pfd[n].fd = pc->out;
		pfd[n++].events = POLLIN;
	}
	if (pc->pidfd >= 0 && !pc->exited) {
		pfd[n].fd = pc->pidfd;
		pfd[n++].events = POLLIN;
	}
	return n;
}

int64_t
pipe_child_wake(const struct pipe_child *pc)
{
	int64_t wake = pc->killing == 1 ? pc->kill_at : pc->deadline;

	if (pc->exited && !pc->killing && pc->stop_reading < wake)
		wake = pc->stop_reading;
	if (pc->look_at > 0 && pc->look_at < wake)
		wake = pc->look_at;
	return wake;
}

/*
 * check_started - errp: EOF once execve succeeded (close-on-exec), or the
 * errno of what failed before it.  A failed start is killed (it may be
 * stopped, not yet gone) and reaped like any end.
 */
static void
check_started(struct pipe_child *pc)
{
	int child_errno = 0;
	ssize_t n;

	if (pc->errp < 0)
		return;
	do
		n = read(pc->errp, &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	close_fd(&pc->errp);
	if (n == (ssize_t)sizeof(child_errno)) {
		pc->start_failed = 1;
		pc->res.err = child_errno;
		close_fd(&pc->out);
		kill(pc->pid, SIGKILL);
	}
}

/* read_output - what the program wrote since the last look (never blocks). */
static void
read_output(struct pipe_child *pc)
{
	char buf[4096];

	/* At most 64 KB a look: a program that writes for ever shares the loop. */
	for (int reads = 0; pc->out >= 0 && reads < 16; reads++) {
		ssize_t n = read(pc->out, buf, sizeof(buf));

		if (n > 0) {
			keep_output(&pc->res, buf, (size_t)n, &pc->done_line);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		close_fd(&pc->out);         /* EOF: every writer is gone */
	}
}

int
pipe_child_step(struct pipe_child *pc, int64_t now)
{
	check_started(pc);
	read_output(pc);
	if (!pc->exited) {
		int r = reap(pc->pid, &pc->status);

		if (r < 0) {
			/* Never guess: without a status nothing counts as delivered. */
			pc->res.outcome = PIPE_STATUS_LOST;
			pc->res.err = errno;
			kill(-pc->pid, SIGKILL);
			return finished(pc);
		}
		if (r == 1) {
			pc->exited = 1;
			pc->stop_reading = now + PIPE_GRACE_MS / 2;
		}
	}
	if (pc->start_failed) {
		if (!pc->exited)
			return next_look(pc, now);           /* killed: its end is near */
		pc->res.outcome = PIPE_START_FAILED;
		return finished(pc);
	}
	if (pc->killing) {
		/*
		 * The timeout struck: the group had TERM, and KILL after the grace,
		 * or now that the leader is gone, whichever comes first: what it
		 * left behind in its group goes too (T-pipe: no survivors).
		 */
		if (pc->exited) {
			kill(-pc->pid, SIGKILL);
			pc->res.outcome = PIPE_TIMEDOUT;
			return finished(pc);
		}
		if (pc->killing == 1 && now >= pc->kill_at) {
			kill(-pc->pid, SIGKILL);
			pc->killing = 2;
		}
		return next_look(pc, now);
	}
	if (now >= pc->deadline) {
		close_fd(&pc->out);
		kill(-pc->pid, SIGTERM);
		if (pc->exited) {
			/* Only a descendant held on: the group goes at once. */
			kill(-pc->pid, SIGKILL);
			pc->res.outcome = PIPE_TIMEDOUT;
			return finished(pc);
		}
		pc->killing = 1;
		pc->kill_at = now + PIPE_GRACE_MS;
		return next_look(pc, now);
	}
	/* Exited, and its output closed (or a descendant holds it too long). */
	if (pc->exited && (pc->out < 0 || now >= pc->stop_reading)) {
		if (WIFSIGNALED(pc->status)) {
			pc->res.outcome = PIPE_SIGNALED;
			pc->res.status = WTERMSIG(pc->status);
		} else {
			pc->res.outcome = PIPE_EXITED;
			pc->res.status = WEXITSTATUS(pc->status);
		}
		return finished(pc);
	}
	return next_look(pc, now);
}

void
pipe_child_abandon(struct pipe_child *pc)
{
	if (!pc->exited && pc->pid > 0) {
		int status;

		kill(-pc->pid, SIGKILL);
		while (waitpid(pc->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	finished(pc);
}

int
pipe_run(const struct pipe_request *req, struct pipe_result *res)
{
	struct pipe_child pc;

	if (pipe_start(req, &pc) == 0)
		for (;;) {
			struct pollfd pfd[3];
			size_t n = pipe_child_fds(&pc, pfd);
			int64_t left = pipe_child_wake(&pc) - now_ms();

			if (poll(pfd, n, left < 0 ? 0 : left > 1000 ? 1000 : (int)left) < 0 &&
			    errno != EINTR)
				sleep_ms(20);
			if (pipe_child_step(&pc, now_ms()))
				break;
		}
	*res = pc.res;
	return 0;
}

void
pipe_describe(const struct pipe_result *res, char *buf, size_t size)
{
	const struct sysexit *row;

	switch (res->outcome) {
	case PIPE_EXITED:
		row = sysexit_find(res->status);
		if (row)
			snprintf(buf, size, "exit %d (%s)", res->status, row->name);
		else
			snprintf(buf, size, "exit %d", res->status);
		break;
	case PIPE_SIGNALED:
		snprintf(buf, size, "killed by signal %d", res->status);
		break;
	case PIPE_TIMEDOUT:
		snprintf(buf, size, "timed out");
		break;
	case PIPE_START_FAILED:
		snprintf(buf, size, "could not be started: %s", strerror(res->err));
		break;
	case PIPE_STATUS_LOST:
		snprintf(buf, size, "exit status lost: %s", strerror(res->err));
		break;
	case PIPE_REFUSED:
		snprintf(buf, size, "not run: refused");
		break;
	case PIPE_BUSY:
		snprintf(buf, size, "not run: too many programs running");
		break;
	}
}

/* dsn_from_output - "4.x.y text" / "5.x.y text" at the start of the output. */
static int
dsn_from_output(const char *out, char dsn[8])
{
	size_t i = 0;

	if ((out[0] != '4' && out[0] != '5') || out[1] != '.')
		return 0;
	for (i = 2; out[i] >= '0' && out[i] <= '9' && i < 5; i++)
		;
	if (i == 2 || out[i] != '.')
		return 0;
	{
		size_t j = i + 1, k;

		for (k = j; out[k] >= '0' && out[k] <= '9' && k < j + 3; k++)
			;
		if (k == j || (out[k] != ' ' && out[k] != '\0') || k >= 8)
			return 0;
		memcpy(dsn, out, k);
		dsn[k] = '\0';
	}
	return 1;
}

void
pipe_reply(const struct pipe_result *res, const int *tempfail, size_t ntempfail,
    int via_shell, struct smtp_reply *reply)
{
	char how[128], dsn[8];
	const struct sysexit *row = NULL;
	int code;
	const char *status, *text;

	pipe_describe(res, how, sizeof(how));
	if (res->outcome == PIPE_EXITED && res->status == 0) {
		smtp_set_reply(reply, 250, "2.0.0", "delivered to command");
		goto append_output;
	}
	code = 451;
	status = "4.3.0";
	text = "temporary failure";
	if (res->outcome == PIPE_EXITED) {
		int temp = 0;

		for (size_t i = 0; i < ntempfail; i++)
			if (tempfail[i] == res->status)
				temp = 1;
		if (via_shell && (res->status == 126 || res->status == 127)) {
			temp = 1;
			text = "the shell could not run the command";
		}
		row = sysexit_find(res->status);
		if (temp && row != NULL)
			text = row->text;
		if (!temp && row != NULL) {
			code = row->code;
			status = row->dsn;
			text = row->text;
		} else if (!temp) {
			code = 554;
			status = "5.3.0";
			text = "unknown failure";
		}
	} else if (res->outcome == PIPE_REFUSED || res->outcome == PIPE_BUSY) {
		/* Never the program's words: it did not run. */
		smtp_set_reply(reply, 451, "4.3.0", res->outcome == PIPE_BUSY ?
		    "Too many concurrent deliveries to programs; try again later" :
		    "Local configuration error: the program may not run");
		if (res->outcome == PIPE_REFUSED && res->output[0])
			smtp_reply_append(reply, ": ", res->output);
		return;
	} else {
		/* "command timed out", "command killed by signal 9", ... */
		text = "command";
	}
	smtp_set_reply(reply, code, status, text);
	/* Postfix-style: an enhanced status code in the output decides it. */
	if (dsn_from_output(res->output, dsn)) {
		reply->code = dsn[0] == (char)('0' + code / 100) ? code
		    : (dsn[0] == '4' ? 451 : 550);
		str_copy(reply->status, sizeof(reply->status), dsn);
	}
	smtp_reply_append(reply, res->outcome == PIPE_EXITED ? ": " : " ", how);
append_output:
	if (res->output[0])
		smtp_reply_append(reply, ": ", res->output);
}
