#!/bin/bash
# HTTPS upstreams (docker-registry with http.tls, certificates from a test
# CA made here with openssl):
#  (a) url = https://127.0.0.1:P with ca_file = the test CA, the server
#      certificate for IP 127.0.0.1 (and a DNS name): skopeo pulls the
#      image through the mirror, every blob and the top digest verified;
#  (b) the same without ca_file (the system store does not know the test
#      CA): GET of the manifest by tag and of a blob answer 502 UNAVAILABLE
#      naming the upstream, the upstream logs no request, and nothing is
#      cached;
#  (c) ca_file set, but the server certificate is only for
#      DNS:wrong.example (host verification fails for 127.0.0.1): the same
#      502s, no upstream request, nothing cached;
#  (d) tls_verify = no, no ca_file, against the wrong.example server
#      (neither chain nor name checks): skopeo pulls through fine.
# Each configuration is a fresh mirror with its own cache dir; /v2/ of the
# mirror answers 200 throughout.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need openssl skopeo docker-registry
need_regmirror

# -- a test CA and two server certificates ------------------------------------
PKI=$T_DIR/pki
mkdir -p "$PKI"
ossl() {
	openssl "$@" >>"$PKI/openssl.log" 2>&1 ||
		{ tail -n 20 "$PKI/openssl.log" >&2; hard_error "openssl $1 failed"; }
}
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$PKI/ca.key" -out "$PKI/ca.pem" -days 2 \
	-subj "/CN=regmirror test CA $T_NAME" \
	-addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign,cRLSign
# server_cert NAME SAN: NAME.pem / NAME.key signed by the test CA.
server_cert() {
	ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$PKI/$1.key" -out "$PKI/$1.csr" -subj "/CN=$1" \
		-addext "subjectAltName=$2" \
		-addext basicConstraints=critical,CA:FALSE \
		-addext extendedKeyUsage=serverAuth
	ossl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
		-CAcreateserial -days 2 -copy_extensions copy -out "$PKI/$1.pem"
}
server_cert good "IP:127.0.0.1,DNS:registry.test"
server_cert wrong "DNS:wrong.example"
# The certificates are what the cases assume.
openssl x509 -in "$PKI/good.pem" -noout -ext subjectAltName | grep -q 'IP Address:127.0.0.1' ||
	hard_error "good.pem lacks the IP SAN"
openssl x509 -in "$PKI/wrong.pem" -noout -ext subjectAltName | grep -q 'IP Address' &&
	hard_error "wrong.pem has an IP SAN"
openssl verify -CAfile "$PKI/ca.pem" "$PKI/good.pem" "$PKI/wrong.pem" \
	>>"$PKI/openssl.log" 2>&1 || hard_error "the test certificates do not verify"
# skopeo's cert dir for the test CA
mkdir -p "$PKI/certs.d"
cp "$PKI/ca.pem" "$PKI/certs.d/ca.crt"

# -- HTTPS registries -------------------------------------------------------
_tls_registry_ready() {
	is_alive "$2" || hard_error "docker-registry exited during start-up"
	[ "$(http_code "$1/v2/" -k)" = 200 ]
}

# start_tls_registry NAME CERTNAME: docker-registry on HTTPS with
# CERTNAME.pem/.key; exports NAME_PORT, NAME_HOST, NAME_URL (https://),
# NAME_LOG, NAME_PID.
start_tls_registry() {
	local name=$1 cert=$2 var port dir pid
	var=$(echo "$name" | tr 'a-z-' 'A-Z_')
	port=$(free_port)
	dir="$T_DIR/registry-$name"
	mkdir -p "$dir/data"
	cat >"$dir/config.yml" <<EOYML
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/data
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: regmirror-integration-test
  tls:
    certificate: $PKI/$cert.pem
    key: $PKI/$cert.key
EOYML
	# shellcheck disable=SC2046
	env $(compgen -e | grep '^REGISTRY_' | sed 's/^/-u /') \
		docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 &
	pid=$!
	register_pid "$pid" "registry $name" "$dir/registry.log"
	printf -v "${var}_PORT" %s "$port"
	printf -v "${var}_HOST" %s "127.0.0.1:$port"
	printf -v "${var}_URL" %s "https://127.0.0.1:$port"
	printf -v "${var}_LOG" %s "$dir/registry.log"
	printf -v "${var}_PID" %s "$pid"
	wait_for 30 _tls_registry_ready "https://127.0.0.1:$port" "$pid" ||
		hard_error "docker-registry $name did not answer https://127.0.0.1:$port/v2/"
	pid_listens "$pid" "$port" ||
		hard_error "docker-registry $name (pid $pid) does not own :$port"
}

