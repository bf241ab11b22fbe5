"""The A/B invariant on the update client's paths (issue 11, point 1):
`update` and `resume` never overwrite the last good slot while the booted
slot is on trial. They refuse with exit status 6 before anything is
downloaded or recorded; a refused resume keeps its transaction."""

import os

import abtest as at


def trial_boot_of_11(device):
    """1.0 good in slot a; 1.1 installed into b by update and booted, no
    verdict yet. The lts channel then offers 1.4."""
    device.ok("update", "--version=1.1")
    device.set_booted("b")
    st = device.status()
    assert device.slot("b", st)["state"] == "trial", st
    assert device.slot("a", st)["state"] == "good", st


def assert_refused(r):
    assert r.returncode == at.EXIT_REFUSED, r.describe()
    assert "slot a" in r.stderr and "on trial" in r.stderr, r.stderr
    assert "abdeploy mark-good" in r.stderr, r.stderr


def test_update_refused_on_a_trial_boot(device, lighttpd, pub):
    trial_boot_of_11(device)
    device.configure(lighttpd.url, channel="lts")
    # the channel check records the manifest's serial (update.json)
    before = device.snapshot(state_except=("update.json",))
    mark = lighttpd.mark()
    for args in (["update"], ["update", "--no-activate"], ["update", "--version=1.2"]):
        assert_refused(device.run(*args))
    assert device.snapshot(state_except=("update.json",)) == before
    assert not os.path.exists(os.path.join(device.state_dir, "transaction.json")) \
        or device.transaction()["version"] == "1.1"
    # nothing but the manifest was fetched
    assert all("/objects/" not in e["path"] and "/deltas/" not in e["path"]
               for e in lighttpd.since(mark)), lighttpd.since(mark)

    device.ok("mark-good")
    device.ok("update")
    st = device.status()
    assert device.slot("a", st)["version"] == "1.4", st


def test_resume_refused_on_a_trial_boot(device, lighttpd, pub):
    """An update to 1.4 (into slot b, then on trial but not booted) is cut
    off after its download (crash point before the verified phase); the machine boots slot b. Resuming it
    would stage into slot a, the only good one."""
    device.ok("update", "--version=1.1")
    device.configure(lighttpd.url, channel="lts")
    r = device.run("update", "--version=1.4", env={"ABDEPLOY_CRASH_AT": "update:verified"})
    assert r.returncode != 0, r.describe()
    assert device.transaction()["phase"] == "downloaded", device.transaction()
    device.set_booted("b")
    st = device.status()
    assert device.slot("b", st)["state"] == "trial", st
    assert device.slot("a", st)["state"] == "good", st
    before = device.snapshot(state_except=("update.json",))
    for args in (["resume"], ["update"]):
        assert_refused(device.run(*args))
    assert device.snapshot(state_except=("update.json",)) == before
    assert device.transaction()["phase"] == "downloaded"

    device.ok("mark-good")
    device.ok("resume")
    st = device.status()
    assert device.slot("a", st)["version"] == "1.4", st
    assert device.transaction()["phase"] == "applied"
