/*
 * sendmail.c - sendmail-compatible submission.  See sendmail.h.
 *
 * Options (SPEC 2): -t, -f/-r SENDER (also -f "<>" and -f ""), -F NAME,
 * -i/-oi, -bs, -bp, -bv, -bi, -bm, -q, -qIsubstr, --; accepted and ignored: -odb -odi
 * -odq -oem -oee -oep -oeq -oew -om -oo -B7BIT -B8BITMIME -v.  -C FILE only
 * for root and `user`.  Anything else (-X, -O, -oA, -oQ, ...) exits 64 with
 * nothing written (PHPMailer CVE-2016-10033).
 *
 * Run by root or `user` it works on the spool directly; run by anyone else
 * it hands the message to the setgid maildrop helper (maildrop.h, SPEC 11).
 *
 * Exit status: 0 once every recipient is delivered or safely spooled (a
 * program's temporary failure is spooled and retried: sync-then-queue);
 * 75 only when the message could not be spooled; otherwise the sysexits
 * code of the worst permanent failure, with the reason on standard error.
 */
#include "sendmail.h"
#include "filter.h"
#include "rtqueue.h"
#include "stats.h"
#include "accept.h"
#include "addr.h"
#include "aliases.h"
#include "conf.h"
#include "delivery.h"
#include "envelope.h"
#include "privsep.h"
#include "log.h"
#include "maildrop.h"
#include "queue.h"
#include "reply.h"
#include "route.h"
#include "spool.h"
#include "util.h"

#include <errno.h>
#include <pwd.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>


#define SM_MAX_RCPTS 1000
#define SM_LINE_MAX 998          /* RFC 5322 2.1.1, CRLF not counted */
#define SM_NAME_MAX 200          /* -F NAME: a From: line must stay a line */
#define SM_HEADER_MAX (256 * 1024)

struct sm_result {
	int worst;                   /* sysexits code, 0 when all went well */
};

static void
worse(struct sm_result *r, int code)
{
	/* 75 (could not spool) matters most, then any permanent failure. */
	if (r->worst == EX_TEMPFAIL || code == 0)
		return;
	if (code == EX_TEMPFAIL || r->worst == 0)
		r->worst = code;
}

static int
usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "sendmail: %s: %s\n", arg, what);
	return EX_USAGE;
}

/* ignored_option - harmless sendmail options that change nothing here. */
static int
ignored_option(const char *a)
{
	static const char *const ok[] = {"-odb", "-odi", "-odq", "-oem", "-oee", "-oep",
	    "-oeq", "-oew", "-om", "-oo", "-B7BIT", "-B8BITMIME", "-v", "-bm", NULL};

	for (size_t i = 0; ok[i]; i++)
		if (strcmp(a, ok[i]) == 0)
			return 1;
	return 0;
}

