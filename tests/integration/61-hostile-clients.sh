#!/bin/bash
# Hostile clients (docs/SECURITY.md, "clients"): bytes that once aborted
# the daemon, slow and silent connections, connection floods.
#  a. Bytes: ?ns=%ff, a 600-byte multibyte ns cut by the message buffer,
#     control bytes and invalid UTF-8 in a name: OCI error JSON that
#     parses, the daemon alive, no raw control byte in its log.
#  b. TLS keep-alive: 20 requests on one HTTPS connection take far less
#     than the ~40 ms each that Nagle + delayed ACK cost (TCP_NODELAY).
#  c. Slowloris: a head sent a byte every 0.5 s is cut at [timeouts]
#     request_head (2 s here; idle is 30 s), plain and TLS; a TLS client
#     that never says hello is cut at tls_handshake; a normal client is
#     served meanwhile.
#  d. Caps: max_connections_per_client = 4: the 5th connection from an
#     address gets 503 "too many connections", another address connects;
#     max_connections = 8 holds across addresses; once the held
#     connections close, new ones are accepted again.
#  e. Out of descriptors: the daemon run with `ulimit -n 64` and a flood
#     of 200 connections pauses accepting (it does not spin: its CPU time
#     stays low), logs fewer than 100 lines, and serves a normal client
#     once the flood's connections are gone.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry openssl
need_regmirror

RAW="$PY $T_HERE/rawclient.py"
served() { [ "$(http_code "$MIRROR_URL/v2/")" = 200 ]; }
start_registry up
CA="$T_DIR/ca"
make_test_ca "$CA"
make_server_cert "$CA" "$T_DIR/srv" 6101
TLSPORT=$(free_port)
write_mirror_base "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" 5m \
	"tls_cert = $T_DIR/srv.crt" "tls_key = $T_DIR/srv.key" \
	"tls_listen = 127.0.0.1:$TLSPORT" \
	"max_connections = 8" "max_connections_per_client = 4"
sed -i 's/^idle = .*/idle = 30s\nrequest_head = 2s\ntls_handshake = 2s/' \
	"$T_DIR/mirror.conf"
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "docker.io"]
url = $UP_URL
default = yes
EOF
start_mirror "$T_DIR/mirror.conf"
TLS_URL="https://127.0.0.1:$TLSPORT"

# -- a. bytes ----------------------------------------------------------------
oci_error() { # NAME STATUS CURL_ARGS...: that status and an OCI error body
	local name=$1 want=$2
	shift 2
	rq "$@"
	assert_eq "$want" "$RQ_CODE" "$name: status"
	jq -e '.errors[0].code' "$T_DIR/rq.body" >/dev/null ||
		fail "$name: not an OCI error body: $(head -c 200 "$T_DIR/rq.body")"
	mirror_alive
}
oci_error 'ns=%ff' 404 "$MIRROR_URL/v2/x/manifests/latest?ns=%ff"
jq -r '.errors[0].message' "$T_DIR/rq.body" | grep -qF '\xff' ||
	fail "the byte 0xff is not escaped in the message"
long=$(printf '%%C3%%A9%.0s' $(seq 300))
oci_error 'multibyte ns cut at the buffer' 404 \
	"$MIRROR_URL/v2/x/manifests/latest?ns=$long"
oci_error 'control bytes in ns' 404 \
	"$MIRROR_URL/v2/x/manifests/latest?ns=%1b%5b31m%0d%0aforged%20line"
oci_error 'invalid UTF-8 prefix' 404 --path-as-is \
	"$MIRROR_URL/%ff%fe/v2/x/manifests/latest"
! grep -q $'\x1b' "$MIRROR_LOG" || fail "an escape byte reached the log"
! grep -q '^forged line' "$MIRROR_LOG" || fail "a forged line in the log"

# -- b. TLS keep-alive -----------------------------------------------------------
urls=()
for i in $(seq 20); do urls+=(-o /dev/null "$TLS_URL/v2/"); done
out=$(curl -s --cacert "$CA/ca.crt" \
	-w '%{http_code} %{num_connects} %{time_total}\n' "${urls[@]}")
[ "$(grep -c '^200 ' <<<"$out")" = 20 ] || fail "TLS requests: $out"
# One connection for all (num_connects is 0 on reuse).
[ "$(awk '{ n += $2 } END { print n }' <<<"$out")" = 1 ] ||
	fail "the 20 requests did not share one connection: $out"
# The 19 requests after the first: well under 40 ms each (Nagle's stall).
slow=$(awk 'NR > 1 && $3 > 0.030 { n++ } END { print n + 0 }' <<<"$out")
total=$(awk 'NR > 1 { t += $3 } END { printf "%.3f", t }' <<<"$out")
log "19 kept-alive TLS requests: ${total}s, $slow over 30 ms"
[ "$slow" -le 2 ] || fail "$slow of 19 kept-alive TLS requests took over 30 ms (total ${total}s)"

