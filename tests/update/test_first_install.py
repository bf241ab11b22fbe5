"""First installs by the from-empty static delta (issue 18).

`abdeploy publish deltas` also writes a static delta from nothing to the
newest release and lists it in the signed manifest as the release's
`full_delta` (abdeploy-manifest(5)).  A device whose repo holds no complete
commit (an empty sysroot) fetches it in a handful of requests instead of one
request per object, checks every file against the signed SHA-256 and the
commit's own signature after applying, and falls back to the object pull
only when the server has no full delta (404)."""

import json
import os

import pytest

import updlib as ul
from hostile import Rule

MANIFEST = "abdeploy/channels/%s.json"
SIG = "abdeploy/channels/%s.json.sig"
STATE_FILES = ("transaction.json", "history.json", "update.json")


def full_delta(pub, channel, version):
    rel = pub.release_of(channel, version)
    assert "full_delta" in rel, rel
    return rel["full_delta"]


def drop_packs(m):
    """The full-delta tests: a manifest without packs (as a publisher
    before issue 18's packs, or with --no-packs, writes it)."""
    for rel in m["releases"]:
        rel.pop("packs", None)


def gets(log, prefix):
    return [e for e in log if e["path"].startswith(prefix)]


@pytest.fixture
def empty_device(devices, keyfiles):
    """A sysroot after `abdeploy init`: no release installed, an empty repo."""
    d = devices.create([keyfiles["trusted"]])
    d.set_machine_id("0123456789abcdef0123456789abcdef")
    return d


def refused_first_install(device, server, words, code=ul.EXIT_VERIFY):
    """`update` on an empty device fails with CODE and WORDS; nothing is
    installed: no slot, no ref, no commit in the repo."""
    device.configure(server.url)
    before = device.snapshot(state_except=STATE_FILES)
    r = device.run("update")
    assert r.returncode == code, "expected exit %d\n%s" % (code, r.describe())
    for w in words:
        assert w.lower() in r.stderr.lower(), "%r not in the message\n%s" % (w, r.describe())
    after = device.snapshot(state_except=STATE_FILES)
    assert after == before, ul.diff(before, after)
    assert device.refs() == {}
    objects = device.p("ostree", "repo", "objects")
    commits = [n for _, _, fs in os.walk(objects) for n in fs if n.endswith(".commit")]
    assert commits == [], "a commit was left in the repo: %s" % commits
    return r


def test_publisher_lists_the_full_delta(pub):
    """The listing invariants of a delta, for a delta from nothing."""
    fd = full_delta(pub, "stable", "1.1")
    assert "from" not in fd
    commit = pub.commits["1.1"]
    assert fd["files"][0]["path"] == ul.full_delta_dir(commit) + "/superblock"
    assert fd["size"] == sum(f["size"] for f in fd["files"])
    for f in fd["files"]:
        assert f["path"].startswith("deltas/") and ".." not in f["path"].split("/")
        with open(os.path.join(pub.repo, f["path"]), "rb") as fh:
            data = fh.read()
        assert len(data) == f["size"] and ul.sha256(data) == f["sha256"], f
    # only the newest release gets one; older releases keep their listing
    assert "full_delta" not in pub.release_of("stable", "1.0")


def test_first_install_fetches_the_full_delta(empty_device, pub, hostile):
    d = empty_device
    serve_without_packs(hostile, pub, "stable")
    d.configure(hostile.url)
    r = d.ok("update", "--progress=json")
    log = hostile.requests()
    fd = full_delta(pub, "stable", "1.1")
    fetched = {e["path"].lstrip("/"): e for e in gets(log, "/deltas/")}
    assert set(fetched) == {f["path"] for f in fd["files"]}, log
    assert gets(log, "/objects/") == [], "first install fetched loose objects: %s" % log
    # a handful of requests: manifest, signature and the delta's files
    assert len(log) <= 2 + len(fd["files"]) + 1, log
    assert all(e["status"] == 200 for e in log), log
    events = [json.loads(line) for line in r.stdout.splitlines()]
    totals = {e["total"] for e in events if e["type"] == "progress" and e["unit"] == "bytes"}
    assert totals == {fd["size"]}, events
    st = d.status()
    slot = [s for s in ("a", "b") if d.slot(s, st).get("commit") == pub.commits["1.1"]]
    assert slot, st
    assert ul.compare_usr(d.p("abdeploy", "slots", slot[0]), pub.trees["1.1"]) == []
    t = d.transaction()
    assert t["phase"] == "applied" and t["use_delta"] is True and t["from_commit"] is None, t
    assert not os.path.exists(os.path.join(d.cache_dir, "delta-" + pub.commits["1.1"]))


