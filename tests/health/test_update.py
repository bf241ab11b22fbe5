"""Updates end to end: deploy, simulated boots, the verdict, rollbacks.

Backends: file (the documented pointer file) and grub (the shipped GRUB
scripts under grub-emu, see tests/lib/grub_sim.py)."""

import warnings

import pytest

import healthlib as hl
from healthlib import bootsim

BACKENDS = ["file", "grub", "uboot"]


def note_simulator(sr, r):
    if sr.backend == "grub" and r.decision.simulator != "grub-emu":
        warnings.warn("grub decisions taken by the grub-editenv fallback, not by GRUB itself")


@pytest.mark.parametrize("backend", BACKENDS)
def test_healthy_update(fresh, backend):
    sr = fresh(backend)
    st = sr.status()
    assert (st["booted"], st["primary"]) == ("a", "a"), st
    assert sr.slot("a", st)["state"] == "good", st
    assert st["health"]["verdict"] == "green", st

    sr.deploy("os/v2")
    st = sr.status()
    b = sr.slot("b", st)
    assert st["primary"] == "b" and b["state"] == "trial" and b["tries_left"] == 3, st

    r = sr.boot()
    note_simulator(sr, r)
    assert r.slot == "b", r
    # the counter was saved before the kernel ran
    assert r.decision.after["ABDEPLOY_B_TRIES"] == "2", r.decision
    assert r.returncode == hl.EXIT_OK, r
    assert "GREEN" in r.stdout, r

    st = sr.status()
    assert (st["booted"], st["primary"]) == ("b", "b"), st
    assert sr.slot("b", st)["state"] == "good", st
    assert sr.slot("b", st)["version"] == "2.0", st
    assert sr.slot("a", st)["state"] == "good", st
    assert st["health"]["verdict"] == "green" and st["health"]["failed_hooks"] == [], st
    assert st["health"]["at"], st
    assert st["last_rollback"] is None, st
    ptr = sr.pointer()
    assert (ptr["ABDEPLOY_PRIMARY"], ptr["ABDEPLOY_B_STATE"]) == ("b", "good"), ptr

    v = sr.verdict()
    assert (v["slot"], v["version"], v["verdict"], v["action"]) == ("b", "2.0", "green", "marked-good"), v
    assert v["trial"] is True, v
    assert "Boot status is GREEN" in sr.motd()

    # a normal boot afterwards: same slot, nothing to do
    r = sr.boot()
    assert (r.slot, r.returncode) == ("b", 0), r
    assert sr.verdict()["action"] == "none"
    assert sr.verdict()["trial"] is False


