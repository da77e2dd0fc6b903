/*
 * test_stats.c - stats.c and status.c: the counters file (counts, the
 * daemon's reset, a table that fills up, a damaged or foreign file, strings
 * that do not end in their field) and the three reports made of it (label
 * escaping for Prometheus, JSON strings).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats.h"
#include "status.h"
#include "util.h"
#include "unit.h"

struct fixture {
	char dir[64];
	struct conf *c;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/undersmtpd-stats-XXXXXX");
	f->c = conf_with_new_spool(f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	conf_free(f->c);
	remove_tree(f->dir);
	free(f);
	return 0;
}

static const struct stats_alias *
alias_named(const struct stats *s, const char *name)
{
	for (size_t i = 0; i < STATS_ALIASES; i++)
		if (strcmp(s->alias[i].name, name) == 0)
			return &s->alias[i];
	return NULL;
}

static const struct stats_host *
host_named(const struct stats *s, const char *name)
{
	for (size_t i = 0; i < STATS_HOSTS; i++)
		if (strcmp(s->host[i].name, name) == 0)
			return &s->host[i];
	return NULL;
}

static void
test_counts_and_reset(void **state)
{
	struct fixture *f = *state;
	struct stats *s = malloc(sizeof(*s));
	struct smtp_reply ok, temp, perm;
	const struct stats_alias *a;
	const struct stats_host *h;

	smtp_set_reply(&ok, 250, "2.0.0", "delivered");
	smtp_set_reply(&temp, 451, "4.3.0", "try later");
	smtp_set_reply(&perm, 550, "5.1.1", "no such queue");
	assert_int_equal(stats_read(f->c, s), -1);      /* nothing counted yet */
	assert_int_equal(errno, ENOENT);
	stats_program(f->c, "support", &ok, 120);
	stats_program(f->c, "support", &ok, 80);
	stats_program(f->c, "support", &temp, 3000);
	stats_program(f->c, "/^rt-(.*)$/", &perm, 5);
	stats_outcome(f->c, "sent");
	stats_outcome(f->c, "sent");
	stats_outcome(f->c, "deferred");
	stats_outcome(f->c, "no such word");
	stats_count(f->c, STATS_RECEIVED);
	stats_count(f->c, STATS_REJECTED);
	stats_count(f->c, STATS_NOTICES);
	stats_connect(f->c, "isp", "smtp.isp.test[192.0.2.1]:587", 0, "451 4.4.1 refused");
	stats_connect(f->c, "isp", "smtp.isp.test[192.0.2.1]:587", 1, "connected");
	stats_smarthost(f->c, "isp", "bounced", "550 5.1.1 unknown");
	assert_int_equal(stats_read(f->c, s), 0);
	a = alias_named(s, "support");
	assert_non_null(a);
	assert_int_equal(a->runs[STATS_OK], 2);
	assert_int_equal(a->runs[STATS_TEMPFAIL], 1);
	assert_int_equal(a->ms_total, 3200);
	assert_int_equal(a->ms_max, 3000);
	assert_string_equal(a->last_fail_reply, "451 4.3.0 try later");
	assert_true(a->last_ok > 0 && a->last_fail > 0);
	a = alias_named(s, "/^rt-(.*)$/");
	assert_non_null(a);
	assert_int_equal(a->runs[STATS_PERMFAIL], 1);
	assert_int_equal(s->head.outcomes[STATS_SENT], 2);
	assert_int_equal(s->head.outcomes[STATS_DEFERRED], 1);
	assert_int_equal(s->head.received, 1);
	assert_int_equal(s->head.rejected, 1);
	assert_int_equal(s->head.notices, 1);
	h = host_named(s, "isp");
	assert_non_null(h);
	assert_int_equal(h->connections, 2);
	assert_int_equal(h->connect_failures, 1);
	assert_int_equal(h->last_connect_ok, 1);
	assert_int_equal(h->outcomes[STATS_BOUNCED], 1);
	assert_string_equal(h->last_reply, "550 5.1.1 unknown");
	/* The daemon starts: every counter from zero, its pid recorded; then stops. */
	stats_daemon(f->c, getpid(), 1);
	assert_int_equal(stats_read(f->c, s), 0);
	assert_null(alias_named(s, "support"));
	assert_int_equal(s->head.outcomes[STATS_SENT], 0);
	assert_int_equal(s->head.daemon_pid, getpid());
	assert_true(status_daemon_up(s));
	stats_daemon(f->c, getpid(), 0);
	assert_int_equal(stats_read(f->c, s), 0);
	assert_int_equal(s->head.daemon_pid, 0);
	assert_true(s->head.daemon_stopped > 0);
	assert_false(status_daemon_up(s));
	free(s);
}

