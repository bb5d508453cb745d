#!/bin/bash
# Prefetch obeys rate limits: when the upstream answers 429 with
# Retry-After, the job waits that long and asks again instead of failing;
# the job reports how often it was throttled, and the image arrives.  A
# job whose image fails while another of its requests waits out a 429
# still ends (failed) when that wait is over.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need jq
need_regmirror

cat >"$T_DIR/routes.json" <<'EOR'
{"/v2/app/rl/manifests/v1": [
  {"status": 429, "headers": {"Retry-After": "1"}, "body": "Too Many Requests",
   "content_type": "text/plain"},
  {"serve": true}]}
EOR
start_hubfake hub --routes "$T_DIR/routes.json"
PA=$(free_port) AA=$(free_port)
write_mirror_base "$T_DIR/m.conf" "$PA" "$T_DIR/cache" 1h \
	"admin_listen = 127.0.0.1:$AA"
cat >>"$T_DIR/m.conf" <<EOC
[upstream "hub.test"]
url = $HUB_URL
default = yes
EOC
start_mirror "$T_DIR/m.conf"

t0=$(date +%s.%N)
out=$("$REGMIRROR" prefetch --mirror "http://127.0.0.1:$AA" --wait app/rl:v1 \
	2>"$T_DIR/progress") || fail "prefetch failed: $(tail -3 "$T_DIR/progress")"
t1=$(date +%s.%N)
D=$(jq -r .manifest.digest "$HUB_INFO")
assert_eq "app/rl:v1@$D" "$out" "prefetch output after a 429"
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a >= 1.0) }' ||
	fail "the job did not wait for Retry-After"
tail -1 "$T_DIR/progress" | jq -e '.job.throttled >= 1' >/dev/null ||
	fail "throttling not reported: $(tail -1 "$T_DIR/progress")"
n=$(curl -sf "$HUB_URL/_count?path=/v2/app/rl/manifests/v1&method=GET")
assert_eq 2 "$n" "upstream GETs of the manifest (429, then the answer)"
grep -q "rate-limited, retrying in 1 s" "$MIRROR_LOG" || fail "not logged"

# Both blobs of an image are rate-limited; the config blob then turns out
# to be gone (404) while the layer still waits out its Retry-After.  The
# image fails, and when the layer's retry comes due the job ends (failed)
# instead of waiting for ever.
CFG=$(jq -r .config.digest "$HUB_INFO") LAYER=$(jq -r .layer.digest "$HUB_INFO")
jq -n --arg c "/v2/app/gone/blobs/$CFG" --arg l "/v2/app/gone/blobs/$LAYER" '{
	($c): [{status: 429, headers: {"Retry-After": "1"}}, {status: 404}],
	($l): [{status: 429, headers: {"Retry-After": "2"}}, {serve: true}]}' |
	curl -sf -X PUT --data-binary @- "$HUB_URL/_routes" ||
	hard_error "PUT /_routes"
rc=0
timeout 30 "$REGMIRROR" prefetch --mirror "http://127.0.0.1:$AA" --wait \
	app/gone:v1 >/dev/null 2>"$T_DIR/progress2" || rc=$?
assert_eq 1 "$rc" "prefetch exit status (1: failed; 124: the job never ended)"
grep -q "app/gone:v1: blob $CFG" "$T_DIR/progress2" ||
	fail "the failure does not name the missing blob: $(tail -3 "$T_DIR/progress2")"
pass
