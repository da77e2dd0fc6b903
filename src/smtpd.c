/*
 * smtpd.c - the SMTP server session: an explicit state machine driven by a
 * command table, one reply function, the envelope commands and the DATA
 * phase, whose message goes to the accept step (accept.h).  STARTTLS and
 * AUTH are smtpd_auth.c; what the two share is smtpd_session.h.
 *
 * Session vs transaction (STYLE habit 4): struct session lives as long as the
 * connection; struct envelope (envelope.h) is the transaction, reset by RSET
 * and after every reply to DATA.  Every reply goes through smtpd_reply(), which adds
 * the enhanced status code (RFC 2034), writes CRLF, logs 4xx/5xx with the
 * command that caused them and counts errors toward max_errors.
 */
#include "smtpd.h"
#include "breaker.h"
#include "stats.h"
#include "smtpd_session.h"
#include "smtpd_proxy.h"
#include "filter.h"
#include "rtqueue.h"
#include "accept.h"
#include "addr.h"
#include "buf.h"
#include "envelope.h"
#include "log.h"
#include "route.h"
#include "smtpd_data.h"
#include "smtpd_parse.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define READ_TOO_LONG 1          /* smtpd_read_command(): distinct from every IO_* */

#define IN(s) (1u << (s))
#define ANY_STATE (IN(STATE_GREETED) | IN(STATE_READY) | IN(STATE_MAIL) | IN(STATE_RCPT))

struct command {
	const char *verb;
	unsigned states;             /* where it is allowed */
	int no_args;                 /* "RSET x" is a syntax error */
	int junk;                    /* counts toward the junk limit */
	void (*run)(struct session *s, const char *arg, size_t len);
};


static const char *const state_names[] = {"GREETED", "READY", "MAIL", "RCPT", "QUIT"};

void
smtpd_enter_state(struct session *s, enum smtp_state next)
{
	if (s->state != next)
		log_debug("session [%s]: %s -> %s", s->env->client_text,
		    state_names[s->state], state_names[next]);
	s->state = next;
}

/* deadline - of the next wait: the idle timeout, within max_session_time. */
int64_t
smtpd_deadline(const struct session *s)
{
	int64_t d = now_ms() + (int64_t)s->conf->timeout * 1000;

	return s->ends > 0 && s->ends < d ? s->ends : d;
}

/*
 * reply - the one way out.  status NULL: no enhanced code (only the greeting
 * and HELO/EHLO, RFC 2034).  Lines of a multi-line reply are split at '\n'.
 */
/*
 * log_refusal - Postfix's line for a 4xx/5xx, which pflogsumm counts and
 * fail2ban's postfix filter reads: "ID: reject: RCPT from unknown[ADDR]: 550
 * 5.1.1 <x>: User unknown; from=<s> to=<x> proto=ESMTP helo=<h>".  Only the
 * commands that carry mail are rejections of a message; an error in any
 * other (a bad HELO, a command out of sequence) is logged as "error:".
 */
static void
log_refusal(const struct session *s, int code, const char *status, const char *text)
{
	static const char *const carries_mail[] = {"CONNECT", "MAIL", "RCPT", "DATA",
	    "END-OF-MESSAGE"};
	const char *verb = s->verb ? s->verb : "CONNECT", *kind = "error";
	char from[ADDR_PATH_MAX + 16] = "", to[ADDR_PATH_MAX + 16] = "";

	for (size_t i = 0; i < ARRAY_LEN(carries_mail); i++)
		if (strcmp(verb, carries_mail[i]) == 0)
			kind = "reject";
	if (s->state == STATE_MAIL || s->state == STATE_RCPT)
		snprintf(from, sizeof(from), " from=<%s>", s->tx.sender_text);
	if (s->rcpt[0])
		snprintf(to, sizeof(to), " to=<%s>", s->rcpt);
	log_info("%s: %s: %s from unknown[%s]: %d%s%s %s;%s%s proto=%s helo=<%s>",
	    s->tx.id[0] ? s->tx.id : "NOQUEUE", kind, verb, s->env->client_text, code,
	    status ? " " : "", status ? status : "", text, from, to,
	    s->esmtp ? "ESMTP" : "SMTP", s->helo);
	if (strcmp(kind, "reject") == 0)
		stats_count(s->conf, STATS_REJECTED);
}

