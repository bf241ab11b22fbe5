"""Helpers of the update-client tests (issue 4).

Standard library only.  Everything here drives real programs: gpg (keys made
by the test), `abdeploy publish` (commits, channel manifests, static deltas),
lighttpd from Debian on 127.0.0.1 with an access log, openssl (a test CA for
HTTPS) and the built abdeploy binary on throw-away sysroots.  The pieces the
other suites share (child environment, runs, GPG homes, trees, snapshots)
come from tests/lib/abtest.py.
"""

import base64
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

_LIBDIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib")
if _LIBDIR not in sys.path:
    sys.path.insert(0, _LIBDIR)

import abtest as at  # noqa: E402
# Shared with the other suites (tests/lib/abtest.py), re-exported here.
from abtest import (  # noqa: E402,F401
    DEFAULT_TIMEOUT, EXIT_ERROR, EXIT_LOCKED, EXIT_NOTHING, EXIT_OK, EXIT_USAGE,
    EXIT_VERIFY, PYTHON, Result, blob, clean_env, free_port, rmtree, run, sha256_file,
    wait_for)

OS_NAME = "testos"
KVER = "6.1.0-upd"
LIGHTTPD = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
# diff of two snapshots (the name this suite's tests use)
diff = at.diff_snapshots


def rollout_bucket(machine_id, version):
    """The documented formula (docs/internals.md, "Phased rollout")."""
    d = hashlib.sha256(("%s:%s" % (machine_id, version)).encode()).digest()
    return int.from_bytes(d[:8], "big") % 10000


# --------------------------------------------------------------------------
# GPG


class Gpg(at.GpgHome):
    """A GNUPGHOME made by the test with a trusted and an untrusted key
    (ed25519); .trusted and .untrusted are their fingerprints."""

    def __init__(self, homedir):
        super().__init__(homedir)
        self.trusted = self.generate("abdeploy update publisher", "publisher@example.org",
                                     algo="ed25519")
        self.untrusted = self.generate("abdeploy update intruder", "intruder@example.org",
                                       algo="ed25519")


# --------------------------------------------------------------------------
# Image trees


# Files of the base image: a few dozen small files, a shared library-sized
# file, a kernel.  CHANGED_11 are the 10 files that version 1.1 changes.
N_DATA = 40
CHANGED_11 = ["usr/share/data/file-%02d" % i for i in range(10)]


def image_spec(version, changed=(), extra=None):
    """{relative path: bytes | (bytes, mode)} of an image.  Files listed in
    CHANGED get content that depends on VERSION; the rest is the same in
    every version (so deltas are small)."""
    spec = {
        "usr/bin/tool": (b"#!/bin/sh\necho tool\n" + blob("tool", 8192), 0o755),
        "usr/lib/libbase.so": blob("libbase", 64 * 1024),
        "usr/lib/os-release": ("NAME=testos\nID=%s\nVERSION_ID=%s\n" % (OS_NAME, version)).encode(),
        "usr/etc/motd": b"Welcome to testos\n",
        "usr/etc/app.conf": b"setting=1\n",
    }
    spec.update(at.kernel_files(KVER, b"FAKEKERNEL\n" + blob("kernel", 4096),
                                b"FAKEINITRD\n" + blob("initrd", 2048)))
    for i in range(N_DATA):
        rel = "usr/share/data/file-%02d" % i
        spec[rel] = ("data file %d\n" % i).encode() + blob("data%d" % i, 700)
    for rel in changed:
        spec[rel] = ("data file %s in %s\n" % (rel, version)).encode() + blob(rel + version, 700)
    if extra:
        spec.update(extra)
    return spec


def write_tree(root, spec):
    """Files of SPEC under ROOT, which is made anew; returns ROOT."""
    return at.write_tree(root, spec, replace=True)


# --------------------------------------------------------------------------
# Publisher: `abdeploy publish ...` on an archive repo


