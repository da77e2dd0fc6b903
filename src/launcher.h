/*
 * launcher.h - the small privileged launcher of SPEC section 11.
 *
 * When undersmtpd starts as root, the session drops to `user` (the spool's
 * owner) and a root process stays behind whose only job is to run pipe
 * programs as pipe.user on the session's request.  A session is the part
 * exposed to the network, so a request carries no more than a session could
 * learn from its client: the envelope values of one program run (struct
 * delivery_values) and two descriptors, the program's standard input and
 * a private socket for the answer (a third for a rewriting content
 * filter: a pipe for its standard output, which the session reads).  No program, argument, path, user or
 * environment variable name crosses.  The launcher reads the configuration
 * and the aliases itself (as root: only root's aliases files may name
 * programs), re-reads them when they change or on SIGHUP, routes the
 * recipient again and builds the command as a direct run would
 * (delivery_build).  Anything else is refused and logged, and nothing runs.
 *
 * At most pipe.max_concurrency programs run at once; as many requests
 * again wait their turn; beyond that a request is answered PIPE_BUSY (451).
 * Started as an ordinary user, there is no launcher and the session builds
 * and runs the command itself.
 */
#ifndef LAUNCHER_H
#define LAUNCHER_H

#include <pwd.h>
#include <sys/types.h>

#include "conf.h"
#include "delivery.h"
#include "pipe.h"

/* The strings of one request, in this order. */
#define LAUNCHER_FIELDS 8
#define LAUNCHER_MSG_MAX 4096

/*
 * launcher_serve - answer requests on fd until every holder closed it, then
 * wait for all children.  c is the configuration in force (its file is
 * re-read when it changes), aliases_override the -a FILE (or NULL),
 * spool_uid the spool's owner (never a pipe user).  Returns the exit status
 * of main_child (the session or queue run it served).
 */
int launcher_serve(int fd, const struct conf *c, const char *aliases_override,
    uid_t spool_uid, pid_t main_child);
/*
 * launcher_parse - the len bytes of one request into v (pointing into buf);
 * 0, or -1 with why for anything malformed, too long, holding a control
 * character, or a recipient that is not an address.  Public for the fuzzer
 * (tests/fuzz/fuzz_launcher.c) and the unit tests.
 */
int launcher_parse(char *buf, size_t len, struct delivery_values *v, char *why,
    size_t whysize);
/* launcher_format - a request for v into buf; its length, or 0 when it does not fit. */
size_t launcher_format(const struct delivery_values *v, char *buf, size_t size);
/*
 * launcher_request - one program run through the launcher on fd, waiting at
 * most wait seconds for the answer.  Always fills res (PIPE_START_FAILED
 * with err when the launcher could not be asked or did not answer).
 */
void launcher_request(int fd, const struct delivery_values *v, int stdin_fd, long wait,
    struct pipe_result *res);

/*
 * launcher_send - the same request without waiting (a filter's caller
 * reads the filter's output meanwhile): stdout_fd > 0 is the write end of
 * a pipe for the program's standard output (filter.h), 0 for none.
 * Returns the socket the answer comes on, for launcher_answer once it is
 * readable; -1 with res filled when the request could not be made.
 */
int launcher_send(int fd, const struct delivery_values *v, int stdin_fd, int stdout_fd,
    struct pipe_result *res);
/* launcher_answer - read the answer from answer_fd (then closed) into res. */
void launcher_answer(int answer_fd, struct pipe_result *res);

/*
 * launcher_become - the root parent of privsep_start() (privsep.h) becomes
 * the launcher for child on sock: stdin/stdout/stderr to /dev/null, SIGTERM
 * and SIGINT passed on to the child, then launcher_serve().  Returns the
 * child's exit status.
 */
int launcher_become(int sock, const struct conf *c, const char *aliases_override,
    pid_t child, uid_t spool_uid);

#endif
