/*
 * fuzz_sendmail.c - libFuzzer: what sendmail reads on standard input
 * (sendmail_read_message): LF/CRLF, dots, folded headers, -t recipients,
 * Bcc removal.  Checked on every input: the output has no NUL, no bare CR,
 * no line over 998 characters, no Bcc: field in its header section, and the
 * -t recipients are bounded.  The first input byte picks -i and -t.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sendmail.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
	char *buf;
	size_t len, cap;
};

static int
keep(void *ctx, const char *p, size_t n)
{
	struct out *o = ctx;

	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2;
		o->buf = realloc(o->buf, o->cap);
		if (o->buf == NULL)
			abort();
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	return 0;
}

static void
check(const struct out *o)
{
	size_t line = 0, start = 0;
	int in_headers = 1;

	for (size_t i = 0; i < o->len; i++) {
		if (o->buf[i] == '\0' || o->buf[i] == '\r')
			abort();
		if (o->buf[i] != '\n')
			continue;
		line = i - start;
		if (line > 998)
			abort();
		if (line == 0)
			in_headers = 0;
		if (in_headers && line >= 4 && strncasecmp(o->buf + start, "bcc:", 4) == 0)
			abort();
		start = i + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct added_headers add = {"<a@fuzz.test>", "Sun, 22 Nov 2026 00:00:00 +0000",
	    "<id@fuzz.test>"};
	struct sm_opts o;
	struct message m;
	struct out out = {NULL, 0, 0};
	struct data_sink sink = {keep, &out};
	char why[256];
	FILE *in;

	if (size == 0)
		return 0;
	memset(&o, 0, sizeof(o));
	o.dots_end = !(data[0] & 1);
	o.from_headers = (data[0] & 2) != 0;
	in = fmemopen((void *)(uintptr_t)(data + 1), size - 1, "r");
	if (in == NULL)
		return 0;
	if (sendmail_read_message(&o, in, &sink, &add, &m, why, sizeof(why)) == 0)
		check(&out);
	if (m.nhdr_rcpts > 1000)
		abort();
	for (size_t i = 0; i < m.nhdr_rcpts; i++)
		free(m.hdr_rcpts[i]);
	free(m.hdr_rcpts);
	free(out.buf);
	fclose(in);
	return 0;
}
