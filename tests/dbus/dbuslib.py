"""Helpers of the D-Bus suite: a private dbus-daemon, a real polkitd on it,
the abdeploy daemon under test, and a GDBus client (python3-gi).

Everything is real and bounded: the bus is a dbus-daemon of its own on a
unix socket in a temporary directory (a session-like configuration that
lets every user connect), the abdeploy daemon finds it through
DBUS_SYSTEM_BUS_ADDRESS (GDBus honours it), and polkitd is Debian's
/usr/lib/polkit-1/polkitd, run as root in a mount namespace of its own
where data/polkit/org.abdeploy1.policy is bind-mounted over its actions
directory.  Every process started here is stopped by its owner (stop()).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

_HERE = os.path.dirname(os.path.abspath(__file__))
_TESTS = os.path.dirname(_HERE)
for _d in (os.path.join(_TESTS, "lib"), os.path.join(_TESTS, "scenario"),
           os.path.join(_TESTS, "update")):
    if _d not in sys.path:
        sys.path.insert(0, _d)

import abtest as at  # noqa: E402

import gi  # noqa: E402
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

BUS_NAME = "org.abdeploy1"
PATH = "/org/abdeploy1"
IFACE = "org.abdeploy1.Manager"
SRC_ROOT = at.SRC_ROOT
XML_PATH = os.path.join(SRC_ROOT, "data", "dbus", "org.abdeploy1.Manager.xml")
POLICY_PATH = os.path.join(SRC_ROOT, "data", "polkit", "org.abdeploy1.policy")
BUS_POLICY_PATH = os.path.join(SRC_ROOT, "data", "dbus", "org.abdeploy1.conf")
SERVICE_PATH = os.path.join(SRC_ROOT, "data", "dbus", "org.abdeploy1.service.in")
POLKITD = "/usr/lib/polkit-1/polkitd"
NOBODY = 65534

# Named errors, by the CLI exit code they stand for (abdeploy-dbus(5)).
ERRORS = {
    1: "org.abdeploy1.Error.Failed",
    2: "org.abdeploy1.Error.Usage",
    3: "org.abdeploy1.Error.SignatureRefused",
    4: "org.abdeploy1.Error.Locked",
    5: "org.abdeploy1.Error.NothingToDo",
    6: "org.abdeploy1.Error.InvariantRefused",
}
NOT_AUTHORIZED = "org.abdeploy1.Error.NotAuthorized"

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%(socket)s</listen>
  <auth>EXTERNAL</auth>
  <servicedir>%(servicedir)s</servicedir>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
%(include)s</busconfig>
"""


def wait_for(pred, timeout, what, interval=0.02):
    return at.wait_for(pred, timeout, what, interval)


