#!/bin/bash
# Failover, retries, TLS versions and prefix routing, with one mirror
# ([timeouts] first_byte = 2s) and these upstreams: "failover.test"
# (default; url = a port nobody listens on, then url = a docker-registry),
# "flaky.test" (hubfake.py with scripted 503s) and "alpha.test" (hubfake.py,
# aliases = alpha-alias.test).
#  a. skopeo copies fo/img:v1 through the mirror (default upstream) with the
#     right digests (layout_same); the mirror's log says the dead endpoint
#     was marked down and that it failed over to the registry's port; a
#     request for an uncached tag (fo/img:v2) within 10 s of the start of
#     that pull is served (200, right digest) by the registry and adds no
#     line mentioning the dead port to the mirror's log (no new connect
#     attempt there).
#  b. 503, 503, then 200 for one manifest: the client gets 200 with the
#     right bytes, hubfake saw exactly 3 requests for it, the mirror logged
#     "retry 1 in M1 ms" and "retry 2 in M2 ms" with M2 > M1 (backoff) and
#     no "retry 3", and hubfake saw each retry at least Mi ms (- 10 ms)
#     after the previous answer. Ten 503s in a row: the client gets 502 or
#     503 with OCI code UNAVAILABLE in under 10 s, and hubfake saw between
#     2 and 4 requests (retries, bounded).
#  c. The HTTPS listener (tls_listen, a test-CA certificate for 127.0.0.1):
#     openssl s_client -tls1_2 and -tls1_3 complete a verified handshake
#     with that protocol (and curl --tls-max 1.2 / --tlsv1.3 get /v2/ 200);
#     -tls1_1 and -tls1 (with -cipher DEFAULT@SECLEVEL=0, so the client
#     does offer them) fail, while the same client commands do complete a
#     TLS 1.1 / 1.0 handshake with an openssl s_server that allows them
#     (a control: the refusal is the mirror's).
#  d. /alpha.test/v2/app/demo/manifests/v1,
#     /alpha-alias.test/v2/app/demo/manifests/v1,
#     /v2/app/demo/manifests/v1?ns=alpha-alias.test and
#     /v2/alpha-alias.test/app/demo/manifests/v1 all return alpha's
#     manifest (its digest; the default upstream holds a different
#     app/demo:v1), each with an access line "200 ... up=alpha.test";
#     alpha saw GET /v2/app/demo/manifests/v1 and the default upstream's
#     registry saw no request for app/demo. With a fresh tag fN per form
#     (no cache hit), each reaches alpha as /v2/app/demo/manifests/fN.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo openssl timeout
need_regmirror


# hub_reqs LOG: the JSON request records of a hubfake log, one a line.
hub_reqs() { sed -n 's/^hubfake-req //p' "$1"; }

ACCEPT=(-H 'Accept: application/vnd.oci.image.manifest.v1+json'
	-H 'Accept: application/vnd.oci.image.index.v1+json'
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json')

# mget PATH: GET through the mirror; sets CODE, SECS and the files hdrs,
# body.
mget() {
	local t0 t1
	rm -f "$T_DIR/hdrs" "$T_DIR/body"
	t0=${EPOCHREALTIME/./}
	CODE=$(curl -s --max-time 30 "${ACCEPT[@]}" -D "$T_DIR/hdrs" \
		-o "$T_DIR/body" -w '%{http_code}' "$MIRROR_URL$1") || true
	t1=${EPOCHREALTIME/./}
	touch "$T_DIR/hdrs" "$T_DIR/body"
	SECS=$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 1e6 }')
}

# expect_digest WHAT DIGEST: the last reply was 200 with DIGEST's bytes.
expect_digest() {
	[ "$CODE" = 200 ] ||
		fail "$1: status $CODE, want 200; body: $(head -c 300 "$T_DIR/body" | tr -d '\0')"
	assert_eq "$2" "sha256:$(sha256_of "$T_DIR/body")" "$1: sha256 of the body"
}

# ---------------------------------------------------------------------------
# Upstreams, certificates, the mirror

