"""Operator commands (mark-good, mark-bad, history) and [health] on-red."""

import datetime
import json

import pytest

import healthlib as hl


def test_mark_bad_and_mark_good(fresh):
    sr = fresh()
    sr.deploy("os/v2")
    # v2 boots in trial; the operator looks at it before its health check
    r = sr.boot(reach_userspace=False)
    assert r.slot == "b"
    st = sr.status()
    assert st["booted"] == "b" and sr.slot("b", st)["state"] == "trial", st

    p = sr.ok("mark-bad")              # default: the booted slot
    assert "b" in p.stdout, p.describe
    st = sr.status()
    assert sr.slot("b", st)["state"] == "bad", st
    assert st["primary"] == "a", "a bad primary must hand over to the good slot: %s" % st
    ptr = sr.pointer()
    assert (ptr["ABDEPLOY_PRIMARY"], ptr["ABDEPLOY_B_STATE"], ptr["ABDEPLOY_B_TRIES"]) == \
        ("a", "bad", "0"), ptr

    sr.ok("mark-good", "other")        # slot a, seen from the booted b
    st = sr.status()
    assert sr.slot("a", st)["state"] == "good" and st["primary"] == "a", st

    for args in (["mark-good", "c"], ["mark-bad", "slot-b"], ["mark-good", "a", "b"]):
        p = sr.run(*args)
        assert p.returncode == hl.EXIT_USAGE, p.describe
        assert p.stderr.strip(), p.describe
    assert sr.status() == st, "a refused mark-* changed the state"

    r = sr.boot()
    assert (r.slot, r.returncode) == ("a", 0), r

    hist = sr.history()
    types = [e["type"] for e in hist]
    assert types[:3] == ["verdict", "mark-good", "mark-bad"], types
    assert hist[1]["slot"] == "a" and hist[2]["slot"] == "b", hist[:3]


def test_mark_good_blesses_a_trial(fresh):
    sr = fresh()
    sr.deploy("os/v2")
    sr.boot(reach_userspace=False)
    sr.ok("mark-good", "b")
    st = sr.status()
    assert sr.slot("b", st)["state"] == "good" and st["primary"] == "b", st
    assert sr.pointer()["ABDEPLOY_B_TRIES"] == "0"
    r = sr.boot()
    assert (r.slot, r.returncode) == ("b", 0) and sr.verdict()["trial"] is False, r