class Publisher:
    def __init__(self, root, binary, gpg):
        self.root = root
        self.binary = binary
        self.gpg = gpg
        self.repo = os.path.join(root, "repo")
        self.commits = {}  # version -> commit
        self.trees = {}    # version -> tree dir
        os.makedirs(root, exist_ok=True)

    def publish(self, *args, key="trusted", check=True):
        cmd = [self.binary, "publish"] + list(args) + ["--repo=" + self.repo]
        if key:
            cmd += ["--gpg-sign=" + getattr(self.gpg, key), "--gpg-homedir=" + self.gpg.homedir]
        return run(cmd, env=self.gpg.env, check=check, timeout=300)

    def commit(self, version, spec, signed=True, args=()):
        tree = write_tree(os.path.join(self.root, "tree-" + version), spec)
        out = self.publish("commit", "--tree=" + tree, "--version=" + version, *args,
                           key="trusted" if signed else None).stdout.decode()
        m = re.search(r"\b[0-9a-f]{64}\b", out)
        assert m, out
        self.commits[version] = m.group(0)
        self.trees[version] = tree
        return m.group(0)

    def release(self, channel, version, rollout=None):
        args = ["release", "--channel=" + channel, "--version=" + version]
        if rollout is not None:
            args.append("--rollout=%d" % rollout)
        return self.publish(*args)

    def deltas(self, channel, from_last=1):
        return self.publish("deltas", "--channel=" + channel, "--from-last=%d" % from_last)

    def manifest_path(self, channel):
        return os.path.join(self.repo, "abdeploy", "channels", channel + ".json")

    def manifest(self, channel):
        with open(self.manifest_path(channel)) as f:
            return json.load(f)

    def manifest_bytes(self, channel):
        with open(self.manifest_path(channel), "rb") as f:
            return f.read()

    def sig_bytes(self, channel):
        with open(self.manifest_path(channel) + ".sig", "rb") as f:
            return f.read()

    def release_of(self, channel, version):
        for r in self.manifest(channel)["releases"]:
            if r["version"] == version:
                return r
        raise KeyError(version)

    def delta_files(self, channel, version, from_version):
        rel = self.release_of(channel, version)
        frm = self.commits[from_version]
        for d in rel["deltas"]:
            if d["from"] == frm:
                return d["files"]
        raise KeyError("no delta %s -> %s in %s" % (from_version, version, channel))

    def object_path(self, commit, kind="commit"):
        return "objects/%s/%s.%s" % (commit[:2], commit[2:], kind)

    def craft(self, channel, mutate=None, key="trusted"):
        """A manifest of CHANNEL changed by MUTATE(dict) and signed with
        KEY, as (json bytes, signature bytes), for hostile servers.  Used
        only for what `abdeploy publish` rightly refuses to write (expired,
        replayed serial, lying delta lists)."""
        m = self.manifest(channel)
        if mutate:
            mutate(m)
        data = json.dumps(m, indent=2).encode()
        return data, self.gpg.sign_detached(data, getattr(self.gpg, key))

    def craft_release(self, channel, version, delta_from):
        """Add VERSION to CHANNEL by hand, with a delta from DELTA_FROM made
        by the ostree CLI, and sign the manifest with the trusted key: for
        what `abdeploy publish` refuses to sign (an unsigned commit)."""
        frm, commit = self.commits[delta_from], self.commits[version]
        run(["ostree", "--repo=" + self.repo, "static-delta", "generate",
             "--min-fallback-size=0", "--from=" + frm, "--to=" + commit])
        d = delta_dir(frm, commit)
        names = sorted(os.listdir(os.path.join(self.repo, d)),
                       key=lambda n: (n != "superblock", int(n) if n.isdigit() else -1))
        files = [{"path": d + "/" + n, "size": os.path.getsize(os.path.join(self.repo, d, n)),
                  "sha256": sha256_file(os.path.join(self.repo, d, n))} for n in names]
        entry = {"version": version, "commit": commit, "published_at": iso(utcnow()),
                 "deprecated": None, "rollout": 100,
                 "deltas": [{"from": frm, "size": sum(f["size"] for f in files), "files": files}]}

        def add(m):
            m["releases"].append(entry)
            m["serial"] += 1
        data, sig = self.craft(channel, add)
        with open(self.manifest_path(channel), "wb") as f:
            f.write(data)
        with open(self.manifest_path(channel) + ".sig", "wb") as f:
            f.write(sig)


def _b64(c):
    return base64.b64encode(bytes.fromhex(c)).decode().rstrip("=").replace("/", "_")


def delta_dir(frm, to):
    """libostree's deltas/ directory of FROM -> TO (its modified base64)."""
    f = _b64(frm)
    return "deltas/%s/%s-%s" % (f[:2], f[2:], _b64(to))


def full_delta_dir(to):
    """libostree's deltas/ directory of the delta from nothing to TO."""
    t = _b64(to)
    return "deltas/%s/%s" % (t[:2], t[2:])


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


# --------------------------------------------------------------------------
# lighttpd