mkimage "$T_DIR/img1" single --seed t77-img1 --ref v1 --layers 1000,20000,50000
mkimage "$T_DIR/img2" single --seed t77-img2 --ref v2 --layers 3000
mkimage "$T_DIR/decoy" single --seed t77-decoy --ref v1 --layers 1500
start_registry up
seed_image "$T_DIR/img1" v1 "$UP_HOST" fo/img:v1
seed_image "$T_DIR/img2" v2 "$UP_HOST" fo/img:v2
seed_image "$T_DIR/decoy" v1 "$UP_HOST" app/demo:v1
DEAD_PORT=$(free_port)

E503='{"status": 503, "body": "{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"try later\",\"detail\":null}]}"}'
jq -n --argjson e "$E503" '{
	"/v2/app/r3/manifests/v1": [$e, $e, {"serve": true}],
	"/v2/app/r10/manifests/v1": ([range(10) | $e] + [{"serve": true}])
}' >"$T_DIR/routes.json" || hard_error "could not write routes.json"
start_hubfake flaky --routes "$T_DIR/routes.json"
start_hubfake alpha

CA="$T_DIR/ca"
make_test_ca "$CA"
make_server_cert "$CA" "$T_DIR/server" 1001
TLSPORT=$(free_port)
write_mirror_base "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" 5m \
	"tls_cert = $T_DIR/server.crt" "tls_key = $T_DIR/server.key" \
	"tls_listen = 127.0.0.1:$TLSPORT"
sed -i 's/^first_byte = .*/first_byte = 2s/' "$T_DIR/mirror.conf"
grep -qx 'first_byte = 2s' "$T_DIR/mirror.conf" ||
	hard_error "could not set first_byte = 2s"
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "failover.test"]
url = http://127.0.0.1:$DEAD_PORT
url = $UP_URL
default = yes

[upstream "flaky.test"]
url = $FLAKY_URL

[upstream "alpha.test"]
url = $ALPHA_URL
aliases = alpha-alias.test
EOF
start_mirror "$T_DIR/mirror.conf"
pid_listens "$MIRROR_PID" "$TLSPORT" ||
	fail "regmirror does not listen on the tls_listen port $TLSPORT"

# ---------------------------------------------------------------------------
# a. Failover from a dead url to the live one

dead_mentions() { grep -c "127\.0\.0\.1:$DEAD_PORT\([^0-9]\|$\)" "$MIRROR_LOG" || true; }
registry_log_sync up
umark=$(log_mark "$UP_LOG")
mmark=$(log_mark "$MIRROR_LOG")
t_pull=${EPOCHREALTIME/./}
skopeo_ copy -q --all --src-tls-verify=false \
	"docker://$MIRROR_HOST/fo/img:v1" "oci:$T_DIR/pull:x" \
	>"$T_DIR/skopeo-pull.log" 2>&1 ||
	{ cat "$T_DIR/skopeo-pull.log" >&2;
	  fail "a: skopeo copy of fo/img:v1 through the mirror failed"; }
layout_same "$T_DIR/img1" "$T_DIR/pull"
tail -n +"$((mmark + 1))" "$MIRROR_LOG" >"$T_DIR/a.log"
grep -E "marked down.*127\.0\.0\.1:$DEAD_PORT|127\.0\.0\.1:$DEAD_PORT.*marked down" \
	"$T_DIR/a.log" >&2 ||
	fail "a: the mirror's log does not say 127.0.0.1:$DEAD_PORT was marked down"
grep -E "failing over to 127\.0\.0\.1:$UP_PORT([^0-9]|$)" "$T_DIR/a.log" >&2 ||
	fail "a: the mirror's log does not say it failed over to 127.0.0.1:$UP_PORT"
registry_log_sync up
[ "$(count_upstream_gets_ok "$UP_LOG" /v2/fo/img/manifests/v1 "$umark")" -ge 1 ] ||
	fail "a: the registry did not serve fo/img:v1's manifest"

n1=$(dead_mentions)
umark=$(log_mark "$UP_LOG")
mmark=$(log_mark "$MIRROR_LOG")
mget /v2/fo/img/manifests/v2
elapsed=$(( (${EPOCHREALTIME/./} - t_pull) / 1000 ))
[ "$elapsed" -lt 9500 ] || hard_error "a: the second request came ${elapsed} ms \
after the pull started: too late to show the dead url is still skipped"
expect_digest "a: GET fo/img:v2 ${elapsed} ms after the failover" \
	"$(layout_top "$T_DIR/img2")"
