"""A command that writes migrates the layout-1 sysroot: layout 2, every
state file and the configuration at format 2, a byte-identical copy of the
layout-1 files, the same status; a re-run is a no-op; the migrated sysroot
works (deploy of a new signed commit); the documented downgrade puts the
layout-1 files back."""

import json
import os
import re
import subprocess

import pytest

import migratelib as ml
from migratelib import sl

MIGRATED_LINE = "Migrated sysroot from layout 1 to 2; previous files kept in %s"


def check_migrated(sr, pristine_sr):
    """Layout 2, format 2 everywhere, and the copy of the layout-1 files."""
    assert ml.layout(sr) == "2\n"
    for name in os.listdir(sr.p("abdeploy", "state")):
        if name.startswith("."):
            continue
        assert ml.state_json(sr, name)["format"] == 2, name
    conf = ml.config(sr)
    assert conf.get("abdeploy", "format") == "2"
    text = ml.read(sr, "etc/abdeploy/abdeploy.conf")
    if os.path.exists(pristine_sr.p("etc/abdeploy/abdeploy.conf")):
        original = ml.read(pristine_sr, "etc/abdeploy/abdeploy.conf")
        assert text == "[abdeploy]\nformat=2\n\n" + original, text
    else:
        assert text == "[abdeploy]\nformat=2\n", text
    for rel in ml.KEPT:
        src = pristine_sr.p(rel)
        kept = sr.p(ml.COPY_DIR, rel)
        if not os.path.exists(src):
            assert not os.path.exists(kept), rel
            continue
        assert ml.read(sr, os.path.join(ml.COPY_DIR, rel), "rb") == ml.read(pristine_sr, rel, "rb"), rel
        assert os.stat(kept).st_mode == os.stat(src).st_mode, rel
        if rel.startswith("etc/abdeploy/conf.d/"):
            assert ml.read(sr, rel, "rb") == ml.read(pristine_sr, rel, "rb"), "drop-in changed: " + rel
    kept_state = sorted(os.listdir(sr.p(ml.COPY_DIR, "abdeploy", "state")))
    assert kept_state == sorted(os.listdir(pristine_sr.p("abdeploy", "state")))
    assert not os.path.exists(sr.p("abdeploy", "migration", ".layout-1.tmp"))


def without_format(d):
    return {k: v for k, v in d.items() if k != "format"}


def test_writer_migrates_grub(layout1, pristine):
    fx = layout1()
    sr = fx.grub
    status_before = sr.status()
    r = sr.ok("mark-good")
    assert MIGRATED_LINE % sr.p(ml.COPY_DIR) in r.stderr, r.describe()
    assert r.stderr.count("Migrated") == 1, r.describe()
    check_migrated(sr, pristine.grub)
    # slot a was good already: mark-good changes nothing but the history
    assert sr.status() == status_before
    for name in ml.STATE_FILES:
        if name == "history.json":
            continue
        assert without_format(ml.state_json(sr, name)) == \
            without_format(ml.state_json(pristine.grub, name)), name
    events = json.loads(sr.ok("history", "--json").stdout)
    assert [e["type"] for e in events[:2]] == ["mark-good", "migrate"], events[:3]
    mig = events[1]
    assert mig["from_layout"] == 1 and mig["to_layout"] == 2 and mig["abdeploy_version"] == "0.2.0"
    assert ml.COPY_DIR in mig["reason"]
    old_events = ml.state_json(pristine.grub, "history.json")["events"]
    assert ml.state_json(sr, "history.json")["events"][:len(old_events)] == old_events
    # pointer untouched (format and variables), repo fine, verify passes
    assert sr.pointer() == pristine.grub.pointer()
    sr.fsck()
    ver = json.loads(sr.ok("verify", "--json").stdout)
    assert ver["passed"] is True, ver

    # a re-run has nothing to do and changes nothing
    before = ml.whole(sr, lock=False)
    r = sr.expect(sl.EXIT_NOTHING, "migrate")
    assert "nothing to migrate" in r.stdout and "Migrated" not in r.stderr, r.describe()
    sr.ok("status")
    assert ml.whole(sr, lock=False) == before


