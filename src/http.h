/*
 * http.h - one HTTP/1.1 GET, for Request Tracker's REST 2 API (rtqueue.h).
 *
 * Plain TCP or TLS (tls.c, the certificate checked against ca_file and the
 * URL's host), every step within one deadline, the response bounded: a
 * status line, headers (Content-Length or chunked), a body of at most max
 * bytes.  No redirects, no cookies, no proxy: what RT's API needs.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct http_response {
	int status;               /* 200 ... */
	char *body;               /* NUL-terminated, malloc'd */
	size_t len;
};

/*
 * http_get - GET target (path and query, from '/') of u's server, with one
 * extra header line (NULL for none, no CRLF), done by deadline (now_ms()
 * time); 0 with r filled, or -1 with why (resolve, connect, TLS, timeout, a
 * response too long or malformed).
 */
int http_get(const struct url *u, const char *target, const char *header,
    const char *ca_file, int64_t deadline, size_t max, struct http_response *r,
    char *why, size_t whysize);
void http_response_free(struct http_response *r);

/*
 * http_parse - a whole response as read (headers and body) into r; for the
 * unit tests and the fuzzer.  0, or -1 with why.
 */
int http_parse(const char *buf, size_t len, struct http_response *r, char *why,
    size_t whysize);

#endif
