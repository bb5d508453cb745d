#!/bin/bash
# Access control for dockerd hosts (README "Access control",
# docs/SECURITY.md). dockerd never sends a mirror its own credentials
# (moby#30880); logged in to Docker Hub it answers a mirror's challenge
# with the Hub login (moby#42022); on a 401 from the mirror it falls back
# to Docker Hub (unreachable here, so the pull fails). What works for it:
# client certificates, and a mirror that treats Basic it cannot verify
# as anonymous where anonymous may pull.
#
# The mTLS mirror lives in a network namespace the test creates: dockerd
# 20.10 treats 127.0.0.0/8 as insecure and reads the client certificate
# in certs.d only for a registry it treats as secure. A veth pair carries
# a /30 of 10.200.0.0/16 that nothing on the host uses (host side .1,
# namespace side NSADDR = .2). Inside: a docker-registry on the
# namespace's own 127.0.0.1 holding library/demo:v1 (Docker media
# types), and the mirror on NSADDR:PORT, HTTPS only (a certificate for IP
# NSADDR from a server CA), with [auth] client_ca = a client CA and
#	team	alice	docker.io/library/**	pull
#  a. curl from the host over the veth: alice's certificate (CN=alice,
#     client CA) gets the manifest (200, user=cert:alice rule=team) and a
#     token at /token (user=cert:alice rule=token) that then works on a
#     connection without a certificate; no certificate: 401 with the
#     Bearer challenge (realm https://NSADDR:PORT/token); CN=bob from the
#     client CA: 403 DENIED; CN=alice from another CA: the handshake
#     fails (curl exit 35 or 56), nothing is logged as alice, and the
#     mirror keeps serving.
#  b. dockerd in the namespace (nsenter --net; in a mount namespace of
#     its own where a test dir is bind-mounted on /etc/docker, so that
#     /etc/docker/certs.d/NSADDR:PORT/{ca.crt,client.cert,client.key} is
#     the test's and the host's /etc is never written) with
#     --registry-mirror https://NSADDR:PORT pulls demo:v1: every request
#     of the pull is answered 200 to user=cert:alice (the manifest and
#     every blob by rule team), none 401; the image id is the config
#     digest. A second dockerd whose certs.d has ca.crt only: the pull
#     fails, and the mirror answered its manifest request 401, never 200.
#  c. A plain-HTTP mirror on 127.0.0.1 with [auth] htpasswd (user carol)
#     and
#	public	anonymous	docker.io/library/**	pull
#     and a dockerd on the host whose client config (docker --config DIR,
#     DIR/config.json) holds Docker Hub credentials hubuser:hubpass:
#     docker pull demo:v1 succeeds. The mirror saw: GET /v2/ 401 (no
#     credentials), then GET /token?account=hubuser&scope=...library/demo
#     answered 200 with an anonymous token (user=- rule=token; the Basic
#     did not verify, a failed login logged for that request, and
#     anonymous was enough), then HEAD of the tag, GET by digest and every
#     blob 200 (user=- rule=public), and no other answer after the token.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo dockerd "$DOCKER" openssl timeout htpasswd \
	ip nsenter unshare mount base64
need_regmirror
[ -d /etc/docker ] || hard_error "/etc/docker does not exist (docker.io \
installs it): it is the mount point of dockerd's certs.d here"

mkimage "$T_DIR/demo" single --seed t101-demo --ref v1 \
	--layers 1000,20000,300000
CONFIG=$(jq -r '.images[0].config.digest' "$T_DIR/demo.json")
BLOBS="$CONFIG $(jq -r '.images[0].layers[].digest' "$T_DIR/demo.json")"
ACCEPT="Accept: application/vnd.docker.distribution.manifest.v2+json"

# wait_access ERE FROM_LINE: an access line matching ERE after FROM_LINE
# shows up (lines are written when the response is complete).
_access_seen() { mirror_access_grep "$1" "$2" | grep -q .; }
wait_access() { wait_for 10 _access_seen "$1" "$2"; }

