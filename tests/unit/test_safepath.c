/* test_safepath.c - safepath.c: what root may follow, and what it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "safepath.h"
#include "unit.h"

/* A fresh directory that others may write (0777): links in it are not followed. */
static void
open_dir_tree(char *base, size_t size)
{
	snprintf(base, size, "/tmp/undersmtpd-safepath-XXXXXX");
	assert_non_null(mkdtemp(base));
	assert_int_equal(chmod(base, 0777), 0);
}

static void
cleanup(const char *base)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	assert_int_equal(system(cmd), 0);
}

static void
test_plain_directory_and_create(void **state)
{
	char base[64], path[128], why[512];
	struct stat st;
	int fd, owner_only = -1, created = -1;

	(void)state;
	open_dir_tree(base, sizeof(base));
	snprintf(path, sizeof(path), "%s/new", base);
	fd = safepath_open_dir(path, NULL, NULL, why, sizeof(why));
	assert_int_equal(fd, -1);
	assert_int_equal(errno, ENOENT);
	fd = safepath_open_dir(path, &created, &owner_only, why, sizeof(why));
	assert_true(fd >= 0);
	assert_int_equal(created, 1);
	assert_int_equal(owner_only, 0);         /* base is 0777 */
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	close(fd);
	/* Slashes and "." are no trouble; ".." is refused. */
	snprintf(path, sizeof(path), "%s//./new/", base);
	fd = safepath_open_dir(path, NULL, NULL, why, sizeof(why));
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/new/../new", base);
	assert_int_equal(safepath_open_dir(path, NULL, NULL, why, sizeof(why)), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(strstr(why, "\"..\" is not allowed"));
	cleanup(base);
}

/* TESTCATALOGUE T107 */
static void
test_link_in_others_directory_refused(void **state)
{
	char base[64], path[128], link[128], why[512];
	int created;

	(void)state;
	open_dir_tree(base, sizeof(base));
	snprintf(path, sizeof(path), "%s/real", base);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(link, sizeof(link), "%s/spool", base);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(safepath_open_dir(link, &created, NULL, why, sizeof(why)), -1);
	assert_int_equal(errno, ELOOP);
	assert_non_null(strstr(why, "\"spool\" is a symbolic link in a directory that "
	    "others may write"));
	/* Also in the middle of a path. */
	snprintf(path, sizeof(path), "%s/spool/sub", base);
	assert_int_equal(safepath_open_dir(path, &created, NULL, why, sizeof(why)), -1);
	assert_int_equal(errno, ELOOP);
	cleanup(base);
}

static void
test_link_in_roots_directory_followed(void **state)
{
	char base[64], inner[96], path[160], link[160], why[512];
	struct stat a, b;
	int fd;

	(void)state;
	if (geteuid() != 0)
		skip();      /* only root owns a directory whose links are root's choice */
	open_dir_tree(base, sizeof(base));
	snprintf(inner, sizeof(inner), "%s/root", base);
	assert_int_equal(mkdir(inner, 0755), 0);
	snprintf(path, sizeof(path), "%s/real", inner);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(link, sizeof(link), "%s/link", inner);
	assert_int_equal(symlink("real", link), 0);       /* relative, in root's directory */
	fd = safepath_open_dir(link, NULL, NULL, why, sizeof(why));
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(stat(path, &b), 0);
	assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
	close(fd);
	/* A loop of links ends with ELOOP, not a hang. */
	snprintf(link, sizeof(link), "%s/loop", inner);
	assert_int_equal(symlink("loop", link), 0);
	assert_int_equal(safepath_open_dir(link, NULL, NULL, why, sizeof(why)), -1);
	assert_int_equal(errno, ELOOP);
	cleanup(base);
}

static void
test_file_links_and_fifos_refused(void **state)
{
	char base[64], target[128], path[128], why[512];
	struct stat st;
	int fd;

	(void)state;
	open_dir_tree(base, sizeof(base));
	snprintf(target, sizeof(target), "%s/target", base);
	fd = open(target, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/log", base);
	/* A new plain file is fine, and opened blocking. */
	fd = safepath_open_file(path, O_WRONLY | O_APPEND | O_CREAT, 0640, why, sizeof(why));
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	assert_int_equal(write(fd, "x\n", 2), 2);
	close(fd);
	assert_int_equal(unlink(path), 0);
	/* A symbolic link to another file. */
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(safepath_open_file(path, O_WRONLY | O_APPEND | O_CREAT, 0640, why,
	    sizeof(why)), -1);
	assert_int_equal(errno, ELOOP);
	assert_non_null(strstr(why, "is a symbolic link in a directory that others may write"));
	assert_int_equal(unlink(path), 0);
	/* A second name of another file. */
	assert_int_equal(link(target, path), 0);
	assert_int_equal(safepath_open_file(path, O_WRONLY | O_APPEND, 0640, why,
	    sizeof(why)), -1);
	assert_int_equal(errno, EPERM);
	assert_non_null(strstr(why, "not a plain file with a single name"));
	assert_int_equal(unlink(path), 0);
	/* A FIFO nobody reads: refused at once instead of hanging. */
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(safepath_open_file(path, O_WRONLY | O_APPEND, 0640, why,
	    sizeof(why)), -1);
	assert_int_equal(errno, ENXIO);
	fd = safepath_open_file(path, O_RDWR, 0640, why, sizeof(why));
	assert_int_equal(fd, -1);
	assert_int_equal(errno, EPERM);
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 0);           /* nothing was written through a link */
	cleanup(base);
}

/* TESTCATALOGUE T107 */
static void
test_roots_link_into_others_directory(void **state)
{
	char base[64], mine[96], others[96], target[128], path[160], link[160], why[512];
	struct stat st;
	int fd;

	(void)state;
	if (geteuid() != 0)
		skip();
	open_dir_tree(base, sizeof(base));
	snprintf(mine, sizeof(mine), "%s/root", base);           /* root's alone */
	assert_int_equal(mkdir(mine, 0755), 0);
	snprintf(others, sizeof(others), "%s/others", base);     /* anyone's */
	assert_int_equal(mkdir(others, 0777), 0);
	assert_int_equal(chmod(others, 0777), 0);
	snprintf(target, sizeof(target), "%s/shadow", base);
	fd = open(target, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	/* root's link leads into the others' directory, where a second link waits. */
	snprintf(path, sizeof(path), "%s/log", others);
	assert_int_equal(symlink(target, path), 0);
	snprintf(link, sizeof(link), "%s/log", mine);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(safepath_open_file(link, O_WRONLY | O_APPEND | O_CREAT, 0640, why,
	    sizeof(why)), -1);
	assert_int_equal(errno, ELOOP);
	assert_non_null(strstr(why, "others/log is a symbolic link in a directory that "
	    "others may write"));
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 0);
	/* A dangling one is not created through either. */
	assert_int_equal(unlink(path), 0);
	snprintf(target, sizeof(target), "%s/created", base);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(safepath_open_file(link, O_WRONLY | O_CREAT, 0640, why, sizeof(why)),
	    -1);
	assert_int_equal(access(target, F_OK), -1);
	/* Where root's link leads to a plain file, it is opened. */
	assert_int_equal(unlink(path), 0);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	fd = safepath_open_file(link, O_WRONLY | O_APPEND, 0640, why, sizeof(why));
	assert_true(fd >= 0);
	close(fd);
	cleanup(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_directory_and_create),
		cmocka_unit_test(test_link_in_others_directory_refused),
		cmocka_unit_test(test_link_in_roots_directory_followed),
		cmocka_unit_test(test_file_links_and_fifos_refused),
		cmocka_unit_test(test_roots_link_into_others_directory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
