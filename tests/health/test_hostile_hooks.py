"""Hooks that try to make the device unmanageable (issue 10, point 5):
output closed while the hook runs on, output held by what the hook
started, output that is not UTF-8, and a gigabyte of output without a
newline.  Every hook is held to its deadline, verdict.json stays valid JSON
and the runner's memory stays bounded."""

import json
import os
import signal
import subprocess
import time

import healthlib as hl

REQ = "etc/abdeploy/health/required.d"
WANTED = "etc/abdeploy/health/wanted.d"

# Bound on the whole health-check of a test (not a timing assertion: it
# only keeps a hanging abdeploy from hanging the suite).
BOUND = 60


def kill_pidfiles(*pidfiles):
    """Kill what a hook under test left behind (only on failure): the
    process group led by each pid (a hook leads its group), and the pid."""
    for f in pidfiles:
        try:
            pid = int(f.read_text())
        except (OSError, ValueError):
            continue
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass


def read_state_json(sr, name):
    """The state file NAME, decoded strictly (UTF-8, JSON)."""
    with open(sr.p("abdeploy", "state", name), "rb") as f:
        data = f.read()
    assert b"\0" not in data, "%s holds a NUL byte" % name
    return json.loads(data.decode("utf-8", errors="strict"))


def test_hook_closing_its_output_is_held_to_its_timeout(fresh, tmp_path):
    """`exec >&- 2>&-; sleep 1000` with a 2 s timeout: the end of the output
    is not the end of the hook; it is killed at its deadline and fails as
    timed out."""
    sr = fresh()
    sr.configure("[health-timeouts]\n20-closes-output=2\n")
    pidfile = tmp_path / "sleep.pid"
    sr.add_hook("a", REQ, "20-closes-output",
                "#!/bin/sh\necho \"$$\" > '%s'\necho closing\nexec >&- 2>&-\nsleep 1000\n"
                % pidfile)
    try:
        rc, out, err, _ = sr.health_check(timeout=BOUND)
        assert rc == hl.EXIT_RED, (rc, out, err)
        v = read_state_json(sr, "verdict.json")
        h = sr.hook_result("20-closes-output", v)
        assert h["result"] == "timeout", h
        assert "timed out after 2 s" in h["message"], h
        assert h["output_tail"] == "closing\n", h
        assert v["failed_hooks"] == ["20-closes-output"], v
        assert hl.wait_gone(int(pidfile.read_text())), "the hook outlived its timeout"
    finally:
        kill_pidfiles(pidfile)


def test_background_children_holding_the_output(fresh, tmp_path):
    """The hook's result is decided by the hook process, not by its pipe:
    a child that holds the output and lets go of it later does not end a
    hook that still runs (held to its deadline), and a child that escaped
    the group and holds the output forever does not outlast a hook that
    exited (its exit status counts)."""
    sr = fresh()
    sr.configure("[health-timeouts]\n30-child-lets-go=2\n")
    hook_pid = tmp_path / "hook.pid"
    escaped = tmp_path / "escaped.pid"
    # the child keeps the output for 1 s, the hook has closed it and runs on
    sr.add_hook("a", REQ, "30-child-lets-go",
                "#!/bin/sh\necho \"$$\" > '%s'\n(sleep 1; echo child done) &\n"
                "exec >&- 2>&-\nsleep 1000\n" % hook_pid)
    # a child in its own session keeps the output; the hook exits 3
    sr.add_hook("a", REQ, "31-escaped-child",
                "#!/bin/sh\nsetsid sleep 1000 &\necho $! > '%s'\necho bye\nexit 3\n" % escaped)
    try:
        rc, out, err, _ = sr.health_check(timeout=BOUND)
        assert rc == hl.EXIT_RED, (rc, out, err)
        v = read_state_json(sr, "verdict.json")
        h = sr.hook_result("30-child-lets-go", v)
        assert h["result"] == "timeout" and "child done" in h["output_tail"], h
        h = sr.hook_result("31-escaped-child", v)
        assert (h["result"], h["exit_status"]) == ("fail", 3), h
        assert "bye" in h["output_tail"], h
        assert hl.wait_gone(int(hook_pid.read_text())), "the hook outlived its timeout"
    finally:
        kill_pidfiles(hook_pid, escaped)


# invalid UTF-8, NUL, control characters, a lone surrogate encoded in
# UTF-8, and a character cut at the end
BAD_OUTPUT = r"bad:\377\376 \303\050 nul:\000: esc:\033[31m cr-lf\r\n surrogate:\355\240\200 cut:\342\202"


