/*
 * buf.h - bounded, deadline-driven I/O on a file descriptor.
 *
 * struct reader buffers input and hands out chunks that end at a LF or at a
 * full buffer, so no caller ever sees more than READER_SIZE bytes at once and
 * no line, however long, grows memory.  struct writer buffers replies so a
 * pipelined batch is answered in one write.  Every wait is a poll() bounded
 * by an absolute deadline (now_ms() clock).
 */
#ifndef BUF_H
#define BUF_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define READER_SIZE 8192
#define WRITER_SIZE 8192

enum io_status {
	IO_OK = 0,
	IO_EOF = -1,
	IO_TIMEOUT = -2,
	IO_ERROR = -3,       /* errno says why */
	IO_INTERRUPTED = -4, /* a signal the caller asked to hear about */
};

struct reader {
	int fd;
	void *tls;          /* SSL * after STARTTLS; the writer's fd is tls_wfd */
	int tls_wfd;
	size_t start, end;
	int eof;
	/* Set by the caller: when it becomes non-zero a wait returns IO_INTERRUPTED. */
	const volatile sig_atomic_t *interrupt;
	char data[READER_SIZE];
};

struct writer {
	int fd;
	void *tls;          /* SSL * after STARTTLS; the reader's fd is tls_rfd */
	int tls_rfd;
	size_t len;
	int failed;
	char data[WRITER_SIZE];
};

void reader_init(struct reader *r, int fd);
/* reader_pending - bytes already read and not yet consumed. */
size_t reader_pending(const struct reader *r);
/*
 * reader_input_waiting - the peer already sent more: bytes are buffered, or
 * the descriptor is readable right now (RFC 2920 checks at DATA).
 */
int reader_input_waiting(const struct reader *r);
/* reader_discard - drop buffered input (STARTTLS: nothing sent before it counts). */
void reader_discard(struct reader *r);
/*
 * reader_chunk - the next chunk: up to and including the first LF, or a full
 * buffer with no LF, or what is left at end of file.  The chunk stays valid
 * until the next call.  Returns IO_OK, IO_EOF (nothing left), IO_TIMEOUT,
 * IO_ERROR or IO_INTERRUPTED.
 */
int reader_chunk(struct reader *r, const char **chunk, size_t *len, int64_t deadline);

void writer_init(struct writer *w, int fd);
void writer_put(struct writer *w, const char *p, size_t n, int64_t deadline);
int writer_flush(struct writer *w, int64_t deadline);

/* write_all - write everything or fail with errno (EINTR retried). */
int write_all(int fd, const void *p, size_t n);

#endif
