/*
 * spool.c - durable commit, envelopes, locks, quarantine.  See spool.h.
 *
 * The envelope file, one record per line, every value xtext-encoded (RFC
 * 3461: bytes outside 33..126, '+' and '=' as +HH; "+" alone is the empty
 * value), so no value can ever hold a space, CR, LF or NUL:
 *
 *   undersmtpd-envelope 1
 *   id 4F2A9C01B3D7
 *   created 1763781234          seconds since the epoch
 *   next-try 1763781294
 *   attempts 1
 *   hold 0
 *   bounce 0                    1: this message is itself a DSN
 *   sender alice@example.org    "+" for the null sender
 *   size 1234
 *   smtputf8 0
 *   body8bit 0
 *   client 192.0.2.1
 *   helo client.example
 *   digest 3F2A...              SHA-256 of the client's message, hex (DELIVERY_ID)
 *   rcpt deferred 1 bob@example.net bob@example.net 451+204.3.0+20try+20later
 *   end
 *
 * A file without its end record, with an unknown record or a bad value is
 * damaged: it is moved to bad/ with the reason, never delivered and never
 * silently deleted.  A new message's two files are written and fsync'd in
 * tmp/, then linked into queue/ (the envelope last) and queue/ fsync'd; an
 * envelope rewritten later goes to ID.env.new, fsync'd, renamed into place
 * and the directory fsync'd.
 */
#define _GNU_SOURCE   /* sync_file_range(2): a hint that saves a journal commit */
#include "spool.h"
#include "buf.h"
#include "log.h"
#include "maildrop.h"
#include "safepath.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENV_MAX_SIZE (4 * 1024 * 1024)

static const char *const state_names[] = {"pending", "deferred", "delivered", "failed",
    "bounced"};

const char *
spool_state_name(enum rcpt_state s)
{
	return state_names[s];
}

int
spool_path(const struct conf *c, const char *sub, const char *id, const char *ext,
    char *buf, size_t size)
{
	if (id == NULL)
		return str_fmt(buf, size, "%s/%s", c->spool_dir, sub);
	return str_fmt(buf, size, "%s/%s/%s%s", c->spool_dir, sub, id, ext);
}

/*
 * fix_mode - fd's directory has no more access than mode (less is left
 * alone); path is for the messages.
 */
static int
fix_mode(int fd, const struct stat *st, const char *path, mode_t mode, char *why,
    size_t whysize)
{
	if ((st->st_mode & 0777 & ~mode) == 0)
		return 0;
	log_warnx("%s had mode %03o: setting %03o", path, (unsigned)(st->st_mode & 0777),
	    (unsigned)mode);
	if (fchmod(fd, mode) < 0) {
		snprintf(why, whysize, "chmod %s", path);
		return -1;
	}
	return 0;
}

int
spool_prepare_top(const struct conf *c, uid_t uid, gid_t gid, char *why, size_t whysize)
{
	struct stat st, md;
	gid_t top_gid = gid;
	mode_t top_mode = 0700;
	int created = 0, parent_root_only = 0;
	int fd = safepath_open_dir(c->spool_dir, &created, &parent_root_only, why, whysize);
	int rc = -1;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		snprintf(why, whysize, "stat %s", c->spool_dir);
		goto out;
	}
	if (st.st_uid != uid && (geteuid() != 0 || st.st_uid != 0)) {
		/* Someone else's directory: do not take it over. */
		errno = EPERM;
		snprintf(why, whysize, "%s is owned by uid %u, not the spool user (uid %u)",
		    c->spool_dir, (unsigned)st.st_uid, (unsigned)uid);
		goto out;
	}
	/*
	 * A directory of root's that we did not just make, in a directory others
	 * may write, could be one of root's own moved there: not given away.
	 */
	if (st.st_uid != uid && !created && !parent_root_only) {
		errno = EPERM;
		snprintf(why, whysize, "%s is root's, in a directory others may write: "
		    "chown it to the spool user (uid %u) yourself", c->spool_dir, (unsigned)uid);
		goto out;
	}
	/*
	 * SPEC 11: with a maildrop (made by make install-sendmail) the spool
	 * directory belongs to the maildrop's group, which may only pass
	 * through it (0710) to reach maildrop/ (1730).  Looked at, never
	 * followed: it is inside the spool user's directory.
	 */
	if (fstatat(fd, "maildrop", &md, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(md.st_mode) &&
	    (md.st_mode & 07777) == MAILDROP_MODE) {
		top_gid = md.st_gid;
		top_mode = 0710;
	}
	if (geteuid() == 0 && (st.st_uid != uid || st.st_gid != top_gid) &&
	    fchown(fd, uid, top_gid) < 0) {
		snprintf(why, whysize, "chown %s", c->spool_dir);
		goto out;
	}
	rc = fix_mode(fd, &st, c->spool_dir, top_mode, why, whysize);
out:
	close(fd);
	return rc;
}