# -- the network namespace --------------------------------------------------------
NS="rm101-$$"
VH="rm101h$$"
VN="rm101n$$"
# A /30 of 10.200.0.0/16 that no route of the host (but the default)
# covers or lies inside, and no address of the host is in.
_net_free() {
	! ip -4 -o route show to match "$1.$(($2 + 1))" | grep -qv '^default' &&
	[ -z "$(ip -4 -o route show root "$1.$2/30")" ] &&
	! ip -4 -o addr show | awk '{ sub(/\/.*/, "", $4); print $4 }' |
		grep -qxE "$1\.($2|$(($2 + 1))|$(($2 + 2))|$(($2 + 3)))"
}
NET=
for ((i = 0; i < 64; i++)); do
	n3="10.200.$((RANDOM % 256))" n4=$((RANDOM % 64 * 4))
	if _net_free "$n3" "$n4"; then
		NET="$n3.$n4"
		break
	fi
done
[ -n "$NET" ] || hard_error "no /30 in 10.200.0.0/16 free of the host's \
routes and addresses (64 tries)"
HOSTADDR=${NET%.*}.$((${NET##*.} + 1))
NSADDR=${NET%.*}.$((${NET##*.} + 2))
ip netns add "$NS" 2>"$T_DIR/netns.err" ||
	hard_error "cannot create a network namespace (ip netns add: \
$(cat "$T_DIR/netns.err")): the mTLS parts need one"
at_exit "ip netns del '$NS' 2>/dev/null"
ip link add "$VH" type veth peer name "$VN" 2>"$T_DIR/netns.err" ||
	hard_error "cannot create a veth pair: $(cat "$T_DIR/netns.err")"
at_exit "ip link del '$VH' 2>/dev/null"
ns_() { nsenter --net="/run/netns/$NS" "$@"; }
{
	ip link set "$VN" netns "$NS" &&
	ip addr add "$HOSTADDR/30" dev "$VH" &&
	ip link set "$VH" up &&
	ns_ ip addr add "$NSADDR/30" dev "$VN" &&
	ns_ ip link set "$VN" up &&
	ns_ ip link set lo up
} 2>"$T_DIR/netns.err" ||
	hard_error "cannot set up the veth pair: $(cat "$T_DIR/netns.err")"
log "namespace $NS: $NSADDR (host side $HOSTADDR)"

# -- the registry, inside ---------------------------------------------------------
# The namespace's own loopback: nothing else listens there.
RPORT=5000
RDIR="$T_DIR/registry-ns"
mkdir -p "$RDIR/data"
cat >"$RDIR/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $RDIR/data
http:
  addr: 127.0.0.1:$RPORT
  secret: regmirror-integration-test
EOF
# (docker-registry maps REGISTRY_* variables onto its config.)
# shellcheck disable=SC2046
env $(compgen -e | grep '^REGISTRY_' | sed 's/^/-u /') \
	nsenter --net="/run/netns/$NS" docker-registry serve "$RDIR/config.yml" \
	>>"$RDIR/registry.log" 2>&1 &
RPID=$!
register_pid "$RPID" "registry in $NS" "$RDIR/registry.log"
_ns_registry_ready() {
	is_alive "$RPID" || hard_error "docker-registry in $NS exited"
	[ "$(ns_ curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
		"http://127.0.0.1:$RPORT/v2/")" = 200 ]
}
wait_for 30 _ns_registry_ready ||
	hard_error "docker-registry in $NS did not answer /v2/"
ns_ skopeo --policy "$T_DIR/policy.json" copy -q --all \
	--dest-tls-verify=false --format v2s2 "oci:$T_DIR/demo:v1" \
	"docker://127.0.0.1:$RPORT/library/demo:v1" >>"$T_DIR/skopeo.log" 2>&1 ||
	{ tail -n 20 "$T_DIR/skopeo.log" >&2;
	  hard_error "seeding library/demo:v1 in $NS failed"; }
UP_DIGEST=$(ns_ curl -sfI --max-time 10 -H "$ACCEPT" \
	"http://127.0.0.1:$RPORT/v2/library/demo/manifests/v1" | tr -d '\r' |
	awk 'tolower($1) == "docker-content-digest:" { print $2 }')
[ -n "$UP_DIGEST" ] || hard_error "no digest for library/demo:v1 in $NS"

# -- certificates -----------------------------------------------------------------
SCA="$T_DIR/server-ca"
CCA="$T_DIR/client-ca"
XCA="$T_DIR/other-ca"
make_test_ca "$SCA"
make_test_ca "$CCA"
make_test_ca "$XCA"
make_server_cert "$SCA" "$T_DIR/server" 1001 "$NSADDR"
make_client_cert "$CCA" "$T_DIR/alice" 2001 alice
make_client_cert "$CCA" "$T_DIR/bob" 2002 bob
make_client_cert "$XCA" "$T_DIR/mallory" 3001 alice

# -- the mTLS mirror, inside -------------------------------------------------------
MPORT=5443
cat >"$T_DIR/mtls.conf" <<EOF
# written by $T_NAME
[server]
listen = $NSADDR:$MPORT
tls_cert = $T_DIR/server.crt
tls_key = $T_DIR/server.key
workers = 2
log_level = info
[cache]
dir = $T_DIR/cache-mtls
[timeouts]
connect = 2s
first_byte = 10s
idle = 30s
[auth]
client_ca = $CCA/ca.crt
[access "team"]
users = alice
repositories = docker.io/library/**
[upstream "docker.io"]
url = http://127.0.0.1:$RPORT
default = yes
EOF
"$REGMIRROR" check-config -c "$T_DIR/mtls.conf" >/dev/null ||
	fail "check-config refused the mTLS mirror's config"
MIRROR_LOG="$T_DIR/mirror-mtls.log"
# nsenter itself (not the ns_ function in a subshell): it execs the
# mirror, so $! is the mirror's PID, and stopping it stops the mirror.
nsenter --net="/run/netns/$NS" "$REGMIRROR" serve -c "$T_DIR/mtls.conf" \
	>>"$MIRROR_LOG" 2>&1 &
MIRROR_PID=$!
register_pid "$MIRROR_PID" "regmirror in $NS" "$MIRROR_LOG"
T_STOPSIG[$MIRROR_PID]=INT
M="https://$NSADDR:$MPORT"
TLS=(--cacert "$SCA/ca.crt")
ALICE=(--cert "$T_DIR/alice.crt" --key "$T_DIR/alice.key")
_mtls_ready() {
	is_alive "$MIRROR_PID" || fail "regmirror in $NS exited during start-up"
	rq "$M/v2/" "${TLS[@]}" --max-time 5
	[ "$RQ_CODE" = 401 ] &&
		[ "$(rq_header Docker-Distribution-API-Version)" = registry/2.0 ]
}
wait_for 20 _mtls_ready ||
	fail "the mTLS mirror did not answer GET /v2/ over TLS with 401 within 20s"

# -- a. curl with and without certificates ------------------------------------------
m=$(log_mark "$MIRROR_LOG")
rq "$M/v2/library/demo/manifests/v1" "${TLS[@]}" "${ALICE[@]}" -H "$ACCEPT"
assert_eq 200 "$RQ_CODE" "alice's certificate: library/demo manifest"
assert_eq "$UP_DIGEST" "sha256:$(rq_sha)" "  the manifest"
wait_access '"GET /v2/library/demo/manifests/v1" 200 .* user=cert:alice rule=team up=docker\.io ' "$m" ||
	fail "no access line for alice's certificate (user=cert:alice rule=team)"

m=$(log_mark "$MIRROR_LOG")
rq "$M/token?service=regmirror&scope=repository:library/demo:pull" \
	"${TLS[@]}" "${ALICE[@]}"
assert_eq 200 "$RQ_CODE" "/token with alice's certificate"
TOK=$(jq -r .token "$T_DIR/rq.body")
wait_access '"GET /token\?[^"]*" 200 .* user=cert:alice rule=token ' "$m" ||
	fail "no access line for the token service with user=cert:alice"
rq "$M/v2/library/demo/manifests/v1" "${TLS[@]}" -H "$ACCEPT" \
	-H "Authorization: Bearer $TOK"
assert_eq 200 "$RQ_CODE" "the token issued for alice's certificate, no certificate"

rq "$M/v2/library/demo/manifests/v1" "${TLS[@]}" -H "$ACCEPT"
assert_eq 401 "$RQ_CODE" "no certificate: library/demo manifest"
assert_eq UNAUTHORIZED "$(rq_oci_code)" "  its OCI code"
assert_eq "Bearer realm=\"$M/token\",service=\"regmirror\",scope=\"repository:library/demo:pull\"" \
	"$(rq_header WWW-Authenticate)" "  its challenge"

m=$(log_mark "$MIRROR_LOG")
rq "$M/v2/library/demo/manifests/v1" "${TLS[@]}" -H "$ACCEPT" \
	--cert "$T_DIR/bob.crt" --key "$T_DIR/bob.key"
assert_eq 403 "$RQ_CODE" "bob's certificate (client CA, no rule)"
assert_eq DENIED "$(rq_oci_code)" "  its OCI code"
wait_access '"GET /v2/library/demo/manifests/v1" 403 .* user=cert:bob rule=- ' "$m" ||
	fail "no access line for bob's 403 (user=cert:bob rule=-)"

# TLS 1.2: the server's alert ends the handshake (curl 35). TLS 1.3: the
# client has sent its Finished (and maybe the request) when the alert
# comes: 35, 55 or 56 by timing; either way no HTTP answer.
m=$(log_mark "$MIRROR_LOG")
MALLORY=(--cert "$T_DIR/mallory.crt" --key "$T_DIR/mallory.key")
rc=0
curl -sS -o /dev/null --max-time 10 --tls-max 1.2 "${TLS[@]}" "${MALLORY[@]}" \
	"$M/v2/library/demo/manifests/v1" 2>"$T_DIR/mallory.err" || rc=$?
assert_eq 35 "$rc" "CN=alice from another CA, TLS 1.2: curl's exit \
($(cat "$T_DIR/mallory.err"))"
grep -q 'alert unknown ca' "$T_DIR/mallory.err" ||
	fail "CN=alice from another CA, TLS 1.2: $(cat "$T_DIR/mallory.err")"
rq "$M/v2/library/demo/manifests/v1" "${TLS[@]}" -H "$ACCEPT" "${MALLORY[@]}"
case $RQ_RC in
35 | 55 | 56) ;;
*) fail "CN=alice from another CA, TLS 1.3: curl exit $RQ_RC (HTTP \
$RQ_CODE), want 35, 55 or 56 (the handshake refused)" ;;
esac
assert_eq 000 "$RQ_CODE" "CN=alice from another CA: no HTTP answer"
rq "$M/v2/library/demo/manifests/v1" "${TLS[@]}" "${ALICE[@]}" -H "$ACCEPT"
assert_eq 200 "$RQ_CODE" "alice again, after the refused handshake"
is_alive "$MIRROR_PID" || fail "the mTLS mirror died"
wait_access '"GET /v2/library/demo/manifests/v1" 200 .* user=cert:alice ' "$m" ||
	fail "no access line for alice's request after the refused handshake"
assert_eq 1 "$(mirror_access_lines "$m" | grep -c .)" \
	"access lines since the refused handshake (alice's only)"

# -- b. dockerd with a client certificate -----------------------------------------
# dockerd reads /etc/docker/certs.d/HOST:PORT/; in its own mount
# namespace, /etc/docker is this dir.
ETCD="$T_DIR/etc-docker"
CERTS_D="$ETCD/certs.d/$NSADDR:$MPORT"
mkdir -p "$CERTS_D"
cp "$SCA/ca.crt" "$CERTS_D/ca.crt"
cp "$T_DIR/alice.crt" "$CERTS_D/client.cert"
cp "$T_DIR/alice.key" "$CERTS_D/client.key"
# shellcheck disable=SC2016
DOCKERD_WRAP=(nsenter --net="/run/netns/$NS"
	unshare --mount --propagation private
	sh -c 'mount --bind "$1" /etc/docker && shift && exec "$@"' sh "$ETCD")
start_dockerd --registry-mirror "$M"
m=$(log_mark "$MIRROR_LOG")
t0=$(now_us)
timeout 120 "$DOCKER" -H "unix://$DOCKERD_SOCK" pull demo:v1 \
	>"$T_DIR/pull-b.out" 2>&1 ||
	{ cat "$T_DIR/pull-b.out" >&2; fail "dockerd with alice's certificate: \
docker pull demo:v1 failed"; }
log "b: pull with a client certificate: $((($(now_us) - t0) / 1000)) ms"
wait_access '"(HEAD|GET) /v2/library/demo/manifests/v1" 200 .* user=cert:alice rule=team up=docker\.io ' "$m" ||
	fail "no HEAD or GET of library/demo/manifests/v1 answered 200 to user=cert:alice (dockerd fell back to Docker Hub?)"
for d in $BLOBS; do
	wait_access "\"GET /v2/library/demo/blobs/$d\" 200 .* user=cert:alice rule=team up=docker\\.io " "$m" ||
		fail "no GET of blob $d answered 200 to user=cert:alice"
done
mirror_access_lines "$m" >"$T_DIR/b-lines"
other=$(grep -v ' 200 [0-9]* [0-9]*ms user=cert:alice ' "$T_DIR/b-lines" || true)
[ -z "$other" ] || fail "requests of dockerd's pull not answered 200 to \
cert:alice: $other"
assert_eq "$CONFIG" "$(docker_ image inspect -f '{{.Id}}' demo:v1)" \
	"image id of demo:v1"
[ ! -e "/etc/docker/certs.d/$NSADDR:$MPORT" ] ||
	fail "the host's /etc/docker/certs.d has $NSADDR:$MPORT"
stop_pid "$DOCKERD_PID" 30 || fail "dockerd did not stop on TERM within 30s"

# The same, with certs.d holding the server's CA only.
rm -f "$CERTS_D/client.cert" "$CERTS_D/client.key"
start_dockerd --registry-mirror "$M"
m=$(log_mark "$MIRROR_LOG")
if timeout 120 "$DOCKER" -H "unix://$DOCKERD_SOCK" pull demo:v1 \
	>"$T_DIR/pull-b2.out" 2>&1; then
	fail "dockerd without a client certificate pulled demo:v1"
fi
grep -q 'registry-1\.docker\.io' "$T_DIR/pull-b2.out" ||
	fail "dockerd without a client certificate did not fall back to \
Docker Hub: $(cat "$T_DIR/pull-b2.out")"
wait_access '"(HEAD|GET) /v2/library/demo/manifests/v1" 401 .* user=- rule=- ' "$m" ||
	fail "no 401 for library/demo/manifests/v1 without a client certificate"
mirror_access_lines "$m" >"$T_DIR/b2-lines"
if grep -E '"(HEAD|GET) /v2/library/demo/(manifests|blobs)/[^"]*" 200 ' \
	"$T_DIR/b2-lines"; then
	fail "a manifest or blob was served without a client certificate"
fi
stop_pid "$DOCKERD_PID" 30 || fail "dockerd did not stop on TERM within 30s"
is_alive "$MIRROR_PID" || fail "the mTLS mirror died"
unset DOCKERD_WRAP

# -- c. dockerd logged in to Docker Hub, an anonymous-allowed mirror ------------
start_registry up
seed_image "$T_DIR/demo" v1 "$UP_HOST" library/demo:v1 --format v2s2
htpasswd -Bbc "$T_DIR/htpasswd" carol cpass-3 2>/dev/null
write_mirror_conf "$T_DIR/public.conf" "$(free_port)" "$T_DIR/cache-pub" \
	"$UP_URL"
cat >>"$T_DIR/public.conf" <<EOF
[auth]
htpasswd = $T_DIR/htpasswd
[access "public"]
users = anonymous
repositories = docker.io/library/**
EOF
"$REGMIRROR" check-config -c "$T_DIR/public.conf" >/dev/null ||
	fail "check-config refused the public mirror's config"
MIRROR_READY_CODE=401
start_mirror "$T_DIR/public.conf" mirror-public

HUBCFG="$T_DIR/hub-client"
mkdir -p "$HUBCFG"
printf '{"auths":{"https://index.docker.io/v1/":{"auth":"%s"}}}\n' \
	"$(printf 'hubuser:hubpass' | base64)" >"$HUBCFG/config.json"
start_dockerd --registry-mirror "$MIRROR_URL" --insecure-registry "$MIRROR_HOST"
m=$(log_mark "$MIRROR_LOG")
t0=$(now_us)
timeout 120 "$DOCKER" --config "$HUBCFG" -H "unix://$DOCKERD_SOCK" \
	pull demo:v1 >"$T_DIR/pull-c.out" 2>&1 ||
	{ cat "$T_DIR/pull-c.out" >&2; fail "dockerd logged in to Docker Hub: \
docker pull demo:v1 failed"; }
log "c: pull with Docker Hub credentials: $((($(now_us) - t0) / 1000)) ms"
C_DIGEST=$(curl -sfI --max-time 10 -H "$ACCEPT" \
	"$UP_URL/v2/library/demo/manifests/v1" | tr -d '\r' |
	awk 'tolower($1) == "docker-content-digest:" { print $2 }')
for d in $BLOBS; do
	wait_access "\"GET /v2/library/demo/blobs/$d\" 200 .* user=- rule=public up=docker\\.io " "$m" ||
		fail "no GET of blob $d answered 200 (rule public)"
done
# What dockerd sent, in order: the ping without credentials (401), the
# token request with the Hub login as Basic (account=hubuser), then the
# pull.
mirror_access_lines "$m" | sed 's/^.* access r[0-9]* //' >"$T_DIR/c-lines"
assert_eq '127.0.0.1 "GET /v2/" 401' "$(head -n 1 "$T_DIR/c-lines" |
	awk '{ print $1, $2, $3, $4 }')" "c: dockerd's first request"
tl=$(grep -nE '^[^ ]+ "GET /token\?account=hubuser&[^"]*scope=repository%3Alibrary%2Fdemo%3Apull[^"]*" 200 .* user=- rule=token ' \
	"$T_DIR/c-lines" | cut -d: -f1 | head -n 1)
[ -n "$tl" ] || fail "c: no token request for hubuser answered 200 with an \
anonymous token (user=- rule=token): $(head -n 3 "$T_DIR/c-lines")"
assert_eq 2 "$tl" "c: the token request's place"
# The Basic reached the mirror and did not verify: the token request's
# id has a failed login (address only) in the log.
rid=$(mirror_access_lines "$m" | sed -n "${tl}p" |
	sed 's/^.* access \(r[0-9]*\) .*$/\1/')
grep -q "info $rid 127\.0\.0\.1: failed login at the token service: anonymous\$" \
	"$MIRROR_LOG" ||
	fail "c: no failed login logged for the token request $rid"
! grep -q hubpass "$MIRROR_LOG" || fail "c: the Hub password in the log"
tail -n +"$((tl + 1))" "$T_DIR/c-lines" >"$T_DIR/c-after"
grep -qE '^[^ ]+ "HEAD /v2/library/demo/manifests/v1" 200 .* user=- rule=public ' \
	"$T_DIR/c-after" || fail "c: no HEAD of the tag answered 200 (rule public)"
grep -qE "^[^ ]+ \"GET /v2/library/demo/manifests/$C_DIGEST\" 200 .* user=- rule=public " \
	"$T_DIR/c-after" || fail "c: no GET of the manifest by digest answered 200"
bad=$(grep -vE '" 200 [0-9]+ [0-9]+ms user=- rule=public up=docker\.io ' \
	"$T_DIR/c-after" || true)
[ -z "$bad" ] || fail "c: after the token, answers other than 200 by rule \
public: $bad"
assert_eq "$CONFIG" "$(docker_ image inspect -f '{{.Id}}' demo:v1)" \
	"image id of demo:v1"
stop_pid "$DOCKERD_PID" 30 || fail "dockerd did not stop on TERM within 30s"
mirror_alive
pass
