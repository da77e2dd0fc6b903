/*
 * sendmail.h - the local front door (SPEC 2, sendmail row): invoked as
 * sendmail (or mailq, newaliases, or undersmtpd --sendmail), read one
 * message on standard input and route every recipient exactly as SMTP
 * would, with sendmail's options and exit codes.
 */
#ifndef SENDMAIL_H
#define SENDMAIL_H

#include <stddef.h>

#include "conf.h"

enum sm_mode { SM_DELIVER, SM_SMTP, SM_LIST, SM_VERIFY, SM_ALIASES, SM_FLUSH };

struct sm_opts {
	enum sm_mode mode;
	int from_headers;            /* -t */
	int dots_end;                /* without -i: a lone "." ends the message */
	const char *sender;          /* -f / -r; NULL: the invoking user */
	const char *fullname;        /* -F */
	const char *conf_file;
	int conf_explicit;
	char **rcpts;
	size_t nrcpts;
};

/*
 * sendmail_parse - argv as sendmail gets it (argv[0] is the program name,
 * name is how we were called).  0, or an exit status (64) after a message.
 */
int sendmail_parse(int argc, char **argv, const char *name, struct sm_opts *o);
/* sendmail_deliver - the message on standard input; the exit status. */
int sendmail_deliver(const struct sm_opts *o, struct conf *c);

#endif
