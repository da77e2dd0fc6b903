/*
 * test_envelope.c - envelope.c: queue ids, our Received: header, the message
 * file streamed into spool_dir/tmp and removed at the end, the digest behind
 * DELIVERY_ID, recipients and smarthost destinations, and envelope_spool's
 * committed message read back with spool.h.
 */
#define _XOPEN_SOURCE 700        /* strptime: check the Received date */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <time.h>

#include "delivery.h"
#include "envelope.h"
#include "spool.h"
#include "unit.h"

struct fixture {
	char dir[64];
	struct conf c;
	struct envelope e;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char why[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/undersmtpd-envelope-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->c.hostname = "mx.example.com";
	f->c.spool_dir = f->dir;
	if (spool_prepare_top(&f->c, getuid(), getgid(), why, sizeof(why)) < 0 ||
	    spool_prepare(&f->c, why, sizeof(why)) < 0) {
		fprintf(stderr, "spool: %s\n", why);
		return -1;
	}
	envelope_init(&f->e);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	envelope_reset(&f->e);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* slurp - a whole file (malloc'd, NUL-terminated; *len without the NUL). */
static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "r");
	size_t cap = 1 << 20, n;
	char *text = malloc(cap + 1);

	assert_non_null(fp);
	n = fread(text, 1, cap, fp);
	text[n] = '\0';
	fclose(fp);
	if (len != NULL)
		*len = n;
	return text;
}

static void
add_rcpt(struct envelope *e, const char *text, int pipe)
{
	struct addr a;

	assert_int_equal(addr_parse_plain(text, &a), ADDR_OK);
	envelope_add_rcpt(e, &a, pipe);
}

static size_t
count_files(const char *dir, const char *sub)
{
	char cmd[256], out[32];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls -A '%s/%s' | wc -l", dir, sub);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, sizeof(out), p));
	pclose(p);
	return (size_t)atol(out);
}

/* header_end - the Received: field (up to the first line that is not folded). */
static size_t
header_end(const char *text)
{
	const char *p = text;

	for (;;) {
		const char *lf = strchr(p, '\n');

		assert_non_null(lf);
		p = lf + 1;
		if (*p != '\t' && *p != ' ')
			return (size_t)(p - text);
	}
}

static void
test_queue_ids(void **state)
{
	/* 12 upper-case hex digits, never twice (T63: they name spool files). */
	enum { N = 2000 };
	static char ids[N][QUEUE_ID_LEN + 1];
	struct envelope e;

	(void)state;
	for (int i = 0; i < N; i++) {
		envelope_init(&e);
		assert_int_equal(envelope_new_id(&e), 0);
		assert_int_equal(strlen(e.id), QUEUE_ID_LEN);
		for (int k = 0; k < QUEUE_ID_LEN; k++)
			assert_true(isdigit((unsigned char)e.id[k]) ||
			    (e.id[k] >= 'A' && e.id[k] <= 'F'));
		memcpy(ids[i], e.id, sizeof(e.id));
	}
	qsort(ids, N, sizeof(ids[0]), (int (*)(const void *, const void *))strcmp);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
}

static void
test_received_one_recipient(void **state)
{
	/* T16: FROM has the EHLO name and [IP], BY our name, FOR the one recipient. */
	struct fixture *f = *state;
	struct envelope_client cl = {"client.example.org", "192.0.2.1", "ESMTP", -1};
	char want[512], *text, *semi;
	struct tm tm;
	size_t len, hlen;
	time_t now = time(NULL), t;

	assert_int_equal(envelope_new_id(&f->e), 0);
	add_rcpt(&f->e, "Bob@Example.COM", 0);
	assert_int_equal(envelope_open_message(&f->e, &f->c, &cl), 0);
	text = slurp(f->e.msg_path, &len);
	snprintf(want, sizeof(want), "Received: from client.example.org ([192.0.2.1])\n"
	    "\tby mx.example.com (undersmtpd) with ESMTP id %s\n\tfor <Bob@example.com>; ",
	    f->e.id);
	assert_int_equal(strncmp(text, want, strlen(want)), 0);
	hlen = header_end(text);
	assert_int_equal(hlen, len);          /* nothing else yet: the header alone */
	assert_int_equal(text[len - 1], '\n');
	/* The date after "; " is an RFC 5322 date, now. */
	semi = strrchr(text, ';');
	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(semi + 2, "%a, %d %b %Y %H:%M:%S %z", &tm));
	tm.tm_isdst = -1;
	t = mktime(&tm);
	assert_true(t > now - 86400 && t < now + 86400);
	/* Folded lines only: every line after the first starts with a tab. */
	for (const char *p = strchr(text, '\n') + 1; p < text + len; p = strchr(p, '\n') + 1)
		assert_int_equal(*p, '\t');
	assert_null(strchr(text, '\r'));
	free(text);
}

