#!/usr/bin/python3
"""knf.py — the house layout rules (STYLE), checked exactly.

    knf.py [PATH...]	(default: the C sources of the tree it is in)

Every .c and .h file under each PATH must have:
  - no line longer than 80 columns (tabs to the next multiple of 8);
  - no trailing blanks;
  - indentation of tabs, then at most 7 spaces (continuation lines and
    the " *" of block comments);
  - a space between if, for, while, switch, return and "(", and before
    the "{" after a ")";
  - function definitions with the return type on its own line, the name
    at column 0 ("grep '^name('" finds it) and the "{" alone on the line
    after the parameters.

These are the rules .clang-format states that clang-format itself cannot
be used to check on this tree (it would also rewrite the KNF alignment
of declarations; see .clang-format).  Exit 1 with one line per finding,
"file:line: what".  Standard library only.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEFAULT = ["cache", "cli", "common", "proxy", "sync", "upstream",
           "tests/unit", "tests/fuzz", "tests/lib"]
KEYWORD = re.compile(r"\b(if|for|while|switch|return)\(")
STRING = re.compile(r'"(\\.|[^"\\])*"')
CHAR = re.compile(r"'(\\.|[^'\\])*'")
TYPE_START = ("struct ", "union ", "enum ", "typedef", "static const",
              "const ", "static struct", "static char", "static unsigned",
              "static int", "static size_t")


def columns(s):
    n = 0
    for ch in s:
        n = (n // 8 + 1) * 8 if ch == "\t" else n + 1
    return n


def check_lines(path, lines):
    found = []
    in_comment = False
    for no, line in enumerate(lines, 1):
        def bad(what):
            found.append("%s:%d: %s" % (path, no, what))

        if line != line.rstrip():
            bad("trailing blanks")
        if columns(line) > 80:
            bad("%d columns, more than 80" % columns(line))
        lead = re.match(r"[ \t]*", line).group(0)
        if lead and not re.fullmatch(r"\t*( {1,7})?", lead):
            bad("indentation is not tabs then at most 7 spaces")
        body = CHAR.sub("''", STRING.sub('""', line[len(lead):]))
        if not in_comment and not body.startswith("#"):
            code = body.split("/*")[0].split("//")[0]
            if KEYWORD.search(code):
                bad("no space between a keyword and its (")
            if ") {" not in code and "){" in code:
                bad("no space between ) and {")
        if in_comment:
            in_comment = "*/" not in body
        elif "/*" in body:
            in_comment = "*/" not in body.split("/*", 1)[1]
    return found


def check_definitions(path, lines):
    """A "{" alone at column 0 opens a function body (or an initializer,
    skipped): the first line of its head must start with the name."""
    found = []
    for i, line in enumerate(lines):
        if line != "{":
            continue
        j = i - 1
        while j > 0 and lines[j][:1] in (" ", "\t"):
            j -= 1
        head = lines[j]
        if "=" in head or (head.startswith(TYPE_START) and "(" not in head):
            continue
        if not re.match(r"[A-Za-z_]\w*\(", head):
            found.append("%s:%d: a definition's return type goes on a "
                         "line of its own, its name at column 0"
                         % (path, j + 1))
    return found


def files_under(paths):
    out = []
    for p in paths:
        full = p if os.path.isabs(p) else os.path.join(ROOT, p)
        if os.path.isfile(full):
            out.append(full)
            continue
        for d, _, names in os.walk(full):
            if "/corpus" in d:
                continue
            out += [os.path.join(d, n) for n in names
                    if n.endswith((".c", ".h"))]
    return sorted(out)


def main():
    files = files_under(sys.argv[1:] or DEFAULT)
    found = []
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().split("\n")
        rel = os.path.relpath(f, ROOT)
        found += check_lines(rel, lines) + check_definitions(rel, lines)
    for f in found:
        print(f)
    print("knf.py: %d files, %d findings" % (len(files), len(found)),
          file=sys.stderr)
    return 1 if found or not files else 0


if __name__ == "__main__":
    sys.exit(main())
