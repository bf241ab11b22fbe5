"""Helpers for the abdeploy scenario tests.

Standard library only.  Everything here drives real programs: gpg, the
ostree CLI, a python3 http.server process bound to 127.0.0.1, and the
built abdeploy binary.  What other suites need too (child environment,
runs of helper programs and of the binary, GPG homes, trees, commits,
the HTTP server, snapshots) is in tests/lib/abtest.py and re-exported
here under its old names.
"""

import dataclasses
import datetime
import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import time

_LIBDIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
if _LIBDIR not in sys.path:
    sys.path.insert(0, _LIBDIR)

import abtest as at  # noqa: E402
# Shared with the other suites (tests/lib/abtest.py), re-exported here.
from abtest import (  # noqa: E402,F401
    DEFAULT_TIMEOUT, EXIT_ERROR, EXIT_LOCKED, EXIT_NOTHING, EXIT_OK, EXIT_USAGE,
    EXIT_VERIFY, PYTHON, SLOTS, HttpServer, Result, clean_env, diff_snapshots, other,
    rmtree, run, tree_entries, write_tree)

STATES = {"empty", "staged", "trial", "good", "bad"}
TOP_KEYS = {"booted", "primary", "slots", "origin", "next_boot"}
SLOT_KEYS = {"name", "commit", "version", "state", "booted", "primary",
             "tries_left", "deployed_at"}

OS_NAME = "testos"


# --------------------------------------------------------------------------
# GPG keys


class GpgKeys(at.GpgHome):
    """A temporary GNUPGHOME with a trusted and an untrusted signing key
    (RSA 2048); .trusted and .untrusted are their fingerprints."""

    def __init__(self, homedir):
        super().__init__(homedir)
        self.trusted = self.generate("abdeploy test publisher", "publisher@example.org")
        self.untrusted = self.generate("abdeploy test intruder", "intruder@example.org")


# --------------------------------------------------------------------------
# Image trees

KVER1 = "6.1.0-test"
KVER2 = "6.2.0-test"


def image_spec(version):
    """Files of the test image for version '1.0', '2.0', or a variant.

    Values: bytes/str (regular file 0644), (content, mode), ('link', target),
    or ('dir',) for an empty directory."""
    major = version.split(".")[0]
    v1 = major == "1"
    kver = KVER1 if v1 else KVER2
    spec = {
        "usr/bin/hello": ('#!/bin/sh\necho "hello from testos %s"\n' % version, 0o755),
        "usr/bin/hello-link": ("link", "hello"),
        # large-ish file, different in each major version (the corruption target)
        "usr/bin/app": (b"#APP " + major.encode() + b"\n" + at.blob("app" + major, 48 * 1024), 0o755),
        # identical in every version: shared objects between slots
        "usr/bin/shared-tool": (b"#SHARED\n" + at.blob("shared", 16 * 1024), 0o755),
        "usr/lib/os-release": "NAME=testos\nID=%s\nVERSION_ID=%s\n" % (OS_NAME, version),
        "usr/share/doc/testos/README": "testos %s\n" % major,
        "usr/share/empty": ("dir",),
        "usr/etc/motd": "Welcome to testos %s\n" % major,
        "usr/etc/app.conf": "setting=%s\n" % major,
        "usr/etc/deleteme.conf": "delete=me\n",
        "usr/etc/updated.conf": "value=%s\n" % major,
        "usr/etc/unchanged.conf": "constant=yes\n",
        "usr/etc/sub/nested.conf": "nested=1\n",
    }
    spec.update(at.kernel_files(
        kver, b"FAKEKERNEL " + kver.encode() + b"\n" + at.blob("k" + kver, 8192),
        b"FAKEINITRD " + kver.encode() + b"\n" + at.blob("i" + kver, 4096)))
    if not v1:
        spec["usr/etc/newdefault.conf"] = "new=in-v2\n"
    return spec


@dataclasses.dataclass
class Image:
    name: str
    version: str
    tree: str
    kver: str
    ref: str
    commit: str = None

    def read(self, rel):
        with open(os.path.join(self.tree, rel), "rb") as f:
            return f.read()

    @property
    def kernel(self):
        return self.read("usr/lib/modules/%s/vmlinuz" % self.kver)

    @property
    def initramfs(self):
        return self.read("usr/lib/modules/%s/initramfs.img" % self.kver)


