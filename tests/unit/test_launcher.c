/*
 * test_launcher.c - launcher.c: the root launcher runs only the programs of
 * its own aliases, as the accounts its own configuration names (SPEC 11,
 * issue 15 item 2).  Plays the part of a session taken over by an attacker,
 * which may send the launcher any request or descriptors.  Needs root (the
 * launcher switches users); skipped otherwise.  TESTCATALOGUE T79 (the
 * program's uid, gid and groups), T108, T109, T116.
 */
#define _GNU_SOURCE   /* memfd_create, F_ADD_SEALS */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "conf.h"
#include "launcher.h"
#include "unit.h"

struct fixture {
	char *conf_path, *aliases_path;
	char marker[64];          /* a file a forged command would create */
	struct conf *conf;
	int sock;                 /* the session's end */
	pid_t launcher;
};

/* write_conf - a new configuration, in place at once (written aside, renamed). */
static void
write_conf(struct fixture *f, const char *alias_user, int max_concurrency)
{
	char tmp[256];
	FILE *fp;

	snprintf(tmp, sizeof(tmp), "%s.new", f->conf_path);
	fp = fopen(tmp, "w");
	assert_non_null(fp);
	fprintf(fp, "hostname = \"mx.example.com\"\nlocal_domains = { \"example.com\" }\n"
	    "aliases = \"%s\"\npipe { user = \"nobody\" max_concurrency = %d }\n"
	    "alias \"ops\" { user = \"%s\" }\n", f->aliases_path, max_concurrency, alias_user);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(rename(tmp, f->conf_path), 0);
}

/* put_file - text as the whole of path (mode "w" or "a"). */
static void
put_file(const char *path, const char *mode, const char *text)
{
	FILE *fp = fopen(path, mode);

	assert_non_null(fp);
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
}

static const char aliases_text[] =
    "who: \"|/bin/sh -c 'echo $(id -u):$(id -g)'\"\n"
    "ops: \"|/bin/sh -c 'echo $(id -u):$(id -g)'\"\n"
    "slow: |/bin/sleep 2\n"
    "bob: bob@remote.example\n"
    "/^cap-(.*)$/: |/bin/echo $1\n";

static int
start(void **state, int max_concurrency)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct collected diags = {""};
	struct diag d = {collect, &diags, 0};
	int sv[2];

	if (geteuid() != 0)
		return 0;
	f->aliases_path = write_temp(aliases_text);
	f->conf_path = write_temp("");
	snprintf(f->marker, sizeof(f->marker), "/tmp/undersmtpd-forged-%ld", (long)getpid());
	unlink(f->marker);
	write_conf(f, "daemon", max_concurrency);
	f->conf = conf_load(f->conf_path, 0, &d);
	assert_non_null(f->conf);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	f->launcher = fork();
	assert_true(f->launcher >= 0);
	if (f->launcher == 0) {
		close(sv[1]);
		/* The spool's owner in this test: mail. */
		_exit(launcher_serve(sv[0], f->conf, NULL, getpwnam("mail")->pw_uid, -1));
	}
	close(sv[0]);
	f->sock = sv[1];
	*state = f;
	return 0;
}

/* root_fixture - the launcher of this test, or a skip where we are not root. */
static struct fixture *
root_fixture(void **state)
{
	if (*state == NULL)
		skip();             /* (returns from the test: cmocka jumps out) */
	return *state;
}

static int
setup(void **state)
{
	return start(state, 100);
}

static int
setup_one_at_a_time(void **state)
{
	return start(state, 1);
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
	unlink(f->aliases_path);
	free(f->conf_path);
	free(f->aliases_path);
	conf_free(f->conf);
	free(f);
	return 0;
}

static void send_plain(int sock, const void *buf, size_t len, const int *fds, int nfds);

static void assert_refused(struct pipe_result res, const char *why);
static struct pipe_result answered_within(int replyfd, int ms);
static void assert_ran_as(struct fixture *f, const char *rcpt, const char *user);

