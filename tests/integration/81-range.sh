#!/bin/bash
# Range requests on blobs (GET only) through the mirror, upstream a
# docker-registry (and fakeupstream.py for a slow blob):
#  - warm (cached) blob: bytes=a-b, a-, -n, 0-, a b past the end and a
#    suffix longer than the blob (both clipped) → 206 with Content-Range
#    "bytes a-b/size", that Content-Length and exactly those bytes;
#    a >= size, a range wholly past the end and -0 → 416 with
#    Content-Range "bytes */size" and an OCI error body; several ranges,
#    other units, b < a and junk → 200 with the whole blob; HEAD with a
#    Range → 200 with the whole length and no Content-Range; none of this
#    makes an upstream request;
#  - cold (uncached) blobs whose first request is a Range request (a-b,
#    a-, -n, a-past-the-end, -0, several ranges): the same answers; each
#    blob is fetched upstream exactly once, cached, and the next full GET
#    is a hit (no new upstream GET);
#  - a cold Range response completes only after the whole blob is
#    verified: with the upstream trickling a 512 KiB blob at 128 KiB/s,
#    requests for bytes=0-9 and bytes=-10 are still open while the
#    mirror's fill file already holds 128 KiB, and then get exactly their
#    bytes (checked against the cached file, which hashes to the digest);
#  - over HTTPS (tls_listen): warm 206, warm 416, full 200, cold 206;
#  - Accept-Ranges: bytes on every 200/206 GET of a blob and on HEAD of a
#    cached blob;
#  - HEAD of an uncached blob is answered from an upstream HEAD: 200,
#    Content-Length = its size, Docker-Content-Digest; the upstream saw a
#    HEAD and no GET of it; nothing is cached for it; and (checked last)
#    that answer carries Accept-Ranges: bytes too.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need skopeo docker-registry openssl cmp dd find
need_regmirror

CACHE=$T_DIR/cache
mkimage "$T_DIR/img" single --seed t81 --ref v1 \
	--layers 100000,110000,120000,130000,140000,150000,160000,170000,180000
mapfile -t L < <(jq -r '.images[0].layers[].digest' "$T_DIR/img.json")
[ "${#L[@]}" = 9 ] || hard_error "mkimage: expected 9 layers"
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/r:v1

SLOW_SIZE=524288
start_fakeupstream slow --mode slow --slow-rate 131072 \
	--blob-size "$SLOW_SIZE" --repo slow/blob --seed t81-slow
SD=$(jq -r .blob.digest "$SLOW_INFO")

CA="$T_DIR/ca"
make_test_ca "$CA"
make_server_cert "$CA" "$T_DIR/srv" 8101
TLSPORT=$(free_port)
write_mirror_base "$T_DIR/mirror.conf" "$(free_port)" "$CACHE" 5m \
	"tls_cert = $T_DIR/srv.crt" "tls_key = $T_DIR/srv.key" \
	"tls_listen = 127.0.0.1:$TLSPORT"
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "docker.io"]
url = $UP_URL
default = yes

[upstream "slow.test"]
url = $SLOW_URL
EOF
start_mirror "$T_DIR/mirror.conf"
pid_listens "$MIRROR_PID" "$TLSPORT" ||
	fail "regmirror does not listen on tls_listen port $TLSPORT"
TLS_URL="https://127.0.0.1:$TLSPORT"

file_of() { echo "$T_DIR/img/blobs/sha256/${1#sha256:}"; }
size_of() { stat -c %s "$1"; }
url_of() { echo "${2:-$MIRROR_URL}/v2/app/r/blobs/$1"; }

# slice FILE A N: N bytes of FILE from offset A.
slice() {
	dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" \
		status=none
}

accept_ranges() {
	[ "$(rq_header Accept-Ranges)" = bytes ] ||
		fail "$1: Accept-Ranges is '$(rq_header Accept-Ranges)', want 'bytes'"
}

