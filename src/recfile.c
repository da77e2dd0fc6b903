/*
 * recfile.c - fixed-size records in a spool file, under its flock.  See
 * recfile.h.
 */
#include "recfile.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int
recfile_read(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = pread(fd, buf, len, off);

	return n == (ssize_t)len ? 0 : -1;
}

int
recfile_write(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t n = pwrite(fd, buf, len, off);

	return n == (ssize_t)len ? 0 : -1;
}

int
recfile_reset(int fd, const char *magic, size_t size)
{
	char m[RECFILE_MAGIC_LEN];

	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)size) < 0)
		return -1;
	/* Blocks now, so that a full disk cannot fail a later update halfway. */
	(void)posix_fallocate(fd, 0, (off_t)size);
	memset(m, 0, sizeof(m));
	strncpy(m, magic, sizeof(m) - 1);
	return recfile_write(fd, m, sizeof(m), 0);
}

/*
 * lock_briefly - the lock, waited for wait_ms at most (a stopped --status,
 * a hung filesystem must not stop mail).  0, or -1.
 */
static int
lock_briefly(int fd, int how, int wait_ms)
{
	for (int i = 0; i < wait_ms; i++) {
		struct timespec ms = {0, 1000000L};

		if (flock(fd, how | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		nanosleep(&ms, NULL);
	}
	log_debug("lock busy for %d ms: given up", wait_ms);
	errno = EWOULDBLOCK;
	return -1;
}

int
recfile_open(const struct conf *c, const char *name, const char *magic, size_t size,
    int write, int *fresh)
{
	return recfile_open_wait(c, name, magic, size, write, fresh, RECFILE_LOCK_WAIT_MS);
}

int
recfile_open_wait(const struct conf *c, const char *name, const char *magic,
    size_t size, int write, int *fresh, int wait_ms)
{
	char path[4096], m[RECFILE_MAGIC_LEN], want[RECFILE_MAGIC_LEN];
	struct stat st;
	int fd;

	*fresh = 0;
	if (str_fmt(path, sizeof(path), "%s/%s", c->spool_dir, name) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* O_NONBLOCK: a FIFO planted there must not hang a delivery. */
	fd = open(path, (write ? O_RDWR | O_CREAT : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK, 0600);
	if (fd < 0)
		return -1;
	/*
	 * The size is looked at under the lock: one taken before it could be
	 * another process's file being laid out, and laying it out again would
	 * wipe what that process has just written (two notices, lost counts).
	 */
	if (lock_briefly(fd, write ? LOCK_EX : LOCK_SH, wait_ms) < 0 ||
	    fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int err = errno;

		close(fd);
		errno = err ? err : EINVAL;
		return -1;
	}
	memset(want, 0, sizeof(want));
	strncpy(want, magic, sizeof(want) - 1);
	if (st.st_size != (off_t)size || recfile_read(fd, m, sizeof(m), 0) < 0 ||
	    memcmp(m, want, sizeof(m)) != 0) {
		if (!write) {
			close(fd);
			errno = ENOENT;
			return -1;
		}
		if (recfile_reset(fd, magic, size) < 0) {
			int err = errno;

			close(fd);
			errno = err;
			return -1;
		}
		*fresh = 1;
	}
	return fd;
}

/* slot_hash - FNV-1a: where a name's record is looked for first. */
static size_t
slot_hash(const char *name, size_t n)
{
	uint64_t h = 14695981039346656037ULL;

	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)(h % n);
}

long
recfile_find(int fd, off_t base, size_t recsize, size_t n, size_t namesize,
    const char *name, void *rec)
{
	char *rname = rec;
	size_t start = slot_hash(name, n);

	for (size_t k = 0; k < n; k++) {
		size_t i = (start + k) % n;

		if (recfile_read(fd, rec, recsize, base + (off_t)(i * recsize)) < 0)
			return -1;
		rname[namesize - 1] = '\0';
		if (rname[0] == '\0') {
			memset(rec, 0, recsize);
			str_copy(rname, namesize, name);
			return (long)i;
		}
		if (strncmp(rname, name, namesize - 1) == 0)
			return (long)i;
	}
	return -1;
}
