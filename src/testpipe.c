/*
 * testpipe.c - --test-pipe: one delivery to a pipe alias, shown step by
 * step.  See testpipe.h.  Everything that decides what the program gets is
 * the delivery's own code (route.c, delivery.c, envelope.c); this file only
 * puts the pieces in order and prints them.
 */
#include "testpipe.h"
#include "accept.h"
#include "addr.h"
#include "aliases.h"
#include "delivery.h"
#include "envelope.h"
#include "log.h"
#include "privsep.h"
#include "route.h"
#include "sendmail.h"
#include "util.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#define LABEL "%-13s "

/* exit_for_reply - the command's exit status for the reply a client would get. */
static int
exit_for_reply(int code)
{
	return code / 100 == 2 ? 0 : code / 100 == 4 ? EX_TEMPFAIL : EX_UNAVAILABLE;
}

static void
quiet(void *ctx, const char *file, int line, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "%s:%d: %s\n", file, line, msg);
}

/*
 * store_message - standard input as a local submission's message: Received:
 * first, LF line ends, the whole of it (no lone-dot end), nothing added.
 * 0, or an exit status after a message on stderr.
 */
static int
store_message(const struct conf *c, struct envelope *e, FILE *in, uid_t invoker,
    off_t *size)
{
	struct envelope_client cl = {"localhost", "127.0.0.1", "local", (long)invoker};
	struct sm_opts o;
	struct added_headers none;
	struct data_sink sink;
	struct message m;
	char why[600];
	int rc;

	memset(&o, 0, sizeof(o));
	memset(&none, 0, sizeof(none));      /* empty: no header is added */
	if (envelope_new_id(e) < 0 || envelope_open_message(e, c, &cl) < 0) {
		fprintf(stderr, "undersmtpd: cannot store the message in %s/tmp: %s\n",
		    c->spool_dir, strerror(errno));
		return EX_TEMPFAIL;
	}
	sink = envelope_sink(e);
	rc = sendmail_read_message(&o, in, &sink, &none, &m, why, sizeof(why));
	for (size_t i = 0; i < m.nhdr_rcpts; i++)
		free(m.hdr_rcpts[i]);
	free(m.hdr_rcpts);
	if (rc != 0) {
		fprintf(stderr, "undersmtpd: %s\n", why);
		return rc;
	}
	if (envelope_finish_message(e) < 0 || (*size = lseek(e->msg_fd, 0, SEEK_END)) < 0) {
		fprintf(stderr, "undersmtpd: cannot store the message in %s: %s\n",
		    e->msg_path, strerror(errno));
		return EX_TEMPFAIL;
	}
	if (c->max_message_size > 0 && (uint64_t)*size > c->max_message_size) {
		fprintf(stderr, "undersmtpd: the message is larger than max_message_size "
		    "(%llu bytes)\n", (unsigned long long)c->max_message_size);
		return EX_DATAERR;
	}
	return 0;
}

/* print_command - who runs what, with which environment and input. */
static void
print_command(FILE *out, const struct route_result *r, const struct route_dest *d,
    const struct pipe_conf *pc, const struct delivery_command *cmd, int via_launcher)
{
	struct passwd *pw = getpwuid(cmd->req.change_user ? cmd->req.uid : geteuid());

	fprintf(out, LABEL "%s\n", "address:", r->address);
	fprintf(out, LABEL "%s, %s\n", "alias:", d->entry->name, d->source);
	fprintf(out, LABEL "\"|%s\"\n", "aliases line:", d->target->cmd.text);
	fprintf(out, LABEL "%s, timeout %ld s, %s\n", "policy:", conf_policy_name(pc->policy),
	    pc->timeout, cmd->use_shell ? "through /bin/sh -c (the command has shell "
	    "syntax)" : "execve, no shell");
	fprintf(out, LABEL "%s (uid %ld, gid %ld)%s, in %s\n", "user:",
	    pw ? pw->pw_name : "?", (long)(cmd->req.change_user ? cmd->req.uid : geteuid()),
	    (long)(cmd->req.change_user ? cmd->req.gid : getegid()),
	    via_launcher ? ", started by the root launcher" : "", cmd->home);
	fprintf(out, LABEL "%s\n", "search path:", cmd->req.path ? cmd->req.path : "(none)");
	for (size_t i = 0; cmd->argv[i] != NULL; i++)
		fprintf(out, LABEL "[%zu] %s\n", i == 0 ? "argv:" : "", i, cmd->argv[i]);
	for (size_t i = 0; cmd->envp[i] != NULL; i++)
		fprintf(out, LABEL "%s\n", i == 0 ? "environment:" : "", cmd->envp[i]);
}

/* print_output - the program's first bytes, line by line. */
static void
print_output(FILE *out, const struct pipe_result *res)
{
	const char *p = res->head;
	int lines = 0;

	while (*p != '\0' && lines < 10) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		fprintf(out, LABEL "| %.*s\n", lines == 0 ? "output:" : "", len, p);
		lines++;
		p = nl ? nl + 1 : p + len;
	}
	if (lines == 0)
		fprintf(out, LABEL "(none)\n", "output:");
	else if (res->output_bytes > strlen(res->head) || *p != '\0')
		fprintf(out, LABEL "... (%llu bytes in all)\n", "",
		    (unsigned long long)res->output_bytes);
}

/*
 * route_to_pipe - the address routed as a local client's; its pipe route,
 * or NULL after saying why not (ret holds the exit status).
 */
static const struct route_dest *
route_to_pipe(const struct conf *c, const struct aliases *a, const char *address,
    struct route_result *r, FILE *out, int *ret)
{
	struct addr ad;
	const struct route_dest *d;
	int err = addr_parse_plain(address, &ad);

