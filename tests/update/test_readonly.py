"""check-update and update on a device whose sysroot is a read-only mount
(a booted slot's /sysroot, issue 11 point 4): both write (the accepted
serial, the new slot) through a private read-write remount, and the mount
stays read-only outside abdeploy.  Needs root and unshare."""

import json
import os
import shutil
import subprocess

import pytest

from hostile import HostileServer, Rule

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare (mount namespaces)")

MANIFEST = "abdeploy/channels/stable.json"
SIG = "abdeploy/channels/stable.json.sig"

SCRIPT = r"""
mount --bind "$S" "$S" && mount -o remount,bind,ro "$S" || exit 99
mode() { awk -v m="$S" '$5 == m { split($6, o, ","); print o[1] }' /proc/self/mountinfo; }
echo "before=$(mode)"
$AB --sysroot="$S" check-update --json > "$OUT.check"; echo "check=$?"
$AB --sysroot="$S" update; echo "update=$?"
echo "after=$(mode)"
if touch "$S/abdeploy/outside" 2>/dev/null; then echo outside=written; else echo outside=refused; fi
"""


@pytest.fixture
def fast(workdir, pub):
    s = HostileServer(pub.repo).start()
    yield s
    s.stop()


def test_check_update_and_update_through_a_readonly_sysroot(device, fast, pub, tmp_path):
    serial = pub.manifest("stable")["serial"]

    def bump(m):
        m["serial"] = serial + 1
    data, sig = pub.craft("stable", bump)
    fast.set(MANIFEST, Rule(body=data))
    fast.set(SIG, Rule(body=sig))
    device.configure(fast.url)
    out = str(tmp_path / "out")
    env = device.env({"S": device.path, "AB": device.binary, "OUT": out})
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT],
                       env=env, capture_output=True, text=True, timeout=600)
    full = p.stdout + p.stderr
    assert "before=ro" in p.stdout, full
    assert "check=0" in p.stdout and "update=0" in p.stdout, full
    assert "after=ro" in p.stdout and "outside=refused" in p.stdout, full
    with open(out + ".check") as f:
        assert json.load(f)["serial"] == serial + 1, full
    # the writes landed: the serial, and the update in slot b
    assert device.read_state("update.json")["last_serial"]["stable"] == serial + 1
    st = device.status()
    assert st["primary"] == "b" and device.slot("b", st)["version"] not in (None, "1.0"), st
