/*
 * probe.h - undersmtpd --probe-smarthost [NAME] [--send-test ADDRESS]:
 * connect to the configured smarthosts (or the one named) exactly as a
 * queue run would - the same user, addresses, TLS mode, certificate checks
 * and credentials, through smtpc.c itself - and tell each step as it
 * happens: the addresses tried, the banner, the EHLO capabilities, STARTTLS
 * or implicit TLS with protocol, cipher, the server's certificate and the
 * verification result, AUTH and its reply.  Then RSET and QUIT: nothing is
 * sent, unless --send-test names a recipient for a short test message.
 */
#ifndef PROBE_H
#define PROBE_H

#include <stdio.h>

#include "conf.h"

/*
 * probe_main - the report goes to out.  0 when the smarthost (the named one,
 * or the first that works, as a queue run picks it) would accept mail - and
 * with send_to took the test message; 75 otherwise; 64 for an unknown name.
 */
int probe_main(const struct conf *c, const char *name, const char *send_to, FILE *out);

#endif
