/*
 * log.c - syslog / log file / stderr logging.  See log.h.
 *
 * Each line goes out in one write(2) so concurrent sessions appending to the
 * same log_file never interleave within a line.
 */
#include "log.h"
#include "safepath.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static struct {
	char ident[32];
	char role[16];          /* what this process does now: smtpd, qmgr, ... */
	char tag[64];           /* "ident/role": syslog(3) keeps a pointer to it */
	char host[64];          /* short host name, for log_file lines */
	int flags;
	int fd;           /* log_file, or -1 */
	int debug;
	char open_error[512];   /* why the last log_open() failed */
	int last_words_fd;      /* a session's client, or -1 (log_last_words) */
	char last_words[320];
} logger = {"undersmtpd", "", "undersmtpd", "localhost", LOG_TO_STDERR, -1, 0, "", -1, ""};

/*
 * set_tag - "ident/role" (or ident alone) into logger.tag.  syslog(3) reads
 * the tag through the pointer openlog() was given, so the buffer stays the
 * same and only its text changes.
 */
static void
set_tag(const char *role)
{
	if (role[0] == '\0' || str_fmt(logger.tag, sizeof(logger.tag), "%s/%s",
	    logger.ident, role) < 0)
		str_copy(logger.tag, sizeof(logger.tag), logger.ident);
}

int
log_open(const char *ident, int flags, const char *log_file, int debug)
{
	int fd = -1;

	if (log_file != NULL && (flags & LOG_TO_FILE)) {
		/*
		 * Opened before privileges are dropped: never through a link that
		 * the owner of a log directory other than root's could have made.
		 */
		fd = safepath_open_file(log_file, O_WRONLY | O_APPEND | O_CREAT | O_NOCTTY,
		    0640, logger.open_error, sizeof(logger.open_error));
		if (fd < 0)
			return -1;
	}
	if (logger.fd >= 0)
		close(logger.fd);
	str_copy(logger.ident, sizeof(logger.ident), ident);
	logger.flags = flags;
	logger.fd = fd;
	logger.debug = debug;
	/* As syslogd writes it: the name up to its first dot. */
	if (gethostname(logger.host, sizeof(logger.host)) < 0 || logger.host[0] == '\0')
		str_copy(logger.host, sizeof(logger.host), "localhost");
	logger.host[sizeof(logger.host) - 1] = '\0';
	logger.host[strcspn(logger.host, ".")] = '\0';
	set_tag(logger.role);
	if (flags & LOG_TO_SYSLOG)
		openlog(logger.tag, LOG_PID | LOG_NDELAY, LOG_MAIL);
	return 0;
}

void
log_set_role(const char *role)
{
	str_copy(logger.role, sizeof(logger.role), role != NULL ? role : "");
}

const char *
log_open_error(void)
{
	return logger.open_error;
}

void
log_close(void)
{
	if (logger.fd >= 0)
		close(logger.fd);
	logger.fd = -1;
	if (logger.flags & LOG_TO_SYSLOG)
		closelog();
}

int
log_stderr_allowed(void)
{
	return (logger.flags & LOG_TO_STDERR) != 0;
}

static void
write_line(int fd, const char *prefix, const char *msg)
{
	char line[2048];
	int n = snprintf(line, sizeof(line), "%s%s\n", prefix, msg);

	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* A failing log write has nowhere to be reported; ignore it on purpose. */
	if (write(fd, line, (size_t)n) < 0)
		return;
}

static void vlog(int priority, const char *role, const char *fmt, va_list ap,
    int with_errno, int saved) __attribute__((format(printf, 3, 0)));

/*
 * vlog - one line.  role: this line's (Postfix's program names, so that
 * pflogsumm and fail2ban read us), NULL for the process's own.  Warnings
 * and fatal errors say so first, as Postfix's do.
 */
static void
vlog(int priority, const char *role, const char *fmt, va_list ap, int with_errno,
    int saved)
{
	char msg[1536];
	size_t len = 0;

	if (priority == LOG_DEBUG && !logger.debug)
		return;
	if (priority == LOG_WARNING)
		len = (size_t)snprintf(msg, sizeof(msg), "warning: ");
	else if (priority == LOG_CRIT)
		len = (size_t)snprintf(msg, sizeof(msg), "fatal: ");
	vsnprintf(msg + len, sizeof(msg) - len, fmt, ap);
	len = strlen(msg);
	if (with_errno)
		snprintf(msg + len, sizeof(msg) - len, ": %s", strerror(saved));
	/* Log text never carries control characters (client data may be in it). */
	str_mask_controls(msg);
	set_tag(role != NULL ? role : logger.role);
	if (logger.flags & LOG_TO_SYSLOG)
		syslog(priority, "%s", msg);
	if (logger.fd >= 0) {
		char prefix[192], stamp[32];
		time_t t = time(NULL);
		struct tm tm;

		/* syslog's own layout: time, host, tag[pid]. */
		localtime_r(&t, &tm);
		strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
		snprintf(prefix, sizeof(prefix), "%s %s %s[%ld]: ", stamp, logger.host,
		    logger.tag, (long)getpid());
		write_line(logger.fd, prefix, msg);
	}
	if (logger.flags & LOG_TO_STDERR) {
		char prefix[64];

		snprintf(prefix, sizeof(prefix), "%s: ", logger.ident);
		write_line(STDERR_FILENO, prefix, msg);
	}
}

#define LOGFN(name, prio, with_errno)                         \
	void name(const char *fmt, ...)                        \
	{                                                      \
		int saved = errno;                             \
		va_list ap;                                    \
		va_start(ap, fmt);                             \
		vlog(prio, NULL, fmt, ap, with_errno, saved);  \
		va_end(ap);                                    \
		errno = saved;                                 \
	}

LOGFN(log_warn, LOG_WARNING, 1)
LOGFN(log_warnx, LOG_WARNING, 0)
LOGFN(log_info, LOG_INFO, 0)
LOGFN(log_debug, LOG_DEBUG, 0)

void
log_info_as(const char *role, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, role, fmt, ap, 0, 0);
	va_end(ap);
}

void
log_diag(void *ctx, const char *file, int line, const char *msg)
{
	(void)ctx;
	log_warnx("%s:%d: %s", file, line, msg);
}

void
log_last_words(int fd, const char *hostname)
{
	logger.last_words_fd = -1;
	if (fd < 0 || str_fmt(logger.last_words, sizeof(logger.last_words),
	    "421 4.3.0 %s Local error: out of resources; closing connection\r\n",
	    hostname) < 0)
		return;
	logger.last_words_fd = fd;
}

/* say_last_words - one write of a ready buffer: nothing to allocate, no wait. */
static void
say_last_words(void)
{
	int fd = logger.last_words_fd;

	if (fd < 0)
		return;
	logger.last_words_fd = -1;
	/* The process is ending: a client that cannot take it loses nothing more. */
	if (write(fd, logger.last_words, strlen(logger.last_words)) < 0)
		return;
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	say_last_words();
	va_start(ap, fmt);
	vlog(LOG_CRIT, NULL, fmt, ap, 1, saved);
	va_end(ap);
	exit(75);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	say_last_words();
	va_start(ap, fmt);
	vlog(LOG_CRIT, NULL, fmt, ap, 0, 0);
	va_end(ap);
	exit(75);
}
