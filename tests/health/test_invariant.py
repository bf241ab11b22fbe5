"""The A/B invariant (issue 11, point 1): never overwrite the last good slot
while the booted slot has no green verdict.

A booted slot on trial comes from a simulated boot whose kernel never
reaches user space (no health check ran) or whose health check was red with
tries left; an unverified one from booting a staged slot by hand.  Every
refusal exits 6 and changes nothing; the way out the message names
(mark-good, a green health check) then lets the same command through.
stage, deploy: here; update, resume: tests/update/test_invariant.py."""

import os

import pytest

import healthlib as hl
import abtest as at

BACKENDS = ["file", "grub", "uboot"]


def trial_boot(sr, ref="os/v2"):
    """v1 good in slot a; REF deployed into b and booted, no verdict yet."""
    sr.deploy(ref)
    r = sr.boot(reach_userspace=False)
    assert r.slot == "b", r
    st = sr.status()
    assert st["booted"] == "b" and sr.slot("b", st)["state"] == "trial", st
    assert sr.slot("a", st)["state"] == "good", st
    return st


def protected(sr, slot="a"):
    """What a refused command must leave alone: the pointer, the slot's
    record, its tree (inode and content of a file), its kernel."""
    def read(*parts):
        with open(sr.p(*parts), "rb") as f:
            return f.read()
    return {
        "pointer": sr.pointer(),
        "record": read("abdeploy", "state", "slot-%s.json" % slot),
        "tree": os.stat(sr.slot_path(slot)).st_ino,
        "hello": read("abdeploy", "slots", slot, "usr", "bin", "hello"),
        "kernel": read("boot", "abdeploy", slot, "vmlinuz"),
        "leftovers": sorted(n for n in os.listdir(sr.p("abdeploy", "slots")) if n.startswith(".")),
    }


def assert_refused(p, state_word):
    assert p.returncode == at.EXIT_REFUSED, p.describe
    err = p.stderr
    assert "slot a" in err and "last good" in err, err
    assert state_word in err, err
    assert "abdeploy mark-good" in err and "health check" in err, err


def stage_args(sr, cmd, ref="os/v2-vendor"):
    return [cmd, "--from=" + sr.published.path, ref]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cmd", ["stage", "deploy"])
def test_refused_on_a_trial_boot_until_mark_good(fresh, backend, cmd):
    sr = fresh(backend)
    trial_boot(sr)
    before = protected(sr)
    p = sr.run(*stage_args(sr, cmd))
    assert_refused(p, "on trial")
    assert protected(sr) == before
    assert sr.slot("b")["state"] == "trial"

    sr.ok("mark-good")
    sr.ok(*stage_args(sr, cmd))
    st = sr.status()
    assert sr.slot("a", st)["commit"] == sr.published.commits["os/v2-vendor"], st


@pytest.mark.parametrize("cmd", ["stage", "deploy"])
def test_refused_until_the_health_check_is_green(fresh, cmd):
    sr = fresh("file")
    trial_boot(sr)
    assert_refused(sr.run(*stage_args(sr, cmd)), "on trial")
    rc, out, err, _ = sr.health_check()     # the health check ran late: green
    assert rc == hl.EXIT_OK, (out, err)
    assert sr.slot("b")["state"] == "good"
    sr.ok(*stage_args(sr, cmd))


def test_red_trial_boot_with_tries_left_is_refused(fresh):
    """A red verdict that will try again keeps the slot on trial: still no
    green verdict, slot a is still the only good one."""
    sr = fresh("file")
    sr.deploy("os/v2-fail")
    r = sr.boot()
    assert r.slot == "b" and r.returncode == hl.EXIT_RED, r
    assert sr.verdict()["action"] == "reboot"
    before = protected(sr)
    assert_refused(sr.run(*stage_args(sr, "stage")), "on trial")
    assert protected(sr) == before


def test_unverified_booted_slot_is_refused_until_a_green_verdict(fresh):
    """Slot a staged (not activated), booted by hand: its pointer state is
    none and the last verdict is for slot b. Slot b is good: refused. After
    a green health check of slot a (no trial, state stays none): allowed."""
    sr = fresh("file")
    sr.deploy("os/v2")
    assert sr.boot().returncode == hl.EXIT_OK      # b green and good
    sr.ok("stage", "--from=" + sr.published.path, "os/v1")
    st = sr.status()
    assert sr.slot("a", st)["state"] == "staged" and sr.slot("b", st)["state"] == "good", st
    with open(sr.cmdline, "w") as f:
        f.write("abdeploy.slot=a\n")               # picked by hand in the boot menu
    p = sr.run(*stage_args(sr, "stage"))
    assert p.returncode == at.EXIT_REFUSED, p.describe
    assert "slot b" in p.stderr and "unverified" in p.stderr, p.stderr

    rc, out, err, _ = sr.health_check()
    assert rc == hl.EXIT_OK, (out, err)
    assert sr.verdict()["slot"] == "a" and sr.slot("a")["state"] == "staged"
    sr.ok(*stage_args(sr, "stage"))
    assert sr.slot("b")["commit"] == sr.published.commits["os/v2-vendor"]


def test_offline_sysroot_is_not_held_back(fresh):
    sr = fresh("file")
    trial_boot(sr)
    with open(sr.cmdline, "w"):
        pass                                       # no abdeploy.slot=: offline
    sr.ok(*stage_args(sr, "stage"))


def test_trial_boot_with_no_good_slot_may_overwrite_it(fresh):
    """The invariant keeps the last GOOD slot. With slot a bad there is
    none: a fixed image may be staged over it from the trial boot."""
    sr = fresh("file")
    trial_boot(sr)
    sr.ok("mark-bad", "a")
    assert sr.slot("a")["state"] == "bad"
    sr.ok(*stage_args(sr, "stage"))
    assert sr.slot("a")["commit"] == sr.published.commits["os/v2-vendor"]


def test_activate_of_a_staged_slot_on_a_trial_boot(fresh):
    """activate writes no slot: a slot staged before the trial boot (so
    not good) may still be activated."""
    sr = fresh("file")
    sr.deploy("os/v2")
    sr.boot(reach_userspace=False)           # b on trial
    sr.ok("mark-bad", "a")
    sr.ok("stage", "--from=" + sr.published.path, "os/v2-vendor")
    sr.ok("activate")
    st = sr.status()
    assert st["primary"] == "a" and sr.slot("a", st)["state"] == "trial", st
