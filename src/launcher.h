/*
 * launcher.h - the small privileged launcher of SPEC section 11.
 *
 * When undersmtpd starts as root, the session drops to `user` (the spool's
 * owner) and a root process stays behind whose only job is to run pipe
 * programs as pipe.user on the session's request: it receives the argv, the
 * environment, the target uid/gid and the message fd over a socketpair,
 * runs pipe_run() and sends the result back.  It refuses root and the
 * session's own uid as targets, so a program can never touch the spool and
 * a compromised session can never get root.  Started as an ordinary user,
 * there is no launcher and the session calls pipe_run() itself.
 */
#ifndef LAUNCHER_H
#define LAUNCHER_H

#include <sys/types.h>

#include "pipe.h"

/* launcher_serve - answer requests on fd until EOF; forbidden: uid never run. */
void launcher_serve(int fd, uid_t forbidden_uid);
/* launcher_call - one request; 0, or -1 with errno (launcher gone, bad reply). */
int launcher_call(int fd, const struct pipe_request *req, struct pipe_result *res);
/* pipe_execute - through the launcher when fd >= 0, else directly. */
int pipe_execute(int launcher_fd, const struct pipe_request *req,
    struct pipe_result *res);

#endif
