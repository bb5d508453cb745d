#!/bin/bash
# Observability an operator plugs in: a real Prometheus (Debian's) scrapes
# /metrics of two mirrors every second and evaluates the shipped alerts
# (deploy/prometheus/alerts.yml); the test asks its HTTP API, not the
# mirrors, and expects exact values:
#  - hit ratio: mirror A is pulled by curl (manifest and 3 blobs twice):
#    blobs 3 hits / 6 = 0.5, the manifest 1 hit;
#  - upstream requests by upstream (the config's names) and status: what
#    docker-registry logged from each mirror, 200s and 404s apart;
#  - fill durations: a histogram whose _count and +Inf bucket are 3 and
#    that histogram_quantile() reads;
#  - bytes served by source: cache = the bytes of the hits, upstream =
#    the misses' (and the 404's body);
#  - replication lag on mirror B (policies "apps", which succeeds, and
#    "broken", whose repository does not exist): last_run_failed 0 / 1,
#    runs by result, lag and last success; the RegmirrorReplicationFailing
#    alert goes pending for "broken" only;
#  - promtool checks the shipped rules and example config;
#  - A's access log is JSON lines (access_log = json) that jq parses, with
#    every field; B's stays text (src=... at the end).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq prometheus promtool
need_regmirror

PROM_DIR=$top_srcdir/deploy/prometheus
promtool check rules "$PROM_DIR/alerts.yml" >"$T_DIR/promtool.out" 2>&1 ||
	fail "promtool check rules: $(cat "$T_DIR/promtool.out")"
promtool check config "$PROM_DIR/prometheus.yml" >"$T_DIR/promtool.out" 2>&1 ||
	fail "promtool check config: $(cat "$T_DIR/promtool.out")"
T0=$(date +%s)

mkimage "$T_DIR/img" single --seed t111 --ref v1 --layers 3000,50000
start_registry up
seed_image "$T_DIR/img" v1 "$UP_HOST" app/a:v1
MT=$(jq -r .top.mediaType "$T_DIR/img.json")
MSIZE=$(jq -r .top.size "$T_DIR/img.json")
mapfile -t BLOBS < <(jq -r '.images[0] | .config.digest, .layers[].digest' \
	"$T_DIR/img.json")
BSIZE=$(jq '.images[0] | .config.size + ([.layers[].size] | add)' \
	"$T_DIR/img.json")
[ "${#BLOBS[@]}" -eq 3 ] || hard_error "expected 3 blobs"

# Mirror A: JSON access lines, upstream "primary.test:5000".
PA=$(free_port) AA=$(free_port)
write_mirror_base "$T_DIR/a.conf" "$PA" "$T_DIR/cache-a" 1h \
	"admin_listen = 127.0.0.1:$AA" "access_log = json"
cat >>"$T_DIR/a.conf" <<EOC
[upstream "primary.test:5000"]
url = $UP_URL
default = yes
EOC
start_mirror "$T_DIR/a.conf" mirror-a
A_URL=$MIRROR_URL A_LOG=$MIRROR_LOG A_PID=$MIRROR_PID

ametric() {	# ametric NAME{LABELS}: A's own /metrics, for the waits
	local body
	body=$(curl -sf --max-time 10 "http://127.0.0.1:$AA/metrics") ||
		fail "GET A's /metrics"
	awk -v m="regmirror_$1" '$1 == m { print $2 }' <<<"$body"
}

get() {	# get PATH [curl args]: 200 from A (the body in rq.body)
	rq "$A_URL$1" "${@:2}"
	[ "$RQ_CODE" = 200 ] || fail "GET $1 on A: $RQ_CODE"
}

# Phase A: what docker-registry logs from here on is A's.
RL0=$(log_mark "$UP_LOG")
get /v2/app/a/manifests/v1 -H "Accept: $MT"
get /v2/app/a/manifests/v1 -H "Accept: $MT"
rq "$A_URL/v2/app/a/manifests/nope" -H "Accept: $MT"
assert_eq 404 "$RQ_CODE" "an unknown tag"
for b in "${BLOBS[@]}"; do
	get "/v2/app/a/blobs/$b"
	assert_eq "${b#sha256:}" "$(rq_sha)" "blob $b"
