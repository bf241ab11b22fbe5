"""Every usage error exits 2 and says what was wrong and what is accepted
(issue 16, point 4).

The cases are generated from the commands' real option tables, read from
`abdeploy --help`, `abdeploy COMMAND --help` and `abdeploy publish SUB
--help`, so that an option added later is covered too: for every command an
unknown option, a misspelled one (did you mean), a stray argument; for every
option a missing value, a value given to a flag, a number that is not one;
plus a table of bad enum values, missing required options and conflicts.
Each runs against a sysroot (and publisher repo) that does not exist, so a
usage check that is missing shows up as exit 1 rather than 2."""

import os
import re
import subprocess

import pytest

import abtest as at

NOWHERE = "/nonexistent/abdeploy-usage-test"
# Commands run with a bad invocation only; these need no sysroot at all.
ENV = dict(at.clean_env(),
           LC_ALL="C.UTF-8", LANGUAGE="C")


def abdeploy(*args):
    return subprocess.run([at.abdeploy_binary()] + list(args), capture_output=True, text=True,
                          env=ENV, timeout=60, stdin=subprocess.DEVNULL)


def help_text(*words):
    p = abdeploy(*words, "--help")
    assert p.returncode == 0, (words, p.stderr)
    return p.stdout


def listed(text, heading):
    """The words listed under HEADING (indented lines up to a blank one)."""
    names = []
    for line in text.split(heading, 1)[1].splitlines()[1:]:
        m = re.match(r"^\s+([a-z][a-z0-9-]*)(\s|$)", line)
        if not m:
            break
        names.append(m.group(1))
    return names


def options(*words):
    """{--name: metavar or None} of the "Application Options" of WORDS --help."""
    text = help_text(*words)
    opts = {}
    for m in re.finditer(r"(?m)^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)(?:=(\S+))?", text):
        opts[m.group(1)] = m.group(2)
    opts.pop("--help", None)
    return opts


def takes_arguments(*words):
    """Whether WORDS' usage line names positional arguments."""
    line = help_text(*words).splitlines()[1]
    between = line.split("[OPTION…]", 1)[1].split(" - ", 1)[0]
    return between.strip() != ""


COMMANDS = [c for c in listed(help_text(), "Commands:") if c not in ("help",)]
PUBLISH = listed(help_text("publish"), "Subcommands:")
TARGETS = [(c,) for c in COMMANDS if c != "publish"] + [("publish", s) for s in PUBLISH]
# What each command needs before it looks at its options' values.
BASE = {
    ("init",): ["--os=x"],
    ("stage",): ["os/v1"],
    ("deploy",): ["os/v1"],
    ("pin",): ["1.0"],
    ("backup",): ["--output=" + NOWHERE + "/b.tar"],
    ("restore",): ["--path=" + NOWHERE + "/b.tar"],
    ("install",): ["--disk=" + NOWHERE + "/d.img", "--from=" + NOWHERE, "os/v1"],
    ("publish", "commit"): ["--repo=" + NOWHERE, "--tree=" + NOWHERE, "--version=1"],
    ("publish", "release"): ["--repo=" + NOWHERE, "--channel=c", "--version=1"],
    ("publish", "promote"): ["--repo=" + NOWHERE, "--from=a", "--to=b", "--version=1"],
    ("publish", "deprecate"): ["--repo=" + NOWHERE, "--channel=c", "--version=1", "--reason=r"],
}
PUBLISH_BASE = ["--repo=" + NOWHERE, "--channel=c"]
NUMERIC = {"N", "SEC", "PERCENT", "SECONDS", "DAYS"}


def run_bad(words, extra):
    base = [] if words[0] == "publish" else ["--sysroot=" + NOWHERE]
    return abdeploy(*base, *words, *extra)


def assert_usage(r, *named):
    out = r.stderr
    assert r.returncode == at.EXIT_USAGE, "exit %d, not 2:\n%s%s" % (r.returncode, r.stdout, out)
    for word in named:
        assert word in out, "%r not named in:\n%s" % (word, out)


def generated():
    for words in TARGETS:
        opts = options(*words)
        ident = " ".join(words)
        yield pytest.param(words, ["--no-such-option"], ["--no-such-option", "--help"],
                           id=ident + ":unknown-option")
        for opt, metavar in sorted(opts.items()):
            typo = opt[:-1]
            if len(opt) > 6 and typo not in opts and not any(o.startswith(typo) and o != opt
                                                             for o in opts):
                yield pytest.param(words, [typo], [typo, 'did you mean "%s"' % opt],
                                   id="%s:typo%s" % (ident, opt))
            if metavar is None:
                yield pytest.param(words, [opt + "=surplus"], [opt],
                                   id="%s:%s=value" % (ident, opt))
                continue
            yield pytest.param(words, [opt], [opt], id="%s:%s-no-value" % (ident, opt))
            if metavar in NUMERIC:
                yield pytest.param(words, [opt + "=many"], ["many", opt],
                                   id="%s:%s=many" % (ident, opt))
            if "|" in metavar and "/" not in metavar and metavar.islower():
                yield pytest.param(words, [opt + "=bogus"], ["bogus"] + metavar.split("|"),
                                   id="%s:%s=bogus" % (ident, opt))
        if not takes_arguments(*words):
            yield pytest.param(words, ["stray"], ['"stray"'], id=ident + ":stray-argument")


