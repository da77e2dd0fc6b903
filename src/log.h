/*
 * log.h - the one place where undersmtpd writes diagnostics.
 *
 * Destinations: syslog (facility mail, the default), a log_file, and standard
 * error with -v outside inetd mode.  In inetd mode fd 2 is the client's
 * socket, so log_open() must be told never to use it.  log_warn() appends
 * strerror(errno) and keeps errno; log_warnx() does not (STYLE habit 14).
 * fatal()/fatalx() are for setup and broken invariants only.
 *
 * The logger's settings are process state set once at start-up (and again
 * when a reload names another log_file), with the fd a session's last words
 * go to; nothing else in the program is.
 */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

enum log_dest_flags {
	LOG_TO_SYSLOG = 1,
	LOG_TO_FILE = 2,
	LOG_TO_STDERR = 4,
};

/*
 * log_open - returns 0, or -1 with errno when log_file cannot be opened
 * (log_open_error() then says what was wrong with it: a link in someone
 * else's directory is never followed, see safepath.h).
 */
int log_open(const char *ident, int flags, const char *log_file, int debug);
const char *log_open_error(void);
void log_close(void);
/* log_stderr_allowed - 0 once log_open() was told fd 2 is not ours. */
int log_stderr_allowed(void);

/*
 * log_set_role - the process's role in its log lines' tag, "undersmtpd/ROLE"
 * as Postfix's "postfix/smtpd": smtpd (a session), qmgr (the queue), master
 * (the daemon), pickup, sendmail, launcher.  log_info_as gives one line a
 * role of its own (pipe, smtp, bounce, cleanup): what pflogsumm and
 * fail2ban's postfix filters key on.
 */
void log_set_role(const char *role);
void log_info_as(const char *role, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_diag - a struct diag reporter that logs "file:line: message" as a warning. */
void log_diag(void *ctx, const char *file, int line, const char *msg);
/*
 * log_last_words - while an SMTP session owns the process, fatal()/fatalx()
 * first tell its client "421 4.3.0 HOST ..." on fd (the session's socket), so
 * a session that runs out of memory ends with a reply the client retries on,
 * not a silent close (TESTCATALOGUE T106).  fd -1 (after STARTTLS, where
 * clear text would break the stream, and when the session ends) turns it off.
 */
void log_last_words(int fd, const char *hostname);
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
