/*
 * status.h - what the gateway is doing: the counters of stats.h and a
 * census of the queue, as `undersmtpd --status` prints them (text, or one
 * JSON object with --json) and as the daemon's metrics endpoint serves them
 * (Prometheus text format 0.0.4).  The census reads the queue's envelopes
 * and takes none of the spool's locks: a message being delivered is counted
 * as it was when its envelope was last written.
 */
#ifndef STATUS_H
#define STATUS_H

#include <stdint.h>
#include <stdio.h>

#include "conf.h"
#include "breaker.h"
#include "stats.h"

struct queue_census {
	long active;               /* due now: being delivered, or at the next run */
	long deferred;             /* waiting for their next try (backoff) */
	long held;                 /* --hold */
	long maildrop;             /* from sendmail, not yet picked up */
	long damaged;              /* an envelope that cannot be read */
	int64_t oldest;            /* Unix time the oldest message came; 0: none */
};

void status_census(const struct conf *c, struct queue_census *q);
/* status_daemon_up - the pid the daemon recorded is alive. */
int status_daemon_up(const struct stats *s);
/* The reports; b, the circuit breakers (breaker.h), may be NULL: none yet. */
void status_text(FILE *out, const struct stats *s, const struct queue_census *q,
    const struct breakers *b);
void status_json(FILE *out, const struct stats *s, const struct queue_census *q,
    const struct breakers *b);
void status_prometheus(FILE *out, const struct stats *s, const struct queue_census *q,
    const struct breakers *b);

#endif
