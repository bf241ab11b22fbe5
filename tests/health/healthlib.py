"""Helpers of the abdeploy health tests (issue 3 scenarios).

Everything is real: gpg keys, commits made by the ostree CLI, deploys by
the built abdeploy binary from a local archive repo, and boots simulated by
tests/lib/bootsim.py (the bootloader's decision, then `health-check
--no-reboot`).  What the suites share (child environment, runs, GPG homes,
trees, commits) comes from tests/lib/abtest.py.  Standard library only.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("ABDEPLOY_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
LIBDIR = os.path.join(SRCDIR, "tests", "lib")
if LIBDIR not in sys.path:
    sys.path.insert(0, LIBDIR)

import abtest as at  # noqa: E402
import bootsim  # noqa: E402
# Shared with the other suites (tests/lib/abtest.py), re-exported here.
from abtest import EXIT_OK, EXIT_USAGE, rmtree, run  # noqa: E402,F401

OS_NAME = "testos"
KVER = {"1": "6.1.0-health", "2": "6.2.0-health"}
FAIL_HOOK = "50-fail.sh"

EXIT_RED = 7    # health-check: the verdict is red (1 is an error: issue 16)


def clean_env(extra=None):
    """abtest.clean_env() with EXTRA on top."""
    return at.clean_env(extra=extra)


# --------------------------------------------------------------------------
# Signing key and published images


class Gpg(at.GpgHome):
    """A throw-away GNUPGHOME with one signing key (ed25519, else RSA);
    .fpr is its fingerprint."""

    def __init__(self, homedir):
        super().__init__(homedir)
        self.fpr = self.generate("abdeploy health tests", "health@example.org",
                                 algo="ed25519", fallback="rsa2048")

    def export(self, dest):
        """Write the public key to DEST; returns DEST."""
        return super().export(self.fpr, dest)


def image_files(version, extra=None):
    major = version.split(".")[0]
    kver = KVER[major]
    files = {
        "usr/bin/hello": ("#!/bin/sh\necho hello %s\n" % version, 0o755),
        "usr/lib/os-release": ("NAME=%s\nVERSION_ID=%s\n" % (OS_NAME, version), 0o644),
        "usr/etc/motd": ("Welcome to %s %s\n" % (OS_NAME, version), 0o644),
        "usr/etc/hostname": ("appliance\n", 0o644),
    }
    files.update(at.kernel_files(kver, ("FAKEKERNEL %s\n" % kver, 0o644),
                                 ("FAKEINITRD %s\n" % kver, 0o644)))
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
        at.ostree_init(self.path)
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
        tree = at.write_tree(os.path.join(self.root, "tree-" + ref.replace("/", "-")),
                             image_files(version, extra))
        out = at.ostree_commit(self.path, ref, tree, version, ref, key=self.gpg.fpr,
                               gpg=self.gpg)
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
        return at.clean_env(extra=dict({"ABDEPLOY_CMDLINE": self.cmdline}, **(extra or {})))

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
        return at.slot_status(st or self.status(), name)

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
    if os.environ.get("ABDEPLOY_HAVE_UBOOT") == "0":   # built with -Duboot=disabled
        return False
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
    """True once no process PID exists (within TIMEOUT seconds)."""
    def gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return at.poll(gone, timeout, interval=0.05)
