/*
 * fuzz_maildrop.c - libFuzzer: the maildrop file header (maildrop_parse), the
 * one thing an ordinary user writes that the queue runner reads.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "maildrop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct maildrop_header h, back;
	char why[256];

	if (maildrop_parse((const char *)data, size, &h, why, sizeof(why)) == 0) {
		char **list = calloc(h.nrcpts, sizeof(char *));
		size_t len;
		char *text;

		if (h.length > size || h.nrcpts == 0 || list == NULL)
			abort();
		for (size_t i = 0; i < h.nrcpts; i++)
			list[i] = h.rcpts[i];
		/* Whatever parses must survive a round trip unchanged. */
		text = maildrop_format(h.sender, list, h.nrcpts, &len);
		if (text == NULL || maildrop_parse(text, len, &back, why, sizeof(why)) != 0 ||
		    back.nrcpts != h.nrcpts || back.length != len ||
		    strcmp(back.sender, h.sender) != 0 ||
		    strcmp(back.rcpts[h.nrcpts - 1], h.rcpts[h.nrcpts - 1]) != 0)
			abort();
		maildrop_header_free(&back);
		free(text);
		free(list);
		maildrop_header_free(&h);
	}
	return 0;
}
