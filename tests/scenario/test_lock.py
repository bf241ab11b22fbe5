"""One lock per sysroot: writers fail fast with exit 4 and name the
holder, status never blocks."""

import contextlib
import fcntl
import os

import scenariolib as sl

FAST = 5.0  # seconds; "fails fast" (the command timeout is far larger)


@contextlib.contextmanager
def held_lock(sr):
    fd = os.open(sr.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.write(fd, b"%d\n" % os.getpid())
        os.fsync(fd)
        yield os.getpid()
    finally:
        os.close(fd)


def test_lock_contention(sysroot, server, published):
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    primary = sysroot.status()["primary"]
    sysroot.ok("stage", "--from=" + server.url, "os/v2")
    st = sysroot.status()
    with held_lock(sysroot) as pid:
        before = sysroot.snapshot()
        for args in (["stage", "--from=" + server.url, "os/v3"],
                     ["deploy", "--from=" + server.url, "os/v3"],
                     ["activate"]):
            r = sysroot.run(*args, timeout=60)
            assert r.returncode == sl.EXIT_LOCKED, r.describe()
            assert r.elapsed < FAST, "did not fail fast:\n" + r.describe()
            assert str(pid) in r.output, "holder pid %d not named:\n%s" % (pid, r.describe())
        r = sysroot.run("status", "--json", timeout=60)
        assert r.returncode == 0 and r.elapsed < FAST, r.describe()
        assert sysroot.status() == st
        assert sysroot.run("status", timeout=60).returncode == 0
        after = sysroot.snapshot()
        assert after == before, sl.diff_snapshots(before, after)
    # released: the writer goes ahead
    sysroot.ok("activate")
    assert sysroot.status()["primary"] == sl.other(primary)


def test_stale_lock_file_does_not_block(sysroot, server):
    # a pid left in the lock file by a dead process is not a lock
    os.makedirs(os.path.dirname(sysroot.lock_path), exist_ok=True)
    with open(sysroot.lock_path, "w") as f:
        f.write("999999\n")
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
