"""A publisher killed while it rewrites a channel (issue 11): devices keep
reading a whole channel, the old one, and the next publisher run goes on.
Real `abdeploy publish` with its crash points, lighttpd on 127.0.0.1 and a
real `abdeploy check-update` on a device."""

import os

import pytest

import updlib as ul


@pytest.mark.parametrize("point", ["publish:manifest", "publish:staged"])
def test_device_reads_the_old_channel_after_a_killed_publish(device, pub, lighttpd, point):
    channel = "crash-" + point.split(":")[1]
    pub.release(channel, "1.0")
    device.configure(lighttpd.url, channel=channel)
    r, c = device.check()
    serial = c["serial"]
    assert c["offered_version"] is None and c["update_available"] is False, c
    # Killed between the manifest and its signature (or before the switch).
    cmd = [pub.binary, "publish", "release", "--channel=" + channel, "--version=1.1",
           "--repo=" + pub.repo, "--gpg-sign=" + pub.gpg.trusted,
           "--gpg-homedir=" + pub.gpg.homedir]
    p = ul.run(cmd, env=dict(pub.gpg.env, ABDEPLOY_CRASH_AT=point), check=False, timeout=300)
    assert p.returncode == -9, p.stderr.decode()
    # Every device still accepts the channel: the old state, whole.
    r, c = device.check()
    assert r.returncode == ul.EXIT_NOTHING, r.describe()
    assert c["serial"] == serial and c["offered_version"] is None, c
    # The next run publishes; the device sees it.
    pub.release(channel, "1.1")
    r, c = device.check()
    assert r.returncode == ul.EXIT_OK and c["offered_version"] == "1.1", r.describe()
    assert c["serial"] == serial + 1, c
    leftovers = [n for n in os.listdir(os.path.join(pub.repo, "abdeploy"))
                 if n.startswith(".channels")]
    assert leftovers == [], leftovers
