"""org.abdeploy1 (abdeploy-dbus(5)) on a private bus: the API as
documented, an operation seen through Progress and Completed, the readers
against `status --json`, named errors that change nothing, polkit refusing
an unprivileged caller, Cancel, the shared sysroot lock, a daemon killed
mid-stage, the idle exit and D-Bus activation."""

import json
import os
import re
import signal
import subprocess

import pytest

import dbuslib as dl
import scenariolib as sl
from hostile import Rule

MAN = os.path.join(dl.SRC_ROOT, "man", "abdeploy-dbus.5.scd")
BOUND = 60  # seconds any single wait may take


def man_interface():
    """The interface block of abdeploy-dbus(5) (the form of `gdbus
    introspect`), in the shape of dbuslib.interface_of()."""
    with open(MAN) as f:
        text = f.read()
    m = re.search(r"interface org\.abdeploy1\.Manager \{(.*?)\n\s*\};", text, re.S)
    assert m, "abdeploy-dbus(5) has no interface block"
    out = {"methods": {}, "properties": {}, "signals": {}}
    section = None
    for line in m.group(1).splitlines():
        line = line.strip()
        if line in ("methods:", "signals:", "properties:"):
            section = line[:-1]
            continue
        if not line:
            continue
        if section == "properties":
            p = re.fullmatch(r"readonly (\S+) (\w+);", line)
            assert p, line
            out["properties"][p.group(2)] = (p.group(1), "read")
            continue
        f = re.fullmatch(r"(\w+)\((.*)\);", line)
        assert f, line
        args = [a.split() for a in f.group(2).split(",") if a.strip()]
        if section == "signals":
            out["signals"][f.group(1)] = "".join(a[0] for a in args)
        else:
            out["methods"][f.group(1)] = ("".join(a[1] for a in args if a[0] == "in"),
                                          "".join(a[1] for a in args if a[0] == "out"))
    return out


def snapshot(sr):
    """sr.snapshot() without the remote-tracking refs (abdeploy:REF), which
    a pull updates before anything is staged, as the CLI's does."""
    snap = sr.snapshot()
    snap["refs"] = tuple(r for r in snap["refs"] if not r[0].startswith("abdeploy:"))
    return snap


def wait_request(server, path, timeout=BOUND):
    dl.wait_for(lambda: server.requests(path), timeout, "a request for " + path)


def throttle_v1(published, slow_server, bps=2048):
    """The v1 object of usr/bin/app (48 KiB) trickles at BPS: a pull of v1
    takes 20 s or more. Returns its URL path."""
    obj = os.path.relpath(published.object_path("os/v1", "/usr/bin/app"), published.path)
    slow_server.set(obj, Rule(bps=bps))
    return obj


# -- the API ------------------------------------------------------------------

def test_introspection_matches_documented_api(daemon, client):
    live = dl.interface_of(client.introspect())
    with open(dl.XML_PATH) as f:
        assert live == dl.interface_of(f.read()), "the daemon serves another interface than " \
            "data/dbus/org.abdeploy1.Manager.xml"
    assert live == man_interface(), "abdeploy-dbus(5) documents another interface"
    assert sorted(live["methods"]) == sorted(
        ["GetSlots", "GetStatus", "CheckUpdate", "Update", "Stage", "Deploy", "Activate",
         "Rollback", "Mark", "SetPin", "Cancel"])
    props = client.props()
    assert props == {"ApiVersion": 1, "Booted": "", "Primary": "", "Operation": "idle",
                     "Progress": {}, "LastError": "", "Pin": ""}, props


def cli_phases(sr, *args):
    """The phases `abdeploy ARGS --progress=json` goes through, in order."""
    r = sr.ok(*args, "--progress=json")
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    return [l["phase"] for l in lines if l.get("type") == "phase"]


def dedup(seq):
    return [x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x]


