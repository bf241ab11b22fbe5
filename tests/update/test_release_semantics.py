"""Release semantics on the device (issue 17, points 1 and 5 to 9), against
lighttpd and the instrumented server on 127.0.0.1, with releases made by
`abdeploy publish` and real GPG keys.

Channel pins: 1.4.1, 1.4.2, 1.4.3-rc.1, 1.5.0 (SemVer; each ranks above the
non-SemVer 1.0 the prepared device runs).  Channel depr: 1.4.1 (deprecated
with a reason), 1.4.2.  Manifests with members the publisher does not
write yet (security, notes, protocol) or must never write (a version moved
to another commit) are edited and re-signed by the test and served by the
instrumented server."""

import json
import os

import pytest

import updlib as ul
import abtest as at
from hostile import Rule

PINS = ("1.4.1", "1.4.2", "1.4.3-rc.1", "1.5.0")
MANIFEST = "abdeploy/channels/%s.json"
SIG = "abdeploy/channels/%s.json.sig"
REASON = "CVE-2026-0001 in the web UI; use 1.4.2"


@pytest.fixture(scope="module")
def rel_pub(pub):
    for i, v in enumerate(PINS):
        if v not in pub.commits:
            pub.commit(v, ul.image_spec(v, changed=["usr/share/data/file-%02d" % (22 + i)]))
        pub.release("pins", v)
    pub.release("depr", "1.4.1")
    pub.release("depr", "1.4.2")
    pub.publish("deprecate", "--channel=depr", "--version=1.4.1", "--reason=" + REASON)
    return pub


@pytest.fixture
def on_pins(device, rel_pub, lighttpd):
    device.configure(lighttpd.url, channel="pins")
    return device


def serve(server, pub, channel, mutate, key="trusted"):
    """CHANNEL's manifest changed by MUTATE, its serial raised by one and
    signed with KEY, served by SERVER."""
    def change(m):
        mutate(m)
        m["serial"] += 1
    data, sig = pub.craft(channel, change, key=key)
    server.set(MANIFEST % channel, Rule(body=data))
    server.set(SIG % channel, Rule(body=sig))


def release(m, version):
    return next(r for r in m["releases"] if r["version"] == version)


def installed(dev):
    """Everything but what a verified manifest changes (the accepted serial,
    history, the cached manifest status reads): slots, kernels, pointer,
    refs, transaction."""
    snap = dev.snapshot(state_except=("update.json", "history.json"))
    snap["status"] = json.dumps(json.loads(snap["status"])["slots"], sort_keys=True)
    return snap


def same_fpr(a, b):
    return a is not None and b is not None and a.upper() == b.upper()


# ---- point 1: rolling pins -----------------------------------------------


def test_rolling_pin_follows_the_newest_release_it_names(on_pins, rel_pub, gpg):
    dev = on_pins
    dev.ok("pin", "1.4")
    pin = dev.status()["pin"]
    assert pin["version"] == "1.4" and pin["exact"] is False, pin
    assert pin["resolves_to"] == "1.4.2", pin   # never the pre-release 1.4.3-rc.1
    assert pin["digest"] is None and same_fpr(pin["signer"], gpg.trusted), pin
    r, c = dev.check()
    assert c["offered_version"] == "1.4.2", c
    assert c["pin"]["resolves_to"] == "1.4.2", c
    text = dev.ok("status").stdout
    assert "Pin: 1.4 (rolling), resolves to 1.4.2" in text, text
    dev.ok("pin", "1")
    assert dev.status()["pin"]["resolves_to"] == "1.5.0"
    dev.ok("pin", "1.4.1")
    pin = dev.status()["pin"]
    assert pin["exact"] is True and pin["resolves_to"] == "1.4.1", pin
    assert pin["digest"] == rel_pub.commits["1.4.1"], pin
    r, c = dev.check()
    assert c["offered_version"] == "1.4.1", c
    dev.ok("update")
    assert dev.slot("b")["version"] == "1.4.1"
    pins = [e for e in dev.history() if e.get("type") == "pin"]
    assert pins[-1]["commit"] == rel_pub.commits["1.4.1"], pins


