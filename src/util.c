/*
 * util.c - allocators, bounded strings, CIDR matching, size and duration
 * parsing, diagnostics.  See util.h.
 */
#include "util.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		fatalx("out of memory allocating %zu bytes", n);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		fatalx("out of memory allocating %zu x %zu bytes", nmemb, size);
	return p;
}

void *
xreallocarray(void *p, size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size)
		fatalx("allocation overflow: %zu x %zu", nmemb, size);
	p = realloc(p, (nmemb * size) != 0 ? nmemb * size : 1);
	if (p == NULL)
		fatalx("out of memory allocating %zu x %zu bytes", nmemb, size);
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

int
str_copy(char *dst, size_t dstsize, const char *src)
{
	size_t n = strlen(src);

	if (dstsize == 0)
		return -1;
	if (n >= dstsize) {
		memcpy(dst, src, dstsize - 1);
		dst[dstsize - 1] = '\0';
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

int
str_fmt(char *dst, size_t dstsize, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(dst, dstsize, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= dstsize)
		return -1;
	return 0;
}

void
str_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

int
str_casecmp_ascii(const char *a, const char *b)
{
	for (;; a++, b++) {
		int ca = (unsigned char)*a, cb = (unsigned char)*b;

		if (ca >= 'A' && ca <= 'Z')
			ca += 'a' - 'A';
		if (cb >= 'A' && cb <= 'Z')
			cb += 'a' - 'A';
		if (ca != cb || ca == 0)
			return ca - cb;
	}
}

int
ip_parse(const char *text, int *family, unsigned char addr[16])
{
	struct in_addr a4;
	struct in6_addr a6;
	static const unsigned char mapped[12] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff};

	memset(addr, 0, 16);
	if (inet_pton(AF_INET, text, &a4) == 1) {
		*family = AF_INET;
		memcpy(addr, &a4, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &a6) == 1) {
		if (memcmp(a6.s6_addr, mapped, 12) == 0) {
			*family = AF_INET;
			memcpy(addr, a6.s6_addr + 12, 4);
		} else {
			*family = AF_INET6;
			memcpy(addr, a6.s6_addr, 16);
		}
		return 0;
	}
	return -1;
}

int
cidr_parse(const char *text, struct cidr *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t hostlen = slash ? (size_t)(slash - text) : strlen(text);
	unsigned maxprefix;

	if (hostlen == 0 || hostlen >= sizeof(host))
		return -1;
	memcpy(host, text, hostlen);
	host[hostlen] = '\0';
	/* An IPv4-mapped network is not folded: only single addresses are. */
	if (strchr(host, ':') != NULL) {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, host, &a6) != 1)
			return -1;
		out->family = AF_INET6;
		memcpy(out->addr, a6.s6_addr, 16);
		maxprefix = 128;
	} else {
		struct in_addr a4;

		if (inet_pton(AF_INET, host, &a4) != 1)
			return -1;
		out->family = AF_INET;
		memset(out->addr, 0, 16);
		memcpy(out->addr, &a4, 4);
		maxprefix = 32;
	}
	out->prefix = maxprefix;
	if (slash != NULL) {
		char *end;
		long p;

		errno = 0;
		p = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || errno != 0 || p < 0 ||
		    (unsigned long)p > maxprefix)
			return -1;
		out->prefix = (unsigned)p;
	}
	/* Host bits set below the prefix are an administrator's typo. */
	for (unsigned bit = out->prefix; bit < maxprefix; bit++)
		if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
			return -1;
	return 0;
}

int
cidr_match(const struct cidr *net, int family, const unsigned char addr[16])
{
	unsigned full, rest;

	if (net->family != family)
		return 0;
	full = net->prefix / 8;
	rest = net->prefix % 8;
	if (memcmp(net->addr, addr, full) != 0)
		return 0;
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));

		if ((net->addr[full] & mask) != (addr[full] & mask))
			return 0;
	}
	return 1;
}

int
sockaddr_to_ip(const struct sockaddr *sa, int *family, unsigned char addr[16])
{
	static const unsigned char mapped[12] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff};

	memset(addr, 0, 16);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;

		*family = AF_INET;
		memcpy(addr, &s4->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;

		if (memcmp(s6->sin6_addr.s6_addr, mapped, 12) == 0) {
			*family = AF_INET;
			memcpy(addr, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			*family = AF_INET6;
			memcpy(addr, s6->sin6_addr.s6_addr, 16);
		}
		return 0;
	}
	return -1;
}