int
sendmail_parse(int argc, char **argv, const char *name, struct sm_opts *o)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->dots_end = 1;
	o->conf_file = DEFAULT_CONF;
	if (strcmp(name, "mailq") == 0)
		o->mode = SM_LIST;
	else if (strcmp(name, "newaliases") == 0)
		o->mode = SM_ALIASES;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (ignored_option(a))
			continue;
		if (strcmp(a, "-t") == 0)
			o->from_headers = 1;
		else if (strcmp(a, "-i") == 0 || strcmp(a, "-oi") == 0)
			o->dots_end = 0;
		else if (strcmp(a, "-bs") == 0)
			o->mode = SM_SMTP;
		else if (strcmp(a, "-bp") == 0)
			o->mode = SM_LIST;
		else if (strcmp(a, "-bv") == 0)
			o->mode = SM_VERIFY;
		else if (strcmp(a, "-bi") == 0 || strcmp(a, "-I") == 0)
			o->mode = SM_ALIASES;
		else if (strcmp(a, "-q") == 0)
			o->mode = SM_FLUSH;
		else if (strncmp(a, "-qI", 3) == 0) {
			/* sendmail(8): -qIsubstr runs the messages whose id holds it. */
			o->queue_match = argv[i][3] ? argv[i] + 3 : (i + 1 < argc ? argv[++i] : NULL);
			if (o->queue_match == NULL)
				return usage_error("this option needs a queue id", a);
			o->mode = SM_FLUSH;
		}
		else if (a[1] == 'f' || a[1] == 'r' || a[1] == 'F' || a[1] == 'C') {
			val = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (val == NULL)
				return usage_error("this option needs a value", a);
			if (a[1] == 'F') {
				/* A CR or LF would start a header of the caller's (Bcc:). */
				for (const char *k = val; *k; k++)
					if ((unsigned char)*k < 32 || *k == 127) {
						fprintf(stderr, "sendmail: -F: the name holds a control "
						    "character\n");
						return EX_USAGE;
					}
				if (strlen(val) > SM_NAME_MAX)
					return usage_error("the name is too long", "-F");
				o->fullname = val;
			}
			else if (a[1] == 'C') {
				o->conf_file = val;
				o->conf_explicit = 1;
			} else
				o->sender = val;
		} else {
			/* -X, -O, -oQ, -oA, -N, ... : never guess what they might do. */
			return usage_error("option not supported", a);
		}
	}
	o->rcpts = argv + i;
	o->nrcpts = (size_t)(argc - i);
	for (size_t k = 0; k < o->nrcpts; k++)
		if (o->rcpts[k][0] == '-' && o->mode == SM_DELIVER)
			return usage_error("a recipient may not start with '-'", o->rcpts[k]);
	return 0;
}

/* may_run_spool - root, or the `user` of this configuration: the spool is ours. */
static int
may_run_spool(const char *user)
{
	struct passwd *pw;

	if (getuid() == 0)
		return 1;
	pw = getpwnam(user);
	return pw != NULL && pw->pw_uid == getuid();
}

static void quiet_diag(void *ctx, const char *file, int line, const char *msg);

int
sendmail_may_choose_config(void)
{
	struct diag d = {quiet_diag, NULL, 0};
	struct conf *c;
	struct passwd *pw;
	int ok;

	if (getuid() == 0)
		return 1;
	c = conf_load(DEFAULT_CONF, 1, &d);
	if (c == NULL)
		return 0;
	pw = getpwnam(c->user);
	ok = pw != NULL && pw->pw_uid == getuid();
	conf_free(c);
	return ok;
}

/* may_choose_config - the same, for a caller whose configuration is loaded. */
static int
may_choose_config(void)
{
	return sendmail_may_choose_config();
}

/* add_rcpt_list - a comma-separated list of addresses (header or argument). */
static void
add_rcpt_list(const char *s, char ***list, size_t *n)
{
	char *copy = xstrdup(s), *save = NULL;

	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *lt = strchr(t, '<'), *gt;

		if (lt != NULL && (gt = strchr(lt, '>')) != NULL) {
			*gt = '\0';
			t = lt + 1;
		}
		while (*t == ' ' || *t == '\t' || *t == '\n')
			t++;
		for (size_t len = strlen(t); len > 0 && strchr(" \t\n", t[len - 1]); len--)
			t[len - 1] = '\0';
		if (*t == '\0' || *n >= SM_MAX_RCPTS)
			continue;
		*list = xreallocarray(*list, *n + 1, sizeof(char *));
		(*list)[(*n)++] = xstrdup(t);
	}
	free(copy);
}

static int
header_is(const char *line, const char *name)
{
	size_t n = strlen(name);

	return strncasecmp(line, name, n) == 0;
}

