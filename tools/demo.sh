#!/bin/bash
# abdeploy end-to-end demo of the product path, in a throwaway directory:
#   - installs the build dependencies and builds abdeploy into build/
#   - generates a GPG key, builds a small sample image (fake kernel)
#   - publisher: abdeploy publish commit 1.0 and publish release on channel
#     stable, into an archive repo served by lighttpd on 127.0.0.1
#   - device: init, update with a progress bar (1.0), a simulated boot and
#     health-check; publish 2.0; update, boot, health-check; rollback to 1.0;
#     roll forward to 2.0; status after each step
# Everything it creates outside build/ is removed on exit; every wait is
# bounded. Run as root on Debian 12:  bash tools/demo.sh
set -euo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILDDIR=${ABDEPLOY_BUILDDIR:-build}
case "$BUILDDIR" in
    /*) ;;
    *) BUILDDIR="$SRCDIR/$BUILDDIR" ;;
esac

step() { printf '\n=== %s\n' "$*"; }

# ---------------------------------------------------------------- build
step "Installing dependencies"
bash "$SRCDIR/tools/install-deps.sh"

step "Building abdeploy in $(basename "$BUILDDIR")/"
if [[ ! -f "$BUILDDIR/build.ninja" ]]; then
    if [[ -d "$BUILDDIR" && -n "$(ls -A "$BUILDDIR" 2>/dev/null)" ]]; then
        meson setup --wipe "$BUILDDIR" "$SRCDIR" >/dev/null
    else
        meson setup "$BUILDDIR" "$SRCDIR" >/dev/null
    fi
fi
ninja -C "$BUILDDIR" >/dev/null

ABDEPLOY_BIN=
for candidate in "$BUILDDIR/src/abdeploy" "$BUILDDIR/abdeploy"; do
    if [[ -x "$candidate" && -f "$candidate" ]]; then
        ABDEPLOY_BIN=$candidate
        break
    fi
done
[[ -n "$ABDEPLOY_BIN" ]] || { echo "demo: abdeploy binary not found in $BUILDDIR" >&2; exit 1; }

# ---------------------------------------------------------------- scratch space
WORK=$(mktemp -d -t abdeploy-demo.XXXXXX)
SERVER_PID=
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -d "$WORK/gnupg" ]]; then
        GNUPGHOME="$WORK/gnupg" gpgconf --kill all 2>/dev/null || true
    fi
    # Trees made by ostree may carry the immutable attribute.
    chattr -R -i "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
    if [[ $rc -ne 0 ]]; then
        echo "demo: FAILED (exit $rc)" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export GNUPGHOME="$WORK/gnupg"
REPO="$WORK/repo"          # the publisher's archive repo, served over HTTP
TREE="$WORK/tree"          # the sample image tree
SYSROOT="$WORK/sysroot"    # the device's sysroot
export ABDEPLOY_CMDLINE="$WORK/cmdline"
: >"$ABDEPLOY_CMDLINE"     # no abdeploy.slot=: an offline sysroot, nothing booted

# Echo a command, then run it.
run() {
    printf '+'; printf ' %q' "$@"; printf '\n'
    "$@"
}
abdeploy() {
    printf '+ abdeploy'; printf ' %q' "$@"; printf '\n'
    "$ABDEPLOY_BIN" "$@"
}

# expect_primary VERSION: check with status --json that the primary slot
# holds VERSION.
expect_primary() {
    local got
    got=$("$ABDEPLOY_BIN" --sysroot="$SYSROOT" status --json | python3 -c '
import json, sys
status = json.load(sys.stdin)
print(next((s["version"] for s in status["slots"] if s["primary"]), None))')
    if [[ "$got" != "$1" ]]; then
        echo "demo: expected version $1 in the primary slot, found $got" >&2
        exit 1
    fi
}

# slot_of KEY: the name of the slot that status --json marks KEY (primary).
slot_of() {
    "$ABDEPLOY_BIN" --sysroot="$SYSROOT" status --json | python3 -c '
import json, sys
status = json.load(sys.stdin)
print(next((s["name"] for s in status["slots"] if s[sys.argv[1]]), ""))' "$1"
}

# boot: simulate the reboot into the primary slot, as the bootloader would:
# the kernel command line then says abdeploy.slot=X.
boot() {
    local slot
    slot=$(slot_of primary)
    echo "(reboot: the bootloader starts slot $slot)"
    printf 'abdeploy.slot=%s\n' "$slot" >"$ABDEPLOY_CMDLINE"
}

# ---------------------------------------------------------------- signing key
step "Generating a GPG signing key"
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --gen-key <<'EOF'
%no-protection
Key-Type: RSA
Key-Length: 2048
Key-Usage: sign
Name-Real: abdeploy demo publisher
Name-Email: demo@example.invalid
Expire-Date: 0
%commit
EOF
KEY=$(gpg --batch --quiet --with-colons --list-secret-keys 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }')
[[ -n "$KEY" ]] || { echo "demo: key generation failed" >&2; exit 1; }
echo "key $KEY"

# ---------------------------------------------------------------- images
# make_tree VERSION: the sample image, OSTree conventions (defaults in usr/etc,
# kernel and initramfs in usr/lib/modules/$kver/).
make_tree() {
    local version=$1
    rm -rf "$TREE"
    mkdir -p "$TREE/usr/bin" "$TREE/usr/etc" "$TREE/usr/lib/modules/6.1.0-demo"
    printf 'fake kernel for demo %s\n' "$version" >"$TREE/usr/lib/modules/6.1.0-demo/vmlinuz"
    printf 'fake initramfs for demo %s\n' "$version" >"$TREE/usr/lib/modules/6.1.0-demo/initramfs.img"
    printf 'Welcome to the abdeploy demo, version %s\n' "$version" >"$TREE/usr/etc/motd"
    printf 'NAME=demo\nID=demo\nVERSION_ID=%s\n' "$version" >"$TREE/usr/etc/os-release"
    printf '#!/bin/sh\necho "hello from demo %s"\n' "$version" >"$TREE/usr/bin/hello"
    chmod 755 "$TREE/usr/bin/hello"
}

# publish VERSION: abdeploy publish commit of the sample image (signed), then
# publish release on channel stable (the signed manifest devices read).
publish() {
    local version=$1
    make_tree "$version"
    abdeploy publish commit --repo="$REPO" --tree="$TREE" --version="$version" \
        --gpg-sign="$KEY" --gpg-homedir="$GNUPGHOME"
    abdeploy publish release --repo="$REPO" --channel=stable --version="$version" \
        --gpg-sign="$KEY" --gpg-homedir="$GNUPGHOME"
}

step "Publishing image 1.0 on channel stable"
publish 1.0

# ---------------------------------------------------------------- HTTP server
step "Serving the repo with lighttpd on 127.0.0.1"
. "$(dirname "$0")/serve-repo.sh"
serve_repo "$REPO" "$WORK" && URL="$URL/"
if [[ -z "$URL" ]]; then
    echo "demo: the HTTP server did not come up" >&2
    cat "$WORK/lighttpd-error.log" >&2 || true
    exit 1
fi
echo "serving $REPO at $URL"

# ---------------------------------------------------------------- the device
step "Trusting the publisher's key on the device"
mkdir -p "$SYSROOT/etc/abdeploy/trusted.gpg.d"
run gpg --batch --export --output "$SYSROOT/etc/abdeploy/trusted.gpg.d/demo.gpg" "$KEY"

step "Initializing the sysroot and pointing it at channel stable"
abdeploy --sysroot="$SYSROOT" init --os=demo --bootloader=file
printf '[update]\nurl=%s\nchannel=stable\n' "$URL" >"$SYSROOT/etc/abdeploy/abdeploy.conf"
run cat "$SYSROOT/etc/abdeploy/abdeploy.conf"

step "Updating to 1.0 (progress bar on stderr)"
abdeploy --sysroot="$SYSROOT" update --progress=bar
expect_primary 1.0
boot
step "Health check of the first boot"
abdeploy --sysroot="$SYSROOT" health-check --no-reboot
abdeploy --sysroot="$SYSROOT" status

step "Publishing 2.0 and updating to it"
publish 2.0
abdeploy --sysroot="$SYSROOT" check-update
abdeploy --sysroot="$SYSROOT" update --progress=bar
expect_primary 2.0
boot
step "Health check of 2.0"
abdeploy --sysroot="$SYSROOT" health-check --no-reboot
abdeploy --sysroot="$SYSROOT" status

step "Rolling back to 1.0"
abdeploy --sysroot="$SYSROOT" rollback
expect_primary 1.0
boot
abdeploy --sysroot="$SYSROOT" status

step "Rolling forward to 2.0"
# A manual rollback leaves the slot it left bootable (rollback toggles);
# where it does not, update installs 2.0 again.
if ! abdeploy --sysroot="$SYSROOT" rollback; then
    echo "(rollback declined; updating instead)"
    abdeploy --sysroot="$SYSROOT" update --progress=bar
fi
expect_primary 2.0
boot
abdeploy --sysroot="$SYSROOT" health-check --no-reboot
abdeploy --sysroot="$SYSROOT" status

step "Boot pointer ($SYSROOT/boot/abdeploy/pointer)"
cat "$SYSROOT/boot/abdeploy/pointer"

echo
echo "demo OK: published 1.0 and 2.0 on channel stable, updated over HTTP with progress, health-checked, rolled back and forward"
