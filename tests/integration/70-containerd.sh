#!/bin/bash
# containerd (Debian 1.6, ctr --hosts-dir) pulls alpha.test/app/demo:v1 and
# beta.test/app/demo:v1 through one mirror with two upstreams, "alpha.test"
# (registry A) and "beta.test" (registry B), neither the default, holding
# DIFFERENT images under the same repository name. containerd names the
# registry with ?ns=<host> on every request. Checks: both pulls succeed;
# `ctr images ls` shows each image with the manifest digest of ITS
# upstream; in the mirror's log every ns=alpha.test request was served by
# up=alpha.test and every ns=beta.test one by up=beta.test, with 200, and
# carries the image's manifest and blobs; registry A never got a GET for
# beta's manifest or blobs and registry B none for alpha's, while each
# served its own.
[ -n "${BASH_VERSION:-}" ] || exec /bin/bash "$0" "$@"
. "$(dirname "$0")/lib.sh" || exit 99
need docker-registry skopeo containerd ctr timeout
need_regmirror

mkimage "$T_DIR/alpha" single --seed t70-alpha --ref v1 --layers 1000,40000
mkimage "$T_DIR/beta" single --seed t70-beta --ref v1 --layers 3000,70000
start_registry a
start_registry b
seed_image "$T_DIR/alpha" v1 "$A_HOST" app/demo:v1
seed_image "$T_DIR/beta" v1 "$B_HOST" app/demo:v1

ACCEPT='application/vnd.oci.image.manifest.v1+json'
# upstream_digest URL: Docker-Content-Digest of a HEAD of app/demo:v1.
upstream_digest() {
	curl -sS -I --max-time 10 -H "Accept: $ACCEPT" \
		"$1/v2/app/demo/manifests/v1" | tr -d '\r' |
		awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}
A_DIGEST=$(upstream_digest "$A_URL")
B_DIGEST=$(upstream_digest "$B_URL")
assert_eq "$(layout_top "$T_DIR/alpha")" "$A_DIGEST" "registry A's app/demo:v1"
assert_eq "$(layout_top "$T_DIR/beta")" "$B_DIGEST" "registry B's app/demo:v1"
[ "$A_DIGEST" != "$B_DIGEST" ] || hard_error "the two images are the same"

MPORT=$(free_port)
write_mirror_base "$T_DIR/mirror.conf" "$MPORT" "$T_DIR/cache" 5m
cat >>"$T_DIR/mirror.conf" <<EOF

[upstream "alpha.test"]
url = $A_URL
default = no

[upstream "beta.test"]
url = $B_URL
default = no
EOF
start_mirror "$T_DIR/mirror.conf"

HOSTS="$T_DIR/hosts"
for h in alpha.test beta.test; do
	mkdir -p "$HOSTS/$h"
	cat >"$HOSTS/$h/hosts.toml" <<EOF
server = "http://$h"

[host."http://127.0.0.1:$MPORT"]
  capabilities = ["pull", "resolve"]
EOF
done

start_containerd
for h in alpha.test beta.test; do
	timeout 60 ctr -a "$CONTAINERD_SOCK" -n test images pull \
		--snapshotter native --hosts-dir "$HOSTS" "$h/app/demo:v1" \
		>"$T_DIR/pull-$h.out" 2>&1 ||
		{ tail -n 20 "$T_DIR/pull-$h.out" >&2;
		  fail "ctr images pull $h/app/demo:v1 through the mirror failed"; }
done

# Each image carries the digest of its own upstream.
ctr_ -n test images ls >"$T_DIR/images.ls"
got_a=$(awk '$1 == "alpha.test/app/demo:v1" { print $3 }' "$T_DIR/images.ls")
got_b=$(awk '$1 == "beta.test/app/demo:v1" { print $3 }' "$T_DIR/images.ls")
assert_eq "$A_DIGEST" "$got_a" "ctr images ls: digest of alpha.test/app/demo:v1"
assert_eq "$B_DIGEST" "$got_b" "ctr images ls: digest of beta.test/app/demo:v1"
# and it was unpacked (every layer went through the native snapshotter)
ctr_ -n test images check --snapshotter native >"$T_DIR/images.check"
for h in alpha.test beta.test; do
	grep -E "^$h/app/demo:v1 .* complete .* true *\$" "$T_DIR/images.check" \
		>/dev/null ||
		fail "ctr images check: $h/app/demo:v1 not complete and unpacked:
$(cat "$T_DIR/images.check")"
done

# The mirror's log: routed by ns, served with 200 by the right upstream.
for h in alpha.test beta.test; do
	lines=$(mirror_access_grep "\"(GET|HEAD) [^ ]*[?&]ns=${h}[&\" ]")
	[ -n "$lines" ] || fail "no access line with ns=$h in the mirror's log"
	bad=$(printf '%s\n' "$lines" | grep -v " up=$h src=" || true)
	[ -z "$bad" ] || fail "requests with ns=$h not served by up=$h:
$bad"
	bad=$(printf '%s\n' "$lines" | grep -vE '" 200 ' || true)
	[ -z "$bad" ] || fail "requests with ns=$h not answered 200:
$bad"
	printf '%s\n' "$lines" | grep -E '"HEAD /v2/app/demo/manifests/v1\?' \
		>/dev/null || fail "no HEAD of the tag with ns=$h:
$lines"
done
check_blobs() { # JSON NS
	local d
	for d in $(jq -r '.images[0] | .config.digest, .layers[].digest' "$1"); do
		mirror_access_grep "\"GET /v2/app/demo/blobs/$d\\?ns=$2\" 200 .* up=$2 " |
			grep -q . || fail "no GET of blob $d with ns=$2 served by up=$2"
	done
}
check_blobs "$T_DIR/alpha.json" alpha.test
check_blobs "$T_DIR/beta.json" beta.test

# No cross traffic: each registry served its own image and nothing of
# the other's.
registry_log_sync a
registry_log_sync b
cross() { # LOG JSON: GETs in LOG for the manifest or blobs of JSON
	local d n=0
	for d in $(jq -r '.top.digest, .blobs[]' "$2" | sort -u); do
		n=$((n + $(count_upstream_gets "$1" "/v2/app/demo/manifests/$d") +
			$(count_upstream_gets "$1" "/v2/app/demo/blobs/$d")))
	done
	echo "$n"
}
assert_eq 0 "$(cross "$A_LOG" "$T_DIR/beta.json")" \
	"GETs of beta's content at registry A"
assert_eq 0 "$(cross "$B_LOG" "$T_DIR/alpha.json")" \
	"GETs of alpha's content at registry B"
for pair in "A_LOG:alpha" "B_LOG:beta"; do
	log=${pair%%:*} log=${!log} img=${pair#*:}
	for d in $(jq -r '.images[0] | .config.digest, .layers[].digest' \
		"$T_DIR/$img.json"); do
		[ "$(count_upstream_gets_ok "$log" "/v2/app/demo/blobs/$d")" -ge 1 ] ||
			fail "the $img registry never served blob $d"
	done
done

mirror_alive
pass
