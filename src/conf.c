/*
 * conf.c - the configuration schema (SPEC section 3) and its validation.
 *
 * The option table below is the contract's list of keys.  Values that need
 * checking are checked by libconfuse validate callbacks while the file is
 * parsed, so each error carries the line it is on; they record the error and
 * let parsing go on, so one run reports every semantic error (libconfuse
 * itself stops at the first *syntax* error).  After a clean parse the values
 * are copied into a struct conf and the cfg_t is freed.
 */
#include "conf.h"
#include "log.h"

#include <arpa/inet.h>
#include <confuse.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "safepath.h"

#define CONF_MAX_FILE (1024 * 1024)

/*
 * libconfuse callbacks carry no user pointer, so the diagnostics sink of the
 * parse in progress (and the file name, which sub-sections do not know, and
 * the last message, to drop the repeats libconfuse causes by validating a
 * list once per element) live here for the duration of one conf_load().
 */
#define CONF_WHERE_MAX 256

static struct {
	struct diag *diag;
	const char *file;
	char last[512];
	int last_line;
	struct conf_where where[CONF_WHERE_MAX];   /* the lines of checked keys */
	size_t nwhere;
} parse;

/*
 * note_line - remember on which line the file set this option, for the
 * checks that run after the parse (--check-config: an account, a program,
 * a host name, a certificate) and report file:line too.
 */
static void
note_line(cfg_t *cfg, cfg_opt_t *opt)
{
	struct conf_where *w;

	if (parse.nwhere >= CONF_WHERE_MAX || cfg->line <= 0)
		return;
	w = &parse.where[parse.nwhere];
	if (str_fmt(w->key, sizeof(w->key), "%s/%s/%s", cfg->name,
	    cfg->title ? cfg->title : "", opt->name) < 0)
		return;
	w->line = cfg->line;
	parse.nwhere++;
}

static void conf_errfunc(cfg_t *cfg, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void
conf_errfunc(cfg_t *cfg, const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (parse.diag == NULL)
		return;
	if (cfg->line == parse.last_line && strcmp(msg, parse.last) == 0)
		return;
	parse.last_line = cfg->line;
	str_copy(parse.last, sizeof(parse.last), msg);
	diag_error(parse.diag, parse.file, cfg->line, "%s", msg);
}

/*
 * strip_comments - blank out '#' and '//' comments (outside quotes), and the
 * text of C comments, keeping every newline.  libconfuse 3.3 miscounts lines
 * after a comment, which would put wrong line numbers in every message.
 */
static void
strip_comments(char *text)
{
	char quote = 0;

	for (char *p = text; *p; p++) {
		if (quote) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == quote)
				quote = 0;
			continue;
		}
		if (*p == '"' || *p == '\'') {
			quote = *p;
		} else if (*p == '#' || (*p == '/' && p[1] == '/')) {
			while (*p && *p != '\n')
				*p++ = ' ';
			if (!*p)
				break;
		} else if (*p == '/' && p[1] == '*') {
			*p++ = ' ';
			*p = ' ';
			while (p[1] && !(p[1] == '*' && p[2] == '/')) {
				p++;
				if (*p != '\n')
					*p = ' ';
			}
			if (p[1]) {
				p[1] = p[2] = ' ';
				p += 2;
			}
		}
	}
}

/*
 * open_conf_file - the file to read; NULL after reporting.  Read as root
 * (the launcher re-reads it), it says which accounts programs run as: it
 * must be root's, writable by no one else, and reached through no link
 * another account could have placed (safepath.h).
 */
static FILE *
open_conf_file(const char *path, struct diag *d)
{
	char why[600];
	struct stat st;
	FILE *fp;
	int fd;

	if (geteuid() != 0) {
		if ((fp = fopen(path, "r")) == NULL)
			diag_error(d, path, 0, "cannot open: %s", strerror(errno));
		return fp;
	}
	fd = safepath_open_file(path, O_RDONLY | O_NOCTTY, 0, why, sizeof(why));
	if (fd < 0) {
		diag_error(d, path, 0, "cannot open %s: %s", why, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		diag_error(d, path, 0, "owned by uid %u or writable by group or others: "
		    "not read as root (chown root, chmod go-w)", (unsigned)st.st_uid);
		close(fd);
		return NULL;
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		diag_error(d, path, 0, "cannot open: %s", strerror(errno));
		close(fd);
	}
	return fp;
}

/* read_conf_file - the whole file, NUL-terminated; NULL after reporting. */
static char *
read_conf_file(const char *path, struct diag *d)
{
	FILE *fp = open_conf_file(path, d);
	struct stat st;
	char *buf;
	size_t n = 0, cap = 4096;

	if (fp == NULL)
		return NULL;
	/*
	 * A buffer the file's size (one byte more, to see the end), grown while
	 * a file that is not regular or grew keeps filling it: a configuration
	 * load does not cost a megabyte.
	 */
	if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) && st.st_size < CONF_MAX_FILE)
		cap = (size_t)st.st_size + 1;
	buf = xmalloc(cap + 1);
	while ((n += fread(buf + n, 1, cap - n, fp)) == cap && cap <= CONF_MAX_FILE) {
		cap = cap > CONF_MAX_FILE / 2 ? CONF_MAX_FILE + 1 : cap * 2;
		buf = xreallocarray(buf, cap + 1, 1);
	}
	if (ferror(fp) || n > CONF_MAX_FILE) {
		diag_error(d, path, 0, ferror(fp) ? "cannot read" : "file larger than 1 MiB");
		fclose(fp);
		free(buf);
		return NULL;
	}
	fclose(fp);
	buf[n] = '\0';
	if (memchr(buf, '\0', n) != NULL) {
		diag_error(d, path, 0, "file contains a NUL byte");
		free(buf);
		return NULL;
	}
	return buf;
}

/* Validators: report with file:line and return 0 so parsing continues. */

static void
bad_value(cfg_t *cfg, cfg_opt_t *opt, const char *value, const char *why)
{
	cfg_error(cfg, "%s: bad value '%s': %s", opt->name, value, why);
}

static int
validate_size(cfg_t *cfg, cfg_opt_t *opt)
{
	uint64_t v;
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s != NULL && parse_size(s, &v) < 0)
		bad_value(cfg, opt, s, "expected a size such as 512k, 25M or 1G");
	return 0;
}

static int
validate_duration(cfg_t *cfg, cfg_opt_t *opt)
{
	long v;
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s != NULL && (parse_duration(s, &v) < 0 || v == 0))
		bad_value(cfg, opt, s, "expected a duration such as 30s, 5m, 1h or 5d");
	return 0;
}

/* validate_duration_or_off - a duration, or 0 for "off". */
static int
validate_duration_or_off(cfg_t *cfg, cfg_opt_t *opt)
{
	long v;
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s != NULL && parse_duration(s, &v) < 0)
		bad_value(cfg, opt, s, "expected a duration such as 30s, 5m, 1h or 5d, or 0");
	return 0;
}

/* check_range - the option's integer lies in [min, max]. */
static int
check_range(cfg_t *cfg, cfg_opt_t *opt, long min, long max, const char *what)
{
	long v = cfg_opt_getnint(opt, 0);

	if (v < min || v > max) {
		char text[32], why[96];

		snprintf(text, sizeof(text), "%ld", v);
		snprintf(why, sizeof(why), "expected %s from %ld to %ld", what, min, max);
		bad_value(cfg, opt, text, why);
	}
	return 0;
}

