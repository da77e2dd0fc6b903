/*
 * test_filter.c - filter.c: the rewritten message's checks (CRLF and LF,
 * the last newline, bare CR, NUL, line length, size), the exit status table,
 * which filter a route has (global, alias block, smarthost blocks, a
 * conflict), the RECIPIENTS value, and the launcher's request kinds.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "filter.h"
#include "launcher.h"
#include "unit.h"

/* filtered - text through a struct filter_output of max bytes; its result and bytes. */
static int
filtered(const char *text, size_t len, uint64_t max, char *out, size_t outsize,
    struct filter_output *o)
{
	int fd = memfd_create("unit", 0);
	ssize_t n;
	int rc;

	assert_true(fd >= 0);
	filter_output_init(o, fd, max);
	/* In two pieces: a CR at the end of one, its LF at the start of the next. */
	rc = filter_output_add(o, text, len / 2);
	if (rc == 0)
		rc = filter_output_add(o, text + len / 2, len - len / 2);
	if (rc == 0)
		rc = filter_output_end(o);
	n = pread(fd, out, outsize - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	return rc;
}

static void
test_output_line_ends(void **state)
{
	struct filter_output o;
	char out[256];

	(void)state;
	assert_int_equal(filtered("A: b\r\n\r\nbody\r\n", 14, 1000, out, sizeof(out), &o), 0);
	assert_string_equal(out, "A: b\n\nbody\n");
	assert_int_equal(o.size, 11);
	assert_int_equal(filtered("A: b\n\nbody", 10, 1000, out, sizeof(out), &o), 0);
	assert_string_equal(out, "A: b\n\nbody\n");      /* the last newline added */
	assert_int_equal(filtered("A: b\r\n\nx\r\n", 10, 1000, out, sizeof(out), &o), 0);
	assert_string_equal(out, "A: b\n\nx\n");         /* mixed: both are line ends */
}

static void
test_output_not_a_message(void **state)
{
	struct filter_output o;
	char out[2048], line[1001];

	(void)state;
	assert_int_equal(filtered("A: b\n\nx\ry\n", 10, 1000, out, sizeof(out), &o), -1);
	assert_true(o.bad);
	assert_string_equal(o.why, "a bare CR");
	assert_int_equal(filtered("A: b\n\nx\r", 8, 1000, out, sizeof(out), &o), -1);
	assert_string_equal(o.why, "a bare CR");
	assert_int_equal(filtered("A: b\n\nx\0y\n", 10, 1000, out, sizeof(out), &o), -1);
	assert_string_equal(o.why, "a NUL character");
	assert_int_equal(filtered("", 0, 1000, out, sizeof(out), &o), -1);
	assert_string_equal(o.why, "nothing");
	memset(line, 'x', 998);
	line[998] = '\n';
	assert_int_equal(filtered(line, 999, 2000, out, sizeof(out), &o), 0);
	memset(line, 'x', 999);
	line[999] = '\n';
	assert_int_equal(filtered(line, 1000, 2000, out, sizeof(out), &o), -1);
	assert_string_equal(o.why, "a line longer than 998 octets");
}

static void
test_output_size(void **state)
{
	struct filter_output o;
	char out[64];

	(void)state;
	assert_int_equal(filtered("123456789\n", 10, 10, out, sizeof(out), &o), 0);
	assert_int_equal(filtered("1234567890\n", 11, 10, out, sizeof(out), &o), -1);
	assert_true(o.too_big);
	assert_false(o.bad);
	/* The added last newline counts too. */
	assert_int_equal(filtered("1234567890", 10, 10, out, sizeof(out), &o), -1);
	assert_true(o.too_big);
}

static void
reply_for(enum pipe_outcome outcome, int status, const char *output, char *line,
    size_t size)
{
	struct pipe_result res;
	struct smtp_reply rep;

	memset(&res, 0, sizeof(res));
	res.outcome = outcome;
	res.status = status;
	snprintf(res.output, sizeof(res.output), "%s", output);
	filter_reply(&res, &rep);
	smtp_reply_line(&rep, line, size);
}

static void
test_reply_table(void **state)
{
	char line[320];

	(void)state;
	reply_for(PIPE_EXITED, 0, "ok", line, sizeof(line));
	assert_string_equal(line, "250 2.0.0 filtered");
	reply_for(PIPE_EXITED, 75, "greylisted", line, sizeof(line));
	assert_string_equal(line, "451 4.7.1 Message deferred by the content filter: "
	    "greylisted");
	reply_for(PIPE_EXITED, 65, "Spam score 9", line, sizeof(line));
	assert_string_equal(line, "550 5.6.0 Spam score 9");
	reply_for(PIPE_EXITED, 77, "", line, sizeof(line));
	assert_string_equal(line, "550 5.7.0 Message refused by the content filter");
	reply_for(PIPE_EXITED, 78, "x", line, sizeof(line));
	assert_string_equal(line, "550 5.3.5 x");
	/* Outside 65-78 (64 included), or no exit at all: ours to fix, 451. */
	reply_for(PIPE_EXITED, 64, "usage", line, sizeof(line));
	assert_string_equal(line, "451 4.3.0 Local error in the content filter; try again "
	    "later");
	reply_for(PIPE_EXITED, 1, "x", line, sizeof(line));
	assert_int_equal(atoi(line), 451);
	reply_for(PIPE_TIMEDOUT, 0, "", line, sizeof(line));
	assert_int_equal(atoi(line), 451);
	reply_for(PIPE_SIGNALED, 9, "", line, sizeof(line));
	assert_int_equal(atoi(line), 451);
	reply_for(PIPE_REFUSED, 0, "no filter applies", line, sizeof(line));
	assert_int_equal(atoi(line), 451);
}

static void
test_filter_for_route(void **state)
{
	struct conf *c = conf_from_text("filter = \"/usr/bin/global\"\n"
	    "alias \"support\" { filter = \"/usr/bin/mine -x\"\nrewrite = yes }\n"
	    "alias \"sales\" { filter = \"\" }\n"
	    "alias \"other\" { timeout = 1m }\n"
	    "smarthost \"a\" { host = \"192.0.2.1\" filter = \"/usr/bin/out\" }\n"
	    "smarthost \"b\" { host = \"192.0.2.2\" filter = \"/usr/bin/out\" }\n");
	struct alias_entry support = {.name = "support"}, sales = {.name = "sales"},
	    other = {.name = "other"}, regex = {.name = "^support$", .re = &regex};
	struct route_result *r = calloc(1, sizeof(*r));
	const struct filter_conf *f;
	int conflict;

	(void)state;
	r->ndest = 1;
	r->dest[0].kind = ROUTE_PIPE;
	r->dest[0].entry = &support;
	f = filter_for_route(c, r, &conflict);
	assert_non_null(f);
	assert_string_equal(f->command, "/usr/bin/mine -x");
	assert_true(f->rewrite);
	r->dest[0].entry = &sales;                /* filter = "": none for it */
	assert_null(filter_for_route(c, r, &conflict));
	assert_false(conflict);
	r->dest[0].entry = &other;                /* a block without one: the global */
	assert_string_equal(filter_for_route(c, r, &conflict)->command, "/usr/bin/global");
	r->dest[0].entry = &regex;                /* blocks name plain aliases only */
	assert_string_equal(filter_for_route(c, r, &conflict)->command, "/usr/bin/global");
	r->dest[0].kind = ROUTE_SMARTHOST;
	r->dest[0].entry = NULL;
	assert_string_equal(filter_for_route(c, r, &conflict)->command, "/usr/bin/out");
	/* An alias to a program and an address: two filters, no one answer. */
	r->ndest = 2;
	r->dest[1].kind = ROUTE_PIPE;
	r->dest[1].entry = &other;
	assert_null(filter_for_route(c, r, &conflict));
	assert_true(conflict);
	conf_free(c);

	/* Without smarthost filters the global one is theirs. */
	c = conf_from_text("filter = \"/usr/bin/global\"\nsmarthost \"a\" { host = \"192.0.2.1\" }\n");
	r->ndest = 2;
	r->dest[0].kind = ROUTE_SMARTHOST;
	assert_false(filter_for_route(c, r, &conflict) == NULL);
	assert_false(conflict);
	conf_free(c);
	free(r);
}

static void
test_recipients_value(void **state)
{
	const char *few[] = {"a@example.com", "\"b c\"@example.com"};
	const char *many[200];
	char out[FILTER_RECIPIENTS_MAX + 1], addr[200][40];

	(void)state;
	filter_recipients(few, 2, out, sizeof(out));
	assert_string_equal(out, "a@example.com \"b c\"@example.com");
	for (int i = 0; i < 200; i++) {
		snprintf(addr[i], sizeof(addr[i]), "recipient-%03d@example.com", i);
		many[i] = addr[i];
	}
	filter_recipients(many, 200, out, sizeof(out));
	assert_true(strlen(out) <= FILTER_RECIPIENTS_MAX);
	assert_non_null(strstr(out, "recipient-000@example.com recipient-001@"));
	assert_string_equal(out + strlen(out) - 4, " ...");
	assert_null(strstr(out, "recipient-199@"));
}

static void
test_launcher_request_kinds(void **state)
{
	struct delivery_values v = {"who@example.com", "", "192.0.2.1", "h", "ID1", "",
	    "filter", "who@example.com other@example.org"}, got;
	char buf[LAUNCHER_MSG_MAX], why[200];
	size_t len = launcher_format(&v, buf, sizeof(buf));

	(void)state;
	assert_true(len > 0);
	assert_int_equal(launcher_parse(buf, len, &got, why, sizeof(why)), 0);
	assert_string_equal(got.kind, "filter");
	assert_string_equal(got.recipients, "who@example.com other@example.org");
	v.kind = NULL;
	v.recipients = NULL;
	len = launcher_format(&v, buf, sizeof(buf));
	assert_int_equal(launcher_parse(buf, len, &got, why, sizeof(why)), 0);
	assert_string_equal(got.kind, "");
	/* A kind the launcher does not know is refused, whatever it names. */
	v.kind = "shell";
	len = launcher_format(&v, buf, sizeof(buf));
	assert_int_equal(launcher_parse(buf, len, &got, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "kind"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_line_ends),
		cmocka_unit_test(test_output_not_a_message),
		cmocka_unit_test(test_output_size),
		cmocka_unit_test(test_reply_table),
		cmocka_unit_test(test_filter_for_route),
		cmocka_unit_test(test_recipients_value),
		cmocka_unit_test(test_launcher_request_kinds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