class Bus:
    """A private dbus-daemon in DIRECTORY (made readable by every user, so
    that an unprivileged caller can connect)."""

    def __init__(self, include=()):
        # its own directory, outside the suite's private (0700) work
        # directory: an unprivileged caller must reach the socket
        self.dir = tempfile.mkdtemp(prefix="abdeploy-bus-")
        os.chmod(self.dir, 0o755)
        directory = self.dir
        self.socket = os.path.join(directory, "bus")
        self.servicedir = os.path.join(directory, "services")
        os.makedirs(self.servicedir, exist_ok=True)
        self.config = os.path.join(directory, "bus.conf")
        with open(self.config, "w") as f:
            f.write(BUS_CONFIG % {"socket": self.socket, "servicedir": self.servicedir,
                                  "include": "".join("  <include>%s</include>\n" % p
                                                     for p in include)})
        self.proc = None

    @property
    def address(self):
        return "unix:path=" + self.socket

    def start(self):
        env = at.clean_env(extra={"DBUS_SYSTEM_BUS_ADDRESS": self.address})
        self.log = open(os.path.join(self.dir, "dbus-daemon.log"), "ab")
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file=" + self.config, "--nofork",
                                      "--nopidfile"], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log, env=env)
        wait_for(lambda: self._accepts() or self.proc.poll() is not None, 20,
                 "dbus-daemon to listen")
        assert self.proc.poll() is None, "dbus-daemon exited: see %s" % self.dir
        return self

    def _accepts(self):
        """The socket exists and accepts connections (dbus-daemon binds it
        before it listens)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(self.socket)
                return True
            except OSError:
                return False

    def stop(self):
        at.stop_process(self.proc)
        self.proc = None
        self.log.close()
        if not at.keep_tmp():
            at.rmtree(self.dir)


class Polkit:
    """polkitd on BUS, with abdeploy's actions only (the policy file of the
    source tree bind-mounted over /usr/share/polkit-1/actions in a mount
    namespace that only polkitd sees)."""

    def __init__(self, bus, directory, rules=None):
        self.bus = bus
        self.actions = os.path.join(directory, "polkit-actions")
        os.makedirs(self.actions, exist_ok=True)
        shutil.copy(POLICY_PATH, self.actions)
        # RULES (JavaScript) replace the system's /etc/polkit-1/rules.d
        self.rules = None
        if rules is not None:
            self.rules = os.path.join(directory, "polkit-rules")
            os.makedirs(self.rules, exist_ok=True)
            with open(os.path.join(self.rules, "50-test.rules"), "w") as f:
                f.write(rules)
        self.proc = None

    @staticmethod
    def unavailable():
        """Why polkitd cannot run here, or None."""
        if os.geteuid() != 0:
            return "polkitd must run as root (it owns org.freedesktop.PolicyKit1)"
        if not os.access(POLKITD, os.X_OK):
            return "%s is not installed (Debian package polkitd)" % POLKITD
        if at.find_tool("unshare") is None:
            return "unshare (util-linux) is not installed"
        return None

    def start(self):
        script = "mount --bind %s /usr/share/polkit-1/actions && " % self.actions
        if self.rules:
            script += "mount --bind %s /etc/polkit-1/rules.d && " % self.rules
        script += "exec %s --no-debug" % POLKITD
        env = at.clean_env(extra={"DBUS_SYSTEM_BUS_ADDRESS": self.bus.address})
        self.log = open(os.path.join(self.bus.dir, "polkitd.log"), "ab")
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                      script], stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=env)
        client = Client(self.bus.address)
        try:
            wait_for(lambda: client.has_owner("org.freedesktop.PolicyKit1")
                     or self.proc.poll() is not None, 20, "polkitd to own its name")
        finally:
            client.close()
        assert self.proc.poll() is None, "polkitd exited, see %s/polkitd.log" % self.bus.dir
        return self

    def stop(self):
        at.stop_process(self.proc)
        self.proc = None
        self.log.close()


class Daemon:
    """`abdeploy --sysroot=... daemon` of the Sysroot SR on BUS."""

    def __init__(self, sr, bus, idle=0, env=None):
        self.sr = sr
        self.bus = bus
        self.idle = idle
        self.extra_env = env or {}
        self.proc = None
        self.logpath = os.path.join(os.path.dirname(sr.path), "daemon.log")

    def start(self, wait=True):
        env = self.sr.env(dict({"DBUS_SYSTEM_BUS_ADDRESS": self.bus.address}, **self.extra_env))
        log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.sr.cmd("daemon", "--idle-timeout=%d" % self.idle),
                                     env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        if wait:
            client = Client(self.bus.address)
            try:
                wait_for(lambda: client.has_owner(BUS_NAME) or self.proc.poll() is not None, 20,
                         "the daemon to own %s" % BUS_NAME)
            finally:
                client.close()
            assert self.proc.poll() is None, "the daemon exited:\n" + self.log()
        return self

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        at.stop_process(self.proc)


class RemoteError(Exception):
    def __init__(self, name, message):
        super().__init__("%s: %s" % (name, message))
        self.name = name
        self.message = message


class Client:
    """A GDBus connection to the bus at ADDRESS; records Completed and
    PropertiesChanged of the daemon in .events, in order."""

    def __init__(self, address):
        self.ctx = GLib.MainContext.default()
        flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
                 | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
        self.conn = Gio.DBusConnection.new_for_address_sync(address, flags, None, None)
        self.events = []
        self.subs = [
            self.conn.signal_subscribe(None, IFACE, "Completed", PATH, None,
                                       Gio.DBusSignalFlags.NONE, self._on_signal),
            self.conn.signal_subscribe(None, "org.freedesktop.DBus.Properties",
                                       "PropertiesChanged", PATH, None,
                                       Gio.DBusSignalFlags.NONE, self._on_signal),
        ]

    def _on_signal(self, conn, sender, path, iface, name, params):
        self.events.append((name, params.unpack()))

    def close(self):
        for s in self.subs:
            self.conn.signal_unsubscribe(s)
        self.conn.close_sync(None)

    def pump(self, seconds=0.0):
        """Dispatch what arrived, for SECONDS at least."""
        end = time.monotonic() + seconds
        while True:
            while self.ctx.iteration(False):
                pass
            if time.monotonic() >= end:
                return
            time.sleep(0.01)

    def raw_call(self, dest, path, iface, method, sig=None, args=(), timeout=60):
        params = GLib.Variant(sig, tuple(args)) if sig else None
        try:
            r = self.conn.call_sync(dest, path, iface, method, params, None,
                                    Gio.DBusCallFlags.NONE, int(timeout * 1000), None)
        except GLib.Error as e:
            name = Gio.DBusError.get_remote_error(e)
            if name is None:
                raise
            Gio.DBusError.strip_remote_error(e)
            raise RemoteError(name, e.message)
        return r.unpack()

    def call(self, method, sig=None, *args, timeout=60):
        return self.raw_call(BUS_NAME, PATH, IFACE, method, sig, args, timeout)

    def has_owner(self, name):
        return self.raw_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                             "org.freedesktop.DBus", "NameHasOwner", "(s)", (name,))[0]

    def props(self):
        return self.raw_call(BUS_NAME, PATH, "org.freedesktop.DBus.Properties", "GetAll",
                             "(s)", (IFACE,))[0]

    def introspect(self):
        return self.raw_call(BUS_NAME, PATH, "org.freedesktop.DBus.Introspectable",
                             "Introspect")[0]

    def completed(self):
        return [e[1] for e in self.events if e[0] == "Completed"]

    def changed(self, prop):
        """Every value PROP was given in a PropertiesChanged, in order."""
        return [e[1][1][prop] for e in self.events
                if e[0] == "PropertiesChanged" and prop in e[1][1]]

    def wait_completed(self, timeout=120):
        """The first Completed (operation, result, message) not yet taken."""
        wait_for(lambda: (self.pump(), self.completed())[1], timeout, "Completed")
        for i, e in enumerate(self.events):
            if e[0] == "Completed":
                self.events[i] = ("Completed-taken", e[1])
                return e[1]

    def run_op(self, method, sig, *args, timeout=120):
        """Start a long operation and wait for its Completed."""
        assert self.call(method, sig, *args) == ()
        return self.wait_completed(timeout)


def call_as(uid, address, method, sig=None, args=(), timeout=60):
    """Call METHOD in a child process whose uids and gids are all UID
    (setpriv); returns {"result": ...} or {"error": NAME, "message": ...}."""
    cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
           at.PYTHON, os.path.join(_HERE, "call_as.py"), address, method, sig or "",
           json.dumps(list(args))]
    p = at.run(cmd, timeout=timeout, env=at.clean_env(extra={"HOME": "/"}), check=False)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return json.loads(p.stdout)


def interface_of(xml_text):
    """{"methods": {name: (in sig, out sig)}, "properties": {name: (type,
    access)}, "signals": {name: sig}} of org.abdeploy1.Manager in XML_TEXT."""
    root = ET.fromstring(xml_text)
    iface = next(i for i in root.iter("interface") if i.get("name") == IFACE)

    def sig(el, direction):
        return "".join(a.get("type") for a in el.findall("arg")
                       if (a.get("direction") or "in") == direction)
    return {
        "methods": {m.get("name"): (sig(m, "in"), sig(m, "out"))
                    for m in iface.findall("method")},
        "properties": {p.get("name"): (p.get("type"), p.get("access"))
                       for p in iface.findall("property")},
        "signals": {s.get("name"): "".join(a.get("type") for a in s.findall("arg"))
                    for s in iface.findall("signal")},
    }


def strip_nulls(value):
    """A JSON value as the daemon sends it: null members left out (D-Bus
    has no null)."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value if v is not None]
    return value
