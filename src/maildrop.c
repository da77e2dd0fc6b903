/*
 * maildrop.c - the maildrop file: its format, handing it to the setgid
 * helper, and picking it up into the spool.  See maildrop.h.
 */
#include "maildrop.h"
#include "bounce.h"
#include "filter.h"
#include "stats.h"
#include "buf.h"
#include "envelope.h"
#include "log.h"
#include "spool.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sysexits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


char *
maildrop_format(const char *sender, char *const *rcpts, size_t nrcpts, size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *fp = open_memstream(&buf, &size);

	if (fp == NULL)
		return NULL;
	fputs(MAILDROP_MAGIC "sender ", fp);
	spool_xtext_put(fp, sender);
	fputc('\n', fp);
	for (size_t i = 0; i < nrcpts; i++) {
		fputs("rcpt ", fp);
		spool_xtext_put(fp, rcpts[i]);
		fputc('\n', fp);
	}
	fputs("end\n", fp);
	if (fclose(fp) != 0) {
		free(buf);
		return NULL;
	}
	*len = size;
	return buf;
}

void
maildrop_header_free(struct maildrop_header *h)
{
	free(h->rcpts);
	h->rcpts = NULL;
	h->nrcpts = 0;
}

/* field - "NAME XTEXT" into out, checked as an address; -1 with why. */
static int
field(const char *line, size_t len, const char *name, char *out, size_t outsize,
    int may_be_empty, char *why, size_t whysize)
{
	size_t n = strlen(name);
	struct addr a;

	if (len <= n + 1 || memcmp(line, name, n) != 0 || line[n] != ' ' ||
	    spool_xtext_get(line + n + 1, len - n - 1, out, outsize) < 0) {
		snprintf(why, whysize, "bad %s line", name);
		return -1;
	}
	if (out[0] == '\0' ? !may_be_empty : addr_parse_plain(out, &a) != ADDR_OK) {
		snprintf(why, whysize, "bad %s address", name);
		return -1;
	}
	return 0;
}

int
maildrop_parse(const char *buf, size_t len, struct maildrop_header *h, char *why,
    size_t whysize)
{
	size_t magic = strlen(MAILDROP_MAGIC), pos;
	int ended = 0;

	memset(h, 0, sizeof(*h));
	if (len < magic || memcmp(buf, MAILDROP_MAGIC, magic) != 0) {
		snprintf(why, whysize, "not a maildrop file (version 1)");
		return -1;
	}
	pos = magic;
	for (int first = 1; pos < len && !ended; first = 0) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n;

		if (nl == NULL)
			break;
		n = (size_t)(nl - line);
		pos += n + 1;
		if (first) {
			if (field(line, n, "sender", h->sender, sizeof(h->sender), 1, why,
			    whysize) < 0)
				goto bad;
		} else if (n == 3 && memcmp(line, "end", 3) == 0) {
			ended = 1;
		} else {
			if (h->nrcpts == MAILDROP_MAX_RCPTS) {
				snprintf(why, whysize, "more than %d recipients", MAILDROP_MAX_RCPTS);
				goto bad;
			}
			h->rcpts = xreallocarray(h->rcpts, h->nrcpts + 1, sizeof(*h->rcpts));
			if (field(line, n, "rcpt", h->rcpts[h->nrcpts], sizeof(h->rcpts[0]), 0,
			    why, whysize) < 0)
				goto bad;
			h->nrcpts++;
		}
	}
	if (!ended || h->nrcpts == 0) {
		snprintf(why, whysize, ended ? "no recipients" : "the header does not end");
		goto bad;
	}
	h->length = pos;
	return 0;
bad:
	maildrop_header_free(h);
	return -1;
}

