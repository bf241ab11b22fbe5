#!/bin/bash
# tools/check-deb.sh [--fresh-root] [--install] [--keep]
#
# Builds abdeploy's Debian package from this source tree and checks it from
# the outside (issue 16, point 11). Steps:
#   1. copies the tree (committed and uncommitted files git knows, not the
#      ignored ones) into a temporary directory and runs
#      `dpkg-buildpackage -us -uc -b` there: the source tree gets no build
#      products;
#   2. lintian on the .deb and the .buildinfo/.changes: no error (its
#      warnings are printed);
#   3. dpkg-deb -I/-c: the package holds every file it must ship;
#   4. dpkg -x into a temporary root: `abdeploy --help`, `man -l` of every man
#      page, the bash completion (completes "abdeploy st" to status), the
#      dracut module's scripts parse, `systemd-analyze verify --root=ROOT` of
#      the units, and `systemctl --root=ROOT preset` enables the health check
#      and the resume timer and leaves the update timer off;
#   5. with --fresh-root (root only, needs mmdebstrap and the Debian mirror):
#      installs the .deb with apt into a brand-new minimal Debian 12 root
#      (its dependencies and recommendations come from the archive; man-db,
#      bash-completion and systemd are added to check with) and repeats the checks of step 4 on
#      the installed system: abdeploy from PATH, `man SECTION PAGE`, the
#      completion loaded on demand, systemd-analyze verify, and the health
#      check enabled (the update timer not) by the installation itself;
#   6. with --install (root): installs the .deb with apt on THIS system and
#      runs the same checks there; meant for a throwaway root, e.g. a fresh
#      Debian 12 root with the repository cloned in it:
#        apt-get update && apt-get install -y dpkg-dev debhelper lintian git &&
#          apt-get build-dep -y ./ && bash tools/check-deb.sh --install
# --keep keeps the temporary directory (its path is printed).
# Exit status 0 when every check passed; each failure is printed as
# "check-deb: FAIL: ...". The package suite (tests/package) runs steps 1-4;
# steps 5 and 6 are manual (README.md, Debian package).
set -uo pipefail

SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fresh_root=0
install=0
keep=0
for arg in "$@"; do
    case "$arg" in
        --fresh-root) fresh_root=1 ;;
        --install) install=1 ;;
        --keep) keep=1 ;;
        *) echo "usage: check-deb.sh [--fresh-root] [--install] [--keep]" >&2; exit 2 ;;
    esac
done

failures=0
fail() {
    echo "check-deb: FAIL: $*" >&2
    failures=$((failures + 1))
}
ok() {
    echo "check-deb: ok: $*"
}
die() {
    echo "check-deb: ERROR: $*" >&2
    exit 1
}

for tool in dpkg-buildpackage dh lintian dpkg-deb git; do
    command -v "$tool" >/dev/null || die "$tool not found: install dpkg-dev, debhelper, lintian and git (tools/install-deps.sh)"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-deb.XXXXXX")
if [[ $keep -eq 1 ]]; then
    echo "check-deb: keeping $TMP"
else
    trap 'rm -rf "$TMP"' EXIT
fi

# The units and man pages of the source tree, and the files the package
# must hold.
mapfile -t UNITS < <(cd "$SRCDIR/data/systemd" && ls abdeploy-*.service.in abdeploy-*.timer |
                     sed 's/\.in$//')
