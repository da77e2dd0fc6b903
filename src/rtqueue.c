/*
 * rtqueue.c - RT's queue names from its REST 2 API into SPOOL/rt-queues,
 * and the RCPT-time lookup.  See rtqueue.h.
 *
 * The cache file:
 *   undersmtpd-rt-queues 1
 *   url URL                 (the rt_queues url it came from)
 *   fetched EPOCH
 *   NAME                    (one per line, as RT spells it)
 */
#include "rtqueue.h"
#include "aliases.h"
#include "http.h"
#include "route.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define RTQ_MAGIC "undersmtpd-rt-queues 1"
#define RTQ_PER_PAGE 100
#define RTQ_MAX_PAGES (RTQ_MAX_QUEUES / RTQ_PER_PAGE + 1)
#define JSON_DEPTH_MAX 32

void
rtq_names_free(struct rtq_names *names)
{
	for (size_t i = 0; i < names->n; i++)
		free(names->v[i]);
	free(names->v);
	memset(names, 0, sizeof(*names));
}

static void
add_name(struct rtq_names *names, const char *name)
{
	if (names->n % 64 == 0)
		names->v = xreallocarray(names->v, names->n + 64, sizeof(*names->v));
	names->v[names->n++] = xstrdup(name);
}

/*
 * A small JSON reader for what REST 2 answers: an object whose "items" is
 * an array of objects with a "Name" string; everything else is skipped,
 * checked but not kept.  Bounded: nesting, string lengths, the input.
 */
struct json {
	const char *p, *end;
	const char *err;
};

static void
ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
	    *j->p == '\r'))
		j->p++;
}

static int
fail(struct json *j, const char *err)
{
	if (j->err == NULL)
		j->err = err;
	return -1;
}

static int
hex4(struct json *j, unsigned *v)
{
	*v = 0;
	if (j->end - j->p < 4)
		return fail(j, "a \\u escape cut short");
	for (int i = 0; i < 4; i++) {
		char c = *j->p++;

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned)(c - '0');
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			*v |= (unsigned)((c | 0x20) - 'a' + 10);
		else
			return fail(j, "a \\u escape with a non-hex digit");
	}
	return 0;
}

/* put - one byte of a string into out (when kept); *toolong once it is full. */
static void
put(char *out, size_t size, size_t *o, char c, int *toolong)
{
	if (out == NULL)
		return;
	if (*o + 1 >= size) {
		*toolong = 1;
		return;
	}
	out[(*o)++] = c;
}

static void
put_utf8(char *out, size_t size, size_t *o, unsigned cp, int *toolong)
{
	if (cp < 0x80) {
		put(out, size, o, (char)cp, toolong);
	} else if (cp < 0x800) {
		put(out, size, o, (char)(0xc0 | (cp >> 6)), toolong);
		put(out, size, o, (char)(0x80 | (cp & 0x3f)), toolong);
	} else if (cp < 0x10000) {
		put(out, size, o, (char)(0xe0 | (cp >> 12)), toolong);
		put(out, size, o, (char)(0x80 | ((cp >> 6) & 0x3f)), toolong);
		put(out, size, o, (char)(0x80 | (cp & 0x3f)), toolong);
	} else {
		put(out, size, o, (char)(0xf0 | (cp >> 18)), toolong);
		put(out, size, o, (char)(0x80 | ((cp >> 12) & 0x3f)), toolong);
		put(out, size, o, (char)(0x80 | ((cp >> 6) & 0x3f)), toolong);
		put(out, size, o, (char)(0x80 | (cp & 0x3f)), toolong);
	}
}

/*
 * string - a JSON string at j->p, decoded into out (NULL: skipped); 0, 1
 * when it did not fit (out holds its start), or -1.
 */
