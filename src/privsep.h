/*
 * privsep.h - SPEC 11's split of privileges, in one place.
 *
 * Started as root, undersmtpd forks once: the child drops to `user` (the
 * spool's owner) and goes on as the session, daemon, queue run or sendmail;
 * the parent stays root as the pipe launcher (launcher.c), serving that
 * child's requests until it is done.  struct privsep is what the child
 * knows of this: whether programs go through the launcher and on which
 * socket, its own uid (never a pipe user), and whose aliases files may name
 * programs.  Started as anyone else, there is no launcher and everything
 * runs as ourselves.  One struct privsep travels in both struct
 * delivery_ctx (delivery.h) and struct smtpd_env (smtpd.h).
 */
#ifndef PRIVSEP_H
#define PRIVSEP_H

#include <pwd.h>
#include <sys/types.h>

#include "conf.h"

struct privsep {
	int running_as_root;       /* programs run as pipe.user via the launcher */
	int launcher_fd;           /* -1: run them directly */
	uid_t session_uid;         /* our uid: never a pipe user when root */
	uid_t aliases_owner;       /* besides root, who may own an aliases file
	                              naming programs: root alone (0) when started
	                              as root, else ourselves (SPEC 7, 11) */
	const char *aliases_override;  /* -a FILE, for the launcher's own copy */
};

/*
 * privsep_start - started as root: fork; the child drops to `user` and
 * returns 0 with ps set to use the launcher; the parent stays root as the
 * launcher until the child is done, then returns 1 with the child's exit
 * status.  As anyone else: 0, everything runs as ourselves.  Either way the
 * spool is prepared.  -1 with why on failure.  aliases_override: -a FILE.
 * child_fds: descriptors that are the child's alone (a daemon's listening
 * sockets); the launcher closes its copies at once, so root holds nothing it
 * does not serve and a stopped daemon's port is free when it has exited.
 */
int privsep_start(const struct conf *c, const char *aliases_override, const int *child_fds,
    size_t nchild_fds, struct privsep *ps, int *status, char *why, size_t whysize);
/*
 * privsep_become_spool_user - for commands with no program to run (the queue
 * listing, operator commands): root drops to `user` for good, anyone else
 * must be that user already (the spool is 0700); the spool is prepared.
 * 0, or -1 with why.
 */
int privsep_become_spool_user(const struct conf *c, char *why, size_t whysize);
/* privsep_spool_user - the `user` account; 0, or -1 when it does not exist. */
int privsep_spool_user(const struct conf *c, struct passwd *out, char *buf,
    size_t bufsize);
/* privsep_drop - setgroups, setresgid, setresuid to pw's ids, verified. */
int privsep_drop(const struct passwd *pw);

#endif
