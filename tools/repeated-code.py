#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""tools/repeated-code.py - repeated code in C sources: blocks of at least
--min-lines consecutive statement lines that occur more than once.

Each line is normalized (comments and blank lines dropped, whitespace
squeezed; lines of only braces, `return TRUE;`, `return FALSE;` or
`}` ignored, since they repeat by nature). A duplicate is a window of
--min-lines normalized lines that also occurs elsewhere (in the same file or
another); overlapping windows of one repeated run count as one block.
Prints the number of duplicated blocks, the lines they cover, and the
largest ones with their places. Standard library only.

    python3 tools/repeated-code.py [--min-lines 6] [--top 10] [PATH...]   (default: src)
"""

import argparse
import collections
import os
import re
import sys

TRIVIAL = re.compile(r"^(\{|\}|\};|return (TRUE|FALSE|NULL);|else|break;|continue;)$")


def statements(path):
    """(line number, normalized text) of every line that says something."""
    text = open(path, encoding="utf-8", errors="replace").read()
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        line = re.sub(r"//.*", "", line)
        line = " ".join(line.split())
        if line and not TRIVIAL.match(line) and not line.startswith("#"):
            out.append((n, line))
    return out


def sources(paths):
    for p in paths:
        if os.path.isfile(p):
            yield p
            continue
        for d, _, files in os.walk(p):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.join(d, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", default=["src"])
    ap.add_argument("--min-lines", type=int, default=6)
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    k = a.min_lines
    files = {p: statements(p) for p in sources(a.paths)}
    where = collections.defaultdict(list)
    for p, st in files.items():
        for i in range(len(st) - k + 1):
            where[tuple(t for _, t in st[i:i + k])].append((p, i))
    dup = {(p, i) for places in where.values() if len(places) > 1 for p, i in places}
    blocks = []
    for p, st in files.items():
        i = 0
        while i < len(st):
            if (p, i) not in dup:
                i += 1
                continue
            j = i
            while (p, j + 1) in dup:
                j += 1
            blocks.append((j - i + k, p, st[i][0], st[j + k - 1][0]))
            i = j + 1
    covered = sum(b[0] for b in blocks)
    total = sum(len(st) for st in files.values())
    print("files: %d  statement lines: %d" % (len(files), total))
    print("duplicated blocks (>= %d lines): %d, covering %d lines (%.1f %%)"
          % (k, len(blocks), covered, 100.0 * covered / max(1, total)))
    for n, p, first, last in sorted(blocks, reverse=True)[:a.top]:
        print("  %3d  %s:%d-%d" % (n, p, first, last))
    return 0


if __name__ == "__main__":
    sys.exit(main())
