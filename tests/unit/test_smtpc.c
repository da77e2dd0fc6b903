/*
 * test_smtpc.c - smtpc.c: the smarthost client (SPEC 9) against a scripted
 * peer.  smtpc_send() talks over a socketpair whose other end holds the
 * peer's whole script of replies, written before the client speaks (replies
 * come in order, pipelined or not); smtpc_open() connects over TCP to a
 * child on 127.0.0.1 that writes its script and records what it is sent.
 * Bounded and well-formed replies (CVE-2020-8794, T96), per-recipient
 * replies, HELO fallback,
 * AUTH choice and refusal without TLS, dot-stuffing (T10, T26), and the
 * plaintext sent ahead of the STARTTLS handshake discarded (T45).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "smtpc.h"
#include "tls.h"
#include "util.h"
#include "unit.h"

static char tmpdir[64];

static int
setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/undersmtpd-smtpc-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	/* A peer that dies with its reply unread must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int
teardown_dir(void **state)
{

	(void)state;
	return remove_tree(tmpdir);
}

static struct conf *load(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* load - a configuration from text (printf-style), or the test fails. */
static struct conf *
load(const char *fmt, ...)
{
	char text[2048], *path;
	struct collected diags = {""};
	struct diag d = {collect, &diags, 0};
	struct conf *c;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	path = write_temp(text);
	c = conf_load(path, 0, &d);
	unlink(path);
	free(path);
	if (c == NULL)
		fprintf(stderr, "%s", diags.text);
	assert_non_null(c);
	return c;
}

static void
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		assert_true(w > 0);
		p += w;
		n -= (size_t)w;
	}
}

/* message_fd - a stored message (LF endings, as the spool keeps it). */
static int
message_fd(const char *text, size_t len)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/msg-XXXXXX", tmpdir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	write_all(fd, text, len);
	unlink(path);
	return fd;
}

/* An envelope from alice to the given recipients. */
static void
envelope(struct spool_env *e, const char *const *rcpts, size_t n)
{
	memset(e, 0, sizeof(*e));
	strcpy(e->id, "UNITSMTPC");
	strcpy(e->sender, "alice@example.org");
	e->size = 100;
	for (size_t i = 0; i < n; i++)
		spool_add_rcpt(e, rcpts[i], rcpts[i]);
}

/*
 * A client whose connection is one end of a socketpair, as smtpc_open
 * leaves it; the other end already holds the peer's replies.
 */
struct wire {
	struct conf *c;
	struct smtpc sc;
	int peer;
};

static void
wire_open(struct wire *w, struct conf *c, int pipelining, const char *replies,
    size_t len)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	w->c = c;
	smtpc_init(&w->sc, c);
	netio_init(&w->sc.io, sv[0]);
	w->sc.sh = &c->smarthosts[0];
	w->sc.open = 1;
	w->sc.pipelining = pipelining;
	strcpy(w->sc.name, "peer");
	w->peer = sv[1];
	write_all(w->peer, replies, len);
	/* The script is all the peer says: then EOF, never a wait for more. */
	shutdown(w->peer, SHUT_WR);
}

/* wire_sent - everything the client wrote so far (malloc'd, NUL-terminated). */
static char *
wire_sent(struct wire *w)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	ssize_t n;

	assert_int_equal(fcntl(w->peer, F_SETFL, O_NONBLOCK), 0);
	while ((n = read(w->peer, buf + len, cap - len)) > 0) {
		len += (size_t)n;
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
		}
	}
	buf[len] = '\0';
	return buf;
}

static void
wire_close(struct wire *w)
{
	netio_close(&w->sc.io);
	close(w->peer);
	conf_free(w->c);
}

static struct conf *
plain_conf(void)
{
	return load("hostname = \"client.example\"\n"
	    "smarthost \"sh\" { host = \"127.0.0.1\" port = 25 tls = none timeout = 5s }\n");
}

/* send_script - one smtpc_send of a small message over a wire; its return. */
static int
send_script(int pipelining, const char *replies, const char *const *rcpts, size_t n,
    struct smtpc_reply *rep, char **sent)
{
	struct wire w;
	struct spool_env e;
	size_t idx[8];
	int fd = message_fd("Subject: t\n\nhello\n", 18), rc;

