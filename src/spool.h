/*
 * spool.h - the durable spool (SPEC section 8): plain files a person can read.
 *
 *   spool_dir/tmp/ID.msg     a message being received (flock()ed by its writer)
 *   spool_dir/tmp/ID.env     its envelope, for the moment of the commit
 *   spool_dir/queue/ID.msg   a committed message: our Received: + the message
 *   spool_dir/queue/ID.env   its envelope (format below); present = committed
 *   spool_dir/bad/ID.*       damaged files moved aside, with ID.why
 *   spool_dir/maildrop/      optional (make install-sendmail): mode 1730, group
 *                            of the setgid helper; see maildrop.h
 *
 * Nothing is answered 250 before spool_commit() returned 0: message and
 * envelope written and fsync'd in tmp/, both linked into queue/ (envelope
 * last), the directory fsync'd.  A lock (flock on queue/ID.msg, never replaced) is the
 * ownership of a message: a runner that cannot take it skips the message.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "addr.h"
#include "conf.h"

#define SPOOL_VERSION 1
#define SPOOL_ID_MAX 32
#define SPOOL_REPLY_MAX 256
#define SPOOL_MAX_RCPTS 10000

/*
 * A recipient's life: pending -> (deferred ->)* delivered, or failed ->
 * bounced once its DSN is spooled (or none is due).  delivered and bounced
 * are final.
 */
enum rcpt_state { RCPT_PENDING, RCPT_DEFERRED, RCPT_DELIVERED, RCPT_FAILED, RCPT_BOUNCED };

struct spool_rcpt {
	char addr[ADDR_PATH_MAX + 1];      /* where it goes */
	char orig[ADDR_PATH_MAX + 1];      /* as the client wrote it */
	enum rcpt_state state;
	int attempts;
	char last[SPOOL_REPLY_MAX];        /* last reply, "" when none */
	/* In memory only, for a queue run's failure notices (notice.h): the
	 * pipe alias this recipient's last reply came from, its aliases line
	 * and command; "" when not a program's. */
	char via_alias[200];
	char via_source[128];
	char via_command[256];
};

struct spool_env {
	char id[SPOOL_ID_MAX];
	time_t created;
	time_t next_try;
	int attempts;
	int hold;
	int bounce;                        /* this message is a DSN (sender <>) */
	char sender[ADDR_PATH_MAX + 1];    /* "" for the null sender */
	uint64_t size;
	int smtputf8;
	int body8bit;
	char client[64];
	char helo[256];
	unsigned char digest[32];          /* of the client's message: DELIVERY_ID */
	struct spool_rcpt *rcpts;
	size_t nrcpts;
	double attempt;                    /* in memory only: when this run's
	                                      attempt began (seconds since the
	                                      epoch), for the log's delays= */
};

/*
 * spool_prepare_top - spool_dir exists, reached without following anyone
 * else's link (safepath.h), owned by uid with group gid (the maildrop's
 * group and mode 0710 when spool_dir/maildrop exists), mode 0700.  The one
 * spool step root takes, before dropping to uid: nothing inside spool_dir
 * is touched, since its owner could have put links there.
 */
int spool_prepare_top(const struct conf *c, uid_t uid, gid_t gid, char *why,
    size_t whysize);
/*
 * spool_prepare - as the spool's owner, after spool_prepare_top: tmp/,
 * queue/ and bad/ exist as our own directories, mode 0700.  A link or a file
 * in their place, or someone else's directory, is an error that names it.
 */
int spool_prepare(const struct conf *c, char *why, size_t whysize);
/* spool_path - spool_dir/sub/ID.ext into buf; -1 when it does not fit. */
int spool_path(const struct conf *c, const char *sub, const char *id,
    const char *ext, char *buf, size_t size);
/*
 * spool_commit - make a received message durable.  msgfd is the open
 * tmp/ID.msg.  Returns 0, or -1 with errno; on failure nothing of it stays
 * in queue/ and the tmp file is removed.
 */
int spool_commit(const struct conf *c, int msgfd, const struct spool_env *env);
/* spool_update - rewrite the envelope of a committed message durably. */
int spool_update(const struct conf *c, const struct spool_env *env);
/* spool_read - parse queue/ID.env; -1 with why for a damaged one. */
int spool_read(const struct conf *c, const char *id, struct spool_env *env,
    char *why, size_t whysize);
/* spool_parse_env - the envelope format from a buffer (fuzzable). */
int spool_parse_env(const char *text, size_t len, struct spool_env *env,
    char *why, size_t whysize);
/* spool_format_env - the envelope as text (malloc'd, NUL-terminated). */
char *spool_format_env(const struct spool_env *env, size_t *len);
void spool_env_free(struct spool_env *env);
int spool_add_rcpt(struct spool_env *env, const char *addr, const char *orig);
/* spool_id_valid - name[0..len) is the form of a queue id (digits, capitals). */
int spool_id_valid(const char *name, size_t len);
/* spool_lock - take the message's lock; fd, or -1 (EWOULDBLOCK: taken). */
int spool_lock(const struct conf *c, const char *id);
/*
 * spool_remove - delete a message (envelope first); 0 or -1 with errno.
 * durable: the directory is fsync'd too, so the removal survives a crash (an
 * operator's --delete).  A delivered message is removed without: a crash may
 * bring it back and it is delivered again - at least once, never lost - and
 * the queue runner saves an fsync per message.
 */
int spool_remove(const struct conf *c, const char *id, int durable);
/* spool_quarantine - move a message's files to bad/ with the reason. */
void spool_quarantine(const struct conf *c, const char *id, const char *reason);
/* spool_clean - remove stale tmp files and envelope-less queue files. */
void spool_clean(const struct conf *c);
/* spool_ids - the committed messages' ids (malloc'd vector, NULL-terminated). */
char **spool_ids(const struct conf *c);
void spool_ids_free(char **ids);
const char *spool_state_name(enum rcpt_state s);
/* spool_xtext_put - s in xtext (RFC 3461 4), the spool's field encoding. */
void spool_xtext_put(FILE *fp, const char *s);
/* spool_xtext_get - decode len bytes of xtext into out; -1 on bad syntax or overflow. */
int spool_xtext_get(const char *s, size_t len, char *out, size_t outsize);
/* spool_fsync_dir - fsync a directory by path. */
int spool_fsync_dir(const char *path);

#endif
