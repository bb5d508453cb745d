#!/bin/bash
# The mirror serves HTTPS on a tls_listen port (a certificate for
# 127.0.0.1 from a test CA) side by side with a plain `listen` port, and
# reloads its certificate on SIGHUP without dropping connections. Checks:
#  - curl --cacert CA https://TLSPORT/v2/ is 200 and the certificate
#    verifies (openssl s_client, serial 1001); plain HTTP on the TLS port
#    gets no 200; the plain port serves /v2/ over HTTP, and HTTPS on it
#    fails;
#  - dockerd (20.10) with --registry-mirror https://127.0.0.1:TLSPORT (its
#    CA in /etc/docker/certs.d/127.0.0.1:TLSPORT/, removed at exit; no
#    --insecure-registry for it) pulls demo:v1 (Docker media types, from
#    the default upstream "docker.io"): during the pull, whose only path
#    to the mirror is the TLS port, the mirror logs the manifest and every
#    blob of library/demo with 200 and up=docker.io; the image id is the
#    config digest. (dockerd always treats 127.0.0.0/8 as an insecure
#    registry, so it does not verify the mirror's certificate there: the
#    CA file is what a real deployment needs; the verification itself is
#    proven above with curl --cacert and openssl s_client);
#  - SIGHUP: with a slow (rate-limited) TLS download of an 8 MiB blob in
#    flight, the cert/key files are replaced by a second certificate
#    (serial 2002) and the mirror gets SIGHUP: new TLS connections present
#    serial 2002 (and verify) while the download is still running, and the
#    download then completes with the right sha256; the plain port still
#    answers.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo dockerd "$DOCKER" openssl timeout
need_regmirror

mkimage "$T_DIR/demo" single --seed t72-demo --ref v1 --layers 1000,20000,300000
BIG_SIZE=$((8 * 1024 * 1024))
mkimage "$T_DIR/big" raw --seed t72-big --ref v1 --size "$BIG_SIZE"
start_registry up
seed_image "$T_DIR/demo" v1 "$UP_HOST" library/demo:v1 --format v2s2
seed_image "$T_DIR/big" v1 "$UP_HOST" library/big:v1

# -- certificates ----------------------------------------------------------------
CA="$T_DIR/ca"
make_test_ca "$CA"
make_server_cert "$CA" "$T_DIR/cert1" 1001
make_server_cert "$CA" "$T_DIR/cert2" 2002
mkdir -p "$T_DIR/tls"
cp "$T_DIR/cert1.crt" "$T_DIR/tls/server.crt"
cp "$T_DIR/cert1.key" "$T_DIR/tls/server.key"

# -- the mirror: plain + TLS ------------------------------------------------------
PORT=$(free_port)
TLSPORT=$(free_port)
write_mirror_base "$T_DIR/mirror.conf" "$PORT" "$T_DIR/cache" 5m \
	"tls_cert = $T_DIR/tls/server.crt" "tls_key = $T_DIR/tls/server.key" \
	"tls_listen = 127.0.0.1:$TLSPORT"
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "docker.io"]
url = $UP_URL
default = yes
EOF
start_mirror "$T_DIR/mirror.conf"
pid_listens "$MIRROR_PID" "$TLSPORT" ||
	fail "regmirror does not listen on the tls_listen port $TLSPORT"
TLS_URL="https://127.0.0.1:$TLSPORT"

curl -sS -D "$T_DIR/tls-v2.hdr" -o /dev/null --max-time 10 --cacert "$CA/ca.crt" \
	"$TLS_URL/v2/" || fail "curl --cacert CA $TLS_URL/v2/ failed"
tr -d '\r' <"$T_DIR/tls-v2.hdr" >"$T_DIR/tls-v2.txt"
assert_eq 200 "$(head -n 1 "$T_DIR/tls-v2.txt" | awk '{ print $2 }')" \
	"GET /v2/ over TLS"
grep -qix 'docker-distribution-api-version: registry/2.0' "$T_DIR/tls-v2.txt" ||
	fail "GET /v2/ over TLS: no Docker-Distribution-API-Version header"
assert_eq serial=1001 "$(tls_serial "127.0.0.1:$TLSPORT" "$CA/ca.crt")" \
	"certificate on the TLS port (verified against the test CA)"
code=$(http_code "http://127.0.0.1:$TLSPORT/v2/")
[ "$code" != 200 ] || fail "plain HTTP on the TLS port answered 200"
assert_eq 200 "$(http_code "$MIRROR_URL/v2/")" "GET /v2/ on the plain port"
assert_eq 000 "$(http_code "https://$MIRROR_HOST/v2/" --cacert "$CA/ca.crt")" \
	"HTTPS on the plain port"
mirror_alive