# --------------------------------------------------------------------------
# Publisher side: archive repo with signed / unsigned / foreign commits


class PublishedRepo:
    """Archive-mode OSTree repo made with the ostree CLI.

    refs: os/v1 (1.0, trusted key), os/v2 and os/stable (2.0, trusted key,
    parent v1), os/v3 (3.0, trusted key), os/unsigned (no signature),
    os/evil (untrusted key)."""

    def __init__(self, root, keys):
        self.root = root
        self.keys = keys
        self.path = os.path.join(root, "repo")
        self.images = {}
        os.makedirs(root, exist_ok=True)
        at.ostree_init(self.path)
        self.v1 = self._commit("v1", "1.0", "os/v1", keys.trusted)
        # v2 is bound to both of its refs (libostree checks ref bindings on pull)
        self.v2 = self._commit("v2", "2.0", "os/v2", keys.trusted,
                               args=["--bind-ref=os/stable", "--parent=" + self.v1.commit])
        run(["ostree", "--repo=" + self.path, "refs", "--create=os/stable", self.v2.commit])
        self.v3 = self._commit("v3", "3.0", "os/v3", keys.trusted)
        self.unsigned = self._commit("unsigned", "2.1", "os/unsigned", None,
                                     extra={"usr/bin/unsigned-marker": "unsigned\n"})
        self.evil = self._commit("evil", "6.6.6", "os/evil", keys.untrusted,
                                 extra={"usr/bin/evil": ("#!/bin/sh\necho pwned\n", 0o755)})
        run(["ostree", "--repo=" + self.path, "summary", "-u",
             "--gpg-sign=" + keys.trusted, "--gpg-homedir=" + keys.homedir],
            env=keys.env)

    def _commit(self, name, version, branch, key, extra=None, args=()):
        spec = image_spec(version)
        if extra:
            spec.update(extra)
        tree = write_tree(os.path.join(self.root, "tree-" + name), spec)
        commit = at.ostree_commit(self.path, branch, tree, version, "testos " + version,
                                  key=key, gpg=self.keys, args=args)
        img = Image(name=name, version=version, tree=tree,
                    kver=KVER1 if version.startswith("1") else KVER2,
                    ref=branch, commit=commit)
        self.images[name] = img
        return img

    def image_for_commit(self, commit):
        for img in self.images.values():
            if img.commit == commit:
                return img
        return None

    def object_path(self, ref, path):
        """Path of the .filez object holding file `path` of `ref`."""
        out = run(["ostree", "--repo=" + self.path, "ls", "-C", ref, path]).stdout.decode()
        checksum = out.split()[4]
        return os.path.join(self.path, "objects", checksum[:2], checksum[2:] + ".filez")


# --------------------------------------------------------------------------
# The sysroot under test


