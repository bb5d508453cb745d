#!/bin/sh
# Replay every fuzz corpus through its target (built without libFuzzer),
# so that each input ever saved in tests/fuzz/corpus/NAME/ is a regression
# test.  FUZZ_TARGETS (from tests/fuzz/Makefile.inc) and the corpora must
# name the same targets.
set -e
b=${top_builddir:-.}/tests/fuzz
s=${top_srcdir:-.}/tests/fuzz/corpus
targets=${FUZZ_TARGETS:-$(cd "$s" && ls)}
for d in "$s"/*; do
	n=$(basename "$d")
	case " $targets " in
	*" $n "*) ;;
	*)	echo "replay.sh: corpus $n: no such target in FUZZ_TARGETS" >&2
		exit 1 ;;
	esac
done
for t in $targets; do
	if [ ! -d "$s/$t" ]; then
		echo "replay.sh: target $t has no corpus in $s" >&2
		exit 1
	fi
	echo "== $t"
	"$b/fuzz_${t}_replay" "$s/$t"
done
