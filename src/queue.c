/*
 * queue.c - the queue runner and the operator commands.  See queue.h.
 *
 * A message is owned by whoever holds its lock (spool_lock); a runner that
 * cannot take it skips it, so two runners never send one message twice.
 * A message is removed only after every recipient has a final outcome and
 * any DSN it needs is itself safely spooled.
 */
#include "queue.h"
#include "stats.h"
#include "accept.h"
#include "addr.h"
#include "route.h"
#include "bounce.h"
#include "log.h"
#include "maildrop.h"
#include "notice.h"
#include "smtpc.h"
#include "reply.h"
#include "spool.h"
#include "util.h"

#include <stdio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_PASSES 20

/* backoff - retry_min * 2^(attempts-1), capped at retry_max, jittered +-10%. */
static long
backoff(const struct conf *c, int attempts)
{
	long d = c->queue.retry_min;
	unsigned short r = 0;

	for (int i = 1; i < attempts && d < c->queue.retry_max; i++)
		d *= 2;
	if (d > c->queue.retry_max)
		d = c->queue.retry_max;
	if (getrandom(&r, sizeof(r), 0) == (ssize_t)sizeof(r) && d >= 10)
		d += (long)(r % (unsigned)(d / 5 + 1)) - d / 10;
	return d > 0 ? d : 1;
}

/*
 * log_outcome - Postfix's delivery line, by the role that made it (smtp,
 * pipe, local for an alias expansion, qmgr): delay= since the message was
 * spooled, delays= 0 / its wait in the queue / 0 / this attempt, dsn= the
 * enhanced code of the last reply.
 */
static double
wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
log_outcome(const struct conf *c, const struct spool_env *e, const struct spool_rcpt *r,
    const char *role, const char *relay, const char *status)
{
	double now = wall_seconds(), began = e->attempt > 0 ? e->attempt : now;
	double waited = began - (double)e->created, total = now - (double)e->created;
	int expanded = r->orig[0] && strcmp(r->orig, r->addr) != 0;
	char token[300], dsn[16];

	str_copy(token, sizeof(token), relay[0] ? relay : "none");
	str_log_token(token);
	bounce_status(r->last, r->state == RCPT_DELIVERED ? "2.0.0" :
	    r->state == RCPT_DEFERRED ? "4.0.0" : "5.0.0", dsn);
	log_info_as(role, "%s: to=<%s>, %s%s%srelay=%s, delay=%.2f, delays=0/%.2f/0/%.2f, "
	    "dsn=%s, status=%s (%s)", e->id, r->addr, expanded ? "orig_to=<" : "",
	    expanded ? r->orig : "", expanded ? ">, " : "", token,
	    total > 0 ? total : 0, waited > 0 ? waited : 0, now - began, dsn, status,
	    r->last);
	stats_outcome(c, status);
}

static void
record(const struct conf *c, struct spool_env *e, struct spool_rcpt *r, const char *reply,
    int code, const char *role, const char *relay, struct queue_result *res)
{
	r->attempts++;
	str_copy(r->last, sizeof(r->last), reply);
	if (code / 100 == 2) {
		r->state = RCPT_DELIVERED;
		res->delivered++;
	} else if (code / 100 == 5) {
		r->state = RCPT_FAILED;
		res->failed++;
	} else {
		r->state = RCPT_DEFERRED;
	}
	log_outcome(c, e, r, role, relay, accept_outcome(code));
}


static int
is_open(const struct spool_rcpt *r)
{
	return r->state == RCPT_PENDING || r->state == RCPT_DEFERRED;
}

/*
 * to_program - a spooled recipient whose route is a program (policy queue,
 * or a sync-then-queue retry): run it now.  The route's other destinations
 * join the envelope as recipients of their own.
 */