/* copy_body - count bytes of fd from offset into out (a pipe or a sink). */
static int
copy_body(int fd, off_t offset, uint64_t count, int (*put)(void *, const char *, size_t),
    void *ctx)
{
	char buf[65536];

	while (count > 0) {
		size_t want = count < sizeof(buf) ? (size_t)count : sizeof(buf);
		ssize_t n = pread(fd, buf, want, offset);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;        /* shorter than it was a moment ago */
			return -1;
		}
		if (put(ctx, buf, (size_t)n) < 0)
			return -1;
		offset += n;
		count -= (uint64_t)n;
	}
	return 0;
}

static int
put_fd(void *ctx, const char *p, size_t n)
{
	return write_all(*(int *)ctx, p, n);
}

int
maildrop_hand_over(const char *helper, const char *dir, const char *header, size_t hlen,
    int bodyfd, uint64_t bodylen, char *why, size_t whysize)
{
	char size[32], name[] = "undersmtpd-drop", dirbuf[4096], *const envp[] = {NULL};
	struct sigaction ign, old;
	int p[2], status, wrote;
	pid_t pid;

	snprintf(size, sizeof(size), "%llu", (unsigned long long)(hlen + bodylen));
	if (str_copy(dirbuf, sizeof(dirbuf), dir) < 0) {
		snprintf(why, whysize, "the maildrop path is too long");
		return EX_TEMPFAIL;
	}
	if (pipe(p) < 0) {
		snprintf(why, whysize, "pipe: %s", strerror(errno));
		return EX_TEMPFAIL;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, whysize, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return EX_TEMPFAIL;
	}
	if (pid == 0) {
		char *const argv[] = {name, dirbuf, size, NULL};

		if (dup2(p[0], 0) < 0)
			_exit(EX_TEMPFAIL);
		close(p[0]);
		close(p[1]);
		/* Nothing of the caller's environment reaches a setgid program. */
		execve(helper, argv, envp);
		fprintf(stderr, "sendmail: cannot run the maildrop helper %s: %s\n", helper,
		    strerror(errno));
		_exit(EX_TEMPFAIL);
	}
	close(p[0]);
	/* A helper that refuses early closes its end: an error, not a signal. */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &old);
	wrote = write_all(p[1], header, hlen) == 0 &&
	    copy_body(bodyfd, 0, bodylen, put_fd, &p[1]) == 0;
	if (!wrote)
		snprintf(why, whysize, "writing to the maildrop helper: %s", strerror(errno));
	close(p[1]);
	sigaction(SIGPIPE, &old, NULL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			snprintf(why, whysize, "waitpid: %s", strerror(errno));
			return EX_TEMPFAIL;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && wrote)
		return 0;
	if (wrote)
		snprintf(why, whysize, "the maildrop helper %s failed (%s %d)", helper,
		    WIFEXITED(status) ? "exit" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return WIFEXITED(status) && WEXITSTATUS(status) != 0 ? WEXITSTATUS(status)
	    : EX_TEMPFAIL;
}

/*
 * reject - a maildrop file that cannot be mail: logged with its owner and
 * size, and removed.  Such a file never came from our sendmail, which checks
 * all of this first; keeping it (in bad/) would let a user fill the disk.
 */
static void
reject(int dfd, const char *name, const struct stat *st, const char *reason)
{
	log_warnx("maildrop file %s from uid %ld (%lld bytes) rejected and removed: %s",
	    name, (long)st->st_uid, (long long)st->st_size, reason);
	if (unlinkat(dfd, name, 0) < 0)
		log_warn("unlink maildrop/%s", name);
}

/*
 * The checks SMTP and sendmail make of a message, for a maildrop file that
 * may have been written with the helper straight, bypassing sendmail: no
 * NUL, no CR (sendmail writes LF endings only), lines of at most 998
 * characters (RFC 5322 2.1.1), at most max_hops Received: headers.
 */
#define BODY_LINE_MAX 998
struct body_check {
	struct data_sink *out;
	size_t linelen;
	int in_headers;
	long hops;
	char start[9];                /* the first bytes of the current line */
	const char *bad;              /* the first problem, or NULL */
};

