/*
 * bounce.c - RFC 3464 multipart/report DSNs.  See bounce.h.
 *
 * The DSN carries a human-readable part, the machine-readable
 * message/delivery-status part (one block per failed recipient) and the
 * original message's header (text/rfc822-headers), never its body.
 */
#include "bounce.h"
#include "stats.h"
#include "buf.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define HEADER_COPY_MAX (64 * 1024)

/*
 * status_len - the length of an enhanced status code of a failure at p, or 0:
 * RFC 3463 2, class "." 1*3digit "." 1*3digit with class 4 or 5.  Anything
 * else ("5.1.1.1", "5...1", "5.1234.1") would be an invalid Status: field.
 */
static size_t
status_len(const char *p)
{
	size_t i = 1;

	if (p[0] != '4' && p[0] != '5')
		return 0;
	for (int part = 0; part < 2; part++) {
		size_t digits = 0;

		if (p[i++] != '.')
			return 0;
		while (p[i] >= '0' && p[i] <= '9' && digits <= 3) {
			i++;
			digits++;
		}
		if (digits == 0 || digits > 3)
			return 0;
	}
	return i;
}

void
bounce_status(const char *reply, const char *fallback, char out[16])
{
	const char *p = reply;
	size_t n;

	str_copy(out, 16, fallback);
	if (strlen(p) < 4)
		return;
	p += 4;       /* "550 5.1.1 ..." */
	n = status_len(p);
	if (n > 0 && (p[n] == ' ' || p[n] == '\0')) {
		memcpy(out, p, n);
		out[n] = '\0';
	}
}

static void
rfc5322_date(char *buf, size_t size, time_t t)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

void
bounce_copy_headers(FILE *out, int msgfd)
{
	char buf[8192];
	size_t total = 0;
	off_t off = 0;
	int bol = 1;
	ssize_t n;

	while (total < HEADER_COPY_MAX && (n = pread(msgfd, buf, sizeof(buf), off)) > 0) {
		for (ssize_t i = 0; i < n && total < HEADER_COPY_MAX; i++, total++) {
			if (bol && buf[i] == '\n')
				return;
			fputc(buf[i], out);
			bol = buf[i] == '\n';
		}
		off += n;
	}
	if (!bol)
		fputc('\n', out);
}

static void
write_dsn(FILE *out, const struct conf *c, const struct spool_env *env,
    const char *dsn_id, int msgfd)
{
	char date[64], arrival[64], boundary[64], status[16];

	rfc5322_date(date, sizeof(date), time(NULL));
	rfc5322_date(arrival, sizeof(arrival), env->created);
	snprintf(boundary, sizeof(boundary), "%s.%lld/%s", dsn_id, (long long)time(NULL),
	    c->hostname);
	fprintf(out, "Received: by %s (undersmtpd) id %s; %s\n", c->hostname, dsn_id, date);
	fprintf(out, "Date: %s\nFrom: Mail Delivery System <MAILER-DAEMON@%s>\n", date,
	    c->hostname);
	fprintf(out, "To: <%s>\nSubject: Undelivered Mail Returned to Sender\n", env->sender);
	fprintf(out, "Message-ID: <%s.%s@%s>\nAuto-Submitted: auto-replied\n", dsn_id,
	    env->id, c->hostname);
	fprintf(out, "MIME-Version: 1.0\nContent-Type: multipart/report; "
	    "report-type=delivery-status;\n\tboundary=\"%s\"\n\n", boundary);
	fprintf(out, "This is a MIME-encapsulated message.\n\n--%s\n", boundary);
	fprintf(out, "Content-Description: Notification\nContent-Type: text/plain; "
	    "charset=us-ascii\n\n");
	fprintf(out, "This is the mail system at host %s.\n\nYour message could not be "
	    "delivered to one or more recipients.\nIt is attached below.\n\n", c->hostname);
	for (size_t i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].state == RCPT_FAILED)
			fprintf(out, "<%s>: %s\n", env->rcpts[i].addr, env->rcpts[i].last);
	fprintf(out, "\n--%s\nContent-Description: Delivery report\nContent-Type: "
	    "message/delivery-status\n\n", boundary);
	fprintf(out, "Reporting-MTA: dns; %s\nX-Undersmtpd-Queue-ID: %s\nArrival-Date: %s\n",
	    c->hostname, env->id, arrival);
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct spool_rcpt *r = &env->rcpts[i];

		if (r->state != RCPT_FAILED)
			continue;
		bounce_status(r->last, "5.0.0", status);
		fprintf(out, "\nFinal-Recipient: rfc822; %s\n", r->addr);
		if (r->orig[0] && strcmp(r->orig, r->addr) != 0)
			fprintf(out, "Original-Recipient: rfc822; %s\n", r->orig);
		fprintf(out, "Action: failed\nStatus: %s\n", status);
		if (r->last[0])
			fprintf(out, "Diagnostic-Code: smtp; %s\n", r->last);
	}
	fprintf(out, "\n--%s\nContent-Description: Undelivered Message Headers\n"
	    "Content-Type: text/rfc822-headers\n\n", boundary);
	bounce_copy_headers(out, msgfd);
	fprintf(out, "\n--%s--\n", boundary);
}

