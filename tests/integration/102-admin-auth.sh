#!/bin/bash
# The admin API protected (issue 10, bullet 5), with real curl, real
# docker-registry (its notifications carrying a configured Authorization
# header) and real `regmirror prefetch` / `sync`:
#  a. admin_token_file: /healthz and /readyz answer 200 without a token;
#     every other route (GET /metrics, POST /api/v1/prefetch) answers 401
#     with WWW-Authenticate: Bearer realm="regmirror-admin" and a JSON
#     error without one, with a wrong one, or with Basic; a token of the
#     file (any line, trimmed) is accepted; `regmirror prefetch
#     --token-file` warms an image from the registry, refused without it;
#     `regmirror sync` with REGMIRROR_ADMIN_TOKEN; the denials counted in
#     admin_requests_denied_total.
#  b. events_token_file: POST /api/v1/events refused without its header,
#     accepted with the events token (which opens no other route) and with
#     an admin token; docker-registry's notification, sent with
#     `headers: {Authorization: [Bearer ...]}`, triggers the replication
#     policy that wants the pushed tag.
#  c. SIGHUP rereads the token file: the new token works, the old one no
#     longer; an empty file then keeps the tokens it had.
#  d. serve refuses to start with an empty token file, or one with a
#     token over 4096 bytes, naming FILE (and LINE).
#  e. admin TLS (admin_tls_cert, a test CA made by openssl) with
#     admin_client_ca: curl --cacert with the token, not without; plain
#     http on that port gets nothing; a client certificate from the admin
#     CA is an admin without a token, one from another CA is refused;
#     `regmirror prefetch --cacert` with a token, with
#     --cert/--key and no token, refused with another CA or another host
#     name; derived from -c (https, and the config's own token); SIGHUP
#     loads a new admin certificate.
#  f. admin_listen = unix:PATH: a stale socket file is replaced, a regular
#     file at PATH stops the start; the socket has mode 0660; curl
#     --unix-socket needs the token; `regmirror prefetch --mirror
#     unix:PATH` and -c (derived); the socket file is gone after TERM.
#  g. No token appears in any mirror log or in the CLI's messages.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq openssl stat
need_regmirror

TOK1=adm-$RANDOM$RANDOM-first TOK2=adm-$RANDOM$RANDOM-second
EVTOK=ev-$RANDOM$RANDOM-token TOK3=adm-$RANDOM$RANDOM-third
printf '%s\n\n  %s \r\n' "$TOK1" "$TOK2" >"$T_DIR/admin.tok"
printf '%s\n' "$EVTOK" >"$T_DIR/events.tok"
printf '%s\n' "$TOK2" >"$T_DIR/cli.tok"
printf 'wrong-%s\n' "$TOK1" >"$T_DIR/wrong.tok"

mkimage "$T_DIR/img" single --seed t102 --ref v1 --layers 2000,30000
PA=$(free_port) AA=$(free_port)
REGISTRY_EXTRA_YAML="notifications:
  endpoints:
    - name: regmirror
      url: http://127.0.0.1:$AA/api/v1/events?source=primary.test:5000
      headers:
        Authorization: [Bearer $EVTOK]
      timeout: 2s
      threshold: 3
      backoff: 1s"
start_registry up
unset REGISTRY_EXTRA_YAML
seed_image "$T_DIR/img" v1 "$UP_HOST" app/adm:v1
seed_image "$T_DIR/img" v1 "$UP_HOST" app/ev:v1
D=$(layout_top "$T_DIR/img")

upstream_sections() {
	cat <<EOC
[upstream "primary.test:5000"]
url = $UP_URL
default = yes
[replication "apps"]
source = primary.test:5000
repositories = app/ev
tags = v.*
interval = 1h
EOC
}

# a. A token file on a loopback listener. -------------------------------
write_mirror_base "$T_DIR/a.conf" "$PA" "$T_DIR/cache-a" 1h \
	"admin_listen = 127.0.0.1:$AA" \
	"admin_token_file = $T_DIR/admin.tok" \
	"events_token_file = $T_DIR/events.tok"
upstream_sections >>"$T_DIR/a.conf"
start_mirror "$T_DIR/a.conf" mirror-a
A_PID=$MIRROR_PID A_LOG=$MIRROR_LOG
A=http://127.0.0.1:$AA
auth() { printf 'Authorization: Bearer %s' "$1"; }