static void
to_program(struct queue_ctx *q, struct spool_env *e, size_t i,
    const struct route_result *route, int msgfd, struct queue_result *res)
{
	char relay[300], addr[ADDR_PATH_MAX + 1];
	const char *recipients[1];
	struct accept_origin o = {e->sender, e->client, e->helo, e->id, e->digest};
	struct smtp_reply rep;

	str_copy(addr, sizeof(addr), e->rcpts[i].addr);
	for (size_t k = 0; k < route->ndest; k++) {
		int known = 0;

		if (route->dest[k].kind != ROUTE_SMARTHOST)
			continue;
		for (size_t j = 0; j < e->nrcpts; j++)
			known |= str_casecmp_ascii(e->rcpts[j].addr, route->dest[k].address) == 0;
		if (!known)
			spool_add_rcpt(e, route->dest[k].address, addr);
	}
	recipients[0] = addr;
	accept_run(&q->dctx, route, recipients, 1, &o, msgfd, 0, &rep, relay, sizeof(relay));
	{
		char text[SPOOL_REPLY_MAX];

		const struct route_dest *d = route_pipe(route);
		struct spool_rcpt *r;

		smtp_reply_line(&rep, text, sizeof(text));
		/* spool_add_rcpt may have moved the array: index, not pointer. */
		r = &e->rcpts[i];
		record(q->conf, e, r, text, rep.code, "pipe", relay, res);
		/* Whose failure it is, should it become a notice (finish). */
		str_copy(r->via_alias, sizeof(r->via_alias), d->entry->name);
		str_copy(r->via_source, sizeof(r->via_source), d->source);
		str_copy(r->via_command, sizeof(r->via_command), d->target->cmd.text);
	}
}

/* expand - replace recipient i by the smarthost addresses its route names. */
static void
expand(const struct conf *c, struct spool_env *e, size_t i, const struct route_result *route,
    struct queue_result *res)
{
	char orig[ADDR_PATH_MAX + 1], text[SPOOL_REPLY_MAX];
	size_t added = 0;

	str_copy(orig, sizeof(orig), e->rcpts[i].addr);
	for (size_t k = 0; k < route->ndest; k++) {
		int known = 0;

		for (size_t j = 0; j < e->nrcpts; j++)
			known |= str_casecmp_ascii(e->rcpts[j].addr, route->dest[k].address) == 0;
		if (!known && spool_add_rcpt(e, route->dest[k].address, orig) == 0)
			added++;
	}
	snprintf(text, sizeof(text), "250 2.0.0 expanded to %zu address(es)", added);
	/* spool_add_rcpt may have moved the array: index, not pointer. */
	record(c, e, &e->rcpts[i], text, 250, "local", "alias", res);
	res->delivered--;       /* an expansion is not a delivery */
}

/*
 * deliver - every open recipient, each routed once in this pass: programs
 * one by one, expansions into recipients of their own (routed in this pass
 * too, as the loop reaches them), the rest to the smarthost in one
 * transaction.
 */
static void
deliver(struct queue_ctx *q, struct smtpc *sc, struct spool_env *e, int msgfd,
    struct queue_result *res)
{
	size_t *idx = NULL, n = 0, cap = 0;
	struct smtpc_reply *rep;

	for (size_t i = 0; i < e->nrcpts; i++) {
		struct route_result *route;
		struct addr a;

		if (!is_open(&e->rcpts[i]))
			continue;
		if (addr_parse_plain(e->rcpts[i].addr, &a) != ADDR_OK) {
			record(q->conf, e, &e->rcpts[i], "550 5.1.3 bad address in the spool", 550, "qmgr",
			    "none", res);
			continue;
		}
		route = xmalloc(sizeof(*route));
		route_address(q->conf, q->aliases, &a, 1, route);
		if (route->reply.code != 250) {
			char text[SPOOL_REPLY_MAX];

			smtp_reply_line(&route->reply, text, sizeof(text));
			record(q->conf, e, &e->rcpts[i], text, route->reply.code, "qmgr", "none", res);
		} else if (route_pipe(route) != NULL) {
			to_program(q, e, i, route, msgfd, res);
		} else if (route->ndest != 1 ||
		    str_casecmp_ascii(route->dest[0].address, e->rcpts[i].addr) != 0) {
			/*
			 * The address now expands to others (an alias added since, or
			 * mail dropped by sendmail): they become recipients of their own.
			 */
			expand(q->conf, e, i, route, res);
		} else {
			/* For the smarthost, with the others of this message. */
			if (n == cap) {
				cap = cap == 0 ? 16 : 2 * cap;
				idx = xreallocarray(idx, cap, sizeof(*idx));
			}
			idx[n++] = i;
		}
		free(route);
	}
	rep = xcalloc(n + 1, sizeof(*rep));
	if (n > 0) {
		if (!sc->open) {
			struct smtpc_reply err;

			if (smtpc_open(sc, &err) < 0) {
				for (size_t i = 0; i < n; i++)
					rep[i] = err;
			} else if (smtpc_send(sc, e, msgfd, idx, n, rep) < 0) {
				smtpc_close(sc);
			}
		} else if (smtpc_send(sc, e, msgfd, idx, n, rep) < 0) {
			smtpc_close(sc);
		}
		for (size_t k = 0; k < n; k++) {
			record(q->conf, e, &e->rcpts[idx[k]], rep[k].text, rep[k].code, "smtp",
			    sc->name, res);
			stats_smarthost(q->conf, smtpc_block(sc), accept_outcome(rep[k].code),
			    rep[k].text);
		}
	}
	free(idx);
	free(rep);
}

