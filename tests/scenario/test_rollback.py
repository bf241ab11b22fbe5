"""abdeploy rollback."""

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
    # v1 runs (booted, still in trial), v2 activated for the next boot:
    # the running slot counts as previously booted, rollback goes back to it
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    slot = sysroot.status()["primary"]
    sysroot.set_booted(slot)
    sysroot.ok("deploy", "--from=" + server.url, "os/v2")
    sysroot.ok("rollback")
    st = sysroot.status()
    assert st["primary"] == slot, st
    assert sysroot.slot_status(slot, st)["state"] != "trial", \
        "rollback must be permanent, not a trial: %s" % st


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