class Lighttpd:
    """lighttpd -D serving DOCROOT on 127.0.0.1 with an access log that
    records the request line, status, body bytes sent and the Range header."""

    FORMAT = "%r|%>s|%b|%{Range}i"

    def __init__(self, docroot, workdir, name="lighttpd", tls=None, extra_conf=""):
        self.docroot = docroot
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        self.tls = tls  # path of a PEM with certificate + key, or None
        self.extra_conf = extra_conf
        self.proc = None
        self.port = None

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)

    def _conf(self):
        mods = ['"mod_accesslog"'] + (['"mod_openssl"'] if self.tls else [])
        lines = [
            'server.document-root = "%s"' % self.docroot,
            'server.bind = "127.0.0.1"',
            "server.port = %d" % self.port,
            "server.modules = (%s)" % ", ".join(mods),
            'server.errorlog = "%s"' % self.error_log,
            'accesslog.filename = "%s"' % self.access_log,
            'accesslog.format = "%s"' % self.FORMAT,
            'mimetype.assign = ("" => "application/octet-stream")',
            # As abdeploy-publish(8) asks: no stat cache across a channel switch.
            'server.stat-cache-engine = "disable"',
            "server.max-keep-alive-idle = 10",
        ]
        if self.tls:
            lines += ['ssl.engine = "enable"', 'ssl.pemfile = "%s"' % self.tls]
        return "\n".join(lines) + "\n" + self.extra_conf + "\n"

    def start(self, timeout=20):
        for _ in range(5):
            self.port = free_port()
            conf = os.path.join(self.dir, "lighttpd.conf")
            with open(conf, "w") as f:
                f.write(self._conf())
            run([LIGHTTPD, "-tt", "-f", conf])
            self.proc = subprocess.Popen([LIGHTTPD, "-D", "-f", conf], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         env=clean_env())
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise AssertionError("lighttpd did not start; see %s" % self.error_log)

    def _cycles(self):
        try:
            with open(self.error_log) as f:
                return f.read().count("logfiles cycled")
        except FileNotFoundError:
            return 0

    def flush(self, timeout=10):
        """lighttpd buffers its access log; SIGHUP writes it out."""
        before = self._cycles()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self._cycles() == before:
            assert time.monotonic() < deadline, "lighttpd did not cycle its logs"
            time.sleep(0.02)

    def entries(self):
        """Parsed access log: dicts with method, path, status, bytes, range."""
        self.flush()
        out = []
        if not os.path.exists(self.access_log):
            return out
        with open(self.access_log) as f:
            for line in f:
                parts = line.rstrip("\n").split("|")
                if len(parts) != 4:
                    continue
                req, status, size, rng = parts
                method, _, rest = req.partition(" ")
                path = rest.rsplit(" ", 1)[0]
                out.append({"method": method, "path": path, "status": int(status),
                            "bytes": 0 if size == "-" else int(size),
                            "range": None if rng == "-" else rng})
        return out

    def mark(self):
        return len(self.entries())

    def since(self, mark):
        return self.entries()[mark:]

    def stop(self):
        at.stop_process(self.proc)
        self.proc = None


def make_tls(workdir):
    """A CA made for this run and a server certificate for 127.0.0.1 signed
    by it.  Returns (ca.pem, server.pem with key)."""
    d = os.path.join(workdir, "tls")
    os.makedirs(d, exist_ok=True)
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, crt = (os.path.join(d, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(d, "server.ext")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=abdeploy update test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"])
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext])
    pem = os.path.join(d, "server.pem")
    with open(pem, "wb") as out:
        for p in (crt, key):
            with open(p, "rb") as f:
                out.write(f.read())
    return ca, pem


# --------------------------------------------------------------------------
# Devices (sysroots)


def tree_entries(root, prefix, identity=True):
    """abtest.tree_entries() where IDENTITY means inode and mtime of regular
    files only."""
    return at.tree_entries(root, prefix, identity="files" if identity else False)