done
stored3() { [ "$(ametric 'fills_stored_total')" = 3 ]; }
wait_for 20 stored3 || fail "A did not store the 3 blobs"
for b in "${BLOBS[@]}"; do get "/v2/app/a/blobs/$b"; done
registry_log_sync up
RL1=$(log_mark "$UP_LOG")
# Every request A sent (the sync marker excluded), and by status.
upstream_lines() {	# upstream_lines FROM TO
	sed -n "$(($1 + 1)),$2p" "$UP_LOG" |
		grep -E '^[^ ]+ - [^ ]+ \[[^]]+\] "[A-Z]+ /v2/' |
		grep -v '"GET /v2/?sync-' || true
}
upstream_lines "$RL0" "$RL1" >"$T_DIR/up-a.lines"
NA=$(wc -l <"$T_DIR/up-a.lines")
NA200=$(awk '$9 == 200' "$T_DIR/up-a.lines" | wc -l)
NA404=$(awk '$9 == 404' "$T_DIR/up-a.lines" | wc -l)
[ "$NA" -ge 5 ] && [ "$NA404" -ge 1 ] ||
	fail "docker-registry logged $NA requests ($NA404 404s) from A"
assert_eq "$NA" $((NA200 + NA404)) "A's upstream requests: only 200s and 404s"

# Mirror B: text access lines, upstream "region.test", two policies.
PB=$(free_port) AB=$(free_port)
write_mirror_base "$T_DIR/b.conf" "$PB" "$T_DIR/cache-b" 1h \
	"admin_listen = 127.0.0.1:$AB"
