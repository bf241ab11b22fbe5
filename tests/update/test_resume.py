"""Interrupted downloads: SIGKILL halfway through a delta part and a re-run
that fetches only the rest (HTTP Range, asserted from the server's log);
SIGINT/SIGTERM cancel cleanly (transaction failed and retryable, nothing
half-staged); resume limits and abandon."""

import os
import signal

import pytest

import updlib as ul
from hostile import Rule


def big_part(pub):
    files = pub.delta_files("big", "1.6", "1.0")
    part = files[-1]
    assert part["size"] > 1024 * 1024, files  # the 1.5 MB incompressible file
    return files, part


def part_file(device, pub, part):
    return os.path.join(device.cache_dir, "delta-" + pub.commits["1.6"],
                        os.path.basename(part["path"]) + ".part")


def size_of(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("rerun", ["resume", "update"])
def test_kill_halfway_then_rerun_fetches_only_the_rest(device, hostile, pub, rerun):
    files, part = big_part(pub)
    # slow but well above the cut-off rate, for the first request only
    hostile.set(part["path"], Rule(bps=300 * 1024, bps_requests=1))
    device.configure(hostile.url, channel="big")
    path = part_file(device, pub, part)
    proc = device.popen("update")
    try:
        ul.wait_for(lambda: size_of(path) >= part["size"] * 0.4 or proc.poll() is not None,
                    30, "the delta part to be 40 % downloaded")
        assert proc.poll() is None, "update ended before it was killed: %r" % (
            proc.communicate(),)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    have = size_of(path)
    assert 0 < have < part["size"], have
    t = device.transaction()
    assert t["phase"] == "downloading" and t["version"] == "1.6", t
    assert device.leftovers() == []

    r = device.ok(rerun)
    if rerun == "resume":
        assert "Resuming the update to 1.6 from phase downloading" in r.stdout, r.describe()
    reqs = hostile.requests(part["path"])
    assert len(reqs) == 2, reqs
    first, second = reqs
    assert first["range"] is None and first["status"] == 200, first
    assert second["range"] == "bytes=%d-" % have, second
    assert second["status"] == 206 and second["sent"] == part["size"] - have, second
    total = first["sent"] + second["sent"]
    # bytes still in flight when the client died are the only waste (a
    # download from scratch would make it 1.4 x or more)
    assert part["size"] <= total <= part["size"] * 1.25, (total, part["size"])
    # the superblock was complete before the kill: not fetched again
    assert len(hostile.requests(files[0]["path"])) == 1
    st = device.status()
    assert device.slot("b", st)["version"] == "1.6" and st["primary"] == "b", st
    assert ul.compare_usr(device.p("abdeploy", "slots", "b"), pub.trees["1.6"]) == []
    t = device.transaction()
    assert t["phase"] == "applied" and t["attempts"] == 2 and t["use_delta"] is True, t
    assert not os.path.exists(os.path.dirname(path))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_cancels_cleanly(device, hostile, pub, sig):
    files, part = big_part(pub)
    hostile.set(part["path"], Rule(bps=100 * 1024))
    device.configure(hostile.url, channel="big", max_resume_attempts=1)
    before = device.snapshot(state_except=("transaction.json", "history.json", "update.json"))
    path = part_file(device, pub, part)
    proc = device.popen("update", "--progress=json")
    try:
        ul.wait_for(lambda: size_of(path) > 64 * 1024 or proc.poll() is not None, 30,
                    "the delta download to start")
        assert proc.poll() is None
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    out, err = out.decode(), err.decode()
    name = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
    assert proc.returncode not in (0, -sig), (proc.returncode, out, err)
    assert "%s received" % name in err and "cancel" in err.lower(), err
    assert '"message":"cancelled"' in out.replace(" ", ""), out
    t = device.transaction()
    assert t["phase"] == "failed" and t["retryable"] is True, t
    assert t["failed_in"] == "downloading" and "cancel" in t["reason"].lower(), t
    assert device.leftovers() == [], device.leftovers()
    after = device.snapshot(state_except=("transaction.json", "history.json", "update.json"))
    assert after == before, ul.diff(before, after)
    kept = size_of(path)
    assert kept > 0  # kept for the resume

    # max-resume-attempts=1: the unattended `update` leaves it to the operator
    r = device.expect(ul.EXIT_ERROR, "update")
    assert "waits for the operator" in r.stderr, r.describe()
    # the operator resumes; the server, at full speed now, first answers 503
    # once (its body must not land in the partial file)
    hostile.set(part["path"], Rule(fail=[503]))
    r = device.ok("resume")
    last = hostile.requests(part["path"])[-1]
    assert last["range"] == "bytes=%d-" % kept and last["status"] == 206, last
    assert device.slot("b")["version"] == "1.6"


def test_abandon_drops_the_transaction(device, hostile, pub):
    files, part = big_part(pub)
    hostile.set(part["path"], Rule(status=404))
    device.configure(hostile.url, channel="big")
    device.expect(ul.EXIT_ERROR, "update")
    t = device.transaction()
    assert t["phase"] == "failed" and t["retryable"] is False, t
    r = device.expect(ul.EXIT_ERROR, "update")
    assert "waits for the operator" in r.stderr and "resume --abandon" in r.stderr, r.describe()
    cache = os.path.dirname(part_file(device, pub, part))
    assert os.listdir(cache), "the superblock should be in the delta cache"
    device.ok("resume", "--abandon")
    assert device.transaction()["phase"] == "abandoned"
    assert not os.path.exists(cache), "resume --abandon left the delta cache"
    device.expect(ul.EXIT_NOTHING, "resume")
    hostile.set(part["path"], Rule())
    device.ok("update")
    assert device.slot("b")["version"] == "1.6"


def test_connection_cut_midway_is_resumed_in_the_same_run(device, hostile, pub):
    """The server drops the connection after 40 % of a delta part (a
    transient error): the retry asks for the rest with a Range request."""
    files, part = big_part(pub)
    cut = int(part["size"] * 0.4)
    hostile.set(part["path"], Rule(cut_after=cut))
    device.configure(hostile.url, channel="big", max_attempts=3)
    r = device.ok("update")
    reqs = hostile.requests(part["path"])
    assert len(reqs) == 2, reqs
    assert reqs[0]["sent"] == cut and reqs[0]["range"] is None, reqs
    assert reqs[1]["range"] == "bytes=%d-" % cut and reqs[1]["status"] == 206, reqs
    assert reqs[1]["sent"] == part["size"] - cut, reqs
    assert device.slot("b")["version"] == "1.6"


def test_error_body_does_not_end_up_in_the_download(device, hostile, pub):
    """A 503 (retried) and a 404 (terminal) carry a body; neither may be
    written into the partial file that the next attempt resumes."""
    files, part = big_part(pub)
    hostile.set(part["path"], Rule(fail=[503, 404]))
    device.configure(hostile.url, channel="big", max_attempts=3)
    device.expect(ul.EXIT_ERROR, "update")
    assert size_of(part_file(device, pub, part)) == 0
    device.ok("resume")
    reqs = hostile.requests(part["path"])
    assert [e["status"] for e in reqs] == [503, 404, 200], reqs
    assert reqs[-1]["range"] is None, reqs
    assert device.slot("b")["version"] == "1.6"


def test_resume_from_a_server_without_range_support(device, hostile, pub):
    """Killed halfway; the mirror it resumes from ignores Range (answers 200
    with the whole file): the download starts over instead of failing."""
    files, part = big_part(pub)
    hostile.set(part["path"], Rule(bps=400 * 1024, bps_requests=1))
    device.configure(hostile.url, channel="big", max_attempts=2)
    path = part_file(device, pub, part)
    proc = device.popen("update")
    try:
        ul.wait_for(lambda: size_of(path) >= part["size"] * 0.3 or proc.poll() is not None,
                    30, "the delta part to be 30 % downloaded")
        assert proc.poll() is None
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    have = size_of(path)
    assert 0 < have < part["size"]
    hostile.set(part["path"], Rule(no_range=True))
    device.ok("resume")
    reqs = hostile.requests(part["path"])
    assert reqs[1]["range"] == "bytes=%d-" % have and reqs[-1]["status"] == 200, reqs
    assert device.slot("b")["version"] == "1.6"


def test_resume_at_boot_resumes_only_an_interrupted_update_and_is_bounded(device, hostile, pub):
    """issue 16, point 9: `resume --if-interrupted`, what
    abdeploy-resume.service runs shortly after boot.  Nothing to do (exit
    5) without an interrupted update; a retryable failure is resumed while
    its attempts stay below [update] max-resume-attempts, and waits for the
    operator after that; a failure that waits for the operator is left
    alone (exit 5)."""
    r = device.expect(ul.EXIT_NOTHING, "resume", "--if-interrupted")
    assert "no interrupted update" in r.stderr, r.describe()
    device.expect(ul.EXIT_USAGE, "resume", "--if-interrupted", "--abandon")

    files, part = big_part(pub)
    hostile.set(part["path"], Rule(fail=[503]))      # retryable, one attempt only
    device.configure(hostile.url, channel="big", max_attempts=1, max_resume_attempts=1)
    device.expect(ul.EXIT_ERROR, "update")
    t = device.transaction()
    assert t["phase"] == "failed" and t["retryable"] is True and t["attempts"] == 1, t
    # the attempts are used up: the boot resume leaves it to the operator
    r = device.expect(ul.EXIT_ERROR, "resume", "--if-interrupted")
    assert "tried 1 times" in r.stderr and "resume --abandon" in r.stderr, r.describe()
    assert device.transaction() == t
    # with attempts left it resumes, from the phase that failed
    device.configure(hostile.url, channel="big", max_attempts=1, max_resume_attempts=3)
    r = device.ok("resume", "--if-interrupted")
    assert "Resuming the update to 1.6 from phase downloading" in r.stdout, r.describe()
    t = device.transaction()
    assert t["phase"] == "applied" and t["attempts"] == 2, t
    assert device.slot("b")["version"] == "1.6"
    device.expect(ul.EXIT_NOTHING, "resume", "--if-interrupted")


def test_resume_at_boot_leaves_a_terminal_failure_to_the_operator(device, hostile, pub):
    files, part = big_part(pub)
    hostile.set(part["path"], Rule(status=404))
    device.configure(hostile.url, channel="big")
    device.expect(ul.EXIT_ERROR, "update")
    t = device.transaction()
    assert t["phase"] == "failed" and t["retryable"] is False, t
    r = device.expect(ul.EXIT_NOTHING, "resume", "--if-interrupted")
    assert "waits for the operator" in r.stderr, r.describe()
    assert device.transaction() == t
    assert hostile.requests(part["path"])[-1]["status"] == 404
