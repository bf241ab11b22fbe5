"""Builds the disk images of abdeploy's VM tests (tests/vm).

Everything comes from Debian packages and the project's build; nothing is
mounted and nothing is fetched from the network:

- OS trees: busybox-static, the abdeploy binary and the GnuPG programs that
  libostree's signature check runs, each with the libraries ldd names; the
  guest init (tests/vm/guest-init); the Debian kernel with a busybox
  initramfs whose /init is abdeploy's prepare-root step
  (data/prepare-root/abdeploy-prepare-root).
- Commits: `abdeploy publish commit`, signed with a throw-away GPG key
  (made with tests/lib/abtest.py, the helpers the test suites share).
- The disk: `abdeploy install --bootloader=NAME` (the product's factory
  install, abdeploy-install(8)): partition table, file systems, bootloader,
  sysroot with v1 in slot a, good.
- Read-back: debugfs on the root partition (`file?offset=N`, the offset
  from `sfdisk --json`), mtools on the FAT partition.

Standard library only; tests/vm/build-image is the command-line front end.
"""

import gzip
import io
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("ABDEPLOY_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
_LIBDIR = os.path.join(os.path.dirname(HERE), "lib")
if _LIBDIR not in sys.path:
    sys.path.insert(0, _LIBDIR)

import abtest as at  # noqa: E402

OS_NAME = "vmtest"
SECTOR = 512
PART_START = 2048                  # sectors: 1 MiB, room for core.img
PART_OFFSET = PART_START * SECTOR
FS_SIZE_MB = 320
PANIC_SECONDS = 2
# Kernel arguments of the test disks (abdeploy install adds root=UUID=...).
KERNEL_ARGS = ["console=ttyS0", "panic=%d" % PANIC_SECONDS, "loglevel=4"]
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS.fd"
SDBOOT_EFI = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
# systemd's boot assessment tool, run in the systemd-boot guests to check
# that it agrees with abdeploy (and with libsystemd-shared, from ldd)
BLESS_BOOT = "/usr/lib/systemd/systemd-bless-boot"
# --bootloader of abdeploy install -> what the host needs to build and boot
# it (uboot: install_uboot() and missing_tools())
BOOTLOADERS = {
    "grub-bios": {"firmware": "bios", "size": "400M", "files": ["/usr/lib/grub/i386-pc/boot.img"],
                  "tools": ["grub-mkimage", "grub-editenv"]},
    "grub-efi": {"firmware": "uefi", "size": "400M",
                 "files": ["/usr/lib/grub/x86_64-efi/linux.mod", OVMF_CODE, OVMF_VARS],
                 "tools": ["grub-mkimage", "grub-editenv", "mkfs.fat", "mcopy"]},
    # the ESP (512 MiB) holds both slots' kernels and initramfs images
    "systemd-boot": {"firmware": "uefi", "size": "900M",
                     "files": [SDBOOT_EFI, OVMF_CODE, OVMF_VARS, BLESS_BOOT],
                     "tools": ["mkfs.fat", "mcopy", "bootctl", "unshare"]},
}
# Kernel modules of the initramfs: the disk (virtio-blk) and ext4.
KMODS = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"]
# ... and vfat: the U-Boot disk's boot partition (kernels, uboot.env) is FAT,
# mounted on /sysroot/boot by guest-init.
KMODS_FAT = ["vfat", "nls_cp437", "nls_ascii", "nls_utf8"]

# U-Boot (Debian u-boot-qemu): the 32-bit qemu-x86 ROM, run as qemu -bios.
# (qemu-x86_64 runs too, but its zboot resets the machine at "Loading
# bzImage": U-Boot 2023.01 cannot start a Linux kernel from 64-bit mode.)
UBOOT_ROM = "/usr/lib/u-boot/qemu-x86/u-boot.rom"
BOOT_PART_MB = 256                # FAT boot partition of abdeploy install --bootloader=uboot
UBOOT_ENV_SIZE = 0x4000
# The environment files on the FAT partition (its root), the two copies of
# the redundant layout; the single layout has the first one only.
UBOOT_ENV_FILES = ("uboot.env", "uboot-redund.env")
GPG_PROGRAMS = ["/usr/bin/gpg", "/usr/bin/gpg-agent", "/usr/bin/gpgconf", "/usr/bin/gpgv"]

HOOK_OK = ("#!/bin/sh\n"
           "# Required health check of the VM test images: the system came up.\n"
           "echo \"vmtest $ABDEPLOY_VERSION is up in slot $ABDEPLOY_SLOT\"\n")
FAILING_HOOK = "50-app-check"
HOOK_FAIL = ("#!/bin/sh\n"
             "# Required health check that fails: the v3 image's application is broken.\n"
             "echo 'app service did not start' >&2\n"
             "exit 1\n")
PANIC_INIT = ("#!/bin/sh\n"
              "# A broken initramfs: /init exits before any userspace, the kernel panics.\n"
              "mount -t proc proc /proc\n"
              "slot=$(sed -n 's/.*abdeploy\\.slot=\\([ab]\\).*/\\1/p' /proc/cmdline)\n"
              "echo \"ABDEPLOY-TEST: initramfs of a broken image in slot=$slot: /init exits, "
              "kernel panics\"\n"
              "exit 1\n")

# version -> what differs from a plain good image
VERSIONS = {
    "1.0": {},
    "2.0": {},
    "3.0": {"failing_hook": True},
    "4.0": {"panic": True},
    "5.0": {},
    "6.0": {},
}


def ref_of(version):
    return "vmtest/v" + version.split(".")[0]


class BuildError(Exception):
    pass


def run(cmd, *, env=None, cwd=None, input=None, timeout=600, check=True):
    p = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, input=input,
                       capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise BuildError("command failed (exit %d): %s\nstdout:\n%s\nstderr:\n%s" % (
            p.returncode, " ".join(map(str, cmd)), p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace")))
    return p


def clean_env(extra=None):
    """abtest.clean_env() with EXTRA on top."""
    return at.clean_env(extra=extra)


def rmtree(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)
        if os.path.lexists(path):
            subprocess.run(["chattr", "-R", "-i", path], capture_output=True)
            shutil.rmtree(path)


# --------------------------------------------------------------------------
# Host requirements


def find_kernel():
    """(kver, vmlinuz path, modules dir) of a Debian kernel, or None.

    ABDEPLOY_VM_KERNEL=/boot/vmlinuz-X picks one; otherwise the newest
    /boot/vmlinuz-* that has its modules in /lib/modules."""
    wanted = os.environ.get("ABDEPLOY_VM_KERNEL")
    candidates = [wanted] if wanted else sorted(
        (os.path.join("/boot", n) for n in os.listdir("/boot") if n.startswith("vmlinuz-")),
        reverse=True) if os.path.isdir("/boot") else []
    for path in candidates:
        kver = os.path.basename(path)[len("vmlinuz-"):]
        mods = os.path.join("/lib/modules", kver)
        if os.path.isfile(path) and os.access(path, os.R_OK) and \
                os.path.isfile(os.path.join(mods, "modules.dep")):
            return kver, path, mods
    return None


def missing_tools(bootloader="grub-bios"):
    tools = ["qemu-system-x86_64", "sfdisk", "mkfs.ext4", "debugfs", "busybox", "gpg", "ostree",
             "ldd"]
    if bootloader == "uboot":
        tools += ["mkimage", "mkfs.vfat", "mcopy", "mdir", "fw_printenv"]
        files = [UBOOT_ROM]
    else:
        tools += BOOTLOADERS[bootloader]["tools"]
        files = BOOTLOADERS[bootloader]["files"]
    missing = [t for t in tools if shutil.which(t) is None]
    return missing + [f for f in files if not os.path.exists(f)]


def busybox_path():
    """The static busybox (busybox-static); a dynamic one would need its libs."""
    for p in ("/usr/bin/busybox", "/bin/busybox"):
        if os.path.exists(p):
            out = run(["file", "-L", p], check=False).stdout.decode() if shutil.which("file") else ""
            if not out or "statically linked" in out or "static-pie" in out:
                return p
    raise BuildError("no static busybox: install busybox-static")


# --------------------------------------------------------------------------
# Files of a tree


def write(path, content, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    with open(path, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
    os.chmod(path, mode)


def symlink(target, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)


def ldd_closure(programs):
    """Absolute paths of the shared libraries (and the loader) of PROGRAMS."""
    libs = set()
    for prog in programs:
        out = run(["ldd", prog]).stdout.decode()
        for line in out.splitlines():
            m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
            if m:
                libs.add(m.group(1))
    return sorted(libs)


def usr_path(path):
    """Where a host path goes in a merged-/usr tree: /lib/x -> usr/lib/x."""
    rel = path.lstrip("/")
    return rel if rel.startswith("usr/") else "usr/" + rel


def copy_file(src, tree, dest_rel=None):
    dest = os.path.join(tree, dest_rel or usr_path(src))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.lexists(dest):
        os.unlink(dest)
    shutil.copyfile(src, dest)       # follows symlinks: the loader opens by name
    os.chmod(dest, stat.S_IMODE(os.stat(src).st_mode))


# --------------------------------------------------------------------------
# initramfs (cpio newc, written here: no root needed for /dev/console)


class Cpio:
    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        namebytes = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
            len(namebytes), 0))
        self.ino += 1
        self.buf.write(hdr.encode() + namebytes)
        self.buf.write(b"\0" * (-(110 + len(namebytes)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name, mode=0o755):
        self._entry(name, stat.S_IFDIR | mode, nlink=2)

    def file(self, name, data, mode=0o644):
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor, mode=0o600):
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return gzip.compress(self.buf.getvalue(), compresslevel=6, mtime=0)


def module_closure(moddir, names):
    """Relative .ko paths for NAMES and their dependencies, dependencies first."""
    deps = {}
    with open(os.path.join(moddir, "modules.dep")) as f:
        for line in f:
            key, _, rest = line.partition(":")
            deps[key] = rest.split()
    by_name = {}
    for key in deps:
        base = os.path.basename(key)
        base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
        by_name[base.replace("-", "_")] = key
    order = []

    def visit(key):
        if key in order:
            return
        for d in deps.get(key, []):
            visit(d)
        order.append(key)

    for n in names:
        key = by_name.get(n.replace("-", "_"))
        if key is None:
            if _builtin(moddir, n):
                continue
            raise BuildError("kernel module %s not found in %s" % (n, moddir))
        visit(key)
    return order


def _builtin(moddir, name):
    try:
        with open(os.path.join(moddir, "modules.builtin")) as f:
            return any(os.path.basename(l.strip()).startswith(name + ".ko") for l in f)
    except OSError:
        return False


def plain_module(path):
    """The bytes of kernel module PATH as a plain .ko: busybox insmod loads
    no compressed modules, so unpack what Python can."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if not path.endswith(".ko"):
        raise BuildError("kernel module %s: compression not supported by the test" % path)
    return data


def build_initramfs(kernel, busybox, init_script, dest):
    """A busybox initramfs: /init = INIT_SCRIPT, the disk and ext4 modules."""
    kver, _, moddir = kernel
    c = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "sysroot", "etc", "etc/abdeploy",
              "lib", "lib/modules"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/null", 1, 3, 0o666)
    with open(busybox, "rb") as f:
        c.file("bin/busybox", f.read(), 0o755)
    for applet in ("sh", "mount", "umount", "mkdir", "cat", "readlink", "sleep", "insmod",
                   "modprobe", "findfs", "switch_root", "basename", "echo", "grep", "ls", "sed"):
        c.symlink("bin/" + applet, "busybox")
    listing = []
    for rel in module_closure(moddir, KMODS + KMODS_FAT):
        data = plain_module(os.path.join(moddir, rel))
        name = "lib/modules/" + os.path.basename(rel).split(".ko")[0] + ".ko"
        c.file(name, data)
        listing.append("/" + name)
    c.file("etc/abdeploy/initramfs-modules",
           ("# loaded in this order by abdeploy-prepare-root\n" + "\n".join(listing) + "\n").encode())
    c.file("init", init_script.encode() if isinstance(init_script, str) else init_script, 0o755)
    data = c.finish()
    with open(dest, "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------
# OS trees and commits


def build_base_tree(base, binary, kernel, busybox, pubkey):
    """Files shared by every image version (usr only; hardlinked per version)."""
    rmtree(base)
    os.makedirs(base)
    # busybox and its applets in usr/bin (init is the test's own)
    copy_file(busybox, base, "usr/bin/busybox")
    applets = run([busybox, "--list"]).stdout.decode().split()
    for a in applets:
        if a in ("init", "linuxrc", "busybox"):
            continue
        symlink("busybox", os.path.join(base, "usr/bin", a))
    # abdeploy, gpg and their libraries
    copy_file(binary, base, "usr/bin/abdeploy")
    progs = [binary] + [p for p in GPG_PROGRAMS + [BLESS_BOOT] if os.path.exists(p)]
    for p in progs[1:]:
        copy_file(p, base)
    for lib in ldd_closure(progs):
        copy_file(lib, base)
    # the kernel (vmlinuz is the same object in every version)
    kver, vmlinuz, moddir = kernel
    copy_file(vmlinuz, base, "usr/lib/modules/%s/vmlinuz" % kver)
    # efivarfs (a module in Debian's kernel), for systemd-bless-boot under
    # UEFI: guest-init loads it with busybox insmod, which wants a plain .ko
    for rel in module_closure(moddir, ["efivarfs"]):
        write(os.path.join(base, "usr/lib/vmtest", os.path.basename(rel).split(".ko")[0] + ".ko"),
              plain_module(os.path.join(moddir, rel)))
    # configuration defaults (/etc is made from usr/etc at deploy time)
    write(os.path.join(base, "usr/etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")
    write(os.path.join(base, "usr/etc/group"), "root:x:0:\n")
    write(os.path.join(base, "usr/etc/abdeploy/abdeploy.conf"),
          "# VM test image: no systemd; the reboot command ends in busybox reboot -f\n"
          "[health]\nreboot-command=/usr/libexec/vmtest-reboot\ntimeout-sec=60\n")
    # the U-Boot disk's environment, on the FAT partition guest-init mounts
    # on /sysroot/boot (= /boot); unused by the GRUB disk
    write(os.path.join(base, "usr/etc/fw_env.config"), fw_env_config("/boot"))
    write(os.path.join(base, "usr/libexec/vmtest-reboot"),
          open(os.path.join(HERE, "vmtest-reboot")).read(), 0o755)
    with open(pubkey, "rb") as f:
        write(os.path.join(base, "usr/etc/abdeploy/trusted.gpg.d/vmtest.gpg"), f.read())
    write(os.path.join(base, "usr/lib/abdeploy/health/required.d/10-vmtest-up"), HOOK_OK, 0o755)
    write(os.path.join(base, "usr/sbin/init"),
          open(os.path.join(HERE, "guest-init")).read(), 0o755)


def link_tree(src, dst):
    """Copies SRC to DST with hardlinks for files (cheap per-version trees)."""
    rmtree(dst)
    shutil.copytree(src, dst, symlinks=True, copy_function=os.link)


def build_version_tree(root, base, version, kernel, busybox):
    spec = VERSIONS[version]
    tree = os.path.join(root, "tree-" + version)
    link_tree(base, tree)
    kver = kernel[0]
    # top level of a merged-/usr image with abdeploy's prepare-root links
    for d in ("dev", "proc", "sys", "run", "tmp", "var", "sysroot", "media", "root", "efi"):
        os.makedirs(os.path.join(tree, d), exist_ok=True)
    os.chmod(os.path.join(tree, "tmp"), 0o1777)
    for name, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"),
                         ("lib64", "usr/lib64"), ("abdeploy", "sysroot/abdeploy"),
                         ("ostree", "sysroot/ostree"), ("boot", "sysroot/boot")):
        symlink(target, os.path.join(tree, name))
    write(os.path.join(tree, "usr/lib/os-release"),
          "NAME=%s\nID=%s\nVERSION_ID=%s\n" % (OS_NAME, OS_NAME, version))
    symlink("../usr/lib/os-release", os.path.join(tree, "usr/etc/os-release"))
    if spec.get("failing_hook"):
        write(os.path.join(tree, "usr/lib/abdeploy/health/required.d", FAILING_HOOK),
              HOOK_FAIL, 0o755)
    prepare_root = open(os.path.join(SRCDIR, "data/prepare-root/abdeploy-prepare-root")).read()
    build_initramfs(kernel, busybox, PANIC_INIT if spec.get("panic") else prepare_root,
                    os.path.join(tree, "usr/lib/modules", kver, "initramfs.img"))
    return tree


class Gpg(at.GpgHome):
    """A new GNUPGHOME with one signing key (ed25519, else RSA), .fpr."""

    def __init__(self, homedir):
        rmtree(homedir)
        super().__init__(homedir)
        try:
            self.fpr = self.generate("abdeploy VM tests", "vmtest@example.org",
                                     algo="ed25519", fallback="rsa2048")
        except AssertionError as e:     # a failed gpg run
            raise BuildError(str(e))

    def export(self, dest):
        """Write the public key to DEST; returns DEST."""
        try:
            return super().export(self.fpr, dest)
        except AssertionError as e:
            raise BuildError(str(e))


def publish(binary, repo, tree, version, gpg):
    out = run([binary, "publish", "commit", "--repo=" + repo, "--tree=" + tree,
               "--version=" + version, "--branch=" + ref_of(version),
               "--gpg-sign=" + gpg.fpr, "--gpg-homedir=" + gpg.homedir],
              env=gpg.env).stdout.decode()
    m = re.search(r"[0-9a-f]{64}", out)
    if not m:
        raise BuildError("publish commit printed no commit: %r" % out)
    return m.group(0)


# --------------------------------------------------------------------------
# Sysroot, disk, media


def fw_env_config(bootdir, layout="redundant"):
    """fw_env.config of the U-Boot disk's environment in BOOTDIR."""
    files = UBOOT_ENV_FILES if layout == "redundant" else UBOOT_ENV_FILES[:1]
    return "".join("%s 0x0 0x%x\n" % (os.path.join(bootdir, f), UBOOT_ENV_SIZE) for f in files)


def single_copy_script(disk, workdir, dest):
    """DEST: the boot.scr of DISK (made by abdeploy install) without its
    abdeploy_envfile_redund line: the same board, one env copy."""
    scr = os.path.join(workdir, "boot.scr.orig")
    fat_read(disk, "boot.scr", scr)
    with open(scr, "rb") as f:
        data = f.read()
    length = int.from_bytes(data[64:68], "big")           # legacy script image:
    text = data[72:72 + length].decode()                  # header, length table, text
    lines = [l for l in text.split("\n") if not l.startswith("abdeploy_envfile_redund=")]
    cmd = os.path.join(workdir, "boot-single.cmd")
    write(cmd, "\n".join(lines))
    run(["mkimage", "-A", "arm", "-T", "script", "-C", "none", "-n", "boot", "-d", cmd, dest])


def install_uboot(binary, repo, pubkey, disk, workdir):
    """The U-Boot disk, made by `abdeploy install --bootloader=uboot` (v1 in
    slot a, good): a FAT boot partition (boot.scr, the kernels, uboot.env and
    uboot-redund.env) and the ext4 root.  The FAT partition is mounted by
    guest-init's mount -a, from the fstab line install wrote.  Returns whether abdeploy has crash points."""
    cmdline = os.path.join(workdir, "host-cmdline")
    write(cmdline, "")
    trace = os.path.join(workdir, "crash-trace")
    if os.path.exists(trace):
        os.unlink(trace)
    if os.path.exists(disk):
        os.unlink(disk)
    env = clean_env({"ABDEPLOY_CMDLINE": cmdline, "ABDEPLOY_CRASH_TRACE": trace,
                     "ABDEPLOY_DATADIR": os.path.join(SRCDIR, "data")})
    run([binary, "install", "--disk=" + disk, "--size=%dM" % (BOOT_PART_MB + FS_SIZE_MB + 2),
         "--bootloader=uboot", "--from=" + repo, "--os=" + OS_NAME, "--trusted-key=" + pubkey,
         "--kernel-arg=console=ttyS0", "--kernel-arg=panic=%d" % PANIC_SECONDS,
         "--kernel-arg=loglevel=4", ref_of("1.0")],
        env=env)
    return os.path.exists(trace)


def install_disk(binary, disk, repo, pubkey, bootloader, workdir):
    """`abdeploy install --bootloader=BOOTLOADER` of v1 onto a new image file
    DISK (grub-bios, grub-efi, systemd-boot); returns whether abdeploy has
    crash points."""
    for leftover in (disk, disk + ".tmp"):
        if os.path.exists(leftover):
            os.unlink(leftover)
    cmdline = os.path.join(workdir, "host-cmdline")
    write(cmdline, "")
    trace = os.path.join(workdir, "crash-trace")
    if os.path.exists(trace):
        os.unlink(trace)
    env = clean_env({"ABDEPLOY_CMDLINE": cmdline, "ABDEPLOY_CRASH_TRACE": trace,
                     "ABDEPLOY_DATADIR": os.path.join(SRCDIR, "data")})
    run([binary, "install", "--disk=" + disk, "--size=" + BOOTLOADERS[bootloader]["size"],
         "--bootloader=" + bootloader, "--from=" + repo, "--os=" + OS_NAME,
         "--trusted-key=" + pubkey] + ["--kernel-arg=" + a for a in KERNEL_ARGS]
        + [ref_of("1.0")], env=env)
    return os.path.exists(trace)


def build_media(mediadir, image, size_mb=None):
    """An ext4 file system (no partition table) holding MEDIADIR."""
    if os.path.exists(image):
        os.unlink(image)
    if size_mb is None:
        used = sum(os.lstat(os.path.join(d, n)).st_size
                   for d, _, names in os.walk(mediadir) for n in names)
        size_mb = max(32, int(used * 1.5 / 2**20) + 32)
    with open(image, "wb") as f:
        f.truncate(size_mb * 2**20)
    run(["mkfs.ext4", "-q", "-F", "-L", "vmtest-media", "-d", mediadir, image])


def build_all(workdir, binary, log=print, bootloader="grub-bios"):
    """Builds keys, trees, the publisher repo and the first disk in WORKDIR
    (abdeploy install --bootloader=BOOTLOADER).

    Returns a dict describing what was built (also saved as build.json)."""
    kernel = find_kernel()
    if kernel is None:
        raise BuildError("no kernel: install linux-image-amd64 (/boot/vmlinuz-*)")
    busybox = busybox_path()
    os.makedirs(workdir, exist_ok=True)
    gpg = Gpg(os.path.join(workdir, "gnupg"))
    try:
        pubkey = gpg.export(os.path.join(workdir, "vmtest.gpg"))
        base = os.path.join(workdir, "base")
        build_base_tree(base, binary, kernel, busybox, pubkey)
        repo = os.path.join(workdir, "repo")
        rmtree(repo)
        run(["ostree", "init", "--mode=archive", "--repo=" + repo])
        commits = {}
        for version in VERSIONS:
            tree = build_version_tree(workdir, base, version, kernel, busybox)
            commits[version] = publish(binary, repo, tree, version, gpg)
            rmtree(tree)
        log("published %s" % ", ".join("%s=%s" % (v, c[:12]) for v, c in commits.items()))
    finally:
        gpg.close()
    disk = os.path.join(workdir, "disk.img")
    t = time.monotonic()
    if bootloader == "uboot":
        crash_points = install_uboot(binary, repo, pubkey, disk, workdir)
    else:
        crash_points = install_disk(binary, disk, repo, pubkey, bootloader, workdir)
    secs = time.monotonic() - t
    used = os.stat(disk).st_blocks * 512
    log("abdeploy install --bootloader=%s: %.1f s, image %d MiB (%d MiB allocated)" % (
        bootloader, secs, os.path.getsize(disk) >> 20, used >> 20))
    info = {"kver": kernel[0], "commits": commits, "repo": repo, "disk": disk,
            "bootloader": bootloader, "install_seconds": secs,
            "disk_bytes": os.path.getsize(disk), "disk_used": used,
            "crash_points": crash_points,
            "refs": {v: ref_of(v) for v in VERSIONS}}
    with open(os.path.join(workdir, "build.json"), "w") as f:
        json.dump(info, f, indent=1)
    return info


# --------------------------------------------------------------------------
# Reading the disk back


_ROOT_OFFSETS = {}


def root_offset(disk):
    """Byte offset of the ext4 root on DISK: the last partition of every
    layout of abdeploy install (abdeploy-install(8)), GPT or MBR."""
    if disk not in _ROOT_OFFSETS:
        table = json.loads(run(["sfdisk", "--json", disk]).stdout.decode())["partitiontable"]
        _ROOT_OFFSETS[disk] = table["partitions"][-1]["start"] * SECTOR
    return _ROOT_OFFSETS[disk]


def debugfs(disk, request):
    p = run(["debugfs", "-R", request, "%s?offset=%d" % (disk, root_offset(disk))], check=False)
    return p.stdout


def fat_read(disk, name, dest):
    """Copies NAME from the U-Boot disk's FAT partition to DEST (mtools)."""
    if os.path.exists(dest):
        os.unlink(dest)
    run(["mcopy", "-n", "-i", "%s@@%d" % (disk, PART_OFFSET), "::/" + name, dest])


def fat_write(disk, name, src):
    """Replaces NAME on the U-Boot disk's FAT partition by SRC."""
    run(["mcopy", "-o", "-i", "%s@@%d" % (disk, PART_OFFSET), src, "::/" + name])


def fat_ls(disk, path="/"):
    return run(["mdir", "-b", "-i", "%s@@%d" % (disk, PART_OFFSET), "::" + path],
               check=False).stdout.decode(errors="replace")


def ubootenv_files(disk, dest_dir, layout="redundant"):
    """The env files of the U-Boot disk, copied to DEST_DIR; returns the
    path of the fw_env.config that describes them there."""
    os.makedirs(dest_dir, exist_ok=True)
    files = UBOOT_ENV_FILES if layout == "redundant" else UBOOT_ENV_FILES[:1]
    for name in files:
        fat_read(disk, name, os.path.join(dest_dir, name))
    config = os.path.join(dest_dir, "fw_env.config")
    write(config, fw_env_config(dest_dir, layout))
    return config


def ubootenv(disk, workdir, layout="redundant"):
    """The U-Boot environment on DISK as a dict, read by fw_printenv
    (libubootenv: CRCs, and the flags of two copies)."""
    config = ubootenv_files(disk, os.path.join(workdir, "ubootenv.extracted"), layout)
    p = run(["fw_printenv", "-c", config], check=False)
    if p.returncode != 0:
        raise BuildError("fw_printenv -c %s failed: %s" % (config, p.stderr.decode(errors="replace")))
    out = p.stdout.decode()
    return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)


def read_file(disk, path):
    return debugfs(disk, "cat " + path)


def grubenv(disk, workdir):
    """The GRUB env block on DISK as a dict, read by grub-editenv."""
    block = read_file(disk, "/boot/grub/grubenv")
    if len(block) != 1024:
        raise BuildError("grubenv on the disk is %d bytes, not 1024" % len(block))
    path = os.path.join(workdir, "grubenv.extracted")
    write(path, block)
    out = run(["grub-editenv", path, "list"]).stdout.decode()
    return dict(l.split("=", 1) for l in out.splitlines() if "=" in l)


def extract_state(disk, dest, bootloader="grub-bios"):
    """Copies what `abdeploy status` and `history` read from DISK into DEST:
    abdeploy/{version,state,slots}, boot/grub/grubenv (GRUB) or the U-Boot
    env files and an etc/fw_env.config naming them (U-Boot), etc/abdeploy, and an
    empty repo (the slot records carry the versions)."""
    rmtree(dest)
    os.makedirs(dest)
    for d in ("abdeploy", "boot/grub", "etc", "ostree"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    debugfs(disk, "rdump /abdeploy/state %s" % os.path.join(dest, "abdeploy"))
    write(os.path.join(dest, "abdeploy/version"), read_file(disk, "/abdeploy/version"))
    if bootloader.startswith("grub"):
        write(os.path.join(dest, "boot/grub/grubenv"), read_file(disk, "/boot/grub/grubenv"))
    debugfs(disk, "rdump /etc/abdeploy %s" % os.path.join(dest, "etc"))
    if bootloader == "uboot":    # the U-Boot disk: env on the FAT partition
        config = ubootenv_files(disk, os.path.join(dest, "boot"))
        shutil.copyfile(config, os.path.join(dest, "etc/fw_env.config"))
    for d in ("abdeploy/slots/a", "abdeploy/slots/b", "abdeploy/var", "boot/abdeploy/a",
              "boot/abdeploy/b"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    run(["ostree", "init", "--mode=bare", "--repo=" + os.path.join(dest, "ostree/repo")])
    if bootloader == "systemd-boot":    # the pointer: entry names on the ESP, at /efi
        os.makedirs(os.path.join(dest, "efi"))
        run(["mcopy", "-s", "-n", "-Q", "-i", "%s@@%d" % (disk, PART_OFFSET), "::/loader",
             os.path.join(dest, "efi")])
    return dest


def extract_esp(disk, dest):
    """Copies the ESP (the first partition) of DISK into DEST (mtools)."""
    rmtree(dest)
    os.makedirs(dest)
    run(["mcopy", "-s", "-n", "-Q", "-i", "%s@@%d" % (disk, PART_OFFSET), "::/*", dest])
    return dest


def esp_entries(disk):
    """File names in loader/entries of DISK's ESP."""
    out = run(["mdir", "-b", "-i", "%s@@%d" % (disk, PART_OFFSET),
               "::/loader/entries"]).stdout.decode()
    return sorted(os.path.basename(l.strip()) for l in out.splitlines() if l.strip())


def ls(disk, path):
    """Names in directory PATH of DISK (debugfs ls -p)."""
    out = debugfs(disk, "ls -p " + path).decode(errors="replace")
    names = []
    for line in out.splitlines():
        parts = line.split("/")
        if len(parts) >= 6 and parts[5] not in (".", ".."):
            names.append(parts[5])
    return names
