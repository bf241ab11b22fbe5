#!/bin/bash
# Build abdeploy and run every test suite; .ci/run calls this.
# Two builds: BUILDDIR (the default compiler, gcc: every suite, the fuzz
# targets replaying their seed corpora) and FUZZ_BUILDDIR (clang with
# AddressSanitizer and UndefinedBehaviorSanitizer: the fuzz suite, each
# libFuzzer target fuzzed for FUZZ_SECONDS; see docs/fuzzing.md).
# The very last line of output is the result count of both builds:
#   N passed, N failed[, N skipped]
# Exit status is non-zero when anything failed, when meson test failed, or
# when no test ran at all.
# Run as root on Debian 12:  bash tools/test.sh
# Environment: ABDEPLOY_TEST_BUILDDIR (default build-test),
# ABDEPLOY_FUZZ_BUILDDIR (default build-fuzz), ABDEPLOY_FUZZ_SECONDS
# (default 20).
set -uo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILDDIR=${ABDEPLOY_TEST_BUILDDIR:-build-test}
case "$BUILDDIR" in
    /*) ;;
    *) BUILDDIR="$SRCDIR/$BUILDDIR" ;;
esac
TESTLOG="$BUILDDIR/meson-logs/testlog.json"
FUZZ_BUILDDIR=${ABDEPLOY_FUZZ_BUILDDIR:-build-fuzz}
case "$FUZZ_BUILDDIR" in
    /*) ;;
    *) FUZZ_BUILDDIR="$SRCDIR/$FUZZ_BUILDDIR" ;;
esac
FUZZ_TESTLOG="$FUZZ_BUILDDIR/meson-logs/testlog.json"
FUZZ_SECONDS=${ABDEPLOY_FUZZ_SECONDS:-20}

# A set-up or build step failed: report it as one failure.
setup_failed() {
    echo "test.sh: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

# count_results TESTLOG... [+N]: prints "N passed, N failed[, N skipped]"
# summed over every TESTLOG (a missing one counts nothing), plus N failures
# of steps that ran no test, and exits 0 when at least one test ran and
# none failed, 1 otherwise.
count_results() {
    python3 - "$@" <<'EOF'
import json
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
FAILED = {"FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS"}
SKIPPED = {"SKIP"}

passed = failed = skipped = 0
for path in sys.argv[1:]:
    if path.startswith("+"):
        failed += int(path[1:])   # steps that failed before any test ran
        continue
    try:
        with open(path, encoding="utf-8") as log:
            for number, line in enumerate(log, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    result = str(json.loads(line).get("result", "")).upper()
                except (ValueError, AttributeError):
                    print(f"test.sh: unreadable line {number} in {path}", file=sys.stderr)
                    failed += 1
                    continue
                if result in PASSED:
                    passed += 1
                elif result in SKIPPED:
                    skipped += 1
                else:
                    # FAILED, or a result this script does not know: not a pass.
                    failed += 1
    except FileNotFoundError:
        print(f"test.sh: no test log {path}: no test ran there", file=sys.stderr)

summary = f"{passed} passed, {failed} failed"
if skipped:
    summary += f", {skipped} skipped"
if passed + failed == 0:
    print("test.sh: no test ran" + (" (all skipped)" if skipped else ""), file=sys.stderr)
print(summary)
sys.exit(0 if failed == 0 and passed + failed > 0 else 1)
EOF
}

# Count existing test logs only (used to check the counting logic).
if [[ "${1:-}" == "--count-only" ]]; then
    shift
    count_results "${@:?usage: test.sh --count-only TESTLOG...}"
    exit $?
fi

cd "$SRCDIR" || setup_failed "cannot enter the source directory"

echo "=== Installing dependencies"
bash "$SRCDIR/tools/install-deps.sh" </dev/null || setup_failed "installing dependencies failed"

# configure DIR [MESON OPTIONS...]: sets DIR up, or reconfigures it with
# the options (wiping it when that fails).
configure() {
    local dir=$1
    shift
    echo "=== Configuring $(basename "$dir")/"
    if [[ -f "$dir/build.ninja" ]]; then
        if ! meson setup --reconfigure "$@" "$dir" "$SRCDIR" </dev/null; then
            echo "test.sh: reconfigure failed; wiping $(basename "$dir")/" >&2
            rm -rf "$dir"
        fi
    elif [[ -e "$dir" ]]; then
        rm -rf "$dir"
    fi
    [[ -f "$dir/build.ninja" ]] || meson setup "$@" "$dir" "$SRCDIR" </dev/null
}

# The fuzz suite in the clang build; prints the number of steps that failed
# before any fuzz test ran (0 or 1).
run_fuzz_build() {
    rm -f "$FUZZ_TESTLOG"
    if ! CC=clang configure "$FUZZ_BUILDDIR" -Db_sanitize=address,undefined -Db_lundef=false \
            -Dvm_tests=false -Dfuzz_engine=libfuzzer -Dfuzz_seconds="$FUZZ_SECONDS" >&2; then
        echo "test.sh: configuring the clang fuzz build failed" >&2
        echo 1
        return 1
    fi
    echo "=== Running the fuzz suite (clang, libFuzzer, ${FUZZ_SECONDS}s per target)" >&2
    meson test -C "$FUZZ_BUILDDIR" --suite fuzz --print-errorlogs --num-processes 1 </dev/null >&2
    local rc=$?
    [[ -f "$FUZZ_TESTLOG" ]] && echo 0 || echo 1
    return $rc
}

# failure_digest LOG...: for every failed test, its name and the end of its
# output, printed again right above the summary line, where a CI page that
# shows only the head and the tail of a long log still shows why.
failure_digest() {
    python3 - "$@" <<'EOF'
import json
import sys

for path in sys.argv[1:]:
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        continue
    for line in lines:
        try:
            t = json.loads(line)
        except ValueError:
            continue
        if str(t.get("result", "")).upper() in ("OK", "EXPECTEDFAIL", "SKIP"):
            continue
        out = (t.get("stdout") or "") + (t.get("stderr") or "")
        tail = [l for l in out.splitlines() if l.strip()][-25:]
        print("--- failed: %s (%s, %.0f s); the end of its output:" % (
            t.get("name"), t.get("result"), t.get("duration") or 0))
        print("\n".join("    " + l for l in tail))
EOF
}

configure "$BUILDDIR" || setup_failed "meson setup failed"

echo "=== Building"
ninja -C "$BUILDDIR" </dev/null || setup_failed "the build failed"

echo "=== Running the tests"
rm -f "$TESTLOG"
meson test -C "$BUILDDIR" --print-errorlogs --num-processes 2 </dev/null
meson_rc=$?

fuzz_setup_failed=$(run_fuzz_build)
fuzz_rc=$?

echo
failure_digest "$TESTLOG" "$FUZZ_TESTLOG"
summary=$(count_results "$TESTLOG" "$FUZZ_TESTLOG" "+$fuzz_setup_failed")
count_rc=$?
if [[ $meson_rc -ne 0 && $count_rc -eq 0 ]]; then
    echo "test.sh: meson test exited with status $meson_rc" >&2
fi
if [[ $fuzz_rc -ne 0 && $count_rc -eq 0 ]]; then
    echo "test.sh: the fuzz build exited with status $fuzz_rc" >&2
fi
echo "$summary"
if [[ $meson_rc -ne 0 || $fuzz_rc -ne 0 || $count_rc -ne 0 ]]; then
    exit 1
fi
exit 0
