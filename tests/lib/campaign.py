"""The operations of the robustness campaigns (tests/killcampaign,
tests/diskfull, bench/campaign) and what must hold after each of them.

One World holds what every campaign needs, made once: a GPG key, a
publisher repo made by `abdeploy publish` (1.0 and 1.1 on channel stable,
with a static delta), lighttpd serving it on 127.0.0.1, and one prepared
sysroot per starting state.  An Operation names a starting state, the
command to run on a copy of it, and the exit codes a re-run may end with.

What "held" means after an interrupted or failed run (held_problems()):
  - `status --json` works;
  - `verify --full --json` passes the integrity checks: state-consistent
    and tree-matches-commit (booted-primary-good, health-green and
    no-stuck-transaction describe where the device is in its life cycle:
    after a kill in `update` a transaction is legitimately unfinished until
    the re-run, after `activate` the booted slot is legitimately not the
    primary until the reboot);
  - the running slot's tree (content and modes) is unchanged;
  - `ostree fsck` of the sysroot repo passes.
and after the re-run (finish_problems()): the re-run exits with an allowed
code, simulated boots (tests/lib/bootsim.py) reach a green verdict on a
good primary, and then `abdeploy verify --full` passes every check.

Standard library only (pytest not needed): the bench script uses it too.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

LIBDIR = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("ABDEPLOY_SRCDIR") or os.path.dirname(os.path.dirname(LIBDIR))
for _d in (LIBDIR, os.path.join(SRCDIR, "tests", "update")):
    if _d not in sys.path:
        sys.path.insert(0, _d)

import abtest as at  # noqa: E402
import bootsim  # noqa: E402
import updlib as ul  # noqa: E402

FIXTURE_TAR = os.path.join(SRCDIR, "tests", "fixtures", "layout-1", "layout-1.tar.xz")
INTEGRITY_CHECKS = ("state-consistent", "tree-matches-commit")
MAX_BOOTS = 4      # bound of the boots that bring a device back to green
EXIT_NOTHING = at.EXIT_NOTHING


# --------------------------------------------------------------------------
# Devices


class Device(ul.Device):
    """An abdeploy sysroot ROOT/sysroot with its kernel command line file
    ROOT/cmdline (see tests/update/updlib.py)."""

    def booted(self):
        with open(self.cmdline) as f:
            for word in f.read().split():
                if word.startswith("abdeploy.slot="):
                    return word.split("=", 1)[1]
        return None

    def boot(self):
        """One simulated boot: bootloader decision, then health-check."""
        return bootsim.boot(self.path, "file", binary=self.binary, cmdline=self.cmdline,
                            env=self.env())

    def verify(self):
        """`verify --full --json` as {check name: (passed, reason)}, or a
        string describing why it printed nothing usable."""
        r = self.run("verify", "--full", "--json")
        try:
            doc = json.loads(r.stdout)
            return {c["name"]: (c["passed"], c["reason"]) for c in doc["checks"]}
        except (ValueError, KeyError, TypeError):
            return "verify printed no JSON:\n" + r.describe()

    def running_tree(self):
        """Content and modes of the booted slot's tree (no inodes: a
        re-checkout of the same commit is not a change)."""
        slot = self.booted()
        if slot is None:
            return {}
        return at.tree_entries(self.p("abdeploy", "slots", slot), "slot", identity=False)


def copy_device(src, parent, prefix="dev-"):
    """cp -a of the device SRC (hard links kept) into a new directory under
    PARENT; returns the new Device."""
    root = tempfile.mkdtemp(prefix=prefix, dir=parent)
    d = Device(root, src.binary, src.home)
    at.run(["cp", "-a", src.path, d.path], timeout=300)
    shutil.copy(src.cmdline, d.cmdline)
    return d


def remove_device(dev):
    at.rmtree(dev.root)


# --------------------------------------------------------------------------
# The world: keys, publisher, server, prepared starting states


class World:
    """Everything the campaigns share; close() stops the server and the
    gpg-agent.  Starting states are made on first use and kept."""

    def __init__(self, workdir, binary):
        self.workdir = workdir
        self.binary = binary
        self.home = os.path.join(workdir, "home")
        os.makedirs(self.home, exist_ok=True)
        self.templates = {}
        self.gpg = None
        self.server = None
        try:
            self._publish()
        except BaseException:
            self.close()
            raise

    def _publish(self):
        self.gpg = ul.Gpg(os.path.join(self.workdir, "gnupg"))
        self.keyfile = self.gpg.export(self.gpg.trusted, os.path.join(self.workdir,
                                                                      "publisher.gpg"))
        self.pub = ul.Publisher(os.path.join(self.workdir, "publish"), self.binary, self.gpg)
        self.pub.commit("1.0", ul.image_spec("1.0"))
        self.pub.commit("1.1", ul.image_spec("1.1", changed=ul.CHANGED_11))
        for v in ("1.0", "1.1"):
            self.pub.release("stable", v)
        self.pub.deltas("stable")
        self.server = ul.Lighttpd(self.pub.repo, self.workdir).start()

    def close(self):
        if self.server:
            self.server.stop()
            self.server = None
        if self.gpg:
            self.gpg.close()
            self.gpg = None

    @property
    def url(self):
        return self.server.url

    def commit(self, version):
        return self.pub.commits[version]

    def _new_device(self, name):
        root = os.path.join(self.workdir, "templates", name)
        os.makedirs(root)
        d = Device(root, self.binary, self.home)
        os.makedirs(d.path)
        d.set_booted(None)
        d.ok("init", "--os=" + ul.OS_NAME, "--bootloader=file")
        at.trust_keys(d.path, [self.keyfile])
        # no free-space reserve: a full disk must reach abdeploy's writes,
        # not only the check before a pull
        d.configure(self.url, min_free_space=0)
        return d

    def template(self, state):
        """The prepared device of starting state STATE (see STATES)."""
        if state not in self.templates:
            self.templates[state] = STATES[state](self)
        return self.templates[state]


def _boot_green(dev, slot):
    r = dev.boot()
    assert (r.slot, r.returncode) == (slot, 0), "boot: %r\n%s%s" % (r.slot, r.stdout, r.stderr)


def _good(world):
    """1.0 in slot a, booted, green, good; slot b empty."""
    d = world._new_device("good")
    d.ok("update", "--version=1.0")
    _boot_green(d, "a")
    return d


def _staged(world):
    """good, plus 1.1 staged into slot b (not activated)."""
    d = copy_device(world.template("good"), os.path.join(world.workdir, "templates"))
    d.ok("stage", "--from=" + world.pub.repo, world.commit("1.1"))
    return d


def _trial(world):
    """good, plus 1.1 activated in slot b and booted on trial (the
    bootloader took a try): health-check decides next."""
    d = copy_device(world.template("good"), os.path.join(world.workdir, "templates"))
    d.ok("update", "--version=1.1")
    sel = bootsim.select(d.path, "file")
    assert sel.slot == "b", sel
    bootsim.write_cmdline(d.cmdline, sel.slot)
    return d


def _two_good(world):
    """1.0 good in slot a, 1.1 good in slot b, b booted and primary."""
    d = copy_device(world.template("trial"), os.path.join(world.workdir, "templates"))
    at.run(d.cmd("health-check", "--no-reboot"), env=d.env())
    st = d.status()
    assert st["primary"] == "b" and d.slot("b", st)["state"] == "good", st
    return d


def _restorable(world):
    """two_good with an archive (ROOT/backup.tar) that `backup` made of it,
    after which a manual rollback made slot a primary: restoring the archive
    makes b primary again.  The booted slot (b) is described by the archive
    too, so the running slot's record stays true across the restore."""
    d = copy_device(world.template("two_good"), os.path.join(world.workdir, "templates"))
    d.archive = os.path.join(d.root, "backup.tar")
    d.ok("backup", "--output=" + d.archive)
    d.ok("rollback")
    return d


