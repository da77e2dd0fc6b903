/*
 * drop.c - undersmtpd-drop, the setgid maildrop helper (SPEC 11).
 *
 *   usage: undersmtpd-drop DIR SIZE
 *
 * Installed mode 2755, group undersmtpd-drop, by make install-sendmail; the
 * only privileged program a user's sendmail runs.  It copies exactly SIZE
 * bytes of standard input, which must start like a maildrop file, into a new
 * file in DIR, makes it durable, and exits 0.  Anything else exits non-zero
 * and leaves no complete file.
 *
 * Its privilege (the group) is good for one thing: creating files in a
 * maildrop.  So DIR must be the maildrop of the system configuration
 * (spool_dir/maildrop of DEFAULT_CONF, which is world-readable and the only
 * file it reads), a directory of the helper's effective group with mode 1730
 * - checked after chdir() so no symlink swap can point it elsewhere.  Since
 * anyone may run it straight, bypassing sendmail, it enforces the limits of
 * that configuration itself: a SIZE over max_message_size (plus room for the
 * maildrop header) exits 73 before a byte is written; free space below
 * min_free_space, before or while writing, exits 75 and removes the file.
 * It reads no environment and keeps the file's contents the user's business:
 * the queue runner parses them as untrusted input.
 *
 * Names: tmp.SECONDS.NANOSECONDS.PID while writing, then SECONDS.INODE -
 * unique while the file lives.  A tmp file is created with mode 0 and
 * flock()ed before it is made readable (0644): the queue runner takes a
 * readable tmp file that nobody holds locked for the remains of a helper
 * that died (SIGKILL, the timeout) and removes it at its next pickup.
 */
#define _GNU_SOURCE             /* syncfs */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <sys/file.h>
#include <sys/statvfs.h>

#include "conf.h"
#include "maildrop.h"
#include "util.h"

#ifndef DEFAULT_CONF
#error "DEFAULT_CONF must name the system configuration (Makefile)"
#endif

#define SPACE_CHECK_EVERY (1024 * 1024)   /* bytes written between free-space checks */

#define DROP_MAX_SIZE ((unsigned long long)2 << 30)  /* 2 GiB: a sanity bound */
#define DROP_TIMEOUT 600        /* seconds for the whole input */

static const char *dir_arg;
/* The limits of the system configuration: set once in main(), before any input. */
static uint64_t min_free_space;

#if defined(__SANITIZE_ADDRESS__)
/*
 * In the sanitizer build (make asan): LeakSanitizer cannot inspect a setgid
 * process and would fail every run.  The helper allocates nothing to leak.
 */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "detect_leaks=0";
}
#endif

static void
report(void *ctx, const char *file, int line, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "undersmtpd-drop: %s:%d: %s\n", file, line, msg);
}

static void
fail(const char *what)
{
	fprintf(stderr, "undersmtpd-drop: %s: %s\n", what, strerror(errno));
}

/* standard_fds - a closed 0, 1 or 2 would become our file: point them at /dev/null. */
static int
standard_fds(void)
{
	for (int fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) < 0) {
			int n = open("/dev/null", O_RDWR);

			if (n != fd)
				return -1;
		}
	return 0;
}

/* enter_maildrop - chdir to DIR and check that it is what we may write. */
static int
enter_maildrop(const struct conf *c)
{
	char want[4096];
	struct stat st;

	if (str_fmt(want, sizeof(want), "%s/maildrop", c->spool_dir) < 0 ||
	    strcmp(dir_arg, want) != 0) {
		fprintf(stderr, "undersmtpd-drop: %s is not the maildrop of %s (%s/maildrop)\n",
		    dir_arg, DEFAULT_CONF, c->spool_dir);
		return EX_USAGE;
	}
	if (chdir(dir_arg) < 0) {
		fail(dir_arg);
		return EX_TEMPFAIL;
	}
	if (stat(".", &st) < 0) {
		fail(dir_arg);
		return EX_TEMPFAIL;
	}
	if (!S_ISDIR(st.st_mode) || st.st_gid != getegid() ||
	    (st.st_mode & 07777) != MAILDROP_MODE) {
		fprintf(stderr, "undersmtpd-drop: %s is not a maildrop: it must be a directory "
		    "of group %ld (this program's group) with mode %o (make install-sendmail)\n",
		    dir_arg, (long)getegid(), MAILDROP_MODE);
		return EX_CONFIG;
	}
	return 0;
}

/*
 * space_left - 0 when the maildrop's file system keeps min_free_space free
 * after need more bytes; -1 after a message.
 */
static int
space_left(int fd, uint64_t need)
{
	struct statvfs vfs;
	uint64_t avail;

	if (fstatvfs(fd, &vfs) < 0) {
		fail("statvfs the maildrop");
		return -1;
	}
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (avail < need || avail - need < min_free_space) {
		fprintf(stderr, "undersmtpd-drop: not enough free space in %s: %llu bytes free, "
		    "%llu more needed and min_free_space is %llu\n", dir_arg,
		    (unsigned long long)avail, (unsigned long long)need,
		    (unsigned long long)min_free_space);
		return -1;
	}
	return 0;
}

