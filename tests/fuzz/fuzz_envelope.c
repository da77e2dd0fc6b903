/* fuzz_envelope.c - libFuzzer: the spool envelope format (spool_parse_env). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_env e, back;
	char why[256];

	if (spool_parse_env((const char *)data, size, &e, why, sizeof(why)) == 0) {
		size_t len;
		char *text = spool_format_env(&e, &len);

		/* Whatever parses must survive a round trip unchanged. */
		if (spool_parse_env(text, len, &back, why, sizeof(why)) != 0 ||
		    back.nrcpts != e.nrcpts || strcmp(back.sender, e.sender) != 0)
			abort();
		spool_env_free(&back);
		free(text);
		spool_env_free(&e);
	}
	return 0;
}