/* expire - past the lifetime, open recipients fail with their last reply. */
static void
expire(const struct conf *c, struct spool_env *e)
{
	for (size_t i = 0; i < e->nrcpts; i++) {
		struct spool_rcpt *r = &e->rcpts[i];
		struct smtp_reply text;

		if (r->state != RCPT_PENDING && r->state != RCPT_DEFERRED)
			continue;
		char head[96];

		snprintf(head, sizeof(head), "554 4.4.7 message expired after %ld s in the "
		    "queue (lifetime)", c->queue.lifetime);
		smtp_set_reply(&text, 554, "4.4.7", head);
		if (r->last[0])
			smtp_reply_append(&text, "; last: ", r->last);
		str_copy(r->last, sizeof(r->last), text.text);
		r->state = RCPT_FAILED;
		log_outcome(c, e, r, "qmgr", "none", "expired");
	}
}

/*
 * notify - issue 20: a program's recipient that failed for good (or
 * expired) tells the alias's notify address; with notify_sender = no that
 * notice is all, and the sender gets no DSN for it (unless the notice could
 * not be spooled: then the DSN still goes, someone must be told).
 */
static void
notify(const struct conf *c, struct spool_env *e, int msgfd)
{
	for (size_t i = 0; i < e->nrcpts; i++) {
		struct spool_rcpt *r = &e->rcpts[i];
		const struct pipe_conf *pc;
		struct notice_facts f;

		if (r->state != RCPT_FAILED || r->via_alias[0] == '\0')
			continue;
		pc = conf_pipe_for(c, r->via_alias);
		if (pc->notify == NULL)
			continue;
		f.alias = r->via_alias;
		f.source = r->via_source;
		f.command = r->via_command;
		f.queue_id = e->id;
		f.sender = e->sender;
		f.recipient = r->addr;
		f.reply = r->last;
		f.received = (long long)e->created;
		if (notice_send(c, pc, &f, msgfd) >= 0 && !pc->notify_sender && !e->bounce &&
		    e->sender[0] != '\0') {
			r->state = RCPT_BOUNCED;     /* told to the notify address instead */
			log_info("%s: to=<%s>: no non-delivery notification: notify_sender = no "
			    "(alias %s)", e->id, r->addr, r->via_alias);
		}
	}
}

/*
 * finish - failed recipients get their DSN now (SPEC 8: on a 5xx, a bounce);
 * a message whose recipients are all final is removed; otherwise it is
 * scheduled for a retry with backoff.
 */
