/*
 * test_queue.c - queue.c: the queue runner's decisions (SPEC 8), on a real
 * spool in a temporary directory, with the smarthost played by a child on
 * 127.0.0.1 that answers RCPT by the local part (ok... 250, later... 451,
 * never... 550) and records every line it is sent.  Checked: what the
 * envelope says afterwards (per-recipient states, attempts, last replies,
 * next try within retry_min..retry_max), that delivered and bounced
 * recipients are never tried again (T90, T92), expiry at lifetime with a
 * DSN and never one for <> (T99), held and not-yet-due messages left alone,
 * an unreachable smarthost only deferring (T87), programs run from the queue,
 * and the queue_result counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "log.h"
#include "queue.h"
#include "spool.h"
#include "unit.h"

struct fixture {
	char dir[64];
	char transcript[128], log[128];
	pid_t peer;
	int port;
	struct conf *c;
	struct queue_ctx q;
};

/* ---- the smarthost ---- */

static void
say(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) < 0)
		_exit(3);
}

/* rcpt_reply - by the local part: the script of every test here. */
static const char *
rcpt_reply(const char *line)
{
	const char *a = strchr(line, '<');

	if (a == NULL)
		return "501 5.5.4 syntax\r\n";
	if (strncmp(a + 1, "later", 5) == 0)
		return "451 4.2.0 mailbox busy, try later\r\n";
	if (strncmp(a + 1, "never", 5) == 0)
		return "550 5.1.1 no such user here\r\n";
	return "250 2.1.5 ok\r\n";
}

