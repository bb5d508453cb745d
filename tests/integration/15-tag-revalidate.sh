#!/bin/bash
# Tags are revalidated after tag_ttl (2s here), by digest never:
#  - within tag_ttl, a GET of app/x:v1 makes no upstream request at all;
#  - once tag_ttl has passed, a GET of the unchanged tag makes exactly one
#    upstream HEAD of /v2/app/x/manifests/v1 and no upstream manifest GET,
#    and serves the cached manifest (same digest, same bytes);
#  - after another image is pushed to app/x:v1 upstream and tag_ttl has
#    passed, a GET returns the new manifest (Docker-Content-Digest and body
#    sha256 both the new digest), the upstream having seen one HEAD and
#    then one GET of /v2/app/x/manifests/v1; a GET right after is again
#    served with no upstream request;
#  - a GET of a manifest by digest, once cached, makes no upstream request,
#    even after tag_ttl has passed.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need skopeo docker-registry
need_regmirror

TTL=2
mkimage "$T_DIR/a" single --seed t15-a --ref v1 --layers 1000,3000
mkimage "$T_DIR/b" single --seed t15-b --ref v1 --layers 2000,4000
DA=$(layout_top "$T_DIR/a")
DB=$(layout_top "$T_DIR/b")
[ "$DA" != "$DB" ] || hard_error "the two test images have the same digest"

start_registry up
seed_image "$T_DIR/a" v1 "$UP_HOST" app/x:v1

write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" "$UP_URL"
sed -i "s/^tag_ttl = 5m\$/tag_ttl = ${TTL}s/" "$T_DIR/mirror.conf"
grep -qx "tag_ttl = ${TTL}s" "$T_DIR/mirror.conf" ||
	hard_error "could not set tag_ttl in the mirror config"
start_mirror "$T_DIR/mirror.conf"

ACCEPT=(-H 'Accept: application/vnd.oci.image.index.v1+json'
	-H 'Accept: application/vnd.oci.image.manifest.v1+json'
	-H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json'
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json')
TAGPATH=/v2/app/x/manifests/v1

now_us() { echo "${EPOCHREALTIME/./}"; }
# reached US: the wall clock has reached US microseconds.
reached() { [ "$(now_us)" -ge "$1" ]; }
# surely_fresh SINCE WHAT: the TTL check has one-second resolution, so a
# GET is certainly within a 2s tag_ttl only if it ended less than 1s after
# the start (SINCE) of the request that validated the tag.
surely_fresh() {
	local d=$(($(now_us) - $1))
	[ "$d" -lt 1000000 ] ||
		hard_error "$2 ended $((d / 1000))ms after the tag was validated: too slow to tell"
}
# wait_ttl_after US: poll until tag_ttl (+0.1s) has passed since US.
wait_ttl_after() {
	local until=$(($1 + TTL * 1000000 + 100000))
	wait_for $((TTL + 5)) reached "$until" ||
		hard_error "the clock did not advance past the TTL"
}

# mget PATH WANT_DIGEST WHAT: GET through the mirror; status 200,
# Docker-Content-Digest and the body's sha256 both WANT_DIGEST.
mget() {
	local path=$1 want=$2 what=$3 code hd body
	rm -f "$T_DIR/hdrs" "$T_DIR/body"
	code=$(curl -s --max-time 10 "${ACCEPT[@]}" -D "$T_DIR/hdrs" \
		-o "$T_DIR/body" -w '%{http_code}' "$MIRROR_URL$path") || true
	assert_eq 200 "$code" "$what: status of GET $path"
	hd=$(tr -d '\r' <"$T_DIR/hdrs" |
		sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest:[[:space:]]*//p' |
		tail -n 1)
	body=sha256:$(sha256_of "$T_DIR/body")
	assert_eq "$want" "$hd" "$what: Docker-Content-Digest"
	assert_eq "$want" "$body" "$what: sha256 of the body"
}

# upstream_lines FROM: the upstream's access lines for /v2/app/x/ after
# line FROM (any method), as "METHOD URI".
upstream_lines() {
	_access_lines "$UP_LOG" "$1" '[A-Z]+' /v2/app/x/ |
		awk '{ sub(/^"/, "", $6); print $6, $7 }'
}

# expect_upstream FROM EXPECTED WHAT: after a sync, the upstream's
# requests for app/x since FROM are exactly EXPECTED (lines "METHOD URI",
# in order; empty for none).
expect_upstream() {
	local got
	registry_log_sync up
	got=$(upstream_lines "$1")
	[ "$got" = "$2" ] || fail "$3: upstream requests for /v2/app/x/:
expected:
${2:-(none)}
got:
${got:-(none)}"
}

# -- cold GET: a miss -----------------------------------------------------
registry_log_sync up
mark=$(log_mark "$UP_LOG")
t_start=$(now_us)
mget "$TAGPATH" "$DA" "cold GET app/x:v1"
t_valid=$(now_us)	# the tag was validated before this
expect_upstream "$mark" "GET $TAGPATH" "cold GET app/x:v1"

# -- within tag_ttl: no upstream request ---------------------------------
mark=$(log_mark "$UP_LOG")
mget "$TAGPATH" "$DA" "GET app/x:v1 within tag_ttl"
surely_fresh "$t_start" "the GET within tag_ttl"
mget "/v2/app/x/manifests/$DA" "$DA" "GET app/x@$DA (cached)"
expect_upstream "$mark" "" "GETs by tag within tag_ttl and by digest"

# -- tag_ttl passed, tag unchanged: one HEAD, no GET ---------------------
wait_ttl_after "$t_valid"
mark=$(log_mark "$UP_LOG")
mget "/v2/app/x/manifests/$DA" "$DA" "GET app/x@$DA after tag_ttl"
expect_upstream "$mark" "" "GET by digest after tag_ttl"
mget "$TAGPATH" "$DA" "GET app/x:v1 after tag_ttl (unchanged)"
t_valid=$(now_us)
expect_upstream "$mark" "HEAD $TAGPATH" \
	"GET app/x:v1 after tag_ttl, tag unchanged"

# -- the tag moves upstream: HEAD, then GET, new digest ------------------
seed_image "$T_DIR/b" v1 "$UP_HOST" app/x:v1
registry_log_sync up
mark=$(log_mark "$UP_LOG")
wait_ttl_after "$t_valid"
t_start=$(now_us)
mget "$TAGPATH" "$DB" "GET app/x:v1 after it moved upstream"
expect_upstream "$mark" "HEAD $TAGPATH
GET $TAGPATH" "GET app/x:v1 after it moved upstream"
# and the new tag is fresh again: no upstream request
mark=$(log_mark "$UP_LOG")
mget "$TAGPATH" "$DB" "GET app/x:v1 right after the move"
surely_fresh "$t_start" "the GET right after the move"
expect_upstream "$mark" "" "GET app/x:v1 right after the move"
# the old manifest by digest is still served from the cache
mget "/v2/app/x/manifests/$DA" "$DA" "GET app/x@$DA after the move"
expect_upstream "$mark" "" "GET of the old digest after the move"

mirror_alive
pass
