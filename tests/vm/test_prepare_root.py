"""abdeploy-prepare-root --assemble, outside a VM: in a private mount
namespace (unshare -m) on a tmpfs standing in for the physical root, under
busybox (as in the initramfs) and under the host's sh and util-linux mount.

The VM suite (run-vm-tests) proves the /init mode on a real boot; this
covers the layout and every refusal quickly.  Needs root and unshare.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("ABDEPLOY_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(SRCDIR, "data", "prepare-root", "abdeploy-prepare-root")
BUSYBOX = shutil.which("busybox")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare (mount namespaces)")

# A physical root with slot a (complete) and slot b (as the test makes it).
SETUP = r"""
set -e
P=$WORK/sysroot
mkdir -p "$P"
mount -t tmpfs phys "$P"
mkdir -p "$P/abdeploy/var/lib" "$P/ostree/repo" "$P/boot/grub"
echo 1 > "$P/abdeploy/version"
echo shared > "$P/abdeploy/var/lib/marker"
for s in a b; do
    t=$P/abdeploy/slots/$s
    mkdir -p "$t/usr/bin" "$t/etc" "$t/var" "$t/sysroot" "$t/dev" "$t/proc" "$t/sys" "$t/run"
    echo "$s" > "$t/usr/bin/slot-name"
    ln -s sysroot/abdeploy "$t/abdeploy"
    ln -s sysroot/ostree "$t/ostree"
    ln -s sysroot/boot "$t/boot"
done
"""

# Prints what the assembled root looks like, one KEY=VALUE per line.
REPORT = r"""
P=$WORK/sysroot
echo "slot=$(cat "$P/usr/bin/slot-name")"
if touch "$P/usr/x" 2>/dev/null; then echo usr=rw; else echo usr=ro; fi
if touch "$P/etc/x" 2>/dev/null; then echo etc=rw; else echo etc=ro; fi
echo "var=$(cat "$P/var/lib/marker")"
echo "version=$(cat "$P/sysroot/abdeploy/version")"
echo "via_link=$(cat "$P/abdeploy/version")"
[ -d "$P/ostree/repo" ] && echo repo=yes
[ -d "$P/boot/grub" ] && echo boot=yes
if touch "$P/sysroot/abdeploy/x" 2>/dev/null; then echo sysroot=rw; else echo sysroot=ro; fi
if touch "$P/boot/x" 2>/dev/null; then echo bootdir=rw; else echo bootdir=ro; fi
if touch "$P/var/x" 2>/dev/null; then echo varw=rw; else echo varw=ro; fi
# the file system under the read-only /sysroot mount is read-write
awk -v m="$P/sysroot" '$5 == m { n = split($0, f, " - "); split(f[n], s, " "); print "sysroot_fs=" substr(s[3], 1, 2) }' /proc/self/mountinfo
# as abdeploy's writers do: a read-write remount, private to this namespace
mount -o remount,bind,rw "$P/sysroot" || echo remount=failed
# hardlinks between the repo and a slot work through the links (one mount)
echo obj > "$P/ostree/repo/obj"
if ln "$P/ostree/repo/obj" "$P/abdeploy/slots/b/usr/hardlink" 2>/dev/null; then
    echo hardlink=ok; else echo hardlink=EXDEV; fi
"""


def run_assemble(shell, cmdline, tweak=""):
    """Runs SETUP, TWEAK, prepare-root --assemble and REPORT in a private
    mount namespace; returns (exit status of prepare-root, report dict, output)."""
    with tempfile.TemporaryDirectory() as work:
        bindir = os.path.join(work, "bin")
        os.makedirs(bindir)
        env = {"WORK": work, "LC_ALL": "C",
               "ABDEPLOY_CMDLINE": os.path.join(work, "cmdline"),
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        if shell == "busybox":
            for applet in ("sh", "mount", "mkdir", "readlink", "cat", "basename", "sleep"):
                os.symlink(BUSYBOX, os.path.join(bindir, applet))
            env["PATH"] = bindir + ":" + env["PATH"]
            runner = [BUSYBOX, "sh"]
        else:
            runner = ["/bin/sh"]
        with open(env["ABDEPLOY_CMDLINE"], "w") as f:
            f.write(cmdline + "\n")
        body = "%s\n%s\nset +e\n%s %s --assemble \"$WORK/sysroot\"\necho \"rc=$?\"\n%s" % (
            SETUP, tweak, " ".join(runner), SCRIPT, REPORT)
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", body],
                           env=env, capture_output=True, text=True, timeout=60)
        out = p.stdout + p.stderr
        report = dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)
        return int(report.get("rc", "-1")), report, out


SHELLS = ["host"] + (["busybox"] if BUSYBOX else [])


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("slot", ["a", "b"])
def test_layout(shell, slot):
    rc, r, out = run_assemble(shell, "root=/dev/vda1 abdeploy.slot=%s quiet" % slot)
    assert rc == 0, out
    assert r["slot"] == slot, out
    assert r["usr"] == "ro" and r["etc"] == "rw", out
    assert r["var"] == "shared", out
    assert r["version"] == "1" and r["via_link"] == "1", out
    assert r.get("repo") == "yes" and r.get("boot") == "yes", out
    assert r["sysroot"] == "ro" and r["bootdir"] == "ro", out
    assert r["sysroot_fs"] == "rw" and r["varw"] == "rw", out
    assert "remount" not in r, out
    assert r["hardlink"] == "ok", out


@pytest.mark.parametrize("shell", SHELLS)
def test_last_slot_argument_wins(shell):
    rc, r, out = run_assemble(shell, "abdeploy.slot=a root=/dev/vda1 abdeploy.slot=b")
    assert rc == 0 and r["slot"] == "b", out


@pytest.mark.parametrize("shell", SHELLS)
def test_boot_directory_is_bind_mounted(shell):
    tweak = 'rm "$P/abdeploy/slots/a/boot"; mkdir "$P/abdeploy/slots/a/boot"'
    rc, r, out = run_assemble(shell, "abdeploy.slot=a", tweak)
    assert rc == 0 and r.get("boot") == "yes", out
    assert r["bootdir"] == "ro" and r["sysroot"] == "ro", out


REFUSALS = [
    ("no-slot", "root=/dev/vda1", "", "no abdeploy.slot="),
    ("bad-slot", "abdeploy.slot=c", "", "slots are a and b"),
    ("no-sysroot", "abdeploy.slot=a", 'rm "$P/abdeploy/version"', "no abdeploy sysroot"),
    ("empty-slot", "abdeploy.slot=b", 'rm -r "$P/abdeploy/slots/b/usr"', "holds no tree"),
    ("no-mountpoint", "abdeploy.slot=a", 'rmdir "$P/abdeploy/slots/a/sysroot"',
     "no /sysroot directory"),
    ("ostree-not-link", "abdeploy.slot=a",
     'rm "$P/abdeploy/slots/a/ostree"; mkdir "$P/abdeploy/slots/a/ostree"',
     "/ostree as a symlink to sysroot/ostree"),
    ("boot-elsewhere", "abdeploy.slot=a",
     'rm "$P/abdeploy/slots/a/boot"; ln -s /elsewhere "$P/abdeploy/slots/a/boot"',
     "pointing elsewhere"),
]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("name,cmdline,tweak,message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals(shell, name, cmdline, tweak, message):
    rc, r, out = run_assemble(shell, cmdline, tweak)
    assert rc == 1, out
    assert message in out and "FATAL" in out, out
    # nothing was switched: the physical root is still where it was
    assert "slot" not in r or r["slot"] == "", out