def test_output_that_is_not_utf8(fresh):
    """Invalid UTF-8, NUL, a character cut at the end of the output and one
    cut by the 4096-byte tail: verdict.json stays valid JSON, and status,
    mark-good, mark-bad and rollback all work."""
    sr = fresh()
    sr.deploy("os/v2")
    sr.add_hook("b", WANTED, "40-bad-bytes", "#!/bin/sh\nprintf '%s'\n" % BAD_OUTPUT)
    # 3000 two-byte characters then one byte: the last 4096 bytes start
    # in the middle of a character
    sr.add_hook("b", WANTED, "41-cut-char",
                "#!/bin/bash\nfor i in $(seq 3000); do printf '\\303\\251'; done; printf x\n")
    # a hook whose file name is not UTF-8 (it fails, so the name goes into
    # the verdict, the history and the MOTD)
    sr.add_hook("b", WANTED, "42-name-\udcff-bad", "#!/bin/sh\nexit 1\n")
    r = sr.boot(timeout=BOUND)
    assert (r.slot, r.returncode) == ("b", hl.EXIT_OK), r
    v = read_state_json(sr, "verdict.json")
    tail = sr.hook_result("40-bad-bytes", v)["output_tail"]
    assert tail.startswith("bad:\ufffd\ufffd \ufffd(") and "nul:\ufffd:" in tail, tail
    assert "esc:\ufffd[31m" in tail and "cr-lf\r\n" in tail, tail
    assert tail.endswith("cut:\ufffd\ufffd"), tail
    tail = sr.hook_result("41-cut-char", v)["output_tail"]
    assert len(tail.encode()) <= 4096 and tail == "\u00e9" * 2047 + "x", tail[:20]
    assert v["warnings"] == ["42-name-\ufffd-bad"], v
    for name in ("history.json", "slot-a.json", "slot-b.json"):
        read_state_json(sr, name)
    st = sr.status()
    assert st["health"]["verdict"] == "green" and sr.slot("b", st)["state"] == "good", st
    assert "Last health verdict: green" in sr.ok("status").stdout
    sr.ok("mark-bad", "a")
    sr.ok("mark-good", "a")
    sr.ok("rollback")
    st = sr.status()
    assert st["primary"] == "a" and st["last_rollback"]["kind"] == "manual", st
    assert sr.motd().encode("utf-8")


def run_measured(sr, args, out_path, bound):
    """Run abdeploy ARGS (stdout and stderr into OUT_PATH); returns (exit
    status, ru_maxrss in KiB) from wait4, which counts abdeploy and the
    hooks it reaped.  Killed after BOUND seconds."""
    cmd = [sr.binary, "--sysroot=" + sr.path] + list(args)
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, str(out_path), os.O_WRONLY | os.O_CREAT, 0o644),
               (os.POSIX_SPAWN_DUP2, 1, 2)]
    pid = os.posix_spawn(cmd[0], cmd, sr.env(), file_actions=actions)
    deadline = time.monotonic() + bound
    while True:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got == pid:
            return os.waitstatus_to_exitcode(status), usage.ru_maxrss
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.wait4(pid, 0)
            raise AssertionError("abdeploy %s did not end within %d s" % (args, bound))
        time.sleep(0.2)


def test_a_gigabyte_without_newline_costs_bounded_memory(fresh, tmp_path):
    """`head -c 1G /dev/zero | tr '\\0' x`: the whole output is read, its
    last 4096 bytes are kept, and abdeploy's peak RSS stays under 64 MiB
    (ru_maxrss from wait4)."""
    sr = fresh()
    sr.configure("[health]\ntimeout-sec=600\n")
    sr.add_hook("a", WANTED, "50-gigabyte", "#!/bin/sh\nhead -c 1G /dev/zero | tr '\\0' x\n")
    out_path = tmp_path / "health-check.out"
    rc, maxrss_kib = run_measured(sr, ["health-check", "--no-reboot"], out_path, 600)
    out = out_path.read_bytes()
    assert rc == hl.EXIT_OK, (rc, out[-2000:])
    assert maxrss_kib < 64 * 1024, "peak RSS %d KiB" % maxrss_kib
    print("health-check with a 1 GiB line: peak RSS %d KiB" % maxrss_kib)
    v = read_state_json(sr, "verdict.json")
    h = sr.hook_result("50-gigabyte", v)
    assert h["result"] == "pass" and h["output_bytes"] == 1 << 30, h
    assert h["output_tail"] == "x" * 4096, len(h["output_tail"])
    assert b"[1073737728 more bytes of this line not shown]" in out, out[-300:]


def damage(sr, name, data):
    with open(sr.p("abdeploy", "state", name), "wb") as f:
        f.write(data)


