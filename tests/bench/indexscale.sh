#!/bin/bash
# tests/bench/indexscale.sh — the index at scale (issue 12, bullet 5), run
# by `make bench` after bench.sh, or alone:
#
#   tests/bench/indexscale.sh [BLOBS [TAGS]]     (default 1000000 100000)
#
# tests/bench/genindex fills a cache directory with BLOBS blob records
# (sparse files) and TAGS tags; a second directory gets 1,000 and 100 as
# the small reference.  Then, one after the other (nothing else running):
#
#   start-up    exec of `regmirror serve` to its first 200 on /readyz
#               (reconcile done), polled every 10 ms;
#   warm hit    200 sequential manifest GETs by tag (curl, one keep-alive
#               connection each run of 50), median time per request, on the
#               big index and on the small one;
#   du          `regmirror cache du --json` wall time, page cache warm;
#   ls          `regmirror cache ls --json` wall time and its peak
#               anonymous memory (RssAnon, polled), so that the mapped
#               index does not count: the output streams or it grows;
#   evict       `regmirror cache evict --to` 99% and then 90% of the
#               used bytes: wall time per blob evicted, for 1% and 9%
#               of the budget: proportional when the two are alike.
#
# Everything on 127.0.0.1; the daemons are stopped by PID; the temp dir is
# removed unless KEEP_TMP=1.  Exit 1 on an error, 2 without a tool.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
set -eu -o pipefail

I_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
I_TOP=$(cd "$I_HERE/../.." && pwd)
REGMIRROR=${REGMIRROR:-$I_TOP/regmirror}
GENINDEX=${GENINDEX:-$I_TOP/tests/bench/genindex}
NBLOBS=${1:-1000000}
NTAGS=${2:-100000}
for t in curl jq python3 "$REGMIRROR" "$GENINDEX"; do
	command -v "$t" >/dev/null 2>&1 || { echo "indexscale: no $t" >&2; exit 2; }
done
say() { printf 'indexscale: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
D=$(mktemp -d "${TMPDIR:-/tmp}/regmirror-index.XXXXXX")
PID=
cleanup() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID"
		wait "$PID" 2>/dev/null || true
	fi
	[ -n "${KEEP_TMP:-}" ] || rm -rf "$D"
}
trap cleanup EXIT
now_us() { echo "${EPOCHREALTIME/./}"; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) / 1000 }'; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# conf NAME: a mirror on the cache dir D/NAME; the upstream is a closed
# port (every request in this script is a hit).
conf() {
	local p a u
	p=$(free_port) a=$(free_port) u=$(free_port)
	cat >"$D/$1.conf" <<EOF
[server]
listen = 127.0.0.1:$p
workers = 2
log_level = warn
admin_listen = 127.0.0.1:$a

[cache]
dir = $D/$1
tag_ttl = 24h

[upstream "hub"]
url = http://127.0.0.1:$u
default = yes
EOF
	echo "$p $a"
}

gen() {
	local t0
	mkdir -p "$D/$1"
	t0=$(now_us)
	"$GENINDEX" "$D/$1" hub "$2" "$3" 2>"$D/$1.gen.log" || die "genindex $1"
	say "generated $2 blobs, $3 tags in $(ms "$t0" "$(now_us)") ms"
}

# start NAME: serve, and the ms to listening and to ready.
start() {
	local t0 tl=
	read -r PORT APORT < <(conf "$1")
	t0=$(now_us)
	"$REGMIRROR" serve -c "$D/$1.conf" 2>"$D/$1.log" &
	PID=$!
	for ((i = 0; i < 3000; i++)); do
		case $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$APORT/readyz") in
		200) break ;;
		000) ;;
		*) [ -n "$tl" ] || tl=$(ms "$t0" "$(now_us)") ;;
		esac
		kill -0 "$PID" 2>/dev/null || die "serve $1 exited: $(tail -3 "$D/$1.log")"
		sleep 0.01
	done
	READY_MS=$(ms "$t0" "$(now_us)")
	LISTEN_MS=${tl:-$READY_MS}
}

stop() {
	kill -TERM "$PID"
	wait "$PID" 2>/dev/null || true
	PID=
}