n2=$(dead_mentions)
assert_eq "$n1" "$n2" "a: lines naming the dead url 127.0.0.1:$DEAD_PORT before/after \
the second request ($(tail -n +"$((mmark + 1))" "$MIRROR_LOG" | grep "$DEAD_PORT"))"
registry_log_sync up
assert_eq 1 "$(count_upstream_gets_ok "$UP_LOG" /v2/fo/img/manifests/v2 "$umark")" \
	"a: registry GETs of fo/img:v2 for the second request"
mirror_access_grep '"GET /v2/fo/img/manifests/v2" 200 .* up=failover\.test ' \
	"$mmark" | grep -q . || fail "a: no access line 200 up=failover.test for fo/img:v2"
log "a: pulled fo/img:v1 via failover; fo/img:v2 ${elapsed} ms later went \
straight to :$UP_PORT ($n1 lines name :$DEAD_PORT, before and after)"

# ---------------------------------------------------------------------------
# b. Retries with backoff

MDIGEST=$(jq -r .manifest.digest "$FLAKY_INFO")
mmark=$(log_mark "$MIRROR_LOG")
mget "/v2/app/r3/manifests/v1?ns=flaky.test"
expect_digest "b: manifest after 503, 503, 200" "$MDIGEST"
n=$(curl -sf --max-time 10 "$FLAKY_URL/_count?path=/v2/app/r3/manifests/v1") ||
	hard_error "hubfake flaky: /_count failed"
assert_eq 3 "$n" "b: requests hubfake saw for 503, 503, 200"
tail -n +"$((mmark + 1))" "$MIRROR_LOG" >"$T_DIR/b.log"
m1=$(sed -n 's/.*upstream flaky\.test: .*retry 1 in \([0-9]*\) ms.*/\1/p' "$T_DIR/b.log")
m2=$(sed -n 's/.*upstream flaky\.test: .*retry 2 in \([0-9]*\) ms.*/\1/p' "$T_DIR/b.log")
[ -n "$m1" ] && [ -n "$m2" ] || fail "b: no 'retry 1' and 'retry 2' lines for flaky.test:
$(cat "$T_DIR/b.log")"
[ "$(echo "$m1" | wc -l)" = 1 ] && [ "$(echo "$m2" | wc -l)" = 1 ] ||
	fail "b: more than one 'retry 1' / 'retry 2' line: $(grep retry "$T_DIR/b.log")"
! grep -q 'retry 3' "$T_DIR/b.log" || fail "b: a third retry after 503, 503, 200"
[ "$m2" -gt "$m1" ] || fail "b: no backoff: retry 1 in $m1 ms, retry 2 in $m2 ms"
# When hubfake saw each request (it logs before answering).
mapfile -t ts < <(hub_reqs "$FLAKY_LOG" |
	jq -r 'select(.path == "/v2/app/r3/manifests/v1") | .time')
g1=$(awk -v a="${ts[0]}" -v b="${ts[1]}" 'BEGIN { printf "%d", (b - a) * 1000 }')
g2=$(awk -v a="${ts[1]}" -v b="${ts[2]}" 'BEGIN { printf "%d", (b - a) * 1000 }')
[ "$g1" -ge $((m1 - 10)) ] && [ "$g2" -ge $((m2 - 10)) ] ||
	fail "b: retries came sooner than their delays: gaps $g1 ms, $g2 ms; delays $m1 ms, $m2 ms"
log "b: 503, 503, 200 -> 200; retry 1 in $m1 ms (seen after $g1 ms), retry 2 in $m2 ms (seen after $g2 ms)"
grep -E 'retry [12] in' "$T_DIR/b.log" >&2

mmark=$(log_mark "$MIRROR_LOG")
mget "/v2/app/r10/manifests/v1?ns=flaky.test"
[[ $CODE =~ ^50[23]$ ]] ||
	fail "b: ten 503s: status $CODE, want 502 or 503; body: $(head -c 300 "$T_DIR/body")"
assert_eq UNAVAILABLE "$(jq -r '.errors[0].code' "$T_DIR/body" 2>/dev/null)" \
	"b: ten 503s: OCI error code (body: $(head -c 200 "$T_DIR/body"))"
