/*
 * filter.h - content filters (issue 20: E-MailRelay's --filter, a small
 * Postfix content_filter).
 *
 * A filter is a program the configuration names (`filter =` globally, in an
 * alias block, or in the smarthost blocks), run once per message after DATA
 * and before anything is delivered or spooled: the message on its standard
 * input, the envelope in its environment, as the pipe user, with the pipe
 * timeout.  Its exit status decides (filter_reply): 0 the message goes on;
 * 75 a 451; 65-78 the sysexits table's 5xx with its first line of output as
 * the text; anything else a 451 and a log line.  Declared `rewrite = yes`,
 * its standard output is the message from then on, checked as the SMTP
 * session checks a client's (size, NUL, bare CR, line length).
 *
 * One filter per transaction: a recipient whose route has another one is
 * refused at RCPT with 452 4.5.3, as a second program run is (SPEC 7).
 * Started as root, the launcher runs the filter: the session names the
 * recipient, and the launcher finds the filter in its own configuration.
 */
#ifndef FILTER_H
#define FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "delivery.h"
#include "pipe.h"
#include "reply.h"
#include "route.h"

/* RECIPIENTS: as many whole addresses as fit, then " ..." */
#define FILTER_RECIPIENTS_MAX 2000
/* Room for the headers a filter adds above max_message_size (a signature). */
#define FILTER_GROWTH (64 * 1024)
/* ...and never more than this (max_message_size 0, or huge). */
#define FILTER_OUTPUT_CEILING ((uint64_t)1 << 30)

/*
 * filter_for_route - the filter for r's destinations: an alias block's for
 * its program, the smarthost blocks' for the smarthost, else the global
 * one; NULL for none.  Destinations with different filters: NULL with
 * *conflict set.
 */
const struct filter_conf *filter_for_route(const struct conf *c,
    const struct route_result *r, int *conflict);

/*
 * The rewritten message as it comes from the filter: CRLF or LF line ends
 * stored as LF (the spool's form), a missing last newline added; a bare CR,
 * a NUL or a line over 998 octets make it no message (bad), more than max
 * bytes too big.  Written to fd through a buffer.
 */
struct filter_output {
	int fd;
	uint64_t size, max;
	size_t line;                  /* octets in the current line */
	int cr;                       /* a CR waits for its LF */
	int too_big, bad, write_errno;
	const char *why;              /* what made it bad */
	size_t nbuf;
	char buf[16384];
};

void filter_output_init(struct filter_output *o, int fd, uint64_t max);
/* filter_output_add - n more bytes; 0, or -1 once bad, too big or unwritable. */
int filter_output_add(struct filter_output *o, const char *p, size_t n);
/* filter_output_end - the end of it; 0 when it is a message, else -1. */
int filter_output_end(struct filter_output *o);

/*
 * filter_reply - the reply an ended filter means (the table above); 250
 * when the message may go on.
 */
void filter_reply(const struct pipe_result *res, struct smtp_reply *rep);

/*
 * filter_message - run filter f (its pipe settings pc) on the message in
 * msgfd for the envelope v (v->recipient: the first recipient, which names
 * the filter to the launcher); with rewrite, the message in msgfd is
 * replaced and *size updated.  0: the message goes on; -1: rep holds the
 * refusal (logged).
 */
int filter_message(const struct delivery_ctx *dctx, const struct filter_conf *f,
    const struct pipe_conf *pc, const struct delivery_values *v, int msgfd,
    uint64_t *size, struct smtp_reply *rep);

/* filter_recipients - the RECIPIENTS value for n addresses into out. */
void filter_recipients(const char *const *rcpts, size_t n, char *out, size_t size);

struct aliases;
/*
 * filter_choose - for mail that comes with its recipients at once (sendmail,
 * the maildrop): the one filter of rcpts, routed with the relay right, in
 * *f (NULL: none), its pipe settings in *pc and the recipient that names it
 * in *first.  Recipients that cannot be routed are left to their own
 * refusal.  -1 when they have different filters (nothing to run).
 */
int filter_choose(const struct conf *c, const struct aliases *a, const char *const *rcpts,
    size_t n, const struct filter_conf **f, const struct pipe_conf **pc,
    const char **first);
/*
 * filter_transaction - filter_message for a message of sender to rcpts
 * (first: the one that names the filter) from client_addr / helo: the
 * envelope values and RECIPIENTS made here.
 */
int filter_transaction(const struct delivery_ctx *dctx, const struct filter_conf *f,
    const struct pipe_conf *pc, const char *queue_id, const char *sender,
    const char *first, const char *const *rcpts, size_t n, const char *client_addr,
    const char *helo, int msgfd, uint64_t *size, struct smtp_reply *rep);

#endif
