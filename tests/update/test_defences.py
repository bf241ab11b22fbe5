"""Defences of the update client (issue 4), each against a hostile server on
127.0.0.1 (tests/update/hostile.py) serving the real publisher repo with one
thing changed.  Refusals exit 3 and name the problem; size and speed limits
exit 1; nothing is installed and the device state is unchanged."""

import json
import os
import time

import pytest

import updlib as ul
from hostile import Rule

MANIFEST = "abdeploy/channels/%s.json"
SIG = "abdeploy/channels/%s.json.sig"


def serve_manifest(server, channel, data, sig):
    server.set(MANIFEST % channel, Rule(body=data))
    server.set(SIG % channel, Rule(body=sig))


def content_gets(server):
    return [e for e in server.requests() if e["path"].startswith(("/deltas/", "/objects/"))]


def refused_before_download(device, server, words, code=ul.EXIT_VERIFY, channel="stable"):
    """`check-update` and `update` both fail with CODE and a message with
    WORDS; no content is fetched and nothing on the device changes."""
    device.configure(server.url, channel=channel)
    before = device.snapshot()
    for args in (("check-update",), ("update",)):
        r = device.expect(code, *args)
        msg = r.stderr.lower()
        for w in words:
            assert w.lower() in msg, "%r not in the message\n%s" % (w, r.describe())
    assert content_gets(server) == [], server.requests()
    after = device.snapshot()
    assert after == before, ul.diff(before, after)
    return r


def refused_in_transaction(device, r, code, words, retryable=False):
    """An update that failed after its transaction began: CODE, WORDS in the
    message, nothing installed (slots, kernels, pointer, refs, slot
    records, accepted serial unchanged), transaction failed."""
    assert r.returncode == code, "expected exit %d\n%s" % (code, r.describe())
    for w in words:
        assert w.lower() in r.stderr.lower(), "%r not in the message\n%s" % (w, r.describe())
    t = device.transaction()
    assert t["phase"] == "failed" and t["retryable"] is retryable, t
    assert device.leftovers() == []
    return t


@pytest.fixture
def snap_update(device):
    """Snapshot without the files a failed transaction writes (and the
    accepted serial, which a valid manifest of a new channel sets)."""
    return lambda: device.snapshot(state_except=("transaction.json", "history.json",
                                                  "update.json"))


# ---- the manifest --------------------------------------------------------


def test_tampered_manifest(device, hostile, pub):
    m = pub.manifest("stable")
    m["releases"][-1]["commit"] = pub.commits["1.2"]  # redirect 1.1 to another commit
    serve_manifest(hostile, "stable", json.dumps(m, indent=2).encode(), pub.sig_bytes("stable"))
    refused_before_download(device, hostile, ["manifest", "bad signature"])


def test_tampered_signature(device, hostile, pub):
    sig = bytearray(pub.sig_bytes("stable"))
    sig[len(sig) - 10] ^= 0x5A
    serve_manifest(hostile, "stable", pub.manifest_bytes("stable"), bytes(sig))
    refused_before_download(device, hostile, ["manifest", "signature"])


def test_signature_by_untrusted_key(device, hostile, pub):
    data, sig = pub.craft("stable", key="untrusted")
    serve_manifest(hostile, "stable", data, sig)
    # the signer's fingerprint, and the trusted ones with where they are
    r = refused_before_download(device, hostile, ["manifest", "untrusted key", pub.gpg.untrusted,
                                                  pub.gpg.trusted, device.path])
    assert "SYSROOT/" not in r.stderr, r.describe()


def test_expired_manifest(device, hostile, pub):
    now = ul.utcnow()

    def expire(m):
        m["serial"] += 1
        m["issued_at"] = ul.iso(now - ul.datetime.timedelta(days=31))
        m["expires_at"] = ul.iso(now - ul.datetime.timedelta(days=1))
    serve_manifest(hostile, "stable", *pub.craft("stable", expire))
    refused_before_download(device, hostile, ["manifest", "expired"])


