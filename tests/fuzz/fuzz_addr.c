/* fuzz_addr.c - libFuzzer: RFC 5321 paths and plain addresses (addr.c). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addr a;
	size_t end;
	char text[ADDR_PATH_MAX * 3], out[ADDR_PATH_MAX * 3];

	addr_parse_path((const char *)data, size, 1, 1, &a, &end);
	addr_parse_path((const char *)data, size, 0, 0, &a, &end);
	if (size < sizeof(text)) {
		memcpy(text, data, size);
		text[size] = '\0';
		if (addr_parse_plain(text, &a) == ADDR_OK)
			addr_format(&a, out, sizeof(out));
		addr_domain_valid(text, 1);
	}
	return 0;
}
