#!/bin/bash
# Replication obeys rate_limit_floor and follows tags/list pagination: a
# hubfake source whose tags list comes in two pages (Link) and whose manifest
# answers carry "RateLimit-Remaining: 2;w=21600" and "RateLimit-Reset: 1";
# a policy with rate_limit_floor = 5 (one repository, one tag) is run with
# "regmirror sync" (no --wait).  Checks: once the run has the manifest it
# pauses (GET /api/v1/replication shows paused, state fetching) and
# fetches no blob; while paused it asks again with a HEAD of the manifest
# RateLimit-Reset (1) seconds after each low answer and pauses again (two
# such probes, each at least ~1 s after the answer before it; still no
# blob and no other manifest GET; GET /api/v1/jobs counts the pauses); once
# the source answers RateLimit-Remaining 100 the run goes on and finishes
# (idle, 1 tag in sync, none failed), both blobs are fetched once, and the
# tag is in the cache: a pull of it through the mirror is served without
# asking the source.  A second run pauses the same way and goes on when
# the source stops sending RateLimit headers (no limit is known then).  A
# tags list whose Link never advances fails the run with a reason.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need jq
need_regmirror

REPO=app/rl TAG=v1
MPATH=/v2/$REPO/manifests/$TAG
# The source's tags list (hubfake has none of its own), in two pages
# (v0, then v1 behind a Link: the policy's tag is on page 2), and its
# manifest with a rate limit under the floor.
routes() {	# routes REMAINING|none
	jq -n --arg m "$MPATH" --arg t "/v2/$REPO/tags/list" \
		--arg repo "$REPO" --arg tag "$TAG" --arg left "$1" '{
		($t): [{status: 200, body: ({name: $repo, tags: ["v0"]} | tojson),
			headers: {"Link": ("<" + $t + "?last=v0&n=1>; rel=\"next\"")}},
		       {status: 200, body: ({name: $repo, tags: [$tag]} | tojson)}],
		($m): [{serve: true, headers: (if $left == "none" then {} else
			{"RateLimit-Remaining": ($left + ";w=21600"),
			 "RateLimit-Reset": "1"} end)}]}'
}
routes 2 >"$T_DIR/routes.json"
start_hubfake hub --routes "$T_DIR/routes.json"
CONFIG=$(jq -r .config.digest "$HUB_INFO")
LAYER=$(jq -r .layer.digest "$HUB_INFO")
DIGEST=$(jq -r .manifest.digest "$HUB_INFO")

PA=$(free_port) AA=$(free_port)
A=http://127.0.0.1:$AA
write_mirror_base "$T_DIR/m.conf" "$PA" "$T_DIR/cache" 1h \
	"admin_listen = 127.0.0.1:$AA"
cat >>"$T_DIR/m.conf" <<EOC
[upstream "hub.test"]
url = $HUB_URL
default = yes
[replication "rl"]
source = hub.test
repositories = $REPO
tags = $TAG
rate_limit_floor = 5
interval = 1h
EOC
start_mirror "$T_DIR/m.conf"

hub_count() {	# hub_count PATH [METHOD]: requests hubfake answered
	curl -sf "$HUB_URL/_count?path=$1${2:+&method=$2}"
}
blob_gets() {
	echo $(($(hub_count "/v2/$REPO/blobs/$CONFIG" GET) +
		$(hub_count "/v2/$REPO/blobs/$LAYER" GET)))
}
policy() { curl -sf "$A/api/v1/replication" | jq -c '.policies[0]'; }
paused() { policy | jq -e '.paused == true and .state == "fetching"' \
	>/dev/null; }
heads_at_least() { [ "$(hub_count "$MPATH" HEAD)" -ge "$1" ]; }

"$REGMIRROR" sync rl --mirror "$A" >"$T_DIR/sync1.out" ||
	fail "sync (no --wait): $(cat "$T_DIR/sync1.out")"
wait_for 10 paused || fail "the run did not pause: $(policy)"
assert_eq 2 "$(hub_count "/v2/$REPO/tags/list" GET)" "tags/list pages read"
assert_eq 0 "$(blob_gets)" "blob GETs at the source once paused"
assert_eq 1 "$(hub_count "$MPATH" GET)" "manifest GETs before the pause"
# Two probes (HEADs of the manifest, a second apart), each answered under
# the floor: the job pauses again after each (its first pause plus two),
# stays paused and fetches nothing.
job_pauses() { curl -sf "$A/api/v1/jobs" | jq -e --argjson n "$1" \
	'.jobs | any(.paused == true and .rate_limit_pauses >= $n)' >/dev/null; }
wait_for 10 job_pauses 3 ||
	fail "no two low probes: $(curl -sf "$A/api/v1/jobs")"
