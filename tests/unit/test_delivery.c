/*
 * test_delivery.c - delivery.c: what a pipe alias's program is given and
 * what its outcome means (SPEC 7).  delivery_build() is checked as data
 * (argv with regex captures inside single elements, T40; exactly the
 * documented environment, T47; the pipe user); delivery_run() runs a small
 * recording script directly (launcher_fd -1, as ourselves) and its exit
 * status must come back as the SPEC 7 reply (T70), its standard input as
 * SPEC 7 says, a Delivered-To loop refused without running anything.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>

#include "delivery.h"
#include "spool.h"
#include "unit.h"

static char dir[64];
static struct conf *conf;
static struct aliases *aliases;

static void
put_file(const char *name, const char *text, mode_t mode)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(path, mode), 0);
}

/* read_file - dir/name as a string (malloc'd), NULL when missing. */
static char *
read_file(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return file_text(path);
}

static struct conf *
load_conf(const char *extra)
{
	char text[2048], path[256];
	struct collected diags = {""};
	struct diag d = {collect, &diags, 0};
	struct conf *c;

	snprintf(text, sizeof(text), "hostname = \"mx.example.com\"\n"
	    "local_domains = { \"example.com\" }\nspool_dir = \"%s/spool\"\n"
	    "aliases = \"%s/aliases\"\n%s\n", dir, dir, extra);
	snprintf(path, sizeof(path), "%s/undersmtpd.conf", dir);
	{
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		fputs(text, fp);
		fclose(fp);
	}
	c = conf_load(path, 0, &d);
	if (c == NULL)
		fprintf(stderr, "%s", diags.text);
	assert_non_null(c);
	return c;
}