def test_replayed_lower_serial(device, hostile, pub):
    serial = pub.manifest("stable")["serial"]

    def with_serial(n):
        def f(m):
            m["serial"] = n
        return f
    device.configure(hostile.url)
    serve_manifest(hostile, "stable", *pub.craft("stable", with_serial(serial + 5)))
    r, c = device.check()
    assert r.returncode == ul.EXIT_OK and c["serial"] == serial + 5, r.describe()
    assert device.read_state("update.json")["last_serial"]["stable"] == serial + 5
    # a correctly signed, unexpired, but older manifest: a replay
    hostile.clear()
    serve_manifest(hostile, "stable", *pub.craft("stable", with_serial(serial + 4)))
    refused_before_download(device, hostile, ["serial %d" % (serial + 4), "replay"])
    assert device.read_state("update.json")["last_serial"]["stable"] == serial + 5


def test_wrong_channel_name(device, hostile, pub):
    """A mirror that serves the manifest of another channel under this
    channel's name (both correctly signed)."""
    serve_manifest(hostile, "stable", pub.manifest_bytes("lts"), pub.sig_bytes("lts"))
    refused_before_download(device, hostile, ["channel", "lts"])


def test_unknown_format_version(device, hostile, pub):
    def future(m):
        m["format"] = 99
    serve_manifest(hostile, "stable", *pub.craft("stable", future))
    device.configure(hostile.url)
    before = device.snapshot()
    r = device.run("check-update")
    assert r.returncode != 0 and "format" in r.stderr.lower(), r.describe()
    assert device.snapshot() == before


# ---- endless data, slow servers ------------------------------------------


@pytest.mark.parametrize("cap", [None, 4096], ids=["default-1MiB", "manifest-max-bytes=4096"])
def test_endless_manifest(device, hostile, pub, cap):
    hostile.set(MANIFEST % "stable", Rule(body=pub.manifest_bytes("stable"), endless=True))
    device.configure(hostile.url, manifest_max_bytes=cap)
    before = device.snapshot()
    r = device.expect(ul.EXIT_ERROR, "check-update")
    limit = cap or 1024 * 1024
    assert "more than the %d bytes" % limit in r.stderr, r.describe()
    assert r.elapsed < 15, r.describe()
    sent = hostile.requests(MANIFEST % "stable")
    assert len(sent) == 1, sent  # too big is not retried
    r = device.expect(ul.EXIT_ERROR, "update")
    assert device.snapshot() == before


@pytest.mark.parametrize("how", ["endless", "longer-than-declared"])
def test_delta_file_longer_than_declared(device, hostile, pub, snap_update, how):
    part = pub.delta_files("stable", "1.1", "1.0")[-1]
    with open(ul.os.path.join(pub.repo, part["path"]), "rb") as f:
        data = f.read()
    assert len(data) == part["size"]
    if how == "endless":
        hostile.set(part["path"], Rule(body=data, endless=True))
    else:
        hostile.set(part["path"], Rule(body=data + b"\0" * 4096))
    device.configure(hostile.url)
    before = snap_update()
    r = device.run("update")
    refused_in_transaction(device, r, ul.EXIT_ERROR, ["more than the %d bytes" % part["size"]])
    assert r.elapsed < 15, r.describe()
    assert snap_update() == before, ul.diff(before, snap_update())
    assert len(hostile.requests(part["path"])) == 1


def test_slow_manifest_is_cut_off(device, hostile, pub):
    hostile.set(MANIFEST % "stable", Rule(body=pub.manifest_bytes("stable"), bps=10))
    device.configure(hostile.url, min_rate=1024, min_rate_time_sec=2, max_attempts=1)
    before = device.snapshot()
    r = device.expect(ul.EXIT_ERROR, "update")
    assert "bytes/s" in r.stderr and "cut off" in r.stderr, r.describe()
    assert 1.5 < r.elapsed < 12, r.describe()
    assert device.snapshot() == before


