/*
 * accept.h - what becomes of a message once its recipients are routed: the
 * one accept step of SPEC 7 and 8, shared by the SMTP session, sendmail and
 * the queue runner.
 *
 * accept_rcpt() turns a routed recipient into its entry in the transaction
 * (the program run now, a copy for the spool, or the queue's program under
 * policy queue), or into the refusal that keeps one reply per message.
 * accept_message() then, with the message read and checked, runs the
 * program, spools its temporary failure under sync-then-queue, commits the
 * spooled copy, and logs each recipient's outcome; its reply is the one the
 * client gets.  accept_run() is the one place a program run (struct
 * delivery_job) is built; accept_outcome() the one place "sent", "deferred"
 * or "bounced" is decided.
 */
#ifndef ACCEPT_H
#define ACCEPT_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "conf.h"
#include "delivery.h"
#include "envelope.h"
#include "reply.h"
#include "route.h"

/* Where the message came from: what a program's environment says of it. */
struct accept_origin {
	const char *sender;         /* "" for <> */
	const char *client_addr;    /* "192.0.2.1" */
	const char *helo;
	const char *queue_id;
	const unsigned char *digest;   /* of the client's message: DELIVERY_ID */
};

enum accept_verdict {
	ACCEPT_OK,          /* part of tx now */
	ACCEPT_OTHER_RUN,   /* needs another program run than tx's (SPEC 7: one
	                       reply per message): 452 4.5.3, another transaction */
	ACCEPT_RUN_FULL,    /* tx's run has DELIVERY_MAX_RCPTS already: 452 4.5.3 */
};

/*
 * accept_rcpt - recipient to (shown as shown), routed with r (a 250 route,
 * owned here), becomes part of tx, or is refused with the verdict.
 */
enum accept_verdict accept_rcpt(const struct conf *c, struct envelope *tx,
    const struct addr *to, const char *shown, struct route_result *r);

/*
 * accept_message - tx's message, read and checked (envelope_finish_message
 * done): the program run, the spooled copy, the outcome logged.  Returns
 * the number of messages spooled (the copy, a failure notice); rep holds
 * the reply, 250 with
 * "delivered to command" / "queued" as its text.
 */
int accept_message(const struct delivery_ctx *dctx, struct envelope *tx,
    const struct envelope_client *cl, uint64_t size, int64_t started,
    struct smtp_reply *rep);

/*
 * accept_run - one program run for recipients (all of one run, the first
 * naming it) of a message in msgfd; its outcome as a reply, and the relay
 * word for the log.  loop_checked: the caller refused Delivered-To loops.
 */
void accept_run(const struct delivery_ctx *dctx, const struct route_result *route,
    const char *const *recipients, size_t n, const struct accept_origin *o,
    int msgfd, int loop_checked, struct smtp_reply *rep, char *relay,
    size_t relaysize);
/* accept_run_seen - the same, with what the program did in seen (--test-pipe). */
void accept_run_seen(const struct delivery_ctx *dctx, const struct route_result *route,
    const char *const *recipients, size_t n, const struct accept_origin *o,
    int msgfd, int loop_checked, struct smtp_reply *rep, char *relay,
    size_t relaysize, struct pipe_result *seen);

/*
 * accept_log_rcpt - Postfix's delivery line for one recipient, by role (pipe,
 * smtpd for a refusal of the message): delay= since the transaction began
 * (since, the time of MAIL), delays= reception / 0 / 0 / since started,
 * dsn= and status= from rep.  accept_log - one such line per recipient of
 * tx's program run.
 */
void accept_log_rcpt(const struct conf *c, const char *role, const char *id,
    const char *rcpt, const char *relay, int64_t since, int64_t started,
    const struct smtp_reply *rep);
void accept_log(const struct conf *c, const struct envelope *tx,
    const struct smtp_reply *rep, const char *relay,
    int64_t started);
/* accept_outcome - the log's word for a reply: "sent", "deferred" or "bounced". */
const char *accept_outcome(int code);

#endif
