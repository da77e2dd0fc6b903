/*
 * auth.h - SMTP AUTH credentials (SPEC 3 tls.auth_users_file): "user:hash"
 * lines with crypt(3) hashes, in a file that others may not read.  Owns the
 * check and the base64 of the AUTH exchange; nothing else.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stddef.h>

enum auth_result { AUTH_OK = 1, AUTH_BAD = 0, AUTH_TEMP = -1 };

/* auth_check - AUTH_OK, AUTH_BAD, or AUTH_TEMP (file unusable) with why. */
enum auth_result auth_check(const char *file, const char *user, const char *pass,
    char *why, size_t whysize);
/* auth_b64decode - decode into out (NUL-terminated); length, or -1. */
int auth_b64decode(const char *in, size_t inlen, char *out, size_t outsize);
/*
 * auth_plain_split - the n decoded bytes of an AUTH PLAIN response (RFC 4616:
 * authzid NUL authcid NUL password) into user and pass, NUL-terminated.
 * AUTH_PLAIN_BAD for anything else (a missing or third NUL, a field that does
 * not fit: nothing is truncated), AUTH_PLAIN_AUTHZID when the client asks to
 * act as another identity than the one it authenticates as.
 */
enum auth_plain { AUTH_PLAIN_OK = 0, AUTH_PLAIN_BAD = -1, AUTH_PLAIN_AUTHZID = -2 };
enum auth_plain auth_plain_split(const char *msg, size_t n, char *user, size_t usize,
    char *pass, size_t psize);

/*
 * Failed AUTH per client across connections (Postfix's anvil does this for
 * its smtpd): a small file per client in spool_dir/tmp, "auth-" and the
 * client's address (IPv6 by client_ipv6_prefix_length) in hex, holding the
 * failures counted since the window began.  Sessions of the daemon and of
 * inetd share it; spool_clean() removes files older than the window.
 */
struct conf;
/* auth_client_blocked - max_auth_failures reached within auth_failure_window. */
int auth_client_blocked(const struct conf *c, int family, const unsigned char ip[16]);
/* auth_client_failed - count one failure of this client. */
void auth_client_failed(const struct conf *c, int family, const unsigned char ip[16]);
#endif
