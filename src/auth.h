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
#endif
