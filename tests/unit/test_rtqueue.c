/*
 * test_rtqueue.c - rtqueue.c and http.c: a REST 2 page's names, count and
 * per_page (escapes, surrogate pairs, names with control characters or too
 * long left out, nesting and garbage refused); HTTP responses (length,
 * chunked, cut short, not HTTP); URLs; the verify = rt_queue(X) forms and
 * which alias block a regex alias's check comes from; the cache file read
 * back only for its own url.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "rtqueue.h"
#include "unit.h"

static int
parse(const char *json, struct rtq_names *names, long *count, long *per_page, char *why)
{
	memset(names, 0, sizeof(*names));
	return rtq_parse_page(json, strlen(json), names, count, per_page, why, 200);
}

static void
test_page_names(void **state)
{
	struct rtq_names n;
	long count, per;
	char why[200];

	(void)state;
	assert_int_equal(parse("{\"count\":3,\"page\":1,\"per_page\":100,\"total\":3,"
	    "\"pages\":1,\"items\":[{\"type\":\"queue\",\"id\":\"1\",\"_url\":\"http:\\/\\/rt"
	    "\\/REST\\/2.0\\/queue\\/1\",\"Name\":\"General\"},{\"Name\":\"Caf\\u00e9 \\ud83d"
	    "\\ude00\",\"id\":\"2\"},{\"id\":\"3\",\"Name\":\"Sales \\\"EU\\\"\"}],"
	    "\"next_page\":null}", &n, &count, &per, why), 0);
	assert_int_equal(count, 3);
	assert_int_equal(per, 100);
	assert_int_equal(n.n, 3);
	assert_string_equal(n.v[0], "General");
	assert_string_equal(n.v[1], "Caf\xc3\xa9 \xf0\x9f\x98\x80");
	assert_string_equal(n.v[2], "Sales \"EU\"");
	rtq_names_free(&n);
	/* Whitespace anywhere, an empty list, no total (a user who cannot see all). */
	assert_int_equal(parse(" {\n \"items\" : [ ] ,\n \"count\" : 0 , \"per_page\" : 20,"
	    " \"total\": null }\n", &n, &count, &per, why), 0);
	assert_int_equal(n.n, 0);
	assert_int_equal(count, 0);
	assert_int_equal(per, 20);
}

static void
test_page_names_left_out(void **state)
{
	struct rtq_names n;
	long count, per;
	char why[200], json[1200], longname[RTQ_NAME_MAX + 10];

	(void)state;
	/* A control character (it would break the cache's lines), a name too long. */
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	snprintf(json, sizeof(json), "{\"count\":3,\"per_page\":100,\"items\":[{\"Name\":"
	    "\"a\\nb\"},{\"Name\":\"%s\"},{\"Name\":\"ok\"},{\"Name\":5},{\"Name\":\"\"},"
	    "{\"Name\":\"x\\u0000y\"}]}", longname);
	assert_int_equal(parse(json, &n, &count, &per, why), 0);
	assert_int_equal(n.n, 1);
	assert_string_equal(n.v[0], "ok");
	rtq_names_free(&n);
	/* A "Name" outside items is not a queue. */
	assert_int_equal(parse("{\"Name\":\"x\",\"count\":0,\"per_page\":1,\"items\":[]}", &n,
	    &count, &per, why), 0);
	assert_int_equal(n.n, 0);
}

static void
test_page_refused(void **state)
{
	static const char *bad[] = {
		"", "[]", "{", "{\"items\":[{\"Name\":\"a\"}]", "{\"items\":[{\"Name\":\"a}]}",
		"{\"count\":1,}", "{\"a\":tru}", "{\"a\":\"\\x\"}", "{\"a\":\"\\ud83d\"}",
		"{\"a\":\"\\ude00\"}", "{\"a\":\"\\u12g4\"}", "{\"a\":1} x", "{\"a\":\"\x01\"}",
		"{\"a\":1 \"b\":2}", "{\"a\":[1 2]}",
	};
	char deep[200];
	struct rtq_names n;
	long count, per;
	char why[200];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (parse(bad[i], &n, &count, &per, why) == 0)
			fail_msg("taken: %s", bad[i]);
		rtq_names_free(&n);
	}
	memset(deep, '[', 100);
	snprintf(deep, sizeof(deep), "{\"a\":%.*s", 60, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
	assert_int_equal(parse(deep, &n, &count, &per, why), -1);
	assert_non_null(strstr(why, "nested too deep"));
}

