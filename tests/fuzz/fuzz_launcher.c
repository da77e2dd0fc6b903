/*
 * fuzz_launcher.c - libFuzzer: a request to the root pipe launcher
 * (launcher_parse).  The launcher runs as root and reads requests from the
 * session, the process exposed to the network: were that taken over, this is
 * what it could send.  Each input is one request message; whatever parses
 * must point only inside the message, at strings that end inside it, with
 * counts and a timeout in their bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "launcher.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* inside - s is a string that starts and ends within buf[0..len). */
static int
inside(const char *s, const char *buf, size_t len)
{
	return s != NULL && s >= buf && s < buf + len &&
	    memchr(s, '\0', len - (size_t)(s - buf)) != NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[LAUNCHER_MAX_ARGS + 1], *envp[LAUNCHER_MAX_ENV + 1];
	struct pipe_request req;
	char *buf = malloc(size ? size : 1);   /* exactly the message: ASan sees past it */
	size_t n;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	if (launcher_parse(buf, size, &req, argv, envp) == 0) {
		if (!inside(req.path, buf, size) || !inside(req.home, buf, size) ||
		    req.timeout <= 0 || req.timeout > 86400 || req.stdin_fd != -1)
			abort();
		for (n = 0; req.argv[n] != NULL; n++)
			if (n >= LAUNCHER_MAX_ARGS || !inside(req.argv[n], buf, size))
				abort();
		if (n == 0)
			abort();
		for (n = 0; req.envp[n] != NULL; n++)
			if (n >= LAUNCHER_MAX_ENV || !inside(req.envp[n], buf, size))
				abort();
	}
	free(buf);
	return 0;
}
