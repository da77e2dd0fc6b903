/* test_maildrop.c - maildrop.c: the maildrop file's header, both ways. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maildrop.h"

static int
parse(const char *text, struct maildrop_header *h, char *why)
{
	return maildrop_parse(text, strlen(text), h, why, 200);
}

static void
test_round_trip(void **state)
{
	char *rcpts[] = {"bob+x=y@example.com", "\"odd name\"@example.org", "postmaster"};
	struct maildrop_header h;
	char why[200], *text, *full;
	size_t len;

	(void)state;
	text = maildrop_format("alice@example.com", rcpts, 3, &len);
	assert_non_null(text);
	/* xtext: a space, "+" and "=" are encoded; the message follows the header. */
	assert_non_null(strstr(text, "rcpt bob+2Bx+3Dy@example.com\n"));
	assert_non_null(strstr(text, "rcpt \"odd+20name\"@example.org\n"));
	full = malloc(len + 20);
	memcpy(full, text, len);
	memcpy(full + len, "Subject: x\n\nbody\n", 18);
	assert_int_equal(maildrop_parse(full, len + 17, &h, why, sizeof(why)), 0);
	assert_string_equal(h.sender, "alice@example.com");
	assert_int_equal(h.nrcpts, 3);
	assert_string_equal(h.rcpts[0], "bob+x=y@example.com");
	assert_string_equal(h.rcpts[1], "\"odd name\"@example.org");
	assert_string_equal(h.rcpts[2], "postmaster");
	assert_int_equal(h.length, len);
	assert_memory_equal(full + h.length, "Subject: x\n", 11);
	maildrop_header_free(&h);
	free(full);
	free(text);
}

static void
test_null_sender(void **state)
{
	char *rcpts[] = {"bob@example.com"};
	struct maildrop_header h;
	char why[200], *text;
	size_t len;

	(void)state;
	text = maildrop_format("", rcpts, 1, &len);
	assert_string_equal(text, MAILDROP_MAGIC "sender +\nrcpt bob@example.com\nend\n");
	assert_int_equal(maildrop_parse(text, len, &h, why, sizeof(why)), 0);
	assert_string_equal(h.sender, "");
	maildrop_header_free(&h);
	free(text);
}

static void
test_refused(void **state)
{
	static const char *const bad[] = {
		"",
		"undersmtpd-maildrop 2\nsender a@b\nrcpt c@d\nend\n",       /* version */
		MAILDROP_MAGIC "sender a@b\nend\n",                          /* nobody */
		MAILDROP_MAGIC "sender a@b\nrcpt c@d\n",                     /* no end */
		MAILDROP_MAGIC "sender a@b\nrcpt c@d",                       /* cut */
		MAILDROP_MAGIC "rcpt c@d\nend\n",                            /* no sender */
		MAILDROP_MAGIC "sender a@b\nrcpt +\nend\n",                  /* empty rcpt */
		MAILDROP_MAGIC "sender a@b\nrcpt c d@e\nend\n",              /* raw space */
		MAILDROP_MAGIC "sender a@b\nrcpt c+00@e\nend\n",             /* NUL */
		MAILDROP_MAGIC "sender a@b\nrcpt <c@d>\nend\n",              /* not plain */
		MAILDROP_MAGIC "sender a@@b\nrcpt c@d\nend\n",
		MAILDROP_MAGIC "sender a@b\nbcc c@d\nend\n",                 /* unknown */
		MAILDROP_MAGIC "sender a@b\nrcpt c@d\nend",                  /* end without LF */
	};
	struct maildrop_header h;
	char why[200];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (parse(bad[i], &h, why) != -1)
			fail_msg("accepted case %zu", i);
		assert_true(why[0] != '\0');
		assert_null(h.rcpts);
	}
}

static void
test_recipient_bound(void **state)
{
	size_t cap = strlen(MAILDROP_MAGIC) + 32 + (MAILDROP_MAX_RCPTS + 2) * 20;
	char *text = malloc(cap), why[200];
	struct maildrop_header h;
	size_t len;

	(void)state;
	len = (size_t)snprintf(text, cap, "%ssender a@b\n", MAILDROP_MAGIC);
	for (int i = 0; i <= MAILDROP_MAX_RCPTS; i++)
		len += (size_t)snprintf(text + len, cap - len, "rcpt r%d@b\n", i);
	len += (size_t)snprintf(text + len, cap - len, "end\n");
	assert_int_equal(maildrop_parse(text, len, &h, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "more than"));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_null_sender),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_recipient_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
