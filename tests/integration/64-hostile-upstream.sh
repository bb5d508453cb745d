#!/bin/bash
# Hostile upstreams (docs/SECURITY.md, "upstreams"): a scripted registry
# (hubfake.py) on 127.0.0.2 that answers with redirects, realms, media
# types and header blocks meant to hurt, and an "internal service" (another
# hubfake) on 127.0.0.1 that must never see a request.
#  a. tags/list and a manifest redirected to the internal service: 502,
#     nothing fetched, nothing cached (a second GET is 502 again).
#  b. A Location and a realm with bytes >= 0x80: an OCI error, no crash.
#  c. A realm on the internal service for an upstream without credentials:
#     refused (502), the internal service sees nothing.
#  d. Blob redirects: to "localhost" (loopback, not the upstream's own
#     address) and to 169.254.169.254 (link-local) refused; to another
#     port of the upstream's own address refused (it may be anything: the
#     mirror's own admin API, say), unless that host:port is listed in
#     redirect_hosts: then followed, the blob verified.
#  e. https upstream (tls_verify = no): a blob redirect to http refused;
#     to an https host with an untrusted certificate refused (tls_verify =
#     no covers the upstream's own endpoints only).
#  f. A manifest answered as text/html, or as a JSON array: 502, not
#     stored.
#  g. 32 MiB of response headers: 502 at max_header_size, peak RSS grows
#     by less than 16 MiB; 5000 header fields: 502 (max_headers).
#  h. A tag list answered as text/html with a <script> and a Link to
#     another host: served as application/json with nosniff, no Link; a
#     429 whose Retry-After holds escape bytes: Retry-After 60.
# After each: the daemon answers /v2/.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need openssl
need_regmirror

# The internal service: it would serve a manifest and a token to anyone.
start_hubfake internal --host 127.0.0.1 --seed t64-internal
INT=$INTERNAL_URL
IPORT=$INTERNAL_PORT
# A CDN on the upstream's own address, serving the same blobs.
start_hubfake cdn --host 127.0.0.2 --seed t64
LAYER=$(jq -r .layer.digest "$CDN_INFO")
LSIZE=$(jq -r .layer.size "$CDN_INFO")

CA="$T_DIR/ca"
make_test_ca "$CA"
make_server_cert "$CA" "$T_DIR/srv" 6401
start_hubfake tlscdn --host 127.0.0.2 --seed t64 \
	--tls-cert "$T_DIR/srv.crt" --tls-key "$T_DIR/srv.key"

U8=$'\xc3\xbf\xc3\xbe'	# U+00FF U+00FE: sent as the bytes ff fe
cat >"$T_DIR/routes.json" <<EOF
{
 "/v2/app/r/tags/list": [{"status": 302,
   "headers": {"Location": "$INT/_requests"}}],
 "/v2/app/r/manifests/redir": [{"status": 302,
   "headers": {"Location": "$INT/v2/app/r/manifests/v1"}}],
 "/v2/app/r/manifests/loc8bit": [{"status": 302,
   "headers": {"Location": "http://127.0.0.2:1/$U8?sig=s3cr3t"}}],
 "/v2/app/r/manifests/html": [{"status": 200, "content_type": "text/html",
   "body": "<html>login</html>"}],
 "/v2/app/r/manifests/array": [{"status": 200,
   "content_type": "application/vnd.oci.image.manifest.v1+json",
   "body": "[1,2,3]"}],
 "/v2/app/lo/blobs/$LAYER": [{"status": 307,
   "headers": {"Location": "http://localhost:$IPORT/v2/app/r/blobs/$LAYER"}}],
 "/v2/app/ll/blobs/$LAYER": [{"status": 307,
   "headers": {"Location": "http://169.254.169.254/latest/meta-data/"}}],
 "/v2/app/own/blobs/$LAYER": [{"status": 307,
   "headers": {"Location": "$CDN_URL/v2/app/own/blobs/$LAYER?X-Amz-Signature=abc"}}],
 "/v2/app/big/manifests/v1": [{"serve": true, "header_bytes": 33554432}],
 "/v2/app/html/tags/list": [{"status": 200, "content_type": "text/html",
   "headers": {"Link": "<https://phish.example/v2/x/tags/list?n=1>; rel=\"next\""},
   "body": "<html><script>alert(1)</script></html>"}],
 "/v2/app/ra/blobs/$LAYER": [{"status": 429,
   "headers": {"Retry-After": "1\u001b[2J\u0007\u00ff evil"}}],
 "/v2/app/many/manifests/v1": [{"serve": true, "header_count": 5000}]
}
EOF
start_hubfake evil --host 127.0.0.2 --seed t64 --routes "$T_DIR/routes.json"
start_hubfake evilauth --host 127.0.0.2 --auth-realm "$INT/token" \
	--auth-service internal
