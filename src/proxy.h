/*
 * proxy.h - the PROXY protocol header, versions 1 (text) and 2 (binary), as
 * HAProxy sends it in front of a connection (haproxy.org proxy-protocol.txt).
 * Pure parsing, no I/O: the daemon reads the bytes, this says what they
 * mean.  Only listeners marked "proxy" ever look for a header.
 */
#ifndef PROXY_H
#define PROXY_H

#include <stddef.h>

#define PROXY_HEADER_MAX 536      /* v2: 16 + 520 at most; v1: 107 */

struct proxy_info {
	int local;                 /* LOCAL / UNKNOWN: keep the socket's peer */
	int family;                /* AF_INET or AF_INET6 */
	unsigned char ip[16];
};

/*
 * proxy_parse - the header at the start of buf.  Returns its length when
 * complete and valid, 0 when more bytes are needed, -1 when it is not a
 * PROXY header or is malformed.
 */
int proxy_parse(const unsigned char *buf, size_t len, struct proxy_info *out);

#endif
