#!/bin/bash
# Upstream faults beyond 50/55. In each, the client gets an error or a
# short body, never wrong bytes presented as complete, nothing corrupt is
# cached (no file for the digest under CACHE/blobs), and once the upstream
# recovers the next request succeeds with the right bytes:
#  - a slow trickle: the upstream sends a 512 KiB blob at 64 KiB/s (8 s);
#    the GET through the mirror completes with the right sha256, the blob
#    is cached, and a second GET is served with no new upstream GET;
#  - Range requests on a cold 2 MB blob whose upstream truncates the body
#    (clean close after half of Content-Length), resets the connection
#    mid-body, or flips a byte: for a range wholly inside the bytes that
#    did arrive (bytes=0-999) and for one across the fault point, the
#    client gets an error status with an OCI body, or a 206 cut short
#    (curl error, fewer bytes than Content-Length): a Range answer never
#    completes unless the whole blob verified. Each attempt goes upstream
#    again. Upstream ok again: the same Range request → 206 with exactly
#    those bytes, then a full GET → the whole blob from the cache (no new
#    upstream GET);
#  - the token service of a token-auth docker-registry is stopped
#    (stop_pid): a manifest GET and a blob GET of a repository the mirror
#    holds no token for → 502 or 503 with an OCI error whose message names
#    the token service (its 127.0.0.1:PORT); nothing cached; the token
#    service restarts on the same port with the same key → a skopeo pull
#    of that image through the mirror succeeds, byte for byte.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need skopeo docker-registry cmp dd find
need_regmirror

CACHE=$T_DIR/cache

# -- upstreams ---------------------------------------------------------------
SIZE=2000000
start_fakeupstream up --mode ok --blob-size "$SIZE" --repo fault/blob \
	--seed t80-fault
DG=$(jq -r .blob.digest "$UP_INFO")
BLOB=/v2/fault/blob/blobs/$DG
curl -sf --max-time 20 -o "$T_DIR/fault.blob" "$UP_URL$BLOB" ||
	hard_error "could not read the fault blob from the fake upstream"
[ "sha256:$(sha256_of "$T_DIR/fault.blob")" = "$DG" ] ||
	hard_error "the fake upstream's blob does not match its digest"

SLOW_SIZE=524288
start_fakeupstream slow --mode slow --slow-rate 65536 \
	--blob-size "$SLOW_SIZE" --repo slow/blob --seed t80-slow
SD=$(jq -r .blob.digest "$SLOW_INFO")

# The token service: tokenserver.py run through a wrapper that keeps its
# signing key and certificate in a file, so that a restart on the same
# port issues tokens the registry (which read the certificate once) still
# accepts.
cat >"$T_DIR/tok80.py" <<'EOPY'
import os, sys
sys.path.insert(0, sys.argv.pop(1))
keyfile = sys.argv.pop(1)
import tokenserver as ts
from cryptography import x509
from cryptography.hazmat.primitives import serialization

make = ts.make_key_and_cert

