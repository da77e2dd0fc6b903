/*
 * status.c - the counters and the queue's census, for people (--status),
 * scripts (--status --json) and Prometheus (the metrics endpoint).  See
 * status.h.
 */
#include "status.h"
#include "spool.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

void
status_census(const struct conf *c, struct queue_census *q)
{
	char **ids = spool_ids(c), path[4096], why[512];
	time_t now = time(NULL);
	DIR *d;
	struct dirent *de;

	memset(q, 0, sizeof(*q));
	for (size_t i = 0; ids[i] != NULL; i++) {
		struct spool_env e;

		if (spool_read(c, ids[i], &e, why, sizeof(why)) < 0) {
			q->damaged++;
			continue;
		}
		if (e.hold)
			q->held++;
		else if (e.next_try > now)
			q->deferred++;
		else
			q->active++;
		if (q->oldest == 0 || (int64_t)e.created < q->oldest)
			q->oldest = (int64_t)e.created;
		spool_env_free(&e);
	}
	spool_ids_free(ids);
	/* The maildrop's files are named by the helper; dot files are its own. */
	if (spool_path(c, "maildrop", NULL, NULL, path, sizeof(path)) == 0 &&
	    (d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL)
			q->maildrop += de->d_name[0] != '.';
		closedir(d);
	}
}

