"""First installs by the from-empty static delta (issue 18).

`abdeploy publish deltas` also writes a static delta from nothing to the
newest release and lists it in the signed manifest as the release's
`full_delta` (abdeploy-manifest(5)).  A device whose repo holds no complete
commit (an empty sysroot) fetches it in a handful of requests instead of one
request per object, checks every file against the signed SHA-256 and the
commit's own signature after applying, and falls back to the object pull
only when the server has no full delta (404).

When the release also lists image packs (zstd tars of the commit's
objects), a first install prefers them: manifest, signature and the packs,
each checked against the manifest, extracted into a temporary repo and
imported from there with the signature and every object checked. The
full-delta tests serve a manifest without packs."""

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


# ---- image packs (issue 18): zstd tars of the commit's objects, extracted
# into a temporary repo and imported from there, verified ----

PACKS = "abdeploy/packs/"


def packs_of(pub, channel, version):
    rel = pub.release_of(channel, version)
    assert "packs" in rel, rel
    return rel["packs"]


def serve_packs(hostile, pub, channel, version, bodies):
    """VERSION's packs in CHANNEL's manifest replaced by BODIES (a list of
    bytes, served at the packs' paths), listed with their sizes and
    SHA-256 and signed with the trusted key: a hostile publisher."""
    commit = pub.commits[version]
    files = [{"path": "%s%s/%d.tar.zst" % (PACKS, commit, i), "size": len(b),
              "sha256": ul.sha256(b)} for i, b in enumerate(bodies)]

    def lie(m):
        m["serial"] += 1
        rel = [x for x in m["releases"] if x["version"] == version][0]
        rel["packs"] = {"size": sum(f["size"] for f in files),
                        "unpacked": rel["packs"]["unpacked"] * 4, "files": files}
    data, sig = pub.craft(channel, lie)
    hostile.set(MANIFEST % channel, Rule(body=data))
    hostile.set(SIG % channel, Rule(body=sig))
    for f, b in zip(files, bodies):
        hostile.set(f["path"], Rule(body=b))


def pack_bytes(pub, f):
    with open(os.path.join(pub.repo, f["path"]), "rb") as fh:
        return fh.read()


def packs_tmp_repos(device):
    tmp = device.p("ostree", "repo", "tmp")
    return [n for n in os.listdir(tmp) if n.startswith("abdeploy-packs-")]


def assert_installed(device, pub, version):
    st = device.status()
    slot = [s for s in "ab" if device.slot(s, st).get("commit") == pub.commits[version]]
    assert slot, st
    assert ul.compare_usr(device.p("abdeploy", "slots", slot[0]), pub.trees[version]) == []


def test_publisher_lists_the_packs(pub):
    packs = packs_of(pub, "stable", "1.1")
    commit = pub.commits["1.1"]
    assert [f["path"] for f in packs["files"]] == [
        "%s%s/%d.tar.zst" % (PACKS, commit, i) for i in range(len(packs["files"]))]
    assert packs["size"] == sum(f["size"] for f in packs["files"]) and packs["unpacked"] > 0
    for f in packs["files"]:
        data = pack_bytes(pub, f)
        assert len(data) == f["size"] and ul.sha256(data) == f["sha256"], f


def test_first_install_fetches_the_packs(empty_device, pub, lighttpd):
    """Only the manifest, its signature and the packs: no object, no delta."""
    d = empty_device
    d.configure(lighttpd.url)
    mark = lighttpd.mark()
    r = d.ok("update", "--progress=json")
    log = lighttpd.since(mark)
    packs = packs_of(pub, "stable", "1.1")
    fetched = [e["path"].lstrip("/") for e in gets(log, "/" + PACKS)]
    assert sorted(fetched) == sorted(f["path"] for f in packs["files"]), log
    assert gets(log, "/objects/") == [] and gets(log, "/deltas/") == [], log
    others = [e["path"] for e in log if not e["path"].startswith("/" + PACKS)]
    assert sorted(others) == ["/" + MANIFEST % "stable", "/" + SIG % "stable"], log
    assert all(e["status"] == 200 for e in log), log
    events = [json.loads(line) for line in r.stdout.splitlines()]
    phases = [e["phase"] for e in events if e["type"] == "phase"]
    assert "download" in phases and "unpack" in phases, phases
    totals = {e["total"] for e in events if e["type"] == "progress" and e["unit"] == "bytes"}
    assert totals == {packs["size"]}, events
    assert_installed(d, pub, "1.1")
    t = d.transaction()
    assert t["phase"] == "applied" and t["use_delta"] is True and t["from_commit"] is None, t
    assert not os.path.exists(os.path.join(d.cache_dir, "packs-" + pub.commits["1.1"]))
    assert packs_tmp_repos(d) == []