static int
string(struct json *j, char *out, size_t size)
{
	size_t o = 0;
	int toolong = 0;

	if (j->p >= j->end || *j->p != '"')
		return fail(j, "a string expected");
	j->p++;
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = (unsigned char)*j->p++;

		if (c < 0x20)
			return fail(j, "a control character in a string");
		if (c != '\\') {
			put(out, size, &o, (char)c, &toolong);
			continue;
		}
		if (j->p >= j->end)
			break;
		c = (unsigned char)*j->p++;
		switch (c) {
		case '"': case '\\': case '/':
			put(out, size, &o, (char)c, &toolong);
			break;
		case 'b': put(out, size, &o, '\b', &toolong); break;
		case 'f': put(out, size, &o, '\f', &toolong); break;
		case 'n': put(out, size, &o, '\n', &toolong); break;
		case 'r': put(out, size, &o, '\r', &toolong); break;
		case 't': put(out, size, &o, '\t', &toolong); break;
		case 'u': {
			unsigned cp, lo;

			if (hex4(j, &cp) < 0)
				return -1;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
					return fail(j, "a lone surrogate");
				j->p += 2;
				if (hex4(j, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
					return fail(j, "a lone surrogate");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				return fail(j, "a lone surrogate");
			}
			if (cp == 0)
				toolong = 1;      /* a NUL would cut it short: not kept */
			else
				put_utf8(out, size, &o, cp, &toolong);
			break;
		}
		default:
			return fail(j, "a bad escape in a string");
		}
	}
	if (j->p >= j->end)
		return fail(j, "a string cut short");
	j->p++;
	if (out != NULL)
		out[o] = '\0';
	return toolong;
}

static int value(struct json *j, int depth);

/* number - a JSON number; its integer part in *n (when not NULL). */
static int
number(struct json *j, long *n)
{
	const char *start = j->p;
	char buf[32];
	size_t len;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	while (j->p < j->end && strchr("0123456789.eE+-", *j->p) && *j->p)
		j->p++;
	len = (size_t)(j->p - start);
	if (len == 0 || len >= sizeof(buf))
		return fail(j, "a bad number");
	memcpy(buf, start, len);
	buf[len] = '\0';
	if (n != NULL)
		*n = strtol(buf, NULL, 10);
	return 0;
}

static int
literal(struct json *j, const char *word)
{
	size_t len = strlen(word);

	if ((size_t)(j->end - j->p) < len || memcmp(j->p, word, len) != 0)
		return fail(j, "an unexpected character");
	j->p += len;
	return 0;
}

/* elements - an array's elements after '[', each handed to fn; 0, or -1. */
static int
elements(struct json *j, int depth, int (*fn)(struct json *, int, void *), void *ctx)
{
	ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return 0;
	}
	for (;;) {
		ws(j);
		if (fn(j, depth, ctx) < 0)
			return -1;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == ']') {
			j->p++;
			return 0;
		}
		return fail(j, "',' or ']' expected");
	}
}

/* members - an object's members after '{', each handed to fn; 0, or -1. */
static int
members(struct json *j, int depth, int (*fn)(struct json *, const char *, int, void *),
    void *ctx)
{
	char key[64];

	ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		int rc;

		ws(j);
		rc = string(j, key, sizeof(key));
		if (rc < 0)
			return -1;
		if (rc == 1)
			key[0] = '\0';             /* a key longer than ours: not one we want */
		ws(j);
		if (j->p >= j->end || *j->p != ':')
			return fail(j, "':' expected");
		j->p++;
		ws(j);
		if (fn(j, key, depth, ctx) < 0)
			return -1;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 0;
		}
		return fail(j, "',' or '}' expected");
	}
}

static int
skip_member(struct json *j, const char *key, int depth, void *ctx)
{
	(void)key;
	(void)ctx;
	return value(j, depth + 1);
}

static int
skip_element(struct json *j, int depth, void *ctx)
{
	(void)ctx;
	return value(j, depth + 1);
}

/* value - any JSON value, checked and skipped. */
static int
value(struct json *j, int depth)
{
	if (depth > JSON_DEPTH_MAX)
		return fail(j, "nested too deep");
	ws(j);
	if (j->p >= j->end)
		return fail(j, "a value expected");
	switch (*j->p) {
	case '"':
		return string(j, NULL, 0) < 0 ? -1 : 0;
	case '{':
		j->p++;
		return members(j, depth, skip_member, NULL);
	case '[':
		j->p++;
		return elements(j, depth, skip_element, NULL);
	case 't':
		return literal(j, "true");
	case 'f':
		return literal(j, "false");
	case 'n':
		return literal(j, "null");
	default:
		return number(j, NULL);
	}
}

