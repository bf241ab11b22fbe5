"""Shared helpers of abdeploy's Python test suites.

The suite modules (tests/scenario/scenariolib.py, tests/update/updlib.py,
tests/health/healthlib.py, ...) import this module and build their own
fixtures on it:

    sys.path.insert(0, "<source tree>/tests/lib")
    import abtest as at

What is here drives real programs only: gpg with keys made by the test,
the ostree CLI, python3 http.server on 127.0.0.1 and the built abdeploy
binary.  Python 3 standard library only.
"""

import dataclasses
import hashlib
import json
import os
import re
import selectors
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request

LIBDIR = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(LIBDIR))

# Exit codes of the command contract (abdeploy(8)).
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_VERIFY = 3
EXIT_LOCKED = 4
EXIT_NOTHING = 5
EXIT_REFUSED = 6    # refused by policy: the A/B invariant (issue 11)

DEFAULT_TIMEOUT = 120
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

SLOTS = ("a", "b")
# The boot pointer variables (abdeploy-pointer(5)).
POINTER_VARS = ("ABDEPLOY_PRIMARY", "ABDEPLOY_A_STATE", "ABDEPLOY_A_TRIES",
                "ABDEPLOY_B_STATE", "ABDEPLOY_B_TRIES")


def other(slot):
    """The slot that is not SLOT."""
    return "b" if slot == "a" else "a"


# --------------------------------------------------------------------------
# Child processes

# Variables a child never inherits: they would point gpg, ostree, curl or
# abdeploy at the tester's own files instead of the test's.
ENV_DROP = ("GNUPGHOME", "OSTREE_REPO", "OSTREE_SYSROOT", "CURL_CA_BUNDLE",
            "SSL_CERT_FILE", "SSL_CERT_DIR")


def clean_env(home=None, extra=None):
    """Environment for child processes: this process's environment without
    proxies (every server of the tests is on 127.0.0.1), without ABDEPLOY_*
    and the variables of ENV_DROP, with C messages (LC_ALL=C.UTF-8,
    LANGUAGE=C); HOME=HOME when given, then EXTRA on top."""
    env = {}
    for k, v in os.environ.items():
        if k.lower().endswith("_proxy") or k.startswith("ABDEPLOY_") or k in ENV_DROP:
            continue
        env[k] = v
    env["LC_ALL"] = "C.UTF-8"
    env["LANGUAGE"] = "C"
    if home is not None:
        env["HOME"] = home
    if extra:
        env.update(extra)
    return env


def run(cmd, env=None, *, timeout=DEFAULT_TIMEOUT, check=True, input=None, cwd=None):
    """Run a helper program (gpg, ostree, cp, ...) with its output captured;
    returns the subprocess.CompletedProcess (bytes).

    ENV defaults to clean_env(); stdin is /dev/null unless INPUT (bytes) is
    given.  With CHECK, a non-zero exit raises AssertionError showing the
    command and its output."""
    cmd = [str(c) for c in cmd]
    p = subprocess.run(cmd, env=env or clean_env(), cwd=cwd, input=input,
                       stdin=subprocess.DEVNULL if input is None else None,
                       capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("command failed (%d): %s\nstdout:\n%s\nstderr:\n%s" % (
            p.returncode, " ".join(cmd), p.stdout.decode(errors="replace"),
            p.stderr.decode(errors="replace")))
    return p


def rmtree(path):
    """Remove PATH (a tree, a file or a symlink) if it exists.  When a tree
    does not go, its immutable bits are cleared (chattr -R -i) and what can
    be removed then is removed."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    try:
        shutil.rmtree(path)
    except OSError:
        subprocess.run(["chattr", "-R", "-i", path], capture_output=True)
        shutil.rmtree(path, ignore_errors=True)


def keep_tmp():
    """True when ABDEPLOY_TEST_KEEP_TMP asks to keep the work directories."""
    return bool(os.environ.get("ABDEPLOY_TEST_KEEP_TMP"))


def safe_name(name, limit=60):
    """NAME (e.g. a pytest node name) usable as a directory name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:limit]


def find_tool(name):
    """Path of the program NAME, searched in PATH and then in the sbin and
    bin directories (which PATH of an unprivileged user may lack); None when
    it is not installed."""
    path = shutil.which(name)
    if path:
        return path
    for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        cand = os.path.join(d, name)
        if os.access(cand, os.X_OK):
            return cand
    return None


