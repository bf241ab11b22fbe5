"""Image packs (issue 18, goal 1): `abdeploy publish deltas` writes the
newest release's commit as zstd pax tars under abdeploy/packs/COMMIT/ and
lists them in the release's "packs" member (abdeploy-manifest(5)).

The packs are read with abpack-list (tests/helpers/abpack-list.c,
libarchive): Debian 12's python has no zstd module.  The objects are
checked against the ostree CLI and the archive repo's objects directory.
"""

import hashlib
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "lib"))

from abtest import run  # noqa: E402
from test_publish import V1_FILES, V2_FILES, keys, pub  # noqa: E402,F401  (fixtures)
from test_issue17 import age, has_commit  # noqa: E402

ABPACK_LIST = os.environ.get("ABPACK_LIST", "abpack-list")
ZSTD_MAGIC = bytes([0x28, 0xB5, 0x2F, 0xFD])
OBJECT_NAME = re.compile(r"objects/([0-9a-f]{2})/([0-9a-f]{62})\.(file|commit|commitmeta|"
                         r"dirtree|dirmeta)")


def special_tree(pub, name):
    """V1_FILES plus a setuid file, a symlink, a file with the xattr
    user.test, an empty file, a file of uid:gid 1000:1000 and enough data
    for two packs to hold content."""
    files = dict(V1_FILES, **{
        "usr/bin/suid": ("#!/bin/sh\n", 0o4755),
        "usr/bin/link": ("link", "../lib/data"),
        "usr/lib/empty": "",
        "usr/lib/owned": "mine\n",
        "usr/lib/tagged": "tagged\n",
        "usr/share/random": os.urandom(400000),
        "usr/share/text": "".join("line %d\n" % i for i in range(40000)),
    })
    tree = pub.tree(name, files)
    os.setxattr(os.path.join(tree, "usr/lib/tagged"), "user.test", b"hello")
    os.chown(os.path.join(tree, "usr/lib/owned"), 1000, 1000)
    return tree


def pack_entries(path):
    """abpack-list's lines of the pack at PATH as dicts, in archive order."""
    out = run([ABPACK_LIST, path], dict(os.environ)).stdout.decode()
    entries = []
    for line in out.splitlines():
        name, typ, uid, gid, mode, size, sha, xattrs, target = line.split("\t")
        entries.append({"name": name, "type": typ, "uid": int(uid), "gid": int(gid),
                        "mode": int(mode, 8), "size": int(size), "sha256": sha,
                        "xattrs": {} if xattrs == "-" else dict(
                            (kv.split("=")[0], bytes.fromhex(kv.split("=")[1]))
                            for kv in xattrs.split(";")),
                        "target": None if target == "-" else bytes.fromhex(target).decode()})
    return entries


def repo_objects(repo):
    """Every object of an archive repo: {"XX/rest.EXT"} with .filez as .file."""
    out = set()
    top = os.path.join(repo, "objects")
    for xx in os.listdir(top):
        for n in os.listdir(os.path.join(top, xx)):
            out.add("objects/%s/%s" % (xx, n[:-1] if n.endswith(".filez") else n))
    return out


def ls_files(pub, commit):
    """The content objects of COMMIT by checksum, from `ostree ls -R -C`:
    {checksum: (mode with type, uid, gid, size, path, target)}."""
    out = {}
    for line in pub.ostree("ls", "-R", "-C", commit).splitlines():
        f = line.split()
        if f[0][0] not in "-l":
            continue
        mode = int(f[0][1:], 8) | (0o100000 if f[0][0] == "-" else 0o120000)
        target = line.split(" -> ", 1)[1] if f[0][0] == "l" else None
        out[f[4]] = (mode, int(f[1]), int(f[2]), int(f[3]), f[5], target)
    return out


def listed_packs(pub, channel, version):
    return pub.release(pub.manifest(channel), version).get("packs")


def check_listing(pub, commit, packs):
    """The listing's paths, sizes and SHA-256 are those of the files."""
    assert 1 <= len(packs["files"]) <= 64, packs
    assert packs["size"] == sum(f["size"] for f in packs["files"]), packs
    for n, f in enumerate(packs["files"]):
        assert f["path"] == "abdeploy/packs/%s/%d.tar.zst" % (commit, n), f
        with open(os.path.join(pub.repo, f["path"]), "rb") as fh:
            blob = fh.read()
        assert len(blob) == f["size"] and hashlib.sha256(blob).hexdigest() == f["sha256"], f
        assert blob[:4] == ZSTD_MAGIC, (f["path"], blob[:4].hex())
    d = os.path.join(pub.repo, "abdeploy", "packs", commit)
    assert sorted(os.listdir(d)) == sorted("%d.tar.zst" % n for n in range(len(packs["files"])))


