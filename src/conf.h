/*
 * conf.h - undersmtpd.conf (libconfuse) -> one immutable struct conf.
 *
 * conf_load() parses the file against a declarative option table, validates
 * every value (sizes, durations, CIDRs, addresses, enumerations), reports
 * each problem as "file:line: message" through a struct diag, and returns a
 * fully built struct conf or nothing (STYLE habit 19).  A missing *default*
 * configuration file means built-in defaults.  The struct is never changed
 * after conf_load(); a reload builds a new one and swaps.
 */
#ifndef CONF_H
#define CONF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

enum pipe_policy { POLICY_SYNC, POLICY_QUEUE, POLICY_SYNC_THEN_QUEUE };
enum unknown_local { UNKNOWN_REJECT, UNKNOWN_RELAY };
enum tls_mode { TLSMODE_NONE, TLSMODE_MAY, TLSMODE_STARTTLS, TLSMODE_IMPLICIT };
/* How we authenticate to a smarthost: a password (PLAIN, else LOGIN), or OAuth2. */
enum sasl_mech { SASL_AUTO, SASL_PLAIN, SASL_LOGIN, SASL_XOAUTH2, SASL_OAUTHBEARER };

#define CONF_MAX_TEMPFAIL 32

/* Pipe settings: the global section, and per-alias overrides of it. */
struct pipe_conf {
	char *user;               /* NULL: default (nobody as root, else self) */
	long timeout;             /* seconds */
	char *path;
	enum pipe_policy policy;
	int tempfail[CONF_MAX_TEMPFAIL];
	size_t ntempfail;
	long breaker;             /* temporary failures in a row that open the
	                             alias's circuit breaker; 0: none (breaker.h) */
	long breaker_wait;        /* seconds it stays open first */
	long breaker_wait_max;    /* the most it doubles up to */
	char *notify;             /* failure notices go there (notice.h); NULL: none */
	int notify_sender;        /* a DSN to the sender as well */
	long notify_interval;     /* seconds: one notice per alias and reason */
	long max_concurrency;     /* pipe section: all programs together (default
	                             CONF_PIPE_MAX_CONCURRENCY); alias block: that
	                             alias's own share, 0 for none of its own */
};
#define CONF_PIPE_MAX_CONCURRENCY 100
#define CONF_BREAKER 5

/*
 * A content filter (issue 20, filter.h): a program run after DATA with the
 * message on its standard input; rewrite: its standard output replaces the
 * message.  command NULL: no filter.
 */
#define FILTER_MAX_WORDS 64

struct filter_conf {
	char *command;            /* "/path/program args", split at blanks, no shell */
	int rewrite;
};

struct alias_conf {
	char *name;               /* the alias name this block overrides */
	struct pipe_conf pipe;    /* filled from the global pipe section first */
	char *verify_queue;       /* verify = rt_queue(X): X, with ${name} / $1
	                             of the alias's regex (rtqueue.h); NULL: none */
	struct filter_conf filter;
	int filter_set;           /* the block sets filter ("": none for it) */
};

struct smarthost_conf {
	char *name;
	char *host;
	long port;
	enum tls_mode tls;
	int tls_verify;
	char *ca_file;
	char *auth_user;
	char *auth_password_file;
	char *rewrite_sender;
	int auth_plaintext;       /* AUTH allowed without TLS (never for OAuth2) */
	enum sasl_mech auth_mechanism;
	char *auth_token_command; /* OAuth2: prints an access token (oauth.h) */
	int proxy;                /* mode = proxy: forwarded during the session */
	long timeout;             /* seconds for every stage; 0: RFC 5321 4.5.3.2 */
	struct filter_conf filter;
	int filter_set;           /* the block sets filter (the same in every block) */
};

/*
 * A queue run forwards this many messages at a time, each worker with its
 * own smarthost connection (Postfix's destination concurrency, much lower:
 * one provider, and providers limit a client's connections).
 */
#define CONF_QUEUE_CONCURRENCY 4
#define CONF_QUEUE_MAX_CONCURRENCY 32

struct queue_conf {
	long retry_min, retry_max, lifetime, run_interval;
	long bad_lifetime;        /* seconds a file stays in bad/; 0: for ever */
	int run_after_accept;
	int concurrency;          /* messages a queue run forwards at a time */
};

/* Request Tracker's queues, known at RCPT time (rtqueue.h); url NULL: none. */
struct rt_queues_conf {
	char *url;                /* http(s)://host[:port]/path/ of RT */
	char *token_file;         /* RT auth token (Authorization: token ...) */
	char *ca_file;
	long refresh;             /* seconds between fetches */
	long timeout;             /* seconds for one fetch */
};

struct tls_server_conf {
	char *cert_file, *key_file, *auth_users_file;
	char *ciphers;            /* OpenSSL cipher list for TLS 1.2 and older; NULL:
	                             forward-secret AEAD suites (Mozilla intermediate) */
	char *protocols;          /* "TLSv1.2 TLSv1.3" (the default when NULL) */
};

