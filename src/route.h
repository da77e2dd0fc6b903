/*
 * route.h - what happens to one recipient (SPEC section 5), as a pure
 * function of the configuration, the aliases table, the client's relay right
 * and the address.  The SMTP session, sendmail mode and --route all call
 * route_address(); nothing here writes anything (STYLE habit 10).
 */
#ifndef ROUTE_H
#define ROUTE_H

#include "addr.h"
#include "aliases.h"
#include "reply.h"
#include "conf.h"

#define ROUTE_MAX_DEST 32

enum route_kind { ROUTE_PIPE, ROUTE_SMARTHOST };

struct route_dest {
	enum route_kind kind;
	char address[ADDR_PATH_MAX + 1];           /* smarthost: the address */
	const struct alias_entry *entry;           /* pipe: the alias entry */
	const struct alias_target *target;         /* pipe: its command */
	char source[300];                          /* file:line, or the rule */
};

struct route_result {
	struct smtp_reply reply;                   /* 250, or the refusal */
	char address[ADDR_PATH_MAX + 1];           /* the recipient, normalised */
	char local[ADDR_LOCAL_MAX + 1];            /* whole local part */
	char domain[ADDR_DOMAIN_MAX + 1];
	char extension[ADDR_LOCAL_MAX + 1];        /* after the delimiter */
	size_t ndest;
	struct route_dest dest[ROUTE_MAX_DEST];
	struct alias_captures caps;                /* of the pipe's regex entry */
	char why[512];                             /* one line for --route */
};

/*
 * route_address - decide for rcpt.  Always fills r: r->code is 250 when the
 * recipient can be accepted, with its destinations; otherwise the reply.
 */
void route_address(const struct conf *c, const struct aliases *a,
    const struct addr *rcpt, int relay_allowed, struct route_result *r);
/* route_same_run - two pipe destinations are one program run (SPEC 7). */
int route_same_run(const struct route_result *a, const struct route_result *b);
/* route_pipe - the pipe destination of r, or NULL. */
const struct route_dest *route_pipe(const struct route_result *r);

#endif
