/*
 * delivery.c - a message to the program of a pipe alias.  See delivery.h.
 */
#include "delivery.h"
#include "breaker.h"
#include "stats.h"
#include "launcher.h"
#include "log.h"
#include "pipe.h"
#include "spool.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

/* env_add - "NAME=value" into a NULL-terminated vector with room left. */
static void
env_add(char **envp, size_t *n, size_t max, const char *name, const char *value)
{
	size_t len;
	char *s;

	if (*n + 1 >= max)
		return;
	len = strlen(name) + strlen(value) + 2;
	s = xmalloc(len);
	snprintf(s, len, "%s=%s", name, value);
	envp[(*n)++] = s;
	envp[*n] = NULL;
}

static void
free_vector(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
}

struct pipe_user {
	uid_t uid;
	gid_t gid;
	char name[64], home[256], shell[256];
};

/*
 * resolve_pipe_user - who runs the program.  As root: the account the
 * configuration names (nobody by default), never root, root's group or
 * forbidden_uid (the spool's owner).  Otherwise: ourselves, and pipe.user
 * may only name us.  -1 with why when nobody may.
 */
static int
resolve_pipe_user(int as_root, uid_t forbidden_uid, const struct pipe_conf *pc,
    struct pipe_user *u, const char **why)
{
	const char *name = pc->user;
	struct passwd *pw;

	if (as_root) {
		if (name == NULL)
			name = "nobody";
		pw = getpwnam(name);
	} else {
		pw = getpwuid(geteuid());
		if (pw != NULL && name != NULL && strcmp(name, pw->pw_name) != 0) {
			*why = "pipe.user differs from the user undersmtpd runs as "
			    "(only root can switch users)";
			return -1;
		}
	}
	if (pw == NULL) {
		*why = "pipe user not found in the password database";
		return -1;
	}
	if (as_root && (pw->pw_uid == 0 || pw->pw_uid == forbidden_uid || pw->pw_gid == 0)) {
		*why = "pipe.user may not be root or the spool owner";
		return -1;
	}
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	str_copy(u->name, sizeof(u->name), pw->pw_name);
	str_copy(u->home, sizeof(u->home), pw->pw_dir ? pw->pw_dir : "/");
	str_copy(u->shell, sizeof(u->shell), pw->pw_shell && pw->pw_shell[0]
	    ? pw->pw_shell : "/bin/sh");
	return 0;
}

/*
 * slot_name - the part of a concurrency lock file's name that stands for one
 * alias: a readable prefix (letters and digits kept, the rest "_", at most 32)
 * and a 64-bit FNV-1a hash of the whole name, so that "a-b" and "a.b", or two
 * long names with a common prefix, get pools of their own.
 */
static void
slot_name(const char *alias, char out[52])
{
	uint64_t h = 14695981039346656037ULL;
	size_t o = 0;

	for (const char *p = alias; *p; p++) {
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
		if (o < 32)
			out[o++] = ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')) ? *p : '_';
	}
	out[o++] = '-';
	for (int shift = 60; shift >= 0; shift -= 4)
		out[o++] = "0123456789abcdef"[(h >> shift) & 0xf];
	out[o] = '\0';
}

/*
 * concurrency_slot - SPEC 7.1 max_concurrency across sessions: one of N
 * flock()ed files in spool_dir/tmp, for one alias (alias NULL: the pool of
 * all programs, pipe.max_concurrency).  Returns the locked fd, -2 when no
 * limit is set, or -1 when none became free before the deadline.
 */
