/*
 * test_launcher.c - launcher.c: the root launcher runs programs only as the
 * accounts the configuration names (SPEC 11).  Plays the part of a session
 * taken over by an attacker, which may send the launcher any request or
 * descriptors.  Needs
 * root (the launcher switches users); skipped otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "conf.h"
#include "launcher.h"
#include "unit.h"

struct fixture {
	char *conf_path;
	struct conf *conf;
	int sock;                 /* the session's end */
	pid_t launcher;
};

static void
write_conf(const char *path, const char *alias_user)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fprintf(fp, "pipe { user = \"nobody\" }\nalias \"ops\" { user = \"%s\" }\n", alias_user);
	assert_int_equal(fclose(fp), 0);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct collected diags = {""};
	struct diag d = {collect, &diags, 0};
	int sv[2];

	if (geteuid() != 0)
		return 0;
	f->conf_path = write_temp("");
	write_conf(f->conf_path, "daemon");
	f->conf = conf_load(f->conf_path, 0, &d);
	assert_non_null(f->conf);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	f->launcher = fork();
	assert_true(f->launcher >= 0);
	if (f->launcher == 0) {
		close(sv[1]);
		/* The spool's owner in this test: mail. */
		_exit(launcher_serve(sv[0], f->conf, getpwnam("mail")->pw_uid, -1));
	}
	close(sv[0]);
	f->sock = sv[1];
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (f == NULL)
		return 0;
	close(f->sock);
	waitpid(f->launcher, NULL, 0);
	unlink(f->conf_path);
	free(f->conf_path);
	conf_free(f->conf);
	free(f);
	return 0;
}

/* run_as - what a program run by the launcher as uid/gid says its ids are. */
static struct pipe_result
run_as(struct fixture *f, uid_t uid, gid_t gid)
{
	char *argv[] = {"/bin/sh", "-c", "echo \"$(id -u):$(id -g)\"", NULL};
	char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	struct pipe_request req;
	struct pipe_result res;
	FILE *in = tmpfile();

	assert_non_null(in);
	memset(&req, 0, sizeof(req));
	req.argv = argv;
	req.envp = envp;
	req.path = "/usr/bin:/bin";
	req.home = "/";
	req.change_user = 1;
	req.uid = uid;
	req.gid = gid;
	req.timeout = 10;
	req.stdin_fd = fileno(in);
	assert_int_equal(launcher_call(f->sock, &req, &res), 0);
	fclose(in);
	return res;
}

static void ids(const char *user, uid_t *uid, gid_t *gid);

static void
assert_ran_as(struct fixture *f, const char *user)
{
	char want[64];
	struct pipe_result res;
	uid_t uid;
	gid_t gid;

	ids(user, &uid, &gid);
	res = run_as(f, uid, gid);
	snprintf(want, sizeof(want), "%u:%u", (unsigned)uid, (unsigned)gid);
	assert_int_equal(res.outcome, PIPE_EXITED);
	assert_string_equal(res.output, want);
}

static void
assert_refused(struct fixture *f, uid_t uid, gid_t gid)
{
	struct pipe_result res = run_as(f, uid, gid);

	assert_int_equal(res.outcome, PIPE_START_FAILED);
	assert_int_equal(res.err, EPERM);
	assert_string_equal(res.output, "");          /* nothing ran */
}

/* ids - uid and primary gid of user (getpwnam's storage is reused: copy). */
static void
ids(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(user);

	assert_non_null(pw);
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
}

static void
test_only_configured_accounts(void **state)
{
	struct fixture *f = *state;
	uid_t nobody, games, mail, u;
	gid_t g, games_gid, mail_gid, disk;

	if (f == NULL) {
		skip();
		return;
	}
	ids("nobody", &nobody, &g);
	ids("games", &games, &games_gid);
	ids("mail", &mail, &mail_gid);
	assert_non_null(getgrnam("disk"));
	disk = getgrnam("disk")->gr_gid;
	/* pipe.user and the alias block's user, with their own groups. */
	assert_ran_as(f, "nobody");
	assert_ran_as(f, "daemon");
	/* nobody with another group (disk: raw devices, so root) is refused. */
	assert_refused(f, nobody, disk);
	ids("daemon", &u, &g);
	assert_refused(f, u, disk);
	/* An account the configuration does not name, root, the spool's owner. */
	assert_refused(f, games, games_gid);
	assert_refused(f, 0, 0);
	assert_refused(f, nobody, 0);
	assert_refused(f, mail, mail_gid);
}

static void
test_follows_a_changed_configuration(void **state)
{
	struct fixture *f = *state;
	uid_t daemon_uid, games;
	gid_t daemon_gid, games_gid;
	struct timespec pause = {0, 20 * 1000 * 1000};

	if (f == NULL) {
		skip();
		return;
	}
	ids("daemon", &daemon_uid, &daemon_gid);
	ids("games", &games, &games_gid);
	assert_refused(f, games, games_gid);
	nanosleep(&pause, NULL);        /* a new mtime even on coarse clocks */
	write_conf(f->conf_path, "games");
	assert_ran_as(f, "games");
	assert_refused(f, daemon_uid, daemon_gid);
	/* A broken file keeps the accounts in force. */
	nanosleep(&pause, NULL);
	{
		FILE *fp = fopen(f->conf_path, "w");

		assert_non_null(fp);
		fputs("pipe { user = \n", fp);
		fclose(fp);
	}
	assert_ran_as(f, "games");
	assert_refused(f, daemon_uid, daemon_gid);
}

/* open_fds - how many descriptors process pid has open. */
static int
open_fds(pid_t pid)
{
	char path[64];
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	d = opendir(path);
	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* send_with_fds - one message of junk carrying nfds copies of fd. */
static void
send_with_fds(int sock, int fd, int nfds)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	int fds[4] = {fd, fd, fd, fd};
	char junk[16] = "not a request";
	struct iovec iov = {junk, sizeof(junk)};
	struct msghdr msg;
	struct cmsghdr *cm;

	memset(&msg, 0, sizeof(msg));
	memset(&ctl, 0, sizeof(ctl));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.space;
	msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	assert_true(sendmsg(sock, &msg, 0) > 0);
}

static void
test_stray_descriptors_closed(void **state)
{
	struct fixture *f = *state;
	FILE *tmp = tmpfile();
	int before;

	if (f == NULL) {
		skip();
		return;
	}
	assert_non_null(tmp);
	assert_ran_as(f, "nobody");             /* the launcher is up and settled */
	before = open_fds(f->launcher);
	/* A bad requester: one descriptor, three, four, junk for a request. */
	for (int i = 0; i < 50; i++) {
		send_with_fds(f->sock, fileno(tmp), 1);
		send_with_fds(f->sock, fileno(tmp), 3);
		send_with_fds(f->sock, fileno(tmp), 4);
		send_with_fds(f->sock, fileno(tmp), 2);
	}
	/* Requests are served in order: once this one is answered, all were read. */
	assert_ran_as(f, "nobody");
	assert_int_equal(open_fds(f->launcher), before);
	fclose(tmp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_only_configured_accounts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follows_a_changed_configuration, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stray_descriptors_closed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
