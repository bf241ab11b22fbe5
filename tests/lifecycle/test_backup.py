"""`abdeploy backup --output=FILE` and `abdeploy restore --path=FILE`.

The archive holds what is not content-addressed: SYSROOT/etc/abdeploy
(configuration, trusted keys), SYSROOT/abdeploy/state, the boot pointer and
the refs of both slots.  A restore that is refused must change nothing on
disk: every entry of the sysroot (type, mode, inode, mtime, content) is
compared before and after, except the repo's content-addressed objects and
the pid written into abdeploy/lock (see lifecyclelib.disk_snapshot).
"""

import base64
import hashlib
import json
import os
import re

import shutil
import subprocess
import tarfile

import pytest

import backuparchive as ba  # tests/lib
import lifecyclelib as ll
from lifecyclelib import bootsim, sl

TRUSTED_KEY = os.path.join("etc", "abdeploy", "trusted.gpg.d", "publisher.gpg")


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def rm_f(path):
    if os.path.lexists(path):
        os.unlink(path)


def enrich(dev):
    """State and configuration beyond the defaults: a configuration file and
    a conf.d drop-in, a pin (update.json, history events)."""
    dev.configure("[boot]\ntries=2\n\n[update]\nurl=%s\nchannel=stable\n" % dev.server_url)
    write(dev.p("etc", "abdeploy", "conf.d", "50-site.conf"), "[health]\ntimeout-sec=120\n")
    dev.ok("pin", "--force", ll.META_VERSION)   # 2.5 is not in the channel


def observe(dev):
    """What must be identical after a restore: the outputs of status, history
    and version, the pointer as the bootloader reads it, the refs, and the
    files and symlinks of etc/abdeploy and abdeploy/state (content, mode,
    target).  Directories are not compared: the archive holds files and
    links, so an empty directory (an unused conf.d/) is not restored."""
    files = {}
    for top in ("etc/abdeploy", "abdeploy/state"):
        files.update({k: v for k, v in sl.tree_entries(dev.p(top), top, identity=False).items()
                      if not v[0].startswith("d")})
    status = json.loads(dev.ok("status", "--json").stdout)
    # views of the cached manifest (abdeploy/cache/, not part of a backup):
    # the next check-update fills them in again
    status.pop("release", None)
    for key in ("resolves_to", "conflict"):
        (status.get("pin") or {}).pop(key, None)
    return {
        "status": status,
        "history": dev.ok("history", "--json").stdout,
        "version": dev.ok("version", "--json").stdout,
        "pointer": bootsim.read_pointer(dev.path, dev.backend),
        "refs": {s: dev.rev_parse("abdeploy/slot/" + s) for s in ("a", "b")},
        "files": files,
    }


def backup(dev, path):
    """A backup to PATH (a plain tar unless PATH names a compression)."""
    path = str(path)
    if not path.endswith((".tar", ".tar.gz", ".tar.zst")):
        path += ".tar"
    p = dev.ok("backup", "--output=" + path)
    assert path in p.stdout, p.describe
    return path


def parse_archive(path):
    """The documented format: a tar archive that `tar` lists, the manifest
    first, SHA256SUMS last, and SHA256SUMS verifies with sha256sum -c."""
    names = sl.run(["tar", "-tf", path]).stdout.decode().split()
    assert names[0] == ba.MANIFEST and names[-1] == ba.SUMS, names
    out = os.path.join(os.path.dirname(path), "extracted")
    os.makedirs(out)
    sl.run(["tar", "-xf", path, "-C", out])
    sl.run(["sha256sum", "--quiet", "-c", ba.SUMS], cwd=out)
    shutil.rmtree(out)
    return ba.read_doc(path)


