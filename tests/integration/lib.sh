# tests/integration/lib.sh — sourced by every integration scenario.
#
# A scenario starts with
#     #!/bin/bash
#     [ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
#     . "$(dirname "$0")/lib.sh" || exit 99
# and then starts servers with the start_* helpers, which register their
# PIDs; the EXIT trap stops them (TERM, then KILL after a timeout) and
# removes the scenario's temp dir, or keeps it and prints its path and the
# tails of every log when the scenario failed.
#
# Exit codes follow automake: 0 pass, 1 fail (`fail`), 99 hard error
# (`hard_error`: a missing tool, a helper that could not start a server).
# Nothing here skips: a missing tool is an error, never a pass.
#
# Every server listens on 127.0.0.1 only. Waits poll a condition with a
# timeout (wait_for); nothing sleeps to synchronise.

set -eu -o pipefail

T_NAME=$(basename "$0" .sh)
T_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T_TOP=$(cd "$T_HERE/../.." && pwd)
: "${top_srcdir:=$T_TOP}"
: "${top_builddir:=$T_TOP}"
: "${REGMIRROR:=$top_builddir/regmirror}"
export top_srcdir top_builddir REGMIRROR

# The Debian python, which has python3-jwt and python3-cryptography; a
# pyenv python3 earlier on PATH does not.
PY=/usr/bin/python3
# The Debian docker.io client (a newer CLI may sit in /usr/local/bin).
DOCKER=/usr/bin/docker

T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/regmirror-it.$T_NAME.XXXXXX")
T_PIDS=()        # PIDs to stop, in start order
T_PIDNAMES=()    # a name for each, for messages
T_LOGS=()        # logs to show on failure
T_EXTRA_DIRS=()  # more dirs to remove (dockerd's short-path dir)
T_STARTED=${EPOCHREALTIME/./}

# Never let a test pick up the machine's or the user's client config.
export REGISTRY_AUTH_FILE="$T_DIR/auth.json"
export CONTAINERS_REGISTRIES_CONF="$T_DIR/registries.conf"
export DOCKER_CONFIG="$T_DIR/docker-client"
export no_proxy='*' NO_PROXY='*'
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
printf '{"auths":{}}\n' >"$REGISTRY_AUTH_FILE"
printf 'unqualified-search-registries = []\n' >"$CONTAINERS_REGISTRIES_CONF"
mkdir -p "$DOCKER_CONFIG"
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' \
	>"$T_DIR/policy.json"

log() { printf '%s: %s\n' "$T_NAME" "$*" >&2; }

# fail MSG: the scenario's claim does not hold.
fail() {
	printf '%s: FAIL: %s\n' "$T_NAME" "$*" >&2
	exit 1
}

# hard_error MSG: the test could not run (automake's ERROR, exit 99).
hard_error() {
	printf '%s: ERROR: %s\n' "$T_NAME" "$*" >&2
	exit 99
}

pass() {
	local us=$((${EPOCHREALTIME/./} - T_STARTED))
	printf '%s: PASS (%d.%01ds)\n' "$T_NAME" $((us / 1000000)) \
		$((us % 1000000 / 100000)) >&2
	exit 0
}

# need TOOL...: every tool must exist, else a hard error.
need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 ||
			hard_error "required tool '$t' not found"
	done
}
need curl jq sha256sum timeout awk "$PY"
"$PY" -c 'import jwt, cryptography' 2>/dev/null ||
	hard_error "$PY lacks python3-jwt / python3-cryptography"

need_regmirror() {
	[ -x "$REGMIRROR" ] || hard_error "REGMIRROR=$REGMIRROR is not executable"
}

