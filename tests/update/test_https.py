"""HTTPS: lighttpd on 127.0.0.1 with a certificate from a CA that the test
makes; the device trusts that CA through [update] ca-file, and fails closed
without it or with another CA."""

import os

import pytest

import updlib as ul


@pytest.fixture(scope="session")
def tls(workdir):
    return ul.make_tls(os.path.join(workdir, "tls-good"))


@pytest.fixture(scope="session")
def other_ca(workdir):
    return ul.make_tls(os.path.join(workdir, "tls-other"))[0]


@pytest.fixture(scope="session")
def https(workdir, pub, tls):
    s = ul.Lighttpd(pub.repo, workdir, name="lighttpd-tls", tls=tls[1]).start()
    yield s
    s.stop()


def test_https_update_with_the_test_ca(device, pub, https, tls):
    assert https.url.startswith("https://127.0.0.1:")
    device.configure(https.url, ca_file=tls[0])
    mark = https.mark()
    r, c = device.check()
    assert r.returncode == ul.EXIT_OK and c["offered_version"] == "1.1", r.describe()
    device.ok("update")
    log = https.since(mark)
    files = pub.delta_files("stable", "1.1", "1.0")
    got = [e["path"].lstrip("/") for e in log if e["path"].startswith("/deltas/")]
    assert sorted(got) == sorted(f["path"] for f in files), log
    assert device.slot("b")["version"] == "1.1"


@pytest.mark.parametrize("ca", ["none", "other-ca"])
def test_https_fails_closed_without_the_ca(device, pub, https, other_ca, ca):
    device.configure(https.url, ca_file=other_ca if ca == "other-ca" else None)
    mark = https.mark()
    before = device.snapshot()
    for args in (("check-update",), ("update",)):
        r = device.expect(ul.EXIT_ERROR, *args)
        assert "certificate" in r.stderr.lower() or "ssl" in r.stderr.lower(), r.describe()
    assert device.snapshot() == before
    # the TLS handshake failed: no request reached the server
    assert [e for e in https.since(mark) if e["method"] == "GET"] == []


def test_https_objects_path_with_the_test_ca(device, pub, https, tls):
    """Without a delta the commit's objects come through libostree's own
    HTTP client, which needs the CA too (remote option tls-ca-path)."""
    device.configure(https.url, channel="nodelta", ca_file=tls[0])
    r = device.run("update")
    assert r.returncode == 0, r.describe()
    assert device.slot("b")["version"] == "1.4"