def wreck(dev):
    """Delete and corrupt state files, the pointer, the configuration, a
    trusted key and a slot ref; add a stray drop-in."""
    state = dev.p("abdeploy", "state")
    os.unlink(os.path.join(state, "slot-a.json"))
    write(os.path.join(state, "slot-b.json"), '{"format": 1, "commit": "dead')
    os.unlink(os.path.join(state, "verdict.json"))
    write(os.path.join(state, "history.json"), b"")
    rm_f(os.path.join(state, "update.json"))
    if dev.backend == "file":
        write(bootsim.file_pointer_path(dev.path), b"\x00\x01 not a pointer\n")
    else:
        sl.run(["grub-editenv", bootsim.grubenv_path(dev.path), "unset", "ABDEPLOY_PRIMARY",
                "ABDEPLOY_B_STATE", "ABDEPLOY_B_TRIES"])
    rm_f(dev.p("etc", "abdeploy", "abdeploy.conf"))
    os.unlink(dev.p(TRUSTED_KEY))
    write(dev.p("etc", "abdeploy", "conf.d", "99-stray.conf"), "[boot]\ntries=9\n")
    dev.ostree("refs", "--delete", "abdeploy/slot/a")


# --------------------------------------------------------------------------
# The round trip


@pytest.mark.parametrize("name", ["meta", "meta-grub"])
def test_backup_wreck_restore(device, tmp_path, publisher, name):
    dev = device(name)
    enrich(dev)
    rc, _, _, p = dev.verify("--full")
    assert rc == ll.EXIT_OK, p.describe
    before = observe(dev)
    archive = backup(dev, tmp_path / "device.tar.zst")
    assert os.stat(archive).st_mode & 0o777 == 0o600

    # the archive holds every file with its checksum, the pointer and the refs
    doc = parse_archive(archive)
    assert doc["kind"] == "abdeploy-backup" and isinstance(doc["format"], int), doc.keys()
    assert doc["refs"] == {"abdeploy/slot/" + s: c for s, c in before["refs"].items()}
    assert {k: v for k, v in doc["pointer"].items() if k in bootsim.POINTER_VARS} == \
        {k: v for k, v in before["pointer"].items() if k in bootsim.POINTER_VARS}
    on_disk = set(before["files"])
    assert {f["path"] for f in doc["files"]} == on_disk
    for f in doc["files"]:
        assert f["sha256"] == hashlib.sha256(read(dev.p(f["path"]))).hexdigest(), f["path"]
    assert TRUSTED_KEY in on_disk and "abdeploy/state/history.json" in on_disk

    wreck(dev)
    assert dev.run("verify").returncode == ll.EXIT_ERROR
    assert dev.run("status", "--json").stdout != before["status"]

    p = dev.ok("restore", "--path=" + archive)
    assert "Restored" in p.stdout and "warning" not in p.stderr, p.describe
    rc, _, _, p = dev.verify("--full")
    assert rc == ll.EXIT_OK, p.describe
    after = observe(dev)
    assert after["status"] == before["status"]        # byte for byte
    for key in ("history", "version", "pointer", "refs"):
        assert after[key] == before[key], key
    assert after["files"] == before["files"], sl.diff_snapshots(before["files"], after["files"])
    assert not os.path.exists(dev.p("etc", "abdeploy", "conf.d", "99-stray.conf"))
    for leftover in ("abdeploy/.state.restore", "etc/.abdeploy.restore"):
        assert not os.path.lexists(dev.p(leftover)), leftover
    # the restored key verifies signed content again
    dev.ok("stage", "--from=" + dev.server_url, "os/v3")


def test_symlinked_trusted_key_survives(device, tmp_path):
    """Keys are often symlinks into a keyring directory; a backup keeps the
    link, and the restored link is used to verify signatures."""
    dev = device("meta")
    keyring = dev.p("usr", "share", "keyrings", "publisher.gpg")
    os.makedirs(os.path.dirname(keyring))
    os.rename(dev.p(TRUSTED_KEY), keyring)
    target = "../../../usr/share/keyrings/publisher.gpg"
    os.symlink(target, dev.p(TRUSTED_KEY))
    archive = backup(dev, tmp_path / "b")
    before = observe(dev)
    os.unlink(dev.p(TRUSTED_KEY))
    dev.ok("restore", "--path=" + archive)
    assert os.readlink(dev.p(TRUSTED_KEY)) == target
    after = observe(dev)
    assert after["files"] == before["files"], sl.diff_snapshots(before["files"], after["files"])
    assert after == before
    dev.ok("stage", "--from=" + dev.server_url, "os/v3")


