/*
 * fuzz_rtqueue.c - libFuzzer: what Request Tracker (or anything at its URL)
 * answers the queue fetch (issue 20): the HTTP response (http_parse: status
 * line, Content-Length, chunked bodies) and the REST 2 page inside it
 * (rtq_parse_page: the JSON walk, escapes, surrogates, nesting).  Both must
 * refuse or take any input without reading out of bounds or keeping a name
 * with a control character (it would break the cache file's lines).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "rtqueue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
page(const char *p, size_t n)
{
	struct rtq_names names = {0};
	long count, per_page;
	char why[200];

	if (rtq_parse_page(p, n, &names, &count, &per_page, why, sizeof(why)) == 0)
		for (size_t i = 0; i < names.n; i++)
			for (const char *c = names.v[i]; *c; c++)
				if ((unsigned char)*c < 32 || *c == 127)
					abort();
	rtq_names_free(&names);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_response r;
	char why[200];

	if (size > 1024 * 1024)
		return 0;
	page((const char *)data, size);
	if (http_parse((const char *)data, size, &r, why, sizeof(why)) == 0) {
		if (r.body[r.len] != '\0')
			abort();
		page(r.body, r.len);
		http_response_free(&r);
	}
	return 0;
}
