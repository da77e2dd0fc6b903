/*
 * recorder - the program behind pipe aliases in the black-box tests.
 *
 * It records what a program is given (argv, environment, uid/gid/groups,
 * open fds, signal state, cwd, umask, the stdin bytes) into a fresh
 * directory under --dir, then behaves as told: exit status, output, sleep,
 * signals, a daemonized grandchild, large output, closing stdin early.
 * Options are processed in order, so "--print X --exit 75" prints then exits.
 * --print-hex HEX prints bytes given in hex: an alias can make it print CR,
 * LF or NUL without a backslash in its command, which would send the command
 * through /bin/sh (and the shell would eat the escapes).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char recdir[PATH_MAX];

static void
die(const char *what)
{
	perror(what);
	exit(70);
}

static FILE *
rec_open(const char *name)
{
	char path[PATH_MAX + 64];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", recdir, name);
	fp = fopen(path, "w");
	if (fp == NULL)
		die(path);
	return fp;
}

static void
record_basics(int argc, char **argv)
{
	FILE *fp = rec_open("argv");
	gid_t groups[64];
	int ng;
	struct sigaction sa;
	sigset_t mask;
	char cwd[PATH_MAX];
	mode_t um;
	DIR *d;
	struct dirent *de;

	for (int i = 0; i < argc; i++)
		fwrite(argv[i], 1, strlen(argv[i]) + 1, fp);
	fclose(fp);
	fp = rec_open("env");
	for (char **e = environ; *e; e++)
		fwrite(*e, 1, strlen(*e) + 1, fp);
	fclose(fp);
	fp = rec_open("ids");
	ng = getgroups(64, groups);
	fprintf(fp, "uid=%u euid=%u gid=%u egid=%u groups=", (unsigned)getuid(),
	    (unsigned)geteuid(), (unsigned)getgid(), (unsigned)getegid());
	for (int i = 0; i < ng; i++)
		fprintf(fp, "%s%u", i ? "," : "", (unsigned)groups[i]);
	fprintf(fp, "\n");
	fclose(fp);
	/* fds open at start, before this program opened anything of its own. */
	fp = rec_open("signals");
	sigaction(SIGPIPE, NULL, &sa);
	sigprocmask(SIG_SETMASK, NULL, &mask);
	fprintf(fp, "sigpipe=%s blocked=%d pgid_is_pid=%d sid_is_pid=%d\n",
	    sa.sa_handler == SIG_DFL ? "default" : "changed",
	    sigismember(&mask, SIGTERM) || sigismember(&mask, SIGCHLD) ? 1 : 0,
	    getpgrp() == getpid(), getsid(0) == getpid());
	fclose(fp);
	fp = rec_open("cwd");
	um = umask(077);
	umask(um);
	fprintf(fp, "cwd=%s umask=%03o\n", getcwd(cwd, sizeof(cwd)) ? cwd : "?",
	    (unsigned)um);
	fclose(fp);
	fp = rec_open("fds");
	d = opendir("/proc/self/fd");
	if (d != NULL) {
		int self = dirfd(d), fpfd = fileno(fp);

		while ((de = readdir(d)) != NULL) {
			int fd = atoi(de->d_name);

			if (de->d_name[0] == '.' || fd == self || fd == fpfd)
				continue;
			fprintf(fp, "%d\n", fd);
		}
		closedir(d);
	}
	fclose(fp);
}

static void
record_stdin(void)
{
	FILE *fp = rec_open("stdin");
	char buf[65536];
	ssize_t n;

	while ((n = read(0, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, fp);
	fclose(fp);
}

static void
print_unescaped(const char *s)
{
	char out[4096];
	size_t o = 0;

	for (; *s && o + 1 < sizeof(out); s++) {
		if (*s == '\\' && s[1] == 'n') {
			out[o++] = '\n';
			s++;
		} else if (*s == '\\' && s[1] == 'r') {
			out[o++] = '\r';
			s++;
		} else {
			out[o++] = *s;
		}
	}
	if (write(1, out, o) < 0)
		exit(71);
}

static void
print_hex(const char *s)
{
	char out[2048];
	size_t o = 0;

	for (; s[0] && s[1] && o < sizeof(out); s += 2) {
		char pair[3] = {s[0], s[1], '\0'};

		out[o++] = (char)strtol(pair, NULL, 16);
	}
	if (write(1, out, o) < 0)
		exit(71);
}

static void
spew(long long n)
{
	static char buf[65536];

	memset(buf, 'x', sizeof(buf));
	while (n > 0) {
		ssize_t k = write(1, buf, n < (long long)sizeof(buf) ? (size_t)n : sizeof(buf));

		if (k <= 0)
			exit(74);
		n -= k;
	}
}

int
main(int argc, char **argv)
{
	int read_stdin = 1, recorded = 0;
	const char *dir = NULL;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[i + 1];
	if (dir != NULL) {
		snprintf(recdir, sizeof(recdir), "%s/rec-%ld", dir, (long)getpid());
		if (mkdir(recdir, 0755) < 0)
			die(recdir);
		record_basics(argc, argv);
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";

		if (strcmp(a, "--dir") == 0) {
			i++;
		} else if (strcmp(a, "--close-stdin") == 0) {
			close(0);
			read_stdin = 0;
		} else if (strcmp(a, "--read") == 0) {
			if (dir && read_stdin && !recorded)
				record_stdin();
			recorded = 1;
		} else if (strcmp(a, "--print") == 0) {
			print_unescaped(v);
			i++;
		} else if (strcmp(a, "--print-hex") == 0) {
			print_hex(v);
			i++;
		} else if (strcmp(a, "--spew") == 0) {
			spew(atoll(v));
			i++;
		} else if (strcmp(a, "--sleep") == 0) {
			sleep((unsigned)atoi(v));
			i++;
		} else if (strcmp(a, "--signal") == 0) {
			signal(atoi(v), SIG_DFL);
			raise(atoi(v));
			i++;
		} else if (strcmp(a, "--daemonize") == 0) {
			/* A grandchild that keeps stdout open long after we exit. */
			pid_t pid = fork();

			if (pid == 0) {
				setsid();
				sleep((unsigned)atoi(v));
				_exit(0);
			}
			i++;
		} else if (strcmp(a, "--grandchild-sleep") == 0) {
			/* A grandchild in our process group, for the group kill test. */
			pid_t pid = fork();

			if (pid == 0) {
				char path[PATH_MAX + 32];
				FILE *fp;

				sleep((unsigned)atoi(v));
				snprintf(path, sizeof(path), "%s/grandchild-survived", dir ? dir : "/tmp");
				fp = fopen(path, "w");
				if (fp)
					fclose(fp);
				_exit(0);
			}
			i++;
		} else if (strcmp(a, "--count") == 0) {
			int fd = open(v, O_WRONLY | O_APPEND | O_CREAT, 0666);

			if (fd < 0 || write(fd, "1\n", 2) != 2)
				die(v);
			close(fd);
			i++;
		} else if (strcmp(a, "--exit") == 0) {
			if (dir && read_stdin && !recorded)
				record_stdin();
			exit(atoi(v));
		}
	}
	if (dir && read_stdin && !recorded)
		record_stdin();
	return 0;
}
