/*
 * test_smtpd.c - smtpd.c: the accept decisions of one SMTP session, at the
 * unit level, before issue 17 moves them into one accept path.  The session
 * runs in a forked child on one end of a socketpair; the test speaks SMTP on
 * the other, command by command, and then looks at what a user would: the
 * replies, the bytes a program got, the files in the spool.
 *
 * Covered: relay by client address (TESTCATALOGUE T49, T55), unknown local
 * users (T50), the recipient limit (T9), a pipe's exit status as the reply
 * (T70), sync-then-queue spooling a temporary failure, one program per
 * transaction (T64), pipe + smarthost in one transaction, the spooled
 * message and its Received: header (T16, LF line ends in the spool), NUL and bare LF refused (T24,
 * T113), text before the 354 (T114), RSET (T6).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "aliases.h"
#include "conf.h"
#include "delivery.h"
#include "log.h"
#include "smtpd.h"
#include "spool.h"
#include "unit.h"

struct fixture {
	char dir[64];
	struct conf *c;
	struct aliases *a;
	int sock;             /* our end of the session's socketpair */
	pid_t pid;            /* the session */
	char reply[4096];     /* the last reply, all its lines */
};

static struct conf *
load_conf(const char *dir, int max_recipients)
{
	char path[128], text[2048];
	struct collected diags = {""};
	struct diag d = {collect, &diags, 0};
	struct passwd *pw = getpwuid(geteuid());
	struct conf *c;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/undersmtpd.conf", dir);
	snprintf(text, sizeof(text),
	    "hostname = \"mx.example.com\"\n"
	    "local_domains = { \"example.com\" }\n"
	    "relay_networks = { \"127.0.0.0/8\" }\n"
	    "spool_dir = \"%s/spool\"\n"
	    "aliases = \"%s/aliases\"\n"
	    "user = \"%s\"\n"
	    "max_recipients = %d\n"
	    "min_free_space = 1M\n"
	    "pipe { policy = sync timeout = 20s }\n"
	    "alias \"later\" { policy = sync-then-queue }\n"
	    "smarthost \"sink\" { host = \"127.0.0.1\" port = 9 tls = none }\n"
	    "queue { run_after_accept = false }\n",
	    dir, dir, pw->pw_name, max_recipients);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	c = conf_load(path, 0, &d);
	if (c == NULL)
		fprintf(stderr, "%s", diags.text);
	return c;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct diag d = {collect, NULL, 0};
	struct collected diags = {""};
	char path[128], why[512];
	FILE *fp;

	d.ctx = &diags;
	strcpy(f->dir, "/tmp/undersmtpd-smtpd-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/aliases", f->dir);
	fp = fopen(path, "w");
	if (fp == NULL)
		return -1;
	fprintf(fp,
	    "ok: \"|/bin/sh -c 'cat >%s/ok.got'\"\n"
	    "ok2: \"|/bin/sh -c 'cat >%s/ok2.got'\"\n"
	    "tmp: \"|/bin/sh -c 'cat >/dev/null; exit 75'\"\n"
	    "perm: \"|/bin/sh -c 'cat >/dev/null; exit 67'\"\n"
	    "later: \"|/bin/sh -c 'cat >/dev/null; exit 75'\"\n"
	    "team: ok, bob@remote.test\n",
	    f->dir, f->dir);
	fclose(fp);
	f->c = load_conf(f->dir, 5);
	if (f->c == NULL)
		return -1;
	if (spool_prepare_top(f->c, geteuid(), getegid(), why, sizeof(why)) < 0 ||
	    spool_prepare(f->c, why, sizeof(why)) < 0) {
		fprintf(stderr, "spool: %s\n", why);
		return -1;
	}
	f->a = aliases_load(f->c->aliases, geteuid(), &d);
	if (f->a == NULL) {
		fprintf(stderr, "%s", diags.text);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/log", f->dir);
	if (log_open("undersmtpd-unit", LOG_TO_FILE, path, 0) < 0)
		return -1;
	f->sock = -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	aliases_free(f->a);
	conf_free(f->c);
	remove_tree(f->dir);
	free(f);
	return 0;
}

/* start - a session for a client at ip (IPv4), greeted and EHLO'd. */
static void
start(struct fixture *f, const char *ip)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		struct smtpd_env env;

		close(sv[1]);
		alarm(60);
		memset(&env, 0, sizeof(env));
		env.conf = f->c;
		env.aliases = f->a;
		env.ps.aliases_owner = geteuid();
		env.ps.launcher_fd = -1;
		env.ps.session_uid = geteuid();
		env.in_fd = env.out_fd = sv[0];
		env.client_family = AF_INET;
		inet_pton(AF_INET, ip, env.client_ip);
		snprintf(env.client_text, sizeof(env.client_text), "%s", ip);
		smtpd_session(&env);
		_exit(env.spooled);
	}
	close(sv[0]);
	f->sock = sv[1];
}

