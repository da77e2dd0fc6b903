/*
 * rtqueue.h - Request Tracker's queue names, known at RCPT time (issue 20).
 *
 * A regex alias that serves every RT queue accepts mail for queues RT does
 * not have; rt-mailgate then fails temporarily and the sender retries for
 * days.  With an rt_queues section and `verify = rt_queue("${queue}")` on
 * the alias, RCPT for a queue RT lacks gets 550 5.1.1 at once.
 *
 * The names come from RT's REST 2 API (GET /REST/2.0/queues/all, token
 * auth, 100 a page) into a cache file, SPOOL/rt-queues, replaced whole and
 * only by a fetch that worked: when RT cannot be reached, the last good
 * list stands; with none at all, mail is accepted as without the check.
 * The daemon fetches every `refresh` in a process of its own, so no client
 * waits for RT; under inetd the session that finds the list stale fetches
 * it, one at a time (SPOOL/rt-queues.lock, whose time is the last try: a
 * failing RT is asked at most once a minute).
 */
#ifndef RTQUEUE_H
#define RTQUEUE_H

#include <stddef.h>
#include <time.h>

#include "conf.h"

#define RTQ_MAX_QUEUES 10000
#define RTQ_NAME_MAX 200
#define RTQ_PAGE_MAX (4 * 1024 * 1024)   /* bytes of one page of JSON */
#define RTQ_RETRY_MIN 60                 /* seconds between tries of a failing RT */

struct rtq_names {
	char **v;
	size_t n;
	time_t fetched;                /* when RT gave them */
};

enum rtq_verdict {
	RTQ_KNOWN,                     /* RT has the queue */
	RTQ_UNKNOWN,                   /* the list is there and lacks it */
	RTQ_NO_LIST,                   /* nothing known yet: accept as before */
};

/*
 * rtq_parse_page - one page of a REST 2 collection: each item's "Name"
 * appended to names, the page's "count" and "per_page".  0, or -1 with why
 * (not JSON, nested too deep, too many names).
 */
int rtq_parse_page(const char *json, size_t len, struct rtq_names *names, long *count,
    long *per_page, char *why, size_t whysize);
/* rtq_fetch - every queue name RT shows the token's owner; 0, or -1 with why. */
int rtq_fetch(const struct conf *c, struct rtq_names *out, char *why, size_t whysize);
/*
 * rtq_refresh - fetch and replace the cache when it is older than refresh
 * (force: whatever its age) and no other process is at it; 1 replaced, 0
 * nothing to do (fresh, or another process fetching, or RT tried less than
 * a minute ago), -1 the fetch failed (why; the old list stands).
 */
int rtq_refresh(const struct conf *c, int force, char *why, size_t whysize);
/* rtq_read - the cache (for this url); 0, or -1 when there is none. */
int rtq_read(const struct conf *c, struct rtq_names *out);
/*
 * rtq_lookup - is queue one of RT's (ASCII case ignored, as RT's own lookup
 * of a queue by name)?  may_refresh: fetch first when the list is stale
 * (inetd; the daemon's sessions leave that to the daemon).
 */
enum rtq_verdict rtq_lookup(const struct conf *c, const char *queue, int may_refresh);
void rtq_names_free(struct rtq_names *names);

struct route_result;
/*
 * rtq_verify_route - the check of r's program alias, if its block says
 * verify = rt_queue(X): X with the regex's captures into queue, then
 * rtq_lookup.  -1 when no check applies (no verify, or X empty).
 */
int rtq_verify_route(const struct conf *c, const struct route_result *r, int may_refresh,
    char *queue, size_t size);

#endif
