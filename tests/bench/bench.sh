#!/bin/bash
# tests/bench/bench.sh — regmirror's benchmark (`make bench`; not part of
# `make check`).  Measures, in one run on this machine, the quality bars of
# DESIGN section 5 against nginx (sendfile) and the upstream registry:
#
#   a) warm blob throughput: one big blob (BENCH_BLOB_MB, default 256 MiB)
#      fetched back to back from regmirror and from nginx, alternating, one
#      client at a time and with 4 concurrent clients;
#   b) warm manifest requests/s, by tag and by digest: wrk -c64 with
#      keep-alive against regmirror and nginx serving the same bytes as a
#      static file;
#   c) manifest HEAD by tag (ab -k -c64: wrk waits for a body after a
#      HEAD) against nginx's GET and HEAD of the static file, and
#      regmirror's GET measured with ab too;
#   d) HTTPS (regmirror's tls_listen and an nginx ssl listener with the
#      same certificate, protocols and cipher list): the manifest by tag
#      (wrk -c64) and the warm blob;
#   e) distribution's proxy mode (Debian's docker-registry with `proxy:
#      remoteurl:` on the same upstream): the warm blob and the manifest by
#      tag (wrk -c64);
#   f) BENCH_PERF=1 only: a perf profile of regmirror on the manifest by tag;
#   g) cold blobs: time to first byte of never-fetched blobs via regmirror
#      vs directly from the upstream; and 8 concurrent cold GETs of one
#      never-fetched blob, counting the GETs the upstream served;
#   h) a cold image pull (skopeo copy to dir:, BENCH_COLD_MB in 4 layers)
#      through regmirror, straight from the upstream and through
#      distribution's proxy, with regmirror's VmHWM during its pull;
#   j) connections: BENCH_IDLE_N idle keep-alive connections held (RSS),
#      and BENCH_SCALE_N concurrent downloads of the warm single-flight
#      blob, every body hashed (tests/bench/connscale.py);
#   k) workers: the manifest rate with workers = 1 (mirror on CPU 1, wrk
#      on CPU 0) against workers = 2 (neither pinned);
#   l) warm manifest p99 idle and during a storm of cold fills;
#   m) BENCH_PULLS_N (50) concurrent pulls of the cold-pull image from a
#      mirror with an empty cache (manifest, config and layers, every body
#      hashed), then the same pulls again, warm: upstream blob GETs, wrong
#      bodies, and the cold / warm completion time;
#   i) memory: regmirror's VmHWM during the warm blob runs, the cold pull
#      and over the whole run.
#
# Everything runs on 127.0.0.1 on ephemeral ports in a temp dir; every
# process started is stopped by its PID on exit.  Absolute numbers vary
# from run to run (the load generator shares the cores with the servers):
# read the ratios, measured in the same run.  docs/PERFORMANCE.md says
# what each row measures and holds a full run's table.
#
# Environment:
#   REGMIRROR       the binary (default: ./regmirror at the repo top)
#   BENCH_QUICK=1   a smoke run: small sizes, short runs (the defaults
#                   below change to 16 MiB, 2 rounds, 1 s x 1 wrk run, 2
#                   cold samples, a 32 MiB cold image); explicit values win
#   BENCH_BLOB_MB   size of the warm blob in MiB (default 256)
#   BENCH_ROUNDS    sequential warm blob GETs per server (default 6)
#   BENCH_WRK_SECS  seconds per wrk (and ab) run (default 4)
#   BENCH_WRK_RUNS  wrk runs per server, alternating (default 4)
#   BENCH_COLD_N    cold TTFB samples (default 7)
#   BENCH_COLD_MB   size of the cold-pull image in MiB (default 1024)
#   BENCH_IDLE_N    idle connections held in row j (default 10000)
#   BENCH_SCALE_N   concurrent downloads in row j (default 1000; quick 50)
#   BENCH_PULLS_N   concurrent pulls in row m (default 50; quick 8)
#   BENCH_PERF=1    also profile regmirror (perf record -e cpu-clock) during
#                   one extra wrk run on the manifest by tag; the top
#                   functions are printed after the table
#   BENCH_TIMEOUT   watchdog for the whole script in seconds (default 1800)
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
if [ -n "${BENCH_QUICK:-}" ]; then
	BLOB_MB=${BENCH_BLOB_MB:-16}
	ROUNDS=${BENCH_ROUNDS:-2}
	WRK_SECS=${BENCH_WRK_SECS:-1}
	WRK_RUNS=${BENCH_WRK_RUNS:-1}
	COLD_N=${BENCH_COLD_N:-2}
	COLD_MB=${BENCH_COLD_MB:-32}
	SF_MB=8
	IDLE_N=${BENCH_IDLE_N:-1000}
	SCALE_N=${BENCH_SCALE_N:-50}
	PULLS_N=${BENCH_PULLS_N:-8}
	STORM_N=4
	STORM_MB=16
else
	BLOB_MB=${BENCH_BLOB_MB:-256}
	ROUNDS=${BENCH_ROUNDS:-6}
	WRK_SECS=${BENCH_WRK_SECS:-4}
	WRK_RUNS=${BENCH_WRK_RUNS:-4}
	COLD_N=${BENCH_COLD_N:-7}
	COLD_MB=${BENCH_COLD_MB:-1024}
	SF_MB=64
	IDLE_N=${BENCH_IDLE_N:-10000}
	SCALE_N=${BENCH_SCALE_N:-1000}
	PULLS_N=${BENCH_PULLS_N:-50}
	STORM_N=8
	STORM_MB=128
fi
# Sequential blob GETs per server for distribution's proxy and over TLS.
ROUNDS2=$(((ROUNDS + 1) / 2))
SF_N=8
# Connections for the manifest rates (issue 12 measures at -c64).
WRK_C=64
COLD_REPO=bench/cold
STORM_REPO=bench/storm
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
for t in curl sha256sum nginx docker-registry skopeo awk openssl ab jq taskset "$PY"; do
	command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
if ! command -v wrk >/dev/null 2>&1; then
	say "wrk is not installed: it measures the manifest requests/s."
	say "install it with: apt-get install wrk"
	missing+=(wrk)