def _layout1(world):
    """The `file` sysroot of the layout-1 fixture (made by abdeploy 0.1.0)."""
    root = os.path.join(world.workdir, "templates", "layout1")
    os.makedirs(root)
    at.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xJf", FIXTURE_TAR,
            "-C", root, "./file/"], timeout=300)
    d = Device(os.path.join(root, "file"), world.binary, world.home)
    assert d.booted() is not None, "the layout-1 fixture's file sysroot names no booted slot"
    return d


STATES = {"good": _good, "staged": _staged, "trial": _trial, "two_good": _two_good,
          "restorable": _restorable, "layout1": _layout1}


# --------------------------------------------------------------------------
# Operations


# What a migration rewrites one file at a time before it stamps the layout
# version last (a failed migration is redone by the next writer: the
# layout version, which is compared, stays 1 until it is complete).
MIGRATED = ("sysroot.json", "slot-a.json", "slot-b.json", "verdict.json", "history.json",
            "last-rollback.json", "update.json", "transaction.json", "abdeploy.conf")

class Operation:
    """NAME: run ARGS(world, dev) on a copy of the starting state STATE.
    RERUN: exit codes a re-run after an interruption may end with."""

    def __init__(self, name, state, args, rerun=(0,), journal=()):
        self.name = name
        self.state = state
        self._args = args
        self.rerun = set(rerun)
        # state files the operation writes on purpose when it fails (update
        # records the failed, retryable transaction and an update-failed
        # history event): left out of the comparison of a failed run
        self.journal = tuple(journal)

    def args(self, world, dev):
        return self._args(world, dev)


