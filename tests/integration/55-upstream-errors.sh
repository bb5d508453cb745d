#!/bin/bash
# Upstream faults become clear OCI errors, never a 500, and the daemon
# keeps serving. For a manifest GET by tag and for a blob GET through the
# mirror (upstream section "flaky.test", first_byte = 2s):
#  - upstream 429 (with Retry-After: 1): 429, code TOOMANYREQUESTS, and
#    the upstream's Retry-After;
#  - upstream 503 and 500: 502 or 503, code UNAVAILABLE, the message
#    naming flaky.test;
#  - upstream accepts and never answers: 504, code UNAVAILABLE, the
#    message naming flaky.test, after about first_byte (>= 1.5s, < 15s);
#  - upstream unreachable (section "dead.test", a port nobody listens
#    on): 502, code UNAVAILABLE, the message naming dead.test and saying
#    it cannot connect;
#  - an https endpoint that takes the TCP connection and never answers the
#    TLS handshake: [timeouts] connect (1s) gives up on it: alone
#    ("muteonly.test") a 504 saying it timed out after retries; first of
#    two ("mute.test") the second endpoint answers in under 1.9s;
# and after each fault, once the upstream behaves (or listens) again, the
# same request goes upstream again and returns the right bytes (nothing
# bad was cached), and GET /v2/ still answers 200.
#
# The faults come from fakeupstream.py's Handler, extended inline below
# so that status-N also hits manifests and every blob, plus a "hang"
# mode that reads the request and never answers.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need_regmirror

# One image, a tag per case and a layer per case.
CASES=(s429 s503 s500 hang dead)
mkimage "$T_DIR/img" single --seed t55 --ref v1 \
	--layers 1000,2000,3000,4000,5000
jq --argjson n "${#CASES[@]}" -e '.images[0].layers | length == $n' \
	"$T_DIR/img.json" >/dev/null || hard_error "mkimage: wrong layer count"
# Every case tag names the image's manifest.
jq --args '.manifests += [.manifests[0] as $m | $ARGS.positional[] as $x |
	($m | .annotations["org.opencontainers.image.ref.name"] = "t-" + $x)]' \
	"${CASES[@]}" <"$T_DIR/img/index.json" >"$T_DIR/index.json" ||
	hard_error "could not add the case tags to index.json"
mv "$T_DIR/index.json" "$T_DIR/img/index.json"
MDIGEST=$(layout_top "$T_DIR/img")
mapfile -t LAYERS < <(jq -r '.images[0].layers[].digest' "$T_DIR/img.json")

# The extended fake upstream: fakeupstream.py with status-N on every
# manifest and blob request, and mode "hang".
cat >"$T_DIR/fake55.py" <<'EOPY'
import re, socket, sys, urllib.parse
sys.path.insert(0, sys.argv.pop(1))
import fakeupstream as fu

API = re.compile(r"/v2/.+/(manifests|blobs)/[^/]+")

class Handler(fu.Handler):
    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        mode = self.server.mode
        if API.fullmatch(path) and (mode == "hang" or
                                    mode.startswith("status-")):
            self.count(path)
            if mode == "hang":
                fu.log('fakeupstream "%s %s" hang' % (self.command,
                                                     self.path))
                # Read nothing more, answer nothing: wait for the client
                # to give up (EOF) or for a long time to pass.
                self.close_connection = True
                self.connection.settimeout(60)
                try:
                    while self.connection.recv(4096):
                        pass
                except OSError:
                    pass
                return
            code = int(mode[len("status-"):])
            extra = {"Retry-After": "1"} if code in (429, 503) else None
            self.oci_error(code, "TOOMANYREQUESTS" if code == 429
                           else "UNAVAILABLE", "fault injected", extra)
            return
        super().do_GET()

valid = fu.valid_mode
fu.valid_mode = lambda m: m == "hang" or valid(m)
fu.Handler = Handler
fu.main()
EOPY

# start_fake NAME [options]: the extended fake, as start_fakeupstream
# would start fakeupstream.py (same variables).
start_fake() {
	local name=$1 var dir pid
	shift
	var=$(echo "$name" | tr 'a-z-' 'A-Z_')
	dir="$T_DIR/fake-$name"
	mkdir -p "$dir"
	"$PY" "$T_DIR/fake55.py" "$T_HERE" --info-file "$dir/info.json" \
		--layout "$T_DIR/img" --repo app/x --tag v1 "$@" \
		>>"$dir/fake.log" 2>&1 &
	pid=$!
	register_pid "$pid" "fake $name" "$dir/fake.log"
	wait_for 20 test -s "$dir/info.json" ||
		hard_error "fake upstream $name did not start"
	printf -v "${var}_URL" %s "http://127.0.0.1:$(jq -r .port "$dir/info.json")"
	printf -v "${var}_PID" %s "$pid"
	printf -v "${var}_LOG" %s "$dir/fake.log"
}