static int
put_checked(void *ctx, const char *p, size_t n)
{
	struct body_check *b = ctx;

	for (size_t i = 0; i < n && b->bad == NULL; i++) {
		char ch = p[i];

		if (ch == '\0')
			b->bad = "the message contains a NUL byte";
		else if (ch == '\r')
			b->bad = "the message contains a CR (sendmail writes LF line endings)";
		else if (ch == '\n') {
			if (b->in_headers && b->linelen == 0)
				b->in_headers = 0;
			b->linelen = 0;
		} else {
			if (b->linelen < sizeof(b->start))
				b->start[b->linelen] = ch;
			if (++b->linelen > BODY_LINE_MAX)
				b->bad = "a line is longer than 998 characters";
			if (b->in_headers && b->linelen == sizeof(b->start) &&
			    strncasecmp(b->start, "received:", sizeof(b->start)) == 0)
				b->hops++;
		}
	}
	if (b->bad != NULL) {
		errno = EINVAL;
		return -1;
	}
	return b->out->write(b->out->ctx, p, n);
}

/*
 * refusal_dsn - the content filter refused a maildrop message for good: its
 * sender gets the DSN sendmail's caller would have had as an exit status.
 * 0, or -1 (none could be made: the file stays for the next run).
 */
static int
refusal_dsn(const struct conf *c, const struct envelope *e, const struct maildrop_header *h,
    const struct smtp_reply *rep)
{
	struct spool_env env;
	char line[SPOOL_REPLY_MAX];
	int rc;

	memset(&env, 0, sizeof(env));
	str_copy(env.id, sizeof(env.id), e->id);
	str_copy(env.sender, sizeof(env.sender), h->sender);
	env.created = time(NULL);
	env.rcpts = xcalloc(h->nrcpts, sizeof(*env.rcpts));
	env.nrcpts = h->nrcpts;
	smtp_reply_line(rep, line, sizeof(line));
	for (size_t i = 0; i < h->nrcpts; i++) {
		str_copy(env.rcpts[i].addr, sizeof(env.rcpts[i].addr), h->rcpts[i]);
		str_copy(env.rcpts[i].orig, sizeof(env.rcpts[i].orig), h->rcpts[i]);
		env.rcpts[i].state = RCPT_FAILED;
		str_copy(env.rcpts[i].last, sizeof(env.rcpts[i].last), line);
	}
	rc = bounce_create(c, &env, e->msg_fd);
	free(env.rcpts);
	return rc;
}

/*
 * filter_maildrop - issue 20: the recipients' content filter on e's message
 * before it joins the queue.  0 go on (perhaps rewritten, *size updated);
 * -1 try again at the next run; -2 refused (*why); -3 refused for good and
 * the sender told.
 */
static int
filter_maildrop(const struct conf *c, const struct aliases *a,
    const struct delivery_ctx *dctx, struct envelope *e, const struct maildrop_header *h,
    uint64_t *size, const char **why)
{
	const char **rcpts = xcalloc(h->nrcpts, sizeof(*rcpts));
	const struct filter_conf *f;
	const struct pipe_conf *pc;
	const char *first;
	struct smtp_reply rep;
	int rc = 0;

	for (size_t i = 0; i < h->nrcpts; i++)
		rcpts[i] = h->rcpts[i];
	if (filter_choose(c, a, rcpts, h->nrcpts, &f, &pc, &first) < 0) {
		*why = "the recipients go through different content filters";
		rc = -2;
	} else if (f != NULL && filter_transaction(dctx, f, pc, e->id, e->sender_text, first,
	    rcpts, h->nrcpts, "127.0.0.1", "localhost", e->msg_fd, size, &rep) < 0) {
		if (rep.code / 100 == 4) {
			log_info("%s: the content filter deferred a maildrop message: %d %s %s",
			    e->id, rep.code, rep.status, rep.text);
			rc = -1;
		} else if (h->sender[0] == '\0') {
			*why = "refused by the content filter (no DSN to the null sender)";
			rc = -2;
		} else {
			rc = refusal_dsn(c, e, h, &rep) == 0 ? -3 : -1;
		}
	}
	free(rcpts);
	return rc;
}

