"""The systemd-boot backend (issue 13, point 1) on a sysroot whose ESP is a
directory (SYSROOT/efi): the entries abdeploy writes, the renames
systemd-boot makes when it counts a boot (done here by hand, as the
Automatic Boot Assessment text describes them), and what `bootctl list`
(systemd 252, Debian's systemd package) makes of the entries.

bootctl only lists the root of a mounted file system: each call runs in a
mount namespace of its own where the ESP directory is bind-mounted on
itself (needs root; skipped otherwise), with SYSTEMD_RELAX_ESP_CHECKS=1
because the ESP is not a FAT partition here."""

import json
import os
import shutil
import signal
import subprocess

import pytest

import scenariolib as sl

KARGS = "root=LABEL=root rw console=ttyS0"


def entries_dir(sr):
    return sr.p("efi", "loader", "entries")


def entries(sr):
    return sorted(os.listdir(entries_dir(sr)))


def make(sysroots):
    sr = sysroots.create(bootloader="systemd-boot", init=False)
    os.makedirs(sr.p("efi", "EFI"))
    os.makedirs(sr.p("etc", "abdeploy"), exist_ok=True)
    with open(sr.p("etc", "abdeploy", "abdeploy.conf"), "w") as f:
        f.write("[boot]\nkernel-args=%s\n" % KARGS)
    sr.ok("init", "--os=" + sl.OS_NAME, "--bootloader=systemd-boot")
    sysroots.install_keys(sr, ("trusted.gpg",))
    return sr


def sd_boot_counts(sr, slot):
    """What systemd-boot does before it boots SLOT's counted entry:
    +LEFT-DONE -> +(LEFT-1)-(DONE+1)."""
    name = [n for n in entries(sr) if n.split("-")[2].startswith(slot)][0]
    base, counter = name[:-len(".conf")].rsplit("+", 1)
    left, _, done = counter.partition("-")
    new = "%s+%d-%d.conf" % (base, max(int(left) - 1, 0), int(done or 0) + 1)
    os.rename(os.path.join(entries_dir(sr), name), os.path.join(entries_dir(sr), new))
    sr.set_booted(slot)
    return new


