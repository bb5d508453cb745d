#!/bin/bash
# /readyz and SIGTERM on one member (no balancer):
#  a. 503 "reconciling the cache" until start-up reconcile has finished
#     (a large stray file keeps it busy; a FIFO named like a blob does
#     not hang it and is removed); ready_after_reconcile = no: 200 at once;
#  b. 503 "cache not writable" while the cache's file system is full (a
#     tmpfs the test fills), 200 again once there is room; /healthz stays
#     200 (the process is fine);
#  c. SIGTERM: 503 "draining" at once, replies say Connection: close,
#     the listener closes after drain, exit 0 as soon as nothing is in
#     flight; a second SIGTERM stops a drain at once;
#  d. shutdown_timeout cuts a download that does not finish: exit 0, and
#     the log says what was cut;
#  e. a fill whose client has left holds the exit until it is stored
#     (the upstream is a real registry behind nginx's limit_rate).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo curl jq mount umount truncate mkfifo nginx
need_regmirror
[ "$(id -u)" = 0 ] || hard_error "mounting a tmpfs needs root"

mkimage "$T_DIR/big" raw --size $((16 * 1024 * 1024)) --seed t106 --ref v1
start_registry up
seed_image "$T_DIR/big" v1 "$UP_HOST" app/big:v1
D=$(jq -r '.images[0].layers[0].digest' "$T_DIR/big.json")

reason() { curl -s --max-time 5 "$1/readyz" | jq -r '.reason // "ready"'; }

log "a. reconciling"
stray() {
	local dir=$1/blobs/sha256/ab
	mkdir -p "$dir"
	# Named like a blob, not in the index: reconcile hashes it all.
	truncate -s 8G "$dir/ab$(printf '%062d' 0)"
	mkfifo "$dir/ab$(printf '%062d' 1)"
}
write_member_conf r1 "$UP_URL"
stray "$R1_CACHE"
start_member r1
code=$(http_code "$R1_ADMIN/readyz")
rsn=$(reason "$R1_ADMIN")
grep -q "cache: reconciled" "$R1_LOG" &&
	hard_error "reconcile finished before the first /readyz (stray file too small?)"
assert_eq 503 "$code" "/readyz while reconciling"
assert_eq "reconciling the cache" "$rsn" "/readyz reason while reconciling"
reconciled() { grep -q "cache: reconciled" "$R1_LOG"; }
wait_for 120 reconciled || fail "reconcile did not finish (a FIFO hung it?)"
assert_eq 200 "$(http_code "$R1_ADMIN/readyz")" "/readyz once reconciled"
[ ! -e "$R1_CACHE/blobs/sha256/ab/ab$(printf '%062d' 1)" ] ||
	fail "the FIFO named like a blob was not removed"

write_member_conf r2 "$UP_URL" "ready_after_reconcile = no"
stray "$R2_CACHE"
start_member r2
code=$(http_code "$R2_ADMIN/readyz")
grep -q "cache: reconciled" "$R2_LOG" &&
	hard_error "reconcile finished before the first /readyz (stray file too small?)"
assert_eq 200 "$code" "/readyz while reconciling, ready_after_reconcile = no"

log "b. cache not writable"
FS=$(mktemp -d /tmp/rm106.XXXXXX)
T_EXTRA_DIRS+=("$FS")
mount -t tmpfs -o size=64m tmpfs "$FS" || hard_error "mount tmpfs on $FS"
write_member_conf w "$UP_URL"
sed -i "s|^dir = .*|dir = $FS/cache|" "$T_DIR/w.conf"
start_member w
wait_for 10 test "$(http_code "$W_ADMIN/readyz")" = 200 ||
	fail "/readyz of a writable cache is not 200"
# Full: the probe's one byte does not fit (root ignores modes, so a
# chmod would prove nothing; a read-only remount is refused while the
# index is open for writing).
dd if=/dev/zero of="$FS/filler" bs=1M >/dev/null 2>&1 || true
# (The probe's answer is kept for a second.)
unready() { [ "$(http_code "$W_ADMIN/readyz")" = 503 ]; }
wait_for 3 unready || fail "/readyz is not 503 with the cache file system full"
assert_eq "cache not writable" "$(reason "$W_ADMIN")" "/readyz reason, full"
[ "$(curl -s "$W_ADMIN/readyz" | jq -r '.detail // "none"')" = none ] ||
	fail "/readyz shows the detail (a path) to anyone: $(curl -s "$W_ADMIN/readyz")"
grep -q "readyz: cache not writable: .*No space left on device" "$W_LOG" ||
	fail "the log does not name the error"
assert_eq 200 "$(http_code "$W_ADMIN/healthz")" "/healthz, cache full"
rm -f "$FS/filler"
ready() { [ "$(http_code "$W_ADMIN/readyz")" = 200 ]; }
wait_for 3 ready || fail "/readyz is not 200 once there is room again"
assert_eq 1 "$(grep -c "readyz: cache not writable" "$W_LOG")" \
	"log lines for one cause (not one per check)"

