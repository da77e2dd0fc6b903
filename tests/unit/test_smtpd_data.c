/* test_smtpd_data.c - smtpd_data.c: CRLF.CRLF only, dot-unstuffing, limits. */
#define _GNU_SOURCE   /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

#include "smtpd_data.h"
#include "util.h"
#include "unit.h"

struct memsink {
	char *buf;
	size_t len, cap;
	int fail_after;       /* fail writes after this many bytes (-1: never) */
};

static int
mem_write(void *ctx, const char *p, size_t n)
{
	struct memsink *m = ctx;

	if (m->fail_after >= 0 && m->len + n > (size_t)m->fail_after) {
		errno = ENOSPC;
		return -1;
	}
	if (m->len + n > m->cap) {
		m->cap = (m->len + n) * 2;
		m->buf = realloc(m->buf, m->cap);
	}
	memcpy(m->buf + m->len, p, n);
	m->len += n;
	return 0;
}

/* run - feed input through a pipe (from a child for large inputs). */
static void
run(const char *input, size_t len, uint64_t max, struct memsink *m,
    struct data_result *res, struct reader *rd)
{
	int fds[2];
	pid_t pid;
	struct data_limits lim = {max, 100, 2000, 0, 0};
	struct data_sink sink = {mem_write, m};

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		write_all(fds[1], input, len);
		_exit(0);
	}
	close(fds[1]);
	reader_init(rd, fds[0]);
	data_read(rd, &lim, &sink, res);
	waitpid(pid, NULL, 0);
	close(fds[0]);
}

#define RUN(s, max) do { \
	m.len = 0; m.fail_after = -1; \
	run(s, sizeof(s) - 1, max, &m, &res, &rd); \
} while (0)

static void
test_dot_unstuffing_and_end(void **state)
{
	struct memsink m = {0};
	struct data_result res;
	struct reader rd;

	(void)state;
	/* T10 */
	RUN("Subject: x\r\n\r\n..\r\n..x\r\n.x\r\n.\r\nNEXT", 1 << 20);
	assert_int_equal(res.end, DATA_COMPLETE);
	assert_false(res.bare_newline);
	assert_int_equal(m.len, res.size);
	assert_memory_equal(m.buf, "Subject: x\n\n.\n.x\nx\n", m.len);
	/* What follows the end stays for the next command (T27). */
	assert_int_equal(reader_pending(&rd), 4);
	RUN(".\r\n", 1 << 20);
	assert_int_equal(res.end, DATA_COMPLETE);
	assert_int_equal(m.len, 0);
	free(m.buf);
}

static void
test_smuggling_sequences(void **state)
{
	static const char *const seq[] = {
		"\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r.\r\n", "\r.\n", "\n.\r",
		"\r\n.\r\r\n", "\r\r\n.\r\r\n",
	};
	struct memsink m = {0};
	struct data_result res;
	struct reader rd;
	char in[256];

	(void)state;
	/* T17-T23: never the end; the real CRLF.CRLF is; the message is flagged. */
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		int n = snprintf(in, sizeof(in), "S: x\r\n\r\nbody%sMAIL FROM:<a@b>\r\n.\r\n",
		    seq[i]);

		m.len = 0;
		m.fail_after = -1;
		run(in, (size_t)n, 1 << 20, &m, &res, &rd);
		assert_int_equal(res.end, DATA_COMPLETE);
		assert_true(res.bare_newline);
		assert_int_equal(reader_pending(&rd), 0);
		assert_non_null(memmem(m.buf, m.len, "MAIL FROM", 9));
	}
	/* T22: NUL before the dot is data; no bare newline. */
	RUN("S: x\r\n\r\n\x00.\r\nrest\r\n.\r\n", 1 << 20);
	assert_int_equal(res.end, DATA_COMPLETE);
	assert_false(res.bare_newline);
	assert_int_equal(m.len, 14);
	assert_memory_equal(m.buf, "S: x\n\n\0.\nrest\n", 14);
	free(m.buf);
}

