/*
 * smtpd_data.h - the DATA reader (RFC 5321 4.1.1.4, 4.5.2).
 *
 * Reads the message from a struct reader up to CRLF.CRLF and nothing else:
 * a bare CR or LF is never a line end, so "\n.\n" and its cousins can never
 * end the message (the SMTP-smuggling fix, TESTCATALOGUE B).  Lines are
 * un-dot-stuffed and handed to a sink with LF endings.  Every limit (line
 * length, size, Received: hops) is checked as the bytes go by; once broken,
 * the reader keeps reading to the end of data without storing, so memory
 * stays flat and the reply comes only after the final dot.
 *
 * Header work done on the way: incoming Return-Path: fields are removed (the
 * delivering side adds its own, RFC 5321 4.4), Received: fields are counted
 * (hop limit) and Delivered-To: values are remembered (loop check).
 */
#ifndef SMTPD_DATA_H
#define SMTPD_DATA_H

#include <stdint.h>

#include "buf.h"

#define SMTP_TEXT_LINE_MAX 1000   /* RFC 5321 4.5.3.1.6, CRLF included */
#define DATA_MAX_DELIVERED_TO 32  /* remembered for the loop check (SPEC 7) */
#define DATA_DELIVERED_TO_MAX 260
#define DATA_MESSAGE_ID_MAX 256   /* the Message-ID: logged, as Postfix's cleanup */

struct data_limits {
	uint64_t max_size;            /* stored bytes */
	long max_hops;                /* Received: headers allowed */
	int64_t idle_ms;              /* deadline for each read */
	long min_rate;                /* bytes/s the whole DATA must average, 0: none */
	int64_t until;                /* now_ms() the session must end by, 0: none */
};

struct data_sink {
	/* write - store n bytes; returns 0, or -1 with errno (ENOSPC, EIO...). */
	int (*write)(void *ctx, const char *p, size_t n);
	void *ctx;
};

enum data_end {
	DATA_COMPLETE,                /* CRLF.CRLF seen */
	DATA_EOF,                     /* connection closed first */
	DATA_TIMEOUT,
	DATA_IOERROR,
	DATA_INTERRUPTED,
};

struct data_result {
	enum data_end end;
	uint64_t size;                /* stored bytes (LF endings) */
	int bare_newline;             /* a bare CR or LF was seen */
	int nul;                      /* a NUL byte was seen */
	int line_too_long;
	int too_big;
	long hops;                    /* Received: headers counted */
	int write_errno;              /* first sink failure, 0 if none */
	size_t ndelivered_to;         /* Delivered-To: headers seen */
	char delivered_to[DATA_MAX_DELIVERED_TO][DATA_DELIVERED_TO_MAX];
	char message_id[DATA_MESSAGE_ID_MAX];  /* the first Message-ID:'s value, "" */
};

void data_read(struct reader *r, const struct data_limits *lim,
    struct data_sink *sink, struct data_result *res);

#endif
