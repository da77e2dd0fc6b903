/*
 * check.h - what the configuration names, checked against the machine: the
 * guard rails at start (a spool that would not keep what it acknowledges)
 * and --check-config's look at accounts, programs, host names and
 * certificates.  Owns no state; each problem is reported once, as file:line
 * when the configuration or the aliases file says where it came from.
 */
#ifndef CHECK_H
#define CHECK_H

#include <stddef.h>

#include "aliases.h"
#include "conf.h"
#include "util.h"

/*
 * check_spool_durable - SPEC 8's fsyncs keep mail only on a filesystem that
 * honours them, and its links work only when tmp/ and queue/ share one
 * filesystem.  0 when the spool (or, before its first use, the directory it
 * will be made in) is on such a filesystem; -1 with why when it is on tmpfs
 * or ramfs, mounted with write barriers off, under libeatmydata, or split
 * across filesystems (-2: then nothing can be committed at all).
 */
int check_spool_durable(const struct conf *c, char *why, size_t whysize);
/*
 * check_spool_at_start - the daemon's and a session's guard rail: a spool
 * that loses mail is logged as a warning, and refused (-1) with
 * durable_spool = required or when it cannot commit at all.
 */
int check_spool_at_start(const struct conf *c);

/*
 * check_world - --check-config's checks beyond the file's syntax: the spool
 * (an error with durable_spool = required, else a warning), the accounts,
 * each pipe alias's program (exists, executable by the user it runs as),
 * the smarthosts' names (resolve), the certificate and password files
 * (readable; the server certificate not expired).  Errors count in errors,
 * warnings (a name that does not resolve now, a certificate about to
 * expire) go through warnings; both report file:line.  a may be NULL.
 */
void check_world(const struct conf *c, const struct aliases *a, struct diag *errors,
    struct diag *warnings);

#endif
