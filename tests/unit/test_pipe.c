/* test_pipe.c - pipe.c: running programs and the exit-status table. */
#define _GNU_SOURCE   /* F_GET_SEALS */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <time.h>

#include "pipe.h"
#include "util.h"
#include "unit.h"

static const int tempfail[] = {75, 71, 74};

static void
sh(const char *script, long timeout, struct pipe_result *res)
{
	char *copy = strdup(script);
	char *argv[] = {"/bin/sh", "-c", copy, NULL};
	char *envp[] = {"PATH=/usr/bin:/bin", "ONLY=this", NULL};
	struct pipe_request req = {0};
	int fd = open("/dev/null", O_RDONLY);

	req.argv = argv;
	req.envp = envp;
	req.path = "/usr/bin:/bin";
	req.timeout = timeout;
	req.stdin_fd = fd;
	pipe_run(&req, res);
	close(fd);
	free(copy);
}

/*
 * SPEC 7: the program's input is Return-Path:, one Delivered-To: per
 * recipient, then the message; read from its start, and no one can change
 * it (a program writing to its stdin must not alter what others read).
 */
static void
test_make_input(void **state)
{
	const char *const rcpts[] = {"a@example.com", "b@example.com"};
	const char *msg = "Subject: hi\n\nbody\n";
	char got[256];
	FILE *fp = tmpfile();
	ssize_t n;
	int fd;

	(void)state;
	assert_non_null(fp);
	assert_int_equal(fputs(msg, fp) >= 0, 1);
	fflush(fp);
	lseek(fileno(fp), 0, SEEK_END);     /* read from offset 0 whatever the offset */
	fd = pipe_make_input(fileno(fp), "s@remote.test", rcpts, 2);
	assert_true(fd >= 0);
	n = read(fd, got, sizeof(got) - 1);
	assert_true(n > 0);
	got[n] = '\0';
	assert_string_equal(got, "Return-Path: <s@remote.test>\nDelivered-To: a@example.com\n"
	    "Delivered-To: b@example.com\nSubject: hi\n\nbody\n");
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(write(fd, "X", 1), -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(ftruncate(fd, 0), -1);
	assert_int_equal(fcntl(fd, F_GET_SEALS) & F_SEAL_SEAL, F_SEAL_SEAL);
	close(fd);
	fclose(fp);
}

static void
test_table(void **state)
{
	static const struct { int status, code; const char *dsn; } rows[] = {
		{0, 250, "2.0.0"}, {75, 451, "4.3.0"}, {71, 451, "4.3.0"}, {74, 451, "4.3.0"},
		{67, 550, "5.1.1"}, {68, 550, "5.1.2"}, {77, 550, "5.7.0"}, {65, 550, "5.6.0"},
		{78, 550, "5.3.5"}, {73, 550, "5.2.0"}, {76, 554, "5.5.0"}, {64, 554, "5.3.0"},
		{1, 554, "5.3.0"}, {200, 554, "5.3.0"},
	};
	struct pipe_result res = {0};
	struct smtp_reply r;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		res.outcome = PIPE_EXITED;
		res.status = rows[i].status;
		pipe_reply(&res, tempfail, 3, 0, &r);
		assert_int_equal(r.code, rows[i].code);
		assert_string_equal(r.status, rows[i].dsn);
	}
	/* 126/127 are temporary only from the shell. */
	res.status = 127;
	pipe_reply(&res, tempfail, 3, 1, &r);
	assert_int_equal(r.code, 451);
	pipe_reply(&res, tempfail, 3, 0, &r);
	assert_int_equal(r.code, 554);
	/* The other outcomes: 451, each said once (found by fuzz_session:
	 * "command could not be started: could not be started: ..."). */
	res.outcome = PIPE_SIGNALED;
	res.status = 9;
	pipe_reply(&res, tempfail, 3, 0, &r);
	assert_int_equal(r.code, 451);
	assert_string_equal(r.text, "command killed by signal 9");
	res.outcome = PIPE_TIMEDOUT;
	pipe_reply(&res, tempfail, 3, 0, &r);
	assert_int_equal(r.code, 451);
	assert_string_equal(r.text, "command timed out");
	res.outcome = PIPE_START_FAILED;
	res.err = ENOENT;
	pipe_reply(&res, tempfail, 3, 0, &r);
	assert_int_equal(r.code, 451);
	assert_string_equal(r.text, "command could not be started: No such file or directory");
	res.outcome = PIPE_STATUS_LOST;
	res.err = ECHILD;
	pipe_reply(&res, tempfail, 3, 0, &r);
	assert_int_equal(r.code, 451);
	assert_string_equal(r.text, "command exit status lost: No child processes");
	res.outcome = PIPE_EXITED;
	res.status = 75;
	pipe_reply(&res, tempfail, 3, 0, &r);
	assert_string_equal(r.text, "temporary failure: exit 75 (EX_TEMPFAIL)");
}