mapfile -t MAN_PAGES < <(cd "$SRCDIR/man" && ls ./*.scd | sed 's|^\./||; s/\.scd$//')
UNITDIR=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
PRESETDIR=$(pkg-config --variable=systemdsystempresetdir systemd 2>/dev/null || echo /lib/systemd/system-preset)
EXPECTED=(
    /usr/bin/abdeploy
    /usr/share/bash-completion/completions/abdeploy
    "$PRESETDIR/90-abdeploy.preset"
    /usr/lib/abdeploy/health/required.d/10-booted-slot
    /usr/lib/abdeploy/health/wanted.d/50-update-server
    /usr/share/abdeploy/grub/abdeploy.cfg
    /usr/share/abdeploy/grub/abdeploy-select.cfg
    /usr/share/abdeploy/uboot/abdeploy.scr
    /usr/share/abdeploy/uboot/abdeploy.cmd
    /usr/share/abdeploy/prepare-root/abdeploy-prepare-root
    /usr/lib/dracut/modules.d/50abdeploy/module-setup.sh
    /usr/lib/dracut/modules.d/50abdeploy/abdeploy-prepare-root
    /usr/lib/dracut/modules.d/50abdeploy/abdeploy-pre-pivot.sh
    /usr/share/doc/abdeploy/copyright
)
for page in "${MAN_PAGES[@]}"; do
    EXPECTED+=("/usr/share/man/man${page##*.}/$page.gz")
done
for unit in "${UNITS[@]}"; do
    EXPECTED+=("$UNITDIR/$unit")
done
# Files of the D-Bus API (issue 15), when the tree has it.
if [[ -d "$SRCDIR/data/dbus" ]]; then
    EXPECTED+=(/usr/share/dbus-1/system-services/org.abdeploy1.service
               /usr/share/dbus-1/system.d/org.abdeploy1.conf
               /usr/share/dbus-1/interfaces/org.abdeploy1.Manager.xml
               /usr/share/polkit-1/actions/org.abdeploy1.policy)
fi
# The greenboot-style hook directories, vendor and operator, of every stage
# (debian/abdeploy.dirs; required.d and wanted.d hold the default hooks).
HOOK_DIRS=()
for stage in required wanted green red; do
    HOOK_DIRS+=("/usr/lib/abdeploy/health/$stage.d" "/etc/abdeploy/health/$stage.d")
done

# --- 1. build -------------------------------------------------------------
version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$SRCDIR/meson.build" | head -n 1)
deb_version=$(dpkg-parsechangelog -l "$SRCDIR/debian/changelog" -S Version)
[[ "$deb_version" == "$version" ]] ||
    fail "debian/changelog is at $deb_version, meson.build at $version: add a debian/changelog entry (dch -v $version)"

src="$TMP/abdeploy-$version"
mkdir -p "$src"
(cd "$SRCDIR" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -e "$f" || -L "$f" ]] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -C "$src" -xf - || die "copying the source tree failed"

echo "check-deb: dpkg-buildpackage -us -uc -b (log: $TMP/build.log)"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b) >"$TMP/build.log" 2>&1; then
    tail -n 40 "$TMP/build.log" >&2
    die "dpkg-buildpackage failed (the end of its log is above)"
fi
mapfile -t debs < <(find "$TMP" -maxdepth 1 -name 'abdeploy_*.deb')
[[ ${#debs[@]} -eq 1 ]] || die "expected one abdeploy_*.deb, found: ${debs[*]:-none}"
deb=${debs[0]}
ok "built $(basename "$deb")"
# Ignored files in debian/ or obj-*/ would be what a build in the tree leaves.
[[ -z "$(cd "$SRCDIR" && git status --porcelain --ignored -- debian 'obj-*' | grep '^!!')" ]] ||
    fail "the source tree has build products in debian/ or obj-*/"

# --- 2. lintian -----------------------------------------------------------
changes=$(find "$TMP" -maxdepth 1 -name 'abdeploy_*.changes' | head -n 1)
lintian --info --display-level '>=warning' "${changes:-$deb}" >"$TMP/lintian.log" 2>&1
grep -E '^[EW]: ' "$TMP/lintian.log" | sed 's/^/check-deb: lintian: /'
if grep -q '^E: ' "$TMP/lintian.log"; then
    fail "lintian reports errors (above)"
else
    ok "lintian: no error ($(grep -c '^W: ' "$TMP/lintian.log") warning(s))"
fi

# --- 3. contents ----------------------------------------------------------
dpkg-deb -I "$deb" >"$TMP/info.txt" || fail "dpkg-deb -I failed"
grep -q '^ Package: abdeploy$' "$TMP/info.txt" || fail "dpkg-deb -I: no Package: abdeploy"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' >"$TMP/contents.txt"
for f in "${EXPECTED[@]}" "${HOOK_DIRS[@]}"; do
    grep -qxF "$f" "$TMP/contents.txt" || fail "the package lacks $f"
done
ok "the package holds the ${#EXPECTED[@]} expected files"

# --- 4. extracted root ----------------------------------------------------
# check_help RUN...: RUN abdeploy --help prints the commands.
check_help() {
    local out
    if out=$("$@" --help 2>&1) && grep -q 'health-check' <<<"$out"; then
        ok "abdeploy --help"
    else
        fail "abdeploy --help: $out"
    fi
}

# check_units ROOT [preset]: systemd-analyze verify of the units; the health
# check and the resume timer enabled and the update timer not, after
# `systemctl preset` when asked
# (an unpacked root), else as the package's installation left them.
check_units() {
    local root=$1 out before=$failures
    # Documentation= is checked too: man looks for the pages in ROOT.
    if out=$(cd "$root" && MANPATH="$root/usr/share/man" systemd-analyze verify --root="$root" \
            "${UNITS[@]}" 2>&1); then
        ok "systemd-analyze verify --root of ${UNITS[*]}"
    else
        fail "systemd-analyze verify --root=$root: $out"
    fi
    if [[ ${2:-} == preset ]]; then
        systemctl --root="$root" preset "${UNITS[@]}" >/dev/null 2>&1 ||
            fail "systemctl --root preset failed"
    fi
    local state
    state=$(systemctl --root="$root" is-enabled abdeploy-healthcheck.service 2>&1)
    [[ "$state" == enabled ]] || fail "abdeploy-healthcheck.service is $state, not enabled"
    state=$(systemctl --root="$root" is-enabled abdeploy-resume.timer 2>&1)
    [[ "$state" == enabled ]] || fail "abdeploy-resume.timer is $state, not enabled"
    state=$(systemctl --root="$root" is-enabled abdeploy-update.timer 2>&1)
    [[ "$state" == disabled ]] || fail "abdeploy-update.timer is $state, not disabled"
    [[ $failures -eq $before ]] &&
        ok "${2:-installed}: health check and resume timer enabled, update timer disabled"
}

# check_dracut ROOT: the dracut module's scripts are executable and parse.
check_dracut() {
    local dir=$1/usr/lib/dracut/modules.d/50abdeploy f
    for f in module-setup.sh abdeploy-prepare-root abdeploy-pre-pivot.sh; do
        [[ -x "$dir/$f" ]] || fail "dracut module: $f is not executable"
    done
    bash -n "$dir/module-setup.sh" && sh -n "$dir/abdeploy-prepare-root" &&
        sh -n "$dir/abdeploy-pre-pivot.sh" && ok "dracut module 50abdeploy" ||
        fail "dracut module: a script does not parse"
}

root="$TMP/root"
dpkg -x "$deb" "$root" || die "dpkg -x failed"
check_help "$root/usr/bin/abdeploy"
pages=0
for page in "$root"/usr/share/man/man*/*.gz; do
    out=$(MANPAGER=cat MANWIDTH=80 man -l "$page" 2>&1)
    if [[ $? -eq 0 ]] && grep -q '^NAME' <<<"$out"; then
        pages=$((pages + 1))
    else
        fail "man -l $page: $out"
    fi
done
[[ $pages -eq ${#MAN_PAGES[@]} ]] && ok "man -l of $pages man pages" ||
    fail "$pages man pages render, expected ${#MAN_PAGES[@]}"
if [[ -r /usr/share/bash-completion/bash_completion ]]; then
    got=$(bash -c 'source /usr/share/bash-completion/bash_completion
        source "$1/usr/share/bash-completion/completions/abdeploy"
        COMP_WORDS=(abdeploy st); COMP_CWORD=1; COMP_LINE="abdeploy st"; COMP_POINT=11
        _abdeploy abdeploy st abdeploy; echo "${COMPREPLY[*]}"' check "$root" 2>&1)
    [[ " $got " == *" status "* ]] && ok "completion: abdeploy st -> $got" ||
        fail "completion of 'abdeploy st' offers no status: $got"
else
    fail "bash-completion is not installed on this machine: cannot check the completion"
fi
check_dracut "$root"
# systemd-analyze verify --root needs the targets the units name.
mkdir -p "$root/lib/systemd/system" "$root/etc/systemd/system"
for t in /lib/systemd/system/{boot-complete,local-fs,multi-user,timers,network-online,sysinit,basic,shutdown}.target \
         /lib/systemd/system/dbus.{service,socket}; do
    [[ -e "$root$t" ]] || cp "$t" "$root$t" 2>/dev/null || true
done
# Without dbus on this machine, a stand-in for the socket that the daemon's
# Type=dbus unit requires (the package recommends dbus).
[[ -e "$root/lib/systemd/system/dbus.socket" ]] ||
    printf '[Unit]\nDescription=stand-in for systemd-analyze verify\n[Socket]\nListenStream=/run/dbus/system_bus_socket\n' \
        >"$root/lib/systemd/system/dbus.socket"
check_units "$root" preset

# --- 5. installed system --------------------------------------------------
# write_root_checks FILE: the checks of step 4 on an installed system, as a
# script run with the root as argument ("/" for this machine).
write_root_checks() {
    {
        echo 'set -uo pipefail; failures=0; r=$1'
        declare -p UNITS MAN_PAGES
        declare -f ok fail check_help check_units check_dracut
        cat <<'CHECKS'
chroot "$r" dpkg-query -W -f='${Status}\n' abdeploy | grep -qx 'install ok installed' &&
    ok "dpkg: abdeploy installed with its dependencies" || fail "abdeploy is not installed"
check_help chroot "$r" abdeploy
n=0
for p in "${MAN_PAGES[@]}"; do
    chroot "$r" env MANPAGER=cat MANWIDTH=80 man "${p##*.}" "${p%.*}" 2>&1 | grep -q '^NAME' &&
        n=$((n + 1)) || fail "man ${p##*.} ${p%.*} on the installed system"
done
[[ $n -eq ${#MAN_PAGES[@]} ]] && ok "man finds the $n pages"
got=$(chroot "$r" bash -c 'source /usr/share/bash-completion/bash_completion
    _completion_loader abdeploy; COMP_WORDS=(abdeploy st); COMP_CWORD=1
    COMP_LINE="abdeploy st"; COMP_POINT=11; _abdeploy abdeploy st abdeploy; echo "${COMPREPLY[*]}"' 2>&1)
[[ " $got " == *" status "* ]] && ok "completion loaded on demand: $got" ||
    fail "completion on the installed system: $got"
check_dracut "$r"
check_units "$r"
exit $((failures != 0))
CHECKS
    } >"$1"
}

if [[ $install -eq 1 ]]; then
    [[ $(id -u) -eq 0 ]] || die "--install needs root"
    write_root_checks "$TMP/check-root.sh"
    echo "check-deb: apt-get install of the .deb on this system (log: $TMP/install.log)"
    cp "$deb" "$TMP/abdeploy.deb"
    if DEBIAN_FRONTEND=noninteractive apt-get install --yes -o APT::Install-Recommends=true \
            "$TMP/abdeploy.deb" man-db bash-completion systemd >"$TMP/install.log" 2>&1; then
        bash "$TMP/check-root.sh" / | sed 's/^check-deb: ok: /check-deb: ok: installed: /' ||
            fail "a check of the installed package failed (above)"
    else
        tail -n 30 "$TMP/install.log" >&2
        fail "apt-get install of the .deb failed (above)"
    fi
fi

if [[ $fresh_root -eq 1 ]]; then
    [[ $(id -u) -eq 0 ]] || die "--fresh-root needs root (mmdebstrap, chroot)"
    command -v mmdebstrap >/dev/null || die "--fresh-root needs mmdebstrap"
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1)
    [[ -n "$mirror" ]] || mirror=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    cp "$deb" "$TMP/abdeploy.deb"
    write_root_checks "$TMP/check-root.sh"
    echo "check-deb: installing the .deb into a fresh Debian 12 root (mmdebstrap, about a minute)"
    # apt inside the new root installs the .deb and fetches its dependencies
    # and recommendations (dbus: the daemon's unit needs dbus.socket);
    # mmdebstrap's --include=FILE.deb does not reach a chrooted dpkg. The
    # checks run on this machine with the new root as argument.
    if ! mmdebstrap --verbose --variant=minbase --include=man-db,bash-completion,systemd \
            --customize-hook="copy-in '$TMP/abdeploy.deb' /tmp" \
            --customize-hook='chroot "$1" apt-get install --yes -o APT::Install-Recommends=true /tmp/abdeploy.deb' \
            --customize-hook="bash '$TMP/check-root.sh' \"\$1\"" \
            bookworm /dev/null ${mirror:+"$mirror"} >"$TMP/mmdebstrap.log" 2>&1; then
        grep -v '^I: \|^Get:\|^Unpacking \|^Setting up \|^Selecting \|^Preparing \|^Processing ' \
            "$TMP/mmdebstrap.log" | tail -n 40 >&2
        fail "the fresh-root install or a check in it failed (above)"
    else
        grep '^check-deb: ok: ' "$TMP/mmdebstrap.log" | sed 's/^check-deb: ok: /check-deb: ok: fresh root: /'
        ok "installed and checked in a fresh Debian 12 root"
    fi
fi

if [[ $failures -ne 0 ]]; then
    echo "check-deb: $failures check(s) failed" >&2
    exit 1
fi
echo "check-deb: all checks passed"