static int
concurrency_slot(const struct delivery_ctx *s, const char *alias, long max, int64_t until)
{
	char path[4096], name[52];

	if (max <= 0)
		return -2;
	if (alias == NULL)
		str_copy(name, sizeof(name), "all");   /* slot_name always has a '-' */
	else
		slot_name(alias, name);
	for (;;) {
		for (long i = 0; i < max; i++) {
			int fd;

			if (str_fmt(path, sizeof(path), "%s/tmp/slot-%s-%ld.lock",
			    s->conf->spool_dir, name, i) < 0)
				return -1;
			fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
			if (fd < 0) {
				log_warn("open %s", path);
				return -1;
			}
			if (flock(fd, LOCK_EX | LOCK_NB) == 0)
				return fd;
			close(fd);
		}
		if (now_ms() >= until)
			return -1;
		sleep_ms(100);
	}
}

const struct pipe_conf *
delivery_pipe_conf(const struct conf *c, const struct route_result *r)
{
	const struct route_dest *d = route_pipe(r);

	return conf_pipe_for(c, d && !d->entry->re ? d->entry->name : NULL);
}

void
delivery_id(const unsigned char digest[32], const char *rcpt, char out[33])
{
	unsigned char d[32];
	unsigned int len = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	static const char hex[] = "0123456789abcdef";

	out[0] = '\0';
	if (md == NULL)
		return;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(md, rcpt, strlen(rcpt) + 1) == 1 &&
	    EVP_DigestUpdate(md, digest, 32) == 1 &&
	    EVP_DigestFinal_ex(md, d, &len) == 1) {
		for (size_t i = 0; i < 16; i++) {
			out[2 * i] = hex[d[i] >> 4];
			out[2 * i + 1] = hex[d[i] & 15];
		}
		out[32] = '\0';
	}
	EVP_MD_CTX_free(md);
}

/*
 * build_argv - the administrator's words; captures only inside single
 * elements, and never at the start of one as an option: a sender who
 * writes "-x" in an address must not add a switch to the program (SPEC 13).
 */
static int
build_argv(const struct alias_cmd *cmd, const struct alias_captures *caps,
    char **argv, size_t max, char *why, size_t whysize)
{
	size_t na = 0;

	for (char **a = cmd->argv; *a && na + 1 < max; a++) {
		char expanded[4096];

		if (!cmd->has_captures) {
			argv[na++] = xstrdup(*a);
			continue;
		}
		if (aliases_expand_arg(*a, caps, expanded, sizeof(expanded)) < 0) {
			snprintf(why, whysize, "argument %zu too long after substitution", na);
			goto fail;
		}
		if (expanded[0] == '-' && (*a)[0] != '-') {
			snprintf(why, whysize, "a regex capture would make argument %zu an "
			    "option", na);
			goto fail;
		}
		argv[na++] = xstrdup(expanded);
	}
	argv[na] = NULL;
	return 0;
fail:
	argv[na] = NULL;
	free_vector(argv);
	argv[0] = NULL;
	return -1;
}

static void
build_env(const struct delivery_values *v, const struct route_result *r,
    const struct pipe_conf *pc, const struct pipe_user *u, char **envp, size_t max)
{
	size_t n = 0;

	envp[0] = NULL;
	env_add(envp, &n, max, "PATH", pc->path);
	env_add(envp, &n, max, "HOME", u->home);
	env_add(envp, &n, max, "SHELL", u->shell);
	env_add(envp, &n, max, "USER", u->name);
	env_add(envp, &n, max, "LOGNAME", u->name);
	env_add(envp, &n, max, "SENDER", v->sender);
	env_add(envp, &n, max, "RECIPIENT", v->recipient);
	env_add(envp, &n, max, "ORIGINAL_RECIPIENT", v->recipient);
	env_add(envp, &n, max, "LOCAL", r->local);
	env_add(envp, &n, max, "DOMAIN", r->domain);
	env_add(envp, &n, max, "EXTENSION", r->extension);
	env_add(envp, &n, max, "CLIENT_ADDRESS", v->client_addr);
	env_add(envp, &n, max, "CLIENT_HELO", v->helo);
	env_add(envp, &n, max, "QUEUE_ID", v->queue_id);
	env_add(envp, &n, max, "DELIVERY_ID", v->delivery_id);
	for (size_t i = 1; i <= r->caps.n && i <= 9; i++) {
		char name[16];

		snprintf(name, sizeof(name), "MATCH_%zu", i);
		env_add(envp, &n, max, name, r->caps.num[i]);
	}
	for (size_t i = 0; i < r->caps.nnamed; i++) {
		char name[48];

		snprintf(name, sizeof(name), "MATCH_%s", r->caps.name[i]);
		env_add(envp, &n, max, name, r->caps.named[i]);
	}
}

