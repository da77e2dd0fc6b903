/*
 * check.c - the configuration checked against the machine.  See check.h.
 */
#define _GNU_SOURCE   /* setresuid(2): the access test runs as the user it is for */
#include "check.h"
#include "log.h"
#include "tls.h"

#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef RAMFS_MAGIC
#define RAMFS_MAGIC 0x858458f6
#endif

#define CERT_WARN_DAYS 14
#define DEFAULT_PIPE_PATH "/usr/local/bin:/usr/bin:/bin"

/* existing_dir - path, or the nearest directory above it that exists. */
static void
existing_dir(const char *path, char *out, size_t size)
{
	struct stat st;

	str_copy(out, size, path);
	while (stat(out, &st) < 0 && strcmp(out, "/") != 0) {
		char *slash = strrchr(out, '/');

		if (slash == NULL)
			break;
		if (slash == out)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
}

/*
 * barrier_off - the mount holding dev was mounted with write barriers off
 * (ext3/ext4 "barrier=0", "nobarrier"): an fsync returns before the disk
 * has the data.  From /proc/self/mountinfo, whose third field is the
 * device's major:minor.
 */
static int
barrier_off(dev_t dev, char *opts, size_t optsize)
{
	FILE *fp = fopen("/proc/self/mountinfo", "re");
	char line[4096], want[32];
	int found = 0;

	if (fp == NULL)
		return 0;
	snprintf(want, sizeof(want), "%u:%u", major(dev), minor(dev));
	while (!found && fgets(line, sizeof(line), fp) != NULL) {
		char *save = NULL, *tok;
		int field = 0, ours = 0;

		/* Fields by spaces; the mount's and the filesystem's options by commas. */
		for (tok = strtok_r(line, " ,\n", &save); tok && !found;
		    tok = strtok_r(NULL, " ,\n", &save), field++) {
			if (field == 2)
				ours = strcmp(tok, want) == 0;
			else if (field > 2 && !ours)
				break;
			else if (field > 4 && (strcmp(tok, "nobarrier") == 0 ||
			    strcmp(tok, "barrier=0") == 0)) {
				str_copy(opts, optsize, tok);
				found = 1;
			}
		}
	}
	fclose(fp);
	return found;
}

int
check_spool_durable(const struct conf *c, char *why, size_t whysize)
{
	char dir[4096], tmp[4200], queue[4200], opt[64];
	const char *preload = getenv("LD_PRELOAD");
	struct statfs fs;
	struct stat st, tst, qst;

	existing_dir(c->spool_dir, dir, sizeof(dir));
	if (statfs(dir, &fs) < 0 || stat(dir, &st) < 0) {
		snprintf(why, whysize, "statfs %s: %s", dir, strerror(errno));
		return -1;
	}
	if ((unsigned long)fs.f_type == (unsigned long)TMPFS_MAGIC ||
	    (unsigned long)fs.f_type == (unsigned long)RAMFS_MAGIC) {
		snprintf(why, whysize, "spool %s is on %s: mail acknowledged with 250 is "
		    "lost at the next reboot or power failure", c->spool_dir,
		    (unsigned long)fs.f_type == (unsigned long)TMPFS_MAGIC ? "tmpfs" : "ramfs");
		return -1;
	}
	if (barrier_off(st.st_dev, opt, sizeof(opt))) {
		snprintf(why, whysize, "spool %s is on a filesystem mounted with %s: fsync "
		    "returns before the disk holds the mail", c->spool_dir, opt);
		return -1;
	}
	if (preload != NULL && strstr(preload, "eatmydata") != NULL) {
		snprintf(why, whysize, "LD_PRELOAD holds libeatmydata: every fsync of the "
		    "spool is skipped");
		return -1;
	}
	/* The commit links tmp/ files into queue/: one filesystem, or EXDEV. */
	snprintf(tmp, sizeof(tmp), "%s/tmp", c->spool_dir);
	snprintf(queue, sizeof(queue), "%s/queue", c->spool_dir);
	if (stat(tmp, &tst) == 0 && stat(queue, &qst) == 0 && tst.st_dev != qst.st_dev) {
		snprintf(why, whysize, "%s and %s are on different filesystems: no message "
		    "can be committed", tmp, queue);
		return -2;
	}
	return 0;
}

/* where - the configuration file's name for a report. */
static const char *
where(const struct conf *c)
{
	return c->file ? c->file : "(defaults)";
}

/*
 * access_as - may account pw reach path with mode (X_OK, R_OK)?  Asked of
 * the kernel in a child that has become that account, so that directory
 * permissions, groups and ACLs count as they will at delivery.  0, or the
 * errno.
 */
static int
access_as(const struct passwd *pw, const char *path, int mode)
{
	pid_t pid;
	int status;

	if (geteuid() != 0 || pw->pw_uid == geteuid())
		return access(path, mode) == 0 ? 0 : errno;
	pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0) {
		/* Its primary group alone, as a delivery and a queue run have it. */
		if (setgroups(1, &pw->pw_gid) < 0 ||
		    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
			_exit(255);
		_exit(access(path, mode) == 0 ? 0 : (errno & 0x7f));
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 255)
		return EPERM;
	return WEXITSTATUS(status);
}

/* check_user - name exists; 0, or -1 after an error at file:line. */
static int
check_user(const struct conf *c, const char *name, int line, const char *what,
    struct diag *errors, struct diag *warnings)
{
	struct passwd *pw = getpwnam(name);

	if (pw == NULL) {
		diag_error(errors, where(c), line, "%s \"%s\" does not exist", what, name);
		return -1;
	}
	if (strcmp(what, "user") != 0 && pw->pw_uid == 0)
		diag_error(warnings, where(c), line, "%s \"%s\" is root: pipe deliveries "
		    "will be refused (451)", what, name);
	return 0;
}

static void
check_users(const struct conf *c, struct diag *errors, struct diag *warnings)
{
	check_user(c, c->user, conf_line(c, "root", NULL, "user"), "user", errors, warnings);
	if (c->pipe.user != NULL)
		check_user(c, c->pipe.user, conf_line(c, "pipe", NULL, "user"), "pipe.user",
		    errors, warnings);
	for (size_t i = 0; i < c->nalias_overrides; i++) {
		const struct alias_conf *ac = &c->alias_overrides[i];
		int line = conf_line(c, "alias", ac->name, "user");

		/* An override without a user of its own repeats pipe.user's. */
		if (ac->pipe.user != NULL && line > 0)
			check_user(c, ac->pipe.user, line, "alias user", errors, warnings);
	}
}

/*
 * find_runnable - argv0 as the launcher finds it: as written, or the first
 * file in path the user may execute (execve moves on past EACCES).  1:
 * found, in out; 0: files exist but the user may run none (out: the first,
 * err: why); -1: no such file anywhere.
 */
static int
find_runnable(const char *argv0, const char *path, const struct passwd *pw, char *out,
    size_t size, int *err)
{
	char cand[4096];
	int seen = 0;

	for (const char *dir = path; dir && *dir; ) {
		const char *end = strchr(dir, ':');
		size_t len = end ? (size_t)(end - dir) : strlen(dir);
		struct stat st;
		int e;

		if (strchr(argv0, '/') != NULL)
			str_copy(cand, sizeof(cand), argv0);
		else if (snprintf(cand, sizeof(cand), "%.*s/%s", (int)len, dir, argv0) >=
		    (int)sizeof(cand))
			cand[0] = '\0';
		dir = strchr(argv0, '/') != NULL ? NULL : end ? end + 1 : NULL;
		if (cand[0] == '\0' || stat(cand, &st) < 0)
			continue;
		e = !S_ISREG(st.st_mode) ? EISDIR : pw ? access_as(pw, cand, X_OK) : 0;
		if (e == 0) {
			str_copy(out, size, cand);
			return 1;
		}
		if (!seen) {
			str_copy(out, size, cand);
			*err = e;
			seen = 1;
		}
	}
	return seen ? 0 : -1;
}

/* check_program - one pipe target: its program exists and its user may run it. */
static void
check_program(const struct conf *c, const struct alias_entry *e,
    const struct alias_target *t, struct diag *errors)
{
	const struct pipe_conf *pc = conf_pipe_for(c, e->name);
	const char *argv0 = t->cmd.argv[0];
	const char *user = geteuid() == 0 ? (pc->user ? pc->user : "nobody") : NULL;
	const char *path = pc->path ? pc->path : DEFAULT_PIPE_PATH;
	struct passwd *pw = user ? getpwnam(user) : getpwuid(geteuid());
	char found[4096];
	int err = 0, rc;

	/* A program chosen by a capture ($1) is known only at delivery. */
	if (t->cmd.has_captures && strchr(argv0, '$') != NULL)
		return;
	/* An account that does not exist is reported with the accounts. */
	rc = find_runnable(argv0, strchr(argv0, '/') ? "/" : path, pw, found, sizeof(found),
	    &err);
	if (rc < 0)
		diag_error(errors, t->file, t->line, "%s: program %s not found%s%s", e->name,
		    argv0, strchr(argv0, '/') ? "" : " in ", strchr(argv0, '/') ? "" : path);
	else if (rc == 0 && err == EISDIR)
		diag_error(errors, t->file, t->line, "%s: %s is not a regular file", e->name,
		    found);
	else if (rc == 0)
		diag_error(errors, t->file, t->line, "%s: %s is not executable by %s: %s",
		    e->name, found, pw ? pw->pw_name : "us", strerror(err));
}

/*
 * check_filter - a content filter's program (its first word) exists and the
 * pipe user of pc may run it.
 */
static void
check_filter(const struct conf *c, const struct filter_conf *f, const struct pipe_conf *pc,
    int line, const char *what, struct diag *errors)
{
	const char *user = geteuid() == 0 ? (pc->user ? pc->user : "nobody") : NULL;
	struct passwd *pw = user ? getpwnam(user) : getpwuid(geteuid());
	char argv0[1024], found[4096];
	size_t len;
	int err = 0, rc;

	if (f->command == NULL)
		return;
	len = strcspn(f->command, " \t");
	snprintf(argv0, sizeof(argv0), "%.*s", (int)(len < sizeof(argv0) ? len :
	    sizeof(argv0) - 1), f->command);
	rc = find_runnable(argv0, "/", pw, found, sizeof(found), &err);
	if (rc < 0)
		diag_error(errors, where(c), line, "%s: program %s not found", what, argv0);
	else if (rc == 0 && err == EISDIR)
		diag_error(errors, where(c), line, "%s: %s is not a regular file", what, found);
	else if (rc == 0)
		diag_error(errors, where(c), line, "%s: %s is not executable by %s: %s", what,
		    found, pw ? pw->pw_name : "us", strerror(err));
}

static void
check_filters(const struct conf *c, struct diag *errors)
{
	check_filter(c, &c->filter, &c->pipe, conf_line(c, "root", NULL, "filter"), "filter",
	    errors);
	for (size_t i = 0; i < c->nalias_overrides; i++)
		check_filter(c, &c->alias_overrides[i].filter, &c->alias_overrides[i].pipe,
		    conf_line(c, "alias", c->alias_overrides[i].name, "filter"), "alias filter",
		    errors);
	/* The smarthosts share theirs (conf.c): the first block's is the one. */
	if (c->nsmarthosts > 0)
		check_filter(c, &c->smarthosts[0].filter, &c->pipe, conf_line(c, "smarthost",
		    c->smarthosts[0].name, "filter"), "smarthost filter", errors);
}

static void
check_entries(const struct conf *c, const struct alias_entry *v, size_t n,
    struct diag *errors)
{
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < v[i].ntargets; k++)
			if (v[i].targets[k].kind == TARGET_PIPE && v[i].targets[k].trusted)
				check_program(c, &v[i], &v[i].targets[k], errors);
}

