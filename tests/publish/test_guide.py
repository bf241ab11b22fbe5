"""docs/building-an-appliance.md, run (issue 16, point 3).

The guide's commands run here as it gives them, in bash, with real gpg keys,
the ostree CLI and the built abdeploy: on a small fake debootstrap tree
(top-level etc/, boot/vmlinuz-1.0) instead of an mmdebstrap root, in a
temporary directory instead of /srv/signing, and with the device as a
sysroot directory (`abdeploy --sysroot=DEVICE`). Every command line a step
runs must appear in the guide word for word (GUIDE_ONLY lists the few the
test adapts), so the guide cannot drift from what works."""

import json
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "lib"))
import abtest as at  # noqa: E402

GUIDE = os.path.join(at.SRC_ROOT, "docs", "building-an-appliance.md")
# The guide's gpg asks for a passphrase; the test's gpg runs unattended.
BATCH = ("gpg --quick-gen-key", "gpg --batch --passphrase '' --quick-gen-key")
INSTALL_TOOLS = ["sfdisk", "mkfs.ext4", "debugfs", "mkfs.fat", "mcopy", "grub-mkimage",
                 "grub-editenv"]


def guide_text():
    with open(GUIDE) as f:
        return f.read()


class Guide:
    """The guide's shell in WORKDIR: signing box (GNUPGHOME), device
    (DEVICE, a sysroot) and the abdeploy under test."""

    def __init__(self, workdir):
        self.dir = workdir
        self.device = os.path.join(workdir, "device")
        self.gnupg = os.path.join(workdir, "gnupg")
        self.binary = at.private_binary(workdir)
        cmdline = os.path.join(workdir, "cmdline")
        with open(cmdline, "w") as f:
            f.write("quiet\n")      # an offline device: no abdeploy.slot=
        self.env = at.clean_env(home=workdir, extra={
            "GNUPGHOME": self.gnupg, "ABDEPLOY": self.binary, "DEVICE": self.device,
            "ABDEPLOY_CMDLINE": cmdline,
            "ABDEPLOY_DATADIR": os.path.join(at.SRC_ROOT, "data")})
        os.makedirs(self.gnupg, mode=0o700)
        self.text = guide_text()

    def run(self, script, where="publisher", check=True, verbatim=True):
        """Run SCRIPT (lines of the guide) in bash -e; with VERBATIM, each
        line must be in the guide. WHERE: "publisher" or "device" (abdeploy
        then works on the sysroot DEVICE)."""
        lines = [ln for ln in script.strip("\n").splitlines()]
        if verbatim:
            for ln in lines:
                assert ln.strip() == "" or ln in self.text, \
                    "not in %s: %r" % (os.path.basename(GUIDE), ln)
        prelude = ['abdeploy() { "$ABDEPLOY" "$@"; }']
        if where == "device":
            prelude = ['abdeploy() { "$ABDEPLOY" --sysroot="$DEVICE" "$@"; }']
        body = "\n".join(prelude + [ln.replace(*BATCH) for ln in lines]) + "\n"
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=self.dir, env=self.env,
                           capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
        out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        if check:
            assert p.returncode == 0, "exit %d:\n%s\n%s" % (p.returncode, body, out)
        return p.returncode, out

    def var(self, name, script):
        """The value SCRIPT (guide lines that set shell variable NAME) gives."""
        _, out = self.run(script + '\necho "%s=${%s}"' % (name, name), verbatim=False)
        return [ln for ln in out.splitlines() if ln.startswith(name + "=")][-1].split("=", 1)[1]

    def status(self):
        p = subprocess.run([self.binary, "--sysroot=" + self.device, "status", "--json"],
                           env=self.env, capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr.decode()
        return json.loads(p.stdout)

    def primary_version(self):
        st = self.status()
        return at.slot_status(st, st["primary"])["version"]


def debootstrap_tree(root, version, keys=("releases-2027.asc",)):
    """What mmdebstrap makes, in small: /etc at the top (os-release a link
    to ../usr/lib/os-release), the kernel as boot/vmlinuz-1.0 with
    boot/initrd.img-1.0, modules in usr/lib/modules/1.0; plus what section 2
    of the guide adds (trusted keys, abdeploy.conf) is done by the guide's
    own commands. KEYS: the public keys of the workdir to ship."""
    at.write_tree(root, {
        "etc/os-release": ("link", "../usr/lib/os-release"),
        "etc/hostname": "appliance\n",
        "usr/lib/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n',
        "usr/bin/app": ("#!/bin/sh\necho app %s\n" % version, 0o755),
        "usr/lib/modules/1.0/kernel/fs/ext4.ko": "module\n",
        "boot/vmlinuz-1.0": b"FAKEKERNEL\n" + at.blob("kernel", 4096),
        "boot/initrd.img-1.0": b"FAKEINITRD\n" + at.blob("initrd", 2048),
        "boot/config-1.0": "CONFIG_EXT4_FS=y\n",
        "var": ("dir",),
    }, replace=True)
    tdir = os.path.join(root, "etc", "abdeploy", "trusted.gpg.d")
    os.makedirs(tdir, exist_ok=True)
    for k in keys:
        shutil.copy(os.path.join(os.path.dirname(root), k), tdir)
    return root


SECTION1 = """\
mkdir -p -m 700 "$GNUPGHOME"
gpg --quick-gen-key "Example Appliance releases 2027 <releases@example.org>" rsa3072 sign 2y
KEY=$(gpg --with-colons --list-secret-keys releases@example.org | awk -F: '$1 == "fpr" { print $10; exit }')
gpg --export --armor "$KEY" > releases-2027.asc
"""
KEY = """KEY=$(gpg --with-colons --list-secret-keys releases@example.org | awk -F: '$1 == "fpr" { print $10; exit }')"""
NEW = """NEW=$(gpg --with-colons --list-secret-keys releases-2028@example.org | awk -F: '$1 == "fpr" { print $10; exit }')"""
SECTION2 = """\
install -D -m 644 releases-2027.asc rootfs/etc/abdeploy/trusted.gpg.d/releases-2027.asc
cat > rootfs/etc/abdeploy/abdeploy.conf <<'EOF'
[update]
url=https://updates.example.org/repo
channel=stable
EOF
"""
SECTION3 = """\
abdeploy publish commit --repo=repo --tree=rootfs --version=1.0 \\
    --os=example-appliance --move-etc --move-boot --gpg-sign="$KEY"
"""
SECTION4 = """\
abdeploy publish release --repo=repo --channel=stable --version=1.0 --gpg-sign="$KEY"
"""
SECTION5 = """\
abdeploy install --disk=appliance.img --size=4G --bootloader=grub-efi \\
    --from=repo --trusted-key=releases-2027.asc abdeploy/release/1.0
"""
SECTION6 = """\
abdeploy check-update
abdeploy update
"""
ROTATE1 = """\
gpg --quick-gen-key "Example Appliance releases 2028 <releases-2028@example.org>" rsa3072 sign 2y
NEW=$(gpg --with-colons --list-secret-keys releases-2028@example.org | awk -F: '$1 == "fpr" { print $10; exit }')
gpg --export --armor "$NEW" > releases-2028.asc
"""
ROTATE3 = """\
ostree --repo=repo gpg-sign abdeploy/release/1.0 "$NEW"
"""
ROTATE4 = """\
mkdir -p both && cp releases-2027.asc releases-2028.asc both/
abdeploy publish commit --repo=repo --tree=rootfs --version=1.2 \\
    --os=example-appliance --move-etc --move-boot --gpg-sign="$NEW"
abdeploy publish release --repo=repo --channel=stable --version=1.2 \\
    --gpg-sign="$NEW" --trusted-keys=both
"""
REVOKE = """\
sed 's/^:-----BEGIN/-----BEGIN/' "$GNUPGHOME/openpgp-revocs.d/$OLD.rev" | gpg --import
gpg --export --armor "$OLD" > releases-2027.asc
"""
REFRESH_NEW = """\
mkdir -p current && cp releases-2028.asc current/
abdeploy publish refresh --repo=repo --channel=stable --gpg-sign="$NEW" --trusted-keys=current
"""
REFRESH = """\
abdeploy publish refresh --repo=repo --channel=stable --gpg-sign="$KEY" --expires-days=30
"""


def device_config(g):
    """The device's abdeploy.conf: the guide's, with the repository's path
    for its URL (no web server here)."""
    conf = os.path.join(g.device, "etc", "abdeploy", "abdeploy.conf")
    with open(conf, "w") as f:
        f.write("[update]\nurl=%s\nchannel=stable\n" % os.path.join(g.dir, "repo"))


def trust(g, *names):
    """The device's trusted.gpg.d holds exactly NAMES (of the workdir)."""
    tdir = os.path.join(g.device, "etc", "abdeploy", "trusted.gpg.d")
    for n in os.listdir(tdir):
        os.unlink(os.path.join(tdir, n))
    for n in names:
        shutil.copy(os.path.join(g.dir, n), tdir)


@pytest.fixture
def guide(tmp_path):
    g = Guide(str(tmp_path))
    yield g
    subprocess.run(["gpgconf", "--homedir", g.gnupg, "--kill", "all"], capture_output=True)


def publish_version(g, version, key_var, keys):
    """Sections 2 and 3 for VERSION (a fresh rootfs), then section 4."""
    debootstrap_tree(os.path.join(g.dir, "rootfs"), version, keys)
    g.run(SECTION2)
    script = SECTION3.replace("1.0", version).replace('"$KEY"', '"$%s"' % key_var)
    g.run((KEY if key_var == "KEY" else NEW) + "\n" + script, verbatim=False)


def test_guide_from_rootfs_to_updating_device(guide):
    g = guide
    g.run(SECTION1)
    # 2-4: the Debian tree, converted in the commit, released on stable
    debootstrap_tree(os.path.join(g.dir, "rootfs"), "1.0")
    g.run(SECTION2)
    # the tree as the builder left it (section 2 adds the keys and the
    # configuration); publish commit must not change it.  Sizes of files
    # only: a directory's size depends on the file system (tmpfs counts
    # entries)
    listing = ["find", "rootfs", "(", "-type", "d", "-printf", "%p %y\n", ")", "-o",
               "-printf", "%p %y %s %T@\n"]
    before = subprocess.run(listing, cwd=g.dir, capture_output=True, check=True).stdout
    g.run(KEY + "\n" + SECTION3)
    g.run(KEY + "\n" + SECTION4)
    after = subprocess.run(listing, cwd=g.dir, capture_output=True, check=True).stdout
    assert sorted(after.splitlines()) == sorted(before.splitlines()), \
        "publish commit changed the tree"
    repo = os.path.join(g.dir, "repo")
    ls = at.run(["ostree", "--repo=" + repo, "ls", "-R", "abdeploy/release/1.0"]).stdout.decode()
    for want in ("/usr/etc/abdeploy/trusted.gpg.d/releases-2027.asc",
                 "/usr/lib/modules/1.0/vmlinuz", "/usr/lib/modules/1.0/initramfs.img"):
        assert want in ls, ls
    assert " /etc" not in ls and "/boot/vmlinuz-1.0" not in ls, ls
    meta = at.run(["ostree", "--repo=" + repo, "show", "abdeploy/release/1.0",
                   "--print-metadata-key=abdeploy.os"]).stdout.decode().strip()
    assert meta == "'example-appliance'"

    # 5: a first disk (as root, with the disk tools), smaller than the guide's
    if os.geteuid() == 0 and all(shutil.which(t) for t in INSTALL_TOOLS) \
            and os.path.isdir("/usr/lib/grub/x86_64-efi"):
        g.run(SECTION5.replace("--size=4G", "--size=160M"), verbatim=False)
        assert SECTION5 in g.text
        assert os.path.getsize(os.path.join(g.dir, "appliance.img")) == 160 << 20
        os.unlink(os.path.join(g.dir, "appliance.img"))

    # 6: a device (sysroot) that trusts the key and follows stable
    at.run([g.binary, "--sysroot=" + g.device, "init", "--os=example-appliance",
            "--bootloader=file"], env=g.env)
    trust(g, "releases-2027.asc")
    device_config(g)
    g.run(SECTION6, where="device")
    assert g.primary_version() == "1.0"

    # 7: rotation, two keys trusted during the change: 1.1, still signed
    # by the old key, ships both
    g.run(ROTATE1)
    publish_version(g, "1.1", "KEY", ["releases-2027.asc", "releases-2028.asc"])
    g.run(KEY + "\n" + SECTION4.replace("1.0", "1.1"), verbatim=False)
    g.run(SECTION6, where="device")
    assert g.primary_version() == "1.1"
    trust(g, "releases-2027.asc", "releases-2028.asc")   # what the merged /etc holds now
    g.run(NEW + "\n" + ROTATE3)
    g.run(NEW + "\n" + ROTATE3.replace("1.0", "1.1"), verbatim=False)
    debootstrap_tree(os.path.join(g.dir, "rootfs"), "1.2",
                     ["releases-2027.asc", "releases-2028.asc"])
    g.run(SECTION2)
    g.run(NEW + "\n" + ROTATE4)
    g.run(SECTION6, where="device")
    assert g.primary_version() == "1.2"

    # 8: the old key is stolen: a copy of the signing box before the revocation
    stolen = os.path.join(g.dir, "stolen-gnupg")
    shutil.copytree(g.gnupg, stolen, ignore=shutil.ignore_patterns("S.*"))
    old = g.var("KEY", KEY)
    g.env["OLD"] = old
    g.run(REVOKE)
    trust(g, "releases-2027.asc", "releases-2028.asc")   # the revoked key, shipped
    g.run(NEW + "\n" + REFRESH_NEW)
    # a commit only the stolen key signed is refused; one the new key
    # signed too (step 3 of the rotation) still installs
    evil = os.path.join(g.dir, "evil")
    debootstrap_tree(os.path.join(g.dir, "rootfs"), "6.6.6")
    at.run([g.binary, "publish", "commit", "--repo=" + evil, "--tree=rootfs", "--version=6.6.6",
            "--move-etc", "--move-boot", "--os=example-appliance", "--gpg-sign=" + old,
            "--gpg-homedir=" + stolen], env=g.env, cwd=g.dir)
    r = subprocess.run([g.binary, "--sysroot=" + g.device, "stage", "--from=" + evil,
                        "abdeploy/release/6.6.6"], env=g.env, capture_output=True, timeout=120)
    assert r.returncode == at.EXIT_VERIFY, r.stderr.decode()
    r = subprocess.run([g.binary, "--sysroot=" + g.device, "stage", "--from=" + repo,
                        "abdeploy/release/1.0"], env=g.env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    subprocess.run(["gpgconf", "--homedir", stolen, "--kill", "all"], capture_output=True)

    # 9: re-signing before expiry
    g.run(NEW + "\n" + REFRESH.replace('"$KEY"', '"$NEW"'), verbatim=False)
    assert REFRESH in g.text
    with open(os.path.join(repo, "abdeploy", "channels", "stable.json")) as f:
        assert json.load(f)["releases"][-1]["version"] == "1.2"