cat >>"$T_DIR/b.conf" <<EOC
[upstream "region.test"]
url = $UP_URL
default = yes
[replication "apps"]
source = region.test
repositories = app/a
interval = 1h
[replication "broken"]
source = region.test
repositories = app/missing
interval = 1h
EOC
start_mirror "$T_DIR/b.conf" mirror-b
B_HOST=$MIRROR_HOST B_LOG=$MIRROR_LOG B_PID=$MIRROR_PID
bruns() {	# both policies ran once
	local r
	r=$(curl -sf --max-time 10 "http://127.0.0.1:$AB/api/v1/replication") ||
		return 1
	[ "$(jq '[.policies[] | select(.runs >= 1 and .state == "idle")] |
		length' <<<"$r")" = 2 ]
}
wait_for 30 bruns ||
	fail "B's policies did not run: $(curl -s "http://127.0.0.1:$AB/api/v1/replication")"
# The exposition passes promtool's lint (names, HELP, TYPE, histogram).
for ap in "$AA" "$AB"; do
	curl -sf --max-time 10 "http://127.0.0.1:$ap/metrics" >"$T_DIR/metrics.txt" ||
		fail "GET /metrics"
	promtool check metrics <"$T_DIR/metrics.txt" >"$T_DIR/lint.out" 2>&1 ||
		fail "promtool check metrics: $(head -n 20 "$T_DIR/lint.out")"
done

skopeo_ copy -q --src-tls-verify=false "docker://$B_HOST/app/a:v1" \
	"oci:$T_DIR/pulled:v1" >>"$T_DIR/skopeo.log" 2>&1 ||
	fail "skopeo pull through B: $(tail -n 5 "$T_DIR/skopeo.log")"
layout_check "$T_DIR/pulled"
registry_log_sync up
RL2=$(log_mark "$UP_LOG")
upstream_lines "$RL1" "$RL2" >"$T_DIR/up-b.lines"
NB=$(wc -l <"$T_DIR/up-b.lines")
NB404=$(awk '$9 == 404' "$T_DIR/up-b.lines" | wc -l)
[ "$NB" -ge 4 ] && [ "$NB404" -ge 1 ] ||
	fail "docker-registry logged $NB requests ($NB404 404s) from B"

# Prometheus: both admin listeners, every second, with the shipped rules.
PP=$(free_port)
cat >"$T_DIR/prometheus.yml" <<EOC
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $PROM_DIR/alerts.yml
scrape_configs:
  - job_name: regmirror
    static_configs:
      - targets: ['127.0.0.1:$AA', '127.0.0.1:$AB']
EOC
promtool check config "$T_DIR/prometheus.yml" >"$T_DIR/promtool.out" 2>&1 ||
	fail "promtool check config (test): $(cat "$T_DIR/promtool.out")"
prometheus --config.file="$T_DIR/prometheus.yml" \
	--storage.tsdb.path="$T_DIR/prom-data" \
	--web.listen-address="127.0.0.1:$PP" >>"$T_DIR/prometheus.log" 2>&1 &
register_pid $! prometheus "$T_DIR/prometheus.log"
PROM_PID=$!
P=http://127.0.0.1:$PP
prom_ready() {
	is_alive "$PROM_PID" || hard_error "prometheus exited"
	[ "$(http_code "$P/-/ready")" = 200 ]
}
wait_for 30 prom_ready || hard_error "prometheus not ready on :$PP"
IA=127.0.0.1:$AA IB=127.0.0.1:$AB

# prom EXPR: the value of the first sample of an instant query, or "".
prom() {
	curl -sf --max-time 10 -G "$P/api/v1/query" \
		--data-urlencode "query=$1" |
		jq -r '.data.result[0].value[1] // empty' 2>/dev/null || true
}
prom_is() { [ "$(prom "$1")" = "$2" ]; }
# expect EXPR VALUE: poll until Prometheus has scraped it (a few seconds).
expect() {
	wait_for 30 prom_is "$1" "$2" ||
		fail "Prometheus: $1 = '$(prom "$1")', expected '$2'"
}
expect "up{instance=\"$IA\"}" 1
expect "up{instance=\"$IB\"}" 1
expect "regmirror_ready{instance=\"$IA\"}" 1

# Hit ratio (what a dashboard plots), and the counts under it.
q='regmirror_cache_requests_total{instance="'$IA'",kind="blob"'
expect "sum($q,result=\"hit\"}) / sum($q})" 0.5
expect "$q,result=\"miss\"}" 3
q='regmirror_cache_requests_total{instance="'$IA'",kind="manifest"'
expect "$q,result=\"hit\"}" 1

# Upstream requests by upstream and status code.
q='regmirror_upstream_http_requests_total{instance="'$IA'",upstream="primary.test:5000"'
expect "$q,code=\"200\"}" "$NA200"
expect "$q,code=\"404\"}" "$NA404"
expect "sum($q})" "$NA"
expect "count(regmirror_upstream_http_requests_total{instance=\"$IA\",upstream!=\"primary.test:5000\"})" ""
q='regmirror_upstream_http_requests_total{instance="'$IB'",upstream="region.test"'
expect "sum($q})" "$NB"
expect "$q,code=\"404\"}" "$NB404"

# Fill durations: a real histogram.
q='regmirror_fill_duration_seconds'
expect "${q}_count{instance=\"$IA\",result=\"stored\"}" 3
expect "${q}_bucket{instance=\"$IA\",result=\"stored\",le=\"+Inf\"}" 3
expect "${q}_count{instance=\"$IA\",result=\"failed\"}" 0
p99=$(prom "histogram_quantile(0.99, sum by (le) (${q}_bucket{instance=\"$IA\",result=\"stored\"}))")
awk -v v="$p99" 'BEGIN { exit !(v + 0 > 0 && v + 0 <= 10) }' ||
	fail "histogram_quantile of the fill durations: '$p99'"
sum=$(prom "${q}_sum{instance=\"$IA\",result=\"stored\"}")
awk -v v="$sum" 'BEGIN { exit !(v + 0 > 0 && v + 0 < 30) }' ||
	fail "fill durations' _sum: '$sum'"

# Bytes served by source: the hits came from the cache, the misses from
# the upstream, the 404's error body from the mirror itself (local).
B404=$(grep '^{' "$A_LOG" | jq -r 'select(.path == "/v2/app/a/manifests/nope") |
	.bytes')
[ -n "$B404" ] || fail "no JSON access line for the 404"
q='regmirror_served_bytes_total{instance="'$IA'"'
expect "$q,source=\"cache\"}" $((MSIZE + BSIZE))
expect "$q,source=\"upstream\"}" $((MSIZE + BSIZE))
# (and start_mirror's GET /v2/: "{}"): as A's JSON lines add up.
[ "$B404" -gt 0 ] || fail "the 404 sent no body"
expect "$q,source=\"local\"}" "$(grep '^{' "$A_LOG" |
	jq -s '[.[] | select(.source == "local") | .bytes] | add')"
expect "$q,source=\"passthrough\"}" 0

# Replication lag and outcomes on B.
q='{instance="'$IB'",policy="apps"}'
r='{instance="'$IB'",policy="broken"}'
expect "regmirror_replication_last_run_failed$q" 0
expect "regmirror_replication_last_run_failed$r" 1
expect "regmirror_replication_runs_total{instance=\"$IB\",policy=\"apps\",result=\"ok\"}" 1
expect "regmirror_replication_runs_total{instance=\"$IB\",policy=\"broken\",result=\"failed\"}" 1
expect "regmirror_replication_last_success_timestamp_seconds$r" 0
expect "regmirror_replication_interval_seconds$q" 3600
ok_at=$(prom "regmirror_replication_last_success_timestamp_seconds$q")
[ "$ok_at" -ge "$T0" ] && [ "$ok_at" -le "$(date +%s)" ] ||
	fail "apps: last success at '$ok_at' (test started at $T0)"
lag=$(prom "regmirror_replication_lag_seconds$q")
blag=$(prom "regmirror_replication_lag_seconds$r")
[ -n "$lag" ] && [ "$lag" -ge 0 ] && [ "$lag" -le $(($(date +%s) - T0)) ] ||
	fail "apps: lag '$lag' s"
[ -n "$blag" ] && [ "$blag" -ge "$lag" ] ||
	fail "broken: lag '$blag' s is under apps' ($lag s)"
# Nothing at A replicates.
expect "count(regmirror_replication_lag_seconds{instance=\"$IA\"})" ""

# The shipped rules load and evaluate: the failing policy's alert is
# pending (for: 15m), the healthy one's is not there.
rules_ok() {
	[ "$(curl -sf --max-time 10 "$P/api/v1/rules" | jq '[.data.groups[].rules[] |
		select(.health == "ok")] | length')" = 9 ]
}
wait_for 30 rules_ok ||
	fail "rules: $(curl -s "$P/api/v1/rules" | jq -c '[.data.groups[].rules[] | {name, health, lastError}]')"
alerts() {
	curl -sf --max-time 10 "$P/api/v1/alerts" | jq -r '.data.alerts[] |
		"\(.labels.alertname) \(.labels.policy // "-") \(.state)"' | sort
}
broken_pending() {
	[ "$(alerts | grep '^RegmirrorReplicationFailing ')" = \
		"RegmirrorReplicationFailing broken pending" ]
}
wait_for 30 broken_pending || fail "alerts: $(alerts | tr '\n' ';')"
alerts | grep -q '^RegmirrorDown ' && fail "RegmirrorDown fired"

# A path with a byte >= 0x80, an ESC and a quote (sent raw): its JSON
# line still parses, the bytes escaped (\xff) or replaced (?), not raw.
"$PY" - "$PA" <<'EOPY' || fail "raw request to A"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b'GET /v2/h\xff\x1b"x/manifests/v1 HTTP/1.1\r\nHost: a\r\n'
          b'Connection: close\r\n\r\n')