void
ip_to_text(int family, const unsigned char addr[16], char *buf, size_t size)
{
	if (inet_ntop(family, addr, buf, (socklen_t)size) == NULL)
		str_copy(buf, size, "unknown");
}

/* parse_number_suffix - digits then one optional suffix from table. */
static int
parse_number_suffix(const char *text, const char *suffixes,
    const uint64_t *mult, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = text;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p != '\0') {
		const char *s = strchr(suffixes, *p);

		if (s == NULL || p[1] != '\0')
			return -1;
		if (v > UINT64_MAX / mult[s - suffixes])
			return -1;
		v *= mult[s - suffixes];
	}
	*out = v;
	return 0;
}

int
parse_size(const char *text, uint64_t *out)
{
	static const uint64_t mult[] = {1024, 1024, 1024ULL * 1024,
	    1024ULL * 1024 * 1024, 1024ULL * 1024 * 1024};

	return parse_number_suffix(text, "kKMGg", mult, out);
}

int
parse_duration(const char *text, long *seconds)
{
	static const uint64_t mult[] = {1, 60, 3600, 86400};
	uint64_t v;

	if (parse_number_suffix(text, "smhd", mult, &v) < 0 || v > LONG_MAX)
		return -1;
	*seconds = (long)v;
	return 0;
}

void
diag_error(struct diag *d, const char *file, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A quoted bad value may hold a CR or an escape: it goes to a terminal. */
	str_mask_controls(msg);
	d->errors++;
	if (d->report != NULL)
		d->report(d->ctx, file, line, msg);
}

int
random_hex(char *buf, size_t bufsize, size_t nbytes)
{
	unsigned char raw[32];
	static const char hex[] = "0123456789ABCDEF";

	if (nbytes > sizeof(raw) || bufsize < nbytes * 2 + 1)
		return -1;
	if (getrandom(raw, nbytes, 0) != (ssize_t)nbytes)
		return -1;
	for (size_t i = 0; i < nbytes; i++) {
		buf[2 * i] = hex[raw[i] >> 4];
		buf[2 * i + 1] = hex[raw[i] & 15];
	}
	buf[2 * nbytes] = '\0';
	return 0;
}

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
str_mask_controls(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 32 || *s == 127)
			*s = '?';
}

void
str_log_token(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 32 || *s == 127 || *s == ',')
			*s = '_';
}

void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void
json_write_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 32)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

int
url_parse(const char *s, struct url *u)
{
	const char *p, *host, *end;
	size_t hlen;

	memset(u, 0, sizeof(*u));
	for (p = s; *p; p++)
		if ((unsigned char)*p <= 32 || (unsigned char)*p >= 127 || *p == '?' ||
		    *p == '#' || *p == '@' || *p == '\\')
			return -1;
	if (strncmp(s, "https://", 8) == 0) {
		u->tls = 1;
		host = s + 8;
	} else if (strncmp(s, "http://", 7) == 0) {
		host = s + 7;
	} else {
		return -1;
	}
	if (*host == '[') {
		end = strchr(host, ']');
		if (end == NULL)
			return -1;
		hlen = (size_t)(end - host - 1);
		host++;
		p = end + 1;
	} else {
		hlen = strcspn(host, ":/");
		p = host + hlen;
	}
	if (hlen == 0 || hlen >= sizeof(u->host))
		return -1;
	memcpy(u->host, host, hlen);
	u->host[hlen] = '\0';
	if (*p == ':') {
		size_t plen = strspn(p + 1, "0123456789");
		long port;

		if (plen == 0 || plen > 5 || (p[1 + plen] != '\0' && p[1 + plen] != '/'))
			return -1;
		memcpy(u->port, p + 1, plen);
		u->port[plen] = '\0';
		port = strtol(u->port, NULL, 10);
		if (port < 1 || port > 65535)
			return -1;
		p += 1 + plen;
	} else {
		str_copy(u->port, sizeof(u->port), u->tls ? "443" : "80");
	}
	if (*p != '\0' && *p != '/')
		return -1;
	if (strlen(*p ? p : "/") >= sizeof(u->path))
		return -1;
	str_copy(u->path, sizeof(u->path), *p ? p : "/");
	return 0;
}
