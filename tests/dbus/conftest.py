"""Fixtures of the D-Bus suite: the scenario suite's keys, published repo
and HTTP server (session), a private bus per test module, and per test a
fresh sysroot with an abdeploy daemon on that bus."""

import os

import pytest

import dbuslib as dl
import scenariolib as sl
import abtest as at
import abfixtures as af
from hostile import HostileServer


workdir = af.workdir_fixture("abdeploy-dbus-")
abdeploy_bin = af.binary_fixture()
home = af.home_fixture()
keys, published, server, sysroots, sysroot = af.scenario_fixtures(sl)


@pytest.fixture(scope="session")
def keyfiles(workdir, keys):
    d = os.path.join(workdir, "keys")
    os.makedirs(d, exist_ok=True)
    return {"trusted.gpg": keys.export(keys.trusted, os.path.join(d, "publisher.gpg"))}


@pytest.fixture
def slow_server(published):
    """The published repo behind an instrumented server (tests/update/hostile.py),
    for a test to throttle."""
    yield from af.started(HostileServer(published.path))


@pytest.fixture
def bus():
    b = dl.Bus().start()
    yield b
    b.stop()


@pytest.fixture
def polkit(bus, workdir):
    why = dl.Polkit.unavailable()
    if why:
        pytest.skip("no polkitd on the private bus: " + why)
    p = dl.Polkit(bus, bus.dir).start()
    yield p
    p.stop()


@pytest.fixture
def daemon(sysroot, bus):
    d = dl.Daemon(sysroot, bus).start()
    yield d
    d.stop()


@pytest.fixture
def client(bus):
    c = dl.Client(bus.address)
    yield c
    c.close()


@pytest.fixture(scope="session")
def channel(workdir, abdeploy_bin, keys):
    """A publisher repo made by `abdeploy publish` with releases 1.0 and 2.0
    on the channel stable (tests/update/updlib.py)."""
    import updlib
    pub = updlib.Publisher(os.path.join(workdir, "channel"), abdeploy_bin, keys)
    at.ostree_init(pub.repo)
    for version in ("1.0", "2.0"):
        pub.commit(version, sl.image_spec(version))
        pub.release("stable", version)
    return pub


@pytest.fixture
def channel_server(channel):
    yield from af.started(HostileServer(channel.repo))
