/*
 * stats.c - the counters file.  See stats.h.
 */
#include "stats.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATS_MAGIC "undersmtpd-st1\n"
#define STATS_LOCK_WAIT_MS 100

static const char *const outcome_words[STATS_NOUTCOMES] = {"sent", "deferred",
	"bounced", "expired"};

const char *
stats_outcome_word(enum stats_outcome o)
{
	return (unsigned)o < STATS_NOUTCOMES ? outcome_words[o] : "?";
}

static int
outcome_of(const char *word)
{
	for (int i = 0; i < STATS_NOUTCOMES; i++)
		if (strcmp(word, outcome_words[i]) == 0)
			return i;
	return -1;
}

/* Where each part lives in the file. */
#define ALIAS_AT(i) ((off_t)offsetof(struct stats, alias) + (off_t)(i) * \
	(off_t)sizeof(struct stats_alias))
#define HOST_AT(i) ((off_t)offsetof(struct stats, host) + (off_t)(i) * \
	(off_t)sizeof(struct stats_host))

static int
read_at(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = pread(fd, buf, len, off);

	return n == (ssize_t)len ? 0 : -1;
}

static int
write_at(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t n = pwrite(fd, buf, len, off);

	return n == (ssize_t)len ? 0 : -1;
}

/* fresh_head - an empty file's header, counting from now. */
static void
fresh_head(struct stats_head *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, STATS_MAGIC, sizeof(STATS_MAGIC));
	h->naliases = STATS_ALIASES;
	h->nhosts = STATS_HOSTS;
	h->since = (int64_t)time(NULL);
}

/*
 * reset - the file emptied and laid out again (a new file, one of another
 * layout, or the daemon starting): zeros, then the header.
 */
static int
reset(int fd, struct stats_head *h)
{
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)sizeof(struct stats)) < 0)
		return -1;
	/* Blocks now, so that a full disk cannot fail a later update halfway. */
	(void)posix_fallocate(fd, 0, (off_t)sizeof(struct stats));
	fresh_head(h);
	return write_at(fd, h, sizeof(*h), 0);
}

/*
 * lock_briefly - the lock, waited for STATS_LOCK_WAIT_MS at most: holders
 * keep it for microseconds, and a count is not worth holding mail up for
 * (a stopped --status, a hung filesystem).  0, or -1 (the count is lost).
 */
