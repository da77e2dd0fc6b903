/*
 * addr.c - RFC 5321 mailbox and path syntax (section 4.1.2).  See addr.h.
 *
 * Everything is bounded by the RFC's own limits before it is copied.
 */
#include "addr.h"
#include "util.h"

#include <string.h>

static int
is_atext(unsigned char c, int allow_utf8)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	if (c >= 0x80)
		return allow_utf8;
	return strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL && c != '\0';
}

static int
is_letdig(unsigned char c, int allow_utf8)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c >= 0x80 && allow_utf8);
}

int
utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned long cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		for (size_t k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

/* domain_check - sub-domain *("." sub-domain), or an address literal. */
static int
domain_check(const char *d, size_t len, int allow_utf8)
{
	size_t label = 0;

	if (len == 0 || len > ADDR_DOMAIN_MAX)
		return 0;
	if (d[0] == '[') {
		char lit[ADDR_DOMAIN_MAX + 1];
		int fam;
		unsigned char ip[16];

		if (d[len - 1] != ']' || len < 3)
			return 0;
		memcpy(lit, d + 1, len - 2);
		lit[len - 2] = '\0';
		if (strncmp(lit, "IPv6:", 5) == 0)
			return ip_parse(lit + 5, &fam, ip) == 0 && strchr(lit + 5, ':');
		return ip_parse(lit, &fam, ip) == 0 && fam == AF_INET && !strchr(lit, ':');
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == '.') {
			/* No empty label, no label ending in '-'. */
			if (label == 0 || d[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (label == 0 && !is_letdig(c, allow_utf8))
			return 0;
		if (!is_letdig(c, allow_utf8) && c != '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && d[len - 1] != '-';
}

int
addr_domain_valid(const char *d, int allow_utf8)
{
	return domain_check(d, strlen(d), allow_utf8);
}

/*
 * parse_mailbox - local@domain (or a bare local part) in s[0..len).
 */
static int
parse_mailbox(const char *s, size_t len, int allow_utf8, struct addr *out)
{
	size_t i = 0, o = 0;
	int saw8 = 0;

	memset(out, 0, sizeof(*out));
	for (size_t k = 0; k < len; k++) {
		unsigned char c = (unsigned char)s[k];

		if (c == '\0' || c == '\r' || c == '\n')
			return ADDR_SYNTAX;
		if (c >= 0x80)
			saw8 = 1;
	}
	if (saw8 && !allow_utf8)
		return ADDR_NEEDS_UTF8;
	if (saw8 && !utf8_valid((const unsigned char *)s, len))
		return ADDR_BAD_UTF8;
	if (len == 0)
		return ADDR_SYNTAX;
	if (s[0] == '"') {
		out->quoted = 1;
		for (i = 1; i < len && s[i] != '"'; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '\\') {
				if (++i >= len || (unsigned char)s[i] < 32 || s[i] == 127)
					return ADDR_SYNTAX;
				c = (unsigned char)s[i];
			} else if ((c < 32 || c == 127) || (c >= 0x80 && !allow_utf8)) {
				return ADDR_SYNTAX;
			}
			if (o >= ADDR_LOCAL_MAX)
				return ADDR_TOO_LONG;
			out->local[o++] = (char)c;
		}
		if (i >= len)
			return ADDR_SYNTAX;
		i++;    /* closing quote */
		if (i > ADDR_LOCAL_MAX)    /* the limit counts the quotes */
			return ADDR_TOO_LONG;
	} else {
		int prev_dot = 1;

		for (; i < len && s[i] != '@'; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '.') {
				if (prev_dot)
					return ADDR_SYNTAX;
				prev_dot = 1;
			} else if (is_atext(c, allow_utf8)) {
				prev_dot = 0;
			} else {
				return ADDR_SYNTAX;
			}
			if (o >= ADDR_LOCAL_MAX)
				return ADDR_TOO_LONG;
			out->local[o++] = (char)c;
		}
		if (o == 0 || prev_dot)
			return ADDR_SYNTAX;
	}
	out->local[o] = '\0';
	if (i == len)
		return ADDR_OK;    /* no domain: a local name */
	if (s[i] != '@')
		return ADDR_SYNTAX;
	i++;
	{
		size_t dlen = len - i;

		/* RFC 1034 absolute form: one trailing dot is the same domain. */
		if (dlen > 1 && s[i + dlen - 1] == '.' && s[i] != '[')
			dlen--;
		if (dlen > ADDR_DOMAIN_MAX)
			return ADDR_TOO_LONG;
		if (!domain_check(s + i, dlen, allow_utf8))
			return ADDR_SYNTAX;
		memcpy(out->domain, s + i, dlen);
		out->domain[dlen] = '\0';
		str_lower(out->domain);
	}
	out->utf8 = saw8;
	return ADDR_OK;
}

int
addr_parse_path(const char *s, size_t len, int allow_null, int allow_utf8,
    struct addr *out, size_t *end)
{
	size_t close, i = 1;

	memset(out, 0, sizeof(*out));
	if (len == 0 || s[0] != '<')
		return ADDR_SYNTAX;
	/* The closing '>' is the first one outside a quoted string. */
	{
		int inq = 0;

		for (close = 1; close < len; close++) {
			if (inq && s[close] == '\\' && close + 1 < len) {
				close++;
				continue;
			}
			if (s[close] == '"')
				inq = !inq;
			else if (s[close] == '>' && !inq)
				break;
		}
	}
	if (close >= len)
		return ADDR_SYNTAX;
	if (close + 1 > ADDR_PATH_MAX)
		return ADDR_TOO_LONG;
	*end = close + 1;
	if (close == 1) {
		if (!allow_null)
			return ADDR_SYNTAX;
		out->null = 1;
		return ADDR_OK;
	}
	/* A-d-l: "@" Domain *( "," "@" Domain ) ":" -- parsed, then ignored. */
	if (s[1] == '@') {
		size_t colon = 1;

		while (colon < close && s[colon] != ':')
			colon++;
		if (colon >= close)
			return ADDR_SYNTAX;
		for (size_t p = 1; p < colon;) {
			size_t q = p + 1;

			if (s[p] != '@')
				return ADDR_SYNTAX;
			while (q < colon && s[q] != ',')
				q++;
			if (!domain_check(s + p + 1, q - p - 1, allow_utf8))
				return ADDR_SYNTAX;
			p = q < colon ? q + 1 : q;
		}
		i = colon + 1;
	}
	return parse_mailbox(s + i, close - i, allow_utf8, out);
}

int
addr_parse_plain(const char *s, struct addr *out)
{
	size_t len = strlen(s);

	if (len > ADDR_PATH_MAX)
		return ADDR_TOO_LONG;
	return parse_mailbox(s, len, 1, out);
}

void
addr_format(const struct addr *a, char *buf, size_t size)
{
	char local[2 * ADDR_LOCAL_MAX + 3];
	size_t o = 0;
	int needs_quote = a->local[0] == '\0' || a->local[0] == '.';

	if (a->null) {
		str_copy(buf, size, "");
		return;
	}
	for (const char *p = a->local; *p; p++) {
		if (!is_atext((unsigned char)*p, 1) && *p != '.')
			needs_quote = 1;
		if (*p == '.' && (p[1] == '.' || p[1] == '\0'))
			needs_quote = 1;
	}
	if (needs_quote) {
		local[o++] = '"';
		for (const char *p = a->local; *p; p++) {
			if (*p == '"' || *p == '\\')
				local[o++] = '\\';
			local[o++] = *p;
		}
		local[o++] = '"';
		local[o] = '\0';
	} else {
		str_copy(local, sizeof(local), a->local);
	}
	if (a->domain[0])
		str_fmt(buf, size, "%s@%s", local, a->domain);
	else
		str_copy(buf, size, local);
}

const char *
addr_strerror(int err)
{
	switch (err) {
	case ADDR_OK: return "ok";
	case ADDR_TOO_LONG: return "address too long";
	case ADDR_NEEDS_UTF8: return "non-ASCII address without SMTPUTF8";
	case ADDR_BAD_UTF8: return "address is not valid UTF-8";
	default: return "address syntax error";
	}
}