/* reply - the next whole reply; its code. */
static int
reply(struct fixture *f)
{
	size_t len = 0;

	f->reply[0] = '\0';
	for (;;) {
		struct pollfd p = {f->sock, POLLIN, 0};
		char *line;
		ssize_t n;

		assert_int_equal(poll(&p, 1, 30000), 1);
		n = read(f->sock, f->reply + len, 1);       /* a byte at a time: no overread */
		assert_int_equal(n, 1);
		len++;
		f->reply[len] = '\0';
		assert_true(len < sizeof(f->reply) - 1);
		if (f->reply[len - 1] != '\n')
			continue;
		line = f->reply;
		for (char *nl; (nl = strstr(line, "\r\n")) != NULL && nl + 2 < f->reply + len; )
			line = nl + 2;
		if (strlen(line) >= 4 && line[3] == ' ')
			return atoi(line);
	}
}

static void
send_text(struct fixture *f, const char *text)
{
	size_t n = strlen(text);

	assert_int_equal(write(f->sock, text, n), (ssize_t)n);
}

/* cmd - one command line, its reply code. */
static int
cmd(struct fixture *f, const char *line)
{
	char buf[600];

	snprintf(buf, sizeof(buf), "%s\r\n", line);
	send_text(f, buf);
	return reply(f);
}

/* finish - QUIT, and the session's exit status: the messages it spooled. */
static int
finish(struct fixture *f)
{
	int status;

	assert_int_equal(cmd(f, "QUIT"), 221);
	close(f->sock);
	f->sock = -1;
	assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
greet(struct fixture *f, const char *ip)
{
	start(f, ip);
	assert_int_equal(reply(f), 220);
	assert_int_equal(cmd(f, "EHLO client.test"), 250);
}

/* data - DATA, the message, the final dot; the reply code after it. */
static int
data(struct fixture *f, const char *message)
{
	assert_int_equal(cmd(f, "DATA"), 354);
	send_text(f, message);
	send_text(f, ".\r\n");
	return reply(f);
}

static int
queued(struct fixture *f)
{
	char path[128];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "%s/spool/queue", f->dir);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strstr(e->d_name, ".env") != NULL;
	closedir(d);
	return n;
}

