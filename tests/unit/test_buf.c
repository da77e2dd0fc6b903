/*
 * test_buf.c - buf.c: the reader's chunks (at LF, at READER_SIZE, at end of
 * file), memory that never grows with a line, deadlines, and the writer's
 * batching, flushing and partial writes.
 */
#define _GNU_SOURCE              /* F_SETPIPE_SZ: a pipe of one page */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "buf.h"
#include "util.h"
#include "unit.h"

/* A regular file holding len bytes of text: reads return as much as asked. */
static int
file_with(const char *text, size_t len)
{
	char path[] = "/tmp/undersmtpd-buf-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write_all(fd, text, len), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* next - one chunk that must be there, inside the reader's own buffer. */
static size_t
next(struct reader *r, const char **chunk)
{
	size_t len = 0;

	assert_int_equal(reader_chunk(r, chunk, &len, now_ms() + 5000), IO_OK);
	assert_true(len > 0 && len <= READER_SIZE);
	assert_true(*chunk >= r->data && *chunk + len <= r->data + READER_SIZE);
	return len;
}

static void
test_reader_chunks_at_lf_and_eof(void **state)
{
	int p[2];
	struct reader r;
	const char *c;
	size_t len;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write_all(p[1], "EHLO a\r\nNOOP\n\nlast", 18), 0);
	close(p[1]);
	reader_init(&r, p[0]);
	len = next(&r, &c);
	assert_int_equal(len, 8);
	assert_memory_equal(c, "EHLO a\r\n", 8);
	len = next(&r, &c);
	assert_int_equal(len, 5);
	assert_memory_equal(c, "NOOP\n", 5);
	len = next(&r, &c);
	assert_int_equal(len, 1);
	assert_memory_equal(c, "\n", 1);
	/* What is left at end of file comes out without a LF, then EOF, and EOF again. */
	len = next(&r, &c);
	assert_int_equal(len, 4);
	assert_memory_equal(c, "last", 4);
	assert_int_equal(reader_chunk(&r, &c, &len, now_ms() + 5000), IO_EOF);
	assert_int_equal(reader_chunk(&r, &c, &len, now_ms() + 5000), IO_EOF);
	close(p[0]);
}

static void
test_reader_chunks_at_buffer_size(void **state)
{
	/*
	 * READER_SIZE a's; "b\n"; a line of exactly READER_SIZE bytes with its
	 * LF; READER_SIZE + 1 d's and a LF.  A chunk never exceeds READER_SIZE:
	 * a full buffer without a LF is handed out as it is.
	 */
	size_t total = READER_SIZE + 2 + READER_SIZE + READER_SIZE + 2;
	char *text = malloc(total), *got = malloc(total);
	size_t o = 0, g = 0, len;
	static const size_t want[] = {READER_SIZE, 2, READER_SIZE, READER_SIZE, 2};
	struct reader r;
	const char *c;
	int fd;

	(void)state;
	memset(text + o, 'a', READER_SIZE);
	o += READER_SIZE;
	memcpy(text + o, "b\n", 2);
	o += 2;
	memset(text + o, 'c', READER_SIZE - 1);
	o += READER_SIZE - 1;
	text[o++] = '\n';
	memset(text + o, 'd', READER_SIZE + 1);
	o += READER_SIZE + 1;
	text[o++] = '\n';
	assert_int_equal(o, total);
	fd = file_with(text, total);
	reader_init(&r, fd);
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		len = next(&r, &c);
		assert_int_equal(len, want[i]);
		memcpy(got + g, c, len);
		g += len;
	}
	assert_int_equal(reader_chunk(&r, &c, &len, now_ms() + 5000), IO_EOF);
	assert_int_equal(g, total);
	assert_memory_equal(got, text, total);
	close(fd);
	free(text);
	free(got);
}

