/*
 * route.c - recipient routing (SPEC section 5).  See route.h.
 *
 * Lookup order for local recipients (SPEC 4): local+ext@domain, local@domain,
 * local+ext, local, then /regex/ keys in file order.  Alias expansion follows
 * names and local-domain addresses recursively, with a depth limit and loop
 * detection; a recipient may expand to at most one program.
 */
#include "route.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

struct expansion {
	const struct conf *c;
	const struct aliases *a;
	struct route_result *r;
	const struct alias_entry *path[ALIAS_MAX_DEPTH + 1];
	int failed;
};

static void
set_reply(struct route_result *r, int code, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
set_reply(struct route_result *r, int code, const char *status, const char *fmt, ...)
{
	va_list ap;

	r->reply.code = code;
	str_copy(r->reply.status, sizeof(r->reply.status), status);
	va_start(ap, fmt);
	vsnprintf(r->reply.text, sizeof(r->reply.text), fmt, ap);
	va_end(ap);
	r->ndest = 0;
}

static void
fail(struct expansion *x, int code, const char *status, const char *text,
    const char *file, int line)
{
	if (x->failed)
		return;
	x->failed = 1;
	set_reply(x->r, code, status, "%s", text);
	if (file != NULL)
		snprintf(x->r->why, sizeof(x->r->why), "%s (%s:%d)", text, file, line);
	else
		snprintf(x->r->why, sizeof(x->r->why), "%s", text);
}

static void
add_smarthost(struct expansion *x, const char *address, const char *source)
{
	struct route_result *r = x->r;

	for (size_t i = 0; i < r->ndest; i++)
		if (r->dest[i].kind == ROUTE_SMARTHOST &&
		    str_casecmp_ascii(r->dest[i].address, address) == 0)
			return;
	if (r->ndest >= ROUTE_MAX_DEST) {
		fail(x, 451, "4.3.0", "alias expands to too many destinations", NULL, 0);
		return;
	}
	r->dest[r->ndest].kind = ROUTE_SMARTHOST;
	str_copy(r->dest[r->ndest].address, sizeof(r->dest[0].address), address);
	str_copy(r->dest[r->ndest].source, sizeof(r->dest[0].source), source);
	r->ndest++;
}

/*
 * capture_makes_option - a regex capture would start an argument of t's
 * command with '-' where the administrator wrote none: an address must never
 * add an option to a program (rt---help@ to "|rt-mailgate $1").
 */
static int
capture_makes_option(const struct alias_target *t, const struct alias_captures *caps)
{
	if (caps == NULL || !t->cmd.has_captures)
		return 0;
	for (char **a = t->cmd.argv; *a; a++) {
		char word[4096];

		if ((*a)[0] != '-' && aliases_expand_arg(*a, caps, word, sizeof(word)) == 0 &&
		    word[0] == '-')
			return 1;
	}
	return 0;
}

static void
add_pipe(struct expansion *x, const struct alias_entry *e,
    const struct alias_target *t, const struct alias_captures *caps)
{
	struct route_result *r = x->r;

	for (size_t i = 0; i < r->ndest; i++) {
		if (r->dest[i].kind != ROUTE_PIPE)
			continue;
		if (r->dest[i].target == t)
			return;
		fail(x, 451, "4.3.0", "alias configuration error: recipient expands "
		    "to more than one program", t->file, t->line);
		return;
	}
	if (!t->trusted) {
		log_warnx("aliases %s:%d: pipe alias refused: the file must be owned by "
		    "root (or, started as an ordinary user, by that user) and writable "
		    "by no one else", t->file, t->line);
		fail(x, 451, "4.3.0", "pipe aliases disabled: unsafe aliases file "
		    "ownership or mode", t->file, t->line);
		return;
	}
	if (capture_makes_option(t, caps)) {
		log_warnx("aliases %s:%d: <%s>: a regex capture would start an argument of "
		    "the program with '-': refused", t->file, t->line, r->address);
		fail(x, 550, "5.1.3", "Bad recipient address syntax: it would be an option of "
		    "the program", t->file, t->line);
		return;
	}
	if (r->ndest >= ROUTE_MAX_DEST) {
		fail(x, 451, "4.3.0", "alias expands to too many destinations", NULL, 0);
		return;
	}
	r->dest[r->ndest].kind = ROUTE_PIPE;
	r->dest[r->ndest].entry = e;
	r->dest[r->ndest].target = t;
	snprintf(r->dest[r->ndest].source, sizeof(r->dest[0].source), "%s:%d",
	    t->file, t->line);
	if (caps != NULL)
		r->caps = *caps;
	r->ndest++;
}

/* split_extension - base and extension at the first delimiter character. */
static void
split_extension(const char *delims, const char *local, char *base, size_t basesize,
    char *ext, size_t extsize)
{
	size_t n = strcspn(local, delims);

	ext[0] = '\0';
	if (local[n] == '\0' || n == 0 || n >= basesize) {
		str_copy(base, basesize, local);
		return;
	}
	memcpy(base, local, n);
	base[n] = '\0';
	str_copy(ext, extsize, local + n + 1);
}

static int expand_local(struct expansion *x, const char *local, const char *domain,
    int depth, int top);

static void
expand_entry(struct expansion *x, const struct alias_entry *e,
    const struct alias_captures *caps, int depth)
{
	for (int i = 0; i < depth; i++)
		if (x->path[i] == e) {
			fail(x, 451, "4.3.0", "alias loop", e->file, e->line);
			return;
		}
	if (depth >= ALIAS_MAX_DEPTH) {
		fail(x, 451, "4.3.0", "alias expansion nested too deeply", e->file, e->line);
		return;
	}
	x->path[depth] = e;
	for (size_t i = 0; i < e->ntargets && !x->failed; i++) {
		const struct alias_target *t = &e->targets[i];
		char src[300];

		snprintf(src, sizeof(src), "%s:%d", t->file, t->line);
		switch (t->kind) {
		case TARGET_PIPE:
			add_pipe(x, e, t, caps);
			break;
		case TARGET_NAME:
			if (!expand_local(x, t->text, "", depth + 1, 0))
				fail(x, 550, "5.1.1", "alias target has no alias and there "
				    "is no local mailbox", t->file, t->line);
			break;
		case TARGET_ADDRESS: {
			struct addr ad;

			if (addr_parse_plain(t->text, &ad) != ADDR_OK) {
				fail(x, 451, "4.3.0", "bad alias address", t->file, t->line);
				break;
			}
			if (conf_is_local_domain(x->c, ad.domain)) {
				if (!expand_local(x, ad.local, ad.domain, depth + 1, 0))
					fail(x, 550, "5.1.1", "alias target has no alias",
					    t->file, t->line);
			} else {
				add_smarthost(x, t->text, src);
			}
			break;
		}
		}
	}
}

/* routing_characters - a local part that could smuggle a route (SPEC 5). */
static int
routing_characters(const char *local)
{
	return strpbrk(local, "%!@:") != NULL;
}

/*
 * expand_local - look local[@domain] up; 1 when an alias was found (and
 * expanded), 0 when there is none.  top: the recipient itself (its
 * extension and captures are the ones handed to a program).
 */
static int
expand_local(struct expansion *x, const char *local, const char *domain,
    int depth, int top)
{
	char lower[ADDR_LOCAL_MAX + 1], base[ADDR_LOCAL_MAX + 1], ext[ADDR_LOCAL_MAX + 1];
	char key[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2];
	const struct alias_entry *e = NULL;
	int exact_only = routing_characters(local);

	str_copy(lower, sizeof(lower), local);
	str_lower(lower);
	if (exact_only)
		str_copy(base, sizeof(base), lower), ext[0] = '\0';
	else
		split_extension(x->c->recipient_delimiter, lower, base, sizeof(base),
		    ext, sizeof(ext));
	/* EXTENSION keeps the sender's case (the lookups use lower case). */
	if (top)
		str_copy(x->r->extension, sizeof(x->r->extension),
		    ext[0] ? local + strlen(local) - strlen(ext) : "");
	if (domain[0]) {
		snprintf(key, sizeof(key), "%s@%s", lower, domain);
		e = aliases_find(x->a, key);
		if (e == NULL && ext[0]) {
			snprintf(key, sizeof(key), "%s@%s", base, domain);
			e = aliases_find(x->a, key);
		} else if (e != NULL && top) {
			x->r->extension[0] = '\0';   /* the whole name matched */
		}
	}
	if (e == NULL && (e = aliases_find(x->a, lower)) != NULL && top)
		x->r->extension[0] = '\0';
	if (e == NULL && ext[0])
		e = aliases_find(x->a, base);
	if (e != NULL) {
		expand_entry(x, e, NULL, depth);
		return 1;
	}
	if (!exact_only) {
		struct alias_captures caps;
		char address[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 260];
		int rc;

		snprintf(address, sizeof(address), "%s@%s", local,
		    domain[0] ? domain : x->c->hostname);
		rc = aliases_match_regex(x->a, local, address, &e, &caps);
		if (rc < 0) {
			fail(x, 451, "4.3.0", "temporary lookup failure (regex limit)",
			    e ? e->file : NULL, e ? e->line : 0);
			return 1;
		}
		if (rc > 0) {
			expand_entry(x, e, &caps, depth);
			return 1;
		}
	}
	return 0;
}

static void
describe(const struct conf *c, struct route_result *r)
{
	size_t o = 0;

	if (r->reply.code != 250 || r->why[0])
		return;
	for (size_t i = 0; i < r->ndest && o < sizeof(r->why); i++) {
		const struct route_dest *d = &r->dest[i];
		int n;

		if (d->kind == ROUTE_PIPE) {
			const struct pipe_conf *pc = conf_pipe_for(c, d->entry->re ? NULL
			    : d->entry->name);
			char argv[256] = "";
			size_t ao = 0;

			/* Show argv as it will run: captures substituted, one word each. */
			for (char **a = d->target->cmd.argv; *a && !d->target->cmd.use_shell; a++) {
				char word[256];

				if (aliases_expand_arg(*a, &r->caps, word, sizeof(word)) < 0)
					str_copy(word, sizeof(word), "...");
				ao += (size_t)snprintf(argv + ao, ao < sizeof(argv) ?
				    sizeof(argv) - ao : 0, "%s[%s]", ao ? " " : "", word);
				if (ao >= sizeof(argv))
					break;
			}
			n = snprintf(r->why + o, sizeof(r->why) - o,
			    "%spipe %s%s (%s, %s, policy %s, timeout %lds%s%s%s)",
			    i ? "; " : "", d->target->cmd.use_shell ? "/bin/sh -c " : "",
			    d->target->cmd.use_shell ? d->target->cmd.text : argv,
			    d->source, d->target->cmd.use_shell ? "via the shell" : "execve",
			    conf_policy_name(pc->policy), pc->timeout,
			    r->extension[0] ? ", extension \"" : "", r->extension,
			    r->extension[0] ? "\"" : "");
		} else {
			n = snprintf(r->why + o, sizeof(r->why) - o,
			    "%ssmarthost <%s> (%s)", i ? "; " : "", d->address, d->source);
		}
		if (n < 0)
			break;
		o += (size_t)n;
	}
}

void
route_address(const struct conf *c, const struct aliases *a,
    const struct addr *rcpt, int relay_allowed, struct route_result *r)
{
	struct expansion x;
	int local;

	memset(r, 0, sizeof(*r));
	memset(&x, 0, sizeof(x));
	x.c = c;
	x.a = a;
	x.r = r;
	addr_format(rcpt, r->address, sizeof(r->address));
	str_copy(r->local, sizeof(r->local), rcpt->local);
	str_copy(r->domain, sizeof(r->domain), rcpt->domain);
	local = rcpt->domain[0] == '\0' || conf_is_local_domain(c, rcpt->domain);
	smtp_set_reply(&r->reply, 250, "2.1.5", "Recipient ok");
	if (local && a == NULL) {
		/* STYLE habit 9: a table we cannot read is a temporary failure. */
		fail(&x, 451, "4.3.0", "Temporary lookup failure: aliases unavailable",
		    NULL, 0);
		return;
	}
	if (!local) {
		if (!relay_allowed) {
			fail(&x, 554, "5.7.1", "Relay access denied", NULL, 0);
			return;
		}
		add_smarthost(&x, r->address, "relay: client in relay_networks");
	} else if (!expand_local(&x, rcpt->local, rcpt->domain, 0, 1) && !x.failed) {
		char fq[ADDR_PATH_MAX + 1];
		struct addr full = *rcpt;

		/* Forwarded as received: addr_format quotes what needs it ("a b"@x). */
		if (full.domain[0] == '\0')
			str_copy(full.domain, sizeof(full.domain), c->hostname);
		addr_format(&full, fq, sizeof(fq));
		if (str_casecmp_ascii(rcpt->local, "postmaster") == 0) {
			/*
			 * RFC 5321 4.5.1: postmaster is always accepted.  SPEC 3: without
			 * a postmaster key it is postmaster@hostname, the smarthost's to
			 * deliver - never postmaster@ a domain of ours sent back to us.
			 */
			if (c->postmaster) {
				add_smarthost(&x, c->postmaster, "postmaster (configuration)");
			} else {
				snprintf(fq, sizeof(fq), "postmaster@%s", c->hostname);
				add_smarthost(&x, fq, "postmaster (RFC 5321 4.5.1)");
			}
		} else if (c->unknown_local == UNKNOWN_RELAY && !routing_characters(rcpt->local)) {
			add_smarthost(&x, fq, "unknown_local = relay");
		} else {
			fail(&x, 550, "5.1.1", "User unknown", NULL, 0);
		}
	}
	if (x.failed)
		return;
	for (size_t i = 0; i < r->ndest; i++) {
		if (r->dest[i].kind == ROUTE_SMARTHOST && c->nsmarthosts == 0) {
			fail(&x, 550, "5.3.5", "no smarthost is configured to forward this "
			    "recipient", NULL, 0);
			return;
		}
	}
	describe(c, r);
}

int
route_same_run(const struct route_result *a, const struct route_result *b)
{
	const struct route_dest *pa = route_pipe(a), *pb = route_pipe(b);

	if (pa == NULL || pb == NULL)
		return 0;
	if (pa->target != pb->target || strcmp(a->extension, b->extension) != 0)
		return 0;
	/* A regex entry run with other captures is another run. */
	return memcmp(&a->caps, &b->caps, sizeof(a->caps)) == 0;
}

const struct route_dest *
route_pipe(const struct route_result *r)
{
	for (size_t i = 0; i < r->ndest; i++)
		if (r->dest[i].kind == ROUTE_PIPE)
			return &r->dest[i];
	return NULL;
}
