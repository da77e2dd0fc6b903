/* test_util.c - util.c: bounded strings, CIDR matching, size/duration parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "util.h"

static void
test_str_copy_truncation(void **state)
{
	char buf[4];

	(void)state;
	assert_int_equal(str_copy(buf, sizeof(buf), "abc"), 0);
	assert_string_equal(buf, "abc");
	assert_int_equal(str_copy(buf, sizeof(buf), "abcd"), -1);
	assert_string_equal(buf, "abc");
	assert_int_equal(str_fmt(buf, sizeof(buf), "%d", 123), 0);
	assert_int_equal(str_fmt(buf, sizeof(buf), "%d", 1234), -1);
}

static void
test_cidr(void **state)
{
	struct cidr c;
	int fam;
	unsigned char ip[16];

	(void)state;
	assert_int_equal(cidr_parse("127.0.0.0/8", &c), 0);
	assert_int_equal(ip_parse("127.1.2.3", &fam, ip), 0);
	assert_true(cidr_match(&c, fam, ip));
	assert_int_equal(ip_parse("128.0.0.1", &fam, ip), 0);
	assert_false(cidr_match(&c, fam, ip));
	/* T55: an IPv4-mapped IPv6 address is matched as IPv4. */
	assert_int_equal(ip_parse("::ffff:127.0.0.9", &fam, ip), 0);
	assert_int_equal(fam, AF_INET);
	assert_true(cidr_match(&c, fam, ip));
	assert_int_equal(cidr_parse("2001:db8::/32", &c), 0);
	assert_int_equal(ip_parse("2001:db8:1::5", &fam, ip), 0);
	assert_true(cidr_match(&c, fam, ip));
	assert_int_equal(cidr_parse("10.0.0.1/33", &c), -1);
	assert_int_equal(cidr_parse("10.0.0.300/8", &c), -1);
	assert_int_equal(cidr_parse("192.168.1.1/24", &c), -1);   /* host bits set */
	assert_int_equal(cidr_parse("/8", &c), -1);
	assert_int_equal(cidr_parse("10.0.0.0/", &c), -1);
	assert_int_equal(cidr_parse("0.0.0.0/0", &c), 0);
	assert_int_equal(ip_parse("1.2.3.4", &fam, ip), 0);
	assert_true(cidr_match(&c, fam, ip));
}

static void
test_size_and_duration(void **state)
{
	uint64_t v;
	long d;

	(void)state;
	assert_int_equal(parse_size("25M", &v), 0);
	assert_true(v == 25ULL * 1024 * 1024);
	assert_int_equal(parse_size("512k", &v), 0);
	assert_true(v == 512 * 1024);
	assert_int_equal(parse_size("1G", &v), 0);
	assert_true(v == 1024ULL * 1024 * 1024);
	assert_int_equal(parse_size("100", &v), 0);
	assert_true(v == 100);
	assert_int_equal(parse_size("25X", &v), -1);
	assert_int_equal(parse_size("M", &v), -1);
	assert_int_equal(parse_size("99999999999999999999999", &v), -1);
	assert_int_equal(parse_size("20000000000G", &v), -1);   /* overflow */
	assert_int_equal(parse_duration("5m", &d), 0);
	assert_int_equal(d, 300);
	assert_int_equal(parse_duration("5d", &d), 0);
	assert_int_equal(d, 5 * 86400);
	assert_int_equal(parse_duration("30", &d), 0);
	assert_int_equal(d, 30);
	assert_int_equal(parse_duration("1w", &d), -1);
	assert_int_equal(parse_duration("", &d), -1);
}

static void
test_random_hex(void **state)
{
	char a[13], b[13];

	(void)state;
	assert_int_equal(random_hex(a, sizeof(a), 6), 0);
	assert_int_equal(random_hex(b, sizeof(b), 6), 0);
	assert_int_equal(strlen(a), 12);
	assert_string_not_equal(a, b);
	assert_int_equal(random_hex(a, 4, 6), -1);
}

/* Control characters (CR, LF, ESC, NUL's neighbours, DEL) become '?'; the rest stays. */
static void
test_mask_controls(void **state)
{
	char s[] = "a\r\nb\x1b[31mc\x7f\x01 d\tz\xc3\xa9";

	(void)state;
	str_mask_controls(s);
	assert_string_equal(s, "a??b?[31mc?? d?z\xc3\xa9");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_str_copy_truncation),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_size_and_duration),
		cmocka_unit_test(test_random_hex),
		cmocka_unit_test(test_mask_controls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
