"""A sysroot mounted read-only (as abdeploy-prepare-root mounts /sysroot in
a booted slot: a read-only bind mount of a read-write file system).
Readers read it as it is; writers make it writable in a mount namespace of
their own, so their writes land while the mount stays read-only for
everybody else (issue 11, point 4).  Needs root and unshare."""

import os
import shutil
import subprocess

import pytest

import scenariolib as sl

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare (mount namespaces)")

# Runs in a mount namespace standing in for the booted system's: $S is
# made a read-only bind mount, then each abdeploy command runs in it, then
# the mount and a write from outside abdeploy are checked.
SCRIPT = r"""
mount --bind "$S" "$S" && mount -o remount,bind,ro "$S" || exit 99
mode() { awk -v m="$S" '$5 == m { split($6, o, ","); print o[1] }' /proc/self/mountinfo; }
echo "before=$(mode)"
for c in "$@"; do
    sh -c "$AB --sysroot=$S $c" >/dev/null 2>"$S.err"
    echo "rc=$? $c"; cat "$S.err" >&2
done
echo "after=$(mode)"
if touch "$S/abdeploy/outside" 2>"$S.err"; then echo outside=written
else echo "outside=$(cat "$S.err")"; fi
"""


def run_readonly(sr, *commands):
    env = sr.env({"S": sr.path, "AB": sr.binary})
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT,
                        "sh"] + list(commands), env=env, capture_output=True, text=True,
                       timeout=300)
    return p.stdout, p.stdout + p.stderr


def test_writers_write_through_a_readonly_sysroot(sysroot, server):
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    slot = sysroot.status()["primary"]
    sysroot.set_booted(slot)
    out, full = run_readonly(sysroot, "status", "mark-good",
                             "stage --from=" + server.url + " os/v2")
    assert "before=ro" in out, full
    assert "rc=0 status" in out, full
    assert "rc=0 mark-good" in out, full
    assert "rc=0 stage" in out, full
    # the mount stayed read-only where the writers came from
    assert "after=ro" in out, full
    assert "Read-only file system" in out, full
    assert not os.path.exists(sysroot.p("abdeploy", "outside"))
    # and the writes landed
    st = sysroot.status()
    assert sysroot.slot_status(slot, st)["state"] == "good", st
    other = sysroot.slot_status(sl.other(slot), st)
    assert other["version"] == "2.0", st


def test_readonly_file_system_is_refused_clearly(tmp_path):
    # A file system of its own (tmpfs), read-only as a whole: abdeploy does
    # not remount the superblock (that would change every mount of it).
    s = str(tmp_path / "sr")
    os.mkdir(s)
    script = (
        'mount -t tmpfs sr "$S" || exit 99; '
        '$AB --sysroot=$S init --os=test --bootloader=file >/dev/null || exit 98; '
        'mount -o remount,ro "$S" || exit 97; '
        '$AB --sysroot=$S rollback; echo "rc=$?"; '
        'if [ -e "$S/abdeploy/lock" ]; then echo lock=created; fi')
    env = sl.at.clean_env(extra={"S": s, "AB": os.environ["ABDEPLOY_BIN"],
                                 "ABDEPLOY_CMDLINE": "/dev/null"})
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       env=env, capture_output=True, text=True, timeout=120)
    out = p.stdout + p.stderr
    assert "rc=" in p.stdout and "rc=0" not in p.stdout, out
    assert "read-only as a whole" in out and "remount" in out, out
    assert "lock=created" not in out, out
