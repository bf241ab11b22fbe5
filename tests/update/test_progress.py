"""Progress of the long commands (issue 12, point 6; abdeploy(8), PROGRESS):
--progress=json on a descriptor of its own (--progress-fd=N), the JSON lines
checked against the rules (every key, phases in order, done <= total, done
never down in a phase), the download total against the commit's signed size
index, the checkout total against the commit's files; the bar under a
pseudo-terminal; bad values.  Real gpg keys, releases made by
`abdeploy publish`, lighttpd on 127.0.0.1."""

import json
import os
import re
import select
import subprocess
import tempfile
import time

import pytest

import updlib as ul
import abtest as at
from hostile import Rule
import sizeindex  # tests/lib

KEYS = {"type", "phase", "done", "total", "unit"}
TYPES = {"start", "phase", "progress", "message", "warning", "result"}
UNITS = {"bytes", "objects", "files"}


def run_json(dev, *args, expect=0):
    """Runs abdeploy ARGS --progress=json --progress-fd=N with N a file of
    its own; returns (Result, the parsed JSON lines)."""
    with tempfile.TemporaryFile() as f:
        fd = os.dup(f.fileno())
        try:
            cmd = dev.cmd(*args, "--progress=json", "--progress-fd=%d" % fd)
            p = subprocess.run(cmd, env=dev.env(), capture_output=True, timeout=300,
                               stdin=subprocess.DEVNULL, pass_fds=(fd,))
        finally:
            os.close(fd)
        f.seek(0)
        text = f.read().decode()
    r = at.Result(cmd, p.returncode, p.stdout.decode(errors="replace"),
                  p.stderr.decode(errors="replace"), 0.0)
    assert p.returncode == expect, "expected exit %d\n%s\nJSON:\n%s" % (expect, r.describe(), text)
    assert text.endswith("\n"), text
    lines = [json.loads(line) for line in text.splitlines()]
    check_rules(lines)
    return r, lines


def check_rules(lines):
    """The rules of abdeploy(8), PROGRESS."""
    assert lines[0]["type"] == "start" and lines[0]["format"] == 1, lines[0]
    assert lines[-1]["type"] == "result", lines[-1]
    last = {}
    for e in lines:
        assert KEYS <= set(e), e
        assert e["type"] in TYPES, e
        if e["type"] == "phase":
            last = {}
        if e["type"] != "progress":
            assert e["done"] is None and e["total"] is None and e["unit"] is None, e
            continue
        assert e["unit"] in UNITS and isinstance(e["done"], int), e
        assert e["total"] is None or 0 <= e["done"] <= e["total"], e
        prev = last.get(e["unit"])
        assert prev is None or e["done"] >= prev["done"], (prev, e)
        assert prev is None or (prev["done"], prev["total"]) != (e["done"], e["total"]), (prev, e)
        last[e["unit"]] = e


def phases(lines):
    return [e["phase"] for e in lines if e["type"] == "phase"]


def progress_of(lines, phase, unit=None):
    return [e for e in lines if e["type"] == "progress" and e["phase"] == phase
            and (unit is None or e["unit"] == unit)]


def commit_files(repo, commit):
    """{checksum: archived size} of the file objects of COMMIT in the archive
    REPO, and the number of non-directory entries of its tree."""
    out = at.run(["ostree", "ls", "--repo=" + repo, "-R", "-C", commit]).stdout.decode()
    objects, entries = {}, 0
    for line in out.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("d"):
            continue
        entries += 1
        csum = next(f for f in fields if re.fullmatch(r"[0-9a-f]{64}", f))
        objects[csum] = os.path.getsize(
            os.path.join(repo, "objects", csum[:2], csum[2:] + ".filez"))
    return objects, entries


OBJECT_SUFFIX = {1: ".file", 2: ".dirtree", 3: ".dirmeta", 4: ".commit"}


def signed_sizes(repo, commit):
    """[(checksum, object type, archived size)] of the commit's size index
    file (abdeploy/sizes/COMMIT.sizes, issue 18), whose SHA-256 the signed
    manifest lists."""
    entries = [(csum, objtype, archived)
               for csum, objtype, archived, _ in sizeindex.read(repo, commit)]
    assert entries
    return entries


def missing_bytes(dev, pub_repo, commit):
    """Signed archived bytes of the objects of COMMIT that the device's
    (bare) repo lacks: the download total."""
    repo = dev.p("ostree", "repo", "objects")
    return sum(size for csum, objtype, size in signed_sizes(pub_repo, commit)
               if not os.path.exists(os.path.join(repo, csum[:2],
                                                  csum[2:] + OBJECT_SUFFIX[objtype])))


