/*
 * test_log.c - log.c: lines in a log_file, control characters masked,
 * log_warn's strerror and errno, and a log_file that is a link someone else
 * could have placed (T107).
 *
 * The logger is process state: every test opens its own file and closes it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>

#include "log.h"
#include "util.h"
#include "unit.h"

#define NOBODY 65534

struct dir {
	char path[64];
	char log[128];
};

/* Every directory made, removed after the tests even when one fails midway. */
static char made[32][64];
static size_t nmade;

static void
dir_make(struct dir *d)
{
	snprintf(d->path, sizeof(d->path), "/tmp/undersmtpd-log-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	snprintf(d->log, sizeof(d->log), "%s/undersmtpd.log", d->path);
	assert_true(nmade < sizeof(made) / sizeof(made[0]));
	str_copy(made[nmade++], sizeof(made[0]), d->path);
}

static void
dir_remove(const struct dir *d)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->path);
	assert_int_equal(system(cmd), 0);
}

static int
remove_all(void **state)
{
	char cmd[128];
	int rc = 0;

	(void)state;
	log_close();
	for (size_t i = 0; i < nmade; i++) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", made[i]);
		rc |= system(cmd);
	}
	return rc == 0 ? 0 : -1;
}

/* slurp - the whole file, NUL-terminated (malloc'd). */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 65536);
	size_t n;

	assert_non_null(f);
	n = fread(text, 1, 65535, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static void
test_file_lines(void **state)
{
	struct dir d;
	char *text, want[128];
	struct stat st;

	(void)state;
	dir_make(&d);
	assert_int_equal(log_open("unit-log", LOG_TO_FILE, d.log, 0), 0);
	assert_int_equal(log_stderr_allowed(), 0);
	log_info("%s: client=[%s]", "4F2A9C01B3D7", "192.0.2.1");
	log_debug("not with debug off");
	log_warnx("second %d", 2);
	text = slurp(d.log);
	{
		/* syslog's layout: time, the short host name, tag[pid]. */
		char host[64] = "";

		assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
		host[strcspn(host, ".")] = '\0';
		snprintf(want, sizeof(want), " %s unit-log[%ld]: 4F2A9C01B3D7: client=[192.0.2.1]\n",
		    host, (long)getpid());
		assert_non_null(strstr(text, want));
	}
	assert_non_null(strstr(text, "]: warning: second 2\n"));
	assert_null(strstr(text, "not with debug off"));
	assert_int_equal(count_lines(text), 2);
	free(text);
	/* Created 0640, never readable by everyone; appended to, never truncated. */
	assert_int_equal(stat(d.log, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(log_open("unit-log", LOG_TO_FILE, d.log, 1), 0);
	log_debug("with debug on");
	text = slurp(d.log);
	assert_non_null(strstr(text, "]: with debug on\n"));
	assert_int_equal(count_lines(text), 3);
	free(text);
	log_close();
	dir_remove(&d);
}

static void
test_controls_masked(void **state)
{
	struct dir d;
	char *text, *line;
	char big[5000];

	(void)state;
	dir_make(&d);
	assert_int_equal(log_open("unit-log", LOG_TO_FILE, d.log, 0), 0);
	/* Client text with CR, LF, ESC, TAB and DEL: still one line, each masked. */
	log_warnx("helo=%s", "evil\r\nMay 1 00:00:00 forged[1]: ok\x1b[31m\t\x7f!");
	text = slurp(d.log);
	assert_int_equal(count_lines(text), 1);
	assert_null(strchr(text, '\r'));
	assert_null(strchr(text, '\x1b'));
	assert_null(strchr(text, '\t'));
	assert_null(strchr(text, '\x7f'));
	assert_non_null(strstr(text, "helo=evil??May 1 00:00:00 forged[1]: ok?[31m??" "!\n"));
	free(text);
	/* An overlong message is cut, and the line still ends with its LF. */
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
	text = slurp(d.log);
	assert_int_equal(count_lines(text), 2);
	line = strchr(text, '\n') + 1;
	assert_true(strlen(line) < 2048);
	assert_int_equal(line[strlen(line) - 1], '\n');
	assert_int_equal(line[strlen(line) - 2], 'z');
	free(text);
	log_close();
	dir_remove(&d);
}

/*
 * Postfix's program names: "ident/role[pid]" (pflogsumm and fail2ban key on
 * them), the process's role or one line's own.
 */
static void
test_roles(void **state)
{
	struct dir d;
	char *text, want[128];

	(void)state;
	dir_make(&d);
	assert_int_equal(log_open("unit-log", LOG_TO_FILE, d.log, 0), 0);
	log_set_role("smtpd");
	log_info("connect from unknown[192.0.2.1]");
	log_info_as("pipe", "ID: to=<a@b>, relay=rt");
	log_info("disconnect");
	log_set_role(NULL);
	log_info("no role");
	text = slurp(d.log);
	snprintf(want, sizeof(want), " unit-log/smtpd[%ld]: connect from unknown[192.0.2.1]\n",
	    (long)getpid());
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want), " unit-log/pipe[%ld]: ID: to=<a@b>, relay=rt\n",
	    (long)getpid());
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want), " unit-log/smtpd[%ld]: disconnect\n", (long)getpid());
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want), " unit-log[%ld]: no role\n", (long)getpid());
	assert_non_null(strstr(text, want));
	assert_int_equal(count_lines(text), 4);
	free(text);
	log_close();
	dir_remove(&d);
}

