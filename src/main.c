/*
 * main.c - the command line: choose the mode, load the configuration and
 * the aliases, set up privileges, and run the mode.  Nothing else.
 *
 * Modes: one SMTP session on stdin/stdout (inetd, xinetd, tcpserver,
 * systemd Accept=yes); the daemon (-d, listen.c); queue runs and the
 * operator's commands on the queue (-q, --queue, --hold, --release,
 * --requeue, --bounce, --delete; queue.c); sendmail, mailq and newaliases
 * by the name they are called (sendmail.c parses their options); --route;
 * --check-config.
 */
#define _GNU_SOURCE   /* setresuid(2) and friends: the only safe way to drop all three ids */
#include "aliases.h"
#include "check.h"
#include "conf.h"
#include "delivery.h"
#include "envelope.h"
#include "privsep.h"
#include "probe.h"
#include "listen.h"
#include "log.h"
#include "route.h"
#include "filter.h"
#include "rtqueue.h"
#include "queue.h"
#include "sendmail.h"
#include "smtpd.h"
#include "spool.h"
#include "status.h"
#include "testpipe.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <sys/wait.h>
#include <unistd.h>


enum mode { MODE_INETD, MODE_ROUTE, MODE_CHECK, MODE_HELP, MODE_VERSION,
	MODE_DAEMON, MODE_FLUSH, MODE_LIST, MODE_OPERATE, MODE_SENDMAIL, MODE_TEST_PIPE,
	MODE_STATUS, MODE_PROBE };

struct options {
	enum mode mode;
	const char *conf_file;
	int conf_explicit;
	const char *aliases_file;
	int verbose;
	int json;
	enum queue_op op;
	const char *op_id;
	struct sm_opts sm;            /* sendmail mode */
	char **route_args;            /* --route / -bv addresses, -q ids */
	int nroute_args;
	int ids_substring;            /* sendmail -qIsubstr: ids holding it */
	int local_submission;         /* sendmail -bs */
	int aliases_only;             /* newaliases, sendmail -bi: no look at the machine */
	const char *test_address;     /* --test-pipe ADDRESS */
	const char *from;             /* --from SENDER */
	int dry_run;                  /* --dry-run */
	const char *probe_name;       /* --probe-smarthost [NAME] */
	const char *send_test;        /* --send-test ADDRESS */
};

/* Set by SIGTERM; read by the session between commands (SPEC 6). */
static volatile sig_atomic_t terminate_seen;

static void
on_sigterm(int sig)
{
	(void)sig;
	terminate_seen = 1;
}

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: undersmtpd [-v] [-C file] [-a file]        one SMTP session on stdin/stdout\n"
	    "       undersmtpd -d [-v] [-C file] [-a file]     the standalone daemon (foreground)\n"
	    "       undersmtpd [-C file] [-a file] --route | -bv address...\n"
	    "       undersmtpd [-C file] [-a file] --check-config\n"
	    "       undersmtpd [-C file] [-a file] --test-pipe address [--from sender] [--dry-run] < message\n"
	    "       undersmtpd [-C file] -q | --flush [ID...]    try every (or each named) queued message now\n"
	    "       undersmtpd [-C file] --queue | -bp [--json]  list the queue (mailq)\n"
	    "       undersmtpd [-C file] --status [--json]       the daemon, the queue, the counters\n"
	    "       undersmtpd [-C file] --probe-smarthost [name] [--send-test address]\n"
	    "       undersmtpd [-C file] --hold|--release|--requeue|--bounce|--delete ID\n"
	    "       undersmtpd -h | --help | --version\n");
}

