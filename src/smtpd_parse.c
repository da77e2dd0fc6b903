/*
 * smtpd_parse.c - SMTP command line syntax.  See smtpd_parse.h.
 */
#include "smtpd_parse.h"
#include "util.h"

#include <string.h>

int
smtp_split_line(const char *line, size_t len, struct smtp_cmdline *out,
    struct smtp_reply *err)
{
	size_t i = 0, v = 0;

	memset(out, 0, sizeof(*out));
	for (size_t k = 0; k < len; k++) {
		if (line[k] == '\0') {
			smtp_set_reply(err, 501, "5.5.2", "NUL character in command");
			return -1;
		}
		if (line[k] == '\r' || line[k] == '\n') {
			smtp_set_reply(err, 501, "5.5.2", "Bare CR or LF in command");
			return -1;
		}
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	for (; i < len && line[i] != ' '; i++) {
		char c = line[i];

		if (v + 1 >= sizeof(out->verb)) {
			smtp_set_reply(err, 500, "5.5.2", "Command unrecognized");
			return -1;
		}
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		out->verb[v++] = c;
	}
	out->verb[v] = '\0';
	if (v == 0) {
		smtp_set_reply(err, 500, "5.5.2", "Command unrecognized");
		return -1;
	}
	if (i < len)
		i++;
	out->arg = line + i;
	out->arglen = len - i;
	return 0;
}

static int
prefix_ci(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	if (len < n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c != prefix[i])
			return 0;
	}
	return 1;
}

static void
addr_error_reply(int rc, int is_mail, struct smtp_reply *err)
{
	switch (rc) {
	case ADDR_NEEDS_UTF8:
		smtp_set_reply(err, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
		break;
	case ADDR_BAD_UTF8:
		smtp_set_reply(err, 501, "5.6.7", "Address is not valid UTF-8");
		break;
	case ADDR_TOO_LONG:
		smtp_set_reply(err, 501, is_mail ? "5.1.7" : "5.1.3",
		    "Address too long (RFC 5321 4.5.3.1)");
		break;
	default:
		smtp_set_reply(err, 501, is_mail ? "5.1.7" : "5.1.3",
		    is_mail ? "Bad sender address syntax" : "Bad recipient address syntax");
		break;
	}
}

/* path_start - skip "FROM:" / "TO:" and tolerated spaces before '<'. */
static int
path_start(const char *arg, size_t len, const char *kw, size_t *pos)
{
	size_t i;

	if (!prefix_ci(arg, len, kw))
		return -1;
	i = strlen(kw);
	while (i < len && arg[i] == ' ')
		i++;
	if (i >= len || arg[i] != '<')
		return -1;
	*pos = i;
	return 0;
}

static int
parse_size_param(const char *v, size_t vlen, uint64_t *out)
{
	uint64_t n = 0;

	if (vlen == 0 || vlen > 20)
		return -1;
	for (size_t i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	*out = n;
	return 0;
}

int
smtp_parse_mail(const char *arg, size_t len, struct addr *from,
    struct mail_params *p, struct smtp_reply *err)
{
	size_t pos, end, i;
	int rc, seen_body = 0;

	memset(p, 0, sizeof(*p));
	if (path_start(arg, len, "FROM:", &pos) < 0) {
		smtp_set_reply(err, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return -1;
	}
	/*
	 * SMTPUTF8 decides how the path may be spelt: read the parameters first.
	 * The path ends at the first '>' outside a quoted string, where a
	 * backslash quotes the next character (RFC 5321 4.1.2 quoted-pairSMTP):
	 * <"a\"b"@x> SIZE=... must not hide its parameters inside the quotes.
	 */
	{
		int inq = 0;

		for (end = pos + 1; end < len; end++) {
			if (inq && arg[end] == '\\' && end + 1 < len)
				end++;
			else if (arg[end] == '"')
				inq = !inq;
			else if (arg[end] == '>' && !inq)
				break;
		}
		end = end < len ? end + 1 : len;
	}
	for (i = end; i < len; ) {
		size_t ks, ke, vs = 0, ve = 0;
		int has_value = 0;

		if (arg[i] != ' ') {
			smtp_set_reply(err, 501, "5.5.4", "Syntax error in parameters");
			return -1;
		}
		while (i < len && arg[i] == ' ')
			i++;
		ks = i;
		while (i < len && arg[i] != ' ' && arg[i] != '=')
			i++;
		ke = i;
		if (i < len && arg[i] == '=') {
			has_value = 1;
			vs = ++i;
			while (i < len && arg[i] != ' ')
				i++;
			ve = i;
		}
		if (ke - ks == 4 && prefix_ci(arg + ks, 4, "SIZE")) {
			if (p->has_size || !has_value || parse_size_param(arg + vs, ve - vs, &p->size) < 0) {
				smtp_set_reply(err, 501, "5.5.4", "Bad SIZE parameter");
				return -1;
			}
			p->has_size = 1;
		} else if (ke - ks == 4 && prefix_ci(arg + ks, 4, "BODY")) {
			if (seen_body || !has_value) {
				smtp_set_reply(err, 501, "5.5.4", "Bad BODY parameter");
				return -1;
			}
			seen_body = 1;
			if (ve - vs == 8 && prefix_ci(arg + vs, 8, "8BITMIME"))
				p->body_8bit = 1;
			else if (!(ve - vs == 4 && prefix_ci(arg + vs, 4, "7BIT"))) {
				smtp_set_reply(err, 501, "5.5.4", "BODY must be 7BIT or 8BITMIME");
				return -1;
			}
		} else if (ke - ks == 4 && prefix_ci(arg + ks, 4, "AUTH")) {
			/* RFC 4954 5: MAIL's AUTH= is accepted and not trusted. */
			if (!has_value) {
				smtp_set_reply(err, 501, "5.5.4", "Bad AUTH parameter");
				return -1;
			}
		} else if (ke - ks == 8 && prefix_ci(arg + ks, 8, "SMTPUTF8")) {
			if (p->smtputf8 || has_value) {
				smtp_set_reply(err, 501, "5.5.4", "Bad SMTPUTF8 parameter");
				return -1;
			}
			p->smtputf8 = 1;
		} else {
			smtp_set_reply(err, 555, "5.5.4", "Unsupported MAIL parameter");
			return -1;
		}
	}
	{
		size_t path_end = end;

		rc = addr_parse_path(arg + pos, len - pos, 1, p->smtputf8, from, &end);
		if (rc != ADDR_OK) {
			addr_error_reply(rc, 1, err);
			return -1;
		}
		/* The path the address parser read must be the one scanned above. */
		if (pos + end != path_end) {
			smtp_set_reply(err, 501, "5.5.4", "Syntax error in parameters");
			return -1;
		}
	}
	return 0;
}

int
smtp_parse_rcpt(const char *arg, size_t len, int smtputf8, struct addr *to,
    struct smtp_reply *err)
{
	size_t pos, end;
	int rc;

	if (path_start(arg, len, "TO:", &pos) < 0) {
		smtp_set_reply(err, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return -1;
	}
	rc = addr_parse_path(arg + pos, len - pos, 0, smtputf8, to, &end);
	if (rc != ADDR_OK) {
		addr_error_reply(rc, 0, err);
		return -1;
	}
	if (pos + end < len) {
		smtp_set_reply(err, 555, "5.5.4", "Unsupported RCPT parameter");
		return -1;
	}
	return 0;
}