# want206 WHAT URL RANGE A B FILE [CURL ARGS...]: GET with "Range: RANGE"
# answers 206 with bytes A-B of FILE.
want206() {
	local what=$1 url=$2 range=$3 a=$4 b=$5 file=$6 size
	shift 6
	size=$(size_of "$file")
	rq "$url" -H "Range: $range" "$@"
	[ "$RQ_CODE" = 206 ] ||
		fail "$what: GET with Range: $range: status $RQ_CODE, want 206; body: $(head -c 200 "$T_DIR/rq.body" | tr -d '\0')"
	[ "$RQ_RC" = 0 ] || fail "$what: curl exit $RQ_RC after $RQ_BYTES bytes"
	assert_eq "bytes $a-$b/$size" "$(rq_header Content-Range)" \
		"$what ($range): Content-Range"
	assert_eq $((b - a + 1)) "$(rq_header Content-Length)" \
		"$what ($range): Content-Length"
	slice "$file" "$a" $((b - a + 1)) >"$T_DIR/want"
	cmp -s "$T_DIR/want" "$T_DIR/rq.body" ||
		fail "$what ($range): the body ($RQ_BYTES bytes) is not bytes $a-$b of the blob"
	accept_ranges "$what ($range)"
	log "$what: $range → 206 bytes $a-$b/$size (${RQ_SECS}s)"
}

# want200 WHAT URL RANGE FILE [CURL ARGS...]: GET with "Range: RANGE"
# (none when RANGE is empty) answers 200 with all of FILE.
want200() {
	local what=$1 url=$2 range=$3 file=$4 h=()
	shift 4
	[ -z "$range" ] || h=(-H "Range: $range")
	rq "$url" "${h[@]}" "$@"
	[ "$RQ_CODE" = 200 ] ||
		fail "$what: GET with Range: '$range': status $RQ_CODE, want 200; body: $(head -c 200 "$T_DIR/rq.body" | tr -d '\0')"
	[ "$RQ_RC" = 0 ] || fail "$what: curl exit $RQ_RC after $RQ_BYTES bytes"
	assert_eq "" "$(rq_header Content-Range)" "$what ('$range'): Content-Range"
	assert_eq "$(size_of "$file")" "$(rq_header Content-Length)" \
		"$what ('$range'): Content-Length"
	assert_eq "$(sha256_of "$file")" "$(rq_sha)" "$what ('$range'): sha256 of the body"
	accept_ranges "$what ('$range')"
	log "$what: '$range' → 200 whole blob (${RQ_SECS}s)"
}

# want416 WHAT URL RANGE SIZE [CURL ARGS...]
want416() {
	local what=$1 url=$2 range=$3 size=$4
	shift 4
	rq "$url" -H "Range: $range" "$@"
	[ "$RQ_CODE" = 416 ] ||
		fail "$what: GET with Range: $range: status $RQ_CODE, want 416"
	assert_eq "bytes */$size" "$(rq_header Content-Range)" \
		"$what ($range): Content-Range of the 416"
	[ -n "$(rq_oci_code)" ] ||
		fail "$what ($range): 416 without an OCI error body: $(head -c 200 "$T_DIR/rq.body")"
	log "$what: $range → 416 $(rq_oci_code)"
}

# upstream_gets DIGEST: the registry's GETs of the blob so far.
upstream_gets() {
	registry_log_sync up
	count_upstream_gets "$UP_LOG" "/v2/app/r/blobs/$1"
}

# -- warm blob ---------------------------------------------------------------
W=${L[0]} WF=$(file_of "${L[0]}")
S=$(size_of "$WF")
want200 "warm: first GET (fills the cache)" "$(url_of "$W")" "" "$WF"
wait_for 10 test -f "$(cache_blob_file "$CACHE" "$W")" ||
	fail "the blob is not in the cache after a full GET"
want206 warm "$(url_of "$W")" bytes=0-0 0 0 "$WF"
want206 warm "$(url_of "$W")" bytes=10-19 10 19 "$WF"
want206 warm "$(url_of "$W")" bytes=100- 100 $((S - 1)) "$WF"
want206 warm "$(url_of "$W")" bytes=0- 0 $((S - 1)) "$WF"
want206 warm "$(url_of "$W")" bytes=-500 $((S - 500)) $((S - 1)) "$WF"
want206 warm "$(url_of "$W")" "bytes=-$((S + 10))" 0 $((S - 1)) "$WF"
want206 warm "$(url_of "$W")" "bytes=$((S - 5))-$((S + 100))" \
	$((S - 5)) $((S - 1)) "$WF"
want206 warm "$(url_of "$W")" "bytes=$((S - 1))-$((S - 1))" \
	$((S - 1)) $((S - 1)) "$WF"