def parse_at(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_history_newest_first(fresh):
    sr = fresh()
    sr.configure("[health]\non-red=rollback\n")
    sr.deploy("os/v2-fail")
    assert sr.boot().slot == "b"
    assert sr.boot().slot == "a"
    hist = sr.history()
    types = [e["type"] for e in hist]
    # prepared sysroot: deploy v1, activate a, verdict a; then this test
    assert types == ["verdict", "verdict", "rollback", "activate", "deploy",
                     "verdict", "activate", "deploy"], types
    times = [parse_at(e["at"]) for e in hist]
    assert times == sorted(times, reverse=True), [e["at"] for e in hist]
    assert (hist[0]["slot"], hist[0]["verdict"]) == ("a", "green"), hist[0]
    assert (hist[1]["slot"], hist[1]["verdict"], hist[1]["action"]) == ("b", "red", "rollback"), hist[1]
    assert hist[1]["failed_hooks"] == hl.FAIL_HOOK, hist[1]
    assert (hist[2]["from_version"], hist[2]["to_version"]) == ("2.0", "1.0"), hist[2]
    assert (hist[3]["slot"], hist[3]["version"]) == ("b", "2.0"), hist[3]
    p = sr.ok("history")
    lines = p.stdout.splitlines()
    assert len(lines) == len(hist) and "verdict" in lines[0] and "deploy" in lines[-1], p.stdout


def test_on_red_rollback_is_immediate(fresh):
    sr = fresh()
    sr.configure("[health]\non-red=rollback\n")
    sr.deploy("os/v2-fail")
    r = sr.boot()
    assert (r.slot, r.returncode) == ("b", hl.EXIT_RED), r
    v = sr.verdict()
    assert v["action"] == "rollback", v
    assert "ROLLED BACK from 2.0 to 1.0" in r.stdout, r
    st = sr.status()
    assert st["primary"] == "a" and sr.slot("b", st)["state"] == "bad", st
    rb = st["last_rollback"]
    assert (rb["from_slot"], rb["to_slot"], rb["kind"]) == ("b", "a", "health"), rb
    assert hl.FAIL_HOOK in rb["reason"], rb
    motd = sr.motd()
    assert "ROLLED BACK from 2.0 to 1.0" in motd and hl.FAIL_HOOK in motd, motd
    r = sr.boot()
    assert (r.slot, r.returncode) == ("a", 0), r
    # /run is a tmpfs on a device: what counts is the MOTD of the boot after
    motd = sr.motd()
    assert "ROLLED BACK from 2.0 to 1.0" in motd and "Boot status is GREEN" in motd, motd


def test_on_red_none_takes_no_action(fresh):
    sr = fresh()
    sr.configure("[health]\non-red=none\n")
    sr.deploy("os/v2-fail")
    r = sr.boot()
    assert (r.slot, r.returncode) == ("b", hl.EXIT_RED), r
    v = sr.verdict()
    assert v["action"] == "none" and v["trial"] is True, v
    assert "Would reboot" not in r.stdout, r
    st = sr.status()
    b = sr.slot("b", st)
    assert st["primary"] == "b" and b["state"] == "trial" and b["tries_left"] == 2, st
    assert st["last_rollback"] is None, st
    assert "Boot status is RED: " + hl.FAIL_HOOK in sr.motd()


def test_invalid_on_red_refused(fresh):
    sr = fresh()
    sr.configure("[health]\non-red=explode\n")
    p = sr.run("health-check", "--no-reboot")
    assert p.returncode != 0 and "on-red" in p.stderr, p.describe


@pytest.mark.parametrize("which", ["booted", "other"])
def test_mark_needs_booted_slot(fresh, which):
    sr = fresh()
    with open(sr.cmdline, "w") as f:
        f.write("quiet\n")
    p = sr.run("mark-good", which)
    assert p.returncode != 0 and "abdeploy.slot" in p.stderr, p.describe


def test_health_check_json_and_exit_codes(fresh):
    """health-check --json (issue 16, point 5): one object on stdout with the
    verdict, every hook and its result, the reboot and the rollback; the
    hooks' output goes to stderr. A red verdict exits 7, an error 1 with
    nothing on stdout, green 0."""
    sr = fresh()
    sr.configure("[health]\non-red=rollback\n")
    sr.deploy("os/v2-fail")
    assert sr.boot(reach_userspace=False).slot == "b"
    p = sr.run("health-check", "--no-reboot", "--json")
    assert p.returncode == hl.EXIT_RED == 7, p.describe
    j = json.loads(p.stdout)
    assert (j["verdict"], j["action"], j["slot"], j["version"], j["trial"]) == \
        ("red", "rollback", "b", "2.0", True), j
    assert j["commit"] == sr.verdict()["commit"] and j["failed_hooks"] == [hl.FAIL_HOOK], j
    hook = [h for h in j["hooks"] if h["name"] == hl.FAIL_HOOK]
    assert len(hook) == 1 and (hook[0]["stage"], hook[0]["result"], hook[0]["exit_status"]) == \
        ("required", "fail", 1), j["hooks"]
    assert j["reboot"] == {"wanted": True, "held": "no-reboot", "command": None}, j
    rb = j["rollback"]
    assert (rb["kind"], rb["from_slot"], rb["to_slot"], rb["from_version"], rb["to_version"]) == \
        ("health", "b", "a", "2.0", "1.0"), rb
    assert "type" not in j and "format" not in j and "format" not in rb, j
    assert "app service did not start" in p.stderr and "Would reboot now" in p.stderr, p.describe

    # an error: no verdict, exit 1, nothing on stdout
    with open(sr.cmdline, "w"):
        pass
    p = sr.run("health-check", "--no-reboot", "--json")
    assert p.returncode == hl.at.EXIT_ERROR, p.describe
    assert p.stdout == "" and "No booted slot" in p.stderr, p.describe

    assert sr.boot(reach_userspace=False).slot == "a"
    p = sr.run("health-check", "--no-reboot", "--json")
    assert p.returncode == 0, p.describe
    j = json.loads(p.stdout)
    assert (j["verdict"], j["action"], j["slot"], j["rollback"]) == ("green", "none", "a", None), j
    assert j["reboot"] == {"wanted": False, "held": None, "command": None}, j
    p = sr.run("health-check", "--no-reboot")
    assert p.returncode == 0 and p.stdout.endswith("Verdict: GREEN (action: none)\n"), p.describe