def keep(issuer):
    if os.path.exists(keyfile):
        with open(keyfile, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        with open(keyfile + ".crt", "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        return key, cert
    key, cert = make(issuer)
    ts.write_atomic(keyfile + ".crt",
                    cert.public_bytes(serialization.Encoding.PEM))
    ts.write_atomic(keyfile, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return key, cert

ts.make_key_and_cert = keep
ts.main()
EOPY
TOKDIR=$T_DIR/tokenserver-tok
mkdir -p "$TOKDIR"
# start_tok [--port P]: (re)start it; exports the variables
# start_tokenserver would (TOK_URL, TOK_PORT, TOK_PID, ...).
start_tok() {
	rm -f "$TOKDIR/port"
	"$PY" "$T_DIR/tok80.py" "$T_HERE" "$TOKDIR/key.pem" \
		--port-file "$TOKDIR/port" --cert-out "$TOKDIR/cert.pem" \
		--service test-tok --issuer issuer-tok --user bob \
		--password b0b-pw --expires 300 "$@" >>"$TOKDIR/token.log" 2>&1 &
	TOK_PID=$!
	register_pid "$TOK_PID" "tokenserver tok" "$TOKDIR/token.log"
	wait_for 20 test -s "$TOKDIR/port" ||
		hard_error "tokenserver tok did not start"
	TOK_PORT=$(cat "$TOKDIR/port")
	TOK_URL=http://127.0.0.1:$TOK_PORT
	TOK_LOG=$TOKDIR/token.log TOK_CERT=$TOKDIR/cert.pem
	TOK_SERVICE=test-tok TOK_ISSUER=issuer-tok
	export TOK_PID TOK_PORT TOK_URL TOK_LOG TOK_CERT TOK_SERVICE TOK_ISSUER
}
start_tok
mkimage "$T_DIR/tokimg" single --seed t80-tok --ref v1 --layers 1000,20000
mkimage "$T_DIR/other" single --seed t80-other --ref v1 --layers 3000,40000
start_registry reg --token tok
seed_image "$T_DIR/tokimg" v1 "$REG_HOST" app/tok:v1 --dest-creds bob:b0b-pw
seed_image "$T_DIR/other" v1 "$REG_HOST" app/other:v1 --dest-creds bob:b0b-pw

printf '%s\n' b0b-pw >"$T_DIR/pw"
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$CACHE" "$UP_URL"
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "slow.test"]
url = $SLOW_URL

[upstream "tok.test"]
url = $REG_URL
username = bob
password_file = $T_DIR/pw
EOF
start_mirror "$T_DIR/mirror.conf"

cached_files() { find "$CACHE/blobs" -name "*${1#sha256:}*" 2>/dev/null || true; }
no_cached_file() {
	[ -z "$(cached_files "$1")" ] ||
		fail "$2: the cache holds a file for $1: $(cached_files "$1")"
}
slice() {
	dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" \
		status=none
}

# -- the slow trickle, in the background while the rest runs -------------------
SURL=$MIRROR_URL/v2/slow.test/slow/blob/blobs/$SD
slow_t0=$(now_us)
curl -s --max-time 40 -o "$T_DIR/slow.body" -w '%{http_code}' "$SURL" \
	>"$T_DIR/slow.code" 2>"$T_DIR/slow.err" &
SLOW_CURL=$!
register_pid "$SLOW_CURL" "slow GET"

# -- Range requests against a faulty upstream --------------------------------
# range_faulty WHAT A B: GET bytes=A-B of the cold fault blob while the
# upstream misbehaves: an error, or a 206 cut short; never a complete one.
range_faulty() {
	local what=$1 a=$2 b=$3 n cl c0 c1
	n=$((b - a + 1))
	c0=$(fake_count "$UP_URL" "$BLOB")
	rq "$MIRROR_URL$BLOB" -H "Range: bytes=$a-$b"
	log "$what: bytes=$a-$b: status $RQ_CODE, curl exit $RQ_RC, $RQ_BYTES bytes (${RQ_SECS}s)"
	case $RQ_CODE in
	206)
		cl=$(rq_header Content-Length)
		assert_eq "$n" "$cl" "$what: Content-Length of the 206"
		[ "$RQ_RC" != 0 ] && [ "$RQ_BYTES" -lt "$n" ] ||
			fail "$what: bytes=$a-$b: a complete 206 ($RQ_BYTES bytes, curl exit $RQ_RC) from a blob that never verified"
		;;
	502 | 503 | 504)
		[ -n "$(rq_oci_code)" ] ||
			fail "$what: status $RQ_CODE without an OCI error body"
		;;
	*)
		fail "$what: bytes=$a-$b: status $RQ_CODE (want a 206 cut short, or 502/503/504)"
		;;
	esac
	c1=$(fake_count "$UP_URL" "$BLOB")
	[ "$c1" -gt "$c0" ] || fail "$what: the mirror did not GET the blob upstream"
	no_cached_file "$DG" "$what"
}

HALF=$((SIZE / 2))
for mode in truncate reset corrupt; do
	fake_mode "$UP_URL" "$mode"
	range_faulty "$mode, range before the fault" 0 999
	range_faulty "$mode, range across the fault" $((HALF - 1000)) $((HALF + 999))
	range_faulty "$mode, range before the fault, again" 0 999
	mirror_alive
done

fake_mode "$UP_URL" ok
c0=$(fake_count "$UP_URL" "$BLOB")
a=$((HALF - 1000)) b=$((HALF + 999))
rq "$MIRROR_URL$BLOB" -H "Range: bytes=$a-$b"
assert_eq 206 "$RQ_CODE" "upstream ok: Range bytes=$a-$b: status"
assert_eq 0 "$RQ_RC" "upstream ok: Range bytes=$a-$b: curl exit"
assert_eq "bytes $a-$b/$SIZE" "$(rq_header Content-Range)" \
	"upstream ok: Content-Range"
slice "$T_DIR/fault.blob" "$a" $((b - a + 1)) | cmp -s - "$T_DIR/rq.body" ||
	fail "upstream ok: Range bytes=$a-$b: wrong bytes"
[ "$(fake_count "$UP_URL" "$BLOB")" -gt "$c0" ] ||
	fail "upstream ok: the Range request did not go upstream"
wait_for 10 test -f "$(cache_blob_file "$CACHE" "$DG")" ||
	fail "upstream ok: the blob was not cached after the Range request"
