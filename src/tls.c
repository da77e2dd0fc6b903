/*
 * tls.c - plain or TLS I/O with deadlines over a non-blocking socket.
 * See tls.h.
 */
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void
netio_init(struct netio *io, int fd)
{
	io->fd = fd;
	io->ctx = NULL;
	io->ssl = NULL;
	io->peer_cert[0] = '\0';
}

/* wait_io - poll for events until deadline; 0 ready, -1 with errno. */
static int
wait_io(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = events};
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* ssl_wait - after an SSL call wanted more: wait for the direction it named. */
static int
ssl_wait(struct netio *io, int rc, int64_t deadline)
{
	int err = SSL_get_error(io->ssl, rc);

	if (err == SSL_ERROR_WANT_READ)
		return wait_io(io->fd, POLLIN, deadline);
	if (err == SSL_ERROR_WANT_WRITE)
		return wait_io(io->fd, POLLOUT, deadline);
	if (err == SSL_ERROR_ZERO_RETURN) {
		errno = 0;
		return 1;   /* clean close */
	}
	if (err != SSL_ERROR_SYSCALL || errno == 0)
		errno = EPROTO;
	return -1;
}

ssize_t
netio_read(struct netio *io, void *buf, size_t n, int64_t deadline)
{
	for (;;) {
		if (io->ssl != NULL) {
			int rc = SSL_read(io->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
			int w;

			if (rc > 0)
				return rc;
			w = ssl_wait(io, rc, deadline);
			if (w == 1)
				return 0;
			if (w < 0)
				return errno == 0 ? 0 : -1;
			continue;
		}
		ssize_t r = read(io->fd, buf, n);

		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (wait_io(io->fd, POLLIN, deadline) < 0)
			return -1;
	}
}

int
netio_write_all(struct netio *io, const void *buf, size_t n, int64_t deadline)
{
	const char *p = buf;

	while (n > 0) {
		if (io->ssl != NULL) {
			int rc = SSL_write(io->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);

			if (rc > 0) {
				p += rc;
				n -= (size_t)rc;
				continue;
			}
			if (ssl_wait(io, rc, deadline) != 0) {
				if (errno == 0)
					errno = EPIPE;
				return -1;
			}
			continue;
		}
		ssize_t w = send(io->fd, p, n, MSG_NOSIGNAL);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (wait_io(io->fd, POLLOUT, deadline) < 0)
			return -1;
	}
	return 0;
}

static void
ssl_why(char *why, size_t whysize, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(why, whysize, "%s%s%s", what, buf[0] ? ": " : "", buf);
	ERR_clear_error();
}

/* describe_cert - "certificate SUBJECT, issued by ISSUER, expires DATE". */
static void
describe_cert(X509 *cert, char *buf, size_t size)
{
	char subject[256] = "", issuer[256] = "", expiry[64] = "?";
	struct tm tm;

	X509_NAME_oneline(X509_get_subject_name(cert), subject, (int)sizeof(subject));
	X509_NAME_oneline(X509_get_issuer_name(cert), issuer, (int)sizeof(issuer));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
		strftime(expiry, sizeof(expiry), "%Y-%m-%d %H:%M:%S UTC", &tm);
	snprintf(buf, size, "certificate %s, issued by %s, expires %s", subject, issuer,
	    expiry);
}

/*
 * note_peer - the verify callback: the server's own certificate (depth 0)
 * is described in its netio, whether it passes or not; the verdict is
 * OpenSSL's, unchanged.
 */
static int
note_peer(int ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct netio *io = ssl ? SSL_get_app_data(ssl) : NULL;
	X509 *cert = X509_STORE_CTX_get_current_cert(store);

	if (io != NULL && cert != NULL && X509_STORE_CTX_get_error_depth(store) == 0)
		describe_cert(cert, io->peer_cert, sizeof(io->peer_cert));
	return ok;
}

int
tls_start_client(struct netio *io, const char *host, int verify, const char *ca_file,
    int64_t deadline, char *why, size_t whysize)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;

	if (ctx == NULL) {
		ssl_why(why, whysize, "TLS context");
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	io->ctx = ctx;
	if (verify) {
		if (ca_file == NULL || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			ssl_why(why, whysize, "load CA certificates");
			return -1;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, note_peer);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, io->fd) != 1) {
		ssl_why(why, whysize, "TLS session");
		SSL_free(ssl);
		return -1;
	}
	io->ssl = ssl;
	io->peer_cert[0] = '\0';
	SSL_set_app_data(ssl, io);
	{
		/* The OpenSSL macro casts away const: give it a copy of its own. */
		char sni[256];

		str_copy(sni, sizeof(sni), host);
		SSL_set_tlsext_host_name(ssl, sni);
	}
	if (verify && SSL_set1_host(ssl, host) != 1) {
		ssl_why(why, whysize, "TLS host name");
		return -1;
	}
	for (;;) {
		int rc = SSL_connect(ssl);

		if (rc == 1)
			break;
		if (ssl_wait(io, rc, deadline) != 0) {
			long v = SSL_get_verify_result(ssl);

			if (v != X509_V_OK)
				snprintf(why, whysize, "TLS certificate verification failed: %s",
				    X509_verify_cert_error_string(v));
			else if (errno == ETIMEDOUT)
				snprintf(why, whysize, "TLS handshake timed out");
			else
				ssl_why(why, whysize, "TLS handshake failed");
			return -1;
		}
	}
	return 0;
}