# -- c. slow and silent clients ------------------------------------------------
res=$($RAW slow 127.0.0.1 "$MIRROR_PORT" --interval 0.5 --max-seconds 15)
log "slowloris, plain: $res"
case $res in
closed-after*) t=${res#closed-after }
	awk -v t="$t" 'BEGIN { exit !(t >= 1.5 && t <= 6) }' ||
		fail "slow head closed after ${t}s, want about request_head (2s)" ;;
*) fail "a head dribbled a byte every 0.5 s was not cut: $res" ;;
esac
res=$($RAW slow 127.0.0.1 "$TLSPORT" --tls --interval 0.5 --max-seconds 15)
log "slowloris, TLS: $res"
[[ $res == closed-after* ]] || fail "TLS slow head not cut: $res"
res=$($RAW silent 127.0.0.1 "$TLSPORT" --max-seconds 15)
log "silent TLS client: $res"
[[ $res == closed-after* ]] || fail "a TLS client without a hello was not cut: $res"
mirror_alive
[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA/ca.crt" \
	"$TLS_URL/v2/")" = 200 ] || fail "HTTPS /v2/ after the slow clients"

# -- d. caps ---------------------------------------------------------------------
# A fresh mirror whose deadlines do not close the held connections.
stop_pid "$MIRROR_PID"
sed -i 's/^request_head = .*/request_head = 60s/' "$T_DIR/mirror.conf"
start_mirror "$T_DIR/mirror.conf" capmirror
# hold NAME N SOURCE: N idle connections from SOURCE, held by a process.
hold() {
	$RAW hold 127.0.0.1 "$MIRROR_PORT" "$2" --source "$3" \
		--state "$T_DIR/$1.json" >>"$T_DIR/raw.log" 2>&1 &
	register_pid $! "hold $1"
	eval "${1}_PID=$!"
	wait_for 20 test -s "$T_DIR/$1.json" || fail "hold $1 did not report"
}
hold a 5 127.0.0.2
assert_eq 4 "$(jq .open "$T_DIR/a.json")" "connections kept from 127.0.0.2"
jq -r '.status[0]' "$T_DIR/a.json" | grep -q '^HTTP/1.1 503' ||
	fail "5th connection from one address: $(cat "$T_DIR/a.json")"
hold b 5 127.0.0.3
assert_eq 4 "$(jq .open "$T_DIR/b.json")" "connections kept from 127.0.0.3"
hold c 1 127.0.0.4
assert_eq 0 "$(jq .open "$T_DIR/c.json")" "a 9th connection (max_connections = 8)"
grep -q 'client connection refused: over \[server\] max_connections' \
	"$MIRROR_LOG" || fail "no warning for refused connections"
stop_pid "$a_PID"
stop_pid "$b_PID"
stop_pid "$c_PID"
# The held ones are gone: new connections get in again (those that
# closed before a request are counted until noticed, at most request_head).
wait_for 10 served ||
	fail "not serving after the held connections closed"
mirror_alive
stop_pid "$MIRROR_PID"

# -- e. out of descriptors ----------------------------------------------------
write_mirror_base "$T_DIR/fd.conf" "$(free_port)" "$T_DIR/cache" 5m \
	"max_connections = 100000" "max_connections_per_client = 0"
sed -i 's/^idle = .*/idle = 30s\nrequest_head = 3s/' "$T_DIR/fd.conf"
cat >>"$T_DIR/fd.conf" <<EOF

[upstream "docker.io"]
url = $UP_URL
default = yes
EOF
cat >"$T_DIR/lowfd.sh" <<EOF
#!/bin/sh
ulimit -n 64
exec "$REGMIRROR" "\$@"
EOF
chmod +x "$T_DIR/lowfd.sh"
REGMIRROR="$T_DIR/lowfd.sh" start_mirror "$T_DIR/fd.conf" fdmirror
lines0=$(wc -l <"$MIRROR_LOG")
cpu() { awk '{ print $14 + $15 }' "/proc/$MIRROR_PID/stat"; }
$RAW flood 127.0.0.1 "$MIRROR_PORT" 200 --state "$T_DIR/flood.json" \
	>>"$T_DIR/raw.log" 2>&1 &
register_pid $! flood
FLOOD_PID=$!
wait_for 60 test -s "$T_DIR/flood.json" || fail "the flood did not report"
log "flood: $(cat "$T_DIR/flood.json")"
grep -q 'accept: Too many open files' "$MIRROR_LOG" ||
	fail "the descriptor limit was not reached"
# While the flood holds every descriptor: no spinning.  (CPU ticks over
# the time it takes 40 polls of /v2/, which fail.)
c0=$(cpu)
for i in $(seq 20); do http_code "$MIRROR_URL/v2/" --max-time 0.1 >/dev/null; done
c1=$(cpu)
log "CPU ticks while out of descriptors: $((c1 - c0))"
[ $((c1 - c0)) -lt 100 ] || fail "the daemon spins at the descriptor limit ($((c1 - c0)) ticks)"
stop_pid "$FLOOD_PID"
wait_for 20 served ||
	fail "not serving once the flood's connections closed"
mirror_alive
lines=$(($(wc -l <"$MIRROR_LOG") - lines0))
log "log lines during the flood: $lines"
[ "$lines" -lt 100 ] || fail "$lines log lines for one descriptor flood"
pass
