/*
 * smtpd_proxy.h - proxy mode (smarthost mode = proxy; E-MailRelay's
 * --as-proxy): a relayed recipient is given to the smarthost at once, in
 * the client's own transaction, and the smarthost's replies - to each
 * RCPT, then to the message - are the client's.  Nothing is spooled: the
 * sender keeps the responsibility for retries, as with a sync pipe alias.
 * One reply per message (SPEC 7): a transaction goes to the smarthost or
 * to a program, never both (452 4.5.3 for the second kind).
 */
#ifndef SMTPD_PROXY_H
#define SMTPD_PROXY_H

#include <stdint.h>

#include "addr.h"
#include "reply.h"
#include "route.h"
#include "smtpd_session.h"

/* smtpd_proxy_rcpt - relay RCPT for route r (freed here) and answer it. */
void smtpd_proxy_rcpt(struct session *s, struct route_result *r, const struct addr *to,
    const char *shown);
/* smtpd_proxy_data - the message to the smarthost; its reply in rep, logged. */
void smtpd_proxy_data(struct session *s, int64_t started, struct smtp_reply *rep);
/* smtpd_proxy_end - the transaction is over (done, RSET, refused): RSET there. */
void smtpd_proxy_end(struct session *s);
/* smtpd_proxy_close - the session is over: QUIT there. */
void smtpd_proxy_close(struct session *s);

#endif