OPERATIONS = {op.name: op for op in (
    Operation("stage", "good",
              lambda w, d: ["stage", "--from=" + w.pub.repo, w.commit("1.1")], (0, EXIT_NOTHING)),
    Operation("deploy", "good",
              lambda w, d: ["deploy", "--from=" + w.url, w.commit("1.1")], (0, EXIT_NOTHING)),
    Operation("activate", "staged", lambda w, d: ["activate"], (0, EXIT_NOTHING)),
    Operation("update", "good", lambda w, d: ["update"], (0, EXIT_NOTHING),
              journal=("transaction.json", "history.json")),
    Operation("rollback", "two_good", lambda w, d: ["rollback"], (0,)),
    Operation("health-check", "trial", lambda w, d: ["health-check", "--no-reboot"], (0,)),
    Operation("restore", "restorable",
              lambda w, d: ["restore", "--path=" + os.path.join(os.path.dirname(d.path),
                                                                "backup.tar")], (0,)),
    Operation("migrate", "layout1", lambda w, d: ["migrate"], (0, EXIT_NOTHING),
              journal=MIGRATED),
)}
KILL_OPERATIONS = ("stage", "deploy", "update", "rollback", "health-check", "restore", "migrate")
DISKFULL_OPERATIONS = ("stage", "activate", "update", "rollback", "health-check", "restore",
                       "migrate")


def prepare(world, op, parent):
    """A fresh copy of OP's starting state under PARENT (with the restore
    archive beside it where OP needs one)."""
    tpl = world.template(op.state)
    d = copy_device(tpl, parent)
    if hasattr(tpl, "archive"):
        shutil.copy(tpl.archive, os.path.join(d.root, "backup.tar"))
    return d


# --------------------------------------------------------------------------
# What must hold


def integrity_problems(dev):
    """Problems of the integrity checks of `verify --full --json`."""
    v = dev.verify()
    if isinstance(v, str):
        return [v]
    return ["verify: %s failed: %s" % (name, v[name][1]) for name in INTEGRITY_CHECKS
            if name in v and not v[name][0]] + \
        ["verify: no check %s" % name for name in INTEGRITY_CHECKS if name not in v]


def held_problems(dev, running_before):
    """What is wrong with DEV after an interrupted or failed run."""
    problems = []
    r = dev.run("status", "--json")
    if r.returncode != 0:
        problems.append("status failed:\n" + r.describe())
    problems += integrity_problems(dev)
    now = dev.running_tree()
    if now != running_before:
        problems.append("running slot changed:\n" + at.diff_snapshots(running_before, now))
    problems += fsck_problems(dev, allow_partial=True)
    return problems


