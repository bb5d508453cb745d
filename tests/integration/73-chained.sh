#!/bin/bash
# Two mirrors chained: registry <- mirror A (upstream "registry.test" =
# the registry) <- mirror B (upstream "docker.io" = mirror A), tag_ttl = 2s
# on both. Checks:
#  - skopeo copy --all of a multi-arch OCI index through B: every blob and
#    the top digest equal the original layout's, the index bytes equal the
#    registry's;
#  - a HEAD through B of a blob neither mirror has (another repository's
#    layer) answers 200 with the right Content-Length and
#    Docker-Content-Digest, and makes no blob GET anywhere: mirror A sees
#    a HEAD, the registry sees HEADs only (also checked again at the end,
#    after more round trips, against a late background fill);
#  - once the TTL has passed on both (polled on the clock), a GET through
#    B of the tag costs exactly one HEAD at A and one HEAD at the registry
#    (revalidation does not multiply; at most one is the claim, exactly
#    one proves the TTL did pass), and no GET of the tag at either, and B
#    returns the same index bytes.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo
need_regmirror

mkimage "$T_DIR/multi" multi --seed t73-multi --ref v1 --layers 2000,60000
mkimage "$T_DIR/other" single --seed t73-other --ref v1 --layers 1500,45000
start_registry up
seed_image "$T_DIR/multi" v1 "$UP_HOST" app/multi:v1
seed_image "$T_DIR/other" v1 "$UP_HOST" app/other:v1

PA=$(free_port)
write_mirror_base "$T_DIR/mirror-a.conf" "$PA" "$T_DIR/cache-a" 2s
cat >>"$T_DIR/mirror-a.conf" <<EOF

[upstream "registry.test"]
url = $UP_URL
default = yes
EOF
start_mirror "$T_DIR/mirror-a.conf" mirror-a
A_LOG=$MIRROR_LOG A_URL=$MIRROR_URL A_PID=$MIRROR_PID

PB=$(free_port)
write_mirror_base "$T_DIR/mirror-b.conf" "$PB" "$T_DIR/cache-b" 2s
cat >>"$T_DIR/mirror-b.conf" <<EOF

[upstream "docker.io"]
url = http://127.0.0.1:$PA
default = yes
EOF
start_mirror "$T_DIR/mirror-b.conf" mirror-b
B_LOG=$MIRROR_LOG B_URL=$MIRROR_URL B_PID=$MIRROR_PID

# count_in LOG ERE [FROM_LINE]: mirror access lines matching ERE.
count_in() {
	tail -n +"$((${3:-0} + 1))" "$1" | grep ' access r' |
		grep -cE -- "$2" || true
}

# -- 1. a multi-arch copy through B -------------------------------------------
skopeo_ copy -q --all --src-tls-verify=false \
	"docker://127.0.0.1:$PB/app/multi:v1" "oci:$T_DIR/pull:x" \
	>"$T_DIR/skopeo-pull.log" 2>&1 ||
	{ tail -n 20 "$T_DIR/skopeo-pull.log" >&2;
	  fail "skopeo copy --all of app/multi:v1 through mirror B failed"; }
layout_same "$T_DIR/multi" "$T_DIR/pull"
assert_eq "$(jq -r '.top.mediaType' "$T_DIR/multi.json")" \
	application/vnd.oci.image.index.v1+json "top media type (an index)"
IDX_ACCEPT=(-H 'Accept: application/vnd.oci.image.index.v1+json'
	-H 'Accept: application/vnd.oci.image.manifest.v1+json')
up=$(curl -sf --max-time 10 "${IDX_ACCEPT[@]}" \
	"$UP_URL/v2/app/multi/manifests/v1" | sha256sum)
mb=$(curl -sf --max-time 10 "${IDX_ACCEPT[@]}" \
	"$B_URL/v2/app/multi/manifests/v1" | sha256sum) ||
	fail "GET app/multi:v1 through mirror B"
assert_eq "$up" "$mb" "index bytes through mirror B"
for d in $(jq -r '.images[].manifest.digest' "$T_DIR/multi.json"); do
	got=$(curl -sf --max-time 10 "${IDX_ACCEPT[@]}" \
		"$B_URL/v2/app/multi/manifests/$d" | sha256sum | cut -d' ' -f1) ||
		fail "GET platform manifest $d through mirror B"
	assert_eq "$d" "sha256:$got" "platform manifest $d through mirror B"
done
# B went through A for the blobs, A through the registry
for d in $(jq -r '.blobs[]' "$T_DIR/multi.json"); do
	case $d in "$(layout_top "$T_DIR/multi")") continue ;; esac
	if jq -e --arg d "$d" '[.images[].manifest.digest] | index($d)' \
		"$T_DIR/multi.json" >/dev/null; then continue; fi
	[ "$(count_in "$A_LOG" "\"GET /v2/app/multi/blobs/$d\" 200 ")" -ge 1 ] ||
		fail "mirror A never served blob $d (to mirror B)"
