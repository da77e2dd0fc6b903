#!/usr/bin/env bash
# Run libFuzzer targets (built by `make fuzz-build`), JOBS at a time, each for
# SECONDS, from its seeds (tests/fuzz/seeds/<target>) and the corpus earlier
# runs kept (build-fuzz/corpus/<target>).  Each run's output goes to
# build-fuzz/logs/<target>.log, any crash, leak or timeout input to
# build-fuzz/artifacts/<target>/.  Prints one line per target (executions,
# rate, corpus size, result) and exits 1 if any target failed.
#
# Usage: tests/fuzz/run.sh SECONDS JOBS target...   (make fuzz passes
# FUZZ_SECONDS, FUZZ_JOBS and every target; the hour-long runs of
# tests/fuzz/README.md are `make fuzz FUZZ_SECONDS=3600 FUZZ_JOBS=2`).
set -euo pipefail
cd "$(dirname "$0")/../.."

[ $# -ge 3 ] || { echo "usage: $0 SECONDS JOBS target..." >&2; exit 64; }
seconds=$1 jobs=$2
shift 2
out=build-fuzz

run_one() {
	local t=$1
	mkdir -p "$out/corpus/$t" "$out/artifacts/$t" "$out/logs"
	"$out/fuzz_$t" -max_total_time="$seconds" -max_len=4096 -timeout=20 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/artifacts/$t/" \
		"$out/corpus/$t" "tests/fuzz/seeds/$t" > "$out/logs/$t.log" 2>&1
	echo $? > "$out/logs/$t.rc"
}
export -f run_one
export out seconds

echo "fuzz: ${#@} targets, ${seconds} s each, ${jobs} at a time (started $(date +%T))"
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run_one {} || true'

failed=0
printf '%-14s %12s %9s %8s  %s\n' target executions "exec/s" corpus result
for t in "$@"; do
	log=$out/logs/$t.log
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
	rc=$(cat "$out/logs/$t.rc" 2>/dev/null || echo "?")
	if [ "$rc" = 0 ]; then
		result="no crash"
	else
		result="FAILED (exit $rc): $(grep -m1 -E 'ERROR|SUMMARY|Test unit written' "$log" || echo "see $log")"
		failed=1
	fi
	printf '%-14s %12s %9s %8s  %s\n' "$t" "${execs:-?}" \
		"$( [ -n "$execs" ] && [ "${took:-0}" -gt 0 ] && echo $((execs / took)) || echo '?')" \
		"$(find "$out/corpus/$t" -type f | wc -l)" "$result"
done
[ $failed -eq 0 ] && echo "fuzz: no crash" || { echo "fuzz: see $out/logs/ and $out/artifacts/"; exit 1; }