/* zombie - pid has died and waits for a parent to reap it (state Z). */
static int
zombie(pid_t pid)
{
	char path[64], buf[512], *close;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fp = fopen(path, "re");
	if (fp == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')'. */
	close = strrchr(buf, ')');
	return close != NULL && close[1] == ' ' && (close[2] == 'Z' || close[2] == 'X');
}

int
status_daemon_up(const struct stats *s)
{
	pid_t pid = (pid_t)s->head.daemon_pid;

	if (s->head.daemon_pid <= 0 || s->head.daemon_pid != (int64_t)pid)
		return 0;
	return (kill(pid, 0) == 0 || errno == EPERM) && !zombie(pid);
}

/* when - "2026-12-07 03:50:00 +0000 (2h 3m ago)", or "never". */
static const char *
when(int64_t t, char *buf, size_t size)
{
	time_t tt;
	struct tm tm;
	char stamp[64];
	int64_t ago;

	/* The file is the spool user's: a time beyond year 9999 is nonsense. */
	if (t <= 0 || t > 253402300799LL) {
		str_copy(buf, size, t <= 0 ? "never" : "(unreadable time)");
		return buf;
	}
	tt = (time_t)t;
	if (localtime_r(&tt, &tm) == NULL) {
		str_copy(buf, size, "(unreadable time)");
		return buf;
	}
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S %z", &tm);
	ago = (int64_t)time(NULL) - t;
	if (ago < 0)
		ago = 0;
	if (ago < 120)
		snprintf(buf, size, "%s (%llds ago)", stamp, (long long)ago);
	else if (ago < 7200)
		snprintf(buf, size, "%s (%lldm ago)", stamp, (long long)(ago / 60));
	else if (ago < 172800)
		snprintf(buf, size, "%s (%lldh %lldm ago)", stamp, (long long)(ago / 3600),
		    (long long)(ago % 3600 / 60));
	else
		snprintf(buf, size, "%s (%lld days ago)", stamp, (long long)(ago / 86400));
	return buf;
}

/*
 * shown - a string of the file, for a terminal: anything but printable
 * ASCII becomes '?', so that nothing the spool user (or a smarthost's
 * reply) wrote can move the cursor or retitle root's terminal.
 */
static const char *
shown(const char *s, char *buf, size_t size)
{
	size_t i = 0;

	for (; s[i] != '\0' && i + 1 < size; i++)
		buf[i] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

static uint64_t
alias_runs(const struct stats_alias *a)
{
	return a->runs[STATS_OK] + a->runs[STATS_TEMPFAIL] + a->runs[STATS_PERMFAIL];
}

static void
text_daemon(FILE *out, const struct stats *s)
{
	char t1[128], t2[128];

	if (status_daemon_up(s))
		fprintf(out, "daemon:       running, pid %lld, since %s\n",
		    (long long)s->head.daemon_pid, when(s->head.daemon_started, t1, sizeof(t1)));
	else if (s->head.daemon_pid > 0)
		fprintf(out, "daemon:       NOT RUNNING: pid %lld, started %s, is gone without "
		    "stopping cleanly\n", (long long)s->head.daemon_pid,
		    when(s->head.daemon_started, t1, sizeof(t1)));
	else if (s->head.daemon_stopped > 0)
		fprintf(out, "daemon:       not running, stopped %s\n",
		    when(s->head.daemon_stopped, t1, sizeof(t1)));
	else
		fprintf(out, "daemon:       not running (none has run with this spool)\n");
	fprintf(out, "counting:     since %s\n", s->head.since > 0 ?
	    when(s->head.since, t2, sizeof(t2)) : "nothing counted yet");
}

static const char *
breaker_word(uint32_t state)
{
	return state == BREAKER_OPEN ? "open" : state == BREAKER_PROBING ? "probing" : "closed";
}

static void
text_breakers(FILE *out, const struct breakers *b)
{
	char t1[128], safe[BREAKER_NAME_MAX];

	for (size_t i = 0; b != NULL && i < BREAKER_ALIASES; i++) {
		const struct breaker_rec *r = &b->rec[i];

		if (r->name[0] == '\0')
			continue;
		fprintf(out, "breaker %s: %s", shown(r->name, safe, sizeof(safe)),
		    r->state == BREAKER_CLOSED ? "closed" : r->state == BREAKER_OPEN ? "OPEN" :
		    "PROBING (one delivery let through)");
		if (r->state == BREAKER_OPEN)
			fprintf(out, ", no program until %s", when(r->open_until, t1, sizeof(t1)));
		fprintf(out, "; %u temporary failures in a row; opened %llu times, %llu "
		    "deliveries held\n", r->failures, (unsigned long long)r->opens,
		    (unsigned long long)r->held);
	}
}

void
status_text(FILE *out, const struct stats *s, const struct queue_census *q,
    const struct breakers *b)
{
	const struct stats_head *h = &s->head;
	char t1[128], t2[128], safe[STATS_NAME_MAX + STATS_TEXT_MAX];

	text_daemon(out, s);
	fprintf(out, "queue:        %ld active, %ld deferred, %ld held, %ld in the maildrop",
	    q->active, q->deferred, q->held, q->maildrop);
	if (q->damaged > 0)
		fprintf(out, ", %ld unreadable", q->damaged);
	fprintf(out, "; oldest %s\n", q->oldest ? when(q->oldest, t1, sizeof(t1)) : "none");
	fprintf(out, "deliveries:   %llu sent, %llu deferred, %llu bounced, %llu expired\n",
	    (unsigned long long)h->outcomes[STATS_SENT],
	    (unsigned long long)h->outcomes[STATS_DEFERRED],
	    (unsigned long long)h->outcomes[STATS_BOUNCED],
	    (unsigned long long)h->outcomes[STATS_EXPIRED]);
	fprintf(out, "messages:     %llu received, %llu rejected, %llu non-delivery notices\n",
	    (unsigned long long)h->received, (unsigned long long)h->rejected,
	    (unsigned long long)h->notices);
	for (size_t i = 0; i < STATS_ALIASES; i++) {
		const struct stats_alias *a = &s->alias[i];
		uint64_t runs = alias_runs(a);

		if (a->name[0] == '\0')
			continue;
		fprintf(out, "pipe %s:\n  runs %llu: %llu ok, %llu temporary failures, %llu "
		    "permanent; time %.2f s average, %.2f s max\n",
		    shown(a->name, safe, sizeof(safe)),
		    (unsigned long long)runs, (unsigned long long)a->runs[STATS_OK],
		    (unsigned long long)a->runs[STATS_TEMPFAIL],
		    (unsigned long long)a->runs[STATS_PERMFAIL],
		    runs ? (double)a->ms_total / (double)runs / 1000.0 : 0.0,
		    (double)a->ms_max / 1000.0);
		fprintf(out, "  last success %s\n", when(a->last_ok, t1, sizeof(t1)));
		fprintf(out, "  last failure %s%s%s\n", when(a->last_fail, t2, sizeof(t2)),
		    a->last_fail ? ": " : "", a->last_fail ? shown(a->last_fail_reply, safe,
		    sizeof(safe)) : "");
	}
	for (size_t i = 0; i < STATS_HOSTS; i++) {
		const struct stats_host *sh = &s->host[i];

		if (sh->name[0] == '\0')
			continue;
		fprintf(out, "smarthost %s:\n  %llu sent, %llu deferred, %llu bounced; %llu "
		    "connections, %llu failed\n", shown(sh->name, safe, sizeof(safe)),
		    (unsigned long long)sh->outcomes[STATS_SENT],
		    (unsigned long long)sh->outcomes[STATS_DEFERRED],
		    (unsigned long long)sh->outcomes[STATS_BOUNCED],
		    (unsigned long long)sh->connections,
		    (unsigned long long)sh->connect_failures);
		fprintf(out, "  last connection %s to %s: %s", when(sh->last_connect, t1,
		    sizeof(t1)), shown(sh->last_peer[0] ? sh->last_peer : "?", safe,
		    sizeof(safe)), sh->last_connect_ok ? "" : "FAILED: ");
		fprintf(out, "%s\n", shown(sh->last_reply, safe, sizeof(safe)));
	}
	text_breakers(out, b);
}

static void
json_u64(FILE *out, const char *name, uint64_t v, int comma)
{
	fprintf(out, "\"%s\":%llu%s", name, (unsigned long long)v, comma ? "," : "");
}

void
status_json(FILE *out, const struct stats *s, const struct queue_census *q,
    const struct breakers *b)
{
	const struct stats_head *h = &s->head;
	int first = 1;

	fprintf(out, "{\"daemon\":{\"running\":%s,\"pid\":%lld,\"started\":%lld,"
	    "\"stopped\":%lld},\"since\":%lld,", status_daemon_up(s) ? "true" : "false",
	    (long long)h->daemon_pid, (long long)h->daemon_started,
	    (long long)h->daemon_stopped, (long long)h->since);
	fprintf(out, "\"queue\":{\"active\":%ld,\"deferred\":%ld,\"held\":%ld,"
	    "\"maildrop\":%ld,\"unreadable\":%ld,\"oldest\":%lld},", q->active, q->deferred,
	    q->held, q->maildrop, q->damaged, (long long)q->oldest);
	fputs("\"deliveries\":{", out);
	for (int o = 0; o < STATS_NOUTCOMES; o++)
		json_u64(out, stats_outcome_word((enum stats_outcome)o), h->outcomes[o],
		    o + 1 < STATS_NOUTCOMES);
	fputs("},", out);
	json_u64(out, "received", h->received, 1);
	json_u64(out, "rejected", h->rejected, 1);
	json_u64(out, "notices", h->notices, 1);
	fputs("\"pipes\":[", out);
	for (size_t i = 0; i < STATS_ALIASES; i++) {
		const struct stats_alias *a = &s->alias[i];

		if (a->name[0] == '\0')
			continue;
		fprintf(out, "%s{\"alias\":", first ? "" : ",");
		first = 0;
		json_write_string(out, a->name);
		fprintf(out, ",\"runs\":{\"ok\":%llu,\"tempfail\":%llu,\"permfail\":%llu},"
		    "\"ms_total\":%llu,\"ms_max\":%llu,\"last_ok\":%lld,\"last_fail\":%lld,"
		    "\"last_fail_reply\":", (unsigned long long)a->runs[STATS_OK],
		    (unsigned long long)a->runs[STATS_TEMPFAIL],
		    (unsigned long long)a->runs[STATS_PERMFAIL],
		    (unsigned long long)a->ms_total, (unsigned long long)a->ms_max,
		    (long long)a->last_ok, (long long)a->last_fail);
		json_write_string(out, a->last_fail_reply);
		fputc('}', out);
	}
	fputs("],\"smarthosts\":[", out);
	first = 1;
	for (size_t i = 0; i < STATS_HOSTS; i++) {
		const struct stats_host *sh = &s->host[i];

		if (sh->name[0] == '\0')
			continue;
		fprintf(out, "%s{\"name\":", first ? "" : ",");
		first = 0;
		json_write_string(out, sh->name);
		fputc(',', out);
		for (int o = 0; o < STATS_NOUTCOMES; o++)
			json_u64(out, stats_outcome_word((enum stats_outcome)o), sh->outcomes[o], 1);
		json_u64(out, "connections", sh->connections, 1);
		json_u64(out, "connect_failures", sh->connect_failures, 1);
		fprintf(out, "\"last_connect\":%lld,\"last_connect_ok\":%s,\"last_peer\":",
		    (long long)sh->last_connect, sh->last_connect_ok ? "true" : "false");
		json_write_string(out, sh->last_peer);
		fputs(",\"last_reply\":", out);
		json_write_string(out, sh->last_reply);
		fputc('}', out);
	}
	fputs("],\"breakers\":[", out);
	first = 1;
	for (size_t i = 0; b != NULL && i < BREAKER_ALIASES; i++) {
		const struct breaker_rec *r = &b->rec[i];

		if (r->name[0] == '\0')
			continue;
		fprintf(out, "%s{\"alias\":", first ? "" : ",");
		first = 0;
		json_write_string(out, r->name);
		fprintf(out, ",\"state\":\"%s\",\"failures\":%u,\"open_until\":%lld,"
		    "\"wait\":%lld,\"opens\":%llu,\"held\":%llu}", breaker_word(r->state),
		    r->failures, (long long)r->open_until, (long long)r->wait,
		    (unsigned long long)r->opens, (unsigned long long)r->held);
	}
	fputs("]}\n", out);
}

/* label - a Prometheus label value: backslash, quote and newline escaped. */
static void
label(FILE *out, const char *v)
{
	for (const char *p = v; *p; p++) {
		if (*p == '\\' || *p == '"')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
}

static void
family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
prom_pipes(FILE *out, const struct stats *s)
{
	static const char *const results[STATS_NRESULTS] = {"ok", "tempfail", "permfail"};

	family(out, "undersmtpd_pipe_runs_total", "counter",
	    "Program runs of a pipe alias, by the reply they meant (2xx ok, 4xx tempfail, "
	    "5xx permfail).");
	for (size_t i = 0; i < STATS_ALIASES; i++)
		for (int r = 0; s->alias[i].name[0] && r < STATS_NRESULTS; r++) {
			fputs("undersmtpd_pipe_runs_total{alias=\"", out);
			label(out, s->alias[i].name);
			fprintf(out, "\",result=\"%s\"} %llu\n", results[r],
			    (unsigned long long)s->alias[i].runs[r]);
		}
	family(out, "undersmtpd_pipe_run_seconds", "summary",
	    "Time the programs of a pipe alias took.");
	for (size_t i = 0; i < STATS_ALIASES; i++) {
		const struct stats_alias *a = &s->alias[i];

		if (a->name[0] == '\0')
			continue;
		fputs("undersmtpd_pipe_run_seconds_sum{alias=\"", out);
		label(out, a->name);
		fprintf(out, "\"} %.3f\nundersmtpd_pipe_run_seconds_count{alias=\"",
		    (double)a->ms_total / 1000.0);
		label(out, a->name);
		fprintf(out, "\"} %llu\n", (unsigned long long)alias_runs(a));
	}
	family(out, "undersmtpd_pipe_run_max_seconds", "gauge",
	    "The longest time a program of a pipe alias took.");
	for (size_t i = 0; i < STATS_ALIASES; i++)
		if (s->alias[i].name[0]) {
			fputs("undersmtpd_pipe_run_max_seconds{alias=\"", out);
			label(out, s->alias[i].name);
			fprintf(out, "\"} %.3f\n", (double)s->alias[i].ms_max / 1000.0);
		}
	family(out, "undersmtpd_pipe_last_success_timestamp_seconds", "gauge",
	    "When a program of a pipe alias last succeeded (0: never).");
	for (size_t i = 0; i < STATS_ALIASES; i++)
		if (s->alias[i].name[0]) {
			fputs("undersmtpd_pipe_last_success_timestamp_seconds{alias=\"", out);
			label(out, s->alias[i].name);
			fprintf(out, "\"} %lld\n", (long long)s->alias[i].last_ok);
		}
	family(out, "undersmtpd_pipe_last_failure_timestamp_seconds", "gauge",
	    "When a program of a pipe alias last failed (0: never).");
	for (size_t i = 0; i < STATS_ALIASES; i++)
		if (s->alias[i].name[0]) {
			fputs("undersmtpd_pipe_last_failure_timestamp_seconds{alias=\"", out);
			label(out, s->alias[i].name);
			fprintf(out, "\"} %lld\n", (long long)s->alias[i].last_fail);
		}
}

static void
prom_hosts(FILE *out, const struct stats *s)
{
	family(out, "undersmtpd_smarthost_recipients_total", "counter",
	    "Recipients handed to a smarthost, by what became of them.");
	for (size_t i = 0; i < STATS_HOSTS; i++)
		for (int o = 0; s->host[i].name[0] && o < STATS_NOUTCOMES; o++) {
			fputs("undersmtpd_smarthost_recipients_total{smarthost=\"", out);
			label(out, s->host[i].name);
			fprintf(out, "\",status=\"%s\"} %llu\n",
			    stats_outcome_word((enum stats_outcome)o),
			    (unsigned long long)s->host[i].outcomes[o]);
		}
	family(out, "undersmtpd_smarthost_connections_total", "counter",
	    "Connection attempts to a smarthost, by result.");
	for (size_t i = 0; i < STATS_HOSTS; i++) {
		const struct stats_host *sh = &s->host[i];

		if (sh->name[0] == '\0')
			continue;
		fputs("undersmtpd_smarthost_connections_total{smarthost=\"", out);
		label(out, sh->name);
		fprintf(out, "\",result=\"ok\"} %llu\n",
		    (unsigned long long)(sh->connections - sh->connect_failures));
		fputs("undersmtpd_smarthost_connections_total{smarthost=\"", out);
		label(out, sh->name);
		fprintf(out, "\",result=\"failed\"} %llu\n",
		    (unsigned long long)sh->connect_failures);
	}
	family(out, "undersmtpd_smarthost_last_connection_timestamp_seconds", "gauge",
	    "When a connection to a smarthost was last attempted (0: never).");
	for (size_t i = 0; i < STATS_HOSTS; i++)
		if (s->host[i].name[0]) {
			fputs("undersmtpd_smarthost_last_connection_timestamp_seconds{smarthost=\"",
			    out);
			label(out, s->host[i].name);
			fprintf(out, "\"} %lld\n", (long long)s->host[i].last_connect);
		}
}

static void
prom_breakers(FILE *out, const struct breakers *b)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{"undersmtpd_pipe_breaker_open", "gauge",
		    "Whether a pipe alias's circuit breaker stops its program (1: open or probing)."},
		{"undersmtpd_pipe_breaker_opens_total", "counter",
		    "Times a pipe alias's circuit breaker opened."},
		{"undersmtpd_pipe_breaker_held_total", "counter",
		    "Deliveries not run because a pipe alias's circuit breaker was open."},
	};

	for (size_t f = 0; f < ARRAY_LEN(fam); f++) {
		family(out, fam[f].name, fam[f].type, fam[f].help);
		for (size_t i = 0; b != NULL && i < BREAKER_ALIASES; i++) {
			const struct breaker_rec *r = &b->rec[i];

			if (r->name[0] == '\0')
				continue;
			fprintf(out, "%s{alias=\"", fam[f].name);
			label(out, r->name);
			fprintf(out, "\"} %llu\n", f == 0 ? (unsigned long long)(r->state !=
			    BREAKER_CLOSED) : f == 1 ? (unsigned long long)r->opens :
			    (unsigned long long)r->held);
		}
	}
}

void
status_prometheus(FILE *out, const struct stats *s, const struct queue_census *q,
    const struct breakers *b)
{
	const struct stats_head *h = &s->head;

	family(out, "undersmtpd_daemon_up", "gauge", "Whether the daemon is running.");
	fprintf(out, "undersmtpd_daemon_up %d\n", status_daemon_up(s));
	family(out, "undersmtpd_daemon_start_time_seconds", "gauge",
	    "When the daemon started, and its counters with it.");
	fprintf(out, "undersmtpd_daemon_start_time_seconds %lld\n",
	    (long long)h->daemon_started);
	family(out, "undersmtpd_queue_messages", "gauge", "Messages in the spool, by state.");
	fprintf(out, "undersmtpd_queue_messages{state=\"active\"} %ld\n"
	    "undersmtpd_queue_messages{state=\"deferred\"} %ld\n"
	    "undersmtpd_queue_messages{state=\"held\"} %ld\n"
	    "undersmtpd_queue_messages{state=\"maildrop\"} %ld\n"
	    "undersmtpd_queue_messages{state=\"unreadable\"} %ld\n",
	    q->active, q->deferred, q->held, q->maildrop, q->damaged);
	family(out, "undersmtpd_queue_oldest_message_age_seconds", "gauge",
	    "Age of the oldest message in the queue (0: the queue is empty).");
	fprintf(out, "undersmtpd_queue_oldest_message_age_seconds %lld\n",
	    q->oldest ? (long long)(time(NULL) - (time_t)q->oldest) : 0LL);
	family(out, "undersmtpd_deliveries_total", "counter",
	    "Delivery attempts to a recipient, by status= as the log says it.");
	for (int o = 0; o < STATS_NOUTCOMES; o++)
		fprintf(out, "undersmtpd_deliveries_total{status=\"%s\"} %llu\n",
		    stats_outcome_word((enum stats_outcome)o), (unsigned long long)h->outcomes[o]);
	family(out, "undersmtpd_messages_received_total", "counter",
	    "Messages accepted (SMTP and sendmail).");
	fprintf(out, "undersmtpd_messages_received_total %llu\n",
	    (unsigned long long)h->received);
	family(out, "undersmtpd_rejects_total", "counter",
	    "Commands refused with a reject: line in the log.");
	fprintf(out, "undersmtpd_rejects_total %llu\n", (unsigned long long)h->rejected);
	family(out, "undersmtpd_notices_total", "counter",
	    "Non-delivery notifications (bounces) made.");
	fprintf(out, "undersmtpd_notices_total %llu\n", (unsigned long long)h->notices);
	prom_pipes(out, s);
	prom_hosts(out, s);
	prom_breakers(out, b);
}
