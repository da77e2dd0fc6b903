/*
 * http.c - one bounded HTTP/1.1 GET.  See http.h.
 */
#include "http.h"
#include "tls.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_HEAD_MAX (64 * 1024)

/* connect_to - a connected non-blocking socket to u, by the deadline; -1 with why. */
static int
connect_to(const struct url *u, int64_t deadline, char *why, size_t whysize)
{
	struct addrinfo hints, *res = NULL;
	int rc, saved = ETIMEDOUT;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(u->host, u->port, &hints, &res);
	if (rc != 0) {
		snprintf(why, whysize, "%s: cannot resolve: %s", u->host, gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);

		if (fd < 0) {
			saved = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int64_t left = deadline - now_ms();
			int soerr = 0;
			socklen_t len = sizeof(soerr);

			if (left > 0 && poll(&pfd, 1, (int)left) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0) {
				freeaddrinfo(res);
				return fd;
			}
			saved = soerr ? soerr : ETIMEDOUT;
		} else {
			saved = errno;
		}
		close(fd);
	}
	freeaddrinfo(res);
	snprintf(why, whysize, "connect to %s port %s: %s", u->host, u->port, strerror(saved));
	return -1;
}

/* header_value - the value of header name in the head (lines after the first), or NULL. */
static const char *
header_value(const char *head, const char *name, char *out, size_t size)
{
	size_t nlen = strlen(name);

	for (const char *line = strchr(head, '\n'); line != NULL; line = strchr(line, '\n')) {
		line++;
		if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			size_t len;

			v += strspn(v, " \t");
			len = strcspn(v, "\r\n");
			while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
				len--;
			if (len >= size)
				len = size - 1;
			memcpy(out, v, len);
			out[len] = '\0';
			return out;
		}
	}
	return NULL;
}

/* dechunk - a chunked body (RFC 9112 7.1) into out; its length, or -1. */
static long
dechunk(const char *p, size_t len, char *out)
{
	size_t o = 0, i = 0;

	for (;;) {
		unsigned long size = 0;
		int digits = 0;

		while (i < len && strchr("0123456789abcdefABCDEF", p[i]) && p[i] != '\0') {
			int d = p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10;

			if (size > (len >> 4))
				return -1;
			size = size * 16 + (unsigned long)d;
			i++;
			digits++;
		}
		if (digits == 0)
			return -1;
		/* Chunk extensions are ignored; the line ends in CRLF. */
		while (i < len && p[i] != '\n')
			i++;
		if (i >= len)
			return -1;
		i++;
		if (size == 0)
			return (long)o;
		if (size > len - i)
			return -1;
		memcpy(out + o, p + i, size);
		o += size;
		i += size;
		if (i < len && p[i] == '\r')
			i++;
		if (i >= len || p[i] != '\n')
			return -1;
		i++;
	}
}

/*
 * header_end - the length of the header (its blank line included) when buf
 * holds all of it within HTTP_HEAD_MAX bytes; 0 otherwise.  from: where a
 * caller that looked before may start again.
 */
static size_t
header_end(const char *buf, size_t len, size_t from)
{
	for (size_t i = from; i + 4 <= len && i + 4 <= HTTP_HEAD_MAX; i++)
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	return 0;
}

/* How a response's body ends, as its header says (RFC 9112 6.3). */
struct framing {
	int chunked;
	long long length;             /* Content-Length; -1: none (the body runs to
	                                 EOF); -2: one that is not a number */
};

/* framing_of - the framing of the header in buf (hlen bytes, found by header_end). */
static void
framing_of(const char *buf, size_t hlen, struct framing *fr)
{
	char head[HTTP_HEAD_MAX + 1], value[64], *e;

	memcpy(head, buf, hlen);
	head[hlen] = '\0';
	fr->chunked = header_value(head, "Transfer-Encoding", value, sizeof(value)) != NULL &&
	    strcasecmp(value, "chunked") == 0;
	fr->length = -1;
	if (!fr->chunked &&
	    header_value(head, "Content-Length", value, sizeof(value)) != NULL) {
		unsigned long long n = strtoull(value, &e, 10);

		fr->length = *e == '\0' && value[0] != '\0' && n < (1ULL << 62) ? (long long)n
		    : -2;
	}
}

/*
 * response_complete - buf (len bytes, a header of hlen) holds a whole
 * response by its own framing: Content-Length bytes of body, or a chunked
 * body's last chunk.
 */
