"""`abdeploy version [--json]`: what is running.

The values are checked against sources abdeploy does not control: the
sysroot repo read by the ostree CLI (`ostree rev-parse`, `ostree show
--print-metadata-key`), the metadata the test put into the commits, and
meson's project version.
"""

import os

import lifecyclelib as ll


def text_rows(out):
    rows = {}
    for line in out.splitlines():
        label, _, value = line.partition("  ")
        rows[label.strip()] = value.strip()
    return rows


TEXT_LABELS = {"abdeploy": "abdeploy_version", "OS": "os", "Booted slot": "booted_slot",
               "Slot": "slot", "Image version": "version", "Build version": "build_version",
               "Commit": "commit",
               "Source revision": "source_revision", "Build time": "build_time"}


def check_text_matches_json(dev, v):
    p = dev.ok("version")
    rows = text_rows(p.stdout)
    assert set(rows) == set(TEXT_LABELS), p.describe
    for label, key in TEXT_LABELS.items():
        want = v[key] if v[key] is not None else "-"
        assert rows[label] == want, "%s: %r, JSON has %r\n%s" % (label, rows[label], v[key], p.describe)


def test_booted_slot_with_source_revision_and_build_time(device, publisher):
    dev = device("meta")
    v = dev.version()
    commit = dev.rev_parse("abdeploy/slot/b")
    assert commit == publisher.commit_of("meta")
    assert v["abdeploy_version"] == ll.meson_project_version()
    assert v["os"] == ll.hl.OS_NAME
    assert (v["booted_slot"], v["slot"]) == ("b", "b"), v
    assert v["version"] == ll.META_VERSION, v
    assert v["commit"] == commit, v
    # the same values as the ostree CLI reads from the commit
    assert dev.commit_meta(commit, "version") == "'%s'" % ll.META_VERSION
    assert dev.commit_meta(commit, "source-revision") == "'%s'" % v["source_revision"]
    assert dev.commit_meta(commit, "build-time") == "'%s'" % v["build_time"]
    assert v["source_revision"] == ll.META_SOURCE_REVISION, v
    assert v["build_time"] == ll.META_BUILD_TIME, v
    check_text_matches_json(dev, v)


def test_commit_without_metadata_shows_null_and_dash(device, publisher):
    dev = device("v1")
    v = dev.version()
    commit = dev.rev_parse("abdeploy/slot/a")
    assert commit == publisher.commit_of("v1")
    assert dev.commit_meta(commit, "source-revision") is None
    assert (v["booted_slot"], v["slot"], v["version"], v["commit"]) == ("a", "a", "1.0", commit), v
    assert v["source_revision"] is None and v["build_time"] is None, v
    check_text_matches_json(dev, v)
    rows = text_rows(dev.ok("version").stdout)
    assert rows["Source revision"] == "-" and rows["Build time"] == "-", rows


def test_reports_the_booted_slot_not_the_next_one(device, publisher):
    """Right after a deploy (before the reboot) the running image is still
    the old one, although the new one is primary."""
    dev = device("v1")
    dev.deploy_http("os/meta")
    st = dev.status()
    assert (st["booted"], st["primary"]) == ("a", "b"), st
    v = dev.version()
    assert (v["booted_slot"], v["slot"], v["version"]) == ("a", "a", "1.0"), v
    assert v["commit"] == dev.rev_parse("abdeploy/slot/a") == publisher.commit_of("v1")
    assert v["source_revision"] is None, v


def test_offline_sysroot_reports_the_primary_slot(device, publisher):
    """No abdeploy.slot= on the command line: no booted slot; the slot whose
    deployment is in use is the primary one."""
    dev = device("meta")
    dev.set_booted(None)
    v = dev.version()
    assert v["booted_slot"] is None, v
    assert (v["slot"], v["version"], v["commit"]) == ("b", ll.META_VERSION, publisher.commit_of("meta")), v
    assert v["source_revision"] == ll.META_SOURCE_REVISION, v
    rows = text_rows(dev.ok("version").stdout)
    assert rows["Booted slot"] == "-" and rows["Slot"] == "b", rows


def test_offline_empty_sysroot(device, workdir, binary, publisher):
    """An initialized sysroot with nothing deployed: only abdeploy's own
    version and the OS are known."""
    path = os.path.join(workdir, "tests", "empty-%d" % os.getpid(), "sysroot")
    os.makedirs(path)
    dev = ll.Device(path, binary, "file", publisher)
    try:
        dev.ok("init", "--os=" + ll.hl.OS_NAME, "--bootloader=file")
        v = dev.version()
        assert v == {"abdeploy_version": ll.meson_project_version(), "os": ll.hl.OS_NAME,
                     "booted_slot": None, "slot": None, "version": None, "build_version": None,
                     "commit": None,
                     "source_revision": None, "build_time": None, "restore_pending": False}, v
        check_text_matches_json(dev, v)
    finally:
        ll.sl.rmtree(os.path.dirname(path))


def test_release_published_by_abdeploy_publish(device, publisher):
    """`abdeploy publish commit --source-revision` writes the keys that
    `version` reads (build-time is stamped by the publisher)."""
    dev = device("meta")
    dev.ok("stage", "--from=" + dev.server_url, publisher.release)
    dev.ok("activate")
    r = dev.boot()
    assert (r.slot, r.returncode) == ("a", 0), r
    v = dev.version()
    assert (v["slot"], v["version"], v["commit"]) == ("a", ll.RELEASE_VERSION, publisher.release), v
    assert v["source_revision"] == ll.RELEASE_SOURCE_REVISION, v
    assert v["build_time"] and dev.commit_meta(publisher.release, "build-time") == "'%s'" % v["build_time"], v


def test_own_version_and_usage(device):
    dev = device("v1")
    p = ll.sl.run([dev.binary, "--version"], check=False)
    assert p.returncode == 0 and ll.meson_project_version() in p.stdout.decode(), p
    assert dev.version()["abdeploy_version"] == ll.meson_project_version()
    p = dev.run("version", "extra")
    assert p.returncode == ll.EXIT_USAGE, p.describe
    p = dev.run("version", "--bogus")
    assert p.returncode == ll.EXIT_USAGE, p.describe
