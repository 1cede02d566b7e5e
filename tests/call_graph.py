#!/usr/bin/env python3
"""tests/call_graph.py OBJECT... — which source file calls which, from the
symbols of the given object files (nm): file A points at file B when A's
object uses a global that B's object defines.  Prints the edges, one line a
file, then fails (exit 1) naming the files of each cycle, if any.  For the
http module (tests/CMakeLists.txt): its files call down, never around, so
that each can be read, and changed, knowing only what it calls.

  tests/call_graph.py [--nm NM] OBJECT...
"""
import os
import subprocess
import sys


def symbols(nm, obj):
    defined, used = set(), set()
    out = subprocess.run([nm, "-P", obj], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            used.add(name)
        elif kind in "TDBR":  # global text, data, bss, read-only
            defined.add(name)
    return defined, used


def name_of(obj):
    base = os.path.basename(obj)
    for suffix in (".o", ".obj"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


def cycles(graph):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(argv):
    nm = "nm"
    if argv[:1] == ["--nm"]:
        nm, argv = argv[1], argv[2:]
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    table = {name_of(o): symbols(nm, o) for o in argv}
    owner = {s: f for f, (defs, _) in table.items() for s in defs}
    graph = {f: {owner[s] for s in used if s in owner and owner[s] != f}
             for f, (_, used) in table.items()}
    for f in sorted(graph):
        print(f"{f} -> {' '.join(sorted(graph[f])) or '(nothing)'}")
    bad = cycles(graph)
    for comp in bad:
        print(f"cycle: {' '.join(comp)} call each other", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
