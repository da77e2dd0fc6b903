/*
 * recfile.h - a small file of fixed-size records in the spool, shared by
 * every process that runs as the spool user: the counters (stats.h) and
 * the circuit breakers (breaker.h).
 *
 * Each use opens the file, takes its flock (waited for RECFILE_LOCK_WAIT_MS
 * at most, unless the caller says otherwise: holders keep it for
 * microseconds, but a journal busy with other files' fsyncs can stretch
 * that, and nothing is worth holding mail up for longer), reads what it needs with
 * pread, writes back with pwrite, and closes it, which unlocks.  Nothing is
 * kept between uses, and a process killed in the middle leaves at worst one
 * record unchanged.  The file begins with a magic string; a file of another
 * size or magic (damaged, or of another version) is laid out afresh by a
 * writer and not read by a reader.  Opened with O_NOFOLLOW and O_NONBLOCK,
 * and only when it is a regular file.
 */
#ifndef RECFILE_H
#define RECFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "conf.h"

#define RECFILE_LOCK_WAIT_MS 1000
#define RECFILE_MAGIC_LEN 16

/*
 * recfile_open - SPOOL/name, locked (exclusively when write), of size
 * bytes starting with magic (RECFILE_MAGIC_LEN bytes, NUL-padded).  A
 * writer lays a missing or foreign file out (zeros, then the magic) and sets
 * *fresh.  An fd to close, or -1 with errno (ENOENT: nothing to read yet).
 */
int recfile_open(const struct conf *c, const char *name, const char *magic, size_t size,
    int write, int *fresh);
/* recfile_open_wait - the same, waiting wait_ms at most for the lock. */
int recfile_open_wait(const struct conf *c, const char *name, const char *magic,
    size_t size, int write, int *fresh, int wait_ms);
/* recfile_reset - lay the open file out afresh (zeros, then the magic). */
int recfile_reset(int fd, const char *magic, size_t size);
/* recfile_read, recfile_write - exactly len bytes at off; 0, or -1. */
int recfile_read(int fd, void *buf, size_t len, off_t off);
int recfile_write(int fd, const void *buf, size_t len, off_t off);
/*
 * recfile_find - the record named name among n records of recsize bytes
 * from base (each begins with a NUL-terminated name of namesize bytes),
 * read into rec; a free record is claimed (zeroed, named; written by the
 * caller).  Its index, or -1 when the table is full.  Open addressing from
 * a hash of the name, so a lookup reads one record or a few.
 */
long recfile_find(int fd, off_t base, size_t recsize, size_t n, size_t namesize,
    const char *name, void *rec);

#endif