/* put_missing - From:, Date:, Message-ID: where the message has none; -1 on a write error. */
static int
put_missing(struct data_sink *sink, const struct message *m, const struct added_headers *add)
{
	char line[1200];
	int err = 0;

	/* An empty field: nothing to add (--test-pipe leaves the message as is). */
	if (!m->has_from && add->from[0]) {
		snprintf(line, sizeof(line), "From: %s\n", add->from);
		err |= sink->write(sink->ctx, line, strlen(line));
	}
	if (!m->has_date && add->date[0]) {
		snprintf(line, sizeof(line), "Date: %s\n", add->date);
		err |= sink->write(sink->ctx, line, strlen(line));
	}
	if (!m->has_msgid && add->msgid[0]) {
		snprintf(line, sizeof(line), "Message-ID: %s\n", add->msgid);
		err |= sink->write(sink->ctx, line, strlen(line));
	}
	return err;
}

int
sendmail_read_message(const struct sm_opts *o, FILE *in, struct data_sink *sink,
    const struct added_headers *add, struct message *m, char *why, size_t whysize)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int in_headers = 1, dropping = 0, rc = 0;
	char *cur = NULL;            /* the current (unfolded) header field */
	size_t curlen = 0;
	int werr = 0;

	memset(m, 0, sizeof(*m));
	while ((n = getline(&line, &cap, in)) > 0) {
		size_t len = (size_t)n;

		if (line[len - 1] == '\n')
			len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		line[len] = '\0';
		if (memchr(line, '\0', len) != NULL) {
			snprintf(why, whysize, "the message contains a NUL byte");
			rc = EX_DATAERR;
			break;
		}
		if (len > SM_LINE_MAX) {
			snprintf(why, whysize, "a line is longer than %d characters", SM_LINE_MAX);
			rc = EX_DATAERR;
			break;
		}
		for (size_t k = 0; k < len; k++)
			if (line[k] == '\r')
				line[k] = ' ';
		if (o->dots_end && len == 1 && line[0] == '.')
			break;
		if (in_headers) {
			int cont = len > 0 && (line[0] == ' ' || line[0] == '\t');

			if (!cont && cur != NULL) {
				/* A complete field: look at it. */
				if (header_is(cur, "to:") || header_is(cur, "cc:") ||
				    header_is(cur, "bcc:"))
					add_rcpt_list(strchr(cur, ':') + 1, &m->hdr_rcpts,
					    &m->nhdr_rcpts);
				free(cur);
				cur = NULL;
				curlen = 0;
			}
			if (len == 0) {
				in_headers = 0;
				werr |= put_missing(sink, m, add);
			} else if (!cont) {
				if (strchr(line, ':') == NULL || line[0] == ':' ||
				    strchr(line, ' ') < strchr(line, ':')) {
					/* Not a header field: the body starts here (sendmail). */
					in_headers = 0;
					werr |= put_missing(sink, m, add);
					werr |= sink->write(sink->ctx, "\n", 1);
				} else {
					dropping = header_is(line, "bcc:");
					m->has_from |= header_is(line, "from:");
					m->has_date |= header_is(line, "date:");
					m->has_msgid |= header_is(line, "message-id:");
					m->hops += header_is(line, "received:");
					if (curlen + len < SM_HEADER_MAX) {
						cur = xstrdup(line);
						curlen = len;
					}
				}
			} else if (cur != NULL && curlen + len + 1 < SM_HEADER_MAX) {
				cur = xreallocarray(cur, curlen + len + 2, 1);
				cur[curlen++] = ' ';
				memcpy(cur + curlen, line, len + 1);
				curlen += len;
			}
			if (in_headers && dropping)
				continue;
		}
		line[len] = '\n';
		werr |= sink->write(sink->ctx, line, len + 1);
	}
	if (in_headers && rc == 0) {
		/* Only headers (or nothing): complete them, and an empty body. */
		werr |= put_missing(sink, m, add);
		werr |= sink->write(sink->ctx, "\n", 1);
	}
	if (cur != NULL) {
		if (header_is(cur, "to:") || header_is(cur, "cc:") || header_is(cur, "bcc:"))
			add_rcpt_list(strchr(cur, ':') + 1, &m->hdr_rcpts, &m->nhdr_rcpts);
		free(cur);
	}
	free(line);
	if (werr || ferror(in)) {
		snprintf(why, whysize, "cannot store the message: %s", strerror(errno));
		return EX_TEMPFAIL;
	}
	return rc;
}