# -- dockerd through the TLS port -------------------------------------------------
CERTS_ROOT=/etc/docker/certs.d
[ -d "$CERTS_ROOT" ] || at_exit "rmdir '$CERTS_ROOT' 2>/dev/null"
CERTS_D="$CERTS_ROOT/127.0.0.1:$TLSPORT"
[ ! -e "$CERTS_D" ] || hard_error "$CERTS_D exists already"
at_exit "rm -rf '$CERTS_D'"
mkdir -p "$CERTS_D"
cp "$CA/ca.crt" "$CERTS_D/ca.crt"

start_dockerd --registry-mirror "$TLS_URL"
mmark=$(log_mark "$MIRROR_LOG")
timeout 120 "$DOCKER" -H "unix://$DOCKERD_SOCK" pull demo:v1 \
	>"$T_DIR/pull.out" 2>&1 ||
	{ cat "$T_DIR/pull.out" >&2; fail "docker pull demo:v1 failed"; }
# dockerd knows the mirror only by its TLS port: these lines came over TLS.
mirror_access_grep '"(HEAD|GET) /v2/library/demo/manifests/v1" 200 .* up=docker\.io ' \
	"$mmark" | grep -q . ||
	fail "no HEAD or GET of library/demo/manifests/v1 with 200 from up=docker.io in the mirror's log (dockerd fell back to Docker Hub?)"
config=$(jq -r '.images[0].config.digest' "$T_DIR/demo.json")
for d in $config $(jq -r '.images[0].layers[].digest' "$T_DIR/demo.json"); do
	mirror_access_grep "\"GET /v2/library/demo/blobs/$d\" 200 .* up=docker\\.io " \
		"$mmark" | grep -q . ||
		fail "no GET of blob $d with 200 in the mirror's log"
done
assert_eq "$config" "$(docker_ image inspect -f '{{.Id}}' demo:v1)" \
	"image id of demo:v1"
stop_pid "$DOCKERD_PID" 30 || fail "dockerd did not stop on TERM within 30s"

# -- SIGHUP with a download in flight --------------------------------------------
BIG=$(jq -r '.images[0].layers[0].digest' "$T_DIR/big.json")
# warm the cache over the plain port, so the slow download is a cache hit
got=$(curl -sf --max-time 30 "$MIRROR_URL/v2/library/big/blobs/$BIG" |
	sha256sum | cut -d' ' -f1) || fail "GET the big blob over the plain port"
assert_eq "$BIG" "sha256:$got" "big blob over the plain port"

curl -sS --max-time 45 --cacert "$CA/ca.crt" --limit-rate 1M \
	-o "$T_DIR/big.out" "$TLS_URL/v2/library/big/blobs/$BIG" \
	2>"$T_DIR/big.err" &
DL_PID=$!
register_pid "$DL_PID" "slow download"
started() { [ "$(stat -c %s "$T_DIR/big.out" 2>/dev/null || echo 0)" -ge 262144 ]; }
wait_for 15 started || fail "the slow TLS download did not start"

cp "$T_DIR/cert2.crt" "$T_DIR/tls/server.crt.new"
cp "$T_DIR/cert2.key" "$T_DIR/tls/server.key.new"
mv -f "$T_DIR/tls/server.crt.new" "$T_DIR/tls/server.crt"
mv -f "$T_DIR/tls/server.key.new" "$T_DIR/tls/server.key"
kill -HUP "$MIRROR_PID"
new_cert() { [ "$(tls_serial "127.0.0.1:$TLSPORT" "$CA/ca.crt")" = serial=2002 ]; }
wait_for 10 new_cert || fail "after SIGHUP, new TLS connections still do not \
present the new certificate: $(tls_serial "127.0.0.1:$TLSPORT" "$CA/ca.crt")"
is_alive "$DL_PID" || hard_error "the slow download ended before the reload \
was seen: make it slower (nothing was proven about in-flight connections)"
assert_eq 200 "$(http_code "$TLS_URL/v2/" --cacert "$CA/ca.crt")" \
	"GET /v2/ over TLS with the new certificate"
is_alive "$MIRROR_PID" || fail "regmirror died on SIGHUP"

wait_for 30 eval '! is_alive "$DL_PID"' || fail "the slow download did not finish"
rc=0
wait "$DL_PID" || rc=$?
[ "$rc" = 0 ] || fail "the TLS download in flight during SIGHUP failed (curl exit $rc): $(cat "$T_DIR/big.err")"
assert_eq "$BIG_SIZE" "$(stat -c %s "$T_DIR/big.out")" "size of the download in flight"
assert_eq "$BIG" "sha256:$(sha256_of "$T_DIR/big.out")" \
	"sha256 of the download in flight during SIGHUP"

mirror_alive
pass
