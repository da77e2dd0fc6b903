/* test_conf.c - conf.c: the schema, defaults, validation with line numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sys/wait.h>

#include "conf.h"
#include "unit.h"

static struct conf *
load(const char *text, struct collected *out)
{
	char *path = write_temp(text);
	struct diag d = {collect, out, 0};
	struct conf *c;

	out->text[0] = '\0';
	c = conf_load(path, 0, &d);
	unlink(path);
	free(path);
	return c;
}

/* The lines of checked keys are kept for --check-config (issue 19). */
static void
test_lines_of_checked_keys(void **state)
{
	struct collected out;
	struct conf *c;

	(void)state;
	c = load("hostname = \"mx.example.com\"\n"
	    "user = \"mail\"\n"
	    "pipe {\n  user = \"nobody\"\n}\n"
	    "alias \"rt\" {\n  timeout = 1m\n  user = \"rt\"\n}\n"
	    "smarthost \"isp\" {\n  port = 25\n  host = \"smtp.isp.test\"\n}\n"
	    "durable_spool = required\n", &out);
	assert_non_null(c);
	assert_int_equal(conf_line(c, "root", NULL, "user"), 2);
	assert_int_equal(conf_line(c, "pipe", NULL, "user"), 4);
	assert_int_equal(conf_line(c, "alias", "rt", "user"), 8);
	assert_int_equal(conf_line(c, "smarthost", "isp", "host"), 12);
	assert_int_equal(conf_line(c, "smarthost", "other", "host"), 0);
	assert_int_equal(conf_line(c, "root", NULL, "spool_dir"), 0);    /* default */
	assert_true(c->durable_spool_required);
	conf_free(c);
	assert_null(load("durable_spool = maybe\n", &out));
	assert_non_null(strstr(out.text, "1: durable_spool"));
	c = load("\n", &out);
	assert_false(c->durable_spool_required);
	conf_free(c);
}

static void
test_defaults(void **state)
{
	struct diag d = {NULL, NULL, 0};
	struct conf *c = conf_load("/nonexistent/undersmtpd.conf", 1, &d);

	(void)state;
	assert_non_null(c);
	assert_string_equal(c->aliases, "/etc/aliases");
	assert_string_equal(c->spool_dir, "/var/spool/undersmtpd");
	assert_string_equal(c->user, "mail");
	assert_int_equal(c->nlisten, 2);
	assert_int_equal(c->nrelay_networks, 2);
	assert_true(c->max_message_size == 25ULL * 1024 * 1024);
	assert_true(c->min_free_space == 100ULL * 1024 * 1024);
	assert_int_equal(c->timeout, 300);
	assert_int_equal(c->max_recipients, 100);
	assert_int_equal(c->unknown_local, UNKNOWN_REJECT);
	assert_int_equal(c->pipe.timeout, 300);
	assert_int_equal(c->pipe.policy, POLICY_SYNC);
	assert_int_equal(c->pipe.ntempfail, 3);
	assert_int_equal(c->pipe.max_concurrency, CONF_PIPE_MAX_CONCURRENCY);
	assert_int_equal(c->queue.lifetime, 5 * 86400);
	assert_int_equal(c->queue.bad_lifetime, 30 * 86400);
	assert_true(c->queue.run_after_accept);
	assert_int_equal(c->nlocal_domains, 2);
	assert_string_equal(c->local_domains[1], "localhost");
	conf_free(c);
	/* An explicit file that is missing is an error. */
	assert_null(conf_load("/nonexistent/undersmtpd.conf", 0, &d));
	assert_int_equal(d.errors, 1);
}

