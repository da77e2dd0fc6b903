/*
 * metrics.h - the daemon's Prometheus endpoint (metrics_listen, off by
 * default).  A process of its own, started by the daemon master as the
 * spool user, owns the socket and answers GET /metrics with status.c's
 * figures (Prometheus text format 0.0.4), each connection in a child of
 * its own, METRICS_CLIENTS_MAX at once, each bounded in size (a request of
 * METRICS_REQUEST_MAX bytes) and in time (METRICS_TIMEOUT_MS for the whole
 * exchange): a slow or hostile client delays scrapes, never the mail.  On
 * loopback every local user may connect; a unix: socket is the spool
 * user's, mode 0660 (its group may scrape).
 */
#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>
#include <sys/types.h>

#include "conf.h"

#define METRICS_REQUEST_MAX 8192
#define METRICS_TIMEOUT_MS 5000
#define METRICS_CLIENTS_MAX 4     /* scrapes answered at once */

/*
 * metrics_bind - a listening socket for spec: "host:port", "[v6]:port", a
 * bare port (127.0.0.1), or "unix:/path" (a stale socket there is
 * replaced).  The fd, or -1 with why.
 */
int metrics_bind(const char *spec, char *why, size_t whysize);
/*
 * metrics_start - fork the server on fd; close_fds (n of them) are the
 * master's descriptors the server must not keep.  Its pid, or -1.
 */
pid_t metrics_start(const struct conf *c, int fd, const int *close_fds, size_t n);
/* metrics_answer - one HTTP exchange on a connected socket (then closed). */
void metrics_answer(const struct conf *c, int fd);

#endif