def poll(pred, timeout, interval=0.02):
    """Call PRED until it returns something true (returned) or TIMEOUT
    seconds have passed (returns PRED's last value)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def wait_for(pred, timeout, what, interval=0.02):
    """Like poll(), but a timeout raises AssertionError naming WHAT."""
    v = poll(pred, timeout, interval)
    if not v:
        raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
    return v


def sha256_file(path):
    """Hex SHA-256 of the file at PATH."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def stop_process(proc, timeout=10):
    """Ends the server process PROC (if any): SIGTERM, then SIGKILL after
    TIMEOUT seconds; closes its pipes."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    for pipe in (proc.stdout, proc.stderr):
        if pipe:
            pipe.close()


def damage(path, n=64):
    """Flips N bytes in the middle of the file at PATH, in place (the same
    inode: every hardlink of it sees the damage)."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        mid = len(data) // 2
        for i in range(mid, min(mid + n, len(data))):
            data[i] ^= 0xFF
        f.seek(0)
        f.write(data)


def read_json(path, missing=None):
    """The JSON document in PATH, or MISSING when the file does not exist."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return missing


# --------------------------------------------------------------------------
# The abdeploy binary


class MissingBinary(Exception):
    """The binary under test is not there (a fixture turns this into a
    pytest failure)."""


def abdeploy_binary(srcdir=None):
    """Path of the binary under test: $ABDEPLOY_BIN, else build/src/abdeploy
    of the source tree (SRCDIR, default this one)."""
    return os.environ.get("ABDEPLOY_BIN") or os.path.join(srcdir or SRC_ROOT, "build", "src",
                                                          "abdeploy")


def private_binary(workdir, srcdir=None):
    """Copy the binary under test to WORKDIR/bin/abdeploy and return that
    path: a rebuild during the run cannot swap the binary under the tests.
    Raises MissingBinary when there is nothing to copy."""
    path = abdeploy_binary(srcdir)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise MissingBinary("abdeploy binary not found at %s: build it or set ABDEPLOY_BIN"
                            % path)
    copy = os.path.join(workdir, "bin", "abdeploy")
    os.makedirs(os.path.dirname(copy), exist_ok=True)
    shutil.copy2(path, copy)
    return copy


@dataclasses.dataclass
class Result:
    """One run of the abdeploy binary: argv, exit code, decoded output and
    the wall time it took."""
    args: list
    returncode: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def output(self):
        return self.stdout + self.stderr

    def describe(self):
        return "$ %s\n-> exit %d after %.2fs\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(self.args), self.returncode, self.elapsed,
            self.stdout.rstrip(), self.stderr.rstrip())


class AbdeployCli:
    """Mixin for a sysroot under test: runs `abdeploy --sysroot=PATH ...`.

    The class provides self.binary, self.path (the sysroot) and
    self.env(extra=None), the environment of every run."""

    def cmd(self, *args):
        return [self.binary, "--sysroot=" + self.path] + [str(a) for a in args]

    def run(self, *args, env=None, timeout=DEFAULT_TIMEOUT):
        """Run abdeploy with ARGS (stdin /dev/null; ENV added to self.env());
        returns a Result.  A timeout raises AssertionError with the output so
        far."""
        cmd = self.cmd(*args)
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, env=self.env(env), capture_output=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("timed out after %ss: %s\nstdout:\n%s\nstderr:\n%s" % (
                timeout, " ".join(cmd), (e.stdout or b"").decode(errors="replace"),
                (e.stderr or b"").decode(errors="replace")))
        return Result(cmd, p.returncode, p.stdout.decode(errors="replace"),
                      p.stderr.decode(errors="replace"), time.monotonic() - t0)

    def popen(self, *args, env=None):
        """Start abdeploy with ARGS in the background (stdout, stderr piped)."""
        return subprocess.Popen(self.cmd(*args), env=self.env(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def ok(self, *args, **kw):
        """run(), asserting exit 0."""
        r = self.run(*args, **kw)
        assert r.returncode == 0, r.describe()
        return r

    def expect(self, code, *args, **kw):
        """run(), asserting exit CODE."""
        r = self.run(*args, **kw)
        assert r.returncode == code, "expected exit %d\n%s" % (code, r.describe())
        return r


def slot_status(st, name):
    """The entry of slot NAME in `status --json` output ST."""
    return {s["name"]: s for s in st["slots"]}[name]


def trusted_keys_dir(sysroot):
    """SYSROOT/etc/abdeploy/trusted.gpg.d, the keys abdeploy trusts."""
    return os.path.join(sysroot, "etc", "abdeploy", "trusted.gpg.d")


def trust_keys(sysroot, keyfiles):
    """Copy exported public keys (paths) into the sysroot's trusted.gpg.d
    under their own names; returns that directory."""
    d = trusted_keys_dir(sysroot)
    os.makedirs(d, exist_ok=True)
    for k in keyfiles:
        shutil.copy(k, os.path.join(d, os.path.basename(k)))
    return d


# --------------------------------------------------------------------------
# GPG


class GpgHome:
    """A GNUPGHOME made by the test (mode 0700) with keys generated in it.

    .env is the environment for gpg and for programs that sign with these
    keys (ostree commit --gpg-sign, abdeploy publish): clean_env() with
    GNUPGHOME, and HOME when given."""

    def __init__(self, homedir, home=None):
        self.homedir = homedir
        os.makedirs(homedir, mode=0o700, exist_ok=True)
        os.chmod(homedir, 0o700)
        self.env = clean_env(home=home, extra={"GNUPGHOME": homedir})

    def generate(self, name, email, algo="rsa2048", fallback=None):
        """Make an unprotected signing key for "NAME <EMAIL>" that never
        expires; returns its fingerprint.  ALGO is gpg's --quick-gen-key
        algorithm (rsa2048, ed25519, ...); when gpg cannot make it and
        FALLBACK is given, FALLBACK is used instead."""
        uid = "%s <%s>" % (name, email)
        cmd = ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid]
        p = run(cmd + [algo, "sign", "never"], env=self.env, check=fallback is None,
                timeout=300)
        if p.returncode != 0:
            run(cmd + [fallback, "sign", "never"], env=self.env, timeout=300)
        return self.fingerprint(email)

    def fingerprint(self, who):
        """Fingerprint of the (first) key whose user id contains WHO."""
        out = run(["gpg", "--batch", "--with-colons", "--list-keys", who],
                  env=self.env).stdout.decode()
        for line in out.splitlines():
            if line.startswith("fpr:"):
                return line.split(":")[9]
        raise AssertionError("no fingerprint for %s in:\n%s" % (who, out))

    def export(self, fpr, dest, armor=False):
        """Write the public key FPR to DEST (binary, or ASCII-armored);
        returns DEST."""
        cmd = ["gpg", "--batch", "--export"] + (["--armor"] if armor else [])
        data = run(cmd + [fpr], env=self.env).stdout
        assert data, "gpg exported nothing for %s" % fpr
        with open(dest, "wb") as f:
            f.write(data)
        return dest

    def import_keys(self, path):
        """Import the keys in the file PATH."""
        run(["gpg", "--batch", "--import", path], env=self.env)

    def sign_detached(self, data, key):
        """Binary detached signature of the bytes DATA by KEY."""
        return run(["gpg", "--batch", "--yes", "--local-user", key, "--detach-sign",
                    "--output", "-"], env=self.env, input=data).stdout

    def verify(self, data_path, sig_path):
        """gpg --verify of a detached signature with this home's keys; the
        CompletedProcess (not checked)."""
        return run(["gpg", "--batch", "--verify", sig_path, data_path], env=self.env,
                   check=False)

    def close(self):
        """Stop the gpg-agent of this home."""
        subprocess.run(["gpgconf", "--homedir", self.homedir, "--kill", "all"], env=self.env,
                       capture_output=True)


# --------------------------------------------------------------------------
# Image trees and commits


def blob(tag, size):
    """SIZE bytes of deterministic content that compresses poorly (like
    real binaries): SHA-256 of "TAG:0", "TAG:1", ..."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(("%s:%d" % (tag, counter)).encode()).digest()
        counter += 1
    return bytes(out[:size])


