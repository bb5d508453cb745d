#!/bin/bash
# The cache directory belongs to one daemon at a time, and start-up clears
# what an earlier run left half-written:
#  (a) a second `regmirror serve` on the same cache dir (another port)
#      exits non-zero within 10s, saying on stderr that the directory is
#      in use (and naming it); the first keeps serving (/v2/ and a cached
#      blob, with no upstream request);
#  (b) after the mirror stops, files dropped into CACHE/tmp/ are gone once
#      it has started again on the same dir, and it still serves the blobs
#      it had cached: right sha256, src=hit, no upstream request;
#  (c) a second `regmirror serve` on the same port (another cache dir)
#      exits non-zero saying the address is in use, and only the first
#      listens there (its workers' SO_REUSEPORT sockets admit no other
#      process).
# (check-config's FILE:LINE for unknown keys is 05-check-config's.)
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need skopeo docker-registry
need_regmirror

mkimage "$T_DIR/img" single --seed t16 --ref v1 --layers 5000,200000
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/y:v1

CACHE=$T_DIR/cache
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$CACHE" "$UP_URL"
start_mirror "$T_DIR/mirror.conf" mirror1
FIRST_PID=$MIRROR_PID

# The layers and the config: fetched once through the mirror.
mapfile -t BLOBS < <(jq -r '.images[0] | .layers[].digest, .config.digest' \
	"$T_DIR/img.json")
[ "${#BLOBS[@]}" -ge 2 ] || hard_error "img.json lists no blobs"

# bget DIGEST WHAT: GET a blob through the mirror; 200 and the right
# sha256.
bget() {
	local code
	code=$(curl -s --max-time 20 -o "$T_DIR/body" -w '%{http_code}' \
		"$MIRROR_URL/v2/app/y/blobs/$1") || true
	assert_eq 200 "$code" "$2: status of GET blob $1"
	assert_eq "${1#sha256:}" "$(sha256_of "$T_DIR/body")" \
		"$2: sha256 of blob $1"
}

for d in "${BLOBS[@]}"; do
	bget "$d" "first GET"
done

# logged_hit FROM DIGEST: the mirror's log has, after line FROM, a 200
# GET of the blob served from the cache.
logged_hit() {
	tail -n +"$(($1 + 1))" "$MIRROR_LOG" |
		grep -qE "\"GET /v2/app/y/blobs/$2\" 200 .* src=hit\$"
}

# cached_hits WHAT: every blob is a hit now, with no upstream request.
cached_hits() {
	local mark mmark d
	registry_log_sync up
	mark=$(log_mark "$UP_LOG")
	mmark=$(log_mark "$MIRROR_LOG")
	for d in "${BLOBS[@]}"; do
		bget "$d" "$1"
		# the access line is written once the reply is finished
		wait_for 5 logged_hit "$mmark" "$d" ||
			fail "$1: GET blob $d is not logged as a hit: $(tail -n +"$((mmark + 1))" "$MIRROR_LOG" | grep -F "$d" | tail -n 1)"
	done
	registry_log_sync up
	assert_eq 0 "$(count_upstream_requests "$UP_LOG" /v2/app/y/ "$mark")" \
		"$1: upstream requests for app/y"
}

# -- (a) a second daemon on the same cache dir --------------------------------
sed "s/^listen = .*/listen = 127.0.0.1:$(free_port)/" "$T_DIR/mirror.conf" \
	>"$T_DIR/mirror2.conf"
cmp -s "$T_DIR/mirror.conf" "$T_DIR/mirror2.conf" &&
	hard_error "could not change the port for the second daemon"
t0=${EPOCHREALTIME/./}
"$REGMIRROR" serve -c "$T_DIR/mirror2.conf" >"$T_DIR/second.out" \
	2>"$T_DIR/second.err" &
SECOND_PID=$!
register_pid "$SECOND_PID" "second regmirror" "$T_DIR/second.err"
second_gone() { ! is_alive "$SECOND_PID"; }
wait_for 10 second_gone ||
	fail "a second regmirror on the same cache dir still runs after 10s"
rc=0
wait "$SECOND_PID" || rc=$?
log "second daemon: exit $rc after $(((${EPOCHREALTIME/./} - t0) / 1000))ms: $(head -c 300 "$T_DIR/second.err")"
[ "$rc" -ne 0 ] || fail "a second regmirror on the same cache dir exited 0"
grep -qi 'in use' "$T_DIR/second.err" ||
	fail "the second regmirror's stderr does not say the dir is in use: $(head -c 500 "$T_DIR/second.err")"
grep -qF "$CACHE" "$T_DIR/second.err" ||
	fail "the second regmirror's stderr does not name $CACHE: $(head -c 500 "$T_DIR/second.err")"
# The first one is unaffected.
assert_eq "$FIRST_PID" "$MIRROR_PID" "pid of the first mirror"
mirror_alive
cached_hits "first mirror, after the second one gave up"

# -- (c) a second daemon on the same port (another cache dir) -------------
# Each worker listens on its own socket of a SO_REUSEPORT group: another
# regmirror of the same user must still be refused the port, never given
# a share of its connections.
sed "s|^dir = .*|dir = $T_DIR/cache-other|" "$T_DIR/mirror.conf" \
	>"$T_DIR/mirror3.conf"
rc=0
timeout 20 "$REGMIRROR" serve -c "$T_DIR/mirror3.conf" >"$T_DIR/third.out" \
	2>"$T_DIR/third.err" || rc=$?
log "daemon on a taken port: exit $rc: $(grep -i 'in use' "$T_DIR/third.err" | head -c 300)"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] ||
	fail "a second regmirror on port $MIRROR_PORT did not exit non-zero at once (exit $rc)"
grep -q "bind 127.0.0.1:$MIRROR_PORT: Address already in use" \
	"$T_DIR/third.err" ||
	fail "the second regmirror does not say its port is in use: $(head -c 500 "$T_DIR/third.err")"
[ "$(ss -Hltnp "( sport = :$MIRROR_PORT )" | grep -vc "pid=$FIRST_PID,")" = 0 ] ||
	fail "another process listens on :$MIRROR_PORT: $(ss -Hltnp "( sport = :$MIRROR_PORT )")"
mirror_alive

# -- (b) leftovers in tmp/ are removed at start-up ----------------------------
stop_pid "$MIRROR_PID" || log "the first mirror needed KILL to stop"
is_alive "$MIRROR_PID" && hard_error "the first mirror is still running"
[ -d "$CACHE/tmp" ] || fail "the cache has no tmp/ dir: $(ls "$CACHE")"
LEFT=("$CACHE/tmp/abc.partial" "$CACHE/tmp/${BLOBS[0]:7:16}.Xy12Z9"
	"$CACHE/tmp/empty")
head -c 12345 /dev/urandom >"${LEFT[0]}"
head -c 100 /dev/urandom >"${LEFT[1]}"
: >"${LEFT[2]}"
start_mirror "$T_DIR/mirror.conf" mirror2
[ "$MIRROR_PID" != "$FIRST_PID" ] || hard_error "start_mirror kept the old pid"

left_gone() {
	local f
	for f in "${LEFT[@]}"; do [ ! -e "$f" ] || return 1; done
}
wait_for 10 left_gone ||
	fail "leftover files still in $CACHE/tmp after start-up: $(ls -A "$CACHE/tmp" | tr '\n' ' ')"
cached_hits "restarted mirror"
mirror_alive
pass
