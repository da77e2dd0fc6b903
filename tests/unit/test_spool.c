/* test_spool.c - spool.c: the envelope format, commit, locks, quarantine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "bounce.h"
#include "spool.h"
#include "unit.h"

static void
fill(struct spool_env *e)
{
	memset(e, 0, sizeof(*e));
	strcpy(e->id, "4F2A9C01B3D7");
	e->created = 1763781234;
	e->next_try = 1763781294;
	e->attempts = 2;
	strcpy(e->sender, "alice@example.org");
	e->size = 1234;
	e->smtputf8 = 1;
	strcpy(e->client, "192.0.2.1");
	strcpy(e->helo, "client with spaces\tand=plus+");
	for (int i = 0; i < 32; i++)
		e->digest[i] = (unsigned char)(i * 7);
	spool_add_rcpt(e, "bob@example.net", "Bob@Example.NET");
	spool_add_rcpt(e, "\"odd local\"@example.net", "x@y");
	e->rcpts[1].state = RCPT_DEFERRED;
	e->rcpts[1].attempts = 3;
	strcpy(e->rcpts[1].last, "451 4.3.0 try later\r\n=+");
}

/* new_spool - a prepared spool in dir (a mkdtemp template), c pointing at it. */
static void
new_spool(char *dir, struct conf *c)
{
	char why[256];

	assert_non_null(mkdtemp(dir));
	memset(c, 0, sizeof(*c));
	c->spool_dir = dir;
	assert_int_equal(spool_prepare_top(c, getuid(), getgid(), why, sizeof(why)), 0);
	assert_int_equal(spool_prepare(c, why, sizeof(why)), 0);
}

static void
remove_spool(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static void
test_roundtrip(void **state)
{
	struct spool_env a, b;
	char why[256];
	size_t len;
	char *text;

	(void)state;
	fill(&a);
	text = spool_format_env(&a, &len);
	assert_non_null(strstr(text, "undersmtpd-envelope 1\nid 4F2A9C01B3D7\n"));
	assert_non_null(strstr(text, "helo client+20with+20spaces+09and+3Dplus+2B\n"));
	assert_null(memchr(text, '\r', len));
	assert_int_equal(spool_parse_env(text, len, &b, why, sizeof(why)), 0);
	assert_string_equal(b.id, a.id);
	assert_true(b.created == a.created && b.next_try == a.next_try);
	assert_string_equal(b.helo, a.helo);
	assert_memory_equal(b.digest, a.digest, 32);
	assert_int_equal(b.nrcpts, 2);
	assert_string_equal(b.rcpts[0].orig, "Bob@Example.NET");
	assert_string_equal(b.rcpts[1].addr, "\"odd local\"@example.net");
	assert_int_equal(b.rcpts[1].state, RCPT_DEFERRED);
	assert_string_equal(b.rcpts[1].last, "451 4.3.0 try later\r\n=+");
	/* The null sender is "+" on disk and "" again after parsing. */
	a.sender[0] = '\0';
	free(text);
	text = spool_format_env(&a, &len);
	assert_non_null(strstr(text, "\nsender +\n"));
	spool_env_free(&b);
	assert_int_equal(spool_parse_env(text, len, &b, why, sizeof(why)), 0);
	assert_string_equal(b.sender, "");
	spool_env_free(&b);
	spool_env_free(&a);
	free(text);
}

static void
test_damaged(void **state)
{
	static const char *const bad[] = {
		"",
		"undersmtpd-envelope 2\nid X\nrcpt pending 0 a@b a@b +\nend\n",
		"garbage\n",
		"undersmtpd-envelope 1\nid X\nrcpt pending 0 a@b a@b +\n",          /* no end */
		"undersmtpd-envelope 1\nid X\nrcpt pending 0 a@b a@b +\nend",        /* no LF */
		"undersmtpd-envelope 1\nid X\nrcpt pending 0 a@b a@b +\nend\nmore\n",
		"undersmtpd-envelope 1\nid X\nbogus 1\nrcpt pending 0 a@b a@b +\nend\n",
		"undersmtpd-envelope 1\nid X\nrcpt sideways 0 a@b a@b +\nend\n",
		"undersmtpd-envelope 1\nid X\nrcpt pending -1 a@b a@b +\nend\n",
		"undersmtpd-envelope 1\nid X\nrcpt pending 0 a@b a@b\nend\n",
		"undersmtpd-envelope 1\nid X\nrcpt pending 0 a+ZZb a@b +\nend\n",
		"undersmtpd-envelope 1\nid X\nrcpt pending 0 a+00b a@b +\nend\n",  /* NUL */
		"undersmtpd-envelope 1\nid X\nsize 12x\nrcpt pending 0 a@b a@b +\nend\n",
		"undersmtpd-envelope 1\nid X\nend\n",                               /* no rcpt */
		"undersmtpd-envelope 1\nrcpt pending 0 a@b a@b +\nend\n",           /* no id */
		"undersmtpd-envelope 1\nid X\ndigest 12\nrcpt pending 0 a@b a@b +\nend\n",
	};
	struct spool_env e;
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		assert_int_equal(spool_parse_env(bad[i], strlen(bad[i]), &e, why,
		    sizeof(why)), -1);
		assert_true(why[0] != '\0');
	}
	{
		const char *good = "undersmtpd-envelope 1\nid X\nrcpt pending 0 a@b a@b +\nend\n";

		assert_int_equal(spool_parse_env(good, strlen(good), &e, why, sizeof(why)), 0);
	}
	spool_env_free(&e);
}