void
smtpd_reply(struct session *s, int code, const char *status, const char *fmt, ...)
{
	char text[1024], line[1100];
	va_list ap;
	char *p, *nl;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* The reply to the message itself is a verdict, not a client error. */
	if (code >= 500 && s->verb != NULL && strcmp(s->verb, "END-OF-MESSAGE") != 0 &&
	    ++s->errors > s->conf->soft_error_limit && s->conf->error_sleep > 0 &&
	    s->conf->soft_error_limit > 0) {
		/*
		 * Postfix's smtpd_error_sleep_time: past soft_error_limit each
		 * error costs the client time, not us (a second, by default).
		 */
		smtpd_flush(s);
		sleep_ms(s->conf->error_sleep * 1000);
	}
	for (p = text; ; p = nl + 1) {
		int n;

		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		/* Nothing of ours or of a program may put a CR or LF in a reply. */
		str_mask_controls(p);
		n = snprintf(line, sizeof(line), "%d%c%s%s%s\r\n", code, nl ? '-' : ' ',
		    status ? status : "", status ? " " : "", p);
		if (n > 0)
			writer_put(&s->out, line, (size_t)n < sizeof(line) ? (size_t)n
			    : sizeof(line) - 1, smtpd_deadline(s));
		if (!nl)
			break;
	}
	if (code >= 400 && !s->refusal_logged)
		log_refusal(s, code, status, text);
	s->refusal_logged = 0;
}

void
smtpd_flush(struct session *s)
{
	writer_flush(&s->out, smtpd_deadline(s));
}

void
smtpd_end_transaction(struct session *s)
{
	smtpd_proxy_end(s);
	envelope_reset(&s->tx);
	if (s->state == STATE_MAIL || s->state == STATE_RCPT)
		smtpd_enter_state(s, STATE_READY);
}

/* maybe_reload_aliases - a changed file is re-read; a broken one is kept out. */
static void
maybe_reload_aliases(struct session *s)
{
	struct aliases *fresh;
	struct diag d = {log_diag, NULL, 0};

	if (s->env->aliases != NULL && !aliases_changed(s->env->aliases))
		return;
	fresh = aliases_load(s->conf->aliases, s->env->ps.aliases_owner, &d);
	if (fresh == NULL) {
		log_warnx("aliases %s changed but has %d error(s): keeping the "
		    "previous table (run undersmtpd --check-config)", s->conf->aliases,
		    d.errors);
		return;
	}
	if (s->env->aliases != NULL)
		log_info("aliases %s reloaded", s->conf->aliases);
	aliases_free(s->env->aliases);
	s->env->aliases = fresh;
}

