#!/bin/bash
# SIGHUP rereads mirror.conf (README "Reloading").  A docker-registry
# upstream with htpasswd auth (user up), behind a gate that can hold a
# blob's body; a mirror with [auth] users ann and ben, one [access] rule
# and a replication policy.  Each step edits mirror.conf, sends SIGHUP
# and waits for the reload's log line:
#  a. An [access] rule changed (and renamed): the next request is decided
#     by the new rule (ann: team-a 200 -> 403, team-b 403 -> 200), while
#     a download ann started under the old rule, held by the gate,
#     completes whole; /metrics counts the renamed rule.
#  b. Upstream credentials: the upstream's htpasswd now has another
#     password and the old one is refused (a pull of new content fails);
#     password_file rewritten + SIGHUP: the same pull works, no restart
#     (the process is the same one).
#  c. A replication policy gains exclude_tags: the next run leaves out
#     the tag it now excludes and takes the one it still matches.
#  d. A config with an error: the log names FILE:LINE and "config has
#     errors, nothing reloaded"; the rule edited alongside did not apply.
#  e. listen changed, an upstream added and the policy's source moved to
#     it: the log says the first two need a restart and the policy keeps
#     its old keys; the old listener still serves, nothing listens on the
#     new port, the policy still syncs from its old source.
#  f. A rule name with a backslash is escaped in /metrics; a file that
#     would turn access control off keeps the rules and credentials in
#     force (not "no rule: deny everyone"; never credentials without the
#     rules that guarded them).
#  g. 200 SIGHUPs back to back: the daemon reloads and lives.
#  h. A mirror without access control: a file that adds rules and
#     upstream credentials takes neither (the rules need a restart).
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo curl jq htpasswd
need_regmirror

mkimage "$T_DIR/a" single --seed t112a --ref v1 --layers 1500,3000000
mkimage "$T_DIR/b" single --seed t112b --ref v1 --layers 1600,41000
mkimage "$T_DIR/c" single --seed t112c --ref v1 --layers 1700,42000
mkimage "$T_DIR/r" single --seed t112r --ref v1 --layers 1800
start_registry up --htpasswd up 'up-pass-1'
UPC='up:up-pass-1'
seed_image "$T_DIR/a" v1 "$UP_HOST" team-a/app:v1 --dest-creds "$UPC"
seed_image "$T_DIR/b" v1 "$UP_HOST" team-b/app:v1 --dest-creds "$UPC"
for t in v1.0 v1.1; do
	seed_image "$T_DIR/r" v1 "$UP_HOST" "rel/app:$t" --dest-creds "$UPC"
done
A_TOP=$(layout_top "$T_DIR/a")
A_BIG=$(jq -r '.layers[1].digest' "$T_DIR/a/blobs/sha256/${A_TOP#sha256:}")
A_BIG_SIZE=$(jq -r '.layers[1].size' "$T_DIR/a/blobs/sha256/${A_TOP#sha256:}")
R_TOP=$(layout_top "$T_DIR/r")
start_fakeupstream gate --proxy "$UP_URL" --mode gate --fault-digest "$A_BIG" \
	--stall-seconds 60

htpasswd -Bbc "$T_DIR/htpasswd" ann apass-1 2>/dev/null
htpasswd -Bb "$T_DIR/htpasswd" ben bpass-2 2>/dev/null
printf '%s' 'up-pass-1' >"$T_DIR/up.pw"
PORT=$(free_port)
APORT=$(free_port)
CONF=$T_DIR/mirror.conf

