/*
 * testpipe.h - undersmtpd --test-pipe ADDRESS [--from SENDER] [--dry-run]:
 * one delivery to a pipe alias, shown step by step, before mail depends on
 * it.  The message on standard input is stored as a local submission's
 * would be (Received: first, in the spool's tmp/, removed afterwards);
 * the recipient is routed, and the program's user, argv (captures
 * substituted), environment and input are built, by the very functions a
 * delivery uses; the Delivered-To loop check is made; then, unless dry_run,
 * the program is run exactly as the session runs it (through the root
 * launcher when started as root) and its exit status, first lines of
 * output, time and the SMTP reply the client would have got are printed.
 */
#ifndef TESTPIPE_H
#define TESTPIPE_H

#include <stdio.h>

#include "conf.h"

/*
 * testpipe_main - the report goes to out.  Exit status: 0 the client would
 * have got 2xx (with dry_run: the program would be started), 75 for 4xx,
 * 69 for 5xx, 64 when the address is no pipe alias, 65 for a message that
 * cannot be read (NUL byte, too large), 75 when it cannot be stored.
 */
int testpipe_main(const struct conf *c, const char *aliases_override,
    const char *address, const char *sender, int dry_run, FILE *in, FILE *out);

#endif