static void
test_received_variants(void **state)
{
	struct fixture *f = *state;
	struct envelope_client smtp = {"", "2001:db8::1", "SMTP", -1};
	struct envelope_client local = {"localhost", "127.0.0.1", "local", 1000};
	char want[256], *text;

	/* Two recipients: no FOR (it would tell each one the other). Empty HELO: unknown. */
	assert_int_equal(envelope_new_id(&f->e), 0);
	add_rcpt(&f->e, "a@example.com", 0);
	add_rcpt(&f->e, "b@example.com", 0);
	assert_int_equal(envelope_open_message(&f->e, &f->c, &smtp), 0);
	text = slurp(f->e.msg_path, NULL);
	snprintf(want, sizeof(want), "Received: from unknown ([2001:db8::1])\n"
	    "\tby mx.example.com (undersmtpd) with SMTP id %s; ", f->e.id);
	assert_int_equal(strncmp(text, want, strlen(want)), 0);
	assert_null(strstr(text, "for <"));
	free(text);
	envelope_reset(&f->e);
	/* sendmail: who submitted it, by user id. */
	assert_int_equal(envelope_new_id(&f->e), 0);
	add_rcpt(&f->e, "a@example.com", 0);
	assert_int_equal(envelope_open_message(&f->e, &f->c, &local), 0);
	text = slurp(f->e.msg_path, NULL);
	snprintf(want, sizeof(want), "Received: by mx.example.com (undersmtpd, from userid "
	    "1000)\n\tid %s\n\tfor <a@example.com>; ", f->e.id);
	assert_int_equal(strncmp(text, want, strlen(want)), 0);
	free(text);
}

static void
test_received_no_injection(void **state)
{
	/*
	 * T42: the Received header never carries a raw CR or LF, whoever hands
	 * the envelope a HELO name (SMTP refuses them at the command line; this
	 * module is shared by every way mail comes in).
	 */
	struct fixture *f = *state;
	struct envelope_client cl = {"evil\r\nX-Injected: 1\r\n\tby fake", "192.0.2.1",
	    "ESMTP", -1};
	char *text;
	size_t len, hlen;

	assert_int_equal(envelope_new_id(&f->e), 0);
	add_rcpt(&f->e, "bob@example.com", 0);
	assert_int_equal(envelope_open_message(&f->e, &f->c, &cl), 0);
	text = slurp(f->e.msg_path, &len);
	hlen = header_end(text);
	assert_int_equal(hlen, len);          /* one field, nothing after it */
	assert_null(strchr(text, '\r'));
	assert_null(strstr(text, "\nX-Injected"));
	assert_int_equal(count_lines(text), 3);   /* from, by, for: no line of the client's */
	assert_non_null(strstr(text, "Received: from evil??X-Injected: 1???by fake ([192.0.2.1])\n"));
	free(text);
	envelope_reset(&f->e);
	/* A HELO name longer than SMTP allows: cut, and the header still whole. */
	{
		char longhelo[400], want[64];
		struct envelope_client lc = {longhelo, "192.0.2.1", "ESMTP", -1};

		memset(longhelo, 'h', sizeof(longhelo) - 1);
		longhelo[sizeof(longhelo) - 1] = '\0';
		assert_int_equal(envelope_new_id(&f->e), 0);
		add_rcpt(&f->e, "bob@example.com", 0);
		assert_int_equal(envelope_open_message(&f->e, &f->c, &lc), 0);
		text = slurp(f->e.msg_path, &len);
		assert_int_equal(header_end(text), len);
		snprintf(want, sizeof(want), " id %s\n\tfor <bob@example.com>; ", f->e.id);
		assert_non_null(strstr(text, want));
		free(text);
	}
}