static void
test_full_example(void **state)
{
	struct collected out;
	struct conf *c = load(
	    "hostname = \"mx.example.com\"\n"
	    "local_domains = { \"Example.COM.\" }\n"
	    "relay_networks = { \"192.0.2.0/24\", \"2001:db8::/32\" }\n"
	    "recipient_delimiter = \"+-\"\n"
	    "max_message_size = 10M  timeout = 90s  unknown_local = relay\n"
	    "postmaster = \"admin@example.com\"\n"
	    "pipe { user = \"nobody\" timeout = 2m tempfail = { 75 } }\n"
	    "alias \"support\" { policy = sync timeout = 10m user = \"rt\" max_concurrency = 4 }\n"
	    "smarthost \"primary\" { host = \"smtp.isp.example\" port = 587 tls = starttls\n"
	    "  auth_user = \"me\" auth_password_file = \"/etc/secret\" rewrite_sender = \"me@isp.example\" }\n"
	    "smarthost \"backup\" { host = \"backup.isp.example\" tls = tls }\n"
	    "queue { retry_min = 1m retry_max = 1h lifetime = 5d run_after_accept = false }\n", &out);
	const struct pipe_conf *p;
	int fam;
	unsigned char ip[16];

	(void)state;
	assert_non_null(c);
	assert_string_equal(c->local_domains[0], "example.com");
	assert_true(conf_is_local_domain(c, "EXAMPLE.com."));
	assert_false(conf_is_local_domain(c, "example.org"));
	ip_parse("192.0.2.77", &fam, ip);
	assert_true(conf_relay_allowed(c, fam, ip));
	ip_parse("127.0.0.1", &fam, ip);
	assert_false(conf_relay_allowed(c, fam, ip));
	assert_true(c->max_message_size == 10ULL * 1024 * 1024);
	assert_int_equal(c->timeout, 90);
	assert_int_equal(c->unknown_local, UNKNOWN_RELAY);
	p = conf_pipe_for(c, "SUPPORT");
	assert_int_equal(p->timeout, 600);
	assert_string_equal(p->user, "rt");
	assert_int_equal(p->max_concurrency, 4);
	assert_int_equal(p->ntempfail, 1);       /* inherited from pipe {} */
	p = conf_pipe_for(c, "other");
	assert_int_equal(p->timeout, 120);
	assert_string_equal(p->user, "nobody");
	/* The global pool of all programs; an alias without a share of its own has none. */
	assert_int_equal(p->max_concurrency, CONF_PIPE_MAX_CONCURRENCY);
	assert_int_equal(c->alias_overrides[0].pipe.max_concurrency, 4);
	assert_int_equal(c->nsmarthosts, 2);
	assert_int_equal(c->smarthosts[0].port, 587);
	assert_int_equal(c->smarthosts[1].port, 465);  /* implicit TLS default */
	assert_int_equal(c->smarthosts[1].tls, TLSMODE_IMPLICIT);
	assert_false(c->queue.run_after_accept);
	conf_free(c);
}

static void
test_errors_with_lines(void **state)
{
	struct collected out;
	struct conf *c = load(
	    "# comment lines must not shift line numbers\n"
	    "max_message_size = lots\n"
	    "# another\n"
	    "relay_networks = { \"10.0.0.0/33\" }\n"
	    "pipe {\n"
	    "  policy = whenever\n"
	    "}\n"
	    "smarthost \"x\" { port = 0 }\n", &out);

	(void)state;
	assert_null(c);
	assert_non_null(strstr(out.text, "2: max_message_size: bad value 'lots'"));
	assert_non_null(strstr(out.text, "4: relay_networks: bad value '10.0.0.0/33'"));
	assert_non_null(strstr(out.text, "6: policy: bad value 'whenever'"));
	assert_non_null(strstr(out.text, "8: port: bad value '0'"));
}

