"""Lost updates to state files (issue 10): a slow `check-update` read
update.json before its download and wrote it back after, so that a `pin`
made in between was lost and the accepted serial could go down (a replay
window).  A hostile server on 127.0.0.1 trickles the manifest while other
commands run; afterwards the pin is kept and the serial never went down."""

import json
import time

import pytest

import updlib as ul
from hostile import HostileServer, Rule

MANIFEST = "abdeploy/channels/stable.json"
SIG = "abdeploy/channels/stable.json.sig"
TRICKLE_SEC = 6


def with_serial(n):
    def f(m):
        m["serial"] = n
    return f


def serve(server, data, sig, slow=False):
    bps = max(50, len(data) // TRICKLE_SEC) if slow else None
    server.set(MANIFEST, Rule(body=data, bps=bps))
    server.set(SIG, Rule(body=sig))


@pytest.fixture
def fast(workdir, pub):
    s = HostileServer(pub.repo).start()
    yield s
    s.stop()


def start_slow_check(device, server):
    """check-update in the background, returned once its manifest request
    is being trickled."""
    device.configure(server.url, min_rate=1, min_rate_time_sec=60)
    p = device.popen("check-update", "--json")
    deadline = time.monotonic() + 30
    while not server.requests(MANIFEST):
        assert time.monotonic() < deadline and p.poll() is None, "check-update never asked"
        time.sleep(0.02)
    return p


def finish(p):
    out, err = p.communicate(timeout=60)
    return p.returncode, out.decode(), err.decode()


def test_pin_during_a_slow_check_update_is_kept(device, hostile, pub):
    serial = pub.manifest("stable")["serial"]
    serve(hostile, *pub.craft("stable", with_serial(serial + 1)), slow=True)
    p = start_slow_check(device, hostile)
    device.ok("pin", "1.0")
    assert p.poll() is None, "the manifest was not slow enough to overlap the pin"
    code, out, err = finish(p)
    assert code == ul.EXIT_NOTHING, err
    assert "pinned to 1.0" in json.loads(out)["reason"], out
    state = device.read_state("update.json")
    assert state["pin"] == "1.0", state
    assert state["last_serial"]["stable"] == serial + 1, state


def test_serial_never_goes_down(device, hostile, fast, pub):
    """While the slow check-update trickles serial N+1, a pin and a fast
    check-update of serial N+2 run.  The slow one must not write N+1 over
    N+2 (nor drop the pin): its manifest is now older than the one
    accepted, so it is refused as a replay."""
    serial = pub.manifest("stable")["serial"]
    serve(hostile, *pub.craft("stable", with_serial(serial + 1)), slow=True)
    serve(fast, *pub.craft("stable", with_serial(serial + 2)))
    p = start_slow_check(device, hostile)
    # pin checks the pin against the manifest (issue 17): the fast server's
    device.configure(fast.url)
    device.ok("pin", "1.0")
    r, c = device.check()
    assert c["serial"] == serial + 2, r.describe()
    assert p.poll() is None, "the manifest was not slow enough to overlap"
    code, out, err = finish(p)
    assert code == ul.EXIT_VERIFY and "replay" in err, (code, out, err)
    state = device.read_state("update.json")
    assert state["last_serial"]["stable"] == serial + 2, state
    assert state["pin"] == "1.0", state


def test_restore_keeps_the_higher_serial(device, hostile, pub, tmp_path):
    """A backup made before a newer manifest was accepted must not bring the
    older serial back (restore replaced update.json as it was archived)."""
    serial = pub.manifest("stable")["serial"]
    device.configure(hostile.url)
    serve(hostile, *pub.craft("stable", with_serial(serial + 1)))
    device.check()
    device.ok("pin", "1.0")
    archive = str(tmp_path / "before.tar.gz")
    device.ok("backup", "--output=" + archive)
    serve(hostile, *pub.craft("stable", with_serial(serial + 3)))
    r, c = device.check()
    assert c["serial"] == serial + 3, r.describe()
    device.ok("pin", "--clear")
    device.ok("restore", "--path=" + archive)
    state = device.read_state("update.json")
    assert state["last_serial"]["stable"] == serial + 3, state
    assert state["pin"] == "1.0", state   # the rest is as archived
    # the replay that the old serial would have let in is still refused
    serve(hostile, *pub.craft("stable", with_serial(serial + 2)))
    r = device.expect(ul.EXIT_VERIFY, "check-update")
    assert "replay" in r.stderr, r.describe()
