"""The public API stays documented and its fallible functions checked.

Every function declared in a header under include/ has a comment right
before its declaration (what it does, its invariants, what it leaves
behind on error), and every fallible one (it returns gboolean or a pointer
and takes a GError **) carries G_GNUC_WARN_UNUSED_RESULT, so that a caller
cannot drop its result.
"""

import glob
import os
import re

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INCLUDE = os.path.join(TOP, "include")

DECL_START = re.compile(r"^(?:G_GNUC_WARN_UNUSED_RESULT\s+)?(?:const\s+)?[A-Za-z_]\w*[\s*]+"
                        r"\**([a-z_]\w*)\s*\(")


def headers():
    return sorted(glob.glob(os.path.join(INCLUDE, "**", "*.h"), recursive=True))


def declarations(path):
    """(name, text, comment_before, attribute_line) for every function
    declaration at file level."""
    lines = open(path, encoding="utf-8").read().split("\n")
    depth = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if depth == 0 and not line.startswith((" ", "#", "typedef", "G_DEFINE", "/*", " *")):
            m = DECL_START.match(line)
            if m:
                j = i
                text = line
                while not text.rstrip().endswith(";") and j + 1 < len(lines):
                    j += 1
                    text += " " + lines[j].strip()
                k = i - 1
                attr = False
                while k >= 0 and lines[k].strip().startswith("G_GNUC_"):
                    attr = attr or "G_GNUC_WARN_UNUSED_RESULT" in lines[k]
                    k -= 1
                comment = k >= 0 and lines[k].rstrip().endswith("*/")
                yield m.group(1), text, comment, attr, i + 1
                i = j + 1
                continue
        depth += line.count("{") - line.count("}")
        i += 1


def fallible(text):
    ret = text.split("(", 1)[0]
    returns = "gboolean" in ret.split() or "*" in ret
    return returns and "GError **" in text


def all_declarations():
    out = []
    for h in headers():
        for name, text, comment, attr, line in declarations(h):
            out.append((os.path.relpath(h, TOP), line, name, text, comment, attr))
    return out


def test_headers_declare_functions():
    assert len(all_declarations()) > 100


def test_every_public_function_has_a_comment():
    missing = ["%s:%d %s" % (h, line, name)
               for h, line, name, _, comment, _ in all_declarations() if not comment]
    assert not missing, ("public functions without a comment right before their "
                         "declaration (say what it does, its invariants and what it "
                         "leaves behind on error):\n  " + "\n  ".join(missing))


def test_every_fallible_function_warns_unused_result():
    missing = ["%s:%d %s" % (h, line, name)
               for h, line, name, text, _, attr in all_declarations()
               if fallible(text) and not (attr or "G_GNUC_WARN_UNUSED_RESULT" in text)]
    assert not missing, ("fallible public functions (gboolean or pointer result and "
                         "GError **) without G_GNUC_WARN_UNUSED_RESULT:\n  "
                         + "\n  ".join(missing))
