/*
 * addr.h - mail addresses: RFC 5321 paths and plain user@domain text.
 *
 * Owns the syntax of addresses and nothing else: no lookups, no policy.
 * Parsed local parts are stored dequoted (so "a@b"@ours has local part a@b
 * and can never be mistaken for a route), domains lower-cased with any
 * trailing dot removed.  Source routes (<@a,@b:u@d>) are parsed and dropped:
 * only the final mailbox counts (RFC 5321 appendix C).
 */
#ifndef ADDR_H
#define ADDR_H

#include <stddef.h>

#define ADDR_LOCAL_MAX 64     /* RFC 5321 4.5.3.1.1 */
#define ADDR_DOMAIN_MAX 255   /* RFC 5321 4.5.3.1.2 */
#define ADDR_PATH_MAX 256     /* RFC 5321 4.5.3.1.3, brackets included */

struct addr {
	char local[ADDR_LOCAL_MAX + 1];   /* dequoted */
	char domain[ADDR_DOMAIN_MAX + 1]; /* lower case; "" when none was given */
	int null;                         /* <> */
	int quoted;                       /* local part was a quoted string */
	int utf8;                         /* holds non-ASCII (needs SMTPUTF8) */
};

enum addr_error {
	ADDR_OK = 0,
	ADDR_SYNTAX = -1,     /* 501 5.1.3 / 5.1.7 */
	ADDR_TOO_LONG = -2,   /* 501 5.1.3 (RFC limits) */
	ADDR_NEEDS_UTF8 = -3, /* 553 5.6.7: non-ASCII without SMTPUTF8 */
	ADDR_BAD_UTF8 = -4,   /* 501 5.6.7: not valid UTF-8 */
};

/*
 * addr_parse_path - parse "<...>" at s (len bytes available).  allow_null
 * permits <>; allow_utf8 permits non-ASCII (SMTPUTF8 given).  On success
 * *end points just past '>'.
 */
int addr_parse_path(const char *s, size_t len, int allow_null, int allow_utf8,
    struct addr *out, size_t *end);
/* addr_parse_plain - "local@domain" or "local" (no brackets, no route). */
int addr_parse_plain(const char *s, struct addr *out);
int addr_domain_valid(const char *d, int allow_utf8);
/* addr_format - local@domain, quoting the local part when it needs it. */
void addr_format(const struct addr *a, char *buf, size_t size);
int utf8_valid(const unsigned char *s, size_t len);
const char *addr_strerror(int err);

#endif
