/*
 * delivery.h - delivering one message to the program of a pipe alias: what
 * the program is given (argv with regex captures substituted inside single
 * elements, the environment of SPEC 7, its user, its standard input) and
 * the per-alias concurrency limit.  Shared by the SMTP session (policy sync
 * and sync-then-queue) and the queue runner (queue, and retries); the
 * process itself is run by pipe.c, through the root launcher when needed.
 */
#ifndef DELIVERY_H
#define DELIVERY_H

#include <sys/types.h>

#include "conf.h"
#include "pipe.h"
#include "privsep.h"
#include "route.h"
#include "reply.h"

/* How programs are started in this process. */
struct delivery_ctx {
	const struct conf *conf;
	struct privsep ps;         /* through the launcher, or as ourselves */
};

/*
 * The envelope values of one program run (SPEC 7 environment): all that a
 * session tells the root launcher, which finds the program, its user and
 * its arguments again itself by routing the recipient with its own
 * configuration and aliases.
 */
struct delivery_values {
	const char *recipient;              /* RECIPIENT, ORIGINAL_RECIPIENT */
	const char *sender;                 /* "" for the null sender */
	const char *client_addr, *helo, *queue_id, *delivery_id;
	const char *kind;                   /* NULL or "": the pipe alias's program;
	                                       "filter": the content filter that
	                                       applies to the recipient (filter.h) */
	const char *recipients;             /* a filter's RECIPIENTS, or NULL */
};

struct delivery_job {
	const struct route_result *route;   /* with its pipe destination */
	struct delivery_values v;           /* v.recipient is recipients[0] */
	const char *const *recipients;      /* all get Delivered-To: */
	size_t nrecipients;
	int msgfd;                          /* Received: + message, from offset 0 */
	int loop_checked;                   /* the caller refused Delivered-To loops */
};

#define DELIVERY_MAX_ARGS 256
#define DELIVERY_MAX_ENV 64
/*
 * Recipients one program run takes (one Delivered-To: line each): a
 * transaction's further recipients for the same run are refused at RCPT with
 * 452 4.5.3 and come again in another, whatever max_recipients allows.
 */
#define DELIVERY_MAX_RCPTS 128

/* A program run ready to start, built only from the configuration and the route. */
struct delivery_command {
	char *argv[DELIVERY_MAX_ARGS + 1];
	char *envp[DELIVERY_MAX_ENV];
	char home[256];
	struct pipe_request req;            /* pointing at the above; no stdin yet */
	int use_shell;
	char alias[300];                    /* the alias name or regex, for limits and logs */
};

/*
 * delivery_build - the command for route r's program (SPEC 7): argv with
 * regex captures substituted inside single elements, the scrubbed
 * environment from v, the pipe user (as_root: an account the configuration
 * names, never root or forbidden_uid; otherwise ourselves).  0, or -1 with
 * why.  Free with delivery_command_free.
 */
int delivery_build(const struct conf *c, const struct route_result *r,
    const struct delivery_values *v, int as_root, uid_t forbidden_uid,
    struct delivery_command *cmd, char *why, size_t whysize);
void delivery_command_free(struct delivery_command *cmd);
/*
 * delivery_build_filter - the command for content filter f (filter.h): its
 * words split at blanks (no shell), as the pipe user of pc, with the
 * envelope of v in its environment (SENDER, RECIPIENT, RECIPIENTS,
 * CLIENT_ADDRESS, CLIENT_HELO, QUEUE_ID) and pc's timeout.  0, or -1 with why.
 */
int delivery_build_filter(const struct filter_conf *f, const struct pipe_conf *pc,
    const struct delivery_values *v, int as_root, uid_t forbidden_uid,
    struct delivery_command *cmd, char *why, size_t whysize);

/*
 * delivery_run - run the job's program; out gets the reply its outcome
 * means (SPEC 7 table), relay a name for the log; seen (when not NULL) what
 * the program did, for --test-pipe (outcome PIPE_REFUSED with output empty:
 * it was not started, out says why).
 */
void delivery_run(const struct delivery_ctx *ctx, const struct delivery_job *job,
    struct smtp_reply *out, char *relay, size_t relaysize, struct pipe_result *seen);
/*
 * delivery_seen_before - the message's header already holds "Delivered-To:
 * rcpt" (SPEC 7: an auto-reply coming back): the loop delivery_run refuses.
 */
int delivery_seen_before(int msgfd, const char *rcpt);
/* delivery_id - DELIVERY_ID: hex digest of recipient and message digest. */
void delivery_id(const unsigned char digest[32], const char *rcpt, char out[33]);
/* delivery_pipe_conf - the pipe settings that apply to a route's program. */
const struct pipe_conf *delivery_pipe_conf(const struct conf *c,
    const struct route_result *r);

#endif
