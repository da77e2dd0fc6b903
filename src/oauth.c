/*
 * oauth.c - OAuth2 tokens from the administrator's helper.  See oauth.h.
 */
#define _GNU_SOURCE   /* pipe2(2) */
#include "oauth.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HELPER_OUTPUT_MAX 16384
#define HELPER_ARGS_MAX 32
#define HELPER_TIMEOUT 30       /* seconds, when the smarthost names none */

/* cache_path - SPOOL/tmp/oauth-NAME.token, the name's odd characters as '_'. */
static int
cache_path(const struct conf *c, const struct smarthost_conf *sh, char *out, size_t size)
{
	char name[64];
	size_t i = 0;

	for (; sh->name[i] != '\0' && i + 1 < sizeof(name); i++) {
		char ch = sh->name[i];

		name[i] = ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-') ? ch : '_';
	}
	name[i] = '\0';
	return str_fmt(out, size, "%s/tmp/oauth-%s.token", c->spool_dir, name);
}

/* token_ok - the characters of a bearer token (RFC 6750 b64token), bounded. */
static int
token_ok(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > OAUTH_TOKEN_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
		    (t[i] >= '0' && t[i] <= '9') || strchr("-._~+/=", t[i]) != NULL))
			return 0;
	return 1;
}

/* read_cache - the kept token, if it has not expired; 0, or -1. */
static int
read_cache(const char *path, char *token, size_t size)
{
	char buf[OAUTH_TOKEN_MAX + 64], *nl;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	ssize_t n;
	long long expiry;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	if (nl == NULL || sscanf(buf, "%lld", &expiry) != 1)
		return -1;
	if (expiry != 0 && expiry <= (long long)time(NULL) + 10)
		return -1;       /* expired, or about to while we use it */
	*nl++ = '\0';
	nl[strcspn(nl, "\r\n")] = '\0';
	if (!token_ok(nl))
		return -1;
	return str_copy(token, size, nl) < 0 ? -1 : 0;
}

/* write_cache - the token and its expiry (0: until refused), replaced whole. */
static void
write_cache(const char *path, const char *token, long long expiry)
{
	char tmp[4200];
	FILE *fp;
	int fd;

	/* Queue workers may write at once: each its own file, the last rename wins. */
	if (str_fmt(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid()) < 0)
		return;
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || (fp = fdopen(fd, "w")) == NULL) {
		if (fd >= 0)
			close(fd);
		log_warn("oauth: keep the token in %s", tmp);
		return;
	}
	fprintf(fp, "%lld\n%s\n", expiry, token);
	if (fclose(fp) != 0 || rename(tmp, path) < 0) {
		log_warn("oauth: keep the token in %s", path);
		unlink(tmp);
	}
}

/* split_words - the command into argv on spaces and tabs (no shell); argc or -1. */
static int
split_words(char *cmd, char **argv, int max)
{
	int n = 0;

	for (char *save = NULL, *w = strtok_r(cmd, " \t", &save); w != NULL;
	    w = strtok_r(NULL, " \t", &save)) {
		if (n + 1 >= max)
			return -1;
		argv[n++] = w;
	}
	argv[n] = NULL;
	return n;
}

static void __attribute__((noreturn))
helper_child(char **argv, int out)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};

	if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	signal(SIGPIPE, SIG_DFL);
	execve(argv[0], argv, envp);
	_exit(127);
}

/* run_helper - its output (at most HELPER_OUTPUT_MAX) within timeout; 0 or -1. */
static int
run_helper(const struct smarthost_conf *sh, char *out, size_t size, char *why,
    size_t whysize)
{
	char cmd[4096], *argv[HELPER_ARGS_MAX];
	long timeout = sh->timeout > 0 ? sh->timeout : HELPER_TIMEOUT;
	int64_t deadline = now_ms() + timeout * 1000;
	int p[2], status = 0;
	size_t len = 0;
	pid_t pid;

	if (str_copy(cmd, sizeof(cmd), sh->auth_token_command) < 0 ||
	    split_words(cmd, argv, HELPER_ARGS_MAX) < 1) {
		snprintf(why, whysize, "auth_token_command: too long, or too many words");
		return -1;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(why, whysize, "pipe for auth_token_command: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(why, whysize, "fork for auth_token_command: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0)
		helper_child(argv, p[1]);
	close(p[1]);
	for (;;) {
		struct pollfd pfd = {p[0], POLLIN, 0};
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			kill(pid, SIGKILL);
			snprintf(why, whysize, "auth_token_command %s: timed out after %ld s",
			    argv[0], timeout);
			len = (size_t)-1;
			break;
		}
		n = read(p[0], out + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || (len += (size_t)n) >= size - 1)
			break;
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (len == (size_t)-1)
		return -1;
	out[len] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		out[strcspn(out, "\n")] = '\0';
		str_mask_controls(out);
		snprintf(why, whysize, "auth_token_command %s failed (%s %d): %.200s", argv[0],
		    WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ?
		    WEXITSTATUS(status) : WTERMSIG(status), out);
		return -1;
	}
	return 0;
}

int
oauth_token(const struct conf *c, const struct smarthost_conf *sh, int fresh,
    char *token, size_t size, char *why, size_t whysize)
{
	char path[4200], *out, *second;
	long long lifetime = 0;
	int rc = -1;

	if (cache_path(c, sh, path, sizeof(path)) == 0 && !fresh &&
	    read_cache(path, token, size) == 0)
		return 0;
	out = xmalloc(HELPER_OUTPUT_MAX);
	if (run_helper(sh, out, HELPER_OUTPUT_MAX, why, whysize) == 0) {
		second = strchr(out, '\n');
		if (second != NULL) {
			*second++ = '\0';
			if (sscanf(second, "%lld", &lifetime) != 1 || lifetime < 0)
				lifetime = 0;
		}
		out[strcspn(out, "\r")] = '\0';
		if (!token_ok(out) || str_copy(token, size, out) < 0) {
			snprintf(why, whysize, "auth_token_command printed no token on its first "
			    "line");
		} else {
			write_cache(path, token, lifetime > 0 ? (long long)time(NULL) + lifetime : 0);
			rc = 0;
		}
	}
	explicit_bzero(out, HELPER_OUTPUT_MAX);
	free(out);
	return rc;
}

int
oauth_response(const struct smarthost_conf *sh, const char *token, char *out,
    size_t size)
{
	int n;

	if (sh->auth_mechanism == SASL_XOAUTH2)
		n = snprintf(out, size, "user=%s\001auth=Bearer %s\001\001", sh->auth_user, token);
	else
		n = snprintf(out, size, "n,a=%s,\001host=%s\001port=%ld\001auth=Bearer %s\001\001",
		    sh->auth_user, sh->host, sh->port, token);
	return n < 0 || (size_t)n >= size ? -1 : n;
}
