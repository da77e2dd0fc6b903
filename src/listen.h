/*
 * listen.h - the standalone daemon (undersmtpd -d, SPEC 2 and 11).
 *
 * Binds every `listen` address (or takes the sockets systemd passes with
 * LISTEN_FDS), then runs a poll loop with a self-pipe for signals: each
 * connection gets its own process running exactly the inetd session code
 * (STYLE habit 21), under max_connections and max_connections_per_ip (421
 * 4.7.0 to the extra client; relay_networks are exempt from the per-IP
 * limit).  The queue runs every queue.run_interval and as soon as a session
 * spooled mail.  SIGHUP re-reads the configuration and aliases (a broken
 * file keeps the old ones); SIGTERM stops accepting, lets sessions finish
 * their message within 30 s, and exits 0.
 */
#ifndef LISTEN_H
#define LISTEN_H

#include <stddef.h>

#include "conf.h"

struct daemon_opts {
	const char *conf_file;
	int conf_explicit;
	const char *aliases_file;
	int verbose;
};

/*
 * listen_split - "host:port" or "[v6]:port" into its parts (host may be
 * empty: every address); 0, or -1 when it is neither.
 */
int listen_split(const char *spec, char *host, size_t hostsize, char *port,
    size_t portsize);
/* daemon_main - run until SIGTERM; the process exit status. */
int daemon_main(struct conf *c, const struct daemon_opts *o);

#endif
