#!/usr/bin/python3
"""Measure the shape of the C code: what docs/ARCHITECTURE.md reports.

    measure.py [--top N] [--json] [ROOT]

Prints, for the C sources under ROOT (default: the tree this script is
in), excluding tests:
  - lines per module (top-level folder): files, lines, code lines;
  - the N longest functions (default 15), by lines from "name(" at the
    start of a line to the closing "}" at the start of a line;
  - the include graph between modules and between files, and any cycle;
  - comment density per file (comment lines / non-blank lines).
With --json, the same as one JSON object.  Standard library only.
"""

import argparse
import json
import os
import re
import sys

MODULE_DIRS = ("common", "cache", "upstream", "proxy", "sync", "cli")


def c_files(root):
    out = []
    for d in MODULE_DIRS:
        p = os.path.join(root, d)
        if not os.path.isdir(p):
            continue
        for name in sorted(os.listdir(p)):
            if name.endswith((".c", ".h")):
                out.append(os.path.join(d, name))
    return out


def classify(lines):
    """Count code, comment and blank lines (C comments, roughly)."""
    code = comment = blank = 0
    in_block = False
    for line in lines:
        s = line.strip()
        if not s:
            blank += 1
            continue
        if in_block:
            comment += 1
            if "*/" in s:
                in_block = False
            continue
        if s.startswith("/*"):
            comment += 1
            if "*/" not in s:
                in_block = True
            continue
        if s.startswith("//"):
            comment += 1
            continue
        code += 1
    return code, comment, blank


FUNC_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\(")


def functions(path, lines):
    out = []
    start = name = None
    for i, line in enumerate(lines):
        m = FUNC_RE.match(line)
        if m and start is None and not line.rstrip().endswith(";"):
            name, start = m.group(1), i
            continue
        if start is not None and line.startswith("}"):
            out.append((i - start + 1, name, path, start + 1))
            start = name = None
    return out


INC_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def includes(lines):
    return [m.group(1) for m in (INC_RE.match(l) for l in lines) if m]


def cycles(graph):
    """Every elementary cycle's node set, found by DFS (small graphs)."""
    found = set()

    def dfs(start, node, path, seen):
        for nxt in graph.get(node, ()):
            if nxt == start:
                found.add(tuple(sorted(path)))
            elif nxt not in seen and nxt > start:
                dfs(start, nxt, path + [nxt], seen | {nxt})

    for n in sorted(graph):
        dfs(n, n, [n], {n})
    return sorted(found)


def measure(root, top):
    files = c_files(root)
    modules = {}
    funcs = []
    density = []
    fgraph = {}
    mgraph = {}
    for f in files:
        with open(os.path.join(root, f), errors="replace") as fh:
            lines = fh.read().split("\n")
        code, comment, blank = classify(lines)
        mod = f.split("/")[0]
        m = modules.setdefault(mod, {"files": 0, "lines": 0, "code": 0})
        m["files"] += 1
        m["lines"] += len(lines) - 1
        m["code"] += code
        if f.endswith(".c"):
            funcs.extend(functions(f, lines))
        nonblank = code + comment
        density.append((f, round(comment / nonblank, 3) if nonblank else 0))
        incs = [i for i in includes(lines) if "/" in i and
                i.split("/")[0] in MODULE_DIRS and i != "autoconf.h"]
        # File graph: a .c and its own header are one node.
        node = f[:-2]
        for i in incs:
            tgt = i[:-2]
            if tgt != node:
                fgraph.setdefault(node, set()).add(tgt)
            im = i.split("/")[0]
            if im != mod:
                mgraph.setdefault(mod, set()).add(im)
    funcs.sort(reverse=True)
    return {
        "modules": modules,
        "longest_functions": [
            {"lines": n, "function": name, "file": "%s:%d" % (p, l)}
            for n, name, p, l in funcs[:top]],
        "functions_over_80": sum(1 for f in funcs if f[0] > 80),
        "module_includes": {k: sorted(v) for k, v in sorted(mgraph.items())},
        "module_cycles": [list(c) for c in cycles(mgraph)],
        "file_cycles": [list(c) for c in cycles(fgraph)],
        "comment_density": dict(density),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?",
                    default=os.path.join(os.path.dirname(__file__), "..", ".."))
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    r = measure(os.path.abspath(a.root), a.top)
    if a.json:
        json.dump(r, sys.stdout, indent=1)
        print()
        return
    print("module     files  lines   code")
    for k, v in sorted(r["modules"].items()):
        print("%-10s %5d %6d %6d" % (k, v["files"], v["lines"], v["code"]))
    print("\nlongest functions (%d over 80 lines):" % r["functions_over_80"])
    for f in r["longest_functions"]:
        print("  %4d  %-32s %s" % (f["lines"], f["function"], f["file"]))
    print("\nmodule includes:")
    for k, v in r["module_includes"].items():
        print("  %-9s -> %s" % (k, ", ".join(v)))
    print("module cycles: %s" % (r["module_cycles"] or "none"))
    print("file cycles: %s" % (r["file_cycles"] or "none"))
    low = sorted(r["comment_density"].items(), key=lambda kv: kv[1])[:8]
    print("\nlowest comment density: %s" % ", ".join(
        "%s %.0f%%" % (f, d * 100) for f, d in low))


if __name__ == "__main__":
    main()
