"""`abdeploy restore` of crafted archives (issue 10, point 4).

Every archive here is what a careless or hostile hand makes of a real
backup: its manifest or members are changed and its checksums (SHA256SUMS
of the tar archive, or the trailing line of the 0.2.0 JSON archive) are
made right again, so only the checks of the archive reader stand between
the archive and the sysroot.  Since issue 16 (point 7) the archive is a tar
archive; the hostile tar entries (hard links, devices, directories, "../"
and absolute names, huge sizes, entries the manifest does not list) are at
the end.  A refused restore must exit 1 with a message that
names the problem, leave the sysroot byte for byte as it was (every entry:
type, mode, inode, mtime, size, SHA-256, link target; see
lifecyclelib.disk_snapshot), leave no journal, and write nothing outside the
sysroot.  Each case was accepted by abdeploy 0.2.0.

A journal left behind by a restore never makes a read-only command fail;
`status` reports it.  A restored slot record never describes a slot tree
that does not hold its commit.
"""

import base64
import hashlib
import json
import os

import tarfile

import pytest

import backuparchive as ba  # tests/lib
import lifecyclelib as ll
from lifecyclelib import sl

PENDING = os.path.join("abdeploy", "restore.pending")
KEYS_DIR = "etc/abdeploy/trusted.gpg.d"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def backup(dev, tmp_path):
    path = str(tmp_path / "device.tar")
    dev.ok("backup", "--output=" + path)
    return path


def seal(doc, fmt="tar"):
    """DOC as an archive with correct checksums: a tar archive, or (json)
    the archive of 0.2.0."""
    return ba.seal_tar(doc) if fmt == "tar" else ba.seal_json(doc)


def unseal(path):
    return ba.read_doc(path)


def member(rel, data, mode=0o644, kind=None):
    """A manifest entry whose size and checksum match DATA."""
    data = data.encode() if isinstance(data, str) else data
    m = {"path": rel, "mode": mode, "size": len(data),
         "sha256": hashlib.sha256(data).hexdigest(),
         "data": base64.b64encode(data).decode()}
    if kind:
        m["type"] = kind
    return m


def crafted(tmp_path, archive, mutate, name="crafted", fmt="tar"):
    doc = unseal(archive)
    mutate(doc)
    path = str(tmp_path / name)
    write(path, seal(doc, fmt))
    return path


def outside(dev):
    """Every path beside the sysroot (the device's parent directory, less
    the sysroot)."""
    parent = os.path.dirname(dev.path)
    seen = set()
    for root, dirs, files in os.walk(parent):
        if root == dev.path or root.startswith(dev.path + os.sep):
            dirs[:] = []
            continue
        for n in dirs + files:
            seen.add(os.path.relpath(os.path.join(root, n), parent))
    return seen


def refused(dev, archive, *needles):
    """restore must fail with a clear message, change nothing and leave no
    journal."""
    scratch = os.path.join(os.path.dirname(dev.path), "tmpdir")
    os.makedirs(scratch, exist_ok=True)
    snap = ll.disk_snapshot(dev)
    around = outside(dev)
    # restore reads the files back in a scratch directory under TMPDIR
    p = dev.run("restore", "--path=" + archive, env={"TMPDIR": scratch})
    assert p.returncode == ll.EXIT_ERROR, p.describe
    assert os.listdir(scratch) == [], "restore left its scratch directory"
    for n in needles:
        assert n in p.stderr, "%r not in the message\n%s" % (n, p.describe)
    assert "nothing was changed" in p.stderr, p.describe
    ll.assert_unchanged(snap, dev, "a refused restore")
    assert not os.path.lexists(dev.p(PENDING))
    assert outside(dev) == around, sorted(outside(dev) ^ around)
    dev.ok("status")
    return p


def files_by_path(doc):
    return {f["path"]: f for f in doc["files"]}


# --------------------------------------------------------------------------
# Paths: absolute, "..", through a link, links where files belong


@pytest.mark.parametrize("target", ["/etc/shadow", "/tmp"])
def test_absolute_link_target_is_refused(device, tmp_path, target):
    """A trusted key that is a link to an absolute path would be resolved on
    the host, outside the sysroot (0.2.0 restored it)."""
    dev = device("meta")
    archive = backup(dev, tmp_path)
    bad = crafted(tmp_path, archive, lambda d: d["files"].append(
        member(KEYS_DIR + "/evil.gpg", target, 0o777, "symlink")))
    refused(dev, bad, KEYS_DIR + "/evil.gpg", "absolute")