def fsck_problems(dev, allow_partial=False):
    """`ostree fsck` of DEV's repo.  With ALLOW_PARTIAL, objects missing
    from a commit that libostree marked partial (state/C.commitpartial: a
    download or delta that was cut short, which the next pull completes)
    are not a problem; libostree 2022.7's fsck reports them all the same."""
    repo = dev.p("ostree", "repo")
    p = at.run(["ostree", "fsck", "--repo=" + repo], check=False, timeout=300)
    if p.returncode == 0:
        return []
    err = p.stderr.decode(errors="replace")
    missing = re.findall(r"Object missing in commits ([0-9a-f]{64})", err)
    other = [l for l in err.splitlines() if l.strip() and "Object missing in commits" not in l
             and not l.startswith("Marking commit as partial")
             and not l.startswith("error: No such metadata object")
             and l.strip() != "error: Repository corruption encountered"]
    try:
        partial = {n.split(".")[0] for n in os.listdir(os.path.join(repo, "state"))
                   if n.endswith(".commitpartial")}
    except FileNotFoundError:
        partial = set()
    if allow_partial and partial and not other and set(missing) <= partial:
        return []
    return ["ostree fsck failed:\n" + err[-2000:]]


def boot_to_green(dev):
    """Boot (simulated) until a green verdict on a good primary, at most
    MAX_BOOTS times; returns problems."""
    for _ in range(MAX_BOOTS):
        st = dev.status()
        booted = dev.booted()
        if booted and st["primary"] == booted and dev.slot(booted, st)["state"] == "good":
            v = dev.verify()
            if not isinstance(v, str) and v.get("health-green", (False,))[0]:
                return []
        dev.boot()
    return ["no green boot on a good primary within %d boots: %s" % (
        MAX_BOOTS, dev.run("status").stdout)]


def finish_problems(world, op, dev, rerun=True):
    """Re-run OP (when RERUN), boot to green and run the full verify."""
    if rerun:
        r = dev.run(*op.args(world, dev), timeout=300)
        if r.returncode not in op.rerun:
            return ["re-run exit %d, allowed %s:\n%s" % (r.returncode, sorted(op.rerun),
                                                         r.describe())]
    problems = boot_to_green(dev)
    if problems:
        return problems
    r = dev.run("verify", "--full", timeout=300)
    if r.returncode != 0:
        return ["verify after the re-run and a boot failed:\n" + r.describe()]
    return fsck_problems(dev)


def state_snapshot(dev, journal=()):
    """What a failed run must leave as it was: `status --json`, the state
    files, the boot pointer, the config and keys, the layout version, the
    running slot's tree and kernel directory; and, separately, the other
    slot's tree, kernel directory and ref (see state_problems)."""
    snap = {"kept": {}, "other": {}}
    r = dev.run("status", "--json")
    snap["status"] = json.loads(r.stdout) if r.returncode == 0 else None
    kept = snap["kept"]
    if snap["status"] is not None:
        if "transaction.json" in journal:
            snap["status"].pop("transaction", None)
        kept["status"] = json.dumps(snap["status"], sort_keys=True)
    else:
        kept["status"] = "status failed: " + r.stderr
    for name in os.listdir(dev.p("abdeploy", "state")):
        if name not in journal:
            kept.update(at.tree_entries(dev.p("abdeploy", "state", name), "state/" + name,
                                        identity=False))
    for rel, key in ( ("boot/abdeploy/pointer", "pointer"),
                     ("boot/grub/grubenv", "grubenv"), ("etc/abdeploy", "etc"),
                     ("abdeploy/version", "version")):
        kept.update(at.tree_entries(dev.p(rel), key, identity=False))
    for name in journal:
        kept.pop("etc/" + name, None)
    kept.update(dev.running_tree())
    booted = dev.booted()
    refs = dev.refs()
    for slot in at.SLOTS:
        dest = kept if slot == booted else snap["other"]
        dest.update(at.tree_entries(dev.p("boot", "abdeploy", slot), "boot/" + slot,
                                    identity=False))
        dest["ref/" + slot] = refs.get("abdeploy/slot/" + slot)
        if slot != booted:
            dest.update(at.tree_entries(dev.p("abdeploy", "slots", slot), "slot/" + slot,
                                        identity=False))
    return snap


