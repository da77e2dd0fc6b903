/*
 * maildrop.h - mail from local users who may not write the spool (SPEC 11).
 *
 * sendmail run by anyone but root and `user` cannot touch the spool.  It
 * builds a maildrop file - a small header, then the message as sendmail
 * completed it (LF line endings):
 *
 *   undersmtpd-maildrop 1
 *   sender XTEXT            ("+" is the null sender)
 *   rcpt XTEXT              (one line per recipient, at least one)
 *   end
 *   <message>
 *
 * and hands it to the setgid helper undersmtpd-drop (drop.c), which stores it
 * durably in spool_dir/maildrop (mode 1730: the helper's group may create
 * files there, nobody else may even look).  The queue runner picks maildrop
 * files up: each becomes an ordinary spooled message for its recipients,
 * which the queue then routes like every spooled recipient (a program runs
 * with policy queue).  The file's owner, the submitting user, goes into our
 * Received: header.  A maildrop file is the user's input: it is parsed with
 * the same bounds as anything from the network, and a bad one is moved to
 * spool_dir/bad with the reason.
 */
#ifndef MAILDROP_H
#define MAILDROP_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "conf.h"

#define MAILDROP_MAGIC "undersmtpd-maildrop 1\n"
#define MAILDROP_MODE 01730   /* sticky; owner rwx, group wx, others nothing */
#define MAILDROP_MAX_RCPTS 1000
/* Room for the header: every recipient in the worst xtext form. */
#define MAILDROP_HEADER_MAX (64 + MAILDROP_MAX_RCPTS * (3 * ADDR_PATH_MAX + 8))
/*
 * A helper that died while writing leaves tmp.* behind, unlocked: removed at
 * the next pickup; one that died between creating and locking it (mode 0)
 * after this long.
 */
#define MAILDROP_STALE_SECONDS 3600

#ifndef DROP_HELPER
#define DROP_HELPER "/usr/local/libexec/undersmtpd/undersmtpd-drop"
#endif

struct maildrop_header {
	char sender[ADDR_PATH_MAX + 1];          /* "" for the null sender */
	char (*rcpts)[ADDR_PATH_MAX + 1];
	size_t nrcpts;
	size_t length;                           /* bytes before the message */
};

/* maildrop_format - the header for sender and rcpts (malloc'd), its length in *len. */
char *maildrop_format(const char *sender, char *const *rcpts, size_t nrcpts, size_t *len);
/*
 * maildrop_parse - the header at the start of buf (len bytes, which may go on
 * into the message); 0, or -1 with why.  Addresses are checked with
 * addr_parse_plain.  Free with maildrop_header_free.
 */
int maildrop_parse(const char *buf, size_t len, struct maildrop_header *h,
    char *why, size_t whysize);
void maildrop_header_free(struct maildrop_header *h);

/*
 * maildrop_hand_over - run the helper on dir with header + the bodylen bytes
 * of bodyfd on its standard input.  Returns the helper's exit status (0:
 * stored durably), with why set when it is not 0.
 */
int maildrop_hand_over(const char *helper, const char *dir, const char *header,
    size_t hlen, int bodyfd, uint64_t bodylen, char *why, size_t whysize);

struct aliases;
struct delivery_ctx;
/*
 * maildrop_pickup - move every complete maildrop file into the spool (the
 * caller holds the queue's run lock).  Returns how many were picked up.
 * The content filter of its recipients (filter.h; a, their aliases, may be
 * NULL) runs first, through dctx: its 4xx leaves the file for the next run,
 * its 5xx goes back to the sender as a DSN, as sendmail's caller would
 * have been told.
 */
int maildrop_pickup(const struct conf *c, const struct aliases *a,
    const struct delivery_ctx *dctx);

#endif