/* fill_request - cmd's request: its argv and environment, as u, with pc's path and timeout. */
static void
fill_request(struct delivery_command *cmd, const struct pipe_conf *pc,
    const struct pipe_user *u, int as_root)
{
	str_copy(cmd->home, sizeof(cmd->home), u->home);
	cmd->req.argv = cmd->argv;
	cmd->req.envp = cmd->envp;
	cmd->req.path = pc->path;
	cmd->req.home = cmd->home;
	cmd->req.change_user = as_root;
	cmd->req.uid = u->uid;
	cmd->req.gid = u->gid;
	cmd->req.timeout = pc->timeout;
	cmd->req.stdin_fd = -1;
}

int
delivery_build(const struct conf *c, const struct route_result *r,
    const struct delivery_values *v, int as_root, uid_t forbidden_uid,
    struct delivery_command *cmd, char *why, size_t whysize)
{
	const struct route_dest *d = route_pipe(r);
	const struct pipe_conf *pc;
	struct pipe_user u;
	const char *uwhy = NULL;

	memset(cmd, 0, sizeof(*cmd));
	if (d == NULL) {
		snprintf(why, whysize, "<%s> is not a pipe alias", r->address);
		return -1;
	}
	pc = delivery_pipe_conf(c, r);
	str_copy(cmd->alias, sizeof(cmd->alias), d->entry->name);
	cmd->use_shell = d->target->cmd.use_shell;
	if (resolve_pipe_user(as_root, forbidden_uid, pc, &u, &uwhy) < 0) {
		snprintf(why, whysize, "alias %s (%s): %s", d->entry->name, d->source, uwhy);
		return -1;
	}
	if (build_argv(&d->target->cmd, &r->caps, cmd->argv, ARRAY_LEN(cmd->argv), why,
	    whysize) < 0)
		return -1;
	build_env(v, r, pc, &u, cmd->envp, ARRAY_LEN(cmd->envp));
	fill_request(cmd, pc, &u, as_root);
	return 0;
}

/* split_words - the filter's command at blanks into argv (the words are ours). */
static void
split_words(const char *command, char **argv, size_t max)
{
	size_t na = 0;

	for (const char *p = command; *p && na + 1 < max; ) {
		size_t len;

		p += strspn(p, " \t");
		len = strcspn(p, " \t");
		if (len == 0)
			break;
		argv[na] = xmalloc(len + 1);
		memcpy(argv[na], p, len);
		argv[na++][len] = '\0';
		p += len;
	}
	argv[na] = NULL;
}

int
delivery_build_filter(const struct filter_conf *f, const struct pipe_conf *pc,
    const struct delivery_values *v, int as_root, uid_t forbidden_uid,
    struct delivery_command *cmd, char *why, size_t whysize)
{
	struct pipe_user u;
	const char *uwhy = NULL;
	size_t n = 0;
	char **envp;

