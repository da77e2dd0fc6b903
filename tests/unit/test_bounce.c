/*
 * test_bounce.c - bounce.c: the enhanced status code taken from a reply, and
 * the RFC 3464 DSN bounce_create() spools - read back with spool.h - from <>
 * to the original sender, never for a message from <> (T91, T92, T99).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>

#include "bounce.h"
#include "notice.h"
#include "spool.h"
#include "unit.h"

struct fixture {
	char dir[64];
	struct conf c;
	struct spool_env env;     /* the original message's envelope */
	int msgfd;                /* and its file */
};

static const char original[] =
    "Received: from client.example.org ([192.0.2.1])\n"
    "\tby mx.example.com (undersmtpd) with ESMTP id 0123456789AB; "
    "Mon, 1 Dec 2025 10:00:00 +0000\n"
    "From: Alice <alice@example.org>\n"
    "To: bob@example.net\n"
    "Subject: quarterly figures\n"
    "Message-ID: <m1@example.org>\n"
    "\n"
    "SECRET BODY LINE\n"
    "X-Not-A-Header: in the body\n";

/* orig_file - the original message in a file of the fixture's directory. */
static int
orig_file(struct fixture *f, const char *text, size_t len)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/original.msg", f->dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	return fd;
}

static void
add(struct spool_env *e, const char *addr, const char *orig, enum rcpt_state st,
    const char *last)
{
	assert_int_equal(spool_add_rcpt(e, addr, orig), 0);
	e->rcpts[e->nrcpts - 1].state = st;
	str_copy(e->rcpts[e->nrcpts - 1].last, SPOOL_REPLY_MAX, last);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char why[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/undersmtpd-bounce-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->c.hostname = "mx.example.com";
	f->c.spool_dir = f->dir;
	if (spool_prepare_top(&f->c, getuid(), getgid(), why, sizeof(why)) < 0 ||
	    spool_prepare(&f->c, why, sizeof(why)) < 0) {
		fprintf(stderr, "spool: %s\n", why);
		return -1;
	}
	str_copy(f->env.id, sizeof(f->env.id), "0123456789AB");
	f->env.created = 1764583200;
	f->env.next_try = f->env.created;
	str_copy(f->env.sender, sizeof(f->env.sender), "alice@example.org");
	str_copy(f->env.client, sizeof(f->env.client), "192.0.2.1");
	str_copy(f->env.helo, sizeof(f->env.helo), "client.example.org");
	f->env.size = sizeof(original) - 1;
	f->msgfd = orig_file(f, original, sizeof(original) - 1);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	close(f->msgfd);
	spool_env_free(&f->env);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static size_t
count_files(const char *dir, const char *sub)
{
	char cmd[256], out[32];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls -A '%s/%s' | wc -l", dir, sub);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, sizeof(out), p));
	pclose(p);
	return (size_t)atol(out);
}

/* the_dsn - the one message in the queue: its envelope and its text. */
static char *
the_dsn(struct fixture *f, struct spool_env *dsn, size_t *len)
{
	char **ids = spool_ids(&f->c), why[256], path[4096];
	FILE *fp;
	char *text = calloc(1, 1 << 20);

	assert_non_null(ids[0]);
	assert_null(ids[1]);
	assert_int_equal(spool_read(&f->c, ids[0], dsn, why, sizeof(why)), 0);
	spool_path(&f->c, "queue", ids[0], ".msg", path, sizeof(path));
	spool_ids_free(ids);
	fp = fopen(path, "r");
	assert_non_null(fp);
	*len = fread(text, 1, (1 << 20) - 1, fp);
	fclose(fp);
	return text;
}

static void
test_status_from_reply(void **state)
{
	static const struct {
		const char *reply, *want;
	} cases[] = {
		{"550 5.1.1 <bob@example.net>: no such user", "5.1.1"},
		{"550 5.1.1", "5.1.1"},
		{"550-5.7.1 first line of several", "5.7.1"},
		{"451 4.4.7 expired", "4.4.7"},
		{"554 4.4.7 message expired after 432000 s in the queue", "4.4.7"},
		/* RFC 3463 2: subject and detail are 1*3digit, known or not. */
		{"550 5.999.1 a subject no RFC names", "5.999.1"},
		{"550 5.100.100 x", "5.100.100"},
		/* No code, or a malformed one: the fallback, never garbage in Status:. */
		{"550 no such user here", "9.9.9"},
		{"550 5.1.1.1 four parts", "9.9.9"},
		{"550 5...1 empty parts", "9.9.9"},
		{"550 5..1 x", "9.9.9"},
		{"550 5.1 two parts", "9.9.9"},
		{"550 5.1. x", "9.9.9"},
		{"550 5.1234.1 subject too long", "9.9.9"},
		{"550 5.1.1234 detail too long", "9.9.9"},
		{"550 5.0000000000.1 x", "9.9.9"},
		{"550 5.1.1x glued text", "9.9.9"},
		{"550 6.1.1 no such class", "9.9.9"},
		{"250 2.0.0 a success is not a failure's status", "9.9.9"},
		{"550 5.1.123456789012345 x", "9.9.9"},
		{"550 ", "9.9.9"},
		{"550", "9.9.9"},
		{"", "9.9.9"},
	};
	char out[16];
	int wrong = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(out, 'Z', sizeof(out));
		bounce_status(cases[i].reply, "9.9.9", out);
		if (strcmp(out, cases[i].want) != 0) {
			print_error("bounce_status(\"%s\") = \"%s\", want \"%s\"\n",
			    cases[i].reply, out, cases[i].want);
			wrong++;
		}
	}
	assert_int_equal(wrong, 0);
}

static void
test_dsn_for_failed_recipients(void **state)
{
	/* T91/T92: one DSN, from <> to the sender, for the failed recipients only. */
	struct fixture *f = *state;
	struct spool_env dsn;
	char *text, *p, boundary[128], want[256];
	size_t len;
	const char *q;

	add(&f->env, "bob@example.net", "Bob@Example.NET", RCPT_FAILED,
	    "550 5.1.1 <bob@example.net>: no such user");
	add(&f->env, "carol@example.net", "carol@example.net", RCPT_DELIVERED, "250 2.0.0 ok");
	add(&f->env, "dave@example.net", "dave@example.net", RCPT_FAILED,
	    "554 transaction failed");
	add(&f->env, "erin@example.net", "erin@example.net", RCPT_DEFERRED,
	    "451 4.3.0 try later");
	assert_int_equal(bounce_create(&f->c, &f->env, f->msgfd), 0);
	assert_int_equal(count_files(f->dir, "tmp"), 0);
	text = the_dsn(f, &dsn, &len);
	/* The envelope: null sender, to the original sender, marked as a bounce. */
	assert_string_equal(dsn.sender, "");
	assert_int_equal(dsn.bounce, 1);
	assert_int_equal(dsn.nrcpts, 1);
	assert_string_equal(dsn.rcpts[0].addr, "alice@example.org");
	assert_int_equal(dsn.rcpts[0].state, RCPT_PENDING);
	assert_true(dsn.size == len);
	assert_int_equal(dsn.smtputf8, 0);
	assert_string_not_equal(dsn.id, f->env.id);
	/* The header. */
	assert_non_null(strstr(text, "\nFrom: Mail Delivery System "
	    "<MAILER-DAEMON@mx.example.com>\n"));
	assert_non_null(strstr(text, "\nTo: <alice@example.org>\n"));
	assert_non_null(strstr(text, "\nAuto-Submitted: auto-replied\n"));
	assert_non_null(strstr(text, "\nMIME-Version: 1.0\n"));
	assert_non_null(strstr(text, "\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\n\tboundary=\""));
	q = strstr(text, "boundary=\"") + 10;
	assert_true(strchr(q, '"') - q < (long)sizeof(boundary));
	snprintf(boundary, sizeof(boundary), "%.*s", (int)(strchr(q, '"') - q), q);
	/* Three parts, then the closing delimiter at the very end. */
	snprintf(want, sizeof(want), "\n--%s\nContent-Description: Notification\n"
	    "Content-Type: text/plain; charset=us-ascii\n\n", boundary);
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want), "\n--%s\nContent-Description: Delivery report\n"
	    "Content-Type: message/delivery-status\n\n", boundary);
	assert_non_null(p = strstr(text, want));
	snprintf(want, sizeof(want), "\n--%s\nContent-Description: Undelivered Message "
	    "Headers\nContent-Type: text/rfc822-headers\n\n", boundary);
	assert_true(strstr(text, want) > p);
	snprintf(want, sizeof(want), "\n--%s--\n", boundary);
	assert_int_equal(strcmp(text + len - strlen(want), want), 0);
	/* The machine-readable part: per-message fields, then one block per failure. */
	assert_non_null(strstr(p, "\n\nReporting-MTA: dns; mx.example.com\n"
	    "X-Undersmtpd-Queue-ID: 0123456789AB\nArrival-Date: "));
	assert_non_null(strstr(p, "\n\nFinal-Recipient: rfc822; bob@example.net\n"
	    "Original-Recipient: rfc822; Bob@Example.NET\n"
	    "Action: failed\nStatus: 5.1.1\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: no such user\n"));
	assert_non_null(strstr(p, "\n\nFinal-Recipient: rfc822; dave@example.net\n"
	    "Action: failed\nStatus: 5.0.0\n"
	    "Diagnostic-Code: smtp; 554 transaction failed\n"));
	/* Neither the delivered nor the deferred recipient is reported. */
	assert_null(strstr(text, "carol@example.net"));
	assert_null(strstr(text, "erin@example.net"));
	/* The human-readable part names each failure with its reply. */
	assert_non_null(strstr(text, "\n<bob@example.net>: 550 5.1.1 <bob@example.net>: "
	    "no such user\n"));
	/* The original's header section, and never its body. */
	assert_non_null(strstr(text, "\nSubject: quarterly figures\n"
	    "Message-ID: <m1@example.org>\n"));
	assert_non_null(strstr(text, "\nReceived: from client.example.org ([192.0.2.1])\n"
	    "\tby mx.example.com"));
	assert_null(strstr(text, "SECRET BODY LINE"));
	assert_null(strstr(text, "X-Not-A-Header"));
	free(text);
	spool_env_free(&dsn);
}

