"""The hook runner: directories, order, results, timeouts, refusals,
greenboot compatibility, hook environment."""

import os
import signal
import time

import pytest

import healthlib as hl

REQ = "etc/abdeploy/health/required.d"
WANTED = "etc/abdeploy/health/wanted.d"


def parse_env(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_wanted_hook_fails_green_with_warning(fresh):
    sr = fresh()
    sr.deploy("os/v2")
    sr.add_hook("b", WANTED, "40-update-server", "#!/bin/sh\necho 'server unreachable'\nexit 3\n")
    sr.add_hook("b", REQ, "10-fine", "#!/bin/sh\necho all fine\n")
    sr.add_hook("b", WANTED, "45-crashes", "#!/bin/sh\necho about to crash\nkill -SEGV $$\n")
    r = sr.boot()
    assert (r.slot, r.returncode) == ("b", hl.EXIT_OK), r
    # warning visible on abdeploy's output, the hook's lines prefixed with its name
    assert "[40-update-server] server unreachable" in r.stdout, r
    assert "[10-fine] all fine" in r.stdout, r
    assert "40-update-server" in r.stderr and "fail" in r.stderr, r
    v = sr.verdict()
    assert v["verdict"] == "green" and v["failed_hooks"] == [], v
    assert v["warnings"] == ["40-update-server", "45-crashes"], v
    h = sr.hook_result("45-crashes", v)
    assert (h["result"], h["exit_status"], h["signal"]) == ("fail", None, 11), h
    h = sr.hook_result("40-update-server", v)
    assert (h["stage"], h["result"], h["exit_status"], h["signal"]) == ("wanted", "fail", 3, None), h
    assert "server unreachable" in h["output_tail"], h
    assert isinstance(h["duration_sec"], (int, float)) and h["duration_sec"] >= 0, h
    st = sr.status()
    assert sr.slot("b", st)["state"] == "good" and st["health"]["verdict"] == "green", st
    assert "Boot status is GREEN" in sr.motd()


def kill_leftovers(*pidfiles):
    """Kill what a hook under test left behind (only on failure)."""
    for f in pidfiles:
        try:
            os.kill(int(f.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def test_hanging_hooks_killed_at_their_timeout(fresh, tmp_path):
    """[health] timeout-sec=2 for one hook, [health-timeouts] NAME=1 for
    another: both are killed with their process group, the verdict is red,
    and the health check itself finishes in bounded time."""
    sr = fresh()
    sr.configure("[health]\ntimeout-sec=2\n\n[health-timeouts]\n21-hang-short=1\n"
                 "22-ignores-term=1\n")
    pid_long = tmp_path / "long.pid"
    pid_short = tmp_path / "short.pid"
    pid_stubborn = tmp_path / "stubborn.pid"
    sr.add_hook("a", REQ, "22-ignores-term",
                "#!/bin/sh\ntrap '' TERM\nsleep 1000 &\necho $! > '%s'\nwait\n" % pid_stubborn)
    sr.add_hook("a", REQ, "20-hang",
                "#!/bin/sh\necho started\nsleep 1000 &\necho $! > '%s'\nwait\n" % pid_long)
    sr.add_hook("a", REQ, "21-hang-short",
                "#!/bin/sh\nsleep 1000 &\necho $! > '%s'\nwait\n" % pid_short)
    try:
        t0 = time.monotonic()
        r = sr.boot(timeout=30)
        elapsed = time.monotonic() - t0
        assert elapsed < 15, "health-check took %.1fs with two hanging hooks" % elapsed
        assert (r.slot, r.returncode) == ("a", hl.EXIT_RED), r
        v = sr.verdict()
        assert v["verdict"] == "red", v
        assert v["failed_hooks"] == ["20-hang", "21-hang-short", "22-ignores-term"], v
        long_, short = sr.hook_result("20-hang", v), sr.hook_result("21-hang-short", v)
        stubborn = sr.hook_result("22-ignores-term", v)
        assert [h["result"] for h in (long_, short, stubborn)] == ["timeout"] * 3, v["hooks"]
        # SIGTERM ignored: SIGKILL follows after a grace period
        assert 0.8 <= stubborn["duration_sec"] < 4, stubborn
        assert 1.8 <= long_["duration_sec"] < 5, long_
        assert 0.8 <= short["duration_sec"] < 1.9, short
        assert "started" in long_["output_tail"], long_
        assert long_["message"] and "timed out" in long_["message"], long_
        # the hooks' children died with their process groups
        for f in (pid_long, pid_short, pid_stubborn):
            pid = int(f.read_text())
            assert hl.wait_gone(pid), "pid %d of a timed-out hook is still alive" % pid
        st = sr.status()
        assert st["health"]["verdict"] == "red", st
        assert "Boot status is RED" in sr.motd() and "20-hang" in sr.motd()
    finally:
        kill_leftovers(pid_long, pid_short, pid_stubborn)


def test_invalid_per_hook_timeout_is_refused(fresh):
    """issue 10: an invalid [health-timeouts] value is a configuration error
    like any other (0.2.0 ignored it with a warning): health-check stops
    before running a hook, naming the file, the key and the range."""
    sr = fresh()
    sr.configure("[health]\ntimeout-sec=1\n\n[health-timeouts]\n20-hang=forever\n")
    sr.add_hook("a", REQ, "20-hang", "#!/bin/sh\nexec sleep 1000\n")
    t0 = time.monotonic()
    p = sr.run("health-check", "--no-reboot")
    assert time.monotonic() - t0 < 15
    assert p.returncode == 1, p.describe
    assert "etc/abdeploy/abdeploy.conf: invalid value [health-timeouts] 20-hang=forever: " \
        "use a whole number of seconds from 1 to 86400" in p.stderr, p.describe


def test_background_child_does_not_block(fresh, tmp_path):
    """A hook that exits but leaves a child holding its stdout: the runner
    kills the hook's process group and goes on; a child that escaped the
    group (setsid) costs at most a short drain period."""
    sr = fresh()
    in_group = tmp_path / "group.pid"
    escaped = tmp_path / "escaped.pid"
    sr.add_hook("a", REQ, "30-bg-child",
                "#!/bin/sh\n(sleep 1000; echo never) &\necho $! > '%s'\necho done\nexit 0\n"
                % in_group)
    sr.add_hook("a", REQ, "31-bg-escaped",
                "#!/bin/sh\nsetsid sleep 1000 &\necho $! > '%s'\nexit 0\n" % escaped)
    try:
        t0 = time.monotonic()
        r = sr.boot(timeout=30)
        elapsed = time.monotonic() - t0
        assert elapsed < 15, "health-check blocked %.1fs on a background child" % elapsed
        assert (r.slot, r.returncode) == ("a", hl.EXIT_OK), r
        v = sr.verdict()
        for name in ("30-bg-child", "31-bg-escaped"):
            h = sr.hook_result(name, v)
            assert h["result"] == "pass" and h["duration_sec"] < 5, h
        assert "done" in sr.hook_result("30-bg-child", v)["output_tail"]
        pid = int(in_group.read_text())
        assert hl.wait_gone(pid), "child %d of a finished hook is still alive" % pid
    finally:
        kill_leftovers(escaped, in_group)


def test_world_writable_hook_refused(fresh, tmp_path):
    sr = fresh()
    marker = tmp_path / "ran"
    path = sr.add_hook("a", REQ, "10-writable", "#!/bin/sh\ntouch '%s'\n" % marker)
    os.chmod(path, 0o777)
    r = sr.boot()
    assert r.returncode == hl.EXIT_RED, r
    assert not marker.exists(), "a world-writable hook was run"
    h = sr.hook_result("10-writable")
    assert h["result"] == "refused", h
    assert "world-writable" in h["message"], h
    assert "world-writable" in r.stderr, r
    assert sr.verdict()["failed_hooks"] == ["10-writable"]


def test_hook_in_a_writable_directory_refused(fresh, tmp_path):
    """The directories on the way to a hook are held like the hook (issue
    11): anyone who may write one may replace the hook."""
    sr = fresh()
    marker = tmp_path / "ran"
    path = sr.add_hook("a", REQ, "10-in-writable-dir", "#!/bin/sh\ntouch '%s'\n" % marker)
    d = os.path.dirname(path)
    os.chmod(d, 0o777)
    r = sr.boot()
    assert r.returncode == hl.EXIT_RED, r
    assert not marker.exists(), "a hook in a world-writable directory was run"
    h = sr.hook_result("10-in-writable-dir")
    assert h["result"] == "refused", h
    assert "directory %s is world-writable" % os.path.realpath(d) in h["message"], h
    os.chmod(d, 0o1777)        # sticky, like /tmp: only the owner replaces an entry
    r = sr.boot()
    assert r.returncode == hl.EXIT_OK, r
    assert marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the owner check applies when abdeploy runs as root")
def test_hook_not_owned_by_root_refused(fresh, tmp_path):
    sr = fresh()
    marker = tmp_path / "ran"
    path = sr.add_hook("a", REQ, "10-foreign", "#!/bin/sh\ntouch '%s'\n" % marker)
    os.chown(path, 65534, 65534)   # nobody
    r = sr.boot()
    assert r.returncode == hl.EXIT_RED, r
    assert not marker.exists(), "a hook owned by nobody was run as root"
    h = sr.hook_result("10-foreign")
    assert h["result"] == "refused", h
    assert "65534" in h["message"] and "root" in h["message"], h


GREENBOOT_SCRIPT = """#!/bin/bash
set -e

# typical greenboot check: fail the boot when a service is not active
SERVICE=appliance-frontend
echo "checking $SERVICE"
test -e /nonexistent/$SERVICE.ready || { echo "$SERVICE is not ready" >&2; exit 1; }
"""


def test_greenboot_script_decides_and_compat_switch(fresh, tmp_path):
    sr = fresh()
    sr.add_hook("a", "etc/greenboot/check/required.d", "01_check_frontend.sh", GREENBOOT_SCRIPT,
                mode=0o644)   # greenboot runs *.sh with bash, executable or not
    red_log = tmp_path / "red.log"
    sr.add_hook("a", "etc/greenboot/red.d", "99_notify.sh",
                "#!/bin/bash\nset -e\necho \"boot is red\" >> '%s'\n" % red_log)
    r = sr.boot()
    assert (r.slot, r.returncode) == ("a", hl.EXIT_RED), r
    v = sr.verdict()
    assert v["failed_hooks"] == ["01_check_frontend.sh"], v
    h = sr.hook_result("01_check_frontend.sh", v)
    assert (h["result"], h["exit_status"]) == ("fail", 1), h
    assert "appliance-frontend is not ready" in h["output_tail"], h
    # red on a normal boot: recorded, no action
    assert v["action"] == "none" and v["trial"] is False, v
    st = sr.status()
    assert st["primary"] == "a" and sr.slot("a", st)["state"] == "good", st
    assert st["health"]["failed_hooks"] == ["01_check_frontend.sh"], st
    assert "Boot status is RED: 01_check_frontend.sh" in sr.motd()
    assert red_log.read_text() == "boot is red\n"

    sr.configure("[health]\ngreenboot-compat=false\n")
    r = sr.boot()
    assert (r.slot, r.returncode) == ("a", hl.EXIT_OK), r
    names = [h["name"] for h in sr.verdict()["hooks"]]
    assert "01_check_frontend.sh" not in names, names
    assert "Boot status is GREEN" in sr.motd()


def test_hook_environment(fresh, published):
    sr = fresh()
    sr.deploy("os/v2")
    sr.add_hook("b", REQ, "05-env", "#!/bin/sh\nenv | grep '^ABDEPLOY_' | sort\n")
    r = sr.boot()
    assert (r.slot, r.returncode) == ("b", 0), r
    env = parse_env(sr.hook_result("05-env")["output_tail"])
    assert env.get("ABDEPLOY_SLOT") == "b", env
    assert env.get("ABDEPLOY_VERSION") == "2.0", env
    assert env.get("ABDEPLOY_COMMIT") == published.commits["os/v2"], env
    assert env.get("ABDEPLOY_TRIAL") == "1", env
    assert env.get("ABDEPLOY_TRIES_LEFT") == "2", env
    # next boot: the slot is good, not a trial any more
    r = sr.boot()
    env = parse_env(sr.hook_result("05-env")["output_tail"])
    assert (env.get("ABDEPLOY_SLOT"), env.get("ABDEPLOY_TRIAL"), env.get("ABDEPLOY_TRIES_LEFT")) \
        == ("b", "0", "0"), env


def test_etc_replaces_usr_and_lexical_order(fresh):
    """v2-vendor ships hooks in /usr/lib/abdeploy/health/required.d; the
    operator adds some in /etc and replaces 30-replaced (whose vendor
    version fails).  All run once, in lexical order across directories."""
    sr = fresh()
    sr.deploy("os/v2-vendor")
    sr.add_hook("b", REQ, "30-replaced", "#!/bin/sh\necho etc:30-replaced\n")
    sr.add_hook("b", REQ, "20-operator", "#!/bin/sh\necho etc:20-operator\n")
    sr.add_hook("b", REQ, "40-operator.sh", "echo etc:40-operator.sh\n", mode=0o644)
    sr.add_hook("b", "etc/greenboot/check/required.d", "25-greenboot.sh",
                "#!/bin/bash\necho etc-greenboot:25-greenboot.sh\n")
    r = sr.boot()
    assert (r.slot, r.returncode) == ("b", hl.EXIT_OK), r
    v = sr.verdict()
    req = [h for h in v["hooks"] if h["stage"] == "required"]
    assert [h["name"] for h in req] == ["10-vendor-first", "20-operator", "25-greenboot.sh",
                                        "30-replaced", "40-operator.sh",
                                        "50-vendor-last.sh"], req
    assert sr.hook_result("30-replaced", v)["output_tail"].strip() == "etc:30-replaced"
    assert "usr:30-replaced" not in r.stdout, r
    # abdeploy's own output shows them in the same order
    order = [line.split("]")[0][1:] for line in r.stdout.splitlines() if line.startswith("[")]
    assert order == [h["name"] for h in req], r.stdout
    assert all(h["result"] == "pass" for h in req), req


def test_green_and_red_hooks(fresh, tmp_path):
    """green.d runs after a green verdict, red.d after a red one."""
    sr = fresh()
    log = tmp_path / "log"
    sr.add_hook("a", "etc/abdeploy/health/green.d", "50-on-green",
                "#!/bin/sh\necho green >> '%s'\n" % log)
    sr.add_hook("a", "etc/abdeploy/health/red.d", "50-on-red",
                "#!/bin/sh\necho red >> '%s'\n" % log)
    assert sr.boot().returncode == 0
    assert log.read_text() == "green\n"
    flag = sr.add_hook("a", REQ, "10-flaky", "#!/bin/sh\nexit 1\n")
    assert sr.boot().returncode == hl.EXIT_RED
    assert log.read_text() == "green\nred\n"
    stages = {h["name"]: h["stage"] for h in sr.verdict()["hooks"]}
    assert stages.get("50-on-red") == "red" and "50-on-green" not in stages, stages
    os.unlink(flag)


@pytest.mark.parametrize("how", ["absolute-dir-link", "absolute-hook-link"])
def test_links_in_the_slot_resolve_inside_it(fresh, how):
    """issue 10: the hook directories and hooks of the booted slot are
    resolved inside the slot, as the booted system sees them: an absolute
    link names a file of the slot, never of the host running abdeploy."""
    sr = fresh()
    sr.deploy("os/v2")
    # the slot's own check: it fails, so the verdict shows that it ran
    sr.add_hook("b", "usr/lib/site-checks", "20-site", "#!/bin/sh\necho slot check\nexit 1\n")
    # the same absolute path does not exist on the host running abdeploy
    assert not os.path.exists("/usr/lib/site-checks")
    if how == "absolute-dir-link":
        os.makedirs(sr.slot_path("b", "etc/abdeploy/health"), exist_ok=True)
        os.symlink("/usr/lib/site-checks", sr.slot_path("b", REQ))
    else:
        os.makedirs(sr.slot_path("b", REQ), exist_ok=True)
        os.symlink("/usr/lib/site-checks/20-site", sr.slot_path("b", REQ, "20-site"))
    r = sr.boot()
    assert r.slot == "b", r
    v = sr.verdict()
    assert v["verdict"] == "red" and v["failed_hooks"] == ["20-site"], v
    assert "slot check" in sr.hook_result("20-site", v)["output_tail"], v


def write_greenboot_conf(sr, text):
    path = sr.p("etc", "greenboot", "greenboot.conf")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_greenboot_conf_disables_checks_sets_tries_and_motd(fresh):
    """issue 16, point 8: /etc/greenboot/greenboot.conf is read (never
    run): DISABLED_HEALTHCHECKS keeps a failing check from running,
    GREENBOOT_MAX_BOOT_ATTEMPTS gives the tries of a deployment unless
    abdeploy.conf sets them, and the MOTD is also written where greenboot
    writes it, /run/motd.d/boot-status."""
    sr = fresh()
    sr.add_hook("a", "etc/greenboot/check/required.d", "01_check_frontend.sh", GREENBOOT_SCRIPT,
                mode=0o644)
    write_greenboot_conf(sr, '# greenboot\nGREENBOOT_MAX_BOOT_ATTEMPTS=5\n'
                             'DISABLED_HEALTHCHECKS=("01_check_frontend.sh")\n')
    r = sr.boot()
    assert (r.slot, r.returncode) == ("a", hl.EXIT_OK), r
    names = [h["name"] for h in sr.verdict()["hooks"]]
    assert "01_check_frontend.sh" not in names, names
    assert "01_check_frontend.sh: disabled" in r.stderr, r
    with open(sr.p("run", "motd.d", "boot-status")) as f:
        assert f.read() == sr.motd()
    assert "Boot status is GREEN" in sr.motd()

    sr.deploy("os/v2")
    assert sr.slot("b")["tries_left"] == 5
    sr.configure("[boot]\ntries=2\n")       # abdeploy's own setting wins
    sr.ok("rollback")
    sr.deploy("os/v2")
    assert sr.slot("b")["tries_left"] == 2


def test_bad_greenboot_conf_is_refused_by_name(fresh):
    sr = fresh()
    write_greenboot_conf(sr, "GREENBOOT_MAX_BOOT_ATTEMPTS=$(reboot)\n")
    r = sr.run("status")
    assert r.returncode == hl.at.EXIT_ERROR, r.describe
    assert "greenboot.conf, line 1" in r.stderr and "without a shell" in r.stderr, r
