#!/bin/bash
# Bounded resources (docs/SECURITY.md): what clients and upstreams can
# make the mirror hold.
#  a. 40 clients ask for a ~3.9 MiB manifest (and 40 for a ~3.5 MiB tag
#     list) and never read: every one is sent the same buffer, by
#     reference; peak RSS grows by far less than one copy per client
#     (< 32 MiB; one copy each would be ~300 MiB).
#  b. [upstream] max_fills = 1 (one worker): a second cold blob waits for
#     the first one's fill; past [timeouts] queue it gets 503 UNAVAILABLE
#     with Retry-After; with a longer queue it is served once the first
#     fill is done.
#  c. [upstream] max_connections = 1: while a manifest request hangs
#     upstream, a second request waits, then gets 503 with Retry-After.
#  d. [cache] max_blob_size = 1M: a 2 MB blob is refused 403 DENIED (GET
#     and HEAD), nothing stored.
#  f. max_fills_per_client = 2: a client with two cold fills in progress
#     gets 503 for a third (Retry-After), another client address does not;
#     once they end the first client may start more.
#  e. A client pipelines 256 MiB of junk behind a slow download: the
#     mirror stops reading past one request head's worth (peak RSS grows
#     by less than 16 MiB; the junk its socket takes stays small).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need_regmirror
RAW="$PY $T_HERE/rawclient.py"

# -- a -----------------------------------------------------------------------
"$PY" - "$T_DIR/routes.json" <<'EOPY'
import json, sys
man = {"schemaVersion": 2,
       "mediaType": "application/vnd.oci.image.manifest.v1+json",
       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                  "digest": "sha256:" + "1" * 64, "size": 2},
       "layers": [], "annotations": {"pad": "m" * (3900 * 1024)}}
tags = {"name": "big/app", "tags": ["t%07d" % i for i in range(300000)]}
json.dump({
    "/v2/big/app/manifests/v1": [{"status": 200,
        "content_type": "application/vnd.oci.image.manifest.v1+json",
        "body": json.dumps(man)}],
    "/v2/big/app/tags/list": [{"status": 200, "body": json.dumps(tags)}],
}, open(sys.argv[1], "w"))
EOPY
start_hubfake hub --routes "$T_DIR/routes.json"
write_mirror_base "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" 5m
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "docker.io"]
url = $HUB_URL
default = yes
EOF
start_mirror "$T_DIR/mirror.conf"
rq "$MIRROR_URL/v2/big/app/manifests/v1"
assert_eq 200 "$RQ_CODE" "the big manifest"
msize=$RQ_BYTES
rq "$MIRROR_URL/v2/big/app/tags/list"
assert_eq 200 "$RQ_CODE" "the big tag list"
lsize=$RQ_BYTES
log "manifest $msize bytes, tag list $lsize bytes"
echo 5 >"/proc/$MIRROR_PID/clear_refs"
rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$MIRROR_PID/status")
mark=$(wc -l <"$MIRROR_LOG")
for what in manifests/v1 tags/list; do
	$RAW noread 127.0.0.1 "$MIRROR_PORT" "/v2/big/app/$what" 40 \
		--state "$T_DIR/noread-${what%%/*}.json" >>"$T_DIR/raw.log" 2>&1 &
	register_pid $! "noread $what"
done
answered() {
	[ "$(tail -n +"$((mark + 1))" "$MIRROR_LOG" |
		grep -c '"GET /v2/big/app/[mt][a-z]*/[a-z0-9]*" 200')" -ge 80 ]
}
wait_for 60 answered || fail "the 80 requests were not all answered"
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$MIRROR_PID/status")
log "peak RSS $hwm kB (was $rss0 kB) with 80 clients not reading"
[ $((hwm - rss0)) -lt 32768 ] ||
	fail "80 non-reading clients raised peak RSS by $((hwm - rss0)) kB"
mirror_alive
stop_pid "$MIRROR_PID"

# -- b -----------------------------------------------------------------------
start_fakeupstream slow --repo app/x --blob-size 3000000 --rate 1000000 \
	--seed t66
