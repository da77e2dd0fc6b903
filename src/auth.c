/*
 * auth.c - checking AUTH credentials against a crypt(3) users file.
 * See auth.h.
 */
#include "auth.h"
#include "util.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

enum auth_result
auth_check(const char *file, const char *user, const char *pass, char *why,
    size_t whysize)
{
	FILE *fp = fopen(file, "r");
	struct stat st;
	char line[1024];
	enum auth_result rc = AUTH_BAD;
	size_t ulen = strlen(user);

	if (fp == NULL) {
		snprintf(why, whysize, "open %s: %s", file, strerror(errno));
		return AUTH_TEMP;
	}
	if (fstat(fileno(fp), &st) < 0 || (st.st_mode & S_IRWXO)) {
		snprintf(why, whysize, "%s is readable by others: refusing to use it", file);
		fclose(fp);
		return AUTH_TEMP;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		struct crypt_data cd;
		const char *hash, *out;

		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || strncmp(line, user, ulen) != 0 || line[ulen] != ':')
			continue;
		hash = line + ulen + 1;
		memset(&cd, 0, sizeof(cd));
		out = crypt_r(pass, hash, &cd);
		/* Compare in constant time; a "*" result means the hash was unusable. */
		if (out != NULL && out[0] != '*' && strlen(out) == strlen(hash) &&
		    CRYPTO_memcmp(out, hash, strlen(hash)) == 0)
			rc = AUTH_OK;
		explicit_bzero(&cd, sizeof(cd));
		break;
	}
	explicit_bzero(line, sizeof(line));
	fclose(fp);
	return rc;
}

int
auth_b64decode(const char *in, size_t inlen, char *out, size_t outsize)
{
	unsigned char buf[768];
	int n;
	size_t pad = 0;

	if (inlen == 0) {
		out[0] = '\0';
		return 0;
	}
	if (inlen % 4 != 0 || inlen / 4 * 3 > sizeof(buf))
		return -1;
	n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)inlen);
	if (n < 0)
		return -1;
	if (in[inlen - 1] == '=')
		pad++;
	if (in[inlen - 2] == '=')
		pad++;
	n -= (int)pad;
	if ((size_t)n + 1 > outsize)
		return -1;
	memcpy(out, buf, (size_t)n);
	out[n] = '\0';
	explicit_bzero(buf, sizeof(buf));
	return n;
}