def test_device_with_a_commit_pulls_objects_not_the_full_delta(device, hostile, pub):
    """1.0 is installed and the manifest lists no delta from it: the object
    pull fetches only what changed; the full delta would fetch everything."""
    def no_deltas(m):
        m["serial"] += 1
        for rel in m["releases"]:
            rel["deltas"] = []
        drop_packs(m)
    data, sig = pub.craft("stable", no_deltas)
    hostile.set(MANIFEST % "stable", Rule(body=data))
    hostile.set(SIG % "stable", Rule(body=sig))
    device.configure(hostile.url)
    device.ok("update")
    paths = [e["path"] for e in hostile.requests()]
    # (libostree's pull takes the 1.0 -> 1.1 delta it finds in the repo's
    # delta index on its own; the full delta is never touched)
    full = "/" + ul.full_delta_dir(pub.commits["1.1"]) + "/"
    assert not [p for p in paths if p.startswith(full)], paths
    assert "/" + pub.object_path(pub.commits["1.1"]) in paths, paths
    assert device.slot("b")["commit"] == pub.commits["1.1"]
    assert device.transaction()["use_delta"] is False


def test_full_delta_part_corrupted_is_refused(empty_device, hostile, pub):
    serve_without_packs(hostile, pub, "stable")
    part = full_delta(pub, "stable", "1.1")["files"][-1]
    hostile.set(part["path"], Rule(body=b"\x5a" * part["size"]))
    r = refused_first_install(empty_device, hostile, ["does not match the manifest",
                                                      os.path.basename(part["path"])])
    assert "/" + part["path"] in [e["path"] for e in hostile.requests()]
    assert not [e for e in hostile.requests() if e["path"].startswith("/objects/")]
    assert empty_device.transaction()["phase"] == "failed", r.describe()


def test_full_delta_superblock_of_another_release_is_refused(empty_device, hostile, pub):
    """The server answers the superblock of 1.1's full delta with that of
    1.6 (channel big), cut or padded to the signed size."""
    want = full_delta(pub, "stable", "1.1")["files"][0]
    other = full_delta(pub, "big", "1.6")["files"][0]
    serve_without_packs(hostile, pub, "stable")
    with open(os.path.join(pub.repo, other["path"]), "rb") as f:
        data = (f.read() + b"\0" * want["size"])[:want["size"]]
    hostile.set(want["path"], Rule(body=data))
    refused_first_install(empty_device, hostile, ["does not match the manifest", "superblock"])


def test_full_delta_listed_with_a_from_is_malformed(empty_device, hostile, pub):
    def add_from(m):
        m["serial"] += 1
        rel = [x for x in m["releases"] if x["version"] == "1.1"][0]
        rel["full_delta"]["from"] = pub.commits["1.0"]
        drop_packs(m)
    data, sig = pub.craft("stable", add_from)
    hostile.set(MANIFEST % "stable", Rule(body=data))
    hostile.set(SIG % "stable", Rule(body=sig))
    # a malformed manifest is an error (exit 1), as everywhere else
    refused_first_install(empty_device, hostile, ["full_delta", "from"], code=ul.EXIT_ERROR)
    assert not [e for e in hostile.requests() if e["path"].startswith(("/deltas/", "/objects/"))]


def test_full_delta_whose_superblock_starts_from_a_commit_is_refused(empty_device, hostile, pub):
    """A signed manifest whose full delta lists the files of the delta
    1.0 -> 1.1: every checksum matches, but the superblock starts from 1.0."""
    files = pub.delta_files("stable", "1.1", "1.0")

    def lie(m):
        m["serial"] += 1
        rel = [x for x in m["releases"] if x["version"] == "1.1"][0]
        rel["full_delta"] = {"size": sum(f["size"] for f in files), "files": files}
        drop_packs(m)
    data, sig = pub.craft("stable", lie)
    hostile.set(MANIFEST % "stable", Rule(body=data))
    hostile.set(SIG % "stable", Rule(body=sig))
    refused_first_install(empty_device, hostile, ["full delta", "leads from " + pub.commits["1.0"]])


