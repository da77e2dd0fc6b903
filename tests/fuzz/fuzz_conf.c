/* fuzz_conf.c - libFuzzer: undersmtpd.conf through libconfuse and our validation. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/undersmtpd-fuzz-conf-XXXXXX";
	int fd = mkstemp(path);
	struct diag d = {NULL, NULL, 0};

	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size)
		conf_free(conf_load(path, 0, &d));
	close(fd);
	unlink(path);
	return 0;
}
