/*
 * smtpd_session.h - what the files of the SMTP session share, and nobody
 * else: the session's state and its one way to answer.  smtpd.c is the
 * session (the state machine, the command table, the envelope commands,
 * DATA); smtpd_auth.c is STARTTLS and AUTH, which change who the client is
 * rather than what it sends.  Outside them, smtpd.h is the interface.
 */
#ifndef SMTPD_SESSION_H
#define SMTPD_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "conf.h"
#include "envelope.h"
#include "smtpd.h"

#define HELO_MAX 255

enum smtp_state {
	STATE_GREETED,   /* 220 sent, no HELO/EHLO yet */
	STATE_READY,     /* HELO/EHLO done, no transaction */
	STATE_MAIL,      /* MAIL accepted */
	STATE_RCPT,      /* at least one RCPT accepted */
	STATE_QUIT,      /* closing */
};

struct smtpc;

struct session {
	struct smtpd_env *env;
	const struct conf *conf;
	enum smtp_state state;
	struct reader in;
	struct writer out;
	struct envelope tx;
	char helo[HELO_MAX + 1];
	int esmtp;
	int relay_allowed;
	long errors, junk, commands;
	long msgs;
	int64_t ends;                /* max_session_time: 0 for none */
	int denied;                  /* not in client_networks: 554 until QUIT */
	const char *verb;            /* command being answered, for the log */
	char rcpt[ADDR_PATH_MAX + 1];  /* the RCPT being answered, for the log */
	int refusal_logged;          /* the next reply's refusal is logged already */
	void *tls;                   /* SSL * after STARTTLS */
	char auth_user[256];         /* after a successful AUTH */
	struct smtpc *proxy;         /* proxy mode: the smarthost's connection */
	int proxy_mail;              /* MAIL given there for this transaction */
	size_t proxy_rcpts;          /* recipients it accepted in this one */
};

/*
 * smtpd_reply - the one way out.  status NULL: no enhanced code (only the
 * greeting and HELO/EHLO, RFC 2034).  Lines of a multi-line reply are
 * split at '\n'; 4xx and 5xx are logged with the command that caused them.
 */
void smtpd_reply(struct session *s, int code, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* smtpd_flush - what the replies left in the output buffer, sent now. */
void smtpd_flush(struct session *s);
/* smtpd_deadline - of the next wait: the idle timeout, within max_session_time. */
int64_t smtpd_deadline(const struct session *s);
void smtpd_enter_state(struct session *s, enum smtp_state next);
/* smtpd_end_transaction - the envelope reset; back to READY after MAIL. */
void smtpd_end_transaction(struct session *s);
/* smtpd_read_command - one line from the client; 0, or an IO_* / too long. */
int smtpd_read_command(struct session *s, char *line, size_t *len);

/* smtpd_auth.c */
int smtpd_starttls_offered(const struct session *s);
int smtpd_auth_offered(const struct session *s);
void smtpd_cmd_starttls(struct session *s, const char *arg, size_t len);
void smtpd_cmd_auth(struct session *s, const char *arg, size_t len);
/* smtpd_tls_end - the session is over: its TLS state freed. */
void smtpd_tls_end(struct session *s);

#endif
