#!/bin/bash
# Cross-repository isolation (docs/SECURITY.md): a client may not read a
# repository's content through another repository or upstream, not even
# while a fill of it streams or a blob publishes.
#  a. A slow fill of private/app's layer is streaming (a fake upstream
#     paced at 1 MB/s).  Meanwhile the same digest asked through
#     public/other (which the upstream does not hold): the mirror HEADs it
#     there, gets 404 and answers 404 — no byte of the layer.  Through
#     shared/app (which the upstream holds too): HEAD 200, the request
#     attaches to the fill (still one upstream GET) and gets the layer.
#     Once published: public/other is still 404.
#  b. Manifests by digest get the same check: private/app's manifest by
#     digest through public/other is 404 (HEAD 404 upstream).
#  c. A HEAD 200 from one upstream links the digest for that upstream's
#     repository only: shared/app through other.test (a registry without
#     it) is 404.
#  d. isolate = yes: iso.test and pub.test serve the same image (same
#     digests).  Content fetched through iso.test is never served for
#     pub.test's requests — blob or manifest by digest, cached or while
#     streaming — however pub.test answers: pub.test gets its own GETs.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry
need_regmirror

SIZE=3000000
start_fakeupstream priv --repo private/app --also-repo shared/app \
	--blob-size "$SIZE" --rate 1000000 --seed t65
start_fakeupstream iso --repo private/app --blob-size "$SIZE" \
	--rate 1000000 --seed t65-iso
start_fakeupstream pub --repo private/app --blob-size "$SIZE" \
	--rate 1000000 --seed t65-iso
start_registry empty
LAYER=$(jq -r .blob.digest "$PRIV_INFO")
MAN=$(jq -r .manifest.digest "$PRIV_INFO")
TAG=$(jq -r .tag "$PRIV_INFO")
ILAYER=$(jq -r .blob.digest "$ISO_INFO")
IMAN=$(jq -r .manifest.digest "$ISO_INFO")
assert_eq "$ILAYER" "$(jq -r .blob.digest "$PUB_INFO")" "same layer on pub"

write_mirror_base "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" 5m
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "docker.io"]
url = $PRIV_URL
default = yes

[upstream "other.test"]
url = $EMPTY_URL

[upstream "iso.test"]
url = $ISO_URL
isolate = yes

[upstream "pub.test"]
url = $PUB_URL
EOF
start_mirror "$T_DIR/mirror.conf"
M=$MIRROR_URL
blob_gets() { fake_count "$1" "/v2/$2/blobs/$LAYER" GET; }
blob_heads() { fake_count "$1" "/v2/$2/blobs/$LAYER" HEAD; }

# slow_get NAME URL: a background download; NAME.body, NAME.code.
slow_get() {
	( curl -s --max-time 60 -o "$T_DIR/$1.body" -w '%{http_code}' "$2" \
		>"$T_DIR/$1.code" ) &
	register_pid $! "$1"
	eval "${1}_PID=$!"
}
streaming() { [ "$(blob_gets "$1" "$2")" = 1 ]; }

# -- a -----------------------------------------------------------------------
slow_get first "$M/v2/private/app/blobs/$LAYER"
wait_for 20 streaming "$PRIV_URL" private/app || fail "the fill did not start"
rq "$M/v2/public/other/blobs/$LAYER"
assert_eq 404 "$RQ_CODE" "public/other during the fill"
assert_eq BLOB_UNKNOWN "$(rq_oci_code)" "public/other: OCI code"
[ "$RQ_BYTES" -lt 1000 ] || fail "public/other got $RQ_BYTES bytes"
assert_eq 1 "$(blob_heads "$PRIV_URL" public/other)" "HEADs of public/other upstream"
is_alive "$first_PID" ||
	fail "the first download ended before the racing request: not a race"
