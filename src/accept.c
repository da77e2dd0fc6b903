/*
 * accept.c - the accept step: routed recipients into a transaction, and the
 * message's way out once read.  See accept.h.
 */
#include "accept.h"
#include "notice.h"
#include "stats.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *
accept_outcome(int code)
{
	return code / 100 == 2 ? "sent" : code / 100 == 5 ? "bounced" : "deferred";
}

/* pipe_recipients - how many of tx's recipients its program run takes. */
static size_t
pipe_recipients(const struct envelope *tx)
{
	size_t n = 0;

	for (size_t i = 0; i < tx->nrcpts; i++)
		n += tx->rcpts[i].pipe != 0;
	return n;
}

enum accept_verdict
accept_rcpt(const struct conf *c, struct envelope *tx, const struct addr *to,
    const char *shown, struct route_result *r)
{
	const struct route_dest *pipe = route_pipe(r);

	if (pipe != NULL && delivery_pipe_conf(c, r)->policy == POLICY_QUEUE) {
		/* SPEC 7.1: the queue runs this program, with retries; 250 once spooled. */
		envelope_add_dest(tx, shown, shown);
		envelope_add_rcpt(tx, to, 0);
		tx->rcpts[tx->nrcpts - 1].program = 1;   /* a loop is refused now */
		free(r);
		return ACCEPT_OK;
	}
	if (pipe != NULL && tx->pipe_route != NULL && !route_same_run(tx->pipe_route, r)) {
		/* SPEC 7: one reply per message, so one program run per transaction. */
		free(r);
		return ACCEPT_OTHER_RUN;
	}
	if (pipe != NULL && pipe_recipients(tx) >= DELIVERY_MAX_RCPTS) {
		free(r);
		return ACCEPT_RUN_FULL;
	}
	for (size_t i = 0; i < r->ndest; i++)
		if (r->dest[i].kind == ROUTE_SMARTHOST)
			envelope_add_dest(tx, r->dest[i].address, shown);
	envelope_add_rcpt(tx, to, pipe != NULL);
	if (pipe != NULL && tx->pipe_route == NULL)
		tx->pipe_route = r;
	else
		free(r);
	return ACCEPT_OK;
}

void
accept_run(const struct delivery_ctx *dctx, const struct route_result *route,
    const char *const *recipients, size_t n, const struct accept_origin *o,
    int msgfd, int loop_checked, struct smtp_reply *rep, char *relay,
    size_t relaysize)
{
	accept_run_seen(dctx, route, recipients, n, o, msgfd, loop_checked, rep, relay,
	    relaysize, NULL);
}

void
accept_run_seen(const struct delivery_ctx *dctx, const struct route_result *route,
    const char *const *recipients, size_t n, const struct accept_origin *o,
    int msgfd, int loop_checked, struct smtp_reply *rep, char *relay,
    size_t relaysize, struct pipe_result *seen)
{
	struct delivery_job job;
	char id[33];

	delivery_id(o->digest, recipients[0], id);
	memset(&job, 0, sizeof(job));
	job.route = route;
	job.v.recipient = recipients[0];
	job.v.sender = o->sender;
	job.recipients = recipients;
	job.nrecipients = n;
	job.v.client_addr = o->client_addr;
	job.v.helo = o->helo;
	job.v.queue_id = o->queue_id;
	job.v.delivery_id = id;
	job.msgfd = msgfd;
	job.loop_checked = loop_checked;
	memset(rep, 0, sizeof(*rep));
	delivery_run(dctx, &job, rep, relay, relaysize, seen);
}

/* run_program - tx's one program run (SPEC 7); its outcome is the reply. */
static void
run_program(const struct delivery_ctx *dctx, const struct envelope *tx,
    const struct envelope_client *cl, struct smtp_reply *rep, char *relay,
    size_t relaysize)
{
	const char *recipients[DELIVERY_MAX_RCPTS];
	struct accept_origin o = {tx->sender_text, cl->addr_text, cl->helo, tx->id,
	    tx->digest};
	size_t n = 0;

	for (size_t i = 0; i < tx->nrcpts && n < ARRAY_LEN(recipients); i++)
		if (tx->rcpts[i].pipe)
			recipients[n++] = tx->rcpts[i].text;
	if (n == 0) {
		/* A pipe route always comes with its recipient; never run blind. */
		log_warnx("%s: program run without a recipient", tx->id);
		smtp_set_reply(rep, 451, "4.3.0", "Local error");
		return;
	}
	/* The caller refused Delivered-To loops with what it read (SPEC 7). */
	accept_run(dctx, tx->pipe_route, recipients, n, &o, tx->msg_fd, 1, rep, relay,
	    relaysize);
}

/*
 * accept_log - Postfix's delivery line, one per recipient: delay= since MAIL,
 * delays= the message's reception / 0 / 0 / the program's run (Postfix's
 * before queue / in queue / connection / transmission), dsn= the enhanced code.
 */
