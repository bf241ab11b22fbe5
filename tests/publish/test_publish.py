"""Publisher scenarios: `abdeploy publish ...` against real repos, real GPG
keys and the ostree and gpg command-line tools as independent checkers.

Standard library + pytest only.  ABDEPLOY_BIN names the binary under test.
"""

import base64
import datetime
import hashlib
import json
import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "lib"))

import abtest as at  # noqa: E402
import sizeindex  # noqa: E402
from abtest import EXIT_ERROR, EXIT_OK, EXIT_USAGE, run  # noqa: E402

ABDEPLOY = os.environ.get("ABDEPLOY_BIN", "abdeploy")
MiB = 1024 * 1024


class Keys(at.GpgHome):
    """A GnuPG home with the publisher's key and an intruder's key, and a
    verifier home that trusts only the publisher's public key."""

    def __init__(self, root):
        self.root = root
        self.home = os.path.join(root, "gnupg")
        super().__init__(self.home, home=root)
        self.publisher = self.generate("publisher", "publisher@example.org")
        self.intruder = self.generate("intruder", "intruder@example.org")
        self.keyring_dir = os.path.join(root, "keyring")
        os.makedirs(self.keyring_dir)
        pub = self.export(self.publisher, os.path.join(self.keyring_dir, "publisher.gpg"))
        self._verifier = at.GpgHome(os.path.join(root, "verifier"), home=root)
        self._verifier.import_keys(pub)
        self.verifier = self._verifier.homedir

    def gpg_verify(self, sig, data, homedir=None):
        return run(["gpg", "--batch", "--homedir", homedir or self.verifier, "--verify", sig, data],
                   self.env, check=False)

    def close(self):
        super().close()
        self._verifier.close()


@pytest.fixture(scope="module")
def keys():
    root = tempfile.mkdtemp(prefix="abdeploy-publish-")
    k = Keys(root)
    yield k
    k.close()
    at.rmtree(root)