# tls_log_sync NAME: registry_log_sync for an HTTPS registry.
tls_log_sync() {
	local var url log marker
	var=$(echo "$1" | tr 'a-z-' 'A-Z_')
	url=${var}_URL log=${var}_LOG
	url=${!url} log=${!log}
	marker="sync-$RANDOM$RANDOM"
	curl -sk -o /dev/null --max-time 10 "$url/v2/?$marker" || true
	wait_for 10 grep -qF "/v2/?$marker " "$log" ||
		hard_error "registry $1: marker request not logged"
}

start_tls_registry good good
start_tls_registry wrong wrong
# What a verifying client sees: the test CA and the IP name work for the
# good one; the wrong one verifies only as wrong.example.
assert_eq 200 "$(http_code "$GOOD_URL/v2/" --cacert "$PKI/ca.pem")" \
	"curl --cacert the test CA to $GOOD_URL (test setup)"
rc=0
curl -s -o /dev/null --max-time 10 --cacert "$PKI/ca.pem" "$WRONG_URL/v2/" ||
	rc=$?
[ "$rc" = 60 ] ||
	hard_error "curl --cacert to $WRONG_URL: exit $rc, want 60 (certificate problem)"
assert_eq 200 "$(http_code "https://wrong.example:$WRONG_PORT/v2/" \
	--cacert "$PKI/ca.pem" --resolve "wrong.example:$WRONG_PORT:127.0.0.1")" \
	"curl --cacert to wrong.example:$WRONG_PORT (test setup)"

mkimage "$T_DIR/img" single --seed t56 --ref v1 --layers 3000,70000
seed_image "$T_DIR/img" v1 "$GOOD_HOST" app/z:v1 --dest-cert-dir "$PKI/certs.d"
seed_image "$T_DIR/img" v1 "$WRONG_HOST" app/z:v1
LAYER=$(jq -r '.images[0].layers[0].digest' "$T_DIR/img.json")

# -- the mirror, one per configuration ------------------------------------------
# mirror_for CASE URL [LINE...]: stop the previous mirror, start one with
# upstream "secure.test" = URL (and LINEs), its own cache and log.
PREV_PID=
mirror_for() {
	local c=$1 url=$2 l
	shift 2
	[ -z "$PREV_PID" ] || stop_pid "$PREV_PID" ||
		log "mirror $PREV_PID needed KILL to stop"
	{
		printf '# written by %s, case %s\n' "$T_NAME" "$c"
		printf '[server]\nlisten = 127.0.0.1:%s\n' "$(free_port)"
		printf 'workers = 2\nlog_level = info\n\n'
		printf '[cache]\ndir = %s\ntag_ttl = 5m\n\n' "$T_DIR/cache-$c"
		printf '[timeouts]\nconnect = 2s\nfirst_byte = 10s\nidle = 30s\n\n'
		printf '[upstream "secure.test"]\nurl = %s\ndefault = yes\n' "$url"
		for l in "$@"; do printf '%s\n' "$l"; done
	} >"$T_DIR/mirror-$c.conf"
	start_mirror "$T_DIR/mirror-$c.conf" "mirror-$c"
	PREV_PID=$MIRROR_PID
}