LAYER=$(jq -r .blob.digest "$SLOW_INFO")
CONFIG=$(jq -r .config.digest "$SLOW_INFO")
mkconf() { # FILE QUEUE [UPSTREAM LINE...]
	local f=$1 q=$2 l
	shift 2
	write_mirror_base "$f" "$(free_port)" "$T_DIR/cache-$RANDOM" 5m
	sed -i -e 's/^workers = 2$/workers = 1/' \
		-e "s/^idle = 30s$/idle = 30s\nqueue = $q/" "$f"
	printf '\n[upstream "docker.io"]\nurl = %s\ndefault = yes\n' \
		"$SLOW_URL" >>"$f"
	for l in "$@"; do printf '%s\n' "$l" >>"$f"; done
}
mkconf "$T_DIR/fills.conf" 2s "max_fills = 1"
start_mirror "$T_DIR/fills.conf" fills
( curl -s -o "$T_DIR/layer.body" -w '%{http_code}' --max-time 30 \
	"$MIRROR_URL/v2/app/x/blobs/$LAYER" >"$T_DIR/layer.code" ) &
register_pid $! layer
LAYER_PID=$!
layer_streaming() { [ "$(fake_count "$SLOW_URL" "/v2/app/x/blobs/$LAYER")" -ge 1 ]; }
wait_for 20 layer_streaming || fail "the layer's fill did not start"
rq "$MIRROR_URL/v2/app/x/blobs/$CONFIG"
assert_eq 503 "$RQ_CODE" "a second fill over max_fills, past the queue"
assert_eq UNAVAILABLE "$(rq_oci_code)" "its OCI code"
assert_eq 5 "$(rq_header Retry-After)" "its Retry-After"
jq -r '.errors[0].message' "$T_DIR/rq.body" | grep -q max_fills ||
	fail "the 503 does not name max_fills"
awk -v t="$RQ_SECS" 'BEGIN { exit !(t >= 1.5) }' ||
	fail "the 503 came after ${RQ_SECS}s, not after queue (2s)"
wait "$LAYER_PID" || true
assert_eq 200 "$(cat "$T_DIR/layer.code")" "the first fill"
assert_eq "$LAYER" "sha256:$(sha256_of "$T_DIR/layer.body")" "its digest"
rq "$MIRROR_URL/v2/app/x/blobs/$CONFIG"
assert_eq 200 "$RQ_CODE" "the second blob once the slot is free"
stop_pid "$MIRROR_PID"

mkconf "$T_DIR/fills2.conf" 20s "max_fills = 1"
start_mirror "$T_DIR/fills2.conf" fills2
n0=$(fake_count "$SLOW_URL" "/v2/app/x/blobs/$LAYER")
( curl -s -o /dev/null --max-time 30 "$MIRROR_URL/v2/app/x/blobs/$LAYER" ) &
register_pid $! layer2
more_streaming() { [ "$(fake_count "$SLOW_URL" "/v2/app/x/blobs/$LAYER")" -gt "$n0" ]; }
wait_for 20 more_streaming || fail "the layer's second fill did not start"
rq "$MIRROR_URL/v2/app/x/blobs/$CONFIG"
assert_eq 200 "$RQ_CODE" "a queued fill, served once the slot frees"
assert_eq "$CONFIG" "sha256:$(rq_sha)" "the queued fill's digest"
awk -v t="$RQ_SECS" 'BEGIN { exit !(t >= 1) }' ||
	fail "the queued fill did not wait (${RQ_SECS}s)"
stop_pid "$MIRROR_PID"

# -- c -----------------------------------------------------------------------
start_fakeupstream hang --repo app/h --mode manifest-hang --stall-seconds 30 \
	--seed t66h
HLAYER=$(jq -r .blob.digest "$HANG_INFO")
mkconf "$T_DIR/conns.conf" 2s
sed -i "s|^url = $SLOW_URL|url = $HANG_URL\nmax_connections = 1|" \
	"$T_DIR/conns.conf"
start_mirror "$T_DIR/conns.conf" conns
( curl -s -o /dev/null --max-time 30 "$MIRROR_URL/v2/app/h/manifests/v1" ) &
register_pid $! hang
hanging() { [ "$(fake_count "$HANG_URL" /v2/app/h/manifests/v1)" -ge 1 ]; }
wait_for 20 hanging || fail "the hanging manifest request did not start"
rq "$MIRROR_URL/v2/app/h/blobs/$HLAYER" -I
assert_eq 503 "$RQ_CODE" "a second upstream request over max_connections"
assert_eq 5 "$(rq_header Retry-After)" "its Retry-After"
assert_eq 0 "$(fake_count "$HANG_URL" "/v2/app/h/blobs/$HLAYER" HEAD)" \
	"upstream requests beyond max_connections"