	envelope(&e, rcpts, n);
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	wire_open(&w, plain_conf(), pipelining, replies, strlen(replies));
	rc = smtpc_send(&w.sc, &e, fd, idx, n, rep);
	*sent = wire_sent(&w);
	wire_close(&w);
	spool_env_free(&e);
	close(fd);
	return rc;
}

static const char *const three[] = {"ok@remote.test", "later@remote.test",
    "never@remote.test"};

static void
test_per_recipient_pipelined(void **state)
{
	struct smtpc_reply rep[3];
	char *sent;

	(void)state;
	assert_int_equal(send_script(1, "250 2.1.0 sender ok\r\n250 2.1.5 ok\r\n"
	    "451 4.2.0 later\r\n550 5.1.1 no such user\r\n354 go\r\n"
	    "250 2.0.0 queued as X\r\n", three, 3, rep, &sent), 0);
	assert_int_equal(rep[0].code, 250);
	assert_string_equal(rep[0].text, "250 2.0.0 queued as X");   /* the final reply */
	assert_int_equal(rep[1].code, 451);
	assert_string_equal(rep[1].text, "451 4.2.0 later");
	assert_int_equal(rep[2].code, 550);
	assert_string_equal(rep[2].text, "550 5.1.1 no such user");
	/* RFC 2920: MAIL and every RCPT in one go, then DATA. */
	assert_non_null(strstr(sent, "MAIL FROM:<alice@example.org>\r\n"
	    "RCPT TO:<ok@remote.test>\r\nRCPT TO:<later@remote.test>\r\n"
	    "RCPT TO:<never@remote.test>\r\nDATA\r\n"));
	assert_non_null(strstr(sent, "\r\nhello\r\n.\r\n"));
	free(sent);
}

static void
test_per_recipient_one_by_one(void **state)
{
	struct smtpc_reply rep[3];
	char *sent;

	(void)state;
	assert_int_equal(send_script(0, "250 ok\r\n451 4.2.0 later\r\n250 ok\r\n"
	    "550 5.1.1 unknown\r\n354 go\r\n250 2.0.0 done\r\n",
	    (const char *const[]){"later@remote.test", "ok@remote.test",
	    "never@remote.test"}, 3, rep, &sent), 0);
	assert_int_equal(rep[0].code, 451);
	assert_int_equal(rep[1].code, 250);
	assert_string_equal(rep[1].text, "250 2.0.0 done");
	assert_int_equal(rep[2].code, 550);
	free(sent);
	/* Nobody accepted: no DATA, RSET instead, the connection kept. */
	assert_int_equal(send_script(0, "250 ok\r\n451 4.2.0 a\r\n550 5.1.1 b\r\n"
	    "550 5.1.1 c\r\n250 reset\r\n", three, 3, rep, &sent), 0);
	assert_int_equal(rep[0].code, 451);
	assert_int_equal(rep[1].code, 550);
	assert_null(strstr(sent, "DATA"));
	assert_non_null(strstr(sent, "RSET\r\n"));
	free(sent);
	/* MAIL refused: every recipient gets that reply, none is tried. */
	assert_int_equal(send_script(0, "452 4.3.1 full\r\n250 reset\r\n", three, 3, rep,
	    &sent), 0);
	for (int i = 0; i < 3; i++)
		assert_string_equal(rep[i].text, "452 4.3.1 full");
	assert_null(strstr(sent, "RCPT"));
	free(sent);
	/*
	 * The same pipelined (MAIL, the RCPTs and DATA in one group, RFC 2920):
	 * the RCPT replies do not count, no message content is sent, RSET.
	 */
	assert_int_equal(send_script(1, "550 5.7.1 sender refused\r\n250 a\r\n250 b\r\n"
	    "250 c\r\n503 5.5.1 no sender\r\n250 reset\r\n", three, 3, rep, &sent), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rep[i].code, 550);
	assert_non_null(strstr(sent, "RCPT TO:<never@remote.test>\r\nDATA\r\nRSET\r\n"));
	assert_null(strstr(sent, "hello"));
	free(sent);
	/* Every RCPT refused, and a server that says 354 all the same: a lone dot. */
	assert_int_equal(send_script(1, "250 ok\r\n550 5.1.1 a\r\n550 5.1.1 b\r\n"
	    "550 5.1.1 c\r\n354 go\r\n554 5.5.1 no valid recipients\r\n250 reset\r\n",
	    three, 3, rep, &sent), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rep[i].code, 550);
	assert_non_null(strstr(sent, "DATA\r\n.\r\nRSET\r\n"));
	assert_null(strstr(sent, "hello"));
	free(sent);
	/* DATA refused, and a failure after the dot: accepted ones get that reply. */
	assert_int_equal(send_script(1, "250 a\r\n250 b\r\n550 5.1.1 c\r\n250 d\r\n"
	    "554 5.3.0 no data\r\n", three, 3, rep, &sent), 0);
	assert_int_equal(rep[0].code, 554);
	assert_int_equal(rep[1].code, 550);
	assert_int_equal(rep[2].code, 554);
	free(sent);
	assert_int_equal(send_script(1, "250 a\r\n250 b\r\n451 4.2.0 c\r\n250 d\r\n"
	    "354 go\r\n452 4.3.1 after the dot\r\n", three, 3, rep, &sent), 0);
	assert_int_equal(rep[0].code, 452);
	assert_int_equal(rep[1].code, 451);
	assert_int_equal(rep[2].code, 452);
	free(sent);
}

