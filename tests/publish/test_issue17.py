"""Publisher side of issue 17: stable channels hold releases only, promotion
without a rebuild (--as), retention (publish prune), the manifest's protocol,
security releases and customer notes.

Real GPG keys, real archive repos; the ostree and gpg CLIs check the result.
"""

import json
import os
import re

import pytest

from test_publish import (  # noqa: F401  (fixtures)
    EXIT_ERROR, EXIT_OK, EXIT_USAGE, V1_FILES, keys, pub, snapshot)

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(TOP, "docs", "customer-release-note-template.md")

GOOD_NOTE = """# Customer note for 2.1.0

## What changed

The uploader checks the server's TLS certificate again.

## What you need to do

Nothing: the device restarts at night.

## If something goes wrong

If uploads fail, run `abdeploy rollback` and restart the device.
"""


def files(version):
    return dict(V1_FILES, **{"usr/etc/os-release": "VERSION=%s\n" % version,
                             "usr/lib/v-" + version: version + "\n"})


@pytest.fixture
def semver(pub):
    """2.0.0, 2.1.0-rc.1 and 2.1.0-rc.2 committed; nothing released."""
    pub.c = {v: pub.commit(v, pub.tree("t-" + v, files(v)))
             for v in ("2.0.0", "2.1.0-rc.1", "2.1.0-rc.2")}
    return pub


def write(pub, name, text):
    path = os.path.join(pub.dir, name)
    with open(path, "w" if isinstance(text, str) else "wb") as f:
        f.write(text)
    return path


def policy(pub, text):
    write(pub, "unused", "")
    with open(os.path.join(pub.repo, "abdeploy", "publish.conf"), "w") as f:
        f.write(text)


# --- point 7: the protocol --------------------------------------------------

def test_manifest_states_protocol_1(semver, keys):
    semver.signed("release", "--channel=dev", "--version=2.0.0")
    m = semver.manifest("dev")
    assert m["protocol"] == 1 and m["format"] == 1, m
    # no optional member where nothing is set but the size index (issue 18),
    # which a 0.2.0 device ignores: it reads the release as before
    assert set(semver.release(m, "2.0.0")) == {"version", "commit", "published_at", "deprecated",
                                               "rollout", "deltas", "size_index"}
    p = keys.gpg_verify(semver.manifest_path("dev") + ".sig", semver.manifest_path("dev"))
    assert p.returncode == 0, p.stderr.decode()


# --- point 8: security releases ---------------------------------------------

def test_release_security_marks_the_release(semver):
    out = semver.signed("release", "--channel=dev", "--version=2.0.0",
                        "--security").stdout.decode()
    assert "2.0.0 is a security release" in out, out
    semver.signed("release", "--channel=dev", "--version=2.1.0-rc.1")
    m = semver.manifest("dev")
    assert semver.release(m, "2.0.0")["security"] is True
    assert "security" not in semver.release(m, "2.1.0-rc.1")
    # a release listed already gets the mark when released again with it ...
    semver.signed("release", "--channel=dev", "--version=2.1.0-rc.1", "--security",
                  "--rollout=50")
    r = semver.release(semver.manifest("dev"), "2.1.0-rc.1")
    assert r["security"] is True and r["rollout"] == 50, r
    # ... and keeps it when released again without it
    semver.signed("release", "--channel=dev", "--version=2.1.0-rc.1")
    assert semver.release(semver.manifest("dev"), "2.1.0-rc.1")["security"] is True
    # promotion copies it
    semver.signed("promote", "--from=dev", "--to=candidate", "--version=2.0.0")
    assert semver.release(semver.manifest("candidate"), "2.0.0")["security"] is True


# --- point 9: customer notes ------------------------------------------------

def test_release_notes_are_signed_into_the_release(semver, keys):
    note = write(semver, "note.md", GOOD_NOTE)
    out = semver.signed("release", "--channel=dev", "--version=2.0.0",
                        "--notes=" + note).stdout.decode()
    assert "carries a customer note" in out, out
    r = semver.release(semver.manifest("dev"), "2.0.0")
    assert r["notes"] == {
        "changed": "The uploader checks the server's TLS certificate again.",
        "action": "Nothing: the device restarts at night.",
        "rollback": "If uploads fail, run `abdeploy rollback` and restart the device."}, r
    p = keys.gpg_verify(semver.manifest_path("dev") + ".sig", semver.manifest_path("dev"))
    assert p.returncode == 0, p.stderr.decode()
    # promotion carries the note along
    semver.signed("promote", "--from=dev", "--to=candidate", "--version=2.0.0")
    assert semver.release(semver.manifest("candidate"), "2.0.0")["notes"] == r["notes"]


