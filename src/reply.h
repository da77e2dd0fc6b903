/*
 * reply.h - an SMTP reply (code, enhanced status, text) and the one table
 * that ties sysexits(3) statuses to replies, both ways: a program's exit
 * status becomes the reply a client gets (SPEC 7, after Postfix's
 * global/sys_exits.c), and a reply becomes the exit status sendmail's
 * caller gets (SPEC 11).  Everything that reports an outcome as a reply
 * (the session, routing, pipes, sendmail) uses these.
 */
#ifndef REPLY_H
#define REPLY_H

#include <stddef.h>

struct smtp_reply {
	int code;
	char status[8];
	char text[256];
};

void smtp_set_reply(struct smtp_reply *r, int code, const char *status,
    const char *text);
/* smtp_reply_append - add sep and s to the text, truncating what does not fit. */
void smtp_reply_append(struct smtp_reply *r, const char *sep, const char *s);

/* smtp_reply_line - "451 4.3.0 text" into out, truncated to size. */
void smtp_reply_line(const struct smtp_reply *r, char *out, size_t size);

/* What an exit status means: its name and its permanent reply. */
struct sysexit {
	int status;
	const char *name;         /* "EX_NOUSER" */
	int code;                 /* 550 */
	const char *dsn;          /* "5.1.1" */
	const char *text;         /* "user unknown" */
};

/*
 * sysexit_find - the row of a sysexits status (64-78), or NULL.  It holds the
 * permanent meaning; whether a status is temporary is pipe.tempfail's call.
 */
const struct sysexit *sysexit_find(int status);
/* sysexit_for_reply - the sysexits status that tells a caller what a reply meant. */
int sysexit_for_reply(int code, const char *status);

#endif