def test_restore_killed_at_each_crash_point_then_rerun(device, tmp_path):
    """restore is killed (SIGKILL) at each of its crash points; running
    restore again completes it: every part (state, configuration, refs,
    pointer) is replaced atomically, and a re-run starts over."""
    dev = device("meta")
    enrich(dev)
    before = observe(dev)
    archive = backup(dev, tmp_path / "b")
    probe = ll.devices_copy(dev, str(tmp_path))
    wreck(probe)
    trace = str(tmp_path / "trace")
    probe.ok("restore", "--path=" + archive, env={"ABDEPLOY_CRASH_TRACE": trace})
    points = read(trace, "r").split()
    assert points, "restore reached no crash point"
    for n in range(1, len(points) + 1):
        c = ll.devices_copy(dev, str(tmp_path))
        wreck(c)
        p = c.run("restore", "--path=" + archive, env={"ABDEPLOY_CRASH_AT": str(n)})
        assert p.returncode == -9, "crash point %d (%s)\n%s" % (n, points[n - 1], p.describe)
        c.ok("restore", "--path=" + archive)
        rc, _, _, p = c.verify("--full")
        assert rc == ll.EXIT_OK, "after crash point %d (%s)\n%s" % (n, points[n - 1], p.describe)
        assert observe(c) == before, "crash point %d (%s)" % (n, points[n - 1])


def test_interrupted_restore_is_completed_by_the_next_writer(device, tmp_path):
    """restore is all or nothing: killed at any crash point, either nothing
    had started (no journal yet: the sysroot is exactly as before) or the
    journal SYSROOT/abdeploy/restore.pending is there.  Read-only commands
    do not complete it: status leaves the sysroot as it is and, when it can
    read the sysroot, reports "restore_pending".  The next command that
    writes (here migrate, which takes the lock first) completes the restore
    under the lock before it reads anything."""
    dev = device("meta")
    enrich(dev)
    before = observe(dev)
    archive = backup(dev, tmp_path / "b")
    probe = ll.devices_copy(dev, str(tmp_path))
    wreck(probe)
    trace = str(tmp_path / "trace")
    probe.ok("restore", "--path=" + archive, env={"ABDEPLOY_CRASH_TRACE": trace})
    points = read(trace, "r").split()
    assert "restore:pending" in points, points
    completed = 0
    for n in range(1, len(points) + 1):
        c = ll.devices_copy(dev, str(tmp_path))
        wreck(c)
        wrecked = ll.disk_snapshot(c)
        p = c.run("restore", "--path=" + archive, env={"ABDEPLOY_CRASH_AT": str(n)})
        assert p.returncode == -9, "crash point %d (%s)\n%s" % (n, points[n - 1], p.describe)
        pending = c.p("abdeploy", "restore.pending")
        if not os.path.exists(pending):
            # killed before the journal was in place: nothing else changed
            after = {k: v for k, v in ll.disk_snapshot(c).items()
                     if not re.search(r"/\.restore\.pending\.tmp-\d+$", k)}
            assert after == wrecked, "crash point %d (%s) changed the sysroot without a " \
                "journal:\n%s" % (n, points[n - 1], sl.diff_snapshots(wrecked, after))
            continue
        assert read(pending) == read(archive)
        half = ll.disk_snapshot(c)
        s = c.run("status", "--json")
        if s.returncode == ll.EXIT_OK:
            assert json.loads(s.stdout)["restore_pending"] is True, s.describe
        ll.assert_unchanged(half, c, "status with a pending restore")
        assert os.path.exists(pending)
        r = c.run("migrate")
        assert r.returncode in (ll.EXIT_OK, sl.EXIT_NOTHING), r.describe
        assert "Completed the restore that was interrupted" in r.stderr, r.describe
        assert not os.path.exists(pending), n
        assert observe(c) == before, "crash point %d (%s)" % (n, points[n - 1])
        assert json.loads(c.ok("status", "--json").stdout)["restore_pending"] is False
        rc, _, _, v = c.verify("--full")
        assert rc == ll.EXIT_OK, "after crash point %d (%s)\n%s" % (n, points[n - 1], v.describe)
        completed += 1
    assert completed >= len(points) - 4, (completed, points)


