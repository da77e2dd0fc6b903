/*
 * smtpd_auth.c - the session's STARTTLS (RFC 3207) and AUTH PLAIN and LOGIN
 * (RFC 4954, 4616), offered only after STARTTLS (SPEC 6).  Who may relay
 * changes here; what a client sends does not.  See smtpd_session.h.
 */
#include "smtpd_session.h"
#include "auth.h"
#include "log.h"
#include "smtpd_parse.h"
#include "tls.h"
#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#define AUTH_FAILURE_DELAY_MS 2000   /* from the credentials check to a 535 */

int
smtpd_starttls_offered(const struct session *s)
{
	return s->conf->tls.cert_file != NULL && s->tls == NULL;
}

/* AUTH only over TLS (SPEC 6), and only once. */
int
smtpd_auth_offered(const struct session *s)
{
	return s->conf->tls.auth_users_file != NULL && s->tls != NULL &&
	    s->auth_user[0] == '\0';
}

void
smtpd_tls_opts(const struct conf *c, struct tls_server_opts *o, char *keys, size_t size)
{
	int lo = 2, hi = 3;       /* TLSv1.2 TLSv1.3 */

	if (c->tls.protocols != NULL)
		conf_tls_protocols(c->tls.protocols, &lo, &hi);
	o->cert_file = c->tls.cert_file;
	o->key_file = c->tls.key_file;
	o->ciphers = c->tls.ciphers;
	o->min_version = lo;
	o->max_version = hi;
	/* The spool user's: every session process reads the same ticket keys. */
	o->ticket_key_file = str_fmt(keys, size, "%s/tmp/tls-ticket.key", c->spool_dir) == 0
	    ? keys : NULL;
}

/*
 * cmd_starttls - RFC 3207.  Whatever the client sent after STARTTLS in the
 * same segment is thrown away (TESTCATALOGUE T45), and the session starts
 * again from the greeting: HELO/EHLO, no transaction, no AUTH.
 */
void
smtpd_cmd_starttls(struct session *s, const char *arg, size_t len)
{
	char why[300];
	void *ssl;

	(void)arg;
	if (!smtpd_starttls_offered(s)) {
		smtpd_reply(s, s->tls ? 503 : 502, "5.5.1", s->tls ? "TLS already active"
		    : "STARTTLS is not offered by this server");
		return;
	}
	if (len > 0) {
		smtpd_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
		return;
	}
	smtpd_reply(s, 220, "2.0.0", "Ready to start TLS");
	smtpd_flush(s);
	reader_discard(&s->in);
	{
		int fl;

		/* The handshake and TLS I/O poll with deadlines on non-blocking fds. */
		if ((fl = fcntl(s->env->in_fd, F_GETFL)) >= 0)
			fcntl(s->env->in_fd, F_SETFL, fl | O_NONBLOCK);
		if ((fl = fcntl(s->env->out_fd, F_GETFL)) >= 0)
			fcntl(s->env->out_fd, F_SETFL, fl | O_NONBLOCK);
	}
	{
		struct tls_server_opts o;
		char keys[4200];

		smtpd_tls_opts(s->conf, &o, keys, sizeof(keys));
		ssl = tls_server_accept(&o, s->env->in_fd, s->env->out_fd, smtpd_deadline(s), why,
		    sizeof(why));
	}
	if (ssl == NULL) {
		log_warnx("STARTTLS from unknown[%s]: %s", s->env->client_text, why);
		smtpd_enter_state(s, STATE_QUIT);
		s->out.failed = 1;      /* nothing more can be said in the clear */
		return;
	}
	log_last_words(-1, NULL);     /* clear text would break the TLS stream */
	s->tls = ssl;
	s->in.tls = ssl;
	s->in.tls_wfd = s->env->out_fd;
	s->out.tls = ssl;
	s->out.tls_rfd = s->env->in_fd;
	smtpd_end_transaction(s);
	s->helo[0] = '\0';
	smtpd_enter_state(s, STATE_GREETED);
	log_info("STARTTLS from unknown[%s]: %s", s->env->client_text, tls_version(ssl));
}

/* auth_read_response - one line of an AUTH exchange, base64-decoded. */
static int
auth_read_response(struct session *s, char *out, size_t outsize)
{
	char line[SMTP_LINE_MAX + 1];
	size_t len = 0;
	int rc;

	rc = smtpd_read_command(s, line, &len);
	if (rc != 0)
		return -1;
	if (len == 1 && line[0] == '*') {
		smtpd_reply(s, 501, "5.7.0", "Authentication cancelled");
		return -2;
	}
	rc = auth_b64decode(line, len, out, outsize);
	if (rc < 0) {
		smtpd_reply(s, 501, "5.5.2", "Bad base64 in the AUTH response");
		return -2;
	}
	return rc;
}