for p in /healthz /readyz; do
	assert_eq 200 "$(http_code "$A$p")" "GET $p without a token"
	assert_eq 200 "$(http_code "$A$p" -I)" "HEAD $p without a token"
done
rq "$A/metrics"
assert_eq 401 "$RQ_CODE" "GET /metrics without a token"
assert_eq 'Bearer realm="regmirror-admin"' "$(rq_header WWW-Authenticate)" \
	"the challenge"
jq -e '.error | type == "string"' "$T_DIR/rq.body" >/dev/null ||
	fail "401 body is not a JSON error: $(cat "$T_DIR/rq.body")"
rq "$A/metrics" -H "$(auth "wrong-$TOK1")"
assert_eq 401 "$RQ_CODE" "GET /metrics with a wrong token"
assert_eq 'Bearer realm="regmirror-admin", error="invalid_token"' \
	"$(rq_header WWW-Authenticate)" "the challenge to a wrong token"
jq -e '.error == "invalid token"' "$T_DIR/rq.body" >/dev/null ||
	fail "wrong token: body $(cat "$T_DIR/rq.body")"
assert_eq 401 "$(http_code "$A/metrics" -H "$(auth "${TOK1:0:10}")")" \
	"a prefix of a token"
assert_eq 401 "$(http_code "$A/metrics" -u "x:$TOK1")" "Basic with a token"
assert_eq 401 "$(http_code "$A/api/v1/cache")" "/api/v1/cache"
assert_eq 401 "$(http_code "$A/nope")" "an unknown path without a token"
assert_eq 401 "$(http_code "$A/api/v1/prefetch" -X POST \
	-d '{"images":["app/adm:v1"]}')" "POST /api/v1/prefetch without a token"
assert_eq 401 "$(http_code "$A/healthz" -X POST)" "POST /healthz"
for t in "$TOK1" "$TOK2"; do
	assert_eq 200 "$(http_code "$A/metrics" -H "$(auth "$t")")" \
		"GET /metrics with a token of the file"
done
assert_eq 200 "$(http_code "$A/metrics" -H "authorization:  bearer  $TOK2 ")" \
	"the scheme in any case, blanks around the token"
njobs=$(curl -sf -H "$(auth "$TOK1")" "$A/api/v1/jobs" | jq '.jobs | length')
assert_eq 0 "$njobs" "jobs after the refused POST"

# regmirror prefetch: refused without a token, warms with --token-file.
if "$REGMIRROR" prefetch --mirror "$A" --wait app/adm:v1 \
	>"$T_DIR/pf0.out" 2>"$T_DIR/pf0.err"; then
	fail "prefetch without a token succeeded"
fi
grep -q '401' "$T_DIR/pf0.err" || fail "no 401 in: $(cat "$T_DIR/pf0.err")"
! "$REGMIRROR" prefetch --mirror "$A" --token-file "$T_DIR/wrong.tok" \
	--wait app/adm:v1 >/dev/null 2>"$T_DIR/pf1.err" ||
	fail "prefetch with a wrong token succeeded"
out=$("$REGMIRROR" prefetch --mirror "$A" --token-file "$T_DIR/admin.tok" \
	--wait app/adm:v1 2>"$T_DIR/pf2.err") ||
	fail "prefetch --token-file failed: $(cat "$T_DIR/pf2.err")"
assert_eq "app/adm:v1@$D" "$out" "prefetch output"
grep -q "admin: POST /api/v1/prefetch from 127.0.0.1 by token" "$A_LOG" ||
	fail "the accepted POST is not in the log"
assert_eq 200 "$(http_code "$MIRROR_URL/v2/app/adm/manifests/$D")" \
	"the prefetched manifest"
# The first token of --token-file is the first non-empty line.
printf '\n\n%s\nignored\n' "$TOK2" >"$T_DIR/lines.tok"
"$REGMIRROR" prefetch --mirror "$A" --token-file "$T_DIR/lines.tok" \
	app/adm:v1 >/dev/null 2>&1 || fail "prefetch: first non-empty line"

