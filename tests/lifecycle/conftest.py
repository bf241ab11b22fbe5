"""Fixtures of the lifecycle tests.

Session-scoped: the abdeploy binary (a private copy), GPG keys made here,
the publisher's archive repo (ostree CLI commits, one `abdeploy publish`
release) served by python3 http.server on 127.0.0.1, and prepared
sysroots, each deployed over HTTP and booted by the boot simulator:

- "v1":        slot a = 1.0 (no source-revision/build-time), booted, green, good.
- "meta":      then os/meta (2.5, with source-revision and build-time)
               deployed into slot b, booted, green, good; slot a keeps 1.0.
- "meta-grub": the same on the grub backend.

Function-scoped: `device(name)` gives a cp -a copy, removed afterwards.
"""

import os
import shutil

import pytest

import lifecyclelib as ll
from lifecyclelib import hl, sl
import abfixtures as af  # tests/lib


workdir = af.workdir_fixture("abdeploy-lifecycle-")
binary = af.binary_fixture()


@pytest.fixture(scope="session")
def keys(workdir):
    k = sl.GpgKeys(os.path.join(workdir, "gnupg"))
    yield k
    k.close()


@pytest.fixture(scope="session")
def keyfile(workdir, keys):
    return keys.export(keys.trusted, os.path.join(workdir, "publisher.gpg"))


@pytest.fixture(scope="session")
def publisher(workdir, keys, binary):
    return ll.Publisher(os.path.join(workdir, "publish"), keys, binary)


@pytest.fixture(scope="session")
def server(workdir, publisher):
    s = sl.HttpServer(publisher.path, os.path.join(workdir, "http.log")).start()
    ll.Device.server_url = s.url
    yield s
    s.stop()


@pytest.fixture(scope="session")
def prepared(workdir, binary, keyfile, publisher, server):
    cache = {}

    def boot_green(dev, want_slot):
        r = dev.boot()
        assert (r.slot, r.returncode) == (want_slot, 0), r
        st = dev.status()
        assert st["primary"] == want_slot and dev.slot(want_slot, st)["state"] == "good", st

    def make(name):
        backend = "grub" if name.endswith("-grub") else "file"
        if name == "meta" or name == "meta-grub":
            base = get("v1" if backend == "file" else "v1-grub")
            path = os.path.join(workdir, "prepared", name)
            os.makedirs(path)
            c = ll.devices_copy(base, path)
            c.deploy_http("os/meta")
            boot_green(c, "b")
            return c
        path = os.path.join(workdir, "prepared", name, "sysroot")
        os.makedirs(path)
        dev = ll.Device(path, binary, backend, publisher)
        dev.ok("init", "--os=" + hl.OS_NAME, "--bootloader=" + backend)
        trusted = dev.p("etc", "abdeploy", "trusted.gpg.d")
        os.makedirs(trusted, exist_ok=True)
        shutil.copy(keyfile, os.path.join(trusted, "publisher.gpg"))
        dev.deploy_http("os/v1")
        boot_green(dev, "a")
        return dev

    def get(name):
        if name not in cache:
            cache[name] = None
            cache[name] = make(name)
        if cache[name] is None:
            pytest.fail("preparing sysroot %s failed earlier" % name, pytrace=False)
        return cache[name]

    return get


@pytest.fixture
def device(workdir, prepared):
    """device(name='meta') -> a private copy of a prepared sysroot."""
    made = []
    parent = os.path.join(workdir, "tests")
    os.makedirs(parent, exist_ok=True)

    def make(name="meta"):
        d = ll.devices_copy(prepared(name), parent)
        made.append(d)
        return d

    yield make
    if not os.environ.get("ABDEPLOY_TEST_KEEP_TMP"):
        for d in made:
            sl.rmtree(os.path.dirname(d.path))
