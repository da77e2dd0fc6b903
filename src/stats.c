/*
 * stats.c - the counters file.  See stats.h.
 */
#include "stats.h"
#include "log.h"
#include "recfile.h"
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
 * open_locked - the file, locked (exclusively to write), its header in h:
 * an fd to close, or -1.  Only the spool user can open it; anyone else
 * counts nothing.  A new file counts from now.
 */
static int
open_locked(const struct conf *c, int write, struct stats_head *h)
{
	int fresh, fd = recfile_open(c, "stats", STATS_MAGIC, sizeof(struct stats), write,
	    &fresh);

	if (fd < 0)
		return -1;
	if (fresh) {
		fresh_head(h);
		if (recfile_write(fd, h, sizeof(*h), 0) < 0) {
			close(fd);
			return -1;
		}
	} else if (recfile_read(fd, h, sizeof(*h), 0) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* find_alias, find_host - the record of name, claimed if new; its index or -1. */
static long
find_alias(int fd, const char *name, struct stats_alias *rec)
{
	return recfile_find(fd, ALIAS_AT(0), sizeof(*rec), STATS_ALIASES, sizeof(rec->name),
	    name, rec);
}

static long
find_host(int fd, const char *name, struct stats_host *rec)
{
	return recfile_find(fd, HOST_AT(0), sizeof(*rec), STATS_HOSTS, sizeof(rec->name),
	    name, rec);
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
		if (recfile_write(fd, &rec, sizeof(rec), ALIAS_AT(i)) < 0)
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
	if (recfile_write(fd, &h, sizeof(h), 0) < 0)
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
		if (recfile_write(fd, &rec, sizeof(rec), HOST_AT(i)) < 0)
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
		if (recfile_reset(fd, STATS_MAGIC, sizeof(struct stats)) < 0)
			log_warn("stats: reset %s/stats", c->spool_dir);
		fresh_head(&h);
		h.daemon_pid = (int64_t)pid;
		h.daemon_started = (int64_t)time(NULL);
	} else {
		h.daemon_pid = 0;
		h.daemon_stopped = (int64_t)time(NULL);
	}
	if (recfile_write(fd, &h, sizeof(h), 0) < 0)
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
	err = recfile_read(fd, s, sizeof(*s), 0) < 0 ? (errno ? errno : EIO) : 0;
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
