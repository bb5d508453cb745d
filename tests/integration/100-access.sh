#!/bin/bash
# Access control with real clients (README "Access control",
# docs/SECURITY.md).  One registry upstream (reg.test) holding
# team-a/app:v1, team-b/app:v1 and library/pub:v1; htpasswd users alice
# and bob (bcrypt, htpasswd -B); rules:
#	team-a	alice		reg.test/team-a/**	pull
#	team-b	bob		reg.test/team-b/**	pull, catalog
#	public	anonymous, *	reg.test/library/**	pull
#  a. anonymous: library/pub served; team-a/app 401 UNAUTHORIZED with a
#     Bearer challenge (realm = this listener's /token, service, scope);
#     _catalog 401.
#  b. Basic up front: alice pulls team-a (manifest and blob), gets 403
#     DENIED for team-b's manifest and for a team-b blob bob's pull put
#     in the cache, and 404 asking for that blob through team-a (never
#     linked there); _catalog 403 for alice, 200 for bob listing only
#     team-b/.
#  c. The token flow: /token with alice's Basic gives a token granting
#     team-a only (token, access_token, expires_in, issued_at); with it,
#     team-a is served and team-b is 403; an anonymous token grants
#     library/ only; a forged token is not honoured.
#  d. Real clients: skopeo --src-creds alice pulls team-a (it follows
#     the Bearer challenge: the token flow; Basic in j) and fails for
#     team-b; podman logged in to the
#     mirror (auth.json) pulls team-a through a registries.conf mirror
#     entry; ctr --user bob pulls team-b through hosts.toml.
#  e. Audit: access lines carry user= and rule=; /metrics counts
#     decisions by rule; a password never reaches the log.
#  f. A wrong password is 401, and where anonymous may pull it is served
#     as anonymous (logged as a failed login); a user name htpasswd does
#     not have (dockerd's Docker Hub login) is not counted, so four of
#     them block nobody; alice's are, wherever they land: after
#     max_login_failures (3 here) the address gets 429 with Retry-After,
#     even with the right password, and where anonymous may pull the
#     right password is no longer checked (an anonymous answer, and an
#     anonymous token: no password oracle in the token's sub).
#     Guesses sent in parallel (20 at once, the right one last) count
#     before their answers: at most max_login_failures are checked, the
#     rest 429, and the right password does not get in (f2).
#  g. Behind a trusted proxy the client is the rightmost X-Forwarded-For
#     address that is not a trusted proxy: [access] from applies to it,
#     a forged entry before an untrusted hop does not count.
#  h. SIGHUP rereads htpasswd (a user added is known at once).
#  i. Fail closed: an upstream with credentials, a listener off loopback
#     and no rule restricting it: check-config (exit 2) and serve refuse
#     with FILE:LINE.
#  j. challenge = basic: 401s carry a Basic challenge and skopeo
#     --src-creds pulls with Basic on each request, no token.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo curl jq htpasswd podman containerd ctr timeout
need_regmirror

mkimage "$T_DIR/a" single --seed t100a --ref v1 --layers 1500,40000
mkimage "$T_DIR/b" single --seed t100b --ref v1 --layers 1600,41000,3000000
mkimage "$T_DIR/p" single --seed t100p --ref v1 --layers 1700
start_registry up
seed_image "$T_DIR/a" v1 "$UP_HOST" team-a/app:v1
seed_image "$T_DIR/b" v1 "$UP_HOST" team-b/app:v1
seed_image "$T_DIR/p" v1 "$UP_HOST" library/pub:v1
A_TOP=$(layout_top "$T_DIR/a")
B_TOP=$(layout_top "$T_DIR/b")
B_LAYER=$(jq -r '.layers[1].digest' "$T_DIR/b/blobs/sha256/${B_TOP#sha256:}")
B_BIG=$(jq -r '.layers[2].digest' "$T_DIR/b/blobs/sha256/${B_TOP#sha256:}")
B_BIG_SIZE=$(jq -r '.layers[2].size' "$T_DIR/b/blobs/sha256/${B_TOP#sha256:}")
# The upstream, through a gate that can hold B_BIG's body (a fill that
# streams for as long as the test needs).
start_fakeupstream gate --proxy "$UP_URL" --mode gate --fault-digest "$B_BIG" \
	--stall-seconds 60