/* check_host - a smarthost's name resolves now (a warning: DNS may be down). */
static void
check_host(const struct conf *c, const struct smarthost_conf *s, struct diag *warnings)
{
	struct addrinfo hints, *res = NULL;
	char port[16];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%ld", s->port);
	rc = getaddrinfo(s->host, port, &hints, &res);
	if (rc != 0)
		diag_error(warnings, where(c), conf_line(c, "smarthost", s->name, "host"),
		    "smarthost \"%s\": host %s does not resolve: %s", s->name, s->host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	freeaddrinfo(res);
}

/* check_readable - path can be read by the spool user (queue runs read it). */
static void
check_readable(const struct conf *c, const char *path, int line, const char *what,
    struct diag *errors)
{
	struct passwd *pw = geteuid() == 0 ? getpwnam(c->user) : getpwuid(geteuid());
	int err = pw ? access_as(pw, path, R_OK) : (access(path, R_OK) == 0 ? 0 : errno);

	if (err != 0)
		diag_error(errors, where(c), line, "%s %s is not readable by %s: %s", what,
		    path, pw ? pw->pw_name : "us", strerror(err));
}

/*
 * check_rt_queues - the token is readable by the spool user (sessions and
 * the daemon's fetch run as that user), RT's host resolves (a warning: DNS
 * may be down now), and the list fetched so far, if any.
 */
static void
check_rt_queues(const struct conf *c, struct diag *errors, struct diag *warnings)
{
	int line = conf_line(c, "rt_queues", NULL, "url");
	struct addrinfo hints, *res = NULL;
	struct url u;
	int rc;

	if (c->rt.token_file != NULL)
		check_readable(c, c->rt.token_file, conf_line(c, "rt_queues", NULL,
		    "token_file"), "rt_queues token_file", errors);
	if (url_parse(c->rt.url, &u) < 0)
		return;
	if (u.tls && c->rt.ca_file != NULL)
		check_readable(c, c->rt.ca_file, conf_line(c, "rt_queues", NULL, "ca_file"),
		    "rt_queues ca_file", errors);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(u.host, u.port, &hints, &res);
	if (rc != 0)
		diag_error(warnings, where(c), line, "rt_queues: host %s does not resolve: %s",
		    u.host, gai_strerror(rc));
	else
		freeaddrinfo(res);
}

/* check_token_command - the OAuth2 helper can be run by the spool user. */
static void
check_token_command(const struct conf *c, const struct smarthost_conf *s,
    struct diag *errors)
{
	struct passwd *pw = geteuid() == 0 ? getpwnam(c->user) : getpwuid(geteuid());
	char prog[4096];
	int err;

	str_copy(prog, sizeof(prog), s->auth_token_command);
	prog[strcspn(prog, " \t")] = '\0';
	err = pw ? access_as(pw, prog, X_OK) : (access(prog, X_OK) == 0 ? 0 : errno);
	if (err != 0)
		diag_error(errors, where(c), conf_line(c, "smarthost", s->name,
		    "auth_token_command"), "auth_token_command %s cannot be run by %s: %s",
		    prog, pw ? pw->pw_name : "us", strerror(err));
}

/* check_certificate - the server certificate loads and is in date. */
static void
check_certificate(const struct conf *c, struct diag *errors, struct diag *warnings)
{
	int line = conf_line(c, "tls", NULL, "cert_file");
	char subject[512], why[600];
	time_t not_after, now = time(NULL);

	if (tls_cert_info(c->tls.cert_file, &not_after, subject, sizeof(subject), why,
	    sizeof(why)) < 0) {
		diag_error(errors, where(c), line, "tls.cert_file: %s", why);
		return;
	}
	if (not_after < now)
		diag_error(errors, where(c), line, "tls.cert_file %s (%s) expired %ld days ago",
		    c->tls.cert_file, subject, (long)((now - not_after) / 86400));
	else if (not_after - now < CERT_WARN_DAYS * 86400L)
		diag_error(warnings, where(c), line, "tls.cert_file %s (%s) expires in %ld "
		    "days", c->tls.cert_file, subject, (long)((not_after - now) / 86400));
}

int
check_spool_at_start(const struct conf *c)
{
	char why[4400];
	int rc = check_spool_durable(c, why, sizeof(why));

	if (rc == 0)
		return 0;
	if (rc == -2 || c->durable_spool_required) {
		log_warnx("refusing to start: %s%s", why, rc == -1 ?
		    " (durable_spool = required)" : "");
		return -1;
	}
	log_warnx("%s (durable_spool = required would refuse to start)", why);
	return 0;
}

void
check_world(const struct conf *c, const struct aliases *a, struct diag *errors,
    struct diag *warnings)
{
	char why[4400];

	int rc = check_spool_durable(c, why, sizeof(why));

	if (rc < 0)
		diag_error(rc == -2 || c->durable_spool_required ? errors : warnings, where(c),
		    conf_line(c, "root", NULL, "spool_dir"), "%s%s", why,
		    rc == -1 && c->durable_spool_required ? " (durable_spool = required)" : "");
	check_users(c, errors, warnings);
	check_filters(c, errors);
	if (a != NULL) {
		check_entries(c, a->literal, a->nliteral, errors);
		check_entries(c, a->regex, a->nregex, errors);
	}
	for (size_t i = 0; i < c->nsmarthosts; i++) {
		const struct smarthost_conf *s = &c->smarthosts[i];

		check_host(c, s, warnings);
		if (s->ca_file != NULL)
			check_readable(c, s->ca_file, conf_line(c, "smarthost", s->name,
			    "ca_file"), "ca_file", errors);
		if (s->auth_password_file != NULL)
			check_readable(c, s->auth_password_file, conf_line(c, "smarthost",
			    s->name, "auth_password_file"), "auth_password_file", errors);
		if (s->auth_token_command != NULL)
			check_token_command(c, s, errors);
	}
	if (c->tls.cert_file != NULL)
		check_certificate(c, errors, warnings);
	if (c->rt.url != NULL)
		check_rt_queues(c, errors, warnings);
}
