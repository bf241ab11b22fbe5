"""Fixtures of the update-client tests.

Session-scoped: a GNUPGHOME with a trusted and an untrusted key made by the
test; a publisher repo made with `abdeploy publish` (commits, channels,
deltas); lighttpd serving it on 127.0.0.1 with an access log; a prepared
device with 1.0 installed, booted and good.  Function-scoped: a copy of that
device per test (checked with `ostree fsck` at the end), hostile servers.

Releases (all signed by the trusted key unless said otherwise):
  1.0  base image              1.1  1.0 with 10 files changed
  1.2, 1.4  other small changes
  1.3  unsigned commit         1.6  1.0 plus a 1.5 MB incompressible file
  1.7  1.0 plus 8 MiB of zeros (a delta of a few KiB that unpacks to 8 MiB)
Channels:
  stable   1.0, 1.1, delta 1.0 -> 1.1
  nodelta  1.0, 1.4; no delta to 1.4 anywhere in the repo (objects path:
           libostree 2022.7 uses any delta it finds in the repo on its own)
  lts      1.0, 1.1, 1.2, 1.4 (staleness warning)
  phased   1.0, 1.1 at 1 % rollout;  full: the same with 1.1 at 100 %
  unsigned 1.0, 1.3 (unsigned commit), delta 1.0 -> 1.3 (added by hand, signed
           with gpg: abdeploy publish refuses to list an unsigned commit)
  big      1.0, 1.6, delta 1.0 -> 1.6 (resume, cancel, slow server)
  other    1.0, 1.2, delta 1.0 -> 1.2 (the "wrong" delta of mix-and-match)
  zeros    1.0, 1.7, delta 1.0 -> 1.7 (free space by the delta superblock)
"""

import os

import pytest

import updlib as ul
import abtest as at  # tests/lib, put on sys.path by updlib
from hostile import HostileServer
import abfixtures as af  # tests/lib

MACHINE_ID = "5f2b7c9e0d4a4b1c8e6f3a2d1c0b9a87"


workdir = af.workdir_fixture("abdeploy-update-")
abdeploy_bin = af.binary_fixture()
home = af.home_fixture()


@pytest.fixture(scope="session")
def gpg(workdir):
    g = ul.Gpg(os.path.join(workdir, "gnupg"))
    yield g
    g.close()


@pytest.fixture(scope="session")
def keyfiles(workdir, gpg):
    d = os.path.join(workdir, "keys")
    os.makedirs(d, exist_ok=True)
    return {"trusted": gpg.export(gpg.trusted, os.path.join(d, "publisher.gpg")),
            "untrusted": gpg.export(gpg.untrusted, os.path.join(d, "intruder.gpg"))}


@pytest.fixture(scope="session")
def pub(workdir, abdeploy_bin, gpg):
    p = ul.Publisher(os.path.join(workdir, "publish"), abdeploy_bin, gpg)
    p.commit("1.0", ul.image_spec("1.0"))
    p.commit("1.1", ul.image_spec("1.1", changed=ul.CHANGED_11))
    p.commit("1.2", ul.image_spec("1.2", changed=["usr/share/data/file-20"]))
    p.commit("1.4", ul.image_spec("1.4", changed=["usr/share/data/file-21"]))
    p.commit("1.3", ul.image_spec("1.3", extra={"usr/bin/unsigned-marker": b"unsigned\n"}),
             signed=False)
    p.commit("1.6", ul.image_spec("1.6", extra={
        "usr/lib/big.bin": ul.blob("big-1.6", 1536 * 1024)}))
    p.commit("1.7", ul.image_spec("1.7", extra={"usr/lib/zeros.bin": b"\0" * (8 * 1024 * 1024)}))
    # made for another OS (issue 16): devices of testos refuse it
    p.commit("1.5", ul.image_spec("1.5"), args=["--os=otheros"])
    for ch, versions in (("stable", ["1.0", "1.1"]), ("nodelta", ["1.0", "1.4"]),
                         ("lts", ["1.0", "1.1", "1.2", "1.4"]), ("full", ["1.0", "1.1"]),
                         ("unsigned", ["1.0"]), ("big", ["1.0", "1.6"]),
                         ("other", ["1.0", "1.2"]), ("zeros", ["1.0", "1.7"]),
                         ("foreign", ["1.0", "1.5"])):
        for v in versions:
            p.release(ch, v)
    p.release("phased", "1.0")
    p.release("phased", "1.1", rollout=1)
    for ch in ("stable", "big", "other", "zeros"):
        p.deltas(ch)
    # abdeploy publish refuses to list an unsigned commit (issue 11)
    p.craft_release("unsigned", "1.3", delta_from="1.0")
    return p


@pytest.fixture(scope="session")
def old_index_commit(pub):
    """1.6's tree committed as a publisher before issue 18 did: the size
    index inside the commit (ostree commit --generate-sizes: metadata key
    ostree.sizes), no index file; signed with the trusted key, no ref."""
    out = ul.run(["ostree", "--repo=" + pub.repo, "commit", "--tree=ref=" + pub.commits["1.6"],
                  "--generate-sizes", "--orphan", "--add-metadata-string=version=1.6",
                  "--gpg-sign=" + pub.gpg.trusted, "--gpg-homedir=" + pub.gpg.homedir],
                 env=pub.gpg.env)
    commit = out.stdout.decode().strip()
    assert not os.path.exists(os.path.join(pub.repo, "abdeploy", "sizes", commit + ".sizes"))
    return commit


@pytest.fixture(scope="session")
def lighttpd(workdir, pub):
    s = ul.Lighttpd(pub.repo, workdir).start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def factory(workdir, abdeploy_bin, home):
    f = ul.DeviceFactory(os.path.join(workdir, "devices"), abdeploy_bin, home)
    yield f
    f.finish(fsck=False)


@pytest.fixture(scope="session")
def base_device(factory, keyfiles, lighttpd, pub):
    """1.0 installed over HTTP with `abdeploy update`, booted (slot a) and
    marked good: the starting point of most tests."""
    d = factory.create([keyfiles["trusted"]])
    d.set_machine_id(MACHINE_ID)
    d.configure(lighttpd.url)
    d.ok("update", "--version=1.0")
    d.set_booted("a")
    d.ok("mark-good")
    st = d.status()
    a = d.slot("a", st)
    assert a["version"] == "1.0" and a["commit"] == pub.commits["1.0"] and a["state"] == "good", st
    return d


@pytest.fixture
def devices(workdir, abdeploy_bin, home, request):
    name = at.safe_name(request.node.name)
    f = ul.DeviceFactory(os.path.join(workdir, "t", name), abdeploy_bin, home)
    yield f
    f.finish()


@pytest.fixture
def device(devices, base_device):
    """A private copy of the prepared 1.0 device."""
    return devices.clone(base_device)


@pytest.fixture
def hostile(workdir, pub, request):
    name = at.safe_name(request.node.name)
    s = HostileServer(pub.repo, os.path.join(workdir, "hostile-%s.log" % name)).start()
    yield s
    s.stop()