awk -v s="$SECS" 'BEGIN { exit !(s < 10) }' ||
	fail "b: ten 503s: the $CODE came after ${SECS}s (want < 10s)"
n=$(curl -sf --max-time 10 "$FLAKY_URL/_count?path=/v2/app/r10/manifests/v1") ||
	hard_error "hubfake flaky: /_count failed"
[ "$n" -ge 2 ] && [ "$n" -le 4 ] ||
	fail "b: ten 503s: hubfake saw $n requests, want 2 to 4"
log "b: ten 503s -> $CODE in ${SECS}s after $n upstream requests: $(jq -r '.errors[0].message' "$T_DIR/body")"

# ---------------------------------------------------------------------------
# c. TLS versions on the HTTPS listener

# s_client_try HOSTPORT ARGS...: one handshake; sets SC_OUT (its output)
# and SC_RC (exit status).
s_client_try() {
	local hp=$1
	shift
	SC_RC=0
	SC_OUT=$(timeout 10 openssl s_client -connect "$hp" -CAfile "$CA/ca.crt" \
		-verify_return_error "$@" </dev/null 2>&1) || SC_RC=$?
}
# negotiated: the protocol of a completed handshake, or nothing. A
# completed one prints "New, TLSvX, Cipher is C" (X: the cipher's version,
# TLSv1.0 for a TLS 1.1 session); a failed one "New, (NONE), Cipher is
# (NONE)". The session's protocol is the "Protocol  : TLSvX" line, which
# names the attempted version even when the handshake failed, and which a
# TLS 1.3 client prints only once a session ticket has arrived.
negotiated() {
	local new p
	new=$(printf '%s\n' "$SC_OUT" |
		sed -n 's/^New, \(TLSv[0-9.]*\), Cipher is .*/\1/p' | head -n 1)
	[ -n "$new" ] || return 0
	p=$(printf '%s\n' "$SC_OUT" |
		sed -n 's/^ *Protocol *: *\(TLSv[0-9.]*\) *$/\1/p' | head -n 1)
	echo "${p:-$new}"
}

for v in 1_2:TLSv1.2 1_3:TLSv1.3; do
	s_client_try "127.0.0.1:$TLSPORT" "-tls${v%%:*}"
	[ "$SC_RC" = 0 ] && [ "$(negotiated)" = "${v#*:}" ] &&
		printf '%s\n' "$SC_OUT" | grep -q 'Verify return code: 0 (ok)' ||
		fail "c: s_client -tls${v%%:*} to the mirror: exit $SC_RC, protocol '$(negotiated)':
$(printf '%s\n' "$SC_OUT" | grep -Ei 'error|alert|protocol|verify' | head -n 8)"
	log "c: -tls${v%%:*}: handshake ok, $(negotiated), verified"
done
assert_eq 200 "$(http_code "https://127.0.0.1:$TLSPORT/v2/" --cacert "$CA/ca.crt" \
	--tlsv1.2 --tls-max 1.2)" "c: GET /v2/ over TLS 1.2 (curl)"
assert_eq 200 "$(http_code "https://127.0.0.1:$TLSPORT/v2/" --cacert "$CA/ca.crt" \
	--tlsv1.3)" "c: GET /v2/ over TLS 1.3 (curl)"

# The control: an s_server that allows TLS 1.0 and 1.1 (same certificate).
CPORT=$(free_port)
openssl s_server -accept "127.0.0.1:$CPORT" -cert "$T_DIR/server.crt" \
	-key "$T_DIR/server.key" -cipher 'DEFAULT@SECLEVEL=0' -no_tls1_3 \
	-no_tls1_2 -www </dev/null >"$T_DIR/s_server.log" 2>&1 &
SPID=$!
register_pid "$SPID" "openssl s_server" "$T_DIR/s_server.log"
wait_for 10 pid_listens "$SPID" "$CPORT" ||
	hard_error "openssl s_server (TLS 1.0/1.1 control) did not listen on :$CPORT"
