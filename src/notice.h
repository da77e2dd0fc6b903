/*
 * notice.h - failure notices to the people who can act (issue 20): when the
 * program of a pipe alias refuses a message for good (5xx) or its queued
 * message expires, a short report goes to the alias's `notify` address (an
 * RT admin queue, say) - the reason, the aliases line and command, the
 * envelope and the message's header - as well as, or instead of
 * (notify_sender = no), the DSN to the sender.  At most one notice per
 * alias and reason (its enhanced status code) per notify_interval, counted
 * in SPOOL/notices (recfile.h): an outage is one mail, not a storm; the
 * next notice says how many were not sent.  Never about a message from <>
 * (a DSN, or a notice itself): no notice about a notice.
 */
#ifndef NOTICE_H
#define NOTICE_H

#include "conf.h"

/* What failed, and where it came from. */
struct notice_facts {
	const char *alias;          /* the alias's name (or regex) */
	const char *source;         /* "file:line" of the aliases line */
	const char *command;        /* the command as written */
	const char *queue_id;
	const char *sender;         /* "" for <> */
	const char *recipient;
	const char *reply;          /* the program's reply, or the expiry */
	long long received;         /* Unix time the message came */
};

#define NOTICES_MAX 256

/*
 * notice_send - a notice for facts to pc->notify, unless one for the same
 * alias and reason went within pc->notify_interval, or the message is from
 * <>.  msgfd: the message (its header is quoted).  1 spooled, 0 not needed,
 * -1 with errno (it could not be spooled).
 */
int notice_send(const struct conf *c, const struct pipe_conf *pc,
    const struct notice_facts *f, int msgfd);

#endif
