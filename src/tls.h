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

struct netio {
	int fd;            /* non-blocking socket */
	void *ctx;         /* SSL_CTX *, NULL while plain */
	void *ssl;         /* SSL *, NULL while plain */
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
 * The server side, for STARTTLS in a session whose input and output may be
 * two descriptors (inetd over pipes): tls_server_accept() loads the
 * certificate and key and performs the handshake on non-blocking fds;
 * tls_server_read()/tls_server_write() then stand in for read()/write().
 */
void *tls_server_accept(const char *cert_file, const char *key_file, int rfd,
    int wfd, int64_t deadline, char *why, size_t whysize);
ssize_t tls_server_read(void *ssl, int rfd, int wfd, void *buf, size_t n,
    int64_t deadline);
ssize_t tls_server_write(void *ssl, int rfd, int wfd, const void *buf, size_t n,
    int64_t deadline);
void tls_server_free(void *ssl);
/* tls_version - "TLSv1.3" and the like, for the log and Received:. */
const char *tls_version(void *ssl);

#endif
