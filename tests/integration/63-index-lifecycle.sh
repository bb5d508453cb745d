#!/bin/bash
# The index's lifecycle, with the daemon running in front of Debian's
# docker-registry:
#  - a client asks for 300 distinct unknown tags: every one is a 404
#    MANIFEST_UNKNOWN, but only max_negative (50) are remembered (du,
#    /api/v1/cache, /metrics), the other 250 are counted as refused; a
#    remembered one costs no upstream request again, a refused one does;
#  - restarted with negative_ttl = 2s and gc_interval = 1s, the cache
#    manager removes the expired entries by itself: du's count drops to 0
#    and the log has the pass's summary line;
#  - a manifest fetched by digest (no tag reaches it) and a blob evicted
#    by the operator leave an unreferenced manifest and orphan links:
#    "regmirror cache gc --dry-run" counts them and removes nothing,
#    "regmirror cache gc --grace 0" removes them, the tagged image stays;
#  - du, /api/v1/cache and /metrics report manifests and their bytes,
#    links and the index's size, and used = blobs + index;
#  - max_size counts the index: restarted with a budget whose 95% mark
#    lies between the blob bytes and blobs plus index, the manager evicts
#    the (unpinned) blob, which blob bytes alone would not have asked for.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq curl
need_regmirror

mkimage "$T_DIR/a" single --seed t63-a --ref v1 --layers 1048576
mkimage "$T_DIR/b" single --seed t63-b --ref v1 --layers 4096
start_registry up
seed_image "$T_DIR/a" v1 "$UP_HOST" app/a:v1
seed_image "$T_DIR/b" v1 "$UP_HOST" app/b:v1
MA=$(jq -r '.images[0].manifest.digest' "$T_DIR/a.json")
MA_SIZE=$(jq -r '.images[0].manifest.size' "$T_DIR/a.json")
LA=$(jq -r '.images[0].layers[0].digest' "$T_DIR/a.json")
MB=$(jq -r '.images[0].manifest.digest' "$T_DIR/b.json")
LB=$(jq -r '.images[0].layers[0].digest' "$T_DIR/b.json")
OCI='Accept: application/vnd.oci.image.manifest.v1+json'

MPORT=$(free_port)
APORT=$(free_port)
A="http://127.0.0.1:$APORT"
CONF=$T_DIR/mirror.conf
# mkconf NEGATIVE_TTL [CACHE_LINE...]
mkconf() {
	local ttl=$1 l extra=''
	shift
	for l in "$@"; do extra="$extra\n$l"; done
	write_mirror_conf "$CONF" "$MPORT" "$T_DIR/cache" "$UP_URL" \
		"negative_ttl = $ttl"
	# 300 unknown tags from one address: over miss_limit's
	# default (100 a minute), which test 67 covers.
	sed -i -e "s/^workers = 2$/workers = 2\nadmin_listen = 127.0.0.1:$APORT\nmiss_limit = 0/" \
		-e "s/^tag_ttl = 5m$/tag_ttl = 5m\nmax_negative = 50\ngc_interval = 1s$extra/" \
		"$CONF"
}
restart() {
	stop_pid "$MIRROR_PID" || fail "the mirror did not stop on TERM"
	start_mirror "$CONF"
}
RM() { "$REGMIRROR" cache "$@" -c "$CONF"; }
du_field() { RM du --json | jq -r ".$1"; }
api_field() { curl -sf "$A/api/v1/cache" | jq -r ".$1"; }
metric() {
	curl -sf "$A/metrics" | awk -v m="regmirror_$1" '$1 == m { print $2 }'
}

mkconf 1h
start_mirror "$CONF"
curl -sf -o /dev/null -H "$OCI" "$MIRROR_URL/v2/app/a/manifests/v1" ||
	fail "manifest app/a:v1"
got=$(curl -sf "$MIRROR_URL/v2/app/a/blobs/$LA" | sha256sum | cut -d' ' -f1)
assert_eq "${LA#sha256:}" "$got" "app/a layer through the mirror"

# 300 distinct unknown tags, one curl on one connection, in order.
for i in $(seq 0 299); do
	printf 'url = "%s/v2/app/a/manifests/unk-%d"\noutput = "/dev/null"\n' \
		"$MIRROR_URL" "$i"
done >"$T_DIR/unknown.curl"
codes=$(curl -s -K "$T_DIR/unknown.curl" -w '%{http_code}\n' | sort | uniq -c |
	awk '{ print $2 "x" $1 }')
assert_eq "404x300" "$codes" "answers to 300 unknown tags"
assert_eq 50 "$(du_field negative_tags)" "du: negative entries at the cap"
assert_eq 50 "$(du_field max_negative)" "du: max_negative"
assert_eq 1 "$(du_field tags)" "du: the one real tag"
assert_eq 50 "$(api_field negative_tags)" "/api/v1/cache negative_tags"
assert_eq 50 "$(metric cache_negative_tags)" "regmirror_cache_negative_tags"
assert_eq 250 "$(metric cache_negative_refused_total)" \
	"regmirror_cache_negative_refused_total"
# A remembered 404 is answered from the index; a refused one asks again.
registry_log_sync up
m=$(log_mark "$UP_LOG")
[ "$(http_code "$MIRROR_URL/v2/app/a/manifests/unk-0")" = 404 ] ||
	fail "unk-0 again"
[ "$(http_code "$MIRROR_URL/v2/app/a/manifests/unk-299")" = 404 ] ||
	fail "unk-299 again"
