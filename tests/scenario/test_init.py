"""abdeploy init, layout version, fresh status, command line basics."""

import json
import os

import pytest

import scenariolib as sl


def test_help_lists_commands(abdeploy_bin):
    p = sl.run([abdeploy_bin, "--help"], env=sl.clean_env(), check=False)
    out = (p.stdout + p.stderr).decode()
    assert p.returncode == 0, out
    for cmd in ("init", "stage", "activate", "deploy", "rollback", "status"):
        assert cmd in out, "--help does not mention %r:\n%s" % (cmd, out)


def test_unknown_command_is_usage_error(sysroot):
    r = sysroot.run("frobnicate")
    assert r.returncode == sl.EXIT_USAGE, r.describe()


def test_unknown_option_is_usage_error(sysroot, server):
    before = sysroot.snapshot()
    r = sysroot.run("stage", "--from=" + server.url, "--no-such-option", "os/v1")
    assert r.returncode == sl.EXIT_USAGE, r.describe()
    assert sysroot.snapshot() == before


def test_unknown_bootloader_is_usage_error(sysroots):
    """The backend table decides: an unknown --bootloader is exit 2, names
    every backend `init --help` lists, and creates nothing."""
    sr = sysroots.create(init=False)
    r = sr.run("init", "--os=" + sl.OS_NAME, "--bootloader=lilo")
    assert r.returncode == sl.EXIT_USAGE, r.describe()
    assert 'unknown bootloader backend "lilo"' in r.stderr, r.describe()
    helped = sr.run("init", "--help")
    assert helped.returncode == 0, helped.describe()
    listed = helped.stdout.split("Bootloader backends", 1)[1]
    for name in ("grub", "file", "uboot", "custom"):
        assert name in listed, helped.describe()
        assert name in r.stderr, r.describe()
    assert os.listdir(sr.path) == [], os.listdir(sr.path)


def test_init_creates_layout(sysroot):
    p = sysroot.p
    with open(p("abdeploy", "version")) as f:
        assert f.read().strip() == "2"
    assert os.path.isdir(p("abdeploy", "slots", "a"))
    assert os.path.isdir(p("abdeploy", "slots", "b"))
    assert os.path.isdir(p("abdeploy", "var"))
    with open(p("abdeploy", "state", "sysroot.json")) as f:
        conf = json.load(f)
    assert conf.get("format") == 2 and conf.get("os") == sl.OS_NAME and \
        conf.get("bootloader") == "file", conf
    mode = sl.run(["ostree", "--repo=" + sysroot.repo, "config", "get", "core.mode"]).stdout.decode().strip()
    assert mode == "bare"
    assert not os.path.exists(p("abdeploy", "state", "slot-a.json"))
    assert not os.path.exists(p("abdeploy", "state", "slot-b.json"))


def test_status_json_fresh(sysroot):
    st = sysroot.status()
    assert st["booted"] is None and st["primary"] is None
    for s in st["slots"]:
        assert s["state"] == "empty", s
        assert s["commit"] is None and s["version"] is None and s["deployed_at"] is None, s
        assert s["booted"] is False and s["primary"] is False, s
        assert s["tries_left"] is None, s


def test_status_human_fresh(sysroot):
    r = sysroot.ok("status")
    assert "empty" in r.stdout, r.describe()


def _whole_tree(sr):
    # content, names and modes of everything except the lock file
    snap = sl.tree_entries(sr.path, "", identity=False)
    snap.pop("/abdeploy/lock", None)
    return snap


def test_init_is_idempotent(sysroot):
    before = _whole_tree(sysroot)
    slot_ids = sysroot.snapshot()
    r = sysroot.ok("init", "--os=" + sl.OS_NAME, "--bootloader=file")
    after = _whole_tree(sysroot)
    assert after == before, "second init changed files:\n%s\n%s" % (
        sl.diff_snapshots(before, after), r.describe())
    assert sysroot.snapshot() == slot_ids


def test_init_after_deploy_keeps_deployment(sysroot, server, published):
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    st = sysroot.status()
    before = sysroot.snapshot()
    whole = _whole_tree(sysroot)
    sysroot.ok("init", "--os=" + sl.OS_NAME, "--bootloader=file")
    assert sysroot.status() == st
    after = sysroot.snapshot()
    assert after == before, sl.diff_snapshots(before, after)
    assert _whole_tree(sysroot) == whole


@pytest.mark.parametrize("command", [
    ["init", "--os=" + sl.OS_NAME, "--bootloader=file"],
    ["status", "--json"],
    ["stage", "--from=SERVER", "os/v1"],
], ids=["init", "status", "stage"])
def test_unknown_layout_version_refused(sysroot, server, command):
    with open(sysroot.p("abdeploy", "version"), "w") as f:
        f.write("97\n")
    before = sl.tree_entries(sysroot.path, "", identity=True)
    args = [a.replace("SERVER", server.url) for a in command]
    r = sysroot.run(*args)
    assert r.returncode != 0, r.describe()
    assert "97" in r.output, "error does not name the layout version:\n" + r.describe()
    after = sl.tree_entries(sysroot.path, "", identity=True)
    after.pop("/abdeploy/lock", None)
    before.pop("/abdeploy/lock", None)
    for k in ("", "/abdeploy"):  # directory entries themselves
        before.pop(k, None), after.pop(k, None)
    assert after == before, sl.diff_snapshots(before, after)
