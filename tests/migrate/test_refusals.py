"""Formats this abdeploy does not know are refused, with exit 1, an error
that names the version found and the versions it reads, and nothing on disk
changed; a state file without a format is never taken for format 1."""

import base64
import hashlib
import json
import os

import pytest

import migratelib as ml
from migratelib import sl

READS = "but this abdeploy (0.2.0) reads formats 1 and 2"


def set_json(sr, name, **members):
    path = sr.p("abdeploy", "state", name)
    with open(path) as f:
        d = json.load(f)
    for k, v in members.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    with open(path, "w") as f:
        json.dump(d, f, indent=2)


def write(sr, rel, text):
    with open(sr.p(rel), "w") as f:
        f.write(text)


def assert_refused(sr, args, needle):
    before = ml.whole(sr, lock=False)
    r = sr.run(*args)
    assert r.returncode == sl.EXIT_ERROR, r.describe()
    assert needle in r.stderr, "error does not say %r:\n%s" % (needle, r.describe())
    assert "Migrated" not in r.stderr, r.describe()
    after = ml.whole(sr, lock=False)
    assert after == before, "a refused %s changed the sysroot:\n%s" % (args, sl.diff_snapshots(before, after))
    return r


WRITERS = [("mark-good",), ("rollback",), ("migrate",), ("pin", "--clear")]


@pytest.mark.parametrize("args", WRITERS + [("status", "--json")], ids=lambda a: a[0])
def test_newer_layout_version(layout1, args):
    sr = layout1().grub
    write(sr, "abdeploy/version", "3\n")
    r = assert_refused(sr, args, "abdeploy/version has layout version 3, but this abdeploy (0.2.0) "
                                 "reads layout versions 1 and 2")
    assert "Install an abdeploy release that knows layout version 3" in r.stderr


@pytest.mark.parametrize("args", WRITERS, ids=lambda a: a[0])
@pytest.mark.parametrize("state_file", ["slot-a.json", "history.json", "update.json", "verdict.json"])
def test_newer_state_file_in_layout1(layout1, args, state_file):
    """Before the migration: the writer stops before anything changes, also
    when the command itself would not read that file first."""
    sr = layout1().grub
    set_json(sr, state_file, format=3)
    r = assert_refused(sr, args, "abdeploy/state/%s has format 3, %s" % (state_file, READS))
    assert "Install an abdeploy release that knows format 3" in r.stderr


@pytest.mark.parametrize("args", WRITERS + [("status", "--json"), ("history",)], ids=lambda a: a[0])
def test_newer_state_file_in_layout2(layout1, args):
    sr = layout1().grub
    sr.ok("migrate")
    set_json(sr, "slot-b.json" if args[0] != "history" else "history.json", format=3)
    assert_refused(sr, args, "has format 3, " + READS)


@pytest.mark.parametrize("migrated", [False, True], ids=["layout1", "layout2"])
def test_state_file_without_format_is_not_guessed(layout1, migrated):
    """A state file without a format is damaged (issue 10): never taken for
    format 1 or converted, never blocking status or mark-good, always named
    in a warning by a command that reads it; on layout 1 the migration waits
    and `migrate` refuses it."""
    sr = layout1().grub
    if migrated:
        sr.ok("migrate")
    set_json(sr, "last-rollback.json", format=None)
    damaged = ml.read(sr, "abdeploy/state/last-rollback.json")
    needle = 'abdeploy/state/last-rollback.json has no "format" member'
    r = sr.ok("status", "--json")
    assert "warning: abdeploy/state/last-rollback.json is damaged" in r.stderr, r.describe()
    assert needle in r.stderr and json.loads(r.stdout)["last_rollback"] is None, r.describe()
    r = sr.ok("mark-good")
    assert "Migrated" not in r.stderr, r.describe()
    if not migrated:
        assert "migration of the sysroot to layout 2 waits" in r.stderr, r.describe()
        assert needle in r.stderr, r.describe()
        assert ml.layout(sr) == "1\n"
        assert_refused(sr, ("migrate",), needle)
    assert ml.read(sr, "abdeploy/state/last-rollback.json") == damaged


@pytest.mark.parametrize("args", WRITERS + [("status",)], ids=lambda a: a[0])
def test_newer_config_format(layout1, args):
    sr = layout1().grub
    conf = ml.read(sr, "etc/abdeploy/abdeploy.conf")
    write(sr, "etc/abdeploy/abdeploy.conf", "[abdeploy]\nformat=3\n" + conf)
    r = assert_refused(sr, args, "etc/abdeploy/abdeploy.conf has format 3, " + READS)
    assert "abdeploy.conf(5)" in r.stderr


def test_dropin_disagreeing_with_the_main_file(layout1):
    sr = layout1().grub
    sr.ok("migrate")
    write(sr, "etc/abdeploy/conf.d/60-old.conf", "[abdeploy]\nformat=1\n")
    assert_refused(sr, ("mark-good",), "states [abdeploy] format=1, but etc/abdeploy/abdeploy.conf "
                                       "states format 2")


def rewrite_archive(src, dst, edit):
    with open(src) as f:
        text = f.read()
    body = text.rsplit("\nsha256 ", 1)[0]
    archive = json.loads(body)
    edit(archive)
    body = json.dumps(archive)
    with open(dst, "w") as f:
        f.write("%s\nsha256 %s\n" % (body, hashlib.sha256(body.encode()).hexdigest()))


def test_newer_backup_format_refused(layout1):
    fx = layout1()
    sr = fx.grub
    newer = os.path.join(fx.root, "newer.json")
    rewrite_archive(fx.backup, newer, lambda a: a.update(format=3))
    r = assert_refused(sr, ("restore", "--path=" + newer),
                       "The backup %s has format 3, %s" % (newer, READS))
    assert "Restore it with an abdeploy release that knows format 3" in r.stderr


def test_backup_with_a_newer_state_file_refused(layout1):
    fx = layout1()
    bad = os.path.join(fx.root, "bad.json")

    def edit(a):
        for f in a["files"]:
            if f["path"] == "abdeploy/state/slot-b.json":
                d = json.loads(base64.b64decode(f["data"]))
                d["format"] = 3
                data = json.dumps(d).encode()
                f["data"] = base64.b64encode(data).decode()
                f["sha256"] = hashlib.sha256(data).hexdigest()
                f["size"] = len(data)
    rewrite_archive(fx.backup, bad, edit)
    assert_refused(fx.grub, ("restore", "--path=" + bad),
                   "abdeploy/state/slot-b.json in the backup %s has format 3, %s" % (bad, READS))
