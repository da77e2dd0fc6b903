/*
 * fuzz_conf.c - libFuzzer: undersmtpd.conf through libconfuse and our
 * validation.  What loads is then queried as sessions do (local domains,
 * relay networks, per-alias pipe settings), with two checks: every listed
 * local domain is found again whatever its case and with a trailing dot, and
 * every alias block is found by its name.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
query(const struct conf *c)
{
	static const unsigned char v4[16] = {127, 0, 0, 1}, v6[16] = {[15] = 1};
	char name[512];

	for (size_t i = 0; i < c->nlocal_domains; i++) {
		size_t n = strlen(c->local_domains[i]);

		if (n + 2 > sizeof(name))
			continue;
		for (size_t k = 0; k < n; k++)
			name[k] = (char)toupper((unsigned char)c->local_domains[i][k]);
		name[n] = '.';
		name[n + 1] = '\0';
		if (!conf_is_local_domain(c, c->local_domains[i]) || !conf_is_local_domain(c, name))
			abort();
	}
	conf_is_local_domain(c, "example.com");
	conf_is_local_domain(c, "");
	conf_relay_allowed(c, AF_INET, v4);
	conf_relay_allowed(c, AF_INET6, v6);
	for (size_t i = 0; i < c->nalias_overrides; i++)
		if (conf_pipe_for(c, c->alias_overrides[i].name) == &c->pipe)
			abort();
	conf_pipe_for(c, "no-such-alias");
	conf_policy_name(c->pipe.policy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/undersmtpd-fuzz-conf-XXXXXX";
	int fd = mkstemp(path);
	struct diag d = {NULL, NULL, 0};

	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		struct conf *c = conf_load(path, 0, &d);

		if (c != NULL)
			query(c);
		conf_free(c);
	}
	close(fd);
	unlink(path);
	return 0;
}