class Sysroot(at.AbdeployCli):
    """A sysroot under test, its kernel command line file (the booted slot,
    through ABDEPLOY_CMDLINE) and its bootloader backend (file or grub).
    run(), ok(), expect() and popen() come from abtest.AbdeployCli."""

    def __init__(self, path, binary, home, cmdline_file, bootloader="file"):
        self.path = path
        self.binary = binary
        self.home = home
        self.cmdline_file = cmdline_file
        self.bootloader = bootloader
        if not os.path.exists(cmdline_file):
            self.set_booted(None)

    # paths
    def p(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def repo(self):
        return self.p("ostree", "repo")

    @property
    def slots_dir(self):
        return self.p("abdeploy", "slots")

    def slot_dir(self, slot):
        return self.p("abdeploy", "slots", slot)

    def boot_dir(self, slot):
        return self.p("boot", "abdeploy", slot)

    @property
    def pointer_path(self):
        if self.bootloader == "grub":
            return self.p("boot", "grub", "grubenv")
        return self.p("boot", "abdeploy", "pointer")

    @property
    def trusted_dir(self):
        return at.trusted_keys_dir(self.path)

    @property
    def lock_path(self):
        return self.p("abdeploy", "lock")

    # running the binary
    def set_booted(self, slot):
        with open(self.cmdline_file, "w") as f:
            if slot:
                f.write("BOOT_IMAGE=/boot/abdeploy/%s/vmlinuz root=LABEL=root ro quiet "
                        "abdeploy.slot=%s\n" % (slot, slot))
            else:
                f.write("")

    def env(self, extra=None):
        e = clean_env(home=self.home, extra={"ABDEPLOY_CMDLINE": self.cmdline_file})
        if extra:
            e.update(extra)
        return e

    def run_tty(self, *args, timeout=DEFAULT_TIMEOUT):
        """Run with stdout and stderr on a pseudo-terminal; returns
        (exit code, raw bytes written to the terminal)."""
        import pty
        cmd = self.cmd(*args)
        master, slave = pty.openpty()
        p = subprocess.Popen(cmd, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                             env=self.env())
        os.close(slave)
        out = b""
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(master, selectors.EVENT_READ)
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=1):
                    if p.poll() is not None:
                        break
                    continue
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the other side is closed
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            sel.close()
            os.close(master)
        try:
            rc = p.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError("timed out: %s\n%r" % (" ".join(cmd), out))
        return rc, out

    def status(self):
        r = self.ok("status", "--json")
        try:
            st = json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError("status --json printed no valid JSON (%s)\n%s" % (e, r.describe()))
        check_status_schema(st)
        return st

    def slot_status(self, slot, st=None):
        return at.slot_status(st or self.status(), slot)

    # boot pointer
    def pointer(self):
        """Boot pointer variables as a dict, read as the bootloader would."""
        if self.bootloader == "grub":
            out = run(["grub-editenv", self.pointer_path, "list"]).stdout.decode()
            lines = out.splitlines()
        else:
            with open(self.pointer_path) as f:
                lines = f.read().splitlines()
            assert lines and lines[0] == "ABDEPLOY_FORMAT=1", \
                "pointer file must start with ABDEPLOY_FORMAT=1: %r" % lines[:1]
        d = {}
        for line in lines:
            if not line.strip() or line.startswith("#"):
                continue
            k, _, v = line.partition("=")
            d[k] = v
        return d

    def set_pointer(self, **variables):
        """Change pointer variables the way a bootloader or health check
        would (used to simulate 'slot blessed good' or a decremented counter)."""
        if self.bootloader == "grub":
            run(["grub-editenv", self.pointer_path, "set"] +
                ["%s=%s" % kv for kv in variables.items()])
            return
        with open(self.pointer_path) as f:
            lines = f.read().splitlines()
        seen = set()
        for i, line in enumerate(lines):
            k = line.partition("=")[0]
            if k in variables:
                lines[i] = "%s=%s" % (k, variables[k])
                seen.add(k)
        lines += ["%s=%s" % (k, v) for k, v in variables.items() if k not in seen]
        tmp = self.pointer_path + ".test-tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.rename(tmp, self.pointer_path)

    def bless(self, slot):
        """Mark a slot good, as a green boot of that slot would."""
        u = slot.upper()
        self.set_pointer(**{"ABDEPLOY_%s_STATE" % u: "good", "ABDEPLOY_%s_TRIES" % u: "0"})

    # snapshots
    def snapshot(self):
        """Both slots, the boot dir (kernels + file pointer), the grub env,
        the state dir, and the refs of the sysroot repo."""
        snap = {}
        snap.update(tree_entries(self.slots_dir, "abdeploy/slots"))
        snap.update(tree_entries(self.p("boot", "abdeploy"), "boot/abdeploy"))
        snap.update(tree_entries(self.p("boot", "grub"), "boot/grub"))
        snap.update(tree_entries(self.p("abdeploy", "state"), "abdeploy/state", identity=False))
        snap["refs"] = tuple(sorted(self.refs().items()))
        return snap

    def slot_snapshot(self, slot):
        return tree_entries(self.slot_dir(slot), "slots/" + slot)

    def refs(self):
        if not os.path.isdir(self.repo):
            return {}
        out = run(["ostree", "--repo=" + self.repo, "refs"]).stdout.decode().split()
        return {r: run(["ostree", "--repo=" + self.repo, "rev-parse", r]).stdout.decode().strip()
                for r in out}

    def fsck(self):
        at.ostree_fsck(self.repo, "SYSROOT/ostree/repo")


# --------------------------------------------------------------------------
# Checks


def _is_iso8601(s):
    try:
        datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
        return True
    except (TypeError, ValueError):
        return False


