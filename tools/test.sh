#!/bin/bash
# Build abdeploy and run every test suite; .ci/run calls this.
# The very last line of output is the result count:
#   N passed, N failed[, N skipped]
# Exit status is non-zero when anything failed, when meson test failed, or
# when no test ran at all.
# Run as root on Debian 12:  bash tools/test.sh
set -uo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILDDIR=${ABDEPLOY_TEST_BUILDDIR:-build-test}
case "$BUILDDIR" in
    /*) ;;
    *) BUILDDIR="$SRCDIR/$BUILDDIR" ;;
esac
TESTLOG="$BUILDDIR/meson-logs/testlog.json"

# A set-up or build step failed: report it as one failure.
setup_failed() {
    echo "test.sh: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

# count_results TESTLOG: prints "N passed, N failed[, N skipped]" and exits
# 0 when at least one test ran and none failed, 1 otherwise.
count_results() {
    python3 - "$1" <<'EOF'
import json
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
FAILED = {"FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS"}
SKIPPED = {"SKIP"}

passed = failed = skipped = 0
try:
    with open(sys.argv[1], encoding="utf-8") as log:
        for number, line in enumerate(log, 1):
            line = line.strip()
            if not line:
                continue
            try:
                result = str(json.loads(line).get("result", "")).upper()
            except (ValueError, AttributeError):
                print(f"test.sh: unreadable line {number} in the test log", file=sys.stderr)
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
    print("test.sh: no test log written: no test ran", file=sys.stderr)

summary = f"{passed} passed, {failed} failed"
if skipped:
    summary += f", {skipped} skipped"
if passed + failed == 0:
    print("test.sh: no test ran" + (" (all skipped)" if skipped else ""), file=sys.stderr)
print(summary)
sys.exit(0 if failed == 0 and passed + failed > 0 else 1)
EOF
}

# Count an existing test log only (used to check the counting logic).
if [[ "${1:-}" == "--count-only" ]]; then
    count_results "${2:?usage: test.sh --count-only TESTLOG}"
    exit $?
fi

cd "$SRCDIR" || setup_failed "cannot enter the source directory"

echo "=== Installing dependencies"
bash "$SRCDIR/tools/install-deps.sh" </dev/null || setup_failed "installing dependencies failed"

echo "=== Configuring $(basename "$BUILDDIR")/"
if [[ -f "$BUILDDIR/build.ninja" ]]; then
    if ! meson setup --reconfigure "$BUILDDIR" "$SRCDIR" </dev/null; then
        echo "test.sh: reconfigure failed; wiping $(basename "$BUILDDIR")/" >&2
        rm -rf "$BUILDDIR"
    fi
elif [[ -e "$BUILDDIR" ]]; then
    rm -rf "$BUILDDIR"
fi
if [[ ! -f "$BUILDDIR/build.ninja" ]]; then
    meson setup "$BUILDDIR" "$SRCDIR" </dev/null || setup_failed "meson setup failed"
fi

echo "=== Building"
ninja -C "$BUILDDIR" </dev/null || setup_failed "the build failed"

echo "=== Running the tests"
rm -f "$TESTLOG"
meson test -C "$BUILDDIR" --print-errorlogs --num-processes 2 </dev/null
meson_rc=$?

echo
summary=$(count_results "$TESTLOG")
count_rc=$?
if [[ $meson_rc -ne 0 && $count_rc -eq 0 ]]; then
    echo "test.sh: meson test exited with status $meson_rc" >&2
fi
echo "$summary"
if [[ $meson_rc -ne 0 || $count_rc -ne 0 ]]; then
    exit 1
fi
exit 0
