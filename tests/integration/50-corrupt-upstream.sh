#!/bin/bash
# An upstream that corrupts a byte of a blob, truncates it or resets the
# connection mid-body (fakeupstream.py; headers always correct): a client
# of the mirror never receives a complete-looking body, nothing lands in
# the cache's blobs/, and the next GET goes upstream again. Once the
# upstream behaves, the blob is served and cached.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need_regmirror

SIZE=4000000
start_fakeupstream up --mode corrupt --blob-size "$SIZE" --repo fault/blob
DG=$(jq -r .blob.digest "$UP_INFO")
HEX=${DG#sha256:}
BLOB=/v2/fault/blob/blobs/$DG
CACHE=$T_DIR/cache

write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$CACHE" "$UP_URL"
start_mirror "$T_DIR/mirror.conf"

# cached_files: files under the cache's blobs/ named after the digest.
cached_files() {
	find "$CACHE/blobs" -name "*$HEX*" 2>/dev/null || true
}

has_cached_file() { [ -n "$(cached_files)" ]; }

# get_faulty WHAT: one client GET through the mirror while the upstream
# misbehaves; checks that no complete-looking body got through.
get_faulty() {
	local what=$1 rc=0 res code bytes cl sum
	rm -f "$T_DIR/body" "$T_DIR/hdrs"
	res=$(curl -s --max-time 60 -D "$T_DIR/hdrs" -o "$T_DIR/body" \
		-w '%{http_code} %{size_download}' "$MIRROR_URL$BLOB") || rc=$?
	read -r code bytes <<<"$res"
	[ -f "$T_DIR/body" ] || : >"$T_DIR/body"
	sum=$(sha256_of "$T_DIR/body")
	log "$what: curl exit $rc, status $code, $bytes bytes"
	[ "$sum" != "$HEX" ] ||
		fail "$what: the client got the correct body from a faulty upstream?"
	case $code in
	200)
		cl=$(tr -d '\r' <"$T_DIR/hdrs" |
			sed -n 's/^[Cc]ontent-[Ll]ength:[[:space:]]*//p' | tail -n 1)
		assert_eq "$SIZE" "$cl" "$what: Content-Length of the 200"
		[ "$bytes" -lt "$SIZE" ] ||
			fail "$what: the client received a full-length body ($bytes bytes, curl exit $rc) with the wrong sha256"
		[ "$rc" != 0 ] ||
			fail "$what: curl saw a complete response"
		;;
	502 | 503 | 504)
		jq -e '.errors[0].code | strings' "$T_DIR/body" >/dev/null ||
			fail "$what: status $code without an OCI error body"
		;;
	*)
		fail "$what: status $code (want 200 cut short, or 502/503/504)"
		;;
	esac
	[ -z "$(cached_files)" ] ||
		fail "$what: the cache holds a file for the digest: $(cached_files)"
}

for mode in corrupt truncate reset; do
	fake_mode "$UP_URL" "$mode"
	c0=$(fake_count "$UP_URL" "$BLOB")
	get_faulty "$mode #1"
	c1=$(fake_count "$UP_URL" "$BLOB")
	[ "$c1" -gt "$c0" ] || fail "$mode #1: the mirror did not GET the blob upstream"
	get_faulty "$mode #2"
	c2=$(fake_count "$UP_URL" "$BLOB")
	[ "$c2" -gt "$c1" ] ||
		fail "$mode #2: the mirror did not go upstream again (GETs $c0 -> $c1 -> $c2)"
	mirror_alive
done
grep -F "\"GET $BLOB\"" "$MIRROR_LOG" >/dev/null ||
	fail "no access line for the blob in the mirror's log"

# The upstream recovers: a full, correct body, then cached.
fake_mode "$UP_URL" ok
c0=$(fake_count "$UP_URL" "$BLOB")
got=$(curl -sf --max-time 60 "$MIRROR_URL$BLOB" | sha256sum | cut -d' ' -f1) ||
	fail "GET after the upstream recovered failed"
assert_eq "$HEX" "$got" "body after the upstream recovered"
wait_for 10 has_cached_file ||
	fail "the verified blob is not under $CACHE/blobs/ (the checks above looked there)"
c1=$(fake_count "$UP_URL" "$BLOB")
got=$(curl -sf --max-time 60 "$MIRROR_URL$BLOB" | sha256sum | cut -d' ' -f1) ||
	fail "GET of the cached blob failed"
assert_eq "$HEX" "$got" "body of the cached blob"
assert_eq "$c1" "$(fake_count "$UP_URL" "$BLOB")" \
	"upstream GETs for a cached blob"
[ "$c1" -gt "$c0" ] || fail "the recovered GET did not go upstream"
mirror_alive
pass