/* sealed_input - the program's input as sessions make it: a sealed memfd. */
static int
sealed_input(void)
{
	int fd = memfd_create("test-input", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "Subject: t\n\nbody\n", 18), 18);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK |
	    F_SEAL_SEAL), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* send_raw - len bytes as a request with a fresh stdin and an answer socket. */
static int
send_raw(struct fixture *f, const void *buf, size_t len)
{
	int in = sealed_input();
	int reply[2], fds[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, reply), 0);
	fds[0] = in;
	fds[1] = reply[1];
	send_plain(f->sock, buf, len, fds, 2);
	close(reply[1]);
	close(in);
	return reply[0];
}

/*
 * TESTCATALOGUE T108: the program's input must be the sealed file a session
 * makes; anything else (a file the requester can still change, one of its
 * sockets) is refused and nothing runs.
 */
static void
test_input_must_be_sealed(void **state)
{
	struct fixture *f = root_fixture(state);
	struct delivery_values v = {"who@example.com", "", "192.0.2.1", "h", "ID1", "",
	    NULL, NULL};
	char buf[LAUNCHER_MSG_MAX];
	size_t len = launcher_format(&v, buf, sizeof(buf));
	FILE *plain = tmpfile();
	int reply[2], fds[2], other[2];

	assert_non_null(plain);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, reply), 0);
		fds[0] = i == 0 ? fileno(plain) : other[0];
		fds[1] = reply[1];
		send_plain(f->sock, buf, len, fds, 2);
		close(reply[1]);
		assert_refused(answered_within(reply[0], 10000), "not a sealed file");
	}
	fclose(plain);
	close(other[0]);
	close(other[1]);
	assert_ran_as(f, "who@example.com", "nobody");       /* the sealed one runs */
}

static struct pipe_result
result(int replyfd)
{
	struct pipe_result res;

	assert_int_equal(recv(replyfd, &res, sizeof(res), 0), (ssize_t)sizeof(res));
	close(replyfd);
	return res;
}

/* ask - the launcher's answer for a well-formed request to rcpt. */
static struct pipe_result
ask(struct fixture *f, const char *rcpt)
{
	struct delivery_values v = {rcpt, "alice@remote.example", "192.0.2.1",
	    "client.example", "4F2A9C01B3D7", "00ff", NULL, NULL};
	char buf[LAUNCHER_MSG_MAX];
	size_t len = launcher_format(&v, buf, sizeof(buf));

	assert_true(len > 0);
	return result(send_raw(f, buf, len));
}

static void ids(const char *user, uid_t *uid, gid_t *gid);

static void
assert_ran_as(struct fixture *f, const char *rcpt, const char *user)
{
	char want[64];
	struct pipe_result res = ask(f, rcpt);
	uid_t uid;
	gid_t gid;

	ids(user, &uid, &gid);
	snprintf(want, sizeof(want), "%u:%u", (unsigned)uid, (unsigned)gid);
	assert_int_equal(res.outcome, PIPE_EXITED);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.output, want);
}