void
accept_log_rcpt(const struct conf *c, const char *role, const char *id, const char *rcpt,
    const char *relay, int64_t since, int64_t started, const struct smtp_reply *rep)
{
	int64_t now = now_ms();
	char line[320];

	if (since <= 0 || since > started)
		since = started;
	smtp_reply_line(rep, line, sizeof(line));
	log_info_as(role, "%s: to=<%s>, relay=%s, delay=%.2f, delays=%.2f/0/0/%.2f, "
	    "dsn=%s, status=%s (%s)", id, rcpt, relay, (double)(now - since) / 1000,
	    (double)(started - since) / 1000, (double)(now - started) / 1000,
	    rep->status[0] ? rep->status : rep->code / 100 == 2 ? "2.0.0" :
	    rep->code / 100 == 4 ? "4.0.0" : "5.0.0", accept_outcome(rep->code), line);
	stats_outcome(c, accept_outcome(rep->code));
}

void
accept_log(const struct conf *c, const struct envelope *tx, const struct smtp_reply *rep,
    const char *relay, int64_t started)
{
	for (size_t i = 0; i < tx->nrcpts; i++)
		if (tx->rcpts[i].pipe)
			accept_log_rcpt(c, "pipe", tx->id, tx->rcpts[i].text, relay, tx->mail_ms,
			    started, rep);
}

/* spool_copy - the spooled copy, durable before the 250 (SPEC 8); 1, or 0. */
static int
spool_copy(const struct conf *c, struct envelope *tx, const struct envelope_client *cl,
    uint64_t size, struct smtp_reply *rep)
{
	if (envelope_spool(tx, c, cl, size) < 0) {
		int full = errno == ENOSPC || errno == EDQUOT;

		log_warn("%s: cannot spool the message", tx->id);
		tx->outcome_logged = 0;     /* the refusal is the spool's, not logged yet */
		smtp_set_reply(rep, full ? 452 : 451, full ? "4.3.1" : "4.3.0",
		    full ? "Insufficient system storage" : "Local error: cannot spool "
		    "the message; try again later");
		return 0;
	}
	log_info("%s: queued for %zu recipient(s)", tx->id, tx->ndests);
	if (rep->code == 0)
		smtp_set_reply(rep, 250, "2.0.0", "queued");
	else
		smtp_reply_append(rep, ", ", "rest queued");
	return 1;
}

/*
 * notify_refusal - issue 20: the program refused the message for good; the
 * client gets the 5xx (and its MTA tells the sender), the alias's notify
 * address gets a notice.  1 when one was spooled (the queue has mail).
 */
static int
notify_refusal(const struct conf *c, const struct envelope *tx, const struct smtp_reply *rep)
{
	const struct route_dest *d = route_pipe(tx->pipe_route);
	const struct pipe_conf *pc = delivery_pipe_conf(c, tx->pipe_route);
	struct notice_facts f;
	char line[320];

	if (d == NULL || pc->notify == NULL)
		return 0;
	smtp_reply_line(rep, line, sizeof(line));
	f.alias = d->entry->name;
	f.source = d->source;
	f.command = d->target->cmd.text;
	f.queue_id = tx->id;
	f.sender = tx->sender_text;
	f.recipient = tx->pipe_route->address;
	f.reply = line;
	f.received = (long long)time(NULL);
	return notice_send(c, pc, &f, tx->msg_fd) > 0;
}

int
accept_message(const struct delivery_ctx *dctx, struct envelope *tx,
    const struct envelope_client *cl, uint64_t size, int64_t started,
    struct smtp_reply *rep)
{
	char relay[300] = "none";
	int noticed = 0;

	memset(rep, 0, sizeof(*rep));
	/*
	 * SPEC 7: the program first; the smarthost's copy is committed only if
	 * the program accepted, so a 4xx/5xx leaves nothing spooled and the
	 * client's retry never duplicates it.
	 */
	if (tx->pipe_route != NULL) {
		run_program(dctx, tx, cl, rep, relay, sizeof(relay));
		accept_log(dctx->conf, tx, rep, relay, started);
		tx->outcome_logged = 1;
		if (rep->code / 100 == 5)
			noticed = notify_refusal(dctx->conf, tx, rep);
		if (rep->code / 100 == 4 && delivery_pipe_conf(dctx->conf,
		    tx->pipe_route)->policy == POLICY_SYNC_THEN_QUEUE) {
			/* SPEC 7.1: a temporary failure is spooled and retried. */
			for (size_t i = 0; i < tx->nrcpts; i++)
				if (tx->rcpts[i].pipe)
					envelope_add_dest(tx, tx->rcpts[i].text, tx->rcpts[i].text);
			memset(rep, 0, sizeof(*rep));
		}
	}
	if (tx->ndests > 0 && (rep->code == 0 || rep->code == 250))
		return spool_copy(dctx->conf, tx, cl, size, rep) + noticed;
	return noticed;
}
