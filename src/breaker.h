/*
 * breaker.h - a circuit breaker per pipe alias (issue 20): when an alias's
 * program keeps failing temporarily (RT down: rt-mailgate waits for its
 * HTTP timeout and exits 75), stop starting it for a while instead of
 * piling programs up against a back end already in trouble.
 *
 * Closed: programs run; pipe.breaker consecutive temporary failures open
 * it.  Open: for pipe.breaker_wait no program runs - RCPT of a sync alias is
 * answered 451 4.3.0 at once, a delivery (a session's DATA, a queue run's
 * retry) gets the same 451 without a program; then one delivery runs as a
 * probe (the others still wait), under a lease of the program's timeout so
 * that a probe that died frees it.  The probe's success closes the
 * breaker; its temporary failure opens it again for twice the wait, up to
 * pipe.breaker_wait_max.  A permanent failure (5xx) is the program working
 * and refusing one message: it closes the breaker too.
 *
 * The state is in SPOOL/breakers (recfile.h), shared by the daemon's and
 * inetd's sessions and queue runs, kept across SIGHUP and restarts; each
 * change is logged.
 */
#ifndef BREAKER_H
#define BREAKER_H

#include <stdint.h>

#include "conf.h"

#define BREAKER_ALIASES 256
#define BREAKER_NAME_MAX 200

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_PROBING };

struct breaker_rec {
	char name[BREAKER_NAME_MAX];     /* the alias (or its regex); "" free */
	uint32_t state;                  /* enum breaker_state */
	uint32_t failures;               /* consecutive temporary failures */
	int64_t open_until;              /* open: no program before then */
	int64_t wait;                    /* the current wait, seconds */
	int64_t probe_until;             /* probing: the probe's lease */
	int64_t changed;                 /* when the state last changed */
	uint64_t opens;                  /* times it opened */
	uint64_t held;                   /* deliveries not run while open */
};

struct breakers {
	char magic[16];
	struct breaker_rec rec[BREAKER_ALIASES];
};

/*
 * breaker_closed_for_rcpt - may RCPT for alias be accepted?  1 yes; 0 no
 * (open, *left seconds to go), RCPT gets 451 4.3.0.  Takes no probe: a
 * client that never sends DATA must not hold the probe up.
 */
int breaker_closed_for_rcpt(const struct conf *c, const char *alias,
    const struct pipe_conf *pc, long *left);
/*
 * breaker_may_run - may a delivery to alias start its program now?  1 yes
 * (closed, or this delivery is the probe); 0 no (*left seconds to go).
 * A yes must be followed by breaker_report with the outcome.
 */
int breaker_may_run(const struct conf *c, const char *alias, const struct pipe_conf *pc,
    long *left);
/* breaker_report - the program's reply code: 4xx counts, 2xx and 5xx close. */
void breaker_report(const struct conf *c, const char *alias, const struct pipe_conf *pc,
    int code);
/* breaker_read - every record, for --status and the metrics; 0, or -1 (none yet). */
int breaker_read(const struct conf *c, struct breakers *b);

#endif
