/*
 * fuzz_smtpc.c - libFuzzer: the smarthost client against any reply stream.
 *
 * Each input is everything a hostile or broken smarthost says, sent at once
 * on a real loopback connection: the greeting, the EHLO reply (its keywords
 * are parsed), the replies to MAIL, RCPT, DATA and the final dot.  The
 * client (smtpc_open + smtpc_send, the code the queue runner uses) must end
 * with a reply for every recipient, never read out of bounds or hang.  An
 * input that mentions AUTH meets a client configured to authenticate
 * (auth_user, a password file, auth_plaintext), so the AUTH PLAIN/LOGIN
 * exchange is fuzzed too; the others meet one that does not.
 */
#define _GNU_SOURCE             /* memmem */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "smtpc.h"
#include "spool.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int listener = -1;
static struct conf *conf, *conf_auth;
static char secret[] = "/tmp/undersmtpd-fuzz-smtpc-secret-XXXXXX";
static struct spool_env env;
static int msgfd = -1;

static void
quiet(void *ctx, const char *file, int line, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "%s:%d: %s\n", file, line, msg);
}

static void
remove_secret(void)
{
	unlink(secret);
}

struct script {
	const uint8_t *data;
	size_t size;
};

/*
 * One smarthost thread for the whole run, handed each input in turn: a
 * thread per input grew the sanitizer's thread registry (which never reuses
 * an entry) by some 190 bytes an input, a gigabyte an hour.
 */
static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static const struct script *pending;    /* the input to serve; NULL when served */

/* serve - the smarthost says everything at once, then closes; never reads. */
static void
serve(const struct script *sp)
{
	int server = accept(listener, NULL, NULL);

	if (server < 0)
		return;
	for (size_t off = 0; off < sp->size;) {
		ssize_t n = write(server, sp->data + off, sp->size - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(server, SHUT_WR);
	/* Hold the socket until the client is done, so its writes succeed. */
	{
		char sink[4096];

		while (read(server, sink, sizeof(sink)) > 0)
			;
	}
	close(server);
}

static void *
smarthost(void *arg)
{
	(void)arg;
	for (;;) {
		const struct script *sp;

		pthread_mutex_lock(&turn_lock);
		while (pending == NULL)
			pthread_cond_wait(&turn_changed, &turn_lock);
		sp = pending;
		pthread_mutex_unlock(&turn_lock);
		serve(sp);
		pthread_mutex_lock(&turn_lock);
		pending = NULL;
		pthread_cond_broadcast(&turn_changed);
		pthread_mutex_unlock(&turn_lock);
	}
	return NULL;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct diag d = {quiet, NULL, 0};
	char path[] = "/tmp/undersmtpd-fuzz-smtpc-XXXXXX";
	char text[512], msg[] = "Subject: fuzz\n\nbody\n.leading dot\n";
	FILE *fp;
	int fd;

	(void)argc;
	(void)argv;
	log_open("fuzz_smtpc", LOG_TO_SYSLOG, NULL, 0);   /* no /dev/log: quiet */
	listener = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (listener < 0 || bind(listener, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(listener, 16) < 0 ||
	    getsockname(listener, (struct sockaddr *)&sin, &len) < 0)
		abort();
	fd = mkstemp(secret);           /* mode 0600, as read_secret wants */
	if (fd < 0 || write(fd, "pw\n", 3) != 3 || close(fd) != 0)
		abort();
	atexit(remove_secret);
	for (int with_auth = 0; with_auth < 2; with_auth++) {
		str_copy(path, sizeof(path), "/tmp/undersmtpd-fuzz-smtpc-XXXXXX");
		fd = mkstemp(path);
		if (fd < 0 || (fp = fdopen(fd, "w")) == NULL)
			abort();
		snprintf(text, sizeof(text), "hostname = \"fuzz.test\"\nspool_dir = \"/tmp\"\n"
		    "smarthost \"fuzz\" { host = \"127.0.0.1\" port = %d tls = none timeout = 2s "
		    "%s%s%s}\n", ntohs(sin.sin_port),
		    with_auth ? "auth_user = \"fuzzer\" auth_plaintext = true "
		    "auth_password_file = \"" : "", with_auth ? secret : "", with_auth ? "\" " : "");
		fputs(text, fp);
		fclose(fp);
		*(with_auth ? &conf_auth : &conf) = conf_load(path, 0, &d);
		unlink(path);
	}
	if (conf == NULL || conf_auth == NULL)
		abort();
	memset(&env, 0, sizeof(env));
	str_copy(env.id, sizeof(env.id), "FUZZ");
	str_copy(env.sender, sizeof(env.sender), "a@fuzz.test");
	spool_add_rcpt(&env, "b@remote.example", "b@remote.example");
	spool_add_rcpt(&env, "c@remote.example", "c@remote.example");
	env.size = sizeof(msg) - 1;
	msgfd = fileno(tmpfile());
	if (msgfd < 0 || write(msgfd, msg, sizeof(msg) - 1) != (ssize_t)(sizeof(msg) - 1))
		abort();
	{
		pthread_t t;

		if (pthread_create(&t, NULL, smarthost, NULL) != 0 || pthread_detach(t) != 0)
			abort();
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct script sp = {data, size};
	struct smtpc sc;
	struct smtpc_reply err, rep[2];
	size_t idx[2] = {0, 1};

	pthread_mutex_lock(&turn_lock);
	pending = &sp;
	pthread_cond_broadcast(&turn_changed);
	pthread_mutex_unlock(&turn_lock);
	smtpc_init(&sc, memmem(data, size, "AUTH", 4) != NULL ? conf_auth : conf);
	memset(rep, 0, sizeof(rep));
	if (smtpc_open(&sc, &err) == 0) {
		smtpc_send(&sc, &env, msgfd, idx, 2, rep);
		for (int i = 0; i < 2; i++)
			if (rep[i].code < 200 || rep[i].code > 599)
				abort();        /* every recipient gets an answer */
	} else if (err.code < 400 || err.code > 599) {
		abort();
	}
	smtpc_close(&sc);
	pthread_mutex_lock(&turn_lock);
	while (pending != NULL)
		pthread_cond_wait(&turn_changed, &turn_lock);
	pthread_mutex_unlock(&turn_lock);
	return 0;
}