def test_deploy_signed_commit_shows_progress_and_completed(daemon, client, server, sysroot,
                                                           published, sysroots):
    result = client.run_op("Deploy", "(ssa{sv})", server.url, "os/v1", {})
    assert result[0] == "deploy" and result[1] == 0, (result, daemon.log())
    assert "Activated slot" in result[2], result
    ops = client.changed("Operation")
    assert ops[0] == "deploy" and ops[-1] == "idle", ops
    phases = dedup([p.get("phase") for p in client.changed("Progress") if p])
    assert "download" in phases and "activate" in phases, client.changed("Progress")
    # every phase, in the order the CLI's --progress=json reports for the same deploy
    assert phases == dedup(cli_phases(sysroots.create(), "deploy", "--from=" + server.url,
                                      "os/v1")), client.changed("Progress")
    for p in client.changed("Progress"):
        if "total" in p:
            assert 0 <= p["done"] <= p["total"] and 0 <= p["percent"] <= 100, p
    st = sysroot.status()
    primary = st["primary"]
    assert sl.at.slot_status(st, primary)["commit"] == published.v1.commit
    assert client.props()["Primary"] == primary
    assert client.props()["LastError"] == ""
    # Completed came after every property reached its final value
    last_completed = max(i for i, e in enumerate(client.events) if e[0].startswith("Completed"))
    assert all(e[0] == "PropertiesChanged" for e in client.events[:last_completed])


def test_get_slots_and_get_status_equal_status_json(daemon, client, server, sysroot):
    for step in (None, ("Deploy", "os/v1"), ("Stage", "os/v2")):
        if step:
            r = client.run_op(step[0], "(ssa{sv})", server.url, step[1], {})
            assert r[1] == 0, r
        st = sysroot.status()
        assert client.call("GetSlots")[0] == dl.strip_nulls(st["slots"])
        want = dl.strip_nulls({k: v for k, v in st.items() if k != "slots"})
        want.setdefault("booted", "")
        want.setdefault("primary", "")
        got = client.call("GetStatus")[0]
        assert got == want
        # issue 16: the origin and what boots next come along
        assert got["origin"]["channel"] == "stable", got
        assert ("next_boot" in got) == (st["primary"] is not None), got
    assert got["next_boot"]["kind"] == "trial" and got["next_boot"]["slot"] == st["primary"], got


def test_refused_signature_is_named_and_changes_nothing(daemon, client, server, sysroot):
    r = client.run_op("Deploy", "(ssa{sv})", server.url, "os/v1", {})
    assert r[1] == 0, r
    for ref in ("os/evil", "os/unsigned"):
        before = snapshot(sysroot)
        op, code, message = client.run_op("Stage", "(ssa{sv})", server.url, ref, {})
        assert (op, code) == ("stage", sl.EXIT_VERIFY), (op, code, message)
        assert client.props()["LastError"] == dl.ERRORS[3] + ": " + message
        cli = sysroot.run("stage", "--from=" + server.url, ref)
        assert cli.returncode == code, cli.describe()
        after = snapshot(sysroot)
        assert after == before, sl.diff_snapshots(before, after)


def test_usage_errors_and_lock_are_named(daemon, client):
    with pytest.raises(dl.RemoteError) as e:
        client.call("Update", "(a{sv})", {"no-such-option": dl.GLib.Variant("b", True)})
    assert e.value.name == dl.ERRORS[2] and "no-such-option" in e.value.message
    with pytest.raises(dl.RemoteError) as e:
        client.call("Deploy", "(ssa{sv})", "", "os/v1", {"tries": dl.GLib.Variant("s", "3")})
    assert e.value.name == dl.ERRORS[2] and "tries" in e.value.message
    with pytest.raises(dl.RemoteError) as e:
        client.call("Mark", "(ss)", "so-so", "a")
    assert e.value.name == dl.ERRORS[2]
    with pytest.raises(dl.RemoteError) as e:
        client.call("Cancel")
    assert e.value.name == dl.ERRORS[5]


def test_set_pin_and_mark(daemon, client, server, sysroot, channel, channel_server):
    assert client.run_op("Deploy", "(ssa{sv})", server.url, "os/v1", {})[1] == 0
    # a pin is checked against the verified channel manifest (issue 17)
    configure_update(sysroot, channel_server.url)
    client.call("SetPin", "(s)", "1.0")
    assert client.props()["Pin"] == "1.0"
    client.call("SetPin", "(s)", "")
    assert client.props()["Pin"] == ""
    primary = sysroot.status()["primary"]
    assert client.call("Mark", "(ss)", "good", primary) == (primary,)
    assert sl.at.slot_status(sysroot.status(), primary)["state"] == "good"


