"""Decisions of data/grub/abdeploy-select.cfg and abdeploy.cfg, run by real
GRUB 2.06 (grub-emu) through tests/lib/grub_sim.py.

Every expectation is checked against what grub-emu printed and what GRUB's
own save_env wrote into the env block (read back with grub-editenv list).
"""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))
import grub_sim  # noqa: E402
from grub_sim import editenv_list, editenv_set, simulate_boot, write_pointer  # noqa: E402

pytestmark = pytest.mark.skipif(
    not grub_sim.tools_available(),
    reason="needs grub-emu, grub-editenv (grub-emu, grub-common) and mkfs.ext2, debugfs (e2fsprogs)",
)

OTHER = {"a": "b", "b": "a"}


def tries_key(slot):
    return f"ABDEPLOY_{slot.upper()}_TRIES"


def state_key(slot):
    return f"ABDEPLOY_{slot.upper()}_STATE"


@pytest.fixture
def env(tmp_path):
    return tmp_path / "grubenv"


def pointer(env, primary, states, tries=None, **extra):
    """states/tries: dicts slot -> value (missing slot = variable not set)."""
    tries = tries or {}
    values = dict(extra)
    if primary is not None:
        values["ABDEPLOY_PRIMARY"] = primary
    for slot in ("a", "b"):
        if slot in states:
            values[state_key(slot)] = states[slot]
        if slot in tries:
            values[tries_key(slot)] = str(tries[slot])
    editenv_set(env, **values)


def boot(env, **kw):
    r = simulate_boot(env, **kw)
    # The slot GRUB picked is the one whose kernel it loads, with a matching
    # abdeploy.slot= as first kernel argument.
    assert r.linux is not None, r.output
    assert r.linux[0] == f"/boot/abdeploy/{r.slot}/vmlinuz", r.output
    assert r.linux[1] == f"abdeploy.slot={r.slot}", r.output
    # What GRUB holds in memory after deciding equals what it saved.
    for name in grub_sim.POINTER_VARS:
        assert r.grub_vars.get(name, "") == r.env_after.get(name, ""), (name, r.output)
    return r


def assert_unchanged(env, before_bytes, r):
    assert env.read_bytes() == before_bytes, r.output


# --- static checks ---------------------------------------------------------

