"""Boot simulator for abdeploy's uboot backend: what data/uboot/abdeploy.cmd
does at boot, done on a file-backed U-Boot environment with libubootenv's
tools (fw_printenv, fw_setenv), which read and write U-Boot's own format.

    import uboot_sim
    res = uboot_sim.simulate_boot(sysroot)    # one run of the boot script
    res.slot        # 'a' or 'b'
    res.reason      # 'primary' | 'fallback' | 'last-resort'
    res.saved       # True when the lowered tries were stored (a trial boot)
    res.env_before, res.env_after     # the five pointer variables (dicts)
    res.kernel, res.initramfs         # paths in the sysroot, None if missing
    res.bootargs    # "abdeploy.slot=X" + abdeploy_kargs from the environment

The environment is the one the sysroot's abdeploy uses: the fw_env.config
named by [boot] uboot-env-config in SYSROOT/etc/abdeploy/abdeploy.conf
(and conf.d/*.conf), a relative path being inside the sysroot; default
SYSROOT/etc/fw_env.config.  Pass config= to override.

The decision (docs/internals.md, same as abdeploy.cmd):
1. A slot is bootable iff its state is "good", or "trial" with tries exactly
   one of 1..9.
2. ABDEPLOY_PRIMARY "b" makes b the primary, anything else a.  Pick the
   primary if bootable, else the other slot if bootable, else the primary.
3. A picked trial slot gets its tries lowered by one and stored (fw_setenv,
   U-Boot's saveenv) BEFORE the kernel is loaded.  With saveenv_fails=True
   the store fails as on read-only storage: like the script, the slot then
   counts as not bootable and the decision is taken again.

run_script() (at the end) runs the compiled abdeploy.scr itself in real
U-Boot under QEMU, for checking the script's decisions against decide().

Python 3 standard library only.  Needs fw_printenv and fw_setenv (Debian
package libubootenv-tool); run_script() also u-boot-qemu, qemu-system-arm,
fdisk (sfdisk) and e2fsprogs (mkfs.ext2).
"""

import configparser
import glob
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from abtest import POINTER_VARS  # noqa: E402,F401

TIMEOUT = 30


class UbootSimError(RuntimeError):
    pass


@dataclass
class BootResult:
    slot: str
    reason: str
    saved: bool
    env_before: dict = field(default_factory=dict)
    env_after: dict = field(default_factory=dict)
    kernel: str = None
    initramfs: str = None
    bootargs: str = ""


def tools_available():
    return all(shutil.which(t) for t in ("fw_printenv", "fw_setenv"))


def _tool(name):
    path = shutil.which(name)
    if path is None:
        raise UbootSimError("%s not found (install libubootenv-tool)" % name)
    return path