/* stream_on_copy - a stdio stream on a duplicate of fd, which stays ours to close. */
static FILE *
stream_on_copy(int fd)
{
	int copy = dup(fd);
	FILE *f;
	int saved;

	if (copy < 0)
		return NULL;
	if ((f = fdopen(copy, "w")) == NULL) {
		saved = errno;
		close(copy);
		errno = saved;
	}
	return f;
}

int
bounce_spool(const struct conf *c, const char *rcpt,
    void (*write)(FILE *, const void *, const char *), const void *arg,
    char id[SPOOL_ID_MAX])
{
	struct spool_env msg;
	char path[4096];
	FILE *out;
	int fd, rc, saved;

	memset(&msg, 0, sizeof(msg));
	if (random_hex(msg.id, sizeof(msg.id), 6) < 0 ||
	    spool_path(c, "tmp", msg.id, ".msg", path, sizeof(path)) < 0) {
		errno = EIO;
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX) < 0 || (out = stream_on_copy(fd)) == NULL) {
		saved = errno;
		close(fd);
		unlink(path);
		errno = saved;
		return -1;
	}
	write(out, arg, msg.id);
	if (fflush(out) != 0 || ferror(out)) {
		saved = errno;
		fclose(out);
		close(fd);
		unlink(path);
		errno = saved;
		return -1;
	}
	msg.size = (uint64_t)ftell(out);
	fclose(out);
	msg.created = msg.next_try = time(NULL);
	msg.bounce = 1;
	/* A non-ASCII recipient can only be reached with SMTPUTF8. */
	for (const unsigned char *p = (const unsigned char *)rcpt; *p; p++)
		if (*p >= 0x80)
			msg.smtputf8 = 1;
	str_copy(msg.client, sizeof(msg.client), "127.0.0.1");
	str_copy(msg.helo, sizeof(msg.helo), c->hostname);
	spool_add_rcpt(&msg, rcpt, rcpt);
	rc = spool_commit(c, fd, &msg);
	saved = errno;
	str_copy(id, SPOOL_ID_MAX, msg.id);
	spool_env_free(&msg);
	close(fd);
	errno = saved;
	return rc;
}

struct dsn_args {
	const struct conf *c;
	const struct spool_env *env;
	int msgfd;
};

static void
dsn_text(FILE *out, const void *arg, const char *id)
{
	const struct dsn_args *a = arg;

	write_dsn(out, a->c, a->env, id, a->msgfd);
}

int
bounce_create(const struct conf *c, const struct spool_env *env, int msgfd)
{
	struct dsn_args a = {c, env, msgfd};
	char id[SPOOL_ID_MAX];
	int failed = 0;

	if (env->sender[0] == '\0' || env->bounce)
		return 0;     /* never a bounce of a bounce */
	for (size_t i = 0; i < env->nrcpts; i++)
		failed += env->rcpts[i].state == RCPT_FAILED;
	if (failed == 0)
		return 0;     /* all told otherwise (notify_sender = no) */
	if (bounce_spool(c, env->sender, dsn_text, &a, id) < 0)
		return -1;
	log_info_as("bounce", "%s: sender non-delivery notification: %s", env->id, id);
	stats_count(c, STATS_NOTICES);
	return 0;
}
