/* test_aliases.c - aliases.c: parsing, commands, lookups, regex limits, reload. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <time.h>

#include "aliases.h"
#include "unit.h"

static struct aliases *
load(const char *text, struct collected *out, char **pathp)
{
	char *path = write_temp(text);
	struct diag d = {collect, out, 0};
	struct aliases *a;

	out->text[0] = '\0';
	a = aliases_load(path, getuid(), &d);
	if (pathp)
		*pathp = path;
	else {
		unlink(path);
		free(path);
	}
	return a;
}

static void
test_forms(void **state)
{
	struct collected out;
	struct aliases *a = load(
	    "# comment\n"
	    "\n"
	    "Support: \"|/usr/bin/rt-mailgate --queue support\n"
	    "    --url http://rt/\"\n"
	    "plain: |/bin/cat -v\n"
	    "shell: \"|cat > /dev/null\"\n"
	    "esc: \"|/bin/echo \\\"quoted\\\" back\\\\slash\"\n"
	    "multi: a@x.test, other ,\"b@y.test\"\n"
	    "other: a@x.test\n"
	    "full@rt.example.com: c@z.test\n", &out, NULL);
	const struct alias_entry *e;

	(void)state;
	assert_non_null(a);
	assert_string_equal(out.text, "");
	e = aliases_find(a, "support");
	assert_non_null(e);
	assert_int_equal(e->line, 3);
	assert_int_equal(e->targets[0].kind, TARGET_PIPE);
	assert_false(e->targets[0].cmd.use_shell);
	assert_string_equal(e->targets[0].cmd.argv[0], "/usr/bin/rt-mailgate");
	assert_string_equal(e->targets[0].cmd.argv[3], "--url");
	assert_string_equal(e->targets[0].cmd.argv[4], "http://rt/");
	assert_null(e->targets[0].cmd.argv[5]);
	e = aliases_find(a, "plain");
	assert_string_equal(e->targets[0].cmd.argv[1], "-v");
	e = aliases_find(a, "shell");
	assert_true(e->targets[0].cmd.use_shell);
	assert_string_equal(e->targets[0].cmd.argv[0], "/bin/sh");
	assert_string_equal(e->targets[0].cmd.argv[2], "cat > /dev/null");
	e = aliases_find(a, "esc");
	assert_string_equal(e->targets[0].cmd.text, "/bin/echo \"quoted\" back\\slash");
	assert_true(e->targets[0].cmd.use_shell);
	e = aliases_find(a, "multi");
	assert_int_equal(e->ntargets, 3);
	assert_int_equal(e->targets[0].kind, TARGET_ADDRESS);
	assert_int_equal(e->targets[1].kind, TARGET_NAME);
	assert_string_equal(e->targets[1].text, "other");
	assert_string_equal(e->targets[2].text, "b@y.test");
	assert_non_null(aliases_find(a, "full@rt.example.com"));
	assert_null(aliases_find(a, "nosuch"));
	aliases_free(a);
}

static void
test_errors(void **state)
{
	struct collected out;

	(void)state;
	assert_null(load("x: /var/mail/x\n", &out, NULL));
	assert_non_null(strstr(out.text, "1: delivery to a file"));
	assert_null(load("a: b\nb: a\n", &out, NULL));
	assert_non_null(strstr(out.text, "alias loop"));
	assert_null(load("a: x@y.test\nA: z@y.test\n", &out, NULL));
	assert_non_null(strstr(out.text, "duplicate alias 'a'"));
	assert_null(load("   indented first\n", &out, NULL));
	assert_non_null(strstr(out.text, "continuation line with nothing"));
	assert_null(load("/(unclosed/: x@y.test\n", &out, NULL));
	assert_non_null(strstr(out.text, "bad regex"));
	assert_null(load("/^(.*)$/: \"|/bin/echo $1 | wc\"\n", &out, NULL));
	assert_non_null(strstr(out.text, "capture"));
	assert_null(load("/^(.*)$/: $1@x.test\n", &out, NULL));
	assert_null(load("x: \"|\"\n", &out, NULL));
	assert_null(load("x: :include:relative/path\n", &out, NULL));
	assert_null(load("x: \"unterminated\n", &out, NULL));
	/* A deep but finite chain is fine; eleven levels are too many. */
	assert_null(load("a1: a2\na2: a3\na3: a4\na4: a5\na5: a6\na6: a7\na7: a8\n"
	    "a8: a9\na9: a10\na10: a11\na11: x@y.test\n", &out, NULL));
	assert_non_null(strstr(out.text, "nests more than"));
}

