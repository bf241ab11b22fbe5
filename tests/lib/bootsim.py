"""Boot simulator for abdeploy's tests: what the bootloader and the boot do.

    import bootsim
    r = bootsim.boot(sysroot, "file")          # one boot, health-check included
    r.slot, r.returncode, r.stdout            # also: slot, rc, out = r
    r = bootsim.boot(sysroot, "file", reach_userspace=False)   # kernel panics

One simulated boot:

1. The bootloader decision of docs/internals.md (abdeploy-pointer(5)):
   a slot is bootable when its state is good, or trial with tries > 0; the
   primary if bootable, else the other slot if bootable, else the primary
   (last resort); a picked trial slot gets its tries decremented and SAVED
   before the kernel is "loaded".
   - file:  SYSROOT/boot/abdeploy/pointer is read and written back here.
   - grub:  the shipped GRUB scripts decide under grub-emu (grub_sim.py next
            to this file); when grub-emu or grub_sim.py is not available the
            same decision is taken here on the env block through
            grub-editenv, and the result says so (.simulator == "editenv").
   - uboot: uboot_sim.py next to this file when it exists; otherwise the
            decision is taken here on the U-Boot environment through
            fw_printenv / fw_setenv (.simulator == "fw_setenv").
2. `abdeploy.slot=X` is written to the kernel command line file that
   abdeploy reads through ABDEPLOY_CMDLINE (default: SYSROOT + ".cmdline").
3. If the kernel reaches user space: `abdeploy --sysroot=S health-check
   --no-reboot`, as abdeploy-healthcheck.service would run it.

A reboot is another call of boot().  Python 3 standard library only.
"""

import dataclasses
import importlib
import os
import subprocess
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import abtest  # noqa: E402
from abtest import POINTER_VARS, SLOTS, other  # noqa: E402,F401

HEALTH_TIMEOUT = 120


class BootSimError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# The decision (pure)


def _tries(value):
    """Tries as an int, or None when not one of 0..9 (not bootable)."""
    if value is not None and len(value) == 1 and value.isdigit():
        return int(value)
    return None


def bootable(pointer, slot):
    u = slot.upper()
    state = pointer.get("ABDEPLOY_%s_STATE" % u)
    if state == "good":
        return True
    if state == "trial":
        t = _tries(pointer.get("ABDEPLOY_%s_TRIES" % u))
        return t is not None and t > 0
    return False


def decide(pointer):
    """(slot, reason, changes) for a pointer dict: reason is primary,
    fallback or last-resort; changes are the variables the bootloader
    saves before loading the kernel (the decremented tries)."""
    primary = "b" if pointer.get("ABDEPLOY_PRIMARY") == "b" else "a"
    if bootable(pointer, primary):
        slot, reason = primary, "primary"
    elif bootable(pointer, other(primary)):
        slot, reason = other(primary), "fallback"
    else:
        slot, reason = primary, "last-resort"
    changes = {}
    u = slot.upper()
    if pointer.get("ABDEPLOY_%s_STATE" % u) == "trial" and bootable(pointer, slot):
        changes["ABDEPLOY_%s_TRIES" % u] = str(_tries(pointer["ABDEPLOY_%s_TRIES" % u]) - 1)
    return slot, reason, changes


# --------------------------------------------------------------------------
# Pointer access per backend


def file_pointer_path(sysroot):
    return os.path.join(sysroot, "boot", "abdeploy", "pointer")


def grubenv_path(sysroot):
    return os.path.join(sysroot, "boot", "grub", "grubenv")


def read_file_pointer(sysroot):
    """The file backend's pointer as a dict (format checked)."""
    with open(file_pointer_path(sysroot)) as f:
        lines = f.read().splitlines()
    values = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise BootSimError("malformed pointer line %r" % line)
        values[name] = value
    if values.get("ABDEPLOY_FORMAT") != "1":
        raise BootSimError("pointer format %r, expected 1" % values.get("ABDEPLOY_FORMAT"))
    return values


def write_file_pointer(sysroot, values):
    """Rewrite the pointer file as a whole (tmp + fsync + rename), keeping
    the variables' order and any comment lines."""
    path = file_pointer_path(sysroot)
    with open(path) as f:
        lines = f.read().splitlines()
    seen = set()
    out = []
    for line in lines:
        name = line.partition("=")[0].strip()
        if name in values and not line.lstrip().startswith("#"):
            out.append("%s=%s" % (name, values[name]))
            seen.add(name)
        else:
            out.append(line)
    out += ["%s=%s" % (k, v) for k, v in values.items() if k not in seen]
    tmp = path + ".bootsim"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _tool(name):
    path = abtest.find_tool(name)
    if path is None:
        raise BootSimError("%s not found" % name)
    return path