# regmirror sync with REGMIRROR_ADMIN_TOKEN (and --token-file first).
runs_at_least() { [ "$(curl -sf -H "$(auth "$TOK1")" "$A/api/v1/replication" |
	jq -r '.policies[0].runs')" -ge "$1" ] && [ "$(curl -sf -H \
	"$(auth "$TOK1")" "$A/api/v1/replication" | jq -r '.policies[0].state')" = idle ]; }
wait_for 20 runs_at_least 1 || fail "the start-up run did not finish"
REGMIRROR_ADMIN_TOKEN=$TOK1 "$REGMIRROR" sync --mirror "$A" --wait apps \
	>"$T_DIR/sync.out" 2>"$T_DIR/sync.err" ||
	fail "sync with REGMIRROR_ADMIN_TOKEN: $(cat "$T_DIR/sync.err")"
grep -Eq '^apps: idle, run [0-9]+: [0-9]+ tags in sync' "$T_DIR/sync.out" ||
	fail "sync output: $(cat "$T_DIR/sync.out")"
! REGMIRROR_ADMIN_TOKEN=nope "$REGMIRROR" sync --mirror "$A" apps \
	>/dev/null 2>"$T_DIR/sync2.err" || fail "sync with a wrong token"
REGMIRROR_ADMIN_TOKEN=nope "$REGMIRROR" sync --mirror "$A" \
	--token-file "$T_DIR/cli.tok" apps >/dev/null 2>&1 ||
	fail "--token-file before REGMIRROR_ADMIN_TOKEN"
! "$REGMIRROR" sync --mirror "$A" apps >/dev/null 2>&1 ||
	fail "sync without a token"

# b. The event webhook. ---------------------------------------------------
ev='{"events":[{"action":"push","target":{"repository":"app/other","tag":"v1"}}]}'
evurl="$A/api/v1/events?source=primary.test:5000"
assert_eq 401 "$(http_code "$evurl" -X POST -d "$ev")" \
	"POST /api/v1/events without its header"
assert_eq 401 "$(http_code "$evurl" -X POST -d "$ev" -H "$(auth nope)")" \
	"POST /api/v1/events with a wrong token"
assert_eq 200 "$(http_code "$evurl" -X POST -d "$ev" -H "$(auth "$EVTOK")")" \
	"POST /api/v1/events with the events token"
assert_eq 200 "$(http_code "$evurl" -X POST -d "$ev" -H "$(auth "$TOK1")")" \
	"POST /api/v1/events with an admin token"
assert_eq 401 "$(http_code "$A/metrics" -H "$(auth "$EVTOK")")" \
	"the events token on /metrics"
assert_eq 401 "$(http_code "$A/api/v1/replication/sync" -X POST -d '{}' \
	-H "$(auth "$EVTOK")")" "the events token on replication/sync"
# docker-registry's own notification, with its configured header.
has_tag() { "$REGMIRROR" cache ls --json -c "$T_DIR/a.conf" |
	jq -e --arg t "$1" --arg d "$2" \
	'.tags | any(.repository == "app/ev" and .tag == $t and .digest == $d)' \
	>/dev/null; }
seed_image "$T_DIR/img" v1 "$UP_HOST" app/ev:v2
wait_for 20 has_tag v2 "$D" ||
	fail "the registry's notification (with its header) did not sync v2"
grep -q "admin: POST /api/v1/events from 127.0.0.1 by events token" "$A_LOG" ||
	fail "the registry's event is not in the log as an events token's"
grep -q "replication apps: event: app/ev:v2 pushed" "$A_LOG" ||
	fail "no event in the mirror's log"

# Every refusal above, counted (the registry's events were all accepted).
denied=$(curl -sf -H "$(auth "$TOK1")" "$A/metrics" |
	awk '$1 == "regmirror_admin_requests_denied_total" { print $2 }')
n401=$(grep -c 'admin: 401 ' "$A_LOG")
[ "$denied" -ge 16 ] && assert_eq "$n401" "$denied" \
	"admin_requests_denied_total against the log's 401 lines" ||
	fail "admin_requests_denied_total $denied, 401 lines $n401"

# c. SIGHUP rereads the token file. ---------------------------------------
printf '%s\n' "$TOK3" >"$T_DIR/admin.tok.new"
mv "$T_DIR/admin.tok.new" "$T_DIR/admin.tok"
kill -HUP "$A_PID"
code_is() { [ "$(http_code "$A/metrics" -H "$(auth "$2")")" = "$1" ]; }
wait_for 10 code_is 200 "$TOK3" || fail "the new token after SIGHUP"
assert_eq 401 "$(http_code "$A/metrics" -H "$(auth "$TOK1")")" \
	"an old token after SIGHUP"
: >"$T_DIR/admin.tok"
m=$(log_mark "$A_LOG")
kill -HUP "$A_PID"
kept() { tail -n +"$((m + 1))" "$A_LOG" |
	grep -q "SIGHUP: keeping the admin API's old tokens"; }
wait_for 10 kept || fail "an empty token file on SIGHUP was not refused"
tail -n +"$((m + 1))" "$A_LOG" | grep -q "admin_token_file $T_DIR/admin.tok: no token" ||
	fail "the SIGHUP refusal does not name the file"
assert_eq 200 "$(http_code "$A/metrics" -H "$(auth "$TOK3")")" \
	"the tokens kept after an empty file"
printf '%s\n%s\n' "$TOK1" "$TOK2" >"$T_DIR/admin.tok"
stop_pid "$A_PID"

# d. No start with an unusable token file. --------------------------------
refused_start() {	# refused_start NAME MESSAGE: serve -c NAME.conf fails
	local rc=0
	timeout 20 "$REGMIRROR" serve -c "$T_DIR/$1.conf" \
		>"$T_DIR/$1.log" 2>&1 || rc=$?
	[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] ||
		fail "$1: serve did not refuse to start (rc $rc)"
	grep -qF -- "$2" "$T_DIR/$1.log" ||
		fail "$1: no '$2' in: $(cat "$T_DIR/$1.log")"
}
: >"$T_DIR/empty.tok"
write_mirror_base "$T_DIR/d1.conf" "$(free_port)" "$T_DIR/cache-d" 1h \
	"admin_listen = 127.0.0.1:$(free_port)" \
	"admin_token_file = $T_DIR/empty.tok"
upstream_sections >>"$T_DIR/d1.conf"
refused_start d1 "admin_token_file $T_DIR/empty.tok: no token"
{ printf 'ok-token\n'; head -c 4097 /dev/zero | tr '\0' 'x'; echo; } \
	>"$T_DIR/long.tok"
sed "s|empty.tok|long.tok|" "$T_DIR/d1.conf" >"$T_DIR/d2.conf"
refused_start d2 "$T_DIR/long.tok:2: a token longer than 4096 bytes"
printf 'two words\n' >"$T_DIR/blank.tok"
sed "s|^admin_token_file.*|admin_token_file = $T_DIR/admin.tok\nevents_token_file = $T_DIR/blank.tok|" \
	"$T_DIR/d1.conf" >"$T_DIR/d3.conf"
refused_start d3 "events_token_file $T_DIR/blank.tok:1: a token may only hold"

# e. Admin TLS and client certificates. -----------------------------------
make_test_ca "$T_DIR/ca"		# the admin API's server certificate
make_server_cert "$T_DIR/ca" "$T_DIR/server" 1001
make_test_ca "$T_DIR/admins"		# admin_client_ca
make_test_ca "$T_DIR/others"		# a CA the mirror does not trust
# make_client_cert CADIR OUT CN: a client certificate signed by CADIR.
make_client_cert() {
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$2.key" -out "$2.csr" -subj "/CN=$3" \
		>>"$1/openssl.log" 2>&1 &&
	printf '%s\n' "basicConstraints = CA:FALSE" \
		"keyUsage = critical, digitalSignature" \
		"extendedKeyUsage = clientAuth" >"$2.ext" &&
	openssl x509 -req -in "$2.csr" -CA "$1/ca.crt" -CAkey "$1/ca.key" \
		-set_serial "0x$RANDOM" -days 2 -extfile "$2.ext" \
		-out "$2.crt" >>"$1/openssl.log" 2>&1 ||
		{ cat "$1/openssl.log" >&2; hard_error "openssl: client $2"; }
}
make_client_cert "$T_DIR/admins" "$T_DIR/alice" alice
make_client_cert "$T_DIR/others" "$T_DIR/mallory" mallory
PB=$(free_port) BA=$(free_port)
write_mirror_base "$T_DIR/b.conf" "$PB" "$T_DIR/cache-b" 1h \
	"admin_listen = 127.0.0.1:$BA" \
	"admin_token_file = $T_DIR/admin.tok" \
	"admin_tls_cert = $T_DIR/server.crt" \
	"admin_tls_key = $T_DIR/server.key" \
	"admin_client_ca = $T_DIR/admins/ca.crt"
upstream_sections >>"$T_DIR/b.conf"
start_mirror "$T_DIR/b.conf" mirror-b
B_PID=$MIRROR_PID B_LOG=$MIRROR_LOG
B=https://127.0.0.1:$BA
CA=(--cacert "$T_DIR/ca/ca.crt")
grep -q "admin API on 127.0.0.1:$BA (https)" "$B_LOG" || fail "no https admin API"
assert_eq 200 "$(http_code "$B/healthz" "${CA[@]}")" "https /healthz"
assert_eq 401 "$(http_code "$B/metrics" "${CA[@]}")" "https /metrics without a token"
assert_eq 200 "$(http_code "$B/metrics" "${CA[@]}" -H "$(auth "$TOK1")")" \
	"https /metrics with the token"
assert_eq 000 "$(http_code "http://127.0.0.1:$BA/metrics" -H "$(auth "$TOK1")")" \
	"plain http on the TLS admin port"
assert_eq 200 "$(http_code "$B/metrics" "${CA[@]}" --cert "$T_DIR/alice.crt" \
	--key "$T_DIR/alice.key")" "a client certificate of admin_client_ca"
assert_eq 202 "$(http_code "$B/api/v1/prefetch" "${CA[@]}" -X POST \
	-d '{"images":["app/adm:v1"]}' --cert "$T_DIR/alice.crt" \
	--key "$T_DIR/alice.key")" "POST with the client certificate"
grep -q "admin: POST /api/v1/prefetch from 127.0.0.1 by certificate CN=alice" \
	"$B_LOG" || fail "the certificate's POST is not in the log with its CN"
# The handshake itself fails (OpenSSL's SSL_VERIFY_PEER): no reply at all.
assert_eq 000 "$(http_code "$B/metrics" "${CA[@]}" -H "$(auth "$TOK1")" \
	--cert "$T_DIR/mallory.crt" --key "$T_DIR/mallory.key")" \
	"a certificate of another CA, even with a token"
# The CLI over https.
out=$("$REGMIRROR" prefetch --mirror "$B" --cacert "$T_DIR/ca/ca.crt" \
	--token-file "$T_DIR/cli.tok" --wait app/adm:v1 2>"$T_DIR/pf3.err") ||
	fail "prefetch --cacert --token-file: $(cat "$T_DIR/pf3.err")"
assert_eq "app/adm:v1@$D" "$out" "prefetch over https"
out=$("$REGMIRROR" prefetch --mirror "$B" --cacert "$T_DIR/ca/ca.crt" \
	--cert "$T_DIR/alice.crt" --key "$T_DIR/alice.key" --wait app/adm:v1 \
	2>"$T_DIR/pf4.err") ||
	fail "prefetch --cert --key: $(cat "$T_DIR/pf4.err")"
assert_eq "app/adm:v1@$D" "$out" "prefetch with a client certificate"
! "$REGMIRROR" prefetch --mirror "$B" --cacert "$T_DIR/others/ca.crt" \
	--token-file "$T_DIR/cli.tok" app/adm:v1 >/dev/null 2>"$T_DIR/pf5.err" ||
	fail "prefetch verified the admin against another CA"
grep -q "certificate" "$T_DIR/pf5.err" ||
	fail "no certificate error: $(cat "$T_DIR/pf5.err")"
! "$REGMIRROR" prefetch --mirror "https://localhost:$BA" \
	--cacert "$T_DIR/ca/ca.crt" --token-file "$T_DIR/cli.tok" app/adm:v1 \
	>/dev/null 2>"$T_DIR/pf6.err" ||
	fail "prefetch took a certificate for 127.0.0.1 as localhost's"
grep -q "certificate" "$T_DIR/pf6.err" ||
	fail "no host name error: $(cat "$T_DIR/pf6.err")"
! "$REGMIRROR" prefetch --mirror "$B" --cacert "$T_DIR/ca/ca.crt" \
	--cert "$T_DIR/mallory.crt" --key "$T_DIR/mallory.key" app/adm:v1 \
	>/dev/null 2>&1 || fail "prefetch with another CA's client certificate"
# No --mirror: https:// from -c, with the config's own admin token.
out=$("$REGMIRROR" prefetch -c "$T_DIR/b.conf" --cacert "$T_DIR/ca/ca.crt" \
	--wait app/adm:v1 2>"$T_DIR/pf7.err") ||
	fail "prefetch -c (https): $(cat "$T_DIR/pf7.err")"
assert_eq "app/adm:v1@$D" "$out" "prefetch derived from -c"
# SIGHUP loads a new admin certificate.
assert_eq serial=1001 "$(tls_serial "127.0.0.1:$BA" "$T_DIR/ca/ca.crt")" \
	"the admin certificate's serial"
make_server_cert "$T_DIR/ca" "$T_DIR/server2" 1002
cp "$T_DIR/server2.crt" "$T_DIR/server.crt"
cp "$T_DIR/server2.key" "$T_DIR/server.key"
kill -HUP "$B_PID"
serial_is() { [ "$(tls_serial "127.0.0.1:$BA" "$T_DIR/ca/ca.crt")" = "$1" ]; }
wait_for 10 serial_is serial=1002 || fail "SIGHUP did not load the new admin certificate"
stop_pid "$B_PID"

# f. A unix socket. -------------------------------------------------------
SOCK=$T_DIR/adm.sock
# A stale socket file (a killed daemon's) is replaced...
"$PY" -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$SOCK"
[ -S "$SOCK" ] || hard_error "no stale socket file"
PC=$(free_port)
write_mirror_base "$T_DIR/c.conf" "$PC" "$T_DIR/cache-c" 1h \
	"admin_listen = unix:$SOCK" "admin_token_file = $T_DIR/admin.tok"
upstream_sections >>"$T_DIR/c.conf"
start_mirror "$T_DIR/c.conf" mirror-c
C_PID=$MIRROR_PID C_LOG=$MIRROR_LOG
assert_eq 660 "$(stat -c %a "$SOCK")" "the socket's mode"
U=(--unix-socket "$SOCK")
assert_eq 200 "$(http_code http://localhost/healthz "${U[@]}")" "unix /healthz"
assert_eq 401 "$(http_code http://localhost/metrics "${U[@]}")" \
	"unix /metrics without a token"
assert_eq 200 "$(http_code http://localhost/metrics "${U[@]}" \
	-H "$(auth "$TOK1")")" "unix /metrics with the token"
grep -q "admin: 401 GET /metrics from the unix socket: no credentials" "$C_LOG" ||
	fail "the unix socket's refusal is not in the log"
out=$(printf '%s\n' "$TOK1" | "$REGMIRROR" prefetch --mirror "unix:$SOCK" \
	--token-file /dev/stdin --wait app/adm:v1 2>"$T_DIR/pf8.err") ||
	fail "prefetch --mirror unix: $(cat "$T_DIR/pf8.err")"
assert_eq "app/adm:v1@$D" "$out" "prefetch over the unix socket"
! "$REGMIRROR" prefetch --mirror "unix:$SOCK" app/adm:v1 >/dev/null 2>&1 ||
	fail "prefetch over the unix socket without a token"
out=$("$REGMIRROR" prefetch -c "$T_DIR/c.conf" --wait app/adm:v1 \
	2>"$T_DIR/pf9.err") || fail "prefetch -c (unix): $(cat "$T_DIR/pf9.err")"
assert_eq "app/adm:v1@$D" "$out" "prefetch derived from -c (unix)"
stop_pid "$C_PID"
[ ! -e "$SOCK" ] || fail "the socket file is left after TERM"
# ...and a regular file there stops the start.
: >"$SOCK"
cp "$T_DIR/c.conf" "$T_DIR/c2.conf"
refused_start c2 "$SOCK exists and is not a socket"
[ -f "$SOCK" ] || fail "the regular file at the socket's path was removed"

# g. No token in any log or message. --------------------------------------
for t in "$TOK1" "$TOK2" "$TOK3" "$EVTOK"; do
	for f in "$T_DIR"/*.log "$T_DIR"/*.err "$T_DIR"/*.out; do
		! grep -qF -- "$t" "$f" || fail "a token is in $f"
	done
done
pass
