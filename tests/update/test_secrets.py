"""Secrets (issue 11, point 6): credentials in the update URL stay in
root-only files.  lighttpd on 127.0.0.1 requires HTTP basic auth (mod_auth
with a plain user file); the device's abdeploy.conf (mode 0600) holds
http://USER:PASSWORD@127.0.0.1:PORT.  After check-update, update, stage
--from and a health check whose hook prints its environment and the files
a hook could read, no world-readable file under the sysroot, no output and
no verdict holds the password; every file abdeploy wrote has the mode the
file-mode table of docs/internals.md gives it."""

import json
import os
import re
import stat

import pytest

import updlib as ul

USER = "updater"
PASSWORD = "s3cret-Pa55-9f4e1c"


@pytest.fixture(scope="module")
def authd(workdir, pub):
    d = os.path.join(workdir, "authd")
    os.makedirs(d, exist_ok=True)
    users = os.path.join(d, "users")
    with open(users, "w") as f:
        f.write("%s:%s\n" % (USER, PASSWORD))
    conf = "\n".join([
        'server.modules += ("mod_auth", "mod_authn_file")',
        'auth.backend = "plain"',
        'auth.backend.plain.userfile = "%s"' % users,
        'auth.require = ("" => ("method" => "basic", "realm" => "updates", '
        '"require" => "valid-user"))',
    ])
    s = ul.Lighttpd(pub.repo, workdir, name="lighttpd-auth", extra_conf=conf).start()
    yield s
    s.stop()


def cred_url(server):
    return "http://%s:%s@127.0.0.1:%d" % (USER, PASSWORD, server.port)


def configure_secret(dev, server):
    # nodelta: the release is pulled object by object through libostree,
    # the path that configures the remote
    dev.configure(cred_url(server), channel="nodelta")
    os.chmod(dev.conf_path, 0o600)  # the operator's part: the config holds a secret


def world_readable_leaks(root):
    """Files under ROOT readable by others (through their directories) that
    hold the password."""
    leaks = []
    for dirpath, dirs, files in os.walk(root):
        for n in files:
            path = os.path.join(dirpath, n)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or not readable_by_others(root, path):
                continue
            with open(path, "rb") as f:
                if PASSWORD.encode() in f.read():
                    leaks.append(os.path.relpath(path, root))
    return leaks


def readable_by_others(root, path):
    if not os.lstat(path).st_mode & stat.S_IROTH:
        return False
    d = os.path.dirname(path)
    while len(d) >= len(root):
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
        d = os.path.dirname(d)
    return True


def assert_quiet(r):
    out = r.stdout + r.stderr
    assert PASSWORD not in out, r.describe()
    assert "%s:" % USER not in out, r.describe()


def test_auth_server_requires_the_password(device, authd):
    """The server really refuses a request without credentials."""
    device.configure(authd.url)
    r = device.run("check-update", "--json")
    assert r.returncode != ul.EXIT_OK, r.describe()
    assert "401" in r.stderr, r.describe()


def test_update_with_credentials_leaks_nothing(device, authd, pub):
    configure_secret(device, authd)
    r = device.run("check-update", "--json")
    assert r.returncode == ul.EXIT_OK, r.describe()
    assert_quiet(r)
    r = device.run("update", "--progress=json")
    assert r.returncode == ul.EXIT_OK, r.describe()
    assert_quiet(r)
    st = device.ok("status", "--json")
    assert_quiet(st)
    assert device.slot("b")["commit"] == pub.commits["1.4"]
    assert_quiet(device.ok("history", "--json"))
    assert world_readable_leaks(device.path) == []


def test_world_readable_config_with_credentials_is_warned_about(device, authd):
    """abdeploy.conf is the operator's file: abdeploy cannot make it 0600,
    but says so, with the fix, without printing the password."""
    device.configure(cred_url(authd), channel="nodelta")
    os.chmod(device.conf_path, 0o644)
    r = device.run("check-update", "--json")
    assert r.returncode == ul.EXIT_OK, r.describe()
    assert "chmod 600 %s" % device.conf_path in r.stderr, r.describe()
    assert_quiet(r)
    os.chmod(device.conf_path, 0o600)
    r = device.run("check-update", "--json")
    assert "chmod 600" not in r.stderr, r.describe()
    device.configure(authd.url.replace("http://", "http://%s:%s@" % (USER, PASSWORD)) + "/x")
    os.chmod(device.conf_path, 0o600)  # leave no readable secret behind


def test_failed_pull_with_credentials_leaks_nothing(device, authd):
    """Errors name the server without the credentials."""
    url = "http://%s:%s@127.0.0.1:%d/no-such-repo" % (USER, PASSWORD, authd.port)
    r = device.run("stage", "--from=" + url, "stable/1.1")
    assert r.returncode != ul.EXIT_OK, r.describe()
    assert "127.0.0.1" in r.stderr, r.describe()
    assert_quiet(r)
    assert world_readable_leaks(device.path) == []


