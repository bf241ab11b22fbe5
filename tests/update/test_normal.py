"""Normal update cases against lighttpd on 127.0.0.1: check-update, pin,
update with a delta and without one, --no-activate, progress events,
downgrade, staleness warning, phased rollout end to end."""

import json
import os

import pytest

import updlib as ul
from conftest import MACHINE_ID

CHECK_KEYS = {"channel", "serial", "expires_at", "installed_version", "installed_commit",
              "offered_version", "offered_commit", "update_available", "reason", "warning"}


def boot_into(dev, slot):
    """What a reboot into SLOT and a green health check would leave."""
    dev.set_booted(slot)
    dev.ok("mark-good")


def gets(entries, prefix):
    return [e for e in entries if e["method"] == "GET" and e["path"].startswith(prefix)]


def test_publisher_fixture_is_sound(pub, gpg):
    """The manifests verify with plain gpg and list what the tests assume."""
    for ch in ("stable", "nodelta", "lts", "phased", "unsigned", "big", "other"):
        p = gpg.verify(pub.manifest_path(ch), pub.manifest_path(ch) + ".sig")
        assert p.returncode == 0, p.stderr.decode()
    stable = pub.manifest("stable")
    assert [r["version"] for r in stable["releases"]] == ["1.0", "1.1"]
    assert pub.release_of("stable", "1.1")["deltas"][0]["from"] == pub.commits["1.0"]
    assert pub.release_of("nodelta", "1.4")["deltas"] == []
    assert pub.release_of("phased", "1.1")["rollout"] == 1


def test_check_update_available(device, pub):
    r, c = device.check()
    assert r.returncode == ul.EXIT_OK, r.describe()
    assert CHECK_KEYS <= set(c), sorted(c)
    assert c["installed_version"] == "1.0" and c["installed_commit"] == pub.commits["1.0"]
    assert c["offered_version"] == "1.1" and c["offered_commit"] == pub.commits["1.1"]
    assert c["update_available"] is True and c["channel"] == "stable"
    assert c["serial"] == pub.manifest("stable")["serial"]
    # human output
    r = device.expect(ul.EXIT_OK, "check-update")
    assert "Offered: 1.1" in r.stdout and "Installed: 1.0" in r.stdout, r.describe()


def test_check_update_none_when_newest_installed(device, pub):
    device.ok("update")
    boot_into(device, "b")
    r, c = device.check()
    assert r.returncode == ul.EXIT_NOTHING, r.describe()
    assert c["update_available"] is False and c["offered_version"] is None
    assert c["installed_version"] == "1.1"
    assert "newest" in c["reason"], c
    device.expect(ul.EXIT_NOTHING, "update")


def test_update_again_before_the_reboot(device, pub, lighttpd):
    """1.1 is installed and boots next; the device has not rebooted yet.  A
    second check/update (the timer runs again) offers nothing, downloads
    nothing and leaves no failed transaction behind."""
    device.ok("update")
    t = device.transaction()
    mark = lighttpd.mark()
    r, c = device.check()
    assert r.returncode == ul.EXIT_NOTHING, r.describe()
    assert c["offered_version"] is None and "reboot" in (c["reason"] or ""), c
    r = device.expect(ul.EXIT_NOTHING, "update")
    assert "reboot" in r.stderr, r.describe()
    assert gets(lighttpd.since(mark), "/deltas/") == []
    assert device.transaction() == t
    r = device.expect(ul.EXIT_NOTHING, "update", "--version=1.1")
    assert device.transaction() == t
    assert not [e for e in device.history() if e.get("type") == "update-failed"]
    # after the reboot into 1.1 nothing is offered either
    boot_into(device, "b")
    device.expect(ul.EXIT_NOTHING, "update")


def test_pin_holds_back_and_clear_releases(device, pub):
    device.ok("pin", "1.0")
    r, c = device.check()
    assert r.returncode == ul.EXIT_NOTHING, r.describe()
    assert c["update_available"] is False
    assert "pinned to 1.0" in c["reason"] and "1.1" in c["reason"], c
    r = device.expect(ul.EXIT_NOTHING, "check-update")
    assert "pinned to 1.0" in r.stdout, r.describe()
    before = device.snapshot(state_except=("history.json", "update.json"))
    r = device.expect(ul.EXIT_NOTHING, "update")
    assert "pinned" in r.stderr, r.describe()
    assert device.snapshot(state_except=("history.json", "update.json")) == before
    assert device.read_state("update.json")["pin"] == "1.0"
    device.ok("pin", "--clear")
    assert device.read_state("update.json")["pin"] is None
    r, c = device.check()
    assert r.returncode == ul.EXIT_OK and c["offered_version"] == "1.1", r.describe()
    kinds = [e.get("type") for e in device.history()]
    assert "pin" in kinds and "unpin" in kinds, kinds


