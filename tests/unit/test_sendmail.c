/*
 * test_sendmail.c - sendmail.c: the sendmail command line (SPEC 2; T46,
 * T112), what is made of the message read (-t, -i/-oi and the lone dot,
 * line endings, added and removed headers, T26), and sendmail_deliver's
 * decisions and exit statuses on a real spool in a temporary directory, in
 * a child with the message on its standard input (as root it runs as SPEC
 * 11 says: the spool as `user`, programs through the launcher).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/wait.h>
#include <sysexits.h>

#include "sendmail.h"
#include "spool.h"
#include "unit.h"

/* parse - argv from a NULL-terminated list, as sendmail gets it; the status. */
static int
parse(struct sm_opts *o, const char *name, const char *const *args)
{
	static char *argv[64];
	int argc = 0;

	argv[argc++] = (char *)(uintptr_t)name;
	for (; args[argc - 1] != NULL; argc++)
		argv[argc] = (char *)(uintptr_t)args[argc - 1];
	argv[argc] = NULL;
	return sendmail_parse(argc, argv, name, o);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void
test_parse_options(void **state)
{
	struct sm_opts o;

	(void)state;
	assert_int_equal(parse(&o, "sendmail", ARGS("a@x.test", "b@y.test")), 0);
	assert_int_equal(o.mode, SM_DELIVER);
	assert_int_equal(o.dots_end, 1);          /* without -i a lone dot ends it */
	assert_int_equal(o.from_headers, 0);
	assert_null(o.sender);
	assert_null(o.fullname);
	assert_int_equal(o.conf_explicit, 0);
	assert_int_equal(o.nrcpts, 2);
	assert_string_equal(o.rcpts[0], "a@x.test");
	assert_string_equal(o.rcpts[1], "b@y.test");
	assert_int_equal(parse(&o, "sendmail", ARGS("-t", "-i", "-f", "alice@x.test",
	    "-F", "Alice Example", "-odb", "-oem", "-v", "-B8BITMIME", "b@y.test")), 0);
	assert_true(o.from_headers);
	assert_int_equal(o.dots_end, 0);
	assert_string_equal(o.sender, "alice@x.test");
	assert_string_equal(o.fullname, "Alice Example");
	assert_int_equal(o.nrcpts, 1);
	assert_string_equal(o.rcpts[0], "b@y.test");
	assert_int_equal(parse(&o, "sendmail", ARGS("-oi", "-rbob@x.test", "-FBob")), 0);
	assert_int_equal(o.dots_end, 0);
	assert_string_equal(o.sender, "bob@x.test");
	assert_string_equal(o.fullname, "Bob");
	assert_int_equal(o.nrcpts, 0);
	assert_int_equal(parse(&o, "sendmail", ARGS("-f", "<>", "x@y.test")), 0);
	assert_string_equal(o.sender, "<>");
	assert_int_equal(parse(&o, "sendmail", ARGS("-f", "", "x@y.test")), 0);
	assert_string_equal(o.sender, "");
	/* -C names a file; whether it is honoured is decided later (T46). */
	assert_int_equal(parse(&o, "sendmail", ARGS("-C", "/tmp/x.conf", "x@y.test")), 0);
	assert_string_equal(o.conf_file, "/tmp/x.conf");
	assert_true(o.conf_explicit);
	/* Modes. */
	assert_int_equal(parse(&o, "sendmail", ARGS("-bs")), 0);
	assert_int_equal(o.mode, SM_SMTP);
	assert_int_equal(parse(&o, "sendmail", ARGS("-bp")), 0);
	assert_int_equal(o.mode, SM_LIST);
	assert_int_equal(parse(&o, "sendmail", ARGS("-bv", "x@y.test")), 0);
	assert_int_equal(o.mode, SM_VERIFY);
	assert_int_equal(parse(&o, "sendmail", ARGS("-bi")), 0);
	assert_int_equal(o.mode, SM_ALIASES);
	assert_int_equal(parse(&o, "sendmail", ARGS("-q")), 0);
	assert_int_equal(o.mode, SM_FLUSH);
	assert_null(o.queue_match);
	/* sendmail's -qIsubstr, attached or apart (issue 19). */
	assert_int_equal(parse(&o, "sendmail", ARGS("-qIAB12")), 0);
	assert_int_equal(o.mode, SM_FLUSH);
	assert_string_equal(o.queue_match, "AB12");
	assert_int_equal(parse(&o, "sendmail", ARGS("-qI", "CD34")), 0);
	assert_string_equal(o.queue_match, "CD34");
	assert_int_equal(parse(&o, "sendmail", ARGS("-qI")), EX_USAGE);
	assert_int_equal(parse(&o, "mailq", ARGS("-v")), 0);
	assert_int_equal(o.mode, SM_LIST);
	assert_int_equal(parse(&o, "newaliases", ARGS("-v")), 0);
	assert_int_equal(o.mode, SM_ALIASES);
	/* "--" ends the options: what follows is a recipient. */
	assert_int_equal(parse(&o, "sendmail", ARGS("-i", "--", "x@y.test")), 0);
	assert_int_equal(o.nrcpts, 1);
	assert_string_equal(o.rcpts[0], "x@y.test");
	/* The first non-option ends them too: "-t" after it is not an option... */
	assert_int_equal(parse(&o, "sendmail", ARGS("x@y.test", "z@y.test")), 0);
	assert_int_equal(o.from_headers, 0);
}

/* T46 (CVE-2016-10033), SPEC 2: anything else is 64, whatever follows. */
static void
test_parse_refusals(void **state)
{
	static const char *const bad[][4] = {
		{"-X/tmp/log", "x@y.test", NULL},
		{"-X", "/tmp/log", "x@y.test", NULL},
		{"-oQ/tmp/", "x@y.test", NULL},
		{"-oA/tmp/aliases", "x@y.test", NULL},
		{"-O", "QueueDirectory=/tmp", "x@y.test", NULL},
		{"-N", "never", "x@y.test", NULL},
		{"-bd", NULL},
		{"-f", NULL},                       /* a value missing */
		{"-F", NULL},
		{"-C", NULL},
		{"--", "-X/tmp/log", NULL},         /* a recipient may not look like one */
		{"x@y.test", "-oQ/tmp", NULL},
		{"x@y.test", "-", NULL},
	};
	struct sm_opts o;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(&o, "sendmail", bad[i]) != 64)
			fail_msg("case %zu (%s %s) was not refused", i, bad[i][0],
			    bad[i][1] ? bad[i][1] : "");
	/* Verifying is no delivery: a "-" name is only looked up. */
	assert_int_equal(parse(&o, "sendmail", ARGS("-bv", "--", "-x")), 0);
}