static void
test_long_line_never_grows_memory(void **state)
{
	/* 1 MiB without a LF (T28, T37): every chunk lies in the fixed buffer. */
	size_t total = 1024 * 1024 + 17, sum = 0, len, chunks = 0;
	char *text = malloc(total);
	struct reader r;
	const char *c;
	int fd;

	(void)state;
	for (size_t i = 0; i < total; i++)
		text[i] = (char)('A' + i % 26);
	fd = file_with(text, total);
	reader_init(&r, fd);
	while (sum < total) {
		len = next(&r, &c);
		assert_memory_equal(c, text + sum, len);
		if (sum + len < total)
			assert_int_equal(len, READER_SIZE);
		sum += len;
		chunks++;
	}
	assert_int_equal(sum, total);
	assert_int_equal(chunks, total / READER_SIZE + 1);
	assert_int_equal(reader_chunk(&r, &c, &len, now_ms() + 5000), IO_EOF);
	close(fd);
	free(text);
}

static void
test_reader_deadline(void **state)
{
	/* Nothing arrives: the wait ends at the deadline (T13, T103). */
	int p[2];
	struct reader r;
	const char *c;
	size_t len;
	int64_t t0, waited;

	(void)state;
	assert_int_equal(pipe(p), 0);
	reader_init(&r, p[0]);
	t0 = now_ms();
	assert_int_equal(reader_chunk(&r, &c, &len, t0 + 150), IO_TIMEOUT);
	waited = now_ms() - t0;
	assert_true(waited >= 150);
	assert_true(waited < 3000);
	/* A deadline already past: no wait at all. */
	t0 = now_ms();
	assert_int_equal(reader_chunk(&r, &c, &len, t0 - 1), IO_TIMEOUT);
	assert_true(now_ms() - t0 < 1000);
	/* A line that ends after the deadline: the part that came is kept. */
	assert_int_equal(write_all(p[1], "par", 3), 0);
	assert_int_equal(reader_chunk(&r, &c, &len, now_ms() + 100), IO_TIMEOUT);
	assert_int_equal(reader_pending(&r), 3);
	assert_int_equal(write_all(p[1], "tial\n", 5), 0);
	len = next(&r, &c);
	assert_int_equal(len, 8);
	assert_memory_equal(c, "partial\n", 8);
	close(p[0]);
	close(p[1]);
}

static void
test_reader_interrupt_error_reset(void **state)
{
	int p[2], s[2];
	volatile sig_atomic_t flag = 1;
	struct reader r;
	const char *c;
	size_t len;
	int64_t t0;

	(void)state;
	assert_int_equal(pipe(p), 0);
	reader_init(&r, p[0]);
	r.interrupt = &flag;
	t0 = now_ms();
	assert_int_equal(reader_chunk(&r, &c, &len, t0 + 10000), IO_INTERRUPTED);
	assert_true(now_ms() - t0 < 2000);
	close(p[0]);
	close(p[1]);
	/* A descriptor that is not open: an error with errno, not EOF or a hang. */
	reader_init(&r, p[0]);
	assert_int_equal(reader_chunk(&r, &c, &len, now_ms() + 1000), IO_ERROR);
	assert_int_equal(errno, EBADF);
	/* A peer that resets the connection counts as end of file. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	assert_int_equal(write_all(s[0], "unread", 6), 0);
	close(s[1]);                      /* closed with data unread: ECONNRESET */
	reader_init(&r, s[0]);
	assert_int_equal(reader_chunk(&r, &c, &len, now_ms() + 1000), IO_EOF);
	close(s[0]);
}

static void
test_reader_pending_discard_waiting(void **state)
{
	int p[2];
	struct reader r;
	const char *c;
	size_t len;

	(void)state;
	assert_int_equal(pipe(p), 0);
	reader_init(&r, p[0]);
	assert_int_equal(reader_input_waiting(&r), 0);
	assert_int_equal(write_all(p[1], "STARTTLS\r\nRSET\r\n", 16), 0);
	assert_int_equal(reader_input_waiting(&r), 1);      /* readable fd */
	len = next(&r, &c);
	assert_memory_equal(c, "STARTTLS\r\n", len);
	assert_int_equal(reader_pending(&r), 6);
	assert_int_equal(reader_input_waiting(&r), 1);      /* buffered bytes */
	/* T45: what was buffered before STARTTLS is dropped, never read. */
	reader_discard(&r);
	assert_int_equal(reader_pending(&r), 0);
	assert_int_equal(reader_input_waiting(&r), 0);
	assert_int_equal(reader_chunk(&r, &c, &len, now_ms() + 50), IO_TIMEOUT);
	assert_int_equal(write_all(p[1], "QUIT\r\n", 6), 0);
	len = next(&r, &c);
	assert_int_equal(len, 6);
	assert_memory_equal(c, "QUIT\r\n", 6);
	close(p[0]);
	close(p[1]);
}

