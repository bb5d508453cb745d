#!/bin/sh
# format.sh — the house layout (tests/lint/knf.py) as a test: exit 1 with
# one "file:line: what" per finding.
command -v python3 >/dev/null 2>&1 || { echo "python3 is missing"; exit 99; }
exec python3 "${top_srcdir:-$(dirname "$0")/../..}/tests/lint/knf.py"
