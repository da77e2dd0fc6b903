/*
 * smtpd_parse.h - syntax of SMTP command lines (RFC 5321 4.1): the verb, and
 * the MAIL/RCPT paths with their ESMTP parameters (SIZE, BODY, SMTPUTF8).
 * Pure functions of their input, no I/O: the session applies policy.
 */
#ifndef SMTPD_PARSE_H
#define SMTPD_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "reply.h"

#define SMTP_LINE_MAX 512        /* RFC 5321 4.5.3.1.4, CRLF included */

struct smtp_cmdline {
	char verb[16];                /* upper case */
	const char *arg;              /* after the verb and one space; may be "" */
	size_t arglen;                /* trailing white space removed */
};

struct mail_params {
	int has_size;
	uint64_t size;
	int body_8bit;
	int smtputf8;
};

/*
 * smtp_split_line - verb and argument of one line (CRLF already removed).
 * Returns 0, or -1 with err filled (NUL, bare CR, no verb).
 */
int smtp_split_line(const char *line, size_t len, struct smtp_cmdline *out,
    struct smtp_reply *err);
/* smtp_parse_mail - "FROM:<path> [params]"; -1 with err on any error. */
int smtp_parse_mail(const char *arg, size_t len, struct addr *from,
    struct mail_params *p, struct smtp_reply *err);
/* smtp_parse_rcpt - "TO:<path>"; -1 with err on any error. */
int smtp_parse_rcpt(const char *arg, size_t len, int smtputf8, struct addr *to,
    struct smtp_reply *err);

#endif
