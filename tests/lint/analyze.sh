#!/bin/sh
# analyze.sh — clang's static analyzer (scan-build) over the daemon and
# its libraries; "make analyze" runs it, and so does .ci/run.
#
# The tree is copied (its git files, or failing that its C sources and
# build files) into a temporary directory, configured and built there
# under scan-build with plist output; every finding is then matched
# against tests/lint/analyze-known, the documented false positives
# (file, function, checker: line numbers move, those do not).  Exit 0 when
# nothing else is found, 1 with one "file:line: checker: message" per
# new finding, 2 when scan-build is missing.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
known="$src/tests/lint/analyze-known"
sb=${SCAN_BUILD:-scan-build}
command -v "$sb" >/dev/null 2>&1 || {
	echo "analyze.sh: $sb not found (Debian: clang-tools)" >&2
	exit 2
}
work=$(mktemp -d "${TMPDIR:-/tmp}/regmirror-analyze.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$src" && git ls-files -z --cached --others --exclude-standard |
	    xargs -0 tar -cf -) | tar -xf - -C "$work"
else
	(cd "$src" && find . -path ./.git -prune -o \( -name '*.[ch]' -o \
	    -name '*.am' -o -name '*.inc' -o -name configure.ac -o \
	    -name '*.m4' \) -print | tar -cf - -T -) | tar -xf - -C "$work"
fi
mkdir "$work/out"
(
	cd "$work"
	autoreconf -fi >/dev/null 2>&1
	"$sb" -o "$work/out" ./configure -q >/dev/null
	"$sb" -plist -o "$work/out" make -j"${JOBS:-2}" regmirror \
	    >"$work/build.log" 2>&1
) || {
	tail -n 40 "$work/build.log" >&2
	echo "analyze.sh: the build under $sb failed" >&2
	exit 1
}

python3 - "$work/out" "$known" "$work/" <<'EOF'
import os, plistlib, sys

out, known_file, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
known = set()
for line in open(known_file):
    line = line.split("#", 1)[0].split()
    if line:
        known.add(tuple(line[:3]))
found, new = 0, []
for root, _, files in os.walk(out):
    for f in files:
        if not f.endswith(".plist"):
            continue
        with open(os.path.join(root, f), "rb") as fh:
            p = plistlib.load(fh)
        for d in p.get("diagnostics", []):
            loc = d["location"]
            path = p["files"][loc["file"]]
            if path.startswith(prefix):
                path = path[len(prefix):]
            key = (path, d.get("issue_context", "?"), d["check_name"])
            found += 1
            if key not in known:
                new.append("%s:%d: %s: %s (in %s)" % (path, loc["line"],
                           d["check_name"], d["description"], key[1]))
for n in sorted(set(new)):
    print(n)
print("analyze.sh: %d findings, %d known false positives, %d new"
      % (found, found - len(new), len(new)), file=sys.stderr)
sys.exit(1 if new else 0)
EOF
