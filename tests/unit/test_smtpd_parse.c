/*
 * test_smtpd_parse.c - smtpd_parse.c: command lines, MAIL/RCPT parameters.
 * TESTCATALOGUE T43: DSN is not offered, so NOTIFY, ORCPT, ENVID and RET get
 * 555 and no xtext is ever decoded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "smtpd_parse.h"

static void
test_split(void **state)
{
	struct smtp_cmdline cl;
	struct smtp_reply err;

	(void)state;
	assert_int_equal(smtp_split_line("ehlo client.test  ", 18, &cl, &err), 0);
	assert_string_equal(cl.verb, "EHLO");
	assert_int_equal(cl.arglen, 11);
	assert_memory_equal(cl.arg, "client.test", 11);
	assert_int_equal(smtp_split_line("QUIT", 4, &cl, &err), 0);
	assert_int_equal(cl.arglen, 0);
	assert_int_equal(smtp_split_line("NO\0OP", 5, &cl, &err), -1);   /* T32 */
	assert_int_equal(err.code, 501);
	assert_int_equal(smtp_split_line("EHLO a\rb", 8, &cl, &err), -1); /* T42 */
	assert_int_equal(err.code, 501);
	assert_int_equal(smtp_split_line("", 0, &cl, &err), -1);
	assert_int_equal(err.code, 500);
	assert_int_equal(smtp_split_line("AVERYLONGVERBINDEED x", 21, &cl, &err), -1);
}

static int
mail(const char *arg, struct addr *a, struct mail_params *p, struct smtp_reply *err)
{
	return smtp_parse_mail(arg, strlen(arg), a, p, err);
}

static void
test_mail_params(void **state)
{
	struct addr a;
	struct mail_params p;
	struct smtp_reply err;

	(void)state;
	assert_int_equal(mail("FROM:<a@b.test> SIZE=1000 BODY=8BITMIME", &a, &p, &err), 0);
	assert_true(p.has_size && p.size == 1000 && p.body_8bit);
	assert_int_equal(mail("from: <a@b.test>", &a, &p, &err), 0);  /* tolerated space */
	assert_int_equal(mail("FROM:<>", &a, &p, &err), 0);
	assert_true(a.null);
	assert_int_equal(mail("FROM:<j\xc3\xb6rg@b.test> SMTPUTF8", &a, &p, &err), 0);
	assert_true(p.smtputf8);
	/* T38 */
	assert_int_equal(mail("FROM:<a@b.test> SIZE=99999999999999999999", &a, &p, &err), -1);
	assert_int_equal(err.code, 501);
	assert_int_equal(mail("FROM:<a@b.test> SIZE=1 SIZE=2", &a, &p, &err), -1);
	assert_int_equal(mail("FROM:<a@b.test> BODY=FOO", &a, &p, &err), -1);
	assert_int_equal(mail("FROM:<a@b.test> XYZZY", &a, &p, &err), -1);
	assert_int_equal(err.code, 555);
	assert_int_equal(mail("FROM:<a@b.test>SIZE=1", &a, &p, &err), -1);
	assert_int_equal(mail("TO:<a@b.test>", &a, &p, &err), -1);
	assert_int_equal(mail("FROM:<j\xc3\xb6rg@b.test>", &a, &p, &err), -1);
	assert_int_equal(err.code, 553);
	/*
	 * Issue 15: an escaped quote in the path does not hide the parameters
	 * after it: they are read, and refused or checked as any others.
	 */
	assert_int_equal(mail("FROM:<\"a\\\"b\"@x.test> SIZE=99999999999 junk", &a, &p, &err),
	    -1);
	assert_int_equal(err.code, 555);
	assert_int_equal(mail("FROM:<\"a\\\"b\"@x.test> SIZE=99999999999999999999", &a, &p,
	    &err), -1);
	assert_int_equal(err.code, 501);
	assert_int_equal(mail("FROM:<\"a\\\"b\"@x.test> SIZE=1234", &a, &p, &err), 0);
	assert_true(p.has_size && p.size == 1234);
	assert_string_equal(a.local, "a\"b");
	assert_int_equal(mail("FROM:<\"a\\>b\"@x.test> XYZZY", &a, &p, &err), -1);
	assert_int_equal(err.code, 555);
}

static void
test_rcpt(void **state)
{
	struct addr a;
	struct smtp_reply err;
	const char *s;

	(void)state;
	s = "TO:<Postmaster>";
	assert_int_equal(smtp_parse_rcpt(s, strlen(s), 0, &a, &err), 0);
	assert_string_equal(a.local, "Postmaster");
	s = "TO:<>";
	assert_int_equal(smtp_parse_rcpt(s, strlen(s), 0, &a, &err), -1);
	s = "TO:<a@b.test> NOTIFY=NEVER";
	assert_int_equal(smtp_parse_rcpt(s, strlen(s), 0, &a, &err), -1);
	assert_int_equal(err.code, 555);
	s = "TO:a@b.test";
	assert_int_equal(smtp_parse_rcpt(s, strlen(s), 0, &a, &err), -1);
	assert_int_equal(err.code, 501);
}

static void
test_reply_append_bounded(void **state)
{
	struct smtp_reply r;
	char big[600];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	smtp_set_reply(&r, 451, "4.3.0", "temporary");
	smtp_reply_append(&r, ": ", big);
	assert_int_equal(strlen(r.text), sizeof(r.text) - 1);
	assert_memory_equal(r.text, "temporary: xx", 13);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_mail_params),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_reply_append_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