void
tls_peer_info(const struct netio *io, char *buf, size_t size)
{
	SSL *ssl = io->ssl;
	X509 *cert;
	char desc[600];
	long v;

	if (ssl == NULL) {
		str_copy(buf, size, "no TLS");
		return;
	}
	cert = SSL_get1_peer_certificate(ssl);
	if (cert != NULL) {
		describe_cert(cert, desc, sizeof(desc));
		X509_free(cert);
	} else {
		str_copy(desc, sizeof(desc), io->peer_cert[0] ? io->peer_cert
		    : "no certificate seen");
	}
	v = SSL_get_verify_result(ssl);
	snprintf(buf, size, "%s, %s; %s; verification: %s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl), desc, SSL_get_verify_mode(ssl) == SSL_VERIFY_NONE ?
	    "not asked (tls_verify = false or tls = may)" : v == X509_V_OK ? "ok" :
	    X509_verify_cert_error_string(v));
}

void
netio_close(struct netio *io)
{
	if (io->ssl != NULL) {
		SSL_shutdown(io->ssl);
		SSL_free(io->ssl);
	}
	if (io->ctx != NULL)
		SSL_CTX_free(io->ctx);
	if (io->fd >= 0)
		close(io->fd);
	netio_init(io, -1);
}

/* server_wait - wait for the direction SSL asked for, on the right fd. */
static int
server_wait(SSL *ssl, int rc, int rfd, int wfd, int64_t deadline)
{
	int err = SSL_get_error(ssl, rc);

	if (err == SSL_ERROR_WANT_READ)
		return wait_io(rfd, POLLIN, deadline);
	if (err == SSL_ERROR_WANT_WRITE)
		return wait_io(wfd, POLLOUT, deadline);
	if (err == SSL_ERROR_ZERO_RETURN) {
		errno = 0;
		return 1;
	}
	if (err != SSL_ERROR_SYSCALL || errno == 0)
		errno = EPROTO;
	return -1;
}

static const int tls_versions[] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION,
    TLS1_3_VERSION};

/*
 * ticket_keys - the 80 bytes (name, HMAC key, AES key) in path, made afresh
 * when missing or older than TLS_TICKET_KEY_SECONDS: written aside, renamed
 * into place.  0, or -1 (then no resumption, nothing else lost).
 */
static int
ticket_keys(const char *path, unsigned char keys[80])
{
	char tmp[4200];
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0) {
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 80 &&
		    st.st_uid == geteuid() && (st.st_mode & 077) == 0 &&
		    time(NULL) - st.st_mtime < TLS_TICKET_KEY_SECONDS &&
		    read(fd, keys, 80) == 80) {
			close(fd);
			return 0;
		}
		close(fd);
	}
	if (RAND_bytes(keys, 80) != 1 ||
	    str_fmt(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid()) < 0)
		return -1;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write(fd, keys, 80) != 80 || close(fd) < 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* server_ctx - a context for o: protocols, suites, order, tickets, certificate. */
