#!/bin/bash
# Malformed, hostile and unknown requests against a running mirror: each
# gets a 4xx (OCI error JSON with the right code where the route is an OCI
# one), never a 5xx; nothing with ".." reaches the upstream; no write
# method is forwarded; and the mirror keeps serving (/v2/ 200, PID alive).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo timeout
need_regmirror

mkimage "$T_DIR/img" single --seed t60 --ref v1 --layers 1000
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/x:v1
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" "$UP_URL"
start_mirror "$T_DIR/mirror.conf"
registry_log_sync up
mark=$(log_mark "$UP_LOG")
M=$MIRROR_URL
ZERO=sha256:0000000000000000000000000000000000000000000000000000000000000000
MT='Accept: application/vnd.oci.image.manifest.v1+json'

# expect NAME "STATUS..." "OCI_CODE..." json|any CURL_ARGS...
#   The answer's status must be one of STATUS; with json the body must be
#   an OCI error; any OCI error body must carry one of OCI_CODE (any code
#   when OCI_CODE is empty).
expect() {
	local name=$1 statuses=$2 codes=$3 json=$4 code oci
	shift 4
	rm -f "$T_DIR/body"
	code=$(curl -s --max-time 20 -o "$T_DIR/body" -w '%{http_code}' "$@") ||
		true
	[ -f "$T_DIR/body" ] || : >"$T_DIR/body"
	[[ " $statuses " == *" $code "* ]] ||
		fail "$name: status $code, want one of: $statuses; body: $(head -c 300 "$T_DIR/body")"
	oci=$(jq -r '.errors[0].code // empty' "$T_DIR/body" 2>/dev/null) || oci=
	[ "$json" != json ] || [ -n "$oci" ] ||
		fail "$name: status $code without an OCI error body: $(head -c 300 "$T_DIR/body")"
	[ -z "$oci" ] || [ -z "$codes" ] || [[ " $codes " == *" $oci "* ]] ||
		fail "$name: OCI error code $oci, want one of: $codes"
	log "$name: $code ${oci:-(no OCI body)}"
	mirror_alive
}

# -- malformed names, digests, references ------------------------------------
expect 'dot-dot path' '400 404' 'NAME_INVALID NAME_UNKNOWN' any \
	--path-as-is "$M/v2/../x"
expect 'encoded dot-dot name' '400 404' 'NAME_INVALID NAME_UNKNOWN' json \
	--path-as-is "$M/v2/%2e%2e/x/manifests/latest"
expect 'encoded dot-dot inside a name' '400 404' 'NAME_INVALID NAME_UNKNOWN' json \
	--path-as-is "$M/v2/app/%2e%2e/%2e%2e/x/manifests/v1"
expect 'upper-case name' '400 404' 'NAME_INVALID NAME_UNKNOWN' json \
	"$M/v2/UPPER/manifests/v1"
expect 'short sha256 digest' '400' 'DIGEST_INVALID' json \
	"$M/v2/a/blobs/sha256:xyz"
expect 'md5 digest' '400' 'DIGEST_INVALID' json \
	"$M/v2/a/blobs/md5:abc"
# docker-registry answers this one with 500: the mirror must not pass it on
expect 'bad manifest digest' '400 404' 'DIGEST_INVALID MANIFEST_UNKNOWN' json \
	"$M/v2/app/x/manifests/sha256:baddigest"
expect 'tag with a space' '400 404' 'MANIFEST_UNKNOWN MANIFEST_INVALID TAG_INVALID' json \
	"$M/v2/a/manifests/bad%20tag"
long=$(head -c 9980 /dev/zero | tr '\0' a)
expect '10000-character path' '400 404 414 431' 'NAME_INVALID NAME_UNKNOWN' any \
	"$M/v2/$long/manifests/v1"

# -- unknown content ------------------------------------------------------------
expect 'unknown tag' '404' 'MANIFEST_UNKNOWN' json -H "$MT" \
	"$M/v2/app/x/manifests/nope"
expect 'unknown manifest digest' '404' 'MANIFEST_UNKNOWN' json -H "$MT" \
	"$M/v2/app/x/manifests/$ZERO"
expect 'unknown blob' '404' 'BLOB_UNKNOWN' json "$M/v2/app/x/blobs/$ZERO"
expect 'unknown repository' '404' 'NAME_UNKNOWN MANIFEST_UNKNOWN' json -H "$MT" \
	"$M/v2/no/such/repo/manifests/v1"

# -- oversized requests -------------------------------------------------------
big=$(head -c 65536 /dev/zero | tr '\0' a)
expect '64 KiB header' '400 413 431 494' '' any -H "X-Big: $big" "$M/v2/"
hdrs=()
for i in $(seq 200); do hdrs+=(-H "X-Header-$i: value-$i"); done
expect '200 headers' '400 413 431 494' '' any "${hdrs[@]}" "$M/v2/"

# -- write methods are not forwarded ---------------------------------------------
expect 'DELETE a manifest' '400 401 403 404 405' \
	'UNSUPPORTED DENIED UNAUTHORIZED NAME_UNKNOWN MANIFEST_UNKNOWN' any \
	-X DELETE "$M/v2/app/x/manifests/$(layout_top "$T_DIR/img")"
expect 'start an upload' '400 401 403 404 405' \
	'UNSUPPORTED DENIED UNAUTHORIZED NAME_UNKNOWN' any \
	-X POST "$M/v2/app/x/blobs/uploads/"
expect 'PUT a manifest' '400 401 403 404 405' \
	'UNSUPPORTED DENIED UNAUTHORIZED NAME_UNKNOWN MANIFEST_INVALID' any \
	-X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
	--data-binary '{}' "$M/v2/app/x/manifests/v2"

# -- not HTTP --------------------------------------------------------------------
# A TLS ClientHello on the plain port (what skopeo sends first): the
# handshake must fail, and the mirror must go on serving.
rc=0
curl -sk --max-time 10 -o /dev/null "https://$MIRROR_HOST/v2/" || rc=$?
[ "$rc" != 0 ] || fail "a TLS request to the plain-HTTP port succeeded"
log "TLS ClientHello: curl exit $rc"
mirror_alive
# A garbage request line: a 400 or a closed connection, nothing else.
resp=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"
	printf "GARBAGE\r\n\r\n" >&3
	head -c 100 <&3' _ "$MIRROR_PORT" | head -n 1 | tr -d '\r') || true
case $resp in
'' | 'HTTP/1.'[01]' 4'*) log "garbage request line: '${resp:-closed}'" ;;
*) fail "garbage request line answered: $resp" ;;
esac
mirror_alive

# -- nothing of the above reached the upstream as-is ---------------------------
registry_log_sync up
bad=$(_access_lines "$UP_LOG" "$mark" '[A-Z]+' / |
	grep -iE '\.\.|%2e|"(DELETE|POST|PUT|PATCH) ' || true)
[ -z "$bad" ] || fail "the mirror forwarded: $(echo "$bad" | cut -c 1-200)"
assert_eq 200 "$(http_code "$UP_URL/v2/app/x/manifests/v1" -H "$MT")" \
	"upstream app/x:v1 after the DELETE"
# and real requests still work
assert_eq 200 "$(http_code "$M/v2/app/x/manifests/v1" -H "$MT")" \
	"GET app/x:v1 through the mirror at the end"
mirror_alive
pass
