/* fuzz_data.c - libFuzzer: the DATA reader (smtpd_data.c): line ends, dots, limits. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "smtpd_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
count_sink(void *ctx, const char *p, size_t n)
{
	size_t *total = ctx;

	(void)p;
	*total += n;
	return *total > 4096 ? (errno = ENOSPC, -1) : 0;   /* exercise the error path */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	struct reader r;
	struct data_limits lim = {2048, 5, 1000, 0, 0};
	size_t total = 0;
	struct data_sink sink = {count_sink, &total};
	struct data_result res;

	if (size > 60000 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	if (write(sv[0], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	close(sv[0]);
	reader_init(&r, sv[1]);
	do
		data_read(&r, &lim, &sink, &res);
	while (res.end == DATA_COMPLETE && reader_pending(&r) > 0);
	close(sv[1]);
	return 0;
}
