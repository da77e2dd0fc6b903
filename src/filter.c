/*
 * filter.c - content filters: which one applies, running it (through the
 * launcher when started as root), and taking its verdict and its rewritten
 * message.  See filter.h.
 */
#define _GNU_SOURCE   /* memfd_create */
#include "filter.h"
#include "aliases.h"
#include "buf.h"
#include "launcher.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sysexits.h>
#include <unistd.h>

#define FILTER_LINE_MAX 998           /* RFC 5322 2.1.1, the line end excluded */

/* alias_filter - the filter an alias block sets for name; NULL when none sets one. */
static const struct filter_conf *
alias_filter(const struct conf *c, const char *name, int *set)
{
	*set = 0;
	for (size_t i = 0; name != NULL && i < c->nalias_overrides; i++)
		if (c->alias_overrides[i].filter_set &&
		    str_casecmp_ascii(c->alias_overrides[i].name, name) == 0) {
			*set = 1;
			return &c->alias_overrides[i].filter;
		}
	return NULL;
}

/* dest_filter - the filter of one destination (command NULL: none). */
static const struct filter_conf *
dest_filter(const struct conf *c, const struct route_dest *d)
{
	const struct filter_conf *f;
	int set;

	if (d->kind == ROUTE_SMARTHOST)
		return c->smarthost_filter;
	/* Alias blocks name plain aliases, as for their pipe settings. */
	f = alias_filter(c, d->entry && !d->entry->re ? d->entry->name : NULL, &set);
	return set ? f : &c->filter;
}

static int
same_filter(const struct filter_conf *a, const struct filter_conf *b)
{
	if (a->command == NULL || b->command == NULL)
		return a->command == b->command;
	return strcmp(a->command, b->command) == 0 && a->rewrite == b->rewrite;
}

const struct filter_conf *
filter_for_route(const struct conf *c, const struct route_result *r, int *conflict)
{
	const struct filter_conf *f = NULL;

	*conflict = 0;
	if (r->ndest == 0)
		return NULL;
	/* The first destination's filter; every other one must have the same. */
	f = dest_filter(c, &r->dest[0]);
	for (size_t i = 1; i < r->ndest; i++)
		if (!same_filter(f, dest_filter(c, &r->dest[i]))) {
			*conflict = 1;
			return NULL;
		}
	return f->command != NULL ? f : NULL;
}

void
filter_recipients(const char *const *rcpts, size_t n, char *out, size_t size)
{
	size_t len = 0;

	if (size < 5)
		return;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t alen = strlen(rcpts[i]), need = alen + (len > 0);

		/* Room kept for " ..." if a later one does not fit. */
		if (len + need + 5 > size || len + need > FILTER_RECIPIENTS_MAX - 4) {
			memcpy(out + len, len > 0 ? " ..." : "...", len > 0 ? 5 : 4);
			return;
		}
		if (len > 0)
			out[len++] = ' ';
		memcpy(out + len, rcpts[i], alen);
		len += alen;
		out[len] = '\0';
	}
}

void
filter_output_init(struct filter_output *o, int fd, uint64_t max)
{
	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->max = max;
}

static int
flush_output(struct filter_output *o)
{
	if (o->nbuf > 0 && write_all(o->fd, o->buf, o->nbuf) < 0) {
		o->write_errno = errno;
		return -1;
	}
	o->nbuf = 0;
	return 0;
}

static int
put(struct filter_output *o, char c)
{
	if (o->size >= o->max) {
		o->too_big = 1;
		return -1;
	}
	if (o->nbuf == sizeof(o->buf) && flush_output(o) < 0)
		return -1;
	o->buf[o->nbuf++] = c;
	o->size++;
	return 0;
}

static int
bad(struct filter_output *o, const char *why)
{
	o->bad = 1;
	o->why = why;
	return -1;
}

int
filter_output_add(struct filter_output *o, const char *p, size_t n)
{
	if (o->bad || o->too_big || o->write_errno)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (o->cr && c != '\n')
			return bad(o, "a bare CR");
		if (c == '\r') {
			o->cr = 1;
			continue;
		}
		o->cr = 0;
		if (c == '\0')
			return bad(o, "a NUL character");
		if (c == '\n') {
			o->line = 0;
		} else if (++o->line > FILTER_LINE_MAX) {
			return bad(o, "a line longer than 998 octets");
		}
		if (put(o, c) < 0)
			return -1;
	}
	return 0;
}

