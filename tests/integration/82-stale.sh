#!/bin/bash
# Tag freshness rules, per upstream section ([cache] tag_ttl = 1s,
# first_byte = 1s):
#
# stale_if_error (flaky.test, dead.test, tok.test: stale_if_error = 20s):
# once a tag's tag_ttl has passed and its revalidation fails, the last
# known manifest is served (200, same digest and bytes) with the header
# `Warning: 110 - "Response is Stale"`, for up to stale_if_error past the
# tag_ttl; after that the client gets the upstream error. Failures:
# upstream 500, 503, 429 and no answer (fakeupstream.py's manifest-*
# modes), connection refused (dead.test's upstream stopped), and the token
# service down (tok.test: a token-auth docker-registry whose tokenserver is
# stopped; the mirror is restarted so it holds no token). Within the
# window each is served stale and the upstream was asked; after it (9 s
# past validation) they answer 502/503 (500, 503, token service), 429
# (429), 504 (no answer) and 502 (refused), with an OCI error body and no
# Warning. With stale_if_error = 0 (nostale.test) an upstream 500 on
# revalidation is a 502/503 at once; with no stale_if_error key
# (dflt.test) the default (1h) still serves stale after 9 s.
#
# negative_ttl (reg.test: negative_ttl = 3s, a docker-registry): a GET of
# a tag the upstream does not have answers 404 MANIFEST_UNKNOWN; the tag
# is then pushed; a GET within negative_ttl answers 404 MANIFEST_UNKNOWN
# with no upstream request; once negative_ttl has passed a GET asks
# upstream and returns the pushed manifest. With negative_ttl = 0
# (noneg.test) two GETs of a missing tag make two upstream GETs.
#
# tag_ttl_for (reg.test: tag_ttl = 1h, tag_ttl_for = latest:1s, v1:1h,
# v*:1s): 1.1 s after the tags were validated, GETs of latest and v2
# make exactly one upstream HEAD each, and v1 (first match wins) and
# stable (no match: the upstream's 1h) make no upstream request at all.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need skopeo docker-registry
need_regmirror

CACHE=$T_DIR/cache
TTL=1 SIE=20 NEG=3
KINDS=(s500 s503 s429 hang)
mkimage "$T_DIR/img" single --seed t82 --ref v1 --layers 1000,2000
jq --args '.manifests += [.manifests[0] as $m | $ARGS.positional[] as $x |
	($m | .annotations["org.opencontainers.image.ref.name"] = "t-" + $x)]' \
	"${KINDS[@]}" nostale dflt dead <"$T_DIR/img/index.json" \
	>"$T_DIR/index.json" || hard_error "could not add tags to index.json"
mv "$T_DIR/index.json" "$T_DIR/img/index.json"
DG=$(layout_top "$T_DIR/img")

# -- upstreams -----------------------------------------------------------------
start_fakeupstream up --layout "$T_DIR/img" --repo app/x --tag v1
start_fakeupstream dead --layout "$T_DIR/img" --repo app/x --tag v1
start_tokenserver tok --user bob --password b0b-pw
start_registry treg --token tok
seed_image "$T_DIR/img" v1 "$TREG_HOST" app/tok:v1 --dest-creds bob:b0b-pw
start_registry reg
for t in latest v1 v2 stable; do
	seed_image "$T_DIR/img" v1 "$REG_HOST" "app/r:$t"
done
printf '%s\n' b0b-pw >"$T_DIR/pw"

cat >"$T_DIR/mirror.conf" <<EOF
# written by $T_NAME
[server]
listen = 127.0.0.1:$(free_port)
workers = 2
log_level = info

[cache]
dir = $CACHE
tag_ttl = ${TTL}s

[timeouts]
connect = 1s
first_byte = 1s
idle = 30s

[upstream "flaky.test"]
url = $UP_URL
default = yes
stale_if_error = ${SIE}s

[upstream "nostale.test"]
url = $UP_URL
stale_if_error = 0

[upstream "dflt.test"]
url = $UP_URL

[upstream "dead.test"]
url = $DEAD_URL
stale_if_error = ${SIE}s

[upstream "tok.test"]
url = $TREG_URL
username = bob
password_file = $T_DIR/pw
stale_if_error = ${SIE}s

[upstream "reg.test"]
url = $REG_URL
tag_ttl = 1h
tag_ttl_for = latest:1s, v1:1h, v*:1s
negative_ttl = ${NEG}s

[upstream "noneg.test"]
url = $REG_URL
negative_ttl = 0
EOF
start_mirror "$T_DIR/mirror.conf"

ACCEPT=(-H 'Accept: application/vnd.oci.image.index.v1+json'
	-H 'Accept: application/vnd.oci.image.manifest.v1+json'
	-H 'Accept: application/vnd.docker.distribution.manifest.v2+json')
STALE='110 - "Response is Stale"'

