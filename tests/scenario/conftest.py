"""Fixtures of the abdeploy scenario tests.

Session-scoped: one GPG home with a trusted and an untrusted key, one
published archive repo (v1, v2, unsigned, evil) served by a real HTTP
server on 127.0.0.1, and (on demand) a second server with a corrupted
object.  Function-scoped: fresh sysroots, checked with `ostree fsck`
when the test ends.
"""

import os

import pytest

import scenariolib as sl
import abtest as at  # tests/lib, put on sys.path by scenariolib
import abfixtures as af  # tests/lib


workdir = af.workdir_fixture("abdeploy-scenario-")
abdeploy_bin = af.binary_fixture()
home = af.home_fixture()
keys, published, server, sysroots, sysroot = af.scenario_fixtures(sl)


@pytest.fixture(scope="session")
def keyfiles(workdir, keys):
    d = os.path.join(workdir, "keys")
    os.makedirs(d, exist_ok=True)
    return {
        "trusted.gpg": keys.export(keys.trusted, os.path.join(d, "publisher.gpg")),
        "trusted.asc": keys.export(keys.trusted, os.path.join(d, "publisher.asc"), armor=True),
        "untrusted.gpg": keys.export(keys.untrusted, os.path.join(d, "intruder.gpg")),
    }


@pytest.fixture(scope="session")
def corrupt_server(workdir, published):
    """A copy of the published repo in which one object that only v2 has
    (the content of usr/bin/app 2.0) is damaged, served on its own port."""
    root = os.path.join(workdir, "corrupt")
    os.makedirs(root)
    repo = os.path.join(root, "repo")
    sl.run(["cp", "-a", published.path, repo])
    v1_obj = published.object_path("os/v1", "/usr/bin/app")
    obj = published.object_path("os/v2", "/usr/bin/app")
    assert v1_obj != obj
    target = os.path.join(repo, os.path.relpath(obj, published.path))
    at.damage(target)
    s = sl.HttpServer(repo, os.path.join(workdir, "http-corrupt.log"))
    s.repo = repo
    s.damaged = os.path.relpath(target, repo)
    yield from af.started(s)
