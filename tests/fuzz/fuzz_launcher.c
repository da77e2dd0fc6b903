/*
 * fuzz_launcher.c - libFuzzer: a request to the root pipe launcher
 * (launcher_parse).  The launcher runs as root and reads requests from the
 * session, the process exposed to the network: were that taken over, this is
 * what it could send.  Each input is one request message; whatever parses
 * must point only inside the message, at strings that end inside it, within
 * their bounds and free of control characters, with a recipient that is an
 * address; and formatting the values again must give the same message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "launcher.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* inside - s is a string that starts and ends within buf[0..len), no control bytes. */
static int
inside(const char *s, const char *buf, size_t len, size_t max)
{
	const char *nul;

	if (s == NULL || s < buf || s >= buf + len)
		return 0;
	nul = memchr(s, '\0', len - (size_t)(s - buf));
	if (nul == NULL || (size_t)(nul - s) > max)
		return 0;
	for (const char *p = s; p < nul; p++)
		if ((unsigned char)*p < 32 || *p == 127)
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct delivery_values v;
	char *buf = malloc(size ? size : 1);   /* exactly the message: ASan sees past it */
	char why[256], again[LAUNCHER_MSG_MAX];
	struct addr ad;

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	if (launcher_parse(buf, size, &v, why, sizeof(why)) == 0) {
		if (!inside(v.recipient, buf, size, ADDR_PATH_MAX) ||
		    !inside(v.sender, buf, size, ADDR_PATH_MAX) ||
		    !inside(v.client_addr, buf, size, 63) || !inside(v.helo, buf, size, 255) ||
		    !inside(v.queue_id, buf, size, 31) || !inside(v.delivery_id, buf, size, 64) ||
		    addr_parse_plain(v.recipient, &ad) != ADDR_OK)
			abort();
		if (launcher_format(&v, again, sizeof(again)) != size ||
		    memcmp(again, data, size) != 0)
			abort();
	} else if (memchr(why, '\0', sizeof(why)) == NULL) {
		abort();
	}
	free(buf);
	return 0;
}