static void
assert_refused(struct pipe_result res, const char *why)
{
	assert_int_equal(res.outcome, PIPE_REFUSED);
	if (why != NULL && strstr(res.output, why) == NULL)
		fail_msg("refused for \"%s\", expected \"%s\"", res.output, why);
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
test_runs_its_own_aliases(void **state)
{
	struct fixture *f = root_fixture(state);

	/* pipe.user, and the alias block's user, with their own groups. */
	assert_ran_as(f, "who@example.com", "nobody");
	assert_ran_as(f, "ops@example.com", "daemon");
	assert_ran_as(f, "OPS@Example.COM", "daemon");
}

/* The old request form: path, home, argv and environment, uid and gid. */
static size_t
old_style_request(char *buf, size_t size, uid_t uid, gid_t gid, const char *marker)
{
	struct {
		uint32_t magic, nargv, nenv, uid, gid;
		int32_t change_user;
		int64_t timeout;
	} h = {0x55534d31u, 3, 2, (uint32_t)uid, (uint32_t)gid, 1, 10};
	char cmd[128];
	const char *strings[7] = {"/usr/bin:/bin", "/", "/bin/sh", "-c", cmd,
	    "LD_PRELOAD=/tmp/evil.so", "PATH=/usr/bin:/bin"};
	size_t off = sizeof(h);

	snprintf(cmd, sizeof(cmd), "touch %s", marker);
	memcpy(buf, &h, sizeof(h));
	for (size_t i = 0; i < 7; i++) {
		size_t n = strlen(strings[i]) + 1;

		assert_true(off + n <= size);
		memcpy(buf + off, strings[i], n);
		off += n;
	}
	return off;
}

/* TESTCATALOGUE T108, T116 */
static void
test_forged_requests_refused(void **state)
{
	struct fixture *f = root_fixture(state);
	char buf[LAUNCHER_MSG_MAX + 100], big[LAUNCHER_MSG_MAX * 2];
	struct delivery_values v = {"who@example.com", "", "192.0.2.1", "h", "ID1", "",
	    NULL, NULL};
	size_t len;
	uid_t nobody;
	gid_t nogroup;

	ids("nobody", &nobody, &nogroup);
	/* /bin/sh with LD_PRELOAD as a configured account: not a request any more. */
	len = old_style_request(buf, sizeof(buf), nobody, nogroup, f->marker);
	assert_refused(result(send_raw(f, buf, len)), "not a request of this version");
	/* Not a pipe alias of the launcher's table: unknown, an address alias, remote. */
	assert_refused(ask(f, "nosuch@example.com"), "is not a pipe alias");
	assert_refused(ask(f, "bob@example.com"), "is not a pipe alias");
	assert_refused(ask(f, "who@remote.example"), "is not a pipe alias");
	assert_refused(ask(f, "/bin/sh"), "is not a pipe alias");
	assert_refused(ask(f, "LD_PRELOAD=/tmp/evil.so"), "is not a pipe alias");
	assert_refused(ask(f, "a b@example.com"), "recipient is not an address");
	/* A capture that would become an option of the program. */
	assert_refused(ask(f, "cap--x@example.com"), NULL);
	/* Control characters, oversized fields, a field too many, trailing bytes. */
	v.helo = "h\r\nX-Injected: 1";
	len = launcher_format(&v, buf, sizeof(buf));
	assert_refused(result(send_raw(f, buf, len)), "helo holds a control character");
	v.helo = "h";
	memset(big, 'a', 300);
	big[300] = '\0';
	v.sender = big;
	len = launcher_format(&v, buf, sizeof(buf));
	assert_refused(result(send_raw(f, buf, len)), "sender of 300 bytes");
	v.sender = "";
	len = launcher_format(&v, buf, sizeof(buf));
	buf[len++] = 'x';
	buf[len++] = '\0';
	assert_refused(result(send_raw(f, buf, len)), "bytes after the last field");
	((uint32_t *)(void *)buf)[1] = 1000000;           /* an oversized count */
	assert_refused(result(send_raw(f, buf, len)), "not a request of this version");
	assert_refused(result(send_raw(f, buf, 3)), "too short");
	/* Longer than any request: refused unread. */
	memset(big, 'b', sizeof(big));
	assert_refused(result(send_raw(f, big, sizeof(big))), NULL);
	/* Nothing of it ran; a real request still does. */
	assert_int_equal(access(f->marker, F_OK), -1);
	assert_ran_as(f, "who@example.com", "nobody");
}

static void
test_follows_a_changed_configuration(void **state)
{
	struct fixture *f = root_fixture(state);
	struct timespec pause = {0, 20 * 1000 * 1000};

	assert_ran_as(f, "ops@example.com", "daemon");
	nanosleep(&pause, NULL);        /* a new mtime even on coarse clocks */
	write_conf(f, "games", 100);
	assert_ran_as(f, "ops@example.com", "games");
	/* A broken file keeps the configuration in force. */
	nanosleep(&pause, NULL);
	put_file(f->conf_path, "w", "pipe { user = \n");
	assert_ran_as(f, "ops@example.com", "games");
	/* The aliases too: a new alias is followed, a removed one refused. */
	nanosleep(&pause, NULL);
	put_file(f->aliases_path, "w", "new: \"|/bin/sh -c 'echo $(id -u):$(id -g)'\"\n");
	assert_ran_as(f, "new@example.com", "nobody");
	assert_refused(ask(f, "who@example.com"), "is not a pipe alias");
}

/* TESTCATALOGUE T108 */
static void
test_aliases_of_another_owner_name_no_program(void **state)
{
	struct fixture *f = root_fixture(state);

	/* Owned by the spool user: a session taken over could have written it. */
	assert_int_equal(chown(f->aliases_path, getpwnam("mail")->pw_uid, 0), 0);
	assert_refused(ask(f, "who@example.com"), "is not a pipe alias");
	assert_int_equal(chown(f->aliases_path, 0, 0), 0);
	assert_ran_as(f, "who@example.com", "nobody");
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

/*
 * settled_fds - open_fds once the launcher is done with its last answer: it
 * closes a request's answer socket just after sending on it, so a count
 * taken the moment the answer arrives may still include that socket.  The
 * count is read until it has not changed for 100 ms (at most 5 s).
 */
static int
settled_fds(pid_t pid)
{
	int last = open_fds(pid), same = 0;

	for (int i = 0; i < 500 && same < 10; i++) {
		int n;

		usleep(10000);
		n = open_fds(pid);
		same = n == last ? same + 1 : 0;
		last = n;
	}
	return last;
}

/* send_with_fds - one message of junk carrying nfds (at most 4) copies of fd. */
static void
send_with_fds(int sock, int fd, int nfds)
{
	int fds[4] = {fd, fd, fd, fd};
	char junk[16] = "not a request";

	send_plain(sock, junk, sizeof(junk), fds, nfds);
}

static void
test_stray_descriptors_closed(void **state)
{
	struct fixture *f = root_fixture(state);
	int sink[2], before;

	/* Answers to junk go to a socket nobody reads: they must not pile up there. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sink), 0);
	assert_ran_as(f, "who@example.com", "nobody");   /* the launcher is up and settled */
	before = settled_fds(f->launcher);
	/* A bad requester: one descriptor, three, four, junk for a request. */
	for (int i = 0; i < 50; i++) {
		send_with_fds(f->sock, sink[1], 1);
		send_with_fds(f->sock, sink[1], 3);
		send_with_fds(f->sock, sink[1], 4);
		send_with_fds(f->sock, sink[1], 2);
	}
	/* Requests are read in order: once this one is answered, all were read. */
	assert_ran_as(f, "who@example.com", "nobody");
	assert_int_equal(settled_fds(f->launcher), before);
	close(sink[0]);
	close(sink[1]);
}

/* send_plain - len bytes with exactly the given descriptors (nfds, at most 4). */
static void
send_plain(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr hdr;
		char space[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = {(void *)(uintptr_t)buf, len};
	struct msghdr msg;
	struct cmsghdr *cm;

	memset(&msg, 0, sizeof(msg));
	memset(&ctl, 0, sizeof(ctl));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		msg.msg_control = ctl.space;
		msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	}
	if (sendmsg(sock, &msg, 0) < 0)
		fail_msg("sendmsg: %s", strerror(errno));
}

/* answered_within - the answer on replyfd came within ms. */
static struct pipe_result
answered_within(int replyfd, int ms)
{
	struct pollfd p = {.fd = replyfd, .events = POLLIN};

	if (poll(&p, 1, ms) != 1)
		fail_msg("no answer within %d ms: the launcher is stuck", ms);
	return result(replyfd);
}

/* request - send a well-formed request to rcpt; the answer socket to read. */
static int
request(struct fixture *f, const char *rcpt)
{
	struct delivery_values v = {rcpt, "alice@remote.example", "192.0.2.1",
	    "client.example", "4F2A9C01B3D7", "00ff", NULL, NULL};
	char buf[LAUNCHER_MSG_MAX];
	size_t len = launcher_format(&v, buf, sizeof(buf));

	assert_true(len > 0);
	return send_raw(f, buf, len);
}

/* children_of - the pids whose parent is pid, from /proc. */
static size_t
children_of(pid_t pid, pid_t *out, size_t max)
{
	char path[96], text[512];
	size_t n = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", (long)pid, (long)pid);
	fp = fopen(path, "r");
	assert_non_null(fp);
	if (fgets(text, sizeof(text), fp) != NULL)
		for (char *p = strtok(text, " \n"); p && n < max; p = strtok(NULL, " \n"))
			out[n++] = (pid_t)atol(p);
	fclose(fp);
	return n;
}

/*
 * The launcher starts each program itself, with no process in between, and
 * watches them all in one loop: a quick program's answer comes while a slow
 * one still runs, each on its own socket.
 */
static void
test_programs_run_side_by_side(void **state)
{
	struct fixture *f = root_fixture(state);
	int slow = request(f, "slow@example.com"), quick;
	struct pipe_result res;
	pid_t kids[8];
	char exe[96], target[64];
	ssize_t n;

	/* The slow program's parent is the launcher: no worker in between. */
	for (int i = 0; i < 200 && children_of(f->launcher, kids, 8) == 0; i++)
		usleep(10000);
	assert_int_equal(children_of(f->launcher, kids, 8), 1);
	for (int i = 0; i < 200; i++) {
		snprintf(exe, sizeof(exe), "/proc/%ld/exe", (long)kids[0]);
		n = readlink(exe, target, sizeof(target) - 1);
		assert_true(n > 0);
		target[n] = '\0';
		if (strstr(target, "sleep") != NULL)
			break;
		usleep(10000);          /* between vfork and execve */
	}
	assert_non_null(strstr(target, "sleep"));
	quick = request(f, "who@example.com");
	res = answered_within(quick, 1500);
	assert_int_equal(res.outcome, PIPE_EXITED);
	assert_int_equal(res.status, 0);
	assert_non_null(strchr(res.output, ':'));
	{
		struct pollfd p = {.fd = slow, .events = POLLIN};

		assert_int_equal(poll(&p, 1, 0), 0);   /* the slow one still runs */
	}
	res = answered_within(slow, 10000);
	assert_int_equal(res.outcome, PIPE_EXITED);
	assert_int_equal(res.status, 0);
}

/* TESTCATALOGUE T108 */
static void
test_requester_cannot_stop_the_launcher(void **state)
{
	struct fixture *f = root_fixture(state);
	struct delivery_values v = {"who@example.com", "", "192.0.2.1", "h", "ID1", "",
	    NULL, NULL};
	char buf[LAUNCHER_MSG_MAX];
	size_t len;
	int reply[2], pipefd[2], fds[2];
	int in = sealed_input();

	len = launcher_format(&v, buf, sizeof(buf));
	/* A message of length 0, with and without descriptors: not the end. */
	send_plain(f->sock, "", 0, NULL, 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, reply), 0);
	fds[0] = in;
	fds[1] = reply[1];
	send_plain(f->sock, "", 0, fds, 2);
	assert_refused(answered_within(reply[0], 10000), NULL);
	close(reply[1]);
	/* An answer "socket" that is a pipe: refused, nothing written to it. */
	assert_int_equal(pipe(pipefd), 0);
	fds[1] = pipefd[1];
	send_plain(f->sock, buf, len, fds, 2);
	/* An answer socket whose buffer is full: the launcher must not wait on it. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, reply), 0);
	{
		char junk[4096];

		memset(junk, 'j', sizeof(junk));
		while (send(reply[1], junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
	}
	fds[1] = reply[1];
	for (int i = 0; i < 3; i++)
		send_plain(f->sock, buf, len, fds, 2);
	close(reply[1]);
	send_plain(f->sock, "x", 1, fds, 0);             /* and junk with no descriptors */
	{
		/* Still serving, at once. */
		struct pipe_result res = answered_within(send_raw(f, buf, len), 10000);
		char want[32];

		snprintf(want, sizeof(want), "%u:%u", (unsigned)getpwnam("nobody")->pw_uid,
		    (unsigned)getpwnam("nobody")->pw_gid);
		assert_int_equal(res.outcome, PIPE_EXITED);
		assert_string_equal(res.output, want);
	}
	{
		char c;

		/* Nothing was written to the pipe. */
		assert_int_equal(fcntl(pipefd[0], F_SETFL, O_NONBLOCK), 0);
		assert_int_equal(read(pipefd[0], &c, 1), -1);
		assert_int_equal(errno, EAGAIN);
	}
	close(pipefd[0]);
	close(pipefd[1]);
	close(reply[0]);
	close(in);
}

/* TESTCATALOGUE T109 */
static void
test_reloads_under_a_flood(void **state)
{
	struct fixture *f = root_fixture(state);
	struct delivery_values v = {"fast@example.com", "", "192.0.2.1", "h", "ID1", "",
	    NULL, NULL};
	char buf[LAUNCHER_MSG_MAX];
	size_t len;
	int replies[200];

	/*
	 * The launcher is up, its SIGHUP handler in place: a forked launcher
	 * still starting (a loaded machine) would die of the first SIGHUP below.
	 */
	assert_ran_as(f, "who@example.com", "nobody");
	put_file(f->aliases_path, "a", "fast: |/bin/true\n");
	len = launcher_format(&v, buf, sizeof(buf));
	/*
	 * The limit goes up and down under a full queue of waiting requests:
	 * the queue must hold what the limit of the moment lets wait, no more.
	 */
	for (int i = 0; i < 200; i++) {
		replies[i] = send_raw(f, buf, len);
		if (i % 20 == 10) {
			write_conf(f, "daemon", i % 40 == 10 ? 50 : 1);
			kill(f->launcher, SIGHUP);
		}
	}
	for (int i = 0; i < 200; i++) {
		struct pipe_result res = answered_within(replies[i], 60000);

		if (res.outcome != PIPE_EXITED && res.outcome != PIPE_BUSY)
			fail_msg("request %d: outcome %d, err %d, \"%s\"", i, res.outcome, res.err,
			    res.output);
	}
	assert_int_equal(waitpid(f->launcher, NULL, WNOHANG), 0);   /* alive */
}

/* TESTCATALOGUE T109 */
static void
test_concurrency_cap_waits_then_busy(void **state)
{
	struct fixture *f = root_fixture(state);
	struct delivery_values v = {"slow@example.com", "", "192.0.2.1", "h", "ID1", "",
	    NULL, NULL};
	char buf[LAUNCHER_MSG_MAX];
	size_t len;
	int first, second, third;
	struct pipe_result r1, r2, r3;
	int64_t t0;

	len = launcher_format(&v, buf, sizeof(buf));
	/* pipe.max_concurrency = 1: one runs, one waits its turn, the third is busy. */
	t0 = now_ms();
	first = send_raw(f, buf, len);
	second = send_raw(f, buf, len);
	third = send_raw(f, buf, len);
	r3 = result(third);
	assert_int_equal(r3.outcome, PIPE_BUSY);
	{
		/* At once, while the first still runs: not after a run. */
		struct pollfd p = {.fd = first, .events = POLLIN};

		assert_int_equal(poll(&p, 1, 0), 0);
	}
	r1 = result(first);
	r2 = result(second);
	assert_int_equal(r1.outcome, PIPE_EXITED);
	assert_int_equal(r2.outcome, PIPE_EXITED);
	assert_int_equal(r1.status, 0);
	assert_int_equal(r2.status, 0);
	assert_true(now_ms() - t0 >= 4000);                /* one after the other */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_runs_its_own_aliases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_requests_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follows_a_changed_configuration, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_aliases_of_another_owner_name_no_program,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_stray_descriptors_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_programs_run_side_by_side, setup, teardown),
		cmocka_unit_test_setup_teardown(test_input_must_be_sealed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrency_cap_waits_then_busy,
		    setup_one_at_a_time, teardown),
		cmocka_unit_test_setup_teardown(test_requester_cannot_stop_the_launcher, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reloads_under_a_flood, setup_one_at_a_time,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
