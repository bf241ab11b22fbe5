"""Helpers of the operator lifecycle tests: `version`, `verify`, `backup`
and `restore` (issue 6).

Nothing new is simulated here: the helpers of the other suites are reused
(imported through sys.path, not copied).  From tests/scenario/scenariolib.py
come the GPG keys, the publisher's archive repo made with the ostree CLI,
the python3 http.server on 127.0.0.1 and the tree snapshots; from
tests/health/healthlib.py and tests/lib/bootsim.py the sysroot under test
and its simulated boots (the bootloader's decision on the real pointer,
`abdeploy.slot=` written to the ABDEPLOY_CMDLINE file, then
`health-check --no-reboot`).  Standard library only.
"""

import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("ABDEPLOY_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
for _d in ("lib", "scenario", "health"):
    _p = os.path.join(SRCDIR, "tests", _d)
    if _p not in sys.path:
        sys.path.insert(0, _p)

import bootsim  # noqa: E402
import healthlib as hl  # noqa: E402
import scenariolib as sl  # noqa: E402

EXIT_OK = sl.EXIT_OK
EXIT_ERROR = sl.EXIT_ERROR
EXIT_USAGE = sl.EXIT_USAGE
EXIT_LOCKED = sl.EXIT_LOCKED

# The checks of `abdeploy verify`, in the order they are reported.
CHECKS = ("booted-primary-good", "tree-matches-commit", "state-consistent",
          "health-green", "no-stuck-transaction")
VERSION_KEYS = {"abdeploy_version", "os", "booted_slot", "slot", "version", "build_version",
                "commit", "source_revision", "build_time", "restore_pending"}

# Metadata of the commit "os/meta" (version 2.5), set with the ostree CLI.
META_VERSION = "2.5"
META_SOURCE_REVISION = "9f2c4e1d0b7a6c5e4f3a2b1c0d9e8f7a6b5c4d3e"
META_BUILD_TIME = "2024-05-17T09:30:00Z"
# Release made with `abdeploy publish` and offered on channel "stable".
RELEASE_VERSION = "3.5"
RELEASE_SOURCE_REVISION = "release-3.5-g1234abc"


def meson_project_version():
    """version : '...' of the project() call in the top meson.build."""
    with open(os.path.join(SRCDIR, "meson.build")) as f:
        text = f.read()
    m = re.search(r"project\s*\((.*?)\)", text, re.S)
    assert m, "no project() in meson.build"
    v = re.search(r"version\s*:\s*'([^']+)'", m.group(1))
    assert v, "no version in meson.build's project()"
    return v.group(1)


# --------------------------------------------------------------------------
# Publisher side


class Publisher:
    """The scenario suite's archive repo (os/v1 1.0, os/v2 2.0, os/v3 3.0,
    ...), plus os/meta (2.5, with source-revision and build-time metadata)
    and a release 3.5 made by `abdeploy publish commit` and
    `abdeploy publish release --channel=stable`, served over HTTP."""

    def __init__(self, root, keys, binary):
        self.repo = sl.PublishedRepo(root, keys)
        self.path = self.repo.path          # what healthlib.Sys.deploy uses
        self.keys = keys
        self.meta = self.repo._commit(
            "meta", META_VERSION, "os/meta", keys.trusted,
            args=["--add-metadata-string=source-revision=" + META_SOURCE_REVISION,
                  "--add-metadata-string=build-time=" + META_BUILD_TIME])
        tree = sl.write_tree(os.path.join(root, "tree-release"), sl.image_spec(RELEASE_VERSION))
        sign = ["--repo=" + self.path, "--gpg-sign=" + keys.trusted,
                "--gpg-homedir=" + keys.homedir]
        out = sl.run([binary, "publish", "commit", "--tree=" + tree,
                      "--version=" + RELEASE_VERSION,
                      "--source-revision=" + RELEASE_SOURCE_REVISION] + sign,
                     env=keys.env).stdout.decode()
        m = re.search(r"\b[0-9a-f]{64}\b", out)
        assert m, out
        self.release = m.group(0)
        sl.run([binary, "publish", "release", "--channel=stable",
                "--version=" + RELEASE_VERSION] + sign, env=keys.env)
        # refs made after the scenario repo signed its summary: sign it again
        sl.run(["ostree", "--repo=" + self.path, "summary", "-u",
                "--gpg-sign=" + keys.trusted, "--gpg-homedir=" + keys.homedir], env=keys.env)

    def commit_of(self, name):
        return self.repo.images[name].commit


# --------------------------------------------------------------------------
# The sysroot under test


class Device(hl.Sys):
    """healthlib's sysroot plus what the lifecycle commands need."""

    server_url = None

    def deploy_http(self, ref, *extra):
        return self.ok("deploy", "--from=" + self.server_url, *extra, ref)

    def set_booted(self, slot):
        if slot:
            bootsim.write_cmdline(self.cmdline, slot)
        else:
            with open(self.cmdline, "w"):
                pass

    def json(self, *args, code=EXIT_OK):
        p = self.run(*args)
        assert p.returncode == code, "expected exit %d\n%s" % (code, p.describe)
        try:
            return json.loads(p.stdout)
        except ValueError as e:
            raise AssertionError("no JSON (%s)\n%s" % (e, p.describe))

    def version(self):
        v = self.json("version", "--json")
        assert set(v) == VERSION_KEYS, "version --json keys %s, want %s" % (
            sorted(v), sorted(VERSION_KEYS))
        return v

    def verify(self, *args):
        """verify --json ARGS -> (exit code, {name: check}, report, process)."""
        p = self.run("verify", "--json", *args)
        try:
            report = json.loads(p.stdout)
        except ValueError as e:
            raise AssertionError("verify --json printed no JSON (%s)\n%s" % (e, p.describe))
        assert set(report) == {"passed", "checks"}, p.describe
        names = [c.get("name") for c in report["checks"]]
        assert names == list(CHECKS), "checks %s, want %s\n%s" % (names, CHECKS, p.describe)
        for c in report["checks"]:
            assert set(c) == {"name", "passed", "reason"}, c
            assert isinstance(c["passed"], bool), c
            assert isinstance(c["reason"], str) and c["reason"].strip(), c
        checks = {c["name"]: c for c in report["checks"]}
        assert report["passed"] == all(c["passed"] for c in checks.values()), report
        assert (p.returncode == EXIT_OK) == report["passed"], p.describe
        assert p.returncode in (EXIT_OK, EXIT_ERROR), p.describe
        return p.returncode, checks, report, p

    def failed_checks(self, *args):
        rc, checks, _, p = self.verify(*args)
        return sorted(n for n, c in checks.items() if not c["passed"]), checks, p

    def ostree(self, *args, check=True):
        return sl.run(["ostree", "--repo=" + self.p("ostree", "repo")] + list(args), check=check)

    def rev_parse(self, ref):
        return self.ostree("rev-parse", ref).stdout.decode().strip()

    def commit_meta(self, commit, key):
        """ostree show --print-metadata-key: the GVariant text, e.g. 'x'."""
        p = self.ostree("show", "--print-metadata-key=" + key, commit, check=False)
        return p.stdout.decode().strip() if p.returncode == 0 else None

    def replace_file(self, rel, data, slot):
        """Give a file of a slot other content through a new inode (write a
        temporary file, rename it over), so the hard-linked object in the
        sysroot repo stays intact."""
        path = self.slot_path(slot, rel)
        st = os.lstat(path)
        tmp = path + ".lifecycle-tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, st.st_mode & 0o7777)
        os.rename(tmp, path)

    def set_pointer(self, **values):
        assert self.backend == "file", "set_pointer is for the file backend"
        bootsim.write_file_pointer(self.path, values)

    def state_path(self, name):
        return self.p("abdeploy", "state", name)

    def hold_lock(self, tmpdir, slot="b"):
        """A real abdeploy holding the sysroot lock: health-check of the
        booted SLOT, waiting in a required hook until the returned `release`
        file exists.  Returns (process, release path)."""
        release = os.path.join(str(tmpdir), "release")
        started = os.path.join(str(tmpdir), "started")
        self.add_hook(slot, "etc/abdeploy/health/required.d", "10-wait.sh",
                      "touch %s\nwhile [ ! -e %s ]; do sleep 0.05; done\n" % (started, release))
        proc = subprocess.Popen([self.binary, "--sysroot=" + self.path, "health-check", "--no-reboot"],
                                env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not os.path.exists(started):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "health-check hook did not start"
            time.sleep(0.05)
        return proc, release


def devices_copy(src, parent):
    """cp -a copy of a prepared Device."""
    c = hl.copy_sysroot(src, parent)
    d = Device(c.path, c.binary, c.backend, c.published)
    return d


# --------------------------------------------------------------------------
# Immutable files: what "cannot be written" means even for root


class immutable:
    """`with immutable(path):` sets the immutable attribute (chattr +i) for
    the block; skips the test where the file system has no such attribute
    (tmpfs)."""

    def __init__(self, path):
        self.path = str(path)

    def __enter__(self):
        p = subprocess.run(["chattr", "+i", self.path], capture_output=True, text=True)
        if p.returncode != 0:
            import pytest
            pytest.skip("chattr +i %s: %s" % (self.path, p.stderr.strip()))
        return self.path

    def __exit__(self, *exc):
        subprocess.run(["chattr", "-i", self.path], capture_output=True)
        return False


# --------------------------------------------------------------------------
# What restore must not touch when it refuses


# Excluded: the content-addressed objects (and libostree's scratch space),
# and abdeploy/lock, whose content is only the pid of the last process that
# took the lock (informational; the flock is the lock).
_VOLATILE = ("ostree/repo/objects", "ostree/repo/tmp", "abdeploy/lock")


def disk_snapshot(dev):
    """Every entry of the sysroot except the volatile ones above: type, mode,
    inode, mtime, size and SHA-256 of files, targets of symlinks."""
    snap = sl.tree_entries(dev.path, "")
    return {k: v for k, v in snap.items()
            if not any(k.lstrip("/") == x or k.lstrip("/").startswith(x + "/") for x in _VOLATILE)}


def assert_unchanged(before, dev, what):
    after = disk_snapshot(dev)
    assert before == after, "%s changed the sysroot:\n%s" % (what, sl.diff_snapshots(before, after))
