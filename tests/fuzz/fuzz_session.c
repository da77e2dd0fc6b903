/*
 * fuzz_session.c - libFuzzer: a whole inetd session.  Each input is all a
 * client says, on a real socket (a socketpair: the session's fds, as inetd
 * gives them); the session runs the real state machine, DATA reader,
 * routing, the spool for relayed mail and programs behind pipe aliases
 * (accepting, refusing, failing for now, not starting; run in session or
 * spooled by their policy), until the input ends.  Spooled messages are removed after each
 * input.  Sanitizers catch any bad access; the session must always end.
 */
#define _XOPEN_SOURCE 700          /* nftw */
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aliases.h"
#include "conf.h"
#include "log.h"
#include "smtpd.h"
#include "spool.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct conf *conf;
static struct aliases *aliases;
static char base_dir[64];

static void
report(void *ctx, const char *file, int line, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "%s:%d: %s\n", file, line, msg);
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0)
		abort();
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* remove_base - the spool and files of this run go when libFuzzer exits. */
static void
remove_base(void)
{
	nftw(base_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct diag d = {report, NULL, 0};
	char path[256], text[1024], why[512];

	(void)argc;
	(void)argv;
	log_open("fuzz_session", LOG_TO_SYSLOG, NULL, 0);   /* no /dev/log: quiet */
	/* On tmpfs when there is one: the spool's fsyncs made the disk, not the
	 * session, the fuzzer's bottleneck (half its time in I/O wait). */
	snprintf(base_dir, sizeof(base_dir), "/dev/shm/undersmtpd-fuzz-session-XXXXXX");
	if (mkdtemp(base_dir) == NULL) {
		snprintf(base_dir, sizeof(base_dir), "/tmp/undersmtpd-fuzz-session-XXXXXX");
		if (mkdtemp(base_dir) == NULL)
			abort();
	}
	atexit(remove_base);
	snprintf(path, sizeof(path), "%s/aliases", base_dir);
	/* Programs for every outcome: accepted, refused, temporary (by exit
	 * status, and by failing to start), and two that the policy spools. */
	write_file(path, "true: \"|/bin/true\"\nlist: a@example.com, b@remote.example\n"
	    "false: \"|/bin/false\"\nlater: \"|/bin/true; exit 75\"\n"
	    "nosuch: \"|/nonexistent/undersmtpd-fuzz\"\n"
	    "retry: \"|/bin/true; exit 75\"\nqueued: \"|/bin/true\"\n"
	    "/^re-(.*)$/: \"|/bin/true $1\"\n");
	snprintf(text, sizeof(text), "hostname = \"fuzz.test\"\n"
	    "local_domains = { \"example.com\" }\naliases = \"%s/aliases\"\n"
	    "spool_dir = \"%s/spool\"\nmin_free_space = 0\nmax_message_size = 64k\n"
	    "error_sleep = 0\n"
	    "relay_networks = { \"127.0.0.0/8\" }\n"
	    "smarthost \"s\" { host = \"127.0.0.1\" port = 9 tls = none }\n"
	    "queue { run_after_accept = false }\npipe { user = \"nobody\" timeout = 5s }\n"
	    "alias \"retry\" { policy = sync-then-queue }\n"
	    "alias \"queued\" { policy = queue }\n",
	    base_dir, base_dir);
	snprintf(path, sizeof(path), "%s/undersmtpd.conf", base_dir);
	write_file(path, text);
	conf = conf_load(path, 0, &d);
	if (conf == NULL || spool_prepare_top(conf, geteuid(), getegid(), why, sizeof(why)) < 0 ||
	    spool_prepare(conf, why, sizeof(why)) < 0)
		abort();
	aliases = aliases_load(conf->aliases, geteuid(), &d);
	if (aliases == NULL)
		abort();
	return 0;
}

/* empty_queue - what the session spooled goes, so the disk stays as it was. */
static void
empty_queue(void)
{
	char **ids = spool_ids(conf);

	for (size_t i = 0; ids != NULL && ids[i] != NULL; i++)
		spool_remove(conf, ids[i], 0);
	spool_ids_free(ids);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const volatile int never = 0;
	struct smtpd_env env;
	int sv[2];
	char drain[65536];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	if (size > 0 && write(sv[1], data, size) != (ssize_t)size)
		abort();
	shutdown(sv[1], SHUT_WR);
	memset(&env, 0, sizeof(env));
	env.conf = conf;
	env.aliases = aliases;
	env.ps.aliases_owner = geteuid();
	env.ps.session_uid = geteuid();
	/* As root without a launcher process: pipe_run forks the program and
	 * switches it to pipe.user itself, as the launcher would. */
	env.ps.running_as_root = geteuid() == 0;
	env.ps.launcher_fd = -1;
	env.in_fd = env.out_fd = sv[0];
	env.client_family = AF_INET;
	env.client_ip[0] = 127;
	env.client_ip[3] = 1;
	str_copy(env.client_text, sizeof(env.client_text), "127.0.0.1");
	env.terminate = &never;
	/*
	 * A whole session arrives at once, so text after DATA is always there
	 * before the 354 (refused from network clients, RFC 2920): the first
	 * byte's low bit makes it a local submission (sendmail -bs), which may.
	 */
	env.local_submission = size > 0 && (data[0] & 1);
	smtpd_session(&env);
	aliases = env.aliases;          /* the session may have reloaded them */
	close(sv[0]);
	while (read(sv[1], drain, sizeof(drain)) > 0)
		;
	close(sv[1]);
	empty_queue();
	return 0;
}