@pytest.mark.parametrize("words,extra,named", list(generated()))
def test_generated_usage_error(words, extra, named):
    base = BASE.get(tuple(words), PUBLISH_BASE if words[0] == "publish" else [])
    if extra == ["stray"]:
        base = [a for a in base if a.startswith("-")]
    assert_usage(run_bad(words, base + extra), *named)


# Bad values of enums and ranges, missing required options, conflicts: the
# checks the command makes after GLib has parsed the options.
TABLE = [
    (["init", "--os=x", "--bootloader=grb"], ['"grb"', 'did you mean "grub"', "systemd-boot"]),
    (["init", "--os=x", "--bootloader="], ['""', "grub", "uboot"]),
    (["init"], ["--os"]),
    (["install", "--disk=" + NOWHERE + "/d.img", "--bootloader=grb", "--from=" + NOWHERE, "os/v1"],
     ["grb", "grub-bios", "grub-efi"]),
    (["install", "--disk=" + NOWHERE + "/d.img", "--size=12Q", "--from=" + NOWHERE, "os/v1"],
     ["12Q", "G"]),
    (["mark-good", "c"], ['"c"', "booted", "other"]),
    (["mark-bad", "bootd"], ['"bootd"', 'did you mean "booted"']),
    (["mark-good", "a", "b"], ['"b"']),
    (["deploy", "--tries=0", "os/v1"], ["--tries=0", "1 to 9"]),
    (["deploy", "--tries=10", "os/v1"], ["--tries=10", "1 to 9"]),
    (["activate", "--tries=-1"], ["--tries=-1", "1 to 9"]),
    (["stage"], ["REF or COMMIT"]),
    (["stage", "a", "b"], ['"b"']),
    (["update", "--version="], ["--version", "empty"]),
    (["update", "--progress=bogus"], ["bogus", "auto", "bar", "json", "none"]),
    (["update", "--progress-fd=x"], ["--progress-fd=x"]),
    (["update", "--progress-fd=99"], ["--progress-fd=99", "not open"]),
    (["verify", "--sample=0"], ["--sample=0", "positive"]),
    (["verify", "--full", "--sample=3"], ["--full", "--sample"]),
    (["pin"], ["VERSION", "--clear"]),
    (["pin", "1.0", "2.0"], ['"2.0"']),
    (["pin", "--clear", "1.0"], ['"1.0"', "--clear"]),
    (["pin", "--clear", "--allow-downgrade"], ["--clear", "--allow-downgrade"]),
    (["pin", ""], ["VERSION"]),
    (["backup"], ["--output"]),
    (["restore"], ["--path"]),
    (["daemon", "--idle-timeout=-5"], ["--idle-timeout=-5"]),
    (["stauts"], ['"stauts"', 'did you mean "status"', "rollback"]),
    (["frobnicate"], ['"frobnicate"', "Commands:"]),
    (["--sysrot=/", "status"], ["--sysrot", 'did you mean "--sysroot"']),
    (["help", "stauts"], ['"stauts"', 'did you mean "status"']),
    (["help", "status", "x"], ['"x"']),
    (["publish", "comit"], ['"comit"', 'did you mean "commit"', "refresh"]),
    (["publish"], ["SUBCOMMAND", "commit"]),
    (["help", "publish", "relase"], ['"relase"', 'did you mean "release"']),
    (["publish", "commit", "--repo=" + NOWHERE], ["--tree", "--version"]),
    (["publish", "release", "--repo=" + NOWHERE, "--channel=c", "--version=1", "--rollout=0"],
     ["--rollout=0", "1 to 100"]),
    (["publish", "release", "--repo=" + NOWHERE, "--channel=c", "--version=1",
      "--expires-days=0"], ["--expires-days=0", "1 to 3660"]),
    (["publish", "deltas", "--repo=" + NOWHERE, "--channel=c", "--from-last=0"],
     ["--from-last=0", "1 to 100"]),
    (["publish", "release", "--channel=c"], ["--repo"]),
]


@pytest.mark.parametrize("args,named", TABLE, ids=[" ".join(a) or "-" for a, _ in TABLE])
def test_usage_error(args, named):
    r = abdeploy("--sysroot=" + NOWHERE, *args) if args[0] != "publish" else abdeploy(*args)
    assert_usage(r, *named)


def test_no_suggestion_when_nothing_is_close():
    r = abdeploy("frobnicate")
    assert_usage(r, '"frobnicate"')
    assert "did you mean" not in r.stderr


def test_generated_cases_cover_every_command():
    covered = {" ".join(p.values[0]) for p in generated()}
    assert covered == {" ".join(t) for t in TARGETS}
    assert len(TARGETS) >= 20, TARGETS


def test_top_level_help_lists_progress_and_publish_refresh():
    text = help_text()
    for word in ("--progress", "--progress-fd", "refresh", "help", "--sysroot"):
        assert word in text, (word, text)
    assert abdeploy("help").stdout == text


def test_help_command_prints_the_command_help():
    for words in TARGETS:
        r = abdeploy("help", *words)
        assert r.returncode == 0, (words, r.stderr)
        assert r.stdout == help_text(*words), words


def test_publish_offers_no_global_options():
    for sub in PUBLISH:
        opts = options("publish", sub)
        assert not {"--sysroot", "--config", "--verbose"} & set(opts), (sub, opts)
    # still accepted, so that scripts keep working
    r = abdeploy("--sysroot=" + NOWHERE, "publish", "release", "--repo=" + NOWHERE,
                 "--channel=c", "--version=1", "--rollout=0")
    assert_usage(r, "--rollout=0")
