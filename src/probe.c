/*
 * probe.c - --probe-smarthost.  See probe.h.  Every step is smtpc.c's own;
 * this file only prints what its trace says and decides the verdict.
 */
#include "probe.h"
#include "addr.h"
#include "smtpc.h"
#include "spool.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define LABEL "  %-12s "

static void
print_step(void *ctx, const char *step, const char *text)
{
	FILE *out = ctx;

	fprintf(out, LABEL, step);
	/* A server's words, for a terminal: printable ASCII only. */
	for (const char *p = text; *p; p++)
		fputc(*p >= 32 && *p < 127 ? *p : '?', out);
	fputc('\n', out);
	fflush(out);
}

static const char *
tls_mode_name(enum tls_mode m)
{
	return m == TLSMODE_NONE ? "none (plain text)" : m == TLSMODE_MAY ?
	    "may (STARTTLS if offered, certificate not checked)" : m == TLSMODE_STARTTLS ?
	    "starttls (required)" : "tls (implicit, from the first byte)";
}

/* test_message - a short message to send_to in a temporary file; its fd or -1. */
static int
test_message(const struct conf *c, const struct smarthost_conf *sh, const char *sender,
    const char *send_to, uint64_t *size)
{
	FILE *fp = tmpfile();
	char date[64], id[33];
	time_t now = time(NULL);
	struct tm tm;
	long end;

	if (fp == NULL)
		return -1;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (random_hex(id, sizeof(id), 16) < 0)
		str_copy(id, sizeof(id), "0");
	fprintf(fp, "From: undersmtpd on %s <%s>\nTo: <%s>\nSubject: undersmtpd test "
	    "message from %s through smarthost %s\nDate: %s\nMessage-ID: <%s@%s>\n\n"
	    "This message was sent by \"undersmtpd --probe-smarthost --send-test\" on %s\n"
	    "to check that the smarthost %s (%s port %ld) accepts mail.\n"
	    "No reply is needed.\n", c->hostname, sender, send_to, c->hostname, sh->name,
	    date, id, c->hostname, c->hostname, sh->name, sh->host, sh->port);
	if (fflush(fp) != 0 || (end = ftell(fp)) < 0) {
		fclose(fp);
		return -1;
	}
	*size = (uint64_t)end;
	{
		int fd = dup(fileno(fp));

		fclose(fp);
		if (fd >= 0 && lseek(fd, 0, SEEK_SET) < 0) {
			close(fd);
			return -1;
		}
		return fd;
	}
}

/* send_test - the test message on the open connection; 0 when it was taken. */
static int
send_test(struct smtpc *sc, const struct conf *c, const struct smarthost_conf *sh,
    const char *send_to, FILE *out)
{
	struct spool_env env;
	struct smtpc_reply rep;
	char sender[ADDR_PATH_MAX + 1];
	size_t idx = 0;
	int fd, ok;

	memset(&env, 0, sizeof(env));
	memset(&rep, 0, sizeof(rep));
	if (c->postmaster != NULL)
		str_copy(sender, sizeof(sender), c->postmaster);
	else
		snprintf(sender, sizeof(sender), "postmaster@%s", c->hostname);
	str_copy(env.id, sizeof(env.id), "PROBE");
	str_copy(env.sender, sizeof(env.sender), sender);
	fd = test_message(c, sh, sender, send_to, &env.size);
	if (fd < 0 || spool_add_rcpt(&env, send_to, send_to) < 0) {
		fprintf(out, LABEL "cannot make the test message: %s\n", "send-test",
		    strerror(errno));
		if (fd >= 0)
			close(fd);
		spool_env_free(&env);
		return -1;
	}
	if (smtpc_send(sc, &env, fd, &idx, 1, &rep) < 0)
		smtpc_close(sc);
	ok = rep.code / 100 == 2;
	fprintf(out, LABEL "from <%s> to <%s>: %s\n", "send-test", sender, send_to,
	    rep.code ? rep.text : "no reply");
	close(fd);
	spool_env_free(&env);
	return ok ? 0 : -1;
}

/* probe_one - one smarthost, step by step; 0 when it would take mail. */
static int
probe_one(const struct conf *c, const struct smarthost_conf *sh, const char *send_to,
    FILE *out)
{
	struct smtpc sc;
	struct smtpc_reply err;
	int rc;

	fprintf(out, "smarthost \"%s\": %s port %ld, tls %s%s%s%s\n", sh->name, sh->host,
	    sh->port, tls_mode_name(sh->tls),
	    sh->tls != TLSMODE_NONE && sh->tls != TLSMODE_MAY && !sh->tls_verify ?
	    ", certificate NOT checked (tls_verify = false)" : "",
	    sh->auth_user ? ", AUTH as " : "", sh->auth_user ? sh->auth_user : "");
	smtpc_init(&sc, c);
	sc.trace = print_step;
	sc.trace_ctx = out;
	rc = smtpc_open_one(&sc, sh, &err);
	if (rc < 0) {
		fprintf(out, LABEL "%s\n", "FAILED", err.text);
		smtpc_close(&sc);
		return -1;
	}
	if (sh->auth_user == NULL)
		fprintf(out, LABEL "%s\n", "auth", "none configured");
	if (send_to != NULL) {
		rc = send_test(&sc, c, sh, send_to, out);
	} else {
		struct smtpc_reply r;

		rc = smtpc_reset(&sc, &r);
		fprintf(out, LABEL "%s\n", "RSET", r.code ? r.text : "no reply");
	}
	smtpc_close(&sc);
	fprintf(out, LABEL "%s\n", "result", rc == 0 ? (send_to ? "took the test message"
	    : "would accept mail (nothing was sent)") : "would NOT accept mail");
	return rc;
}

int
probe_main(const struct conf *c, const char *name, const char *send_to, FILE *out)
{
	struct addr a;
	int found = 0, ok = 0;

	if (send_to != NULL && addr_parse_plain(send_to, &a) != ADDR_OK) {
		fprintf(stderr, "undersmtpd: --send-test %s: not an address\n", send_to);
		return EX_USAGE;
	}
	if (c->nsmarthosts == 0) {
		fprintf(out, "no smarthost is configured: mail for other domains is refused "
		    "(550 5.3.5)\n");
		return EX_TEMPFAIL;
	}
	for (size_t i = 0; i < c->nsmarthosts; i++) {
		const struct smarthost_conf *sh = &c->smarthosts[i];

		if (name != NULL && strcmp(name, sh->name) != 0)
			continue;
		found = 1;
		if (probe_one(c, sh, send_to, out) == 0) {
			ok = 1;
			break;          /* a queue run stops at the first that works */
		}
		if (name == NULL && i + 1 < c->nsmarthosts)
			fprintf(out, "  (a queue run would try the next smarthost)\n");
	}
	if (!found) {
		fprintf(stderr, "undersmtpd: no smarthost \"%s\" in the configuration\n", name);
		return EX_USAGE;
	}
	fflush(out);
	return ok ? 0 : EX_TEMPFAIL;
}
