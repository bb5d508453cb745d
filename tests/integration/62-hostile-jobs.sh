#!/bin/bash
# Hostile upstream JSON and hostile admin clients, against hubfake.py:
#  a. Prefetch of manifests whose descriptors are hostile: a layer digest
#     carrying CRLF and a second request line (request smuggling to the
#     mirror's own listener), an index child digest that is garbage, a
#     size of -1 and of 1e30, a media type with CR/LF, a 300-character
#     platform os.  Each image fails with an error naming the field; the
#     good image of the same job is done; the mirror's access log has no
#     request for the smuggled path nor for any invalid digest, and none
#     for evil/* but the root manifests (each with its ?ns=); hubfake
#     never saw one either (nor any blob of a refused manifest); the
#     daemon still answers.
#  b. pin: 9223372036854775807, -5, 0, 315360001 (10 years + 1 s), "1000y",
#     "abc", "0s", "3651d", true, 1.5 are refused (400, error naming pin);
#     "forever", "24h", 3600 and 315360000 are accepted.
#  c. Caps on a job: max_job_images + 1 images and max_job_platforms + 1
#     platforms are refused (400 naming the field); so are a platform
#     with CR/LF and a "platforms" that is not a list.
#  d. max_jobs: with max_jobs admin-API jobs running (their manifests
#     delayed by hubfake), the next one gets 429 with Retry-After and a
#     JSON error; a replication run started meanwhile is not refused and
#     syncs its tags; once the jobs end, a new job is accepted.
#  e. Replication: tags/list (paged) with invalid and duplicate tags stops
#     at max_tags_per_repository (the tags past it are never asked for);
#     two repositories stop at max_tags in all; _catalog with an invalid
#     name stops at max_repositories.  GET /api/v1/replication reports
#     the cap and the invalid entries; the log has one line for each.
#  f. A registry event whose repository has CR/LF triggers nothing and
#     puts no forged line in the log.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need jq
need_regmirror

MT_M=application/vnd.oci.image.manifest.v1+json
MT_I=application/vnd.oci.image.index.v1+json
start_hubfake hub
CFG=$(jq -r .config.digest "$HUB_INFO") CS=$(jq -r .config.size "$HUB_INFO")
LAYER=$(jq -r .layer.digest "$HUB_INFO") LS=$(jq -r .layer.size "$HUB_INFO")
MAN=$(jq -r .manifest.digest "$HUB_INFO") MS=$(jq -r .manifest.size "$HUB_INFO")
HEX=${LAYER#sha256:}
SMUGGLE="sha256:$HEX"$'\r\n'"GET /v2/evil/manifests/x HTTP/1.1"$'\r\n'"Host: x"$'\r\n\r\n'
# ... and one whose first request line is complete (pipelined smuggling).
SMUGGLE2="sha256:$HEX HTTP/1.1"$'\r\n'"Host: x"$'\r\n\r\n'"$SMUGGLE"

# manifest CONFIG_DESC LAYER_DESC: an image manifest (JSON text).
manifest() {
	jq -cn --argjson c "$1" --argjson l "$2" --arg mt "$MT_M" \
		'{schemaVersion: 2, mediaType: $mt, config: $c, layers: [$l]}'
}
desc() {	# desc MEDIATYPE DIGEST SIZE(JSON)
	jq -cn --arg m "$1" --arg d "$2" --argjson s "$3" \
		'{mediaType: $m, digest: $d, size: $s}'
}
CDESC=$(desc application/vnd.oci.image.config.v1+json "$CFG" "$CS")
LDESC=$(desc application/vnd.oci.image.layer.v1.tar+gzip "$LAYER" "$LS")
index() {	# index CHILD_DIGEST PLATFORM_OS
	jq -cn --arg d "$1" --arg os "$2" --arg mt "$MT_I" --arg cm "$MT_M" \
		--argjson s "$MS" '{schemaVersion: 2, mediaType: $mt,
		manifests: [{mediaType: $cm, digest: $d, size: $s,
		platform: {os: $os, architecture: "amd64"}}]}'
}

