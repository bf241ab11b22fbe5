"""Crash safety: kill `stage`, `activate` and `rollback` with SIGKILL at
every crash point (ABDEPLOY_CRASH_AT=N, counted with ABDEPLOY_CRASH_TRACE),
then check that status is consistent, the pointer names a complete slot,
the running slot is untouched, a re-run succeeds and `ostree fsck` passes.
"""

import os
import signal

import pytest

import scenariolib as sl

MAX_CRASH_POINTS = 120   # bound of every loop below


def _trace(sysroots, prepared, args, tag):
    sr = sysroots.clone(prepared)
    trace = os.path.join(os.path.dirname(sr.path), "trace-" + tag)
    sr.ok(*args, env={"ABDEPLOY_CRASH_TRACE": trace})
    assert os.path.exists(trace), "ABDEPLOY_CRASH_TRACE=FILE wrote nothing: was the " \
        "build configured with -Dcrash_points=true?"
    names = _read_trace(trace)
    sysroots.discard(sr)
    return names


def _read_trace(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _leftovers(sr):
    return sorted(set(os.listdir(sr.slots_dir)) - {"a", "b"})


def _crash_loop(sysroots, prepared, args, published, check_crashed, check_final,
                rerun_allowed, min_points, take=lambda sr: None):
    """check_crashed(sr, st, pre) / check_final(sr, st, pre) return lists of
    problems; pre = take(clone) is recorded on each fresh clone before the
    command runs (inode snapshots are per copy)."""
    names = _trace(sysroots, prepared, args, args[0])
    n = len(names)
    print("`%s`: %d crash points: %s" % (" ".join(args), n, " ".join(names)))
    assert n >= min_points, "only %d crash points in `%s`: %s" % (n, " ".join(args), names)
    assert n <= MAX_CRASH_POINTS, "%d crash points, more than the bound %d" % (n, MAX_CRASH_POINTS)
    failures = []
    for i in range(1, n + 1):
        sr = sysroots.clone(prepared)
        where = "crash point %d/%d (%s)" % (i, n, names[i - 1])
        trace = os.path.join(os.path.dirname(sr.path), "trace")
        pre = take(sr)
        r = sr.run(*args, env={"ABDEPLOY_CRASH_AT": str(i), "ABDEPLOY_CRASH_TRACE": trace})
        if r.returncode != -signal.SIGKILL:
            failures.append("%s: expected death by SIGKILL\n%s" % (where, r.describe()))
            sysroots.discard(sr)
            continue
        reached = _read_trace(trace)
        if reached not in (names[:i], names[:i - 1]):
            failures.append("%s: crash points differ from the traced run: %s" % (where, reached))
        problems, st = sl.consistency_problems(sr, published)
        if st is not None:
            problems += check_crashed(sr, st, pre)
        if problems:
            failures.append("%s: after the crash:\n    %s" % (where, "\n    ".join(problems)))
        if st is not None:
            allowed = rerun_allowed(st)
            if allowed:
                r2 = sr.run(*args)
                if r2.returncode not in allowed:
                    failures.append("%s: re-run exit %d, expected %s\n%s" % (
                        where, r2.returncode, sorted(allowed), r2.describe()))
                else:
                    problems, st2 = sl.consistency_problems(sr, published)
                    if st2 is not None:
                        problems += check_final(sr, st2, pre)
                    problems += ["leftover %s in abdeploy/slots" % x for x in _leftovers(sr)]
                    if problems:
                        failures.append("%s: after the re-run:\n    %s" % (where, "\n    ".join(problems)))
        try:
            sr.fsck()
        except AssertionError as e:
            failures.append("%s: %s" % (where, e))
        sysroots.discard(sr)
    # one past the last point: no crash, normal success
    sr = sysroots.clone(prepared)
    r = sr.run(*args, env={"ABDEPLOY_CRASH_AT": str(n + 1)})
    if r.returncode != 0:
        failures.append("ABDEPLOY_CRASH_AT=%d (past the last point) failed:\n%s" % (n + 1, r.describe()))
    sysroots.discard(sr)
    assert not failures, "%d of %d crash points failed:\n%s" % (
        len(failures), n, "\n\n".join(failures))
    return names


@pytest.fixture
def v1_running(sysroots, server):
    """v1 deployed, blessed good and booted; the other slot is empty."""
    sr = sysroots.create()
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    slot = sr.status()["primary"]
    sr.bless(slot)
    sr.set_booted(slot)
    return sr, slot


def test_crash_during_stage(sysroots, server, published, v1_running):
    prepared, booted = v1_running
    target = sl.other(booted)
    ptr = prepared.pointer()

    def take(sr):
        return {"slot": sr.slot_snapshot(booted),
                "boot": sl.tree_entries(sr.boot_dir(booted), "boot")}

    def check_crashed(sr, st, pre):
        p = []
        if st["primary"] != booted:
            p.append("primary moved to %s" % st["primary"])
        if sr.pointer()["ABDEPLOY_PRIMARY"] != ptr["ABDEPLOY_PRIMARY"]:
            p.append("pointer primary changed")
        now = sr.slot_snapshot(booted)
        if now != pre["slot"]:
            p.append("running slot modified:\n" + sl.diff_snapshots(pre["slot"], now))
        now = sl.tree_entries(sr.boot_dir(booted), "boot")
        if now != pre["boot"]:
            p.append("running slot's kernel dir modified:\n" + sl.diff_snapshots(pre["boot"], now))
        t = sr.slot_status(target, st)
        if t["state"] not in ("empty", "staged"):
            p.append("target slot in state %s" % t["state"])
        if t["state"] == "staged" and t["commit"] != published.v2.commit:
            p.append("target staged with %s" % t["commit"])
        return p

    def check_final(sr, st, pre):
        p = check_crashed(sr, st, pre)
        t = sr.slot_status(target, st)
        if t["state"] != "staged" or t["commit"] != published.v2.commit:
            p.append("target not staged with v2 after re-run: %s" % t)
        return p

    def rerun_allowed(st):
        t = sr_status_slot(st, target)
        done = t["state"] == "staged" and t["commit"] == published.v2.commit
        return {0, sl.EXIT_NOTHING} if done else {0}

    names = _crash_loop(sysroots, prepared, ["stage", "--from=" + server.url, "os/v2"],
                        published, check_crashed, check_final, rerun_allowed, min_points=3,
                        take=take)
    assert len(set(names)) >= 3, names


def sr_status_slot(st, name):
    return {s["name"]: s for s in st["slots"]}[name]


@pytest.fixture
def v2_staged(sysroots, server, v1_running):
    sr, booted = v1_running
    sr.ok("stage", "--from=" + server.url, "os/v2")
    return sr, booted


def test_crash_during_activate(sysroots, server, published, v2_staged):
    prepared, booted = v2_staged
    target = sl.other(booted)

    def take(sr):
        return sl.tree_entries(sr.slots_dir, "slots")

    def check_crashed(sr, st, slots_snap):
        p = []
        if st["primary"] not in (booted, target):
            p.append("primary is %r" % st["primary"])
        if st["primary"] == booted:
            if sr_status_slot(st, booted)["state"] != "good":
                p.append("old primary lost its good state: %s" % sr_status_slot(st, booted))
            if sr_status_slot(st, target)["state"] != "staged":
                p.append("target not staged any more: %s" % sr_status_slot(st, target))
        if st["primary"] == target:
            t = sr_status_slot(st, target)
            if t["state"] != "trial" or t["tries_left"] != 3:
                p.append("activated slot %s" % t)
        if sr_status_slot(st, target)["commit"] != published.v2.commit:
            p.append("target commit changed")
        if sl.tree_entries(sr.slots_dir, "slots") != slots_snap:
            p.append("activate modified slot trees:\n" +
                     sl.diff_snapshots(slots_snap, sl.tree_entries(sr.slots_dir, "slots")))
        return p

    def check_final(sr, st, pre):
        p = check_crashed(sr, st, pre)
        if st["primary"] != target:
            p.append("primary is not the activated slot after re-run")
        return p

    def rerun_allowed(st):
        return {0, sl.EXIT_NOTHING} if st["primary"] == target else {0}

    _crash_loop(sysroots, prepared, ["activate"], published,
                check_crashed, check_final, rerun_allowed, min_points=1, take=take)


@pytest.fixture
def v2_activated_booted(sysroots, server, v2_staged):
    """v1 good in one slot, v2 activated and booted (trial) in the other."""
    sr, good = v2_staged
    sr.ok("activate")
    sr.set_booted(sl.other(good))
    return sr, good


def test_crash_during_rollback(sysroots, server, published, v2_activated_booted):
    prepared, good = v2_activated_booted
    new = sl.other(good)

    def take(sr):
        return sl.tree_entries(sr.slots_dir, "slots")

    def check_crashed(sr, st, slots_snap):
        p = []
        if st["primary"] == good and sr_status_slot(st, good)["state"] != "good":
            p.append("rolled back to a slot in state %s" % sr_status_slot(st, good)["state"])
        if st["primary"] not in (good, new):
            p.append("primary is %r" % st["primary"])
        if sl.tree_entries(sr.slots_dir, "slots") != slots_snap:
            p.append("rollback modified slot trees")
        return p

    def check_final(sr, st, pre):
        p = check_crashed(sr, st, pre)
        if st["primary"] != good:
            p.append("not rolled back after re-run")
        return p

    def rerun_allowed(st):
        # once the flip happened a second rollback would legitimately flip back
        return {0} if st["primary"] == new else None

    _crash_loop(sysroots, prepared, ["rollback"], published,
                check_crashed, check_final, rerun_allowed, min_points=1, take=take)


def test_crash_at_named_point(sysroots, server, v1_running):
    prepared, booted = v1_running
    args = ["stage", "--from=" + server.url, "os/v2"]
    names = _trace(sysroots, prepared, args, "named")
    assert names
    name = names[len(names) // 2]
    sr = sysroots.clone(prepared)
    trace = os.path.join(os.path.dirname(sr.path), "trace")
    r = sr.run(*args, env={"ABDEPLOY_CRASH_AT": name, "ABDEPLOY_CRASH_TRACE": trace})
    assert r.returncode == -signal.SIGKILL, r.describe()
    reached = _read_trace(trace)
    k = names.index(name)
    assert reached in (names[:k + 1], names[:k]), (name, reached)
    sr.ok(*args)


def test_crash_during_deploy(sysroots, server, published, v1_running):
    prepared, booted = v1_running
    target = sl.other(booted)

    def take(sr):
        return sr.slot_snapshot(booted)

    def check_crashed(sr, st, pre):
        p = []
        now = sr.slot_snapshot(booted)
        if now != pre:
            p.append("running slot modified:\n" + sl.diff_snapshots(pre, now))
        t = sr_status_slot(st, target)
        if st["primary"] not in (booted, target):
            p.append("primary is %r" % st["primary"])
        if st["primary"] == target and (t["state"] != "trial" or t["commit"] != published.v2.commit):
            p.append("pointer names target slot in %s" % t)
        if t["state"] != "empty" and t["commit"] != published.v2.commit:
            p.append("target holds %s" % t["commit"])
        return p

    def check_final(sr, st, pre):
        p = check_crashed(sr, st, pre)
        t = sr_status_slot(st, target)
        if t["state"] not in ("staged", "trial") or t["commit"] != published.v2.commit:
            p.append("v2 not deployed after re-run: %s" % t)
        return p

    def rerun_allowed(st):
        t = sr_status_slot(st, target)
        return {0, sl.EXIT_NOTHING} if t["state"] in ("staged", "trial") else {0}

    _crash_loop(sysroots, prepared, ["deploy", "--from=" + server.url, "os/v2"],
                published, check_crashed, check_final, rerun_allowed, min_points=3, take=take)


@pytest.fixture
def two_good_slots(sysroots, server):
    """v1 good in one slot, v2 deployed, booted and good in the other: the
    next stage replaces a slot the bootloader may fall back to."""
    sr = sysroots.create()
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    old = sr.status()["primary"]
    sr.bless(old)
    sr.ok("deploy", "--from=" + server.url, "os/v2")
    new = sl.other(old)
    sr.bless(new)
    sr.set_booted(new)
    st = sr.status()
    assert st["primary"] == new and sr.slot_status(old, st)["state"] == "good", st
    return sr, new


def test_crash_during_stage_over_fallback_slot(sysroots, server, published, two_good_slots):
    prepared, booted = two_good_slots
    target = sl.other(booted)

    def take(sr):
        return sr.slot_snapshot(booted)

    def check_crashed(sr, st, pre):
        p = []
        now = sr.slot_snapshot(booted)
        if now != pre:
            p.append("running slot modified:\n" + sl.diff_snapshots(pre, now))
        if st["primary"] != booted:
            p.append("primary moved to %s" % st["primary"])
        t = sr_status_slot(st, target)
        if t["state"] in ("good", "trial") and t["commit"] != published.v1.commit:
            p.append("target slot bootable (%s) with the new commit before activation" % t["state"])
        return p

    def check_final(sr, st, pre):
        p = check_crashed(sr, st, pre)
        t = sr_status_slot(st, target)
        if t["state"] != "staged" or t["commit"] != published.v3.commit:
            p.append("target not staged with v3 after re-run: %s" % t)
        return p

    def rerun_allowed(st):
        t = sr_status_slot(st, target)
        return {0, sl.EXIT_NOTHING} if (t["state"], t["commit"]) == ("staged", published.v3.commit) else {0}

    _crash_loop(sysroots, prepared, ["stage", "--from=" + server.url, "os/v3"],
                published, check_crashed, check_final, rerun_allowed, min_points=3, take=take)