# pull_ok CASE REGNAME: skopeo pulls app/z:v1 through the mirror; the
# copy equals the image; the registry REGNAME served manifest and blobs.
pull_ok() {
	local c=$1 var log mark
	var=$(echo "$2" | tr 'a-z-' 'A-Z_')_LOG
	log=${!var}
	tls_log_sync "$2"
	mark=$(log_mark "$log")
	skopeo_ copy -q --all --src-tls-verify=false \
		"docker://$MIRROR_HOST/app/z:v1" "oci:$T_DIR/pull-$c:x" \
		>>"$T_DIR/skopeo-pull.log" 2>&1 ||
		{ tail -n 20 "$T_DIR/skopeo-pull.log" >&2;
		  fail "($c) skopeo copy through the mirror failed"; }
	layout_same "$T_DIR/img" "$T_DIR/pull-$c"
	tls_log_sync "$2"
	[ "$(count_upstream_gets_ok "$log" /v2/app/z/manifests/ "$mark")" -gt 0 ] ||
		fail "($c) the $2 registry served no manifest GET for the pull"
	[ "$(count_upstream_gets_ok "$log" /v2/app/z/blobs/ "$mark")" -gt 0 ] ||
		fail "($c) the $2 registry served no blob GET for the pull"
	log "($c) pulled through the mirror from https $2"
	mirror_alive
}

# handshake_failed LOG FROM: the registry logged a failed TLS handshake
# after line FROM.
handshake_failed() {
	tail -n +"$(($2 + 1))" "$1" | grep -q 'TLS handshake error'
}

# refused CASE REGNAME: the manifest by tag and a blob answer 502
# UNAVAILABLE naming secure.test; the registry saw a failed TLS handshake
# and answered no request; nothing is in the cache.
refused() {
	local c=$1 var log mark path code m n
	var=$(echo "$2" | tr 'a-z-' 'A-Z_')_LOG
	log=${!var}
	tls_log_sync "$2"
	mark=$(log_mark "$log")
	for path in /v2/app/z/manifests/v1 "/v2/app/z/blobs/$LAYER"; do
		rm -f "$T_DIR/body"
		code=$(curl -s --max-time 30 -o "$T_DIR/body" -w '%{http_code}' \
			-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
			"$MIRROR_URL$path") || true
		[ -f "$T_DIR/body" ] || : >"$T_DIR/body"
		[ "$code" = 502 ] ||
			fail "($c) GET $path: status $code, want 502; body: $(head -c 300 "$T_DIR/body" | tr -d '\0')"
		m=$(jq -r '.errors[0].code' "$T_DIR/body" 2>/dev/null) ||
			m="(no OCI error body)"
		assert_eq UNAVAILABLE "$m" "($c) GET $path: error code"
		m=$(jq -r '.errors[0].message' "$T_DIR/body")
		[[ $m == *secure.test* ]] ||
			fail "($c) GET $path: the message does not name secure.test: $m"
		log "($c) GET $path: $code UNAVAILABLE \"$m\""
	done
	wait_for 10 handshake_failed "$log" "$mark" ||
		fail "($c) the $2 registry logged no failed TLS handshake"
	tls_log_sync "$2"
	n=$(count_upstream_requests "$log" /v2/app/ "$mark")
	assert_eq 0 "$n" "($c) requests the $2 registry answered"
	n=$(find "$T_DIR/cache-$c/blobs" -type f 2>/dev/null | wc -l)
	assert_eq 0 "$n" "($c) files under the cache's blobs/"
	mirror_alive
}

# (a) the test CA in ca_file: works
mirror_for a "$GOOD_URL" "ca_file = $PKI/ca.pem"
pull_ok a good
# (b) no ca_file: the chain does not verify
mirror_for b "$GOOD_URL"
refused b good
# (c) ca_file, but the certificate is not for 127.0.0.1
mirror_for c "$WRONG_URL" "ca_file = $PKI/ca.pem"
refused c wrong
# (d) tls_verify = no: works against that same server, without ca_file
mirror_for d "$WRONG_URL" "tls_verify = no"
pull_ok d wrong
pass
