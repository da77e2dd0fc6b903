/*
 * smtpc.h - the SMTP client that forwards spooled mail to the smarthost
 * (SPEC section 9).
 *
 * smtpc_open() connects to the first configured smarthost that answers,
 * speaks EHLO (HELO fallback), STARTTLS or implicit TLS as configured (with
 * verification by default) and AUTH PLAIN/LOGIN (only under TLS unless
 * auth_plaintext).  smtpc_send() runs one transaction and reports a reply
 * per recipient; the connection is reused for the next message.  Replies
 * are parsed with bounded lines and counts (OpenSMTPD CVE-2020-8794); any
 * malformed reply, timeout or lost connection is a temporary failure.
 */
#ifndef SMTPC_H
#define SMTPC_H

#include <stdint.h>

#include "conf.h"
#include "spool.h"
#include "tls.h"

#define SMTPC_REPLY_LINE_MAX 2048
#define SMTPC_REPLY_LINES_MAX 100

struct smtpc_reply {
	int code;                     /* 0 when no reply could be had */
	char text[SPOOL_REPLY_MAX];   /* "451 4.4.1 ...", first line */
};

struct smtpc {
	const struct conf *conf;
	const struct smarthost_conf *sh;
	struct netio io;
	int open;
	char in[8192];
	size_t start, end;
	int pipelining, eightbitmime, smtputf8, starttls, has_size;
	int auth_plain, auth_login, auth_xoauth2, auth_oauthbearer;
	uint64_t size_max;
	char name[300];               /* host:port, for the log */
	/* --probe-smarthost: each step told as it happens; NULL otherwise. */
	void (*trace)(void *ctx, const char *step, const char *text);
	void *trace_ctx;
};

void smtpc_init(struct smtpc *sc, const struct conf *c);
/* smtpc_open - connect and greet; 0, or -1 with the reason in err (temporary). */
int smtpc_open(struct smtpc *sc, struct smtpc_reply *err);
/*
 * smtpc_open_one - connect to that smarthost alone and get it ready for
 * MAIL (TLS and AUTH as configured); 0, or -1 with err.
 */
int smtpc_open_one(struct smtpc *sc, const struct smarthost_conf *sh,
    struct smtpc_reply *err);
/* smtpc_reset - RSET on an open connection; its reply in r; 0, or -1. */
int smtpc_reset(struct smtpc *sc, struct smtpc_reply *r);
/*
 * smtpc_send - one transaction for the recipients idx[0..n) of env, message
 * from msgfd.  Fills rcpt[i] for each; returns 0 when the connection can be
 * reused, -1 when it was lost (every reply then says why).
 */
int smtpc_send(struct smtpc *sc, const struct spool_env *env, int msgfd,
    const size_t *idx, size_t n, struct smtpc_reply *rcpt);
void smtpc_close(struct smtpc *sc);
/*
 * smtpc_mail, smtpc_rcpt, smtpc_data - one transaction a command at a time
 * (proxy mode: each reply is the client's).  0, the reply in r; -1 when the
 * connection is lost or closing (421), r then a 4xx.  smtpc_data sends the
 * message of msgfd (LF endings, from offset 0) after a 354.
 */
int smtpc_mail(struct smtpc *sc, const char *sender, int smtputf8, int body8bit,
    struct smtpc_reply *r);
int smtpc_rcpt(struct smtpc *sc, const char *addr, struct smtpc_reply *r);
int smtpc_data(struct smtpc *sc, int msgfd, struct smtpc_reply *r);
/* smtpc_block - the title of the smarthost block in use ("none" before any). */
const char *smtpc_block(const struct smtpc *sc);

#endif