# path_of KIND: the mirror path of the tag a failure kind uses.
path_of() {
	case $1 in
	s500 | s503 | s429 | hang) echo "/v2/app/x/manifests/t-$1" ;;
	nostale | dflt | dead) echo "/v2/$1.test/app/x/manifests/t-$1" ;;
	tok) echo /v2/tok.test/app/tok/manifests/v1 ;;
	reg:* | noneg:*) echo "/v2/${1%%:*}.test/app/r/manifests/${1#*:}" ;;
	esac
}
# mode_of KIND: the fake upstream's mode for that failure.
mode_of() {
	case $1 in
	s500) echo manifest-status-500 ;; s503) echo manifest-status-503 ;;
	s429) echo manifest-status-429 ;; hang) echo manifest-hang ;;
	*) echo manifest-status-503 ;;
	esac
}

# mget WHAT KIND [WARNING]: GET through the mirror → 200 with DG (header
# and body) and the Warning header WARNING (none when empty).
mget() {
	local what=$1 p
	p=$(path_of "$2")
	rq "$MIRROR_URL$p" "${ACCEPT[@]}"
	[ "$RQ_CODE" = 200 ] ||
		fail "$what: GET $p: status $RQ_CODE, want 200; body: $(head -c 300 "$T_DIR/rq.body")"
	assert_eq "$DG" "$(rq_header Docker-Content-Digest)" "$what: Docker-Content-Digest"
	assert_eq "${DG#sha256:}" "$(rq_sha)" "$what: sha256 of the body"
	assert_eq "${3:-}" "$(rq_header Warning)" "$what: Warning header"
}

# merr WHAT KIND STATUSES [CODE]: GET → one of STATUSES (a regex) with an
# OCI error body (first code CODE when given) and no Warning.
merr() {
	local what=$1 p st=$3 code=${4:-}
	p=$(path_of "$2")
	rq "$MIRROR_URL$p" "${ACCEPT[@]}"
	[[ $RQ_CODE =~ ^($st)$ ]] ||
		fail "$what: GET $p: status $RQ_CODE, want $st; Warning: '$(rq_header Warning)'; body: $(head -c 300 "$T_DIR/rq.body")"
	[ -n "$(rq_oci_code)" ] ||
		fail "$what: status $RQ_CODE without an OCI error body"
	[ -z "$code" ] || assert_eq "$code" "$(rq_oci_code)" "$what: OCI error code"
	assert_eq "" "$(rq_header Warning)" "$what: Warning header on an error"
	log "$what: $RQ_CODE $(rq_oci_code) \"$(jq -r '.errors[0].message' "$T_DIR/rq.body")\" (${RQ_SECS}s)"
}

# since VAR: seconds since the time (microseconds) in variable VAR.
since() {
	awk -v d=$(($(now_us) - ${!1})) 'BEGIN { printf "%.1fs", d / 1e6 }'
}

# fake_asks KIND: requests (GET or HEAD) the fake upstream got for its tag.
fake_asks() {
	local u=$UP_URL p=/v2/app/x/manifests/t-$1
	echo $(($(fake_count "$u" "$p" GET) + $(fake_count "$u" "$p" HEAD)))
}

# reg_lines FROM: reg's access lines for /v2/app/r/manifests/ after line
# FROM, as "METHOD URI", sorted.
reg_lines() {
	registry_log_sync reg
	_access_lines "$REG_LOG" "$1" '[A-Z]+' /v2/app/r/manifests/ |
		awk '{ sub(/^"/, "", $6); print $6, $7 }' | sort
}

# -- negative_ttl: a 404 remembered ----------------------------------------------
registry_log_sync reg
mark=$(log_mark "$REG_LOG")
n0=$(now_us)
merr "negative: unknown tag" reg:new 404 MANIFEST_UNKNOWN
n1=$(now_us)
assert_eq "GET /v2/app/r/manifests/new" "$(reg_lines "$mark")" \
	"negative: upstream requests for the unknown tag"
seed_image "$T_DIR/img" v1 "$REG_HOST" app/r:new
assert_eq 200 "$(http_code "$REG_URL/v2/app/r/manifests/new" "${ACCEPT[@]}")" \
	"the pushed tag at the registry"
registry_log_sync reg
mark=$(log_mark "$REG_LOG")
merr "negative: within negative_ttl, tag pushed meanwhile" reg:new 404 MANIFEST_UNKNOWN
[ $(($(now_us) - n0)) -lt $(((NEG - 1) * 1000000)) ] ||
	hard_error "the GET within negative_ttl came $((($(now_us) - n0) / 1000))ms after the first: too slow to tell"
assert_eq "" "$(reg_lines "$mark")" \
	"negative: upstream requests for a GET within negative_ttl"