@pytest.fixture
def packed(pub):
    """One release of special_tree in channel "c", with its deltas and packs."""
    pub.v1 = pub.commit("1.0", pub.tree("v1", V1_FILES))
    pub.v2 = pub.commit("2.0", special_tree(pub, "v2"), 0, "--allow-privileged")
    pub.signed("release", "--channel=c", "--version=2.0")
    out = pub.signed("deltas", "--channel=c").stdout.decode()
    assert "Packs of " + pub.v2 + ": 2 file(s)" in out, out
    pub.packs = listed_packs(pub, "c", "2.0")
    return pub


def test_packs_are_listed_with_their_sizes_and_sha256(packed):
    pub = packed
    assert pub.packs is not None
    check_listing(pub, pub.v2, pub.packs)
    # two packs: the image is far below 32 MiB, and both cores of a device extract
    assert len(pub.packs["files"]) == 2
    assert pub.keys.gpg_verify(pub.manifest_path("c") + ".sig",
                               pub.manifest_path("c")).returncode == 0


def test_packs_hold_every_object_of_the_commit_once(packed):
    pub = packed
    entries = [e for f in pub.packs["files"] for e in pack_entries(os.path.join(pub.repo, f["path"]))]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), "an object is in two packs"
    assert all(OBJECT_NAME.fullmatch(n) for n in names), names
    assert all(e["type"] in ("file", "symlink") for e in entries), entries
    # the repo holds v1's objects too: every object of v2 (ls + show) is there, no other
    expected = {"objects/%s/%s.commit" % (pub.v2[:2], pub.v2[2:]),
                "objects/%s/%s.commitmeta" % (pub.v2[:2], pub.v2[2:])}
    for line in pub.ostree("ls", "-R", "-C", pub.v2).splitlines():
        f = line.split()
        for csum, ext in ([(f[4], "dirtree"), (f[5], "dirmeta")] if f[0][0] == "d"
                          else [(f[4], "file")]):
            expected.add("objects/%s/%s.%s" % (csum[:2], csum[2:], ext))
    assert set(names) == expected, set(names) ^ expected
    assert expected <= repo_objects(pub.repo)
    # "unpacked": the sum of the entries' content bytes (a symlink: its target's length)
    assert pub.packs["unpacked"] == sum(len(e["target"]) if e["type"] == "symlink" else e["size"]
                                        for e in entries)


def test_metadata_objects_are_stored_bytes(packed):
    """commit, commitmeta, dirtree, dirmeta: 0:0, 0644, the bytes of the
    repo's object file (the metadata objects hash to their names)."""
    pub = packed
    first = pack_entries(os.path.join(pub.repo, pub.packs["files"][0]["path"]))
    exts = [e["name"].rsplit(".", 1)[1] for e in first]
    # pack 0 starts with the commit and its signature, then the dirtrees and dirmetas
    assert exts[:2] == ["commit", "commitmeta"], exts
    n_meta = len([x for x in exts if x in ("dirtree", "dirmeta")])
    assert exts[2:2 + n_meta] == sorted(exts[2:2 + n_meta], key=["dirtree", "dirmeta"].index)
    assert set(exts[2:2 + n_meta]) == {"dirtree", "dirmeta"} and "file" not in exts[:2 + n_meta]
    for e in first[:2 + n_meta]:
        assert (e["type"], e["uid"], e["gid"], e["mode"]) == ("file", 0, 0, 0o100644), e
        with open(os.path.join(pub.repo, e["name"]), "rb") as fh:
            blob = fh.read()
        assert (e["size"], e["sha256"]) == (len(blob), hashlib.sha256(blob).hexdigest()), e
        if not e["name"].endswith(".commitmeta"):
            m = OBJECT_NAME.fullmatch(e["name"])
            assert e["sha256"] == m.group(1) + m.group(2), e
    others = [e for f in pub.packs["files"][1:] for e in pack_entries(os.path.join(pub.repo, f["path"]))]
    assert all(e["name"].endswith(".file") for e in first[2 + n_meta:] + others)


def test_content_objects_keep_owner_mode_xattrs_and_content(packed):
    pub = packed
    tree = os.path.join(pub.dir, "v2")
    files = ls_files(pub, pub.v2)
    seen = {}
    for f in pub.packs["files"]:
        for e in pack_entries(os.path.join(pub.repo, f["path"])):
            m = OBJECT_NAME.fullmatch(e["name"])
            if m.group(3) != "file":
                continue
            mode, uid, gid, size, path, target = files[m.group(1) + m.group(2)]
            assert (e["mode"], e["uid"], e["gid"]) == (mode, uid, gid), (e, path)
            if target is None:
                with open(os.path.join(tree, path.lstrip("/")), "rb") as fh:
                    blob = fh.read()
                assert e["type"] == "file" and e["size"] == size == len(blob), (e, path)
                assert e["sha256"] == hashlib.sha256(blob).hexdigest(), (e, path)
            else:
                assert e["type"] == "symlink" and e["target"] == target, (e, path)
            seen[path] = e
    assert set(seen) == {p for (_, _, _, _, p, _) in files.values()}
    assert seen["/usr/bin/suid"]["mode"] == 0o104755, seen["/usr/bin/suid"]
    assert seen["/usr/bin/link"]["target"] == "../lib/data"
    assert seen["/usr/lib/empty"]["size"] == 0 and seen["/usr/lib/empty"]["type"] == "file"
    assert seen["/usr/lib/tagged"]["xattrs"] == {"user.test": b"hello"}, seen["/usr/lib/tagged"]
    assert seen["/usr/lib/data"]["xattrs"] == {}