/*
 * to_spool - one maildrop message into the spool, exactly as sendmail run by
 * `user` would have spooled it (but every recipient is left to the queue).
 * 0; -1 with errno on a local failure (the file stays for the next run); -2
 * with *why when the message itself is refused; -3 when the content filter
 * refused it and the sender has a DSN.
 */
static int
to_spool(const struct conf *c, const struct aliases *a, const struct delivery_ctx *dctx,
    int fd, const struct stat *st, const struct maildrop_header *h, char *id,
    size_t idsize, const char **why)
{
	struct envelope_client cl = {"localhost", "127.0.0.1", "local", (long)st->st_uid};
	struct envelope e;
	struct data_sink sink;
	struct body_check check;
	uint64_t bodylen = (uint64_t)st->st_size - h->length;
	off_t size;
	int rc = -1, filtered_out = 0;

	envelope_init(&e);
	if (envelope_new_id(&e) < 0)
		return -1;
	str_copy(id, idsize, e.id);
	if (h->sender[0] != '\0' && addr_parse_plain(h->sender, &e.sender) != ADDR_OK)
		goto out;
	e.sender.null = h->sender[0] == '\0';
	str_copy(e.sender_text, sizeof(e.sender_text), h->sender);
	if (envelope_open_message(&e, c, &cl) < 0)
		goto out;
	sink = envelope_sink(&e);
	memset(&check, 0, sizeof(check));
	check.out = &sink;
	check.in_headers = 1;
	if (copy_body(fd, (off_t)h->length, bodylen, put_checked, &check) < 0) {
		if (check.bad != NULL) {
			*why = check.bad;
			rc = -2;
		}
		goto out;
	}
	if (check.hops > c->max_hops) {
		*why = "too many Received: headers (mail loop)";
		rc = -2;
		goto out;
	}
	if (envelope_finish_message(&e) < 0)
		goto out;
	size = lseek(e.msg_fd, 0, SEEK_END);
	if (size < 0)
		goto out;
	{
		uint64_t filtered = (uint64_t)size;

		rc = filter_maildrop(c, a, dctx, &e, h, &filtered, why);
		if (rc != 0) {
			filtered_out = 1;      /* the filter's outcome is logged already */
			goto out;
		}
		size = (off_t)filtered;
	}
	for (size_t i = 0; i < h->nrcpts; i++)
		envelope_add_dest(&e, h->rcpts[i], h->rcpts[i]);
	rc = envelope_spool(&e, c, &cl, (uint64_t)size);
out:
	if (rc == -1 && !filtered_out)
		log_warn("%s: spooling a maildrop message", e.id);
	envelope_reset(&e);
	return rc;
}

