"""Fixtures of the random-time SIGKILL suite (suite `kill`).

Session-scoped: the world of tests/lib/campaign.py (GPG key, a publisher
repo made by `abdeploy publish`, lighttpd on 127.0.0.1, prepared starting
states), stopped and removed at the end whatever happens."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "lib"))
import abfixtures as af  # noqa: E402

workdir = af.workdir_fixture("abdeploy-kill-")
binary = af.binary_fixture()
world = af.campaign_world_fixture("the layout-1 fixture holds bare OSTree repos owned by "
                                  "root: run as root")