static int
response(const char *text, struct http_response *r, char *why)
{
	return http_parse(text, strlen(text), r, why, 200);
}

static void
test_http_responses(void **state)
{
	struct http_response r;
	char why[200];

	(void)state;
	assert_int_equal(response("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "content-length: 5\r\n\r\nhello, and more", &r, why), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.len, 5);
	assert_string_equal(r.body, "hello");
	http_response_free(&r);
	assert_int_equal(response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5;name=x\r\nhello\r\nA\r\n, world!!!\r\n0\r\n\r\n", &r, why), 0);
	assert_string_equal(r.body, "hello, world!!!");
	http_response_free(&r);
	assert_int_equal(response("HTTP/1.0 401 Unauthorized\r\n\r\nno", &r, why), 0);
	assert_int_equal(r.status, 401);
	assert_string_equal(r.body, "no");
	http_response_free(&r);
	/* Cut short, malformed, not HTTP at all. */
	assert_int_equal(response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", &r,
	    why), -1);
	assert_int_equal(response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhel", &r, why), -1);
	assert_int_equal(response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "zz\r\n", &r, why), -1);
	assert_int_equal(response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "ffffffffffffffffffff\r\nx\r\n0\r\n\r\n", &r, why), -1);
	assert_int_equal(response("HTTP/1.1 200 OK\r\nContent-Length: 5", &r, why), -1);
	assert_int_equal(response("HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello", &r,
	    why), -1);
	assert_int_equal(response("SMTP 220 hello\r\n\r\n", &r, why), -1);
	assert_int_equal(response("HTTP/1.1 999 What\r\n\r\n", &r, why), -1);
}

/* A header as long as allowed, and one byte longer (the helper's review found
 * the second one written past the end of the parser's copy). */
static void
test_http_header_at_its_limit(void **state)
{
	struct http_response r;
	char why[200];
	size_t len = 65536 + 16;
	char *buf = malloc(len + 1);

	(void)state;
	for (size_t extra = 0; extra < 4; extra++) {
		size_t end = 65536 - 4 + extra;        /* where the blank line starts */

		memset(buf, 'x', len);
		memcpy(buf, "HTTP/1.1 200 OK\r\nX: ", 20);
		memcpy(buf + end, "\r\n\r\nbody", 8);
		buf[end + 8] = '\0';
		if (extra == 0) {
			assert_int_equal(http_parse(buf, end + 8, &r, why, sizeof(why)), 0);
			assert_string_equal(r.body, "body");
			http_response_free(&r);
		} else {
			assert_int_equal(http_parse(buf, end + 8, &r, why, sizeof(why)), -1);
			assert_non_null(strstr(why, "no end of the response's header"));
		}
	}
	free(buf);
}

static void
test_urls(void **state)
{
	struct url u;

	(void)state;
	assert_int_equal(url_parse("https://rt.example.com/", &u), 0);
	assert_true(u.tls);
	assert_string_equal(u.host, "rt.example.com");
	assert_string_equal(u.port, "443");
	assert_string_equal(u.path, "/");
	assert_int_equal(url_parse("http://[::1]:8080/rt", &u), 0);
	assert_false(u.tls);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.port, "8080");
	assert_string_equal(u.path, "/rt");
	assert_int_equal(url_parse("http://rt", &u), 0);
	assert_string_equal(u.path, "/");
	assert_string_equal(u.port, "80");
	assert_int_equal(url_parse("ftp://rt/", &u), -1);
	assert_int_equal(url_parse("http://user:pw@rt/", &u), -1);
	assert_int_equal(url_parse("http://rt/?q=1", &u), -1);
	assert_int_equal(url_parse("http://rt:0/", &u), -1);
	assert_int_equal(url_parse("http://rt:65536/", &u), -1);
	assert_int_equal(url_parse("http://rt:80x/", &u), -1);
	assert_int_equal(url_parse("http:///", &u), -1);
	assert_int_equal(url_parse("http://rt/a b", &u), -1);
	assert_int_equal(url_parse("http://[::1/", &u), -1);
}