def leftovers(dev):
    """Temporary entries (dot names) that a finished or failed run left in
    the directories abdeploy builds things beside."""
    out = []
    for rel in ("abdeploy/slots", "boot/abdeploy", "abdeploy/state", "abdeploy",
                "etc/abdeploy"):
        try:
            names = os.listdir(dev.p(rel))
        except FileNotFoundError:
            continue
        out += [rel + "/" + n for n in names if n.startswith(".")]
    return sorted(out)


def state_problems(before, after):
    """A failed run changed nothing kept; the other slot's files may differ
    only where no record claims that slot (status shows it empty both
    before and after: a stage that failed half-way into an empty slot)."""
    problems = []
    if after["kept"] != before["kept"]:
        problems.append("state changed:\n" + at.diff_snapshots(before["kept"], after["kept"]))
    if after["other"] != before["other"]:
        empty = after["status"] is not None and all(
            s["state"] == "empty" for s in after["status"]["slots"]
            if not s.get("booted"))
        if not empty:
            problems.append("the other slot changed:\n" +
                            at.diff_snapshots(before["other"], after["other"]))
    return problems


# --------------------------------------------------------------------------
# Random-time SIGKILL


def timed_run(world, op, parent):
    """Seconds an uninterrupted run of OP takes on a fresh copy (the scale of
    the kill times; never asserted)."""
    import time
    d = prepare(world, op, parent)
    try:
        t0 = time.monotonic()
        r = d.run(*op.args(world, d), timeout=300)
        elapsed = time.monotonic() - t0
        assert r.returncode == 0, "uninterrupted %s failed:\n%s" % (op.name, r.describe())
        return elapsed
    finally:
        remove_device(d)


def kill_at(dev, args, delay):
    """Start `abdeploy ARGS` in its own process group, SIGKILL the group
    after DELAY seconds; returns the exit code (-9 when killed, else the
    code the run ended with before the kill)."""
    import signal
    proc = subprocess.Popen(dev.cmd(*args), env=dev.env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        try:
            return proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            pass
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)


def kill_one(world, op, delay, parent):
    """One kill of the campaign: OP on a fresh copy, SIGKILLed DELAY seconds
    after it started, then the checks after the kill and after the re-run.
    Returns (exit code of the killed run, list of problems)."""
    d = prepare(world, op, parent)
    try:
        before = d.running_tree()
        rc = kill_at(d, op.args(world, d), delay)
        problems = ["after the kill: " + p for p in held_problems(d, before)]
        if not problems:
            problems = ["after the re-run: " + p for p in finish_problems(world, op, d)]
        return rc, problems
    finally:
        remove_device(d)


def kill_campaign(world, ops, kills_per_op, seed, parent, log=print):
    """KILLS_PER_OP random-time kills of each operation of OPS, the delays
    drawn from random.Random(SEED) uniformly in [0, 1.2 x the time of an
    uninterrupted run].  Returns {op: {"kills", "killed", "held", "failures"}}
    ("killed": runs that the SIGKILL ended, the rest completed first)."""
    import random
    rng = random.Random(seed)
    results = {}
    for name in ops:
        op = OPERATIONS[name]
        scale = 1.2 * timed_run(world, op, parent)
        res = results[name] = {"kills": 0, "killed": 0, "held": 0, "failures": [],
                               "scale_sec": round(scale, 3)}
        for i in range(kills_per_op):
            delay = rng.uniform(0, scale)
            rc, problems = kill_one(world, op, delay, parent)
            res["kills"] += 1
            res["killed"] += rc == -9
            if problems:
                res["failures"].append("seed %d, %s kill %d at %.4fs (exit %d):\n  %s" % (
                    seed, name, i, delay, rc, "\n  ".join(problems)))
                log(res["failures"][-1])
            else:
                res["held"] += 1
        log("%s: %d kills (%d during the run), %d held" % (
            name, res["kills"], res["killed"], res["held"]))
    return results


