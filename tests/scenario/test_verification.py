"""Fail-closed verification: bad signatures exit 3, damaged content is an
error, and in both cases nothing on disk changes."""

import os

import pytest

import scenariolib as sl


def _prepared(sr, server):
    """v1 deployed, v2 staged in the other slot (the slot a bad stage
    would replace)."""
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    primary = sr.status()["primary"]
    sr.ok("stage", "--from=" + server.url, "os/v2")
    return primary


CASES = {
    # name: (ref, keys left in trusted.gpg.d)
    "unsigned": ("os/unsigned", ("trusted.gpg",)),
    "untrusted-key": ("os/evil", ("trusted.gpg",)),
    "empty-trusted-dir": ("os/v3", ()),
}


@pytest.mark.parametrize("source", ["http", "local"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_signature_refused(sysroot, server, published, case, source):
    ref, keys = CASES[case]
    primary = _prepared(sysroot, server)
    if not keys:
        for name in os.listdir(sysroot.trusted_dir):
            os.unlink(os.path.join(sysroot.trusted_dir, name))
    st = sysroot.status()
    before = sysroot.snapshot()
    src = server.url if source == "http" else published.path

    r = sysroot.run("stage", "--from=" + src, ref)

    assert r.returncode == sl.EXIT_VERIFY, r.describe()
    msg = r.output.lower()
    assert "signature" in msg, "message does not mention the signature:\n" + r.describe()
    if case != "unsigned":
        assert "trusted" in msg, "message does not say how to fix it (trusted keys):\n" + r.describe()
    after = sysroot.snapshot()
    assert after == before, "refused stage changed the disk:\n" + sl.diff_snapshots(before, after)
    assert sysroot.status() == st

    # the staged v2 is still intact and can be activated
    sysroot.ok("activate")
    st = sysroot.status()
    assert st["primary"] == sl.other(primary)
    assert sysroot.slot_status(st["primary"], st)["commit"] == published.v2.commit


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_signature_refused_by_deploy(sysroot, server, case):
    ref, keys = CASES[case]
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    if not keys:
        for name in os.listdir(sysroot.trusted_dir):
            os.unlink(os.path.join(sysroot.trusted_dir, name))
    before = sysroot.snapshot()
    r = sysroot.run("deploy", "--from=" + server.url, ref)
    assert r.returncode == sl.EXIT_VERIFY, r.describe()
    assert "signature" in r.output.lower(), r.describe()
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)


@pytest.mark.parametrize("source", ["http", "local"])
def test_refusal_names_signer_and_trusted_keys(sysroot, server, published, keys, source):
    # issue 16: the signer's key id (libostree reports no more of a key it
    # does not have), the trusted fingerprints and the real directory
    src = server.url if source == "http" else published.path
    r = sysroot.run("stage", "--from=" + src, "os/evil")
    assert r.returncode == sl.EXIT_VERIFY, r.describe()
    assert "key id " + keys.untrusted[-16:].upper() in r.output, r.describe()
    assert "fingerprint " + keys.trusted.upper() in r.output, r.describe()
    assert sysroot.trusted_dir in r.output, r.describe()
    assert "SYSROOT/" not in r.output, r.describe()
    r = sysroot.run("stage", "--from=" + src, "os/unsigned")
    assert r.returncode == sl.EXIT_VERIFY, r.describe()
    assert "not signed" in r.output and keys.trusted.upper() in r.output, r.describe()


def test_update_without_url_names_the_real_config_file(sysroot):
    r = sysroot.run("update")
    assert r.returncode == sl.EXIT_ERROR, r.describe()
    assert os.path.join(sysroot.path, "etc/abdeploy/abdeploy.conf") in r.output, r.describe()
    assert "SYSROOT/" not in r.output, r.describe()


def test_only_gpg_and_asc_files_are_trusted(sysroot, server, keyfiles):
    # the intruder's key lying next to the trusted keys, or in the
    # directory under another extension, does not count
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    sl.run(["cp", keyfiles["untrusted.gpg"],
            os.path.join(os.path.dirname(sysroot.trusted_dir), "intruder.gpg")])
    sl.run(["cp", keyfiles["untrusted.gpg"],
            os.path.join(sysroot.trusted_dir, "intruder.gpg.disabled")])
    before = sysroot.snapshot()
    r = sysroot.run("stage", "--from=" + server.url, "os/evil")
    assert r.returncode == sl.EXIT_VERIFY, r.describe()
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)


