/*
 * envelope.c - the transaction and its message file.  See envelope.h.
 */
#include "envelope.h"
#include "buf.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void
envelope_init(struct envelope *e)
{
	memset(e, 0, sizeof(*e));
	e->msg_fd = -1;
}

void
envelope_reset(struct envelope *e)
{
	if (e->msg_fd >= 0)
		close(e->msg_fd);
	if (e->msg_path[0] && unlink(e->msg_path) < 0 && errno != ENOENT)
		log_warn("%s: unlink %s", e->id, e->msg_path);
	if (e->md)
		EVP_MD_CTX_free(e->md);
	free(e->rcpts);
	free(e->pipe_route);
	envelope_init(e);
}

int
envelope_new_id(struct envelope *e)
{
	return random_hex(e->id, sizeof(e->id), QUEUE_ID_LEN / 2);
}

void
envelope_add_rcpt(struct envelope *e, const struct addr *a, int pipe)
{
	if (e->nrcpts == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 4;
		e->rcpts = xreallocarray(e->rcpts, e->cap, sizeof(*e->rcpts));
	}
	e->rcpts[e->nrcpts].addr = *a;
	addr_format(a, e->rcpts[e->nrcpts].text, sizeof(e->rcpts[0].text));
	e->rcpts[e->nrcpts].pipe = pipe;
	e->nrcpts++;
}

static int
put(int fd, const char *s)
{
	return write_all(fd, s, strlen(s));
}

/* received_header - RFC 5321 4.4 trace field; FOR only with one recipient. */
static int
write_received(const struct envelope *e, const struct conf *c,
    const struct envelope_client *cl)
{
	char date[64], line[1024];
	time_t t = time(NULL);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	snprintf(line, sizeof(line), "Received: from %s ([%s])\n\tby %s (undersmtpd) "
	    "with %s id %s", cl->helo[0] ? cl->helo : "unknown", cl->addr_text,
	    c->hostname, cl->proto, e->id);
	if (put(e->msg_fd, line) < 0)
		return -1;
	if (e->nrcpts == 1) {
		snprintf(line, sizeof(line), "\n\tfor <%s>", e->rcpts[0].text);
		if (put(e->msg_fd, line) < 0)
			return -1;
	}
	snprintf(line, sizeof(line), "; %s\n", date);
	return put(e->msg_fd, line);
}

int
envelope_open_message(struct envelope *e, const struct conf *c,
    const struct envelope_client *cl)
{
	char line[ADDR_PATH_MAX + 32];
	off_t off;

	if (str_fmt(e->msg_path, sizeof(e->msg_path), "%s/tmp/%s.msg", c->spool_dir,
	    e->id) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	e->msg_fd = open(e->msg_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (e->msg_fd < 0) {
		e->msg_path[0] = '\0';
		return -1;
	}
	/* SPEC 7: the program reads Return-Path: and Delivered-To: first. */
	snprintf(line, sizeof(line), "Return-Path: <%s>\n", e->sender_text);
	if (put(e->msg_fd, line) < 0)
		return -1;
	for (size_t i = 0; i < e->nrcpts; i++) {
		if (!e->rcpts[i].pipe)
			continue;
		snprintf(line, sizeof(line), "Delivered-To: %s\n", e->rcpts[i].text);
		if (put(e->msg_fd, line) < 0)
			return -1;
	}
	if (write_received(e, c, cl) < 0)
		return -1;
	off = lseek(e->msg_fd, 0, SEEK_CUR);
	if (off < 0)
		return -1;
	e->body_offset = (size_t)off;
	e->md = EVP_MD_CTX_new();
	if (e->md == NULL || EVP_DigestInit_ex(e->md, EVP_sha256(), NULL) != 1) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static int
sink_write(void *ctx, const char *p, size_t n)
{
	struct envelope *e = ctx;

	if (EVP_DigestUpdate(e->md, p, n) != 1) {
		errno = ENOMEM;
		return -1;
	}
	return write_all(e->msg_fd, p, n);
}

struct data_sink
envelope_sink(struct envelope *e)
{
	struct data_sink s = {sink_write, e};

	return s;
}

int
envelope_finish_message(struct envelope *e)
{
	unsigned int len = 0;

	if (EVP_DigestFinal_ex(e->md, e->digest, &len) != 1 || len != 32) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

void
envelope_delivery_id(const struct envelope *e, const char *rcpt, char *out,
    size_t outsize)
{
	unsigned char d[32];
	unsigned int len = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	static const char hex[] = "0123456789abcdef";

	out[0] = '\0';
	if (md == NULL)
		return;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(md, rcpt, strlen(rcpt) + 1) == 1 &&
	    EVP_DigestUpdate(md, e->digest, sizeof(e->digest)) == 1 &&
	    EVP_DigestFinal_ex(md, d, &len) == 1 && outsize >= 33) {
		for (size_t i = 0; i < 16; i++) {
			out[2 * i] = hex[d[i] >> 4];
			out[2 * i + 1] = hex[d[i] & 15];
		}
		out[32] = '\0';
	}
	EVP_MD_CTX_free(md);
}

int
envelope_open_readonly(const struct envelope *e)
{
	return open(e->msg_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

static int
prepare_dir(const char *path, uid_t uid, gid_t gid, char *why, size_t whysize)
{
	struct stat st;

	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		snprintf(why, whysize, "mkdir %s", path);
		return -1;
	}
	if (stat(path, &st) < 0) {
		snprintf(why, whysize, "stat %s", path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		snprintf(why, whysize, "%s", path);
		return -1;
	}
	if (geteuid() == 0 && (st.st_uid != uid || st.st_gid != gid)) {
		if (st.st_uid != 0 && st.st_uid != uid) {
			/* Someone else's directory: do not take it over. */
			errno = EPERM;
			snprintf(why, whysize, "%s is owned by uid %u, not the spool user",
			    path, (unsigned)st.st_uid);
			return -1;
		}
		if (chown(path, uid, gid) < 0) {
			snprintf(why, whysize, "chown %s", path);
			return -1;
		}
	}
	return 0;
}

int
envelope_prepare_dirs(const struct conf *c, uid_t uid, gid_t gid, char *why,
    size_t whysize)
{
	char tmp[4096];

	if (str_fmt(tmp, sizeof(tmp), "%s/tmp", c->spool_dir) < 0) {
		errno = ENAMETOOLONG;
		snprintf(why, whysize, "%s", c->spool_dir);
		return -1;
	}
	if (prepare_dir(c->spool_dir, uid, gid, why, whysize) < 0)
		return -1;
	return prepare_dir(tmp, uid, gid, why, whysize);
}