static void
test_message_streamed_and_removed(void **state)
{
	/* The client's bytes land after our header byte for byte, NUL, 8-bit and all. */
	struct fixture *f = *state;
	struct envelope_client cl = {"c.example", "192.0.2.7", "ESMTP", -1};
	struct data_sink sink;
	size_t big = 70000, mlen = 0, len, hlen;
	char *msg = malloc(200000), *text, path[4096];
	struct stat st;
	int fd;

	assert_int_equal(envelope_new_id(&f->e), 0);
	add_rcpt(&f->e, "bob@example.com", 0);
	assert_int_equal(envelope_open_message(&f->e, &f->c, &cl), 0);
	/* In spool_dir/tmp, named by the id, ours alone, and locked while alive. */
	snprintf(path, sizeof(path), "%s/tmp/%s.msg", f->dir, f->e.id);
	assert_string_equal(f->e.msg_path, path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	close(fd);
	sink = envelope_sink(&f->e);
	for (int i = 0; i < 300; i++) {
		char line[100];
		int n = snprintf(line, sizeof(line), "line %d \xc3\xa9 ok\r\n", i);

		if (i == 7)
			line[3] = '\0';
		memcpy(msg + mlen, line, (size_t)n);
		assert_int_equal(sink.write(sink.ctx, line, (size_t)n), 0);
		mlen += (size_t)n;
	}
	memset(msg + mlen, 'B', big);       /* one write larger than the buffer */
	assert_int_equal(sink.write(sink.ctx, msg + mlen, big), 0);
	mlen += big;
	assert_int_equal(sink.write(sink.ctx, "end\r\n", 5), 0);
	memcpy(msg + mlen, "end\r\n", 5);
	mlen += 5;
	assert_int_equal(envelope_finish_message(&f->e), 0);
	text = slurp(path, &len);
	hlen = header_end(text);
	assert_int_equal(len, hlen + mlen);
	assert_memory_equal(text + hlen, msg, mlen);
	free(text);
	/* The end of the transaction removes it, whatever its outcome (T12). */
	envelope_reset(&f->e);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(f->e.msg_fd, -1);
	assert_int_equal(f->e.nrcpts, 0);
	assert_int_equal(count_files(f->dir, "tmp"), 0);
	free(msg);
}

static void
test_same_id_never_clobbers(void **state)
{
	/* T63: O_EXCL; and the loser's reset must not remove the winner's file. */
	struct fixture *f = *state;
	struct envelope_client cl = {"c.example", "192.0.2.7", "ESMTP", -1};
	struct envelope other;
	char path[4096], *text;

	assert_int_equal(envelope_new_id(&f->e), 0);
	assert_int_equal(envelope_open_message(&f->e, &f->c, &cl), 0);
	str_copy(path, sizeof(path), f->e.msg_path);
	envelope_init(&other);
	memcpy(other.id, f->e.id, sizeof(other.id));
	assert_int_equal(envelope_open_message(&other, &f->c, &cl), -1);
	assert_int_equal(errno, EEXIST);
	envelope_reset(&other);
	assert_int_equal(access(path, F_OK), 0);
	text = slurp(path, NULL);
	assert_non_null(strstr(text, "Received: from c.example"));
	free(text);
	/* No tmp/ at all: -1 with errno, nothing to remove later. */
	{
		struct conf broken = f->c;
		char nodir[128];

		snprintf(nodir, sizeof(nodir), "%s/absent", f->dir);
		broken.spool_dir = nodir;
		envelope_init(&other);
		assert_int_equal(envelope_new_id(&other), 0);
		assert_int_equal(envelope_open_message(&other, &broken, &cl), -1);
		assert_int_equal(errno, ENOENT);
		assert_int_equal(other.msg_path[0], '\0');
		envelope_reset(&other);
	}
}

/* message - one transaction's message through the sink; its digest. */
static void
message(struct fixture *f, const char *helo, const char *body, unsigned char out[32])
{
	struct envelope_client cl = {helo, "192.0.2.9", "ESMTP", -1};
	struct data_sink sink;

	envelope_reset(&f->e);
	assert_int_equal(envelope_new_id(&f->e), 0);
	add_rcpt(&f->e, "bob@example.com", 0);
	assert_int_equal(envelope_open_message(&f->e, &f->c, &cl), 0);
	sink = envelope_sink(&f->e);
	assert_int_equal(sink.write(sink.ctx, body, strlen(body)), 0);
	assert_int_equal(envelope_finish_message(&f->e), 0);
	memcpy(out, f->e.digest, 32);
}

static void
test_digest_and_delivery_id(void **state)
{
	/*
	 * DELIVERY_ID (SPEC 7): the same message retried by the client has the
	 * same id for the same recipient - the digest covers the client's
	 * message only, not our Received: (new queue id, new time).
	 */
	struct fixture *f = *state;
	const char *body = "Subject: retry\r\n\r\nsame text\r\n";
	unsigned char d1[32], d2[32], d3[32], want[32];
	unsigned int wlen = 0;
	char id1[33], id2[33], id3[33], id4[33];

	message(f, "first.example", body, d1);
	message(f, "second.example", body, d2);
	assert_memory_equal(d1, d2, 32);
	assert_int_equal(EVP_Digest(body, strlen(body), want, &wlen, EVP_sha256(), NULL), 1);
	assert_memory_equal(d1, want, 32);
	message(f, "first.example", "Subject: retry\r\n\r\nother text\r\n", d3);
	assert_memory_not_equal(d1, d3, 32);
	delivery_id(d1, "bob@example.com", id1);
	delivery_id(d2, "bob@example.com", id2);
	delivery_id(d1, "carol@example.com", id3);
	delivery_id(d3, "bob@example.com", id4);
	assert_int_equal(strlen(id1), 32);
	assert_string_equal(id1, id2);
	assert_string_not_equal(id1, id3);
	assert_string_not_equal(id1, id4);
}

static void
test_recipients(void **state)
{
	/* T9: many recipients, each kept as written (normalised), none lost on growth. */
	struct fixture *f = *state;
	char text[64];

	add_rcpt(&f->e, "Support+42@Example.COM", 1);
	add_rcpt(&f->e, "\"odd local\"@example.com", 0);
	for (int i = 0; i < 1000; i++) {
		snprintf(text, sizeof(text), "user%d@example.net", i);
		add_rcpt(&f->e, text, 0);
	}
	assert_int_equal(f->e.nrcpts, 1002);
	assert_string_equal(f->e.rcpts[0].text, "Support+42@example.com");
	assert_string_equal(f->e.rcpts[0].addr.local, "Support+42");
	assert_int_equal(f->e.rcpts[0].pipe, 1);
	assert_int_equal(f->e.rcpts[0].program, 1);
	assert_string_equal(f->e.rcpts[1].text, "\"odd local\"@example.com");
	assert_int_equal(f->e.rcpts[1].pipe, 0);
	assert_int_equal(f->e.rcpts[1].program, 0);
	for (int i = 0; i < 1000; i++) {
		snprintf(text, sizeof(text), "user%d@example.net", i);
		assert_string_equal(f->e.rcpts[i + 2].text, text);
	}
	/* Smarthost destinations: once per address, whatever its case. */
	envelope_add_dest(&f->e, "bob@example.net", "Bob@Example.NET");
	envelope_add_dest(&f->e, "BOB@example.NET", "bob@example.net");
	envelope_add_dest(&f->e, "carol@example.net", "carol@example.net");
	assert_int_equal(f->e.ndests, 2);
	assert_string_equal(f->e.dests[0].orig, "Bob@Example.NET");
	envelope_reset(&f->e);
	assert_int_equal(f->e.nrcpts, 0);
	assert_int_equal(f->e.ndests, 0);
	assert_null(f->e.rcpts);
}

static void
test_spool_commit_read_back(void **state)
{
	/* T42/T57: the committed envelope is exactly the accepted one. */
	struct fixture *f = *state;
	struct envelope_client cl = {"client.example.org", "192.0.2.1", "ESMTP", -1};
	const char *body = "Subject: spooled\r\n\r\nhello \xe2\x82\xac\r\n";
	struct data_sink sink;
	struct spool_env env;
	char why[256], path[4096], tmp[4096], *text, **ids;
	size_t len, hlen;
	time_t now = time(NULL);

	assert_int_equal(envelope_new_id(&f->e), 0);
	assert_int_equal(addr_parse_plain("alice+x=y@example.org", &f->e.sender), ADDR_OK);
	str_copy(f->e.sender_text, sizeof(f->e.sender_text), "alice+x=y@example.org");
	f->e.params.smtputf8 = 1;
	f->e.params.body_8bit = 1;
	add_rcpt(&f->e, "bob@example.net", 0);
	add_rcpt(&f->e, "carol@example.net", 0);
	envelope_add_dest(&f->e, "bob@example.net", "Bob@Example.NET");
	envelope_add_dest(&f->e, "carol@example.net", "carol@example.net");
	assert_int_equal(envelope_open_message(&f->e, &f->c, &cl), 0);
	str_copy(tmp, sizeof(tmp), f->e.msg_path);
	sink = envelope_sink(&f->e);
	assert_int_equal(sink.write(sink.ctx, body, strlen(body)), 0);
	assert_int_equal(envelope_finish_message(&f->e), 0);
	assert_int_equal(envelope_spool(&f->e, &f->c, &cl, strlen(body)), 0);
	assert_int_equal(access(tmp, F_OK), -1);          /* moved out of tmp/ */
	assert_int_equal(spool_read(&f->c, f->e.id, &env, why, sizeof(why)), 0);
	assert_string_equal(env.id, f->e.id);
	assert_string_equal(env.sender, "alice+x=y@example.org");
	assert_int_equal(env.nrcpts, 2);
	assert_string_equal(env.rcpts[0].addr, "bob@example.net");
	assert_string_equal(env.rcpts[0].orig, "Bob@Example.NET");
	assert_string_equal(env.rcpts[1].addr, "carol@example.net");
	assert_int_equal(env.rcpts[0].state, RCPT_PENDING);
	assert_int_equal(env.rcpts[0].attempts, 0);
	assert_string_equal(env.client, "192.0.2.1");
	assert_string_equal(env.helo, "client.example.org");
	assert_true(env.size == strlen(body));
	assert_int_equal(env.smtputf8, 1);
	assert_int_equal(env.body8bit, 1);
	assert_int_equal(env.bounce, 0);
	assert_true(env.created >= now - 5 && env.created <= now + 5);
	assert_true(env.next_try <= env.created);          /* due at once */
	assert_memory_equal(env.digest, f->e.digest, 32);
	spool_env_free(&env);
	spool_path(&f->c, "queue", f->e.id, ".msg", path, sizeof(path));
	text = slurp(path, &len);
	hlen = header_end(text);
	assert_int_equal(strncmp(text, "Received: from client.example.org", 33), 0);
	assert_int_equal(len - hlen, strlen(body));
	assert_memory_equal(text + hlen, body, strlen(body));
	free(text);
	ids = spool_ids(&f->c);
	assert_string_equal(ids[0], f->e.id);
	assert_null(ids[1]);
	spool_ids_free(ids);
	/* The end of the transaction leaves the queued message alone. */
	envelope_reset(&f->e);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(count_files(f->dir, "tmp"), 0);
}

static void
test_spool_too_many_destinations(void **state)
{
	/* Over the spool's recipient limit: E2BIG, nothing queued, tmp removed at end. */
	struct fixture *f = *state;
	struct envelope_client cl = {"c.example", "192.0.2.1", "ESMTP", -1};
	char addr[64];

	assert_int_equal(envelope_new_id(&f->e), 0);
	str_copy(f->e.sender_text, sizeof(f->e.sender_text), "a@example.org");
	assert_int_equal(envelope_open_message(&f->e, &f->c, &cl), 0);
	assert_int_equal(envelope_finish_message(&f->e), 0);
	for (int i = 0; i <= SPOOL_MAX_RCPTS; i++) {
		snprintf(addr, sizeof(addr), "%d@example.net", i);
		envelope_add_dest(&f->e, addr, addr);
	}
	assert_int_equal(f->e.ndests, SPOOL_MAX_RCPTS + 1);
	assert_int_equal(envelope_spool(&f->e, &f->c, &cl, 0), -1);
	assert_int_equal(errno, E2BIG);
	assert_int_equal(count_files(f->dir, "queue"), 0);
	envelope_reset(&f->e);
	assert_int_equal(count_files(f->dir, "tmp"), 0);
}

static void
test_write_error_reported(void **state)
{
	/* T66: a write that fails (here the file size limit) is an error, never lost. */
	struct fixture *f = *state;
	struct envelope_client cl = {"c.example", "192.0.2.1", "ESMTP", -1};
	struct data_sink sink;
	struct rlimit old, low;
	char chunk[1000];
	int rc = 0, saved;

	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(envelope_new_id(&f->e), 0);
	assert_int_equal(envelope_open_message(&f->e, &f->c, &cl), 0);
	sink = envelope_sink(&f->e);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	low = old;
	low.rlim_cur = 4096;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
	for (int i = 0; i < 100 && rc == 0; i++)
		rc = sink.write(sink.ctx, chunk, sizeof(chunk));
	if (rc == 0)
		rc = envelope_finish_message(&f->e);
	saved = errno;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(rc, -1);
	assert_int_equal(saved, EFBIG);
}

int
main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queue_ids),
		T(test_received_one_recipient),
		T(test_received_variants),
		T(test_received_no_injection),
		T(test_message_streamed_and_removed),
		T(test_same_id_never_clobbers),
		T(test_digest_and_delivery_id),
		T(test_recipients),
		T(test_spool_commit_read_back),
		T(test_spool_too_many_destinations),
		T(test_write_error_reported),
	};

	envelope_warm_up();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