def test_update_with_delta_fetches_no_objects(device, pub, lighttpd):
    mark = lighttpd.mark()
    r = device.ok("update", "--progress=json")
    log = lighttpd.since(mark)
    files = pub.delta_files("stable", "1.1", "1.0")
    fetched = {e["path"].lstrip("/"): e for e in gets(log, "/deltas/")}
    assert set(fetched) == {f["path"] for f in files}, log
    for f in files:
        assert fetched[f["path"]]["status"] == 200 and fetched[f["path"]]["bytes"] == f["size"]
    assert gets(log, "/objects/") == [], "delta update fetched loose objects: %s" % log
    assert len([e for e in log if e["path"] == "/abdeploy/channels/stable.json"]) == 1, log
    # progress: one JSON object per line (abdeploy(8), PROGRESS), phases in
    # order, a final result
    events = [json.loads(line) for line in r.stdout.splitlines()]
    phases = [e["phase"] for e in events if e["type"] == "phase"]
    assert phases == ["download", "unpack", "verify", "checkout", "install", "activate"], events
    assert events[-1]["type"] == "result" and events[-1]["result"] == "ok", events
    byte_events = [e for e in events if e["type"] == "progress" and e["unit"] == "bytes"]
    assert byte_events and all(e["done"] <= e["total"] for e in byte_events if e["total"])
    counts = [(e["done"], e["total"]) for e in byte_events]
    assert all(a != b for a, b in zip(counts, counts[1:])), "repeated byte events: %s" % counts
    # the result: 1.1 staged in b and activated for trial; a untouched
    st = device.status()
    b = device.slot("b", st)
    assert st["primary"] == "b" and st["booted"] == "a", st
    assert b["version"] == "1.1" and b["commit"] == pub.commits["1.1"] and b["state"] == "trial"
    assert device.slot("a", st)["state"] == "good"
    assert ul.compare_usr(device.p("abdeploy", "slots", "b"), pub.trees["1.1"]) == []
    t = device.transaction()
    assert t["phase"] == "applied" and t["use_delta"] is True and t["version"] == "1.1", t
    assert t["from_commit"] == pub.commits["1.0"]
    assert not os.path.exists(os.path.join(device.cache_dir, "delta-" + pub.commits["1.1"]))
    h = [e for e in device.history() if e.get("type") == "update"]
    assert h and h[-1]["version"] == "1.1", device.history()


def test_update_without_delta_pulls_objects(device, pub, lighttpd):
    device.configure(lighttpd.url, channel="nodelta")
    mark = lighttpd.mark()
    device.ok("update")
    log = lighttpd.since(mark)
    assert gets(log, "/deltas/") == [], "\n".join("%(method)s %(path)s %(status)s %(bytes)s" % e for e in log)
    objs = gets(log, "/objects/")
    assert objs, log
    commit = pub.commits["1.4"]
    assert any(e["path"] == "/" + pub.object_path(commit) for e in objs), objs
    st = device.status()
    assert device.slot("b", st)["commit"] == commit and st["primary"] == "b"
    assert ul.compare_usr(device.p("abdeploy", "slots", "b"), pub.trees["1.4"]) == []
    t = device.transaction()
    assert t["phase"] == "applied" and t["use_delta"] is False, t


def test_no_activate_stages_only(device, pub):
    r = device.ok("update", "--no-activate")
    assert "staged" in r.stdout, r.describe()
    st = device.status()
    b = device.slot("b", st)
    assert b["state"] == "staged" and b["commit"] == pub.commits["1.1"], st
    assert st["primary"] == "a", st
    t = device.transaction()
    assert t["phase"] == "applied" and t["activate"] is False, t
    device.ok("activate")
    st = device.status()
    assert st["primary"] == "b" and device.slot("b", st)["state"] == "trial", st


def test_downgrade_refused_unless_allowed(device, pub):
    device.ok("update")
    boot_into(device, "b")
    before = device.snapshot()
    r = device.expect(ul.EXIT_VERIFY, "update", "--version=1.0")
    assert "downgrade" in r.stderr.lower(), r.describe()
    assert device.snapshot() == before, ul.diff(before, device.snapshot())
    device.ok("update", "--version=1.0", "--allow-downgrade")
    st = device.status()
    assert device.slot("a", st)["commit"] == pub.commits["1.0"] and st["primary"] == "a", st


def test_installing_a_stale_version_warns(device, pub, lighttpd):
    device.configure(lighttpd.url, channel="lts")
    r = device.ok("update", "--version=1.1", "--no-activate")
    assert "warning" in r.stderr and "1.1" in r.stderr and "1.4" in r.stderr, r.describe()
    warnings = [e for e in device.history() if e.get("type") == "warning"]
    assert len(warnings) == 1 and warnings[0]["version"] == "1.1", device.history()
    # exactly two minor versions behind: no warning
    r = device.ok("update", "--version=1.2", "--no-activate")
    assert "warning" not in r.stderr, r.describe()
    assert len([e for e in device.history() if e.get("type") == "warning"]) == 1


def _machine_id(inside, version="1.1", percent=1):
    for i in range(100000):
        mid = "%032x" % (0xabcdef000 + i)
        if (ul.rollout_bucket(mid, version) < percent * 100) == inside:
            return mid
    raise AssertionError("no machine id found")


@pytest.mark.parametrize("inside", [False, True], ids=["outside-bucket", "inside-bucket"])
def test_phased_rollout(device, pub, lighttpd, inside):
    mid = _machine_id(inside)
    device.set_machine_id(mid)
    device.configure(lighttpd.url, channel="phased")
    r, c = device.check()
    if inside:
        assert r.returncode == ul.EXIT_OK and c["offered_version"] == "1.1", r.describe()
    else:
        assert r.returncode == ul.EXIT_NOTHING, r.describe()
        assert "phase" in c["reason"], c
        # the same release at 100 %: offered to this device too
        device.configure(lighttpd.url, channel="full")
        r, c = device.check()
        assert r.returncode == ul.EXIT_OK and c["offered_version"] == "1.1", r.describe()


def test_update_refuses_a_release_for_another_os(device, lighttpd, pub):
    """issue 16: 1.5 is signed by the trusted key but made for "otheros";
    the testos device refuses it with exit 3, naming both, and keeps its
    slots."""
    device.configure(lighttpd.url, channel="foreign")
    before = device.status()
    r = device.expect(ul.EXIT_VERIFY, "update")
    assert '"otheros"' in r.stderr and '"testos"' in r.stderr, r.describe()
    assert "--os=testos" in r.stderr, r.describe()
    st = device.status()
    assert st["primary"] == before["primary"] and st["slots"] == before["slots"], st