def test_pin_matching_nothing_is_refused_unless_forced(on_pins, rel_pub):
    dev = on_pins
    dev.check()  # the manifest is cached: what the refused pin leaves as it was
    before = dev.snapshot()
    r = dev.expect(ul.EXIT_ERROR, "pin", "1.3")
    assert "No release of channel pins follows the pin 1.3" in r.stderr, r.describe()
    assert "1.4.2" in r.stderr and "--force" in r.stderr, r.describe()
    assert dev.read_state("update.json").get("pin") is None
    assert dev.snapshot() == before, ul.diff(before, dev.snapshot())
    dev.ok("pin", "1.3", "--force")
    assert dev.read_state("update.json")["pin"] == "1.3"
    r, c = dev.check()
    assert c["offered_version"] is None and "follows the pin 1.3" in c["warning"], c


def test_pin_without_network_points_at_force(device, rel_pub):
    device.configure("http://127.0.0.1:1", channel="pins", max_attempts=1)
    r = device.run("pin", "1.4")
    assert r.returncode != 0 and "--force" in r.stderr, r.describe()
    assert "127.0.0.1:1" in r.stderr, r.describe()
    assert device.read_state("update.json").get("pin") is None
    device.ok("pin", "1.4", "--force")
    state = device.read_state("update.json")
    assert state["pin"] == "1.4" and state.get("pin_commit") is None, state
    assert state.get("pin_signer") is None, state


# ---- point 6: pins bound to a digest and a signer -------------------------


def test_exact_pin_refuses_a_version_moved_to_another_commit(on_pins, rel_pub, hostile):
    dev = on_pins
    dev.ok("pin", "1.4.1")
    old, new = rel_pub.commits["1.4.1"], rel_pub.commits["1.4.2"]

    def move(m):
        release(m, "1.4.1")["commit"] = new
        # a server that moves the version moves its size index too (issue 18)
        release(m, "1.4.1")["size_index"] = release(m, "1.4.2")["size_index"]
    serve(hostile, rel_pub, "pins", move)
    dev.configure(hostile.url, channel="pins")
    before = installed(dev)
    r = dev.expect(ul.EXIT_VERIFY, "update")
    assert old in r.stderr and new in r.stderr, r.describe()
    assert "abdeploy pin 1.4.1" in r.stderr, r.describe()
    assert installed(dev) == before, ul.diff(before, installed(dev))
    assert not [e for e in hostile.requests() if e["path"].startswith(("/objects/", "/deltas/"))]
    r, c = dev.check()
    assert c["offered_version"] is None and new in c["reason"], c
    assert c["pin"]["conflict"] and dev.status()["pin"]["conflict"], c


def test_pin_refuses_a_new_signer(on_pins, rel_pub, hostile, keyfiles, gpg):
    dev = on_pins
    at.trust_keys(dev.path, [keyfiles["untrusted"]])  # a second key the device trusts
    dev.ok("pin", "1.4")
    serve(hostile, rel_pub, "pins", lambda m: None, key="untrusted")
    dev.configure(hostile.url, channel="pins")
    before = installed(dev)
    r = dev.expect(ul.EXIT_VERIFY, "update")
    msg = r.stderr.upper()
    assert gpg.trusted.upper() in msg and gpg.untrusted.upper() in msg, r.describe()
    assert "abdeploy pin 1.4" in r.stderr, r.describe()
    assert installed(dev) == before, ul.diff(before, installed(dev))
    # pinning again binds the new signer
    dev.ok("pin", "1.4")
    assert same_fpr(dev.read_state("update.json")["pin_signer"], gpg.untrusted)
    r, c = dev.check()
    assert c["offered_version"] == "1.4.2", c


# ---- point 7: protocol ------------------------------------------------------


def test_manifest_of_an_unknown_protocol_is_refused(on_pins, rel_pub, hostile):
    dev = on_pins

    def future(m):
        m["protocol"] = 2
    serve(hostile, rel_pub, "pins", future)
    dev.configure(hostile.url, channel="pins")
    before = dev.snapshot()
    for args in (("check-update",), ("update",), ("pin", "1.4")):
        r = dev.expect(ul.EXIT_VERIFY, *args)
        assert "update abdeploy to read protocol 2" in r.stderr, r.describe()
    assert dev.snapshot() == before, ul.diff(before, dev.snapshot())
    serve(hostile, rel_pub, "pins", lambda m: m.update(protocol=1))
    r, c = dev.check()
    assert c["offered_version"] == "1.5.0", c