registry_log_sync up
assert_eq 0 "$(count_upstream_requests "$UP_LOG" /v2/app/a/manifests/unk-0 "$m")" \
	"upstream requests for the remembered unk-0"
assert_eq 1 "$(count_upstream_requests "$UP_LOG" /v2/app/a/manifests/unk-299 "$m")" \
	"upstream requests for the refused unk-299"

# Short TTLs: the manager removes the expired entries by itself.
mkconf 2s
restart
no_negatives() { [ "$(du_field negative_tags)" = 0 ]; }
wait_for 30 no_negatives ||
	fail "the manager left $(du_field negative_tags) expired negative entries"
grep -q "index lifecycle: removed [0-9]* negative entries" "$MIRROR_LOG" ||
	fail "no lifecycle summary line in the mirror's log"
assert_eq 1 "$(du_field tags)" "du: the real tag survives the passes"

# An unreferenced manifest (fetched by digest, no tag) and a blob link.
curl -sf -o /dev/null -H "$OCI" "$MIRROR_URL/v2/app/b/manifests/$MB" ||
	fail "manifest app/b@$MB"
curl -sf -o /dev/null "$MIRROR_URL/v2/app/b/blobs/$LB" || fail "blob app/b"
b_in_index() { RM ls --json | jq -e --arg d "$LB" '.blobs | map(.digest) | index($d)' >/dev/null; }
wait_for 10 b_in_index || fail "$LB never reached the index"
assert_eq 2 "$(du_field manifests)" "du: manifests a and b"
links0=$(du_field links)
# The operator evicts b's layer: its link points at nothing now.
RM evict "$LB" | grep -q "evicted 1" || fail "evict $LB"
dry=$(RM gc --grace 0 --dry-run --json) || fail "gc --dry-run"
assert_eq 1 "$(jq -r .manifests <<<"$dry")" "gc --dry-run: manifests"
assert_eq 2 "$(jq -r .links <<<"$dry")" "gc --dry-run: links (b's manifest, b's layer)"
assert_eq 2 "$(du_field manifests)" "manifests after a dry run"
assert_eq "$links0" "$(du_field links)" "links after a dry run"
gc=$(RM gc --grace 0 --json) || fail "gc --grace 0"
assert_eq 1 "$(jq -r .manifests <<<"$gc")" "gc: unreferenced manifests removed"
assert_eq 2 "$(jq -r .links <<<"$gc")" "gc: orphan links removed"
assert_eq 1 "$(du_field manifests)" "du: manifests after gc"
assert_eq $((links0 - 2)) "$(du_field links)" "du: links after gc"
assert_eq "$MA_SIZE" "$(du_field manifest_bytes)" "du: manifest bytes (app/a's)"
rq "$MIRROR_URL/v2/app/a/manifests/v1" -H "$OCI"
assert_eq 200 "$RQ_CODE" "app/a:v1 after gc"
assert_eq "$MA" "$(rq_header Docker-Content-Digest)" "app/a:v1 digest after gc"

# Counting: the admin API and /metrics agree with du; used = blobs + index.
c=$(curl -sf "$A/api/v1/cache") || fail "/api/v1/cache"
assert_eq 1 "$(jq -r .manifests <<<"$c")" "/api/v1/cache manifests"
assert_eq "$MA_SIZE" "$(jq -r .manifest_bytes <<<"$c")" "/api/v1/cache manifest_bytes"
assert_eq "$(du_field links)" "$(jq -r .links <<<"$c")" "/api/v1/cache links"
jq -e '.index_bytes >= .manifest_bytes and .index_bytes > 0 and
	.used_bytes == .bytes + .index_bytes' <<<"$c" >/dev/null ||
	fail "/api/v1/cache: used_bytes is not bytes + index_bytes: $c"
wait_metric() { [ "$(metric cache_manifest_bytes)" = "$MA_SIZE" ]; }
wait_for 10 wait_metric ||
	fail "regmirror_cache_manifest_bytes $(metric cache_manifest_bytes), want $MA_SIZE"
assert_eq 1 "$(metric cache_manifests)" "regmirror_cache_manifests"
[ "$(metric cache_index_bytes)" -gt 0 ] || fail "regmirror_cache_index_bytes"
[ "$(metric cache_used_bytes)" -gt "$(metric cache_bytes)" ] ||
	fail "regmirror_cache_used_bytes does not count the index"

# max_size counts the index: 95% of it between blobs and blobs + index.
blobs=$(du_field bytes)
index=$(du_field index_bytes)
max=$(((blobs + index / 2) / 95 * 100 + 100))
[ $((max / 100 * 95)) -gt "$blobs" ] &&
	[ $((max / 100 * 95)) -lt $((blobs + index)) ] ||
	hard_error "no budget between $blobs and $((blobs + index)) bytes"
mkconf 2s "max_size = $max"
restart
la_gone() { [ ! -f "$(cache_blob_file "$T_DIR/cache" "$LA")" ]; }
wait_for 20 la_gone ||
	fail "blobs $blobs + index $index over 95% of max_size $max: nothing evicted"
grep -q "evicted 1 blobs (was [0-9]* bytes with the index" "$MIRROR_LOG" ||
	fail "no eviction line in the mirror's log"
got=$(curl -sf "$MIRROR_URL/v2/app/a/blobs/$LA" | sha256sum | cut -d' ' -f1)
assert_eq "${LA#sha256:}" "$got" "app/a layer fetched again after the eviction"
mirror_alive
pass