def test_damaged_state_never_blocks_rollback_or_marks(fresh):
    """A damaged verdict.json, history.json, last-rollback.json and
    transaction.json: status, rollback, mark-good and mark-bad work and say
    on stderr what they ignored; the damaged history is kept aside and a
    new one starts."""
    sr = fresh()
    sr.deploy("os/v2")
    r = sr.boot()
    assert (r.slot, r.returncode) == ("b", hl.EXIT_OK), r
    damage(sr, "verdict.json", b'{"format": 2, "verdict": "gre\xff')
    damage(sr, "history.json", b'{"format": 2, "events": [{"type": "deploy"')
    damage(sr, "last-rollback.json", b"")
    damage(sr, "transaction.json", b'{"format": 2, "phase": "no-such-phase"}')

    p = sr.ok("status")
    for name in ("verdict.json", "last-rollback.json", "transaction.json"):
        assert "warning: abdeploy/state/%s is damaged" % name in p.stderr, p.describe
    assert "Last health verdict: none" in p.stdout, p.describe
    st = sr.status()
    assert st["health"]["verdict"] == "none" and st["transaction"] is None, st
    assert len(st["damaged_state"]) == 3, st["damaged_state"]
    for name, text in zip(("verdict.json", "last-rollback.json", "transaction.json"),
                          st["damaged_state"]):
        assert text.startswith("abdeploy/state/%s is damaged (" % name), st["damaged_state"]

    p = sr.ok("rollback")
    assert "warning: abdeploy/state/history.json is damaged" in p.stderr, p.describe
    assert "history.json.damaged" in p.stderr, p.describe
    with open(sr.p("abdeploy", "state", "history.json.damaged"), "rb") as f:
        assert f.read() == b'{"format": 2, "events": [{"type": "deploy"'
    p = sr.ok("mark-bad", "b")
    p = sr.ok("mark-good", "b")
    assert "history.json" not in p.stderr, p.describe   # replaced by a valid one
    hist = read_state_json(sr, "history.json")
    assert [e["type"] for e in hist["events"]] == ["rollback", "mark-bad", "mark-good"], hist
    st = sr.status()
    assert st["primary"] == "a" and sr.slot("b", st)["state"] == "good", st
    assert st["last_rollback"]["kind"] == "manual", st
    # the next health check replaces the damaged verdict
    r = sr.boot()
    assert (r.slot, r.returncode) == ("a", hl.EXIT_OK), r
    p = sr.ok("status")
    assert "damaged" not in p.stderr.replace("transaction.json is damaged", ""), p.describe


def test_damaged_state_warning_with_json(fresh):
    """health-check --json (events on stderr, the report alone on stdout)
    says what it read past as every command does, "abdeploy: warning: ..."
    at the start of a line (issue 12: these warnings reach the front end
    through the sysroot's event sink)."""
    sr = fresh()
    sr.deploy("os/v2")
    r = sr.boot()
    assert (r.slot, r.returncode) == ("b", hl.EXIT_OK), r
    damage(sr, "history.json", b'{"format": 2, "events": [{"type": "deploy"')
    p = sr.run("health-check", "--no-reboot", "--json")
    assert p.returncode == hl.EXIT_OK, p.describe
    lines = [line for line in p.stderr.splitlines() if "history.json is damaged" in line]
    assert lines, p.describe
    for line in lines:
        assert line.startswith("abdeploy: warning: abdeploy/state/history.json is damaged ("), \
            p.describe
    assert json.loads(p.stdout)["verdict"] == "green", p.describe


def test_damaged_slot_record(fresh):
    """A damaged slot record is an empty slot for status, rollback and the
    marks (with a warning): mark-bad still works on it, mark-good and a
    rollback to it are refused."""
    sr = fresh()
    sr.deploy("os/v2")
    r = sr.boot()
    assert (r.slot, r.returncode) == ("b", hl.EXIT_OK), r
    damage(sr, "slot-a.json", b'{"format": 2, "version": "1.0"}')
    p = sr.ok("status")
    assert "warning: the record of slot a is damaged" in p.stderr, p.describe
    st = sr.status()
    assert sr.slot("a", st)["state"] == "empty" and sr.slot("b", st)["state"] == "good", st
    p = sr.run("rollback")
    assert p.returncode == hl.at.EXIT_NOTHING and "Nothing to roll back to" in p.stderr, p.describe
    p = sr.run("mark-good", "a")
    assert p.returncode == hl.at.EXIT_NOTHING, p.describe
    p = sr.ok("mark-bad", "a")
    assert sr.pointer()["ABDEPLOY_A_STATE"] == "bad", sr.pointer()
    # health-check on the damaged sysroot still decides
    r = sr.boot()
    assert (r.slot, r.returncode) == ("b", hl.EXIT_OK), r
