/*
 * smtpd_proxy.c - proxy mode: the smarthost's replies are the client's.
 * See smtpd_proxy.h.
 */
#include "smtpd_proxy.h"
#include "accept.h"
#include "envelope.h"
#include "log.h"
#include "smtpc.h"
#include "stats.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/*
 * as_reply - a smarthost's reply line ("550 5.1.1 text") as ours: its code,
 * its enhanced status (or the class's x.0.0), its text after them.
 */
static void
as_reply(const struct smtpc_reply *sr, struct smtp_reply *rep)
{
	const char *p = sr->text + (strlen(sr->text) >= 4 ? 4 : strlen(sr->text));
	char status[8] = "";
	size_t n = strspn(p, "0123456789.");
	int code = sr->code >= 200 && sr->code < 600 ? sr->code : 451;

	if (n >= 5 && n < sizeof(status) && p[0] == sr->text[0] && p[1] == '.' &&
	    (p[n] == ' ' || p[n] == '\0')) {
		memcpy(status, p, n);
		status[n] = '\0';
		p += n + (p[n] == ' ');
	} else {
		snprintf(status, sizeof(status), "%d.0.0", code / 100);
	}
	smtp_set_reply(rep, code, status, p[0] ? p : "(no text)");
}

/* ready - the connection open and MAIL given for this transaction; 0, or -1 with sr. */
static int
ready(struct session *s, struct smtpc_reply *sr)
{
	if (s->proxy == NULL) {
		s->proxy = xmalloc(sizeof(*s->proxy));
		smtpc_init(s->proxy, s->conf);
	}
	if (!s->proxy->open) {
		s->proxy_mail = 0;
		if (smtpc_open(s->proxy, sr) < 0)
			return -1;
	}
	if (s->proxy_mail)
		return 0;
	if (smtpc_mail(s->proxy, s->tx.sender_text, s->tx.params.smtputf8,
	    s->tx.params.body_8bit, sr) < 0)
		return -1;
	if (sr->code / 100 != 2) {
		smtpc_reset(s->proxy, &(struct smtpc_reply){0});
		return -1;
	}
	s->proxy_mail = 1;
	return 0;
}

void
smtpd_proxy_rcpt(struct session *s, struct route_result *r, const struct addr *to,
    const char *shown)
{
	struct smtpc_reply sr;
	struct smtp_reply rep;

	if (r->ndest != 1) {
		smtpd_reply(s, 550, "5.3.5", "<%s>: expands to several addresses, which proxy "
		    "mode cannot forward under one reply", shown);
	} else if (s->tx.pipe_route != NULL) {
		smtpd_reply(s, 452, "4.5.3", "<%s>: goes to the smarthost; send it in a "
		    "separate transaction", shown);
	} else if (ready(s, &sr) < 0 || smtpc_rcpt(s->proxy, r->dest[0].address, &sr) < 0 ||
	    sr.code / 100 != 2) {
		/* The smarthost's own refusal (or ours, if it cannot be reached). */
		as_reply(&sr, &rep);
		smtpd_reply(s, rep.code, rep.status, "<%s>: %s", shown, rep.text);
	} else {
		envelope_add_dest(&s->tx, r->dest[0].address, shown);
		envelope_add_rcpt(&s->tx, to, 0);
		s->proxy_rcpts++;
		if (s->state == STATE_MAIL)
			log_info("%s: client=unknown[%s], helo=<%s>", s->tx.id,
			    s->env->client_text, s->helo);
		smtpd_enter_state(s, STATE_RCPT);
		smtpd_reply(s, 250, "2.1.5", "Recipient <%s> ok (%s)", shown,
		    smtpc_block(s->proxy));
	}
	free(r);
}

void
smtpd_proxy_data(struct session *s, int64_t started, struct smtp_reply *rep)
{
	struct smtpc_reply sr;
	char relay[320];

	memset(&sr, 0, sizeof(sr));
	if (s->proxy == NULL || !s->proxy->open || !s->proxy_mail) {
		str_copy(sr.text, sizeof(sr.text), "451 4.4.2 the smarthost's connection was "
		    "lost");
		sr.code = 451;
	} else
		smtpc_data(s->proxy, s->tx.msg_fd, &sr);
	s->proxy_mail = 0;          /* the transaction there is over, whatever came */
	as_reply(&sr, rep);
	str_copy(relay, sizeof(relay), s->proxy ? s->proxy->name : "none");
	str_log_token(relay);
	for (size_t i = 0; i < s->tx.nrcpts; i++) {
		accept_log_rcpt(s->conf, "smtp", s->tx.id, s->tx.rcpts[i].text, relay,
		    s->tx.mail_ms, started, rep);
		if (s->proxy != NULL)
			stats_smarthost(s->conf, smtpc_block(s->proxy), accept_outcome(rep->code),
			    sr.text);
	}
	s->tx.outcome_logged = 1;
	if (rep->code / 100 == 2) {
		char text[sizeof(rep->text)], status[sizeof(rep->status)];

		str_copy(status, sizeof(status), rep->status);
		str_copy(text, sizeof(text), rep->text);
		smtp_set_reply(rep, 250, status, "forwarded");
		smtp_reply_append(rep, ": ", text);
	}
}

void
smtpd_proxy_end(struct session *s)
{
	struct smtpc_reply r;

	if (s->proxy != NULL && s->proxy->open && s->proxy_mail &&
	    smtpc_reset(s->proxy, &r) < 0)
		smtpc_close(s->proxy);
	s->proxy_mail = 0;
	s->proxy_rcpts = 0;
}

void
smtpd_proxy_close(struct session *s)
{
	if (s->proxy == NULL)
		return;
	smtpc_close(s->proxy);
	free(s->proxy);
	s->proxy = NULL;
}