static void
test_warn_errno(void **state)
{
	struct dir d;
	char *text;
	int fd2, ro, rc, after_warn, after_info;

	(void)state;
	dir_make(&d);
	assert_int_equal(log_open("unit-log", LOG_TO_FILE, d.log, 0), 0);
	errno = ENOENT;
	log_warn("open %s", "/etc/undersmtpd/aliases");
	assert_int_equal(errno, ENOENT);
	errno = EACCES;
	log_warnx("no errno text here");
	assert_int_equal(errno, EACCES);
	text = slurp(d.log);
	assert_non_null(strstr(text, "]: warning: open /etc/undersmtpd/aliases: No such file or "
	    "directory\n"));
	assert_non_null(strstr(text, "]: warning: no errno text here\n"));
	free(text);
	/*
	 * errno survives even when logging itself fails: standard error is a
	 * descriptor open only for reading here, so that write fails (EBADF).
	 */
	fflush(stderr);
	fd2 = dup(STDERR_FILENO);
	ro = open("/dev/null", O_RDONLY);
	assert_true(fd2 >= 0 && ro >= 0);
	assert_int_equal(dup2(ro, STDERR_FILENO), STDERR_FILENO);
	close(ro);
	rc = log_open("unit-log", LOG_TO_FILE | LOG_TO_STDERR, d.log, 0);
	errno = ENOSPC;
	log_warn("write %s", "tmp/X.msg");
	after_warn = errno;
	errno = EDQUOT;
	log_info("info keeps errno");
	after_info = errno;
	/* Standard error back before any assertion (cmocka reports there). */
	dup2(fd2, STDERR_FILENO);
	close(fd2);
	assert_int_equal(rc, 0);
	assert_int_equal(after_warn, ENOSPC);
	assert_int_equal(after_info, EDQUOT);
	text = slurp(d.log);
	assert_non_null(strstr(text, "]: warning: write tmp/X.msg: No space left on device\n"));
	free(text);
	log_close();
	dir_remove(&d);
}

/*
 * refused - log_open(path) fails; the target is untouched; the log that was
 * open before still receives lines (a failed reopen changes nothing).
 */
static void
refused(const char *path, const char *victim, const char *previous)
{
	char *text;

	assert_int_equal(log_open("unit-log", LOG_TO_FILE, previous, 0), 0);
	errno = 0;
	assert_int_equal(log_open("unit-log", LOG_TO_FILE, path, 0), -1);
	assert_true(errno != 0);
	assert_non_null(strstr(log_open_error(), path));
	log_warnx("after the refusal");
	text = slurp(victim);
	assert_string_equal(text, "root:x:0:0\n");
	free(text);
	text = slurp(previous);
	assert_non_null(strstr(text, "]: warning: after the refusal\n"));
	free(text);
	log_close();
}

