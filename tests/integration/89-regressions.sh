#!/bin/bash
# Regressions, one block each, named after what broke:
#  - slow-download-cut-at-idle: a client downloading for longer than the
#    idle timeout (it sends nothing meanwhile) was cut off; it must get
#    the whole blob;
#  - range-end-overflow: "bytes=5-18446744073709551615" wrapped the end
#    and hung; it must be a 206 to the end of the blob;
#  - small-replies-written-at-once: a small reply on plain HTTP is written
#    in the callback that makes it and evhttp is told afterwards that the
#    output drained (proxy_reply_write_now).  Pipelined requests (cached
#    manifest by tag and by digest, /v2/, a 404, each many times in one
#    write) must get their answers in order with the right bodies, and the
#    last one's "Connection: close" honoured; the same with a 200 KiB
#    manifest to a client whose receive buffer is 4 KiB (the write is
#    partial and the bufferevent sends the rest); HTTP/1.0 without
#    keep-alive is closed after its one answer.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq
need_regmirror

mkimage "$T_DIR/img" raw --seed t89 --ref v1 --size $((32 * 1024 * 1024))
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/r:v1
L=$(jq -r '.images[0].layers[0].digest' "$T_DIR/img.json")
SIZE=$((32 * 1024 * 1024))
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" "$UP_URL"
sed -i 's/^idle = 30s$/idle = 2s/' "$T_DIR/mirror.conf"
grep -q '^idle = 2s$' "$T_DIR/mirror.conf" || hard_error "idle not set"
start_mirror "$T_DIR/mirror.conf"
U=$MIRROR_URL/v2/app/r/blobs/$L

# slow-download-cut-at-idle: ~4 s at 8 MB/s (more than socket buffers
# hold), cold then warm.
for pass in cold warm; do
	got=$(curl -sf --limit-rate 8M "$U" | sha256sum | cut -d' ' -f1) ||
		fail "$pass slow download failed (cut at the idle timeout?)"
	assert_eq "${L#sha256:}" "$got" "$pass slow download body"
done

# range-end-overflow
code=$(curl -s -o "$T_DIR/r1" -D "$T_DIR/h1" -w '%{http_code}' --max-time 10 \
	-H 'Range: bytes=5-18446744073709551615' "$U")
assert_eq 206 "$code" "status for an end past 2^64-1"
grep -qi "^content-range: bytes 5-$((SIZE - 1))/$SIZE" "$T_DIR/h1" ||
	fail "Content-Range: $(grep -i content-range "$T_DIR/h1")"
assert_eq $((SIZE - 5)) "$(stat -c %s "$T_DIR/r1")" "bytes received"
code=$(curl -s -o "$T_DIR/r2" -w '%{http_code}' --max-time 10 \
	-H 'Range: bytes=0-18446744073709551615' "$U")
assert_eq 206 "$code" "status for 0-(2^64-1)"
assert_eq "${L#sha256:}" "$(sha256sum <"$T_DIR/r2" | cut -d' ' -f1)" \
	"0-(2^64-1) body"

# small-replies-written-at-once
RAW="$PY $T_HERE/rawclient.py"
MPORT=${MIRROR_URL##*:}
CFG=$(jq -r '.images[0].config.digest' "$T_DIR/img.json")
CSIZE=$(jq -r '.images[0].config.size' "$T_DIR/img.json")
"$PY" - "$CFG" "$CSIZE" "$L" "$SIZE" >"$T_DIR/big.json" <<'EOPY'
import json, sys
print(json.dumps({"schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": sys.argv[1], "size": int(sys.argv[2])},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sys.argv[3], "size": int(sys.argv[4])}],
    "annotations": {"pad": "p" * (200 * 1024)}}, separators=(",", ":")),
    end="")
EOPY
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "@$T_DIR/big.json" \
	-H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
	"$UP_URL/v2/app/r/manifests/big")
assert_eq 201 "$code" "PUT of the 200 KiB manifest upstream"
MAN=$(curl -sf -H "Accept: application/vnd.oci.image.manifest.v1+json" \
	"$MIRROR_URL/v2/app/r/manifests/v1" | sha256sum | cut -d' ' -f1) ||
	fail "GET of the manifest by tag"
BIG=$(sha256sum <"$T_DIR/big.json" | cut -d' ' -f1)
curl -sf -o /dev/null "$MIRROR_URL/v2/app/r/manifests/big" ||
	fail "GET of the 200 KiB manifest by tag"
E404=$(curl -s "$MIRROR_URL/v2/app/r/manifests/sha256:$(printf '%064d' 0)" |
	sha256sum | cut -d' ' -f1)
V2=$(curl -s "$MIRROR_URL/v2/" | sha256sum | cut -d' ' -f1)
paths=() want=()
for i in $(seq 1 16); do
	paths+=(/v2/app/r/manifests/v1 "/v2/app/r/manifests/sha256:$MAN" /v2/
	    "/v2/app/r/manifests/sha256:$(printf '%064d' 0)")
	want+=("200 $MAN" "200 $MAN" "200 $V2" "404 $E404")
done
$RAW pipeline 127.0.0.1 "$MPORT" "${paths[@]}" >"$T_DIR/pipe.out" ||
	fail "rawclient pipeline failed"
assert_eq "${#want[@]} eof" "$(grep -c '^[0-9]' "$T_DIR/pipe.out") $(tail -1 "$T_DIR/pipe.out")" \
	"answers to ${#paths[@]} pipelined requests, then the close asked for"
got=$(awk '/^[0-9]/ { print $1, $3 }' "$T_DIR/pipe.out")
assert_eq "$(printf '%s\n' "${want[@]}")" "$got" "pipelined answers in order"
$RAW pipeline 127.0.0.1 "$MPORT" --rcvbuf 4096 /v2/app/r/manifests/big \
	/v2/app/r/manifests/v1 /v2/app/r/manifests/big >"$T_DIR/slow.out" ||
	fail "rawclient pipeline (4 KiB receive buffer) failed"
assert_eq "$(printf '200 %s\n200 %s\n200 %s\neof' "$BIG" "$MAN" "$BIG")" \
	"$(awk '/^[0-9]/ { print $1, $3; next } { print }' "$T_DIR/slow.out")" \
	"200 KiB manifests to a 4 KiB receive buffer"
$RAW pipeline 127.0.0.1 "$MPORT" --http10 /v2/app/r/manifests/v1 >"$T_DIR/h10.out" ||
	fail "rawclient pipeline (HTTP/1.0) failed"
assert_eq "$(printf '200 %s\neof' "$MAN")" \
	"$(awk '/^[0-9]/ { print $1, $3; next } { print }' "$T_DIR/h10.out")" \
	"HTTP/1.0 without keep-alive: one answer, then the close"
mirror_alive
pass
