/*
 * reply.c - SMTP replies and the sysexits table.  See reply.h.
 */
#include "reply.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

void
smtp_set_reply(struct smtp_reply *r, int code, const char *status, const char *text)
{
	r->code = code;
	str_copy(r->status, sizeof(r->status), status);
	str_copy(r->text, sizeof(r->text), text);
}

void
smtp_reply_append(struct smtp_reply *r, const char *sep, const char *s)
{
	size_t len = strlen(r->text);

	for (const char *parts[2] = {sep, s}, **p = parts; p < parts + 2; p++)
		for (const char *c = *p; *c && len + 1 < sizeof(r->text); c++)
			r->text[len++] = *c;
	r->text[len] = '\0';
}

void
smtp_reply_line(const struct smtp_reply *r, char *out, size_t size)
{
	if (size == 0)
		return;
	/* snprintf truncates: the line is bounded by out, never by the text. */
	if (r->status[0])
		snprintf(out, size, "%d %s %s", r->code, r->status, r->text);
	else
		snprintf(out, size, "%d %s", r->code, r->text);
}

static const struct sysexit sysexit_table[] = {
	{EX_USAGE, "EX_USAGE", 554, "5.3.0", "command line usage error"},
	{EX_DATAERR, "EX_DATAERR", 550, "5.6.0", "data format error"},
	{EX_NOINPUT, "EX_NOINPUT", 554, "5.3.0", "cannot open input"},
	{EX_NOUSER, "EX_NOUSER", 550, "5.1.1", "user unknown"},
	{EX_NOHOST, "EX_NOHOST", 550, "5.1.2", "host name unknown"},
	{EX_UNAVAILABLE, "EX_UNAVAILABLE", 554, "5.3.0", "service unavailable"},
	{EX_SOFTWARE, "EX_SOFTWARE", 554, "5.3.0", "internal software error"},
	{EX_OSERR, "EX_OSERR", 554, "5.3.0", "system error"},
	{EX_OSFILE, "EX_OSFILE", 554, "5.3.0", "critical OS file missing"},
	{EX_CANTCREAT, "EX_CANTCREAT", 550, "5.2.0", "cannot create output file"},
	{EX_IOERR, "EX_IOERR", 554, "5.3.0", "input/output error"},
	{EX_TEMPFAIL, "EX_TEMPFAIL", 554, "5.3.0", "temporary failure"},
	{EX_PROTOCOL, "EX_PROTOCOL", 554, "5.5.0", "remote error in protocol"},
	{EX_NOPERM, "EX_NOPERM", 550, "5.7.0", "permission denied"},
	{EX_CONFIG, "EX_CONFIG", 550, "5.3.5", "configuration error"},
};

const struct sysexit *
sysexit_find(int status)
{
	for (size_t i = 0; i < ARRAY_LEN(sysexit_table); i++)
		if (sysexit_table[i].status == status)
			return &sysexit_table[i];
	return NULL;
}

int
sysexit_for_reply(int code, const char *status)
{
	if (code / 100 == 4)
		return EX_TEMPFAIL;
	if (strncmp(status, "5.1.1", 5) == 0 || strncmp(status, "5.1.3", 5) == 0)
		return EX_NOUSER;
	if (strncmp(status, "5.7", 3) == 0)
		return EX_NOPERM;
	if (strncmp(status, "5.3.5", 5) == 0)
		return EX_CONFIG;
	if (strncmp(status, "5.3.4", 5) == 0 || strncmp(status, "5.6", 3) == 0)
		return EX_DATAERR;
	return EX_UNAVAILABLE;
}
