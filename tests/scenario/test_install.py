"""abdeploy install (issue 13): a signed commit to a first disk image.

The image is read back without mounting anything: sfdisk -d for the
partition table, debugfs on the root partition, mtools on the ESP, and the
raw bytes of the MBR and the BIOS boot partition.  Booting these images is
the VM suite's job (tests/vm); here: the layout, the refusals, and that an
interrupted or refused install leaves no image behind.
"""

import json
import os
import shutil
import struct

import pytest

import scenariolib as sl
import abtest as at  # tests/lib, put on sys.path by scenariolib

SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = ["sfdisk", "mkfs.ext4", "debugfs", "mkfs.fat", "mcopy", "mdir", "grub-mkimage",
         "grub-editenv"]
MIB = 1 << 20

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS)
    or not os.path.isdir("/usr/lib/grub/i386-pc") or not os.path.isdir("/usr/lib/grub/x86_64-efi"),
    reason="needs %s and GRUB's i386-pc and x86_64-efi modules (tools/install-deps.sh)"
    % ", ".join(TOOLS))


def install(binary, workdir, disk, *args, env=None):
    cmdline = os.path.join(workdir, "install-cmdline")
    with open(cmdline, "w") as f:
        f.write("quiet abdeploy.slot=b\n")     # the host's own slot must not matter
    e = sl.clean_env(extra={"ABDEPLOY_DATADIR": os.path.join(SRCDIR, "data"),
                            "ABDEPLOY_CMDLINE": cmdline})
    e.update(env or {})
    cmd = [binary, "install", "--disk=" + disk] + list(args)
    p = at.run(cmd, env=e, check=False, timeout=300)
    return sl.Result(cmd, p.returncode, p.stdout.decode(errors="replace"),
                     p.stderr.decode(errors="replace"), 0)


def good_args(published, keyfiles, bootloader="grub-bios"):
    return ["--size=160M", "--bootloader=" + bootloader, "--from=" + published.path,
            "--os=testos", "--trusted-key=" + keyfiles["trusted.gpg"],
            "--kernel-arg=console=ttyS0,115200", "--kernel-arg=quiet", "os/v1"]


def partitions(disk):
    out = sl.run(["sfdisk", "--json", disk]).stdout.decode()
    return json.loads(out)["partitiontable"]


def debugfs(disk, offset, request):
    return sl.run(["debugfs", "-R", request, "%s?offset=%d" % (disk, offset)]).stdout


def leftovers(directory, disk):
    return sorted(n for n in os.listdir(directory) if n.startswith(os.path.basename(disk)))


@pytest.fixture
def outdir(workdir, request):
    d = os.path.join(workdir, "install-" + request.node.name.replace("[", "-").rstrip("]"))
    at.rmtree(d)
    os.makedirs(d)
    return d


def check_root(disk, root_part, published, kargs):
    off = root_part["start"] * 512
    rec = json.loads(debugfs(disk, off, "cat /abdeploy/state/slot-a.json"))
    assert rec["commit"] == published.v1.commit and rec["version"] == "1.0", rec
    env_block = debugfs(disk, off, "cat /boot/grub/grubenv")
    assert len(env_block) == 1024
    assert b"ABDEPLOY_PRIMARY=a\n" in env_block and b"ABDEPLOY_A_STATE=good\n" in env_block
    cfg = debugfs(disk, off, "cat /boot/grub/grub.cfg").decode()
    for want in ['source "$prefix/abdeploy.cfg"', "serial --unit=0 --speed=115200"] + kargs:
        assert want in cfg, cfg
    for script in ("abdeploy.cfg", "abdeploy-select.cfg"):
        with open(os.path.join(SRCDIR, "data/grub", script), "rb") as f:
            assert debugfs(disk, off, "cat /boot/grub/" + script) == f.read(), script
    uuid = sl.run(["blkid", "-p", "-o", "value", "-s", "UUID", "--offset", str(off),
                   disk]).stdout.decode().strip() if shutil.which("blkid") else None
    if uuid:
        assert "root=UUID=%s " % uuid in cfg, cfg
    key = debugfs(disk, off, "ls -p /etc/abdeploy/trusted.gpg.d").decode()
    assert "publisher.gpg" in key
    # the booted system reads its slot's /etc: the key and [boot] kernel-args
    # are there too, as local files that later stages carry over
    etc = "/abdeploy/slots/a/etc/abdeploy/"
    assert "publisher.gpg" in debugfs(disk, off, "ls -p " + etc + "trusted.gpg.d").decode()
    # grub keeps the kernel arguments in grub.cfg: no [boot] kernel-args,
    # which an abdeploy older than that key would refuse
    for where in ("/etc/abdeploy/", etc):
        assert "50-install.conf" not in debugfs(disk, off, "ls -p %sconf.d" % where).decode()


