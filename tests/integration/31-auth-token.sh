#!/bin/bash
# An upstream with token auth (the Docker Hub flow) behind tokenserver.py:
# the mirror, configured with credentials, fetches a token and serves an
# anonymous skopeo pull; a later fetch of another blob of the same repo
# within the token's lifetime reuses the token (no new token request).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo
need_regmirror

mkimage "$T_DIR/v1" single --seed t31-v1 --ref v1 --layers 1000,30000,100000
mkimage "$T_DIR/v2" single --seed t31-v2 --ref v2 --layers 2000,60000
start_tokenserver tok --user bob --password 'b0b-pw' --expires 300
start_registry up --token tok
seed_image "$T_DIR/v1" v1 "$UP_HOST" app/tok:v1 --dest-creds 'bob:b0b-pw'
seed_image "$T_DIR/v2" v2 "$UP_HOST" app/tok:v2 --dest-creds 'bob:b0b-pw'
assert_eq 401 "$(http_code "$UP_URL/v2/app/tok/manifests/v1")" \
	"tokenless GET on the upstream"

printf '%s\n' 'b0b-pw' >"$T_DIR/pw"
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" "$UP_URL" \
	"username = bob" "password_file = $T_DIR/pw"
start_mirror "$T_DIR/mirror.conf"

tmark=$(log_mark "$TOK_LOG")
skopeo_ copy -q --all --src-tls-verify=false \
	"docker://$MIRROR_HOST/app/tok:v1" "oci:$T_DIR/pull:x" \
	>"$T_DIR/skopeo.log" 2>&1 ||
	{ cat "$T_DIR/skopeo.log" >&2;
	  fail "skopeo copy through the mirror from the token upstream failed"; }
layout_same "$T_DIR/v1" "$T_DIR/pull"

# The mirror fetched a token as bob for pull on app/tok.
tail -n +"$((tmark + 1))" "$TOK_LOG" | grep -E \
	'^token-request method=(GET|POST) user=bob service=test-tok scope=[^ ]*repository:app/tok:pull[^ ]* status=200$' \
	>/dev/null || fail "the token server has no grant for bob on app/tok:
$(tail -n +"$((tmark + 1))" "$TOK_LOG")"
ntok=$(count_token_requests "$TOK_LOG" "$tmark")
[ "$ntok" -ge 1 ] || fail "no token fetched"
registry_log_sync up
[ "$(count_upstream_gets_ok "$UP_LOG" /v2/app/tok/blobs/)" -ge 4 ] ||
	fail "the upstream did not serve app/tok's blobs"

# Another blob of the same repo, not cached yet: the mirror must go
# upstream for it, with the cached token.
umark=$(log_mark "$UP_LOG")
d=$(jq -r '.images[0].layers[1].digest' "$T_DIR/v2.json")
got=$(curl -sf --max-time 20 "$MIRROR_URL/v2/app/tok/blobs/$d" | sha256sum |
	cut -d' ' -f1) || fail "GET blob $d of app/tok:v2 through the mirror"
assert_eq "$d" "sha256:$got" "body of blob $d"
code=$(http_code "$MIRROR_URL/v2/app/tok/manifests/v2" -I \
	-H 'Accept: application/vnd.oci.image.manifest.v1+json')
assert_eq 200 "$code" "HEAD app/tok:v2 through the mirror"
registry_log_sync up
[ "$(count_upstream_gets_ok "$UP_LOG" "/v2/app/tok/blobs/$d" "$umark")" = 1 ] ||
	fail "the upstream did not serve blob $d exactly once"
assert_eq "$ntok" "$(count_token_requests "$TOK_LOG" "$tmark")" \
	"token grants after the second fetch (token not reused)"
mirror_alive
pass
