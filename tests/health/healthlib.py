"""Helpers of the abdeploy health tests (issue 3 scenarios).

Everything is real: gpg keys, commits made by the ostree CLI, deploys by
the built abdeploy binary from a local archive repo, and boots simulated by
tests/lib/bootsim.py (the bootloader's decision, then `health-check
--no-reboot`).  Standard library only.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("ABDEPLOY_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
LIBDIR = os.path.join(SRCDIR, "tests", "lib")
if LIBDIR not in sys.path:
    sys.path.insert(0, LIBDIR)

import bootsim  # noqa: E402

OS_NAME = "testos"
KVER = {"1": "6.1.0-health", "2": "6.2.0-health"}
FAIL_HOOK = "50-fail.sh"

EXIT_OK = 0
EXIT_RED = 1
EXIT_USAGE = 2


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ABDEPLOY_") and not k.lower().endswith("_proxy")
           and k not in ("GNUPGHOME", "OSTREE_REPO", "OSTREE_SYSROOT")}
    env["LC_ALL"] = "C.UTF-8"
    if extra:
        env.update(extra)
    return env


def run(cmd, *, env=None, timeout=120, check=True, input=None):
    p = subprocess.run(cmd, env=env or clean_env(), input=input, capture_output=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("command failed (%d): %s\nstdout:\n%s\nstderr:\n%s" % (
            p.returncode, " ".join(map(str, cmd)), p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace")))
    return p


def rmtree(path):
    if not os.path.lexists(path):
        return
    try:
        shutil.rmtree(path)
    except OSError:
        subprocess.run(["chattr", "-R", "-i", path], capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------
# Signing key and published images


class Gpg:
    """A throw-away GNUPGHOME with one signing key (ed25519, else RSA)."""

    def __init__(self, homedir):
        self.homedir = homedir
        os.makedirs(homedir, mode=0o700, exist_ok=True)
        self.env = clean_env({"GNUPGHOME": homedir})
        uid = "abdeploy health tests <health@example.org>"
        p = run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid,
                 "ed25519", "sign", "never"], env=self.env, check=False, timeout=120)
        if p.returncode != 0:
            run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid,
                 "rsa2048", "sign", "never"], env=self.env, timeout=300)
        out = run(["gpg", "--batch", "--with-colons", "--list-keys"], env=self.env).stdout.decode()
        self.fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))

    def export(self, dest):
        with open(dest, "wb") as f:
            f.write(run(["gpg", "--batch", "--export", self.fpr], env=self.env).stdout)
        return dest

    def close(self):
        subprocess.run(["gpgconf", "--kill", "all"], env=self.env, capture_output=True)


def image_files(version, extra=None):
    major = version.split(".")[0]
    kver = KVER[major]
    files = {
        "usr/bin/hello": ("#!/bin/sh\necho hello %s\n" % version, 0o755),
        "usr/lib/os-release": ("NAME=%s\nVERSION_ID=%s\n" % (OS_NAME, version), 0o644),
        "usr/etc/motd": ("Welcome to %s %s\n" % (OS_NAME, version), 0o644),
        "usr/etc/hostname": ("appliance\n", 0o644),
        "usr/lib/modules/%s/vmlinuz" % kver: ("FAKEKERNEL %s\n" % kver, 0o644),
        "usr/lib/modules/%s/initramfs.img" % kver: ("FAKEINITRD %s\n" % kver, 0o644),
    }
    files.update(extra or {})
    return files


class Published:
    """Archive repo made with the ostree CLI, every commit signed.

    refs: os/v1 (1.0), os/v2 (2.0), os/v2-fail (2.0 with a failing required
    hook shipped in usr/lib/abdeploy/health/required.d/50-fail.sh),
    os/v2-vendor (2.0 with vendor hooks in usr/lib/abdeploy/health)."""

    def __init__(self, root, gpg):
        self.root = root
        self.gpg = gpg
        self.path = os.path.join(root, "repo")
        self.commits = {}
        os.makedirs(root, exist_ok=True)
        run(["ostree", "init", "--mode=archive", "--repo=" + self.path])
        self.commit("os/v1", "1.0")
        self.commit("os/v2", "2.0")
        self.commit("os/v2-fail", "2.0", {
            "usr/lib/abdeploy/health/required.d/" + FAIL_HOOK:
                ("#!/bin/bash\necho 'app service did not start' >&2\nexit 1\n", 0o755),
        })
        self.commit("os/v2-vendor", "2.0", {
            "usr/lib/abdeploy/health/required.d/10-vendor-first":
                ("#!/bin/sh\necho \"usr:10-vendor-first\"\n", 0o755),
            "usr/lib/abdeploy/health/required.d/30-replaced":
                ("#!/bin/sh\necho \"usr:30-replaced\"\nexit 1\n", 0o755),
            "usr/lib/abdeploy/health/required.d/50-vendor-last.sh":
                ("echo \"usr:50-vendor-last.sh\"\n", 0o644),
        })

    def commit(self, ref, version, extra=None):
        tree = os.path.join(self.root, "tree-" + ref.replace("/", "-"))
        for rel, (content, mode) in sorted(image_files(version, extra).items()):
            p = os.path.join(tree, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(content)
            os.chmod(p, mode)
        out = run(["ostree", "--repo=" + self.path, "commit", "-b", ref, "--tree=dir=" + tree,
                   "--add-metadata-string=version=" + version, "--subject=" + ref,
                   "--gpg-sign=" + self.gpg.fpr, "--gpg-homedir=" + self.gpg.homedir],
                  env=self.gpg.env).stdout.decode().strip()
        assert re.fullmatch(r"[0-9a-f]{64}", out), out
        self.commits[ref] = out
        return out


# --------------------------------------------------------------------------
# A sysroot under test


class Sys:
    """A sysroot plus its kernel command line file and bootloader backend."""

    def __init__(self, path, binary, backend, published):
        self.path = path
        self.binary = binary
        self.backend = backend
        self.published = published
        if not os.path.exists(self.cmdline):
            with open(self.cmdline, "w"):
                pass    # not booted yet: no abdeploy.slot=

    @property
    def cmdline(self):
        return self.path + ".cmdline"

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    def slot_path(self, slot, *parts):
        return self.p("abdeploy", "slots", slot, *parts)

    # --- running abdeploy
    def env(self, extra=None):
        return clean_env(dict({"ABDEPLOY_CMDLINE": self.cmdline}, **(extra or {})))

    def run(self, *args, env=None, timeout=120):
        cmd = [self.binary, "--sysroot=" + self.path] + [str(a) for a in args]
        p = subprocess.run(cmd, env=self.env(env), capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        p.describe = "$ %s\n-> exit %d\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(map(str, args)), p.returncode, p.stdout, p.stderr)
        return p

    def ok(self, *args, **kw):
        p = self.run(*args, **kw)
        assert p.returncode == 0, p.describe
        return p

    def deploy(self, ref, tries=None):
        args = ["deploy", "--from=" + self.published.path]
        if tries is not None:
            args.append("--tries=%d" % tries)
        return self.ok(*args, ref)

    # --- booting
    def boot(self, reach_userspace=True, env=None, timeout=bootsim.HEALTH_TIMEOUT):
        return bootsim.boot(self.path, self.backend, reach_userspace, binary=self.binary,
                            cmdline=self.cmdline, env=self.env(env), timeout=timeout)

    def health_check(self, env=None, timeout=bootsim.HEALTH_TIMEOUT):
        return bootsim.health_check(self.path, binary=self.binary, cmdline=self.cmdline,
                                    env=self.env(env), timeout=timeout)

    def pointer(self):
        return bootsim.read_pointer(self.path, self.backend)

    # --- reading state
    def status(self):
        p = self.ok("status", "--json")
        st = json.loads(p.stdout)
        for key in ("booted", "primary", "slots", "health", "last_rollback"):
            assert key in st, "status --json lacks %r: %s" % (key, p.stdout)
        for key in ("verdict", "failed_hooks", "at"):
            assert key in st["health"], "status health lacks %r: %s" % (key, p.stdout)
        return st

    def slot(self, name, st=None):
        st = st or self.status()
        return {s["name"]: s for s in st["slots"]}[name]

    def verdict(self):
        with open(self.p("abdeploy", "state", "verdict.json")) as f:
            return json.load(f)

    def hook_result(self, name, verdict=None):
        v = verdict or self.verdict()
        found = [h for h in v["hooks"] if h["name"] == name]
        assert found, "hook %s not in verdict.json: %s" % (name, [h["name"] for h in v["hooks"]])
        return found[-1]

    def history(self):
        return json.loads(self.ok("history", "--json").stdout)

    def motd(self):
        with open(self.p("run", "motd.d", "abdeploy")) as f:
            return f.read()

    # --- changing the system
    def configure(self, text):
        """Append to SYSROOT/etc/abdeploy/abdeploy.conf."""
        path = self.p("etc", "abdeploy", "abdeploy.conf")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a") as f:
            f.write(text)

    def add_hook(self, slot, reldir, name, text, mode=0o755):
        """Write a hook into the slot's tree (reldir e.g.
        'etc/abdeploy/health/required.d').  Only new files are created, so
        nothing hardlinked to the sysroot repo is changed."""
        d = self.slot_path(slot, reldir)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, name)
        assert not os.path.exists(path), path
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path


UBOOT_ENV_SIZE = 0x4000


def uboot_available():
    try:
        import uboot_sim
    except ImportError:
        return False
    return uboot_sim.tools_available() and hasattr(uboot_sim, "simulate_boot")


def write_uboot_env_config(sr):
    """A redundant, file-backed U-Boot environment inside the sysroot
    (boot/uboot/env.0, env.1) described by SYSROOT/etc/fw_env.config,
    and U-Boot's default environment in etc/u-boot-initial-env."""
    os.makedirs(sr.p("etc"), exist_ok=True)
    os.makedirs(sr.p("boot", "uboot"), exist_ok=True)
    with open(sr.p("etc", "fw_env.config"), "w") as f:
        f.write("# device offset size\n")
        for n in (0, 1):
            f.write("%s 0x0 0x%x\n" % (sr.p("boot", "uboot", "env.%d" % n), UBOOT_ENV_SIZE))
    with open(sr.p("etc", "u-boot-initial-env"), "w") as f:
        f.write("bootcmd=run distro_bootcmd\nbootdelay=2\n")