@pytest.mark.parametrize("name", ["abdeploy.cfg", "abdeploy-select.cfg"])
def test_grub_script_check_accepts(name):
    path = grub_sim.grub_datadir() / name
    proc = subprocess.run([grub_sim._tool("grub-script-check"), str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- decision matrix -------------------------------------------------------

@pytest.mark.parametrize("primary", ["a", "b"])
def test_primary_good_boots_primary_and_writes_nothing(env, primary):
    pointer(env, primary, {"a": "good", "b": "good"}, {"a": 0, "b": 0})
    before = env.read_bytes()
    r = boot(env)
    assert (r.slot, r.reason) == (primary, "primary")
    assert r.errors == []
    assert_unchanged(env, before, r)


@pytest.mark.parametrize("primary", ["a", "b"])
def test_trial_counts_down_then_falls_back(env, primary):
    other = OTHER[primary]
    pointer(env, primary, {primary: "trial", other: "good"}, {primary: 3, other: 0})
    seen = []
    for _ in range(5):
        r = boot(env)
        assert r.errors == [], r.output
        seen.append((r.slot, r.reason, r.env_after[tries_key(primary)]))
    assert seen == [
        (primary, "primary", "2"),
        (primary, "primary", "1"),
        (primary, "primary", "0"),
        (other, "fallback", "0"),
        (other, "fallback", "0"),
    ]
    # States are the OS's business, never GRUB's.
    assert r.env_after[state_key(primary)] == "trial"
    assert r.env_after[state_key(other)] == "good"
    assert r.env_after["ABDEPLOY_PRIMARY"] == primary


@pytest.mark.parametrize("tries", range(1, 10))
def test_every_tries_value_is_lowered_by_one(env, tries):
    pointer(env, "b", {"a": "good", "b": "trial"}, {"a": 0, "b": tries})
    r = boot(env)
    assert (r.slot, r.reason) == ("b", "primary")
    assert r.env_after["ABDEPLOY_B_TRIES"] == str(tries - 1)
    assert r.env_after["ABDEPLOY_A_TRIES"] == "0"


def test_tries_are_saved_before_the_kernel_is_loaded(env):
    pointer(env, "a", {"a": "trial", "b": "good"}, {"a": 2, "b": 0})
    r = boot(env)
    assert r.slot == "a"
    # Read back from the disk by GRUB inside `linux`.
    assert r.disk_at_linux == {"ABDEPLOY_A_TRIES": "1", "ABDEPLOY_B_TRIES": "0"}, r.output


@pytest.mark.parametrize("primary", ["a", "b"])
@pytest.mark.parametrize("bad_state", ["bad", "none"])
def test_primary_not_bootable_boots_other_good(env, primary, bad_state):
    other = OTHER[primary]
    pointer(env, primary, {primary: bad_state, other: "good"}, {primary: 3, other: 0})
    before = env.read_bytes()
    r = boot(env)
    assert (r.slot, r.reason) == (other, "fallback")
    assert_unchanged(env, before, r)


def test_primary_bad_other_trial_boots_other_and_lowers_it(env):
    pointer(env, "a", {"a": "bad", "b": "trial"}, {"a": 0, "b": 2})
    r = boot(env)
    assert (r.slot, r.reason) == ("b", "fallback")
    assert r.env_after["ABDEPLOY_B_TRIES"] == "1"
    assert r.env_after["ABDEPLOY_A_TRIES"] == "0"


@pytest.mark.parametrize("primary", ["a", "b"])
def test_both_bad_boots_primary_as_last_resort(env, primary):
    pointer(env, primary, {"a": "bad", "b": "bad"}, {"a": 0, "b": 0})
    before = env.read_bytes()
    r = boot(env)
    assert (r.slot, r.reason) == (primary, "last-resort")
    assert_unchanged(env, before, r)


def test_both_trial_exhausted_boots_primary_without_writing(env):
    pointer(env, "b", {"a": "trial", "b": "trial"}, {"a": 0, "b": 0})
    before = env.read_bytes()
    r = boot(env)
    assert (r.slot, r.reason) == ("b", "last-resort")
    assert_unchanged(env, before, r)


@pytest.mark.parametrize("primary", ["a", "b"])
def test_primary_trial_zero_other_trial_two(env, primary):
    other = OTHER[primary]
    pointer(env, primary, {primary: "trial", other: "trial"}, {primary: 0, other: 2})
    r = boot(env)
    assert (r.slot, r.reason) == (other, "fallback")
    assert r.env_after[tries_key(other)] == "1"
    assert r.env_after[tries_key(primary)] == "0"
    r = boot(env)
    assert (r.slot, r.env_after[tries_key(other)]) == (other, "0")
    r = boot(env)
    assert (r.slot, r.reason) == (primary, "last-resort")
    assert (r.env_after[tries_key(primary)], r.env_after[tries_key(other)]) == ("0", "0")


@pytest.mark.parametrize("tries", ["", "x", "10", "-1", "01", " 3"])
def test_trial_with_malformed_tries_is_not_bootable(env, tries):
    pointer(env, "a", {"a": "trial", "b": "good"}, {"a": tries, "b": 0})
    before = env.read_bytes()
    r = boot(env)
    assert (r.slot, r.reason) == ("b", "fallback")
    assert_unchanged(env, before, r)


def test_trial_without_tries_variable_is_not_bootable(env):
    pointer(env, "a", {"a": "trial", "b": "good"}, {"b": 0})
    r = boot(env)
    assert (r.slot, r.reason) == ("b", "fallback")
    assert "ABDEPLOY_A_TRIES" not in r.env_after


@pytest.mark.parametrize("state", ["GOOD", "good ", "Trial", ""])
def test_unknown_state_is_not_bootable(env, state):
    pointer(env, "a", {"a": state, "b": "good"}, {"a": 3, "b": 0})
    r = boot(env)
    assert (r.slot, r.reason) == ("b", "fallback")


# --- primary missing or odd: documented as "primary a" -------------------

PRIMARY_VARIANTS = ["unset", "", "c", "B", "ab"]


def _primary(env, variant, states, tries):
    pointer(env, None if variant == "unset" else variant, states, tries)
    if variant == "unset":
        assert "ABDEPLOY_PRIMARY" not in editenv_list(env)


@pytest.mark.parametrize("variant", PRIMARY_VARIANTS)
def test_no_valid_primary_picks_a_when_bootable(env, variant):
    _primary(env, variant, {"a": "trial", "b": "good"}, {"a": 2, "b": 0})
    r = boot(env)
    assert (r.slot, r.reason) == ("a", "primary")
    assert r.env_after["ABDEPLOY_A_TRIES"] == "1"


@pytest.mark.parametrize("variant", PRIMARY_VARIANTS)
def test_no_valid_primary_picks_b_when_only_b_bootable(env, variant):
    _primary(env, variant, {"a": "bad", "b": "trial"}, {"a": 0, "b": 1})
    r = boot(env)
    assert (r.slot, r.reason) == ("b", "fallback")
    assert r.env_after["ABDEPLOY_B_TRIES"] == "0"


@pytest.mark.parametrize("variant", PRIMARY_VARIANTS)
def test_no_valid_primary_nothing_bootable_picks_a(env, variant):
    _primary(env, variant, {"a": "none", "b": "bad"}, {"a": 0, "b": 0})
    r = boot(env)
    assert (r.slot, r.reason) == ("a", "last-resort")


def test_empty_env_block_picks_a_as_last_resort(env):
    grub_sim.editenv_create(env)
    before = env.read_bytes()
    r = boot(env)
    assert (r.slot, r.reason) == ("a", "last-resort")
    assert r.errors == []
    assert_unchanged(env, before, r)


def test_missing_env_block_picks_a_as_last_resort(tmp_path):
    r = simulate_boot(tmp_path / "absent")
    assert (r.slot, r.reason) == ("a", "last-resort")
    assert r.linux[:2] == ["/boot/abdeploy/a/vmlinuz", "abdeploy.slot=a"]
    assert not (tmp_path / "absent").exists()


def test_pointer_variables_set_before_sourcing_do_not_leak(env):
    # Only the env block counts, not GRUB variables of the same name.
    pointer(env, None, {"a": "good"}, {"a": 0})
    r = boot(env, presets={"ABDEPLOY_PRIMARY": "b", "ABDEPLOY_B_STATE": "good"})
    assert (r.slot, r.reason) == ("a", "primary")


# --- the env block as a whole ------------------------------------------------

def test_other_variables_are_preserved(env):
    extra = {
        "saved_entry": "abdeploy",
        "FOO": "bar baz",
        "next_entry": "",
        "APPLIANCE_SERIAL": "X-0042=y",
    }
    pointer(env, "b", {"a": "good", "b": "trial"}, {"a": 0, "b": 5}, **extra)
    r = boot(env)
    assert r.slot == "b"
    listed = editenv_list(env)
    assert listed == r.env_after
    for k, v in extra.items():
        assert listed[k] == v, k
    assert listed["ABDEPLOY_B_TRIES"] == "4"
    expect = dict(r.env_before)
    expect["ABDEPLOY_B_TRIES"] = "4"
    assert listed == expect
    raw = env.read_bytes()
    assert len(raw) == grub_sim.ENV_BLOCK_SIZE
    assert raw.startswith(b"# GRUB Environment Block\n")


def test_result_is_readable_by_grub_editenv(env):
    pointer(env, "a", {"a": "trial", "b": "good"}, {"a": 9, "b": 0})
    boot(env)
    out = subprocess.run([grub_sim._tool("grub-editenv"), str(env), "list"], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    assert "ABDEPLOY_A_TRIES=8\n" in out
    # ...and writable again by grub-editenv.
    write_pointer(env, a_state="good")
    assert editenv_list(env)["ABDEPLOY_A_STATE"] == "good"


# --- where the env block lives ---------------------------------------------

def test_abd_envfile_elsewhere_on_disk(env, tmp_path):
    other_env = tmp_path / "other-env"
    pointer(other_env, "b", {"a": "good", "b": "trial"}, {"a": 0, "b": 3})
    pointer(env, "a", {"a": "good", "b": "good"}, {"a": 0, "b": 0})
    # The default block says a; the one abd_envfile names says b.
    r = simulate_boot(env, presets={"abd_envfile": "(hd0)/appliance/env"},
                      extra_files={"/appliance/env": other_env})
    assert (r.slot, r.reason) == ("b", "primary")
    assert r.grub_vars["ABDEPLOY_B_TRIES"] == "2"
    assert r.disk_at_linux == {"ABDEPLOY_A_TRIES": "0", "ABDEPLOY_B_TRIES": "2"}, r.output


def test_unwritable_env_block_never_boots_trial_slot(env):
    # grub-emu refuses save_env on host files ("sparse file not allowed"),
    # which stands in for an env block GRUB cannot write on a real machine.
    pointer(env, "a", {"a": "trial", "b": "good"}, {"a": 3, "b": 0})
    before = env.read_bytes()
    r = simulate_boot(None, presets={"abd_envfile": f"(host){env}"})
    assert any("sparse file not allowed" in e for e in r.errors), r.output
    assert (r.slot, r.reason) == ("b", "fallback")
    assert r.grub_vars["ABDEPLOY_A_TRIES"] == "3"
    assert env.read_bytes() == before


def test_unwritable_env_block_both_trial_boots_primary_last_resort(env):
    pointer(env, "b", {"a": "trial", "b": "trial"}, {"a": 2, "b": 2})
    r = simulate_boot(None, presets={"abd_envfile": f"(host){env}"})
    assert sum("sparse file not allowed" in e for e in r.errors) == 2, r.output
    assert (r.slot, r.reason) == ("b", "last-resort")
    assert (r.grub_vars["ABDEPLOY_A_TRIES"], r.grub_vars["ABDEPLOY_B_TRIES"]) == ("2", "2")


def test_unwritable_env_block_with_good_primary_boots_it(env):
    pointer(env, "a", {"a": "good", "b": "trial"}, {"a": 0, "b": 3})
    r = simulate_boot(None, presets={"abd_envfile": f"(host){env}"})
    assert (r.slot, r.reason) == ("a", "primary")
    assert r.errors == []


# --- the menu entry ----------------------------------------------------------

def test_kernel_arguments(env):
    pointer(env, "b", {"a": "good", "b": "good"}, {"a": 0, "b": 0},
            ABDEPLOY_KARGS="console=ttyS0,115200 loglevel=7")
    r = boot(env, kargs="root=LABEL=appliance ro  quiet")
    assert r.linux == [
        "/boot/abdeploy/b/vmlinuz",
        "abdeploy.slot=b",
        "root=LABEL=appliance", "ro", "quiet",
        "console=ttyS0,115200", "loglevel=7",
    ]
    assert r.kernel_present is True


def test_kernel_arguments_none_given(env):
    pointer(env, "a", {"a": "good"}, {"a": 0})
    r = boot(env)
    assert r.linux == ["/boot/abdeploy/a/vmlinuz", "abdeploy.slot=a"]


def test_initramfs_loaded_when_present(env):
    pointer(env, "a", {"a": "good", "b": "good"})
    r = boot(env, slot_files={"a": ["vmlinuz", "initramfs.img"], "b": ["vmlinuz"]})
    assert r.initrd == "/boot/abdeploy/a/initramfs.img"
    assert r.initrd_present is True


def test_initramfs_skipped_when_absent(env):
    pointer(env, "b", {"a": "good", "b": "good"})
    r = boot(env, slot_files={"a": ["vmlinuz", "initramfs.img"], "b": ["vmlinuz"]})
    assert r.slot == "b"
    assert r.initrd is None
    assert r.kernel_present is True


def test_abd_bootdir(env):
    pointer(env, "a", {"a": "good"})
    r = simulate_boot(env, presets={"abd_bootdir": "/abd"},
                      extra_files={"/abd/a/vmlinuz": b"k"})
    assert r.linux[:2] == ["/abd/a/vmlinuz", "abdeploy.slot=a"]
    assert r.kernel_present is True
    assert r.initrd is None


def test_select_only_sets_slot_without_menu_entry(env):
    pointer(env, "b", {"a": "good", "b": "trial"}, {"a": 0, "b": 1})
    r = simulate_boot(env, mode="select")
    assert (r.slot, r.reason) == ("b", "primary")
    assert r.linux is None
    assert r.env_after["ABDEPLOY_B_TRIES"] == "0"


def test_sysroot_layout_is_mirrored(tmp_path):
    sysroot = tmp_path / "sysroot"
    (sysroot / "boot" / "grub").mkdir(parents=True)
    for slot, names in {"a": ["vmlinuz"], "b": ["vmlinuz", "initramfs.img"]}.items():
        d = sysroot / "boot" / "abdeploy" / slot
        d.mkdir(parents=True)
        for n in names:
            (d / n).write_bytes(b"x")
    env = sysroot / "boot" / "grub" / "grubenv"
    pointer(env, "b", {"a": "good", "b": "trial"}, {"a": 0, "b": 1})
    r = simulate_boot(env, sysroot=sysroot)
    assert (r.slot, r.initrd, r.initrd_present) == ("b", "/boot/abdeploy/b/initramfs.img", True)
    assert editenv_list(env)["ABDEPLOY_B_TRIES"] == "0"
    r = simulate_boot(env, sysroot=sysroot)
    assert (r.slot, r.reason, r.initrd) == ("a", "fallback", None)


# --- the harness itself --------------------------------------------------------

def test_boot_slot_returns_the_slot_and_updates_the_block(env):
    pointer(env, "a", {"a": "trial", "b": "good"}, {"a": 1, "b": 0})
    assert grub_sim.boot_slot(env) == "a"
    assert editenv_list(env)["ABDEPLOY_A_TRIES"] == "0"
    assert grub_sim.boot_slot(env) == "b"


def test_a_hanging_grub_is_cut_off(env):
    pointer(env, "a", {"a": "good"})
    with pytest.raises(grub_sim.GrubSimError, match="did not finish|exited"):
        simulate_boot(env, presets={"abd_dir": "(hd0)/hang"},
                      extra_files={"/hang/abdeploy-select.cfg": b"sleep 600\n"},
                      timeout=2)