static int
validate_positive(cfg_t *cfg, cfg_opt_t *opt)
{
	return check_range(cfg, opt, 1, 1000000, "a number");
}

static int
validate_queue_concurrency(cfg_t *cfg, cfg_opt_t *opt)
{
	return check_range(cfg, opt, 1, CONF_QUEUE_MAX_CONCURRENCY, "a number");
}

static int
validate_nonnegative(cfg_t *cfg, cfg_opt_t *opt)
{
	return check_range(cfg, opt, 0, 1000000, "a number");
}

static int
validate_port(cfg_t *cfg, cfg_opt_t *opt)
{
	return check_range(cfg, opt, 1, 65535, "a port");
}

static int
validate_cidrs(cfg_t *cfg, cfg_opt_t *opt)
{
	struct cidr c;
	unsigned i = cfg_opt_size(opt);

	/* Called once per element as the list grows: check the newest one. */
	if (i > 0 && cidr_parse(cfg_opt_getnstr(opt, i - 1), &c) < 0)
		bad_value(cfg, opt, cfg_opt_getnstr(opt, i - 1),
		    "expected a network such as 192.0.2.0/24 or 2001:db8::/32");
	return 0;
}

/*
 * host_ok - an IPv4 address, an IPv6 address, or a host name: a name made
 * of digits and dots must be a valid IPv4 address (999.1.2.3 is not).
 */
static int
host_ok(const char *h, size_t len)
{
	char buf[ADDR_DOMAIN_MAX + 1];
	unsigned char bin[16];

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, h, len);
	buf[len] = '\0';
	if (strchr(buf, ':') != NULL)
		return inet_pton(AF_INET6, buf, bin) == 1;
	if (strspn(buf, "0123456789.") == len)
		return inet_pton(AF_INET, buf, bin) == 1;
	return addr_domain_valid(buf, 0);
}

/* listen_ok - "host:port", "[v6]:port", optionally followed by " proxy". */
static int
listen_ok(const char *s)
{
	const char *colon;
	char *end;
	long port;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':' ||
		    !host_ok(s + 1, (size_t)(close - s - 1)) || memchr(s + 1, ':',
		    (size_t)(close - s - 1)) == NULL)
			return 0;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || colon == s || !host_ok(s, (size_t)(colon - s)))
			return 0;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || port < 1 || port > 65535)
		return 0;
	return *end == '\0' || strcmp(end, " proxy") == 0;
}

static int
validate_listen(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned i = cfg_opt_size(opt);

	if (i > 0 && !listen_ok(cfg_opt_getnstr(opt, i - 1)))
		bad_value(cfg, opt, cfg_opt_getnstr(opt, i - 1),
		    "expected host:port or [v6 address]:port, optionally followed by ' proxy'");
	return 0;
}

static int
validate_domains(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned i = cfg_opt_size(opt);
	char d[ADDR_DOMAIN_MAX + 2];

	if (i == 0)
		return 0;
	/* One trailing dot (the absolute form) names the same domain. */
	if (str_copy(d, sizeof(d), cfg_opt_getnstr(opt, i - 1)) == 0 && d[0] &&
	    d[strlen(d) - 1] == '.')
		d[strlen(d) - 1] = '\0';
	if (!addr_domain_valid(d, 0))
		bad_value(cfg, opt, cfg_opt_getnstr(opt, i - 1), "not a domain name");
	return 0;
}

/*
 * validate_hostname - it goes into the greeting, EHLO, Received: and
 * Message-ID:, so it must be a domain name as RFC 5321 writes one: not
 * empty, no address literal, no trailing dot, no white space or CR LF.
 */
/* validate_notify - an address, or a local name (an alias of this host). */
static int
validate_notify(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);
	struct addr a;

	if (s != NULL && (s[0] == '\0' || strlen(s) > 200 ||
	    (strchr(s, '@') != NULL ? addr_parse_plain(s, &a) < 0 || a.domain[0] == '\0'
	    : strcspn(s, " \t\"<>()[]\\,;:") != strlen(s))))
		bad_value(cfg, opt, s, "expected an address, or the name of a local alias");
	return 0;
}

/*
 * verify_template - the X of "rt_queue(X)" or 'rt_queue("X")' into out; 0, or
 * -1 when s is not that form.
 */
int
conf_verify_template(const char *s, char *out, size_t size)
{
	size_t len;

	if (strncmp(s, "rt_queue(", 9) != 0)
		return -1;
	s += 9;
	len = strlen(s);
	if (len < 2 || s[len - 1] != ')')
		return -1;
	len--;
	if (s[0] == '"') {
		if (len < 3 || s[len - 1] != '"')
			return -1;
		s++;
		len -= 2;
	}
	if (len == 0 || len >= size || memchr(s, '"', len) || memchr(s, '(', len) ||
	    memchr(s, ')', len))
		return -1;
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

static int
validate_verify(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);
	char t[256];

	note_line(cfg, opt);
	if (s != NULL && strcmp(s, "rt_queue") == 0)
		bad_value(cfg, opt, s, "quote the whole value: verify = "
		    "'rt_queue(\"${queue}\")'");
	else if (s != NULL && conf_verify_template(s, t, sizeof(t)) < 0)
		bad_value(cfg, opt, s, "expected rt_queue(\"${name}\"), a queue name or a "
		    "capture of the alias's regex");
	return 0;
}

/* validate_rt_url - http:// or https://, a host, an optional port and path. */
static int
validate_rt_url(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);
	struct url u;

	note_line(cfg, opt);
	if (s != NULL && url_parse(s, &u) < 0)
		bad_value(cfg, opt, s, "expected http://host[:port]/path/ or https://...");
	return 0;
}

/* validate_noted - nothing to check but its line, for a later check. */
static int
validate_noted(cfg_t *cfg, cfg_opt_t *opt)
{
	note_line(cfg, opt);
	return 0;
}

/*
 * validate_filter - "/path/program args": an absolute program, words split
 * at blanks (no shell, no quoting), or "" for no filter at all.
 */
static int
validate_filter(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);
	size_t words = 0;

	note_line(cfg, opt);
	if (s == NULL || s[0] == '\0')
		return 0;
	for (const char *p = s; *p; ) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		words++;
		p += strcspn(p, " \t");
	}
	if (s[0] != '/')
		bad_value(cfg, opt, s, "expected an absolute program path and its arguments "
		    "(\"\" for none)");
	else if (strlen(s) > 1000 || words > FILTER_MAX_WORDS)
		bad_value(cfg, opt, s, "too long: a wrapper script can hold more");
	else if (strcspn(s, "\"'`$|;&<>\\") != strlen(s))
		bad_value(cfg, opt, s, "no shell runs the filter: quotes, '$', '|', ';', "
		    "'&', '<', '>' and '\\' mean nothing here; use a wrapper script");
	return 0;
}

static int
validate_hostname(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s != NULL && (s[0] == '[' || !addr_domain_valid(s, 0)))
		bad_value(cfg, opt, s, "not a domain name (such as mail.example.com)");
	return 0;
}

static int
validate_address(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);
	struct addr a;

	if (s != NULL && (addr_parse_plain(s, &a) < 0 || a.domain[0] == '\0'))
		bad_value(cfg, opt, s, "expected an address such as user@example.com");
	return 0;
}

