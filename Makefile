# undersmtpd - plain Makefile (no autotools).
#
# Targets: all (default), test/check (every test), unit, blackbox, asan,
# valgrind, fuzz, fuzz-coverage, analyze, install, install-sendmail, deb, test-package, bench, bench-smoke, demo, lint-man, clean.  CC=clang works as well as gcc.

PREFIX    ?= /usr/local
SBINDIR   ?= $(PREFIX)/sbin
BINDIR    ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/undersmtpd
MANDIR    ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
VERSION   := 0.1.0

CC        ?= cc
SHELL     := /bin/bash
PKGS      := libpcre2-8 libconfuse libssl libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS)) -lcrypt

OPT       ?= -O2
WARN      := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
             -Wshadow -Wpointer-arith -Wcast-qual -Wsign-compare -Wformat=2
HARDEN    := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection -fPIE
CFLAGS    ?= -g
BASE_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
             $(OPT) $(WARN) $(HARDEN) $(CFLAGS) $(PKG_CFLAGS) \
             -DUNDERSMTPD_VERSION='"$(VERSION)"'
# Where an installed undersmtpd finds its configuration and the maildrop helper.
PATH_DEFS  = -DDEFAULT_CONF='"$(SYSCONFDIR)/undersmtpd.conf"' \
             -DDROP_HELPER='"$(LIBEXECDIR)/undersmtpd-drop"'
ALL_CFLAGS = $(BASE_CFLAGS) $(PATH_DEFS)
LDFLAGS   ?=
ALL_LDFLAGS := -pie -Wl,-z,relro,-z,now $(LDFLAGS)

BUILD     ?= build
# The message's path through the program, in order (see README "Architecture").
SRCS := src/util.c src/log.c src/buf.c src/conf.c src/addr.c \
        src/aliases.c src/route.c src/reply.c src/accept.c src/privsep.c src/check.c src/smtpd_parse.c src/smtpd_data.c \
        src/safepath.c src/envelope.c src/spool.c src/maildrop.c src/tls.c src/smtpc.c src/bounce.c src/queue.c src/delivery.c src/filter.c src/http.c src/rtqueue.c src/pipe.c src/launcher.c src/auth.c src/smtpd.c src/smtpd_auth.c src/smtpd_proxy.c src/proxy.c src/listen.c src/sendmail.c src/testpipe.c src/recfile.c src/stats.c src/breaker.c src/notice.c src/oauth.c src/status.c src/metrics.c src/probe.c
MAIN := src/main.c
OBJS := $(SRCS:src/%.c=$(BUILD)/%.o)
BIN  := $(BUILD)/undersmtpd

DROP := $(BUILD)/undersmtpd-drop

UNIT_TESTS := util safepath conf addr aliases route smtpd_parse smtpd_data pipe spool proxy maildrop auth launcher \
              smtpc queue delivery sendmail smtpd tls listen buf log envelope bounce reply check stats breaker oauth filter rtqueue
UNIT_BINS  := $(UNIT_TESTS:%=$(BUILD)/test_%)
PROGS      := $(BUILD)/recorder

# A second undersmtpd for the tests of sendmail run by an ordinary user, who
# may not name a configuration (-C): its built-in paths point into MDTEST_DIR,
# which the tests (as root) create afresh.  Never installed.
MDTEST_DIR := /tmp/undersmtpd-maildrop-test
MDTEST_BIN := $(BUILD)/mdtest/undersmtpd
MDTEST_DROP := $(BUILD)/mdtest/undersmtpd-drop
MDTEST_DEFS := -DDEFAULT_CONF='"$(MDTEST_DIR)/undersmtpd.conf"' \
              -DDROP_HELPER='"$(MDTEST_DIR)/undersmtpd-drop"'

PYTEST ?= /usr/bin/python3 -m pytest -rs


.PHONY: all test check unit blackbox asan valgrind fuzz fuzz-build fuzz-coverage fuzz-coverage-build analyze install install-sendmail demo deb test-package \
        lint-man clean bench bench-smoke

all: $(BIN) $(DROP) $(PROGS) $(MDTEST_BIN) $(MDTEST_DROP)

$(BUILD):
	mkdir -p $(BUILD)

# `make V=1` shows the whole compiler command lines.
Q := $(if $(V),,@)

