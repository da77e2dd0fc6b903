/*
 * stats.h - the gateway's counters, kept by every process that delivers
 * (daemon and inetd sessions, queue runs, sendmail, --test-pipe) in one
 * small file of fixed-size records in the spool, SPOOL/stats.
 *
 * Each update opens the file, takes its flock, reads one record, changes
 * it and writes it back: no shared memory, no state kept between updates,
 * and a process killed in the middle leaves at worst one record a count
 * short (the lock dies with it).  --status and the metrics endpoint read a
 * snapshot of the whole file the same way.  The daemon resets the file when
 * it starts, so its counters run since then (as a Prometheus counter
 * expects); without a daemon they run since the file was made.  The file is
 * the spool user's, and a reader trusts nothing in it: every string is
 * bounded again on reading.
 *
 * Every to= line the log writes counts once in outcomes[], by its status=
 * word, so that the figures and the log agree.
 */
#ifndef STATS_H
#define STATS_H

#include <stdint.h>
#include <sys/types.h>

#include "conf.h"
#include "reply.h"

#define STATS_ALIASES 256          /* pipe aliases (a regex alias is one) */
#define STATS_HOSTS 16             /* smarthost blocks */
#define STATS_NAME_MAX 200
#define STATS_TEXT_MAX 240

enum stats_result { STATS_OK, STATS_TEMPFAIL, STATS_PERMFAIL, STATS_NRESULTS };
enum stats_outcome { STATS_SENT, STATS_DEFERRED, STATS_BOUNCED, STATS_EXPIRED,
	STATS_NOUTCOMES };

/* One pipe alias: its program runs, by the reply they meant. */
struct stats_alias {
	char name[STATS_NAME_MAX];       /* "" for a free record */
	uint64_t runs[STATS_NRESULTS];
	uint64_t ms_total, ms_max;       /* the program's time, milliseconds */
	int64_t last_ok, last_fail;      /* Unix time; 0: never */
	char last_fail_reply[STATS_TEXT_MAX];
};

/* One smarthost block: connections and what became of the recipients. */
struct stats_host {
	char name[64];                   /* the block's title; "" for a free record */
	char last_peer[128];             /* name[address]:port of the last attempt */
	int64_t last_connect;            /* Unix time of the last attempt */
	int64_t last_connect_ok;         /* 1: it worked */
	char last_reply[STATS_TEXT_MAX]; /* the last reply to a recipient, or why the
	                                    last connection failed */
	uint64_t outcomes[STATS_NOUTCOMES];
	uint64_t connections, connect_failures;
};

struct stats_head {
	char magic[16];                  /* STATS_MAGIC */
	uint32_t naliases, nhosts;       /* STATS_ALIASES, STATS_HOSTS */
	int64_t since;                   /* when counting began */
	int64_t daemon_pid;              /* 0: no daemon running (or it died) */
	int64_t daemon_started, daemon_stopped;
	uint64_t outcomes[STATS_NOUTCOMES];   /* the log's to= lines by status= */
	uint64_t received;               /* messages accepted: 250 after DATA, sendmail */
	uint64_t rejected;               /* the log's "reject:" lines */
	uint64_t notices;                /* non-delivery notifications made */
};

/* A snapshot, as stats_read gives it. */
struct stats {
	struct stats_head head;
	struct stats_alias alias[STATS_ALIASES];
	struct stats_host host[STATS_HOSTS];
};

/* stats_program - a pipe alias's program ran (or was to run): its reply, its time. */
void stats_program(const struct conf *c, const char *alias, const struct smtp_reply *r,
    int64_t ms);
/* stats_outcome - a to= line was logged with status= word (sent, deferred...). */
void stats_outcome(const struct conf *c, const char *word);
/* stats_smarthost - a recipient's fate at smarthost block name, and its reply. */
void stats_smarthost(const struct conf *c, const char *name, const char *word,
    const char *reply);
/* stats_connect - a connection attempt to smarthost block name. */
void stats_connect(const struct conf *c, const char *name, const char *peer, int ok,
    const char *reply);
/* stats_count - one of the head's plain counters: received, rejected, notices. */
enum stats_counter { STATS_RECEIVED, STATS_REJECTED, STATS_NOTICES };
void stats_count(const struct conf *c, enum stats_counter which);
/*
 * stats_daemon - the daemon starts (resets every counter, records its pid
 * and the time) or stops (records the time, clears the pid).
 */
void stats_daemon(const struct conf *c, pid_t pid, int starting);
/*
 * stats_read - the whole file into s, strings bounded.  0; -1 with errno
 * (ENOENT: nothing has been counted yet, s is then an empty snapshot).
 */
int stats_read(const struct conf *c, struct stats *s);
/* stats_outcome_word - "sent", "deferred", "bounced", "expired". */
const char *stats_outcome_word(enum stats_outcome o);

#endif
