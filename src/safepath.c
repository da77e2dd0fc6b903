/*
 * safepath.c - open paths as root without following anyone else's links.
 * See safepath.h.
 */
#include "safepath.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAFEPATH_MAX_LINKS 40      /* as the kernel's own limit */
#define SAFEPATH_MAX 4096

int
safepath_root_only(const struct stat *st)
{
	return st->st_uid == 0 && (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

static int fail(char *why, size_t whysize, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* fail - why from fmt, errno err, -1. */
static int
fail(char *why, size_t whysize, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whysize, fmt, ap);
	va_end(ap);
	errno = err;
	return -1;
}

/*
 * follow_link - replace the component just read (name, in dfd) by its
 * target: rest becomes target/remaining, and *dfd "/" for an absolute target.
 * 0, or -1 with errno.
 */
static int
follow_link(int *dfd, const char *name, char *rest, size_t restsize, size_t *pos)
{
	char target[SAFEPATH_MAX], joined[2 * SAFEPATH_MAX + 2];
	ssize_t n = readlinkat(*dfd, name, target, sizeof(target) - 1);

	if (n < 0)
		return -1;
	if ((size_t)n == sizeof(target) - 1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	target[n] = '\0';
	if (str_fmt(joined, sizeof(joined), "%s/%s", target, rest + *pos) < 0 ||
	    str_copy(rest, restsize, joined) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	*pos = 0;
	if (target[0] == '/') {
		int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (root < 0)
			return -1;
		close(*dfd);
		*dfd = root;
	}
	return 0;
}

int
safepath_open_dir(const char *path, int *create, int *owner_only, char *why,
    size_t whysize)
{
	char rest[2 * SAFEPATH_MAX + 2], name[NAME_MAX + 1];
	size_t pos = 0;
	int links = 0, parent_root_only = 0, dfd;

	if (path == NULL || path[0] == '\0')
		return fail(why, whysize, ENOENT, "(empty path)");
	if (str_copy(rest, sizeof(rest), path) < 0)
		return fail(why, whysize, ENAMETOOLONG, "(path too long)");
	dfd = open(path[0] == '/' ? "/" : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return fail(why, whysize, errno, "open %s", path[0] == '/' ? "/" : ".");
	for (;;) {
		struct stat st, lst;
		size_t len;
		int nfd, last, err;

		while (rest[pos] == '/')
			pos++;
		if (rest[pos] == '\0')
			break;
		len = strcspn(rest + pos, "/");
		if (len > NAME_MAX) {
			close(dfd);
			return fail(why, whysize, ENAMETOOLONG, "%s", path);
		}
		memcpy(name, rest + pos, len);
		name[len] = '\0';
		pos += len;
		if (strcmp(name, ".") == 0)
			continue;
		if (strcmp(name, "..") == 0) {
			close(dfd);
			return fail(why, whysize, EINVAL, "%s: \"..\" is not allowed in a path "
			    "root opens", path);
		}
		if (fstat(dfd, &st) < 0) {
			err = errno;
			close(dfd);
			return fail(why, whysize, err, "stat a directory of %s", path);
		}
		parent_root_only = safepath_root_only(&st);
		last = rest[pos + strspn(rest + pos, "/")] == '\0';
		if (last && create != NULL) {
			*create = mkdirat(dfd, name, 0700) == 0;
			if (!*create && errno != EEXIST) {
				err = errno;
				close(dfd);
				return fail(why, whysize, err, "mkdir %s", path);
			}
		}
		nfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd >= 0) {
			close(dfd);
			dfd = nfd;
			continue;
		}
		err = errno;
		if ((err == ELOOP || err == ENOTDIR) &&
		    fstatat(dfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode)) {
			if (!parent_root_only) {
				close(dfd);
				return fail(why, whysize, ELOOP, "%s: \"%s\" is a symbolic link in a "
				    "directory that others may write: not followed", path, name);
			}
			if (++links > SAFEPATH_MAX_LINKS ||
			    follow_link(&dfd, name, rest, sizeof(rest), &pos) < 0) {
				err = links > SAFEPATH_MAX_LINKS ? ELOOP : errno;
				close(dfd);
				return fail(why, whysize, err, "%s: follow \"%s\"", path, name);
			}
			continue;
		}
		close(dfd);
		return fail(why, whysize, err, "%s", path);
	}
	if (owner_only != NULL)
		*owner_only = parent_root_only;
	return dfd;
}

/*
 * split - path into its directory (dir) and its last component (*base); -1
 * when it names no file.
 */
static int
split(const char *path, char *dir, size_t dirsize, const char **base)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		str_copy(dir, dirsize, ".");
		*base = path;
	} else {
		size_t n = slash == path ? 1 : (size_t)(slash - path);

		if (n >= dirsize)
			return -1;
		memcpy(dir, path, n);
		dir[n] = '\0';
		*base = slash + 1;
	}
	return **base == '\0' || strcmp(*base, ".") == 0 || strcmp(*base, "..") == 0 ? -1 : 0;
}

int
safepath_open_file(const char *path, int flags, mode_t mode, char *why, size_t whysize)
{
	char cur[SAFEPATH_MAX], dir[SAFEPATH_MAX], target[SAFEPATH_MAX];
	const char *base;
	struct stat st;
	int dfd, fd, root_only, err;

	if (str_copy(cur, sizeof(cur), path) < 0)
		return fail(why, whysize, ENAMETOOLONG, "%s", path);
	/*
	 * The file itself is never opened through a link: a link in root's own
	 * directory is root's choice, so its target is walked again by the
	 * same rules, like any other path (as safepath_open_dir does).
	 */
	for (int links = 0;; links++) {
		if (split(cur, dir, sizeof(dir), &base) < 0)
			return fail(why, whysize, EISDIR, "%s", path);
		dfd = safepath_open_dir(dir, NULL, NULL, why, whysize);
		if (dfd < 0) {
			/* A plain failure is the file's: name it, not its directory. */
			if (errno != ELOOP && errno != EINVAL)
				return fail(why, whysize, errno, "%s", path);
			return -1;
		}
		if (fstat(dfd, &st) < 0) {
			err = errno;
			close(dfd);
			return fail(why, whysize, err, "stat the directory of %s", path);
		}
		root_only = safepath_root_only(&st);
		fd = openat(dfd, base, flags | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW, mode);
		err = errno;
		/*
		 * A FIFO opened for reading without blocking reads as empty until
		 * its writer comes: in root's own directory (where a FIFO is root's
		 * choice, -C <(...)) it is opened again, waiting for the writer.
		 * The first descriptor stays open meanwhile: a writer that came
		 * already (our reader let its open return) must not find the FIFO
		 * without a reader, fail with EPIPE and leave us waiting forever.
		 */
		if (fd >= 0 && root_only && !(flags & O_NONBLOCK) &&
		    fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
			int again = openat(dfd, base, (flags & ~O_CREAT) | O_CLOEXEC | O_NOFOLLOW);

			err = errno;
			close(fd);
			fd = again;
		}
		if (fd >= 0 || err != ELOOP || !root_only) {
			close(dfd);
			break;
		}
		/* A link in root's directory: go on at its target. */
		{
			ssize_t n = readlinkat(dfd, base, target, sizeof(target) - 1);

			err = errno;
			close(dfd);
			if (n < 0)
				return fail(why, whysize, err, "%s: readlink", path);
			if ((size_t)n == sizeof(target) - 1 || links >= SAFEPATH_MAX_LINKS)
				return fail(why, whysize, ELOOP, "%s: too many links", path);
			target[n] = '\0';
			if (target[0] == '/') {
				str_copy(cur, sizeof(cur), target);
			} else {
				char joined[2 * SAFEPATH_MAX + 2];

				if (str_fmt(joined, sizeof(joined), "%s/%s", dir, target) < 0 ||
				    str_copy(cur, sizeof(cur), joined) < 0)
					return fail(why, whysize, ENAMETOOLONG, "%s", path);
			}
		}
	}
	if (fd < 0) {
		if (err == ELOOP)
			return fail(why, whysize, ELOOP, "%s is a symbolic link in a directory "
			    "that others may write: not followed", cur);
		return fail(why, whysize, err, "%s", path);
	}
	/*
	 * A hard link would be as bad as a symbolic one (another file of root's,
	 * written through a name someone else chose), and a FIFO would hang us.
	 */
	if (!root_only && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)) {
		close(fd);
		return fail(why, whysize, EPERM, "%s is not a plain file with a single "
		    "name, in a directory that others may write: not opened", cur);
	}
	if (!(flags & O_NONBLOCK)) {
		int fl = fcntl(fd, F_GETFL);

		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
			err = errno;
			close(fd);
			return fail(why, whysize, err, "fcntl %s", path);
		}
	}
	return fd;
}