static void
report_stderr(void *ctx, const char *file, int line, const char *msg)
{
	(void)ctx;
	if (line > 0)
		fprintf(stderr, "%s:%d: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

/*
 * sendmail_options - sendmail's command line (SPEC 2): each of its modes is
 * one of ours (-bs a session, -bp the queue, -bv --route, -bi a check of the
 * aliases, -q a flush); -bm, the default, delivers the message on stdin.
 */
static int
sendmail_options(int argc, char **argv, const char *name, struct options *o)
{
	int rc = sendmail_parse(argc, argv, name, &o->sm);

	if (rc != 0)
		return rc;
	if (o->sm.conf_explicit && !sendmail_may_choose_config()) {
		fprintf(stderr, "sendmail: -C is only for root and the user of %s\n",
		    DEFAULT_CONF);
		return EX_USAGE;
	}
	o->conf_file = o->sm.conf_file;
	o->conf_explicit = o->sm.conf_explicit;
	o->route_args = o->sm.rcpts;
	o->nroute_args = (int)o->sm.nrcpts;
	switch (o->sm.mode) {
	case SM_SMTP:
		o->mode = MODE_INETD;
		o->local_submission = 1;
		break;
	case SM_LIST:
		o->mode = MODE_LIST;
		break;
	case SM_VERIFY:
		o->mode = MODE_ROUTE;
		break;
	case SM_ALIASES:
		o->mode = MODE_CHECK;
		o->aliases_only = 1;
		break;
	case SM_FLUSH:
		o->mode = MODE_FLUSH;
		if (o->sm.queue_match != NULL) {
			o->route_args = &o->sm.queue_match;
			o->nroute_args = 1;
			o->ids_substring = 1;
		}
		break;
	case SM_DELIVER:
		o->mode = MODE_SENDMAIL;
		break;
	}
	return 0;
}

static int
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"route", no_argument, NULL, 'R'},
		{"check-config", no_argument, NULL, 'K'},
		{"daemon", no_argument, NULL, 'd'},
		{"flush", no_argument, NULL, 'q'},
		{"queue", no_argument, NULL, 'L'},
		{"json", no_argument, NULL, 'J'},
		{"sendmail", no_argument, NULL, 'S'},
		{"hold", required_argument, NULL, 0x100 + QOP_HOLD},
		{"release", required_argument, NULL, 0x100 + QOP_RELEASE},
		{"requeue", required_argument, NULL, 0x100 + QOP_REQUEUE},
		{"bounce", required_argument, NULL, 0x100 + QOP_BOUNCE},
		{"delete", required_argument, NULL, 0x100 + QOP_DELETE},
		{"test-pipe", required_argument, NULL, 'T'},
		{"status", no_argument, NULL, 's'},
		{"probe-smarthost", no_argument, NULL, 'P'},
		{"send-test", required_argument, NULL, 'E'},
		{"from", required_argument, NULL, 'F'},
		{"dry-run", no_argument, NULL, 'N'},
		{NULL, 0, NULL, 0},
	};
	const char *base = strrchr(argv[0], '/');
	int c;

	base = base ? base + 1 : argv[0];
	memset(o, 0, sizeof(*o));
	o->conf_file = DEFAULT_CONF;
	if (strcmp(base, "sendmail") == 0 || strcmp(base, "mailq") == 0 ||
	    strcmp(base, "newaliases") == 0)
		return sendmail_options(argc, argv, base, o);
	if (argc > 1 && strcmp(argv[1], "--sendmail") == 0)
		return sendmail_options(argc - 1, argv + 1, "sendmail", o);
	while ((c = getopt_long(argc, argv, "+C:a:vhdqb:", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			/* SPEC 2: -bv is --route and -bp is --queue, as in sendmail. */
			if (strcmp(optarg, "v") == 0) {
				o->mode = MODE_ROUTE;
			} else if (strcmp(optarg, "p") == 0) {
				o->mode = MODE_LIST;
			} else {
				fprintf(stderr, "undersmtpd: -b%s: only -bv and -bp are known here "
				    "(sendmail's other modes: undersmtpd --sendmail)\n", optarg);
				return -1;
			}
			break;
		case 'C':
			o->conf_file = optarg;
			o->conf_explicit = 1;
			break;
		case 'a':
			o->aliases_file = optarg;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'h':
			o->mode = MODE_HELP;
			break;
		case 'V':
			o->mode = MODE_VERSION;
			break;
		case 'R':
			o->mode = MODE_ROUTE;
			break;
		case 'K':
			o->mode = MODE_CHECK;
			break;
		case 'd':
			o->mode = MODE_DAEMON;
			break;
		case 'q':
			o->mode = MODE_FLUSH;
			break;
		case 'L':
			o->mode = MODE_LIST;
			break;
		case 'J':
			o->json = 1;
			break;
		case 0x100 + QOP_HOLD:
		case 0x100 + QOP_RELEASE:
		case 0x100 + QOP_REQUEUE:
		case 0x100 + QOP_BOUNCE:
		case 0x100 + QOP_DELETE:
			o->mode = MODE_OPERATE;
			o->op = (enum queue_op)(c - 0x100);
			o->op_id = optarg;
			break;
		case 's':
			o->mode = MODE_STATUS;
			break;
		case 'P':
			o->mode = MODE_PROBE;
			break;
		case 'E':
			o->send_test = optarg;
			break;
		case 'T':
			o->mode = MODE_TEST_PIPE;
			o->test_address = optarg;
			break;
		case 'F':
			o->from = optarg;
			break;
		case 'N':
			o->dry_run = 1;
			break;
		case 'S':
			fprintf(stderr, "undersmtpd: --sendmail must come first\n");
			return -1;
		default:
			return -1;
		}
	}
	if ((o->from != NULL || o->dry_run) && o->mode != MODE_TEST_PIPE) {
		fprintf(stderr, "undersmtpd: --from and --dry-run go with --test-pipe\n");
		return -1;
	}
	/* --probe-smarthost NAME --send-test X: getopt stops at NAME ('+'). */
	while (o->mode == MODE_PROBE && optind < argc) {
		const char *a = argv[optind++];

		if (strcmp(a, "--send-test") == 0 && optind < argc)
			o->send_test = argv[optind++];
		else if (strncmp(a, "--send-test=", 12) == 0)
			o->send_test = a + 12;
		else if (a[0] != '-' && o->probe_name == NULL)
			o->probe_name = a;
		else {
			fprintf(stderr, "undersmtpd: --probe-smarthost: unexpected '%s'\n", a);
			return -1;
		}
	}
	if (o->send_test != NULL && o->mode != MODE_PROBE) {
		fprintf(stderr, "undersmtpd: --send-test goes with --probe-smarthost\n");
		return -1;
	}
	if (o->mode == MODE_ROUTE && optind >= argc) {
		fprintf(stderr, "undersmtpd: --route needs at least one address\n");
		return -1;
	}
	o->route_args = argv + optind;
	o->nroute_args = argc - optind;
	if (o->mode != MODE_ROUTE && o->mode != MODE_FLUSH && optind < argc) {
		fprintf(stderr, "undersmtpd: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

static struct conf *
load_conf(const struct options *o, struct diag *d)
{
	struct conf *c = conf_load(o->conf_file, !o->conf_explicit, d);

	if (c != NULL && o->aliases_file != NULL) {
		/* -a overrides the file's `aliases` (SPEC 2); set before any use. */
		free(c->aliases);
		c->aliases = xstrdup(o->aliases_file);
	}
	return c;
}

/*
 * trusted_uid_for - besides root, who may own an aliases file that names
 * programs: nobody when started as root (the launcher trusts root's files
 * alone), else ourselves (SPEC 7, 11).
 */
static uid_t
trusted_uid_for(void)
{
	return geteuid();
}

static void
report_warning(void *ctx, const char *file, int line, const char *msg)
{
	(void)ctx;
	if (line > 0)
		fprintf(stderr, "%s:%d: warning: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: warning: %s\n", file, msg);
}

static int
run_check(const struct options *o)
{
	struct diag d = {report_stderr, NULL, 0}, warnings = {report_warning, NULL, 0};
	struct conf *c = load_conf(o, &d);
	struct aliases *a;

	if (c == NULL)
		return 1;
	if (c->tls.cert_file != NULL) {
		struct tls_server_opts topts;
		char keys[4200], why[600];

		smtpd_tls_opts(c, &topts, keys, sizeof(keys));
		topts.ticket_key_file = NULL;
		if (tls_server_check(&topts, why, sizeof(why)) < 0)
			diag_error(&d, c->file ? c->file : "(defaults)", 0, "tls: %s", why);
	}
	a = aliases_load(c->aliases, trusted_uid_for(), &d);
	if (a != NULL) {
		for (size_t i = 0; i < a->nfiles; i++)
			if (!a->files[i].trusted && a->untrusted_pipes > 0)
				diag_error(&d, a->files[i].path, 0, "names programs but is not "
				    "owned by %s, or is writable by group or others: its pipe "
				    "aliases are refused (451)", geteuid() == 0 ? "root (started "
				    "as root, only root's files may name programs)" : "root or us");
	}
	if (!o->aliases_only)
		check_world(c, a, &d, &warnings);
	if (a != NULL) {
		if (d.errors == 0)
			printf("%s: configuration OK (%zu aliases, %zu regex aliases)\n",
			    c->file ? c->file : "built-in defaults", a->nliteral, a->nregex);
	}
	aliases_free(a);
	conf_free(c);
	return d.errors ? 1 : 0;
}

static int
run_route(const struct options *o)
{
	struct diag d = {report_stderr, NULL, 0};
	struct conf *c = load_conf(o, &d);
	struct aliases *a;
	int rc = 0;

	if (c == NULL)
		return EX_CONFIG;
	a = aliases_load(c->aliases, trusted_uid_for(), &d);
	if (a == NULL)
		fprintf(stderr, "undersmtpd: %s: aliases unavailable; local recipients "
		    "get a temporary failure\n", c->aliases);
	for (int i = 0; i < o->nroute_args; i++) {
		char **argv = o->route_args;
		char text[ADDR_PATH_MAX + 3];
		size_t len = strlen(argv[i]);
		struct addr ad;
		struct route_result *r = xmalloc(sizeof(*r));
		int err;

		/* <address> is accepted too, as a client would write it. */
		if (len >= 2 && argv[i][0] == '<' && argv[i][len - 1] == '>')
			str_copy(text, sizeof(text), argv[i] + 1), text[len - 2] = '\0';
		else
			str_copy(text, sizeof(text), argv[i]);
		err = addr_parse_plain(text, &ad);
		if (err != ADDR_OK) {
			printf("%s: rejected 501 5.1.3 %s\n", argv[i], addr_strerror(err));
			rc = 1;
			free(r);
			continue;
		}
		/* As a local client (loopback) would be routed. */
		route_address(c, a, &ad, 1, r);
		if (r->reply.code == 250) {
			int conflict;
			const struct filter_conf *f = filter_for_route(c, r, &conflict);

			char queue[RTQ_NAME_MAX + 1];
			/* Read only: the daemon or the next session fetches the list. */
			int rtq = rtq_verify_route(c, r, 0, queue, sizeof(queue));

			printf("%s: %s\n", r->address, r->why);
			if (rtq >= 0)
				printf("%s: Request Tracker queue \"%s\": %s\n", r->address, queue,
				    rtq == RTQ_KNOWN ? "known" : rtq == RTQ_UNKNOWN ? "unknown: RCPT "
				    "gets 550 5.1.1" : "no list of RT's queues yet: accepted unchecked");
			if (rtq == RTQ_UNKNOWN)
				rc = 1;
			if (f != NULL || conflict)
				printf("%s: content filter: %s%s\n", r->address, conflict ?
				    "its destinations have different ones: refused 550 5.3.5"
				    : f->command, f && f->rewrite ? " (rewrites the message)" : "");
		} else {
			int more = r->why[0] && strcmp(r->why, r->reply.text) != 0;

			printf("%s: rejected %d %s %s%s%s\n", r->address, r->reply.code,
			    r->reply.status, r->reply.text, more ? " -- " : "", more ? r->why : "");
			rc = 1;
		}
		free(r);
	}
	aliases_free(a);
	conf_free(c);
	return rc;
}

/*
 * client_identity - from getpeername() only; ucspi variables only when
 * stdin is not a socket at all (SPEC 2); otherwise a local client.
 */
static void
client_identity(struct smtpd_env *env)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	const char *proto, *ip;

	env->client_family = AF_INET;
	memset(env->client_ip, 0, sizeof(env->client_ip));
	if (getpeername(0, (struct sockaddr *)&ss, &len) == 0) {
		if (sockaddr_to_ip((struct sockaddr *)&ss, &env->client_family,
		    env->client_ip) == 0) {
			ip_to_text(env->client_family, env->client_ip, env->client_text,
			    sizeof(env->client_text));
			return;
		}
	} else if (errno == ENOTSOCK) {
		proto = getenv("PROTO");
		ip = proto ? getenv(strcmp(proto, "TCP6") == 0 ? "TCP6REMOTEIP"
		    : "TCPREMOTEIP") : NULL;
		if (ip == NULL && proto)
			ip = getenv("TCPREMOTEIP");
		if (ip != NULL && ip_parse(ip, &env->client_family, env->client_ip) == 0) {
			ip_to_text(env->client_family, env->client_ip, env->client_text,
			    sizeof(env->client_text));
			return;
		}
	}
	/* A pipe, a Unix socket, or no ucspi variables: a local client. */
	env->client_family = AF_INET;
	env->client_ip[0] = 127;
	env->client_ip[3] = 1;
	str_copy(env->client_text, sizeof(env->client_text), "127.0.0.1");
}

/*
 * log_fall_back_to_syslog - log_file could not be opened: say why (in the
 * syslog, the one place left) and go on there.
 */
static void
log_fall_back_to_syslog(int verbose)
{
	int err = errno;
	char why[600];

	str_copy(why, sizeof(why), log_open_error());
	log_open("undersmtpd", LOG_TO_SYSLOG, NULL, verbose);
	errno = err;
	log_warn("log_file: %s", why);
}

/* say - an SMTP reply straight to the client, before any session exists. */
static void
say(const char *line)
{
	if (write_all(1, line, strlen(line)) < 0)
		log_warn("write to client");
}

static int
run_inetd(const struct options *o)
{
	struct diag d = {log_diag, NULL, 0};
	struct smtpd_env env;
	struct delivery_ctx dctx;
	struct conf *c;
	struct sigaction sa;
	char why[4200];
	int status = 0, rc;

	/* fd 2 is the client's socket here: never log to it (SPEC 2, 10). */
	log_open("undersmtpd", LOG_TO_SYSLOG, NULL, o->verbose);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_sigterm;
	sigaction(SIGTERM, &sa, NULL);
	c = load_conf(o, &d);
	if (c == NULL) {
		log_warnx("configuration %s has errors: refusing the session", o->conf_file);
		say("421 4.3.0 Local configuration error; try again later\r\n");
		return EX_CONFIG;
	}
	if (c->log_file && log_open("undersmtpd", LOG_TO_FILE, c->log_file, o->verbose) < 0)
		log_fall_back_to_syslog(o->verbose);
	if (c->durable_spool_required && check_spool_at_start(c) < 0) {
		say("421 4.3.0 Local configuration error; try again later\r\n");
		conf_free(c);
		return EX_CONFIG;
	}
	dctx.conf = c;
	rc = privsep_start(c, o->aliases_file, NULL, 0, &dctx.ps, &status, why, sizeof(why));
	if (rc != 0) {
		/* 1: we were the launcher and the session is over; -1: no session. */
		if (rc < 0) {
			log_warn("%s", why);
			say("421 4.3.0 Local error; try again later\r\n");
			status = EX_TEMPFAIL;
		}
		conf_free(c);
		return status;
	}
	smtpd_env_init(&env, c, aliases_load(c->aliases, dctx.ps.aliases_owner, &d), &dctx.ps,
	    &terminate_seen);
	env.local_submission = o->local_submission;
	client_identity(&env);
	if (env.aliases == NULL)
		log_warnx("aliases %s has errors: local recipients get 451 until it is "
		    "fixed", c->aliases);
	smtpd_session(&env);
	if (env.spooled > 0 && c->queue.run_after_accept)
		queue_kick(c, &dctx);
	aliases_free(env.aliases);
	conf_free(c);
	return 0;
}

/*
 * run_flush - undersmtpd -q [ID...]: every message (or the named ones) now;
 * 0 nothing left, 75 some deferred.
 */
static int
run_flush(const struct conf *c, const struct options *o)
{
	const char *aliases_override = o->aliases_file;
	struct delivery_ctx dctx;
	char why[4200];
	int status = 0, rc;

	dctx.conf = c;
	rc = privsep_start(c, aliases_override, NULL, 0, &dctx.ps, &status, why, sizeof(why));

	if (rc == 1)
		return status;
	if (rc < 0) {
		fprintf(stderr, "undersmtpd: %s: %s\n", why, strerror(errno));
		return EX_TEMPFAIL;
	}
	if (o->nroute_args > 0)
		rc = queue_run_ids(c, &dctx, o->route_args, (size_t)o->nroute_args,
		    o->ids_substring, 1);
	else
		rc = queue_run_with(c, &dctx, 1, 1);
	fflush(stdout);
	return rc;
}

/*
 * run_status - undersmtpd --status [--json], as the spool user: 0, or 1
 * when the counters cannot be read or the daemon died without stopping.
 */
static int
run_status(const struct conf *c, int json)
{
	struct stats *s = xmalloc(sizeof(*s));
	struct breakers *b = xmalloc(sizeof(*b));
	struct queue_census q;
	int rc = 0;

	if (stats_read(c, s) < 0 && errno != ENOENT) {
		fprintf(stderr, "undersmtpd: read %s/stats: %s\n", c->spool_dir, strerror(errno));
		rc = 1;
	}
	status_census(c, &q);
	breaker_read(c, b);            /* none yet: an empty table */
	if (json)
		status_json(stdout, s, &q, b);
	else
		status_text(stdout, s, &q, b);
	if (s->head.daemon_pid > 0 && !status_daemon_up(s))
		rc = 1;
	free(b);
	free(s);
	return rc;
}

static int
run_queue_command(const struct options *o)
{
	struct diag d = {report_stderr, NULL, 0};
	struct conf *c = load_conf(o, &d);
	char why[4200];
	int rc = 0;

	if (c == NULL)
		return EX_CONFIG;
	if (log_open("undersmtpd", c->log_file ? LOG_TO_FILE : LOG_TO_SYSLOG, c->log_file,
	    o->verbose) < 0) {
		fprintf(stderr, "undersmtpd: log_file: %s: %s\n", log_open_error(),
		    strerror(errno));
		log_fall_back_to_syslog(o->verbose);
	}
	if (o->mode == MODE_FLUSH) {
		rc = run_flush(c, o);
		conf_free(c);
		return rc;
	}
	if (privsep_become_spool_user(c, why, sizeof(why)) < 0) {
		fprintf(stderr, "undersmtpd: %s: %s\n", why, strerror(errno));
		conf_free(c);
		return EX_TEMPFAIL;
	}
	if (o->mode == MODE_STATUS) {
		rc = run_status(c, o->json);
	} else if (o->mode == MODE_PROBE) {
		rc = probe_main(c, o->probe_name, o->send_test, stdout);
	} else if (o->mode == MODE_LIST) {
		queue_list(c, stdout, o->json);
	} else if (o->mode == MODE_OPERATE) {
		if (queue_operate(c, o->op, o->op_id, why, sizeof(why)) < 0) {
			fprintf(stderr, "undersmtpd: %s\n", why);
			rc = 1;
		}
	}
	conf_free(c);
	return rc;
}

/* run_sendmail - one message on standard input (sendmail -bm, the default). */
static int
run_sendmail(const struct options *o)
{
	struct diag d = {report_stderr, NULL, 0};
	struct conf *c;
	int rc;

	c = load_conf(o, &d);
	if (c == NULL)
		return EX_CONFIG;
	/* An ordinary user may not write the log file: syslog then, quietly. */
	if (log_open("undersmtpd", c->log_file ? LOG_TO_FILE : LOG_TO_SYSLOG, c->log_file,
	    o->verbose) < 0) {
		if (errno == EACCES)
			log_open("undersmtpd", LOG_TO_SYSLOG, NULL, o->verbose);
		else
			log_fall_back_to_syslog(o->verbose);
	}
	rc = sendmail_deliver(&o->sm, c);
	conf_free(c);
	return rc;
}

/* run_test_pipe - undersmtpd --test-pipe ADDRESS: one delivery, shown (testpipe.h). */
static int
run_test_pipe(const struct options *o)
{
	struct diag d = {report_stderr, NULL, 0};
	struct conf *c = load_conf(o, &d);
	char sender[ADDR_PATH_MAX + 1];
	int rc;

	if (c == NULL)
		return EX_CONFIG;
	/* The log says a test ran, and who ran it; to stderr too with -v. */
	if (log_open("undersmtpd", (c->log_file ? LOG_TO_FILE : LOG_TO_SYSLOG) |
	    (o->verbose ? LOG_TO_STDERR : 0), c->log_file, o->verbose) < 0)
		log_open("undersmtpd", LOG_TO_SYSLOG, NULL, o->verbose);
	if (o->from != NULL) {
		str_copy(sender, sizeof(sender), o->from);
	} else {
		/* As sendmail would: the invoking user at our host name. */
		struct passwd *pw = getpwuid(getuid());

		snprintf(sender, sizeof(sender), "%s@%s", pw ? pw->pw_name : "root",
		    c->hostname);
	}
	rc = testpipe_main(c, o->aliases_file, o->test_address, sender, o->dry_run, stdin,
	    stdout);
	conf_free(c);
	return rc;
}

/* run_daemon - undersmtpd -d: in the foreground, for systemd and supervisors. */
static int
run_daemon(const struct options *o)
{
	struct diag d = {report_stderr, NULL, 0};
	struct conf *c = load_conf(o, &d);
	struct daemon_opts dopts = {o->conf_file, o->conf_explicit, o->aliases_file,
	    o->verbose};
	int flags;

	if (c == NULL)
		return EX_CONFIG;
	/* In the foreground standard error is ours: -v logs there too (SPEC 2). */
	flags = (c->log_file ? LOG_TO_FILE : LOG_TO_SYSLOG) | (o->verbose ? LOG_TO_STDERR : 0);
	if (log_open("undersmtpd", flags, c->log_file, o->verbose) < 0) {
		fprintf(stderr, "undersmtpd: log_file: %s: %s\n", log_open_error(),
		    strerror(errno));
		conf_free(c);
		return EX_CONFIG;
	}
	if (check_spool_at_start(c) < 0) {
		fprintf(stderr, "undersmtpd: the spool would lose mail; not starting (see "
		    "the log)\n");
		conf_free(c);
		return EX_CONFIG;
	}
	return daemon_main(c, &dopts);
}

int
main(int argc, char **argv)
{
	struct options o;

	/*
	 * A parent may have left SIGCHLD ignored (Perl's swaks does): children
	 * would then be reaped by the kernel and every exit status lost.
	 */
	signal(SIGCHLD, SIG_DFL);
	{
		int rc = parse_options(argc, argv, &o);

		/* < 0: our own usage; > 0: sendmail's, already explained. */
		if (rc != 0) {
			if (rc < 0)
				usage(stderr);
			return EX_USAGE;
		}
	}
	/* Postfix's program names in the log, by what this process does. */
	log_set_role(o.mode == MODE_INETD ? "smtpd" : o.mode == MODE_DAEMON ? "master" :
	    o.mode == MODE_FLUSH ? "qmgr" : o.mode == MODE_OPERATE ? "postsuper" :
	    o.mode == MODE_SENDMAIL ? "sendmail" : o.mode == MODE_TEST_PIPE ? "pipe" : NULL);
	switch (o.mode) {
	case MODE_HELP:
		usage(stdout);
		return 0;
	case MODE_VERSION:
		printf("undersmtpd %s\n", UNDERSMTPD_VERSION);
		return 0;
	case MODE_CHECK:
		return run_check(&o);
	case MODE_FLUSH:
	case MODE_LIST:
	case MODE_OPERATE:
	case MODE_STATUS:
	case MODE_PROBE:
		return run_queue_command(&o);
	case MODE_DAEMON:
		return run_daemon(&o);
	case MODE_ROUTE:
		return run_route(&o);
	case MODE_SENDMAIL:
		return run_sendmail(&o);
	case MODE_TEST_PIPE:
		return run_test_pipe(&o);
	case MODE_INETD:
		break;
	}
	return run_inetd(&o);
}
