/*
 * counter.c - the benchmark's pipe program, the same for undersmtpd and
 * Postfix: read the whole message, then append one line to the count file.
 * An O_APPEND write of a few bytes is atomic, so concurrent runs count right.
 *
 *   usage: counter COUNTFILE < message
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	char buf[65536];
	ssize_t n;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: counter COUNTFILE\n");
		return 64;
	}
	while ((n = read(0, buf, sizeof(buf))) > 0)
		;
	if (n < 0) {
		perror("counter: read");
		return 75;
	}
	fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0666);
	if (fd < 0 || write(fd, "1\n", 2) != 2 || close(fd) < 0) {
		perror(argv[1]);
		return 75;
	}
	return 0;
}
