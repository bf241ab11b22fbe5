"""Offline media (a local repo path) is checked like an HTTP server: a
damaged or tampered object on the medium is an error and nothing on disk
changes, even when the commit's signature is valid.  Both repo modes are
covered: archive (objects copied) and bare on the sysroot's file system
(objects hardlinked, the path where an unchecked import would be cheapest)."""

import os

import pytest

import scenariolib as sl
import abtest as at  # tests/lib, put on sys.path by scenariolib


def _content_object(repo, ref, path, suffix):
    out = sl.run(["ostree", "--repo=" + repo, "ls", "-C", ref, path]).stdout.decode()
    checksum = out.split()[4]
    return os.path.join(repo, "objects", checksum[:2], checksum[2:] + suffix)


def _medium(workdir, published, mode):
    """A copy of the published repo (as it would be on a USB stick) in MODE,
    with the object of usr/bin/app 2.0 (only v2 has it) damaged."""
    root = os.path.join(workdir, "medium-" + mode)
    if os.path.exists(root):
        sl.run(["rm", "-rf", root])
    os.makedirs(root)
    repo = os.path.join(root, "repo")
    if mode == "archive":
        sl.run(["cp", "-a", published.path, repo])
        suffix = ".filez"
    else:
        sl.run(["ostree", "init", "--mode=bare", "--repo=" + repo])
        sl.run(["ostree", "pull-local", "--repo=" + repo, published.path, "os/v1", "os/v2"])
        suffix = ".file"
    obj = _content_object(repo, "os/v2", "/usr/bin/app", suffix)
    assert obj != _content_object(repo, "os/v1", "/usr/bin/app", suffix)
    at.damage(obj)
    return repo


@pytest.mark.parametrize("mode", ["archive", "bare"])
def test_damaged_object_on_local_medium_refused(workdir, sysroot, server, published, mode):
    medium = _medium(workdir, published, mode)
    sysroot.ok("deploy", "--from=" + medium, "os/v1")
    primary = sysroot.status()["primary"]
    st = sysroot.status()
    before = sysroot.snapshot()

    r = sysroot.run("stage", "--from=" + medium, "os/v2")

    assert r.returncode == sl.EXIT_ERROR, r.describe()
    assert "corrupt" in r.output.lower(), r.describe()
    assert medium in r.output or "medium" in r.output.lower(), r.describe()
    after = sysroot.snapshot()
    assert after == before, "failed stage changed the disk:\n" + sl.diff_snapshots(before, after)
    assert sysroot.status() == st
    # the same commit from an intact source stages, complete and unchanged
    sysroot.ok("stage", "--from=" + server.url, "os/v2")
    s = sysroot.slot_status(sl.other(primary))
    assert s["state"] == "staged" and s["commit"] == published.v2.commit, s
    assert sl.slot_problems(sysroot, sl.other(primary), published.v2) == []
