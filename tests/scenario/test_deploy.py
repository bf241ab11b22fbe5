"""deploy / stage / activate / status against a real HTTP server and a
local repo path."""

import json
import os
import re

import pytest

import scenariolib as sl


def _from(server):
    return "--from=" + server.url


def _first_deploy(sr, server, ref="os/v1"):
    r = sr.ok("deploy", _from(server) if server else "--from=" + sr.local_source, ref)
    st = sr.status()
    assert st["primary"] in ("a", "b"), st
    return st["primary"], r


def test_deploy_v1_from_http(sysroot, server, published):
    slot, r = _first_deploy(sysroot, server)
    v1 = published.v1
    assert "\r" not in r.output and "\x1b[" not in r.output, \
        "progress noise although stdout is not a TTY:\n" + r.describe()

    st = sysroot.status()
    assert st["booted"] is None
    s = sysroot.slot_status(slot, st)
    assert s["commit"] == v1.commit
    assert s["version"] == "1.0"
    assert s["state"] == "trial"
    assert s["tries_left"] == 3
    assert s["primary"] is True and s["booted"] is False
    o = sysroot.slot_status(sl.other(slot), st)
    assert o["state"] == "empty" and o["primary"] is False

    assert sl.slot_problems(sysroot, slot, v1) == []
    with open(os.path.join(sysroot.slot_dir(slot), "etc", "motd"), "rb") as f:
        assert f.read() == v1.read("usr/etc/motd")

    ptr = sysroot.pointer()
    assert ptr.get("ABDEPLOY_PRIMARY") == slot, ptr
    assert ptr.get("ABDEPLOY_%s_STATE" % slot.upper()) == "trial", ptr
    assert ptr.get("ABDEPLOY_%s_TRIES" % slot.upper()) == "3", ptr

    with open(sysroot.p("abdeploy", "state", "slot-%s.json" % slot)) as f:
        rec = json.load(f)
    assert rec.get("format") == 2 and rec.get("commit") == v1.commit and rec.get("version") == "1.0", rec
    assert not os.path.exists(sysroot.p("abdeploy", "state", "slot-%s.json" % sl.other(slot)))

    refs = sysroot.refs()
    assert refs.get("abdeploy/slot/%s" % slot) == v1.commit, refs


def test_progress_only_on_a_tty(sysroot, server):
    rc, out = sysroot.run_tty("stage", "--from=" + server.url, "os/v1")
    assert rc == 0, out
    text = out.decode(errors="replace")
    assert "\r" in text.replace("\r\n", "\n"), "no progress line on a TTY: %r" % text
    assert re.search(r"object", text, re.I) and re.search(r"\d", text) and "/s" in text, \
        "progress line lacks objects, bytes or rate: %r" % text
    # the same command without a TTY: no progress noise
    plain = sysroot.run("stage", "--from=" + server.url, "os/v2").output
    assert "\r" not in plain and "/s" not in plain, plain


def test_status_reports_booted_slot(sysroot, server):
    slot, _ = _first_deploy(sysroot, server)
    sysroot.set_booted(slot)
    st = sysroot.status()
    assert st["booted"] == slot
    assert sysroot.slot_status(slot, st)["booted"] is True
    assert sysroot.slot_status(sl.other(slot), st)["booted"] is False


def test_status_human_table(sysroot, server):
    _first_deploy(sysroot, server)
    r = sysroot.ok("status")
    assert "1.0" in r.stdout and "trial" in r.stdout, r.describe()
    with pytest.raises(ValueError):
        json.loads(r.stdout)


def test_redeploy_same_commit_is_nothing_to_do(sysroot, server, published):
    _first_deploy(sysroot, server)
    before = sysroot.snapshot()
    r = sysroot.expect(sl.EXIT_NOTHING, "deploy", _from(server), "os/v1")
    assert r.output.strip(), "exit 5 without a message"
    sysroot.expect(sl.EXIT_NOTHING, "deploy", _from(server), published.v1.commit)
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)


def test_restage_same_commit_is_nothing_to_do(sysroot, server):
    slot, _ = _first_deploy(sysroot, server)
    sysroot.ok("stage", _from(server), "os/v2")
    before = sysroot.snapshot()
    sysroot.expect(sl.EXIT_NOTHING, "stage", _from(server), "os/v2")
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)


def test_stage_without_activate(sysroot, server, published):
    slot, _ = _first_deploy(sysroot, server)
    ptr_before = sysroot.pointer()
    r = sysroot.ok("stage", _from(server), "os/v2")
    assert "\r" not in r.output, "progress noise although stdout is not a TTY"
    st = sysroot.status()
    assert st["primary"] == slot, "stage changed what boots next: %s" % st
    t = sysroot.slot_status(sl.other(slot), st)
    assert t["state"] == "staged" and t["commit"] == published.v2.commit and t["version"] == "2.0", t
    assert t["primary"] is False
    assert sysroot.pointer()["ABDEPLOY_PRIMARY"] == ptr_before["ABDEPLOY_PRIMARY"]
    assert sl.slot_problems(sysroot, sl.other(slot), published.v2) == []
    assert sl.slot_problems(sysroot, slot, published.v1) == []


