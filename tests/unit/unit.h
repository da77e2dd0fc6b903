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

/* remove_tree - rm -rf dir, a test's own temporary directory; 0, or -1 (said). */
static inline int
remove_tree(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) == 0)
		return 0;
	fprintf(stderr, "could not remove %s\n", dir);
	return -1;
}

/* file_text - a whole file, NUL-terminated (malloc'd), or NULL when missing. */
static inline char *
file_text(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *text;
	long len;

	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	text = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
	if (len > 0 && fread(text, 1, (size_t)len, fp) != (size_t)len)
		text[0] = '\0';
	fclose(fp);
	return text;
}

/* count_lines - the LFs in text. */
static inline size_t
count_lines(const char *text)
{
	size_t n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

#ifdef CONF_H
/* conf_from_text - a configuration parsed from text (through a temporary file). */
static inline struct conf *
conf_from_text(const char *text)
{
	struct diag d = {NULL, NULL, 0};
	char *path = write_temp(text);
	struct conf *c = conf_load(path, 0, &d);

	unlink(path);
	free(path);
	if (c == NULL) {
		fprintf(stderr, "conf_from_text: %d error(s) in:\n%s", d.errors, text);
		exit(1);
	}
	return c;
}

/*
 * conf_with_new_spool - a fresh directory made from pattern (mkdtemp) and a
 * configuration whose spool it is; for the modules that keep files there.
 */
static inline struct conf *
conf_with_new_spool(char *pattern)
{
	char text[300];

	if (mkdtemp(pattern) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(text, sizeof(text), "spool_dir = \"%s\"\n", pattern);
	return conf_from_text(text);
}
#endif

#endif