log "c. SIGTERM drains"
write_member_conf t "$UP_URL" "drain = 2s"
start_member t
# Connections that never send a request (a TCP check, a port scan)
# must not hold the drain to their request_head deadline (10 s): one
# closed at once, one left open and silent.
exec 3<>"/dev/tcp/127.0.0.1/$T_PORT" && exec 3>&- 3<&-
exec 4<>"/dev/tcp/127.0.0.1/$T_PORT"
T0=$(now_us)
kill -TERM "$T_PID"
draining() { [ "$(reason "$T_ADMIN")" = draining ]; }
wait_for 1 draining || fail "/readyz does not say draining within 1 s of SIGTERM"
assert_eq 503 "$(http_code "$T_ADMIN/readyz")" "/readyz while draining"
rq "http://127.0.0.1:$T_PORT/v2/"
assert_eq 200 "$RQ_CODE" "GET /v2/ during the drain"
assert_eq close "$(rq_header Connection)" "Connection header during the drain"
# SIGHUPs on the way reload, and do not restart the drain's clock.
closed() {
	kill -HUP "$T_PID" 2>/dev/null || true
	[ "$(http_code "http://127.0.0.1:$T_PORT/v2/")" = 000 ]
}
wait_for 10 closed || fail "the listener did not close after drain"
took=$((($(now_us) - T0) / 1000))
[ "$took" -lt 4500 ] || fail "listener closed ${took} ms after SIGTERM (drain 2 s; SIGHUPs restarted it?)"
exited() { ! is_alive "$1"; }
wait_for 10 exited "$T_PID" || fail "nothing in flight, but no exit after the drain"
rc=0
wait "$T_PID" || rc=$?
assert_eq 0 "$rc" "exit status after the drain"
took=$((($(now_us) - T0) / 1000))
[ "$took" -ge 2000 ] || fail "exited ${took} ms after SIGTERM, before drain (2 s)"
[ "$took" -lt 6000 ] || fail "exited ${took} ms after SIGTERM: silent connections held the drain"
exec 4>&- 4<&-

write_member_conf t2 "$UP_URL" "drain = 60s"
start_member t2
kill -TERM "$T2_PID"
t2_draining() { grep -q "draining: not ready" "$T2_LOG"; }
wait_for 5 t2_draining || fail "no drain on SIGTERM"
kill -TERM "$T2_PID"
wait_for 5 exited "$T2_PID" || fail "a second SIGTERM did not stop the drain"
grep -q "signal 15: stopping now" "$T2_LOG" || fail "no 'stopping now' line"

log "d. shutdown_timeout"
write_member_conf s "$UP_URL" "drain = 0s" "shutdown_timeout = 2s"
start_member s
curl -s --limit-rate 20k -o /dev/null "http://127.0.0.1:$S_PORT/v2/app/big/blobs/$D" &
CURL=$!
register_pid "$CURL" "slow curl"
streaming() { grep -q '"GET /v2/app/big/blobs/' "$S_LOG" ||
	grep -q "fill $D" "$S_LOG" || [ -n "$(ls "$S_CACHE/tmp" 2>/dev/null)" ]; }
wait_for 10 streaming || fail "the slow download did not start"
kill -TERM "$S_PID"
wait_for 15 exited "$S_PID" || fail "shutdown_timeout did not end the drain"
rc=0
wait "$S_PID" || rc=$?
assert_eq 0 "$rc" "exit status after shutdown_timeout"
grep -q "draining: shutdown_timeout: 1 connections" "$S_LOG" ||
	fail "the log does not say the download was cut"

log "e. a fill without clients holds the exit"
NPORT=$(free_port)
mkdir -p "$T_DIR/nginx-slow"
cat >"$T_DIR/nginx-slow/nginx.conf" <<EOC
worker_processes 1;
error_log logs/error.log;
pid nginx.pid;
events { worker_connections 64; }
http {
	access_log off;
	server {
		listen 127.0.0.1:$NPORT;
		location / {
			proxy_pass $UP_URL;
			limit_rate 2m;
		}
	}
}
EOC
start_nginx slow "$T_DIR/nginx-slow/nginx.conf" "$NPORT"
write_member_conf f "http://127.0.0.1:$NPORT" "drain = 0s" "shutdown_timeout = 60s"
start_member f
curl -s -o /dev/null "http://127.0.0.1:$F_PORT/v2/app/big/blobs/$D" &
FCURL=$!
filling() { [ -n "$(ls "$F_CACHE/tmp" 2>/dev/null)" ]; }
wait_for 10 filling || fail "the slow fill did not start"
kill -TERM "$F_PID"
f_closed() { [ "$(http_code "http://127.0.0.1:$F_PORT/v2/")" = 000 ]; }
wait_for 5 f_closed || fail "the listener did not close (drain 0s)"
kill "$FCURL" 2>/dev/null || true
wait "$FCURL" 2>/dev/null || true
# 16 MiB at 2 MB/s: the fill runs on for seconds without its client.
grep -q "fill $D: stored" "$F_LOG" && fail "the fill ended before its client left (too fast to test)"
is_alive "$F_PID" || fail "the member exited with a fill in flight"
wait_for 30 exited "$F_PID" || fail "no exit after the fill"
rc=0
wait "$F_PID" || rc=$?
assert_eq 0 "$rc" "exit status after the fill"
awk '/fill .*: stored/ { s = NR } /drained: shutting down/ { d = NR }
	END { exit !(s && d && s < d) }' "$F_LOG" ||
	fail "the member did not wait for the fill to be stored before exiting"
[ -f "$(cache_blob_file "$F_CACHE" "$D")" ] || fail "the fill was not stored"
pass