def test_slow_delta_is_cut_off_retryable(device, hostile, pub, snap_update):
    part = pub.delta_files("big", "1.6", "1.0")[-1]
    hostile.set(part["path"], Rule(bps=10))
    device.configure(hostile.url, channel="big", min_rate=1024, min_rate_time_sec=3,
                     max_attempts=2, backoff_initial_ms=200)
    before = snap_update()
    r = device.run("update")
    t = refused_in_transaction(device, r, ul.EXIT_ERROR, ["bytes/s", "cut off"], retryable=True)
    assert t["failed_in"] == "downloading", t
    # two attempts of about 3 s each, a 200 ms pause: bounded
    assert 5.5 < r.elapsed < 20, r.describe()
    assert len(hostile.requests(part["path"])) == 2, hostile.requests()
    assert snap_update() == before, ul.diff(before, snap_update())


@pytest.mark.parametrize("rate", ["1k", "1K"])
def test_min_rate_with_unit_keeps_the_cut_off(device, hostile, pub, rate):
    """issue 10: min-rate=1k is 1024 bytes/s as abdeploy.conf(5) says; 0.2.0
    read it as 0, which turned the slow-server cut-off off (the download then
    trickled on for minutes: the bounded wait below fails)."""
    hostile.set(MANIFEST % "stable", Rule(body=pub.manifest_bytes("stable"), bps=10))
    device.configure(hostile.url, min_rate=rate, min_rate_time_sec=2, max_attempts=1)
    before = device.snapshot()
    r = device.expect(ul.EXIT_ERROR, "check-update", timeout=40)
    assert "less than 1024 bytes/s for 2 s; cut off" in r.stderr, r.describe()
    assert r.elapsed < 15, r.describe()
    assert device.snapshot() == before


@pytest.mark.parametrize("key,value,accepted", [
    ("min-rate", "0", "from 1 to 1073741824"),
    ("min-rate", "1kb", "K, M or G"),
    ("min-rate", "-1", "from 1 to 1073741824"),
    ("min-rate-time-sec", "0", "from 1 to 3600"),
    ("min_rate", "1k", "unknown key min_rate in group [update]"),
])
def test_value_that_would_disable_the_cut_off_is_refused(device, hostile, pub, key, value,
                                                          accepted):
    """A value that is not accepted stops the command before any download,
    naming the drop-in it came from, the key and what is accepted."""
    hostile.set(MANIFEST % "stable", Rule(body=pub.manifest_bytes("stable"), bps=10))
    device.configure(hostile.url, max_attempts=1)
    before = device.snapshot()
    dropin = device.p("etc", "abdeploy", "conf.d", "60-rate.conf")
    os.makedirs(os.path.dirname(dropin), exist_ok=True)
    with open(dropin, "w") as f:
        f.write("[update]\n%s=%s\n" % (key, value))
    for args in (("check-update",), ("update",), ("status",)):
        r = device.expect(ul.EXIT_ERROR, *args, timeout=40)
        assert "etc/abdeploy/conf.d/60-rate.conf: " in r.stderr, r.describe()
        assert key in r.stderr and accepted in r.stderr, r.describe()
    assert hostile.requests() == []
    os.unlink(dropin)
    assert device.snapshot() == before


# ---- HTTP errors ---------------------------------------------------------


@pytest.mark.parametrize("status", [404, 403])
def test_http_4xx_on_manifest_is_terminal(device, hostile, status):
    hostile.set(MANIFEST % "stable", Rule(status=status))
    device.configure(hostile.url, max_attempts=4)
    before = device.snapshot()
    r = device.expect(ul.EXIT_ERROR, "update")
    assert "HTTP %d" % status in r.stderr and "not retrying" in r.stderr, r.describe()
    reqs = [e["path"] for e in hostile.requests()]
    manifest = "/" + MANIFEST % "stable"
    if status == 404:
        # a missing manifest: the signed channel index is read once, to name
        # the channels; it lists "stable", so the 404 itself is the error
        assert "channel index of" in r.stderr and "lists channel stable" in r.stderr, r.describe()
        index = "/abdeploy/channels/_index.json"
        assert reqs == [manifest, index, index + ".sig"], reqs
    else:
        assert reqs == [manifest], reqs
    assert device.snapshot() == before


