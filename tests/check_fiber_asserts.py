#!/usr/bin/env python3
"""Fails when a cmocka assertion can run on a fiber or a thread of a test.

A failed assert_*(), fail(), fail_msg() or skip() longjmps to the setjmp
cmocka took on the main thread's stack (tests/unit/harness.h says why that
is undefined behaviour from a fiber or another thread).  Fibers and threads
record failures with the CHECK* of harness.h instead.

What counts as running elsewhere, per file: every function whose name is
used as a value rather than called (passed to async_spawn, async_runtime,
RUN, async_group_spawn, pthread_create, async__ctx_make, signal, kept in a
struct...), except cmocka's own entry points (anything taking void **state), and
everything those functions call, transitively, among the functions defined
in the same file.  A macro whose body holds an assertion counts as one.
Deliberately coarse: a callback that really runs on the test's own stack
(none today) would have to use CHECK* too, which is always safe.

Usage: check_fiber_asserts.py FILE.c...  Prints file:line for each use and
exits 1 if there is any; the build runs it (tests/CMakeLists.txt)."""

import re
import sys

WORDS = [r"assert_\w+", "fail_msg", "fail", "_?skip", "SKIP", "print_error"]
FORBIDDEN = re.compile(r"\b(" + "|".join(WORDS) + r")\s*\(")
IDENT = re.compile(r"[A-Za-z_]\w*")
KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "do", "else", "case",
            "_Static_assert", "__attribute__", "__asm__", "asm", "defined", "typeof",
            "__typeof__", "_Alignof", "_Generic"}


def strip(text):
    """Comments and literals become spaces (newlines kept, for line numbers)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j]) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def split_preprocessor(text):
    """Returns (code without directives, {macro: body})."""
    macros, code = {}, []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("#"):
            block = [line]
            while block[-1].rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                block.append(lines[i])
            m = re.match(r"\s*#\s*define\s+(\w+)", block[0])
            if m:
                macros[m.group(1)] = "\n".join(block)[m.end():]
            code.extend([""] * len(block))
        else:
            code.append(line)
        i += 1
    return "\n".join(code), macros


def functions(code):
    """{name: (body_start, body_end)} for top-level function definitions."""
    found, depth, i = {}, 0, 0
    while i < len(code):
        c = code[i]
        if c == "{":
            if depth == 0:
                head = code[:i].rstrip()
                m = re.search(r"(\w+)\s*\(([^()]|\([^()]*\))*\)\s*(__attribute__\s*\(\(.*?\)\)\s*)?$",
                              head, re.S)
                if m and m.group(1) not in KEYWORDS and not re.search(r"=\s*$", head):
                    start, d, j = i, 0, i
                    while j < len(code):
                        d += {"{": 1, "}": -1}.get(code[j], 0)
                        if d == 0:
                            break
                        j += 1
                    found[m.group(1)] = (start, j, m.group(0))
                    i = j + 1
                    continue
            depth += 1
        elif c == "}":
            depth -= 1
        i += 1
    return found


def check(path):
    raw = open(path, encoding="utf-8").read()
    code, macros = split_preprocessor(strip(raw))
    forbidden_macros = {name for name, body in macros.items() if FORBIDDEN.search(body)}
    bad = re.compile(r"\b(" + "|".join(WORDS + sorted(forbidden_macros)) + r")\s*\(")
    funcs = functions(code)

    # cmocka's own entry points (tests, setups, teardowns) take void **state
    tests = {name for name, f in funcs.items() if re.search(r"\(\s*void\s*\*\s*\*", f[2])}

    def line(pos):
        return code.count("\n", 0, pos) + 1

    calls, roots = {}, {}
    for name, (s, e, _) in funcs.items():
        calls[name] = set()
        for m in IDENT.finditer(code, s, e):
            ident = m.group(0)
            if ident not in funcs or ident == name:
                continue
            if re.match(r"\s*\(", code[m.end():m.end() + 40]):
                calls[name].add(ident)
            elif ident not in tests:
                roots.setdefault(ident, (name, line(m.start())))
    # values kept outside any function (struct initialisers, tables)
    inside = [range(s, e) for s, e, _ in funcs.values()]
    for m in IDENT.finditer(code):
        ident = m.group(0)
        if (ident in funcs and ident not in tests and ident not in roots
                and not any(m.start() in r for r in inside)
                and not re.match(r"\s*\(", code[m.end():m.end() + 40])):
            roots[ident] = ("file scope", line(m.start()))

    reached = {}
    todo = list(roots)
    for r in todo:
        reached.setdefault(r, r)
    while todo:
        f = todo.pop()
        for g in calls.get(f, ()):
            if g not in reached:
                reached[g] = reached[f]
                todo.append(g)

    problems = 0
    for f in sorted(reached, key=lambda f: funcs[f][0]):
        s, e, _ = funcs[f]
        for m in bad.finditer(code, s, e):
            root = reached[f]
            where, at = roots[root]
            how = f"{f} runs on a fiber or thread" if root == f else \
                f"{f} is called from {root}, which runs on a fiber or thread"
            print(f"{path}:{line(m.start())}: cmocka {m.group(1)}() in a fiber: {how} "
                  f"({root} is passed as a value in {where}, line {at}); record the failure "
                  f"with CHECK* from harness.h instead", file=sys.stderr)
            problems += 1
    return problems


def main():
    problems = sum(check(p) for p in sys.argv[1:])
    if problems:
        print(f"{problems} cmocka assertion(s) reachable from fibers or threads", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