def copy_sysroot(src, dest_parent):
    """cp -a of a prepared sysroot (hardlinks between slots and the repo
    kept) into a fresh directory; returns a new Sys."""
    d = tempfile.mkdtemp(prefix="sr-", dir=dest_parent)
    path = os.path.join(d, "sysroot")
    run(["cp", "-a", src.path, path])
    if os.path.exists(src.cmdline):
        shutil.copy(src.cmdline, path + ".cmdline")
    if src.backend == "uboot":
        # fw_env.config names the env files by absolute path
        write_uboot_env_config(Sys(path, src.binary, src.backend, src.published))
    return Sys(path, src.binary, src.backend, src.published)


# --------------------------------------------------------------------------
# Checks


def check_consistent(sr, st=None):
    """Invariants after any completed boot: status works, the primary is a
    non-empty slot in state good or trial, and no slot is in trial while the
    other one is primary (a trial that nobody will ever try again)."""
    st = st or sr.status()
    problems = []
    prim = st["primary"]
    if prim not in ("a", "b"):
        problems.append("no primary slot")
    else:
        ps = sr.slot(prim, st)
        if ps["state"] not in ("good", "trial"):
            problems.append("primary slot %s is %s" % (prim, ps["state"]))
        if ps["commit"] is None:
            problems.append("primary slot %s is empty" % prim)
        os_ = sr.slot(bootsim.other(prim), st)
        if os_["state"] == "trial":
            problems.append("slot %s is in trial but %s is primary" % (os_["name"], prim))
    return problems, st


def events_of(history, kind):
    return [e for e in history if e.get("type") == kind]


def wait_gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