static void
finish(const struct conf *c, struct spool_env *e, int msgfd, struct queue_result *res)
{
	int open = 0, failed = 0;

	notify(c, e, msgfd);
	for (size_t i = 0; i < e->nrcpts; i++)
		failed += e->rcpts[i].state == RCPT_FAILED;
	if (failed > 0) {
		if (bounce_create(c, e, msgfd) < 0) {
			/* Disk full while writing the DSN: keep everything, try later (T68). */
			log_warn("%s: cannot spool the non-delivery notification", e->id);
		} else {
			if (e->sender[0] == '\0' || e->bounce)
				log_info("%s: no notification for a message from <> (never a "
				    "bounce of a bounce)", e->id);
			for (size_t i = 0; i < e->nrcpts; i++)
				if (e->rcpts[i].state == RCPT_FAILED)
					e->rcpts[i].state = RCPT_BOUNCED;
		}
	}
	for (size_t i = 0; i < e->nrcpts; i++)
		open += e->rcpts[i].state != RCPT_DELIVERED && e->rcpts[i].state != RCPT_BOUNCED;
	if (open == 0) {
		if (spool_remove(c, e->id, 0) < 0)
			log_warn("%s: remove from the queue", e->id);
		else
			log_info("%s: removed", e->id);
		return;
	}
	e->attempts++;
	e->next_try = time(NULL) + backoff(c, e->attempts);
	res->remaining++;
	res->deferred++;
	if (spool_update(c, e) < 0)
		log_warn("%s: update envelope", e->id);
}

static void
run_one(struct queue_ctx *q, struct smtpc *sc, const char *id, int force,
    struct queue_result *res)
{
	const struct conf *c = q->conf;
	struct spool_env e;
	char why[512];
	int lock = spool_lock(c, id);
	time_t now = time(NULL);

	if (lock < 0) {
		if (errno == EWOULDBLOCK) {
			res->skipped++;
			res->remaining++;
		}
		return;
	}
	if (spool_read(c, id, &e, why, sizeof(why)) < 0) {
		/* SPEC 8: moved aside with its reason, never deleted silently. */
		spool_quarantine(c, id, why);
		res->damaged++;
		close(lock);
		return;
	}
	if (e.hold) {
		res->skipped++;
	} else if (!force && e.next_try > now) {
		res->remaining++;
	} else {
		e.attempt = wall_seconds();
		deliver(q, sc, &e, lock, res);
		if (now - e.created >= c->queue.lifetime)
			expire(c, &e);
		finish(c, &e, lock, res);
	}
	spool_env_free(&e);
	close(lock);
}

/* reload_aliases - a changed aliases file is read again before a pass. */
static void
reload_aliases(struct queue_ctx *q)
{
	if (q->aliases != NULL && aliases_changed(q->aliases)) {
		struct diag d = {log_diag, NULL, 0};
		struct aliases *fresh = aliases_load(q->conf->aliases,
		    q->dctx.ps.aliases_owner, &d);

		if (fresh != NULL) {
			aliases_free(q->aliases);
			q->aliases = fresh;
		}
	}
}

/* pass_inline - one pass over ids in this process, on connection sc. */
static void
pass_inline(struct queue_ctx *q, struct smtpc *sc, char **ids, int force,
    struct queue_result *res)
{
	res->remaining = 0;     /* what the last pass leaves; the counts add up */
	reload_aliases(q);
	for (size_t i = 0; ids[i] != NULL; i++)
		run_one(q, sc, ids[i], force, res);
}

void
queue_run(struct queue_ctx *q, int force, struct queue_result *res)
{
	char **ids = spool_ids(q->conf);
	struct smtpc sc;

	smtpc_init(&sc, q->conf);
	pass_inline(q, &sc, ids, force, res);
	smtpc_close(&sc);
	spool_ids_free(ids);
}

/*
 * Delivery workers (queue.concurrency > 1): the run's process scans the
 * queue and hands each due id to whichever worker is free, over one
 * SOCK_SEQPACKET pair (a record is read whole, by one reader); each worker
 * answers with that message's counts on another.  A worker keeps its
 * smarthost connection from one message to the next, for the whole run;
 * the message locks keep any two processes off one message as before.
 */
struct job {
	int force;
	int pass;               /* a new pass: look at the aliases file again */
	char id[SPOOL_ID_MAX];
};

struct workers {
	int jobs, done;         /* ours; the workers hold the other ends */
	int jobs_theirs, done_theirs;
	pid_t pid[CONF_QUEUE_MAX_CONCURRENCY];
	int n;
};

static void
add_result(struct queue_result *to, const struct queue_result *r)
{
	to->delivered += r->delivered;
	to->deferred += r->deferred;
	to->failed += r->failed;
	to->skipped += r->skipped;
	to->damaged += r->damaged;
	to->remaining += r->remaining;
}

