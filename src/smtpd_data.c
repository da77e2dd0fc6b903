/*
 * smtpd_data.c - DATA reader: CRLF.CRLF only, dot-unstuffing, limits.
 * See smtpd_data.h.
 *
 * The reader hands out chunks that end at a LF (or at a full buffer), so one
 * logical line may arrive in several chunks.  State carried across chunks:
 * whether the current line started at a true line start (after CRLF), its
 * length so far, and whether the previous chunk ended in a CR.
 */
#include "smtpd_data.h"
#include "util.h"

#include <errno.h>
#include <string.h>

struct data_state {
	const struct data_limits *lim;
	struct data_sink *sink;
	struct data_result *res;
	int in_headers;
	int line_start;        /* next byte starts a line (after a CRLF) */
	size_t line_len;       /* bytes of the current line so far, CRLF counted */
	int dropping;          /* inside a Return-Path: field being removed */
	int drop_line;         /* the current line is not stored */
};

static void
store(struct data_state *st, const char *p, size_t n)
{
	struct data_result *res = st->res;

	if (n == 0 || res->too_big || res->write_errno)
		return;
	if (res->size + n > st->lim->max_size) {
		res->too_big = 1;
		return;
	}
	if (st->sink->write(st->sink->ctx, p, n) < 0) {
		res->write_errno = errno ? errno : EIO;
		return;
	}
	res->size += n;
}

/* header_is - the line starts with the field name (lower case, with ':'). */
static int
header_is(const char *p, size_t n, const char *name)
{
	size_t len = strlen(name);

	if (n < len)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != name[i])
			return 0;
	}
	return 1;
}

/* remember_value - a header's value on its first line, trimmed and bounded. */
static void
remember_value(char *out, size_t size, const char *p, size_t n)
{
	size_t k = 0;

	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
		n--;
	for (; k < n && k + 1 < size; k++)
		out[k] = p[k];
	out[k] = '\0';
}

static void
remember_delivered_to(struct data_result *res, const char *p, size_t n)
{
	size_t k = 0;
	char *out;

	if (res->ndelivered_to >= DATA_MAX_DELIVERED_TO)
		return;
	out = res->delivered_to[res->ndelivered_to];
	p += 13;
	n -= 13;
	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
		n--;
	if (n > 0 && p[0] == '<' && p[n - 1] == '>') {
		p++;
		n -= 2;
	}
	for (; k < n && k + 1 < DATA_DELIVERED_TO_MAX; k++)
		out[k] = p[k];
	out[k] = '\0';
	res->ndelivered_to++;
}

/*
 * chunk - one chunk of a line.  Returns 1 when it was the end-of-data line.
 */
static int
chunk(struct data_state *st, const char *p, size_t n)
{
	struct data_result *res = st->res;
	int ends_lf = n > 0 && p[n - 1] == '\n';
	int ends_crlf = ends_lf && n >= 2 && p[n - 2] == '\r';
	size_t content = n - (ends_crlf ? 2 : ends_lf ? 1 : 0);
	int first = st->line_len == 0;

	if (first && st->line_start && n == 3 && memcmp(p, ".\r\n", 3) == 0)
		return 1;
	st->line_len += n;
	if (st->line_len > SMTP_TEXT_LINE_MAX)
		res->line_too_long = 1;
	/* A CR anywhere but right before the final LF is a bare CR. */
	if (memchr(p, '\r', content) != NULL)
		res->bare_newline = 1;
	/* A NUL is no text: smuggling scanners probe with CRLF NUL "." CRLF. */
	if (memchr(p, '\0', content) != NULL)
		res->nul = 1;
	if (ends_lf && !ends_crlf)
		res->bare_newline = 1;
	if (first && st->line_start && p[0] == '.') {
		/* RFC 5321 4.5.2: drop the first of a leading pair of dots. */
		p++;
		content--;
	}
	if (first && st->in_headers) {
		int continuation = content > 0 && (p[0] == ' ' || p[0] == '\t');

		if (content == 0 && ends_lf) {
			st->in_headers = 0;
			st->dropping = 0;
		} else if (!continuation) {
			st->dropping = header_is(p, content, "return-path:");
			if (header_is(p, content, "received:"))
				res->hops++;
			if (header_is(p, content, "delivered-to:"))
				remember_delivered_to(res, p, content);
			if (header_is(p, content, "message-id:") && res->message_id[0] == '\0')
				remember_value(res->message_id, sizeof(res->message_id), p + 11,
				    content - 11);
		}
		st->drop_line = st->dropping;
	}
	if (!st->drop_line)
		store(st, p, content);
	if (ends_lf) {
		if (!st->drop_line)
			store(st, "\n", 1);
		st->drop_line = 0;
		st->line_len = 0;
		/* Only a CRLF makes the next byte a line start. */
		st->line_start = ends_crlf;
	}
	return 0;
}

void
data_read(struct reader *r, const struct data_limits *lim,
    struct data_sink *sink, struct data_result *res)
{
	struct data_state st = {
		.lim = lim, .sink = sink, .res = res,
		.in_headers = 1, .line_start = 1, .line_len = 0,
	};

	int64_t start = now_ms();
	uint64_t received = 0;

	memset(res, 0, sizeof(*res));
	for (;;) {
		const char *p;
		size_t n;
		int64_t deadline = now_ms() + lim->idle_ms;
		int rc;

		/*
		 * A minimum data rate (Postfix smtpd_min_data_rate): a client that
		 * trickles a byte now and then cannot hold a session for ever.
		 */
		if (lim->min_rate > 0) {
			int64_t earned = start + lim->idle_ms +
			    (int64_t)(received * 1000 / (uint64_t)lim->min_rate);

			if (earned < deadline)
				deadline = earned;
		}
		if (lim->until > 0 && lim->until < deadline)
			deadline = lim->until;
		rc = reader_chunk(r, &p, &n, deadline);
		if (rc == IO_OK)
			received += n;

		if (rc == IO_EOF) {
			res->end = DATA_EOF;
			return;
		}
		if (rc == IO_TIMEOUT) {
			res->end = DATA_TIMEOUT;
			return;
		}
		if (rc == IO_INTERRUPTED) {
			res->end = DATA_INTERRUPTED;
			return;
		}
		if (rc != IO_OK) {
			res->end = DATA_IOERROR;
			return;
		}
		if (chunk(&st, p, n)) {
			res->end = DATA_COMPLETE;
			return;
		}
	}
}
