#!/bin/bash
# tests/bench/bench.sh — regmirror's benchmark (`make bench`; not part of
# `make check`).  Measures, in one run on this machine, the quality bars of
# DESIGN section 5 against nginx (sendfile) and the upstream registry:
#
#   a) warm blob throughput: one big blob (BENCH_BLOB_MB, default 256 MiB)
#      fetched back to back from regmirror and from nginx, alternating, one
#      client at a time and with 4 concurrent clients;
#   b) warm manifest requests/s: wrk with keep-alive against regmirror's
#      manifest URL and nginx serving the same bytes as a static file;
#   c) cold blobs: time to first byte of never-fetched blobs via regmirror
#      vs directly from the upstream; and 8 concurrent cold GETs of one
#      never-fetched blob, counting the GETs the upstream served;
#   d) memory: regmirror's VmHWM during the warm blob runs and over the
#      whole run.
#
# Everything runs on 127.0.0.1 on ephemeral ports in a temp dir; every
# process started is stopped by its PID on exit.  Absolute numbers vary
# from run to run (the load generator shares the cores with the servers):
# read the ratios, measured in the same run.
#
# Environment:
#   REGMIRROR       the binary (default: ./regmirror at the repo top)
#   BENCH_BLOB_MB   size of the warm blob in MiB (default 256)
#   BENCH_ROUNDS    sequential warm blob GETs per server (default 6)
#   BENCH_WRK_SECS  seconds per wrk run (default 4)
#   BENCH_WRK_RUNS  wrk runs per server, alternating (default 4)
#   BENCH_COLD_N    cold TTFB samples (default 5)
#   BENCH_TIMEOUT   watchdog for the whole script in seconds (default 300)
#   BENCH_STRICT=1  exit 1 when a quality bar is missed, not only on errors
#   KEEP_TMP=1      keep the temp dir (it is always kept after an error)
#
# Exit status: 0 ran (bars may be missed; see the table), 1 an error or a
# wrong answer from a server (or a missed bar with BENCH_STRICT=1), 2 a
# required tool is missing.

