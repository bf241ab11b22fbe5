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