tag_pages() {	# the paged tags/list of cap/app: 2 invalid, 1 duplicate
	jq -n --arg bad $'a\r\nb' '[
	  {status: 200, body: ({name: "cap/app", tags: ["v1", "bad tag", "v2",
	    $bad]} | tojson), headers: {Link:
	    "</v2/cap/app/tags/list?n=4&last=b>; rel=\"next\""}},
	  {status: 200, body: ({name: "cap/app", tags: ["v2", "v3", "v4", "v5",
	    "v6", "v7"]} | tojson)}]'
}
tags_of() {	# tags_of REPO TAG...: a canned tags/list answer
	local r=$1
	shift
	jq -cn --arg r "$r" '[{status: 200, body: ({name: $r,
		tags: $ARGS.positional} | tojson)}]' --args "$@"
}
canned() {	# canned CONTENT_TYPE BODY: one answer for every request
	jq -cn --arg t "$1" --arg b "$2" \
		'[{status: 200, content_type: $t, body: $b}]'
}
jq -n \
	--argjson smuggle "$(canned "$MT_M" "$(manifest "$CDESC" \
		"$(desc application/vnd.oci.image.layer.v1.tar+gzip "$SMUGGLE" "$LS")")")" \
	--argjson smuggle2 "$(canned "$MT_M" "$(manifest "$CDESC" \
		"$(desc application/vnd.oci.image.layer.v1.tar+gzip "$SMUGGLE2" "$LS")")")" \
	--argjson index "$(canned "$MT_I" "$(index sha256:zzzz linux)")" \
	--argjson negsize "$(canned "$MT_M" "$(manifest \
		"$(desc application/vnd.oci.image.config.v1+json "$CFG" -1)" \
		"$LDESC")")" \
	--argjson bigsize "$(canned "$MT_M" "$(manifest "$CDESC" \
		"$(desc application/vnd.oci.image.layer.v1.tar+gzip "$LAYER" 1e30)")")" \
	--argjson mtype "$(canned "$MT_M" "$(manifest "$CDESC" \
		"$(desc $'application/x\r\nX-Evil: 1' "$LAYER" "$LS")")")" \
	--argjson plat "$(canned "$MT_I" "$(index "$MAN" \
		"$(printf 'o%.0s' {1..300})")")" \
	--argjson slow '[{"serve": true, "delay": 12}]' \
	--argjson pages "$(tag_pages)" \
	--argjson tota "$(tags_of tot/a t1 t2)" \
	--argjson totb "$(tags_of tot/b t1 t2)" \
	--argjson cata "$(tags_of cat/a v1)" \
	--argjson catb "$(tags_of cat/b v1)" \
	--argjson catc "$(tags_of cat/c v1)" \
	--argjson cat '[{"status": 200, "body":
	  "{\"repositories\": [\"Bad..Name\", \"cat/a\", \"cat/b\", \"cat/c\", \"cat/d\"]}"}]' \
	'{"/v2/evil/smuggle/manifests/v1": $smuggle,
	  "/v2/evil/smuggle2/manifests/v1": $smuggle2,
	  "/v2/evil/index/manifests/v1": $index,
	  "/v2/evil/negsize/manifests/v1": $negsize,
	  "/v2/evil/bigsize/manifests/v1": $bigsize,
	  "/v2/evil/mediatype/manifests/v1": $mtype,
	  "/v2/evil/platform/manifests/v1": $plat,
	  "/v2/slow/a/manifests/v1": $slow, "/v2/slow/b/manifests/v1": $slow,
	  "/v2/cap/app/tags/list": $pages,
	  "/v2/tot/a/tags/list": $tota, "/v2/tot/b/tags/list": $totb,
	  "/v2/_catalog": $cat, "/v2/cat/a/tags/list": $cata,
	  "/v2/cat/b/tags/list": $catb, "/v2/cat/c/tags/list": $catc}' |
	curl -sf -X PUT --data-binary @- "$HUB_URL/_routes" ||
	hard_error "PUT /_routes"