@pytest.mark.parametrize("status", [404, 403])
def test_http_4xx_on_delta_is_terminal(device, hostile, pub, snap_update, status):
    part = pub.delta_files("stable", "1.1", "1.0")[-1]
    hostile.set(part["path"], Rule(status=status))
    device.configure(hostile.url, max_attempts=4)
    before = snap_update()
    r = device.run("update")
    refused_in_transaction(device, r, ul.EXIT_ERROR, ["HTTP %d" % status], retryable=False)
    paths = [e["path"] for e in hostile.requests()]
    assert paths.count("/" + part["path"]) == 1, paths
    assert len(paths) == len(set(paths)), "some URL was requested twice: %s" % paths
    assert snap_update() == before
    # terminal: the next run waits for the operator instead of retrying
    r = device.expect(ul.EXIT_ERROR, "update")
    assert "waits for the operator" in r.stderr, r.describe()
    assert [e["path"] for e in hostile.requests()].count("/" + part["path"]) == 1


def test_http_5xx_is_retried_with_backoff(device, hostile, pub):
    hostile.set(MANIFEST % "stable", Rule(fail=[503, 503]))
    part = pub.delta_files("stable", "1.1", "1.0")[-1]
    hostile.set(part["path"], Rule(fail=[502, 503]))
    device.configure(hostile.url, max_attempts=4, backoff_initial_ms=400, backoff_max_ms=5000)
    r = device.ok("update")
    m = hostile.requests(MANIFEST % "stable")
    assert [e["status"] for e in m] == [503, 503, 200], m
    # exponential backoff: about 400 ms, then 800 ms
    gaps = [m[i + 1]["start"] - m[i]["end"] for i in range(2)]
    assert 0.35 < gaps[0] < 5 and 0.75 < gaps[1] < 6 and gaps[1] - gaps[0] > 0.2, gaps
    p = hostile.requests(part["path"])
    assert [e["status"] for e in p] == [502, 503, 200], p
    assert device.slot("b")["version"] == "1.1"


def test_http_5xx_forever_gives_up_after_max_attempts(device, hostile):
    hostile.set(MANIFEST % "stable", Rule(status=503))
    device.configure(hostile.url, max_attempts=5, backoff_initial_ms=150, backoff_max_ms=300)
    before = device.snapshot()
    r = device.expect(ul.EXIT_ERROR, "update")
    assert "HTTP 503" in r.stderr, r.describe()
    m = hostile.requests(MANIFEST % "stable")
    assert len(m) == 5, m
    # 150 ms, then capped at 300 ms: 150 + 300 + 300 + 300
    gaps = [m[i + 1]["start"] - m[i]["end"] for i in range(4)]
    assert gaps[0] >= 0.12 and all(0.27 <= g < 3 for g in gaps[1:]), gaps
    assert r.elapsed < 10, r.describe()
    assert device.snapshot() == before


# ---- content: mix-and-match, unsigned commits ----------------------------


@pytest.mark.parametrize("obj", ["commit", "dirtree"])
def test_mix_and_match_objects(device, hostile, pub, snap_update, obj):
    """The manifest names commit X (1.4); the server answers X's objects
    with objects of Y (1.2) under X's names."""
    x, y = pub.commits["1.4"], pub.commits["1.2"]
    if obj == "commit":
        name, other = pub.object_path(x), pub.object_path(y)
    else:
        # the root dirtree of each commit, read from the published repo
        def root_dirtree(c):
            out = ul.run(["ostree", "--repo=" + pub.repo, "ls", "-d", "-C", c, "/usr"])
            return out.stdout.decode().split()[4]
        name = pub.object_path(root_dirtree(x), "dirtree")
        other = pub.object_path(root_dirtree(y), "dirtree")
        assert name != other
    with open(ul.os.path.join(pub.repo, other), "rb") as f:
        hostile.set(name, Rule(body=f.read()))
    device.configure(hostile.url, channel="nodelta")
    before = snap_update()
    r = device.run("update")
    refused_in_transaction(device, r, ul.EXIT_VERIFY, ["not commit %s" % x])
    assert any(e["path"] == "/" + name for e in hostile.requests()), hostile.requests()
    assert snap_update() == before, ul.diff(before, snap_update())