start_hubfake evilauth8 --host 127.0.0.2 \
	--auth-realm "http://127.0.0.2:1/tok$U8" --auth-service x
cat >"$T_DIR/tlsroutes.json" <<EOF
{
 "/v2/app/plain/blobs/$LAYER": [{"status": 307,
   "headers": {"Location": "$CDN_URL/v2/app/plain/blobs/$LAYER"}}],
 "/v2/app/untrusted/blobs/$LAYER": [{"status": 307,
   "headers": {"Location": "https://127.0.0.2:$TLSCDN_PORT/v2/app/u/blobs/$LAYER"}}]
}
EOF
start_hubfake tlsevil --host 127.0.0.2 --seed t64 \
	--tls-cert "$T_DIR/srv.crt" --tls-key "$T_DIR/srv.key" \
	--routes "$T_DIR/tlsroutes.json"

write_mirror_base "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" 5m
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "evil.test"]
url = $EVIL_URL
default = yes

[upstream "authevil.test"]
url = $EVILAUTH_URL

[upstream "authevil8.test"]
url = $EVILAUTH8_URL

[upstream "listed.test"]
url = $EVIL_URL
redirect_hosts = 127.0.0.2:$CDN_PORT

[upstream "tlsevil.test"]
url = https://127.0.0.2:$TLSEVIL_PORT
tls_verify = no
# Listed, so that the address policy lets it by: TLS must refuse it.
redirect_hosts = 127.0.0.2:$TLSCDN_PORT
EOF
start_mirror "$T_DIR/mirror.conf"
M=$MIRROR_URL

# expect_refused NAME STATUS URL [CURL ARGS...]: that status, OCI JSON.
expect_refused() {
	local name=$1 want=$2
	shift 2
	rq "$@"
	assert_eq "$want" "$RQ_CODE" "$name: status (body $(head -c 300 "$T_DIR/rq.body"))"
	jq -e '.errors[0].code' "$T_DIR/rq.body" >/dev/null ||
		fail "$name: not an OCI error: $(head -c 300 "$T_DIR/rq.body")"
	log "$name: $RQ_CODE $(jq -r '.errors[0].message' "$T_DIR/rq.body")"
	mirror_alive
}
internal_untouched() {
	local n
	n=$(curl -sf "$INT/_requests" | jq length)
	assert_eq 0 "$n" "requests the internal service received ($1)"
}

# -- a -----------------------------------------------------------------------
expect_refused 'tags/list redirected inside' 502 "$M/v2/app/r/tags/list"
expect_refused 'manifest redirected inside' 502 "$M/v2/app/r/manifests/redir"
expect_refused 'the same, again (not cached)' 502 "$M/v2/app/r/manifests/redir"
internal_untouched a
grep -q 'only blobs may be redirected' "$MIRROR_LOG" ||
	fail "no log line names the refused redirect"

# -- b -----------------------------------------------------------------------
expect_refused 'Location with bytes >= 0x80' 502 "$M/v2/app/r/manifests/loc8bit"
! grep -q 's3cr3t' "$MIRROR_LOG" || fail "a Location's query reached the log"
expect_refused 'realm with bytes >= 0x80' 502 \
	"$M/v2/app/r/manifests/v1?ns=authevil8.test"
! grep -qP '[\x80-\xff]' "$MIRROR_LOG" || fail "raw 8-bit bytes in the log"