static void
invoking_user(char *login, size_t lsize, char *gecos, size_t gsize)
{
	struct passwd *pw = getpwuid(getuid());

	str_copy(login, lsize, pw ? pw->pw_name : "nobody");
	gecos[0] = '\0';
	if (pw && pw->pw_gecos) {
		str_copy(gecos, gsize, pw->pw_gecos);
		gecos[strcspn(gecos, ",\"<>")] = '\0';
	}
}

/*
 * route_one - one recipient, exactly as SMTP routes it (a local submission
 * may send anywhere): a program runs now (sync-then-queue: a temporary
 * failure is spooled and retried), everything else is spooled.
 */
static void
route_one(const struct conf *c, const struct aliases *a, const struct delivery_ctx *dctx,
    struct envelope *e, const char *text, struct sm_result *res)
{
	struct route_result *r = xmalloc(sizeof(*r));
	struct addr ad;
	char shown[ADDR_PATH_MAX + 1], queue[RTQ_NAME_MAX + 1];

	if (addr_parse_plain(text, &ad) != ADDR_OK) {
		fprintf(stderr, "sendmail: %s: bad address\n", text);
		worse(res, EX_NOUSER);
		free(r);
		return;
	}
	addr_format(&ad, shown, sizeof(shown));
	route_address(c, a, &ad, 1, r);
	if (r->reply.code != 250) {
		fprintf(stderr, "sendmail: <%s>: %d %s %s\n", shown, r->reply.code,
		    r->reply.status, r->reply.text);
		accept_log_rcpt(c, "sendmail", e->id, shown, "none", e->mail_ms, now_ms(), &r->reply);
		worse(res, sysexit_for_reply(r->reply.code, r->reply.status));
		free(r);
		return;
	}
	if (rtq_verify_route(c, r, 1, queue, sizeof(queue)) == RTQ_UNKNOWN) {
		/* Issue 20: as at RCPT; sendmail's caller gets EX_NOUSER. */
		fprintf(stderr, "sendmail: <%s>: no such queue in Request Tracker (%s)\n",
		    shown, queue);
		worse(res, EX_NOUSER);
		free(r);
		return;
	}
	for (size_t i = 0; i < r->ndest; i++)
		if (r->dest[i].kind == ROUTE_SMARTHOST)
			envelope_add_dest(e, r->dest[i].address, shown);
	if (route_pipe(r) != NULL) {
		const char *list[1] = {shown};
		struct accept_origin o = {e->sender_text, "127.0.0.1", "localhost", e->id,
		    e->digest};
		struct smtp_reply rep;
		char relay[300];

		if (delivery_pipe_conf(c, r)->policy == POLICY_QUEUE) {
			envelope_add_dest(e, shown, shown);
			free(r);
			return;
		}
		/* Each recipient a run of its own: sendmail's caller has no one reply. */
		int64_t started = now_ms();

		accept_run(dctx, r, list, 1, &o, e->msg_fd, 0, &rep, relay, sizeof(relay));
		accept_log_rcpt(c, "pipe", e->id, shown, relay, e->mail_ms, started, &rep);
		if (rep.code / 100 == 4) {
			/* SPEC 7.1: the caller cannot retry; we do, from the queue. */
			envelope_add_dest(e, shown, shown);
		} else if (rep.code / 100 == 5) {
			fprintf(stderr, "sendmail: <%s>: %d %s %s\n", shown, rep.code,
			    rep.status, rep.text);
			worse(res, sysexit_for_reply(rep.code, rep.status));
		}
	}
	free(r);
}

