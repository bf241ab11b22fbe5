#!/usr/bin/python3
"""Module include graph of abdeploy and its cycles.

A module is a source file and its public header of the same name
(src/ab-x.c and include/ab-x.h are module "ab-x"; src/cli/main.c is
"main").  Module A depends on module B when a file of A has
`#include "....../B.h"`.  A header under src/ is private to the files that
include it: not a module, its includes count for its includers.  Prints
the edges (with --edges), every strongly connected component of more than
one module, every elementary cycle, and a last line "cycles: N".  Exits 1
when there is a cycle, so CI may run it as a check.

    tools/include-graph.py [--edges] [ROOT]
"""

import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
MAX_CYCLES = 1000


def module_of(path):
    """ab-x.c, ab-x.h and the module's private header ab-x-private.h."""
    name = os.path.splitext(os.path.basename(path))[0]
    return name[:-len("-private")] if name.endswith("-private") else name


def read_graph(root):
    """Modules and their dependencies. A header under src/ is private to the
    files that include it (src/cli/cli.h, src/daemon/daemon.h,
    src/publisher/ab-publish-private.h): it is no module of its own, and
    what it includes counts for each module that includes it."""
    files = []
    for top in ("src", "include"):
        for d, _, names in os.walk(os.path.join(root, top)):
            files += [os.path.join(d, n) for n in names if n.endswith((".c", ".h"))]
    private = {os.path.basename(f): f for f in files
               if f.endswith(".h") and os.path.relpath(f, root).startswith("src" + os.sep)}
    includes = {}
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            includes[f] = [os.path.basename(i) for i in INCLUDE.findall(fh.read())]
    modules = {module_of(f) for f in files if os.path.basename(f) not in private}
    graph = {m: set() for m in modules}

    def deps(f, seen):
        for inc in includes[f]:
            if inc in private and private[inc] not in seen:
                seen.add(private[inc])
                yield from deps(private[inc], seen)
            elif module_of(inc) in modules:
                yield module_of(inc)

    for f in files:
        if os.path.basename(f) in private:
            continue
        m = module_of(f)
        graph[m] |= {d for d in deps(f, set()) if d != m}
    return graph


def sccs(graph):
    """Tarjan's algorithm, iterative."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    out.append(sorted(comp))
    return out


def cycles_in(graph, comp):
    """Elementary cycles inside one component, each starting at its
    smallest module (bounded by MAX_CYCLES)."""
    members = set(comp)
    found = []
    for start in sorted(comp):
        path = [start]

        def walk(v):
            for w in sorted(graph[v] & members):
                if len(found) >= MAX_CYCLES:
                    return
                if w == start:
                    found.append(path + [start])
                elif w > start and w not in path:
                    path.append(w)
                    walk(w)
                    path.pop()

        walk(start)
    return found


def main(argv):
    edges = "--edges" in argv
    args = [a for a in argv if not a.startswith("--")]
    root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    graph = read_graph(root)
    if edges:
        for m in sorted(graph):
            print("%s -> %s" % (m, " ".join(sorted(graph[m])) or "-"))
    total = 0
    for comp in sccs(graph):
        if len(comp) < 2:
            continue
        print("component: %s" % " ".join(comp))
        for c in cycles_in(graph, comp):
            print("  cycle: %s" % " -> ".join(c))
            total += 1
    print("modules: %d, edges: %d, cycles: %d" % (
        len(graph), sum(len(v) for v in graph.values()), total))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
