/*
 * bounce.h - delivery status notifications (RFC 3464).
 *
 * bounce_create() writes one DSN for the failed recipients of a spooled
 * message and commits it to the spool as a new message from the null sender
 * to the original sender; the queue runner then delivers it like any other.
 * Never for a message whose own sender is <> (no bounce of a bounce).
 */
#ifndef BOUNCE_H
#define BOUNCE_H

#include <stdio.h>

#include "conf.h"
#include "spool.h"

/* bounce_create - 0 (DSN spooled, or none needed), -1 with errno (retry later). */
int bounce_create(const struct conf *c, const struct spool_env *env, int msgfd);
/*
 * bounce_spool - a message from <> to rcpt, its text (headers and body, LF
 * endings) written by write(out, arg, its queue id), committed to the
 * spool for the queue to deliver; its id in id.  0, or -1 with errno.
 * DSNs and failure notices (notice.h) are made with it.
 */
int bounce_spool(const struct conf *c, const char *rcpt,
    void (*write)(FILE *, const void *, const char *), const void *arg,
    char id[SPOOL_ID_MAX]);
/* bounce_copy_headers - a message's header section (to the empty line), bounded. */
void bounce_copy_headers(FILE *out, int msgfd);
/* bounce_status - the enhanced status code in a reply ("5.1.1"), or fallback. */
void bounce_status(const char *reply, const char *fallback, char out[16]);

#endif