/*
 * run_filter - issue 20: the content filter of the recipients, once for the
 * message before any is delivered or spooled.  Recipients with different
 * filters cannot share one message: the caller is told to send them apart,
 * nothing is lost.  0 when the message goes on (perhaps rewritten).
 */
static int
run_filter(const struct conf *c, const struct aliases *a, const struct delivery_ctx *dctx,
    struct envelope *e, char **rcpts, size_t nrcpts, off_t *size, struct sm_result *res)
{
	const char *const *list = (const char *const *)rcpts;
	const struct filter_conf *f;
	const struct pipe_conf *pc;
	const char *first;
	struct smtp_reply rep;
	uint64_t newsize = (uint64_t)*size;

	if (filter_choose(c, a, list, nrcpts, &f, &pc, &first) < 0) {
		fprintf(stderr, "sendmail: the recipients go through different content "
		    "filters: send the message to each group of them apart\n");
		worse(res, EX_UNAVAILABLE);
		return -1;
	}
	if (f == NULL)
		return 0;
	if (filter_transaction(dctx, f, pc, e->id, e->sender_text, first, list, nrcpts,
	    "127.0.0.1", "localhost", e->msg_fd, &newsize, &rep) < 0) {
		fprintf(stderr, "sendmail: %d %s %s\n", rep.code, rep.status, rep.text);
		worse(res, sysexit_for_reply(rep.code, rep.status));
		return -1;
	}
	*size = (off_t)newsize;
	return 0;
}

/* envelope_sender - -f/-r, "<>" or "" for the null sender, else user@hostname. */
static int
envelope_sender(const struct sm_opts *o, const struct conf *c, const char *login,
    struct addr *out)
{
	char buf[ADDR_PATH_MAX + 1];
	const char *s = o->sender;

	memset(out, 0, sizeof(*out));
	if (s != NULL && (strcmp(s, "<>") == 0 || s[0] == '\0')) {
		out->null = 1;
		return 0;
	}
	if (s == NULL)
		s = login;
	str_copy(buf, sizeof(buf), s);
	if (buf[0] == '<' && buf[strlen(buf) - 1] == '>') {
		memmove(buf, buf + 1, strlen(buf));
		buf[strlen(buf) - 1] = '\0';
	}
	if (addr_parse_plain(buf, out) != ADDR_OK)
		return -1;
	if (out->domain[0] == '\0')
		str_copy(out->domain, sizeof(out->domain), c->hostname);
	return 0;
}

/*
 * format_phrase - a display name as RFC 5322 3.2.5 writes it: as it is when
 * it is words of atext (UTF-8 counts as such, RFC 6532), else a quoted
 * string with '"' and '\\' escaped, as Postfix's sendmail does.  The name
 * holds no control character (checked when it was read).
 */