# --------------------------------------------------------------------------
# Refused archives change nothing


def refused(dev, archive, *needles):
    """restore must fail with a clear message and leave the disk as it was."""
    snap = ll.disk_snapshot(dev)
    p = dev.run("restore", "--path=" + archive)
    assert p.returncode == ll.EXIT_ERROR, p.describe
    for n in needles:
        assert n in p.stderr, "%r not in the message\n%s" % (n, p.describe)
    ll.assert_unchanged(snap, dev, "a refused restore")
    return p


def flip(data, offset):
    b = bytearray(data)
    b[offset] ^= 0x20
    return bytes(b)


def member_offsets(data):
    """Where each member's header and data begin in a plain tar archive."""
    import io
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return {m.name: (m.offset, m.offset_data) for m in t.getmembers()}


@pytest.mark.parametrize("where", ["manifest", "file-data", "member-header", "sums", "gzip",
                                   "zstd"])
def test_corrupt_archive_is_refused(device, tmp_path, where):
    """A byte changed in the manifest, a member's data, a member's tar
    header, SHA256SUMS, or anywhere in the compressed stream."""
    dev = device("meta")
    suffix = {"gzip": ".tar.gz", "zstd": ".tar.zst"}.get(where, ".tar")
    archive = backup(dev, tmp_path / ("b" + suffix))
    data = read(archive)
    if suffix == ".tar":
        at = member_offsets(data)
        offset = {
            "manifest": data.index(b"abdeploy-backup", at[ba.MANIFEST][1]),
            "file-data": at["abdeploy/state/sysroot.json"][1] + 5,
            "member-header": at["abdeploy/state/sysroot.json"][0] + 20,
            "sums": at[ba.SUMS][1] + 3,
        }[where]
    else:
        offset = len(data) // 2
    bad = str(tmp_path / "corrupt.tar")
    write(bad, flip(data, offset))
    wreck(dev)    # a restore would change a lot: prove that nothing changes
    refused(dev, bad, "corrupt or truncated", "nothing was changed")


@pytest.mark.parametrize("cut", ["half", "before-sums", "in-sums", "empty", "gzip-half",
                                 "zstd-half"])
def test_truncated_archive_is_refused(device, tmp_path, cut):
    dev = device("meta")
    suffix = {"gzip-half": ".tar.gz", "zstd-half": ".tar.zst"}.get(cut, ".tar")
    archive = backup(dev, tmp_path / ("b" + suffix))
    data = read(archive)
    if suffix == ".tar":
        at = member_offsets(data)
        end = {"half": len(data) // 2, "before-sums": at[ba.SUMS][0],
               "in-sums": at[ba.SUMS][1] + 10, "empty": 0}[cut]
    else:
        end = len(data) // 2
    bad = str(tmp_path / "truncated.tar")
    write(bad, data[:end])
    wreck(dev)
    refused(dev, bad, "corrupt or truncated", "nothing was changed")


def rewrite(path, mutate):
    """The archive with its manifest or members changed by MUTATE (on the
    0.2.0-form document) and SHA256SUMS made right again, as a careless hand
    edit would."""
    doc = ba.read_doc(path)
    mutate(doc)
    return ba.seal_tar(doc)