def test_install_grub_bios(abdeploy_bin, workdir, published, keyfiles, outdir):
    disk = os.path.join(outdir, "bios.img")
    r = install(abdeploy_bin, workdir, disk, *good_args(published, keyfiles))
    assert r.returncode == 0, r.describe()
    assert "slot a good" in r.output, r.describe()
    assert os.path.getsize(disk) == 160 * MIB
    assert leftovers(outdir, disk) == ["bios.img"], "staging files left behind"
    table = partitions(disk)
    assert table["label"] == "gpt"
    bios, root = table["partitions"]
    assert bios["type"] == "21686148-6449-6E6F-744E-656564454649" and bios["start"] == 2048
    assert root["type"] == "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    check_root(disk, root, published, ["panic=5", "console=ttyS0,115200 quiet"])
    with open(disk, "rb") as f:
        mbr = f.read(512)
        f.seek(bios["start"] * 512)
        core = f.read(512)
    with open("/usr/lib/grub/i386-pc/boot.img", "rb") as f:
        boot = f.read()
    # boot.img's code (its LBA of core.img patched to the BIOS boot
    # partition), the protective MBR's table kept
    assert mbr[:0x5c] == boot[:0x5c] and mbr[0x64:440] == boot[0x64:440]
    assert struct.unpack_from("<Q", mbr, 0x5c)[0] == bios["start"]
    assert mbr[450] == 0xEE and mbr[510:512] == b"\x55\xaa"
    # core.img's first block list entry points at its second sector
    assert struct.unpack_from("<Q", core, 500)[0] == bios["start"] + 1


def test_install_grub_efi(abdeploy_bin, workdir, published, keyfiles, outdir):
    disk = os.path.join(outdir, "efi.img")
    r = install(abdeploy_bin, workdir, disk, *good_args(published, keyfiles, "grub-efi"))
    assert r.returncode == 0, r.describe()
    table = partitions(disk)
    esp, root = table["partitions"]
    assert esp["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    listing = sl.run(["mdir", "-b", "-i", "%s@@%d" % (disk, esp["start"] * 512),
                      "::/EFI/BOOT"]).stdout.decode()
    assert "BOOTX64.EFI" in listing.upper(), listing
    check_root(disk, root, published, ["panic=5"])
    assert debugfs(disk, root["start"] * 512, "ls -p /boot/grub/x86_64-efi").count(b".mod") > 10


@pytest.mark.parametrize("ref,key,what", [
    ("os/unsigned", "trusted.gpg", "no signature"),
    ("os/evil", "trusted.gpg", "untrusted key"),
    ("os/v1", "untrusted.gpg", "key not trusted"),
])
def test_install_refuses_unverified_commit(abdeploy_bin, workdir, published, keyfiles, outdir,
                                           ref, key, what):
    disk = os.path.join(outdir, "refused.img")
    args = ["--size=160M", "--bootloader=grub-bios", "--from=" + published.path,
            "--trusted-key=" + keyfiles[key], ref]
    r = install(abdeploy_bin, workdir, disk, *args)
    assert r.returncode == sl.EXIT_VERIFY, r.describe()
    assert leftovers(outdir, disk) == [], "a refused install left files: %s" % what