def bootctl(sr):
    """`bootctl list` on the ESP: (the JSON objects in menu order, the
    title bootctl marks as the default)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("bootctl"):
        pytest.skip("bootctl needs root (a private mount namespace) and systemd's bootctl")
    esp = sr.p("efi")
    script = 'mount --bind "$0" "$0" && exec bootctl --no-pager --esp-path="$0" --no-variables "$@"'
    env = dict(sl.clean_env(), SYSTEMD_RELAX_ESP_CHECKS="1")
    out = {}
    for mode in ("--json=short", None):
        args = ["unshare", "-m", "sh", "-c", script, esp] + ([mode] if mode else []) + ["list"]
        p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 0, "%s\n%s%s" % (args, p.stdout, p.stderr)
        out[mode] = p.stdout
    listed = [json.loads(line) for line in out["--json=short"].splitlines() if line.strip()]
    default = [line.split("title:", 1)[1].split("(default)")[0].strip()
               for line in out[None].splitlines() if "title:" in line and "(default)" in line]
    return listed, default[0] if default else None


def slot_of(entry):
    return entry["options"].split()[0].split("=")[1]


def test_lifecycle(sysroots, server, published):
    sr = make(sysroots)
    assert entries(sr) == []
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    assert entries(sr) == ["abdeploy-1-a+3.conf"]
    with open(sr.p("efi", "abdeploy", "a", "vmlinuz"), "rb") as f:
        assert f.read() == published.v1.kernel
    with open(sr.p("efi", "abdeploy", "a", "initramfs.img"), "rb") as f:
        assert f.read() == published.v1.initramfs
    with open(os.path.join(entries_dir(sr), "abdeploy-1-a+3.conf")) as f:
        text = f.read()
    assert "\nlinux /abdeploy/a/vmlinuz\n" in text and "\ninitrd /abdeploy/a/initramfs.img\n" in text
    assert "\noptions abdeploy.slot=a %s\n" % KARGS in text, text
    listed, default = bootctl(sr)
    assert [(slot_of(e), e.get("triesLeft")) for e in listed] == [("a", 3)], listed

    # first boot: systemd-boot counts it, abdeploy sees the trial
    assert sd_boot_counts(sr, "a") == "abdeploy-1-a+2-1.conf"
    a = sr.slot_status("a")
    assert a["state"] == "trial" and a["tries_left"] == 2, a
    sr.ok("mark-good")
    # what systemd-bless-boot good makes of +2-1
    assert entries(sr) == ["abdeploy-1-a.conf"]

    # an update: the entry of b is written aside, then activated in one rename
    sr.ok("stage", "--from=" + server.url, "os/v2")
    assert entries(sr) == ["abdeploy-0-b.staged", "abdeploy-1-a.conf"]
    with open(sr.p("efi", "abdeploy", "b", "vmlinuz"), "rb") as f:
        assert f.read() == published.v2.kernel
    listed, default = bootctl(sr)
    assert [slot_of(e) for e in listed] == ["a"], listed
    sr.ok("activate")
    assert entries(sr) == ["abdeploy-1-a.conf", "abdeploy-2-b+3.conf"]
    listed, default = bootctl(sr)
    assert [(slot_of(e), e.get("triesLeft")) for e in listed] == [("b", 3), ("a", None)], listed
    assert default and "slot b" in default, default
    st = sr.status()
    assert st["primary"] == "b" and sr.slot_status("b", st)["state"] == "trial", st

    # every trial boot of b fails before the health check: the tries run out
    for left in (2, 1, 0):
        sd_boot_counts(sr, "b")
        b = sr.slot_status("b")
        assert b["state"] == "trial" and b["tries_left"] == left, b
    assert entries(sr) == ["abdeploy-1-a.conf", "abdeploy-2-b+0-3.conf"]
    listed, default = bootctl(sr)
    assert [(slot_of(e), e.get("triesLeft"), e.get("triesDone")) for e in listed] == \
        [("a", None, None), ("b", 0, 3)], listed
    assert default and "slot a" in default, default

    # systemd-boot falls back to a; its health check records the rollback
    sr.set_booted("a")
    sr.ok("health-check", "--no-reboot")
    assert entries(sr) == ["abdeploy-2-b+0-3.conf", "abdeploy-3-a.conf"]
    st = sr.status()
    assert st["primary"] == "a" and sr.slot_status("a", st)["state"] == "good", st
    assert sr.slot_status("b", st)["state"] == "bad", st
    events = json.loads(sr.ok("history", "--json").stdout)
    assert any(e.get("type") == "rollback" for e in events), events


def test_mark_bad_is_what_bless_boot_does(sysroots, server):
    sr = make(sysroots)
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    sr.ok("mark-good", "a")
    sr.ok("deploy", "--from=" + server.url, "os/v2")
    assert sd_boot_counts(sr, "b") == "abdeploy-2-b+2-1.conf"
    sr.ok("mark-bad")
    # systemd-bless-boot bad: +0-DONE; the primary goes back to a
    assert entries(sr) == ["abdeploy-2-b+0-1.conf", "abdeploy-3-a.conf"]
    st = sr.status()
    assert st["primary"] == "a" and sr.slot_status("b", st)["state"] == "bad", st
    listed, default = bootctl(sr)
    assert [(slot_of(e), e.get("triesLeft")) for e in listed] == [("a", None), ("b", 0)], listed


def test_rollback_of_an_unbooted_trial(sysroots, server):
    sr = make(sysroots)
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    sr.ok("mark-good", "a")
    sr.ok("deploy", "--from=" + server.url, "os/v2")
    sr.ok("rollback")
    # a rollback toggles (issue 16): b keeps its counter and stays on trial,
    # below a's higher generation, so systemd-boot boots a
    assert entries(sr) == ["abdeploy-2-b+3.conf", "abdeploy-3-a.conf"]
    st = sr.status()
    assert st["primary"] == "a" and sr.slot_status("b", st)["state"] == "trial", st
    listed, default = bootctl(sr)
    assert [(slot_of(e), e.get("triesLeft")) for e in listed] == [("a", None), ("b", 3)], listed
    sr.ok("rollback")
    assert entries(sr) == ["abdeploy-3-a.conf", "abdeploy-4-b+3.conf"]
    st = sr.status()
    assert st["primary"] == "b" and sr.slot_status("b", st)["state"] == "trial", st


def test_xbootldr_and_refusals(sysroots, server):
    sr = sysroots.create(bootloader="systemd-boot", init=False)
    r = sr.run("init", "--os=" + sl.OS_NAME, "--bootloader=systemd-boot")
    assert r.returncode == 1 and "[boot] esp-path" in r.stderr, r.describe()
    os.makedirs(sr.p("boot", "efi", "EFI"))
    os.makedirs(sr.p("xbl"))
    os.makedirs(sr.p("etc", "abdeploy"), exist_ok=True)
    with open(sr.p("etc", "abdeploy", "abdeploy.conf"), "w") as f:
        f.write("[boot]\nxbootldr-path=xbl\n")
    sr.ok("init", "--os=" + sl.OS_NAME, "--bootloader=systemd-boot")
    sysroots.install_keys(sr, ("trusted.gpg",))
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    assert os.listdir(sr.p("xbl", "loader", "entries")) == ["abdeploy-1-a+3.conf"]
    assert os.path.isfile(sr.p("xbl", "abdeploy", "a", "vmlinuz"))
    os.makedirs(sr.p("boot", "efi", "loader"))
    with open(sr.p("boot", "efi", "loader", "loader.conf"), "w") as f:
        f.write("timeout 3\ndefault abdeploy-1-a+3.conf\n")
    r = sr.run("mark-good", "a")
    assert r.returncode == 1 and 'sets "default abdeploy-1-a+3.conf"' in r.stderr, r.describe()
    assert os.listdir(sr.p("xbl", "loader", "entries")) == ["abdeploy-1-a+3.conf"]


def entry_kernel(sr, slot):
    """The bytes of the kernel file that SLOT's entry on the ESP names."""
    name = [n for n in entries(sr) if n.split("-")[2].startswith(slot)][0]
    with open(os.path.join(entries_dir(sr), name)) as f:
        text = f.read()
    linux = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("linux ")]
    assert len(linux) == 1, text
    with open(sr.p("efi", linux[0].lstrip("/")), "rb") as f:
        return f.read(), text


