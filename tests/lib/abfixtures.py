"""Session fixtures shared by the pytest suites (pytest needed; abtest.py
stays standard library only).

A suite's conftest.py makes its own fixtures from these factories:

    workdir = abfixtures.workdir_fixture("abdeploy-scenario-")
    abdeploy_bin = abfixtures.binary_fixture()
    home = abfixtures.home_fixture()
"""

import os
import tempfile

import pytest

import abtest as at


def workdir_fixture(prefix):
    """A session fixture: a fresh temporary directory named PREFIX..., removed
    at the end unless ABDEPLOY_TEST_KEEP_TMP is set."""
    @pytest.fixture(scope="session")
    def workdir():
        d = tempfile.mkdtemp(prefix=prefix)
        yield d
        if not at.keep_tmp():
            at.rmtree(d)
    return workdir


def binary_fixture(srcdir=None):
    """A session fixture (it uses `workdir`): a private copy of the binary
    under test, so that a rebuild during the run cannot swap it; the session
    fails with the reason when there is no binary."""
    @pytest.fixture(scope="session")
    def binary(workdir):
        try:
            return at.private_binary(workdir, srcdir=srcdir)
        except at.MissingBinary as e:
            missing = str(e)
        pytest.fail(missing, pytrace=False)
    return binary


def home_fixture():
    """A session fixture (it uses `workdir`): WORKDIR/home, the HOME of the
    programs the tests run."""
    @pytest.fixture(scope="session")
    def home(workdir):
        d = os.path.join(workdir, "home")
        os.makedirs(d, exist_ok=True)
        return d
    return home
