"""The documentation keeps up with the code.

Every command of `abdeploy --help`, every long option of
`abdeploy COMMAND --help`, and every configuration group and key that the C
sources read must be documented: commands and options in man/abdeploy.8.scd,
configuration in man/abdeploy.conf.5.scd, commands in README.md.

ABDEPLOY_BIN names the built binary (meson sets it).
"""

import glob
import os
import re
import subprocess

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAN_DIR = os.path.join(TOP, "man")
SRC_DIR = os.path.join(TOP, "src")


def read(*parts):
    with open(os.path.join(TOP, *parts), encoding="utf-8") as f:
        return f.read()


def binary():
    path = os.environ.get("ABDEPLOY_BIN")
    if not path:
        pytest.fail("set ABDEPLOY_BIN to the built abdeploy binary")
    return path


def run_help(*args):
    env = dict(os.environ, LC_ALL="C.UTF-8", LANGUAGE="C")
    p = subprocess.run([binary()] + list(args) + ["--help"], capture_output=True,
                       text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, "abdeploy %s --help failed (%d):\n%s%s" % (
        " ".join(args), p.returncode, p.stdout, p.stderr)
    return p.stdout


def commands():
    """Command names listed after "Commands:" in `abdeploy --help`."""
    out = run_help()
    assert "Commands:" in out, "abdeploy --help lists no commands:\n" + out
    names = []
    for line in out.split("Commands:", 1)[1].splitlines():
        if not line.strip():
            if names:
                break
            continue
        m = re.match(r"^\s+([a-z][a-z0-9-]*)(\s|$)", line)
        if not m:
            break
        names.append(m.group(1))
    assert names, "no command found after Commands: in\n" + out
    return names


def long_options(command):
    return sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", run_help(command))))


COMMANDS = commands() if os.environ.get("ABDEPLOY_BIN") else []
OPTIONS = {c: long_options(c) for c in COMMANDS}
# Options that most commands accept (--sysroot, --config, --verbose, --help)
# are global: documented once, under GLOBAL OPTIONS.
GLOBAL = {o for opts in OPTIONS.values() for o in opts
          if sum(o in other for other in OPTIONS.values()) * 2 > len(OPTIONS)}


def man_sections(text):
    """'## NAME[, NAME...]' subsections of a scdoc page -> their text."""
    sections = {}
    parts = re.split(r"(?m)^(#{1,2} .*)$", text)
    for head, body in zip(parts[1::2], parts[2::2]):
        if head.startswith("## "):
            for name in head[3:].split(","):
                sections[name.strip()] = body
    return sections


def mentions(text, word):
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text) is not None


# --- configuration keys from the sources ------------------------------------

STRING = r'"(?:[^"\\]|\\.)*"'
# g_key_file_<fn> (KEYFILE, GROUP[, KEY ...: only functions that take a group
# and a key.
KEYFILE_CALL = re.compile(
    r"\bg_key_file_(has_key|get_\w+|set_\w+|remove_key)\s*\(\s*[^,;]+?,\s*(" + STRING +
    r"|\w+)\s*,\s*(" + STRING + r"|[\w>.-]+)")
NOT_KEYED = {"get_groups", "get_keys", "get_start_group", "get_comment", "set_comment",
             "set_list_separator"}
DEFINE = re.compile(r"(?m)^#define\s+(\w+)\s+(" + STRING + r")\s*$")
# The key table of src/ab-config.c: CONFIG_KEY ("group", "key", ...).
TABLE_KEY = re.compile(r"\bCONFIG_KEY\s*\(\s*(" + STRING + r")\s*,\s*(" + STRING + r")")


def unquote(literal):
    return literal[1:-1].encode().decode("unicode_escape")