def kernel_files(kver, vmlinuz, initramfs=None):
    """The spec entries (see write_tree) of a fake kernel KVER at the place
    abdeploy takes it from: usr/lib/modules/KVER/vmlinuz and, when
    INITRAMFS is given, initramfs.img next to it."""
    spec = {"usr/lib/modules/%s/vmlinuz" % kver: vmlinuz}
    if initramfs is not None:
        spec["usr/lib/modules/%s/initramfs.img" % kver] = initramfs
    return spec


def write_tree(root, spec, replace=False):
    """Create the files of SPEC under ROOT; returns ROOT.

    SPEC maps relative paths to bytes or str (a regular file, mode 0644),
    (content, mode), ("link", target) for a symlink or ("dir",) for an
    empty directory.  With REPLACE, an existing ROOT is removed first."""
    if replace:
        rmtree(root)
    for rel, value in sorted(spec.items()):
        path = os.path.join(root, rel)
        if isinstance(value, tuple) and value[0] == "dir":
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(value, tuple) and value[0] == "link":
            os.symlink(value[1], path)
            continue
        mode = 0o644
        if isinstance(value, tuple):
            value, mode = value
        if isinstance(value, str):
            value = value.encode()
        with open(path, "wb") as f:
            f.write(value)
        os.chmod(path, mode)
    return root


def ostree_init(repo, mode="archive"):
    """`ostree init` of a new repository REPO (its parent directories are
    made; archive mode is what publishers serve); returns REPO."""
    os.makedirs(os.path.dirname(repo), exist_ok=True)
    run(["ostree", "init", "--mode=" + mode, "--repo=" + repo])
    return repo


