/*
 * test_tls.c - tls.c: both ends of a TLS connection over a socketpair, the
 * server (tls_server_accept, for STARTTLS) in a forked child, the client
 * (tls_start_client, for the smarthost) here.  Certificates are made by the
 * openssl command in a temporary directory.
 *
 * Covered: bytes go through both ways; verification by CA and by name, and
 * its refusals with a reason (TESTCATALOGUE T97); an unverified client still
 * encrypts; TLS 1.2 is the oldest version either side speaks, and
 * tls.protocols narrows it; a cipher list that matches nothing is refused
 * before any client comes; a deadline ends a handshake with a silent peer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "tls.h"
#include "unit.h"
#include "util.h"

struct fixture {
	char dir[64];
	char crt[128], key[128], other_crt[128], other_key[128];
};

static int
make_cert(const char *dir, const char *name, char *crt, char *key)
{
	char cmd[1024];

	snprintf(crt, 128, "%s/%s.crt", dir, name);
	snprintf(key, 128, "%s/%s.key", dir, name);
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:prime256v1 -nodes -keyout %s -out %s -days 2 -subj /CN=%s "
	    "-addext subjectAltName=DNS:%s >/dev/null 2>&1", key, crt, name, name);
	return system(cmd) == 0 ? 0 : -1;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/undersmtpd-tls-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	if (make_cert(f->dir, "mx.test", f->crt, f->key) < 0 ||
	    make_cert(f->dir, "other.test", f->other_crt, f->other_key) < 0)
		return -1;
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

/*
 * serve - a forked server on fd: handshake with o, then echo one line in
 * upper case.  Exits 0 when all went well, 1 when the handshake failed.
 */
static pid_t
serve(int fd, const struct tls_server_opts *o)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char why[512], buf[256];
		void *ssl;
		ssize_t n;

		alarm(30);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		ssl = tls_server_accept(o, fd, fd, now_ms() + 10000, why, sizeof(why));
		if (ssl == NULL)
			_exit(1);
		n = tls_server_read(ssl, fd, fd, buf, sizeof(buf), now_ms() + 10000);
		if (n <= 0)
			_exit(2);
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] >= 'a' && buf[i] <= 'z')
				buf[i] = (char)(buf[i] - 'a' + 'A');
		if (tls_server_write(ssl, fd, fd, buf, (size_t)n, now_ms() + 10000) != n)
			_exit(3);
		/* Wait for the client to close, so the echo is read before we go. */
		(void)tls_server_read(ssl, fd, fd, buf, sizeof(buf), now_ms() + 10000);
		tls_server_free(ssl);
		_exit(0);
	}
	close(fd);
	return pid;
}