@pytest.mark.parametrize("target", ["../../../../escape.gpg", "../../../../../../../etc/shadow",
                                    "../../x/../../../../escape"])
def test_dotdot_link_target_is_refused(device, tmp_path, target):
    dev = device("meta")
    archive = backup(dev, tmp_path)
    bad = crafted(tmp_path, archive, lambda d: d["files"].append(
        member(KEYS_DIR + "/evil.gpg", target, 0o777, "symlink")))
    refused(dev, bad, KEYS_DIR + "/evil.gpg", "outside the sysroot")


@pytest.mark.parametrize("target", ["../../../../escape-dir", "../../../usr/share"])
def test_member_through_a_link_is_refused(device, tmp_path, target):
    """A link member, then a member below it: 0.2.0 wrote the second one
    through the link, outside the sysroot or outside etc/abdeploy."""
    dev = device("meta")
    escape = os.path.join(os.path.dirname(dev.path), "escape-dir")
    os.makedirs(escape)
    os.makedirs(dev.p("usr", "share"), exist_ok=True)
    archive = backup(dev, tmp_path)

    def mutate(doc):
        doc["files"].append(member(KEYS_DIR + "/k", target, 0o777, "symlink"))
        doc["files"].append(member(KEYS_DIR + "/k/evil.gpg", "written through a link\n"))
    bad = crafted(tmp_path, archive, mutate)
    refused(dev, bad, KEYS_DIR + "/k")
    assert os.listdir(escape) == []
    assert not os.path.lexists(dev.p("usr", "share", "evil.gpg"))


@pytest.mark.parametrize("rel", ["abdeploy/state/slot-b.json", "etc/abdeploy/abdeploy.conf",
                                 "etc/abdeploy/conf.d/50-link.conf"])
def test_symlink_member_where_a_file_belongs_is_refused(device, tmp_path, rel):
    """A state file, the configuration or a drop-in as a link (0.2.0
    restored the link, and every later read went through it)."""
    dev = device("meta")
    archive = backup(dev, tmp_path)

    def mutate(doc):
        doc["files"] = [f for f in doc["files"] if f["path"] != rel]
        doc["files"].append(member(rel, "../../usr/share/x", 0o777, "symlink"))
    refused(dev, crafted(tmp_path, archive, mutate), rel, "symbolic link")


@pytest.mark.parametrize("rel", ["abdeploy/state/sysroot.json\nx", "etc/abdeploy/a\x01b",
                                 "etc/abdeploy/" + "n" * 256, "etc/abdeploy/.hidden",
                                 "abdeploy/state//slot-a.json"])
def test_odd_member_names_are_refused(device, tmp_path, rel):
    dev = device("meta")
    archive = backup(dev, tmp_path)
    refused(dev, crafted(tmp_path, archive, lambda d: d["files"].append(member(rel, "x\n"))),
            "corrupt or truncated")


def test_duplicate_member_is_refused(device, tmp_path):
    """Two entries for one file: which one wins must not be an accident."""
    dev = device("meta")
    archive = backup(dev, tmp_path)

    def mutate(doc):
        conf = files_by_path(doc).get("etc/abdeploy/abdeploy.conf")
        doc["files"].append(member("etc/abdeploy/abdeploy.conf", "[boot]\ntries=1\n"))
        if conf is None:
            doc["files"].append(member("etc/abdeploy/abdeploy.conf", "[boot]\ntries=2\n"))
    refused(dev, crafted(tmp_path, archive, mutate), "appears twice")


# --------------------------------------------------------------------------
# Sizes and checksums against the manifest


@pytest.mark.parametrize("fmt", ["tar", "json"])
@pytest.mark.parametrize("how", ["size", "base64-junk", "huge-size"])
def test_member_that_does_not_match_the_manifest_is_refused(device, tmp_path, how, fmt):
    """0.2.0 ignored "size" and decoded base64 leniently (junk skipped), so
    these passed its checksum check.  A tar archive holds no base64."""
    if fmt == "tar" and how == "base64-junk":
        pytest.skip("a tar archive holds no base64")
    dev = device("meta")
    archive = backup(dev, tmp_path)

    def mutate(doc):
        f = files_by_path(doc)["abdeploy/state/slot-b.json"]
        if how == "size":
            f["size"] += 1
        elif how == "huge-size":
            f["size"] = 1 << 40
        else:
            f["data"] = "!" + f["data"]
    refused(dev, crafted(tmp_path, archive, mutate, fmt=fmt), "abdeploy/state/slot-b.json")