$(BUILD)/%.o: src/%.c src/*.h | $(BUILD)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BIN): $(OBJS) $(BUILD)/main.o
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The setgid maildrop helper: libc, and the configuration reader (libconfuse)
# for the limits it enforces on anyone who runs it; nothing else.
DROP_OBJS := $(BUILD)/conf.o $(BUILD)/util.o $(BUILD)/log.o $(BUILD)/addr.o \
             $(BUILD)/safepath.o
DROP_LIBS := $(shell pkg-config --libs libconfuse)
$(DROP): $(BUILD)/drop.o $(DROP_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(DROP_LIBS)

$(BUILD)/mdtest/%.o: src/%.c src/*.h | $(BUILD)
	@mkdir -p $(BUILD)/mdtest
	@echo "  CC      $< (maildrop test paths)"
	$(Q)$(CC) $(BASE_CFLAGS) $(MDTEST_DEFS) -c -o $@ $<

$(MDTEST_BIN): $(filter-out $(BUILD)/sendmail.o,$(OBJS)) $(BUILD)/mdtest/sendmail.o \
    $(BUILD)/mdtest/main.o
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The helper again, reading its configuration in MDTEST_DIR (never installed).
$(MDTEST_DROP): $(BUILD)/mdtest/drop.o $(DROP_OBJS)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(DROP_LIBS)

$(BUILD)/recorder: tests/progs/recorder.c | $(BUILD)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $<

$(BUILD)/test_%: tests/unit/test_%.c tests/unit/unit.h $(OBJS)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -Isrc $(ALL_LDFLAGS) -o $@ $< $(OBJS) $(PKG_LIBS) \
	  $(shell pkg-config --libs cmocka)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; (cd tests/unit && ../../$$t); done

blackbox: all
	UNDERSMTPD=$(CURDIR)/$(BIN) RECORDER=$(CURDIR)/$(BUILD)/recorder \
	  UNDERSMTPD_DROP=$(CURDIR)/$(MDTEST_DROP) UNDERSMTPD_MDTEST=$(CURDIR)/$(MDTEST_BIN) \
	  MDTEST_DIR=$(MDTEST_DIR) $(PYTEST) -q tests/blackbox

test check: unit blackbox

# Sanitizer build: the whole suite again under ASan + UBSan (-O1: FORTIFY needs
# it).  Every process reports into SAN_DIR, which every account may write
# (sessions, runners and daemon children run as `user`, mail; a directory of
# root's under the checkout lost their reports), outside the checkout so that
# a clone under a private home works too.  Any report fails the run, also
# those of processes whose exit status no test looks at; and the black-box
# harness fails a test whose session ended with SAN_EXITCODE, the exit status
# the sanitizers are told to use (undersmtpd itself never exits with it).
SAN_DIR ?= /tmp/undersmtpd-asan-reports.$(shell id -u)
SAN_EXITCODE := 23
asan:
	rm -rf $(SAN_DIR) && mkdir -p $(SAN_DIR) && chmod 1777 $(SAN_DIR)
	ASAN_OPTIONS="log_path=$(SAN_DIR)/report:detect_leaks=1:exitcode=$(SAN_EXITCODE)" \
	UBSAN_OPTIONS="log_path=$(SAN_DIR)/report:print_stacktrace=1:halt_on_error=1:exitcode=$(SAN_EXITCODE)" \
	UNDERSMTPD_SANITIZED=1 UNDERSMTPD_SAN_EXITCODE=$(SAN_EXITCODE) \
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  CFLAGS="-g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" test
	@# A process killed by a test (kill -9) can leave an empty log behind: only
	@# a log with something in it is a report.  LeakSanitizer sometimes cannot
	@# stop a process it checks at exit (ptrace: "Unable to get registers",
	@# seen once in 300 processes on this VM): that log says only so, and is
	@# counted, not taken for a report about our code.
	@reports=""; for f in $$(find $(SAN_DIR) -name 'report.*' -size +0 2>/dev/null); do \
	  if grep -qv "Unable to get registers from thread" "$$f"; then reports="$$reports $$f"; \
	  else echo "asan: LeakSanitizer could not stop the process of $$f (ptrace):" \
	    "its leak check did not run"; fi; done; \
	if [ -n "$$reports" ]; then cat $$reports; echo "sanitizer reports found"; exit 1; fi
	@echo "asan: no sanitizer reports"

# valgrind memcheck with --track-fds over inetd sessions, queue runs and pipe
# deliveries (the black-box files below; timing tests are slow under valgrind
# and left to make asan).  Every process logs to VG_DIR/vg.PID, in /tmp as
# SAN_DIR: a queue run's workers fork as the spool user, whose valgrind must
# open its log there (a checkout under /root, 0700, is not reachable); then
# tests/valgrind/check.py fails on any error, definite leak or leaked fd.
VG_DIR ?= /tmp/undersmtpd-valgrind.$(shell id -u)
# test_status.py is left to make asan: it stops daemons whose queue run may be
# in progress, and a process ended by SIGTERM's default action leaves its fds open.
VALGRIND_TESTS := test_protocol.py test_smuggling.py test_pipe.py test_injection.py \
                  test_relay.py test_spool.py test_test_pipe.py test_check.py test_probe.py \
                  test_filter.py test_rt_queues.py
valgrind: all
	rm -rf $(VG_DIR) && mkdir -p $(VG_DIR) && chmod 1777 $(VG_DIR)
	UNDERSMTPD_WRAP="valgrind --track-fds=yes --leak-check=full \
	  --show-leak-kinds=definite --errors-for-leak-kinds=definite --num-callers=30 \
	  --log-file=$(VG_DIR)/vg.%p" UNDERSMTPD_SANITIZED=1 \
	  UNDERSMTPD=$(CURDIR)/$(BIN) RECORDER=$(CURDIR)/$(BUILD)/recorder \
	  $(PYTEST) -q $(VALGRIND_TESTS:%=tests/blackbox/%)
	/usr/bin/python3 tests/valgrind/check.py $(VG_DIR)

# Fuzzing (libFuzzer with ASan+UBSan, clang): every parser that reads outside
# input.  `make fuzz` runs each target FUZZ_SECONDS (30 by default), FUZZ_JOBS at
# a time, from the seeds in tests/fuzz/seeds/ and keeps what it finds in
# build-fuzz/corpus/ (tests/fuzz/run.sh).
FUZZ_TARGETS := addr smtp_command data envelope proxy auth launcher aliases conf maildrop smtpc sendmail session rtqueue
FUZZ_SECONDS ?= 30
FUZZ_JOBS ?= 1
FUZZ_FLAGS := -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer

fuzz-build:
	$(MAKE) CC=clang BUILD=build-fuzz OPT=-O1 CFLAGS="$(FUZZ_FLAGS)" \
	  LDFLAGS="-fsanitize=address,undefined" build-fuzz-objects
	@for t in $(FUZZ_TARGETS); do \
	  echo "  FUZZ    build-fuzz/fuzz_$$t"; \
	  clang $(ALL_CFLAGS:$(OPT)=-O1) -Isrc -g -fsanitize=fuzzer,address,undefined \
	    -o build-fuzz/fuzz_$$t tests/fuzz/fuzz_$$t.c \
	    $(SRCS:src/%.c=build-fuzz/%.o) $(PKG_LIBS) || exit 1; \
	done

build-fuzz-objects: $(OBJS)

# fuzz-coverage: the same targets built with source-based coverage and run once
# over what the fuzz runs kept; prints how much of each parser they reach.
FUZZCOV_FLAGS := -g -fprofile-instr-generate -fcoverage-mapping

fuzz-coverage-build:
	$(MAKE) CC=clang BUILD=build-fuzzcov OPT=-O1 CFLAGS="$(FUZZCOV_FLAGS) -fsanitize=fuzzer-no-link" \
	  LDFLAGS="-fprofile-instr-generate" build-fuzz-objects
	@for t in $(FUZZ_TARGETS); do \
	  echo "  FUZZCOV build-fuzzcov/fuzz_$$t"; \
	  clang $(ALL_CFLAGS:$(OPT)=-O1) -Isrc $(FUZZCOV_FLAGS) -fsanitize=fuzzer \
	    -o build-fuzzcov/fuzz_$$t tests/fuzz/fuzz_$$t.c \
	    $(SRCS:src/%.c=build-fuzzcov/%.o) $(PKG_LIBS) || exit 1; \
	done

fuzz-coverage: fuzz-coverage-build
	tests/fuzz/coverage.sh $(FUZZ_TARGETS)

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_JOBS) $(FUZZ_TARGETS)

# Benchmarks (bench/run.py): undersmtpd against a private Postfix in the same
# run, with ratios; never part of make test.  bench-smoke: a few hundred
# messages, counts only (CI).
BENCH_PROGS := $(BUILD)/bench-counter $(BUILD)/bench-limits
$(BUILD)/bench-%: bench/%.c | $(BUILD)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $<

bench: all $(BENCH_PROGS)
	BUILD_DIR=$(CURDIR)/$(BUILD) /usr/bin/python3 bench/run.py

bench-smoke: all $(BENCH_PROGS)
	BUILD_DIR=$(CURDIR)/$(BUILD) /usr/bin/python3 bench/run.py --smoke

demo: all
	sh demo/run.sh

# Static analysis: cppcheck, and clang-tidy's analyzer checks.  Left out on purpose:
# insecureAPI (memcpy/snprintf "use _s variants": not C11 Annex K here), valist
# (clang 14 reports every va_start as uninitialized) and struct padding.
TIDY_CHECKS := -*,clang-analyzer-*,-clang-analyzer-security.insecureAPI.*,\
  -clang-analyzer-valist.Uninitialized,-clang-analyzer-optin.performance.Padding
analyze:
	cppcheck --std=c11 --enable=warning,portability,performance --inline-suppr \
	  --quiet --error-exitcode=1 -I src src/*.c
	clang-tidy --quiet --warnings-as-errors='*' -checks='$(TIDY_CHECKS)' src/*.c -- \
	  -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(PKG_CFLAGS) \
	  -DUNDERSMTPD_VERSION='"$(VERSION)"' -DDEFAULT_CONF='"/etc/undersmtpd.conf"'

# deb - the Debian package (debian/; debhelper 13, Debian's packages only) in
# the parent directory, as dpkg-buildpackage makes it: its clean step
# removes build/ and the other build directories first.
deb:
	dpkg-buildpackage -us -uc -b

# test-package - the package tier: build, lintian, install in a clean Debian
# 12 chroot next to request-tracker5, send mail, remove, purge (root, network).
test-package:
	sh tests/package/run.sh

lint-man:
	mandoc -Tlint -W warning man/*.[58]

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	install -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/undersmtpd
	install -m 0644 man/undersmtpd.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/undersmtpd.conf.5 man/undersmtpd-aliases.5 $(DESTDIR)$(MANDIR)/man5/
	test -e $(DESTDIR)$(SYSCONFDIR)/undersmtpd.conf || \
	  install -D -m 0644 undersmtpd.conf $(DESTDIR)$(SYSCONFDIR)/undersmtpd.conf

# install-sendmail - SPEC 11, only on request: sendmail, mailq and newaliases
# as links to undersmtpd; the setgid maildrop helper and its group; the
# maildrop (SPOOL_DIR must be the configuration's spool_dir, SPOOL_USER its
# user).  Nothing of another MTA is ever replaced: an existing file at a link's
# place stops it before anything is written.
DROP_GROUP ?= undersmtpd-drop
SPOOL_DIR  ?= /var/spool/undersmtpd
SPOOL_USER ?= mail
SENDMAIL_LINKS ?= $(SBINDIR)/sendmail $(BINDIR)/mailq $(BINDIR)/newaliases
install-sendmail: install $(DROP)
	@for l in $(SENDMAIL_LINKS); do d="$(DESTDIR)$$l"; \
	  if { [ -e "$$d" ] || [ -L "$$d" ]; } && \
	     [ "$$(readlink "$$d")" != "$(SBINDIR)/undersmtpd" ]; then \
	    echo "install-sendmail: $$d exists and is not undersmtpd (another MTA?);" \
	      "remove it first or set SENDMAIL_LINKS" >&2; exit 1; fi; done
	getent group $(DROP_GROUP) >/dev/null || groupadd --system $(DROP_GROUP)
	install -d -m 0755 $(DESTDIR)$(LIBEXECDIR)
	install -m 2755 -o root -g $(DROP_GROUP) $(DROP) $(DESTDIR)$(LIBEXECDIR)/undersmtpd-drop
	install -m 0644 man/undersmtpd-drop.8 $(DESTDIR)$(MANDIR)/man8/
	install -d -m 0710 -o $(SPOOL_USER) -g $(DROP_GROUP) $(DESTDIR)$(SPOOL_DIR)
	install -d -m 1730 -o $(SPOOL_USER) -g $(DROP_GROUP) $(DESTDIR)$(SPOOL_DIR)/maildrop
	@for l in $(SENDMAIL_LINKS); do d="$(DESTDIR)$$l"; \
	  if [ ! -L "$$d" ]; then install -d "$$(dirname "$$d")"; \
	    ln -s $(SBINDIR)/undersmtpd "$$d"; echo "  LINK    $$d"; fi; done

clean:
	rm -rf build build-asan build-clang build-fuzz build-fuzzcov