def test_the_shipped_template_is_refused_until_filled_in(semver):
    semver.signed("release", "--channel=dev", "--version=2.0.0")
    before = snapshot(semver.repo)
    err = semver.signed("release", "--channel=dev", "--version=2.0.0", "--notes=" + TEMPLATE,
                        rc=EXIT_USAGE).stderr.decode()
    assert "FILL IN" in err and "What changed" in err, err
    assert snapshot(semver.repo) == before
    with open(TEMPLATE) as f:
        text = f.read()
    filled = re.sub(r"FILL IN: ", "", text)
    semver.signed("release", "--channel=dev", "--version=2.0.0",
                  "--notes=" + write(semver, "filled.md", filled))
    r = semver.release(semver.manifest("dev"), "2.0.0")
    assert "abdeploy rollback" in r["notes"]["rollback"] and "<!--" not in r["notes"]["changed"]


BAD_NOTES = [
    (GOOD_NOTE.replace("## What you need to do\n", ""), "heading"),
    (GOOD_NOTE.replace("## What changed", "## Changes"), "line 3"),
    (GOOD_NOTE.replace("Nothing: the device restarts at night.", ""),
     "\"What you need to do\" is empty"),
    (GOOD_NOTE.replace("run `abdeploy rollback` and ", ""), "rollback command"),
    (GOOD_NOTE + "\n## Details\nmore\n", "## Details"),
    ("Intro text\n" + GOOD_NOTE, "line 1"),
    (GOOD_NOTE.replace("The uploader", "x" * 2100), "longer than 2048 bytes"),
    (GOOD_NOTE + "\n" + "y" * 9000, "larger than 8192 bytes"),
    (GOOD_NOTE.replace("Nothing", "Nothing\x07"), "control character"),
    (GOOD_NOTE.encode() + b"\xff\xfe", "not UTF-8"),
    (GOOD_NOTE + "<!-- unclosed", "not closed"),
]


@pytest.mark.parametrize("text,needle", BAD_NOTES, ids=[n for _, n in BAD_NOTES])
def test_bad_notes_are_refused_with_a_clear_error(semver, text, needle):
    semver.signed("release", "--channel=dev", "--version=2.0.0")
    before = snapshot(semver.repo)
    err = semver.signed("release", "--channel=dev", "--version=2.0.0",
                        "--notes=" + write(semver, "bad.md", text), rc=EXIT_USAGE).stderr.decode()
    assert needle in err and "bad.md" in err and "customer-release-note-template" in err, err
    assert snapshot(semver.repo) == before


def test_missing_notes_file(semver):
    err = semver.signed("release", "--channel=dev", "--version=2.0.0",
                        "--notes=" + os.path.join(semver.dir, "nope.md"),
                        rc=EXIT_USAGE).stderr.decode()
    assert "nope.md" in err, err


# --- point 2: stable channels hold releases only ------------------------------

def test_stable_refuses_prerelease_on_release_and_promote(semver):
    before = snapshot(semver.repo)
    err = semver.signed("release", "--channel=stable", "--version=2.1.0-rc.1",
                        rc=EXIT_ERROR).stderr.decode()
    assert "stable" in err and "pre-release" in err and "--as=" in err, err
    assert snapshot(semver.repo) == before
    semver.signed("release", "--channel=candidate", "--version=2.1.0-rc.2")
    before = snapshot(semver.repo)
    err = semver.signed("promote", "--from=candidate", "--to=stable", "--version=2.1.0-rc.2",
                        rc=EXIT_ERROR).stderr.decode()
    assert "pre-release" in err, err
    assert snapshot(semver.repo) == before
    # releases, and versions that are not SemVer, are fine
    semver.signed("release", "--channel=stable", "--version=2.0.0")
    semver.commit("7", semver.tree("t7", files("7")))
    semver.signed("release", "--channel=stable", "--version=7")
    # other channels take pre-releases
    semver.signed("release", "--channel=candidate", "--version=2.1.0-rc.1")


