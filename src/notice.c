/*
 * notice.c - failure notices to the people who can act.  See notice.h.
 */
#include "notice.h"
#include "addr.h"
#include "bounce.h"
#include "log.h"
#include "recfile.h"
#include "spool.h"
#include "util.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOTICE_MAGIC "undersmtpd-nt1\n"
#define NOTICE_LOCK_WAIT_MS 10000

/* One alias and reason: when its last notice went, and how many were held back. */
struct notice_rec {
	char key[240];              /* "alias|5.1.1" */
	int64_t last_sent;
	uint64_t held;
};

struct notice_file {
	char magic[16];
	struct notice_rec rec[NOTICES_MAX];
};

#define REC_AT(i) ((off_t)offsetof(struct notice_file, rec) + (off_t)(i) * \
	(off_t)sizeof(struct notice_rec))

/*
 * due - whether key's notice goes now (none within interval); *held, the
 * notices held back since the last one.  A file that cannot be used lets it
 * go: an administrator would rather have two notices than none.
 */
static int
due(const struct conf *c, const char *key, long interval, uint64_t *held)
{
	struct notice_rec rec;
	int64_t now = (int64_t)time(NULL);
	int fresh, go = 1, fd;
	long i;

	*held = 0;
	/* A queue run's: it may wait longer than a session, a storm is worse. */
	fd = recfile_open_wait(c, "notices", NOTICE_MAGIC, sizeof(struct notice_file), 1,
	    &fresh, NOTICE_LOCK_WAIT_MS);
	if (fd < 0)
		return 1;
	i = recfile_find(fd, REC_AT(0), sizeof(rec), NOTICES_MAX, sizeof(rec.key), key, &rec);
	if (i >= 0) {
		if (rec.last_sent > 0 && now >= rec.last_sent && now - rec.last_sent < interval) {
			rec.held++;
			go = 0;
		} else {
			*held = rec.held;
			rec.held = 0;
			rec.last_sent = now;
		}
		if (recfile_write(fd, &rec, sizeof(rec), REC_AT(i)) < 0)
			log_warn("notice: write %s/notices", c->spool_dir);
	}
	close(fd);
	return go;
}

struct notice_text {
	const struct conf *c;
	const struct pipe_conf *pc;
	const struct notice_facts *f;
	const char *to;
	uint64_t held;
	int msgfd;
};

static void
write_notice(FILE *out, const void *arg, const char *id)
{
	const struct notice_text *t = arg;
	const struct notice_facts *f = t->f;
	char date[64], received[64];
	time_t now = time(NULL), then = (time_t)f->received;
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	localtime_r(&then, &tm);
	strftime(received, sizeof(received), "%a, %d %b %Y %H:%M:%S %z", &tm);
	fprintf(out, "Received: by %s (undersmtpd) id %s; %s\n", t->c->hostname, id, date);
	fprintf(out, "Date: %s\nFrom: Mail Delivery System <MAILER-DAEMON@%s>\n", date,
	    t->c->hostname);
	fprintf(out, "To: <%s>\nSubject: undersmtpd: alias %s failed: %.120s\n", t->to,
	    f->alias, f->reply);
	fprintf(out, "Message-ID: <%s.notice@%s>\nAuto-Submitted: auto-generated\n", id,
	    t->c->hostname);
	fprintf(out, "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n");
	fprintf(out, "This is the mail system at host %s.\n\n"
	    "The program of the alias \"%s\" did not deliver a message, for good.\n\n",
	    t->c->hostname, f->alias);
	fprintf(out, "Reason:     %s\nAlias:      %s, %s\nCommand:    |%s\n", f->reply,
	    f->alias, f->source, f->command);
	fprintf(out, "Message:    queue id %s, from <%s> to <%s>, received %s\n",
	    f->queue_id, f->sender, f->recipient, received);
	fprintf(out, "The sender: %s\n", t->pc->notify_sender ? "gets a non-delivery "
	    "notification as well (notify_sender = yes)" : "is not told (notify_sender = "
	    "no): this notice is the only one");
	if (t->held > 0)
		fprintf(out, "Before it:  %llu notices like this one were not sent "
		    "(notify_interval = %ld s)\n", (unsigned long long)t->held,
		    t->pc->notify_interval);
	fprintf(out, "\nThe message's header:\n\n");
	bounce_copy_headers(out, t->msgfd);
}

int
notice_send(const struct conf *c, const struct pipe_conf *pc,
    const struct notice_facts *f, int msgfd)
{
	struct notice_text t = {c, pc, f, NULL, 0, msgfd};
	char key[240], status[16], to[ADDR_PATH_MAX + 1], id[SPOOL_ID_MAX];

	/* Never about a notice or a DSN: they come from <>. */
	if (pc->notify == NULL || f->sender[0] == '\0')
		return 0;
	bounce_status(f->reply, "5.0.0", status);
	snprintf(key, sizeof(key), "%.200s|%s", f->alias, status);
	if (!due(c, key, pc->notify_interval, &t.held)) {
		log_info_as("bounce", "%s: no failure notice for alias %s (%s): one went within "
		    "notify_interval", f->queue_id, f->alias, status);
		return 0;
	}
	/* A bare name is an alias of this host (an RT admin queue). */
	if (strchr(pc->notify, '@') != NULL)
		str_copy(to, sizeof(to), pc->notify);
	else
		snprintf(to, sizeof(to), "%s@%s", pc->notify, c->hostname);
	t.to = to;
	if (bounce_spool(c, to, write_notice, &t, id) < 0) {
		log_warn("%s: cannot spool the failure notice to <%s>", f->queue_id, to);
		return -1;
	}
	log_info_as("bounce", "%s: failure notice to <%s> (alias %s): %s", f->queue_id, to,
	    f->alias, id);
	return 1;
}
