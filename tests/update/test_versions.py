"""Version precedence and explicit downgrades (issue 10), against lighttpd on
127.0.0.1 and releases made by `abdeploy publish`.

Channel semver: 1.0.0, 2.0.0-rc.1, 2.0.0 (SemVer; each ranks above the
non-SemVer 1.0 the prepared device runs)."""

import pytest

import updlib as ul
from hostile import Rule

SEMVER = ("1.0.0", "2.0.0-rc.1", "2.0.0")


@pytest.fixture(scope="module")
def semver_pub(pub):
    for i, v in enumerate(SEMVER):
        if v not in pub.commits:
            pub.commit(v, ul.image_spec(v, changed=["usr/share/data/file-%02d" % (30 + i)]))
            pub.release("semver", v)
    return pub


@pytest.fixture
def on_semver(device, semver_pub, lighttpd):
    device.configure(lighttpd.url, channel="semver")
    return device


def boot_into(dev, slot):
    dev.set_booted(slot)
    dev.ok("mark-good")


def install(dev, version, slot):
    """VERSION installed over the channel, booted from SLOT and good."""
    dev.ok("update", "--version=" + version)
    boot_into(dev, slot)
    assert dev.slot(slot)["version"] == version


def test_release_is_not_offered_its_rc(on_semver, semver_pub):
    """The defect: a device running 2.0.0 was offered 2.0.0-rc.1 and
    installed it."""
    install(on_semver, "2.0.0", "b")
    r, c = on_semver.check()
    assert r.returncode == ul.EXIT_NOTHING, r.describe()
    assert c["offered_version"] is None and "2.0.0 is the newest" in c["reason"], c
    before = on_semver.snapshot(state_except=("history.json", "update.json"))
    on_semver.expect(ul.EXIT_NOTHING, "update")
    assert on_semver.snapshot(state_except=("history.json", "update.json")) == before


def test_rc_is_offered_its_release(on_semver, semver_pub):
    install(on_semver, "2.0.0-rc.1", "b")
    r, c = on_semver.check()
    assert r.returncode == ul.EXIT_OK, r.describe()
    assert c["offered_version"] == "2.0.0", c


def test_update_to_a_lower_precedence_is_a_downgrade(on_semver, semver_pub):
    install(on_semver, "2.0.0", "b")
    before = on_semver.snapshot()
    r = on_semver.expect(ul.EXIT_VERIFY, "update", "--version=2.0.0-rc.1")
    assert "downgrade" in r.stderr and "--allow-downgrade" in r.stderr, r.describe()
    assert on_semver.snapshot() == before, ul.diff(before, on_semver.snapshot())
    on_semver.ok("update", "--version=2.0.0-rc.1", "--allow-downgrade")
    assert on_semver.slot("a")["version"] == "2.0.0-rc.1"


def test_pin_below_the_running_version_is_a_downgrade(on_semver, semver_pub):
    install(on_semver, "2.0.0", "b")
    before = on_semver.snapshot()
    r = on_semver.expect(ul.EXIT_VERIFY, "pin", "2.0.0-rc.1")
    assert "downgrade" in r.stderr and "--allow-downgrade" in r.stderr, r.describe()
    assert "2.0.0-rc.1" in r.stderr and "2.0.0" in r.stderr, r.describe()
    assert on_semver.snapshot() == before, ul.diff(before, on_semver.snapshot())
    # pinning the running version, or a higher one, is no downgrade
    on_semver.ok("pin", "2.0.0")
    on_semver.ok("pin", "--clear")
    on_semver.ok("pin", "2.0.0-rc.1", "--allow-downgrade")
    state = on_semver.read_state("update.json")
    assert state["pin"] == "2.0.0-rc.1" and state["pin_allows_downgrade"] is True, state
    pins = [e for e in on_semver.history() if e.get("type") == "pin"]
    assert pins[-1].get("allow_downgrade") is True, pins
    r, c = on_semver.check()
    assert c["offered_version"] == "2.0.0-rc.1" and "downgrade" in c["warning"], c
    # the pin's consent is what lets update install it
    on_semver.ok("update")
    assert on_semver.slot("a")["version"] == "2.0.0-rc.1"


def test_pinned_downgrade_without_consent_is_refused_by_update(on_semver, semver_pub):
    """A pin that became a downgrade after it was set (here: the device was
    updated past it) does not install the lower version silently."""
    on_semver.ok("pin", "2.0.0-rc.1")  # running 1.0: not a downgrade
    on_semver.ok("update", "--version=2.0.0")
    boot_into(on_semver, "b")
    r, c = on_semver.check()
    assert c["offered_version"] == "2.0.0-rc.1" and "--allow-downgrade" in c["warning"], c
    before = on_semver.snapshot(state_except=("history.json", "update.json"))
    r = on_semver.expect(ul.EXIT_VERIFY, "update")
    assert "downgrade" in r.stderr, r.describe()
    assert on_semver.snapshot(state_except=("history.json", "update.json")) == before
    on_semver.ok("update", "--allow-downgrade")
    assert on_semver.slot("a")["version"] == "2.0.0-rc.1"


def test_staleness_counts_by_semver_and_names_a_major_gap(on_semver, semver_pub):
    r = on_semver.ok("update", "--version=1.0.0", "--no-activate")
    assert "1 major version behind" in r.stderr and "2.0.0" in r.stderr, r.describe()
    assert "2.0.0-rc.1" not in r.stderr, r.describe()
    warnings = [e for e in on_semver.history() if e.get("type") == "warning"]
    assert len(warnings) == 1 and "major" in warnings[0]["reason"], warnings

def test_release_version_must_match_the_commit(device, hostile, pub):
    """A validly signed manifest whose release 1.5 names the commit of 1.1
    (version metadata "1.1"): refused with exit 3 naming both versions,
    nothing installed, the transaction waits for the operator."""
    def mislabel(m):
        m["releases"].append(dict(pub.release_of("stable", "1.1"), version="1.5", deltas=[]))
    data, sig = pub.craft("stable", mislabel)
    hostile.set("abdeploy/channels/stable.json", Rule(body=data))
    hostile.set("abdeploy/channels/stable.json.sig", Rule(body=sig))
    device.configure(hostile.url)
    before = device.snapshot(state_except=("transaction.json", "history.json", "update.json"))
    r = device.run("update", "--version=1.5")
    assert r.returncode == ul.EXIT_VERIFY, r.describe()
    assert "1.5" in r.stderr and "version 1.1" in r.stderr and "disagree" in r.stderr, r.describe()
    after = device.snapshot(state_except=("transaction.json", "history.json", "update.json"))
    assert after == before, ul.diff(before, after)
    t = device.transaction()
    assert t["phase"] == "failed" and t["retryable"] is False, t
    # the release under its own version is fine
    device.ok("resume", "--abandon")
    device.ok("update", "--version=1.1")