def test_install_interrupted_leaves_no_image(abdeploy_bin, workdir, published, keyfiles, outdir):
    disk = os.path.join(outdir, "cut.img")
    r = install(abdeploy_bin, workdir, disk, *good_args(published, keyfiles),
                env={"ABDEPLOY_CRASH_AT": "stage:swapped"})
    if "crash point" not in r.output and r.returncode == 0:
        pytest.skip("abdeploy was built without crash points")
    assert r.returncode == 137 or r.returncode < 0, r.describe()
    assert not os.path.exists(disk), "an interrupted install left an image named like a done one"
    # a new run replaces the leftover PATH.tmp and succeeds
    r = install(abdeploy_bin, workdir, disk, *good_args(published, keyfiles))
    assert r.returncode == 0, r.describe()
    assert leftovers(outdir, disk) == ["cut.img"], "the leftovers were not replaced"


@pytest.mark.parametrize("args,message", [
    (["--bootloader=lilo"], "unknown bootloader lilo"),
    (["--bootloader="], "bootloader"),
    (["--size="], "not a size"),
    (["--size=12Q"], "not a size"),
    (["--size=10M"], "give a larger --size"),
    (["--kernel-arg=a\"b"], "not allowed"),
    (["--kernel-arg=root=/dev/sda1"], "root=UUID"),
    (["--kernel-arg=abdeploy.slot=b"], "abdeploy.slot"),
    (["--os=../x"], "not a valid name"),
    (["--trusted-key=/nonexistent.gpg"], "no such file"),
    (["--trusted-key=/etc/hostname"], "must end in .gpg"),
    (["--from="], "--from"),
    (["NOREF2"], "takes one REF or COMMIT"),
])
def test_install_bad_input(abdeploy_bin, workdir, published, keyfiles, outdir, args, message):
    disk = os.path.join(outdir, "bad.img")
    base = {"--size": "--size=160M", "--bootloader": "--bootloader=grub-bios",
            "--from": "--from=" + published.path,
            "--trusted-key": "--trusted-key=" + keyfiles["trusted.gpg"]}
    given = {a.split("=", 1)[0] for a in args}
    full = [v for k, v in base.items() if k not in given] + args + ["os/v1"]
    r = install(abdeploy_bin, workdir, disk, *full)
    assert r.returncode == sl.EXIT_USAGE, r.describe()
    assert message in r.stderr, r.describe()
    assert leftovers(outdir, disk) == []


def test_install_never_overwrites(abdeploy_bin, workdir, published, keyfiles, outdir):
    disk = os.path.join(outdir, "mine.img")
    with open(disk, "w") as f:
        f.write("the user's file\n")
    r = install(abdeploy_bin, workdir, disk, *good_args(published, keyfiles))
    assert r.returncode == sl.EXIT_USAGE and "never overwrites" in r.stderr, r.describe()
    with open(disk) as f:
        assert f.read() == "the user's file\n"
    r = install(abdeploy_bin, workdir, os.path.join(outdir, "nosize.img"),
                *[a for a in good_args(published, keyfiles) if not a.startswith("--size")])
    assert r.returncode == sl.EXIT_USAGE and "--size" in r.stderr, r.describe()


class LoopDevice:
    """A loop device over BACKING (losetup), detached on exit: the block
    device case of --disk.  Skips where the machine lends no loop device."""

    def __init__(self, backing):
        self.backing = backing
        self.dev = None

    def __enter__(self):
        if shutil.which("losetup") is None:
            pytest.skip("no losetup (util-linux mount package)")
        p = sl.run(["losetup", "--find", "--show", self.backing], check=False)
        if p.returncode != 0:
            pytest.skip("no loop device here: losetup said %s" % p.stderr.decode().strip())
        self.dev = p.stdout.decode().strip()
        return self.dev

    def __exit__(self, *exc):
        sl.run(["losetup", "--detach", self.dev], check=False)