/* pick_one - 1 picked up, 0 left for later or rejected. */
static int
pick_one(const struct conf *c, const struct aliases *a, const struct delivery_ctx *dctx,
    int dfd, const char *name)
{
	struct maildrop_header h;
	struct stat st;
	char *head, why[200], id[SPOOL_ID_MAX];
	const char *refused = NULL;
	size_t want;
	ssize_t n;
	int fd, rc = 0;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn("open maildrop/%s", name);
		return 0;
	}
	if (fstat(fd, &st) < 0) {
		log_warn("fstat maildrop/%s", name);
		close(fd);
		return 0;
	}
	/* Only what the helper makes: a plain file, no other name for it. */
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		close(fd);
		reject(dfd, name, &st, "not a plain file with one link");
		return 0;
	}
	if (c->max_message_size > 0 &&
	    (uint64_t)st.st_size > c->max_message_size + MAILDROP_HEADER_MAX) {
		close(fd);
		reject(dfd, name, &st, "larger than max_message_size");
		return 0;
	}
	want = (uint64_t)st.st_size < MAILDROP_HEADER_MAX ? (size_t)st.st_size
	    : MAILDROP_HEADER_MAX;
	head = xmalloc(want + 1);
	n = pread(fd, head, want, 0);
	if (n < 0 || (size_t)n != want) {
		log_warn("read maildrop/%s", name);
	} else if (maildrop_parse(head, want, &h, why, sizeof(why)) < 0) {
		reject(dfd, name, &st, why);
	} else {
		if (c->max_recipients > 0 && h.nrcpts > (size_t)c->max_recipients) {
			snprintf(why, sizeof(why), "%zu recipients, max_recipients is %ld", h.nrcpts,
			    c->max_recipients);
			reject(dfd, name, &st, why);
		} else if ((rc = to_spool(c, a, dctx, fd, &st, &h, id, sizeof(id),
		    &refused)) == -2) {
			reject(dfd, name, &st, refused);
			rc = 0;
		} else if (rc == -3) {
			/* The sender has the DSN: the maildrop copy has done its part. */
			log_info_as("pickup", "%s: uid=%ld from=<%s> (maildrop %s): refused by the "
			    "content filter, sender notified", id, (long)st.st_uid, h.sender, name);
			if (unlinkat(dfd, name, 0) < 0)
				log_warn("unlink maildrop/%s", name);
			rc = 0;
		} else if (rc == 0) {
			/* Postfix's pickup and qmgr lines: pflogsumm counts it received. */
			log_info_as("pickup", "%s: uid=%ld from=<%s> (maildrop %s)", id,
			    (long)st.st_uid, h.sender, name);
			log_info_as("qmgr", "%s: from=<%s>, size=%lld, nrcpt=%zu (queue active)",
			    id, h.sender, (long long)st.st_size, h.nrcpts);
			stats_count(c, STATS_RECEIVED);
			/* Durable in the queue: now the maildrop copy may go. */
			if (unlinkat(dfd, name, 0) < 0)
				log_warn("unlink maildrop/%s", name);
			rc = 1;
		} else {
			rc = 0;
		}
		maildrop_header_free(&h);
	}
	free(head);
	close(fd);
	return rc;
}

/*
 * remove_if_dead - a helper's tmp file whose helper is gone (SIGKILL, its
 * timeout): readable (a helper makes it so only once it holds the lock) and
 * locked by nobody.  A file still of mode 0 is being born; only an old one
 * is a helper that died in that instant.
 */
static void
remove_if_dead(int dfd, const char *name, time_t now)
{
	struct stat st;
	int fd, dead = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if ((st.st_mode & 0777) == 0) {
		dead = now - st.st_mtime > MAILDROP_STALE_SECONDS;
	} else {
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			return;
		dead = flock(fd, LOCK_SH | LOCK_NB) == 0;
		close(fd);
	}
	if (dead && unlinkat(dfd, name, 0) == 0)
		log_info("removed %s, the partial maildrop file of a helper that died (uid "
		    "%ld, %lld bytes)", name, (long)st.st_uid, (long long)st.st_size);
}

int
maildrop_pickup(const struct conf *c, const struct aliases *a,
    const struct delivery_ctx *dctx)
{
	char path[4096];
	struct dirent *de;
	time_t now = time(NULL);
	int picked = 0, dfd;
	DIR *d;

	if (spool_path(c, "maildrop", NULL, NULL, path, sizeof(path)) < 0)
		return 0;
	d = opendir(path);
	if (d == NULL) {
		if (errno != ENOENT)
			log_warn("opendir %s", path);
		return 0;
	}
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (strncmp(de->d_name, "tmp.", 4) == 0)
			remove_if_dead(dfd, de->d_name, now);
		else
			picked += pick_one(c, a, dctx, dfd, de->d_name);
	}
	if (picked > 0 && fsync(dfd) < 0)
		log_warn("fsync %s", path);
	closedir(d);
	return picked;
}
