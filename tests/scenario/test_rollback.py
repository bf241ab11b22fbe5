"""abdeploy rollback.

A manual rollback toggles (issue 16, point 6), as `rpm-ostree rollback`
does: it changes only which slot boots next. The slot it leaves stays the
previous deployment (never marked bad: only a red verdict or mark-bad does
that), a trial slot stays on trial, and a second rollback returns to the
start, on every bootloader backend."""

import os

import pytest

import scenariolib as sl


def _v1_good_v2_trial(sr, server):
    """v1 deployed and blessed good (as a green boot would), then v2
    deployed into the other slot.  Returns the v1 slot."""
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    slot = sr.status()["primary"]
    sr.bless(slot)
    assert sr.slot_status(slot)["state"] == "good"
    sr.ok("deploy", "--from=" + server.url, "os/v2")
    assert sr.status()["primary"] == sl.other(slot)
    return slot


def test_rollback_with_nothing_on_fresh_sysroot(sysroot):
    before = sysroot.snapshot()
    r = sysroot.expect(sl.EXIT_NOTHING, "rollback")
    assert r.output.strip(), "exit 5 without a message"
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)


def test_rollback_with_single_deployment(sysroot, server):
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    st = sysroot.status()
    before = sysroot.snapshot()
    r = sysroot.expect(sl.EXIT_NOTHING, "rollback")
    assert r.output.strip(), "exit 5 without a message"
    assert sysroot.status() == st
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)


def test_rollback_to_good_slot(sysroot, server, published):
    good = _v1_good_v2_trial(sysroot, server)
    slots_before = sl.tree_entries(sysroot.slots_dir, "slots")
    sysroot.ok("rollback")
    st = sysroot.status()
    assert st["primary"] == good, st
    s = sysroot.slot_status(good, st)
    assert s["state"] == "good" and s["commit"] == published.v1.commit, s
    assert sysroot.pointer()["ABDEPLOY_PRIMARY"] == good
    # rollback flips the pointer only; it does not touch the slot trees
    assert sl.tree_entries(sysroot.slots_dir, "slots") == slots_before


def test_rollback_after_booting_new_slot(sysroot, server, published):
    good = _v1_good_v2_trial(sysroot, server)
    sysroot.set_booted(sl.other(good))      # rebooted into v2, operator wants v1 back
    sysroot.ok("rollback")
    st = sysroot.status()
    assert st["primary"] == good and st["booted"] == sl.other(good), st
    assert sysroot.slot_status(good, st)["state"] == "good"


def test_rollback_to_booted_trial_slot(sysroot, server, published):
    # v1 runs (booted, still in trial), v2 activated for the next boot: the
    # running slot counts as previously booted, rollback goes back to it and
    # leaves its trial to the health check (issue 16: a rollback is no verdict)
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    slot = sysroot.status()["primary"]
    sysroot.set_booted(slot)
    sysroot.ok("deploy", "--from=" + server.url, "os/v2")
    sysroot.ok("rollback")
    st = sysroot.status()
    assert st["primary"] == slot, st
    s = sysroot.slot_status(slot, st)
    assert s["state"] == "trial" and s["tries_left"] == 3, st
    assert sysroot.slot_status(sl.other(slot), st)["state"] == "trial", st


def test_rollback_refuses_never_booted_slot(sysroot, server):
    # the other slot only holds a staged (never activated, never booted)
    # deployment: nothing to roll back to
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    slot = sysroot.status()["primary"]
    sysroot.bless(slot)
    sysroot.ok("stage", "--from=" + server.url, "os/v2")
    before = sysroot.snapshot()
    sysroot.expect(sl.EXIT_NOTHING, "rollback")
    assert sysroot.status()["primary"] == slot
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)


# --------------------------------------------------------------------------
# Rollback toggles (issue 16, point 6), on every backend that runs here


def _file(sysroots):
    return sysroots.create()


