#!/bin/bash
# regmirror as a systemd Type=notify service, seen from systemd's side:
# the test owns the unix datagram socket NOTIFY_SOCKET names
# (notifysock.py) and reads what `regmirror serve` tells it.
#  1. READY=1 only once the listeners are bound: when it arrives, the log
#     already says "listening on" and GET /v2/ answers 200; STATUS=
#     "starting: ..." comes before it and READY carries "serving with 2
#     workers"; a manifest of the real upstream (docker-registry) is
#     served.  WATCHDOG_USEC=500000: WATCHDOG=1 pings keep coming.
#     SIGHUP: RELOADING=1 (with MONOTONIC_USEC) then READY=1.  SIGTERM:
#     STOPPING=1, then the drain's STATUS=, no ping after it, exit 0.
#  2. A stalled worker (68-health-stall's mechanism: stderr a pipe nobody
#     reads) stops the pings, so systemd's WatchdogSec would restart the
#     service; once the workers run again the pings resume.
# Built without libsystemd (configure --without-systemd, as .ci/run's
# ASan build is) the notify calls are no-ops: then the test checks that
# the mirror serves, reloads and stops with exit 0 and sends nothing.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo mkfifo
need_regmirror
# make check says how regmirror was configured; run by hand, ldd does.
if [ -z "${REGMIRROR_SYSTEMD:-}" ]; then
	REGMIRROR_SYSTEMD=no
	ldd "$REGMIRROR" | grep -q 'libsystemd\.so' && REGMIRROR_SYSTEMD=yes
fi

mkimage "$T_DIR/img" single --seed t110 --ref v1 --layers 1000,20000
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/img:v1

# start_notify NAME [notifysock.py options]: the socket $T_DIR/NAME.sock,
# its datagrams in $T_DIR/NAME.out (N_SOCK, N_OUT).
start_notify() {
	local name=$1
	shift
	N_SOCK="$T_DIR/$name.sock" N_OUT="$T_DIR/$name.out"
	: >"$N_OUT"
	"$PY" "$T_HERE/notifysock.py" --socket "$N_SOCK" --out "$N_OUT" "$@" \
		>>"$T_DIR/$name.log" 2>&1 &
	register_pid $! "notifysock $name" "$N_OUT"
	wait_for 20 test -S "$N_SOCK" || hard_error "notifysock $name did not bind"
}

# lines_with FIELD [FROM]: the line numbers (after line FROM) of datagrams
# with the assignment FIELD (e.g. READY=1), one per line.
lines_with() {
	awk -F'\t' -v f="$1" -v from="${2:-0}" 'NR > from {
		for (i = 2; i <= NF; i++) if ($i == f) { print NR; break }
	}' "$N_OUT"
}
count_with() { lines_with "$@" | wc -l; }
has_at_least() { [ "$(count_with "$1" "${3:-0}")" -ge "$2" ]; }
first_with() { lines_with "$@" | head -n 1; }
line_of() { sed -n "${1}p" "$N_OUT"; }
nlines() { wc -l <"$N_OUT"; }
# sync_notify: a marker datagram of our own; once it is in N_OUT, every
# datagram sent before it is too (a datagram socket keeps the order).
sync_notify() {
	local m="X_TEST_MARK=$RANDOM$RANDOM"
	"$PY" "$T_HERE/notifysock.py" --send "$N_SOCK" "$m"
	wait_for 10 grep -qF "$m" "$N_OUT" || hard_error "marker not received"
}

# serve NAME CONF STDERR: regmirror serve under "systemd" (M_PID).
serve() {
	NOTIFY_SOCKET="$N_SOCK" WATCHDOG_USEC=500000 \
		"$REGMIRROR" serve -c "$2" >/dev/null 2>"$3" &
	M_PID=$!
	register_pid "$M_PID" "regmirror $1"
}

