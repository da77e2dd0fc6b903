/*
 * test_reply.c - reply.c: reply text bounds, and the sysexits table read both
 * ways (SPEC 7 exit status -> reply, SPEC 11 reply -> sendmail's exit status;
 * TESTCATALOGUE T70).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sysexits.h>

#include "reply.h"

static void
test_reply_text_bounded(void **state)
{
	struct smtp_reply r;
	char big[600];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	smtp_set_reply(&r, 451, "4.3.0.99", "head");
	assert_int_equal(r.code, 451);
	assert_string_equal(r.status, "4.3.0.9");       /* cut to its field, terminated */
	smtp_reply_append(&r, ": ", "tail");
	assert_string_equal(r.text, "head: tail");
	smtp_reply_append(&r, " ", big);
	assert_int_equal(strlen(r.text), sizeof(r.text) - 1);
	assert_int_equal(strncmp(r.text, "head: tail xxx", 14), 0);
}

/* SPEC 7's table: the permanent reply of each status. */
/* smtp_reply_line: the line the spool keeps and a DSN quotes, bounded by out. */
static void
test_reply_line(void **state)
{
	struct smtp_reply r;
	char line[32], tiny[8];

	(void)state;
	smtp_set_reply(&r, 451, "4.3.0", "try later");
	smtp_reply_line(&r, line, sizeof(line));
	assert_string_equal(line, "451 4.3.0 try later");
	smtp_set_reply(&r, 250, "", "ok");
	smtp_reply_line(&r, line, sizeof(line));
	assert_string_equal(line, "250 ok");
	smtp_set_reply(&r, 550, "5.1.1", "user unknown");
	smtp_reply_line(&r, tiny, sizeof(tiny));
	assert_string_equal(tiny, "550 5.1");
}

static void
test_exit_status_to_reply(void **state)
{
	static const struct {
		int status, code;
		const char *dsn, *name;
	} want[] = {
		{EX_USAGE, 554, "5.3.0", "EX_USAGE"}, {EX_DATAERR, 550, "5.6.0", "EX_DATAERR"},
		{EX_NOUSER, 550, "5.1.1", "EX_NOUSER"}, {EX_NOHOST, 550, "5.1.2", "EX_NOHOST"},
		{EX_CANTCREAT, 550, "5.2.0", "EX_CANTCREAT"},
		{EX_PROTOCOL, 554, "5.5.0", "EX_PROTOCOL"}, {EX_NOPERM, 550, "5.7.0", "EX_NOPERM"},
		{EX_CONFIG, 550, "5.3.5", "EX_CONFIG"}, {EX_TEMPFAIL, 554, "5.3.0", "EX_TEMPFAIL"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct sysexit *row = sysexit_find(want[i].status);

		assert_non_null(row);
		assert_int_equal(row->code, want[i].code);
		assert_string_equal(row->dsn, want[i].dsn);
		assert_string_equal(row->name, want[i].name);
	}
	assert_null(sysexit_find(0));
	assert_null(sysexit_find(1));
	assert_null(sysexit_find(63));
	assert_null(sysexit_find(79));
}

/* SPEC 11: what a reply tells sendmail's caller, and the way back agrees. */
static void
test_reply_to_exit_status(void **state)
{
	(void)state;
	assert_int_equal(sysexit_for_reply(451, "4.3.0"), EX_TEMPFAIL);
	assert_int_equal(sysexit_for_reply(452, "4.5.3"), EX_TEMPFAIL);
	assert_int_equal(sysexit_for_reply(550, "5.1.3"), EX_NOUSER);
	assert_int_equal(sysexit_for_reply(552, "5.3.4"), EX_DATAERR);
	assert_int_equal(sysexit_for_reply(554, "5.3.0"), EX_UNAVAILABLE);
	/* Each status whose reply is distinctive comes back as itself. */
	for (int s = EX__BASE; s <= EX__MAX; s++) {
		const struct sysexit *row = sysexit_find(s);

		if (row == NULL || strcmp(row->dsn, "5.3.0") == 0 || s == EX_NOHOST ||
		    s == EX_CANTCREAT || s == EX_PROTOCOL)
			continue;
		assert_int_equal(sysexit_for_reply(row->code, row->dsn), s);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_text_bounded),
		cmocka_unit_test(test_reply_line),
		cmocka_unit_test(test_exit_status_to_reply),
		cmocka_unit_test(test_reply_to_exit_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
