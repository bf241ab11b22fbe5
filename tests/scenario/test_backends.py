"""Backends are code, and are held like hooks (issue 11, point 5).

- the custom backend's executable, and its directories, must be owned by
  root and writable by nobody else, or abdeploy does not run it;
- every pointer save is read back: a backend that says it saved but stores
  nothing fails the command instead of printing "Activated";
- a hand-edited pointer with a malformed or unknown line, or GRUB variables
  out of range, is an error naming the file, the line and the fix."""

import os
import subprocess

import scenariolib as sl
import abtest as at

# A custom backend keeping the pointer in files next to it; every call is
# logged. The file "mode" holds "lie CALL": that call succeeds and does
# nothing.
BACKEND = r"""#!/bin/sh
here=$(dirname "$0")
state="$here/state"
mkdir -p "$state"
echo "$*" >> "$here/calls.log"
case "$(cat "$here/mode" 2>/dev/null)" in
  "lie $1") exit 0 ;;
esac
case "$1" in
  get-primary) cat "$state/primary" 2>/dev/null; exit 0 ;;
  set-primary)
    case "$2" in
      a|b) echo "$2" > "$state/primary.tmp" && mv "$state/primary.tmp" "$state/primary" ;;
      none) rm -f "$state/primary" ;;
    esac ;;
  get-state) cat "$state/$2" 2>/dev/null || echo none ;;
  set-state) echo "$3${4:+ $4}" > "$state/$2.tmp" && mv "$state/$2.tmp" "$state/$2" ;;
  *) exit 2 ;;
esac
"""


def custom_sysroot(sysroots):
    """An initialized sysroot with the custom backend in DIR/backend/."""
    sr = sysroots.create(init=False)
    bdir = os.path.join(os.path.dirname(sr.path), "backend")
    os.makedirs(bdir, mode=0o755)
    exe = os.path.join(bdir, "backend.sh")
    with open(exe, "w") as f:
        f.write(BACKEND)
    os.chmod(exe, 0o755)
    conf = sr.p("etc", "abdeploy", "abdeploy.conf")
    os.makedirs(os.path.dirname(conf))
    with open(conf, "w") as f:
        f.write("[boot]\ncustom-backend=%s\n" % exe)
    sr.ok("init", "--os=" + sl.OS_NAME, "--bootloader=custom")
    sysroots.install_keys(sr, ("trusted.gpg",))
    return sr, bdir, exe


def calls(bdir):
    try:
        with open(os.path.join(bdir, "calls.log")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def test_writable_custom_backend_is_not_run(sysroots, server):
    sr, bdir, exe = custom_sysroot(sysroots)
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    before = sr.snapshot()
    for path, mode, needle in ((exe, 0o777, "backend.sh is world-writable; run chmod o-w"),
                               (exe, 0o775, None),
                               (bdir, 0o777, "directory %s is world-writable" % bdir)):
        if needle is None:
            os.chown(exe, -1, 4242)
            needle = "writable by group 4242; run chmod g-w"
        os.chmod(path, mode)
        seen = calls(bdir)
        for args in (["status"], ["deploy", "--from=" + server.url, "os/v2"]):
            r = sr.run(*args)
            assert r.returncode == at.EXIT_ERROR, r.describe()
            assert needle in r.stderr and "custom bootloader backend" in r.stderr, r.stderr
        assert calls(bdir) == seen, "the refused backend was run"
        os.chmod(path, 0o755)
        os.chown(exe, -1, 0)
    assert sr.snapshot() == before
    sr.ok("status")


def test_backend_that_stores_nothing_is_not_activated(sysroots, server):
    sr, bdir, exe = custom_sysroot(sysroots)
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    with open(os.path.join(bdir, "mode"), "w") as f:
        f.write("lie set-primary\n")
    r = sr.run("deploy", "--from=" + server.url, "os/v2")
    assert r.returncode == at.EXIT_ERROR, r.describe()
    assert "Activated" not in r.stdout, r.stdout
    assert "custom backend" in r.stderr and "read back" in r.stderr, r.stderr
    assert "wrote primary b" in r.stderr and "read back primary a" in r.stderr, r.stderr


def test_hand_edited_pointer_line_is_an_error(sysroot, server):
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    with open(sysroot.pointer_path) as f:
        text = f.read()
    assert "ABDEPLOY_PRIMARY=a\n" in text, text
    with open(sysroot.pointer_path, "w") as f:
        f.write(text.replace("ABDEPLOY_PRIMARY=a", "ABDEPLOY_PRIMRY=a"))
    before = sysroot.snapshot()
    for args in (["status"], ["deploy", "--from=" + server.url, "os/v2"], ["rollback"]):
        r = sysroot.run(*args)
        assert r.returncode == at.EXIT_ERROR, r.describe()
        for needle in ("boot/abdeploy/pointer", "line 2", 'unknown variable "ABDEPLOY_PRIMRY"',
                       "Fix or delete that line"):
            assert needle in r.stderr, r.stderr
    assert sysroot.snapshot() == before


def test_grub_variable_out_of_range_names_the_fix(sysroots, server):
    sr = sysroots.create(bootloader="grub")
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    for assignment, needle in (("ABDEPLOY_A_TRIES=x", "ABDEPLOY_A_TRIES=x"),
                               ("ABDEPLOY_A_STATE=weird", "ABDEPLOY_A_STATE=weird")):
        good = dict(l.split("=", 1) for l in subprocess.run(
            ["grub-editenv", sr.pointer_path, "list"], capture_output=True, text=True,
            check=True).stdout.splitlines() if l.startswith("ABDEPLOY_"))
        subprocess.run(["grub-editenv", sr.pointer_path, "set", assignment], check=True)
        r = sr.run("status")
        assert r.returncode == at.EXIT_ERROR, r.describe()
        assert needle in r.stderr and "grub-editenv" in r.stderr, r.stderr
        name = assignment.split("=")[0]
        subprocess.run(["grub-editenv", sr.pointer_path, "set", "%s=%s" % (name, good[name])],
                       check=True)
        sr.ok("status")