/* Each write on a SOCK_SEQPACKET socket is one record: recv counts writes. */
static ssize_t
one_record(int fd, char *buf, size_t size)
{
	return recv(fd, buf, size, MSG_DONTWAIT);
}

static void
test_writer_batches_and_flushes(void **state)
{
	int s[2];
	struct writer w;
	char buf[3 * WRITER_SIZE];
	char *big = malloc(WRITER_SIZE + 10);

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, s), 0);
	writer_init(&w, s[0]);
	writer_put(&w, "250-mx\r\n", 8, now_ms() + 1000);
	writer_put(&w, "250-PIPELINING\r\n", 16, now_ms() + 1000);
	writer_put(&w, "250 SIZE 1000\r\n", 15, now_ms() + 1000);
	/* Nothing is sent before the flush ... */
	assert_int_equal(one_record(s[1], buf, sizeof(buf)), -1);
	assert_int_equal(errno, EAGAIN);
	/* ... and the whole batch then goes out in one write. */
	assert_int_equal(writer_flush(&w, now_ms() + 1000), 0);
	assert_int_equal(one_record(s[1], buf, sizeof(buf)), 39);
	assert_memory_equal(buf, "250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", 39);
	assert_int_equal(one_record(s[1], buf, sizeof(buf)), -1);
	/* An empty flush writes nothing. */
	assert_int_equal(writer_flush(&w, now_ms() + 1000), 0);
	assert_int_equal(one_record(s[1], buf, sizeof(buf)), -1);
	/* A full buffer goes out by itself; the rest waits for the flush. */
	for (size_t i = 0; i < WRITER_SIZE + 10; i++)
		big[i] = (char)('a' + i % 26);
	writer_put(&w, big, WRITER_SIZE + 10, now_ms() + 1000);
	assert_int_equal(one_record(s[1], buf, sizeof(buf)), WRITER_SIZE);
	assert_memory_equal(buf, big, WRITER_SIZE);
	assert_int_equal(one_record(s[1], buf, sizeof(buf)), -1);
	assert_int_equal(writer_flush(&w, now_ms() + 1000), 0);
	assert_int_equal(one_record(s[1], buf, sizeof(buf)), 10);
	assert_memory_equal(buf, big + WRITER_SIZE, 10);
	close(s[0]);
	close(s[1]);
	free(big);
}

/* slow_reader - a child that reads fd to EOF slowly and checks the bytes. */
static pid_t
slow_reader(int fd, int other, const char *want, size_t len)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char buf[1000];
		size_t got = 0;
		ssize_t n;

		close(other);
		usleep(100 * 1000);
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			if (got + (size_t)n > len || memcmp(buf, want + got, (size_t)n) != 0)
				_exit(2);
			got += (size_t)n;
			usleep(500);
		}
		_exit(got == len ? 0 : 3);
	}
	return pid;
}