static void
test_full_table_and_damaged_file(void **state)
{
	struct fixture *f = *state;
	struct stats *s = malloc(sizeof(*s));
	struct smtp_reply ok;
	char name[32], path[128];
	size_t named = 0;
	int fd;

	smtp_set_reply(&ok, 250, "2.0.0", "ok");
	/* More aliases than records: the extra ones are not counted, nothing breaks. */
	for (int i = 0; i < STATS_ALIASES + 10; i++) {
		snprintf(name, sizeof(name), "alias%d", i);
		stats_program(f->c, name, &ok, 1);
	}
	assert_int_equal(stats_read(f->c, s), 0);
	for (size_t i = 0; i < STATS_ALIASES; i++)
		named += s->alias[i].name[0] != '\0';
	assert_int_equal(named, STATS_ALIASES);
	/* A name with no end in its field (a writer gone mad) is cut on reading. */
	snprintf(path, sizeof(path), "%s/stats", f->dir);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	{
		char junk[STATS_NAME_MAX];

		memset(junk, 'x', sizeof(junk));
		assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t)offsetof(struct stats,
		    alias)), (ssize_t)sizeof(junk));
	}
	close(fd);
	assert_int_equal(stats_read(f->c, s), 0);
	assert_int_equal(strlen(s->alias[0].name), STATS_NAME_MAX - 1);
	/* A file of another layout is not read, and the next update starts afresh. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "garbage", 7), 7);
	close(fd);
	assert_int_equal(stats_read(f->c, s), -1);
	stats_outcome(f->c, "bounced");
	assert_int_equal(stats_read(f->c, s), 0);
	assert_int_equal(s->head.outcomes[STATS_BOUNCED], 1);
	free(s);
}

/*
 * Many processes counting at once on a file not made yet: each count
 * survives (the file is laid out once: its size is looked at under the lock).
 */
static void
test_concurrent_first_counts(void **state)
{
	struct fixture *f = *state;
	struct stats *s = malloc(sizeof(*s));
	int go[2];
	pid_t kids[24];

	assert_int_equal(pipe(go), 0);
	for (size_t i = 0; i < 24; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			char b;

			close(go[1]);
			if (read(go[0], &b, 1) < 0)
				_exit(1);
			stats_outcome(f->c, "sent");
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]);                  /* all start at once: EOF */
	for (size_t i = 0; i < 24; i++)
		waitpid(kids[i], NULL, 0);
	assert_int_equal(stats_read(f->c, s), 0);
	assert_int_equal(s->head.outcomes[STATS_SENT], 24);
	free(s);
}

/* A FIFO planted where the file goes: nothing waits on it, nothing is counted. */
static void
test_fifo_does_not_hang(void **state)
{
	struct fixture *f = *state;
	struct stats *s = malloc(sizeof(*s));
	struct smtp_reply ok;
	char path[128];
	int64_t t0 = now_ms();

	snprintf(path, sizeof(path), "%s/stats", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	smtp_set_reply(&ok, 250, "2.0.0", "ok");
	stats_program(f->c, "support", &ok, 1);
	stats_outcome(f->c, "sent");
	assert_int_equal(stats_read(f->c, s), -1);
	assert_true(now_ms() - t0 < 5000);
	free(s);
}

/* What the spool user wrote reaches root's terminal as printable ASCII only. */
static void
test_text_report_masks_controls(void **state)
{
	struct fixture *f = *state;
	struct stats *s = malloc(sizeof(*s));
	struct queue_census q;
	struct smtp_reply perm;
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	smtp_set_reply(&perm, 550, "5.1.1", "x");
	stats_program(f->c, "evil\033]0;pwned\007\302\233", &perm, 1);
	stats_connect(f->c, "isp", "peer\033[31m", 0, "451 \033[2J");
	assert_int_equal(stats_read(f->c, s), 0);
	memset(&q, 0, sizeof(q));
	out = open_memstream(&text, &len);
	status_text(out, s, &q, NULL);
	fclose(out);
	for (size_t i = 0; i < len; i++)
		assert_true(text[i] == '\n' || (text[i] >= 32 && text[i] < 127));
	assert_non_null(strstr(text, "pipe evil?]0;pwned???:"));
	assert_non_null(strstr(text, "to peer?[31m: FAILED: 451 ?[2J"));
	free(text);
	free(s);
}

static void
test_reports_escape(void **state)
{
	struct fixture *f = *state;
	struct stats *s = malloc(sizeof(*s));
	struct queue_census q;
	struct smtp_reply perm;
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	smtp_set_reply(&perm, 550, "5.1.1", "bad \"queue\"");
	stats_program(f->c, "/^a\\.\"b\"$/", &perm, 1);
	assert_int_equal(stats_read(f->c, s), 0);
	status_census(f->c, &q);
	assert_int_equal(q.active + q.deferred + q.held, 0);
	out = open_memstream(&text, &len);
	status_prometheus(out, s, &q, NULL);
	fclose(out);
	assert_non_null(strstr(text, "undersmtpd_pipe_runs_total{alias=\"/^a\\\\.\\\"b\\\"$/\","
	    "result=\"permfail\"} 1\n"));
	assert_non_null(strstr(text, "# TYPE undersmtpd_deliveries_total counter\n"));
	free(text);
	text = NULL;
	out = open_memstream(&text, &len);
	status_json(out, s, &q, NULL);
	fclose(out);
	assert_non_null(strstr(text, "\"alias\":\"/^a\\\\.\\\"b\\\"$/\""));
	assert_non_null(strstr(text, "\"last_fail_reply\":\"550 5.1.1 bad \\\"queue\\\"\""));
	free(text);
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_counts_and_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_table_and_damaged_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reports_escape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_does_not_hang, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_first_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_report_masks_controls, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