# -- authorization --------------------------------------------------------------

def test_unprivileged_caller_is_refused_by_polkit(daemon, polkit, client, server, sysroot,
                                                  bus):
    assert client.run_op("Deploy", "(ssa{sv})", server.url, "os/v1", {})[1] == 0
    before = snapshot(sysroot)
    # org.abdeploy1.read: anyone (polkit says yes)
    r = dl.call_as(dl.NOBODY, bus.address, "GetSlots")
    assert r.get("result") == [client.call("GetSlots")[0]], r
    assert "result" in dl.call_as(dl.NOBODY, bus.address, "GetStatus")
    refused = [("Deploy", "(ssa{sv})", [server.url, "os/v2", {}]),
               ("Stage", "(ssa{sv})", [server.url, "os/v2", {}]),
               ("Update", "(a{sv})", [{}]), ("Activate", "(a{sv})", [{}]),
               ("Cancel", None, []), ("Rollback", None, []),
               ("Mark", "(ss)", ["bad", "a"]), ("SetPin", "(s)", ["1.0"])]
    for method, sig, args in refused:
        r = dl.call_as(dl.NOBODY, bus.address, method, sig, args)
        assert r.get("error") == dl.NOT_AUTHORIZED, (method, r)
        assert "polkit" in r["message"] and "uid 65534" in r["message"], r
    client.pump(0.5)
    assert client.completed() == [], "a refused call started an operation"
    after = snapshot(sysroot)
    assert after == before, sl.diff_snapshots(before, after)
    assert client.props()["Operation"] == "idle"


RULE_NOBODY_MANAGES = """
polkit.addRule(function(action, subject) {
    if (action.id == "org.abdeploy1.manage" && subject.user == "nobody")
        return polkit.Result.YES;
});
"""


def test_polkit_rule_authorizes_an_unprivileged_caller(daemon, bus, client, sysroot, channel,
                                                      channel_server):
    """A local rule that gives nobody org.abdeploy1.manage: SetPin goes
    through for nobody, Rollback (org.abdeploy1.rollback) still does not.
    The daemon follows polkit's answer both ways."""
    why = dl.Polkit.unavailable()
    if why:
        pytest.skip("no polkitd on the private bus: " + why)
    # a pin is checked against the verified channel manifest (issue 17)
    configure_update(sysroot, channel_server.url)
    pk = dl.Polkit(bus, bus.dir, rules=RULE_NOBODY_MANAGES).start()
    try:
        r = dl.call_as(dl.NOBODY, bus.address, "SetPin", "(s)", ["1.0"])
        assert r == {"result": []}, r
        assert client.props()["Pin"] == "1.0"
        r = dl.call_as(dl.NOBODY, bus.address, "Rollback")
        assert r.get("error") == dl.NOT_AUTHORIZED, r
    finally:
        pk.stop()


def test_without_polkit_only_root_is_served(daemon, client, bus):
    """Fail closed: no polkitd on the bus, so nobody but root is authorized,
    not even to read."""
    r = dl.call_as(dl.NOBODY, bus.address, "GetStatus")
    assert r.get("error") == dl.NOT_AUTHORIZED and "could not be asked" in r["message"], r
    assert client.call("GetStatus")[0]["booted"] == ""


def test_shipped_bus_policy_lets_only_root_own_the_name(sysroot):
    """data/dbus/org.abdeploy1.conf on a bus whose default lets anybody own
    any name: nobody may not own org.abdeploy1, root may, and nobody may
    still call it (the daemon, not the bus, refuses: polkit decides)."""
    bus = dl.Bus(include=[dl.BUS_POLICY_PATH]).start()
    daemon = None
    try:
        r = dl.call_as(dl.NOBODY, bus.address, "@own")
        assert r.get("error") == "org.freedesktop.DBus.Error.AccessDenied", r
        daemon = dl.Daemon(sysroot, bus).start()
        r = dl.call_as(dl.NOBODY, bus.address, "GetStatus")
        assert r.get("error") == dl.NOT_AUTHORIZED, r  # reached the daemon; no polkitd here
    finally:
        if daemon:
            daemon.stop()
        bus.stop()