class Device(at.AbdeployCli):
    """A throw-away sysroot and its kernel command line file; run(), ok(),
    expect() and popen() come from abtest.AbdeployCli."""

    def __init__(self, root, binary, home):
        self.root = root
        self.path = os.path.join(root, "sysroot")
        self.cmdline = os.path.join(root, "cmdline")
        self.binary = binary
        self.home = home

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def state_dir(self):
        return self.p("abdeploy", "state")

    @property
    def cache_dir(self):
        return self.p("abdeploy", "cache")

    @property
    def conf_path(self):
        return self.p("etc", "abdeploy", "abdeploy.conf")

    def set_booted(self, slot):
        with open(self.cmdline, "w") as f:
            f.write("root=LABEL=root ro abdeploy.slot=%s\n" % slot if slot else "")

    def configure(self, url, channel="stable", **keys):
        """Writes [update] of abdeploy.conf; KEYS with '_' for '-'."""
        lines = ["[update]", "url=" + url, "channel=" + channel]
        defaults = {"backoff_initial_ms": 50, "backoff_max_ms": 400}
        defaults.update(keys)
        for k, v in defaults.items():
            if v is not None:
                lines.append("%s=%s" % (k.replace("_", "-"), v))
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def set_machine_id(self, mid):
        os.makedirs(self.p("etc"), exist_ok=True)
        with open(self.p("etc", "machine-id"), "w") as f:
            f.write(mid + "\n")

    def env(self, extra=None):
        return clean_env(home=self.home, extra=dict({"ABDEPLOY_CMDLINE": self.cmdline},
                                                    **(extra or {})))

    def status(self):
        return json.loads(self.ok("status", "--json").stdout)

    def slot(self, name, st=None):
        return at.slot_status(st or self.status(), name)

    def check(self):
        r = self.run("check-update", "--json")
        assert r.returncode in (0, 5), r.describe()
        return r, json.loads(r.stdout)

    def read_state(self, name):
        return at.read_json(os.path.join(self.state_dir, name))

    def transaction(self):
        return self.read_state("transaction.json")

    def history(self):
        h = self.read_state("history.json")
        if isinstance(h, dict):
            return h.get("events", [])
        return h or []

    def refs(self):
        base = self.p("ostree", "repo", "refs", "heads")
        out = {}
        for dirpath, _, files in os.walk(base):
            for n in files:
                with open(os.path.join(dirpath, n)) as f:
                    out[os.path.relpath(os.path.join(dirpath, n), base)] = f.read().strip()
        return out

    def leftovers(self):
        """Half-built slots (.a.new, .b.new) under abdeploy/slots."""
        d = self.p("abdeploy", "slots")
        return sorted(n for n in os.listdir(d) if n.startswith("."))

    def snapshot(self, state_except=()):
        """Slots, kernels, boot pointer, refs, state files (but STATE_EXCEPT)
        and `status --json`."""
        snap = {}
        snap.update(tree_entries(self.p("abdeploy", "slots"), "slots"))
        snap.update(tree_entries(self.p("boot"), "boot"))
        state = tree_entries(self.state_dir, "state", identity=False)
        for k in list(state):
            if any(k == "state/" + n for n in state_except):
                del state[k]
        snap.update(state)
        snap["refs"] = tuple(sorted(self.refs().items()))
        status = self.status()
        if "transaction.json" in state_except:
            # status shows the transaction file, which is excluded above
            status.pop("transaction", None)
        if "update.json" in state_except:
            # what status reads from the manifest cache changes with the
            # accepted serial (update.json) when a new manifest is accepted
            status.pop("release", None)
        snap["status"] = json.dumps(status, sort_keys=True)
        return snap

    def fsck(self):
        at.ostree_fsck(self.p("ostree", "repo"), "SYSROOT/ostree/repo")


def compare_usr(slot_root, tree):
    """Files of TREE/usr that differ in SLOT_ROOT/usr (content and mode)."""
    problems = []
    a = tree_entries(os.path.join(slot_root, "usr"), "", identity=False)
    b = tree_entries(os.path.join(tree, "usr"), "", identity=False)
    for k in sorted(set(a) | set(b)):
        if k and a.get(k) != b.get(k):
            problems.append("%s: %r != %r" % (k, a.get(k), b.get(k)))
    return problems


class DeviceFactory:
    def __init__(self, root, binary, home):
        self.root = root
        self.binary = binary
        self.home = home
        self.made = []
        os.makedirs(root, exist_ok=True)

    def create(self, keyfiles):
        d = Device(tempfile.mkdtemp(prefix="dev-", dir=self.root), self.binary, self.home)
        os.makedirs(d.path)
        d.set_booted(None)
        d.ok("init", "--os=" + OS_NAME, "--bootloader=file")
        at.trust_keys(d.path, keyfiles)
        self.made.append(d)
        return d

    def clone(self, dev):
        d = Device(tempfile.mkdtemp(prefix="clone-", dir=self.root), self.binary, self.home)
        run(["cp", "-a", dev.path, d.path])
        shutil.copy(dev.cmdline, d.cmdline)
        self.made.append(d)
        return d

    def finish(self, fsck=True):
        failures = []
        for d in self.made:
            if fsck and os.path.isdir(d.p("ostree", "repo")):
                try:
                    d.fsck()
                except AssertionError as e:
                    failures.append("%s: %s" % (os.path.basename(d.root), e))
            rmtree(d.root)
        self.made = []
        assert not failures, "\n".join(failures)