/* worker_main - take jobs until the run closes its end; never returns. */
static void
worker_main(struct queue_ctx *q, int jobs, int done, pid_t run)
{
	struct smtpc sc;
	int pass = -1;

	/* The run's end is ours: a daemon stopping its runner stops us too. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != run)
		_exit(0);
	smtpc_init(&sc, q->conf);
	for (;;) {
		struct job j;
		struct queue_result r;
		ssize_t n = recv(jobs, &j, sizeof(j), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(j))
			break;          /* 0: the run is over */
		j.id[SPOOL_ID_MAX - 1] = '\0';
		if (j.pass != pass) {
			reload_aliases(q);
			pass = j.pass;
		}
		memset(&r, 0, sizeof(r));
		run_one(q, &sc, j.id, j.force, &r);
		while (send(done, &r, sizeof(r), 0) < 0)
			if (errno != EINTR) {
				log_warn("queue worker: report to the run");
				_exit(75);
			}
	}
	smtpc_close(&sc);
	close(jobs);
	close(done);
	_exit(0);
}

static int
workers_open(struct workers *w)
{
	int jobs[2], done[2];

	memset(w, 0, sizeof(*w));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, jobs) < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, done) < 0) {
		close(jobs[0]);
		close(jobs[1]);
		return -1;
	}
	w->jobs = jobs[0];
	w->jobs_theirs = jobs[1];
	w->done = done[0];
	w->done_theirs = done[1];
	return 0;
}

/*
 * workers_grow - up to want workers; fewer when fork fails (logged).  A
 * worker keeps nothing of the run's but the aliases and its own ends: not
 * the pass's ids, not the run lock (it dies with the run, which holds it).
 */
static void
workers_grow(struct queue_ctx *q, struct workers *w, int want, char **ids, int lockfd)
{
	pid_t run = getpid();

	while (w->n < want) {
		pid_t pid = fork();

		if (pid < 0) {
			log_warn("fork a queue worker");
			return;
		}
		if (pid == 0) {
			spool_ids_free(ids);
			close(lockfd);
			close(w->jobs);
			close(w->done);
			worker_main(q, w->jobs_theirs, w->done_theirs, run);
		}
		w->pid[w->n++] = pid;
	}
}

/* workers_reap - forget workers that died; how many did. */
static int
workers_reap(struct workers *w)
{
	int died = 0;

	for (int i = 0; i < w->n; i++) {
		int status;
		pid_t pid = waitpid(w->pid[i], &status, WNOHANG);

		if (pid != w->pid[i])
			continue;
		log_warnx("queue worker %ld died (%s %d): the message it held waits "
		    "for the next run", (long)pid, WIFSIGNALED(status) ? "signal" : "exit",
		    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		w->pid[i--] = w->pid[--w->n];
		died++;
	}
	return died;
}

/* workers_close - the run is over: each worker finishes, closes, exits. */
static void
workers_close(struct workers *w)
{
	close(w->jobs);
	close(w->done);
	close(w->jobs_theirs);
	close(w->done_theirs);
	for (int i = 0; i < w->n; i++)
		while (waitpid(w->pid[i], NULL, 0) < 0 && errno == EINTR)
			;
	w->n = 0;
}

/*
 * pass_workers - one pass over ids, handed out to the workers; returns when
 * each id has been answered for.  A worker that dies takes its message's
 * answer with it: the pass counts it as remaining (the next run retries it).
 */
static void
pass_workers(struct workers *w, char **ids, int force, int pass,
    struct queue_result *res)
{
	size_t total = 0, sent = 0, answered = 0;

	res->remaining = 0;
	while (ids[total] != NULL)
		total++;
	while (answered < total) {
		struct pollfd p[2] = {{.fd = w->done, .events = POLLIN},
		    {.fd = w->jobs, .events = sent < total ? POLLOUT : 0}};
		int rc = poll(p, 2, 1000);

		if (rc < 0 && errno != EINTR) {
			log_warn("queue run: poll");
			break;
		}
		if (rc <= 0) {
			int died = workers_reap(w);

			/* Each held at most one message. */
			answered += (size_t)died < sent - answered ? (size_t)died : sent - answered;
			res->remaining += died;
			if (w->n == 0) {
				res->remaining += (int)(total - answered);
				break;
			}
			continue;
		}
		while (sent < total && (p[1].revents & POLLOUT)) {
			struct job j = {force, pass, {0}};

			str_copy(j.id, sizeof(j.id), ids[sent]);
			if (send(w->jobs, &j, sizeof(j), MSG_DONTWAIT) < 0) {
				if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
					log_warn("queue run: hand %s to a worker", ids[sent]);
				break;
			}
			sent++;
		}
		if (p[0].revents & (POLLIN | POLLHUP)) {
			struct queue_result r;

			while (answered < total &&
			    recv(w->done, &r, sizeof(r), MSG_DONTWAIT) == (ssize_t)sizeof(r)) {
				add_result(res, &r);
				answered++;
			}
		}
	}
}

struct timespec
queue_mtime(const struct conf *c)
{
	static const char *const dirs[] = {"queue", "maildrop"};
	struct timespec latest = {0, 0};

	/* New mail moves the queue directory, or the maildrop's. */
	for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
		char path[4096];
		struct stat st;

		if (spool_path(c, dirs[i], NULL, NULL, path, sizeof(path)) < 0 ||
		    stat(path, &st) < 0)
			continue;
		if (st.st_mtim.tv_sec > latest.tv_sec ||
		    (st.st_mtim.tv_sec == latest.tv_sec && st.st_mtim.tv_nsec > latest.tv_nsec))
			latest = st.st_mtim;
	}
	return latest;
}