static SSL_CTX *
server_ctx(const struct tls_server_opts *o, int with_cert, char *why, size_t whysize)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	unsigned char keys[80];

	if (ctx == NULL) {
		ssl_why(why, whysize, "TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, tls_versions[o->min_version & 3]);
	SSL_CTX_set_max_proto_version(ctx, tls_versions[o->max_version & 3]);
	/* The server's order: the strongest suite both know, not the client's pick. */
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_set_cipher_list(ctx, o->ciphers ? o->ciphers : TLS_SERVER_CIPHERS) != 1) {
		ssl_why(why, whysize, "tls.ciphers: no usable cipher suite");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"undersmtpd", 10);
	if (o->ticket_key_file != NULL && ticket_keys(o->ticket_key_file, keys) == 0)
		SSL_CTX_set_tlsext_ticket_keys(ctx, keys, sizeof(keys));
	else
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);   /* no tickets that cannot work */
	OPENSSL_cleanse(keys, sizeof(keys));
	if (with_cert && (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)) {
		ssl_why(why, whysize, "load the certificate and key");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int
tls_server_check(const struct tls_server_opts *o, char *why, size_t whysize)
{
	struct tls_server_opts check = *o;
	SSL_CTX *ctx;

	check.ticket_key_file = NULL;
	/* The certificate and key too: a key that is not the certificate's is
	 * found by --check-config, not by the first client's STARTTLS. */
	ctx = server_ctx(&check, 1, why, whysize);
	if (ctx == NULL)
		return -1;
	SSL_CTX_free(ctx);
	return 0;
}

int
tls_cert_info(const char *path, time_t *not_after, char *subject, size_t subjsize,
    char *why, size_t whysize)
{
	BIO *bio = BIO_new_file(path, "r");
	X509 *x = NULL;
	struct tm tm;

	if (bio == NULL) {
		snprintf(why, whysize, "cannot read %s: %s", path, strerror(errno));
		ERR_clear_error();
		return -1;
	}
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (x == NULL) {
		ssl_why(why, whysize, "no PEM certificate");
		return -1;
	}
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) {
		snprintf(why, whysize, "%s: unreadable expiry date", path);
		X509_free(x);
		return -1;
	}
	*not_after = timegm(&tm);
	X509_NAME_oneline(X509_get_subject_name(x), subject, (int)subjsize);
	X509_free(x);
	return 0;
}

void *
tls_server_accept(const struct tls_server_opts *o, int rfd, int wfd,
    int64_t deadline, char *why, size_t whysize)
{
	SSL_CTX *ctx = server_ctx(o, 1, why, whysize);
	SSL *ssl = NULL;

	if (ctx == NULL)
		return NULL;
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);      /* the session keeps its own reference */
	if (ssl == NULL || SSL_set_rfd(ssl, rfd) != 1 || SSL_set_wfd(ssl, wfd) != 1) {
		ssl_why(why, whysize, "TLS session");
		SSL_free(ssl);
		return NULL;
	}
	for (;;) {
		int rc = SSL_accept(ssl);

		if (rc == 1)
			return ssl;
		if (server_wait(ssl, rc, rfd, wfd, deadline) != 0) {
			if (errno == ETIMEDOUT)
				snprintf(why, whysize, "TLS handshake timed out");
			else
				ssl_why(why, whysize, "TLS handshake failed");
			SSL_free(ssl);
			return NULL;
		}
	}
}

ssize_t
tls_server_read(void *ssl, int rfd, int wfd, void *buf, size_t n, int64_t deadline)
{
	for (;;) {
		int rc = SSL_read(ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
		int w;

		if (rc > 0)
			return rc;
		w = server_wait(ssl, rc, rfd, wfd, deadline);
		if (w == 1)
			return 0;
		if (w < 0)
			return errno == 0 ? 0 : -1;
	}
}

ssize_t
tls_server_write(void *ssl, int rfd, int wfd, const void *buf, size_t n,
    int64_t deadline)
{
	for (;;) {
		int rc = SSL_write(ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);

		if (rc > 0)
			return rc;
		if (server_wait(ssl, rc, rfd, wfd, deadline) != 0) {
			if (errno == 0)
				errno = EPIPE;
			return -1;
		}
	}
}

void
tls_server_free(void *ssl)
{
	if (ssl != NULL) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
}

const char *
tls_version(void *ssl)
{
	return ssl ? SSL_get_version(ssl) : "";
}
