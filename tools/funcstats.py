#!/usr/bin/python3
"""Function length figures for C sources (GNU style, as in src/).

A function is a definition whose name starts a line at column 0
("name (...") followed, after its parameter lines, by a "{" line at
column 0; it ends at the next "}" line at column 0. Its length is the
number of lines of its body, braces excluded (blank lines and comments
inside count).

Usage: tools/funcstats.py [--top N] [DIR_OR_FILE...]   (default: src)
Prints the count, the median and mean length, the longest functions and
how many are over 60 lines.
"""
import argparse
import os
import re
import statistics
import sys

NAME = re.compile(r'^([A-Za-z_]\w*) \(')


def functions(path):
    lines = open(path, encoding='utf-8', errors='replace').read().split('\n')
    i = 0
    while i < len(lines):
        m = NAME.match(lines[i])
        if not m:
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j] != '{' and not lines[j].rstrip().endswith(';'):
            j += 1
        if j >= len(lines) or lines[j] != '{':
            i += 1
            continue
        k = j + 1
        while k < len(lines) and lines[k] != '}':
            k += 1
        yield m.group(1), i + 1, k - j - 1
        i = k + 1


def sources(paths):
    for p in paths:
        if os.path.isfile(p):
            yield p
            continue
        for root, _, files in os.walk(p):
            for f in sorted(files):
                if f.endswith('.c'):
                    yield os.path.join(root, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--top', type=int, default=5)
    ap.add_argument('paths', nargs='*', default=['src'])
    args = ap.parse_args()
    found = [(n, f, line, length) for f in sources(args.paths)
             for n, line, length in functions(f)]
    if not found:
        sys.exit('no functions found')
    lengths = [x[3] for x in found]
    print(f'functions: {len(found)}')
    print(f'median: {statistics.median(lengths)}  mean: {statistics.mean(lengths):.1f}')
    print(f'over 60 lines: {sum(1 for n in lengths if n > 60)}')
    for n, f, line, length in sorted(found, key=lambda x: -x[3])[:args.top]:
        print(f'{length:4d}  {n}  {f}:{line}')


if __name__ == '__main__':
    main()
