/*
 * smtpd.h - one SMTP server session (SPEC section 6) on a pair of fds.
 *
 * The same code serves inetd/xinetd/systemd Accept=yes sessions (fds 0/1),
 * each connection of the daemon (listen.c) and sendmail -bs (a local
 * submission on standard input/output).  The caller says who the client
 * is (from getpeername(), never from anything the client sends), where the
 * configuration and aliases are, and how pipes are started.
 */
#ifndef SMTPD_H
#define SMTPD_H

#include <signal.h>
#include <sys/types.h>

#include "aliases.h"
#include "conf.h"
#include "privsep.h"

struct smtpd_env {
	const struct conf *conf;
	struct aliases *aliases;     /* the session may swap in a reloaded table */
	struct privsep ps;           /* how pipes run; whose aliases may name them */
	int in_fd, out_fd;
	int client_family;           /* AF_INET / AF_INET6 */
	unsigned char client_ip[16];
	char client_text[64];        /* "192.0.2.1" */
	const volatile sig_atomic_t *terminate;  /* set by SIGTERM */
	int local_submission;        /* sendmail -bs: a local user, not a network client */
	int spooled;                 /* out: messages this session spooled */
	int rt_queues_kept;          /* the daemon keeps RT's queue list fresh
	                                (rtqueue.h): the session never fetches */
};

/*
 * smtpd_tls_opts - what STARTTLS offers, from the configuration (tls.ciphers,
 * tls.protocols; ticket keys in keys, a buffer for their path).
 */
struct tls_server_opts;
void smtpd_tls_opts(const struct conf *c, struct tls_server_opts *o, char *keys,
    size_t size);
/*
 * smtpd_env_init - the environment every session starts from: c, a, how
 * pipes run (ps), standard input and output as the client's connection, and
 * the flag SIGTERM sets.  The caller then says who the client is.
 */
void smtpd_env_init(struct smtpd_env *env, const struct conf *c, struct aliases *a,
    const struct privsep *ps, const volatile sig_atomic_t *terminate);
/* smtpd_session - run a session to its end; returns 0 (errors are replies). */
int smtpd_session(struct smtpd_env *env);

#endif
