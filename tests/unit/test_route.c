/* test_route.c - route.c: SPEC 5 decisions as a pure function. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "route.h"
#include "unit.h"

struct fixture {
	struct conf *c;
	struct aliases *a;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char *cpath = write_temp(
	    "hostname = \"mx.example.com\"\n"
	    "local_domains = { \"example.com\" }\n"
	    "smarthost \"isp\" { host = \"127.0.0.1\" }\n");
	char *apath = write_temp(
	    "support: \"|/bin/true\"\n"
	    "also: support\n"
	    "fwd: elsewhere@remote.test\n"
	    "local2: support@example.com\n"
	    "both: \"|/bin/true\", \"|/bin/false\"\n"
	    "dangling: nosuchname\n"
	    "/^t-(\\d+)$/: \"|/bin/t $1\"\n");
	struct diag d = {NULL, NULL, 0};

	f->c = conf_load(cpath, 0, &d);
	f->a = aliases_load(apath, getuid(), &d);
	unlink(cpath);
	unlink(apath);
	free(cpath);
	free(apath);
	if (f->c == NULL || f->a == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	aliases_free(f->a);
	conf_free(f->c);
	free(f);
	return 0;
}

static void
route(struct fixture *f, const char *address, int relay, struct route_result *r)
{
	struct addr a;

	assert_int_equal(addr_parse_plain(address, &a), ADDR_OK);
	route_address(f->c, f->a, &a, relay, r);
}

static void
test_pipe_and_extension(void **state)
{
	struct fixture *f = *state;
	struct route_result r, r2;
	const struct route_dest *d;

	route(f, "Support+42@Example.COM", 0, &r);
	assert_int_equal(r.reply.code, 250);
	d = route_pipe(&r);
	assert_non_null(d);
	assert_string_equal(d->target->cmd.argv[0], "/bin/true");
	assert_string_equal(r.extension, "42");
	assert_string_equal(r.local, "Support+42");
	route(f, "also@example.com", 0, &r2);
	assert_int_equal(r2.reply.code, 250);
	assert_false(route_same_run(&r, &r2));      /* extension differs */
	route(f, "support@example.com", 0, &r);
	assert_true(route_same_run(&r, &r2));       /* T83: same alias entry */
	route(f, "local2@example.com", 0, &r);      /* local-domain address target */
	assert_non_null(route_pipe(&r));
}

static void
test_regex_runs_differ_by_capture(void **state)
{
	struct fixture *f = *state;
	struct route_result r1, r2, r3;

	route(f, "t-1@example.com", 0, &r1);
	route(f, "t-2@example.com", 0, &r2);
	route(f, "t-1@example.com", 0, &r3);
	assert_int_equal(r1.reply.code, 250);
	assert_string_equal(r1.caps.num[1], "1");
	assert_false(route_same_run(&r1, &r2));
	assert_true(route_same_run(&r1, &r3));
}

static void
test_rejections(void **state)
{
	struct fixture *f = *state;
	struct route_result r;

	route(f, "nobody@example.com", 0, &r);
	assert_int_equal(r.reply.code, 550);
	assert_string_equal(r.reply.status, "5.1.1");
	/* SPEC 5: routing characters never rewrite into another destination. */
	route(f, "v%foreign.test@example.com", 1, &r);
	assert_int_equal(r.reply.code, 550);
	route(f, "foreign.test!v@example.com", 1, &r);
	assert_int_equal(r.reply.code, 550);
	/* T48: relay denied for the untrusted. */
	route(f, "v@foreign.test", 0, &r);
	assert_int_equal(r.reply.code, 554);
	assert_string_equal(r.reply.status, "5.7.1");
	/* Two programs for one recipient: a configuration error, temporary. */
	route(f, "both@example.com", 0, &r);
	assert_int_equal(r.reply.code, 451);
	route(f, "dangling@example.com", 0, &r);
	assert_int_equal(r.reply.code, 550);
}

static void
test_smarthost_and_missing(void **state)
{
	struct fixture *f = *state;
	struct route_result r;
	struct addr a;

	route(f, "fwd@example.com", 0, &r);      /* an address alias: the smarthost */
	assert_int_equal(r.reply.code, 250);
	assert_int_equal(r.ndest, 1);
	assert_int_equal(r.dest[0].kind, ROUTE_SMARTHOST);
	assert_string_equal(r.dest[0].address, "elsewhere@remote.test");
	route(f, "v@foreign.test", 1, &r);
	assert_int_equal(r.reply.code, 250);
	assert_string_equal(r.dest[0].address, "v@foreign.test");
	/* No smarthost configured: 550 5.3.5 (SPEC 5.3). */
	f->c->nsmarthosts = 0;
	route(f, "v@foreign.test", 1, &r);
	assert_int_equal(r.reply.code, 550);
	assert_string_equal(r.reply.status, "5.3.5");
	f->c->nsmarthosts = 1;
	/* A missing table is a temporary lookup failure (STYLE habit 9). */
	assert_int_equal(addr_parse_plain("support@example.com", &a), ADDR_OK);
	route_address(f->c, NULL, &a, 0, &r);
	assert_int_equal(r.reply.code, 451);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipe_and_extension),
		cmocka_unit_test(test_regex_runs_differ_by_capture),
		cmocka_unit_test(test_rejections),
		cmocka_unit_test(test_smarthost_and_missing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