int
filter_output_end(struct filter_output *o)
{
	if (o->bad || o->too_big || o->write_errno)
		return -1;
	if (o->cr)
		return bad(o, "a bare CR");
	if (o->size == 0)
		return bad(o, "nothing");
	if (o->line > 0 && put(o, '\n') < 0)
		return -1;
	return flush_output(o);
}

void
filter_reply(const struct pipe_result *res, struct smtp_reply *rep)
{
	const struct sysexit *row;

	if (res->outcome == PIPE_EXITED && res->status == 0) {
		smtp_set_reply(rep, 250, "2.0.0", "filtered");
		return;
	}
	if (res->outcome == PIPE_EXITED && res->status == EX_TEMPFAIL) {
		smtp_set_reply(rep, 451, "4.7.1", "Message deferred by the content filter");
		if (res->output[0])
			smtp_reply_append(rep, ": ", res->output);
		return;
	}
	row = res->outcome == PIPE_EXITED && res->status >= 65 && res->status <= 78
	    ? sysexit_find(res->status) : NULL;
	if (row != NULL) {
		/* The filter's own words, as Postfix's pipe gives a program's. */
		smtp_set_reply(rep, row->code, row->dsn, res->output[0] ? res->output
		    : "Message refused by the content filter");
		return;
	}
	smtp_set_reply(rep, 451, "4.3.0", "Local error in the content filter; try "
	    "again later");
}

/* read_some - what the filter's output pipe holds now; 1 at its end. */
static int
read_some(int fd, struct filter_output *fo)
{
	char buf[16384];

	/* A bounded number of reads: the caller's loop keeps the filter's timeout. */
	for (int reads = 0; reads < 16; reads++) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n == 0)
			return 1;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : 1;
		/*
		 * Once it is no message, the rest is read and dropped: a
		 * filter that writes on must not block until its timeout.
		 */
		filter_output_add(fo, buf, (size_t)n);
	}
	return 0;
}

/*
 * drain - the output after the filter ended: to its end, which comes at
 * once unless a process the filter left behind holds the pipe open.
 */
static int
drain(int fd, struct filter_output *fo)
{
	int64_t until = now_ms() + PIPE_GRACE_MS;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int64_t left = until - now_ms();

		if (read_some(fd, fo))
			return 0;
		if (left <= 0)
			return -1;
		if (poll(&pfd, 1, left > 1000 ? 1000 : (int)left) < 0 && errno != EINTR)
			return -1;
	}
}

/* run_here - the filter as a child of ours, its output read as it comes. */
static void
run_here(const struct delivery_ctx *dctx, const struct filter_conf *f,
    const struct pipe_conf *pc, const struct delivery_values *v, int in, int outw,
    int outr, struct filter_output *fo, struct pipe_result *res)
{
	struct delivery_command cmd;
	struct pipe_child ch;
	char why[300];

	memset(res, 0, sizeof(*res));
	if (delivery_build_filter(f, pc, v, dctx->ps.running_as_root, dctx->ps.session_uid,
	    &cmd, why, sizeof(why)) < 0) {
		res->outcome = PIPE_REFUSED;
		str_copy(res->output, sizeof(res->output), why);
		return;
	}
	cmd.req.stdin_fd = in;
	cmd.req.stdout_fd = outw;
	if (pipe_start(&cmd.req, &ch) < 0) {
		*res = ch.res;
		delivery_command_free(&cmd);
		return;
	}
	delivery_command_free(&cmd);
	for (;;) {
		struct pollfd pfd[4];
		size_t n = pipe_child_fds(&ch, pfd);
		int64_t left = pipe_child_wake(&ch) - now_ms();

		if (outr >= 0) {
			pfd[n].fd = outr;
			pfd[n].events = POLLIN;
			pfd[n++].revents = 0;
		}
		if (poll(pfd, n, left < 0 ? 0 : left > 1000 ? 1000 : (int)left) < 0 &&
		    errno != EINTR)
			sleep_ms(20);
		if (outr >= 0 && pfd[n - 1].revents && read_some(outr, fo))
			outr = -1;
		if (pipe_child_step(&ch, now_ms()))
			break;
	}
	*res = ch.res;
}

