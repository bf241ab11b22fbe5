"""Compatible OS (issue 16, point 2): `abdeploy publish commit --os` stamps
the OS into the signed commit metadata (abdeploy.os); every path that
installs a commit refuses one made for another OS with exit 3, naming both,
and changes nothing. A commit without the stamp (abdeploy 0.2.0, ostree
commit) is installed with a warning."""

import json
import os
import re

import pytest

import scenariolib as sl
import abtest as at  # tests/lib, put on sys.path by scenariolib


@pytest.fixture(scope="module")
def stamped(workdir, keys, abdeploy_bin):
    """A publisher repo with 2.0 for testos (the sysroots' OS) and 2.1 for
    otheros, both signed by the trusted key."""
    root = os.path.join(workdir, "stamped")
    repo = os.path.join(root, "repo")
    commits = {}
    for version, os_name in (("2.0", "testos"), ("2.1", "otheros")):
        tree = sl.write_tree(os.path.join(root, "tree-" + version), sl.image_spec(version))
        out = sl.run([abdeploy_bin, "publish", "commit", "--repo=" + repo, "--tree=" + tree,
                      "--version=" + version, "--os=" + os_name, "--gpg-sign=" + keys.trusted,
                      "--gpg-homedir=" + keys.homedir], env=keys.env).stdout.decode()
        commits[os_name] = re.search(r"\b[0-9a-f]{64}\b", out).group(0)
    return {"repo": repo, "commits": commits}


@pytest.mark.parametrize("command", ["stage", "deploy"])
def test_commit_for_another_os_is_refused(sysroot, server, stamped, command):
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    st = sysroot.status()
    before = sysroot.snapshot()
    r = sysroot.run(command, "--from=" + stamped["repo"], stamped["commits"]["otheros"])
    assert r.returncode == sl.EXIT_VERIFY, r.describe()
    assert 'made for OS "otheros"' in r.stderr and 'runs "testos"' in r.stderr, r.describe()
    assert "--os=testos" in r.stderr, r.describe()
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)
    assert sysroot.status() == st


def test_commit_for_this_os_is_staged_silently(sysroot, server, stamped):
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    r = sysroot.ok("stage", "--from=" + stamped["repo"], stamped["commits"]["testos"])
    assert "names no OS" not in r.stderr, r.describe()


def test_unstamped_commit_is_staged_with_a_warning(sysroot, server, published):
    """N-1: a commit published by abdeploy 0.2.0 (here: the ostree CLI) has
    no abdeploy.os; it is staged, and the warning says so."""
    r = sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    assert "names no OS" in r.stderr and "abdeploy.os" in r.stderr, r.describe()
    assert sysroot.status()["primary"] is not None


def test_commit_whose_os_is_not_a_string_is_refused(sysroot, server, keys, workdir):
    """Fail closed: an abdeploy.os of another type (here an int32, signed by
    the trusted key) says nothing about the OS: refused like another OS."""
    root = os.path.join(workdir, "odd-os")
    repo = at.ostree_init(os.path.join(root, "repo"))
    tree = sl.write_tree(os.path.join(root, "tree"), sl.image_spec("2.0"))
    commit = at.ostree_commit(repo, "os/odd", tree, "2.0", "odd", key=keys.trusted, gpg=keys,
                              args=["--add-metadata=abdeploy.os=42"])
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    before = sysroot.snapshot()
    r = sysroot.run("stage", "--from=" + repo, commit)
    assert r.returncode == sl.EXIT_VERIFY, r.describe()
    assert "abdeploy.os metadata is not a string" in r.stderr, r.describe()
    assert sysroot.snapshot() == before