static void
test_no_bounce_of_a_bounce(void **state)
{
	/* T91/T99: a message from <> is never bounced; nothing is written at all. */
	struct fixture *f = *state;

	add(&f->env, "bob@example.net", "bob@example.net", RCPT_FAILED,
	    "550 5.1.1 no such user");
	f->env.sender[0] = '\0';
	assert_int_equal(bounce_create(&f->c, &f->env, f->msgfd), 0);
	assert_int_equal(count_files(f->dir, "queue"), 0);
	assert_int_equal(count_files(f->dir, "tmp"), 0);
	/* Nor a message marked as a DSN, whatever its sender field says. */
	str_copy(f->env.sender, sizeof(f->env.sender), "alice@example.org");
	f->env.bounce = 1;
	assert_int_equal(bounce_create(&f->c, &f->env, f->msgfd), 0);
	assert_int_equal(count_files(f->dir, "queue"), 0);
	assert_int_equal(count_files(f->dir, "tmp"), 0);
}

static void
test_headers_copied_bounded(void **state)
{
	/* A header section without an end: at most 64 KiB of it, and a closed part. */
	struct fixture *f = *state;
	struct spool_env dsn;
	size_t n = 0, len;
	char *big = malloc(300000), *text, *start, *end;

	while (n < 200000)
		n += (size_t)sprintf(big + n, "X-Filler-%06zu: %s\n", n, "abcdefghij");
	memcpy(big + n, "Subject: no end", 15);   /* no LF, no empty line */
	n += 15;
	close(f->msgfd);
	f->msgfd = orig_file(f, big, n);
	add(&f->env, "bob@example.net", "bob@example.net", RCPT_FAILED, "550 5.1.1 x");
	assert_int_equal(bounce_create(&f->c, &f->env, f->msgfd), 0);
	text = the_dsn(f, &dsn, &len);
	start = strstr(text, "Content-Type: text/rfc822-headers\n\n");
	assert_non_null(start);
	start += 35;
	end = strstr(start, "\n\n--");
	assert_non_null(end);
	assert_true(end - start <= 64 * 1024);
	assert_true(end - start >= 60 * 1024);
	assert_memory_equal(start, big, 1000);
	free(text);
	spool_env_free(&dsn);
	spool_env_free(&f->env);
	memset(&f->env, 0, sizeof(f->env));
	/* A short header without its final LF still gets one before the delimiter. */
	close(f->msgfd);
	f->msgfd = orig_file(f, "Subject: no end", 15);
	str_copy(f->env.id, sizeof(f->env.id), "0123456789AC");
	str_copy(f->env.sender, sizeof(f->env.sender), "alice@example.org");
	add(&f->env, "bob@example.net", "bob@example.net", RCPT_FAILED, "550 5.1.1 x");
	{
		char **ids = spool_ids(&f->c);

		assert_int_equal(spool_remove(&f->c, ids[0], 0), 0);
		spool_ids_free(ids);
	}
	assert_int_equal(bounce_create(&f->c, &f->env, f->msgfd), 0);
	text = the_dsn(f, &dsn, &len);
	assert_non_null(strstr(text, "text/rfc822-headers\n\nSubject: no end\n\n--"));
	free(text);
	spool_env_free(&dsn);
	free(big);
}

