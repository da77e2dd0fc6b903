/*
 * test_check.c - check.c: the spool's durability verdict on this machine's
 * own filesystem, on tmpfs (as root: a real mount) and under a preloaded
 * libeatmydata; the split tmp/ and queue/; check_world's program and
 * account findings with their file:line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "unit.h"

static struct conf *
conf_with_spool(const char *spool, const char *extra)
{
	char text[1024];
	struct collected out;
	struct diag d = {collect, &out, 0};
	struct conf *c;
	char *path;

	snprintf(text, sizeof(text), "spool_dir = \"%s\"\n%s", spool, extra);
	path = write_temp(text);
	c = conf_load(path, 0, &d);
	unlink(path);
	free(path);
	assert_non_null(c);
	return c;
}

static void
test_disk_spool_is_durable(void **state)
{
	char dir[] = "/var/tmp/check-XXXXXX", spool[64], why[4400];
	struct conf *c;

	(void)state;
	assert_non_null(mkdtemp(dir));
	/* A spool not made yet is judged by the directory it will be made in. */
	snprintf(spool, sizeof(spool), "%s/spool/not/yet", dir);
	c = conf_with_spool(spool, "");
	assert_int_equal(check_spool_durable(c, why, sizeof(why)), 0);
	setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libeatmydata.so", 1);
	assert_int_equal(check_spool_durable(c, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "libeatmydata"));
	unsetenv("LD_PRELOAD");
	conf_free(c);
	rmdir(dir);
}

static void
test_tmpfs_spool_and_split_spool(void **state)
{
	char dir[] = "/var/tmp/check-XXXXXX", sub[128], why[4400];
	struct conf *c;

	(void)state;
	if (geteuid() != 0) {
		skip();        /* SKIP: needs root (mount) */
		return;
	}
	assert_non_null(mkdtemp(dir));
	assert_int_equal(mount("tmpfs", dir, "tmpfs", 0, "size=1m"), 0);
	c = conf_with_spool(dir, "");
	assert_int_equal(check_spool_durable(c, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is on tmpfs"));
	conf_free(c);
	assert_int_equal(umount(dir), 0);
	/* tmp/ mounted apart from queue/: nothing could be committed. */
	snprintf(sub, sizeof(sub), "%s/queue", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(sub, sizeof(sub), "%s/tmp", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(mount("tmpfs", sub, "tmpfs", 0, "size=1m"), 0);
	c = conf_with_spool(dir, "");
	assert_int_equal(check_spool_durable(c, why, sizeof(why)), -2);
	assert_non_null(strstr(why, "different filesystems"));
	conf_free(c);
	assert_int_equal(umount(sub), 0);
	rmdir(sub);
	snprintf(sub, sizeof(sub), "%s/queue", dir);
	rmdir(sub);
	rmdir(dir);
}

static void
test_world_findings(void **state)
{
	struct collected errs, warns;
	struct diag e = {collect, &errs, 0}, w = {collect, &warns, 0};
	struct conf *c;

	(void)state;
	errs.text[0] = warns.text[0] = '\0';
	c = conf_with_spool("/var/tmp/check-world-spool",
	    "user = \"no-such-account-z\"\n"
	    "smarthost \"isp\" {\n host = \"127.0.0.1\"\n}\n");
	check_world(c, NULL, &e, &w);
	assert_int_equal(e.errors, 1);
	assert_non_null(strstr(errs.text, "2: user \"no-such-account-z\" does not exist"));
	assert_int_equal(w.errors, 0);          /* an IP address always resolves */
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disk_spool_is_durable),
		cmocka_unit_test(test_tmpfs_spool_and_split_spool),
		cmocka_unit_test(test_world_findings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