def ostree_commit(repo, ref, tree, version, subject, *, key=None, gpg=None, args=(),
                  env=None):
    """`ostree commit` of the directory TREE to REF with the metadata
    version=VERSION, signed by KEY of the GpgHome GPG when KEY is given;
    ARGS are more options.  Returns the commit checksum."""
    cmd = ["ostree", "--repo=" + repo, "commit", "-b", ref, "--tree=dir=" + tree,
           "--add-metadata-string=version=" + version, "--subject=" + subject] + list(args)
    if key:
        cmd += ["--gpg-sign=" + key, "--gpg-homedir=" + gpg.homedir]
    out = run(cmd, env=env or (gpg.env if gpg else None)).stdout.decode().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", out), out
    return out


def ostree_fsck(repo, name=None):
    """`ostree fsck` of REPO; a failure raises AssertionError naming the
    repo as NAME (default: its path) with fsck's output."""
    p = run(["ostree", "fsck", "--repo=" + repo], check=False, timeout=300)
    assert p.returncode == 0, "ostree fsck --repo=%s failed:\n%s%s" % (
        name or repo, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


# --------------------------------------------------------------------------
# Servers on 127.0.0.1


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpServer:
    """python3 -m http.server serving DIRECTORY on 127.0.0.1, on a port the
    kernel picks; its log goes to LOGFILE (or nowhere).

    start() returns once GET READY_PATH answers 200, and returns self."""

    def __init__(self, directory, logfile=None, ready_path="/config"):
        self.directory = directory
        self.logfile = logfile
        self.ready_path = ready_path
        self.proc = None
        self.port = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=20):
        log = open(self.logfile, "ab") if self.logfile else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [PYTHON, "-u", "-m", "http.server", "--bind", "127.0.0.1",
             "--directory", self.directory, "0"],
            stdout=subprocess.PIPE, stderr=log, env=clean_env(), cwd=self.directory)
        if self.logfile:
            log.close()
        deadline = time.monotonic() + timeout
        try:
            sel = selectors.DefaultSelector()
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            buf = b""
            while self.port is None:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError("http.server did not start (output %r)" % buf)
                if sel.select(timeout=left):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        continue
                    buf += chunk
                    m = re.search(rb"port (\d+)", buf)
                    if m:
                        self.port = int(m.group(1))
            sel.close()
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            while True:
                try:
                    with opener.open(self.url + self.ready_path, timeout=2) as r:
                        if r.status == 200:
                            return self
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError("http.server on port %s not ready" % self.port)
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        stop_process(self.proc, timeout=5)
        self.proc = None


# --------------------------------------------------------------------------
# Snapshots of on-disk state


def tree_entries(root, prefix, *, identity=True):
    """Map of PREFIX + relative path -> description of ROOT and of every
    entry under it ({PREFIX: ("missing",)} when ROOT does not exist).

    A description is (mode string, ...): size and SHA-256 for regular
    files, the target for symlinks.  IDENTITY adds what catches a replaced
    or rewritten entry:
      True     inode and mtime of files, symlinks and other non-directories,
               the inode of directories (their mtimes change with temporary
               files of others);
      "files"  inode and mtime of regular files only;
      False    nothing.
    Link counts and ctimes are always left out: hardlinks to shared repo
    objects legitimately change them."""
    out = {}
    if not os.path.lexists(root):
        out[prefix] = ("missing",)
        return out

    def describe(path):
        st = os.lstat(path)
        d = [stat.filemode(st.st_mode)]
        if stat.S_ISDIR(st.st_mode):
            if identity is True:
                d.append(st.st_ino)
            return tuple(d)
        if identity is True or (identity == "files" and stat.S_ISREG(st.st_mode)):
            d += [st.st_ino, st.st_mtime_ns]
        if stat.S_ISREG(st.st_mode):
            d += [st.st_size, sha256_file(path)]
        elif stat.S_ISLNK(st.st_mode):
            d.append(os.readlink(path))
        return tuple(d)

    out[prefix] = describe(root)
    if os.path.isdir(root) and not os.path.islink(root):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                p = os.path.join(dirpath, name)
                out[prefix + "/" + os.path.relpath(p, root)] = describe(p)
    return out


def diff_snapshots(before, after, limit=30):
    """The entries that differ between two snapshot dicts, one per line
    ("  key: before -> after"), at most LIMIT of them."""
    lines = ["  %s: %r -> %r" % (k, before.get(k), after.get(k))
             for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    if len(lines) > limit:
        lines = lines[:limit] + ["  ... %d more" % (len(lines) - limit)]
    return "\n".join(lines)