void
smtpd_cmd_auth(struct session *s, const char *arg, size_t len)
{
	char mech[16], buf[600], user[256] = "", pass[256] = "", why[300];
	int64_t began, left;
	const char *p = arg, *resp;
	size_t mlen = 0, resplen;
	int n;

	if (s->conf->tls.auth_users_file == NULL) {
		smtpd_reply(s, 502, "5.5.1", "AUTH is not offered by this server");
		return;
	}
	if (s->tls == NULL) {
		smtpd_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
		return;
	}
	if (s->auth_user[0]) {
		smtpd_reply(s, 503, "5.5.1", "Already authenticated");
		return;
	}
	if (auth_client_blocked(s->conf, s->env->client_family, s->env->client_ip)) {
		/* max_auth_failures within auth_failure_window, across connections. */
		log_warnx("AUTH from unknown[%s]: refused: too many failures from this client",
		    s->env->client_text);
		smtpd_reply(s, 421, "4.7.0", "%s Too many failed authentications from your address; "
		    "try again later", s->conf->hostname);
		smtpd_enter_state(s, STATE_QUIT);
		return;
	}
	while (mlen < len && p[mlen] != ' ' && mlen + 1 < sizeof(mech)) {
		mech[mlen] = (char)((p[mlen] >= 'a' && p[mlen] <= 'z') ? p[mlen] - 32 : p[mlen]);
		mlen++;
	}
	mech[mlen] = '\0';
	resp = p + mlen + (mlen < len ? 1 : 0);
	resplen = len > mlen ? len - mlen - 1 : 0;
	if (strcmp(mech, "PLAIN") == 0) {
		/* RFC 4616: authzid NUL authcid NUL password, maybe given at once. */
		if (resplen == 0) {
			smtpd_reply(s, 334, NULL, "%s", "");
			smtpd_flush(s);
			n = auth_read_response(s, buf, sizeof(buf));
			if (n < 0)
				goto done;
		} else if ((n = auth_b64decode(resp, resplen, buf, sizeof(buf))) < 0) {
			smtpd_reply(s, 501, "5.5.2", "Bad base64 in AUTH PLAIN");
			goto done;
		}
		switch (auth_plain_split(buf, (size_t)n, user, sizeof(user), pass, sizeof(pass))) {
		case AUTH_PLAIN_OK:
			break;
		case AUTH_PLAIN_AUTHZID:
			smtpd_reply(s, 535, "5.7.8", "Authorization identity not allowed");
			goto done;
		default:
			smtpd_reply(s, 501, "5.5.2", "Bad AUTH PLAIN response");
			goto done;
		}
	} else if (strcmp(mech, "LOGIN") == 0) {
		if (resplen > 0) {
			/* The user name may come with the command (an initial response). */
			if ((n = auth_b64decode(resp, resplen, user, sizeof(user))) < 0) {
				smtpd_reply(s, 501, "5.5.2", "Bad base64 in AUTH LOGIN");
				goto done;
			}
		} else {
			smtpd_reply(s, 334, NULL, "VXNlcm5hbWU6");      /* "Username:" */
			smtpd_flush(s);
			if ((n = auth_read_response(s, user, sizeof(user))) < 0)
				goto done;
		}
		/* A NUL inside would make the name checked differ from the one sent. */
		if (strlen(user) != (size_t)n) {
			smtpd_reply(s, 501, "5.5.2", "Bad AUTH LOGIN response");
			goto done;
		}
		smtpd_reply(s, 334, NULL, "UGFzc3dvcmQ6");      /* "Password:" */
		smtpd_flush(s);
		if ((n = auth_read_response(s, pass, sizeof(pass))) < 0)
			goto done;
		if (strlen(pass) != (size_t)n) {
			smtpd_reply(s, 501, "5.5.2", "Bad AUTH LOGIN response");
			goto done;
		}
	} else {
		smtpd_reply(s, 504, "5.5.4", "Unrecognized authentication type");
		goto done;
	}
	began = now_ms();
	switch (auth_check(s->conf->tls.auth_users_file, user, pass, why, sizeof(why))) {
	case AUTH_OK:
		str_copy(s->auth_user, sizeof(s->auth_user), user);
		s->relay_allowed = 1;
		log_info("unknown[%s]: SASL %s authentication succeeded, sasl_username=%s",
		    s->env->client_text, mech, user);
		smtpd_reply(s, 235, "2.7.0", "Authentication successful");
		break;
	case AUTH_TEMP:
		log_warnx("AUTH: %s", why);
		smtpd_reply(s, 454, "4.7.0", "Temporary authentication failure");
		break;
	default:
		/*
		 * A failed guess costs the guesser time, and the same time whether
		 * the user exists (crypt ran) or not: the reply does not say which.
		 */
		left = began + AUTH_FAILURE_DELAY_MS - now_ms();
		if (left > 0)
			sleep_ms((long)left);
		/* Postfix's words, which fail2ban's postfix[mode=auth] filter reads. */
		log_warnx("unknown[%s]: SASL %s authentication failed: authentication "
		    "failure, sasl_username=%s", s->env->client_text, mech, user);
		auth_client_failed(s->conf, s->env->client_family, s->env->client_ip);
		smtpd_reply(s, 535, "5.7.8", "Authentication credentials invalid");
		break;
	}
done:
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(buf, sizeof(buf));
}

void
smtpd_tls_end(struct session *s)
{
	tls_server_free(s->tls);
	s->tls = NULL;
}