/* T112: -F with CR, LF or any control character is refused (64). */
static void
test_parse_fullname(void **state)
{
	static const char *const bad[] = {
		"Eve\nBcc: victim@x.test", "Eve\r\nBcc: victim@x.test", "Eve\rX", "Tab\tName",
		"Nul\001", "Del\177", "Esc\033[31m",
	};
	struct sm_opts o;
	char longname[300];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(&o, "sendmail", ARGS("-F", bad[i], "x@y.test")), 64);
		assert_int_equal(parse(&o, "sendmail", (const char *const[]){"-t", "-F",
		    bad[i], NULL}), 64);
	}
	memset(longname, 'a', 201);
	longname[201] = '\0';
	assert_int_equal(parse(&o, "sendmail", ARGS("-F", longname)), 64);
	longname[200] = '\0';
	assert_int_equal(parse(&o, "sendmail", ARGS("-F", longname)), 0);
	assert_int_equal(parse(&o, "sendmail", ARGS("-F", "J\xc3\xbcrgen \"Q\" O'Neil")), 0);
}

/* A sink that keeps what it is given. */
struct mem {
	char buf[16384];
	size_t len;
};

static int
mem_write(void *ctx, const char *p, size_t n)
{
	struct mem *m = ctx;

	if (m->len + n >= sizeof(m->buf))
		return -1;
	memcpy(m->buf + m->len, p, n);
	m->len += n;
	m->buf[m->len] = '\0';
	return 0;
}

static const struct added_headers added = {
	"Alice <alice@x.test>", "Mon, 1 Jan 2024 00:00:00 +0000", "<id@x.test>",
};