/* small_pipe - a pipe of one page, its write end non-blocking when asked. */
static void
small_pipe(int p[2], int nonblock)
{
	assert_int_equal(pipe(p), 0);
	assert_true(fcntl(p[1], F_SETPIPE_SZ, 4096) >= 4096);
	if (nonblock)
		assert_int_equal(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
}

static void
test_writer_partial_writes(void **state)
{
	/* Non-blocking socket, slow peer: partial writes and EAGAIN lose nothing. */
	size_t total = 5 * WRITER_SIZE + 123;
	char *text = malloc(total);
	struct writer w;
	int p[2], status;
	pid_t pid;

	(void)state;
	for (size_t i = 0; i < total; i++)
		text[i] = (char)('0' + i % 77);
	small_pipe(p, 1);
	pid = slow_reader(p[0], p[1], text, total);
	close(p[0]);
	writer_init(&w, p[1]);
	for (size_t o = 0; o < total; o += 1000)
		writer_put(&w, text + o, total - o < 1000 ? total - o : 1000, now_ms() + 10000);
	assert_int_equal(writer_flush(&w, now_ms() + 10000), 0);
	assert_int_equal(w.failed, 0);
	close(p[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(text);
}

static void
test_writer_deadline_and_failure(void **state)
{
	char *text = malloc(WRITER_SIZE);
	struct writer w;
	int p[2], queued = 0;
	int64_t t0, waited;

	(void)state;
	memset(text, 'x', WRITER_SIZE);
	/* A peer that never reads: the flush gives up at the deadline. */
	small_pipe(p, 1);
	writer_init(&w, p[1]);
	writer_put(&w, text, 100, now_ms() + 200);
	t0 = now_ms();
	writer_put(&w, text, WRITER_SIZE, t0 + 200);   /* fills the buffer: flushes */
	waited = now_ms() - t0;
	assert_int_equal(w.failed, 1);
	assert_true(waited >= 200);
	assert_true(waited < 5000);
	assert_int_equal(writer_flush(&w, now_ms() + 200), -1);
	assert_int_equal(ioctl(p[0], FIONREAD, &queued), 0);
	assert_int_equal(queued, 4096);                 /* the part that fitted */
	/* After a failure nothing more is written. */
	writer_put(&w, "250 ok\r\n", 8, now_ms() + 200);
	assert_int_equal(writer_flush(&w, now_ms() + 200), -1);
	assert_int_equal(ioctl(p[0], FIONREAD, &queued), 0);
	assert_int_equal(queued, 4096);
	close(p[0]);
	close(p[1]);
	/* A peer that went away: -1, not a crash by SIGPIPE. */
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	writer_init(&w, p[1]);
	writer_put(&w, "221 bye\r\n", 9, now_ms() + 200);
	assert_int_equal(writer_flush(&w, now_ms() + 200), -1);
	close(p[1]);
	free(text);
}

static volatile sig_atomic_t alarms;

static void
on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void
test_write_all_partial_and_eintr(void **state)
{
	/* A blocking pipe, a slow reader and a signal every 2 ms: short writes
	 * and EINTR happen, and every byte still arrives once, in order. */
	size_t total = 256 * 1024;
	char *text = malloc(total);
	struct sigaction sa, old;
	struct itimerval it = {{0, 2000}, {0, 2000}}, off = {{0, 0}, {0, 0}};
	int p[2], status, rc;
	pid_t pid;

	(void)state;
	for (size_t i = 0; i < total; i++)
		text[i] = (char)(i * 7 + i / 251);
	small_pipe(p, 0);
	pid = slow_reader(p[0], p[1], text, total);
	close(p[0]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;          /* no SA_RESTART: write returns early */
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	alarms = 0;
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	rc = write_all(p[1], text, total);
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	assert_int_equal(rc, 0);
	assert_true(alarms > 0);
	close(p[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* A real error is returned with errno. */
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	assert_int_equal(write_all(p[1], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(p[1]);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reader_chunks_at_lf_and_eof),
		cmocka_unit_test(test_reader_chunks_at_buffer_size),
		cmocka_unit_test(test_long_line_never_grows_memory),
		cmocka_unit_test(test_reader_deadline),
		cmocka_unit_test(test_reader_interrupt_error_reset),
		cmocka_unit_test(test_reader_pending_discard_waiting),
		cmocka_unit_test(test_writer_batches_and_flushes),
		cmocka_unit_test(test_writer_partial_writes),
		cmocka_unit_test(test_writer_deadline_and_failure),
		cmocka_unit_test(test_write_all_partial_and_eintr),
	};

	/* A peer that closed must give EPIPE, as in the daemon, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