static int
validate_host(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	note_line(cfg, opt);
	if (s != NULL && !host_ok(s, strlen(s)))
		bad_value(cfg, opt, s, "expected a host name or an IP address");
	return 0;
}

static int
validate_ipv6_prefix(cfg_t *cfg, cfg_opt_t *opt)
{
	return check_range(cfg, opt, 1, 128, "a prefix length");
}

/* validate_protocols - TLS versions, as OpenSSL names them. */
static int
validate_protocols(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s != NULL && conf_tls_protocols(s, NULL, NULL) < 0)
		bad_value(cfg, opt, s, "expected TLS versions among TLSv1 TLSv1.1 TLSv1.2 "
		    "TLSv1.3, separated by spaces");
	return 0;
}

static int
validate_delimiter(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s == NULL)
		return 0;
	for (const char *p = s; *p; p++)
		if (!strchr("+-_=.#~", *p))
			bad_value(cfg, opt, s, "use characters from \"+-_=.#~\"");
	if (strlen(s) > 8)
		bad_value(cfg, opt, s, "at most 8 characters");
	return 0;
}

static int
validate_choice(cfg_t *cfg, cfg_opt_t *opt, const char *const *choices)
{
	const char *s = cfg_opt_getnstr(opt, 0);
	char want[128] = "";

	if (s == NULL)
		return 0;
	for (size_t i = 0; choices[i]; i++) {
		if (strcmp(s, choices[i]) == 0)
			return 0;
		strncat(want, i ? " | " : "", sizeof(want) - strlen(want) - 1);
		strncat(want, choices[i], sizeof(want) - strlen(want) - 1);
	}
	bad_value(cfg, opt, s, want);
	return 0;
}

static const char *const policy_names[] = {"sync", "queue", "sync-then-queue", NULL};
static const char *const unknown_names[] = {"reject", "relay", NULL};
static const char *const tls_names[] = {"none", "may", "starttls", "tls", NULL};

static int
validate_policy(cfg_t *cfg, cfg_opt_t *opt)
{
	return validate_choice(cfg, opt, policy_names);
}

/* validate_metrics_listen - "host:port", "[v6]:port", a port, or "unix:/path". */
static int
validate_metrics_listen(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0), *port;

	if (s == NULL)
		return 0;
	if (strncmp(s, "unix:", 5) == 0) {
		if (s[5] != '/' || strlen(s + 5) >= 108)
			bad_value(cfg, opt, s, "expected unix:/absolute/path (at most 107 bytes)");
		return 0;
	}
	port = strrchr(s, ':');
	port = port ? port + 1 : s;
	if (port[0] == '\0' || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port) ||
	    atol(port) < 1 ||
	    atol(port) > 65535 || (s[0] == '[' && strstr(s, "]:") == NULL))
		bad_value(cfg, opt, s, "expected host:port, [address]:port, a port, or "
		    "unix:/path");
	return 0;
}

static int
validate_durable_spool(cfg_t *cfg, cfg_opt_t *opt)
{
	static const char *const names[] = {"warn", "required", NULL};

	return validate_choice(cfg, opt, names);
}

static int
validate_unknown_local(cfg_t *cfg, cfg_opt_t *opt)
{
	return validate_choice(cfg, opt, unknown_names);
}

static const char *const mechanism_names[] = {"auto", "plain", "login", "xoauth2",
	"oauthbearer", NULL};

static int
validate_smarthost_mode(cfg_t *cfg, cfg_opt_t *opt)
{
	static const char *const names[] = {"store", "proxy", NULL};

	return validate_choice(cfg, opt, names);
}

static int
validate_mechanism(cfg_t *cfg, cfg_opt_t *opt)
{
	return validate_choice(cfg, opt, mechanism_names);
}

static int
validate_tls(cfg_t *cfg, cfg_opt_t *opt)
{
	return validate_choice(cfg, opt, tls_names);
}

static int
validate_tempfail(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned n = cfg_opt_size(opt);

	if (n > CONF_MAX_TEMPFAIL)
		cfg_error(cfg, "%s: at most %d exit statuses", opt->name, CONF_MAX_TEMPFAIL);
	else if (n > 0) {
		long v = cfg_opt_getnint(opt, n - 1);

		if (v < 1 || v > 255)
			cfg_error(cfg, "%s: bad exit status %ld (1 to 255)", opt->name, v);
	}
	return 0;
}

static int
validate_user(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	note_line(cfg, opt);
	if (s != NULL && (s[0] == '\0' || strlen(s) > 32 || strchr(s, ':')))
		bad_value(cfg, opt, s, "expected a user name");
	return 0;
}

static int
validate_absolute_path(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	note_line(cfg, opt);
	if (s != NULL && s[0] != '/')
		bad_value(cfg, opt, s, "expected an absolute path");
	return 0;
}

static int
validate_path(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *s = cfg_opt_getnstr(opt, 0);

	if (s != NULL && (s[0] != '/' || strstr(s, "::") || strstr(s, ":.")))
		bad_value(cfg, opt, s, "expected absolute directories separated by ':'");
	return 0;
}

#define PIPE_KEYS(defaults)                                                   \
	CFG_STR("user", NULL, CFGF_NODEFAULT),                                  \
	CFG_STR("timeout", defaults ? "5m" : NULL, defaults ? 0 : CFGF_NODEFAULT), \
	CFG_STR("path", defaults ? "/usr/local/bin:/usr/bin:/bin" : NULL,       \
	    defaults ? 0 : CFGF_NODEFAULT),                                     \
	CFG_STR("policy", defaults ? "sync" : NULL, defaults ? 0 : CFGF_NODEFAULT), \
	CFG_INT_LIST("tempfail", NULL, CFGF_NODEFAULT),                         \
	CFG_INT("max_concurrency", defaults ? CONF_PIPE_MAX_CONCURRENCY : 0,       \
	    defaults ? 0 : CFGF_NODEFAULT),                                     \
	CFG_INT("breaker", defaults ? CONF_BREAKER : 0, defaults ? 0 : CFGF_NODEFAULT), \
	CFG_STR("breaker_wait", defaults ? "30s" : NULL, defaults ? 0 : CFGF_NODEFAULT), \
	CFG_STR("breaker_wait_max", defaults ? "10m" : NULL, defaults ? 0 : CFGF_NODEFAULT), \
	CFG_STR("notify", NULL, CFGF_NODEFAULT),                                \
	CFG_BOOL("notify_sender", cfg_true, defaults ? 0 : CFGF_NODEFAULT),     \
	CFG_STR("notify_interval", defaults ? "1h" : NULL, defaults ? 0 : CFGF_NODEFAULT)

/* A content filter: globally, per alias and for the smarthost route. */
#define FILTER_KEYS                                                           \
	CFG_STR("filter", NULL, CFGF_NODEFAULT),                                \
	CFG_BOOL("rewrite", cfg_false, CFGF_NODEFAULT)

static cfg_opt_t pipe_opts[] = { PIPE_KEYS(1), CFG_END() };
static cfg_opt_t alias_opts[] = { PIPE_KEYS(0), FILTER_KEYS,
	CFG_STR("verify", NULL, CFGF_NODEFAULT), CFG_END() };

static cfg_opt_t rt_queues_opts[] = {
	CFG_STR("url", NULL, CFGF_NODEFAULT),
	CFG_STR("token_file", NULL, CFGF_NODEFAULT),
	CFG_STR("ca_file", "/etc/ssl/certs/ca-certificates.crt", 0),
	CFG_STR("refresh", "5m", 0),
	CFG_STR("timeout", "10s", 0),
	CFG_END()
};