def env_config(sysroot):
    """Path of the fw_env.config abdeploy uses for SYSROOT."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    conf_dir = os.path.join(sysroot, "etc", "abdeploy")
    files = [os.path.join(conf_dir, "abdeploy.conf")]
    files += sorted(glob.glob(os.path.join(conf_dir, "conf.d", "*.conf")))
    parser.read([f for f in files if os.path.exists(f)])
    value = parser.get("boot", "uboot-env-config", fallback="").strip()
    value = value or "etc/fw_env.config"
    return value if os.path.isabs(value) else os.path.join(sysroot, value)


def read_env(config):
    """All variables of the environment (dict), as fw_printenv prints them."""
    p = subprocess.run([_tool("fw_printenv"), "-c", config], capture_output=True, text=True,
                       timeout=TIMEOUT)
    if p.returncode != 0:
        raise UbootSimError("fw_printenv -c %s failed: %s" % (config, p.stderr.strip()))
    return dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)


def set_env(config, **variables):
    """fw_setenv NAME VALUE for each variable, all stored in one write."""
    script = "".join("%s=%s\n" % kv for kv in variables.items())
    p = subprocess.run([_tool("fw_setenv"), "-c", config, "-s", "-"], input=script,
                       capture_output=True, text=True, timeout=TIMEOUT)
    if p.returncode != 0:
        raise UbootSimError("fw_setenv -c %s failed: %s" % (config, p.stderr.strip()))


def _bootable(env, slot):
    u = slot.upper()
    state = env.get("ABDEPLOY_%s_STATE" % u)
    tries = env.get("ABDEPLOY_%s_TRIES" % u)
    return state == "good" or (state == "trial" and tries in tuple("123456789"))


def _choose(primary, ok):
    other = "a" if primary == "b" else "b"
    if ok[primary]:
        return primary, "primary"
    if ok[other]:
        return other, "fallback"
    return primary, "last-resort"


def decide(env, saveenv_fails=False):
    """(slot, reason, changes) for an environment dict; changes are what the
    script stores before loading the kernel (empty when nothing is stored)."""
    primary = "b" if env.get("ABDEPLOY_PRIMARY") == "b" else "a"
    ok = {s: _bootable(env, s) for s in ("a", "b")}
    # Each failed store clears one slot's ok: three rounds always decide.
    for _ in range(3):
        slot, reason = _choose(primary, ok)
        u = slot.upper()
        if not (ok[slot] and env.get("ABDEPLOY_%s_STATE" % u) == "trial"):
            return slot, reason, {}
        if not saveenv_fails:
            lowered = str(int(env["ABDEPLOY_%s_TRIES" % u]) - 1)
            return slot, reason, {"ABDEPLOY_%s_TRIES" % u: lowered}
        ok[slot] = False
    raise AssertionError("unreachable: the third round needs no store")


def _boot_file(sysroot, env, slot, name):
    bootdir = env.get("abdeploy_bootdir") or "/boot/abdeploy"
    path = os.path.join(sysroot, bootdir.lstrip("/"), slot, name)
    return path if os.path.isfile(path) else None


def simulate_boot(sysroot, config=None, saveenv_fails=False):
    """One run of the boot script; see the module docstring."""
    config = config or env_config(sysroot)
    env = read_env(config)
    slot, reason, changes = decide(env, saveenv_fails)
    if changes:
        set_env(config, **changes)
    after = read_env(config)
    for name, value in changes.items():
        if after.get(name) != value:
            raise UbootSimError("stored %s=%s but read back %r" % (name, value, after.get(name)))
    kargs = env.get("abdeploy_kargs", "")
    return BootResult(
        slot=slot,
        reason=reason,
        saved=bool(changes),
        env_before={k: env[k] for k in POINTER_VARS if k in env},
        env_after={k: after[k] for k in POINTER_VARS if k in after},
        kernel=_boot_file(sysroot, env, slot, "vmlinuz"),
        initramfs=_boot_file(sysroot, env, slot, "initramfs.img"),
        bootargs=("abdeploy.slot=%s %s" % (slot, kargs)).strip(),
    )


# --------------------------------------------------------------------------
# The shipped script itself, in real U-Boot
#
# run_script() runs the compiled abdeploy.scr in U-Boot's qemu_arm64 build
# (Debian package u-boot-qemu) under qemu-system-aarch64 (TCG), once per
# pointer, in one U-Boot session: the pointer variables are set with
# setenv, the script is loaded from an ext2 partition of a virtio disk that
# holds SYSROOT-like boot/abdeploy/{a,b}/ files, and abdeploy_boot is "echo"
# so that the boot command is printed instead of run.
#
# Limitation (Debian 12: QEMU 7.2, U-Boot 2023.01): saveenv to the emulated
# CFI flash fails ("Flash buffer write timeout"), so a trial pick always
# takes the script's store-failure path (the slot counts as not bootable and
# the decision is taken again).  The decisions that need no store, the
# store-failure path and the boot command line are what this checks.

UBOOT_BIN = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"
_FLASH_SIZE = 64 << 20


@dataclass
class ScriptRun:
    slot: str
    reason: str
    boot_command: str      # what the script would run (booti ...), or None
    env_after: dict        # the pointer variables after the script
    store_attempts: int    # how many times the script ran saveenv
    output: str


def uboot_available():
    return (os.path.exists(UBOOT_BIN) and shutil.which("qemu-system-aarch64") is not None
            and all(shutil.which(t) for t in ("sfdisk", "mkfs.ext2")))


def _make_disk(path, scr, initramfs_slots):
    root = tempfile.mkdtemp(prefix="uboot-root-", dir=os.path.dirname(path))
    for slot in ("a", "b"):
        d = os.path.join(root, "boot", "abdeploy", slot)
        os.makedirs(d)
        with open(os.path.join(d, "vmlinuz"), "w") as f:
            f.write("kernel-%s\n" % slot)
        if slot in initramfs_slots:
            with open(os.path.join(d, "initramfs.img"), "w") as f:
                f.write("initramfs-%s\n" % slot)
    shutil.copy(scr, os.path.join(root, "boot", "abdeploy.scr"))
    with open(path, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["sfdisk", "-q", path], input="start=2048, type=83\n", text=True,
                   check=True, capture_output=True, timeout=TIMEOUT)
    subprocess.run(["mkfs.ext2", "-q", "-d", root, "-E", "offset=1048576", path, "30M"],
                   check=True, capture_output=True, timeout=TIMEOUT)
    shutil.rmtree(root)


class _Console:
    """U-Boot's serial console on qemu's stdio."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.buf = b""

    def read_until(self, pattern, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if not ready:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                break
            self.buf += chunk
            i = self.buf.find(pattern)
            if i >= 0:
                out, self.buf = self.buf[:i], self.buf[i + len(pattern):]
                return out.decode(errors="replace").replace("\r", "")
        raise UbootSimError("U-Boot did not print %r; last output:\n%s"
                            % (pattern, self.buf[-3000:].decode(errors="replace")))

    def command(self, line, timeout=60):
        """Output of LINE, without U-Boot's echo of the line itself."""
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        out = self.read_until(b"=> ", timeout)
        return out.split("\n", 1)[1] if "\n" in out else ""

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)


