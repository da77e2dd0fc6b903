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
#include "route.h"
#include "smtpd_parse.h"

/* How programs are started in this process. */
struct delivery_ctx {
	const struct conf *conf;
	int running_as_root;       /* programs run as pipe.user via the launcher */
	int launcher_fd;           /* -1: run them directly */
	uid_t session_uid;         /* our uid: never a pipe user when root */
};

struct delivery_job {
	const struct route_result *route;   /* with its pipe destination */
	const char *sender;                 /* "" for the null sender */
	const char *const *recipients;      /* [0] is RECIPIENT; all get Delivered-To: */
	size_t nrecipients;
	const char *client_addr, *helo, *queue_id, *delivery_id;
	int msgfd;                          /* Received: + message, from offset 0 */
};

/*
 * delivery_run - run the job's program; out gets the reply its outcome
 * means (SPEC 7 table), relay a name for the log.
 */
void delivery_run(const struct delivery_ctx *ctx, const struct delivery_job *job,
    struct smtp_reply *out, char *relay, size_t relaysize);
/* delivery_id - DELIVERY_ID: hex digest of recipient and message digest. */
void delivery_id(const unsigned char digest[32], const char *rcpt, char out[33]);
/* delivery_pipe_conf - the pipe settings that apply to a route's program. */
const struct pipe_conf *delivery_pipe_conf(const struct conf *c,
    const struct route_result *r);

#endif
