"""Fixtures of the abdeploy health tests.

Session-scoped: the abdeploy binary (a private copy), one GPG key, one
archive repo with the test images, and per bootloader backend one prepared
sysroot: initialized, key trusted, v1 deployed into slot a, booted once and
found green (slot a good).  Function-scoped: `fresh(backend)` gives a cp -a
copy of a prepared sysroot, removed when the test ends.
"""

import os

import pytest

import healthlib as hl
import abtest as at  # tests/lib, put on sys.path by healthlib
import abfixtures as af  # tests/lib


workdir = af.workdir_fixture("abdeploy-health-")
binary = af.binary_fixture(hl.SRCDIR)


@pytest.fixture(scope="session")
def gpg(workdir):
    g = hl.Gpg(os.path.join(workdir, "gnupg"))
    yield g
    g.close()


@pytest.fixture(scope="session")
def published(workdir, gpg):
    return hl.Published(os.path.join(workdir, "publish"), gpg)


@pytest.fixture(scope="session")
def prepared(workdir, binary, gpg, published):
    """prepared(backend) -> Sys: v1 in slot a, booted, green, good."""
    cache = {}
    keyfile = gpg.export(os.path.join(workdir, "publisher.gpg"))

    def get(backend):
        if backend in cache:
            if isinstance(cache[backend], str):
                pytest.fail("preparing the %s sysroot failed earlier: %s" % (backend, cache[backend]),
                            pytrace=False)
            return cache[backend]
        if backend == "uboot" and not hl.uboot_available():
            pytest.skip("uboot: needs a build with U-Boot support (-Duboot), "
                        "tests/lib/uboot_sim.py and fw_printenv/fw_setenv")
        cache[backend] = "see the first test that used it"
        path = os.path.join(workdir, "prepared", backend, "sysroot")
        os.makedirs(path)
        sr = hl.Sys(path, binary, backend, published)
        if backend == "uboot":
            hl.write_uboot_env_config(sr)
        sr.ok("init", "--os=" + hl.OS_NAME, "--bootloader=" + backend)
        at.trust_keys(sr.path, [keyfile])      # as publisher.gpg
        sr.deploy("os/v1")
        r = sr.boot()
        assert (r.slot, r.returncode) == ("a", 0), r
        st = sr.status()
        assert st["primary"] == "a" and sr.slot("a", st)["state"] == "good", st
        cache[backend] = sr
        return sr

    return get


@pytest.fixture
def fresh(workdir, prepared, request):
    """fresh(backend='file') -> a private copy of the prepared sysroot."""
    made = []
    parent = os.path.join(workdir, "tests")
    os.makedirs(parent, exist_ok=True)

    def make(backend="file"):
        sr = hl.copy_sysroot(prepared(backend), parent)
        made.append(sr)
        return sr

    yield make
    if not at.keep_tmp():
        for sr in made:
            hl.rmtree(os.path.dirname(sr.path))
