# SPDX-License-Identifier: LGPL-2.1-or-later
"""Tests of the default health hooks shipped in greenboot-hooks/.

Every test runs the real scripts against a real sysroot made by the built
abdeploy binary: a GPG key, a commit made and signed with the ostree CLI,
`abdeploy init --bootloader=file` and `abdeploy deploy --from=REPO`, with
ABDEPLOY_CMDLINE naming a file that says `abdeploy.slot=a`.  The hooks run
under /bin/sh and, where it matters, under busybox sh with nothing but
busybox applets (plus ostree and abdeploy) in PATH, as on a minimal image.
HTTP checks only talk to 127.0.0.1.

Standard library + pytest.  Needs root (bare repos keep file ownership),
gpg, ostree; busybox for the minimal-image variants.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC_ROOT, "tests", "lib"))

import abtest as at  # noqa: E402
from abtest import clean_env, rmtree, run  # noqa: E402
HOOKS_DIR = os.environ.get("ABDEPLOY_HOOKS_DIR") or os.path.join(SRC_ROOT, "greenboot-hooks")
REQUIRED = ["10-booted-slot", "20-slot-content", "30-free-space", "40-systemd-units"]
WANTED = ["50-update-server"]
BUSYBOX = shutil.which("busybox")
N_DOC_FILES = 60


def hook_path(name):
    stage = "required.d" if name in REQUIRED else "wanted.d"
    return os.path.join(HOOKS_DIR, stage, name)


# --------------------------------------------------------------------------
# fixtures: key, published repo, binaries, minimal-image PATHs


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="abdeploy-hooks-")
    yield d
    rmtree(d)


@pytest.fixture(scope="session")
def bindir(workdir):
    """A directory with the abdeploy binary (a private copy: a rebuild
    during the run cannot swap it) and nothing else, for PATH."""
    try:
        return os.path.dirname(at.private_binary(workdir, srcdir=SRC_ROOT))
    except at.MissingBinary as e:
        missing = str(e)
    pytest.fail(missing, pytrace=False)


@pytest.fixture(scope="session")
def gpg(workdir):
    g = at.GpgHome(os.path.join(workdir, "gnupg"))
    fpr = g.generate("hooks test", "hooks@example.org")
    key = g.export(fpr, os.path.join(workdir, "publisher.gpg"))
    yield {"home": g.homedir, "env": g.env, "fpr": fpr, "key": key, "gpg": g}
    g.close()


@pytest.fixture(scope="session")
def published(workdir, gpg):
    """Archive repo with one signed commit (ref os/v1, version 1.0)."""
    files = {
        "usr/bin/hello": ("#!/bin/sh\necho hello\n", 0o755),
        "usr/bin/hello-link": ("link", "hello"),
        "usr/lib/os-release": ("NAME=hooktest\nVERSION_ID=1.0\n", 0o644),
        "usr/etc/app.conf": ("setting=1\n", 0o644),
        "usr/share/doc/name with spaces.txt": ("spaces\n", 0o644),
    }
    files.update(at.kernel_files("6.1.0-test", ("FAKEKERNEL\n", 0o644)))
    for i in range(N_DOC_FILES):
        files["usr/share/doc/f%03d" % i] = ("doc file %d\n" % i, 0o644)
    tree = at.write_tree(os.path.join(workdir, "tree"), files)
    repo = at.ostree_init(os.path.join(workdir, "publish", "repo"))
    commit = at.ostree_commit(repo, "os/v1", tree, "1.0", "hooktest 1.0", key=gpg["fpr"],
                              gpg=gpg["gpg"])
    return {"repo": repo, "ref": "os/v1", "commit": commit, "n_files": len(files)}


def _busybox_dir(workdir, name, with_ostree):
    if BUSYBOX is None:
        pytest.skip("busybox is not installed")
    d = os.path.join(workdir, name)
    if not os.path.isdir(d):
        os.makedirs(d)
        applets = run([BUSYBOX, "--list"]).stdout.decode().split()
        for a in applets:
            os.symlink(BUSYBOX, os.path.join(d, a))
        if with_ostree:
            os.symlink(shutil.which("ostree"), os.path.join(d, "ostree"))
    return d


@pytest.fixture(scope="session")
def busybox_path(workdir, bindir):
    """PATH of a minimal image: busybox applets, ostree and abdeploy only."""
    return _busybox_dir(workdir, "busybox-ostree", True) + ":" + bindir


@pytest.fixture(scope="session")
def busybox_path_no_ostree(workdir, bindir):
    """PATH of a minimal image without the ostree CLI."""
    return _busybox_dir(workdir, "busybox-only", False) + ":" + bindir


class Sysroot:
    def __init__(self, path, bindir, published):
        self.path = path
        self.bindir = bindir
        self.published = published
        self.cmdline = path + ".cmdline"
        self.set_cmdline("")  # offline while deploying: the first deploy goes to slot a

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    def slot_file(self, rel, slot="a"):
        return self.p("abdeploy", "slots", slot, rel)

    def set_cmdline(self, text):
        with open(self.cmdline, "w") as f:
            f.write("BOOT_IMAGE=/boot/abdeploy/x/vmlinuz root=LABEL=root ro %s\n" % text)

    def abdeploy(self, *args, env=None, check=True, cwd=None, sysroot=None):
        e = clean_env(extra={"ABDEPLOY_CMDLINE": self.cmdline,
                             "PATH": self.bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin")})
        if env:
            e.update(env)
        return run([os.path.join(self.bindir, "abdeploy"), "--sysroot=" + (sysroot or self.path)]
                   + list(args), env=e, check=check, cwd=cwd)

    def status(self):
        return json.loads(self.abdeploy("status", "--json").stdout)

    def hook_env(self, extra=None, path=None):
        """The environment the runner gives a hook (see ab-health.c)."""
        st = self.status()
        a = at.slot_status(st, "a")
        env = clean_env(extra={
            "PATH": path or (self.bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin")),
            "ABDEPLOY_CMDLINE": self.cmdline,
            "ABDEPLOY_SYSROOT": self.path,
            "ABDEPLOY_SLOT": "a",
            "ABDEPLOY_VERSION": a["version"] or "",
            "ABDEPLOY_COMMIT": a["commit"] or "",
            "ABDEPLOY_TRIAL": "1" if a["state"] == "trial" else "0",
            "ABDEPLOY_TRIES_LEFT": str(a["tries_left"] or 0),
        })
        if extra:
            env.update(extra)
        return env

    def hook(self, name, extra=None, path=None, shell=None, timeout=120):
        """Run hook NAME the way the runner does (own directory as cwd).
        shell="busybox": run it with busybox sh and PATH=path."""
        script = hook_path(name)
        cmd = [BUSYBOX, "sh", script] if shell == "busybox" else [script]
        t0 = time.monotonic()
        p = subprocess.run(cmd, env=self.hook_env(extra, path), cwd=os.path.dirname(script),
                           capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        p.elapsed = time.monotonic() - t0
        p.out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        return p


@pytest.fixture
def sysroot(workdir, bindir, gpg, published, request):
    """A fresh sysroot with os/v1 deployed into slot a, booted from slot a
    (trial boot)."""
    path = os.path.join(workdir, "sysroots", at.safe_name(request.node.name, 80))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    s = Sysroot(path, bindir, published)
    s.abdeploy("init", "--os=hooktest", "--bootloader=file")
    at.trust_keys(s.path, [gpg["key"]])
    s.abdeploy("deploy", "--from=" + published["repo"], published["ref"])
    assert s.status()["primary"] == "a"
    s.set_cmdline("abdeploy.slot=a")  # the first boot of the new slot
    yield s
    rmtree(path)


def explain(p):
    return "exit %d after %.2fs\n%s" % (p.returncode, getattr(p, "elapsed", 0), p.out)


# --------------------------------------------------------------------------
# the scripts themselves


@pytest.mark.parametrize("name", REQUIRED + WANTED)
def test_hook_is_a_posix_sh_script_with_a_header(name):
    path = hook_path(name)
    st = os.stat(path)
    assert st.st_mode & 0o111 == 0o111, "%s is not executable" % path
    with open(path) as f:
        text = f.read()
    assert text.startswith("#!/bin/sh\n"), "%s must start with #!/bin/sh" % name
    header = text.split("\nset -u", 1)[0]
    assert re.search(r"^# %s - abdeploy default health hook" % re.escape(name), header, re.M)
    assert "Check" in header, "%s: header must say what it checks" % name
    assert "Tuning" in header, "%s: header must say how to tune it" % name
    assert not name.endswith(".sh"), ".sh hooks are run with bash, which a minimal image lacks"
    run(["sh", "-n", path])
    if BUSYBOX:
        run([BUSYBOX, "sh", "-n", path])


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_healthy_slot_passes_every_required_hook(sysroot, shell, request):
    path = request.getfixturevalue("busybox_path") if shell == "busybox" else None
    for name in REQUIRED:
        p = sysroot.hook(name, path=path, shell=shell)
        assert p.returncode == 0, "%s under %s: %s" % (name, shell, explain(p))
    p = sysroot.hook("10-booted-slot", path=path, shell=shell)
    assert "slot a is booted and primary, state trial" in p.out
    p = sysroot.hook("20-slot-content", path=path, shell=shell)
    assert re.search(r"64 of %d files checked" % sysroot.published["n_files"], p.out), p.out
    p = sysroot.hook("30-free-space", path=path, shell=shell)
    assert sysroot.path + ":" in p.out and sysroot.p("abdeploy", "var") + ":" in p.out, p.out


# --------------------------------------------------------------------------
# 10-booted-slot


def test_booted_slot_fails_when_the_command_line_disagrees_with_the_runner(sysroot):
    sysroot.set_cmdline("abdeploy.slot=b")
    p = sysroot.hook("10-booted-slot")
    assert p.returncode == 1, explain(p)
    assert "ABDEPLOY_SLOT" in p.out and "abdeploy.slot=b" in p.out, p.out


def test_booted_slot_fails_without_a_slot_on_the_command_line(sysroot):
    sysroot.set_cmdline("quiet")
    p = sysroot.hook("10-booted-slot", extra={"ABDEPLOY_SLOT": ""})
    assert p.returncode == 1, explain(p)
    assert "no abdeploy.slot=" in p.out, p.out


def test_booted_slot_last_occurrence_wins(sysroot):
    sysroot.set_cmdline("abdeploy.slot=b abdeploy.slot=a")
    p = sysroot.hook("10-booted-slot")
    assert p.returncode == 0, explain(p)


def test_booted_slot_fails_when_the_other_slot_is_running(sysroot):
    """Slot b (empty) runs while abdeploy expects slot a."""
    sysroot.set_cmdline("abdeploy.slot=b")
    p = sysroot.hook("10-booted-slot", extra={"ABDEPLOY_SLOT": "b", "ABDEPLOY_COMMIT": ""})
    assert p.returncode == 1, explain(p)
    assert "abdeploy expects slot 'a'" in p.out, p.out


def test_booted_slot_fails_when_the_slot_is_marked_bad(sysroot):
    sysroot.abdeploy("mark-bad", "a")
    assert sysroot.status()["primary"] == "a"  # nothing else to boot
    p = sysroot.hook("10-booted-slot")
    assert p.returncode == 1, explain(p)
    assert "marked bad" in p.out, p.out


def test_booted_slot_fails_on_a_commit_mismatch(sysroot):
    p = sysroot.hook("10-booted-slot", extra={"ABDEPLOY_COMMIT": "0" * 64})
    assert p.returncode == 1, explain(p)
    assert "0" * 64 in p.out, p.out


def test_booted_slot_fails_without_abdeploy_in_path(sysroot, busybox_path):
    only_busybox = busybox_path.split(":")[0]
    p = sysroot.hook("10-booted-slot", path=only_busybox, shell="busybox")
    assert p.returncode == 1, explain(p)
    assert "abdeploy is not in PATH" in p.out, p.out


# --------------------------------------------------------------------------
# 20-slot-content

ALL = {"ABDEPLOY_HEALTH_CONTENT_SAMPLE": "all"}


def replace_file(path, content):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(content)
    st = os.stat(path)
    os.chmod(tmp, st.st_mode & 0o7777)
    os.rename(tmp, path)


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_content_fails_when_a_file_is_replaced_by_another(sysroot, shell, request):
    path = request.getfixturevalue("busybox_path") if shell == "busybox" else None
    replace_file(sysroot.slot_file("usr/share/doc/f023"), b"tampered\n")
    p = sysroot.hook("20-slot-content", extra=ALL, path=path, shell=shell)
    assert p.returncode == 1, explain(p)
    assert "/usr/share/doc/f023: replaced" in p.out, p.out
    assert "1 of %d checked files" % sysroot.published["n_files"] in p.out, p.out


def test_content_fails_when_a_file_is_replaced_by_an_identical_copy(sysroot):
    """Same bytes, new inode: the hardlink to the repo object is broken."""
    f = sysroot.slot_file("usr/bin/hello")
    with open(f, "rb") as fh:
        replace_file(f, fh.read())
    p = sysroot.hook("20-slot-content", extra=ALL)
    assert p.returncode == 1, explain(p)
    assert "/usr/bin/hello: replaced" in p.out, p.out


def test_content_fails_when_a_file_is_modified_in_place(sysroot):
    """Writing into the hardlinked file also changes the repo object: only
    the checksum notices."""
    f = sysroot.slot_file("usr/lib/os-release")
    ino = os.stat(f).st_ino
    with open(f, "r+b") as fh:
        fh.write(b"X")
    assert os.stat(f).st_ino == ino
    p = sysroot.hook("20-slot-content", extra=ALL)
    assert p.returncode == 1, explain(p)
    assert "/usr/lib/os-release: modified" in p.out, p.out


def test_content_fails_when_the_mode_changes(sysroot):
    os.chmod(sysroot.slot_file("usr/bin/hello"), 0o777)
    p = sysroot.hook("20-slot-content", extra=ALL)
    assert p.returncode == 1, explain(p)
    assert "/usr/bin/hello: modified" in p.out, p.out


def test_content_fails_on_missing_files_and_wrong_symlinks(sysroot):
    os.unlink(sysroot.slot_file("usr/share/doc/name with spaces.txt"))
    link = sysroot.slot_file("usr/bin/hello-link")
    os.unlink(link)
    os.symlink("/bin/false", link)
    p = sysroot.hook("20-slot-content", extra=ALL)
    assert p.returncode == 1, explain(p)
    assert "/usr/share/doc/name with spaces.txt: missing" in p.out, p.out
    assert "/usr/bin/hello-link: points to /bin/false, the commit says hello" in p.out, p.out
    assert "2 of %d checked files" % sysroot.published["n_files"] in p.out, p.out


# Names `ostree ls` prints over several lines, or that a shell mangles: a
# newline (also at the end, and one followed by text that looks like a
# symlink entry), a tab, a backslash escape.
ODD_NAMES = ["usr/share/doc/new\nline", "usr/share/doc/ends-with-newline\n",
             "usr/share/doc/x\nl00777 0 0 0 fake", "usr/share/doc/tab\there",
             "usr/share/doc/back\\nslash"]


@pytest.fixture(scope="session")
def published_odd(workdir, gpg):
    """Like `published`, plus files with the names of ODD_NAMES (committed
    with the ostree CLI: abdeploy publish commit refuses such names)."""
    files = {"usr/bin/hello": ("#!/bin/sh\necho hello\n", 0o755)}
    files.update(at.kernel_files("6.1.0-test", ("FAKEKERNEL\n", 0o644)))
    for i, name in enumerate(ODD_NAMES):
        files[name] = ("odd %d\n" % i, 0o644)
    tree = at.write_tree(os.path.join(workdir, "tree-odd"), files)
    repo = at.ostree_init(os.path.join(workdir, "publish-odd", "repo"))
    commit = at.ostree_commit(repo, "os/odd", tree, "1.0", "odd names", key=gpg["fpr"],
                              gpg=gpg["gpg"])
    return {"repo": repo, "ref": "os/odd", "commit": commit, "n_files": len(files)}


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_content_reads_names_with_newlines_and_tabs(workdir, bindir, gpg, published_odd, shell,
                                                    request):
    """A file name with a newline was read as a missing file: a red boot."""
    path = request.getfixturevalue("busybox_path") if shell == "busybox" else None
    root = os.path.join(workdir, "sysroots", at.safe_name(request.node.name, 80))
    s = Sysroot(root, bindir, published_odd)
    s.abdeploy("init", "--os=hooktest", "--bootloader=file")
    at.trust_keys(s.path, [gpg["key"]])
    s.abdeploy("deploy", "--from=" + published_odd["repo"], published_odd["ref"])
    s.set_cmdline("abdeploy.slot=a")
    try:
        p = s.hook("20-slot-content", extra=ALL, path=path, shell=shell)
        assert p.returncode == 0, explain(p)
        assert "%d of %d files checked" % ((published_odd["n_files"],) * 2) in p.out, p.out
        # A damaged file with such a name is still found, by its exact name.
        replace_file(s.slot_file(ODD_NAMES[0]), b"tampered\n")
        p = s.hook("20-slot-content", extra=ALL, path=path, shell=shell)
        assert p.returncode == 1, explain(p)
        assert "/usr/share/doc/new\nline: replaced" in p.out, p.out
        assert "1 of %d checked files" % published_odd["n_files"] in p.out, p.out
    finally:
        rmtree(root)


def test_content_fails_when_the_slot_ref_names_another_commit(sysroot):
    p = sysroot.hook("20-slot-content", extra={"ABDEPLOY_COMMIT": "1" * 64})
    assert p.returncode == 1, explain(p)
    assert "abdeploy/slot/a" in p.out, p.out


def test_content_sample_size_from_environment_and_health_conf(sysroot):
    conf = sysroot.p("etc", "abdeploy", "health.conf")
    with open(conf, "w") as f:
        f.write("# tuning\nABDEPLOY_HEALTH_CONTENT_SAMPLE = \"7\"\n")
    p = sysroot.hook("20-slot-content")
    assert p.returncode == 0, explain(p)
    assert "7 of %d files checked" % sysroot.published["n_files"] in p.out, p.out
    p = sysroot.hook("20-slot-content", extra={"ABDEPLOY_HEALTH_CONTENT_SAMPLE": "3"})
    assert "3 of %d files checked" % sysroot.published["n_files"] in p.out, p.out
    p = sysroot.hook("20-slot-content", extra={"ABDEPLOY_HEALTH_CONTENT_SAMPLE": "0"})
    assert p.returncode == 0 and "skipped" in p.out, explain(p)
    p = sysroot.hook("20-slot-content", extra={"ABDEPLOY_HEALTH_CONTENT_SAMPLE": "many"})
    assert p.returncode == 1 and "ABDEPLOY_HEALTH_CONTENT_SAMPLE=many" in p.out, explain(p)


def test_content_sample_is_random(sysroot):
    """A damaged file outside a small sample is found by some runs but not all."""
    replace_file(sysroot.slot_file("usr/share/doc/f007"), b"tampered\n")
    codes = set()
    for _ in range(60):
        p = sysroot.hook("20-slot-content", extra={"ABDEPLOY_HEALTH_CONTENT_SAMPLE": "20"})
        codes.add(p.returncode)
        if codes == {0, 1}:
            break
    assert codes == {0, 1}, "20 of %d files: expected both outcomes, got %s" % (
        sysroot.published["n_files"], codes)


def test_content_stops_at_its_time_limit(sysroot, workdir):
    """With an ostree whose checksums take 0.2 s, checking every file takes
    far longer than the 1 s limit: the hook stops in time and passes."""
    d = os.path.join(workdir, "slow-ostree")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "ostree"), "w") as f:
        f.write('#!/bin/sh\n[ "$1" = checksum ] && sleep 0.2\nexec %s "$@"\n' % shutil.which("ostree"))
    os.chmod(os.path.join(d, "ostree"), 0o755)
    replace_file(sysroot.slot_file("usr/share/doc/f059"), b"tampered\n")
    p = sysroot.hook("20-slot-content", extra={"ABDEPLOY_HEALTH_CONTENT_SAMPLE": "all",
                                               "ABDEPLOY_HEALTH_CONTENT_TIME_LIMIT": "1"},
                     path=d + ":" + sysroot.bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
    assert "stopped at the time limit (1s)" in p.out, explain(p)
    m = re.search(r"checked (\d+) of (\d+) sampled files", p.out)
    assert m and int(m.group(1)) < int(m.group(2)), p.out
    assert p.elapsed < 8, explain(p)  # checking every file takes over 12 s


def test_content_is_skipped_without_the_ostree_cli(sysroot, busybox_path_no_ostree):
    replace_file(sysroot.slot_file("usr/share/doc/f001"), b"tampered\n")
    p = sysroot.hook("20-slot-content", extra=ALL, path=busybox_path_no_ostree, shell="busybox")
    assert p.returncode == 0, explain(p)
    assert "skipped: the ostree command is not installed" in p.out, p.out


# --------------------------------------------------------------------------
# 30-free-space


def free_mib(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize // (1024 * 1024)


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_free_space_thresholds(sysroot, shell, request):
    path = request.getfixturevalue("busybox_path") if shell == "busybox" else None
    p = sysroot.hook("30-free-space", extra={"ABDEPLOY_HEALTH_MIN_FREE_PERCENT": "100"},
                     path=path, shell=shell)
    assert p.returncode == 1, explain(p)
    assert "below the threshold (100% and 50 MiB)" in p.out, p.out
    avail = free_mib(sysroot.path)
    p = sysroot.hook("30-free-space", extra={"ABDEPLOY_HEALTH_MIN_FREE_PERCENT": "0",
                                             "ABDEPLOY_HEALTH_MIN_FREE_MIB": str(avail * 2 + 1024)},
                     path=path, shell=shell)
    assert p.returncode == 1, explain(p)
    p = sysroot.hook("30-free-space", extra={"ABDEPLOY_HEALTH_MIN_FREE_PERCENT": "0",
                                             "ABDEPLOY_HEALTH_MIN_FREE_MIB": str(avail // 2)},
                     path=path, shell=shell)
    assert p.returncode == 0, explain(p)


def test_free_space_threshold_from_health_conf(sysroot):
    with open(sysroot.p("etc", "abdeploy", "health.conf"), "w") as f:
        f.write("ABDEPLOY_HEALTH_MIN_FREE_MIB=%d\n" % (1 << 40))
    p = sysroot.hook("30-free-space")
    assert p.returncode == 1, explain(p)
    p = sysroot.hook("30-free-space", extra={"ABDEPLOY_HEALTH_MIN_FREE_MIB": "1"})
    assert p.returncode == 0, explain(p)


def test_free_space_paths_and_bad_values(sysroot):
    p = sysroot.hook("30-free-space", extra={
        "ABDEPLOY_HEALTH_FREE_SPACE_PATHS": sysroot.p("abdeploy", "var") + " " + sysroot.p("nonexistent")})
    assert p.returncode == 1, explain(p)
    assert sysroot.p("nonexistent") + ": missing" in p.out, p.out
    p = sysroot.hook("30-free-space", extra={"ABDEPLOY_HEALTH_MIN_FREE_PERCENT": "101"})
    assert p.returncode == 1 and "from 0 to 100" in p.out, explain(p)


# --------------------------------------------------------------------------
# 40-systemd-units


@pytest.fixture
def fake_systemctl(workdir):
    """A systemctl that prints the failed units in $FAKE_FAILED_UNITS (as
    `systemctl list-units --state=failed --no-legend --plain` does) and
    refuses other arguments."""
    d = os.path.join(workdir, "fake-systemctl")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "systemctl"), "w") as f:
        f.write('#!/bin/sh\n'
                'case "$*" in *list-units*--state=failed*) ;; *) echo "unexpected: $*" >&2; exit 2;; esac\n'
                '[ -n "${FAKE_SYSTEMCTL_EXIT:-}" ] && exit "$FAKE_SYSTEMCTL_EXIT"\n'
                'for u in ${FAKE_FAILED_UNITS:-}; do echo "$u loaded failed failed Test unit $u"; done\n')
    os.chmod(os.path.join(d, "systemctl"), 0o755)
    return d + ":" + os.environ.get("PATH", "/usr/bin:/bin")


def test_systemd_units_auto_skips_without_a_running_systemd(sysroot):
    p = sysroot.hook("40-systemd-units")
    assert p.returncode == 0, explain(p)
    if os.path.isdir("/run/systemd/system"):
        assert "skipped: the sysroot is" in p.out, p.out
    else:
        assert "skipped: systemd is not running" in p.out, p.out


def test_systemd_units_failed_units(sysroot, fake_systemctl):
    yes = {"ABDEPLOY_HEALTH_SYSTEMD_UNITS": "yes"}
    p = sysroot.hook("40-systemd-units", extra=yes, path=fake_systemctl)
    assert p.returncode == 0 and "no failed systemd units" in p.out, explain(p)
    p = sysroot.hook("40-systemd-units", path=fake_systemctl,
                     extra=dict(yes, FAKE_FAILED_UNITS="broken.service dev-sdz.device"))
    assert p.returncode == 1, explain(p)
    assert "failed systemd units: broken.service dev-sdz.device" in p.out, p.out
    p = sysroot.hook("40-systemd-units", path=fake_systemctl,
                     extra=dict(yes, FAKE_FAILED_UNITS="broken.service dev-sdz.device",
                                ABDEPLOY_HEALTH_IGNORE_FAILED_UNITS="dev-*.device"))
    assert p.returncode == 1 and "units: broken.service (" in p.out, explain(p)
    with open(sysroot.p("etc", "abdeploy", "health.conf"), "w") as f:
        f.write("ABDEPLOY_HEALTH_IGNORE_FAILED_UNITS='dev-*.device broken.service'\n")
    p = sysroot.hook("40-systemd-units", path=fake_systemctl,
                     extra=dict(yes, FAKE_FAILED_UNITS="broken.service dev-sdz.device"))
    assert p.returncode == 0, explain(p)
    assert "ignoring failed units" in p.out, p.out
    p = sysroot.hook("40-systemd-units", path=fake_systemctl,
                     extra=dict(yes, FAKE_SYSTEMCTL_EXIT="1"))
    assert p.returncode == 1, explain(p)
    p = sysroot.hook("40-systemd-units", path=fake_systemctl,
                     extra={"ABDEPLOY_HEALTH_SYSTEMD_UNITS": "no", "FAKE_FAILED_UNITS": "x.service"})
    assert p.returncode == 0 and "skipped" in p.out, explain(p)
    p = sysroot.hook("40-systemd-units", extra={"ABDEPLOY_HEALTH_SYSTEMD_UNITS": "maybe"})
    assert p.returncode == 1, explain(p)


# --------------------------------------------------------------------------
# 50-update-server


@pytest.fixture(scope="session")
def http_server(published):
    s = at.HttpServer(published["repo"]).start()
    yield s
    s.stop()


@pytest.fixture
def closed_port():
    return "http://127.0.0.1:%d" % at.free_port()


@pytest.fixture
def black_hole():
    """A port that accepts connections (in the backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield "http://127.0.0.1:%d" % s.getsockname()[1]
    s.close()


def write_conf(sysroot, text, name=None):
    path = sysroot.p("etc", "abdeploy", "conf.d", name) if name else sysroot.p("etc", "abdeploy", "abdeploy.conf")
    with open(path, "w") as f:
        f.write(text)


def test_update_server_not_configured(sysroot):
    p = sysroot.hook("50-update-server")
    assert p.returncode == 0, explain(p)
    assert "no [update] url configured" in p.out, p.out


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_update_server_answers(sysroot, http_server, shell, request):
    path = request.getfixturevalue("busybox_path") if shell == "busybox" else None
    write_conf(sysroot, "[boot]\ntries=3\n\n[update]\n# the publisher\nurl = %s/\n" % http_server.url)
    sysroot.abdeploy("status")  # abdeploy itself accepts this configuration
    p = sysroot.hook("50-update-server", path=path, shell=shell)
    assert p.returncode == 0, explain(p)
    assert "update server answers: %s/config" % http_server.url in p.out, p.out


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_update_server_closed_port_warns(sysroot, closed_port, shell, request):
    path = request.getfixturevalue("busybox_path") if shell == "busybox" else None
    write_conf(sysroot, "[update]\nurl=%s\n" % closed_port)
    p = sysroot.hook("50-update-server", path=path, shell=shell)
    assert p.returncode == 1, explain(p)
    assert "WARNING: the update server does not answer: %s/config" % closed_port in p.out, p.out
    assert p.elapsed < 8, explain(p)


@pytest.mark.parametrize("shell", ["sh", "busybox"])
def test_update_server_that_never_answers_is_cut_off(sysroot, black_hole, shell, request):
    path = request.getfixturevalue("busybox_path") if shell == "busybox" else None
    write_conf(sysroot, "[update]\nurl=%s\n" % black_hole)
    p = sysroot.hook("50-update-server", path=path, shell=shell,
                     extra={"ABDEPLOY_HEALTH_UPDATE_TIMEOUT": "1"})
    assert p.returncode != 0, explain(p)
    assert p.elapsed < 10, explain(p)  # without the cut-off it hangs


def test_update_server_conf_d_overrides_and_local_repos(sysroot, http_server, closed_port, published):
    write_conf(sysroot, "[update]\nurl=%s\n" % closed_port)
    write_conf(sysroot, "[update]\nurl=%s\n" % http_server.url, name="50-server.conf")
    p = sysroot.hook("50-update-server")
    assert p.returncode == 0, explain(p)
    write_conf(sysroot, "[update]\nurl=%s\n" % published["repo"], name="50-server.conf")
    p = sysroot.hook("50-update-server")
    assert p.returncode == 0 and "is readable" in p.out, explain(p)
    write_conf(sysroot, "[update]\nurl=file://%s/nowhere\n" % published["repo"], name="50-server.conf")
    p = sysroot.hook("50-update-server")
    assert p.returncode == 1, explain(p)
    # a url in another group is not [update]'s (X- groups are ignored by
    # abdeploy, any other unknown group is refused; see abdeploy.conf(5))
    write_conf(sysroot, "[update]\nurl=%s\n[X-other]\nurl=%s\n" % (http_server.url, closed_port),
               name="50-server.conf")
    p = sysroot.hook("50-update-server")
    assert p.returncode == 0, explain(p)


# --------------------------------------------------------------------------
# through the runner: abdeploy health-check


def install_hooks(sysroot, slot="a"):
    """Put the default hooks where an image built with --prefix=/usr has them."""
    for stage, names in (("required.d", REQUIRED), ("wanted.d", WANTED)):
        d = sysroot.slot_file(os.path.join("usr/lib/abdeploy/health", stage), slot)
        os.makedirs(d, exist_ok=True)
        for n in names:
            shutil.copy2(hook_path(n), os.path.join(d, n))
            os.chmod(os.path.join(d, n), 0o755)


def verdict(sysroot):
    with open(sysroot.p("abdeploy", "state", "verdict.json")) as f:
        return json.load(f)


def test_health_check_runs_the_default_hooks(sysroot, http_server, closed_port):
    install_hooks(sysroot)
    write_conf(sysroot, "[update]\nurl=%s\n" % http_server.url)
    # a relative --sysroot: the hooks resolve it against the runner's cwd
    parent, base = os.path.split(sysroot.path)
    r = sysroot.abdeploy("health-check", "--no-reboot", cwd=parent, sysroot=base, check=False)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 0, out
    v = verdict(sysroot)
    assert v["verdict"] == "green" and v["action"] == "marked-good", v
    got = [(h["name"], h["stage"], h["result"]) for h in v["hooks"]]
    assert got == [(n, "required", "pass") for n in REQUIRED] + [(n, "wanted", "pass") for n in WANTED], got
    assert v["warnings"] == [] and v["failed_hooks"] == [], v
    assert "[20-slot-content] slot a: 64 of" in out, out
    assert "[50-update-server] update server answers" in out, out

    # wanted hook fails: still green, with a warning
    write_conf(sysroot, "[update]\nurl=%s\n" % closed_port)
    r = sysroot.abdeploy("health-check", "--no-reboot", check=False)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    v = verdict(sysroot)
    assert v["verdict"] == "green" and v["warnings"] == ["50-update-server"], v

    # a replaced file: red on this (now normal) boot, nothing else happens
    replace_file(sysroot.slot_file("usr/bin/hello"), b"#!/bin/sh\necho evil\n")
    r = sysroot.abdeploy("health-check", "--no-reboot", check=False,
                         env={"ABDEPLOY_HEALTH_CONTENT_SAMPLE": "all"})
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 7, out   # red verdict (abdeploy(8) EXIT STATUS)
    v = verdict(sysroot)
    assert v["verdict"] == "red" and v["failed_hooks"] == ["20-slot-content"], v
    assert v["action"] == "none", v
    assert "/usr/bin/hello: replaced" in out, out


def test_health_check_red_trial_boot_asks_for_a_reboot(sysroot):
    install_hooks(sysroot)
    with open(sysroot.p("etc", "abdeploy", "health.conf"), "w") as f:
        f.write("ABDEPLOY_HEALTH_MIN_FREE_PERCENT=100\n")
    r = sysroot.abdeploy("health-check", "--no-reboot", check=False)
    out = r.stdout.decode() + r.stderr.decode()
    assert r.returncode == 7, out   # red verdict
    v = verdict(sysroot)
    assert v["verdict"] == "red" and v["trial"] is True, v
    assert v["failed_hooks"] == ["30-free-space"] and v["action"] == "reboot", v
    assert "Would reboot now" in out, out


# --------------------------------------------------------------------------
# data/systemd/abdeploy-healthcheck.service


def unit_text(bindir):
    with open(os.path.join(SRC_ROOT, "data", "systemd", "abdeploy-healthcheck.service.in")) as f:
        return f.read().replace("@bindir@", bindir)


def test_healthcheck_unit_orders_and_installs_as_specified(bindir):
    sections, current = {}, None
    for line in unit_text(bindir).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        current.append(line)
    assert "Type=oneshot" in sections["Service"]
    assert "RemainAfterExit=yes" in sections["Service"]
    assert "ExecStart=%s/abdeploy health-check" % bindir in sections["Service"]
    assert "Before=boot-complete.target" in sections["Unit"]
    assert "After=local-fs.target" in sections["Unit"]
    assert not any("network" in l for l in sections["Unit"]), "no network ordering by default"
    assert "RequiredBy=boot-complete.target" in sections["Install"]
    assert "WantedBy=multi-user.target" in sections["Install"]


def update_unit_sections(bindir):
    path = os.path.join(SRC_ROOT, "data", "systemd", "abdeploy-update.service.in")
    with open(path) as f:
        text = f.read().replace("@bindir@", bindir)
    sections, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        current.append(line)
    return text, sections


def test_update_unit_requires_a_green_boot(workdir, bindir):
    """The A/B invariant (issue 11): the unattended update starts only once
    boot-complete.target is reached, which the health check is RequiredBy=:
    after a red verdict the target fails and the update does not start."""
    text, sections = update_unit_sections(bindir)
    unit = sections["Unit"]
    assert "Requires=boot-complete.target" in unit, unit
    assert any(l.startswith("After=") and "boot-complete.target" in l.split("=", 1)[1].split()
               for l in unit), unit
    if shutil.which("systemd-analyze") is None:
        return
    d = os.path.join(workdir, "update-units")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "abdeploy-update.service")
    with open(path, "w") as f:
        f.write(text)
    p = run(["systemd-analyze", "verify", "--man=no", path], check=False)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert "abdeploy-update.service:" not in out, out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_healthcheck_unit_passes_systemd_analyze_verify(workdir, bindir):
    d = os.path.join(workdir, "units")
    os.makedirs(d, exist_ok=True)
    unit = os.path.join(d, "abdeploy-healthcheck.service")
    with open(unit, "w") as f:
        f.write(unit_text(bindir))
    p = run(["systemd-analyze", "verify", "--man=no", unit], check=False)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0 and "abdeploy-healthcheck.service" not in out, out