static void
cmd_helo_common(struct session *s, const char *arg, size_t len, int esmtp)
{
	if (len == 0) {
		smtpd_reply(s, 501, "5.5.4", "Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		return;
	}
	if (len > HELO_MAX) {
		smtpd_reply(s, 501, "5.5.4", "Host name too long");
		return;
	}
	smtpd_end_transaction(s);
	memcpy(s->helo, arg, len);
	s->helo[len] = '\0';
	s->esmtp = esmtp;
	smtpd_enter_state(s, STATE_READY);
	if (!esmtp) {
		smtpd_reply(s, 250, NULL, "%s", s->conf->hostname);
		return;
	}
	smtpd_reply(s, 250, NULL, "%s Hello %s [%s]\nPIPELINING\nSIZE %llu\n8BITMIME\n"
	    "ENHANCEDSTATUSCODES\nSMTPUTF8%s%s", s->conf->hostname, s->helo,
	    s->env->client_text, (unsigned long long)s->conf->max_message_size,
	    smtpd_starttls_offered(s) ? "\nSTARTTLS" : "",
	    smtpd_auth_offered(s) ? "\nAUTH PLAIN LOGIN" : "");
}

static void
cmd_ehlo(struct session *s, const char *arg, size_t len)
{
	cmd_helo_common(s, arg, len, 1);
}

static void
cmd_helo(struct session *s, const char *arg, size_t len)
{
	cmd_helo_common(s, arg, len, 0);
}

/* free_space - bytes available to us in the spool, or -1 on error. */
static long long
free_space(const struct session *s)
{
	struct statvfs sv;

	if (statvfs(s->conf->spool_dir, &sv) < 0) {
		log_warn("statvfs %s", s->conf->spool_dir);
		return -1;
	}
	return (long long)sv.f_bavail * (long long)sv.f_frsize;
}

static void
cmd_mail(struct session *s, const char *arg, size_t len)
{
	struct smtp_reply err;
	struct addr from;
	struct mail_params p;
	long long avail;

	if (smtp_parse_mail(arg, len, &from, &p, &err) < 0) {
		smtpd_reply(s, err.code, err.status, "%s", err.text);
		return;
	}
	if (p.has_size && p.size > s->conf->max_message_size) {
		smtpd_reply(s, 552, "5.3.4", "Message size exceeds fixed maximum message size");
		return;
	}
	avail = free_space(s);
	if (avail < 0) {
		smtpd_reply(s, 451, "4.3.0", "Cannot check free space in the spool; try again later");
		return;
	}
	if ((unsigned long long)avail < s->conf->min_free_space ||
	    (p.has_size && (unsigned long long)avail - s->conf->min_free_space < p.size)) {
		log_warnx("spool %s: %lld bytes free, below min_free_space", s->conf->spool_dir,
		    avail);
		smtpd_reply(s, 452, "4.3.1", "Insufficient system storage");
		return;
	}
	envelope_reset(&s->tx);
	if (envelope_new_id(&s->tx) < 0) {
		log_warn("getrandom for a queue id");
		smtpd_reply(s, 451, "4.3.0", "Local error: cannot make a queue id");
		return;
	}
	maybe_reload_aliases(s);
	s->tx.sender = from;
	s->tx.params = p;
	addr_format(&from, s->tx.sender_text, sizeof(s->tx.sender_text));
	smtpd_enter_state(s, STATE_MAIL);
	smtpd_reply(s, 250, "2.1.0", "Sender <%s> ok", s->tx.sender_text);
}

static int
already_recipient(const struct session *s, const struct addr *a)
{
	char text[ADDR_PATH_MAX + 1];

	addr_format(a, text, sizeof(text));
	for (size_t i = 0; i < s->tx.nrcpts; i++)
		if (str_casecmp_ascii(s->tx.rcpts[i].text, text) == 0)
			return 1;
	return 0;
}

/*
 * refused_by_breaker - a sync alias whose circuit breaker is open gets 451
 * at RCPT (issue 20): nothing would run at DATA anyway.  Queued policies
 * are accepted: their message waits in the spool.  1 when refused (r freed).
 */
static int
refused_by_breaker(struct session *s, struct route_result *r, const char *shown)
{
	const struct pipe_conf *pc = delivery_pipe_conf(s->conf, r);
	long left = 0;

	if (pc->policy != POLICY_SYNC || breaker_closed_for_rcpt(s->conf,
	    route_pipe(r)->entry->name, pc, &left))
		return 0;
	smtpd_reply(s, 451, "4.3.0", "<%s>: temporarily unavailable, try again in %ld s "
	    "(circuit breaker)", shown, left);
	free(r);
	return 1;
}

/*
 * refused_as_unknown_queue - issue 20: the alias says verify =
 * rt_queue(X) and RT's list (rtqueue.h) lacks X: 550 5.1.1 now, instead of
 * rt-mailgate's temporary failure and days of the sender's retries.  With
 * no list yet, the recipient is accepted as without the check.  1 when r is
 * refused (the reply sent, r freed).
 */
static int
refused_as_unknown_queue(struct session *s, struct route_result *r, const char *shown)
{
	char queue[RTQ_NAME_MAX + 1];

	if (rtq_verify_route(s->conf, r, !s->env->rt_queues_kept, queue, sizeof(queue)) !=
	    RTQ_UNKNOWN)
		return 0;
	log_info("%s: <%s>: Request Tracker has no queue \"%s\" (rt_queues)", s->tx.id, shown,
	    queue);
	smtpd_reply(s, 550, "5.1.1", "<%s>: Recipient address rejected: no such queue in "
	    "Request Tracker", shown);
	free(r);
	return 1;
}

/*
 * filter_fits - issue 20: a transaction's recipients share one content
 * filter, since the filter's verdict is the message's one reply (and its
 * rewrite the one message); the first recipient chooses it.  0 when r is
 * refused (the reply sent, r freed).
 */
static int
filter_fits(struct session *s, struct route_result *r, const char *shown)
{
	int conflict;
	const struct filter_conf *f = filter_for_route(s->conf, r, &conflict);

	if (conflict) {
		smtpd_reply(s, 550, "5.3.5", "<%s>: its destinations have different content "
		    "filters (a configuration error)", shown);
		free(r);
		return 0;
	}
	if (s->tx.nrcpts > 0 || s->proxy_rcpts > 0) {
		if (f == s->tx.filter)
			return 1;
		smtpd_reply(s, 452, "4.5.3", "<%s>: goes through another content filter; send "
		    "it in a separate transaction", shown);
		free(r);
		return 0;
	}
	s->tx.filter = f;
	s->tx.filter_pipe = delivery_pipe_conf(s->conf, r);
	return 1;
}

static void
cmd_rcpt(struct session *s, const char *arg, size_t len)
{
	struct smtp_reply err;
	struct addr to;
	struct route_result *r;
	char shown[ADDR_PATH_MAX + 1];

	if (smtp_parse_rcpt(arg, len, s->tx.params.smtputf8, &to, &err) < 0) {
		smtpd_reply(s, err.code, err.status, "%s", err.text);
		return;
	}
	addr_format(&to, shown, sizeof(shown));
	str_copy(s->rcpt, sizeof(s->rcpt), shown);
	if (s->tx.nrcpts >= (size_t)s->conf->max_recipients) {
		/* RFC 5321 4.5.3.1.10: 452 keeps the earlier recipients. */
		smtpd_reply(s, 452, "4.5.3", "Too many recipients");
		return;
	}
	if (already_recipient(s, &to)) {
		smtpd_reply(s, 250, "2.1.5", "Recipient <%s> ok (duplicate)", shown);
		return;
	}
	r = xmalloc(sizeof(*r));
	route_address(s->conf, s->env->aliases, &to, s->relay_allowed, r);
	if (r->reply.code != 250) {
		if (r->why[0] && strcmp(r->why, r->reply.text) != 0)
			log_info("%s: <%s>: %s", s->tx.id, shown, r->why);
		smtpd_reply(s, r->reply.code, r->reply.status, "<%s>: %s", shown,
		    r->reply.text);
		free(r);
		return;
	}
	if (route_pipe(r) != NULL && refused_as_unknown_queue(s, r, shown))
		return;
	if (route_pipe(r) != NULL && refused_by_breaker(s, r, shown))
		return;
	if (!filter_fits(s, r, shown))
		return;
	if (s->conf->proxy && route_pipe(r) == NULL) {
		smtpd_proxy_rcpt(s, r, &to, shown);
		return;
	}
	if (route_pipe(r) != NULL && s->proxy_rcpts > 0) {
		/* SPEC 7: one reply per message; this one's is the smarthost's. */
		smtpd_reply(s, 452, "4.5.3", "<%s>: goes to a program; send it in a separate "
		    "transaction", shown);
		free(r);
		return;
	}
	switch (accept_rcpt(s->conf, &s->tx, &to, shown, r)) {
	case ACCEPT_OK:
		break;
	case ACCEPT_OTHER_RUN:
		smtpd_reply(s, 452, "4.5.3", "<%s>: goes to another program; send it in a "
		    "separate transaction", shown);
		return;
	case ACCEPT_RUN_FULL:
		/* RFC 5321 4.5.3.1.10: 452 keeps the earlier ones; the rest come again. */
		smtpd_reply(s, 452, "4.5.3", "<%s>: too many recipients for one program run (%d)",
		    shown, DELIVERY_MAX_RCPTS);
		return;
	}
	/* As Postfix's smtpd: the transaction is logged once it has a recipient. */
	if (s->state == STATE_MAIL)
		log_info("%s: client=unknown[%s], helo=<%s>", s->tx.id, s->env->client_text,
		    s->helo);
	smtpd_enter_state(s, STATE_RCPT);
	smtpd_reply(s, 250, "2.1.5", "Recipient <%s> ok", shown);
}

/*
 * run_filter - the transaction's content filter on the message read: its
 * refusal is the reply; a rewritten message replaces the one read.
 */
static void
run_filter(struct session *s, uint64_t *size, struct smtp_reply *rep)
{
	struct delivery_ctx dctx = {.conf = s->conf, .ps = s->env->ps};
	const char *rcpts[DELIVERY_MAX_RCPTS];
	size_t n = 0;

	for (size_t i = 0; i < s->tx.nrcpts && n < ARRAY_LEN(rcpts); i++)
		rcpts[n++] = s->tx.rcpts[i].text;
	filter_transaction(&dctx, s->tx.filter, s->tx.filter_pipe, s->tx.id,
	    s->tx.sender_text, s->tx.rcpts[0].text, rcpts, n, s->env->client_text, s->helo,
	    s->tx.msg_fd, size, rep);
}

/* data_verdict - the reply for a message read to its end, before delivery. */
static int
data_verdict(struct session *s, const struct data_result *res, struct smtp_reply *rep)
{
	if (res->write_errno) {
		errno = res->write_errno;
		log_warn("%s: write %s", s->tx.id, s->tx.msg_path);
		if (res->write_errno == ENOSPC || res->write_errno == EDQUOT)
			smtp_set_reply(rep, 452, "4.3.1", "Insufficient system storage");
		else
			smtp_set_reply(rep, 451, "4.3.0", "Local error writing the message");
		return -1;
	}
	if (res->bare_newline) {
		smtp_set_reply(rep, 550, "5.5.2", "Message contains a bare CR or LF: "
		    "only CRLF line endings are accepted (RFC 5321 2.3.8)");
		return -1;
	}
	if (res->nul) {
		smtp_set_reply(rep, 550, "5.6.0", "Message contains a NUL character: "
		    "not accepted (RFC 5322 2.3)");
		return -1;
	}
	if (res->line_too_long) {
		smtp_set_reply(rep, 500, "5.5.2", "Message line longer than 1000 "
		    "octets (RFC 5321 4.5.3.1.6)");
		return -1;
	}
	if (res->too_big) {
		smtp_set_reply(rep, 552, "5.3.4", "Message size exceeds fixed maximum "
		    "message size");
		return -1;
	}
	if (res->hops > s->conf->max_hops) {
		smtp_set_reply(rep, 554, "5.4.6", "Too many hops: mail forwarding loop");
		return -1;
	}
	/* SPEC 7: every recipient a program gets, whatever its policy. */
	for (size_t i = 0; i < s->tx.nrcpts; i++) {
		if (!s->tx.rcpts[i].program)
			continue;
		for (size_t k = 0; k < res->ndelivered_to; k++)
			if (str_casecmp_ascii(res->delivered_to[k], s->tx.rcpts[i].text) == 0) {
				smtp_set_reply(rep, 554, "5.4.6", "Mail loop: the message "
				    "was already delivered to this recipient");
				smtp_reply_append(rep, " ", s->tx.rcpts[i].text);
				return -1;
			}
	}
	if (envelope_finish_message(&s->tx) < 0) {
		int saved = errno;

		log_warn("%s: write %s", s->tx.id, s->tx.msg_path);
		if (saved == ENOSPC || saved == EDQUOT)
			smtp_set_reply(rep, 452, "4.3.1", "Insufficient system storage");
		else
			smtp_set_reply(rep, 451, "4.3.0", "Local error writing the message");
		return -1;
	}
	return 0;
}

static void
cmd_data(struct session *s, const char *arg, size_t len)
{
	/* RFC 3848 with-types: S for TLS, A for authenticated. */
	const char *proto = s->tx.params.smtputf8 ? (s->tls ? (s->auth_user[0] ?
	    "UTF8SMTPSA" : "UTF8SMTPS") : "UTF8SMTP") : s->esmtp ? (s->tls ?
	    (s->auth_user[0] ? "ESMTPSA" : "ESMTPS") : "ESMTP") : "SMTP";
	struct envelope_client cl = {s->helo, s->env->client_text, proto, -1};
	struct data_limits lim = {s->conf->max_message_size, s->conf->max_hops,
	    (int64_t)s->conf->timeout * 1000, s->conf->min_data_rate, s->ends};
	struct data_result res;
	struct data_sink sink;
	struct smtp_reply rep;
	int64_t started;

	(void)arg;
	(void)len;
	/*
	 * RFC 2920 3.1: DATA ends a pipelined group; the text may only follow
	 * the 354.  A client that sends it before is not waiting for replies,
	 * the mark of a spam engine or of a smuggling attempt (Postfix's
	 * smtpd_forbid_unauth_pipelining).  Authenticated clients and local
	 * submission (sendmail -bs) are trusted to know what they do.
	 */
	if (!s->auth_user[0] && !s->env->local_submission && reader_input_waiting(&s->in)) {
		log_warnx("%s: improper command pipelining after DATA from unknown[%s]: "
		    "closed", s->tx.id, s->env->client_text);
		smtpd_reply(s, 554, "5.5.0", "Error: SMTP protocol synchronization");
		smtpd_end_transaction(s);
		smtpd_enter_state(s, STATE_QUIT);
		return;
	}
	if (envelope_open_message(&s->tx, s->conf, &cl) < 0) {
		log_warn("%s: create message file in %s/tmp", s->tx.id, s->conf->spool_dir);
		smtpd_reply(s, errno == ENOSPC ? 452 : 451, errno == ENOSPC ? "4.3.1" : "4.3.0",
		    "Local error: cannot store the message");
		smtpd_end_transaction(s);
		return;
	}
	smtpd_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	smtpd_flush(s);
	/* A message being received may finish after SIGTERM (SPEC 6). */
	s->in.interrupt = NULL;
	sink = envelope_sink(&s->tx);
	data_read(&s->in, &lim, &sink, &res);
	s->in.interrupt = s->env->terminate;
	started = now_ms();
	switch (res.end) {
	case DATA_COMPLETE:
		break;
	case DATA_TIMEOUT:
		smtpd_reply(s, 421, "4.4.2", "%s Timeout during DATA; closing", s->conf->hostname);
		log_info("%s: timeout after DATA from unknown[%s]", s->tx.id,
		    s->env->client_text);
		smtpd_end_transaction(s);
		smtpd_enter_state(s, STATE_QUIT);
		return;
	default:
		log_info("%s: lost connection after DATA from unknown[%s]", s->tx.id,
		    s->env->client_text);
		smtpd_end_transaction(s);
		smtpd_enter_state(s, STATE_QUIT);
		return;
	}
	/* Postfix's cleanup and qmgr lines: the message, its sender and size. */
	log_info_as("cleanup", "%s: message-id=%s", s->tx.id, res.message_id[0] ?
	    res.message_id : "<>");
	log_info_as("qmgr", "%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", s->tx.id,
	    s->tx.sender_text, (unsigned long long)res.size, s->tx.nrcpts);
	stats_count(s->conf, STATS_RECEIVED);
	s->verb = "END-OF-MESSAGE";
	memset(&rep, 0, sizeof(rep));
	if (data_verdict(s, &res, &rep) == 0 && s->tx.filter != NULL)
		run_filter(s, &res.size, &rep);
	if (rep.code == 0 && s->proxy_rcpts > 0) {
		smtpd_proxy_data(s, started, &rep);
	} else if (rep.code == 0) {
		struct delivery_ctx dctx = {.conf = s->conf, .ps = s->env->ps};

		s->env->spooled += accept_message(&dctx, &s->tx, &cl, res.size, started, &rep);
	}
	if (rep.code == 250) {
		smtpd_reply(s, 250, rep.status, "Ok: %s, id %s", rep.text, s->tx.id);
	} else {
		/*
		 * A program's refusal is in the log as its delivery line (status=
		 * deferred or bounced); logged again as a rejection, pflogsumm
		 * would count the message twice.  Any other refusal is one.
		 */
		s->refusal_logged = s->tx.outcome_logged;
		smtpd_reply(s, rep.code, rep.status, "%s", rep.text);
	}
	s->msgs++;
	smtpd_end_transaction(s);
}

static void
cmd_rset(struct session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	smtpd_end_transaction(s);
	smtpd_reply(s, 250, "2.0.0", "Ok");
}

static void
cmd_noop(struct session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	smtpd_reply(s, 250, "2.0.0", "Ok");
}

static void
cmd_quit(struct session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	smtpd_reply(s, 221, "2.0.0", "%s closing connection", s->conf->hostname);
	smtpd_enter_state(s, STATE_QUIT);
}

static void
cmd_vrfy(struct session *s, const char *arg, size_t len)
{
	(void)arg;
	if (len == 0) {
		smtpd_reply(s, 501, "5.5.4", "Syntax: VRFY address");
		return;
	}
	/* Never reveal aliases (TESTCATALOGUE 6.13). */
	smtpd_reply(s, 252, "2.1.5",
	    "Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_help(struct session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	smtpd_reply(s, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
}

static void
cmd_not_offered(struct session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	smtpd_reply(s, 502, "5.5.1", "%s is not offered by this server", s->verb);
}

static const struct command commands[] = {
	{"EHLO", ANY_STATE, 0, 1, cmd_ehlo},
	{"HELO", ANY_STATE, 0, 1, cmd_helo},
	{"MAIL", IN(STATE_READY), 0, 0, cmd_mail},
	{"RCPT", IN(STATE_MAIL) | IN(STATE_RCPT), 0, 0, cmd_rcpt},
	{"DATA", IN(STATE_RCPT), 1, 0, cmd_data},
	{"RSET", ANY_STATE, 1, 1, cmd_rset},
	{"NOOP", ANY_STATE, 0, 1, cmd_noop},
	{"QUIT", ANY_STATE, 1, 0, cmd_quit},
	{"VRFY", ANY_STATE, 0, 1, cmd_vrfy},
	{"HELP", ANY_STATE, 0, 1, cmd_help},
	{"STARTTLS", IN(STATE_GREETED) | IN(STATE_READY), 0, 0, smtpd_cmd_starttls},
	{"AUTH", IN(STATE_READY), 0, 0, smtpd_cmd_auth},
	/* Known verbs we do not offer: EXPN reveals aliases; no BDAT. */
	{"EXPN", ANY_STATE, 0, 1, cmd_not_offered},
	{"BDAT", ANY_STATE, 0, 0, cmd_not_offered},
	{"ETRN", ANY_STATE, 0, 1, cmd_not_offered},
	{"TURN", ANY_STATE, 0, 1, cmd_not_offered},
};

/* sequence_error - why a known command is not allowed now (RFC 5321 3.3). */
static void
sequence_error(struct session *s, const struct command *c)
{
	const char *why = "Bad sequence of commands";

	if (s->state == STATE_GREETED)
		why = "Send HELO/EHLO first";
	else if (strcmp(c->verb, "MAIL") == 0)
		why = "Nested MAIL command";
	else if (strcmp(c->verb, "RCPT") == 0)
		why = "Need MAIL command";
	else if (strcmp(c->verb, "DATA") == 0)
		why = s->state == STATE_MAIL ? "Need RCPT command (no valid recipients)"
		    : "Need MAIL command";
	smtpd_reply(s, 503, "5.5.1", "%s", why);
}

static void
dispatch(struct session *s, const char *line, size_t len)
{
	struct smtp_cmdline cl;
	struct smtp_reply err;

	s->commands++;
	s->verb = "-";
	s->rcpt[0] = '\0';
	if (smtp_split_line(line, len, &cl, &err) < 0) {
		smtpd_reply(s, err.code, err.status, "%s", err.text);
		return;
	}
	for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
		const struct command *c = &commands[i];

		if (strcmp(c->verb, cl.verb) != 0)
			continue;
		s->verb = c->verb;
		/*
		 * Postfix's smtpd_junk_command_limit: commands that move no mail
		 * (HELO/EHLO/NOOP/RSET/VRFY/HELP) count as errors past the limit.
		 */
		if (c->junk && ++s->junk > s->conf->max_junk_commands)
			s->errors++;
		if (s->denied && strcmp(c->verb, "QUIT") != 0) {
			/* RFC 5321 3.1: after a 554 greeting, 503 until QUIT. */
			smtpd_reply(s, 503, "5.5.1", "Bad sequence of commands: access denied");
			return;
		}
		if (!(c->states & IN(s->state)))
			sequence_error(s, c);
		else if (c->no_args && cl.arglen > 0)
			smtpd_reply(s, 501, "5.5.4", "Syntax: %s takes no argument", c->verb);
		else
			c->run(s, cl.arg, cl.arglen);
		return;
	}
	smtpd_reply(s, 500, "5.5.2", "Command unrecognized");
}

/*
 * read_command - one command line of at most SMTP_LINE_MAX octets with its
 * CRLF.  Returns 0 with the length (CRLF removed), READ_TOO_LONG for an
 * overlong line (read and thrown away to its end), or an IO_* status.
 */
int
smtpd_read_command(struct session *s, char *line, size_t *len)
{
	size_t o = 0;
	int toolong = 0;

	for (;;) {
		const char *p;
		size_t n;
		int rc;

		if (reader_pending(&s->in) == 0)
			smtpd_flush(s);    /* pipelined replies go out together (RFC 2920) */
		rc = reader_chunk(&s->in, &p, &n, smtpd_deadline(s));
		if (rc != IO_OK)
			return rc;
		if (!toolong && o + n <= SMTP_LINE_MAX) {
			memcpy(line + o, p, n);
			o += n;
		} else {
			toolong = 1;
		}
		if (p[n - 1] == '\n')
			break;
	}
	if (toolong)
		return READ_TOO_LONG;
	/* LF ends a command line; one CR before it belongs to the CRLF. */
	o--;
	if (o > 0 && line[o - 1] == '\r')
		o--;
	*len = o;
	return 0;
}

void
smtpd_env_init(struct smtpd_env *env, const struct conf *c, struct aliases *a,
    const struct privsep *ps, const volatile sig_atomic_t *terminate)
{
	memset(env, 0, sizeof(*env));
	env->conf = c;
	env->aliases = a;
	env->ps = *ps;
	env->in_fd = 0;
	env->out_fd = 1;
	env->terminate = terminate;
}

int
smtpd_session(struct smtpd_env *env)
{
	struct session *s = xcalloc(1, sizeof(*s));
	char line[SMTP_LINE_MAX + 1];

	s->env = env;
	s->conf = env->conf;
	s->relay_allowed = conf_relay_allowed(env->conf, env->client_family, env->client_ip);
	reader_init(&s->in, env->in_fd);
	s->in.interrupt = env->terminate;
	writer_init(&s->out, env->out_fd);
	log_last_words(env->out_fd, s->conf->hostname);
	envelope_init(&s->tx);
	smtpd_enter_state(s, STATE_GREETED);
	if (s->conf->max_session_time > 0)
		s->ends = now_ms() + (int64_t)s->conf->max_session_time * 1000;
	if (!conf_client_allowed(s->conf, env->client_family, env->client_ip)) {
		/* client_networks: who may connect at all (SPEC 13). */
		s->denied = 1;
		log_warnx("connect from unknown[%s]: not in client_networks: refused",
		    env->client_text);
		smtpd_reply(s, 554, "5.7.1", "%s Access denied: this server does not take mail "
		    "from your address", s->conf->hostname);
	} else {
		log_info("connect from unknown[%s]%s", env->client_text,
		    s->relay_allowed ? " (may relay)" : "");
		smtpd_reply(s, 220, NULL, "%s ESMTP undersmtpd", s->conf->hostname);
	}
	while (s->state != STATE_QUIT && !s->out.failed) {
		size_t len = 0;
		int rc = smtpd_read_command(s, line, &len);

		if (rc == READ_TOO_LONG) {
			s->commands++;
			s->verb = "-";
			smtpd_reply(s, 500, "5.5.2", "Line too long (512 octets at most)");
		} else if (rc == IO_TIMEOUT) {
			if (s->ends > 0 && now_ms() >= s->ends)
				smtpd_reply(s, 421, "4.4.2", "%s Session time limit exceeded; closing "
				    "connection", s->conf->hostname);
			else
				smtpd_reply(s, 421, "4.7.0", "%s Timeout; closing connection",
				    s->conf->hostname);
			break;
		} else if (rc == IO_INTERRUPTED) {
			smtpd_reply(s, 421, "4.3.2", "%s Service shutting down; closing connection",
			    s->conf->hostname);
			break;
		} else if (rc != IO_OK) {
			log_info("lost connection from unknown[%s]", env->client_text);
			break;
		} else {
			dispatch(s, line, len);
		}
		if (s->errors >= s->conf->max_errors && s->state != STATE_QUIT) {
			smtpd_reply(s, 421, "4.7.0", "%s Too many errors; closing connection",
			    s->conf->hostname);
			break;
		}
		if (env->terminate && *env->terminate && s->state != STATE_QUIT) {
			smtpd_reply(s, 421, "4.3.2", "%s Service shutting down; closing connection",
			    s->conf->hostname);
			break;
		}
	}
	smtpd_flush(s);
	log_last_words(-1, NULL);
	log_info("disconnect from unknown[%s] commands=%ld messages=%ld errors=%ld",
	    env->client_text, s->commands, s->msgs, s->errors);
	envelope_reset(&s->tx);
	smtpd_proxy_close(s);
	smtpd_tls_end(s);
	free(s);
	return 0;
}