static int
setup(void **state)
{
	char text[2048], why[512];
	struct collected diags = {""};
	struct diag d = {collect, &diags, 0};

	(void)state;
	strcpy(dir, "/tmp/undersmtpd-delivery-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	/* The program: records argv, environment and input, says and exits as told. */
	snprintf(text, sizeof(text), "#!/bin/sh\n"
	    "d=%s\n"
	    "for a in \"$@\"; do printf '%%s\\n' \"$a\"; done > $d/argv.out\n"
	    "env | grep -v -e '^PWD=' -e '^SHLVL=' -e '^_=' -e '^OLDPWD=' | LC_ALL=C sort "
	    "> $d/env.out\n"
	    "cat > $d/stdin.out\n"
	    "cat $d/say 2>/dev/null\n"
	    "exit $(cat $d/status)\n", dir);
	put_file("prog.sh", text, 0755);
	snprintf(text, sizeof(text),
	    "rec: |%s/prog.sh plain\n"
	    "/^r-(.*)$/: |%s/prog.sh --q=$1 $1 x$1y\n"
	    "/^n-(?<who>[a-z]+)-(\\d+)$/: |%s/prog.sh ${who} $2\n",
	    dir, dir, dir);
	put_file("aliases", text, 0644);
	conf = load_conf("pipe { timeout = 30s }");
	aliases = aliases_load(conf->aliases, geteuid(), &d);
	if (aliases == NULL) {
		fprintf(stderr, "%s", diags.text);
		return -1;
	}
	if (spool_prepare_top(conf, geteuid(), getegid(), why, sizeof(why)) < 0 ||
	    spool_prepare(conf, why, sizeof(why)) < 0) {
		fprintf(stderr, "%s\n", why);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{

	(void)state;
	unsetenv("LD_PRELOAD");         /* were test_environment to stop half-way */
	unsetenv("IFS");
	aliases_free(aliases);
	conf_free(conf);
	return remove_tree(dir);
}

static void
route(const char *address, struct route_result *r)
{
	struct addr a;

	assert_int_equal(addr_parse_plain(address, &a), ADDR_OK);
	route_address(conf, aliases, &a, 0, r);
	if (r->reply.code != 250)
		fail_msg("%s: %d %s", address, r->reply.code, r->reply.text);
	assert_non_null(route_pipe(r));
}

static const struct delivery_values values = {
	"rec+42@example.com", "", "192.0.2.7", "client.test", "QID123", "0123abcd", NULL, NULL,
};

/* T40: a capture full of shell syntax stays inside its one argv element. */
static void
test_argv_captures(void **state)
{
	struct route_result *r = malloc(sizeof(*r));
	struct delivery_command cmd;
	char why[256], want[256];

	(void)state;
	route("\"r-a b;$(touch x)|`id` 'q'\"@example.com", r);
	assert_int_equal(delivery_build(conf, r, &values, 0, 0, &cmd, why, sizeof(why)), 0);
	assert_int_equal(cmd.use_shell, 0);          /* never a shell */
	snprintf(want, sizeof(want), "%s/prog.sh", dir);
	assert_string_equal(cmd.argv[0], want);
	assert_string_equal(cmd.argv[1], "--q=a b;$(touch x)|`id` 'q'");
	assert_string_equal(cmd.argv[2], "a b;$(touch x)|`id` 'q'");
	assert_string_equal(cmd.argv[3], "xa b;$(touch x)|`id` 'q'y");
	assert_null(cmd.argv[4]);
	assert_true(cmd.req.argv == cmd.argv && cmd.req.envp == cmd.envp);
	assert_int_equal(cmd.req.change_user, 0);
	assert_int_equal(cmd.req.timeout, 30);
	delivery_command_free(&cmd);
	/* Named and numbered captures; the sender's case kept (SPEC 13). */
	route("n-Bob-17@example.com", r);
	assert_int_equal(delivery_build(conf, r, &values, 0, 0, &cmd, why, sizeof(why)), 0);
	assert_string_equal(cmd.argv[1], "Bob");
	assert_string_equal(cmd.argv[2], "17");
	assert_null(cmd.argv[3]);
	delivery_command_free(&cmd);
	/* A capture that would be an option on its own is refused here too. */
	route("r-x@example.com", r);
	strcpy(r->caps.num[1], "-oQ/tmp");
	why[0] = '\0';
	assert_int_equal(delivery_build(conf, r, &values, 0, 0, &cmd, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "option"));
	assert_null(cmd.argv[0]);
	delivery_command_free(&cmd);
	free(r);
}

/* T47, SPEC 7: exactly the documented variables, with the envelope's values. */
static void
test_environment(void **state)
{
	static const char *const names[] = {
		"PATH", "HOME", "SHELL", "USER", "LOGNAME", "SENDER", "RECIPIENT",
		"ORIGINAL_RECIPIENT", "LOCAL", "DOMAIN", "EXTENSION", "CLIENT_ADDRESS",
		"CLIENT_HELO", "QUEUE_ID", "DELIVERY_ID", "MATCH_1", "MATCH_2", "MATCH_who",
	};
	struct route_result *r = malloc(sizeof(*r));
	struct delivery_command cmd;
	struct passwd *pw = getpwuid(geteuid());
	char why[256];
	size_t n = 0;

	(void)state;
	setenv("LD_PRELOAD", "/tmp/evil.so", 1);
	setenv("IFS", "x", 1);
	route("n-Bob-17@example.com", r);
	assert_int_equal(delivery_build(conf, r, &values, 0, 0, &cmd, why, sizeof(why)), 0);
	for (; cmd.envp[n] != NULL; n++) {
		size_t k = 0;

		while (k < sizeof(names) / sizeof(names[0]) &&
		    (strncmp(cmd.envp[n], names[k], strlen(names[k])) != 0 ||
		    cmd.envp[n][strlen(names[k])] != '='))
			k++;
		if (k == sizeof(names) / sizeof(names[0]))
			fail_msg("unexpected variable %s", cmd.envp[n]);
	}
	assert_int_equal(n, sizeof(names) / sizeof(names[0]));
	{
		const char *const want[] = {
			"PATH=/usr/local/bin:/usr/bin:/bin", "SENDER=", "RECIPIENT=rec+42@example.com",
			"LOCAL=n-Bob-17", "DOMAIN=example.com", "CLIENT_ADDRESS=192.0.2.7",
			"CLIENT_HELO=client.test", "QUEUE_ID=QID123", "DELIVERY_ID=0123abcd",
			"MATCH_1=Bob", "MATCH_2=17", "MATCH_who=Bob", "EXTENSION=",
		};

		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			int found = 0;

			for (size_t j = 0; cmd.envp[j]; j++)
				found |= strcmp(cmd.envp[j], want[i]) == 0;
			if (!found)
				fail_msg("missing %s", want[i]);
		}
	}
	{
		char user[128];
		int found = 0;

		snprintf(user, sizeof(user), "USER=%s", pw->pw_name);
		for (size_t j = 0; cmd.envp[j]; j++)
			found |= strcmp(cmd.envp[j], user) == 0;
		assert_true(found);
	}
	delivery_command_free(&cmd);
	/* The extension of a sub-address (rt-mailgate --extension). */
	route("rec+42@example.com", r);
	assert_int_equal(delivery_build(conf, r, &values, 0, 0, &cmd, why, sizeof(why)), 0);
	{
		int found = 0;

		for (size_t j = 0; cmd.envp[j]; j++)
			found |= strcmp(cmd.envp[j], "EXTENSION=42") == 0;
		assert_true(found);
		assert_string_equal(cmd.argv[1], "plain");
	}
	delivery_command_free(&cmd);
	unsetenv("LD_PRELOAD");
	unsetenv("IFS");
	free(r);
}

/* SPEC 11: as root, pipe.user - never root, never the spool's owner. */
static void
test_pipe_user(void **state)
{
	struct route_result *r = malloc(sizeof(*r));
	struct delivery_command cmd;
	struct passwd *nobody = getpwnam("nobody");
	struct conf *c;
	char why[256];

	(void)state;
	assert_non_null(nobody);
	route("rec@example.com", r);
	/* Started as root, no pipe.user: nobody, switched to. */
	assert_int_equal(delivery_build(conf, r, &values, 1, 12345, &cmd, why, sizeof(why)), 0);
	assert_int_equal(cmd.req.change_user, 1);
	assert_int_equal(cmd.req.uid, nobody->pw_uid);
	delivery_command_free(&cmd);
	/* nobody owning the spool: refused, nothing built. */
	assert_int_equal(delivery_build(conf, r, &values, 1, nobody->pw_uid, &cmd, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "root or the spool owner"));
	c = load_conf("pipe { user = \"root\" }");
	assert_int_equal(delivery_build(c, r, &values, 1, 12345, &cmd, why, sizeof(why)), -1);
	conf_free(c);
	/* Not root: ourselves; another pipe.user cannot be honoured. */
	if (geteuid() != 0) {
		c = load_conf("pipe { user = \"root\" }");
		assert_int_equal(delivery_build(c, r, &values, 0, 0, &cmd, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "differs"));
		conf_free(c);
	}
	free(r);
}

/* message - a stored message, as the spool keeps it (LF endings). */
static int
message(const char *text)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/msg-XXXXXX", dir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	unlink(path);
	return fd;
}

/* deliver - run rec's program, told to say `say` and exit with status. */
static void
deliver(const struct conf *c, const char *address, const char *sender, int status,
    const char *say, int msgfd, struct smtp_reply *out)
{
	struct route_result *r = malloc(sizeof(*r));
	struct delivery_ctx ctx = {.conf = c, .ps = {0, -1, geteuid(), geteuid(), NULL}};
	struct delivery_job job;
	const char *list[1] = {address};
	char relay[300], text[32], path[256];

	snprintf(text, sizeof(text), "%d\n", status);
	put_file("status", text, 0644);
	put_file("say", say, 0644);
	snprintf(path, sizeof(path), "%s/argv.out", dir);
	unlink(path);
	route(address, r);
	memset(&job, 0, sizeof(job));
	job.route = r;
	job.v = values;
	job.v.recipient = address;
	job.v.sender = sender;
	job.recipients = list;
	job.nrecipients = 1;
	job.msgfd = msgfd;
	memset(out, 0, sizeof(*out));
	delivery_run(&ctx, &job, out, relay, sizeof(relay), NULL);
	/* relay= in the log: the alias, one token (Postfix's pipe service name). */
	assert_string_equal(relay, "rec");
	free(r);
}

/* T70, SPEC 7 table: exit status -> reply, through a real run. */
static void
test_exit_status_reply(void **state)
{
	static const struct { int status; int code; const char *dsn; } rows[] = {
		{0, 250, "2.0.0"}, {75, 451, "4.3.0"}, {71, 451, "4.3.0"}, {67, 550, "5.1.1"},
		{77, 550, "5.7.0"}, {1, 554, "5.3.0"}, {126, 554, "5.3.0"},
	};
	struct smtp_reply out;
	int fd = message("Subject: hi\n\nbody\n");

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		deliver(conf, "rec@example.com", "alice@example.org", rows[i].status, "", fd,
		    &out);
		if (out.code != rows[i].code || strcmp(out.status, rows[i].dsn) != 0)
			fail_msg("exit %d: %d %s %s", rows[i].status, out.code, out.status,
			    out.text);
	}
	/* Its enhanced code decides after a failure; never a success (SPEC 7). */
	deliver(conf, "rec@example.com", "alice@example.org", 1, "5.7.1 not in this queue\n",
	    fd, &out);
	assert_int_equal(out.code, 554);            /* the class stays, the code is its */
	assert_string_equal(out.status, "5.7.1");
	assert_non_null(strstr(out.text, "not in this queue"));
	deliver(conf, "rec@example.com", "alice@example.org", 75, "2.0.0 all fine\n", fd, &out);
	assert_int_equal(out.code, 451);
	/* The configured tempfail list. */
	{
		struct conf *c = load_conf("pipe { tempfail = { 75, 1 } }");

		deliver(c, "rec@example.com", "alice@example.org", 1, "", fd, &out);
		assert_int_equal(out.code, 451);
		conf_free(c);
	}
	close(fd);
}