def test_stage_from_url_with_credentials_leaks_nothing(device, authd, pub):
    r = device.run("stage", "--from=" + cred_url(authd) + "/", pub.commits["1.1"])
    assert r.returncode == ul.EXIT_OK, r.describe()
    assert_quiet(r)
    assert_quiet(device.ok("status", "--json"))
    assert world_readable_leaks(device.path) == []
    with open(device.p("ostree", "repo", "config")) as f:
        assert PASSWORD not in f.read()


HOOK = """#!/bin/sh
env
cat "$ABDEPLOY_SYSROOT/ostree/repo/config"
cat "$ABDEPLOY_SYSROOT"/abdeploy/state/*.json
exit 0
"""


def test_hook_output_in_verdict_has_no_credentials(device, authd):
    configure_secret(device, authd)
    device.ok("update")
    d = device.p("abdeploy", "slots", "b", "etc", "abdeploy", "health", "required.d")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "50-print-env")
    with open(path, "w") as f:
        f.write(HOOK)
    os.chmod(path, 0o755)
    device.set_booted("b")
    r = device.run("health-check")
    assert_quiet(r)
    with open(device.p("abdeploy", "state", "verdict.json")) as f:
        text = f.read()
    hooks = json.loads(text)["hooks"]
    assert any(h["name"] == "50-print-env" for h in hooks), text
    assert "ABDEPLOY_SLOT=b" in text, "the hook's output is not in the verdict: " + text
    assert PASSWORD not in text
    assert world_readable_leaks(device.path) == []


# ---- the file-mode table (docs/internals.md, abdeploy-layout(7))

def mode_table():
    """(regex of a path relative to the sysroot, mode, secret) from the
    table in docs/internals.md between the file-modes markers."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "docs", "internals.md")) as f:
        text = f.read()
    body = text.split("<!-- file-modes:begin -->")[1].split("<!-- file-modes:end -->")[0]
    rows = []
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`") or not re.match("^0[0-7]+$", cells[1]):
            continue  # header, or a file whose mode is the operator's
        pat = cells[0].strip("`")
        rx = "^" + re.escape(pat).replace(r"\*\*", ".*").replace(r"\*", "[^/]*") + "$"
        rows.append((re.compile(rx), int(cells[1].strip("`"), 8), cells[2].lower().startswith("yes")))
    assert rows, "no file-mode table in docs/internals.md"
    return rows


def check_dir(table, root, rel_dir, problems):
    """Directories are rows ending in '/'."""
    if rel_dir.split("/")[0] not in ("abdeploy", "ostree") or rel_dir.startswith("ostree/repo/"):
        return  # the test's skeleton and libostree's own repo layout
    mode = os.stat(os.path.join(root, rel_dir)).st_mode & 0o7777
    row = next((r for r in table if r[0].match(rel_dir + "/")), None)
    if row is None:
        problems.append("%s/ (mode %o) is not in the table" % (rel_dir, mode))
    elif row[1] != mode:
        problems.append("%s/: mode %o, table says %o" % (rel_dir, mode, row[1]))


def test_file_modes_match_the_documented_table(device, authd, devices, keyfiles):
    """Every file abdeploy wrote (outside slot trees, repo objects and
    kernels, which carry the image's own modes) is in the table with its
    mode; the files that may hold a secret are not world-readable."""
    configure_secret(device, authd)
    device.ok("update")
    device.set_booted("b")
    device.ok("health-check")
    backup = os.path.join(device.root, "backup.tar")
    device.ok("backup", "--output=" + backup)
    table = mode_table()
    problems = []
    if os.stat(backup).st_mode & 0o7777 != 0o600:
        problems.append("backup archive: mode %o, not 600" % (os.stat(backup).st_mode & 0o7777))
    for dirpath, dirs, files in os.walk(device.path):
        rel_dir = os.path.relpath(dirpath, device.path)
        if rel_dir.startswith(("abdeploy/slots/", "ostree/repo/objects", "boot/abdeploy/",
                               "ostree/repo/deltas", "ostree/repo/tmp")):
            dirs[:] = []
            continue
        if rel_dir != ".":
            check_dir(table, device.path, rel_dir, problems)
        for n in files:
            rel = os.path.normpath(os.path.join(rel_dir, n))
            if rel in ("etc/abdeploy/abdeploy.conf", "etc/machine-id"):
                continue  # written by the test
            if rel.startswith("etc/abdeploy/trusted.gpg.d/"):
                continue
            st = os.lstat(os.path.join(dirpath, n))
            if not stat.S_ISREG(st.st_mode):
                continue
            row = next((r for r in table if r[0].match(rel)), None)
            if row is None:
                problems.append("%s (mode %o) is not in the table" % (rel, st.st_mode & 0o7777))
                continue
            _, mode, secret = row
            if st.st_mode & 0o7777 != mode:
                problems.append("%s: mode %o, table says %o" % (rel, st.st_mode & 0o7777, mode))
            if secret and st.st_mode & 0o077:
                problems.append("%s may hold a secret but is mode %o" % (rel, st.st_mode & 0o7777))
            if not secret:
                with open(os.path.join(dirpath, n), "rb") as f:
                    if PASSWORD.encode() in f.read():
                        problems.append("%s holds the password, the table says it never does" % rel)
    assert not problems, "\n".join(problems)