def _grub(sysroots):
    return sysroots.create(bootloader="grub")


def _custom(sysroots):
    from test_backends import custom_sysroot
    return custom_sysroot(sysroots)[0]


def _sdboot(sysroots):
    from test_sdboot import make
    return make(sysroots)


UBOOT_ENV_SIZE = 0x4000


def _uboot(sysroots):
    if os.environ.get("ABDEPLOY_HAVE_UBOOT") == "0":
        pytest.skip("built without U-Boot support")
    sr = sysroots.create(bootloader="uboot", init=False)
    os.makedirs(sr.p("etc"), exist_ok=True)
    os.makedirs(sr.p("boot", "uboot"), exist_ok=True)
    with open(sr.p("etc", "fw_env.config"), "w") as f:
        for n in (0, 1):
            f.write("%s 0x0 0x%x\n" % (sr.p("boot", "uboot", "env.%d" % n), UBOOT_ENV_SIZE))
    with open(sr.p("etc", "u-boot-initial-env"), "w") as f:
        f.write("bootcmd=run distro_bootcmd\n")
    sr.ok("init", "--os=" + sl.OS_NAME, "--bootloader=uboot")
    sysroots.install_keys(sr, ("trusted.gpg",))
    return sr


BACKENDS = {"file": _file, "grub": _grub, "uboot": _uboot, "custom": _custom,
            "systemd-boot": _sdboot}


def _slots(st):
    """(primary, ((name, state, tries_left, commit) per slot))."""
    return st["primary"], tuple((s["name"], s["state"], s["tries_left"], s["commit"])
                                for s in st["slots"])


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_rollback_twice_returns_to_start(sysroots, server, published, backend):
    """v1 good and booted in a, v2 activated in b and never booted: the
    first rollback makes a primary and leaves b on trial with its tries
    (not bad), the second one returns to exactly the start."""
    sr = BACKENDS[backend](sysroots)
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    sr.ok("mark-good", "a")
    sr.set_booted("a")
    sr.ok("deploy", "--from=" + server.url, "os/v2")
    start = sr.status()
    assert _slots(start)[0] == "b" and sr.slot_status("b", start)["state"] == "trial", start
    tries = sr.slot_status("b", start)["tries_left"]
    assert tries >= 1, start
    assert start["next_boot"] == {"slot": "b", "version": "2.0", "kind": "trial",
                                  "tries": tries}, start
    assert "Next boot: reboot to start 2.0 (slot b, trial, %d tries)\n" % tries \
        in sr.ok("status").stdout

    sr.ok("rollback")
    st = sr.status()
    assert st["primary"] == "a" and sr.slot_status("a", st)["state"] == "good", st
    b = sr.slot_status("b", st)
    assert (b["state"], b["tries_left"]) == ("trial", tries), \
        "the slot a rollback leaves must stay bootable by another rollback: %s" % st
    assert st["last_rollback"]["kind"] == "manual", st
    assert st["next_boot"] == {"slot": "a", "version": "1.0", "kind": "primary",
                               "tries": None}, st
    assert "Next boot: 1.0 (slot a, primary)\n" in sr.ok("status").stdout

    sr.ok("rollback")
    back = sr.status()
    assert _slots(back) == _slots(start), (start, back)
    assert back["next_boot"] == start["next_boot"], back
    assert back["last_rollback"]["from_slot"] == "a", back