int
queue_run_until_idle(struct queue_ctx *q, int force, struct queue_result *res)
{
	const struct conf *c = q->conf;
	char path[4096];
	struct smtpc sc;
	struct workers w;
	int fd, use_workers;

	if (str_fmt(path, sizeof(path), "%s/run.lock", c->spool_dir) < 0)
		return -1;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_warn("open %s", path);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return -1;
	}
	memset(res, 0, sizeof(res[0]));
	spool_clean(c);
	use_workers = c->queue.concurrency > 1;
	if (use_workers && workers_open(&w) < 0) {
		log_warn("queue run: socketpair for workers; one message at a time");
		use_workers = 0;
	}
	smtpc_init(&sc, c);     /* one connection for the run's passes, when inline */
	/* Mail spooled while we ran would wait for the next run: look again. */
	for (int pass = 0; pass < MAX_PASSES; pass++) {
		struct timespec before = queue_mtime(c), after;
		char **ids;
		size_t n = 0;

		/* SPEC 11: users' mail waiting in the maildrop joins the queue first. */
		maildrop_pickup(c, q->aliases, &q->dctx);
		ids = spool_ids(c);
		while (ids[n] != NULL)
			n++;
		if (use_workers && n > 0)
			workers_grow(q, &w, n < (size_t)c->queue.concurrency ?
			    (int)n : c->queue.concurrency, ids, fd);
		if (use_workers && w.n > 0)
			pass_workers(&w, ids, force && pass == 0, pass, res);
		else
			pass_inline(q, &sc, ids, force && pass == 0, res);
		spool_ids_free(ids);
		after = queue_mtime(c);
		if (before.tv_sec == after.tv_sec && before.tv_nsec == after.tv_nsec)
			break;
	}
	smtpc_close(&sc);
	if (use_workers)
		workers_close(&w);
	close(fd);
	return 0;
}

