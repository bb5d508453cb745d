#!/bin/bash
# Cross-repository rule: a blob cached for repository A is served to a
# request in repository B only when B is known to contain it. One
# docker-registry; app/a holds layer L, app/b (another image) does not.
#  - GET /v2/app/a/blobs/L through the mirror → 200, right bytes (cached);
#    a second GET in app/a makes no upstream request;
#  - GET and HEAD /v2/app/b/blobs/L → 404 BLOB_UNKNOWN (OCI body) although
#    the bytes are cached, and the registry saw a HEAD or GET of
#    /v2/app/b/blobs/L;
#  - after an image containing L is pushed to app/b, GET
#    /v2/app/b/blobs/L → 200, right bytes, served from the cache: the
#    registry saw a HEAD of /v2/app/b/blobs/L and no GET of L in any
#    repository (L was downloaded exactly once, 2xx, over the whole test).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need skopeo docker-registry
need_regmirror

CACHE=$T_DIR/cache
mkimage "$T_DIR/a" single --seed t86-a --ref v1 --layers 50000,60000
mkimage "$T_DIR/b" single --seed t86-b --ref v1 --layers 70000
LD=$(jq -r '.images[0].layers[0].digest' "$T_DIR/a.json")
jq -e --arg d "$LD" '.blobs | index($d) == null' "$T_DIR/b.json" >/dev/null ||
	hard_error "image b contains layer L"
start_registry up
seed_image "$T_DIR/a" v1 "$UP_HOST" app/a:v1
seed_image "$T_DIR/b" v1 "$UP_HOST" app/b:v1
assert_eq 404 "$(http_code "$UP_URL/v2/app/b/blobs/$LD" -I)" \
	"the registry's HEAD of L in app/b before the push"
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$CACHE" "$UP_URL"
start_mirror "$T_DIR/mirror.conf"

# reqs_of_L METHOD FROM: registry requests (METHOD, a regex) of L in any
# repository after line FROM, 2xx or not.
reqs_of_L() {
	_access_lines "$UP_LOG" "$2" "$1" /v2/ | grep -cF "/blobs/$LD HTTP/" || true
}
# reqs_in REPO METHOD FROM
reqs_in() {
	_access_lines "$UP_LOG" "$3" "$2" "/v2/$1/blobs/$LD" | wc -l
}

# -- app/a: cached -------------------------------------------------------------
rq "$MIRROR_URL/v2/app/a/blobs/$LD"
assert_eq 200 "$RQ_CODE" "GET L in app/a: status"
assert_eq "${LD#sha256:}" "$(rq_sha)" "GET L in app/a: sha256"
wait_for 10 test -f "$(cache_blob_file "$CACHE" "$LD")" || fail "L was not cached"
registry_log_sync up
mark=$(log_mark "$UP_LOG")
rq "$MIRROR_URL/v2/app/a/blobs/$LD"
assert_eq 200 "$RQ_CODE" "second GET L in app/a: status"
assert_eq "${LD#sha256:}" "$(rq_sha)" "second GET L in app/a: sha256"
registry_log_sync up
assert_eq 0 "$(reqs_in app/a '[A-Z]+' "$mark")" \
	"registry requests for a second GET of L in app/a (where it was fetched)"

# -- app/b does not hold L -------------------------------------------------------
rq "$MIRROR_URL/v2/app/b/blobs/$LD"
[ "$RQ_CODE" = 404 ] ||
	fail "GET L in app/b, which does not hold it: status $RQ_CODE, want 404 (the cached bytes were served across repositories?)"
assert_eq BLOB_UNKNOWN "$(rq_oci_code)" "GET L in app/b: OCI error code"
registry_log_sync up
[ "$(reqs_in app/b 'GET|HEAD' "$mark")" -ge 1 ] ||
	fail "GET L in app/b: the mirror did not ask the registry about /v2/app/b/blobs/L"
rq "$MIRROR_URL/v2/app/b/blobs/$LD" -I
assert_eq 404 "$RQ_CODE" "HEAD L in app/b: status"
assert_eq "${LD#sha256:}" "$(sha256_of "$(cache_blob_file "$CACHE" "$LD")")" \
	"L's cache file after the 404s"

# -- L pushed to app/b -------------------------------------------------------------
seed_image "$T_DIR/a" v1 "$UP_HOST" app/b:v2
assert_eq 200 "$(http_code "$UP_URL/v2/app/b/blobs/$LD" -I)" \
	"the registry's HEAD of L in app/b after the push"
registry_log_sync up
mark=$(log_mark "$UP_LOG")
rq "$MIRROR_URL/v2/app/b/blobs/$LD"
assert_eq 200 "$RQ_CODE" "GET L in app/b after the push: status"
assert_eq "${LD#sha256:}" "$(rq_sha)" "GET L in app/b after the push: sha256"
registry_log_sync up
[ "$(reqs_in app/b HEAD "$mark")" -ge 1 ] ||
	fail "GET L in app/b after the push: no registry HEAD of /v2/app/b/blobs/L"
assert_eq 0 "$(reqs_of_L GET "$mark")" \
	"registry GETs of L for the GET in app/b after the push (not from the cache?)"
n=$(_access_lines "$UP_LOG" 0 GET /v2/ | awk '$9 ~ /^2/' |
	grep -cF "/blobs/$LD HTTP/" || true)
assert_eq 1 "$n" "2xx registry GETs of L over the whole test"
mirror_alive
pass