/* A reply of more than SMTPC_REPLY_LINE_MAX octets, CRLF counted, is refused. */
static void
test_reply_line_limit(void **state)
{
	const char *one[] = {"ok@remote.test"};
	struct smtpc_reply rep[1];
	char *script = malloc(70000), *sent;
	size_t len;

	(void)state;
	for (int extra = 0; extra <= 1; extra++) {
		/* "250 xxx...\r\n", SMTPC_REPLY_LINE_MAX + extra octets in all. */
		len = 0;
		memcpy(script, "250 ", 4);
		len = 4;
		while (len < (size_t)SMTPC_REPLY_LINE_MAX + extra - 2)
			script[len++] = 'x';
		memcpy(script + len, "\r\n250 ok\r\n354 go\r\n250 done\r\n", 29);
		assert_int_equal(send_script(1, script, one, 1, rep, &sent), extra ? -1 : 0);
		if (extra) {
			assert_int_equal(rep[0].code, 451);
			assert_non_null(strstr(rep[0].text, "4.4.2"));
			assert_non_null(strstr(rep[0].text, "too long"));
		} else {
			assert_int_equal(rep[0].code, 250);
			assert_string_equal(rep[0].text, "250 done");
		}
		free(sent);
	}
	/* 64 KiB without a line end: a temporary failure, nothing overrun. */
	memcpy(script, "250-", 4);
	memset(script + 4, 'y', 65536);
	script[65540] = '\0';
	assert_int_equal(send_script(1, script, one, 1, rep, &sent), -1);
	assert_int_equal(rep[0].code, 451);
	free(sent);
	free(script);
}

/* At most SMTPC_REPLY_LINES_MAX lines in one reply. */
static void
test_reply_lines_limit(void **state)
{
	const char *one[] = {"ok@remote.test"};
	struct smtpc_reply rep[1];
	char *script = malloc(SMTPC_REPLY_LINES_MAX * 16 + 100), *sent;

	(void)state;
	for (int extra = 0; extra <= 1; extra++) {
		size_t len = 0;

		for (int i = 0; i < SMTPC_REPLY_LINES_MAX - 1 + extra; i++)
			len += (size_t)sprintf(script + len, "250-line %d\r\n", i);
		len += (size_t)sprintf(script + len, "250 last\r\n250 ok\r\n354 go\r\n"
		    "250 done\r\n");
		assert_int_equal(send_script(1, script, one, 1, rep, &sent), extra ? -1 : 0);
		if (extra) {
			assert_int_equal(rep[0].code, 451);
			assert_non_null(strstr(rep[0].text, "lines"));
		} else {
			assert_string_equal(rep[0].text, "250 done");
		}
		free(sent);
	}
	free(script);
}