/* run_launched - the same through the root launcher. */
static void
run_launched(const struct delivery_ctx *dctx, const struct pipe_conf *pc,
    const struct delivery_values *v, int in, int outw, int outr,
    struct filter_output *fo, struct pipe_result *res)
{
	int64_t deadline = now_ms() + (pc->timeout * 2 + 10) * 1000;
	int afd = launcher_send(dctx->ps.launcher_fd, v, in, outw, res);

	if (afd < 0)
		return;
	for (;;) {
		struct pollfd pfd[2] = {{.fd = afd, .events = POLLIN}, {.fd = outr,
		    .events = POLLIN}};
		int64_t left = deadline - now_ms();

		if (left <= 0) {
			close(afd);
			memset(res, 0, sizeof(*res));
			res->outcome = PIPE_TIMEDOUT;
			return;
		}
		if (poll(pfd, outr >= 0 ? 2 : 1, left > 1000 ? 1000 : (int)left) < 0 &&
		    errno != EINTR)
			sleep_ms(20);
		if (outr >= 0 && pfd[1].revents && read_some(outr, fo))
			outr = -1;
		if (pfd[0].revents)
			break;
	}
	launcher_answer(afd, res);
}

/*
 * output_limit - what a rewritten message may weigh: max_message_size and
 * room for added headers; sendmail reads 0 as no limit, the memfd still gets one.
 */
static uint64_t
output_limit(uint64_t max)
{
	if (max == 0 || max > FILTER_OUTPUT_CEILING - FILTER_GROWTH)
		return FILTER_OUTPUT_CEILING;
	return max + FILTER_GROWTH;
}

/* replace_message - msgfd's content becomes the rewritten message in fd. */
static int
replace_message(int msgfd, int fd, uint64_t size)
{
	char buf[65536];
	off_t off = 0;

	if (ftruncate(msgfd, 0) < 0)
		return -1;
	while ((uint64_t)off < size) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		for (ssize_t done = 0; done < n; ) {
			ssize_t w = pwrite(msgfd, buf + done, (size_t)(n - done), off + done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -1;
			done += w;
		}
		off += n;
	}
	return 0;
}

/* output_verdict - a rewriting filter said 0: is what it wrote a message? */
static int
output_verdict(const struct delivery_values *v, struct filter_output *fo, int drained,
    struct smtp_reply *rep)
{
	if (!drained && !fo->bad && !fo->too_big)
		fo->bad = 1, fo->why = "output still open after the filter ended";
	if (filter_output_end(fo) == 0)
		return 0;
	if (fo->too_big) {
		log_warnx("%s: filter: the rewritten message is over %llu bytes", v->queue_id,
		    (unsigned long long)fo->max);
		smtp_set_reply(rep, 552, "5.3.4", "Message size exceeds fixed maximum message "
		    "size after the content filter");
	} else {
		if (fo->write_errno)
			errno = fo->write_errno;
		if (fo->write_errno)
			log_warn("%s: filter: store the rewritten message", v->queue_id);
		else
			log_warnx("%s: filter: its output is no message: %s", v->queue_id,
			    fo->why);
		smtp_set_reply(rep, 451, "4.3.0", "Local error in the content filter; try "
		    "again later");
	}
	return -1;
}