class Publisher:
    """One publisher repo in a fresh directory."""

    def __init__(self, keys, workdir):
        self.keys = keys
        self.dir = workdir
        self.repo = os.path.join(workdir, "repo")
        self.env = at.clean_env(home=keys.root)

    def ab(self, *args, rc=EXIT_OK):
        p = run([ABDEPLOY, "publish"] + list(args), self.env, check=False)
        assert p.returncode == rc, "abdeploy publish %s: exit %d, wanted %d\n%s\n%s" % (
            " ".join(args), p.returncode, rc, p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace"))
        return p

    def signed(self, *args, rc=EXIT_OK, key=None):
        return self.ab(*args, "--repo=" + self.repo, "--gpg-sign=" + (key or self.keys.publisher),
                       "--gpg-homedir=" + self.keys.home, rc=rc)

    def tree(self, name, files):
        return at.write_tree(os.path.join(self.dir, name), files)

    def commit(self, version, tree, rc=EXIT_OK, *extra):
        p = self.signed("commit", "--tree=" + tree, "--version=" + version, *extra, rc=rc)
        return p.stdout.decode().strip()

    def manifest_path(self, channel):
        return os.path.join(self.repo, "abdeploy", "channels", channel + ".json")

    def manifest(self, channel):
        with open(self.manifest_path(channel)) as f:
            return json.load(f)

    def release(self, m, version):
        return [r for r in m["releases"] if r["version"] == version][0]

    def ostree(self, *args):
        return run(["ostree", "--repo=" + self.repo] + list(args), self.env).stdout.decode()


@pytest.fixture
def pub(keys, tmp_path):
    return Publisher(keys, str(tmp_path))


# An image as devices read it (issue 16): the OS in usr/lib/os-release, the
# kernel in usr/lib/modules/KVER/vmlinuz.
V1_FILES = {"usr/etc/os-release": "VERSION=1\n", "usr/bin/tool": "#!/bin/sh\necho 1\n",
            "usr/lib/data": "x" * 5000 + "\n", "usr/lib/os-release": "ID=testos\n",
            "usr/lib/modules/1.0/vmlinuz": "kernel\n"}
V2_FILES = dict(V1_FILES, **{"usr/etc/os-release": "VERSION=2\n", "usr/lib/new": "new\n"})


@pytest.fixture
def two_versions(pub):
    pub.v1 = pub.commit("1.0", pub.tree("v1", V1_FILES))
    pub.v2 = pub.commit("2.0", pub.tree("v2", V2_FILES))
    return pub


def snapshot(repo):
    """Every file of the repo but scratch space and the lock, with content hashes."""
    out = {}
    for dirpath, _, files in os.walk(repo):
        rel_dir = os.path.relpath(dirpath, repo)
        if rel_dir == "tmp" or rel_dir.startswith("tmp" + os.sep):
            continue
        for f in files:
            rel = os.path.normpath(os.path.join(rel_dir, f))
            if rel == os.path.join("abdeploy", "publish.lock"):
                continue
            out[rel] = at.sha256_file(os.path.join(dirpath, f))
    return out


def parse_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------


def test_commit_creates_archive_repo_with_metadata(pub):
    tree = pub.tree("v1", V1_FILES)
    os.chmod(os.path.join(tree, "usr/bin/tool"), 0o4755)
    commit = pub.commit("1.0", tree, EXIT_OK, "--source-revision=abc123", "--branch=os/stable")
    assert len(commit) == 64 and all(c in "0123456789abcdef" for c in commit)
    with open(os.path.join(pub.repo, "config")) as f:
        assert "mode=archive" in f.read()
    assert pub.ostree("rev-parse", "abdeploy/release/1.0").strip() == commit
    assert pub.ostree("rev-parse", "os/stable").strip() == commit
    assert pub.ostree("show", commit, "--print-metadata-key=version").strip() == "'1.0'"
    assert pub.ostree("show", commit, "--print-metadata-key=source-revision").strip() == "'abc123'"
    build_time = pub.ostree("show", commit, "--print-metadata-key=build-time").strip().strip("'")
    parse_time(build_time)
    # Owned by root whoever built the tree; modes (setuid too) kept.
    listing = pub.ostree("ls", commit, "/usr/bin/tool").split()
    assert listing[0] == "-04755" and listing[1:3] == ["0", "0"], listing
    # Signed, and the signature checks out with the publisher's public key.
    shown = pub.ostree("show", "--gpg-homedir=" + pub.keys.keyring_dir, commit)
    assert shown.count("Signature made") == 1 and "Good signature" in shown, shown
    assert os.path.exists(os.path.join(pub.repo, "summary"))


def test_same_tree_again_is_a_noop(pub):
    tree = pub.tree("v1", V1_FILES)
    first = pub.commit("1.0", tree)
    before = snapshot(pub.repo)
    p = pub.signed("commit", "--tree=" + tree, "--version=1.0")
    assert p.stdout.decode().strip() == first
    assert b"already published" in p.stderr
    # Not even a second signature.
    assert pub.ostree("show", first).count("Signature made") == 1
    assert {k: v for k, v in snapshot(pub.repo).items() if not k.startswith("summary")} == \
        {k: v for k, v in before.items() if not k.startswith("summary")}


def test_different_tree_under_published_version_is_refused(two_versions):
    pub = two_versions
    pub.signed("release", "--channel=candidate", "--version=1.0")
    before = snapshot(pub.repo)
    changed = pub.tree("v1-changed", dict(V1_FILES, **{"usr/etc/os-release": "VERSION=evil\n"}))
    p = pub.commit("1.0", changed, EXIT_ERROR)
    err = pub.ab("commit", "--repo=" + pub.repo, "--tree=" + changed, "--version=1.0",
                 rc=EXIT_ERROR).stderr.decode()
    assert "version 1.0 is already published as commit " + pub.v1 in err, err
    assert "bump the version" in err
    assert p == ""
    assert snapshot(pub.repo) == before
    assert pub.ostree("rev-parse", "abdeploy/release/1.0").strip() == pub.v1


def test_manifest_alone_also_pins_the_version(two_versions):
    """Even without its ref, a version listed in a channel keeps its commit."""
    pub = two_versions
    pub.signed("release", "--channel=candidate", "--version=1.0")
    pub.ostree("refs", "--delete", "abdeploy/release/1.0")
    changed = pub.tree("v1-changed", dict(V1_FILES, **{"usr/lib/more": "more\n"}))
    err = pub.signed("commit", "--tree=" + changed, "--version=1.0",
                     rc=EXIT_ERROR).stderr.decode()
    assert "already published as commit " + pub.v1 in err and "channel candidate" in err
    # The same tree is accepted again and gets its ref back.
    assert pub.commit("1.0", pub.tree("v1", V1_FILES)) == pub.v1
    assert pub.ostree("rev-parse", "abdeploy/release/1.0").strip() == pub.v1


def test_release_and_promote_keep_the_digest(two_versions, keys):
    pub = two_versions
    out = pub.signed("release", "--channel=candidate", "--version=1.0").stdout.decode()
    assert pub.v1 in out and "serial 1" in out
    pub.signed("promote", "--from=candidate", "--to=stable", "--version=1.0")
    cand, stable = pub.manifest("candidate"), pub.manifest("stable")
    assert pub.release(cand, "1.0")["commit"] == pub.v1
    assert pub.release(stable, "1.0")["commit"] == pub.v1
    assert stable["channel"] == "stable" and stable["format"] == 1 and stable["serial"] == 1
    assert set(stable) == {"format", "protocol", "channel", "serial", "issued_at", "expires_at",
                           "releases"}
    assert set(pub.release(stable, "1.0")) == {"version", "commit", "published_at", "deprecated",
                                               "rollout", "deltas", "size_index"}
    # Plain gpg accepts the signature with the publisher's key ...
    sig, data = pub.manifest_path("stable") + ".sig", pub.manifest_path("stable")
    p = keys.gpg_verify(sig, data)
    assert p.returncode == 0, p.stderr.decode()
    with open(sig, "rb") as f:
        assert not f.read(64).startswith(b"-----BEGIN"), "signature must be binary"
    # ... and refuses it once a byte of the manifest changes.
    with open(data) as f:
        text = f.read()
    with open(data, "w") as f:
        f.write(text.replace(pub.v1, pub.v2))
    assert keys.gpg_verify(sig, data).returncode != 0


def test_promote_refusals(two_versions):
    pub = two_versions
    pub.signed("release", "--channel=candidate", "--version=1.0")
    err = pub.signed("promote", "--from=candidate", "--to=stable", "--version=2.0",
                     rc=EXIT_ERROR).stderr.decode()
    assert "2.0 is not released in channel candidate" in err
    err = pub.signed("promote", "--from=nightly", "--to=stable", "--version=1.0",
                     rc=EXIT_ERROR).stderr.decode()
    assert "nightly does not exist" in err
    pub.signed("promote", "--from=candidate", "--to=candidate", "--version=1.0", rc=EXIT_USAGE)
    # A channel that lists 1.0 with another commit (written by hand here).
    weird = pub.manifest("candidate")
    weird["channel"] = "weird"
    weird["releases"][0]["commit"] = pub.v2
    del weird["releases"][0]["size_index"]  # it names the index of 1.0's own commit
    with open(pub.manifest_path("weird"), "w") as f:
        json.dump(weird, f)
    before = snapshot(pub.repo)
    err = pub.signed("promote", "--from=candidate", "--to=stable", "--version=1.0",
                     rc=EXIT_ERROR).stderr.decode()
    assert "already published as commit" in err and "bump the version" in err
    pub.signed("release", "--channel=other", "--version=1.0", rc=EXIT_ERROR)
    assert snapshot(pub.repo) == before


def test_release_again_sets_rollout_only(two_versions):
    pub = two_versions
    pub.signed("release", "--channel=candidate", "--version=1.0", "--rollout=10")
    m1 = pub.manifest("candidate")
    r1 = pub.release(m1, "1.0")
    assert r1["rollout"] == 10 and r1["deprecated"] is None and r1["deltas"] == []
    pub.signed("release", "--channel=candidate", "--version=1.0", "--rollout=50")
    m2 = pub.manifest("candidate")
    assert m2["serial"] == m1["serial"] + 1
    assert len(m2["releases"]) == 1
    r2 = pub.release(m2, "1.0")
    assert r2["rollout"] == 50 and r2["commit"] == r1["commit"]
    assert r2["published_at"] == r1["published_at"]
    pub.signed("release", "--channel=candidate", "--version=1.0", "--rollout=0", rc=EXIT_USAGE)
    pub.signed("release", "--channel=candidate", "--version=1.0", "--rollout=101", rc=EXIT_USAGE)


def test_release_needs_a_committed_version(two_versions):
    pub = two_versions
    err = pub.signed("release", "--channel=candidate", "--version=3.0",
                     rc=EXIT_ERROR).stderr.decode()
    assert "publish commit --version=3.0" in err
    assert not os.path.exists(pub.manifest_path("candidate"))


def test_signing_is_mandatory(two_versions):
    pub = two_versions
    for args in (["release", "--channel=candidate", "--version=1.0"],
                 ["deltas", "--channel=candidate"],
                 ["deprecate", "--channel=candidate", "--version=1.0", "--reason=x"],
                 ["promote", "--from=candidate", "--to=stable", "--version=1.0"],
                 ["refresh", "--channel=candidate"]):
        err = pub.ab(*args, "--repo=" + pub.repo, rc=EXIT_USAGE).stderr.decode()
        assert "--gpg-sign=KEYID" in err, err
    assert not os.path.exists(os.path.join(pub.repo, "abdeploy", "channels", "candidate.json"))
    # A key that cannot sign writes nothing either.
    pub.ab("release", "--repo=" + pub.repo, "--channel=candidate", "--version=1.0",
           "--gpg-sign=0000000000000000000000000000000000000000",
           "--gpg-homedir=" + pub.keys.home, rc=EXIT_ERROR)
    assert not os.path.exists(pub.manifest_path("candidate"))


def test_deprecate(two_versions):
    pub = two_versions
    pub.signed("release", "--channel=stable", "--version=1.0")
    pub.signed("release", "--channel=stable", "--version=2.0")
    serial = pub.manifest("stable")["serial"]
    pub.signed("deprecate", "--channel=stable", "--version=1.0", "--reason=CVE-2026-0001: update")
    m = pub.manifest("stable")
    assert m["serial"] == serial + 1
    assert pub.release(m, "1.0")["deprecated"] == "CVE-2026-0001: update"
    assert pub.release(m, "1.0")["commit"] == pub.v1
    assert pub.release(m, "2.0")["deprecated"] is None
    assert pub.keys.gpg_verify(pub.manifest_path("stable") + ".sig",
                               pub.manifest_path("stable")).returncode == 0
    pub.signed("deprecate", "--channel=stable", "--version=9.9", "--reason=x", rc=EXIT_ERROR)
    pub.signed("deprecate", "--channel=stable", "--version=1.0", rc=EXIT_USAGE)
    # A deprecated release is not promoted.
    err = pub.signed("promote", "--from=stable", "--to=lts", "--version=1.0",
                     rc=EXIT_ERROR).stderr.decode()
    assert "deprecated" in err


def test_deltas(two_versions):
    pub = two_versions
    pub.signed("release", "--channel=candidate", "--version=1.0")
    pub.signed("release", "--channel=candidate", "--version=2.0")
    serial = pub.manifest("candidate")["serial"]
    pub.signed("deltas", "--channel=candidate")
    m = pub.manifest("candidate")
    assert m["serial"] == serial + 1
    assert pub.release(m, "1.0")["deltas"] == []
    deltas = pub.release(m, "2.0")["deltas"]
    assert len(deltas) == 1
    d = deltas[0]
    assert d["from"] == pub.v1
    assert d["files"][0]["path"].endswith("/superblock")
    assert d["size"] == sum(f["size"] for f in d["files"])
    for f in d["files"]:
        assert f["path"].startswith("deltas/")
        with open(os.path.join(pub.repo, f["path"]), "rb") as fh:
            blob = fh.read()
        assert len(blob) == f["size"]
        assert hashlib.sha256(blob).hexdigest() == f["sha256"]
    assert "%s-%s" % (pub.v1, pub.v2) in pub.ostree("static-delta", "list")
    assert pub.keys.gpg_verify(pub.manifest_path("candidate") + ".sig",
                               pub.manifest_path("candidate")).returncode == 0

    # The delta alone turns v1 into v2 in a repo that has only v1.
    client = os.path.join(pub.dir, "client")
    run(["ostree", "init", "--mode=bare-user", "--repo=" + client], pub.env)
    run(["ostree", "pull-local", "--repo=" + client, pub.repo, pub.v1], pub.env)
    superblock = os.path.join(pub.repo, d["files"][0]["path"])
    run(["ostree", "static-delta", "apply-offline", "--repo=" + client, superblock], pub.env)
    run(["ostree", "fsck", "--repo=" + client], pub.env)
    shown = run(["ostree", "show", "--repo=" + client, pub.v2], pub.env).stdout.decode()
    assert "Version: 2.0" in shown

    # Running it again lists the same files and still bumps the serial.
    pub.signed("deltas", "--channel=candidate", "--from-last=3")
    m2 = pub.manifest("candidate")
    assert m2["serial"] == m["serial"] + 1
    assert pub.release(m2, "2.0")["deltas"] == deltas


def patched_library(seed=1):
    """1 MiB, half random and half a repeated block (compresses about 2:1,
    like a shared library), and the same with 1 % of its bytes changed in
    16-byte patches spread over the file."""
    import random
    rng = random.Random(seed)
    block, data = rng.randbytes(256), bytearray()
    while len(data) < MiB:
        data += rng.randbytes(256) if rng.random() < 0.5 else block
    old, new = bytes(data[:MiB]), bytearray(data[:MiB])
    for _ in range(MiB // 100 // 16):
        off = rng.randrange(0, MiB - 16)
        new[off:off + 16] = rng.randbytes(16)
    return old, bytes(new)


def delta_of(pub, files_v1, files_v2):
    """Publishes 1.0 and 2.0 on channel c and their delta; returns the
    manifest's delta entry and the size of 2.0's commit object."""
    pub.v1 = pub.commit("1.0", pub.tree("v1", files_v1))
    pub.v2 = pub.commit("2.0", pub.tree("v2", files_v2))
    for v in ("1.0", "2.0"):
        pub.signed("release", "--channel=c", "--version=" + v)
    pub.signed("deltas", "--channel=c", "--no-full-delta")
    d = pub.release(pub.manifest("c"), "2.0")["deltas"][0]
    commit = os.path.join(pub.repo, "objects", pub.v2[:2], pub.v2[2:] + ".commit")
    return d, os.path.getsize(commit)


def test_delta_bsdiffs_a_patched_library(pub):
    """A 1 MiB library with 1 % of its bytes patched travels as a bspatch,
    not as the file: the delta's part is a small fraction of it. The
    superblock carries 2.0's commit object as it is (libostree's format)."""
    old, new = patched_library()
    d, commit_size = delta_of(pub, dict(V1_FILES, **{"usr/lib/libx.so.1": old}),
                              dict(V1_FILES, **{"usr/lib/libx.so.1": new}))
    superblock = d["files"][0]
    parts = d["size"] - superblock["size"]
    assert parts < 128 * 1024, d
    assert superblock["size"] >= commit_size, d
    shown = pub.ostree("static-delta", "show", "%s-%s" % (pub.v1, pub.v2))
    assert "bspatch=1" in shown, shown


def test_delta_of_one_changed_file_does_not_grow_with_the_image(pub):
    """Issue 18: 3 000 small files, one of them changed. The size index
    (about 44 bytes per file, 132 kB here) is a file beside the commit, not
    in it, so the superblock, which carries the commit object, stays small.
    What the delta must carry: the commit object, the two directory
    listings on the changed file's path (usr/share with 40 subdirectories,
    p00 with 75 files: about 7 kB together) and the changed file; 32 KiB
    leaves room for libostree's framing, and is a quarter of what the
    in-commit index alone added (the old code gives about 125 kB)."""
    files = {"usr/share/p%02d/f%04d.txt" % (i % 40, i): "file %d\n" % i for i in range(3000)}
    v1 = dict(V1_FILES, **files)
    v2 = dict(v1, **{"usr/share/p00/f0000.txt": "changed\n"})
    d, commit_size = delta_of(pub, v1, v2)
    shown = run(["ostree", "--repo=" + pub.repo, "show", "--print-metadata-key=ostree.sizes",
                 pub.v2], pub.env, check=False)
    assert shown.returncode != 0, "the commit still carries the size index"
    print("delta of one changed file in 3 000: %d bytes (commit object %d bytes)"
          % (d["size"], commit_size))
    assert d["size"] < 32 * 1024, (d["size"], d)


def test_size_index_is_a_file_the_manifest_lists(two_versions):
    """Issue 18: publish commit writes abdeploy/sizes/COMMIT.sizes (every
    object of the commit but itself: checksum, type, archived and unpacked
    size) instead of the in-commit ostree.sizes; publish release and
    promote list it with its size and SHA-256."""
    pub = two_versions
    for commit in (pub.v1, pub.v2):
        shown = run(["ostree", "--repo=" + pub.repo, "show", "--print-metadata-key=ostree.sizes",
                     commit], pub.env, check=False)
        assert shown.returncode != 0, "commit %s carries ostree.sizes" % commit
    entries = sizeindex.read(pub.repo, pub.v2)
    objects = pub.ostree("ls", "-R", "-C", pub.v2).splitlines()
    # one entry per object: every file's content, every dirtree and dirmeta
    listed = {e[0] for e in entries}
    assert len(listed) == len(entries) and {e[1] for e in entries} <= {1, 2, 3}, entries
    tool = [line.split()[4] for line in objects if line.endswith(" /usr/bin/tool")][0]
    [entry] = [e for e in entries if e[0] == tool]
    filez = os.path.join(pub.repo, "objects", tool[:2], tool[2:] + ".filez")
    assert entry[1:] == (1, os.path.getsize(filez), len(V2_FILES["usr/bin/tool"])), entry
    pub.signed("release", "--channel=beta", "--version=2.0")
    rel = pub.release(pub.manifest("beta"), "2.0")
    with open(os.path.join(pub.repo, sizeindex.path(pub.v2)), "rb") as f:
        data = f.read()
    assert rel["size_index"] == {"path": sizeindex.path(pub.v2), "size": len(data),
                                 "sha256": hashlib.sha256(data).hexdigest()}, rel
    pub.signed("promote", "--from=beta", "--to=stable", "--version=2.0")
    assert pub.release(pub.manifest("stable"), "2.0")["size_index"] == rel["size_index"]


def test_release_of_a_commit_without_size_index_lists_none(two_versions):
    """A commit of a publisher before issue 18 has no index file: its
    release has no size_index member (and devices use the commit's own
    ostree.sizes, if any)."""
    pub = two_versions
    os.unlink(os.path.join(pub.repo, sizeindex.path(pub.v1)))
    pub.signed("release", "--channel=old", "--version=1.0")
    assert "size_index" not in pub.release(pub.manifest("old"), "1.0")


def test_deltas_from_last(pub):
    commits = {}
    for i in range(1, 5):
        files = dict(V1_FILES, **{"usr/etc/os-release": "VERSION=%d\n" % i})
        commits[i] = pub.commit("1.%d" % i, pub.tree("t%d" % i, files))
        pub.signed("release", "--channel=dev", "--version=1.%d" % i)
    pub.signed("deltas", "--channel=dev", "--from-last=2")
    newest = pub.release(pub.manifest("dev"), "1.4")
    assert sorted(d["from"] for d in newest["deltas"]) == sorted([commits[3], commits[2]])
    pub.signed("deltas", "--channel=dev", "--from-last=0", rc=EXIT_USAGE)


def test_deltas_full_delta_and_no_full_delta(two_versions):
    """Issue 18: publish deltas also lists the newest release's delta from
    nothing (full_delta, no "from"), which applies to an empty repo;
    --no-full-delta skips it."""
    pub = two_versions
    pub.signed("release", "--channel=bare", "--version=1.0")
    pub.signed("release", "--channel=bare", "--version=2.0")
    pub.signed("deltas", "--channel=bare", "--no-full-delta")
    rel = pub.release(pub.manifest("bare"), "2.0")
    assert "full_delta" not in rel and len(rel["deltas"]) == 1, rel
    assert pub.v2 not in pub.ostree("static-delta", "list").split()
    pub.signed("deltas", "--channel=bare")
    fd = pub.release(pub.manifest("bare"), "2.0")["full_delta"]
    assert "from" not in fd and fd["size"] == sum(f["size"] for f in fd["files"]), fd
    assert fd["files"][0]["path"].endswith("/superblock")
    for f in fd["files"]:
        with open(os.path.join(pub.repo, f["path"]), "rb") as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == f["sha256"]
    assert pub.v2 in pub.ostree("static-delta", "list").split()
    # the full delta alone turns an empty repo into v2
    empty = os.path.join(pub.dir, "empty-repo")
    run(["ostree", "init", "--mode=bare-user", "--repo=" + empty], pub.env)
    superblock = os.path.join(pub.repo, fd["files"][0]["path"])
    run(["ostree", "static-delta", "apply-offline", "--repo=" + empty, superblock], pub.env)
    run(["ostree", "fsck", "--repo=" + empty], pub.env)
    shown = run(["ostree", "show", "--repo=" + empty, pub.v2], pub.env).stdout.decode()
    assert "Version: 2.0" in shown


def test_semver_build_metadata(pub):
    """issue 10: SemVer build metadata is accepted (the ref writes '_' for
    the '+' a ref cannot hold); a channel keeps one release per precedence,
    so a version differing only in build metadata is refused there."""
    c1 = pub.commit("2.0.0+build.1", pub.tree("b1", V1_FILES))
    assert pub.ostree("rev-parse", "abdeploy/release/2.0.0_build.1").strip() == c1
    pub.signed("release", "--channel=s", "--version=2.0.0+build.1")
    assert [r["version"] for r in pub.manifest("s")["releases"]] == ["2.0.0+build.1"]
    pub.commit("2.0.0+build.2", pub.tree("b2", V2_FILES))
    before = snapshot(pub.repo)
    err = pub.signed("release", "--channel=s", "--version=2.0.0+build.2",
                     rc=EXIT_ERROR).stderr.decode()
    assert "2.0.0+build.1" in err and "precedence" in err, err
    assert snapshot(pub.repo) == before
    pub.signed("release", "--channel=t", "--version=2.0.0+build.2")
    # '+' only as SemVer build metadata
    for bad in ("1.0+5", "2.0.0+", "2.0.0+a+b", "2.0.0+a..b"):
        assert b"SemVer" in pub.ab("commit", "--repo=" + pub.repo, "--tree=" + pub.tree("x", V1_FILES),
                                   "--version=" + bad, rc=EXIT_USAGE).stderr
    # a version that is not SemVer cannot take the ref of one with metadata
    pub.commit("3.0.0_1", pub.tree("u", V1_FILES))
    err = pub.ab("commit", "--repo=" + pub.repo, "--tree=" + pub.tree("p", V2_FILES),
                 "--version=3.0.0+1", rc=EXIT_ERROR).stderr.decode()
    assert "3.0.0_1" in err and "share a ref" in err, err


def test_newest_and_deltas_by_semver_precedence(pub):
    """issue 10: 2.0.0 is newer than 2.0.0-rc.2 published after it, and
    rc.2 newer than rc.1: deltas go to 2.0.0, from rc.2 first."""
    commits = {}
    for i, v in enumerate(("2.0.0-rc.1", "2.0.0", "2.0.0-rc.2")):
        files = dict(V1_FILES, **{"usr/etc/os-release": "VERSION=%d\n" % i})
        commits[v] = pub.commit(v, pub.tree("t%d" % i, files))
        pub.signed("release", "--channel=rc", "--version=" + v)
    out = pub.signed("deltas", "--channel=rc", "--from-last=1").stdout.decode()
    m = pub.manifest("rc")
    assert [d["from"] for d in pub.release(m, "2.0.0")["deltas"]] == [commits["2.0.0-rc.2"]], out
    assert pub.release(m, "2.0.0-rc.2")["deltas"] == []


def test_serial_grows_and_expiry(two_versions):
    pub = two_versions
    serials = []
    steps = [["release", "--channel=beta", "--version=1.0"],
             ["release", "--channel=beta", "--version=2.0", "--rollout=20"],
             ["release", "--channel=beta", "--version=2.0", "--rollout=40"],
             ["deltas", "--channel=beta"],
             ["deprecate", "--channel=beta", "--version=1.0", "--reason=old"],
             ["refresh", "--channel=beta", "--expires-days=7"]]
    for step in steps:
        pub.signed(*step)
        serials.append(pub.manifest("beta")["serial"])
    assert serials == list(range(1, len(steps) + 1))
    m = pub.manifest("beta")
    issued, expires = parse_time(m["issued_at"]), parse_time(m["expires_at"])
    assert expires - issued == datetime.timedelta(days=7)
    pub.signed("refresh", "--channel=beta")
    m = pub.manifest("beta")
    assert parse_time(m["expires_at"]) - parse_time(m["issued_at"]) == datetime.timedelta(days=30)
    pub.signed("refresh", "--channel=beta", "--expires-days=0", rc=EXIT_USAGE)


def test_signature_by_another_key_is_not_the_publishers(two_versions, keys):
    pub = two_versions
    # (--trusted-keys: the commits are the publisher's, the intruder signs)
    pub.signed("release", "--channel=candidate", "--version=1.0",
               "--trusted-keys=" + keys.keyring_dir, key=keys.intruder)
    p = keys.gpg_verify(pub.manifest_path("candidate") + ".sig", pub.manifest_path("candidate"))
    assert p.returncode != 0


def test_usage_errors(pub):
    err = pub.ab(rc=EXIT_USAGE).stderr
    assert err.startswith(b"abdeploy: publish needs a SUBCOMMAND"), err
    assert b"Usage: abdeploy publish" in err
    assert b"deltas" in pub.ab("--help").stdout
    pub.ab("frobnicate", rc=EXIT_USAGE)
    pub.ab("commit", "--tree=x", "--version=1", rc=EXIT_USAGE)  # no --repo
    pub.ab("commit", "--repo=" + pub.repo, "--version=1", rc=EXIT_USAGE)  # no --tree
    tree = pub.tree("v1", V1_FILES)
    pub.ab("commit", "--repo=" + pub.repo, "--tree=" + tree, "--version=../x", rc=EXIT_USAGE)
    pub.ab("commit", "--repo=" + pub.repo, "--tree=" + tree, "--version=1", "extra", rc=EXIT_USAGE)
    pub.ab("release", "--repo=" + pub.repo, "--channel=a/b", "--version=1",
           "--gpg-sign=X", rc=EXIT_USAGE)
    # Without --gpg-sign a commit is made, with a warning that devices refuse it.
    p = pub.ab("commit", "--repo=" + pub.repo, "--tree=" + tree, "--version=1")
    assert b"not signed" in p.stderr
    # A bare repo is not a publisher repo.
    bare = os.path.join(pub.dir, "bare")
    run(["ostree", "init", "--mode=bare-user", "--repo=" + bare], pub.env)
    pub.ab("commit", "--repo=" + bare, "--tree=" + tree, "--version=1", rc=EXIT_USAGE)


# ---------------------------------------------------------------------------
# The content gate of publish commit (issue 11)

# A security.capability value (VFS_CAP_REVISION_2) granting cap_net_raw, as
# `setcap cap_net_raw+ep` writes it.
CAP_NET_RAW = bytes([1, 0, 0, 2, 0, 0x20, 0, 0] + [0] * 12)


def privileged_tree(pub, name, uid=1000, gid=1000, mode=0o4755, caps=False):
    """V1_FILES with usr/bin/tool owned by UID:GID, then given MODE (chown
    clears setuid bits and capabilities, so it comes first)."""
    tree = pub.tree(name, V1_FILES)
    tool = os.path.join(tree, "usr/bin/tool")
    os.chown(tool, uid, gid)
    os.chmod(tool, mode)
    if caps:
        os.setxattr(tool, "security.capability", CAP_NET_RAW)
    return tree


def no_release_ref(pub, version):
    refs = run(["ostree", "--repo=" + pub.repo, "refs"], pub.env, check=False).stdout.decode()
    return "abdeploy/release/" + version not in refs.split()


@pytest.mark.parametrize("kind", ["setuid", "setgid", "capabilities"])
def test_commit_refuses_privileges_the_tree_did_not_give_root(pub, kind):
    """A setuid file of uid 1000 became setuid root on every device, silently."""
    args = {"setuid": {}, "setgid": {"uid": 0, "mode": 0o2755},
            "capabilities": {"mode": 0o755, "caps": True}}[kind]
    tree = privileged_tree(pub, "v1", **args)
    err = pub.signed("commit", "--tree=" + tree, "--version=1.0",
                     rc=EXIT_ERROR).stderr.decode()
    assert "Refusing to commit" in err and "/usr/bin/tool" in err, err
    assert "--allow-setuid=PATH" in err and "nothing was committed" in err, err
    assert no_release_ref(pub, "1.0")
    # Allowed by name: committed as root's, and the output lists it.
    p = pub.signed("commit", "--tree=" + tree, "--version=1.0", "--allow-setuid=/usr/bin/tool")
    commit = p.stdout.decode().strip()
    err = p.stderr.decode()
    assert "privileged file /usr/bin/tool" in err and "allowed by option" in err, err
    listing = pub.ostree("ls", "-X", commit, "/usr/bin/tool").split()
    assert listing[1:3] == ["0", "0"], listing
    if kind == "capabilities":
        assert "security.capability" in " ".join(listing), listing


def test_commit_allow_privileged_and_root_owned_files(pub):
    tree = privileged_tree(pub, "v1")
    os.chmod(os.path.join(tree, "usr/lib/data"), 0o4755)  # root's: allowed, listed
    p = pub.signed("commit", "--tree=" + tree, "--version=1.0", "--allow-privileged")
    err = p.stderr.decode()
    assert "privileged file /usr/bin/tool: setuid, owner uid 1000" in err, err
    assert "privileged file /usr/lib/data: setuid, root's in the tree" in err, err
    # Another file than the one allowed by name is still refused.
    tree2 = privileged_tree(pub, "v2")
    err = pub.signed("commit", "--tree=" + tree2, "--version=2.0",
                     "--allow-setuid=/usr/lib/data", rc=EXIT_ERROR).stderr.decode()
    assert "/usr/bin/tool: setuid, owner uid 1000 in the tree, root in the image" in err, err


@pytest.mark.parametrize("name", [b"new\nline", b"tab\there", b"bad-\xff-utf8", b"bell\x07"])
def test_commit_refuses_unsafe_file_names(pub, name):
    """A name with a newline turned the slot-content hook red on devices."""
    tree = pub.tree("v1", V1_FILES)
    with open(os.path.join(tree.encode(), b"usr/lib/" + name), "wb") as f:
        f.write(b"x\n")
    err = pub.signed("commit", "--tree=" + tree, "--version=1.0",
                     rc=EXIT_ERROR).stderr.decode(errors="replace")
    assert "a file name with a control character" in err and "Rename" in err, err
    assert no_release_ref(pub, "1.0")


# ---------------------------------------------------------------------------
# The publisher signs only what it checked (issue 11)

MAX_SERIAL = 2 ** 53 - 1


def write_channel(pub, channel, data, sig):
    """Put DATA and SIG in place of CHANNEL's files, as a hand edit would."""
    with open(pub.manifest_path(channel), "wb") as f:
        f.write(data)
    with open(pub.manifest_path(channel) + ".sig", "wb") as f:
        f.write(sig)


def resign(pub, channel, mutate, key=None):
    """CHANNEL's manifest changed by MUTATE(dict) and signed with KEY (the
    publisher's by default) by plain gpg: a validly signed manifest that
    abdeploy publish did not write."""
    m = pub.manifest(channel)
    mutate(m)
    data = json.dumps(m, indent=2).encode()
    write_channel(pub, channel, data, pub.keys.sign_detached(data, key or pub.keys.publisher))


RESIGNING = [["refresh", "--channel=candidate"],
             ["release", "--channel=candidate", "--version=1.0", "--rollout=50"],
             ["deprecate", "--channel=candidate", "--version=1.0", "--reason=x"],
             ["deltas", "--channel=candidate"],
             ["promote", "--from=candidate", "--to=stable", "--version=1.0"]]


@pytest.fixture
def released(two_versions):
    pub = two_versions
    pub.signed("release", "--channel=candidate", "--version=1.0")
    pub.signed("release", "--channel=candidate", "--version=2.0")
    return pub


@pytest.mark.parametrize("args", RESIGNING, ids=lambda a: a[0])
def test_resigning_refuses_a_hand_edited_manifest(released, args):
    """refresh re-signed a manifest edited by hand: a published digest changed."""
    pub = released
    with open(pub.manifest_path("candidate"), "rb") as f:
        text = f.read()
    with open(pub.manifest_path("candidate"), "wb") as f:
        f.write(text.replace(pub.v1.encode(), pub.v2.encode(), 1))
    before = snapshot(pub.repo)
    err = pub.signed(*args, rc=EXIT_ERROR).stderr.decode()
    assert "Refusing to sign channel candidate" in err, err
    assert "does not verify" in err and "last good copy" in err, err
    assert snapshot(pub.repo) == before


def test_resigning_refuses_a_bad_or_foreign_signature(released, keys):
    pub = released
    sig_path = pub.manifest_path("candidate") + ".sig"
    with open(sig_path, "rb") as f:
        good = f.read()
    bad = bytearray(good)
    bad[-5] ^= 0xFF
    with open(sig_path, "wb") as f:
        f.write(bytes(bad))
    before = snapshot(pub.repo)
    err = pub.signed("refresh", "--channel=candidate", rc=EXIT_ERROR).stderr.decode()
    assert "Refusing to sign channel candidate" in err and "does not verify" in err, err
    assert snapshot(pub.repo) == before
    os.unlink(sig_path)
    err = pub.signed("refresh", "--channel=candidate", rc=EXIT_ERROR).stderr.decode()
    assert "has no signature file" in err, err
    # Signed by another key: refused, unless --trusted-keys names that key
    # (a change of signing key).
    resign(pub, "candidate", lambda m: None, key=keys.intruder)
    err = pub.signed("refresh", "--channel=candidate", rc=EXIT_ERROR).stderr.decode()
    assert "does not verify" in err and "--trusted-keys=DIR" in err, err
    rotation = os.path.join(pub.dir, "old-keys")
    os.makedirs(rotation)
    keys.export(keys.intruder, os.path.join(rotation, "old.gpg"))
    keys.export(keys.publisher, os.path.join(rotation, "new.gpg"))
    pub.signed("refresh", "--channel=candidate", "--trusted-keys=" + rotation)
    assert keys.gpg_verify(sig_path, pub.manifest_path("candidate")).returncode == 0


def test_resigning_checks_releases_against_the_release_refs(released):
    """A validly signed manifest whose digest disagrees with the ref is refused."""
    pub = released

    def swap(m):
        pub.release(m, "1.0")["commit"] = pub.v2
        pub.release(m, "1.0")["size_index"]["path"] = sizeindex.path(pub.v2)
    resign(pub, "candidate", swap)
    before = snapshot(pub.repo)
    err = pub.signed("refresh", "--channel=candidate", rc=EXIT_ERROR).stderr.decode()
    assert "lists version 1.0 as commit %s, but ref abdeploy/release/1.0 is %s" % (
        pub.v2, pub.v1) in err, err
    assert snapshot(pub.repo) == before
    # A release whose ref is gone is refused too.
    def restore(m):
        pub.release(m, "1.0")["commit"] = pub.v1
        pub.release(m, "1.0")["size_index"]["path"] = sizeindex.path(pub.v1)
    resign(pub, "candidate", restore)
    pub.ostree("refs", "--delete", "abdeploy/release/2.0")
    err = pub.signed("refresh", "--channel=candidate", rc=EXIT_ERROR).stderr.decode()
    assert "ref abdeploy/release/2.0 is missing" in err, err


def test_release_refuses_an_unsigned_commit(pub):
    tree = pub.tree("v1", V1_FILES)
    pub.ab("commit", "--repo=" + pub.repo, "--tree=" + tree, "--version=1.0")
    err = pub.signed("release", "--channel=candidate", "--version=1.0",
                     rc=EXIT_ERROR).stderr.decode()
    assert "is not signed by the publisher's key" in err and "--gpg-sign" in err, err
    assert not os.path.exists(pub.manifest_path("candidate"))
    pub.commit("1.0", tree)  # signs the published commit
    pub.signed("release", "--channel=candidate", "--version=1.0")


def delta_dir(frm, to):
    """libostree's deltas/ directory of FROM -> TO (its modified base64)."""
    def b64(c):
        return base64.b64encode(bytes.fromhex(c)).decode().rstrip("=").replace("/", "_")
    f = b64(frm)
    return os.path.join("deltas", f[:2], f[2:] + "-" + b64(to))


@pytest.mark.parametrize("how", ["other-pair", "altered-part", "fallbacks"])
def test_deltas_refuses_a_delta_it_did_not_make(pub, how):
    """publish deltas listed (and signed) a delta directory it had not made."""
    commits = {}
    for v in ("1.0", "2.0", "3.0"):
        files = dict(V1_FILES, **{"usr/etc/os-release": "VERSION=%s\n" % v,
                                  "usr/lib/big-" + v: os.urandom(1536 * 1024)})
        commits[v] = pub.commit(v, pub.tree("t" + v, files))
        pub.signed("release", "--channel=dev", "--version=" + v)
    target = os.path.join(pub.repo, delta_dir(commits["2.0"], commits["3.0"]))
    if how == "other-pair":
        pub.ostree("static-delta", "generate", "--min-fallback-size=0",
                   "--from=" + commits["1.0"], "--to=" + commits["3.0"])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(os.path.join(pub.repo, delta_dir(commits["1.0"], commits["3.0"])), target)
        why = "its superblock names another pair of commits"
    elif how == "altered-part":
        pub.signed("deltas", "--channel=dev")
        with open(os.path.join(target, "0"), "ab") as f:
            f.write(b"x")
        why = "part 0 does not have the SHA-256 its superblock records"
    else:
        pub.ostree("static-delta", "generate", "--min-fallback-size=1",
                   "--from=" + commits["2.0"], "--to=" + commits["3.0"])
        why = "it has fallback objects"
    before = pub.manifest("dev")
    err = pub.signed("deltas", "--channel=dev", rc=EXIT_ERROR).stderr.decode()
    assert "Refusing to list the delta in" in err and why in err, err
    assert "rm -r" in err, err
    assert pub.manifest("dev") == before
    # Once it is removed, publish deltas makes its own.
    at.rmtree(target)
    pub.signed("deltas", "--channel=dev")
    assert [d["from"] for d in pub.release(pub.manifest("dev"), "3.0")["deltas"]] == \
        [commits["2.0"]]


@pytest.mark.parametrize("serial,rc", [(MAX_SERIAL - 1, EXIT_OK), (MAX_SERIAL, EXIT_ERROR)])
def test_serial_never_wraps(released, serial, rc):
    pub = released

    def at_serial(m):
        m["serial"] = serial
    resign(pub, "candidate", at_serial)
    p = pub.signed("refresh", "--channel=candidate", rc=rc)
    if rc == EXIT_OK:
        assert pub.manifest("candidate")["serial"] == MAX_SERIAL
    else:
        err = p.stderr.decode()
        assert "serial %d is the largest a manifest may have" % MAX_SERIAL in err, err
        assert "new channel" in err, err
        assert pub.manifest("candidate")["serial"] == MAX_SERIAL


def test_channel_files_switch_as_a_whole(released, keys):
    """Every write makes a new generation directory and moves one symlink."""
    pub = released
    link = os.path.join(pub.repo, "abdeploy", "channels")
    assert os.path.islink(link), "abdeploy/channels is not a symlink"
    gen = os.readlink(link)
    pub.signed("refresh", "--channel=candidate")
    assert os.readlink(link) != gen
    pub.signed("refresh", "--channel=candidate")
    gens = sorted(d for d in os.listdir(os.path.dirname(link)) if d.startswith("channels."))
    assert gens == ["channels.2", "channels.3", "channels.4"], gens  # the newest three
    for ch in ("candidate",):
        assert keys.gpg_verify(pub.manifest_path(ch) + ".sig", pub.manifest_path(ch)).returncode == 0


@pytest.mark.parametrize("point", ["publish:manifest", "publish:staged"])
def test_killed_publisher_leaves_the_old_channel_whole(released, keys, point):
    """A publisher killed between the manifest and its signature left a
    channel that every device refused until the next publish."""
    pub = released
    old = (open(pub.manifest_path("candidate"), "rb").read(),
           open(pub.manifest_path("candidate") + ".sig", "rb").read())
    env = dict(pub.env, ABDEPLOY_CRASH_AT=point)
    p = run([ABDEPLOY, "publish", "release", "--repo=" + pub.repo, "--channel=candidate",
             "--version=1.0", "--rollout=20", "--gpg-sign=" + keys.publisher,
             "--gpg-homedir=" + keys.home], env, check=False)
    assert p.returncode == -9, (p.returncode, p.stderr)
    now = (open(pub.manifest_path("candidate"), "rb").read(),
           open(pub.manifest_path("candidate") + ".sig", "rb").read())
    assert now == old
    assert keys.gpg_verify(pub.manifest_path("candidate") + ".sig",
                           pub.manifest_path("candidate")).returncode == 0
    # The next run removes what the killed one left and publishes.
    pub.signed("release", "--channel=candidate", "--version=1.0", "--rollout=20")
    assert pub.release(pub.manifest("candidate"), "1.0")["rollout"] == 20
    parent = os.path.join(pub.repo, "abdeploy")
    assert not os.path.exists(os.path.join(parent, ".channels.new"))
    target = os.readlink(os.path.join(parent, "channels"))
    newer = [d for d in os.listdir(parent) if d.startswith("channels.")
             and int(d.split(".")[1]) > int(target.split(".")[1])]
    assert newer == []


def test_a_repository_of_0_2_0_is_converted(released, keys):
    """channels as a plain directory (abdeploy 0.2.0) becomes a generation."""
    pub = released
    parent = os.path.join(pub.repo, "abdeploy")
    target = os.path.join(parent, os.readlink(os.path.join(parent, "channels")))
    os.unlink(os.path.join(parent, "channels"))
    os.rename(target, os.path.join(parent, "channels"))
    for d in os.listdir(parent):
        if d.startswith("channels."):
            at.rmtree(os.path.join(parent, d))
    pub.signed("refresh", "--channel=candidate")
    assert os.path.islink(os.path.join(parent, "channels"))
    assert keys.gpg_verify(pub.manifest_path("candidate") + ".sig",
                           pub.manifest_path("candidate")).returncode == 0


def test_summary_is_not_signed_over_an_unlisted_delta(released):
    """The summary lists every delta of the repo: it is signed only when a
    signed manifest lists each one with the same superblock."""
    pub = released
    pub.ostree("static-delta", "generate", "--from=" + pub.v2, "--to=" + pub.v1)
    before = snapshot(pub.repo)
    for args in (["deltas", "--channel=candidate"],
                 ["commit", "--tree=" + pub.tree("v3", V1_FILES), "--version=3.0"]):
        err = pub.signed(*args, rc=EXIT_ERROR).stderr.decode()
        assert "Refusing to sign the summary" in err and "%s-%s" % (pub.v2, pub.v1) in err, err
        assert "static-delta delete" in err, err
    after = snapshot(pub.repo)
    assert {k: v for k, v in after.items() if not k.startswith("deltas")} == \
        {k: v for k, v in before.items() if not k.startswith("deltas")}
    # A refused run generates nothing: a delta it left behind would be
    # unlisted and block every later publish.
    assert {k for k in after if k.startswith("deltas")} == \
        {k for k in before if k.startswith("deltas")}
    pub.ostree("static-delta", "delete", "%s-%s" % (pub.v2, pub.v1))
    pub.signed("deltas", "--channel=candidate")
    pub.ostree("summary", "--view")


# --------------------------------------------------------------------------
# The image layout and the OS of publish commit (issue 16)

KVER = "1.0"
KERNEL = b"FAKEKERNEL\n" + at.blob("kernel", 4096)
INITRD = b"FAKEINITRD\n" + at.blob("initrd", 2048)


def debootstrap_tree(pub, name, **extra):
    """A rootfs as debootstrap lays it out: a top-level etc (os-release a
    link to ../usr/lib/os-release, as Debian has it), the kernel and the
    initramfs in boot/ with the Debian names, the modules directory without
    a vmlinuz."""
    spec = {
        "etc/os-release": ("link", "../usr/lib/os-release"),
        "etc/hostname": "appliance\n",
        "etc/default/app": "SETTING=1\n",
        "usr/lib/os-release": 'PRETTY_NAME="Test OS"\nNAME="Test OS"\nID=testos\n',
        "usr/bin/tool": ("#!/bin/sh\necho tool\n", 0o755),
        "usr/lib/modules/%s/kernel/fs/ext4.ko" % KVER: "module\n",
        "boot/vmlinuz-%s" % KVER: KERNEL,
        "boot/initrd.img-%s" % KVER: INITRD,
        "boot/config-%s" % KVER: "CONFIG_EXT4_FS=y\n",
        "vmlinuz": ("link", "boot/vmlinuz-%s" % KVER),
    }
    spec.update(extra)
    return pub.tree(name, spec)


def tree_state(root):
    """Every entry beneath ROOT: kind, mode, link target or content digest."""
    state = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            what = os.readlink(p) if os.path.islink(p) else \
                (at.sha256_file(p) if os.path.isfile(p) else "dir")
            state[os.path.relpath(p, root)] = (st.st_mode, st.st_size, what)
    return state


def ls(pub, commit):
    """{path: type letter} of COMMIT ('d', '-', 'l')."""
    out = pub.ostree("ls", "-R", commit)
    return {line.split()[-1] if line[0] != "l" else line.split()[-3]: line[0]
            for line in out.splitlines() if line.strip()}


def cat(pub, commit, path):
    return run(["ostree", "--repo=" + pub.repo, "cat", commit, path], pub.env).stdout


def refused(pub, tree, *args, rc=EXIT_ERROR):
    """publish commit of TREE refused with exit RC: nothing committed."""
    err = pub.signed("commit", "--tree=" + tree, "--version=1.0", *args, rc=rc).stderr.decode()
    if os.path.exists(pub.repo):
        assert no_release_ref(pub, "1.0"), err
    return err


def test_commit_refuses_a_top_level_etc(pub):
    tree = debootstrap_tree(pub, "deb")
    err = refused(pub, tree, "--move-boot")
    assert "top-level etc" in err and "--move-etc" in err and "usr/etc" in err, err


def test_commit_refuses_a_kernel_only_in_boot(pub):
    tree = debootstrap_tree(pub, "deb")
    err = refused(pub, tree, "--move-etc")
    assert "only in boot/vmlinuz-1.0" in err and "--move-boot" in err, err
    assert "usr/lib/modules/KVER/vmlinuz" in err, err


def test_commit_refuses_a_tree_without_kernel(pub):
    files = {k: v for k, v in V1_FILES.items() if "modules" not in k}
    tree = pub.tree("nokernel", files)
    err = refused(pub, tree)
    assert "no kernel" in err and "--no-kernel" in err, err
    commit = pub.commit("1.0", tree, EXIT_OK, "--no-kernel")
    assert "/usr/lib/modules" not in ls(pub, commit)


def test_move_etc_and_boot_convert_the_commit_not_the_tree(pub):
    tree = debootstrap_tree(pub, "deb")
    before = tree_state(tree)
    p = pub.signed("commit", "--tree=" + tree, "--version=1.0", "--move-etc", "--move-boot")
    commit = p.stdout.decode().strip()
    assert tree_state(tree) == before          # the builder's tree is unchanged
    entries = ls(pub, commit)
    for gone in ("/etc", "/boot/vmlinuz-1.0", "/boot/initrd.img-1.0"):
        assert gone not in entries, entries
    assert entries["/usr/etc/hostname"] == "-" and entries["/usr/etc/os-release"] == "l"
    assert entries["/usr/etc/default/app"] == "-"
    assert entries["/boot/config-1.0"] == "-"    # the rest of boot/ stays
    assert entries["/usr/lib/modules/1.0/kernel/fs/ext4.ko"] == "-"
    assert cat(pub, commit, "/usr/lib/modules/1.0/vmlinuz") == KERNEL
    assert cat(pub, commit, "/usr/lib/modules/1.0/initramfs.img") == INITRD
    assert cat(pub, commit, "/usr/etc/hostname") == b"appliance\n"
    # the OS, from usr/lib/os-release, in the signed metadata
    assert pub.ostree("show", commit, "--print-metadata-key=abdeploy.os").strip() == "'testos'"
    shown = pub.ostree("show", "--gpg-homedir=" + pub.keys.keyring_dir, commit)
    assert "Good signature" in shown, shown


def test_move_etc_with_usr_etc(pub):
    """An identical usr/etc takes etc's place; a different one is refused."""
    same = debootstrap_tree(pub, "same", **{"usr/etc/hostname": "appliance\n",
                                            "usr/etc/default/app": "SETTING=1\n",
                                            "usr/etc/os-release": ("link", "../usr/lib/os-release")})
    commit = pub.commit("1.0", same, EXIT_OK, "--move-etc", "--move-boot")
    assert "/etc" not in ls(pub, commit)
    differ = debootstrap_tree(pub, "differ", **{"usr/etc/hostname": "other\n"})
    err = pub.signed("commit", "--tree=" + differ, "--version=2.0", "--move-etc", "--move-boot",
                     rc=EXIT_ERROR).stderr.decode()
    assert "both etc and usr/etc" in err and "merge" in err, err
    assert no_release_ref(pub, "2.0")


def test_move_boot_keeps_to_regular_files(pub):
    tree = debootstrap_tree(pub, "deb", **{"boot/vmlinuz-1.0": ("link", "/etc/passwd")})
    err = refused(pub, tree, "--move-etc", "--move-boot")
    assert "boot/vmlinuz-1.0 is not a regular" in err, err
    tree = debootstrap_tree(pub, "twice", **{"usr/lib/modules/1.0/vmlinuz": b"another kernel\n"})
    commit = pub.commit("1.0", tree, EXIT_OK, "--move-etc")   # modules' kernel wins
    assert cat(pub, commit, "/usr/lib/modules/1.0/vmlinuz") == b"another kernel\n"
    err = pub.signed("commit", "--tree=" + tree, "--version=2.0", "--move-etc", "--move-boot",
                     rc=EXIT_ERROR).stderr.decode()
    assert "both exist and differ" in err, err


def test_hostile_links_stay_beneath_the_root(pub, tmp_path):
    """Links of the tree never lead a conversion out of it: every case is
    refused (or the link committed as a link), and what they point at is
    untouched."""
    outside = str(tmp_path / "outside")
    at.write_tree(outside, {"vmlinuz-1.0": "outside kernel\n", "etc/secret": "secret\n",
                            "modules/keep": "keep\n"})
    before = tree_state(outside)
    both = ("--move-etc", "--move-boot")
    cases = (
        ({"etc": ("link", outside + "/etc")}, both, "etc at the top of the tree is a symbolic link"),
        ({"boot": ("link", outside)}, both, "no kernel"),
        ({"usr/lib/modules": ("link", outside + "/modules")}, both,
         "usr/lib/modules is not a directory"),
        ({"usr/lib/modules/1.0": ("link", outside + "/modules")}, both,
         "usr/lib/modules/1.0 is not a directory"),
        ({"usr/lib/modules/1.0/vmlinuz": ("link", outside + "/vmlinuz-1.0")}, ("--move-etc",),
         "usr/lib/modules/1.0/vmlinuz is not a regular"),
    )
    for i, (change, args, why) in enumerate(cases):
        spec_tree = debootstrap_tree(pub, "hostile%d" % i)
        for rel, value in change.items():
            at.rmtree(os.path.join(spec_tree, rel))
            if rel == "boot":
                at.rmtree(os.path.join(spec_tree, "vmlinuz"))
        at.write_tree(spec_tree, change)
        err = refused(pub, spec_tree, *args)
        assert why in err, (change, err)
        assert tree_state(outside) == before
    # usr itself a link: nothing can be moved into it
    tree = debootstrap_tree(pub, "usrlink")
    at.rmtree(os.path.join(tree, "usr"))
    os.symlink(outside, os.path.join(tree, "usr"))
    err = refused(pub, tree, "--move-etc", "--move-boot", "--os=testos")
    assert "usr is not a directory" in err, err
    assert tree_state(outside) == before


def test_commit_os(pub):
    """--os, else the ID of usr/lib/os-release, else of etc/os-release;
    none is a usage error naming --os."""
    files = {k: v for k, v in V1_FILES.items() if "os-release" not in k}
    tree = pub.tree("noid", files)
    err = refused(pub, tree, rc=EXIT_USAGE)
    assert "no os-release with an ID" in err and "--os=NAME" in err, err
    err = refused(pub, tree, "--os=bad/name", rc=EXIT_USAGE)
    assert "--os=bad/name is not a valid OS name" in err, err
    c1 = pub.commit("1.0", tree, EXIT_OK, "--os=myos")
    assert pub.ostree("show", c1, "--print-metadata-key=abdeploy.os").strip() == "'myos'"
    tree = pub.tree("etcid", dict(files, **{"etc/os-release": 'NAME=x\nID="debian"\n'}))
    c2 = pub.commit("2.0", tree, EXIT_OK, "--move-etc")
    assert pub.ostree("show", c2, "--print-metadata-key=abdeploy.os").strip() == "'debian'"
    tree = pub.tree("badid", dict(files, **{"usr/lib/os-release": "ID=no way\n"}))
    err = pub.signed("commit", "--tree=" + tree, "--version=3.0", rc=EXIT_USAGE).stderr.decode()
    assert "not a valid OS name" in err and "--os=NAME" in err, err
