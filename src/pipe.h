/*
 * pipe.h - run one program for a pipe alias, and turn its outcome into an
 * SMTP reply (SPEC section 7).
 *
 * pipe_run() starts the program in its own session and process group, as
 * another user when asked, with only fds 0-2 (stdin a sealed file holding
 * the finished message; stdout and stderr one pipe we read, bounded), default
 * signals and exactly the environment it is given.  It waits no longer than
 * the timeout, then kills the whole process group.  pipe_reply() holds the
 * one table from exit status to reply (STYLE habit 11).
 */
#ifndef PIPE_H
#define PIPE_H

#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

#include "reply.h"

#define PIPE_OUTPUT_MAX 200       /* the kept, sanitised first line */
#define PIPE_HEAD_MAX 600         /* the first bytes of output, for --test-pipe */
#define PIPE_GRACE_MS 2000        /* SIGTERM -> SIGKILL; exit -> stop reading */

struct pipe_request {
	char *const *argv;            /* argv[0] without '/' is searched in path */
	char *const *envp;
	const char *path;             /* search path for argv[0] */
	const char *home;             /* working directory of the program */
	int change_user;              /* switch to uid/gid (we are root) */
	uid_t uid;
	gid_t gid;
	long timeout;                 /* seconds */
	int stdin_fd;
	int stdout_fd;                /* > 0: the program's standard output goes
	                                 there, its standard error alone to the
	                                 output we read (a filter's rewritten
	                                 message, filter.h); 0: both to ours */
};

enum pipe_outcome {
	PIPE_EXITED,                  /* status holds the exit status */
	PIPE_SIGNALED,                /* status holds the signal */
	PIPE_TIMEDOUT,
	PIPE_START_FAILED,            /* err holds errno (fork, exec, setuid...) */
	PIPE_STATUS_LOST,             /* waitpid failed: err holds errno */
	PIPE_REFUSED,                 /* not run: the configuration does not allow
	                                 it (output says why) */
	PIPE_BUSY,                    /* not run: pipe.max_concurrency programs
	                                 are running and as many wait */
};

struct pipe_result {
	enum pipe_outcome outcome;
	int status;
	int err;
	unsigned long long output_bytes;
	char output[PIPE_OUTPUT_MAX + 1];   /* first non-empty line, printable */
	char head[PIPE_HEAD_MAX + 1];       /* first bytes, printable, lines kept */
};

/*
 * pipe_make_input - the program's standard input (SPEC 7): Return-Path:
 * (none when sender is NULL: a filter's input), one Delivered-To: per
 * recipient, then the message of msgfd (read from offset 0), in a memfd sealed against any change and positioned at its
 * start.  Returns its fd, or -1 with errno.
 */
int pipe_make_input(int msgfd, const char *sender, const char *const *recipients,
    size_t nrecipients);
/* pipe_run - always fills res; returns 0 (the outcome says what happened). */
int pipe_run(const struct pipe_request *req, struct pipe_result *res);

/*
 * The same, without blocking, for a caller that watches many programs in
 * one poll loop (the launcher): pipe_start, then, whenever one of the fds of
 * pipe_child_fds is ready or the time pipe_child_wake names has come,
 * pipe_child_step, until it returns 1 with res final.  pipe_run is exactly
 * this loop for one program.
 */
struct pipe_child {
	pid_t pid;
	int errp;                     /* execve's news: EOF, or the errno; -1 after */
	int out;                      /* its stdout and stderr; -1 once closed */
	int pidfd;                    /* readable once it has exited; -1: none */
	int exited, status, done_line;
	int start_failed;             /* errp brought an errno: killed, to be reaped */
	int killing;                  /* 1: TERM sent at the timeout; 2: KILL too */
	int64_t deadline, stop_reading, kill_at;    /* now_ms() times */
	int64_t look_at;              /* a look due without news (no pidfd); 0: none */
	struct pipe_result res;
};

/*
 * pipe_start - 0: started (whether execve worked, pipe_child_step tells: a
 * failure ends as PIPE_START_FAILED); -1: not started, pc->res says why
 * (nothing to watch).  Never waits for the child.
 */
int pipe_start(const struct pipe_request *req, struct pipe_child *pc);
/* pipe_child_fds - the fds to poll for reading (at most 3); how many. */
size_t pipe_child_fds(const struct pipe_child *pc, struct pollfd pfd[3]);
/* pipe_child_wake - when to call pipe_child_step even if no fd is ready. */
int64_t pipe_child_wake(const struct pipe_child *pc);
/* pipe_child_step - read, reap, enforce the timeout; 1 when done (res final). */
int pipe_child_step(struct pipe_child *pc, int64_t now);
/* pipe_child_abandon - kill its process group, reap it, close what is open. */
void pipe_child_abandon(struct pipe_child *pc);
/*
 * pipe_reply - the SMTP reply for a result.  tempfail: extra exit statuses
 * that mean "try again" (pipe.tempfail); via_shell: 126/127 mean the shell
 * could not start the command.
 */
void pipe_reply(const struct pipe_result *res, const int *tempfail,
    size_t ntempfail, int via_shell, struct smtp_reply *reply);
/* pipe_describe - "exit 75 (EX_TEMPFAIL)", "signal 9", "timed out"... */
void pipe_describe(const struct pipe_result *res, char *buf, size_t size);

#endif