/* Anything but "ddd", "ddd text" or "ddd-text" with d a digit (2-5 first): 451. */
static void
test_malformed_replies(void **state)
{
	static const char *const bad[] = {
		"25O ok\r\n", "2500 ok\r\n", "ok\r\n", "600 no\r\n", "150 no\r\n", "25\r\n",
		"250x\r\n", "\r\n", "250-a\r\n251 b\r\n", "250-a\r\n550 b\r\n",
		" 250 ok\r\n", "250\tok\r\n",
		"250 ok",      /* connection closed mid-line */
	};
	const char *one[] = {"ok@remote.test"};
	struct smtpc_reply rep[1];
	char *sent;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char script[256];

		/* The rest would make a success of it, were the bad reply taken. */
		snprintf(script, sizeof(script), "%s%s", bad[i],
		    strchr(bad[i], '\n') ? "250 ok\r\n354 go\r\n250 done\r\n" : "");
		rep[0].code = 0;
		assert_int_equal(send_script(1, script, one, 1, rep, &sent), -1);
		assert_int_equal(rep[0].code, 451);
		assert_true(strncmp(rep[0].text, "451 4.4.2 ", 10) == 0);
		free(sent);
	}
	/* A bare "250" and LF alone are well-formed. */
	assert_int_equal(send_script(1, "250\n250 ok\n354 go\n250\r\n", one, 1, rep, &sent), 0);
	assert_int_equal(rep[0].code, 250);
	free(sent);
	/* Control characters in a reply never reach the spool's last-reply text. */
	assert_int_equal(send_script(1, "250 ok\r\n550 5.1.1 bad\001\033[2Jx\r\n"
	    "554 5.5.1 no valid recipients\r\n250 reset\r\n", one, 1, rep, &sent), 0);
	assert_int_equal(rep[0].code, 550);
	for (const char *p = rep[0].text; *p; p++)
		assert_true((unsigned char)*p >= 32 && *p != 127);
	free(sent);
}

/* T10, T26: on the wire CRLF only, leading dots doubled, one final dot. */
static void
test_dot_stuffing(void **state)
{
	static const char msg[] = "Subject: dots\n\n.\n..x\n.x\nmid.dle\n\n.\r\nstray\rCR\n"
	    "x\n.\nlast line without LF";
	const char *one[] = {"ok@remote.test"};
	struct smtpc_reply rep[1];
	struct spool_env e;
	struct wire w;
	size_t idx[1] = {0};
	char *sent, *body;
	int fd = message_fd(msg, sizeof(msg) - 1);

	(void)state;
	envelope(&e, one, 1);
	wire_open(&w, plain_conf(), 1, "250 a\r\n250 b\r\n354 go\r\n250 done\r\n", 33);
	assert_int_equal(smtpc_send(&w.sc, &e, fd, idx, 1, rep), 0);
	sent = wire_sent(&w);
	body = strstr(sent, "DATA\r\n");
	assert_non_null(body);
	assert_string_equal(body + 6, "Subject: dots\r\n\r\n..\r\n...x\r\n..x\r\nmid.dle\r\n"
	    "\r\n.. \r\nstray CR\r\nx\r\n..\r\nlast line without LF\r\n.\r\n");
	free(sent);
	wire_close(&w);
	/* A message ending in LF gets just the dot after it. */
	close(fd);
	fd = message_fd("a\n.\n", 4);
	wire_open(&w, plain_conf(), 1, "250 a\r\n250 b\r\n354 go\r\n250 done\r\n", 33);
	assert_int_equal(smtpc_send(&w.sc, &e, fd, idx, 1, rep), 0);
	sent = wire_sent(&w);
	assert_non_null(strstr(sent, "DATA\r\na\r\n..\r\n.\r\n"));
	free(sent);
	wire_close(&w);
	close(fd);
	spool_env_free(&e);
}