def test_stable_channels_are_configurable(semver):
    semver.signed("release", "--channel=lts", "--version=2.1.0-rc.1")
    policy(semver, "[channel lts]\nstable=true\n\n[channel stable]\nstable=false\n")
    err = semver.signed("release", "--channel=lts", "--version=2.1.0-rc.2",
                        rc=EXIT_ERROR).stderr.decode()
    assert "Channel lts is stable" in err, err
    semver.signed("release", "--channel=stable", "--version=2.1.0-rc.2")
    # build metadata is no pre-release
    semver.commit("2.2.0+b.1", semver.tree("t22", files("2.2.0")))
    semver.signed("release", "--channel=lts", "--version=2.2.0+b.1")


@pytest.mark.parametrize("text,needle", [
    ("[channel lts\nstable=true\n", "publish.conf"),
    ("[channel lts]\nstable=maybe\n", "[channel lts] stable is not true or false"),
    ("[channel dev]\nkeep-days=-3\n", "[channel dev] keep-days is \"-3\""),
    ("[channel dev]\nkeep-dayz=3\n", "[channel dev] has the unknown key keep-dayz"),
    ("[stable]\nstable=true\n", "group [stable] is not [channel NAME]"),
])
def test_a_malformed_policy_stops_the_publisher(semver, text, needle):
    policy(semver, text)
    before = snapshot(semver.repo)
    err = semver.signed("release", "--channel=lts", "--version=2.0.0",
                        rc=EXIT_USAGE).stderr.decode()
    assert needle in err and "CHANNEL POLICY" in err, err
    assert snapshot(semver.repo) == before


# --- point 3: promotion without a rebuild -----------------------------------

def test_promote_as_lists_the_same_digest(semver, keys):
    semver.signed("release", "--channel=candidate", "--version=2.1.0-rc.2")
    out = semver.signed("promote", "--from=candidate", "--to=stable", "--version=2.1.0-rc.2",
                        "--as=2.1.0").stdout.decode()
    assert "2.1.0 promoted from 2.1.0-rc.2" in out, out
    rc2 = semver.c["2.1.0-rc.2"]
    r = semver.release(semver.manifest("stable"), "2.1.0")
    assert r["commit"] == rc2 and r["promoted_from"] == "2.1.0-rc.2", r
    assert "2.1.0-rc.2" not in [x["version"] for x in semver.manifest("stable")["releases"]]
    # signed: gpg accepts it, and the promotion is inside the signed bytes
    path = semver.manifest_path("stable")
    assert keys.gpg_verify(path + ".sig", path).returncode == 0
    # the version ref of 2.1.0 names the same commit; no new commit was made
    assert semver.ostree("rev-parse", "abdeploy/release/2.1.0").strip() == rc2
    assert semver.ostree("show", "--print-metadata-key=version", rc2).strip() == "'2.1.0-rc.2'"
    # the summary lists the new ref, as after publish commit
    summary = semver.ostree("summary", "-v")
    listed = [line.split()[1] for line in summary.splitlines() if line.startswith("* ")]
    assert "abdeploy/release/2.1.0" in listed, summary
    # again: nothing changes but the serial
    serial = semver.manifest("stable")["serial"]
    semver.signed("promote", "--from=candidate", "--to=stable", "--version=2.1.0-rc.2",
                  "--as=2.1.0")
    m = semver.manifest("stable")
    assert m["serial"] == serial + 1 and semver.release(m, "2.1.0")["commit"] == rc2
    # 2.1.0 is now published: another tree under that version is refused ...
    before = snapshot(semver.repo)
    err = semver.signed("commit", "--tree=" + semver.tree("t210", files("2.1.0")),
                        "--version=2.1.0", rc=EXIT_ERROR).stderr.decode()
    assert "already published as commit " + rc2 in err, err
    assert snapshot(semver.repo) == before
    # ... and a promotion onwards keeps naming the commit's own version
    semver.signed("promote", "--from=stable", "--to=lts", "--version=2.1.0")
    assert semver.release(semver.manifest("lts"), "2.1.0")["promoted_from"] == "2.1.0-rc.2"