def test_restore_reinstalls_the_entry_of_a_slot_checked_out_again(sysroots, server, published,
                                                                  tmp_path):
    """A restore that checks a slot out again also puts that slot's kernel
    and entry back on the ESP, with the restored [boot] kernel-args
    (issue 13)."""
    assert published.v1.kernel != published.v3.kernel
    sr = make(sysroots)
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    sr.ok("mark-good", "a")
    sr.ok("deploy", "--from=" + server.url, "os/v2")
    sr.ok("mark-good", "b")
    archive = str(tmp_path / "backup.tar.zst")
    sr.ok("backup", "--output=" + archive)
    # after the backup: other kernel args, and slot a rebuilt from v3
    with open(sr.p("etc", "abdeploy", "abdeploy.conf"), "w") as f:
        f.write("[boot]\nkernel-args=quiet\n")
    sr.ok("stage", "--from=" + server.url, "os/v3")
    assert entry_kernel(sr, "a")[0] == published.v3.kernel

    p = sr.ok("restore", "--path=" + archive)
    assert "slot a did not hold commit %s" % published.v1.commit in p.stdout + p.stderr, p
    with open(os.path.join(sr.boot_dir("a"), "vmlinuz"), "rb") as f:
        restored = f.read()
    assert restored == published.v1.kernel
    kernel, text = entry_kernel(sr, "a")
    assert kernel == restored, text
    assert "\noptions abdeploy.slot=a %s\n" % KARGS in text, text
    assert "1.0 (slot a)" in text, text
    st = sr.status()
    assert st["primary"] == "b" and sr.slot_status("a", st)["state"] == "good", st
    sr.ok("rollback")
    assert entry_kernel(sr, "a")[0] == published.v1.kernel


