"""`abdeploy verify [--full] [--sample=N] [--json]`: the post-upgrade checks.

Every check is made to fail on its own, on a real sysroot that was deployed
over HTTP and booted by the boot simulator, and verify must then exit 1
and name it, while the other checks still pass.

What "sampled" means (src/ab-verify.c, ab_verify_tree): the entries of the
running slot's commit that are not directories (regular files and
symbolic links, walked from the commit with libostree) are listed; without
--full, N of them are picked uniformly at random on every run (a partial
Fisher-Yates shuffle with GLib's g_random, seeded per process), N being
--sample (default 256), or all of them when the commit has at most N.  Each
picked path is checksummed in the slot's tree the way libostree checksums a
file object (content, mode, uid, gid, xattrs; the target of a symlink) and
compared with the commit.  --full checks every entry.  Only the running slot
is checked (booted, or the primary one on an offline sysroot), and only
paths of the commit: the merged /etc of a slot is not in its commit.
"""

import json
import os
import subprocess
import re
import time

import pytest

import lifecyclelib as ll
from lifecyclelib import bootsim


def commit_entries(dev, commit):
    """Paths of the regular files and symlinks of a commit, by `ostree ls -R`."""
    out = dev.ostree("ls", "-R", commit).stdout.decode()
    paths = []
    for line in out.splitlines():
        f = line.split()
        if not f or f[0][0] == "d":
            continue
        # mode uid gid size path [-> target]
        paths.append(f[4].lstrip("/"))
    return paths


def only_failing(dev, want, *args):
    failed, checks, p = dev.failed_checks(*args)
    assert failed == sorted(want), "failed checks %s, want %s\n%s" % (failed, want, p.describe)
    assert p.returncode == ll.EXIT_ERROR, p.describe
    # the text output names every failing check
    t = dev.run("verify", *args)
    assert t.returncode == ll.EXIT_ERROR, t.describe
    lines = {line.split()[1]: line.split()[0] for line in t.stdout.splitlines() if line.strip()}
    assert sorted(lines) == sorted(ll.CHECKS), t.describe
    for name in ll.CHECKS:
        assert lines[name] == ("FAIL" if name in want else "PASS"), t.describe
    return checks


# --------------------------------------------------------------------------
# All pass


@pytest.mark.parametrize("name", ["meta", "meta-grub"])
def test_all_pass_on_a_booted_and_blessed_slot(device, publisher, name):
    dev = device(name)
    rc, checks, report, p = dev.verify()
    assert rc == ll.EXIT_OK and report["passed"] is True, p.describe
    assert all(c["passed"] for c in checks.values()), p.describe
    assert "booted slot b is primary and good" in checks["booted-primary-good"]["reason"], p.describe
    entries = commit_entries(dev, publisher.commit_of("meta"))
    assert len(entries) > 10
    # fewer entries than the default sample of 256: the sample is all of them
    assert re.search(r"\b%d sampled files of slot b match commit %s" % (
        len(entries), publisher.commit_of("meta")[:12]), checks["tree-matches-commit"]["reason"]), p.describe
    assert "green" in checks["health-green"]["reason"], p.describe
    # text output: one PASS line per check, exit 0
    t = dev.ok("verify")
    assert [line.split()[:2] for line in t.stdout.splitlines()] == [["PASS", c] for c in ll.CHECKS], t.stdout


def test_full_and_sample_sizes(device, publisher):
    dev = device("meta")
    entries = commit_entries(dev, publisher.commit_of("meta"))
    rc, checks, _, p = dev.verify("--full")
    assert rc == ll.EXIT_OK, p.describe
    assert re.search(r"\b%d files \(all\) of slot b" % len(entries), checks["tree-matches-commit"]["reason"]), p.describe
    rc, checks, _, p = dev.verify("--sample=3")
    assert rc == ll.EXIT_OK, p.describe
    assert re.search(r"\b3 sampled files of slot b", checks["tree-matches-commit"]["reason"]), p.describe
    for bad in ("--sample=0", "--sample=-1", "--sample=x", "extra-arg"):
        r = dev.run("verify", bad)
        assert r.returncode == ll.EXIT_USAGE, r.describe


# --------------------------------------------------------------------------
# booted-primary-good


