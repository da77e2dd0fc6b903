/*
 * envelope.h - one mail transaction: sender, recipients and their routes,
 * the message file, our Received: header, the queue id and DELIVERY_ID.
 *
 * Shared by every way mail comes in (the SMTP session, sendmail).  The
 * message is streamed to spool_dir/tmp/ID.msg as it arrives (memory stays
 * flat whatever the size), after our Received: header; the file is locked
 * while we write it, so spool_clean() knows it is alive.  It becomes the
 * spooled message (envelope_spool), or is removed when the transaction
 * ends, whatever its outcome.
 */
#ifndef ENVELOPE_H
#define ENVELOPE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "addr.h"
#include "conf.h"
#include "route.h"
#include "smtpd_data.h"
#include "smtpd_parse.h"

#define QUEUE_ID_LEN 12

struct envelope_rcpt {
	struct addr addr;
	char text[ADDR_PATH_MAX + 1];   /* as the client wrote it, normalised */
	int pipe;                       /* delivered by the transaction's pipe run */
	int program;                    /* routed to a program, now or from the
	                                   queue: checked for Delivered-To loops */
};

/* A destination for the smarthost, spooled with the message. */
struct envelope_dest {
	char addr[ADDR_PATH_MAX + 1];
	char orig[ADDR_PATH_MAX + 1];
};

struct envelope {
	char id[QUEUE_ID_LEN + 1];
	struct addr sender;
	char sender_text[ADDR_PATH_MAX + 1];
	struct mail_params params;
	struct envelope_rcpt *rcpts;
	size_t nrcpts, cap;
	struct route_result *pipe_route;  /* the one program run, or NULL */
	struct envelope_dest *dests;      /* for the smarthost, through the spool */
	size_t ndests;
	int msg_fd;                       /* -1 until DATA */
	char msg_path[4096];
	char *wbuf;                       /* the sink's writes, flushed by finish */
	size_t wlen;
	void *md;                         /* EVP_MD_CTX * over the client's message */
	unsigned char digest[32];
	int64_t mail_ms;                  /* when MAIL came: delay= in the log */
	int outcome_logged;               /* the reply is a program's, whose
	                                     to= lines are in the log already */
	const struct filter_conf *filter; /* the one content filter of the
	                                     transaction's recipients, or NULL */
	const struct pipe_conf *filter_pipe;  /* its user, path and timeout */
};

/* The session's facts that go into Received: and the program's environment. */
struct envelope_client {
	const char *helo;
	const char *addr_text;     /* "192.0.2.1" */
	const char *proto;         /* SMTP, ESMTP, ... */
	long local_uid;            /* a local submission's user id, or -1 (SMTP) */
};

/*
 * envelope_warm_up - OpenSSL 3 reads its configuration and loads the digest's
 * provider on first use, about a millisecond: the daemon does it once before
 * sessions fork, instead of every session (make bench found it at 13% of CPU).
 */
void envelope_warm_up(void);
void envelope_init(struct envelope *e);
void envelope_reset(struct envelope *e);   /* RSET / end of transaction */
int envelope_new_id(struct envelope *e);
void envelope_add_rcpt(struct envelope *e, const struct addr *a, int pipe);
/*
 * envelope_open_message - create the message file and write the leading
 * headers.  Returns 0, or -1 with errno (logged by the caller).
 */
int envelope_open_message(struct envelope *e, const struct conf *c,
    const struct envelope_client *cl);
/* envelope_sink - the DATA reader's sink into the message file (buffered). */
struct data_sink envelope_sink(struct envelope *e);
/*
 * envelope_finish_message - write out what the sink buffered and close the
 * digest; 0, or -1 with errno (ENOSPC: the disk is full).  The message file
 * is complete only after it.
 */
int envelope_finish_message(struct envelope *e);
/* envelope_add_dest - a smarthost destination (once per address). */
void envelope_add_dest(struct envelope *e, const char *addr, const char *orig);
/*
 * envelope_spool - commit the message and its smarthost destinations to the
 * spool durably (spool_commit).  0, or -1 with errno.
 */
int envelope_spool(struct envelope *e, const struct conf *c,
    const struct envelope_client *cl, uint64_t size);


#endif