class HeaderLighttpd(ul.Lighttpd):
    """lighttpd whose access log's last field is the protocol header."""
    FORMAT = "%r|%>s|%b|%{X-Abdeploy-Protocol}i"


@pytest.fixture
def header_server(workdir, pub, request):
    s = HeaderLighttpd(pub.repo, workdir, name="lighttpd-" + at.safe_name(request.node.name))
    s.start()
    yield s
    s.stop()


@pytest.mark.parametrize("channel,kind", [("stable", "/deltas/"), ("nodelta", "/objects/")])
def test_every_request_carries_the_protocol_header(device, header_server, channel, kind):
    """libcurl's requests (manifest, signature, delta files) and libostree's
    (commit and objects), as lighttpd logged them."""
    device.configure(header_server.url, channel=channel)
    device.ok("update")
    # "PRI *" is the HTTP/2 connection preface libostree sends, not a request
    entries = [e for e in header_server.entries() if e["method"] != "PRI"]
    assert any(e["path"].startswith(kind) for e in entries), entries
    assert any(e["path"].endswith(".json.sig") for e in entries), entries
    missing = [e for e in entries if e["range"] != "1"]  # the header's field
    assert entries and not missing, missing


# ---- point 5: deprecation ---------------------------------------------------


def test_deprecated_release_is_installed_with_a_warning_and_reported(device, rel_pub, lighttpd):
    dev = device
    dev.configure(lighttpd.url, channel="depr")
    r = dev.ok("update", "--version=1.4.1")
    assert "deprecated" in r.stderr and REASON in r.stderr, r.describe()
    warnings = [e for e in dev.history() if e.get("type") == "warning"]
    assert warnings and REASON in warnings[-1]["reason"], dev.history()
    dev.set_booted("b")
    dev.ok("mark-good")
    st = dev.status()
    assert st["release"]["installed_deprecated"] == REASON, st
    assert "DEPRECATED" in dev.ok("status").stdout and REASON in dev.ok("status").stdout
    r = dev.ok("check-update")
    assert "DEPRECATED" in r.stdout and REASON in r.stdout, r.describe()
    r, c = dev.check()
    assert c["installed_deprecated"] == REASON and c["offered_version"] == "1.4.2", c


# ---- points 8 and 9: security releases, release notes ---------------------


def mark_security(m):
    release(m, "1.4.1")["security"] = True


def test_security_only_takes_only_security_releases(on_pins, rel_pub, hostile):
    dev = on_pins
    serve(hostile, rel_pub, "pins", mark_security)
    dev.configure(hostile.url, channel="pins")
    r, c = dev.check()
    assert c["offered_version"] == "1.5.0" and c["offered_security"] is False, c
    dev.configure(hostile.url, channel="pins", security_only="true")
    r, c = dev.check()
    assert c["offered_version"] == "1.4.1" and c["offered_security"] is True, c
    r = dev.ok("check-update")
    assert "Offered: 1.4.1" in r.stdout and "SECURITY UPDATE" in r.stdout, r.describe()
    st = dev.status()
    assert st["release"]["offered_version"] == "1.4.1", st
    assert st["release"]["offered_security"] is True, st
    assert "SECURITY UPDATE" in dev.ok("status").stdout
    dev.ok("update")
    assert dev.slot("b")["version"] == "1.4.1"


def test_check_update_shows_the_signed_release_notes(on_pins, rel_pub, hostile):
    dev = on_pins
    notes = {"changed": "Faster boot; fixes the clock drift.",
             "action": "Nothing; the device reboots at night.",
             "rollback": "abdeploy rollback"}
    serve(hostile, rel_pub, "pins", lambda m: release(m, "1.5.0").update(notes=notes))
    dev.configure(hostile.url, channel="pins")
    r = dev.ok("check-update")
    for part in notes.values():
        assert part in r.stdout, r.describe()
    assert "What you need to do" in r.stdout and "If something goes wrong" in r.stdout
    r, c = dev.check()
    assert c["notes"] == notes, c
