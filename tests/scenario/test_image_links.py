"""Links from a new image (issue 10, point 7).

Images are committed with the ostree CLI and signed with the trusted key
(real gpg), then staged from the repository as offline media. Each image
carries one hostile link:

- usr/etc/sub, a directory in v1 that the operator changed, becomes a link
  (to a directory outside the sysroot, or to ../../..): the /etc merge must
  write and delete nothing outside the slot and the stage is refused;
- the kernel usr/lib/modules/KVER/vmlinuz is a link (to the host's
  /etc/passwd, or to a file inside the tree), or is missing: the slot is
  never activated.

A refused stage or deploy changes nothing: slots, boot dir, pointer, state
and refs are as before.
"""

import os

import pytest

import scenariolib as sl
import abtest as at

OUTSIDE_FILES = {"nested.conf": b"outside\n", "other.conf": b"outside\n"}


@pytest.fixture(scope="module")
def medium(workdir, keys):
    """An archive repo with os/v1 (a normal image) and the hostile images,
    each signed with the trusted key. Returns (repo path, outside dir)."""
    root = os.path.join(workdir, "image-links")
    repo = at.ostree_init(os.path.join(root, "repo"))
    outside = os.path.join(root, "outside")
    os.makedirs(outside)
    for name, data in OUTSIDE_FILES.items():
        with open(os.path.join(outside, name), "wb") as f:
            f.write(data)

    def commit(ref, version, change):
        spec = sl.image_spec(version)
        change(spec)
        tree = at.write_tree(os.path.join(root, "tree-" + ref.replace("/", "-")), spec)
        return at.ostree_commit(repo, ref, tree, version, "testos " + version,
                                key=keys.trusted, gpg=keys)

    def etc_link(target):
        def change(spec):
            del spec["usr/etc/sub/nested.conf"]
            spec["usr/etc/sub"] = ("link", target)
        return change

    kernel = "usr/lib/modules/%s/vmlinuz" % sl.KVER2

    def kernel_link(target):
        def change(spec):
            spec[kernel + "-real"] = spec[kernel]
            spec[kernel] = ("link", target)
        return change

    def no_kernel(spec):
        for rel in [r for r in spec if r.startswith("usr/lib/modules/")]:
            del spec[rel]

    commit("os/v1", "1.0", lambda spec: None)
    commit("os/v2", "2.0", lambda spec: None)
    commit("os/etc-link-out", "2.0", etc_link(outside))
    commit("os/etc-link-up", "2.0", etc_link("../../.."))
    commit("os/kernel-host-passwd", "2.0", kernel_link("/etc/passwd"))
    commit("os/kernel-in-tree", "2.0", kernel_link("vmlinuz-real"))
    commit("os/no-kernel", "2.0", no_kernel)
    return repo, outside


def _outside_state(outside):
    return {n: open(os.path.join(outside, n), "rb").read() for n in sorted(os.listdir(outside))}


def _running_v1(sr, repo):
    """v1 deployed and booted; returns the running slot's etc directory."""
    sr.ok("deploy", "--from=" + repo, "os/v1")
    booted = sr.status()["primary"]
    sr.set_booted(booted)
    return booted, os.path.join(sr.slot_dir(booted), "etc")


def _snapshot(sr):
    """sr.snapshot() with only the slot refs: a refused stage may keep the
    commit it fetched (and its remote ref) in the repo, as any fetch does."""
    snap = sr.snapshot()
    snap["refs"] = tuple(r for r in snap["refs"] if r[0].startswith("abdeploy/slot/"))
    return snap