static char *
slurp(const char *dir, const char *name)
{
	char path[256];
	static char buf[16384];
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "r");
	if (fp == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

/* T49, T55: relay by the client's address alone; our domain from anywhere. */
static void
test_relay_by_client_address(void **state)
{
	struct fixture *f = *state;

	greet(f, "192.0.2.1");
	assert_int_equal(cmd(f, "MAIL FROM:<a@example.com>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<bob@remote.test>"), 554);
	assert_non_null(strstr(f->reply, "5.7.1"));
	assert_int_equal(cmd(f, "RCPT TO:<ok@example.com>"), 250);
	assert_int_equal(finish(f), 0);

	greet(f, "127.0.0.1");
	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<bob@remote.test>"), 250);
	assert_int_equal(data(f, "Subject: relayed\r\n\r\nbody\r\n"), 250);
	assert_non_null(strstr(f->reply, "queued"));
	assert_int_equal(finish(f), 1);
	assert_int_equal(queued(f), 1);
}

/* T50, T9: an unknown local user by name; recipients past the limit; RSET. */
static void
test_unknown_user_limit_and_rset(void **state)
{
	struct fixture *f = *state;
	char line[64];

	greet(f, "127.0.0.1");
	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<nobody-here@example.com>"), 550);
	assert_non_null(strstr(f->reply, "5.1.1 <nobody-here@example.com>"));
	for (int i = 0; i < 5; i++) {
		snprintf(line, sizeof(line), "RCPT TO:<r%d@remote.test>", i);
		assert_int_equal(cmd(f, line), 250);
	}
	assert_int_equal(cmd(f, "RCPT TO:<r5@remote.test>"), 452);
	assert_non_null(strstr(f->reply, "4.5.3"));
	assert_int_equal(cmd(f, "RSET"), 250);
	assert_int_equal(cmd(f, "DATA"), 503);
	assert_int_equal(finish(f), 0);
	assert_int_equal(queued(f), 0);
}

/* T70: the program's exit status is the reply; it got the message. */
static void
test_pipe_status_is_the_reply(void **state)
{
	struct fixture *f = *state;
	const char *got;

	greet(f, "192.0.2.1");
	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<ok@example.com>"), 250);
	assert_int_equal(data(f, "Subject: to ok\r\n\r\nline one\r\n..dot\r\n"), 250);
	assert_non_null(strstr(f->reply, "2.0.0"));
	got = slurp(f->dir, "ok.got");
	assert_non_null(got);
	assert_non_null(strstr(got, "Return-Path: <a@remote.test>\nDelivered-To: ok@example.com\n"));
	assert_non_null(strstr(got, "\nSubject: to ok\n\nline one\n.dot\n"));
	assert_null(strstr(got, "\r"));

	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<tmp@example.com>"), 250);
	assert_int_equal(data(f, "Subject: t\r\n\r\nx\r\n"), 451);
	assert_non_null(strstr(f->reply, "4.3.0"));

	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<perm@example.com>"), 250);
	assert_int_equal(data(f, "Subject: p\r\n\r\nx\r\n"), 550);
	assert_non_null(strstr(f->reply, "5.1.1"));
	assert_int_equal(finish(f), 0);
	assert_int_equal(queued(f), 0);
}

/* sync-then-queue: a temporary failure is spooled, and the client gets 250. */
static void
test_sync_then_queue_spools_a_tempfail(void **state)
{
	struct fixture *f = *state;

	greet(f, "192.0.2.1");
	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<later@example.com>"), 250);
	assert_int_equal(data(f, "Subject: later\r\n\r\nx\r\n"), 250);
	assert_int_equal(finish(f), 1);
	assert_int_equal(queued(f), 1);
}

/* T64: a second program in one transaction is refused; pipe + smarthost mix. */
static void
test_one_program_per_transaction(void **state)
{
	struct fixture *f = *state;

	greet(f, "127.0.0.1");
	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<ok@example.com>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<ok2@example.com>"), 452);
	assert_non_null(strstr(f->reply, "4.5.3"));
	assert_int_equal(cmd(f, "RCPT TO:<bob@remote.test>"), 250);
	assert_int_equal(data(f, "Subject: mixed\r\n\r\nx\r\n"), 250);
	assert_non_null(slurp(f->dir, "ok.got"));
	assert_null(slurp(f->dir, "ok2.got"));
	assert_int_equal(finish(f), 1);
	assert_int_equal(queued(f), 1);                   /* bob's copy */

	/* The program refuses: the smarthost copy is not committed either. */
	greet(f, "127.0.0.1");
	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<tmp@example.com>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<carol@remote.test>"), 250);
	assert_int_equal(data(f, "Subject: mixed\r\n\r\nx\r\n"), 451);
	assert_int_equal(finish(f), 0);
	assert_int_equal(queued(f), 1);
}

/* T16: the spooled message starts with our Received: line. */
static void
test_spooled_message_has_our_received(void **state)
{
	struct fixture *f = *state;
	char path[256], name[320] = "";
	DIR *d;
	struct dirent *e;
	const char *msg;

	greet(f, "127.0.0.1");
	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<bob@remote.test>"), 250);
	assert_int_equal(data(f, "Subject: r\r\n\r\nbody\r\n"), 250);
	assert_int_equal(finish(f), 1);
	snprintf(path, sizeof(path), "%s/spool/queue", f->dir);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strstr(e->d_name, ".msg") != NULL)
			snprintf(name, sizeof(name), "spool/queue/%s", e->d_name);
	closedir(d);
	msg = slurp(f->dir, name);
	assert_non_null(msg);
	/* The spool keeps LF line ends; the client's CRLF is back on the wire. */
	assert_int_equal(strncmp(msg, "Received: from client.test ([127.0.0.1])\n"
	    "\tby mx.example.com (undersmtpd) with ESMTP id ", 82), 0);
	assert_non_null(strstr(msg, "\n\tfor <bob@remote.test>; "));
	assert_non_null(strstr(msg, "\nSubject: r\n\nbody\n"));
	assert_null(strchr(msg, '\r'));
}

