"""SIGKILL at every crash point of the migration (ABDEPLOY_CRASH_AT=N), then
a re-run: the sysroot is always layout 1 or a complete layout 2, readers
work in between, and the re-run completes the migration exactly once."""

import json
import os
import re

import pytest

import migratelib as ml
from migratelib import sl

WRITER = ("mark-good",)
MIGRATION_POINTS = ["migrate:copy-staged", "migrate:copy-kept"] + ["migrate:state"] * 7 + \
    ["migrate:history", "migrate:config", "migrate:version"]


def trace_of(fx, sysroot_name):
    sr = fx.sysroot(sysroot_name)
    trace = os.path.join(fx.root, "trace")
    sr.ok(*WRITER, env={"ABDEPLOY_CRASH_TRACE": trace})
    with open(trace) as f:
        return f.read().split()


def check_consistent_mid(sr, psr):
    """Between a kill and the re-run: readable, layout 1 or 2, every state
    file of a readable format, no half-written file."""
    version = ml.layout(sr)
    assert version in ("1\n", "2\n"), version
    st = sr.status()
    assert st["primary"] == "a", st
    for name in os.listdir(sr.p("abdeploy", "state")):
        if name.startswith("."):
            continue   # a temporary of an interrupted replace
        fmt = ml.state_json(sr, name)["format"]
        assert fmt == 2 if version == "2\n" else fmt in (1, 2), (name, fmt, version)
    if version == "2\n":
        assert ml.config(sr).get("abdeploy", "format") == "2"
        for rel in ml.KEPT:
            assert os.path.exists(sr.p(ml.COPY_DIR, rel)) == os.path.exists(psr.p(rel)), rel
    return version


def test_crash_points_of_the_migration(layout1):
    points = trace_of(layout1(), "grub")
    named = [p for p in points if p.startswith("migrate:")]
    assert named == MIGRATION_POINTS, named
    # the migration comes first: every point up to migrate:version is its own
    assert points.index("migrate:version") < len(points) - 1


@pytest.mark.parametrize("name", ["grub", "file"])
def test_sigkill_at_every_migration_point(layout1, pristine, name):
    points = trace_of(layout1(), name)
    last = points.index("migrate:version") + 1
    status_want = pristine.sysroot(name).status()
    outcomes = {}
    for n in range(1, last + 1):
        fx = layout1()
        sr = fx.sysroot(name)
        r = sr.run(*WRITER, env={"ABDEPLOY_CRASH_AT": str(n)})
        assert r.returncode == -9, "crash point %d (%s) did not kill:\n%s" % (n, points[n - 1], r.describe())
        outcomes[n] = check_consistent_mid(sr, pristine.sysroot(name))
        # the re-run completes it
        r = sr.run(*WRITER)
        assert r.returncode == 0, "re-run after a kill at %d (%s):\n%s" % (n, points[n - 1], r.describe())
        assert ml.layout(sr) == "2\n"
        psr = pristine.sysroot(name)
        for rel in ml.KEPT:
            if os.path.exists(psr.p(rel)):
                assert ml.read(sr, os.path.join(ml.COPY_DIR, rel), "rb") == ml.read(psr, rel, "rb"), \
                    "copy of %s after a kill at %d (%s)" % (rel, n, points[n - 1])
        for f in os.listdir(sr.p("abdeploy", "state")):
            if f.startswith("."):
                # the temporary of a replace killed before its rename: never
                # read, never kept, never backed up
                assert re.fullmatch(r"\.[a-z-]+\.json\.tmp-\d+", f), (f, n)
                assert not os.path.exists(sr.p(ml.COPY_DIR, "abdeploy", "state", f)), (f, n)
                continue
            assert ml.state_json(sr, f)["format"] == 2, (f, n)
        text = ml.read(sr, "etc/abdeploy/abdeploy.conf")
        assert text.count("[abdeploy]") == 1 and text.count("format=2") == 1, text
        assert not os.path.exists(sr.p("abdeploy", "migration", ".layout-1.tmp")), n
        events = json.loads(sr.ok("history", "--json").stdout)
        assert [e["type"] for e in events].count("migrate") == 1, (n, events[:4])
        assert sr.status() == status_want, n
        sr.fsck()
        sl.rmtree(fx.root)
    # the kills left layout 1 up to the version write, layout 2 after it
    assert outcomes[last] == "2\n" and outcomes[1] == "1\n", outcomes