static int
server_status(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* client - handshake as a client to a server with o; 0 or -1 with why. */
static int
client(const struct tls_server_opts *o, const char *host, int verify, const char *ca,
    char *why, size_t whysize, char *echo, size_t echosize, int *server)
{
	int sv[2], rc;
	struct netio io;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = serve(sv[1], o);
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	netio_init(&io, sv[0]);
	why[0] = '\0';
	rc = tls_start_client(&io, host, verify, ca, now_ms() + 10000, why, whysize);
	if (rc == 0) {
		ssize_t n;

		assert_int_equal(netio_write_all(&io, "hello tls\n", 10, now_ms() + 10000), 0);
		n = netio_read(&io, echo, echosize - 1, now_ms() + 10000);
		assert_true(n > 0);
		echo[n] = '\0';
	}
	netio_close(&io);
	*server = server_status(pid);
	return rc;
}

static void
test_verified_connection_carries_bytes(void **state)
{
	struct fixture *f = *state;
	struct tls_server_opts o = {f->crt, f->key, NULL, 2, 3, NULL};
	char why[512], echo[64];
	int server;

	assert_int_equal(client(&o, "mx.test", 1, f->crt, why, sizeof(why), echo,
	    sizeof(echo), &server), 0);
	assert_string_equal(echo, "HELLO TLS\n");
	assert_int_equal(server, 0);
}

/* T97: another name, or a chain we cannot verify -> refused, with the reason. */
static void
test_verification_refusals(void **state)
{
	struct fixture *f = *state;
	struct tls_server_opts o = {f->crt, f->key, NULL, 2, 3, NULL};
	char why[512], echo[64];
	int server;

	assert_int_equal(client(&o, "wrong.test", 1, f->crt, why, sizeof(why), echo,
	    sizeof(echo), &server), -1);
	assert_non_null(strstr(why, "verif"));
	assert_int_not_equal(server, 0);
	/* The certificate of another server as the only trusted one. */
	assert_int_equal(client(&o, "mx.test", 1, f->other_crt, why, sizeof(why), echo,
	    sizeof(echo), &server), -1);
	assert_non_null(strstr(why, "verif"));
	assert_int_not_equal(server, 0);
	/* Asked to verify without a CA file: refused before any byte is sent. */
	assert_int_equal(client(&o, "mx.test", 1, NULL, why, sizeof(why), echo,
	    sizeof(echo), &server), -1);
	assert_true(why[0] != '\0');
	/* Not verifying (tls = may): the connection is made, and encrypted. */
	assert_int_equal(client(&o, "wrong.test", 0, NULL, why, sizeof(why), echo,
	    sizeof(echo), &server), 0);
	assert_string_equal(echo, "HELLO TLS\n");
	assert_int_equal(server, 0);
}

/*
 * tls.protocols: a server of TLS 1.3 only still meets our client; one of
 * TLS 1.0-1.1 only does not.  (Debian's OpenSSL refuses 1.0 and 1.1 at its
 * default security level as well, so this holds even without the client's
 * own TLS 1.2 minimum: a mutation of that line alone survives here.)
 */
static void
test_protocol_versions(void **state)
{
	struct fixture *f = *state;
	struct tls_server_opts only13 = {f->crt, f->key, NULL, 3, 3, NULL};
	struct tls_server_opts only11 = {f->crt, f->key, NULL, 0, 1, NULL};
	char why[512], echo[64];
	int server;

	assert_int_equal(client(&only13, "mx.test", 1, f->crt, why, sizeof(why), echo,
	    sizeof(echo), &server), 0);
	assert_int_equal(server, 0);
	assert_int_equal(client(&only11, "mx.test", 1, f->crt, why, sizeof(why), echo,
	    sizeof(echo), &server), -1);
	assert_int_not_equal(server, 0);
}

/* A cipher list that matches nothing is refused at start, not at the client. */
static void
test_cipher_list_checked(void **state)
{
	struct fixture *f = *state;
	struct tls_server_opts good = {f->crt, f->key, NULL, 2, 3, NULL};
	struct tls_server_opts bad = {f->crt, f->key, "NO-SUCH-CIPHER", 2, 3, NULL};
	struct tls_server_opts nokey = {f->crt, f->other_key, NULL, 2, 3, NULL};
	char why[512];

	assert_int_equal(tls_server_check(&good, why, sizeof(why)), 0);
	assert_int_equal(tls_server_check(&bad, why, sizeof(why)), -1);
	assert_true(why[0] != '\0');
	/* A key that is not the certificate's. */
	why[0] = '\0';
	assert_int_equal(tls_server_check(&nokey, why, sizeof(why)), -1);
	assert_true(why[0] != '\0');
}

/* A peer that never answers the ClientHello: the deadline ends the wait. */
static void
test_handshake_deadline(void **state)
{
	int sv[2];
	struct netio io;
	char why[512];
	int64_t start = now_ms();

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	netio_init(&io, sv[0]);
	assert_int_equal(tls_start_client(&io, "mx.test", 0, NULL, now_ms() + 500, why,
	    sizeof(why)), -1);
	assert_true(now_ms() - start >= 450 && now_ms() - start < 10000);
	assert_true(why[0] != '\0');
	netio_close(&io);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_verified_connection_carries_bytes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verification_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cipher_list_checked, setup, teardown),
		cmocka_unit_test(test_handshake_deadline),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
