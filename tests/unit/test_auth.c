/* test_auth.c - auth.c: the base64 and PLAIN parsing of AUTH, the users file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <crypt.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "unit.h"

static int
dec(const char *in, char *out, size_t outsize)
{
	return auth_b64decode(in, strlen(in), out, outsize);
}

static void
test_b64decode(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(dec("YWxpY2U=", out, sizeof(out)), 5);
	assert_string_equal(out, "alice");
	assert_int_equal(dec("YWI=", out, sizeof(out)), 2);     /* one '=' */
	assert_string_equal(out, "ab");
	assert_int_equal(dec("YQ==", out, sizeof(out)), 1);     /* two */
	assert_string_equal(out, "a");
	assert_int_equal(dec("", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	/* Embedded NULs come through, counted (PLAIN needs them). */
	assert_int_equal(dec("AGFsaWNlAHNlY3JldA==", out, sizeof(out)), 13);
	assert_memory_equal(out, "\0alice\0secret", 13);
	assert_int_equal(dec("YWxpY2U", out, sizeof(out)), -1);     /* not a multiple of 4 */
	assert_int_equal(dec("YW*pY2U=", out, sizeof(out)), -1);    /* not base64 */
	assert_int_equal(dec("YWxp Y2U=", out, sizeof(out)), -1);
	/* White space at either end is not base64 either (found by fuzz_auth:
	 * OpenSSL skipped it and the padding came out as NUL bytes). */
	assert_int_equal(dec("YQ==    ", out, sizeof(out)), -1);
	assert_int_equal(dec("    YQ==", out, sizeof(out)), -1);
	assert_int_equal(dec("YWxpY2U=\t\t\t\t", out, sizeof(out)), -1);
	assert_int_equal(dec("YQ=a", out, sizeof(out)), -1);     /* padding inside */
	assert_int_equal(dec("Y===", out, sizeof(out)), -1);
	/* Just fits (5 bytes and the NUL in 6), then one too many. */
	assert_int_equal(dec("YWxpY2U=", out, 6), 5);
	assert_int_equal(dec("YWxpY2U=", out, 5), -1);
	{
		char big[1100];

		memset(big, 'Q', 1024);
		big[1024] = '\0';
		assert_int_equal(dec(big, out, sizeof(out)), -1);   /* over any buffer */
	}
}

static enum auth_plain
plain(const char *msg, size_t n, char *user, char *pass)
{
	return auth_plain_split(msg, n, user, 16, pass, 16);
}

static void
test_plain_split(void **state)
{
	char user[16], pass[16];

	(void)state;
	assert_int_equal(plain("\0alice\0secret", 13, user, pass), AUTH_PLAIN_OK);
	assert_string_equal(user, "alice");
	assert_string_equal(pass, "secret");
	/* authzid equal to authcid is the same identity; another is refused. */
	assert_int_equal(plain("alice\0alice\0secret", 18, user, pass), AUTH_PLAIN_OK);
	assert_int_equal(plain("admin\0alice\0secret", 18, user, pass), AUTH_PLAIN_AUTHZID);
	assert_string_equal(pass, "");                      /* never left behind */
	assert_int_equal(plain("alic\0alice\0secret", 17, user, pass), AUTH_PLAIN_AUTHZID);
	/* An empty password is for auth_check to refuse; the form is right. */
	assert_int_equal(plain("\0alice\0", 7, user, pass), AUTH_PLAIN_OK);
	assert_string_equal(pass, "");
	/* Malformed: one NUL, none, a third one (the password would be cut). */
	assert_int_equal(plain("\0alice", 6, user, pass), AUTH_PLAIN_BAD);
	assert_int_equal(plain("alice", 5, user, pass), AUTH_PLAIN_BAD);
	assert_int_equal(plain("", 0, user, pass), AUTH_PLAIN_BAD);
	assert_int_equal(plain("\0alice\0sec\0ret", 14, user, pass), AUTH_PLAIN_BAD);
	/* A field that does not fit is refused, never truncated: 15 fit, 16 not. */
	assert_int_equal(plain("\0aaaaaaaaaaaaaaa\0p", 18, user, pass), AUTH_PLAIN_OK);
	assert_int_equal(plain("\0aaaaaaaaaaaaaaaa\0p", 19, user, pass), AUTH_PLAIN_BAD);
	assert_int_equal(plain("\0a\0pppppppppppppppp", 19, user, pass), AUTH_PLAIN_BAD);
}

/* users_file - a users file for alice (password "secret") with the given mode. */
static char *
users_file(mode_t mode)
{
	struct crypt_data cd;
	char text[512];
	const char *hash;
	char *path;

	memset(&cd, 0, sizeof(cd));
	hash = crypt_r("secret", "$6$unittestsalt$", &cd);
	assert_non_null(hash);
	assert_int_not_equal(hash[0], '*');
	snprintf(text, sizeof(text), "# users\nalicex:%s\nalice:%s\n", hash, hash);
	path = write_temp(text);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void
test_check(void **state)
{
	char why[256];
	char *path = users_file(0600);

	(void)state;
	assert_int_equal(auth_check(path, "alice", "secret", why, sizeof(why)), AUTH_OK);
	assert_int_equal(auth_check(path, "alice", "Secret", why, sizeof(why)), AUTH_BAD);
	assert_int_equal(auth_check(path, "alice", "", why, sizeof(why)), AUTH_BAD);
	/* A name is matched whole: neither a prefix nor an unknown user passes. */
	assert_int_equal(auth_check(path, "ali", "secret", why, sizeof(why)), AUTH_BAD);
	assert_int_equal(auth_check(path, "bob", "secret", why, sizeof(why)), AUTH_BAD);
	assert_int_equal(auth_check(path, "", "secret", why, sizeof(why)), AUTH_BAD);
	assert_int_equal(auth_check(path, "# users", "", why, sizeof(why)), AUTH_BAD);
	/* A users file group or others may read is never used: a temporary failure. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(auth_check(path, "alice", "secret", why, sizeof(why)), AUTH_TEMP);
	assert_non_null(strstr(why, "readable by group or others"));
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(auth_check(path, "alice", "secret", why, sizeof(why)), AUTH_TEMP);
	unlink(path);
	assert_int_equal(auth_check(path, "alice", "secret", why, sizeof(why)), AUTH_TEMP);
	assert_non_null(strstr(why, path));
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64decode),
		cmocka_unit_test(test_plain_split),
		cmocka_unit_test(test_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