static void
test_utf8_sender(void **state)
{
	/* A non-ASCII sender can only be reached with SMTPUTF8. */
	struct fixture *f = *state;
	struct spool_env dsn;
	size_t len;
	char *text;

	str_copy(f->env.sender, sizeof(f->env.sender), "j\xc3\xb6rg@example.org");
	add(&f->env, "bob@example.net", "bob@example.net", RCPT_FAILED, "550 5.1.1 x");
	assert_int_equal(bounce_create(&f->c, &f->env, f->msgfd), 0);
	text = the_dsn(f, &dsn, &len);
	assert_int_equal(dsn.smtputf8, 1);
	assert_string_equal(dsn.rcpts[0].addr, "j\xc3\xb6rg@example.org");
	free(text);
	spool_env_free(&dsn);
}

static void
test_write_failure_leaves_nothing(void **state)
{
	/* T68: the DSN cannot be written: -1 with errno, no half DSN anywhere. */
	struct fixture *f = *state;
	struct rlimit old, low;
	int rc, saved;

	add(&f->env, "bob@example.net", "bob@example.net", RCPT_FAILED, "550 5.1.1 x");
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	low = old;
	low.rlim_cur = 512;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
	rc = bounce_create(&f->c, &f->env, f->msgfd);
	saved = errno;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(rc, -1);
	assert_int_equal(saved, EFBIG);
	assert_int_equal(count_files(f->dir, "tmp"), 0);
	assert_int_equal(count_files(f->dir, "queue"), 0);
	/* No spool to write in: -1 with errno too. */
	{
		struct conf broken = f->c;
		char nodir[128];

		snprintf(nodir, sizeof(nodir), "%s/absent", f->dir);
		broken.spool_dir = nodir;
		assert_int_equal(bounce_create(&broken, &f->env, f->msgfd), -1);
		assert_int_equal(errno, ENOENT);
	}
}