static cfg_opt_t smarthost_opts[] = {
	CFG_STR("host", NULL, CFGF_NODEFAULT),
	CFG_INT("port", 0, CFGF_NODEFAULT),
	CFG_STR("tls", "starttls", 0),
	CFG_BOOL("tls_verify", cfg_true, 0),
	CFG_STR("ca_file", "/etc/ssl/certs/ca-certificates.crt", 0),
	CFG_STR("auth_user", NULL, CFGF_NODEFAULT),
	CFG_STR("auth_password_file", NULL, CFGF_NODEFAULT),
	CFG_BOOL("auth_plaintext", cfg_false, 0),
	CFG_STR("auth_mechanism", "auto", 0),
	CFG_STR("auth_token_command", NULL, CFGF_NODEFAULT),
	CFG_STR("mode", "store", 0),
	CFG_STR("rewrite_sender", NULL, CFGF_NODEFAULT),
	CFG_STR("timeout", NULL, CFGF_NODEFAULT),
	FILTER_KEYS,
	CFG_END()
};

static cfg_opt_t queue_opts[] = {
	CFG_STR("retry_min", "1m", 0),
	CFG_STR("retry_max", "1h", 0),
	CFG_STR("lifetime", "5d", 0),
	CFG_STR("run_interval", "1m", 0),
	CFG_STR("bad_lifetime", "30d", 0),
	CFG_BOOL("run_after_accept", cfg_true, 0),
	CFG_INT("concurrency", CONF_QUEUE_CONCURRENCY, 0),
	CFG_END()
};

static cfg_opt_t tls_opts[] = {
	CFG_STR("cert_file", NULL, CFGF_NODEFAULT),
	CFG_STR("key_file", NULL, CFGF_NODEFAULT),
	CFG_STR("auth_users_file", NULL, CFGF_NODEFAULT),
	CFG_STR("ciphers", NULL, CFGF_NODEFAULT),
	CFG_STR("protocols", NULL, CFGF_NODEFAULT),
	CFG_END()
};