def test_rollback_leaves_booted_trial_on_trial(sysroot, server, published):
    """Booted into v2 on trial (one boot counted), the operator rolls back
    to v1: v2 keeps its trial and its tries; a second rollback makes it
    primary again, still on trial (the health check decides, not the
    rollback)."""
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    sysroot.ok("mark-good", "a")
    sysroot.set_booted("a")
    sysroot.ok("deploy", "--from=" + server.url, "os/v2")
    sysroot.set_pointer(ABDEPLOY_B_TRIES="2")       # the bootloader counted a boot
    sysroot.set_booted("b")
    sysroot.ok("rollback")
    st = sysroot.status()
    assert st["primary"] == "a" and sysroot.slot_status("a", st)["state"] == "good", st
    b = sysroot.slot_status("b", st)
    assert (b["state"], b["tries_left"]) == ("trial", 2), st
    sysroot.ok("rollback")
    st = sysroot.status()
    b = sysroot.slot_status("b", st)
    assert st["primary"] == "b" and (b["state"], b["tries_left"]) == ("trial", 2), st
    assert sysroot.slot_status("a", st)["state"] == "good", st


def test_rollback_keeps_a_try_for_a_spent_trial(sysroot, server, published):
    """The booted trial slot on its last try (tries 0) that the operator
    leaves keeps one try, so that another rollback can boot it (systemd-boot
    could not even name a non-primary trial without tries)."""
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    sysroot.ok("mark-good", "a")
    sysroot.set_booted("a")
    sysroot.ok("deploy", "--from=" + server.url, "os/v2")
    sysroot.set_pointer(ABDEPLOY_B_TRIES="0")
    sysroot.set_booted("b")
    sysroot.ok("rollback")
    st = sysroot.status()
    b = sysroot.slot_status("b", st)
    assert st["primary"] == "a" and (b["state"], b["tries_left"]) == ("trial", 1), st


def test_only_mark_bad_makes_the_left_slot_bad(sysroot, server, published):
    """After a rollback the slot left is not bad; mark-bad makes it bad, and
    then no rollback goes back to it."""
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    sysroot.ok("mark-good", "a")
    sysroot.set_booted("a")
    sysroot.ok("deploy", "--from=" + server.url, "os/v2")
    sysroot.ok("rollback")
    assert sysroot.slot_status("b")["state"] == "trial"
    sysroot.ok("mark-bad", "b")
    assert sysroot.slot_status("b")["state"] == "bad"
    sysroot.expect(sl.EXIT_NOTHING, "rollback")
    assert sysroot.status()["primary"] == "a"


def test_status_origin_and_fallback(sysroot, server, published):
    """status shows the origin ([update] url without its credentials, and
    the channel) and, when the primary cannot boot, the fallback the
    bootloader takes (issue 16, point 5)."""
    st = sysroot.status()
    assert st["origin"] == {"url": None, "channel": "stable"} and st["next_boot"] is None, st
    text = sysroot.ok("status").stdout
    assert "Origin: none ([update] url is not set; channel stable)\n" in text, text
    assert "Next boot: nothing is activated (no primary slot)\n" in text, text
    conf = sysroot.p("etc", "abdeploy", "abdeploy.conf")
    with open(conf, "a") as f:
        f.write("\n[update]\nurl=https://user:s3cret@updates.example.com/repo\nchannel=beta\n")
    os.chmod(conf, 0o600)
    st = sysroot.status()
    assert st["origin"] == {"url": "https://updates.example.com/repo", "channel": "beta"}, st
    text = sysroot.ok("status").stdout
    assert "Origin: https://updates.example.com/repo (channel beta)\n" in text, text
    assert "s3cret" not in text and "user" not in text

    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    sysroot.ok("mark-good", "a")
    sysroot.set_booted("a")
    sysroot.ok("deploy", "--from=" + server.url, "os/v2")
    sysroot.set_pointer(ABDEPLOY_B_TRIES="0")      # the bootloader spent b's tries
    st = sysroot.status()
    assert st["next_boot"] == {"slot": "a", "version": "1.0", "kind": "fallback",
                               "tries": None}, st
    assert "Next boot: 1.0 (slot a, fallback: slot b cannot boot)\n" in sysroot.ok("status").stdout
    sysroot.set_booted("b")
    assert "Next boot: reboot to start 1.0 (slot a, fallback: slot b cannot boot)\n" \
        in sysroot.ok("status").stdout
