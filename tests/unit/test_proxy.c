/* test_proxy.c - proxy.c: PROXY protocol v1 and v2 headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy.h"

static int
v1(const char *s, struct proxy_info *pi)
{
	return proxy_parse((const unsigned char *)s, strlen(s), pi);
}

static void
test_v1(void **state)
{
	struct proxy_info pi;

	(void)state;
	assert_int_equal(v1("PROXY TCP4 192.0.2.7 198.51.100.1 5555 25\r\nEHLO", &pi),
	    (int)strlen("PROXY TCP4 192.0.2.7 198.51.100.1 5555 25\r\n"));
	assert_int_equal(pi.family, AF_INET);
	assert_int_equal(pi.ip[0], 192);
	assert_int_equal(pi.ip[3], 7);
	assert_int_equal(v1("PROXY TCP6 2001:db8::1 2001:db8::2 5555 25\r\n", &pi),
	    (int)strlen("PROXY TCP6 2001:db8::1 2001:db8::2 5555 25\r\n"));
	assert_int_equal(pi.family, AF_INET6);
	assert_int_equal(v1("PROXY UNKNOWN\r\n", &pi), 15);
	assert_true(pi.local);
	assert_int_equal(v1("PROXY TCP4 192.0.2.7 198.51.100.1 5555", &pi), 0);   /* more */
	assert_int_equal(v1("PROX", &pi), 0);
	assert_int_equal(v1("EHLO x\r\n", &pi), -1);
	assert_int_equal(v1("PROXY TCP4 300.0.2.7 198.51.100.1 1 25\r\n", &pi), -1);
	assert_int_equal(v1("PROXY TCP4 192.0.2.7 198.51.100.1 99999 25\r\n", &pi), -1);
	assert_int_equal(v1("PROXY TCP5 192.0.2.7 198.51.100.1 1 25\r\n", &pi), -1);
	{
		char longline[200];

		memset(longline, 'A', sizeof(longline));
		memcpy(longline, "PROXY ", 6);
		assert_int_equal(proxy_parse((unsigned char *)longline, sizeof(longline),
		    &pi), -1);
	}
}

static void
test_v2(void **state)
{
	unsigned char h[64] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55,
	    0x49, 0x54, 0x0A, 0x21, 0x11, 0x00, 0x0C, 192, 0, 2, 9, 10, 0, 0, 1,
	    0x15, 0xB3, 0x00, 0x19};
	struct proxy_info pi;

	(void)state;
	assert_int_equal(proxy_parse(h, 28, &pi), 28);
	assert_int_equal(pi.family, AF_INET);
	assert_int_equal(pi.ip[3], 9);
	assert_int_equal(proxy_parse(h, 20, &pi), 0);       /* incomplete */
	assert_int_equal(proxy_parse(h, 10, &pi), 0);
	h[12] = 0x20;                                       /* LOCAL */
	assert_int_equal(proxy_parse(h, 28, &pi), 28);
	assert_true(pi.local);
	h[12] = 0x31;                                       /* version 3 */
	assert_int_equal(proxy_parse(h, 28, &pi), -1);
	h[12] = 0x21;
	h[14] = 0xFF;                                       /* length beyond the limit */
	assert_int_equal(proxy_parse(h, 64, &pi), -1);
	h[14] = 0;
	h[13] = 0x31;                                       /* AF_UNIX: not for us */
	assert_int_equal(proxy_parse(h, 28, &pi), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1),
		cmocka_unit_test(test_v2),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
