"""Promotion without a rebuild, the device's side (issue 17, point 3):
a release listed as 2.1.0 whose commit is 2.1.0-rc.2 by its own metadata,
with "promoted_from": "2.1.0-rc.2" in the signed manifest, is the one
accepted mismatch of manifest version and commit version; every other one
is still refused. The device reports 2.1.0 and keeps the build version
2.1.0-rc.2 in `version --json`. lighttpd on 127.0.0.1, `abdeploy publish`."""

import json

import pytest

import updlib as ul
from hostile import Rule


@pytest.fixture(scope="module")
def promoted(pub):
    """2.1.0-rc.2 in channel rc, promoted to channel promoted as 2.1.0."""
    if "2.1.0-rc.2" not in pub.commits:
        pub.commit("2.1.0-rc.2", ul.image_spec("2.1.0-rc.2", changed=["usr/share/data/file-40"]))
        pub.release("rc", "2.1.0-rc.2")
        pub.publish("promote", "--from=rc", "--to=promoted", "--version=2.1.0-rc.2",
                    "--as=2.1.0")
    return pub


def version_json(dev):
    return json.loads(dev.ok("version", "--json").stdout)


def test_promoted_release_installs_and_reports_both_versions(device, promoted, lighttpd):
    rel = promoted.release_of("promoted", "2.1.0")
    assert rel["promoted_from"] == "2.1.0-rc.2"
    assert rel["commit"] == promoted.commits["2.1.0-rc.2"]
    device.configure(lighttpd.url, channel="promoted")
    r, c = device.check()
    assert c["offered_version"] == "2.1.0", c
    device.ok("update")
    device.set_booted("b")
    device.ok("mark-good")
    b = device.slot("b")
    assert b["version"] == "2.1.0" and b["commit"] == promoted.commits["2.1.0-rc.2"], b
    v = version_json(device)
    assert v["version"] == "2.1.0" and v["build_version"] == "2.1.0-rc.2", v
    assert v["commit"] == promoted.commits["2.1.0-rc.2"], v
    text = device.ok("version").stdout
    assert "2.1.0-rc.2" in text and "Build version" in text, text
    # nothing more to offer: the device runs the channel's newest
    r, c = device.check()
    assert r.returncode == ul.EXIT_NOTHING and c["offered_version"] is None, c


def test_build_version_equals_version_without_promotion(device):
    v = version_json(device)
    assert v["version"] == "1.0" and v["build_version"] == "1.0", v


@pytest.mark.parametrize("promoted_from", ["1.0", None])
def test_every_other_mismatch_is_still_refused(device, hostile, pub, promoted_from):
    """Release 1.5 names the commit of 1.1: refused (exit 3) unless
    promoted_from says 1.1; a promoted_from naming another version does
    not help."""
    def mislabel(m):
        entry = dict(pub.release_of("stable", "1.1"), version="1.5", deltas=[])
        if promoted_from:
            entry["promoted_from"] = promoted_from
        m["releases"].append(entry)
    data, sig = pub.craft("stable", mislabel)
    hostile.set("abdeploy/channels/stable.json", Rule(body=data))
    hostile.set("abdeploy/channels/stable.json.sig", Rule(body=sig))
    device.configure(hostile.url)
    before = device.snapshot(state_except=("transaction.json", "history.json", "update.json"))
    r = device.run("update", "--version=1.5")
    assert r.returncode == ul.EXIT_VERIFY, r.describe()
    assert "version 1.1" in r.stderr and "disagree" in r.stderr, r.describe()
    after = device.snapshot(state_except=("transaction.json", "history.json", "update.json"))
    assert after == before, ul.diff(before, after)


def test_a_crafted_promotion_of_the_right_version_is_accepted(device, hostile, pub):
    """The rule is the manifest's: 1.5 promoted from 1.1, naming 1.1's
    commit, is accepted and reported as 1.5 (build version 1.1)."""
    def promote(m):
        m["releases"].append(dict(pub.release_of("stable", "1.1"), version="1.5",
                                  promoted_from="1.1", deltas=[]))
    data, sig = pub.craft("stable", promote)
    hostile.set("abdeploy/channels/stable.json", Rule(body=data))
    hostile.set("abdeploy/channels/stable.json.sig", Rule(body=sig))
    device.configure(hostile.url)
    device.ok("update", "--version=1.5")
    device.set_booted("b")
    device.ok("mark-good")
    v = version_json(device)
    assert v["version"] == "1.5" and v["build_version"] == "1.1", v