done

# -- 2. HEAD of a blob neither mirror has: HEADs only upstream ---------------
registry_log_sync up
umark=$(log_mark "$UP_LOG")
amark=$(log_mark "$A_LOG")
OB=$(jq -r '.images[0].layers[1].digest' "$T_DIR/other.json")
OSIZE=$(jq -r '.images[0].layers[1].size' "$T_DIR/other.json")
curl -sS -I --max-time 10 "$B_URL/v2/app/other/blobs/$OB" |
	tr -d '\r' >"$T_DIR/head-other" || fail "HEAD blob $OB through B: curl failed"
assert_eq 200 "$(head -n 1 "$T_DIR/head-other" | awk '{ print $2 }')" \
	"status of HEAD app/other blob $OB through B"
assert_eq "$OSIZE" "$(awk -F': ' 'tolower($1) == "content-length" { print $2 }' \
	"$T_DIR/head-other")" "Content-Length of HEAD blob $OB through B"
assert_eq "$OB" "$(awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }' \
	"$T_DIR/head-other")" "Docker-Content-Digest of HEAD blob $OB through B"
registry_log_sync up
assert_eq 0 "$(count_upstream_gets "$UP_LOG" "/v2/app/other/blobs/$OB" "$umark")" \
	"GETs of blob $OB at the registry after a HEAD through B"
[ "$(_access_lines "$UP_LOG" "$umark" HEAD "/v2/app/other/blobs/$OB" | wc -l)" -ge 1 ] ||
	fail "the registry saw no HEAD of blob $OB (was it answered from nowhere?)"
assert_eq 0 "$(count_in "$A_LOG" "\"GET /v2/app/other/blobs/" "$amark")" \
	"GETs of app/other blobs at mirror A after a HEAD through B"
[ "$(count_in "$A_LOG" "\"HEAD /v2/app/other/blobs/$OB\" 200 " "$amark")" -ge 1 ] ||
	fail "mirror A saw no HEAD of blob $OB from B"

# -- 3. after the TTL: one revalidation HEAD per hop -------------------------
registry_log_sync up
umark=$(log_mark "$UP_LOG")
amark=$(log_mark "$A_LOG")
bmark=$(log_mark "$B_LOG")
# Every tag validation happened before now; 2s TTL + margin.
deadline=$((${EPOCHREALTIME/./} + 2600000))
ttl_passed() { [ "${EPOCHREALTIME/./}" -ge "$deadline" ]; }
wait_for 10 ttl_passed || hard_error "the clock did not advance"
mb=$(curl -sf --max-time 10 "${IDX_ACCEPT[@]}" \
	"$B_URL/v2/app/multi/manifests/v1" | sha256sum) ||
	fail "GET app/multi:v1 through mirror B after the TTL"
assert_eq "$up" "$mb" "index bytes through mirror B after the TTL"
registry_log_sync up
a_head=$(count_in "$A_LOG" '"HEAD /v2/app/multi/manifests/v1"' "$amark")
a_get=$(count_in "$A_LOG" '"GET /v2/app/multi/manifests/v1"' "$amark")
r_head=$(_access_lines "$UP_LOG" "$umark" HEAD /v2/app/multi/manifests/v1 | wc -l)
r_get=$(count_upstream_gets "$UP_LOG" /v2/app/multi/manifests/v1 "$umark")
msg="after the TTL, one GET of the tag through B: mirror A got $a_head HEAD(s)
and $a_get GET(s) of the tag, the registry $r_head HEAD(s) and $r_get GET(s)
mirror A:
$(tail -n +"$((amark + 1))" "$A_LOG" | grep ' access r' | grep -v '"GET /v2/"')
registry:
$(_access_lines "$UP_LOG" "$umark" '[A-Z]+' /v2/app/)"
[ "$a_head" = 1 ] && [ "$a_get" = 0 ] && [ "$r_head" = 1 ] && [ "$r_get" = 0 ] ||
	fail "$msg"
[ "$(count_in "$B_LOG" '"GET /v2/app/multi/manifests/v1" 200 .* src=revalidated' \
	"$bmark")" = 1 ] || fail "mirror B's GET after the TTL is not logged src=revalidated:
$(tail -n +"$((bmark + 1))" "$B_LOG" | grep ' access r')"

# still no blob GET for the HEAD of part 2, after all these round trips
registry_log_sync up
assert_eq 0 "$(count_upstream_gets "$UP_LOG" "/v2/app/other/blobs/")" \
	"GETs of app/other blobs at the registry, at the end"
assert_eq 0 "$(count_in "$A_LOG" '"GET /v2/app/other/blobs/')" \
	"GETs of app/other blobs at mirror A, at the end"

MIRROR_PID=$A_PID MIRROR_URL=$A_URL mirror_alive
MIRROR_PID=$B_PID MIRROR_URL=$B_URL mirror_alive
pass