while s.recv(65536):
    pass
EOPY
hostile() { grep -q '"path":"/v2/h\\\\xff??x/manifests/v1"' "$A_LOG"; }
wait_for 10 hostile ||
	fail "the hostile path's line: $(grep '/v2/h' "$A_LOG" | cat -v)"
LC_ALL=C grep -q $'[\x80-\xff\x1b]' "$A_LOG" && fail "raw bytes in A's log"

# A's access log: JSON lines only, one per request, every field.
grep -q ' access r' "$A_LOG" && fail "A (access_log = json) wrote text lines"
grep '^{' "$A_LOG" >"$T_DIR/a.jsonl" || fail "no JSON lines in A's log"
jq -e . "$T_DIR/a.jsonl" >/dev/null || fail "A's JSON lines do not parse"
assert_eq 9 "$(grep -c '"path":"/v2/app/' "$T_DIR/a.jsonl")" \
	"JSON access lines of the 9 requests"
jq -se 'all(.[]; .path | startswith("/v2/"))' "$T_DIR/a.jsonl" >/dev/null ||
	fail "A's JSON lines: $(cat "$T_DIR/a.jsonl")"
fields='["auth","bytes","cache","client","duration_ms","method","path",
	"peer","repository","request_id","route","rule","source","src",
	"status","time","tls","upstream","user"]'
jq -se --argjson f "$fields" 'all(.[]; (keys == $f) and
	(.request_id | test("^r[0-9]+$")) and (.duration_ms | type == "number")
	and (.bytes | type == "number") and (.time | test("Z$")) and
	.client == "127.0.0.1" and .user == null and .auth == "anonymous" and
	.rule == null and .method == "GET" and .tls == false and
	((.path | startswith("/v2/app/") | not) or
	(.upstream == "primary.test:5000" and .repository == "app/a")))' \
	"$T_DIR/a.jsonl" \
	>/dev/null || fail "a JSON line lacks a field: $(head -n 1 "$T_DIR/a.jsonl")"
line=$(jq -c 'select(.path == "/v2/app/a/manifests/v1")' "$T_DIR/a.jsonl" |
	head -n 1)
jq -e --argjson n "$MSIZE" '.route == "manifest" and .cache == "miss" and
	.src == "miss" and .source == "upstream" and .status == 200 and
	.bytes == $n' <<<"$line" >/dev/null || fail "manifest miss line: $line"
jq -se --argjson n "${#BLOBS[@]}" '[.[] | select(.route == "blob" and
	.cache == "hit" and .source == "cache" and .status == 200)] |
	length == $n' "$T_DIR/a.jsonl" >/dev/null ||
	fail "blob hit lines: $(grep '"blob"' "$T_DIR/a.jsonl")"
jq -se '[.[] | select(.status == 404)] | length == 1' "$T_DIR/a.jsonl" \
	>/dev/null || fail "the 404's line"
# B keeps the text line, src=... last.
grep -qE " access r[0-9]+ .* src=hit$" "$B_LOG" ||
	fail "B's text access lines: $(grep ' access r' "$B_LOG" | tail -n 2)"
grep -q '^{' "$B_LOG" && fail "B (text) wrote a JSON line"

is_alive "$A_PID" && is_alive "$B_PID" || fail "a mirror died"
pass
