#!/bin/bash
# Clients cannot spend the upstream's quota at will (docs/SECURITY.md).
#  a. Cache-Control: no-cache from an ordinary client does not make the
#     mirror revalidate a fresh tag: no upstream request.  (The mirror's
#     own replication still revalidates: test 92.)
#  b. tags/list (of app/y, which no policy replicates) is answered from memory for list_ttl (2 s here): a second
#     GET and a burst of 20 concurrent ones cost no upstream GET; after
#     list_ttl one does.
#  e. Replication (a job of the mirror) always asks upstream: with
#     list_ttl = 1h, a tag pushed after a client's list was cached is
#     still synced by `regmirror sync`, while the client's list does not
#     show it.
#  c. referrers answers likewise (hubfake: distribution 2.8 has none).
#  d. miss_limit = 5: a client's 6th unknown tag within the
#     minute gets 429 TOOMANYREQUESTS with Retry-After, and the upstream
#     sees 5 manifest requests from it; cached tags still come back 200;
#     another client address has its own allowance.
#  f. The limit also covers distinct tag-list queries (each one a miss)
#     and the HEADs that check a cached digest in another repository;
#     list queries the spec does not allow (a 12 KB "last", "n" twice)
#     are 400, never passed upstream or kept.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo
need_regmirror

mkimage "$T_DIR/img" single --seed t67 --ref v1 --layers 1000
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/x:v1
seed_image "$T_DIR/img" v1 "$UP_HOST" app/y:v1
cat >"$T_DIR/routes.json" <<'EOF'
{"/v2/app/r/referrers/sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb": [
  {"status": 200, "content_type": "application/vnd.oci.image.index.v1+json",
   "body": "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}"}]}
EOF
start_hubfake hub --routes "$T_DIR/routes.json"
APORT=$(free_port)
write_mirror_base "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" 5m \
	"admin_listen = 127.0.0.1:$APORT" "miss_limit = 5"
sed -i 's/^tag_ttl = 5m$/tag_ttl = 5m\nlist_ttl = 2s/' "$T_DIR/mirror.conf"
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "docker.io"]
url = $UP_URL
default = yes

[upstream "hub.test"]
url = $HUB_URL

[replication "apps"]
source = docker.io
repositories = app/x
interval = 1h
EOF
start_mirror "$T_DIR/mirror.conf"
M=$MIRROR_URL
# The policy's first run comes at start-up: let it end first (its lists
# would refresh the cached ones mid-test).
first_run_done() {
	curl -sf "http://127.0.0.1:$APORT/api/v1/replication" |
		jq -e '.policies[0].runs >= 1 and .policies[0].state == "idle"' \
		>/dev/null
}
wait_for 30 first_run_done || fail "the first replication run did not end"
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'

# -- a -----------------------------------------------------------------------
rq "$M/v2/app/x/manifests/v1" -H "$ACCEPT"
assert_eq 200 "$RQ_CODE" "the tag, first"
registry_log_sync up
mark=$(log_mark "$UP_LOG")
rq "$M/v2/app/x/manifests/v1" -H "$ACCEPT" -H 'Cache-Control: no-cache'
assert_eq 200 "$RQ_CODE" "the tag, with Cache-Control: no-cache"
registry_log_sync up
assert_eq 0 "$(count_upstream_requests "$UP_LOG" /v2/app/x/manifests "$mark")" \
	"upstream requests caused by a client's no-cache"
mirror_access_grep '"GET /v2/app/x/manifests/v1" 200 .* src=hit' | tail -n 1 |
	grep -q . || fail "the no-cache request was not a hit"

# -- b -----------------------------------------------------------------------
mark=$(log_mark "$UP_LOG")
t0=$(now_us)
rq "$M/v2/app/y/tags/list"
assert_eq 200 "$RQ_CODE" "tags/list"
jq -e '.tags == ["v1"]' "$T_DIR/rq.body" >/dev/null || fail "tags: $(cat "$T_DIR/rq.body")"
rq "$M/v2/app/y/tags/list"
assert_eq 200 "$RQ_CODE" "tags/list again"
pids=()
for i in $(seq 20); do
	curl -s -o /dev/null "$M/v2/app/y/tags/list" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
registry_log_sync up
n=$(count_upstream_gets "$UP_LOG" /v2/app/y/tags/list "$mark")
assert_eq 1 "$n" "upstream GETs of tags/list for 22 client requests within list_ttl"
wait_clock $((t0 + 2100000))
mark=$(log_mark "$UP_LOG")
rq "$M/v2/app/y/tags/list"
jq -e '.tags == ["v1"]' "$T_DIR/rq.body" >/dev/null ||
	fail "after list_ttl: $(cat "$T_DIR/rq.body")"
registry_log_sync up
assert_eq 1 "$(count_upstream_gets "$UP_LOG" /v2/app/y/tags/list "$mark")" \
	"upstream GETs of tags/list after list_ttl"