struct page {
	struct rtq_names *names;
	long count, per_page;
	int too_many;
};

/* item_member - "Name" of one item kept; a name with a control character is none. */
static int
item_member(struct json *j, const char *key, int depth, void *ctx)
{
	struct page *pg = ctx;
	char name[RTQ_NAME_MAX + 1];
	int rc;

	if (strcmp(key, "Name") != 0 || j->p >= j->end || *j->p != '"')
		return value(j, depth + 1);
	rc = string(j, name, sizeof(name));
	if (rc < 0)
		return -1;
	for (const char *p = name; rc == 0 && *p; p++)
		if ((unsigned char)*p < 32 || *p == 127)
			rc = 1;
	if (rc == 0 && name[0] != '\0') {
		if (pg->names->n >= RTQ_MAX_QUEUES) {
			pg->too_many = 1;
			return fail(j, "more queues than undersmtpd keeps");
		}
		add_name(pg->names, name);
	}
	return 0;
}

/* item - one element of items: an object's Name kept, anything else skipped. */
static int
item(struct json *j, int depth, void *ctx)
{
	if (j->p < j->end && *j->p == '{') {
		j->p++;
		return members(j, depth + 1, item_member, ctx);
	}
	return value(j, depth + 1);
}

static int
top_member(struct json *j, const char *key, int depth, void *ctx)
{
	struct page *pg = ctx;

	if (strcmp(key, "count") == 0 && j->p < j->end && *j->p != '"' && *j->p != 'n')
		return number(j, &pg->count);
	if (strcmp(key, "per_page") == 0 && j->p < j->end && *j->p != '"' && *j->p != 'n')
		return number(j, &pg->per_page);
	if (strcmp(key, "items") != 0 || j->p >= j->end || *j->p != '[')
		return value(j, depth + 1);
	j->p++;
	return elements(j, depth + 1, item, pg);
}

int
rtq_parse_page(const char *json, size_t len, struct rtq_names *names, long *count,
    long *per_page, char *why, size_t whysize)
{
	struct json j = {json, json + len, NULL};
	struct page pg = {names, -1, -1, 0};

	ws(&j);
	if (j.p >= j.end || *j.p != '{') {
		snprintf(why, whysize, "not a JSON object");
		return -1;
	}
	j.p++;
	if (members(&j, 1, top_member, &pg) < 0) {
		snprintf(why, whysize, "bad JSON at byte %ld: %s", (long)(j.p - json), j.err);
		return -1;
	}
	ws(&j);
	if (j.p != j.end) {
		snprintf(why, whysize, "bad JSON: something after the object");
		return -1;
	}
	*count = pg.count;
	*per_page = pg.per_page;
	return 0;
}

/* read_token - the first line of token_file, printable ASCII; 0, or -1 with why. */
static int
read_token(const char *path, char *out, size_t size, char *why, size_t whysize)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	ssize_t n;
	size_t len;

	if (fd < 0) {
		snprintf(why, whysize, "open %s: %s", path, strerror(errno));
		return -1;
	}
	n = read(fd, out, size - 1);
	close(fd);
	if (n < 0) {
		snprintf(why, whysize, "read %s: %s", path, strerror(errno));
		return -1;
	}
	out[n] = '\0';
	len = strcspn(out, "\r\n");
	out[len] = '\0';
	while (len > 0 && (out[len - 1] == ' ' || out[len - 1] == '\t'))
		out[--len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)out[i] <= 32 || (unsigned char)out[i] >= 127) {
			snprintf(why, whysize, "%s: the token holds a blank or a byte that is not "
			    "printable ASCII", path);
			return -1;
		}
	if (len == 0) {
		snprintf(why, whysize, "%s: no token on its first line", path);
		return -1;
	}
	return 0;
}