def test_packs_are_balanced_largest_first(packed):
    """Content objects go largest first to the pack with the fewest bytes:
    the text (428 890 bytes) to pack 1 (pack 0 holds the metadata), the
    random data (400 000) then to pack 0; the packs end up within the
    largest object of each other."""
    pub = packed
    per_pack = [pack_entries(os.path.join(pub.repo, f["path"])) for f in pub.packs["files"]]
    sizes = [sum(len(e["target"]) if e["type"] == "symlink" else e["size"] for e in p)
             for p in per_pack]
    where = {e["size"]: n for n, p in enumerate(per_pack) for e in p}
    assert where[428890] == 1 and where[400000] == 0, where
    assert sum(sizes) == pub.packs["unpacked"]
    assert abs(sizes[0] - sizes[1]) <= 428890, sizes


def test_packs_differ_from_the_full_delta(packed):
    """The packs are zstd (magic 28 b5 2f fd), not libostree's lzma delta."""
    pub = packed
    fd = pub.release(pub.manifest("c"), "2.0")["full_delta"]
    delta_blobs = set()
    for f in fd["files"]:
        with open(os.path.join(pub.repo, f["path"]), "rb") as fh:
            delta_blobs.add(fh.read())
    for f in pub.packs["files"]:
        with open(os.path.join(pub.repo, f["path"]), "rb") as fh:
            blob = fh.read()
        assert blob[:4] == ZSTD_MAGIC and blob not in delta_blobs
        assert not f["path"].startswith("deltas/")


def test_no_packs_and_a_rerun_keeps_them(pub):
    pub.v1 = pub.commit("1.0", special_tree(pub, "v1"), 0, "--allow-privileged")
    pub.signed("release", "--channel=c", "--version=1.0")
    pub.signed("deltas", "--channel=c", "--no-packs")
    assert listed_packs(pub, "c", "1.0") is None
    assert not os.path.exists(os.path.join(pub.repo, "abdeploy", "packs"))
    pub.signed("deltas", "--channel=c", "--no-full-delta")
    packs = listed_packs(pub, "c", "1.0")
    check_listing(pub, pub.v1, packs)
    stats = [os.stat(os.path.join(pub.repo, f["path"])) for f in packs["files"]]
    # again: the packs in place are kept, not rewritten
    pub.signed("deltas", "--channel=c")
    assert listed_packs(pub, "c", "1.0") == packs
    again = [os.stat(os.path.join(pub.repo, f["path"])) for f in packs["files"]]
    assert [(s.st_ino, s.st_mtime_ns) for s in stats] == [(s.st_ino, s.st_mtime_ns) for s in again]
    # a pack that no longer matches its listing is written again
    with open(os.path.join(pub.repo, packs["files"][1]["path"]), "ab") as fh:
        fh.write(b"x")
    pub.signed("deltas", "--channel=c")
    assert listed_packs(pub, "c", "1.0") == packs
    check_listing(pub, pub.v1, packs)
    # --no-packs keeps the listing of a release that has them
    pub.signed("deltas", "--channel=c", "--no-packs")
    assert listed_packs(pub, "c", "1.0") == packs


def test_prune_removes_the_packs_of_pruned_releases(pub):
    pub.c = {}
    for v, name in (("1.0", "v1"), ("2.0", "v2")):
        files = dict(V2_FILES if v == "2.0" else V1_FILES, **{"usr/lib/v": v})
        pub.c[v] = pub.commit(v, pub.tree(name, files))
        pub.signed("release", "--channel=misc", "--version=" + v)
        pub.signed("deltas", "--channel=misc")
    top = os.path.join(pub.repo, "abdeploy", "packs")
    assert sorted(os.listdir(top)) == sorted(pub.c.values())
    age(pub, "misc", {"1.0": 40, "2.0": 40})
    out = pub.signed("prune", "--channel=misc", "--keep-days=5", "--keep-last=1",
                     "--dry-run").stdout.decode()
    assert "Would delete the image packs of " + pub.c["1.0"] in out, out
    assert sorted(os.listdir(top)) == sorted(pub.c.values())
    out = pub.signed("prune", "--channel=misc", "--keep-days=5", "--keep-last=1").stdout.decode()
    assert "dropped 1.0" in out and "Deleted the image packs of " + pub.c["1.0"] in out, out
    assert os.listdir(top) == [pub.c["2.0"]]
    assert not has_commit(pub, pub.c["1.0"])
    check_listing(pub, pub.c["2.0"], listed_packs(pub, "misc", "2.0"))
    run(["ostree", "--repo=" + pub.repo, "fsck"], pub.env)
