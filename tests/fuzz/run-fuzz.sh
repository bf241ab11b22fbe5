#!/bin/bash
# run-fuzz.sh TARGET SEEDS SECONDS WORKDIR
# One bounded libFuzzer run of TARGET for the fuzz suite: starts from the
# committed seed corpus SEEDS (read only) and the inputs earlier runs found
# (WORKDIR/corpus), fuzzes for SECONDS, and fails on any crash, leak,
# sanitizer report, timeout or violated invariant. A crashing input is
# kept as WORKDIR/crash-* (see docs/fuzzing.md to replay it).
set -uo pipefail
target=$1 seeds=$2 seconds=$3 work=$4
mkdir -p "$work/corpus" || exit 1
# The targets' scratch sysroots: on tmpfs when there is one, and removed
# here whatever way the target ends.
scratch=$(mktemp -d /dev/shm/abdeploy-fuzz-run.XXXXXX 2>/dev/null || mktemp -d) || exit 1
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
"$target" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/" "$work/corpus" "$seeds" 2>"$work/fuzz.log"
rc=$?
# The closing statistics, and everything around a failure.
if [[ $rc -eq 0 ]]; then
    grep -E '^(stat::|Done|#[0-9]+.*DONE)' "$work/fuzz.log"
else
    tail -n 60 "$work/fuzz.log"
    echo "run-fuzz: $(basename "$target") failed (exit $rc); full log: $work/fuzz.log" >&2
fi
exit $rc