static int
lock_briefly(int fd, int how)
{
	for (int i = 0; i < STATS_LOCK_WAIT_MS; i++) {
		struct timespec ms = {0, 1000000L};

		if (flock(fd, how | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		nanosleep(&ms, NULL);
	}
	log_debug("stats: lock busy for %d ms: not counted", STATS_LOCK_WAIT_MS);
	return -1;
}

/*
 * open_locked - the file, locked, laid out: an fd to close (which unlocks),
 * or -1.  Only the spool user can open it; anyone else counts nothing.
 */
static int
open_locked(const struct conf *c, int create, struct stats_head *h)
{
	char path[4096];
	struct stat st;
	int fd;

	if (str_fmt(path, sizeof(path), "%s/stats", c->spool_dir) < 0)
		return -1;
	/* O_NONBLOCK: a FIFO planted there must not hang a delivery. */
	fd = open(path, (create ? O_RDWR | O_CREAT : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK, 0600);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    lock_briefly(fd, create ? LOCK_EX : LOCK_SH) < 0) {
		close(fd);
		return -1;
	}
	if (st.st_size != (off_t)sizeof(struct stats) || read_at(fd, h, sizeof(*h), 0) < 0 ||
	    memcmp(h->magic, STATS_MAGIC, sizeof(STATS_MAGIC)) != 0 ||
	    h->naliases != STATS_ALIASES || h->nhosts != STATS_HOSTS) {
		if (!create || reset(fd, h) < 0) {
			close(fd);
			errno = create ? errno : ENOENT;
			return -1;
		}
	}
	return fd;
}

/* slot_hash - FNV-1a: where a name's record is looked for first. */
static size_t
slot_hash(const char *name, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)(h % n);
}

/*
 * find_alias - the record of name (claimed if new) read into rec; its
 * index, or -1 (the table is full: that alias is not counted).
 */
static long
find_alias(int fd, const char *name, struct stats_alias *rec)
{
	size_t start = slot_hash(name, STATS_ALIASES);

	for (size_t k = 0; k < STATS_ALIASES; k++) {
		size_t i = (start + k) % STATS_ALIASES;

		if (read_at(fd, rec, sizeof(*rec), ALIAS_AT(i)) < 0)
			return -1;
		rec->name[sizeof(rec->name) - 1] = '\0';
		if (rec->name[0] == '\0') {
			memset(rec, 0, sizeof(*rec));
			str_copy(rec->name, sizeof(rec->name), name);
			return (long)i;
		}
		if (strncmp(rec->name, name, sizeof(rec->name) - 1) == 0)
			return (long)i;
	}
	return -1;
}

/* find_host - the same for a smarthost block, in a small table scanned in order. */
static long
find_host(int fd, const char *name, struct stats_host *rec)
{
	for (size_t i = 0; i < STATS_HOSTS; i++) {
		if (read_at(fd, rec, sizeof(*rec), HOST_AT(i)) < 0)
			return -1;
		rec->name[sizeof(rec->name) - 1] = '\0';
		if (rec->name[0] == '\0') {
			memset(rec, 0, sizeof(*rec));
			str_copy(rec->name, sizeof(rec->name), name);
			return (long)i;
		}
		if (strncmp(rec->name, name, sizeof(rec->name) - 1) == 0)
			return (long)i;
	}
	return -1;
}

void
stats_program(const struct conf *c, const char *alias, const struct smtp_reply *r,
    int64_t ms)
{
	struct stats_head h;
	struct stats_alias rec;
	int fd = open_locked(c, 1, &h);
	long i;
	enum stats_result res = r->code / 100 == 2 ? STATS_OK : r->code / 100 == 4
	    ? STATS_TEMPFAIL : STATS_PERMFAIL;

	if (fd < 0)
		return;
	i = find_alias(fd, alias, &rec);
	if (i >= 0) {
		rec.runs[res]++;
		rec.ms_total += ms > 0 ? (uint64_t)ms : 0;
		if (ms > 0 && (uint64_t)ms > rec.ms_max)
			rec.ms_max = (uint64_t)ms;
		if (res == STATS_OK) {
			rec.last_ok = (int64_t)time(NULL);
		} else {
			rec.last_fail = (int64_t)time(NULL);
			smtp_reply_line(r, rec.last_fail_reply, sizeof(rec.last_fail_reply));
		}
		if (write_at(fd, &rec, sizeof(rec), ALIAS_AT(i)) < 0)
			log_debug("stats: write: %s", strerror(errno));
	}
	close(fd);
}

/* update_head - one change to the header, under the lock. */
static void
update_head(const struct conf *c, void (*change)(struct stats_head *, int), int arg)
{
	struct stats_head h;
	int fd = open_locked(c, 1, &h);

	if (fd < 0)
		return;
	change(&h, arg);
	if (write_at(fd, &h, sizeof(h), 0) < 0)
		log_debug("stats: write: %s", strerror(errno));
	close(fd);
}

static void
add_outcome(struct stats_head *h, int o)
{
	h->outcomes[o]++;
}

void
stats_outcome(const struct conf *c, const char *word)
{
	int o = outcome_of(word);

	if (o >= 0)
		update_head(c, add_outcome, o);
}

static void
add_counter(struct stats_head *h, int which)
{
	if (which == STATS_RECEIVED)
		h->received++;
	else if (which == STATS_REJECTED)
		h->rejected++;
	else
		h->notices++;
}

void
stats_count(const struct conf *c, enum stats_counter which)
{
	update_head(c, add_counter, (int)which);
}

/* update_host - one change to a smarthost's record, under the lock. */
static void
update_host(const struct conf *c, const char *name,
    void (*change)(struct stats_host *, const void *), const void *arg)
{
	struct stats_head h;
	struct stats_host rec;
	int fd = open_locked(c, 1, &h);
	long i;

	if (fd < 0)
		return;
	i = find_host(fd, name, &rec);
	if (i >= 0) {
		change(&rec, arg);
		if (write_at(fd, &rec, sizeof(rec), HOST_AT(i)) < 0)
			log_debug("stats: write: %s", strerror(errno));
	}
	close(fd);
}

struct fate {
	int outcome;
	const char *reply;
};

static void
add_host_outcome(struct stats_host *rec, const void *arg)
{
	const struct fate *f = arg;

	rec->outcomes[f->outcome]++;
	str_copy(rec->last_reply, sizeof(rec->last_reply), f->reply);
}

void
stats_smarthost(const struct conf *c, const char *name, const char *word,
    const char *reply)
{
	struct fate f = {outcome_of(word), reply};

	if (f.outcome >= 0)
		update_host(c, name, add_host_outcome, &f);
}

struct attempt {
	const char *peer, *reply;
	int ok;
};

static void
add_attempt(struct stats_host *rec, const void *arg)
{
	const struct attempt *a = arg;

	rec->connections++;
	rec->connect_failures += !a->ok;
	rec->last_connect = (int64_t)time(NULL);
	rec->last_connect_ok = a->ok;
	str_copy(rec->last_peer, sizeof(rec->last_peer), a->peer);
	str_copy(rec->last_reply, sizeof(rec->last_reply), a->reply);
}

void
stats_connect(const struct conf *c, const char *name, const char *peer, int ok,
    const char *reply)
{
	struct attempt a = {peer, reply, ok};

	update_host(c, name, add_attempt, &a);
}

void
stats_daemon(const struct conf *c, pid_t pid, int starting)
{
	struct stats_head h;
	int fd = open_locked(c, 1, &h);

	if (fd < 0) {
		log_warn("stats: open %s/stats", c->spool_dir);
		return;
	}
	if (starting) {
		if (reset(fd, &h) < 0)
			log_warn("stats: reset %s/stats", c->spool_dir);
		h.daemon_pid = (int64_t)pid;
		h.daemon_started = (int64_t)time(NULL);
	} else {
		h.daemon_pid = 0;
		h.daemon_stopped = (int64_t)time(NULL);
	}
	if (write_at(fd, &h, sizeof(h), 0) < 0)
		log_warn("stats: write %s/stats", c->spool_dir);
	close(fd);
}

/* bound - a string read from the file ends inside its field. */
#define bound(field) ((field)[sizeof(field) - 1] = '\0')

int
stats_read(const struct conf *c, struct stats *s)
{
	int fd = open_locked(c, 0, &s->head);
	int err;

	if (fd < 0) {
		err = errno;
		memset(s, 0, sizeof(*s));
		errno = err;
		return -1;
	}
	err = read_at(fd, s, sizeof(*s), 0) < 0 ? (errno ? errno : EIO) : 0;
	close(fd);
	if (err != 0) {
		memset(s, 0, sizeof(*s));
		errno = err;
		return -1;
	}
	for (size_t i = 0; i < STATS_ALIASES; i++) {
		bound(s->alias[i].name);
		bound(s->alias[i].last_fail_reply);
	}
	for (size_t i = 0; i < STATS_HOSTS; i++) {
		bound(s->host[i].name);
		bound(s->host[i].last_peer);
		bound(s->host[i].last_reply);
	}
	return 0;
}