# -- c -----------------------------------------------------------------------
REF=/v2/app/r/referrers/sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb
for i in 1 2 3; do
	rq "$M$REF?ns=hub.test"
	assert_eq 200 "$RQ_CODE" "referrers $i"
done
assert_eq 1 "$(fake_count "$HUB_URL" "$REF")" "upstream referrers requests for 3"

# -- d -----------------------------------------------------------------------
# (From 127.0.0.5: 127.0.0.1 has spent misses on the lists above.)
mark=$(log_mark "$UP_LOG")
for i in 1 2 3 4 5; do
	rq "$M/v2/app/x/manifests/nosuch$i" -H "$ACCEPT" --interface 127.0.0.5
	assert_eq 404 "$RQ_CODE" "unknown tag $i"
done
rq "$M/v2/app/x/manifests/nosuch6" -H "$ACCEPT" --interface 127.0.0.5
assert_eq 429 "$RQ_CODE" "the 6th unknown tag within the minute"
assert_eq TOOMANYREQUESTS "$(rq_oci_code)" "its OCI code"
ra=$(rq_header Retry-After)
[[ $ra =~ ^[0-9]+$ ]] && [ "$ra" -ge 1 ] && [ "$ra" -le 60 ] ||
	fail "Retry-After '$ra'"
registry_log_sync up
assert_eq 5 "$(count_upstream_requests "$UP_LOG" /v2/app/x/manifests/nosuch "$mark")" \
	"upstream requests for unknown tags"
rq "$M/v2/app/x/manifests/v1" -H "$ACCEPT" --interface 127.0.0.5
assert_eq 200 "$RQ_CODE" "a cached tag for the limited client"
rq "$M/v2/app/x/manifests/nosuch7" -H "$ACCEPT" --interface 127.0.0.2
assert_eq 404 "$RQ_CODE" "another client address has its own allowance"
mirror_alive

# -- f -----------------------------------------------------------------------
big=$(head -c 12000 /dev/zero | tr '\0' a)
rq "$M/v2/app/y/tags/list?n=1&last=$big" --interface 127.0.0.3
assert_eq 400 "$RQ_CODE" "a 12 KB last"
rq "$M/v2/app/y/tags/list?n=1&n=2" --interface 127.0.0.3
assert_eq 400 "$RQ_CODE" "n twice"
for i in 1 2 3 4 5; do
	rq "$M/v2/app/y/tags/list?n=$i" --interface 127.0.0.3
	assert_eq 200 "$RQ_CODE" "tag-list query $i"
done
rq "$M/v2/app/y/tags/list?n=6" --interface 127.0.0.3
assert_eq 429 "$RQ_CODE" "the 6th distinct tag-list query within the minute"
rq "$M/v2/app/y/tags/list?n=1" --interface 127.0.0.3
assert_eq 200 "$RQ_CODE" "a list already in memory is not a miss"
DIG=$(curl -s -H "$ACCEPT" "$M/v2/app/x/manifests/v1" -D - -o /dev/null |
	tr -d '\r' | sed -n 's/^Docker-Content-Digest: //Ip')
for i in 1 2 3 4 5; do
	rq "$M/v2/other$i/app/manifests/$DIG" -H "$ACCEPT" --interface 127.0.0.4
	assert_eq 404 "$RQ_CODE" "a cached digest in repository other$i"
done
rq "$M/v2/other6/app/manifests/$DIG" -H "$ACCEPT" --interface 127.0.0.4
assert_eq 429 "$RQ_CODE" "the 6th link check within the minute"

# -- e -----------------------------------------------------------------------
stop_pid "$MIRROR_PID"
sed -i 's/^list_ttl = 2s$/list_ttl = 1h/' "$T_DIR/mirror.conf"
start_mirror "$T_DIR/mirror.conf" mirror2
M=$MIRROR_URL
rq "$M/v2/app/x/tags/list"
jq -e '.tags == ["v1"]' "$T_DIR/rq.body" >/dev/null || fail "tags: $(cat "$T_DIR/rq.body")"
seed_image "$T_DIR/img" v1 "$UP_HOST" app/x:v2
rq "$M/v2/app/x/tags/list"
jq -e '.tags == ["v1"]' "$T_DIR/rq.body" >/dev/null ||
	fail "within list_ttl the list came from upstream: $(cat "$T_DIR/rq.body")"
"$REGMIRROR" sync --mirror "http://127.0.0.1:$APORT" --wait \
	>"$T_DIR/sync.out" || fail "sync: $(cat "$T_DIR/sync.out")"
"$REGMIRROR" cache ls --json -c "$T_DIR/mirror.conf" |
	jq -e '[.tags[] | select(.repository == "app/x" and .tag == "v2")] |
	    length == 1' >/dev/null ||
	fail "replication did not sync v2 (it was served the cached list?): $(cat "$T_DIR/sync.out")"
pass