static void
test_output_codes(void **state)
{
	struct pipe_result res = {0};
	struct smtp_reply r;

	(void)state;
	res.outcome = PIPE_EXITED;
	res.status = 75;
	strcpy(res.output, "5.7.1 not allowed");
	pipe_reply(&res, tempfail, 3, 0, &r);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.status, "5.7.1");
	strcpy(res.output, "2.0.0 pretend");
	pipe_reply(&res, tempfail, 3, 0, &r);
	assert_int_equal(r.code, 451);          /* never a success from output */
	res.status = 0;
	strcpy(res.output, "5.1.1 ignored");
	pipe_reply(&res, tempfail, 3, 0, &r);
	assert_int_equal(r.code, 250);
	res.status = 67;
	strcpy(res.output, "5.1.10 x");
	pipe_reply(&res, tempfail, 3, 0, &r);
	assert_string_equal(r.status, "5.1.10");
	strcpy(res.output, "5.x.1 x");
	pipe_reply(&res, tempfail, 3, 0, &r);
	assert_string_equal(r.status, "5.1.1");
}

static void
test_run_outcomes(void **state)
{
	struct pipe_result res;

	(void)state;
	sh("exit 0", 10, &res);
	assert_int_equal(res.outcome, PIPE_EXITED);
	assert_int_equal(res.status, 0);
	sh("exit 75", 10, &res);
	assert_int_equal(res.status, 75);
	sh("kill -9 $$", 10, &res);
	assert_int_equal(res.outcome, PIPE_SIGNALED);
	assert_int_equal(res.status, 9);
	sh("printf '\\n\\n  first line\\r\\nsecond\\n'; echo x >&2; exit 1", 10, &res);
	assert_string_equal(res.output, "first line");
	sh("printf 'a\\001b\\377c'; exit 1", 10, &res);
	assert_string_equal(res.output, "a?b?c");
	/* T47: exactly the environment given. */
	sh("test \"$(env | sort | tr '\\n' ' ')\" = 'ONLY=this PATH=/usr/bin:/bin PWD=/ '"
	    " || test \"$(env | grep -v '^PWD=' | sort | tr '\\n' ' ')\" = "
	    "'ONLY=this PATH=/usr/bin:/bin '", 10, &res);
	assert_int_equal(res.status, 0);
}

static void
test_timeout_kills_group(void **state)
{
	struct pipe_result res;
	struct timespec t0, t1;
	char marker[] = "/tmp/undersmtpd-unit-gc-XXXXXX";
	char script[256];
	int fd = mkstemp(marker);

	(void)state;
	close(fd);
	unlink(marker);
	/* T73: the grandchild would write the marker after 3 s; the group dies at 1 s. */
	snprintf(script, sizeof(script), "(sleep 3; touch %s) & sleep 30", marker);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	sh(script, 1, &res);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(res.outcome, PIPE_TIMEDOUT);
	assert_true(t1.tv_sec - t0.tv_sec < 5);
	sleep(3);
	assert_int_not_equal(access(marker, F_OK), 0);
	/*
	 * The leader ends at the TERM of the timeout, a descendant ignores TERM:
	 * the group still gets its KILL (it would write the marker after 3 s).
	 */
	snprintf(script, sizeof(script), "(trap '' TERM; sleep 3; touch %s) & "
	    "trap 'exit 0' TERM; sleep 30", marker);
	sh(script, 1, &res);
	assert_int_equal(res.outcome, PIPE_TIMEDOUT);
	sleep(3);
	assert_int_not_equal(access(marker, F_OK), 0);
}