/* read_msg - sendmail_read_message on text (len bytes) with these options. */
static int
read_msg(const char *const *args, const char *text, size_t len, struct mem *out,
    struct message *m)
{
	struct sm_opts o;
	struct data_sink sink = {mem_write, out};
	char why[256];
	FILE *in = fmemopen((void *)(uintptr_t)text, len, "r");
	int rc;

	assert_non_null(in);
	assert_int_equal(parse(&o, "sendmail", args), 0);
	memset(out, 0, sizeof(*out));
	rc = sendmail_read_message(&o, in, &sink, &added, m, why, sizeof(why));
	fclose(in);
	return rc;
}

static void
free_message(struct message *m)
{
	for (size_t i = 0; i < m->nhdr_rcpts; i++)
		free(m->hdr_rcpts[i]);
	free(m->hdr_rcpts);
}

#define READ(args, text, out, m) read_msg(args, text, sizeof(text) - 1, out, m)

/* Without -i a lone "." ends the message; with -i (or -oi) it is a line. */
static void
test_read_dots(void **state)
{
	static const char text[] = "Subject: d\n\n..\n.x\n.\nafter\n";
	struct mem out;
	struct message m;

	(void)state;
	assert_int_equal(READ(ARGS("x@y.test"), text, &out, &m), 0);
	assert_string_equal(out.buf, "Subject: d\nFrom: Alice <alice@x.test>\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <id@x.test>\n\n..\n.x\n");
	free_message(&m);
	assert_int_equal(READ(ARGS("-i", "x@y.test"), text, &out, &m), 0);
	assert_non_null(strstr(out.buf, "\n\n..\n.x\n.\nafter\n"));
	free_message(&m);
	assert_int_equal(READ(ARGS("-oi", "x@y.test"), text, &out, &m), 0);
	assert_non_null(strstr(out.buf, "\n.\nafter\n"));
	free_message(&m);
	/* ".\r\n" is a lone dot too. */
	assert_int_equal(READ(ARGS("x@y.test"), "Subject: d\r\n\r\nbody\r\n.\r\nafter\r\n",
	    &out, &m), 0);
	assert_null(strstr(out.buf, "after"));
	free_message(&m);
}

/* T26: CRLF and LF both become LF; a stray CR becomes a space. */
static void
test_read_line_endings(void **state)
{
	static const char text[] = "Subject: e\r\nFrom: a@x.test\r\nDate: x\r\n"
	    "Message-ID: <m@x>\r\n\r\none\r\ntwo\nstray\rCR\r\r\n";
	struct mem out;
	struct message m;

	(void)state;
	assert_int_equal(READ(ARGS("-i", "x@y.test"), text, &out, &m), 0);
	assert_string_equal(out.buf, "Subject: e\nFrom: a@x.test\nDate: x\n"
	    "Message-ID: <m@x>\n\none\ntwo\nstray CR \n");      /* "CR\r\r\n": one CR stray */
	assert_true(m.has_from && m.has_date && m.has_msgid);
	free_message(&m);
	/* Only a body: the headers come first, then an empty line. */
	assert_int_equal(READ(ARGS("-i", "x@y.test"), "just a body line\n", &out, &m), 0);
	assert_string_equal(out.buf, "From: Alice <alice@x.test>\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <id@x.test>\n\n"
	    "just a body line\n");
	free_message(&m);
	/* Nothing at all: a header and an empty body. */
	assert_int_equal(READ(ARGS("-i", "x@y.test"), "", &out, &m), 0);
	assert_string_equal(out.buf, "From: Alice <alice@x.test>\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <id@x.test>\n\n");
	free_message(&m);
}