want416 warm "$(url_of "$W")" "bytes=$S-" "$S"
want416 warm "$(url_of "$W")" "bytes=$((S + 10))-$((S + 20))" "$S"
want416 warm "$(url_of "$W")" bytes=-0 "$S"
want200 warm "$(url_of "$W")" bytes=0-1,5-6 "$WF"
want200 warm "$(url_of "$W")" bytes=abc "$WF"
want200 warm "$(url_of "$W")" items=0-5 "$WF"
want200 warm "$(url_of "$W")" bytes=5-2 "$WF"
rq "$(url_of "$W")" -I -H 'Range: bytes=0-9'
assert_eq 200 "$RQ_CODE" "warm: HEAD with Range: status"
assert_eq "$S" "$(rq_header Content-Length)" "warm: HEAD with Range: Content-Length"
assert_eq "" "$(rq_header Content-Range)" "warm: HEAD with Range: Content-Range"
accept_ranges "warm: HEAD with Range"
assert_eq 1 "$(upstream_gets "$W")" "upstream GETs of the warm blob"

# -- cold blobs: the first request is a Range request ------------------------
# cold_done DIGEST WHAT: fetched upstream once, cached, next GET a hit.
cold_done() {
	local d=$1 what=$2
	wait_for 10 test -f "$(cache_blob_file "$CACHE" "$d")" ||
		fail "$what: the blob was not cached after a cold Range request"
	want200 "$what: GET after" "$(url_of "$d")" "" "$(file_of "$d")"
	assert_eq 1 "$(upstream_gets "$d")" "$what: upstream GETs of the blob"
}
f=$(file_of "${L[1]}")
want206 "cold a-b" "$(url_of "${L[1]}")" bytes=100-199 100 199 "$f"
cold_done "${L[1]}" "cold a-b"
f=$(file_of "${L[2]}") s=$(size_of "$(file_of "${L[2]}")")
want206 "cold a-" "$(url_of "${L[2]}")" bytes=1000- 1000 $((s - 1)) "$f"
cold_done "${L[2]}" "cold a-"
f=$(file_of "${L[3]}") s=$(size_of "$(file_of "${L[3]}")")
want206 "cold -n" "$(url_of "${L[3]}")" bytes=-500 $((s - 500)) $((s - 1)) "$f"
cold_done "${L[3]}" "cold -n"
s=$(size_of "$(file_of "${L[4]}")")
want416 "cold a>=size" "$(url_of "${L[4]}")" "bytes=$s-" "$s"
cold_done "${L[4]}" "cold a>=size"
s=$(size_of "$(file_of "${L[5]}")")
want416 "cold -0" "$(url_of "${L[5]}")" bytes=-0 "$s"
cold_done "${L[5]}" "cold -0"
want200 "cold several ranges" "$(url_of "${L[6]}")" bytes=0-1,5-6 \
	"$(file_of "${L[6]}")"
cold_done "${L[6]}" "cold several ranges"
mirror_alive

# -- a cold Range response waits for the verified blob -----------------------
SURL=$MIRROR_URL/v2/slow.test/slow/blob/blobs/$SD
curl -s --max-time 30 -H 'Range: bytes=0-9' -D "$T_DIR/sa.hdrs" \
	-o "$T_DIR/sa.body" -w '%{http_code}' "$SURL" >"$T_DIR/sa.code" &
SA=$!
curl -s --max-time 30 -H 'Range: bytes=-10' -D "$T_DIR/sb.hdrs" \
	-o "$T_DIR/sb.body" -w '%{http_code}' "$SURL" >"$T_DIR/sb.code" &
SB=$!
fill_holds() { [ -n "$(find "$CACHE/tmp" -type f -size +"$1"c 2>/dev/null)" ]; }
wait_for 15 fill_holds 131072 ||
	fail "the mirror's fill of the slow blob never held 128 KiB in $CACHE/tmp"
is_alive "$SA" || fail "the cold Range request bytes=0-9 completed while \
the blob was still arriving (before it could be verified)"
is_alive "$SB" || fail "the cold Range request bytes=-10 completed while \
the blob was still arriving"
[ ! -f "$(cache_blob_file "$CACHE" "$SD")" ] ||
	hard_error "the slow blob is cached already: too fast to tell"
wait_for 25 eval '! is_alive "$SA" && ! is_alive "$SB"' ||
	fail "the cold Range requests on the slow blob did not finish"
