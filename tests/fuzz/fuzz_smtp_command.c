/* fuzz_smtp_command.c - libFuzzer: SMTP command lines, MAIL and RCPT (smtpd_parse.c). */
#include <stddef.h>
#include <stdint.h>

#include "smtpd_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_cmdline cl;
	struct smtp_reply err;
	struct addr a;
	struct mail_params p;

	if (smtp_split_line((const char *)data, size, &cl, &err) == 0) {
		smtp_parse_mail(cl.arg, cl.arglen, &a, &p, &err);
		smtp_parse_rcpt(cl.arg, cl.arglen, 1, &a, &err);
		smtp_parse_rcpt(cl.arg, cl.arglen, 0, &a, &err);
	}
	return 0;
}