# -- c -----------------------------------------------------------------------
expect_refused 'realm on the internal service' 502 \
	"$M/v2/app/r/manifests/v1?ns=authevil.test"
grep -q 'token realm 127.0.0.1:.* is not on the upstream' "$MIRROR_LOG" ||
	fail "the refused realm is not logged"
internal_untouched c

# -- d -----------------------------------------------------------------------
expect_refused 'blob redirected to localhost' 502 "$M/v2/app/lo/blobs/$LAYER"
grep -q 'localhost is a loopback address' "$MIRROR_LOG" ||
	fail "no log line says localhost was refused as loopback"
expect_refused 'blob redirected to link-local' 502 "$M/v2/app/ll/blobs/$LAYER"
grep -q '169.254.169.254 is a link-local address' "$MIRROR_LOG" ||
	fail "no log line says 169.254.169.254 was refused"
internal_untouched d
expect_refused "blob redirected to another port of the upstream's address" \
	502 "$M/v2/app/own/blobs/$LAYER"
internal_untouched d
assert_eq 0 "$(curl -sf "$CDN_URL/_requests" | jq length)" \
	"requests the unlisted CDN port received"
rq "$M/v2/app/own/blobs/$LAYER?ns=listed.test"
assert_eq 200 "$RQ_CODE" "blob redirected to a listed redirect_hosts entry"
assert_eq "$LAYER" "sha256:$(rq_sha)" "digest of the redirected blob"
assert_eq "$LSIZE" "$RQ_BYTES" "size of the redirected blob"
! grep -q 'X-Amz-Signature=abc' "$MIRROR_LOG" ||
	fail "a presigned CDN URL's signature reached the log"

# -- e -----------------------------------------------------------------------
expect_refused 'https upstream redirected to http' 502 \
	"$M/v2/app/plain/blobs/$LAYER?ns=tlsevil.test"
grep -q 'redirect from https to http' "$MIRROR_LOG" ||
	fail "https -> http not logged as refused"
expect_refused 'redirect target with an untrusted certificate' 502 \
	"$M/v2/app/untrusted/blobs/$LAYER?ns=tlsevil.test"
jq -r '.errors[0].message' "$T_DIR/rq.body" | grep -q 'certificate verify failed' ||
	fail "the untrusted redirect target was not refused by verification"

# -- f -----------------------------------------------------------------------
expect_refused 'manifest as text/html' 502 "$M/v2/app/r/manifests/html"
expect_refused 'manifest as a JSON array' 502 "$M/v2/app/r/manifests/array"
[ -z "$("$REGMIRROR" cache ls -c "$T_DIR/mirror.conf" 2>/dev/null |
	grep -E 'html|array|redir')" ] || fail "a refused manifest was cached"

# -- g -----------------------------------------------------------------------
echo 5 >"/proc/$MIRROR_PID/clear_refs"
rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$MIRROR_PID/status")
expect_refused '32 MiB of headers' 502 "$M/v2/app/big/manifests/v1"
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$MIRROR_PID/status")
log "peak RSS $hwm kB (was $rss0 kB) over 32 MiB of upstream headers"
[ $((hwm - rss0)) -lt 16384 ] ||
	fail "32 MiB of upstream headers raised peak RSS by $((hwm - rss0)) kB"
expect_refused '5000 header fields' 502 "$M/v2/app/many/manifests/v1"
jq -r '.errors[0].message' "$T_DIR/rq.body" | grep -q 'header fields' ||
	fail "the header-count refusal does not say why"
internal_untouched g

# -- h -----------------------------------------------------------------------
rq "$M/v2/app/html/tags/list"
assert_eq 200 "$RQ_CODE" "a tag list answered as text/html"
assert_eq application/json "$(rq_header Content-Type)" "its Content-Type"
assert_eq nosniff "$(rq_header X-Content-Type-Options)" "X-Content-Type-Options"
assert_eq "" "$(rq_header Link)" "a Link to another host passed on"
rq "$M/v2/app/ra/blobs/$LAYER"
assert_eq 429 "$RQ_CODE" "a 429 blob answer"
assert_eq 60 "$(rq_header Retry-After)" "a Retry-After with escape bytes"
pass