def test_file_that_does_not_match_its_checksum_is_refused(device, tmp_path):
    dev = device("meta")
    archive = backup(dev, tmp_path / "b")

    def mutate(doc):
        f = next(f for f in doc["files"] if f["path"] == "abdeploy/state/slot-b.json")
        f["data"] = base64.b64encode(b'{"format":1}').decode()
    bad = str(tmp_path / "edited.tar")
    write(bad, rewrite(archive, mutate))
    wreck(dev)
    refused(dev, bad, "corrupt or truncated", "abdeploy/state/slot-b.json")


@pytest.mark.parametrize("path", ["etc/abdeploy/../../escape", "usr/bin/hello",
                                  "/etc/abdeploy/abs.conf", "../escape"])
def test_file_outside_the_saved_trees_is_refused(device, tmp_path, path):
    dev = device("meta")
    archive = backup(dev, tmp_path / "b")

    def mutate(doc):
        doc["files"][0]["path"] = path
    bad = str(tmp_path / "edited.tar")
    write(bad, rewrite(archive, mutate))
    refused(dev, bad, "corrupt or truncated")
    assert not os.path.exists(os.path.join(os.path.dirname(dev.path), "escape"))


def test_not_an_archive_and_missing_file(device, tmp_path):
    dev = device("meta")
    refused(dev, dev.p("etc", "abdeploy", "trusted.gpg.d", "publisher.gpg"), "corrupt or truncated")
    refused(dev, str(tmp_path / "no-such-backup"), "no-such-backup")


# --------------------------------------------------------------------------
# Commits missing from the repo


def test_missing_commit_is_named_with_how_to_fetch_it(device, tmp_path, publisher):
    """Restore onto a reinstalled device that never had slot b's commit: the
    commit is named with its ref and how to fetch it, nothing changes; after
    fetching it as the message says, the restore succeeds and the device
    reads exactly like the one the backup was made on."""
    orig = device("meta")
    enrich(orig)
    before = observe(orig)
    archive = backup(orig, tmp_path / "b")
    meta = publisher.commit_of("meta")

    dev = device("v1")    # slot a 1.0 booted, slot b empty: no commit 2.5
    assert dev.ostree("show", meta, check=False).returncode != 0
    p = refused(dev, archive, meta, "abdeploy/slot/b", "not in the repo", "abdeploy stage --from=",
                "pull")
    assert publisher.commit_of("v1") not in p.stderr, p.describe

    dev.ok("stage", "--from=" + dev.server_url, meta)
    dev.ok("restore", "--path=" + archive)
    dev.set_booted("b")       # the restored pointer boots b, as on the original
    rc, _, _, p = dev.verify("--full")
    assert rc == ll.EXIT_OK, p.describe
    after = observe(dev)
    for key in ("status", "history", "version", "pointer", "refs", "files"):
        assert after[key] == before[key], key


def test_commit_fetched_without_its_slot_tree_is_checked_out_again(device, tmp_path, publisher):
    """The other way the message offers: pull the commit into the repo only.
    The archive holds no slot trees, and slot b (empty on this device) does
    not hold the commit its record names: restore checks that commit out
    into slot b again (a trusted key signed it), says so, and the slot then
    matches its commit (issue 10: no record over other content)."""
    orig = device("meta")
    archive = backup(orig, tmp_path / "b")
    meta = publisher.commit_of("meta")
    dev = device("v1")
    dev.ostree("remote", "add", "--no-gpg-verify", "publisher", dev.server_url)
    dev.ostree("pull", "publisher", meta)
    p = dev.ok("restore", "--path=" + archive)
    assert re.search(r"slot b did not hold commit %s .*checked out again" % meta, p.stderr), \
        p.describe
    assert "slot a" not in p.stderr and "warning" not in p.stderr, p.describe
    dev.set_booted("b")
    failed, checks, p = dev.failed_checks("--full")
    assert "tree-matches-commit" not in failed, p.describe
    assert "state-consistent" not in failed, p.describe


# --------------------------------------------------------------------------
# Output, usage, lock