# stop_and_check: SIGTERM; exit 0 within 20 s.
stop_and_check() {
	local rc=0
	kill -TERM "$M_PID"
	wait_for 20 eval '! is_alive "$M_PID"' || fail "no exit 20 s after SIGTERM"
	wait "$M_PID" || rc=$?
	assert_eq 0 "$rc" "regmirror's exit status after SIGTERM"
}

PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
write_mirror_conf "$T_DIR/m1.conf" "$PORT" "$T_DIR/cache1" "$UP_URL"
# SIGTERM drains: not ready at once, listeners close after drain.
sed -i "s|^listen = 127.0.0.1:$PORT|&\ndrain = 1s|" "$T_DIR/m1.conf"
LOG="$T_DIR/m1.log"
T_LOGS+=("$LOG")
start_notify n1 --probe "$URL/v2/" --log "$LOG"
serve m1 "$T_DIR/m1.conf" "$LOG"
up() { [ "$(http_code "$URL/v2/")" = 200 ]; }

if [ "$REGMIRROR_SYSTEMD" != yes ]; then
	log "built without libsystemd: the notify calls must be no-ops"
	wait_for 20 up || fail "the mirror did not start"
	kill -HUP "$M_PID"
	wait_for 10 grep -q 'SIGHUP' "$LOG" || fail "SIGHUP not handled"
	up || fail "the mirror stopped serving after SIGHUP"
	stop_and_check
	sync_notify
	assert_eq 1 "$(nlines)" "datagrams (only the test's marker)"
	pass
fi

# -- 1. READY=1, STATUS=, WATCHDOG=1, SIGHUP, SIGTERM -------------------------
wait_for 20 has_at_least READY=1 1 || fail "no READY=1 within 20 s"
r=$(first_with READY=1)
# The line after READY=1: what notifysock saw the moment it arrived.
wait_for 10 eval '[ "$(nlines)" -gt "$r" ]' || hard_error "no probe line"
probe=$(line_of $((r + 1)))
case "$probe" in
*LOG_LISTENING=yes*PROBE=200*) ;;
*) fail "at READY=1 the mirror was not serving yet: $probe" ;;
esac
line_of "$r" | grep -qF 'STATUS=serving with 2 workers' ||
	fail "READY=1 without its status: $(line_of "$r")"
s=$(lines_with 'STATUS=starting: opening the cache in '"$T_DIR/cache1" |
	head -n 1)
[ -n "$s" ] && [ "$s" -lt "$r" ] ||
	fail "no STATUS=starting before READY=1: $(cat "$N_OUT")"
assert_eq 1 "$(count_with READY=1)" "READY=1 datagrams at start-up"
# Serving for real: a manifest from the docker-registry upstream.
assert_eq 200 "$(http_code "$URL/v2/app/img/manifests/v1" \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json')" \
	"manifest through the mirror"

# WATCHDOG_USEC=500000: a ping every 250 ms.
from=$(nlines)
wait_for 10 has_at_least WATCHDOG=1 3 "$from" ||
	fail "fewer than 3 WATCHDOG=1 in 10 s: $(count_with WATCHDOG=1 "$from")"

from=$(nlines)
kill -HUP "$M_PID"
wait_for 10 eval '[ -n "$(first_with RELOADING=1 "$from")" ]' ||
	fail "SIGHUP: no RELOADING=1"
rl=$(first_with RELOADING=1 "$from")
line_of "$rl" | grep -qE $'\tMONOTONIC_USEC=[0-9]+' ||
	fail "RELOADING=1 without MONOTONIC_USEC: $(line_of "$rl")"
line_of "$rl" | grep -qF 'STATUS=reloading' || fail "no STATUS=reloading"
wait_for 10 eval '[ -n "$(first_with READY=1 "$rl")" ]' ||
	fail "SIGHUP: no READY=1 after RELOADING=1"
# RELOADING=1 first, then READY=1 (none in between from before).
assert_eq "$(first_with READY=1 "$rl")" "$(first_with READY=1 "$from")" \
	"the first READY=1 after SIGHUP follows RELOADING=1"
