/*
 * proxy.c - PROXY protocol v1 and v2 parsing.  See proxy.h.
 */
#include "proxy.h"
#include "util.h"

#include <arpa/inet.h>
#include <string.h>

static const unsigned char v2sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

static int
parse_v1(const unsigned char *buf, size_t len, struct proxy_info *out)
{
	char line[108], *f[6], *save = NULL;
	const unsigned char *crlf = NULL;
	size_t n, nf = 0;
	int fam;
	unsigned char ip[16];

	for (size_t i = 0; i + 1 < len && i < 107; i++)
		if (buf[i] == '\r' && buf[i + 1] == '\n') {
			crlf = buf + i;
			break;
		}
	if (crlf == NULL)
		return len >= 107 ? -1 : 0;
	n = (size_t)(crlf - buf);
	memcpy(line, buf, n);
	line[n] = '\0';
	for (char *t = strtok_r(line, " ", &save); t && nf < 6; t = strtok_r(NULL, " ", &save))
		f[nf++] = t;
	if (nf < 2 || strcmp(f[0], "PROXY") != 0)
		return -1;
	if (strcmp(f[1], "UNKNOWN") == 0) {
		out->local = 1;
		return (int)n + 2;
	}
	if (nf != 6 || (strcmp(f[1], "TCP4") != 0 && strcmp(f[1], "TCP6") != 0) ||
	    ip_parse(f[2], &fam, ip) < 0 || ip_parse(f[3], &fam, ip) < 0)
		return -1;
	for (int k = 4; k < 6; k++) {
		long port = 0;

		for (const char *p = f[k]; *p; p++) {
			if (*p < '0' || *p > '9' || (port = port * 10 + (*p - '0')) > 65535)
				return -1;
		}
		if (f[k][0] == '\0')
			return -1;
	}
	ip_parse(f[2], &out->family, out->ip);
	out->local = 0;
	return (int)n + 2;
}

static int
parse_v2(const unsigned char *buf, size_t len, struct proxy_info *out)
{
	size_t total;
	unsigned char ver_cmd, fam;

	if (len < 16)
		return 0;
	ver_cmd = buf[12];
	fam = buf[13];
	total = 16 + (size_t)((buf[14] << 8) | buf[15]);
	if ((ver_cmd & 0xF0) != 0x20 || total > PROXY_HEADER_MAX)
		return -1;
	if (len < total)
		return 0;
	if ((ver_cmd & 0x0F) == 0x00) {      /* LOCAL: health checks and the like */
		out->local = 1;
		return (int)total;
	}
	if ((ver_cmd & 0x0F) != 0x01)
		return -1;
	if (fam == 0x11 && total >= 16 + 12) {           /* TCP over IPv4 */
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		memcpy(&sin.sin_addr, buf + 16, 4);
		sockaddr_to_ip((struct sockaddr *)&sin, &out->family, out->ip);
	} else if (fam == 0x21 && total >= 16 + 36) {    /* TCP over IPv6 */
		struct sockaddr_in6 sin6;

		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		memcpy(&sin6.sin6_addr, buf + 16, 16);
		sockaddr_to_ip((struct sockaddr *)&sin6, &out->family, out->ip);
	} else if (fam == 0x00) {
		out->local = 1;
		return (int)total;
	} else {
		return -1;
	}
	out->local = 0;
	return (int)total;
}

int
proxy_parse(const unsigned char *buf, size_t len, struct proxy_info *out)
{
	size_t k = len < 12 ? len : 12;

	memset(out, 0, sizeof(*out));
	if (memcmp(buf, v2sig, k) == 0)
		return k < 12 ? 0 : parse_v2(buf, len, out);
	if (memcmp(buf, "PROXY ", len < 6 ? len : 6) == 0)
		return len < 6 ? 0 : parse_v1(buf, len, out);
	return -1;
}