/*
 * T9: one program run takes at most DELIVERY_MAX_RCPTS recipients (each a
 * Delivered-To: line), whatever max_recipients allows: the next one for the
 * same run gets 452 4.5.3, and the program gets a line for each it took.
 */
static void
test_recipients_of_one_program_run(void **state)
{
	struct fixture *f = *state;
	struct diag d = {NULL, NULL, 0};
	char path[128], line[64];
	const char *got;
	FILE *fp;
	int lines = 0;

	conf_free(f->c);
	f->c = load_conf(f->dir, 1000);
	assert_non_null(f->c);
	snprintf(path, sizeof(path), "%s/aliases", f->dir);
	fp = fopen(path, "a");
	assert_non_null(fp);
	for (int i = 0; i <= DELIVERY_MAX_RCPTS; i++)
		fprintf(fp, "u%d: ok\n", i);
	fclose(fp);
	aliases_free(f->a);
	f->a = aliases_load(f->c->aliases, geteuid(), &d);
	assert_non_null(f->a);
	greet(f, "192.0.2.1");
	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	for (int i = 0; i < DELIVERY_MAX_RCPTS; i++) {
		snprintf(line, sizeof(line), "RCPT TO:<u%d@example.com>", i);
		assert_int_equal(cmd(f, line), 250);
	}
	snprintf(line, sizeof(line), "RCPT TO:<u%d@example.com>", DELIVERY_MAX_RCPTS);
	assert_int_equal(cmd(f, line), 452);
	assert_non_null(strstr(f->reply, "4.5.3"));
	assert_non_null(strstr(f->reply, "one program run"));
	assert_int_equal(data(f, "Subject: many\r\n\r\nx\r\n"), 250);
	assert_int_equal(finish(f), 0);
	got = slurp(f->dir, "ok.got");
	assert_non_null(got);
	for (const char *p = got; (p = strstr(p, "\nDelivered-To: u")) != NULL; p++)
		lines++;
	assert_int_equal(lines, DELIVERY_MAX_RCPTS);
}

/* T24, T113, T114: bare LF and NUL refused after the dot; text before 354. */
static void
test_bad_data_refused(void **state)
{
	struct fixture *f = *state;

	greet(f, "192.0.2.1");
	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<ok@example.com>"), 250);
	assert_int_equal(data(f, "Subject: lf\nbare\r\n"), 550);
	assert_non_null(strstr(f->reply, "5.5.2"));
	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<ok@example.com>"), 250);
	assert_int_equal(cmd(f, "DATA"), 354);
	assert_int_equal(write(f->sock, "Subject: nul\r\n\r\na\0b\r\n.\r\n", 24), 24);
	assert_int_equal(reply(f), 550);
	assert_non_null(strstr(f->reply, "5.6.0"));
	assert_null(slurp(f->dir, "ok.got"));
	/* The message text sent with DATA, before the 354: a client not waiting. */
	assert_int_equal(cmd(f, "MAIL FROM:<a@remote.test>"), 250);
	assert_int_equal(cmd(f, "RCPT TO:<ok@example.com>"), 250);
	send_text(f, "DATA\r\nSubject: early\r\n\r\nx\r\n.\r\n");
	assert_int_equal(reply(f), 554);
	assert_non_null(strstr(f->reply, "5.5.0"));
	close(f->sock);
	waitpid(f->pid, NULL, 0);
	assert_null(slurp(f->dir, "ok.got"));
	assert_int_equal(queued(f), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_relay_by_client_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_user_limit_and_rset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipe_status_is_the_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_then_queue_spools_a_tempfail, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_one_program_per_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spooled_message_has_our_received, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_recipients_of_one_program_run, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_data_refused, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
