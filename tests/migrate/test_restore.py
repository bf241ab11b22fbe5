"""restore of the backup that abdeploy 0.1.0 made (archive format 1): its
files are kept as the layout-1 copy, restored at format 2, and the sysroot
is of layout 2 afterwards, whatever layout it had."""

import base64
import json
import os
import shutil

import pytest

import backuparchive  # tests/lib
import migratelib as ml
from migratelib import sl


def archive_files(path):
    """The manifest and the members of an archive in either format."""
    archive = backuparchive.read_doc(path)
    return archive, {e["path"]: base64.b64decode(e["data"]) for e in archive["files"]}


def wreck(sr):
    """Damage the state the way restore must cope with."""
    for name in ("slot-a.json", "history.json"):
        with open(sr.p("abdeploy", "state", name), "w") as f:
            f.write("{ wrecked")
    os.unlink(sr.p("abdeploy", "state", "sysroot.json"))
    os.unlink(sr.p("etc", "abdeploy", "conf.d", "50-local.conf"))


def check_restored(sr, fx, pristine, archive_path):
    archive, files = archive_files(archive_path)
    assert ml.layout(sr) == "2\n"
    for name in os.listdir(sr.p("abdeploy", "state")):
        assert ml.state_json(sr, name)["format"] == 2, name
    assert ml.config(sr).get("abdeploy", "format") == "2"
    # the copy: the archive's files as 0.1.0 wrote them, and layout version 1
    assert ml.read(sr, ml.COPY_DIR + "/abdeploy/version") == "1\n"
    for rel, data in files.items():
        if rel.startswith("abdeploy/state/") or rel.startswith("etc/abdeploy/conf.d/") \
                or rel == "etc/abdeploy/abdeploy.conf":
            assert ml.read(sr, os.path.join(ml.COPY_DIR, rel), "rb") == data, rel
    # the state is what the backup recorded, plus the migration
    assert sr.status() == pristine.grub.status()
    events = json.loads(sr.ok("history", "--json").stdout)
    assert events[0]["type"] == "migrate", events[:2]
    old = ml.state_json(pristine.grub, "history.json")["events"]
    assert ml.state_json(sr, "history.json")["events"][:len(old)] == old
    assert ml.read(sr, "etc/abdeploy/conf.d/50-local.conf") == \
        ml.read(pristine.grub, "etc/abdeploy/conf.d/50-local.conf")
    ver = json.loads(sr.ok("verify", "--json").stdout)
    assert ver["passed"] is True, ver
    sr.fsck()


def test_restore_010_backup_on_layout1_with_wrecked_state(layout1, pristine):
    fx = layout1()
    sr = fx.grub
    wreck(sr)
    r = sr.ok("restore", "--path=" + fx.backup)
    assert "Migrated the backup from layout 1 to 2" in r.stderr, r.describe()
    check_restored(sr, fx, pristine, fx.backup)


def test_restore_010_backup_on_layout2(layout1, pristine):
    """On a migrated sysroot that moved on (a rollback to slot b since): the
    0.1.0 backup brings the recorded state back, migrated, and its files
    replace the older layout-1 copy."""
    fx = layout1()
    sr = fx.grub
    sr.ok("rollback")
    assert sr.status()["primary"] == "b"
    with open(sr.p(ml.COPY_DIR, "abdeploy", "state", "slot-a.json"), "rb") as f:
        assert f.read() == ml.read(pristine.grub, "abdeploy/state/slot-a.json", "rb")
    r = sr.ok("restore", "--path=" + fx.backup)
    assert "Migrated the backup" in r.stderr, r.describe()
    assert sr.status()["primary"] == "a"
    check_restored(sr, fx, pristine, fx.backup)
    # a later writer finds layout 2: nothing more to migrate
    sr.expect(sl.EXIT_NOTHING, "migrate")


def test_backup_restore_roundtrip_on_layout2(layout1, pristine):
    """A backup made after the migration has format 2 and restores as it is."""
    fx = layout1()
    sr = fx.grub
    sr.ok("migrate")
    out = os.path.join(fx.root, "b2.tar")
    sr.ok("backup", "--output=" + out)
    archive, files = archive_files(out)
    assert archive["format"] == 2
    assert json.loads(files["abdeploy/state/slot-a.json"])["format"] == 2
    status = sr.status()
    wreck(sr)
    r = sr.ok("restore", "--path=" + out)
    assert "Migrated" not in r.stderr, r.describe()
    assert sr.status() == status
    assert ml.layout(sr) == "2\n"
    sr.fsck()


def test_restore_010_backup_on_other_sysroot(layout1, pristine):
    """A 0.1.0 backup whose commits are not in the repo (the file sysroot
    never pulled 2.0) is refused before anything, the migration included,
    changes."""
    fx = layout1()
    sr = fx.file
    before = ml.whole(sr, lock=False)
    r = sr.run("restore", "--path=" + fx.backup)
    assert r.returncode == sl.EXIT_ERROR and "not in the repo" in r.stderr, r.describe()
    assert ml.whole(sr, lock=False) == before
    assert ml.layout(sr) == "1\n"