def test_promote_as_refusals(semver):
    semver.signed("release", "--channel=candidate", "--version=2.1.0-rc.1")
    semver.signed("release", "--channel=candidate", "--version=2.1.0-rc.2")
    semver.signed("release", "--channel=stable", "--version=2.0.0")
    before = snapshot(semver.repo)
    # --as a version published with another commit
    err = semver.signed("promote", "--from=candidate", "--to=stable", "--version=2.1.0-rc.2",
                        "--as=2.0.0", rc=EXIT_ERROR).stderr.decode()
    assert "already published as commit " + semver.c["2.0.0"] in err, err
    # --as a pre-release into a stable channel
    err = semver.signed("promote", "--from=candidate", "--to=stable", "--version=2.1.0-rc.2",
                        "--as=2.1.0-rc.9", rc=EXIT_ERROR).stderr.decode()
    assert "pre-release" in err, err
    semver.signed("promote", "--from=candidate", "--to=stable", "--version=2.1.0-rc.2",
                  "--as=bad/version", rc=EXIT_USAGE)
    assert snapshot(semver.repo) == before
    # one version, one commit: 2.1.0 from rc.2, then from rc.1, is refused
    semver.signed("promote", "--from=candidate", "--to=stable", "--version=2.1.0-rc.2",
                  "--as=2.1.0")
    before = snapshot(semver.repo)
    err = semver.signed("promote", "--from=candidate", "--to=edge", "--version=2.1.0-rc.1",
                        "--as=2.1.0", rc=EXIT_ERROR).stderr.decode()
    assert "already published as commit " + semver.c["2.1.0-rc.2"] in err, err
    assert snapshot(semver.repo) == before


def test_resigning_refuses_a_release_whose_commit_is_another_version(semver):
    """A hand-edited manifest that lists 2.1.0 as the commit of 2.1.0-rc.1
    while saying it was promoted from 2.1.0-rc.2: the publisher will not
    sign it again."""
    semver.signed("release", "--channel=candidate", "--version=2.1.0-rc.2")
    semver.signed("promote", "--from=candidate", "--to=stable", "--version=2.1.0-rc.2",
                  "--as=2.1.0")
    m = semver.manifest("stable")
    semver.release(m, "2.1.0")["promoted_from"] = "2.1.0-rc.1"
    data = json.dumps(m).encode()
    with open(semver.manifest_path("stable"), "wb") as f:
        f.write(data)
    with open(semver.manifest_path("stable") + ".sig", "wb") as f:
        f.write(semver.keys.sign_detached(data, semver.keys.publisher))
    before = snapshot(semver.repo)
    err = semver.signed("refresh", "--channel=stable", rc=EXIT_ERROR).stderr.decode()
    assert "whose own version is 2.1.0-rc.2" in err, err
    assert snapshot(semver.repo) == before


# --- point 4: retention ------------------------------------------------------

import datetime  # noqa: E402
import subprocess  # noqa: E402

import abtest as at  # noqa: E402
from test_publish import resign, run  # noqa: E402


def big_files(version):
    return dict(files(version), **{"usr/lib/big-" + version: at.blob("big-" + version, 200000)})


def days_ago(n):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=n)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def age(pub, channel, ages):
    """Sets published_at of the releases of CHANNEL ({version: days}), re-signed."""
    def mutate(m):
        for r in m["releases"]:
            if r["version"] in ages:
                r["published_at"] = days_ago(ages[r["version"]])
    resign(pub, channel, mutate)


def has_commit(pub, commit):
    return run(["ostree", "--repo=" + pub.repo, "show", commit], pub.env,
               check=False).returncode == 0


def repo_bytes(repo):
    total = 0
    for d, _, names in os.walk(repo):
        for n in names:
            p = os.path.join(d, n)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def delta_names(pub):
    out = pub.ostree("static-delta", "list")
    return set(line.strip() for line in out.splitlines() if "-" in line)


def full_delta_names(pub):
    """The from-empty deltas (issue 18), which libostree names by TO alone."""
    out = pub.ostree("static-delta", "list")
    return set(line.strip() for line in out.splitlines()
               if re.fullmatch(r"[0-9a-f]{64}", line.strip()))


def every_listed_commit_present(pub):
    chdir = os.path.join(pub.repo, "abdeploy", "channels")
    for name in os.listdir(chdir):
        if name.endswith(".json") and name[0].isalnum():    # _index.json is no channel
            with open(os.path.join(chdir, name)) as f:
                for r in json.load(f)["releases"]:
                    assert has_commit(pub, r["commit"]), (name, r["version"])
                    for d in r["deltas"] + ([r["full_delta"]] if "full_delta" in r else []):
                        for fl in d["files"]:
                            assert os.path.exists(os.path.join(pub.repo, fl["path"])), fl


