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

#endif