# -- cancel, the lock, crashes ------------------------------------------------------

def start_slow_stage(client, slow_server, published):
    obj = throttle_v1(published, slow_server)
    assert client.call("Stage", "(ssa{sv})", slow_server.url, "os/v1", {}) == ()
    wait_request(slow_server, obj)
    return obj


def test_cancel_mid_stage(daemon, client, slow_server, published, sysroot, bus):
    before = snapshot(sysroot)
    start_slow_stage(client, slow_server, published)
    assert client.props()["Operation"] == "stage"
    client.call("Cancel")
    op, code, message = client.wait_completed(BOUND)
    assert (op, code) == ("stage", sl.EXIT_ERROR) and "cancel" in message.lower(), message
    after = snapshot(sysroot)
    assert after == before, sl.diff_snapshots(before, after)
    assert sorted(os.listdir(sysroot.slots_dir)) in ([], ["a", "b"]) or \
        not any(n.startswith(".") for n in os.listdir(sysroot.slots_dir))
    # retryable: the same stage at full speed goes through
    slow_server.clear()
    if not daemon.running():  # an abandoned pull ends the daemon (abdeploy-dbus(5))
        daemon.start()
    r = client.run_op("Stage", "(ssa{sv})", slow_server.url, "os/v1", {})
    assert r[1] == 0, r


def test_sigterm_cancels_the_operation_then_exits(daemon, client, slow_server, published,
                                                  sysroot):
    """systemd stopping the daemon (SIGTERM) mid-stage: the stage is
    cancelled, Completed still comes, the daemon exits 0, nothing changed."""
    before = snapshot(sysroot)
    start_slow_stage(client, slow_server, published)
    daemon.proc.send_signal(signal.SIGTERM)
    op, code, message = client.wait_completed(BOUND)
    assert (op, code) == ("stage", sl.EXIT_ERROR) and "cancel" in message.lower(), message
    daemon.proc.wait(timeout=BOUND)
    assert daemon.proc.returncode == 0, daemon.log()
    after = snapshot(sysroot)
    assert after == before, sl.diff_snapshots(before, after)


def test_concurrent_cli_writer_exits_4_and_names_the_daemon(daemon, client, slow_server,
                                                             published, sysroot, server):
    start_slow_stage(client, slow_server, published)
    for args in (["stage", "--from=" + server.url, "os/v2"], ["activate"], ["rollback"]):
        r = sysroot.run(*args, timeout=BOUND)
        assert r.returncode == sl.EXIT_LOCKED, r.describe()
        assert "daemon" in r.stderr and str(daemon.proc.pid) in r.stderr, r.describe()
    # and a second operation through the bus fails at once, named
    with pytest.raises(dl.RemoteError) as e:
        client.call("Deploy", "(ssa{sv})", server.url, "os/v2", {})
    assert e.value.name == dl.ERRORS[4] and "stage" in e.value.message
    client.call("Cancel")
    assert client.wait_completed(BOUND)[1] == sl.EXIT_ERROR


