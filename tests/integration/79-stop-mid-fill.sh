#!/bin/bash
# SIGINT (stop now) while fills are under way: one stalled halfway (its
# writer thread waiting for bytes that never come) and eight streaming at
# the gate's full speed (their writers hashing, writing, publishing and
# waking events on the worker loops).  Three times, each time with new blobs:
#  - the mirror exits 0 within 10 s and logs no sanitizer report or
#    assertion (the stop used to free the worker loops, then close the
#    index, under writer threads still using both);
#  - nothing is written outside the cache dir; the held fill is failed
#    ("the mirror is stopping"), not left in the fill table;
#  - a restart on the same cache dir finds CACHE/tmp empty (the cut
#    fills' temp files go, as after a crash).
# Then, the upstream's gate released: every blob GETs with the right
# sha256 through the mirror, and `regmirror cache verify` finds the cache
# clean.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo find
need_regmirror

CACHE=$T_DIR/cache
start_registry up
mkimage "$T_DIR/held" raw --seed t79-held --ref v1 --size $((16 * 1048576))
seed_image "$T_DIR/held" v1 "$UP_HOST" app/held:v1
HELD=$(jq -r '.images[0].layers[0].digest' "$T_DIR/held.json")
ROUNDS=3
PER=8
SIZE=$((24 * 1048576))
DGS=()
for ((i = 0; i < ROUNDS * PER; i++)); do
	mkimage "$T_DIR/s$i" raw --seed "t79-s$i" --ref v1 --size "$SIZE"
	seed_image "$T_DIR/s$i" v1 "$UP_HOST" "app/s$i:v1"
	DGS+=("$(jq -r '.images[0].layers[0].digest' "$T_DIR/s$i.json")")
	rm -rf "$T_DIR/s$i"
done
# The held blob's body stops halfway at the gate; the others pass at the
# gate's full speed.
start_fakeupstream gate --proxy "$UP_URL" --mode gate --fault-digest "$HELD" \
	--stall-seconds 120
PORT=$(free_port)
write_mirror_conf "$T_DIR/mirror.conf" "$PORT" "$CACHE" "$GATE_URL"

# tmp_bytes: the bytes of the largest temp file in CACHE/tmp (0: none).
tmp_bytes() {
	find "$CACHE/tmp" -type f -printf '%s\n' 2>/dev/null | sort -n |
		tail -n 1 | grep . || echo 0
}
tmp_files() { find "$CACHE/tmp" -type f 2>/dev/null | wc -l; }
held_logged() {
	[ "$(grep -c "\"GET /v2/app/held/blobs/$HELD\" held mode=gate" \
	    "$GATE_LOG")" -ge "$1" ]
}
# One body all in (its writer verifies and publishes), the others
# streaming; or, missed between two polls, one already stored.
streaming() {
	[ "$(tmp_bytes)" -ge "$SIZE" ] || grep -q ': stored ' "$MIRROR_LOG"
}
exited() { ! is_alive "$MIRROR_PID"; }

# The mirrors run in an empty directory of their own: a writer that
# published after the stop had cleared the cache dir renamed its blob to
# "(null)/blobs/..." under the working directory.
REGMIRROR=$(readlink -f "$REGMIRROR")
mkdir "$T_DIR/cwd"
cd "$T_DIR/cwd" || hard_error "cannot cd to $T_DIR/cwd"
# SIGINT abandons what is in flight (DESIGN: stop now); in a sanitizer
# build the abandoned requests would be reported as leaks at exit.
ASAN_SAVED=${ASAN_OPTIONS-}
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
PUBLISHING=0
for ((i = 0; i < ROUNDS; i++)); do
	log "round $((i + 1)): SIGINT with a held fill and $PER streaming"
	start_mirror "$T_DIR/mirror.conf" "mirror-$i"
	[ "$(tmp_files)" = 0 ] ||
		fail "round $((i + 1)): CACHE/tmp not emptied at start: $(find "$CACHE/tmp" -type f)"
	curl -s -o /dev/null --max-time 60 \
		"$MIRROR_URL/v2/app/held/blobs/$HELD" &
	CURLS=($!)
	wait_for 20 held_logged $((i + 1)) ||
		fail "round $((i + 1)): the gate never held the blob"
	deadline=$(($(now_us) + 30000000))
	for ((j = i * PER; j < (i + 1) * PER; j++)); do
		curl -s -o /dev/null --max-time 60 \
			"$MIRROR_URL/v2/app/s$j/blobs/${DGS[$j]}" &
		CURLS+=($!)
	done
	# Polled more often than wait_for does: a body's publishing (its
	# fsync) is the window that matters most, and it is short.
	until streaming; do
		clock_reached "$deadline" &&
			fail "round $((i + 1)): no streaming fill's body came in"
		sleep 0.005
	done
	kill -INT "$MIRROR_PID"
	wait_for 10 exited ||
		fail "round $((i + 1)): the mirror did not exit within 10 s of SIGINT"
	rc=0
	wait "$MIRROR_PID" || rc=$?
	assert_eq 0 "$rc" "round $((i + 1)): the mirror's exit status after SIGINT"
	grep -q 'stopping now' "$MIRROR_LOG" ||
		fail "round $((i + 1)): no 'stopping now' in the log"
	! grep -nE 'AddressSanitizer|runtime error:|assertion failed|SUMMARY:' \
		"$MIRROR_LOG" ||
		fail "round $((i + 1)): a sanitizer or assertion report in the log"
	[ -z "$(ls -A "$T_DIR/cwd")" ] ||
		fail "round $((i + 1)): the mirror wrote outside its cache dir: $(find "$T_DIR/cwd" | head -n 5)"
	# The held fill is failed by its writer, not left in the table.
	grep -qF "fill $HELD: failed: the mirror is stopping" "$MIRROR_LOG" ||
		fail "round $((i + 1)): the held fill was not failed at the stop"
	wait "${CURLS[@]}" || true	# they end with the mirror
	if grep -qE 'stop: [0-9]+ fill writers? \([1-9][0-9]* with the body in' \
	    "$MIRROR_LOG"; then
		PUBLISHING=$((PUBLISHING + 1))
	fi
done
# How often the narrowest window (a body in, its publishing under way)
# was under the signal; it cannot be forced from outside.
log "$PUBLISHING of $ROUNDS stops came while a fill was publishing"

ASAN_OPTIONS=$ASAN_SAVED
fake_mode "$GATE_URL" ok || hard_error "could not release the gate"
start_mirror "$T_DIR/mirror.conf" mirror-last
assert_eq 0 "$(tmp_files)" "temp files in CACHE/tmp after the restart"
got=$(curl -sf --max-time 60 "$MIRROR_URL/v2/app/held/blobs/$HELD" |
	sha256sum | cut -d' ' -f1) || fail "GET of the held blob failed"
assert_eq "${HELD#sha256:}" "$got" "sha256 of the held blob"
for ((j = 0; j < ROUNDS * PER; j++)); do
	got=$(curl -sf --max-time 60 "$MIRROR_URL/v2/app/s$j/blobs/${DGS[$j]}" |
		sha256sum | cut -d' ' -f1) || fail "GET of blob s$j failed"
	assert_eq "${DGS[$j]#sha256:}" "$got" "sha256 of streamed blob s$j"
done
mirror_alive
"$REGMIRROR" cache verify -c "$T_DIR/mirror.conf" >"$T_DIR/verify.out" 2>&1 ||
	fail "cache verify after the stops: $(tail -n 5 "$T_DIR/verify.out")"
pass
