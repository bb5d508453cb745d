#!/bin/bash
# The daemon starts and serves its cache with every upstream down. A
# skopeo pull of app/x:v1 through the mirror warms the cache (tag_ttl
# 5m); then the upstream registry is stopped (its port then refuses
# connections) and the mirror is restarted on the same cache dir, with a
# second upstream section whose port nobody ever listened on. The mirror
# starts (GET /v2/ 200), and skopeo pulls of app/x by digest and by tag
# (within tag_ttl) succeed byte for byte, every manifest and blob request
# of them logged by the mirror as a cache hit.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need skopeo docker-registry
need_regmirror

mkimage "$T_DIR/img" multi --seed t83 --ref v1 --layers 1000,30000,200000
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/x:v1
TOP=$(layout_top "$T_DIR/img")
DEAD_PORT=$(free_port)

PORT=$(free_port)
write_mirror_conf "$T_DIR/mirror.conf" "$PORT" "$T_DIR/cache" "$UP_URL"
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "dead.test"]
url = http://127.0.0.1:$DEAD_PORT
EOF
start_mirror "$T_DIR/mirror.conf"

pull() { # REF DEST
	skopeo_ copy -q --all --src-tls-verify=false "docker://$MIRROR_HOST/$1" \
		"oci:$2:x" >"$T_DIR/skopeo.out" 2>&1 ||
		{ cat "$T_DIR/skopeo.out" >&2; fail "skopeo pull of $1 through the mirror"; }
}
pull app/x:v1 "$T_DIR/warm"
layout_same "$T_DIR/img" "$T_DIR/warm"

# -- every upstream down -------------------------------------------------------
stop_pid "$UP_PID" || true
assert_eq 000 "$(http_code "$UP_URL/v2/")" "the stopped registry's port"
assert_eq 000 "$(http_code "http://127.0.0.1:$DEAD_PORT/v2/")" \
	"dead.test's port"
stop_pid "$MIRROR_PID" || fail "the mirror did not stop on TERM"
start_mirror "$T_DIR/mirror.conf" mirror2
mark=$(log_mark "$MIRROR_LOG")

pull "app/x@$TOP" "$T_DIR/by-digest"
layout_same "$T_DIR/img" "$T_DIR/by-digest"
pull app/x:v1 "$T_DIR/by-tag"
layout_same "$T_DIR/img" "$T_DIR/by-tag"

# Every manifest and blob request was a cache hit.
lines=$(mirror_access_grep '"(GET|HEAD) /v2/app/x/(manifests|blobs)/' "$mark")
[ -n "$lines" ] || fail "no manifest or blob requests in the mirror's log"
notahit=$(grep -v ' src=hit$' <<<"$lines" || true)
[ -z "$notahit" ] || fail "requests not served as cache hits:
$notahit"
grep -q '"GET /v2/app/x/manifests/v1" 200 ' <<<"$lines" ||
	fail "no GET of the tag v1 answered 200 in the mirror's log"
log "$(printf '%s\n' "$lines" | wc -l) requests, all cache hits, upstreams down"
assert_eq 000 "$(http_code "$UP_URL/v2/")" "the registry's port after the pulls"
mirror_alive
pass
