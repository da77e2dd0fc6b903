/* unit.h - helpers shared by the cmocka unit tests (not part of undersmtpd). */
#ifndef UNIT_H
#define UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* write_temp - a file holding text, mode 0644; the path is malloc'd. */
static inline char *
write_temp(const char *text)
{
	char *path = strdup("/tmp/undersmtpd-unit-XXXXXX");
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		perror("write_temp");
		exit(1);
	}
	fchmod(fd, 0644);
	close(fd);
	return path;
}

/* collect - a struct diag reporter that keeps the messages in one buffer. */
struct collected {
	char text[8192];
};

static inline void
collect(void *ctx, const char *file, int line, const char *msg)
{
	struct collected *c = ctx;
	size_t len = strlen(c->text);

	(void)file;
	snprintf(c->text + len, sizeof(c->text) - len, "%d: %s\n", line, msg);
}

#endif
