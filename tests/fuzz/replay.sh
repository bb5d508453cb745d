#!/bin/sh
# Replay every fuzz corpus through its target (built without libFuzzer).
set -e
b=${top_builddir:-.}/tests/fuzz
s=${top_srcdir:-.}/tests/fuzz/corpus
for t in config ref wwwauth; do
	"$b/fuzz_${t}_replay" "$s/$t"
done