	if (err != ADDR_OK) {
		fprintf(stderr, "undersmtpd: %s: %s\n", address, addr_strerror(err));
		*ret = EX_USAGE;
		return NULL;
	}
	route_address(c, a, &ad, 1, r);
	if (r->reply.code != 250) {
		char line[600];

		smtp_reply_line(&r->reply, line, sizeof(line));
		fprintf(out, LABEL "%s\n" LABEL "%s\n", "address:", r->address, "reply:", line);
		*ret = exit_for_reply(r->reply.code);
		return NULL;
	}
	d = route_pipe(r);
	if (d == NULL) {
		fprintf(stderr, "undersmtpd: %s is not a pipe alias: %s\n", r->address, r->why);
		*ret = EX_USAGE;
	}
	return d;
}

/* run_and_report - the delivery itself, and what came of it. */
static int
run_and_report(const struct delivery_ctx *dctx, const struct route_result *r,
    const struct envelope *e, uid_t invoker, FILE *out)
{
	const char *rcpts[1] = {r->address};
	struct accept_origin o = {e->sender_text, "127.0.0.1", "localhost", e->id,
	    e->digest};
	struct pipe_result res;
	struct smtp_reply rep;
	char relay[300], how[200], line[600];
	int64_t started = now_ms();

	fflush(out);
	accept_run_seen(dctx, r, rcpts, 1, &o, e->msg_fd, 0, &rep, relay, sizeof(relay),
	    &res);
	smtp_reply_line(&rep, line, sizeof(line));
	if (res.outcome == PIPE_REFUSED && res.output[0] == '\0') {
		fprintf(out, LABEL "not started\n", "program:");
	} else {
		pipe_describe(&res, how, sizeof(how));
		fprintf(out, LABEL "%s after %.2f s\n", "program:", how,
		    (double)(now_ms() - started) / 1000.0);
		print_output(out, &res);
	}
	fprintf(out, LABEL "%s\n", "reply:", line);
	log_info_as("pipe", "%s: to=<%s>, relay=%s, test delivery (--test-pipe, uid %ld): "
	    "%s", e->id, r->address, relay, (long)invoker, line);
	return exit_for_reply(rep.code);
}

int
testpipe_main(const struct conf *c, const char *aliases_override, const char *address,
    const char *sender, int dry_run, FILE *in, FILE *out)
{
	struct delivery_ctx dctx;
	struct diag d = {quiet, NULL, 0};
	struct envelope e;
	struct aliases *a;
	struct route_result *r = NULL;
	const struct route_dest *dest = NULL;
	struct delivery_command cmd;
	struct delivery_values v;
	char why[4200], id[33];
	off_t size = 0;
	int status = 0, ret, rc;
	uid_t invoker = getuid();     /* before the spool user takes over */

	dctx.conf = c;
	rc = privsep_start(c, aliases_override, NULL, 0, &dctx.ps, &status, why, sizeof(why));
	if (rc == 1)
		return status;          /* we were the launcher */
	if (rc < 0) {
		fprintf(stderr, "undersmtpd: %s: %s\n", why, strerror(errno));
		return EX_TEMPFAIL;
	}
	envelope_init(&e);
	if (addr_parse_plain(sender, &e.sender) != ADDR_OK && sender[0] != '\0') {
		fprintf(stderr, "undersmtpd: --from %s: not an address\n", sender);
		return EX_USAGE;
	}
	str_copy(e.sender_text, sizeof(e.sender_text), sender);
	ret = store_message(c, &e, in, invoker, &size);
	a = aliases_load(c->aliases, dctx.ps.aliases_owner, &d);
	if (ret == 0 && a == NULL) {
		fprintf(stderr, "undersmtpd: %s: the aliases file has errors\n", c->aliases);
		ret = EX_CONFIG;
	}
	if (ret == 0) {
		r = xmalloc(sizeof(*r));
		dest = route_to_pipe(c, a, address, r, out, &ret);
	}
	if (ret != 0 || dest == NULL)
		goto done;
	delivery_id(e.digest, r->address, id);
	memset(&v, 0, sizeof(v));
	v.recipient = r->address;
	v.sender = e.sender_text;
	v.client_addr = "127.0.0.1";
	v.helo = "localhost";
	v.queue_id = e.id;
	v.delivery_id = id;
	if (delivery_build(c, r, &v, dctx.ps.running_as_root, dctx.ps.session_uid, &cmd,
	    why, sizeof(why)) < 0) {
		fprintf(out, LABEL "%s\n" LABEL "the program would not be started: %s\n",
		    "address:", r->address, "refused:", why);
		ret = EX_TEMPFAIL;      /* the launcher answers 451 for it */
		goto done;
	}
	print_command(out, r, dest, delivery_pipe_conf(c, r), &cmd, dctx.ps.launcher_fd >= 0);
	delivery_command_free(&cmd);
	fprintf(out, LABEL "Return-Path: <%s>, Delivered-To: <%s>, then the message "
	    "(%lld bytes with our Received:)\n", "stdin:", e.sender_text, r->address,
	    (long long)size);
	if (delivery_seen_before(e.msg_fd, r->address)) {
		fprintf(out, LABEL "the message already has Delivered-To: <%s>: a mail loop, "
		    "refused with 554 5.4.6\n", "loop check:", r->address);
		ret = EX_UNAVAILABLE;
	} else {
		fprintf(out, LABEL "no Delivered-To: <%s> in the message\n", "loop check:",
		    r->address);
		if (dry_run)
			fprintf(out, LABEL "dry run: not started\n", "program:");
		else
			ret = run_and_report(&dctx, r, &e, invoker, out);
	}
done:
	free(r);
	aliases_free(a);
	envelope_reset(&e);
	fflush(out);
	return ret;
}