def read_grubenv(sysroot):
    out = subprocess.run([_tool("grub-editenv"), grubenv_path(sysroot), "list"],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def uboot_config(sysroot):
    """fw_env.config the sysroot's abdeploy uses (uboot_sim.py knows how to
    find it from the configuration; else the backend's default)."""
    mod = _uboot_sim()
    if mod is not None and hasattr(mod, "env_config"):
        return mod.env_config(sysroot)
    return os.path.join(sysroot, "etc", "fw_env.config")


def read_uboot_env(sysroot):
    p = subprocess.run([_tool("fw_printenv"), "-c", uboot_config(sysroot)],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise BootSimError("fw_printenv failed: %s" % p.stderr)
    return dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)


def read_pointer(sysroot, backend):
    """The pointer variables as the bootloader sees them."""
    if backend == "file":
        return read_file_pointer(sysroot)
    if backend == "grub":
        return read_grubenv(sysroot)
    if backend == "uboot":
        return read_uboot_env(sysroot)
    raise BootSimError("unknown backend %r" % backend)


# --------------------------------------------------------------------------
# One bootloader run


@dataclasses.dataclass
class Decision:
    slot: str
    reason: str          # primary | fallback | last-resort ("" when unknown)
    simulator: str       # file | grub-emu | editenv | uboot_sim | fw_setenv
    before: dict
    after: dict


def _grub_sim():
    try:
        mod = importlib.import_module("grub_sim")
    except ImportError:
        return None
    if not hasattr(mod, "simulate_boot"):
        return None
    if hasattr(mod, "tools_available") and not mod.tools_available():
        return None
    return mod


def _uboot_sim():
    try:
        mod = importlib.import_module("uboot_sim")
    except ImportError:
        return None
    if hasattr(mod, "tools_available") and not mod.tools_available():
        return None
    return mod


def grub_emu_available():
    """True when grub decisions are taken by the real GRUB script."""
    return _grub_sim() is not None


def select(sysroot, backend, *, prefer_emu=True):
    """Run the bootloader's decision once; returns a Decision.  The pointer
    on disk holds the decremented tries when this returns."""
    if backend == "file":
        before = read_file_pointer(sysroot)
        slot, reason, changes = decide(before)
        if changes:
            write_file_pointer(sysroot, changes)
        return Decision(slot, reason, "file", before, read_file_pointer(sysroot))
    if backend == "grub":
        mod = _grub_sim() if prefer_emu else None
        if mod is not None:
            res = mod.simulate_boot(grubenv_path(sysroot), sysroot=sysroot)
            if res.slot not in SLOTS:
                raise BootSimError("grub-emu chose no slot:\n%s" % res.output)
            if res.disk_at_linux is not None:
                # the counter must be on disk when the kernel is loaded
                u = res.slot.upper()
                if res.env_after.get("ABDEPLOY_%s_TRIES" % u) != \
                        res.disk_at_linux.get("ABDEPLOY_%s_TRIES" % u):
                    raise BootSimError("GRUB loaded the kernel before saving the tries: %r vs %r"
                                       % (res.disk_at_linux, res.env_after))
            return Decision(res.slot, res.reason, "grub-emu", res.env_before, res.env_after)
        before = read_grubenv(sysroot)
        slot, reason, changes = decide(before)
        if changes:
            subprocess.run([_tool("grub-editenv"), grubenv_path(sysroot), "set"]
                           + ["%s=%s" % kv for kv in changes.items()],
                           check=True, capture_output=True, timeout=30)
        return Decision(slot, reason, "editenv", before, read_grubenv(sysroot))
    if backend == "uboot":
        mod = _uboot_sim()
        if mod is not None and hasattr(mod, "simulate_boot"):
            res = mod.simulate_boot(sysroot)
            return Decision(res.slot, res.reason, "uboot_sim", res.env_before, res.env_after)
        before = read_uboot_env(sysroot)
        slot, reason, changes = decide(before)
        if changes:
            subprocess.run([_tool("fw_setenv"), "-c", uboot_config(sysroot)]
                           + [x for kv in changes.items() for x in kv],
                           check=True, capture_output=True, timeout=30)
        return Decision(slot, reason, "fw_setenv", before, read_uboot_env(sysroot))
    raise BootSimError("unknown backend %r" % backend)


# --------------------------------------------------------------------------
# A whole boot


@dataclasses.dataclass
class BootResult:
    slot: str
    returncode: object      # exit code of health-check; None if it did not run
    stdout: str
    stderr: str = ""
    elapsed: float = 0.0    # seconds health-check took
    decision: Decision = None

    def __iter__(self):
        return iter((self.slot, self.returncode, self.stdout))

    @property
    def output(self):
        return self.stdout + self.stderr


def cmdline_path(sysroot):
    return os.environ.get("ABDEPLOY_CMDLINE") or sysroot.rstrip("/") + ".cmdline"


def write_cmdline(path, slot):
    with open(path, "w") as f:
        f.write("BOOT_IMAGE=/boot/abdeploy/%s/vmlinuz ro quiet abdeploy.slot=%s\n" % (slot, slot))


def abdeploy_bin():
    path = os.environ.get("ABDEPLOY_BIN")
    if not path:
        raise BootSimError("ABDEPLOY_BIN is not set")
    return path


def health_check(sysroot, *, binary=None, cmdline=None, env=None, timeout=HEALTH_TIMEOUT):
    """Run `abdeploy --sysroot=S health-check --no-reboot`; returns
    (returncode, stdout, stderr, elapsed).  returncode is negative when a
    signal ended it (-9 for SIGKILL)."""
    e = dict(os.environ)
    e["ABDEPLOY_CMDLINE"] = cmdline or cmdline_path(sysroot)
    for k in ("ABDEPLOY_CRASH_AT", "ABDEPLOY_CRASH_TRACE"):
        e.pop(k, None)
    if env:
        e.update(env)
    cmd = [binary or abdeploy_bin(), "--sysroot=" + sysroot, "health-check", "--no-reboot"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def boot(sysroot, backend, reach_userspace=True, *, binary=None, cmdline=None, env=None,
         timeout=HEALTH_TIMEOUT):
    """One simulated boot; see the module docstring."""
    d = select(sysroot, backend)
    cmdline = cmdline or cmdline_path(sysroot)
    write_cmdline(cmdline, d.slot)
    if not reach_userspace:
        return BootResult(d.slot, None, "", "", 0.0, d)
    rc, out, err, elapsed = health_check(sysroot, binary=binary, cmdline=cmdline, env=env,
                                         timeout=timeout)
    return BootResult(d.slot, rc, out, err, elapsed, d)
