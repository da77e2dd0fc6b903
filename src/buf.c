/*
 * buf.c - bounded reader and writer with deadlines.  See buf.h.
 */
#include "buf.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

void
reader_init(struct reader *r, int fd)
{
	r->fd = fd;
	r->tls = NULL;
	r->tls_wfd = -1;
	r->start = r->end = 0;
	r->eof = 0;
	r->interrupt = NULL;
}

size_t
reader_pending(const struct reader *r)
{
	return r->end - r->start;
}

int
reader_input_waiting(const struct reader *r)
{
	struct pollfd pfd = {.fd = r->fd, .events = POLLIN};

	if (r->end > r->start)
		return 1;
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

void
reader_discard(struct reader *r)
{
	r->start = r->end = 0;
}

/* wait_fd - poll one fd for events until deadline; IO_OK when ready. */
static int
wait_fd(int fd, short events, int64_t deadline, const volatile sig_atomic_t *interrupt)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = events};
		int64_t left = deadline - now_ms();
		int n;

		if (interrupt != NULL && *interrupt)
			return IO_INTERRUPTED;
		if (left <= 0)
			return IO_TIMEOUT;
		n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return IO_OK;
		if (n < 0 && errno != EINTR)
			return IO_ERROR;
	}
}

static int
reader_fill(struct reader *r, int64_t deadline)
{
	ssize_t n;
	int st;

	if (r->start > 0) {
		memmove(r->data, r->data + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	for (;;) {
		if (r->tls != NULL) {
			/* TLS may hold decrypted bytes the socket no longer shows. */
			if (r->interrupt != NULL && *r->interrupt)
				return IO_INTERRUPTED;
			n = tls_server_read(r->tls, r->fd, r->tls_wfd, r->data + r->end,
			    sizeof(r->data) - r->end, deadline);
			if (n < 0 && errno == ETIMEDOUT)
				return IO_TIMEOUT;
		} else {
			st = wait_fd(r->fd, POLLIN, deadline, r->interrupt);
			if (st != IO_OK)
				return st;
			n = read(r->fd, r->data + r->end, sizeof(r->data) - r->end);
		}
		if (n > 0) {
			r->end += (size_t)n;
			return IO_OK;
		}
		if (n == 0) {
			r->eof = 1;
			return IO_EOF;
		}
		if (errno != EINTR && errno != EAGAIN)
			return errno == ECONNRESET ? IO_EOF : IO_ERROR;
	}
}

int
reader_chunk(struct reader *r, const char **chunk, size_t *len, int64_t deadline)
{
	for (;;) {
		size_t avail = r->end - r->start;
		const char *p = r->data + r->start;
		const char *lf = avail ? memchr(p, '\n', avail) : NULL;

		if (lf != NULL || (avail > 0 && (r->eof || avail == sizeof(r->data)))) {
			size_t n = lf ? (size_t)(lf - p) + 1 : avail;

			*chunk = p;
			*len = n;
			r->start += n;
			return IO_OK;
		}
		if (r->eof)
			return IO_EOF;
		int st = reader_fill(r, deadline);
		if (st == IO_EOF && r->end > r->start)
			continue;
		if (st != IO_OK)
			return st;
	}
}

void
writer_init(struct writer *w, int fd)
{
	w->fd = fd;
	w->tls = NULL;
	w->tls_rfd = -1;
	w->len = 0;
	w->failed = 0;
}

void
writer_put(struct writer *w, const char *p, size_t n, int64_t deadline)
{
	while (n > 0 && !w->failed) {
		size_t room = sizeof(w->data) - w->len;
		size_t take = n < room ? n : room;

		memcpy(w->data + w->len, p, take);
		w->len += take;
		p += take;
		n -= take;
		if (w->len == sizeof(w->data))
			writer_flush(w, deadline);
	}
}

int
writer_flush(struct writer *w, int64_t deadline)
{
	size_t off = 0;

	while (off < w->len && !w->failed) {
		ssize_t n = w->tls != NULL ? tls_server_write(w->tls, w->tls_rfd, w->fd,
		    w->data + off, w->len - off, deadline)
		    : write(w->fd, w->data + off, w->len - off);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN &&
		    wait_fd(w->fd, POLLOUT, deadline, NULL) == IO_OK)
			continue;
		w->failed = 1;
	}
	w->len = 0;
	return w->failed ? -1 : 0;
}

int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t k = write(fd, c, n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += k;
		n -= (size_t)k;
	}
	return 0;
}
