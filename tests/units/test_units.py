"""The systemd units of data/systemd (issue 11, point 7): every unit passes
`systemd-analyze verify`, and the services' `systemd-analyze security
--offline=yes` exposure stays at or below the thresholds documented in
abdeploy(8), SYSTEMD UNITS, so that dropping a sandboxing line fails."""

import os
import re
import shutil
import subprocess

import pytest

SRC_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UNIT_DIR = os.path.join(SRC_ROOT, "data", "systemd")
UNITS = ["abdeploy-update.service", "abdeploy-healthcheck.service", "abdeploy-update.timer",
         "abdeploy-daemon.service", "abdeploy-resume.service", "abdeploy-resume.timer"]
# abdeploy(8), SYSTEMD UNITS; both were 9.6 ("UNSAFE") in 0.2.0
THRESHOLDS = {"abdeploy-update.service": 3.6, "abdeploy-healthcheck.service": 8.4,
              "abdeploy-daemon.service": 3.6, "abdeploy-resume.service": 3.6}

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed")


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    """The units with @bindir@ replaced by the directory of an executable
    abdeploy (verify checks that ExecStart= exists)."""
    d = tmp_path_factory.mktemp("units")
    binary = os.environ.get("ABDEPLOY_BIN") or shutil.which("abdeploy") or "/bin/true"
    bindir = os.path.dirname(os.path.abspath(binary))
    for name in UNITS:
        src = os.path.join(UNIT_DIR, name + (".in" if name.endswith(".service") else ""))
        with open(src) as f:
            text = f.read().replace("@bindir@", bindir)
        (d / name).write_text(text)
    return d


def analyze(*args, cwd=None):
    p = subprocess.run(["systemd-analyze"] + list(args), cwd=cwd, capture_output=True,
                       text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("name", UNITS)
def test_unit_passes_systemd_analyze_verify(units, name):
    rc, out = analyze("verify", "--man=no", str(units / name), cwd=units)
    # verify also checks the units a unit names (network-online.target...)
    assert rc == 0 and name not in out, out


def exposure(units, name):
    rc, out = analyze("security", "--offline=yes", "--no-pager", str(units / name), cwd=units)
    m = re.search(r"Overall exposure level for %s: (\d+\.\d)" % re.escape(name), out)
    assert m, out
    return float(m.group(1)), out


@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_exposure_at_or_below_documented_threshold(units, name):
    score, out = exposure(units, name)
    assert score <= THRESHOLDS[name], "exposure %.1f > %.1f\n%s" % (score, THRESHOLDS[name], out)


def test_thresholds_are_the_documented_ones():
    with open(os.path.join(SRC_ROOT, "man", "abdeploy.8.scd")) as f:
        man = f.read()
    for name, limit in THRESHOLDS.items():
        assert re.search(r"%s\*?\s[^|]{0,40}\s%.1f " % (re.escape(name), limit), man), \
            "abdeploy(8) does not give %s the threshold %.1f" % (name, limit)


def unit_lines(units, name):
    with open(units / name) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")]


def test_update_service_can_still_write_what_it_must(units):
    """The sandbox keeps the sysroot and the boot pointer writable and the
    capabilities a checkout needs, and leaves out what would break it."""
    lines = unit_lines(units, "abdeploy-update.service")
    rw = next(l for l in lines if l.startswith("ReadWritePaths="))
    for path in ("/sysroot", "-/boot", "-/etc/abdeploy"):
        assert path in rw.split("=", 1)[1].split(), rw
    caps = next(l for l in lines if l.startswith("CapabilityBoundingSet=")).split("=", 1)[1].split()
    for cap in ("CAP_CHOWN", "CAP_FOWNER", "CAP_FSETID", "CAP_SETFCAP", "CAP_SYS_ADMIN",
                "CAP_DAC_OVERRIDE"):
        assert cap in caps, caps
    assert "RestrictNamespaces=mnt" in lines
    for forbidden in ("RestrictSUIDSGID=yes", "PrivateDevices=yes", "ProcSubset=pid",
                      "ProtectClock=yes", "PrivateNetwork=yes"):
        assert forbidden not in lines, forbidden


def test_resume_service_has_the_update_services_sandbox(units):
    """abdeploy-resume.service writes what abdeploy-update.service writes:
    the same [Service] sandbox, and it resumes only an interrupted update."""
    def sandbox(name):
        lines = unit_lines(units, name)
        start = lines.index("[Service]")
        return {l for l in lines[start:] if not l.startswith(("ExecStart=", "SuccessExitStatus="))}
    assert sandbox("abdeploy-resume.service") == sandbox("abdeploy-update.service")
    lines = unit_lines(units, "abdeploy-resume.service")
    exec_start = next(l for l in lines if l.startswith("ExecStart="))
    assert exec_start.endswith("abdeploy resume --if-interrupted --progress=none"), exec_start
    assert "SuccessExitStatus=5" in lines
    for needed in ("Requires=boot-complete.target", "After=boot-complete.target",
                   "ConditionKernelCommandLine=abdeploy.slot"):
        assert needed in lines, needed


def test_preset_enables_the_health_check_and_the_resume(units, tmp_path):
    """systemctl preset, on an image root, enables exactly the health check
    and the resume timer (issue 16, point 9); the update timer stays off."""
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl is not installed")
    root = tmp_path / "root"
    unit_dir = root / "usr" / "lib" / "systemd" / "system"
    preset_dir = root / "usr" / "lib" / "systemd" / "system-preset"
    unit_dir.mkdir(parents=True)
    preset_dir.mkdir(parents=True)
    for name in UNITS:
        shutil.copy(str(units / name), str(unit_dir / name))
    shutil.copy(os.path.join(UNIT_DIR, "90-abdeploy.preset"), str(preset_dir))
    # everything else off, as an image's 99-default.preset says
    (preset_dir / "99-default.preset").write_text("disable *\n")
    p = subprocess.run(["systemctl", "--root=" + str(root), "preset"] + UNITS,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    enabled = sorted(os.path.basename(l) for l in
                     subprocess.run(["find", str(root / "etc"), "-type", "l"], capture_output=True,
                                    text=True).stdout.split())
    assert "abdeploy-resume.timer" in enabled, enabled
    assert "abdeploy-healthcheck.service" in enabled, enabled
    assert "abdeploy-update.timer" not in enabled, enabled