def test_stage_into_fresh_sysroot_then_activate(sysroot, server, published):
    sysroot.ok("stage", _from(server), "os/v1")
    st = sysroot.status()
    assert st["primary"] is None, st
    staged = [s for s in st["slots"] if s["state"] == "staged"]
    assert len(staged) == 1 and staged[0]["commit"] == published.v1.commit, st
    sysroot.ok("activate")
    st = sysroot.status()
    assert st["primary"] == staged[0]["name"]
    s = sysroot.slot_status(st["primary"], st)
    assert s["state"] == "trial" and s["tries_left"] == 3, s


@pytest.mark.parametrize("tries", [1, 5])
def test_activate_with_tries(sysroot, server, published, tries):
    slot, _ = _first_deploy(sysroot, server)
    sysroot.ok("stage", _from(server), "os/v2")
    sysroot.ok("activate", "--tries=%d" % tries)
    st = sysroot.status()
    t = sl.other(slot)
    assert st["primary"] == t, st
    s = sysroot.slot_status(t, st)
    assert s["state"] == "trial" and s["tries_left"] == tries, s
    assert sysroot.pointer()["ABDEPLOY_%s_TRIES" % t.upper()] == str(tries)


def test_activate_with_nothing_staged_fails(sysroot, server):
    _first_deploy(sysroot, server)
    before = sysroot.snapshot()
    r = sysroot.run("activate")
    assert r.returncode in (sl.EXIT_ERROR, sl.EXIT_NOTHING), r.describe()
    assert r.output.strip()
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)


def test_activate_rejects_out_of_range_tries(sysroot, server):
    _first_deploy(sysroot, server)
    sysroot.ok("stage", _from(server), "os/v2")
    before = sysroot.snapshot()
    r = sysroot.run("activate", "--tries=42")
    assert r.returncode != 0, r.describe()
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)


def test_deploy_v2_over_v1(sysroot, server, published):
    slot, _ = _first_deploy(sysroot, server)
    v1_snap = sysroot.slot_snapshot(slot)
    sysroot.ok("deploy", _from(server), "os/stable")
    st = sysroot.status()
    t = sl.other(slot)
    assert st["primary"] == t
    s = sysroot.slot_status(t, st)
    assert s["commit"] == published.v2.commit and s["version"] == "2.0" and s["state"] == "trial", s
    assert sysroot.slot_status(slot, st)["commit"] == published.v1.commit
    assert sl.slot_problems(sysroot, t, published.v2) == []
    assert sl.slot_problems(sysroot, slot, published.v1) == []
    assert sysroot.slot_snapshot(slot) == v1_snap
    with open(os.path.join(sysroot.boot_dir(t), "kver")) as f:
        assert f.read().strip() == sl.KVER2


def test_deploy_by_commit_checksum(sysroot, server, published):
    sysroot.ok("deploy", _from(server), published.v1.commit)
    st = sysroot.status()
    assert sysroot.slot_status(st["primary"], st)["commit"] == published.v1.commit


def test_offline_local_path_source(sysroot, published):
    # offline media: the publisher's repo as a plain directory, no server
    sysroot.local_source = published.path
    slot, _ = _first_deploy(sysroot, None)
    assert sysroot.slot_status(slot)["commit"] == published.v1.commit
    assert sl.slot_problems(sysroot, slot, published.v1) == []
    sysroot.ok("stage", "--from=" + published.path, "os/v2")
    t = sysroot.slot_status(sl.other(slot))
    assert t["state"] == "staged" and t["commit"] == published.v2.commit, t
    assert sl.slot_problems(sysroot, sl.other(slot), published.v2) == []


def test_armored_trusted_key(sysroots, server, published):
    sr = sysroots.create(keys=("trusted.asc",))
    assert os.listdir(sr.trusted_dir) == ["publisher.asc"]
    slot, _ = _first_deploy(sr, server)
    assert sr.slot_status(slot)["commit"] == published.v1.commit


def test_kernel_installed(sysroot, server, published):
    slot, _ = _first_deploy(sysroot, server)
    bd = sysroot.boot_dir(slot)
    with open(os.path.join(bd, "vmlinuz"), "rb") as f:
        assert f.read() == published.v1.kernel
    with open(os.path.join(bd, "initramfs.img"), "rb") as f:
        assert f.read() == published.v1.initramfs
    with open(os.path.join(bd, "kver")) as f:
        assert f.read().strip() == sl.KVER1


def _object_inode(sr, slot, path):
    out = sl.run(["ostree", "--repo=" + sr.repo, "ls", "-C",
                  "abdeploy/slot/" + slot, path]).stdout.decode()
    checksum = out.split()[4]
    obj = os.path.join(sr.repo, "objects", checksum[:2], checksum[2:] + ".file")
    return os.stat(obj).st_ino


