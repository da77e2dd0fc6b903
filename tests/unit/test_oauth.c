/*
 * test_oauth.c - oauth.c: the two initial client responses byte for byte
 * (XOAUTH2; OAUTHBEARER per RFC 7628), the helper's token kept until its
 * stated expiry and asked again when fresh is set, a helper that fails,
 * prints junk or hangs (its timeout), and a token with characters no bearer
 * token has.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oauth.h"
#include "unit.h"

struct fixture {
	char dir[64];
	struct conf c;
	struct smarthost_conf sh;
	char cmd[300];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char sub[128];

	snprintf(f->dir, sizeof(f->dir), "/tmp/undersmtpd-oauth-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(sub, sizeof(sub), "%s/tmp", f->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	f->c.spool_dir = f->dir;
	f->sh.name = "cloud";
	f->sh.host = "smtp.example.net";
	f->sh.port = 587;
	f->sh.auth_user = "gw@example.com";
	f->sh.timeout = 2;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	remove_tree(f->dir);
	free(f);
	return 0;
}

/* helper - a token program printing body; the command that runs it. */
static void
helper(struct fixture *f, const char *body)
{
	char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/helper", f->dir);
	fp = fopen(path, "w");
	fprintf(fp, "#!/bin/sh\n%s\n", body);
	fclose(fp);
	chmod(path, 0755);
	snprintf(f->cmd, sizeof(f->cmd), "%s --scope mail", path);
	f->sh.auth_token_command = f->cmd;
}

static void
test_responses(void **state)
{
	struct fixture *f = *state;
	char out[300];
	int n;

	f->sh.auth_mechanism = SASL_XOAUTH2;
	n = oauth_response(&f->sh, "T0k.en", out, sizeof(out));
	assert_int_equal(n, (int)strlen("user=gw@example.com\001auth=Bearer T0k.en\001\001"));
	assert_string_equal(out, "user=gw@example.com\001auth=Bearer T0k.en\001\001");
	f->sh.auth_mechanism = SASL_OAUTHBEARER;
	oauth_response(&f->sh, "T0k.en", out, sizeof(out));
	assert_string_equal(out, "n,a=gw@example.com,\001host=smtp.example.net\001port=587"
	    "\001auth=Bearer T0k.en\001\001");
	assert_int_equal(oauth_response(&f->sh, "T0k.en", out, 10), -1);
}

static void
test_kept_until_expiry_and_fresh(void **state)
{
	struct fixture *f = *state;
	char tok[100], why[300], count[128];

	snprintf(count, sizeof(count), "%s/count", f->dir);
	{
		char body[400];

		/* Each run prints tokN with N its run, and a lifetime of an hour. */
		snprintf(body, sizeof(body), "n=$(cat %s 2>/dev/null || echo 0); n=$((n+1)); "
		    "echo $n > %s; [ \"$1\" = --scope ] || exit 3; echo tok$n; echo 3600",
		    count, count);
		helper(f, body);
	}
	assert_int_equal(oauth_token(&f->c, &f->sh, 0, tok, sizeof(tok), why, sizeof(why)), 0);
	assert_string_equal(tok, "tok1");
	assert_int_equal(oauth_token(&f->c, &f->sh, 0, tok, sizeof(tok), why, sizeof(why)), 0);
	assert_string_equal(tok, "tok1");                          /* kept */
	assert_int_equal(oauth_token(&f->c, &f->sh, 1, tok, sizeof(tok), why, sizeof(why)), 0);
	assert_string_equal(tok, "tok2");                          /* asked afresh */
	{
		char path[128];
		struct stat st;

		snprintf(path, sizeof(path), "%s/tmp/oauth-cloud.token", f->dir);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		/* Expired in the file: asked again. */
		FILE *fp = fopen(path, "w");
		fprintf(fp, "1\ntok2\n");
		fclose(fp);
	}
	assert_int_equal(oauth_token(&f->c, &f->sh, 0, tok, sizeof(tok), why, sizeof(why)), 0);
	assert_string_equal(tok, "tok3");
}

static void
test_helper_failures(void **state)
{
	struct fixture *f = *state;
	char tok[100], why[300];

	helper(f, "echo 'no credentials for you' >&2; exit 2");
	assert_int_equal(oauth_token(&f->c, &f->sh, 1, tok, sizeof(tok), why, sizeof(why)), -1);
	assert_non_null(strstr(why, "failed (exit 2): no credentials for you"));
	helper(f, "echo 'a token with spaces'");
	assert_int_equal(oauth_token(&f->c, &f->sh, 1, tok, sizeof(tok), why, sizeof(why)), -1);
	assert_non_null(strstr(why, "printed no token"));
	helper(f, "exec sleep 30");
	assert_int_equal(oauth_token(&f->c, &f->sh, 1, tok, sizeof(tok), why, sizeof(why)), -1);
	assert_non_null(strstr(why, "timed out after 2 s"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_responses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kept_until_expiry_and_fresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_helper_failures, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
