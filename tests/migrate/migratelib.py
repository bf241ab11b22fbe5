"""Helpers of the migration tests: the layout-1 fixture and what the tests
read from a sysroot. The Sysroot driver and tree snapshots come from the
scenario suite (tests/scenario/scenariolib.py), imported, not copied."""

import configparser
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("ABDEPLOY_SRCDIR") or os.path.dirname(os.path.dirname(HERE))
for _p in (os.path.join(SRCDIR, "tests", "scenario"), os.path.join(SRCDIR, "tests", "lib")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import scenariolib as sl  # noqa: E402,F401

FIXTURE_TAR = os.path.join(SRCDIR, "tests", "fixtures", "layout-1", "layout-1.tar.xz")
STATE_FILES = ("sysroot.json", "slot-a.json", "slot-b.json", "verdict.json", "history.json",
               "last-rollback.json", "update.json", "transaction.json")
COPY_DIR = "abdeploy/migration/layout-1"
# The files of layout 1 that the migration keeps, relative to the sysroot.
KEPT = ("abdeploy/version", "etc/abdeploy/abdeploy.conf", "etc/abdeploy/conf.d/50-local.conf") \
    + tuple("abdeploy/state/" + n for n in STATE_FILES)


class Layout1:
    """One unpacked copy of the fixture."""

    def __init__(self, root, binary, home):
        self.root = root
        subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-xJf",
                        FIXTURE_TAR, "-C", root], check=True, capture_output=True)
        with open(os.path.join(root, "info.json")) as f:
            self.info = json.load(f)
        self.grub = sl.Sysroot(os.path.join(root, "grub", "sysroot"), binary, home,
                               os.path.join(root, "grub", "cmdline"), bootloader="grub")
        self.file = sl.Sysroot(os.path.join(root, "file", "sysroot"), binary, home,
                               os.path.join(root, "file", "cmdline"), bootloader="file")
        self.backup = os.path.join(root, "backup-0.1.0.json")
        self.repo = os.path.join(root, "repo")

    def sysroot(self, name):
        return getattr(self, name)


def read(sr, rel, mode="r"):
    with open(sr.p(rel), mode) as f:
        return f.read()


def state_json(sr, name):
    return json.loads(read(sr, os.path.join("abdeploy", "state", name)))


def layout(sr):
    return read(sr, "abdeploy/version")


def whole(sr, lock=True):
    """Every entry of the sysroot: type, mode, inode, mtime and content."""
    snap = sl.tree_entries(sr.path, "", identity=True)
    if not lock:
        snap.pop("/abdeploy/lock", None)
    return snap


def config(sr):
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(sr.p("etc", "abdeploy", "abdeploy.conf"))
    return cp


def history_types(sr):
    return [e["type"] for e in json.loads(sr.ok("history", "--json").stdout)]


