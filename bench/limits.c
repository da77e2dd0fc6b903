/*
 * limits.c - what this machine allows at best, measured in the same run as
 * the benchmark so the table shows how close undersmtpd and Postfix come:
 *
 *   limits fork N PROGRAM ARG [PROCS]
 *                                 N times in all, over PROCS processes (1):
 *                                 pipe, fork, exec PROGRAM ARG, write 4 KB to
 *                                 its stdin, wait - a pipe delivery with
 *                                 nothing else
 *   limits fsync N DIR WRITERS    N times in all, over WRITERS processes:
 *                                 create, write 4 KB, fsync, rename, fsync
 *                                 the directory - one durable spool file
 *   limits commit N DIR WRITERS   the same for undersmtpd's commit (SPEC 8):
 *                                 a 4 KB message and a small envelope in
 *                                 DIR/tmp, both fsync'd, linked into
 *                                 DIR/queue, DIR/queue fsync'd - two files,
 *                                 three fsyncs
 *
 * Prints the rate per second on standard output.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char block[4096];

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

static void
one_fork(char *prog, char *arg)
{
	char *argv[] = {prog, arg, NULL};
	int p[2], status;
	pid_t pid;

	if (pipe(p) < 0)
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		dup2(p[0], 0);
		close(p[0]);
		close(p[1]);
		execv(prog, argv);
		_exit(127);
	}
	close(p[0]);
	if (write(p[1], block, sizeof(block)) != (ssize_t)sizeof(block))
		die("write");
	close(p[1]);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("the program failed");
}

static void
one_file(const char *dir, int dirfd, long k)
{
	char tmp[4200], final[4200];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/tmp.%ld.%ld", dir, (long)getpid(), k);
	snprintf(final, sizeof(final), "%s/f.%ld.%ld", dir, (long)getpid(), k);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		die(tmp);
	if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) || fsync(fd) < 0 ||
	    close(fd) < 0)
		die("write+fsync");
	if (rename(tmp, final) < 0 || fsync(dirfd) < 0)
		die("rename+fsync dir");
	if (unlink(final) < 0)
		die("unlink");
}

static void
one_commit(const char *dir, int qfd, long k)
{
	char tmsg[4200], tenv[4200], qmsg[4200], qenv[4200];
	int m, e;

	snprintf(tmsg, sizeof(tmsg), "%s/tmp/%ld.%ld.msg", dir, (long)getpid(), k);
	snprintf(tenv, sizeof(tenv), "%s/tmp/%ld.%ld.env", dir, (long)getpid(), k);
	snprintf(qmsg, sizeof(qmsg), "%s/queue/%ld.%ld.msg", dir, (long)getpid(), k);
	snprintf(qenv, sizeof(qenv), "%s/queue/%ld.%ld.env", dir, (long)getpid(), k);
	if ((m = open(tmsg, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0 ||
	    (e = open(tenv, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0)
		die("create");
	if (write(m, block, sizeof(block)) != (ssize_t)sizeof(block) ||
	    write(e, block, 300) != 300)
		die("write");
	if (fsync(m) < 0 || fsync(e) < 0 || close(m) < 0 || close(e) < 0)
		die("fsync");
	if (link(tmsg, qmsg) < 0 || link(tenv, qenv) < 0 || fsync(qfd) < 0)
		die("link+fsync dir");
	if (unlink(tmsg) < 0 || unlink(tenv) < 0 || unlink(qenv) < 0 || unlink(qmsg) < 0)
		die("unlink");
}

int
main(int argc, char **argv)
{
	double t0;
	long n;

	memset(block, 'x', sizeof(block));
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "fork") == 0) {
		int procs = argc == 6 ? atoi(argv[5]) : 1;

		n = atol(argv[2]);
		if (procs < 1)
			die("PROCS");
		t0 = now();
		for (int w = 0; w < procs; w++) {
			pid_t pid = fork();

			if (pid < 0)
				die("fork");
			if (pid == 0) {
				for (long k = w; k < n; k += procs)
					one_fork(argv[3], argv[4]);
				_exit(0);
			}
		}
		for (int w = 0; w < procs; w++) {
			int status;

			if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
				die("a forker failed");
		}
	} else if (argc == 5 && (strcmp(argv[1], "fsync") == 0 ||
	    strcmp(argv[1], "commit") == 0)) {
		int writers = atoi(argv[4]), commit = argv[1][0] == 'c';
		char sub[4200];

		if (commit) {
			snprintf(sub, sizeof(sub), "%s/tmp", argv[3]);
			if (mkdir(sub, 0700) < 0 && errno != EEXIST)
				die(sub);
			snprintf(sub, sizeof(sub), "%s/queue", argv[3]);
			if (mkdir(sub, 0700) < 0 && errno != EEXIST)
				die(sub);
		}

		n = atol(argv[2]);
		t0 = now();
		for (int w = 0; w < writers; w++) {
			pid_t pid = fork();

			if (pid < 0)
				die("fork");
			if (pid == 0) {
				int dfd = open(commit ? sub : argv[3], O_RDONLY | O_DIRECTORY);

				if (dfd < 0)
					die(argv[3]);
				for (long k = w; k < n; k += writers) {
					if (commit)
						one_commit(argv[3], dfd, k);
					else
						one_file(argv[3], dfd, k);
				}
				_exit(0);
			}
		}
		for (int w = 0; w < writers; w++) {
			int status;

			if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
				die("a writer failed");
		}
	} else {
		fprintf(stderr, "usage: limits fork N PROGRAM ARG [PROCS] | "
		    "limits fsync|commit N DIR WRITERS\n");
		return 64;
	}
	printf("%.1f\n", (double)n / (now() - t0));
	return 0;
}