static void
test_limits(void **state)
{
	struct memsink m = {0};
	struct data_result res;
	struct reader rd;
	char *big = malloc(30000);
	size_t n = 0;

	(void)state;
	/* T30: 5,000 octets on one line spans reader chunks; flagged, read to the end. */
	n += (size_t)sprintf(big, "S: x\r\n\r\n");
	memset(big + n, 'y', 20000);
	n += 20000;
	n += (size_t)sprintf(big + n, "\r\nok\r\n.\r\n");
	m.fail_after = -1;
	run(big, n, 1 << 20, &m, &res, &rd);
	assert_int_equal(res.end, DATA_COMPLETE);
	assert_true(res.line_too_long);
	assert_false(res.bare_newline);
	/* T31: over the size limit: stops storing, reads to the end. */
	m.len = 0;
	run(big, n, 1000, &m, &res, &rd);
	assert_int_equal(res.end, DATA_COMPLETE);
	assert_true(res.too_big);
	assert_true(m.len <= 1000);
	/* 998 octets + CRLF is exactly the limit. */
	n = (size_t)sprintf(big, "S: x\r\n\r\n");
	memset(big + n, 'z', 998);
	n += 998;
	n += (size_t)sprintf(big + n, "\r\n.\r\n");
	m.len = 0;
	run(big, n, 1 << 20, &m, &res, &rd);
	assert_false(res.line_too_long);
	/* T66: a failing sink (ENOSPC) is remembered; reading goes on to the end. */
	m.len = 0;
	m.fail_after = 5;
	run(big, n, 1 << 20, &m, &res, &rd);
	assert_int_equal(res.end, DATA_COMPLETE);
	assert_int_equal(res.write_errno, ENOSPC);
	free(big);
	free(m.buf);
}

static void
test_headers(void **state)
{
	struct memsink m = {0};
	struct data_result res;
	struct reader rd;

	(void)state;
	RUN("Return-Path: <x@y>\r\n\tfolded\r\nReceived: a\r\nreceived: b\r\n"
	    "Delivered-To: <RT@Example.com>\r\nSubject: s\r\n\r\nReceived: body\r\n.\r\n",
	    1 << 20);
	assert_int_equal(res.hops, 2);
	assert_int_equal(res.ndelivered_to, 1);
	assert_string_equal(res.delivered_to[0], "RT@Example.com");
	assert_memory_equal(m.buf, "Received: a\nreceived: b\nDelivered-To: <RT@Example.com>\n"
	    "Subject: s\n\nReceived: body\n", m.len);
	assert_string_equal(res.message_id, "");
	free(m.buf);
	/* The first Message-ID: of the header, for the log; none in the body. */
	memset(&m, 0, sizeof(m));
	RUN("Subject: s\r\nMessage-ID:   <1@a.example> \r\nmessage-id: <2@b>\r\n\r\n"
	    "Message-ID: <body@c>\r\n.\r\n", 1 << 20);
	assert_string_equal(res.message_id, "<1@a.example>");
	free(m.buf);
	memset(&m, 0, sizeof(m));
	{
		/* Bounded: a huge one is cut, never overflows. */
		char big[2000];

		memset(big, 0, sizeof(big));
		strcpy(big, "Message-ID: <");
		memset(big + 13, 'x', 600);
		strcat(big, ">\r\n\r\nbody\r\n.\r\n");
		m.len = 0;
		m.fail_after = -1;
		run(big, strlen(big), 1 << 20, &m, &res, &rd);
		assert_int_equal(res.end, DATA_COMPLETE);
		assert_int_equal(strlen(res.message_id), DATA_MESSAGE_ID_MAX - 1);
		free(m.buf);
	}
}

static void
test_eof_and_timeout(void **state)
{
	struct memsink m = {0};
	struct data_result res;
	struct reader rd;
	struct data_limits lim = {1 << 20, 100, 200, 0, 0};
	struct data_sink sink = {mem_write, &m};
	int fds[2];

	(void)state;
	RUN("S: x\r\n\r\nno end", 1 << 20);
	assert_int_equal(res.end, DATA_EOF);
	/* T13-like: nothing arrives within the deadline. */
	assert_int_equal(pipe(fds), 0);
	reader_init(&rd, fds[0]);
	m.fail_after = -1;
	data_read(&rd, &lim, &sink, &res);
	assert_int_equal(res.end, DATA_TIMEOUT);
	close(fds[0]);
	close(fds[1]);
	free(m.buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dot_unstuffing_and_end),
		cmocka_unit_test(test_smuggling_sequences),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_eof_and_timeout),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