def test_cli_holding_the_lock_fails_the_call_at_once(daemon, client, sysroot, server):
    import fcntl
    fd = os.open(sysroot.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(dl.RemoteError) as e:
            client.call("Deploy", "(ssa{sv})", server.url, "os/v1", {})
        assert e.value.name == dl.ERRORS[4]
    finally:
        os.close(fd)


def test_daemon_killed_mid_stage_leaves_a_consistent_sysroot(daemon, client, slow_server,
                                                             published, sysroot, server):
    assert client.run_op("Deploy", "(ssa{sv})", server.url, "os/v2", {})[1] == 0
    # booted in v2 with a green verdict: `verify` checks everything
    sysroot.set_booted(sysroot.status()["primary"])
    sysroot.ok("health-check", "--no-reboot")
    sysroot.ok("verify")
    before = snapshot(sysroot)
    start_slow_stage(client, slow_server, published)
    daemon.proc.kill()
    daemon.proc.wait(timeout=BOUND)
    problems, st = sl.consistency_problems(sysroot, published)
    assert problems == [], problems
    after = snapshot(sysroot)
    assert after == before, sl.diff_snapshots(before, after)
    sysroot.ok("verify")
    # the next writer goes ahead (the lock died with the daemon)
    sysroot.ok("stage", "--from=" + server.url, "os/v1")


# The crash points a stage of the file backend reaches, in order, over a
# slot in trial (stage:entry-installed is for backends that install boot
# entries themselves).
STAGE_CRASH_POINTS = ["stage:verified", "stage:checked-out", "stage:etc-merged",
                      "stage:unbootable", "stage:swapped", "stage:recorded"]


@pytest.mark.parametrize("point", STAGE_CRASH_POINTS)
def test_daemon_killed_at_each_step_of_a_stage(point, sysroot, bus, client, server,
                                               published):
    """The daemon SIGKILLs itself at a crash point of the stage it runs
    (ABDEPLOY_CRASH_AT): the sysroot stays consistent, verify passes, the
    booted slot and the pointer are untouched, and the next writer goes
    ahead."""
    sysroot.ok("deploy", "--from=" + server.url, "os/v1")
    booted = sysroot.status()["primary"]
    sysroot.set_booted(booted)
    sysroot.ok("health-check", "--no-reboot")
    # the other slot in trial and primary: the stage makes it unbootable first
    sysroot.ok("deploy", "--from=" + server.url, "os/v3")
    pointer = sysroot.pointer()
    booted_tree = sysroot.slot_snapshot(booted)
    d = dl.Daemon(sysroot, bus, env={"ABDEPLOY_CRASH_AT": point}).start()
    try:
        assert client.call("Stage", "(ssa{sv})", server.url, "os/v2", {}) == ()
        d.proc.wait(timeout=BOUND)
        assert d.proc.returncode == -signal.SIGKILL, d.log()
    finally:
        d.stop()
    problems, st = sl.consistency_problems(sysroot, published)
    assert problems == [], problems
    state = "ABDEPLOY_%s_STATE" % booted.upper()
    assert sysroot.pointer()[state] == pointer[state] == "good"
    assert sysroot.slot_snapshot(booted) == booted_tree
    # verify: everything passes, but for "booted slot primary" while the
    # other slot (v3 on trial) is still primary, as it was before the stage
    checks = json.loads(sysroot.run("verify", "--json").stdout)["checks"]
    failed = [c["name"] for c in checks if not c["passed"]]
    allowed = ["booted-primary-good"] if st["primary"] != booted else []
    assert failed == allowed, checks
    r = sysroot.run("stage", "--from=" + server.url, "os/v2")
    assert r.returncode in (sl.EXIT_OK, sl.EXIT_NOTHING), r.describe()
    assert sl.at.slot_status(sysroot.status(), sl.other(booted))["commit"] == published.v2.commit


# -- life cycle ---------------------------------------------------------------------

def test_exits_when_idle(sysroot, bus, client):
    d = dl.Daemon(sysroot, bus, idle=1).start()
    try:
        client.call("GetStatus")
        d.proc.wait(timeout=BOUND)
        assert d.proc.returncode == 0, d.log()
        assert not client.has_owner(dl.BUS_NAME)
    finally:
        d.stop()


def test_dbus_activation_starts_the_daemon(sysroot, bus, abdeploy_bin):
    """The bus starts the daemon from the activation file (Exec= of
    data/dbus/org.abdeploy1.service.in, pointed at this sysroot)."""
    with open(dl.SERVICE_PATH) as f:
        text = f.read()
    m = re.search(r"(?m)^Exec=(\S+) (.*)$", text)
    assert m and "daemon" in m.group(2) and "SystemdService=abdeploy-daemon.service" in text
    exec_line = "Exec=%s --sysroot=%s daemon --idle-timeout=2" % (abdeploy_bin, sysroot.path)
    with open(os.path.join(bus.servicedir, "org.abdeploy1.service"), "w") as f:
        f.write(text.replace(m.group(0), exec_line))
    client = dl.Client(bus.address)
    try:
        assert not client.has_owner(dl.BUS_NAME)
        assert client.call("GetStatus")[0]["primary"] == ""
        assert client.has_owner(dl.BUS_NAME)
        dl.wait_for(lambda: not client.has_owner(dl.BUS_NAME), BOUND, "the idle exit")
    finally:
        client.close()


# -- the update client ----------------------------------------------------------------

def configure_update(sr, url):
    d = sr.p("etc", "abdeploy", "conf.d")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "50-update.conf"), "w") as f:
        f.write("[update]\nurl=%s\nchannel=stable\n" % url)