start_fake up
DEAD_PORT=$(free_port)
# A listener that accepts connections, keeps them open and never writes.
"$PY" - "$T_DIR/mute.port" <<'EOPY' >>"$T_DIR/mute.log" 2>&1 &
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
held = []
while True:
    c, _ = s.accept()
    held.append(c)
    print("mute: accepted", flush=True)
EOPY
MUTE_PID=$!
register_pid "$MUTE_PID" "mute listener" "$T_DIR/mute.log"
wait_for 10 test -s "$T_DIR/mute.port" || hard_error "the mute listener did not start"
MUTE_PORT=$(cat "$T_DIR/mute.port")

MPORT=$(free_port)
cat >"$T_DIR/mirror.conf" <<EOF
# written by $T_NAME
[server]
listen = 127.0.0.1:$MPORT
workers = 2
log_level = info

[cache]
dir = $T_DIR/cache
tag_ttl = 5m

[timeouts]
connect = 1s
first_byte = 2s
idle = 30s

[upstream "flaky.test"]
url = $UP_URL
default = yes

[upstream "dead.test"]
url = http://127.0.0.1:$DEAD_PORT

# Its first endpoint takes TCP connections and never says a word (no TLS
# handshake); the second is the fake upstream.
[upstream "mute.test"]
url = https://127.0.0.1:$MUTE_PORT
url = $UP_URL

[upstream "muteonly.test"]
url = https://127.0.0.1:$MUTE_PORT
EOF
start_mirror "$T_DIR/mirror.conf"

ACCEPT=(-H 'Accept: application/vnd.oci.image.manifest.v1+json'
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json')

# mreq PATH: GET through the mirror; sets CODE, SECS (elapsed), and the
# files $T_DIR/hdrs and $T_DIR/body.
mreq() {
	local t0 t1
	rm -f "$T_DIR/hdrs" "$T_DIR/body"
	t0=${EPOCHREALTIME/./}
	CODE=$(curl -s --max-time 30 "${ACCEPT[@]}" -D "$T_DIR/hdrs" \
		-o "$T_DIR/body" -w '%{http_code}' "$MIRROR_URL$1") || true
	t1=${EPOCHREALTIME/./}
	[ -f "$T_DIR/body" ] || : >"$T_DIR/body"
	[ -f "$T_DIR/hdrs" ] || : >"$T_DIR/hdrs"
	SECS=$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 1e6 }')
}

header() {
	tr -d '\r' <"$T_DIR/hdrs" | awk -v h="$1" 'BEGIN { h = tolower(h) }
		{ i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == h)
			{ v = substr($0, i + 1); sub(/^[ \t]+/, "", v); print v } }' |
		tail -n 1
}

# expect_error WHAT STATUSES CODE UPNAME [MESSAGE_SUBSTRING]: the last
# reply had one of STATUSES (a regex), an OCI error body whose first code
# is CODE and whose message names UPNAME (and holds the substring).
expect_error() {
	local what=$1 st=$2 code=$3 up=$4 sub=${5:-} c m
	[[ $CODE =~ ^($st)$ ]] ||
		fail "$what: status $CODE, want $st; body: $(head -c 300 "$T_DIR/body")"
	c=$(jq -r '.errors[0].code' "$T_DIR/body" 2>/dev/null) ||
		fail "$what: status $CODE without an OCI error body: $(head -c 300 "$T_DIR/body")"
	m=$(jq -r '.errors[0].message' "$T_DIR/body")
	assert_eq "$code" "$c" "$what: error code"
	[[ $m == *"$up"* ]] ||
		fail "$what: the message does not name upstream $up: $m"
	[ -z "$sub" ] || [[ $m == *"$sub"* ]] ||
		fail "$what: the message does not say '$sub': $m"
	log "$what: $CODE $c \"$m\" (${SECS}s)"
}

# expect_ok WHAT DIGEST: the last reply was a 200 with DIGEST's bytes.
expect_ok() {
	[ "$CODE" = 200 ] ||
		fail "$1: status $CODE, want 200; body: $(head -c 300 "$T_DIR/body" | tr -d '\0')"
	assert_eq "${2#sha256:}" "$(sha256_of "$T_DIR/body")" "$1: sha256 of the body"
}

# count_up URL PATH: requests the fake at URL got for PATH (any of GET,
# HEAD).
count_up() {
	echo $(($(fake_count "$1" "$2" GET) + $(fake_count "$1" "$2" HEAD)))
}

