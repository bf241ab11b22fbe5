"""Boot simulator: abdeploy's shipped GRUB scripts, run by real GRUB (grub-emu).

    result = simulate_boot(path_to_grubenv)
    result.slot            # 'a' or 'b', as GRUB decided
    # path_to_grubenv now holds the env block exactly as GRUB rewrote it

How one simulated boot works:

* A small ext2 image is built (mkfs.ext2 -d) holding, like an appliance's
  sysroot, boot/grub/{grubenv, abdeploy.cfg, abdeploy-select.cfg} and
  boot/abdeploy/{a,b}/{vmlinuz,initramfs.img} (empty stand-ins).
* grub-emu sees the image as disk (hd0) through a device map; $root is hd0,
  $prefix is (hd0)/boot/grub, so load_env and save_env use GRUB's default env
  file there.  save_env works on such a disk, unlike on (host) files, where
  GRUB refuses with "sparse file not allowed".
* grub-emu runs grub-sim.cfg (next to this file), which sources the shipped
  abdeploy.cfg (or only abdeploy-select.cfg), prints the decision, boots the
  menu entry "abdeploy" with stand-in `linux`/`initrd` functions that print
  their arguments (grub-emu has no Linux loader); as nothing got loaded GRUB
  returns to its menu, where an "x" fed on stdin picks the wrapper's exit
  entry, which reboots, i.e. ends grub-emu.  Every run is bounded by a
  timeout.
* The env block GRUB wrote is read back from the image with debugfs and
  replaces the caller's file.

Python 3 standard library only.  Needs grub-emu, grub-editenv (Debian
packages grub-emu, grub-common) and mkfs.ext2, debugfs (e2fsprogs).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import abtest  # noqa: E402
from abtest import POINTER_VARS  # noqa: E402,F401

MARK = "@@abdsim"
ENV_BLOCK_SIZE = 1024

WRAPPER_CFG = _HERE / "grub-sim.cfg"

_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_MARK_LINE = re.compile(re.escape(MARK) + r" (\S+)(?: (.*))?$")


class GrubSimError(RuntimeError):
    """grub-emu did not run the scripts to the end; .output has its output."""

    def __init__(self, message, output=""):
        super().__init__(message + ("\n--- grub-emu output ---\n" + output if output else ""))
        self.output = output


def _tool(name):
    path = abtest.find_tool(name)
    if path is None:
        raise GrubSimError(f"{name} not found (install grub-emu, grub-common, e2fsprogs)")
    return path


def tools_available():
    """True when everything simulate_boot() needs is installed."""
    try:
        for name in ("grub-emu", "grub-editenv", "mkfs.ext2", "debugfs"):
            _tool(name)
    except GrubSimError:
        return False
    return True


def grub_datadir():
    """Directory of the shipped GRUB scripts: $ABDEPLOY_GRUB_DATADIR, else
    data/grub of this source tree."""
    env = os.environ.get("ABDEPLOY_GRUB_DATADIR")
    if env:
        return Path(env)
    return _HERE.parent.parent / "data" / "grub"


# --- env block helpers (grub-editenv, the tool GRUB itself ships) -----------

def editenv_create(path):
    subprocess.run([_tool("grub-editenv"), str(path), "create"], check=True, timeout=30)


def editenv_set(path, **variables):
    """grub-editenv PATH set NAME=VALUE...; creates the block if missing."""
    if not Path(path).exists():
        editenv_create(path)
    if variables:
        args = [f"{k}={v}" for k, v in variables.items()]
        subprocess.run([_tool("grub-editenv"), str(path), "set", *args], check=True, timeout=30)


def editenv_unset(path, *names):
    subprocess.run([_tool("grub-editenv"), str(path), "unset", *names], check=True, timeout=30)


def editenv_list(path):
    """Variables of an env block as grub-editenv lists them (dict)."""
    out = subprocess.run(
        [_tool("grub-editenv"), str(path), "list"],
        check=True, timeout=30, capture_output=True, text=True,
    ).stdout
    result = {}
    for line in out.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            result[name] = value
    return result


def write_pointer(path, primary=None, a_state=None, a_tries=None,
                  b_state=None, b_tries=None, **extra):
    """Set the boot pointer variables (those not None) and any extra ones."""
    values = dict(extra)
    for name, value in zip(POINTER_VARS, (primary, a_state, a_tries, b_state, b_tries)):
        if value is not None:
            values[name] = str(value)
    editenv_set(path, **values)


# --- the simulator ---------------------------------------------------------

@dataclass
class BootResult:
    slot: str                       # 'a' or 'b' (abd_slot after the scripts ran)
    reason: str                     # abd_reason: primary | fallback | last-resort
    grub_vars: dict                 # GRUB's view of the pointer + ABDEPLOY_KARGS after deciding
    linux: list = None              # args of the `linux` call (path first); None if not booted
    disk_at_linux: dict = None      # tries variables in the env block on disk when `linux` ran
    kernel_present: bool = None     # did the kernel file exist on the image
    initrd: str = None              # path given to `initrd`, None if not called
    initrd_present: bool = None
    env_before: dict = field(default_factory=dict)
    env_after: dict = field(default_factory=dict)   # block GRUB left behind (grub-editenv list)
    errors: list = field(default_factory=list)      # GRUB "error: ..." lines
    output: str = ""                                # grub-emu output, escape sequences removed

    @property
    def cmdline(self):
        """Kernel command line as the kernel would see it (without the path)."""
        return " ".join(self.linux[1:]) if self.linux else None


def grub_quote(value):
    """Quote a string for GRUB script (single quotes; ' as '\\'')."""
    return "'" + str(value).replace("'", "'\\''") + "'"


def _clean(raw):
    text = raw.decode("utf-8", "replace")
    text = _CSI.sub("", text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _parse(text):
    marks = []
    errors = []
    for line in text.split("\n"):
        m = _MARK_LINE.search(line)
        if m:
            marks.append((m.group(1), m.group(2) or ""))
        elif "error:" in line:
            errors.append(line[line.index("error:"):].strip())
    return marks, errors


def _populate_root(root, grubenv, datadir, slot_files, sysroot, extra_files):
    grubdir = root / "boot" / "grub"
    grubdir.mkdir(parents=True)
    for name in ("abdeploy.cfg", "abdeploy-select.cfg"):
        shutil.copyfile(datadir / name, grubdir / name)
    shutil.copyfile(WRAPPER_CFG, grubdir / "abdeploy-sim.cfg")
    if grubenv is not None and Path(grubenv).exists():
        shutil.copyfile(grubenv, grubdir / "grubenv")

    if slot_files is None:
        if sysroot is not None:
            slot_files = {
                s: [n for n in ("vmlinuz", "initramfs.img")
                    if (Path(sysroot) / "boot" / "abdeploy" / s / n).exists()]
                for s in ("a", "b")
            }
        else:
            slot_files = {"a": ["vmlinuz", "initramfs.img"], "b": ["vmlinuz", "initramfs.img"]}
    for slot, names in slot_files.items():
        d = root / "boot" / "abdeploy" / slot
        d.mkdir(parents=True, exist_ok=True)
        for n in names:
            (d / n).write_bytes(b"stand-in\n")

    for rel, data in (extra_files or {}).items():
        p = root / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else Path(data).read_bytes())


def simulate_boot(grubenv, *, mode="boot", kargs=None, presets=None,
                  slot_files=None, sysroot=None, extra_files=None,
                  datadir=None, timeout=20.0):
    """Simulate one boot through the shipped GRUB scripts.

    grubenv      path of the env block (1024-byte GRUB file); None or a missing
                 file = no env block on the boot disk.  After the run it holds
                 what GRUB saved (unchanged when GRUB saved nothing).
    mode         "boot": source abdeploy.cfg and boot its entry;
                 "select": source abdeploy-select.cfg only.
    kargs        value for abd_kargs (as an appliance grub.cfg would set it).
    presets      {GRUB variable: value} set before sourcing, e.g. abd_envfile.
    slot_files   {"a": ["vmlinuz", "initramfs.img"], ...}: files present in
                 /boot/abdeploy/<slot>/ on the disk; default: both slots
                 complete, or mirrored from sysroot/boot/abdeploy when given.
    extra_files  {path on the disk: bytes or host file} for extra content.
    Returns a BootResult; raises GrubSimError when grub-emu fails or times out.
    """
    if mode not in ("boot", "select"):
        raise ValueError("mode must be 'boot' or 'select'")
    datadir = Path(datadir) if datadir else grub_datadir()
    env_before = editenv_list(grubenv) if grubenv is not None and Path(grubenv).exists() else {}

    with tempfile.TemporaryDirectory(prefix="abdsim-") as tmp:
        tmp = Path(tmp)
        root = tmp / "root"
        _populate_root(root, grubenv, datadir, slot_files, sysroot, extra_files)

        image = tmp / "disk.img"
        with open(image, "wb") as f:
            f.truncate(8 * 1024 * 1024)
        subprocess.run(
            [_tool("mkfs.ext2"), "-q", "-F", "-b", "1024", "-L", "abdsim", "-d", str(root), str(image)],
            check=True, timeout=60, capture_output=True,
        )

        prefixdir = tmp / "emu"
        prefixdir.mkdir()
        devmap = tmp / "device.map"
        devmap.write_text(f"(hd0) {image}\n")
        source = "$prefix/abdeploy.cfg" if mode == "boot" else "$prefix/abdeploy-select.cfg"
        lines = [
            "set root=hd0",
            "set prefix=(hd0)/boot/grub",
            f'set abd_sim_source="{source}"',
        ]
        if kargs is not None:
            lines.append(f"set abd_kargs={grub_quote(kargs)}")
        for name, value in (presets or {}).items():
            lines.append(f"set {name}={grub_quote(value)}")
        lines.append('source "$prefix/abdeploy-sim.cfg"')
        (prefixdir / "grub.cfg").write_text("\n".join(lines) + "\n")

        cmd = [_tool("grub-emu"), "-d", str(prefixdir), "-m", str(devmap)]
        timeout_bin = shutil.which("timeout")
        if timeout_bin:
            cmd = [timeout_bin, "-k", "2", str(int(timeout)), *cmd]
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TERM": "dumb"}
        try:
            proc = subprocess.run(
                cmd, input=b"x" * 64, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, env=run_env, timeout=timeout + 5, cwd=tmp,
            )
        except subprocess.TimeoutExpired as e:
            raise GrubSimError(f"grub-emu did not finish within {timeout}s",
                               _clean(e.stdout or b"")) from None
        text = _clean(proc.stdout)
        marks, errors = _parse(text)
        keys = [k for k, _ in marks]
        if proc.returncode != 0 or "end" not in keys:
            raise GrubSimError(f"grub-emu exited with {proc.returncode} before the end marker", text)
        if "sourced" not in keys:
            raise GrubSimError("the wrapper did not get past sourcing the scripts", text)

        values = {}
        grub_vars = {}
        linux = None
        initrd = None
        kernel_present = initrd_present = None
        disk_at_linux = None
        for key, value in marks:
            if key == "var":
                name, _, v = value.partition(" ")
                grub_vars[name] = v
            elif key == "linux-begin":
                linux = []
            elif key == "disk-at-linux":
                name, _, v = value.partition(" ")
                disk_at_linux = disk_at_linux or {}
                disk_at_linux[name] = v
            elif key == "linux-arg":
                linux.append(value)
            elif key == "linux-file":
                kernel_present = value == "present"
            elif key == "initrd":
                initrd = value
            elif key == "initrd-file":
                initrd_present = value == "present"
            else:
                values[key] = value

        saved = subprocess.run(
            [_tool("debugfs"), "-R", "cat /boot/grub/grubenv", str(image)],
            timeout=60, capture_output=True,
        ).stdout

    env_after = {}
    if grubenv is not None and Path(grubenv).exists():
        if len(saved) != ENV_BLOCK_SIZE:
            raise GrubSimError(f"env block on the disk is {len(saved)} bytes, not {ENV_BLOCK_SIZE}", text)
        grubenv = Path(grubenv)
        if saved != grubenv.read_bytes():
            tmpname = grubenv.with_name(f".{grubenv.name}.abdsim")
            tmpname.write_bytes(saved)
            os.replace(tmpname, grubenv)
        env_after = editenv_list(grubenv)

    return BootResult(
        slot=values.get("slot", ""),
        reason=values.get("reason", ""),
        grub_vars=grub_vars,
        linux=linux,
        disk_at_linux=disk_at_linux,
        kernel_present=kernel_present,
        initrd=initrd,
        initrd_present=initrd_present,
        env_before=env_before,
        env_after=env_after,
        errors=errors,
        output=text,
    )


def boot_slot(grubenv, **kwargs):
    """One simulated boot; returns just the slot GRUB picked ('a' or 'b')."""
    return simulate_boot(grubenv, **kwargs).slot


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: grub_sim.py GRUBENV   (one simulated boot; GRUBENV is updated)")
    r = simulate_boot(sys.argv[1])
    print(f"slot={r.slot} reason={r.reason}")
    print("cmdline=" + (r.cmdline or ""))
    for name in POINTER_VARS:
        print(f"{name}={r.env_after.get(name, '')}")