def test_install_block_device(abdeploy_bin, workdir, published, keyfiles, outdir):
    """--disk=BLOCK-DEVICE: the device keeps its size (no --size), whatever
    it held before is wiped, and the result is the same layout as an image
    file's, read back from the loop device's backing file."""
    backing = os.path.join(outdir, "backing.img")
    with open(backing, "wb") as f:
        f.truncate(160 * MIB)
        f.write(b"an old file system" * 100)     # not empty: install wipes it
    args = [a for a in good_args(published, keyfiles) if not a.startswith("--size")]
    with LoopDevice(backing) as dev:
        r = install(abdeploy_bin, workdir, dev, "--size=160M", *args)
        assert r.returncode == sl.EXIT_USAGE and "block device" in r.stderr, r.describe()
        held = os.open(dev, os.O_RDONLY | os.O_EXCL)     # as a mount holds it
        try:
            r = install(abdeploy_bin, workdir, dev, *args)
        finally:
            os.close(held)
        assert r.returncode != 0 and "in use" in r.stderr, r.describe()
        with open(backing, "rb") as f:
            assert f.read(18) == b"an old file system", "a device in use was written to"
        r = install(abdeploy_bin, workdir, dev, *args)
        assert r.returncode == 0, r.describe()
        assert "slot a good" in r.output, r.describe()
    assert os.path.getsize(backing) == 160 * MIB
    assert leftovers(outdir, backing) == ["backing.img"], "files left beside the device"
    table = partitions(backing)
    bios, root = table["partitions"]
    assert bios["type"] == "21686148-6449-6E6F-744E-656564454649"
    assert root["start"] * 512 + root["size"] * 512 <= 160 * MIB - MIB
    check_root(backing, root, published, ["panic=5", "console=ttyS0,115200 quiet"])


# --------------------------------------------------------------------------
# --bootloader=uboot (issue 14): MBR, a bootable FAT boot partition with
# boot.scr, the kernels and the environment in two files, then ext4.

UBOOT_TOOLS = ["mkimage", "fw_printenv"]
ENV_FILES = ("uboot.env", "uboot-redund.env")


def fake_bzimage():
    """A kernel file with the x86 boot protocol's "HdrS" at 0x202: enough for
    the install to choose zboot (it never runs)."""
    data = bytearray(b"\x90" * 4096)
    data[0x202:0x206] = b"HdrS"
    return bytes(data)


@pytest.fixture(scope="module")
def uboot_commit(published):
    """os/uboot-x86: v1's image with an x86 kernel header, signed."""
    return published._commit("uboot-x86", "1.0", "os/uboot-x86", published.keys.trusted,
                             extra={"usr/lib/modules/%s/vmlinuz" % sl.KVER1: fake_bzimage()})


def fat_file(disk, offset, name):
    return sl.run(["mtype", "-i", "%s@@%d" % (disk, offset), "::/" + name]).stdout


@pytest.mark.skipif(any(shutil.which(t) is None for t in UBOOT_TOOLS),
                    reason="needs mkimage (u-boot-tools) and fw_printenv (libubootenv-tool)")