fi
if [ ${#missing[@]} -gt 0 ]; then
	say "missing tools: ${missing[*]}"
	say "(Debian packages: curl coreutils nginx docker-registry skopeo wrk openssl apache2-utils jq util-linux python3)"
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
os.kill(int(sys.argv[1]), signal.SIGTERM)' "$$" "${BENCH_TIMEOUT:-1800}" \
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
# cold TTFB samples and one 64 MiB (quick: 8 MiB) layer for the
# single-flight test.  Layers
# are random bytes behind a gzip magic number, so skopeo copies them as is.

say "building the image (${BLOB_MB} MiB warm layer) in $B_DIR"
cat >"$B_DIR/mkimage.py" <<'PYEOF'
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
"$PY" "$B_DIR/mkimage.py" "$B_DIR/layout" "$TAG" "$((BLOB_MB * 1048576))" \
	"$COLD_N" "$((16 * 1048576))" "$((SF_MB * 1048576))" >"$B_DIR/image.txt"
# The cold-pull image: 4 layers of a quarter of BENCH_COLD_MB each (the
# same generator: one "big", two "cold" and one "single-flight" layer).
say "building the cold-pull image (${COLD_MB} MiB in 4 layers)"
CQ=$((COLD_MB * 1048576 / 4))
"$PY" "$B_DIR/mkimage.py" "$B_DIR/coldlayout" "$TAG" "$CQ" 2 "$CQ" "$CQ" \
	>"$B_DIR/coldimage.txt"
read -r CMAN_DG _ <"$B_DIR/coldimage.txt"

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

# push_layout LAYOUT REPO WHAT: skopeo copy of an OCI layout to the
# upstream as REPO:TAG.
push_layout() {
	skopeo copy --quiet --dest-tls-verify=false --policy "$B_DIR/policy.json" \
		"oci:$1:$TAG" "docker://127.0.0.1:$UP_PORT/$2:$TAG" \
		>"$B_DIR/skopeo.log" 2>&1 || {
		cat "$B_DIR/skopeo.log" >&2
		die "skopeo copy of $3 to the upstream failed"
	}
}
say "pushing the image to the upstream (127.0.0.1:$UP_PORT)"
push_layout "$B_DIR/layout" "$REPO" "the image"
got=$(curl -sf --max-time 10 -H "Accept: $MT_MANIFEST" \
	"$UP/v2/$REPO/manifests/$TAG" | sha256sum | cut -d' ' -f1) || true
[ "sha256:$got" = "$MAN_DG" ] ||
	die "the upstream's manifest is not the pushed one (sha256:$got, want $MAN_DG)"
push_layout "$B_DIR/coldlayout" "$COLD_REPO" "the cold-pull image"
rm -rf "$B_DIR/coldlayout"
# The storm image (row l): STORM_N never-fetched layers of STORM_MB each.
SQ=$((STORM_MB * 1048576))
"$PY" "$B_DIR/mkimage.py" "$B_DIR/stormlayout" "$TAG" "$SQ" \
	"$((STORM_N - 2))" "$SQ" "$SQ" >"$B_DIR/stormimage.txt"
push_layout "$B_DIR/stormlayout" "$STORM_REPO" "the storm image"
rm -rf "$B_DIR/stormlayout"

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
# One certificate for both HTTPS servers (regmirror's tls_listen and nginx's
# ssl server): RSA 2048, self-signed, for 127.0.0.1.  The clients (wrk,
# curl -k) do not verify it.  TLS_CIPHERS is regmirror's TLS 1.2 list
# (proxy/proxy_server.c), given to nginx too; TLS 1.3 suites are OpenSSL's
# defaults on both; the suite each one negotiates is printed with the table.

TLS_CIPHERS='ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!RC4:!3DES'
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$B_DIR/tls.key" \
	-out "$B_DIR/tls.pem" >"$B_DIR/openssl.log" 2>&1 ||
	die "openssl req failed: $(cat "$B_DIR/openssl.log")"

# ---------------------------------------------------------------------------
# regmirror: plain HTTP on M_PORT, HTTPS on MS_PORT, one cache.

M_PORT=$(free_port)
M=http://127.0.0.1:$M_PORT
MS_PORT=$(free_port)
MS=https://127.0.0.1:$MS_PORT
M_LOG=$B_DIR/regmirror.log
cat >"$B_DIR/mirror.conf" <<EOF
[server]
listen = 127.0.0.1:$M_PORT
tls_listen = 127.0.0.1:$MS_PORT
tls_cert = $B_DIR/tls.pem
tls_key = $B_DIR/tls.key
workers = auto
log_level = warn
# Row j holds 10,000 connections from 127.0.0.1.
max_connections = 20000
max_connections_per_client = 0

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
ms_ready() { [ "$(http_code "$MS/v2/" -k)" = 200 ]; }
wait_for 10 ms_ready || die "regmirror did not answer GET /v2/ 200 on https :$MS_PORT"
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
MAND_PATH=/v2/$REPO/manifests/$MAN_DG
# check_man NAME URL [CURL_ARGS...]: GET the manifest, compare the bytes.
check_man() {
	local what=$1 url=$2
	shift 2
	curl -s --max-time 20 -H "Accept: $MT_MANIFEST" -o "$B_DIR/chk.body" \
		"$@" "$url" || die "GET $url via $what: curl failed"
	cmp -s "$B_DIR/chk.body" "$MAN_FILE" ||
		die "GET $url via $what: body differs from the pushed manifest"
}
check_man regmirror "$M$MAND_PATH"
check_man "regmirror (HTTPS)" "$MS$MAN_PATH" -k

# download URL [CURL_ARGS...]: "status bytes ttfb total speed" for a GET
# to /dev/null.
download() {
	local url=$1
	shift
	curl -s --max-time 60 -o /dev/null \
		-w '%{http_code} %{size_download} %{time_starttransfer} %{time_total} %{speed_download}' \
		"$@" "$url" || echo "000 0 0 0 0"
}
# download_sum URL [CURL_ARGS...]: "status bytes ttfb total sha256".
download_sum() {
	local w sum url=$1 tmp
	shift
	tmp=$(mktemp "$B_DIR/dl.XXXXXX")	# several may run at once (row l)
	w=$(curl -s --max-time 60 -o "$tmp" \
		-w '%{http_code} %{size_download} %{time_starttransfer} %{time_total}' \
		"$@" "$url") || w="000 0 0 0"
	sum=$(sha256sum "$tmp" | cut -d' ' -f1)
	rm -f "$tmp"
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
cp "$MAN_FILE" "$ND/www$MAND_PATH"
NS_PORT=$(free_port)
NS=https://127.0.0.1:$NS_PORT
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
    ssl_certificate $B_DIR/tls.pem;
    ssl_certificate_key $B_DIR/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers "$TLS_CIPHERS";
    ssl_prefer_server_ciphers on;
    server {
        listen 127.0.0.1:$N_PORT;
        listen 127.0.0.1:$NS_PORT ssl;
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
check_man nginx "$N$MAND_PATH"
check_man "nginx (HTTPS)" "$NS$MAN_PATH" -k
r=$(download_sum "$NS$BIG_PATH" -k)
expect_blob "GET $BIG_PATH from nginx (HTTPS)" "$BIG_DG" "$BIG_SIZE" "$r"
r=$(download_sum "$MS$BIG_PATH" -k)
expect_blob "GET $BIG_PATH from regmirror (HTTPS)" "$BIG_DG" "$BIG_SIZE" "$r"

# tls_suite HOST:PORT: "protocol suite" a default OpenSSL client gets.
tls_suite() {
	openssl s_client -brief -connect "$1" </dev/null 2>&1 |
		awk -F': *' '/^Protocol version/ { p = $2 } /^Ciphersuite/ { c = $2 }
			END { print p, c }' || true
}
TLS_M=$(tls_suite "127.0.0.1:$MS_PORT")
TLS_N=$(tls_suite "127.0.0.1:$NS_PORT")
[ "$TLS_M" = "$TLS_N" ] ||
	problem "TLS: regmirror negotiates '$TLS_M', nginx '$TLS_N'"

# ---------------------------------------------------------------------------
# distribution in proxy mode (Debian's docker-registry, `proxy: remoteurl:`)
# on the same upstream, with its own storage; warmed like regmirror.

D_PORT=$(free_port)
D=http://127.0.0.1:$D_PORT
D_LOG=$B_DIR/distproxy.log
mkdir -p "$B_DIR/distproxy"
cat >"$B_DIR/distproxy.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $B_DIR/distproxy
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$D_PORT
  secret: regmirror-bench-proxy
proxy:
  remoteurl: $UP
EOF
# shellcheck disable=SC2046
env $(compgen -e | grep '^REGISTRY_' | sed 's/^/-u /') \
	docker-registry serve "$B_DIR/distproxy.yml" >>"$D_LOG" 2>&1 &
D_PID=$!
register_pid "$D_PID" distribution-proxy "$D_LOG"
d_ready() {
	is_alive "$D_PID" || die "docker-registry (proxy) exited during start-up"
	[ "$(http_code "$D/v2/")" = 200 ]
}
wait_for 30 d_ready || die "docker-registry (proxy) did not answer /v2/ on :$D_PORT"
say "warming distribution's proxy (127.0.0.1:$D_PORT)"
check_man "distribution proxy" "$D$MAN_PATH"
r=$(download_sum "$D$BIG_PATH")
expect_blob "cold GET $BIG_PATH via distribution proxy" "$BIG_DG" "$BIG_SIZE" "$r"
r=$(download_sum "$D$BIG_PATH")
expect_blob "warm GET $BIG_PATH via distribution proxy" "$BIG_DG" "$BIG_SIZE" "$r"

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
# one_get NAME URL [CURL_ARGS...]: a timed GET, checked for status and length; prints MB/s.
one_get() {
	local st by tt sp what=$1 url=$2
	shift 2
	read -r st by tt _ sp <<<"$(download "$url" "$@")"
	if [ "$st" != 200 ] || [ "$by" != "$BIG_SIZE" ]; then
		problem "warm GET $BIG_PATH from $what: status $st, $by of $BIG_SIZE bytes"
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

say "b) warm manifest by tag and by digest: wrk -t2 -c$WRK_C -d${WRK_SECS}s, $WRK_RUNS runs each, alternating"
up_sync
mark=$UP_MARK
# wrk_rps NAME URL: requests/s (0 when wrk failed or saw errors).
wrk_rps() {
	local out rps non2xx sockerr
	out=$(timeout $((WRK_SECS + 20)) wrk -t2 -c"$WRK_C" -d"${WRK_SECS}s" \
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
say "   by tag: regmirror req/s: ${RPS_M[*]}"
say "           nginx     req/s: ${RPS_N[*]}"
RPSD_M=() RPSD_N=()
for ((i = 0; i < WRK_RUNS; i++)); do
	RPSD_M+=("$(wrk_rps regmirror "$M$MAND_PATH")")
	m_alive "wrk on the manifest by digest"
	RPSD_N+=("$(wrk_rps nginx "$N$MAND_PATH")")
done
say "   by digest: regmirror req/s: ${RPSD_M[*]}"
say "              nginx     req/s: ${RPSD_N[*]}"
UP_WARM_MAN=$(up_count "$mark" '[A-Z]+' /v2/)
# And the manifest still is the right bytes after the load.
curl -s --max-time 10 -H "Accept: $MT_MANIFEST" -o "$B_DIR/man2.body" "$M$MAN_PATH" ||
	problem "GET $MAN_PATH via regmirror after wrk: curl failed"
cmp -s "$B_DIR/man2.body" "$MAN_FILE" ||
	problem "GET $MAN_PATH via regmirror after wrk: wrong body"

# ---------------------------------------------------------------------------
# c) manifest HEAD by tag: ab -k -c64 (HTTP/1.0 keep-alive; wrk hangs on
# HEAD).  regmirror's HEAD against nginx's GET and HEAD of the static file,
# and regmirror's GET with the same tool (HTTP/1.0 keep-alive apart from
# HEAD), all with ab, alternating.

# ab_rps NAME URL [AB_ARGS...]: requests/s (0 when ab failed or saw errors).
ab_rps() {
	local what=$1 url=$2 out rps ndone fail non2xx ka
	shift 2
	out=$(timeout $((WRK_SECS + 20)) ab -q -k -c "$WRK_C" -t "$WRK_SECS" \
		-n $((150000 * WRK_SECS)) -H "Accept: $MT_MANIFEST" "$@" "$url" 2>&1) || {
		problem "ab against $what ($url) failed: $(tr '\n' ' ' <<<"$out" | cut -c 1-300)"
		echo 0
		return
	}
	echo "$out" >>"$B_DIR/ab.log"
	rps=$(awk '/^Requests per second:/ { print $4 }' <<<"$out")
	ndone=$(awk '/^Complete requests:/ { print $3 }' <<<"$out")
	fail=$(awk '/^Failed requests:/ { print $3 }' <<<"$out")
	non2xx=$(awk '/^Non-2xx responses:/ { print $3 }' <<<"$out")
	ka=$(awk '/^Keep-Alive requests:/ { print $3 }' <<<"$out")
	[ "${fail:-0}" = 0 ] || problem "ab against $what: $fail failed requests"
	[ -z "$non2xx" ] || problem "ab against $what: $non2xx non-2xx responses"
	# Every request but the last on each connection is kept alive.
	[ "${ka:-0}" -ge $((${ndone:-0} - WRK_C)) ] ||
		problem "ab against $what: only ${ka:-0} of ${ndone:-0} requests kept alive"
	printf '%.0f\n' "${rps:-0}"
}
say "c) manifest HEAD by tag: ab -k -c$WRK_C -t$WRK_SECS, $WRK_RUNS runs each, alternating"
HEAD_M=() HEAD_N=() ABGET_N=() ABGET_M=()
for ((i = 0; i < WRK_RUNS; i++)); do
	HEAD_M+=("$(ab_rps "regmirror HEAD" "$M$MAN_PATH" -i)")
	m_alive "ab HEAD on the manifest"
	ABGET_N+=("$(ab_rps "nginx GET" "$N$MAN_PATH")")
	ABGET_M+=("$(ab_rps "regmirror GET" "$M$MAN_PATH")")
	HEAD_N+=("$(ab_rps "nginx HEAD" "$N$MAN_PATH" -i)")
done
say "   regmirror HEAD req/s: ${HEAD_M[*]}"
say "   regmirror GET  req/s: ${ABGET_M[*]}"
say "   nginx     GET  req/s: ${ABGET_N[*]}"
say "   nginx     HEAD req/s: ${HEAD_N[*]}"

# ---------------------------------------------------------------------------
# d) HTTPS: the manifest by tag (wrk -c64 over TLS; one handshake per
# connection) and the warm blob (curl -k, one client), regmirror's
# tls_listen against nginx's ssl listener, alternating.

say "d) HTTPS manifest by tag: wrk -t2 -c$WRK_C over TLS, $WRK_RUNS runs each, alternating"
TRPS_M=() TRPS_N=()
for ((i = 0; i < WRK_RUNS; i++)); do
	TRPS_M+=("$(wrk_rps "regmirror (HTTPS)" "$MS$MAN_PATH")")
	m_alive "wrk on the manifest over TLS"
	TRPS_N+=("$(wrk_rps "nginx (HTTPS)" "$NS$MAN_PATH")")
done
say "   regmirror req/s: ${TRPS_M[*]}"
say "   nginx     req/s: ${TRPS_N[*]}"
say "d) HTTPS warm blob: $ROUNDS2 sequential GETs each, alternating"
TSEQ_M=() TSEQ_N=()
for ((i = 0; i < ROUNDS2; i++)); do
	TSEQ_M+=("$(one_get "regmirror (HTTPS)" "$MS$BIG_PATH" -k)")
	TSEQ_N+=("$(one_get "nginx (HTTPS)" "$NS$BIG_PATH" -k)")
done
say "   regmirror MB/s: ${TSEQ_M[*]}"
say "   nginx     MB/s: ${TSEQ_N[*]}"
m_alive "HTTPS warm blob"

# ---------------------------------------------------------------------------
# e) distribution's proxy, warm: the blob (one client, alternating with
# regmirror) and the manifest by tag (wrk -c64; distribution asks the
# upstream for the tag on each request).  After the windows in which
# regmirror's upstream requests are counted.

say "e) distribution proxy: warm blob $ROUNDS2 GETs (alternating with regmirror), manifest by tag wrk -c$WRK_C"
DSEQ_D=() DSEQ_M=()
for ((i = 0; i < ROUNDS2; i++)); do
	DSEQ_D+=("$(one_get "distribution proxy" "$D$BIG_PATH")")
	DSEQ_M+=("$(one_get regmirror "$M$BIG_PATH")")
done
say "   distribution MB/s: ${DSEQ_D[*]}"
say "   regmirror    MB/s: ${DSEQ_M[*]}"
DRPS=()
for ((i = 0; i < (WRK_RUNS + 1) / 2; i++)); do
	DRPS+=("$(wrk_rps "distribution proxy" "$D$MAN_PATH")")
done
say "   distribution req/s: ${DRPS[*]}"
is_alive "$D_PID" || die "distribution's proxy died; see $D_LOG"

# ---------------------------------------------------------------------------
# f) optional: where regmirror's time goes on the warm manifest by tag
# (BENCH_PERF=1): perf record of the cpu-clock software event (this VM has
# no hardware counters) during one more wrk run.

if [ -n "${BENCH_PERF:-}" ]; then
	say "f) perf record -e cpu-clock of regmirror during wrk on the manifest by tag"
	perf record -q -e cpu-clock -F 4999 -p "$M_PID" \
		-o "$B_DIR/perf.data" >"$B_DIR/perf.log" 2>&1 &
	PERF_PID=$!
	register_pid "$PERF_PID" perf "$B_DIR/perf.log"
	# perf writes the header when it has attached; then the load.
	wait_for 10 test -s "$B_DIR/perf.data" ||
		problem "perf record did not start: $(cat "$B_DIR/perf.log")"
	PERF_RPS=$(wrk_rps "regmirror (perf)" "$M$MAN_PATH")
	kill -INT "$PERF_PID" 2>/dev/null || true
	wait "$PERF_PID" 2>/dev/null || true
	perf report -i "$B_DIR/perf.data" --stdio --no-children \
		--sort dso,symbol -g none --percent-limit 0.7 2>/dev/null |
		grep -v '^$' | sed 's/[ -]*$//' >"$B_DIR/perf.txt" || true
	perf report -i "$B_DIR/perf.data" --stdio --no-children \
		--sort dso -g none 2>/dev/null | grep -v '^$' |
		sed 's/[ -]*$//' >"$B_DIR/perf-dso.txt" || true
fi

# ---------------------------------------------------------------------------
# g) cold blobs: TTFB, and single-flight

say "g) cold blob TTFB: $COLD_N never-fetched 16 MiB blobs, upstream, regmirror, upstream again"
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
	# The registry's own first byte moves by more than the goal from one
	# request to the next: take it before and after the mirror's.
	r=$(download_sum "$UP$p")
	expect_blob "GET $p from the upstream" "$dg" $((16 * 1048576)) "$r"
	TTFB_U+=("$(awk '{ print $3 * 1000 }' <<<"$r")")
	TOT_U+=("$(awk '{ print $4 * 1000 }' <<<"$r")")
done
say "   TTFB ms upstream : ${TTFB_U[*]}"
say "   TTFB ms regmirror: ${TTFB_M[*]}"
say "   total ms upstream : ${TOT_U[*]}"
say "   total ms regmirror: ${TOT_M[*]}"
m_alive "cold TTFB"

say "g) single-flight: $SF_N concurrent cold GETs of one $SF_MB MiB blob"
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
# h) cold image pull: skopeo copy docker:// -> dir: of the never-fetched
# BENCH_COLD_MB image, straight from the upstream, through regmirror,
# through distribution's proxy, and straight again (the direct time is the
# mean of the two).  regmirror's VmHWM is reset before its pull.

# pull NAME HOST:PORT: seconds for one skopeo copy; checks the manifest.
pull() {
	local what=$1 t0 t1 dst=$B_DIR/pull
	rm -rf "$dst"
	t0=$(now_us)
	if ! skopeo copy --quiet --src-tls-verify=false --policy "$B_DIR/policy.json" \
		"docker://$2/$COLD_REPO:$TAG" "dir:$dst" >"$B_DIR/pull.log" 2>&1; then
		problem "cold pull via $what: skopeo failed: $(tr '\n' ' ' <"$B_DIR/pull.log" | cut -c 1-300)"
		echo 0
		return
	fi
	t1=$(now_us)
	[ "sha256:$(sha256sum "$dst/manifest.json" | cut -d' ' -f1)" = "$CMAN_DG" ] ||
		problem "cold pull via $what: the manifest is not the pushed one"
	rm -rf "$dst"
	calc "($t1 - $t0) / 1e6" %.3f
}
say "h) cold image pull (${COLD_MB} MiB, skopeo -> dir:): direct, regmirror, distribution proxy, direct"
PULL_U1=$(pull upstream "127.0.0.1:$UP_PORT")
echo 5 >"/proc/$M_PID/clear_refs" 2>/dev/null || true
PULL_M=$(pull regmirror "127.0.0.1:$M_PORT")
HWM_PULL=$(hwm_kb)
m_alive "cold pull"
PULL_D=$(pull "distribution proxy" "127.0.0.1:$D_PORT")
PULL_U2=$(pull upstream "127.0.0.1:$UP_PORT")
PULL_U=$(calc "($PULL_U1 + $PULL_U2) / 2" %.3f)
say "   seconds: upstream $PULL_U1 and $PULL_U2, regmirror $PULL_M, distribution $PULL_D"

# ---------------------------------------------------------------------------
# j) scale in connections (tests/bench/connscale.py): BENCH_IDLE_N (10,000)
# idle keep-alive connections, each asked once for /v2/, regmirror's RSS
# with all of them held; then BENCH_SCALE_N (1,000) concurrent GETs of the
# warm single-flight blob (64 MiB), each body hashed, completion-time
# p99 / p50 and regmirror's peak RSS while they ran.

say "j) $IDLE_N idle keep-alive connections; $SCALE_N concurrent downloads of a warm $SF_MB MiB blob"
"$PY" "$B_HERE/connscale.py" idle 127.0.0.1 "$M_PORT" /v2/ "$IDLE_N" \
	"$M_PID" >"$B_DIR/idle.json" 2>"$B_DIR/idle.err" ||
	problem "idle connections: $(cat "$B_DIR/idle.json" "$B_DIR/idle.err" | tr '\n' ' ' | cut -c 1-300)"
m_alive "idle connections"
echo 5 >"/proc/$M_PID/clear_refs" 2>/dev/null || true
"$PY" "$B_HERE/connscale.py" download 127.0.0.1 "$M_PORT" \
	"/v2/$REPO/blobs/$SF_DG" "$SCALE_N" "${SF_DG#sha256:}" "$M_PID" \
	>"$B_DIR/scale.json" 2>"$B_DIR/scale.err" ||
	problem "concurrent downloads: $(cat "$B_DIR/scale.json" "$B_DIR/scale.err" | tr '\n' ' ' | cut -c 1-300)"
m_alive "concurrent downloads"
jget() { jq -r ".$2 // -1" "$B_DIR/$1.json" 2>/dev/null || echo -1; }
IDLE_RSS=$(jget idle rss_held_kib)
IDLE_HELD=$(jget idle held)
SC_WRONG=$(jget scale wrong)
SC_P50=$(jget scale p50_s)
SC_P99=$(jget scale p99_s)
SC_HWM=$(jget scale hwm_kib)
say "   idle: $IDLE_HELD held, RSS $IDLE_RSS KiB; downloads: $SC_WRONG wrong, p50 $SC_P50 s, p99 $SC_P99 s, peak RSS $SC_HWM KiB"

# ---------------------------------------------------------------------------
# k) workers: the manifest by tag (wrk -c64) from a regmirror with
# workers = 1 pinned to CPU 1 and wrk pinned to CPU 0, then from one with
# workers = 2 and wrk -t2, neither pinned.  Each mirror's CPU use over
# its run says who was the limit: a pinned mirror near 100% of its core
# is the limit, not the client.

# wk_start NAME WORKERS [taskset args]: a mirror on its own cache; sets
# WK_PORT and WK_PID (not in a subshell: register_pid must stick).
wk_start() {
	local name=$1 nw=$2
	shift 2
	WK_PORT=$(free_port)
	sed -e "s/^listen = .*/listen = 127.0.0.1:$WK_PORT/" \
	    -e "/^tls_/d" -e "s/^workers = .*/workers = $nw/" \
	    -e "s|^dir = .*|dir = $B_DIR/cache-$name|" \
	    "$B_DIR/mirror.conf" >"$B_DIR/$name.conf"
	"$@" "$REGMIRROR" serve -c "$B_DIR/$name.conf" >>"$B_DIR/$name.log" 2>&1 &
	WK_PID=$!
	register_pid "$WK_PID" "regmirror ($name)" "$B_DIR/$name.log"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# wk_run PORT PID THREADS [PREFIX...]: "req/s cpu%" of one wrk run with
# THREADS threads, started through PREFIX (taskset).
wk_run() {
	local port=$1 pid=$2 th=$3 c0 c1 t0 t1 out
	shift 3
	c0=$(cpu_ticks "$pid")
	t0=$(now_us)
	out=$("$@" wrk -t"$th" -c"$WRK_C" -d"${WRK_SECS}s" -H "Accept: $MT_MANIFEST" \
		"http://127.0.0.1:$port$MAN_PATH" 2>&1) || true
	t1=$(now_us)
	c1=$(cpu_ticks "$pid")
	echo "$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out") \
$(calc "($c1 - $c0) * 1e6 / $(getconf CLK_TCK) / ($t1 - $t0) * 100" %.0f)"
}
say "k) workers: workers = 1 on CPU 1 (wrk -t1 on CPU 0), workers = 2 (wrk -t2), $WRK_RUNS runs each"
wk_start w1 1 taskset -c 1
W1_PORT=$WK_PORT W1_PID=$WK_PID
wk_start w2 2
W2_PORT=$WK_PORT W2_PID=$WK_PID
w_ready() { [ "$(http_code "http://127.0.0.1:$1/v2/")" = 200 ]; }
wait_for 30 w_ready "$W1_PORT" || die "regmirror (workers = 1) did not start"
wait_for 30 w_ready "$W2_PORT" || die "regmirror (workers = 2) did not start"
for p in "$W1_PORT" "$W2_PORT"; do
	check_man "regmirror :$p" "http://127.0.0.1:$p$MAN_PATH"
done
W1_R=() W2_R=() W1_CPU=() W2_CPU=()
for ((i = 0; i < WRK_RUNS; i++)); do
	read -r r c < <(wk_run "$W1_PORT" "$W1_PID" 1 taskset -c 0)
	W1_R+=("$r") W1_CPU+=("$c")
	read -r r c < <(wk_run "$W2_PORT" "$W2_PID" 2)
	W2_R+=("$r") W2_CPU+=("$c")
done
say "   workers = 1: req/s ${W1_R[*]} (mirror CPU % ${W1_CPU[*]})"
say "   workers = 2: req/s ${W2_R[*]} (mirror CPU % ${W2_CPU[*]})"

# ---------------------------------------------------------------------------
# l) warm hits during a storm of cold fills: wrk -t1 -c8 --latency on the
# manifest by tag for WRK_SECS, idle, then again while STORM_N
# never-fetched STORM_MB blobs are fetched through regmirror at once (each
# checked); p99 of each.  A worker that waited on disk sync or an LMDB
# write transaction would show it here.

# wrk_p99 URL: wrk's 99th percentile latency in ms.
wrk_p99() {
	wrk -t1 -c8 -d"${WRK_SECS}s" --latency -H "Accept: $MT_MANIFEST" "$1" |
		awk '$1 == "99%" { v = $2
			if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
			else if (v ~ /ms$/) sub(/ms$/, "", v)
			else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
			printf "%.3f", v }'
}
say "l) warm manifest p99 (wrk -t1 -c8 --latency), idle, then during $STORM_N cold fills of $STORM_MB MiB"
P99_IDLE=$(wrk_p99 "$M$MAN_PATH")
mapfile -t STORM < <(tail -n +2 "$B_DIR/stormimage.txt")
st0=$(now_us)
spids=()
for ((i = 0; i < ${#STORM[@]}; i++)); do
	read -r dg _ <<<"${STORM[i]}"
	# niced: the storm's own clients (curl, sha256sum) must not be
	# what takes the CPU from the mirror's workers and wrk.
	(renice -n 19 "$BASHPID" >/dev/null 2>&1 || true
	 download_sum "$M/v2/$STORM_REPO/blobs/$dg" >"$B_DIR/storm.$i") &
	spids+=($!)
done
P99_STORM=$(wrk_p99 "$M$MAN_PATH")
for p in "${spids[@]}"; do wait "$p" || true; done
STORM_S=$(calc "($(now_us) - $st0) / 1e6" %.2f)
for ((i = 0; i < ${#STORM[@]}; i++)); do
	read -r dg sz <<<"${STORM[i]}"
	expect_blob "storm blob $i via regmirror" "$dg" "$sz" "$(cat "$B_DIR/storm.$i")"
done
m_alive "fill storm"
say "   p99 ms: idle $P99_IDLE, during the storm $P99_STORM (the storm took $STORM_S s)"

# ---------------------------------------------------------------------------
# m) PULLS_N concurrent pulls of the cold-pull image from a mirror with an
# empty cache, then the same again once it is warm.  A pull is what a
# runtime does: the manifest by tag, then the config and the layers at
# once; every body is hashed (openssl, in the pipe: no temp files) and
# checked.  The upstream must serve each blob once (single-flight across
# all the pulls), and the cold round should take little longer than the
# warm one: the pulls stream from the fills at the upstream's speed.

# pull_blobs BASE OUT: one pull; OUT gets "ok" or what was wrong.
pull_blobs() {
	local base=$1 out=$2 man i pids=() bad=
	man=$(curl -sf --max-time 120 -H "Accept: $MT_MANIFEST" 		"$base/v2/$COLD_REPO/manifests/$TAG") || { echo "manifest" >"$out"; return; }
	[ "sha256:$(printf '%s' "$man" | openssl dgst -sha256 -r | cut -d' ' -f1)" = "$CMAN_DG" ] ||
		{ echo "manifest bytes" >"$out"; return; }
	mapfile -t dgs < <(jq -r '.config.digest, .layers[].digest' <<<"$man")
	for ((i = 0; i < ${#dgs[@]}; i++)); do
		(set +e
		 h=$(curl -sf --max-time 600 "$base/v2/$COLD_REPO/blobs/${dgs[i]}" |
			openssl dgst -sha256 -r | cut -d' ' -f1)
		 [ "sha256:$h" = "${dgs[i]}" ] || echo "${dgs[i]}" >"$out.$i") &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || true; done
	for ((i = 0; i < ${#dgs[@]}; i++)); do
		[ ! -e "$out.$i" ] || bad="$bad $(cat "$out.$i")"
	done
	echo "${bad:-ok}" >"$out"
}
# pulls_round BASE: PULLS_N pulls at once; prints "seconds wrong".
pulls_round() {
	local t0 pids=() i p wrong
	rm -f "$B_DIR"/pr.*
	t0=$(now_us)
	for ((i = 0; i < PULLS_N; i++)); do
		pull_blobs "$1" "$B_DIR/pr.$i" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || true; done
	wrong=$(cat "$B_DIR"/pr.[0-9]* | grep -vc '^ok$' || true)
	echo "$(calc "($(now_us) - $t0) / 1e6" %.2f) $wrong"
}
say "m) $PULLS_N concurrent pulls of the ${COLD_MB} MiB image: cold (empty cache), then warm"
wk_start pulls 2
PL_PORT=$WK_PORT PL_PID=$WK_PID
wait_for 30 w_ready "$PL_PORT" || die "regmirror (pulls) did not start"
up_sync
pl_mark=$UP_MARK
read -r PL_COLD PL_COLD_WRONG < <(pulls_round "http://127.0.0.1:$PL_PORT")
up_sync
PL_GETS=$(up_count "$pl_mark" GET "/v2/$COLD_REPO/blobs/")
read -r PL_WARM PL_WARM_WRONG < <(pulls_round "http://127.0.0.1:$PL_PORT")
is_alive "$PL_PID" || die "regmirror (pulls) died; see $B_DIR/pulls.log"
# coldimage.txt: the manifest, then a line per layer; the blobs are the
# layers and the config.
PL_BLOBS=$(wc -l <"$B_DIR/coldimage.txt")
say "   cold $PL_COLD s ($PL_COLD_WRONG wrong), warm $PL_WARM s ($PL_WARM_WRONG wrong), upstream blob GETs $PL_GETS (image: $PL_BLOBS blobs)"

# ---------------------------------------------------------------------------
# i) memory, and the summary

HWM_ALL=$(hwm_kb)
for v in "$HWM_START" "$HWM_WARM" "$HWM_PULL"; do
	[ "$HWM_ALL" -ge "$v" ] || HWM_ALL=$v
done
RSS_END=$(rss_kb)
B_SECS=$(calc "($(now_us) - $B_T0) / 1e6" %.0f)

mS=$(median "${SEQ_M[@]}")
nS=$(median "${SEQ_N[@]}")
mC=$(median "${CONC_M[@]}")
nC=$(median "${CONC_N[@]}")
mR=$(median "${RPS_M[@]}")
nR=$(median "${RPS_N[@]}")
mRD=$(median "${RPSD_M[@]}")
nRD=$(median "${RPSD_N[@]}")
mH=$(median "${HEAD_M[@]}")
nHG=$(median "${ABGET_N[@]}")
mHG=$(median "${ABGET_M[@]}")
nH=$(median "${HEAD_N[@]}")
mTR=$(median "${TRPS_M[@]}")
nTR=$(median "${TRPS_N[@]}")
mTS=$(median "${TSEQ_M[@]}")
nTS=$(median "${TSEQ_N[@]}")
dS=$(median "${DSEQ_D[@]}")
dmS=$(median "${DSEQ_M[@]}")
dR=$(median "${DRPS[@]}")
tU=$(median "${TTFB_U[@]}")
tM=$(median "${TTFB_M[@]}")
oU=$(median "${TOT_U[@]}")
oM=$(median "${TOT_M[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
rS=$(ratio "$mS" "$nS")
rC=$(ratio "$mC" "$nC")
rR=$(ratio "$mR" "$nR")
rRD=$(ratio "$mRD" "$nRD")
rH=$(ratio "$mH" "$nHG")
rTR=$(ratio "$mTR" "$nTR")
rTS=$(ratio "$mTS" "$nTS")
rDS=$(ratio "$dmS" "$dS")
rDR=$(ratio "$mR" "$dR")
rP=$(ratio "$PULL_M" "$PULL_U")
w1R=$(median "${W1_R[@]}")
w2R=$(median "${W2_R[@]}")
rW=$(ratio "$w2R" "$w1R")
rF=$(ratio "$SC_P99" "$SC_P50")
rL=$(ratio "$P99_STORM" "$P99_IDLE")
rPL=$(ratio "$PL_COLD" "$PL_WARM")
rPD=$(ratio "$PULL_D" "$PULL_U")
dT=$(calc "$tM - $tU" %.1f)
# bar CONDITION: "ok" or "MISS" (n/a, from a failed measurement: MISS).
bar() {
	if awk "BEGIN { exit !($1) }" 2>/dev/null; then echo ok; else echo MISS; fi
}
# DESIGN section 5's bars (BENCH_STRICT counts these).
bS=$(bar "$rS >= 0.90")
bC=$(bar "$rC >= 0.90")
bR=$(bar "$rR >= 1.0")
bT=$(bar "$dT <= 5")
bF=$(bar "$SF_GETS == 1 && $SF_OK == $SF_N")
bM=$(bar "$HWM_WARM < 64 * 1024")
bU=$(bar "$UP_WARM_BLOB + $UP_WARM_MAN == 0")
# Issue 12's goals.
gS=$(bar "$rS >= 0.95")
gR=$(bar "$rR >= 1.0")
gRD=$(bar "$rRD >= 1.0")
gH=$(bar "$rH >= 1.0")
gTR=$(bar "$rTR >= 0.9")
gTS=$(bar "$rTS >= 0.9")
gP=$(bar "$rP <= 1.05")
gM=$(bar "$HWM_PULL <= 16 * 1024")
gI=$(bar "$IDLE_HELD == $IDLE_N && $IDLE_RSS > 0 && $IDLE_RSS <= 64 * 1024")
gD=$(bar "$SC_WRONG == 0 && $rF <= 2 && $SC_HWM > 0 && $SC_HWM <= 64 * 1024")
gW=$(bar "$rW >= 1.8")
gL=$(bar "$rL <= 2")
gPL=$(bar "$rPL <= 1.3 && $PL_COLD_WRONG + $PL_WARM_WRONG == 0 && $PL_GETS == $PL_BLOBS")
gT=$(bar "$dT <= 2")

MIB=$((BIG_SIZE / 1048576))
# row LABEL REGMIRROR REFERENCE RATIO BAR
row() { printf '  %-30s %-14s %-30s %-7s %s\n' "$@"; }
mib() { calc "$1 / 1024" %.1f; }
mbs() { calc "$1" %.0f; }
echo
echo "regmirror bench: $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ), ${B_SECS}s;" \
	"blob $MIB MiB, manifest $MAN_SIZE B, cold image $COLD_MB MiB; MB = 10^6 B; medians"
echo "  TLS: regmirror $TLS_M, nginx $TLS_N (same certificate, RSA 2048)"
row "" regmirror "reference (same run)" ratio "bar: DESIGN 5 / issue 12 goal"
row "warm blob, 1 client" "$(mbs "$mS") MB/s" "nginx sendfile $(mbs "$nS") MB/s" \
	"$rS" "$bS (>= 0.90) / $gS (>= 0.95)"
row "warm blob, 1 client" "$(mbs "$dmS") MB/s" "distribution $(mbs "$dS") MB/s" \
	"$rDS" ""
row "warm blob, $CONC clients" "$(mbs "$mC") MB/s" "nginx sendfile $(mbs "$nC") MB/s" \
	"$rC" "$bC (>= 0.90)"
row "HTTPS warm blob, 1 client" "$(mbs "$mTS") MB/s" "nginx TLS $(mbs "$nTS") MB/s" \
	"$rTS" "- / $gTS (>= 0.9)"
row "manifest GET tag, wrk -c$WRK_C" "$(mbs "$mR") req/s" "nginx file $(mbs "$nR") req/s" \
	"$rR" "$bR (>= 1.00) / $gR (>= 1.0)"
row "manifest GET tag, wrk -c$WRK_C" "$(mbs "$mR") req/s" "distribution $(mbs "$dR") req/s" \
	"$rDR" ""
row "manifest GET digest, wrk" "$(mbs "$mRD") req/s" "nginx file $(mbs "$nRD") req/s" \
	"$rRD" "- / $gRD (>= 1.0)"
row "manifest HEAD tag, ab -k -c$WRK_C" "$(mbs "$mH") req/s" "nginx GET $(mbs "$nHG") req/s" \
	"$rH" "- / $gH (>= 1.0 x nginx GET)"
row "" "" "(nginx HEAD $(mbs "$nH") req/s)" "$(ratio "$mH" "$nH")" ""
row "manifest GET tag, ab -k -c$WRK_C" "$(mbs "$mHG") req/s" "nginx GET $(mbs "$nHG") req/s" \
	"$(ratio "$mHG" "$nHG")" ""
row "HTTPS manifest GET tag, wrk" "$(mbs "$mTR") req/s" "nginx TLS $(mbs "$nTR") req/s" \
	"$rTR" "- / $gTR (>= 0.9)"
row "cold TTFB, 16 MiB" "$(calc "$tM" %.1f) ms" "upstream $(calc "$tU" %.1f) ms" \
	"$(calc "$tM - $tU" %+.1f)" "$bT (<= +5 ms) / $gT (<= +2 ms)"
row "cold total, 16 MiB" "$(calc "$oM" %.1f) ms" "upstream $(calc "$oU" %.1f) ms" \
	"$(ratio "$oM" "$oU")" ""
row "cold total, $MIB MiB blob" "$(calc "$COLDBIG_M * 1000" %.0f) ms" \
	"upstream $(calc "$COLDBIG_UP * 1000" %.0f) ms" \
	"$(ratio "$COLDBIG_M" "$COLDBIG_UP")" ""
row "cold pull $COLD_MB MiB, skopeo" "$PULL_M s" "upstream direct $PULL_U s" \
	"$rP" "- / $gP (<= 1.05)"
row "  ... via distribution proxy" "$PULL_D s" "upstream direct $PULL_U s" \
	"$rPD" "(regmirror / distribution $(ratio "$PULL_M" "$PULL_D"))"
row "cold single-flight" "$SF_N -> $SF_GETS GET" "" \
	"" "$bF (1 GET; $SF_OK/$SF_N ok, $SF_WALL ms)"
row "warm upstream requests" "$UP_WARM_BLOB blob, $UP_WARM_MAN man" "" "" "$bU (0)"
row "peak RSS, warm blob runs" "$(mib "$HWM_WARM") MiB" "" "" "$bM (< 64 MiB)"
row "peak RSS, cold pull" "$(mib "$HWM_PULL") MiB" "" "" "- / $gM (<= 16 MiB)"
row "$IDLE_N idle keep-alive conns" "$(mib "$IDLE_RSS") MiB" "$IDLE_HELD held" "" \
	"- / $gI (<= 64 MiB)"
row "$SCALE_N x $SF_MB MiB downloads" "p99/p50 $rF" \
	"$SC_WRONG wrong, p50 $SC_P50 s" "" \
	"- / $gD (ok, <= 2, RSS $(mib "$SC_HWM") <= 64 MiB)"
row "warm p99, $STORM_N cold fills" "$P99_STORM ms" "idle $P99_IDLE ms" "$rL" \
	"- / $gL (<= 2)"
row "$PULLS_N cold pulls at once" "$PL_COLD s" "warm $PL_WARM s" "$rPL" \
	"- / $gPL (<= 1.3; $PL_GETS of $PL_BLOBS blobs from upstream, $((PL_COLD_WRONG + PL_WARM_WRONG)) wrong)"
row "workers 2 / workers 1" "$(mbs "$w2R") req/s" \
	"workers 1 $(mbs "$w1R") req/s" "$rW" "- / $gW (>= 1.8)"
echo "  (mirror CPU % during the workers runs: workers = 1 pinned" \
	"$(calc "$(median "${W1_CPU[@]}")" %.0f), workers = 2" \
	"$(calc "$(median "${W2_CPU[@]}")" %.0f) of 200)"
echo "  (peak RSS (VmHWM) over the whole run $(mib "$HWM_ALL") MiB;" \
	"RSS idle $(mib "$RSS_IDLE"), at the end $(mib "$RSS_END") MiB)"
GOALS=$(printf '%s\n' "$gS" "$gR" "$gRD" "$gH" "$gTR" "$gTS" "$gP" "$gM" \
	"$gI" "$gD" "$gW" "$gL" "$gPL" "$gT")
echo "  issue 12 goals met: $(grep -c '^ok' <<<"$GOALS" || true) of 14"
if [ -n "${BENCH_PERF:-}" ]; then
	echo
	echo "perf (cpu-clock, regmirror, wrk -c$WRK_C on the manifest by tag, ${PERF_RPS:-0} req/s under perf):"
	echo "  by shared object:"
	grep -v '^#' "$B_DIR/perf-dso.txt" | head -n 8 | sed 's/^/  /'
	echo "  top symbols (self):"
	grep -v '^#' "$B_DIR/perf.txt" | head -n 30 | sed 's/^/  /'
fi
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