static void
test_semantic_errors(void **state)
{
	struct collected out;

	(void)state;
	assert_null(load("smarthost \"x\" { port = 25 }\n", &out));
	assert_non_null(strstr(out.text, "host is not set"));
	assert_null(load("queue { retry_min = 2h retry_max = 1h }\n", &out));
	assert_non_null(strstr(out.text, "retry_min is longer than retry_max"));
	assert_null(load("tls { cert_file = \"/c\" }\n", &out));
	assert_non_null(strstr(out.text, "go together"));
	assert_null(load("unknown_key = 1\n", &out));
	assert_non_null(strstr(out.text, "1: no such option 'unknown_key'"));
	assert_null(load("hostname = \"unterminated\n", &out));
	assert_null(load("pipe { max_concurrency = 4 }\nalias \"rt\" { max_concurrency = 5 }\n",
	    &out));
	assert_non_null(strstr(out.text, "alias \"rt\": max_concurrency 5 is more than "
	    "pipe.max_concurrency 4"));
	assert_null(load("pipe { max_concurrency = 0 }\n", &out));
	{
		struct conf *c = load("pipe { max_concurrency = 4 }\nalias \"rt\" { timeout = 1m }\n",
		    &out);

		assert_non_null(c);
		assert_int_equal(conf_pipe_for(c, "rt")->max_concurrency, 0);
		conf_free(c);
	}
	/* Issue 15: every address-typed key is checked, with its line. */
	assert_null(load("# one\nlisten = { \"999.1.2.3:25\" }\n", &out));
	assert_non_null(strstr(out.text, "2: listen: bad value '999.1.2.3:25'"));
	assert_null(load("listen = { \"[::g]:25\" }\n", &out));
	assert_null(load("listen = { \"[10.0.0.1]:25\" }\n", &out));
	assert_null(load("listen = { \"bad_host!:25\" }\n", &out));
	assert_null(load("smarthost \"s\" { host = \"300.1.1.1\" }\n", &out));
	assert_non_null(strstr(out.text, "host: bad value '300.1.1.1'"));
	assert_null(load("client_networks = { \"10.0.0.0/40\" }\n", &out));
	assert_null(load("proxy_networks = { \"fe80::/129\" }\n", &out));
	{
		struct conf *c = load("listen = { \"127.0.0.1:25\", \"[::1]:25 proxy\", "
		    "\"localhost:2525\" }\nsmarthost \"s\" { host = \"smtp.example.net\" }\n"
		    "client_networks = { \"192.0.2.0/24\" }\n", &out);

		assert_non_null(c);
		assert_int_equal(c->nclient_networks, 1);
		assert_int_equal(c->nproxy_networks, 2);          /* loopback by default */
		conf_free(c);
	}
	{
		/* 0 turns these off (a bare 0, no unit needed). */
		struct conf *c = load("error_sleep = 0\nmax_session_time = 0\n"
		    "queue { bad_lifetime = 0 }\n", &out);

		assert_non_null(c);
		assert_int_equal(c->error_sleep, 0);
		assert_int_equal(c->max_session_time, 0);
		assert_int_equal(c->queue.bad_lifetime, 0);
		conf_free(c);
		assert_null(load("timeout = 0\n", &out));   /* not this one */
	}
	assert_null(load("pipe { policy = later }\n", &out));
	assert_non_null(strstr(out.text, "sync | queue | sync-then-queue"));
	{
		struct conf *c = load("pipe { policy = queue }\nalias \"rt\" { policy = "
		    "sync-then-queue }\n", &out);

		assert_non_null(c);
		assert_int_equal(c->pipe.policy, POLICY_QUEUE);
		assert_int_equal(conf_pipe_for(c, "rt")->policy, POLICY_SYNC_THEN_QUEUE);
		conf_free(c);
	}
}

static void
test_hash_inside_string_kept(void **state)
{
	struct collected out;
	struct conf *c = load("log_file = \"/var/log/a#b\" # trailing comment\n", &out);

	(void)state;
	assert_non_null(c);
	assert_string_equal(c->log_file, "/var/log/a#b");
	conf_free(c);
}

/* hostname goes into the greeting and EHLO: a domain name or nothing. */
static void
test_hostname_must_be_a_domain(void **state)
{
	static const char *const bad[] = {"\"\"", "\"mail.example.com.\"", "\"a b\"",
	    "\"x\\r\\n250 evil\"", "\"[127.0.0.1]\"", "\"-mail.example.com\""};
	struct collected out;
	char text[128];
	struct conf *c;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "hostname = %s\n", bad[i]);
		assert_null(load(text, &out));
		assert_non_null(strstr(out.text, "1: hostname: bad value"));
		assert_non_null(strstr(out.text, "not a domain name"));
		/* The report names the value without its control characters. */
		assert_null(strpbrk(out.text, "\r\x1b"));
		assert_int_equal(strchr(out.text, '\n') - out.text, strlen(out.text) - 1);
	}
	c = load("hostname = \"Mail-1.example.com\"\n", &out);
	assert_non_null(c);
	assert_string_equal(c->hostname, "Mail-1.example.com");
	conf_free(c);
}