def test_backup_changes_nothing_in_the_sysroot(device, tmp_path):
    """backup only reads: not even the pid in abdeploy/lock changes (it
    keeps writers out with a shared lock)."""
    dev = device("meta")
    lock = dev.p("abdeploy", "lock")
    holder = read(lock)
    snap = ll.disk_snapshot(dev)
    backup(dev, tmp_path / "b")
    ll.assert_unchanged(snap, dev, "backup")
    assert read(lock) == holder


def test_output_replaces_an_existing_file_only_with_force(device, tmp_path):
    """issue 16, point 7: an existing file is not overwritten without
    --force (0.2.0 replaced it silently)."""
    dev = device("meta")
    out = str(tmp_path / "existing.tar")
    write(out, "an older backup\n")
    p = dev.run("backup", "--output=" + out)
    assert p.returncode == ll.EXIT_ERROR, p.describe
    assert out in p.stderr and "--force" in p.stderr, p.describe
    assert read(out) == b"an older backup\n"
    os.symlink("existing.tar", str(tmp_path / "link.tar"))
    p = dev.run("backup", "--output=" + str(tmp_path / "link.tar"))
    assert p.returncode == ll.EXIT_ERROR and "--force" in p.stderr, p.describe
    assert read(out) == b"an older backup\n"
    dev.ok("backup", "--force", "--output=" + out)
    parse_archive(out)
    assert sorted(os.listdir(str(tmp_path))) == ["existing.tar", "link.tar"], \
        "temporary files left behind"


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tar.zst"])
def test_each_suffix_writes_a_tar_that_tar_lists_and_restore_reads(device, tmp_path, suffix):
    dev = device("meta")
    archive = backup(dev, tmp_path / ("b" + suffix))
    magic = {".tar": None, ".tar.gz": b"\x1f\x8b", ".tar.zst": b"\x28\xb5\x2f\xfd"}[suffix]
    if magic:
        assert read(archive).startswith(magic)
    doc = parse_archive(archive)
    names = sl.run(["tar", "-tf", archive]).stdout.decode().split()
    assert names[1:-1] == [f["path"] for f in doc["files"]]
    before = dev.ok("status", "--json").stdout
    wreck(dev)
    dev.ok("restore", "--path=" + archive)
    assert dev.ok("status", "--json").stdout == before