@pytest.fixture
def dev(pub):
    """dev: 1.0.0 (40 days old), 1.1.0 (35 days), 1.2.0 (new), with the
    deltas 1.0.0 -> 1.1.0 (listed by 1.1.0) and 1.0.0, 1.1.0 -> 1.2.0."""
    pub.c = {}
    for v in ("1.0.0", "1.1.0"):
        pub.c[v] = pub.commit(v, pub.tree("t-" + v, big_files(v)))
        pub.signed("release", "--channel=dev", "--version=" + v)
    pub.signed("deltas", "--channel=dev")
    pub.c["1.2.0"] = pub.commit("1.2.0", pub.tree("t-1.2.0", big_files("1.2.0")))
    pub.signed("release", "--channel=dev", "--version=1.2.0")
    pub.signed("deltas", "--channel=dev", "--from-last=2")
    age(pub, "dev", {"1.0.0": 40, "1.1.0": 35})
    return pub


def test_prune_drops_old_releases_and_deletes_what_nothing_references(dev, keys):
    assert len(delta_names(dev)) == 3
    # the full deltas of 1.1.0 and 1.2.0 (issue 18), each written when it was the newest
    assert full_delta_names(dev) == {dev.c["1.1.0"], dev.c["1.2.0"]}
    before, size_before = snapshot(dev.repo), repo_bytes(dev.repo)
    out = dev.signed("prune", "--channel=dev", "--dry-run").stdout.decode()
    assert "would drop 1.0.0" in out and "would drop 1.1.0" in out and "1.2.0" not in out, out
    assert "nothing was changed" in out, out
    # 1.0.0 -> 1.1.0 and the full delta of 1.1.0
    dry = int(re.search(r"Would free \d+ object\(s\) and 2 delta\(s\): (\d+) bytes", out).group(1))
    assert snapshot(dev.repo) == before
    serial = dev.manifest("dev")["serial"]

    out = dev.signed("prune", "--channel=dev").stdout.decode()
    assert "dropped 1.0.0" in out and "dropped 1.1.0" in out, out
    assert "Deleted ref abdeploy/release/1.0.0" in out, out
    freed = int(re.search(r"Freed (\d+) object\(s\) and 2 delta\(s\): (\d+) bytes", out).group(2))
    assert freed == dry and freed > 2 * 200000, out
    assert size_before - repo_bytes(dev.repo) >= 2 * 200000
    m = dev.manifest("dev")
    assert [r["version"] for r in m["releases"]] == ["1.2.0"] and m["serial"] == serial + 1
    assert keys.gpg_verify(dev.manifest_path("dev") + ".sig", dev.manifest_path("dev")).returncode == 0
    assert not has_commit(dev, dev.c["1.0.0"]) and not has_commit(dev, dev.c["1.1.0"])
    assert has_commit(dev, dev.c["1.2.0"])
    refs = dev.ostree("refs").split()
    assert "abdeploy/release/1.0.0" not in refs and "abdeploy/release/1.2.0" in refs, refs
    # the deltas to 1.2.0 stay (devices on 1.0.0 or 1.1.0 still use them)
    assert delta_names(dev) == {dev.c["1.0.0"] + "-" + dev.c["1.2.0"],
                                dev.c["1.1.0"] + "-" + dev.c["1.2.0"]}, delta_names(dev)
    assert full_delta_names(dev) == {dev.c["1.2.0"]}
    # the size index files of the pruned commits go too (issue 18)
    indexes = os.listdir(os.path.join(dev.repo, "abdeploy", "sizes"))
    assert indexes == [dev.c["1.2.0"] + ".sizes"], indexes
    every_listed_commit_present(dev)
    run(["ostree", "--repo=" + dev.repo, "fsck"], dev.env)
    # a pruned version stays published
    err = dev.signed("commit", "--tree=" + dev.tree("again", files("other")), "--version=1.0.0",
                     rc=EXIT_ERROR).stderr.decode()
    assert "has been pruned" in err and "bump the version" in err, err
    # nothing left to do
    out = dev.signed("prune", "--channel=dev").stdout.decode()
    assert "dropped" not in out and "Freed 0 object(s) and 0 delta(s): 0 bytes" in out, out


