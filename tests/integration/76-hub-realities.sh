#!/bin/bash
# Docker Hub realities, against a docker-registry and hubfake.py:
#  a. Hub names: on the upstream named "docker.io", GET /v2/demo/manifests/v1
#     through the mirror is library/demo:v1 (the registry's
#     Docker-Content-Digest for /v2/library/demo/manifests/v1), and the
#     registry sees /v2/library/demo/..., never /v2/demo/...; on an upstream
#     named otherwise ("other.test", same registry), /v2/demo/... is not
#     rewritten: the registry sees GET /v2/demo/manifests/v1 (404) and the
#     mirror answers 404 (MANIFEST_UNKNOWN).
#  b. Token realm on a foreign host: a hubfake registry on 127.0.0.1 whose
#     401 names realm http://127.0.0.2:PORT/token (a hubfake token service on
#     127.0.0.2, which logs every request with its Authorization header);
#     the upstream has username/password_file.
#     (i) without realms: the client gets a 4xx/5xx OCI error whose message
#         says the realm is not allowed (mentions "realm" and 127.0.0.2), and
#         the token service received no request carrying Authorization;
#     (ii) with "realms = 127.0.0.2", and in another section
#         "realms = 127.0.0.2:PORT": manifest, config and layer are served
#         with the right digests, the token service got Basic bob:PASSWORD,
#         and the registry got the issued Bearer token;
#     (iii) a realm on the upstream's own host (127.0.0.1, another port) works
#         without any realms line (Basic credentials sent there).
#  c. 429: an upstream 429 with a text/plain body "Too Many Requests" and
#     Retry-After: 7 becomes 429, OCI code TOOMANYREQUESTS, Retry-After: 7;
#     a 429 with a JSON body and no Retry-After becomes 429 with a
#     Retry-After header (delta-seconds or HTTP-date).
#  d. An upstream manifest answer with RateLimit-Limit: 100;w=21600 and
#     RateLimit-Remaining: 3;w=21600 is served (200) and the mirror logs a
#     warn line mentioning RateLimit-Remaining 3.
#  e. Referrers: passed through (body, Content-Type, OCI-Filters-Applied,
#     artifactType); 404 from a registry without the API; 400 by tag.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo base64
need_regmirror


# hub_reqs LOG: the JSON request records of a hubfake log, one a line.
hub_reqs() { sed -n 's/^hubfake-req //p' "$1"; }