# --------------------------------------------------------------------------
# Disk full: a small file system filled to a level


NOSPACE = re.compile(r"No space left|ENOSPC|free space|not enough space|Disk quota", re.I)
FILLER = "filler"
INODE_DIR = "inode-filler"


class SmallFs:
    """A small file system mounted at DIR: a loop-mounted ext4 image (4 MiB
    journal, no blocks reserved for root, INODES inodes) when loop devices
    work, else a tmpfs with size= and nr_inodes=.  close() unmounts it and
    detaches the loop device; use it as a context manager."""

    def __init__(self, workdir, size_mib=48, inodes=4096):
        self.dir = os.path.join(workdir, "smallfs")
        self.image = os.path.join(workdir, "smallfs.img")
        self.loop = None
        self.mounted = False
        os.makedirs(self.dir, exist_ok=True)
        try:
            self._mount_ext4(size_mib, inodes)
        except (AssertionError, OSError):
            self.close()
            self._mount_tmpfs(size_mib, inodes)

    def _mount_ext4(self, size_mib, inodes):
        with open(self.image, "wb") as f:
            f.truncate(size_mib << 20)
        at.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-N", str(inodes), "-J", "size=4",
                "-b", "4096", self.image])
        self.loop = at.run(["losetup", "--find", "--show", self.image]).stdout.decode().strip()
        at.run(["mount", "-t", "ext4", self.loop, self.dir])
        self.mounted = True
        self.kind = "ext4 on %s" % self.loop

    def _mount_tmpfs(self, size_mib, inodes):
        at.run(["mount", "-t", "tmpfs", "-o", "size=%dm,nr_inodes=%d" % (size_mib, inodes),
                "tmpfs", self.dir])
        self.mounted = True
        self.kind = "tmpfs"

    def close(self):
        if self.mounted:
            p = at.run(["umount", self.dir], check=False)
            if p.returncode != 0:
                at.run(["umount", "--lazy", self.dir], check=False)
            self.mounted = False
        if self.loop:
            at.run(["losetup", "--detach", self.loop], check=False)
            self.loop = None
        if os.path.exists(self.image):
            os.unlink(self.image)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def free(self):
        """(bytes, inodes) available."""
        os.sync()
        st = os.statvfs(self.dir)
        return st.f_bavail * st.f_frsize, st.f_favail

    @property
    def block(self):
        return os.statvfs(self.dir).f_frsize

    def fill(self, free_bytes=None, free_inodes=None):
        """Leave FREE_INODES inodes, then FREE_BYTES bytes free (rounded down
        to blocks): empty files take the inodes, and a file that is grown
        with fallocate and then shrunk takes the bytes."""
        if free_inodes is not None:
            d = os.path.join(self.dir, INODE_DIR)
            os.makedirs(d, exist_ok=True)
            n = len(os.listdir(d))
            for _ in range(1 << 20):
                left = self.free()[1]
                if left <= free_inodes:
                    break
                # a few at a time, then the free count is read again
                for _ in range(max(1, min(512, left - free_inodes - 1))):
                    open(os.path.join(d, "%d" % n), "w").close()
                    n += 1
        if free_bytes is not None:
            path = os.path.join(self.dir, FILLER)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                for _ in range(64):
                    avail = self.free()[0]
                    want = size + avail - free_bytes
                    if avail == free_bytes or want < 0:
                        break
                    if want > size:
                        try:
                            os.posix_fallocate(fd, 0, want)
                        except OSError:
                            want = size + max(0, avail - free_bytes - 64 * self.block)
                            os.posix_fallocate(fd, 0, max(want, 1))
                    else:
                        os.ftruncate(fd, want)
                    size = want
            finally:
                os.close(fd)

    def unfill(self):
        """Free everything fill() took."""
        at.rmtree(os.path.join(self.dir, FILLER))
        at.rmtree(os.path.join(self.dir, INODE_DIR))