def test_migrate_command_file_backend(layout1, pristine):
    fx = layout1()
    sr = fx.file
    status_before = sr.status()
    pointer_before = ml.read(sr, "boot/abdeploy/pointer")
    r = sr.ok("migrate")
    assert MIGRATED_LINE % sr.p(ml.COPY_DIR) in r.stderr, r.describe()
    check_migrated(sr, pristine.file)
    assert sr.status() == status_before
    assert ml.history_types(sr)[0] == "migrate"
    # the file pointer keeps ABDEPLOY_FORMAT=1, byte for byte
    assert ml.read(sr, "boot/abdeploy/pointer") == pointer_before
    # the file sysroot had no abdeploy.conf: the migration made one
    assert not os.path.exists(pristine.file.p("etc/abdeploy/abdeploy.conf"))
    assert ml.read(sr, "etc/abdeploy/abdeploy.conf") == "[abdeploy]\nformat=2\n"
    assert not os.path.exists(sr.p(ml.COPY_DIR, "etc", "abdeploy", "abdeploy.conf"))
    sr.expect(sl.EXIT_NOTHING, "migrate")
    sr.fsck()


def test_deploy_of_a_new_commit_migrates_and_works(layout1, pristine):
    """The writer is a deploy of 3.0 (signed by the fixture's publisher key,
    pulled from the fixture's repo) into the other slot."""
    fx = layout1()
    sr = fx.grub
    r = sr.ok("deploy", "--from=" + fx.repo, fx.info["commits"]["3.0"])
    assert "Migrated sysroot from layout 1 to 2" in r.stderr, r.describe()
    assert ml.layout(sr) == "2\n"
    st = sr.status()
    b = sr.slot_status("b", st)
    assert st["primary"] == "b" and b["state"] == "trial" and b["version"] == "3.0", st
    assert ml.state_json(sr, "slot-b.json")["format"] == 2
    a = sr.slot_status("a", st)
    assert a["version"] == "1.0" and a["state"] == "good", st
    # the copy is still the layout-1 state from before the deploy
    kept = json.loads(ml.read(sr, ml.COPY_DIR + "/abdeploy/state/slot-b.json"))
    assert kept["version"] == "2.0" and kept["format"] == 1
    with open(sr.p("boot", "abdeploy", "b", "kver")) as f:
        assert f.read().strip() == fx.info["kver"]["3.0"]
    # a boot of slot b and its health check, on the migrated sysroot
    sr.set_booted("b")
    sr.ok("health-check", "--no-reboot")
    assert sr.slot_status("b")["state"] == "good"
    types = ml.history_types(sr)
    assert types[:4] == ["verdict", "activate", "deploy", "migrate"], types
    sr.fsck()


def test_migration_refuses_other_writers(layout1):
    """The migration runs under the sysroot lock: a second writer is refused
    with exit 4 while it holds it (here: while another process holds it)."""
    fx = layout1()
    sr = fx.grub
    import fcntl
    with open(sr.lock_path, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        before = ml.whole(sr, lock=False)
        r = sr.run("migrate")
        assert r.returncode == sl.EXIT_LOCKED, r.describe()
        assert ml.whole(sr, lock=False) == before
    assert ml.layout(sr) == "1\n"


def downgrade_script():
    """The shell lines of DOWNGRADE in abdeploy-layout(7), as documented."""
    with open(os.path.join(ml.SRCDIR, "man", "abdeploy-layout.7.scd")) as f:
        page = f.read()
    section = page.split("# DOWNGRADE", 1)[1].split("\n# ", 1)[0]
    m = re.search(r"```\n(.*?)```", section, re.S)
    assert m, "no code block in DOWNGRADE of man/abdeploy-layout.7.scd"
    return m.group(1)


@pytest.mark.parametrize("name", ["grub", "file"])
def test_documented_downgrade_restores_layout1(layout1, pristine, name):
    fx = layout1()
    sr = fx.sysroot(name)
    psr = pristine.sysroot(name)
    status_before = sr.status()
    sr.ok("migrate")
    p = subprocess.run(["sh", "-e", "-c", downgrade_script()], env=dict(sl.clean_env(), S=sr.path),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    # exactly the files abdeploy 0.1.0 wrote
    for rel in ml.KEPT:
        if os.path.exists(psr.p(rel)):
            assert ml.read(sr, rel, "rb") == ml.read(psr, rel, "rb"), rel
        else:
            assert not os.path.exists(sr.p(rel)), rel
    assert sorted(os.listdir(sr.p("abdeploy", "state"))) == sorted(os.listdir(psr.p("abdeploy", "state")))
    assert os.path.isdir(sr.p("abdeploy", "state.layout2"))
    # a layout-1 sysroot again: read as before, and migrated again on demand,
    # with a fresh copy replacing the old one
    assert sr.status() == status_before
    sr.ok("migrate")
    check_migrated(sr, psr)