def check_status_schema(st):
    """Assert the shape of `status --json` (issue 2 contract)."""
    assert isinstance(st, dict), st
    assert TOP_KEYS <= set(st), "status keys %s lack %s" % (sorted(st), TOP_KEYS - set(st))
    assert st["booted"] in (None, "a", "b"), st
    assert st["primary"] in (None, "a", "b"), st
    assert isinstance(st["slots"], list) and len(st["slots"]) == 2, st
    names = [s.get("name") for s in st["slots"]]
    assert sorted(names) == ["a", "b"], names
    for s in st["slots"]:
        assert SLOT_KEYS <= set(s), "slot keys %s lack %s" % (sorted(s), SLOT_KEYS - set(s))
        assert s["state"] in STATES, s
        assert isinstance(s["booted"], bool) and isinstance(s["primary"], bool), s
        assert s["booted"] == (st["booted"] == s["name"]), st
        assert s["primary"] == (st["primary"] == s["name"]), st
        assert s["tries_left"] is None or (isinstance(s["tries_left"], int)
                                           and not isinstance(s["tries_left"], bool)), s
        if s["state"] == "empty":
            assert s["commit"] is None and s["deployed_at"] is None, s
        else:
            assert isinstance(s["commit"], str) and re.fullmatch(r"[0-9a-f]{64}", s["commit"]), s
            assert isinstance(s["deployed_at"], str) and _is_iso8601(s["deployed_at"]), s
        if s["state"] == "trial":
            assert isinstance(s["tries_left"], int), s
    # issue 16: where updates come from, and what the bootloader boots next
    assert set(st["origin"]) == {"url", "channel"}, st["origin"]
    assert isinstance(st["origin"]["channel"], str), st["origin"]
    nb = st["next_boot"]
    if st["primary"] is None:
        assert nb is None, st
    else:
        assert set(nb) == {"slot", "version", "kind", "tries"}, nb
        assert nb["slot"] in ("a", "b") and nb["kind"] in ("trial", "primary", "fallback"), nb
        slot = [s for s in st["slots"] if s["name"] == nb["slot"]][0]
        assert nb["version"] == slot["version"] and nb["tries"] == slot["tries_left"], (nb, slot)
        assert (nb["kind"] == "fallback") == (nb["slot"] != st["primary"]), st


def compare_tree(actual_root, expected_root):
    """Differences between a checked-out tree and the image tree it came from."""
    problems = []
    exp = tree_entries(expected_root, "", identity=False)
    act = tree_entries(actual_root, "", identity=False)
    for k in sorted(set(exp) | set(act)):
        if k == "":
            continue
        e, a = exp.get(k), act.get(k)
        if e is None:
            problems.append("unexpected %s" % k)
        elif a is None:
            problems.append("missing %s" % k)
        elif e[0].startswith("d") and a[0].startswith("d"):
            continue
        elif e != a:
            problems.append("differs %s: %r != %r" % (k, a[:1] + a[2:3], e[:1] + e[2:3]))
    return problems


def slot_problems(sr, slot, image):
    """Is `slot` a complete checkout of `image` with its kernel installed?"""
    problems = []
    root = sr.slot_dir(slot)
    if not os.path.isdir(os.path.join(root, "usr")):
        return ["slot %s has no usr/ tree" % slot]
    problems += ["slot %s usr: %s" % (slot, x)
                 for x in compare_tree(os.path.join(root, "usr"), os.path.join(image.tree, "usr"))]
    if not os.path.isdir(os.path.join(root, "etc")):
        problems.append("slot %s has no etc/" % slot)
    bd = sr.boot_dir(slot)
    for name, want in (("vmlinuz", image.kernel), ("initramfs.img", image.initramfs)):
        f = os.path.join(bd, name)
        if not os.path.isfile(f):
            problems.append("boot/abdeploy/%s/%s missing" % (slot, name))
        else:
            with open(f, "rb") as fh:
                if fh.read() != want:
                    problems.append("boot/abdeploy/%s/%s is not the kernel of %s" % (slot, name, image.name))
    return problems