heads_at_least 2 || fail "$(hub_count "$MPATH" HEAD) HEADs of the manifest after two probes"
paused || fail "the run is not paused after two low probes: $(policy)"
# hubfake stamps a request before it answers; a probe is sent a second
# after the mirror has the answer before it.
curl -sf "$HUB_URL/_requests" | jq -e --arg m "$MPATH" '
	[.[] | select(.bare == $m) | .time] | . as $t |
	length >= 3 and ([range(1; 3)] | all($t[.] - $t[. - 1] >= 0.9))' \
	>/dev/null || fail "probes not RateLimit-Reset apart: $(curl -sf "$HUB_URL/_requests")"
assert_eq 0 "$(blob_gets)" "blob GETs at the source after two low probes"
assert_eq 1 "$(hub_count "$MPATH" GET)" "manifest GETs after two low probes"
grep -q "RateLimit-Remaining is under the floor (5): paused, asking again in 1 s" \
	"$MIRROR_LOG" || fail "the pause is not logged"

# The limit recovers: the next probe resumes the run (the same run, the
# only one: interval is 1h).
routes 100 | curl -sf -X PUT --data-binary @- "$HUB_URL/_routes" ||
	hard_error "PUT /_routes"
run_over() { policy | jq -e '.state == "idle" and .runs == 1' >/dev/null; }
wait_for 10 run_over || fail "the run did not finish: $(policy)"
policy | jq -e '.paused == false and .last_failed == 0 and
	.last_tags == 1 and .tags_synced == 1' >/dev/null ||
	fail "after the run: $(policy)"
assert_eq 1 "$(hub_count "/v2/$REPO/blobs/$CONFIG" GET)" "config GETs"
assert_eq 1 "$(hub_count "/v2/$REPO/blobs/$LAYER" GET)" "layer GETs"
"$REGMIRROR" cache ls --json -c "$T_DIR/m.conf" |
	jq -e --arg d "$DIGEST" --arg r "$REPO" --arg t "$TAG" \
	'.tags | any(.upstream == "hub.test" and .repository == $r and
		.tag == $t and .digest == $d)' >/dev/null ||
	fail "the tag is not in the cache: $("$REGMIRROR" cache ls --json -c "$T_DIR/m.conf")"
hub_total() { curl -sf "$HUB_URL/_requests" | jq length; }
before=$(hub_total)
rq "http://127.0.0.1:$PA$MPATH?ns=hub.test" \
	-H "Accept: application/vnd.oci.image.manifest.v1+json"
assert_eq 200 "$RQ_CODE" "manifest through the mirror"
assert_eq "$DIGEST" "sha256:$(rq_sha)" "manifest digest through the mirror"
for b in "$CONFIG" "$LAYER"; do
	rq "http://127.0.0.1:$PA/v2/$REPO/blobs/$b?ns=hub.test"
	assert_eq 200 "$RQ_CODE" "blob $b through the mirror"
	assert_eq "$b" "sha256:$(rq_sha)" "blob $b through the mirror"
done
assert_eq "$before" "$(hub_total)" "requests at the source for a cached pull"

# Paused again (a second run meets the low limit when it revalidates the
# tag), then the source stops sending RateLimit headers at all: the next
# probe's answer has none, no limit is known, and the run finishes.
routes 2 | curl -sf -X PUT --data-binary @- "$HUB_URL/_routes" ||
	hard_error "PUT /_routes"
"$REGMIRROR" sync rl --mirror "$A" >"$T_DIR/sync2.out" ||
	fail "second sync: $(cat "$T_DIR/sync2.out")"
wait_for 10 paused || fail "the second run did not pause: $(policy)"
routes none | curl -sf -X PUT --data-binary @- "$HUB_URL/_routes" ||
	hard_error "PUT /_routes"
run2_over() { policy | jq -e '.state == "idle" and .runs == 2 and
	.last_failed == 0 and .paused == false' >/dev/null; }
wait_for 10 run2_over ||
	fail "the run stayed paused once the limit headers were gone: $(policy)"

# A source whose tags list pages for ever (the same Link again and again)
# fails that list, with a reason, and the run ends.
jq -n --arg t "/v2/$REPO/tags/list" --arg repo "$REPO" '{
	($t): [{status: 200, body: ({name: $repo, tags: ["v0"]} | tojson),
		headers: {"Link": ("<" + $t + "?last=v0&n=1>; rel=\"next\"")}}]}' |
	curl -sf -X PUT --data-binary @- "$HUB_URL/_routes" ||
	hard_error "PUT /_routes"
"$REGMIRROR" sync rl --mirror "$A" --wait >"$T_DIR/sync3.out" 2>&1 &&
	fail "a run over an endless tags list reported success"
policy | jq -e '.state == "idle" and .runs == 3 and
	(.last_error | test("pagination does not end"))' >/dev/null ||
	fail "endless pagination: $(policy)"
pass