# stop_pid PID [SECONDS]: TERM, wait up to SECONDS (default 10), then
# KILL; returns 1 when KILL was needed.
# stop_pid PID [TIMEOUT]: its stop signal (TERM, or what T_STOPSIG
# names for it), then KILL after TIMEOUT seconds.  regmirror's is INT:
# TERM drains for [server] drain first, which only the drain tests want.
declare -A T_STOPSIG=()
stop_pid() {
	local pid=$1 t=${2:-10} i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kill "-${T_STOPSIG[$pid]:-TERM}" "$pid" 2>/dev/null || true
	# A test may have frozen it (SIGSTOP): let it see the signal.
	kill -CONT "$pid" 2>/dev/null || true
	for ((i = 0; i < t * 20; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid did not stop on TERM within ${t}s: KILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		return 1
	fi
	wait "$pid" 2>/dev/null || true
}

# register_pid PID NAME [LOG]
register_pid() {
	T_PIDS+=("$1")
	T_PIDNAMES+=("$2")
	[ -z "${3:-}" ] || T_LOGS+=("$3")
}

# Unmount whatever is mounted under a dir (dockerd bind-mounts its
# data-root onto itself and leaves it there if it is killed).
umount_under() {
	local d=$1 m
	while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done < <(awk -v d="$d" '$2 == d || index($2, d "/") == 1 { print $2 }' \
		/proc/mounts | sort -r)
}

cleanup() {
	local rc=$? i d l
	set +e
	trap - EXIT INT TERM
	for ((i = ${#T_PIDS[@]} - 1; i >= 0; i--)); do
		stop_pid "${T_PIDS[i]}" 15
	done
	for d in "${T_EXTRA_DIRS[@]}"; do
		umount_under "$d"
	done
	if [ "$rc" -eq 0 ] && [ -z "${KEEP_TMP:-}" ]; then
		rm -rf "$T_DIR"
		for d in "${T_EXTRA_DIRS[@]}"; do rm -rf "$d"; done
	else
		echo "$T_NAME: exit $rc; kept $T_DIR ${T_EXTRA_DIRS[*]}" >&2
	fi
	if [ "$rc" -ne 0 ]; then
		for l in "${T_LOGS[@]}"; do
			[ -f "$l" ] || continue
			echo "---- tail -n 30 $l (lines cut at 300 columns)" >&2
			tail -n 30 "$l" | cut -c 1-300 >&2
		done
		echo "----" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for TIMEOUT_SECONDS CMD...: poll CMD until it succeeds; 1 on timeout.
wait_for() {
	local end
	# microseconds; TIMEOUT may have a fraction (0.5)
	end=$(awk -v t="$1" -v now="${EPOCHREALTIME/./}" \
		'BEGIN { printf "%.0f", now + t * 1000000 }')
	shift
	while ! "$@"; do
		[ "${EPOCHREALTIME/./}" -lt "$end" ] || return 1
		sleep 0.05
	done
}

# free_port: a TCP port on 127.0.0.1 that was free just now and that
# this test has not been handed before. The kernel may give the same
# port to two consecutive bind(0) calls (the first socket is closed
# before our server binds it), so ports already handed out are kept in
# $T_DIR/.ports (a file: callers use $(free_port), a subshell).
free_port() {
	"$PY" - "$T_DIR/.ports" <<'EOPY'
import socket, sys
path = sys.argv[1]
try:
    used = set(open(path).read().split())
except OSError:
    used = set()
for _ in range(100):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = str(s.getsockname()[1])
    s.close()
    if port not in used:
        break
else:
    sys.exit("free_port: no new port after 100 tries")
with open(path, "a") as f:
    f.write(port + "\n")
print(port)
EOPY
}

# pid_listens PID PORT: PID (or a thread of it) has a listening TCP
# socket on 127.0.0.1:PORT. Guards against a port that free_port handed
# out being taken by someone else before our server bound it.
pid_listens() {
	"$PY" - "$1" "$2" <<'EOPY'
import os, sys
pid, port = sys.argv[1], int(sys.argv[2])
want = "0100007F:%04X" % port
inodes = set()
for line in open("/proc/net/tcp").read().splitlines()[1:]:
    f = line.split()
    if f[1] == want and f[3] == "0A":  # 0A = LISTEN
        inodes.add("socket:[%s]" % f[9])
try:
    fds = os.listdir("/proc/%s/fd" % pid)
except OSError:
    sys.exit(1)
for fd in fds:
    try:
        if os.readlink("/proc/%s/fd/%s" % (pid, fd)) in inodes:
            sys.exit(0)
    except OSError:
        pass
sys.exit(1)
EOPY
}

# sha256_of FILE: the hex sha256 of a file.
sha256_of() {
	sha256sum "$1" | cut -d' ' -f1
}

# http_code URL [CURL ARGS...]: the status code (000 when no answer).
http_code() {
	local url=$1
	shift
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$url" ||
		true
}

# is_alive PID
is_alive() { kill -0 "$1" 2>/dev/null; }

# assert_eq EXPECTED ACTUAL WHAT
assert_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
}

# ---------------------------------------------------------------------------
# Upstream registries: Debian's docker-registry (distribution 2.8)

# Its access log (combined log format, on stdout) has one line per
# request, written when the response is complete:
#   127.0.0.1 - - [25/Nov/2026:16:25:30 +0000] "GET /v2/a/manifests/x HTTP/1.1" 404 91 "" "curl/7.88.1"
# Both stdout and stderr go to $NAME_LOG (stderr holds level=... lines).

_registry_ready() {
	local c
	is_alive "$2" || hard_error "docker-registry exited during start-up"
	c=$(http_code "$1/v2/")
	[ "$c" = 200 ] || [ "$c" = 401 ]
}

# start_registry NAME [--htpasswd USER PASS | --token TOKNAME]
#   Exports NAME_PORT, NAME_URL (http://127.0.0.1:PORT), NAME_HOST
#   (127.0.0.1:PORT), NAME_LOG, NAME_PID, NAME_ROOT (its storage dir).
#   NAME is upper-cased for the variables. --token uses a token server
#   started with start_tokenserver TOKNAME.
# (REGISTRY_EXTRA_YAML, if set, is appended to the registry's config.)
start_registry() {
	need docker-registry
	local name=$1 var port dir conf auth='' pid
	shift
	var=$(echo "$name" | tr 'a-z-' 'A-Z_')
	port=$(free_port)
	dir="$T_DIR/registry-$name"
	mkdir -p "$dir/data"
	case "${1:-}" in
	--htpasswd)
		need htpasswd
		htpasswd -Bbc "$dir/htpasswd" "$2" "$3" 2>/dev/null
		auth="auth:
  htpasswd:
    realm: regmirror-test
    path: $dir/htpasswd"
		;;
	--token)
		local tv tu ts ti tc
		tv=$(echo "$2" | tr 'a-z-' 'A-Z_')
		tu=${tv}_URL ts=${tv}_SERVICE ti=${tv}_ISSUER tc=${tv}_CERT
		[ -n "${!tu:-}" ] || hard_error "start_registry: no tokenserver $2"
		auth="auth:
  token:
    realm: ${!tu}/token
    service: ${!ts}
    issuer: ${!ti}
    rootcertbundle: ${!tc}"
		;;
	'') ;;
	*) hard_error "start_registry: bad option $1" ;;
	esac
	conf="$dir/config.yml"
	cat >"$conf" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: regmirror-integration-test
$auth
${REGISTRY_EXTRA_YAML:-}
EOF
	# docker-registry maps REGISTRY_* variables onto its config (the
	# REGISTRY_AUTH_FILE set above for skopeo would become auth.file).
	# shellcheck disable=SC2046
	env $(compgen -e | grep '^REGISTRY_' | sed 's/^/-u /') \
		docker-registry serve "$conf" >>"$dir/registry.log" 2>&1 &
	pid=$!
	register_pid "$pid" "registry $name" "$dir/registry.log"
	printf -v "${var}_PORT" %s "$port"
	printf -v "${var}_HOST" %s "127.0.0.1:$port"
	printf -v "${var}_URL" %s "http://127.0.0.1:$port"
	printf -v "${var}_LOG" %s "$dir/registry.log"
	printf -v "${var}_PID" %s "$pid"
	printf -v "${var}_ROOT" %s "$dir/data"
	export "${var}_PORT" "${var}_HOST" "${var}_URL" "${var}_LOG" \
		"${var}_PID" "${var}_ROOT"
	wait_for 30 _registry_ready "http://127.0.0.1:$port" "$pid" ||
		hard_error "docker-registry $name did not answer /v2/ on :$port"
	pid_listens "$pid" "$port" ||
		hard_error "docker-registry $name (pid $pid) does not own :$port"
}

# registry_lines LOG: number of lines in a log now (a position mark).
log_mark() {
	if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# _access_lines LOG FROM METHOD PREFIX: docker-registry access-log lines
# after line FROM for METHOD (a regex, e.g. GET or '[A-Z]+') whose URI
# starts with PREFIX (a fixed string).
_access_lines() {
	local log=$1 from=$2 method=$3 prefix=$4
	tail -n +"$((from + 1))" "$log" |
		grep -E "^[^ ]+ - [^ ]+ \[[^]]+\] \"$method " |
		awk -v p="$prefix" '{
			# $6 is "METHOD (with the quote), $7 the URI
			if (index($7, p) == 1) print
		}' || true
}

# count_upstream_gets LOG PREFIX [FROM_LINE]: GETs whose URI starts with
# PREFIX in a docker-registry log (after line FROM_LINE), any status.
count_upstream_gets() {
	_access_lines "$1" "${3:-0}" GET "$2" | wc -l
}

# count_upstream_gets_ok LOG PREFIX [FROM_LINE]: the same, status 2xx only.
count_upstream_gets_ok() {
	_access_lines "$1" "${3:-0}" GET "$2" |
		awk '$9 ~ /^2/' | wc -l
}

# count_upstream_requests LOG PREFIX [FROM_LINE]: any method.
count_upstream_requests() {
	_access_lines "$1" "${3:-0}" '[A-Z]+' "$2" | wc -l
}

# registry_log_sync NAME: make a marker request to the registry and wait
# until its access line is in the log, so that lines of requests that
# completed before it are there too (the log is written after each
# response, possibly a moment after the client saw the last byte).
registry_log_sync() {
	local var url log marker
	var=$(echo "$1" | tr 'a-z-' 'A-Z_')
	url=${var}_URL log=${var}_LOG
	url=${!url} log=${!log}
	marker="sync-$RANDOM$RANDOM"
	curl -s -o /dev/null --max-time 10 "$url/v2/?$marker" || true
	wait_for 10 grep -qF "/v2/?$marker " "$log" ||
		hard_error "registry $1: marker request not logged"
}

# ---------------------------------------------------------------------------
# Token service (tokenserver.py) for registries with `auth: token`

# start_tokenserver NAME [tokenserver.py options, e.g. --user U --password P]
#   Exports NAME_PORT, NAME_URL, NAME_LOG, NAME_PID, NAME_CERT,
#   NAME_SERVICE, NAME_ISSUER.
start_tokenserver() {
	local name=$1 var dir pid
	shift
	var=$(echo "$name" | tr 'a-z-' 'A-Z_')
	dir="$T_DIR/tokenserver-$name"
	mkdir -p "$dir"
	"$PY" "$T_HERE/tokenserver.py" --port-file "$dir/port" \
		--cert-out "$dir/cert.pem" --service "test-$name" \
		--issuer "issuer-$name" "$@" >>"$dir/token.log" 2>&1 &
	pid=$!
	register_pid "$pid" "tokenserver $name" "$dir/token.log"
	wait_for 20 test -s "$dir/port" ||
		hard_error "tokenserver $name did not start"
	printf -v "${var}_PORT" %s "$(cat "$dir/port")"
	printf -v "${var}_URL" %s "http://127.0.0.1:$(cat "$dir/port")"
	printf -v "${var}_LOG" %s "$dir/token.log"
	printf -v "${var}_PID" %s "$pid"
	printf -v "${var}_CERT" %s "$dir/cert.pem"
	printf -v "${var}_SERVICE" %s "test-$name"
	printf -v "${var}_ISSUER" %s "issuer-$name"
	export "${var}_PORT" "${var}_URL" "${var}_LOG" "${var}_PID" \
		"${var}_CERT" "${var}_SERVICE" "${var}_ISSUER"
}

# count_token_requests LOG [FROM_LINE]: successful token grants logged.
count_token_requests() {
	tail -n +"$((${2:-0} + 1))" "$1" |
		grep -c '^token-request .*status=200$' || true
}

# ---------------------------------------------------------------------------
# Fake upstream (fakeupstream.py)

# start_fakeupstream NAME [fakeupstream.py options, e.g. --mode corrupt]
#   Exports NAME_PORT, NAME_URL, NAME_LOG, NAME_PID, NAME_INFO (the JSON
#   info file: repo, tag, manifest, blob digests).
start_fakeupstream() {
	local name=$1 var dir pid
	shift
	var=$(echo "$name" | tr 'a-z-' 'A-Z_')
	dir="$T_DIR/fakeupstream-$name"
	mkdir -p "$dir"
	"$PY" "$T_HERE/fakeupstream.py" --info-file "$dir/info.json" "$@" \
		>>"$dir/fake.log" 2>&1 &
	pid=$!
	register_pid "$pid" "fakeupstream $name" "$dir/fake.log"
	wait_for 20 test -s "$dir/info.json" ||
		hard_error "fakeupstream $name did not start"
	printf -v "${var}_PORT" %s "$(jq -r .port "$dir/info.json")"
	printf -v "${var}_URL" %s "http://127.0.0.1:$(jq -r .port "$dir/info.json")"
	printf -v "${var}_LOG" %s "$dir/fake.log"
	printf -v "${var}_PID" %s "$pid"
	printf -v "${var}_INFO" %s "$dir/info.json"
	export "${var}_PORT" "${var}_URL" "${var}_LOG" "${var}_PID" \
		"${var}_INFO"
}

# fake_count URL PATH [METHOD]: requests the fake upstream at URL got for
# PATH (default method GET).
fake_count() {
	curl -sf --max-time 10 -G "$1/_count" --data-urlencode "path=$2" \
		--data-urlencode "method=${3:-GET}"
}

# fake_mode URL MODE: switch the fake upstream's fault mode.
fake_mode() {
	curl -sf --max-time 10 -X PUT "$1/_mode?mode=$2" >/dev/null
}

# ---------------------------------------------------------------------------
# Images

# mkimage OUTDIR KIND [mkimage.py options]: write an OCI layout; its JSON
# summary goes to OUTDIR.json.
mkimage() {
	local out=$1
	shift
	"$PY" "$T_HERE/mkimage.py" "$out" "$@" >"$out.json" ||
		hard_error "mkimage.py $out $* failed"
}

# skopeo_ ARGS: skopeo with the test's own policy (no system config).
skopeo_() {
	need skopeo
	skopeo --policy "$T_DIR/policy.json" "$@"
}

# seed_image LAYOUT REF DEST_HOST REPO:TAG [skopeo copy options...]
#   Push an OCI layout to a registry (plain HTTP), all platforms.
seed_image() {
	local layout=$1 ref=$2 host=$3 repotag=$4
	shift 4
	skopeo_ copy -q --all --dest-tls-verify=false "$@" \
		"oci:$layout:$ref" "docker://$host/$repotag" \
		>>"$T_DIR/skopeo.log" 2>&1 ||
		{ tail -n 20 "$T_DIR/skopeo.log" >&2;
		  hard_error "seeding $host/$repotag from $layout failed"; }
}

# layout_check DIR: every blob in an OCI layout hashes to its name.
layout_check() {
	local f n=0
	for f in "$1"/blobs/sha256/*; do
		[ -f "$f" ] || continue
		[ "$(sha256_of "$f")" = "$(basename "$f")" ] ||
			fail "$f: sha256 does not match its name"
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || fail "$1: no blobs"
}

# layout_top DIR: the digest index.json names first.
layout_top() {
	jq -r '.manifests[0].digest' "$1/index.json"
}

# layout_same SRC DST: DST (a copy) has exactly SRC's blobs, each
# verified, and the same top-level digest.
layout_same() {
	local src=$1 dst=$2
	layout_check "$dst"
	assert_eq "$(layout_top "$src")" "$(layout_top "$dst")" \
		"top-level digest of $dst"
	assert_eq "$(cd "$src/blobs/sha256" && ls | sort | tr '\n' ' ')" \
		"$(cd "$dst/blobs/sha256" && ls | sort | tr '\n' ' ')" \
		"blob set of $dst"
}

# ---------------------------------------------------------------------------
# The mirror under test

# write_mirror_conf FILE PORT CACHEDIR UPSTREAM_URL [LINE...]
#   The standard config with one default upstream named docker.io; each
#   LINE (e.g. "username = u") goes into the upstream section.
write_mirror_conf() {
	local file=$1 port=$2 cache=$3 url=$4 l
	shift 4
	{
		cat <<EOF
# written by $T_NAME
[server]
listen = 127.0.0.1:$port
workers = 2
log_level = info

[cache]
dir = $cache
tag_ttl = 5m

[timeouts]
connect = 2s
first_byte = 10s
idle = 30s

[upstream "docker.io"]
url = $url
default = yes
EOF
		for l in "$@"; do printf '%s\n' "$l"; done
	} >"$file"
}

_mirror_ready() {
	local hdr
	is_alive "$MIRROR_PID" || fail "regmirror exited during start-up"
	hdr=$(curl -s -D - -o /dev/null --max-time 5 "$MIRROR_URL/v2/") ||
		return 1
	printf '%s' "$hdr" | head -n 1 | grep -q " ${MIRROR_READY_CODE:-200}" ||
		return 1
	printf '%s' "$hdr" | tr -d '\r' |
		grep -qi '^Docker-Distribution-API-Version: registry/2.0$'
}

# start_mirror CONF [LOGNAME]: run `$REGMIRROR serve -c CONF` (port from
# the conf's listen line) and wait until /v2/ answers 200 with the API
# version header. Exports MIRROR_PID, MIRROR_PORT, MIRROR_URL,
# MIRROR_HOST, MIRROR_LOG (its stderr, $T_DIR/LOGNAME.log, default
# mirror.log). Starting another one replaces these variables; both are
# stopped at exit.
start_mirror() {
	need_regmirror
	local conf=$1 rc=0
	MIRROR_PORT=$(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$conf" | head -n 1)
	[ -n "$MIRROR_PORT" ] || hard_error "start_mirror: no listen line in $conf"
	MIRROR_HOST="127.0.0.1:$MIRROR_PORT"
	MIRROR_URL="http://$MIRROR_HOST"
	MIRROR_LOG="$T_DIR/${2:-mirror}.log"
	"$REGMIRROR" serve -c "$conf" >>"$MIRROR_LOG" 2>&1 &
	MIRROR_PID=$!
	register_pid "$MIRROR_PID" regmirror "$MIRROR_LOG"
	T_STOPSIG[$MIRROR_PID]=INT
	export MIRROR_PID MIRROR_PORT MIRROR_URL MIRROR_HOST MIRROR_LOG
	wait_for 20 _mirror_ready || rc=$?
	is_alive "$MIRROR_PID" || fail "regmirror exited during start-up"
	[ "$rc" -eq 0 ] || fail "regmirror did not answer GET /v2/ with 200 \
and Docker-Distribution-API-Version: registry/2.0 within 20s"
	pid_listens "$MIRROR_PID" "$MIRROR_PORT" ||
		hard_error "regmirror (pid $MIRROR_PID) does not own :$MIRROR_PORT (port taken by another process?)"
}

# mirror_alive: the mirror process is still running and answers /v2/
# (with MIRROR_READY_CODE, 200 unless access control makes it 401).
mirror_alive() {
	is_alive "$MIRROR_PID" || fail "regmirror (pid $MIRROR_PID) died"
	assert_eq "${MIRROR_READY_CODE:-200}" "$(http_code "$MIRROR_URL/v2/")" \
		"GET /v2/ on the mirror"
}

# count_mirror_requests METHOD URI_PREFIX [FROM_LINE]: access lines in the
# mirror's log for METHOD whose URI starts with URI_PREFIX.
count_mirror_requests() {
	tail -n +"$((${3:-0} + 1))" "$MIRROR_LOG" |
		grep -cF "\"$1 $2" || true
}

# ---------------------------------------------------------------------------
# dockerd (docker.io 20.10), for pulls through the mirror

# start_dockerd [dockerd options...]: a private dockerd (vfs, no
# networking setup) under a short /tmp path. Exports DOCKERD_PID,
# DOCKERD_SOCK, DOCKERD_LOG, DOCKERD_DIR. It starts its own containerd
# (a child, stopped by dockerd on TERM). DOCKERD_WRAP, an array, is a
# command prefix that must exec dockerd in the end (nsenter, unshare):
# the PID registered is dockerd's.
start_dockerd() {
	need dockerd "$DOCKER"
	DOCKERD_DIR=$(mktemp -d /tmp/dk.XXXXXX)
	T_EXTRA_DIRS+=("$DOCKERD_DIR")
	DOCKERD_SOCK="$DOCKERD_DIR/s"
	DOCKERD_LOG="$T_DIR/dockerd.log"
	printf '{}\n' >"$DOCKERD_DIR/daemon.json"
	${DOCKERD_WRAP[@]+"${DOCKERD_WRAP[@]}"} \
		dockerd --iptables=false --ip6tables=false --bridge=none \
		--storage-driver=vfs --data-root "$DOCKERD_DIR/d" \
		--exec-root "$DOCKERD_DIR/e" --pidfile "$DOCKERD_DIR/p" \
		-H "unix://$DOCKERD_SOCK" --config-file "$DOCKERD_DIR/daemon.json" \
		"$@" >>"$DOCKERD_LOG" 2>&1 &
	DOCKERD_PID=$!
	register_pid "$DOCKERD_PID" dockerd "$DOCKERD_LOG"
	export DOCKERD_PID DOCKERD_SOCK DOCKERD_LOG DOCKERD_DIR
	wait_for 60 _dockerd_ready ||
		hard_error "dockerd did not answer on $DOCKERD_SOCK"
}

_dockerd_ready() {
	is_alive "$DOCKERD_PID" || hard_error "dockerd exited during start-up"
	docker_ version >/dev/null 2>&1
}

# docker_ ARGS: the docker client talking to our dockerd.
docker_() { "$DOCKER" -H "unix://$DOCKERD_SOCK" "$@"; }

# ---------------------------------------------------------------------------
# Helpers of the 7x scenarios: multi-upstream configs, containerd, nginx,
# a test CA, queries on the mirror's access log.

# write_mirror_base FILE PORT CACHEDIR TAG_TTL [SERVER_LINE...]
#   [server] (listen = 127.0.0.1:PORT first, then each SERVER_LINE),
#   [cache] and [timeouts], no upstream: append [upstream "..."] sections
#   to FILE yourself.
write_mirror_base() {
	local file=$1 port=$2 cache=$3 ttl=$4 l
	shift 4
	{
		printf '# written by %s\n[server]\nlisten = 127.0.0.1:%s\n' \
			"$T_NAME" "$port"
		printf 'workers = 2\n'
		for l in "$@"; do printf '%s\n' "$l"; done
		grep -q '^log_level' < <(printf '%s\n' "$@") ||
			printf 'log_level = info\n'
		cat <<EOF

[cache]
dir = $cache
tag_ttl = $ttl

[timeouts]
connect = 2s
first_byte = 10s
idle = 30s
EOF
	} >"$file"
}

# mirror_access_lines [FROM_LINE]: the mirror's access lines after line
# FROM_LINE of $MIRROR_LOG.
mirror_access_lines() {
	tail -n +"$((${1:-0} + 1))" "$MIRROR_LOG" | grep ' access r' || true
}

# mirror_access_grep ERE [FROM_LINE]: the access lines matching ERE.
mirror_access_grep() {
	mirror_access_lines "${2:-0}" | grep -E -- "$1" || true
}

# containerd (Debian 1.6) with its own root, state and sockets under a
# short /tmp path; the CRI plugin and the snapshotters that need kernel
# support are disabled (pull with --snapshotter native).
#
# start_containerd: exports CONTAINERD_PID, CONTAINERD_SOCK,
# CONTAINERD_DIR, CONTAINERD_LOG.
start_containerd() {
	need containerd ctr
	CONTAINERD_DIR=$(mktemp -d /tmp/ct.XXXXXX)
	T_EXTRA_DIRS+=("$CONTAINERD_DIR")
	CONTAINERD_SOCK="$CONTAINERD_DIR/s"
	CONTAINERD_LOG="$T_DIR/containerd.log"
	cat >"$CONTAINERD_DIR/config.toml" <<EOF
version = 2
root = "$CONTAINERD_DIR/root"
state = "$CONTAINERD_DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[debug]
  level = "debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CONTAINERD_DIR/opt"
EOF
	containerd --config "$CONTAINERD_DIR/config.toml" \
		>>"$CONTAINERD_LOG" 2>&1 &
	CONTAINERD_PID=$!
	register_pid "$CONTAINERD_PID" containerd "$CONTAINERD_LOG"
	export CONTAINERD_PID CONTAINERD_SOCK CONTAINERD_DIR CONTAINERD_LOG
	wait_for 30 _containerd_ready ||
		hard_error "containerd did not answer on $CONTAINERD_SOCK"
}

_containerd_ready() {
	is_alive "$CONTAINERD_PID" ||
		hard_error "containerd exited during start-up"
	ctr -a "$CONTAINERD_SOCK" version >/dev/null 2>&1
}

# ctr_ ARGS: ctr talking to our containerd.
ctr_() { ctr -a "$CONTAINERD_SOCK" "$@"; }

# start_nginx NAME CONF PORT: run Debian's nginx in the foreground with
# prefix $T_DIR/nginx-NAME (CONF must put its pid file and logs there, or
# anywhere under $T_DIR) and wait until it accepts connections on
# 127.0.0.1:PORT. Exports NAME_PID and NAME_DIR (the prefix).
start_nginx() {
	need nginx
	local name=$1 conf=$2 port=$3 var dir pid
	var=$(echo "$name" | tr 'a-z-' 'A-Z_')
	dir="$T_DIR/nginx-$name"
	mkdir -p "$dir/logs"
	nginx -t -p "$dir" -c "$conf" -g 'daemon off;' >"$dir/test.out" 2>&1 ||
		{ cat "$dir/test.out" >&2; hard_error "nginx $name: bad config"; }
	nginx -p "$dir" -c "$conf" -g 'daemon off;' >>"$dir/nginx.out" 2>&1 &
	pid=$!
	register_pid "$pid" "nginx $name" "$dir/nginx.out"
	printf -v "${var}_PID" %s "$pid"
	printf -v "${var}_DIR" %s "$dir"
	export "${var}_PID" "${var}_DIR"
	wait_for 20 _nginx_ready "$pid" "$port" ||
		hard_error "nginx $name did not listen on :$port"
}

_nginx_ready() {
	is_alive "$1" || hard_error "nginx exited during start-up"
	[ "$(http_code "http://127.0.0.1:$2/")" != 000 ]
}

# make_test_ca DIR: a self-signed test CA, DIR/ca.crt and DIR/ca.key.
make_test_ca() {
	need openssl
	mkdir -p "$1"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$1/ca.key" -out "$1/ca.crt" -days 2 \
		-subj "/CN=regmirror test CA $T_NAME" \
		-addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign \
		>"$1/openssl.log" 2>&1 ||
		{ cat "$1/openssl.log" >&2; hard_error "openssl: test CA"; }
}

# make_server_cert CADIR OUT_PREFIX SERIAL [IP]: a server certificate
# for IP (IP SAN; default 127.0.0.1) signed by CADIR's CA, with SERIAL
# (hex, e.g. 1001): OUT_PREFIX.crt and OUT_PREFIX.key.
make_server_cert() {
	local ca=$1 out=$2 serial=$3 ip=${4:-127.0.0.1}
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$out.key" -out "$out.csr" -subj "/CN=$ip" \
		>>"$ca/openssl.log" 2>&1 &&
	printf '%s\n' "subjectAltName = IP:$ip" \
		"basicConstraints = CA:FALSE" \
		"keyUsage = critical, digitalSignature" \
		"extendedKeyUsage = serverAuth" >"$out.ext" &&
	openssl x509 -req -in "$out.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
		-set_serial "0x$serial" -days 2 -extfile "$out.ext" \
		-out "$out.crt" >>"$ca/openssl.log" 2>&1 ||
		{ cat "$ca/openssl.log" >&2;
		  hard_error "openssl: server certificate $out"; }
}

# make_client_cert CADIR OUT_PREFIX SERIAL CN: a TLS client certificate
# (clientAuth) with subject CN, signed by CADIR's CA: OUT_PREFIX.crt and
# OUT_PREFIX.key.
make_client_cert() {
	local ca=$1 out=$2 serial=$3 cn=$4
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$out.key" -out "$out.csr" -subj "/CN=$cn" \
		>>"$ca/openssl.log" 2>&1 &&
	printf '%s\n' "basicConstraints = CA:FALSE" \
		"keyUsage = critical, digitalSignature" \
		"extendedKeyUsage = clientAuth" >"$out.ext" &&
	openssl x509 -req -in "$out.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
		-set_serial "0x$serial" -days 2 -extfile "$out.ext" \
		-out "$out.crt" >>"$ca/openssl.log" 2>&1 ||
		{ cat "$ca/openssl.log" >&2;
		  hard_error "openssl: client certificate $out"; }
}

# at_exit CMD: run the shell command CMD (eval'd) when the scenario exits,
# passed or failed, before the kit's cleanup; later ones run first. For
# what the kit's cleanup does not know (a file under /etc for dockerd).
T_AT_EXIT=()
at_exit() {
	T_AT_EXIT+=("$1")
	trap _at_exit_run EXIT
}

_at_exit_run() {
	local rc=$? i
	set +e
	for ((i = ${#T_AT_EXIT[@]} - 1; i >= 0; i--)); do
		eval "${T_AT_EXIT[i]}"
	done
	(exit "$rc")
	cleanup
}

# tls_serial HOST:PORT CAFILE: the serial (hex, "serial=...") of the
# certificate a new TLS connection is presented, or nothing when the
# handshake or verification against CAFILE fails.
tls_serial() {
	timeout 10 openssl s_client -connect "$1" -CAfile "$2" \
		-verify_return_error </dev/null 2>/dev/null |
		openssl x509 -noout -serial 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# Helpers of the 8x scenarios: one HTTP exchange kept on disk, the wall
# clock, cache paths.

# rq URL [CURL ARGS...]: one request (--max-time 30 unless given later in
# ARGS); sets RQ_CODE (000: no answer), RQ_RC (curl's exit status),
# RQ_BYTES (body bytes received) and RQ_SECS, and keeps the reply's
# headers in $T_DIR/rq.hdrs and its body in $T_DIR/rq.body.
rq() {
	local url=$1 t0 res
	shift
	rm -f "$T_DIR/rq.hdrs" "$T_DIR/rq.body"
	t0=${EPOCHREALTIME/./}
	RQ_RC=0
	res=$(curl -s --max-time 30 -D "$T_DIR/rq.hdrs" -o "$T_DIR/rq.body" \
		-w '%{http_code} %{size_download}' "$@" "$url") || RQ_RC=$?
	read -r RQ_CODE RQ_BYTES <<<"${res:-000 0}"
	RQ_SECS=$(awk -v d=$((${EPOCHREALTIME/./} - t0)) \
		'BEGIN { printf "%.2f", d / 1e6 }')
	[ -f "$T_DIR/rq.body" ] || : >"$T_DIR/rq.body"
	[ -f "$T_DIR/rq.hdrs" ] || : >"$T_DIR/rq.hdrs"
}

# rq_header NAME: the value of header NAME (any case) in the last rq's
# reply (the last one if repeated), CR stripped; empty when absent.
rq_header() {
	tr -d '\r' <"$T_DIR/rq.hdrs" | awk -v h="$1" 'BEGIN { h = tolower(h) }
		{ i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == h)
			{ v = substr($0, i + 1); sub(/^[ \t]+/, "", v); print v } }' |
		tail -n 1
}

# rq_oci_code: the first OCI error code of the last rq's body, or empty.
rq_oci_code() {
	jq -r '.errors[0].code // empty' "$T_DIR/rq.body" 2>/dev/null || true
}

# rq_sha: the sha256 (hex) of the last rq's body.
rq_sha() { sha256_of "$T_DIR/rq.body"; }

# now_us: the wall clock in microseconds.
now_us() { echo "${EPOCHREALTIME/./}"; }

# clock_reached US: the wall clock has reached US microseconds.
clock_reached() { [ "${EPOCHREALTIME/./}" -ge "$1" ]; }

# wait_clock US: poll until the wall clock reaches US microseconds.
wait_clock() {
	local s=$((($1 - ${EPOCHREALTIME/./}) / 1000000 + 5))
	[ "$s" -gt 5 ] || s=5
	wait_for "$s" clock_reached "$1" ||
		hard_error "the clock did not reach $1"
}

# cache_blob_file CACHEDIR DIGEST: where the cache keeps a blob
# (CACHEDIR/blobs/sha256/ab/abcd...).
cache_blob_file() {
	local hex=${2#sha256:}
	echo "$1/blobs/sha256/${hex:0:2}/$hex"
}

# start_hubfake NAME [hubfake.py options]: exports NAME_URL, NAME_PORT,
# NAME_HOSTPORT (ip:port), NAME_LOG, NAME_PID, NAME_INFO.
start_hubfake() {
	local name=$1 var dir pid host port
	shift
	var=$(echo "$name" | tr 'a-z-' 'A-Z_')
	dir="$T_DIR/hubfake-$name"
	mkdir -p "$dir"
	"$PY" "$T_HERE/hubfake.py" --info-file "$dir/info.json" \
		--seed "$T_NAME-$name" "$@" >>"$dir/hub.log" 2>&1 &
	pid=$!
	register_pid "$pid" "hubfake $name" "$dir/hub.log"
	wait_for 20 test -s "$dir/info.json" ||
		hard_error "hubfake $name did not start"
	host=$(jq -r .host "$dir/info.json")
	port=$(jq -r .port "$dir/info.json")
	printf -v "${var}_PORT" %s "$port"
	printf -v "${var}_HOSTPORT" %s "$host:$port"
	printf -v "${var}_URL" %s "http://$host:$port"
	printf -v "${var}_LOG" %s "$dir/hub.log"
	printf -v "${var}_PID" %s "$pid"
	printf -v "${var}_INFO" %s "$dir/info.json"
}

# mirror_metric ADMIN_URL NAME: counter regmirror_NAME from the mirror's
# /metrics on its admin listener (empty when it has no such counter).
mirror_metric() {
	local body
	# Whole, then awk: a reader that stops early would cut curl off.
	body=$(curl -sf --max-time 10 "$1/metrics") ||
		fail "GET $1/metrics failed"
	awk -v m="regmirror_$2" '$1 == m { print $2 }' <<<"$body"
}

# ---------------------------------------------------------------------------
# A regional tier: members behind Debian's haproxy with the shipped
# deploy/haproxy/regmirror.cfg (ports through its environment variables).

# write_member_conf NAME UPSTREAM_URL [SERVER_LINE...]: $T_DIR/NAME.conf,
# a member with its own port, admin port and cache dir; exports
# NAME_PORT, NAME_ADMIN_PORT, NAME_ADMIN, NAME_CACHE (NAME upper-cased).
write_member_conf() {
	local name=$1 url=$2 var port aport
	shift 2
	var=$(echo "$name" | tr 'a-z-' 'A-Z_')
	port=$(free_port)
	aport=$(free_port)
	write_mirror_base "$T_DIR/$name.conf" "$port" "$T_DIR/cache-$name" 5m \
		"admin_listen = 127.0.0.1:$aport" \
		"trusted_proxies = 127.0.0.1" "$@"
	cat >>"$T_DIR/$name.conf" <<EOC

[upstream "docker.io"]
url = $url
default = yes
EOC
	printf -v "${var}_PORT" %s "$port"
	printf -v "${var}_ADMIN_PORT" %s "$aport"
	printf -v "${var}_ADMIN" %s "http://127.0.0.1:$aport"
	printf -v "${var}_CACHE" %s "$T_DIR/cache-$name"
	export "${var}_PORT" "${var}_ADMIN_PORT" "${var}_ADMIN" "${var}_CACHE"
}

# start_member NAME: start_mirror on $T_DIR/NAME.conf; exports NAME_PID,
# NAME_LOG.
start_member() {
	local var
	var=$(echo "$1" | tr 'a-z-' 'A-Z_')
	start_mirror "$T_DIR/$1.conf" "$1"
	printf -v "${var}_PID" %s "$MIRROR_PID"
	printf -v "${var}_LOG" %s "$MIRROR_LOG"
	export "${var}_PID" "${var}_LOG"
}

_haproxy_up() {
	is_alive "$HAPROXY_PID" || hard_error "haproxy exited during start-up"
	[ "$(http_code "$FRONT_URL/v2/")" = 200 ]
}

# start_haproxy: the shipped config in front of members a, b and c
# (write_member_conf first), on FRONT_PORT (a free port unless set).
# Exports FRONT_PORT, FRONT_URL, FRONT_HOST, HAPROXY_PID, HAPROXY_LOG.
start_haproxy() {
	need haproxy
	: "${FRONT_PORT:=$(free_port)}"
	FRONT_HOST=127.0.0.1:$FRONT_PORT
	FRONT_URL=http://$FRONT_HOST
	HAPROXY_LOG=$T_DIR/haproxy.log
	REGMIRROR_FRONT=$FRONT_HOST \
	REGMIRROR_A=127.0.0.1:$A_PORT REGMIRROR_A_ADMIN_PORT=$A_ADMIN_PORT \
	REGMIRROR_B=127.0.0.1:$B_PORT REGMIRROR_B_ADMIN_PORT=$B_ADMIN_PORT \
	REGMIRROR_C=127.0.0.1:$C_PORT REGMIRROR_C_ADMIN_PORT=$C_ADMIN_PORT \
		haproxy -db -f "$top_srcdir/deploy/haproxy/regmirror.cfg" \
		>>"$HAPROXY_LOG" 2>&1 &
	HAPROXY_PID=$!
	register_pid "$HAPROXY_PID" haproxy "$HAPROXY_LOG"
	export FRONT_PORT FRONT_HOST FRONT_URL HAPROXY_PID HAPROXY_LOG
	wait_for 20 _haproxy_up || hard_error "haproxy did not answer on :$FRONT_PORT"
}

# blob_holders DIGEST: the members (of a b c) whose cache holds DIGEST.
blob_holders() {
	local m out=''
	for m in a b c; do
		local v
		v=$(echo "$m" | tr a-z A-Z)_CACHE
		[ -f "$(cache_blob_file "${!v}" "$1")" ] && out="$out$m"
	done
	echo "${out:--}"
}

# stall_workers URL ADMIN_URL: with the mirror's stderr a pipe nobody
# reads, fill it with access lines (requests to URL until one is not
# answered), then give each worker a request that blocks on its log line
# too, and wait until ADMIN_URL/healthz says stalled.
stall_workers() {
	local url=$1 admin=$2 i
	for i in $(seq 1 2000); do echo "url = \"$url/v2/\""; done \
		>"$T_DIR/urls"
	# (--max-time is per URL: the whole run is bounded by timeout(1).)
	timeout 20 curl -s --max-time 2 -K "$T_DIR/urls" >/dev/null || true
	for i in 1 2 3 4; do	# each worker's next request blocks too
		curl -s -o /dev/null --max-time 2 "$url/v2/" &
		register_pid $! curl
	done
	_stalled() {
		curl -s --max-time 2 "$1/healthz" >"$T_DIR/h.json" 2>/dev/null
		grep -q '"stalled"' "$T_DIR/h.json"
	}
	wait_for 40 _stalled "$admin" ||
		fail "/healthz did not report the blocked workers: $(cat "$T_DIR/h.json")"
}