/* serve - one connection; every line goes to the transcript before its reply. */
static void
serve(int fd, int out)
{
	char buf[8192], line[2048];
	size_t start = 0, end = 0, o = 0;
	int in_data = 0;

	say(fd, "220 sink ESMTP\r\n");
	for (;;) {
		ssize_t n;

		if (start == end) {
			n = read(fd, buf, sizeof(buf));
			if (n <= 0)
				return;
			start = 0;
			end = (size_t)n;
		}
		while (start < end) {
			char ch = buf[start++];

			if (o + 1 < sizeof(line))
				line[o++] = ch;
			if (ch != '\n')
				continue;
			line[o] = '\0';
			if (write(out, line, o) < 0)
				_exit(3);
			o = 0;
			if (in_data) {
				if (strcmp(line, ".\r\n") == 0) {
					in_data = 0;
					say(fd, "250 2.0.0 queued\r\n");
				}
			} else if (strncmp(line, "EHLO", 4) == 0) {
				say(fd, "250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
			} else if (strncmp(line, "MAIL", 4) == 0 || strncmp(line, "RSET", 4) == 0) {
				say(fd, "250 2.0.0 ok\r\n");
			} else if (strncmp(line, "RCPT", 4) == 0) {
				say(fd, rcpt_reply(line));
			} else if (strncmp(line, "DATA", 4) == 0) {
				in_data = 1;
				say(fd, "354 go ahead\r\n");
			} else if (strncmp(line, "QUIT", 4) == 0) {
				say(fd, "221 bye\r\n");
				return;
			} else {
				say(fd, "502 5.5.1 not here\r\n");
			}
		}
	}
}

static int
listen_local(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

/* ---- the spool ---- */

static const char aliases_text[] =
    "p0: \"|/bin/sh -c 'cat >/dev/null; exit 0'\"\n"
    "p75: \"|/bin/sh -c 'exit 75'\"\n"
    "p67: \"|/bin/sh -c 'exit 67'\"\n"
    "fwd: ok-a@dest.test, later-a@dest.test\n";

static struct conf *
load_conf(struct fixture *f, int port)
{
	char conf_path[128], text[2048];
	struct collected diags = {""};
	struct diag d = {collect, &diags, 0};
	struct passwd *pw = getpwuid(geteuid());
	struct conf *c;
	FILE *fp;

	snprintf(conf_path, sizeof(conf_path), "%s/undersmtpd.conf", f->dir);
	snprintf(text, sizeof(text),
	    "hostname = \"mx.example.com\"\n"
	    "local_domains = { \"example.com\" }\n"
	    "spool_dir = \"%s/spool\"\n"
	    "aliases = \"%s/aliases\"\n"
	    "user = \"%s\"\n"
	    "pipe { policy = queue timeout = 20s }\n"
	    "smarthost \"sink\" { host = \"127.0.0.1\" port = %d tls = none timeout = 10s }\n"
	    "queue { retry_min = 100s retry_max = 300s lifetime = 1h run_after_accept = false }\n",
	    f->dir, f->dir, pw->pw_name, port);
	fp = fopen(conf_path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	c = conf_load(conf_path, 0, &d);
	if (c == NULL)
		fprintf(stderr, "%s", diags.text);
	assert_non_null(c);
	return c;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct diag d = {log_diag, NULL, 0};
	char path[128], why[512];
	int lfd;
	FILE *fp;

	strcpy(f->dir, "/tmp/undersmtpd-queue-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->transcript, sizeof(f->transcript), "%s/transcript", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/log", f->dir);
	snprintf(path, sizeof(path), "%s/aliases", f->dir);
	fp = fopen(path, "w");
	fputs(aliases_text, fp);
	fclose(fp);
	lfd = listen_local(&f->port);
	if (lfd < 0)
		return -1;
	f->peer = fork();
	if (f->peer < 0)
		return -1;
	if (f->peer == 0) {
		int out = open(f->transcript, O_WRONLY | O_CREAT | O_APPEND, 0600);

		alarm(120);
		for (;;) {
			int fd = accept(lfd, NULL, NULL);

			if (fd < 0)
				_exit(2);
			serve(fd, out);
			close(fd);
		}
	}
	close(lfd);
	f->c = load_conf(f, f->port);
	if (spool_prepare_top(f->c, geteuid(), getegid(), why, sizeof(why)) < 0 ||
	    spool_prepare(f->c, why, sizeof(why)) < 0) {
		fprintf(stderr, "spool: %s\n", why);
		return -1;
	}
	if (log_open("undersmtpd-unit", LOG_TO_FILE, f->log, 0) < 0)
		return -1;
	f->q.conf = f->c;
	f->q.aliases = aliases_load(f->c->aliases, geteuid(), &d);
	f->q.dctx.conf = f->c;
	f->q.dctx.ps.launcher_fd = -1;
	f->q.dctx.ps.session_uid = geteuid();
	f->q.dctx.ps.aliases_owner = geteuid();
	if (f->q.aliases == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	log_close();
	kill(f->peer, SIGTERM);
	waitpid(f->peer, NULL, 0);
	aliases_free(f->q.aliases);
	conf_free(f->c);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	free(f);
	return system(cmd) == 0 ? 0 : -1;
}

/* put - commit a message from sender to rcpts (NULL-terminated), as given. */
static void
put(struct fixture *f, const char *id, const char *sender, const char *const *rcpts,
    time_t created, int attempts, time_t next_try, int hold)
{
	static const char msg[] = "Received: from x\nSubject: test\nMessage-ID: <t@x>\n\nbody\n";
	struct spool_env e;
	char path[4096];
	int fd;

	memset(&e, 0, sizeof(e));
	strcpy(e.id, id);
	strcpy(e.sender, sender);
	e.created = created;
	e.attempts = attempts;
	e.next_try = next_try;
	e.hold = hold;
	e.size = sizeof(msg) - 1;
	strcpy(e.client, "192.0.2.1");
	strcpy(e.helo, "client.test");
	for (size_t i = 0; rcpts[i] != NULL; i++)
		spool_add_rcpt(&e, rcpts[i], rcpts[i]);
	spool_path(f->c, "tmp", id, ".msg", path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, msg, sizeof(msg) - 1), (ssize_t)(sizeof(msg) - 1));
	assert_int_equal(spool_commit(f->c, fd, &e), 0);
	close(fd);
	spool_env_free(&e);
}

/* get - the envelope of id, which must be there. */
static void
get(struct fixture *f, const char *id, struct spool_env *e)
{
	char why[512];

	if (spool_read(f->c, id, e, why, sizeof(why)) < 0)
		fail_msg("%s: %s", id, why);
}

static int
exists(struct fixture *f, const char *id)
{
	char path[4096];

	spool_path(f->c, "queue", id, ".env", path, sizeof(path));
	return access(path, F_OK) == 0;
}

static const struct spool_rcpt *
rcpt(const struct spool_env *e, const char *addr)
{
	for (size_t i = 0; i < e->nrcpts; i++)
		if (strcmp(e->rcpts[i].addr, addr) == 0)
			return &e->rcpts[i];
	fail_msg("no recipient %s", addr);
	return NULL;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* the ids in the queue other than those named (NULL-terminated): new messages. */
static char *
other_id(struct fixture *f, const char *const *known)
{
	char **ids = spool_ids(f->c), *found = NULL;

	for (size_t i = 0; ids[i] != NULL; i++) {
		int k = 0;

		for (size_t j = 0; known[j] != NULL; j++)
			k |= strcmp(ids[i], known[j]) == 0;
		if (!k && found == NULL)
			found = strdup(ids[i]);
	}
	spool_ids_free(ids);
	return found;
}

static void
run(struct fixture *f, int force, struct queue_result *res)
{
	memset(res, 0, sizeof(*res));
	queue_run(&f->q, force, res);
}

/* next_try_in - assert now + lo <= e.next_try <= now + hi (seconds). */
static void
assert_next_try(const struct spool_env *e, time_t before, time_t after, long lo, long hi)
{
	if (e->next_try < before + lo || e->next_try > after + hi)
		fail_msg("next try %lld s from now, not within %ld..%ld",
		    (long long)(e->next_try - before), lo, hi);
}

/*
 * One message, three recipients: 250, 451, 550.  The accepted one is done,
 * the refused one bounced (a DSN to the sender), the deferred one retried
 * after retry_min - alone: the others are never sent again.
 */
static void
test_per_recipient_outcomes(void **state)
{
	struct fixture *f = *state;
	const char *const rcpts[] = {"ok-1@dest.test", "later-1@dest.test",
	    "never-1@dest.test", NULL};
	const char *const known[] = {"A00000000001", NULL};
	struct queue_result res;
	struct spool_env e, dsn;
	char *t, *dsn_id, *log;
	time_t before = time(NULL), after;

	put(f, "A00000000001", "alice@remote.test", rcpts, before, 0, 0, 0);
	run(f, 0, &res);
	after = time(NULL);
	assert_int_equal(res.delivered, 1);
	assert_int_equal(res.failed, 1);
	assert_int_equal(res.deferred, 1);
	assert_int_equal(res.remaining, 1);
	assert_int_equal(res.skipped, 0);
	assert_int_equal(res.damaged, 0);
	get(f, "A00000000001", &e);
	assert_int_equal(e.attempts, 1);
	assert_int_equal(rcpt(&e, "ok-1@dest.test")->state, RCPT_DELIVERED);
	assert_string_equal(rcpt(&e, "ok-1@dest.test")->last, "250 2.0.0 queued");
	assert_int_equal(rcpt(&e, "later-1@dest.test")->state, RCPT_DEFERRED);
	assert_int_equal(rcpt(&e, "later-1@dest.test")->attempts, 1);
	assert_string_equal(rcpt(&e, "later-1@dest.test")->last,
	    "451 4.2.0 mailbox busy, try later");
	assert_int_equal(rcpt(&e, "never-1@dest.test")->state, RCPT_BOUNCED);
	assert_string_equal(rcpt(&e, "never-1@dest.test")->last,
	    "550 5.1.1 no such user here");
	/* SPEC 8: backoff starts at retry_min (100 s, jittered by 10%). */
	assert_next_try(&e, before, after, 90, 110);
	spool_env_free(&e);
	/* The DSN: a message of its own, from <> to the sender. */
	dsn_id = other_id(f, known);
	assert_non_null(dsn_id);
	get(f, dsn_id, &dsn);
	assert_string_equal(dsn.sender, "");
	assert_int_equal(dsn.bounce, 1);
	assert_int_equal(dsn.nrcpts, 1);
	assert_string_equal(dsn.rcpts[0].addr, "alice@remote.test");
	spool_env_free(&dsn);
	/* Postfix-style log lines for each outcome (SPEC 10). */
	log = file_text(f->log);
	assert_non_null(strstr(log, "A00000000001: to=<ok-1@dest.test>, relay=sink"));
	assert_non_null(strstr(log, "status=sent (250 2.0.0 queued)"));
	assert_non_null(strstr(log, "to=<later-1@dest.test>, relay=sink"));
	assert_non_null(strstr(log, "status=deferred (451 4.2.0"));
	assert_non_null(strstr(log, "status=bounced (550 5.1.1"));
	free(log);

	/* Again, now: only the deferred recipient is tried; the DSN goes out. */
	before = time(NULL);
	run(f, 1, &res);
	after = time(NULL);
	assert_int_equal(res.delivered, 1);      /* the DSN */
	assert_int_equal(res.failed, 0);
	assert_int_equal(res.deferred, 1);
	assert_int_equal(res.remaining, 1);
	assert_false(exists(f, dsn_id));         /* delivered: removed */
	get(f, "A00000000001", &e);
	assert_int_equal(e.attempts, 2);
	assert_int_equal(rcpt(&e, "later-1@dest.test")->attempts, 2);
	assert_int_equal(rcpt(&e, "ok-1@dest.test")->attempts, 1);
	assert_int_equal(rcpt(&e, "never-1@dest.test")->attempts, 1);
	assert_next_try(&e, before, after, 180, 220);     /* doubled */
	spool_env_free(&e);
	t = file_text(f->transcript);
	assert_int_equal(count(t, "RCPT TO:<ok-1@dest.test>"), 1);
	assert_int_equal(count(t, "RCPT TO:<never-1@dest.test>"), 1);
	assert_int_equal(count(t, "RCPT TO:<later-1@dest.test>"), 2);
	assert_int_equal(count(t, "MAIL FROM:<>"), 1);
	assert_int_equal(count(t, "RCPT TO:<alice@remote.test>"), 1);
	free(t);
	free(dsn_id);
}

/* Backoff doubles per attempt and never passes retry_max (300 s + 10%). */
static void
test_backoff_capped(void **state)
{
	struct fixture *f = *state;
	const char *const rcpts[] = {"later-2@dest.test", NULL};
	struct queue_result res;
	struct spool_env e;
	time_t before = time(NULL), after;

	put(f, "A00000000002", "alice@remote.test", rcpts, before, 6, 0, 0);
	put(f, "A00000000003", "alice@remote.test", rcpts, before, 2, 0, 0);
	run(f, 0, &res);
	after = time(NULL);
	assert_int_equal(res.deferred, 2);
	assert_int_equal(res.remaining, 2);
	assert_int_equal(res.delivered + res.failed, 0);
	get(f, "A00000000002", &e);
	assert_int_equal(e.attempts, 7);
	assert_next_try(&e, before, after, 270, 330);
	spool_env_free(&e);
	get(f, "A00000000003", &e);
	assert_int_equal(e.attempts, 3);
	assert_next_try(&e, before, after, 270, 330);      /* 100 * 2^2 = 400: 300 */
	spool_env_free(&e);
	/* Not due yet: left alone, but counted as remaining. */
	run(f, 0, &res);
	assert_int_equal(res.remaining, 2);
	assert_int_equal(res.deferred, 0);
	get(f, "A00000000002", &e);
	assert_int_equal(e.attempts, 7);
	spool_env_free(&e);
}

/* SPEC 8, T99: past the lifetime, a DSN; never one for <>. */
static void
test_expiry(void **state)
{
	struct fixture *f = *state;
	const char *const rcpts[] = {"later-4@dest.test", "ok-4@dest.test", NULL};
	const char *const known[] = {"A00000000004", "A00000000005", "A00000000006", NULL};
	struct queue_result res;
	struct spool_env dsn;
	time_t old = time(NULL) - 3600 - 10;
	char *dsn_id, *log;

	put(f, "A00000000004", "bob@remote.test", rcpts, old, 3, 0, 0);
	put(f, "A00000000005", "", rcpts, old, 3, 0, 0);
	/* Just inside the lifetime: only deferred. */
	put(f, "A00000000006", "bob@remote.test", rcpts, old + 60, 3, 0, 0);
	run(f, 0, &res);
	assert_int_equal(res.delivered, 3);
	assert_int_equal(res.deferred, 1);
	assert_int_equal(res.remaining, 1);
	assert_false(exists(f, "A00000000004"));      /* every recipient final */
	assert_false(exists(f, "A00000000005"));
	assert_true(exists(f, "A00000000006"));
	/* One DSN, for bob's expired message only. */
	dsn_id = other_id(f, known);
	assert_non_null(dsn_id);
	get(f, dsn_id, &dsn);
	assert_string_equal(dsn.rcpts[0].addr, "bob@remote.test");
	spool_env_free(&dsn);
	{
		const char *const known2[] = {"A00000000004", "A00000000005", "A00000000006",
		    dsn_id, NULL};
		char *second = other_id(f, known2);

		assert_null(second);
	}
	log = file_text(f->log);
	assert_non_null(strstr(log, "A00000000004: to=<later-4@dest.test>, relay=none, "));
	assert_non_null(strstr(log, "status=expired (554 4.4.7 message expired after 3600 s "
	    "in the queue (lifetime); last: 451 4.2.0 mailbox busy"));
	free(log);
	free(dsn_id);
}

/* Held messages are skipped, even when forced; not-due ones wait unless forced. */
static void
test_held_and_not_due(void **state)
{
	struct fixture *f = *state;
	const char *const rcpts[] = {"ok-7@dest.test", NULL};
	struct queue_result res;
	struct spool_env e;
	time_t now = time(NULL);
	char *t;

	put(f, "A00000000007", "alice@remote.test", rcpts, now, 0, 0, 1);
	put(f, "A00000000008", "alice@remote.test",
	    (const char *const[]){"ok-8@dest.test", NULL}, now, 1, now + 1000, 0);
	run(f, 0, &res);
	assert_int_equal(res.skipped, 1);
	assert_int_equal(res.remaining, 1);      /* the held one does not count */
	assert_int_equal(res.delivered, 0);
	t = file_text(f->transcript);
	assert_string_equal(t, "");              /* nobody was called */
	free(t);
	run(f, 1, &res);
	assert_int_equal(res.skipped, 1);
	assert_int_equal(res.delivered, 1);
	assert_int_equal(res.remaining, 0);
	assert_false(exists(f, "A00000000008"));
	get(f, "A00000000007", &e);
	assert_int_equal(e.hold, 1);
	assert_int_equal(e.attempts, 0);
	assert_int_equal(e.rcpts[0].state, RCPT_PENDING);
	spool_env_free(&e);
	t = file_text(f->transcript);
	assert_null(strstr(t, "ok-7@"));
	free(t);
	/* Released, it goes. */
	{
		char why[256];

		assert_int_equal(queue_operate(f->c, QOP_RELEASE, "A00000000007", why,
		    sizeof(why)), 0);
	}
	run(f, 0, &res);
	assert_int_equal(res.delivered, 1);
	assert_false(exists(f, "A00000000007"));
}

/* T87: a smarthost nobody answers for defers; no bounce before the lifetime. */
static void
test_unreachable_defers(void **state)
{
	struct fixture *f = *state;
	const char *const rcpts[] = {"ok-9@dest.test", "never-9@dest.test", NULL};
	const char *const known[] = {"A00000000009", NULL};
	struct queue_result res;
	struct spool_env e;
	struct conf *dead;
	int port, lfd = listen_local(&port);

	close(lfd);          /* nothing listens on port now */
	dead = load_conf(f, port);
	f->q.conf = dead;
	put(f, "A00000000009", "alice@remote.test", rcpts, time(NULL), 0, 0, 0);
	run(f, 0, &res);
	f->q.conf = f->c;
	conf_free(dead);
	assert_int_equal(res.delivered + res.failed, 0);
	assert_int_equal(res.deferred, 1);
	get(f, "A00000000009", &e);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(e.rcpts[i].state, RCPT_DEFERRED);
		assert_non_null(strstr(e.rcpts[i].last, "451 4.4.1"));
	}
	spool_env_free(&e);
	assert_null(other_id(f, known));         /* no DSN */
}

/* Policy queue: programs run from the queue; their exit status decides. */
static void
test_programs_and_expansion(void **state)
{
	struct fixture *f = *state;
	const char *const rcpts[] = {"p0@example.com", "p75@example.com", "p67@example.com",
	    "fwd@example.com", NULL};
	struct queue_result res;
	struct spool_env e;
	char *log;

	put(f, "A0000000000A", "alice@remote.test", rcpts, time(NULL), 0, 0, 0);
	run(f, 0, &res);
	get(f, "A0000000000A", &e);
	assert_int_equal(rcpt(&e, "p0@example.com")->state, RCPT_DELIVERED);
	assert_int_equal(rcpt(&e, "p75@example.com")->state, RCPT_DEFERRED);
	assert_true(strncmp(rcpt(&e, "p75@example.com")->last, "451 4.3.0", 9) == 0);
	assert_int_equal(rcpt(&e, "p67@example.com")->state, RCPT_BOUNCED);
	assert_true(strncmp(rcpt(&e, "p67@example.com")->last, "550 5.1.1", 9) == 0);
	/* An address alias: its targets become recipients of their own. */
	assert_int_equal(rcpt(&e, "fwd@example.com")->state, RCPT_DELIVERED);
	assert_int_equal(rcpt(&e, "ok-a@dest.test")->state, RCPT_DELIVERED);
	assert_string_equal(rcpt(&e, "ok-a@dest.test")->orig, "fwd@example.com");
	assert_int_equal(rcpt(&e, "later-a@dest.test")->state, RCPT_DEFERRED);
	/* p0 and ok-a delivered; the expansion is not counted as a delivery. */
	assert_int_equal(res.delivered, 2);
	assert_int_equal(res.failed, 1);
	spool_env_free(&e);
	log = file_text(f->log);
	{
		/* Postfix's line, by pipe, relay= the alias: what pflogsumm reads. */
		char *at = strstr(log, "to=<p0@example.com>, relay=p0, delay="), *bol, *eol;

		assert_non_null(at);
		for (bol = at; bol > log && bol[-1] != '\n'; bol--)
			;
		eol = strchr(at, '\n');
		assert_non_null(eol);
		*eol = '\0';
		assert_non_null(strstr(bol, " undersmtpd-unit/pipe["));
		assert_non_null(strstr(at, ", delays=0/"));
		assert_non_null(strstr(at, ", dsn=2.0.0, status=sent (250 "));
	}
	free(log);
	/* Retried: p0 is not run again; p75 is. */
	run(f, 1, &res);
	get(f, "A0000000000A", &e);
	assert_int_equal(rcpt(&e, "p0@example.com")->attempts, 1);
	assert_int_equal(rcpt(&e, "p75@example.com")->attempts, 2);
	spool_env_free(&e);
}

/* queue_run_with: 0 when nothing is left to retry, 75 when something is. */
static void
test_run_with_status(void **state)
{
	struct fixture *f = *state;
	struct queue_result res;

	put(f, "A0000000000B", "alice@remote.test",
	    (const char *const[]){"ok-b@dest.test", NULL}, time(NULL), 0, 0, 0);
	assert_int_equal(queue_run_with(f->c, &f->q.dctx, 0, 0), 0);
	assert_false(exists(f, "A0000000000B"));
	put(f, "A0000000000C", "alice@remote.test",
	    (const char *const[]){"later-c@dest.test", NULL}, time(NULL), 0, 0, 0);
	assert_int_equal(queue_run_with(f->c, &f->q.dctx, 0, 0), 75);
	/* Another runner holding the run lock: -1 at once. */
	{
		char path[256], x;
		int locked[2], done[2];
		pid_t pid;

		snprintf(path, sizeof(path), "%s/spool/run.lock", f->dir);
		assert_int_equal(pipe(locked), 0);
		assert_int_equal(pipe(done), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int fd = open(path, O_RDWR | O_CREAT, 0600);

			if (fd < 0 || flock(fd, LOCK_EX) < 0 || write(locked[1], "x", 1) < 0 ||
			    read(done[0], &x, 1) < 0)
				_exit(1);
			_exit(0);
		}
		assert_int_equal(read(locked[0], &x, 1), 1);
		assert_int_equal(queue_run_until_idle(&f->q, 1, &res), -1);
		assert_int_equal(queue_run_with(f->c, &f->q.dctx, 1, 0), 75);
		assert_true(exists(f, "A0000000000C"));
		assert_int_equal(write(done[1], "y", 1), 1);
		assert_int_equal(waitpid(pid, NULL, 0), pid);
		close(locked[0]);
		close(locked[1]);
		close(done[0]);
		close(done[1]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_per_recipient_outcomes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backoff_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_and_not_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable_defers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_programs_and_expansion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_with_status, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
