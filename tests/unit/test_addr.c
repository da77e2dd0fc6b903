/* test_addr.c - addr.c: RFC 5321 paths, limits, quoting, source routes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"

static int
path(const char *s, int utf8, struct addr *a)
{
	size_t end;

	return addr_parse_path(s, strlen(s), 1, utf8, a, &end);
}

static void
test_plain_paths(void **state)
{
	struct addr a;

	(void)state;
	assert_int_equal(path("<User@Example.COM>", 0, &a), ADDR_OK);
	assert_string_equal(a.local, "User");
	assert_string_equal(a.domain, "example.com");
	assert_int_equal(path("<>", 0, &a), ADDR_OK);
	assert_true(a.null);
	assert_int_equal(path("<Postmaster>", 0, &a), ADDR_OK);
	assert_string_equal(a.local, "Postmaster");
	assert_string_equal(a.domain, "");
	/* T54: a trailing dot names the same domain. */
	assert_int_equal(path("<u@OURS.>", 0, &a), ADDR_OK);
	assert_string_equal(a.domain, "ours");
	assert_int_equal(path("<u@[192.0.2.1]>", 0, &a), ADDR_OK);
	assert_string_equal(a.domain, "[192.0.2.1]");
	assert_int_equal(path("<u@[IPv6:2001:db8::1]>", 0, &a), ADDR_OK);
}

static void
test_source_route_dropped(void **state)
{
	struct addr a;

	(void)state;
	/* T53: only the final mailbox counts. */
	assert_int_equal(path("<@a.test,@b.test:u@ours.test>", 0, &a), ADDR_OK);
	assert_string_equal(a.local, "u");
	assert_string_equal(a.domain, "ours.test");
	assert_int_equal(path("<@ours.test:v@foreign.test>", 0, &a), ADDR_OK);
	assert_string_equal(a.domain, "foreign.test");
	assert_int_equal(path("<@:u@x.test>", 0, &a), ADDR_SYNTAX);
}

static void
test_quoted_local_parts(void **state)
{
	struct addr a;
	char out[300];

	(void)state;
	/* T51: the dequoted local part holds the '@': never a route. */
	assert_int_equal(path("<\"v@foreign\"@ours.test>", 0, &a), ADDR_OK);
	assert_string_equal(a.local, "v@foreign");
	assert_true(a.quoted);
	assert_int_equal(path("<\"a\\\"b\"@x.test>", 0, &a), ADDR_OK);
	assert_string_equal(a.local, "a\"b");
	addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "\"a\\\"b\"@x.test");
	assert_int_equal(path("<\"a>b\"@x.test>", 0, &a), ADDR_OK);
	assert_string_equal(a.local, "a>b");
	assert_int_equal(path("<\"unterminated@x.test>", 0, &a), ADDR_SYNTAX);
}

static void
test_syntax_errors(void **state)
{
	struct addr a;

	(void)state;
	assert_int_equal(path("<a..b@x.test>", 0, &a), ADDR_SYNTAX);
	assert_int_equal(path("<.a@x.test>", 0, &a), ADDR_SYNTAX);
	assert_int_equal(path("<a;id@x.test>", 0, &a), ADDR_SYNTAX);
	assert_int_equal(path("<a@-x.test>", 0, &a), ADDR_SYNTAX);
	assert_int_equal(path("<a@x..test>", 0, &a), ADDR_SYNTAX);
	assert_int_equal(path("<a@x.test", 0, &a), ADDR_SYNTAX);
	assert_int_equal(path("a@x.test", 0, &a), ADDR_SYNTAX);
	assert_int_equal(path("<a@[300.1.1.1]>", 0, &a), ADDR_SYNTAX);
	{
		const char cr[] = "<a\rb@x.test>";
		size_t end;

		assert_int_equal(addr_parse_path(cr, sizeof(cr) - 1, 1, 0, &a, &end),
		    ADDR_SYNTAX);
	}
}

static void
test_limits(void **state)
{
	struct addr a;
	char buf[600];

	(void)state;
	/* T29: local part 64 ok, 65 too long; path 256 ok, 257 too long. */
	memset(buf, 0, sizeof(buf));
	buf[0] = '<';
	memset(buf + 1, 'x', 64);
	strcpy(buf + 65, "@x.test>");
	assert_int_equal(path(buf, 0, &a), ADDR_OK);
	buf[0] = '<';
	memset(buf + 1, 'x', 65);
	strcpy(buf + 66, "@x.test>");
	assert_int_equal(path(buf, 0, &a), ADDR_TOO_LONG);
	{
		char dom[300];

		memset(dom, 'd', 63);
		dom[63] = '.';
		memset(dom + 64, 'e', 63);
		dom[127] = '.';
		memset(dom + 128, 'f', 63);
		dom[191] = '.';
		memset(dom + 192, 'g', 60);
		strcpy(dom + 252, ".com");     /* 256 octets */
		snprintf(buf, sizeof(buf), "<a@%s>", dom);
		assert_int_equal(path(buf, 0, &a), ADDR_TOO_LONG);
	}
}

static void
test_utf8(void **state)
{
	struct addr a;

	(void)state;
	/* T34 */
	assert_int_equal(path("<j\xc3\xb6rg@x.test>", 0, &a), ADDR_NEEDS_UTF8);
	assert_int_equal(path("<j\xc3\xb6rg@x.test>", 1, &a), ADDR_OK);
	assert_true(a.utf8);
	assert_int_equal(path("<a\xff\xfe@x.test>", 1, &a), ADDR_BAD_UTF8);
	assert_int_equal(path("<a\xc0\xaf@x.test>", 1, &a), ADDR_BAD_UTF8);   /* overlong */
	assert_int_equal(path("<a\xed\xa0\x80@x.test>", 1, &a), ADDR_BAD_UTF8); /* surrogate */
	assert_int_equal(path("<a\xe2\x82@x.test>", 1, &a), ADDR_BAD_UTF8);   /* truncated */
	assert_true(utf8_valid((const unsigned char *)"\xf0\x9f\x98\x80", 4));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_paths),
		cmocka_unit_test(test_source_route_dropped),
		cmocka_unit_test(test_quoted_local_parts),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