def test_mix_and_match_delta_swapped_by_server(device, hostile, pub, snap_update):
    """The server answers the 1.0 -> 1.1 delta's files with the 1.0 -> 1.2
    delta's (cut or padded to the declared size, so only the checksum can
    tell)."""
    want = pub.delta_files("stable", "1.1", "1.0")
    other = pub.delta_files("other", "1.2", "1.0")
    for w, o in zip(want, other):
        with open(ul.os.path.join(pub.repo, o["path"]), "rb") as f:
            data = f.read()
        data = (data + b"\0" * w["size"])[:w["size"]]
        hostile.set(w["path"], Rule(body=data))
    device.configure(hostile.url)
    before = snap_update()
    r = device.run("update")
    refused_in_transaction(device, r, ul.EXIT_VERIFY, ["does not match the manifest"])
    assert snap_update() == before, ul.diff(before, snap_update())


def test_mix_and_match_delta_listed_for_another_commit(device, hostile, pub, snap_update):
    """A signed manifest whose 1.1 (commit X) lists the files of the delta to
    1.2 (Y): the files match their checksums, but the superblock leads to Y.
    Refused before libostree applies it (issue 18: the superblock must name
    the release's commit), so no object of Y lands in the repo."""
    other = pub.delta_files("other", "1.2", "1.0")

    def lie(m):
        m["serial"] += 1
        rel = [r for r in m["releases"] if r["version"] == "1.1"][0]
        rel["deltas"][0]["files"] = other
        rel["deltas"][0]["size"] = sum(f["size"] for f in other)
    serve_manifest(hostile, "stable", *pub.craft("stable", lie))
    device.configure(hostile.url)
    before = snap_update()
    r = device.run("update")
    refused_in_transaction(device, r, ul.EXIT_VERIFY, ["to its commit %s" % pub.commits["1.1"],
                                                       "nothing was applied"])
    c = pub.commits["1.2"]
    assert not os.path.exists(device.p("ostree", "repo", "objects", c[:2], c[2:] + ".commit"))
    before = {k: v for k, v in before.items() if k != "state/update.json"}
    after = {k: v for k, v in snap_update().items() if k != "state/update.json"}
    assert after == before, ul.diff(before, after)


def test_unsigned_commit_by_delta(device, lighttpd, pub, snap_update):
    """Channel `unsigned`: a correctly signed manifest names a commit that
    has no signature (published without --gpg-sign), reached by a delta."""
    device.configure(lighttpd.url, channel="unsigned")
    before = snap_update()
    r = device.run("update")
    refused_in_transaction(device, r, ul.EXIT_VERIFY, ["not signed"])
    assert snap_update() == before, ul.diff(before, snap_update())
    assert pub.commits["1.3"] not in device.refs().values()
    # the delta wrote the unsigned commit object; the refusal takes it out
    c = pub.commits["1.3"]
    obj = device.p("ostree", "repo", "objects", c[:2], c[2:] + ".commit")
    assert not os.path.exists(obj), "unsigned commit object left in the repo"


def test_unsigned_commit_by_objects(device, hostile, pub, snap_update):
    """The same without a delta: libostree's pull verifies the signature."""
    def no_deltas(m):
        for rel in m["releases"]:
            rel["deltas"] = []
    serve_manifest(hostile, "unsigned", *pub.craft("unsigned", no_deltas))
    hostile.set_prefix("deltas/", Rule(status=404))
    hostile.set_prefix("delta-indexes/", Rule(status=404))
    device.configure(hostile.url, channel="unsigned")
    before = snap_update()
    r = device.run("update")
    refused_in_transaction(device, r, ul.EXIT_VERIFY, ["not signed"])
    assert snap_update() == before, ul.diff(before, snap_update())