A_LAYER=$(jq -r '.layers[-1].digest' "$T_DIR/a/blobs/sha256/${A_TOP#sha256:}")

htpasswd -Bbc "$T_DIR/htpasswd" alice apass-1 2>/dev/null
htpasswd -Bb "$T_DIR/htpasswd" bob bpass-2 2>/dev/null
PORT=$(free_port)
APORT=$(free_port)
cat >"$T_DIR/mirror.conf" <<EOF
[server]
listen = 127.0.0.1:$PORT
admin_listen = 127.0.0.1:$APORT
trusted_proxies = 127.0.0.1
workers = 2
[cache]
dir = $T_DIR/cache
[auth]
htpasswd = $T_DIR/htpasswd
max_login_failures = 3
[access "team-a"]
users = alice
repositories = reg.test/team-a/**
[access "team-b"]
users = bob
repositories = reg.test/team-b/**
allow = pull, catalog
[access "public"]
users = anonymous, *
repositories = reg.test/library/**
[access "lan"]
users = anonymous
from = 10.9.0.0/16
repositories = reg.test/team-a/**
[upstream "reg.test"]
url = $GATE_URL
default = yes
EOF
"$REGMIRROR" check-config -c "$T_DIR/mirror.conf" >/dev/null ||
	fail "check-config refused the test's config"
MIRROR_READY_CODE=401	# /v2/ wants credentials (or a token) now
start_mirror "$T_DIR/mirror.conf"
M=$MIRROR_URL
ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json"

# -- a. anonymous -------------------------------------------------------------
rq "$M/v2/library/pub/manifests/v1" -H "$ACCEPT"
assert_eq 200 "$RQ_CODE" "anonymous: library/pub (rule public)"
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT"
assert_eq 401 "$RQ_CODE" "anonymous: team-a/app"
assert_eq UNAUTHORIZED "$(rq_oci_code)" "  its OCI code"
assert_eq "Bearer realm=\"http://127.0.0.1:$PORT/token\",service=\"regmirror\",scope=\"repository:team-a/app:pull\"" \
	"$(rq_header WWW-Authenticate)" "  its challenge"
rq "$M/v2/_catalog"
assert_eq 401 "$RQ_CODE" "anonymous: _catalog"

# -- b. Basic up front --------------------------------------------------------
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" -u alice:apass-1
assert_eq 200 "$RQ_CODE" "alice: team-a/app"
assert_eq "$A_TOP" "sha256:$(rq_sha)" "  its manifest"
rq "$M/v2/team-a/app/blobs/$A_LAYER" -u alice:apass-1
assert_eq 200 "$RQ_CODE" "alice: a team-a blob"
rq "$M/v2/team-b/app/manifests/v1" -H "$ACCEPT" -u alice:apass-1
assert_eq 403 "$RQ_CODE" "alice: team-b/app"
assert_eq DENIED "$(rq_oci_code)" "  its OCI code"
rq "$M/v2/team-b/app/blobs/$B_LAYER" -u bob:bpass-2
assert_eq 200 "$RQ_CODE" "bob: a team-b blob (now in the cache)"
rq "$M/v2/team-b/app/blobs/$B_LAYER" -u alice:apass-1
assert_eq 403 "$RQ_CODE" "alice: team-b's cached blob by digest"
[ "$RQ_BYTES" -lt 1000 ] || fail "alice was sent $RQ_BYTES bytes of it"
rq "$M/v2/team-a/app/blobs/$B_LAYER" -u alice:apass-1
assert_eq 404 "$RQ_CODE" "alice: team-b's blob asked for through team-a"
# A fill bob started, still streaming: alice gets 403 and no byte.
curl -s --max-time 60 -o "$T_DIR/big.bob" -u bob:bpass-2 \
	"$M/v2/team-b/app/blobs/$B_BIG" &
register_pid $! curl
gate_held() { grep -q "\"GET /v2/team-b/app/blobs/$B_BIG\" held mode=gate" "$GATE_LOG"; }
wait_for 20 gate_held || fail "the gate never held bob's blob"
rq "$M/v2/team-b/app/blobs/$B_BIG" -u alice:apass-1
assert_eq 403 "$RQ_CODE" "alice: the blob of a fill bob started, streaming"
[ "$RQ_BYTES" -lt 1000 ] || fail "alice was sent $RQ_BYTES bytes of it"
rq "$M/v2/team-a/app/blobs/$B_BIG" -u alice:apass-1
assert_eq 404 "$RQ_CODE" "alice: that fill through team-a (not there)"
[ ! -e "$(cache_blob_file "$T_DIR/cache" "$B_BIG")" ] ||
	fail "the blob is cached while its body is held"
fake_mode "$GATE_URL" ok || hard_error "could not release the gate"
done_bob() { [ "$(stat -c %s "$T_DIR/big.bob" 2>/dev/null)" = "$B_BIG_SIZE" ]; }
wait_for 30 done_bob || fail "bob's download did not finish"
assert_eq "$B_BIG" "sha256:$(sha256_of "$T_DIR/big.bob")" "bob's blob, whole"
rq "$M/v2/_catalog" -u alice:apass-1
assert_eq 403 "$RQ_CODE" "alice: _catalog (no rule grants her catalog)"
rq "$M/v2/_catalog" -u bob:bpass-2
assert_eq 200 "$RQ_CODE" "bob: _catalog"
assert_eq '["team-b/app"]' "$(jq -c .repositories "$T_DIR/rq.body")" \
	"  lists only what his rule covers"
rq "$M/v2/_catalog?n=1" -u bob:bpass-2
assert_eq 200 "$RQ_CODE" "bob: _catalog?n=1"
assert_eq "" "$(rq_header Link)" "  no Link (it would name the next repository)"

# -- c. the token flow --------------------------------------------------------
rq "$M/token?service=regmirror&scope=repository:team-a/app:pull&scope=repository:team-b/app:pull" \
	-u alice:apass-1
assert_eq 200 "$RQ_CODE" "/token for alice"
TOK=$(jq -r .token "$T_DIR/rq.body")
assert_eq "$TOK" "$(jq -r .access_token "$T_DIR/rq.body")" "  access_token"
assert_eq 300 "$(jq -r .expires_in "$T_DIR/rq.body")" "  expires_in (5m)"
jq -e '.issued_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T")' "$T_DIR/rq.body" \
	>/dev/null || fail "  issued_at: $(cat "$T_DIR/rq.body")"
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" -H "Authorization: Bearer $TOK"
assert_eq 200 "$RQ_CODE" "alice's token: team-a/app"
rq "$M/v2/team-b/app/manifests/v1" -H "$ACCEPT" -H "Authorization: Bearer $TOK"
assert_eq 403 "$RQ_CODE" "alice's token: team-b/app (not granted)"
rq "$M/token?service=regmirror&scope=repository:team-a/app:pull&scope=repository:library/pub:pull"
ATOK=$(jq -r .token "$T_DIR/rq.body")
rq "$M/v2/library/pub/manifests/v1" -H "$ACCEPT" -H "Authorization: Bearer $ATOK"
assert_eq 200 "$RQ_CODE" "an anonymous token: library/pub"
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" -H "Authorization: Bearer $ATOK"
assert_eq 401 "$RQ_CODE" "an anonymous token: team-a/app (a new challenge)"
# 32 long scopes: the token still fits what the mirror accepts back.
scopes=$(for i in $(seq 32); do printf '&scope=repository:library/pub%0200d:pull' "$i"; done)
rq "$M/token?service=regmirror${scopes}&scope=repository:library/pub:pull"
BIG=$(jq -r .token "$T_DIR/rq.body")
[ "${#BIG}" -le 8192 ] || fail "a token of ${#BIG} bytes (over 8 KiB)"
FORGED="${TOK%.*}.$(printf 'x%.0s' $(seq 43))"
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" -H "Authorization: Bearer $FORGED"
assert_eq 401 "$RQ_CODE" "a token with a forged signature"

# -- d. real clients ----------------------------------------------------------
skopeo_ copy -q --src-tls-verify=false --src-creds alice:apass-1 \
	"docker://127.0.0.1:$PORT/team-a/app:v1" "oci:$T_DIR/sa:x" \
	>"$T_DIR/skopeo-a.out" 2>&1 ||
	{ cat "$T_DIR/skopeo-a.out" >&2; fail "skopeo --src-creds alice: team-a"; }
layout_same "$T_DIR/a" "$T_DIR/sa"
if skopeo_ copy -q --src-tls-verify=false --src-creds alice:apass-1 \
	"docker://127.0.0.1:$PORT/team-b/app:v1" "oci:$T_DIR/sb:x" \
	>"$T_DIR/skopeo-b.out" 2>&1; then
	fail "skopeo --src-creds alice pulled team-b"
fi

# podman, logged in to the mirror (auth.json for 127.0.0.1:PORT), pulls
# reg.test/team-a/app through the registries.conf mirror entry (the
# registry host arrives as the first path component).
PM=$(mktemp -d /tmp/pm.XXXXXX)
T_EXTRA_DIRS+=("$PM")
cat >"$CONTAINERS_REGISTRIES_CONF" <<EOF2
unqualified-search-registries = []
[[registry]]
prefix = "reg.test"
location = "reg.test"
[[registry.mirror]]
location = "127.0.0.1:$PORT/reg.test"
insecure = true
EOF2
export CONTAINERS_CONF="$T_DIR/containers.conf"
printf '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\nevents_logfile_path = "%s"\n' \
	"$T_DIR/podman-events.log" >"$CONTAINERS_CONF"
export REGISTRY_AUTH_FILE="$T_DIR/auth.json"
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}\n' "$PORT" \
	"$(printf 'alice:apass-1' | base64)" >"$REGISTRY_AUTH_FILE"
timeout 60 podman --root "$PM/r" --runroot "$PM/rr" --tmpdir "$PM/t" \
	--storage-driver vfs --cgroup-manager cgroupfs pull \
	--signature-policy "$T_DIR/policy.json" reg.test/team-a/app:v1 \
	>"$T_DIR/podman.out" 2>&1 ||
	{ tail -n 20 "$T_DIR/podman.out" >&2; fail "podman (alice) pull of team-a"; }
mirror_access_grep '"GET /v2/reg.test/team-a/app/manifests/.*" 200 .* user=alice rule=team-a ' \
	>/dev/null || fail "podman's pull was not served to alice by team-a"

# ctr --user bob through hosts.toml (?ns=reg.test on every request).
mkdir -p "$T_DIR/hosts/reg.test"
cat >"$T_DIR/hosts/reg.test/hosts.toml" <<EOF2
server = "http://reg.test"
[host."http://127.0.0.1:$PORT"]
  capabilities = ["pull", "resolve"]
EOF2
start_containerd
timeout 60 ctr -a "$CONTAINERD_SOCK" -n test images pull --snapshotter native \
	--hosts-dir "$T_DIR/hosts" --user bob:bpass-2 reg.test/team-b/app:v1 \
	>"$T_DIR/ctr.out" 2>&1 ||
	{ tail -n 20 "$T_DIR/ctr.out" >&2; fail "ctr --user bob pull of team-b"; }
mirror_access_grep '"GET /v2/team-b/app/blobs/.*ns=reg.test" 200 .* user=bob rule=team-b ' \
	>/dev/null || fail "ctr's pull was not served to bob by team-b"
if timeout 60 ctr -a "$CONTAINERD_SOCK" -n test images pull \
	--snapshotter native --hosts-dir "$T_DIR/hosts" --user bob:bpass-2 \
	reg.test/team-a/app:v1 >"$T_DIR/ctr2.out" 2>&1; then
	fail "ctr --user bob pulled team-a"
fi

# -- e. audit -----------------------------------------------------------------
mirror_access_grep '"GET /v2/team-a/app/manifests/v1" 200 .* user=alice rule=team-a ' \
	>/dev/null || fail "no access line with user=alice rule=team-a"
mirror_access_grep '"GET /v2/team-b/app/manifests/v1" 403 .* user=alice rule=- ' \
	>/dev/null || fail "no access line for alice's 403"
mirror_access_grep '"GET /v2/team-a/app/manifests/v1" 401 .* user=- rule=- ' \
	>/dev/null || fail "no access line for the anonymous 401"
curl -s "http://127.0.0.1:$APORT/metrics" >"$T_DIR/metrics"
grep -q '^regmirror_access_decisions_total{rule="team-a",decision="allowed"} [1-9]' \
	"$T_DIR/metrics" || fail "metrics: team-a allowed: $(grep access_dec "$T_DIR/metrics")"
grep -q '^regmirror_access_decisions_total{rule="-",decision="denied"} [1-9]' \
	"$T_DIR/metrics" || fail "metrics: default denied"

# -- g. behind a trusted proxy ------------------------------------------------
# 127.0.0.1 is a trusted proxy here: the rightmost X-Forwarded-For
# address that is not one is the client ([access "lan"] from 10.9/16).
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" -H "X-Forwarded-For: 10.9.1.2"
assert_eq 200 "$RQ_CODE" "anonymous from 10.9.1.2 (X-Forwarded-For): rule lan"
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" \
	-H "X-Forwarded-For: 10.9.1.2, 127.0.0.1"
assert_eq 200 "$RQ_CODE" "  through two trusted hops"
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" \
	-H "X-Forwarded-For: 10.9.1.2, 192.0.2.7"
assert_eq 401 "$RQ_CODE" "a forged 10.9.1.2 before an untrusted hop"
# Forgeries that must not pass (review): 40 forged entries before the
# real one, a header long enough to push the real one off, the forged
# address on a line of its own before the proxy's, an unreadable last
# entry (it makes the client "unknown", never the proxy itself).
many=$(for i in $(seq 40); do printf '10.9.1.2, '; done)
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" \
	-H "X-Forwarded-For: ${many}192.0.2.7"
assert_eq 401 "$RQ_CODE" "40 forged entries before the real client"
pad=$(printf 'x%.0s' $(seq 1013))
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" \
	-H "X-Forwarded-For: $pad, 10.9.1.2, 192.0.2.7"
assert_eq 401 "$RQ_CODE" "a 1 KiB pad before a forged entry"
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" \
	-H "X-Forwarded-For: 10.9.1.2" -H "X-Forwarded-For: 192.0.2.7"
assert_eq 401 "$RQ_CODE" "a forged line before the proxy's own"
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" -H "X-Forwarded-For: unknown"
assert_eq 401 "$RQ_CODE" "an unreadable entry: not the proxy's address"
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" \
	-H "X-Forwarded-For: 10.9.1.2:5555"
assert_eq 200 "$RQ_CODE" "an address with a port"
mirror_access_grep '"GET /v2/team-a/app/manifests/v1" 200 .* user=- rule=lan ' \
	>/dev/null || fail "no access line for rule lan"
grep -q 'access r[0-9]* 10\.9\.1\.2 "GET /v2/team-a/app/manifests/v1" 200' \
	"$MIRROR_LOG" || fail "the access line does not name the client 10.9.1.2"

# -- h. SIGHUP rereads htpasswd ----------------------------------------------
htpasswd -Bb "$T_DIR/htpasswd" carol cpass-3 2>/dev/null
mark=$(wc -l <"$MIRROR_LOG")
kill -HUP "$MIRROR_PID"
reloaded() { tail -n +"$mark" "$MIRROR_LOG" | grep -q 'SIGHUP: reloaded'; }
wait_for 20 reloaded || fail "no 'SIGHUP: reloaded' in the log"
rq "$M/v2/_catalog" -u carol:cpass-3
assert_eq 403 "$RQ_CODE" "carol, added and reloaded: known (403, not 401)"

# -- f. wrong passwords -------------------------------------------------------
for i in 1 2 3 4; do
	rq "$M/v2/library/pub/manifests/v1" -H "$ACCEPT" -u hubuser:hubpass
	assert_eq 200 "$RQ_CODE" "an unknown user where anonymous may pull ($i)"
done
rq "$M/token?service=regmirror&scope=repository:library/pub:pull" \
	-u hubuser:hubpass
assert_eq 200 "$RQ_CODE" "/token for an unknown user, anonymous scope"
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" -u alice:apass-1
assert_eq 200 "$RQ_CODE" "alice after 5 unknown-user logins: not blocked"
m=$(log_mark "$MIRROR_LOG")
rq "$M/v2/library/pub/manifests/v1" -H "$ACCEPT" -u alice:wrong-pw
assert_eq 200 "$RQ_CODE" "a wrong password where anonymous may pull: anonymous"
mirror_access_grep '"GET /v2/library/pub/manifests/v1" 200 .* user=- rule=public ' \
	"$m" | grep -q . || fail "alice's wrong password was not served as anonymous"
tail -n +"$((m + 1))" "$MIRROR_LOG" | grep -q ': failed login: anonymous$' ||
	fail "alice's wrong password (served as anonymous) was not logged"
for i in 2 3; do
	rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" -u alice:wrong-pw
	assert_eq 401 "$RQ_CODE" "wrong password $i"
done
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" -u alice:apass-1
assert_eq 429 "$RQ_CODE" "after 3 failures, even the right password"
ra=$(rq_header Retry-After)
[ -n "$ra" ] && [ "$ra" -ge 1 ] && [ "$ra" -le 60 ] ||
	fail "Retry-After '$ra' (want 1..60)"
m=$(log_mark "$MIRROR_LOG")
rq "$M/v2/library/pub/manifests/v1" -H "$ACCEPT" -u alice:apass-1
assert_eq 200 "$RQ_CODE" "blocked, where anonymous may pull: served"
mirror_access_grep '"GET /v2/library/pub/manifests/v1" 200 .* user=- rule=public ' \
	"$m" | grep -q . || fail "blocked: the right password was checked"
rq "$M/token?service=regmirror&scope=repository:library/pub:pull" \
	-u alice:apass-1
assert_eq 200 "$RQ_CODE" "blocked: /token where anonymous may pull"
assert_eq '""' "$(jq -r .token "$T_DIR/rq.body" | cut -d. -f2 |
	tr '_-' '/+' | awk '{ while (length($0) % 4) $0 = $0 "="; print }' |
	base64 -d | jq -c .sub)" "  the token's sub (the password unchecked)"
if grep -q -e 'wrong-pw' -e 'apass-1' -e 'bpass-2' "$MIRROR_LOG"; then
	fail "a password in the mirror's log"
fi
# -- f2. max_login_failures holds for guesses sent in parallel ----------------
# 20 guesses at once from 127.0.0.21, the right password last: at most
# max_login_failures (3) may be checked; the right one must not get in.
"$PY" - "$PORT" >"$T_DIR/par.out" <<'EOPY'
import base64, socket, sys
port = int(sys.argv[1]); socks = []
for i in range(20):
    pw = "apass-1" if i == 19 else "guess%d" % i
    s = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.21", 0))
    s.settimeout(60); socks.append(s)
    s.sendall(("GET /v2/team-a/app/manifests/v1 HTTP/1.1\r\nHost: x\r\n"
        "Authorization: Basic %s\r\nConnection: close\r\n\r\n" %
        base64.b64encode(("alice:" + pw).encode()).decode()).encode())
for s in socks:
    print(s.makefile("rb").readline().split()[1].decode())
EOPY
[ "$(grep -c '^429$' "$T_DIR/par.out")" -ge 17 ] ||
	fail "$(grep -c '^429$' "$T_DIR/par.out") of 20 parallel guesses got 429: $(tr '\n' ' ' <"$T_DIR/par.out")"
[ "$(grep -c '^401$' "$T_DIR/par.out")" -le 3 ] ||
	fail "$(grep -c '^401$' "$T_DIR/par.out") of 20 parallel guesses were checked (max_login_failures = 3)"
[ "$(tail -n 1 "$T_DIR/par.out")" != 200 ] ||
	fail "the 20th parallel guess (the right password) got in"

mirror_alive

# -- j. a Basic challenge ----------------------------------------------------
# challenge = basic: 401s ask for Basic credentials, and skopeo sends
# them on each request (no token).
PORT2=$(free_port)
sed -e "s/^listen = 127.0.0.1:$PORT$/listen = 127.0.0.1:$PORT2/" \
	-e "/^admin_listen/d" -e "s|^dir = .*|dir = $T_DIR/cache-basic|" \
	-e 's/^max_login_failures = 3$/max_login_failures = 3\nchallenge = basic/' \
	"$T_DIR/mirror.conf" >"$T_DIR/basic.conf"
start_mirror "$T_DIR/basic.conf" basic
rq "$MIRROR_URL/v2/team-a/app/manifests/v1" -H "$ACCEPT"
assert_eq 401 "$RQ_CODE" "challenge = basic: anonymous team-a/app"
assert_eq 'Basic realm="regmirror"' "$(rq_header WWW-Authenticate)" \
	"  a Basic challenge"
skopeo_ copy -q --src-tls-verify=false --src-creds alice:apass-1 \
	"docker://127.0.0.1:$PORT2/team-a/app:v1" "oci:$T_DIR/sbasic:x" \
	>"$T_DIR/skopeo-basic.out" 2>&1 ||
	{ cat "$T_DIR/skopeo-basic.out" >&2; fail "skopeo (Basic) alice: team-a"; }
layout_same "$T_DIR/a" "$T_DIR/sbasic"
[ "$(grep -c '"GET /token' "$MIRROR_LOG")" = 0 ] ||
	fail "skopeo asked for a token under a Basic challenge"
mirror_access_grep '"GET /v2/team-a/app/manifests/v1" 200 .* user=alice rule=team-a ' \
	>/dev/null || fail "the Basic pull was not served to alice"
if skopeo_ copy -q --src-tls-verify=false --src-creds bob:bpass-2 \
	"docker://127.0.0.1:$PORT2/team-a/app:v1" "oci:$T_DIR/sbasic2:x" \
	>"$T_DIR/skopeo-basic2.out" 2>&1; then
	fail "skopeo (Basic) bob pulled team-a"
fi

# -- i. fail closed -----------------------------------------------------------
# An upstream with credentials, a listener off loopback, and no rule in
# the way: check-config and serve refuse, with FILE:LINE.
printf 'pw\n' >"$T_DIR/pw"
cat >"$T_DIR/open.conf" <<EOF
[server]
listen = 0.0.0.0:$(free_port)
[cache]
dir = $T_DIR/cache2
[upstream "reg.test"]
url = $UP_URL
username = u
password_file = $T_DIR/pw
EOF
want="$T_DIR/open.conf:5: upstream 'reg.test' has credentials and listener"
out=$("$REGMIRROR" check-config -c "$T_DIR/open.conf" 2>&1) && rc=0 || rc=$?
assert_eq 2 "$rc" "check-config of an open upstream with credentials"
case $out in *"$want"*) ;; *) fail "check-config said: $out" ;; esac
out=$(timeout 20 "$REGMIRROR" serve -c "$T_DIR/open.conf" 2>&1) && rc=0 || rc=$?
[ "$rc" -ne 0 ] || fail "serve started with it"
case $out in *"$want"*) ;; *) fail "serve said: $out" ;; esac
pass
