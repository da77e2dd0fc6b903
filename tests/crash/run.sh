#!/bin/sh
# tests/crash/run.sh - the crash loops of TESTCATALOGUE F at full length.
#
# Kills the receiver (T58) and the whole queue run, launcher and runner (T59),
# with SIGKILL at random moments, CRASH_TRIALS times each (1,000 by default;
# CI runs 100 as part of make test), and checks that every message answered
# 250 is delivered at least once and complete, none half, nothing is
# quarantined and the spool empties; and that the kills landed around the
# commit (T58) and in mid-transaction (T59).  The trials
# themselves live in tests/blackbox/test_crash.py; this script runs them
# long.  Run from the top of the tree after `make`, as root:
#
#     sh tests/crash/run.sh            # 1,000 trials each
#     CRASH_TRIALS=5000 sh tests/crash/run.sh
set -eu
cd "$(dirname "$0")/../.."
: "${CRASH_TRIALS:=1000}"
export CRASH_TRIALS
: "${UNDERSMTPD:=$PWD/build/undersmtpd}"
: "${RECORDER:=$PWD/build/recorder}"
export UNDERSMTPD RECORDER
test -x "$UNDERSMTPD" || { echo "run make first" >&2; exit 1; }
echo "crash loops: $CRASH_TRIALS trials each (receiver, runner)"
start=$(date +%s)
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/blackbox/test_crash.py
echo "crash loops: passed in $(( $(date +%s) - start )) s"