[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"

set -eu -o pipefail

B_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
B_TOP=$(cd "$B_HERE/../.." && pwd)
if [ -z "${REGMIRROR:-}" ]; then
	REGMIRROR=$B_TOP/regmirror
	# `make bench` from a separate build dir: the binary is in the cwd.
	[ -x "$REGMIRROR" ] || [ ! -x ./regmirror ] || REGMIRROR=$PWD/regmirror
fi
PY=/usr/bin/python3
BLOB_MB=${BENCH_BLOB_MB:-256}
ROUNDS=${BENCH_ROUNDS:-6}
WRK_SECS=${BENCH_WRK_SECS:-4}
WRK_RUNS=${BENCH_WRK_RUNS:-4}
COLD_N=${BENCH_COLD_N:-5}
SF_N=8
CONC=4
REPO=bench/img
TAG=v1
MT_MANIFEST=application/vnd.oci.image.manifest.v1+json

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
	printf 'bench: ERROR: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------------------
# Tools

missing=()
for t in curl sha256sum nginx docker-registry skopeo awk "$PY"; do
	command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if ! command -v wrk >/dev/null 2>&1; then
	say "wrk is not installed: it measures the manifest requests/s."
	say "install it with: apt-get install wrk"
	missing+=(wrk)
fi
if [ ${#missing[@]} -gt 0 ]; then
	say "missing tools: ${missing[*]}"
	say "(Debian packages: curl coreutils nginx docker-registry skopeo wrk python3)"
	exit 2
fi
[ -x "$REGMIRROR" ] || die "REGMIRROR=$REGMIRROR is not executable (run make first)"

# Never let a proxy or the user's client config in.
export no_proxy='*' NO_PROXY='*'
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy

# ---------------------------------------------------------------------------
# Temp dir, processes, cleanup

B_DIR=$(mktemp -d "${TMPDIR:-/tmp}/regmirror-bench.XXXXXX")
B_PIDS=()
B_NAMES=()
B_LOGS=()
B_T0=${EPOCHREALTIME/./}
export REGISTRY_AUTH_FILE="$B_DIR/auth.json"
export CONTAINERS_REGISTRIES_CONF="$B_DIR/registries.conf"
printf '{"auths":{}}\n' >"$REGISTRY_AUTH_FILE"
printf 'unqualified-search-registries = []\n' >"$CONTAINERS_REGISTRIES_CONF"
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$B_DIR/policy.json"

is_alive() { kill -0 "$1" 2>/dev/null; }

# stop_pid PID: TERM, up to 10 s, then KILL.
stop_pid() {
	local pid=$1 i
	if is_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 200; i++)); do
			is_alive "$pid" || break
			sleep 0.05
		done
		if is_alive "$pid"; then
			say "pid $pid did not stop on TERM within 10s: KILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
}

register_pid() {
	B_PIDS+=("$1")
	B_NAMES+=("$2")
	[ -z "${3:-}" ] || B_LOGS+=("$3")
}

cleanup() {
	local rc=$? i l
	set +e
	trap - EXIT INT TERM
	for ((i = ${#B_PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${B_PIDS[i]}"
	done
	if [ "$rc" -eq 0 ] && [ -z "${KEEP_TMP:-}" ]; then
		rm -rf "$B_DIR"
	else
		say "exit $rc; kept $B_DIR"
	fi
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
		for l in "${B_LOGS[@]}"; do
			[ -f "$l" ] || continue
			echo "---- tail -n 20 $l" >&2
			tail -n 20 "$l" | cut -c 1-300 >&2
		done
		echo "----" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Watchdog: the whole run is bounded (a hung server must not hang make).
"$PY" -c 'import os, signal, sys, time
time.sleep(float(sys.argv[2]))
sys.stderr.write("bench: ERROR: watchdog: run exceeded %ss\n" % sys.argv[2])
os.kill(int(sys.argv[1]), signal.SIGTERM)' "$$" "${BENCH_TIMEOUT:-300}" \
	</dev/null >/dev/null 2>>"$B_DIR/watchdog.log" &
register_pid "$!" watchdog "$B_DIR/watchdog.log"

# wait_for SECONDS CMD...: poll CMD until it succeeds; 1 on timeout.
wait_for() {
	local end=$((${EPOCHREALTIME/./} + $1 * 1000000))
	shift
	while ! "$@"; do
		[ "${EPOCHREALTIME/./}" -lt "$end" ] || return 1
		sleep 0.05
	done
}

free_port() {
	"$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

http_code() {
	local url=$1
	shift
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$url" || true
}

now_us() { echo "${EPOCHREALTIME/./}"; }

# median N...: the median (mean of the middle two for an even count).
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR == 0) { print "nan"; exit }
		      if (NR % 2) m = v[(NR + 1) / 2];
		      else m = (v[NR / 2] + v[NR / 2 + 1]) / 2
		      printf "%.3f\n", m }'
}

# calc EXPR: awk arithmetic, printed with printf format FMT (default %.2f).
calc() { awk "BEGIN { printf \"${2:-%.2f}\", $1 }"; }

# problem MSG: a wrong answer or an error from a server; the run goes on,
# the problems are listed at the end and the exit status is 1.  (Kept in a
# file: problem is also called from command substitutions.)
problem() {
	echo "$*" >>"$B_DIR/problems"
	say "PROBLEM: $*"
}

# ---------------------------------------------------------------------------
# The image: one manifest with a big warm layer, COLD_N small layers for the
# cold TTFB samples and one 64 MiB layer for the single-flight test.  Layers
# are random bytes behind a gzip magic number, so skopeo copies them as is.

say "building the image (${BLOB_MB} MiB warm layer) in $B_DIR"
"$PY" - "$B_DIR/layout" "$TAG" "$((BLOB_MB * 1048576))" "$COLD_N" \
	"$((16 * 1048576))" "$((64 * 1048576))" >"$B_DIR/image.txt" <<'PYEOF'
import hashlib, json, os, sys

out, ref = sys.argv[1], sys.argv[2]
big, ncold, cold, sf = (int(a) for a in sys.argv[3:7])
bdir = os.path.join(out, "blobs", "sha256")
os.makedirs(bdir)

def put(data, mt):
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(bdir, h), "wb") as f:
        f.write(data)
    return {"mediaType": mt, "digest": "sha256:" + h, "size": len(data)}

def put_random(size, mt):
    h = hashlib.sha256()
    tmp = os.path.join(bdir, "tmp")
    with open(tmp, "wb") as f:
        left, first = size, True
        while left:
            n = min(left, 1 << 20)
            chunk = os.urandom(n)
            if first:
                chunk = b"\x1f\x8b\x08\x00" + chunk[4:]
                first = False
            h.update(chunk)
            f.write(chunk)
            left -= n
    os.rename(tmp, os.path.join(bdir, h.hexdigest()))
    return {"mediaType": mt, "digest": "sha256:" + h.hexdigest(), "size": size}

LT = "application/vnd.oci.image.layer.v1.tar+gzip"
layers = [put_random(big, LT)]
layers += [put_random(cold, LT) for _ in range(ncold)]
layers.append(put_random(sf, LT))
config = {"architecture": "amd64", "os": "linux",
          "config": {"Cmd": ["/bin/true"]},
          "rootfs": {"type": "layers",
                     "diff_ids": [l["digest"] for l in layers]}}
cdesc = put(json.dumps(config, separators=(",", ":")).encode(),
            "application/vnd.oci.image.config.v1+json")
manifest = {"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cdesc, "layers": layers}
mdesc = put(json.dumps(manifest, separators=(",", ":")).encode(),
            manifest["mediaType"])
mdesc["annotations"] = {"org.opencontainers.image.ref.name": ref}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [mdesc]}, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
# One line each: manifest, big, cold..., sf  as "digest size".
print(mdesc["digest"], mdesc["size"])
for l in layers:
    print(l["digest"], l["size"])
PYEOF

mapfile -t IMG <"$B_DIR/image.txt"
read -r MAN_DG MAN_SIZE <<<"${IMG[0]}"
read -r BIG_DG BIG_SIZE <<<"${IMG[1]}"
COLD_DGS=()
for ((i = 0; i < COLD_N; i++)); do
	COLD_DGS+=("${IMG[2 + i]%% *}")
done
read -r SF_DG SF_SIZE <<<"${IMG[2 + COLD_N]}"
BIG_FILE=$B_DIR/layout/blobs/sha256/${BIG_DG#sha256:}
MAN_FILE=$B_DIR/layout/blobs/sha256/${MAN_DG#sha256:}

# ---------------------------------------------------------------------------
# Upstream: Debian's docker-registry.  Its access log (one line per
# request, when the response is complete) goes to registry.log.

UP_PORT=$(free_port)
UP=http://127.0.0.1:$UP_PORT
UP_LOG=$B_DIR/registry.log
mkdir -p "$B_DIR/registry"
cat >"$B_DIR/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $B_DIR/registry
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$UP_PORT
  secret: regmirror-bench
EOF
# docker-registry maps REGISTRY_* variables onto its config.
# shellcheck disable=SC2046
env $(compgen -e | grep '^REGISTRY_' | sed 's/^/-u /') \
	docker-registry serve "$B_DIR/registry.yml" >>"$UP_LOG" 2>&1 &
UP_PID=$!
register_pid "$UP_PID" docker-registry "$UP_LOG"
up_ready() {
	is_alive "$UP_PID" || die "docker-registry exited during start-up"
	[ "$(http_code "$UP/v2/")" = 200 ]
}
wait_for 30 up_ready || die "docker-registry did not answer /v2/ on :$UP_PORT"

say "pushing the image to the upstream (127.0.0.1:$UP_PORT)"
skopeo copy --quiet --dest-tls-verify=false --policy "$B_DIR/policy.json" \
	"oci:$B_DIR/layout:$TAG" "docker://127.0.0.1:$UP_PORT/$REPO:$TAG" \
	>"$B_DIR/skopeo.log" 2>&1 || {
	cat "$B_DIR/skopeo.log" >&2
	die "skopeo copy to the upstream failed"
}
got=$(curl -sf --max-time 10 -H "Accept: $MT_MANIFEST" \
	"$UP/v2/$REPO/manifests/$TAG" | sha256sum | cut -d' ' -f1) || true
[ "sha256:$got" = "$MAN_DG" ] ||
	die "the upstream's manifest is not the pushed one (sha256:$got, want $MAN_DG)"

# up_sync: a marker request, waited for in the log, so that the lines of
# requests completed before it are there; sets UP_MARK to the log's line
# count.
up_sync() {
	local m="sync-$RANDOM$RANDOM"
	curl -s -o /dev/null --max-time 10 "$UP/v2/?$m" || true
	wait_for 10 grep -qF "/v2/?$m " "$UP_LOG" ||
		die "docker-registry: marker request not logged"
	UP_MARK=$(wc -l <"$UP_LOG")
}
# up_count FROM_LINE METHOD_REGEX URI_PREFIX: logged requests after a mark
# (marker requests excluded).
up_count() {
	tail -n +"$(($1 + 1))" "$UP_LOG" |
		{ grep -E "^[^ ]+ - [^ ]+ \[[^]]+\] \"($2) " || true; } |
		awk -v p="$3" 'index($7, p) == 1 && $7 !~ /^\/v2\/\?sync-/' |
		wc -l
}

# ---------------------------------------------------------------------------
# regmirror

M_PORT=$(free_port)
M=http://127.0.0.1:$M_PORT
M_LOG=$B_DIR/regmirror.log
cat >"$B_DIR/mirror.conf" <<EOF
[server]
listen = 127.0.0.1:$M_PORT
workers = auto
log_level = warn

[cache]
dir = $B_DIR/cache
tag_ttl = 1h

[upstream "docker.io"]
url = $UP
default = yes
EOF
"$REGMIRROR" serve -c "$B_DIR/mirror.conf" >>"$M_LOG" 2>&1 &
M_PID=$!
register_pid "$M_PID" regmirror "$M_LOG"
m_ready() {
	is_alive "$M_PID" || die "regmirror exited during start-up"
	[ "$(http_code "$M/v2/")" = 200 ]
}
wait_for 30 m_ready || die "regmirror did not answer GET /v2/ 200 on :$M_PORT"
m_alive() {
	is_alive "$M_PID" || die "regmirror died ($1); see $M_LOG"
}

# ---------------------------------------------------------------------------
# Warm regmirror: the manifest by tag and the big blob, both checked.  The
# blob's fetch is itself a cold 256 MiB fill; it is timed against a direct
# download from the upstream.

say "warming regmirror (127.0.0.1:$M_PORT)"
MAN_PATH=/v2/$REPO/manifests/$TAG
BIG_PATH=/v2/$REPO/blobs/$BIG_DG
curl -s --max-time 20 -H "Accept: $MT_MANIFEST" -D "$B_DIR/man.hdr" \
	-o "$B_DIR/man.body" "$M$MAN_PATH" || die "GET $MAN_PATH via regmirror: curl failed"
code=$(awk 'NR == 1 { print $2 }' "$B_DIR/man.hdr")
[ "$code" = 200 ] || die "GET $MAN_PATH via regmirror: status $code"
cmp -s "$B_DIR/man.body" "$MAN_FILE" ||
	die "GET $MAN_PATH via regmirror: body differs from the pushed manifest"
grep -qi "^content-type: $MT_MANIFEST" "$B_DIR/man.hdr" ||
	problem "GET $MAN_PATH via regmirror: Content-Type is not $MT_MANIFEST"

# download URL: "status bytes ttfb total speed" for a GET to /dev/null.
download() {
	curl -s --max-time 60 -o /dev/null \
		-w '%{http_code} %{size_download} %{time_starttransfer} %{time_total} %{speed_download}' \
		"$1" || echo "000 0 0 0 0"
}
# download_sum URL: "status bytes ttfb total sha256".
download_sum() {
	local w sum
	w=$(curl -s --max-time 60 -o "$B_DIR/dl.tmp" \
		-w '%{http_code} %{size_download} %{time_starttransfer} %{time_total}' \
		"$1") || w="000 0 0 0"
	sum=$(sha256sum "$B_DIR/dl.tmp" | cut -d' ' -f1)
	rm -f "$B_DIR/dl.tmp"
	echo "$w $sum"
}
# expect_blob WHAT DIGEST SIZE "status bytes ttfb total sha256"
expect_blob() {
	local what=$1 dg=$2 size=$3 st by tt sum
	read -r st by tt _ sum <<<"$4"
	[ "$st" = 200 ] && [ "$by" = "$size" ] && [ "sha256:$sum" = "$dg" ] ||
		die "$what: status $st, $by bytes (want $size), sha256:$sum (want $dg)"
}

r=$(download_sum "$UP$BIG_PATH")
expect_blob "GET $BIG_PATH from the upstream" "$BIG_DG" "$BIG_SIZE" "$r"
COLDBIG_UP=$(awk '{ print $4 }' <<<"$r")
r=$(download_sum "$M$BIG_PATH")
expect_blob "cold GET $BIG_PATH via regmirror" "$BIG_DG" "$BIG_SIZE" "$r"
COLDBIG_M=$(awk '{ print $4 }' <<<"$r")
r=$(download_sum "$M$BIG_PATH")
expect_blob "warm GET $BIG_PATH via regmirror" "$BIG_DG" "$BIG_SIZE" "$r"
m_alive "after warming"

# ---------------------------------------------------------------------------
# nginx serving the same bytes at the same paths.

N_PORT=$(free_port)
N=http://127.0.0.1:$N_PORT
ND=$B_DIR/nginx
mkdir -p "$ND/logs" "$ND/tmp" "$ND/www/v2/$REPO/manifests" "$ND/www/v2/$REPO/blobs"
cp "$MAN_FILE" "$ND/www$MAN_PATH"
cp "$BIG_FILE" "$ND/www$BIG_PATH"
user_line=
[ "$(id -u)" != 0 ] || user_line='user root;'
cat >"$ND/nginx.conf" <<EOF
$user_line
worker_processes auto;
pid $ND/nginx.pid;
error_log $ND/logs/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $ND/tmp/body;
    proxy_temp_path $ND/tmp/proxy;
    fastcgi_temp_path $ND/tmp/fastcgi;
    uwsgi_temp_path $ND/tmp/uwsgi;
    scgi_temp_path $ND/tmp/scgi;
    types { }
    server {
        listen 127.0.0.1:$N_PORT;
        root $ND/www;
        location /v2/$REPO/manifests/ {
            default_type $MT_MANIFEST;
            add_header Docker-Content-Digest $MAN_DG;
        }
        location /v2/$REPO/blobs/ {
            default_type application/octet-stream;
        }
    }
}
EOF
nginx -p "$ND" -e "$ND/logs/error.log" -c "$ND/nginx.conf" -g 'daemon off;' \
	>>"$ND/logs/stderr.log" 2>&1 &
N_PID=$!
register_pid "$N_PID" nginx "$ND/logs/error.log"
n_ready() {
	is_alive "$N_PID" || die "nginx exited during start-up"
	[ "$(http_code "$N$MAN_PATH")" = 200 ]
}
wait_for 20 n_ready || die "nginx did not answer on :$N_PORT"
r=$(download_sum "$N$BIG_PATH")
expect_blob "GET $BIG_PATH from nginx" "$BIG_DG" "$BIG_SIZE" "$r"

# ---------------------------------------------------------------------------
# a) warm blob throughput

hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$M_PID/status"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$M_PID/status"; }
RSS_IDLE=$(rss_kb)
# The peak so far (start-up, the cold 256 MiB fill, one warm GET); then
# reset it, so that the next reading is the warm blob runs' own peak.
HWM_START=$(hwm_kb)
echo 5 >"/proc/$M_PID/clear_refs" 2>/dev/null ||
	say "cannot reset VmHWM (clear_refs): the warm peak includes the warm-up"
up_sync
mark=$UP_MARK

say "a) warm blob: $ROUNDS sequential GETs each, alternating, then $CONC concurrent x 2"
SEQ_M=() SEQ_N=()
# one_get NAME URL: a timed GET, checked for status and length; prints MB/s.
one_get() {
	local st by tt sp
	read -r st by tt _ sp <<<"$(download "$2")"
	if [ "$st" != 200 ] || [ "$by" != "$BIG_SIZE" ]; then
		problem "warm GET $BIG_PATH from $1: status $st, $by of $BIG_SIZE bytes"
		echo 0
		return
	fi
	calc "$sp / 1e6" %.0f
}
for ((i = 0; i < ROUNDS; i++)); do
	SEQ_M+=("$(one_get regmirror "$M$BIG_PATH")")
	SEQ_N+=("$(one_get nginx "$N$BIG_PATH")")
done
say "   regmirror MB/s: ${SEQ_M[*]}"
say "   nginx     MB/s: ${SEQ_N[*]}"
m_alive "warm blob sequential"

# conc_get NAME URL: CONC concurrent GETs; prints aggregate MB/s.
conc_get() {
	local i t0 t1 pids=() st by rest bad=0
	t0=$(now_us)
	for ((i = 0; i < CONC; i++)); do
		download "$2" >"$B_DIR/conc.$i" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || true; done
	t1=$(now_us)
	for ((i = 0; i < CONC; i++)); do
		read -r st by rest <"$B_DIR/conc.$i"
		if [ "$st" != 200 ] || [ "$by" != "$BIG_SIZE" ]; then
			problem "concurrent warm GET $BIG_PATH from $1: status $st, $by of $BIG_SIZE bytes"
			bad=1
		fi
	done
	[ "$bad" = 0 ] || { echo 0; return; }
	calc "$CONC * $BIG_SIZE / ($t1 - $t0)" %.0f # bytes/us = MB/s
}
CONC_M=() CONC_N=()
for ((i = 0; i < 2; i++)); do
	CONC_M+=("$(conc_get regmirror "$M$BIG_PATH")")
	CONC_N+=("$(conc_get nginx "$N$BIG_PATH")")
done
say "   regmirror $CONC concurrent, aggregate MB/s: ${CONC_M[*]}"
say "   nginx     $CONC concurrent, aggregate MB/s: ${CONC_N[*]}"
m_alive "warm blob concurrent"
HWM_WARM=$(hwm_kb)
UP_WARM_BLOB=$(up_count "$mark" '[A-Z]+' /v2/)

# ---------------------------------------------------------------------------
# b) warm manifest requests/s

say "b) warm manifest: wrk -t2 -c32 -d${WRK_SECS}s, $WRK_RUNS runs each, alternating"
up_sync
mark=$UP_MARK
# wrk_rps NAME URL: requests/s (0 when wrk failed or saw errors).
wrk_rps() {
	local out rps non2xx sockerr
	out=$(timeout $((WRK_SECS + 20)) wrk -t2 -c32 -d"${WRK_SECS}s" \
		-H "Accept: $MT_MANIFEST" "$2" 2>&1) || {
		problem "wrk against $1 ($2) failed: $(tr '\n' ' ' <<<"$out" | cut -c 1-300)"
		echo 0
		return
	}
	echo "$out" >>"$B_DIR/wrk.log"
	rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
	non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")
	sockerr=$(grep 'Socket errors:' <<<"$out" || true)
	[ -z "$non2xx" ] ||
		problem "wrk against $1: $non2xx non-2xx/3xx responses"
	[ -z "$sockerr" ] ||
		problem "wrk against $1: $sockerr"
	printf '%.0f\n' "${rps:-0}"
}
RPS_M=() RPS_N=()
for ((i = 0; i < WRK_RUNS; i++)); do
	RPS_M+=("$(wrk_rps regmirror "$M$MAN_PATH")")
	m_alive "wrk on the manifest"
	RPS_N+=("$(wrk_rps nginx "$N$MAN_PATH")")
done
say "   regmirror req/s: ${RPS_M[*]}"
say "   nginx     req/s: ${RPS_N[*]}"
UP_WARM_MAN=$(up_count "$mark" '[A-Z]+' /v2/)
# And the manifest still is the right bytes after the load.
curl -s --max-time 10 -H "Accept: $MT_MANIFEST" -o "$B_DIR/man2.body" "$M$MAN_PATH" ||
	problem "GET $MAN_PATH via regmirror after wrk: curl failed"
cmp -s "$B_DIR/man2.body" "$MAN_FILE" ||
	problem "GET $MAN_PATH via regmirror after wrk: wrong body"

# ---------------------------------------------------------------------------
# c) cold blobs: TTFB, and single-flight

say "c) cold blob TTFB: $COLD_N never-fetched 16 MiB blobs, upstream then regmirror"
TTFB_U=() TTFB_M=() TOT_U=() TOT_M=()
for dg in "${COLD_DGS[@]}"; do
	p=/v2/$REPO/blobs/$dg
	r=$(download_sum "$UP$p")
	expect_blob "GET $p from the upstream" "$dg" $((16 * 1048576)) "$r"
	TTFB_U+=("$(awk '{ print $3 * 1000 }' <<<"$r")")
	TOT_U+=("$(awk '{ print $4 * 1000 }' <<<"$r")")
	r=$(download_sum "$M$p")
	expect_blob "cold GET $p via regmirror" "$dg" $((16 * 1048576)) "$r"
	TTFB_M+=("$(awk '{ print $3 * 1000 }' <<<"$r")")
	TOT_M+=("$(awk '{ print $4 * 1000 }' <<<"$r")")
done
say "   TTFB ms upstream : ${TTFB_U[*]}"
say "   TTFB ms regmirror: ${TTFB_M[*]}"
say "   total ms upstream : ${TOT_U[*]}"
say "   total ms regmirror: ${TOT_M[*]}"
m_alive "cold TTFB"

say "c) single-flight: $SF_N concurrent cold GETs of one 64 MiB blob"
SF_PATH=/v2/$REPO/blobs/$SF_DG
up_sync
mark=$UP_MARK
sf_one() {
	local w rc=0
	w=$(curl -s --max-time 60 -o "$B_DIR/sf.$1.body" \
		-w '%{http_code} %{size_download} %{time_starttransfer} %{time_total}' \
		"$M$SF_PATH") || rc=$?
	echo "$rc $w" >"$B_DIR/sf.$1.res"
}
pids=()
t0=$(now_us)
for ((i = 0; i < SF_N; i++)); do
	sf_one "$i" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
t1=$(now_us)
SF_OK=0
SF_TTFB=()
for ((i = 0; i < SF_N; i++)); do
	read -r rc st by tt _ <"$B_DIR/sf.$i.res"
	sum=$(sha256sum "$B_DIR/sf.$i.body" | cut -d' ' -f1)
	rm -f "$B_DIR/sf.$i.body"
	if [ "$rc" = 0 ] && [ "$st" = 200 ] && [ "$by" = "$SF_SIZE" ] &&
		[ "sha256:$sum" = "$SF_DG" ]; then
		SF_OK=$((SF_OK + 1))
		SF_TTFB+=("$(awk -v t="$tt" 'BEGIN { print t * 1000 }')")
	else
		problem "single-flight client $i: curl exit $rc, status $st, $by of $SF_SIZE bytes, sha256:$sum"
	fi
done
SF_WALL=$(calc "($t1 - $t0) / 1000" %.0f)
up_sync
SF_GETS=$(up_count "$mark" GET "$SF_PATH")
SF_ALL=$(up_count "$mark" '[A-Z]+' /v2/)
say "   $SF_OK/$SF_N clients got the blob in ${SF_WALL} ms; upstream GETs of it: $SF_GETS (all upstream requests: $SF_ALL)"
[ "$SF_GETS" = 1 ] ||
	problem "single-flight: $SF_N concurrent cold GETs of $SF_PATH made $SF_GETS upstream GETs"
m_alive "single-flight"

# ---------------------------------------------------------------------------
# d) memory, and the summary

HWM_ALL=$(hwm_kb)
[ "$HWM_ALL" -ge "$HWM_START" ] || HWM_ALL=$HWM_START
RSS_END=$(rss_kb)
B_SECS=$(calc "($(now_us) - $B_T0) / 1e6" %.0f)

mS=$(median "${SEQ_M[@]}")
nS=$(median "${SEQ_N[@]}")
mC=$(median "${CONC_M[@]}")
nC=$(median "${CONC_N[@]}")
mR=$(median "${RPS_M[@]}")
nR=$(median "${RPS_N[@]}")
tU=$(median "${TTFB_U[@]}")
tM=$(median "${TTFB_M[@]}")
oU=$(median "${TOT_U[@]}")
oM=$(median "${TOT_M[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
rS=$(ratio "$mS" "$nS")
rC=$(ratio "$mC" "$nC")
rR=$(ratio "$mR" "$nR")
dT=$(calc "$tM - $tU" %.1f)
# bar CONDITION: "ok" or "MISS".
bar() {
	if awk "BEGIN { exit !($1) }"; then echo ok; else echo MISS; fi
}
bS=$(bar "$rS >= 0.90")
bC=$(bar "$rC >= 0.90")
bR=$(bar "$rR >= 1.0")
bT=$(bar "$dT <= 5")
bF=$(bar "$SF_GETS == 1 && $SF_OK == $SF_N")
bM=$(bar "$HWM_WARM < 64 * 1024")
bU=$(bar "$UP_WARM_BLOB + $UP_WARM_MAN == 0")

MIB=$((BIG_SIZE / 1048576))
# row LABEL REGMIRROR OTHER COMPARISON BAR
row() { printf '  %-22s %-30s %-22s %-18s %s\n' "$@"; }
mib() { calc "$1 / 1024" %.1f; }
echo
echo "regmirror bench: $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ), ${B_SECS}s;" \
	"blob $MIB MiB, manifest $MAN_SIZE B; MB = 10^6 B; medians"
row "" regmirror "nginx / upstream" "" "bar (DESIGN 5)"
row "warm blob, 1 client" "$(calc "$mS" %.0f) MB/s" "nginx $(calc "$nS" %.0f) MB/s" \
	"ratio $rS" "$bS (ratio >= 0.90)"
row "warm blob, $CONC clients" "$(calc "$mC" %.0f) MB/s" "nginx $(calc "$nC" %.0f) MB/s" \
	"ratio $rC" "$bC (ratio >= 0.90)"
row "warm manifest" "$(calc "$mR" %.0f) req/s" "nginx $(calc "$nR" %.0f) req/s" \
	"ratio $rR" "$bR (ratio >= 1.00)"
row "cold TTFB, 16 MiB" "$(calc "$tM" %.1f) ms" "upstream $(calc "$tU" %.1f) ms" \
	"$(calc "$tM - $tU" %+.1f) ms" "$bT (<= +5 ms)"
row "cold total, 16 MiB" "$(calc "$oM" %.1f) ms" "upstream $(calc "$oU" %.1f) ms" \
	"ratio $(ratio "$oM" "$oU")" ""
row "cold total, $MIB MiB" "$(calc "$COLDBIG_M * 1000" %.0f) ms" \
	"upstream $(calc "$COLDBIG_UP * 1000" %.0f) ms" \
	"ratio $(ratio "$COLDBIG_M" "$COLDBIG_UP")" ""
row "cold single-flight" "$SF_N clients -> $SF_GETS upstream GET" "" \
	"$SF_OK/$SF_N ok, $SF_WALL ms" "$bF (1 GET)"
row "warm upstream requests" "$UP_WARM_BLOB (blob runs), $UP_WARM_MAN (wrk)" "" "" "$bU (0)"
row "peak RSS (VmHWM)" "$(mib "$HWM_WARM") MiB" "" "" "$bM (< 64 MiB, flat in blob size)"
echo "  (peak RSS: during the warm blob runs; over the whole run $(mib "$HWM_ALL") MiB;" \
	"RSS idle $(mib "$RSS_IDLE"), at the end $(mib "$RSS_END") MiB)"
if [ -s "$B_DIR/problems" ]; then
	echo
	echo "problems:"
	sed 's/^/  /' "$B_DIR/problems"
	exit 1
fi
MISSES=$(printf '%s\n' "$bS" "$bC" "$bR" "$bT" "$bF" "$bM" "$bU" | grep -c MISS || true)
if [ "$MISSES" -gt 0 ] && [ -n "${BENCH_STRICT:-}" ]; then
	echo "$MISSES quality bar(s) missed (BENCH_STRICT)"
	exit 1
fi
exit 0