/* SPEC 7 standard input and the values the program really sees. */
static void
test_program_sees(void **state)
{
	struct smtp_reply out;
	int fd = message("Received: from x\nSubject: hi\n\n.leading dot\nbody\n");
	char *in, *env, *argv;

	(void)state;
	deliver(conf, "rec+7@example.com", "", 0, "", fd, &out);
	assert_int_equal(out.code, 250);
	in = read_file("stdin.out");
	assert_non_null(in);
	assert_string_equal(in, "Return-Path: <>\nDelivered-To: rec+7@example.com\n"
	    "Received: from x\nSubject: hi\n\n.leading dot\nbody\n");
	env = read_file("env.out");
	assert_non_null(strstr(env, "\nSENDER=\n"));
	assert_non_null(strstr(env, "\nRECIPIENT=rec+7@example.com\n"));
	assert_non_null(strstr(env, "\nEXTENSION=7\n"));
	assert_non_null(strstr(env, "\nDELIVERY_ID=0123abcd\n"));
	assert_null(strstr(env, "LD_PRELOAD"));
	argv = read_file("argv.out");
	assert_string_equal(argv, "plain\n");
	free(in);
	free(env);
	free(argv);
	close(fd);
}

/* SPEC 7: Delivered-To: with this recipient already - 554 5.4.6, nothing run. */
static void
test_delivered_to_loop(void **state)
{
	struct smtp_reply out;
	int fd = message("Delivered-To: other@example.com\nDelivered-To:  REC@example.com \n"
	    "Subject: auto-reply\n\nbody\n");

	(void)state;
	deliver(conf, "rec@example.com", "alice@example.org", 0, "", fd, &out);
	assert_int_equal(out.code, 554);
	assert_string_equal(out.status, "5.4.6");
	assert_null(read_file("argv.out"));
	close(fd);
	/* In the body it does not count. */
	fd = message("Subject: x\n\nDelivered-To: rec@example.com\n");
	deliver(conf, "rec@example.com", "alice@example.org", 0, "", fd, &out);
	assert_int_equal(out.code, 250);
	close(fd);
}

