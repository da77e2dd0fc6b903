/*
 * fuzz_auth.c - libFuzzer: what a client sends in an AUTH exchange (auth.c).
 * The input is one base64 response as the client writes it; whatever decodes
 * is split as an AUTH PLAIN response.  Checks besides the sanitizers: the
 * decoded length is what the base64 length promises, re-encoding gives the
 * same bytes back, a PLAIN split yields whole fields, and a refused one
 * leaves no piece of the password in its buffer.
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The buffers of cmd_auth: 600 for PLAIN, 256 for each field. */
	char out[600], user[256], pass[256];
	unsigned char again[800], back[600];
	int n, m;

	if (size > 1024)
		return 0;
	n = auth_b64decode((const char *)data, size, out, sizeof(out));
	if (n < 0)
		return 0;
	if ((size_t)n >= sizeof(out) || out[n] != '\0' ||
	    (size > 0 && (size_t)n > size / 4 * 3) || (size > 0 && (size_t)n + 2 < size / 4 * 3))
		abort();
	/* Decoding is not lossy: what came out encodes and decodes to itself. */
	m = EVP_EncodeBlock(again, (const unsigned char *)out, n);
	if (auth_b64decode((const char *)again, (size_t)m, (char *)back, sizeof(back)) != n ||
	    memcmp(back, out, (size_t)n) != 0)
		abort();
	memset(pass, 'x', sizeof(pass));
	switch (auth_plain_split(out, (size_t)n, user, sizeof(user), pass, sizeof(pass))) {
	case AUTH_PLAIN_OK:
		/* Both fields whole: their lengths and two NULs account for the input. */
		if (strlen(user) + strlen(pass) + 2 > (size_t)n ||
		    memcmp(out + n - strlen(pass), pass, strlen(pass)) != 0)
			abort();
		break;
	case AUTH_PLAIN_BAD:
	case AUTH_PLAIN_AUTHZID:
		/* A refused response leaves no part of a password behind. */
		for (size_t i = 0; i < sizeof(pass); i++)
			if (pass[i] != '\0' && pass[i] != 'x')
				abort();
		break;
	default:
		abort();
	}
	return 0;
}