int
queue_list(const struct conf *c, FILE *out, int json)
{
	char **ids = spool_ids(c);
	int count = 0;
	time_t now = time(NULL);

	if (!json)
		fprintf(out, "%-14s %8s %6s %-8s %s\n", "Queue ID", "Size", "Age", "State",
		    "Sender / Recipients");
	for (size_t i = 0; ids[i] != NULL; i++) {
		struct spool_env e;
		char why[512];

		if (spool_read(c, ids[i], &e, why, sizeof(why)) < 0) {
			if (json) {
				fprintf(out, "{\"id\":");
				json_write_string(out, ids[i]);
				fprintf(out, ",\"damaged\":");
				json_write_string(out, why);
				fprintf(out, "}\n");
			} else {
				fprintf(out, "%-14s damaged: %s\n", ids[i], why);
			}
			count++;
			continue;
		}
		if (json) {
			fprintf(out, "{\"id\":");
			json_write_string(out, e.id);
			fprintf(out, ",\"size\":%llu,\"age\":%lld,\"hold\":%s,\"next_try\":%lld,"
			    "\"sender\":", (unsigned long long)e.size, (long long)(now - e.created),
			    e.hold ? "true" : "false", (long long)e.next_try);
			json_write_string(out, e.sender);
			fprintf(out, ",\"recipients\":[");
			for (size_t k = 0; k < e.nrcpts; k++) {
				fprintf(out, "%s{\"address\":", k ? "," : "");
				json_write_string(out, e.rcpts[k].addr);
				fprintf(out, ",\"state\":\"%s\",\"attempts\":%d,\"last_reply\":",
				    spool_state_name(e.rcpts[k].state), e.rcpts[k].attempts);
				json_write_string(out, e.rcpts[k].last);
				fputc('}', out);
			}
			fprintf(out, "]}\n");
		} else {
			fprintf(out, "%-14s %8llu %5lldm %-8s <%s>\n", e.id,
			    (unsigned long long)e.size, (long long)(now - e.created) / 60,
			    e.hold ? "held" : e.attempts ? "deferred" : "active", e.sender);
			for (size_t k = 0; k < e.nrcpts; k++) {
				fprintf(out, "%39s <%s> %s\n", "", e.rcpts[k].addr,
				    spool_state_name(e.rcpts[k].state));
				if (e.rcpts[k].last[0])
					fprintf(out, "%41s(%s)\n", "", e.rcpts[k].last);
			}
		}
		spool_env_free(&e);
		count++;
	}
	if (!json)
		fprintf(out, "-- %d message%s in the queue\n", count, count == 1 ? "" : "s");
	spool_ids_free(ids);
	return count;
}

int
queue_operate(const struct conf *c, enum queue_op op, const char *id, char *why,
    size_t whysize)
{
	struct spool_env e;
	int lock, rc = 0;

	/* A name outside the queue ("../x") is no message of ours. */
	lock = spool_id_valid(id, strlen(id)) ? spool_lock(c, id) : (errno = ENOENT, -1);
	if (lock < 0) {
		snprintf(why, whysize, errno == EWOULDBLOCK ? "%s is being delivered right "
		    "now; try again" : "%s: no such message", id);
		return -1;
	}
	if (op == QOP_DELETE) {
		rc = spool_remove(c, id, 1);
		if (rc < 0)
			snprintf(why, whysize, "remove %s: %s", id, strerror(errno));
		else
			log_info("%s: deleted by the administrator", id);
		close(lock);
		return rc;
	}
	if (spool_read(c, id, &e, why, whysize) < 0) {
		close(lock);
		return -1;
	}
	switch (op) {
	case QOP_HOLD:
		e.hold = 1;
		break;
	case QOP_RELEASE:
		e.hold = 0;
		e.next_try = 0;
		break;
	case QOP_REQUEUE:
		e.next_try = 0;
		break;
	case QOP_BOUNCE:
		for (size_t i = 0; i < e.nrcpts; i++)
			if (e.rcpts[i].state == RCPT_PENDING || e.rcpts[i].state == RCPT_DEFERRED) {
				e.rcpts[i].state = RCPT_FAILED;
				str_copy(e.rcpts[i].last, sizeof(e.rcpts[i].last),
				    "550 5.0.0 returned to the sender by the administrator");
			}
		e.hold = 0;
		break;
	case QOP_DELETE:
		break;
	}
	if (op == QOP_BOUNCE) {
		struct queue_result res;

		memset(&res, 0, sizeof(res));
		finish(c, &e, lock, &res);
	} else if (spool_update(c, &e) < 0) {
		snprintf(why, whysize, "update %s: %s", id, strerror(errno));
		rc = -1;
	}
	spool_env_free(&e);
	close(lock);
	return rc;
}