/* SPEC 7.1: no free slot before the deadline - 451, and nothing run. */
static void
test_concurrency_limit(void **state)
{
	struct conf *c = load_conf("pipe { max_concurrency = 1 timeout = 1s }");
	struct smtp_reply out;
	char path[256];
	int fd = message("Subject: x\n\nbody\n"), slot;

	(void)state;
	snprintf(path, sizeof(path), "%s/spool/tmp/slot-all-0.lock", dir);
	slot = open(path, O_RDWR | O_CREAT, 0600);
	assert_true(slot >= 0);
	assert_int_equal(flock(slot, LOCK_EX), 0);
	deliver(c, "rec@example.com", "alice@example.org", 0, "", fd, &out);
	assert_int_equal(out.code, 451);
	assert_null(read_file("argv.out"));
	close(slot);
	deliver(c, "rec@example.com", "alice@example.org", 0, "", fd, &out);
	assert_int_equal(out.code, 250);
	conf_free(c);
	close(fd);
}

/* DELIVERY_ID: stable for a message and recipient, different for another. */
static void
test_delivery_id(void **state)
{
	unsigned char digest[32];
	char a[33], b[33], c[33];

	(void)state;
	for (int i = 0; i < 32; i++)
		digest[i] = (unsigned char)i;
	delivery_id(digest, "rec@example.com", a);
	delivery_id(digest, "rec@example.com", b);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 32);
	assert_int_equal(strspn(a, "0123456789abcdef"), 32);
	delivery_id(digest, "rec2@example.com", c);
	assert_string_not_equal(a, c);
	digest[31] ^= 1;
	delivery_id(digest, "rec@example.com", c);
	assert_string_not_equal(a, c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_argv_captures),
		cmocka_unit_test(test_environment),
		cmocka_unit_test(test_pipe_user),
		cmocka_unit_test(test_exit_status_reply),
		cmocka_unit_test(test_program_sees),
		cmocka_unit_test(test_delivered_to_loop),
		cmocka_unit_test(test_concurrency_limit),
		cmocka_unit_test(test_delivery_id),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
