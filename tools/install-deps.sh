#!/bin/bash
# Install the Debian 12 packages that building, testing and demonstrating
# abdeploy need. Idempotent: when every package is already installed it does
# nothing (no apt-get at all). Run as root; a non-root run succeeds only when
# nothing is missing.
set -euo pipefail

# Everything the build, tools/test.sh (both builds), tools/demo.sh and bench/
# run that a minimal Debian 12 (mmdebstrap --variant=minbase, plus git and
# ca-certificates) lacks. Each program a test or script runs is listed with
# its package below; a program that is not here comes from minbase
# (coreutils, util-linux: unshare, findmnt; e2fsprogs: mkfs.ext4, debugfs,
# chattr; tar, gzip, findutils, ...) or from a package listed for another.
PACKAGES=(
    # build (gcc); zlib for the uboot fuzz target's CRC32
    meson ninja-build pkg-config gcc zlib1g-dev
    libostree-dev ostree libglib2.0-dev libgpgme-dev
    libcurl4-openssl-dev libjson-glib-dev libarchive-dev scdoc libssl-dev
    # the fuzz build: clang, and the libFuzzer and sanitizer runtimes, which
    # clang only recommends
    clang libclang-rt-14-dev
    # tests, demo, benchmark: gpg, gpg-agent, gpgconf (gnupg); pytest;
    # lighttpd with HTTPS (mod_openssl is a package of its own); curl; openssl
    # (test certificates); setfattr (attr); xz (tar -J: the layout-1 fixture,
    # bench/update); systemd-analyze (systemd: the health-check unit is
    # verified); /usr/bin/time (bench/stage); zstd (tar -tf of a backup .tar.zst)
    gnupg python3 python3-pytest lighttpd lighttpd-mod-openssl curl ca-certificates openssl
    attr bash-completion xz-utils zstd systemd time
    # the D-Bus API and its tests: a private dbus-daemon, polkitd, the
    # python3-gi client; setpriv (util-linux) drops the caller's uid
    dbus-daemon polkitd python3-gi
    # EIO injection of the diskfull suite and bench/campaign
    strace
    # bench/update --server nginx|both (issue 18: benchmark against the server
    # most fleets use); no test needs it
    nginx
    # the package suite: dpkg-buildpackage (dpkg-dev; it checks build-essential), dh
    # (debhelper), lintian
    dpkg-dev build-essential debhelper lintian
    # bootloader backends and the boot-path tests: grub-editenv, grub-mkimage
    # (grub-common), grub-emu, fw_printenv/fw_setenv (libubootenv-tool),
    # mkimage (u-boot-tools), sfdisk (fdisk), qemu-system-x86_64, a kernel;
    # the U-Boot VM suite: U-Boot itself (u-boot-qemu), mkfs.vfat
    # (dosfstools) and mcopy/mdir (mtools) for its FAT boot partition
    grub-common grub-emu grub-pc-bin
    # the systemd-boot backend's tests: bootctl (and systemd-bless-boot) of
    # the systemd-boot package; its EFI binary is listed below
    systemd-boot
    libubootenv-tool libubootenv-dev u-boot-tools u-boot-qemu mtools dosfstools
    busybox-static e2fsprogs fdisk qemu-system-x86 linux-image-amd64
    # abdeploy install and the UEFI boot paths (issue 13): GRUB x86_64-efi,
    # FAT partitions without mounting (mkfs.fat, mcopy), OVMF firmware,
    # systemd-boot's EFI binary
    grub-efi-amd64-bin dosfstools mtools ovmf systemd-boot-efi
)

die() {
    echo "install-deps: ERROR: $*" >&2
    exit 1
}

# Prints the packages of "$@" that are not fully installed.
missing_packages() {
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
        if [[ "$status" != ii* ]]; then
            echo "$pkg"
        fi
    done
}

command -v dpkg-query >/dev/null 2>&1 ||
    die "dpkg-query not found: this script supports Debian 12 (bookworm) only"

mapfile -t missing < <(missing_packages "${PACKAGES[@]}")
if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install-deps: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
    die "must run as root to install them; run as root:
    apt-get update && apt-get install -y ${missing[*]}"
fi
command -v apt-get >/dev/null 2>&1 || die "apt-get not found"

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Wait for a concurrent apt/dpkg run instead of failing on its lock.
APT=(apt-get -q -y -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef
     -o Dpkg::Options::=--force-confold)

echo "install-deps: apt-get update"
if ! "${APT[@]}" update >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "apt-get update failed (see the output above); check network access and /etc/apt/sources.list"
fi

echo "install-deps: apt-get install ${missing[*]}"
if ! "${APT[@]}" install --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "apt-get install failed for: ${missing[*]} (see the output above)"
fi

mapfile -t still < <(missing_packages "${PACKAGES[@]}")
if [[ ${#still[@]} -ne 0 ]]; then
    die "still not installed after apt-get install: ${still[*]}"
fi
echo "install-deps: installed ${#missing[@]} package(s); all ${#PACKAGES[@]} present"
