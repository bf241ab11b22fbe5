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


def started(server):
    """Yields SERVER started and stops it at the end whatever happens: the
    body of every fixture that serves a repo (lighttpd, the hostile server)."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


def scenario_fixtures(sl):
    """The published world of the scenario suite (SL: tests/scenario's
    scenariolib), for every suite that drives sysroots against it (scenario,
    dbus): `keys` (a GPG home with a trusted and an untrusted key),
    `published` (the archive repo v1, v2, unsigned, evil), `server` (lighttpd
    on 127.0.0.1 serving it), all per session, and per test `sysroots` (a
    factory; every sysroot it made is checked with `ostree fsck` at the end)
    and `sysroot` (an initialized, offline sysroot: file backend, trusted key
    installed). They use `workdir`, `abdeploy_bin`, `home` and the suite's
    own `keyfiles`. Bind them by name in the suite's conftest.py:

        keys, published, server, sysroots, sysroot = abfixtures.scenario_fixtures(sl)
    """
    @pytest.fixture(scope="session")
    def keys(workdir):
        k = sl.GpgKeys(os.path.join(workdir, "gnupg"))
        yield k
        k.close()

    @pytest.fixture(scope="session")
    def published(workdir, keys):
        return sl.PublishedRepo(os.path.join(workdir, "publish"), keys)

    @pytest.fixture(scope="session")
    def server(workdir, published):
        yield from started(sl.HttpServer(published.path, os.path.join(workdir, "http.log")))

    @pytest.fixture
    def sysroots(workdir, abdeploy_bin, home, keyfiles, request):
        f = sl.SysrootFactory(os.path.join(workdir, "sysroots", at.safe_name(request.node.name)),
                              abdeploy_bin, home, keyfiles)
        yield f
        f.finish()

    @pytest.fixture
    def sysroot(sysroots):
        """An initialized, offline sysroot (file backend, trusted key installed)."""
        return sysroots.create()

    return keys, published, server, sysroots, sysroot


def campaign_world_fixture(why_root):
    """A session fixture (it uses `workdir` and `binary`): the world of
    tests/lib/campaign.py (GPG key, a publisher repo made by `abdeploy
    publish`, lighttpd on 127.0.0.1, prepared starting states), closed at
    the end whatever happens; the suite is skipped with WHY_ROOT when not
    run as root."""
    @pytest.fixture(scope="session")
    def world(workdir, binary):
        import campaign
        if os.geteuid() != 0:
            pytest.skip(why_root)
        w = campaign.World(workdir, binary)
        try:
            yield w
        finally:
            w.close()
    return world