/* victim_in - a file standing for /etc/passwd, in a directory of its own. */
static void
victim_in(struct dir *v)
{
	FILE *f;

	dir_make(v);
	f = fopen(v->log, "w");
	assert_non_null(f);
	fputs("root:x:0:0\n", f);
	fclose(f);
}

static void
test_link_in_writable_dir_refused(void **state)
{
	/* A directory others may write (0777): neither a symlink nor a hard link. */
	struct dir d, v;
	char hard[160], previous[160];

	(void)state;
	dir_make(&d);
	victim_in(&v);
	snprintf(previous, sizeof(previous), "%s/previous.log", v.path);
	assert_int_equal(chmod(d.path, 0777), 0);
	assert_int_equal(symlink(v.log, d.log), 0);
	refused(d.log, v.log, previous);
	snprintf(hard, sizeof(hard), "%s/hard.log", d.path);
	assert_int_equal(link(v.log, hard), 0);
	refused(hard, v.log, previous);
	dir_remove(&d);
	dir_remove(&v);
}

static void
test_link_in_other_users_dir_refused(void **state)
{
	/* T107: `mail` owns the log directory and plants a link to a root file. */
	struct dir d, v;
	char previous[160];

	(void)state;
	if (geteuid() != 0) {
		print_message("SKIP: needs root (a directory of another user)\n");
		skip();
	}
	dir_make(&d);
	victim_in(&v);
	assert_int_equal(chmod(d.path, 0755), 0);
	assert_int_equal(symlink(v.log, d.log), 0);
	assert_int_equal(lchown(d.log, NOBODY, NOBODY), 0);
	assert_int_equal(chown(d.path, NOBODY, NOBODY), 0);
	snprintf(previous, sizeof(previous), "%s/previous.log", v.path);
	refused(d.log, v.log, previous);
	dir_remove(&d);
	dir_remove(&v);
}

static void
test_link_in_roots_dir_followed(void **state)
{
	/* The same link in a directory only root may write is root's own choice. */
	struct dir d, v;
	char *text;

	(void)state;
	if (geteuid() != 0) {
		print_message("SKIP: needs root (a directory only root may write)\n");
		skip();
	}
	dir_make(&d);
	victim_in(&v);
	assert_int_equal(chmod(d.path, 0700), 0);
	assert_int_equal(symlink(v.log, d.log), 0);
	assert_int_equal(log_open("unit-log", LOG_TO_FILE, d.log, 0), 0);
	log_warnx("through root's link");
	log_close();
	text = slurp(v.log);
	assert_non_null(strstr(text, "]: warning: through root's link\n"));
	free(text);
	dir_remove(&d);
	dir_remove(&v);
}

/* open_fds - how many descriptors this process has open. */
static int
open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

static void
test_reopen_closes_old_file(void **state)
{
	/* A reload that names the log again must not leak a descriptor each time. */
	struct dir d;
	int before, after;

	(void)state;
	dir_make(&d);
	assert_int_equal(log_open("unit-log", LOG_TO_FILE, d.log, 0), 0);
	before = open_fds();
	for (int i = 0; i < 20; i++)
		assert_int_equal(log_open("unit-log", LOG_TO_FILE, d.log, 0), 0);
	after = open_fds();
	assert_int_equal(after, before);
	log_close();
	assert_int_equal(open_fds(), before - 1);
	dir_remove(&d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_lines),
		cmocka_unit_test(test_controls_masked),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_warn_errno),
		cmocka_unit_test(test_link_in_writable_dir_refused),
		cmocka_unit_test(test_link_in_other_users_dir_refused),
		cmocka_unit_test(test_link_in_roots_dir_followed),
		cmocka_unit_test(test_reopen_closes_old_file),
	};

	return cmocka_run_group_tests(tests, NULL, remove_all);
}
