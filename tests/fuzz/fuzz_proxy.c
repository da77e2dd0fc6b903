/* fuzz_proxy.c - libFuzzer: PROXY protocol v1/v2 headers (proxy.c). */
#include <stddef.h>
#include <stdint.h>

#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_info pi;
	int n = proxy_parse(data, size, &pi);

	if (n > 0 && (size_t)n > size)
		__builtin_trap();
	return 0;
}
