#!/bin/bash
# tools/check-prefix.sh [BUILDDIR]
#
# Builds abdeploy with --prefix=/usr/local and the optional parts off
# (-Duboot=disabled -Dman=false -Dtests=false), installs it with DESTDIR into
# a temporary directory and checks from the outside that the install paths
# follow the build (issue 16, point 12):
#   - the default health hooks are installed in /usr/local/lib/abdeploy/health
#     and the built binary reads hooks from there (the path it holds), not
#     only from /usr/lib/abdeploy/health, where they would never have run;
#   - the units' ExecStart names /usr/local/bin/abdeploy; the units, the
#     preset and the completion are where systemd and bash-completion look
#     (their pkg-config variables when installed), the dracut module in
#     dracut's modules.d;
#   - no man page and no U-Boot file is installed, and the uboot backend
#     fails with "built without U-Boot support".
# BUILDDIR (default: a temporary one) is wiped first. Exit status 0 when
# every check passed; each failure is printed as "check-prefix: FAIL: ...".
set -uo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-prefix.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
BUILDDIR=${1:-$TMP/build}
DEST=$TMP/dest

failures=0
fail() {
    echo "check-prefix: FAIL: $*" >&2
    failures=$((failures + 1))
}
ok() {
    echo "check-prefix: ok: $*"
}

rm -rf "$BUILDDIR"
if ! { meson setup "$BUILDDIR" "$SRCDIR" --prefix=/usr/local -Duboot=disabled -Dman=false \
           -Dtests=false &&
       ninja -C "$BUILDDIR" &&
       DESTDIR="$DEST" meson install -C "$BUILDDIR" --no-rebuild; } >"$TMP/build.log" 2>&1; then
    tail -n 30 "$TMP/build.log" >&2
    echo "check-prefix: ERROR: the /usr/local build failed (the end of its log is above)" >&2
    exit 1
fi
ok "built and installed with --prefix=/usr/local -Duboot=disabled -Dman=false -Dtests=false"

# pcvar PACKAGE VARIABLE FALLBACK: where the system reads such files.
pcvar() {
    pkg-config --variable="$2" "$1" 2>/dev/null | grep . || echo "$3"
}
unitdir=$(pcvar systemd systemdsystemunitdir /usr/local/lib/systemd/system)
presetdir=$(pcvar systemd systemdsystempresetdir /usr/local/lib/systemd/system-preset)
compdir=$(pcvar bash-completion completionsdir /usr/local/share/bash-completion/completions)
dracutdir=$(pcvar dracut dracutmodulesdir /usr/lib/dracut/modules.d)

exe=$DEST/usr/local/bin/abdeploy
[[ -x "$exe" ]] || fail "no /usr/local/bin/abdeploy"
for f in /usr/local/lib/abdeploy/health/required.d/10-booted-slot \
         /usr/local/lib/abdeploy/health/wanted.d/50-update-server \
         "$unitdir/abdeploy-healthcheck.service" "$unitdir/abdeploy-update.timer" \
         "$presetdir/90-abdeploy.preset" "$compdir/abdeploy" \
         "$dracutdir/50abdeploy/module-setup.sh" \
         /usr/local/share/abdeploy/grub/abdeploy.cfg; do
    [[ -e "$DEST$f" ]] || fail "not installed: $f"
done
ok "hooks, units, preset, completion, dracut module and GRUB scripts installed"

# The hook directories the engine reads are paths relative to the booted
# root, held as strings in the binary.
hookdirs=$(grep -ao '[a-z/]*abdeploy/health[a-z/%.]*' "$exe" | sort -u)
grep -qx 'usr/local/lib/abdeploy/health/%s.d' <<<"$hookdirs" &&
    ok "the binary reads its default hooks from usr/local/lib/abdeploy/health" ||
    fail "the binary's hook directories do not follow the prefix: $(tr '\n' ' ' <<<"$hookdirs")"

grep -q '^ExecStart=/usr/local/bin/abdeploy ' "$DEST$unitdir/abdeploy-healthcheck.service" &&
    ok "ExecStart=/usr/local/bin/abdeploy" || fail "the health check unit does not run /usr/local/bin/abdeploy"

found=$(cd "$DEST" && find . \( -path '*/man/*' -o -path '*/uboot*' -o -name '*.scr' \) -print)
[[ -z "$found" ]] && ok "no man page and no U-Boot file installed" ||
    fail "-Dman=false -Duboot=disabled still installed: $found"

sysroot=$TMP/sysroot
mkdir -p "$sysroot"
out=$("$exe" --sysroot="$sysroot" init --os=test --bootloader=uboot 2>&1)
rc=$?
[[ $rc -ne 0 && "$out" == *"built without U-Boot support"* ]] &&
    ok "the uboot backend says: $out" ||
    fail "init --bootloader=uboot without U-Boot support: exit $rc, $out"

if [[ $failures -ne 0 ]]; then
    echo "check-prefix: $failures check(s) failed" >&2
    exit 1
fi
echo "check-prefix: all checks passed"
