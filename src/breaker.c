/*
 * breaker.c - the circuit breakers of the pipe aliases.  See breaker.h.
 */
#include "breaker.h"
#include "log.h"
#include "recfile.h"
#include "util.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BREAKER_MAGIC "undersmtpd-br1\n"
#define REC_AT(i) ((off_t)offsetof(struct breakers, rec) + (off_t)(i) * \
	(off_t)sizeof(struct breaker_rec))

/*
 * with_record - open the file, find alias's record, let decide() look at it
 * and change it, write it back if it changed.  decide's return, or dflt
 * when the file cannot be used (a breaker that cannot be read never stops
 * mail).
 */
static int
with_record(const struct conf *c, const char *alias, const struct pipe_conf *pc,
    int (*decide)(struct breaker_rec *, const struct pipe_conf *, void *), void *arg,
    int dflt)
{
	struct breaker_rec rec, before;
	int fresh, rc = dflt, fd;
	long i;

	fd = recfile_open(c, "breakers", BREAKER_MAGIC, sizeof(struct breakers), 1, &fresh);
	if (fd < 0)
		return dflt;
	i = recfile_find(fd, REC_AT(0), sizeof(rec), BREAKER_ALIASES, sizeof(rec.name),
	    alias, &rec);
	if (i >= 0) {
		before = rec;
		rc = decide(&rec, pc, arg);
		if (memcmp(&rec, &before, sizeof(rec)) != 0 &&
		    recfile_write(fd, &rec, sizeof(rec), REC_AT(i)) < 0)
			log_warn("breaker: write %s/breakers", c->spool_dir);
	}
	close(fd);
	return rc;
}

static void
open_again(struct breaker_rec *r, const struct pipe_conf *pc, int64_t now, long wait)
{
	r->state = BREAKER_OPEN;
	r->wait = wait > pc->breaker_wait_max ? pc->breaker_wait_max : wait;
	r->open_until = now + r->wait;
	r->changed = now;
	r->opens++;
}

struct ask {
	int probe;          /* a delivery: may take the probe */
	long *left;
};

static int
decide_run(struct breaker_rec *r, const struct pipe_conf *pc, void *arg)
{
	struct ask *a = arg;
	int64_t now = (int64_t)time(NULL);

	if (pc->breaker == 0 || r->state == BREAKER_CLOSED)
		return 1;
	if (r->state == BREAKER_OPEN && now < r->open_until) {
		*a->left = (long)(r->open_until - now);
		r->held += a->probe;
		return 0;
	}
	if (r->state == BREAKER_PROBING && now < r->probe_until) {
		*a->left = (long)(r->probe_until - now);
		r->held += a->probe;
		return 0;
	}
	/* The wait is over (or the last probe's lease ran out): one probe. */
	if (!a->probe)
		return 1;
	r->state = BREAKER_PROBING;
	r->probe_until = now + pc->timeout + 10;
	r->changed = now;
	log_info("breaker: alias %s half-open: one delivery let through as a probe", r->name);
	return 1;
}

int
breaker_closed_for_rcpt(const struct conf *c, const char *alias,
    const struct pipe_conf *pc, long *left)
{
	struct ask a = {0, left};

	if (pc->breaker == 0)
		return 1;
	return with_record(c, alias, pc, decide_run, &a, 1);
}

int
breaker_may_run(const struct conf *c, const char *alias, const struct pipe_conf *pc,
    long *left)
{
	struct ask a = {1, left};

	if (pc->breaker == 0)
		return 1;
	return with_record(c, alias, pc, decide_run, &a, 1);
}

static int
decide_outcome(struct breaker_rec *r, const struct pipe_conf *pc, void *arg)
{
	int code = *(int *)arg;
	int64_t now = (int64_t)time(NULL);

	if (code / 100 != 4) {
		if (r->state != BREAKER_CLOSED) {
			log_info("breaker: alias %s closed: the probe was answered %d", r->name,
			    code);
			r->changed = now;
		}
		r->state = BREAKER_CLOSED;
		r->failures = 0;
		r->wait = 0;
		return 0;
	}
	r->failures++;
	if (r->state == BREAKER_PROBING) {
		open_again(r, pc, now, (long)r->wait * 2);
		log_warnx("breaker: alias %s open again: the probe failed too (%d); no "
		    "program for %lld s", r->name, code, (long long)r->wait);
	} else if (r->state == BREAKER_CLOSED && r->failures >= (uint32_t)pc->breaker) {
		open_again(r, pc, now, pc->breaker_wait);
		log_warnx("breaker: alias %s open after %u temporary failures in a row (last "
		    "%d); no program for %lld s", r->name, r->failures, code,
		    (long long)r->wait);
	}
	return 0;
}

void
breaker_report(const struct conf *c, const char *alias, const struct pipe_conf *pc,
    int code)
{
	if (pc->breaker == 0)
		return;
	with_record(c, alias, pc, decide_outcome, &code, 0);
}

int
breaker_read(const struct conf *c, struct breakers *b)
{
	int fresh, fd = recfile_open(c, "breakers", BREAKER_MAGIC, sizeof(*b), 0, &fresh);
	int rc;

	if (fd < 0) {
		memset(b, 0, sizeof(*b));
		return -1;
	}
	rc = recfile_read(fd, b, sizeof(*b), 0);
	close(fd);
	if (rc < 0) {
		memset(b, 0, sizeof(*b));
		return -1;
	}
	for (size_t i = 0; i < BREAKER_ALIASES; i++)
		b->rec[i].name[BREAKER_NAME_MAX - 1] = '\0';
	return 0;
}
