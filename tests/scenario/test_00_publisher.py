"""Self-checks of the test fixtures, with the ostree CLI only.

They show that the served repo is what the other tests assume (good
signatures verify over HTTP, the bad ones do not, the damaged object is
really damaged), so a failure elsewhere points at abdeploy, not at the
fixtures."""

import os

import pytest

import scenariolib as sl


def _client(workdir, name, server_url, keyfile):
    repo = os.path.join(workdir, "client-" + name)
    sl.rmtree(repo)
    sl.run(["ostree", "init", "--mode=bare", "--repo=" + repo])
    sl.run(["ostree", "--repo=" + repo, "remote", "add", "--set=gpg-verify=true",
            "--gpg-import=" + keyfile, "origin", server_url])
    return repo


def _pull(repo, ref):
    return sl.run(["ostree", "--repo=" + repo, "pull", "origin", ref],
                  env=sl.clean_env(), check=False, timeout=120)


def test_published_commits_have_versions(published):
    for img, version in ((published.v1, "1.0"), (published.v2, "2.0"),
                         (published.unsigned, "2.1"), (published.evil, "6.6.6")):
        out = sl.run(["ostree", "--repo=" + published.path, "show", img.commit,
                      "--print-metadata-key=version"]).stdout.decode()
        assert version in out
    rev = sl.run(["ostree", "--repo=" + published.path, "rev-parse", "os/stable"]).stdout.decode().strip()
    assert rev == published.v2.commit


@pytest.mark.parametrize("ref,ok", [("os/v1", True), ("os/v2", True),
                                    ("os/unsigned", False), ("os/evil", False)])
def test_ostree_cli_verifies_served_commits(workdir, server, keyfiles, ref, ok):
    repo = _client(workdir, ref.replace("/", "_"), server.url, keyfiles["trusted.gpg"])
    p = _pull(repo, ref)
    assert (p.returncode == 0) == ok, p.stderr.decode()
    if not ok:
        assert b"signature" in p.stderr.lower() or b"gpg" in p.stderr.lower()


def test_corrupt_server_is_really_corrupt(workdir, corrupt_server, keyfiles):
    repo = _client(workdir, "corrupt", corrupt_server.url, keyfiles["trusted.gpg"])
    assert _pull(repo, "os/v1").returncode == 0
    p = _pull(repo, "os/v2")
    assert p.returncode != 0, "pull of the damaged v2 unexpectedly succeeded"
