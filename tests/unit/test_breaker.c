/*
 * test_breaker.c - breaker.c: a pipe alias's circuit breaker from closed to
 * open after `breaker` temporary failures, the probe (one only, and taken
 * again when its lease runs out), a permanent failure closing it like a
 * success, the doubled wait and its ceiling, RCPT never taking the probe,
 * breaker = 0, and the state kept in the spool file across processes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "breaker.h"
#include "unit.h"

struct fixture {
	char dir[64];
	struct conf *c;
	struct pipe_conf pc;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/undersmtpd-breaker-XXXXXX");
	f->c = conf_with_new_spool(f->dir);
	f->pc = f->c->pipe;
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

static const struct breaker_rec *
rec_of(const struct breakers *b, const char *name)
{
	for (size_t i = 0; i < BREAKER_ALIASES; i++)
		if (strcmp(b->rec[i].name, name) == 0)
			return &b->rec[i];
	return NULL;
}

static void
test_defaults(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(f->c->pipe.breaker, 5);
	assert_int_equal(f->c->pipe.breaker_wait, 30);
	assert_int_equal(f->c->pipe.breaker_wait_max, 600);
}

static void
test_opens_probes_and_closes(void **state)
{
	struct fixture *f = *state;
	struct breakers *b = malloc(sizeof(*b));
	long left = 0;

	f->pc.breaker = 3;
	f->pc.breaker_wait = 100;
	f->pc.breaker_wait_max = 300;
	f->pc.timeout = 60;
	/* Two temporary failures, a success: the count starts again. */
	breaker_report(f->c, "rt", &f->pc, 451);
	breaker_report(f->c, "rt", &f->pc, 451);
	breaker_report(f->c, "rt", &f->pc, 250);
	assert_int_equal(breaker_read(f->c, b), 0);
	assert_int_equal(rec_of(b, "rt")->failures, 0);
	for (int i = 0; i < 3; i++) {
		assert_true(breaker_may_run(f->c, "rt", &f->pc, &left));
		breaker_report(f->c, "rt", &f->pc, 451);
	}
	assert_false(breaker_may_run(f->c, "rt", &f->pc, &left));
	assert_true(left > 95 && left <= 100);
	assert_false(breaker_closed_for_rcpt(f->c, "rt", &f->pc, &left));
	assert_true(breaker_may_run(f->c, "other", &f->pc, &left));   /* its own */
	breaker_read(f->c, b);
	assert_int_equal(rec_of(b, "rt")->state, BREAKER_OPEN);
	assert_int_equal(rec_of(b, "rt")->opens, 1);
	assert_int_equal(rec_of(b, "rt")->held, 1);          /* the delivery, not RCPT */
	/* The wait is over (moved back): RCPT takes no probe, a delivery does. */
	{
		struct breakers *w = malloc(sizeof(*w));
		char path[128];
		FILE *fp;
		size_t i;

		breaker_read(f->c, w);
		for (i = 0; strcmp(w->rec[i].name, "rt") != 0; i++)
			;
		snprintf(path, sizeof(path), "%s/breakers", f->dir);
		fp = fopen(path, "r+");
		w->rec[i].open_until = time(NULL) - 1;
		fseek(fp, (long)(offsetof(struct breakers, rec) + i * sizeof(w->rec[0])), SEEK_SET);
		fwrite(&w->rec[i], sizeof(w->rec[i]), 1, fp);
		fclose(fp);
		free(w);
	}
	assert_true(breaker_closed_for_rcpt(f->c, "rt", &f->pc, &left));
	assert_true(breaker_may_run(f->c, "rt", &f->pc, &left));       /* the probe */
	assert_false(breaker_may_run(f->c, "rt", &f->pc, &left));      /* one only */
	assert_true(left > 60 && left <= 70);                           /* its lease */
	/* The probe fails: open again for twice the wait. */
	breaker_report(f->c, "rt", &f->pc, 421);
	breaker_read(f->c, b);
	assert_int_equal(rec_of(b, "rt")->state, BREAKER_OPEN);
	assert_int_equal(rec_of(b, "rt")->wait, 200);
	assert_int_equal(rec_of(b, "rt")->opens, 2);
	/* A permanent failure is the program working: closed. */
	breaker_report(f->c, "rt", &f->pc, 550);
	breaker_read(f->c, b);
	assert_int_equal(rec_of(b, "rt")->state, BREAKER_CLOSED);
	assert_true(breaker_may_run(f->c, "rt", &f->pc, &left));
	free(b);
}

static void
test_ceiling_off_and_other_processes(void **state)
{
	struct fixture *f = *state;
	struct breakers *b = malloc(sizeof(*b));
	long left = 0;
	pid_t pid;
	int status;

	f->pc.breaker = 1;
	f->pc.breaker_wait = 400;
	f->pc.breaker_wait_max = 300;          /* the ceiling applies from the first wait */
	breaker_report(f->c, "q", &f->pc, 451);
	breaker_read(f->c, b);
	assert_int_equal(rec_of(b, "q")->wait, 300);
	/* Another process (another session) sees the same state. */
	pid = fork();
	if (pid == 0)
		_exit(breaker_may_run(f->c, "q", &f->pc, &left) ? 1 : 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	/* breaker = 0: always run, nothing recorded. */
	f->pc.breaker = 0;
	assert_true(breaker_may_run(f->c, "q", &f->pc, &left));
	assert_true(breaker_closed_for_rcpt(f->c, "q", &f->pc, &left));
	breaker_report(f->c, "never", &f->pc, 451);
	breaker_read(f->c, b);
	assert_null(rec_of(b, "never"));
	free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_opens_probes_and_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ceiling_off_and_other_processes, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
