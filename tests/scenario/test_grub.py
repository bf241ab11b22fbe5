"""The grub backend: the boot pointer lives in SYSROOT/boot/grub/grubenv
and is read back with grub-editenv."""

import json
import os

import scenariolib as sl


def _grub_sysroot(sysroots):
    sr = sysroots.create(bootloader="grub")
    env = sr.pointer_path
    # an installer's own variable in the block must survive abdeploy's writes
    if not os.path.exists(env):
        os.makedirs(os.path.dirname(env), exist_ok=True)
        sl.run(["grub-editenv", env, "create"])
    sl.run(["grub-editenv", env, "set", "saved_entry=keep-me"])
    return sr


def test_grub_init_records_backend(sysroots):
    sr = sysroots.create(bootloader="grub")
    with open(sr.p("abdeploy", "state", "sysroot.json")) as f:
        assert json.load(f).get("bootloader") == "grub"
    st = sr.status()
    assert st["primary"] is None


def test_grub_deploy_writes_env_block(sysroots, server, published):
    sr = _grub_sysroot(sysroots)
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    st = sr.status()
    slot = st["primary"]
    assert slot in ("a", "b")
    assert os.path.getsize(sr.pointer_path) == 1024
    env = sr.pointer()          # grub-editenv SYSROOT/boot/grub/grubenv list
    assert env.get("ABDEPLOY_PRIMARY") == slot, env
    assert env.get("ABDEPLOY_%s_STATE" % slot.upper()) == "trial", env
    assert env.get("ABDEPLOY_%s_TRIES" % slot.upper()) == "3", env
    assert env.get("saved_entry") == "keep-me", env
    assert not os.path.exists(sr.p("boot", "abdeploy", "pointer"))
    assert sl.slot_problems(sr, slot, published.v1) == []


def test_grub_status_follows_env_block(sysroots, server):
    # the bootloader decrements the counter before loading the kernel
    sr = _grub_sysroot(sysroots)
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    slot = sr.status()["primary"]
    sl.run(["grub-editenv", sr.pointer_path, "set", "ABDEPLOY_%s_TRIES=1" % slot.upper()])
    s = sr.slot_status(slot)
    assert s["state"] == "trial" and s["tries_left"] == 1, s


def test_grub_stage_activate_rollback(sysroots, server, published):
    sr = _grub_sysroot(sysroots)
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    good = sr.status()["primary"]
    sr.bless(good)                       # via grub-editenv set
    sr.set_booted(good)
    sr.ok("stage", "--from=" + server.url, "os/v2")
    env = sr.pointer()
    assert env["ABDEPLOY_PRIMARY"] == good, env
    sr.ok("activate", "--tries=2")
    new = sl.other(good)
    env = sr.pointer()
    assert env["ABDEPLOY_PRIMARY"] == new, env
    assert env["ABDEPLOY_%s_STATE" % new.upper()] == "trial", env
    assert env["ABDEPLOY_%s_TRIES" % new.upper()] == "2", env
    assert env.get("saved_entry") == "keep-me", env
    sr.ok("rollback")
    env = sr.pointer()
    assert env["ABDEPLOY_PRIMARY"] == good, env
    assert env["ABDEPLOY_%s_STATE" % good.upper()] == "good", env
    assert env.get("saved_entry") == "keep-me", env
    assert os.path.getsize(sr.pointer_path) == 1024
    st = sr.status()
    assert st["primary"] == good and sr.slot_status(good, st)["state"] == "good"


def test_grub_bad_signature_leaves_env_block(sysroots, server):
    sr = _grub_sysroot(sysroots)
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    before = sr.snapshot()
    r = sr.run("stage", "--from=" + server.url, "os/evil")
    assert r.returncode == sl.EXIT_VERIFY, r.describe()
    after = sr.snapshot()
    assert after == before, sl.diff_snapshots(before, after)
