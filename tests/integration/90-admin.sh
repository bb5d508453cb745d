#!/bin/bash
# The admin listener (admin_listen): /healthz and /readyz answer 200,
# /metrics exposes the counter table in Prometheus text and the counters
# move with traffic (blob miss, then hit; fill stored; upstream requests),
# /api/v1/cache reports what is stored; none of it is on the registry port.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq
need_regmirror

mkimage "$T_DIR/img" raw --seed t90 --ref v1 --size 100000
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/adm:v1
L=$(jq -r '.images[0].layers[0].digest' "$T_DIR/img.json")
APORT=$(free_port)
write_mirror_conf "$T_DIR/mirror.conf" "$(free_port)" "$T_DIR/cache" "$UP_URL"
sed -i "s/^workers = 2$/workers = 2\nadmin_listen = 127.0.0.1:$APORT/" \
	"$T_DIR/mirror.conf"
start_mirror "$T_DIR/mirror.conf"
A=http://127.0.0.1:$APORT

assert_eq 200 "$(http_code "$A/healthz")" "/healthz"
assert_eq 200 "$(http_code "$A/readyz")" "/readyz"
assert_eq 404 "$(http_code "$A/nope")" "unknown admin path"
assert_eq 404 "$(http_code "$MIRROR_URL/metrics")" "/metrics on the registry port"

metric() { curl -sf "$A/metrics" | awk -v m="regmirror_$1" '$1 == m { print $2 }'; }
# Whole, then grep: grep -q would close the pipe while curl still writes.
body=$(curl -sf "$A/metrics") || fail "/metrics"
grep -q '^# TYPE regmirror_blob_hits_total counter$' <<<"$body" ||
	fail "/metrics is not Prometheus text with the counter table"
h0=$(metric blob_hits_total) m0=$(metric blob_misses_total)
s0=$(metric fills_stored_total) u0=$(metric upstream_requests_total)

sum=$(curl -sf "$MIRROR_URL/v2/app/adm/blobs/$L" | sha256sum | cut -d' ' -f1)
assert_eq "${L#sha256:}" "$sum" "cold blob"
stored_more() { [ "$(metric fills_stored_total)" -gt "$s0" ]; }
wait_for 10 stored_more || fail "fills_stored_total did not move"
sum=$(curl -sf "$MIRROR_URL/v2/app/adm/blobs/$L" | sha256sum | cut -d' ' -f1)
assert_eq "${L#sha256:}" "$sum" "warm blob"
assert_eq $((m0 + 1)) "$(metric blob_misses_total)" "blob_misses_total"
assert_eq $((h0 + 1)) "$(metric blob_hits_total)" "blob_hits_total"
[ "$(metric upstream_requests_total)" -gt "$u0" ] ||
	fail "upstream_requests_total did not move"
[ "$(metric cache_bytes)" -ge 100000 ] || fail "regmirror_cache_bytes gauge"

c=$(curl -sf "$A/api/v1/cache") || fail "/api/v1/cache"
[ "$(jq -r .blobs <<<"$c")" -ge 1 ] && [ "$(jq -r .bytes <<<"$c")" -ge 100000 ] ||
	fail "/api/v1/cache: $c"
mirror_alive
pass