mirror_alive
stop_pid "$MIRROR_PID"

# -- d -----------------------------------------------------------------------
start_fakeupstream big --repo app/b --blob-size 2000000 --seed t66b
BLAYER=$(jq -r .blob.digest "$BIG_INFO")
mkconf "$T_DIR/max.conf" 2s
sed -i -e "s|^url = $SLOW_URL|url = $BIG_URL|" \
	-e 's/^tag_ttl = 5m$/tag_ttl = 5m\nmax_blob_size = 1M/' "$T_DIR/max.conf"
start_mirror "$T_DIR/max.conf" max
rq "$MIRROR_URL/v2/app/b/blobs/$BLAYER"
assert_eq 403 "$RQ_CODE" "a blob over max_blob_size"
assert_eq DENIED "$(rq_oci_code)" "its OCI code"
[ "$RQ_BYTES" -lt 1000 ] || fail "the refused blob sent $RQ_BYTES bytes"
rq "$MIRROR_URL/v2/app/b/blobs/$BLAYER" -I
assert_eq 403 "$RQ_CODE" "HEAD of a blob over max_blob_size"
[ ! -e "$(cache_blob_file "$(sed -n 's/^dir = //p' "$T_DIR/max.conf")" "$BLAYER")" ] ||
	fail "the refused blob was stored"
mirror_alive
stop_pid "$MIRROR_PID"

# -- e -----------------------------------------------------------------------
mkconf "$T_DIR/pump.conf" 20s
start_mirror "$T_DIR/pump.conf" pump
echo 5 >"/proc/$MIRROR_PID/clear_refs"
rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$MIRROR_PID/status")
res=$($RAW pump 127.0.0.1 "$MIRROR_PORT" "/v2/app/x/blobs/$LAYER" 256)
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$MIRROR_PID/status")
log "junk behind a download: $res; peak RSS $hwm kB (was $rss0 kB)"
[ "${res#taken }" -lt $((64 * 1024 * 1024)) ] ||
	fail "the mirror accepted ${res#taken } bytes of pipelined junk"
[ $((hwm - rss0)) -lt 16384 ] ||
	fail "pipelined junk raised peak RSS by $((hwm - rss0)) kB"
mirror_alive
stop_pid "$MIRROR_PID"

# -- f -----------------------------------------------------------------------
mkimage "$T_DIR/three" single --seed t66f --ref v1 \
	--layers 600000,600000,600000,600000
start_fakeupstream three --layout "$T_DIR/three" --repo app/t --rate 300000
mapfile -t TL < <(jq -r '.images[0].layers[].digest' "$T_DIR/three.json")
mkconf "$T_DIR/pc.conf" 20s
sed -i -e "s|^url = $SLOW_URL|url = $THREE_URL|" \
	-e 's/^workers = 1$/workers = 1\nmax_fills_per_client = 2/' "$T_DIR/pc.conf"
start_mirror "$T_DIR/pc.conf" perclient
cold=()
for i in 0 1; do
	( curl -s -o /dev/null --max-time 30 \
		"$MIRROR_URL/v2/app/t/blobs/${TL[$i]}" ) &
	register_pid $! "cold $i"
	cold+=($!)
done
two_streaming() {
	[ "$(fake_count "$THREE_URL" "/v2/app/t/blobs/${TL[0]}")" -ge 1 ] &&
	[ "$(fake_count "$THREE_URL" "/v2/app/t/blobs/${TL[1]}")" -ge 1 ]
}
wait_for 20 two_streaming || fail "the two cold fills did not start"
rq "$MIRROR_URL/v2/app/t/blobs/${TL[2]}"
assert_eq 503 "$RQ_CODE" "a third cold fill from the same client"
assert_eq 5 "$(rq_header Retry-After)" "its Retry-After"
jq -r '.errors[0].message' "$T_DIR/rq.body" | grep -q max_fills_per_client ||
	fail "the 503 does not name max_fills_per_client"
rq "$MIRROR_URL/v2/app/t/blobs/${TL[3]}" --interface 127.0.0.2
assert_eq 200 "$RQ_CODE" "a cold fill from another client address"
assert_eq "${TL[3]}" "sha256:$(rq_sha)" "its digest"
for p in "${cold[@]}"; do wait "$p" || true; done
rq "$MIRROR_URL/v2/app/t/blobs/${TL[2]}"
assert_eq 200 "$RQ_CODE" "the third blob once the client's fills ended"
mirror_alive
pass
