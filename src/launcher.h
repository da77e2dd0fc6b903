/*
 * launcher.h - the small privileged launcher of SPEC section 11.
 *
 * When undersmtpd starts as root, the session drops to `user` (the spool's
 * owner) and a root process stays behind whose only job is to run pipe
 * programs as pipe.user on the session's request: it receives the argv, the
 * environment, the target uid/gid and the message fd over a socketpair,
 * runs pipe_run() and sends the result back.  It runs programs only as the
 * accounts the configuration names, and never as root or the session's own
 * uid, so a program can never touch the spool and a compromised session can
 * get neither root nor any other account or group.  Started as an ordinary user,
 * there is no launcher and the session calls pipe_run() itself.
 */
#ifndef LAUNCHER_H
#define LAUNCHER_H

#include <pwd.h>
#include <sys/types.h>

#include "conf.h"
#include "delivery.h"
#include "pipe.h"

/*
 * launcher_serve - answer requests on fd until every holder closed it, then
 * wait for all children.  Programs run only as an account c names (pipe.user,
 * nobody by default, or an alias block's user) with its primary group, never
 * root or forbidden_uid; c's file is re-read when it changes.  Returns the
 * exit status of main_child (the session or queue run it served).
 */
int launcher_serve(int fd, const struct conf *c, uid_t forbidden_uid, pid_t main_child);
#define LAUNCHER_MAX_ARGS 256
#define LAUNCHER_MAX_ENV 128

/*
 * launcher_parse - the len bytes of one request into req, argv and envp (all
 * pointing into buf, whose strings stay NUL-terminated where they are); 0, or
 * -1 for anything malformed.  Only the form: who may run is the launcher's
 * decision after it.  Public for the fuzzer (tests/fuzz/fuzz_launcher.c).
 */
int launcher_parse(char *buf, size_t len, struct pipe_request *req,
    char *argv[LAUNCHER_MAX_ARGS + 1], char *envp[LAUNCHER_MAX_ENV + 1]);
/* launcher_call - one request; 0, or -1 with errno (launcher gone, bad reply). */
int launcher_call(int fd, const struct pipe_request *req, struct pipe_result *res);
/* pipe_execute - through the launcher when fd >= 0, else directly. */
int pipe_execute(int launcher_fd, const struct pipe_request *req,
    struct pipe_result *res);

/* launcher_spool_user - the `user` account; 0, or -1 when it does not exist. */
int launcher_spool_user(const struct conf *c, struct passwd *out, char *buf,
    size_t bufsize);
/* launcher_drop_privileges - setgroups, setresgid, setresuid, verified. */
int launcher_drop_privileges(const struct passwd *pw);
/*
 * launcher_privsep - SPEC 11.  Started as root: fork; the child drops to
 * `user` and returns 0 with d set to use the launcher; the parent stays root
 * as the launcher until the child is done, then returns 1 with the child's
 * exit status.  As anyone else: 0, everything runs as ourselves.  -1 with
 * why on failure.
 */
int launcher_privsep(const struct conf *c, struct delivery_ctx *d, int *status,
    char *why, size_t whysize);

#endif
