"""The migration waits while the booted slot is on trial.

The update to a release with a new layout is staged and activated by the
previous abdeploy; the new one first runs from a slot on trial.  If that
boot fails, the device rolls back to the other slot and its previous
abdeploy, which reads only layout 1.  So, until the booted slot is
confirmed good, writers keep layout 1 and write format-1 files; the first
writer after the confirmation migrates.  `abdeploy migrate` migrates at
once, with a warning."""

import os
import stat

import migratelib as ml
import scenariolib as sl


def boot_b_on_trial(sr, tries):
    """What abdeploy 0.1.0 leaves after `activate` of slot b, and GRUB after
    it took one try: b primary and on trial, booted."""
    sl.run(["grub-editenv", sr.pointer_path, "set", "ABDEPLOY_PRIMARY=b",
            "ABDEPLOY_B_STATE=trial", "ABDEPLOY_B_TRIES=%d" % tries])
    sr.set_booted("b")


def assert_still_layout1(sr, pristine_sr):
    """Layout 1 as 0.1.0 wrote it: version, formats, config, no copy."""
    assert ml.layout(sr) == "1\n"
    for name in ml.STATE_FILES:
        if os.path.exists(sr.p("abdeploy", "state", name)):
            assert ml.state_json(sr, name)["format"] == 1, name
    assert ml.read(sr, "etc/abdeploy/abdeploy.conf") == \
        ml.read(pristine_sr, "etc/abdeploy/abdeploy.conf")
    assert not os.path.exists(sr.p("abdeploy", "migration"))


def failing_hook(sr, slot):
    d = sr.p("abdeploy", "slots", slot, "etc", "abdeploy", "health", "required.d")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "10-fail")
    with open(path, "w") as f:
        f.write("#!/bin/sh\necho 'service down' >&2\nexit 1\n")
    os.chmod(path, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)


def test_green_trial_keeps_layout1_then_the_next_writer_migrates(layout1, pristine):
    fx = layout1()
    sr = fx.grub
    boot_b_on_trial(sr, 2)

    r = sr.ok("health-check", "--no-reboot")
    assert "Migrated" not in r.stderr, r.describe()
    assert sr.slot_status("b")["state"] == "good"
    assert_still_layout1(sr, pristine.grub)
    assert ml.history_types(sr)[0] == "verdict"

    # slot b is confirmed: the next writer migrates
    r = sr.ok("mark-good")
    assert "Migrated sysroot from layout 1 to 2" in r.stderr, r.describe()
    assert ml.layout(sr) == "2\n"
    for name in ml.STATE_FILES:
        assert ml.state_json(sr, name)["format"] == 2, name
    # the kept copy holds the files as the trial left them (format 1)
    assert ml.read(sr, os.path.join(ml.COPY_DIR, "abdeploy", "version")) == "1\n"
    sr.fsck()


def test_red_trial_rolls_back_and_leaves_layout1(layout1, pristine):
    fx = layout1()
    sr = fx.grub
    failing_hook(sr, "b")
    boot_b_on_trial(sr, 0)  # the last try

    r = sr.run("health-check", "--no-reboot")
    assert r.returncode != 0, r.describe()
    assert "Migrated" not in r.stderr, r.describe()
    st = sr.status()
    assert st["primary"] == "a" and sr.slot_status("b")["state"] == "bad", st
    # what the previous abdeploy in slot a will read: layout 1 throughout
    assert_still_layout1(sr, pristine.grub)
    assert ml.state_json(sr, "verdict.json")["verdict"] == "red"
    assert ml.state_json(sr, "last-rollback.json")["to_slot"] == "a"

    # back in slot a (good): a writer migrates from there on
    sr.set_booted("a")
    r = sr.ok("mark-good")
    assert "Migrated sysroot from layout 1 to 2" in r.stderr, r.describe()
    assert ml.layout(sr) == "2\n"
    sr.fsck()


def test_migrate_command_does_not_wait_but_warns(layout1, pristine):
    fx = layout1()
    sr = fx.grub
    boot_b_on_trial(sr, 2)
    r = sr.ok("migrate")
    assert "Migrated sysroot from layout 1 to 2" in r.stderr, r.describe()
    assert "not confirmed good" in r.stderr and "DOWNGRADE" in r.stderr, r.describe()
    assert ml.layout(sr) == "2\n"
    assert sr.slot_status("b")["state"] == "trial"


def test_waiting_writer_still_refuses_a_newer_state_file(layout1):
    fx = layout1()
    sr = fx.grub
    boot_b_on_trial(sr, 2)
    path = sr.p("abdeploy", "state", "slot-a.json")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace('"format" : 1', '"format" : 3').replace('"format": 1', '"format": 3'))
    before = ml.whole(sr, lock=False)
    r = sr.run("health-check", "--no-reboot")
    assert r.returncode == sl.EXIT_ERROR, r.describe()
    assert "format 3" in r.stderr and "0.2.0" in r.stderr, r.describe()
    assert ml.whole(sr, lock=False) == before
