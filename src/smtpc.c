/*
 * smtpc.c - SMTP client for the smarthost.  See smtpc.h.
 *
 * Stage timeouts default to RFC 5321 4.5.3.2: 5 minutes for the greeting,
 * MAIL and RCPT, 2 for DATA, 3 per block of data, 10 after the final dot;
 * smarthost.timeout replaces them all.  On the wire the message is CRLF
 * only and dot-stuffed; a stray CR in the stored text is sent as a space.
 */
#include "smtpc.h"
#include "oauth.h"
#include "stats.h"
#include "buf.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum stage { ST_CONNECT, ST_GREETING, ST_MAIL, ST_RCPT, ST_DATA, ST_BLOCK, ST_FINAL };
static const long stage_default[] = {60, 300, 300, 300, 120, 180, 600};

static int64_t
deadline_for(const struct smtpc *sc, enum stage st)
{
	long secs = sc->sh && sc->sh->timeout > 0 ? sc->sh->timeout : stage_default[st];

	return now_ms() + (int64_t)secs * 1000;
}

static void
synth(struct smtpc_reply *r, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
synth(struct smtpc_reply *r, int code, const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

void
smtpc_init(struct smtpc *sc, const struct conf *c)
{
	memset(sc, 0, sizeof(*sc));
	sc->conf = c;
	netio_init(&sc->io, -1);
}

static void note(struct smtpc *sc, const char *step, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* note - one step for the trace (--probe-smarthost), if anyone listens. */
static void
note(struct smtpc *sc, const char *step, const char *fmt, ...)
{
	char text[SMTPC_REPLY_LINE_MAX + 200];
	va_list ap;

	if (sc->trace == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	str_mask_controls(text);
	sc->trace(sc->trace_ctx, step, text);
}

/* read_line - one reply line without CRLF; -1 (errno) on EOF, timeout, overlong. */
static int
read_line(struct smtpc *sc, char *line, size_t size, int64_t deadline)
{
	size_t o = 0;

	for (;;) {
		while (sc->start < sc->end) {
			char c = sc->in[sc->start++];

			if (c == '\n') {
				if (o > 0 && line[o - 1] == '\r')
					o--;
				line[o] = '\0';
				return 0;
			}
			if (o + 1 >= size) {
				errno = EMSGSIZE;
				return -1;
			}
			line[o++] = c;
		}
		ssize_t n = netio_read(&sc->io, sc->in, sizeof(sc->in), deadline);

		if (n <= 0) {
			if (n == 0)
				errno = ECONNRESET;
			return -1;
		}
		sc->start = 0;
		sc->end = (size_t)n;
	}
}

/*
 * read_reply - a whole (possibly multi-line) reply, bounded.  Calls
 * each_line for every line (EHLO keywords).  A broken reply becomes a
 * synthetic 451, the connection unusable (returns -1).
 */
static int
read_reply(struct smtpc *sc, enum stage st, struct smtpc_reply *r,
    void (*each_line)(struct smtpc *, const char *))
{
	char line[SMTPC_REPLY_LINE_MAX];
	int64_t deadline = deadline_for(sc, st);
	int code = -1;

	for (int n = 0; ; n++) {
		if (n >= SMTPC_REPLY_LINES_MAX) {
			synth(r, 451, "451 4.4.2 %s: reply of more than %d lines", sc->name,
			    SMTPC_REPLY_LINES_MAX);
			return -1;
		}
		if (read_line(sc, line, sizeof(line), deadline) < 0) {
			synth(r, 451, "451 4.4.2 %s: %s", sc->name, errno == ETIMEDOUT
			    ? "timed out waiting for a reply" : errno == EMSGSIZE
			    ? "reply line too long" : "lost connection");
			return -1;
		}
		if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' ||
		    (line[3] != '\0' && line[3] != ' ' && line[3] != '-')) {
			synth(r, 451, "451 4.4.2 %s: malformed reply", sc->name);
			return -1;
		}
		if (code < 0) {
			code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
			str_copy(r->text, sizeof(r->text), line);
			str_mask_controls(r->text);
		} else if (strncmp(line, r->text, 3) != 0) {
			synth(r, 451, "451 4.4.2 %s: mixed reply codes", sc->name);
			return -1;
		}
		if (each_line != NULL && strlen(line) > 4)
			each_line(sc, line + 4);
		if (line[3] != '-')
			break;
	}
	r->code = code;
	return 0;
}

static int
send_line(struct smtpc *sc, enum stage st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define SMTPC_LINE_MAX 1100

static int format_line(char line[SMTPC_LINE_MAX], const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* format_line - one command line with its CRLF; its length, or -1 (EMSGSIZE). */
static int
format_line(char line[SMTPC_LINE_MAX], const char *fmt, va_list ap)
{
	int n = vsnprintf(line, SMTPC_LINE_MAX - 2, fmt, ap);

	if (n < 0 || n >= SMTPC_LINE_MAX - 2) {
		errno = EMSGSIZE;
		return -1;
	}
	line[n++] = '\r';
	line[n++] = '\n';
	return n;
}

static int
send_line(struct smtpc *sc, enum stage st, const char *fmt, ...)
{
	char line[SMTPC_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = format_line(line, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	return netio_write_all(&sc->io, line, (size_t)n, deadline_for(sc, st));
}

/*
 * has_mechanism - whether the space-separated SASL mechanism list names mech
 * (whole words, any case: "XPLAIN" or "LOGIN-X" is not PLAIN or LOGIN).
 */
static int
has_mechanism(const char *list, const char *mech)
{
	size_t mlen = strlen(mech);

	for (const char *p = list; *p; ) {
		size_t n;

		p += strspn(p, " ");
		n = strcspn(p, " ");
		if (n == mlen) {
			size_t k = 0;

			while (k < n && (p[k] == mech[k] || (p[k] >= 'a' && p[k] <= 'z' &&
			    p[k] - 32 == mech[k])))
				k++;
			if (k == n)
				return 1;
		}
		p += n;
	}
	return 0;
}

static void
ehlo_keyword(struct smtpc *sc, const char *kw)
{
	char up[64];
	size_t i = 0;

	note(sc, "capability", "%s", kw);
	for (; kw[i] && kw[i] != ' ' && i + 1 < sizeof(up); i++)
		up[i] = (char)((kw[i] >= 'a' && kw[i] <= 'z') ? kw[i] - 32 : kw[i]);
	up[i] = '\0';
	if (strcmp(up, "PIPELINING") == 0)
		sc->pipelining = 1;
	else if (strcmp(up, "8BITMIME") == 0)
		sc->eightbitmime = 1;
	else if (strcmp(up, "SMTPUTF8") == 0)
		sc->smtputf8 = 1;
	else if (strcmp(up, "STARTTLS") == 0)
		sc->starttls = 1;
	else if (strcmp(up, "SIZE") == 0) {
		sc->has_size = 1;
		sc->size_max = kw[i] == ' ' ? strtoull(kw + i + 1, NULL, 10) : 0;
	} else if (strcmp(up, "AUTH") == 0) {
		sc->auth_plain = has_mechanism(kw + i, "PLAIN");
		sc->auth_login = has_mechanism(kw + i, "LOGIN");
		sc->auth_xoauth2 = has_mechanism(kw + i, "XOAUTH2");
		sc->auth_oauthbearer = has_mechanism(kw + i, "OAUTHBEARER");
	}
}

static int
ehlo(struct smtpc *sc, struct smtpc_reply *r)
{
	sc->pipelining = sc->eightbitmime = sc->smtputf8 = sc->starttls = 0;
	sc->has_size = sc->auth_plain = sc->auth_login = 0;
	sc->auth_xoauth2 = sc->auth_oauthbearer = 0;
	sc->size_max = 0;
	if (send_line(sc, ST_GREETING, "EHLO %s", sc->conf->hostname) < 0 ||
	    read_reply(sc, ST_GREETING, r, ehlo_keyword) < 0)
		return -1;
	if (r->code / 100 == 2)
		return 0;
	if (r->code == 421)
		return -1;         /* closing (RFC 5321 3.8): no HELO, its reply stands */
	/* RFC 5321 3.2: an old server answers EHLO with 5xx; HELO then. */
	if (send_line(sc, ST_GREETING, "HELO %s", sc->conf->hostname) < 0 ||
	    read_reply(sc, ST_GREETING, r, NULL) < 0)
		return -1;
	return r->code / 100 == 2 ? 0 : -1;
}

static int
tcp_connect(struct smtpc *sc, const struct smarthost_conf *sh, struct smtpc_reply *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[16];
	int rc, saved = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	snprintf(port, sizeof(port), "%ld", sh->port);
	rc = getaddrinfo(sh->host, port, &hints, &res);
	if (rc != 0) {
		synth(err, 451, "451 4.4.4 %s: cannot resolve: %s", sc->name, gai_strerror(rc));
		return -1;
	}
	note(sc, "resolve", "%s: %s", sh->host, res->ai_next ? "several addresses, tried in "
	    "order" : "one address");
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
		char addr[INET6_ADDRSTRLEN + 2] = "?";

		if (sc->trace != NULL)
			getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0,
			    NI_NUMERICHOST);

		if (fd < 0) {
			saved = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			int64_t left = deadline_for(sc, ST_CONNECT) - now_ms();
			int soerr = 0;
			socklen_t len = sizeof(soerr);

			if (poll(&pfd, 1, (int)left) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr == 0) {
				int one = 1;

				/*
				 * Commands and the final dot are small writes after larger
				 * ones: with Nagle each waits for the peer's delayed ACK
				 * (40 ms a message, measured by make bench).
				 */
				if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
					log_warn("%s: setsockopt TCP_NODELAY", sc->name);
				freeaddrinfo(res);
				netio_init(&sc->io, fd);
				note(sc, "connect", "%s port %s: connected", addr, port);
				return 0;
			}
			saved = soerr ? soerr : ETIMEDOUT;
		} else {
			saved = errno;
		}
		note(sc, "connect", "%s port %s: %s", addr, port, strerror(saved));
		close(fd);
	}
	freeaddrinfo(res);
	synth(err, 451, "451 4.4.1 %s: connect: %s", sc->name, strerror(saved));
	return -1;
}

static int
start_tls(struct smtpc *sc, const struct smarthost_conf *sh, struct smtpc_reply *err)
{
	char why[300];
	int verify = sh->tls_verify && sh->tls != TLSMODE_MAY;

	char info[1200];

	if (tls_start_client(&sc->io, sh->host, verify, sh->ca_file,
	    deadline_for(sc, ST_GREETING), why, sizeof(why)) < 0) {
		if (sc->trace != NULL) {
			tls_peer_info(&sc->io, info, sizeof(info));
			note(sc, "tls", "handshake failed: %s (%s)", why, info);
		}
		synth(err, 451, "451 4.7.5 %s: %s", sc->name, why);
		return -1;
	}
	if (sc->trace != NULL) {
		tls_peer_info(&sc->io, info, sizeof(info));
		note(sc, "tls", "%s", info);
	}
	/* Nothing the server sent before the handshake counts (CVE-2021-38371). */
	sc->start = sc->end = 0;
	return 0;
}

/* read_secret - the first line of a file that others cannot read. */
static int
read_secret(const char *path, char *out, size_t size, char *why, size_t whysize)
{
	struct stat st;
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		snprintf(why, whysize, "open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) < 0 || (st.st_mode & (S_IRWXG | S_IRWXO))) {
		snprintf(why, whysize, "%s is readable by others: refusing to use it", path);
		fclose(fp);
		return -1;
	}
	if (fgets(out, (int)size, fp) == NULL)
		out[0] = '\0';
	fclose(fp);
	out[strcspn(out, "\r\n")] = '\0';
	if (out[0] == '\0') {
		snprintf(why, whysize, "%s is empty", path);
		return -1;
	}
	return 0;
}

static void
b64(const char *in, size_t len, char *out, size_t size)
{
	if (size < 4 * ((len + 2) / 3) + 1) {
		out[0] = '\0';
		return;
	}
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)len);
}

/* send_auth - "AUTH MECH RESPONSE": longer than any other command (a token). */
static int
send_auth(struct smtpc *sc, const char *mech, const char *response)
{
	size_t len = strlen("AUTH  \r\n") + strlen(mech) + strlen(response) + 1;
	char *line = xmalloc(len);
	int n = snprintf(line, len, "AUTH %s %s\r\n", mech, response), rc;

	rc = n < 0 || (size_t)n >= len ? -1 : netio_write_all(&sc->io, line, (size_t)n,
	    deadline_for(sc, ST_MAIL));
	explicit_bzero(line, len);
	free(line);
	return rc;
}

/*
 * authenticate_oauth - AUTH XOAUTH2 or OAUTHBEARER with a token from the
 * administrator's helper, over TLS only.  A refused token is asked for
 * afresh and tried once more; a server's error challenge (334 with its JSON)
 * is answered as each mechanism says, to get its final reply.
 */
static int
authenticate_oauth(struct smtpc *sc, const struct smarthost_conf *sh,
    struct smtpc_reply *err)
{
	int xo = sh->auth_mechanism == SASL_XOAUTH2, rc = -1;
	const char *mech = xo ? "XOAUTH2" : "OAUTHBEARER";
	size_t rsize = OAUTH_TOKEN_MAX + 700, esize = 4 * (rsize / 3 + 1) + 1;
	char *token = xmalloc(OAUTH_TOKEN_MAX + 1), *resp = xmalloc(rsize), *enc = xmalloc(esize);
	char why[600];

	if (sc->io.ssl == NULL) {
		synth(err, 451, "451 4.7.10 %s: refusing to send an OAuth2 token without TLS",
		    sc->name);
		goto out;
	}
	if (!(xo ? sc->auth_xoauth2 : sc->auth_oauthbearer)) {
		synth(err, 451, "451 4.7.0 %s: does not offer AUTH %s", sc->name, mech);
		goto out;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		int n;

		if (oauth_token(sc->conf, sh, attempt > 0, token, OAUTH_TOKEN_MAX + 1, why,
		    sizeof(why)) < 0) {
			synth(err, 451, "451 4.7.0 %s: %s", sc->name, why);
			goto out;
		}
		n = oauth_response(sh, token, resp, rsize);
		if (n < 0) {
			synth(err, 451, "451 4.7.0 %s: the OAuth2 response is too long", sc->name);
			goto out;
		}
		EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)resp, n);
		if (send_auth(sc, mech, enc) < 0) {
			synth(err, 451, "451 4.4.2 %s: sending AUTH: %s", sc->name, strerror(errno));
			goto out;
		}
		if (read_reply(sc, ST_MAIL, err, NULL) < 0)
			goto out;
		/* RFC 7628 3.2.3 and Google's XOAUTH2: an error is a 334 first. */
		if (err->code == 334 && (send_line(sc, ST_MAIL, "%s", xo ? "" : "AQ==") < 0 ||
		    read_reply(sc, ST_MAIL, err, NULL) < 0))
			goto out;
		note(sc, "auth", "%s as %s%s: %s", mech, sh->auth_user, attempt ? " (a fresh "
		    "token)" : "", err->text);
		if (err->code == 235) {
			rc = 0;
			goto out;
		}
		if (err->code / 100 != 5)
			break;      /* 4xx: the server's trouble, try later */
	}
	if (err->code / 100 != 4) {
		char text[SPOOL_REPLY_MAX];

		str_copy(text, sizeof(text), err->text);
		synth(err, 451, "451 4.7.8 %s: authentication failed: %s", sc->name, text);
	}
out:
	explicit_bzero(token, OAUTH_TOKEN_MAX + 1);
	explicit_bzero(resp, rsize);
	explicit_bzero(enc, esize);
	free(token);
	free(resp);
	free(enc);
	return rc;
}

static int
authenticate(struct smtpc *sc, const struct smarthost_conf *sh, struct smtpc_reply *err)
{
	char pass[512], why[300], buf[1200], enc[1700];
	size_t ulen = strlen(sh->auth_user), plen;
	int rc = -1;

	if (sh->auth_mechanism == SASL_XOAUTH2 || sh->auth_mechanism == SASL_OAUTHBEARER)
		return authenticate_oauth(sc, sh, err);
	if (sc->io.ssl == NULL && !sh->auth_plaintext) {
		synth(err, 451, "451 4.7.10 %s: refusing AUTH without TLS (set auth_plaintext "
		    "to allow it)", sc->name);
		return -1;
	}
	if (read_secret(sh->auth_password_file, pass, sizeof(pass), why, sizeof(why)) < 0) {
		synth(err, 451, "451 4.7.0 %s: %s", sc->name, why);
		return -1;
	}
	plen = strlen(pass);
	if (sc->auth_plain && sh->auth_mechanism != SASL_LOGIN && ulen + plen + 2 < sizeof(buf)) {
		buf[0] = '\0';
		memcpy(buf + 1, sh->auth_user, ulen);
		buf[ulen + 1] = '\0';
		memcpy(buf + ulen + 2, pass, plen);
		b64(buf, ulen + plen + 2, enc, sizeof(enc));
		if (send_line(sc, ST_MAIL, "AUTH PLAIN %s", enc) < 0 ||
		    read_reply(sc, ST_MAIL, err, NULL) < 0)
			goto out;
	} else if (sc->auth_login && sh->auth_mechanism != SASL_PLAIN) {
		if (send_line(sc, ST_MAIL, "AUTH LOGIN") < 0 ||
		    read_reply(sc, ST_MAIL, err, NULL) < 0)
			goto out;
		if (err->code == 334) {
			b64(sh->auth_user, ulen, enc, sizeof(enc));
			if (send_line(sc, ST_MAIL, "%s", enc) < 0 ||
			    read_reply(sc, ST_MAIL, err, NULL) < 0)
				goto out;
		}
		if (err->code == 334) {
			b64(pass, plen, enc, sizeof(enc));
			if (send_line(sc, ST_MAIL, "%s", enc) < 0 ||
			    read_reply(sc, ST_MAIL, err, NULL) < 0)
				goto out;
		}
	} else {
		synth(err, 451, "451 4.7.0 %s: offers neither AUTH PLAIN nor LOGIN", sc->name);
		goto out;
	}
	note(sc, "auth", "%s as %s: %s", sc->auth_plain ? "PLAIN" : "LOGIN", sh->auth_user,
	    err->text);
	if (err->code == 235)
		rc = 0;
	else if (err->code / 100 != 4) {
		/* Our credentials are wrong: our configuration, never the mail's fault. */
		char text[SPOOL_REPLY_MAX];

		str_copy(text, sizeof(text), err->text);
		synth(err, 451, "451 4.7.8 %s: authentication failed: %s", sc->name, text);
	}
out:
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

int
smtpc_reset(struct smtpc *sc, struct smtpc_reply *r)
{
	if (send_line(sc, ST_MAIL, "RSET") < 0 || read_reply(sc, ST_MAIL, r, NULL) < 0)
		return -1;
	return r->code / 100 == 2 ? 0 : -1;
}

int
smtpc_open_one(struct smtpc *sc, const struct smarthost_conf *sh, struct smtpc_reply *err)
{
	sc->sh = sh;
	sc->start = sc->end = 0;
	snprintf(sc->name, sizeof(sc->name), "%s[%s]:%ld", sh->name, sh->host, sh->port);
	if (tcp_connect(sc, sh, err) < 0)
		return -1;
	if (sh->tls == TLSMODE_IMPLICIT && start_tls(sc, sh, err) < 0)
		return -1;
	if (read_reply(sc, ST_GREETING, err, NULL) < 0)
		return -1;
	note(sc, "banner", "%s", err->text);
	if (err->code != 220) {
		/* A 421 or 554 greeting: try later, or another smarthost. */
		err->code = 451;
		return -1;
	}
	if (ehlo(sc, err) < 0)
		return -1;
	if (sh->tls == TLSMODE_STARTTLS || (sh->tls == TLSMODE_MAY && sc->starttls)) {
		if (!sc->starttls) {
			synth(err, 451, "451 4.7.4 %s: TLS is required but STARTTLS is not "
			    "offered", sc->name);
			return -1;
		}
		if (send_line(sc, ST_GREETING, "STARTTLS") < 0 ||
		    read_reply(sc, ST_GREETING, err, NULL) < 0)
			return -1;
		note(sc, "starttls", "%s", err->text);
		if (err->code != 220) {
			err->code = 451;
			return -1;
		}
		if (start_tls(sc, sh, err) < 0 || ehlo(sc, err) < 0)
			return -1;
	}
	if (sh->auth_user != NULL && authenticate(sc, sh, err) < 0)
		return -1;
	sc->open = 1;
	return 0;
}

static int send_body(struct smtpc *sc, int msgfd);

/*
 * The transaction a command at a time, for proxy mode: each reply is the
 * client's.  A 421 or a broken connection closes it (the caller's reply is
 * then r, a 4xx).
 */
static int
step(struct smtpc *sc, enum stage st, const char *cmd, const char *arg,
    struct smtpc_reply *r)
{
	if (send_line(sc, st, "%s%s", cmd, arg) < 0) {
		synth(r, 451, "451 4.4.2 %s: lost connection: %s", sc->name, strerror(errno));
		sc->open = 0;
		return -1;
	}
	if (read_reply(sc, st, r, NULL) < 0 || r->code == 421) {
		sc->open = 0;
		return -1;
	}
	return 0;
}

int
smtpc_mail(struct smtpc *sc, const char *sender, int smtputf8, int body8bit,
    struct smtpc_reply *r)
{
	char arg[ADDR_PATH_MAX + 64];

	memset(r, 0, sizeof(*r));
	if (smtputf8 && !sc->smtputf8) {
		synth(r, 550, "550 5.6.7 %s does not support SMTPUTF8", sc->name);
		return 0;
	}
	if (sc->sh->rewrite_sender != NULL && sender[0] != '\0')
		sender = sc->sh->rewrite_sender;
	snprintf(arg, sizeof(arg), "<%s>%s%s", sender,
	    body8bit && sc->eightbitmime ? " BODY=8BITMIME" : "", smtputf8 ? " SMTPUTF8" : "");
	return step(sc, ST_MAIL, "MAIL FROM:", arg, r);
}

int
smtpc_rcpt(struct smtpc *sc, const char *addr, struct smtpc_reply *r)
{
	char arg[ADDR_PATH_MAX + 3];

	memset(r, 0, sizeof(*r));
	snprintf(arg, sizeof(arg), "<%s>", addr);
	return step(sc, ST_RCPT, "RCPT TO:", arg, r);
}

int
smtpc_data(struct smtpc *sc, int msgfd, struct smtpc_reply *r)
{
	memset(r, 0, sizeof(*r));
	if (step(sc, ST_DATA, "DATA", "", r) < 0)
		return -1;
	if (r->code != 354)
		return 0;
	if (send_body(sc, msgfd) < 0) {
		synth(r, 451, "451 4.4.2 %s: lost connection: %s", sc->name, strerror(errno));
		sc->open = 0;
		return -1;
	}
	if (read_reply(sc, ST_FINAL, r, NULL) < 0 || r->code == 421) {
		sc->open = 0;
		return -1;
	}
	return 0;
}

const char *
smtpc_block(const struct smtpc *sc)
{
	return sc->sh != NULL ? sc->sh->name : "none";
}

int
smtpc_open(struct smtpc *sc, struct smtpc_reply *err)
{
	memset(err, 0, sizeof(*err));
	for (size_t i = 0; i < sc->conf->nsmarthosts; i++) {
		const char *block = sc->conf->smarthosts[i].name;

		if (smtpc_open_one(sc, &sc->conf->smarthosts[i], err) == 0) {
			stats_connect(sc->conf, block, sc->name, 1, "connected");
			return 0;
		}
		stats_connect(sc->conf, block, sc->name, 0, err->text);
		/* Our own texts name the smarthost already; a server's reply does not. */
		if (strstr(err->text, sc->name) != NULL)
			log_warnx("smarthost: %s", err->text);
		else
			log_warnx("smarthost %s: %s", sc->name, err->text);
		netio_close(&sc->io);
	}
	if (err->code == 0)
		synth(err, 451, "451 4.3.5 no smarthost is configured");
	else if (err->code / 100 != 4 && err->code / 100 != 5)
		/* A 2xx/3xx where a refusal was seen (fuzz_smtpc): try again later. */
		err->code = 451;
	return -1;
}

/* send_body - the message as CRLF lines, dot-stuffed, then the final dot. */
static int
send_body(struct smtpc *sc, int msgfd)
{
	char in[16384], out[40000];   /* a block at most doubles, and the dot */
	off_t off = 0;
	size_t o = 0;
	int bol = 1;
	ssize_t n;

	/* The last block and the final dot go out in one write. */
	while ((n = pread(msgfd, in, sizeof(in), off)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (o > sizeof(out) - 2 * sizeof(in) - 5) {
			if (netio_write_all(&sc->io, out, o, deadline_for(sc, ST_BLOCK)) < 0)
				return -1;
			o = 0;
		}
		off += n;
		for (ssize_t i = 0; i < n; i++) {
			char c = in[i];

			if (bol && c == '.')
				out[o++] = '.';
			if (c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
				bol = 1;
				continue;
			}
			out[o++] = c == '\r' ? ' ' : c;
			bol = 0;
		}
	}
	memcpy(out + o, bol ? ".\r\n" : "\r\n.\r\n", bol ? 3 : 5);
	o += bol ? 3 : 5;
	return netio_write_all(&sc->io, out, o, deadline_for(sc, ST_BLOCK));
}

/*
 * A group of pipelined commands (RFC 2920), written at once: one write and
 * one round trip where a command at a time would take one each.
 */
struct cmd_group {
	char buf[8192];
	size_t len;
};

static int
group_add(struct smtpc *sc, struct cmd_group *g, enum stage st, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
group_add(struct smtpc *sc, struct cmd_group *g, enum stage st, const char *fmt, ...)
{
	char line[SMTPC_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = format_line(line, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if (g->len + (size_t)n > sizeof(g->buf)) {
		/* Many recipients: what is queued goes now, the rest follows. */
		if (netio_write_all(&sc->io, g->buf, g->len, deadline_for(sc, st)) < 0)
			return -1;
		g->len = 0;
	}
	memcpy(g->buf + g->len, line, (size_t)n);
	g->len += (size_t)n;
	return 0;
}

static int
group_flush(struct smtpc *sc, struct cmd_group *g, enum stage st)
{
	int rc = g->len > 0 ? netio_write_all(&sc->io, g->buf, g->len, deadline_for(sc, st)) : 0;

	g->len = 0;
	return rc;
}

static void
all_replies(struct smtpc_reply *rcpt, size_t n, const struct smtpc_reply *r)
{
	for (size_t i = 0; i < n; i++)
		rcpt[i] = *r;
}

/*
 * end_refused_data - a server that answered DATA with 354 though it should
 * not have (MAIL or every RCPT refused): end it with a lone dot, sending no
 * message content, and take the reply to it.  0, or -1 when lost.
 */
static int
end_refused_data(struct smtpc *sc)
{
	struct smtpc_reply r;

	if (netio_write_all(&sc->io, ".\r\n", 3, deadline_for(sc, ST_BLOCK)) < 0 ||
	    read_reply(sc, ST_FINAL, &r, NULL) < 0)
		return -1;
	return r.code == 421 ? -1 : 0;
}

/* reset - RSET after a transaction that sent nothing; -1 when the line is gone. */
static int
reset(struct smtpc *sc)
{
	struct smtpc_reply r;

	if (send_line(sc, ST_MAIL, "RSET") < 0 || read_reply(sc, ST_MAIL, &r, NULL) < 0)
		sc->open = 0;
	return sc->open ? 0 : -1;
}

int
smtpc_send(struct smtpc *sc, const struct spool_env *env, int msgfd,
    const size_t *idx, size_t n, struct smtpc_reply *rcpt)
{
	struct smtpc_reply r, data;
	struct cmd_group g;
	const char *sender = env->sender;
	size_t accepted = 0;
	char size_param[40] = "";

	memset(&r, 0, sizeof(r));
	memset(&data, 0, sizeof(data));
	g.len = 0;
	if (env->smtputf8 && !sc->smtputf8) {
		synth(&r, 550, "550 5.6.7 %s does not support SMTPUTF8", sc->name);
		all_replies(rcpt, n, &r);
		return 0;
	}
	if (sc->has_size && sc->size_max > 0 && env->size > sc->size_max) {
		synth(&r, 552, "552 5.3.4 message size %llu exceeds %s's limit %llu",
		    (unsigned long long)env->size, sc->name,
		    (unsigned long long)sc->size_max);
		all_replies(rcpt, n, &r);
		return 0;
	}
	if (sc->sh->rewrite_sender != NULL && sender[0] != '\0')
		sender = sc->sh->rewrite_sender;
	if (sc->has_size)
		snprintf(size_param, sizeof(size_param), " SIZE=%llu",
		    (unsigned long long)env->size);
	if (group_add(sc, &g, ST_MAIL, "MAIL FROM:<%s>%s%s%s", sender, size_param,
	    env->body8bit && sc->eightbitmime ? " BODY=8BITMIME" : "",
	    env->smtputf8 ? " SMTPUTF8" : "") < 0)
		goto lost;
	/*
	 * PIPELINING (RFC 2920): MAIL, every RCPT and DATA go out as one group
	 * before any reply (DATA may end a group); the replies come in order.
	 */
	if (sc->pipelining) {
		for (size_t i = 0; i < n; i++)
			if (group_add(sc, &g, ST_RCPT, "RCPT TO:<%s>",
			    env->rcpts[idx[i]].addr) < 0)
				goto lost;
		if (group_add(sc, &g, ST_DATA, "DATA") < 0)
			goto lost;
	}
	if (group_flush(sc, &g, ST_MAIL) < 0)
		goto lost;
	/*
	 * RFC 5321 3.8: a 421, at any stage, says the server is closing the
	 * connection; it is the reply of every recipient still open, not the
	 * "lost connection" that reading past it would find (T89).
	 */
	if (read_reply(sc, ST_MAIL, &r, NULL) < 0 || r.code == 421)
		goto broken;
	if (!sc->pipelining && r.code / 100 != 2) {
		all_replies(rcpt, n, &r);
		return reset(sc);
	}
	for (size_t i = 0; i < n; i++) {
		if (!sc->pipelining &&
		    send_line(sc, ST_RCPT, "RCPT TO:<%s>", env->rcpts[idx[i]].addr) < 0)
			goto lost;
		if (read_reply(sc, ST_RCPT, &rcpt[i], NULL) < 0 || rcpt[i].code == 421) {
			r = rcpt[i];
			goto broken;
		}
		if (r.code / 100 != 2)
			rcpt[i] = r;           /* MAIL failed: that is every recipient's reply */
		else if (rcpt[i].code / 100 == 2)
			accepted++;
	}
	if (sc->pipelining) {
		if (read_reply(sc, ST_DATA, &data, NULL) < 0 || data.code == 421) {
			r = data;
			goto broken;
		}
		if (accepted == 0 || r.code / 100 != 2) {
			/* Nothing of the message is sent; the session is made clean. */
			if (data.code == 354 && end_refused_data(sc) < 0) {
				sc->open = 0;
				return -1;
			}
			return reset(sc);
		}
	} else {
		if (accepted == 0 || r.code / 100 != 2)
			return reset(sc);
		if (send_line(sc, ST_DATA, "DATA") < 0)
			goto lost;
		if (read_reply(sc, ST_DATA, &data, NULL) < 0 || data.code == 421) {
			r = data;
			goto broken;
		}
	}
	if (data.code != 354) {
		for (size_t i = 0; i < n; i++)
			if (rcpt[i].code / 100 == 2)
				rcpt[i] = data;
		return 0;
	}
	if (send_body(sc, msgfd) < 0)
		goto lost;
	/* Lost here, after the dot: treated as 451; a duplicate beats a loss (T93). */
	if (read_reply(sc, ST_FINAL, &r, NULL) < 0)
		goto broken;
	for (size_t i = 0; i < n; i++)
		if (rcpt[i].code / 100 == 2)
			rcpt[i] = r;
	if (r.code == 421) {
		sc->open = 0;
		return -1;
	}
	return 0;
lost:
	synth(&r, 451, "451 4.4.2 %s: lost connection: %s", sc->name, strerror(errno));
broken:
	all_replies(rcpt, n, &r);
	sc->open = 0;
	return -1;
}

void
smtpc_close(struct smtpc *sc)
{
	if (sc->open) {
		struct smtpc_reply r;

		if (send_line(sc, ST_MAIL, "QUIT") == 0)
			read_reply(sc, ST_MAIL, &r, NULL);
	}
	netio_close(&sc->io);
	sc->open = 0;
}