/* Where the file set an option that is checked after the parse. */
struct conf_where {
	char key[160];            /* "section/title/key"; "root//user" at the top */
	int line;
};

struct conf {
	char *file;               /* where it came from, or NULL for defaults */
	struct conf_where *where; /* user, hosts, paths: their lines */
	size_t nwhere;
	char *hostname;
	char **listen;
	size_t nlisten;
	char *aliases;
	char **local_domains;     /* lower case, no trailing dot */
	size_t nlocal_domains;
	char *spool_dir;
	char *user;
	struct cidr *relay_networks;
	size_t nrelay_networks;
	struct cidr *client_networks;   /* who may connect at all; none: anyone */
	size_t nclient_networks;
	struct cidr *proxy_networks;    /* who may send a PROXY header */
	size_t nproxy_networks;
	unsigned client_ipv6_prefix_length;  /* IPv6 clients counted by this prefix */
	char *recipient_delimiter;
	uint64_t min_free_space;
	int durable_spool_required;   /* refuse to start on a spool that loses mail */
	char *log_file;
	char *metrics_listen;         /* the Prometheus endpoint; NULL: none */
	uint64_t max_message_size;
	long max_recipients;
	long max_connections;
	long max_connections_per_ip;
	long session_max_use;     /* connections per daemon session process */
	long timeout;             /* seconds, per command */
	long min_data_rate;       /* bytes/s averaged over DATA, 0: none */
	long max_errors;          /* then 421 */
	long soft_error_limit;    /* errors after which each error reply waits */
	long error_sleep;         /* seconds each such reply waits */
	long max_junk_commands;   /* HELO/EHLO/NOOP/RSET/VRFY/HELP, then errors */
	long max_session_time;    /* seconds a session may last, 0: no limit */
	long max_auth_failures;   /* failed AUTH per client per window, 0: no limit */
	long auth_failure_window; /* seconds */
	long max_hops;            /* Received: headers allowed */
	enum unknown_local unknown_local;
	char *postmaster;
	struct pipe_conf pipe;
	struct filter_conf filter;      /* the global filter (none: command NULL) */
	const struct filter_conf *smarthost_filter;   /* mail for the smarthost */
	struct alias_conf *alias_overrides;
	size_t nalias_overrides;
	struct smarthost_conf *smarthosts;
	size_t nsmarthosts;
	int proxy;                /* the smarthosts are in proxy mode (smtpd_proxy.h) */
	struct queue_conf queue;
	struct tls_server_conf tls;
	struct rt_queues_conf rt;
};

/*
 * conf_load - read path (NULL: the built-in defaults only).  When
 * missing_ok is set and the file does not exist, defaults are used.
 * Returns the configuration, or NULL after reporting through d.
 */
struct conf *conf_load(const char *path, int missing_ok, struct diag *d);
void conf_free(struct conf *c);
/*
 * conf_line - the line that set key in section (title: the section's
 * title, NULL for none; "root" for the top level), 0 for a default.  Only
 * for users, host names and paths.
 */
int conf_line(const struct conf *c, const char *section, const char *title,
    const char *key);

/*
 * conf_verify_for - the verify = rt_queue(X) template of the alias block for
 * an alias entry: a plain name, or a regex alias by its pattern (with or
 * without its slashes).  NULL when none.
 */
const char *conf_verify_for(const struct conf *c, const char *entry_name, int regex);
/* conf_verify_template - X of "rt_queue(X)" / 'rt_queue("X")'; 0, or -1. */
int conf_verify_template(const char *s, char *out, size_t size);
/* conf_pipe_for - the pipe settings for an alias name (overrides applied). */
const struct pipe_conf *conf_pipe_for(const struct conf *c, const char *alias);
/* conf_is_local_domain - domain (any case, optional trailing dot) is ours. */
int conf_is_local_domain(const struct conf *c, const char *domain);
int conf_relay_allowed(const struct conf *c, int family, const unsigned char addr[16]);
/* conf_client_allowed - addr may connect at all (client_networks). */
int conf_client_allowed(const struct conf *c, int family, const unsigned char addr[16]);
/* conf_proxy_allowed - addr may send a PROXY header (proxy_networks). */
int conf_proxy_allowed(const struct conf *c, int family, const unsigned char addr[16]);
/* conf_same_client - a and b count as one client (IPv6: the same prefix). */
int conf_same_client(const struct conf *c, int family, const unsigned char a[16],
    const unsigned char b[16]);
/*
 * conf_tls_protocols - "TLSv1.2 TLSv1.3" into the lowest and highest named
 * (0 TLSv1 .. 3 TLSv1.3); -1 for an unknown name or an empty list.
 */
int conf_tls_protocols(const char *text, int *min, int *max);
const char *conf_policy_name(enum pipe_policy p);

#endif
