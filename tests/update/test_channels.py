"""A channel the repo does not publish (issue 16, point 4): the device says
"no channel C at URL" and lists the channels of the publisher's signed
channel index (abdeploy-manifest(5), CHANNEL INDEX); an index that is not
signed by a trusted key, or is malformed, is ignored."""

import json
import os

import updlib as ul
from hostile import Rule

INDEX = "abdeploy/channels/_index.json"


def channel_files(pub):
    d = os.path.join(pub.repo, "abdeploy", "channels")
    return sorted(n[:-5] for n in os.listdir(d) if n.endswith(".json") and n[0].isalnum())


def test_publisher_keeps_a_signed_index_of_every_channel(pub):
    path = os.path.join(pub.repo, INDEX)
    with open(path, "rb") as f:
        data = f.read()
    index = json.loads(data)
    assert index == {"format": 1, "channels": channel_files(pub)}, index
    assert "stable" in index["channels"] and "lts" in index["channels"]
    p = pub.gpg.verify(path, path + ".sig")
    assert p.returncode == 0, p


def test_missing_channel_lists_the_published_ones(device, lighttpd, pub):
    for url in (lighttpd.url, pub.repo):
        device.configure(url, channel="stabel")
        before = device.snapshot()
        r = device.expect(ul.EXIT_ERROR, "check-update")
        assert "No channel stabel at %s" % url in r.stderr, r.describe()
        assert "publishes " + ", ".join(channel_files(pub)) in r.stderr, r.describe()
        assert os.path.join(device.path, "etc/abdeploy/abdeploy.conf") in r.stderr, r.describe()
        assert device.snapshot() == before


def test_untrusted_or_malformed_index_is_ignored(device, hostile, pub):
    device.configure(hostile.url, channel="stabel")
    good = json.dumps({"format": 1, "channels": ["evil-channel"]}).encode()
    for data, key in ((good, "untrusted"), (b"{not json", "trusted"),
                      (json.dumps({"format": 1, "channels": ["../x"]}).encode(), "trusted")):
        hostile.set(INDEX, Rule(body=data))
        hostile.set(INDEX + ".sig", Rule(body=pub.gpg.sign_detached(data, getattr(pub.gpg, key))))
        r = device.expect(ul.EXIT_ERROR, "check-update")
        assert "No channel stabel at" in r.stderr, r.describe()
        assert "publishes" not in r.stderr and "evil-channel" not in r.stderr, r.describe()
    hostile.set(INDEX + ".sig", Rule(status=404))
    hostile.set(INDEX, Rule(body=good))
    r = device.expect(ul.EXIT_ERROR, "check-update")
    assert "No channel stabel at" in r.stderr and "evil-channel" not in r.stderr, r.describe()


def test_verified_manifest_is_kept_for_the_completion(device, lighttpd, pub):
    # issue 16, point 10: bash completion offers versions from this copy
    cache = os.path.join(device.path, "abdeploy", "cache", "manifest.json")
    device.configure(lighttpd.url)
    assert os.path.exists(cache), "update left no copy of the manifest"
    os.unlink(cache)
    device.expect(ul.EXIT_OK, "check-update")  # serial not new: the copy is made again
    with open(cache, "rb") as f:
        assert f.read() == pub.manifest_bytes("stable")
    assert os.stat(cache).st_mode & 0o777 == 0o644
    # a manifest that is refused is not kept
    os.unlink(cache)
    device.configure(lighttpd.url, channel="stabel")
    device.expect(ul.EXIT_ERROR, "check-update")
    assert not os.path.exists(cache)