def test_untrusted_key_becomes_trusted_when_installed(sysroot, server, keyfiles, published):
    # proves the refusal above is about the key, not about the commit
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    sl.run(["cp", keyfiles["untrusted.gpg"], os.path.join(sysroot.trusted_dir, "intruder.gpg")])
    sysroot.ok("stage", "--from=" + server.url, "os/evil")
    st = sysroot.status()
    staged = [s for s in st["slots"] if s["state"] == "staged"]
    assert staged and staged[0]["commit"] == published.evil.commit, st


@pytest.mark.parametrize("flag", ["--no-gpg-verify", "--no-verify", "--insecure",
                                  "--skip-verification", "--force"])
def test_no_flag_bypasses_verification(sysroot, server, flag):
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    before = sysroot.snapshot()
    for args in (["stage", flag, "--from=" + server.url, "os/unsigned"],
                 [flag, "stage", "--from=" + server.url, "os/unsigned"]):
        r = sysroot.run(*args)
        assert r.returncode != 0, r.describe()
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)


@pytest.mark.parametrize("conf", [
    "[update]\ngpg-verify=false\n",
    "[content]\ngpg-verify=false\nverify=false\n",
    "[security]\nverify-signatures=false\n",
])
def test_no_config_key_bypasses_verification(sysroot, server, conf):
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    with open(sysroot.p("etc", "abdeploy", "abdeploy.conf"), "w") as f:
        f.write(conf)
    before = sysroot.snapshot()
    r = sysroot.run("stage", "--from=" + server.url, "os/unsigned")
    assert r.returncode != 0, r.describe()
    # issue 10: such keys are not merely ignored, they are refused by name
    assert "unknown" in r.stderr and "abdeploy.conf" in r.stderr, r.describe()
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)


def test_corrupted_object_on_server(sysroot, server, corrupt_server, published):
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    primary = sysroot.status()["primary"]
    sysroot.ok("stage", "--from=" + server.url, "os/v3")
    st = sysroot.status()
    before = sysroot.snapshot()

    r = sysroot.run("stage", "--from=" + corrupt_server.url, "os/v2")

    assert r.returncode in (sl.EXIT_ERROR, sl.EXIT_VERIFY), r.describe()
    assert r.output.strip(), "failed without a message"
    after = sysroot.snapshot()
    assert after == before, "failed stage changed the disk:\n" + sl.diff_snapshots(before, after)
    assert sysroot.status() == st
    # the staged v3 survived and a later good pull of v2 works
    sysroot.ok("activate")
    assert sysroot.status()["primary"] == sl.other(primary)
    sysroot.ok("stage", "--from=" + server.url, "os/v2")
    s = sysroot.slot_status(primary)
    assert s["state"] == "staged" and s["commit"] == published.v2.commit, s
    assert sl.slot_problems(sysroot, primary, published.v2) == []


def _closed_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("what", ["unknown-ref", "no-server", "not-a-repo"])
def test_failed_pull_changes_nothing(sysroot, server, published, what):
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    before = sysroot.snapshot()
    if what == "unknown-ref":
        args = ["--from=" + server.url, "os/does-not-exist"]
    elif what == "no-server":
        args = ["--from=http://127.0.0.1:%d" % _closed_port(), "os/v2"]
    else:
        args = ["--from=" + published.images["v1"].tree, "os/v2"]
    r = sysroot.run("stage", *args, timeout=90)
    # a --from that is no repository at all may count as a usage error
    allowed = {sl.EXIT_ERROR, sl.EXIT_USAGE} if what == "not-a-repo" else {sl.EXIT_ERROR}
    assert r.returncode in allowed, r.describe()
    assert r.output.strip()
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)
