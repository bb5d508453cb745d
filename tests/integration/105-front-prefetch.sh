#!/bin/bash
# Jobs through the tier ([server] front): every member sends its
# prefetch traffic through the region's haproxy front door, with the
# tier's shared job_token_file.
#  a. `regmirror prefetch --mirror MEMBER_A_ADMIN --wait` returns only once
#     every blob has landed on the member that owns it: right then each
#     blob is on exactly one member's disk (member a stores nothing
#     twice), fetched from upstream once;
#  b. a pull through the front right after costs no upstream request;
#  c. --pin pins each blob on its owner (asked through the front);
#  d. replication (sync --wait) lists tags and lands blobs through the
#     front the same way;
#  e. the shared secret (job_token_file) is honoured by the other
#     members (miss_limit = 1 lets the jobs' misses through); without it
#     a job reaching another member is an ordinary client there (429).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo haproxy jq
need_regmirror

mkimage "$T_DIR/img" single --seed t105 --ref v1 \
	--layers 110000,120000,130000,140000,150000,160000
mkimage "$T_DIR/img2" single --seed t105-2 --ref v2 \
	--layers 210000,220000,230000,240000
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/demo:v1
seed_image "$T_DIR/img2" v2 "$UP_HOST" app/demo:v2
blobs_of() { jq -r '.images[0].config.digest, .images[0].layers[].digest' "$1"; }
# landed WHAT IMAGE_JSON MARK: right now every blob of the image is on
# exactly one member, the blobs are spread over two or more members
# (so they went through the front), and each was fetched from upstream
# once since line MARK of its log, and confirmed with its owner by the
# job (an only-if-cached HEAD answered 200).
landed() {
	local what=$1 json=$2 mark=$3 d h spread='' H
	for d in $(blobs_of "$json"); do
		h=$(blob_holders "$d")
		[ "${#h}" = 1 ] || fail "$what: $d is on members '$h', want one"
		case $spread in *"$h"*) ;; *) spread="$spread$h" ;; esac
	done
	[ "${#spread}" -ge 2 ] ||
		fail "$what: every blob on member $spread: not through the front"
	registry_log_sync up
	for d in $(blobs_of "$json"); do
		assert_eq 1 "$(count_upstream_gets_ok "$UP_LOG" "/v2/app/demo/blobs/$d" "$mark")" \
			"$what: upstream GETs of $d"
		H=$(blob_holders "$d" | tr a-z A-Z)_LOG
		grep -qF "\"HEAD /v2/app/demo/blobs/$d?ns=docker.io\" 200 " "${!H}" ||
			fail "$what: $d was not confirmed with its owner (only-if-cached HEAD)"
	done
}

FRONT_PORT=$(free_port)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T_DIR/job.token"
chmod 600 "$T_DIR/job.token"
for m in a b c; do
	write_member_conf $m "$UP_URL" "front = http://127.0.0.1:$FRONT_PORT" \
		"job_token_file = $T_DIR/job.token" "miss_limit = 1"
done
# Member a also replicates app/demo's r* tags (run on demand below).
cat >>"$T_DIR/a.conf" <<EOC

[replication "rel"]
source = docker.io
repositories = app/demo
tags = r.*
interval = 24h
EOC
for m in a b c; do start_member $m; done
start_haproxy
grep -q "jobs fetch through the front door http://127.0.0.1:$FRONT_PORT" "$A_LOG" ||
	fail "member a does not say it fetches through the front"

log "a. prefetch --wait through member a"
mark=$(log_mark "$UP_LOG")
TOP=$(layout_top "$T_DIR/img")
out=$("$REGMIRROR" prefetch --mirror "$A_ADMIN" --wait app/demo:v1 2>"$T_DIR/progress") ||
	fail "prefetch failed: $(cat "$T_DIR/progress")"
assert_eq "app/demo:v1@$TOP" "$out" "prefetch output"
# No polling: --wait has returned, so every blob is on its owner now.
landed prefetch "$T_DIR/img.json" "$mark"

# only-if-cached never goes upstream, and never leaks another
# repository's blob: 504 there (the link check would have to ask).
D0=$(jq -r '.images[0].layers[0].digest' "$T_DIR/img.json")
mark=$(log_mark "$UP_LOG")
assert_eq 504 "$(http_code "$FRONT_URL/v2/other/repo/blobs/$D0" -I \
	-H 'Cache-Control: only-if-cached')" "only-if-cached HEAD in another repository"
assert_eq 200 "$(http_code "$FRONT_URL/v2/app/demo/blobs/$D0" -I \
	-H 'Cache-Control: only-if-cached')" "only-if-cached HEAD where it is stored"
