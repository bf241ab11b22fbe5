"""The engine decides and reports; front ends act (issue 12).

Checks on the sources: the configuration key file is parsed in one module
only (ab-config.c); the modules that used to print (health, sysroot) do
not; no engine decision reads an error's message, apart from the one
boundary that classifies libostree's untyped messages (ab-ostree-error.c).
"""

import os
import re

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def engine_sources():
    src = os.path.join(ROOT, "src")
    for d, _, names in os.walk(src):
        if os.path.relpath(d, src).split(os.sep)[0] in ("cli", "daemon"):   # front ends
            continue
        for n in names:
            if n.endswith(".c"):
                yield os.path.join(d, n)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# The device's configuration (abdeploy.conf) is read by ab-config.c only.
# The publisher's channel policy (REPO/abdeploy/publish.conf, issue 17) is
# another file, of the publisher's repo, read by its own module.
KEY_FILE_READERS = ("ab-config.c", "ab-publish-policy.c")


def test_key_file_parsed_in_ab_config_only():
    offenders = [os.path.relpath(p, ROOT) for p in engine_sources()
                 if os.path.basename(p) not in KEY_FILE_READERS
                 and re.search(r"\bg_key_file_|\bGKeyFile\b", read(p))]
    assert offenders == [], "GKeyFile outside src/ab-config.c: %s" % offenders


def test_health_and_sysroot_do_not_print_or_spawn():
    for name in ("ab-health.c", "ab-sysroot.c", "ab-recover.c"):
        text = read(os.path.join(ROOT, "src", name))
        found = re.findall(r"\b(g_print|g_printerr|printf|fprintf|exit|_exit|g_spawn_\w+)\s*\(", text)
        assert found == [], "%s: %s" % (name, found)


def test_no_decision_on_error_text():
    offenders = []
    for p in engine_sources():
        if os.path.basename(p) == "ab-ostree-error.c":
            continue   # the libostree boundary (ab-ostree-error.h)
        for n, line in enumerate(read(p).splitlines(), 1):
            if re.search(r"\b(strstr|g_strstr_len|g_str_has_prefix|g_str_has_suffix|g_str_equal|strcmp|"
                         r"g_strcmp0)\s*\([^;]*message", line):
                offenders.append("%s:%d: %s" % (os.path.relpath(p, ROOT), n, line.strip()))
    assert offenders == [], "\n".join(offenders)