def test_archive_cut_halfway_through_its_members_is_refused(device, tmp_path):
    """The first half of the members, the checksum made again: 0.2.0 restored
    it with exit 0 and left a sysroot without sysroot.json, which no command
    opens."""
    dev = device("meta")
    archive = backup(dev, tmp_path)

    def mutate(doc):
        doc["files"].sort(key=lambda f: f["path"].startswith("abdeploy/state/"))
        doc["files"] = doc["files"][:len(doc["files"]) // 2]
    refused(dev, crafted(tmp_path, archive, mutate), "sysroot.json")


# --------------------------------------------------------------------------
# Content that no command could read


@pytest.mark.parametrize("case", ["unknown-state-file", "transaction-phase", "conf-d-syntax",
                                  "config-value"])
def test_state_or_config_no_command_reads_is_refused(device, tmp_path, case):
    """0.2.0 restored each of these with exit 0; then status (or every
    command) failed on the restored sysroot."""
    dev = device("meta")
    archive = backup(dev, tmp_path)
    rel, text, needle = {
        "unknown-state-file": ("abdeploy/state/future.json", '{"format": 3}\n', "future.json"),
        "transaction-phase": ("abdeploy/state/transaction.json",
                              '{"format": 2, "id": "x", "phase": "warp"}\n', "warp"),
        "conf-d-syntax": ("etc/abdeploy/conf.d/50-bad.conf", "this is not a key file\n",
                          "50-bad.conf"),
        "config-value": ("etc/abdeploy/conf.d/50-bad.conf", "[boot]\ntries=99\n", "tries"),
    }[case]

    def mutate(doc):
        doc["files"] = [f for f in doc["files"] if f["path"] != rel]
        doc["files"].append(member(rel, text))
    refused(dev, crafted(tmp_path, archive, mutate), needle)


CONFIG_REL = "etc/abdeploy/abdeploy.conf"
BAD_CONFIGS = {
    "abdeploy-conf-value": (CONFIG_REL, "[update]\nmin-rate=0\n",
                            ["[update] min-rate=0", "use a whole number"]),
    "abdeploy-conf-unknown-key": (CONFIG_REL, "[update]\nbogus=1\n",
                                  ["unknown key bogus in group [update]", "fix its spelling"]),
    "conf-d-value": ("etc/abdeploy/conf.d/50-bad.conf", "[boot]\ntries=x\n",
                     ["[boot] tries=x", "use a whole number"]),
}


def archive_010(tmp_path):
    """The backup that abdeploy 0.1.0 made (archive format 1), from the
    layout-1 fixture."""
    tar = os.path.join(ll.SRCDIR, "tests", "fixtures", "layout-1", "layout-1.tar.xz")
    ll.subprocess.run(["tar", "-xJf", tar, "-C", str(tmp_path), "./backup-0.1.0.json"],
                      check=True, capture_output=True)
    return str(tmp_path / "backup-0.1.0.json")


@pytest.mark.parametrize("fmt", [2, 1])
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_config_the_strict_parser_refuses_is_refused(device, tmp_path, case, fmt):
    """A configuration file that every command would refuse is refused when
    the archive is read, before anything is looked at on the sysroot; the
    message names the file in the archive, the key and what is accepted.
    Format 1: the backup of abdeploy 0.1.0, whose parser let such files
    by."""
    dev = device("meta")
    archive = backup(dev, tmp_path) if fmt == 2 else archive_010(tmp_path)
    rel, text, needles = BAD_CONFIGS[case]

    def mutate(doc):
        assert doc["format"] == fmt
        assert rel == CONFIG_REL or fmt == 1 or rel not in files_by_path(doc)
        doc["files"] = [f for f in doc["files"] if f["path"] != rel]
        doc["files"].append(member(rel, text))
    p = refused(dev, crafted(tmp_path, archive, mutate), rel, *needles)
    assert "holds a configuration file that abdeploy refuses" in p.stderr, p.describe


def test_record_that_disagrees_with_its_ref_is_refused(device, tmp_path):
    dev = device("meta")
    archive = backup(dev, tmp_path)

    def mutate(doc):
        doc["refs"]["abdeploy/slot/a"], doc["refs"]["abdeploy/slot/b"] = \
            doc["refs"]["abdeploy/slot/b"], doc["refs"]["abdeploy/slot/a"]
    refused(dev, crafted(tmp_path, archive, mutate), "slot-a.json names commit")


# --------------------------------------------------------------------------
# Slot records describe their trees


def test_slot_that_lost_its_commit_is_checked_out_again(device, tmp_path):
    """Slot a's tree no longer holds the commit the backup records for it
    (its kernel is gone, a file differs).  The commit is in the repo and a
    restored key signed it: restore checks it out again, and the good record
    describes the slot again (0.2.0 restored the good record over the
    damaged tree and only warned)."""
    dev = device("meta")
    archive = backup(dev, tmp_path)
    before = dev.json("status", "--json")
    commit = dev.rev_parse("abdeploy/slot/a")
    os.unlink(dev.p("boot", "abdeploy", "a", "vmlinuz"))
    dev.replace_file("usr/lib/os-release", b"changed\n", "a")
    p = dev.ok("restore", "--path=" + archive)
    assert "slot a did not hold commit %s" % commit in p.stderr, p.describe
    assert "checked out again from the repo" in p.stderr, p.describe
    assert os.path.exists(dev.p("boot", "abdeploy", "a", "vmlinuz"))
    assert read(dev.slot_path("a", "usr/lib/os-release")) != b"changed\n"
    after = dev.json("status", "--json")
    assert after["slots"] == before["slots"], (before, after)
    rc, _, _, v = dev.verify("--full")
    assert rc == ll.EXIT_OK, v.describe
    dev.set_booted("a")     # every file of slot a matches its commit again
    _, checks, _, v = dev.verify("--full")
    assert checks["tree-matches-commit"]["passed"], v.describe
    assert checks["state-consistent"]["passed"], v.describe


def test_slot_that_lost_its_commit_is_restored_empty_when_unverifiable(device, tmp_path):
    """The same damage, but the archive holds no trusted key, so the commit
    cannot be verified: slot a is restored empty and not bootable, never
    with its good record over other content, and every command still
    opens the sysroot."""
    dev = device("meta")
    archive = backup(dev, tmp_path)
    commit = dev.rev_parse("abdeploy/slot/a")
    os.unlink(dev.p("boot", "abdeploy", "a", "vmlinuz"))
    bad = crafted(tmp_path, archive, lambda d: d.update(
        files=[f for f in d["files"] if not f["path"].startswith(KEYS_DIR + "/")]))
    p = dev.ok("restore", "--path=" + bad)
    assert "slot a does not hold commit " + commit in p.stderr, p.describe
    assert "restored empty and not bootable" in p.stderr, p.describe
    st = dev.json("status", "--json")
    slots = {s["name"]: s for s in st["slots"]}
    assert slots["a"]["state"] == "empty" and slots["a"]["commit"] is None, st
    assert slots["b"]["state"] == "good", st
    assert st["restore_pending"] is False
    assert not os.path.exists(dev.state_path("slot-a.json"))
    assert not os.path.exists(dev.p(PENDING))
    rc, checks, _, v = dev.verify()
    assert checks["state-consistent"]["passed"], v.describe
    dev.ok("mark-good")
    # rollback opens the sysroot and refuses, by its own rules, to roll
    # back to the empty slot
    p = dev.run("rollback")
    assert p.returncode != ll.EXIT_OK and "slot a" in p.stderr, p.describe


# --------------------------------------------------------------------------
# A pending journal


def test_pending_journal_that_does_not_verify_never_blocks_readers(device, tmp_path):
    """0.2.0 left abdeploy/restore.pending behind after restores that it
    refused before changing anything, and from then on every command failed,
    status included.  Readers now report it; writers refuse it with a
    message that says what to do; a restore of a good backup replaces it."""
    dev = device("meta")
    archive = backup(dev, tmp_path)
    before = dev.json("status", "--json")
    write(dev.p(PENDING), read(archive)[:100])
    snap = ll.disk_snapshot(dev)
    st = dev.json("status", "--json")
    assert st["restore_pending"] is True, st
    assert {k: v for k, v in st.items() if k != "restore_pending"} == \
        {k: v for k, v in before.items() if k != "restore_pending"}
    assert "Restore pending" in dev.ok("status").stdout
    dev.ok("history")
    assert dev.version()["restore_pending"] is True
    assert "Restore pending" in dev.ok("version").stdout
    rc, _, _, v = dev.verify()
    assert rc == ll.EXIT_OK and "a restore was interrupted" in v.stderr, v.describe
    ll.assert_unchanged(snap, dev, "readers with a pending journal")
    p = dev.run("mark-good")
    assert p.returncode == ll.EXIT_ERROR, p.describe
    assert "restore.pending" in p.stderr and "does not verify" in p.stderr, p.describe
    ll.assert_unchanged(snap, dev, "a writer refusing a bad journal")
    dev.ok("restore", "--path=" + archive)
    assert not os.path.exists(dev.p(PENDING))
    assert dev.json("status", "--json")["restore_pending"] is False
    dev.ok("mark-good")


def test_pending_journal_is_completed_by_a_writer_only(device, tmp_path):
    dev = device("meta")
    archive = backup(dev, tmp_path)
    before = dev.json("status", "--json")
    os.unlink(dev.p("etc", "abdeploy", "trusted.gpg.d", "publisher.gpg"))
    write(dev.p(PENDING), read(archive))
    snap = ll.disk_snapshot(dev)
    assert dev.json("status", "--json")["restore_pending"] is True
    ll.assert_unchanged(snap, dev, "status with a pending journal")
    p = dev.ok("mark-good")
    assert "Completed the restore that was interrupted" in p.stderr, p.describe
    assert not os.path.exists(dev.p(PENDING))
    assert os.path.exists(dev.p("etc", "abdeploy", "trusted.gpg.d", "publisher.gpg"))
    after = dev.json("status", "--json")
    assert after["restore_pending"] is False
    assert after["slots"] == before["slots"], sl.diff_snapshots(before, after)


def test_restore_that_checks_a_slot_out_again_survives_a_kill_anywhere(device, tmp_path):
    """restore killed (SIGKILL) at each of its crash points, including
    while it checks slot a out again: without a journal nothing changed;
    with one, status still answers, and the next writer completes the
    restore, after which slot a holds its commit and reads as before."""
    dev = device("meta")
    archive = backup(dev, tmp_path)
    before = dev.json("status", "--json")

    def damaged():
        c = ll.devices_copy(dev, str(tmp_path))
        os.unlink(c.p("boot", "abdeploy", "a", "vmlinuz"))
        return c
    probe = damaged()
    trace = str(tmp_path / "trace")
    probe.ok("restore", "--path=" + archive, env={"ABDEPLOY_CRASH_TRACE": trace})
    points = read(trace).decode().split()
    assert "restore:checked-out" in points, points
    for n in range(1, len(points) + 1):
        c = damaged()
        snap = ll.disk_snapshot(c)
        p = c.run("restore", "--path=" + archive, env={"ABDEPLOY_CRASH_AT": str(n)})
        assert p.returncode == -9, "crash point %d (%s)\n%s" % (n, points[n - 1], p.describe)
        if not os.path.exists(c.p(PENDING)):
            after = {k: v for k, v in ll.disk_snapshot(c).items() if ".tmp-" not in k}
            assert after == snap, "crash point %d (%s)" % (n, points[n - 1])
            continue
        s = c.run("status", "--json")
        assert s.returncode == ll.EXIT_OK, s.describe
        assert json.loads(s.stdout)["restore_pending"] is True
        r = c.run("migrate")
        assert "Completed the restore that was interrupted" in r.stderr, r.describe
        assert not os.path.exists(c.p(PENDING))
        assert os.path.exists(c.p("boot", "abdeploy", "a", "vmlinuz")), points[n - 1]
        assert c.json("status", "--json")["slots"] == before["slots"], points[n - 1]
        rc, _, _, v = c.verify("--full")
        assert rc == ll.EXIT_OK, "crash point %d (%s)\n%s" % (n, points[n - 1], v.describe)
        ll.sl.rmtree(c.path)


# --------------------------------------------------------------------------
# Hostile tar entries (issue 16, point 7): each is refused before anything
# is written, with a message that names the entry


def tar_with(doc, *extra, edit=None):
    return ba.seal_tar(doc, extra=extra, edit=edit)


@pytest.mark.parametrize("case", ["hardlink-out", "hardlink-in", "chardev", "blockdev", "fifo",
                                  "directory", "not-in-manifest"])
def test_hostile_tar_entry_is_refused(device, tmp_path, case):
    dev = device("meta")
    doc = unseal(backup(dev, tmp_path))
    info, needle = {
        "hardlink-out": (ba.tar_info(KEYS_DIR + "/shadow.gpg", kind=tarfile.LNKTYPE,
                                     linkname="../../../../etc/shadow"), "hard link"),
        "hardlink-in": (ba.tar_info(KEYS_DIR + "/again.gpg", kind=tarfile.LNKTYPE,
                                    linkname=KEYS_DIR + "/publisher.gpg"), "hard link"),
        "chardev": (ba.tar_info("etc/abdeploy/null", kind=tarfile.CHRTYPE), "character device"),
        "blockdev": (ba.tar_info("etc/abdeploy/sda", kind=tarfile.BLKTYPE), "block device"),
        "fifo": (ba.tar_info("abdeploy/state/fifo", kind=tarfile.FIFOTYPE), "FIFO"),
        "directory": (ba.tar_info("etc/abdeploy/conf.d", kind=tarfile.DIRTYPE), "directory"),
        "not-in-manifest": (ba.tar_info("etc/abdeploy/conf.d/50-extra.conf", 4),
                            "the manifest lists"),
    }[case]
    path = str(tmp_path / "hostile.tar")
    write(path, tar_with(doc, (info, b"x=1\n" if info.isreg() else b"")))
    refused(dev, path, needle)


@pytest.mark.parametrize("name", ["../escape", "/etc/abdeploy/abs.conf",
                                  "etc/abdeploy/../../../escape"])
def test_tar_entry_named_outside_the_sysroot_is_refused(device, tmp_path, name):
    """The manifest lists the entry too, so only the path checks stand in
    the way."""
    dev = device("meta")
    doc = unseal(backup(dev, tmp_path))
    doc["files"].append(member(name, "escaped\n"))
    path = str(tmp_path / "hostile.tar")
    write(path, seal(doc))
    refused(dev, path, "member path " + name)
    assert not os.path.exists(os.path.join(os.path.dirname(dev.path), "escape"))


def test_tar_symlink_then_file_through_it_is_refused(device, tmp_path):
    dev = device("meta")
    escape = os.path.join(os.path.dirname(dev.path), "escape-dir")
    os.makedirs(escape)
    doc = unseal(backup(dev, tmp_path))
    doc["files"].append(member(KEYS_DIR + "/k", "../../../../escape-dir", 0o777, "symlink"))
    doc["files"].append(member(KEYS_DIR + "/k/evil.gpg", "through a link\n"))
    path = str(tmp_path / "hostile.tar")
    write(path, seal(doc))
    refused(dev, path, KEYS_DIR + "/k")
    assert os.listdir(escape) == []


def test_tar_duplicate_entry_is_refused(device, tmp_path):
    dev = device("meta")
    doc = unseal(backup(dev, tmp_path))
    conf = next(f for f in doc["files"] if f["path"] == "abdeploy/state/sysroot.json")
    doc["files"].append(dict(conf))
    path = str(tmp_path / "hostile.tar")
    write(path, seal(doc))
    refused(dev, path, "appears twice")


@pytest.mark.parametrize("size", [1 << 40, 17 << 20])
def test_tar_entry_with_a_huge_size_is_refused(device, tmp_path, size):
    """The header claims more than a member may hold: refused before a byte
    of it is read (no terabyte allocation)."""
    dev = device("meta")
    doc = unseal(backup(dev, tmp_path))
    tar = tar_with(doc)
    out = bytearray()
    import io
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        victim = next(m for m in t.getmembers() if m.name == KEYS_DIR + "/publisher.gpg")
    info = ba.tar_info(victim.name, size)
    header = info.tobuf(tarfile.PAX_FORMAT)
    out += tar[:victim.offset] + header + tar[victim.offset_data:]
    path = str(tmp_path / "huge.tar")
    write(path, bytes(out))
    refused(dev, path, KEYS_DIR + "/publisher.gpg", "claims %d bytes" % size)