/* SMTPUTF8, SIZE, BODY=8BITMIME and rewrite_sender: what MAIL carries, or not sent. */
static void
test_mail_parameters(void **state)
{
	const char *one[] = {"ok@remote.test"};
	struct smtpc_reply rep[1];
	struct spool_env e;
	struct wire w;
	size_t idx[1] = {0};
	char *sent;
	int fd = message_fd("x\n", 2);

	(void)state;
	envelope(&e, one, 1);
	e.smtputf8 = 1;
	wire_open(&w, plain_conf(), 1, "", 0);
	assert_int_equal(smtpc_send(&w.sc, &e, fd, idx, 1, rep), 0);
	assert_int_equal(rep[0].code, 550);
	assert_non_null(strstr(rep[0].text, "5.6.7"));
	sent = wire_sent(&w);
	assert_string_equal(sent, "");           /* not a word sent */
	free(sent);
	wire_close(&w);
	e.smtputf8 = 0;
	e.size = 5000;
	wire_open(&w, plain_conf(), 1, "", 0);
	w.sc.has_size = 1;
	w.sc.size_max = 4999;
	assert_int_equal(smtpc_send(&w.sc, &e, fd, idx, 1, rep), 0);
	assert_int_equal(rep[0].code, 552);
	sent = wire_sent(&w);
	assert_string_equal(sent, "");
	free(sent);
	wire_close(&w);
	e.body8bit = 1;
	wire_open(&w, load("hostname = \"client.example\"\nsmarthost \"sh\" { host = "
	    "\"127.0.0.1\" port = 25 tls = none timeout = 5s rewrite_sender = "
	    "\"me@isp.test\" }\n"), 1, "250 a\r\n250 b\r\n354 go\r\n250 done\r\n", 33);
	w.sc.has_size = 1;
	w.sc.size_max = 5000;
	w.sc.eightbitmime = 1;
	assert_int_equal(smtpc_send(&w.sc, &e, fd, idx, 1, rep), 0);
	assert_int_equal(rep[0].code, 250);
	sent = wire_sent(&w);
	assert_true(strncmp(sent, "MAIL FROM:<me@isp.test> SIZE=5000 BODY=8BITMIME\r\n",
	    49) == 0);
	free(sent);
	wire_close(&w);
	/* The null sender stays null (a DSN is never rewritten into a sender). */
	e.sender[0] = '\0';
	e.body8bit = 0;
	wire_open(&w, load("hostname = \"client.example\"\nsmarthost \"sh\" { host = "
	    "\"127.0.0.1\" port = 25 tls = none timeout = 5s rewrite_sender = "
	    "\"me@isp.test\" }\n"), 1, "250 a\r\n250 b\r\n354 go\r\n250 done\r\n", 33);
	assert_int_equal(smtpc_send(&w.sc, &e, fd, idx, 1, rep), 0);
	sent = wire_sent(&w);
	assert_true(strncmp(sent, "MAIL FROM:<>\r\n", 14) == 0);
	free(sent);
	wire_close(&w);
	spool_env_free(&e);
	close(fd);
}

/*
 * The TCP peer: a child on 127.0.0.1 that writes `before`; with a
 * `starttls` reply it waits for STARTTLS, answers it (in one write, with
 * whatever junk the reply carries), does the TLS handshake and writes
 * `after` inside TLS.  It records what it reads until EOF into a file.
 */
struct peer {
	const char *before, *starttls, *after;
	pid_t pid;
	int port;
	char transcript[128];
	char *text;              /* the transcript, after peer_end */
};

static char cert_path[128], key_path[128];