def config_keys():
    """{group: {key, ...}} read by src/*.c.

    The keys of the table in src/ab-config.c (CONFIG_KEY) and the groups
    named by its *_GROUP macros count.
    A group or key given as a string literal, or as a macro defined as one in
    the same file, counts. A key given as a variable (a hook name, a
    parameter) makes its group count; the file's own KEY_* macros are then
    taken as keys of that group (they are the keys passed in)."""
    keys = {}
    for path in sorted(glob.glob(os.path.join(SRC_DIR, "*.c"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        macros = {name: unquote(value) for name, value in DEFINE.findall(text)}

        def resolve(arg):
            if arg.startswith('"'):
                return unquote(arg)
            return macros.get(arg)

        for group_arg, key_arg in TABLE_KEY.findall(text):
            keys.setdefault(unquote(group_arg), set()).add(unquote(key_arg))
        # A group whose keys are free names (hook names): a *_GROUP macro.
        for name, value in macros.items():
            if name.endswith("_GROUP"):
                keys.setdefault(value, set())
        for fn, group_arg, key_arg in KEYFILE_CALL.findall(text):
            if fn in NOT_KEYED:
                continue
            group = resolve(group_arg)
            if group is None:
                continue
            found = keys.setdefault(group, set())
            key = resolve(key_arg)
            if key is not None:
                found.add(key)
            else:
                found.update(v for n, v in macros.items() if n.startswith("KEY_"))
    return keys


CONFIG = config_keys()


# --- tests -------------------------------------------------------------------

def test_sources_read_configuration():
    # The scan itself must find something, or the key tests below test nothing.
    assert "boot" in CONFIG and "tries" in CONFIG["boot"], CONFIG


def test_help_lists_commands():
    binary()
    assert len(COMMANDS) >= 6, COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_command_in_man_page(command):
    page = read("man", "abdeploy.8.scd")
    sections = man_sections(page)
    assert command in sections, \
        "man/abdeploy.8.scd has no '## %s' section (sections: %s)" % (command, sorted(sections))
    assert re.search(r"\*abdeploy %s\*" % re.escape(command), page), \
        "man/abdeploy.8.scd never shows *abdeploy %s*" % command


@pytest.mark.parametrize("command", COMMANDS)
def test_command_options_in_man_page(command):
    """Options go into the command's section of abdeploy(8), or into the
    command's own page man/abdeploy-COMMAND.8.scd when it has one."""
    page = read("man", "abdeploy.8.scd")
    text = man_sections(page).get(command, "")
    where = "man/abdeploy.8.scd, section %s," % command
    own = os.path.join(MAN_DIR, "abdeploy-%s.8.scd" % command)
    if os.path.exists(own):
        text += read("man", os.path.basename(own))
        where += " and man/%s" % os.path.basename(own)
    missing = [o for o in OPTIONS[command] if o not in GLOBAL and not mentions(text, o)]
    assert not missing, "%s lack %s" % (where, missing)


def test_global_options_in_man_page():
    page = read("man", "abdeploy.8.scd")
    missing = [o for o in sorted(GLOBAL) if not mentions(page, o)]
    assert not missing, "man/abdeploy.8.scd lacks the global options %s" % missing


@pytest.mark.parametrize("command", COMMANDS)
def test_command_in_readme(command):
    readme = read("README.md")
    assert re.search(r"abdeploy %s(?![\w-])" % re.escape(command), readme), \
        "README.md never shows 'abdeploy %s'" % command


@pytest.mark.parametrize("group", sorted(CONFIG))
def test_config_group_in_man_page(group):
    page = read("man", "abdeploy.conf.5.scd")
    assert re.search(r"(?m)^## \[%s\]\s*$" % re.escape(group), page), \
        "man/abdeploy.conf.5.scd has no '## [%s]' section" % group


@pytest.mark.parametrize("group,key", sorted((g, k) for g, ks in CONFIG.items() for k in ks))
def test_config_key_in_man_page(group, key):
    page = read("man", "abdeploy.conf.5.scd")
    section = man_sections(page).get("[%s]" % group, "")
    assert re.search(r"\*%s\*=" % re.escape(key), section), \
        "man/abdeploy.conf.5.scd, section [%s], does not describe *%s*=" % (group, key)


def test_every_page_is_built():
    build = read("man", "meson.build")
    for path in sorted(glob.glob(os.path.join(MAN_DIR, "*.scd"))):
        page = os.path.basename(path)[:-len(".scd")]
        assert "'%s'" % page in build, "man/meson.build does not build %s" % page


def backends():
    """Backend names that `abdeploy init --help` lists from the backend table."""
    out = run_help("init")
    assert "Bootloader backends" in out, "abdeploy init --help lists no backends:\n" + out
    names = []
    for line in out.split("Bootloader backends", 1)[1].splitlines()[1:]:
        m = re.match(r"^\s+([a-z][a-z0-9-]*)\s", line)
        if not m:
            break
        names.append(m.group(1))
    assert names, "no backend after 'Bootloader backends' in\n" + out
    return names


BACKENDS = backends() if os.environ.get("ABDEPLOY_BIN") else []


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_documented(backend):
    """Each backend of the table is in abdeploy-pointer(5)'s BACKENDS table,
    in abdeploy(8)'s init section and in the shell completion."""
    pointer = read("man", "abdeploy-pointer.5.scd")
    table = pointer.split("# BACKENDS", 1)[-1].split("\n# ", 1)[0]
    assert re.search(r"(?m)^\|\s+\*%s\*\s*$" % re.escape(backend), table), \
        "man/abdeploy-pointer.5.scd, BACKENDS, has no row for *%s*" % backend
    init = man_sections(read("man", "abdeploy.8.scd")).get("init", "")
    assert "*%s*" % backend in init, "abdeploy(8), init, does not name *%s*" % backend
    completion = read("data", "completion", "abdeploy.bash")
    m = re.search(r'--bootloader\)\s*COMPREPLY=\(\$\(compgen -W "([^"]*)"', completion)
    assert m and backend in m.group(1).split(), \
        "data/completion/abdeploy.bash does not complete --bootloader=%s" % backend


BACKEND_LITERAL = re.compile(r'"(grub|file|uboot|custom|systemd-boot)"')
COMPARISON = re.compile(r"\b(g_strcmp0|strcmp|strncmp|strcasecmp|g_str_equal|g_ascii_strcasecmp)\s*\(")


def test_no_backend_name_comparison():
    """Only the backend table knows backend names: no source compares one
    (a "file" compared on a line about something else, such as an archive
    entry's type, is not a backend)."""
    found = []
    for path in sorted(glob.glob(os.path.join(SRC_DIR, "**", "*.c"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                lit = BACKEND_LITERAL.search(line)
                if not lit or not COMPARISON.search(line):
                    continue
                if lit.group(1) == "file" and not re.search(r"bootloader|backend", line):
                    continue
                found.append("%s:%d: %s" % (os.path.relpath(path, TOP), n, line.strip()))
    assert not found, "backend names compared outside the table:\n" + "\n".join(found)