def boot_choice(ptr):
    """The slot the bootloader picks from the pointer variables, by the
    rules of docs/internals.md, and the set of bootable slots."""
    def bootable(x):
        state = ptr.get("ABDEPLOY_%s_STATE" % x.upper(), "none")
        try:
            tries = int(ptr.get("ABDEPLOY_%s_TRIES" % x.upper(), "0") or 0)
        except ValueError:
            tries = 0
        return state == "good" or (state == "trial" and tries > 0)
    ok = {x for x in SLOTS if bootable(x)}
    primary = ptr.get("ABDEPLOY_PRIMARY") or None
    if primary not in SLOTS:
        return None, ok
    if primary in ok:
        return primary, ok
    if other(primary) in ok:
        return other(primary), ok
    return primary, ok


def consistency_problems(sr, published):
    """Invariants that must hold after any crash: status works, the
    primary slot is complete and bootable, every non-empty slot is a
    complete checkout of a known commit."""
    try:
        st = sr.status()
    except AssertionError as e:
        return ["status failed: %s" % e], None
    problems = []
    for s in st["slots"]:
        if s["state"] == "empty":
            continue
        img = published.image_for_commit(s["commit"])
        if img is None:
            problems.append("slot %s records unknown commit %s" % (s["name"], s["commit"]))
            continue
        if s["version"] != img.version:
            problems.append("slot %s version %r != %r" % (s["name"], s["version"], img.version))
        problems += slot_problems(sr, s["name"], img)
    # what the bootloader would boot now, or fall back to, must be complete
    try:
        ptr = sr.pointer()
    except (AssertionError, OSError) as e:
        return problems + ["boot pointer unreadable: %s" % e], st
    choice, bootable = boot_choice(ptr)
    for x in sorted(bootable | ({choice} if choice else set())):
        s = sr.slot_status(x, st)
        if s["state"] == "empty":
            problems.append("bootloader would boot slot %s, which is empty (pointer %s)" % (x, ptr))
    if st["primary"] is not None:
        ps = sr.slot_status(st["primary"], st)
        if ps["state"] not in ("trial", "good"):
            problems.append("primary slot %s is in state %s" % (ps["name"], ps["state"]))
        if ps["state"] == "trial" and not (ps["tries_left"] or 0) > 0:
            problems.append("primary slot %s is trial with %r tries" % (ps["name"], ps["tries_left"]))
    return problems, st


# --------------------------------------------------------------------------
# Making sysroots


class SysrootFactory:
    def __init__(self, root, binary, home, keyfiles):
        self.root = root
        self.binary = binary
        self.home = home
        self.keyfiles = keyfiles
        self.made = []
        os.makedirs(root, exist_ok=True)

    def _newdir(self, prefix):
        return tempfile.mkdtemp(prefix=prefix, dir=self.root)

    def create(self, bootloader="file", keys=("trusted.gpg",), init=True, booted=None):
        d = self._newdir("sr-")
        sr = Sysroot(os.path.join(d, "sysroot"), self.binary, self.home,
                     os.path.join(d, "cmdline"), bootloader=bootloader)
        os.makedirs(sr.path)
        sr.set_booted(booted)
        self.made.append(sr)
        if init:
            sr.ok("init", "--os=" + OS_NAME, "--bootloader=" + bootloader)
            self.install_keys(sr, keys)
        return sr

    def install_keys(self, sr, keys):
        at.trust_keys(sr.path, [self.keyfiles[k] for k in keys])

    def clone(self, sr):
        """A copy (cp -a, hardlinks preserved) of a prepared sysroot."""
        d = self._newdir("clone-")
        copy = Sysroot(os.path.join(d, "sysroot"), self.binary, self.home,
                       os.path.join(d, "cmdline"), bootloader=sr.bootloader)
        run(["cp", "-a", sr.path, copy.path])
        shutil.copy(sr.cmdline_file, copy.cmdline_file)
        self.made.append(copy)
        return copy

    def discard(self, sr):
        rmtree(os.path.dirname(sr.path))
        if sr in self.made:
            self.made.remove(sr)

    def finish(self):
        """`ostree fsck` of every sysroot repo the test created, then clean up."""
        failures = []
        for sr in self.made:
            if os.path.isdir(sr.repo):
                try:
                    sr.fsck()
                except AssertionError as e:
                    failures.append("%s: %s" % (os.path.basename(os.path.dirname(sr.path)), e))
        for sr in list(self.made):
            self.discard(sr)
        assert not failures, "\n".join(failures)