for v in 1_1:TLSv1.1 1:TLSv1; do
	flag=-tls${v%%:*} want=${v#*:}
	s_client_try "127.0.0.1:$CPORT" "$flag" -cipher 'DEFAULT@SECLEVEL=0'
	[ "$SC_RC" = 0 ] && [ "$(negotiated)" = "$want" ] ||
		hard_error "c: control: s_client $flag -cipher DEFAULT@SECLEVEL=0 cannot \
complete a $want handshake even with a server that allows it (exit $SC_RC, protocol \
'$(negotiated)'): this client cannot test the mirror's refusal:
$(printf '%s\n' "$SC_OUT" | grep -Ei 'error|alert' | head -n 5)"
	s_client_try "127.0.0.1:$TLSPORT" "$flag" -cipher 'DEFAULT@SECLEVEL=0'
	if [ "$SC_RC" = 0 ] || [ -n "$(negotiated)" ]; then
		fail "c: s_client $flag completed a handshake with the mirror (exit $SC_RC, $(negotiated))"
	fi
	why=$(printf '%s\n' "$SC_OUT" | grep -Eio 'alert protocol version|unsupported protocol|wrong version number|no protocols available' |
		head -n 1 || true)
	log "c: $flag (SECLEVEL=0): the control server negotiates $want; the mirror refuses (exit $SC_RC: ${why:-$(printf '%s\n' "$SC_OUT" | grep -i error | head -n 1)})"
done
stop_pid "$SPID" 5 || true

# ---------------------------------------------------------------------------
# d. Prefix routing and aliases

ADIGEST=$(jq -r .manifest.digest "$ALPHA_INFO")
[ "$ADIGEST" != "$(layout_top "$T_DIR/decoy")" ] ||
	hard_error "alpha's manifest and the default upstream's app/demo:v1 are the same"
registry_log_sync up
umark=$(log_mark "$UP_LOG")
for p in /alpha.test/v2/app/demo/manifests/v1 \
	/alpha-alias.test/v2/app/demo/manifests/v1 \
	'/v2/app/demo/manifests/v1?ns=alpha-alias.test' \
	/v2/alpha-alias.test/app/demo/manifests/v1; do
	mmark=$(log_mark "$MIRROR_LOG")
	mget "$p"
	expect_digest "d: GET $p" "$ADIGEST"
	ep=$(printf '%s' "$p" | sed 's/[.?]/\\&/g')
	mirror_access_grep "\"GET $ep\" 200 .* up=alpha\\.test " "$mmark" | grep -q . ||
		fail "d: no access line '\"GET $p\" 200 ... up=alpha.test':
$(mirror_access_lines "$mmark")"
	log "d: $p -> alpha's manifest, $(mirror_access_lines "$mmark" | grep -o 'up=[^ ]* src=[^ ]*')"
done
[ "$(curl -sf --max-time 10 -G "$ALPHA_URL/_count" \
	--data-urlencode path=/v2/app/demo/manifests/v1 --data-urlencode method=GET)" -ge 1 ] ||
	fail "d: alpha never saw GET /v2/app/demo/manifests/v1"
# The same four forms with a fresh tag each (no cache hit): each reaches
# alpha as plain /v2/app/demo/manifests/TAG (the prefix stripped).
i=0
for p in /alpha.test/v2/app/demo/manifests/TAG \
	/alpha-alias.test/v2/app/demo/manifests/TAG \
	'/v2/app/demo/manifests/TAG?ns=alpha-alias.test' \
	/v2/alpha-alias.test/app/demo/manifests/TAG; do
	i=$((i + 1))
	q=${p/TAG/f$i}
	mget "$q"
	expect_digest "d: GET $q" "$ADIGEST"
	[ "$(curl -sf --max-time 10 -G "$ALPHA_URL/_count" \
		--data-urlencode "path=/v2/app/demo/manifests/f$i")" = 1 ] ||
		fail "d: GET $q: alpha did not see exactly one /v2/app/demo/manifests/f$i"
done
bad=$(hub_reqs "$ALPHA_LOG" | jq -r 'select(.path | startswith("/v2/app/demo/") | not) | .path')
[ -z "$bad" ] || fail "d: alpha saw requests for other names: $bad"
registry_log_sync up
assert_eq 0 "$(count_upstream_requests "$UP_LOG" /v2/app/demo/ "$umark")" \
	"d: requests for app/demo at the default upstream's registry"

if grep -E ' access r[0-9]+ .*" 500 ' "$MIRROR_LOG" >&2; then
	fail "the mirror answered 500 (above)"
fi
mirror_alive
pass