def space_used(world, op, fs):
    """(bytes, inodes) an uninterrupted run of OP takes on FS (net)."""
    d = prepare(world, op, fs.dir)
    try:
        b0, i0 = fs.free()
        r = d.run(*op.args(world, d), timeout=300)
        assert r.returncode == 0, "uninterrupted %s failed:\n%s" % (op.name, r.describe())
        b1, i1 = fs.free()
        return max(0, b0 - b1), max(0, i0 - i1)
    finally:
        remove_device(d)


def full_run(world, op, fs, free_bytes=None, free_inodes=None):
    """OP on a fresh copy on FS with the file system filled to leave
    FREE_BYTES / FREE_INODES; returns (outcome, problems), outcome being
    "failed" (a clean error), "succeeded" (the level was enough) or "bad"."""
    return failing_run(world, op, fs.dir, lambda: fs.fill(free_bytes, free_inodes), fs.unfill,
                       lambda cmd: cmd, NOSPACE, "says the disk is full")


EIO_SYSCALLS = "write,pwrite64,writev,pwritev,fsync,fdatasync,syncfs,fallocate,copy_file_range"
EIO = re.compile(r"Input/output error|EIO", re.I)


def strace_available():
    return at.find_tool("strace") is not None


def eio_run(world, op, parent, syscall, n):
    """OP on a fresh copy with the N-th call of SYSCALL (one of EIO_SYSCALLS;
    strace counts each system call of each thread and process on its own)
    failing with EIO, injected by strace into abdeploy: all its threads and
    forks, but not the programs they execute (gpg, hooks; `-b execve` also
    keeps strace from waiting for a daemon such as gpg-agent).  Returns
    (outcome, problems) as full_run()."""
    def wrap(cmd):
        return [at.find_tool("strace"), "-f", "-b", "execve", "-qq", "-o", "/dev/null",
                "-e", "trace=" + syscall,
                "-e", "inject=%s:error=EIO:when=%d" % (syscall, n)] + cmd
    return failing_run(world, op, parent, lambda: None, lambda: None, wrap, EIO,
                       "names the I/O error", unchanged=False)


