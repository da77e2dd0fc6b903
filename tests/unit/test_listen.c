/*
 * test_listen.c - listen.c: the daemon (daemon_main) in a forked child,
 * listening on 127.0.0.1 on a port the test found free, spoken to over real
 * sockets.  As root it runs as the `mail` account, as the daemon would.
 *
 * Covered: sessions greeted; max_connections_per_ip and max_connections
 * answered with 421 4.7.0 and a slot freed when a session ends
 * (TESTCATALOGUE T102); addresses in relay_networks not counted per address;
 * SIGTERM tells open sessions 421 4.3.2 and ends the daemon with 0 (T14);
 * an address already in use refused at start (75) without serving; as
 * root, the launcher holds no listening socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "conf.h"
#include "listen.h"
#include "unit.h"

struct fixture {
	char dir[64];
	int port;
	pid_t daemon;
};

static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[128];
	FILE *fp;

	strcpy(f->dir, "/tmp/undersmtpd-listen-XXXXXX");
	if (mkdtemp(f->dir) == NULL || chmod(f->dir, 0755) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/aliases", f->dir);
	fp = fopen(path, "w");
	if (fp == NULL)
		return -1;
	fputs("postmaster: root\n", fp);
	fclose(fp);
	f->port = free_port();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (f->daemon > 0) {
		/* A test that failed half-way: the daemon and its sessions, all of them. */
		kill(-f->daemon, SIGKILL);
		waitpid(f->daemon, NULL, 0);
	}
	remove_tree(f->dir);
	free(f);
	return 0;
}

/* start_daemon - daemon_main with these limits, in a child; waits until it listens. */
static void
start_daemon(struct fixture *f, int per_ip, int total, const char *relay)
{
	char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/undersmtpd.conf", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp,
	    "hostname = \"mx.example.com\"\n"
	    "local_domains = { \"example.com\" }\n"
	    "listen = { \"127.0.0.1:%d\" }\n"
	    "relay_networks = { \"%s\" }\n"
	    "max_connections_per_ip = %d\n"
	    "max_connections = %d\n"
	    "spool_dir = \"%s/spool\"\n"
	    "aliases = \"%s/aliases\"\n"
	    "log_file = \"%s/log\"\n"
	    "user = \"%s\"\n"
	    "min_free_space = 1M\n"
	    "queue { run_after_accept = false }\n",
	    f->port, relay, per_ip, total, f->dir, f->dir, f->dir,
	    geteuid() == 0 ? "mail" : getpwuid(geteuid())->pw_name);
	fclose(fp);
	f->daemon = fork();
	assert_true(f->daemon >= 0);
	if (f->daemon == 0) {
		struct collected diags = {""};
		struct diag d = {collect, &diags, 0};
		struct conf *c = conf_load(path, 1, &d);
		struct daemon_opts o = {path, 1, NULL, 0};

		if (c == NULL) {
			fprintf(stderr, "%s", diags.text);
			_exit(99);
		}
		setpgid(0, 0);          /* its sessions too can be killed at once */
		alarm(120);
		_exit(daemon_main(c, &o));
	}
}