def test_pack_corrupted_is_refused_before_extraction(empty_device, hostile, pub):
    f = packs_of(pub, "stable", "1.1")["files"][0]
    data = bytearray(pack_bytes(pub, f))
    data[len(data) // 2] ^= 0x01
    hostile.set(f["path"], Rule(body=bytes(data)))
    r = refused_first_install(empty_device, hostile, ["does not match the manifest",
                                                      os.path.basename(f["path"])])
    assert "/" + f["path"] in [e["path"] for e in hostile.requests()]
    assert not [e for e in hostile.requests() if e["path"].startswith(("/objects/", "/deltas/"))]
    assert packs_tmp_repos(empty_device) == [], "the pack was extracted"
    assert empty_device.transaction()["phase"] == "failed", r.describe()


def test_packs_of_another_commit_fail_the_import(empty_device, hostile, pub):
    """A hostile publisher key lists 1.2's packs (channel other) as 1.1's:
    every file matches the signed manifest and extracts, but holds no
    commit 1.1 signed by a trusted key. Refused at the import (exit 3)."""
    bodies = [pack_bytes(pub, f) for f in packs_of(pub, "other", "1.2")["files"]]
    serve_packs(hostile, pub, "stable", "1.1", bodies)
    refused_first_install(empty_device, hostile, ["packs of release 1.1",
                                                  pub.commits["1.1"]])
    assert packs_tmp_repos(empty_device) == []
    assert not [e for e in hostile.requests() if e["path"].startswith(("/objects/", "/deltas/"))]


def tamper_one_file_object(pack):
    """PACK (zstd tar) with the content of its largest file object changed,
    its name, owner, mode and size kept."""
    import io
    import subprocess
    import tarfile
    raw = subprocess.run(["zstd", "-d", "-q", "-c"], input=pack, capture_output=True,
                         check=True).stdout
    src = tarfile.open(fileobj=io.BytesIO(raw), format=tarfile.PAX_FORMAT)
    members = src.getmembers()
    victim = max((m for m in members if m.isfile() and m.name.endswith(".file")),
                 key=lambda m: m.size)
    assert victim.size > 0
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for m in members:
            data = src.extractfile(m).read() if m.isfile() else None
            if m is victim:
                data = bytes([data[0] ^ 0x01]) + data[1:]
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    return subprocess.run(["zstd", "-q", "-c"], input=out.getvalue(), capture_output=True,
                          check=True).stdout, victim.name


def test_pack_object_that_does_not_hash_to_its_name_fails_the_import(empty_device, hostile,
                                                                     pub):
    """The signed manifest lists a pack whose file object was changed (name
    kept): extraction writes it, the import hashes it and refuses."""
    files = packs_of(pub, "stable", "1.1")["files"]
    bodies = [pack_bytes(pub, f) for f in files]
    bodies[-1], name = tamper_one_file_object(bodies[-1])
    serve_packs(hostile, pub, "stable", "1.1", bodies)
    checksum = name.split("/")[1] + name.split("/")[2].split(".")[0]
    refused_first_install(empty_device, hostile, ["packs of release 1.1", checksum])
    assert packs_tmp_repos(empty_device) == []


def test_first_install_killed_after_extraction_finishes_on_update(empty_device, lighttpd, pub):
    """SIGKILL once the packs are extracted (before the import): the next
    `update` removes the temporary repo, reuses the downloaded packs and
    finishes."""
    d = empty_device
    d.configure(lighttpd.url)
    r = d.run("update", env={"ABDEPLOY_CRASH_AT": "update:packs-extracted"})
    assert r.returncode != 0, r.describe()
    assert packs_tmp_repos(d) == ["abdeploy-packs-" + pub.commits["1.1"]]
    assert d.transaction()["phase"] == "downloaded", d.transaction()
    mark = lighttpd.mark()
    d.ok("update")
    log = lighttpd.since(mark)
    assert gets(log, "/" + PACKS) == [], "the packs were downloaded again: %s" % log
    assert gets(log, "/objects/") == [], log
    assert_installed(d, pub, "1.1")
    assert d.transaction()["phase"] == "applied"
    assert packs_tmp_repos(d) == []


def test_packs_missing_on_the_server_fall_back_to_objects(empty_device, hostile, pub):
    hostile.set_prefix(PACKS + pub.commits["1.1"], Rule(status=404))
    empty_device.configure(hostile.url)
    r = empty_device.ok("update")
    assert "no packs of 1.1" in r.stderr, r.describe()
    paths = [e["path"] for e in hostile.requests()]
    assert [p for p in paths if p.startswith("/" + PACKS)], paths
    assert [p for p in paths if p.startswith("/objects/")], paths
    assert_installed(empty_device, pub, "1.1")
    t = empty_device.transaction()
    assert t["phase"] == "applied" and t["use_delta"] is False, t


def test_packs_larger_than_the_pull_cap(empty_device, hostile, pub):
    """The signed size of 1.6's packs is above max-pull-bytes: refused
    before anything is downloaded."""
    mib = 1024 * 1024
    assert packs_of(pub, "big", "1.6")["size"] > mib
    empty_device.configure(hostile.url, channel="big", max_pull_bytes=mib)
    before = empty_device.snapshot(state_except=("update.json",))
    r = empty_device.expect(ul.EXIT_ERROR, "update")
    assert "packs of this update" in r.stderr and "max-pull-bytes=%d" % mib in r.stderr, \
        r.describe()
    assert not [e for e in hostile.requests()
                if e["path"].startswith(("/deltas/", "/objects/", "/" + PACKS))]
    assert empty_device.snapshot(state_except=("update.json",)) == before


@pytest.mark.parametrize("with_delta", [True, False], ids=["delta", "no-delta"])
def test_device_with_a_commit_does_not_use_the_packs(device, hostile, pub, with_delta):
    """1.0 is installed: the delta from it, or (none listed) the object
    pull; the packs, which hold every object, are never fetched."""
    if not with_delta:
        def no_deltas(m):
            m["serial"] += 1
            for rel in m["releases"]:
                rel["deltas"] = []
            assert "packs" in [x for x in m["releases"] if x["version"] == "1.1"][0]
        data, sig = pub.craft("stable", no_deltas)
        hostile.set(MANIFEST % "stable", Rule(body=data))
        hostile.set(SIG % "stable", Rule(body=sig))
    device.configure(hostile.url)
    device.ok("update")
    paths = [e["path"] for e in hostile.requests()]
    assert not [p for p in paths if p.startswith("/" + PACKS)], paths
    assert bool([p for p in paths if p.startswith("/objects/")]) is not with_delta, paths
    assert device.transaction()["use_delta"] is with_delta
    assert device.slot("b")["commit"] == pub.commits["1.1"]