	memset(cmd, 0, sizeof(*cmd));
	envp = cmd->envp;
	if (f == NULL || f->command == NULL || f->command[0] != '/') {
		snprintf(why, whysize, "no filter to run");
		return -1;
	}
	str_copy(cmd->alias, sizeof(cmd->alias), "filter");
	if (resolve_pipe_user(as_root, forbidden_uid, pc, &u, &uwhy) < 0) {
		snprintf(why, whysize, "filter %s: %s", f->command, uwhy);
		return -1;
	}
	split_words(f->command, cmd->argv, ARRAY_LEN(cmd->argv));
	envp[0] = NULL;
	env_add(envp, &n, DELIVERY_MAX_ENV, "PATH", pc->path);
	env_add(envp, &n, DELIVERY_MAX_ENV, "HOME", u.home);
	env_add(envp, &n, DELIVERY_MAX_ENV, "SHELL", u.shell);
	env_add(envp, &n, DELIVERY_MAX_ENV, "USER", u.name);
	env_add(envp, &n, DELIVERY_MAX_ENV, "LOGNAME", u.name);
	env_add(envp, &n, DELIVERY_MAX_ENV, "SENDER", v->sender);
	env_add(envp, &n, DELIVERY_MAX_ENV, "RECIPIENT", v->recipient);
	env_add(envp, &n, DELIVERY_MAX_ENV, "RECIPIENTS", v->recipients && v->recipients[0]
	    ? v->recipients : v->recipient);
	env_add(envp, &n, DELIVERY_MAX_ENV, "CLIENT_ADDRESS", v->client_addr);
	env_add(envp, &n, DELIVERY_MAX_ENV, "CLIENT_HELO", v->helo);
	env_add(envp, &n, DELIVERY_MAX_ENV, "QUEUE_ID", v->queue_id);
	env_add(envp, &n, DELIVERY_MAX_ENV, "FILTER_REWRITE", f->rewrite ? "yes" : "no");
	fill_request(cmd, pc, &u, as_root);
	return 0;
}

void
delivery_command_free(struct delivery_command *cmd)
{
	free_vector(cmd->argv);
	free_vector(cmd->envp);
	memset(cmd->argv, 0, sizeof(cmd->argv));
	memset(cmd->envp, 0, sizeof(cmd->envp));
}

/*
 * run_here - build and run the command in this process: not started as
 * root, everything runs as ourselves (running_as_root without a launcher is
 * only the session fuzzer, tests/fuzz/fuzz_session.c).
 */
static void
run_here(const struct delivery_ctx *ctx, const struct delivery_job *job, int stdin_fd,
    struct pipe_result *res)
{
	struct delivery_command cmd;
	char why[300];

	if (delivery_build(ctx->conf, job->route, &job->v, ctx->ps.running_as_root,
	    ctx->ps.session_uid, &cmd, why, sizeof(why)) < 0) {
		log_warnx("%s: %s", job->v.queue_id, why);
		memset(res, 0, sizeof(*res));
		res->outcome = PIPE_REFUSED;
		str_copy(res->output, sizeof(res->output), why);
		return;
	}
	cmd.req.stdin_fd = stdin_fd;
	pipe_run(&cmd.req, res);
	delivery_command_free(&cmd);
}

/*
 * delivery_seen_before - the message's header already has "Delivered-To:" with
 * rcpt (SPEC 7: an RT auto-reply coming back).  Reads the header only, at
 * most DELIVERED_SCAN bytes of it, from the stored message (LF endings).
 */
#define DELIVERED_SCAN (256 * 1024)
int
delivery_seen_before(int msgfd, const char *rcpt)
{
	char *buf = xmalloc(DELIVERED_SCAN + 1);
	ssize_t n = pread(msgfd, buf, DELIVERED_SCAN, 0);
	size_t rlen = strlen(rcpt);
	int found = 0;

	if (n < 0)
		n = 0;
	buf[n] = '\0';
	for (char *line = buf; *line && *line != '\n' && !found;) {
		char *end = strchr(line, '\n'), *v;

		if (end == NULL)
			break;
		*end = '\0';
		if (strncasecmp(line, "delivered-to:", 13) == 0) {
			v = line + 13;
			while (*v == ' ' || *v == '\t')
				v++;
			while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
				*--end = '\0';
			found = strlen(v) == rlen && str_casecmp_ascii(v, rcpt) == 0;
		}
		line = end + 1;
	}
	free(buf);
	return found;
}

