"""The size index file of a commit (issue 18): abdeploy/sizes/COMMIT.sizes,
listed in the signed manifest with its size and SHA-256.  An update
without a delta fetches it first and bounds the object pull by it; a
mismatch is refused before the file is parsed, a missing one leaves the
configured caps, a signed index that understates the sizes stops the pull
at the tightened cap, and a commit of an older publisher (index inside the
commit) still updates."""

import hashlib

import pytest

import updlib as ul
from hostile import Rule
import sizeindex  # tests/lib

SNAP_EXCEPT = ("transaction.json", "history.json", "update.json")


def index_path(pub, version):
    return sizeindex.path(pub.commits[version])


def index_bytes(pub, version):
    with open(ul.os.path.join(pub.repo, index_path(pub, version)), "rb") as f:
        return f.read()


def object_gets(server):
    return [e for e in server.requests() if e["path"].startswith(("/objects/", "/deltas/"))]


def test_manifest_lists_the_index(pub):
    data = index_bytes(pub, "1.4")
    assert pub.release_of("nodelta", "1.4")["size_index"] == {
        "path": index_path(pub, "1.4"), "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest()}
    entries = sizeindex.parse(data)
    assert entries and all(len(e[0]) == 64 and e[1] in (1, 2, 3) for e in entries), entries


def test_corrupted_index_is_refused_before_it_is_parsed(device, hostile, pub):
    """The server's index does not match the signed SHA-256 (same length,
    one byte changed): refused (exit 3), no object fetched."""
    data = bytearray(index_bytes(pub, "1.4"))
    data[40] ^= 0xff
    hostile.set(index_path(pub, "1.4"), Rule(body=bytes(data)))
    device.configure(hostile.url, channel="nodelta")
    before = device.snapshot(state_except=SNAP_EXCEPT)
    r = device.expect(ul.EXIT_VERIFY, "update")
    assert "Size index %s does not match the manifest" % index_path(pub, "1.4") in r.stderr, \
        r.describe()
    assert object_gets(hostile) == [], object_gets(hostile)
    assert device.snapshot(state_except=SNAP_EXCEPT) == before


def test_missing_index_updates_with_the_configured_caps(device, hostile, pub):
    """A server without the index (404): a warning, then the object pull
    bounded by the configured caps, which are enough here."""
    hostile.set(index_path(pub, "1.4"), Rule(status=404))
    device.configure(hostile.url, channel="nodelta")
    r = device.ok("update")
    assert "no size index of 1.4" in r.stderr and "configured caps" in r.stderr, r.describe()
    assert hostile.requests(index_path(pub, "1.4")), "the index was not asked for"
    assert device.slot("b")["version"] == "1.4"


@pytest.fixture
def empty_device(devices, keyfiles):
    """A sysroot after `abdeploy init`: no release installed, an empty repo."""
    d = devices.create([keyfiles["trusted"]])
    d.set_machine_id("0123456789abcdef0123456789abcdef")
    return d


def objects_of_16(hostile, pub, index):
    """Channel big served so that an empty device pulls 1.6 object by object
    (its image packs and full delta missing: 404) with INDEX as 1.6's size
    index, listed in a manifest signed with the trusted key."""
    fd = pub.release_of("big", "1.6")["full_delta"]
    hostile.set_prefix(ul.os.path.dirname(fd["files"][0]["path"]), Rule(status=404))
    hostile.set_prefix("abdeploy/packs/", Rule(status=404))
    hostile.set(index_path(pub, "1.6"), Rule(body=index))

    def listed(m):
        for r in m["releases"]:
            if r["version"] == "1.6":
                r["size_index"]["sha256"] = hashlib.sha256(index).hexdigest()
                r["size_index"]["size"] = len(index)
        m["serial"] += 1
    data, sig = pub.craft("big", listed)
    hostile.set("abdeploy/channels/big.json", Rule(body=data))
    hostile.set("abdeploy/channels/big.json.sig", Rule(body=sig))


def test_understating_signed_index_stops_the_pull(empty_device, hostile, pub):
    """An index that is signed (its SHA-256 in a validly signed manifest)
    but says every object of 1.6 takes 1 byte: the pull is capped at its
    total plus 1 MiB of slack, and 1.6's 1.5 MiB file does not fit: the
    pull stops there, naming the index. The honest index lets it through."""
    d = empty_device
    d.configure(hostile.url, channel="big")
    objects_of_16(hostile, pub, sizeindex.understate(index_bytes(pub, "1.6")))
    r = d.expect(ul.EXIT_ERROR, "update")
    assert "signed size index" in r.stderr and "max-pull-bytes" not in r.stderr, r.describe()
    t = d.transaction()
    assert t["phase"] == "failed" and t["failed_in"] == "downloading", t
    assert not any(d.slot(s).get("commit") == pub.commits["1.6"] for s in "ab")
    # the same pull with the real index completes
    d.ok("resume", "--abandon")
    hostile.clear()
    objects_of_16(hostile, pub, index_bytes(pub, "1.6"))
    d.ok("update")
    assert any(d.slot(s).get("commit") == pub.commits["1.6"] for s in "ab")


def test_commit_with_the_index_inside_still_updates(device, lighttpd, pub, old_index_commit):
    """A commit of a publisher before issue 18 (ostree.sizes inside it, no
    file) staged over HTTP: the pull reports bytes out of its in-commit
    index, as before."""
    device.configure(lighttpd.url)
    r = device.ok("--progress=json", "stage", "--from=" + lighttpd.url, old_index_commit)
    lines = [ul.json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    dl = [e for e in lines if e.get("phase") == "download" and e.get("type") == "progress"]
    # bytes out of the in-commit index: 1.6 adds a 1.5 MiB file
    assert dl and all(e["unit"] == "bytes" and e["total"] > 1536 * 1024 for e in dl), dl