def make_custom_esp(sysroots):
    """A systemd-boot sysroot whose ESP is SYSROOT/myesp, named only by
    [boot] esp-path: none of systemd's default places holds an ESP."""
    sr = sysroots.create(bootloader="systemd-boot", init=False)
    os.makedirs(sr.p("myesp", "EFI"))
    os.makedirs(sr.p("etc", "abdeploy"), exist_ok=True)
    with open(sr.p("etc", "abdeploy", "abdeploy.conf"), "w") as f:
        f.write("[boot]\nesp-path=myesp\nkernel-args=%s\n" % KARGS)
    sr.ok("init", "--os=" + sl.OS_NAME, "--bootloader=systemd-boot")
    sysroots.install_keys(sr, ("trusted.gpg",))
    return sr


def test_restore_installs_the_entry_on_the_configured_esp(sysroots, server, published, tmp_path):
    """restore binds the bootloader to the restored [boot] esp-path: the
    slot it checks out again gets its kernel and entry on that ESP, not on
    systemd's default one (issue 13)."""
    sr = make_custom_esp(sysroots)
    esp_entries = sr.p("myesp", "loader", "entries")
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    sr.ok("mark-good", "a")
    sr.ok("deploy", "--from=" + server.url, "os/v2")
    sr.ok("mark-good", "b")
    archive = str(tmp_path / "backup.tar.zst")
    sr.ok("backup", "--output=" + archive)
    sr.ok("stage", "--from=" + server.url, "os/v3")

    p = sr.ok("restore", "--path=" + archive)
    assert "slot a did not hold commit %s" % published.v1.commit in p.stdout + p.stderr, p
    names = sorted(os.listdir(esp_entries))
    assert len(names) == 2 and [n.split("-")[2][0] for n in names] == ["a", "b"], names
    with open(sr.p("myesp", "abdeploy", "a", "vmlinuz"), "rb") as f:
        assert f.read() == published.v1.kernel
    text = open(os.path.join(esp_entries, names[0])).read()
    assert "\noptions abdeploy.slot=a %s\n" % KARGS in text, text
    for default in ("efi", "boot", os.path.join("boot", "efi")):
        assert not os.path.exists(sr.p(default, "loader")), default
    st = sr.status()
    assert st["primary"] == "b" and sr.slot_status("a", st)["state"] == "good", st


@pytest.mark.parametrize("point", ["restore:slot-swapped", "restore:kernel-installed"])
def test_restore_killed_before_the_entry_is_installed(sysroots, server, published, tmp_path,
                                                      point):
    """A restore killed after it swapped a slot's new tree in but before
    that slot's entry is on the ESP leaves the slot not bootable (its entry
    staged, which systemd-boot does not read), and a restore run again
    installs the restored kernel and entry (issue 13)."""
    sr = make(sysroots)
    sr.ok("deploy", "--from=" + server.url, "os/v1")
    sr.ok("mark-good", "a")
    sr.ok("deploy", "--from=" + server.url, "os/v2")
    sr.ok("mark-good", "b")
    archive = str(tmp_path / "backup.tar.zst")
    sr.ok("backup", "--output=" + archive)
    sr.ok("stage", "--from=" + server.url, "os/v3")

    r = sr.run("restore", "--path=" + archive, env={"ABDEPLOY_CRASH_AT": point})
    assert r.returncode == -signal.SIGKILL, r.describe()
    a_entries = [n for n in entries(sr) if n.split("-")[2].startswith("a")]
    assert a_entries and all(n.endswith(".staged") for n in a_entries), entries(sr)

    sr.ok("restore", "--path=" + archive)
    with open(os.path.join(sr.boot_dir("a"), "vmlinuz"), "rb") as f:
        assert f.read() == published.v1.kernel
    kernel, text = entry_kernel(sr, "a")
    assert kernel == published.v1.kernel, text
    assert "1.0 (slot a)" in text, text
    st = sr.status()
    assert st["primary"] == "b" and sr.slot_status("a", st)["state"] == "good", st
    assert not [n for n in os.listdir(sr.p("abdeploy", "slots")) if n.startswith(".")]