# write_conf RULE_NAME RULE_REPOS EXCLUDE_TAGS [LISTEN_PORT [SERVER_LINE
#   [POLICY_SOURCE [MORE]]]]
write_conf() {
	cat >"$CONF" <<EOF
[server]
listen = 127.0.0.1:${4:-$PORT}
admin_listen = 127.0.0.1:$APORT
workers = 2
${5:-}
[cache]
dir = $T_DIR/cache
[auth]
htpasswd = $T_DIR/htpasswd
[access "$1"]
users = ann
repositories = $2
[access "ben"]
users = ben
repositories = reg.test/**
[upstream "reg.test"]
url = $GATE_URL
default = yes
username = up
password_file = $T_DIR/up.pw
[replication "rel"]
source = ${6:-reg.test}
repositories = rel/app
tags = v1\..*
exclude_tags = $3
interval = 1h
${7:-}
EOF
}
write_conf team-a 'reg.test/team-a/**' 'none'
"$REGMIRROR" check-config -c "$CONF" >/dev/null ||
	fail "check-config refused the test's config"
MIRROR_READY_CODE=401
start_mirror "$CONF"
M=$MIRROR_URL
PID0=$MIRROR_PID
ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json"

# hup WHAT: SIGHUP, then wait until the log after the mark shows WHAT
# (an ERE) and the reload's last line ("reread" or "nothing reloaded").
hup() {
	local mark
	mark=$(wc -l <"$MIRROR_LOG")
	kill -HUP "$MIRROR_PID"
	_hup_done() { tail -n +"$((mark + 1))" "$MIRROR_LOG" |
		grep -qE 'SIGHUP: (reread |config has errors)'; }
	wait_for 20 _hup_done || fail "no end of the reload in the log"
	# Threads that pick the reload up (replication) log it after the
	# reread line: poll for the line expected too.
	_hup_has() { tail -n +"$((mark + 1))" "$MIRROR_LOG" |
		grep -qE -- "$1"; }
	wait_for 20 _hup_has "$1" ||
		fail "after SIGHUP, no '$1' in the log: $(tail -n +"$((mark + 1))" "$MIRROR_LOG")"
	HUP_LOG=$(tail -n +"$((mark + 1))" "$MIRROR_LOG")
}

# -- a. an access rule --------------------------------------------------------
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" -u ann:apass-1
assert_eq 200 "$RQ_CODE" "ann: team-a (rule team-a)"
rq "$M/v2/team-b/app/manifests/v1" -H "$ACCEPT" -u ann:apass-1
assert_eq 403 "$RQ_CODE" "ann: team-b before the reload"
# A download under the old rule, held halfway by the gate.
curl -s --max-time 60 -o "$T_DIR/big.ann" -u ann:apass-1 \
	"$M/v2/team-a/app/blobs/$A_BIG" &
BIG_CURL=$!
gate_held() { grep -q "\"GET /v2/team-a/app/blobs/$A_BIG\" held mode=gate" "$GATE_LOG"; }
wait_for 20 gate_held || fail "the gate never held ann's blob"

write_conf team-b-now 'reg.test/team-b/**' 'none'
hup 'SIGHUP: \[access\] rules reloaded \(2 rules\)'
rq "$M/v2/team-b/app/manifests/v1" -H "$ACCEPT" -u ann:apass-1
assert_eq 200 "$RQ_CODE" "ann: team-b after the reload (rule team-b-now)"
mirror_access_grep '"GET /v2/team-b/app/manifests/v1" 200 .* user=ann rule=team-b-now ' \
	>/dev/null || fail "no access line naming rule team-b-now"
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" -u ann:apass-1
assert_eq 403 "$RQ_CODE" "ann: team-a after the reload (cached, still denied)"
fake_mode "$GATE_URL" ok || hard_error "could not release the gate"
wait "$BIG_CURL" || fail "the download started before the reload failed"
assert_eq "$A_BIG_SIZE" "$(stat -c %s "$T_DIR/big.ann")" \
	"  the in-flight download's size"
assert_eq "$A_BIG" "sha256:$(sha256_of "$T_DIR/big.ann")" "  and digest"
curl -sf "http://127.0.0.1:$APORT/metrics" >"$T_DIR/metrics" ||
	fail "GET /metrics"
grep -q '^regmirror_access_decisions_total{rule="team-b-now",decision="allowed"} [1-9]' \
	"$T_DIR/metrics" || fail "/metrics: no count for rule team-b-now"
grep -q '^regmirror_access_decisions_total{rule="team-a",decision="allowed"} [1-9]' \
	"$T_DIR/metrics" || fail "/metrics: the old rule's count is gone"

# -- b. upstream credentials --------------------------------------------------
htpasswd -Bbc "$UP_ROOT/../htpasswd" up 'up-pass-2' 2>/dev/null
UPC='up:up-pass-2'
seed_image "$T_DIR/c" v1 "$UP_HOST" team-b/new:v1 --dest-creds "$UPC"
old_refused() { [ "$(http_code "$UP_URL/v2/" -u 'up:up-pass-1')" = 401 ]; }
wait_for 20 old_refused || fail "the upstream still takes the old password"
rq "$M/v2/team-b/new/manifests/v1" -H "$ACCEPT" -u ann:apass-1
case $RQ_CODE in
200) fail "new content pulled with the old upstream password" ;;
esac
printf '%s' 'up-pass-2' >"$T_DIR/up.pw"
hup 'SIGHUP: upstream reg.test: new credentials for user up; its cached tokens dropped'
skopeo_ copy -q --all --src-tls-verify=false --src-creds ann:apass-1 \
	"docker://$MIRROR_HOST/team-b/new:v1" "oci:$T_DIR/pull-c:x" \
	>"$T_DIR/skopeo-c.log" 2>&1 ||
	{ cat "$T_DIR/skopeo-c.log" >&2;
	  fail "skopeo pull with the new upstream credential failed"; }
layout_same "$T_DIR/c" "$T_DIR/pull-c"
assert_eq "$PID0" "$MIRROR_PID" "the same mirror process (no restart)"

# -- c. a replication policy --------------------------------------------------
tags_of() {	# "repo:tag" lines the cache holds, sorted
	"$REGMIRROR" cache ls --json -c "$CONF" |
		jq -r '.tags[] | select(.digest != "") |
			"\(.repository):\(.tag)"' | grep '^rel/' | sort
}
"$REGMIRROR" sync --mirror "http://127.0.0.1:$APORT" --wait \
	>"$T_DIR/sync1.out" || fail "sync: $(cat "$T_DIR/sync1.out")"
assert_eq "rel/app:v1.0
rel/app:v1.1" "$(tags_of)" "replicated before the reload"
for t in v1.2 v1.3-rc1; do
	seed_image "$T_DIR/r" v1 "$UP_HOST" "rel/app:$t" --dest-creds "$UPC"
done
write_conf team-b-now 'reg.test/team-b/**' '.*-rc.*'
hup 'replication rel: reloaded keys in use from run'
"$REGMIRROR" sync --mirror "http://127.0.0.1:$APORT" --wait \
	>"$T_DIR/sync2.out" || fail "sync: $(cat "$T_DIR/sync2.out")"
assert_eq "rel/app:v1.0
rel/app:v1.1
rel/app:v1.2" "$(tags_of)" "the next run left out v1.3-rc1 (exclude_tags)"
curl -sf "http://127.0.0.1:$APORT/api/v1/replication" |
	jq -e '.policies[0].name == "rel"' >/dev/null ||
	fail "GET /api/v1/replication after the reload"

# -- d. a config with an error ------------------------------------------------
write_conf team-a 'reg.test/team-a/**' '.*-rc.*' "$PORT" 'lisen = 127.0.0.1:1'
ERR_LINE=$(grep -n '^lisen' "$CONF" | cut -d: -f1)
hup "SIGHUP: $CONF:$ERR_LINE: unknown key 'lisen'"
grep -q 'SIGHUP: config has errors, nothing reloaded' <<<"$HUP_LOG" ||
	fail "no 'nothing reloaded' line: $HUP_LOG"
! grep -q 'rules reloaded' <<<"$HUP_LOG" || fail "rules reloaded anyway"
rq "$M/v2/team-b/app/manifests/v1" -H "$ACCEPT" -u ann:apass-1
assert_eq 200 "$RQ_CODE" "ann: team-b still (the old rule stays)"
rq "$M/v2/team-a/app/manifests/v1" -H "$ACCEPT" -u ann:apass-1
assert_eq 403 "$RQ_CODE" "ann: team-a still denied"

# -- e. listen changed --------------------------------------------------------
P2=$(free_port)
write_conf team-b-now 'reg.test/team-b/**' '.*-rc.*' "$P2" '' new.test \
	"[upstream \"new.test\"]
url = http://127.0.0.1:1"
hup 'SIGHUP: \[server\] listen changed; needs a restart'
grep -q 'SIGHUP: \[upstream "new.test"\] added; needs a restart' \
	<<<"$HUP_LOG" || fail "no line for the upstream added: $HUP_LOG"
grep -q 'SIGHUP: \[replication "rel"\] names upstream new.test, which is not running' \
	<<<"$HUP_LOG" || fail "no line for the policy kept: $HUP_LOG"
grep -q 'SIGHUP: reread .*; 0 upstream credentials changed; 2 changes need a restart' \
	<<<"$HUP_LOG" || fail "no summary line: $HUP_LOG"
"$REGMIRROR" sync --mirror "http://127.0.0.1:$APORT" --wait \
	>"$T_DIR/sync3.out" || fail "sync after the kept policy: $(cat "$T_DIR/sync3.out")"
grep -q '^rel: idle, run [0-9]*: 3 tags in sync, 0 failed$' "$T_DIR/sync3.out" ||
	fail "the policy did not sync from its old source: $(cat "$T_DIR/sync3.out")"
rq "$M/v2/team-b/app/manifests/v1" -H "$ACCEPT" -u ann:apass-1
assert_eq 200 "$RQ_CODE" "the old listener still serves"
assert_eq 000 "$(http_code "http://127.0.0.1:$P2/v2/")" \
	"nothing listens on the new port"

# -- f. rules that would not be enforced --------------------------------------
# A rule named with a backslash: /metrics escapes it (exposition format).
write_conf 'team\b' 'reg.test/team-b/**' '.*-rc.*'
hup 'SIGHUP: \[access\] rules reloaded'
curl -s "http://127.0.0.1:$APORT/metrics" |
	grep -qF 'regmirror_access_decisions_total{rule="team\\b",decision="allowed"}' ||
	fail "the rule name is not escaped in /metrics"
# Access control off ([auth] and every rule gone): restart-only.  The
# rules and credentials in force stay (not "no rule: deny everyone",
# and never new credentials without the rules that guarded them).
write_conf 'team\b' 'reg.test/team-b/**' '.*-rc.*'
sed -i '/^\[auth\]/,/^\[upstream/{/^\[upstream/!d}' "$CONF"
grep -q '^\[access' "$CONF" && hard_error "the test's config still has rules"
hup 'SIGHUP: access control would turn off: the \[access\] rules and upstream credentials stay'
rq "$M/v2/team-b/app/manifests/v1" -H "$ACCEPT" -u ann:apass-1
assert_eq 200 "$RQ_CODE" "ann under the rules kept"
rq "$M/v2/team-b/app/manifests/v1" -H "$ACCEPT"
assert_eq 401 "$RQ_CODE" "anonymous under the rules kept"

# -- g. SIGHUPs back to back ---------------------------------------------------
# Each lands on the main thread (every thread masks them), never on one
# that would take the default action and end the daemon.
# (Signals pending together merge: not one reload per signal.)
before=$(grep -c 'SIGHUP: reread' "$MIRROR_LOG")
for i in $(seq 1 100); do kill -HUP "$MIRROR_PID"; kill -HUP "$MIRROR_PID"; done
reloads() { [ "$(grep -c 'SIGHUP: reread' "$MIRROR_LOG")" -gt "$before" ]; }
wait_for 30 reloads || fail "the SIGHUP storm did not reload"
mirror_alive
assert_eq "$PID0" "$MIRROR_PID" "the same mirror process"

# -- h. rules that would not be enforced, with credentials --------------------
# A mirror started without access control, its upstream without
# credentials.  A file that adds both: the rules could only be taken at a
# restart, so the credentials must not be taken either (else anyone the
# new rules would have refused pulls with them, now).
H=$T_DIR/h.conf HP=$(free_port)
cat >"$H" <<EOF
[server]
listen = 127.0.0.1:$HP
workers = 2
[cache]
dir = $T_DIR/cache-h
[upstream "reg.test"]
url = $UP_URL
default = yes
EOF
MIRROR_READY_CODE=200 start_mirror "$H" mirror-h
rq "$MIRROR_URL/v2/team-b/app/manifests/v1" -H "$ACCEPT"
[ "$RQ_CODE" != 200 ] || fail "the upstream served anonymously: the step tests nothing"
cat >>"$H" <<EOF
username = up
password_file = $T_DIR/up.pw
[auth]
htpasswd = $T_DIR/htpasswd
[access "ann"]
users = ann
repositories = reg.test/**
EOF
hup 'SIGHUP: access control would turn on: the \[access\] rules and upstream credentials stay'
if grep -q 'new credentials for user up' <<<"$HUP_LOG"; then
	fail "credentials taken without the rules that guard them: $HUP_LOG"
fi
rq "$MIRROR_URL/v2/team-b/app/manifests/v1" -H "$ACCEPT"
[ "$RQ_CODE" != 200 ] ||
	fail "an anonymous client pulled with credentials the reload should not have taken"
pass