# fault_case I MODE STATUSES CODE [CHECK]: for the manifest tag
# t-CASES[I] and the layer LAYERS[I]: with the fake in MODE, the mirror
# answers the error; with the fake back to ok, the same request goes
# upstream and succeeds. CHECK: retry (Retry-After: 1, the upstream's) or
# timed (after first_byte, well before 15s).
fault_case() {
	local i=$1 mode=$2 st=$3 code=$4 check=${5:-} tag path kind
	local dg c0 c1
	tag=t-${CASES[i]}
	for kind in manifest blob; do
		if [ "$kind" = manifest ]; then
			path=/v2/app/x/manifests/$tag dg=$MDIGEST
		else
			path=/v2/app/x/blobs/${LAYERS[i]} dg=${LAYERS[i]}
		fi
		fake_mode "$UP_URL" "$mode"
		c0=$(count_up "$UP_URL" "$path")
		mreq "$path"
		expect_error "$mode: GET $kind $path" "$st" "$code" flaky.test
		if [ "$check" = retry ]; then
			assert_eq 1 "$(header Retry-After)" \
				"$mode: Retry-After of GET $kind"
		fi
		if [ "$check" = timed ]; then
			awk -v s="$SECS" 'BEGIN { exit !(s >= 1.5 && s < 15) }' ||
				fail "$mode: GET $kind: the $CODE came after ${SECS}s (want 1.5s to 15s with first_byte = 2s)"
		fi
		[ "$(count_up "$UP_URL" "$path")" -gt "$c0" ] ||
			fail "$mode: GET $kind: the mirror did not ask the upstream"
		mirror_alive
		fake_mode "$UP_URL" ok
		c0=$(count_up "$UP_URL" "$path")
		mreq "$path"
		expect_ok "$mode, then ok: GET $kind $path" "$dg"
		c1=$(count_up "$UP_URL" "$path")
		[ "$c1" -gt "$c0" ] ||
			fail "$mode, then ok: GET $kind did not go upstream again (a cached error?)"
		mirror_alive
	done
}

fault_case 0 status-429 429 TOOMANYREQUESTS retry
fault_case 1 status-503 '502|503' UNAVAILABLE
fault_case 2 status-500 '502|503' UNAVAILABLE
fault_case 3 hang 504 UNAVAILABLE timed

# -- unreachable: nothing listens on dead.test's port -------------------------
for kind in manifest blob; do
	if [ "$kind" = manifest ]; then
		path=/v2/dead.test/app/x/manifests/t-dead
	else
		path=/v2/dead.test/app/x/blobs/${LAYERS[4]}
	fi
	mreq "$path"
	expect_error "unreachable: GET $kind $path" 502 UNAVAILABLE dead.test \
		"cannot connect"
	mirror_alive
done
# Something listens there now: the same requests succeed.
start_fake dead --port "$DEAD_PORT"
pid_listens "$DEAD_PID" "$DEAD_PORT" ||
	hard_error "the fake upstream does not own :$DEAD_PORT"
mreq /v2/dead.test/app/x/manifests/t-dead
expect_ok "unreachable, then listening: GET manifest" "$MDIGEST"
mreq "/v2/dead.test/app/x/blobs/${LAYERS[4]}"
expect_ok "unreachable, then listening: GET blob" "${LAYERS[4]}"

# -- connect timeout: TCP accepted, TLS never answered ---------------------------
# One endpoint: after [timeouts] connect (1s), retried while first_byte
# allows, then 504 saying the connect timed out.
mreq /v2/muteonly.test/app/x/manifests/t-mute
expect_error "connect timeout: GET manifest" 504 UNAVAILABLE muteonly.test \
	"timed out"
[ "$(grep -c "mute: accepted" "$T_DIR/mute.log")" -ge 2 ] ||
	fail "connect timeout: no retry after the first connect timed out"
# Two endpoints: the mute one is given up after 1s and the next one
# answers, well before first_byte would have ended the wait.
mreq /v2/mute.test/app/x/manifests/t-s500
expect_ok "connect timeout, second endpoint" "$MDIGEST"
awk -v s="$SECS" 'BEGIN { exit !(s < 1.9) }' ||
	fail "connect timeout: the second endpoint answered after ${SECS}s (want < 1.9s: connect = 1s, first_byte = 2s)"
grep -q "upstream mute.test: connect timed out, retry 1 in 0 ms" "$MIRROR_LOG" ||
	fail "connect timeout: no failover logged"
log "connect timeout: failed over to the second endpoint in ${SECS}s"

# Never a 500, by the mirror's own access lines.
if grep -E ' access r[0-9]+ .*" 500 ' "$MIRROR_LOG" >&2; then
	fail "the mirror answered 500 (above)"
fi
mirror_alive
pass