rq "$M/v2/shared/app/blobs/$LAYER"
assert_eq 200 "$RQ_CODE" "shared/app (held upstream too) during the fill"
assert_eq "$LAYER" "sha256:$(rq_sha)" "shared/app: the layer's digest"
wait "$first_PID" || true
assert_eq 200 "$(cat "$T_DIR/first.code")" "the first download"
assert_eq "$LAYER" "sha256:$(sha256_of "$T_DIR/first.body")" "the first download's digest"
assert_eq 1 "$(blob_gets "$PRIV_URL" private/app)" "GETs of private/app's layer"
assert_eq 0 "$(blob_gets "$PRIV_URL" shared/app)" "GETs through shared/app (it attached)"
rq "$M/v2/public/other/blobs/$LAYER"
assert_eq 404 "$RQ_CODE" "public/other once published"
mirror_alive

# -- b -----------------------------------------------------------------------
rq "$M/v2/private/app/manifests/$TAG"
assert_eq 200 "$RQ_CODE" "private/app manifest by tag"
rq "$M/v2/private/app/manifests/$MAN"
assert_eq 200 "$RQ_CODE" "private/app manifest by digest (linked)"
rq "$M/v2/public/other/manifests/$MAN"
assert_eq 404 "$RQ_CODE" "private/app's manifest by digest through public/other"
assert_eq MANIFEST_UNKNOWN "$(rq_oci_code)" "manifest: OCI code"
assert_eq 1 "$(fake_count "$PRIV_URL" "/v2/public/other/manifests/$MAN" HEAD)" \
	"HEAD of the manifest in public/other upstream"

# -- c -----------------------------------------------------------------------
rq "$M/v2/shared/app/blobs/$LAYER?ns=other.test"
assert_eq 404 "$RQ_CODE" "shared/app through other.test (linked on docker.io only)"

# -- d -----------------------------------------------------------------------
iblob_gets() { fake_count "$1" "/v2/$2/blobs/$ILAYER" GET; }
rq "$M/v2/private/app/blobs/$ILAYER?ns=iso.test"
assert_eq 200 "$RQ_CODE" "the layer through iso.test"
rq "$M/v2/private/app/manifests/$IMAN?ns=iso.test"
assert_eq 200 "$RQ_CODE" "the manifest through iso.test"
assert_eq 0 "$(iblob_gets "$PUB_URL" private/app)" "pub.test GETs so far"
rq "$M/v2/private/app/blobs/$ILAYER?ns=pub.test"
assert_eq 200 "$RQ_CODE" "the layer through pub.test"
assert_eq "$ILAYER" "sha256:$(rq_sha)" "pub.test: the layer's digest"
assert_eq 1 "$(iblob_gets "$PUB_URL" private/app)" \
	"pub.test fetched its own copy (iso.test's is not served for it)"
rq "$M/v2/private/app/manifests/$IMAN?ns=pub.test"
assert_eq 200 "$RQ_CODE" "the manifest through pub.test"
assert_eq 1 "$(fake_count "$PUB_URL" "/v2/private/app/manifests/$IMAN" GET)" \
	"pub.test's manifest GET (iso.test's copy not served)"

# While streaming: a fresh mirror, iso.test's fill in progress, pub.test
# asks the same digest: its own fill, not an attach.
stop_pid "$MIRROR_PID"
sed -i "s|^dir = .*|dir = $T_DIR/cache2|" "$T_DIR/mirror.conf"
start_mirror "$T_DIR/mirror.conf" mirror2
M=$MIRROR_URL
isogets=$(iblob_gets "$ISO_URL" private/app)
pubgets=$(iblob_gets "$PUB_URL" private/app)
slow_get isofill "$M/v2/private/app/blobs/$ILAYER?ns=iso.test"
iso_streaming() { [ "$(iblob_gets "$ISO_URL" private/app)" -gt "$isogets" ]; }
wait_for 20 iso_streaming || fail "iso.test's fill did not start"
rq "$M/v2/private/app/blobs/$ILAYER?ns=pub.test"
assert_eq 200 "$RQ_CODE" "pub.test during iso.test's fill"
assert_eq "$ILAYER" "sha256:$(rq_sha)" "pub.test during the fill: digest"
assert_eq $((pubgets + 1)) "$(iblob_gets "$PUB_URL" private/app)" \
	"pub.test's own GET during iso.test's fill"
wait "$isofill_PID" || true
assert_eq 200 "$(cat "$T_DIR/isofill.code")" "iso.test's download"
mirror_alive
pass
