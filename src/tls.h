/*
 * tls.h - a connection that is plain TCP or TLS (OpenSSL), with every read
 * and write bounded by a deadline.  Owns the OpenSSL objects of one
 * connection and nothing else; certificate verification is on unless the
 * caller says otherwise, with TLS 1.2 as the oldest version spoken.
 */
#ifndef TLS_H
#define TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct netio {
	int fd;            /* non-blocking socket */
	void *ctx;         /* SSL_CTX *, NULL while plain */
	void *ssl;         /* SSL *, NULL while plain */
	char peer_cert[600];  /* the server's certificate as verification saw it
	                         (kept when it failed, for --probe-smarthost) */
};

void netio_init(struct netio *io, int fd);
/* netio_read - >0 bytes, 0 at EOF, -1 with errno (ETIMEDOUT at the deadline). */
ssize_t netio_read(struct netio *io, void *buf, size_t n, int64_t deadline);
/* netio_write_all - 0, or -1 with errno. */
int netio_write_all(struct netio *io, const void *buf, size_t n, int64_t deadline);
/*
 * tls_start_client - handshake as a client on io's socket.  verify: check
 * the chain against ca_file and the name against host.  0, or -1 with why.
 */
int tls_start_client(struct netio *io, const char *host, int verify,
    const char *ca_file, int64_t deadline, char *why, size_t whysize);
void netio_close(struct netio *io);
/*
 * tls_peer_info - for --probe-smarthost: protocol, cipher, the server's
 * certificate (subject, issuer, expiry) and the verification result, after
 * a handshake that worked or failed.
 */
void tls_peer_info(const struct netio *io, char *buf, size_t size);

/*
 * The server side, for STARTTLS in a session whose input and output may be
 * two descriptors (inetd over pipes): tls_server_accept() loads the
 * certificate and key and performs the handshake on non-blocking fds;
 * tls_server_read()/tls_server_write() then stand in for read()/write().
 */
/*
 * What the server offers (SPEC 13): by default TLS 1.2 and 1.3 with
 * forward-secret AEAD suites only, in the server's order of preference
 * (Mozilla's "intermediate" list); session tickets whose keys live in
 * ticket_key_file, shared by all session processes (each inetd or daemon
 * session is a process of its own, so keys of its own would make every
 * ticket useless), renewed every TLS_TICKET_KEY_SECONDS.
 */
struct tls_server_opts {
	const char *cert_file, *key_file;
	const char *ciphers;          /* NULL: TLS_SERVER_CIPHERS */
	int min_version, max_version; /* 0 TLSv1 .. 3 TLSv1.3 (conf_tls_protocols) */
	const char *ticket_key_file;  /* NULL: no resumption across processes */
};
#define TLS_SERVER_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS_TICKET_KEY_SECONDS (12 * 3600)

void *tls_server_accept(const struct tls_server_opts *o, int rfd, int wfd,
    int64_t deadline, char *why, size_t whysize);
/*
 * tls_server_check - o can make a server context: the ciphers match, the
 * certificate and key load and belong together; 0, or -1 with why.
 */
int tls_server_check(const struct tls_server_opts *o, char *why, size_t whysize);
/*
 * tls_cert_info - the first PEM certificate of path: its expiry and subject
 * ("/CN=mx.example.com").  0, or -1 with why (unreadable, not PEM).
 */
int tls_cert_info(const char *path, time_t *not_after, char *subject, size_t subjsize,
    char *why, size_t whysize);
ssize_t tls_server_read(void *ssl, int rfd, int wfd, void *buf, size_t n,
    int64_t deadline);
ssize_t tls_server_write(void *ssl, int rfd, int wfd, const void *buf, size_t n,
    int64_t deadline);
void tls_server_free(void *ssl);
/* tls_version - "TLSv1.3" and the like, for the log and Received:. */
const char *tls_version(void *ssl);

#endif