/* -t: To, Cc and Bcc (folded, with names) are collected; Bcc is removed. */
static void
test_read_header_recipients(void **state)
{
	static const char text[] = "To: Bob <bob@x.test>, carol@y.test\n"
	    "Cc: \"Dan, D.\" <dan@z.test>\n"
	    "Bcc: secret@hidden.test,\n  other@hidden.test\n"
	    "Subject: Bcc: not a header here\n"
	    "Received: from a\nReceived: from b\n\n"
	    "To: body@not.test\n";
	struct mem out;
	struct message m;
	int seen[5] = {0};

	(void)state;
	assert_int_equal(READ(ARGS("-t", "-i"), text, &out, &m), 0);
	assert_null(strstr(out.buf, "secret@"));
	assert_null(strstr(out.buf, "other@hidden"));
	assert_non_null(strstr(out.buf, "Subject: Bcc: not a header here\n"));
	assert_non_null(strstr(out.buf, "\n\nTo: body@not.test\n"));
	assert_int_equal(m.hops, 2);
	for (size_t i = 0; i < m.nhdr_rcpts; i++) {
		static const char *const want[] = {"bob@x.test", "carol@y.test", "dan@z.test",
		    "secret@hidden.test", "other@hidden.test"};
		size_t k = 0;

		/* A header list is split later, by address (collect_rcpts). */
		for (; k < 5; k++)
			if (strstr(m.hdr_rcpts[i], want[k]) != NULL)
				seen[k]++;
		assert_null(strstr(m.hdr_rcpts[i], "body@"));
	}
	for (size_t k = 0; k < 5; k++)
		if (seen[k] != 1)
			fail_msg("recipient %zu seen %d times", k, seen[k]);
	free_message(&m);
}

/* NUL and over-long lines: 65, nothing half-judged. */
static void
test_read_refusals(void **state)
{
	static const char nul[] = "Subject: x\n\nnul\0here\n";
	char line[1100];
	struct mem out;
	struct message m;

	(void)state;
	assert_int_equal(READ(ARGS("x@y.test"), nul, &out, &m), 65);
	free_message(&m);
	/* RFC 5322 2.1.1: 998 characters and the line end. */
	memset(line, 'x', 998);
	strcpy(line + 998, "\r\n");
	assert_int_equal(read_msg(ARGS("x@y.test"), line, 1000, &out, &m), 0);
	free_message(&m);
	memset(line, 'x', 999);
	strcpy(line + 999, "\n");
	assert_int_equal(read_msg(ARGS("x@y.test"), line, 1000, &out, &m), 65);
	free_message(&m);
}

/* ---- sendmail_deliver, in a child, on a spool of its own ---- */

static char dir[64];
static char conf_path[128];

