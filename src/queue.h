/*
 * queue.h - the queue runner: takes each due message, forwards its pending
 * recipients to the smarthost, records per-recipient outcomes, backs off
 * between retry_min and retry_max, and bounces at the end of lifetime or on
 * a permanent failure (SPEC section 8).  Each run first picks up the
 * maildrop (maildrop.h), then hands the due messages to up to
 * queue.concurrency worker processes, each keeping its smarthost connection
 * for the whole run.  Also the operator commands on single messages and the
 * listing.
 */
#ifndef QUEUE_H
#define QUEUE_H

#include <stdio.h>
#include <time.h>

#include "aliases.h"
#include "conf.h"
#include "delivery.h"

/* What a queue run needs: the configuration, the aliases, how to run programs. */
struct queue_ctx {
	const struct conf *conf;
	struct aliases *aliases;      /* NULL: local recipients are deferred */
	struct delivery_ctx dctx;
};

struct queue_result {
	int delivered, deferred, failed, skipped, damaged;
	int remaining;             /* messages left to retry (held ones excluded) */
};

/* queue_run - one pass; force ignores backoff (undersmtpd -q); adds to res. */
void queue_run(struct queue_ctx *q, int force, struct queue_result *res);
/*
 * queue_run_until_idle - passes until one finds nothing new (bounded), under
 * the spool's run lock; returns -1 at once when another runner holds it.
 */
int queue_run_until_idle(struct queue_ctx *q, int force, struct queue_result *res);
/*
 * queue_run_with - load the aliases and run the queue until idle, programs
 * started through dctx; verbose prints a summary.  0 nothing left to
 * retry, 75 some deferred (or another run in progress).
 */
int queue_run_with(const struct conf *c, struct delivery_ctx *dctx, int force,
    int verbose);
/*
 * queue_run_ids - undersmtpd -q ID... and sendmail -qI: only the named
 * messages, now, backoff ignored (substring: sendmail's -qIsubstr, every id
 * holding it).  Exit status as -q: 0 none of them left to retry, 75 some
 * deferred or being delivered by another run; 1 when a name matched no
 * message.
 */
int queue_run_ids(const struct conf *c, struct delivery_ctx *dctx, char *const *want,
    size_t nwant, int substring, int verbose);
/*
 * queue_kick - SPEC 2: outside the daemon, after spooling, a queue run in the
 * background (detached from the client's fds) unless one is running.
 */
void queue_kick(const struct conf *c, struct delivery_ctx *dctx);
/* queue_mtime - the later of queue/'s and maildrop/'s mtimes: they move when mail comes. */
struct timespec queue_mtime(const struct conf *c);
/* queue_list - the spool as text (mailq style) or JSON lines; returns count. */
int queue_list(const struct conf *c, FILE *out, int json);

enum queue_op { QOP_HOLD, QOP_RELEASE, QOP_REQUEUE, QOP_BOUNCE, QOP_DELETE };
/* queue_operate - one operator command on one message; 0, or -1 with why. */
int queue_operate(const struct conf *c, enum queue_op op, const char *id,
    char *why, size_t whysize);

#endif