def test_install_uboot(abdeploy_bin, workdir, published, keyfiles, outdir, uboot_commit):
    disk = os.path.join(outdir, "uboot.img")
    args = good_args(published, keyfiles, "uboot")[:-1] + ["--size=400M", "os/uboot-x86"]
    r = install(abdeploy_bin, workdir, disk, *args)
    assert r.returncode == 0, r.describe()
    assert leftovers(outdir, disk) == ["uboot.img"], "staging files left behind"
    table = partitions(disk)
    assert table["label"] == "dos"
    boot, root = table["partitions"]
    assert boot["type"] == "c" and boot.get("bootable") and boot["start"] == 2048
    assert boot["size"] * 512 == 256 * MIB and root["type"] == "83"
    fat = boot["start"] * 512
    # the kernels are on the FAT partition (the device's /boot), not in the root
    kernel = fat_file(disk, fat, "abdeploy/a/vmlinuz")
    assert kernel == fake_bzimage()
    off = root["start"] * 512
    assert "vmlinuz" not in debugfs(disk, off, "ls -p /boot").decode()
    rec = json.loads(debugfs(disk, off, "cat /abdeploy/state/slot-a.json"))
    assert rec["commit"] == uboot_commit.commit, rec
    # the environment: two copies that libubootenv reads, slot a good and primary
    envdir = os.path.join(outdir, "env")
    os.makedirs(envdir)
    config = os.path.join(envdir, "fw_env.config")
    with open(config, "w") as f:
        for name in ENV_FILES:
            data = fat_file(disk, fat, name)
            assert len(data) == 0x4000, name
            with open(os.path.join(envdir, name), "wb") as e:
                e.write(data)
            f.write("%s 0x0 0x4000\n" % os.path.join(envdir, name))
    env = dict(l.split("=", 1) for l in sl.run(["fw_printenv", "-c", config]).stdout.decode()
               .splitlines())
    assert env["ABDEPLOY_PRIMARY"] == "a" and env["ABDEPLOY_A_STATE"] == "good", env
    assert env["ABDEPLOY_B_STATE"] == "none", env
    # fw_env.config as the device sees it, in the sysroot and in slot a's /etc
    for path in ("/etc/fw_env.config", "/abdeploy/slots/a/etc/fw_env.config"):
        text = debugfs(disk, off, "cat " + path).decode()
        assert "/boot/uboot.env 0x0 0x4000" in text and "/boot/uboot-redund.env 0x0 0x4000" in text
    # slot a's fstab mounts the FAT partition where fw_env.config reads it:
    # the installed image needs no step of the builder's to find its env
    fstab = debugfs(disk, off, "cat /abdeploy/slots/a/etc/fstab").decode()
    assert "\nLABEL=ABDEPLOY /sysroot/boot vfat defaults 0 2\n" in "\n" + fstab, fstab
    # boot.scr: a legacy script image (magic, type script) of the board's
    # settings followed by the shipped abdeploy.cmd
    scr = fat_file(disk, fat, "boot.scr")
    assert scr[:4] == b"\x27\x05\x19\x56" and scr[30] == 6, "not a U-Boot script image"
    first_len = struct.unpack_from(">I", scr, 64)[0]
    text = scr[72:72 + first_len].decode()
    with open(os.path.join(SRCDIR, "data/uboot/abdeploy.cmd")) as f:
        assert text.endswith(f.read())
    uuid = sl.run(["blkid", "-p", "-o", "value", "-s", "UUID", "--offset", str(off),
                   disk]).stdout.decode().strip() if shutil.which("blkid") else "."
    for want in ("abdeploy_boot=zboot\n", "abdeploy_bootdir=/abdeploy\n",
                 "abdeploy_envfile=/uboot.env\n", "abdeploy_envfile_redund=/uboot-redund.env\n",
                 "abdeploy_envsize=0x4000\n", "console=ttyS0,115200 quiet panic=5\"\n",
                 'abdeploy_kargs="root=UUID=%s' % uuid):
        assert want in text, text[:600]


@pytest.mark.skipif(any(shutil.which(t) is None for t in UBOOT_TOOLS),
                    reason="needs mkimage (u-boot-tools) and fw_printenv (libubootenv-tool)")
def test_install_uboot_refuses_unknown_kernel(abdeploy_bin, workdir, published, keyfiles, outdir):
    """v1's kernel is no bzImage, arm64 Image or zImage: U-Boot could not
    boot it; the install says so and leaves no image."""
    disk = os.path.join(outdir, "uboot.img")
    args = good_args(published, keyfiles, "uboot")[:-1] + ["--size=400M", "os/v1"]
    r = install(abdeploy_bin, workdir, disk, *args)
    assert r.returncode != 0 and "neither an x86 bzImage" in r.stderr, r.describe()
    assert leftovers(outdir, disk) == []