def test_check_update_equals_cli(daemon, client, sysroot, channel, channel_server):
    configure_update(sysroot, channel_server.url)
    cli = json.loads(sysroot.ok("check-update", "--json").stdout)
    got = client.call("CheckUpdate")[0]
    assert got == dl.strip_nulls(cli), (got, cli)
    assert got["update_available"] is True and got["offered_version"] == "2.0"


def test_cancel_mid_update_leaves_a_retryable_transaction(daemon, client, sysroot, channel,
                                                         channel_server):
    configure_update(sysroot, channel_server.url)
    out = sl.run(["ostree", "--repo=" + channel.repo, "ls", "-C", channel.commits["2.0"],
                  "/usr/bin/app"]).stdout.decode()
    checksum = out.split()[4]
    obj = "objects/%s/%s.filez" % (checksum[:2], checksum[2:])
    channel_server.set(obj, Rule(bps=2048))
    before = snapshot(sysroot)
    assert client.call("Update", "(a{sv})", {}) == ()
    wait_request(channel_server, obj)
    assert client.props()["Operation"] == "update"
    client.call("Cancel")
    op, code, message = client.wait_completed(BOUND)
    assert (op, code) == ("update", sl.EXIT_ERROR) and "cancel" in message.lower(), message
    t = sysroot.status()["transaction"]
    assert t["phase"] == "failed" and t["retryable"] is True and t["version"] == "2.0", t
    after = snapshot(sysroot)
    for snap in (before, after):  # the journal and history record the attempt
        for k in [k for k in snap if re.match(r"abdeploy/state/(transaction|history|update)", k)]:
            del snap[k]
    assert after == before, sl.diff_snapshots(before, after)
    # retried at full speed, through the bus
    channel_server.clear()
    if not daemon.running():
        daemon.start()
    op, code, message = client.run_op("Update", "(a{sv})", {})
    assert (op, code) == ("update", 0), (message, daemon.log())
    st = sysroot.status()
    assert st["transaction"]["phase"] == "applied", st["transaction"]
    assert sl.at.slot_status(st, st["primary"])["commit"] == channel.commits["2.0"], st
    assert client.props()["Primary"] == st["primary"]


def test_commit_for_another_os_is_refused(daemon, client, server, sysroot, workdir, keys,
                                          abdeploy_bin):
    """issue 16: Stage of a commit made for another OS fails with exit 3
    (VerificationRefused), names both OS names and changes nothing."""
    root = os.path.join(workdir, "dbus-otheros")
    repo = os.path.join(root, "repo")
    tree = sl.write_tree(os.path.join(root, "tree"), sl.image_spec("2.0"))
    out = sl.run([abdeploy_bin, "publish", "commit", "--repo=" + repo, "--tree=" + tree,
                  "--version=2.0", "--os=otheros", "--gpg-sign=" + keys.trusted,
                  "--gpg-homedir=" + keys.homedir], env=keys.env).stdout.decode()
    commit = re.search(r"\b[0-9a-f]{64}\b", out).group(0)
    assert client.run_op("Deploy", "(ssa{sv})", server.url, "os/v1", {})[1] == 0
    before = snapshot(sysroot)
    op, code, message = client.run_op("Stage", "(ssa{sv})", repo, commit, {})
    assert (op, code) == ("stage", sl.EXIT_VERIFY), (op, code, message)
    assert '"otheros"' in message and '"testos"' in message, message
    after = snapshot(sysroot)
    assert after == before, sl.diff_snapshots(before, after)
