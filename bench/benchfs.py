# SPDX-License-Identifier: LGPL-2.1-or-later
"""The filesystem a benchmark measures on (bench/update, bench/stage).

By default (--fs journal) a benchmark works inside a fresh ext4 filesystem
with a journal, made in a sparse image file and loop-mounted: the
filesystem of a device, and the same for every run whatever the host has.

Why not the host's own directory: an ext4 without a journal (some virtual
machines' root filesystems) skips, when it allocates an inode, every free
inode whose deletion is recent (its inode table block cached and its
deletion time within 60 s, or 6 minutes while that block is dirty), and
scans past each of them. After a benchmark drops a 20 000-file tree, the
next one that creates files pays for that scan: creating 20 000 files took
0.7-0.9 s on a quiet machine and 3.6-10.8 s within minutes of such a
deletion, and the measurement that followed a drop ran 2-3x slower. A
journaled ext4 does not make that check. --fs tmp measures in $TMPDIR as
before (the report names the filesystem either way).
"""

import os
import shutil
import subprocess
import tempfile


def _run(argv):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def describe(path):
    """'ext4 (journal)' / 'ext4 (no journal)' / the type, for the report."""
    p = _run(["findmnt", "-no", "FSTYPE,SOURCE", "-T", path])
    fields = p.stdout.split()
    if p.returncode != 0 or not fields:
        return "unknown"
    fstype, source = fields[0], fields[-1]
    if fstype != "ext4":
        return fstype
    name = os.path.basename(os.path.realpath(source))
    try:
        with open("/sys/fs/ext4/%s/journal_task" % name) as f:
            task = f.read().strip()
    except OSError:
        return "ext4"
    return "ext4 (%s)" % ("no journal" if task == "<none>" else "journal")


class Filesystem:
    """A work directory on the filesystem --fs asks for: .path, .facts."""

    def __init__(self, kind, size_gib, prefix, log):
        self.kind = kind
        self.log = log
        self.top = tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("TMPDIR") or None)
        self.mnt = None
        self.path = self.top
        if kind == "journal":
            self._mount(size_gib)
        self.facts = describe(self.path)

    def _mount(self, size_gib):
        image = os.path.join(self.top, "fs.img")
        mnt = os.path.join(self.top, "mnt")
        os.makedirs(mnt)
        with open(image, "wb") as f:
            f.truncate(size_gib << 30)
        for argv in (["mkfs.ext4", "-q", "-F", "-L", "abbench", image],
                     ["mount", "-o", "loop", image, mnt]):
            p = _run(argv)
            if p.returncode != 0:
                raise SystemExit("--fs journal: `%s` failed: %s; run with --fs tmp to measure "
                                 "in $TMPDIR instead" % (" ".join(argv), p.stderr.strip()))
        self.mnt = mnt
        self.path = os.path.join(mnt, "work")
        os.makedirs(self.path)
        self.log("measuring on a fresh %d GiB ext4 with a journal, loop-mounted on %s"
                 % (size_gib, mnt))

    def cleanup(self, keep=False):
        if keep:
            self.log("kept " + self.top + (" (mounted on %s)" % self.mnt if self.mnt else ""))
            return
        if self.mnt:
            p = _run(["umount", self.mnt])
            if p.returncode != 0:
                _run(["umount", "-l", self.mnt])
        shutil.rmtree(self.top, ignore_errors=True)


def add_arguments(ap, default_gib):
    ap.add_argument("--fs", choices=("journal", "tmp"), default="journal",
                    help="journal (default): measure inside a fresh loop-mounted ext4 with a "
                         "journal; tmp: in $TMPDIR as it is (see bench/benchfs.py)")
    ap.add_argument("--fs-size", type=int, default=default_gib, metavar="GIB",
                    help="size of the --fs journal image, sparse (default %d)" % default_gib)