def test_install_systemd_boot(abdeploy_bin, workdir, published, keyfiles, outdir):
    """systemd-boot: the ESP holds systemd-boot, loader.conf without
    "default", slot a's entry (good: no counter) with root=UUID= and the
    kernel arguments, and slot a's kernel; [boot] kernel-args is left in the
    sysroot's and in slot a's /etc for the entries of later stages."""
    if not os.path.exists("/usr/lib/systemd/boot/efi/systemd-bootx64.efi"):
        pytest.skip("systemd-boot-efi is not installed")
    disk = os.path.join(outdir, "sdboot.img")
    args = good_args(published, keyfiles, "systemd-boot")
    args[0] = "--size=700M"
    r = install(abdeploy_bin, workdir, disk, *args)
    assert r.returncode == 0, r.describe()
    esp, root = partitions(disk)["partitions"]
    assert esp["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    img = "%s@@%d" % (disk, esp["start"] * 512)
    listing = sl.run(["mdir", "-/", "-b", "-i", img, "::/"]).stdout.decode()
    for want in ("::/EFI/BOOT/BOOTX64.EFI", "::/EFI/systemd/systemd-bootx64.efi",
                 "::/loader/loader.conf", "::/abdeploy/a/vmlinuz"):
        assert want in listing, listing
    entries = [l for l in listing.splitlines()
               if l.startswith("::/loader/entries/") and not l.endswith("/")]
    assert len(entries) == 1 and entries[0].endswith("-a.conf") and "+" not in entries[0], entries
    conf = sl.run(["mtype", "-i", img, "::/loader/loader.conf"]).stdout.decode()
    assert "timeout 0" in conf and not any(l.startswith("default") for l in conf.splitlines())
    entry = sl.run(["mtype", "-i", img, entries[0]]).stdout.decode()
    options = [l for l in entry.splitlines() if l.startswith("options ")][0]
    assert "abdeploy.slot=a" in options and "root=UUID=" in options, entry
    assert "console=ttyS0,115200 quiet panic=5" in options, entry
    off = root["start"] * 512
    for where in ("/etc/abdeploy/", "/abdeploy/slots/a/etc/abdeploy/"):
        text = debugfs(disk, off, "cat %sconf.d/50-install.conf" % where).decode()
        assert "[boot]\nkernel-args=root=UUID=" in text and "panic=5" in text, (where, text)
    assert debugfs(disk, off, "ls -p /efi").count(b"/") > 0      # the mount point, empty


# --------------------------------------------------------------------------
# Compatible OS (issue 16)

@pytest.fixture(scope="module")
def otheros_repo(workdir, keys, abdeploy_bin):
    """A repo whose 1.0 is made (signed) for the OS "otheros"."""
    root = os.path.join(workdir, "install-otheros")
    repo = os.path.join(root, "repo")
    tree = sl.write_tree(os.path.join(root, "tree"), sl.image_spec("1.0"))
    sl.run([abdeploy_bin, "publish", "commit", "--repo=" + repo, "--tree=" + tree,
            "--version=1.0", "--branch=os/v1", "--os=otheros", "--gpg-sign=" + keys.trusted,
            "--gpg-homedir=" + keys.homedir], env=keys.env)
    return repo


def test_install_takes_the_commits_os(abdeploy_bin, workdir, otheros_repo, keyfiles, outdir):
    """Without --os the new sysroot takes the OS the commit is made for;
    with another --os the install is refused (exit 3) and leaves no image."""
    disk = os.path.join(outdir, "disk.img")
    args = ["--size=160M", "--bootloader=grub-bios", "--from=" + otheros_repo,
            "--trusted-key=" + keyfiles["trusted.gpg"], "os/v1"]
    r = install(abdeploy_bin, workdir, disk, "--os=testos", *args)
    assert r.returncode == sl.EXIT_VERIFY, r.describe()
    assert '"otheros"' in r.stderr and '"testos"' in r.stderr, r.describe()
    assert leftovers(outdir, disk) == []
    r = install(abdeploy_bin, workdir, disk, *args)
    assert r.returncode == sl.EXIT_OK, r.describe()
    root_part = partitions(disk)["partitions"][-1]
    state = json.loads(debugfs(disk, root_part["start"] * 512, "cat /abdeploy/state/sysroot.json"))
    assert state["os"] == "otheros", state