def test_output_to_stdout(device, tmp_path):
    """--output=- writes the archive, and nothing else, to standard output."""
    dev = device("meta")
    snap = ll.disk_snapshot(dev)
    p = subprocess.run([dev.binary, "--sysroot=" + dev.path, "backup", "--output=-"],
                       env=dev.env(None), capture_output=True, stdin=subprocess.DEVNULL,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert b"standard output" in p.stderr
    archive = str(tmp_path / "stdout.tar")
    write(archive, p.stdout)
    parse_archive(archive)
    ll.assert_unchanged(snap, dev, "backup to stdout")
    wreck(dev)
    dev.ok("restore", "--path=" + archive)
    # JSON progress would share standard output with the archive
    r = dev.run("backup", "--output=-", "--progress=json")
    assert r.returncode == ll.EXIT_USAGE and "--progress-fd" in r.stderr, r.describe
    assert r.stdout == ""


def test_restore_reads_the_020_archive(device, tmp_path):
    """N-1: the archive of abdeploy 0.2.0 (one JSON document with a trailing
    checksum line) is still restored."""
    dev = device("meta")
    archive = backup(dev, tmp_path / "b")
    old = str(tmp_path / "backup-0.2.0.json")
    write(old, ba.seal_json(ba.read_doc(archive)))
    before = dev.ok("status", "--json").stdout
    wreck(dev)
    dev.ok("restore", "--path=" + old)
    assert dev.ok("status", "--json").stdout == before


def test_output_where_it_cannot_be_written(device, tmp_path):
    dev = device("meta")
    missing = tmp_path / "no-such-dir" / "b.tar"
    p = dev.run("backup", "--output=" + str(missing))
    assert p.returncode == ll.EXIT_ERROR and "no-such-dir" in p.stderr, p.describe
    assert not (tmp_path / "no-such-dir").exists()

    os.mkdir(str(tmp_path / "dir.tar"))
    p = dev.run("backup", "--force", "--output=" + str(tmp_path / "dir.tar"))     # a directory
    assert p.returncode == ll.EXIT_ERROR and str(tmp_path) in p.stderr, p.describe
    assert os.path.isdir(str(tmp_path / "dir.tar"))

    locked = tmp_path / "immutable"      # not writable, even for root
    locked.mkdir()
    with ll.immutable(locked):
        p = dev.run("backup", "--output=" + str(locked / "b.tar"))
        assert p.returncode == ll.EXIT_ERROR and str(locked) in p.stderr, p.describe
        assert os.listdir(str(locked)) == []


def test_usage(device, tmp_path):
    dev = device("meta")
    for args in (["backup"], ["backup", "--output=x.tar", "extra"], ["restore"],
                 ["restore", "--path=x", "extra"], ["backup", "--bogus"]):
        p = dev.run(*args)
        assert p.returncode == ll.EXIT_USAGE, p.describe
    # the suffix chooses the compression: any other is a usage error
    for name in ("b", "b.json", "b.tgz", "b.tar.xz"):
        p = dev.run("backup", "--output=" + str(tmp_path / name))
        assert p.returncode == ll.EXIT_USAGE, p.describe
        assert ".tar, .tar.gz or .tar.zst" in p.stderr, p.describe
        assert not (tmp_path / name).exists()


def test_restore_and_backup_while_another_abdeploy_holds_the_lock(device, tmp_path):
    dev = device("meta")
    archive = backup(dev, tmp_path / "b")
    proc, release = dev.hold_lock(tmp_path)
    try:
        snap = ll.disk_snapshot(dev)
        p = dev.run("restore", "--path=" + archive)
        assert p.returncode == ll.EXIT_LOCKED, p.describe
        assert re.search(r"pid %d\b" % proc.pid, p.stderr), p.describe
        ll.assert_unchanged(snap, dev, "restore while locked")
        # a backup is a consistent snapshot: it waits for no writer either
        p = dev.run("backup", "--output=" + str(tmp_path / "b2.tar"))
        assert p.returncode == ll.EXIT_LOCKED, p.describe
        assert not os.path.exists(str(tmp_path / "b2.tar"))
    finally:
        open(release, "w").close()
        out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out
    dev.ok("restore", "--path=" + archive)     # the lock is free again


@pytest.mark.parametrize("force", [False, True], ids=["new", "force"])
def test_backup_killed_at_each_crash_point_leaves_no_part_archive(device, tmp_path, force):
    """A backup killed anywhere while it writes (tmp, fsync, rename) leaves
    either no file (or, with --force, the previous archive, whole) or the
    complete archive under the final name, never a part of one."""
    dev = device("meta")
    out = tmp_path / "out"
    out.mkdir()
    target = str(out / "b.tar.gz")
    args = ["backup", "--output=" + target] + (["--force"] if force else [])
    trace = str(tmp_path / "trace")
    dev.ok(*args, env={"ABDEPLOY_CRASH_TRACE": trace})
    points = read(trace, "r").split()
    assert points, "backup reached no crash point"
    previous = read(target)
    for n in range(1, len(points) + 1):
        if not force:
            os.unlink(target)
        p = dev.run(*args, env={"ABDEPLOY_CRASH_AT": str(n)})
        assert p.returncode == -9, "crash point %d (%s)\n%s" % (n, points[n - 1], p.describe)
        if os.path.exists(target):
            data = read(target)
            assert data == previous or ba.doc_of(data)["kind"] == "abdeploy-backup", \
                "crash point %d (%s)" % (n, points[n - 1])
            if data != previous:
                parse_archive(target)
        for name in os.listdir(str(out)):
            if name.startswith("."):
                os.unlink(str(out / name))     # a temporary, never the archive's name
        if not os.path.exists(target):
            dev.ok(*args)
        previous = read(target)