static void
format_phrase(const char *name, char *out, size_t size)
{
	static const char atext_specials[] = "!#$%&'*+-/=?^_`{|}~";
	size_t len = strlen(name), o = 0;
	int plain = len > 0 && name[0] != ' ' && name[len - 1] != ' ';

	for (const char *p = name; *p && plain; p++) {
		unsigned char ch = (unsigned char)*p;

		plain = ch >= 0x80 || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr(atext_specials, ch) != NULL ||
		    (ch == ' ' && p[1] != ' ');
	}
	if (plain) {
		str_copy(out, size, name);
		return;
	}
	if (size < 3) {
		out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (const char *p = name; *p && o + 3 < size; p++) {
		if (*p == '"' || *p == '\\')
			out[o++] = '\\';
		out[o++] = *p;
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* fill_added - From: (with -F or the user's full name), Date:, Message-ID:. */
static void
fill_added(struct added_headers *add, const struct sm_opts *o, const struct conf *c,
    const struct addr *sender, const char *sender_text, const char *gecos, const char *id)
{
	time_t now = time(NULL);
	struct tm tm;
	const char *shown = sender->null ? "MAILER-DAEMON" : sender_text;

	localtime_r(&now, &tm);
	strftime(add->date, sizeof(add->date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	snprintf(add->msgid, sizeof(add->msgid), "<%s.%lld@%s>", id, (long long)now,
	    c->hostname);
	if (o->fullname || gecos[0]) {
		char phrase[2 * SM_NAME_MAX + 3];

		format_phrase(o->fullname ? o->fullname : gecos, phrase, sizeof(phrase));
		snprintf(add->from, sizeof(add->from), "%s <%s>", phrase, shown);
	} else {
		snprintf(add->from, sizeof(add->from), "<%s>", shown);
	}
}

/* collect_rcpts - the command line's recipients, and with -t the headers'. */
static void
collect_rcpts(const struct sm_opts *o, const struct message *m, char ***rcpts, size_t *n)
{
	for (size_t i = 0; i < o->nrcpts; i++)
		add_rcpt_list(o->rcpts[i], rcpts, n);
	if (o->from_headers)
		for (size_t i = 0; i < m->nhdr_rcpts; i++)
			add_rcpt_list(m->hdr_rcpts[i], rcpts, n);
}

static void
free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static int
file_write(void *ctx, const char *p, size_t n)
{
	return fwrite(p, 1, n, ctx) == n ? 0 : -1;
}

static void
quiet_diag(void *ctx, const char *file, int line, const char *msg)
{
	(void)ctx;
	(void)file;
	(void)line;
	(void)msg;
}

/*
 * checked_rcpts - the recipients that are not refused outright.  An ordinary
 * user may not be able to read the aliases: then the queue decides (a
 * temporary answer keeps the recipient too).
 */
static char **
checked_rcpts(const struct conf *c, char **rcpts, size_t n, size_t *kept,
    struct sm_result *res)
{
	struct diag d = {quiet_diag, NULL, 0};
	struct aliases *a = aliases_load(c->aliases, getuid(), &d);
	char **out = xcalloc(n + 1, sizeof(char *));
	struct route_result *r = xmalloc(sizeof(*r));

	*kept = 0;
	for (size_t i = 0; i < n; i++) {
		char shown[ADDR_PATH_MAX + 1];
		struct addr ad;

		if (addr_parse_plain(rcpts[i], &ad) != ADDR_OK) {
			fprintf(stderr, "sendmail: %s: bad address\n", rcpts[i]);
			worse(res, EX_NOUSER);
			continue;
		}
		addr_format(&ad, shown, sizeof(shown));
		route_address(c, a, &ad, 1, r);
		if (r->reply.code / 100 == 5) {
			fprintf(stderr, "sendmail: <%s>: %d %s %s\n", shown, r->reply.code,
			    r->reply.status, r->reply.text);
			worse(res, sysexit_for_reply(r->reply.code, r->reply.status));
			continue;
		}
		out[(*kept)++] = xstrdup(shown);
	}
	free(r);
	aliases_free(a);
	return out;
}

/*
 * via_maildrop - SPEC 11: a user who may not write the spool hands the
 * completed message to the setgid helper, which stores it in the maildrop;
 * the queue routes it from there.  Exit 0 once the helper has it durably.
 */
static int
via_maildrop(const struct sm_opts *o, const struct conf *c, const struct addr *sender,
    const char *gecos)
{
	struct sm_result res = {0};
	struct added_headers add;
	struct data_sink sink;
	struct message m;
	char sender_text[ADDR_PATH_MAX + 1], id[QUEUE_ID_LEN + 1], dir[4096], why[4200];
	char **rcpts = NULL, **kept = NULL, *header = NULL;
	size_t nrcpts = 0, nkept = 0, hlen = 0;
	FILE *tmp;
	off_t size = 0;
	int rc;

	addr_format(sender, sender_text, sizeof(sender_text));
	if (random_hex(id, sizeof(id), QUEUE_ID_LEN / 2) < 0 ||
	    spool_path(c, "maildrop", NULL, NULL, dir, sizeof(dir)) < 0) {
		fprintf(stderr, "sendmail: cannot make a message id or maildrop path\n");
		return EX_TEMPFAIL;
	}
	fill_added(&add, o, c, sender, sender_text, gecos, id);
	/* The message is complete before the helper sees a byte of it. */
	tmp = tmpfile();
	if (tmp == NULL) {
		fprintf(stderr, "sendmail: cannot create a temporary file: %s\n", strerror(errno));
		return EX_TEMPFAIL;
	}
	sink.write = file_write;
	sink.ctx = tmp;
	rc = sendmail_read_message(o, stdin, &sink, &add, &m, why, sizeof(why));
	if (rc == 0 && m.hops > c->max_hops) {
		snprintf(why, sizeof(why), "too many Received: headers (mail loop)");
		rc = EX_DATAERR;
	}
	if (rc == 0 && (fflush(tmp) != 0 || (size = ftello(tmp)) < 0)) {
		snprintf(why, sizeof(why), "cannot store the message: %s", strerror(errno));
		rc = EX_TEMPFAIL;
	}
	if (rc == 0 && c->max_message_size > 0 && (uint64_t)size > c->max_message_size) {
		snprintf(why, sizeof(why), "the message is larger than %llu bytes",
		    (unsigned long long)c->max_message_size);
		rc = EX_DATAERR;
	}
	if (rc == 0) {
		collect_rcpts(o, &m, &rcpts, &nrcpts);
		if (nrcpts == 0) {
			snprintf(why, sizeof(why), "no recipients");
			rc = EX_DATAERR;
		}
	}
	if (rc != 0) {
		fprintf(stderr, "sendmail: %s\n", why);
		goto out;
	}
	kept = checked_rcpts(c, rcpts, nrcpts, &nkept, &res);
	if (nkept == 0)
		goto out;
	header = maildrop_format(sender_text, kept, nkept, &hlen);
	rc = header == NULL ? EX_TEMPFAIL : maildrop_hand_over(DROP_HELPER, dir, header, hlen,
	    fileno(tmp), (uint64_t)size, why, sizeof(why));
	if (rc != 0) {
		fprintf(stderr, "sendmail: the message could not be queued%s%s\n",
		    header ? ": " : "", header ? why : "");
		/* The helper's 73: too large for the system's configuration, for good. */
		worse(&res, rc == EX_CANTCREAT ? EX_CANTCREAT : EX_TEMPFAIL);
		rc = 0;
	} else {
		log_info("from=<%s>, uid=%ld, nrcpt=%zu (sendmail, into the maildrop)",
		    sender_text, (long)getuid(), nkept);
	}
out:
	fclose(tmp);
	free(header);
	free_list(kept, nkept);
	free_list(rcpts, nrcpts);
	free_list(m.hdr_rcpts, m.nhdr_rcpts);
	return rc != 0 ? rc : res.worst;
}

int
sendmail_deliver(const struct sm_opts *o, struct conf *c)
{
	struct delivery_ctx dctx;
	struct envelope e;
	struct envelope_client cl = {"localhost", "127.0.0.1", "local", (long)getuid()};
	struct data_sink sink;
	struct message m;
	struct sm_result res = {0};
	struct aliases *a;
	struct diag d = {log_diag, NULL, 0};
	char why[4200], login[64], gecos[128];
	struct added_headers add;
	char **rcpts = NULL;
	size_t nrcpts = 0;
	int status = 0, rc, spooled = 0;
	off_t msg_size;
	struct addr sender;

	if (o->conf_explicit && !may_choose_config()) {
		fprintf(stderr, "sendmail: -C is only for root and the user of %s\n",
		    DEFAULT_CONF);
		return EX_USAGE;
	}
	invoking_user(login, sizeof(login), gecos, sizeof(gecos));
	uid_t invoker = getuid();

	if (envelope_sender(o, c, login, &sender) < 0) {
		fprintf(stderr, "sendmail: bad sender address: %s\n", o->sender);
		return EX_USAGE;
	}
	if (!may_run_spool(c->user))
		return via_maildrop(o, c, &sender, gecos);
	dctx.conf = c;
	rc = privsep_start(c, NULL, NULL, 0, &dctx.ps, &status, why, sizeof(why));
	if (rc == 1)
		return status;
	if (rc < 0) {
		fprintf(stderr, "sendmail: %s: %s\n", why, strerror(errno));
		return EX_TEMPFAIL;
	}
	envelope_init(&e);
	if (envelope_new_id(&e) < 0) {
		fprintf(stderr, "sendmail: cannot make a queue id\n");
		return EX_TEMPFAIL;
	}
	e.sender = sender;
	addr_format(&sender, e.sender_text, sizeof(e.sender_text));
	fill_added(&add, o, c, &sender, e.sender_text, gecos, e.id);
	if (envelope_open_message(&e, c, &cl) < 0) {
		fprintf(stderr, "sendmail: cannot store the message in %s/tmp: %s\n",
		    c->spool_dir, strerror(errno));
		envelope_reset(&e);
		return EX_TEMPFAIL;
	}
	sink = envelope_sink(&e);
	rc = sendmail_read_message(o, stdin, &sink, &add, &m, why, sizeof(why));
	if (rc != 0) {
		fprintf(stderr, "sendmail: %s\n", why);
		envelope_reset(&e);
		return rc;
	}
	if (m.hops > c->max_hops) {
		fprintf(stderr, "sendmail: too many Received: headers (mail loop)\n");
		envelope_reset(&e);
		return EX_DATAERR;
	}
	collect_rcpts(o, &m, &rcpts, &nrcpts);
	if (nrcpts == 0) {
		fprintf(stderr, "sendmail: no recipients\n");
		envelope_reset(&e);
		return EX_DATAERR;
	}
	if (envelope_finish_message(&e) < 0) {
		fprintf(stderr, "sendmail: cannot store the message in %s: %s\n", e.msg_path,
		    strerror(errno));
		envelope_reset(&e);
		return EX_TEMPFAIL;
	}
	a = aliases_load(c->aliases, dctx.ps.aliases_owner, &d);
	msg_size = lseek(e.msg_fd, 0, SEEK_END);
	if (msg_size < 0)
		msg_size = 0;
	/* Postfix's pickup and qmgr lines: pflogsumm counts it received. */
	log_info_as("pickup", "%s: uid=%ld from=<%s> (sendmail)", e.id, (long)invoker,
	    e.sender_text);
	log_info_as("qmgr", "%s: from=<%s>, size=%lld, nrcpt=%zu (queue active)", e.id,
	    e.sender_text, (long long)msg_size, nrcpts);
	stats_count(c, STATS_RECEIVED);
	if (run_filter(c, a, &dctx, &e, rcpts, nrcpts, &msg_size, &res) == 0)
		for (size_t i = 0; i < nrcpts; i++)
			route_one(c, a, &dctx, &e, rcpts[i], &res);
	if (e.ndests > 0) {
		if (envelope_spool(&e, c, &cl, (uint64_t)msg_size) < 0) {
			fprintf(stderr, "sendmail: cannot spool the message: %s\n",
			    strerror(errno));
			worse(&res, EX_TEMPFAIL);
		} else {
			log_info("%s: queued for %zu recipient(s)", e.id, e.ndests);
			spooled = 1;
		}
	}
	aliases_free(a);
	/*
	 * SPEC 2: then a background queue run, as a session starts one - once
	 * the message's lock is let go (envelope_reset), or the run would find
	 * the message taken and leave it for cron.
	 */
	envelope_reset(&e);
	if (spooled && c->queue.run_after_accept)
		queue_kick(c, &dctx);
	free_list(rcpts, nrcpts);
	free_list(m.hdr_rcpts, m.nhdr_rcpts);
	return res.worst;
}
