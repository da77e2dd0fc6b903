/*
 * sendmail.h - the local front door (SPEC 2, sendmail row): invoked as
 * sendmail (or mailq, newaliases, or undersmtpd --sendmail), read one
 * message on standard input and route every recipient exactly as SMTP
 * would, with sendmail's options and exit codes.
 */
#ifndef SENDMAIL_H
#define SENDMAIL_H

#include <stddef.h>
#include <stdio.h>

#include "conf.h"
#include "smtpd_data.h"

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
	char *queue_match;           /* -qIsubstr: only the ids holding it */
};

/*
 * sendmail_parse - argv as sendmail gets it (argv[0] is the program name,
 * name is how we were called).  0, or an exit status (64) after a message.
 */
int sendmail_parse(int argc, char **argv, const char *name, struct sm_opts *o);
/* What sendmail_read_message saw of a message. */
struct message {
	int has_from, has_date, has_msgid;
	long hops;
	char **hdr_rcpts;            /* To/Cc/Bcc, for -t */
	size_t nhdr_rcpts;
};

/* The headers sendmail adds to a local submission when they are missing. */
struct added_headers {
	char from[800], date[64], msgid[200];
};

/*
 * sendmail_read_message - a message from in into sink: LF or CRLF endings, a
 * stray CR sent as a space, a lone "." ending it unless -i, the headers of
 * add put in where missing, Bcc: removed; To/Cc/Bcc collected for -t.  0,
 * or a sysexits code with why (65 NUL or overlong line, 75 cannot store).
 * The caller frees m->hdr_rcpts.
 */
int sendmail_read_message(const struct sm_opts *o, FILE *in, struct data_sink *sink,
    const struct added_headers *add, struct message *m, char *why, size_t whysize);
/*
 * sendmail_may_choose_config - SPEC 2: -C FILE is honoured only for root and
 * for the `user` named in the default configuration file (never in the file
 * being chosen, which could name the caller).
 */
int sendmail_may_choose_config(void);
/* sendmail_deliver - the message on standard input; the exit status. */
int sendmail_deliver(const struct sm_opts *o, struct conf *c);

#endif
