#!/bin/bash
# abdeploy end-to-end smoke test (issue 17, point 10), on a throwaway sysroot:
#   - a real GPG key (ed25519, made here), two signed releases made by
#     `abdeploy publish` (commit with --source-revision, release) on the
#     channel stable, served by lighttpd on 127.0.0.1
#   - update to 1.0.0, "boot" it, mark it good; update to the offered
#     1.1.0, "boot" it: `version --json` must report the intended version,
#     commit digest (the manifest's) and source revision
#   - one command rolls back (`abdeploy rollback`): 1.0.0 again
#   - roll forward (`abdeploy update --version=1.1.0`): 1.1.0 again
# It prints its wall time. It installs nothing (tools/install-deps.sh
# provides lighttpd, gpg, python3) and removes everything it made on exit;
# every step is bounded by `timeout`.
#
# Usage: tools/smoke.sh [--max-seconds=N]
#   ABDEPLOY_BIN  the binary (default: build/src/abdeploy beside this script)
#   --max-seconds=N  fail when the wall time exceeds N seconds (default 90;
#                    0: only print it; the meson suite `smoke` passes 0, as
#                    tests assert no timing on a shared machine)
set -euo pipefail

MAX_SECONDS=90
for arg in "$@"; do
    case "$arg" in
        --max-seconds=*) MAX_SECONDS=${arg#--max-seconds=} ;;
        *) echo "smoke: unknown argument $arg (usage: smoke.sh [--max-seconds=N])" >&2; exit 2 ;;
    esac
done
[[ "$MAX_SECONDS" =~ ^[0-9]+$ ]] || { echo "smoke: --max-seconds takes a number" >&2; exit 2; }

START_NS=$(date +%s%N)
SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ABDEPLOY_BIN=${ABDEPLOY_BIN:-$SRCDIR/build/src/abdeploy}
STEP_TIMEOUT=60   # seconds, for any one command

fail() { echo "smoke: FAILED: $*" >&2; exit 1; }
for tool in gpg lighttpd python3 timeout; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] ||
        fail "$tool is missing; run tools/install-deps.sh"
done
[[ -x "$ABDEPLOY_BIN" ]] || fail "no abdeploy binary at $ABDEPLOY_BIN (build it, or set ABDEPLOY_BIN)"

WORK=$(mktemp -d -t abdeploy-smoke.XXXXXX)
SERVER_PID=
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    GNUPGHOME="$WORK/gnupg" gpgconf --kill all 2>/dev/null || true
    chattr -R -i "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
    [[ $rc -eq 0 ]] || echo "smoke: FAILED (exit $rc)" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export GNUPGHOME="$WORK/gnupg"
REPO="$WORK/repo"
SYSROOT="$WORK/sysroot"
export ABDEPLOY_CMDLINE="$WORK/cmdline"
: >"$ABDEPLOY_CMDLINE"          # nothing booted yet: an offline sysroot

step() { printf '=== %s\n' "$*"; }
ab() { timeout "$STEP_TIMEOUT" "$ABDEPLOY_BIN" --sysroot="$SYSROOT" "$@"; }
publish() {
    timeout "$STEP_TIMEOUT" "$ABDEPLOY_BIN" publish "$@" --repo="$REPO" \
        --gpg-sign="$KEY" --gpg-homedir="$GNUPGHOME"
}
# boot SLOT: what a reboot into SLOT looks like to abdeploy.
boot() { printf 'root=LABEL=root ro abdeploy.slot=%s\n' "$1" >"$ABDEPLOY_CMDLINE"; }
# json_get EXPR: EXPR (Python, on `j`) of the JSON object on stdin.
json_get() { python3 -c "import json, sys; j = json.load(sys.stdin); print($1)"; }
primary() { ab status --json | json_get 'j["primary"]'; }

step "GPG key (ed25519)"
mkdir -m 700 "$GNUPGHOME"
timeout "$STEP_TIMEOUT" gpg --batch --quiet --passphrase '' \
    --quick-gen-key "abdeploy smoke <smoke@example.invalid>" ed25519 sign never \
    2>"$WORK/gpg.log" || fail "gpg: $(cat "$WORK/gpg.log")"
KEY=$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')
[[ -n "$KEY" ]] || fail "key generation"

