/*
 * oauth.h - OAuth2 access tokens for a smarthost's AUTH XOAUTH2 or
 * OAUTHBEARER (issue 20).  The administrator's auth_token_command prints a
 * fresh token on its first line and, optionally, on its second, how many
 * seconds it stays valid (OAuth's expires_in).  It runs without a shell
 * (its words split on spaces), as the spool user the queue runs as, with no
 * input, a bounded output and the smarthost's timeout.  The token is kept
 * in SPOOL/tmp/oauth-NAME.token (mode 0600, replaced by rename) until the
 * stated expiry, or until the server refuses it: smtpc.c then asks again,
 * once.
 */
#ifndef OAUTH_H
#define OAUTH_H

#include <stddef.h>

#include "conf.h"

#define OAUTH_TOKEN_MAX 8000     /* AUTH's line stays within RFC 4954's 12288 */

/*
 * oauth_token - a token for sh: the kept one unless fresh is set or it has
 * expired, else the helper's.  0, or -1 with why.
 */
int oauth_token(const struct conf *c, const struct smarthost_conf *sh, int fresh,
    char *token, size_t size, char *why, size_t whysize);
/*
 * oauth_response - the initial client response (not yet base64) for the
 * mechanism: XOAUTH2's "user=U^Aauth=Bearer T^A^A", or OAUTHBEARER's
 * (RFC 7628) "n,a=U,^Ahost=H^Aport=P^Aauth=Bearer T^A^A".  Its length, or
 * -1 when it does not fit.
 */
int oauth_response(const struct smarthost_conf *sh, const char *token, char *out,
    size_t size);

#endif