@pytest.mark.parametrize("backend", BACKENDS)
def test_required_hook_fails_until_rollback(fresh, backend):
    """v2 ships a required hook that fails: every trial boot is red, the
    boot after the last try lands on v1, the rollback is recorded."""
    sr = fresh(backend)
    sr.deploy("os/v2-fail")
    tries = sr.slot("b")["tries_left"]
    assert tries == 3

    b_boots = []
    landed = None
    for _ in range(tries + 3):
        r = sr.boot()
        note_simulator(sr, r)
        if r.slot == "a":
            landed = r
            break
        assert r.returncode == hl.EXIT_RED, r
        v = sr.verdict()
        assert v["verdict"] == "red" and v["failed_hooks"] == [hl.FAIL_HOOK], v
        assert hl.FAIL_HOOK in r.output, r
        b_boots.append((r, v))
    assert landed is not None, "never fell back to slot a"
    assert len(b_boots) == tries, "slot b booted %d times with %d tries" % (len(b_boots), tries)
    # while tries remain, the health check asks for a reboot
    for r, v in b_boots[:-1]:
        assert v["action"] == "reboot", v
        assert "Would reboot" in r.stdout, r
    # the last try either rolls back itself or leaves it to the bootloader
    assert b_boots[-1][1]["action"] in ("rollback", "reboot"), b_boots[-1][1]
    hook = sr.hook_result(hl.FAIL_HOOK, b_boots[-1][1])
    assert (hook["result"], hook["exit_status"]) == ("fail", 1), hook
    assert "app service did not start" in hook["output_tail"], hook

    assert landed.returncode == hl.EXIT_OK, landed
    st = sr.status()
    assert (st["booted"], st["primary"]) == ("a", "a"), st
    assert sr.slot("a", st)["state"] == "good", st
    assert sr.slot("b", st)["state"] == "bad", st
    rb = st["last_rollback"]
    assert rb is not None, st
    assert (rb["from_version"], rb["to_version"], rb["from_slot"], rb["to_slot"]) == \
        ("2.0", "1.0", "b", "a"), rb
    assert hl.FAIL_HOOK in rb["reason"], rb
    assert rb["at"], rb
    rollbacks = hl.events_of(sr.history(), "rollback")
    assert len(rollbacks) == 1, rollbacks
    # what a user logging in to the rolled-back system sees (on a device
    # /run is a tmpfs: the MOTD of the boot that rolled back is gone)
    motd = sr.motd()
    assert "ROLLED BACK from 2.0 to 1.0" in motd, motd
    assert hl.FAIL_HOOK in motd, motd

    # slot b is never tried again; the MOTD keeps telling until a new update
    for _ in range(2):
        r = sr.boot()
        assert (r.slot, r.returncode) == ("a", 0), r
        assert "ROLLED BACK from 2.0 to 1.0" in sr.motd()
    sr.deploy("os/v2")
    r = sr.boot()
    assert (r.slot, r.returncode) == ("b", 0), r
    assert sr.motd() == "Boot status is GREEN\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_never_boots(fresh, backend):
    """v2's kernel panics before user space on every try: the bootloader
    falls back on its own and the next health check records it."""
    sr = fresh(backend)
    sr.deploy("os/v2")
    for left in (2, 1, 0):
        r = sr.boot(reach_userspace=False)
        note_simulator(sr, r)
        assert r.slot == "b", r
        assert r.decision.after["ABDEPLOY_B_TRIES"] == str(left), r.decision
    st = sr.status()
    assert st["primary"] == "b" and sr.slot("b", st)["tries_left"] == 0, st

    r = sr.boot()
    assert r.slot == "a", r
    assert r.decision.reason in ("fallback", ""), r.decision
    assert r.returncode == hl.EXIT_OK, r
    st = sr.status()
    assert (st["booted"], st["primary"]) == ("a", "a"), st
    assert sr.slot("a", st)["state"] == "good", st
    assert sr.slot("b", st)["state"] == "bad", st
    rb = st["last_rollback"]
    assert rb is not None and rb["kind"] == "fallback", st
    assert (rb["from_version"], rb["to_version"], rb["from_slot"], rb["to_slot"]) == \
        ("2.0", "1.0", "b", "a"), rb
    assert rb["reason"], rb
    assert "ROLLED BACK from 2.0 to 1.0" in sr.motd()
    ev = hl.events_of(sr.history(), "rollback")
    assert len(ev) == 1 and ev[0]["kind"] == "fallback", ev

    r = sr.boot()
    assert (r.slot, r.returncode) == ("a", 0), r
    assert sr.status()["last_rollback"]["kind"] == "fallback"
    assert len(hl.events_of(sr.history(), "rollback")) == 1


def test_pointer_decision_matches_docs():
    """The simulator's own decision table (docs/internals.md)."""
    def ptr(primary, a, at, b, bt):
        return {"ABDEPLOY_PRIMARY": primary, "ABDEPLOY_A_STATE": a, "ABDEPLOY_A_TRIES": at,
                "ABDEPLOY_B_STATE": b, "ABDEPLOY_B_TRIES": bt}
    assert bootsim.decide(ptr("b", "good", "0", "trial", "3"))[:2] == ("b", "primary")
    assert bootsim.decide(ptr("b", "good", "0", "trial", "3"))[2] == {"ABDEPLOY_B_TRIES": "2"}
    assert bootsim.decide(ptr("b", "good", "0", "trial", "0"))[:2] == ("a", "fallback")
    assert bootsim.decide(ptr("b", "good", "0", "bad", "0"))[:2] == ("a", "fallback")
    assert bootsim.decide(ptr("b", "bad", "0", "bad", "0")) == ("b", "last-resort", {})
    assert bootsim.decide(ptr("a", "good", "0", "trial", "2")) == ("a", "primary", {})
    assert bootsim.decide(ptr("", "none", "0", "none", "0"))[:2] == ("a", "last-resort")