static void
test_verify_forms(void **state)
{
	char t[64];

	(void)state;
	assert_int_equal(conf_verify_template("rt_queue(\"${queue}\")", t, sizeof(t)), 0);
	assert_string_equal(t, "${queue}");
	assert_int_equal(conf_verify_template("rt_queue(${queue})", t, sizeof(t)), 0);
	assert_string_equal(t, "${queue}");
	assert_int_equal(conf_verify_template("rt_queue(General)", t, sizeof(t)), 0);
	assert_string_equal(t, "General");
	assert_int_equal(conf_verify_template("rt_queue()", t, sizeof(t)), -1);
	assert_int_equal(conf_verify_template("rt_queue(\"\")", t, sizeof(t)), -1);
	assert_int_equal(conf_verify_template("rt_queue(\"x)", t, sizeof(t)), -1);
	assert_int_equal(conf_verify_template("queue(x)", t, sizeof(t)), -1);
	assert_int_equal(conf_verify_template("rt_queue(a(b))", t, sizeof(t)), -1);
}

static void
test_verify_for_alias(void **state)
{
	struct conf *c = conf_from_text("rt_queues { url = \"http://rt/\" token_file = \"/t\" }\n"
	    "alias \"/^rt-(?<queue>[a-z]+)$/\" { verify = 'rt_queue(\"${queue}\")' }\n"
	    "alias \"support\" { verify = \"rt_queue(Support)\" }\n"
	    "alias \"sales\" { timeout = 1m }\n"
	    "alias \"^x-(.*)$\" { verify = \"rt_queue($1)\" }\n");

	(void)state;
	assert_string_equal(conf_verify_for(c, "^rt-(?<queue>[a-z]+)$", 1), "${queue}");
	assert_string_equal(conf_verify_for(c, "support", 0), "Support");
	assert_null(conf_verify_for(c, "sales", 0));
	/* A regex alias's block may also be titled without the slashes. */
	assert_string_equal(conf_verify_for(c, "^x-(.*)$", 1), "$1");
	assert_null(conf_verify_for(c, "^y-(.*)$", 1));
	conf_free(c);
}

static void
test_cache_for_its_url(void **state)
{
	char dir[] = "/tmp/undersmtpd-rtq-XXXXXX", text[300], path[300];
	struct conf *c;
	struct rtq_names n;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(text, sizeof(text), "spool_dir = \"%s\"\nrt_queues { url = \"http://rt/\" "
	    "token_file = \"/t\" }\n", dir);
	c = conf_from_text(text);
	assert_int_equal(rtq_read(c, &n), -1);               /* none yet */
	assert_int_equal(rtq_lookup(c, "x", 0), RTQ_NO_LIST);
	snprintf(path, sizeof(path), "%s/rt-queues", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "undersmtpd-rt-queues 1\nurl http://rt/\nfetched 1700000000\nGeneral\n"
	    "Sales Team\n");
	fclose(fp);
	assert_int_equal(rtq_read(c, &n), 0);
	assert_int_equal(n.n, 2);
	assert_int_equal((long)n.fetched, 1700000000L);
	rtq_names_free(&n);
	assert_int_equal(rtq_lookup(c, "general", 0), RTQ_KNOWN);
	assert_int_equal(rtq_lookup(c, "SALES TEAM", 0), RTQ_KNOWN);
	assert_int_equal(rtq_lookup(c, "Sales", 0), RTQ_UNKNOWN);
	conf_free(c);
	/* Another RT's list is no list. */
	snprintf(text, sizeof(text), "spool_dir = \"%s\"\nrt_queues { url = \"http://rt2/\" "
	    "token_file = \"/t\" }\n", dir);
	c = conf_from_text(text);
	assert_int_equal(rtq_lookup(c, "General", 0), RTQ_NO_LIST);
	conf_free(c);
	/* Never read through a link. */
	unlink(path);
	snprintf(text, sizeof(text), "%s/elsewhere", dir);
	assert_int_equal(symlink(text, path), 0);
	fp = fopen(text, "w");
	assert_non_null(fp);
	fprintf(fp, "undersmtpd-rt-queues 1\nurl http://rt/\nfetched 1\nGeneral\n");
	fclose(fp);
	snprintf(text, sizeof(text), "spool_dir = \"%s\"\nrt_queues { url = \"http://rt/\" "
	    "token_file = \"/t\" }\n", dir);
	c = conf_from_text(text);
	assert_int_equal(rtq_read(c, &n), -1);
	conf_free(c);
	remove_tree(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_names),
		cmocka_unit_test(test_page_names_left_out),
		cmocka_unit_test(test_page_refused),
		cmocka_unit_test(test_http_responses),
		cmocka_unit_test(test_http_header_at_its_limit),
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_verify_forms),
		cmocka_unit_test(test_verify_for_alias),
		cmocka_unit_test(test_cache_for_its_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