int
filter_message(const struct delivery_ctx *dctx, const struct filter_conf *f,
    const struct pipe_conf *pc, const struct delivery_values *v, int msgfd,
    uint64_t *size, struct smtp_reply *rep)
{
	struct filter_output *fo = NULL;
	struct pipe_result res;
	char how[160];
	int in, p[2] = {-1, -1}, outfd = -1, drained = 1, rc = -1;
	int64_t started = now_ms();

	memset(rep, 0, sizeof(*rep));
	in = pipe_make_input(msgfd, NULL, NULL, 0);
	if (in < 0) {
		log_warn("%s: filter: write its input", v->queue_id);
		smtp_set_reply(rep, 451, "4.3.0", "Local error: cannot write the filter's input");
		return -1;
	}
	if (f->rewrite) {
		fo = xmalloc(sizeof(*fo));
		outfd = memfd_create("undersmtpd-filtered", MFD_CLOEXEC);
		if (outfd < 0 || pipe2(p, O_CLOEXEC) < 0 ||
		    fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
			log_warn("%s: filter: make its output", v->queue_id);
			smtp_set_reply(rep, 451, "4.3.0", "Local error: cannot run the filter");
			goto done;
		}
		filter_output_init(fo, outfd, output_limit(dctx->conf->max_message_size));
	}
	if (dctx->ps.launcher_fd >= 0)
		run_launched(dctx, pc, v, in, p[1] > 0 ? p[1] : 0, p[0], fo, &res);
	else
		run_here(dctx, f, pc, v, in, p[1] > 0 ? p[1] : 0, p[0], fo, &res);
	if (p[1] >= 0)
		close(p[1]);          /* the filter's copies are all that keep it open */
	p[1] = -1;
	if (p[0] >= 0)
		drained = drain(p[0], fo) == 0;
	pipe_describe(&res, how, sizeof(how));
	filter_reply(&res, rep);
	log_info_as("filter", "%s: filter=%s, delay=%.2f, %s%s%s", v->queue_id, f->command,
	    (double)(now_ms() - started) / 1000, how, res.output[0] ? ": " : "", res.output);
	if (rep->code != 250)
		goto done;
	if (f->rewrite) {
		if (output_verdict(v, fo, drained, rep) < 0)
			goto done;
		if (replace_message(msgfd, outfd, fo->size) < 0) {
			int full = errno == ENOSPC || errno == EDQUOT;

			log_warn("%s: filter: write the rewritten message", v->queue_id);
			smtp_set_reply(rep, full ? 452 : 451, full ? "4.3.1" : "4.3.0",
			    full ? "Insufficient system storage" : "Local error writing the "
			    "message");
			goto done;
		}
		*size = fo->size;
	}
	memset(rep, 0, sizeof(*rep));
	rc = 0;
done:
	close(in);
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	if (outfd >= 0)
		close(outfd);
	free(fo);
	return rc;
}

int
filter_choose(const struct conf *c, const struct aliases *a, const char *const *rcpts,
    size_t n, const struct filter_conf **f, const struct pipe_conf **pc,
    const char **first)
{
	const struct filter_conf *chosen = NULL;
	const struct pipe_conf *settings = &c->pipe;
	const char *named = NULL;
	struct route_result *r = xmalloc(sizeof(*r));
	int differ = 0;

	for (size_t i = 0; i < n && !differ; i++) {
		struct addr ad;
		int conflict = 0;
		const struct filter_conf *g;

		if (addr_parse_plain(rcpts[i], &ad) != ADDR_OK)
			continue;
		route_address(c, a, &ad, 1, r);
		if (r->reply.code != 250)
			continue;
		g = filter_for_route(c, r, &conflict);
		if (conflict || (named != NULL && g != chosen)) {
			differ = 1;
		} else if (named == NULL) {
			named = rcpts[i];
			chosen = g;
			settings = delivery_pipe_conf(c, r);
		}
	}
	free(r);
	*f = chosen;
	*pc = settings;
	*first = named;
	return differ ? -1 : 0;
}

int
filter_transaction(const struct delivery_ctx *dctx, const struct filter_conf *f,
    const struct pipe_conf *pc, const char *queue_id, const char *sender,
    const char *first, const char *const *rcpts, size_t n, const char *client_addr,
    const char *helo, int msgfd, uint64_t *size, struct smtp_reply *rep)
{
	char list[FILTER_RECIPIENTS_MAX + 1];
	struct delivery_values v;

	filter_recipients(rcpts, n, list, sizeof(list));
	memset(&v, 0, sizeof(v));
	v.recipient = first;
	v.sender = sender;
	v.client_addr = client_addr;
	v.helo = helo;
	v.queue_id = queue_id;
	v.delivery_id = "";
	v.kind = "filter";
	v.recipients = list;
	return filter_message(dctx, f, pc, &v, msgfd, size, rep);
}
