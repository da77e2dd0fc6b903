/*
 * safepath.h - opening paths as root without being led elsewhere (SPEC 13,
 * security: "root acts on spool paths only through fds opened with
 * O_NOFOLLOW").
 *
 * Root must never follow a symbolic link, or write through a hard link, that
 * another account could have placed: the spool belongs to `user` (mail), a
 * log directory may belong to someone else, and a link there pointing at
 * /etc would make root chown /etc or append to /etc/shadow.  These functions
 * walk a path one component at a time from "/" (or the working directory),
 * and in any directory that an account other than root may write (owner not
 * root, or writable by group or others) they refuse a link as the next
 * component.  Links in root's own directories are root's choice and are
 * followed, their targets walked by the same rule.  ".." is refused: it
 * would climb out of a directory someone else may have moved.
 *
 * Unprivileged processes may use them too: they cost a few system calls.
 */
#ifndef SAFEPATH_H
#define SAFEPATH_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/*
 * safepath_open_dir - the directory at path, opened O_RDONLY|O_DIRECTORY.
 * create (may be NULL): make the last component (mode 0700) when it does not
 * exist, and say in *create whether this call made it.
 * Returns the fd, or -1 with errno and why ("PATH: what is wrong").
 * *owner_only (may be NULL) is set to 1 when the directory holding the
 * last component may be written by root alone.
 */
int safepath_open_dir(const char *path, int *create, int *owner_only, char *why,
    size_t whysize);
/*
 * safepath_open_file - open(path, flags, mode) for root: the directory by
 * safepath_open_dir; the file itself, when that directory is not root's
 * alone, with O_NOFOLLOW and only if it is a regular file with one link.
 * O_NONBLOCK is added for the open (a FIFO must not hang us) and removed
 * after.  Returns the fd, or -1 with errno and why.
 */
int safepath_open_file(const char *path, int flags, mode_t mode, char *why,
    size_t whysize);
/* safepath_root_only - st is a directory only root may write. */
int safepath_root_only(const struct stat *st);

#endif