static int
response_complete(const char *buf, size_t len, size_t hlen, const struct framing *fr)
{
	if (fr->chunked)
		return len - hlen >= 5 && memcmp(buf + len - 5, "0\r\n\r\n", 5) == 0 &&
		    (len - hlen == 5 || buf[len - 6] == '\n');
	return fr->length >= 0 && (unsigned long long)(len - hlen) >= (unsigned long long)
	    fr->length;
}

int
http_parse(const char *buf, size_t len, struct http_response *r, char *why, size_t whysize)
{
	const char *end = NULL;
	char head[HTTP_HEAD_MAX + 1];
	struct framing fr;
	size_t hlen, blen;
	int minor = 0;

	memset(r, 0, sizeof(*r));
	hlen = header_end(buf, len, 0);
	if (hlen == 0) {
		snprintf(why, whysize, "no end of the response's header within %d bytes",
		    HTTP_HEAD_MAX);
		return -1;
	}
	end = buf + hlen;
	memcpy(head, buf, hlen);
	head[hlen] = '\0';
	if (memchr(head, '\0', hlen) != NULL ||
	    sscanf(head, "HTTP/1.%d %3d", &minor, &r->status) != 2 || r->status < 100 ||
	    r->status > 599) {
		snprintf(why, whysize, "not an HTTP/1.x status line");
		return -1;
	}
	blen = len - hlen;
	framing_of(buf, hlen, &fr);
	r->body = xmalloc(blen + 1);
	if (fr.chunked) {
		long n = dechunk(end, blen, r->body);

		if (n < 0) {
			snprintf(why, whysize, "a chunked body cut short or malformed");
			http_response_free(r);
			return -1;
		}
		r->len = (size_t)n;
	} else if (fr.length != -1) {
		if (fr.length < 0 || (unsigned long long)fr.length > blen) {
			snprintf(why, whysize, "a body shorter than its Content-Length, or "
			    "a Content-Length that is no number");
			http_response_free(r);
			return -1;
		}
		memcpy(r->body, end, (size_t)fr.length);
		r->len = (size_t)fr.length;
	} else {
		memcpy(r->body, end, blen);
		r->len = blen;
	}
	r->body[r->len] = '\0';
	return 0;
}

int
http_get(const struct url *u, const char *target, const char *header,
    const char *ca_file, int64_t deadline, size_t max, struct http_response *r,
    char *why, size_t whysize)
{
	struct netio io;
	struct framing fr = {0, -1};
	char req[4096];
	char *buf = NULL;
	size_t len = 0, hlen = 0, cap = max + HTTP_HEAD_MAX;
	int fd, n, rc = -1;

	memset(r, 0, sizeof(*r));
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\n"
	    "Accept: application/json\r\nUser-Agent: undersmtpd\r\nConnection: close\r\n"
	    "%s%s\r\n", target, strchr(u->host, ':') ? "[" : "", u->host,
	    strchr(u->host, ':') ? "]" : "", strcmp(u->port, u->tls ? "443" : "80") ? ":" : "",
	    strcmp(u->port, u->tls ? "443" : "80") ? u->port : "", header ? header : "",
	    header ? "\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(req)) {
		snprintf(why, whysize, "request too long");
		return -1;
	}
	fd = connect_to(u, deadline, why, whysize);
	if (fd < 0)
		return -1;
	netio_init(&io, fd);
	if (u->tls && tls_start_client(&io, u->host, 1, ca_file, deadline, why, whysize) < 0)
		goto out;
	if (netio_write_all(&io, req, (size_t)n, deadline) < 0) {
		snprintf(why, whysize, "send the request: %s", strerror(errno));
		goto out;
	}
	buf = xmalloc(cap + 1);
	for (;;) {
		ssize_t got = netio_read(&io, buf + len, cap - len, deadline);

		if (got == 0)
			break;
		if (got < 0) {
			snprintf(why, whysize, "read the response: %s", strerror(errno));
			goto out;
		}
		/* The header's end and framing are looked for once, in the new bytes only. */
		if (hlen == 0) {
			hlen = header_end(buf, len + (size_t)got, len > 3 ? len - 3 : 0);
			if (hlen > 0)
				framing_of(buf, hlen, &fr);
		}
		len += (size_t)got;
		/*
		 * Done when the framing says so: servers that close a TLS
		 * connection without close_notify (Plack's, Python's) would
		 * otherwise turn a whole response into a read error.
		 */
		if (hlen > 0 && response_complete(buf, len, hlen, &fr))
			break;
		if (len == cap) {
			snprintf(why, whysize, "response longer than %zu bytes", max);
			goto out;
		}
	}
	rc = http_parse(buf, len, r, why, whysize);
out:
	free(buf);
	netio_close(&io);
	return rc;
}

void
http_response_free(struct http_response *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}