/* padded - hostname = "<host>" after comment lines, size bytes in all. */
static char *
padded(size_t size, const char *host)
{
	char tail[128];
	size_t tlen = (size_t)snprintf(tail, sizeof(tail), "hostname = \"%s\"\n", host);
	char *text = malloc(size + 1);

	assert_non_null(text);
	assert_true(size > tlen + 2);
	memset(text, 'x', size - tlen);
	for (size_t i = 0; i < size - tlen; i += 64) {
		text[i] = '#';
		if (i + 63 < size - tlen)
			text[i + 63] = '\n';
	}
	text[size - tlen - 1] = '\n';
	memcpy(text + size - tlen, tail, tlen + 1);
	return text;
}

/* A file of up to 1 MiB loads whatever its size; one byte more is refused. */
static void
test_file_size_limit(void **state)
{
	static const size_t sizes[] = {4095, 4096, 4097, 100000, 1024 * 1024};
	struct collected out;

	(void)state;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *text = padded(sizes[i], "big.example");
		struct conf *c = load(text, &out);

		assert_int_equal(strlen(text), sizes[i]);
		assert_non_null(c);
		assert_string_equal(c->hostname, "big.example");
		conf_free(c);
		free(text);
	}
	{
		char *text = padded(1024 * 1024 + 1, "big.example");

		assert_null(load(text, &out));
		assert_non_null(strstr(out.text, "larger than 1 MiB"));
		free(text);
	}
}

/* A configuration read from a pipe (-f /dev/stdin, a FIFO) grows its buffer. */
static void
test_file_from_fifo(void **state)
{
	char dir[] = "/tmp/undersmtpd-unit-XXXXXX", path[64];
	char *text = padded(300000, "fifo.example");
	struct diag d = {NULL, NULL, 0};
	struct conf *c;
	int status;
	pid_t pid;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/conf", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_WRONLY);
		size_t len = strlen(text);

		_exit(fd >= 0 && write(fd, text, len) == (ssize_t)len ? 0 : 1);
	}
	c = conf_load(path, 0, &d);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_non_null(c);
	assert_string_equal(c->hostname, "fifo.example");
	conf_free(c);
	unlink(path);
	rmdir(dir);
	free(text);
}

/* TESTCATALOGUE T107 */
static void
test_root_reads_only_roots_file(void **state)
{
	char *path;
	struct collected out;
	struct diag d = {collect, &out, 0};
	struct conf *c;

	(void)state;
	if (geteuid() != 0)
		skip();
	path = write_temp("hostname = \"mx.example.com\"\n");
	memset(&out, 0, sizeof(out));
	/* The launcher reads it as root: it says which accounts programs run as. */
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_null(conf_load(path, 0, &d));
	assert_non_null(strstr(out.text, "owned by uid 65534 or writable by group or others"));
	assert_int_equal(chown(path, 0, 0), 0);
	assert_int_equal(chmod(path, 0664), 0);
	assert_null(conf_load(path, 0, &d));
	assert_int_equal(chmod(path, 0644), 0);
	c = conf_load(path, 0, &d);
	assert_non_null(c);
	conf_free(c);
	unlink(path);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full_example),
		cmocka_unit_test(test_errors_with_lines),
		cmocka_unit_test(test_semantic_errors),
		cmocka_unit_test(test_hash_inside_string_kept),
		cmocka_unit_test(test_lines_of_checked_keys),
		cmocka_unit_test(test_hostname_must_be_a_domain),
		cmocka_unit_test(test_file_size_limit),
		cmocka_unit_test(test_file_from_fifo),
		cmocka_unit_test(test_root_reads_only_roots_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
