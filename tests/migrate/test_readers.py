"""The layout-1 fixture, and commands that only read it: they read layout 1
correctly and write nothing."""

import json
import os

import pytest

import backuparchive  # tests/lib

import migratelib as ml
from migratelib import sl


def test_fixture_is_layout1_of_abdeploy_010(pristine):
    """Guards the fixture itself: made by 0.1.0, every state file format 1,
    no configuration format key."""
    assert pristine.info["abdeploy_version"] == "0.1.0" and pristine.info["tag"] == "v0.1.0"
    for sr in (pristine.grub, pristine.file):
        assert ml.layout(sr) == "1\n"
        for name in os.listdir(sr.p("abdeploy", "state")):
            assert ml.state_json(sr, name)["format"] == 1, name
        assert not os.path.exists(sr.p(ml.COPY_DIR))
    assert sorted(os.listdir(pristine.grub.p("abdeploy", "state"))) == sorted(ml.STATE_FILES)
    assert "abdeploy" not in ml.config(pristine.grub)
    with open(pristine.backup) as f:
        assert json.loads(f.read().rsplit("\nsha256 ", 1)[0])["format"] == 1


READERS = [
    ("status",), ("status", "--json"), ("history",), ("history", "--json"),
    ("version",), ("version", "--json"), ("verify",), ("verify", "--json", "--full"),
]


@pytest.mark.parametrize("name", ["grub", "file"])
def test_read_only_commands_write_nothing(layout1, name):
    fx = layout1()
    sr = fx.sysroot(name)
    before = ml.whole(sr)
    for args in READERS:
        r = sr.run(*args)
        # verify fails on the file sysroot: it never ran a health check
        ok = (0, 1) if args[0] == "verify" and name == "file" else (0,)
        assert r.returncode in ok and r.stdout, r.describe()
        assert "Migrated" not in r.stderr, r.describe()
    after = ml.whole(sr)
    assert after == before, "a read-only command changed the layout-1 sysroot:\n" + \
        sl.diff_snapshots(before, after)


def check_update(fx, sr):
    """check-update with the fixture's own publisher repo as [update] url."""
    conf = os.path.join(fx.root, "check.conf")
    with open(conf, "w") as f:
        f.write("[update]\nurl=%s\n" % fx.repo)
    r = sr.run("--config=" + conf, "check-update")
    assert r.returncode in (0, 3, 5), r.describe()   # 3 once the manifest has expired
    return r


def test_check_update_on_layout1(layout1):
    """check-update saves a new manifest serial under the lock (issue 10: no
    lost update) but never migrates: with the serial already accepted (grub)
    it writes no state; with a new one (file, which never
    checked) it writes update.json in format 1, as abdeploy 0.1.0 would, and
    nothing else but its pid in the lock file and the manifest cache."""
    fx = layout1()
    cache = {"/abdeploy/cache", "/abdeploy/cache/manifest.json"}
    before = ml.whole(fx.grub, lock=False)
    check_update(fx, fx.grub)
    after = ml.whole(fx.grub, lock=False)
    # the copy of the verified manifest (for status and the completion) is a
    # cache no reader of layout 1 looks at; no state file changes
    after = {k: v for k, v in after.items() if k not in cache}
    assert after == before, sl.diff_snapshots(before, after)

    before = ml.whole(fx.file, lock=False)
    r = check_update(fx, fx.file)
    after = ml.whole(fx.file, lock=False)
    if r.returncode == 3:
        pytest.skip("the fixture's channel manifest has expired: %s" % r.stderr.strip())
    added = {k for k in after if k not in before}
    assert added == {"/abdeploy/state/update.json"} | cache, sl.diff_snapshots(before, after)
    assert {k: v for k, v in after.items() if k in before} == before, sl.diff_snapshots(before, after)
    update = ml.state_json(fx.file, "update.json")
    assert update["format"] == 1 and update["last_serial"] == {"stable": 1}, update
    assert ml.layout(fx.file) == "1\n"


def test_readers_see_the_layout1_state(layout1):
    fx = layout1()
    sr = fx.grub
    st = sr.status()
    want = fx.info["sysroots"]["grub"]
    assert st["booted"] == want["booted"] and st["primary"] == want["primary"], st
    for s in st["slots"]:
        assert s["version"] == want["slots"][s["name"]], s
        assert s["commit"] == fx.info["commits"][s["version"]], s
        assert s["state"] == "good", s
    assert st["health"]["verdict"] == "green" and st["health"]["slot"] == "a", st
    assert st["last_rollback"]["kind"] == "manual", st
    assert st["last_rollback"]["from_version"] == "2.0", st
    types = ml.history_types(sr)
    assert types[:3] == ["pin", "mark-good", "verdict"], types
    assert "update" in types and "rollback" in types, types
    v = json.loads(sr.ok("version", "--json").stdout)
    assert v["abdeploy_version"] == "0.2.0" and v["version"] == "1.0" and v["slot"] == "a", v
    ver = json.loads(sr.ok("verify", "--json").stdout)
    assert ver["passed"] is True, ver
    # the file backend's pointer keeps its own format 1
    assert fx.file.pointer()["ABDEPLOY_FORMAT"] == "1"


def test_backup_of_layout1_is_a_format1_archive(layout1, pristine):
    """backup only reads: the archive has the layout-1 files, as 0.1.0 wrote
    them, in archive format 1."""
    fx = layout1()
    out = os.path.join(fx.root, "b.tar")
    r = fx.grub.ok("backup", "--output=" + out)
    assert "Migrated" not in r.stderr
    assert ml.layout(fx.grub) == "1\n"
    archive = backuparchive.read_doc(out)
    assert archive["format"] == 1
    files = {e["path"]: e for e in archive["files"]}
    import base64
    for rel in ml.KEPT:
        if rel == "abdeploy/version":
            continue
        assert base64.b64decode(files[rel]["data"]) == ml.read(pristine.grub, rel, "rb"), rel