int
rtq_fetch(const struct conf *c, struct rtq_names *out, char *why, size_t whysize)
{
	struct url u;
	char token[1024], header[1100];
	int64_t deadline;

	memset(out, 0, sizeof(*out));
	if (c->rt.url == NULL || url_parse(c->rt.url, &u) < 0) {
		snprintf(why, whysize, "rt_queues: no usable url");
		return -1;
	}
	if (read_token(c->rt.token_file, token, sizeof(token), why, whysize) < 0)
		return -1;
	snprintf(header, sizeof(header), "Authorization: token %s", token);
	/* One timeout for the whole list: a slow RT cannot hold a session page by page. */
	deadline = now_ms() + (int64_t)c->rt.timeout * 1000;
	for (int page = 1; page <= RTQ_MAX_PAGES; page++) {
		struct http_response r;
		char target[1200];
		long count = -1, per_page = -1;
		size_t plen = strlen(u.path);

		snprintf(target, sizeof(target), "%s%sREST/2.0/queues/all?per_page=%d&page=%d"
		    "&fields=Name", u.path, plen > 0 && u.path[plen - 1] == '/' ? "" : "/",
		    RTQ_PER_PAGE, page);
		if (http_get(&u, target, header, c->rt.ca_file, deadline, RTQ_PAGE_MAX, &r,
		    why, whysize) < 0)
			goto fail;
		if (r.status != 200) {
			snprintf(why, whysize, "%s answered %d%s", c->rt.url, r.status,
			    r.status == 401 || r.status == 403 ? " (the token is refused)" : "");
			http_response_free(&r);
			goto fail;
		}
		if (rtq_parse_page(r.body, r.len, out, &count, &per_page, why, whysize) < 0) {
			http_response_free(&r);
			goto fail;
		}
		http_response_free(&r);
		if (count < 0 || per_page <= 0) {
			snprintf(why, whysize, "%s: not a REST 2 collection (no count or per_page)",
			    c->rt.url);
			goto fail;
		}
		if (count < per_page)
			return 0;
	}
	snprintf(why, whysize, "more than %d pages of queues", RTQ_MAX_PAGES);
fail:
	rtq_names_free(out);
	return -1;
}

static int
cache_path(const struct conf *c, const char *name, char *out, size_t size)
{
	return str_fmt(out, size, "%s/%s", c->spool_dir, name);
}

/* write_cache - names, durably, in place of the old cache (rename). */
static int
write_cache(const struct conf *c, const struct rtq_names *names, char *why, size_t whysize)
{
	char path[4096], tmp[4200];
	FILE *fp;
	int fd;

	if (cache_path(c, "rt-queues", path, sizeof(path)) < 0 ||
	    str_fmt(tmp, sizeof(tmp), "%s/tmp/rt-queues.XXXXXX", c->spool_dir) < 0) {
		snprintf(why, whysize, "spool path too long");
		return -1;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(why, whysize, "create %s: %s", tmp, strerror(errno));
		return -1;
	}
	fp = fdopen(fd, "w");
	if (fp == NULL) {
		snprintf(why, whysize, "fdopen %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	fprintf(fp, "%s\nurl %s\nfetched %lld\n", RTQ_MAGIC, c->rt.url,
	    (long long)names->fetched);
	for (size_t i = 0; i < names->n; i++)
		fprintf(fp, "%s\n", names->v[i]);
	if (fflush(fp) != 0 || fsync(fd) < 0 || fchmod(fd, 0644) < 0) {
		snprintf(why, whysize, "write %s: %s", tmp, strerror(errno));
		fclose(fp);
		unlink(tmp);
		return -1;
	}
	if (fclose(fp) != 0 || rename(tmp, path) < 0) {
		snprintf(why, whysize, "rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

int
rtq_read(const struct conf *c, struct rtq_names *out)
{
	char path[4096], line[RTQ_NAME_MAX + 64], want[4200];
	long long fetched = 0;
	struct stat st;
	FILE *fp;
	int fd;

	memset(out, 0, sizeof(*out));
	if (c->rt.url == NULL || cache_path(c, "rt-queues", path, sizeof(path)) < 0)
		return -1;
	/* Never through a link: --route may read it as root (SPEC 11). */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    (fp = fdopen(fd, "r")) == NULL) {
		close(fd);
		return -1;
	}
	snprintf(want, sizeof(want), "url %s\n", c->rt.url);
	/* A list from another RT (the url changed) is no list. */
	if (fgets(line, sizeof(line), fp) == NULL || strcmp(line, RTQ_MAGIC "\n") != 0 ||
	    fgets(line, sizeof(line), fp) == NULL || strcmp(line, want) != 0 ||
	    fgets(line, sizeof(line), fp) == NULL || sscanf(line, "fetched %lld", &fetched) != 1) {
		fclose(fp);
		return -1;
	}
	out->fetched = (time_t)fetched;
	while (fgets(line, sizeof(line), fp) != NULL && out->n < RTQ_MAX_QUEUES) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] != '\0')
			add_name(out, line);
	}
	fclose(fp);
	return 0;
}

