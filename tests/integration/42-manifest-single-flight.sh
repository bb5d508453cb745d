#!/bin/bash
# Manifest fetches are single-flighted per worker: a slow source (every
# manifest answer 1 s late) and twenty concurrent clients.  Checks: twenty
# GETs of an uncached tag make at most one upstream GET per worker (2),
# every client gets the manifest whole, and most of them are answered as
# "coalesced"; after tag_ttl, twenty concurrent GETs revalidate with at
# most two HEADs; twenty GETs of a tag the source does not have all get
# 404 MANIFEST_UNKNOWN from at most two upstream requests.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need jq
need_regmirror

N=20
jq -n '{"/v2/app/sf/manifests/v1": [{serve: true, delay: 1}],
	"/v2/app/sf/manifests/nope": [{status: 404, delay: 1,
		body: ({errors: [{code: "MANIFEST_UNKNOWN",
			message: "manifest unknown"}]} | tojson)}]}' \
	>"$T_DIR/routes.json"
start_hubfake hub --routes "$T_DIR/routes.json"
DIGEST=$(jq -r .manifest.digest "$HUB_INFO")
MT=$(jq -r .manifest.mediaType "$HUB_INFO")

P=$(free_port)
write_mirror_base "$T_DIR/m.conf" "$P" "$T_DIR/cache" 2s
cat >>"$T_DIR/m.conf" <<EOC
[upstream "hub.test"]
url = $HUB_URL
default = yes
EOC
start_mirror "$T_DIR/m.conf"

hub_count() {	# hub_count PATH METHOD
	curl -sf "$HUB_URL/_count?path=$1&method=$2"
}
burst() {	# burst NAME TAG: N concurrent GETs; NAME<i>.code/.body
	local i pids=()
	for i in $(seq "$N"); do
		curl -s --max-time 30 -H "Accept: $MT" -o "$T_DIR/$1$i.body" \
			-w '%{http_code}' "$MIRROR_URL/v2/app/sf/manifests/$2" \
			>"$T_DIR/$1$i.code" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || true; done
}
at_most_two() {	# at_most_two WHAT N
	[ "$2" -ge 1 ] && [ "$2" -le 2 ] ||
		fail "$1: $2 upstream requests for $N concurrent clients (want 1 or 2: one per worker at most)"
}

# 1. Cold tag.
burst cold v1
for i in $(seq "$N"); do
	assert_eq 200 "$(cat "$T_DIR/cold$i.code")" "cold client $i status"
	assert_eq "$DIGEST" "sha256:$(sha256_of "$T_DIR/cold$i.body")" \
		"cold client $i body"
done
at_most_two "cold tag" "$(hub_count /v2/app/sf/manifests/v1 GET)"
c=$(grep -c '"GET /v2/app/sf/manifests/v1" 200 .* src=coalesced' "$MIRROR_LOG")
[ "$c" -ge $((N - 2)) ] || fail "only $c of $N cold requests coalesced"

# 2. Stale tag: one revalidation per worker.
t_done=$(now_us)
wait_clock $((t_done + 3000000))
heads0=$(hub_count /v2/app/sf/manifests/v1 HEAD)
burst stale v1
for i in $(seq "$N"); do
	assert_eq 200 "$(cat "$T_DIR/stale$i.code")" "stale client $i status"
	assert_eq "$DIGEST" "sha256:$(sha256_of "$T_DIR/stale$i.body")" \
		"stale client $i body"
done
at_most_two "revalidation" $(($(hub_count /v2/app/sf/manifests/v1 HEAD) - heads0))

# 3. Unknown tag: the same 404 for everyone.
burst nope nope
for i in $(seq "$N"); do
	assert_eq 404 "$(cat "$T_DIR/nope$i.code")" "unknown-tag client $i status"
	jq -e '.errors[0].code == "MANIFEST_UNKNOWN"' "$T_DIR/nope$i.body" \
		>/dev/null || fail "unknown-tag client $i body: $(cat "$T_DIR/nope$i.body")"
done
at_most_two "unknown tag" "$(hub_count /v2/app/sf/manifests/nope GET)"
mirror_alive
pass