def test_booted_slot_in_trial(device):
    """The booted slot is primary but still in trial (booted, not yet found
    healthy): only booted-primary-good fails."""
    dev = device("meta")
    dev.set_pointer(ABDEPLOY_B_STATE="trial", ABDEPLOY_B_TRIES="2")
    checks = only_failing(dev, ["booted-primary-good"])
    assert "trial" in checks["booted-primary-good"]["reason"], checks


def test_booted_slot_not_primary(device):
    """After a manual rollback, before the reboot: the booted slot b is good
    but no longer primary."""
    dev = device("meta")
    dev.ok("rollback")
    checks = only_failing(dev, ["booted-primary-good"])
    assert "not primary" in checks["booted-primary-good"]["reason"], checks


def test_booted_slot_bad(device):
    dev = device("meta")
    dev.set_pointer(ABDEPLOY_B_STATE="bad", ABDEPLOY_B_TRIES="0")
    checks = only_failing(dev, ["booted-primary-good"])
    assert "bad" in checks["booted-primary-good"]["reason"], checks


def test_offline_sysroot_has_no_booted_slot(device):
    dev = device("meta")
    dev.set_booted(None)
    checks = only_failing(dev, ["booted-primary-good"])
    assert "no booted slot" in checks["booted-primary-good"]["reason"], checks


# --------------------------------------------------------------------------
# tree-matches-commit


def test_modified_file_in_booted_tree(device):
    dev = device("meta")
    dev.replace_file("usr/bin/hello", b"#!/bin/sh\necho tampered\n", "b")
    checks = only_failing(dev, ["tree-matches-commit"], "--full")
    assert "usr/bin/hello" in checks["tree-matches-commit"]["reason"], checks
    # the commit has fewer entries than the default sample: sampled = all
    checks = only_failing(dev, ["tree-matches-commit"])
    assert "usr/bin/hello" in checks["tree-matches-commit"]["reason"], checks
    # the repo object behind the other slots' hardlinks is intact
    dev.ostree("fsck")


def test_sample_of_one_finds_the_change_only_when_it_picks_it(device, publisher):
    """--sample=1 checks one random entry: over repeated runs it reports both
    outcomes, and every failure names the changed file; --full always fails."""
    dev = device("meta")
    entries = commit_entries(dev, publisher.commit_of("meta"))
    dev.replace_file("usr/lib/os-release", b"NAME=tampered\n", "b")
    seen = set()
    # each run picks the file with probability 1/len(entries)
    for _ in range(40 * len(entries)):
        rc, checks, _, p = dev.verify("--sample=1")
        reason = checks["tree-matches-commit"]["reason"]
        if checks["tree-matches-commit"]["passed"]:
            assert re.search(r"\b1 sampled files\b", reason), p.describe
            seen.add("pass")
        else:
            assert "usr/lib/os-release" in reason, p.describe
            seen.add("fail")
        if seen == {"pass", "fail"}:
            break
    assert seen == {"pass", "fail"}, seen
    only_failing(dev, ["tree-matches-commit"], "--full")


def test_removed_symlink_and_changed_link_target(device):
    dev = device("meta")
    link = dev.slot_path("b", "usr/bin/hello-link")
    os.unlink(link)
    checks = only_failing(dev, ["tree-matches-commit"], "--full")
    assert "usr/bin/hello-link" in checks["tree-matches-commit"]["reason"], checks
    os.symlink("shared-tool", link)
    checks = only_failing(dev, ["tree-matches-commit"], "--full")
    assert "usr/bin/hello-link" in checks["tree-matches-commit"]["reason"], checks


def test_directory_replaced_by_link_to_an_identical_copy(device, tmp_path):
    """issue 10: usr/bin of the slot replaced by a link to an identical copy
    outside the slot; every file would checksum right through the link, but
    resolution stays beneath the slot, so the tree does not match."""
    dev = device("meta")
    usr_bin = dev.slot_path("b", "usr/bin")
    copy = str(tmp_path / "bin-copy")
    subprocess.run(["cp", "-a", usr_bin, copy], check=True)
    os.rename(usr_bin, usr_bin + ".moved")
    os.symlink(copy, usr_bin)
    try:
        checks = only_failing(dev, ["tree-matches-commit"], "--full")
        assert "usr/bin/" in checks["tree-matches-commit"]["reason"], checks
        assert "symbolic link" in checks["tree-matches-commit"]["reason"], checks
    finally:
        os.unlink(usr_bin)
        os.rename(usr_bin + ".moved", usr_bin)