registry_log_sync up
assert_eq 0 "$(($(count_upstream_requests "$UP_LOG" /v2/other/ "$mark") +
	$(count_upstream_requests "$UP_LOG" /v2/app/demo/blobs/ "$mark")))" \
	"upstream requests of the only-if-cached HEADs"

log "b. a pull through the front costs no upstream request"
mark=$(log_mark "$UP_LOG")
skopeo_ copy -q --src-tls-verify=false "docker://$FRONT_HOST/app/demo:v1" \
	"oci:$T_DIR/out:v1" >"$T_DIR/skopeo.out" 2>&1 ||
	{ cat "$T_DIR/skopeo.out" >&2; fail "skopeo copy through the front"; }
layout_same "$T_DIR/img" "$T_DIR/out"
registry_log_sync up
# (Manifests and blobs: member a's replication policy lists tags on its
# own schedule, from start-up on.)
assert_eq 0 "$(($(count_upstream_requests "$UP_LOG" /v2/app/demo/manifests/ "$mark") +
	$(count_upstream_requests "$UP_LOG" /v2/app/demo/blobs/ "$mark")))" \
	"upstream requests of the pull after the prefetch"

log "c. --pin pins on each owner"
out=$("$REGMIRROR" prefetch --mirror "$B_ADMIN" --pin 1h --wait app/demo:v2 2>"$T_DIR/progress2") ||
	fail "prefetch --pin failed: $(cat "$T_DIR/progress2")"
for d in $(blobs_of "$T_DIR/img2.json"); do
	h=$(blob_holders "$d")
	[ "${#h}" = 1 ] || fail "$d is on members '$h', want one"
	H=$(echo "$h" | tr a-z A-Z)
	until=$("$REGMIRROR" cache ls --json -c "$T_DIR/$h.conf" |
		jq -r --arg d "$d" '.blobs[] | select(.digest == $d) | .pinned_until')
	[ "$until" -gt "$(date +%s)" ] ||
		fail "$d on member $h ($H) is not pinned (pinned_until $until)"
done

log "d. replication through the front"
mkimage "$T_DIR/rel" single --seed t105-r --ref r1 --layers 310000,320000,330000,340000
seed_image "$T_DIR/rel" r1 "$UP_HOST" app/demo:r1
mark=$(log_mark "$UP_LOG")
"$REGMIRROR" sync rel --mirror "$A_ADMIN" --wait >"$T_DIR/sync.out" 2>&1 ||
	fail "sync rel failed: $(cat "$T_DIR/sync.out")"
landed replication "$T_DIR/rel.json" "$mark"
# The tag list was asked of the repository's owner through the front.
n=$(cat "$A_LOG" "$B_LOG" "$C_LOG" | grep -c '"GET /v2/app/demo/tags/list' || true)
[ "$n" -ge 1 ] || fail "no tags/list through the front"

log "e. the shared secret is honoured by the other members"
# miss_limit = 1: the repository's owner let both jobs' manifest misses
# (v1, then v2, within the minute) through: they carry the tier's secret.
n=$(cat "$A_LOG" "$B_LOG" "$C_LOG" |
	grep -cE '"GET /v2/app/demo/manifests/v[12]\?ns=docker.io" 200 .* src=miss' || true)
assert_eq 2 "$n" "jobs' manifest misses answered 200 under miss_limit = 1"
# A member without it (a random secret of its own): its job is an
# ordinary client on the others, and the second miss is refused.
write_member_conf d "$UP_URL" "front = http://127.0.0.1:$FRONT_PORT"
start_member d
mkimage "$T_DIR/img3" single --seed t105-3 --ref v3 --layers 1000,2000
mkimage "$T_DIR/img4" single --seed t105-4 --ref v4 --layers 3000,4000
seed_image "$T_DIR/img3" v3 "$UP_HOST" app/demo:v3
seed_image "$T_DIR/img4" v4 "$UP_HOST" app/demo:v4
# (In the background: the job waits out the 429's Retry-After.)
"$REGMIRROR" prefetch --mirror "$D_ADMIN" app/demo:v3 app/demo:v4 \
	>"$T_DIR/out-d" 2>&1 &
register_pid $! "prefetch through member d"
refused_429() {
	cat "$A_LOG" "$B_LOG" "$C_LOG" |
		grep -qE '"GET /v2/app/demo/manifests/v[34]\?ns=docker.io" 429 '
}
wait_for 30 refused_429 ||
	fail "a job without the tier's secret was let past miss_limit on another member"
pass