def test_usr_hardlinked_etc_copied(sysroot, server, published):
    slot, _ = _first_deploy(sysroot, server)
    sysroot.ok("stage", _from(server), "os/v2")
    root = sysroot.slot_dir(slot)
    for rel in ("usr/bin/hello", "usr/bin/app", "usr/bin/shared-tool", "usr/etc/motd",
                "usr/lib/modules/%s/vmlinuz" % sl.KVER1):
        st = os.lstat(os.path.join(root, rel))
        assert st.st_nlink > 1, "%s is not hardlinked (nlink %d)" % (rel, st.st_nlink)
        assert st.st_ino == _object_inode(sysroot, slot, "/" + rel), \
            "%s does not share its inode with the repo object" % rel
    # the unchanged file is one inode for both slots and the repo
    a = os.stat(os.path.join(root, "usr/bin/shared-tool"))
    b = os.stat(os.path.join(sysroot.slot_dir(sl.other(slot)), "usr/bin/shared-tool"))
    assert a.st_ino == b.st_ino and a.st_nlink >= 3
    for s in (slot, sl.other(slot)):
        etc = os.path.join(sysroot.slot_dir(s), "etc")
        files = [os.path.join(d, f) for d, _, fs in os.walk(etc) for f in fs]
        assert len(files) >= 5, files
        for f in files:
            st = os.lstat(f)
            if os.path.islink(f):
                continue
            assert st.st_nlink == 1, "%s is hardlinked (nlink %d), must be a copy" % (f, st.st_nlink)
    # writing into a slot's etc must not touch the repo (fsck runs at teardown)
    with open(os.path.join(root, "etc", "motd"), "ab") as f:
        f.write(b"local change\n")


def test_stage_never_writes_booted_slot(sysroot, server, published):
    slot, _ = _first_deploy(sysroot, server)
    sysroot.set_booted(slot)
    snap = sysroot.slot_snapshot(slot)
    with open(os.path.join(sysroot.boot_dir(slot), "vmlinuz"), "rb") as f:
        kernel = f.read()
    kstat = os.stat(os.path.join(sysroot.boot_dir(slot), "vmlinuz"))
    sysroot.ok("stage", _from(server), "os/v2")
    assert sysroot.slot_status(sl.other(slot))["state"] == "staged"
    sysroot.ok("activate")
    after = sysroot.slot_snapshot(slot)
    assert after == snap, "booted slot changed:\n" + sl.diff_snapshots(snap, after)
    k2 = os.stat(os.path.join(sysroot.boot_dir(slot), "vmlinuz"))
    assert (k2.st_ino, k2.st_mtime_ns) == (kstat.st_ino, kstat.st_mtime_ns)
    with open(os.path.join(sysroot.boot_dir(slot), "vmlinuz"), "rb") as f:
        assert f.read() == kernel


def test_stage_targets_slot_that_is_not_booted(sysroot, server, published):
    # v2 was activated but the device still runs v1: the inactive slot is
    # the one that is not booted, even though it is the primary
    slot, _ = _first_deploy(sysroot, server)
    sysroot.ok("deploy", _from(server), "os/v2")
    sysroot.bless(slot)
    sysroot.set_booted(slot)
    st = sysroot.status()
    assert st["primary"] == sl.other(slot) and st["booted"] == slot, st
    snap = sysroot.slot_snapshot(slot)
    sysroot.ok("stage", _from(server), "os/v3")
    after = sysroot.slot_snapshot(slot)
    assert after == snap, "booted slot changed:\n" + sl.diff_snapshots(snap, after)
    st = sysroot.status()
    t = sysroot.slot_status(sl.other(slot), st)
    assert t["commit"] == published.v3.commit and t["state"] == "staged", t
    assert sysroot.slot_status(slot, st)["commit"] == published.v1.commit
    assert sl.slot_problems(sysroot, sl.other(slot), published.v3) == []


def _write_conf(sr, rel, text):
    path = sr.p("etc", "abdeploy", rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_tries_default_from_config(sysroot, server):
    _write_conf(sysroot, "abdeploy.conf", "# trial boots\n[boot]\ntries=2\n")
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    st = sysroot.status()
    assert sysroot.slot_status(st["primary"], st)["tries_left"] == 2
    # conf.d overrides the main file
    _write_conf(sysroot, "conf.d/50-tries.conf", "[boot]\ntries=7\n")
    sysroot.ok("stage", "--from=" + server.url, "os/v2")
    sysroot.ok("activate")
    st = sysroot.status()
    assert sysroot.slot_status(st["primary"], st)["tries_left"] == 7


def test_source_from_config(sysroot, server, published):
    _write_conf(sysroot, "abdeploy.conf", "[update]\nurl=%s\n" % server.url)
    sysroot.ok("deploy", "os/v1")
    st = sysroot.status()
    assert sysroot.slot_status(st["primary"], st)["commit"] == published.v1.commit


def test_pointer_comment_lines_ignored(sysroot, server):
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    st = sysroot.status()
    with open(sysroot.pointer_path) as f:
        lines = f.read().splitlines()
    lines.insert(1, "# edited by hand")
    with open(sysroot.pointer_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    assert sysroot.status() == st
    sysroot.ok("stage", "--from=" + server.url, "os/v2")
    sysroot.ok("activate")
    assert sysroot.status()["primary"] == sl.other(st["primary"])