int
spool_prepare(const struct conf *c, char *why, size_t whysize)
{
	static const char *const subs[] = {"tmp", "queue", "bad"};
	int top = open(c->spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (top < 0) {
		snprintf(why, whysize, "open %s", c->spool_dir);
		return -1;
	}
	for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
		char path[4096];
		struct stat st;
		int fd;

		snprintf(path, sizeof(path), "%s/%s", c->spool_dir, subs[i]);
		if (mkdirat(top, subs[i], 0700) < 0 && errno != EEXIST) {
			snprintf(why, whysize, "mkdir %s", path);
			goto fail;
		}
		if (fstatat(top, subs[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			snprintf(why, whysize, "stat %s", path);
			goto fail;
		}
		/* Never repaired by following it: a link here is tampering. */
		if (!S_ISDIR(st.st_mode)) {
			errno = S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
			snprintf(why, whysize, "%s is %s, not a directory of the spool", path,
			    S_ISLNK(st.st_mode) ? "a symbolic link" : "a file");
			goto fail;
		}
		if (st.st_uid != geteuid()) {
			errno = EPERM;
			snprintf(why, whysize, "%s is owned by uid %u, not the spool user (uid %u)",
			    path, (unsigned)st.st_uid, (unsigned)geteuid());
			goto fail;
		}
		fd = openat(top, subs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			snprintf(why, whysize, "open %s", path);
			goto fail;
		}
		if (fix_mode(fd, &st, path, 0700, why, whysize) < 0) {
			close(fd);
			goto fail;
		}
		close(fd);
	}
	close(top);
	return 0;
fail:
	{
		int saved = errno;

		close(top);
		errno = saved;
	}
	return -1;
}

int
spool_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	if (rc < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return close(fd);
}

/* spool_xtext_put - append the xtext form of s (bounded by the caller's buffer). */
void
spool_xtext_put(FILE *fp, const char *s)
{
	if (*s == '\0') {   /* NOLINT(clang-analyzer-core.NullDereference): arrays only */
		fputc('+', fp);
		return;
	}
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
			fprintf(fp, "+%02X", *p);
		else
			fputc(*p, fp);
	}
}

/* spool_xtext_get - decode one field into out; -1 on bad syntax or overflow. */
int
spool_xtext_get(const char *s, size_t len, char *out, size_t outsize)
{
	size_t o = 0;

	if (len == 1 && s[0] == '+') {
		out[0] = '\0';
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned v;
		char c = s[i];

		if (c == '+') {
			char hex[3];

			if (i + 2 >= len)
				return -1;
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			hex[2] = '\0';
			if (sscanf(hex, "%2X", &v) != 1 || v == 0 ||
			    !strchr("0123456789ABCDEF", hex[0]) ||
			    !strchr("0123456789ABCDEF", hex[1]))
				return -1;
			c = (char)v;
			i += 2;
		} else if ((unsigned char)c < 33 || (unsigned char)c > 126 || c == '=') {
			return -1;
		}
		if (o + 1 >= outsize)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

char *
spool_format_env(const struct spool_env *e, size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *fp = open_memstream(&buf, &size);

	if (fp == NULL)
		fatal("open_memstream");
	fprintf(fp, "undersmtpd-envelope %d\nid ", SPOOL_VERSION);
	spool_xtext_put(fp, e->id);
	fprintf(fp, "\ncreated %lld\nnext-try %lld\nattempts %d\nhold %d\nbounce %d\n"
	    "sender ", (long long)e->created, (long long)e->next_try, e->attempts,
	    e->hold, e->bounce);
	spool_xtext_put(fp, e->sender);
	fprintf(fp, "\nsize %" PRIu64 "\nsmtputf8 %d\nbody8bit %d\nclient ", e->size,
	    e->smtputf8, e->body8bit);
	spool_xtext_put(fp, e->client);
	fputs("\nhelo ", fp);
	spool_xtext_put(fp, e->helo);
	fputs("\ndigest ", fp);
	for (size_t i = 0; i < sizeof(e->digest); i++)
		fprintf(fp, "%02X", e->digest[i]);
	fputc('\n', fp);
	for (size_t i = 0; i < e->nrcpts; i++) {
		const struct spool_rcpt *r = &e->rcpts[i];

		fprintf(fp, "rcpt %s %d ", state_names[r->state], r->attempts);
		spool_xtext_put(fp, r->addr);
		fputc(' ', fp);
		spool_xtext_put(fp, r->orig);
		fputc(' ', fp);
		spool_xtext_put(fp, r->last);
		fputc('\n', fp);
	}
	fputs("end\n", fp);
	if (fclose(fp) != 0)
		fatal("open_memstream");
	*len = size;
	return buf;
}

static int
parse_long(const char *s, size_t len, long long min, long long max, long long *out)
{
	char tmp[32];
	char *end;
	long long v;

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	errno = 0;
	v = strtoll(tmp, &end, 10);
	if (errno || *end || v < min || v > max || tmp[0] == '+' || tmp[0] == ' ')
		return -1;
	*out = v;
	return 0;
}

int
spool_add_rcpt(struct spool_env *e, const char *addr, const char *orig)
{
	struct spool_rcpt *r;

	if (e->nrcpts >= SPOOL_MAX_RCPTS)
		return -1;
	e->rcpts = xreallocarray(e->rcpts, e->nrcpts + 1, sizeof(*e->rcpts));
	r = &e->rcpts[e->nrcpts++];
	memset(r, 0, sizeof(*r));
	if (str_copy(r->addr, sizeof(r->addr), addr) < 0 ||
	    str_copy(r->orig, sizeof(r->orig), orig) < 0) {
		e->nrcpts--;
		return -1;
	}
	r->state = RCPT_PENDING;
	return 0;
}

/* split - up to max space-separated fields of a line. */
static size_t
split(const char *line, size_t len, const char **f, size_t *flen, size_t max)
{
	size_t n = 0, i = 0;

	while (i < len && n < max) {
		size_t start = i;

		while (i < len && line[i] != ' ')
			i++;
		f[n] = line + start;
		flen[n] = i - start;
		n++;
		if (i < len)
			i++;
	}
	return i < len ? max + 1 : n;
}

#define FIELD_IS(k) (flen[0] == strlen(k) && memcmp(f[0], k, flen[0]) == 0)

/* store_int - v (already within its record's bounds) into an integer field. */
static void
store_int(void *dst, size_t size, long long v)
{
	if (size == sizeof(int32_t)) {
		int32_t x = (int32_t)v;

		memcpy(dst, &x, sizeof(x));
	} else {
		int64_t x = (int64_t)v;

		memcpy(dst, &x, sizeof(x));
	}
}

/*
 * scalar_record - an envelope record of one value ("sender <xtext>",
 * "attempts 3"): 1 when it was one and is stored in e, 0 when the record is
 * of another kind, -1 when its value is bad.
 */
static int
scalar_record(struct spool_env *e, const char *const f[], const size_t flen[], size_t n)
{
	const struct {
		const char *name;
		char *dst;
		size_t size;
	} texts[] = {
		{"id", e->id, sizeof(e->id)},
		{"sender", e->sender, sizeof(e->sender)},
		{"client", e->client, sizeof(e->client)},
		{"helo", e->helo, sizeof(e->helo)},
	};
	const struct {
		const char *name;
		long long min, max;
		void *dst;
		size_t size;
	} numbers[] = {
		{"created", 0, INT64_MAX / 2, &e->created, sizeof(e->created)},
		{"next-try", 0, INT64_MAX / 2, &e->next_try, sizeof(e->next_try)},
		{"attempts", 0, 1000000, &e->attempts, sizeof(e->attempts)},
		{"hold", 0, 1, &e->hold, sizeof(e->hold)},
		{"bounce", 0, 1, &e->bounce, sizeof(e->bounce)},
		{"size", 0, INT64_MAX / 2, &e->size, sizeof(e->size)},
		{"smtputf8", 0, 1, &e->smtputf8, sizeof(e->smtputf8)},
		{"body8bit", 0, 1, &e->body8bit, sizeof(e->body8bit)},
	};
	long long v;

	for (size_t i = 0; i < ARRAY_LEN(texts); i++)
		if (FIELD_IS(texts[i].name))
			return n == 2 && spool_xtext_get(f[1], flen[1], texts[i].dst,
			    texts[i].size) == 0 ? 1 : -1;
	for (size_t i = 0; i < ARRAY_LEN(numbers); i++)
		if (FIELD_IS(numbers[i].name)) {
			if (n != 2 || parse_long(f[1], flen[1], numbers[i].min, numbers[i].max,
			    &v) < 0)
				return -1;
			store_int(numbers[i].dst, numbers[i].size, v);
			return 1;
		}
	return 0;
}

int
spool_parse_env(const char *text, size_t len, struct spool_env *e, char *why,
    size_t whysize)
{
	size_t pos = 0, lineno = 0;
	int seen_end = 0, seen_magic = 0;

	memset(e, 0, sizeof(*e));
	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		const char *f[8];
		size_t flen[8], n, ll;
		long long v;

		lineno++;
		if (nl == NULL) {
			snprintf(why, whysize, "line %zu: no end of line (truncated)", lineno);
			goto bad;
		}
		ll = (size_t)(nl - line);
		pos += ll + 1;
		if (seen_end) {
			snprintf(why, whysize, "line %zu: data after the end record", lineno);
			goto bad;
		}
		n = split(line, ll, f, flen, 7);
		if (n == 0 || n > 7) {
			snprintf(why, whysize, "line %zu: bad record", lineno);
			goto bad;
		}
		if (!seen_magic) {
			if (!(n == 2 && FIELD_IS("undersmtpd-envelope") &&
			    parse_long(f[1], flen[1], 1, 1000, &v) == 0)) {
				snprintf(why, whysize, "not an undersmtpd envelope");
				goto bad;
			}
			if (v != SPOOL_VERSION) {
				snprintf(why, whysize, "envelope version %lld, this is %d", v,
				    SPOOL_VERSION);
				goto bad;
			}
			seen_magic = 1;
			continue;
		}
		if (n == 1 && FIELD_IS("end")) {
			seen_end = 1;
			continue;
		}
		switch (scalar_record(e, f, flen, n)) {
		case 1:
			continue;
		case -1:
			goto badvalue;
		}
		if (FIELD_IS("digest")) {
			if (n != 2 || flen[1] != 2 * sizeof(e->digest))
				goto badvalue;
			for (size_t k = 0; k < sizeof(e->digest); k++) {
				unsigned v2;
				char hex[3] = {f[1][2 * k], f[1][2 * k + 1], '\0'};

				if (!strchr("0123456789ABCDEF", hex[0]) ||
				    !strchr("0123456789ABCDEF", hex[1]) ||
				    sscanf(hex, "%2X", &v2) != 1)
					goto badvalue;
				e->digest[k] = (unsigned char)v2;
			}
			continue;
		}
		if (FIELD_IS("rcpt")) {
			struct spool_rcpt r;
			size_t s;

			memset(&r, 0, sizeof(r));
			if (n != 6)
				goto badvalue;
			for (s = 0; s < ARRAY_LEN(state_names); s++)
				if (flen[1] == strlen(state_names[s]) &&
				    memcmp(f[1], state_names[s], flen[1]) == 0)
					break;
			if (s == ARRAY_LEN(state_names) ||
			    parse_long(f[2], flen[2], 0, 1000000, &v) < 0 ||
			    spool_xtext_get(f[3], flen[3], r.addr, sizeof(r.addr)) < 0 ||
			    spool_xtext_get(f[4], flen[4], r.orig, sizeof(r.orig)) < 0 ||
			    spool_xtext_get(f[5], flen[5], r.last, sizeof(r.last)) < 0 ||
			    r.addr[0] == '\0')
				goto badvalue;
			if (spool_add_rcpt(e, r.addr, r.orig) < 0) {
				snprintf(why, whysize, "line %zu: too many recipients", lineno);
				goto bad;
			}
			e->rcpts[e->nrcpts - 1].state = (enum rcpt_state)s;
			e->rcpts[e->nrcpts - 1].attempts = (int)v;
			str_copy(e->rcpts[e->nrcpts - 1].last, sizeof(r.last), r.last);
			continue;
		}
		snprintf(why, whysize, "line %zu: unknown record '%.*s'", lineno,
		    (int)(flen[0] > 32 ? 32 : flen[0]), f[0]);
		goto bad;
badvalue:
		snprintf(why, whysize, "line %zu: bad value in '%.*s' record", lineno,
		    (int)(flen[0] > 32 ? 32 : flen[0]), f[0]);
		goto bad;
	}
	if (!seen_end) {
		snprintf(why, whysize, "no end record (truncated)");
		goto bad;
	}
	if (e->id[0] == '\0' || e->nrcpts == 0) {
		snprintf(why, whysize, "no id or no recipients");
		goto bad;
	}
	return 0;
bad:
	spool_env_free(e);
	return -1;
}

void
spool_env_free(struct spool_env *e)
{
	free(e->rcpts);
	e->rcpts = NULL;
	e->nrcpts = 0;
}

/*
 * write_env_tmp - the envelope's text into a new file at path (O_EXCL; a
 * leftover of a writer killed mid-way is ours to replace when replace is
 * set).  Returns the open fd, written but not yet fsync'd, or -1.
 */
static int
write_env_tmp(const char *path, const struct spool_env *e, int replace)
{
	size_t len;
	char *text = spool_format_env(e, &len);
	int fd, saved;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST && replace) {
		/* Left by a runner killed mid-write: ours now (we hold the lock). */
		unlink(path);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd < 0) {
		free(text);
		return -1;
	}
	if (write_all(fd, text, len) < 0) {
		saved = errno;
		close(fd);
		unlink(path);
		free(text);
		errno = saved;
		return -1;
	}
	free(text);
	return fd;
}

/* rewrite_env - path.new: write, fsync, close; rename to path; fsync dir. */
static int
rewrite_env(const char *dir, const char *path, const struct spool_env *e)
{
	char tmp[4200];
	int fd, saved;

	if (str_fmt(tmp, sizeof(tmp), "%s.new", path) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = write_env_tmp(tmp, e, 1)) < 0)
		return -1;
	if (fsync(fd) < 0) {
		saved = errno;
		close(fd);
		goto fail;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		saved = errno;
		goto fail;
	}
	return spool_fsync_dir(dir);
fail:
	unlink(tmp);
	errno = saved;
	return -1;
}

