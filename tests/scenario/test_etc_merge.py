"""/etc three-way merge at staging time.

Set-up (once for the module): v1 deployed and running; the operator edits
the running slot's etc/ (modifies app.conf, deletes deleteme.conf, adds
operator-added.conf); then v2 is staged into the other slot.  v2 changes
the defaults of app.conf, motd and updated.conf and adds newdefault.conf.
"""

import os
import stat

import pytest

import scenariolib as sl

OPERATOR_APP_CONF = b"setting=operator\n"
OPERATOR_ADDED = b"added=by-operator\n"


@pytest.fixture(scope="module")
def merged(workdir, abdeploy_bin, home, keyfiles, server, published):
    f = sl.SysrootFactory(os.path.join(workdir, "sysroots", "etc-merge"),
                          abdeploy_bin, home, keyfiles)
    sr = f.create()
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    booted = sr.status()["primary"]
    sr.set_booted(booted)
    etc = os.path.join(sr.slot_dir(booted), "etc")
    with open(os.path.join(etc, "app.conf"), "wb") as fh:
        fh.write(OPERATOR_APP_CONF)
    os.unlink(os.path.join(etc, "deleteme.conf"))
    with open(os.path.join(etc, "operator-added.conf"), "wb") as fh:
        fh.write(OPERATOR_ADDED)
    os.symlink("../usr/share/zoneinfo/UTC", os.path.join(etc, "localtime"))
    os.chmod(os.path.join(etc, "sub", "nested.conf"), 0o600)
    os.makedirs(os.path.join(etc, "operator.d"))
    with open(os.path.join(etc, "operator.d", "10-site.conf"), "wb") as fh:
        fh.write(OPERATOR_ADDED)
    running_etc = sl.tree_entries(etc, "etc")
    sr.ok("stage", "--from=" + server.url, "os/v2")
    new = sl.other(booted)
    st = sr.status()
    assert st["booted"] == booted and sr.slot_status(new, st)["state"] == "staged", st

    class M:
        pass
    m = M()
    m.sr, m.booted, m.new = sr, booted, new
    m.running_etc_before = running_etc
    m.new_etc = os.path.join(sr.slot_dir(new), "etc")
    m.v1, m.v2 = published.v1, published.v2
    yield m
    f.finish()


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


def test_operator_modified_file_keeps_change(merged):
    assert _read(os.path.join(merged.new_etc, "app.conf")) == OPERATOR_APP_CONF


def test_new_default_appears(merged):
    assert _read(os.path.join(merged.new_etc, "newdefault.conf")) == \
        merged.v2.read("usr/etc/newdefault.conf")


def test_operator_deleted_file_stays_deleted(merged):
    assert not os.path.lexists(os.path.join(merged.new_etc, "deleteme.conf"))


def test_unchanged_default_is_updated(merged):
    for name in ("updated.conf", "motd"):
        got = _read(os.path.join(merged.new_etc, name))
        assert got == merged.v2.read("usr/etc/" + name), "%s: %r" % (name, got)
        assert got != merged.v1.read("usr/etc/" + name)


def test_operator_added_file_is_kept(merged):
    assert _read(os.path.join(merged.new_etc, "operator-added.conf")) == OPERATOR_ADDED


def test_operator_added_symlink_and_directory_are_kept(merged):
    assert os.readlink(os.path.join(merged.new_etc, "localtime")) == "../usr/share/zoneinfo/UTC"
    assert _read(os.path.join(merged.new_etc, "operator.d", "10-site.conf")) == OPERATOR_ADDED


def test_operator_mode_change_is_kept(merged):
    st = os.lstat(os.path.join(merged.new_etc, "sub", "nested.conf"))
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)


def test_untouched_defaults_present(merged):
    for name in ("unchanged.conf", "sub/nested.conf"):
        assert _read(os.path.join(merged.new_etc, name)) == merged.v2.read("usr/etc/" + name)
    st = os.lstat(os.path.join(merged.new_etc, "unchanged.conf"))
    assert stat.S_IMODE(st.st_mode) == 0o644, oct(st.st_mode)


def test_new_slot_usr_etc_is_pristine_image(merged):
    usr_etc = os.path.join(merged.sr.slot_dir(merged.new), "usr", "etc")
    assert sl.compare_tree(usr_etc, os.path.join(merged.v2.tree, "usr", "etc")) == []


def test_running_slot_etc_untouched(merged):
    etc = os.path.join(merged.sr.slot_dir(merged.booted), "etc")
    after = sl.tree_entries(etc, "etc")
    assert after == merged.running_etc_before, sl.diff_snapshots(merged.running_etc_before, after)


def test_merged_etc_files_are_copies(merged):
    for d, _, files in os.walk(merged.new_etc):
        for name in files:
            p = os.path.join(d, name)
            if not os.path.islink(p):
                assert os.lstat(p).st_nlink == 1, "%s is hardlinked" % p
