"""Random-time SIGKILL (OSTree's transactionality test is the model).

Each operation runs on a fresh copy of its starting state and its process
group is SIGKILLed after a random delay, uniform in [0, 1.2 x the time of
an uninterrupted run]; then `status` must work, `verify --full` must pass
its integrity checks, the running slot must be unchanged and `ostree fsck`
must pass; a re-run must succeed, boots must reach green and `verify
--full` must then pass every check (tests/lib/campaign.py).  100 % must
hold.

ABDEPLOY_KILL_SEED=N replays a seed (every failure names its seed, kill
number and delay); ABDEPLOY_KILL_COUNT=N sets the kills per operation
(default 5).  The full campaign is bench/campaign."""

import os
import random

import pytest

import campaign

KILLS = int(os.environ.get("ABDEPLOY_KILL_COUNT") or 5)
SEED = int(os.environ.get("ABDEPLOY_KILL_SEED") or random.SystemRandom().randrange(1 << 31))


def test_seed_is_printed():
    # pytest shows this with -rA or on failure; every failure message names the seed too
    print("kill campaign seed: %d (replay with ABDEPLOY_KILL_SEED=%d)" % (SEED, SEED))


@pytest.mark.parametrize("name", campaign.KILL_OPERATIONS)
def test_random_sigkill(world, workdir, name):
    parent = os.path.join(workdir, "runs")
    os.makedirs(parent, exist_ok=True)
    # one seed per operation, derived from SEED: an operation replays alone
    seed = SEED + campaign.KILL_OPERATIONS.index(name)
    res = campaign.kill_campaign(world, [name], KILLS, seed, parent, log=print)[name]
    assert res["kills"] == KILLS
    assert res["held"] == KILLS, "%d of %d kills of %s did not hold (ABDEPLOY_KILL_SEED=%d):\n%s" % (
        KILLS - res["held"], KILLS, name, SEED, "\n\n".join(res["failures"]))


def test_update_killed_after_activation_completes_on_rerun(world, workdir):
    """Killed after the pointer flip but before the transaction was marked
    applied (crash point activate:flipped): the re-run finds the commit
    already primary and completes the transaction instead of recording it
    as failed ("Nothing to do") and waiting for the operator."""
    op = campaign.OPERATIONS["update"]
    parent = os.path.join(workdir, "runs")
    os.makedirs(parent, exist_ok=True)
    d = campaign.prepare(world, op, parent)
    try:
        r = d.run("update", env={"ABDEPLOY_CRASH_AT": "activate:flipped"})
        assert r.returncode == -9, r.describe()
        assert d.status()["primary"] == "b"
        r = d.run("update")
        assert r.returncode in (0, campaign.EXIT_NOTHING), r.describe()
        assert d.transaction()["phase"] == "applied", d.transaction()
        assert campaign.finish_problems(world, op, d, rerun=False) == []
    finally:
        campaign.remove_device(d)
