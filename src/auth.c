/*
 * auth.c - checking AUTH credentials against a crypt(3) users file.
 * See auth.h.
 */
#include "auth.h"
#include "conf.h"
#include "log.h"
#include "util.h"

#include <crypt.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

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
	/* Password hashes: for the spool user's eyes only (SPEC 11). */
	if (fstat(fileno(fp), &st) < 0 || (st.st_mode & (S_IRWXG | S_IRWXO))) {
		snprintf(why, whysize, "%s is readable by group or others: refusing to use "
		    "it (chmod 600)", file);
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

/* is_b64_char - one of RFC 4648's 64 characters (ASCII whatever the locale). */
static int
is_b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '+' || c == '/';
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
	if (in[inlen - 1] == '=')
		pad = in[inlen - 2] == '=' ? 2 : 1;
	/*
	 * Only the alphabet and the final padding: EVP_DecodeBlock would skip
	 * white space at either end and decode the padding as NUL bytes.
	 */
	for (size_t i = 0; i < inlen - pad; i++)
		if (!is_b64_char(in[i]))
			return -1;
	n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)inlen);
	if (n < 0)
		return -1;
	n -= (int)pad;
	if ((size_t)n + 1 > outsize) {
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	memcpy(out, buf, (size_t)n);
	out[n] = '\0';
	explicit_bzero(buf, sizeof(buf));
	return n;
}

/* copy_field - len bytes, no NUL among them, into out with its NUL; -1 if not. */
static int
copy_field(const char *field, size_t len, char *out, size_t outsize)
{
	if (len >= outsize || memchr(field, '\0', len) != NULL)
		return -1;
	memcpy(out, field, len);
	out[len] = '\0';
	return 0;
}

enum auth_plain
auth_plain_split(const char *msg, size_t n, char *user, size_t usize, char *pass,
    size_t psize)
{
	const char *authcid, *passwd, *end = msg + n;
	const char *nul1 = memchr(msg, '\0', n), *nul2;

	if (nul1 == NULL)
		return AUTH_PLAIN_BAD;
	authcid = nul1 + 1;
	nul2 = memchr(authcid, '\0', (size_t)(end - authcid));
	if (nul2 == NULL)
		return AUTH_PLAIN_BAD;
	passwd = nul2 + 1;
	if (copy_field(authcid, (size_t)(nul2 - authcid), user, usize) < 0 ||
	    copy_field(passwd, (size_t)(end - passwd), pass, psize) < 0) {
		explicit_bzero(pass, psize);
		return AUTH_PLAIN_BAD;
	}
	/* An authorization identity is only accepted when it names the user itself. */
	if (nul1 != msg && ((size_t)(nul1 - msg) != strlen(user) ||
	    memcmp(msg, user, (size_t)(nul1 - msg)) != 0)) {
		explicit_bzero(pass, psize);
		return AUTH_PLAIN_AUTHZID;
	}
	return AUTH_PLAIN_OK;
}

/* failure_file - spool_dir/tmp/auth-HEX for this client; -1 when it does not fit. */
static int
failure_file(const struct conf *c, int family, const unsigned char ip[16], char *path,
    size_t size)
{
	static const char hex[] = "0123456789abcdef";
	char key[33];
	size_t bytes = family == AF_INET6 ? (c->client_ipv6_prefix_length + 7) / 8 : 4;
	unsigned char a[16];

	if (family != AF_INET && family != AF_INET6)
		return -1;               /* an unknown client (PROXY LOCAL) has no key */
	memcpy(a, ip, 16);
	if (family == AF_INET6 && c->client_ipv6_prefix_length % 8)
		a[bytes - 1] &= (unsigned char)(0xff << (8 - c->client_ipv6_prefix_length % 8));
	for (size_t i = 0; i < bytes && i < 16; i++) {
		key[2 * i] = hex[a[i] >> 4];
		key[2 * i + 1] = hex[a[i] & 15];
	}
	key[2 * (bytes < 16 ? bytes : 16)] = '\0';
	return str_fmt(path, size, "%s/tmp/auth-%s", c->spool_dir, key);
}

/*
 * failures - read (and with add, count one more in) a client's file, under
 * its lock; the failures within the window.
 */
static long
failures(const struct conf *c, int family, const unsigned char ip[16], int add)
{
	char path[4096], buf[64];
	long count = 0, since = 0;
	time_t now = time(NULL);
	ssize_t n;
	int fd;

	if (c->max_auth_failures <= 0 || failure_file(c, family, ip, path, sizeof(path)) < 0)
		return 0;
	fd = open(path, (add ? O_RDWR | O_CREAT : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn("open %s", path);
		return 0;
	}
	if (flock(fd, add ? LOCK_EX : LOCK_SH) < 0) {
		log_warn("flock %s", path);
		close(fd);
		return 0;
	}
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n > 0) {
		buf[n] = '\0';
		if (sscanf(buf, "%ld %ld", &count, &since) != 2 || count < 0)
			count = since = 0;
	}
	if (since <= 0 || now - since > c->auth_failure_window) {
		count = 0;               /* a new window begins */
		since = now;
	}
	if (add) {
		int len = snprintf(buf, sizeof(buf), "%ld %ld\n", ++count, since);

		if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) != len)
			log_warn("write %s", path);
	}
	close(fd);
	return count;
}

int
auth_client_blocked(const struct conf *c, int family, const unsigned char ip[16])
{
	return c->max_auth_failures > 0 &&
	    failures(c, family, ip, 0) >= c->max_auth_failures;
}

void
auth_client_failed(const struct conf *c, int family, const unsigned char ip[16])
{
	long n = failures(c, family, ip, 1);

	if (c->max_auth_failures > 0 && n == c->max_auth_failures)
		log_warnx("AUTH: %ld failures from this client within %lds: further AUTH "
		    "refused until the window ends", n, c->auth_failure_window);
}