static int
setup_spool(void **state)
{
	char path[256], text[2048];
	struct passwd *pw = getpwuid(geteuid());
	FILE *fp;

	(void)state;
	strcpy(dir, "/tmp/undersmtpd-sendmail-XXXXXX");
	if (mkdtemp(dir) == NULL || chmod(dir, 0755) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/aliases", dir);
	fp = fopen(path, "w");
	fputs("p0: \"|/bin/sh -c 'cat >/dev/null; exit 0'\"\n"
	    "p75: \"|/bin/sh -c 'exit 75'\"\n"
	    "p67: \"|/bin/sh -c 'exit 67'\"\n"
	    "fwd: far@remote.test\n", fp);
	fclose(fp);
	chmod(path, 0644);
	snprintf(conf_path, sizeof(conf_path), "%s/undersmtpd.conf", dir);
	/* As root SPEC 11 applies: the spool is nobody's, programs daemon's. */
	snprintf(text, sizeof(text), "hostname = \"mx.example.com\"\n"
	    "local_domains = { \"example.com\" }\nspool_dir = \"%s/spool\"\n"
	    "aliases = \"%s/aliases\"\nuser = \"%s\"\n%s"
	    "smarthost \"sh\" { host = \"127.0.0.1\" port = 9 tls = none }\n"
	    "queue { run_after_accept = false }\n", dir, dir,
	    geteuid() == 0 ? "nobody" : pw->pw_name,
	    geteuid() == 0 ? "pipe { user = \"daemon\" }\n" : "");
	fp = fopen(conf_path, "w");
	fputs(text, fp);
	fclose(fp);
	return 0;
}

static int
teardown_spool(void **state)
{

	(void)state;
	return remove_tree(dir);
}

/*
 * submit - sendmail ARGS < text, in a child; its exit status.  err gets
 * what it wrote on standard error.
 */
static int
submit(const char *const *args, const char *text, char *err, size_t errsize)
{
	char in_path[256], err_path[256];
	int status;
	pid_t pid;
	FILE *fp;

	snprintf(in_path, sizeof(in_path), "%s/in", dir);
	snprintf(err_path, sizeof(err_path), "%s/err", dir);
	fp = fopen(in_path, "w");
	fputs(text, fp);
	fclose(fp);
	chmod(in_path, 0644);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct collected diags = {""};
		struct diag d = {collect, &diags, 0};
		struct sm_opts o;
		struct conf *c = conf_load(conf_path, 0, &d);
		int in = open(in_path, O_RDONLY), errfd = open(err_path,
		    O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (c == NULL || in < 0 || errfd < 0 || dup2(in, 0) < 0 || dup2(errfd, 2) < 0)
			_exit(99);
		if (parse(&o, "sendmail", args) != 0)
			_exit(98);
		_exit(sendmail_deliver(&o, c));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	fp = fopen(err_path, "r");
	err[0] = '\0';
	if (fp != NULL) {
		size_t n = fread(err, 1, errsize - 1, fp);

		err[n] = '\0';
		fclose(fp);
	}
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* spooled - the one message in the queue (removed after reading), or 0 if none. */
static int
spooled(struct spool_env *e, char *msg, size_t msgsize)
{
	struct conf c;
	char **ids, why[256], path[4096];
	int found = 0;

	memset(&c, 0, sizeof(c));
	snprintf(path, sizeof(path), "%s/spool", dir);
	c.spool_dir = path;
	ids = spool_ids(&c);
	if (ids[0] != NULL) {
		char mpath[4200];
		FILE *fp;

		assert_null(ids[1]);
		assert_int_equal(spool_read(&c, ids[0], e, why, sizeof(why)), 0);
		snprintf(mpath, sizeof(mpath), "%s/queue/%s.msg", path, ids[0]);
		fp = fopen(mpath, "r");
		assert_non_null(fp);
		msg[fread(msg, 1, msgsize - 1, fp)] = '\0';
		fclose(fp);
		assert_int_equal(spool_remove(&c, ids[0], 0), 0);
		found = 1;
	}
	spool_ids_free(ids);
	return found;
}

static const char plain_msg[] = "Subject: hello\n\nbody\n";

static void
test_deliver_spools_for_smarthost(void **state)
{
	struct spool_env e;
	char err[2048], msg[8192];

	(void)state;
	assert_int_equal(submit(ARGS("-f", "alice@x.test", "-F", "Alice \"A\"",
	    "far@remote.test"), plain_msg, err, sizeof(err)), 0);
	assert_true(spooled(&e, msg, sizeof(msg)));
	assert_string_equal(e.sender, "alice@x.test");
	assert_int_equal(e.nrcpts, 1);
	assert_string_equal(e.rcpts[0].addr, "far@remote.test");
	assert_int_equal(e.rcpts[0].state, RCPT_PENDING);
	assert_non_null(strstr(msg, "From: \"Alice \\\"A\\\"\" <alice@x.test>\n"));
	assert_non_null(strstr(msg, "\nSubject: hello\n"));
	spool_env_free(&e);
	/* -f "<>": the null sender; an address alias spools its target. */
	assert_int_equal(submit(ARGS("-f", "<>", "fwd@example.com"), plain_msg, err,
	    sizeof(err)), 0);
	assert_true(spooled(&e, msg, sizeof(msg)));
	assert_string_equal(e.sender, "");
	assert_string_equal(e.rcpts[0].addr, "far@remote.test");
	spool_env_free(&e);
	/* -t: the header's recipients, Bcc gone from what is stored. */
	assert_int_equal(submit(ARGS("-t", "-f", "alice@x.test"),
	    "To: far@remote.test\nBcc: hidden@remote.test\nSubject: t\n\nbody\n", err,
	    sizeof(err)), 0);
	assert_true(spooled(&e, msg, sizeof(msg)));
	assert_int_equal(e.nrcpts, 2);
	assert_null(strstr(msg, "hidden@"));
	spool_env_free(&e);
}

/* SPEC 2 exit statuses: 67 unknown user, 65 no recipients, 64 bad sender. */
static void
test_deliver_refusals(void **state)
{
	struct spool_env e;
	char err[2048], msg[8192];

	(void)state;
	assert_int_equal(submit(ARGS("nobody-here@example.com"), plain_msg, err,
	    sizeof(err)), 67);
	assert_non_null(strstr(err, "550 5.1.1"));
	assert_false(spooled(&e, msg, sizeof(msg)));
	/* The worst one wins, and the good recipient is still spooled. */
	assert_int_equal(submit(ARGS("nobody-here@example.com", "far@remote.test"),
	    plain_msg, err, sizeof(err)), 67);
	assert_true(spooled(&e, msg, sizeof(msg)));
	assert_int_equal(e.nrcpts, 1);
	spool_env_free(&e);
	assert_int_equal(submit(ARGS("-i"), plain_msg, err, sizeof(err)), 65);
	assert_non_null(strstr(err, "no recipients"));
	assert_int_equal(submit(ARGS("-t"), "Subject: nobody\n\nx\n", err, sizeof(err)), 65);
	assert_int_equal(submit(ARGS("-f", "not an address", "far@remote.test"), plain_msg,
	    err, sizeof(err)), 64);
	assert_int_equal(submit(ARGS("far@remote.test"), "Subject: x\n\nnul\001ok\n", err,
	    sizeof(err)), 0);
	assert_true(spooled(&e, msg, sizeof(msg)));
	spool_env_free(&e);
	{
		static const char nul[] = "Subject: x\n\nnul\0here\n";
		char in_path[256];
		FILE *fp;
		pid_t pid;
		int status;

		/* A NUL byte: 65, nothing spooled (written by hand: fputs stops at it). */
		snprintf(in_path, sizeof(in_path), "%s/in", dir);
		fp = fopen(in_path, "w");
		fwrite(nul, 1, sizeof(nul) - 1, fp);
		fclose(fp);
		fflush(NULL);
		pid = fork();
		if (pid == 0) {
			struct diag d = {NULL, NULL, 0};
			struct sm_opts o;
			struct conf *c = conf_load(conf_path, 0, &d);
			int in = open(in_path, O_RDONLY), null = open("/dev/null", O_WRONLY);

			if (c == NULL || in < 0 || dup2(in, 0) < 0 || dup2(null, 2) < 0)
				_exit(99);
			parse(&o, "sendmail", ARGS("far@remote.test"));
			_exit(sendmail_deliver(&o, c));
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_int_equal(WEXITSTATUS(status), 65);
		assert_false(spooled(&e, msg, sizeof(msg)));
	}
}

/* SPEC 7.1: sendmail is sync-then-queue - a program's 4xx is spooled, exit 0. */
static void
test_deliver_programs(void **state)
{
	struct spool_env e;
	char err[2048], msg[8192];

	(void)state;
	assert_int_equal(submit(ARGS("p0@example.com"), plain_msg, err, sizeof(err)), 0);
	assert_false(spooled(&e, msg, sizeof(msg)));
	assert_int_equal(submit(ARGS("p75@example.com"), plain_msg, err, sizeof(err)), 0);
	assert_true(spooled(&e, msg, sizeof(msg)));
	assert_string_equal(e.rcpts[0].addr, "p75@example.com");
	spool_env_free(&e);
	assert_int_equal(submit(ARGS("p67@example.com"), plain_msg, err, sizeof(err)), 67);
	assert_non_null(strstr(err, "550 5.1.1"));
	assert_false(spooled(&e, msg, sizeof(msg)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_options),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_parse_fullname),
		cmocka_unit_test(test_read_dots),
		cmocka_unit_test(test_read_line_endings),
		cmocka_unit_test(test_read_header_recipients),
		cmocka_unit_test(test_read_refusals),
		cmocka_unit_test_setup_teardown(test_deliver_spools_for_smarthost, setup_spool,
		    teardown_spool),
		cmocka_unit_test_setup_teardown(test_deliver_refusals, setup_spool,
		    teardown_spool),
		cmocka_unit_test_setup_teardown(test_deliver_programs, setup_spool,
		    teardown_spool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
