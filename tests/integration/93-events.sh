#!/bin/bash
# Registry events: docker-registry sends its notifications to the mirror's
# POST /api/v1/events; a pushed tag that a replication policy wants is
# synced within seconds, although the policy's interval is an hour; a tag
# the policy does not want triggers nothing.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo jq
need_regmirror

mkimage "$T_DIR/img" single --seed t93 --ref v1 --layers 2000,30000
PA=$(free_port) AA=$(free_port)
REGISTRY_EXTRA_YAML="notifications:
  endpoints:
    - name: regmirror
      url: http://127.0.0.1:$AA/api/v1/events?source=primary.test:5000
      timeout: 2s
      threshold: 3
      backoff: 1s"
start_registry up
unset REGISTRY_EXTRA_YAML
seed_image "$T_DIR/img" v1 "$UP_HOST" app/ev:v1
D=$(layout_top "$T_DIR/img")

write_mirror_base "$T_DIR/a.conf" "$PA" "$T_DIR/cache-a" 1h \
	"admin_listen = 127.0.0.1:$AA"
cat >>"$T_DIR/a.conf" <<EOC
[upstream "primary.test:5000"]
url = $UP_URL
default = yes
[replication "apps"]
source = primary.test:5000
repositories = app/ev
tags = v.*
interval = 1h
EOC
start_mirror "$T_DIR/a.conf" mirror-a
A=http://127.0.0.1:$AA
# The first (start-up) run settles.
runs_at_least() { [ "$(curl -sf "$A/api/v1/replication" |
	jq -r '.policies[0].runs')" -ge "$1" ] && [ "$(curl -sf \
	"$A/api/v1/replication" | jq -r '.policies[0].state')" = idle ]; }
wait_for 20 runs_at_least 1 || fail "the start-up run did not finish"

has_tag() { "$REGMIRROR" cache ls --json -c "$T_DIR/a.conf" |
	jq -e --arg t "$1" --arg d "$2" \
	'.tags | any(.repository == "app/ev" and .tag == $t and .digest == $d)' \
	>/dev/null; }
seed_image "$T_DIR/img" v1 "$UP_HOST" app/ev:v2
wait_for 20 has_tag v2 "$D" || fail "the pushed tag v2 was not synced by its event"
grep -q "replication apps: event: app/ev:v2 pushed" "$MIRROR_LOG" ||
	fail "no event in the mirror's log"
[ "$(curl -sf "$A/api/v1/replication" | jq -r '.policies[0].events')" -ge 1 ] ||
	fail "events not counted"

# A tag the policy does not want: no run.
runs=$(curl -sf "$A/api/v1/replication" | jq -r '.policies[0].runs')
seed_image "$T_DIR/img" v1 "$UP_HOST" app/ev:nightly
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST \
	-d '{"events":[{"action":"push","target":{"repository":"app/ev","tag":"nightly"}}]}' \
	"$A/api/v1/events?source=primary.test:5000")
assert_eq 200 "$code" "events POST"
assert_eq "$runs" "$(curl -sf "$A/api/v1/replication" | jq -r '.policies[0].runs')" \
	"runs after an unwanted tag"
! has_tag nightly "$D" || fail "nightly was synced"
pass
