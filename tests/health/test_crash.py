"""SIGKILL at every crash point of health-check (and of the rollback it
triggers): the next boot(s) must reach a consistent state and end green on
a good slot.

Crash points come from the build (docs/internals.md): ABDEPLOY_CRASH_TRACE
lists the points one run reaches, ABDEPLOY_CRASH_AT=N kills at the N-th."""

import os
import tempfile

import pytest

import healthlib as hl
from healthlib import bootsim

MAX_BOOTS = 6


def trace_points(template, tmpdir):
    sr = hl.copy_sysroot(template, tmpdir)
    trace = os.path.join(tmpdir, "trace-%s" % os.path.basename(os.path.dirname(sr.path)))
    rc, out, err, _ = sr.health_check(env={"ABDEPLOY_CRASH_TRACE": trace})
    assert os.path.exists(trace), "no crash points traced: is the build's crash_points option off?\n" + err
    with open(trace) as f:
        points = f.read().split()
    hl.rmtree(os.path.dirname(sr.path))
    return rc, points


def recover(sr, label):
    """Boot until green on a good primary; assert consistency after each."""
    boots = []
    for _ in range(MAX_BOOTS):
        r = sr.boot()
        boots.append(r)
        problems, st = hl.check_consistent(sr)
        assert not problems, "%s: after boot %d (slot %s): %s\n%s\n%s" % (
            label, len(boots), r.slot, problems, r.stdout, r.stderr)
        v = sr.verdict()
        if (r.returncode == 0 and v["verdict"] == "green" and v["slot"] == r.slot
                and st["primary"] == r.slot and sr.slot(r.slot, st)["state"] == "good"):
            return r, st
    raise AssertionError("%s: no green boot on a good primary within %d boots: %s" % (
        label, MAX_BOOTS, [(b.slot, b.returncode, b.stderr[-300:]) for b in boots]))


def sweep(template, tmpdir, expect_rc, must_reach, check_final):
    rc, points = trace_points(template, tmpdir)
    assert rc == expect_rc, "uncrashed run exited %s" % rc
    for name in must_reach:
        assert name in points, "crash point %s not reached: %s" % (name, points)
    for i in range(1, len(points) + 1):
        label = "crash at %d (%s)" % (i, points[i - 1])
        sr = hl.copy_sysroot(template, tmpdir)
        rc, out, err, _ = sr.health_check(env={"ABDEPLOY_CRASH_AT": str(i)})
        assert rc == -9, "%s: health-check exited %s, not by SIGKILL\n%s%s" % (label, rc, out, err)
        r, st = recover(sr, label)
        check_final(sr, r, st, label)
        hl.rmtree(os.path.dirname(sr.path))
    return points


@pytest.fixture
def crashdir(workdir):
    d = tempfile.mkdtemp(prefix="crash-", dir=workdir)
    yield d
    hl.rmtree(d)


@pytest.mark.parametrize("backend", ["file", "grub", "uboot"])
def test_crash_red_last_try_with_rollback(fresh, crashdir, backend):
    """v2's required hook fails on its last trial boot: health-check rolls
    back to v1.  A crash anywhere in that must still end on v1, v2 bad."""
    tpl = fresh(backend)
    tpl.deploy("os/v2-fail", tries=1)
    d = bootsim.select(tpl.path, backend)
    bootsim.write_cmdline(tpl.cmdline, d.slot)
    assert d.slot == "b" and d.after["ABDEPLOY_B_TRIES"] == "0", d

    def final(sr, r, st, label):
        assert r.slot == "a" and sr.slot("b", st)["state"] == "bad", "%s: %s" % (label, st)
        rb = st["last_rollback"]
        assert rb and (rb["from_slot"], rb["to_slot"]) == ("b", "a"), "%s: %s" % (label, rb)

    sweep(tpl, crashdir, hl.EXIT_RED,
          ["health:checked", "health:rollback-recorded", "health:rollback-flipped",
           "health:verdict-written"], final)


def test_crash_green_trial(fresh, crashdir):
    """v2 is green on a trial boot with one more try left: a crash anywhere
    while blessing it ends with v2 good."""
    tpl = fresh("file")
    tpl.deploy("os/v2", tries=2)
    d = bootsim.select(tpl.path, "file")
    bootsim.write_cmdline(tpl.cmdline, d.slot)
    assert d.slot == "b" and d.after["ABDEPLOY_B_TRIES"] == "1", d

    def final(sr, r, st, label):
        assert r.slot == "b" and st["primary"] == "b", "%s: %s" % (label, st)

    sweep(tpl, crashdir, hl.EXIT_OK, ["health:checked", "health:blessed",
                                      "health:verdict-written"], final)


def test_crash_while_recording_fallback(fresh, crashdir):
    """v2's kernel never came up; the bootloader fell back to v1 and
    health-check records it.  A crash anywhere in that still ends on v1
    with v2 bad."""
    tpl = fresh("file")
    tpl.deploy("os/v2", tries=1)
    assert tpl.boot(reach_userspace=False).slot == "b"
    d = bootsim.select(tpl.path, "file")
    bootsim.write_cmdline(tpl.cmdline, d.slot)
    assert d.slot == "a", d

    def final(sr, r, st, label):
        assert r.slot == "a" and sr.slot("b", st)["state"] == "bad", "%s: %s" % (label, st)
        assert st["last_rollback"] and st["last_rollback"]["kind"] == "fallback", label

    sweep(tpl, crashdir, hl.EXIT_OK, ["health:rollback-recorded", "health:fallback-flipped"],
          final)