mark=$(log_mark "$REG_LOG")
merr "negative_ttl = 0: unknown tag" noneg:missing 404 MANIFEST_UNKNOWN
merr "negative_ttl = 0: unknown tag again" noneg:missing 404 MANIFEST_UNKNOWN
assert_eq "GET /v2/app/r/manifests/missing
GET /v2/app/r/manifests/missing" "$(reg_lines "$mark")" \
	"negative_ttl = 0: upstream requests for two GETs of an unknown tag"

# -- phase A: every tag validated ------------------------------------------------
t_start=$(now_us)
for k in "${KINDS[@]}" nostale dflt dead tok reg:latest reg:v1 reg:v2 reg:stable; do
	mget "validate $k" "$k"
done
t_end=$(now_us)
log "tags validated in $(((t_end - t_start) / 1000))ms"

# The token service and dead.test's upstream go away; a restart makes
# the mirror forget its tokens (the tags stay validated in the cache).
stop_pid "$TOK_PID"
stop_pid "$DEAD_PID"
assert_eq 000 "$(http_code "$DEAD_URL/v2/")" "dead.test's stopped upstream"
stop_pid "$MIRROR_PID" || fail "the mirror did not stop on TERM"
start_mirror "$T_DIR/mirror.conf" mirror2

# -- phase B: tag_ttl (1s) has passed ---------------------------------------------
wait_clock $((t_end + TTL * 1000000 + 100000))
log "phase B starts $(since t_start) after validation"
# stale_if_error, within the window: served stale
for k in "${KINDS[@]}"; do
	fake_mode "$UP_URL" "$(mode_of "$k")"
	c0=$(fake_asks "$k")
	mget "stale window: $(mode_of "$k")" "$k" "$STALE"
	[ "$(fake_asks "$k")" -gt "$c0" ] ||
		fail "stale window: $(mode_of "$k"): the mirror did not ask the upstream"
	log "stale window: $(mode_of "$k"): 200 stale (${RQ_SECS}s)"
done
fake_mode "$UP_URL" manifest-status-500
c0=$(fake_asks nostale)
merr "stale_if_error = 0: upstream 500" nostale '502|503'
[ "$(fake_asks nostale)" -gt "$c0" ] ||
	fail "stale_if_error = 0: the mirror did not ask the upstream"
mget "stale window: connection refused" dead "$STALE"
log "stale window: connection refused: 200 stale (${RQ_SECS}s)"
registry_log_sync treg
tmark=$(log_mark "$TREG_LOG")
mget "stale window: token service down" tok "$STALE"
log "stale window: token service down: 200 stale (${RQ_SECS}s)"
registry_log_sync treg
[ "$(count_upstream_requests "$TREG_LOG" /v2/app/tok/manifests/v1 "$tmark")" -ge 1 ] ||
	fail "stale window: token service down: the mirror did not ask the registry"
# Validated at a whole second >= floor(t_start): the window surely
# holds until t_start + TTL + SIE - 1.
[ "$(now_us)" -lt $((t_start + (TTL + SIE - 1) * 1000000)) ] ||
	hard_error "the stale window checks ended $(since t_start) after validation: too slow to tell (stale_if_error ${SIE}s)"
log "stale window checks done $(since t_start) after validation"

# tiers
mark=$(log_mark "$REG_LOG")
for t in latest v1 v2 stable; do
	mget "tiers: $t after 1.1s" "reg:$t"
done
assert_eq "HEAD /v2/app/r/manifests/latest
HEAD /v2/app/r/manifests/v2" "$(reg_lines "$mark")" \
	"tiers: upstream requests for latest (1s), v1 (v1:1h), v2 (v*:1s), stable (upstream tag_ttl 1h)"
log "tiers: latest and v2 revalidated, v1 and stable not"

# negative_ttl has passed: the pushed tag is found
wait_clock $((n1 + NEG * 1000000 + 100000))
mark=$(log_mark "$REG_LOG")
mget "negative: after negative_ttl" reg:new
[ -n "$(reg_lines "$mark")" ] ||
	fail "negative: after negative_ttl: the mirror did not ask the registry"

# -- phase C: stale_if_error has passed too ---------------------------------------
wait_clock $((t_end + (TTL + SIE) * 1000000 + 100000))
fake_mode "$UP_URL" manifest-status-503
mget "default stale_if_error (1h), $(since t_end) after validation" dflt "$STALE"
log "default stale_if_error (1h): 200 stale $(since t_end) after validation"
fake_mode "$UP_URL" manifest-status-500
merr "after the window: upstream 500" s500 '502|503'
fake_mode "$UP_URL" manifest-status-503
merr "after the window: upstream 503" s503 '502|503'
fake_mode "$UP_URL" manifest-status-429
merr "after the window: upstream 429" s429 429 TOOMANYREQUESTS
fake_mode "$UP_URL" manifest-hang
merr "after the window: no answer" hang 504
merr "after the window: connection refused" dead 502
merr "after the window: token service down" tok '502|503'
fake_mode "$UP_URL" ok
mirror_alive
pass
