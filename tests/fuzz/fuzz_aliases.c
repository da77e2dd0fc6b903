/* fuzz_aliases.c - libFuzzer: the aliases file parser and lookups (aliases.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aliases.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/undersmtpd-fuzz-aliases-XXXXXX";
	int fd = mkstemp(path);
	struct diag d = {NULL, NULL, 0};
	struct aliases *a;

	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		a = aliases_load(path, getuid(), &d);
		if (a != NULL) {
			const struct alias_entry *e;
			struct alias_captures caps;
			char out[512];

			aliases_find(a, "postmaster");
			if (aliases_match_regex(a, "rt-general+12", "rt-general+12@example.com",
			    &e, &caps) > 0)
				aliases_expand_arg("--queue=$1${name}$9", &caps, out, sizeof(out));
			aliases_free(a);
		}
	}
	close(fd);
	unlink(path);
	return 0;
}
