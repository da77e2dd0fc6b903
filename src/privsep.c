/*
 * privsep.c - SPEC 11: who runs as whom.  See privsep.h.
 */
#define _GNU_SOURCE   /* setresuid(2): the only way to drop all three ids */
#include "privsep.h"
#include "launcher.h"
#include "spool.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
privsep_spool_user(const struct conf *c, struct passwd *out, char *buf, size_t bufsize)
{
	struct passwd *pw = NULL;

	if (getpwnam_r(c->user, out, buf, bufsize, &pw) != 0 || pw == NULL)
		return -1;
	return 0;
}

int
privsep_drop(const struct passwd *pw)
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

/* spool_account - the `user` account, never root; -1 with why. */
static int
spool_account(const struct conf *c, struct passwd *pw, char *buf, size_t bufsize,
    char *why, size_t whysize)
{
	if (privsep_spool_user(c, pw, buf, bufsize) < 0 || pw->pw_uid == 0) {
		snprintf(why, whysize, "user \"%s\" does not exist or is root: refusing "
		    "to run as root", c->user);
		errno = EPERM;
		return -1;
	}
	return 0;
}

int
privsep_start(const struct conf *c, const char *aliases_override, const int *child_fds,
    size_t nchild_fds, struct privsep *ps, int *status, char *why, size_t whysize)
{
	struct passwd pw;
	char pwbuf[4096];
	int sv[2];
	pid_t pid;

	ps->running_as_root = 0;
	ps->launcher_fd = -1;
	ps->session_uid = geteuid();
	ps->aliases_owner = geteuid();
	ps->aliases_override = aliases_override;
	if (geteuid() != 0)
		return spool_prepare_top(c, geteuid(), getegid(), why, whysize) < 0 ||
		    spool_prepare(c, why, whysize) < 0 ? -1 : 0;
	if (spool_account(c, &pw, pwbuf, sizeof(pwbuf), why, whysize) < 0)
		return -1;
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
		for (size_t i = 0; i < nchild_fds; i++)
			close(child_fds[i]);
		*status = launcher_become(sv[0], c, aliases_override, pid, pw.pw_uid);
		return 1;
	}
	close(sv[0]);
	if (privsep_drop(&pw) < 0) {
		snprintf(why, whysize, "drop privileges to %s", c->user);
		return -1;
	}
	if (spool_prepare(c, why, whysize) < 0)
		return -1;
	ps->running_as_root = 1;
	ps->launcher_fd = sv[1];
	ps->session_uid = pw.pw_uid;
	ps->aliases_owner = 0;       /* what the launcher trusts: root's files alone */
	return 0;
}

int
privsep_become_spool_user(const struct conf *c, char *why, size_t whysize)
{
	struct passwd pw;
	char buf[4096];

	if (geteuid() == 0) {
		if (spool_account(c, &pw, buf, sizeof(buf), why, whysize) < 0)
			return -1;
		/* Root touches spool_dir alone; what is inside it is `user`'s. */
		if (spool_prepare_top(c, pw.pw_uid, pw.pw_gid, why, whysize) < 0)
			return -1;
		if (privsep_drop(&pw) < 0) {
			snprintf(why, whysize, "drop privileges to %s", c->user);
			return -1;
		}
	} else if (spool_prepare_top(c, geteuid(), getegid(), why, whysize) < 0) {
		return -1;
	}
	return spool_prepare(c, why, whysize);
}