/* copy_input - exactly size bytes from standard input into fd. */
static int
copy_input(int fd, unsigned long long size)
{
	char buf[65536];
	unsigned long long got = 0, checked = 0;
	size_t magic = strlen(MAILDROP_MAGIC);

	for (;;) {
		ssize_t n = read(0, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fail("read standard input");
			return -1;
		}
		if (n == 0)
			break;
		if (got == 0 && ((size_t)n < magic || memcmp(buf, MAILDROP_MAGIC, magic) != 0)) {
			fprintf(stderr, "undersmtpd-drop: the input is not a maildrop file\n");
			return -1;
		}
		if ((unsigned long long)n > size - got) {
			fprintf(stderr, "undersmtpd-drop: more input than the %llu bytes announced\n",
			    size);
			return -1;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				fail("write");
				return -1;
			}
			off += w;
		}
		got += (unsigned long long)n;
		/* The disk may fill while we write: look again every megabyte. */
		if (got - checked >= SPACE_CHECK_EVERY) {
			checked = got;
			if (space_left(fd, size - got) < 0)
				return -1;
		}
	}
	if (got != size) {
		fprintf(stderr, "undersmtpd-drop: the input ended after %llu of %llu bytes\n",
		    got, size);
		return -1;
	}
	return 0;
}

/* store - the new file, written, synced, renamed into place, synced again. */
static int
store(unsigned long long size)
{
	char tmp[80], final[64];
	struct timespec now;
	struct stat st;
	int fd;

	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(tmp, sizeof(tmp), "tmp.%lld.%ld.%ld", (long long)now.tv_sec, now.tv_nsec,
	    (long)getpid());
	/*
	 * Mode 0 until locked: the runner cannot open it, so it cannot mistake
	 * a file being born for one whose helper died (see the top).
	 */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0) {
		fail("create a file in the maildrop");
		return EX_TEMPFAIL;
	}
	/* Readable by the runner, which owns the directory but not the file. */
	if (flock(fd, LOCK_EX) < 0 || fchmod(fd, 0644) < 0) {
		fail("lock the maildrop file");
		goto fail;
	}
	if (space_left(fd, size) < 0 || copy_input(fd, size) < 0)
		goto fail;
	if (fstat(fd, &st) < 0 || fsync(fd) < 0) {
		fail("write the maildrop file");
		goto fail;
	}
	/* The name the runner takes: unique as long as the inode is ours. */
	snprintf(final, sizeof(final), "%lld.%llu", (long long)time(NULL),
	    (unsigned long long)st.st_ino);
	if (rename(tmp, final) < 0) {
		fail("rename in the maildrop");
		goto fail;
	}
	/*
	 * The directory entry must be durable too, but the maildrop is not
	 * readable by us, so it cannot be opened to fsync it: sync its whole
	 * file system (rare local mail, not the SMTP path).
	 */
	if (syncfs(fd) < 0) {
		fail("syncfs");
		unlink(final);
		close(fd);
		return EX_TEMPFAIL;
	}
	if (close(fd) < 0) {
		fail("close");
		unlink(final);
		return EX_TEMPFAIL;
	}
	return 0;
fail:
	unlink(tmp);
	close(fd);
	return EX_TEMPFAIL;
}

int
main(int argc, char **argv)
{
	unsigned long long size;
	char *end;
	sigset_t block;
	int rc;

	if (standard_fds() < 0)
		return EX_TEMPFAIL;
	if (argc != 3 || argv[1][0] != '/') {
		fprintf(stderr, "usage: undersmtpd-drop /path/to/maildrop SIZE\n");
		return EX_USAGE;
	}
	dir_arg = argv[1];
	errno = 0;
	size = strtoull(argv[2], &end, 10);
	if (errno != 0 || *end != '\0' || argv[2][0] < '0' || argv[2][0] > '9' || size == 0 ||
	    size > DROP_MAX_SIZE) {
		fprintf(stderr, "undersmtpd-drop: bad size %s\n", argv[2]);
		return EX_USAGE;
	}
	{
		struct diag d = {report, NULL, 0};
		struct conf *c = conf_load(DEFAULT_CONF, 1, &d);

		if (c == NULL) {
			fprintf(stderr, "undersmtpd-drop: %s has errors: not accepting mail\n",
			    DEFAULT_CONF);
			return EX_CONFIG;
		}
		/* The header holds the envelope: room for it on top of the message. */
		if (c->max_message_size > 0 && size > c->max_message_size + MAILDROP_HEADER_MAX) {
			fprintf(stderr, "undersmtpd-drop: %llu bytes is more than max_message_size "
			    "(%llu) allows\n", size, (unsigned long long)c->max_message_size);
			conf_free(c);
			return EX_CANTCREAT;
		}
		min_free_space = c->min_free_space;
		rc = enter_maildrop(c);
		conf_free(c);
		if (rc != 0)
			return rc;
	}
	/* Finish or clean up: only SIGKILL (or the timeout) leaves a tmp file. */
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGTSTP);
	sigprocmask(SIG_BLOCK, &block, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, SIG_DFL);
	alarm(DROP_TIMEOUT);
	umask(077);
	return store(size);
}