/*
 * test_notice_once_per_interval - notice.c (issue 20): a failure notice to
 * the notify address, from <>, with the reason, the alias, its line and
 * command, the envelope and the header; the next one for the same alias and
 * reason is held back within notify_interval, another reason or alias goes;
 * none for a message from <>, none without notify; the count of held-back
 * notices is told in the next one.
 */
static void
test_notice_once_per_interval(void **state)
{
	struct fixture *f = *state;
	struct pipe_conf pc;
	struct notice_facts nf = {"support", "/etc/aliases:3", "/usr/bin/rt-mailgate --queue x",
	    "0123456789AB", "alice@example.org", "support@mx.example.com",
	    "550 5.1.1 user unknown: exit 67 (EX_NOUSER)", 1764583200};
	struct spool_env dsn;
	size_t len;
	char *text;
	char path[128];
	int fd;

	memset(&pc, 0, sizeof(pc));
	pc.notify = "rt-admin";
	pc.notify_sender = 0;
	pc.notify_interval = 3600;
	assert_int_equal(notice_send(&f->c, &pc, &nf, f->msgfd), 1);
	text = the_dsn(f, &dsn, &len);
	assert_string_equal(dsn.sender, "");
	assert_int_equal(dsn.bounce, 1);
	assert_string_equal(dsn.rcpts[0].addr, "rt-admin@mx.example.com");
	assert_non_null(strstr(text, "Subject: undersmtpd: alias support failed: 550 5.1.1"));
	assert_non_null(strstr(text, "Alias:      support, /etc/aliases:3\n"));
	assert_non_null(strstr(text, "Command:    |/usr/bin/rt-mailgate --queue x\n"));
	assert_non_null(strstr(text, "from <alice@example.org> to <support@mx.example.com>"));
	assert_non_null(strstr(text, "is not told (notify_sender = no)"));
	assert_non_null(strstr(text, "Subject: quarterly figures\n"));
	assert_null(strstr(text, "SECRET BODY LINE"));           /* the header only */
	free(text);
	spool_env_free(&dsn);
	/* The same again: held back.  Another reason, another alias: they go. */
	assert_int_equal(notice_send(&f->c, &pc, &nf, f->msgfd), 0);
	assert_int_equal(notice_send(&f->c, &pc, &nf, f->msgfd), 0);
	nf.reply = "554 5.4.7 message expired";
	assert_int_equal(notice_send(&f->c, &pc, &nf, f->msgfd), 1);
	nf.alias = "billing";
	assert_int_equal(notice_send(&f->c, &pc, &nf, f->msgfd), 1);
	assert_int_equal(count_files(f->dir, "queue"), 6);
	/* Never about a message from <>; nothing without notify. */
	nf.sender = "";
	assert_int_equal(notice_send(&f->c, &pc, &nf, f->msgfd), 0);
	nf.sender = "alice@example.org";
	pc.notify = NULL;
	assert_int_equal(notice_send(&f->c, &pc, &nf, f->msgfd), 0);
	assert_int_equal(count_files(f->dir, "queue"), 6);
	/* The interval is over (the record moved back): the two held back are told. */
	pc.notify = "rt-admin@example.net";
	nf.alias = "support";
	nf.reply = "550 5.1.1 again";
	pc.notify_interval = 0;
	assert_int_equal(notice_send(&f->c, &pc, &nf, f->msgfd), 1);
	snprintf(path, sizeof(path), "%s/notices", f->dir);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	close(fd);
	{
		char **ids = spool_ids(&f->c), why[256], mpath[4096];
		int found = 0;

		for (size_t i = 0; ids[i] != NULL; i++) {
			struct spool_env e;
			char *t;

			assert_int_equal(spool_read(&f->c, ids[i], &e, why, sizeof(why)), 0);
			if (strcmp(e.rcpts[0].addr, "rt-admin@example.net") == 0) {
				spool_path(&f->c, "queue", ids[i], ".msg", mpath, sizeof(mpath));
				t = file_text(mpath);
				assert_non_null(strstr(t, "Before it:  2 notices like this one were "
				    "not sent"));
				free(t);
				found = 1;
			}
			spool_env_free(&e);
		}
		spool_ids_free(ids);
		assert_true(found);
	}
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_from_reply),
		T(test_dsn_for_failed_recipients),
		T(test_no_bounce_of_a_bounce),
		T(test_headers_copied_bounded),
		T(test_utf8_sender),
		T(test_write_failure_leaves_nothing),
		T(test_notice_once_per_interval),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