def test_prune_keeps_newest_latest_and_releases_listed_elsewhere(pub):
    pub.c = {v: pub.commit(v, pub.tree("t-" + v, files(v))) for v in ("3.0.0", "3.1.0", "3.2.0",
                                                                     "3.3.0")}
    for v in pub.c:
        pub.signed("release", "--channel=candidate", "--version=" + v)
    pub.signed("promote", "--from=candidate", "--to=stable", "--version=3.0.0")
    pub.signed("deprecate", "--channel=candidate", "--version=3.3.0", "--reason=broken")
    age(pub, "candidate", {v: 100 for v in pub.c})
    out = pub.signed("prune", "--channel=candidate").stdout.decode()
    # 3.3.0 newest, 3.2.0 latest (3.3.0 is deprecated), 3.0.0 listed in stable
    assert [r["version"] for r in pub.manifest("candidate")["releases"]] == ["3.0.0", "3.2.0",
                                                                            "3.3.0"], out
    assert "dropped 3.1.0" in out and has_commit(pub, pub.c["3.0.0"])
    assert not has_commit(pub, pub.c["3.1.0"])
    every_listed_commit_present(pub)


def test_prune_refuses_keep_forever_channels(pub):
    pub.commit("4.0.0", pub.tree("t4", files("4.0.0")))
    pub.commit("4.1.0", pub.tree("t41", files("4.1.0")))
    for ch in ("stable", "lts", "candidate"):
        for v in ("4.0.0", "4.1.0"):
            pub.signed("release", "--channel=" + ch, "--version=" + v)
    policy(pub, "[channel lts]\nstable=true\n\n[channel candidate]\nkeep-days=forever\n")
    before = snapshot(pub.repo)
    for ch in ("stable", "lts", "candidate"):
        err = pub.signed("prune", "--channel=" + ch, "--keep-last=1",
                         rc=EXIT_ERROR).stderr.decode()
        assert "keeps its releases forever" in err and "nothing was pruned" in err, err
    assert snapshot(pub.repo) == before


def test_prune_keep_last_and_keep_days(pub):
    pub.c = {v: pub.commit(v, pub.tree("t-" + v, files(v))) for v in ("5.0.0", "5.1.0", "5.2.0",
                                                                     "5.3.0")}
    for v in pub.c:
        pub.signed("release", "--channel=misc", "--version=" + v)
    age(pub, "misc", {"5.0.0": 10, "5.1.0": 10, "5.2.0": 10})
    before = snapshot(pub.repo)
    err = pub.signed("prune", "--channel=misc", rc=EXIT_USAGE).stderr.decode()
    assert "--keep-days" in err and "--keep-last" in err, err
    pub.signed("prune", "--channel=misc", "--keep-days=0", rc=EXIT_USAGE)
    assert snapshot(pub.repo) == before
    # older than 5 days and below the 3 newest: 5.0.0 only
    out = pub.signed("prune", "--channel=misc", "--keep-days=5", "--keep-last=3").stdout.decode()
    assert [r["version"] for r in pub.manifest("misc")["releases"]] == ["5.1.0", "5.2.0",
                                                                       "5.3.0"], out
    # --keep-days alone: the old ones go, the newest stays
    pub.signed("prune", "--channel=misc", "--keep-days=5")
    assert [r["version"] for r in pub.manifest("misc")["releases"]] == ["5.3.0"]


@pytest.mark.parametrize("point", ["prune:manifest", "prune:refs", "prune:deltas"])
def test_killed_prune_leaves_a_consistent_repo(dev, keys, point):
    env = dict(dev.env, ABDEPLOY_CRASH_AT=point)
    p = subprocess.run([os.environ.get("ABDEPLOY_BIN", "abdeploy"), "publish", "prune",
                        "--repo=" + dev.repo, "--channel=dev", "--gpg-sign=" + keys.publisher,
                        "--gpg-homedir=" + keys.home], env=env, capture_output=True, timeout=300)
    assert p.returncode == -9, (p.returncode, p.stderr)
    # the manifest no longer lists what is about to go, and lists nothing missing
    assert [r["version"] for r in dev.manifest("dev")["releases"]] == ["1.2.0"]
    assert keys.gpg_verify(dev.manifest_path("dev") + ".sig", dev.manifest_path("dev")).returncode == 0
    every_listed_commit_present(dev)
    # the next run finishes the collection
    out = dev.signed("prune", "--channel=dev").stdout.decode()
    assert "dropped" not in out, out
    assert not has_commit(dev, dev.c["1.0.0"]) and not has_commit(dev, dev.c["1.1.0"])
    assert "abdeploy/release/1.1.0" not in dev.ostree("refs").split()
    every_listed_commit_present(dev)
    run(["ostree", "--repo=" + dev.repo, "fsck"], dev.env)
    # and the publisher goes on: the summary check finds no unlisted delta
    dev.commit("1.3.0", dev.tree("t13", files("1.3.0")))