# hit NTAGS: the median ms of a manifest GET by tag over 4 curl runs of
# 50 requests on one connection each.
hit() {
	local r t k urls=() all=()
	for ((r = 0; r < 4; r++)); do
		urls=()
		for ((k = 0; k < 50; k++)); do
			t=$(((RANDOM * 32768 + RANDOM) % $1))
			urls+=(-o /dev/null "http://127.0.0.1:$PORT/v2/bench/r$((t / 10))/manifests/v$((t % 10))")
		done
		mapfile -t -O "${#all[@]}" all < <(curl -s -w '%{http_code} %{time_total}\n' \
			-H 'Accept: application/vnd.oci.image.manifest.v1+json' "${urls[@]}")
	done
	printf '%s\n' "${all[@]}" | awk '$1 != 200 { bad++ } { print $2 } END { if (bad) exit 1 }' \
		>"$D/hit.txt" || die "a warm manifest GET was not 200: $(printf '%s\n' "${all[@]}" | grep -v '^200' | head -2)"
	sort -n "$D/hit.txt" | awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] * 1000 }'
}

# peak RUN...: wall ms and the peak RssAnon (KiB) of the command, its
# stdout to D/out.
peak() {
	python3 - "$D/out" "$@" <<'EOF'
import subprocess, sys, time
out = open(sys.argv[1], "wb")
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[2:], stdout=out)
peak = 0
while p.poll() is None:
    try:
        for l in open("/proc/%d/status" % p.pid):
            if l.startswith("RssAnon:"):
                peak = max(peak, int(l.split()[1]))
    except OSError:
        pass
    time.sleep(0.005)
if p.returncode != 0:
    sys.exit("exit %d" % p.returncode)
print("%.0f %d" % ((time.monotonic() - t0) * 1000, peak))
EOF
}

RM() { "$REGMIRROR" cache "$@" -c "$D/big.conf"; }

gen small 1000 100
gen big "$NBLOBS" "$NTAGS"
start small
HIT_SMALL=$(hit 100)
stop
start big
BIG_LISTEN=$LISTEN_MS BIG_READY=$READY_MS
HIT_BIG=$(hit "$NTAGS")
stop
read -r DU_MS _ < <(peak "$REGMIRROR" cache du --json -c "$D/big.conf") || die "du"
read -r DU_MS _ < <(peak "$REGMIRROR" cache du --json -c "$D/big.conf") || die "du"
jq -e ".blobs == $NBLOBS" "$D/out" >/dev/null || die "du: $(cat "$D/out")"
read -r LS_MS LS_KB < <(peak "$REGMIRROR" cache ls --json -c "$D/big.conf") || die "ls"
jq -e "(.blobs | length) == $NBLOBS and (.tags | length) == $NTAGS" "$D/out" >/dev/null ||
	die "ls --json is not the whole index"
LS_MB=$(stat -c %s "$D/out" | awk '{ printf "%.0f", $1 / 1048576 }')
used=$(RM du --json | jq .used_bytes)
read -r E1_MS _ < <(peak "$REGMIRROR" cache evict --to $((used / 100 * 99)) -c "$D/big.conf") || die "evict 1%"
E1_N=$(grep -o '[0-9]*' "$D/out" | head -1)
read -r E9_MS _ < <(peak "$REGMIRROR" cache evict --to $((used / 100 * 90)) -c "$D/big.conf") || die "evict 9%"
E9_N=$(grep -o '[0-9]*' "$D/out" | head -1)
used2=$(RM du --json | jq .used_bytes)
[ "$used2" -le $((used / 100 * 90)) ] || die "evict left $used2 of $used bytes (wanted <= 90%)"

f() { awk -v a="$1" -v b="$2" "BEGIN { printf \"$3\", $4 }"; }
echo
echo "index at scale: $NBLOBS blobs, $NTAGS tags (tests/bench/indexscale.sh)"
printf '  %-34s %s\n' \
	"start-up, listening / ready" "$BIG_LISTEN ms / $BIG_READY ms (goal ready <= 2000 ms)" \
	"warm manifest GET by tag, median" "$HIT_BIG ms (1,000-blob index: $HIT_SMALL ms; ratio $(f "$HIT_BIG" "$HIT_SMALL" %.2f 'a / b'))" \
	"cache du" "$DU_MS ms (goal <= 1000 ms)" \
	"cache ls --json" "$LS_MS ms, peak RssAnon $LS_KB KiB ($LS_MB MiB of JSON)" \
	"evict 1% of the bytes" "$E1_N blobs in $E1_MS ms ($(f "$E1_MS" "$E1_N" %.3f 'a / b') ms per blob)" \
	"evict 9% more" "$E9_N blobs in $E9_MS ms ($(f "$E9_MS" "$E9_N" %.3f 'a / b') ms per blob)"
