/*
 * envelope.c - the transaction and its message file.  See envelope.h.
 */
#include "envelope.h"
#include "buf.h"
#include "log.h"
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ENVELOPE_WBUF 32768

void
envelope_warm_up(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char out[EVP_MAX_MD_SIZE];
	unsigned int len;

	if (md == NULL)
		return;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestFinal_ex(md, out, &len) != 1)
		log_warnx("the SHA-256 digest does not work: DELIVERY_ID will fail");
	EVP_MD_CTX_free(md);
}

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
	free(e->wbuf);
	free(e->rcpts);
	free(e->dests);
	free(e->pipe_route);
	envelope_init(e);
}

int
envelope_new_id(struct envelope *e)
{
	e->mail_ms = now_ms();
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
	e->rcpts[e->nrcpts].program = pipe;
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
	char date[64], line[1024], helo[256];
	time_t t = time(NULL);
	struct tm tm;

	/*
	 * T42: the HELO name never adds a line of the client's to our header.
	 * SMTP refuses CR and LF in commands, but this module serves every way
	 * mail comes in, so it does not rely on its caller for that.
	 */
	str_copy(helo, sizeof(helo), cl->helo[0] ? cl->helo : "unknown");
	str_mask_controls(helo);
	localtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (cl->local_uid >= 0)
		/* Mail from sendmail: who submitted it, as Postfix's pickup says. */
		snprintf(line, sizeof(line), "Received: by %s (undersmtpd, from userid %ld)\n"
		    "\tid %s", c->hostname, cl->local_uid, e->id);
	else
		snprintf(line, sizeof(line), "Received: from %s ([%s])\n\tby %s (undersmtpd) "
		    "with %s id %s", helo, cl->addr_text,
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
	if (spool_path(c, "tmp", e->id, ".msg", e->msg_path, sizeof(e->msg_path)) < 0) {
		errno = ENAMETOOLONG;
		e->msg_path[0] = '\0';
		return -1;
	}
	e->msg_fd = open(e->msg_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (e->msg_fd < 0) {
		e->msg_path[0] = '\0';
		return -1;
	}
	/* Held until the transaction ends: spool_clean() leaves locked files alone. */
	if (flock(e->msg_fd, LOCK_EX) < 0)
		return -1;
	if (write_received(e, c, cl) < 0)
		return -1;
	e->md = EVP_MD_CTX_new();
	if (e->md == NULL || EVP_DigestInit_ex(e->md, EVP_sha256(), NULL) != 1) {
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

static int
flush(struct envelope *e)
{
	size_t n = e->wlen;

	e->wlen = 0;
	return n == 0 ? 0 : write_all(e->msg_fd, e->wbuf, n);
}

/*
 * sink_write - the DATA reader hands over a line at a time: gather them, so
 * a message costs a few writes, not two per line.
 */
static int
sink_write(void *ctx, const char *p, size_t n)
{
	struct envelope *e = ctx;

	if (EVP_DigestUpdate(e->md, p, n) != 1) {
		errno = ENOMEM;
		return -1;
	}
	if (e->wbuf == NULL)
		e->wbuf = xmalloc(ENVELOPE_WBUF);
	if (e->wlen + n > ENVELOPE_WBUF && flush(e) < 0)
		return -1;
	if (n >= ENVELOPE_WBUF)
		return write_all(e->msg_fd, p, n);
	memcpy(e->wbuf + e->wlen, p, n);
	e->wlen += n;
	return 0;
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

	if (flush(e) < 0)
		return -1;
	if (EVP_DigestFinal_ex(e->md, e->digest, &len) != 1 || len != 32) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

void
envelope_add_dest(struct envelope *e, const char *addr, const char *orig)
{
	for (size_t i = 0; i < e->ndests; i++)
		if (str_casecmp_ascii(e->dests[i].addr, addr) == 0)
			return;
	e->dests = xreallocarray(e->dests, e->ndests + 1, sizeof(*e->dests));
	str_copy(e->dests[e->ndests].addr, sizeof(e->dests[0].addr), addr);
	str_copy(e->dests[e->ndests].orig, sizeof(e->dests[0].orig), orig);
	e->ndests++;
}

int
envelope_spool(struct envelope *e, const struct conf *c,
    const struct envelope_client *cl, uint64_t size)
{
	struct spool_env env;
	int rc;

	memset(&env, 0, sizeof(env));
	str_copy(env.id, sizeof(env.id), e->id);
	env.created = time(NULL);
	env.next_try = env.created;
	str_copy(env.sender, sizeof(env.sender), e->sender_text);
	env.size = size;
	env.smtputf8 = e->params.smtputf8;
	env.body8bit = e->params.body_8bit;
	str_copy(env.client, sizeof(env.client), cl->addr_text);
	str_copy(env.helo, sizeof(env.helo), cl->helo);
	memcpy(env.digest, e->digest, sizeof(env.digest));
	for (size_t i = 0; i < e->ndests; i++)
		if (spool_add_rcpt(&env, e->dests[i].addr, e->dests[i].orig) < 0) {
			spool_env_free(&env);
			errno = E2BIG;
			return -1;
		}
	rc = spool_commit(c, e->msg_fd, &env);
	spool_env_free(&env);
	if (rc == 0)
		e->msg_path[0] = '\0';   /* it lives in the queue now */
	return rc;
}