/* cache_age - seconds since the cache's fetch; -1 when there is none. */
static long
cache_age(const struct conf *c)
{
	struct rtq_names names;
	long age;

	if (rtq_read(c, &names) < 0)
		return -1;
	age = (long)(time(NULL) - names.fetched);
	rtq_names_free(&names);
	return age < 0 ? 0 : age;
}

int
rtq_refresh(const struct conf *c, int force, char *why, size_t whysize)
{
	char lockpath[4096];
	struct rtq_names names;
	struct stat st;
	long age = cache_age(c);
	int fd, rc;

	why[0] = '\0';
	if (c->rt.url == NULL || (!force && age >= 0 && age < c->rt.refresh))
		return 0;
	if (cache_path(c, "rt-queues.lock", lockpath, sizeof(lockpath)) < 0)
		return 0;
	fd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
	if (fd < 0) {
		snprintf(why, whysize, "open %s: %s", lockpath, strerror(errno));
		return -1;
	}
	/* One process asks RT; the others go on with the list they have. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return 0;
	}
	/* The lock's time is the last try: a failing RT is not asked by every RCPT. */
	if (!force && fstat(fd, &st) == 0 && st.st_size > 0 &&
	    time(NULL) - st.st_mtime < (c->rt.refresh < RTQ_RETRY_MIN ? c->rt.refresh
	    : RTQ_RETRY_MIN)) {
		close(fd);
		return 0;
	}
	if (ftruncate(fd, 0) < 0 || write(fd, "x", 1) < 0 || futimens(fd, NULL) < 0)
		log_warn("rt_queues: mark %s", lockpath);
	rc = rtq_fetch(c, &names, why, whysize);
	if (rc == 0) {
		names.fetched = time(NULL);
		rc = write_cache(c, &names, why, whysize);
		if (rc == 0)
			log_info("rt_queues: %zu queue(s) from %s", names.n, c->rt.url);
		rtq_names_free(&names);
	}
	if (rc < 0)
		log_warnx("rt_queues: %s; %s", why, age >= 0 ? "the last list stands"
		    : "no list yet: recipients are not checked");
	/* Only a failed try holds the next one back (a byte in the lock file). */
	if (rc == 0 && ftruncate(fd, 0) < 0)
		log_warn("rt_queues: %s", lockpath);
	close(fd);
	return rc < 0 ? -1 : 1;
}

enum rtq_verdict
rtq_lookup(const struct conf *c, const char *queue, int may_refresh)
{
	struct rtq_names names;
	enum rtq_verdict v = RTQ_UNKNOWN;
	char why[512];
	int have = rtq_read(c, &names) == 0;

	/* The list is read once while it is fresh; a stale one is fetched first. */
	if (may_refresh && (!have || time(NULL) - names.fetched >= c->rt.refresh) &&
	    rtq_refresh(c, 0, why, sizeof(why)) > 0) {
		if (have)
			rtq_names_free(&names);
		have = rtq_read(c, &names) == 0;
	}
	if (!have)
		return RTQ_NO_LIST;
	for (size_t i = 0; i < names.n && v == RTQ_UNKNOWN; i++)
		if (strcasecmp(names.v[i], queue) == 0)
			v = RTQ_KNOWN;
	rtq_names_free(&names);
	return v;
}

int
rtq_verify_route(const struct conf *c, const struct route_result *r, int may_refresh,
    char *queue, size_t size)
{
	const struct route_dest *d = route_pipe(r);
	const char *t;

	queue[0] = '\0';
	if (d == NULL || c->rt.url == NULL)
		return -1;
	t = conf_verify_for(c, d->entry->name, d->entry->re != NULL);
	if (t == NULL || aliases_expand_arg(t, &r->caps, queue, size) < 0 || queue[0] == '\0')
		return -1;
	return (int)rtq_lookup(c, queue, may_refresh);
}