static cfg_opt_t top_opts[] = {
	CFG_STR("hostname", NULL, CFGF_NODEFAULT),
	CFG_STR_LIST("listen", "{\"127.0.0.1:25\", \"[::1]:25\"}", 0),
	CFG_STR("aliases", "/etc/aliases", 0),
	CFG_STR_LIST("local_domains", NULL, CFGF_NODEFAULT),
	CFG_STR("spool_dir", "/var/spool/undersmtpd", 0),
	CFG_STR("user", "mail", 0),
	CFG_STR_LIST("relay_networks", "{\"127.0.0.0/8\", \"::1/128\"}", 0),
	CFG_STR_LIST("client_networks", NULL, CFGF_NODEFAULT),
	CFG_STR_LIST("proxy_networks", "{\"127.0.0.0/8\", \"::1/128\"}", 0),
	CFG_INT("client_ipv6_prefix_length", 64, 0),
	CFG_STR("recipient_delimiter", "+", 0),
	CFG_STR("min_free_space", "100M", 0),
	CFG_STR("durable_spool", "warn", 0),
	CFG_STR("log_file", NULL, CFGF_NODEFAULT),
	CFG_STR("metrics_listen", NULL, CFGF_NODEFAULT),
	CFG_STR("max_message_size", "25M", 0),
	CFG_INT("max_recipients", 100, 0),
	CFG_INT("max_connections", 100, 0),
	CFG_INT("max_connections_per_ip", 10, 0),
	CFG_INT("session_max_use", 100, 0),
	CFG_STR("timeout", "5m", 0),
	CFG_INT("min_data_rate", 500, 0),
	CFG_INT("max_errors", 20, 0),
	CFG_INT("soft_error_limit", 10, 0),
	CFG_STR("error_sleep", "1s", 0),
	CFG_INT("max_junk_commands", 100, 0),
	CFG_STR("max_session_time", "1h", 0),
	CFG_INT("max_auth_failures", 10, 0),
	CFG_STR("auth_failure_window", "1h", 0),
	CFG_INT("max_hops", 100, 0),
	CFG_STR("unknown_local", "reject", 0),
	CFG_STR("postmaster", NULL, CFGF_NODEFAULT),
	FILTER_KEYS,
	CFG_SEC("pipe", pipe_opts, 0),
	CFG_SEC("alias", alias_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_SEC("smarthost", smarthost_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_SEC("queue", queue_opts, 0),
	CFG_SEC("tls", tls_opts, 0),
	CFG_SEC("rt_queues", rt_queues_opts, 0),
	CFG_END()
};

static const struct {
	const char *name;
	cfg_validate_callback_t fn;
} validators[] = {
	{"hostname", validate_hostname},
	{"listen", validate_listen},
	{"local_domains", validate_domains},
	{"spool_dir", validate_absolute_path},
	{"aliases", validate_absolute_path},
	{"log_file", validate_absolute_path},
	{"metrics_listen", validate_metrics_listen},
	{"user", validate_user},
	{"relay_networks", validate_cidrs},
	{"client_networks", validate_cidrs},
	{"proxy_networks", validate_cidrs},
	{"client_ipv6_prefix_length", validate_ipv6_prefix},
	{"recipient_delimiter", validate_delimiter},
	{"min_free_space", validate_size},
	{"durable_spool", validate_durable_spool},
	{"max_message_size", validate_size},
	{"max_recipients", validate_positive},
	{"max_connections", validate_positive},
	{"max_connections_per_ip", validate_positive},
	{"session_max_use", validate_positive},
	{"timeout", validate_duration},
	{"min_data_rate", validate_nonnegative},
	{"max_errors", validate_positive},
	{"soft_error_limit", validate_nonnegative},
	{"error_sleep", validate_duration_or_off},
	{"max_junk_commands", validate_positive},
	{"max_session_time", validate_duration_or_off},
	{"max_auth_failures", validate_nonnegative},
	{"auth_failure_window", validate_duration},
	{"max_hops", validate_positive},
	{"unknown_local", validate_unknown_local},
	{"postmaster", validate_address},
	{"pipe|user", validate_user},
	{"pipe|timeout", validate_duration},
	{"pipe|path", validate_path},
	{"pipe|policy", validate_policy},
	{"pipe|tempfail", validate_tempfail},
	{"pipe|max_concurrency", validate_positive},
	{"alias|user", validate_user},
	{"alias|timeout", validate_duration},
	{"alias|path", validate_path},
	{"alias|policy", validate_policy},
	{"alias|tempfail", validate_tempfail},
	{"alias|max_concurrency", validate_nonnegative},
	{"pipe|breaker", validate_nonnegative},
	{"pipe|breaker_wait", validate_duration},
	{"pipe|breaker_wait_max", validate_duration},
	{"alias|breaker", validate_nonnegative},
	{"alias|breaker_wait", validate_duration},
	{"alias|breaker_wait_max", validate_duration},
	{"pipe|notify", validate_notify},
	{"pipe|notify_interval", validate_duration},
	{"alias|notify", validate_notify},
	{"alias|notify_interval", validate_duration},
	{"filter", validate_filter},
	{"alias|filter", validate_filter},
	{"smarthost|filter", validate_filter},
	{"alias|verify", validate_verify},
	{"rt_queues|url", validate_rt_url},
	{"rt_queues|token_file", validate_absolute_path},
	{"rt_queues|ca_file", validate_absolute_path},
	{"rt_queues|refresh", validate_duration},
	{"rt_queues|timeout", validate_duration},
	{"rewrite", validate_noted},
	{"alias|rewrite", validate_noted},
	{"smarthost|rewrite", validate_noted},
	{"smarthost|host", validate_host},
	{"smarthost|port", validate_port},
	{"smarthost|tls", validate_tls},
	{"smarthost|ca_file", validate_absolute_path},
	{"smarthost|auth_password_file", validate_absolute_path},
	{"smarthost|auth_mechanism", validate_mechanism},
	{"smarthost|mode", validate_smarthost_mode},
	{"smarthost|auth_token_command", validate_absolute_path},
	{"smarthost|rewrite_sender", validate_address},
	{"smarthost|timeout", validate_duration},
	{"queue|retry_min", validate_duration},
	{"queue|retry_max", validate_duration},
	{"queue|lifetime", validate_duration},
	{"queue|run_interval", validate_duration},
	{"queue|concurrency", validate_queue_concurrency},
	{"queue|bad_lifetime", validate_duration_or_off},
	{"tls|cert_file", validate_absolute_path},
	{"tls|key_file", validate_absolute_path},
	{"tls|auth_users_file", validate_absolute_path},
	{"tls|protocols", validate_protocols},
};

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static long
duration_of(cfg_t *sec, const char *key, long fallback)
{
	long v;
	const char *s = cfg_getstr(sec, key);

	return s && parse_duration(s, &v) == 0 ? v : fallback;
}

static uint64_t
size_of(cfg_t *sec, const char *key)
{
	uint64_t v = 0;
	const char *s = cfg_getstr(sec, key);

	if (s != NULL)
		parse_size(s, &v);
	return v;
}

static enum pipe_policy
policy_of(const char *s)
{
	if (s && strcmp(s, "queue") == 0)
		return POLICY_QUEUE;
	if (s && strcmp(s, "sync-then-queue") == 0)
		return POLICY_SYNC_THEN_QUEUE;
	return POLICY_SYNC;
}

const char *
conf_policy_name(enum pipe_policy p)
{
	return policy_names[p];
}

/* copy_pipe - settings present in sec override those already in p. */
static void
copy_pipe(cfg_t *sec, struct pipe_conf *p)
{
	cfg_opt_t *opt;

	if ((opt = cfg_getopt(sec, "user")) && opt->nvalues)
		p->user = xstrdup(cfg_getstr(sec, "user"));
	if ((opt = cfg_getopt(sec, "timeout")) && opt->nvalues)
		p->timeout = duration_of(sec, "timeout", 300);
	if ((opt = cfg_getopt(sec, "path")) && opt->nvalues)
		p->path = xstrdup(cfg_getstr(sec, "path"));
	if ((opt = cfg_getopt(sec, "policy")) && opt->nvalues)
		p->policy = policy_of(cfg_getstr(sec, "policy"));
	if ((opt = cfg_getopt(sec, "tempfail")) && opt->nvalues) {
		p->ntempfail = 0;
		for (unsigned i = 0; i < opt->nvalues && i < CONF_MAX_TEMPFAIL; i++)
			p->tempfail[p->ntempfail++] = (int)cfg_getnint(sec, "tempfail", i);
	}
	if ((opt = cfg_getopt(sec, "max_concurrency")) && opt->nvalues)
		p->max_concurrency = cfg_getint(sec, "max_concurrency");
	if ((opt = cfg_getopt(sec, "breaker")) && opt->nvalues)
		p->breaker = cfg_getint(sec, "breaker");
	if ((opt = cfg_getopt(sec, "breaker_wait")) && opt->nvalues)
		p->breaker_wait = duration_of(sec, "breaker_wait", 30);
	if ((opt = cfg_getopt(sec, "breaker_wait_max")) && opt->nvalues)
		p->breaker_wait_max = duration_of(sec, "breaker_wait_max", 600);
	if ((opt = cfg_getopt(sec, "notify")) && opt->nvalues)
		p->notify = xstrdup(cfg_getstr(sec, "notify"));
	if ((opt = cfg_getopt(sec, "notify_sender")) && opt->nvalues)
		p->notify_sender = cfg_getbool(sec, "notify_sender") == cfg_true;
	if ((opt = cfg_getopt(sec, "notify_interval")) && opt->nvalues)
		p->notify_interval = duration_of(sec, "notify_interval", 3600);
}

/* copy_filter - the filter keys of sec into f; 1 when sec sets filter. */
static int
copy_filter(cfg_t *sec, struct filter_conf *f)
{
	cfg_opt_t *opt = cfg_getopt(sec, "rewrite");
	const char *cmd;

	f->rewrite = opt && opt->nvalues && cfg_getbool(sec, "rewrite") == cfg_true;
	opt = cfg_getopt(sec, "filter");
	if (opt == NULL || opt->nvalues == 0)
		return 0;
	cmd = cfg_getstr(sec, "filter");
	f->command = cmd && cmd[0] ? xstrdup(cmd) : NULL;
	return 1;
}

/* copy_cidrs - a list of networks (each already validated). */
static struct cidr *
copy_cidrs(cfg_t *cfg, const char *key, size_t *n)
{
	size_t count = cfg_size(cfg, key);
	struct cidr *v = xcalloc(count + 1, sizeof(*v));

	*n = 0;
	for (size_t i = 0; i < count; i++)
		if (cidr_parse(cfg_getnstr(cfg, key, (unsigned)i), &v[*n]) == 0)
			(*n)++;
	return v;
}

static char **
copy_list(cfg_t *cfg, const char *key, size_t *n, int lower)
{
	size_t count = cfg_size(cfg, key);
	char **v = xcalloc(count + 1, sizeof(*v));

	for (size_t i = 0; i < count; i++) {
		v[i] = xstrdup(cfg_getnstr(cfg, key, (unsigned)i));
		if (lower)
			str_lower(v[i]);
	}
	*n = count;
	return v;
}

static void
strip_trailing_dots(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(v[i]);

		while (len > 1 && v[i][len - 1] == '.')
			v[i][--len] = '\0';
	}
}

static void
fill_defaults_hostname(struct conf *c)
{
	char host[256];

	if (c->hostname != NULL)
		return;
	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		str_copy(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	c->hostname = xstrdup(host);
}

static void
copy_smarthost(cfg_t *sec, struct smarthost_conf *s)
{
	const char *tls = cfg_getstr(sec, "tls");

	s->name = xstrdup(cfg_title(sec));
	s->host = dup_or_null(cfg_getstr(sec, "host"));
	s->tls = TLSMODE_STARTTLS;
	for (int i = 0; tls_names[i]; i++)
		if (strcmp(tls, tls_names[i]) == 0)
			s->tls = (enum tls_mode)i;
	s->port = cfg_getopt(sec, "port")->nvalues ? cfg_getint(sec, "port")
	    : (s->tls == TLSMODE_IMPLICIT ? 465 : 25);
	s->tls_verify = cfg_getbool(sec, "tls_verify");
	s->ca_file = dup_or_null(cfg_getstr(sec, "ca_file"));
	s->auth_user = dup_or_null(cfg_getstr(sec, "auth_user"));
	s->auth_password_file = dup_or_null(cfg_getstr(sec, "auth_password_file"));
	s->rewrite_sender = dup_or_null(cfg_getstr(sec, "rewrite_sender"));
	s->auth_plaintext = cfg_getbool(sec, "auth_plaintext");
	for (int m = 0; mechanism_names[m] != NULL; m++)
		if (strcmp(cfg_getstr(sec, "auth_mechanism"), mechanism_names[m]) == 0)
			s->auth_mechanism = (enum sasl_mech)m;
	s->auth_token_command = dup_or_null(cfg_getstr(sec, "auth_token_command"));
	s->proxy = strcmp(cfg_getstr(sec, "mode"), "proxy") == 0;
	s->timeout = cfg_getopt(sec, "timeout")->nvalues ? duration_of(sec, "timeout", 0) : 0;
	s->filter_set = copy_filter(sec, &s->filter);
}

/* check_filter_rewrite - rewrite = yes means nothing without a filter beside it. */
static void
check_filter_rewrite(const struct conf *c, struct diag *d, const char *file)
{
	if (c->filter.rewrite && c->filter.command == NULL)
		diag_error(d, file, conf_line(c, "root", NULL, "rewrite"), "rewrite = yes "
		    "without a filter");
	for (size_t i = 0; i < c->nalias_overrides; i++)
		if (c->alias_overrides[i].filter.rewrite &&
		    c->alias_overrides[i].filter.command == NULL)
			diag_error(d, file, conf_line(c, "alias", c->alias_overrides[i].name,
			    "rewrite"), "alias \"%s\": rewrite = yes without a filter",
			    c->alias_overrides[i].name);
	for (size_t i = 0; i < c->nsmarthosts; i++)
		if (c->smarthosts[i].filter.rewrite && c->smarthosts[i].filter.command == NULL)
			diag_error(d, file, conf_line(c, "smarthost", c->smarthosts[i].name,
			    "rewrite"), "smarthost \"%s\": rewrite = yes without a filter",
			    c->smarthosts[i].name);
}

/* check_semantics - rules that span several keys; errors name the file. */
static void
check_semantics(const struct conf *c, struct diag *d, const char *file)
{
	for (size_t i = 0; i < c->nsmarthosts; i++) {
		const struct smarthost_conf *s = &c->smarthosts[i];

		if (s->host == NULL)
			diag_error(d, file, 0, "smarthost \"%s\": host is not set", s->name);
		if (s->auth_mechanism == SASL_XOAUTH2 || s->auth_mechanism == SASL_OAUTHBEARER) {
			if (s->auth_user == NULL || s->auth_token_command == NULL)
				diag_error(d, file, 0, "smarthost \"%s\": OAuth2 needs auth_user and "
				    "auth_token_command", s->name);
			if (s->tls == TLSMODE_NONE)
				diag_error(d, file, 0, "smarthost \"%s\": an OAuth2 token is never "
				    "sent without TLS (tls = none)", s->name);
		} else if ((s->auth_user == NULL) != (s->auth_password_file == NULL)) {
			diag_error(d, file, 0, "smarthost \"%s\": auth_user and "
			    "auth_password_file go together", s->name);
		}
	}
	for (size_t i = 1; i < c->nsmarthosts; i++) {
		const struct smarthost_conf *a = &c->smarthosts[0], *b = &c->smarthosts[i];

		if (a->filter_set != b->filter_set || a->filter.rewrite != b->filter.rewrite ||
		    (a->filter.command == NULL) != (b->filter.command == NULL) ||
		    (a->filter.command && strcmp(a->filter.command, b->filter.command) != 0))
			diag_error(d, file, conf_line(c, "smarthost", b->name, "filter"),
			    "smarthost \"%s\": filter or rewrite differs from smarthost "
			    "\"%s\"'s: the smarthosts are one route, tried in order, and a "
			    "message is filtered before one is chosen", b->name, a->name);
	}
	check_filter_rewrite(c, d, file);
	for (size_t i = 0; i < c->nalias_overrides; i++)
		if (c->alias_overrides[i].verify_queue != NULL && c->rt.url == NULL)
			diag_error(d, file, conf_line(c, "alias", c->alias_overrides[i].name,
			    "verify"), "alias \"%s\": verify = rt_queue(...) needs the "
			    "rt_queues section's url", c->alias_overrides[i].name);
	if (c->rt.url != NULL && c->rt.token_file == NULL)
		diag_error(d, file, conf_line(c, "rt_queues", NULL, "url"), "rt_queues: "
		    "token_file is not set (RT's REST 2 API needs a token)");
	for (size_t i = 1; i < c->nsmarthosts; i++)
		if (c->smarthosts[i].proxy != c->smarthosts[0].proxy)
			diag_error(d, file, 0, "smarthost \"%s\": mode differs from smarthost "
			    "\"%s\"'s: mail is either forwarded in the session (proxy) or "
			    "spooled (store), for every smarthost", c->smarthosts[i].name,
			    c->smarthosts[0].name);
	if (c->queue.retry_min > c->queue.retry_max)
		diag_error(d, file, 0, "queue: retry_min is longer than retry_max");
	for (size_t i = 0; i < c->nalias_overrides; i++)
		if (c->alias_overrides[i].pipe.max_concurrency > c->pipe.max_concurrency)
			diag_error(d, file, 0, "alias \"%s\": max_concurrency %ld is more than "
			    "pipe.max_concurrency %ld, the limit of all programs together",
			    c->alias_overrides[i].name, c->alias_overrides[i].pipe.max_concurrency,
			    c->pipe.max_concurrency);
	if ((c->tls.cert_file == NULL) != (c->tls.key_file == NULL))
		diag_error(d, file, 0, "tls: cert_file and key_file go together");
	if (c->tls.auth_users_file != NULL && c->tls.cert_file == NULL)
		diag_error(d, file, 0, "tls: auth_users_file needs cert_file and key_file "
		    "(AUTH is offered only over TLS)");
}

static struct conf *
conf_build(cfg_t *cfg)
{
	struct conf *c = xcalloc(1, sizeof(*c));
	cfg_t *pipe = cfg_getsec(cfg, "pipe");
	cfg_t *queue = cfg_getsec(cfg, "queue");
	cfg_t *tls = cfg_getsec(cfg, "tls");

	c->hostname = dup_or_null(cfg_getstr(cfg, "hostname"));
	fill_defaults_hostname(c);
	c->listen = copy_list(cfg, "listen", &c->nlisten, 0);
	c->aliases = xstrdup(cfg_getstr(cfg, "aliases"));
	if (cfg_size(cfg, "local_domains") > 0) {
		c->local_domains = copy_list(cfg, "local_domains", &c->nlocal_domains, 1);
	} else {
		c->local_domains = xcalloc(3, sizeof(char *));
		c->local_domains[0] = xstrdup(c->hostname);
		str_lower(c->local_domains[0]);
		c->local_domains[1] = xstrdup("localhost");
		c->nlocal_domains = 2;
	}
	strip_trailing_dots(c->local_domains, c->nlocal_domains);
	c->spool_dir = xstrdup(cfg_getstr(cfg, "spool_dir"));
	c->user = xstrdup(cfg_getstr(cfg, "user"));
	c->relay_networks = copy_cidrs(cfg, "relay_networks", &c->nrelay_networks);
	c->client_networks = copy_cidrs(cfg, "client_networks", &c->nclient_networks);
	c->proxy_networks = copy_cidrs(cfg, "proxy_networks", &c->nproxy_networks);
	c->client_ipv6_prefix_length = (unsigned)cfg_getint(cfg, "client_ipv6_prefix_length");
	c->recipient_delimiter = xstrdup(cfg_getstr(cfg, "recipient_delimiter"));
	c->min_free_space = size_of(cfg, "min_free_space");
	c->durable_spool_required = strcmp(cfg_getstr(cfg, "durable_spool"), "required") == 0;
	c->log_file = dup_or_null(cfg_getstr(cfg, "log_file"));
	c->metrics_listen = dup_or_null(cfg_getstr(cfg, "metrics_listen"));
	c->max_message_size = size_of(cfg, "max_message_size");
	c->max_recipients = cfg_getint(cfg, "max_recipients");
	c->max_connections = cfg_getint(cfg, "max_connections");
	c->max_connections_per_ip = cfg_getint(cfg, "max_connections_per_ip");
	c->session_max_use = cfg_getint(cfg, "session_max_use");
	c->timeout = duration_of(cfg, "timeout", 300);
	c->min_data_rate = cfg_getint(cfg, "min_data_rate");
	c->max_errors = cfg_getint(cfg, "max_errors");
	c->soft_error_limit = cfg_getint(cfg, "soft_error_limit");
	c->error_sleep = duration_of(cfg, "error_sleep", 1);
	c->max_junk_commands = cfg_getint(cfg, "max_junk_commands");
	c->max_session_time = duration_of(cfg, "max_session_time", 3600);
	c->max_auth_failures = cfg_getint(cfg, "max_auth_failures");
	c->auth_failure_window = duration_of(cfg, "auth_failure_window", 3600);
	c->max_hops = cfg_getint(cfg, "max_hops");
	c->unknown_local = strcmp(cfg_getstr(cfg, "unknown_local"), "relay") == 0
	    ? UNKNOWN_RELAY : UNKNOWN_REJECT;
	c->postmaster = dup_or_null(cfg_getstr(cfg, "postmaster"));

	/*
	 * The tempfail default is set here: libconfuse cannot parse a list
	 * default inside a section while it is parsing the file.
	 */
	c->pipe.timeout = 300;
	c->pipe.path = NULL;
	c->pipe.tempfail[0] = 75;    /* EX_TEMPFAIL */
	c->pipe.tempfail[1] = 71;    /* EX_OSERR */
	c->pipe.tempfail[2] = 74;    /* EX_IOERR */
	c->pipe.ntempfail = 3;
	copy_pipe(pipe, &c->pipe);
	c->nalias_overrides = cfg_size(cfg, "alias");
	c->alias_overrides = xcalloc(c->nalias_overrides + 1, sizeof(struct alias_conf));
	for (size_t i = 0; i < c->nalias_overrides; i++) {
		cfg_t *sec = cfg_getnsec(cfg, "alias", (unsigned)i);
		struct alias_conf *a = &c->alias_overrides[i];

		a->name = xstrdup(cfg_title(sec));
		str_lower(a->name);
		a->pipe = c->pipe;
		/* The global max_concurrency is the pool of all aliases, not one's. */
		a->pipe.max_concurrency = 0;
		a->pipe.user = dup_or_null(c->pipe.user);
		a->pipe.path = xstrdup(c->pipe.path);
		a->pipe.notify = dup_or_null(c->pipe.notify);
		{
			char *u = a->pipe.user, *p = a->pipe.path, *n = a->pipe.notify;
			cfg_opt_t *o;

			copy_pipe(sec, &a->pipe);
			a->filter_set = copy_filter(sec, &a->filter);
			if (cfg_getstr(sec, "verify") != NULL) {
				char t[256];

				if (conf_verify_template(cfg_getstr(sec, "verify"), t, sizeof(t)) == 0)
					a->verify_queue = xstrdup(t);
			}
			/* copy_pipe replaced them with fresh copies when set. */
			if ((o = cfg_getopt(sec, "user")) && o->nvalues)
				free(u);
			if ((o = cfg_getopt(sec, "path")) && o->nvalues)
				free(p);
			if ((o = cfg_getopt(sec, "notify")) && o->nvalues)
				free(n);
		}
	}
	c->nsmarthosts = cfg_size(cfg, "smarthost");
	c->smarthosts = xcalloc(c->nsmarthosts + 1, sizeof(struct smarthost_conf));
	for (size_t i = 0; i < c->nsmarthosts; i++)
		copy_smarthost(cfg_getnsec(cfg, "smarthost", (unsigned)i), &c->smarthosts[i]);
	c->proxy = c->nsmarthosts > 0 && c->smarthosts[0].proxy;
	copy_filter(cfg, &c->filter);
	c->smarthost_filter = c->nsmarthosts > 0 && c->smarthosts[0].filter_set
	    ? &c->smarthosts[0].filter : &c->filter;
	{
		cfg_t *rt = cfg_getsec(cfg, "rt_queues");

		c->rt.url = dup_or_null(cfg_getstr(rt, "url"));
		c->rt.token_file = dup_or_null(cfg_getstr(rt, "token_file"));
		c->rt.ca_file = dup_or_null(cfg_getstr(rt, "ca_file"));
		c->rt.refresh = duration_of(rt, "refresh", 300);
		c->rt.timeout = duration_of(rt, "timeout", 10);
	}
	c->queue.retry_min = duration_of(queue, "retry_min", 60);
	c->queue.retry_max = duration_of(queue, "retry_max", 3600);
	c->queue.lifetime = duration_of(queue, "lifetime", 5 * 86400);
	c->queue.run_interval = duration_of(queue, "run_interval", 60);
	c->queue.bad_lifetime = duration_of(queue, "bad_lifetime", 30 * 86400);
	c->queue.run_after_accept = cfg_getbool(queue, "run_after_accept");
	c->queue.concurrency = (int)cfg_getint(queue, "concurrency");
	c->tls.cert_file = dup_or_null(cfg_getstr(tls, "cert_file"));
	c->tls.key_file = dup_or_null(cfg_getstr(tls, "key_file"));
	c->tls.auth_users_file = dup_or_null(cfg_getstr(tls, "auth_users_file"));
	c->tls.ciphers = dup_or_null(cfg_getstr(tls, "ciphers"));
	c->tls.protocols = dup_or_null(cfg_getstr(tls, "protocols"));
	return c;
}

int
conf_line(const struct conf *c, const char *section, const char *title, const char *key)
{
	char want[sizeof(c->where[0].key)];
	int line = 0;

	if (str_fmt(want, sizeof(want), "%s/%s/%s", section, title ? title : "", key) < 0)
		return 0;
	/* The last setting wins in libconfuse; so does its line. */
	for (size_t i = 0; i < c->nwhere; i++)
		if (strcmp(c->where[i].key, want) == 0)
			line = c->where[i].line;
	return line;
}

struct conf *
conf_load(const char *path, int missing_ok, struct diag *d)
{
	cfg_t *cfg = cfg_init(top_opts, CFGF_NONE);
	struct conf *c = NULL;
	int errors_before = d->errors;
	int rc = CFG_SUCCESS;

	if (cfg == NULL) {
		diag_error(d, path ? path : "(config)", 0, "cannot initialise libconfuse");
		return NULL;
	}
	cfg_set_error_function(cfg, conf_errfunc);
	for (size_t i = 0; i < ARRAY_LEN(validators); i++)
		cfg_set_validate_func(cfg, validators[i].name, validators[i].fn);
	memset(&parse, 0, sizeof(parse));
	parse.diag = d;
	parse.file = path ? path : "(defaults)";
	parse.last_line = -1;
	if (path != NULL) {
		struct stat st;

		if (stat(path, &st) < 0 && errno == ENOENT && missing_ok) {
			path = NULL;
		} else {
			char *text = read_conf_file(path, d);

			if (text == NULL) {
				rc = CFG_FILE_ERROR;
			} else {
				strip_comments(text);
				rc = cfg_parse_buf(cfg, text);
				free(text);
			}
		}
	}
	if (path == NULL && rc == CFG_SUCCESS)
		rc = cfg_parse_buf(cfg, "");
	/* Validators normally run at parse time; these are defaults no file set. */
	if (rc == CFG_SUCCESS && d->errors == errors_before) {
		c = conf_build(cfg);
		c->file = dup_or_null(path);
		c->nwhere = parse.nwhere;
		c->where = xcalloc(parse.nwhere + 1, sizeof(c->where[0]));
		memcpy(c->where, parse.where, parse.nwhere * sizeof(c->where[0]));
		check_semantics(c, d, path ? path : "(defaults)");
		if (d->errors != errors_before) {
			conf_free(c);
			c = NULL;
		}
	} else if (rc != CFG_SUCCESS && d->errors == errors_before) {
		diag_error(d, path ? path : "(config)", 0, "cannot parse");
	}
	memset(&parse, 0, sizeof(parse));
	cfg_free(cfg);
	return c;
}

static void
free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
conf_free(struct conf *c)
{
	if (c == NULL)
		return;
	free(c->file);
	free(c->where);
	free(c->metrics_listen);
	free(c->hostname);
	free_list(c->listen, c->nlisten);
	free(c->aliases);
	free_list(c->local_domains, c->nlocal_domains);
	free(c->spool_dir);
	free(c->user);
	free(c->relay_networks);
	free(c->client_networks);
	free(c->proxy_networks);
	free(c->recipient_delimiter);
	free(c->log_file);
	free(c->postmaster);
	free(c->pipe.user);
	free(c->pipe.path);
	free(c->pipe.notify);
	for (size_t i = 0; i < c->nalias_overrides; i++) {
		free(c->alias_overrides[i].name);
		free(c->alias_overrides[i].pipe.user);
		free(c->alias_overrides[i].pipe.path);
		free(c->alias_overrides[i].pipe.notify);
		free(c->alias_overrides[i].filter.command);
		free(c->alias_overrides[i].verify_queue);
	}
	free(c->alias_overrides);
	for (size_t i = 0; i < c->nsmarthosts; i++) {
		struct smarthost_conf *s = &c->smarthosts[i];

		free(s->name);
		free(s->host);
		free(s->ca_file);
		free(s->auth_user);
		free(s->auth_password_file);
		free(s->auth_token_command);
		free(s->rewrite_sender);
		free(s->filter.command);
	}
	free(c->smarthosts);
	free(c->filter.command);
	free(c->rt.url);
	free(c->rt.token_file);
	free(c->rt.ca_file);
	free(c->tls.cert_file);
	free(c->tls.key_file);
	free(c->tls.auth_users_file);
	free(c->tls.ciphers);
	free(c->tls.protocols);
	free(c);
}

const char *
conf_verify_for(const struct conf *c, const char *entry_name, int regex)
{
	size_t len = strlen(entry_name);

	for (size_t i = 0; i < c->nalias_overrides; i++) {
		const char *t = c->alias_overrides[i].name;
		size_t tlen = strlen(t);

		if (c->alias_overrides[i].verify_queue == NULL)
			continue;
		/* A regex alias's block may keep the slashes of the aliases file. */
		if (regex && tlen == len + 2 && t[0] == '/' && t[tlen - 1] == '/' &&
		    strncasecmp(t + 1, entry_name, len) == 0)
			return c->alias_overrides[i].verify_queue;
		if (str_casecmp_ascii(t, entry_name) == 0)
			return c->alias_overrides[i].verify_queue;
	}
	return NULL;
}

const struct pipe_conf *
conf_pipe_for(const struct conf *c, const char *alias)
{
	for (size_t i = 0; alias != NULL && i < c->nalias_overrides; i++)
		if (str_casecmp_ascii(c->alias_overrides[i].name, alias) == 0)
			return &c->alias_overrides[i].pipe;
	return &c->pipe;
}

int
conf_is_local_domain(const struct conf *c, const char *domain)
{
	size_t len = strlen(domain);

	while (len > 1 && domain[len - 1] == '.')
		len--;
	for (size_t i = 0; i < c->nlocal_domains; i++) {
		const char *ld = c->local_domains[i];
		size_t k = 0;

		if (strlen(ld) != len)
			continue;
		for (; k < len; k++) {
			char a = domain[k];

			if (a >= 'A' && a <= 'Z')
				a = (char)(a - 'A' + 'a');
			if (a != ld[k])
				break;
		}
		if (k == len)
			return 1;
	}
	return 0;
}

/* in_networks - addr is in one of the n networks. */
static int
in_networks(const struct cidr *nets, size_t n, int family, const unsigned char addr[16])
{
	for (size_t i = 0; i < n; i++)
		if (cidr_match(&nets[i], family, addr))
			return 1;
	return 0;
}

int
conf_relay_allowed(const struct conf *c, int family, const unsigned char addr[16])
{
	return in_networks(c->relay_networks, c->nrelay_networks, family, addr);
}

int
conf_client_allowed(const struct conf *c, int family, const unsigned char addr[16])
{
	return c->nclient_networks == 0 ||
	    in_networks(c->client_networks, c->nclient_networks, family, addr);
}

int
conf_proxy_allowed(const struct conf *c, int family, const unsigned char addr[16])
{
	return in_networks(c->proxy_networks, c->nproxy_networks, family, addr);
}

int
conf_same_client(const struct conf *c, int family, const unsigned char a[16],
    const unsigned char b[16])
{
	struct cidr net;

	if (family != AF_INET6)
		return memcmp(a, b, 16) == 0;
	net.family = AF_INET6;
	memcpy(net.addr, a, 16);
	net.prefix = c->client_ipv6_prefix_length ? c->client_ipv6_prefix_length : 128;
	return cidr_match(&net, family, b);
}

int
conf_tls_protocols(const char *text, int *min, int *max)
{
	static const char *const names[] = {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};
	int lo = 99, hi = -1, n = 0;
	char buf[128];

	if (str_copy(buf, sizeof(buf), text) < 0)
		return -1;
	for (char *save = NULL, *w = strtok_r(buf, " ,\t", &save); w;
	    w = strtok_r(NULL, " ,\t", &save), n++) {
		int k = -1;

		for (int i = 0; i < (int)ARRAY_LEN(names); i++)
			if (strcmp(w, names[i]) == 0)
				k = i;
		if (k < 0)
			return -1;
		lo = k < lo ? k : lo;
		hi = k > hi ? k : hi;
	}
	if (n == 0)
		return -1;
	/* 0 TLSv1 ... 3 TLSv1.3: the caller maps them to its library's values. */
	if (min != NULL)
		*min = lo;
	if (max != NULL)
		*max = hi;
	return 0;
}
