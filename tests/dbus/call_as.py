"""Child of dbuslib.call_as(): one call to org.abdeploy1 (or, METHOD
"@own", RequestName of org.abdeploy1) as whoever runs it; prints {"result": ...} or {"error": NAME, "message": ...} as JSON.
argv: ADDRESS METHOD SIGNATURE ARGS-AS-JSON."""

import json
import sys

import gi
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402


def main():
    address, method, sig, args = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    flags = (Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
             | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION)
    conn = Gio.DBusConnection.new_for_address_sync(address, flags, None, None)
    params = GLib.Variant(sig, tuple(args)) if sig else None
    target = ("org.abdeploy1", "/org/abdeploy1", "org.abdeploy1.Manager", method)
    if method == "@own":  # try to own the daemon's name
        target = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                  "RequestName")
        params = GLib.Variant("(su)", ("org.abdeploy1", 4))
    try:
        r = conn.call_sync(*target, params, None, Gio.DBusCallFlags.NONE, 60000, None)
        out = {"result": r.unpack()}
    except GLib.Error as e:
        name = Gio.DBusError.get_remote_error(e)
        Gio.DBusError.strip_remote_error(e)
        out = {"error": name, "message": e.message}
    print(json.dumps(out))


main()
