"""Disk full: each operation runs with its sysroot on a small file system
filled to leave N bytes (or N inodes) free, for a handful of N from 0 up
to what an uninterrupted run takes.  Each run must either succeed, or fail
with exit 1 and an error that says the disk is full, with status --json,
the state files, the boot pointer, the configuration, the running slot's
tree and kernel unchanged, nothing left behind, `verify --full`'s
integrity checks and `ostree fsck` passing; and once the space is freed a
re-run must succeed, boot green and pass `verify --full`
(tests/lib/campaign.py).  The full sweep, every block, is bench/campaign.
ABDEPLOY_DISKFULL_LEVELS=N sets the byte levels per operation (default 4).
"""

import os

import pytest

import campaign

LEVELS = int(os.environ.get("ABDEPLOY_DISKFULL_LEVELS") or 4)


@pytest.mark.parametrize("name", campaign.DISKFULL_OPERATIONS)
def test_disk_full(world, smallfs, name):
    op = campaign.OPERATIONS[name]
    res = campaign.diskfull_sweep(
        world, op, smallfs,
        lambda used: campaign.sweep_levels(used, smallfs.block, LEVELS),
        lambda used: sorted({0, 1, used // 2}), log=print)
    assert res["failed"] >= 1, "no level made %s fail: %s" % (name, res["levels"])
    assert not res["failures"], "%d of %d levels of %s did not hold (%s):\n%s" % (
        res["bad"], res["runs"], name, smallfs.kind, "\n\n".join(res["failures"]))


def test_update_out_of_space_is_retried_by_the_next_update(world, smallfs):
    """A full disk while the update applies says nothing about the release:
    the failed transaction is recorded as retryable, and the next `update`
    (not only `resume`) retries it once space is freed.  Levels from 1/8 to
    7/8 of what the update takes: the first one at which the failure itself
    could be recorded is checked."""
    op = campaign.OPERATIONS["update"]
    used, _ = campaign.space_used(world, op, smallfs)
    seen = []
    for k in range(1, 8):
        d = campaign.prepare(world, op, smallfs.dir)
        try:
            smallfs.fill(free_bytes=used * k // 8 // smallfs.block * smallfs.block)
            r = d.run("update")
            smallfs.unfill()
            t = d.transaction()
            seen.append((k, r.returncode, t and t["phase"]))
            if r.returncode == 0 or t["phase"] != "failed":
                continue
            assert campaign.NOSPACE.search(r.stderr), r.describe()
            assert t["retryable"], t
            r = d.run("update")
            assert r.returncode == 0, r.describe()
            assert campaign.finish_problems(world, op, d, rerun=False) == []
            return
        finally:
            smallfs.unfill()
            campaign.remove_device(d)
    pytest.fail("no level left the update failed and recorded: %s" % seen)


@pytest.mark.parametrize("name", campaign.DISKFULL_OPERATIONS)
def test_eio(world, workdir, name):
    """EIO injected (strace --inject) at the middle call of write and of
    fsync of each operation: a clean error naming the I/O error with nothing changed,
    or success; then a re-run succeeds.  Every call: bench/campaign eio.
    (device-mapper's dm-error/dm-flakey are not available here: see
    docs/robustness.md.)"""
    if not campaign.strace_available():
        pytest.skip("strace is not installed")
    op = campaign.OPERATIONS[name]
    parent = os.path.join(workdir, "eio")
    os.makedirs(parent, exist_ok=True)
    res = campaign.eio_sweep(world, op, parent, campaign.middle_calls, log=print)
    assert not res["failures"], "%d of %d EIO injections into %s did not hold:\n%s" % (
        res["bad"], res["runs"], name, "\n\n".join(res["failures"]))