/*
 * watch - step pc as the launcher does, only when one of its fds is ready or
 * its wake time has come; the result, or a failure after 5 s (stuck).
 */
static struct pipe_result
watch(struct pipe_child *pc)
{
	int64_t give_up = now_ms() + 5000;

	for (;;) {
		struct pollfd pfd[3];
		size_t n = pipe_child_fds(pc, pfd);
		int64_t now = now_ms(), wake = pipe_child_wake(pc);
		int rc, due;

		if (now > give_up)
			fail_msg("the program's end was never seen: its steps stopped");
		rc = poll(pfd, n, wake <= now ? 0 : wake - now > 1000 ? 1000 : (int)(wake - now));
		due = pipe_child_wake(pc) <= now_ms();
		for (size_t i = 0; rc > 0 && i < n; i++)
			due |= pfd[i].revents != 0;
		if (due && pipe_child_step(pc, now_ms()))
			return pc->res;
	}
}

/* watch_without_pidfd - watch, as on a kernel without pidfd_open. */
static struct pipe_result
watch_without_pidfd(struct pipe_child *pc)
{
	if (pc->pidfd >= 0) {
		close(pc->pidfd);
		pc->pidfd = -1;
		pc->look_at = now_ms();
	}
	return watch(pc);
}

/*
 * Without a pidfd (an older kernel; valgrind), the end of a program that
 * closed its output early, or that could not start, is seen by the looks the
 * wake time asks for: a caller that steps only what is due still gets there.
 */
static void
test_watch_without_pidfd(void **state)
{
	char *argv1[] = {"/bin/sh", "-c", "exec >&- 2>&-; sleep 0.2; exit 3", NULL};
	char *argv2[] = {"/nonexistent/prog", NULL};
	char *envp[] = {NULL};
	struct pipe_request req = {0};
	struct pipe_child pc;
	struct pipe_result res;
	int fd = open("/dev/null", O_RDONLY);

	(void)state;
	req.envp = envp;
	req.path = "/usr/bin:/bin";
	req.timeout = 30;
	req.stdin_fd = fd;
	req.argv = argv1;
	assert_int_equal(pipe_start(&req, &pc), 0);
	res = watch_without_pidfd(&pc);
	assert_int_equal(res.outcome, PIPE_EXITED);
	assert_int_equal(res.status, 3);
	req.argv = argv2;
	assert_int_equal(pipe_start(&req, &pc), 0);
	res = watch_without_pidfd(&pc);
	assert_int_equal(res.outcome, PIPE_START_FAILED);
	assert_int_equal(res.err, ENOENT);
	close(fd);
}

static void
test_start_failures(void **state)
{
	char *argv1[] = {"/nonexistent/prog", NULL};
	char *argv2[] = {"not-on-the-path-at-all", NULL};
	char *envp[] = {NULL};
	struct pipe_request req = {0};
	struct pipe_result res;
	int fd = open("/dev/null", O_RDONLY);

	(void)state;
	req.envp = envp;
	req.path = "/usr/bin:/bin";
	req.timeout = 5;
	req.stdin_fd = fd;
	req.argv = argv1;
	pipe_run(&req, &res);
	assert_int_equal(res.outcome, PIPE_START_FAILED);
	assert_int_equal(res.err, ENOENT);
	req.argv = argv2;
	pipe_run(&req, &res);
	assert_int_equal(res.outcome, PIPE_START_FAILED);
	close(fd);
}

static void
test_large_output_bounded(void **state)
{
	struct pipe_result res;

	(void)state;
	/* T77: 20 MB of output is read and dropped; only the first line is kept. */
	sh("head -c 20000000 /dev/zero | tr '\\0' 'x'; exit 75", 30, &res);
	assert_int_equal(res.status, 75);
	assert_int_equal(strlen(res.output), PIPE_OUTPUT_MAX);
	assert_true(res.output_bytes == 20000000ULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_make_input),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_output_codes),
		cmocka_unit_test(test_run_outcomes),
		cmocka_unit_test(test_timeout_kills_group),
		cmocka_unit_test(test_start_failures),
		cmocka_unit_test(test_watch_without_pidfd),
		cmocka_unit_test(test_large_output_bounded),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