def test_only_the_running_slot_is_checked(device):
    """A change in the other slot (not running) does not fail verify."""
    dev = device("meta")
    dev.replace_file("usr/bin/hello", b"#!/bin/sh\necho other slot\n", "a")
    rc, _, _, p = dev.verify("--full")
    assert rc == ll.EXIT_OK, p.describe


# --------------------------------------------------------------------------
# state-consistent


def test_damaged_pointer(device):
    dev = device("meta")
    with open(bootsim.file_pointer_path(dev.path), "w") as f:
        f.write("ABDEPLOY_FORMAT=1\nABDEPLOY_PRIMARY=q\n\x00garbage\n")
    failed, checks, p = dev.failed_checks()
    assert "state-consistent" in failed, p.describe
    assert p.returncode == ll.EXIT_ERROR
    assert "pointer" in checks["state-consistent"]["reason"].lower(), p.describe
    # health and transactions do not depend on the pointer
    assert checks["health-green"]["passed"] and checks["no-stuck-transaction"]["passed"], p.describe


def test_ref_disagrees_with_record(device):
    """The ref that pins slot a's commit is gone: state-consistent names it."""
    dev = device("meta")
    dev.ostree("refs", "--delete", "abdeploy/slot/a")
    checks = only_failing(dev, ["state-consistent"])
    assert "abdeploy/slot/a" in checks["state-consistent"]["reason"], checks


def test_ref_moved_to_another_commit(device, publisher):
    dev = device("meta")
    dev.ostree("refs", "--force", "--create=abdeploy/slot/a", publisher.commit_of("meta"))
    checks = only_failing(dev, ["state-consistent"])
    assert "abdeploy/slot/a" in checks["state-consistent"]["reason"], checks


def test_trial_slot_that_is_not_primary(device):
    dev = device("meta")
    dev.set_pointer(ABDEPLOY_A_STATE="trial", ABDEPLOY_A_TRIES="2")
    checks = only_failing(dev, ["state-consistent"])
    assert "slot a is in trial but not primary" in checks["state-consistent"]["reason"], checks


@pytest.mark.parametrize("state", ["good", "trial"])
def test_pointer_marks_an_empty_slot_bootable(device, state):
    """Slot b holds nothing, but the pointer would let the bootloader fall
    back to it."""
    dev = device("v1")
    dev.set_pointer(ABDEPLOY_B_STATE=state, ABDEPLOY_B_TRIES="2" if state == "trial" else "0")
    checks = only_failing(dev, ["state-consistent"])
    assert "slot b is empty but the pointer marks it %s" % state in \
        checks["state-consistent"]["reason"], checks


def test_pointer_primary_is_an_empty_slot(device):
    dev = device("v1")
    dev.set_pointer(ABDEPLOY_PRIMARY="b")
    failed, checks, p = dev.failed_checks()
    assert "state-consistent" in failed, p.describe
    assert "primary slot b is empty" in checks["state-consistent"]["reason"], p.describe


@pytest.mark.parametrize("name", ["slot-a.json", "history.json", "verdict.json",
                                  "last-rollback.json", "update.json", "transaction.json"])
def test_state_file_that_does_not_parse(device, name):
    """Every state file must parse; a damaged one is named."""
    dev = device("meta")
    if name == "last-rollback.json":
        dev.ok("rollback")
        dev.ok("rollback")    # b primary again; last-rollback.json exists
    if name == "update.json":
        dev.ok("pin", "--force", ll.META_VERSION)   # 2.5 is not in the channel
    path = dev.state_path(name)
    if name != "transaction.json":
        assert os.path.exists(path), path
    with open(path, "w") as f:
        f.write('{"format": 1, "truncated')
    failed, checks, p = dev.failed_checks()
    assert "state-consistent" in failed, p.describe
    assert name in checks["state-consistent"]["reason"], p.describe
    assert p.returncode == ll.EXIT_ERROR


def test_state_file_of_a_format_abdeploy_does_not_read(device):
    """A state file from a newer abdeploy parses as JSON, but its format is
    one this abdeploy refuses everywhere else: verify says so."""
    dev = device("meta")
    path = dev.state_path("history.json")
    with open(path) as f:
        doc = json.load(f)
    doc["format"] = 99
    with open(path, "w") as f:
        json.dump(doc, f)
    failed, checks, p = dev.failed_checks()
    assert failed == ["state-consistent"], p.describe
    reason = checks["state-consistent"]["reason"]
    assert "history.json" in reason and "99" in reason, p.describe


