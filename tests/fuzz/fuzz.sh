#!/bin/sh
# "make fuzz": run each libFuzzer target in turn (one process at a time)
# for FUZZ_SECONDS on a copy of its corpus in a temporary directory, so
# that nothing new lands in the source tree.  Prints one summary line per
# target (runs, cov, ft, corpus size) and exits 1 if any target crashed,
# leaked, timed out or is missing; a failed target's directory is kept
# with its crash input, the others are removed unless FUZZ_KEEP=1 (to
# pick new corpus entries from: see docs/FUZZING.md).
#
# Environment: FUZZ_TARGETS, FUZZ_SECONDS (default 60), top_builddir,
# top_srcdir, FUZZ_FLAGS (more libFuzzer options), FUZZ_KEEP.
set -u
b=${top_builddir:-.}/tests/fuzz
src=${top_srcdir:-.}/tests/fuzz
secs=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-$(cd "$src/corpus" && ls)}
work=$(mktemp -d "${TMPDIR:-/tmp}/regmirror-fuzz.XXXXXX") || exit 1
failed=

# The longest input worth trying: what the parser reads in real life,
# with room for hostile padding.
fuzz_max_len() {
	case $1 in
	range|digest|semver)	echo 256 ;;
	ref|url)		echo 2048 ;;
	wwwauth|link|error)	echo 8192 ;;
	token|bearer)		echo 16384 ;;
	config|manifest|events|reply) echo 65536 ;;
	*)			echo 4096 ;;
	esac
}

for t in $targets; do
	bin=$b/fuzz_$t
	if [ ! -x "$bin" ]; then
		echo "fuzz $t: $bin not built" >&2
		failed="$failed $t"
		continue
	fi
	dir=$work/$t
	mkdir -p "$dir/corpus"
	[ -d "$src/corpus/$t" ] && cp "$src/corpus/$t"/* "$dir/corpus/"
	dict=
	[ -f "$src/dict/$t.dict" ] && dict=-dict=$src/dict/$t.dict
	echo "fuzz $t: ${secs}s, max_len $(fuzz_max_len "$t"), in $dir"
	# Run inside dir: libFuzzer's own files (crash-*, fuzz-*.log) stay
	# there too.
	(cd "$dir" && "$bin" -max_total_time="$secs" \
	    -max_len="$(fuzz_max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="$dir/" $dict \
	    ${FUZZ_FLAGS:-} corpus </dev/null >"$dir/log" 2>&1)
	rc=$?
	done=$(grep -a 'DONE' "$dir/log" | tail -1)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log")
	time=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' \
	    "$dir/log")
	stats=$(echo "$done" | sed \
	    's/.*\(cov: [0-9]*\).*\(ft: [0-9]*\).*\(corp: [^ ]*\).*/\1 \2 \3/')
	echo "fuzz $t: rc $rc, ${runs:-?} runs in ${time:-?}s; $stats"
	if [ $rc -ne 0 ]; then
		failed="$failed $t"
		echo "fuzz $t: FAILED; the end of $dir/log:" >&2
		tail -40 "$dir/log" >&2
		for f in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* \
		    "$dir"/oom-*; do
			[ -f "$f" ] || continue
			echo "fuzz $t: input $f:" >&2
			od -A x -t x1z "$f" | head -20 >&2
		done
	elif [ "${FUZZ_KEEP:-0}" != 1 ]; then
		rm -rf "$dir"
	fi
done
if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed (inputs kept in $work)" >&2
	exit 1
fi
[ "${FUZZ_KEEP:-0}" = 1 ] && echo "fuzz: corpora kept in $work" ||
	rmdir "$work"
exit 0