/* queue_run_with - a queue run with programs started as pipe.user (SPEC 11). */
int
queue_run_with(const struct conf *c, struct delivery_ctx *dctx, int force, int verbose)
{
	struct queue_ctx q;
	struct queue_result res;
	struct diag d = {log_diag, NULL, 0};
	int rc;

	memset(&q, 0, sizeof(q));
	memset(&res, 0, sizeof(res));
	q.conf = c;
	q.dctx = *dctx;
	q.aliases = aliases_load(c->aliases, dctx->ps.aliases_owner, &d);
	if (queue_run_until_idle(&q, force, &res) < 0) {
		if (verbose)
			fprintf(stderr, "undersmtpd: another queue run is in progress\n");
		rc = 75;
	} else {
		if (verbose)
			printf("delivered %d, failed %d, deferred %d, damaged %d\n",
			    res.delivered, res.failed, res.remaining, res.damaged);
		rc = res.remaining > 0 ? 75 : 0;
	}
	aliases_free(q.aliases);
	return rc;
}

/*
 * select_ids - which of the queue's ids the operator named: each want is
 * an id, or with substring (sendmail's -qIsubstr) a part of ids.  sel[i]
 * is set for ids[i]; a want that names nothing is reported.  0, or -1 when
 * one named nothing.
 */
static int
select_ids(char **ids, char *sel, char *const *want, size_t nwant, int substring)
{
	int rc = 0;

	for (size_t w = 0; w < nwant; w++) {
		size_t len = strlen(want[w]);
		int found = 0;

		if (spool_id_valid(want[w], len))
			for (size_t i = 0; ids[i] != NULL; i++)
				if (substring ? strstr(ids[i], want[w]) != NULL
				    : strcmp(ids[i], want[w]) == 0) {
					sel[i] = 1;
					found = 1;
				}
		if (!found) {
			fprintf(stderr, "undersmtpd: %s: no such message\n", want[w]);
			rc = -1;
		}
	}
	return rc;
}

int
queue_run_ids(const struct conf *c, struct delivery_ctx *dctx, char *const *want,
    size_t nwant, int substring, int verbose)
{
	struct queue_ctx q;
	struct queue_result res;
	struct diag d = {log_diag, NULL, 0};
	struct smtpc sc;
	char **ids = spool_ids(c), *sel;
	size_t n = 0;
	int missing;

	while (ids[n] != NULL)
		n++;
	sel = xcalloc(n + 1, 1);
	missing = select_ids(ids, sel, want, nwant, substring) < 0;
	memset(&q, 0, sizeof(q));
	memset(&res, 0, sizeof(res));
	q.conf = c;
	q.dctx = *dctx;
	q.aliases = aliases_load(c->aliases, dctx->ps.aliases_owner, &d);
	/* No run lock: the message locks keep a running queue run off these. */
	smtpc_init(&sc, c);
	for (size_t i = 0; i < n; i++)
		if (sel[i])
			run_one(&q, &sc, ids[i], 1, &res);
	smtpc_close(&sc);
	if (verbose)
		printf("delivered %d, failed %d, deferred %d, held or busy %d, damaged %d\n",
		    res.delivered, res.failed, res.remaining, res.skipped, res.damaged);
	aliases_free(q.aliases);
	free(sel);
	spool_ids_free(ids);
	return missing ? 1 : res.remaining > 0 ? 75 : 0;
}

/*
 * queue_kick - SPEC 2: outside the daemon, a session that spooled mail
 * starts a queue run in the background unless one is running already.
 */
void
queue_kick(const struct conf *c, struct delivery_ctx *dctx)
{
	pid_t pid = fork();

	if (pid < 0) {
		log_warn("fork a queue run");
		return;
	}
	if (pid > 0)
		return;
	log_last_words(-1, NULL);             /* the session's client is not ours */
	log_set_role("qmgr");
	/* The client's socket is fds 0-2: let go of it at once. */
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(71);
		if (null > 2)
			close(null);
	}
	/* The launcher stays: queued programs still run as pipe.user. */
	setsid();
	queue_run_with(c, dctx, 0, 0);
	_exit(0);
}