def check_checkout(lines, files):
    co = progress_of(lines, "checkout", "files")
    assert co and all(e["total"] == files for e in co), co
    assert co[-1]["done"] == files, co


def test_stage_json_download_counts_objects(device, pub, lighttpd):
    """stage from the server fetches no size index (issue 18: it is a file
    the manifest lists, and stage --from reads no manifest): objects out of
    those requested, then files out of the commit's files."""
    _, files = commit_files(pub.repo, pub.commits["1.4"])
    r, lines = run_json(device, "stage", "--from=" + lighttpd.url, pub.commits["1.4"])
    assert phases(lines) == ["download", "verify", "checkout", "install"], lines
    dl = progress_of(lines, "download")
    assert dl and all(e["unit"] == "objects" for e in dl), dl
    assert dl[-1]["done"] == dl[-1]["total"] > 0, dl
    check_checkout(lines, files)
    assert lines[-1]["result"] == "ok" and "Staged" in lines[-1]["message"], lines[-1]
    # the text output is as without --progress
    assert r.stdout == "Staged %s into slot b\n" % pub.commits["1.4"], r.describe()


def test_deploy_json_has_an_activate_phase(device, pub, lighttpd):
    objects, files = commit_files(pub.repo, pub.commits["1.2"])
    r, lines = run_json(device, "deploy", "--from=" + lighttpd.url, pub.commits["1.2"])
    assert phases(lines) == ["download", "verify", "checkout", "install", "activate"], lines
    check_checkout(lines, files)
    assert "Activated slot b" in r.stdout, r.describe()


def test_update_json_delta_total_is_the_manifest_sizes(device, pub):
    """update by delta: bytes out of the sizes the signed manifest lists."""
    signed = sum(f["size"] for f in pub.delta_files("stable", "1.1", "1.0"))
    _, files = commit_files(pub.repo, pub.commits["1.1"])
    r, lines = run_json(device, "update")
    assert phases(lines) == ["download", "unpack", "verify", "checkout", "install",
                             "activate"], lines
    dl = progress_of(lines, "download")
    assert dl and all(e["unit"] == "bytes" and e["total"] == signed for e in dl), dl
    assert dl[-1]["done"] == signed, dl
    check_checkout(lines, files)
    assert lines[-1]["result"] == "ok", lines[-1]
    assert r.stdout == "Update installed; it boots next, in trial mode\n", r.describe()


def test_update_json_objects_total_is_the_signed_sizes(device, pub, lighttpd):
    device.configure(lighttpd.url, channel="nodelta")
    objects, files = commit_files(pub.repo, pub.commits["1.4"])
    expected = missing_bytes(device, pub.repo, pub.commits["1.4"])
    r, lines = run_json(device, "update")
    assert phases(lines) == ["download", "verify", "checkout", "install", "activate"], lines
    dl = progress_of(lines, "download")
    assert dl and all(e["unit"] == "bytes" and e["total"] == expected for e in dl), dl
    assert dl[-1]["done"] == expected
    check_checkout(lines, files)


def test_resume_json(device, pub, hostile):
    """A failed update resumed: the message naming it, then the phases from
    the recorded one on."""
    part = next(f for f in pub.delta_files("big", "1.6", "1.0") if f["size"] > 1024 * 1024)
    hostile.set(part["path"], Rule(status=404))
    device.configure(hostile.url, channel="big")
    _, lines = run_json(device, "update", expect=ul.EXIT_ERROR)
    assert lines[-1]["result"] == "failed" and "404" in lines[-1]["message"], lines[-1]
    hostile.clear()
    r, lines = run_json(device, "resume")
    msgs = [e["message"] for e in lines if e["type"] == "message"]
    assert msgs == ["Resuming the update to 1.6 from phase downloading"], lines
    assert "Resuming" in r.stdout  # JSON elsewhere: the text stays on stdout
    assert phases(lines)[0] == "download" and phases(lines)[-1] == "activate", lines
    signed = sum(f["size"] for f in pub.delta_files("big", "1.6", "1.0"))
    assert progress_of(lines, "download")[-1]["done"] == signed, lines


def test_json_on_stdout_carries_nothing_else(device, pub, lighttpd):
    """Without --progress-fd the JSON lines go to stdout, and the command's
    text moves into the result line."""
    r = device.ok("stage", "--from=" + lighttpd.url, "--progress=json", pub.commits["1.2"])
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    check_rules(lines)
    assert lines[-1]["message"] == "Staged %s into slot b" % pub.commits["1.2"], lines[-1]