def test_full_delta_missing_on_the_server_falls_back_to_objects(empty_device, hostile, pub):
    fd = full_delta(pub, "stable", "1.1")
    serve_without_packs(hostile, pub, "stable")
    hostile.set_prefix(os.path.dirname(fd["files"][0]["path"]), Rule(status=404))
    empty_device.configure(hostile.url)
    r = empty_device.ok("update")
    assert "no full delta of 1.1" in r.stderr, r.describe()
    paths = [e["path"] for e in hostile.requests()]
    assert "/" + fd["files"][0]["path"] in paths, paths
    assert [p for p in paths if p.startswith("/objects/")], paths
    st = empty_device.status()
    assert any(empty_device.slot(s, st).get("commit") == pub.commits["1.1"] for s in "ab"), st
    t = empty_device.transaction()
    assert t["phase"] == "applied" and t["use_delta"] is False, t


def test_first_install_killed_halfway_resumes_by_the_full_delta(empty_device, hostile, pub):
    """SIGKILL halfway through the largest part of 1.6's full delta; `resume`
    fetches only the rest (HTTP Range) and finishes by the full delta."""
    d = empty_device
    fd = full_delta(pub, "big", "1.6")
    part = max(fd["files"], key=lambda f: f["size"])
    assert part["size"] > 1024 * 1024, fd
    hostile.set(part["path"], Rule(bps=300 * 1024, bps_requests=1))
    serve_without_packs(hostile, pub, "big")
    d.configure(hostile.url, channel="big")
    path = os.path.join(d.cache_dir, "delta-" + pub.commits["1.6"],
                        os.path.basename(part["path"]) + ".part")
    size = lambda: os.path.getsize(path) if os.path.exists(path) else 0
    proc = d.popen("update")
    try:
        ul.wait_for(lambda: size() >= part["size"] * 0.4 or proc.poll() is not None,
                    30, "the full delta's part to be 40 % downloaded")
        assert proc.poll() is None, "update ended before it was killed: %r" % (
            proc.communicate(),)
        proc.send_signal(ul.signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    have = size()
    assert 0 < have < part["size"], have
    r = d.ok("resume")
    assert "Resuming the update to 1.6" in r.stdout, r.describe()
    reqs = hostile.requests(part["path"])
    assert len(reqs) == 2 and reqs[1]["range"] == "bytes=%d-" % have, reqs
    assert not [e for e in hostile.requests() if e["path"].startswith("/objects/")]
    t = d.transaction()
    assert t["phase"] == "applied" and t["use_delta"] is True and t["attempts"] == 2, t
    st = d.status()
    slot = [s for s in "ab" if d.slot(s, st).get("commit") == pub.commits["1.6"]]
    assert slot and ul.compare_usr(d.p("abdeploy", "slots", slot[0]), pub.trees["1.6"]) == []


def test_full_delta_larger_than_the_pull_cap(empty_device, hostile, pub):
    """The signed size of 1.6's full delta is above max-pull-bytes: refused
    before anything is downloaded, as for any delta."""
    mib = 1024 * 1024
    assert full_delta(pub, "big", "1.6")["size"] > mib
    serve_without_packs(hostile, pub, "big")
    empty_device.configure(hostile.url, channel="big", max_pull_bytes=mib)
    before = empty_device.snapshot(state_except=("update.json",))
    r = empty_device.expect(ul.EXIT_ERROR, "update")
    assert "max-pull-bytes=%d" % mib in r.stderr, r.describe()
    assert not [e for e in hostile.requests() if e["path"].startswith(("/deltas/", "/objects/"))]
    after = empty_device.snapshot(state_except=("update.json",))
    assert after == before, ul.diff(before, after)


def serve_without_packs(hostile, pub, channel):
    """CHANNEL's manifest as published, but without packs (re-signed): a
    server of a publisher older than packs, for the full-delta tests."""
    def drop(m):
        m["serial"] += 1
        drop_packs(m)
    data, sig = pub.craft(channel, drop)
    hostile.set(MANIFEST % channel, Rule(body=data))
    hostile.set(SIG % channel, Rule(body=sig))
