"""Fixtures of the migration tests (suite `migrate`).

The previous on-disk format is not simulated: tests/fixtures/layout-1/
layout-1.tar.xz holds sysroots, a backup and a publisher repo made by the
real abdeploy 0.1.0 (see the README there and make-layout-1.sh). Every test
unpacks fresh copies (`layout1()`); `pristine` is one copy that no test
changes, to compare bytes with.
"""

import os
import tempfile

import pytest

import migratelib as ml
from migratelib import sl
import abfixtures as af  # tests/lib


workdir = af.workdir_fixture("abdeploy-migrate-")
binary = af.binary_fixture()
home = af.home_fixture()


@pytest.fixture(scope="session")
def pristine(workdir, binary, home):
    if os.geteuid() != 0:
        pytest.skip("the layout-1 fixture holds bare OSTree repos owned by root: run as root")
    d = os.path.join(workdir, "pristine")
    os.makedirs(d)
    return ml.Layout1(d, binary, home)


@pytest.fixture
def layout1(workdir, binary, home, pristine, request):
    """layout1() -> a fresh unpacked copy of the fixture, removed afterwards."""
    made = []

    def make():
        d = tempfile.mkdtemp(prefix="fx-", dir=workdir)
        made.append(d)
        return ml.Layout1(d, binary, home)

    yield make
    for d in made:
        sl.rmtree(d)