def test_bad_progress_values_are_usage_errors(device, pub):
    before = device.snapshot()
    for args, what in ((["--progress=fancy"], "--progress=fancy"),
                       (["--progress=json", "--progress-fd=77"], "not open"),
                       (["--progress-fd=-1"], "--progress-fd=-1"),
                       (["--progress-fd=x"], "--progress-fd=x")):
        for cmd in (["stage", pub.commits["1.2"]], ["deploy", pub.commits["1.2"]],
                    ["update"], ["resume"], ["verify", "--full"], ["backup", "--output=/nowhere.tar"],
                    ["restore", "--path=/nowhere"],
                    ["publish", "commit", "--repo=/nowhere", "--tree=/", "--version=1"],
                    ["publish", "deltas", "--repo=/nowhere", "--channel=x"]):
            r = device.expect(ul.EXIT_USAGE, *(cmd + args))
            assert what in r.stderr, r.describe()
    r = subprocess.run(device.cmd("update", "--progress=json", "--progress-fd=0"),
                       env=device.env(), capture_output=True, timeout=60,
                       stdin=open(os.devnull, "rb"))
    assert r.returncode == ul.EXIT_USAGE and b"reading only" in r.stderr, r
    assert device.snapshot() == before


def run_pty(dev, *args, timeout=120):
    """ARGS with stdout and stderr on a pseudo-terminal: (exit code, bytes)."""
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen(dev.cmd(*args), stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                         env=dev.env())
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    return p.wait(timeout=30), out


def test_bar_rewrites_one_line(device, pub):
    """The bar on a terminal (auto): carriage returns and erase-line, a
    percentage, never a newline of its own; then the text result."""
    rc, out = run_pty(device, "update")
    text = out.decode(errors="replace")
    assert rc == 0, text
    bar, _, rest = text.rpartition("\r\x1b[K")
    assert rest == "Update installed; it boots next, in trial mode\r\n", repr(text)
    assert "\n" not in bar, "the bar scrolled: %r" % text
    assert re.search(r"\d+%", bar) and "checkout" in bar and "download" in bar, repr(text)
    assert "ETA" in bar or "/s" in bar, repr(text)


def test_verify_full_json_counts_the_commit_files(device, pub):
    _, files = commit_files(pub.repo, pub.commits["1.0"])
    # no health verdict on this device: verify exits 1, the tree check passes
    r, lines = run_json(device, "verify", "--full", expect=ul.EXIT_ERROR)
    assert phases(lines) == ["verify"], lines
    v = progress_of(lines, "verify", "files")
    assert v and all(e["total"] == files for e in v) and v[-1]["done"] == files, v
    assert "PASS tree-matches-commit" in r.stdout, r.describe()


def test_backup_and_restore_json(device, tmp_path):
    archive = str(tmp_path / "backup.tar")
    r, lines = run_json(device, "backup", "--output=" + archive)
    assert phases(lines) == ["collect", "write"], lines
    w = progress_of(lines, "write", "bytes")
    assert w[-1]["done"] == w[-1]["total"] == os.path.getsize(archive), w
    files = progress_of(lines, "collect", "files")[-1]["done"]
    assert "Backed up %d files" % files in r.stdout, r.describe()
    r, lines = run_json(device, "restore", "--path=" + archive)
    assert phases(lines)[:2] == ["check", "restore"], lines
    rs = progress_of(lines, "restore", "files")
    assert rs[-1]["done"] == rs[-1]["total"] == files, rs
    assert "Restored %d files" % files in r.stdout, r.describe()


def test_publish_commit_and_deltas_json(workdir, abdeploy_bin, gpg):
    p = ul.Publisher(os.path.join(workdir, "publish-progress"), abdeploy_bin, gpg)
    p.commit("1.0", ul.image_spec("1.0"))
    p.release("stable", "1.0")
    tree = ul.write_tree(os.path.join(p.root, "tree-1.1"),
                         ul.image_spec("1.1", changed=ul.CHANGED_11))
    files = sum(len(f) for _, _, f in os.walk(tree))
    r = p.publish("commit", "--tree=" + tree, "--version=1.1", "--progress=json")
    lines = [json.loads(line) for line in r.stdout.decode().splitlines()]
    check_rules(lines)
    assert phases(lines) == ["commit", "sign", "summary"], lines
    c = progress_of(lines, "commit", "files")
    assert c and all(e["total"] == files for e in c) and c[-1]["done"] == files, c
    assert re.fullmatch(r"[0-9a-f]{64}", lines[-1]["message"]), lines[-1]
    p.release("stable", "1.1")
    r = p.publish("deltas", "--channel=stable", "--progress=json")
    lines = [json.loads(line) for line in r.stdout.decode().splitlines()]
    check_rules(lines)
    assert phases(lines) == ["generate", "packs", "summary", "manifest"], lines
    assert "Delta " in lines[-1]["message"] and lines[-1]["result"] == "ok", lines[-1]