# --------------------------------------------------------------------------
# health-green


def test_red_verdict(device):
    """A required hook of the booted system fails on a normal boot: the
    verdict is red (recorded only), and only health-green fails."""
    dev = device("meta")
    dev.add_hook("b", "etc/abdeploy/health/required.d", "50-fail.sh",
                 "echo 'app did not start' >&2\nexit 1\n")
    rc, out, err, _ = dev.health_check()
    assert rc == 7, out + err   # a red verdict (abdeploy(8) EXIT STATUS)
    checks = only_failing(dev, ["health-green"])
    assert "red" in checks["health-green"]["reason"], checks
    assert "50-fail.sh" in checks["health-green"]["reason"], checks


def test_no_verdict_yet(device):
    dev = device("meta")
    os.unlink(dev.state_path("verdict.json"))
    checks = only_failing(dev, ["health-green"])
    assert "none" in checks["health-green"]["reason"], checks


def test_green_verdict_of_the_other_slot(device):
    """The last verdict is green but about slot a, not the booted slot b
    (b was marked good by hand, never checked)."""
    dev = device("v1")
    dev.deploy_http("os/meta")
    d = bootsim.select(dev.path, "file")
    assert d.slot == "b"
    dev.set_booted("b")
    dev.ok("mark-good")
    checks = only_failing(dev, ["health-green"])
    assert "slot a" in checks["health-green"]["reason"], checks


# --------------------------------------------------------------------------
# no-stuck-transaction


def stuck_update(dev):
    """A real update transaction to the published 3.5, killed (SIGKILL, by
    the crash point) once its content is downloaded and verified."""
    dev.configure("[update]\nurl=%s\n" % dev.server_url)
    p = dev.run("update", "--no-activate", env={"ABDEPLOY_CRASH_AT": "update:verified"})
    assert p.returncode == -9, p.describe
    with open(dev.state_path("transaction.json")) as f:
        t = json.load(f)
    assert (t["version"], t["phase"]) == (ll.RELEASE_VERSION, "downloaded"), t


def test_stuck_transaction(device):
    dev = device("meta")
    stuck_update(dev)
    checks = only_failing(dev, ["no-stuck-transaction"])
    reason = checks["no-stuck-transaction"]["reason"]
    assert ll.RELEASE_VERSION in reason and "resume" in reason, checks
    # the way out that the reason names
    dev.ok("resume", "--abandon")
    rc, _, _, p = dev.verify()
    assert rc == ll.EXIT_OK, p.describe


def test_unfinished_transaction_while_another_abdeploy_holds_the_lock(device, tmp_path):
    """An open transaction while another abdeploy holds the lock is work in
    progress, not stuck; verify does not wait for the lock, and does not
    write the lock file."""
    dev = device("meta")
    stuck_update(dev)
    proc, release = dev.hold_lock(tmp_path)
    try:
        with open(dev.p("abdeploy", "lock")) as f:
            holder = f.read()
        assert holder.strip() == str(proc.pid)
        t0 = time.monotonic()
        rc, checks, _, p = dev.verify()
        assert time.monotonic() - t0 < 30
        assert checks["no-stuck-transaction"]["passed"], p.describe
        assert "in progress" in checks["no-stuck-transaction"]["reason"], p.describe
        with open(dev.p("abdeploy", "lock")) as f:
            assert f.read() == holder, "verify rewrote the lock file"
    finally:
        open(release, "w").close()
        out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, out


def test_lock_probe_does_not_need_write_access(device):
    """verify is read-only: when the lock file cannot be opened for writing
    (immutable here; a read-only mount alike) it still tells a stuck
    transaction, which nobody holds the lock for, from one in progress."""
    dev = device("meta")
    stuck_update(dev)
    lock = dev.p("abdeploy", "lock")
    with ll.immutable(lock):
        with pytest.raises(PermissionError):
            open(lock, "r+").close()
        checks = only_failing(dev, ["no-stuck-transaction"])
        assert "unfinished" in checks["no-stuck-transaction"]["reason"], checks