P=$(free_port) AP=$(free_port)
A="http://127.0.0.1:$AP"
cat >"$T_DIR/m.conf" <<EOC
# written by $T_NAME
[server]
listen = 127.0.0.1:$P
admin_listen = 127.0.0.1:$AP
workers = 2
log_level = info
max_jobs = 2
max_job_images = 8
max_job_platforms = 2

[cache]
dir = $T_DIR/cache
tag_ttl = 1h

[timeouts]
connect = 2s
first_byte = 30s
idle = 60s

[upstream "hub.test"]
url = $HUB_URL
default = yes

[replication "capped"]
source = hub.test
repositories = cap/app
interval = 1h
max_tags_per_repository = 8

[replication "total"]
source = hub.test
repositories = tot/a, tot/b
interval = 1h
max_tags = 3

[replication "catalog"]
source = hub.test
repositories = cat/*
interval = 1h
max_repositories = 3
EOC
start_mirror "$T_DIR/m.conf"

# hub_count PATH: requests hubfake got for PATH, any method.
hub_count() {
	curl -sf --max-time 10 -G "$HUB_URL/_count" --data-urlencode "path=$1"
}
# post BODY: POST /api/v1/prefetch; sets CODE, keeps the reply in job.json
# and its headers in job.hdrs.
post() {
	CODE=$(curl -s --max-time 10 -D "$T_DIR/job.hdrs" -o "$T_DIR/job.json" \
		-w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "$1" "$A/api/v1/prefetch") || CODE=000
}
job_over() {	# job_over ID: the job is done or failed
	curl -sf "$A/api/v1/jobs/$1" | jq -e '.state == "done" or
		.state == "failed"' >/dev/null
}
# post_wait BODY: post a job that must be accepted and wait for its end.
post_wait() {
	post "$1"
	assert_eq 202 "$CODE" "POST $1 ($(cat "$T_DIR/job.json"))"
	JOB=$(jq -r .id "$T_DIR/job.json")
	wait_for 30 job_over "$JOB" || fail "job $JOB did not end"
	curl -sf "$A/api/v1/jobs/$JOB" >"$T_DIR/job.json"
}
# image_is NAME STATE ERROR_ERE: the image's state and error in job.json.
image_is() {
	local st err
	st=$(jq -r --arg i "$1" '.images[] | select(.image == $i) | .state' \
		"$T_DIR/job.json")
	err=$(jq -r --arg i "$1" '.images[] | select(.image == $i) |
		.error // ""' "$T_DIR/job.json")
	assert_eq "$2" "$st" "state of $1 (error: $err)"
	[ -z "$3" ] || grep -qE -- "$3" <<<"$err" ||
		fail "$1: error '$err' does not match /$3/"
}

# --- a. hostile descriptors -------------------------------------------
post_wait '{"images": ["evil/smuggle:v1", "evil/smuggle2:v1", "evil/index:v1",
	"evil/negsize:v1", "evil/bigsize:v1", "evil/mediatype:v1",
	"evil/platform:v1", "hub/good:v1"]}'
image_is evil/smuggle:v1 failed 'layers\[0\]: digest is not a valid digest'
image_is evil/smuggle2:v1 failed 'layers\[0\]: digest is not a valid digest'
image_is evil/index:v1 failed 'manifests\[0\]: digest is not a valid digest'
image_is evil/negsize:v1 failed 'config: size is not an integer'
image_is evil/bigsize:v1 failed 'layers\[0\]: size is not an integer'
image_is evil/mediatype:v1 failed 'layers\[0\]: mediaType is not'
image_is evil/platform:v1 failed 'manifests\[0\]: platform.os is not'
image_is hub/good:v1 done ''
jq -r '.images[].error // ""' "$T_DIR/job.json" | grep -q $'\r' &&
	fail "an image error carries a CR"
mirror_alive
[ -z "$(mirror_access_grep 'evil/manifests/x')" ] ||
	fail "the smuggled request reached the listener: $(mirror_access_grep 'evil/manifests/x')"
# The only requests for evil/* are the root manifests, each with its ?ns=
# (the smuggled bytes cut one to "GET /v2/evil/smuggle2/blobs/sha256:..."
# without it, routed to the default upstream).
bad=$(mirror_access_grep '"[A-Z]+ /v2/evil/' |
	grep -vE '"GET /v2/evil/[a-z0-9]+/manifests/v1\?ns=hub\.test"' || true)
[ -z "$bad" ] || fail "requests below a refused manifest at the listener: $bad"
bad=$(mirror_access_lines | grep -E '/(blobs|manifests)/sha' |
	grep -vE '/(blobs|manifests)/sha256:[0-9a-f]{64}[? ]' || true)
[ -z "$bad" ] || fail "requests for invalid digests at the listener: $bad"
curl -sf "$HUB_URL/_requests" >"$T_DIR/hub.json" || hard_error "/_requests"
n=$(jq '[.[] | select(.path | test("evil/manifests/x|zzzz|\r|\n"))] | length' \
	"$T_DIR/hub.json")
assert_eq 0 "$n" "upstream requests for the smuggled path or garbage"
n=$(jq '[.[].bare | select(test("/(blobs|manifests)/sha")) |
	select(test("/(blobs|manifests)/sha256:[0-9a-f]{64}$") | not)] | length' \
	"$T_DIR/hub.json")
assert_eq 0 "$n" "upstream requests for invalid digests"
n=$(jq '[.[].bare | select(startswith("/v2/evil/") and
	(contains("/manifests/v1") | not))] | length' "$T_DIR/hub.json")
assert_eq 0 "$n" "upstream requests below a refused manifest"

# --- b. pin -------------------------------------------------------------
for pin in 9223372036854775807 -5 0 315360001 '"1000y"' '"abc"' '"0s"' \
	'"3651d"' true 1.5 '"-1"' '""'; do
	post "{\"images\": [\"hub/good:v1\"], \"pin\": $pin}"
	assert_eq 400 "$CODE" "pin $pin"
	jq -e '.error | startswith("pin: ")' "$T_DIR/job.json" >/dev/null ||
		fail "pin $pin: error does not name pin: $(cat "$T_DIR/job.json")"
done
for pin in '"forever"' '"24h"' 3600 315360000 '"3650d"'; do
	post_wait "{\"images\": [\"hub/good:v1\"], \"pin\": $pin}"
	image_is hub/good:v1 done ''
done

# --- c. caps on one job -------------------------------------------------
post '{"images": ["a:1","a:2","a:3","a:4","a:5","a:6","a:7","a:8","a:9"]}'
assert_eq 400 "$CODE" "a job of max_job_images + 1 images"
jq -e '.error | startswith("images: ") and contains("8")' "$T_DIR/job.json" \
	>/dev/null || fail "images cap error: $(cat "$T_DIR/job.json")"
post '{"images": ["a:1"], "platforms": ["linux/amd64", "linux/arm64",
	"linux/s390x"]}'
assert_eq 400 "$CODE" "a job of max_job_platforms + 1 platforms"
jq -e '.error | startswith("platforms: ")' "$T_DIR/job.json" >/dev/null ||
	fail "platforms cap error: $(cat "$T_DIR/job.json")"
post '{"images": ["a:1"], "platforms": ["linux/amd64\r\nX: y"]}'
assert_eq 400 "$CODE" "a platform with CR/LF"
jq -e '.error | startswith("platforms[0]: ")' "$T_DIR/job.json" >/dev/null ||
	fail "platform error: $(cat "$T_DIR/job.json")"
post '{"images": ["a:1"], "platforms": "linux/amd64"}'
assert_eq 400 "$CODE" "platforms that is not a list"

# --- e. replication caps (the policies ran at start-up) ----------------
policy() {	# policy NAME: its status
	curl -sf "$A/api/v1/replication" |
		jq -c --arg n "$1" '.policies[] | select(.name == $n)'
}
ran() { policy "$1" | jq -e --argjson r "$2" \
	'.state == "idle" and .runs >= $r' >/dev/null; }
for p in capped total catalog; do
	wait_for 30 ran "$p" 1 || fail "policy $p did not run: $(policy "$p")"
done
policy capped | jq -e '.last_tags == 5 and .last_failed == 0 and
	.last_invalid == 2 and (.last_capped | contains("max_tags_per_repository"))' \
	>/dev/null || fail "policy capped: $(policy capped)"
for t in v1 v2 v3 v4 v5; do
	[ "$(hub_count /v2/cap/app/manifests/$t)" -ge 1 ] ||
		fail "cap/app:$t was not synced"
done
for t in v6 v7; do
	assert_eq 0 "$(hub_count /v2/cap/app/manifests/$t)" \
		"requests for cap/app:$t (past the cap)"
done
assert_eq 2 "$(hub_count /v2/cap/app/tags/list)" "tags/list pages read"
policy total | jq -e '.last_tags == 3 and
	(.last_capped | contains("max_tags"))' >/dev/null ||
	fail "policy total: $(policy total)"
policy catalog | jq -e '.last_tags == 2 and .last_invalid == 1 and
	(.last_capped | contains("max_repositories"))' >/dev/null ||
	fail "policy catalog: $(policy catalog)"
assert_eq 0 "$(hub_count /v2/cat/c/tags/list)" \
	"tags/list of a repository past max_repositories"
assert_eq 1 "$(grep -c 'replication capped: run 1: 2 invalid' "$MIRROR_LOG")" \
	"log lines about invalid tags"
assert_eq 1 "$(grep -c 'replication capped: run 1: .*max_tags_per_repository' \
	"$MIRROR_LOG")" "log lines about the cap"

# --- d. max_jobs ----------------------------------------------------------
post '{"images": ["slow/a:v1"]}'
assert_eq 202 "$CODE" "first slow job"
S1=$(jq -r .id "$T_DIR/job.json")
post '{"images": ["slow/b:v1"]}'
assert_eq 202 "$CODE" "second slow job"
S2=$(jq -r .id "$T_DIR/job.json")
job_running() { curl -sf "$A/api/v1/jobs/$1" | jq -e '.state == "running"' \
	>/dev/null; }
job_running "$S1" && job_running "$S2" || fail "the slow jobs are not running"
post '{"images": ["hub/good:v1"]}'
assert_eq 429 "$CODE" "the (max_jobs + 1)-th running job"
grep -qiE '^Retry-After: [0-9]+' "$T_DIR/job.hdrs" ||
	fail "no Retry-After on the 429: $(cat "$T_DIR/job.hdrs")"
jq -e '.error | contains("max_jobs")' "$T_DIR/job.json" >/dev/null ||
	fail "429 error: $(cat "$T_DIR/job.json")"
assert_eq 202 "$(http_code "$A/api/v1/replication/total/sync" -X POST)" \
	"a replication run while the jobs fill max_jobs"
wait_for 20 ran total 2 || fail "policy total: $(policy total)"
policy total | jq -e '.last_tags == 3 and .last_failed == 0' >/dev/null ||
	fail "the replication run beside full max_jobs: $(policy total)"
job_running "$S1" && job_running "$S2" ||
	fail "the slow jobs ended before the checks (too slow a machine?)"
wait_for 40 job_over "$S1" || fail "slow job 1 did not end"
wait_for 40 job_over "$S2" || fail "slow job 2 did not end"
post_wait '{"images": ["hub/good:v1"]}'
image_is hub/good:v1 done ''

# --- f. an event with CR/LF in its repository ---------------------------
ev=$(jq -cn --arg r $'cat/a\r\nINJECTED line' '{events: [{action: "push",
	target: {repository: $r, tag: "v1"}}]}')
assert_eq '{"triggered":0}' "$(curl -sf -X POST --data-binary "$ev" \
	"$A/api/v1/events")" "event with CR/LF"
grep -q '^INJECTED' "$MIRROR_LOG" && fail "a forged line in the log"
mirror_alive
pass