def _sysroot_entries(sr):
    """Every path in the sysroot outside the slot trees (where ../../..
    from a slot's etc/sub lands)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(sr.path):
        rel = os.path.relpath(dirpath, sr.path)
        if rel.startswith(os.path.join("abdeploy", "slots")) or rel.startswith("ostree"):
            dirnames[:] = []
            continue
        out.update(os.path.join(rel, n) for n in filenames + dirnames)
    return out


@pytest.mark.parametrize("ref", ["os/etc-link-out", "os/etc-link-up"])
@pytest.mark.parametrize("local", ["changed", "deleted"])
def test_etc_dir_became_link_with_local_changes(sysroot, medium, ref, local):
    repo, outside = medium
    booted, etc = _running_v1(sysroot, repo)
    nested = os.path.join(etc, "sub", "nested.conf")
    if local == "changed":
        with open(nested, "wb") as f:
            f.write(b"nested=operator\n")
        with open(os.path.join(etc, "sub", "operator.conf"), "wb") as f:
            f.write(b"added=by-operator\n")
    else:
        os.unlink(nested)
    outside_before = _outside_state(outside)
    entries_before = _sysroot_entries(sysroot)
    st = sysroot.status()
    before = _snapshot(sysroot)

    r = sysroot.run("stage", "--from=" + repo, ref)

    assert r.returncode == sl.EXIT_ERROR, r.describe()
    assert "etc/sub" in r.stderr and "symbolic link" in r.stderr, r.describe()
    assert "%s etc/sub/" % local in r.stderr, r.describe()
    # nothing written or deleted through the link, in or out of the sysroot
    assert _outside_state(outside) == outside_before
    assert _sysroot_entries(sysroot) == entries_before
    after = _snapshot(sysroot)
    assert after == before, "refused stage changed the disk:\n" + sl.diff_snapshots(before, after)
    assert sysroot.status() == st


@pytest.mark.parametrize("ref", ["os/etc-link-out", "os/etc-link-up"])
def test_etc_dir_became_link_without_local_changes(sysroot, medium, ref):
    """No local change below the link: the image's link is taken as it is
    (a link, never followed by the merge)."""
    repo, outside = medium
    booted, etc = _running_v1(sysroot, repo)
    outside_before = _outside_state(outside)
    sysroot.ok("stage", "--from=" + repo, ref)
    new_sub = os.path.join(sysroot.slot_dir(sl.other(booted)), "etc", "sub")
    assert os.path.islink(new_sub)
    assert _outside_state(outside) == outside_before


@pytest.mark.parametrize("ref,words", [
    ("os/kernel-host-passwd", "vmlinuz is a symbolic link"),
    ("os/kernel-in-tree", "vmlinuz is a symbolic link"),
    ("os/no-kernel", "no kernel"),
])
@pytest.mark.parametrize("command", ["stage", "deploy"])
def test_unbootable_kernel_is_never_activated(sysroot, medium, ref, words, command):
    repo, _ = medium
    booted, _ = _running_v1(sysroot, repo)
    target = sl.other(booted)
    st = sysroot.status()
    before = _snapshot(sysroot)

    r = sysroot.run(command, "--from=" + repo, ref)

    assert r.returncode == sl.EXIT_ERROR, r.describe()
    assert "unbootable image" in r.stderr and words in r.stderr, r.describe()
    after = _snapshot(sysroot)
    assert after == before, "refused %s changed the disk:\n%s" % (
        command, sl.diff_snapshots(before, after))
    assert sysroot.status() == st
    assert sysroot.pointer()["ABDEPLOY_PRIMARY"] == booted
    # nothing for the bootloader to boot through a link
    boot = sysroot.boot_dir(target)
    assert not os.path.islink(os.path.join(boot, "vmlinuz"))
    r = sysroot.run("activate")
    assert r.returncode != sl.EXIT_OK, r.describe()
    assert sysroot.pointer()["ABDEPLOY_PRIMARY"] == booted


def test_activate_refuses_a_slot_whose_kernel_became_a_link(sysroot, medium):
    """A staged slot whose installed kernel is not a regular file (left by
    an older abdeploy, or changed since) is not activated."""
    repo, _ = medium
    booted, _ = _running_v1(sysroot, repo)
    target = sl.other(booted)
    sysroot.ok("stage", "--from=" + repo, "os/v2")
    kernel = os.path.join(sysroot.boot_dir(target), "vmlinuz")
    os.unlink(kernel)
    os.symlink("/etc/passwd", kernel)
    st = sysroot.status()
    r = sysroot.run("activate")
    assert r.returncode == sl.EXIT_ERROR, r.describe()
    assert "Slot %s cannot boot" % target in r.stderr, r.describe()
    assert "vmlinuz is a symbolic link" in r.stderr, r.describe()
    assert sysroot.status() == st
    assert sysroot.pointer()["ABDEPLOY_PRIMARY"] == booted