/* connect_to - a connection to the daemon, or -1 (ECONNREFUSED: not yet). */
static int
connect_to(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* line - the first line the server sends, "" at EOF. */
static void
line(int fd, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	while (len + 1 < size) {
		struct pollfd p = {fd, POLLIN, 0};
		ssize_t n;

		assert_int_equal(poll(&p, 1, 30000), 1);
		n = read(fd, buf + len, 1);
		if (n <= 0)
			break;
		len++;
		buf[len] = '\0';
		if (buf[len - 1] == '\n')
			break;
	}
}

/* session - a connection and its greeting line. */
static int
session(struct fixture *f, char *greeting, size_t size)
{
	int fd = -1;

	for (int i = 0; i < 500 && fd < 0; i++) {
		fd = connect_to(f->port);
		if (fd < 0) {
			assert_int_equal(waitpid(f->daemon, NULL, WNOHANG), 0);  /* alive */
			usleep(10000);
		}
	}
	assert_true(fd >= 0);
	line(fd, greeting, size);
	return fd;
}

static void
quit(int fd)
{
	char buf[256];

	assert_int_equal(write(fd, "QUIT\r\n", 6), 6);
	line(fd, buf, sizeof(buf));
	assert_int_equal(strncmp(buf, "221 ", 4), 0);
	close(fd);
}

static int
stop_daemon(struct fixture *f)
{
	int status;

	kill(f->daemon, SIGTERM);
	assert_int_equal(waitpid(f->daemon, &status, 0), f->daemon);
	f->daemon = 0;
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* T102: per address, then in all; a slot comes back when its session ends. */
static void
test_connection_limits(void **state)
{
	struct fixture *f = *state;
	char buf[256];
	int a, b, c;

	start_daemon(f, 2, 10, "10.0.0.0/8");
	a = session(f, buf, sizeof(buf));
	assert_int_equal(strncmp(buf, "220 mx.example.com ESMTP", 24), 0);
	b = session(f, buf, sizeof(buf));
	assert_int_equal(strncmp(buf, "220 ", 4), 0);
	c = session(f, buf, sizeof(buf));
	assert_int_equal(strncmp(buf, "421 4.7.0 ", 10), 0);
	close(c);
	quit(a);
	/* The ended session's slot is free again (reaped at the next accept). */
	for (int i = 0; i < 100; i++) {
		c = session(f, buf, sizeof(buf));
		if (strncmp(buf, "220 ", 4) == 0)
			break;
		close(c);
		usleep(20000);
	}
	assert_int_equal(strncmp(buf, "220 ", 4), 0);
	quit(b);
	quit(c);
	assert_int_equal(stop_daemon(f), 0);

	/* max_connections counts everyone, relay networks too. */
	start_daemon(f, 10, 2, "127.0.0.0/8");
	a = session(f, buf, sizeof(buf));
	b = session(f, buf, sizeof(buf));
	assert_int_equal(strncmp(buf, "220 ", 4), 0);
	c = session(f, buf, sizeof(buf));
	assert_string_equal(buf, "421 4.7.0 Too many connections; try again later\r\n");
	close(c);
	quit(a);
	quit(b);
	assert_int_equal(stop_daemon(f), 0);
}

/* Clients in relay_networks are not counted per address. */
static void
test_relay_networks_not_counted_per_address(void **state)
{
	struct fixture *f = *state;
	char buf[256];
	int fds[4];

	start_daemon(f, 1, 10, "127.0.0.0/8");
	for (int i = 0; i < 4; i++) {
		fds[i] = session(f, buf, sizeof(buf));
		assert_int_equal(strncmp(buf, "220 ", 4), 0);
	}
	for (int i = 0; i < 4; i++)
		quit(fds[i]);
	assert_int_equal(stop_daemon(f), 0);
}

/* T14: SIGTERM -> each open session says 421 4.3.2, the daemon exits 0. */
static void
test_sigterm_ends_sessions(void **state)
{
	struct fixture *f = *state;
	char buf[256];
	int fd;

	start_daemon(f, 10, 10, "127.0.0.0/8");
	fd = session(f, buf, sizeof(buf));
	assert_int_equal(strncmp(buf, "220 ", 4), 0);
	kill(f->daemon, SIGTERM);
	line(fd, buf, sizeof(buf));
	assert_int_equal(strncmp(buf, "421 4.3.2 ", 10), 0);
	close(fd);
	assert_int_equal(stop_daemon(f), 0);
}

/* listening_inode - the socket inode listening on 127.0.0.1:port, 0 if none. */
static unsigned long
listening_inode(int port)
{
	FILE *fp = fopen("/proc/net/tcp", "r");
	char row[512];
	unsigned long found = 0;

	assert_non_null(fp);
	while (fgets(row, sizeof(row), fp) != NULL) {
		unsigned int lport, state;
		unsigned long inode;

		/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
		if (sscanf(row, " %*d: %*x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu",
		    &lport, &state, &inode) == 3 && (int)lport == port && state == 0x0A)
			found = inode;
	}
	fclose(fp);
	return found;
}

/*
 * As root the process we started is the launcher, which stays root and
 * serves only the daemon's requests: it must not hold the listening socket
 * (a root process nobody talks to would keep the port after the daemon).
 */
static void
test_launcher_holds_no_listener(void **state)
{
	struct fixture *f = *state;
	char buf[256], path[64], link[128], want[64];
	unsigned long inode;
	int fd, held = 0;

	if (geteuid() != 0) {
		printf("SKIP: needs root (the launcher exists only when started as root)\n");
		return;
	}
	start_daemon(f, 10, 10, "127.0.0.0/8");
	fd = session(f, buf, sizeof(buf));
	assert_int_equal(strncmp(buf, "220 ", 4), 0);
	inode = listening_inode(f->port);
	assert_true(inode != 0);
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	for (int i = 0; i < 1024; i++) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/%ld/fd/%d", (long)f->daemon, i);
		n = readlink(path, link, sizeof(link) - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		held |= strcmp(link, want) == 0;
	}
	assert_false(held);
	quit(fd);
	assert_int_equal(stop_daemon(f), 0);
}

/* An address in use: refused at start with 75, nothing served. */
static void
test_address_in_use_refused(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), status;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)f->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 1), 0);
	start_daemon(f, 10, 10, "127.0.0.0/8");
	assert_int_equal(waitpid(f->daemon, &status, 0), f->daemon);
	f->daemon = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 75);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_connection_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_networks_not_counted_per_address, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_ends_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_launcher_holds_no_listener, setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_in_use_refused, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
