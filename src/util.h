/*
 * util.h - small shared helpers: allocators that die on failure, bounded
 * string copies, CIDR networks, size and duration parsing, diagnostics.
 *
 * Owns nothing stateful.  The x* allocators call fatalx() on exhaustion:
 * they are for setup and bounded session data only (STYLE habit 3).
 */
#ifndef UTIL_H
#define UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/socket.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* str_copy - copy with truncation check; returns 0, or -1 when it did not fit. */
int str_copy(char *dst, size_t dstsize, const char *src);
/* str_fmt - snprintf that returns 0, or -1 when the result was truncated. */
int str_fmt(char *dst, size_t dstsize, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void str_lower(char *s);
int str_casecmp_ascii(const char *a, const char *b);

/* A network in CIDR notation; IPv4 is stored as IPv4 (family AF_INET). */
struct cidr {
	int family;               /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};
int cidr_parse(const char *text, struct cidr *out);
/* ip_parse - numeric address; an IPv4-mapped IPv6 address becomes IPv4. */
int ip_parse(const char *text, int *family, unsigned char addr[16]);
int cidr_match(const struct cidr *net, int family, const unsigned char addr[16]);
/* sockaddr_to_ip - family/bytes of a peer, IPv4-mapped IPv6 folded to IPv4. */
int sockaddr_to_ip(const struct sockaddr *sa, int *family, unsigned char addr[16]);
void ip_to_text(int family, const unsigned char addr[16], char *buf, size_t size);

/* Sizes with k/M/G suffixes (powers of 1024); durations with s/m/h/d. */
int parse_size(const char *text, uint64_t *out);
int parse_duration(const char *text, long *seconds);

/* Diagnostics gathered while reading a file: "file:line: message". */
struct diag {
	void (*report)(void *ctx, const char *file, int line, const char *msg);
	void *ctx;
	int errors;
};
void diag_error(struct diag *d, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* random_hex - fill buf with 2*nbytes hex digits from the kernel's CSPRNG. */
int random_hex(char *buf, size_t bufsize, size_t nbytes);

/* Monotonic milliseconds, for deadlines. */
int64_t now_ms(void);

/* str_mask_controls - replace each control character (below 32, and DEL) in s
 * with '?': for text from outside that goes into a log, a reply or a terminal. */
void str_mask_controls(char *s);

/*
 * str_log_token - s as one token of a log field (relay=NAME): spaces, commas
 * and control characters become '_', so log readers that split on them
 * (pflogsumm's relay=([^,]+)) see the whole name.
 */
void str_log_token(char *s);

/* sleep_ms - sleep ms milliseconds, the whole of them even if signals arrive. */
void sleep_ms(long ms);

/* An http:// or https:// URL, split (url_parse). */
struct url {
	int tls;                  /* https */
	char host[256];           /* a name, or an address ([::1] without brackets) */
	char port[8];
	char path[1024];          /* from its '/', "/" when none; no query part */
};

/*
 * url_parse - "http[s]://host[:port][/path]": no user@, no query or
 * fragment, printable characters only.  0, or -1.
 */
int url_parse(const char *s, struct url *u);

/* json_write_string - s as a JSON string, quotes and escapes included. */
void json_write_string(FILE *out, const char *s);

#endif