static void
make_cert(void)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *fp;

	assert_non_null(pkey);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", tmpdir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", tmpdir);
	fp = fopen(key_path, "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL), 1);
	fclose(fp);
	fp = fopen(cert_path, "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_X509(fp, x), 1);
	fclose(fp);
	X509_free(x);
	EVP_PKEY_free(pkey);
}

static int
listen_local(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* peer_child - the child's whole life; never returns. */
static void
peer_child(int lfd, const struct peer *p)
{
	char buf[8192], acc[4096] = "";
	void *ssl = NULL;
	int fd, out;
	ssize_t n;

	alarm(30);
	fd = accept(lfd, NULL, NULL);
	out = open(p->transcript, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || out < 0)
		_exit(2);
	if (write(fd, p->before, strlen(p->before)) < 0)
		_exit(3);
	if (p->starttls != NULL) {
		size_t len = 0;

		while (len < 6 || strcmp(acc + len - 10 < acc ? acc : acc + len - 10,
		    "STARTTLS\r\n") != 0) {
			n = read(fd, acc + len, sizeof(acc) - 1 - len);
			if (n <= 0)
				_exit(4);
			if (write(out, acc + len, (size_t)n) < 0)
				_exit(4);
			len += (size_t)n;
			acc[len] = '\0';
			if (len >= 10 && strcmp(acc + len - 10, "STARTTLS\r\n") == 0)
				break;
		}
		/* The reply and what follows it, in one segment (T45). */
		if (write(fd, p->starttls, strlen(p->starttls)) < 0)
			_exit(5);
		{
			struct tls_server_opts o = {cert_path, key_path, NULL, 2, 3, NULL};
			char why[256];

			fcntl(fd, F_SETFL, O_NONBLOCK);
			ssl = tls_server_accept(&o, fd, fd, now_ms() + 10000, why, sizeof(why));
			if (ssl == NULL) {
				dprintf(out, "\n[peer: %s]\n", why);
				_exit(6);
			}
		}
		if (tls_server_write(ssl, fd, fd, p->after, strlen(p->after),
		    now_ms() + 10000) < 0)
			_exit(7);
		if (write(out, "[TLS]\r\n", 7) < 0)
			_exit(7);
		while ((n = tls_server_read(ssl, fd, fd, buf, sizeof(buf),
		    now_ms() + 10000)) > 0)
			if (write(out, buf, (size_t)n) < 0)
				_exit(8);
		_exit(0);
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) < 0)
			_exit(8);
	_exit(0);
}

/* peer_start - the peer, listening; returns the configuration naming it. */
static struct conf *
peer_start(struct peer *p, const char *sh_extra)
{
	int lfd = listen_local(&p->port);
	static int count;

	snprintf(p->transcript, sizeof(p->transcript), "%s/transcript-%d", tmpdir, count++);
	p->text = NULL;
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0)
		peer_child(lfd, p);
	close(lfd);
	return load("hostname = \"client.example\"\n"
	    "smarthost \"sh\" { host = \"127.0.0.1\" port = %d timeout = 5s %s }\n",
	    p->port, sh_extra);
}

