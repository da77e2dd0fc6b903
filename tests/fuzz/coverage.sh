#!/usr/bin/env bash
# What the fuzzers reach: run each target, built with clang's source-based
# coverage by `make fuzz-coverage-build`, once over its corpus (build-fuzz/corpus/<target>, what
# the fuzz runs kept) and its seeds, and print the line coverage of the source
# file the target exists for: over the whole file, over the functions the
# target entered, and how many of the file's functions it entered.  An HTML view of every
# uncovered line is left in build-fuzzcov/html/<target>/index.html.
#
# Usage: tests/fuzz/coverage.sh target...   (`make fuzz-coverage` names them all)
# Needs llvm-profdata and llvm-cov (package llvm-14, which clang-14 pulls in).
set -euo pipefail
cd "$(dirname "$0")/../.."

out=build-fuzzcov
[ $# -gt 0 ] || { echo "usage: $0 target..." >&2; exit 64; }
targets=("$@")

# The source file each target is written for (the others it touches are
# reported by the HTML view, not in the table).
declare -A main_file=(
	[addr]=src/addr.c [smtp_command]=src/smtpd_parse.c [data]=src/smtpd_data.c
	[envelope]=src/spool.c [proxy]=src/proxy.c [auth]=src/auth.c [launcher]=src/launcher.c [aliases]=src/aliases.c
	[conf]=src/conf.c [maildrop]=src/maildrop.c [smtpc]=src/smtpc.c
	[sendmail]=src/sendmail.c [session]=src/smtpd.c [rtqueue]=src/rtqueue.c
)

profdata=$(command -v llvm-profdata-14 || command -v llvm-profdata) ||
	{ echo "fuzz-coverage: llvm-profdata not found (package llvm-14)" >&2; exit 1; }
llvmcov=$(command -v llvm-cov-14 || command -v llvm-cov) ||
	{ echo "fuzz-coverage: llvm-cov not found (package llvm-14)" >&2; exit 1; }

printf '%-14s %-18s %7s %8s %11s %8s\n' target file lines "entered" functions inputs
for t in "${targets[@]}"; do
	file=${main_file[$t]:?"no source file known for target $t"}
	rm -rf "$out/prof/$t" && mkdir -p "$out/prof/$t"
	dirs=(tests/fuzz/seeds/$t)
	[ -d build-fuzz/corpus/$t ] && dirs=(build-fuzz/corpus/$t "${dirs[@]}")
	inputs=$(find "${dirs[@]}" -type f | wc -l)
	# %p: the session target's pipe programs are separate processes.
	LLVM_PROFILE_FILE="$out/prof/$t/%p.profraw" \
		$out/fuzz_$t -runs=0 -max_len=4096 -timeout=20 "${dirs[@]}" \
		> "$out/prof/$t/run.log" 2>&1 ||
		{ echo "fuzz-coverage: fuzz_$t failed on its corpus, see $out/prof/$t/run.log" >&2; exit 1; }
	"$profdata" merge -sparse -o "$out/prof/$t.profdata" "$out"/prof/"$t"/*.profraw
	"$llvmcov" show "$out/fuzz_$t" -instr-profile="$out/prof/$t.profdata" \
		-format=html -output-dir="$out/html/$t" src/*.c >/dev/null
	# Per function: regions, missed, cover, lines, missed, cover, branches,
	# missed, cover.  A file often holds more than its parser (spool.c also
	# commits messages), so besides the file's line coverage, the table gives
	# the line coverage inside the functions the target entered at all.
	"$llvmcov" report "$out/fuzz_$t" -instr-profile="$out/prof/$t.profdata" \
		-show-functions "$file" |
		awk -v t="$t" -v f="$file" -v n="$inputs" '
		NF == 10 && $1 != "TOTAL" && $2 ~ /^[0-9]+$/ {
			nf++; lines += $5; missed += $6
			if ($3 < $2) { entered++; elines += $5; emissed += $6 }
		}
		END {
			printf "%-14s %-18s %6.1f%% %7.1f%% %5d/%-5d %8d\n", t, f,
				100 * (lines - missed) / lines, 100 * (elines - emissed) / elines,
				entered, nf, n
		}'
done