ACCEPT=(-H 'Accept: application/vnd.oci.image.manifest.v1+json'
	-H 'Accept: application/vnd.oci.image.index.v1+json'
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json')

# mget PATH: GET through the mirror; sets CODE and the files hdrs, body.
mget() {
	rm -f "$T_DIR/hdrs" "$T_DIR/body"
	CODE=$(curl -s --max-time 20 "${ACCEPT[@]}" -D "$T_DIR/hdrs" \
		-o "$T_DIR/body" -w '%{http_code}' "$MIRROR_URL$1") || true
	touch "$T_DIR/hdrs" "$T_DIR/body"
}

header() {
	tr -d '\r' <"$T_DIR/hdrs" | awk -v h="$1" 'BEGIN { h = tolower(h) }
		{ i = index($0, ":"); if (i && tolower(substr($0, 1, i - 1)) == h)
			{ v = substr($0, i + 1); sub(/^[ \t]+/, "", v); print v } }' |
		tail -n 1
}

# expect_digest WHAT DIGEST: the last reply was 200 with DIGEST's bytes.
expect_digest() {
	[ "$CODE" = 200 ] ||
		fail "$1: status $CODE, want 200; body: $(head -c 300 "$T_DIR/body" | tr -d '\0')"
	assert_eq "$2" "sha256:$(sha256_of "$T_DIR/body")" "$1: sha256 of the body"
}

# pull_hub WHAT NS INFO: manifest app/a:v1, then its config and layer, with
# ?ns=NS; each must be the hubfake image of INFO.
pull_hub() {
	local what=$1 ns=$2 info=$3 k
	mget "/v2/app/a/manifests/v1?ns=$ns"
	expect_digest "$what: manifest app/a:v1" "$(jq -r .manifest.digest "$info")"
	for k in config layer; do
		mget "/v2/app/a/blobs/$(jq -r ".$k.digest" "$info")?ns=$ns"
		expect_digest "$what: $k blob" "$(jq -r ".$k.digest" "$info")"
	done
}

# ---------------------------------------------------------------------------
# The upstreams

mkimage "$T_DIR/demo" single --seed t76-demo --ref v1 --layers 1000,3000
start_registry up
seed_image "$T_DIR/demo" v1 "$UP_HOST" library/demo:v1

# b. token services: one on 127.0.0.2 (foreign), one on 127.0.0.1.
PASSWORD='s3cret-76'
BASIC="Basic $(printf 'bob:%s' "$PASSWORD" | base64 -w0)"
start_hubfake tokfar --host 127.0.0.2 --issue-token tok-far \
	--token-user bob --token-password "$PASSWORD"
start_hubfake toknear --host 127.0.0.1 --issue-token tok-near \
	--token-user bob --token-password "$PASSWORD"
[[ $TOKFAR_URL == http://127.0.0.2:* ]] ||
	hard_error "the far token service is not on 127.0.0.2: $TOKFAR_URL"
start_hubfake far --auth-realm "$TOKFAR_URL/token" --auth-service x \
	--auth-scope repository:app/a:pull --auth-token tok-far
start_hubfake near --auth-realm "$TOKNEAR_URL/token" --auth-service y \
	--auth-token tok-near
# c, d. a registry without auth whose answers are scripted per path
cat >"$T_DIR/routes.json" <<'EOF'
{
 "/v2/app/limited/manifests/v1": [
  {"status": 429, "headers": {"Retry-After": "7"},
   "body": "Too Many Requests", "content_type": "text/plain"}],
 "/v2/app/limitedjson/manifests/v1": [
  {"status": 429,
   "body": "{\"errors\":[{\"code\":\"TOOMANYREQUESTS\",\"message\":\"You have reached your pull rate limit.\",\"detail\":null}]}"}],
 "/v2/app/rl/manifests/v1": [
  {"serve": true, "headers": {"RateLimit-Limit": "100;w=21600",
                              "RateLimit-Remaining": "3;w=21600"}}],
 "/v2/app/signed/referrers/sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": [
  {"status": 200, "headers": {"OCI-Filters-Applied": "artifactType"},
   "content_type": "application/vnd.oci.image.index.v1+json",
   "body": "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}"}]
}
EOF
start_hubfake hub --routes "$T_DIR/routes.json"

# ---------------------------------------------------------------------------
# The mirror

printf '%s\n' "$PASSWORD" >"$T_DIR/pw"
write_mirror_base "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" 5m
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "docker.io"]
url = $UP_URL
default = yes

[upstream "other.test"]
url = $UP_URL

[upstream "norealm.test"]
url = $FAR_URL
username = bob
password_file = $T_DIR/pw

[upstream "withrealm.test"]
url = $FAR_URL
username = bob
password_file = $T_DIR/pw
realms = 127.0.0.2

[upstream "withrealmport.test"]
url = $FAR_URL
username = bob
password_file = $T_DIR/pw
realms = 127.0.0.2:$TOKFAR_PORT

[upstream "samehost.test"]
url = $NEAR_URL
username = bob
password_file = $T_DIR/pw

[upstream "hub.test"]
url = $HUB_URL
EOF
start_mirror "$T_DIR/mirror.conf"

# ---------------------------------------------------------------------------
# a. Docker Hub names

code=$(curl -s -o /dev/null -D "$T_DIR/reg.hdrs" -w '%{http_code}' \
	--max-time 10 "${ACCEPT[@]}" "$UP_URL/v2/library/demo/manifests/v1") || true
assert_eq 200 "$code" "GET library/demo:v1 on the registry itself"
REG_DIGEST=$(tr -d '\r' <"$T_DIR/reg.hdrs" |
	awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }')
assert_eq "$(layout_top "$T_DIR/demo")" "$REG_DIGEST" \
	"the registry's Docker-Content-Digest of library/demo:v1"

registry_log_sync up
umark=$(log_mark "$UP_LOG")
mget /v2/demo/manifests/v1
expect_digest "a: GET /v2/demo/manifests/v1 (docker.io)" "$REG_DIGEST"
assert_eq "$REG_DIGEST" "$(header Docker-Content-Digest)" \
	"a: Docker-Content-Digest of /v2/demo/manifests/v1 through the mirror"
mget "/v2/demo/blobs/$(jq -r '.images[0].config.digest' "$T_DIR/demo.json")"
expect_digest "a: GET /v2/demo/blobs/<config> (docker.io)" \
	"$(jq -r '.images[0].config.digest' "$T_DIR/demo.json")"
registry_log_sync up
[ "$(count_upstream_requests "$UP_LOG" /v2/library/demo/manifests/v1 "$umark")" -ge 1 ] ||
	fail "a: the registry saw no request for /v2/library/demo/manifests/v1:
$(tail -n +"$((umark + 1))" "$UP_LOG" | grep '"[A-Z]* /v2/')"
[ "$(count_upstream_requests "$UP_LOG" /v2/library/demo/blobs/ "$umark")" -ge 1 ] ||
	fail "a: the registry saw no request for /v2/library/demo/blobs/"
assert_eq 0 "$(count_upstream_requests "$UP_LOG" /v2/demo/ "$umark")" \
	"a: requests for /v2/demo/ (not rewritten) on the docker.io upstream"
mirror_access_grep '"GET /v2/demo/manifests/v1" 200 .* up=docker\.io ' |
	grep -q . || fail "a: no access line for /v2/demo/manifests/v1 200 up=docker.io"
log "a: /v2/demo/manifests/v1 via docker.io = $REG_DIGEST; upstream saw $(
	_access_lines "$UP_LOG" "$umark" '[A-Z]+' /v2/library/demo/ |
	awk '{ print $6, $7, $9 }' | tr -d '"' | paste -sd, -)"

umark=$(log_mark "$UP_LOG")
mget "/v2/demo/manifests/v1?ns=other.test"
assert_eq 404 "$CODE" "a: GET /v2/demo/manifests/v1?ns=other.test"
assert_eq MANIFEST_UNKNOWN "$(jq -r '.errors[0].code' "$T_DIR/body" 2>/dev/null)" \
	"a: OCI error code of /v2/demo/manifests/v1?ns=other.test"
# the podman form (may be answered from the negative cache: same name)
mget /v2/other.test/demo/manifests/v1
assert_eq 404 "$CODE" "a: GET /v2/other.test/demo/manifests/v1"
registry_log_sync up
[ "$(_access_lines "$UP_LOG" "$umark" GET /v2/demo/manifests/v1 |
	awk '$9 == 404' | wc -l)" -ge 1 ] ||
	fail "a: the registry did not see GET /v2/demo/manifests/v1 (404) for other.test:
$(tail -n +"$((umark + 1))" "$UP_LOG" | grep '"[A-Z]* /v2/')"
assert_eq 0 "$(count_upstream_requests "$UP_LOG" /v2/library/ "$umark")" \
	"a: requests for /v2/library/ on behalf of other.test"
mirror_access_grep '"GET /v2/demo/manifests/v1\?ns=other\.test" 404 .* up=other\.test ' |
	grep -q . || fail "a: no access line for ?ns=other.test 404 up=other.test"
mirror_access_grep '"GET /v2/other\.test/demo/manifests/v1" 404 .* up=other\.test ' |
	grep -q . || fail "a: no access line for /v2/other.test/demo/... 404 up=other.test"

# ---------------------------------------------------------------------------
# b. Token realms

# (i) realm on 127.0.0.2 not listed: refused, no credentials sent there.
mget "/v2/app/a/manifests/v1?ns=norealm.test"
[[ $CODE =~ ^[45][0-9][0-9]$ ]] ||
	fail "b(i): status $CODE for a realm that is not allowed, want 4xx/5xx"
msg=$(jq -r '.errors[0].message' "$T_DIR/body" 2>/dev/null) ||
	fail "b(i): status $CODE without an OCI error body: $(head -c 300 "$T_DIR/body")"
[[ $msg == *realm* && $msg == *127.0.0.2* ]] ||
	fail "b(i): the error message does not say the realm 127.0.0.2 is not allowed: $msg"
log "b(i): $CODE $(jq -r '.errors[0].code' "$T_DIR/body") \"$msg\""
[ "$(hub_reqs "$FAR_LOG" | jq -s 'map(select(.status == 401)) | length')" -ge 1 ] ||
	fail "b(i): the registry never challenged the mirror (no 401 logged)"
withauth=$(hub_reqs "$TOKFAR_LOG" | jq -c 'select(.authorization != null)')
[ -z "$withauth" ] ||
	fail "b(i): the token service on 127.0.0.2 received credentials: $withauth"
n_i=$(hub_reqs "$TOKFAR_LOG" | wc -l)
log "b(i): the token service on 127.0.0.2 got $n_i request(s), none with Authorization"

# (ii) listed: served, and the token service got Basic credentials.
for ns in withrealm.test withrealmport.test; do
	tmark=$(log_mark "$TOKFAR_LOG")
	fmark=$(log_mark "$FAR_LOG")
	pull_hub "b(ii) $ns" "$ns" "$FAR_INFO"
	got=$(tail -n +"$((tmark + 1))" "$TOKFAR_LOG" | hub_reqs /dev/stdin |
		jq -c --arg b "$BASIC" 'select(.status == 200 and .authorization == $b and
			(.path | startswith("/token?")))')
	[ -n "$got" ] || fail "b(ii) $ns: no token request with Basic bob credentials:
$(tail -n +"$((tmark + 1))" "$TOKFAR_LOG")"
	echo "$got" | head -n 1 | jq -e '.path | test("scope=repository%3Aapp%2Fa%3Apull|scope=repository:app/a:pull")' \
		>/dev/null || fail "b(ii) $ns: token request without scope repository:app/a:pull: $got"
	tail -n +"$((fmark + 1))" "$FAR_LOG" | hub_reqs /dev/stdin |
		jq -e -s 'map(select(.status == 200 and .authorization == "Bearer tok-far")) |
			length >= 3' >/dev/null ||
		fail "b(ii) $ns: the registry did not serve manifest and blobs for the token:
$(tail -n +"$((fmark + 1))" "$FAR_LOG")"
	log "b(ii) $ns: pulled; token request $(echo "$got" | head -n 1 | jq -r .path)"
done

# (iii) realm on the upstream's own host, another port: no listing needed.
tmark=$(log_mark "$TOKNEAR_LOG")
pull_hub "b(iii) samehost.test" samehost.test "$NEAR_INFO"
tail -n +"$((tmark + 1))" "$TOKNEAR_LOG" | hub_reqs /dev/stdin |
	jq -e -s --arg b "$BASIC" 'map(select(.status == 200 and .authorization == $b)) |
		length >= 1' >/dev/null ||
	fail "b(iii): the token service on 127.0.0.1 got no Basic bob credentials:
$(tail -n +"$((tmark + 1))" "$TOKNEAR_LOG")"

# ---------------------------------------------------------------------------
# c. 429 in plain text, and 429 without Retry-After

mget "/v2/app/limited/manifests/v1?ns=hub.test"
assert_eq 429 "$CODE" "c: status for an upstream text/plain 429"
assert_eq TOOMANYREQUESTS "$(jq -r '.errors[0].code' "$T_DIR/body" 2>/dev/null)" \
	"c: OCI error code for an upstream text/plain 429 (body: $(head -c 200 "$T_DIR/body"))"
assert_eq 7 "$(header Retry-After)" "c: Retry-After passed on from the upstream"
[[ $(header Content-Type) == application/json* ]] ||
	fail "c: Content-Type of the 429 is '$(header Content-Type)', want application/json"
[ "$(curl -sf --max-time 10 "$HUB_URL/_count?path=/v2/app/limited/manifests/v1")" -ge 1 ] ||
	fail "c: the 429 did not come from upstream"
log "c: text/plain 429: 429 TOOMANYREQUESTS Retry-After: 7 \"$(jq -r '.errors[0].message' "$T_DIR/body")\""

mget "/v2/app/limitedjson/manifests/v1?ns=hub.test"
assert_eq 429 "$CODE" "c: status for an upstream JSON 429 without Retry-After"
assert_eq TOOMANYREQUESTS "$(jq -r '.errors[0].code' "$T_DIR/body" 2>/dev/null)" \
	"c: OCI error code for an upstream JSON 429"
ra=$(header Retry-After)
[[ $ra =~ ^[0-9]+$ || $ra == *GMT ]] ||
	fail "c: a 429 without upstream Retry-After got Retry-After '$ra' (want delta-seconds or an HTTP-date)"
log "c: JSON 429 without Retry-After: 429 Retry-After: $ra"

# ---------------------------------------------------------------------------
# d. RateLimit headers: served, and a warning in the mirror's log

mmark=$(log_mark "$MIRROR_LOG")
mget "/v2/app/rl/manifests/v1?ns=hub.test"
expect_digest "d: manifest with RateLimit-Remaining: 3" \
	"$(jq -r .manifest.digest "$HUB_INFO")"
warn=$(tail -n +"$((mmark + 1))" "$MIRROR_LOG" |
	grep -E '^[^ ]+ warn .*RateLimit-Remaining:? 3([^0-9]|$)' || true)
[ -n "$warn" ] || fail "d: no warn line mentioning RateLimit-Remaining 3:
$(tail -n +"$((mmark + 1))" "$MIRROR_LOG")"
log "d: $warn"

# ---------------------------------------------------------------------------
# e. Referrers (OCI 1.1): passed through with the index, its Content-Type
#    and OCI-Filters-Applied, artifactType forwarded; a registry without
#    the API (docker-registry) gives 404, so clients fall back to tags;
#    a referrers request by tag is a 400.

A64=sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
mget "/v2/app/signed/referrers/$A64?artifactType=application%2Fvnd.dev.sig&ns=hub.test"
assert_eq 200 "$CODE" "e: referrers status"
assert_eq '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}' \
	"$(cat "$T_DIR/body")" "e: referrers body"
assert_eq application/vnd.oci.image.index.v1+json "$(header Content-Type)" \
	"e: referrers Content-Type"
assert_eq artifactType "$(header OCI-Filters-Applied)" "e: OCI-Filters-Applied"
curl -sf "$HUB_URL/_requests" | jq -e --arg p "/v2/app/signed/referrers/$A64" \
	'any(.[]; .path == ($p + "?artifactType=application%2Fvnd.dev.sig"))' \
	>/dev/null || fail "e: artifactType not forwarded: $(curl -sf "$HUB_URL/_requests" | jq -c '[.[].path]')"
mget "/v2/library/demo/referrers/$A64"
assert_eq 404 "$CODE" "e: referrers at a registry without the API"
mget "/v2/app/signed/referrers/v1?ns=hub.test"
assert_eq 400 "$CODE" "e: referrers by tag"
log "e: referrers passed through; 404 and 400 where due"

# Never a 500 from the mirror, and it still serves.
if grep -E ' access r[0-9]+ .*" 500 ' "$MIRROR_LOG" >&2; then
	fail "the mirror answered 500 (above)"
fi
mirror_alive
pass