static void
test_regex_and_captures(void **state)
{
	struct collected out;
	struct aliases *a = load(
	    "/^rt-(?<queue>[a-z]+)$/: \"|/bin/rt --queue=${queue} --n $1\"\n"
	    "/^owner-.*@example\\.com$/i: boss@x.test\n"
	    "/^(a+)+$/: x@y.test\n", &out, NULL);
	const struct alias_entry *e = NULL;
	struct alias_captures caps;
	char buf[64];

	(void)state;
	assert_non_null(a);
	assert_int_equal(aliases_match_regex(a, "rt-billing", "rt-billing@example.com",
	    &e, &caps), 1);
	assert_true(e->targets[0].cmd.has_captures);
	assert_false(e->targets[0].cmd.use_shell);
	assert_int_equal(aliases_expand_arg(e->targets[0].cmd.argv[1], &caps, buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "--queue=billing");
	assert_int_equal(aliases_expand_arg("$1", &caps, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "billing");
	assert_int_equal(aliases_expand_arg("${nope}x", &caps, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "x");
	assert_int_equal(aliases_expand_arg("$1$1$1$1$1$1$1$1", &caps, buf, 16), -1);
	/* A pattern with '@' sees the whole address, /i is caseless. */
	assert_int_equal(aliases_match_regex(a, "owner-list", "OWNER-list@EXAMPLE.com",
	    &e, &caps), 1);
	assert_string_equal(e->targets[0].text, "boss@x.test");
	/* T85: catastrophic backtracking hits the match limit: temporary, fast. */
	{
		char s[80];
		struct timespec t0, t1;

		memset(s, 'a', 63);
		strcpy(s + 63, "b");
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(aliases_match_regex(a, s, "x@y", &e, &caps), -1);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_true(t1.tv_sec - t0.tv_sec < 1);
	}
	assert_int_equal(aliases_match_regex(a, "zzz", "zzz@y", &e, &caps), 0);
	aliases_free(a);
}

static void
test_include_and_trust(void **state)
{
	struct collected out;
	char *inc = write_temp("# team\n\"|/bin/cat\", member@x.test\n  other@x.test\n");
	char text[512], *path;
	struct aliases *a;
	const struct alias_entry *e;

	(void)state;
	snprintf(text, sizeof(text), "team: :include:%s\n", inc);
	a = load(text, &out, &path);
	assert_non_null(a);
	e = aliases_find(a, "team");
	assert_int_equal(e->ntargets, 3);
	assert_int_equal(e->targets[0].kind, TARGET_PIPE);
	assert_true(e->targets[0].trusted);
	assert_string_equal(e->targets[0].file, inc);
	assert_int_equal(a->nfiles, 2);
	assert_false(aliases_changed(a));
	/* T84: a group-writable file may not name programs. */
	chmod(inc, 0664);
	aliases_free(a);
	a = load(text, &out, NULL);
	assert_false(aliases_find(a, "team")->targets[0].trusted);
	assert_int_equal(a->untrusted_pipes, 1);
	/* Reload check: a change of the included file is noticed. */
	{
		FILE *fp = fopen(inc, "a");

		fputs("more@x.test\n", fp);
		fclose(fp);
	}
	assert_true(aliases_changed(a));
	aliases_free(a);
	unlink(inc);
	unlink(path);
	free(inc);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_regex_and_captures),
		cmocka_unit_test(test_include_and_trust),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