up || fail "the mirror stopped serving after SIGHUP"
from=$(nlines)
wait_for 10 has_at_least WATCHDOG=1 2 "$from" || fail "no pings after SIGHUP"

from=$(nlines)
stop_and_check
sync_notify
st=$(first_with STOPPING=1 "$from")
[ -n "$st" ] || fail "SIGTERM: no STOPPING=1: $(tail -n 5 "$N_OUT")"
line_of "$st" | grep -qF 'STATUS=stopping' || fail "no STATUS=stopping"
# Then the drain says where it is; no pings while it lasts (systemd stops
# the watchdog of a unit that is stopping).
[ -n "$(first_with 'STATUS=draining: not ready, listeners close in 1 s' \
	"$st")" ] || fail "no draining status after STOPPING=1"
assert_eq 0 "$(count_with WATCHDOG=1 "$st")" "WATCHDOG=1 after STOPPING=1"

# -- 2. a stalled worker stops the pings -------------------------------------
# stderr is a pipe the test holds open without reading (68-health-stall):
# once its 64 KiB are full of access lines every worker blocks in
# write(2).  /healthz (the jobs' loop) tells when they count as stalled.
PORT=$(free_port)
APORT=$(free_port)
URL="http://127.0.0.1:$PORT"
ADMIN="http://127.0.0.1:$APORT"
write_mirror_conf "$T_DIR/m2.conf" "$PORT" "$T_DIR/cache2" "$UP_URL"
sed -i "s|^listen = 127.0.0.1:$PORT|&\nadmin_listen = 127.0.0.1:$APORT|" \
	"$T_DIR/m2.conf"
sed -i "s|^listen = 127.0.0.1:$PORT|&\ndrain = 1s|" "$T_DIR/m2.conf"
start_notify n2
mkfifo "$T_DIR/stderr"
exec 3<>"$T_DIR/stderr"		# held open, not read: the pipe fills
serve m2 "$T_DIR/m2.conf" "$T_DIR/stderr"
wait_for 20 has_at_least READY=1 1 || fail "m2: no READY=1 within 20 s"
wait_for 20 up || fail "m2 does not serve"
from=$(nlines)
wait_for 10 has_at_least WATCHDOG=1 3 "$from" || fail "m2: no pings"

stall_workers "$URL" "$ADMIN"
# quiet SECONDS: no WATCHDOG=1 received for that long (systemd, with
# WatchdogSec=0.5s, would have restarted the service by then).
quiet() {
	local last
	last=$(awk -F'\t' '$2 == "WATCHDOG=1" { t = $1 } END { print t }' \
		"$N_OUT")
	awk -v l="$last" -v now="$EPOCHREALTIME" -v q="$1" \
		'BEGIN { exit !(now - l > q) }'
}
wait_for 10 quiet 2 || fail "WATCHDOG=1 still sent with a stalled worker"
is_alive "$M_PID" || fail "m2 died"
grep -qE $'\tSTATUS=worker [0-9]+ stalled: no watchdog pings' "$N_OUT" ||
	fail "no STATUS= naming the stalled worker"

# Reading the pipe again lets the workers run: the pings come back.
cat <&3 >>"$T_DIR/m2.log" &
register_pid $! drain "$T_DIR/m2.log"
from=$(nlines)
wait_for 30 has_at_least WATCHDOG=1 3 "$from" ||
	fail "the pings did not resume once the workers ran"
wait_for 10 eval 'grep -q "watchdog: worker .* every worker runs again" \
	"$T_DIR/m2.log"' ||
	fail "no log line for the recovery"
assert_eq "STATUS=serving with 2 workers" \
	"$(awk -F'\t' '$2 ~ /^STATUS=/ { s = $2 } END { print s }' "$N_OUT")" \
	"the last status once the workers run again"
from=$(nlines)
stop_and_check
sync_notify
[ -n "$(first_with STOPPING=1 "$from")" ] || fail "m2: no STOPPING=1"
pass