step "Two signed releases: 1.0.0 and 1.1.0"
# make_tree VERSION: a small image (defaults in usr/etc, kernel in
# usr/lib/modules/KVER/).
make_tree() {
    local t="$WORK/tree-$1"
    mkdir -p "$t/usr/bin" "$t/usr/etc" "$t/usr/lib/modules/6.1.0-smoke"
    printf 'fake kernel %s\n' "$1" >"$t/usr/lib/modules/6.1.0-smoke/vmlinuz"
    printf 'fake initramfs %s\n' "$1" >"$t/usr/lib/modules/6.1.0-smoke/initramfs.img"
    printf 'NAME=smoke\nID=smoke\nVERSION_ID=%s\n' "$1" >"$t/usr/lib/os-release"
    printf 'smoke %s\n' "$1" >"$t/usr/etc/motd"
    printf '#!/bin/sh\necho smoke %s\n' "$1" >"$t/usr/bin/hello"
    chmod 755 "$t/usr/bin/hello"
    echo "$t"
}
declare -A REV=([1.0.0]=0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4 [1.1.0]=a1b2c3d4e5f60718293a4b5c6d7e8f9012345678)
for v in 1.0.0 1.1.0; do
    publish commit --tree="$(make_tree "$v")" --version="$v" --source-revision="${REV[$v]}" >/dev/null
    publish release --channel=stable --version="$v" >/dev/null
done
declare -A DIGEST
for v in 1.0.0 1.1.0; do
    DIGEST[$v]=$(json_get "next(r['commit'] for r in j['releases'] if r['version'] == '$v')" \
                 <"$REPO/abdeploy/channels/stable.json")
done

step "lighttpd on 127.0.0.1"
. "$(dirname "$0")/serve-repo.sh"
serve_repo "$REPO" "$WORK" || true
[[ -n "$URL" ]] || fail "lighttpd did not start: $(cat "$WORK/lighttpd-error.log" 2>/dev/null)"

step "Device: init, trust the key, follow stable"
mkdir -p "$SYSROOT/etc/abdeploy/trusted.gpg.d"
gpg --batch --export --output "$SYSROOT/etc/abdeploy/trusted.gpg.d/smoke.gpg" "$KEY"
ab init --os=smoke --bootloader=file >/dev/null
printf '[update]\nurl=%s\nchannel=stable\n' "$URL" >"$SYSROOT/etc/abdeploy/abdeploy.conf"

# expect_running VERSION: `version --json` of the running slot reports
# VERSION, its digest in the manifest and its source revision.
expect_running() {
    local out
    out=$(ab version --json)
    python3 - "$out" "$1" "${DIGEST[$1]}" "${REV[$1]}" <<'EOF' || fail "version --json: $out"
import json, sys
j = json.loads(sys.argv[1])
want = {"version": sys.argv[2], "commit": sys.argv[3], "source_revision": sys.argv[4]}
got = {k: j.get(k) for k in want}
if got != want:
    sys.exit("expected %r, version --json says %r" % (want, got))
print("running %(version)s, commit %(commit)s, source revision %(source_revision)s" % got)
EOF
}

step "Update to 1.0.0, boot it, mark it good"
ab update --version=1.0.0 --progress=none >/dev/null
boot "$(primary)"
ab mark-good >/dev/null
expect_running 1.0.0

step "Update to the offered release (1.1.0), boot it"
ab check-update >/dev/null
ab update --progress=none >/dev/null
boot "$(primary)"
expect_running 1.1.0
ab mark-good >/dev/null

step "Roll back with one command"
ab rollback >/dev/null
boot "$(primary)"
expect_running 1.0.0

step "Roll forward"
ab update --version=1.1.0 --progress=none >/dev/null
boot "$(primary)"
expect_running 1.1.0
ab mark-good >/dev/null

ELAPSED_MS=$(( ($(date +%s%N) - START_NS) / 1000000 ))
printf 'smoke: passed in %d.%03d s (wall time)\n' $((ELAPSED_MS / 1000)) $((ELAPSED_MS % 1000))
if [[ "$MAX_SECONDS" -gt 0 && "$ELAPSED_MS" -gt $((MAX_SECONDS * 1000)) ]]; then
    fail "the wall time is over the limit of $MAX_SECONDS s"
fi