rc=0; wait "$SA" || rc=$?
[ "$rc" = 0 ] || fail "cold Range bytes=0-9 on the slow blob: curl exit $rc"
rc=0; wait "$SB" || rc=$?
[ "$rc" = 0 ] || fail "cold Range bytes=-10 on the slow blob: curl exit $rc"
SF=$(cache_blob_file "$CACHE" "$SD")
wait_for 10 test -f "$SF" || fail "the slow blob was not cached"
assert_eq "${SD#sha256:}" "$(sha256_of "$SF")" "sha256 of the cached slow blob"
assert_eq 206 "$(cat "$T_DIR/sa.code")" "slow bytes=0-9: status"
assert_eq 206 "$(cat "$T_DIR/sb.code")" "slow bytes=-10: status"
assert_eq "bytes 0-9/$SLOW_SIZE" \
	"$(tr -d '\r' <"$T_DIR/sa.hdrs" | sed -n 's/^[Cc]ontent-[Rr]ange: //p')" \
	"slow bytes=0-9: Content-Range"
assert_eq "bytes $((SLOW_SIZE - 10))-$((SLOW_SIZE - 1))/$SLOW_SIZE" \
	"$(tr -d '\r' <"$T_DIR/sb.hdrs" | sed -n 's/^[Cc]ontent-[Rr]ange: //p')" \
	"slow bytes=-10: Content-Range"
slice "$SF" 0 10 | cmp -s - "$T_DIR/sa.body" ||
	fail "slow bytes=0-9: wrong bytes"
slice "$SF" $((SLOW_SIZE - 10)) 10 | cmp -s - "$T_DIR/sb.body" ||
	fail "slow bytes=-10: wrong bytes"
assert_eq 1 "$(fake_count "$SLOW_URL" "/v2/slow/blob/blobs/$SD")" \
	"upstream GETs of the slow blob (two Range requests, one fill)"
log "cold Range requests waited for the verified slow blob"

# -- HTTPS --------------------------------------------------------------------
TLS=(--cacert "$CA/ca.crt")
want206 "https warm" "$(url_of "$W" "$TLS_URL")" bytes=10-19 10 19 "$WF" "${TLS[@]}"
want206 "https warm" "$(url_of "$W" "$TLS_URL")" bytes=-500 \
	$((S - 500)) $((S - 1)) "$WF" "${TLS[@]}"
want416 "https warm" "$(url_of "$W" "$TLS_URL")" "bytes=$S-" "$S" "${TLS[@]}"
want200 "https warm" "$(url_of "$W" "$TLS_URL")" bytes=0-1,5-6 "$WF" "${TLS[@]}"
f=$(file_of "${L[7]}") s=$(size_of "$(file_of "${L[7]}")")
want206 "https cold" "$(url_of "${L[7]}" "$TLS_URL")" bytes=2000-2999 \
	2000 2999 "$f" "${TLS[@]}"
cold_done "${L[7]}" "https cold"

# -- HEAD of an uncached blob: an upstream HEAD, no download ------------------
H=${L[8]} HF=$(file_of "${L[8]}")
registry_log_sync up
hmark=$(log_mark "$UP_LOG")
rq "$(url_of "$H")" -I
assert_eq 200 "$RQ_CODE" "HEAD of an uncached blob: status"
assert_eq "$(size_of "$HF")" "$(rq_header Content-Length)" \
	"HEAD of an uncached blob: Content-Length"
assert_eq "$H" "$(rq_header Docker-Content-Digest)" \
	"HEAD of an uncached blob: Docker-Content-Digest"
registry_log_sync up
assert_eq 0 "$(count_upstream_gets "$UP_LOG" "/v2/app/r/blobs/$H" "$hmark")" \
	"upstream GETs of a blob the client only HEADed"
[ "$(_access_lines "$UP_LOG" "$hmark" HEAD "/v2/app/r/blobs/$H" | wc -l)" -ge 1 ] ||
	fail "HEAD of an uncached blob: the registry saw no HEAD of it"
[ ! -e "$(cache_blob_file "$CACHE" "$H")" ] ||
	fail "HEAD of an uncached blob cached it"
[ -z "$(find "$CACHE/tmp" -name "${H:7:16}*" 2>/dev/null)" ] ||
	fail "HEAD of an uncached blob started a fill"
mirror_alive
accept_ranges "HEAD of an uncached blob"
pass