static void
test_commit_lock_remove_quarantine(void **state)
{
	char dir[] = "/tmp/undersmtpd-spool-XXXXXX", path[4096], why[256];
	struct conf c;
	struct spool_env a, b;
	int fd, lock, lock2;

	(void)state;
	new_spool(dir, &c);
	fill(&a);
	spool_path(&c, "tmp", a.id, ".msg", path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "Subject: x\n\nbody\n", 17), 17);
	assert_int_equal(spool_commit(&c, fd, &a), 0);
	close(fd);
	assert_int_not_equal(access(path, F_OK), 0);          /* tmp file gone */
	spool_path(&c, "tmp", a.id, ".env", why, sizeof(why));
	assert_int_not_equal(access(why, F_OK), 0);           /* and its envelope */
	assert_int_equal(spool_read(&c, a.id, &b, why, sizeof(why)), 0);
	assert_int_equal(b.nrcpts, 2);
	spool_env_free(&b);
	/* The same id again never replaces a committed message. */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_int_equal(spool_commit(&c, fd, &a), -1);
	assert_int_equal(errno, EEXIST);
	close(fd);
	assert_int_not_equal(access(path, F_OK), 0);          /* nothing left in tmp/ */
	spool_path(&c, "tmp", a.id, ".env", why, sizeof(why));
	assert_int_not_equal(access(why, F_OK), 0);
	/* One lock holder at a time (T62). */
	lock = spool_lock(&c, a.id);
	assert_true(lock >= 0);
	lock2 = spool_lock(&c, a.id);
	assert_int_equal(lock2, -1);
	assert_int_equal(errno, EWOULDBLOCK);
	a.hold = 1;
	assert_int_equal(spool_update(&c, &a), 0);
	assert_int_equal(spool_read(&c, a.id, &b, why, sizeof(why)), 0);
	assert_int_equal(b.hold, 1);
	spool_env_free(&b);
	close(lock);
	{
		char **ids = spool_ids(&c);

		assert_string_equal(ids[0], a.id);
		assert_null(ids[1]);
		spool_ids_free(ids);
	}
	spool_quarantine(&c, a.id, "test reason");
	spool_path(&c, "bad", a.id, ".why", path, sizeof(path));
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(spool_read(&c, a.id, &b, why, sizeof(why)), -1);
	spool_env_free(&a);
	remove_spool(dir);
}

/* make_file - an empty file at spool_dir/sub/name, age seconds old. */
static void
make_file(const struct conf *c, const char *sub, const char *name, time_t age)
{
	char path[4096];
	struct timespec when[2];
	int fd;

	spool_path(c, sub, NULL, NULL, path, sizeof(path));
	strncat(path, "/", sizeof(path) - strlen(path) - 1);
	strncat(path, name, sizeof(path) - strlen(path) - 1);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	clock_gettime(CLOCK_REALTIME, &when[0]);
	when[0].tv_sec -= age;
	when[1] = when[0];
	assert_int_equal(futimens(fd, when), 0);
	close(fd);
}

static int
exists(const struct conf *c, const char *sub, const char *name)
{
	char path[4096];

	spool_path(c, sub, NULL, NULL, path, sizeof(path));
	strncat(path, "/", sizeof(path) - strlen(path) - 1);
	strncat(path, name, sizeof(path) - strlen(path) - 1);
	return access(path, F_OK) == 0;
}

/*
 * spool_clean: what a receiver or a commit killed half-way leaves goes after
 * a minute; what may still be in use stays.
 */
static void
test_clean(void **state)
{
	char dir[] = "/tmp/undersmtpd-spool-XXXXXX", path[4096];
	struct conf c;
	int held;

	(void)state;
	new_spool(dir, &c);
	make_file(&c, "tmp", "AAAA.env", 120);       /* a commit that died */
	make_file(&c, "tmp", "BBBB.env", 0);         /* a commit going on */
	make_file(&c, "tmp", "CCCC.msg", 120);       /* a receiver that died */
	make_file(&c, "tmp", "DDDD.msg", 120);       /* a slow receiver, alive */
	make_file(&c, "queue", "EEEE.msg", 120);     /* never committed */
	make_file(&c, "queue", "FFFF.msg", 120);     /* committed */
	make_file(&c, "queue", "FFFF.env", 120);
	spool_path(&c, "tmp", "DDDD", ".msg", path, sizeof(path));
	held = open(path, O_RDONLY);
	assert_true(held >= 0);
	assert_int_equal(flock(held, LOCK_EX), 0);
	spool_clean(&c);
	assert_false(exists(&c, "tmp", "AAAA.env"));
	assert_true(exists(&c, "tmp", "BBBB.env"));
	assert_false(exists(&c, "tmp", "CCCC.msg"));
	assert_true(exists(&c, "tmp", "DDDD.msg"));
	assert_false(exists(&c, "queue", "EEEE.msg"));
	assert_true(exists(&c, "queue", "FFFF.msg"));
	assert_true(exists(&c, "queue", "FFFF.env"));
	close(held);
	remove_spool(dir);
}

static void
test_bounce_status(void **state)
{
	char s[16];

	(void)state;
	bounce_status("550 5.1.1 no such user", "5.0.0", s);
	assert_string_equal(s, "5.1.1");
	bounce_status("554 4.4.7 expired", "5.0.0", s);
	assert_string_equal(s, "4.4.7");
	bounce_status("550 no code here", "5.0.0", s);
	assert_string_equal(s, "5.0.0");
	bounce_status("5", "5.0.0", s);
	assert_string_equal(s, "5.0.0");
	bounce_status("550 5.1.123456789012345 x", "5.0.0", s);
	assert_string_equal(s, "5.0.0");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_damaged),
		cmocka_unit_test(test_commit_lock_remove_quarantine),
		cmocka_unit_test(test_clean),
		cmocka_unit_test(test_bounce_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