void
delivery_run(const struct delivery_ctx *ctx, const struct delivery_job *job,
    struct smtp_reply *out, char *relay, size_t relaysize, struct pipe_result *seen)
{
	const struct route_dest *d = route_pipe(job->route);
	const struct alias_cmd *cmd = &d->target->cmd;
	const struct pipe_conf *pc = delivery_pipe_conf(ctx->conf, job->route);
	const struct conf *c = ctx->conf;
	char how[160];
	struct pipe_result res;
	int64_t until = now_ms() + pc->timeout * 1000;
	int stdin_fd, all = -2, mine = -2;
	long left = 0;

	if (seen != NULL) {
		memset(seen, 0, sizeof(*seen));
		seen->outcome = PIPE_REFUSED;      /* until it runs */
	}
	/* Postfix's pipe says relay=SERVICE; ours is the alias (or its regex). */
	snprintf(relay, relaysize, "%s", d->entry->name);
	str_log_token(relay);
	/* SPEC 7: also for a program run from the queue (policy queue, retries). */
	for (size_t i = 0; !job->loop_checked && i < job->nrecipients; i++)
		if (delivery_seen_before(job->msgfd, job->recipients[i])) {
			log_warnx("%s: mail loop: already delivered to <%s>", job->v.queue_id,
			    job->recipients[i]);
			smtp_set_reply(out, 554, "5.4.6", "Mail loop: the message was already "
			    "delivered to this recipient");
			smtp_reply_append(out, " ", job->recipients[i]);
			return;
		}
	/* Issue 20: an open circuit breaker runs no program; a probe may. */
	if (!breaker_may_run(c, d->entry->name, pc, &left)) {
		char text[120];

		snprintf(text, sizeof(text), "Temporarily unavailable: the program of this "
		    "alias keeps failing; next try in %ld s (circuit breaker)", left);
		smtp_set_reply(out, 451, "4.3.0", text);
		log_info("%s: <%s>: %s", job->v.queue_id, job->recipients[0], text);
		return;
	}
	stdin_fd = pipe_make_input(job->msgfd, job->v.sender, job->recipients,
	    job->nrecipients);
	if (stdin_fd < 0) {
		int full = errno == ENOSPC || errno == EDQUOT;

		log_warn("%s: write the program's input", job->v.queue_id);
		smtp_set_reply(out, full ? 452 : 451, full ? "4.3.1" : "4.3.0",
		    "Local error: cannot write the program's input");
		return;
	}
	/*
	 * SPEC 7.1: the alias's own share (a block's max_concurrency), inside
	 * the pool of all programs (pipe.max_concurrency), across sessions.
	 */
	if (pc != &c->pipe)
		mine = concurrency_slot(ctx, d->entry->name, pc->max_concurrency, until);
	if (mine != -1)
		all = concurrency_slot(ctx, NULL, c->pipe.max_concurrency, until);
	if (mine == -1 || all == -1) {
		smtp_set_reply(out, 451, "4.3.0", "Too many concurrent deliveries to "
		    "programs; try again later");
		stats_program(c, d->entry->name, out, 0);
	} else {
		int64_t started = now_ms();

		if (ctx->ps.launcher_fd >= 0)
			launcher_request(ctx->ps.launcher_fd, &job->v, stdin_fd,
			    pc->timeout * 2 + 10, &res);   /* waiting its turn, then running */
		else
			run_here(ctx, job, stdin_fd, &res);
		pipe_reply(&res, pc->tempfail, pc->ntempfail, cmd->use_shell, out);
		stats_program(c, d->entry->name, out, now_ms() - started);
		breaker_report(c, d->entry->name, pc, out->code);
		if (seen != NULL)
			*seen = res;
		pipe_describe(&res, how, sizeof(how));
		log_debug("%s: program %s: %s, %llu bytes of output", job->v.queue_id,
		    cmd->argv[0], how, res.output_bytes);
	}
	if (all >= 0)
		close(all);
	if (mine >= 0)
		close(mine);
	close(stdin_fd);
}