def _one_run(console, pointer, kargs):
    console.command("setenv " + "; setenv ".join(POINTER_VARS))
    for name, value in pointer.items():
        console.command("setenv %s %s" % (name, value))
    console.command("setenv abdeploy_devtype virtio; setenv abdeploy_devpart 0:1; "
                    "setenv abdeploy_boot echo @@boot; setenv abdeploy_kargs %s" % kargs)
    out = console.command("load virtio 0:1 ${scriptaddr} /boot/abdeploy.scr; "
                          "source ${scriptaddr}")
    m = re.search(r"abdeploy: booting slot (\S+) \((\S+)\)", out)
    if m is None:
        raise UbootSimError("the script made no decision:\n" + out)
    boot = [l[len("@@boot "):] for l in out.splitlines() if l.startswith("@@boot ")]
    after = {}
    for name in POINTER_VARS:
        value = console.command("printenv " + name).strip()
        if value.startswith(name + "="):
            after[name] = value[len(name) + 1:]
    bootargs = console.command("printenv bootargs").strip()
    if bootargs != "bootargs=abdeploy.slot=%s %s" % (m.group(1), kargs):
        raise UbootSimError("unexpected %s" % bootargs)
    return ScriptRun(m.group(1), m.group(2), boot[0] if boot else None, after,
                     out.count("Saving Environment"), out)


def run_script(scr, pointers, initramfs_slots=("b",), kargs="root=/dev/vda2", timeout=120):
    """Runs the compiled script SCR once per pointer (dict of the pointer
    variables); returns a ScriptRun per pointer.  See the section comment."""
    with tempfile.TemporaryDirectory(prefix="uboot-sim-") as tmp:
        flash0, flash1 = os.path.join(tmp, "flash0.img"), os.path.join(tmp, "flash1.img")
        with open(UBOOT_BIN, "rb") as f:
            code = f.read()
        with open(flash0, "wb") as f:
            f.write(code)
            f.truncate(_FLASH_SIZE)
        with open(flash1, "wb") as f:
            f.truncate(_FLASH_SIZE)
        disk = os.path.join(tmp, "disk.img")
        _make_disk(disk, scr, initramfs_slots)
        console = _Console([
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-m", "512",
            "-accel", "tcg", "-nographic", "-no-reboot",
            "-drive", "if=pflash,format=raw,file=" + flash0,
            "-drive", "if=pflash,format=raw,file=" + flash1,
            "-drive", "if=none,id=d0,format=raw,file=" + disk,
            "-device", "virtio-blk-device,drive=d0"])
        try:
            console.read_until(b"Hit any key to stop autoboot", timeout)
            console.proc.stdin.write(b" ")
            console.proc.stdin.flush()
            console.read_until(b"=> ", timeout)
            console.command("virtio scan")
            return [_one_run(console, p, kargs) for p in pointers]
        finally:
            console.close()