def count_writes(world, op, parent):
    """{system call: number of calls} of the write-class calls
    (EIO_SYSCALLS) an uninterrupted run of OP makes (abdeploy only)."""
    d = prepare(world, op, parent)
    try:
        out = os.path.join(d.root, "strace.txt")
        p = subprocess.run([at.find_tool("strace"), "-f", "-b", "execve", "-qq", "-c", "-o", out,
                            "-e", "trace=" + EIO_SYSCALLS] + d.cmd(*op.args(world, d)),
                           env=d.env(), stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        counts = {}
        with open(out) as f:
            for line in f:
                m = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
                if m and m.group(2) in EIO_SYSCALLS.split(","):
                    counts[m.group(2)] = int(m.group(1))
        return counts
    finally:
        remove_device(d)


def failing_run(world, op, parent, setup, teardown, wrap, message, what, unchanged=True):
    """OP on a fresh copy under PARENT; SETUP() before the run makes it
    fail (TEARDOWN() undoes it), WRAP(argv) may prefix the command.  A run
    that fails must exit 1 with an error matching MESSAGE, leave a
    consistent sysroot (held_problems) and, with UNCHANGED, change nothing;
    then, after TEARDOWN, a re-run must succeed.  (An I/O error can strike
    the fsync after a rename, when the new state is already in place:
    EIO runs are held to consistency, not to "unchanged".)"""
    d = prepare(world, op, parent)
    try:
        before = state_snapshot(d, op.journal)
        running = d.running_tree()
        setup()
        p = subprocess.run(wrap(d.cmd(*op.args(world, d))), env=d.env(),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
        r = at.Result(d.cmd(*op.args(world, d)), p.returncode,
                      p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), 0)
        if r.returncode == 0:
            teardown()
            problems = finish_problems(world, op, d, rerun=False)
            return ("succeeded" if not problems else "bad"), problems
        problems = []
        if r.returncode != at.EXIT_ERROR and not (
                r.returncode == at.EXIT_VERIFY and message is EIO and message.search(r.stderr)):
            # exit 3: an I/O error while gpgme talks to gpg fails the
            # signature check closed (reported, see docs/robustness.md)
            problems.append("exit %d, not %d (error)" % (r.returncode, at.EXIT_ERROR))
        if not message.search(r.stderr):
            problems.append("the error message never %s" % what)
        if unchanged:
            problems += state_problems(before, state_snapshot(d, op.journal))
        problems += ["left behind: " + x for x in leftovers(d)]
        teardown()     # ostree fsck writes partial-commit markers
        problems += held_problems(d, running)
        if not problems:
            problems = ["after the cause is gone: " + p for p in finish_problems(world, op, d)]
        if problems:
            problems.insert(0, r.describe())
        return ("failed" if not problems else "bad"), problems
    finally:
        teardown()
        remove_device(d)


def sweep_levels(used, block, count):
    """COUNT byte levels spread over [0, USED] (USED: the net bytes of an
    uninterrupted run), always with 0 and one block, in whole blocks."""
    top = max(block, used)
    levels = {0, block}
    for k in range(1, count + 1):
        levels.add(top * k // (count + 1) // block * block)
    return sorted(levels)


def diskfull_sweep(world, op, fs, byte_levels, inode_levels, log=print):
    """full_run() of OP at every level; returns {"runs", "failed",
    "succeeded", "bad", "failures", "used_bytes", "used_inodes", "levels"}."""
    used_b, used_i = space_used(world, op, fs)
    res = {"runs": 0, "failed": 0, "succeeded": 0, "bad": 0, "failures": [],
           "used_bytes": used_b, "used_inodes": used_i, "levels": []}
    runs = [("bytes", lvl) for lvl in byte_levels(used_b)] + \
        [("inodes", lvl) for lvl in inode_levels(used_i)]
    for kind, lvl in runs:
        kw = {"free_bytes": lvl} if kind == "bytes" else {"free_inodes": lvl}
        outcome, problems = full_run(world, op, fs, **kw)
        res["runs"] += 1
        res[outcome] += 1
        res["levels"].append((kind, lvl, outcome))
        if problems:
            res["failures"].append("%s with %d %s free:\n  %s" % (
                op.name, lvl, kind, "\n  ".join(problems)))
            log(res["failures"][-1])
    log("%s: uses %d bytes, %d inodes; %d levels: %d clean errors, %d successes, %d bad" % (
        op.name, used_b, used_i, res["runs"], res["failed"], res["succeeded"], res["bad"]))
    return res


def eio_sweep(world, op, parent, points, log=print):
    """eio_run() of OP at each (system call, n) of POINTS(counts), COUNTS
    being count_writes(); returns counts as diskfull_sweep()."""
    counts = count_writes(world, op, parent)
    res = {"runs": 0, "failed": 0, "succeeded": 0, "bad": 0, "failures": [],
           "writes": sum(counts.values()), "calls": counts, "levels": []}
    for syscall, n in points(counts):
        outcome, problems = eio_run(world, op, parent, syscall, n)
        res["runs"] += 1
        res[outcome] += 1
        res["levels"].append((syscall, n, outcome))
        if problems:
            res["failures"].append("%s with EIO at %s call %d of %d:\n  %s" % (
                op.name, syscall, n, counts[syscall], "\n  ".join(problems)))
            log(res["failures"][-1])
    log("%s: write-class calls %s; %d injections: %d clean errors, %d successes, %d bad" % (
        op.name, counts, res["runs"], res["failed"], res["succeeded"], res["bad"]))
    return res


def every_call(counts, step=1):
    """Every STEP-th call of each system call of COUNTS."""
    return [(sc, n) for sc, total in sorted(counts.items()) for n in range(1, total + 1, step)]


def middle_calls(counts):
    """The middle call of write and of fsync (the smoke of the suite)."""
    return [(sc, max(1, counts[sc] // 2)) for sc in ("write", "fsync") if counts.get(sc)]