/*
 * start_writeback - ask the kernel to start writing fd's pages now (Linux),
 * so that the message's fsync, which comes next, commits the envelope's
 * blocks in the same journal transaction and the envelope's own fsync
 * finds little left to do.  Only a hint: durability comes from the fsyncs.
 */
static void
start_writeback(int fd)
{
#ifdef SYNC_FILE_RANGE_WRITE
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
	(void)fd;
#endif
}

/*
 * The commit, in the order a crash cannot hurt (SPEC 8): both files' data
 * durable before either has a name in queue/; the message named first and
 * the envelope last, since the envelope's presence is what makes a message
 * exist; then queue/ fsync'd, which makes both names durable.  Three fsyncs,
 * but the two file fsyncs land in one journal commit where the old order
 * (message fsync, link, envelope fsync, link, directory fsync) cost three.
 */
int
spool_commit(const struct conf *c, int msgfd, const struct spool_env *e)
{
	char tmpmsg[4096], tmpenv[4096], qmsg[4096], qenv[4096], qdir[4096];
	int envfd, saved;

	if (spool_path(c, "tmp", e->id, ".msg", tmpmsg, sizeof(tmpmsg)) < 0 ||
	    spool_path(c, "tmp", e->id, ".env", tmpenv, sizeof(tmpenv)) < 0 ||
	    spool_path(c, "queue", e->id, ".msg", qmsg, sizeof(qmsg)) < 0 ||
	    spool_path(c, "queue", e->id, ".env", qenv, sizeof(qenv)) < 0 ||
	    spool_path(c, "queue", NULL, NULL, qdir, sizeof(qdir)) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((envfd = write_env_tmp(tmpenv, e, 0)) < 0) {
		saved = errno;
		log_warn("%s: write envelope %s", e->id, tmpenv);
		unlink(tmpmsg);
		errno = saved;
		return -1;
	}
	start_writeback(envfd);
	/* 1. Both files durable.  Never retry an fsync that failed (T60). */
	if (fsync(msgfd) < 0) {
		saved = errno;
		log_warn("%s: fsync %s", e->id, tmpmsg);
		goto fail;
	}
	if (fsync(envfd) < 0) {
		saved = errno;
		log_warn("%s: fsync %s", e->id, tmpenv);
		goto fail;
	}
	if (close(envfd) < 0) {
		envfd = -1;
		saved = errno;
		log_warn("%s: close %s", e->id, tmpenv);
		goto fail;
	}
	envfd = -1;
	/* 2. Named in queue/: link() never replaces a message with the same id. */
	if (link(tmpmsg, qmsg) < 0) {
		saved = errno;
		log_warn("%s: link %s -> %s", e->id, tmpmsg, qmsg);
		goto fail;
	}
	if (link(tmpenv, qenv) < 0) {
		saved = errno;
		log_warn("%s: link %s -> %s", e->id, tmpenv, qenv);
		unlink(qmsg);
		goto fail;
	}
	/* 3. The names durable: only now may the caller answer 250. */
	if (spool_fsync_dir(qdir) < 0) {
		saved = errno;
		log_warn("%s: fsync %s", e->id, qdir);
		unlink(qenv);
		unlink(qmsg);
		goto fail;
	}
	if (unlink(tmpmsg) < 0)
		log_warn("%s: unlink %s", e->id, tmpmsg);
	if (unlink(tmpenv) < 0)
		log_warn("%s: unlink %s", e->id, tmpenv);
	return 0;
fail:
	if (envfd >= 0)
		close(envfd);
	unlink(tmpenv);
	unlink(tmpmsg);
	errno = saved;
	return -1;
}

int
spool_update(const struct conf *c, const struct spool_env *e)
{
	char qenv[4096], qdir[4096];

	if (spool_path(c, "queue", e->id, ".env", qenv, sizeof(qenv)) < 0 ||
	    spool_path(c, "queue", NULL, NULL, qdir, sizeof(qdir)) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return rewrite_env(qdir, qenv, e);
}

int
spool_read(const struct conf *c, const char *id, struct spool_env *e, char *why,
    size_t whysize)
{
	char path[4096], *buf;
	struct stat st;
	ssize_t n;
	size_t off = 0;
	int fd, rc;

	memset(e, 0, sizeof(*e));
	if (spool_path(c, "queue", id, ".env", path, sizeof(path)) < 0) {
		snprintf(why, whysize, "path too long");
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(why, whysize, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > ENV_MAX_SIZE) {
		snprintf(why, whysize, "%s: not a regular file of at most 4 MiB", path);
		close(fd);
		return -1;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size && (n = read(fd, buf + off,
	    (size_t)st.st_size - off)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, whysize, "read %s: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	close(fd);
	rc = spool_parse_env(buf, off, e, why, whysize);
	free(buf);
	if (rc == 0 && strcmp(e->id, id) != 0) {
		snprintf(why, whysize, "envelope names id %s", e->id);
		spool_env_free(e);
		return -1;
	}
	return rc;
}

int
spool_lock(const struct conf *c, const char *id)
{
	char path[4096];
	int fd;

	if (spool_path(c, "queue", id, ".msg", path, sizeof(path)) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int
spool_remove(const struct conf *c, const char *id, int durable)
{
	char env[4096], msg[4096], dir[4096];

	if (spool_path(c, "queue", id, ".env", env, sizeof(env)) < 0 ||
	    spool_path(c, "queue", id, ".msg", msg, sizeof(msg)) < 0 ||
	    spool_path(c, "queue", NULL, NULL, dir, sizeof(dir)) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Envelope first: a message without one is never delivered again. */
	if (unlink(env) < 0 && errno != ENOENT)
		return -1;
	if (unlink(msg) < 0 && errno != ENOENT)
		return -1;
	return durable ? spool_fsync_dir(dir) : 0;
}

void
spool_quarantine(const struct conf *c, const char *id, const char *reason)
{
	static const char *const exts[] = {".env", ".msg"};
	char from[4096], to[4096], whyfile[4096];
	FILE *fp;

	log_warnx("%s: damaged message moved to %s/bad: %s", id, c->spool_dir, reason);
	for (size_t i = 0; i < ARRAY_LEN(exts); i++) {
		if (spool_path(c, "queue", id, exts[i], from, sizeof(from)) < 0 ||
		    spool_path(c, "bad", id, exts[i], to, sizeof(to)) < 0)
			return;
		if (rename(from, to) < 0 && errno != ENOENT)
			log_warn("%s: rename %s -> %s", id, from, to);
	}
	if (spool_path(c, "bad", id, ".why", whyfile, sizeof(whyfile)) == 0 &&
	    (fp = fopen(whyfile, "w")) != NULL) {
		fprintf(fp, "%s\n", reason);
		if (fclose(fp) != 0)
			log_warn("%s: write %s", id, whyfile);
	}
}

int
spool_id_valid(const char *name, size_t len)
{
	if (len == 0 || len >= SPOOL_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'A' && name[i] <= 'Z')))
			return 0;
	return 1;
}

void
spool_clean(const struct conf *c)
{
	char dirpath[4096], path[4200];
	DIR *d;
	struct dirent *de;
	time_t now = time(NULL);

	/* tmp/: a file nobody holds a lock on is a receiver that died. */
	if (spool_path(c, "tmp", NULL, NULL, dirpath, sizeof(dirpath)) == 0 &&
	    (d = opendir(dirpath)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			size_t len = strlen(de->d_name);
			struct stat st;
			int fd;

			if (strncmp(de->d_name, "auth-", 5) == 0) {
				/* AUTH failure counts (auth.c) whose window is over. */
				if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				    now - st.st_mtime > c->auth_failure_window &&
				    unlinkat(dirfd(d), de->d_name, 0) < 0)
					log_warn("unlink %s/%s", dirpath, de->d_name);
				continue;
			}
			if (len > 4 && strcmp(de->d_name + len - 4, ".env") == 0) {
				/*
				 * An envelope being committed lives here for the time
				 * of three fsyncs; a minute old, its writer died.
				 */
				if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				    now - st.st_mtime > 60) {
					log_info("spool: removing stale %s/%s", dirpath, de->d_name);
					if (unlinkat(dirfd(d), de->d_name, 0) < 0)
						log_warn("unlink %s/%s", dirpath, de->d_name);
				}
				continue;
			}
			if (len < 5 || strcmp(de->d_name + len - 4, ".msg") != 0)
				continue;
			if (str_fmt(path, sizeof(path), "%s/%s", dirpath, de->d_name) < 0)
				continue;
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			if (fd < 0)
				continue;
			/*
			 * Unlocked and a minute old: its receiver died.  The age matters:
			 * a receiver takes its lock just after creating the file.
			 */
			if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 &&
			    now - st.st_mtime > 60) {
				log_info("spool: removing stale %s", path);
				if (unlink(path) < 0)
					log_warn("unlink %s", path);
			}
			close(fd);
		}
		closedir(d);
	}
	/* queue/: a message without an envelope was never committed. */
	if (spool_path(c, "queue", NULL, NULL, dirpath, sizeof(dirpath)) == 0 &&
	    (d = opendir(dirpath)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			size_t len = strlen(de->d_name);
			char env[4200];
			struct stat st;

			if (len < 5 || strcmp(de->d_name + len - 4, ".msg") != 0 ||
			    !spool_id_valid(de->d_name, len - 4))
				continue;
			if (str_fmt(path, sizeof(path), "%s/%s", dirpath, de->d_name) < 0 ||
			    str_fmt(env, sizeof(env), "%s/%.*s.env", dirpath,
			    (int)(len - 4), de->d_name) < 0)
				continue;
			if (stat(env, &st) == 0 || errno != ENOENT)
				continue;
			/* Being committed right now? Give a receiver time to finish. */
			if (stat(path, &st) == 0 && now - st.st_mtime > 60) {
				log_info("spool: removing uncommitted %s", path);
				if (unlink(path) < 0)
					log_warn("unlink %s", path);
			}
		}
		closedir(d);
	}
	/* bad/: kept for an operator to look at, but not without bound. */
	if (c->queue.bad_lifetime > 0 &&
	    spool_path(c, "bad", NULL, NULL, dirpath, sizeof(dirpath)) == 0 &&
	    (d = opendir(dirpath)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			struct stat st;

			if (de->d_name[0] == '.' ||
			    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    now - st.st_mtime <= c->queue.bad_lifetime)
				continue;
			if (unlinkat(dirfd(d), de->d_name, 0) == 0)
				log_info("spool: removed %s/%s, in bad/ for longer than "
				    "queue.bad_lifetime", dirpath, de->d_name);
			else
				log_warn("unlink %s/%s", dirpath, de->d_name);
		}
		closedir(d);
	}
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **
spool_ids(const struct conf *c)
{
	char dirpath[4096];
	DIR *d;
	struct dirent *de;
	char **ids = xcalloc(1, sizeof(char *));
	size_t n = 0;

	if (spool_path(c, "queue", NULL, NULL, dirpath, sizeof(dirpath)) < 0 ||
	    (d = opendir(dirpath)) == NULL)
		return ids;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len < 5 || strcmp(de->d_name + len - 4, ".env") != 0 ||
		    !spool_id_valid(de->d_name, len - 4))
			continue;
		ids = xreallocarray(ids, n + 2, sizeof(char *));
		ids[n++] = xstrndup(de->d_name, len - 4);
		ids[n] = NULL;
	}
	closedir(d);
	qsort(ids, n, sizeof(char *), cmp_str);
	return ids;
}

void
spool_ids_free(char **ids)
{
	for (size_t i = 0; ids && ids[i]; i++)
		free(ids[i]);
	free(ids);
}
