"""Fixtures of the disk-full suite (suite `diskfull`).

Session-scoped: the world of tests/lib/campaign.py (GPG key, a publisher
repo made by `abdeploy publish`, lighttpd on 127.0.0.1, prepared starting
states) and one small file system (a loop-mounted ext4 image, or a tmpfs
where loop devices do not work) on which every sysroot under test lives.
Both are torn down at the end whatever happens: server stopped, file
system unmounted, loop device detached."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "lib"))
import abfixtures as af  # noqa: E402
import campaign  # noqa: E402

workdir = af.workdir_fixture("abdeploy-diskfull-")
binary = af.binary_fixture()
world = af.campaign_world_fixture("mounting a small file system needs root")


@pytest.fixture(scope="session")
def smallfs(workdir, world):
    fs = campaign.SmallFs(workdir)
    try:
        yield fs
    finally:
        fs.close()