c1=$(fake_count "$UP_URL" "$BLOB")
rq "$MIRROR_URL$BLOB"
assert_eq 200 "$RQ_CODE" "full GET after recovery: status"
assert_eq "${DG#sha256:}" "$(rq_sha)" "full GET after recovery: sha256"
assert_eq "$c1" "$(fake_count "$UP_URL" "$BLOB")" \
	"upstream GETs for the full GET of the now cached blob"
log "Range faults: truncate, reset, corrupt never completed; recovered"

# -- the token service goes down ----------------------------------------------
rq "$MIRROR_URL/v2/tok.test/app/tok/manifests/v1" \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json'
assert_eq 200 "$RQ_CODE" "GET tok.test app/tok:v1 with the token service up"
stop_pid "$TOK_PID"
assert_eq 000 "$(http_code "$TOK_URL/token")" "the stopped token service"

# tok_down WHAT PATH [DIGEST]: the mirror answers 502/503 naming the
# token service; nothing cached for DIGEST.
tok_down() {
	local what=$1 path=$2 dg=${3:-} m
	rq "$MIRROR_URL$path" -H 'Accept: application/vnd.oci.image.manifest.v1+json'
	[[ $RQ_CODE =~ ^(502|503)$ ]] ||
		fail "$what with the token service down: status $RQ_CODE, want 502 or 503; body: $(head -c 300 "$T_DIR/rq.body")"
	[ -n "$(rq_oci_code)" ] ||
		fail "$what: status $RQ_CODE without an OCI error body"
	m=$(jq -r '.errors[0].message' "$T_DIR/rq.body")
	[[ ${m,,} == *token* && $m == *"127.0.0.1:$TOK_PORT"* ]] ||
		fail "$what: the error does not name the token service (token, 127.0.0.1:$TOK_PORT): $m"
	[ -z "$dg" ] || no_cached_file "$dg" "$what"
	log "$what: $RQ_CODE $(rq_oci_code) \"$m\""
}
OTHER_M=$(layout_top "$T_DIR/other")
OTHER_L=$(jq -r '.images[0].layers[1].digest' "$T_DIR/other.json")
tok_down "manifest GET app/other:v1" /v2/tok.test/app/other/manifests/v1
tok_down "blob GET app/other@$OTHER_L" "/v2/tok.test/app/other/blobs/$OTHER_L" \
	"$OTHER_L"
mirror_alive

start_tok --port "$TOK_PORT"
skopeo_ copy -q --all --src-tls-verify=false \
	"docker://$MIRROR_HOST/tok.test/app/other:v1" "oci:$T_DIR/pull:x" \
	>"$T_DIR/skopeo-pull.log" 2>&1 ||
	{ cat "$T_DIR/skopeo-pull.log" >&2;
	  fail "skopeo pull of tok.test/app/other:v1 after the token service came back"; }
layout_same "$T_DIR/other" "$T_DIR/pull"
assert_eq "$OTHER_M" "$(layout_top "$T_DIR/pull")" "digest of the pulled image"
log "token service down: 502/503 naming it; back: the pull succeeded"

# -- the slow trickle's end ---------------------------------------------------
wait_for 30 eval '! is_alive "$SLOW_CURL"' ||
	fail "the slow GET did not finish within 30s more"
rc=0
wait "$SLOW_CURL" || rc=$?
secs=$(awk -v d=$(($(now_us) - slow_t0)) 'BEGIN { printf "%.1f", d / 1e6 }')
[ "$rc" = 0 ] || fail "slow trickle: curl exit $rc: $(cat "$T_DIR/slow.err")"
assert_eq 200 "$(cat "$T_DIR/slow.code")" "slow trickle: status"
assert_eq "${SD#sha256:}" "$(sha256_of "$T_DIR/slow.body")" \
	"slow trickle: sha256 of the body"
wait_for 10 test -f "$(cache_blob_file "$CACHE" "$SD")" ||
	fail "slow trickle: the blob was not cached"
assert_eq 1 "$(fake_count "$SLOW_URL" "/v2/slow/blob/blobs/$SD")" \
	"slow trickle: upstream GETs"
rq "$SURL"
assert_eq 200 "$RQ_CODE" "GET of the cached slow blob: status"
assert_eq "${SD#sha256:}" "$(rq_sha)" "GET of the cached slow blob: sha256"
assert_eq 1 "$(fake_count "$SLOW_URL" "/v2/slow/blob/blobs/$SD")" \
	"upstream GETs after a second GET of the slow blob"
log "slow trickle: 512 KiB at 64 KiB/s completed in ${secs}s, cached"
mirror_alive
pass