/* peer_end - wait for the peer (the client has closed); read its transcript. */
static void
peer_end(struct peer *p)
{
	int status;
	FILE *fp;
	long len;

	assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
	fp = fopen(p->transcript, "r");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	p->text = calloc(1, (size_t)len + 1);
	assert_int_equal(fread(p->text, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	unlink(p->transcript);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "peer: status %d, transcript:\n%s\n", status, p->text);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* open_with - smtpc_open against a peer; its return, then close and collect. */
static int
open_with(struct peer *p, const char *sh_extra, struct smtpc *sc, struct smtpc_reply *err)
{
	struct conf *c = peer_start(p, sh_extra);
	int rc;

	smtpc_init(sc, c);
	rc = smtpc_open(sc, err);
	smtpc_close(sc);
	peer_end(p);
	conf_free(c);
	return rc;
}

/* RFC 5321 3.2: EHLO refused, HELO then; nothing of ESMTP assumed. */
static void
test_helo_fallback(void **state)
{
	struct peer p = {"220 peer ready\r\n502 5.5.1 what?\r\n250 hello\r\n221 bye\r\n",
	    NULL, NULL, 0, 0, "", NULL};
	struct smtpc sc;
	struct smtpc_reply err;

	(void)state;
	assert_int_equal(open_with(&p, "tls = none", &sc, &err), 0);
	assert_string_equal(p.text, "EHLO client.example\r\nHELO client.example\r\nQUIT\r\n");
	assert_int_equal(sc.pipelining, 0);
	free(p.text);
	/* HELO refused as well: no connection, a temporary failure. */
	p.before = "220 peer\r\n502 no\r\n550 no\r\n";
	assert_int_equal(open_with(&p, "tls = none", &sc, &err), -1);
	assert_true(err.code / 100 == 4 || err.code / 100 == 5);
	assert_int_equal(sc.open, 0);
	free(p.text);
	/* A 421 or 554 greeting: try again later (451), never a bounce. */
	p.before = "554 5.3.2 go away\r\n";
	assert_int_equal(open_with(&p, "tls = none", &sc, &err), -1);
	assert_int_equal(err.code, 451);
	assert_string_equal(p.text, "");
	free(p.text);
	/* EHLO keywords in any case; SIZE with its limit. */
	p.before = "220 peer\r\n250-peer\r\n250-pipelining\r\n250-8bitmime\r\n"
	    "250-Size 12345\r\n250 smtputf8\r\n221 bye\r\n";
	assert_int_equal(open_with(&p, "tls = none", &sc, &err), 0);
	assert_true(sc.pipelining && sc.eightbitmime && sc.smtputf8 && sc.has_size);
	assert_true(sc.size_max == 12345);
	free(p.text);
}

/* A password file only we can read: "secret". */
static const char *
password_file(mode_t mode)
{
	static char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/secret", tmpdir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("secret\n", fp);
	fclose(fp);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void
test_auth(void **state)
{
	struct peer p = {NULL, NULL, NULL, 0, 0, "", NULL};
	struct smtpc sc;
	struct smtpc_reply err;
	char extra[512];
	const char *pw = password_file(0600);

	(void)state;
	/* Without TLS and without auth_plaintext: no AUTH, no password sent. */
	snprintf(extra, sizeof(extra), "tls = none auth_user = \"me\" "
	    "auth_password_file = \"%s\"", pw);
	p.before = "220 peer\r\n250-peer\r\n250 AUTH PLAIN LOGIN\r\n";
	assert_int_equal(open_with(&p, extra, &sc, &err), -1);
	assert_int_equal(err.code, 451);
	assert_non_null(strstr(err.text, "4.7.10"));
	assert_null(strstr(p.text, "AUTH"));
	free(p.text);
	/* Allowed: PLAIN is chosen, in whatever case it is offered. */
	snprintf(extra, sizeof(extra), "tls = none auth_plaintext = true auth_user = \"me\" "
	    "auth_password_file = \"%s\"", pw);
	p.before = "220 peer\r\n250-peer\r\n250 AUTH login Plain\r\n235 2.7.0 ok\r\n221 bye\r\n";
	assert_int_equal(open_with(&p, extra, &sc, &err), 0);
	assert_true(sc.auth_plain && sc.auth_login);
	/* base64("\0me\0secret") */
	assert_non_null(strstr(p.text, "\r\nAUTH PLAIN AG1lAHNlY3JldA==\r\nQUIT\r\n"));
	free(p.text);
	/* Whole words only: XPLAIN, LOGIN-X and PLAINX are neither. */
	p.before = "220 peer\r\n250-peer\r\n250 AUTH XPLAIN LOGIN-X PLAINX CRAM-MD5\r\n";
	assert_int_equal(open_with(&p, extra, &sc, &err), -1);
	assert_int_equal(err.code, 451);
	assert_non_null(strstr(err.text, "neither"));
	assert_null(strstr(p.text, "AUTH"));
	free(p.text);
	/* LOGIN alone: the two-step dialogue. */
	p.before = "220 peer\r\n250-peer\r\n250 AUTH CRAM-MD5 LOGIN\r\n334 VXNlcm5hbWU6\r\n"
	    "334 UGFzc3dvcmQ6\r\n235 2.7.0 ok\r\n221 bye\r\n";
	assert_int_equal(open_with(&p, extra, &sc, &err), 0);
	assert_non_null(strstr(p.text, "\r\nAUTH LOGIN\r\nbWU=\r\nc2VjcmV0\r\nQUIT\r\n"));
	free(p.text);
	/* Credentials refused: our configuration's fault, a temporary failure. */
	p.before = "220 peer\r\n250-peer\r\n250 AUTH PLAIN\r\n535 5.7.8 bad credentials\r\n";
	assert_int_equal(open_with(&p, extra, &sc, &err), -1);
	assert_int_equal(err.code, 451);
	assert_non_null(strstr(err.text, "4.7.8"));
	free(p.text);
	/* A password file others can read is never used. */
	pw = password_file(0644);
	p.before = "220 peer\r\n250-peer\r\n250 AUTH PLAIN\r\n";
	assert_int_equal(open_with(&p, extra, &sc, &err), -1);
	assert_int_equal(err.code, 451);
	assert_non_null(strstr(err.text, "readable by others"));
	assert_null(strstr(p.text, "AUTH"));
	free(p.text);
}

/*
 * T45 (CVE-2021-38371's client side): bytes the server sends after its 220
 * to STARTTLS, before the handshake, are never read as a reply.  Here they
 * are a forged EHLO reply without PIPELINING; the true one, inside TLS,
 * offers it.  Then AUTH is allowed (TLS) and a message goes through.
 */
static void
test_starttls_discards_plaintext(void **state)
{
	struct peer p = {"220 peer\r\n250-peer\r\n250 STARTTLS\r\n",
	    "220 2.0.0 go ahead\r\n250 FORGED\r\n",
	    "250-peer\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n235 2.7.0 ok\r\n"
	    "250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n250 2.0.0 queued\r\n221 bye\r\n",
	    0, 0, "", NULL};
	const char *one[] = {"ok@remote.test"};
	struct smtpc_reply err, rep[1];
	struct spool_env e;
	struct smtpc sc;
	struct conf *c;
	size_t idx[1] = {0};
	char extra[512];
	int fd = message_fd("x\n", 2);

	(void)state;
	make_cert();
	snprintf(extra, sizeof(extra), "tls = starttls tls_verify = false auth_user = \"me\" "
	    "auth_password_file = \"%s\"", password_file(0600));
	c = peer_start(&p, extra);
	smtpc_init(&sc, c);
	assert_int_equal(smtpc_open(&sc, &err), 0);
	assert_non_null(sc.io.ssl);
	assert_int_equal(sc.pipelining, 1);      /* the reply inside TLS */
	envelope(&e, one, 1);
	assert_int_equal(smtpc_send(&sc, &e, fd, idx, 1, rep), 0);
	assert_int_equal(rep[0].code, 250);
	assert_string_equal(rep[0].text, "250 2.0.0 queued");
	smtpc_close(&sc);
	peer_end(&p);
	assert_non_null(strstr(p.text, "STARTTLS\r\n[TLS]\r\nEHLO client.example\r\n"
	    "AUTH PLAIN AG1lAHNlY3JldA==\r\nMAIL FROM:<alice@example.org>\r\n"));
	assert_non_null(strstr(p.text, "\r\n.\r\nQUIT\r\n"));
	free(p.text);
	spool_env_free(&e);
	conf_free(c);
	close(fd);
	/* STARTTLS required but not offered: no mail in the clear. */
	p.before = "220 peer\r\n250-peer\r\n250 PIPELINING\r\n";
	p.starttls = NULL;
	assert_int_equal(open_with(&p, "tls = starttls tls_verify = false", &sc, &err), -1);
	assert_int_equal(err.code, 451);
	assert_non_null(strstr(err.text, "4.7.4"));
	free(p.text);
}

/* Several smarthosts: tried in order; none answering is a temporary failure. */
static void
test_smarthosts_in_order(void **state)
{
	struct peer p = {"220 live\r\n250 peer\r\n221 bye\r\n", NULL, NULL, 0, 0, "", NULL};
	struct smtpc_reply err;
	struct smtpc sc;
	struct conf *c;
	int dead_port, lfd = listen_local(&dead_port);

	(void)state;
	close(lfd);                  /* nothing listens there now */
	conf_free(peer_start(&p, "tls = none"));
	c = load("hostname = \"client.example\"\n"
	    "smarthost \"dead\" { host = \"127.0.0.1\" port = %d tls = none timeout = 5s }\n"
	    "smarthost \"live\" { host = \"127.0.0.1\" port = %d tls = none timeout = 5s }\n",
	    dead_port, p.port);
	smtpc_init(&sc, c);
	assert_int_equal(smtpc_open(&sc, &err), 0);
	assert_non_null(strstr(sc.name, "live"));
	smtpc_close(&sc);
	peer_end(&p);
	free(p.text);
	conf_free(c);
	/* Only the dead one. */
	c = load("hostname = \"client.example\"\n"
	    "smarthost \"dead\" { host = \"127.0.0.1\" port = %d tls = none timeout = 5s }\n",
	    dead_port);
	smtpc_init(&sc, c);
	assert_int_equal(smtpc_open(&sc, &err), -1);
	assert_int_equal(err.code, 451);
	assert_non_null(strstr(err.text, "4.4.1"));
	smtpc_close(&sc);
	conf_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_recipient_pipelined),
		cmocka_unit_test(test_per_recipient_one_by_one),
		cmocka_unit_test(test_reply_line_limit),
		cmocka_unit_test(test_reply_lines_limit),
		cmocka_unit_test(test_malformed_replies),
		cmocka_unit_test(test_dot_stuffing),
		cmocka_unit_test(test_mail_parameters),
		cmocka_unit_test(test_helo_fallback),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_starttls_discards_plaintext),
		cmocka_unit_test(test_smarthosts_in_order),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
